#!/bin/sh
# What spilling costs the store's other clients: a client doing small
# put/get rounds (prism-objectstore-bench ping) beside one writing three
# times the arena of pinned objects and reading them back (... spill), on a
# 256 MiB arena. With CLIENT=readback, the other client instead reads back
# its own 1 MiB objects, which the spill pushes out, and times the gets that
# restored one (... readback). With BUILD_BEFORE, that build's store takes
# turns with BUILD's (the clients are BUILD's, the same for both).
#
#   [CLIENT=ping|readback] bench/objectstore/spill_stall.sh BUILD [BUILD_BEFORE] [TURNS]
#
# Builds must be plain (non-sanitizer) ones, e.g. Release.
set -eu
NEW=$1
OLD=${2:-}
TURNS=${3:-3}
CLIENT=${CLIENT:-ping}
BIN=$NEW/bin
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-spill-stall.XXXXXX")
STORE=""
cleanup() {
  [ -n "$STORE" ] && kill "$STORE" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

turn() { # BUILD
  rm -rf "$WORK/spill" "$WORK/addr"
  "$1/bin/prism-objectstore" --no-auth --socket "$WORK/s.sock" --memory 256MiB \
    --spill-dir "$WORK/spill" --spill-batch 64MiB --address-file "$WORK/addr" \
    --log-level warn >>"$WORK/store.log" 2>&1 &
  STORE=$!
  i=0
  while [ ! -f "$WORK/addr" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  "$BIN/prism-objectstore-bench" "$CLIENT" "$WORK/s.sock" >"$WORK/ping" &
  ping=$!
  i=0 # readback: its objects made first
  while [ "$CLIENT" = readback ] && ! grep -q ready "$WORK/ping" && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  sleep 0.2
  "$BIN/prism-objectstore-bench" spill "$WORK/s.sock" 3 >"$WORK/spill.out"
  kill -TERM "$ping"
  wait "$ping" || true
  kill "$STORE"
  wait "$STORE" || true
  STORE=""
  printf '%s:' "$1"
  awk '/^(spill|restore)_throughput/ { printf " %s %.2f GiB/s", $1, $2 }' "$WORK/spill.out"
  awk '/^(ping|readback)_/ { sub(/^[a-z]+_/, "", $1); printf " %s %s%s", $1, $2, $3 }' "$WORK/ping"
  echo
}

echo "spill beside $CLIENT ($(nproc) cores, $(uname -r))"
k=1
while [ $k -le "$TURNS" ]; do
  turn "$NEW"
  [ -n "$OLD" ] && turn "$OLD"
  k=$((k + 1))
done
