/*
 * interceptors/metrics.h - server call metrics, readable in-process and in
 * the Prometheus text format.
 *
 *   crpc_server_calls_total{method,code}           counter
 *   crpc_server_call_duration_seconds{method}      histogram
 *   crpc_server_cancellations_total{origin}        counter (calls whose ctx
 *                                                  was done before the
 *                                                  handler returned)
 *   crpc_server_cancel_propagation_seconds         histogram: from the call
 *                                                  ctx being cancelled to
 *                                                  the handler returning
 *   crpc_server_cancel_ctx_done_seconds            histogram: from a cancel
 *                                                  reaching the server
 *                                                  (RST_STREAM read,
 *                                                  deadline due, connection
 *                                                  lost) to the ctx done
 *   crpc_server_cancel_send_failed_seconds         histogram: from it to the
 *                                                  handler's first failing
 *                                                  send (calls that sent)
 *   crpc_server_cancel_dropped_messages_total      counter: responses queued
 *   crpc_server_cancel_dropped_bytes_total         but never written
 * (the last four from crpc_server_call_cancel_stats, crpc/server.h)
 *
 * Lifetime: crpc_metrics_new creates, crpc_metrics_free frees (NULL ok)
 * after every server using it is freed. Thread-safe (one mutex, taken
 * once per call end and by the readers).
 */
#ifndef CRPC_INTERCEPTORS_METRICS_H
#define CRPC_INTERCEPTORS_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bounds (seconds) of the histogram buckets, then +Inf. */
#define CRPC_METRICS_BUCKETS 14
extern const double crpc_metrics_bucket_bounds[CRPC_METRICS_BUCKETS];

typedef struct crpc_metrics crpc_metrics;

typedef struct crpc_metrics_histogram {
  uint64_t count;
  double sum_seconds;
  uint64_t buckets[CRPC_METRICS_BUCKETS + 1]; /* not cumulative; last +Inf */
} crpc_metrics_histogram;

crpc_metrics *crpc_metrics_new(void);
void crpc_metrics_free(crpc_metrics *m);

/* The interceptor recording into m (borrowed). */
crpc_server_interceptor crpc_metrics_server(crpc_metrics *m);

/* Calls of method that ended with code (0 if none). */
uint64_t crpc_metrics_calls(crpc_metrics *m, const char *method,
                            crpc_code code);
/* Calls cancelled with this origin. */
uint64_t crpc_metrics_cancellations(crpc_metrics *m, crpc_origin origin);
/* Latency of method's calls (NULL: all methods) into *out. */
void crpc_metrics_latency(crpc_metrics *m, const char *method,
                          crpc_metrics_histogram *out);
/* Cancel propagation latency into *out. */
void crpc_metrics_cancel_latency(crpc_metrics *m, crpc_metrics_histogram *out);
/* Cancel reaching the server -> ctx done, and -> first failing send. */
void crpc_metrics_cancel_ctx_done(crpc_metrics *m, crpc_metrics_histogram *out);
void crpc_metrics_cancel_send_failed(crpc_metrics *m,
                                     crpc_metrics_histogram *out);
/* Responses dropped from send queues (messages, bytes), totals. */
void crpc_metrics_cancel_dropped(crpc_metrics *m, uint64_t *messages,
                                 uint64_t *bytes);

/* Writes everything in the Prometheus text exposition format. */
void crpc_metrics_write_prometheus(crpc_metrics *m, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_METRICS_H */
