#!/usr/bin/env bash
# Golden-file test for protoc-gen-crpc: runs protoc with the plugin over
# codegen/testdata/**/*.proto and diffs the .crpc.h/.crpc.c files against
# codegen/testdata/golden/. Runs it twice to prove the output is stable.
#
#   bazel test //codegen:golden_test        check
#   bazel run  //codegen:regen_goldens      rewrite the goldens in the tree
#
# Usage: golden_test.sh PLUGIN check|update PROTO...
set -euo pipefail
plugin=$(realpath "$1")
mode=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/a" "$tmp/b"
protoc -I. -I/usr/include --plugin=protoc-gen-crpc="$plugin" \
  --crpc_out="$tmp/a" "$@"
protoc -I. -I/usr/include --plugin=protoc-gen-crpc="$plugin" \
  --crpc_out="$tmp/b" "$@"
if ! diff -r "$tmp/a" "$tmp/b" >&2; then
  echo "FAIL: two runs gave different output" >&2
  exit 1
fi

if [[ $mode == update ]]; then
  dest="$BUILD_WORKSPACE_DIRECTORY/codegen/testdata/golden"
  rm -rf "$dest"
  mkdir -p "$dest"
  cp -r "$tmp/a/." "$dest/"
  echo "goldens rewritten in $dest:"
  (cd "$dest" && find . -type f | sort)
  exit 0
fi

if ! diff -ru codegen/testdata/golden "$tmp/a"; then
  echo "FAIL: generated code differs from codegen/testdata/golden" >&2
  echo "      (if the change is intended: bazel run //codegen:regen_goldens)" >&2
  exit 1
fi
echo "golden_test: $(find "$tmp/a" -type f | wc -l) files match, output stable"
