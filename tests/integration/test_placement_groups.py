"""Placement groups on one node (docs/placement-groups.md): the REST API and
its errors, bundles reserved out of the node's free pool, leases drawn on a
bundle, a group that cannot fit waiting PENDING until a node joins, removal
returning the resources, and the state surviving a GCS restart. Leases are
asked of the scheduler over NATS the way owners ask for them."""
import json
import os
import subprocess

from harness import BIN, NatsClient, run, skip, wait_until

WORKER = os.path.join(BIN, "prism-worker")
PROBE = os.path.join(BIN, "pg_probe")
if not os.access(WORKER, os.X_OK):
    skip("prism-worker is not built in %s" % BIN)


def node_args(cpus):
    return ("--worker-bin", WORKER, "--num-cpus", str(cpus), "--num-gpus", "0",
            "--prestart-workers", "0")


NODE = {"node_args": node_args(2)}
PG = "/api/v1/placement_groups"


def create(c, bundles, strategy="PACK", **extra):
    body = dict(bundles=bundles, strategy=strategy, **extra)
    r = c.post(PG, body)
    assert r.status == 201, r
    return r.json()["placement_group_id"]


def group(c, pg):
    r = c.get(PG + "/" + pg)
    assert r.status == 200, r
    return r.json()


def wait_state(c, pg, state, timeout=20):
    return wait_until(lambda: group(c, pg)["state"] == state and group(c, pg), timeout=timeout,
                      what="placement group %s %s (now %s)" % (pg, state, group(c, pg)))


def lease(nats, cpus=1, pg=None, index=None):
    req = {"owner_id": "f" * 32, "resources": {"CPU": cpus}, "timeout_ms": 8000}
    if pg:
        req["placement_group_id"] = pg
    if index is not None:
        req["bundle_index"] = index
    return nats.request_json("prism.sched.lease", req, timeout=15)


def give_back(nats, grant):
    r = nats.request_json("prism.node.%s.worker.return" % grant["node_id"],
                          {"lease_id": grant["lease_id"]})
    assert r == {"ok": True}, r


def code(r):
    return r.get("error", {}).get("code")


def test_rest_errors(c):
    assert c.get(PG, token=None).status == 401
    assert c.post(PG, {"bundles": [{"CPU": 1}]}, token="wrong").status == 401
    for body, why in [({}, "no bundles"), ({"bundles": []}, "empty"),
                      ({"bundles": [{}]}, "an empty bundle"),
                      ({"bundles": [{"CPU": -1}]}, "a negative amount"),
                      ({"bundles": [{"CPU": "1"}]}, "a string amount"),
                      ({"bundles": [{"CPU": 1}] * 257}, "too many bundles"),
                      ({"bundles": [{"CPU": 1}], "strategy": "NEAR"}, "an unknown strategy"),
                      ({"bundles": [{"CPU": 1}], "strategy": 1}, "a number strategy"),
                      ({"bundles": [{"CPU": 1}], "name": ""}, "an empty name")]:
        r = c.post(PG, body)
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (why, r)
    r = c.request("POST", PG, raw=b"{", headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    r = c.request("POST", PG, raw=b" " * (65 * 1024), headers={"Content-Type": "application/json"})
    assert r.status == 413, r
    for method in ("GET", "DELETE"):
        r = c.request(method, PG + "/" + "0" * 32)
        assert r.status == 404 and r.json()["error"]["code"] == "not_found", r
    r = c.get(PG + "?state=ALIVE")
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", r


def test_bundles_hold_resources(c):
    """Two bundles of CPU 1 take the node's two CPUs: leases outside the
    group find the node full, leases in it draw on their bundle."""
    pg = create(c, [{"CPU": 1}, {"CPU": 1}], "STRICT_PACK", name="pair")
    g = wait_state(c, pg, "CREATED")
    node = c.get("/api/v1/nodes").json()["nodes"][0]["node_id"]
    assert [b["node_id"] for b in g["bundles"]] == [node, node], g
    assert g["name"] == "pair" and g["strategy"] == "STRICT_PACK" and g["reason"] is None, g
    nats = NatsClient(c.nats_port, c.token)
    try:
        r = lease(nats)
        assert code(r) == "busy", r
        first = lease(nats, pg=pg, index=0)
        assert first.get("ok") and first["node_id"] == node, first
        r = lease(nats, pg=pg, index=0)
        assert code(r) == "busy", ("bundle 0 is full", r)
        r = lease(nats, cpus=2, pg=pg)
        assert code(r) == "infeasible", ("no bundle holds CPU 2", r)
        second = lease(nats, pg=pg, index=-1)
        assert second.get("ok"), ("bundle 1 has room", second)
        give_back(nats, first)
        give_back(nats, second)
        r = lease(nats, pg="1" * 32)
        assert code(r) == "busy" and "no bundle" in r["error"]["message"], r
        listed = c.get(PG + "?state=CREATED").json()["placement_groups"]
        assert [x["placement_group_id"] for x in listed] == [pg], listed
        assert c.get(PG + "?name=pair").json()["placement_groups"][0]["placement_group_id"] == pg
    finally:
        nats.close()


def test_remove_returns_resources(c):
    pg = create(c, [{"CPU": 2}])
    wait_state(c, pg, "CREATED")
    nats = NatsClient(c.nats_port, c.token)
    try:
        inside = lease(nats, cpus=2, pg=pg, index=0)
        assert inside.get("ok"), inside
        assert code(lease(nats)) == "busy"
        r = c.request("DELETE", PG + "/" + pg)
        assert r.status == 200 and r.json()["state"] == "REMOVED", r
        assert r.json()["removed_at"], r
        # The worker leased in the bundle is killed and the CPUs are free again.
        outside = wait_until(lambda: lease(nats).get("ok") and True, timeout=20,
                             what="a lease outside the removed group")
        assert outside
        r = c.request("DELETE", PG + "/" + pg)
        assert r.status == 200 and r.json()["state"] == "REMOVED", ("removal is idempotent", r)
        wait_until(lambda: code(lease(nats, pg=pg)) == "placement_group_removed",
                   what="leases of a removed group refused")
    finally:
        nats.close()


def test_bundle_gpus_are_counted(c):
    """A node of two (pretend) GPUs: a bundle of GPU 1 leaves one outside the
    group; a lease in the bundle gets a device, a second one waits."""
    c.start_node("gpus", "--worker-bin", WORKER, "--num-cpus", "2", "--num-gpus", "2",
                 "--prestart-workers", "0", "--resources", '{"gpu_node": 1}')
    c.wait_nodes(2)
    pg = create(c, [{"GPU": 1, "CPU": 0.5}])
    g = wait_state(c, pg, "CREATED")
    node = [n for n in c.get("/api/v1/nodes").json()["nodes"] if n["name"] == "gpus"][0]
    assert g["bundles"][0]["node_id"] == node["node_id"], g
    nats = NatsClient(c.nats_port, c.token)
    try:
        def gpu_lease(gpus, pg=None):
            req = {"owner_id": "f" * 32, "resources": {"GPU": gpus, "CPU": 0.5},
                   "timeout_ms": 15000}
            if pg:
                req.update(placement_group_id=pg, bundle_index=0)
            return nats.request_json("prism.sched.lease", req, timeout=20)

        assert code(gpu_lease(2)) == "busy", "one of the two GPUs is the bundle's"
        inside = gpu_lease(1, pg)
        assert inside.get("ok") and inside["node_id"] == node["node_id"], inside
        assert code(gpu_lease(1, pg)) == "busy", "the bundle's GPU is taken"
        outside = gpu_lease(1)
        assert outside.get("ok"), ("the other GPU is free outside the group", outside)
        assert code(gpu_lease(1)) == "busy", "both devices are in use"
        give_back(nats, inside)
        give_back(nats, outside)
    finally:
        nats.close()


def test_stale_bundles_are_returned(c):
    """A bundle a node holds for a group the GCS does not know (a placement
    it never recorded) is returned after the node's next report; the
    bundles of a CREATED group stay."""
    pg = create(c, [{"CPU": 1}])
    wait_state(c, pg, "CREATED")
    node = c.get("/api/v1/nodes").json()["nodes"][0]["node_id"]
    nats = NatsClient(c.nats_port, c.token)
    try:
        stray = "e" * 32
        r = nats.request_json("prism.node.%s.bundle.reserve" % node,
                              {"placement_group_id": stray,
                               "bundles": [{"index": 0, "resources": {"CPU": 1}}]})
        assert r.get("ok"), r
        # The group and the stray bundle hold both CPUs: a lease outside gets
        # one only once the stray bundle is returned.
        grant = wait_until(lambda: (lambda r: r if r.get("ok") else None)(lease(nats)),
                           timeout=20, what="the stray bundle returned")
        give_back(nats, grant)
        inside = lease(nats, pg=pg, index=0)
        assert inside.get("ok"), ("the group's bundle stayed", inside)
        give_back(nats, inside)
    finally:
        nats.close()


def test_pending_until_a_node_joins(c):
    pg = create(c, [{"CPU": 3}, {"CPU": 3}], "STRICT_SPREAD")
    g = wait_until(lambda: group(c, pg)["reason"] != "waiting to be placed" and group(c, pg),
                   what="a reason")
    assert g["state"] == "PENDING" and "cannot hold" in g["reason"], g
    assert all(b["node_id"] is None for b in g["bundles"]), g
    c.start_node("node-2", *node_args(4))
    c.wait_nodes(2)
    g = wait_until(lambda: group(c, pg)["state"] == "PENDING" and group(c, pg), what="pending")
    c.start_node("node-3", *node_args(4))
    c.wait_nodes(3)
    g = wait_state(c, pg, "CREATED")
    nodes = [b["node_id"] for b in g["bundles"]]
    assert len(set(nodes)) == 2, ("STRICT_SPREAD: distinct nodes", g)


def test_waiting_groups_do_not_block_newer_ones(c):
    """Groups that cannot be placed yet, more than one placement batch of
    them, do not keep a newer group that fits from being placed."""
    waiting = [create(c, [{"CPU": 64}]) for _ in range(20)]
    fits = create(c, [{"CPU": 1}])
    wait_state(c, fits, "CREATED", timeout=15)
    assert all(group(c, pg)["state"] == "PENDING" for pg in waiting)
    for pg in waiting + [fits]:
        assert c.request("DELETE", PG + "/" + pg).status == 200


def test_survives_gcs_restart(c):
    pg = create(c, [{"CPU": 1}], "SPREAD")
    before = wait_state(c, pg, "CREATED")
    gone = create(c, [{"CPU": 1}])
    wait_state(c, gone, "CREATED")
    assert c.request("DELETE", PG + "/" + gone).status == 200
    assert c.stop_proc(c.gcs) is None and not c.failed_shutdowns, c.failed_shutdowns
    c.start_gcs()
    assert group(c, pg) == before
    assert group(c, gone)["state"] == "REMOVED"
    nats = NatsClient(c.nats_port, c.token)
    try:
        r = lease(nats, pg=pg, index=0)
        assert r.get("ok"), ("the bundle is still held on the node", r)
        give_back(nats, r)
    finally:
        nats.close()


def probe(c, *args):
    if not os.access(PROBE, os.X_OK):
        skip("pg_probe is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", "node-1", "objectstore.sock"),
               PRISM_NODE_ID="")
    env.pop("PRISM_HOME", None)
    return subprocess.run([PROBE] + list(args), env=env, capture_output=True, text=True,
                          timeout=240)


def test_c_api(c):
    """pg_probe api: the C API end to end (a task and an actor in the group,
    argument errors, a group too big timing out with its reason, removal
    killing the group's actor)."""
    r = probe(c, "api")
    assert r.returncode == 0 and "api ok" in r.stdout, (r.returncode, r.stdout, r.stderr)
    words = r.stdout.split()
    pg, actor = words[1], words[3]
    assert group(c, pg)["state"] == "REMOVED" and group(c, pg)["name"] == "probe"
    a = c.get("/api/v1/actors/" + actor).json()
    assert a["state"] == "DEAD", a


def test_fate_shares_with_its_creator(c):
    """A group made through libprism is removed when its process exits (as
    Ray's default lifetime); a detached one stays."""
    r = probe(c, "leave")
    assert r.returncode == 0, (r.stdout, r.stderr)
    words = r.stdout.split()
    mine, kept = words[1], words[3]
    assert group(c, mine)["owner"].startswith("owner:") and group(c, kept)["owner"] is None
    wait_state(c, mine, "REMOVED")
    assert group(c, kept)["state"] == "CREATED"
    r = c.post(PG, {"bundles": [{"CPU": 1}], "owner": "someone"})
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", r


def test_cli(c):
    """prism pg list / get / remove against the cluster."""
    prism = os.path.join(BIN, "prism")
    if not os.access(prism, os.X_OK):
        skip("prism is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    env.pop("PRISM_HOME", None)

    def cli(*args):
        r = subprocess.run([prism] + list(args), env=env, capture_output=True, text=True,
                           timeout=60)
        return r.returncode, r.stdout, r.stderr

    placed = create(c, [{"CPU": 1}, {"CPU": 0.5}], "SPREAD", name="cli-group")
    waiting = create(c, [{"GPU": 8}])
    wait_state(c, placed, "CREATED")
    rc, out, err = cli("pg", "list")
    assert rc == 0 and "PLACEMENT GROUP ID" in out, (rc, out, err)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "CREATED" in rows[placed] and "2/2 on 1" in rows[placed], out
    assert "PENDING" in rows[waiting] and "0/1 on 0" in rows[waiting], out
    rc, out, err = cli("pg", "list", "--state", "PENDING", "--json")
    assert rc == 0 and [json.loads(x)["placement_group_id"] for x in out.splitlines()] == [
        waiting], (out, err)
    rc, out, err = cli("pg", "get", placed)
    assert rc == 0 and "cli-group" in out and "bundle 1" in out and "CPU 0.5" in out, (out, err)
    rc, out, err = cli("pg", "remove", waiting)
    assert rc == 0 and group(c, waiting)["state"] == "REMOVED", (rc, out, err)
    rc, out, err = cli("pg", "get", "0" * 32)
    assert rc != 0 and "no placement group" in err, (rc, out, err)
    rc, out, err = cli("pg", "frob")
    assert rc != 0 and "unknown pg command" in err, (rc, out, err)


if __name__ == "__main__":
    run([test_rest_errors, test_bundles_hold_resources, test_remove_returns_resources,
         test_bundle_gpus_are_counted, test_stale_bundles_are_returned,
         test_pending_until_a_node_joins, test_waiting_groups_do_not_block_newer_ones,
         test_survives_gcs_restart, test_c_api, test_fate_shares_with_its_creator, test_cli], nodes=1,
        **NODE)
