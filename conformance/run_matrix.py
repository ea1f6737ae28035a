#!/usr/bin/python3
"""Runs the gRPC interop matrix: every test case against every pairing of
client and server implementations, and prints a table.

    conformance/run_matrix.py                  (after bazel build //conformance:all)
    conformance/run_matrix.py --bin_dir DIR    (where interop_server/_client are)

Columns are pairings "client->server" of crpc, python (grpcio) and, when its
binaries exist, c++ (gRPC C++ from Debian's libgrpc++). Each cell is PASS,
FAIL or n/a; n/a only where the *peer library's* API cannot express the case
(listed in PEER_LIMITS, printed under the table), never for a crpc gap.
Exits 1 if any cell failed. With --junit (default: $XML_OUTPUT_FILE, as Bazel
sets for tests) it writes one <testcase> per cell.
"""
import argparse
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

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
    """name -> (server argv, client argv); c++ only if built."""
    pydir = args.python_dir
    impls = {
        "crpc": ([os.path.join(args.bin_dir, "interop_server")],
                 [os.path.join(args.bin_dir, "interop_client")]),
        "python": ([PY, os.path.join(pydir, "interop_server.py")],
                   [PY, os.path.join(pydir, "interop_client.py")]),
    }
    cpp_server = os.path.join(args.bin_dir, "cpp", "interop_server_cpp")
    cpp_client = os.path.join(args.bin_dir, "cpp", "interop_client_cpp")
    if os.access(cpp_server, os.X_OK) and os.access(cpp_client, os.X_OK):
        impls["c++"] = ([cpp_server], [cpp_client])
    return impls


def start_server(argv, env):
    proc = subprocess.Popen(argv + ["--port=0", "--use_tls=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on port (\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError("server %s did not start: %s" % (argv, proc.stdout.read()))


def stop_servers(servers):
    """SIGTERM each server; name -> problem for those that did not exit
    cleanly (status, or a sanitizer report in their output)."""
    errors = {}
    for name, (proc, _) in servers.items():
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            errors[name] = "server %s did not exit within 20 s of SIGTERM" % name
            continue
        if "Sanitizer" in out or proc.returncode not in (0, -15):
            errors[name] = "server %s exited with %s: %s" % (
                name, proc.returncode, " | ".join(out.strip().splitlines()[-5:]))
    return errors


def run_client(argv, port, env):
    """case -> (outcome, detail) from one --test_case=all run."""
    try:
        out = subprocess.run(
            argv + ["--server_host=127.0.0.1", "--server_port=%d" % port,
                    "--test_case=all", "--use_tls=false"],
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
    if "Sanitizer" in out:
        # A leak or memory error in the client: no cell of this run is clean.
        report = " | ".join(l for l in out.splitlines() if "Sanitizer" in l)[:300]
        for case, (outcome, _) in list(results.items()):
            if outcome == "PASS":
                results[case] = ("FAIL", "client sanitizer report: " + report)
    for case in CASES:
        if case not in results:
            tail = " | ".join(out.strip().splitlines()[-3:])
            results[case] = ("FAIL", "no result from the client: " + tail)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin_dir", default=os.path.join(
        os.path.dirname(HERE), "bazel-bin", "conformance"))
    ap.add_argument("--python_dir", default=os.path.join(HERE, "python"))
    ap.add_argument("--junit", default=os.environ.get("XML_OUTPUT_FILE"))
    ap.add_argument("--controls", action="store_true",
                    help="also run the peers against each other (checks the "
                         "peers themselves, not crpc)")
    args = ap.parse_args()

    env = dict(os.environ)
    # Under a sanitizer build, crpc's binaries keep the leak checker the
    # environment asked for (a leak is a crpc bug), but the gRPC C++ peers do
    # not: gRPC keeps process-lifetime singletons that LeakSanitizer reports.
    peer_env = dict(env)
    peer_env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    impls = implementations(args)
    env_of = lambda name: env if name == "crpc" else peer_env
    pairings = [("crpc", "crpc"), ("crpc", "python"), ("python", "crpc")]
    if "c++" in impls:
        pairings += [("crpc", "c++"), ("c++", "crpc")]
    if args.controls:
        peers = [n for n in impls if n != "crpc"]
        pairings += [(c, s) for c in peers for s in peers]

    servers = {}
    try:
        for name in sorted({s for _, s in pairings}):
            servers[name] = start_server(impls[name][0], env_of(name))
        cells = {}
        for client, server in pairings:
            res = run_client(impls[client][1], servers[server][1],
                             env_of(client))
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

    cols = ["%s->%s" % p for p in pairings]
    width = max(len(c) for c in CASES)
    print("%-*s  %s" % (width, "test case", "  ".join("%-12s" % c for c in cols)))
    for case in CASES:
        row = [cells[(case, c, s)][0] for c, s in pairings]
        print("%-*s  %s" % (width, case, "  ".join("%-12s" % r for r in row)))
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
    print("\n%d passed, %d failed, %d n/a" %
          (counts["PASS"], counts["FAIL"], counts["n/a"]))

    if args.junit:
        write_junit(args.junit, cells, pairings)
    return 1 if counts["FAIL"] else 0


def write_junit(path, cells, pairings):
    suite = ET.Element("testsuite", name="interop")
    fails = skips = 0
    for case in CASES:
        for c, s in pairings:
            outcome, detail = cells[(case, c, s)]
            tc = ET.SubElement(suite, "testcase", classname="interop.%s->%s" % (c, s),
                               name="%s %s->%s" % (case, c, s))
            if outcome == "FAIL":
                fails += 1
                ET.SubElement(tc, "failure", message=detail).text = detail
            elif outcome in ("n/a", "N/A"):
                skips += 1
                ET.SubElement(tc, "skipped", message=detail)
    suite.set("tests", str(len(CASES) * len(pairings)))
    suite.set("failures", str(fails))
    suite.set("skipped", str(skips))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


if __name__ == "__main__":
    sys.exit(main())
