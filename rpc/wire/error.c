#include "rpc/wire/error.h"

#include <stdarg.h>
#include <stdio.h>

crpc_code crpc_wire_error_set(crpc_wire_error *err, crpc_code code,
                              const char *fmt, ...) {
  if (err == NULL) return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return code;
}
