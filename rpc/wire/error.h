/*
 * rpc/wire/error.h - the error value the wire layer hands back.
 *
 * A wire error is what the call layer turns into a call status: a gRPC code
 * plus a short English message that names the offending numbers, so a
 * status such as "received message larger than max (5000 vs. 4096)" reaches
 * the user without the caller formatting anything.
 */
#ifndef CRPC_WIRE_ERROR_H
#define CRPC_WIRE_ERROR_H

#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longer messages are truncated, never rejected. */
#define CRPC_WIRE_ERROR_MAX 128

typedef struct crpc_wire_error {
  crpc_code code;                    /* CRPC_OK when there is no error */
  char message[CRPC_WIRE_ERROR_MAX]; /* NUL-terminated, may be empty */
} crpc_wire_error;

/* Sets *err (if err is non-NULL) to code and a printf-formatted message;
 * returns code so callers can `return crpc_wire_error_set(...)`. */
crpc_code crpc_wire_error_set(crpc_wire_error *err, crpc_code code,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_ERROR_H */
