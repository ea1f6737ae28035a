/* conformance/server_unary.c - EmptyCall and UnaryCall (blocking), and
 * what both handler styles share: Echo Metadata, Echo Status, the
 * compression checks, sending a message, and EmptyCall's and UnaryCall's
 * answers. */
#include <stdlib.h>
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

crpc_code interop_empty_reply(crpc_server_call *call,
                              interop_empty_send_fn send) {
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) return code;
  Grpc__Testing__Empty resp = GRPC__TESTING__EMPTY__INIT;
  return send(call, &resp);
}

crpc_code interop_empty_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const Grpc__Testing__Empty *req, void *ud) {
  (void)ctx, (void)req, (void)ud;
  return interop_empty_reply(call,
                             grpc_testing_test_service_empty_call_server_send);
}

crpc_code interop_check_compressed(crpc_server_call *call,
                                   const Grpc__Testing__BoolValue *expect,
                                   bool compressed) {
  if (expect == NULL || (bool)expect->value == compressed) return CRPC_OK;
  return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT, "%s",
                                compressed
                                    ? "did not expect a compressed request"
                                    : "expected a compressed request");
}

crpc_code interop_server_send(crpc_server_call *call,
                              const ProtobufCMessage *m, bool no_compress,
                              interop_send_fn send) {
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) {
    return crpc_server_call_error(call, CRPC_RESOURCE_EXHAUSTED, "no memory");
  }
  protobuf_c_message_pack(m, buf);
  crpc_code code = send(call, buf, len, no_compress ? CRPC_SEND_NO_COMPRESS : 0);
  free(buf);
  return code;
}

crpc_code interop_unary_reply(crpc_server_call *call, const crpc_message *msg,
                              interop_send_fn send) {
  Grpc__Testing__SimpleRequest *req =
      grpc__testing__simple_request__unpack(NULL, msg->len, msg->data);
  if (req == NULL) {
    return crpc_server_call_error(call, CRPC_INTERNAL,
                                  "cannot parse SimpleRequest");
  }
  /* CompressedRequest, then CompressedResponse (gzip, which every gRPC
   * client accepts; identity if this one does not). */
  crpc_code code =
      interop_check_compressed(call, req->expect_compressed, msg->compressed);
  bool compress = req->response_compressed && req->response_compressed->value;
  if (code == CRPC_OK && compress) {
    code = crpc_server_call_set_compression(call, "gzip");
  }
  if (code == CRPC_OK) code = interop_echo_status(call, req->response_status);
  if (code == CRPC_OK &&
      req->response_type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE) {
    code = crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "unsupported response_type %d",
                                  (int)req->response_type);
  }
  if (code == CRPC_OK && req->response_size < 0) {
    code = crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "negative response_size %d",
                                  (int)req->response_size);
  }
  Grpc__Testing__Payload payload;
  if (code == CRPC_OK &&
      !interop_payload_init(&payload, (size_t)req->response_size)) {
    code = crpc_server_call_error(call, CRPC_RESOURCE_EXHAUSTED, "no memory");
  } else if (code == CRPC_OK) {
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    resp.payload = &payload;
    code = interop_server_send(call, &resp.base, !compress, send);
    interop_payload_free(&payload);
  }
  protobuf_c_message_free_unpacked(&req->base, NULL);
  return code;
}

crpc_code interop_unary_call(crpc_server_call *call, const crpc_ctx *ctx,
                             void *ud) {
  (void)ctx, (void)ud;
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) return code;
  crpc_message msg = {0};
  code = crpc_server_call_recv(call, &msg);
  if (code != CRPC_OK) return code;
  if (msg.end) {
    return crpc_server_call_error(call, CRPC_INTERNAL, "missing request");
  }
  code = interop_unary_reply(call, &msg, crpc_server_call_send_flags);
  free(msg.data);
  return code;
}
