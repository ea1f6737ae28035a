#!/usr/bin/python3
"""Checks the interop server's paths that the standard interop cases never
reach, against both handler styles, with real grpcio clients.

    conformance/server_paths.py              (after bazel build //conformance:all)
    conformance/server_paths.py --bin_dir DIR --handlers=async

For each style (interop_server --handlers=blocking and --handlers=async) it
starts a server with --port=0 and runs the checks below, one PASS or FAIL
line each ("PASS async/flow_control: ..."). They aim at the async server's
worker thread (response_parameters' interval_us), its flow control
(crpc_server_call_can_send / on_send_ready), cancellation while a worker
sleeps (exactly one finish) and shutdown with a worker asleep; the blocking
server must answer alike. Time is asserted one way only, so that a loaded
machine cannot fail a check: a response must never come before the sum of
the intervals before it (exact lower bounds), and anything that must be
prompt gets bounds of seconds. Every call has a deadline, so a server that
stops answering fails its check instead of hanging the run.
Exits 1 if any check failed or a server crashed, hung on SIGTERM or printed
a sanitizer report.
"""
import argparse
import concurrent.futures
import os
import queue
import sys
import time

from interop_procs import sanitizer_report, start_server, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
MS = 1000  # interval_us per millisecond
CALL_TIMEOUT = 15.0  # every call's deadline, s: far above any check's need
PROMPT = 5.0  # a cancel or deadline answered within this, s; intervals 30 s
LONG_US = 30000 * MS  # an interval no check waits out
DEADLINE = 2.0  # deadline_mid_interval's; its first response comes long before
GRACE = 1.0  # interop_server's shutdown grace (server_main.c)
EXIT_BOUND = 10.0  # SIGTERM to exit: at most GRACE + this, s
FLOW_N, FLOW_SIZE = 200, 100000  # flow control: 200 responses of ~100 KB

grpc = Msg = empty_pb2 = test_grpc = None  # imported in main()


def P(size, interval_ms=0, interval_us=None):
    return Msg.ResponseParameters(
        size=size, interval_us=interval_us if interval_us is not None
        else interval_ms * MS)


def R(*params, status=None):
    req = Msg.StreamingOutputCallRequest(response_parameters=params)
    if status is not None:
        req.response_status.code, req.response_status.message = status
    return req


class Responses:
    """Reads a call's responses: (seconds since t0, size, body all zero)
    each, then the status (grpc.StatusCode.OK or the error's)."""

    def __init__(self, call, t0):
        self.call, self.t0, self.got = call, t0, []
        self.code = self.details = None

    def take(self, n=None):
        """n responses (all until the end if None); False if it ended."""
        try:
            while n is None or n > 0:
                r = next(self.call)
                body = r.payload.body
                self.got.append((time.monotonic() - self.t0, len(body),
                                 not body.strip(b"\0")))
                n = n - 1 if n is not None else None
            return True
        except StopIteration:
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()
        return False

    def sizes(self):
        return [s for _, s, _ in self.got]

    def check(self, params, code=None, start=0.0):
        """(ok, detail): the responses are params' sizes in order, all zero
        bodies, each no sooner than start plus the intervals up to it; the
        status code (OK if None) once ended."""
        want = [p.size for p in params]
        late, due_us = [], 0
        for (t, _, _), p in zip(self.got, params):
            due_us += p.interval_us
            if t < start + due_us / 1e6:
                late.append("%.3f<%.3f" % (t, start + due_us / 1e6))
        ok = (self.sizes() == want and all(z for _, _, z in self.got)
              and not late and self.code == (code or grpc.StatusCode.OK))
        last = self.got[-1][0] if self.got else 0.0
        return ok, "sizes %s (want %s), status %s %r, last at %.3fs%s" % (
            short(self.sizes()), short(want), self.code, self.details, last,
            ", too early: " + " ".join(late) if late else "")


def short(xs):
    return str(xs) if len(xs) <= 8 else "[%s, ... %d in all]" % (
        ", ".join(map(str, xs[:3])), len(xs))


def stream(stub, params, timeout=CALL_TIMEOUT):
    """A StreamingOutputCall; its Responses' clock starts before the call
    does, so that no interval can fall before it."""
    t0 = time.monotonic()
    call = stub.StreamingOutputCall(R(*params), timeout=timeout)
    return call, Responses(call, t0)


def duplex(method, reqs, ping_pong, gap=0.0):
    """Runs a bidi call (FullDuplexCall / HalfDuplexCall): ping_pong sends
    each request after the previous one's responses, else all at once (gap
    s apart). Returns (Responses, seconds since t0 of the half-close)."""
    q = queue.Queue()
    t0 = time.monotonic()
    call = method(iter(q.get, None), timeout=CALL_TIMEOUT)
    res = Responses(call, t0)
    try:
        for req in reqs:
            q.put(req)
            if ping_pong:
                res.take(len(req.response_parameters))
            elif gap:
                time.sleep(gap)
        half_close = time.monotonic() - t0
    finally:
        q.put(None)
    res.take()
    return res, half_close


def params_of(reqs):
    return [p for r in reqs for p in r.response_parameters]


def healthy(stub):
    """After an abandoned call: a new call on the same channel works."""
    stub.EmptyCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    return True


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


# ---- intervals (the async server's worker thread) ----

@check
def streaming_output_intervals(stub):
    params = [P(1, 40), P(2, 60), P(3, 30)]
    call, res = stream(stub, params)
    res.take()
    return res.check(params)


@check
def streaming_output_mixed(stub):
    # Loop, then the worker from the first interval on, to the end.
    params = [P(4), P(5), P(6, 50), P(7), P(8, 30), P(9)]
    call, res = stream(stub, params)
    res.take()
    return res.check(params)


@check
def full_duplex_intervals(stub):
    reqs = [R(P(11, 30)), R(P(12, 30), P(13, 20)), R(P(14, 30))]
    res, _ = duplex(stub.FullDuplexCall, reqs, ping_pong=True)
    return res.check(params_of(reqs))


@check
def full_duplex_mixed(stub):
    # Sent at once: requests queue while the worker sleeps, and the call
    # goes back and forth between the loop (no interval) and a worker.
    reqs = [R(P(21), P(22, 40)), R(P(23)), R(P(24), P(25)), R(P(26, 30)),
            R(P(27))]
    res, _ = duplex(stub.FullDuplexCall, reqs, ping_pong=False)
    ok, detail = res.check(params_of(reqs))
    # Ping-pong too: each hand-back to the loop, then on to a worker again.
    res2, _ = duplex(stub.FullDuplexCall, reqs, ping_pong=True)
    ok2, detail2 = res2.check(params_of(reqs))
    return ok and ok2, "at once: %s; ping-pong: %s" % (detail, detail2)


@check
def half_duplex_mixed(stub):
    # Nothing is answered before the half-close, then all in order, the
    # intervals counted from the half-close.
    reqs = [R(P(31, 30), P(32)), R(P(33)), R(P(34), P(35, 30))]
    res, half_close = duplex(stub.HalfDuplexCall, reqs, ping_pong=False,
                             gap=0.05)
    ok, detail = res.check(params_of(reqs), start=half_close)
    return ok, "%s; half-close at %.3fs" % (detail, half_close)


@check
def echo_status_after_intervals(stub):
    # Responses with intervals, then a request with Echo Status: its status
    # ends the call after what came before and without its own response
    # or anything after it.
    reqs = [R(P(41, 50), P(42, 50)), R(P(43)),
            R(P(44), status=(7, "boom %s")), R(P(45))]
    res, _ = duplex(stub.FullDuplexCall, reqs, ping_pong=False)
    ok, detail = res.check(params_of(reqs[:2]), grpc.StatusCode.PERMISSION_DENIED)
    return ok and res.details == "boom %s", detail


@check
def bad_size_after_interval(stub):
    params = [P(51, 20), P(-1)]
    call, res = stream(stub, params)
    res.take()
    return res.check(params[:1], grpc.StatusCode.INVALID_ARGUMENT)


@check
def concurrent_intervals(stub):
    # 50 calls at once, each with a worker (or a handler thread) asleep.
    def one(i):
        params = [P(100 + i, 20), P(100 + i, 20)]
        call, res = stream(stub, params)
        res.take()
        return res.check(params)
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    bad = [d for ok, d in results if not ok]
    return not bad, "%d/50 right%s" % (50 - len(bad),
                                       "; first wrong: " + bad[0] if bad else "")


# ---- flow control (crpc_server_call_can_send / on_send_ready) ----

def flow(stub, interval_us):
    """200 responses of ~100 KB (sizes differ, so order shows) to a reader
    that starts late and reads slowly: the server's send buffer fills and
    must resume on on_send_ready (the loop's pump, or the worker's wait)."""
    params = [P(FLOW_SIZE + i, interval_us=interval_us) for i in range(FLOW_N)]
    call, res = stream(stub, params)
    time.sleep(0.3)
    for _ in range(10):
        if res.take(1):
            time.sleep(0.02)
    res.take()
    return res.check(params)


@check
def flow_control(stub):
    return flow(stub, 0)


@check
def flow_control_intervals(stub):
    return flow(stub, 1)  # 1 us each: every response from the worker


# ---- cancellation and deadlines while a worker sleeps ----

@check
def cancel_mid_interval(stub):
    call, res = stream(stub, [P(61), P(62, interval_us=LONG_US)])
    res.take(1)
    time.sleep(0.2)  # the worker is asleep now
    t0 = time.monotonic()
    call.cancel()
    res.take()
    took = time.monotonic() - t0
    ok = (res.sizes() == [61] and res.code == grpc.StatusCode.CANCELLED
          and took < PROMPT and healthy(stub))
    return ok, "sizes %s, %s after %.3fs" % (res.sizes(), res.code, took)


@check
def full_duplex_cancel_mid_interval(stub):
    q = queue.Queue()
    call = stub.FullDuplexCall(iter(q.get, None), timeout=CALL_TIMEOUT)
    res = Responses(call, time.monotonic())
    q.put(R(P(71, 20)))
    res.take(1)
    q.put(R(P(72)))
    res.take(1)
    q.put(R(P(73, interval_us=LONG_US)))
    time.sleep(0.2)
    t0 = time.monotonic()
    call.cancel()
    q.put(None)
    res.take()
    took = time.monotonic() - t0
    ok = (res.sizes() == [71, 72] and res.code == grpc.StatusCode.CANCELLED
          and took < PROMPT and healthy(stub))
    return ok, "sizes %s, %s after %.3fs" % (res.sizes(), res.code, took)


@check
def deadline_mid_interval(stub):
    call, res = stream(stub, [P(81), P(82, interval_us=LONG_US)],
                       timeout=DEADLINE)
    res.take()
    took = time.monotonic() - res.t0
    ok = (res.sizes() == [81] and res.code == grpc.StatusCode.DEADLINE_EXCEEDED
          and took < DEADLINE + PROMPT and healthy(stub))
    return ok, "sizes %s, %s after %.3fs" % (res.sizes(), res.code, took)


@check
def healthy_after_all(stub):
    return healthy(stub), ""


def shutdown_mid_interval(stub, proc):
    """SIGTERM while a call's worker (handler thread) sleeps a long
    interval: the server ends the call after its grace and exits 0, within
    GRACE + EXIT_BOUND, with no sanitizer report; the call ends in an
    error. Also the server's last word on every check before: a worker of
    an earlier call that never woke would hold the exit up."""
    call, res = stream(stub, [P(91), P(92, interval_us=LONG_US)])
    res.take(1)
    time.sleep(0.2)
    code, out, took = terminate(proc, timeout=GRACE + EXIT_BOUND + 20)
    res.take()
    report = sanitizer_report(out)
    ok = (code == 0 and took < GRACE + EXIT_BOUND and not report
          and res.sizes() == [91] and res.code not in (None, grpc.StatusCode.OK))
    return ok, "exit %s after %.3fs, call ended %s%s" % (
        code, took, res.code, "; " + report[:500] if report else "")


def run_style(style, server_argv, env):
    """Starts interop_server --handlers=style and runs every check on it;
    prints a line per check; returns the number of failures."""
    failed = 0

    def report(name, ok, detail):
        nonlocal failed
        failed += not ok
        print("%s %s/%s%s" % ("PASS" if ok else "FAIL", style, name,
                              ": " + detail if detail else ""), flush=True)

    try:
        proc, port = start_server(style, server_argv + ["--handlers=" + style],
                                  env)
    except RuntimeError as e:
        report("start", False, str(e))
        return failed
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    stub = test_grpc.TestServiceStub(channel)
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT)
        except grpc.FutureTimeoutError:
            report("connect", False, "no connection to port %d" % port)
            return failed
        for fn in CHECKS:
            t0 = time.monotonic()
            try:
                ok, detail = fn(stub)
            except Exception as e:  # an unexpected RpcError, say
                ok, detail = False, "%s: %s" % (type(e).__name__, e)
            report(fn.__name__, ok, "%s (%.2fs)" % (detail, time.monotonic() - t0))
            if proc.poll() is not None:
                out = proc.stdout.read()
                report("server_alive", False, "exited with %s during %s: %s" % (
                    proc.returncode, fn.__name__, sanitizer_report(out)[:500]
                    or " | ".join(out.strip().splitlines()[-3:])))
                break
        else:
            report("shutdown_mid_interval", *shutdown_mid_interval(stub, proc))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        channel.close()
    return failed


def main():
    global grpc, Msg, empty_pb2, test_grpc
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin_dir", default=os.path.join(
        os.path.dirname(HERE), "bazel-bin", "conformance"))
    ap.add_argument("--python_dir", default=os.path.join(HERE, "python"))
    ap.add_argument("--handlers", choices=("blocking", "async", "both"),
                    default="both")
    args = ap.parse_args()
    sys.path.insert(0, args.python_dir)
    import grpc
    import interop_stubs
    empty_pb2, Msg, test_grpc = interop_stubs.load(HERE)

    server = [os.path.join(args.bin_dir, "interop_server"), "--use_tls=false"]
    styles = ("blocking", "async") if args.handlers == "both" else (args.handlers,)
    t0 = time.monotonic()
    failed = sum(run_style(s, server, dict(os.environ)) for s in styles)
    print("%s: %d check(s) failed, %.1fs" % (
        "FAIL" if failed else "PASS", failed, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
