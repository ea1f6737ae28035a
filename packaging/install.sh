#!/usr/bin/env bash
# Installs crpc from its dist tar (//packaging:dist) under a prefix.
#
#   install.sh DIST_TAR [PREFIX]        PREFIX defaults to /usr/local
#
# Environment:
#   DESTDIR   staging root: files go to $DESTDIR$PREFIX, but every path
#             written into crpc.pc and the CMake files is the final one
#   LIBDIR    library directory relative to PREFIX (default: lib; the
#             Debian packages use lib/<multiarch triplet>)
#
# Installs:
#   bin/protoc-gen-crpc
#   LIBDIR/libcrpc.so.X.Y.Z, libcrpc.so.X -> it, libcrpc.so -> libcrpc.so.X
#   LIBDIR/libcrpc.a
#   include/crpc/*.h, include/crpc/interceptors/*.h
#   LIBDIR/pkgconfig/crpc.pc
#   LIBDIR/cmake/crpc/crpcConfig.cmake, crpcConfigVersion.cmake
#   share/man/man1/protoc-gen-crpc.1, share/doc/crpc/{LICENSE,CHANGELOG.md}
# and prints each path. ./crpc.sh install builds the tar and runs this.
set -euo pipefail

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
dist=$1
prefix=${2:-/usr/local}
libdir_rel=${LIBDIR:-lib}
destdir=${DESTDIR:-}
[[ -f $dist ]] || { echo "install.sh: no such file: $dist" >&2; exit 1; }
[[ $prefix == /* ]] || { echo "install.sh: PREFIX must be absolute" >&2; exit 1; }
[[ $libdir_rel != /* ]] || { echo "install.sh: LIBDIR is relative to PREFIX" >&2; exit 1; }
prefix=${prefix%/}

src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
tar -C "$src" -xf "$dist"

# The version is the headers': one source of truth (crpc/version.h).
ver() { sed -n "s/^#define CRPC_VERSION_$1 \([0-9]*\)\$/\1/p" "$src/include/crpc/version.h"; }
major=$(ver MAJOR) minor=$(ver MINOR) patch=$(ver PATCH)
version=$major.$minor.$patch
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
  echo "install.sh: cannot read the version from crpc/version.h" >&2
  exit 1
}

root=$destdir$prefix
libdir=$root/$libdir_rel
put() { # put MODE SRC DEST: install one file and say so
  install -D -m "$1" "$2" "$3"
  echo "$3"
}

put 0755 "$src/bin/protoc-gen-crpc" "$root/bin/protoc-gen-crpc"
put 0644 "$src/lib/libcrpc.so" "$libdir/libcrpc.so.$version"
ln -sfn "libcrpc.so.$version" "$libdir/libcrpc.so.$major"
echo "$libdir/libcrpc.so.$major -> libcrpc.so.$version"
ln -sfn "libcrpc.so.$major" "$libdir/libcrpc.so"
echo "$libdir/libcrpc.so -> libcrpc.so.$major"
put 0644 "$src/lib/libcrpc.a" "$libdir/libcrpc.a"
(cd "$src" && find include -type f -name '*.h' | sort) | while read -r h; do
  put 0644 "$src/$h" "$root/$h"
done

# Templates: @PREFIX@ is the final prefix (not DESTDIR's), @LIBDIR@ is
# relative to it, and the CMake files find the prefix relative to where
# they are (@CMAKE_TO_PREFIX@), so a moved tree still works.
up=$(echo "$libdir_rel/cmake/crpc" | sed 's|[^/][^/]*|..|g')
fill() {
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir_rel|g" \
    -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" \
    -e "s|@MINOR@|$minor|g" -e "s|@CMAKE_TO_PREFIX@|$up|g" "$1" >"$2"
  chmod 0644 "$2"
  echo "$2"
}
t=$src/share/crpc/templates
mkdir -p "$libdir/pkgconfig" "$libdir/cmake/crpc"
fill "$t/crpc.pc.in" "$libdir/pkgconfig/crpc.pc"
fill "$t/crpcConfig.cmake.in" "$libdir/cmake/crpc/crpcConfig.cmake"
fill "$t/crpcConfigVersion.cmake.in" "$libdir/cmake/crpc/crpcConfigVersion.cmake"

put 0644 "$src/share/crpc/protoc-gen-crpc.1" "$root/share/man/man1/protoc-gen-crpc.1"
for d in "$src"/share/doc/crpc/*; do
  put 0644 "$d" "$root/share/doc/crpc/$(basename "$d")"
done

# A library installed straight into a directory the loader searches is
# usable at once; staged (DESTDIR) or private prefixes are left alone.
if [[ -z $destdir && $(id -u) -eq 0 ]] && command -v ldconfig >/dev/null &&
  ldconfig -v -N 2>/dev/null | grep -q "^$libdir:"; then
  ldconfig
fi
