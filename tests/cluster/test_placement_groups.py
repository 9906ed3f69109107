#!/usr/bin/python3
"""Placement groups on three nodes, each in its own network namespace and
offering CPU 1 (docs/placement-groups.md): where each strategy puts the
bundles, a group that cannot fit waiting PENDING until a node joins, and a
node death re-placing the lost bundles (RESCHEDULING) and restarting the
actor that lived in one."""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import run, wait_until  # noqa: E402
import harness  # noqa: E402  (netcluster put it on the path)

PG = "/api/v1/placement_groups"
TIMEOUT_MS = 2000


class HeadNats(harness.NatsClient):
    """The integration harness's NATS client, to the head's bridge address."""

    def __init__(self, host, port, token):
        real = socket.create_connection
        socket.create_connection = lambda addr, timeout=None: real((host, addr[1]), timeout)
        try:
            super().__init__(port, token)
        finally:
            socket.create_connection = real


def create(c, bundles, strategy):
    r = c.post(PG, {"bundles": bundles, "strategy": strategy})
    assert r.status == 201, r
    return r.json()["placement_group_id"]


def group(c, pg):
    return c.get(PG + "/" + pg).json()


def wait_state(c, pg, state, timeout=30):
    return wait_until(lambda: (lambda g: g if g["state"] == state else None)(group(c, pg)),
                      timeout=timeout, what="placement group %s %s" % (pg, state))


def names(c, g):
    """The node name of each bundle."""
    by_id = {n["node_id"]: n["name"] for n in c.node_list()}
    return [by_id.get(b["node_id"]) for b in g["bundles"]]


def remove(c, pg, all_free=False):
    """Removes the group; with `all_free`, waits until the nodes report every CPU
    free again: the next group's placement reads the nodes' reports, and one
    still counting a returned bundle makes SPREAD share a node (best effort)."""
    r = c.request("DELETE", PG + "/" + pg)
    assert r.status == 200 and r.json()["state"] == "REMOVED", r
    if all_free:
        wait_until(lambda: (lambda res: res["available"].get("CPU") == res["total"].get("CPU"))(
            c.get("/api/v1/cluster").json()["resources"]), timeout=20, what="every CPU free again")


def placed(c, bundles, strategy):
    pg = create(c, bundles, strategy)
    g = wait_state(c, pg, "CREATED")
    return pg, names(c, g)


def pending(c, bundles, strategy, words):
    pg = create(c, bundles, strategy)
    g = wait_until(lambda: (lambda g: g if "waiting for resources" in (g["reason"] or "") else None)(
        group(c, pg)), timeout=20, what="a reason")
    assert g["state"] == "PENDING" and words in g["reason"], g
    time.sleep(1.5)  # asked for again meanwhile: still not placed
    assert group(c, pg)["state"] == "PENDING"
    return pg


def test_strategies(c):
    half, one = {"CPU": 0.5}, {"CPU": 1}
    # STRICT_SPREAD: three nodes, one bundle each; a fourth bundle cannot fit.
    pg, where = placed(c, [one, one, one], "STRICT_SPREAD")
    assert sorted(where) == ["node-1", "node-2", "node-3"], where
    remove(c, pg, all_free=True)
    bad = pending(c, [half] * 4, "STRICT_SPREAD", "on distinct nodes")
    remove(c, bad, all_free=True)
    # STRICT_PACK: one node, or none.
    pg, where = placed(c, [half, half], "STRICT_PACK")
    assert len(set(where)) == 1, where
    bad = pending(c, [one, one], "STRICT_PACK", "on one node")
    remove(c, bad)
    remove(c, pg, all_free=True)
    # PACK: small bundles share a node; big ones spill over, best effort.
    pg, where = placed(c, [half, half], "PACK")
    assert len(set(where)) == 1, where
    remove(c, pg, all_free=True)
    pg, where = placed(c, [one, one], "PACK")
    assert len(set(where)) == 2, where
    remove(c, pg, all_free=True)
    # SPREAD: distinct nodes while there are some, then shared.
    pg, where = placed(c, [half] * 3, "SPREAD")
    assert len(set(where)) == 3, where
    remove(c, pg, all_free=True)
    pg, where = placed(c, [half] * 4, "SPREAD")
    assert len(set(where)) == 3, where
    remove(c, pg, all_free=True)
    # Every removal gave its CPUs back: the whole cluster fits one last group.
    pg, where = placed(c, [one, one, one], "SPREAD")
    assert sorted(where) == ["node-1", "node-2", "node-3"], where


def test_pending_until_a_node_joins(c):
    old = c.alive_node("node-3")["node_id"]
    c.kill_node("node-3")
    wait_until(lambda: c.node_by_id(old)["state"] == "DEAD", timeout=15, what="node-3 DEAD")
    pg = pending(c, [{"CPU": 1}] * 3, "STRICT_SPREAD", "2 nodes alive cannot hold")
    c.start_node("node-3")
    c.wait_nodes(3)
    g = wait_state(c, pg, "CREATED")
    assert sorted(names(c, g)) == ["node-1", "node-2", "node-3"], g


def make_actor(c, pg, index):
    aid = os.urandom(16).hex()
    spec = json.dumps({"actor_id": aid, "owner": "gcs", "detached": True, "package": "builtin",
                       "class": "Counter", "resources": {"CPU": 1}, "max_restarts": 2,
                       "placement_group_id": pg, "bundle_index": index}).encode()
    nc = HeadNats(c.net.head_ip, c.nats_port, c.token)
    try:
        made = json.loads(nc.request("prism.gcs.actor.create",
                                     struct.pack("<I", len(spec)) + spec + struct.pack("<I", 0)))
    finally:
        nc.close()
    assert made == {"ok": True, "actor_id": aid}, made
    return aid


def actor(c, aid):
    return c.get("/api/v1/actors/" + aid).json()


def wait_alive(c, aid, node_id=None):
    return wait_until(lambda: (lambda a: a if a["state"] == "ALIVE" and (
        node_id is None or a["node_id"] == node_id) else None)(actor(c, aid)),
        timeout=40, what="actor %s ALIVE" % aid)


def test_node_death_reschedules(c):
    """A SPREAD group of two CPU-1 bundles with an actor in each; the node of
    bundle 0 dies while the third node is busy: the group is RESCHEDULING
    (bundle 1 and its actor untouched) until the third node frees up, then
    bundle 0 is reserved there and its actor restarts in it."""
    pg, where = placed(c, [{"CPU": 1}, {"CPU": 1}], "SPREAD")
    g = group(c, pg)
    spare = ({"node-1", "node-2", "node-3"} - set(where)).pop()
    first = make_actor(c, pg, 0)
    second = make_actor(c, pg, 1)
    a0 = wait_alive(c, first, g["bundles"][0]["node_id"])
    a1 = wait_alive(c, second, g["bundles"][1]["node_id"])
    # The spare node is busy for a while, so the re-placement has to wait.
    busy = c.submit("sleep 8", resources={"on_node_%d" % c.node_index(spare): 1, "CPU": 1})
    c.wait_job(busy, states=("RUNNING",), timeout=20)
    c.kill_node(where[0])
    g = wait_state(c, pg, "RESCHEDULING", timeout=TIMEOUT_MS / 1000 + 15)
    assert g["bundles"][0]["node_id"] is None, g
    assert g["bundles"][1]["node_id"] == a1["node_id"], g
    assert "died" in g["reason"] or "waiting" in g["reason"], g
    assert actor(c, first)["state"] in ("RESTARTING", "PENDING_CREATION"), actor(c, first)
    g = wait_state(c, pg, "CREATED", timeout=40)
    assert names(c, g) == [spare, where[1]], (g, spare, where)
    moved = wait_alive(c, first, g["bundles"][0]["node_id"])
    assert moved["restarts"] == 1 and moved["node_id"] != a0["node_id"], moved
    kept = actor(c, second)
    assert kept["state"] == "ALIVE" and kept["restarts"] == 0, kept
    assert kept["node_id"] == a1["node_id"], kept
    assert c.wait_job(busy, timeout=30)["state"] == "SUCCEEDED"
    remove(c, pg)
    for aid in (first, second):
        wait_until(lambda: actor(c, aid)["state"] == "DEAD", timeout=20,
                   what="the group's actors DEAD after its removal")


if __name__ == "__main__":
    run([test_strategies, test_pending_until_a_node_joins, test_node_death_reschedules], nodes=3,
        node_timeout_ms=TIMEOUT_MS, objectstores=True)
