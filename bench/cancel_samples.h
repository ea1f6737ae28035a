/*
 * bench/cancel_samples.h - cancel_bench's samples and the shared cancel
 * protocol's output: one JSON line per (scenario, metric) with the
 * anchors' keys and percentiles computed as theirs are, so their
 * aggregate.py pools crpc's lines with grpc-go's, gRPC C++'s and grpcio's.
 */
#ifndef CRPC_BENCH_CANCEL_SAMPLES_H
#define CRPC_BENCH_CANCEL_SAMPLES_H

/* A growing array of measurements; zero-initialise. One thread. */
typedef struct samples {
  double *v;
  int n;
  int cap;
} samples;

/* Appends x; exits the process if out of memory. */
void samples_push(samples *s, double x);

/* Prints {"Impl","Scenario","Metric","N","P50","P90","P99","Max","Min",
 * "Mean"} for s to stdout (nearest-rank percentiles, as the anchors) and
 * frees the samples (s is empty again). Exits the process if s is empty:
 * a scenario that measured nothing is a broken run. */
void samples_emit(const char *impl, const char *scenario, const char *metric,
                  samples *s);

#endif /* CRPC_BENCH_CANCEL_SAMPLES_H */
