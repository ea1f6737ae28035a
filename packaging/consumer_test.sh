#!/usr/bin/env bash
# Builds one consumer project of packaging/consumers/ the way a user of an
# installed crpc would, then runs its echo_server and echo_client: one call
# over a unix socket, the reply checked, the server stopped with SIGTERM
# (crpc_server_serve_until) and its logging-interceptor line checked.
#
#   make   Makefile + pkg-config, crpc installed under a temporary prefix
#   cmake  find_package(crpc), same prefix; client linked to libcrpc.a
#   bazel  a second workspace with local_repository(name = "crpc") on this
#          source tree, built by a nested Bazel (its own output root here)
#   deb    the .debs from deb.sh installed with apt, the make project built
#          against /usr, then the packages removed and checked gone (root
#          only; skipped otherwise, or when crpc packages are installed)
#
# Usage: consumer_test.sh KIND DIST_TAR SANITIZER(none|asan)
# (from the runfiles root; packaging/ holds the scripts and consumers/).
set -uo pipefail
kind=$1
dist=$(realpath "$2")
sanitizer=$3
pkgdir=$(realpath packaging)
tmp=${TEST_TMPDIR:-$(mktemp -d)}
work=$tmp/$kind
prefix=$tmp/prefix
log=$tmp/log
mkdir -p "$work" "$log"

fail() {
  echo "FAIL ($kind): $*" >&2
  for f in "$log"/*; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done
  exit 1
}
# A skip is reported as one skipped JUnit case, so the suite's summary
# counts it as skipped rather than passed.
skip() {
  echo "SKIP ($kind): $*"
  if [[ -n ${XML_OUTPUT_FILE:-} ]]; then
    cat >"$XML_OUTPUT_FILE" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="${TEST_TARGET:-consumer}" tests="1" skipped="1">
<testcase name="$kind" classname="${TEST_TARGET:-consumer}"><skipped message="$*"/></testcase>
</testsuite></testsuites>
EOF
  fi
  exit 0
}
step() { echo "== $*"; }

# Unix socket paths are limited to 107 bytes; TEST_TMPDIR can be longer.
sockdir=$(mktemp -d /tmp/crpc-consumer.XXXXXX)
server_pid=
debs_installed=0
remove_debs() { # remove_debs [quiet]: purge the three, check they are gone
  DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -q \
    -o DPkg::Lock::Timeout=120 libcrpc-dev libcrpc0 protoc-gen-crpc \
    >>"$log/apt-remove.out" 2>&1
  debs_installed=0
  [[ ${1:-} == quiet ]] && return 0
  local p
  for p in libcrpc0 libcrpc-dev protoc-gen-crpc; do
    ! dpkg -s "$p" >/dev/null 2>&1 || fail "$p still installed"
  done
}
cleanup() {
  [[ -n $server_pid ]] && kill -9 "$server_pid" 2>/dev/null
  [[ $debs_installed -eq 1 ]] && remove_debs quiet
  rm -rf "$sockdir"
  # The nested Bazel's output root is a few hundred MB; Bazel's own outputs
  # are read-only.
  if [[ -d $tmp/bazel ]]; then
    chmod -R u+w "$tmp/bazel" 2>/dev/null
    rm -rf "$tmp/bazel"
  fi
  return 0
}
trap cleanup EXIT

# What the consumer compiles and links with, in the same mode as the crpc
# it uses (an ASan-built libcrpc needs an ASan-built program).
cflags="-O1 -g"
ldflags=
if [[ $sanitizer == asan ]]; then
  cflags="$cflags -fsanitize=address,undefined -fno-omit-frame-pointer"
  ldflags="-fsanitize=address,undefined"
fi

copy_project() { # copy_project DIR: the consumer's build files + sources
  cp -rL "$pkgdir/consumers/$1/." "$work/"
  cp -L "$pkgdir/consumers/common/"* "$work/"
  chmod -R u+w "$work"
}

# run_pair DIR: server + client from DIR, one call, clean SIGTERM stop.
run_pair() {
  local bin=$1 sock=$sockdir/echo.sock
  rm -f "$sock"
  "$bin/echo_server" "unix:$sock" >"$log/server.out" 2>"$log/server.err" &
  server_pid=$!
  local i
  for i in $(seq 100); do
    grep -q '^listening on' "$log/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || fail "server exited early"
    sleep 0.1
  done
  grep -q '^listening on' "$log/server.out" || fail "server not listening after 10 s"
  timeout 20 "$bin/echo_client" "unix:$sock" "hello from $kind" \
    >"$log/client.out" 2>&1 || fail "client exited with status $?"
  grep -q "^reply: echo: hello from $kind (server crpc [0-9.]*)\$" "$log/client.out" ||
    fail "unexpected reply"
  kill -TERM "$server_pid"
  for i in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  wait "$server_pid"
  local rc=$?
  server_pid=
  [[ $rc -eq 0 ]] || fail "server exited with status $rc after SIGTERM"
  grep -q '^stopped by signal 15: OK$' "$log/server.out" || fail "no clean stop line"
  grep -q 'crpc call method=/consumer.Echo/Say .*status=OK' "$log/server.err" ||
    fail "no logging-interceptor line"
  cat "$log/client.out"
  echo "PASS ($kind)"
}

install_prefix() {
  step "install.sh into $prefix"
  "$pkgdir/install.sh" "$dist" "$prefix" >"$log/install.out" 2>&1 || fail "install.sh"
  rm "$log/install.out"
  # pkg-config must resolve the whole chain, static too.
  PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --static --libs crpc \
    >"$log/pkgconfig.out" 2>&1 || fail "pkg-config --static --libs crpc"
}

build_make() { # build_make [PKG_CONFIG_PATH]
  copy_project make
  step "make (pkg-config: $(PKG_CONFIG_PATH=${1:-} pkg-config --modversion crpc))"
  PKG_CONFIG_PATH=${1:-} make -C "$work" CFLAGS="$cflags" LDFLAGS="$ldflags" \
    >"$log/build.out" 2>&1 || fail "make"
}

case $kind in
  make)
    install_prefix
    build_make "$prefix/lib/pkgconfig"
    LD_LIBRARY_PATH=$prefix/lib run_pair "$work"
    ;;

  cmake)
    install_prefix
    copy_project cmake
    step "cmake find_package(crpc)"
    cmake -S "$work" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" \
      >"$log/build.out" 2>&1 || fail "cmake configure"
    cmake --build "$work/build" -j 2 >>"$log/build.out" 2>&1 || fail "cmake build"
    # The shared library is found through the build RPATH CMake sets.
    run_pair "$work/build"
    ;;

  bazel)
    # This source tree, found through a runfile that links back to it.
    src=$(dirname "$(realpath WORKSPACE)")
    [[ -f $src/packaging/repositories.bzl ]] || fail "no crpc tree at $src"
    copy_project bazel
    mv "$work/BUILD.in" "$work/BUILD"
    sed "s|@CRPC_PATH@|$src|" "$work/WORKSPACE.in" >"$work/WORKSPACE"
    rm "$work/WORKSPACE.in"
    flags=(--color=no --curses=no --spawn_strategy=local --show_timestamps=false)
    if [[ $sanitizer == asan ]]; then
      for f in $cflags; do flags+=("--copt=$f"); done
      flags+=("--linkopt=$ldflags")
    fi
    step "nested bazel build of @crpc from $src"
    (cd "$work" && HOME=$tmp/home bazel --batch --output_user_root="$tmp/bazel" \
      build "${flags[@]}" //:echo_server //:echo_client) \
      >"$log/build.out" 2>&1 || fail "bazel build"
    mkdir -p "$work/bin"
    cp "$work"/bazel-bin/echo_server "$work"/bazel-bin/echo_client "$work/bin/"
    run_pair "$work/bin"
    ;;

  deb)
    [[ $(id -u) -eq 0 ]] || skip "installing .debs needs root"
    [[ $sanitizer == none ]] || skip "the packages are built from the default configuration"
    command -v apt-get >/dev/null || skip "no apt-get"
    command -v dpkg-shlibdeps >/dev/null || skip "no dpkg-shlibdeps (dpkg-dev)"
    for p in libcrpc0 libcrpc-dev protoc-gen-crpc; do
      if dpkg -s "$p" >/dev/null 2>&1; then
        skip "$p is installed on this machine; not touching it"
      fi
    done
    step "deb.sh"
    "$pkgdir/deb.sh" "$dist" "$work/debs" >"$log/deb.out" 2>&1 || fail "deb.sh"
    if command -v lintian >/dev/null; then
      step "lintian"
      lintian --no-tag-display-limit "$work"/debs/*.deb >"$log/lintian.out" 2>&1
      if grep -q '^E: ' "$log/lintian.out"; then fail "lintian errors"; fi
      grep -c '^[WI]: ' "$log/lintian.out" | sed 's/^/lintian warnings+info: /'
    fi
    step "apt-get install ./*.deb"
    debs_installed=1 # from here on, whatever happens, purge at exit
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o DPkg::Lock::Timeout=120 "$work"/debs/*.deb >"$log/apt-install.out" 2>&1 ||
      fail "apt-get install"
    files=$(dpkg -L libcrpc0 libcrpc-dev protoc-gen-crpc | sort -u)
    # The system pkg-config and PATH find everything: no prefix given.
    build_make ""
    run_pair "$work"
    step "apt-get remove --purge"
    remove_debs
    while read -r f; do
      [[ -f $f || -L $f ]] && fail "$f left after removal"
    done <<<"$files"
    [[ ! -e /usr/include/crpc ]] || fail "/usr/include/crpc left after removal"
    echo "PASS (deb): installed, used and removed cleanly"
    ;;

  *)
    fail "unknown kind $kind"
    ;;
esac
