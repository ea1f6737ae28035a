#!/usr/bin/python3
"""grpcio (Debian's python3-grpcio) over TLS, as the peer of crpc's TLS.

Run with /usr/bin/python3 (the pyenv python3 on PATH cannot import grpc).

    py_tls_peer.py server --cert C --key K [--client-ca CA]
        Serves /crpc.test.Test/Echo (unary, reply = request) and
        /crpc.tls.Test/Identity (reply = the client's verified identity or
        "<none>") on 127.0.0.1:0 with grpc.ssl_server_credentials (client
        certificates required when --client-ca is given), prints
        "PORT <n> PID <pid>", and exits on SIGTERM, when its parent dies, or after 60 s.

    py_tls_peer.py client --target T --ca CA [--cert C --key K]
                          [--override NAME]
        With grpc.ssl_channel_credentials: Echo, a bidi Chat of 3 messages
        and Identity against a crpc server (crpc.test.Test); prints
        "PASS <case>: ..." / "FAIL <case>: ..." lines and "IDENTITY <id>";
        exits 0 only if every case passed.
"""

import argparse
import ctypes
import os
import signal
import sys
import time

import grpc


def read(path):
    with open(path, "rb") as f:
        return f.read()


def serve(args):
    try:  # die with the test (PR_SET_PDEATHSIG = 1)
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)
    except OSError:
        pass
    from concurrent import futures

    def echo(request, context):
        return request

    def identity(request, context):
        ids = context.peer_identities()
        return ids[0] if ids else b"<none>"

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(
            "crpc.test.Test", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),
        grpc.method_handlers_generic_handler(
            "crpc.tls.Test",
            {"Identity": grpc.unary_unary_rpc_method_handler(identity)}),
    ))
    ca = read(args.client_ca) if args.client_ca else None
    creds = grpc.ssl_server_credentials(
        [(read(args.key), read(args.cert))], root_certificates=ca,
        require_client_auth=ca is not None)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    print("PORT %d PID %d" % (port, os.getpid()), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.wait_for_termination(timeout=60)
    return 0


def client(args):
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key) if args.key else None,
        certificate_chain=read(args.cert) if args.cert else None)
    options = []
    if args.override:
        options.append(("grpc.ssl_target_name_override", args.override))
    ok = True
    with grpc.secure_channel(args.target, creds, options=options) as ch:
        def case(name, fn):
            nonlocal ok
            try:
                detail = fn()
                print("PASS %s: %s" % (name, detail), flush=True)
            except Exception as e:  # report and go on
                ok = False
                print("FAIL %s: %r" % (name, e), flush=True)

        def echo():
            r = ch.unary_unary("/crpc.test.Test/Echo")(b"tls hello", timeout=10)
            assert r == b"tls hello", r
            return "echoed"

        def chat():
            msgs = [b"a", b"b" * 100000, b"c"]
            got = list(ch.stream_stream("/crpc.test.Test/Chat")(iter(msgs), timeout=10))
            assert got == msgs, [len(m) for m in got]
            return "3 messages"

        def identity():
            r = ch.unary_unary("/crpc.tls.Test/Identity")(b"", timeout=10)
            print("IDENTITY %s" % r.decode(), flush=True)
            return r.decode()

        case("unary", echo)
        case("bidi", chat)
        case("identity", identity)
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["server", "client"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca")
    p.add_argument("--ca")
    p.add_argument("--target")
    p.add_argument("--override")
    args = p.parse_args()
    return serve(args) if args.mode == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
