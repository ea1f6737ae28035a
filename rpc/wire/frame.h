/*
 * rpc/wire/frame.h - gRPC length-prefixed message framing.
 *
 * On the wire every message is a 5-byte prefix (a compressed flag byte, 0 or
 * 1, then the message length as a big-endian uint32) followed by the
 * message. DATA frame boundaries have nothing to do with message
 * boundaries, so the decoder is incremental: feed it whatever bytes arrived
 * (one at a time works) and it yields whole messages.
 *
 * Ownership of decoded messages: each complete message is a malloc'd buffer
 * of exactly its length that the decoder hands to the caller, who free()s
 * it. Handing over the buffer (instead of lending a pointer valid until the
 * next feed) lets the transport queue a message for a later recv without a
 * second copy.
 *
 * Memory: the declared length is checked against the maximum before any
 * body memory is allocated, and the body buffer then grows with the bytes
 * actually received (doubling, capped at the declared length). A peer that
 * announces a large message but sends nothing pins no memory.
 *
 * No I/O, no threads; a decoder is used by one thread at a time.
 */
#ifndef CRPC_WIRE_FRAME_H
#define CRPC_WIRE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/status.h"
#include "rpc/wire/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_WIRE_FRAME_PREFIX_LEN 5

/* gRPC's customary default for the largest message a peer accepts. */
#define CRPC_WIRE_DEFAULT_MAX_RECV_MESSAGE ((size_t)4 * 1024 * 1024)

/* ---- encoding ---------------------------------------------------------- */

/* Writes the prefix for a message of len bytes into out. CRPC_OK, or
 * CRPC_RESOURCE_EXHAUSTED (out untouched) if len does not fit in 32 bits. */
crpc_code crpc_wire_frame_encode_prefix(uint8_t out[CRPC_WIRE_FRAME_PREFIX_LEN],
                                        bool compressed, size_t len);

/* Prefix + copy of msg in one new malloc'd buffer (*out, caller frees,
 * *out_len = len + 5). msg may be NULL if len is 0. CRPC_OK, or
 * CRPC_RESOURCE_EXHAUSTED (too long or out of memory; *out = NULL). */
crpc_code crpc_wire_frame_encode(const void *msg, size_t len, bool compressed,
                                 uint8_t **out, size_t *out_len);

/* ---- decoding ---------------------------------------------------------- */

/* A decoded message. data is malloc'd (never NULL, even when len is 0) and
 * owned by whoever received it from crpc_wire_frame_decoder_feed. */
typedef struct crpc_wire_message {
  uint8_t *data;
  size_t len;
  bool compressed; /* the prefix's flag; the call layer decides what it means */
} crpc_wire_message;

/* Fields are private; the struct is public so it can be embedded in
 * per-stream state without an extra allocation. */
typedef struct crpc_wire_frame_decoder {
  size_t max_message;
  uint8_t prefix[CRPC_WIRE_FRAME_PREFIX_LEN];
  size_t prefix_have;
  uint8_t *body;
  size_t body_cap;
  size_t body_have;
  size_t body_want;
  crpc_wire_error error; /* sticky once code != CRPC_OK */
} crpc_wire_frame_decoder;

/* Results of crpc_wire_frame_decoder_feed. */
enum {
  CRPC_WIRE_FRAME_ERROR = -1,    /* see crpc_wire_frame_decoder_error */
  CRPC_WIRE_FRAME_NEED_MORE = 0, /* all input consumed, no message done */
  CRPC_WIRE_FRAME_MESSAGE = 1    /* *msg holds a message; feed the rest */
};

/* Prepares d to accept messages whose prefix declares at most max_message
 * bytes (SIZE_MAX: no limit beyond the 32-bit field). The limit on the
 * decompressed size is crpc_wire_decompress's job. Cannot fail. */
void crpc_wire_frame_decoder_init(crpc_wire_frame_decoder *d,
                                  size_t max_message);

/* Frees a partly assembled message, if any. Accepts NULL. d may be
 * re-initialised afterwards. */
void crpc_wire_frame_decoder_destroy(crpc_wire_frame_decoder *d);

/* Consumes bytes from data until one message is complete or the input runs
 * out, and sets *consumed to the number used (always; on error, the bytes
 * up to and including the offending prefix).
 * Returns CRPC_WIRE_FRAME_MESSAGE (ownership of msg->data passes to the
 * caller; call again with data + *consumed), CRPC_WIRE_FRAME_NEED_MORE, or
 * CRPC_WIRE_FRAME_ERROR: a flag byte other than 0/1 (CRPC_INTERNAL), a
 * declared length over the maximum (CRPC_RESOURCE_EXHAUSTED, nothing
 * allocated), or out of memory (CRPC_RESOURCE_EXHAUSTED). Errors are
 * sticky: every later feed returns CRPC_WIRE_FRAME_ERROR, consuming 0. */
int crpc_wire_frame_decoder_feed(crpc_wire_frame_decoder *d,
                                 const uint8_t *data, size_t len,
                                 size_t *consumed, crpc_wire_message *msg);

/* Call at end of stream. CRPC_OK if the input ended on a message boundary;
 * CRPC_INTERNAL if it ended inside a prefix or a message (the partial
 * message is freed); the sticky error's code if feed already failed.
 * Details in crpc_wire_frame_decoder_error. */
crpc_code crpc_wire_frame_decoder_finish(crpc_wire_frame_decoder *d);

/* Bytes of memory the decoder holds for a partly received message (its
 * body buffer; 0 between messages): what a stalled partial message costs,
 * for callers that bound it across many decoders. */
size_t crpc_wire_frame_decoder_buffered(const crpc_wire_frame_decoder *d);

/* The decoder's error (code CRPC_OK if none). Valid while d is. */
const crpc_wire_error *crpc_wire_frame_decoder_error(
    const crpc_wire_frame_decoder *d);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_FRAME_H */
