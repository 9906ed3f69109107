# shellcheck shell=sh
# Shell helpers shared by bench/tasks/run.sh and bench/actors/run.sh (sourced,
# from the repository root, with `set -eu`). The caller sets NAME (for
# messages), BUILD, PY, KEEP and QUICK before using them.

say() { echo "$NAME: $*" >&2; }

# Configures $BUILD as a Release build when it does not exist, refuses a
# sanitizer build (its numbers mean nothing) and builds it with $1 jobs,
# the log in $BUILD/$2.
bench_build() { # JOBS LOG_NAME
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    say "configuring $BUILD (Release)"
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  if grep -q '^PRISM_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt"; then
    say "$BUILD is a sanitizer build; give a Release build directory"
    exit 2
  fi
  say "building $BUILD"
  if ! cmake --build "$BUILD" -j"$1" >"$BUILD/$2" 2>&1; then
    tail -30 "$BUILD/$2" >&2
    exit 1
  fi
  BIN=$BUILD/bin
}

# Debian's python3-distributed for the Dask peer, installed with apt-get when
# it is missing and this runs as root; without it Dask is left out.
bench_need_dask() {
  if ! $PY -c 'import distributed' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      say "installing Debian's python3-distributed"
      apt-get install -y python3-distributed >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y python3-distributed >/dev/null 2>&1; } ||
        say "apt-get install python3-distributed failed: Dask is left out"
    else
      say "python3-distributed is missing (apt-get install python3-distributed as root): Dask is left out"
    fi
  fi
}

have_dask() { $PY -c 'import distributed' 2>/dev/null; }

# A work directory WORK with RESULTS (the JSON lines) and PRISM_HOME, removed
# at exit unless KEEP is set or a step failed; a cluster started with
# bench_cluster_up is stopped at exit too.
bench_workdir() { # PREFIX
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  RESULTS=$WORK/results.jsonl
  : >"$RESULTS"
  export PRISM_HOME="$WORK/home"
  unset PRISM_ADDRESS PRISM_TOKEN PRISM_NATS_URL PRISM_STORE_SOCKET PRISM_NODE_ID
  UP=""
  FAILED=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  if [ -n "$UP" ]; then "$BIN/prism" down >/dev/null 2>&1 || true; fi
  # bench/run-all.sh collects every run's JSON lines
  if [ -n "${BENCH_RESULTS_OUT:-}" ]; then cp "$RESULTS" "$BENCH_RESULTS_OUT" || true; fi
  if [ -n "$KEEP$FAILED" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}

# Runs a command bounded in time: its JSON lines go to RESULTS, the rest to
# stderr; a failure is remembered (the run exits non-zero at the end).
run_step() { # LIMIT_SECONDS COMMAND...
  limit=$1
  shift
  if ! timeout "$limit" "$@" >>"$RESULTS"; then
    say "failed: $*"
    FAILED=1
  fi
}

# `prism up` in PRISM_HOME; the driver's local object store in PRISM_STORE_SOCKET.
bench_cluster_up() { # NODES CPUS_PER_NODE
  say "starting a local cluster: $1 node(s), $2 CPUs each"
  # shellcheck disable=SC2086 # UP_ARGS: words for `prism up`
  "$BIN/prism" up --nodes "$1" --num-cpus "$2" ${UP_ARGS:-} >"$WORK/up.log" 2>&1 || {
    cat "$WORK/up.log" >&2
    FAILED=1
    exit 1
  }
  UP=1
  # where put values above the inline size go
  if [ -S "$PRISM_HOME/nodes/node-1/objectstore.sock" ]; then
    export PRISM_STORE_SOCKET="$PRISM_HOME/nodes/node-1/objectstore.sock"
  fi
}

# Waits (at most 30 s) until the scheduler sees every node of the cluster
# with WANT idle workers: the stores prefaulted, the prestarted workers up,
# so that a run measures the work and not the cluster's start.
bench_cluster_settle() { # NODES WANT
  url=$(cat "$PRISM_HOME/run/scheduler.address")
  token=$(cat "$PRISM_HOME/token")
  i=0
  while [ $i -lt 300 ]; do
    if curl -sf -H "Authorization: Bearer $token" "$url/api/v1/scheduler" |
      $PY -c 'import json, sys; n = json.load(sys.stdin)["nodes"]
sys.exit(0 if len(n) >= int(sys.argv[1]) and all(x["workers_idle"] >= int(sys.argv[2]) for x in n) else 1)' "$1" "$2"; then
      return 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  say "the cluster did not settle in 30 s: measuring anyway"
}

# Samples node-1's object store (used and spilled bytes) five times a second
# into OUT (JSON lines) from one process over one kept connection, until
# bench_sample_store_stop. Returns once the first sample is in, so that the
# sampler's start-up is not part of the run it watches. (A curl a sample
# took about 9 ms of CPU: 2 % of the image benchmark's two CPUs, taken from
# Prism's runs alone.)
bench_sample_store_start() { # OUT
  $PY - "$1" "$(cat "$PRISM_HOME/run/objectstore-node-1.address")" "$PRISM_HOME/token" <<'PYEOF' &
import http.client, sys, time, urllib.parse
out, url, token_file = sys.argv[1:4]
u = urllib.parse.urlsplit(url)
auth = {"Authorization": "Bearer " + open(token_file).read().strip()}
conn = None
with open(out, "a") as f:
    while True:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            conn.request("GET", "/api/v1/stats", headers=auth)
            f.write(conn.getresponse().read().decode() + "\n")
            f.flush()
        except (OSError, http.client.HTTPException):
            conn = None
        time.sleep(0.2)
PYEOF
  SAMPLER=$!
  i=0
  while [ ! -s "$1" ] && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
  done
}

bench_sample_store_stop() {
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
}

# The peak of those samples as JSON: {"store_peak_mib", "store_spilled_mib"}.
bench_store_peak() { # SAMPLES
  $PY - "$1" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
spilled = [r["spilled_bytes_total"] for r in rows] or [0]
print(json.dumps({"store_peak_mib": round(max((r["used_bytes"] for r in rows), default=0) / 2**20),
                  "store_spilled_mib": round((max(spilled) - min(spilled)) / 2**20)}))
PYEOF
}

bench_cluster_down() {
  "$BIN/prism" down >/dev/null 2>&1 || true
  UP=""
}

# The physical limits (prism-tasks-pingpong), short with QUICK.
bench_limits() {
  if [ -n "$QUICK" ]; then run_step 120 "$PP" --n 20000; else run_step 300 "$PP"; fi
}

# After a failed step: the end of every service's log.
bench_failed_logs() {
  if [ -n "$FAILED" ]; then
    for f in "$PRISM_HOME"/logs/*.log; do
      [ -f "$f" ] || continue
      say "--- tail of $f"
      tail -5 "$f" >&2
    done
  fi
}

# The first line of the report: the machine and the versions.
bench_header() { # WHAT NODES CPUS_PER_NODE
  echo "$1: $(nproc) CPUs, $(uname -sr), load average at the start $LOAD0," \
    "$2 node(s) of $3 CPUs;" \
    "Dask $($PY -c 'import distributed; print(distributed.__version__)' 2>/dev/null || echo absent)," \
    "Python $($PY -c 'import platform; print(platform.python_version())')"
  echo
}
