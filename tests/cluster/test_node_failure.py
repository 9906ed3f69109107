#!/usr/bin/python3
"""Losing a node for real: its processes killed, or its link cut (past the
GCS's node timeout, and briefly). Every node is in its own network namespace."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import run, wait_until  # noqa: E402

TIMEOUT_MS = 3000


def running_on(c, name, cmd="sleep 600"):
    i = c.node_index(name)
    jid = c.submit(cmd, resources={"on_node_%d" % i: 1})
    j = c.wait_job(jid, states=("RUNNING",), timeout=20)
    assert c.node_by_id(j["node_id"])["name"] == name, j
    return j


def wait_dead(c, node_id, timeout=TIMEOUT_MS / 1000 + 10):
    return wait_until(lambda: (lambda n: n if n["state"] == "DEAD" else None)(c.node_by_id(node_id)),
                      timeout=timeout, what="node %s DEAD" % node_id)


def test_node_killed(c):
    """Every process of node-2 is SIGKILLed: node DEAD, its job FAILED with a
    message, new work goes to the other nodes; a new agent with the same name
    is a new incarnation and takes work again."""
    victim = running_on(c, "node-2")
    bystander = running_on(c, "node-1", "sleep 4")
    old_id = victim["node_id"]
    t0 = time.time()
    c.kill_node("node-2")
    dead = wait_dead(c, old_id)
    took = time.time() - t0
    assert took >= TIMEOUT_MS / 1000 - 0.5, "declared dead after %.1fs" % took
    assert dead["message"], dead
    j = c.wait_job(victim["job_id"], timeout=10)
    assert j["state"] == "FAILED" and "died" in j["message"] and old_id in j["message"], j
    assert c.get("/api/v1/cluster").json()["nodes_alive"] == 2
    # new jobs land on the two live nodes only
    ids = [c.submit("echo ok", resources={"CPU": 1}) for _ in range(4)]
    for jid in ids:
        j = c.wait_job(jid, timeout=30)
        assert j["state"] == "SUCCEEDED" and j["node_id"] != old_id, j
    # work only node-2 can take waits, with a reason
    waiting = c.submit("echo back", resources={"on_node_2": 1})
    time.sleep(0.5)
    j = c.job(waiting)
    assert j["state"] == "PENDING" and "on_node_2" in (j["message"] or ""), j
    # the bystander was never disturbed
    assert c.wait_job(bystander["job_id"], timeout=20)["state"] == "SUCCEEDED"
    # node-2 comes back: a new incarnation, which runs the waiting job
    c.start_node("node-2")
    c.wait_nodes(3)
    new = c.alive_node("node-2")
    assert new["node_id"] != old_id, new
    j = c.wait_job(waiting, timeout=20)
    assert j["state"] == "SUCCEEDED" and j["node_id"] == new["node_id"], j
    assert c.job(victim["job_id"])["state"] == "FAILED", "a terminal state never changes"
    c.check_no_false_state()


def test_link_cut_past_timeout(c):
    """node-3's cable is pulled past the node timeout: DEAD, its job FAILED,
    while its driver still runs behind the partition. When the link comes back
    the same agent process learns it was declared dead, kills that driver and
    registers as a new incarnation, which takes new work; nothing is left in a
    false state."""
    marker = "sleep 600.%d" % os.getpid()  # the driver, recognizable among the node's processes
    victim = running_on(c, "node-3", marker)
    bystander = running_on(c, "node-1", "sleep 6")
    driver = lambda: [p for p, cmd in c.net.ns_cmdlines(3).items() if marker in cmd]  # noqa: E731
    old_id = victim["node_id"]
    agent_pid = c.nodes["node-3"].p.pid
    c.net.cut(3)
    try:
        wait_dead(c, old_id)
        j = c.wait_job(victim["job_id"], timeout=10)
        assert j["state"] == "FAILED" and "died" in j["message"], j
        c.check_no_false_state()
        # the driver still runs on the far side of the cut: a real partition
        assert driver(), "the partitioned node's driver should still be running"
        waiting = c.submit("echo rejoined", resources={"on_node_3": 1})
        time.sleep(0.5)
        assert c.job(waiting)["state"] == "PENDING", c.job(waiting)
    finally:
        c.net.restore(3)
    # the same agent re-registers under a new ID and takes the waiting job
    new = wait_until(lambda: (lambda n: n if n and n["node_id"] != old_id else None)(
        c.alive_node("node-3")), timeout=30, what="node-3 back as a new incarnation")
    assert c.nodes["node-3"].alive() and c.nodes["node-3"].p.pid == agent_pid
    j = c.wait_job(waiting, timeout=20)
    assert j["state"] == "SUCCEEDED" and j["node_id"] == new["node_id"], j
    assert c.logs(waiting) == "rejoined\n"
    # the old driver was killed by its own agent; the old incarnation stays DEAD
    wait_until(lambda: not driver(), timeout=10, what="the partitioned driver killed")
    assert c.node_by_id(old_id)["state"] == "DEAD"
    j = c.job(victim["job_id"])
    assert j["state"] == "FAILED" and j["node_id"] == old_id and "died" in j["message"], j
    assert c.wait_job(bystander["job_id"], timeout=20)["state"] == "SUCCEEDED"
    assert c.get("/api/v1/cluster").json()["nodes_alive"] == 3
    c.check_no_false_state()
    assert not [x for x in c.all_jobs() if x["state"] in ("PENDING", "RUNNING")], c.all_jobs()


def test_link_blip_below_timeout(c):
    """A cut shorter than the node timeout changes nothing: same incarnation,
    its job runs to completion."""
    j = running_on(c, "node-2", "sleep 3; echo done")
    c.net.cut(2)
    time.sleep(0.4)
    c.net.restore(2)
    j = c.wait_job(j["job_id"], timeout=30)
    assert j["state"] == "SUCCEEDED" and c.logs(j["job_id"]) == "done\n", j
    n = c.node_by_id(j["node_id"])
    assert n["state"] == "ALIVE", n
    assert c.get("/api/v1/cluster").json()["nodes_dead"] == 0
    c.check_no_false_state()


if __name__ == "__main__":
    run([test_node_killed, test_link_cut_past_timeout, test_link_blip_below_timeout], nodes=3,
        node_timeout_ms=TIMEOUT_MS)
