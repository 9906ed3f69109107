#!/usr/bin/python3
"""Jobs spread over three nodes, each node in its own network namespace."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import run, wait_until  # noqa: E402


def test_jobs_spread_over_three_nodes(c):
    # Each node offers CPU 1: three 1-CPU jobs can only run on three nodes.
    ids = [c.submit("ip -o -4 addr show; sleep 3", resources={"CPU": 1}) for _ in range(3)]
    running = wait_until(lambda: (lambda js: js if all(j["state"] == "RUNNING" for j in js) else None)(
        [c.job(i) for i in ids]), timeout=20, what="three jobs RUNNING")
    nodes = {j["node_id"] for j in running}
    assert len(nodes) == 3, "jobs share nodes: %r" % running
    # A fourth waits for a free CPU, then runs.
    extra = c.submit("echo fourth", resources={"CPU": 1})
    assert c.job(extra)["state"] == "PENDING", c.job(extra)
    for i in ids + [extra]:
        j = c.wait_job(i, timeout=30)
        assert j["state"] == "SUCCEEDED", j
    # Each driver ran inside its node's namespace: its log (read by the GCS from
    # that node's agent, across the bridge) shows that node's address only.
    by_name = {n["node_id"]: n["name"] for n in c.node_list()}
    for j in running:
        name = by_name[j["node_id"]]
        ip = c.net.node_ip(c.node_index(name))
        log = c.logs(j["job_id"])
        assert "inet %s/" % ip in log, (name, log)
        others = [c.net.node_ip(k) for k in range(1, 4) if c.net.node_ip(k) != ip]
        assert not any("inet %s/" % o in log for o in others), log
        assert c.net.head_ip not in log, "a driver sees the head's address: " + log
        assert c.node_by_id(j["node_id"])["address"].startswith("http://%s:" % ip)


def test_custom_resource_targets_a_node(c):
    # on_node_2 exists only on node-2.
    jid = c.submit("echo on two", resources={"on_node_2": 1})
    j = c.wait_job(jid)
    assert j["state"] == "SUCCEEDED", j
    assert c.node_by_id(j["node_id"])["name"] == "node-2", j
    assert c.logs(jid) == "on two\n"


if __name__ == "__main__":
    run([test_jobs_spread_over_three_nodes, test_custom_resource_targets_a_node], nodes=3)
