#!/bin/sh
# Object store benchmark: starts prism-objectstore twice (a 1 GiB arena for
# put/get, a 256 MiB one for spilling), runs prism-objectstore-bench against
# them, and measures the ceilings in the same run: memcpy bandwidth and a dd
# disk write into the spill directory.
#
#   bench/objectstore/run.sh [BUILD_DIR] [SPILL_DIR]
#
# BUILD_DIR (default build) must hold bin/prism-objectstore and
# bin/prism-objectstore-bench from a plain (non-sanitizer) build:
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build
# SPILL_DIR (default $TMPDIR or /tmp) should be on the disk being measured.
set -eu
BUILD=${1:-build}
BASE=${2:-${TMPDIR:-/tmp}}
BIN=$BUILD/bin
WORK=$(mktemp -d "$BASE/prism-os-bench.XXXXXX")
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

start_store() { # NAME MEMORY
  "$BIN/prism-objectstore" --no-auth --socket "$WORK/$1.sock" --memory "$2" \
    --spill-dir "$WORK/spill-$1" --spill-batch 64MiB --address-file "$WORK/$1.addr" \
    --log-level warn >>"$WORK/stores.log" 2>&1 &
  PIDS="$PIDS $!"
  i=0
  while [ ! -f "$WORK/$1.addr" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

OUT=$WORK/results
{
  "$BIN/prism-objectstore-bench" memcpy
  start_store core 1GiB
  "$BIN/prism-objectstore-bench" core "$WORK/core.sock"
  # ceilings for spilling, measured just before it the same way it writes: into
  # new files (on some disks the first write of fresh blocks is far slower
  # than a rewrite). With its cache flushed (fdatasync) and into the page
  # cache (spill files are not fsynced: they do not need to survive the store)
  for mode in fdatasync none; do
    conv=""; [ "$mode" = fdatasync ] && conv="conv=fdatasync"
    # shellcheck disable=SC2086
    dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=1024 $conv 2>&1 |
      awk -v m="$mode" '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^[GM]B\/s$/) {
        v = $(i - 1); if ($i == "MB/s") v = v / 1000; printf "dd_write_%s %.4g GB/s\n", m, v } }'
    rm -f "$WORK/dd.bin"
  done
  start_store spill 256MiB
  "$BIN/prism-objectstore-bench" spill "$WORK/spill.sock" 4
} >"$OUT"
echo "prism-objectstore benchmark ($(nproc) cores, $(uname -r))"
awk '{ printf "%-40s %12s %s\n", $1, $2, $3 }' "$OUT"
