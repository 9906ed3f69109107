#!/usr/bin/python3
"""Broadcast: one object read on every node of a cluster, each node in its
network namespace on a bridge of its own (tests/cluster/netcluster.py), each
node's link shaped to RATE in both directions with tc (a token bucket on both
ends of its veth) so that a node's link, not this machine's CPUs, is what a
copy waits for, as on a real network.

node-1's store holds SIZE bytes; nodes 2..NODES pull it all at once through
their stores. Three figures, each on a fresh cluster:

  - one copy alone: the link's speed as a pull sees it;
  - everyone from the first store (--max-uploads-per-object large: no store
    turns a puller away, so every pull is served by node-1, as before copies
    served pulls); the best this can do is (NODES - 1) x one copy;
  - the tree (the stores' default, one pull of an object served at once by
    each store; UPLOADS sets another): a finished copy serves the next pulls.

Needs root (namespaces, tc). Prints one Markdown table.

    bench/scale/broadcast.py BUILD_DIR

BUILD_DIR is a Release build (a sanitizer build is refused). Environment:
NODES (8, at most 13), SIZE in MiB (256), RATE (tc rate, 1gbit; "none": no
shaping), UPLOADS (--max-uploads-per-object of the tree run, 1).
"""
import json
import os
import subprocess
import sys
import threading
import time


def say(*a):
    print("broadcast.py:", *a, file=sys.stderr, flush=True)


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-bench")
    cache = os.path.join(build, "CMakeCache.txt")
    if not os.path.exists(cache):
        raise SystemExit("%s is not a build directory" % build)
    with open(cache) as f:
        if "PRISM_SANITIZE:BOOL=ON" in f.read():
            raise SystemExit("%s is a sanitizer build; give a Release build directory" % build)
    if os.geteuid() != 0:
        raise SystemExit("broadcast.py needs root (network namespaces and tc)")
    os.environ["PRISM_BIN_DIR"] = os.path.join(build, "bin")
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "tests", "cluster"))
    import netcluster  # noqa: E402 (after PRISM_BIN_DIR: the harness reads it)

    nodes = int(os.environ.get("NODES", "8"))
    size = int(os.environ.get("SIZE", "256")) << 20
    rate = os.environ.get("RATE", "1gbit")
    memory = "%dMiB" % ((size >> 20) + 64)

    def shape(c):
        if rate == "none":
            return
        net = c.net
        for i in range(1, nodes + 1):
            tbf = ["tc", "qdisc", "add", "dev", None, "root", "tbf", "rate", rate, "burst",
                   "256kb", "latency", "100ms"]
            tbf[4] = net.host_veth(i)
            netcluster.sh(*tbf)
            tbf[4] = "pr%dc%d" % (net.pid, i)
            netcluster.sh("ip", "netns", "exec", net.ns(i), *tbf)

    def pull(c, i, oid, source, out):
        url = c.node_stores["node-%d" % i][1]
        t0 = time.monotonic()
        r = c.http(url, "POST", "/api/v1/objects/%s/pull" % oid,
                   json.dumps({"source": source, "timeout_ms": 600000}).encode(),
                   {"Content-Type": "application/json"}, timeout=900)
        out[i] = (r.status, time.monotonic() - t0)

    def run(label, max_uploads, pullers):
        say("%s: %d node(s) pulling %d MiB, links %s" % (label, len(pullers), size >> 20, rate))
        c = netcluster.NetCluster(nodes=nodes, objectstores=True, store_memory=memory,
                                  store_args=["--max-uploads-per-object", str(max_uploads)])
        try:
            shape(c)
            oid = "b0" * 20
            sock = os.path.join(c.dir, "nodes", "node-1", "store.sock")
            r = subprocess.run([os.path.join(build, "bin", "prism-objectstore-testclient"), sock,
                                "put", oid, str(size), "9", "pin"], capture_output=True, text=True,
                               timeout=600)
            if r.returncode:
                raise SystemExit("the put on node-1 failed: %s%s" % (r.stdout, r.stderr))
            source = c.node_stores["node-1"][1]
            # every node's store must know the others (their agents' reports)
            time.sleep(2)
            out = {}
            t0 = time.monotonic()
            threads = [threading.Thread(target=pull, args=(c, i, oid, source, out))
                       for i in pullers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            total = time.monotonic() - t0
            bad = {i: r for i, r in out.items() if r[0] != 200}
            if bad or len(out) != len(pullers):
                raise SystemExit("%s: pulls failed: %s" % (label, bad or out))
            served = {}
            for name, (_, url) in c.node_stores.items():
                r = c.http(url, "GET", "/api/v1/stats")
                served[name] = json.loads(r.body)["transfer_out_bytes_total"] // size
            return total, served
        finally:
            c.close(check=False)

    one, _ = run("one copy", 1024, [2])
    flat, flat_served = run("everyone from node-1", 1024, range(2, nodes + 1))
    tree, tree_served = run("tree", int(os.environ.get("UPLOADS", "1")), range(2, nodes + 1))
    mib = size >> 20
    print("broadcast.py: %d CPUs, load average %s; %d nodes, %d MiB, links %s\n"
          % (os.cpu_count(), open("/proc/loadavg").read().split()[0], nodes, mib, rate))
    print("| how | seconds | GiB/s delivered | copies served by node-1 / by others |")
    print("|---|---|---|---|")
    n = nodes - 1
    print("| one copy alone | %.2f | %.2f | 1 / 0 |" % (one, mib / 1024 / one))
    print("| %d nodes one after another (estimate: %d x one copy) | %.2f | %.2f | %d / 0 |"
          % (n, n, n * one, mib / 1024 / one, n))
    for name, t, served in (("everyone from node-1 at once", flat, flat_served),
                            ("tree: copies serve later pulls", tree, tree_served)):
        first = served.get("node-1", 0)
        print("| %s | %.2f | %.2f | %d / %d |" % (name, t, n * mib / 1024 / t, first,
                                                  sum(served.values()) - first))


if __name__ == "__main__":
    main()
