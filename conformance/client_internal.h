/* conformance/client_internal.h - the test cases of crpc's interop client,
 * split by call shape (client_unary.c, client_streaming.c,
 * client_special.c). Each case returns true on success; on failure it
 * returns false with the failed check named in c->why. */
#ifndef CRPC_CONFORMANCE_CLIENT_INTERNAL_H
#define CRPC_CONFORMANCE_CLIENT_INTERNAL_H

#include <stdio.h>

#include "conformance/interop_common.h"

typedef struct interop_client {
  crpc_channel *ch;
  const crpc_ctx *ctx; /* the case's ctx: a deadline so nothing hangs */
  char why[1024];      /* the failed check, when a case returns false */
} interop_client;

/* Records why the case failed (printf-style) in c->why; returns false so
 * that a case can `return INTEROP_FAIL(c, ...)`. */
bool interop_fail(interop_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define INTEROP_FAIL(c, ...) interop_fail((c), __VA_ARGS__)

/* Names a received code in failure messages: "UNIMPLEMENTED: <message>". */
const char *interop_status_text(crpc_code code, const crpc_status *st,
                                char *buf, size_t cap);

bool interop_empty_unary(interop_client *c);
bool interop_large_unary(interop_client *c);
bool interop_client_compressed_unary(interop_client *c);
bool interop_server_compressed_unary(interop_client *c);
bool interop_status_code_and_message(interop_client *c);
bool interop_special_status_message(interop_client *c);
bool interop_unimplemented_method(interop_client *c);
bool interop_unimplemented_service(interop_client *c);

bool interop_client_streaming(interop_client *c);
bool interop_client_compressed_streaming(interop_client *c);
bool interop_server_streaming(interop_client *c);
bool interop_server_compressed_streaming(interop_client *c);
bool interop_ping_pong(interop_client *c);
bool interop_empty_stream(interop_client *c);

bool interop_timeout_on_sleeping_server(interop_client *c);
bool interop_cancel_after_begin(interop_client *c);
bool interop_cancel_after_first_response(interop_client *c);
bool interop_custom_metadata(interop_client *c);

#endif /* CRPC_CONFORMANCE_CLIENT_INTERNAL_H */
