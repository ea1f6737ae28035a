#!/usr/bin/python3
"""A gRPC interop server on Python grpcio: grpc.testing.TestService per
gRPC's interop test descriptions, as a peer for crpc's interop client.

    /usr/bin/python3 interop_server.py --port=PORT [--use_tls=false]
        [--tls_cert_file=PEM --tls_key_file=PEM]

--port=0 picks a free port; "listening on port N" is printed on stdout.
(/usr/bin/python3 because Debian's python3-grpcio is only importable there.)
"""
import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
import interop_stubs  # noqa: E402
import interop_tls  # noqa: E402

empty_pb2, messages_pb2, test_pb2_grpc = interop_stubs.load()

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"


def echo_metadata(context):
    md = dict(context.invocation_metadata())
    if ECHO_INITIAL in md:
        context.send_initial_metadata(((ECHO_INITIAL, md[ECHO_INITIAL]),))
    if ECHO_TRAILING in md:
        context.set_trailing_metadata(((ECHO_TRAILING, md[ECHO_TRAILING]),))


def echo_status(request, context):
    """Echo Status: ends the call with the requested code and message."""
    st = request.response_status
    if request.HasField("response_status") and st.code != 0:
        context.abort(grpc.StatusCode(_code_tuple(st.code)), st.message)


def _code_tuple(code):
    for c in grpc.StatusCode:
        if c.value[0] == code:
            return c.value
    return grpc.StatusCode.UNKNOWN.value


def check_expect_compressed(request, context):
    """CompressedRequest needs the received message's compressed flag, which
    grpcio's Python server API does not expose (not even the call's
    grpc-encoding: gRPC core consumes it before the metadata reaches Python).
    Answering INVALID_ARGUMENT or OK would be a guess, so say so instead."""
    if request.HasField("expect_compressed") and request.expect_compressed.value:
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "not supported by grpcio's Python server API: cannot "
                      "see whether a request was compressed")


def payload(size):
    return messages_pb2.Payload(body=b"\0" * size)


class TestService(test_pb2_grpc.TestServiceServicer):

    def EmptyCall(self, request, context):
        echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        echo_metadata(context)
        check_expect_compressed(request, context)
        echo_status(request, context)
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        return messages_pb2.SimpleResponse(
            payload=payload(request.response_size))

    def _responses(self, request, context):
        for p in request.response_parameters:
            if p.interval_us > 0:
                time.sleep(p.interval_us / 1e6)
            if p.compressed.value:
                context.set_compression(grpc.Compression.Gzip)
            else:
                context.disable_next_message_compression()
            yield messages_pb2.StreamingOutputCallResponse(
                payload=payload(p.size))

    def StreamingOutputCall(self, request, context):
        echo_metadata(context)
        echo_status(request, context)
        yield from self._responses(request, context)

    def StreamingInputCall(self, request_iterator, context):
        echo_metadata(context)
        total = 0
        for req in request_iterator:
            check_expect_compressed(req, context)
            total += len(req.payload.body)
        return messages_pb2.StreamingInputCallResponse(
            aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        for req in request_iterator:
            echo_status(req, context)
            yield from self._responses(req, context)

    def HalfDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        reqs = list(request_iterator)
        for req in reqs:
            echo_status(req, context)
            yield from self._responses(req, context)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    interop_tls.add_server_flags(ap)
    args = ap.parse_args()
    creds = interop_tls.server_credentials("interop_server.py", args)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    addr = "[::]:%d" % args.port
    port = (server.add_secure_port(addr, creds) if creds
            else server.add_insecure_port(addr))
    server.start()
    print("interop_server.py: listening on port %d%s" %
          (port, " (TLS)" if creds else ""), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
