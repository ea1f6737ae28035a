/* conformance/server_internal.h - the TestService handlers of crpc's interop
 * server, in two styles: blocking (server_unary.c, server_streaming.c) and
 * async, on the loop thread (server_async_unary.c,
 * server_async_streaming.c). What a case answers is decided once, by the
 * helpers below, which both styles call with their own send function. */
#ifndef CRPC_CONFORMANCE_SERVER_INTERNAL_H
#define CRPC_CONFORMANCE_SERVER_INTERNAL_H

#include "conformance/interop_common.h"

/* How a handler style queues one response message: crpc_server_call_send_flags
 * (blocking; waits for room) or crpc_server_call_send_async (async; never
 * waits, the caller respects crpc_server_call_can_send). Same arguments. */
typedef crpc_code (*interop_send_fn)(crpc_server_call *call, const void *data,
                                     size_t len, unsigned flags);

/* ---- what both styles share (server_unary.c, server_streaming.c) ---- */

/* Echo Metadata: copies x-grpc-test-echo-initial into the response headers
 * and x-grpc-test-echo-trailing-bin into the trailers. Call before the first
 * send. */
crpc_code interop_echo_metadata(crpc_server_call *call);

/* Echo Status: if st asks for a non-OK code, sets the call's status message
 * and returns the code (the handler returns it); else CRPC_OK. */
crpc_code interop_echo_status(crpc_server_call *call,
                              const Grpc__Testing__EchoStatus *st);

/* CompressedRequest: if `expect` is present, the request must have arrived
 * compressed (expect true) or uncompressed (false); else INVALID_ARGUMENT. */
crpc_code interop_check_compressed(crpc_server_call *call,
                                   const Grpc__Testing__BoolValue *expect,
                                   bool compressed);

/* Packs m and sends it with `send`; uncompressed if no_compress
 * (CompressedResponse). */
crpc_code interop_server_send(crpc_server_call *call,
                              const ProtobufCMessage *m, bool no_compress,
                              interop_send_fn send);

/* EmptyCall: Echo Metadata, then one Empty through the generated send of
 * the style (..._empty_call_server_send or ..._empty_call_send_async). */
typedef crpc_code (*interop_empty_send_fn)(crpc_server_call *call,
                                           const Grpc__Testing__Empty *msg);
crpc_code interop_empty_reply(crpc_server_call *call,
                              interop_empty_send_fn send);

/* UnaryCall's answer to its request message `msg` (not the end marker):
 * CompressedRequest from msg->compressed, CompressedResponse, Echo Status,
 * then the SimpleResponse, sent with `send`. Echo Metadata is the
 * caller's (before). Returns the call's status. */
crpc_code interop_unary_reply(crpc_server_call *call, const crpc_message *msg,
                              interop_send_fn send);

/* StreamingInputCall: one request message (not the end marker): adds its
 * payload size to *total and checks CompressedRequest. CRPC_OK, or the
 * call's status (it ends). */
crpc_code interop_streaming_input_take(crpc_server_call *call,
                                       const crpc_message *msg,
                                       int64_t *total);

/* A StreamingOutputCallRequest (StreamingOutputCall, FullDuplexCall,
 * HalfDuplexCall) is answered in three steps, each returning CRPC_OK or the
 * call's status (the call then ends with it):
 *   interop_output_begin   once, before its responses: Echo Status, the
 *                          response_type, and CompressedResponse (gzip for
 *                          the call if any response asks; possible only
 *                          before the call's first response);
 *   interop_output_check   per ResponseParameters, before waiting its
 *                          interval_us (a sleep relative to the response
 *                          before; the waiting is the style's);
 *   interop_output_send    per ResponseParameters, after the interval: one
 *                          StreamingOutputCallResponse of its size, sent
 *                          with `send` (CRPC_SEND_NO_COMPRESS unless it
 *                          asks to be compressed). */
crpc_code interop_output_begin(
    crpc_server_call *call,
    const Grpc__Testing__StreamingOutputCallRequest *req);
crpc_code interop_output_check(crpc_server_call *call,
                               const Grpc__Testing__ResponseParameters *p);
crpc_code interop_output_send(crpc_server_call *call,
                              const Grpc__Testing__ResponseParameters *p,
                              interop_send_fn send);

/* ---- blocking handlers (crpc/server.h) ---- */

crpc_code interop_empty_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const Grpc__Testing__Empty *req, void *ud);
/* UnaryCall, registered by hand (not through the generated stub) because
 * it needs the request's compressed flag. */
crpc_code interop_unary_call(crpc_server_call *call, const crpc_ctx *ctx,
                             void *ud);
crpc_code interop_streaming_output_call(
    crpc_server_call *call, const crpc_ctx *ctx,
    const Grpc__Testing__StreamingOutputCallRequest *req, void *ud);
crpc_code interop_streaming_input_call(crpc_server_call *call,
                                       const crpc_ctx *ctx, void *ud);
crpc_code interop_full_duplex_call(crpc_server_call *call, const crpc_ctx *ctx,
                                   void *ud);
crpc_code interop_half_duplex_call(crpc_server_call *call, const crpc_ctx *ctx,
                                   void *ud);

/* ---- async handlers (crpc/server_async.h) ---- */

/* The async StreamingOutputCall, FullDuplexCall and HalfDuplexCall reactors
 * (server_async_streaming.c), for the generated
 * grpc_testing_test_service_async_handlers. */
extern const grpc_testing_test_service_streaming_output_call_reactor
    interop_streaming_output_reactor;
extern const grpc_testing_test_service_full_duplex_call_reactor
    interop_full_duplex_reactor;
extern const grpc_testing_test_service_half_duplex_call_reactor
    interop_half_duplex_reactor;

/* Registers every TestService method the blocking server serves, each with
 * an async handler (server_async_unary.c): EmptyCall and the three
 * StreamingOutputCallRequest methods through the generated
 * grpc_testing_test_service_register_async_handlers, UnaryCall and
 * StreamingInputCall by hand (they need each request's compressed flag,
 * which the generated glue does not pass on). Before crpc_server_start. */
crpc_code interop_register_async_handlers(crpc_server *server);

/* Waits until no worker thread of the async handlers is left (they end on
 * their own once their calls are over). After the server's shutdown, before
 * the process exits. */
void interop_async_wait_workers(void);

#endif /* CRPC_CONFORMANCE_SERVER_INTERNAL_H */
