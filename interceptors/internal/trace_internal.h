/*
 * interceptors/internal/trace_internal.h - what tracing.c takes from
 * traceparent.c. Not installed; not part of the API.
 */
#ifndef CRPC_INTERCEPTORS_INTERNAL_TRACE_INTERNAL_H
#define CRPC_INTERCEPTORS_INTERNAL_TRACE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/metadata.h"

#ifdef __cplusplus
extern "C" {
#endif

/* n random bytes as 2n lowercase hex digits + NUL into out, never all
 * zeros (getrandom; a time-and-counter mix if that fails). */
void icpt_trace_random_hex(char *out, size_t n);

/* True if s (len bytes) is a W3C id: len lowercase hex digits, not all
 * zero. */
bool icpt_trace_is_w3c_id(const char *s, size_t len);

/* A tracestate value normalised for passing on: a malloc'd copy of s
 * (len bytes) if it is printable ASCII (0x20-0x7E, what metadata
 * carries) and not empty,
 * with whole entries dropped while it is longer than CRPC_TRACESTATE_MAX
 * (entries over 128 chars first, then from the end). NULL if nothing is
 * left, it is not printable, or out of memory. */
char *icpt_tracestate_norm(const char *s, size_t len);

/* Every "tracestate" entry of md joined with "," (RFC 7230 3.2.2), then
 * icpt_tracestate_norm. NULL if none. */
char *icpt_tracestate_from_md(const crpc_metadata *md);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_INTERNAL_TRACE_INTERNAL_H */
