#!/usr/bin/env bash
# Bazel test: the interop matrix (run_matrix.py) over the binaries in this
# test's runfiles. One JUnit <testcase> per cell goes to $XML_OUTPUT_FILE.
set -euo pipefail
R="${TEST_SRCDIR}/${TEST_WORKSPACE:-crpc}/conformance"
exec /usr/bin/python3 "$R/run_matrix.py" --bin_dir "$R" --python_dir "$R/python"
