#!/usr/bin/python3
"""A real gRPC client (Debian's python3-grpcio) for the crpc.test.Test service.

Run it with /usr/bin/python3 (the pyenv python3 on PATH cannot import grpc).

    py_client.py --target 127.0.0.1:PORT --case NAME [--case NAME ...]

Runs each scenario against a server implementing crpc.test.Test (crpc's
rpc/testing/test_service.c or py_server.py), prints one line per case,
"PASS <case> ..." or "FAIL <case>: <why>", and exits 0 only if every check
passed. --case all runs every case. The protocol is in rpc/testing/README.md.
"""

import argparse
import os
import queue
import sys
import time

import grpc

SERVICE = "/crpc.test.Test/"
NON_ASCII = "nicht gefunden: \u00fc\u00df \u2603 \U0001F642 100% done\r\n"


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def tag_for(case):
    return "%s-%d-%d" % (case, os.getpid(), time.monotonic_ns())


def expect_error(fn, code):
    try:
        r = fn()
    except grpc.RpcError as e:
        check(e.code() == code, "want %s, got %s (%r)" % (code, e.code(), e.details()))
        return e
    raise Fail("want %s, got success %r" % (code, r))


class Cases:
    def __init__(self, channel):
        self.ch = channel
        self.echo = channel.unary_unary(SERVICE + "Echo")
        self.count = channel.unary_stream(SERVICE + "Count")
        self.collect = channel.stream_unary(SERVICE + "Collect")
        self.chat = channel.stream_stream(SERVICE + "Chat")
        self.hang = channel.unary_unary(SERVICE + "Hang")
        self.report_rpc = channel.unary_unary(SERVICE + "Report")

    def report(self, tag):
        text = self.report_rpc(tag.encode(), timeout=10).decode()
        return dict(kv.split("=", 1) for kv in text.split())

    # -- the four shapes --------------------------------------------------
    def unary(self):
        check(self.echo(b"hello crpc", timeout=10) == b"hello crpc", "echo mismatch")
        check(self.echo(b"", timeout=10) == b"", "empty echo mismatch")
        big = bytes(range(256)) * 4096  # 1 MiB
        check(self.echo(big, timeout=10) == big, "1 MiB echo mismatch")
        return "3 echoes"

    def server_stream(self):
        got = list(self.count(b"5 100 0", timeout=10))
        check(len(got) == 5, "want 5 messages, got %d" % len(got))
        for i, m in enumerate(got):
            check(m == bytes([i]) * 100, "message %d wrong" % i)
        return "5 messages"

    def client_stream(self):
        r = self.collect(iter([b"a" * 10, b"b" * 20, b"c" * 30]), timeout=10)
        check(r == b"3 60", "want '3 60', got %r" % r)
        r = self.collect(iter([]), timeout=10)
        check(r == b"0 0", "want '0 0', got %r" % r)
        return "3 messages, 60 bytes"

    def bidi(self):
        q = queue.Queue()

        def reqs():
            while True:
                m = q.get()
                if m is None:
                    return
                yield m

        it = self.chat(reqs(), timeout=10)
        for i in range(5):
            msg = ("ping %d" % i).encode()
            q.put(msg)
            got = next(it)
            check(got == msg, "round %d: got %r" % (i, got))
        q.put(None)
        check(list(it) == [], "extra messages after half-close")
        check(it.code() == grpc.StatusCode.OK, "status %s" % it.code())
        return "5 ping-pongs"

    # -- metadata and status ----------------------------------------------
    def metadata(self):
        binval = b"\x00\xff\x01binary\x80"
        md = (("x-echo-md", "1"), ("x-md-ascii", "v1 with spaces"),
              ("x-md-data-bin", binval))
        resp, call = self.echo.with_call(b"md", metadata=md, timeout=10)
        check(resp == b"md", "echo mismatch")
        hdrs = dict(call.initial_metadata())
        trls = dict(call.trailing_metadata())
        check(hdrs.get("x-md-ascii") == "v1 with spaces", "header x-md-ascii: %r" % hdrs)
        check(hdrs.get("x-md-data-bin") == binval, "header x-md-data-bin: %r" % hdrs)
        check(trls.get("x-trl-ascii") == "v1 with spaces", "trailer x-trl-ascii: %r" % trls)
        check(trls.get("x-trl-data-bin") == binval, "trailer x-trl-data-bin: %r" % trls)
        return "headers and trailers echoed incl. -bin"

    def error(self):
        md = (("x-status", "5"), ("x-message-bin", NON_ASCII.encode("utf-8")))
        e = expect_error(lambda: self.echo(b"x", metadata=md, timeout=10),
                         grpc.StatusCode.NOT_FOUND)
        check(e.details() == NON_ASCII, "details %r != %r" % (e.details(), NON_ASCII))
        return "NOT_FOUND with non-ASCII message"

    def stream_error(self):
        it = self.count(b"2 16 0", metadata=(("x-status", "9"), ("x-message", "stop")),
                        timeout=10)
        got = []
        try:
            for m in it:
                got.append(m)
            raise Fail("stream ended OK")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.FAILED_PRECONDITION, "code %s" % e.code())
            check(e.details() == "stop", "details %r" % e.details())
        check(len(got) == 2, "want 2 messages before the error, got %d" % len(got))
        return "2 messages then FAILED_PRECONDITION"

    def unimplemented(self):
        expect_error(lambda: self.ch.unary_unary(SERVICE + "NoSuchMethod")(b"", timeout=10),
                     grpc.StatusCode.UNIMPLEMENTED)
        expect_error(lambda: self.ch.unary_unary("/crpc.test.NoSuchService/Echo")(b"", timeout=10),
                     grpc.StatusCode.UNIMPLEMENTED)
        return "method and service"

    # -- cancellation -----------------------------------------------------
    def cancel(self):
        tag = tag_for("cancel")
        it = self.count(b"0 64 1000", metadata=(("x-tag", tag),), timeout=10)
        for _ in range(3):
            next(it)
        t0 = time.monotonic()
        it.cancel()
        try:
            for _ in it:
                pass
            raise Fail("stream went on after cancel")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.CANCELLED, "code %s" % e.code())
        check(time.monotonic() - t0 < 1.0, "cancel took too long on the client")
        r = self.report(tag)
        check(r.get("end") == "CANCELLED", "server saw %r" % r)
        # the connection is still usable
        check(self.echo(b"after", timeout=10) == b"after", "echo after cancel")
        return "server saw %s origin=%s after %s sends" % (r["end"], r.get("origin"), r.get("sent"))

    def cancel_unary(self):
        tag = tag_for("cancel_unary")
        fut = self.hang.future(b"", metadata=(("x-tag", tag),), timeout=10)
        time.sleep(0.1)
        fut.cancel()
        check(fut.cancelled(), "future not cancelled")
        r = self.report(tag)
        check(r.get("end") == "CANCELLED", "server saw %r" % r)
        return "server saw %s origin=%s" % (r["end"], r.get("origin"))

    def deadline(self):
        tag = tag_for("deadline")
        t0 = time.monotonic()
        expect_error(lambda: self.hang(b"", metadata=(("x-tag", tag),), timeout=0.3),
                     grpc.StatusCode.DEADLINE_EXCEEDED)
        el = time.monotonic() - t0
        check(0.28 <= el < 3.0, "deadline after %.3fs" % el)
        r = self.report(tag)
        # The server's ctx ends by its own timer (DEADLINE_EXCEEDED) or by the
        # client's RST_STREAM sent at the same instant (CANCELLED): a race.
        check(r.get("end") in ("DEADLINE_EXCEEDED", "CANCELLED"), "server saw %r" % r)
        tm = int(r.get("timeout_ms", "-1"))
        # grpcio rounds its grpc-timeout up (0.3 s goes out as "301m" or a
        # little more), so a server that dispatches within a millisecond
        # sees 301-303 ms left.
        check(100 <= tm <= 305, "server's deadline was %d ms (want ~300)" % tm)
        return "client %.0f ms; server saw %s origin=%s timeout_ms=%d" % (
            el * 1000, r["end"], r.get("origin"), tm)

    def deadline_stream(self):
        tag = tag_for("deadline_stream")
        it = self.count(b"0 32 2000", metadata=(("x-tag", tag),), timeout=0.3)
        n = 0
        try:
            for _ in it:
                n += 1
            raise Fail("stream ended OK")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "code %s" % e.code())
        check(n > 0, "no message before the deadline")
        r = self.report(tag)
        check(r.get("end") in ("DEADLINE_EXCEEDED", "CANCELLED"), "server saw %r" % r)
        return "%d messages then DEADLINE_EXCEEDED; server saw %s" % (n, r["end"])


ALL = ["unary", "server_stream", "client_stream", "bidi", "metadata", "error",
       "stream_error", "unimplemented", "cancel", "cancel_unary", "deadline",
       "deadline_stream"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--case", action="append", required=True)
    ap.add_argument("--connect_timeout", type=float, default=10.0)
    args = ap.parse_args()
    cases = ALL if "all" in args.case else args.case
    ok = True
    with grpc.insecure_channel(args.target) as ch:
        try:
            grpc.channel_ready_future(ch).result(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            print("FAIL connect: %s not ready in %g s" % (args.target, args.connect_timeout),
                  flush=True)
            return 1
        c = Cases(ch)
        for name in cases:
            fn = getattr(c, name, None)
            if fn is None or name not in ALL:
                print("FAIL %s: no such case" % name, flush=True)
                ok = False
                continue
            try:
                print("PASS %s: %s" % (name, fn()), flush=True)
            except Fail as e:
                print("FAIL %s: %s" % (name, e), flush=True)
                ok = False
            except grpc.RpcError as e:
                print("FAIL %s: unexpected %s %r" % (name, e.code(), e.details()), flush=True)
                ok = False
            except Exception as e:  # pylint: disable=broad-except
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
