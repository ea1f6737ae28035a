/* conformance/client_streaming.c - the interop cases on client-, server- and
 * bidi-streaming calls. */
#include <stdlib.h>
#include <string.h>

#include "conformance/client_internal.h"

/* The generated receive of StreamingOutputCall or FullDuplexCall (both
 * stream StreamingOutputCallResponse). */
typedef crpc_code (*recv_fn)(crpc_call *,
                             Grpc__Testing__StreamingOutputCallResponse **);

/* Reads one StreamingOutputCallResponse and checks its body is `size`
 * zeros. `what` names the step in failure messages. */
static bool recv_sized(interop_client *c, crpc_call *call, recv_fn recv,
                       size_t size, const char *what, int index) {
  Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
  crpc_code code = recv(call, &resp);
  if (code != CRPC_OK) {
    /* The final status carries the server's message: name it. */
    crpc_status st = {0};
    char buf[512];
    (void)crpc_call_finish(call, &st);
    INTEROP_FAIL(c, "%s: response %d: %s", what, index,
                 interop_status_text(code, &st, buf, sizeof(buf)));
    crpc_status_clear(&st);
    return false;
  }
  if (resp == NULL) {
    return INTEROP_FAIL(c, "%s: stream ended before response %d", what, index);
  }
  size_t got = resp->payload ? resp->payload->body.len : 0;
  bool zero = resp->payload == NULL || interop_body_is_zero(&resp->payload->body);
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  if (got != size) {
    return INTEROP_FAIL(c, "%s: response %d is %zu bytes, want %zu", what,
                        index, got, size);
  }
  if (!zero) return INTEROP_FAIL(c, "%s: response %d is not zeros", what, index);
  return true;
}

/* recv_sized for server_compressed_streaming, received by hand to check
 * that the response arrived compressed exactly if `compressed`. */
static bool recv_sized_flag(interop_client *c, crpc_call *call, size_t size,
                            int compressed, int index) {
  crpc_message msg = {0};
  crpc_code code = crpc_call_recv(call, &msg);
  if (code != CRPC_OK) {
    crpc_status st = {0};
    char buf[512];
    (void)crpc_call_finish(call, &st);
    INTEROP_FAIL(c, "StreamingOutputCall: response %d: %s", index,
                 interop_status_text(code, &st, buf, sizeof(buf)));
    crpc_status_clear(&st);
    return false;
  }
  if (msg.end) {
    return INTEROP_FAIL(c, "StreamingOutputCall: stream ended before "
                        "response %d", index);
  }
  Grpc__Testing__StreamingOutputCallResponse *resp =
      grpc__testing__streaming_output_call_response__unpack(NULL, msg.len,
                                                            msg.data);
  free(msg.data);
  if (resp == NULL) {
    return INTEROP_FAIL(c, "StreamingOutputCall: response %d does not parse",
                        index);
  }
  size_t got = resp->payload ? resp->payload->body.len : 0;
  bool zero = resp->payload == NULL || interop_body_is_zero(&resp->payload->body);
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  if (got != size) {
    return INTEROP_FAIL(c, "StreamingOutputCall: response %d is %zu bytes, "
                        "want %zu", index, got, size);
  }
  if (!zero) {
    return INTEROP_FAIL(c, "StreamingOutputCall: response %d is not zeros",
                        index);
  }
  if (msg.compressed != (compressed != 0)) {
    return INTEROP_FAIL(c, "StreamingOutputCall: response %d arrived %s, "
                        "want %s", index,
                        msg.compressed ? "compressed" : "uncompressed",
                        compressed ? "compressed" : "uncompressed");
  }
  return true;
}

/* After the last expected response: the stream ends and the status is OK. */
static bool expect_end_ok(interop_client *c, crpc_call *call, recv_fn recv,
                          const char *what) {
  Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
  crpc_code code = recv(call, &resp);
  if (resp != NULL) {
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return INTEROP_FAIL(c, "%s: more responses than expected", what);
  }
  crpc_status st = {0};
  char buf[512];
  if (code == CRPC_OK) code = crpc_call_finish(call, &st);
  bool ok = code == CRPC_OK
                ? true
                : INTEROP_FAIL(c, "%s: status %s, want OK", what,
                               interop_status_text(code, &st, buf, sizeof(buf)));
  crpc_status_clear(&st);
  return ok;
}

/* Client streaming with the given request bodies; checks the aggregate. */
static bool stream_in(interop_client *c, const size_t *sizes, size_t n,
                      int32_t want) {
  crpc_call *call = NULL;
  crpc_code code = grpc_testing_test_service_streaming_input_call_start(
      c->ch, c->ctx, NULL, &call);
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "StreamingInputCall start: %s", crpc_code_name(code));
  }
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++) {
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload payload;
    if (!interop_payload_init(&payload, sizes[i])) {
      ok = INTEROP_FAIL(c, "out of memory");
      break;
    }
    req.payload = &payload;
    code = grpc_testing_test_service_streaming_input_call_send(call, &req);
    interop_payload_free(&payload);
    if (code != CRPC_OK) {
      ok = INTEROP_FAIL(c, "send %zu: %s", i + 1, crpc_code_name(code));
    }
  }
  Grpc__Testing__StreamingInputCallResponse *resp = NULL;
  crpc_status st = {0};
  char buf[512];
  if (ok) {
    code = grpc_testing_test_service_streaming_input_call_finish(call, &resp,
                                                                 &st);
    if (code != CRPC_OK) {
      ok = INTEROP_FAIL(c, "StreamingInputCall: status %s, want OK",
                        interop_status_text(code, &st, buf, sizeof(buf)));
    } else if (resp->aggregated_payload_size != want) {
      ok = INTEROP_FAIL(c, "aggregated_payload_size %d, want %d",
                        (int)resp->aggregated_payload_size, (int)want);
    }
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  crpc_status_clear(&st);
  crpc_call_free(call);
  return ok;
}

bool interop_client_streaming(interop_client *c) {
  static const size_t kSizes[] = {27182, 8, 1828, 45904};
  return stream_in(c, kSizes, 4, 74922);
}

/* client_compressed_streaming's second call; see there. */
static bool compressed_stream_in(interop_client *c) {
  crpc_call *call = NULL;
  crpc_code code = crpc_call_start_compressed(
      c->ch, c->ctx, "/grpc.testing.TestService/StreamingInputCall", NULL,
      "gzip", &call);
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "StreamingInputCall start (gzip): %s",
                        crpc_code_name(code));
  }
  static const size_t kSizes[] = {27182, 45904};
  bool ok = true;
  for (size_t i = 0; ok && i < 2; i++) {
    Grpc__Testing__BoolValue expect = GRPC__TESTING__BOOL_VALUE__INIT;
    expect.value = i == 0;
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload payload;
    if (!interop_payload_init(&payload, kSizes[i])) {
      ok = INTEROP_FAIL(c, "out of memory");
      break;
    }
    req.payload = &payload;
    req.expect_compressed = &expect;
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = malloc(len);
    if (buf == NULL) {
      interop_payload_free(&payload);
      ok = INTEROP_FAIL(c, "out of memory");
      break;
    }
    protobuf_c_message_pack(&req.base, buf);
    interop_payload_free(&payload);
    /* A failed send shows in the status below. */
    (void)crpc_call_send_flags(call, buf, len,
                               i == 0 ? 0 : CRPC_SEND_NO_COMPRESS);
    free(buf);
  }
  Grpc__Testing__StreamingInputCallResponse *resp = NULL;
  crpc_status st = {0};
  char text[512];
  if (ok) {
    code = grpc_testing_test_service_streaming_input_call_finish(call, &resp,
                                                                 &st);
    if (code != CRPC_OK) {
      ok = INTEROP_FAIL(c, "compressed StreamingInputCall: status %s, want OK",
                        interop_status_text(code, &st, text, sizeof(text)));
    } else if (resp->aggregated_payload_size != 73086) {
      ok = INTEROP_FAIL(c, "aggregated_payload_size %d, want 73086",
                        (int)resp->aggregated_payload_size);
    }
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  crpc_status_clear(&st);
  crpc_call_free(call);
  return ok;
}

bool interop_client_compressed_streaming(interop_client *c) {
  /* 1. The probe: one uncompressed message with expect_compressed=true; a
   * server that checks fails the call with INVALID_ARGUMENT. */
  crpc_call *call = NULL;
  crpc_code code = grpc_testing_test_service_streaming_input_call_start(
      c->ch, c->ctx, NULL, &call);
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "StreamingInputCall start: %s", crpc_code_name(code));
  }
  Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
  yes.value = 1;
  Grpc__Testing__StreamingInputCallRequest req =
      GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
  Grpc__Testing__Payload payload;
  if (!interop_payload_init(&payload, 27182)) {
    crpc_call_free(call);
    return INTEROP_FAIL(c, "out of memory");
  }
  req.payload = &payload;
  req.expect_compressed = &yes;
  /* The server may fail the call before our send completes; the status
   * decides. */
  (void)grpc_testing_test_service_streaming_input_call_send(call, &req);
  interop_payload_free(&payload);
  Grpc__Testing__StreamingInputCallResponse *resp = NULL;
  crpc_status st = {0};
  char buf[512];
  code = grpc_testing_test_service_streaming_input_call_finish(call, &resp, &st);
  bool ok = code == CRPC_INVALID_ARGUMENT;
  if (!ok) {
    INTEROP_FAIL(c,
                 "probe (uncompressed, expect_compressed=true): status %s, "
                 "want INVALID_ARGUMENT",
                 interop_status_text(code, &st, buf, sizeof(buf)));
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  crpc_status_clear(&st);
  crpc_call_free(call);
  /* 2. A gzip call: 27182 bytes compressed (expect_compressed=true), then
   * 45904 bytes sent uncompressed (expect_compressed=false). */
  if (ok) ok = compressed_stream_in(c);
  return ok;
}

/* StreamingOutputCall with these sizes (and per-response compression
 * requests, if `compressed` is not NULL); checks the responses. */
static bool stream_out(interop_client *c, const int32_t *sizes,
                       const int *compressed, size_t n) {
  Grpc__Testing__ResponseParameters params[4];
  Grpc__Testing__ResponseParameters *pp[4];
  Grpc__Testing__BoolValue flags[4];
  for (size_t i = 0; i < n; i++) {
    grpc__testing__response_parameters__init(&params[i]);
    params[i].size = sizes[i];
    if (compressed) {
      grpc__testing__bool_value__init(&flags[i]);
      flags[i].value = compressed[i];
      params[i].compressed = &flags[i];
    }
    pp[i] = &params[i];
  }
  Grpc__Testing__StreamingOutputCallRequest req =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  req.n_response_parameters = n;
  req.response_parameters = pp;
  crpc_call *call = NULL;
  crpc_code code = grpc_testing_test_service_streaming_output_call_start(
      c->ch, c->ctx, NULL, &req, &call);
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "StreamingOutputCall start: %s",
                        crpc_code_name(code));
  }
  bool ok = true;
  const recv_fn recv = grpc_testing_test_service_streaming_output_call_recv;
  for (size_t i = 0; ok && i < n; i++) {
    ok = compressed ? recv_sized_flag(c, call, (size_t)sizes[i],
                                      compressed[i], (int)i + 1)
                    : recv_sized(c, call, recv, (size_t)sizes[i],
                                 "StreamingOutputCall", (int)i + 1);
  }
  if (ok) ok = expect_end_ok(c, call, recv, "StreamingOutputCall");
  crpc_call_free(call);
  return ok;
}

bool interop_server_streaming(interop_client *c) {
  static const int32_t kSizes[] = {31415, 9, 2653, 58979};
  return stream_out(c, kSizes, NULL, 4);
}

bool interop_server_compressed_streaming(interop_client *c) {
  static const int32_t kSizes[] = {31415, 92653};
  static const int kCompressed[] = {1, 0};
  return stream_out(c, kSizes, kCompressed, 2);
}

bool interop_ping_pong(interop_client *c) {
  static const int32_t kResp[] = {31415, 9, 2653, 58979};
  static const size_t kReq[] = {27182, 8, 1828, 45904};
  crpc_call *call = NULL;
  crpc_code code = grpc_testing_test_service_full_duplex_call_start(
      c->ch, c->ctx, NULL, &call);
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "FullDuplexCall start: %s", crpc_code_name(code));
  }
  bool ok = true;
  for (int i = 0; ok && i < 4; i++) {
    Grpc__Testing__ResponseParameters p = GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters *pp = &p;
    p.size = kResp[i];
    Grpc__Testing__Payload payload;
    if (!interop_payload_init(&payload, kReq[i])) {
      ok = INTEROP_FAIL(c, "out of memory");
      break;
    }
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    req.n_response_parameters = 1;
    req.response_parameters = &pp;
    req.payload = &payload;
    code = grpc_testing_test_service_full_duplex_call_send(call, &req);
    interop_payload_free(&payload);
    if (code != CRPC_OK) {
      ok = INTEROP_FAIL(c, "send %d: %s", i + 1, crpc_code_name(code));
    } else {
      ok = recv_sized(c, call, grpc_testing_test_service_full_duplex_call_recv,
                      (size_t)kResp[i], "FullDuplexCall", i + 1);
    }
  }
  if (ok) {
    code = crpc_call_close_send(call);
    ok = code == CRPC_OK ? expect_end_ok(c, call, grpc_testing_test_service_full_duplex_call_recv,
                                       "FullDuplexCall")
                         : INTEROP_FAIL(c, "half-close: %s", crpc_code_name(code));
  }
  crpc_call_free(call);
  return ok;
}

bool interop_empty_stream(interop_client *c) {
  crpc_call *call = NULL;
  crpc_code code = grpc_testing_test_service_full_duplex_call_start(
      c->ch, c->ctx, NULL, &call);
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "FullDuplexCall start: %s", crpc_code_name(code));
  }
  code = crpc_call_close_send(call);
  bool ok = code == CRPC_OK ? expect_end_ok(c, call, grpc_testing_test_service_full_duplex_call_recv,
                                       "FullDuplexCall")
                            : INTEROP_FAIL(c, "half-close: %s", crpc_code_name(code));
  crpc_call_free(call);
  return ok;
}
