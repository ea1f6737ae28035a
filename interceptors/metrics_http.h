/*
 * interceptors/metrics_http.h - a crpc_metrics served over HTTP/1.1 for a
 * Prometheus scraper:
 *
 *   char err[256];
 *   crpc_metrics_http *h = crpc_metrics_http_serve(m, "0.0.0.0:9464", err,
 *                                                  sizeof(err));
 *   if (h == NULL) fprintf(stderr, "metrics endpoint: %s\n", err);
 *   ...
 *   crpc_metrics_http_stop(h);   before crpc_metrics_free(m)
 *
 *   $ curl -s localhost:9464/metrics
 *
 * GET /metrics (a query string is ignored) answers 200 with
 * "Content-Type: text/plain; version=0.0.4" and the text of
 * crpc_metrics_write_prometheus; HEAD /metrics the same headers without
 * the body; another method on /metrics 405; any other path 404; a request
 * that does not parse 400; a request head over CRPC_METRICS_HTTP_MAX_REQUEST
 * bytes 431. One request per connection ("Connection: close").
 *
 * Bounded, whatever clients do: one thread of its own runs a poll loop
 * over the listening socket and up to CRPC_METRICS_HTTP_MAX_CONNECTIONS
 * connections, none of which ever blocks it. A connection whose request
 * head has not arrived within CRPC_METRICS_HTTP_READ_TIMEOUT_MS, or whose
 * response has not been taken within CRPC_METRICS_HTTP_WRITE_TIMEOUT_MS,
 * is closed; when every slot is taken, a new connection closes the oldest.
 * The request body, if any, is never read.
 *
 * Plain HTTP, no authentication: listen where only the scraper reaches
 * (loopback, a private network).
 */
#ifndef CRPC_INTERCEPTORS_METRICS_HTTP_H
#define CRPC_INTERCEPTORS_METRICS_HTTP_H

#include <stddef.h>

#include "interceptors/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_METRICS_HTTP_MAX_REQUEST 8192
#define CRPC_METRICS_HTTP_MAX_CONNECTIONS 16
#define CRPC_METRICS_HTTP_READ_TIMEOUT_MS 2000
#define CRPC_METRICS_HTTP_WRITE_TIMEOUT_MS 10000

typedef struct crpc_metrics_http crpc_metrics_http;

/* Listens on host_port and serves m from a new thread until
 * crpc_metrics_http_stop. host_port: "127.0.0.1:9464", "[::1]:9464",
 * "localhost:9464" (the first address that binds), ":9464" (every
 * interface); port 0 picks a free one (crpc_metrics_http_port tells
 * which). m is borrowed: it must outlive the endpoint. Returns the
 * endpoint, owned by the caller; NULL on failure, with the reason in err
 * (errlen bytes, NUL-terminated, cut if longer; err may be NULL when
 * errlen is 0): an address that does not parse or resolve, bind or
 * listen failing (with the errno text), out of memory or threads. Any
 * thread. */
crpc_metrics_http *crpc_metrics_http_serve(crpc_metrics *m,
                                           const char *host_port, char *err,
                                           size_t errlen);

/* The port the endpoint listens on. Any thread, until stop. */
int crpc_metrics_http_port(const crpc_metrics_http *h);

/* Stops serving and frees h: closes the listening socket and every open
 * connection (a response being written is cut off) and joins the thread,
 * so m may be freed once this returns. NULL: no-op. Not from two threads
 * on one h; never twice. */
void crpc_metrics_http_stop(crpc_metrics_http *h);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_METRICS_HTTP_H */
