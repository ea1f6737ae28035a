/*
 * crpc/call.h - what client and server calls share: messages, final status,
 * method kinds.
 *
 * Messages are opaque bytes (serialised protobuf, usually via the stubs that
 * protoc-gen-crpc generates). crpc never interprets them.
 */
#ifndef CRPC_CALL_H
#define CRPC_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/metadata.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The four call shapes; fixed when a method is registered or called. */
typedef enum crpc_method_kind {
  CRPC_UNARY = 0,
  CRPC_CLIENT_STREAMING = 1,
  CRPC_SERVER_STREAMING = 2,
  CRPC_BIDI_STREAMING = 3
} crpc_method_kind;

/* One received message, or the end of the peer's stream.
 * After a receive returned CRPC_OK: if `end` is false, `data` holds `len`
 * bytes (never NULL, even when len is 0) owned by the caller, who frees it
 * with free(); if `end` is true the peer has finished sending, `data` is
 * NULL and len 0. `compressed` says the message arrived compressed (its
 * gRPC compressed flag was set); `data` is always the decompressed bytes,
 * and the receive limit applies to them. */
typedef struct crpc_message {
  uint8_t *data;
  size_t len;
  bool end;
  bool compressed;
} crpc_message;

/* Message compression (gRPC's grpc-encoding): a sender picks an encoding
 * per call, "gzip" or "deflate" ("identity" or NULL: none); crpc uses it
 * only if the peer's grpc-accept-encoding lists it, else sends
 * uncompressed. Every message of such a call is compressed unless sent with
 * CRPC_SEND_NO_COMPRESS. Both sides accept identity, gzip and deflate and
 * say so in grpc-accept-encoding. */

/* Flags for crpc_call_send_flags and crpc_server_call_send_flags. */
#define CRPC_SEND_NO_COMPRESS 0x1u /* send this message uncompressed */

/* ---- message buffers: sending without a copy ----------------------------
 * The send functions that take (data, len) copy the message into crpc's
 * own buffer before they return. A crpc_buf *is* that buffer: serialise
 * into crpc_buf_data() and hand it to a *_send_buf function, and the bytes
 * go from there to the socket (unless the call compresses them, or a
 * channel's interceptors need a view they may replace: then one copy).
 * Reference counted, so the same bytes can go to many calls, or many
 * times on one call, without copies: each send consumes one reference,
 * whatever it returns (crpc_buf_ref before a send that must not consume
 * yours). Fill the bytes before the first send; after it they are shared
 * with crpc and must not change. ref and unref are thread-safe; the data
 * is not synchronised beyond that. */
typedef struct crpc_buf crpc_buf;

/* A buffer for one message of exactly len bytes (uninitialised), with one
 * reference, the caller's. NULL if out of memory or len is over the
 * gRPC frame's 4 GiB - 1. */
crpc_buf *crpc_buf_new(size_t len);

/* The message bytes (never NULL, also for len 0) and their length. */
uint8_t *crpc_buf_data(crpc_buf *buf);
size_t crpc_buf_len(const crpc_buf *buf);

/* One more reference to buf, which it returns. */
crpc_buf *crpc_buf_ref(crpc_buf *buf);

/* Drops one reference; the last frees the buffer. NULL is ignored. */
void crpc_buf_unref(crpc_buf *buf);

/* The final status of a call as the client sees it. Filled by crpc (the
 * caller provides the struct); release what it holds with
 * crpc_status_clear. */
typedef struct crpc_status {
  crpc_code code;
  char *message;           /* NUL-terminated, never NULL once filled */
  crpc_metadata *trailers; /* never NULL once filled; may be empty */
} crpc_status;

/* Frees message and trailers and zeroes the struct. Accepts a zeroed or
 * already-cleared struct. Not thread-safe per struct. */
void crpc_status_clear(crpc_status *status);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CALL_H */
