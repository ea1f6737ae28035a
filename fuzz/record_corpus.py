#!/usr/bin/python3
"""Records the fuzz targets' seed corpora from real gRPC traffic.

    ./crpc.sh fuzz-record          (builds record_peer, then runs this)
    /usr/bin/python3 fuzz/record_corpus.py --peer PATH/record_peer \
        [--grpcpp DIR] [--out fuzz/corpus]

Run it with /usr/bin/python3 (Debian's grpc module). A recording TCP proxy
sits between real peers and keeps each connection's bytes, both ways:

  server/  what grpcio (rpc/testing/py_client.py, every case, plus a few
           compressed and binary-metadata calls made here) and the gRPC C++
           bench client send to a crpc server (record_peer serve: the
           server fuzz target's methods), and what crpc's own client sends
           (below), preface stripped;
  client/  a selector byte (fuzz/client_calls.h) and what real servers send
           back: grpcio's py_server.py and the gRPC C++ bench server
           answering record_peer client (the client target's own calls),
           and the crpc server's side of the sessions above;
  wire/    the wire codecs' inputs cut out of those connections (HPACK-
           decoded by record_peer dump): grpc-timeout, grpc-message, -bin
           values, encodings, statuses, header lists, message streams,
           compressed messages;
  codegen/ CodeGeneratorRequests protoc writes for the repository's .proto
           files (a capture plugin) and for codegen/testdata/bad/*.txtpb.

Each file is cut at a frame boundary to at most --max-bytes. Files this
script wrote before (their names start with a source prefix) are replaced;
others (regress-*: inputs that once crashed) are kept.
"""

import argparse
import hashlib
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PREFIXES = ("grpcio-", "grpcpp-", "crpc-", "protoc-", "bad-", "wire-")
PY = "/usr/bin/python3"

# client_calls.h selector bits.
UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI = 0, 1, 2, 3
SECOND, GZIP = 0x10, 0x20


def sel(first, second=None, gzip=False):
    s = first
    if second is not None:
        s |= SECOND | (second << 2)
    return s | (GZIP if gzip else 0)


# ---- the recording proxy ---------------------------------------------------


class Proxy:
    """Listens on 127.0.0.1, forwards each connection to upstream and keeps
    its bytes: sessions() returns [(client_to_server, server_to_client)]."""

    def __init__(self, upstream_port):
        self.upstream = ("127.0.0.1", upstream_port)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.done = []
        self.live = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.upstream)
            except OSError:
                c.close()
                continue
            bufs = [bytearray(), bytearray()]
            with self.lock:
                self.live += 1
            ends = []
            for i, (a, b) in enumerate(((c, u), (u, c))):
                t = threading.Thread(target=self._pump, args=(a, b, bufs[i]), daemon=True)
                t.start()
                ends.append(t)
            threading.Thread(target=self._join, args=(ends, c, u, bufs), daemon=True).start()

    @staticmethod
    def _pump(src, dst, buf):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _join(self, ends, c, u, bufs):
        for t in ends:
            t.join()
        c.close()
        u.close()
        with self.lock:
            self.done.append((bytes(bufs[0]), bytes(bufs[1])))
            self.live -= 1

    def sessions(self, settle=5.0):
        """Waits (up to settle s) for open connections to end; takes them."""
        deadline = time.time() + settle
        while time.time() < deadline:
            with self.lock:
                if self.live == 0:
                    break
            time.sleep(0.02)
        with self.lock:
            out, self.done = self.done, []
        return out

    def close(self):
        self.lsock.close()


# ---- frames ----------------------------------------------------------------


def cut(data, limit):
    """data up to the last whole HTTP/2 frame within limit bytes."""
    off = 0
    while len(data) - off >= 9:
        n = 9 + int.from_bytes(data[off:off + 3], "big")
        if off + n > len(data) or off + n > limit:
            break
        off += n
    return data[:off]


def strip_preface(c2s):
    return c2s[len(PREFACE):] if c2s.startswith(PREFACE) else c2s


# ---- peers -----------------------------------------------------------------


class Child:
    """A server process that prints "PORT <n>" and serves until stdin EOF."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline()
        m = re.match(r"PORT (\d+)", line)
        if not m:
            self.stop()
            raise SystemExit("record_corpus: %s did not print PORT (got %r)" % (argv[0], line))
        self.port = int(m.group(1))

    def stop(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


class PortChild(Child):
    """A server given its port on the command line (gRPC C++ bench)."""

    def __init__(self, argv_fmt):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.p = subprocess.Popen([a.format(port=self.port) for a in argv_fmt],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port)).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit("record_corpus: %s did not listen" % argv_fmt[0])

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def run(label, argv, timeout=60):
    """Runs a client to its end; prints the label and its last line."""
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    last = r.stdout.strip().splitlines()[-1:] or [""]
    print("  %-22s %s" % (label, last[0][:90]))


# Extra grpcio calls: compression both ways, -bin metadata, a message of
# several DATA frames, a deadline. Run as a child (one connection each).
GRPCIO_EXTRA = r'''
import sys, grpc
target, case = sys.argv[1], sys.argv[2]
comp = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(case)
ch = grpc.insecure_channel(target, compression=comp)
echo = ch.unary_unary("/crpc.test.Test/Echo")
chat = ch.stream_stream("/crpc.test.Test/Chat")
md = [("x-echo-md", "1"), ("x-md-k", "v a l"), ("x-md-b-bin", b"\x00\xff\x10bin"),
      ("x-md-e-bin", b"")]
try:
    if case in ("gzip", "deflate"):
        echo(b"z" * 3000, metadata=md, timeout=5)
        list(chat(iter([b"a" * 500, b"b" * 10]), timeout=5))
    elif case == "big":
        echo(bytes(range(256)) * 160, timeout=5)
    elif case == "status":
        echo(b"x", metadata=[("x-status", "9"), ("x-message-bin", "f\u00e4il 100%".encode())],
             timeout=5)
except grpc.RpcError as e:
    print(case, e.code())
    sys.exit(0)
print(case, "OK")
'''


def record_server_side(peer, grpcpp, limit):
    """(c2s sessions for the server corpus, s2c with selectors for the
    client corpus), each labelled."""
    server_files, client_files = [], []
    srv = Child([peer, "serve"])
    try:
        target = None
        cases = [("unary", sel(UNARY)), ("server_stream", sel(SERVER_STREAM)),
                 ("client_stream", sel(CLIENT_STREAM)), ("bidi", sel(BIDI)),
                 ("metadata", sel(UNARY)), ("error", sel(UNARY)),
                 ("stream_error", sel(SERVER_STREAM)), ("unimplemented", sel(UNARY)),
                 ("cancel", sel(SERVER_STREAM)), ("cancel_unary", sel(UNARY)),
                 ("deadline", sel(UNARY)), ("deadline_stream", sel(SERVER_STREAM))]
        runs = [("grpcio-" + c, s, [PY, os.path.join(ROOT, "rpc/testing/py_client.py"),
                                    "--target", "{target}", "--case", c]) for c, s in cases]
        for c in ("gzip", "deflate", "big", "status"):
            runs.append(("grpcio-" + c, sel(UNARY), [PY, "-c", GRPCIO_EXTRA, "{target}", c]))
        if grpcpp:
            for rpc, s in (("unary", sel(UNARY)), ("pingpong", sel(BIDI)),
                           ("server_stream", sel(SERVER_STREAM))):
                runs.append(("grpcpp-" + rpc, s, [
                    os.path.join(grpcpp, "bench_client"), "--target={target}", "--rpc=" + rpc,
                    "--channels=1", "--outstanding=1", "--threads=1", "--warmup=0",
                    "--duration=0.05", "--req-size=16", "--resp-size=16"]))
        for label, s, argv in runs:
            px = Proxy(srv.port)
            target = "127.0.0.1:%d" % px.port
            run(label, [a.replace("{target}", target) for a in argv])
            for c2s, s2c in px.sessions():
                server_files.append((label, cut(strip_preface(c2s), limit), c2s))
                client_files.append(("crpc-" + label[label.index("-") + 1:] + "-reply",
                                     bytes([s]) + cut(s2c, limit), s2c))
            px.close()
    finally:
        srv.stop()
    return server_files, client_files


def record_client_side(peer, grpcpp, limit):
    """What grpcio's and gRPC C++'s servers send to record_peer client (for
    the client corpus), and what crpc's client sent them (server corpus)."""
    out, sent = [], []
    T = "/crpc.test.Test/"
    specs = {UNARY: (T + "Echo", "hello"), SERVER_STREAM: (T + "Count", "3 8 0"),
             CLIENT_STREAM: (T + "Collect", "ab"), BIDI: (T + "Chat", "hi")}
    combos = [sel(UNARY), sel(SERVER_STREAM), sel(CLIENT_STREAM), sel(BIDI),
              sel(UNARY, gzip=True), sel(SERVER_STREAM, gzip=True),
              sel(UNARY, SERVER_STREAM), sel(BIDI, CLIENT_STREAM, gzip=True)]
    srv = Child([PY, os.path.join(ROOT, "rpc/testing/py_server.py"), "--port", "0"])
    try:
        for s in combos:
            calls = [specs[s & 3]] + ([specs[(s >> 2) & 3]] if s & SECOND else [])
            px = Proxy(srv.port)
            run("grpcio server %#04x" % s, [peer, "client", "127.0.0.1:%d" % px.port, hex(s)] +
                [x for c in calls for x in c])
            for c2s, s2c in px.sessions():
                out.append(("grpcio-server-%02x" % s, bytes([s]) + cut(s2c, limit), s2c))
                sent.append(("crpc-client-%02x" % s, cut(strip_preface(c2s), limit), c2s))
            px.close()
    finally:
        srv.stop()
    if grpcpp:
        B = "/grpc.testing.BenchmarkService/"
        srv = PortChild([os.path.join(grpcpp, "bench_server"), "--port={port}"])
        try:
            for s, calls in ((sel(UNARY), [(B + "UnaryCall", "")]),
                             (sel(BIDI), [(B + "StreamingCall", "")]),
                             (sel(UNARY, BIDI), [(B + "UnaryCall", ""), (B + "StreamingCall", "")]),
                             (sel(UNARY, gzip=True), [(B + "UnaryCall", "")])):
                px = Proxy(srv.port)
                run("grpcpp server %#04x" % s,
                    [peer, "client", "127.0.0.1:%d" % px.port, hex(s)] +
                    [x for c in calls for x in c])
                for c2s, s2c in px.sessions():
                    out.append(("grpcpp-server-%02x" % s, bytes([s]) + cut(s2c, limit), s2c))
                px.close()
        finally:
            srv.stop()
    return out, sent


# ---- wire seeds from decoded traffic ----------------------------------------


def dump(peer, frames):
    """[(kind, stream, bytes...)] from record_peer dump."""
    r = subprocess.run([peer, "dump"], input=frames, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    out = []
    for line in r.stdout.decode().splitlines():
        parts = line.split(" ")
        vals = [b"" if p == "-" else bytes.fromhex(p) for p in parts[2:]]
        out.append((parts[0], int(parts[1]), *vals))
    return out


ENC = {b"identity": 0, b"gzip": 1, b"deflate": 2}
# wire_fuzz.c's cases.
FRAME, TIMEOUT, PERCENT, BASE64, DECOMPRESS, METADATA, STATUS, ENCODINGS, MESSAGES = range(9)


def wire_seeds(peer, directions, per_kind=6):
    seeds = {}

    def add(kind, data):
        lst = seeds.setdefault(kind, [])
        if data not in lst and len(lst) < per_kind:
            lst.append(data)

    for frames in directions:
        headers, data, enc = {}, {}, {}
        for item in dump(peer, frames):
            if item[0] == "H":
                _, st, name, value = item
                headers.setdefault(st, []).append((name, value))
                if name == b"grpc-timeout":
                    add(TIMEOUT, value)
                elif name == b"grpc-message":
                    add(PERCENT, value)
                elif name.endswith(b"-bin"):
                    add(BASE64, value)
                elif name in (b"grpc-encoding", b"grpc-accept-encoding"):
                    add(ENCODINGS, value)
                    if name == b"grpc-encoding":
                        enc[st] = ENC.get(value, 3)
                elif name == b"grpc-status":
                    add(STATUS, value)
            else:
                data.setdefault(item[1], bytearray()).extend(item[2])
        for st, fields in headers.items():
            add(METADATA, b"\0".join(x for nv in fields if not nv[0].startswith(b":")
                                     for x in nv))
        for st, body in data.items():
            body = bytes(body[:2048])
            e = enc.get(st, 0)
            add(FRAME, bytes([0x10, 0x00, 5]) + body)  # max 4096, chunks 1..6
            add(MESSAGES, bytes([e, 0x04, 0x00]) + body)  # max 4096
            off = 0
            while len(body) - off >= 5:
                n = int.from_bytes(body[off + 1:off + 5], "big")
                if body[off] == 1 and off + 5 + n <= len(body):
                    add(DECOMPRESS, bytes([e, 0x01, 0x00]) + body[off + 5:off + 5 + n])
                off += 5 + n
    return [("wire-%d" % k, bytes([k]) + s) for k, lst in seeds.items() for s in lst]


# ---- CodeGeneratorRequests --------------------------------------------------


def protos():
    for d, _, files in os.walk(ROOT):
        rel = os.path.relpath(d, ROOT)
        if rel.startswith(("bazel-", ".git", "dist")) or "/bazel-" in rel:
            continue
        for f in sorted(files):
            if f.endswith(".proto"):
                yield os.path.join(rel, f)


def codegen_seeds(limit):
    out = []
    tmp = tempfile.mkdtemp()
    try:
        plugin = os.path.join(tmp, "protoc-gen-capture")
        with open(plugin, "w") as f:
            # protoc reads an empty response: no files, no error.
            f.write('#!/bin/sh\ncat > "$CAPTURE_FILE"\n')
        os.chmod(plugin, stat.S_IRWXU)
        for proto in sorted(protos()):
            i = proto.find("grpc/")
            root = proto[:i] if i > 0 else "."
            rel = proto[i:] if i > 0 else proto
            cap = os.path.join(tmp, "req.bin")
            env = dict(os.environ, CAPTURE_FILE=cap)
            r = subprocess.run(["protoc", "-I" + root, "-I.", "-I/usr/include",
                                "--plugin=protoc-gen-capture=" + plugin,
                                "--capture_out=" + tmp, rel],
                               cwd=ROOT, env=env, stderr=subprocess.PIPE)
            if r.returncode == 0 and os.path.exists(cap):
                data = open(cap, "rb").read()
                os.unlink(cap)
                if len(data) <= limit:
                    name = re.sub(r"[^A-Za-z0-9]+", "_", os.path.splitext(proto)[0])
                    out.append(("protoc-" + name, data))
        bad = os.path.join(ROOT, "codegen/testdata/bad")
        for f in sorted(os.listdir(bad)):
            if not f.endswith(".txtpb"):
                continue
            text = "".join(l for l in open(os.path.join(bad, f)) if not l.startswith("#"))
            r = subprocess.run(["protoc", "--encode=google.protobuf.compiler.CodeGeneratorRequest",
                                "-I/usr/include", "google/protobuf/compiler/plugin.proto"],
                               input=text.encode(), stdout=subprocess.PIPE)
            if r.returncode == 0:
                out.append(("bad-" + os.path.splitext(f)[0], r.stdout))
    finally:
        shutil.rmtree(tmp)
    return out


# ---- output -----------------------------------------------------------------


def write(outdir, target, files):
    d = os.path.join(outdir, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith(PREFIXES):
            os.unlink(os.path.join(d, f))
    seen = set(hashlib.sha1(open(os.path.join(d, f), "rb").read()).digest()
               for f in os.listdir(d))
    n = total = 0
    for label, data in files:
        if not data:
            continue
        h = hashlib.sha1(data)
        if h.digest() in seen:
            continue
        seen.add(h.digest())
        with open(os.path.join(d, "%s-%s" % (label, h.hexdigest()[:8])), "wb") as f:
            f.write(data)
        n += 1
        total += len(data)
    print("%-8s %3d files, %6d bytes" % (target, n, total))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer", required=True, help="record_peer binary")
    ap.add_argument("--grpcpp", default="/tmp/crpc-harness/grpcpp",
                    help="dir with gRPC C++ bench_client and bench_server ('' to skip)")
    ap.add_argument("--out", default=os.path.join(ROOT, "fuzz/corpus"))
    ap.add_argument("--max-bytes", type=int, default=6144)
    args = ap.parse_args()
    peer = os.path.abspath(args.peer)
    grpcpp = args.grpcpp
    if grpcpp and not os.path.exists(os.path.join(grpcpp, "bench_client")):
        print("record_corpus: no gRPC C++ peers in %s; recording grpcio only" % grpcpp)
        grpcpp = ""

    print("crpc server <- grpcio and gRPC C++ clients")
    server_files, client_files = record_server_side(peer, grpcpp, args.max_bytes)
    print("real servers <- crpc client")
    replies, sent = record_client_side(peer, grpcpp, args.max_bytes)
    client_files += replies
    server_files += sent

    full = [f[2] for f in server_files] + [f[2] for f in client_files]
    directions = [strip_preface(x) for x in full]
    write(args.out, "server", [(l, d) for l, d, _ in server_files])
    write(args.out, "client", [(l, d) for l, d, _ in client_files])
    write(args.out, "wire", wire_seeds(peer, directions))
    write(args.out, "codegen", codegen_seeds(64 * 1024))


if __name__ == "__main__":
    sys.exit(main())
