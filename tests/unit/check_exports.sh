#!/bin/sh
# libprism exports exactly the functions its public headers declare with
# PRISM_API, and its SONAME carries the major version (docs/api-c.md).
#   check_exports.sh LIBPRISM.so INCLUDE_DIR SONAME
set -eu
lib=$1 include=$2 soname=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The declared API: the name before the first "(" of each line that starts
# with PRISM_API (a declaration keeps its name on that line).
cat "$include"/prism/*.h | sed -n 's/^PRISM_API[^(]*[^A-Za-z0-9_(]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' |
    sort -u >"$tmp/declared"
# What the library exports, less the markers some linkers define.
nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' |
    grep -v -x -e _init -e _fini -e _edata -e _end -e __bss_start | sort -u >"$tmp/exported"

status=0
if [ "$(wc -l <"$tmp/declared")" -lt 10 ]; then
    echo "found only $(wc -l <"$tmp/declared") PRISM_API declarations in $include/prism" >&2
    status=1
fi
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
if [ -n "$extra" ]; then
    echo "exported by $lib but not declared PRISM_API in $include/prism/*.h:" >&2
    echo "$extra" | sed 's/^/  /' >&2
    status=1
fi
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
if [ -n "$missing" ]; then
    echo "declared PRISM_API but not exported by $lib:" >&2
    echo "$missing" | sed 's/^/  /' >&2
    status=1
fi
unprefixed=$(grep -v '^prism_' "$tmp/exported" || true)
if [ -n "$unprefixed" ]; then
    echo "exported without the prism_ prefix:" >&2
    echo "$unprefixed" | sed 's/^/  /' >&2
    status=1
fi
got=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$got" != "$soname" ]; then
    echo "SONAME of $lib is '$got', not $soname" >&2
    status=1
fi
[ $status -eq 0 ] && echo "$(wc -l <"$tmp/exported") symbols exported, each declared PRISM_API; SONAME $got"
exit $status
