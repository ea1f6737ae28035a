/*
 * traceparent.c - the W3C Trace Context header rules (see tracing.h):
 * traceparent parsing, tracestate joining and cutting, random ids.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "interceptors/internal/trace_internal.h"
#include "interceptors/tracing.h"

/* Longer tracestate entries go first when the whole is too long. */
#define TRACESTATE_ENTRY_MAX 128

static int lchex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static bool all_lchex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (lchex(s[i]) < 0) return false;
  }
  return true;
}

bool icpt_trace_is_w3c_id(const char *s, size_t len) {
  if (len == 0 || !all_lchex(s, len)) return false;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '0') return true;
  }
  return false; /* all zeros: invalid */
}

/* Layout shared by every version: vv-<32>-<16>-ff at fixed offsets. */
#define TP_TRACE 3
#define TP_PARENT 36
#define TP_FLAGS 53

bool crpc_traceparent_parse(const char *v, size_t len, crpc_traceparent *out) {
  if (v == NULL || len < 3) return false;
  int hi = lchex(v[0]), lo = lchex(v[1]);
  if (hi < 0 || lo < 0 || v[2] != '-') return false; /* cannot parse */
  int version = hi * 16 + lo;
  if (version == 0xff) return false;
  if (version == 0) {
    if (len != CRPC_TRACEPARENT_LEN) return false;
  } else {
    /* A later version: its first fields are version 00's; after the
     * flags comes the end or a '-' and fields this version cannot read. */
    if (len < CRPC_TRACEPARENT_LEN) return false;
    if (len > CRPC_TRACEPARENT_LEN && v[CRPC_TRACEPARENT_LEN] != '-') {
      return false;
    }
  }
  if (v[TP_PARENT - 1] != '-' || v[TP_FLAGS - 1] != '-') return false;
  if (!icpt_trace_is_w3c_id(v + TP_TRACE, 32)) return false;
  if (!icpt_trace_is_w3c_id(v + TP_PARENT, 16)) return false;
  int f1 = lchex(v[TP_FLAGS]), f2 = lchex(v[TP_FLAGS + 1]);
  if (f1 < 0 || f2 < 0) return false;
  out->version = (uint8_t)version;
  memcpy(out->trace_id, v + TP_TRACE, 32);
  out->trace_id[32] = '\0';
  memcpy(out->parent_id, v + TP_PARENT, 16);
  out->parent_id[16] = '\0';
  out->flags = (uint8_t)(f1 * 16 + f2);
  return true;
}

/* splitmix64: only when getrandom fails. */
static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void fallback_random(uint8_t *b, size_t n) {
  static _Atomic uint64_t counter;
  uint64_t seed = (uint64_t)crpc_now_ns() ^ ((uint64_t)(uintptr_t)b << 16) ^
                  atomic_fetch_add(&counter, 1) * 0x2545f4914f6cdd1dull;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t r = mix64(seed + i);
    size_t k = n - i < 8 ? n - i : 8;
    memcpy(b + i, &r, k);
  }
}

void icpt_trace_random_hex(char *out, size_t n) {
  static const char digits[] = "0123456789abcdef";
  uint8_t b[32];
  if (n > sizeof(b)) n = sizeof(b);
  for (int tries = 0;; tries++) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = getrandom(b + got, n - got, 0);
      if (r <= 0) break;
      got += (size_t)r;
    }
    if (got < n) fallback_random(b, n);
    bool zero = true;
    for (size_t i = 0; i < n; i++) zero = zero && b[i] == 0;
    if (!zero) break;
    if (tries == 3) {
      b[n - 1] = 1; /* not all zeros, whatever happens */
      break;
    }
  }
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

typedef struct span {
  size_t at, len; /* an entry without its surrounding whitespace */
} span;

/* Cuts s (n > CRPC_TRACESTATE_MAX) to whole entries; writes the result
 * into out (capacity n + 1). Returns its length. */
static size_t cut_entries(const char *s, size_t n, char *out) {
  size_t count = 1;
  for (size_t i = 0; i < n; i++) count += s[i] == ',';
  span *e = malloc(count * sizeof(*e));
  if (e == NULL) return 0;
  size_t k = 0, start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && s[i] != ',') continue;
    size_t a = start, b = i;
    while (a < b && is_ows(s[a])) a++;
    while (b > a && is_ows(s[b - 1])) b--;
    /* Empty members are allowed but carry nothing: not kept. */
    if (b > a) e[k++] = (span){a, b - a};
    start = i + 1;
  }
  /* Kept length: the entries plus a ',' between each two. */
  size_t sum = 0, kept = k;
  for (size_t i = 0; i < k; i++) sum += e[i].len;
#define TOTAL (kept > 0 ? sum + kept - 1 : 0)
  /* Entries over 128 chars first, from the end, then any from the end. */
  for (size_t i = k; i-- > 0 && TOTAL > CRPC_TRACESTATE_MAX;) {
    if (e[i].len > TRACESTATE_ENTRY_MAX) {
      sum -= e[i].len;
      kept--;
      e[i].len = 0;
    }
  }
  for (size_t i = k; i-- > 0 && TOTAL > CRPC_TRACESTATE_MAX;) {
    if (e[i].len != 0) {
      sum -= e[i].len;
      kept--;
      e[i].len = 0;
    }
  }
#undef TOTAL
  size_t w = 0;
  for (size_t i = 0; i < k; i++) {
    if (e[i].len == 0) continue;
    if (w > 0) out[w++] = ',';
    memcpy(out + w, s + e[i].at, e[i].len);
    w += e[i].len;
  }
  out[w] = '\0';
  free(e);
  return w;
}

char *icpt_tracestate_norm(const char *s, size_t n) {
  bool content = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    /* Metadata values are 0x20-0x7E: a tab (OWS to the spec) could not
     * be sent on, so such a tracestate is dropped whole. */
    if (c < 0x20 || c > 0x7e) return NULL;
    if (c != ',' && !is_ows((char)c)) content = true;
  }
  if (!content) return NULL; /* empty: accepted, not sent on */
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  if (n <= CRPC_TRACESTATE_MAX) {
    memcpy(out, s, n); /* unchanged */
    out[n] = '\0';
    return out;
  }
  if (cut_entries(s, n, out) == 0) {
    free(out);
    return NULL;
  }
  return out;
}

char *icpt_tracestate_from_md(const crpc_metadata *md) {
  size_t n = crpc_metadata_get_all(md, CRPC_TRACESTATE_HEADER, NULL, 0);
  if (n == 0) return NULL;
  crpc_metadata_entry one, *all = &one;
  if (n > 1) {
    all = malloc(n * sizeof(*all));
    if (all == NULL) return NULL;
  }
  crpc_metadata_get_all(md, CRPC_TRACESTATE_HEADER, all, n);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) len += all[i].value_len + (i > 0);
  char *joined = malloc(len + 1), *out = NULL;
  if (joined != NULL) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
      if (i > 0) joined[w++] = ',';
      memcpy(joined + w, all[i].value, all[i].value_len);
      w += all[i].value_len;
    }
    joined[w] = '\0';
    out = icpt_tracestate_norm(joined, w);
    free(joined);
  }
  if (all != &one) free(all);
  return out;
}
