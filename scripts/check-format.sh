#!/bin/sh
# Checks that the tracked C sources follow .clang-format.
#
#   scripts/check-format.sh [--diff] [PATH...]   lists the files that differ; exit 1 if any
#   scripts/check-format.sh --fix [PATH...]      formats them in place
#
# PATHs (files or directories) narrow the check to part of the tree. The
# formatter is $CLANG_FORMAT, else clang-format-14, else clang-format; the
# style is written for version 14 (Debian's), others may format differently.
set -eu

usage() {
    echo "usage: scripts/check-format.sh [--fix | --diff] [PATH...]" >&2
    exit 2
}

mode='check'
while [ $# -gt 0 ]; do
    case $1 in
    --fix) mode='fix' ;;
    --diff) mode='diff' ;;
    -h | --help)
        sed -n '2,9s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
    shift
done

# PATHs are named from where the script is run; the work is done from the root.
if [ $# -gt 0 ]; then
    files=$(git ls-files --full-name -- "$@")
else
    files=$(git -C "$(dirname "$0")/.." ls-files)
fi
cd "$(dirname "$0")/.."
if [ ! -f .clang-format ]; then
    echo "check-format: no .clang-format at the root of the tree" >&2
    exit 2
fi

# Tracked C files that are never formatted: generated code, vendored code,
# test data, fuzz corpora. One shell pattern a line, relative to the root.
IGNORE='
fuzz/corpus/*
*/testdata/*
third_party/*
vendor/*
'

ignored() {
    for pattern in $IGNORE; do
        # shellcheck disable=SC2254 # the pattern is meant to glob
        case $1 in $pattern) return 0 ;; esac
    done
    return 1
}

if [ -n "${CLANG_FORMAT:-}" ]; then
    cf=$CLANG_FORMAT
elif command -v clang-format-14 >/dev/null 2>&1; then
    cf=clang-format-14
elif command -v clang-format >/dev/null 2>&1; then
    cf=clang-format
fi
if [ -z "${cf:-}" ] || ! command -v "$cf" >/dev/null 2>&1; then
    echo "check-format: ${cf:-clang-format} not found (Debian: apt-get install clang-format)" >&2
    exit 2
fi
version=$("$cf" --version | sed -n 's/.*clang-format version \([0-9]*\).*/\1/p')
if [ "$version" != 14 ]; then
    echo "check-format: warning: $cf is version ${version:-unknown}; .clang-format is written" \
        "for 14, so its verdict may differ from 14's" >&2
fi

# From here on words split at newlines only and no glob is expanded, so the
# patterns above reach `case` as they are.
set -f
IFS='
'

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT INT TERM
bad=0
for f in $files; do
    case $f in *.c | *.h) ;; *) continue ;; esac
    if ignored "$f"; then
        continue
    fi
    "$cf" --style=file --fallback-style=none "$f" >"$tmp"
    if cmp -s "$tmp" "$f"; then
        continue
    fi
    bad=$((bad + 1))
    case $mode in
    fix)
        cat "$tmp" >"$f"
        echo "formatted $f"
        ;;
    diff) diff -u --label "a/$f" --label "b/$f" "$f" "$tmp" || true ;;
    *) echo "$f" ;;
    esac
done

if [ "$mode" = fix ]; then
    echo "check-format: $bad file(s) formatted" >&2
    exit 0
fi
if [ "$bad" -gt 0 ]; then
    echo "check-format: $bad file(s) differ from .clang-format;" \
        "fix them with: scripts/check-format.sh --fix" >&2
    exit 1
fi
