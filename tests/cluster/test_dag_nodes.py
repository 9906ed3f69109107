#!/usr/bin/python3
"""Compiled DAGs across two nodes in their own network namespaces, the driver
in node 1's namespace. With the actors on nodes 2, 1, 2, 2, the input, the
output and every hop that crosses the nodes are TCP edges (the driver's
rendezvous socket is unreachable from node 2, and each worker listens on its
node's address), and the hop between the two actors of node 2 is a
shared-memory ring that node 2's writer made. With every actor on node 2
(a chain of two, or one actor read by two), the hops between them are
shared memory too. Every result is checked, the listing shows
each edge's kind, and teardown leaves the workers no socket, channel fd or
thread more than before the compile."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import BIN, run, skip, wait_until  # noqa: E402
from test_dags import read_until, tcp_sockets  # noqa: E402 (tests/integration, on the path)

PROBE = os.path.join(BIN, "dag_probe")


def memfds(pid):
    """How many channel segments (memfds) process `pid` holds."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += "memfd:prism-channel" in os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return n


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def test_dag_across_namespaces(c):
    nodes = {n["name"]: n["node_id"] for n in c.node_list("ALIVE")}
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token, PRISM_NODE_ID=nodes["node-1"])
    env.pop("PRISM_HOME", None)
    before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
    n = 2000
    p = subprocess.Popen(["ip", "netns", "exec", c.net.ns(1), PROBE, "nodes", nodes["node-1"],
                          nodes["node-2"], str(n), "8"], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        out = read_until(p, "ready")
        pids = sorted({int(l.split()[1]) for l in out.splitlines() if l.startswith("pid ")})
        ready = {pid: tcp_sockets(pid) for pid in pids}
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "compiled")
        def listed():
            return [d for d in c.get("/api/v1/dags").json()["dags"] if d["id"] not in before]

        wait_until(listed, timeout=10, what="the DAG listed")
        mine = listed()
        kinds = ["tcp", "tcp", "tcp", "shm"]  # the last hop stays on node 2
        assert len(mine) == 1 and [e["kind"] for e in mine[0]["edges"]] == kinds, mine
        for pid in pids:  # no DAG listener left once the edges are connected
            listening = [s for s in tcp_sockets(pid).values() if s[0] == "0A"]
            assert len(listening) == len([s for s in ready[pid].values() if s[0] == "0A"]), pid
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "executed")
        def hops_counted():
            d = c.get("/api/v1/dags/" + mine[0]["id"]).json()
            return ([e["latency"]["count"] for e in d["edges"]] +
                    [h["count"] for h in d["output_latency"]] +
                    [(l["state"], l["executions"]) for l in d["loops"]])
        # every hop's latency, the TCP edges' and the rings' of node 2 too
        # (counted by their readers' workers), and every actor's loop
        timed = (n + 7) // 8
        want = [timed] * (4 + 1) + [("RUNNING", n)] * 4
        wait_until(lambda: hops_counted() == want, timeout=10,
                   what="every hop's latency and every loop in the listing")
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "torn down")
        for pid in pids:
            left = set(tcp_sockets(pid)) - set(ready[pid])
            assert not left, (pid, left)
        out = p.communicate("go\n", timeout=60)[0]
        assert p.returncode == 0 and "nodes ok: %d executions" % n in out, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def on_node_2(c, shape, edges, outputs):
    """Runs the probe's `nodes` with every actor on node 2 (`shape`: its
    WHERE and graph arguments) and the driver on node 1: the listing shows
    `edges` (from, to, kind), every hop's latency is counted (the rings of
    node 2 and the TCP edges by their readers' workers, the `outputs` hops
    by the driver) and every loop runs; each ring is mapped by its writer
    and its readers only; teardown leaves the workers no memfd, thread or
    socket more than before."""
    nodes = {n["name"]: n["node_id"] for n in c.node_list("ALIVE")}
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token, PRISM_NODE_ID=nodes["node-1"])
    env.pop("PRISM_HOME", None)
    before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
    n = 5000
    p = subprocess.Popen(["ip", "netns", "exec", c.net.ns(1), PROBE, "nodes", nodes["node-1"],
                          nodes["node-2"], str(n), "8"] + shape, env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        out = read_until(p, "ready")
        pids = sorted({int(l.split()[1]) for l in out.splitlines() if l.startswith("pid ")})
        assert len(pids) == len(shape[0]), out
        ready = {pid: (tcp_sockets(pid), memfds(pid), threads(pid)) for pid in pids}
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "compiled")

        def listed():
            return [d for d in c.get("/api/v1/dags").json()["dags"] if d["id"] not in before]

        wait_until(listed, timeout=10, what="the DAG listed")
        mine = listed()
        assert len(mine) == 1 and [(e["from"], e["to"], e["kind"])
                                   for e in mine[0]["edges"]] == edges, mine
        # One ring (the first actor's output): its writer made it, each
        # reader fetched it; nobody else maps it.
        assert [memfds(pid) - ready[pid][1] for pid in pids] == [1] * len(pids), pids
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "executed")

        def hops_counted():
            d = c.get("/api/v1/dags/" + mine[0]["id"]).json()
            return ([e["latency"]["count"] for e in d["edges"]] +
                    [h["count"] for h in d["output_latency"]] +
                    [(l["state"], l["executions"]) for l in d["loops"]])

        timed = (n + 7) // 8
        want = [timed] * (len(edges) + outputs) + [("RUNNING", n)] * len(pids)
        wait_until(lambda: hops_counted() == want, timeout=10,
                   what="every hop's latency and every loop in the listing")
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "torn down")
        for pid in pids:
            sockets, fds, nthreads = ready[pid]
            assert not set(tcp_sockets(pid)) - set(sockets), pid
            assert memfds(pid) == fds and threads(pid) == nthreads, (pid, memfds(pid),
                                                                       threads(pid), ready[pid])
        out = p.communicate("go\n", timeout=120)[0]
        assert p.returncode == 0 and "nodes ok: %d executions" % n in out, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_shm_on_another_node(c):
    """driver (node 1) -> a (node 2) -> b (node 2) -> driver: the hop a -> b
    is a shared-memory ring made by a's worker and handed to b's over its
    own rendezvous socket (node 2's namespace: the driver's is unreachable
    from there); results exact for N executions with 8 in flight."""
    on_node_2(c, ["BB"], [(0, 1, "tcp"), (1, 2, "shm")], 1)


def test_fanout_on_another_node(c):
    """driver (node 1) -> a (node 2) -> b and c (node 2) -> driver: a's one
    ring has two readers, each fetching it from a's worker with a nonce of
    its own; both results exact for N executions."""
    on_node_2(c, ["BBB", "spread"], [(0, 1, "tcp"), (1, 2, "shm"), (1, 3, "shm")], 2)


if __name__ == "__main__":
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    run([test_dag_across_namespaces, test_shm_on_another_node, test_fanout_on_another_node],
        nodes=2)
