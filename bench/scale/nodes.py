#!/usr/bin/python3
"""Many nodes on one machine: the first figure of the scalability envelope.

Starts a local cluster (`prism up`: nats-server, GCS, scheduler, node-1 with
its object store), then adds real prism-nodeagent processes until the cluster
has each count of NODES nodes. Every added agent offers 1 CPU, prestarts no
worker and shares node-1's object store (a store per agent would measure the
store, not the control plane). At each count it measures:

  - the time until every added node is ALIVE in the GCS;
  - over a steady window (no work): the CPU and resident memory of the GCS,
    the scheduler and nats-server, and heartbeats handled per second;
  - what one node agent costs: private memory, threads, open files;
  - the heartbeat round trip (agent -> NATS -> GCS -> agent), p50 and p99,
    from the agents' prism_nodeagent_heartbeat_seconds histograms;
  - TASKS trivial tasks with the SPREAD strategy (prism-scale-single
    spread): the rate, twice (the first run starts a worker on each node
    it reaches), how many nodes ran at least one, and the scheduler's lease
    answers meanwhile (prism_scheduler_lease_answer_seconds: p50, p99);
  - the time to notice a node killed with SIGKILL (its agent's heartbeats stop;
    the GCS's --node-timeout-ms, 10 s by default, bounds it from below).

Prints one Markdown table; the JSON of each count on stderr.

    bench/scale/nodes.py BUILD_DIR

BUILD_DIR is a Release build (`cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release
&& cmake --build build-rel -j2`); a sanitizer build is refused. Environment:
NODES (50,100,250), TASKS (2000), WINDOW (steady window in seconds, 10),
KEEP=1 keeps the work directory.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")


def say(*a):
    print("nodes.py:", *a, file=sys.stderr, flush=True)


def read(path):
    with open(path) as f:
        return f.read()


def cpu_seconds(pid):
    fields = read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def status_kib(pid, key):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def private_kib(pid):
    n = 0
    for line in read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            n += int(line.split()[1])
    return n


def cmdline(pid):
    return read(f"/proc/{pid}/cmdline").split("\0")


def flag(pid, name):
    for a in cmdline(pid):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def pids_of(program, home):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                args = cmdline(int(d))
            except OSError:
                continue
            if args and os.path.basename(args[0]) == program and any(home in a for a in args):
                out.append(int(d))
    return out


class Api:
    def __init__(self, url, token):
        self.url, self.token = url.rstrip("/"), token

    def get(self, path, url=None, text=False):
        req = urllib.request.Request((url or self.url) + path)
        req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read().decode()
        return body if text else json.loads(body)

    def nodes(self, state):
        out, cursor = [], None
        while True:
            q = f"/api/v1/nodes?state={state}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            doc = self.get(q)
            out += doc.get("items", doc.get("nodes", []))
            cursor = doc.get("next_cursor")
            if not cursor:
                return out


def metric_sum(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def buckets(text, name):
    """{le: cumulative count} of one histogram."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = int(line.rsplit(" ", 1)[1])
    return out


def quantile(diff, q):
    """The q quantile of a histogram (cumulative counts by bound), linear within a bucket."""
    bounds = sorted(diff)
    total = diff[bounds[-1]] if bounds else 0
    if not total:
        return None
    want, lo, prev = q * total, 0.0, 0
    for b in bounds:
        if diff[b] >= want:
            if b == float("inf"):
                return lo
            return lo + (b - lo) * (want - prev) / max(diff[b] - prev, 1)
        lo, prev = b, diff[b]
    return lo


class Cluster:
    def __init__(self, bin_dir, work):
        self.bin, self.work = bin_dir, work
        self.home = os.path.join(work, "home")
        self.env = dict(os.environ, PRISM_HOME=self.home)
        for k in ("PRISM_ADDRESS", "PRISM_TOKEN", "PRISM_NATS_URL", "PRISM_NODE_ID"):
            self.env.pop(k, None)
        self.agents = []  # Popen of the added agents

    def up(self):
        r = subprocess.run([f"{self.bin}/prism", "up", "--nodes", "1", "--num-cpus", "1"],
                           env=self.env, capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise SystemExit(f"prism up failed: {r.stdout}{r.stderr}")
        self.env["PRISM_STORE_SOCKET"] = f"{self.home}/nodes/node-1/objectstore.sock"
        self.token = read(f"{self.home}/token").strip()
        self.gcs = pids_of("prism-gcs", self.home)[0]
        self.scheduler = pids_of("prism-scheduler", self.home)[0]
        self.nats = pids_of("nats-server", self.home)[0]
        node1 = pids_of("prism-nodeagent", self.home)[0]
        self.gcs_url = flag(self.gcs, "address-file")
        self.gcs_url = read(self.gcs_url).strip()
        self.nats_url = flag(self.gcs, "nats-url")
        self.store_url = flag(node1, "store-address")
        self.api = Api(self.gcs_url, self.token)
        self.node1_url = read(f"{self.home}/run/node-1.address").strip()

    def add_agent(self):
        i = len(self.agents) + 2
        name = f"agent-{i}"
        d = f"{self.home}/nodes/{name}"
        os.makedirs(d, exist_ok=True)
        args = [f"{self.bin}/prism-nodeagent", "--host=127.0.0.1", "--port=0",
                f"--address-file={self.home}/run/{name}.address",
                f"--token-file={self.home}/token", f"--nats-url={self.nats_url}",
                f"--gcs-address={self.gcs_url}", f"--state-dir={d}",
                f"--store-socket={self.home}/nodes/node-1/objectstore.sock",
                f"--store-address={self.store_url}", f"--name={name}", "--num-cpus=1",
                "--prestart-workers=0", "--log-level=warn"]
        log = open(f"{self.home}/logs/{name}.log", "ab")
        p = subprocess.Popen(args, env=self.env, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        log.close()
        self.agents.append(p)

    def agent_url(self, p):
        try:
            return read(f"{self.home}/run/agent-{self.agents.index(p) + 2}.address").strip()
        except OSError:
            return None

    def down(self):
        for p in self.agents:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 30
        for p in self.agents:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run([f"{self.bin}/prism", "down"], env=self.env, capture_output=True,
                       timeout=120)


def agent_metrics(c, sample):
    texts = []
    for p in sample:
        url = c.agent_url(p)
        if url and p.poll() is None:
            try:
                texts.append(c.api.get("/metrics", url=url, text=True))
            except OSError:
                pass
    return texts


def heartbeat_hist(texts):
    total = {}
    for t in texts:
        for b, n in buckets(t, "prism_nodeagent_heartbeat_seconds").items():
            total[b] = total.get(b, 0) + n
    return total


def measure(c, n, tasks, window):
    out = {"nodes": n}
    t0 = time.monotonic()
    while len(c.agents) + 1 < n:
        c.add_agent()
    while True:
        alive = len(c.api.nodes("ALIVE"))
        if alive >= n:
            break
        if time.monotonic() - t0 > 600:
            raise SystemExit(f"only {alive} of {n} nodes ALIVE after 600 s")
        dead = [p for p in c.agents if p.poll() is not None]
        if dead:
            raise SystemExit(f"{len(dead)} node agents exited (see {c.home}/logs)")
        time.sleep(0.2)
    out["all_alive_s"] = round(time.monotonic() - t0, 2)
    time.sleep(3)

    # the steady window: nothing but heartbeats and resource reports
    sample = c.agents[-min(len(c.agents), 50):]
    h0 = heartbeat_hist(agent_metrics(c, sample))
    procs = {"gcs": c.gcs, "scheduler": c.scheduler, "nats": c.nats}
    cpu0 = {k: cpu_seconds(p) for k, p in procs.items()}
    beats0 = metric_sum(c.api.get("/metrics", text=True), "prism_gcs_heartbeats_total")
    w0 = time.monotonic()
    time.sleep(window)
    dt = time.monotonic() - w0
    beats1 = metric_sum(c.api.get("/metrics", text=True), "prism_gcs_heartbeats_total")
    for k, p in procs.items():
        out[f"{k}_cpu_pct"] = round(100 * (cpu_seconds(p) - cpu0[k]) / dt, 2)
        out[f"{k}_rss_mib"] = round(status_kib(p, "VmRSS") / 1024, 1)
    out["heartbeats_per_s"] = round((beats1 - beats0) / dt, 1)
    h1 = heartbeat_hist(agent_metrics(c, sample))
    diff = {b: h1.get(b, 0) - h0.get(b, 0) for b in h1}
    for q in (0.5, 0.99):
        v = quantile(diff, q)
        out[f"heartbeat_p{int(q * 100)}_ms"] = round(v * 1000, 3) if v is not None else None
    a = [p.pid for p in sample[:10] if p.poll() is None]
    out["agent_private_kib"] = int(statistics.median(private_kib(p) for p in a))
    out["agent_threads"] = int(statistics.median(status_kib(p, "Threads") for p in a))
    out["agent_fds"] = int(statistics.median(len(os.listdir(f"/proc/{p}/fd")) for p in a))

    # trivial tasks over every node, and the scheduler's answer times meanwhile
    sched_url = read(f"{c.home}/run/scheduler.address").strip()
    a0 = buckets(c.api.get("/metrics", url=sched_url, text=True),
                 "prism_scheduler_lease_answer_seconds")
    for run in ("spread_first", "spread_again"):
        r = subprocess.run([f"{c.bin}/prism-scale-single", "spread", str(tasks)], env=c.env,
                           capture_output=True, text=True, timeout=900)
        if r.returncode:
            raise SystemExit(f"prism-scale-single spread failed: {r.stderr}")
        doc = json.loads(r.stdout.strip().splitlines()[-1])
        out[f"{run}_per_s"] = round(tasks / doc["seconds"])
    a1 = buckets(c.api.get("/metrics", url=sched_url, text=True),
                 "prism_scheduler_lease_answer_seconds")
    diff = {b: a1.get(b, 0) - a0.get(b, 0) for b in a1}
    out["lease_answers"] = diff.get(float("inf"), 0)
    for q in (0.5, 0.99):
        v = quantile(diff, q)
        out[f"lease_answer_p{int(q * 100)}_ms"] = round(v * 1000, 3) if v is not None else None
    texts = agent_metrics(c, c.agents) + [c.api.get("/metrics", url=c.node1_url, text=True)]
    out["nodes_used"] = sum(metric_sum(t, "prism_nodeagent_leases_granted_total") > 0 for t in texts)

    # a node's death: SIGKILL its agent, time until the GCS says DEAD
    victim = c.agents[-1]
    vid = next((x["node_id"] for x in c.api.nodes("ALIVE") if x["name"] == f"agent-{len(c.agents) + 1}"),
               None)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    k0 = time.monotonic()
    while vid and time.monotonic() - k0 < 120:
        if c.api.get(f"/api/v1/nodes/{vid}")["state"] == "DEAD":
            out["dead_detected_s"] = round(time.monotonic() - k0, 2)
            break
        time.sleep(0.1)
    c.agents.pop()
    c.add_agent()  # back to n for the next count
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build-bench"
    cache = os.path.join(build, "CMakeCache.txt")
    if not os.path.exists(cache):
        raise SystemExit(f"{build} is not a build directory (see the usage in {__file__})")
    if "PRISM_SANITIZE:BOOL=ON" in read(cache):
        raise SystemExit(f"{build} is a sanitizer build; give a Release build directory")
    counts = [int(x) for x in os.environ.get("NODES", "50,100,250").split(",")]
    tasks = int(os.environ.get("TASKS", "2000"))
    window = float(os.environ.get("WINDOW", "10"))
    work = tempfile.mkdtemp(prefix="prism-bench-nodes.")
    c = Cluster(os.path.abspath(os.path.join(build, "bin")), work)
    rows, failed = [], False
    try:
        say(f"starting a local cluster in {work}")
        c.up()
        base = {"gcs": status_kib(c.gcs, "VmRSS"), "scheduler": status_kib(c.scheduler, "VmRSS")}
        for n in counts:
            say(f"growing to {n} nodes")
            row = measure(c, n, tasks, window)
            say(json.dumps(row))
            rows.append(row)
    except BaseException:
        failed = True
        raise
    finally:
        c.down()
        if os.environ.get("KEEP") or failed:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"bench/scale/nodes.py: {os.cpu_count()} CPUs, load average at the end "
          f"{read('/proc/loadavg').split()[0]}; GCS {base['gcs'] // 1024} MiB and scheduler "
          f"{base['scheduler'] // 1024} MiB resident with 1 node\n")
    cols = [("nodes", "nodes"), ("all ALIVE (s)", "all_alive_s"),
            ("GCS CPU %", "gcs_cpu_pct"), ("GCS RSS MiB", "gcs_rss_mib"),
            ("scheduler CPU %", "scheduler_cpu_pct"), ("scheduler RSS MiB", "scheduler_rss_mib"),
            ("nats CPU %", "nats_cpu_pct"), ("heartbeats/s", "heartbeats_per_s"),
            ("heartbeat p50 / p99 ms", None), ("agent private KiB / threads / fds", None),
            ("SPREAD tasks/s first / again", None), ("nodes used", "nodes_used"),
            ("lease answers, p50 / p99 ms", None),
            ("dead noticed (s)", "dead_detected_s")]
    print("| " + " | ".join(c[0] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = []
        for title, key in cols:
            if key:
                cells.append(str(r.get(key, "-")))
            elif title.startswith("heartbeat"):
                cells.append(f"{r['heartbeat_p50_ms']} / {r['heartbeat_p99_ms']}")
            elif title.startswith("lease"):
                cells.append(f"{r['lease_answers']}, {r['lease_answer_p50_ms']} / "
                             f"{r['lease_answer_p99_ms']}")
            elif title.startswith("agent"):
                cells.append(f"{r['agent_private_kib']} / {r['agent_threads']} / {r['agent_fds']}")
            else:
                cells.append(f"{r['spread_first_per_s']} / {r['spread_again_per_s']}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
