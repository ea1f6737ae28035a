#!/usr/bin/python3
"""grpcio side of rpc/e2e/compression_test.cc (Debian's python3-grpcio).

    compression_peer.py server [--identity_only]
        Serves /comp.Test/Echo (unary, bytes): replies with the request;
        with gzip if the request starts with b"gz". Prints "PORT <n>" and
        serves until stdin closes. --identity_only: the server enables no
        compression algorithm (grpc-accept-encoding: identity), so it
        rejects compressed requests.
    compression_peer.py client --target HOST:PORT
        Calls the crpc server's /comp.Test/Echo with gzip (its reply's first
        byte is 1 if the request arrived compressed) and with none; also with
        the response compressed (metadata x-compress: gzip). Prints OK or
        FAIL lines; exit status 0 if all passed.
"""
import sys
import threading

import grpc

ECHO = "/comp.Test/Echo"


def serve(identity_only):
    def echo(request, context):
        if request.startswith(b"gz"):
            context.set_compression(grpc.Compression.Gzip)
        return request

    handler = grpc.method_handlers_generic_handler(
        "comp.Test", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    options = []
    if identity_only:
        options.append(("grpc.compression_enabled_algorithms_bitset", 1))
    from concurrent import futures
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         handlers=(handler,), options=options)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT %d" % port, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.stop(0)


def client(target):
    ok = True

    def check(name, cond, detail=""):
        nonlocal ok
        print("%s %s %s" % ("OK" if cond else "FAIL", name, detail), flush=True)
        ok = ok and cond

    with grpc.insecure_channel(target) as ch:
        echo = ch.unary_unary(ECHO)
        body = b"z" * 100000
        # The request compressed: crpc's server saw the compressed flag.
        r = echo(body, compression=grpc.Compression.Gzip, timeout=10)
        check("gzip_request", r[:1] == b"\x01" and r[1:] == body, repr(r[:8]))
        r = echo(body, compression=grpc.Compression.Deflate, timeout=10)
        check("deflate_request", r[:1] == b"\x01" and r[1:] == body,
              repr(r[:8]))
        r = echo(body, compression=grpc.Compression.NoCompression, timeout=10)
        check("identity_request", r[:1] == b"\x00" and r[1:] == body,
              repr(r[:8]))
        # The response compressed by crpc: grpcio decompresses it.
        r = echo(body, metadata=(("x-compress", "gzip"),), timeout=10)
        check("gzip_response", r[:1] == b"\x00" and r[1:] == body, repr(r[:8]))
        r = echo(body, metadata=(("x-compress", "deflate"),), timeout=10)
        check("deflate_response", r[:1] == b"\x00" and r[1:] == body,
              repr(r[:8]))
    return 0 if ok else 1


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "server":
        serve("--identity_only" in sys.argv[2:])
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "client" and sys.argv[2] == "--target":
        return client(sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
