"""Generates and imports the grpc.testing Python stubs for the interop peers.

The stubs are generated at run time (protoc --python_out plus Debian's
grpc_python_plugin) into a temporary directory, so nothing generated is
checked in and the protos are the same files crpc's own stubs come from.

The protos live in package grpc.testing, which collides with grpcio's own
top-level `grpc` package; the generated modules are therefore grafted onto
grpc.__path__ rather than put on sys.path (grpcio has no grpc.testing of its
own; that is the separate grpcio-testing package, not installed here).
"""
import atexit
import os
import shutil
import subprocess
import tempfile

import grpc

PROTOS = ("grpc/testing/empty.proto", "grpc/testing/messages.proto",
          "grpc/testing/test.proto")


def default_proto_root():
    # conformance/python/ -> conformance/, which holds grpc/testing/*.proto.
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(proto_root=None):
    """Returns (empty_pb2, messages_pb2, test_pb2_grpc)."""
    proto_root = proto_root or default_proto_root()
    out = tempfile.mkdtemp(prefix="crpc-interop-py-")
    atexit.register(shutil.rmtree, out, True)
    plugin = shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
    subprocess.run(
        ["protoc", "-I" + proto_root, "--python_out=" + out,
         "--grpc_python_out=" + out,
         "--plugin=protoc-gen-grpc_python=" + plugin] + list(PROTOS),
        check=True)
    grpc.__path__.append(os.path.join(out, "grpc"))
    from grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc
    return empty_pb2, messages_pb2, test_pb2_grpc
