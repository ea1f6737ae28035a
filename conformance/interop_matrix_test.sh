#!/usr/bin/env bash
# Bazel test: the interop matrix (run_matrix.py) over the binaries in this
# test's runfiles, in plaintext and then over TLS (certificates from a
# throwaway CA in $TEST_TMPDIR). One JUnit <testcase> per cell goes to
# $XML_OUTPUT_FILE; TLS cells are named "tls/<case> <client>-><server>".
set -euo pipefail
R="${TEST_SRCDIR}/${TEST_WORKSPACE:-crpc}/conformance"
exec /usr/bin/python3 "$R/run_matrix.py" --bin_dir "$R" --python_dir "$R/python" \
    --transport=both
