#!/usr/bin/python3
"""A compiled DAG across two nodes in their own network namespaces: the
driver runs in node 1's namespace, the actors on nodes 2, 1, 2, 2, so the
input, every hop and the output are TCP edges between the namespaces (the
driver's rendezvous socket is unreachable from node 2, and each worker
listens on its node's address). Every result is checked, the listing shows
the edges as tcp, and teardown leaves the workers no socket more than
before the compile."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import BIN, run, skip, wait_until  # noqa: E402
from test_dags import read_until, tcp_sockets  # noqa: E402 (tests/integration, on the path)

PROBE = os.path.join(BIN, "dag_probe")


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
        assert len(mine) == 1 and [e["kind"] for e in mine[0]["edges"]] == ["tcp"] * 4, mine
        for pid in pids:  # no DAG listener left once the edges are connected
            listening = [s for s in tcp_sockets(pid).values() if s[0] == "0A"]
            assert len(listening) == len([s for s in ready[pid].values() if s[0] == "0A"]), pid
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


if __name__ == "__main__":
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    run([test_dag_across_namespaces], nodes=2)
