#!/usr/bin/env bash
# What libcrpc exports is exactly what the public headers declare.
# Usage: symbols_test.sh LIBCRPC_SO LIBCRPC_A EXPORTS VERSION_H SOVERSION
set -uo pipefail
so=$1 a=$2 exports=$3 version_h=$4 soversion=$5
fail=0
bad() { echo "FAIL: $*"; fail=1; }

[[ -s $exports ]] || bad "empty export list $exports"

# Dynamic symbols: every public name, each at version node CRPC_<major>,
# and nothing else (the node itself shows up as an absolute symbol).
dyn=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -vx "CRPC_$soversion")
if diff <(echo "$dyn" | sort) <(sed "s/\$/@@CRPC_$soversion/" "$exports" | sort) \
  >"${TEST_TMPDIR:-/tmp}/symdiff"; then
  echo "ok: libcrpc.so exports the $(wc -l <"$exports") public names, nothing else"
else
  bad "libcrpc.so exports differ from the headers (< library, > headers):"
  cat "${TEST_TMPDIR:-/tmp}/symdiff"
fi
rm -f "${TEST_TMPDIR:-/tmp}/symdiff"

major=$(sed -n 's/^#define CRPC_VERSION_MAJOR \([0-9]*\)$/\1/p' "$version_h")
[[ $major == "$soversion" ]] ||
  bad "SOVERSION $soversion in packaging/BUILD != CRPC_VERSION_MAJOR $major"
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libcrpc.so.$soversion" ]] || bad "SONAME is '$soname'"
echo "ok: SONAME $soname"

needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "NEEDED: $needed"
case " $needed" in
  *" libstdc++"*) bad "libcrpc.so needs the C++ runtime" ;;
esac
if readelf -d "$so" | grep -Eq '\((RPATH|RUNPATH)\)'; then
  bad "libcrpc.so has an RPATH/RUNPATH"
fi

# Static: one prelinked object whose only global definitions are public.
globals=$(nm -g --defined-only "$a" | awk 'NF==3 {print $3}' | sort)
if diff <(echo "$globals") <(sort "$exports") >/dev/null; then
  echo "ok: libcrpc.a defines only the public names globally"
else
  bad "libcrpc.a global symbols differ from the headers:"
  diff <(echo "$globals") <(sort "$exports") | head -40
fi
exit $fail
