/*
 * interceptors/logging.h - one structured line per call, server side and
 * client side.
 *
 * Server (crpc_logging_server):
 *
 *   crpc call method=/pkg.Svc/M peer=ipv4:127.0.0.1:5000 status=CANCELLED
 *     duration_us=1234 cancel_code=CANCELLED cancel_origin=peer_reset
 *     cancel_msg="peer reset the stream (HTTP/2 error 8)"
 *
 * (one line). status is what the client is told: the handler's code, or
 * the cause's code if the call ctx was done before the handler returned.
 * cancel_* are "none" / "" when the call was not cancelled. Written when
 * the handler returns, from the handler thread.
 *
 * Client (crpc_logging_client):
 *
 *   crpc client call method=/pkg.Svc/M target=localhost:50051
 *     status=DEADLINE_EXCEEDED duration_us=200113 cancel_code=DEADLINE_EXCEEDED
 *     cancel_origin=deadline cancel_msg="deadline exceeded" msg="..."
 *
 * (one line) per call that ends: when crpc_call_finish returns (every
 * crpc_unary_call and generated unary stub finishes its call), or when
 * crpc_call_start fails (no call exists; that line is written at once).
 * duration_us runs from the start to the end of finish. cancel_* name the
 * cause of the ctx the call was started with when that ctx ending is what
 * ended the call (the caller cancelled, its deadline passed); "none" / ""
 * otherwise (the server's status, a deadline set by an inner interceptor,
 * a lost connection). msg is the status message. A streaming call freed
 * without crpc_call_finish ends without a status and without a line.
 *
 * Either side adds trace_id=... span_id=... when the ctx carries a trace
 * (interceptors/tracing.h; register tracing before logging on a server).
 * Values never hold spaces ("peer reset" is written peer_reset); quotes
 * in messages become '.
 *
 * Lines go to opts->sink (NULL opts or sink: stderr). `opts` is borrowed:
 * it must outlive the server or channel. Neither interceptor changes a
 * call's outcome.
 */
#ifndef CRPC_INTERCEPTORS_LOGGING_H
#define CRPC_INTERCEPTORS_LOGGING_H

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Receives one NUL-terminated line (no newline), valid during the call.
 * Called on the thread that ends the call (a handler thread; the thread
 * calling crpc_call_finish or crpc_call_start), on several at once: it
 * must be thread-safe. (Named apart from crpc/log.h's crpc_log_sink_fn,
 * the runtime's own log sink, so both headers can be included.) */
typedef void (*crpc_logging_sink_fn)(void *user_data, const char *line);

typedef struct crpc_logging_options {
  crpc_logging_sink_fn sink; /* NULL: a line on stderr */
  void *sink_data;
} crpc_logging_options;

/* The server interceptor: one line per call, as above. */
crpc_server_interceptor crpc_logging_server(const crpc_logging_options *opts);

/* The client interceptor: one line per call, as above. Register it first
 * (outermost) to time and see everything the inner links do. */
crpc_client_interceptor crpc_logging_client(const crpc_logging_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_LOGGING_H */
