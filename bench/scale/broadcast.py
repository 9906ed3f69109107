#!/usr/bin/python3
"""Broadcast: one object read by a task on every node of a cluster, each node
in its network namespace on a bridge of its own (tests/cluster/netcluster.py),
each node's link shaped to RATE in both directions with tc (a token bucket on
both ends of its veth) so that a node's link, not this machine's CPUs, is what
a copy waits for, as on a real network.

A task pinned to node-1 makes a SIZE-byte tensor (the GCS, through which it
was submitted, owns it); then a task pinned to each other node takes it as its
argument and sums it: each node's worker has its store pull the object, as
any task's argument is fetched. Three figures, each on a fresh cluster:

  - one reader alone: the link's speed as a task's fetch sees it;
  - everyone from the first store (--max-uploads-per-object large: no store
    turns a puller away, so every pull is served by node-1, as before copies
    served pulls); the best this can do is (NODES - 1) x one copy;
  - the tree (the stores' default, one pull of an object served at once by
    each store; UPLOADS sets another): a finished copy serves the next pulls.

Each time runs from the readers' submission to the last sum's value. Needs
root (namespaces, tc). Prints one Markdown table.

    bench/scale/broadcast.py BUILD_DIR

BUILD_DIR is a Release build (a sanitizer build is refused). Environment:
NODES (8, at most 250), SIZE in MiB (256, a multiple of 64 KiB), RATE (tc
rate, 1gbit; "none": no shaping), UPLOADS (--max-uploads-per-object of the
tree run, 1).
"""
import json
import os
import sys
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

    def value(c, oid):
        """The task's value once it is READY."""
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            st, out = netcluster.rest(c.url + "/api/v1/objects/%s?timeout_ms=30000" % oid,
                                      c.token, timeout=45)
            o = json.loads(out)
            if st == 200 and o["state"] == "READY":
                return o["value"]
            if st != 202:  # 202: not ready yet
                raise SystemExit("task %s: %s %s" % (oid, st, o))
        raise SystemExit("task %s: no value in 900 s" % oid)

    def served_copies(c):
        """{node: copies its store has sent}"""
        out = {}
        for name, (_, url) in c.node_stores.items():
            r = c.http(url, "GET", "/api/v1/stats")
            out[name] = json.loads(r.body)["transfer_out_bytes_total"] // size
        return out

    def run(label, max_uploads, readers):
        say("%s: %d node(s) reading %d MiB, links %s" % (label, len(readers), size >> 20, rate))
        c = netcluster.NetCluster(nodes=nodes, objectstores=True, store_memory=memory,
                                  store_args=["--max-uploads-per-object", str(max_uploads)])
        try:
            shape(c)
            ids = {n["name"]: n["node_id"] for n in c.node_list("ALIVE")}
            on = lambda i: {"strategy": "NODE_AFFINITY", "node_id": ids["node-%d" % i]}  # noqa
            big = netcluster.submit_task(c.url, c.token, "zeros", [[size // 65536, 8192]], **on(1))
            v = value(c, big)
            if v.get("size") != size:
                raise SystemExit("the tensor on node-1: %s" % v)
            # every node's store must know the others (their agents' reports)
            time.sleep(2)
            before = served_copies(c)  # the owner's read of the value above, to leave out
            t0 = time.monotonic()
            sums = [netcluster.submit_task(c.url, c.token, "sum", [{"$ref": big}], **on(i))
                    for i in readers]
            for oid in sums:
                v = value(c, oid)
                if v != {"kind": "json", "value": 0}:
                    raise SystemExit("%s: a reader's sum: %s" % (label, v))
            total = time.monotonic() - t0
            after = served_copies(c)
            return total, {k: after[k] - before.get(k, 0) for k in after}
        finally:
            c.close(check=False)

    one, _ = run("one reader", 1024, [2])
    flat, flat_served = run("everyone from node-1", 1024, range(2, nodes + 1))
    tree, tree_served = run("tree", int(os.environ.get("UPLOADS", "1")), range(2, nodes + 1))
    mib = size >> 20
    print("broadcast.py: %d CPUs, load average %s; %d nodes, %d MiB, links %s\n"
          % (os.cpu_count(), open("/proc/loadavg").read().split()[0], nodes, mib, rate))
    print("| how | seconds | GiB/s delivered | copies served by node-1 / by others |")
    print("|---|---|---|---|")
    n = nodes - 1
    print("| one reader alone | %.2f | %.2f | 1 / 0 |" % (one, mib / 1024 / one))
    print("| %d nodes one after another (estimate: %d x one copy) | %.2f | %.2f | %d / 0 |"
          % (n, n, n * one, mib / 1024 / one, n))
    for name, t, served in (("everyone from node-1 at once", flat, flat_served),
                            ("tree: copies serve later pulls", tree, tree_served)):
        first = served.get("node-1", 0)
        print("| %s | %.2f | %.2f | %d / %d |" % (name, t, n * mib / 1024 / t, first,
                                                  sum(served.values()) - first))


if __name__ == "__main__":
    main()
