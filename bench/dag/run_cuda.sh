#!/bin/sh
# The CUDA device channel on a GPU, in one run: its test
# (tests/unit/cuda_channel.c, CTest's unit.cuda_channel) and the GPU hop
# against cudaMemcpy device-to-device (bench/dag/cuda_hop.c), which prints
# one Markdown table.
#
#   [QUICK=1] [CLUSTER=1] [CUDA_HOME=DIR] bench/dag/run_cuda.sh [BUILD_DIR]
#
# Both programs need only libs/channel and the CUDA runtime. When BUILD_DIR
# (default build-rel) lacks them, they are compiled into it with cc against
# CUDA_HOME (default /usr/local/cuda): a GPU machine need not have the rest
# of the cluster's libraries. Exits 77 when there is no CUDA device.
#
# CLUSTER=1 adds compiled DAGs carrying device tensors (BUILD_DIR must be a
# full build with the toolkit): a local cluster in a temporary PRISM_HOME
# (`prism up --nodes 1 --num-cpus 8`; the actors lease a quarter of a GPU
# each; stopped by a trap), the GpuStage package uploaded
# (BUILD_DIR/tests/gpu_test_fns.so), then prism-dag-bench --gpu: a table of
# the device hop between two actors against cudaMemcpy. For MPS, start its
# control daemon before (docs/dags.md#ordering-and-processes-sharing-one-gpu).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-rel}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
BIN=$BUILD/bin
if [ ! -x "$BIN/prism-dag-cuda-hop" ] || [ ! -x "$BIN/cuda_channel" ]; then
  mkdir -p "$BIN"
  LIB=$CUDA_HOME/lib64
  [ -d "$LIB" ] || LIB=$CUDA_HOME/lib
  for prog in tests/unit/cuda_channel.c:cuda_channel bench/dag/cuda_hop.c:prism-dag-cuda-hop; do
    ${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -Wall -Ilibs/channel -I"$CUDA_HOME/include" \
      libs/channel/prism_channel.c libs/channel/prism_chan_shm.c \
      libs/channel/prism_chan_sock.c libs/channel/prism_chan_cuda.c "${prog%%:*}" \
      -L"$LIB" -Wl,-rpath,"$LIB" -lcudart -lpthread -o "$BIN/${prog#*:}"
  done
fi
"$BIN/cuda_channel"
"$BIN/prism-dag-cuda-hop" ${QUICK:+--quick}
[ -n "${CLUSTER:-}" ] || exit 0
export PRISM_HOME
PRISM_HOME=$(mktemp -d /tmp/prism-cuda-bench.XXXXXX)
trap '"$BIN/prism" down >/dev/null 2>&1; rm -rf "$PRISM_HOME"' EXIT
"$BIN/prism" up --nodes 1 --num-cpus 8 >/dev/null
PKG=$("$BIN/prism" package upload "$BUILD/tests/gpu_test_fns.so")
"$BIN/prism-dag-bench" --gpu "$PKG" ${QUICK:+--quick} >"$PRISM_HOME/gpu.jsonl"
echo
echo "| device tensor | cudaMemcpyAsync D2D + sync µs | execution µs, A -> Z (median / p99) | A -> 2 passes -> Z | device hop µs ((2 passes - none) / 2) | hop / copy |"
echo "|---|---|---|---|---|---|"
/usr/bin/env python3 - "$PRISM_HOME/gpu.jsonl" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["payload"], r["stages"])] = r
def size(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} B"
for p in sorted({k[0] for k in rows}):
    a, b = rows.get((p, 0)), rows.get((p, 2))
    if not a or not b:
        continue
    hop = (b["median_us"] - a["median_us"]) / 2
    print(f"| {size(p)} | {a['copy_us']:.1f} | {a['median_us']:.1f} / {a['p99_us']:.1f} "
          f"| {b['median_us']:.1f} / {b['p99_us']:.1f} | {hop:.1f} | {hop / a['copy_us']:.2f}× |")
PY
