#!/usr/bin/python3
"""The scalability envelope's small versions, so that a regression in the
control plane's scaling fails CI (bench/scale/ measures the full figures).

Many real node agents on one machine join one GCS and scheduler, as in
bench/scale/nodes.py: each offers 1 CPU and shares node-1's object store (a
store per agent would test the store, not the control plane). Every wait has a
deadline: a control plane that got much slower per node or per actor misses
it and the case fails. The deadlines are loose (sanitizer builds, 2 shared
CPUs); the benchmark, not this test, says how fast it is.

The integration harness's loopback cluster, not network namespaces: this
needs no root."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import BIN, run, skip, wait_until  # noqa: E402

PROGRAM = os.path.join(BIN, "prism-scale-single")
NODES = 50
ACTORS = 500
NODE_TIMEOUT_MS = 5000


def add_agents(c, count, max_workers):
    """count more node agents sharing node-1's object store; their Procs."""
    store = ["--store-socket", os.path.join(c.dir, "nodes", "node-1", "objectstore.sock"),
             "--store-address", c.store_addresses["node-1"]]
    return [c.start_node("agent-%d" % i, "--num-cpus", "1", "--prestart-workers", "0",
                         "--max-workers", str(max_workers), "--heartbeat-ms", "1000",
                         "--log-level", "info", *store, objectstore=False)
            for i in range(2, count + 2)]


def nodes_alive(c):
    return c.get("/api/v1/cluster").json()["nodes_alive"]


def scale(c, case, n, timeout):
    """prism-scale-single CASE N as a driver of this cluster: its JSON lines."""
    if not os.access(PROGRAM, os.X_OK):
        skip("prism-scale-single is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", "node-1", "objectstore.sock"))
    env.pop("PRISM_HOME", None)
    r = subprocess.run([PROGRAM, case, str(n)], env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, "%s %d failed (%d):\n%s\n%s" % (case, n, r.returncode, r.stdout,
                                                             r.stderr[-4000:])
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines and lines[-1]["n"] == n, r.stdout
    return lines


def test_fifty_nodes(c):
    t0 = time.monotonic()
    agents = add_agents(c, NODES - 1, 4)
    wait_until(lambda: nodes_alive(c) == NODES, timeout=60, what="%d nodes ALIVE" % NODES)
    print("  %d nodes ALIVE after %.1f s" % (NODES, time.monotonic() - t0), flush=True)
    # every node listed, paged
    names, cursor = set(), None
    while True:
        q = "/api/v1/nodes?state=ALIVE&limit=20" + ("&cursor=" + cursor if cursor else "")
        page = c.get(q).json()
        names |= {n["name"] for n in page["nodes"]}
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert names == {"node-1"} | {"agent-%d" % i for i in range(2, NODES + 1)}, sorted(names)
    # trivial tasks with SPREAD over them all: every value right
    scale(c, "spread", 1000, timeout=300)
    # placement groups placed over them and removed
    scale(c, "pgs", 500, timeout=300)
    # a node killed outright is noticed within the GCS's node timeout (and some slack)
    victim = agents[-1]
    os.kill(victim.p.pid, signal.SIGKILL)
    victim.p.wait()
    t1 = time.monotonic()
    wait_until(lambda: nodes_alive(c) == NODES - 1, timeout=NODE_TIMEOUT_MS / 1000 + 30,
               what="the killed node noticed")
    print("  a killed node noticed after %.1f s" % (time.monotonic() - t1), flush=True)
    dead = c.get("/api/v1/nodes?state=DEAD").json()["nodes"]
    assert [n["name"] for n in dead] == ["agent-%d" % NODES], dead


test_fifty_nodes.cluster = {"node_timeout_ms": NODE_TIMEOUT_MS}


def test_five_hundred_actors(c):
    # 500 actors, each a worker process: 20 nodes of at most 32 workers
    add_agents(c, 19, 32)
    wait_until(lambda: nodes_alive(c) == 20, timeout=60, what="20 nodes ALIVE")
    t0 = time.monotonic()
    scale(c, "actors", ACTORS, timeout=300)
    print("  %d actors created and called in %.1f s" % (ACTORS, time.monotonic() - t0), flush=True)
    # every actor listed, ALIVE
    alive, cursor = 0, None
    while True:
        q = "/api/v1/actors?state=ALIVE&limit=200" + ("&cursor=" + cursor if cursor else "")
        page = c.get(q).json()
        alive += len(page["actors"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert alive == ACTORS, alive


# A node is dead after 30 s without a heartbeat, not the harness's 3 s: 500 workers under the
# sanitizers on 2 CPUs delayed heartbeats past 3 s once, and the GCS declared nodes dead with
# their actors (this case is about actors at scale; test_fifty_nodes covers node death).
test_five_hundred_actors.cluster = {"node_args": ["--max-workers", "32"],
                                    "node_timeout_ms": 30000}


if __name__ == "__main__":
    run([test_fifty_nodes, test_five_hundred_actors])
