#include "rpc/wire/timeout.h"

#include <stdbool.h>

#define MAX_VALUE 99999999 /* 8 digits */

/* Finest first, so the encoder keeps as much precision as fits. */
static const struct {
  char unit;
  int64_t ns;
} units[] = {
    {'n', 1},
    {'u', 1000},
    {'m', 1000000},
    {'S', 1000000000},
    {'M', INT64_C(60) * 1000000000},
    {'H', INT64_C(3600) * 1000000000},
};

#define NUNITS (sizeof(units) / sizeof(units[0]))

size_t crpc_wire_timeout_encode(int64_t ns, char out[CRPC_WIRE_TIMEOUT_BUF]) {
  if (ns <= 0) ns = 1;
  int64_t value = 0;
  char unit = 'H';
  for (size_t i = 0; i < NUNITS; i++) {
    /* Round up without computing ns + unit - 1, which could overflow. */
    value = ns / units[i].ns + (ns % units[i].ns != 0);
    unit = units[i].unit;
    if (value <= MAX_VALUE) break;
  }
  /* INT64_MAX ns is ~2.6 million hours, so the loop always ends in range. */
  char digits[8];
  size_t n = 0;
  do {
    digits[n++] = (char)('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < sizeof(digits));
  size_t len = 0;
  while (n > 0) out[len++] = digits[--n];
  out[len++] = unit;
  out[len] = '\0';
  return len;
}

static bool unit_ns(char c, int64_t *ns) {
  for (size_t i = 0; i < NUNITS; i++) {
    if (units[i].unit == c) {
      *ns = units[i].ns;
      return true;
    }
  }
  return false;
}

static crpc_code bad(const char **reason, const char *why) {
  if (reason != NULL) *reason = why;
  return CRPC_INTERNAL;
}

crpc_code crpc_wire_timeout_decode(const char *s, size_t len, int64_t *ns,
                                   const char **reason) {
  if (s == NULL || len == 0) return bad(reason, "grpc-timeout is empty");
  if (len < 2) {
    if (s[0] >= '0' && s[0] <= '9')
      return bad(reason, "grpc-timeout has no unit");
    return bad(reason, "grpc-timeout has no digits");
  }
  size_t ndigits = len - 1;
  int64_t value = 0;
  for (size_t i = 0; i < ndigits; i++) {
    if (s[i] < '0' || s[i] > '9') {
      return bad(reason, "grpc-timeout value is not 1-8 ASCII digits + unit");
    }
    value = value * 10 + (s[i] - '0');
    /* Checked inside the loop so a long digit string never overflows. */
    if (i + 1 > 8) return bad(reason, "grpc-timeout has more than 8 digits");
  }
  int64_t per;
  if (!unit_ns(s[len - 1], &per)) {
    if (s[len - 1] >= '0' && s[len - 1] <= '9') {
      return bad(reason, "grpc-timeout has no unit");
    }
    return bad(reason, "grpc-timeout unit is not one of H M S m u n");
  }
  *ns = value > INT64_MAX / per ? INT64_MAX : value * per;
  return CRPC_OK;
}
