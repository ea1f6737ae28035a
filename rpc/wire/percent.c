#include "rpc/wire/percent.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool must_escape(uint8_t c) { return c < 0x20 || c > 0x7E || c == '%'; }

bool crpc_wire_percent_needs_encoding(const void *in, size_t len) {
  const uint8_t *p = in;
  for (size_t i = 0; i < len; i++) {
    if (must_escape(p[i])) return true;
  }
  return false;
}

size_t crpc_wire_percent_encoded_len(const void *in, size_t len) {
  const uint8_t *p = in;
  size_t n = len;
  for (size_t i = 0; i < len; i++) {
    if (must_escape(p[i])) n += 2;
  }
  return n;
}

char *crpc_wire_percent_encode(const void *in, size_t len, size_t *out_len) {
  static const char hex[] = "0123456789ABCDEF";
  const uint8_t *p = in;
  size_t n = crpc_wire_percent_encoded_len(in, len);
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (must_escape(p[i])) {
      out[o++] = '%';
      out[o++] = hex[p[i] >> 4];
      out[o++] = hex[p[i] & 0xF];
    } else {
      out[o++] = (char)p[i];
    }
  }
  out[o] = '\0';
  if (out_len != NULL) *out_len = o;
  return out;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

char *crpc_wire_percent_decode(const char *in, size_t len, size_t *out_len) {
  /* Decoding never lengthens, so len + 1 always suffices. */
  char *out = malloc(len + 1);
  if (out == NULL) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (in[i] == '%' && i + 2 < len) {
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
        continue;
      }
    }
    out[o++] = in[i];
  }
  out[o] = '\0';
  if (out_len != NULL) *out_len = o;
  return out;
}
