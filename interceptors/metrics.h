/*
 * interceptors/metrics.h - call metrics of servers and channels, readable
 * in-process and in the Prometheus text format (served over HTTP by
 * interceptors/metrics_http.h).
 *
 * Server side (crpc_metrics_server):
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
 * Client side (crpc_metrics_client), one count per call that ends as
 * crpc_logging_client logs it (crpc_call_finish returned, or
 * crpc_call_start failed; a stream freed without finish is not counted):
 *   crpc_client_calls_total{method,code}           counter
 *   crpc_client_call_duration_seconds{method}      histogram: start to the
 *                                                  end of finish
 *   crpc_client_cancellations_total{origin}        counter: calls ended by
 *                                                  their caller's ctx
 *                                                  (cancelled: local;
 *                                                  deadline: deadline)
 *
 * One crpc_metrics may record any number of servers and channels, both
 * sides at once: one scrape shows them all.
 *
 * Lifetime: crpc_metrics_new creates, crpc_metrics_free frees (NULL ok)
 * after every server and channel using it is freed and its HTTP endpoint
 * stopped. Thread-safe (one mutex, taken once per call end and by the
 * readers).
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

/* A new, empty metrics object owned by the caller; NULL if out of
 * memory. */
crpc_metrics *crpc_metrics_new(void);

/* Frees m (NULL: no-op). Only once nothing records into or reads it: the
 * servers and channels using it freed, its HTTP endpoint stopped. */
void crpc_metrics_free(crpc_metrics *m);

/* The server interceptor recording into m (borrowed: it must outlive the
 * server). Never changes a call's outcome. */
crpc_server_interceptor crpc_metrics_server(crpc_metrics *m);

/* The client interceptor recording into m (borrowed: it must outlive the
 * channel). Register it first (outermost) to time what the inner links
 * do too. Never changes a call's outcome. */
crpc_client_interceptor crpc_metrics_client(crpc_metrics *m);

/* Server calls of method that ended with code (0 if none). Any thread. */
uint64_t crpc_metrics_calls(crpc_metrics *m, const char *method,
                            crpc_code code);
/* Server calls cancelled with this origin. Any thread. */
uint64_t crpc_metrics_cancellations(crpc_metrics *m, crpc_origin origin);
/* Latency of method's server calls (NULL: all methods) into *out. */
void crpc_metrics_latency(crpc_metrics *m, const char *method,
                          crpc_metrics_histogram *out);

/* Client calls of method that ended with code (0 if none). Any thread. */
uint64_t crpc_metrics_client_calls(crpc_metrics *m, const char *method,
                                   crpc_code code);
/* Client calls their caller's ctx ended, with this origin. Any thread. */
uint64_t crpc_metrics_client_cancellations(crpc_metrics *m,
                                           crpc_origin origin);
/* Duration of method's client calls (NULL: all methods) into *out. */
void crpc_metrics_client_latency(crpc_metrics *m, const char *method,
                                 crpc_metrics_histogram *out);

/* Server cancel propagation latency into *out. */
void crpc_metrics_cancel_latency(crpc_metrics *m, crpc_metrics_histogram *out);
/* Cancel reaching the server -> ctx done, and -> first failing send. */
void crpc_metrics_cancel_ctx_done(crpc_metrics *m, crpc_metrics_histogram *out);
void crpc_metrics_cancel_send_failed(crpc_metrics *m,
                                     crpc_metrics_histogram *out);
/* Responses dropped from send queues (messages, bytes), totals. */
void crpc_metrics_cancel_dropped(crpc_metrics *m, uint64_t *messages,
                                 uint64_t *bytes);

/* Writes everything, both sides, in the Prometheus text exposition
 * format (version 0.0.4) to out; label values escaped as it requires.
 * Holds m's mutex while writing (calls ending meanwhile wait), so give it
 * a memory stream rather than a slow pipe. Any thread. */
void crpc_metrics_write_prometheus(crpc_metrics *m, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_METRICS_H */
