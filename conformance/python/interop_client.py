#!/usr/bin/python3
"""A gRPC interop client on Python grpcio: the test cases of gRPC's interop
test descriptions, as a peer for crpc's interop server.

    /usr/bin/python3 interop_client.py --server_host=HOST --server_port=PORT \
        --test_case=CASE|all [--use_tls=false] [--server_host_override=NAME]
        [--use_test_ca=false] [--tls_ca_file=PEM]

Prints "PASS <case>" / "FAIL <case>: <check>" / "N/A <case>: <why>" per
case; exits 1 if a case failed, 3 if a case cannot be expressed with
grpcio's Python API (and none failed), else 0.
"""
import argparse
import sys
import threading

import grpc

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
import interop_stubs  # noqa: E402
import interop_tls  # noqa: E402

empty_pb2, messages_pb2, test_pb2_grpc = interop_stubs.load()
Msg = messages_pb2

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
TIMEOUT = 30  # seconds per call: a hung server fails the case, not the run


class CaseFailed(Exception):
    pass


class NotExpressible(Exception):
    """grpcio's Python API cannot do what the case requires."""


def check(cond, what):
    if not cond:
        raise CaseFailed(what)


def payload(size):
    return Msg.Payload(body=b"\0" * size)


def check_body(resp, size, what):
    check(len(resp.payload.body) == size,
          "%s: body is %d bytes, want %d" % (what, len(resp.payload.body), size))
    check(resp.payload.body == b"\0" * size, "%s: body is not zeros" % what)


def expect_code(fn, code, what):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, "%s: %s (%s), want %s" %
              (what, e.code(), e.details(), code))
        return e
    raise CaseFailed("%s: succeeded, want %s" % (what, code))


def large_request(**kw):
    return Msg.SimpleRequest(response_size=314159, payload=payload(271828), **kw)


def empty_unary(stub):
    check(stub.EmptyCall(empty_pb2.Empty(), timeout=TIMEOUT) is not None,
          "EmptyCall: no response")


def large_unary(stub):
    check_body(stub.UnaryCall(large_request(), timeout=TIMEOUT), 314159,
               "UnaryCall")


def client_compressed_unary(stub):
    yes, no = Msg.BoolValue(value=True), Msg.BoolValue(value=False)
    expect_code(lambda: stub.UnaryCall(large_request(expect_compressed=yes),
                                       timeout=TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT,
                "probe (uncompressed, expect_compressed=true)")
    resp = stub.UnaryCall(large_request(expect_compressed=yes),
                          compression=grpc.Compression.Gzip, timeout=TIMEOUT)
    check_body(resp, 314159, "compressed request")
    resp = stub.UnaryCall(large_request(expect_compressed=no), timeout=TIMEOUT)
    check_body(resp, 314159, "uncompressed request")


def server_compressed_unary(stub):
    # grpcio's Python API does not expose a received message's compressed
    # flag; the descriptions allow checking the rest ("some languages may not
    # have access to the message flags").
    for value in (True, False):
        resp = stub.UnaryCall(
            large_request(response_compressed=Msg.BoolValue(value=value)),
            timeout=TIMEOUT)
        check_body(resp, 314159, "response_compressed=%s" % value)


def client_streaming(stub):
    sizes = (27182, 8, 1828, 45904)
    resp = stub.StreamingInputCall(
        iter([Msg.StreamingInputCallRequest(payload=payload(s)) for s in sizes]),
        timeout=TIMEOUT)
    check(resp.aggregated_payload_size == 74922,
          "aggregated_payload_size %d, want 74922" % resp.aggregated_payload_size)


def client_compressed_streaming(stub):
    yes = Msg.BoolValue(value=True)
    probe = Msg.StreamingInputCallRequest(payload=payload(27182),
                                          expect_compressed=yes)
    expect_code(lambda: stub.StreamingInputCall(iter([probe]), timeout=TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT,
                "probe (uncompressed, expect_compressed=true)")
    # Step 2 needs one compressed and then one uncompressed message on the
    # same call; a grpcio Python client compresses all of a call or none.
    raise NotExpressible("grpcio's Python client cannot turn compression off "
                         "for one message of a call")


def _stream_out(stub, sizes, compressed=None):
    params = []
    for i, s in enumerate(sizes):
        p = Msg.ResponseParameters(size=s)
        if compressed is not None:
            p.compressed.value = compressed[i]
        params.append(p)
    resps = list(stub.StreamingOutputCall(
        Msg.StreamingOutputCallRequest(response_parameters=params),
        timeout=TIMEOUT))
    check(len(resps) == len(sizes),
          "%d responses, want %d" % (len(resps), len(sizes)))
    for i, (r, s) in enumerate(zip(resps, sizes)):
        check_body(r, s, "response %d" % (i + 1))


def server_streaming(stub):
    _stream_out(stub, (31415, 9, 2653, 58979))


def server_compressed_streaming(stub):
    # As server_compressed_unary: the flag itself is not visible to grpcio.
    _stream_out(stub, (31415, 92653), (True, False))


class _Requests:
    """A request iterator the test feeds one message at a time (bidi)."""

    def __init__(self):
        self._cv = threading.Condition()
        self._q = []
        self._closed = False

    def send(self, msg):
        with self._cv:
            self._q.append(msg)
            self._cv.notify()

    def close(self):
        with self._cv:
            self._closed = True
            self._cv.notify()

    def __iter__(self):
        return self

    def __next__(self):
        with self._cv:
            while not self._q and not self._closed:
                self._cv.wait()
            if self._q:
                return self._q.pop(0)
            raise StopIteration


def _duplex_req(resp_size, req_size):
    return Msg.StreamingOutputCallRequest(
        response_parameters=[Msg.ResponseParameters(size=resp_size)],
        payload=payload(req_size))


def ping_pong(stub):
    reqs = _Requests()
    call = stub.FullDuplexCall(reqs, timeout=TIMEOUT)
    for i, (rs, qs) in enumerate(((31415, 27182), (9, 8), (2653, 1828),
                                  (58979, 45904))):
        reqs.send(_duplex_req(rs, qs))
        check_body(next(call), rs, "response %d" % (i + 1))
    reqs.close()
    check(next(call, None) is None, "more than four responses")
    check(call.code() == grpc.StatusCode.OK, "status %s" % call.code())


def empty_stream(stub):
    resps = list(stub.FullDuplexCall(iter([]), timeout=TIMEOUT))
    check(len(resps) == 0, "%d responses, want 0" % len(resps))


def timeout_on_sleeping_server(stub):
    reqs = _Requests()
    reqs.send(Msg.StreamingOutputCallRequest(payload=payload(27182)))
    call = stub.FullDuplexCall(reqs, timeout=0.001)
    expect_code(lambda: list(call), grpc.StatusCode.DEADLINE_EXCEEDED,
                "FullDuplexCall with a 1 ms deadline")
    reqs.close()


def cancel_after_begin(stub):
    reqs = _Requests()
    fut = stub.StreamingInputCall.future(reqs, timeout=TIMEOUT)
    fut.cancel()
    # result() raises FutureCancelledError here; the call's code is the check.
    check(fut.code() == grpc.StatusCode.CANCELLED,
          "after cancel: %s, want CANCELLED" % fut.code())
    reqs.close()


def cancel_after_first_response(stub):
    reqs = _Requests()
    call = stub.FullDuplexCall(reqs, timeout=TIMEOUT)
    reqs.send(_duplex_req(31415, 27182))
    next(call)
    call.cancel()
    check(call.code() == grpc.StatusCode.CANCELLED,
          "after cancel: %s, want CANCELLED" % call.code())
    reqs.close()


def _has(md, key, value, what):
    got = dict(md or ()).get(key)
    check(got == value, "%s: %s is %r, want %r" % (what, key, got, value))


def custom_metadata(stub):
    md = ((ECHO_INITIAL, "test_initial_metadata_value"),
          (ECHO_TRAILING, b"\xab\xab\xab"))
    resp, call = stub.UnaryCall.with_call(large_request(), metadata=md,
                                          timeout=TIMEOUT)
    check_body(resp, 314159, "UnaryCall")
    _has(call.initial_metadata(), ECHO_INITIAL, "test_initial_metadata_value",
         "UnaryCall initial metadata")
    _has(call.trailing_metadata(), ECHO_TRAILING, b"\xab\xab\xab",
         "UnaryCall trailing metadata")
    call = stub.FullDuplexCall(iter([_duplex_req(314159, 271828)]),
                               metadata=md, timeout=TIMEOUT)
    resps = list(call)
    check(len(resps) == 1, "FullDuplexCall: %d responses" % len(resps))
    _has(call.initial_metadata(), ECHO_INITIAL, "test_initial_metadata_value",
         "FullDuplexCall initial metadata")
    _has(call.trailing_metadata(), ECHO_TRAILING, b"\xab\xab\xab",
         "FullDuplexCall trailing metadata")


def _echo_status(stub, message):
    st = Msg.EchoStatus(code=2, message=message)
    e = expect_code(lambda: stub.UnaryCall(
        Msg.SimpleRequest(response_status=st), timeout=TIMEOUT),
        grpc.StatusCode.UNKNOWN, "UnaryCall")
    check(e.details() == message,
          "UnaryCall: message %r, want %r" % (e.details(), message))
    return st


def status_code_and_message(stub):
    st = _echo_status(stub, "test status message")
    e = expect_code(lambda: list(stub.FullDuplexCall(
        iter([Msg.StreamingOutputCallRequest(response_status=st)]),
        timeout=TIMEOUT)), grpc.StatusCode.UNKNOWN, "FullDuplexCall")
    check(e.details() == st.message,
          "FullDuplexCall: message %r, want %r" % (e.details(), st.message))


def special_status_message(stub):
    _echo_status(stub, "\t\ntest with whitespace\r\nand Unicode BMP \u263a "
                 "and non-BMP \U0001f608\t\n")


def unimplemented_method(stub):
    expect_code(lambda: stub.UnimplementedCall(empty_pb2.Empty(),
                                               timeout=TIMEOUT),
                grpc.StatusCode.UNIMPLEMENTED, "TestService/UnimplementedCall")


def unimplemented_service(stub, channel):
    stub = test_pb2_grpc.UnimplementedServiceStub(channel)
    expect_code(lambda: stub.UnimplementedCall(empty_pb2.Empty(),
                                               timeout=TIMEOUT),
                grpc.StatusCode.UNIMPLEMENTED,
                "UnimplementedService/UnimplementedCall")


CASES = (
    "empty_unary", "large_unary", "client_streaming", "server_streaming",
    "ping_pong", "empty_stream", "timeout_on_sleeping_server",
    "cancel_after_begin", "cancel_after_first_response", "custom_metadata",
    "status_code_and_message", "special_status_message",
    "unimplemented_method", "unimplemented_service",
    "client_compressed_unary", "server_compressed_unary",
    "client_compressed_streaming", "server_compressed_streaming",
)


def run(name, stub, channel):
    fn = globals()[name]
    try:
        fn(stub, channel) if name == "unimplemented_service" else fn(stub)
    except NotExpressible as e:
        print("N/A %s: %s" % (name, e), flush=True)
        return "n/a"
    except Exception as e:  # any failure, named, instead of a traceback
        if isinstance(e, grpc.RpcError):
            e = "unexpected RPC error %s: %s" % (e.code(), e.details())
        print("FAIL %s: %s" % (name, e or type(e).__name__), flush=True)
        return "fail"
    print("PASS %s" % name, flush=True)
    return "pass"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server_host", default="localhost")
    ap.add_argument("--server_port", type=int, required=True)
    ap.add_argument("--test_case", required=True)
    interop_tls.add_client_flags(ap)
    args = ap.parse_args()
    creds, opts = interop_tls.channel_credentials("interop_client.py", args)
    names = CASES if args.test_case == "all" else (args.test_case,)
    for n in names:
        if n not in CASES:
            sys.exit("interop_client.py: unknown --test_case %s" % n)
    host = args.server_host
    if ":" in host:
        host = "[%s]" % host
    target = "%s:%d" % (host, args.server_port)
    channel = (grpc.secure_channel(target, creds, options=opts) if creds
               else grpc.insecure_channel(target, options=opts))
    with channel:
        stub = test_pb2_grpc.TestServiceStub(channel)
        results = [run(n, stub, channel) for n in names]
    if "fail" in results:
        sys.exit(1)
    sys.exit(3 if "n/a" in results else 0)


if __name__ == "__main__":
    main()
