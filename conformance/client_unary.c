/* conformance/client_unary.c - the interop cases made of unary calls. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/client_internal.h"

bool interop_fail(interop_client *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof(c->why), fmt, ap);
  va_end(ap);
  return false;
}

const char *interop_status_text(crpc_code code, const crpc_status *st,
                                char *buf, size_t cap) {
  snprintf(buf, cap, "%s%s%s", crpc_code_name(code),
           st && st->message && st->message[0] ? ": " : "",
           st && st->message ? st->message : "");
  return buf;
}

/* The SimpleRequest most unary cases send: response_size 314159 and a body
 * of 271828 zeros. Free the payload with interop_payload_free. */
static bool large_request(Grpc__Testing__SimpleRequest *req,
                          Grpc__Testing__Payload *payload) {
  grpc__testing__simple_request__init(req);
  if (!interop_payload_init(payload, 271828)) return false;
  req->response_size = 314159;
  req->payload = payload;
  return true;
}

/* One UnaryCall; checks OK and a 314159-byte zero body. `what` names the
 * call in failure messages. */
static bool unary_expect_large(interop_client *c,
                               const Grpc__Testing__SimpleRequest *req,
                               const char *what) {
  Grpc__Testing__SimpleResponse *resp = NULL;
  crpc_status st = {0};
  char buf[512];
  crpc_code code = grpc_testing_test_service_unary_call(c->ch, c->ctx, NULL,
                                                        req, &resp, &st);
  bool ok;
  if (code != CRPC_OK) {
    ok = INTEROP_FAIL(c, "%s: status %s, want OK", what,
                      interop_status_text(code, &st, buf, sizeof(buf)));
  } else if (resp->payload == NULL || resp->payload->body.len != 314159) {
    ok = INTEROP_FAIL(c, "%s: response body is %zu bytes, want 314159", what,
                      resp->payload ? resp->payload->body.len : 0);
  } else if (!interop_body_is_zero(&resp->payload->body)) {
    ok = INTEROP_FAIL(c, "%s: response body is not all zeros", what);
  } else {
    ok = true;
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  crpc_status_clear(&st);
  return ok;
}

/* Checks one UnaryCall's outcome like unary_expect_large. */
static bool check_large(interop_client *c, crpc_code code,
                        const Grpc__Testing__SimpleResponse *resp,
                        const crpc_status *st, const char *what) {
  char buf[512];
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "%s: status %s, want OK", what,
                        interop_status_text(code, st, buf, sizeof(buf)));
  }
  if (resp->payload == NULL || resp->payload->body.len != 314159) {
    return INTEROP_FAIL(c, "%s: response body is %zu bytes, want 314159",
                        what, resp->payload ? resp->payload->body.len : 0);
  }
  if (!interop_body_is_zero(&resp->payload->body)) {
    return INTEROP_FAIL(c, "%s: response body is not all zeros", what);
  }
  return true;
}

/* One UnaryCall made step by step rather than with the generated stub, for
 * the compression cases: the request goes gzip-compressed if `compress`;
 * *compressed says whether the response arrived compressed. On OK, *resp
 * is the parsed response (caller frees). */
static crpc_code unary_raw(interop_client *c,
                           const Grpc__Testing__SimpleRequest *req,
                           bool compress, Grpc__Testing__SimpleResponse **resp,
                           bool *compressed, crpc_status *st) {
  *resp = NULL;
  *compressed = false;
  crpc_call *call = NULL;
  crpc_code code = crpc_call_start_compressed(
      c->ch, c->ctx, INTEROP_UNARY_CALL_PATH, NULL, compress ? "gzip" : NULL,
      &call);
  if (code != CRPC_OK) {
    st->code = code;
    st->message = strdup("call did not start");
    return code;
  }
  size_t len = protobuf_c_message_get_packed_size(&req->base);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) {
    crpc_call_free(call);
    return CRPC_RESOURCE_EXHAUSTED;
  }
  protobuf_c_message_pack(&req->base, buf);
  /* The server may fail the call before our send completes: the status
   * decides. */
  (void)crpc_call_send(call, buf, len);
  free(buf);
  (void)crpc_call_close_send(call);
  crpc_message msg = {0};
  if (crpc_call_recv(call, &msg) == CRPC_OK && !msg.end) {
    *compressed = msg.compressed;
    *resp = grpc__testing__simple_response__unpack(NULL, msg.len, msg.data);
    free(msg.data);
  }
  code = crpc_call_finish(call, st);
  crpc_call_free(call);
  if (code == CRPC_OK && *resp == NULL) {
    free(st->message);
    st->message = strdup("no parsable response message");
    code = st->code = CRPC_INTERNAL;
  }
  if (code != CRPC_OK && *resp != NULL) {
    protobuf_c_message_free_unpacked(&(*resp)->base, NULL);
    *resp = NULL;
  }
  return code;
}

bool interop_empty_unary(interop_client *c) {
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
  Grpc__Testing__Empty *resp = NULL;
  crpc_status st = {0};
  char buf[512];
  crpc_code code = grpc_testing_test_service_empty_call(c->ch, c->ctx, NULL,
                                                        &req, &resp, &st);
  bool ok = code == CRPC_OK && resp != NULL
                ? true
                : INTEROP_FAIL(c, "EmptyCall: status %s, want OK",
                               interop_status_text(code, &st, buf, sizeof(buf)));
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  crpc_status_clear(&st);
  return ok;
}

bool interop_large_unary(interop_client *c) {
  Grpc__Testing__SimpleRequest req;
  Grpc__Testing__Payload payload;
  if (!large_request(&req, &payload)) return INTEROP_FAIL(c, "out of memory");
  bool ok = unary_expect_large(c, &req, "UnaryCall");
  interop_payload_free(&payload);
  return ok;
}

bool interop_client_compressed_unary(interop_client *c) {
  Grpc__Testing__SimpleRequest req;
  Grpc__Testing__Payload payload;
  if (!large_request(&req, &payload)) return INTEROP_FAIL(c, "out of memory");
  Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
  yes.value = 1;
  req.expect_compressed = &yes;
  /* 1. The feature probe: uncompressed, but expect_compressed=true. A server
   * that checks answers INVALID_ARGUMENT. */
  Grpc__Testing__SimpleResponse *resp = NULL;
  crpc_status st = {0};
  char buf[512];
  crpc_code code = grpc_testing_test_service_unary_call(c->ch, c->ctx, NULL,
                                                        &req, &resp, &st);
  bool ok = code == CRPC_INVALID_ARGUMENT;
  if (!ok) {
    INTEROP_FAIL(c,
                 "probe (uncompressed, expect_compressed=true): status %s, "
                 "want INVALID_ARGUMENT",
                 interop_status_text(code, &st, buf, sizeof(buf)));
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  crpc_status_clear(&st);
  /* 2. Compressed, expect_compressed=true; 3. uncompressed,
   * expect_compressed=false. Both must succeed. */
  for (int step = 2; ok && step <= 3; step++) {
    yes.value = step == 2;
    bool got_compressed;
    code = unary_raw(c, &req, step == 2, &resp, &got_compressed, &st);
    ok = check_large(c, code, resp, &st,
                     step == 2 ? "compressed request" : "uncompressed request");
    if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
    resp = NULL;
    crpc_status_clear(&st);
  }
  interop_payload_free(&payload);
  return ok;
}

bool interop_server_compressed_unary(interop_client *c) {
  Grpc__Testing__SimpleRequest req;
  Grpc__Testing__Payload payload;
  if (!large_request(&req, &payload)) return INTEROP_FAIL(c, "out of memory");
  Grpc__Testing__BoolValue flag = GRPC__TESTING__BOOL_VALUE__INIT;
  req.response_compressed = &flag;
  bool ok = true;
  /* response_compressed=true, then false: the response's compressed flag
   * must say the same. */
  for (int want = 1; ok && want >= 0; want--) {
    flag.value = want;
    const char *what =
        want ? "response_compressed=true" : "response_compressed=false";
    Grpc__Testing__SimpleResponse *resp = NULL;
    crpc_status st = {0};
    bool got;
    crpc_code code = unary_raw(c, &req, false, &resp, &got, &st);
    ok = check_large(c, code, resp, &st, what);
    if (ok && got != (bool)want) {
      ok = INTEROP_FAIL(c, "%s: response arrived %scompressed", what,
                        got ? "" : "un");
    }
    if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
    crpc_status_clear(&st);
  }
  interop_payload_free(&payload);
  return ok;
}

/* Sends response_status {code, message} on a UnaryCall and checks that
 * exactly that status comes back. */
static bool unary_echo_status(interop_client *c, int code_in,
                              const char *message) {
  Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
  es.code = code_in;
  es.message = (char *)message;
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_status = &es;
  Grpc__Testing__SimpleResponse *resp = NULL;
  crpc_status st = {0};
  crpc_code code = grpc_testing_test_service_unary_call(c->ch, c->ctx, NULL,
                                                        &req, &resp, &st);
  bool ok = true;
  if ((int)code != code_in) {
    ok = INTEROP_FAIL(c, "UnaryCall: status code %s, want %d",
                      crpc_code_name(code), code_in);
  } else if (st.message == NULL || strcmp(st.message, message) != 0) {
    ok = INTEROP_FAIL(c, "UnaryCall: status message \"%s\", want \"%s\"",
                      st.message ? st.message : "(none)", message);
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  crpc_status_clear(&st);
  return ok;
}

bool interop_status_code_and_message(interop_client *c) {
  static const char kMsg[] = "test status message";
  if (!unary_echo_status(c, 2, kMsg)) return false;
  /* 2. The same through FullDuplexCall, then half-close. */
  Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
  es.code = 2;
  es.message = (char *)kMsg;
  Grpc__Testing__StreamingOutputCallRequest req =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  req.response_status = &es;
  crpc_call *call = NULL;
  crpc_code code = grpc_testing_test_service_full_duplex_call_start(
      c->ch, c->ctx, NULL, &call);
  if (code != CRPC_OK) {
    return INTEROP_FAIL(c, "FullDuplexCall start: %s", crpc_code_name(code));
  }
  /* Send and half-close may race the server's early status; only the final
   * status matters here. */
  (void)grpc_testing_test_service_full_duplex_call_send(call, &req);
  (void)crpc_call_close_send(call);
  crpc_status st = {0};
  code = crpc_call_finish(call, &st);
  bool ok = true;
  if (code != CRPC_UNKNOWN) {
    ok = INTEROP_FAIL(c, "FullDuplexCall: status code %s, want UNKNOWN (2)",
                      crpc_code_name(code));
  } else if (st.message == NULL || strcmp(st.message, kMsg) != 0) {
    ok = INTEROP_FAIL(c, "FullDuplexCall: status message \"%s\", want \"%s\"",
                      st.message ? st.message : "(none)", kMsg);
  }
  crpc_status_clear(&st);
  crpc_call_free(call);
  return ok;
}

bool interop_special_status_message(interop_client *c) {
  /* Whitespace, a BMP character (U+263A) and a non-BMP one (U+1F608), in
   * UTF-8: grpc-message must be percent-encoded and decoded exactly. */
  static const char kMsg[] =
      "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
      "\xf0\x9f\x98\x88\t\n";
  return unary_echo_status(c, 2, kMsg);
}

bool interop_unimplemented_method(interop_client *c) {
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
  Grpc__Testing__Empty *resp = NULL;
  crpc_code code = grpc_testing_test_service_unimplemented_call(
      c->ch, c->ctx, NULL, &req, &resp, NULL);
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  return code == CRPC_UNIMPLEMENTED
             ? true
             : INTEROP_FAIL(c, "TestService/UnimplementedCall: %s, want "
                               "UNIMPLEMENTED",
                            crpc_code_name(code));
}

bool interop_unimplemented_service(interop_client *c) {
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
  Grpc__Testing__Empty *resp = NULL;
  crpc_code code = grpc_testing_unimplemented_service_unimplemented_call(
      c->ch, c->ctx, NULL, &req, &resp, NULL);
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  return code == CRPC_UNIMPLEMENTED
             ? true
             : INTEROP_FAIL(c, "UnimplementedService/UnimplementedCall: %s, "
                               "want UNIMPLEMENTED",
                            crpc_code_name(code));
}
