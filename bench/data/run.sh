#!/bin/sh
# The image-ingest benchmark (issue 10; Ray Data's comparison with PyTorch's
# DataLoader): N JPEGs -> decode -> random crop 224 x 224 -> random
# horizontal flip -> batches of 256 -> a consumer that touches every byte,
# side by side in one run:
#   - a hand-written C thread pool on every core (prism-data-pool): the ceiling;
#   - Prism: the same as a dataset on a local cluster (prism-data-ingest),
#     uint8 and float32-normalized;
#   - PyTorch's DataLoader (dataloader.py, num_workers 1..4, the best) when
#     /usr/bin/python3 has torch (Debian's python3-torch and
#     python3-torchvision, installed with apt-get when this runs as root);
#     otherwise it is left out, and said so.
#
#   bench/data/run.sh [BUILD_DIR]     (default build-bench, a Release build)
#
# Each peer also reports its CPU time per image (user and system): the
# pool's process, the DataLoader's driver and workers, Prism's driver and
# every process of its cluster during the run. On a machine shared with
# other work it varies far less than images/s.
#
# The pool and Prism on a warm cluster run ROUNDS times, alternately, so that
# both see the machine in the same minutes (on a shared VM a lone run of each,
# minutes apart, differed by up to 15 % either way); each is reported as the
# median of its rounds with [min - max], and so is the ratio of the two in
# each round. A fresh cluster's first dataset and the float32 one run once.
#
# Environment: N (images, default 2000), SIZE (default 256), CPUS (the
# cluster's CPUs, default nproc), ROUNDS (default 3), KEEP=1 (keep the work
# directory), HUGE=1
# (root: the object store's 512 MiB in huge pages, reserved for the run in
# /proc/sys/vm/nr_hugepages and given back; docs/objectstore.md#the-arena).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-bench}
N=${N:-2000}
SIZE=${SIZE:-256}
CPUS=${CPUS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
KEEP=${KEEP:-}
QUICK=""
PY=/usr/bin/python3
NAME=bench/data/run.sh
. bench/tasks/common.sh

bench_build 2 bench-data-build.log
bench_workdir prism-data-bench
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
say "writing $N JPEGs of ${SIZE}x$SIZE"
mkdir -p "$WORK/images"
"$BIN/prism-data-gen" "$WORK/images" "$N" "$SIZE"
sync # written back now, not during the runs

# CPU time (clock ticks, user and system) of every process of the cluster
# (prism-* and nats-server naming PRISM_HOME in their command line or
# environment), by PID.
cluster_ticks() {
  for p in /proc/[0-9]*; do
    if grep -qsE '^(prism-|nats-server)' "$p/comm" &&
      grep -qs "$PRISM_HOME" "$p/cmdline" "$p/environ"; then
      echo "${p#/proc/} $(cut -d')' -f2 "$p/stat" | awk '{print $12 + $13}')"
    fi
  done
}

# A Prism run, its cpu_s made the driver's plus the cluster's during it
# (workers started meanwhile count whole; a process that ended is missed);
# LABEL, when set, is added to its peer's name.
prism_step() {
  cluster_ticks | sort >"$WORK/cpu0"
  n=$(wc -l <"$RESULTS")
  : >"$WORK/store.jsonl"
  bench_sample_store_start "$WORK/store.jsonl"
  run_step 900 "$@"
  bench_sample_store_stop
  cluster_ticks | sort >"$WORK/cpu1"
  ticks=$(join -a2 "$WORK/cpu0" "$WORK/cpu1" | awk '{t += NF == 3 ? $3 - $2 : $2} END {print t + 0}')
  if [ "$(wc -l <"$RESULTS")" -gt "$n" ]; then
    $PY - "$RESULTS" "$ticks" "$(getconf CLK_TCK)" "$(bench_store_peak "$WORK/store.jsonl")" "${LABEL:-}" <<'PYEOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
r = json.loads(lines[-1])
r["cpu_s"] = round(r["cpu_s"] + int(sys.argv[2]) / int(sys.argv[3]), 3)
r["peer"] += sys.argv[5]
r.update(json.loads(sys.argv[4]))
lines[-1] = json.dumps(r)
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PYEOF
  fi
}

if [ -n "${HUGE:-}" ]; then
  HUGE_BEFORE=$(cat /proc/sys/vm/nr_hugepages)
  echo $((HUGE_BEFORE + 256)) >/proc/sys/vm/nr_hugepages
  trap 'bench_cleanup; echo "$HUGE_BEFORE" >/proc/sys/vm/nr_hugepages' EXIT
  UP_ARGS=--object-store-huge-pages
  say "the store in huge pages: $(grep HugePages_Free /proc/meminfo)"
fi
bench_cluster_up 1 "$CPUS"
P=$CPUS; [ "$P" -gt 2 ] && P=2
bench_cluster_settle 1 "$P" # --prestart-workers: min(2, CPUs)
LABEL=", a fresh cluster's first dataset" prism_step "$BIN/prism-data-ingest" "$WORK/images"
prism_step "$BIN/prism-data-ingest" "$WORK/images" normalize
# Then on the same cluster, whose workers have run before (on this VM a
# process's first touch of each page of memory costs about 5 us, so a fresh
# worker's first blocks run slower; bench/data/README.md), round by round
# with the pool
r=0
while [ "$r" -lt "$ROUNDS" ]; do
  run_step 900 "$BIN/prism-data-pool" "$WORK/images" "$CPUS"
  LABEL=", warm cluster" prism_step "$BIN/prism-data-ingest" "$WORK/images"
  r=$((r + 1))
done
bench_cluster_down
if ! $PY -c 'import torch, torchvision' 2>/dev/null && [ "$(id -u)" = 0 ]; then
  say "installing Debian's python3-torch and python3-torchvision"
  apt-get install -y python3-torch python3-torchvision >/dev/null 2>&1 ||
    say "apt-get install python3-torch python3-torchvision failed"
fi
if $PY -c 'import torch, torchvision' 2>/dev/null; then
  # num_workers swept 1..4 whatever the CPUs (more workers than CPUs can
  # still help: the driver process consumes meanwhile), the best reported
  run_step 1800 $PY bench/data/dataloader.py "$WORK/images" 4
  run_step 1800 $PY bench/data/dataloader.py "$WORK/images" 4 normalize
else
  say "PyTorch is not installed for $PY (Debian's python3-torch, python3-torchvision): DataLoader left out"
fi
bench_failed_logs

echo "image ingest: $N JPEGs ${SIZE}x$SIZE, $(nproc) CPUs, $ROUNDS rounds, load average at the start $LOAD0"
echo
$PY - "$RESULTS" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peers = {}  # peer -> its runs, in order
for r in rows:
    peers.setdefault(r["peer"], []).append(r)
def med(runs, f):
    return statistics.median(f(r) for r in runs)
def spread(runs, f, fmt):
    v = [f(r) for r in runs]
    return fmt % statistics.median(v) + ("" if len(v) == 1 else (" [" + fmt + " - " + fmt + "]") % (min(v), max(v)))
pool = next((runs for p, runs in peers.items() if p.startswith("C thread")), None)
ceiling = med(pool, lambda r: r["images_per_s"]) if pool else None
print("%-52s %26s %8s %8s %14s %10s %12s %14s" % ("peer", "images/s", "MB/s", "vs pool",
      "first batch s", "peak RSS", "CPU ms/image", "store peak MiB"))
for p, runs in peers.items():
    rel = "%.0f %%" % (100 * med(runs, lambda r: r["images_per_s"]) / ceiling) if ceiling else "-"
    cpu = spread(runs, lambda r: 1000 * r["cpu_s"] / r["images"], "%.2f") if all(
        r.get("cpu_s") and r["images"] for r in runs) else "-"
    store = str(max(r["store_peak_mib"] for r in runs)) if all("store_peak_mib" in r for r in runs) else "-"
    print("%-52s %26s %8.1f %8s %14.3f %7.1f MB %12s %14s" % (
        p + ("" if len(runs) == 1 else " (%d runs)" % len(runs)),
        spread(runs, lambda r: r["images_per_s"], "%.0f"), med(runs, lambda r: r["mb_per_s"]),
        rel, med(runs, lambda r: r["first_batch_s"]), max(r["peak_rss_mb"] for r in runs), cpu, store))
warm = next((runs for p, runs in peers.items() if p.endswith("warm cluster")), None)
if pool and warm and len(pool) == len(warm):
    ratios = [w["images_per_s"] / c["images_per_s"] for w, c in zip(warm, pool)]
    print()
    print("Prism, warm cluster / C thread pool, round by round: median %.0f %% [%.0f %% - %.0f %%]"
          % (100 * statistics.median(ratios), 100 * min(ratios), 100 * max(ratios)))
PYEOF
[ -z "$FAILED" ]
