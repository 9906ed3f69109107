#!/bin/sh
# Task benchmarks of Prism side by side with Dask distributed and Python
# multiprocessing, with the physical limits measured in the same run, then a
# soak of many tasks through one driver. Prints one table.
#
#   bench/tasks/run.sh [BUILD_DIR]
#
# BUILD_DIR (default build-bench) is configured as a Release build when it
# does not exist yet, and built (-j1). A sanitizer build is refused: its
# numbers mean nothing. The benchmark programs come from CMake when the top
# CMakeLists.txt has add_subdirectory(bench/tasks), otherwise they are
# compiled here into BUILD_DIR/bench-tasks/ with the same flags.
#
# It runs, in order: the physical limits (prism-tasks-pingpong), the peers
# (bench/tasks/peers.py with Debian's /usr/bin/python3; python3-distributed is
# installed with apt-get when it is missing and this runs as root), then a
# local cluster (`prism up --nodes $NODES --num-cpus 2` in a temporary
# PRISM_HOME, stopped by a trap), every Prism benchmark, and the soak.
#
# Environment: NODES (default 1), SOAK_TASKS (default 1000000),
# SOAK_SECONDS (time bound of the soak, default 480), QUICK=1 (short runs
# of everything, for trying the script), KEEP=1 (keep the work directory:
# results, cluster logs), CC (default cc).
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${1:-build-bench}
NODES=${NODES:-1}
SOAK_TASKS=${SOAK_TASKS:-1000000}
SOAK_SECONDS=${SOAK_SECONDS:-480}
QUICK=${QUICK:-}
KEEP=${KEEP:-}
PY=/usr/bin/python3
SRC=bench/tasks

NAME=run.sh
. bench/tasks/common.sh

# ---- build ----
bench_build 1 bench-tasks-build.log
if [ -d "$BUILD/bench/tasks" ] && [ -x "$BIN/prism-tasks-bench" ]; then
  TB=$BIN/prism-tasks-bench PP=$BIN/prism-tasks-pingpong SOAK=$BIN/prism-tasks-soak
else
  OUT=$BUILD/bench-tasks
  mkdir -p "$OUT"
  CFLAGS="-O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter"
  LIBDIR=$ROOT/$BUILD/lib
  build_one() { # SOURCE PROGRAM LIBS...
    src=$1 prog=$2
    shift 2
    # shellcheck disable=SC3013 # -nt: dash and bash have it
    if [ ! -x "$OUT/$prog" ] || [ "$SRC/$src" -nt "$OUT/$prog" ] ||
       [ "$SRC/bench_util.h" -nt "$OUT/$prog" ] || [ "$LIBDIR/libprism.so" -nt "$OUT/$prog" ]; then
      say "compiling $prog"
      # shellcheck disable=SC2086
      ${CC:-cc} $CFLAGS -Iinclude "$SRC/$src" -o "$OUT/$prog" "$@"
    fi
  }
  PRISM_LIBS="-L$LIBDIR -lprism -Wl,-rpath,$LIBDIR"
  # shellcheck disable=SC2086
  build_one prism_tasks_bench.c prism-tasks-bench $PRISM_LIBS
  build_one pingpong.c prism-tasks-pingpong -pthread
  # shellcheck disable=SC2046,SC2086
  build_one soak.c prism-tasks-soak $PRISM_LIBS $(pkg-config --libs jansson libcurl)
  TB=$OUT/prism-tasks-bench PP=$OUT/prism-tasks-pingpong SOAK=$OUT/prism-tasks-soak
fi

# ---- the peers' Python, work directory ----
bench_need_dask
bench_workdir prism-tasks-bench

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say "physical limits"
bench_limits
say "peers: multiprocessing"
run_step 600 $PY "$SRC/peers.py" multiprocessing ${QUICK:+--quick}
if have_dask; then
  say "peers: Dask distributed"
  run_step 900 $PY "$SRC/peers.py" dask ${QUICK:+--quick}
fi

bench_cluster_up "$NODES" 2

Q=""
[ -n "$QUICK" ] && Q="--rounds 2 --max-seconds 3"
for b in sync async multi wait get10k get10k-task; do
  say "prism: $b"
  if [ -n "$QUICK" ] && [ "$b" = sync ]; then
    run_step 600 "$TB" sync --n 3000 --warmup 300
  else
    # shellcheck disable=SC2086
    run_step 600 "$TB" "$b" $Q
  fi
done
for size in 1M 100M; do
  say "prism: arg $size"
  # shellcheck disable=SC2086
  run_step 600 "$TB" arg --size "$size" $Q
done

if [ -n "$QUICK" ]; then
  say "prism: soak (100000 tasks)"
  run_step 300 "$SOAK" --tasks 100000 --warmup 10000
else
  say "prism: soak ($SOAK_TASKS tasks, at most $SOAK_SECONDS s)"
  run_step $((SOAK_SECONDS + 300)) "$SOAK" --tasks "$SOAK_TASKS" --max-seconds "$SOAK_SECONDS"
fi
bench_cluster_down
say "physical limits, again (the table takes the better of the two)"
bench_limits
bench_failed_logs

bench_header "Prism task benchmarks" "$NODES" 2
$PY "$SRC/table.py" "$RESULTS" || FAILED=1
[ -z "$FAILED" ]
