"""Test helpers for //codegen (not for users)."""

def _cc_headers_impl(ctx):
    # cc_library puts no headers in runfiles; compile tests that call a
    # compiler directly need them there.
    hdrs = depset(transitive = [
        d[CcInfo].compilation_context.headers
        for d in ctx.attr.deps
    ])
    return [DefaultInfo(files = hdrs, runfiles = ctx.runfiles(transitive_files = hdrs))]

cc_headers = rule(
    implementation = _cc_headers_impl,
    attrs = {"deps": attr.label_list(providers = [CcInfo])},
    doc = "The transitive headers of cc_library deps, as files and runfiles.",
)
