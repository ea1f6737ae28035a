#!/usr/bin/env python3
"""The API reference and the export list, both read from crpc's public headers.

    tools/apidoc.py --write          rewrite docs/api.md
    tools/apidoc.py --check [--doc FILE] [H...]
                                     exit 1 if docs/api.md (FILE) is stale
    tools/apidoc.py --symbols H...   print the exported names, one a line
    tools/apidoc.py --version-script NODE H...   a GNU ld version script

The headers are the manual (one comment above each declaration says who
owns what, which threads may call, what it returns); this script only
arranges them: an index of every function with the first sentence of its
comment, then each header's overview and its declarations with their
comments, verbatim. Nothing is rephrased, so the reference cannot drift from
the headers, and --check (a test) says when it has not been regenerated.

The same parse gives the shared library's export list, so libcrpc.so exports
exactly the functions and data the headers declare: internal helpers with a
crpc_ prefix stay hidden.

A header argument is PATH or PATH=NAME, NAME being how users include it
(interceptors/logging.h=crpc/interceptors/logging.h). Without arguments the
headers are the repository's: rpc/include/crpc/*.h and interceptors/*.h.
Standard library only: it runs under any python3.
"""
import difflib
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_MD = os.path.join("docs", "api.md")
SECTION = re.compile(r"/\*\s*-{3,}\s*(.*?)\s*-{3,}")
IDENT_BEFORE_PAREN = re.compile(r"([A-Za-z_]\w*)\s*\(")


def default_headers():
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "rpc/include/crpc/*.h"))):
        out.append((path, "crpc/" + os.path.basename(path)))
    for path in sorted(glob.glob(os.path.join(ROOT, "interceptors/*.h"))):
        out.append((path, "crpc/interceptors/" + os.path.basename(path)))
    return out


def parse_args_headers(args):
    out = []
    for a in args:
        path, _, name = a.partition("=")
        out.append((path, name or path))
    return out


def strip_comments(code):
    return re.sub(r"/\*.*?\*/", " ", code, flags=re.S)


def chunks(text):
    """Splits a header into (kind, text) chunks: comment, pp, blank, code."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s == "":
            yield "blank", ""
            i += 1
        elif s.startswith("/*"):
            j = i
            while "*/" not in lines[j]:
                j += 1
            yield "comment", "\n".join(lines[i:j + 1])
            i = j + 1
        elif s.startswith("#"):
            j = i
            while lines[j].endswith("\\"):
                j += 1
            yield "pp", "\n".join(lines[i:j + 1])
            i = j + 1
        elif s in ('extern "C" {', "}"):
            i += 1  # the C++ linkage wrapper
        else:
            # Up to the line that closes every bracket and ends in ';'
            # (comments, which may span lines, do not count).
            j = i
            while True:
                bare = strip_comments("\n".join(lines[i:j + 1]))
                depth = bare.count("{") + bare.count("(") - \
                    bare.count("}") - bare.count(")")
                if depth <= 0 and "/*" not in bare and \
                        bare.rstrip().endswith(";"):
                    break
                j += 1
            yield "code", "\n".join(lines[i:j + 1])
            i = j + 1


def comment_text(comment):
    """The words of a /* */ comment, without the delimiters and the * rails."""
    body = comment.strip()[2:-2]
    out = []
    for line in body.split("\n"):
        line = re.sub(r"^\s*\* ?", "", line) if line.strip().startswith("*") \
            else line.strip()
        out.append(line.rstrip())
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def classify(code):
    """(kind, names) of one declaration: function, data, type."""
    bare = " ".join(strip_comments(code).split())
    if re.match(r"typedef\s+(struct|enum|union)\b[^;(]*\{", bare):
        return "type", [re.findall(r"(\w+)\s*;$", bare)[0]]
    if bare.startswith("typedef"):
        m = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", bare)
        if m:
            return "type", [m.group(1)]
        return "type", [re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*;$", bare)[0]]
    if re.match(r"(struct|enum|union)\b", bare):
        return "type", [bare.split()[1]]
    head = bare.split("__attribute__")[0]
    if "(" in head:
        return "function", [IDENT_BEFORE_PAREN.search(head).group(1)]
    return "data", [re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*;$", bare)[0]]


def parse(path, name):
    """A header's overview and its items: dicts with kind, names, comment,
    decl (the declarations' source)."""
    with open(path) as f:
        text = f.read()
    overview, items, pending, group = "", [], None, None
    first = True
    for kind, chunk in chunks(text):
        if kind == "comment" and first:
            overview, first = comment_text(chunk), False
            continue
        first = False
        if kind == "blank":
            if pending is not None:  # a standalone note between items
                items.append({"kind": "note", "names": [], "comment": pending,
                              "decl": ""})
            pending, group = None, None
        elif kind == "comment":
            m = SECTION.match(chunk.strip())
            if m:
                rest = comment_text(chunk).split("\n", 1)
                items.append({"kind": "section", "names": [m.group(1)],
                              "comment": rest[1] if len(rest) > 1 else "",
                              "decl": ""})
                pending, group = None, None
            elif group is not None:
                pending, group = comment_text(chunk), None
            elif pending is not None:
                pending += "\n" + comment_text(chunk)
            else:
                pending = comment_text(chunk)
        elif kind == "pp":
            m = re.match(r"#\s*define\s+(\w+)(\(?)", chunk)
            if not m or m.group(1).endswith("_H") or m.group(1).endswith("_"):
                continue
            item_kind = "macro" if m.group(2) else "constant"
            # A macro right below a function (crpc_ctx_with_cancel below
            # crpc_ctx_with_cancel_at) shares its comment.
            joins = group is not None and pending is None and (
                group["kind"] == item_kind or
                (item_kind == "macro" and group["kind"] == "function"))
            if joins:
                group["names"].append(m.group(1))
                group["decl"] += "\n" + chunk
            else:
                group = {"kind": item_kind, "names": [m.group(1)],
                         "exports": [], "comment": pending or "",
                         "decl": chunk}
                items.append(group)
            pending = None
        else:
            item_kind, names = classify(chunk)
            exports = list(names) if item_kind in ("function", "data") \
                else []
            if group is not None and pending is None and \
                    group["kind"] == item_kind and item_kind != "type":
                group["names"] += names
                group["exports"] += exports
                group["decl"] += "\n" + chunk
            else:
                group = {"kind": item_kind, "names": list(names),
                         "exports": exports, "comment": pending or "",
                         "decl": chunk}
                items.append(group)
            pending = None
    return {"path": path, "name": name, "overview": overview, "items": items}


def stray_references(specs):
    """Mentions of the failure catalog or the design that do not say where
    they are: each must name DESIGN.md, the file that holds both."""
    out = []
    for path, name in specs:
        text = open(path).read()
        for m in re.finditer(r"catalog|design (doc|file)", text, re.I):
            near = " ".join(text[m.start():m.start() + 160].split())
            if "DESIGN.md" not in near.replace(" * ", " "):
                line = text.count("\n", 0, m.start()) + 1
                out.append("%s:%d: '%s' without DESIGN.md" % (
                    name, line, near[:60]))
    return out


def exported(headers):
    names = []
    for h in headers:
        for it in h["items"]:
            names += it.get("exports", [])
    return sorted(set(names))


def anchor(text):
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def first_sentence(comment):
    """Up to the first '.' that ends a sentence outside brackets."""
    flat = " ".join(comment.split())
    depth = 0
    for i, ch in enumerate(flat):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "." and depth <= 0 and (i + 1 == len(flat) or
                                         flat[i + 1] == " ") and \
                not flat[max(0, i - 3):i + 1].endswith(("e.g.", "i.e.")):
            flat = flat[:i + 1]
            break
    return flat if len(flat) <= 140 else flat[:137].rsplit(" ", 1)[0] + " ..."


def markdown(headers):
    out = ["# crpc API reference", "",
           "Generated by `tools/apidoc.py --write` from the public headers; "
           "do not edit by hand (`//docs:apidoc_test` fails when this file "
           "is stale). Each entry is the header's own text: the contract "
           "comment (ownership, threads, returns) above the declaration. "
           "Include paths are as installed (`./crpc.sh install`); inside "
           "this repository the interceptor headers are "
           "`interceptors/<name>.h`.", ""]
    out += ["## Index", "", "| function | header | summary |", "|---|---|---|"]
    missing = []
    for h in headers:
        for it in h["items"]:
            if it["kind"] not in ("function", "macro", "data"):
                continue
            title = ", ".join(it["names"])
            summary = first_sentence(it["comment"]) if it["comment"] else \
                "(see the header's overview)"
            if not it["comment"] and it["kind"] == "function":
                missing += it["names"]
            for n in it["names"]:
                out.append("| [`%s`](#%s) | `%s` | %s |" % (
                    n, anchor(title), h["name"],
                    summary.replace("|", "\\|")))
    out.append("")
    if missing:
        out += ["Functions without a comment of their own (their header's "
                "overview covers them): " +
                ", ".join("`%s`" % n for n in missing) + ".", ""]
    for h in headers:
        out += ["## %s" % h["name"], "", "```text", h["overview"], "```", ""]
        for it in h["items"]:
            if it["kind"] == "section":
                out += ["### %s" % it["names"][0], ""]
                if it["comment"]:
                    out += ["```text", it["comment"], "```", ""]
                continue
            if it["kind"] == "note":
                out += ["```c", "/* " + it["comment"].replace(
                    "\n", "\n * ") + " */", "```", ""]
                continue
            out += ["#### %s" % ", ".join(it["names"]), "", "```c"]
            if it["comment"]:
                body = it["comment"].replace("\n", "\n * ")
                out.append("/* " + body + " */")
            out += [it["decl"], "```", ""]
    return "\n".join(line.rstrip() for line in out).rstrip() + "\n"


def version_script(node, names):
    lines = ["/* Generated by tools/apidoc.py from crpc's public headers: the",
             " * library exports exactly what they declare. */",
             "%s {" % node, "  global:"]
    lines += ["    %s;" % n for n in names]
    lines += ["  local:", "    *;", "};"]
    return "\n".join(lines) + "\n"


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    mode, rest = argv[0], argv[1:]
    if mode == "--version-script":
        node, rest = rest[0], rest[1:]
    doc = os.path.join(ROOT, API_MD)
    if rest[:1] == ["--doc"]:
        doc, rest = rest[1], rest[2:]
    specs = parse_args_headers(rest) if rest else default_headers()
    # crpc/*.h, then crpc/interceptors/*.h, each by name: the same order
    # whichever way the headers were listed.
    specs.sort(key=lambda spec: (spec[1].count("/"), spec[1]))
    headers = [parse(p, n) for p, n in specs]
    if mode == "--symbols":
        sys.stdout.write("".join(n + "\n" for n in exported(headers)))
    elif mode == "--version-script":
        sys.stdout.write(version_script(node, exported(headers)))
    elif mode in ("--write", "--check"):
        text = markdown(headers)
        if mode == "--write":
            with open(doc, "w") as f:
                f.write(text)
            return 0
        stray = stray_references(specs)
        if stray:
            print("\n".join(stray))
            return 1
        old = open(doc).read() if os.path.exists(doc) else ""
        if old != text:
            print("%s is stale: run tools/apidoc.py --write" % API_MD)
            diff = difflib.unified_diff(old.splitlines(), text.splitlines(),
                                        "docs/api.md", "from the headers",
                                        lineterm="", n=1)
            print("\n".join(list(diff)[:60]))
            return 1
    elif mode == "--markdown":
        sys.stdout.write(markdown(headers))
    else:
        print("unknown mode %s" % mode, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
