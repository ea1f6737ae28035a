/*
 * crpc/status.h - gRPC status codes and the origins of a cancellation.
 *
 * Errors in crpc are values: a gRPC status code (plus, where one exists, a
 * message). Nothing in the public API reports failure through errno.
 */
#ifndef CRPC_STATUS_H
#define CRPC_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* The 17 canonical gRPC status codes; numeric values are fixed by the wire. */
typedef enum crpc_code {
  CRPC_OK = 0,
  CRPC_CANCELLED = 1,
  CRPC_UNKNOWN = 2,
  CRPC_INVALID_ARGUMENT = 3,
  CRPC_DEADLINE_EXCEEDED = 4,
  CRPC_NOT_FOUND = 5,
  CRPC_ALREADY_EXISTS = 6,
  CRPC_PERMISSION_DENIED = 7,
  CRPC_RESOURCE_EXHAUSTED = 8,
  CRPC_FAILED_PRECONDITION = 9,
  CRPC_ABORTED = 10,
  CRPC_OUT_OF_RANGE = 11,
  CRPC_UNIMPLEMENTED = 12,
  CRPC_INTERNAL = 13,
  CRPC_UNAVAILABLE = 14,
  CRPC_DATA_LOSS = 15,
  CRPC_UNAUTHENTICATED = 16
} crpc_code;

/* Where a cancellation came from. Kept with the cause so that "cancelled"
 * is never the whole story (failure catalog line 11, DESIGN.md). */
typedef enum crpc_origin {
  CRPC_ORIGIN_NONE = 0,        /* not cancelled */
  CRPC_ORIGIN_LOCAL,           /* the owner called crpc_ctx_cancel/release */
  CRPC_ORIGIN_DEADLINE,        /* a deadline on this ctx or an ancestor passed */
  CRPC_ORIGIN_PEER_RESET,      /* the peer reset the stream (RST_STREAM) */
  CRPC_ORIGIN_CONNECTION_LOST, /* the connection closed or went dead */
  CRPC_ORIGIN_SHUTDOWN,        /* the server or channel is shutting down */
  CRPC_ORIGIN_ADMIN            /* an operator ended the call (crpc/calls.h) */
} crpc_origin;

/* "OK", "CANCELLED", ... as in the gRPC spec; "CODE_<n>" style text is never
 * returned: an out-of-range value gives "INVALID_CODE". Thread-safe, static. */
const char *crpc_code_name(crpc_code code);

/* "none", "local", "deadline", "peer reset", "connection lost", "shutdown",
 * "admin"; an out-of-range value gives "invalid". Thread-safe, static
 * storage. */
const char *crpc_origin_name(crpc_origin origin);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_STATUS_H */
