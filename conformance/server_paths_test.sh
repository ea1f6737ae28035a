#!/usr/bin/env bash
# Bazel test: server_paths.py over the interop_server in this test's
# runfiles: the async handlers' worker thread, flow control, cancels,
# deadlines and shutdown mid-interval, against both handler styles.
set -euo pipefail
R="${TEST_SRCDIR}/${TEST_WORKSPACE:-crpc}/conformance"
exec /usr/bin/python3 "$R/server_paths.py" --bin_dir "$R" --python_dir "$R/python"
