#!/usr/bin/python3
"""The image-ingest pipeline on 1, 2, ... nodes (issue 10's scaling figure):
each node in its network namespace on a bridge of its own
(tests/cluster/netcluster.py) with its object store, and each node's
processes held to CPUs of their own (the node agent, its store and every
worker it starts inherit the affinity), so that adding a node adds CPUs as on
a real cluster. The consumer, prism-data-ingest (read_binary_files -> decode
-> random crop 224 -> flip -> batches of 256, touching every byte), runs on
node 1; the head (nats-server, GCS, scheduler, dataservice) is not pinned.

With SHARE=1 the machine's CPU time is split evenly instead: each node
(its processes, and the consumer on node 1) in a cgroup of its own whose
CFS quota is the machine's CPUs / the largest count of nodes, so that three
nodes can be measured on two CPUs (two thirds of a CPU each), and one node
has as much as each of three.

For each count of nodes it reports the images/s of the consumer, and which
nodes ran the stages' tasks (from the tasks the owners report to the GCS).

    bench/data/nodes.py BUILD_DIR

BUILD_DIR is a Release build (a sanitizer build is refused). Needs root (as
tests/cluster does). Environment: NODES (counts, "1,2"), N (images, 2000),
SIZE (256), CPUS_PER_NODE (1; nodes x this must not pass the machine's CPUs),
SHARE (1: CPU time split by cgroup quotas, as above, cgroup v1 or v2).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def say(*a):
    print("nodes.py:", *a, file=sys.stderr, flush=True)


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-bench")
    cache = os.path.join(build, "CMakeCache.txt")
    if not os.path.exists(cache):
        raise SystemExit("%s is not a build directory" % build)
    with open(cache) as f:
        if "PRISM_SANITIZE:BOOL=ON" in f.read():
            raise SystemExit("%s is a sanitizer build; give a Release build directory" % build)
    if os.geteuid() != 0:
        raise SystemExit("nodes.py needs root (network namespaces)")
    os.environ["PRISM_BIN_DIR"] = bindir = os.path.join(build, "bin")
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "tests", "cluster"))
    import netcluster  # noqa: E402 (after PRISM_BIN_DIR: the harness reads it)

    counts = [int(x) for x in os.environ.get("NODES", "1,2").split(",")]
    n, size = int(os.environ.get("N", "2000")), int(os.environ.get("SIZE", "256"))
    per = int(os.environ.get("CPUS_PER_NODE", "1"))
    share = os.environ.get("SHARE") == "1"
    quota = os.cpu_count() / max(counts)  # SHARE: CPUs of time a node
    if not share and max(counts) * per > os.cpu_count():
        raise SystemExit("%d nodes of %d CPUs need more than this machine's %d"
                         % (max(counts), per, os.cpu_count()))
    work = tempfile.mkdtemp(prefix="prism-bench-data-nodes.")
    os.chmod(work, 0o755)
    images = os.path.join(work, "images")
    os.makedirs(images)
    say("writing %d JPEGs of %dx%d" % (n, size, size))
    subprocess.run([os.path.join(bindir, "prism-data-gen"), images, str(n), str(size)],
                   check=True, stdout=subprocess.DEVNULL)

    def cpus(i):
        return set(range((i - 1) * per, i * per))

    # SHARE: a cgroup a node with its CPU quota (v2 if mounted, else v1's cpu)
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    cg_root = "/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/cpu"

    cg_name = "prism-bench-nodes-%d-" % os.getpid()

    def cgroup(i):
        return os.path.join(cg_root, cg_name + str(i))

    def cg_make(k):
        if v2:
            with open(os.path.join(cg_root, "cgroup.subtree_control"), "w") as f:
                f.write("+cpu")
        for i in range(1, k + 1):
            os.makedirs(cgroup(i), exist_ok=True)
            if v2:
                with open(os.path.join(cgroup(i), "cpu.max"), "w") as f:
                    f.write("%d 100000" % int(quota * 100000))
            else:
                with open(os.path.join(cgroup(i), "cpu.cfs_period_us"), "w") as f:
                    f.write("100000")
                with open(os.path.join(cgroup(i), "cpu.cfs_quota_us"), "w") as f:
                    f.write(str(int(quota * 100000)))

    def cg_remove(k):
        for i in range(1, k + 1):
            for _ in range(50):  # its last processes may take a moment to go
                try:
                    os.rmdir(cgroup(i))
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)

    def pin(c, k):
        for i in range(1, k + 1):
            for pid in c.net.ns_pids(i):
                try:
                    if share:
                        with open(os.path.join(cgroup(i), "cgroup.procs"), "w") as f:
                            f.write(str(pid))
                    else:
                        os.sched_setaffinity(pid, cpus(i))
                except OSError:
                    pass  # gone meanwhile

    def tasks_by_node(c):
        """{node name: [tasks, workers]} of the tasks the owners reported
        (they report every failure and successes up to a rate: a sample)."""
        time.sleep(2)  # owners report in batches
        names = {x["node_id"]: x["name"] for x in c.node_list()}
        st, body = netcluster.rest(c.url + "/api/v1/tasks?limit=1000", c.token)
        out = {}
        for t in json.loads(body).get("tasks", []):
            name = names.get(t.get("node_id"), "?")
            n, workers = out.setdefault(name, [0, set()])
            out[name][0] += 1
            workers.add(t.get("worker_id"))
        return {k: [v[0], len(v[1])] for k, v in out.items()}

    rows = []
    try:
        for k in counts:
            say("%d node(s) of %s CPU(s)" % (k, "%.2f" % quota if share else per))
            if share:
                cg_make(k)
            c = netcluster.NetCluster(nodes=k, objectstores=True, store_memory="1GiB",
                                      node_args=["--num-cpus", str(per)])
            try:
                c.start_dataservice()
                pin(c, k)
                env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
                           PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", "node-1", "store.sock"))
                env.pop("PRISM_HOME", None)
                cpu = ",".join(str(x) for x in sorted(cpus(1)))
                t0 = time.monotonic()
                def join_node_1():  # before `ip netns exec`, which hides /sys/fs/cgroup
                    with open(os.path.join(cgroup(1), "cgroup.procs"), "w") as f:
                        f.write(str(os.getpid()))
                r = subprocess.run(["ip", "netns", "exec", c.net.ns(1)] +
                                   ([] if share else ["taskset", "-c", cpu]) +
                                   [os.path.join(bindir, "prism-data-ingest"), images],
                                   env=env, capture_output=True, text=True, timeout=1800,
                                   preexec_fn=join_node_1 if share else None)
                if r.returncode:
                    raise SystemExit("prism-data-ingest on %d node(s) failed: %s" % (k, r.stderr))
                doc = json.loads(r.stdout.strip().splitlines()[-1])
                doc.update(nodes=k, wall_s=round(time.monotonic() - t0, 2),
                           tasks=tasks_by_node(c))
                say(json.dumps(doc))
                rows.append(doc)
            finally:
                c.close(check=False)
                if share:
                    cg_remove(k)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0]["images_per_s"] / rows[0]["nodes"] if rows else 1
    print("image ingest on namespaced nodes: %d JPEGs %dx%d, %s per node, %d CPUs, "
          "load average at the end %s\n" % (
              n, size, size, "%.2f CPU of time (quota)" % quota if share else "%d CPU(s)" % per,
              os.cpu_count(), open("/proc/loadavg").read().split()[0]))
    print("| nodes | images/s | vs 1 node | first batch s | tasks reported (workers) per node |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| %d | %.0f | %.2f× | %.2f | %s |" % (
            r["nodes"], r["images_per_s"], r["images_per_s"] / base, r["first_batch_s"],
            ", ".join("%s %d (%d)" % (k, v[0], v[1]) for k, v in sorted(r["tasks"].items()))))


if __name__ == "__main__":
    main()
