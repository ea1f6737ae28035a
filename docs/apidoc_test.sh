#!/usr/bin/env bash
# docs/api.md is what tools/apidoc.py makes of the public headers today.
# Usage: apidoc_test.sh APIDOC_PY API_MD HEADER... (headers under
# .../include/, named as users include them).
set -euo pipefail
apidoc=$1 doc=$2
shift 2
specs=()
for h in "$@"; do specs+=("$h=${h#*/include/}"); done
python3 "$apidoc" --check --doc "$doc" "${specs[@]}"
echo "docs/api.md is up to date (${#specs[@]} headers)"
