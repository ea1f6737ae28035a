#include "rpc/wire/compress.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const names[] = {"identity", "gzip", "deflate"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

/* zlib counts in uInt; feed it at most this much per call. */
#define ZCHUNK ((size_t)UINT_MAX)

crpc_wire_encoding crpc_wire_encoding_parse(const char *s, size_t len) {
  if (len == 0) return CRPC_WIRE_ENCODING_IDENTITY;
  for (size_t i = 0; i < NNAMES; i++) {
    if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
      return (crpc_wire_encoding)i;
    }
  }
  return CRPC_WIRE_ENCODING_UNKNOWN;
}

const char *crpc_wire_encoding_name(crpc_wire_encoding e) {
  if (e < 0 || (size_t)e >= NNAMES) return NULL;
  return names[e];
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

crpc_wire_encoding_set crpc_wire_accept_encoding_parse(const char *s,
                                                       size_t len) {
  crpc_wire_encoding_set set =
      CRPC_WIRE_ENCODING_BIT(CRPC_WIRE_ENCODING_IDENTITY);
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && s[i] != ',') i++;
    size_t end = i;
    while (start < end && is_ows(s[start])) start++;
    while (end > start && is_ows(s[end - 1])) end--;
    if (end > start) {
      crpc_wire_encoding e = crpc_wire_encoding_parse(s + start, end - start);
      if (e != CRPC_WIRE_ENCODING_UNKNOWN) set |= CRPC_WIRE_ENCODING_BIT(e);
    }
    i++; /* skip the ',' */
  }
  return set;
}

size_t crpc_wire_accept_encoding_format(crpc_wire_encoding_set set, char *buf,
                                        size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < NNAMES; i++) {
    if (!(set & CRPC_WIRE_ENCODING_BIT(i))) continue;
    const char *name = names[i];
    if (n > 0) {
      if (n < cap) buf[n] = ',';
      n++;
    }
    for (const char *p = name; *p != '\0'; p++, n++) {
      if (n < cap) buf[n] = *p;
    }
  }
  if (cap > 0) buf[n < cap ? n : cap - 1] = '\0';
  return n;
}

crpc_code crpc_wire_check_compressed_flag(bool compressed, crpc_wire_encoding e,
                                          bool is_server,
                                          crpc_wire_error *err) {
  if (!compressed) return CRPC_OK;
  if (e == CRPC_WIRE_ENCODING_GZIP || e == CRPC_WIRE_ENCODING_DEFLATE) {
    return CRPC_OK;
  }
  if (e == CRPC_WIRE_ENCODING_IDENTITY) {
    return crpc_wire_error_set(err, CRPC_INTERNAL,
                               "compressed flag set but grpc-encoding is "
                               "identity or absent");
  }
  return crpc_wire_error_set(
      err, is_server ? CRPC_UNIMPLEMENTED : CRPC_INTERNAL,
      "message compressed with an unsupported "
      "grpc-encoding (supported: identity,gzip,deflate)");
}

static int window_bits(crpc_wire_encoding e) {
  /* +16 selects the gzip wrapper; plain 15 the zlib one. */
  return e == CRPC_WIRE_ENCODING_GZIP ? 15 + 16 : 15;
}

static crpc_code copy_out(const void *in, size_t len, uint8_t **out,
                          size_t *out_len, crpc_wire_error *err) {
  uint8_t *p = malloc(len > 0 ? len : 1);
  if (p == NULL) {
    return crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (len > 0) memcpy(p, in, len);
  *out = p;
  *out_len = len;
  return CRPC_OK;
}

crpc_code crpc_wire_compress(crpc_wire_encoding e, const void *in, size_t len,
                             uint8_t **out, size_t *out_len,
                             crpc_wire_error *err) {
  *out = NULL;
  *out_len = 0;
  if (e == CRPC_WIRE_ENCODING_IDENTITY) {
    return copy_out(in, len, out, out_len, err);
  }
  if (e != CRPC_WIRE_ENCODING_GZIP && e != CRPC_WIRE_ENCODING_DEFLATE) {
    return crpc_wire_error_set(err, CRPC_INVALID_ARGUMENT,
                               "cannot compress with an unknown encoding");
  }
  z_stream z;
  memset(&z, 0, sizeof(z));
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits(e), 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED,
                               "deflateInit2 failed");
  }
  /* deflateBound is a guarantee, so one buffer always suffices. */
  size_t cap = deflateBound(&z, (uLong)len);
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    deflateEnd(&z);
    return crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED, "out of memory");
  }
  const uint8_t *src = in;
  size_t in_left = len;
  size_t have = 0;
  int r;
  do {
    size_t in_now = in_left < ZCHUNK ? in_left : ZCHUNK;
    size_t out_now = cap - have < ZCHUNK ? cap - have : ZCHUNK;
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)in_now;
    z.next_out = buf + have;
    z.avail_out = (uInt)out_now;
    r = deflate(&z, in_now == in_left ? Z_FINISH : Z_NO_FLUSH);
    src += in_now - z.avail_in;
    in_left -= in_now - z.avail_in;
    have += out_now - z.avail_out;
  } while (r == Z_OK);
  deflateEnd(&z);
  if (r != Z_STREAM_END) {
    free(buf);
    return crpc_wire_error_set(err, CRPC_INTERNAL, "deflate failed (%d)", r);
  }
  *out = buf;
  *out_len = have;
  return CRPC_OK;
}

/* Doubles *buf, but never past limit (> *cap). False if out of memory. */
static bool grow(uint8_t **buf, size_t *cap, size_t limit) {
  size_t next = *cap > limit / 2 ? limit : *cap * 2;
  uint8_t *p = realloc(*buf, next);
  if (p == NULL) return false;
  *buf = p;
  *cap = next;
  return true;
}

crpc_code crpc_wire_decompress(crpc_wire_encoding e, const void *in, size_t len,
                               size_t max_out, uint8_t **out, size_t *out_len,
                               crpc_wire_error *err) {
  *out = NULL;
  *out_len = 0;
  if (e == CRPC_WIRE_ENCODING_IDENTITY) {
    if (len > max_out) {
      return crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED,
                                 "received message larger than max "
                                 "(%lu vs. %lu)",
                                 (unsigned long)len, (unsigned long)max_out);
    }
    return copy_out(in, len, out, out_len, err);
  }
  if (e != CRPC_WIRE_ENCODING_GZIP && e != CRPC_WIRE_ENCODING_DEFLATE) {
    return crpc_wire_error_set(err, CRPC_INVALID_ARGUMENT,
                               "cannot decompress an unknown encoding");
  }
  /* Room for one byte past the limit is how we learn the limit was
   * exceeded without ever holding more than max_out + 1 bytes. */
  size_t limit = max_out == SIZE_MAX ? SIZE_MAX : max_out + 1;
  size_t cap = len < SIZE_MAX / 4 ? len * 4 : SIZE_MAX;
  if (cap < 256) cap = 256;
  if (cap > limit) cap = limit;
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    return crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED, "out of memory");
  }
  z_stream z;
  memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, window_bits(e)) != Z_OK) {
    free(buf);
    return crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED,
                               "inflateInit2 failed");
  }
  const uint8_t *src = in;
  size_t in_left = len;
  size_t have = 0;
  crpc_code code = CRPC_OK;
  for (;;) {
    if (have == cap) {
      /* Only reachable with max_out == SIZE_MAX: otherwise the output
       * passes max_out (checked below) before it can fill `limit`. */
      if (cap >= limit) {
        code = crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED,
                                   "decompressed message too large");
        break;
      }
      if (!grow(&buf, &cap, limit)) {
        code =
            crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED, "out of memory");
        break;
      }
    }
    size_t in_now = in_left < ZCHUNK ? in_left : ZCHUNK;
    size_t out_now = cap - have < ZCHUNK ? cap - have : ZCHUNK;
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)in_now;
    z.next_out = buf + have;
    z.avail_out = (uInt)out_now;
    int r = inflate(&z, Z_NO_FLUSH);
    src += in_now - z.avail_in;
    in_left -= in_now - z.avail_in;
    have += out_now - z.avail_out;
    if (have > max_out) {
      code = crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED,
                                 "received message after decompression "
                                 "larger than max (more than %lu)",
                                 (unsigned long)max_out);
      break;
    }
    if (r == Z_STREAM_END) {
      if (in_left == 0) break;
      /* Concatenated gzip members are one valid gzip file; anything else
       * after the end is garbage, which inflate will now reject. */
      if (e == CRPC_WIRE_ENCODING_GZIP && inflateReset(&z) == Z_OK) continue;
      code = crpc_wire_error_set(err, CRPC_INTERNAL,
                                 "trailing data after compressed message");
      break;
    }
    if (r == Z_OK) continue;
    if (r == Z_BUF_ERROR && z.avail_out == 0) continue;
    if (r == Z_MEM_ERROR) {
      code = crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (r == Z_BUF_ERROR) {
      code = crpc_wire_error_set(err, CRPC_INTERNAL,
                                 "truncated compressed message");
    } else {
      code = crpc_wire_error_set(err, CRPC_INTERNAL,
                                 "corrupt compressed message (%s)",
                                 z.msg != NULL ? z.msg : "zlib error");
    }
    break;
  }
  inflateEnd(&z);
  if (code != CRPC_OK) {
    free(buf);
    return code;
  }
  *out = buf;
  *out_len = have;
  return CRPC_OK;
}
