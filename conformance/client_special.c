/* conformance/client_special.c - the interop cases about deadlines,
 * cancellation and metadata. */
#include <stdlib.h>
#include <string.h>

#include "conformance/client_internal.h"

bool interop_timeout_on_sleeping_server(interop_client *c) {
  /* A 1 ms deadline on a FullDuplexCall the server never answers: the only
   * acceptable end is DEADLINE_EXCEEDED, whichever step sees it first. */
  crpc_ctx *ctx = crpc_ctx_with_timeout(c->ctx, CRPC_MILLISECOND);
  if (ctx == NULL) return INTEROP_FAIL(c, "out of memory");
  crpc_call *call = NULL;
  crpc_code code =
      grpc_testing_test_service_full_duplex_call_start(c->ch, ctx, NULL, &call);
  if (code == CRPC_OK) {
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload payload;
    if (interop_payload_init(&payload, 27182)) {
      req.payload = &payload;
      (void)grpc_testing_test_service_full_duplex_call_send(call, &req);
      interop_payload_free(&payload);
    }
    Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
    code = grpc_testing_test_service_full_duplex_call_recv(call, &resp);
    if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
    code = crpc_call_finish(call, NULL);
    crpc_call_free(call);
  }
  crpc_ctx_release(ctx);
  return code == CRPC_DEADLINE_EXCEEDED
             ? true
             : INTEROP_FAIL(c, "FullDuplexCall with a 1 ms deadline: %s, want "
                               "DEADLINE_EXCEEDED",
                            crpc_code_name(code));
}

bool interop_cancel_after_begin(interop_client *c) {
  crpc_ctx *ctx = crpc_ctx_with_cancel(c->ctx);
  if (ctx == NULL) return INTEROP_FAIL(c, "out of memory");
  crpc_call *call = NULL;
  crpc_code code = grpc_testing_test_service_streaming_input_call_start(
      c->ch, ctx, NULL, &call);
  if (code != CRPC_OK) {
    crpc_ctx_release(ctx);
    return INTEROP_FAIL(c, "StreamingInputCall start: %s", crpc_code_name(code));
  }
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "interop: cancel_after_begin");
  code = crpc_call_finish(call, NULL);
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  return code == CRPC_CANCELLED
             ? true
             : INTEROP_FAIL(c, "after cancel: %s, want CANCELLED",
                            crpc_code_name(code));
}

bool interop_cancel_after_first_response(interop_client *c) {
  crpc_ctx *ctx = crpc_ctx_with_cancel(c->ctx);
  if (ctx == NULL) return INTEROP_FAIL(c, "out of memory");
  crpc_call *call = NULL;
  crpc_code code =
      grpc_testing_test_service_full_duplex_call_start(c->ch, ctx, NULL, &call);
  if (code != CRPC_OK) {
    crpc_ctx_release(ctx);
    return INTEROP_FAIL(c, "FullDuplexCall start: %s", crpc_code_name(code));
  }
  Grpc__Testing__ResponseParameters p = GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
  Grpc__Testing__ResponseParameters *pp = &p;
  p.size = 31415;
  Grpc__Testing__StreamingOutputCallRequest req =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  req.n_response_parameters = 1;
  req.response_parameters = &pp;
  Grpc__Testing__Payload payload;
  bool ok = true;
  if (!interop_payload_init(&payload, 27182)) {
    ok = INTEROP_FAIL(c, "out of memory");
  } else {
    req.payload = &payload;
    code = grpc_testing_test_service_full_duplex_call_send(call, &req);
    interop_payload_free(&payload);
    Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
    if (code == CRPC_OK) {
      code = grpc_testing_test_service_full_duplex_call_recv(call, &resp);
    }
    if (code != CRPC_OK || resp == NULL) {
      ok = INTEROP_FAIL(c, "first response: %s%s", crpc_code_name(code),
                        code == CRPC_OK ? " (stream ended)" : "");
    }
    if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
  if (ok) {
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "interop: cancel_after_first_response");
    code = crpc_call_finish(call, NULL);
    if (code != CRPC_CANCELLED) {
      ok = INTEROP_FAIL(c, "after cancel: %s, want CANCELLED",
                        crpc_code_name(code));
    }
  }
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  return ok;
}

/* ---- custom_metadata ---------------------------------------------------- */

static const char kInitialValue[] = "test_initial_metadata_value";
static const uint8_t kTrailingValue[] = {0xab, 0xab, 0xab};

/* Checks that md holds key with exactly this value. */
static bool has_entry(interop_client *c, const crpc_metadata *md,
                      const char *key, const void *value, size_t len,
                      const char *where) {
  crpc_metadata_entry e;
  if (md == NULL || !crpc_metadata_get(md, key, &e)) {
    return INTEROP_FAIL(c, "%s: no \"%s\"", where, key);
  }
  if (e.value_len != len || memcmp(e.value, value, len) != 0) {
    return INTEROP_FAIL(c, "%s: \"%s\" has the wrong value (%zu bytes)", where,
                        key, e.value_len);
  }
  return true;
}

/* Step 1, UnaryCall. Done on the generic call API because the unary stub
 * (like crpc_unary_call) returns trailers but not response headers. */
static bool metadata_unary(interop_client *c, const crpc_metadata *md) {
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  Grpc__Testing__Payload payload;
  if (!interop_payload_init(&payload, 271828)) return INTEROP_FAIL(c, "out of memory");
  req.response_size = 314159;
  req.payload = &payload;
  size_t len = protobuf_c_message_get_packed_size(&req.base);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) {
    interop_payload_free(&payload);
    return INTEROP_FAIL(c, "out of memory");
  }
  protobuf_c_message_pack(&req.base, buf);
  interop_payload_free(&payload);

  crpc_call *call = NULL;
  crpc_code code = crpc_call_start(
      c->ch, c->ctx, grpc_testing_test_service_unary_call_method.path, md, &call);
  if (code == CRPC_OK) code = crpc_call_send(call, buf, len);
  if (code == CRPC_OK) code = crpc_call_close_send(call);
  free(buf);
  bool ok = true;
  if (code == CRPC_OK) {
    ok = has_entry(c, crpc_call_response_headers(call), INTEROP_ECHO_INITIAL,
                   kInitialValue, strlen(kInitialValue),
                   "UnaryCall initial metadata");
  }
  crpc_message msg = {0};
  if (ok && code == CRPC_OK) code = crpc_call_recv(call, &msg);
  free(msg.data);
  crpc_status st = {0};
  char text[512];
  if (ok && call != NULL) {
    crpc_code fin = crpc_call_finish(call, &st);
    if (code == CRPC_OK) code = fin;
    if (code != CRPC_OK) {
      ok = INTEROP_FAIL(c, "UnaryCall: status %s, want OK",
                        interop_status_text(code, &st, text, sizeof(text)));
    } else if (msg.end) {
      ok = INTEROP_FAIL(c, "UnaryCall: no response message");
    } else {
      ok = has_entry(c, st.trailers, INTEROP_ECHO_TRAILING, kTrailingValue,
                     sizeof(kTrailingValue), "UnaryCall trailing metadata");
    }
  } else if (ok) {
    ok = INTEROP_FAIL(c, "UnaryCall start: %s", crpc_code_name(code));
  }
  crpc_status_clear(&st);
  crpc_call_free(call);
  return ok;
}

/* Step 2, FullDuplexCall with one request, then half-close. */
static bool metadata_duplex(interop_client *c, const crpc_metadata *md) {
  crpc_call *call = NULL;
  crpc_code code =
      grpc_testing_test_service_full_duplex_call_start(c->ch, c->ctx, md, &call);
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "FullDuplexCall start: %s", crpc_code_name(code));
  }
  Grpc__Testing__ResponseParameters p = GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
  Grpc__Testing__ResponseParameters *pp = &p;
  p.size = 314159;
  Grpc__Testing__StreamingOutputCallRequest req =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  req.n_response_parameters = 1;
  req.response_parameters = &pp;
  Grpc__Testing__Payload payload;
  bool ok = interop_payload_init(&payload, 271828);
  if (!ok) {
    crpc_call_free(call);
    return INTEROP_FAIL(c, "out of memory");
  }
  req.payload = &payload;
  code = grpc_testing_test_service_full_duplex_call_send(call, &req);
  interop_payload_free(&payload);
  if (code == CRPC_OK) code = crpc_call_close_send(call);
  if (code == CRPC_OK) {
    ok = has_entry(c, crpc_call_response_headers(call), INTEROP_ECHO_INITIAL,
                   kInitialValue, strlen(kInitialValue),
                   "FullDuplexCall initial metadata");
  }
  /* Drain the responses (their content is the ping_pong case's business). */
  while (ok && code == CRPC_OK) {
    Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
    code = grpc_testing_test_service_full_duplex_call_recv(call, &resp);
    if (resp == NULL) break;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
  crpc_status st = {0};
  char text[512];
  if (ok) {
    crpc_code fin = crpc_call_finish(call, &st);
    if (code == CRPC_OK) code = fin;
    if (code != CRPC_OK) {
      ok = INTEROP_FAIL(c, "FullDuplexCall: status %s, want OK",
                        interop_status_text(code, &st, text, sizeof(text)));
    } else {
      ok = has_entry(c, st.trailers, INTEROP_ECHO_TRAILING, kTrailingValue,
                     sizeof(kTrailingValue), "FullDuplexCall trailing metadata");
    }
  }
  crpc_status_clear(&st);
  crpc_call_free(call);
  return ok;
}

bool interop_custom_metadata(interop_client *c) {
  crpc_metadata *md = crpc_metadata_new();
  if (md == NULL ||
      crpc_metadata_add_str(md, INTEROP_ECHO_INITIAL, kInitialValue) != CRPC_OK ||
      crpc_metadata_add(md, INTEROP_ECHO_TRAILING, kTrailingValue,
                        sizeof(kTrailingValue)) != CRPC_OK) {
    crpc_metadata_free(md);
    return INTEROP_FAIL(c, "cannot build the request metadata");
  }
  bool ok = metadata_unary(c, md) && metadata_duplex(c, md);
  crpc_metadata_free(md);
  return ok;
}
