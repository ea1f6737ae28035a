/*
 * outbuf.c - pending output of one connection (see outbuf.h).
 */
#include "rpc/h2/outbuf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* iovecs per sendmsg: a batch of small frames is one or two segments
 * (copies merge), so this bounds only runs of referenced slices. */
#define OUTBUF_IOV 64

static bool reserve_seg(crpc_h2_outbuf *ob) {
  if (ob->nsegs < ob->segs_cap) return true;
  size_t cap = ob->segs_cap ? ob->segs_cap * 2 : 16;
  crpc_h2_outseg *s = realloc(ob->segs, cap * sizeof(*s));
  if (s == NULL) return false;
  ob->segs = s;
  ob->segs_cap = cap;
  return true;
}

bool crpc_h2_outbuf_copy(crpc_h2_outbuf *ob, const uint8_t *p, size_t n) {
  if (n == 0) return true;
  if (ob->arena_len + n > ob->arena_cap) {
    size_t cap = ob->arena_cap ? ob->arena_cap : 16 * 1024;
    while (cap < ob->arena_len + n) cap *= 2;
    uint8_t *a = realloc(ob->arena, cap); /* segments hold offsets */
    if (a == NULL) return false;
    ob->arena = a;
    ob->arena_cap = cap;
  }
  memcpy(ob->arena + ob->arena_len, p, n);
  crpc_h2_outseg *last = ob->nsegs > ob->head ? &ob->segs[ob->nsegs - 1]
                                               : NULL;
  if (last != NULL && last->chunk == NULL &&
      last->off + last->len == ob->arena_len) {
    last->len += n; /* contiguous with the previous copy */
  } else {
    if (!reserve_seg(ob)) return false;
    ob->segs[ob->nsegs++] =
        (crpc_h2_outseg){.chunk = NULL, .off = ob->arena_len, .len = n};
  }
  ob->arena_len += n;
  ob->bytes += n;
  return true;
}

bool crpc_h2_outbuf_ref(crpc_h2_outbuf *ob, crpc_h2_chunk *chunk,
                        const uint8_t *p, size_t n) {
  if (n == 0 || !reserve_seg(ob)) {
    crpc_h2_chunk_unref(chunk);
    return n == 0;
  }
  ob->segs[ob->nsegs++] =
      (crpc_h2_outseg){.chunk = chunk, .ptr = p, .len = n};
  ob->bytes += n;
  ob->refs++;
  return true;
}

/* Everything written: start again at the front of both arrays. */
static void reset_if_empty(crpc_h2_outbuf *ob) {
  if (ob->bytes != 0) return;
  ob->nsegs = ob->head = ob->head_off = 0;
  ob->arena_len = 0;
}

/* Marks n bytes from the head written, dropping finished references. */
static void advance(crpc_h2_outbuf *ob, size_t n) {
  ob->bytes -= n;
  while (n > 0) {
    crpc_h2_outseg *s = &ob->segs[ob->head];
    size_t left = s->len - ob->head_off;
    if (n < left) {
      ob->head_off += n;
      break;
    }
    n -= left;
    if (s->chunk != NULL) {
      crpc_h2_chunk_unref(s->chunk);
      ob->refs--;
    }
    ob->head++;
    ob->head_off = 0;
  }
  reset_if_empty(ob);
}

int crpc_h2_outbuf_send(crpc_h2_outbuf *ob, int fd) {
  while (ob->bytes > 0) {
    struct iovec iov[OUTBUF_IOV];
    int n = 0;
    for (size_t i = ob->head; i < ob->nsegs && n < OUTBUF_IOV; i++, n++) {
      const crpc_h2_outseg *s = &ob->segs[i];
      const uint8_t *base = s->chunk != NULL ? s->ptr : ob->arena + s->off;
      size_t skip = i == ob->head ? ob->head_off : 0;
      iov[n].iov_base = (void *)(base + skip);
      iov[n].iov_len = s->len - skip;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    advance(ob, (size_t)w);
  }
  return 0;
}

void crpc_h2_outbuf_flat(const crpc_h2_outbuf *ob, const uint8_t **p,
                         size_t *n) {
  /* Without references every segment is arena bytes in arena order. */
  *n = ob->bytes;
  *p = ob->bytes > 0 ? ob->arena + ob->segs[ob->head].off + ob->head_off
                     : ob->arena;
}

void crpc_h2_outbuf_consume_flat(crpc_h2_outbuf *ob, size_t n) {
  advance(ob, n);
}

void crpc_h2_outbuf_clear(crpc_h2_outbuf *ob) {
  for (size_t i = ob->head; i < ob->nsegs; i++) {
    if (ob->segs[i].chunk != NULL) crpc_h2_chunk_unref(ob->segs[i].chunk);
  }
  free(ob->arena);
  free(ob->segs);
  memset(ob, 0, sizeof(*ob));
}
