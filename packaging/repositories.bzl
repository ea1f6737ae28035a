"""For a Bazel workspace that uses crpc as an external repository.

    # WORKSPACE
    local_repository(name = "crpc", path = "/path/to/crpc")
    # (or http_archive / git_repository where the network allows)

    load("@crpc//packaging:repositories.bzl", "crpc_repositories")
    crpc_repositories()

Bazel 4.2.3 (Debian's bazel-bootstrap) wants to download rules_cc,
rules_java and remote_coverage_tools before it builds anything. Offline,
crpc_repositories() declares crpc's own tiny stand-ins for them (the ones
crpc's WORKSPACE uses, tools/bazel/), unless the workspace already declares
a repository of that name: a workspace that can download the real ones just
declares them first.

crpc itself needs nothing else: nghttp2, protobuf-c, OpenSSL and zlib come
from the system (Debian's -dev packages), and protoc / protoc-gen-c from
protobuf-compiler and protobuf-c-compiler. codegen/crpc.bzl says how to
point it at other copies (--define=CRPC_PROTOC=... and friends).
"""

_STANDINS = {
    "rules_cc": ["WORKSPACE", "BUILD", "cc/BUILD", "cc/defs.bzl"],
    "rules_java": ["WORKSPACE", "BUILD", "java/BUILD", "java/defs.bzl"],
    "remote_coverage_tools": ["WORKSPACE", "BUILD"],
}

def _crpc_standin_impl(rctx):
    # The stand-in's files, found through a label of crpc's own repository
    # (whatever the user named it), linked into this repository.
    src = rctx.path(Label("//:BUILD")).dirname
    for part in ["tools", "bazel", rctx.attr.standin]:
        src = src.get_child(part)
    for f in _STANDINS[rctx.attr.standin]:
        path = src
        for part in f.split("/"):
            path = path.get_child(part)
        rctx.symlink(path, f)

_crpc_standin = repository_rule(
    implementation = _crpc_standin_impl,
    attrs = {"standin": attr.string(mandatory = True)},
    local = True,
)

def crpc_repositories():
    """Declares the offline stand-ins the workspace has not declared."""
    for name in _STANDINS:
        if not native.existing_rule(name):
            _crpc_standin(name = name, standin = name)
