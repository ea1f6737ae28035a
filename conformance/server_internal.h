/* conformance/server_internal.h - the TestService handlers of crpc's interop
 * server, split by call shape (server_unary.c, server_streaming.c). */
#ifndef CRPC_CONFORMANCE_SERVER_INTERNAL_H
#define CRPC_CONFORMANCE_SERVER_INTERNAL_H

#include "conformance/interop_common.h"

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

/* Packs m and sends it; uncompressed if no_compress (CompressedResponse). */
crpc_code interop_server_send(crpc_server_call *call,
                              const ProtobufCMessage *m, bool no_compress);

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

#endif /* CRPC_CONFORMANCE_SERVER_INTERNAL_H */
