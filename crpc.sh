#!/usr/bin/env bash
# crpc's one entry point for newcomers: installs what the project needs from
# Debian on first use, then runs Bazel with the project's flags.
#
#   ./crpc.sh demo          run the main demo
#   ./crpc.sh test          every test: normal, ASan+UBSan+LSan, TSan, and
#                           a short smoke of every fuzz target
#   ./crpc.sh bench         the benchmark tables (optimised build)
#   ./crpc.sh fuzz [SECONDS | --runs N] [TARGET...]  every libFuzzer
#                           target (fuzz/), or those named, for SECONDS each
#                           (default 60) or N inputs each, under ASan + UBSan
#   ./crpc.sh fuzz-record   re-record fuzz/corpus from grpcio / gRPC C++
#   ./crpc.sh fuzz-coverage  line coverage of rpc/ and codegen/ reached by
#                           the fuzz corpus (checked in + found so far)
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
  nginx haproxy nftables iproute2
  clang libclang-rt-14-dev lld llvm
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
  //packaging/... //docs/... //fuzz/... //deploy/...)

existing_targets() {
  local t
  for t in "${TARGETS[@]}"; do
    t=${t#//}
    t=${t%/...}
    [[ -d "$t" ]] && echo "//$t/..."
  done
  return 0
}

# ---- fuzzing (fuzz/, README "Fuzzing") ----------------------------------
# The libFuzzer build is clang with ASan + UBSan (.bazelrc --config=fuzz) in
# an output base of its own, so the main (gcc) cache is never thrown away.
FUZZ_TARGETS=(server client wire codegen)
FUZZ_OUTPUT_BASE=${CRPC_FUZZ_OUTPUT_BASE:-$HOME/.cache/crpc-fuzz}
# Inputs found by ./crpc.sh fuzz (kept between runs) and crash artifacts.
FUZZ_WORK=${CRPC_FUZZ_WORK:-$HOME/.cache/crpc-fuzz-work}
FUZZ_SMOKE_SECONDS=3

# The fuzz output base's Bazel server exits after 10 idle minutes, so a
# test run does not leave a second JVM behind for hours.
fuzz_bazel() {
  bazel --output_base="$FUZZ_OUTPUT_BASE" --max_idle_secs=600 "$@"
}

# Builds the fuzz targets (and any extra labels given); prints bazel-bin.
fuzz_build() {
  local labels=() t
  for t in "${FUZZ_TARGETS[@]}"; do labels+=("//fuzz:${t}_fuzz"); done
  fuzz_bazel build --config=fuzz --color=no --curses=no "${labels[@]}" "$@" >&2 || return 1
  fuzz_bazel info --config=fuzz bazel-bin 2>/dev/null
}

# The value of libFuzzer's "stat::NAME:" line in a log ("?" if missing).
fuzz_stat() {
  local v
  v=$(sed -n "s/^stat::$2: *//p" "$1" | tail -1)
  echo "${v:-?}"
}

# run_fuzz SECONDS CORPUS_ROOT [RESULTS_FILE]: runs every target (or those
# in FUZZ_ONLY) for SECONDS (or, with FUZZ_RUNS set, until it has run that
# many inputs) with its checked-in corpus (read only) and
# fuzz/h2_grpc.dict; new inputs go to CORPUS_ROOT/<target>, crashes to
# $FUZZ_WORK/crashes. Runs longer than a minute print a progress line a
# minute. Prints a line per target from -print_final_stats and a final
# line; returns 1 on any crash or failure. RESULTS_FILE gets one
# "fuzz <label> PASS|FAIL ..." line per target for tools/test_summary.py
# --extra.
run_fuzz() {
  local secs=$1 root=$2 results=${3:-}
  local runs=${FUZZ_RUNS:-} targets=("${FUZZ_TARGETS[@]}")
  [[ -n ${FUZZ_ONLY:-} ]] && read -r -a targets <<<"$FUZZ_ONLY"
  local limit=(-max_total_time="$secs") what="${secs}s each"
  if [[ -n $runs ]]; then
    limit=(-runs="$runs")
    what="$runs inputs each"
  fi
  local bin t
  if ! bin=$(fuzz_build); then
    echo "fuzz: build failed" >&2
    if [[ -n $results ]]; then
      for t in "${FUZZ_TARGETS[@]}"; do
        echo "fuzz //fuzz:${t}_fuzz FAIL (build failed)" >>"$results"
      done
    fi
    return 1
  fi
  mkdir -p "$FUZZ_WORK/crashes"
  local stamp
  stamp=$(mktemp "${TMPDIR:-/tmp}/crpc-fuzz-stamp.XXXXXX")
  local rc=0 total_crashes=0 total_execs=0
  printf '%-8s %11s %8s %8s %5s %7s  %s\n' target execs exec/s crashes new corpus status
  for t in "${targets[@]}"; do
    local dir="$root/$t" log="$root/$t.log" frc=0
    mkdir -p "$dir"
    local before
    before=$(find "$dir" -type f | wc -l)
    # First corpus dir: where new inputs go; the checked-in one is read.
    ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 \
      UBSAN_OPTIONS=print_stacktrace=1 \
      "$bin/fuzz/${t}_fuzz" "${limit[@]}" -print_final_stats=1 \
      -dict=fuzz/h2_grpc.dict -timeout=30 -rss_limit_mb=3072 \
      -artifact_prefix="$FUZZ_WORK/crashes/$t-" "$dir" "fuzz/corpus/$t" \
      >"$log" 2>&1 &
    local pid=$! ticks=0
    while kill -0 "$pid" 2>/dev/null; do
      sleep 1
      ticks=$((ticks + 1))
      if ((ticks % 60 == 0)); then
        # libFuzzer's latest status line: "#N  pulse cov: ... exec/s: ..."
        echo "  $t $(date -u +%H:%M:%S) $(grep -aE '^#[0-9]+' "$log" | tail -1 | cut -c1-110)"
      fi
    done
    wait "$pid" || frc=$?
    local crashes execs
    crashes=$(find "$FUZZ_WORK/crashes" -name "$t-*" -newer "$stamp" | wc -l)
    execs=$(fuzz_stat "$log" number_of_executed_units)
    local after
    after=$(find "$dir" -type f | wc -l)
    local status=PASS
    if [[ $frc -ne 0 || $crashes -gt 0 ]]; then
      status=FAIL
      rc=1
      [[ $crashes -gt 0 ]] || crashes=1 # died without an artifact
    fi
    total_crashes=$((total_crashes + crashes))
    [[ $execs =~ ^[0-9]+$ ]] && total_execs=$((total_execs + execs))
    printf '%-8s %11s %8s %8d %5d %7d  %s\n' "$t" "$execs" \
      "$(fuzz_stat "$log" average_exec_per_sec)" "$crashes" $((after - before)) \
      $((after + $(find "fuzz/corpus/$t" -type f | wc -l))) "$status"
    if [[ $status == FAIL ]]; then
      grep -E '^(SUMMARY|==[0-9]+==ERROR|fuzz: )|Test unit written to' "$log" | sed 's/^/    /' | head -5
      # Kept beside the inputs: the test run's log directory is removed.
      local kept
      kept="$FUZZ_WORK/crashes/$t-$(date +%Y%m%d-%H%M%S).log"
      cp "$log" "$kept"
      echo "    log: $kept"
    fi
    if [[ -n $results ]]; then
      echo "fuzz //fuzz:${t}_fuzz $status $execs runs ($what)" >>"$results"
    fi
  done
  rm -f "$stamp"
  echo "fuzz: ${#targets[@]} targets, $what, $total_execs inputs, $total_crashes crash(es)$(
    [[ $total_crashes -gt 0 ]] && echo "; inputs saved in $FUZZ_WORK/crashes")"
  return $rc
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
  echo "== fuzz smoke: every libFuzzer target for ${FUZZ_SMOKE_SECONDS}s (ASan + UBSan) =="
  run_fuzz "$FUZZ_SMOKE_SECONDS" "$logdir/fuzz" "$logdir/fuzz.txt" || rc=1
  python3 tools/test_summary.py "$logdir/default.json" "$logdir/asan.json" "$logdir/tsan.json" \
    --extra "$logdir/fuzz.txt" || rc=1
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
  fuzz)
    ensure_packages
    usage="usage: ./crpc.sh fuzz [SECONDS | --runs N] [TARGET...] (targets: ${FUZZ_TARGETS[*]})"
    secs=60
    if [[ ${1:-} == --runs ]]; then
      [[ ${2:-} =~ ^[0-9]+$ && $2 -gt 0 ]] || { echo "$usage" >&2; exit 2; }
      export FUZZ_RUNS=$2
      shift 2
    elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
      secs=$1
      shift
    fi
    [[ $secs -gt 0 ]] || { echo "$usage" >&2; exit 2; }
    for t in "$@"; do
      [[ " ${FUZZ_TARGETS[*]} " == *" $t "* ]] || { echo "$usage" >&2; exit 2; }
    done
    [[ $# -gt 0 ]] && export FUZZ_ONLY="$*"
    mkdir -p "$FUZZ_WORK/corpus"
    run_fuzz "$secs" "$FUZZ_WORK/corpus"
    ;;
  fuzz-coverage)
    ensure_packages
    CRPC_FUZZ_WORK="$FUZZ_WORK" tools/fuzz_coverage.sh "$@"
    ;;
  fuzz-record)
    ensure_packages
    bin=$(fuzz_build //fuzz:record_peer) || exit 1
    /usr/bin/python3 fuzz/record_corpus.py --peer "$bin/fuzz/record_peer" "$@"
    ;;
  bazel)
    ensure_packages
    bazel_cmd "$@"
    ;;
  deps)
    ensure_packages
    ;;
  *)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    [[ "$cmd" == help ]] || exit 2
    ;;
esac
