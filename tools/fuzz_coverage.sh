#!/usr/bin/env bash
# tools/fuzz_coverage.sh [CORPUS_ROOT] - how much of rpc/ the fuzz corpus
# reaches: line, function and region coverage per directory of rpc/ (and
# codegen/ for codegen_fuzz, interceptors/ for the fuzzed server's chain),
# from running every fuzz target once over its
# checked-in corpus plus CORPUS_ROOT/<target> (default: the inputs
# ./crpc.sh fuzz has found, ~/.cache/crpc-fuzz-work/corpus).
#
# Builds the targets with clang source-based coverage
# (-fprofile-instr-generate -fcoverage-mapping, .bazelrc --config=fuzzcov)
# in an output base of its own, runs each with libFuzzer's -runs=0 (every
# input once, no mutation), merges the profiles and prints llvm-cov's
# summary. Needs clang, lld, llvm (llvm-profdata, llvm-cov): ./crpc.sh
# installs them for the fuzz commands. Run through ./crpc.sh fuzz-coverage.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CORPUS_ROOT=${1:-${CRPC_FUZZ_WORK:-$HOME/.cache/crpc-fuzz-work}/corpus}
OUTPUT_BASE=${CRPC_FUZZCOV_OUTPUT_BASE:-$HOME/.cache/crpc-fuzzcov}
TARGETS=(server client wire codegen)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/crpc-fuzzcov.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

labels=()
for t in "${TARGETS[@]}"; do labels+=("//fuzz:${t}_fuzz"); done
bazel --output_base="$OUTPUT_BASE" --max_idle_secs=600 build \
  --config=fuzzcov --color=no --curses=no "${labels[@]}" >&2
bin=$(bazel --output_base="$OUTPUT_BASE" info --config=fuzzcov bazel-bin 2>/dev/null)

objects=()
for t in "${TARGETS[@]}"; do
  exe="$bin/fuzz/${t}_fuzz"
  dirs=("fuzz/corpus/$t")
  [[ -d "$CORPUS_ROOT/$t" ]] && dirs+=("$CORPUS_ROOT/$t")
  n=0
  for d in "${dirs[@]}"; do n=$((n + $(find "$d" -type f | wc -l))); done
  echo "running ${t}_fuzz over $n inputs ..." >&2
  # -runs=0: each input once; the profile is written at exit. The quiet
  # logs and -close_fd_mask keep the output to libFuzzer's own lines.
  LLVM_PROFILE_FILE="$WORK/$t-%p.profraw" "$exe" -runs=0 -timeout=30 \
    -rss_limit_mb=3072 -close_fd_mask=1 "${dirs[@]}" >"$WORK/$t.log" 2>&1 || {
    echo "fuzz_coverage: ${t}_fuzz failed on its corpus:" >&2
    tail -20 "$WORK/$t.log" >&2
    exit 1
  }
  objects+=(-object "$exe")
done
llvm-profdata merge -sparse "$WORK"/*.profraw -o "$WORK/all.profdata"

# One row per directory: llvm-cov's per-file table summed by directory.
report() { # label path-regex
  llvm-cov report "${objects[@]:1}" -instr-profile="$WORK/all.profdata" \
    -ignore-filename-regex='(external/|_test\.|/testing/|^fuzz/|bazel-out/)' \
    2>/dev/null | awk -v re="$2" -v label="$1" '
      $1 ~ re {
        d = $1; sub(/^(\/proc\/self\/cwd\/)?/, "", d); sub(/\/[^\/]*$/, "", d)
        rt[d] += $2; rm[d] += $3; ft[d] += $5; fm[d] += $6; lt[d] += $8; lm[d] += $9
        RT += $2; RM += $3; FT += $5; FM += $6; LT += $8; LM += $9
      }
      function pct(t, m) { return t ? sprintf("%5.1f %%", 100 * (t - m) / t) : "    -" }
      END {
        for (d in lt) printf "| %s | %s | %s | %s |\n", d, pct(lt[d], lm[d]), pct(ft[d], fm[d]), pct(rt[d], rm[d]) | "sort"
        close("sort")
        printf "| **%s** | %s | %s | %s |\n", label, pct(LT, LM), pct(FT, FM), pct(RT, RM)
      }'
}
echo "| directory | lines | functions | regions |"
echo "|---|---|---|---|"
report "rpc/ total" '(^|/)rpc/'
report "codegen/ total" '(^|/)codegen/'
report "interceptors/ total" '(^|/)interceptors/'
