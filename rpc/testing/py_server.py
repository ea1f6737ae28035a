#!/usr/bin/python3
"""A real gRPC server (Debian's python3-grpcio) implementing crpc.test.Test.

Run it with /usr/bin/python3 (the pyenv python3 on PATH cannot import grpc).

    py_server.py [--port N]

Listens on 127.0.0.1:N (0, the default, picks a free port), prints
"PORT <n>" on stdout once it serves, and exits on stdin EOF or SIGTERM.
The protocol of the test service is described in rpc/testing/README.md;
rpc/testing/test_service.c implements the same service on crpc's server.
"""

import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "crpc.test.Test"
CODES = {c.value[0]: c for c in grpc.StatusCode}


# ---- observations (what the server saw, per x-tag) -----------------------

_obs_lock = threading.Condition()
_obs = {}


def _record(tag, text):
    if not tag:
        return
    with _obs_lock:
        if tag not in _obs:  # the first record of a call wins
            _obs[tag] = text
            _obs_lock.notify_all()


class Call:
    """Per-call bookkeeping: control headers, counters, the cancel event."""

    def __init__(self, method, context):
        self.method = method
        self.context = context
        self.md = list(context.invocation_metadata() or [])
        self.tag = self.get("x-tag")
        self.sent = 0
        self.recv = 0
        self.ended = threading.Event()
        rem = context.time_remaining()
        self.timeout_ms = -1 if rem is None else int(rem * 1000)
        context.add_callback(self._on_done)

    def get(self, key, default=None):
        for k, v in self.md:
            if k == key:
                return v
        return default

    def _on_done(self):
        # Runs when the RPC terminates for any reason. A handler that
        # finished normally has recorded already; otherwise the call was
        # cancelled or its deadline passed.
        rem = self.context.time_remaining()
        end = "DEADLINE_EXCEEDED" if rem is not None and rem <= 0 else "CANCELLED"
        self.finish(end)
        self.ended.set()

    def finish(self, end):
        _record(self.tag, "method=%s end=%s origin=- sent=%d recv=%d timeout_ms=%d" %
                (self.method, end, self.sent, self.recv, self.timeout_ms))

    def prologue(self):
        """Metadata echo and sleep, common to every method."""
        if self.get("x-echo-md") == "1":
            hdrs, trls = [], []
            for k, v in self.md:
                if k.startswith("x-md-"):
                    hdrs.append((k, v))
                    trls.append(("x-trl-" + k[len("x-md-"):], v))
            self.context.send_initial_metadata(hdrs)
            self.context.set_trailing_metadata(trls)
        sleep_ms = self.get("x-sleep-ms")
        if sleep_ms is not None:
            if self.ended.wait(int(sleep_ms) / 1000.0):
                return False
        return True

    def epilogue(self):
        """Ends the call with x-status / x-message(-bin) if asked, else OK."""
        code = int(self.get("x-status", "0"))
        if code == 0:
            self.finish("OK")
            return
        msg = self.get("x-message", "")
        mb = self.get("x-message-bin")
        if mb is not None:
            msg = mb.decode("utf-8")
        self.finish(CODES[code].name)
        self.context.abort(CODES[code], msg)


# ---- handlers -------------------------------------------------------------

def echo(request, context):
    c = Call("Echo", context)
    c.recv = 1
    if not c.prologue():
        return b""
    c.sent = 1
    c.epilogue()
    return request


def count(request, context):
    c = Call("Count", context)
    c.recv = 1
    try:
        n, size, interval_us = (int(x) for x in request.decode().split())
    except ValueError:
        c.finish("INVALID_ARGUMENT")
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Count wants 'n size interval_us'")
    if not c.prologue():
        return
    i = 0
    while n == 0 or i < n:
        if c.ended.is_set() or not context.is_active():
            return
        yield bytes([i & 0xFF]) * size
        c.sent += 1
        i += 1
        if interval_us > 0 and c.ended.wait(interval_us / 1e6):
            return
    c.epilogue()


def collect(request_iterator, context):
    c = Call("Collect", context)
    if not c.prologue():
        return b""
    total = 0
    for m in request_iterator:
        c.recv += 1
        total += len(m)
    c.sent = 1
    c.epilogue()
    return ("%d %d" % (c.recv, total)).encode()


def chat(request_iterator, context):
    c = Call("Chat", context)
    if not c.prologue():
        return
    for m in request_iterator:
        c.recv += 1
        yield m
        c.sent += 1
    c.epilogue()


def hang(request, context):
    c = Call("Hang", context)
    c.recv = 1
    c.prologue()
    # Never answers; returns once the call is cancelled or expires (the cap
    # only keeps a broken test from leaking a thread forever).
    c.ended.wait(60)
    return b""


def report(request, context):
    tag = request.decode()
    rem = context.time_remaining()
    limit = time.monotonic() + (5.0 if rem is None else min(rem, 5.0))
    with _obs_lock:
        while tag not in _obs:
            left = limit - time.monotonic()
            if left <= 0:
                context.abort(grpc.StatusCode.NOT_FOUND, "no observation for tag " + tag)
            _obs_lock.wait(left)
        return _obs[tag].encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "Hang": grpc.unary_unary_rpc_method_handler(hang),
        "Report": grpc.unary_unary_rpc_method_handler(report),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                         handlers=(handler,),
                         options=[("grpc.so_reuseport", 0)])
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    if port == 0:
        print("ERROR cannot bind", flush=True)
        sys.exit(1)
    server.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("PORT %d" % port, flush=True)
    while not stop.wait(0.2):
        pass
    server.stop(grace=None)
    os._exit(0)  # do not wait for handler threads still parked in Hang


if __name__ == "__main__":
    main()
