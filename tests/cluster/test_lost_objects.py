#!/usr/bin/python3
"""Objects lost with their node after the tasks that take them were submitted,
every node in its own network namespace: the owner learns of the loss from
the worker that could not read the argument, makes it again from its lineage
and runs the task again, and the application sees the right result.

- A task pushed to node-3's worker (waiting there behind a sleep) takes a
  result stored on node-2; node-2 is killed before the task reads it.
- A seeded random_shuffle (the stage making its blocks fused into its
  maps): a node holding parts some maps stored is killed while the last
  block is made, so that the reduces are submitted before
  the node's death is known (the GCS's node timeout is 6 s here) and find
  those parts gone. The dataset finishes with the same rows, in the
  same order, as a run without the kill."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import BIN, run, skip, wait_until  # noqa: E402
from test_datasets import PACKAGE, dataset, fn, post, rows, upload_package  # noqa: E402

PROBE = os.path.join(BIN, "task_probe")


def node_ids(c):
    return {n["name"]: n["node_id"] for n in c.node_list("ALIVE")}


def test_argument_lost_after_the_push(c):
    nodes = node_ids(c)
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_NODE_ID=nodes["node-1"],
               PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", "node-1", "store.sock"))
    env.pop("PRISM_HOME", None)
    p = subprocess.Popen(["ip", "netns", "exec", c.net.ns(1), PROBE, "lostpushed",
                          nodes["node-2"], nodes["node-3"]], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        if line != "pushed":
            p.wait(timeout=60)
            err = p.stderr.read()
            raise AssertionError((line, [e for e in err.splitlines() if e.startswith("probe")]
                                  or err[-3000:]))
        t0 = time.monotonic()
        c.kill_node("node-2")
        # the sum's worker reads its argument once the 4 s sleep ends: after this
        assert time.monotonic() - t0 < 3, "node-2 took too long to kill"
        out, err = p.communicate("go\n", timeout=150)
        assert p.returncode == 0 and "lostpushed ok" in out, (out, err[-3000:])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def parts_on(c):
    """{node name: stored objects of 100-400 KB (parts, not blocks)} of the
    live nodes that are not making a block now (a free CPU)."""
    alive = {n["node_id"]: n for n in c.node_list("ALIVE")}
    out = {}
    for o in c.get("/api/v1/objects?state=READY&limit=1000").json()["objects"]:
        n = alive.get(o.get("node_id"))
        if o["location"] == "store" and 100 << 10 < o["size"] < 400 << 10 and n and \
                n["available"].get("CPU", 0) >= 1:
            out[n["name"]] = out.get(n["name"], 0) + 1
    return out


def test_node_lost_mid_shuffle(c):
    # Parts of 20,000 int64 rows (160 KB): kept in the stores, not inline.
    n, blocks = 320000, 4
    c.start_dataservice(("--preview-rows", str(n)))
    pkg = upload_package(c)
    ops = [{"op": "range", "n": n, "override_num_blocks": blocks},
           {"op": "map_batches", "fn": fn(pkg, "slow", ms=3000), "batch_size": None},
           {"op": "random_shuffle", "seed": 9}]
    want = [r["id"] for r in rows(c, post(c, {"ops": ops})["dataset_id"], n)]
    assert sorted(want) == list(range(n))
    wait_until(lambda: not parts_on(c), what="the first run's parts gone from the object list")
    did = post(c, {"ops": ops})["dataset_id"]

    # Three nodes of one CPU: three blocks are made and mapped, the fourth
    # is being made (3 s) when a node holding parts goes; the reduces start
    # after it, before the GCS declares the node dead (6 s).
    def a2a(d):
        return [s for s in d["stages"] if s["kind"] == "all_to_all"][0]

    def maps_done(d):
        return d["state"] not in ("PENDING", "RUNNING") or (
            d["state"] == "RUNNING" and a2a(d)["tasks_done"] >= blocks - 1)

    wait_until(lambda: maps_done(dataset(c, did)), timeout=60, interval=0.02,
               what="%d maps of the shuffle done" % (blocks - 1))
    holders = wait_until(lambda: parts_on(c), timeout=10, what="parts listed on an idle node")
    victim = max(holders, key=holders.get)
    d = dataset(c, did)
    assert d["state"] == "RUNNING" and a2a(d)["tasks_done"] < blocks, d
    c.kill_node(victim)
    got = [r["id"] for r in rows(c, did, n)]
    info = dataset(c, did)
    assert info["state"] == "FINISHED", info
    assert got == want, [(i, a, b) for i, (a, b) in enumerate(zip(got, want)) if a != b][:5]
    print("  %s killed holding %d parts; %d all-to-all tasks done" % (
        victim, holders[victim], a2a(info)["tasks_done"]))


test_node_lost_mid_shuffle.cluster = {"node_timeout_ms": 6000}


if __name__ == "__main__":
    for exe in (PROBE, os.path.join(BIN, "prism-worker"), os.path.join(BIN, "prism-objectstore"),
                os.path.join(BIN, "prism-dataservice")):
        if not os.access(exe, os.X_OK):
            skip("%s is not built" % exe)
    if not os.path.exists(PACKAGE):
        skip("the test package %s is not built" % PACKAGE)
    run([test_argument_lost_after_the_push, test_node_lost_mid_shuffle], nodes=3,
        objectstores=True)
