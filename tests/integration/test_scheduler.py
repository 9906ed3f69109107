"""prism-scheduler and the node agents' worker pools, black-box: worker leases
asked over NATS the way owners ask for them (docs/tasks.md), the pools seen
through the node agents' REST API, the scheduler's view through its own.

The workers are the real prism-worker (PRISM_TEST_WORKER_BIN may name another
program that honours the --ready-fd contract)."""
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time

from harness import BIN, run, skip, wait_until

WORKER = os.environ.get("PRISM_TEST_WORKER_BIN") or os.path.join(BIN, "prism-worker")
if not os.access(WORKER, os.X_OK):
    skip("prism-worker is not built in %s" % BIN)
SRC = os.environ.get("PRISM_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class Nats:
    """A minimal NATS client (the text protocol over a socket) for request/reply:
    one wildcard inbox subscription, replies matched by their subject."""

    def __init__(self, port, token):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.inbox = "_INBOX." + secrets.token_hex(8)
        self.replies = {}
        self.cv = threading.Condition()
        self.seq = 0
        self._line()  # INFO
        connect = {"verbose": False, "pedantic": False, "auth_token": token, "name": "test"}
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nSUB " +
                          self.inbox.encode() + b".* 1\r\nPING\r\n")
        while self._line() != b"PONG":
            pass
        self.sock.settimeout(None)
        threading.Thread(target=self._loop, daemon=True).start()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _loop(self):
        try:
            while True:
                line = self._line()
                if line.startswith(b"MSG "):
                    parts = line.split()
                    n = int(parts[-1])
                    while len(self.buf) < n + 2:
                        self._fill()
                    data, self.buf = self.buf[:n], self.buf[n + 2:]
                    with self.cv:
                        self.replies[parts[1].decode()] = json.loads(data)
                        self.cv.notify_all()
                elif line == b"PING":
                    self.sock.sendall(b"PONG\r\n")
        except (EOFError, OSError, ValueError):
            pass

    def request(self, subject, payload, timeout=15):
        with self.cv:
            self.seq += 1
            reply = "%s.%d" % (self.inbox, self.seq)
        data = json.dumps(payload).encode()
        self.sock.sendall(b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply.encode(),
                                                       len(data), data))
        with self.cv:
            if not self.cv.wait_for(lambda: reply in self.replies, timeout):
                raise AssertionError("no answer to %s %s in %ss" % (subject, payload, timeout))
            return self.replies.pop(reply)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- helpers

def nats(c):
    if not hasattr(c, "test_nats"):
        c.test_nats = Nats(c.nats_port, c.token)
    return c.test_nats


def lease(c, resources, **fields):
    fields.setdefault("owner_id", "0" * 31 + "1")
    fields["resources"] = resources
    return nats(c).request("prism.sched.lease", fields)


def granted(c, resources, **fields):
    r = lease(c, resources, **fields)
    assert r.get("ok") is True, r
    return r


def error_code(r):
    return r.get("error", {}).get("code")


def give_back(c, grant):
    r = nats(c).request("prism.node.%s.worker.return" % grant["node_id"],
                        {"lease_id": grant["lease_id"]})
    assert r == {"ok": True}, r


def node_info(c, name):
    """(node_id, REST address) of the live node `name`, from the GCS."""
    for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]:
        if n["name"] == name:
            return n["node_id"], n["address"].rstrip("/")
    raise AssertionError("no live node %s" % name)


def node_get(c, name, path):
    r = c.get(path, base=node_info(c, name)[1])
    assert r.status == 200, r
    return r.json()


def workers(c, name):
    return node_get(c, name, "/api/v1/workers")["workers"]


def view(c):
    r = c.get("/api/v1/scheduler", base=c.scheduler_url)
    assert r.status == 200, r
    return r.json()


def wait_view(c, names, what=None, timeout=20):
    """Waits until the scheduler's view holds exactly the nodes `names`."""
    def ok():
        nodes = view(c)["nodes"]
        return nodes if sorted(n["name"] for n in nodes) == sorted(names) else None
    return wait_until(ok, timeout=timeout, what=what or "the scheduler to see %s" % names)


def wait_idle(c, name, n):
    return wait_until(lambda: (lambda ws: ws if sum(w["state"] == "idle" for w in ws) >= n
                               else None)(workers(c, name)),
                      what="%d idle workers on %s" % (n, name))


def available(c, name, resource):
    return node_get(c, name, "/api/v1/node")["available"].get(resource)


def wait_available(c, name, resource, amount):
    wait_until(lambda: available(c, name, resource) == amount,
               what="%s free on %s to be %s" % (resource, name, amount))
    wait_until(lambda: any(n["name"] == name and n["available"].get(resource) == amount
                           for n in view(c)["nodes"]),
               what="the scheduler to see %s %s free on %s" % (resource, amount, name))


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)


def node_args(cpus, prestart=1, gpus=0, extra=()):
    return ("--worker-bin", WORKER, "--num-cpus", str(cpus), "--num-gpus", str(gpus),
            "--prestart-workers", str(prestart)) + tuple(extra)


# ---------------------------------------------------------------- tests

def test_leases_granted_busy_returned(c):
    wait_view(c, ["node-1"])
    node_id, _ = node_info(c, "node-1")
    wait_idle(c, "node-1", 1)
    a = granted(c, {"CPU": 1})
    assert a["node_id"] == node_id and re.fullmatch(r"[0-9a-f]{32}", a["worker_id"]), a
    assert os.path.exists(a["unix"]) and re.fullmatch(r"[\d.]+:\d+", a["tcp"]), a
    b = granted(c, {"CPU": 1})  # a second worker (started or prestarted) for a second lease
    assert b["worker_id"] != a["worker_id"], (a, b)
    by_id = {w["worker_id"]: w for w in workers(c, "node-1")}
    assert by_id[a["worker_id"]]["state"] == "leased", by_id
    assert by_id[a["worker_id"]]["lease_id"] == a["lease_id"], by_id
    assert by_id[a["worker_id"]]["owner_id"] == "0" * 31 + "1", by_id
    assert available(c, "node-1", "CPU") == 0
    r = lease(c, {"CPU": 1})
    assert error_code(r) == "busy" and "busy" in r["error"]["message"], r
    give_back(c, a)
    give_back(c, a)  # idempotent
    nats(c).request("prism.node.%s.worker.return" % node_id, {"lease_id": "no-such-lease"})
    wait_available(c, "node-1", "CPU", 1)
    w = {w["worker_id"]: w for w in workers(c, "node-1")}[a["worker_id"]]
    assert w["state"] == "idle" and w["lease_id"] is None, w  # back in the pool
    again = granted(c, {"CPU": 1})
    assert again["node_id"] == node_id, again
    metrics = c.get("/metrics", base=c.scheduler_url).body.decode()
    assert re.search(r"^prism_scheduler_lease_grants_total 3$", metrics, re.M), metrics
    assert re.search(r"^prism_scheduler_lease_busy_total 1$", metrics, re.M), metrics
test_leases_granted_busy_returned.cluster = {"node_args": node_args(2)}


def test_warmest_idle_worker_leased_first(c):
    """Of the idle workers, a lease takes the one returned last (warm), never
    a spare that has run nothing while a used one is idle."""
    wait_view(c, ["node-1"])
    a = granted(c, {"CPU": 1})
    b = granted(c, {"CPU": 1})
    assert a["worker_id"] != b["worker_id"], (a, b)
    wait_idle(c, "node-1", 1)  # the spare the pool keeps (--prestart-workers 1)
    spare = [w["worker_id"] for w in workers(c, "node-1") if w["state"] == "idle"]
    give_back(c, b)
    give_back(c, a)
    for _ in range(3):
        again = granted(c, {"CPU": 1})
        assert again["worker_id"] == a["worker_id"], (again, a, b, spare)
        give_back(c, again)
    give_back(c, granted(c, {"CPU": 1}, owner_id="0" * 31 + "2"))
    x, y = granted(c, {"CPU": 1}), granted(c, {"CPU": 1})
    assert {x["worker_id"], y["worker_id"]} == {a["worker_id"], b["worker_id"]}, (x, y, spare)
    give_back(c, x)
    give_back(c, y)
test_warmest_idle_worker_leased_first.cluster = {"node_args": node_args(3)}


def test_infeasible_and_bad_requests(c):
    wait_view(c, ["node-1"])
    r = lease(c, {"CPU": 1, "GPU": 1})
    assert error_code(r) == "infeasible" and r["error"]["message"] == "no node has GPU 1", r
    r = lease(c, {"accel": 2})
    assert error_code(r) == "infeasible" and "no node has accel 2" in r["error"]["message"], r
    r = lease(c, {"CPU": 64})
    assert error_code(r) == "infeasible" and "CPU 64" in r["error"]["message"], r
    for bad in ({"resources": {"CPU": -1}}, {"resources": "CPU"}, {"strategy": "RANDOM"},
                {"strategy": "NODE_AFFINITY"}, {"owner_id": ""}, {"queue_ms": -1},
                {"queue_ms": "1000", "request_id": "1"}, {"queue_ms": 1000},
                {"queue_ms": 1000, "request_id": "x" * 65}):
        fields = dict({"owner_id": "o", "resources": {"CPU": 1}}, **bad)
        r = nats(c).request("prism.sched.lease", fields)
        assert error_code(r) == "invalid_argument", (bad, r)
    r = nats(c).request("prism.sched.lease", {"owner_id": "o"})  # no resources: none needed
    assert r.get("ok") is True, r
test_infeasible_and_bad_requests.cluster = {"node_args": node_args(2)}


def test_gpu_lease_gets_its_own_worker(c):
    wait_view(c, ["node-1"])
    pool = wait_idle(c, "node-1", 1)
    assert environ(pool[0]["pid"]).get(b"CUDA_VISIBLE_DEVICES") == b"", pool
    g = granted(c, {"CPU": 1, "GPU": 1})
    w = {w["worker_id"]: w for w in workers(c, "node-1")}[g["worker_id"]]
    assert w["dedicated"] and w["gpus"] == [0] and w["state"] == "leased", w
    assert environ(w["pid"]).get(b"CUDA_VISIBLE_DEVICES") == b"0", w
    assert available(c, "node-1", "GPU") == 1
    h = granted(c, {"GPU": 1})
    assert environ({x["worker_id"]: x for x in workers(c, "node-1")}[h["worker_id"]]["pid"]).get(
        b"CUDA_VISIBLE_DEVICES") == b"1"
    assert error_code(lease(c, {"GPU": 1})) == "busy"
    give_back(c, g)
    wait_until(lambda: g["worker_id"] not in [x["worker_id"] for x in workers(c, "node-1")],
               what="the GPU worker to stop after its lease was returned")
    wait_available(c, "node-1", "GPU", 1)
    give_back(c, h)
    wait_available(c, "node-1", "GPU", 2)
test_gpu_lease_gets_its_own_worker.cluster = {"node_args": node_args(4, gpus=2)}


def test_fractional_gpus_share_a_device(c):
    """GPU below 1 is a share of one device, as Ray's fractional GPUs: shares
    are packed onto the device most shared that has room, and each worker
    sees that device; a whole lease takes only a device nobody shares; a
    share is free again once its worker has gone."""
    wait_view(c, ["node-1"])

    def device(g):
        w = {x["worker_id"]: x for x in workers(c, "node-1")}[g["worker_id"]]
        assert w["dedicated"] and len(w["gpus"]) == 1, w
        assert environ(w["pid"]).get(b"CUDA_VISIBLE_DEVICES") == str(w["gpus"][0]).encode(), w
        return w["gpus"][0]

    a = granted(c, {"CPU": 0.1, "GPU": 0.5})
    b = granted(c, {"CPU": 0.1, "GPU": 0.25})
    assert device(a) == device(b) == 0, (a, b)
    assert available(c, "node-1", "GPU") == 1.25
    whole = granted(c, {"GPU": 1})
    assert device(whole) == 1, whole  # device 0 is shared: not whole
    assert available(c, "node-1", "GPU") == 0.25
    assert error_code(lease(c, {"GPU": 1})) == "busy"
    assert error_code(lease(c, {"GPU": 0.5})) == "busy"  # 0.25 left, on device 0
    last = granted(c, {"GPU": 0.25})
    assert device(last) == 0
    assert available(c, "node-1", "GPU") == 0
    for g in (a, b, last, whole):
        give_back(c, g)
    wait_available(c, "node-1", "GPU", 2)
    # Shares are counted exactly: three tenths and back leave two devices.
    tenths = [granted(c, {"CPU": 0.1, "GPU": 0.1}) for _ in range(3)]
    assert {device(g) for g in tenths} == {0} and available(c, "node-1", "GPU") == 1.7
    for g in tenths:
        give_back(c, g)
    wait_available(c, "node-1", "GPU", 2)
    # Above 1 a lease takes whole devices only.
    r = nats(c).request("prism.node.%s.worker.lease" % a["node_id"],
                        {"lease_id": "l-frac", "owner_id": "o", "resources": {"GPU": 1.5}})
    assert error_code(r) == "invalid_argument" and "whole number" in r["error"]["message"], r
test_fractional_gpus_share_a_device.cluster = {"node_args": node_args(4, gpus=2)}


def test_spread_alternates_nodes(c):
    wait_view(c, ["node-1", "node-2"])
    grants = [granted(c, {"CPU": 0.5}, strategy="SPREAD") for _ in range(4)]
    names = {node_info(c, n)[0]: n for n in ("node-1", "node-2")}
    seq = [names[g["node_id"]] for g in grants]
    assert seq[0] != seq[1] and seq[0] == seq[2] and seq[1] == seq[3], seq
    for g in grants:
        give_back(c, g)
test_spread_alternates_nodes.cluster = {"nodes": 2, "node_args": node_args(4)}


def test_node_affinity_and_locality(c):
    c.start_node("node-1", *node_args(4))
    c.start_node("node-2", *node_args(1))
    c.wait_nodes(2)
    wait_view(c, ["node-1", "node-2"])
    n1, n2 = node_info(c, "node-1")[0], node_info(c, "node-2")[0]
    hard = granted(c, {"CPU": 1}, strategy="NODE_AFFINITY", node_id=n2)
    assert hard["node_id"] == n2, hard
    wait_available(c, "node-2", "CPU", 0)  # node-2 has 1 CPU: now full
    r = lease(c, {"CPU": 1}, strategy="NODE_AFFINITY", node_id=n2)
    assert error_code(r) == "busy", r
    soft = granted(c, {"CPU": 1}, strategy="NODE_AFFINITY", node_id=n2, soft=True)
    assert soft["node_id"] == n1, soft
    r = lease(c, {"CPU": 1}, strategy="NODE_AFFINITY", node_id="f" * 32)
    assert error_code(r) == "infeasible" and "not alive" in r["error"]["message"], r
    r = lease(c, {"CPU": 2}, strategy="NODE_AFFINITY", node_id=n2)
    assert error_code(r) == "infeasible" and "does not have CPU 2" in r["error"]["message"], r
    give_back(c, hard)
    wait_available(c, "node-2", "CPU", 1)
    # DEFAULT: the node holding most of the arguments' bytes wins over the least loaded.
    loc = granted(c, {"CPU": 0.5}, locality={n2: 1 << 20, n1: 10})
    assert loc["node_id"] == n2, loc
    give_back(c, loc)
    give_back(c, soft)
test_node_affinity_and_locality.cluster = {"nodes": 0}


def test_worker_killed_frees_its_lease(c):
    wait_view(c, ["node-1"])
    wait_idle(c, "node-1", 1)
    g = granted(c, {"CPU": 1})
    w = {w["worker_id"]: w for w in workers(c, "node-1")}[g["worker_id"]]
    wait_idle(c, "node-1", 1)  # the pool was topped up after the lease
    os.kill(w["pid"], signal.SIGKILL)
    wait_until(lambda: g["worker_id"] not in [x["worker_id"] for x in workers(c, "node-1")],
               what="the killed worker to be reaped")
    wait_available(c, "node-1", "CPU", 2)
    idle = wait_idle(c, "node-1", 1)
    assert all(x["pid"] != w["pid"] for x in idle), idle
    # An idle worker killed is replaced too.
    victim = idle[0]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_until(lambda: (lambda ws: victim["worker_id"] not in [x["worker_id"] for x in ws]
                        and any(x["state"] == "idle" for x in ws))(workers(c, "node-1")),
               what="a replacement for the killed idle worker")
    granted(c, {"CPU": 2})
test_worker_killed_frees_its_lease.cluster = {"node_args": node_args(2)}


def test_scheduler_api(c):
    nodes = wait_view(c, ["node-1", "node-2"])
    doc = view(c)
    assert re.fullmatch(r"[0-9a-f]{32}", doc["scheduler_id"]), doc
    assert set(doc["leases"]) >= {"requests", "grants", "infeasible", "busy"}, doc
    for n in nodes:
        assert set(n) == {"node_id", "name", "total", "available", "workers_idle",
                          "last_report", "bundles"}, n
        assert n["bundles"] == [], n
        assert n["total"]["CPU"] == 2 and n["available"]["CPU"] == 2, n
        assert abs(n["last_report"] - time.time() * 1000) < 10000, n
    assert c.get("/api/v1/scheduler", base=c.scheduler_url, token=None).status == 401
    assert c.get("/healthz", base=c.scheduler_url, token=None).status == 200
    metrics = c.get("/metrics", base=c.scheduler_url).body.decode()
    for name in ("prism_scheduler_lease_requests_total", "prism_scheduler_lease_grants_total",
                 "prism_scheduler_lease_infeasible_total", "prism_scheduler_lease_busy_total",
                 "prism_scheduler_nodes"):
        assert re.search(r"^%s " % name, metrics, re.M), (name, metrics)
    check_spec(c)
    # A node that dies leaves the view (DEAD event or silence).
    c.nodes["node-2"].kill()
    wait_view(c, ["node-1"], what="node-2 to leave the scheduler's view")
    r = lease(c, {"CPU": 1}, strategy="NODE_AFFINITY", node_id=nodes[1]["node_id"])
    assert error_code(r) == "infeasible", r
test_scheduler_api.cluster = {"nodes": 2, "node_args": node_args(2)}


# ---------------------------------------------------------------- the lease queue

PROBE = os.path.join(BIN, "task_probe")


def owner(c, n, ms):
    """task_probe submitting n sleep(ms) tasks at once, as its own owner (a
    driver process); returns it once it said "submitted"."""
    if not os.access(PROBE, os.X_OK):
        skip("task_probe is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    env.pop("PRISM_HOME", None)
    p = subprocess.Popen([PROBE, "sleeps", str(n), str(ms)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    assert line == "submitted", (line, p.stderr.read() if p.poll() is not None else "")
    return p


def results(p):
    """The wall-clock ms at which each of the owner's results came, in order."""
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and "sleeps ok" in out, (p.returncode, out, err)
    return [int(line.split()[2]) for line in out.splitlines() if line.startswith("done ")]


def metric(c, name):
    text = c.get("/metrics", base=c.scheduler_url).body.decode()
    m = re.search(r"^%s ([0-9.e+]+)$" % name, text, re.M)
    assert m, (name, text)
    return float(m.group(1))


def test_queued_owners_take_turns(c):
    """Two owners with more tasks than the node has CPUs both make progress at
    once: the second one's requests wait in the scheduler's queue (not
    answered busy) and the first one gives its leases back in turn, so the
    second's first task ends long before the first's last (without the
    queue, the first kept both CPUs until its 8 tasks were done)."""
    wait_view(c, ["node-1"])
    first = owner(c, 8, 300)
    time.sleep(0.2)  # it holds both CPUs now
    second = owner(c, 4, 300)
    try:
        a, b = results(first), results(second)
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.kill()
    assert len(a) == 8 and len(b) == 4, (a, b)
    assert b[0] < a[-1] - 300, ("the second owner waited for the first to finish", a, b)
    assert metric(c, "prism_scheduler_lease_queued_total") >= 1
    assert metric(c, "prism_scheduler_lease_queue_grants_total") >= 1
    # Nothing is left waiting, and no grant went to a request nobody wanted.
    wait_until(lambda: metric(c, "prism_scheduler_lease_queue_length") == 0,
               what="the lease queue to empty")
    wait_available(c, "node-1", "CPU", 2)
test_queued_owners_take_turns.cluster = {"node_args": node_args(2, prestart=2)}


def test_queued_request_granted_when_room_comes(c):
    """A request the node has no room for waits in the queue (the gauge shows
    it) and is granted when the lease holding the CPU is returned: the owner
    asked once and was never answered busy."""
    wait_view(c, ["node-1"])
    holder = owner(c, 1, 1500)
    wait_available(c, "node-1", "CPU", 0)
    waiter = owner(c, 1, 100)
    try:
        wait_until(lambda: metric(c, "prism_scheduler_lease_queue_length") == 1,
                   what="the second owner's request to wait in the queue")
        assert view(c)["waiting"] == 1
        assert metric(c, "prism_scheduler_lease_queue_grants_total") == 0
        a, b = results(holder), results(waiter)
    finally:
        for p in (holder, waiter):
            if p.poll() is None:
                p.kill()
    assert b[0] >= a[0], (a, b)  # it ran once the CPU was free
    assert metric(c, "prism_scheduler_lease_queued_total") == 1
    assert metric(c, "prism_scheduler_lease_queue_grants_total") == 1
    assert metric(c, "prism_scheduler_lease_busy_total") == 0  # no busy answer, no retry
    assert metric(c, "prism_scheduler_lease_requests_total") == 2  # one request each
    assert metric(c, "prism_scheduler_lease_queue_length") == 0
    doc = view(c)
    assert doc["waiting"] == 0 and doc["leases"]["queue_grants"] == 1, doc
    wait_available(c, "node-1", "CPU", 1)
test_queued_request_granted_when_room_comes.cluster = {"node_args": node_args(1)}


def test_owner_killed_while_queued_leaks_no_lease(c):
    """An owner killed while its request waits is dropped from the queue (its
    owner subject has no responder any more): when the CPU frees up no lease
    goes to it, and the node's resources come back in full."""
    wait_view(c, ["node-1"])
    holder = owner(c, 1, 3000)
    wait_available(c, "node-1", "CPU", 0)
    victim = owner(c, 3, 200)
    try:
        wait_until(lambda: metric(c, "prism_scheduler_lease_queue_length") == 1,
                   what="the victim's request to wait in the queue")
        victim.kill()
        victim.wait(timeout=10)
        wait_until(lambda: metric(c, "prism_scheduler_lease_queue_length") == 0, timeout=10,
                   what="the dead owner's request to leave the queue")
        assert metric(c, "prism_scheduler_lease_queue_dropped_total") == 1
        assert len(results(holder)) == 1
    finally:
        for p in (holder, victim):
            if p.poll() is None:
                p.kill()
    assert metric(c, "prism_scheduler_lease_queue_grants_total") == 0
    wait_available(c, "node-1", "CPU", 1)
    wait_until(lambda: all(w["state"] == "idle" for w in workers(c, "node-1")),
               what="every worker idle, none leased to the dead owner")
test_owner_killed_while_queued_leaks_no_lease.cluster = {"node_args": node_args(1)}


def test_queued_request_survives_a_scheduler_crash(c):
    """The scheduler holding a waiting request dies (SIGKILL: no answer to
    anyone) and a new one starts: the owner, asking again now and then
    under the same request_id, has its request queued by the new one, and
    granted when the CPU frees up, well before its own 60 s limit."""
    wait_view(c, ["node-1"])
    holder = owner(c, 1, 8000)  # past the owner's asking again (every 5 s)
    wait_available(c, "node-1", "CPU", 0)
    waiter = owner(c, 1, 100)
    try:
        wait_until(lambda: metric(c, "prism_scheduler_lease_queue_length") == 1,
                   what="the request to wait in the queue")
        c.scheduler.kill()
        killed = time.time()
        c.start_scheduler()
        wait_until(lambda: metric(c, "prism_scheduler_lease_queue_length") == 1, timeout=15,
                   what="the owner's request to wait in the new scheduler's queue")
        done = results(waiter)[0] / 1000.0
        results(holder)
    finally:
        for p in (holder, waiter):
            if p.poll() is None:
                p.kill()
    assert done - killed < 15, done - killed
    assert metric(c, "prism_scheduler_lease_queue_grants_total") == 1
    wait_available(c, "node-1", "CPU", 1)
test_queued_request_survives_a_scheduler_crash.cluster = {"node_args": node_args(1)}


def check_spec(c):
    """openapi/scheduler.yaml is well formed, documents exactly the routes
    `prism-scheduler --print-routes` serves, and GET /api/v1/scheduler matches it."""
    try:
        import yaml  # noqa: F401 (test_openapi needs it)
    except ImportError:
        print("  NOTE: python3-yaml is missing: openapi/scheduler.yaml is not checked")
        return
    from test_openapi import Spec
    from test_openapi import check_spec as well_formed
    spec = Spec("scheduler.yaml")
    problems = []
    well_formed(spec, problems)
    assert not problems, problems
    out = subprocess.run([os.path.join(BIN, "prism-scheduler"), "--print-routes"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    served = {tuple(line.split()) for line in out.splitlines() if line.strip()}
    assert served == spec.route_set(), (served, spec.route_set())
    schema = spec.op("GET", "/api/v1/scheduler")["responses"]["200"]["content"][
        "application/json"]["schema"]
    errors = spec.errors(schema, view(c))
    assert not errors, errors


if __name__ == "__main__":
    run([test_leases_granted_busy_returned, test_warmest_idle_worker_leased_first,
         test_infeasible_and_bad_requests,
         test_gpu_lease_gets_its_own_worker,
         test_fractional_gpus_share_a_device, test_spread_alternates_nodes,
         test_node_affinity_and_locality,
         test_worker_killed_frees_its_lease, test_scheduler_api, test_queued_owners_take_turns,
         test_queued_request_granted_when_room_comes,
         test_owner_killed_while_queued_leaks_no_lease,
         test_queued_request_survives_a_scheduler_crash])
