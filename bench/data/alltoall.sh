#!/bin/sh
# The all-to-all benchmark (issue 11): random_shuffle, sort and groupby on
# generated rows of 96 bytes (bench/data/rows.h), side by side in one run:
#   - the machine's ceiling: the same rows made, and the operator done, in one
#     process's memory by one thread (prism-data-alltoall-ceiling);
#   - Prism: range -> gen_rows (a task package) -> the operator -> batches
#     streamed to a driver that checks every row (prism-data-alltoall), on a
#     local cluster whose object store holds STORE, while the store's used
#     and spilled bytes are sampled five times a second;
#   - Dask distributed (Debian's python3-dask): dask.dataframe's shuffle,
#     sort_values and groupby on the same rows made by its workers
#     (alltoall_dask.py), when /usr/bin/python3 has it.
# Each operator is also run as "none" (the rows made and consumed, no
# operator) for what the operator itself adds.
#
#   bench/data/alltoall.sh [BUILD_DIR]     (default build-bench, a Release build)
#
# Environment: SIZES (GiB of rows, default "1 4"), STORE (object store
# memory, default 2GiB: the 4 GiB run spills), CPUS (default nproc), OPS
# (default "none shuffle sort groupby"), PEERS (default "ceiling prism dask"),
# KEEP=1 (keep the work directory).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-bench}
SIZES=${SIZES:-1 4}
STORE=${STORE:-2GiB}
CPUS=${CPUS:-$(nproc)}
OPS=${OPS:-none shuffle sort groupby}
PEERS=${PEERS:-ceiling prism dask}
KEEP=${KEEP:-}
QUICK=""
PY=/usr/bin/python3
NAME=bench/data/alltoall.sh
. bench/tasks/common.sh

bench_build 2 bench-alltoall-build.log
bench_need_dask
bench_workdir prism-alltoall-bench
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
PKG_SO=$(dirname "$BIN")/bench/bench_rows_fns.so
[ -f "$PKG_SO" ] || { say "$PKG_SO was not built"; exit 1; }

rows_of() { $PY -c "print(int($1 * 2**30) // 96)"; }

if echo "$PEERS" | grep -q prism; then
  say "starting a local cluster: 1 node, $CPUS CPUs, a $STORE object store"
  "$BIN/prism" up --nodes 1 --num-cpus "$CPUS" --object-store-memory "$STORE" \
    >"$WORK/up.log" 2>&1 || {
    cat "$WORK/up.log" >&2
    exit 1
  }
  UP=1
  export PRISM_STORE_SOCKET="$PRISM_HOME/nodes/node-1/objectstore.sock"
  SHA=$(curl -sf -H "Authorization: Bearer $(cat "$PRISM_HOME/token")" --data-binary @"$PKG_SO" \
    "$(cat "$PRISM_HOME/address")/api/v1/packages" | $PY -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')
fi
for gib in $SIZES; do
  ROWS=$(rows_of "$gib")
  BLOCKS=$($PY -c "print(max(8, int($gib * 32)))") # blocks of about 32 MiB
  for op in $OPS; do
    case " $PEERS " in *" ceiling "*)
      say "$gib GiB, $op: the C ceiling"
      run_step 1800 "$BIN/prism-data-alltoall-ceiling" "$op" "$ROWS" ;;
    esac
    case " $PEERS " in *" prism "*)
      say "$gib GiB, $op: Prism"
      samples="$WORK/store-$gib-$op.jsonl"
      bench_sample_store_start "$samples"
      run_step 1800 "$BIN/prism-data-alltoall" "$SHA" "$op" "$ROWS" "$BLOCKS"
      bench_sample_store_stop
      echo "{\"gib\": $gib, \"op\": \"$op\", \"store\": $(bench_store_peak "$samples")}" \
        >>"$WORK/store.jsonl"
      ;;
    esac
    case " $PEERS " in *" dask "*)
      if have_dask; then
        say "$gib GiB, $op: Dask distributed"
        run_step 3600 $PY bench/data/alltoall_dask.py "$op" "$ROWS" "$BLOCKS" "$CPUS"
      fi ;;
    esac
  done
done
[ -n "${UP:-}" ] && bench_cluster_down
bench_failed_logs

echo "all-to-all: rows of 96 bytes, $(nproc) CPUs, object store $STORE, load average at the start $LOAD0"
echo
$PY - "$RESULTS" "$WORK/store.jsonl" <<'PYEOF'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
store = {}
if os.path.exists(sys.argv[2]):
    for l in open(sys.argv[2]):
        s = json.loads(l)
        store[(int(s["gib"] * 2**30) // 96, s["op"])] = s
def gib(r):
    return r["rows"] * 96 / 2**30
base = {(r["peer"], r["rows"]): r["seconds"] for r in rows if r["op"] == "none"}
print("| GiB | operator | peer | seconds | rows/s | GB/s | less its `none` (s) | vs ceiling | store: peak used / spilled |")
print("|---|---|---|---|---|---|---|---|---|")
ceil = {(r["rows"], r["op"]): r["seconds"] for r in rows if r["peer"].startswith("C,")}
for r in rows:
    b = base.get((r["peer"], r["rows"]))
    extra = "%.2f" % (r["seconds"] - b) if b is not None and r["op"] != "none" else ""
    c = ceil.get((r["rows"], r["op"]))
    s = store.get((r["rows"], r["op"])) if r["peer"] == "Prism" else None
    mem = ("%d MiB / %d MiB" % (s["store"]["store_peak_mib"], s["store"]["store_spilled_mib"])
           if s else "")
    print("| %.3g | %s | %s | %.2f | %.0f | %.3f | %s | %s | %s |" % (
        gib(r), r["op"], r["peer"], r["seconds"], r["rows_per_s"], r["gb_per_s"], extra,
        "%.2f×" % (r["seconds"] / c) if c else "", mem))
PYEOF
