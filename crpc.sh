#!/usr/bin/env bash
# crpc's one entry point for newcomers: installs what the project needs from
# Debian on first use, then runs Bazel with the project's flags.
#
#   ./crpc.sh demo          run the main demo
#   ./crpc.sh test          every test: normal, ASan+UBSan+LSan, TSan
#   ./crpc.sh bench         the benchmark tables (optimised build)
#   ./crpc.sh install [PREFIX]  libcrpc, headers, protoc-gen-crpc, crpc.pc and
#                           the CMake package under PREFIX (default
#                           /usr/local; DESTDIR honoured)
#   ./crpc.sh deb [OUTDIR]  libcrpc0, libcrpc-dev, protoc-gen-crpc .debs
#                           (default ./dist), checked with lintian
#   ./crpc.sh bazel ARGS    plain bazel, after the dependency check
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the build, the tests and the interop peers need.
PACKAGES=(
  bazel-bootstrap gcc g++ libc6-dev python3
  libnghttp2-dev nghttp2-client
  libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotoc-dev
  libssl-dev openssl zlib1g-dev libgtest-dev
  python3-grpcio python3-protobuf grpc-proto protobuf-compiler-grpc libgrpc++-dev
  make cmake pkg-config dpkg-dev
)

ensure_packages() {
  local missing=()
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "crpc.sh: missing Debian packages: ${missing[*]}" >&2
    echo "crpc.sh: run as root once (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "crpc.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

bazel_cmd() {
  # Bazel 4.2.3 from Debian prints a JVM deprecation warning on every call.
  bazel "$@"
}

# The project's packages. Named explicitly rather than //... so a stray
# bazel-<dir> symlink from another output base is never descended into.
TARGETS=(//rpc/... //codegen/... //examples/... //conformance/... //bench/... //interceptors/... //services/...
  //packaging/... //docs/...)

existing_targets() {
  local t
  for t in "${TARGETS[@]}"; do
    t=${t#//}
    t=${t%/...}
    [[ -d "$t" ]] && echo "//$t/..."
  done
  return 0
}

run_tests() {
  local logdir
  logdir=$(mktemp -d "${TMPDIR:-/tmp}/crpc-test.XXXXXX")
  local rc=0
  local flags=(--keep_going --build_tests_only --color=no --curses=no)
  local targets
  mapfile -t targets < <(existing_targets)
  echo "== tests (default build) =="
  bazel_cmd test "${flags[@]}" --build_event_json_file="$logdir/default.json" "${targets[@]}" || rc=1
  echo "== tests under ASan + UBSan + LSan =="
  bazel_cmd test "${flags[@]}" --config=asan --build_event_json_file="$logdir/asan.json" "${targets[@]}" || rc=1
  echo "== concurrency tests under TSan =="
  bazel_cmd test "${flags[@]}" --config=tsan --test_tag_filters=tsan \
    --build_event_json_file="$logdir/tsan.json" "${targets[@]}" || rc=1
  python3 tools/test_summary.py "$logdir/default.json" "$logdir/asan.json" "$logdir/tsan.json" || rc=1
  rm -rf "$logdir"
  return $rc
}

# The install tree (//packaging:dist) from the optimised build; prints the
# tar's path. The library is -O2 with NDEBUG: crpc_ctx_live_count works,
# crpc_ctx_dump lists no creation sites (ctx.h).
build_dist() {
  bazel_cmd build --config=opt --color=no --curses=no //packaging:dist >&2 || return 1
  echo "$(bazel_cmd info --config=opt bazel-bin 2>/dev/null)/packaging/crpc-dist.tar"
}

cmd=${1:-help}
[[ $# -gt 0 ]] && shift
case "$cmd" in
  demo)
    ensure_packages
    bazel_cmd run --color=no --curses=no //examples:demo -- "$@"
    ;;
  test)
    ensure_packages
    run_tests
    ;;
  bench)
    ensure_packages
    bazel_cmd build --config=opt --color=no --curses=no //bench:ctx_bench //bench:transport_bench
    bin=$(bazel_cmd info --config=opt bazel-bin 2>/dev/null)
    "$bin/bench/ctx_bench" "$@"
    echo
    "$bin/bench/transport_bench" "$@"
    ;;
  install)
    ensure_packages
    dist=$(build_dist) || exit 1
    packaging/install.sh "$dist" "${1:-/usr/local}"
    ;;
  deb)
    ensure_packages
    if ! command -v lintian >/dev/null && [[ $(id -u) -eq 0 ]]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >&2
    fi
    dist=$(build_dist) || exit 1
    out=${1:-dist}
    rm -f "$out"/libcrpc0_*.deb "$out"/libcrpc-dev_*.deb "$out"/protoc-gen-crpc_*.deb
    packaging/deb.sh "$dist" "$out"
    if command -v lintian >/dev/null; then
      # packaging/README.md says which warnings remain and why.
      lintian --tag-display-limit 0 "$out"/*.deb 2>&1 | grep -v 'root privileges' || true
    else
      echo "crpc.sh: lintian not installed; packages not checked" >&2
    fi
    ;;
  bazel)
    ensure_packages
    bazel_cmd "$@"
    ;;
  deps)
    ensure_packages
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    [[ "$cmd" == help ]] || exit 2
    ;;
esac
