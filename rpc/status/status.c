#include "crpc/status.h"

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

static const char *const origin_names[] = {
    "none",     "local",    "deadline", "peer reset", "connection lost",
    "shutdown", "admin",
};

const char *crpc_code_name(crpc_code code) {
  unsigned i = (unsigned)code;
  if (i >= sizeof(code_names) / sizeof(code_names[0])) return "INVALID_CODE";
  return code_names[i];
}

const char *crpc_origin_name(crpc_origin origin) {
  unsigned i = (unsigned)origin;
  if (i >= sizeof(origin_names) / sizeof(origin_names[0])) return "invalid";
  return origin_names[i];
}
