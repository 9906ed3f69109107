"""Actors as the GCS manages them (docs/actors.md): the NATS requests
(prism.gcs.actor.create / get / kill) and their validation, the REST API,
events, metrics, and the lifecycle against real schedulers, node agents and
workers: creation, pending with a reason while infeasible, restarts after a
worker dies, kills, owners that die, and a GCS that restarts."""
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import threading
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


def workers(c, node="node-1"):
    """The node agent's worker list (pid by worker ID)."""
    addr = [n["address"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]
            if n["name"] == node][0]
    r = c.get("/api/v1/workers", base=addr.rstrip("/"))
    assert r.status == 200, r
    return {w["worker_id"]: w for w in r.json()["workers"]}


def pid_of(c, a, node="node-1"):
    w = workers(c, node).get(a["worker_id"])
    assert w and w["pid"] > 0, (a, workers(c, node))
    return w["pid"]


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][0] not in "ZX"
    except OSError:
        return False


def free_cpu(c, node="node-1"):
    n = [n for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"] if n["name"] == node][0]
    r = c.get("/api/v1/node", base=n["address"].rstrip("/"))
    return r.json()["available"].get("CPU", 0)


class FakeOwner:
    """Answers PING on prism.owner.HEX as a live libprism client does (u8 0),
    until closed: then the subject has no subscriber, as when an owner dies."""

    def __init__(self, c):
        self.hex = secrets.token_hex(16)
        self.address = "owner:" + self.hex
        self.pings = 0
        self.sock = socket.create_connection(("127.0.0.1", c.nats_port), timeout=10)
        self.sock.recv(4096)  # INFO
        connect = {"verbose": False, "pedantic": False, "auth_token": c.token, "name": "owner"}
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nSUB prism.owner." +
                          self.hex.encode() + b" 1\r\nPING\r\n")
        self.buf = b""
        while self._line() != b"PONG":
            pass
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _loop(self):
        try:
            while True:
                parts = self._line().split()
                if parts[:1] == [b"PING"]:
                    self.sock.sendall(b"PONG\r\n")
                elif parts[:1] == [b"MSG"]:
                    n = int(parts[-1])
                    while len(self.buf) < n + 2:
                        self.buf += self.sock.recv(65536)
                    data, self.buf = self.buf[:n], self.buf[n + 2:]
                    if data[:1] == b"\x04" and len(parts) == 5:  # PING with a reply subject
                        self.pings += 1
                        self.sock.sendall(b"PUB " + parts[3] + b" 1\r\n\x00\r\n")
        except (EOFError, OSError):
            pass

    def close(self):
        self.sock.close()


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
                ("name", "tab\there", "name"), ("name", 5, "name"), ("namespace", "a\nb", "namespace"), ("name", "n" * 257, "name"),
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
        out = prism_cli(c, "actor", "kill", aid)
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


def test_one_ping_per_owner(c):
    """The GCS pings an owner once however many actors it made: five actors of
    one owner (which listens and never answers) cost it one PING, and one
    more 3 s later, not five each time."""
    nc = nats(c)
    owner = secrets.token_hex(16)
    sub = NatsSubscriber(c.nats_port, c.token, "prism.owner." + owner, raw=True)
    try:
        for _ in range(5):
            create(nc, owner="owner:" + owner, detached=False, resources={"nothing-has-this": 1})
        time.sleep(4.5)
        pings = len(sub.events())
        assert 1 <= pings <= 3, "%d PINGs for one owner of five actors" % pings
    finally:
        sub.close()
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


def test_restarts_after_the_worker_dies(c):
    """kill -9 of its worker: RESTARTING, then ALIVE on a new worker with
    restarts 1; the next death uses max_restarts (1) up: DEAD with the cause."""
    sub = NatsSubscriber(c.nats_port, c.token, "prism.event.actor")
    nc = nats(c)
    try:
        aid = create(nc, max_restarts=1, resources={"CPU": 1})
        a = wait_actor(c, aid, ("ALIVE",))
        assert a["unix"] and a["tcp"] and a["node_id"] and "reason" not in a, a
        first = a["worker_id"]
        assert workers(c)[first]["owner_id"] == "gcs", workers(c)[first]
        os.kill(pid_of(c, a), signal.SIGKILL)
        a = wait_actor(c, aid, ("ALIVE",), restarts=1)
        assert a["worker_id"] != first, a
        os.kill(pid_of(c, a), signal.SIGKILL)
        a = wait_actor(c, aid, ("DEAD",))
        assert a["cause"] == "the worker died and max_restarts (1) is used up", a
        assert a["restarts"] == 1 and "unix" not in a and "tcp" not in a, a
        # the event is published as the state is recorded; it may arrive after the REST answer
        states = lambda: [e["state"] for _, e in sub.events() if e["actor_id"] == aid]  # noqa: E731
        wait_until(lambda: "DEAD" in states(), what="the DEAD event")
        assert states() == ["PENDING_CREATION", "ALIVE", "RESTARTING", "ALIVE", "DEAD"], states()
        wait_until(lambda: free_cpu(c) == 2, what="the actor's CPU free again")
        metrics = c.get("/metrics").body.decode()
        assert "prism_gcs_actor_restarts_total 1" in metrics, metrics
    finally:
        sub.close()
        nc.close()
test_restarts_after_the_worker_dies.cluster = {"node_args": ("--num-cpus", "2")}


def test_max_restarts_zero_dies_at_once(c):
    nc = nats(c)
    try:
        aid = create(nc)
        a = wait_actor(c, aid, ("ALIVE",))
        os.kill(pid_of(c, a), signal.SIGKILL)
        a = wait_actor(c, aid, ("DEAD",))
        assert a["cause"] == "the worker died and max_restarts (0) is used up", a
        assert a["restarts"] == 0, a
    finally:
        nc.close()


def test_unlimited_restarts(c):
    nc = nats(c)
    try:
        aid = create(nc, max_restarts=-1)
        for n in range(1, 4):
            a = wait_actor(c, aid, ("ALIVE",), restarts=n - 1)
            os.kill(pid_of(c, a), signal.SIGKILL)
        a = wait_actor(c, aid, ("ALIVE",), restarts=3)
    finally:
        nc.close()


def test_kill(c):
    """REST kill: for good (DEAD "killed", the worker exits, its CPU is free),
    or to restart (a new worker while max_restarts allows, then DEAD "killed")."""
    nc = nats(c)
    try:
        aid = create(nc, name="k", resources={"CPU": 1})
        a = wait_actor(c, aid, ("ALIVE",))
        pid = pid_of(c, a)
        r = c.post("/api/v1/actors/%s/kill" % aid, {"no_restart": True})
        assert r.status == 200 and r.json()["state"] == "DEAD" and r.json()["cause"] == "killed", r
        wait_until(lambda: not running(pid), what="the actor's worker to exit")
        wait_until(lambda: free_cpu(c) == 2, what="the actor's CPU free again")
        again = create(nc, name="k", max_restarts=1)  # the name is free again
        a = wait_actor(c, again, ("ALIVE",))
        r = c.post("/api/v1/actors/%s/kill" % again, {"no_restart": False})
        assert r.status == 200, r
        b = wait_actor(c, again, ("ALIVE",), restarts=1)
        assert b["worker_id"] != a["worker_id"], (a, b)
        assert nc.request_json("prism.gcs.actor.kill", {"actor_id": again}) == {"ok": True}
        b = wait_actor(c, again, ("DEAD",))
        assert b["cause"] == "killed" and b["restarts"] == 1, b
    finally:
        nc.close()
test_kill.cluster = {"node_args": ("--num-cpus", "2")}


def test_kill_of_a_worker_that_does_not_exit(c):
    """A worker that does not exit within 2 s of ACTOR_KILL (here: stopped)
    is SIGKILLed through its node agent; its lease is freed."""
    nc = nats(c)
    try:
        aid = create(nc, resources={"CPU": 1})
        pid = pid_of(c, wait_actor(c, aid, ("ALIVE",)))
        os.kill(pid, signal.SIGSTOP)
        t0 = time.time()
        r = c.post("/api/v1/actors/%s/kill" % aid, {"no_restart": True})
        assert r.json()["state"] == "DEAD" and r.json()["cause"] == "killed", r
        wait_until(lambda: not running(pid), timeout=15, what="the stopped worker to be killed")
        assert time.time() - t0 >= 1.5, "killed before its grace"
        wait_until(lambda: free_cpu(c) == 2, what="its CPU free again")
        assert "did not exit within 2000 ms of ACTOR_KILL" in open(c.gcs.log_path).read()
    finally:
        nc.close()
test_kill_of_a_worker_that_does_not_exit.cluster = {"node_args": ("--num-cpus", "2")}

def test_owner_gone_kills_a_live_actor(c):
    """An owner that answers PING keeps its actor ALIVE; once it is gone the
    actor is DEAD ("its owner died") and its worker exits. A detached one stays."""
    nc = nats(c)
    owner = FakeOwner(c)
    try:
        aid = create(nc, owner=owner.address, detached=False)
        kept = create(nc, owner=owner.address, detached=True)
        a = wait_actor(c, aid, ("ALIVE",))
        wait_actor(c, kept, ("ALIVE",))
        time.sleep(2.5)
        assert actor(c, aid)["state"] == "ALIVE" and owner.pings >= 2, (actor(c, aid), owner.pings)
        pid = pid_of(c, a)
        owner.close()
        a = wait_actor(c, aid, ("DEAD",), timeout=10)
        assert a["cause"] == "its owner died", a
        wait_until(lambda: not running(pid), what="the actor's worker to exit")
        assert actor(c, kept)["state"] == "ALIVE"
    finally:
        owner.close()
        nc.close()


def test_missing_package_fails_the_constructor(c):
    nc = nats(c)
    try:
        aid = create(nc, package="0" * 64, max_restarts=3)
        a = wait_actor(c, aid, ("DEAD",))
        assert a["cause"].startswith("the constructor failed: ") and "0" * 64 in a["cause"], a
        assert a["restarts"] == 0, a
        bad = create(nc, **{"class": "NoSuchClass"})
        a = wait_actor(c, bad, ("DEAD",))
        assert a["cause"].startswith("the constructor failed: ") and "NoSuchClass" in a["cause"], a
        wait_until(lambda: free_cpu(c) == 2, what="the leases given back")
    finally:
        nc.close()
test_missing_package_fails_the_constructor.cluster = {"node_args": ("--num-cpus", "2")}


def test_node_that_dies_takes_its_actors(c):
    """A node agent that stops heartbeating (SIGSTOP: its workers live on) is
    declared DEAD: its actors restart elsewhere, or die with the cause."""
    nc = nats(c)
    try:
        node1 = [n["node_id"] for n in c.get("/api/v1/nodes").json()["nodes"]][0]
        doomed = create(nc, strategy="NODE_AFFINITY", node_id=node1)
        moving = create(nc, max_restarts=1)
        wait_actor(c, doomed, ("ALIVE",))
        wait_actor(c, moving, ("ALIVE",), node_id=node1)
        c.start_node("node-2")
        c.wait_nodes(2)
        c.nodes["node-1"].p.send_signal(signal.SIGSTOP)
        try:
            a = wait_actor(c, doomed, ("DEAD",), timeout=30)
            assert a["cause"] == "its node died and max_restarts (0) is used up", a
            b = wait_actor(c, moving, ("ALIVE",), restarts=1, timeout=30)
            assert b["node_id"] != node1, b
        finally:
            c.nodes["node-1"].p.send_signal(signal.SIGCONT)
    finally:
        nc.close()


def test_gcs_restart_keeps_alive_actors(c):
    """The GCS is stopped and started again: an ALIVE actor stays ALIVE on the
    same worker (re-attached), and a later crash of that worker still restarts it."""
    nc = nats(c)
    try:
        aid = create(nc, max_restarts=1)
        a = wait_actor(c, aid, ("ALIVE",))
        pid = pid_of(c, a)
        c.stop_proc(c.gcs)
        c.start_gcs()
        time.sleep(1)
        b = wait_actor(c, aid, ("ALIVE",))
        assert b["worker_id"] == a["worker_id"] and running(pid), (a, b)
        assert b["updated_at"] == a["updated_at"], (a, b)
        os.kill(pid, signal.SIGKILL)
        b = wait_actor(c, aid, ("ALIVE",), restarts=1)
        assert b["worker_id"] != a["worker_id"], b
        # killed by the GCS it re-attached to
        c.stop_proc(c.gcs)
        c.start_gcs()
        pid = pid_of(c, b)
        wait_until(lambda: c.post("/api/v1/actors/%s/kill" % aid,
                                  {"no_restart": True}).json()["state"] == "DEAD",
                   what="the kill")
        wait_until(lambda: not running(pid), what="the re-attached worker to exit on the kill")
    finally:
        nc.close()
    gcs_log = open(c.gcs.log_path).read()
    assert "re-attached to worker" in gcs_log, gcs_log[-2000:]


def crash_gcs(c, nc, hook, **fields):
    """Restarts the GCS with the test-only crash `hook` set (docs/actors.md),
    which SIGKILLs it at that point of an actor's creation; creates an actor
    (detached, owner "gcs") and waits for that death. Returns the actor ID."""
    c.stop_proc(c.gcs)
    os.environ[hook] = "1"
    try:
        crashing = c.start_gcs()
    finally:
        del os.environ[hook]
    aid = create(nc, **fields)
    wait_until(lambda: not crashing.alive(), what="the GCS to die (%s)" % hook)
    return aid


def crash_gcs_before_alive(c, nc, **fields):
    """The crash once a constructor's DONE came, before ALIVE is stored."""
    return crash_gcs(c, nc, "PRISM_TEST_GCS_CRASH_BEFORE_ALIVE", **fields)


def test_gcs_crash_between_lease_and_alive_adopts(c):
    """The GCS dies after the worker ran the constructor, before ALIVE was
    stored: started again, it adopts the actor on that worker (ALIVE, no
    restart counted, no second worker); killed, the worker exits and the
    node's CPUs are all free again: no lease is left behind."""
    nc = nats(c)
    try:
        aid = crash_gcs_before_alive(c, nc, resources={"CPU": 1}, max_restarts=1)
        c.start_gcs()
        a = wait_actor(c, aid, ("ALIVE",), restarts=0)
        pid = pid_of(c, a)
        assert running(pid) and free_cpu(c) == 1, (a, free_cpu(c))
        time.sleep(6)  # a report from the worker (every 5 s) must not get it killed
        assert running(pid) and actor(c, aid)["state"] == "ALIVE", actor(c, aid)
        r = c.post("/api/v1/actors/%s/kill" % aid, {"no_restart": True})
        assert r.status == 200 and r.json()["state"] == "DEAD", r
        wait_until(lambda: not running(pid), what="the adopted worker to exit")
        wait_until(lambda: free_cpu(c) == 2, what="the node's CPUs all free again")
    finally:
        nc.close()
    assert "ALIVE: adopted from worker" in open(c.gcs.log_path).read()
test_gcs_crash_between_lease_and_alive_adopts.cluster = {"node_args": ("--num-cpus", "2")}


def test_gcs_crash_after_placing_leases_again(c):
    """The GCS dies once it stored the worker an actor goes to, before that worker got
    the constructor: started again, it finds the worker hosts no such actor, gives the
    lease back and leases again (it used to crash there, reading the connection it had
    just closed); the actor comes up ALIVE."""
    nc = nats(c)
    try:
        aid = crash_gcs(c, nc, "PRISM_TEST_GCS_CRASH_AFTER_PLACED", max_restarts=1)
        gcs = c.start_gcs()
        a = wait_actor(c, aid, ("ALIVE",))
        assert gcs.alive() and running(pid_of(c, a)), a
    finally:
        nc.close()
    log = open(c.gcs.log_path).read()
    assert "is not adopted: this worker hosts no such actor" in log, log[-2000:]
test_gcs_crash_after_placing_leases_again.cluster = {"node_args": ("--num-cpus", "2")}


def test_worker_hosting_an_actor_the_gcs_does_not_run_is_killed(c):
    """The same crash, and the actor's row then says DEAD (as if it had been
    killed for good): the GCS started again does not run it, so the worker's
    next report gets it killed by its node agent and its lease is free."""
    import sqlite3
    nc = nats(c)
    try:
        aid = crash_gcs_before_alive(c, nc, resources={"CPU": 1})
        db = sqlite3.connect(os.path.join(c.dir, "gcs", "gcs.db"))
        with db:
            db.execute("UPDATE actors SET state='DEAD', cause='killed' WHERE id=?", (aid,))
        db.close()
        c.start_gcs()
        assert actor(c, aid)["state"] == "DEAD"
        wait_until(lambda: free_cpu(c) == 2, timeout=20,
                   what="the unknown actor's worker killed and its CPU free again")
    finally:
        nc.close()
    assert "which the GCS does not run: it is killed" in open(c.gcs.log_path).read()
test_worker_hosting_an_actor_the_gcs_does_not_run_is_killed.cluster = {
    "node_args": ("--num-cpus", "2")}


if __name__ == "__main__":
    run([test_create_is_validated, test_rest_api, test_events, test_cli,
         test_infeasible_waits_with_a_reason,
         test_owner_that_dies_takes_its_actor, test_one_ping_per_owner,
         test_no_scheduler_is_a_reason,
         test_gcs_restart_keeps_pending_and_dead, test_restarts_after_the_worker_dies,
         test_max_restarts_zero_dies_at_once, test_unlimited_restarts, test_kill,
         test_kill_of_a_worker_that_does_not_exit,
         test_owner_gone_kills_a_live_actor, test_missing_package_fails_the_constructor,
         test_node_that_dies_takes_its_actors, test_gcs_restart_keeps_alive_actors,
         test_gcs_crash_between_lease_and_alive_adopts, test_gcs_crash_after_placing_leases_again,
         test_worker_hosting_an_actor_the_gcs_does_not_run_is_killed], nodes=1)
