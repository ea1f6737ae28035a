#!/usr/bin/python3
"""A real gRPC client (Debian's python3-grpcio) for crpc's admin services.

Run it with /usr/bin/python3 (the pyenv python3 on PATH cannot import grpc):

    admin_client.py --target 127.0.0.1:PORT --case NAME [--case NAME ...]

Prints "PASS <case>" or "FAIL <case>: <why>" per case and exits 0 only if
every case passed. The stubs are generated at run time from Debian's
grpc-proto files (protoc + /usr/bin/grpc_python_plugin), never from crpc's
copies, so the client knows the services only as gRPC publishes them.

The server under test (services/testing/admin_test.cc) also serves a raw
control service the cases drive it with:
    /crpc.test.AdminControl/Set       "name=SERVING|NOT_SERVING|CLEAR"
    /crpc.test.AdminControl/Shutdown  starts crpc_server_shutdown (5 s grace)
"""

import argparse
import atexit
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import grpc

GRPC_PROTO = "/usr/share/grpc-proto"
PROTOS = ("grpc/health/v1/health.proto",
          "grpc/reflection/v1/reflection.proto",
          "grpc/reflection/v1alpha/reflection.proto")


def load_stubs():
    """Generates the stubs into a temporary directory and imports them.

    Their package is grpc.*, which collides with grpcio's own top-level
    `grpc`, so the generated tree is grafted onto grpc.__path__ (grpcio has
    no grpc.health or grpc.reflection of its own here; those are separate
    PyPI packages Debian does not ship).
    """
    out = tempfile.mkdtemp(prefix="crpc-admin-py-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run(
        ["protoc", "-I" + GRPC_PROTO, "--python_out=" + out,
         "--grpc_python_out=" + out,
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] +
        list(PROTOS), check=True)
    grpc.__path__.append(os.path.join(out, "grpc"))


load_stubs()
from grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc.reflection.v1 import reflection_pb2 as refl_v1  # noqa: E402
from grpc.reflection.v1 import reflection_pb2_grpc as refl_v1_grpc  # noqa: E402
from grpc.reflection.v1alpha import reflection_pb2 as refl_v1a  # noqa: E402
from grpc.reflection.v1alpha import reflection_pb2_grpc as refl_v1a_grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool  # noqa: E402

HC = health_pb2.HealthCheckResponse


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def expect_error(fn, code):
    try:
        r = fn()
    except grpc.RpcError as e:
        check(e.code() == code,
              "want %s, got %s (%r)" % (code, e.code(), e.details()))
        return e
    raise Fail("want %s, got success %r" % (code, r))


class Watch:
    """A Watch call read on a thread, so each read can have a time limit."""

    def __init__(self, stub, service):
        self.call = stub.Watch(health_pb2.HealthCheckRequest(service=service),
                               timeout=30)
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            for msg in self.call:
                self.q.put(("msg", msg.status))
            self.q.put(("end", grpc.StatusCode.OK))
        except grpc.RpcError as e:
            self.q.put(("end", e.code()))

    def next(self, timeout=10):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise Fail("nothing from Watch within %d s" % timeout)

    def expect(self, status, why):
        kind, value = self.next()
        check(kind == "msg" and value == status,
              "%s: want %s, got %s %s" % (why, HC.ServingStatus.Name(status),
                                          kind, value))

    def drain(self, quiet=1.0):
        """Statuses received until none came for `quiet` seconds."""
        seen = []
        while True:
            try:
                kind, value = self.q.get(timeout=quiet)
            except queue.Empty:
                return seen
            check(kind == "msg", "stream ended: %s" % value)
            seen.append(value)

    def cancel(self):
        self.call.cancel()
        self.t.join(10)


class Cases:
    def __init__(self, channel):
        self.ch = channel
        self.health = health_pb2_grpc.HealthStub(channel)
        self.set_rpc = channel.unary_unary("/crpc.test.AdminControl/Set")
        self.shutdown_rpc = channel.unary_unary(
            "/crpc.test.AdminControl/Shutdown")

    def set(self, name, status):
        self.set_rpc(("%s=%s" % (name, status)).encode(), timeout=10)

    def hcheck(self, name):
        return self.health.Check(
            health_pb2.HealthCheckRequest(service=name), timeout=10).status

    # ---- health ----

    def health_check(self):
        check(self.hcheck("") == HC.SERVING, "'' is not SERVING at start")
        self.set("test.Check", "SERVING")
        check(self.hcheck("test.Check") == HC.SERVING, "set SERVING not seen")
        self.set("test.Check", "NOT_SERVING")
        check(self.hcheck("test.Check") == HC.NOT_SERVING,
              "set NOT_SERVING not seen")

    def health_unknown(self):
        e = expect_error(lambda: self.hcheck("no.such.Service"),
                         grpc.StatusCode.NOT_FOUND)
        check("unknown" in (e.details() or ""), "details %r" % e.details())
        self.set("test.Cleared", "SERVING")
        self.set("test.Cleared", "CLEAR")
        expect_error(lambda: self.hcheck("test.Cleared"),
                     grpc.StatusCode.NOT_FOUND)
        # Watch on an unknown name: SERVICE_UNKNOWN and the call stays open,
        # then the status once it becomes known.
        w = Watch(self.health, "test.Later")
        w.expect(HC.SERVICE_UNKNOWN, "unknown service")
        self.set("test.Later", "SERVING")
        w.expect(HC.SERVING, "once known")
        w.cancel()

    def health_watch(self):
        self.set("test.Watch", "SERVING")
        w = Watch(self.health, "test.Watch")
        w.expect(HC.SERVING, "initial status")
        self.set("test.Watch", "NOT_SERVING")
        w.expect(HC.NOT_SERVING, "first change")
        self.set("test.Watch", "NOT_SERVING")  # no change: nothing sent
        self.set("test.Other", "NOT_SERVING")  # another name: nothing sent
        self.set("test.Watch", "SERVING")
        w.expect(HC.SERVING, "second change")
        self.set("test.Watch", "CLEAR")
        w.expect(HC.SERVICE_UNKNOWN, "cleared")
        # Many flips: the watcher ends on the latest one (a watcher that
        # lags may skip some, never the last).
        for i in range(200):
            self.set("test.Watch", "SERVING" if i % 2 else "NOT_SERVING")
        seen = w.drain()
        check(seen and seen[-1] == HC.SERVING,
              "after 200 flips the last status seen is %r" % seen[-1:])
        check(len(seen) <= 200, "%d messages for 200 flips" % len(seen))
        w.cancel()
        check(w.call.code() == grpc.StatusCode.CANCELLED,
              "cancelled watch ended %s" % w.call.code())

    def health_shutdown(self):
        # Two watchers: the whole server and a named service.
        self.set("test.Drain", "SERVING")
        whole = Watch(self.health, "")
        named = Watch(self.health, "test.Drain")
        whole.expect(HC.SERVING, "'' before shutdown")
        named.expect(HC.SERVING, "named before shutdown")
        started = time.monotonic()
        self.shutdown_rpc(b"", timeout=10)
        for w, what in ((whole, "''"), (named, "named")):
            w.expect(HC.NOT_SERVING, what + " at shutdown start")
            kind, code = w.next()
            check(kind == "end" and code == grpc.StatusCode.UNAVAILABLE,
                  "%s watch should end UNAVAILABLE, got %s %s" %
                  (what, kind, code))
        took = time.monotonic() - started
        check(took < 4, "watchers ended %.1f s after shutdown began" % took)

    # ---- reflection ----

    def reflect(self, version, *requests):
        """Sends the requests on one ServerReflectionInfo stream and returns
        the responses, one per request, in order."""
        mod, grpc_mod = ((refl_v1, refl_v1_grpc) if version == "v1"
                         else (refl_v1a, refl_v1a_grpc))
        stub = grpc_mod.ServerReflectionStub(self.ch)
        reqs = [mod.ServerReflectionRequest(host="localhost", **r)
                for r in requests]
        resps = list(stub.ServerReflectionInfo(iter(reqs), timeout=10))
        check(len(resps) == len(reqs),
              "%d responses for %d requests" % (len(resps), len(reqs)))
        for req, resp in zip(reqs, resps):
            check(resp.original_request == req,
                  "original_request %r != %r" % (resp.original_request, req))
            check(resp.valid_host == "localhost",
                  "valid_host %r" % resp.valid_host)
        return resps

    @staticmethod
    def files(resp):
        check(resp.WhichOneof("message_response") == "file_descriptor_response",
              "want files, got %s" % resp)
        out = []
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto()
            fdp.ParseFromString(raw)
            out.append(fdp)
        names = [f.name for f in out]
        check(len(set(names)) == len(names), "a file twice: %s" % names)
        return out

    @staticmethod
    def not_found(resp, what):
        check(resp.WhichOneof("message_response") == "error_response",
              "%s: want error_response, got %s" % (what, resp))
        check(resp.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0],
              "%s: error_code %d" % (what, resp.error_response.error_code))

    @staticmethod
    def pool_of(files):
        """A descriptor pool built from exactly these files (imports
        first): proves the response is complete and valid."""
        pool = descriptor_pool.DescriptorPool()
        left, added = list(files), set()
        while left:
            ready = [f for f in left if set(f.dependency) <= added]
            check(ready, "imports missing from the response: %s" %
                  sorted(set(d for f in left for d in f.dependency) - added))
            for f in ready:
                pool.Add(f)
                added.add(f.name)
                left.remove(f)
        return pool

    def reflection(self, version):
        svc_file = "services/testing/protos/reflect_svc.proto"
        dep_file = "services/testing/protos/reflect_dep.proto"
        base_file = "services/testing/protos/reflect_base.proto"
        (lst, method, message, nested, health, unknown, after,
         byname, nofile) = self.reflect(
            version,
            {"list_services": ""},
            {"file_containing_symbol": "crpc.reflecttest.Directory.Lookup"},
            {"file_containing_symbol": "crpc.reflecttest.LookupRequest"},
            {"file_containing_symbol": "crpc.reflecttest.Entry.Meta"},
            {"file_containing_symbol": "grpc.health.v1.Health"},
            {"file_containing_symbol": "no.such.Symbol"},
            {"list_services": ""},
            {"file_by_filename": dep_file},
            {"file_by_filename": "no/such.proto"})
        # list_services
        check(lst.WhichOneof("message_response") == "list_services_response",
              "list_services: %s" % lst)
        names = {s.name for s in lst.list_services_response.service}
        for want in ("crpc.reflecttest.Directory", "grpc.health.v1.Health",
                     "grpc.reflection.v1.ServerReflection",
                     "grpc.reflection.v1alpha.ServerReflection"):
            check(want in names, "%s not listed: %s" % (want, sorted(names)))
        # A method of the generated service: its file first, then every
        # file it imports, transitively, the well-known type included.
        files = self.files(method)
        check(files[0].name == svc_file, "first file %s" % files[0].name)
        want = {svc_file, dep_file, base_file, "google/protobuf/timestamp.proto"}
        check({f.name for f in files} == want,
              "files %s, want %s" % (sorted(f.name for f in files), sorted(want)))
        pool = self.pool_of(files)
        m = pool.FindMethodByName("crpc.reflecttest.Directory.Lookup")
        check(m.input_type.full_name == "crpc.reflecttest.LookupRequest",
              "Lookup takes %s" % m.input_type.full_name)
        follow = pool.FindMethodByName("crpc.reflecttest.Directory.Follow")
        check(follow.server_streaming and not follow.client_streaming,
              "Follow is not server streaming")
        entry = pool.FindMessageTypeByName("crpc.reflecttest.Entry")
        check(entry.fields_by_name["color"].enum_type.full_name ==
              "crpc.reflecttest.Color", "Entry.color lost its enum")
        # A message of the service, and a nested one in an imported file.
        check(self.files(message)[0].name == svc_file, "LookupRequest's file")
        nf = self.files(nested)
        check([f.name for f in nf] == [dep_file, base_file],
              "Entry.Meta: %s" % [f.name for f in nf])
        check(self.files(health)[0].name == "grpc/health/v1/health.proto",
              "Health's file")
        # Unknown symbol: NOT_FOUND, and the stream goes on.
        self.not_found(unknown, "no.such.Symbol")
        check(after.WhichOneof("message_response") == "list_services_response",
              "the stream did not go on after an error")
        check([f.name for f in self.files(byname)] == [dep_file, base_file],
              "file_by_filename")
        self.not_found(nofile, "no/such.proto")

    def reflection_extensions(self, version):
        mod = refl_v1 if version == "v1" else refl_v1a
        ext = mod.ExtensionRequest
        found, missing, nums, notype = self.reflect(
            version,
            {"file_containing_extension": ext(
                containing_type="crpc.reflecttest.Extendable",
                extension_number=101)},
            {"file_containing_extension": ext(
                containing_type="crpc.reflecttest.Extendable",
                extension_number=150)},
            {"all_extension_numbers_of_type": "crpc.reflecttest.Extendable"},
            {"all_extension_numbers_of_type": "crpc.reflecttest.Nope"})
        files = self.files(found)
        check([f.name for f in files] ==
              ["services/testing/protos/reflect_dep.proto",
               "services/testing/protos/reflect_base.proto"],
              "extension 101: %s" % [f.name for f in files])
        pool = self.pool_of(files)
        note = pool.FindExtensionByName("crpc.reflecttest.weight")
        check(note.number == 101, "weight is %d" % note.number)
        self.not_found(missing, "extension 150")
        check(nums.WhichOneof("message_response") ==
              "all_extension_numbers_response", "numbers: %s" % nums)
        r = nums.all_extension_numbers_response
        check(r.base_type_name == "crpc.reflecttest.Extendable",
              "base_type_name %r" % r.base_type_name)
        check(sorted(r.extension_number) == [100, 101],
              "numbers %s" % list(r.extension_number))
        self.not_found(notype, "numbers of an unknown type")

    def reflection_v1(self):
        self.reflection("v1")

    def reflection_v1alpha(self):
        self.reflection("v1alpha")

    def reflection_extensions_v1(self):
        self.reflection_extensions("v1")

    def reflection_extensions_v1alpha(self):
        self.reflection_extensions("v1alpha")

    def reflection_bad_request(self):
        # Bytes that are not a ServerReflectionRequest end the stream
        # INVALID_ARGUMENT (a field 3 string with a length past the end).
        raw = self.ch.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        expect_error(lambda: list(raw(iter([b"\x1a\x7f"]), timeout=10)),
                     grpc.StatusCode.INVALID_ARGUMENT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--case", action="append", required=True)
    args = ap.parse_args()
    ok = True
    with grpc.insecure_channel(args.target) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        cases = Cases(ch)
        for name in args.case:
            try:
                getattr(cases, name)()
                print("PASS %s" % name, flush=True)
            except Fail as e:
                ok = False
                print("FAIL %s: %s" % (name, e), flush=True)
            except grpc.RpcError as e:
                ok = False
                print("FAIL %s: unexpected %s %r" % (name, e.code(),
                                                     e.details()), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
