/* conformance/server_streaming.c - StreamingInputCall, StreamingOutputCall,
 * FullDuplexCall and HalfDuplexCall of crpc's interop server (blocking), and
 * the steps of answering a StreamingOutputCallRequest that the async
 * handlers (server_async_streaming.c) share. */
#include <stdlib.h>

#include "conformance/server_internal.h"

crpc_code interop_output_begin(
    crpc_server_call *call,
    const Grpc__Testing__StreamingOutputCallRequest *req) {
  crpc_code code = interop_echo_status(call, req->response_status);
  if (code != CRPC_OK) return code;
  if (req->response_type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE) {
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "unsupported response_type %d",
                                  (int)req->response_type);
  }
  /* CompressedResponse: if any response asks to be compressed the call
   * compresses with gzip (possible only before the call's first response;
   * later it stays as it is), and the others go with
   * CRPC_SEND_NO_COMPRESS. */
  for (size_t i = 0; i < req->n_response_parameters; i++) {
    const Grpc__Testing__ResponseParameters *p = req->response_parameters[i];
    if (p->compressed != NULL && p->compressed->value) {
      (void)crpc_server_call_set_compression(call, "gzip");
    }
  }
  return CRPC_OK;
}

crpc_code interop_output_check(crpc_server_call *call,
                               const Grpc__Testing__ResponseParameters *p) {
  if (p->size >= 0) return CRPC_OK;
  return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                "negative size %d", (int)p->size);
}

crpc_code interop_output_send(crpc_server_call *call,
                              const Grpc__Testing__ResponseParameters *p,
                              interop_send_fn send) {
  bool compress = p->compressed != NULL && p->compressed->value;
  Grpc__Testing__Payload payload;
  if (!interop_payload_init(&payload, (size_t)p->size)) {
    return crpc_server_call_error(call, CRPC_RESOURCE_EXHAUSTED, "no memory");
  }
  Grpc__Testing__StreamingOutputCallResponse resp =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
  resp.payload = &payload;
  crpc_code code = interop_server_send(call, &resp.base, !compress, send);
  interop_payload_free(&payload);
  return code;
}

/* Answers one request: Echo Status and the checks, then one response per
 * ResponseParameters, each after its interval_us. The sleep is ctx-aware,
 * so a cancelled or expired call ends at once. */
static crpc_code send_responses(
    crpc_server_call *call, const crpc_ctx *ctx,
    const Grpc__Testing__StreamingOutputCallRequest *req) {
  crpc_code code = interop_output_begin(call, req);
  for (size_t i = 0; code == CRPC_OK && i < req->n_response_parameters; i++) {
    const Grpc__Testing__ResponseParameters *p = req->response_parameters[i];
    code = interop_output_check(call, p);
    if (code == CRPC_OK && p->interval_us > 0) {
      code = crpc_ctx_sleep(ctx, (int64_t)p->interval_us * CRPC_MICROSECOND);
    }
    if (code == CRPC_OK) {
      code = interop_output_send(call, p, crpc_server_call_send_flags);
    }
  }
  return code;
}

crpc_code interop_streaming_output_call(
    crpc_server_call *call, const crpc_ctx *ctx,
    const Grpc__Testing__StreamingOutputCallRequest *req, void *ud) {
  (void)ud;
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) return code;
  return send_responses(call, ctx, req);
}

crpc_code interop_streaming_input_take(crpc_server_call *call,
                                       const crpc_message *msg,
                                       int64_t *total) {
  Grpc__Testing__StreamingInputCallRequest *req =
      grpc__testing__streaming_input_call_request__unpack(NULL, msg->len,
                                                           msg->data);
  if (req == NULL) {
    return crpc_server_call_error(call, CRPC_INTERNAL,
                                  "cannot parse StreamingInputCallRequest");
  }
  if (req->payload != NULL) *total += (int64_t)req->payload->body.len;
  crpc_code code =
      interop_check_compressed(call, req->expect_compressed, msg->compressed);
  protobuf_c_message_free_unpacked(&req->base, NULL);
  return code;
}

crpc_code interop_streaming_input_call(crpc_server_call *call,
                                       const crpc_ctx *ctx, void *ud) {
  (void)ctx, (void)ud;
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) return code;
  int64_t total = 0;
  for (;;) {
    /* Received by hand (not with the generated recv) for CompressedRequest:
     * each message's compressed flag. */
    crpc_message msg = {0};
    code = crpc_server_call_recv(call, &msg);
    if (code != CRPC_OK) return code;
    if (msg.end) break;
    code = interop_streaming_input_take(call, &msg, &total);
    free(msg.data);
    if (code != CRPC_OK) return code;
  }
  Grpc__Testing__StreamingInputCallResponse resp =
      GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
  resp.aggregated_payload_size = (int32_t)total;
  return grpc_testing_test_service_streaming_input_call_server_send(call,
                                                                    &resp);
}

crpc_code interop_full_duplex_call(crpc_server_call *call, const crpc_ctx *ctx,
                                   void *ud) {
  (void)ud;
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) return code;
  for (;;) {
    Grpc__Testing__StreamingOutputCallRequest *req = NULL;
    code = grpc_testing_test_service_full_duplex_call_server_recv(call, &req);
    if (code != CRPC_OK || req == NULL) return code;
    /* Echo Status ends the stream: later requests are not processed. */
    code = send_responses(call, ctx, req);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    if (code != CRPC_OK) return code;
  }
}

/* HalfDuplexCall: buffer every request until the half-close, then answer
 * them in order. */
crpc_code interop_half_duplex_call(crpc_server_call *call, const crpc_ctx *ctx,
                                   void *ud) {
  (void)ud;
  crpc_code code = interop_echo_metadata(call);
  Grpc__Testing__StreamingOutputCallRequest **reqs = NULL;
  size_t n = 0;
  while (code == CRPC_OK) {
    Grpc__Testing__StreamingOutputCallRequest *req = NULL;
    code = grpc_testing_test_service_half_duplex_call_server_recv(call, &req);
    if (code != CRPC_OK || req == NULL) break;
    void *grown = realloc(reqs, (n + 1) * sizeof(*reqs));
    if (grown == NULL) {
      protobuf_c_message_free_unpacked(&req->base, NULL);
      code = crpc_server_call_error(call, CRPC_RESOURCE_EXHAUSTED, "no memory");
      break;
    }
    reqs = grown;
    reqs[n++] = req;
  }
  for (size_t i = 0; i < n; i++) {
    if (code == CRPC_OK) code = send_responses(call, ctx, reqs[i]);
    protobuf_c_message_free_unpacked(&reqs[i]->base, NULL);
  }
  free(reqs);
  return code;
}
