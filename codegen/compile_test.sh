#!/usr/bin/env bash
# Compiles every generated file with one compiler and strict warnings, as C
# (the .c files) and the .crpc.h headers also as C++ (users include them
# from C++ tests). Usage: compile_test.sh CC CXX FILE...
set -euo pipefail
cc=$1 cxx=$2
shift 2
flags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wpedantic -Wshadow
       -Wmissing-prototypes -Wstrict-prototypes -Wno-overlength-strings
       -I. -Irpc/include -Icodegen/wkt)
n=0
for f in "$@"; do
  case "$f" in
    *.c)
      "$cc" "${flags[@]}" -fsyntax-only "$f"
      n=$((n + 1))
      ;;
    *.crpc.h)
      echo "#include \"$f\"" | "$cxx" -std=c++17 -Wall -Wextra -Werror \
        -I. -Irpc/include -Icodegen/wkt -fsyntax-only -x c++ -
      n=$((n + 1))
      ;;
  esac
done
[[ $n -gt 0 ]] || { echo "no files to compile" >&2; exit 1; }
echo "compile_test: $cc/$cxx compiled $n generated files cleanly"
