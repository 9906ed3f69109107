#!/bin/sh
# The single-node figures of the scalability envelope (Ray publishes its own
# in its release benchmarks): one task with ARGS object arguments, one with
# RETURNS returns, one get of GETS task results, QUEUED tasks queued by one
# driver on a 1-CPU node (the driver's memory per queued task), RUNNING
# sleep tasks of 1/RUNNING CPU at once (what a worker costs), the largest
# object the store takes, ACTORS detached actors with a call each (the
# GCS's memory per actor, the time of the actor list with them all), and PGS
# placement groups created, placed and removed.
# Prints one Markdown table.
#
#   bench/scale/run.sh [BUILD_DIR]
#
# BUILD_DIR (default build-bench) is configured as a Release build when it
# does not exist yet; a sanitizer build is refused. Environment: ARGS (10000),
# RETURNS (3000), GETS (10000), QUEUED (1000000), RUNNING (1000), ACTORS
# (1000), PGS (1000), STORE (object store memory,
# default 4GiB: the largest object tried is STORE minus 64 MiB), QUICK=1
# (a tenth of each), KEEP=1 (keep the work directory).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-bench}
QUICK=${QUICK:-}
KEEP=${KEEP:-}
PY=/usr/bin/python3
NAME=scale/run.sh
ARGS=${ARGS:-10000} RETURNS=${RETURNS:-3000} GETS=${GETS:-10000} QUEUED=${QUEUED:-1000000}
RUNNING=${RUNNING:-1000} ACTORS=${ACTORS:-1000} PGS=${PGS:-1000}
STORE=${STORE:-4GiB}
. bench/tasks/common.sh
if [ -n "$QUICK" ]; then
  ARGS=$((ARGS / 10)) RETURNS=$((RETURNS / 10)) GETS=$((GETS / 10)) QUEUED=$((QUEUED / 10))
  RUNNING=$((RUNNING / 10)) ACTORS=$((ACTORS / 10)) PGS=$((PGS / 10))
fi

bench_build 2 bench-scale-build.log
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
bench_workdir prism-bench-scale
say "starting a local cluster: 1 node, 1 CPU, a $STORE object store"
# the node may run a worker per running task (PRISM_MAX_WORKERS reaches its agent)
PRISM_MAX_WORKERS=$((RUNNING + ACTORS + 16)) \
  "$BIN/prism" up --nodes 1 --num-cpus 1 --object-store-memory "$STORE" >"$WORK/up.log" 2>&1 || {
  cat "$WORK/up.log" >&2
  exit 1
}
UP=1
export PRISM_STORE_SOCKET="$PRISM_HOME/nodes/node-1/objectstore.sock"
S=$BIN/prism-scale-single
run_step 600 "$S" args "$ARGS"
run_step 600 "$S" returns "$RETURNS"
run_step 600 "$S" get "$GETS"
run_step 1800 "$S" queued "$QUEUED"
run_step 900 "$S" running "$RUNNING"
run_step 900 "$S" pgs "$PGS"
# the largest object: STORE less 64 MiB, then halves until one is taken
mib=$($PY -c "import re,sys; m=re.fullmatch(r'(\d+)([KMG]i?B)', sys.argv[1]);
print(int(m.group(1)) * {'K': 1, 'M': 1024, 'G': 1024 ** 2}[m.group(2)[0]] // 1024 - 64)" "$STORE")
while [ "$mib" -ge 64 ]; do
  if timeout 600 "$S" object "$mib" >>"$RESULTS" 2>"$WORK/object.err"; then break; fi
  say "an object of $mib MiB: $(cat "$WORK/object.err")"
  mib=$((mib / 2))
done
# last: the actors are detached, they stay until the cluster stops
run_step 900 "$S" actors "$ACTORS"
curl -s -o /dev/null -w '{"case": "actor_list", "n": %{size_download}, "seconds": %{time_total}}\n' \
  -H "Authorization: Bearer $(cat "$PRISM_HOME/token")" \
  "$(cat "$PRISM_HOME/address")/api/v1/actors?limit=1000" >>"$RESULTS" || FAILED=1
# the dashboard's Actors page asks for 100 at a time
curl -s -o /dev/null -w '{"case": "actor_page", "n": %{size_download}, "seconds": %{time_total}}\n' \
  -H "Authorization: Bearer $(cat "$PRISM_HOME/token")" \
  "$(cat "$PRISM_HOME/address")/api/v1/actors?limit=100" >>"$RESULTS" || FAILED=1
bench_cluster_down
bench_failed_logs

echo "single-node envelope: $(nproc) CPUs, $(uname -sr), load average at the start $LOAD0;" \
  "1 node of 1 CPU, object store $STORE"
echo
$PY - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
what = {"args": "object arguments to one task", "returns": "returns from one task",
        "get": "task results in one get", "queued": "tasks queued by one driver, then run",
        "queued_submit": "the same tasks, submitted (all queued)",
        "object_mib": "MiB in one object, put and got",
        "running": "sleep tasks of 1/N CPU submitted at once",
        "actors": "detached actors of 1/2N CPU created, one call each",
        "pgs": "placement groups of one bundle, created and placed (then removed)",
        "actor_list": "bytes of GET /api/v1/actors?limit=1000 with them",
        "actor_page": "bytes of the dashboard's page of them (limit=100)"}
print("| figure | reached | seconds | µs per unit | driver memory growth, or what it cost |")
print("|---|---|---|---|---|")
for r in rows:
    if "bytes_per_queued_task" in r:
        extra = "%.0f B per queued task" % r["bytes_per_queued_task"]
    elif r["case"] == "actors":
        extra = "GCS private memory %+.1f KiB per actor" % r["gcs_private_kib_per_actor"]
    elif r["case"] == "pgs":
        extra = ("GCS private memory %+.1f KiB per group; removing them all took %.2f s"
                 % (r["gcs_private_kib_per_group"], r["removed_s"]))
    elif r["case"] in ("actor_list", "actor_page"):
        extra = ""
    elif r["case"] == "running":
        extra = ("%.0f ran together at most (%d workers, %.1f MiB private and %.0f fds each)"
                 % (r["concurrency"], r["peak_workers"], r["worker_private_kib"] / 1024,
                    r["worker_fds"]))
    else:
        extra = "%d KiB" % r["driver_rss_growth_kib"]
    print("| %s | %d | %.2f | %s | %s |" % (what.get(r["case"], r["case"]), r["n"], r["seconds"],
          "%.1f" % r["per_unit_us"] if "per_unit_us" in r else "", extra))
EOF
[ -z "$FAILED" ]
