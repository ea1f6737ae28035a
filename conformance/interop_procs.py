"""Starting and stopping interop servers for the conformance runners
(run_matrix.py, server_paths.py): a server is started with --port=0 and
read for the "listening on port N" line it prints; it is stopped with
SIGTERM and its exit status and output are judged."""
import re
import subprocess
import time

PORT_LINE = re.compile(r"listening on port (\d+)")
# What a sanitizer (ASan, LSan, UBSan, TSan) prints in a report.
SANITIZER_MARKS = ("Sanitizer", "runtime error:")


def start_server(name, argv, env=None, flags=()):
    """Starts argv --port=0 flags (stdout and stderr on one pipe) and waits
    up to 60 s for its port. Returns (proc, port); raises RuntimeError with
    the server's last lines if it does not start."""
    proc = subprocess.Popen(list(argv) + ["--port=0"] + list(flags),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = PORT_LINE.search(line)
        if m:
            return proc, int(m.group(1))
        seen.append(line.strip())
    proc.kill()
    proc.wait()
    raise RuntimeError("server %s did not start: %s" % (
        name, " | ".join(seen[-3:]) or "no output"))


def terminate(proc, timeout=20):
    """SIGTERMs proc and waits up to timeout seconds for it to exit (then
    kills it). Returns (exit status, or None if it had to be killed; its
    output since the port line; seconds from SIGTERM to exit)."""
    t0 = time.monotonic()
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out, time.monotonic() - t0


def sanitizer_report(out):
    """The lines of a sanitizer report in a process's output ("" if none)."""
    return " | ".join(l for l in out.splitlines()
                      if any(m in l for m in SANITIZER_MARKS))


def stop_server(name, proc, timeout=20, ok_codes=(0, -15)):
    """SIGTERMs a server; None if it exited cleanly (a status in ok_codes,
    no sanitizer report in its output), else what went wrong."""
    code, out, _ = terminate(proc, timeout)
    if code is None:
        return "server %s did not exit within %d s of SIGTERM" % (name, timeout)
    if sanitizer_report(out) or code not in ok_codes:
        return "server %s exited with %s: %s" % (
            name, code, " | ".join(out.strip().splitlines()[-5:]))
    return None
