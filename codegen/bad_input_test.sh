#!/usr/bin/env bash
# Inputs protoc-gen-crpc must refuse with a clear error and no files:
#  - handcrafted CodeGeneratorRequests (testdata/bad/*.txtpb, text format,
#    first line "# expect: <substring of the error>"),
#  - a .proto protoc accepts but the plugin rejects (c_package.proto),
#  - bytes that are not a CodeGeneratorRequest (stderr, exit 1).
# Usage: bad_input_test.sh PLUGIN TXTPB... C_PACKAGE_PROTO
set -euo pipefail
plugin=$(realpath "$1")
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plugin_proto=(-I/usr/include google/protobuf/compiler/plugin.proto)
fail=0 n=0

for input in "$@"; do
  case "$input" in
    *.txtpb)
      want=$(sed -n '1s/^# expect: //p' "$input")
      grep -v '^#' "$input" |
        protoc --encode=google.protobuf.compiler.CodeGeneratorRequest \
          "${plugin_proto[@]}" >"$tmp/req.bin"
      rc=0
      "$plugin" <"$tmp/req.bin" >"$tmp/resp.bin" || rc=$?
      protoc --decode=google.protobuf.compiler.CodeGeneratorResponse \
        "${plugin_proto[@]}" <"$tmp/resp.bin" | sed 's/\\"/"/g' >"$tmp/resp.txt"
      if [[ $rc -ne 0 ]] || ! grep -qF -- "$want" "$tmp/resp.txt" ||
         grep -q '^file {' "$tmp/resp.txt"; then
        echo "FAIL $input (exit $rc): want error containing: $want" >&2
        cat "$tmp/resp.txt" >&2
        fail=1
      else
        echo "ok   $(basename "$input"): $(grep '^error:' "$tmp/resp.txt")"
      fi
      ;;
    *.proto)
      mkdir -p "$tmp/out"
      rc=0
      protoc -I. -I/usr/include --plugin=protoc-gen-crpc="$plugin" \
        --crpc_out="$tmp/out" "$input" 2>"$tmp/err.txt" || rc=$?
      if [[ $rc -eq 0 ]] || ! grep -q 'c_package' "$tmp/err.txt" ||
         [[ -n "$(ls -A "$tmp/out")" ]]; then
        echo "FAIL $input: want protoc to fail on c_package, no files" >&2
        cat "$tmp/err.txt" >&2
        fail=1
      else
        echo "ok   $(basename "$input"): $(cat "$tmp/err.txt")"
      fi
      ;;
  esac
  n=$((n + 1))
done

# Not a CodeGeneratorRequest at all: protoc's fault, so stderr + exit 1.
rc=0
printf '\xff\xff\xff garbage' | "$plugin" >"$tmp/out.bin" 2>"$tmp/err.txt" || rc=$?
if [[ $rc -ne 1 ]] || ! grep -q 'not a CodeGeneratorRequest' "$tmp/err.txt" ||
   [[ -s "$tmp/out.bin" ]]; then
  echo "FAIL garbage stdin: exit $rc, stderr: $(cat "$tmp/err.txt")" >&2
  fail=1
else
  echo "ok   garbage stdin: $(cat "$tmp/err.txt")"
fi
n=$((n + 1))
[[ $fail -eq 0 ]] && echo "bad_input_test: $n cases passed"
exit $fail
