#!/bin/sh
# Compiled DAGs side by side with the same chain as ordinary actor calls and
# the raw shared-memory ring, in one run; prints one Markdown table.
#
#   [QUICK=1] [KEEP=1] [SPIN_US=N] [LARGE=1] bench/dag/run.sh [BUILD_DIR]
#
# BUILD_DIR (default build-rel) is configured as a Release build when it does
# not exist yet, and built (-j2); a sanitizer build is refused. Steps: the raw
# ring (prism-dag-raw-pingpong --only bare,chan), then a local cluster
# (`prism up --nodes 1 --num-cpus 2` in a temporary PRISM_HOME, stopped by a
# trap) and prism-dag-bench (chains of 1, 2 and 4 actors, 8 B and 1 KiB),
# then the raw ring again (the table takes the better of the two); the raw
# ring both pinned and round k + 1 unpinned processes (--chain 2,4), the
# floor of a chain of k actors with the same number of processes. Every DAG
# is timed twice: with prism_dag_get (the result copied out) and with
# prism_dag_get_in_place (read in its slot). SPIN_US
# sets the DAG's spin_us (default 50). LARGE=1 adds 1 MiB and 100 MiB values
# through chains of 1 and 2, in the slot and through the object store (64 KiB
# slots), against actor calls: a second table. CROSS=1 adds a cluster of two
# node agents on loopback (`prism up --nodes 2`) and prism-dag-bench --nodes:
# the same chains with every hop a TCP edge between the nodes, against the
# raw TCP ping-pong (prism-dag-raw-pingpong --only tcp,chan-tcp): a table of
# its own. REMOTE=1 adds prism-dag-bench --remote on the same two nodes: the
# driver on node 1, the whole chain on node 2, so that the hops between the
# actors stay on a node that is not the driver's: a table of its own (the
# per-hop figure is chain 4 minus chain 1, over three hops).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-rel}
QUICK=${QUICK:-}
KEEP=${KEEP:-}
PY=/usr/bin/python3
NAME=bench/dag/run.sh
. bench/tasks/common.sh

bench_build 2 bench-dag-build.log
DB=$BIN/prism-dag-bench RAW=$BIN/prism-dag-raw-pingpong
for prog in "$DB" "$RAW"; do
  [ -x "$prog" ] || { say "$prog was not built"; exit 1; }
done
bench_workdir prism-dag-bench
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

say "raw ring"
run_step 300 "$RAW" --json --quick --only bare,chan
run_step 300 "$RAW" --json --quick --chain 2,4
bench_cluster_up 1 2
say "compiled DAG and actor calls"
run_step 900 "$DB" ${QUICK:+--quick} ${SPIN_US:+--spin-us "$SPIN_US"}
if [ -n "${LARGE:-}" ]; then
  say "1 MiB and 100 MiB values: in the slot, through the object store"
  run_step 900 "$DB" --large ${QUICK:+--quick} ${SPIN_US:+--spin-us "$SPIN_US"}
fi
bench_cluster_down
if [ -n "${CROSS:-}${REMOTE:-}" ]; then
  say "raw TCP ping-pong"
  [ -z "${CROSS:-}" ] || run_step 300 "$RAW" --json --quick --only tcp,chan-tcp
  bench_cluster_up 2 2
  NODES=$($PY - "$PRISM_HOME" <<'PY'
import json, sys, urllib.request
home = sys.argv[1]
addr, token = (open(home + "/" + f).read().strip() for f in ("address", "token"))
req = urllib.request.Request(addr + "/api/v1/nodes?state=ALIVE",
                             headers={"Authorization": "Bearer " + token})
nodes = {n["name"]: n["node_id"] for n in json.load(urllib.request.urlopen(req))["nodes"]}
print(nodes["node-1"] + "," + nodes["node-2"])
PY
)
  if [ -n "${CROSS:-}" ]; then
    say "compiled DAG across two nodes"
    run_step 900 "$DB" --nodes "$NODES" ${QUICK:+--quick} ${SPIN_US:+--spin-us "$SPIN_US"}
  fi
  if [ -n "${REMOTE:-}" ]; then
    say "compiled DAG on the node that is not the driver's"
    run_step 900 "$DB" --remote "$NODES" ${QUICK:+--quick} ${SPIN_US:+--spin-us "$SPIN_US"}
    # each hop's own counters, as the listing has them (oldest DAG first)
    "$BIN/prism" dag list --json --limit 6 >"$WORK/dags.jsonl" || true
  fi
  bench_cluster_down
  if [ -n "${CROSS:-}" ]; then
    say "raw TCP ping-pong, again"
    run_step 300 "$RAW" --json --quick --only tcp,chan-tcp
  fi
fi
say "raw ring, again"
run_step 300 "$RAW" --json --quick --only bare,chan
run_step 300 "$RAW" --json --quick --chain 2,4
bench_failed_logs

echo "Compiled DAGs: $(nproc) CPUs, $(uname -sr), load average at the start $LOAD0, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
$PY - "$RESULTS" <<'PY' || FAILED=1
import json, sys
raw, dag, calls, large, cross, remote, ring, inplace = {}, {}, {}, {}, {}, {}, {}, {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("transport") == "chan-chain":
        k = (r["chain"], r["payload"])
        if k not in ring or r["median_us"] < ring[k]["median_us"]:
            ring[k] = r
    elif r["system"] != "dag-raw" and r["payload"] >= 1 << 20:
        large[(r["chain"], r["payload"], r["mode"], r.get("via"))] = r
    elif r["system"] == "dag-raw":
        k = (r["transport"], r["payload"])
        if k not in raw or r["median_us"] < raw[k]["median_us"]:
            raw[k] = r
    elif r["mode"] == "dag-tcp":
        cross[(r["chain"], r["payload"])] = r
    elif r["mode"] == "dag-remote":
        remote[(r["chain"], r["payload"])] = r
    elif r["mode"] == "dag":
        dag[(r["chain"], r["payload"])] = r
    elif r["mode"] == "dag-in-place":
        inplace[(r["chain"], r["payload"])] = r
    else:
        calls[(r["chain"], r["payload"])] = r
def size(n):
    return f"{n >> 10} KiB" if n >= 1024 else f"{n} B"
print("| chain | payload | DAG: execution µs (median / p99) | DAG: per hop µs | DAG: executions/s, 8 in flight "
      "| actor calls: execution µs (median / p99) | actor calls: per hop µs | per hop: calls / DAG "
      "| raw ring hop µs (prism_channel / bare) | raw ring round k + 1 processes: hop µs "
      "| per hop: DAG / that ring | DAG, read in place: per hop µs | per hop: in place / that ring |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (k, p), d in sorted(dag.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    c = calls.get((k, p))
    ch, bare = raw.get(("chan", p)), raw.get(("bare", p))
    rg = ch if k == 1 else ring.get((k, p))  # two processes: the pinned ping-pong
    ip = inplace.get((k, p))
    same = f"| {rg['median_us']:.2f} | {d['hop_us'] / rg['median_us']:.2f}× " if rg else "| | "
    same += (f"| {ip['hop_us']:.2f} | " + (f"{ip['hop_us'] / rg['median_us']:.2f}× |" if rg else "|")
             if ip else "| | |")
    print((f"| {k} | {size(p)} | {d['median_us']:.1f} / {d['p99_us']:.1f} | {d['hop_us']:.2f} "
           f"| {d['rate']:,.0f} "
           f"| {c['median_us']:.1f} / {c['p99_us']:.1f} | {c['hop_us']:.1f} | {c['hop_us'] / d['hop_us']:.1f}× "
           f"| {ch['median_us']:.2f} / {bare['median_us']:.2f} " if c and ch and bare else
           f"| {k} | {size(p)} | {d['median_us']:.1f} | {d['hop_us']:.2f} | | | | | ") + same)
if large:
    print()
    print("| chain | payload | DAG, in the slot µs (median / p99) | DAG, in the slot, read in place "
          "| DAG, through the object store | actor calls |")
    print("|---|---|---|---|---|---|")
    for k, p in sorted({key[:2] for key in large}, key=lambda kp: (kp[1], kp[0])):
        cells = [large.get((k, p, "dag", "slot")), large.get((k, p, "dag-in-place", "slot")),
                 large.get((k, p, "dag", "store")), large.get((k, p, "calls", "slot"))]
        print(f"| {k} | {p >> 20} MiB | " + " | ".join(
            f"{x['median_us']:.0f} / {x['p99_us']:.0f}" if x else "" for x in cells) + " |")
if cross:
    print()
    print("| across nodes: chain | payload | DAG: execution µs (median / p99) | DAG: per hop µs "
          "| DAG: executions/s, 8 in flight | raw TCP hop µs (prism_channel / bare) "
          "| per hop: DAG / raw TCP (prism_channel / bare) |")
    print("|---|---|---|---|---|---|---|")
    for (k, p), d in sorted(cross.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ch, bare = raw.get(("chan-tcp", p)), raw.get(("tcp", p))
        limit = f"| {ch['median_us']:.2f} / {bare['median_us']:.2f} " \
            f"| {d['hop_us'] / ch['median_us']:.1f}× / {d['hop_us'] / bare['median_us']:.2f}× |" \
            if ch and bare else "| | |"
        print(f"| {k} | {size(p)} | {d['median_us']:.1f} / {d['p99_us']:.1f} | {d['hop_us']:.2f} "
              f"| {d['rate']:,.0f} " + limit)
if remote:
    print()
    print("| driver on node 1, actors on node 2: chain | payload | DAG: execution µs (median / p99) "
          "| DAG: executions/s, 8 in flight | hop between two actors of node 2 µs "
          "((chain 4 − chain 1) / 3) |")
    print("|---|---|---|---|---|")
    for (k, p), d in sorted(remote.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        one, four = remote.get((1, p)), remote.get((4, p))
        hop = f"{(four['median_us'] - one['median_us']) / 3:.2f}" if one and four and k == 4 else ""
        print(f"| {k} | {size(p)} | {d['median_us']:.1f} / {d['p99_us']:.1f} "
              f"| {d['rate']:,.0f} | {hop} |")
    # The same runs, hop by hop from the channels' own counters (one value in
    # 8, the pipelined executions' queueing included): the rings between the
    # actors of node 2 against the TCP edges between the nodes.
    try:
        dags = [json.loads(l) for l in open(sys.argv[1].rsplit("/", 1)[0] + "/dags.jsonl")][::-1]
    except OSError:
        dags = []
    runs = [(k, p) for p in (8, 1024) for k in (1, 2, 4)]
    if len(dags) == len(runs):
        print()
        print("| driver on node 1, actors on node 2: chain | payload | ring hops on node 2: mean µs "
              "(values timed) | TCP hops between the nodes: mean µs (values timed) |")
        print("|---|---|---|---|")
        for (k, p), d in zip(runs, dags):
            cells = []
            for kind in ("shm", "tcp"):
                hs = [e["latency"] for e in d["edges"] if e["kind"] == kind and "latency" in e]
                if kind == "tcp":
                    hs += d.get("output_latency", [])
                n = sum(h["count"] for h in hs)
                mean = sum(h["mean_us"] * h["count"] for h in hs) / n if n else 0
                cells.append(f"{mean:.1f} ({n:,})" if n else "")
            print(f"| {k} | {size(p)} | {cells[0]} | {cells[1]} |")
PY
[ -z "$FAILED" ]
