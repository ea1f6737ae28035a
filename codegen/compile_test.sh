#!/usr/bin/env bash
# Compiles every golden file (codegen/testdata/golden) with one C compiler
# and its C++ sibling, warnings as errors, in each mode users build in:
#   .crpc.c   -std=c11, -std=c11 -pedantic, -std=c99 -pedantic
#   .crpc.h   alone as C in the same modes (self-contained), and from C++17
#             (-pedantic too), one at a time and all in one file
# No feature-test macro (-D_GNU_SOURCE, -D_POSIX_C_SOURCE) is given: the
# generated code must be ISO C and must not depend on the user's choice.
# golden_test proves the plugin's output equals the goldens, so this covers
# what the plugin writes today.
#
# The goldens include protoc-c's .pb-c.h for their own and imported protos;
# those are made here the way crpc_proto_library makes them (protoc-c on the
# descriptors without services, see strip_services.c).
#
# Usage: compile_test.sh CC CXX STRIP_SERVICES GOLDEN_DIR PROTO...
# (from the runfiles root: rpc/include holds crpc's public headers).
set -euo pipefail
cc=$1 cxx=$2 strip=$3 golden=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# protoc-c's headers for every file the protos import, WKTs included.
protoc -I. -I/usr/include --include_imports \
  --descriptor_set_out="$tmp/full.desc" "$@"
"$strip" < "$tmp/full.desc" > "$tmp/nosvc.desc"
mapfile -t all < <(protoc -I/usr/include \
  --decode=google.protobuf.FileDescriptorSet google/protobuf/descriptor.proto \
  < "$tmp/nosvc.desc" | sed -n 's/^  name: "\(.*\)"$/\1/p')
mkdir -p "$tmp/pb"
protoc-c --descriptor_set_in="$tmp/nosvc.desc" --c_out="$tmp/pb" "${all[@]}"

# /usr/include (protobuf-c/protobuf-c.h) is on the default search path.
inc=(-I"$golden" -I"$tmp/pb" -Irpc/include)
warn=(-Wall -Wextra -Werror -Wshadow -Wmissing-prototypes
      -Wstrict-prototypes)
c_modes=("-std=c11" "-std=c11 -pedantic" "-std=c99 -pedantic")
cxx_flags=(-std=c++17 -pedantic -Wall -Wextra -Werror)

failures=0 n=0
# Runs a compiler command; on failure prints it with the full output.
check() {
  local out
  n=$((n + 1))
  if ! out=$("$@" 2>&1); then
    failures=$((failures + 1))
    printf 'FAIL: %s\n%s\n\n' "$*" "$out" >&2
  fi
}

mapfile -t sources < <(cd "$golden" && find . -name '*.crpc.c' | sort)
mapfile -t headers < <(cd "$golden" && find . -name '*.crpc.h' | sort)
[[ ${#sources[@]} -gt 0 && ${#headers[@]} -gt 0 ]] ||
  { echo "no goldens under $golden" >&2; exit 1; }

: > "$tmp/all.cc"
for h in "${headers[@]}"; do
  h=${h#./}
  printf '#include "%s"\n' "$h" > "$tmp/one.c"
  printf '#include "%s"\n' "$h" > "$tmp/one.cc"
  printf '#include "%s"\n' "$h" >> "$tmp/all.cc"
  for mode in "${c_modes[@]}"; do
    # shellcheck disable=SC2086  # mode is several flags
    check "$cc" $mode "${warn[@]}" "${inc[@]}" -fsyntax-only "$tmp/one.c"
  done
  check "$cxx" "${cxx_flags[@]}" "${inc[@]}" -fsyntax-only "$tmp/one.cc"
done
check "$cxx" "${cxx_flags[@]}" "${inc[@]}" -fsyntax-only "$tmp/all.cc"

for src in "${sources[@]}"; do
  src=${src#./}
  for mode in "${c_modes[@]}"; do
    # -O2: some warnings (-Wmaybe-uninitialized, ...) need the optimiser.
    # shellcheck disable=SC2086
    check "$cc" $mode -O2 "${warn[@]}" "${inc[@]}" -c -o "$tmp/out.o" \
      "$golden/$src"
  done
done

if [[ $failures -gt 0 ]]; then
  echo "compile_test: $failures of $n $cc/$cxx compiles FAILED (above)" >&2
  exit 1
fi
echo "compile_test: ${#sources[@]} sources and ${#headers[@]} headers," \
  "$n compiles with $cc/$cxx, all clean"
