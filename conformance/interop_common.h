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

/* Message compression is not in crpc's public API yet (rpc/wire/compress.h
 * has the codec; channel.h/server.h have no way to ask for a compressed send
 * or to see a received message's compressed flag). Every case that needs it
 * fails with one of these, so the matrix names the gap instead of hiding it. */
#define INTEROP_GAP_SEND_COMPRESSED                                        \
  "not supported by runtime: no API to send a compressed message (needs a " \
  "per-call grpc-encoding and a per-message compress/no-compress choice)"
#define INTEROP_GAP_SEE_COMPRESSED                                      \
  "not supported by runtime: crpc_message does not report whether the " \
  "received message had the compressed flag set"

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

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CONFORMANCE_INTEROP_COMMON_H */
