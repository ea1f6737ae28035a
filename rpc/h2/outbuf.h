/*
 * rpc/h2/outbuf.h - a connection's pending output: bytes copied out of the
 * nghttp2 session (frame headers, HEADERS, control frames) interleaved
 * with slices of message chunks referenced in place (DATA payloads sent
 * with NGHTTP2_DATA_FLAG_NO_COPY), written with one sendmsg per batch.
 *
 * Why: a 64 KiB message used to be copied three times on its way out
 * (into the chunk, into nghttp2's frame buffer, into the connection's
 * buffer); now only the first copy remains, and large messages go to the
 * kernel as iovecs pointing into the chunk. Internal; loop thread only.
 */
#ifndef CRPC_H2_OUTBUF_H
#define CRPC_H2_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rpc/h2/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_h2_outseg {
  crpc_h2_chunk *chunk; /* referenced bytes; NULL: bytes in the arena */
  const uint8_t *ptr;   /* chunk bytes (chunk != NULL) */
  size_t off;           /* arena offset (chunk == NULL) */
  size_t len;
} crpc_h2_outseg;

typedef struct crpc_h2_outbuf {
  uint8_t *arena;
  size_t arena_len, arena_cap;
  crpc_h2_outseg *segs;
  size_t nsegs, segs_cap;
  size_t head;     /* first segment not fully written */
  size_t head_off; /* bytes of it already written */
  size_t bytes;    /* bytes not yet written */
  size_t refs;     /* segments that reference chunks */
} crpc_h2_outbuf;

/* Appends a copy of p[0..n); false if out of memory. */
bool crpc_h2_outbuf_copy(crpc_h2_outbuf *ob, const uint8_t *p, size_t n);

/* Appends chunk bytes p[0..n) by reference; ob takes over one reference
 * to chunk (dropped once written or at clear) even when it fails (false:
 * out of memory). */
bool crpc_h2_outbuf_ref(crpc_h2_outbuf *ob, crpc_h2_chunk *chunk,
                        const uint8_t *p, size_t n);

/* Writes as much as the socket takes (sendmsg, MSG_NOSIGNAL). Returns 0
 * when everything is written, -EAGAIN when the socket is full, or another
 * -errno. Drops references as their bytes go. */
int crpc_h2_outbuf_send(crpc_h2_outbuf *ob, int fd);

/* The unwritten bytes as one region, for writers that cannot take iovecs
 * (TLS). Only valid while no chunk is referenced (refs == 0). */
void crpc_h2_outbuf_flat(const crpc_h2_outbuf *ob, const uint8_t **p,
                         size_t *n);

/* Marks n bytes of the flat region written. */
void crpc_h2_outbuf_consume_flat(crpc_h2_outbuf *ob, size_t n);

/* Drops everything (unwritten bytes too) and frees the storage. */
void crpc_h2_outbuf_clear(crpc_h2_outbuf *ob);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_H2_OUTBUF_H */
