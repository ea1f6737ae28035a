/* conformance/server_async_unary.c - the async (crpc/server_async.h)
 * TestService methods with a single response: EmptyCall, UnaryCall and
 * StreamingInputCall, and the registration of every async method.
 *
 * These never wait: each answer is computed and queued inside a callback on
 * the connection's loop thread, with crpc_server_call_send_async, and the
 * one response of a call needs no flow control. What they answer is the
 * blocking server's, through the helpers of server_internal.h. */
#include <stdlib.h>

#include "conformance/server_internal.h"

/* EmptyCall: the generated inline unary handler; it runs only while the
 * ctx is live, and the generated glue finishes with what it returns. */
static crpc_code empty_call_async(crpc_server_call *call, const crpc_ctx *ctx,
                                  const Grpc__Testing__Empty *req, void *ud) {
  (void)ctx, (void)req, (void)ud;
  return interop_empty_reply(call,
                             grpc_testing_test_service_empty_call_send_async);
}

/* UnaryCall: an inline unary handler registered by hand
 * (crpc_server_add_unary_async), because the generated one gets the request
 * already unpacked, without the crpc_message whose `compressed` flag
 * CompressedRequest checks. crpc finishes the call with the status
 * returned (and the message crpc_server_call_error set). */
static crpc_code unary_call_async(crpc_server_call *call, const crpc_ctx *ctx,
                                  const crpc_message *request, void *ud) {
  (void)ctx, (void)ud;
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) return code;
  return interop_unary_reply(call, request, crpc_server_call_send_async);
}

/* ---- StreamingInputCall: a client-streaming reactor ---------------------
 * Registered by hand (crpc_server_add_async_method) for the same reason as
 * UnaryCall: each request message's compressed flag. Every callback runs on
 * the loop thread, so the state needs no lock. */

typedef struct input_call {
  int64_t total; /* payload bytes so far */
} input_call;

static void *input_start(crpc_server_call *call, const crpc_ctx *ctx,
                         void *ud) {
  (void)ctx, (void)ud;
  input_call *s = calloc(1, sizeof *s);
  crpc_code code = s != NULL ? interop_echo_metadata(call)
                             : CRPC_RESOURCE_EXHAUSTED;
  /* Finishing in on_start is allowed; on_done still comes (with s). */
  if (code != CRPC_OK) crpc_server_call_finish(call, code, NULL);
  return s;
}

static void input_message(crpc_server_call *call, const crpc_message *msg,
                          void *state) {
  input_call *s = state;
  if (s == NULL) return; /* on_start finished the call already */
  if (!msg->end) {
    crpc_code code = interop_streaming_input_take(call, msg, &s->total);
    if (code != CRPC_OK) crpc_server_call_finish(call, code, NULL);
    return;
  }
  /* The client half-closed: the one response, then the status. */
  Grpc__Testing__StreamingInputCallResponse resp =
      GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
  resp.aggregated_payload_size = (int32_t)s->total;
  crpc_server_call_finish(
      call, grpc_testing_test_service_streaming_input_call_send_async(call,
                                                                      &resp),
      NULL);
}

/* The client cancelled (cancel_after_begin), the deadline passed, the
 * connection went or a request was malformed: nothing of ours runs
 * elsewhere, so finish (the status on the wire is the cause's). */
static void input_cancel(crpc_server_call *call, const crpc_cause *cause,
                         void *state) {
  (void)state;
  crpc_server_call_finish(call, cause->code, NULL);
}

static void input_done(crpc_server_call *call, void *state) {
  (void)call;
  free(state);
}

static const crpc_server_reactor streaming_input_reactor = {
    .on_start = input_start,
    .on_message = input_message,
    .on_cancel = input_cancel,
    .on_done = input_done,
};

crpc_code interop_register_async_handlers(crpc_server *server) {
  /* Must outlive the server: static. UnaryCall and StreamingInputCall stay
   * NULL here (registered by hand below); CacheableUnaryCall and
   * UnimplementedCall stay unregistered (UNIMPLEMENTED), as in the blocking
   * server. */
  static const grpc_testing_test_service_async_handlers handlers = {
      .empty_call = empty_call_async,
      .streaming_output_call = &interop_streaming_output_reactor,
      .full_duplex_call = &interop_full_duplex_reactor,
      .half_duplex_call = &interop_half_duplex_reactor,
  };
  crpc_code code =
      grpc_testing_test_service_register_async_handlers(server, &handlers);
  if (code == CRPC_OK) {
    code = crpc_server_add_unary_async(server, INTEROP_UNARY_CALL_PATH,
                                       unary_call_async, NULL);
  }
  if (code == CRPC_OK) {
    code = crpc_server_add_async_method(
        server, "/grpc.testing.TestService/StreamingInputCall",
        CRPC_CLIENT_STREAMING, &streaming_input_reactor, NULL);
  }
  return code;
}
