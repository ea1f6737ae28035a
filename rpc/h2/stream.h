/*
 * rpc/h2/stream.h - per-stream message plumbing shared by server calls and
 * client calls (internal).
 *
 *   outq     framed messages a user thread queued, read by the loop through
 *            an nghttp2 data provider; bounded by the caller (it blocks the
 *            sender while `bytes` is over its limit)
 *   msgq     decoded messages waiting for the user's recv
 *   inbound  DATA bytes -> decoded (and decompressed) messages, with the
 *            stream flow-control bookkeeping: bytes are handed back to the
 *            peer (nghttp2_session_consume_stream) only while the user keeps
 *            up, so a slow reader stalls the peer instead of growing memory
 *
 * None of these lock: the call that embeds them holds its mutex around
 * every use that another thread can see. All functions are O(1) per
 * message except reads, which are O(bytes).
 */
#ifndef CRPC_H2_STREAM_H
#define CRPC_H2_STREAM_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/call.h"
#include "crpc/status.h"
#include "rpc/wire/compress.h"
#include "rpc/wire/error.h"
#include "rpc/wire/frame.h"
#include "rpc/wire/metadata_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- outgoing ----------------------------------------------------------- */

/* A crpc_buf (crpc/call.h): the gRPC frame prefix is written when it is
 * made, so `frame` is ready to go on the wire and never changes again;
 * any number of chunks may point at it at once. */
struct crpc_buf {
  int refs; /* atomic (GCC builtins) */
  size_t len; /* message bytes, after the prefix */
  uint8_t frame[];
};

typedef struct crpc_h2_chunk {
  struct crpc_h2_chunk *next;
  size_t len, off;
  /* The queue's reference plus one per pending write of its bytes (a
   * connection's outbuf). Atomic (GCC builtins: the header is shared with
   * C++): the last unref may come from a user thread. */
  int refs;
  /* The framed bytes: `data` below, or a shared crpc_buf's frame (then
   * `buf` holds one reference to it, dropped with the chunk). */
  const uint8_t *bytes;
  crpc_buf *buf;
  uint8_t data[];
} crpc_h2_chunk;

/* Drops a reference; the last frees the chunk. */
void crpc_h2_chunk_unref(crpc_h2_chunk *chunk);

typedef struct crpc_h2_outq {
  crpc_h2_chunk *head, *tail;
  size_t bytes; /* unread bytes in the queue */
  /* For the live-call registry (crpc/calls.h), kept here because every
   * send passes through: messages ever pushed (a push_front, which puts
   * back bytes for a resend, is not a new message) and bytes ever taken
   * off for the wire. Never reset, not even by a clear. */
  uint64_t pushed, taken;
} crpc_h2_outq;

/* A new chunk holding the 5-byte prefix + a copy of msg; NULL if out of
 * memory or len does not fit the 32-bit length. */
crpc_h2_chunk *crpc_h2_chunk_frame(const void *msg, size_t len);

/* Like crpc_h2_chunk_frame, but compresses msg with e and sets the
 * compressed flag unless e is IDENTITY. NULL with *code set (
 * RESOURCE_EXHAUSTED, INTERNAL) on failure. */
crpc_h2_chunk *crpc_h2_chunk_frame_encoded(crpc_wire_encoding e,
                                           const void *msg, size_t len,
                                           crpc_code *code);

/* A chunk for buf's message, taking the caller's reference to buf: no
 * copy when e is IDENTITY; otherwise compressed into a chunk of its own
 * (and the reference dropped). NULL with *code set on failure, and the
 * reference dropped too. */
crpc_h2_chunk *crpc_h2_chunk_from_buf(crpc_wire_encoding e, crpc_buf *buf,
                                      crpc_code *code);

/* Counts the messages (chunks) and unwritten bytes in q, leaving out a
 * head chunk already partly written if skip_started: what a clear (or a
 * drop_unstarted) is about to discard. */
void crpc_h2_outq_tally(const crpc_h2_outq *q, bool skip_started,
                        uint64_t *messages, uint64_t *bytes);

/* Appends chunk (ownership passes to q). */
void crpc_h2_outq_push(crpc_h2_outq *q, crpc_h2_chunk *chunk);

/* Puts chunk before everything queued (ownership passes to q): bytes that
 * must go out again first, as a refused request's on its retry. */
void crpc_h2_outq_push_front(crpc_h2_outq *q, crpc_h2_chunk *chunk);

/* Copies up to cap bytes from the front of q into buf, freeing chunks as
 * they are used up; returns the number copied. */
size_t crpc_h2_outq_read(crpc_h2_outq *q, uint8_t *buf, size_t cap);

/* Receives one slice of a chunk and a reference to it, which it owns
 * from now on; false if out of memory. */
typedef bool (*crpc_h2_slice_fn)(void *arg, crpc_h2_chunk *chunk,
                                 const uint8_t *p, size_t n);

/* Takes the next len (<= q->bytes) bytes off q without copying, handing
 * them to fn slice by slice with a reference each. False if fn failed
 * (the bytes are consumed anyway: the stream is then broken). */
bool crpc_h2_outq_take(crpc_h2_outq *q, size_t len, crpc_h2_slice_fn fn,
                       void *arg);

/* Frees everything queued. */
void crpc_h2_outq_clear(crpc_h2_outq *q);

/* Frees every chunk not yet started, keeping a partly read head chunk so
 * the stream does not end inside a message. */
void crpc_h2_outq_drop_unstarted(crpc_h2_outq *q);

/* ---- incoming ----------------------------------------------------------- */

typedef struct crpc_h2_msg {
  struct crpc_h2_msg *next;
  uint8_t *data; /* malloc'd, never NULL */
  size_t len;
  bool compressed; /* arrived with the compressed flag set */
} crpc_h2_msg;

typedef struct crpc_h2_msgq {
  crpc_h2_msg *head, *tail;
  size_t count;
} crpc_h2_msgq;

/* Moves the front message into *out (data ownership to the caller); false
 * if the queue is empty. */
bool crpc_h2_msgq_pop(crpc_h2_msgq *q, crpc_message *out);

/* Frees every queued message. */
void crpc_h2_msgq_clear(crpc_h2_msgq *q);

typedef struct crpc_h2_inbound {
  crpc_wire_frame_decoder decoder;
  crpc_wire_encoding encoding; /* from grpc-encoding */
  bool is_server;
  size_t max_message;
  crpc_h2_msgq q;
  size_t held;  /* DATA bytes not yet returned to the peer's stream window */
  size_t total; /* messages decoded so far */
  uint64_t fed; /* DATA bytes fed, framing included (crpc/calls.h) */
  /* 0: any number of messages. Else one more is an INTERNAL error with
   * the message too_many (gRPC's rule for the request of a unary or
   * server-streaming call), found before it is decompressed or queued. */
  size_t max_messages;
  const char *too_many;
} crpc_h2_inbound;

/* Sets up for messages of at most max_message bytes (after
 * decompression). */
void crpc_h2_inbound_init(crpc_h2_inbound *in, size_t max_message,
                          bool is_server);

/* Frees queued and partial messages. */
void crpc_h2_inbound_destroy(crpc_h2_inbound *in);

/* Feeds one DATA chunk. Complete messages are decompressed as the
 * encoding says and queued. CRPC_OK, or the stream's error (framing
 * INTERNAL, too large RESOURCE_EXHAUSTED, unknown encoding UNIMPLEMENTED
 * on a server, more than max_messages INTERNAL) with details in *err; the
 * stream is then failing. */
crpc_code crpc_h2_inbound_feed(crpc_h2_inbound *in, const uint8_t *data,
                               size_t len, crpc_wire_error *err);

/* Bytes to hand back to the peer now: all held bytes once the reader has
 * emptied the queue (the partial message needs window to complete), else 0.
 * Resets `held` by what it returns. */
size_t crpc_h2_inbound_take_consumable(crpc_h2_inbound *in);

/* For a reader off the loop that has just taken a message: whether the loop
 * should be asked now to give the held bytes back. Only once they come to
 * half the stream's window (stream_window as advertised, 0 = HTTP/2's
 * 65535; counted against at most 65535, the window in force until the
 * peer acknowledges our SETTINGS): nghttp2 sends no WINDOW_UPDATE for
 * less, so an earlier request would wake the loop for nothing. It cannot
 * stall the peer: the peer stops only with a whole window unreturned, and
 * the reader that empties the queue then holds all of it, at least half.
 * Smaller amounts go back with a later request, or with the loop's own
 * take when a partial message arrives to an empty queue. */
bool crpc_h2_inbound_return_due(const crpc_h2_inbound *in,
                                uint32_t stream_window);

/* ---- headers -------------------------------------------------------------*/

/* An nghttp2_nv array pointing into h (valid while h is): buf if h has at
 * most buf_len headers, else a malloc'd one (NULL if out of memory). Free
 * it with crpc_h2_nv_free(nv, buf). Borrowed headers are flagged so that
 * nghttp2 does not copy them either. */
#define CRPC_H2_NV_STACK 16
nghttp2_nv *crpc_h2_nv_from(const crpc_wire_headers *h, nghttp2_nv *buf,
                            size_t buf_len);
void crpc_h2_nv_free(nghttp2_nv *nv, const nghttp2_nv *buf);

/* Appends "name: value" with a NUL-terminated value (copied). */
crpc_code crpc_h2_headers_add(crpc_wire_headers *h, const char *name,
                              const char *value);

/* Appends a header whose name and value are string literals or other
 * static storage (not copied, by crpc nor by nghttp2). */
#define CRPC_H2_HEADER_STATIC(h, name, value)                          \
  crpc_wire_headers_add_static((h), (name), sizeof(name) - 1, (value), \
                               strlen(value))

#ifdef __cplusplus
}
#endif

#endif /* CRPC_H2_STREAM_H */
