#!/bin/sh
# multi_client_tasks_async with 2 and 4 clients on one node of 2 CPUs, each
# TURNS times on a fresh cluster, with how evenly the clients progressed
# (multi_client_fairness: Jain's index of each client's results per tenth
# of a round, and the longest wait of any client for its first result).
# Prints every run's line and the medians.
#
#   bench/tasks/fairness.sh [BUILD_DIR] [TURNS]     # defaults: build-bench, 3
#
# BUILD_DIR is configured and built as a Release build when needed (as
# run.sh does). KEEP=1 keeps the work directory (results, cluster logs).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-bench}
TURNS=${2:-3}
QUICK=""
KEEP=${KEEP:-}
PY=/usr/bin/python3
NAME=fairness.sh
. bench/tasks/common.sh

bench_build 2 bench-tasks-build.log
TB=$BIN/prism-tasks-bench
bench_workdir prism-fairness
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for turn in $(seq "$TURNS"); do
  for k in 2 4; do
    bench_cluster_up 1 2
    say "turn $turn: $k clients"
    run_step 600 "$TB" multi --clients "$k"
    bench_cluster_down
  done
done
bench_failed_logs
echo "fairness: $(nproc) CPUs, load average at the start $LOAD0, 1 node of 2 CPUs, $TURNS turns"
$PY - "$RESULTS" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for k in (2, 4):
    rates = [r["rate"] for r in rows if r.get("bench") == "multi_client_tasks_async"
             and r.get("clients") == k]
    fair = [r for r in rows if r.get("bench") == "multi_client_fairness" and r.get("clients") == k]
    if not rates or not fair:
        print("%d clients: no result" % k)
        continue
    print("%d clients: multi_client_tasks_async median %.0f tasks/s (runs: %s); "
          "Jain index median %.3f (runs: %s); first result after median %.1f ms (runs: %s)"
          % (k, statistics.median(rates), ", ".join("%.0f" % x for x in rates),
             statistics.median(f["jain"] for f in fair),
             ", ".join("%.3f" % f["jain"] for f in fair),
             statistics.median(f["first_result_ms"] for f in fair),
             ", ".join("%.1f" % f["first_result_ms"] for f in fair)))
PYEOF
[ -z "$FAILED" ]
