#!/bin/sh
# `make demo`: a local Prism cluster and a real workload on it, step by step.
#
#   scripts/demo.sh BINDIR      (BINDIR holds prism, prism-gcs, prism-nodeagent)
#
# The cluster lives in a temporary PRISM_HOME and is always stopped at the end.
set -eu

BIN=${1:?usage: scripts/demo.sh BINDIR}
BIN=$(cd "$BIN" && pwd)
PATH="$BIN:$PATH"
export PATH
unset PRISM_ADDRESS PRISM_TOKEN
PRISM_HOME=$(mktemp -d "${TMPDIR:-/tmp}/prism-demo.XXXXXX")
export PRISM_HOME
WORK="$PRISM_HOME/demo"
mkdir -p "$WORK"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# Shows a command, its arguments quoted the way a shell reads them, then runs it.
run() {
    printf '$'
    for arg in "$@"; do
        case $arg in
        *[!A-Za-z0-9_./=:@%+-]* | "") printf " '%s'" "$arg" ;;
        *) printf ' %s' "$arg" ;;
        esac
    done
    printf '\n'
    "$@"
}

finish() {
    status=$?
    trap - EXIT INT TERM
    step "Stopping the cluster"
    prism down || true
    if [ "$status" -eq 0 ]; then
        rm -rf "$PRISM_HOME"
        step "Demo finished"
    else
        echo "demo FAILED (status $status); the services' logs are in $PRISM_HOME/logs" >&2
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

step "Starting a local cluster with 2 nodes (state in $PRISM_HOME)"
run prism up --nodes 2

step "The cluster"
run prism status

step "Job 1: sum 1..1000000 with a shell pipeline, following its log (--wait)"
run prism job submit --wait -- 'seq 1 1000000 | awk "{ s += \$1 } END { printf \"sum = %.0f\\n\", s }"'

step "Jobs 2-5: count the primes below 200000 in four slices, one CPU each, in parallel"
ids=""
for lo in 1 50001 100001 150001; do
    hi=$((lo + 49999))
    id=$(prism job submit --num-cpus 1 --metadata slice="$lo-$hi" -- \
        "seq $lo $hi | factor | awk 'NF == 2 { n++ } END { print n + 0 }'")
    echo "slice $lo..$hi: job $id"
    ids="$ids $id"
done
total=0
for id in $ids; do
    n=$(prism job logs --follow "$id")
    echo "job $id found $n primes"
    total=$((total + n))
done
echo "primes below 200000: $total (expected 17984)"
[ "$total" -eq 17984 ]

step "Job 6: a driver shipped as a package, calling the REST API with \$PRISM_ADDRESS and \$PRISM_TOKEN"
mkdir -p "$WORK/driver"
cat >"$WORK/driver/driver.sh" <<'EOF'
#!/bin/sh
# Runs on a node, with PRISM_ADDRESS, PRISM_TOKEN and PRISM_JOB_ID from the node agent.
set -eu
echo "driver of job $PRISM_JOB_ID on node $PRISM_NODE_ID, working dir $(pwd)"
api() { curl -fsS -H "Authorization: Bearer $PRISM_TOKEN" "$PRISM_ADDRESS$1"; }
for i in 1 2 3; do
    echo "tick $i"
    sleep 1
done
echo "nodes of the cluster, from inside the job:"
api /api/v1/nodes | tr '{' '\n' | sed -n 's/.*"name":"\([^"]*\)".*"state":"\([^"]*\)".*/  \1 \2/p'
echo "this job, as the GCS sees it:"
printf '%s\n' "$(api "/api/v1/jobs/$PRISM_JOB_ID")" | sed -n 's/.*"state":"\([^"]*\)".*/  state \1/p'
EOF
run prism package upload "$WORK/driver"
id=$(prism job submit --working-dir "$WORK/driver" -- sh driver.sh)
echo "submitted job $id"
run prism job logs --follow "$id"
run prism job status "$id"

step "Job 7: a job that fails, and one that is stopped"
run prism job submit --wait -- 'echo "about to fail"; exit 3' || echo "(exit status $?, as expected)"
id=$(prism job submit -- sleep 60)
sleep 1
run prism job stop "$id"
run prism job logs --follow "$id" # returns once the driver is gone
run prism job status "$id"

step "Tasks and actors: the seed program in C (zeros + zeros -> add; Counter.inc twice), run as a job"
run prism job submit --wait -- "$BIN/prism-example-seed"

step "Compiled DAGs: a 4-stage pipeline executed 10,000 times, then a 4-way tensor-parallel fan-out"
run prism job submit --wait -- "$BIN/prism-example-dag-pipeline"
run prism job submit --wait -- "$BIN/prism-example-dag-tensor-parallel"

step "Tasks for curl users: the GCS submits add(2, 40) and owns the result"
ADDR=$(cat "$PRISM_HOME/address")
AUTH="Authorization: Bearer $(cat "$PRISM_HOME/token")"
printf '$ curl -X POST %s/api/v1/tasks -d %s\n' "$ADDR" "'{\"package\": \"builtin\", \"function\": \"add\", \"args\": [2, 40]}'"
made=$(curl -sf -H "$AUTH" -H 'Content-Type: application/json' \
    -d '{"package": "builtin", "function": "add", "args": [2, 40]}' "$ADDR/api/v1/tasks")
echo "$made"
oid=$(echo "$made" | sed 's/.*"object_ids":\["\([0-9a-f]*\)".*/\1/')
printf '$ curl %s/api/v1/objects/%s?timeout_ms=10000\n' "$ADDR" "$oid"
curl -sf -H "$AUTH" "$ADDR/api/v1/objects/$oid?timeout_ms=10000"
echo

step "All jobs"
run prism job list
