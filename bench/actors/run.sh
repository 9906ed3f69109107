#!/bin/sh
# Actor benchmarks of Prism side by side with Dask distributed actors and a
# Python multiprocessing baseline, with the physical limits measured in the
# same run. Prints one table.
#
#   bench/actors/run.sh [BUILD_DIR]
#
# BUILD_DIR (default build-bench) is configured as a Release build when it
# does not exist yet, and built (-j2). A sanitizer build is refused: its
# numbers mean nothing.
#
# It runs, in order: the physical limits (bench/tasks' prism-tasks-pingpong),
# the peers (bench/actors/peers.py with Debian's /usr/bin/python3;
# python3-distributed is installed with apt-get when it is missing and this
# runs as root), then a local cluster (`prism up --nodes 1 --num-cpus
# $NUM_CPUS` in a temporary PRISM_HOME, stopped by a trap) and every
# prism-actors-bench benchmark, each in a process of its own; the physical
# limits again (the table takes the better of the two).
#
# Environment: NUM_CPUS (the node's CPUs, default 2: each actor holds one,
# and 1_n and n_n create 2), QUICK=1 (short runs of everything, for trying
# the script), KEEP=1 (keep the work directory: results, cluster logs).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-bench}
NUM_CPUS=${NUM_CPUS:-2}
QUICK=${QUICK:-}
KEEP=${KEEP:-}
PY=/usr/bin/python3
SRC=bench/actors

NAME=bench/actors/run.sh
. bench/tasks/common.sh

bench_build 2 bench-actors-build.log
AB=$BIN/prism-actors-bench PP=$BIN/prism-tasks-pingpong
for prog in "$AB" "$PP"; do
  [ -x "$prog" ] || { say "$prog was not built"; exit 1; }
done
bench_need_dask
bench_workdir prism-actors-bench

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say "physical limits"
bench_limits
say "peers: multiprocessing"
run_step 300 $PY "$SRC/peers.py" multiprocessing ${QUICK:+--quick}
if have_dask; then
  say "peers: Dask distributed actors"
  run_step 600 $PY "$SRC/peers.py" dask ${QUICK:+--quick}
fi

bench_cluster_up 1 "$NUM_CPUS"
for b in sync async concurrent 1n nn; do
  say "prism: $b"
  if [ -n "$QUICK" ] && [ "$b" = sync ]; then
    run_step 300 "$AB" sync --n 3000 --warmup 300 --max-seconds 3
  elif [ -n "$QUICK" ]; then
    run_step 300 "$AB" "$b" --rounds 2 --warmup 200 --max-seconds 3
  else
    run_step 600 "$AB" "$b"
  fi
done
bench_cluster_down
say "physical limits, again (the table takes the better of the two)"
bench_limits
bench_failed_logs

bench_header "Prism actor benchmarks" 1 "$NUM_CPUS"
$PY "$SRC/table.py" "$RESULTS" || FAILED=1
[ -z "$FAILED" ]
