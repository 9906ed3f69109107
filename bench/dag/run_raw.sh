#!/bin/sh
# The raw hop between two processes (bench/dag/raw_pingpong.c): the floor
# that accelerated DAGs are compared with. Prints the machine's load before
# and after (a busy machine moves these numbers), then one Markdown table.
#
#   [TURNS=N] bench/dag/run_raw.sh [BUILD_DIR] [ARGS...]
#
# BUILD_DIR (default build-rel) is configured as a Release build when it
# does not exist yet; only prism-dag-raw-pingpong is built. A sanitizer build
# is refused: its numbers mean nothing. ARGS go to the program (--quick,
# --only bare,chan). With TURNS=N (default 1) the program runs N times and
# each row of the table is the turn with the lowest median (a 2-core machine
# shared with other work gets preempted in some turns, not in others).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-rel}
[ $# -gt 0 ] && shift
TURNS=${TURNS:-1}
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  echo "run_raw.sh: configuring $BUILD (Release)" >&2
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if grep -Eq '^PRISM_(SANITIZE|TSAN):BOOL=ON' "$BUILD/CMakeCache.txt"; then
  echo "run_raw.sh: $BUILD is a sanitizer build; give a Release build directory" >&2
  exit 2
fi
if ! cmake --build "$BUILD" --target prism-dag-raw-pingpong -j2 >"$BUILD/dag-raw-build.log" 2>&1; then
  tail -30 "$BUILD/dag-raw-build.log" >&2
  exit 1
fi
BIN=$BUILD/bin/prism-dag-raw-pingpong
echo "$(nproc) CPUs; before: $(uptime)"
if [ "$TURNS" -le 1 ]; then
  "$BIN" "$@"
else
  OUT=$(mktemp)
  trap 'rm -f "$OUT"' EXIT
  i=1
  while [ "$i" -le "$TURNS" ]; do
    "$BIN" --json "$@" >>"$OUT"
    echo "turn $i done: $(uptime)"
    i=$((i + 1))
  done
  python3 - "$OUT" "$TURNS" <<'PY'
import json, sys
best, order, pinned = {}, [], True
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["transport"], r["payload"])
    pinned = pinned and r["pinned"]
    if key not in best:
        order.append(key)
    if key not in best or r["median_us"] < best[key]["median_us"]:
        best[key] = r
def size(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB" if n >= 1024 else f"{n} B"
print(f"\n{'pinned to two CPUs' if pinned else 'not pinned'}; each row: the best of {sys.argv[2]} turns (lowest median)\n")
print("| transport | payload | one-way median µs | one-way p99 µs | messages/s |")
print("|---|---|---|---|---|")
for k in order:
    r = best[k]
    print(f"| {k[0]} | {size(k[1])} | {r['median_us']:.2f} | {r['p99_us']:.2f} | {r['rate']:,.0f} |")
PY
fi
echo "after: $(uptime)"
