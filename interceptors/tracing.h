/*
 * interceptors/tracing.h - a trace id per call, carried on the ctx and
 * forwarded downstream.
 *
 * Server: takes the id from request header "x-trace-id" (1..64 chars of
 * [0-9a-zA-Z-_.]) or makes a new one (32 hex digits), echoes it as a
 * response header, and hands the handler a ctx carrying it
 * (crpc_trace_id). Client: a call whose ctx carries an id sends it as
 * "x-trace-id", so a handler calling downstream with its own ctx forwards
 * the trace; with none, the header is left as the caller set it.
 */
#ifndef CRPC_INTERCEPTORS_TRACING_H
#define CRPC_INTERCEPTORS_TRACING_H

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_TRACE_HEADER "x-trace-id"
#define CRPC_TRACE_ID_MAX 64

crpc_server_interceptor crpc_tracing_server(void);
crpc_client_interceptor crpc_tracing_client(void);

/* The trace id on ctx or an ancestor, or NULL. Valid while ctx is. */
const char *crpc_trace_id(const crpc_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_TRACING_H */
