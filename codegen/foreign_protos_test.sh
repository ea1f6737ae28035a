#!/usr/bin/env bash
# Protos the team did not write: every .proto Debian's grpc-proto package
# ships (interop TestService, health, reflection, channelz, load balancing,
# ALTS, ...) goes through protoc-c + protoc-gen-crpc, and the result must
# compile with -Wall -Wextra -Werror under gcc and clang.
# Usage: foreign_protos_test.sh PLUGIN
set -euo pipefail
plugin=$(realpath "$1")
root=/usr/share/grpc-proto
[[ -d $root ]] || { echo "missing $root (apt-get install grpc-proto)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
inc=(-I"$tmp" -Irpc/include -Icodegen/wkt)
# These two import googleapis / envoy protos that Debian does not ship.
skip='grpc/service_config/service_config.proto|grpc/tls/provider/meshca/'
mapfile -t protos < <(cd "$root" && find . -name '*.proto' |
                       sed 's#^\./##' | sort | grep -Ev "$skip")
# Generate everything first: a file's .pb-c.h includes its imports' ones.
for proto in "${protos[@]}"; do
  protoc -I"$root" -I/usr/include --plugin=protoc-gen-crpc="$plugin" \
    --c_out="$tmp" --crpc_out="$tmp" "$proto"
done
n=0
for proto in "${protos[@]}"; do
  base=${proto%.proto}
  for cc in gcc clang; do
    # No feature-test macro: the generated code is ISO C.
    "$cc" -std=c11 -Wall -Wextra -Werror "${inc[@]}" \
      -fsyntax-only "$tmp/$base.crpc.c"
    # protoc-c's own INIT macro for messages with oneofs trips gcc's
    # -Wmissing-braces (load_reporter.proto); that is not crpc's code.
    "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-missing-braces \
      "${inc[@]}" -fsyntax-only "$tmp/$base.pb-c.c"
  done
  n=$((n + 1))
done
[[ $n -ge 20 ]] || { echo "only $n protos found" >&2; exit 1; }
echo "foreign_protos_test: $n grpc-proto files generated and compiled"
