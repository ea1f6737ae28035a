#!/usr/bin/env bash
# Builds crpc's Debian packages from its dist tar, with dpkg-deb alone (no
# debian/ source tree, no network):
#
#   libcrpc0         /usr/lib/<triplet>/libcrpc.so.0 and the library
#   libcrpc-dev      headers, libcrpc.so, libcrpc.a, crpc.pc, CMake package
#   protoc-gen-crpc  the protoc plugin and its manual page
#
#   deb.sh DIST_TAR OUTDIR      (./crpc.sh deb builds the tar and runs it)
#
# Environment: MAINTAINER ("Name <address>") for the control files;
# DEB_REVISION (default 1) for the Debian revision.
# Needs dpkg-dev (dpkg-shlibdeps computes the library dependencies from
# the system's shlibs/symbols files, as a real package build would).
# packaging/README.md lists what lintian still says, and why.
set -euo pipefail
[[ $# -eq 2 ]] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dist=$(realpath "$1")
out=$(realpath -m "$2")
here=$(cd "$(dirname "$0")" && pwd)
maintainer=${MAINTAINER:-crpc maintainers <crpc-maintainers@example.org>}
revision=${DEB_REVISION:-1}
command -v dpkg-shlibdeps >/dev/null || {
  echo "deb.sh: needs dpkg-shlibdeps (apt-get install dpkg-dev)" >&2
  exit 1
}
arch=$(dpkg --print-architecture)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
DESTDIR=$stage LIBDIR=lib/$triplet "$here/install.sh" "$dist" /usr >/dev/null
inc=$stage/usr/include/crpc
ver() { sed -n "s/^#define CRPC_VERSION_$1 \([0-9]*\)\$/\1/p" "$inc/version.h"; }
major=$(ver MAJOR)
upstream=$major.$(ver MINOR).$(ver PATCH)
version=$upstream-$revision
lib=usr/lib/$triplet

# Debian ships stripped objects (debug info would go to a -dbgsym package).
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$stage/$lib/libcrpc.so.$upstream"
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/protoc-gen-crpc"
strip --strip-debug --remove-section=.comment "$stage/$lib/libcrpc.a"
gzip -9n "$stage/usr/share/man/man1/protoc-gen-crpc.1"

# dpkg-shlibdeps wants a source package around the files it looks at.
mkdir -p "$work/src/debian"
printf 'Source: crpc\n\nPackage: libcrpc0\nArchitecture: any\n' >"$work/src/debian/control"
shlibdeps() {
  (cd "$work/src" && dpkg-shlibdeps -O -e"$1" 2>/dev/null) |
    sed -n 's/^shlibs:Depends=//p'
}

copyright() {
  cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: crpc

Files: *
Copyright: 2026 The crpc Authors
License: Expat
EOF
  # The licence text, as DEP-5 wants it: indented, blank lines as " .".
  sed -n '3,$p' "$stage/usr/share/doc/crpc/LICENSE" | sed -e 's/^$/./' -e 's/^/ /'
}

# pkg NAME: a tree in $work/NAME with its doc files; files are moved into
# it from the stage by the caller.
pkg() {
  local d=$work/$1
  mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$1"
  copyright >"$d/usr/share/doc/$1/copyright"
  gzip -9nc "$stage/usr/share/doc/crpc/CHANGELOG.md" >"$d/usr/share/doc/$1/changelog.gz"
  {
    printf 'crpc (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Built by crpc.sh deb from the crpc source tree.\n\n'
    printf ' -- %s  %s\n' "$maintainer" "$(date -R -u -d @"${SOURCE_DATE_EPOCH:-$(date +%s)}")"
  } | gzip -9n >"$d/usr/share/doc/$1/changelog.Debian.gz"
}
move() { # move PKG PATH...: from the stage into the package tree
  local p=$1 f
  shift
  for f in "$@"; do
    mkdir -p "$work/$p/$(dirname "$f")"
    mv "$stage/$f" "$work/$p/$f"
  done
}

# control PKG SECTION MULTIARCH DEPENDS SYNOPSIS DESCRIPTION-LINE...
control() {
  local p=$1 section=$2 ma=$3 depends=$4 synopsis=$5
  shift 5
  local size
  size=$(du -k -s --exclude=DEBIAN "$work/$p" | cut -f1)
  {
    echo "Package: $p"
    echo "Source: crpc"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $size"
    [[ -n $depends ]] && echo "Depends: $depends"
    echo "Section: $section"
    echo "Priority: optional"
    echo "Multi-Arch: $ma"
    echo "Description: $synopsis"
    local line
    for line in "$@"; do
      if [[ -z $line ]]; then echo " ."; else echo " $line"; fi
    done
  } >"$work/$p/DEBIAN/control"
  (cd "$work/$p" && find usr -type f -print0 | sort -z | xargs -0 md5sum) \
    >"$work/$p/DEBIAN/md5sums"
}

about=(
  "crpc is a gRPC-compatible RPC framework in C11 whose core promise is"
  "cancellation that cannot silently fail: a deadline or cancel issued"
  "anywhere reaches every piece of work that belongs to the call, promptly,"
  "with its cause."
)

# ---- libcrpc0 ----
pkg libcrpc0
move libcrpc0 "$lib/libcrpc.so.$upstream" "$lib/libcrpc.so.$major"
echo "libcrpc $major libcrpc0 (>= $upstream)" >"$work/libcrpc0/DEBIAN/shlibs"
{
  echo "libcrpc.so.$major libcrpc0 #MINVER#"
  echo "* Build-Depends-Package: libcrpc-dev"
  echo " CRPC_$major@CRPC_$major $upstream"
  tar -xOf "$dist" ./lib/exports.txt | sed "s/.*/ &@CRPC_$major $upstream/"
} >"$work/libcrpc0/DEBIAN/symbols"
echo "activate-noawait ldconfig" >"$work/libcrpc0/DEBIAN/triggers"
control libcrpc0 libs same "$(shlibdeps "$work/libcrpc0/$lib/libcrpc.so.$upstream")" \
  "gRPC-compatible RPC framework in C11 - shared library" "${about[@]}" "" \
  "This package contains the shared library."

# ---- libcrpc-dev ----
pkg libcrpc-dev
move libcrpc-dev usr/include/crpc "$lib/libcrpc.so" "$lib/libcrpc.a" \
  "$lib/pkgconfig/crpc.pc" "$lib/cmake/crpc"
control libcrpc-dev libdevel same \
  "libcrpc0 (= $version), libnghttp2-dev, libprotobuf-c-dev, libssl-dev, zlib1g-dev" \
  "gRPC-compatible RPC framework in C11 - development files" "${about[@]}" "" \
  "This package contains the headers, the static library, the pkg-config" \
  "file (crpc.pc) and the CMake package (find_package(crpc))."

# ---- protoc-gen-crpc ----
pkg protoc-gen-crpc
move protoc-gen-crpc usr/bin/protoc-gen-crpc usr/share/man/man1/protoc-gen-crpc.1.gz
control protoc-gen-crpc devel foreign \
  "$(shlibdeps "$work/protoc-gen-crpc/usr/bin/protoc-gen-crpc"), protobuf-compiler, protobuf-c-compiler" \
  "protoc plugin that writes crpc stubs in C" "${about[@]}" "" \
  "This package contains protoc-gen-crpc, which protoc runs to write typed" \
  "client stubs and server handler tables for crpc (protoc --crpc_out)."

# Every installed file is in some package (the shared doc dir is replaced
# by each package's own).
left=$(cd "$stage" && find . -type f ! -path './usr/share/doc/crpc/*')
[[ -z $left ]] || { echo "deb.sh: not packaged: $left" >&2; exit 1; }

mkdir -p "$out"
for p in libcrpc0 libcrpc-dev protoc-gen-crpc; do
  dpkg-deb --root-owner-group -Zxz --build "$work/$p" \
    "$out/${p}_${version}_$arch.deb" >/dev/null
  echo "$out/${p}_${version}_$arch.deb"
done
