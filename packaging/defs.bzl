"""Rules that turn crpc's cc_library tree into what gets installed.

crpc_prelinked: every static archive the deps link (system libraries stay
    -l flags) prelinked into a single object whose only global symbols are
    the public ones (`exports`, one name a line), and libcrpc.a holding it.
    Internal helpers keep their short names (loop_*, scall_*, ...) inside
    crpc without clashing with a program that links libcrpc.a and has its
    own function of the same name. libcrpc.so is linked from the same
    object (a cc_binary with linkshared over the cc_library tree would not
    do: Bazel hands gold the objects between --start-lib/--end-lib, and a
    shared library that references nothing pulls none of them in).

crpc_header_tree: the public headers of cc_library deps, copied under an
    include prefix (interceptors/logging.h -> crpc/interceptors/logging.h),
    as a cc_library-ready tree and as plain files for the installer.
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

def _archives(deps):
    out = []
    for dep in deps:
        for li in dep[CcInfo].linking_context.linker_inputs.to_list():
            for lib in li.libraries:
                a = lib.pic_static_library or lib.static_library
                if a != None and a not in out:
                    out.append(a)
    return out

def _crpc_prelinked_impl(ctx):
    cc = find_cpp_toolchain(ctx)
    archives = _archives(ctx.attr.deps)
    obj = ctx.actions.declare_file(ctx.label.name + ".pic.o")
    lib = ctx.actions.declare_file(ctx.attr.archive)

    # ld -r keeps every member (--whole-archive: each archive is part of
    # the library, not a pool to pick from); objcopy then makes every
    # global symbol but the exported ones local; ar wraps the one object.
    ctx.actions.run_shell(
        inputs = archives + [ctx.file.exports],
        tools = cc.all_files,
        outputs = [obj, lib],
        command = " && ".join([
            "{ld} -r -o {obj} --whole-archive {archives} --no-whole-archive",
            "{objcopy} --keep-global-symbols={exports} {obj}",
            "rm -f {lib}",
            "{ar} rcsD {lib} {obj}",
        ]).format(
            ld = cc.ld_executable,
            objcopy = cc.objcopy_executable,
            ar = cc.ar_executable,
            obj = obj.path,
            lib = lib.path,
            exports = ctx.file.exports.path,
            archives = " ".join([a.path for a in archives]),
        ),
        mnemonic = "CrpcPrelink",
        progress_message = "Prelinking %s" % lib.short_path,
    )
    return [
        DefaultInfo(files = depset([obj])),
        OutputGroupInfo(archive = depset([lib])),
    ]

crpc_prelinked = rule(
    implementation = _crpc_prelinked_impl,
    doc = """The deps' static archives as one relocatable object (the
    default output, for the shared library) and as `archive`, an ar file
    holding it (output group "archive": libcrpc.a).""",
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "exports": attr.label(allow_single_file = True, mandatory = True),
        "archive": attr.string(mandatory = True),
        "_cc_toolchain": attr.label(
            default = Label("@bazel_tools//tools/cpp:current_cc_toolchain"),
        ),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    fragments = ["cpp"],
)

def _crpc_header_tree_impl(ctx):
    outs = []
    for dep in ctx.attr.deps:
        for h in dep[CcInfo].compilation_context.direct_public_headers:
            out = ctx.actions.declare_file(
                "%s/%s/%s" % (ctx.attr.root, ctx.attr.prefix, h.basename),
            )
            ctx.actions.symlink(output = out, target_file = h)
            outs.append(out)
    return [DefaultInfo(files = depset(outs))]

crpc_header_tree = rule(
    implementation = _crpc_header_tree_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "root": attr.string(default = "include"),
        "prefix": attr.string(mandatory = True),
    },
)
