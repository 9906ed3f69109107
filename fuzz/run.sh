#!/bin/sh
# Runs one fuzz target for FUZZ_SECONDS (default 20) on its seeds and
# regression inputs (SEEDS, read-only) and what earlier runs found (WORK).
# A crash, a leak, a sanitizer report or a timeout fails it; the input is
# saved as ARTIFACT_PREFIX<kind>-<sha1> (see fuzz/README.md).
# usage: run.sh TARGET SEEDS WORK ARTIFACT_PREFIX [libFuzzer flags...]
set -eu
target=$1 seeds=$2 work=$3 prefix=$4
shift 4
mkdir -p "$work"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$target" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=2048 \
  -max_len="${FUZZ_MAX_LEN:-65536}" -print_final_stats=1 -artifact_prefix="$prefix" \
  "$@" "$work" "$seeds"
