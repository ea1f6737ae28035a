#!/usr/bin/env bash
# Packs what crpc installs into one tar with a fixed layout (the genrule
# //packaging:dist runs it), so install.sh and the tests need no knowledge
# of Bazel's output paths:
#   bin/protoc-gen-crpc  lib/libcrpc.so  lib/libcrpc.a  lib/exports.txt
#   include/crpc/...     share/crpc/templates/*  share/crpc/protoc-gen-crpc.1
#   share/doc/crpc/{LICENSE,CHANGELOG.md}
#
# Usage: dist.sh OUT.tar SO A EXPORTS PLUGIN -- TEMPLATE... -- DOC... -- HEADER...
# Header paths end in include/crpc/...; that tail is kept.
set -euo pipefail
out=$1 so=$2 a=$3 exports=$4 plugin=$5
shift 5
[[ $1 == -- ]] && shift
templates=()
while [[ $1 != -- ]]; do templates+=("$1"); shift; done
shift
docs=()
while [[ $1 != -- ]]; do docs+=("$1"); shift; done
shift

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,lib,include,share/crpc/templates,share/doc/crpc}
cp -L "$plugin" "$stage/bin/protoc-gen-crpc"
cp -L "$so" "$stage/lib/libcrpc.so"
cp -L "$a" "$stage/lib/libcrpc.a"
cp -L "$exports" "$stage/lib/exports.txt"
for t in "${templates[@]}"; do
  case $t in
    *.1) cp -L "$t" "$stage/share/crpc/" ;;
    *) cp -L "$t" "$stage/share/crpc/templates/" ;;
  esac
done
for d in "${docs[@]}"; do cp -L "$d" "$stage/share/doc/crpc/"; done
for h in "$@"; do
  rel=include/${h#*/include/}
  mkdir -p "$stage/$(dirname "$rel")"
  cp -L "$h" "$stage/$rel"
done
chmod -R u=rwX,go=rX "$stage"
chmod 0755 "$stage/bin/protoc-gen-crpc"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$stage" -cf "$out" .
