/*
 * interceptors/tracing.h - W3C Trace Context (traceparent / tracestate)
 * propagation, with crpc's older "x-trace-id" header as an option.
 *
 * Server (crpc_tracing_server): reads the caller's trace from the request,
 * in the formats `accept` allows, first match wins:
 *   traceparent  "00-<trace-id 32 hex>-<parent-id 16 hex>-<flags 2 hex>"
 *                (W3C Trace Context level 1; tracestate rides along)
 *   x-trace-id   1..64 chars of [0-9a-zA-Z-_.]
 * A traceparent that is malformed (see crpc_traceparent_parse) is ignored
 * and so is the tracestate that came with it, as the spec says; with no
 * usable header the call starts a new trace (a random trace id). Either
 * way the call gets a new span id of its own, and the handler's ctx
 * carries the trace id, that span id, the caller's span (the parent), the
 * sampled flag and the tracestate (accessors below).
 *
 * Client (crpc_tracing_client): a call whose ctx carries a trace (a
 * handler's ctx, or one from crpc_trace_start) sends it downstream:
 * traceparent with the ctx's span id as the parent-id and its flags, and
 * its tracestate unchanged; so a handler calling on with its own ctx
 * continues the trace. A ctx without a trace leaves the request metadata
 * as the caller set it (a traceparent put there by hand passes as is).
 *
 * Formats (crpc_tracing_options): default accept = traceparent and
 * x-trace-id, emit = traceparent. With x-trace-id in `emit` the server
 * echoes the trace id as an "x-trace-id" response header and the client
 * sends it as "x-trace-id" as well. A trace whose id is not a W3C trace id
 * (an x-trace-id such as "abc-123") cannot travel as traceparent; the
 * client then sends it as x-trace-id instead of dropping it.
 *
 * Threads: every function here may be called from any thread; the
 * interceptors run on the call's threads and keep no state of their own
 * (options are read only).
 */
#ifndef CRPC_INTERCEPTORS_TRACING_H
#define CRPC_INTERCEPTORS_TRACING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_TRACE_HEADER "x-trace-id"
#define CRPC_TRACEPARENT_HEADER "traceparent"
#define CRPC_TRACESTATE_HEADER "tracestate"
/* Longest trace id (x-trace-id); a W3C trace id is 32. */
#define CRPC_TRACE_ID_MAX 64
/* A version-00 traceparent value is exactly this long. */
#define CRPC_TRACEPARENT_LEN 55
/* A tracestate longer than this (after joining several headers with ",")
 * loses whole entries, the spec's way: entries over 128 chars first, then
 * from the end. The spec asks to carry at least 512. */
#define CRPC_TRACESTATE_MAX 1024
/* trace-flags bit 0: the caller may have recorded trace data. */
#define CRPC_TRACE_FLAG_SAMPLED 0x01

/* Formats, as bits of crpc_tracing_options.accept / .emit. */
#define CRPC_TRACE_FORMAT_W3C 0x1u        /* traceparent + tracestate */
#define CRPC_TRACE_FORMAT_X_TRACE_ID 0x2u /* x-trace-id */

typedef struct crpc_tracing_options {
  /* What the server reads; 0: W3C | X_TRACE_ID. traceparent is tried
   * first when both are allowed. */
  unsigned accept;
  /* What the server echoes (x-trace-id only: W3C has no response header)
   * and what the client sends; 0: W3C. */
  unsigned emit;
  /* The sampled flag of a trace the server starts (no usable header):
   * false (flags 00, the spec's default for a trace started here). */
  bool sample_new;
} crpc_tracing_options;

/* The server interceptor with default options (accept traceparent and
 * x-trace-id, emit traceparent). */
crpc_server_interceptor crpc_tracing_server(void);

/* The server interceptor with `opts` (NULL: defaults). opts is borrowed:
 * it must outlive the server. A call never fails because of tracing: out
 * of memory, it runs untraced. */
crpc_server_interceptor crpc_tracing_server_with(
    const crpc_tracing_options *opts);

/* The client interceptor with default options (emit traceparent). */
crpc_client_interceptor crpc_tracing_client(void);

/* The client interceptor with `opts` (NULL: defaults; only `emit` is
 * used). opts is borrowed: it must outlive the channel. A call's start
 * fails RESOURCE_EXHAUSTED only if the headers cannot be added (out of
 * memory). */
crpc_client_interceptor crpc_tracing_client_with(
    const crpc_tracing_options *opts);

/* ---- the trace on a ctx ---------------------------------------------------
 * Each reads the trace on ctx or its nearest ancestor that has one (a
 * handler's ctx under crpc_tracing_server, or a ctx from crpc_trace_start).
 * Strings are owned by that ctx: valid while ctx is. Any thread. */

/* The trace id (32 lowercase hex digits for a W3C trace; an x-trace-id as
 * received), or NULL if ctx carries no trace. */
const char *crpc_trace_id(const crpc_ctx *ctx);

/* This call's own span id (16 lowercase hex digits, never all zero): what
 * a downstream call sends as its parent-id. NULL without a trace. */
const char *crpc_trace_span_id(const crpc_ctx *ctx);

/* The caller's span id (the parent-id received), or NULL when the trace
 * started here or came as x-trace-id. */
const char *crpc_trace_parent_id(const crpc_ctx *ctx);

/* The sampled flag (trace-flags bit 0); false without a trace. */
bool crpc_trace_sampled(const crpc_ctx *ctx);

/* The tracestate received (joined, maybe cut, never otherwise changed),
 * or NULL if there was none (or no trace). */
const char *crpc_trace_state(const crpc_ctx *ctx);

/* Writes the traceparent a call made with ctx sends ("00-<trace id>-<span
 * id>-<flags>", NUL-terminated) into out; false (out = "") if ctx carries
 * no trace or its trace id is not a W3C one. For handing the trace to
 * other systems (an HTTP request, a log line). */
bool crpc_trace_traceparent(const crpc_ctx *ctx,
                            char out[CRPC_TRACEPARENT_LEN + 1]);

/* A new child of parent carrying a trace, for calls made with it and for
 * the accessors above: continues `traceparent` (a W3C value, e.g. from an
 * incoming HTTP request; NULL or malformed: starts a new trace whose
 * sampled flag is `sampled`) under a new span id; `tracestate` (may be
 * NULL) is kept only with a valid traceparent. Owned by the caller, who
 * releases it (crpc_ctx_release) after the calls made with it are freed;
 * NULL only if out of memory. */
crpc_ctx *crpc_trace_start(const crpc_ctx *parent, const char *traceparent,
                           const char *tracestate, bool sampled);

/* ---- the header itself ----------------------------------------------------
 */

/* A parsed traceparent. */
typedef struct crpc_traceparent {
  uint8_t version;    /* 0, or a later one whose version-00 fields parsed */
  char trace_id[33];  /* 32 lowercase hex digits, not all zero */
  char parent_id[17]; /* 16 lowercase hex digits, not all zero */
  uint8_t flags;      /* trace-flags as received (bit 0: sampled) */
} crpc_traceparent;

/* Parses a traceparent value of len bytes (value need not be
 * NUL-terminated). True with *out filled if it is valid: version 2
 * lowercase hex digits other than "ff"; for version 00 exactly
 * "00-" 32 hex "-" 16 hex "-" 2 hex (55 chars, nothing after); for a later
 * version at least those 55 chars with a '-' or the end after the flags
 * (the rest is ignored, as the spec says); every hex digit lowercase;
 * trace-id and parent-id not all zeros. False otherwise (*out
 * untouched): the caller starts a new trace. Pure; any thread. */
bool crpc_traceparent_parse(const char *value, size_t len,
                            crpc_traceparent *out);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_TRACING_H */
