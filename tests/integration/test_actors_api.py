"""Actors as the GCS manages them (docs/actors.md): the NATS requests
(prism.gcs.actor.create / get / kill) and their validation, the REST API,
events, metrics, and the lifecycle against real schedulers, node agents and
workers: creation, pending with a reason while infeasible, restarts after a
worker dies, kills, owners that die, and a GCS that restarts."""
import json
import os
import secrets
import signal
import struct
import subprocess
import time

from harness import BIN, NatsClient, NatsSubscriber, run, wait_until

COUNTER = {"package": "builtin", "class": "Counter"}


def body(spec, args=b"\0\0\0\0"):
    """The binary create body: u32 length, the JSON, the encoded arguments (none)."""
    j = spec if isinstance(spec, bytes) else json.dumps(spec).encode()
    return struct.pack("<I", len(j)) + j + args


def create(nc, **fields):
    spec = {"actor_id": secrets.token_hex(16), "owner": "gcs", "detached": True}
    spec.update(COUNTER)
    spec.update(fields)
    reply = json.loads(nc.request("prism.gcs.actor.create", body(spec)))
    assert reply == {"ok": True, "actor_id": spec["actor_id"]}, reply
    return spec["actor_id"]


def error_of(reply):
    return reply.get("error", {}).get("code"), reply.get("error", {}).get("message", "")


def actor(c, aid):
    r = c.get("/api/v1/actors/" + aid)
    assert r.status == 200, r
    return r.json()


def wait_actor(c, aid, states, timeout=30, **match):
    def ok():
        a = actor(c, aid)
        return a if a["state"] in states and all(a.get(k) == v for k, v in match.items()) else None
    return wait_until(ok, timeout=timeout, what="actor %s in %s %s" % (aid, states, match))


def nats(c):
    return NatsClient(c.nats_port, c.token)


# ---------------------------------------------------------------- requests

def test_create_is_validated(c):
    nc = nats(c)
    try:
        good = {"actor_id": secrets.token_hex(16), "owner": "gcs", "package": "builtin",
                "class": "Counter", "detached": True}

        def refused(data, code="invalid_argument", words=""):
            reply = json.loads(nc.request("prism.gcs.actor.create", data))
            got, msg = error_of(reply)
            assert got == code and words in msg, (data[:200], reply)

        refused(b"", words="u32 length")
        refused(b"\x01\x00", words="u32 length")
        refused(struct.pack("<I", 100) + b"{}", words="u32 length")
        refused(body(b"{not json"), words="JSON")
        refused(body(b"[1]"), words="JSON")
        refused(body(good, args=b""), words="arguments")
        refused(body(good, args=b"\1\0\0\0"), words="arguments")  # one argument, no slot
        refused(body(good, args=b"\1\0\0\0\7"), words="arguments")  # an unknown slot kind
        refused(body(good, args=b"\0\0\0\0extra"), words="arguments")
        for field, value, words in [
                ("actor_id", None, "actor_id"), ("actor_id", "xyz", "actor_id"),
                ("actor_id", "A" * 32, "actor_id"), ("actor_id", 7, "actor_id"),
                ("owner", None, "owner"), ("owner", "", "owner"), ("owner", "x" * 129, "owner"),
                ("package", None, "package"), ("package", "../etc", "package"),
                ("package", "0" * 63, "package"), ("class", None, "class"),
                ("class", "1abc", "class"), ("class", "a-b", "class"), ("name", "", "name"),
                ("name", "tab\there", "name"), ("name", 5, "name"), ("namespace", "a b", "namespace"),
                ("namespace", "", "namespace"), ("detached", "yes", "detached"),
                ("max_restarts", -2, "max_restarts"), ("max_restarts", 1.5, "max_restarts"),
                ("max_task_retries", "3", "max_task_retries"),
                ("max_concurrency", 0, "max_concurrency"),
                ("max_concurrency", 65536, "max_concurrency"),
                ("resources", {"CPU": -1}, "resources"), ("resources", {"CPU": "1"}, "resources"),
                ("resources", [1], "resources"), ("strategy", "NOWHERE", "strategy"),
                ("strategy", 3, "strategy"), ("soft", 1, "soft")]:
            spec = dict(good)
            if value is None:
                spec.pop(field)
            else:
                spec[field] = value
            refused(body(spec), words=words)
        refused(body(dict(good, strategy="NODE_AFFINITY")), words="node_id")
        refused(body(dict(good, detached=False, owner="tcp:1.2.3.4:5")), words="owner address")
        assert c.get("/api/v1/actors").json()["actors"] == [], "a refused create left an actor"

        # exists, name_taken; a name is taken only in its namespace
        aid = create(nc, name="solo", resources={"nothing-has-this": 1})
        reply = json.loads(nc.request("prism.gcs.actor.create",
                                      body(dict(good, actor_id=aid, name="other"))))
        assert error_of(reply)[0] == "exists", reply
        reply = json.loads(nc.request("prism.gcs.actor.create", body(dict(good, name="solo"))))
        assert error_of(reply) == ("name_taken", error_of(reply)[1]) and aid in error_of(reply)[1], reply
        create(nc, name="solo", namespace="elsewhere", resources={"nothing-has-this": 1})

        # get: by id, by name; not_found; bad requests
        got = nc.request_json("prism.gcs.actor.get", {"actor_id": aid})
        assert got["ok"] and got["actor"]["actor_id"] == aid, got
        got = nc.request_json("prism.gcs.actor.get", {"name": "solo", "namespace": "default"})
        assert got["actor"]["actor_id"] == aid, got
        got = nc.request_json("prism.gcs.actor.get", {"name": "solo"})  # namespace "default"
        assert got["actor"]["actor_id"] == aid, got
        for req, code in (({"actor_id": "0" * 32}, "not_found"), ({"name": "nobody"}, "not_found"),
                          ({}, "invalid_argument"), ({"actor_id": 5}, "invalid_argument")):
            assert error_of(nc.request_json("prism.gcs.actor.get", req))[0] == code, req
        assert error_of(json.loads(nc.request("prism.gcs.actor.get", b"nope")))[0] == "invalid_argument"

        # kill: not_found, bad requests; a killed name is free again
        for req, code in (({"actor_id": "0" * 32}, "not_found"), ({}, "invalid_argument"),
                          ({"actor_id": aid, "no_restart": "yes"}, "invalid_argument")):
            assert error_of(nc.request_json("prism.gcs.actor.kill", req))[0] == code, req
        assert nc.request_json("prism.gcs.actor.kill", {"actor_id": aid, "no_restart": True}) == \
            {"ok": True}
        a = wait_actor(c, aid, ("DEAD",))
        assert a["cause"] == "killed", a
        again = create(nc, name="solo", resources={"nothing-has-this": 1})
        got = nc.request_json("prism.gcs.actor.get", {"name": "solo"})
        assert got["actor"]["actor_id"] == again, got
        # killing a DEAD actor is fine and changes nothing
        assert nc.request_json("prism.gcs.actor.kill", {"actor_id": aid, "no_restart": True}) == \
            {"ok": True}
        assert actor(c, aid)["cause"] == "killed"
    finally:
        nc.close()
test_create_is_validated.cluster = {"nodes": 0}


def test_rest_api(c):
    nc = nats(c)
    try:
        ids = [create(nc, name="a%d" % i, namespace="ns%d" % (i % 2),
                      resources={"nothing-has-this": 1}, max_restarts=i) for i in range(5)]
        lst = c.get("/api/v1/actors").json()
        assert [a["actor_id"] for a in lst["actors"]] == ids[::-1] and lst["next_cursor"] is None, lst
        p1 = c.get("/api/v1/actors?limit=2").json()
        p2 = c.get("/api/v1/actors?limit=2&cursor=" + p1["next_cursor"]).json()
        p3 = c.get("/api/v1/actors?limit=2&cursor=" + p2["next_cursor"]).json()
        assert [a["actor_id"] for a in p1["actors"] + p2["actors"] + p3["actors"]] == ids[::-1]
        assert p3["next_cursor"] is None, p3
        assert len(c.get("/api/v1/actors?namespace=ns1").json()["actors"]) == 2
        assert [a["actor_id"] for a in c.get("/api/v1/actors?name=a3").json()["actors"]] == [ids[3]]
        assert len(c.get("/api/v1/actors?class=Counter&state=PENDING_CREATION").json()["actors"]) == 5
        assert c.get("/api/v1/actors?class=Other").json()["actors"] == []
        a = actor(c, ids[2])
        for k, v in {"class": "Counter", "package": "builtin", "name": "a2", "namespace": "ns0",
                     "state": "PENDING_CREATION", "owner": "gcs", "detached": True, "restarts": 0,
                     "max_restarts": 2, "max_task_retries": 0, "max_concurrency": 1,
                     "resources": {"nothing-has-this": 1}}.items():
            assert a[k] == v, (k, a)
        assert "unix" not in a and "tcp" not in a and "cause" not in a, a
        for q in ("state=UP", "limit=0", "limit=1001", "limit=x", "cursor=-1"):
            r = c.get("/api/v1/actors?" + q)
            assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (q, r)
        for path in ("/api/v1/actors/" + "0" * 32, "/api/v1/actors/no-such-id"):
            r = c.get(path)
            assert r.status == 404 and r.json()["error"]["code"] == "not_found", r
        r = c.post("/api/v1/actors/%s/kill" % ("0" * 32), {"no_restart": True})
        assert r.status == 404 and r.json()["error"]["code"] == "not_found", r
        for raw, code in ((b"{no", "invalid_json"), (b"[]", "invalid_json"),
                          (b'{"no_restart": 1}', "invalid_argument")):
            r = c.request("POST", "/api/v1/actors/%s/kill" % ids[0], raw=raw,
                          headers={"Content-Type": "application/json"})
            assert r.status == 400 and r.json()["error"]["code"] == code, (raw, r)
        r = c.request("POST", "/api/v1/actors/%s/kill" % ids[0], raw=b"{" + b" " * 8192 + b"}",
                      headers={"Content-Type": "application/json"})
        assert r.status == 413 and r.json()["error"]["code"] == "body_too_large", r
        assert c.get("/api/v1/actors/%s" % ids[0], token=None).status == 401
        # a kill to restart an actor that is not running yet changes nothing
        r = c.post("/api/v1/actors/%s/kill" % ids[0], {"no_restart": False})
        assert r.status == 200 and r.json()["state"] == "PENDING_CREATION", r
        r = c.post("/api/v1/actors/%s/kill" % ids[0], {"no_restart": True})
        assert r.status == 200 and r.json()["state"] == "DEAD" and r.json()["cause"] == "killed", r
        assert c.get("/api/v1/actors?state=DEAD").json()["actors"][0]["actor_id"] == ids[0]
        metrics = c.get("/metrics").body.decode()
        assert 'prism_gcs_actors{state="PENDING_CREATION"} 4' in metrics, metrics
        assert 'prism_gcs_actors{state="DEAD"} 1' in metrics, metrics
        assert "prism_gcs_actors_created_total 5" in metrics, metrics
    finally:
        nc.close()
test_rest_api.cluster = {"nodes": 0}


def test_events(c):
    sub = NatsSubscriber(c.nats_port, c.token, "prism.event.actor")
    nc = nats(c)
    try:
        aid = create(nc, resources={"nothing-has-this": 1})
        c.post("/api/v1/actors/%s/kill" % aid, {"no_restart": True})

        def states():
            return [e["state"] for s, e in sub.events() if e["actor_id"] == aid]
        wait_until(lambda: states() == ["PENDING_CREATION", "DEAD"], what="events of " + aid)
        last = [e for s, e in sub.events() if e["actor_id"] == aid][-1]
        assert last["cause"] == "killed" and last["class"] == "Counter", last
    finally:
        sub.close()
        nc.close()
test_events.cluster = {"nodes": 0}


def prism_cli(c, *args, status=0):
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    r = subprocess.run([os.path.join(BIN, "prism")] + list(args), env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == status, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout + r.stderr


def test_cli(c):
    nc = nats(c)
    try:
        aid = create(nc, name="cli-counter", resources={"nothing-has-this": 1}, max_restarts=2)
        reason = wait_until(lambda: actor(c, aid).get("reason"), what="a reason")
        assert reason.startswith("no node is alive"), reason
        out = prism_cli(c, "actor", "list")
        assert "ACTOR ID" in out and "RESTARTS" in out, out
        row = [l for l in out.splitlines() if l.startswith(aid)]
        assert row and "Counter" in row[0] and "cli-counter" in row[0] and \
            "PENDING_CREATION" in row[0] and "0/2" in row[0] and \
            reason in row[0], out
        out = prism_cli(c, "actor", "list", "--json", "--state", "PENDING_CREATION")
        assert json.loads(out.splitlines()[0])["actor_id"] == aid, out
        assert prism_cli(c, "actor", "list", "--state", "DEAD").splitlines()[1:] == []
        assert "no actor" in prism_cli(c, "actor", "kill", "0" * 32, status=1)
        out = prism_cli(c, "actor", "kill", aid, "--no-restart")
        assert "Killed actor %s (state DEAD: killed)" % aid in out, out
        out = prism_cli(c, "actor", "list", "--class", "Counter")
        assert "DEAD" in out and "killed" in out, out
        prism_cli(c, "actor", "list", "--state", "UP", status=1)
        prism_cli(c, "actor", "kill", status=2)
        prism_cli(c, "actor", "frobnicate", status=2)
    finally:
        nc.close()
test_cli.cluster = {"nodes": 0}


# ---------------------------------------------------------------- lifecycle

def test_infeasible_waits_with_a_reason(c):
    """Like a task: PENDING_CREATION with the scheduler's reason until a node
    that has the resource joins; then it is created there."""
    nc = nats(c)
    try:
        aid = create(nc, resources={"accel": 1})
        a = wait_actor(c, aid, ("PENDING_CREATION",), reason="no node has accel 1")
        assert "node_id" not in a, a
        c.start_node("node-2", "--resources", '{"accel": 2}')
        c.wait_nodes(2)
        node2 = [n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]
                 if n["name"] == "node-2"][0]
        a = wait_actor(c, aid, ("ALIVE",), node_id=node2)
        assert "reason" not in a and a["worker_id"] and a["tcp"] and a["unix"], a
    finally:
        nc.close()


def test_owner_that_dies_takes_its_actor(c):
    """A non-detached actor whose owner answers no PING is killed: DEAD, 'its owner died'."""
    nc = nats(c)
    try:
        nobody = "owner:" + secrets.token_hex(16)
        waiting = create(nc, owner=nobody, detached=False, resources={"nothing-has-this": 1})
        a = wait_actor(c, waiting, ("DEAD",), timeout=15)
        assert a["cause"] == "its owner died", a
        # a detached actor outlives its owner
        kept = create(nc, owner=nobody, detached=True, resources={"nothing-has-this": 1})
        time.sleep(3)
        assert actor(c, kept)["state"] == "PENDING_CREATION"
    finally:
        nc.close()


def test_no_scheduler_is_a_reason(c):
    nc = nats(c)
    try:
        aid = create(nc)
        wait_actor(c, aid, ("PENDING_CREATION",), reason="waiting for a scheduler: none is running")
    finally:
        nc.close()
test_no_scheduler_is_a_reason.cluster = {"nodes": 0, "scheduler": False}


def test_gcs_restart_keeps_pending_and_dead(c):
    nc = nats(c)
    try:
        pending = create(nc, name="p", resources={"nothing-has-this": 1})
        dead = create(nc, resources={"nothing-has-this": 1})
        c.post("/api/v1/actors/%s/kill" % dead, {"no_restart": True})
        wait_actor(c, pending, ("PENDING_CREATION",), reason="no node has nothing-has-this 1")
        c.stop_proc(c.gcs)
        c.start_gcs()
        assert actor(c, dead)["state"] == "DEAD"
        wait_actor(c, pending, ("PENDING_CREATION",), reason="no node has nothing-has-this 1")
        got = nc.request_json("prism.gcs.actor.get", {"name": "p"})
        assert got["actor"]["actor_id"] == pending, got
    finally:
        nc.close()


if __name__ == "__main__":
    run([test_create_is_validated, test_rest_api, test_events, test_cli,
         test_infeasible_waits_with_a_reason,
         test_owner_that_dies_takes_its_actor, test_no_scheduler_is_a_reason,
         test_gcs_restart_keeps_pending_and_dead], nodes=1)
