/*
 * conformance/interop_common.h - what crpc's interop server and client share:
 * zero-filled payloads, flag parsing, and the runtime-gap messages.
 */
#ifndef CRPC_CONFORMANCE_INTEROP_COMMON_H
#define CRPC_CONFORMANCE_INTEROP_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "grpc/testing/empty.pb-c.h"
#include "grpc/testing/messages.pb-c.h"
#include "grpc/testing/test.crpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The metadata keys of the interop "Echo Metadata" feature. */
#define INTEROP_ECHO_INITIAL "x-grpc-test-echo-initial"
#define INTEROP_ECHO_TRAILING "x-grpc-test-echo-trailing-bin"

/* UnaryCall's path: the compression cases make it step by step (client)
 * and serve it without the generated stub (server) to see and choose each
 * message's compressed flag. */
#define INTEROP_UNARY_CALL_PATH "/grpc.testing.TestService/UnaryCall"

/* Points payload->body at a zeroed malloc'd buffer of `size` bytes (never
 * NULL, so size 0 is fine). false if out of memory. Free with
 * interop_payload_free. */
bool interop_payload_init(Grpc__Testing__Payload *payload, size_t size);
void interop_payload_free(Grpc__Testing__Payload *payload);

/* True if every byte of body is zero (the interop payloads are zeros). */
bool interop_body_is_zero(const ProtobufCBinaryData *body);

/* Flag parsing in the interop runners' style: "--name=value" (also
 * "--name value" and a bare "--name" for booleans). */
typedef struct interop_flag {
  const char *name;   /* without the leading "--" */
  const char **value; /* set to the argument's value (borrowed from argv) */
} interop_flag;

/* Parses argv against flags; unknown flags or "--help" print usage and return
 * false. */
bool interop_parse_flags(int argc, char **argv, const interop_flag *flags,
                         size_t n, const char *usage);

/* "true"/"1"/"yes" (any case) -> true; NULL, "", "false", ... -> false. */
bool interop_flag_true(const char *value);

/* gRPC's interop runners hand TLS binaries no certificate flags: each gRPC
 * implementation loads its bundled test credentials (ca.pem, server1.pem,
 * server1.key from gRPC's src/core/tsi/test_creds). So that crpc drops into
 * those runners unchanged, the binaries look for that directory where the
 * runners have it: relative to the working directory (a gRPC checkout's
 * root) and in gRPC's interop Docker images (/var/local/git/grpc). Writes
 * the first readable path to `name` in those directories into path (cap
 * bytes) and returns it, or returns NULL if there is none. */
const char *interop_find_test_cred(const char *name, char *path, size_t cap);

/* The directories interop_find_test_cred searches, for error messages. */
#define INTEROP_TEST_CREDS_DIRS \
  "src/core/tsi/test_creds, /var/local/git/grpc/src/core/tsi/test_creds"

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CONFORMANCE_INTEROP_COMMON_H */
