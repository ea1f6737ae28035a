#include "rpc/wire/base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t crpc_wire_base64_encoded_len(size_t n) {
  return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

size_t crpc_wire_base64_encode(const void *in, size_t n, char *out) {
  const uint8_t *p = in;
  size_t o = 0;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = alphabet[v >> 6 & 63];
    out[o++] = alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = alphabet[v >> 6 & 63];
  }
  out[o] = '\0';
  return o;
}

size_t crpc_wire_base64_decoded_max(size_t n) { return n / 4 * 3 + 2; }

static int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int crpc_wire_base64_decode(const char *in, size_t n, uint8_t *out,
                            size_t *out_len) {
  /* Padding is only legal as the tail of a whole 4-character group. */
  if (n % 4 == 0 && n > 0) {
    if (in[n - 1] == '=') n--;
    if (in[n - 1] == '=') n--;
  }
  if (n % 4 == 1) return -1;
  size_t o = 0;
  uint32_t acc = 0;
  size_t bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = sextet(in[i]);
    if (v < 0) return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  *out_len = o;
  return 0;
}
