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

From another workspace, load("@crpc//codegen:crpc.bzl", ...): every label
here is crpc's own (Label(...)), so the default runtime is @crpc//rpc:crpc
whatever the repository is called.

The host tools default to Debian's; point them elsewhere with --define
(e.g. in .bazelrc):
    --define=CRPC_PROTOC=/opt/protobuf/bin/protoc
    --define=CRPC_PROTOC_GEN_C=/opt/protobuf-c/bin/protoc-gen-c
    --define=CRPC_PROTO_INCLUDE=/opt/protobuf/include   (google/protobuf/*)
"""

_TOOL_DEFAULTS = {
    "CRPC_PROTOC": "/usr/bin/protoc",
    "CRPC_PROTOC_GEN_C": "/usr/bin/protoc-gen-c",
    "CRPC_PROTO_INCLUDE": "/usr/include",
}

def _crpc_protoc_tools_impl(ctx):
    return [platform_common.TemplateVariableInfo({
        k: ctx.var.get(k, v)
        for k, v in _TOOL_DEFAULTS.items()
    })]

crpc_protoc_tools = rule(
    implementation = _crpc_protoc_tools_impl,
    doc = """The host protoc, protoc-gen-c and the directory holding
    google/protobuf/*.proto, as make variables $(CRPC_PROTOC),
    $(CRPC_PROTOC_GEN_C), $(CRPC_PROTO_INCLUDE) (for a genrule's
    `toolchains`): Debian's paths unless --define says otherwise.""",
)

CrpcProtoInfo = provider(
    doc = "The .proto files of a crpc_proto_library and all its deps.",
    fields = {
        "transitive_srcs": "depset of .proto Files",
        "import_roots": "depset of directories imports are relative to " +
                        "(exec-root relative)",
        "repo_roots": "depset of the repositories' roots the protos are " +
                      "in: '.' or external/<name>",
    },
)

def _join(*parts):
    return "/".join([p for p in parts if p])

def _repo_relative(f):
    """A source file's path inside its own repository."""
    if f.owner.workspace_name:
        return f.short_path[len("../" + f.owner.workspace_name) + 1:]
    return f.short_path

def _crpc_proto_gen_impl(ctx):
    transitive = depset(
        ctx.files.srcs,
        transitive = [d[CrpcProtoInfo].transitive_srcs for d in ctx.attr.deps],
    )
    pkg = ctx.label.package

    # "" in this workspace, external/<name> when crpc_proto_library is used
    # in another repository (crpc's own protos seen from a user workspace).
    wsroot = ctx.label.workspace_root
    root = ctx.attr.import_root
    if root in ("", "."):
        root_path = pkg
    else:
        root_path = (pkg + "/" + root) if pkg else root
    roots = depset(
        [_join(wsroot, root_path) or "."] if ctx.attr.import_root else [],
        transitive = [d[CrpcProtoInfo].import_roots for d in ctx.attr.deps],
    )
    repo_roots = depset(
        [wsroot or "."],
        transitive = [d[CrpcProtoInfo].repo_roots for d in ctx.attr.deps],
    )
    srcs, hdrs, names = [], [], []
    for src in ctx.files.srcs:
        if (src.owner.package != pkg or
            src.owner.workspace_name != ctx.label.workspace_name):
            fail("%s: srcs must be .proto files of package //%s" % (src, pkg))
        rel = _repo_relative(src)[len(pkg) + 1:] if pkg else _repo_relative(src)
        base = rel[:-len(".proto")]
        srcs.append(ctx.actions.declare_file(base + ".pb-c.c"))
        srcs.append(ctx.actions.declare_file(base + ".crpc.c"))
        hdrs.append(ctx.actions.declare_file(base + ".pb-c.h"))
        hdrs.append(ctx.actions.declare_file(base + ".crpc.h"))

        # The name protoc knows the file by, relative to its import root.
        name = _repo_relative(src)
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
    out = _join(ctx.bin_dir.path, wsroot)
    if ctx.attr.import_root and root_path:
        out += "/" + root_path

    # Import roots first, then each repository's root ("." last: a file
    # under external/x must get its name from -Iexternal/x, not -I.).
    repos = [r for r in repo_roots.to_list() if r != "."] + ["."]
    dirs = []
    for r in roots.to_list() + repos:
        if r not in dirs:
            dirs.append(r)
    includes = " ".join(["-I" + r for r in dirs])
    tools = ctx.attr._tools[platform_common.TemplateVariableInfo].variables
    ctx.actions.run_shell(
        command = " && ".join([
            "{protoc} {includes} -I{proto_include} --include_imports " +
            "--include_source_info --descriptor_set_out={full} {paths}",
            "{strip} < {full} > {nosvc}",
            "{protoc} --descriptor_set_in={nosvc} " +
            "--plugin=protoc-gen-c={protoc_gen_c} --c_out={out} {srcs}",
            "{protoc} --descriptor_set_in={full} " +
            "--plugin=protoc-gen-crpc={plugin} --crpc_out={out} {srcs}",
        ]).format(
            protoc = tools["CRPC_PROTOC"],
            protoc_gen_c = tools["CRPC_PROTOC_GEN_C"],
            proto_include = tools["CRPC_PROTO_INCLUDE"],
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
        CrpcProtoInfo(
            transitive_srcs = transitive,
            import_roots = roots,
            repo_roots = repo_roots,
        ),
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
        "_tools": attr.label(default = Label("//codegen:protoc_tools")),
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
        runtime = None,
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
      runtime: the crpc library the stubs call into (None: crpc's
        //rpc:crpc, also from another workspace); tests that fake the
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
            runtime or Label("//rpc:crpc"),
        ],
        copts = copts,
        includes = [import_root] if import_root else [],
        **kwargs
    )
