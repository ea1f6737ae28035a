#!/usr/bin/python3
"""crpc_admin: ask any gRPC server (crpc's or not) what grpc_health_probe
and grpcurl would, with nothing but Debian's python3-grpcio and grpc-proto.

    /usr/bin/python3 services/admin_cli.py HOST:PORT health [SERVICE]
        prints the status; exit 0 only if SERVING (a probe's contract:
        NOT_FOUND, NOT_SERVING or an unreachable server exit 1)
    /usr/bin/python3 services/admin_cli.py HOST:PORT watch [SERVICE]
        prints each status change until the stream ends or Ctrl-C
    /usr/bin/python3 services/admin_cli.py HOST:PORT list
        the services, through reflection (v1, falling back to v1alpha)
    /usr/bin/python3 services/admin_cli.py HOST:PORT describe SYMBOL
        a service's methods or a message's fields, through reflection
    /usr/bin/python3 services/admin_cli.py HOST:PORT calls
        the calls a crpc server is running (crpc.admin.v1.Admin ListCalls):
        id, state, age, deadline left, messages and bytes in/out, method,
        peer, and the cause once one is cancelling
    /usr/bin/python3 services/admin_cli.py HOST:PORT cancel ID REASON
        ends call ID (CancelCall): its handler's ctx and its client get
        CANCELLED "cancelled by admin: REASON"; exit 1 if no such call

"" (no SERVICE) is the whole server. Plaintext only; --timeout SECONDS
bounds each call (default 5). calls and cancel learn crpc.admin.v1 from the
server itself, through reflection: no .proto file needed here.
"""

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

GRPC_PROTO = "/usr/share/grpc-proto"


def load_stubs():
    # gRPC's own protos, compiled at run time; their package (grpc.*)
    # collides with grpcio's, so the output is grafted onto grpc.__path__.
    out = tempfile.mkdtemp(prefix="crpc-admin-cli-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run(
        ["protoc", "-I" + GRPC_PROTO, "--python_out=" + out,
         "--grpc_python_out=" + out,
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
         "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto",
         "grpc/reflection/v1alpha/reflection.proto"], check=True)
    grpc.__path__.append(os.path.join(out, "grpc"))


def reflect(ch, timeout, **request):
    """One reflection request; v1 first, v1alpha for older servers."""
    from grpc.reflection.v1 import reflection_pb2, reflection_pb2_grpc
    from grpc.reflection.v1alpha import reflection_pb2 as a_pb2
    from grpc.reflection.v1alpha import reflection_pb2_grpc as a_grpc
    for mod, stubs in ((reflection_pb2, reflection_pb2_grpc), (a_pb2, a_grpc)):
        stub = stubs.ServerReflectionStub(ch)
        req = mod.ServerReflectionRequest(**request)
        try:
            return next(iter(stub.ServerReflectionInfo(iter([req]),
                                                       timeout=timeout)))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED or mod is a_pb2:
                raise
    raise AssertionError("unreachable")


def pool_of(resp):
    """A descriptor pool of the files in a reflection response (imports
    first), and the names of the files added."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    files = []
    for raw in resp.file_descriptor_response.file_descriptor_proto:
        f = descriptor_pb2.FileDescriptorProto()
        f.ParseFromString(raw)
        files.append(f)
    pool, added = descriptor_pool.DescriptorPool(), set()
    while files:  # imports first
        ready = [f for f in files if set(f.dependency) <= added]
        if not ready:
            break
        for f in ready:
            pool.Add(f)
            added.add(f.name)
            files.remove(f)
    return pool, added


def describe(ch, timeout, symbol):
    from google.protobuf import descriptor_pb2
    resp = reflect(ch, timeout, file_containing_symbol=symbol)
    if resp.WhichOneof("message_response") == "error_response":
        print("%s: %s" % (symbol, resp.error_response.error_message))
        return 1
    pool, added = pool_of(resp)
    try:
        svc = pool.FindServiceByName(symbol)
        print("service %s  (%s)" % (svc.full_name, svc.file.name))
        for m in svc.methods:
            print("  rpc %s(%s%s) returns (%s%s)" % (
                m.name, "stream " if m.client_streaming else "",
                m.input_type.full_name,
                "stream " if m.server_streaming else "",
                m.output_type.full_name))
        return 0
    except KeyError:
        pass
    try:
        msg = pool.FindMessageTypeByName(symbol)
        print("message %s  (%s)" % (msg.full_name, msg.file.name))
        for fd in msg.fields:
            kind = fd.message_type or fd.enum_type
            scalar = descriptor_pb2.FieldDescriptorProto.Type.Name(fd.type)
            print("  %s = %d  %s%s" % (
                fd.name, fd.number,
                "repeated " if fd.label == fd.LABEL_REPEATED else "",
                kind.full_name if kind else scalar[5:].lower()))
        return 0
    except KeyError:
        print("%s is defined in %s" % (symbol, ", ".join(sorted(added))))
        return 0


ADMIN = "crpc.admin.v1.Admin"


def admin_rpc(ch, timeout, method):
    """A callable for one crpc.admin.v1.Admin method and its request class,
    both from the server's descriptor (reflection), or None if the server
    has no such service."""
    from google.protobuf import message_factory
    resp = reflect(ch, timeout, file_containing_symbol=ADMIN)
    if resp.WhichOneof("message_response") == "error_response":
        return None, None
    pool, _ = pool_of(resp)
    m = pool.FindMethodByName(ADMIN + "." + method)
    factory = message_factory.MessageFactory(pool)
    req, rsp = (factory.GetPrototype(m.input_type),
                factory.GetPrototype(m.output_type))
    call = ch.unary_unary("/%s/%s" % (ADMIN, method),
                          request_serializer=req.SerializeToString,
                          response_deserializer=rsp.FromString)
    return call, req


def fmt_ns(ns):
    if ns < 1000000:
        return "%dus" % (ns // 1000)
    if ns < 1000000000:
        return "%.1fms" % (ns / 1e6)
    return "%.2fs" % (ns / 1e9)


def calls(ch, timeout):
    rpc, req = admin_rpc(ch, timeout, "ListCalls")
    if rpc is None:
        print("%s is not served here" % ADMIN, file=sys.stderr)
        return 1
    r = rpc(req(), timeout=timeout)
    states = r.DESCRIPTOR.fields_by_name["calls"].message_type \
        .fields_by_name["state"].enum_type
    print("%6s %-11s %8s %8s %11s %15s  %s" % (
        "ID", "STATE", "AGE", "DEADLINE", "MSGS IN/OUT", "BYTES IN/OUT",
        "METHOD  PEER  [CAUSE]"))
    for c in r.calls:
        state = states.values_by_number[c.state].name
        line = "%6d %-11s %8s %8s %11s %15s  %s  %s" % (
            c.id, state[len("CALL_STATE_"):].lower().replace("_", "-"),
            fmt_ns(c.age_ns),
            fmt_ns(c.deadline_left_ns) if c.has_deadline else "-",
            "%d/%d" % (c.messages_in, c.messages_out),
            "%d/%d" % (c.bytes_in, c.bytes_out), c.method, c.peer)
        if c.HasField("cause"):
            line += "  [%s, %s: %s]" % (c.cause.code_name, c.cause.origin,
                                        c.cause.message)
        print(line)
    if not r.calls:
        print("(no calls)")
    return 0


def cancel(ch, timeout, ident, reason):
    rpc, req = admin_rpc(ch, timeout, "CancelCall")
    if rpc is None:
        print("%s is not served here" % ADMIN, file=sys.stderr)
        return 1
    rpc(req(id=int(ident), reason=reason), timeout=timeout)
    print("cancelled call %s" % ident)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target")
    ap.add_argument("command", choices=("health", "watch", "list", "describe",
                                        "calls", "cancel"))
    ap.add_argument("name", nargs="?", default="")
    ap.add_argument("reason", nargs="?", default="")
    ap.add_argument("--timeout", type=float, default=5)
    args = ap.parse_args()
    if args.command == "cancel" and not (args.name.isdigit() and args.reason):
        ap.error("cancel takes an ID (from calls) and a REASON")
    load_stubs()
    from grpc.health.v1 import health_pb2, health_pb2_grpc
    names = health_pb2.HealthCheckResponse.ServingStatus.Name
    with grpc.insecure_channel(args.target) as ch:
        try:
            if args.command == "health":
                r = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=args.name),
                    timeout=args.timeout)
                print(names(r.status))
                return 0 if r.status == health_pb2.HealthCheckResponse.SERVING else 1
            if args.command == "watch":
                for r in health_pb2_grpc.HealthStub(ch).Watch(
                        health_pb2.HealthCheckRequest(service=args.name)):
                    print(names(r.status), flush=True)
                return 0
            if args.command == "calls":
                return calls(ch, args.timeout)
            if args.command == "cancel":
                return cancel(ch, args.timeout, args.name, args.reason)
            if args.command == "list":
                r = reflect(ch, args.timeout, list_services="")
                for s in sorted(s.name for s in r.list_services_response.service):
                    print(s)
                return 0
            return describe(ch, args.timeout, args.name)
        except grpc.RpcError as e:
            print("%s: %s" % (e.code().name, e.details()), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130


if __name__ == "__main__":
    sys.exit(main())
