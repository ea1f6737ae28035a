#!/usr/bin/python3
"""Runs the gRPC interop matrix: every test case against every pairing of
client and server implementations, and prints a table.

    conformance/run_matrix.py                  (after bazel build //conformance:all)
    conformance/run_matrix.py --bin_dir DIR    (where interop_server/_client are)
    conformance/run_matrix.py --tls            (the same over TLS)
    conformance/run_matrix.py --transport=both (plaintext, then TLS)

Columns are pairings "client->server" of crpc, python (grpcio) and, when its
binaries exist, c++ (gRPC C++ from Debian's libgrpc++). crpc's server runs
twice, once per handler style (README "Two handler styles"): "crpc" is
interop_server with its default blocking handlers, "crpc-async" the same
binary with --handlers=async (every TestService method served by async
handlers on the loop threads). crpc-async is a server only: every client
(crpc, python, c++) runs every case against it as against "crpc", and each
of its cells must pass wherever the blocking server's does. Each cell is
PASS, FAIL or n/a; n/a only where the *peer library's* API cannot express
the case (listed in PEER_LIMITS, printed under the table), never for a crpc
gap.
Exits 1 if any cell failed. With --junit (default: $XML_OUTPUT_FILE, as Bazel
sets for tests) it writes one <testcase> per cell; TLS cells are named
"tls/<case> <client>-><server>".

Over TLS every server serves a certificate from a throwaway CA made with the
openssl CLI in a temporary directory (SANs foo.test.google.fr,
*.test.google.fr, localhost, 127.0.0.1), and every client trusts that CA
(--use_test_ca=true --tls_ca_file) and checks the name foo.test.google.fr
(--server_host_override), as gRPC's interop runners do with gRPC's own test
certificates.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from interop_procs import sanitizer_report, start_server, stop_server

CASES = (
    "empty_unary", "large_unary", "client_streaming", "server_streaming",
    "ping_pong", "empty_stream", "timeout_on_sleeping_server",
    "cancel_after_begin", "cancel_after_first_response", "custom_metadata",
    "status_code_and_message", "special_status_message",
    "unimplemented_method", "unimplemented_service",
    "client_compressed_unary", "server_compressed_unary",
    "client_compressed_streaming", "server_compressed_streaming",
)

# (role, implementation, case) -> why the peer library cannot run it.
PEER_LIMITS = {
    ("server", "python", "client_compressed_unary"):
        "grpcio's Python server API cannot see whether a request was "
        "compressed (CompressedRequest)",
    ("server", "python", "client_compressed_streaming"):
        "grpcio's Python server API cannot see whether a request was "
        "compressed (CompressedRequest)",
    ("client", "python", "client_compressed_streaming"):
        "grpcio's Python client cannot turn compression off for one message "
        "of a call",
}

PY = "/usr/bin/python3"  # Debian's grpcio imports only under this one
HERE = os.path.dirname(os.path.abspath(__file__))
LINE = re.compile(r"^(PASS|FAIL|N/A) (\w+)(?:: (.*))?$")


def implementations(args):
    """name -> (server argv, client argv or None for a server only); c++
    only if built."""
    pydir = args.python_dir
    crpc_server = os.path.join(args.bin_dir, "interop_server")
    impls = {
        "crpc": ([crpc_server],
                 [os.path.join(args.bin_dir, "interop_client")]),
        # The same server with async handlers: served by, never a client.
        "crpc-async": ([crpc_server, "--handlers=async"], None),
        "python": ([PY, os.path.join(pydir, "interop_server.py")],
                   [PY, os.path.join(pydir, "interop_client.py")]),
    }
    cpp_server = os.path.join(args.bin_dir, "cpp", "interop_server_cpp")
    cpp_client = os.path.join(args.bin_dir, "cpp", "interop_client_cpp")
    if os.access(cpp_server, os.X_OK) and os.access(cpp_client, os.X_OK):
        impls["c++"] = ([cpp_server], [cpp_client])
    return impls


# The name gRPC's interop clients check by default with --use_test_ca=true;
# the generated certificate carries it (and its wildcard) like gRPC's
# server1.pem, plus the loopback names for hand-run clients.
TLS_HOST = "foo.test.google.fr"
TLS_SANS = ("DNS:foo.test.google.fr,DNS:*.test.google.fr,DNS:localhost,"
            "IP:127.0.0.1")


def make_pki(d):
    """A CA and a server certificate signed by it in directory d, with the
    openssl CLI: d/ca.pem, d/server.pem, d/server.key. P-256 keys, valid for
    two days (nothing outlives the run). Raises on an openssl failure."""
    def openssl(*argv):
        r = subprocess.run(("openssl",) + argv, cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (argv[0], r.stdout.strip()))
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=crpc interop test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=" + TLS_HOST)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=%s\n" % TLS_SANS)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
            "-days", "2", "-extfile", "server.ext")


def transport_flags(pki_dir):
    """(server flags, client flags): plaintext if pki_dir is None, else TLS
    with make_pki's files."""
    if pki_dir is None:
        return ["--use_tls=false"], ["--use_tls=false"]
    path = lambda name: os.path.join(pki_dir, name)
    return (["--use_tls=true", "--tls_cert_file=" + path("server.pem"),
             "--tls_key_file=" + path("server.key")],
            ["--use_tls=true", "--use_test_ca=true",
             "--tls_ca_file=" + path("ca.pem"),
             "--server_host_override=" + TLS_HOST])


def stop_servers(servers):
    """SIGTERM each server; name -> problem for those that did not exit
    cleanly (status, or a sanitizer report in their output)."""
    errors = {}
    for name, (proc, _) in servers.items():
        problem = stop_server(name, proc)
        if problem:
            errors[name] = problem
    return errors


def run_client(argv, port, env, flags):
    """case -> (outcome, detail) from one --test_case=all run."""
    try:
        out = subprocess.run(
            argv + ["--server_host=127.0.0.1", "--server_port=%d" % port,
                    "--test_case=all"] + flags,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=180, env=env).stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\n(client timed out)"
    results = {}
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            results[m.group(2)] = (m.group(1), m.group(3) or "")
    report = sanitizer_report(out)[:300]
    if report:
        # A leak or memory error in the client: no cell of this run is clean.
        for case, (outcome, _) in list(results.items()):
            if outcome == "PASS":
                results[case] = ("FAIL", "client sanitizer report: " + report)
    for case in CASES:
        if case not in results:
            tail = " | ".join(out.strip().splitlines()[-3:])
            results[case] = ("FAIL", "no result from the client: " + tail)
    return results


def run_matrix(impls, pairings, env_of, pki_dir):
    """(case, client, server) -> (outcome, detail) for every pairing, over
    TLS if pki_dir (make_pki's directory) else plaintext."""
    server_flags, client_flags = transport_flags(pki_dir)
    servers = {}
    start_errors = {}
    cells = {}
    try:
        for name in sorted({s for _, s in pairings}):
            try:
                servers[name] = start_server(name, impls[name][0],
                                             env_of(name), server_flags)
            except RuntimeError as e:  # its cells fail; the others still run
                start_errors[name] = str(e)
        for client, server in pairings:
            if server in start_errors:
                res = {case: ("FAIL", start_errors[server]) for case in CASES}
            else:
                res = run_client(impls[client][1], servers[server][1],
                                 env_of(client), client_flags)
            for case in CASES:
                why = (PEER_LIMITS.get(("client", client, case)) or
                       PEER_LIMITS.get(("server", server, case)))
                cells[(case, client, server)] = (
                    ("n/a", why) if why else res[case])
    finally:
        server_errors = stop_servers(servers)

    # A server that crashed, hung on SIGTERM or had a sanitizer report fails
    # every cell it served: those cells' calls may have caused it.
    for (case, client, server), (outcome, _) in list(cells.items()):
        if server in server_errors and outcome == "PASS":
            cells[(case, client, server)] = ("FAIL", server_errors[server])
    return cells


def print_table(title, cells, pairings):
    """The table and the reason for every cell that is not PASS; returns
    the counts {"PASS": n, "FAIL": n, "n/a": n}."""
    cols = ["%s->%s" % p for p in pairings]
    width = max(len(c) for c in CASES)
    colw = max([12] + [len(c) for c in cols])
    print("%-*s  %s" % (width, title,
                        "  ".join("%-*s" % (colw, c) for c in cols)))
    for case in CASES:
        row = [cells[(case, c, s)][0] for c, s in pairings]
        print("%-*s  %s" % (width, case,
                            "  ".join("%-*s" % (colw, r) for r in row)))
    counts = {"PASS": 0, "FAIL": 0, "n/a": 0}
    notes = []
    for case in CASES:
        for c, s in pairings:
            outcome, detail = cells[(case, c, s)]
            counts[outcome if outcome != "N/A" else "n/a"] += 1
            if outcome != "PASS":
                notes.append("  %s %s->%s: %s: %s" % (outcome, c, s, case, detail))
    if notes:
        print("\n".join([""] + notes))
    print("\n%d passed, %d failed, %d n/a\n" %
          (counts["PASS"], counts["FAIL"], counts["n/a"]))
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin_dir", default=os.path.join(
        os.path.dirname(HERE), "bazel-bin", "conformance"))
    ap.add_argument("--python_dir", default=os.path.join(HERE, "python"))
    ap.add_argument("--junit", default=os.environ.get("XML_OUTPUT_FILE"))
    ap.add_argument("--controls", action="store_true",
                    help="also run the peers against each other (checks the "
                         "peers themselves, not crpc)")
    ap.add_argument("--transport", choices=("plaintext", "tls", "both"),
                    default="plaintext",
                    help="plaintext (h2c), TLS with a throwaway CA, or both "
                         "one after the other")
    ap.add_argument("--tls", action="store_const", const="tls",
                    dest="transport", help="same as --transport=tls")
    args = ap.parse_args()

    env = dict(os.environ)
    # Under a sanitizer build, crpc's binaries keep the leak checker the
    # environment asked for (a leak is a crpc bug), but the gRPC C++ peers do
    # not: gRPC keeps process-lifetime singletons that LeakSanitizer reports.
    peer_env = dict(env)
    peer_env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    impls = implementations(args)
    crpc_names = ("crpc", "crpc-async")
    env_of = lambda name: env if name in crpc_names else peer_env
    # Every client against both of crpc's server styles, and crpc's client
    # against every peer server.
    pairings = [("crpc", "crpc"), ("crpc", "crpc-async"), ("crpc", "python"),
                ("python", "crpc"), ("python", "crpc-async")]
    if "c++" in impls:
        pairings += [("crpc", "c++"), ("c++", "crpc"), ("c++", "crpc-async")]
    if args.controls:
        peers = [n for n in impls if n not in crpc_names]
        pairings += [(c, s) for c in peers for s in peers]

    # (prefix, cells) per matrix run; the prefix names TLS cells in JUnit.
    runs = []
    failed = 0
    if args.transport in ("plaintext", "both"):
        cells = run_matrix(impls, pairings, env_of, None)
        failed += print_table("test case", cells, pairings)["FAIL"]
        runs.append(("", cells))
    if args.transport in ("tls", "both"):
        # TEST_TMPDIR under Bazel: cleaned with the test's sandbox anyway.
        pki_dir = tempfile.mkdtemp(prefix="crpc-interop-pki-",
                                   dir=os.environ.get("TEST_TMPDIR"))
        try:
            make_pki(pki_dir)
            cells = run_matrix(impls, pairings, env_of, pki_dir)
        finally:
            shutil.rmtree(pki_dir, ignore_errors=True)
        failed += print_table("TLS test case", cells, pairings)["FAIL"]
        runs.append(("tls/", cells))

    if args.junit:
        write_junit(args.junit, runs, pairings)
    return 1 if failed else 0


def write_junit(path, runs, pairings):
    suite = ET.Element("testsuite", name="interop")
    tests = fails = skips = 0
    for prefix, cells in runs:
        for case in CASES:
            for c, s in pairings:
                outcome, detail = cells[(case, c, s)]
                tc = ET.SubElement(
                    suite, "testcase",
                    classname="interop.%s%s->%s" % (prefix.replace("/", "."), c, s),
                    name="%s%s %s->%s" % (prefix, case, c, s))
                tests += 1
                if outcome == "FAIL":
                    fails += 1
                    ET.SubElement(tc, "failure", message=detail).text = detail
                elif outcome in ("n/a", "N/A"):
                    skips += 1
                    ET.SubElement(tc, "skipped", message=detail)
    suite.set("tests", str(tests))
    suite.set("failures", str(fails))
    suite.set("skipped", str(skips))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


if __name__ == "__main__":
    sys.exit(main())
