#!/bin/sh
# The CUDA device channel on a GPU, in one run: its test
# (tests/unit/cuda_channel.c, CTest's unit.cuda_channel) and the GPU hop
# against cudaMemcpy device-to-device (bench/dag/cuda_hop.c), which prints
# one Markdown table.
#
#   [QUICK=1] [CUDA_HOME=DIR] bench/dag/run_cuda.sh [BUILD_DIR]
#
# Both programs need only libs/channel and the CUDA runtime. When BUILD_DIR
# (default build-rel) lacks them, they are compiled into it with cc against
# CUDA_HOME (default /usr/local/cuda): a GPU machine need not have the rest
# of the cluster's libraries. Exits 77 when there is no CUDA device.
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
