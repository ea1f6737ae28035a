#include "rpc/wire/status_map.h"

static const char *const status_strings[] = {
    "0", "1",  "2",  "3",  "4",  "5",  "6",  "7",  "8",
    "9", "10", "11", "12", "13", "14", "15", "16",
};

#define NCODES (sizeof(status_strings) / sizeof(status_strings[0]))

int crpc_wire_grpc_status_parse(const char *s, size_t len, crpc_code *code) {
  *code = CRPC_INTERNAL;
  if (s == NULL || len == 0) return -1;
  if (s[0] == '0' && len > 1) return -1; /* leading zero */
  unsigned value = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    /* Stop accumulating once it is clearly not a known code, so a long
     * digit string cannot overflow; keep scanning to validate the rest. */
    if (value < NCODES) value = value * 10 + (unsigned)(s[i] - '0');
  }
  *code = value < NCODES ? (crpc_code)value : CRPC_UNKNOWN;
  return 0;
}

const char *crpc_wire_grpc_status_string(crpc_code code) {
  unsigned i = (unsigned)code;
  if (i >= NCODES) return status_strings[CRPC_UNKNOWN];
  return status_strings[i];
}

crpc_code crpc_wire_status_from_http(int http_status) {
  switch (http_status) {
    case 400:
    case 431:
      return CRPC_INTERNAL;
    case 401:
      return CRPC_UNAUTHENTICATED;
    case 403:
      return CRPC_PERMISSION_DENIED;
    case 404:
      return CRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return CRPC_UNAVAILABLE;
    default:
      return CRPC_UNKNOWN;
  }
}

crpc_code crpc_wire_status_from_rst_stream(uint32_t h2_error,
                                           bool trailers_said_ok) {
  switch (h2_error) {
    case CRPC_H2_NO_ERROR:
      return trailers_said_ok ? CRPC_OK : CRPC_INTERNAL;
    case CRPC_H2_REFUSED_STREAM:
      return CRPC_UNAVAILABLE;
    case CRPC_H2_CANCEL:
      return CRPC_CANCELLED;
    case CRPC_H2_ENHANCE_YOUR_CALM:
      return CRPC_RESOURCE_EXHAUSTED;
    case CRPC_H2_INADEQUATE_SECURITY:
      return CRPC_PERMISSION_DENIED;
    default:
      return CRPC_INTERNAL;
  }
}

uint32_t crpc_wire_rst_stream_for_status(crpc_code code) {
  switch (code) {
    case CRPC_OK:
      return CRPC_H2_NO_ERROR;
    case CRPC_CANCELLED:
    case CRPC_DEADLINE_EXCEEDED:
      return CRPC_H2_CANCEL;
    case CRPC_RESOURCE_EXHAUSTED:
      return CRPC_H2_ENHANCE_YOUR_CALM;
    case CRPC_PERMISSION_DENIED:
      return CRPC_H2_INADEQUATE_SECURITY;
    case CRPC_UNAVAILABLE:
      return CRPC_H2_REFUSED_STREAM;
    default:
      return CRPC_H2_INTERNAL_ERROR;
  }
}
