/* fuzz/hpack_scan.c - decoding the header blocks of a frame stream
 * (hpack_scan.h). */
#include "fuzz/hpack_scan.h"

#include <nghttp2/nghttp2.h>
#include <string.h>

#define FRAME_HEADER_LEN 9
#define TYPE_HEADERS 0x1
#define TYPE_PUSH_PROMISE 0x5
#define TYPE_CONTINUATION 0x9
#define FLAG_END_HEADERS 0x4
#define FLAG_PADDED 0x8
#define FLAG_PRIORITY 0x20

bool fuzz_hpack_name_is(const uint8_t *name, size_t namelen,
                        const char *want) {
  return namelen == strlen(want) && memcmp(name, want, namelen) == 0;
}

typedef enum feed_result { FEED_OK, FEED_STOP, FEED_ERROR } feed_result;

/* Feeds one fragment to the decoder, calling fn for what it emits. final:
 * the block ends with it. */
static feed_result feed(nghttp2_hd_inflater *inf, const uint8_t *in,
                        size_t inlen, bool final, fuzz_hpack_fn fn,
                        void *arg) {
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t rv = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, inlen, final);
    if (rv < 0) return FEED_ERROR;
    in += rv;
    inlen -= (size_t)rv;
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) &&
        fn(nv.name, nv.namelen, nv.value, nv.valuelen, arg)) {
      return FEED_STOP;
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inf);
      return FEED_OK;
    }
    if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && inlen == 0) return FEED_OK;
  }
}

bool fuzz_hpack_scan(const uint8_t *data, size_t len, fuzz_hpack_fn fn,
                     void *arg) {
  nghttp2_hd_inflater *inf;
  if (nghttp2_hd_inflate_new(&inf) != 0) return false;
  bool in_block = false; /* a block's CONTINUATION is due */
  size_t off = 0;
  while (len - off >= FRAME_HEADER_LEN) {
    const uint8_t *h = data + off;
    size_t n = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
    uint8_t type = h[3], flags = h[4];
    const uint8_t *p = h + FRAME_HEADER_LEN;
    size_t have = len - off - FRAME_HEADER_LEN;
    if (have > n) have = n;
    bool whole = have == n;
    off += FRAME_HEADER_LEN + have;
    /* A receiver ends the connection on a CONTINUATION out of place, or
     * anything else where one is due. */
    if (in_block != (type == TYPE_CONTINUATION)) break;
    if (type != TYPE_HEADERS && type != TYPE_PUSH_PROMISE &&
        type != TYPE_CONTINUATION) {
      continue;
    }
    size_t start = 0, pad = 0;
    if (type != TYPE_CONTINUATION && (flags & FLAG_PADDED)) {
      if (have < 1) break;
      pad = p[0];
      start = 1;
    }
    if (type == TYPE_HEADERS && (flags & FLAG_PRIORITY)) start += 5;
    if (type == TYPE_PUSH_PROMISE) start += 4; /* the promised stream */
    if (start + pad > n) break; /* a receiver's PROTOCOL_ERROR */
    size_t end = n - pad < have ? n - pad : have;
    bool final = whole && (flags & FLAG_END_HEADERS);
    if (end > start) {
      feed_result r = feed(inf, p + start, end - start, final, fn, arg);
      if (r != FEED_OK) break; /* stopped, or a COMPRESSION_ERROR */
    } else if (final) {
      feed_result r = feed(inf, p, 0, true, fn, arg);
      if (r != FEED_OK) break;
    }
    in_block = !final;
    if (!whole) break;
  }
  nghttp2_hd_inflate_del(inf);
  return true;
}
