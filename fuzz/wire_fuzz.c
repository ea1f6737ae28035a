/*
 * fuzz/wire_fuzz.c - libFuzzer target: every codec of rpc/wire.
 *
 * The first input byte picks the codec (modulo the count below), the rest
 * is its input. Beyond "no crash, no leak, no UB", each case checks what
 * the codec's header promises, mostly as a round trip or against a
 * straightforward reference:
 *   FRAME       deframing in odd-sized chunks == a reference parse
 *   TIMEOUT     grpc-timeout accepted iff 1-8 digits + unit; encode/decode
 *   PERCENT     grpc-message decode, then encode/decode round trip
 *   BASE64      -bin decode, then encode/decode round trip
 *   DECOMPRESS  gzip/deflate/identity/unknown under a receive limit
 *   METADATA    received headers -> metadata -> headers -> same metadata
 *   STATUS      grpc-status, HTTP status, RST_STREAM mappings
 *   ENCODINGS   grpc-encoding / grpc-accept-encoding parse and format
 *   MESSAGES    deframe + compressed-flag check + decompress, as a call
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crpc/metadata.h"
#include "fuzz/fuzz_util.h"
#include "rpc/wire/base64.h"
#include "rpc/wire/compress.h"
#include "rpc/wire/frame.h"
#include "rpc/wire/metadata_wire.h"
#include "rpc/wire/percent.h"
#include "rpc/wire/status_map.h"
#include "rpc/wire/timeout.h"

enum {
  FRAME,
  TIMEOUT,
  PERCENT,
  BASE64,
  DECOMPRESS,
  METADATA,
  STATUS,
  ENCODINGS,
  MESSAGES,
  N_CASES
};

/* Reads a big-endian number of n (<= 4) bytes from *p, 0 past the end. */
static uint32_t take(const uint8_t **p, size_t *len, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; i++) {
    v <<= 8;
    if (*len > 0) {
      v |= **p;
      (*p)++;
      (*len)--;
    }
  }
  return v;
}

/* ---- FRAME ---------------------------------------------------------------*/

/* What a decoder run saw: message count, bytes, a checksum of contents. */
typedef struct frames {
  size_t n, bytes;
  uint32_t sum;
  bool error;
  crpc_code finish;
} frames;

static void add_message(frames *f, const crpc_wire_message *m) {
  f->n++;
  f->bytes += m->len;
  for (size_t i = 0; i < m->len; i++) f->sum = f->sum * 31 + m->data[i];
  f->sum = f->sum * 31 + (m->compressed ? 1 : 2);
}

/* The decoder fed in chunks of 1..`spread` bytes (0: all at once). */
static frames decode_chunked(const uint8_t *p, size_t len, size_t max,
                             unsigned spread) {
  frames f = {0};
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, max);
  size_t pos = 0;
  unsigned step = 0;
  while (pos < len && !f.error) {
    size_t n = spread ? 1 + (step++ * 7919u) % spread : len - pos;
    if (n > len - pos) n = len - pos;
    const uint8_t *q = p + pos;
    pos += n;
    while (n > 0) {
      size_t used = 0;
      crpc_wire_message m = {0};
      int r = crpc_wire_frame_decoder_feed(&d, q, n, &used, &m);
      FUZZ_CHECK(used <= n);
      q += used;
      n -= used;
      if (r == CRPC_WIRE_FRAME_ERROR) {
        FUZZ_CHECK(crpc_wire_frame_decoder_error(&d)->code != CRPC_OK);
        f.error = true;
        break;
      }
      if (r == CRPC_WIRE_FRAME_NEED_MORE) {
        FUZZ_CHECK(n == 0);
        break;
      }
      FUZZ_CHECK(r == CRPC_WIRE_FRAME_MESSAGE);
      FUZZ_CHECK(m.data != NULL && m.len <= max);
      add_message(&f, &m);
      free(m.data);
    }
  }
  f.finish = crpc_wire_frame_decoder_finish(&d);
  crpc_wire_frame_decoder_destroy(&d);
  return f;
}

/* The framing rules read straight off the spec, on the whole input. */
static frames decode_reference(const uint8_t *p, size_t len, size_t max) {
  frames f = {0};
  size_t pos = 0;
  while (pos < len) {
    /* A bad flag fails at once (frame.c checks it before the length). */
    if (p[pos] > 1) {
      f.error = true;
      return f;
    }
    if (len - pos < CRPC_WIRE_FRAME_PREFIX_LEN) break;
    uint32_t n = ((uint32_t)p[pos + 1] << 24) | ((uint32_t)p[pos + 2] << 16) |
                 ((uint32_t)p[pos + 3] << 8) | p[pos + 4];
    if (n > max) {
      f.error = true;
      return f;
    }
    if (n > len - pos - CRPC_WIRE_FRAME_PREFIX_LEN) break;
    crpc_wire_message m = {(uint8_t *)p + pos + CRPC_WIRE_FRAME_PREFIX_LEN, n,
                           p[pos] == 1};
    add_message(&f, &m);
    pos += CRPC_WIRE_FRAME_PREFIX_LEN + n;
  }
  f.finish = pos == len ? CRPC_OK : CRPC_INTERNAL;
  return f;
}

static void fuzz_frame(const uint8_t *p, size_t len) {
  size_t max = take(&p, &len, 2);
  unsigned spread = 1 + take(&p, &len, 1) % 16;
  frames ref = decode_reference(p, len, max);
  frames whole = decode_chunked(p, len, max, 0);
  frames chunked = decode_chunked(p, len, max, spread);
  FUZZ_CHECK(whole.error == ref.error && chunked.error == ref.error);
  if (!ref.error) {
    FUZZ_CHECK(whole.n == ref.n && whole.bytes == ref.bytes &&
               whole.sum == ref.sum && whole.finish == ref.finish);
    FUZZ_CHECK(chunked.n == ref.n && chunked.bytes == ref.bytes &&
               chunked.sum == ref.sum && chunked.finish == ref.finish);
  } else {
    FUZZ_CHECK(whole.finish != CRPC_OK && chunked.finish != CRPC_OK);
  }
}

/* ---- TIMEOUT -------------------------------------------------------------*/

static bool timeout_reference(const char *s, size_t len) {
  if (len < 2 || len > 9) return false;
  for (size_t i = 0; i + 1 < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return memchr("HMSmun", s[len - 1], 6) != NULL && s[len - 1] != '\0';
}

static void fuzz_timeout(const uint8_t *p, size_t len) {
  const char *s = (const char *)p;
  int64_t ns = -1;
  const char *reason = NULL;
  crpc_code rc = crpc_wire_timeout_decode(s, len, &ns, &reason);
  FUZZ_CHECK((rc == CRPC_OK) == timeout_reference(s, len));
  if (rc != CRPC_OK) {
    FUZZ_CHECK(rc == CRPC_INTERNAL && reason != NULL && ns == -1);
    return;
  }
  FUZZ_CHECK(ns >= 0);
  /* Encoding rounds up, never down; a second trip changes nothing. */
  char enc[CRPC_WIRE_TIMEOUT_BUF], enc2[CRPC_WIRE_TIMEOUT_BUF];
  size_t n = crpc_wire_timeout_encode(ns, enc);
  FUZZ_CHECK(n >= 2 && n <= 9 && strlen(enc) == n);
  int64_t back = -1;
  FUZZ_CHECK(crpc_wire_timeout_decode(enc, n, &back, NULL) == CRPC_OK);
  FUZZ_CHECK(back >= ns || (ns == 0 && back == 1));
  size_t n2 = crpc_wire_timeout_encode(back, enc2);
  FUZZ_CHECK(n2 == n && memcmp(enc, enc2, n) == 0);
}

/* ---- PERCENT -------------------------------------------------------------*/

static void fuzz_percent(const uint8_t *p, size_t len) {
  size_t dec_len = 0;
  char *dec = crpc_wire_percent_decode((const char *)p, len, &dec_len);
  FUZZ_CHECK(dec != NULL && dec_len <= len && dec[dec_len] == '\0');
  size_t enc_len = 0;
  char *enc = crpc_wire_percent_encode(dec, dec_len, &enc_len);
  FUZZ_CHECK(enc != NULL && enc[enc_len] == '\0');
  FUZZ_CHECK(enc_len == crpc_wire_percent_encoded_len(dec, dec_len));
  FUZZ_CHECK(crpc_wire_percent_needs_encoding(dec, dec_len) ==
             (enc_len != dec_len || memcmp(enc, dec, dec_len) != 0));
  for (size_t i = 0; i < enc_len; i++) {
    FUZZ_CHECK(enc[i] >= 0x20 && enc[i] <= 0x7e);
  }
  size_t back_len = 0;
  char *back = crpc_wire_percent_decode(enc, enc_len, &back_len);
  FUZZ_CHECK(back != NULL && back_len == dec_len &&
             memcmp(back, dec, dec_len) == 0);
  free(back);
  free(enc);
  free(dec);
}

/* ---- BASE64 --------------------------------------------------------------*/

static void fuzz_base64(const uint8_t *p, size_t len) {
  uint8_t *out = malloc(crpc_wire_base64_decoded_max(len) + 1);
  FUZZ_CHECK(out != NULL);
  size_t out_len = 0;
  if (crpc_wire_base64_decode((const char *)p, len, out, &out_len) == 0) {
    FUZZ_CHECK(out_len <= crpc_wire_base64_decoded_max(len));
    size_t elen = crpc_wire_base64_encoded_len(out_len);
    char *enc = malloc(elen + 1);
    FUZZ_CHECK(enc != NULL);
    FUZZ_CHECK(crpc_wire_base64_encode(out, out_len, enc) == elen);
    FUZZ_CHECK(enc[elen] == '\0' && elen <= len);
    uint8_t *back = malloc(crpc_wire_base64_decoded_max(elen) + 1);
    FUZZ_CHECK(back != NULL);
    size_t back_len = 0;
    FUZZ_CHECK(crpc_wire_base64_decode(enc, elen, back, &back_len) == 0);
    FUZZ_CHECK(back_len == out_len && memcmp(back, out, out_len) == 0);
    free(back);
    free(enc);
  }
  free(out);
}

/* ---- DECOMPRESS ----------------------------------------------------------*/

static crpc_wire_encoding pick_encoding(uint32_t b) {
  static const crpc_wire_encoding all[] = {
      CRPC_WIRE_ENCODING_IDENTITY, CRPC_WIRE_ENCODING_GZIP,
      CRPC_WIRE_ENCODING_DEFLATE, CRPC_WIRE_ENCODING_UNKNOWN};
  return all[b % 4];
}

/* Decompresses p under max; on success the output must compress and come
 * back unchanged. */
static void decompress_checked(crpc_wire_encoding e, const uint8_t *p,
                               size_t len, size_t max) {
  static uint8_t sentinel; /* *out must be NULL after an error */
  uint8_t *out = &sentinel;
  size_t out_len = 0;
  crpc_wire_error err = {0};
  crpc_code rc = crpc_wire_decompress(e, p, len, max, &out, &out_len, &err);
  if (rc != CRPC_OK) {
    FUZZ_CHECK(out == NULL && err.code == rc);
    FUZZ_CHECK(rc == CRPC_INTERNAL || rc == CRPC_RESOURCE_EXHAUSTED ||
               rc == CRPC_INVALID_ARGUMENT);
    FUZZ_CHECK((rc == CRPC_INVALID_ARGUMENT) ==
               (e == CRPC_WIRE_ENCODING_UNKNOWN));
    return;
  }
  FUZZ_CHECK(out != NULL && out_len <= max);
  uint8_t *comp = NULL, *back = NULL;
  size_t comp_len = 0, back_len = 0;
  FUZZ_CHECK(crpc_wire_compress(e, out, out_len, &comp, &comp_len, NULL) ==
             CRPC_OK);
  FUZZ_CHECK(crpc_wire_decompress(e, comp, comp_len, out_len, &back,
                                  &back_len, NULL) == CRPC_OK);
  FUZZ_CHECK(back_len == out_len && memcmp(back, out, out_len) == 0);
  free(back);
  free(comp);
  free(out);
}

static void fuzz_decompress(const uint8_t *p, size_t len) {
  crpc_wire_encoding e = pick_encoding(take(&p, &len, 1));
  /* Limits up to 1 MiB: a bomb stops at the limit, never beyond. */
  size_t max = take(&p, &len, 2) * (size_t)16;
  decompress_checked(e, p, len, max);
}

/* ---- METADATA ------------------------------------------------------------*/

/* Entries equal, in order. */
static bool same_metadata(const crpc_metadata *a, const crpc_metadata *b) {
  size_t n = crpc_metadata_count(a);
  if (crpc_metadata_count(b) != n) return false;
  for (size_t i = 0; i < n; i++) {
    crpc_metadata_entry x, y;
    crpc_metadata_at(a, i, &x);
    crpc_metadata_at(b, i, &y);
    if (strcmp(x.key, y.key) != 0 || x.value_len != y.value_len ||
        memcmp(x.value, y.value, x.value_len) != 0) {
      return false;
    }
  }
  return true;
}

/* Input: name NUL value NUL name NUL value ... (what HPACK would hand
 * over, any bytes). Whatever is kept must be valid metadata that can be
 * sent back and received again unchanged (metadata_wire.h). */
static void fuzz_metadata(const uint8_t *p, size_t len) {
  crpc_metadata *md = crpc_metadata_new();
  FUZZ_CHECK(md != NULL);
  const char *s = (const char *)p;
  const char *end = s + len;
  while (s < end) {
    const char *name = s;
    const char *nul = memchr(s, 0, (size_t)(end - s));
    size_t name_len = nul ? (size_t)(nul - s) : (size_t)(end - s);
    s = nul ? nul + 1 : end;
    const char *value = s;
    nul = memchr(s, 0, (size_t)(end - s));
    size_t value_len = nul ? (size_t)(nul - s) : (size_t)(end - s);
    s = nul ? nul + 1 : end;
    size_t before = crpc_metadata_count(md);
    crpc_wire_header_verdict v = crpc_wire_metadata_add_received(
        md, name, name_len, value, value_len);
    FUZZ_CHECK(v != CRPC_WIRE_HEADER_NO_MEMORY);
    FUZZ_CHECK((v == CRPC_WIRE_HEADER_ADDED) ==
               (crpc_metadata_count(md) > before));
  }
  /* user-agent is the one reserved key kept on receipt (for servers to
   * read); it can never be sent from metadata, so it leaves here. */
  crpc_metadata_remove(md, "user-agent");
  for (size_t i = 0; i < crpc_metadata_count(md); i++) {
    crpc_metadata_entry e;
    crpc_metadata_at(md, i, &e);
    FUZZ_CHECK(crpc_metadata_validate(e.key, e.value, e.value_len, NULL) ==
               CRPC_OK);
  }
  crpc_wire_headers h;
  crpc_wire_headers_init(&h);
  crpc_wire_error err = {0};
  FUZZ_CHECK(crpc_wire_headers_add_metadata(&h, md, &err) == CRPC_OK);
  size_t list = 0;
  crpc_metadata *back = crpc_metadata_new();
  FUZZ_CHECK(back != NULL);
  for (size_t i = 0; i < h.count; i++) {
    const crpc_wire_header *x = &h.items[i];
    list += x->name_len + x->value_len + 32;
    FUZZ_CHECK(crpc_wire_metadata_add_received(back, x->name, x->name_len,
                                               x->value, x->value_len) ==
               CRPC_WIRE_HEADER_ADDED);
  }
  FUZZ_CHECK(crpc_wire_headers_list_size(&h) == list);
  FUZZ_CHECK(same_metadata(md, back));
  crpc_metadata_free(back);
  crpc_wire_headers_destroy(&h);
  crpc_metadata_free(md);
}

/* ---- STATUS --------------------------------------------------------------*/

static void fuzz_status(const uint8_t *p, size_t len) {
  crpc_code code = CRPC_OK;
  int rc = crpc_wire_grpc_status_parse((const char *)p, len, &code);
  FUZZ_CHECK(rc == 0 || (rc == -1 && code == CRPC_INTERNAL));
  FUZZ_CHECK(code >= CRPC_OK && code <= CRPC_UNAUTHENTICATED);
  if (rc == 0 && code != CRPC_UNKNOWN) {
    /* A known code's string is exactly what was parsed. */
    const char *s = crpc_wire_grpc_status_string(code);
    FUZZ_CHECK(strlen(s) == len && memcmp(s, p, len) == 0);
  }
  const uint8_t *q = p;
  size_t n = len;
  uint32_t word = take(&q, &n, 4);
  crpc_code http = crpc_wire_status_from_http((int)(word & 0xffff));
  FUZZ_CHECK(http != CRPC_OK);
  bool said_ok = word & 1;
  uint32_t h2 = (word & 2) ? (word >> 2) & 0xf : word >> 2;
  crpc_code rst = crpc_wire_status_from_rst_stream(h2, said_ok);
  FUZZ_CHECK(rst != CRPC_OK || (h2 == CRPC_H2_NO_ERROR && said_ok));
  crpc_code any = (crpc_code)(word % 20);
  const char *s = crpc_wire_grpc_status_string(any);
  crpc_code back;
  FUZZ_CHECK(crpc_wire_grpc_status_parse(s, strlen(s), &back) == 0);
  FUZZ_CHECK(back == (any <= CRPC_UNAUTHENTICATED ? any : CRPC_UNKNOWN));
  FUZZ_CHECK(crpc_wire_rst_stream_for_status(any) <= CRPC_H2_HTTP_1_1_REQUIRED);
}

/* ---- ENCODINGS -----------------------------------------------------------*/

static void fuzz_encodings(const uint8_t *p, size_t len) {
  const char *s = (const char *)p;
  crpc_wire_encoding e = crpc_wire_encoding_parse(s, len);
  const char *name = crpc_wire_encoding_name(e);
  FUZZ_CHECK((name == NULL) == (e == CRPC_WIRE_ENCODING_UNKNOWN));
  if (name != NULL && len > 0) {
    FUZZ_CHECK(strlen(name) == len && memcmp(name, s, len) == 0);
  }
  crpc_wire_encoding_set set = crpc_wire_accept_encoding_parse(s, len);
  FUZZ_CHECK(set & CRPC_WIRE_ENCODING_BIT(CRPC_WIRE_ENCODING_IDENTITY));
  FUZZ_CHECK((set & ~CRPC_WIRE_ENCODINGS_ALL) == 0);
  char buf[64];
  size_t n = crpc_wire_accept_encoding_format(set, buf, sizeof buf);
  FUZZ_CHECK(n < sizeof buf && strlen(buf) == n);
  FUZZ_CHECK(crpc_wire_accept_encoding_parse(buf, n) == set);
  char tiny[4];
  FUZZ_CHECK(crpc_wire_accept_encoding_format(set, tiny, sizeof tiny) == n);
  FUZZ_CHECK(strlen(tiny) < sizeof tiny);
  for (int flag = 0; flag < 2; flag++) {
    for (int server = 0; server < 2; server++) {
      crpc_wire_error err = {0};
      crpc_code rc = crpc_wire_check_compressed_flag(flag, e, server, &err);
      bool ok = !flag || e == CRPC_WIRE_ENCODING_GZIP ||
                e == CRPC_WIRE_ENCODING_DEFLATE;
      FUZZ_CHECK((rc == CRPC_OK) == ok);
    }
  }
}

/* ---- MESSAGES ------------------------------------------------------------*/

/* What a call does with DATA: deframe, check the flag against the
 * stream's grpc-encoding, decompress under the receive limit. */
static void fuzz_messages(const uint8_t *p, size_t len) {
  crpc_wire_encoding e = pick_encoding(take(&p, &len, 1));
  size_t max = take(&p, &len, 2) * (size_t)4;
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, max);
  while (len > 0) {
    size_t used = 0;
    crpc_wire_message m = {0};
    int r = crpc_wire_frame_decoder_feed(&d, p, len, &used, &m);
    p += used;
    len -= used;
    if (r != CRPC_WIRE_FRAME_MESSAGE) break;
    if (crpc_wire_check_compressed_flag(m.compressed, e, true, NULL) ==
        CRPC_OK) {
      if (m.compressed) {
        decompress_checked(e, m.data, m.len, max);
      } else {
        FUZZ_CHECK(m.len <= max);
      }
    }
    free(m.data);
  }
  crpc_wire_frame_decoder_finish(&d);
  crpc_wire_frame_decoder_destroy(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const uint8_t *p = data + 1;
  size_t len = size - 1;
  switch (data[0] % N_CASES) {
    case FRAME: fuzz_frame(p, len); break;
    case TIMEOUT: fuzz_timeout(p, len); break;
    case PERCENT: fuzz_percent(p, len); break;
    case BASE64: fuzz_base64(p, len); break;
    case DECOMPRESS: fuzz_decompress(p, len); break;
    case METADATA: fuzz_metadata(p, len); break;
    case STATUS: fuzz_status(p, len); break;
    case ENCODINGS: fuzz_encodings(p, len); break;
    case MESSAGES: fuzz_messages(p, len); break;
  }
  return 0;
}
