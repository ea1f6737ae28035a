"""crpc_proto_library: .proto files -> a cc_library of protoc-c messages
(<f>.pb-c.h/.c) and crpc stubs (<f>.crpc.h/.c).

    load("//codegen:crpc.bzl", "crpc_proto_library")

    crpc_proto_library(
        name = "route_guide",
        srcs = ["route_guide.proto"],
        deps = ["//protos/common"],   # other crpc_proto_library targets
    )

Import paths are workspace-relative (import "protos/common/common.proto";)
and so are the includes (#include "protos/route_guide.crpc.h").
google/protobuf/*.proto (Empty, Timestamp, ...) come from Debian's
/usr/include; their protoc-c code is //codegen:protobuf_c_wkt, which every
crpc_proto_library links.
"""

CrpcProtoInfo = provider(
    doc = "The .proto files of a crpc_proto_library and all its deps.",
    fields = {
        "transitive_srcs": "depset of .proto Files",
        "import_roots": "depset of directories imports are relative to",
    },
)

def _crpc_proto_gen_impl(ctx):
    transitive = depset(
        ctx.files.srcs,
        transitive = [d[CrpcProtoInfo].transitive_srcs for d in ctx.attr.deps],
    )
    pkg = ctx.label.package
    root = ctx.attr.import_root
    if root in ("", "."):
        root_path = pkg
    else:
        root_path = (pkg + "/" + root) if pkg else root
    roots = depset(
        [root_path] if ctx.attr.import_root and root_path else [],
        transitive = [d[CrpcProtoInfo].import_roots for d in ctx.attr.deps],
    )
    srcs, hdrs, names = [], [], []
    for src in ctx.files.srcs:
        if src.owner.package != pkg or src.owner.workspace_name:
            fail("%s: srcs must be .proto files of package //%s" % (src, pkg))
        rel = src.short_path[len(pkg) + 1:] if pkg else src.short_path
        base = rel[:-len(".proto")]
        srcs.append(ctx.actions.declare_file(base + ".pb-c.c"))
        srcs.append(ctx.actions.declare_file(base + ".crpc.c"))
        hdrs.append(ctx.actions.declare_file(base + ".pb-c.h"))
        hdrs.append(ctx.actions.declare_file(base + ".crpc.h"))

        # The name protoc knows the file by, relative to its import root.
        name = src.short_path
        if ctx.attr.import_root:
            if root_path and not name.startswith(root_path + "/"):
                fail("%s is not under import_root %s" % (src, root_path))
            name = name[len(root_path) + 1:] if root_path else name
        names.append(name)

    # Outputs land at <bin>/<import root>/<name>, which is exactly where the
    # files declared above live, and the generated #includes use <name>
    # (workspace-relative unless import_root is set). protoc-c sees the descriptors without
    # services (strip_services.c says why); the crpc plugin sees them whole,
    # comments included.
    full = ctx.actions.declare_file(ctx.label.name + ".full.desc")
    nosvc = ctx.actions.declare_file(ctx.label.name + ".nosvc.desc")
    out = ctx.bin_dir.path
    if ctx.attr.import_root and root_path:
        out += "/" + root_path
    includes = " ".join(["-I" + r for r in roots.to_list()])
    ctx.actions.run_shell(
        command = " && ".join([
            "/usr/bin/protoc {includes} -I. -I/usr/include --include_imports " +
            "--include_source_info --descriptor_set_out={full} {paths}",
            "{strip} < {full} > {nosvc}",
            "/usr/bin/protoc --descriptor_set_in={nosvc} " +
            "--plugin=protoc-gen-c=/usr/bin/protoc-gen-c --c_out={out} {srcs}",
            "/usr/bin/protoc --descriptor_set_in={full} " +
            "--plugin=protoc-gen-crpc={plugin} --crpc_out={out} {srcs}",
        ]).format(
            full = full.path,
            nosvc = nosvc.path,
            includes = includes,
            paths = " ".join([f.path for f in ctx.files.srcs]),
            srcs = " ".join(names),
            strip = ctx.executable._strip.path,
            plugin = ctx.executable._plugin.path,
            out = out,
        ),
        inputs = transitive,
        tools = [ctx.executable._plugin, ctx.executable._strip],
        outputs = srcs + hdrs + [full, nosvc],
        mnemonic = "CrpcProtoc",
        progress_message = "protoc-c + protoc-gen-crpc %s" % ctx.label,
    )
    return [
        CrpcProtoInfo(transitive_srcs = transitive, import_roots = roots),
        DefaultInfo(
            files = depset(srcs + hdrs),
            runfiles = ctx.runfiles(files = srcs + hdrs),
        ),
        OutputGroupInfo(srcs = depset(srcs), hdrs = depset(hdrs)),
    ]

_crpc_proto_gen = rule(
    implementation = _crpc_proto_gen_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".proto"]),
        "deps": attr.label_list(providers = [CrpcProtoInfo]),
        "import_root": attr.string(),
        "_plugin": attr.label(
            default = Label("//codegen:protoc-gen-crpc"),
            executable = True,
            cfg = "host",
        ),
        "_strip": attr.label(
            default = Label("//codegen:strip_services"),
            executable = True,
            cfg = "host",
        ),
    },
)

def _gen_label(dep):
    """The generator target behind crpc_proto_library `dep`."""
    if ":" in dep:
        return dep + "_crpc_gen"
    if dep.startswith("//") or dep.startswith("@"):
        return dep + ":" + dep.split("/")[-1] + "_crpc_gen"
    return ":" + dep + "_crpc_gen"

def crpc_proto_library(
        name,
        srcs,
        deps = [],
        import_root = None,
        runtime = "//rpc:crpc",
        copts = [],
        **kwargs):
    """A cc_library `name` with the protoc-c and crpc code for `srcs`.

    Args:
      name: the cc_library users depend on.
      srcs: .proto files of this package.
      deps: other crpc_proto_library targets whose .proto files srcs import.
      import_root: None: imports and #includes are workspace-relative.
        "." (or a subdirectory of this package): they are relative to that
        directory instead, e.g. protos copied from elsewhere that say
        import "grpc/testing/empty.proto"; the cc_library then adds that
        directory to the include path.
      runtime: the crpc library the stubs call into; tests that fake the
        runtime pass "//rpc:public_headers".
      copts: extra C flags for the generated code.
      **kwargs: passed to the cc_library (visibility, testonly, tags, ...).
    """
    gen = name + "_crpc_gen"
    _crpc_proto_gen(
        name = gen,
        srcs = srcs,
        deps = [_gen_label(d) for d in deps],
        import_root = import_root or "",
        testonly = kwargs.get("testonly", False),
        visibility = kwargs.get("visibility"),
    )
    native.filegroup(
        name = name + "_crpc_srcs",
        srcs = [":" + gen],
        output_group = "srcs",
        testonly = kwargs.get("testonly", False),
    )
    native.filegroup(
        name = name + "_crpc_hdrs",
        srcs = [":" + gen],
        output_group = "hdrs",
        testonly = kwargs.get("testonly", False),
    )
    native.cc_library(
        name = name,
        srcs = [":" + name + "_crpc_srcs"],
        hdrs = [":" + name + "_crpc_hdrs"],
        deps = deps + [
            Label("//codegen:protobuf_c_wkt"),
            Label("//third_party:protobuf_c"),
            runtime,
        ],
        copts = copts,
        includes = [import_root] if import_root else [],
        **kwargs
    )
