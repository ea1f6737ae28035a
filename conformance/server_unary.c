/* conformance/server_unary.c - EmptyCall and UnaryCall, and the server
 * features every shape shares (Echo Metadata, Echo Status). */
#include <string.h>

#include "conformance/server_internal.h"

crpc_code interop_echo_metadata(crpc_server_call *call) {
  const crpc_metadata *in = crpc_server_call_request_metadata(call);
  crpc_metadata_entry e;
  crpc_code code = CRPC_OK;
  if (crpc_metadata_get(in, INTEROP_ECHO_INITIAL, &e)) {
    code = crpc_metadata_add(crpc_server_call_response_headers(call), e.key,
                             e.value, e.value_len);
  }
  if (code == CRPC_OK && crpc_metadata_get(in, INTEROP_ECHO_TRAILING, &e)) {
    code = crpc_metadata_add(crpc_server_call_trailers(call), e.key, e.value,
                             e.value_len);
  }
  if (code != CRPC_OK) {
    return crpc_server_call_error(call, CRPC_INTERNAL, "echo metadata: %s",
                                  crpc_code_name(code));
  }
  return CRPC_OK;
}

crpc_code interop_echo_status(crpc_server_call *call,
                              const Grpc__Testing__EchoStatus *st) {
  if (st == NULL || st->code == 0) return CRPC_OK;
  /* "%s" so that a message with '%' in it goes out verbatim. */
  return crpc_server_call_error(call, (crpc_code)st->code, "%s",
                                st->message ? st->message : "");
}

crpc_code interop_empty_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const Grpc__Testing__Empty *req, void *ud) {
  (void)ctx, (void)req, (void)ud;
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) return code;
  Grpc__Testing__Empty resp = GRPC__TESTING__EMPTY__INIT;
  return grpc_testing_test_service_empty_call_server_send(call, &resp);
}

crpc_code interop_unary_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const Grpc__Testing__SimpleRequest *req,
                             void *ud) {
  (void)ctx, (void)ud;
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) return code;
  /* CompressedRequest: the server must check the request's compressed flag,
   * and crpc does not expose it. Failing loudly (not INVALID_ARGUMENT, which
   * a client would read as "server checked and it was uncompressed") keeps
   * the probe honest. */
  if (req->expect_compressed != NULL && req->expect_compressed->value) {
    return crpc_server_call_error(call, CRPC_UNIMPLEMENTED, "%s",
                                  INTEROP_GAP_SEE_COMPRESSED);
  }
  if (req->response_compressed != NULL && req->response_compressed->value) {
    return crpc_server_call_error(call, CRPC_UNIMPLEMENTED, "%s",
                                  INTEROP_GAP_SEND_COMPRESSED);
  }
  code = interop_echo_status(call, req->response_status);
  if (code != CRPC_OK) return code;
  if (req->response_type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE) {
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "unsupported response_type %d",
                                  (int)req->response_type);
  }
  if (req->response_size < 0) {
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "negative response_size %d",
                                  (int)req->response_size);
  }
  Grpc__Testing__Payload payload;
  if (!interop_payload_init(&payload, (size_t)req->response_size)) {
    return crpc_server_call_error(call, CRPC_RESOURCE_EXHAUSTED, "no memory");
  }
  Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
  resp.payload = &payload;
  code = grpc_testing_test_service_unary_call_server_send(call, &resp);
  interop_payload_free(&payload);
  return code;
}
