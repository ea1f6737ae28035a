#!/usr/bin/env bash
# The per-proxy table of issue 16 at full size: 3 crpc backends behind
# nginx, HAProxy and crpc's round-robin channel; how late a client's cancel
# and deadline reach the backend's handler ctx through each, how calls
# spread (also with one backend slowed), and what rolling restarts cost.
# Optimised build; flags go to deploy_bench (see deploy/deploy_bench.cc):
#
#   deploy/proxy_bench.sh [--cancels=200] [--deadlines=50] [--restart_rounds=2]
#                         [--spread_calls=3000] [--slow_ms=20] [--only=nginx,haproxy,crpc-rr]
#
# Takes about a minute. The same measurements run small, with asserts, in
# //deploy:proxy_test and //deploy:restart_test.
set -euo pipefail
cd "$(dirname "$0")/.."
./crpc.sh bazel build --config=opt --color=no --curses=no //deploy:deploy_bench >&2
bin=$(bazel info --config=opt bazel-bin 2>/dev/null)
# deploy_bench finds deploy/backend and the config templates in its runfiles.
RUNFILES_DIR="$bin/deploy/deploy_bench.runfiles" exec "$bin/deploy/deploy_bench" "$@"
