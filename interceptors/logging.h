/*
 * interceptors/logging.h - one structured line per server call.
 *
 *   crpc call method=/pkg.Svc/M peer=ipv4:127.0.0.1:5000 status=CANCELLED
 *     duration_us=1234 cancel_code=CANCELLED cancel_origin=peer_reset
 *     cancel_msg="peer reset the stream (HTTP/2 error 8)"
 *
 * (one line). status is what the client is told: the handler's code, or
 * the cause's code if the call ctx was done before the handler returned.
 * cancel_* are "none" / "" when the call was not cancelled. Written when
 * the handler returns, from the handler thread, to `sink` (NULL: stderr).
 * `opts` is borrowed: it must outlive the server.
 */
#ifndef CRPC_INTERCEPTORS_LOGGING_H
#define CRPC_INTERCEPTORS_LOGGING_H

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Receives one NUL-terminated line (no newline). Any thread. */
typedef void (*crpc_log_sink_fn)(void *user_data, const char *line);

typedef struct crpc_logging_options {
  crpc_log_sink_fn sink; /* NULL: a line on stderr */
  void *sink_data;
} crpc_logging_options;

crpc_server_interceptor crpc_logging_server(const crpc_logging_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_LOGGING_H */
