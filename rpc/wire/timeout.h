/*
 * rpc/wire/timeout.h - the grpc-timeout header value.
 *
 * Format: 1 to 8 ASCII digits followed by one unit: H (hours), M (minutes),
 * S (seconds), m (milliseconds), u (microseconds), n (nanoseconds). No
 * header means no deadline; durations here are int64_t nanoseconds like
 * everywhere in crpc.
 *
 * Decisions where peers differ:
 *  - Encoding rounds UP to the chosen unit, so a server never sees a
 *    shorter timeout than the client has; the unit is the finest one whose
 *    value fits in 8 digits (so precision is lost only when it must be).
 *  - A non-positive duration encodes as "1n": the spec wants a positive
 *    value, and 1 ns expires at once on the server, which is the truth.
 *  - Decoding "0" with a valid unit gives 0 (already expired: the server
 *    fails the call with DEADLINE_EXCEEDED) rather than an error, because a
 *    client whose deadline just ran out is not sending garbage.
 *  - Values too large for int64_t nanoseconds (99999999H is ~11,400 years)
 *    saturate to INT64_MAX, which is CRPC_NO_DEADLINE; callers that add it
 *    to "now" must saturate too.
 *  - Anything else is malformed: empty, 9+ digits, signs, spaces, a missing
 *    or unknown unit, trailing bytes. The server answers such a call with
 *    CRPC_INTERNAL (the peer's gRPC library is broken; the application did
 *    nothing wrong) instead of guessing a deadline.
 */
#ifndef CRPC_WIRE_TIMEOUT_H
#define CRPC_WIRE_TIMEOUT_H

#include <stddef.h>
#include <stdint.h>

#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest value (8 digits + unit) plus the terminating NUL. */
#define CRPC_WIRE_TIMEOUT_BUF 10

/* Writes the header value for ns into out, NUL-terminated; returns its
 * length (2..9). Never fails: every int64_t has an encoding. */
size_t crpc_wire_timeout_encode(int64_t ns, char out[CRPC_WIRE_TIMEOUT_BUF]);

/* Parses len bytes of a header value (no NUL needed) into *ns (>= 0).
 * CRPC_OK, or CRPC_INTERNAL with *ns untouched and *reason (if non-NULL)
 * set to a static sentence saying what is wrong. */
crpc_code crpc_wire_timeout_decode(const char *s, size_t len, int64_t *ns,
                                   const char **reason);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_TIMEOUT_H */
