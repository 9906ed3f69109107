"""Tasks end to end: a C driver (task_probe) against real schedulers, node
agents, workers and object stores."""
import http.server
import json
import os
import signal
import subprocess
import threading
import time

from harness import BIN, kill_quietly, run, skip, wait_until

PROBE = os.path.join(BIN, "task_probe")
PACKAGE = os.path.join(BIN, "..", "examples", "example_tasks.so")


def probe_env(c, node="node-1", **more):
    """task_probe's environment: the cluster, `node`'s object store, and `more` variables."""
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", node, "objectstore.sock"), **more)
    env.pop("PRISM_HOME", None)
    return env


def probe(c, *args, node="node-1", timeout=180, check=True):
    if not os.access(PROBE, os.X_OK) or not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("task_probe or prism-worker is not built")
    env = probe_env(c, node)
    r = subprocess.run([PROBE] + [str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, "probe %s failed (%d):\n%s\n%s" % (args, r.returncode, r.stdout,
                                                                    r.stderr)
    return r


def upload_package(c):
    with open(PACKAGE, "rb") as f:
        r = c.request("POST", "/api/v1/packages", raw=f.read())
    assert r.status in (200, 201), r
    return r.json()["sha256"]


def test_seed_program(c):
    out = probe(c, "seed").stdout
    assert "seed ok" in out, out


def test_seed_as_a_job(c):
    jid = c.submit(os.path.abspath(os.path.join(BIN, "prism-example-seed")))
    j = c.wait_job(jid, timeout=60)
    assert j["state"] == "SUCCEEDED", (j, c.logs(jid))
    assert "5x5 tensor" in c.logs(jid) and "Counter: [1, 2]" in c.logs(jid), c.logs(jid)


def test_ten_thousand_tasks(c):
    out = probe(c, "many", 10000).stdout
    assert "10000 results right" in out, out
    def counts():
        j = c.get("/api/v1/tasks?limit=1").json()
        return j["kept"], j["dropped"]

    # Every outcome reaches the task list, or is counted as left out (owners
    # send at most 2,500 successes per batch). A task that waited past a second
    # was also listed as PENDING, so one whose success was left out counts
    # twice: at least 10,000, then no more changes.
    wait_until(lambda: sum(counts()) >= 10000, timeout=20,
               what="10,000 task outcomes kept or counted as dropped")
    base = counts()
    for _ in range(100):
        time.sleep(0.6)  # three of the owners' 200 ms flushes
        now = counts()
        if now == base:
            break
        base = now
    # Failures are all sent: 10,000 of them make batches larger than a NATS
    # message. Each is a task of its own, listed once whether it also waited.
    assert "failmany ok" in probe(c, "failmany", 10000).stdout
    wait_until(lambda: counts()[0] - base[0] == 10000, timeout=20,
               what="the 10,000 failures in the task list too")
    assert counts()[1] == base[1], "failures were counted as dropped"


test_ten_thousand_tasks.cluster = {"gcs_args": ("--task-list-size", "30000")}


def test_nested_tasks(c):
    assert "3 levels" in probe(c, "nested", 3).stdout


def test_errors_are_clear(c):
    out = probe(c, "errors").stdout
    assert "builtin/fail: boom" in out and "no function 'no_such_function'" in out, out


def test_package_tasks(c):
    sha = upload_package(c)
    assert "package ok" in probe(c, "package", sha).stdout


def test_worker_crash_is_retried_then_fails(c):
    sha = upload_package(c)
    out = probe(c, "crash", sha).stdout
    assert "crash ok" in out and "seed ok" in out, out


def test_kill_worker_mid_task(c):
    p = subprocess.Popen([PROBE, "sleep", "3000"], env=probe_env(c), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "submitted"

        time.sleep(1.0)
        pids = c.worker_pids()
        assert pids, "no workers found"
        for pid in pids:  # every worker: the one running the task is among them
            kill_quietly(pid)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "sleep ok after retry" in out, (out, err)
    finally:
        if p.poll() is None:
            p.kill()


def test_stores_empty_after_the_program(c):
    sha = upload_package(c)
    probe(c, "package", sha)
    probe(c, "seed")
    wait_until(lambda: c.store_stats("node-1")["objects"] == 0, timeout=20,
               what="object store of node-1 to be empty")



def test_long_tasks_run_side_by_side(c):
    """Four 3-second tasks on a 4-CPU node each get a worker of their own and
    run at the same time, rather than queue behind one another on the first
    worker leased (an owner pipelines tasks onto its workers only once the
    scheduler has no room for more). 3 s, not 1: a worker the node starts
    for the fourth takes up to a second under ThreadSanitizer and load, and
    the first worker, free by then, would rightly take the task."""
    if not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("prism-worker is not built")
    ids = [c.post("/api/v1/tasks", {"package": "builtin", "function": "sleep", "args": [3000]})
           .json()["object_ids"][0] for _ in range(4)]
    for oid in ids:
        assert c.get("/api/v1/objects/%s?timeout_ms=30000" % oid).json()["state"] == "READY"
    done = wait_until(lambda: (lambda ts: ts if len(ts) == 4 else None)(
        [t for t in c.get("/api/v1/tasks?limit=100").json()["tasks"]
         if t["name"] == "builtin/sleep" and t["state"] == "FINISHED"]),
        timeout=20, what="the four tasks listed FINISHED")
    assert len({t["worker_id"] for t in done}) == 4, done
    # every one started before any ended: they ran together
    assert max(t["started_at"] for t in done) < min(t["ended_at"] for t in done), done


def test_rest_tasks(c):
    """A curl user runs the seed program through the GCS, which owns the objects."""
    if not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("prism-worker is not built")
    r = c.post("/api/v1/tasks", {"package": "builtin", "function": "zeros", "args": [[5, 5]]})
    assert r.status == 201, r
    o1 = r.json()["object_ids"][0]
    o2 = c.post("/api/v1/tasks", {"package": "builtin", "function": "zeros",
                                  "args": [[5, 5]]}).json()["object_ids"][0]
    r = c.post("/api/v1/tasks", {"package": "builtin", "function": "add",
                                 "args": [{"$ref": o1}, {"$ref": o2}]})
    assert r.status == 201 and r.json()["owner"] == "gcs", r
    o3 = r.json()["object_ids"][0]
    d = c.get("/api/v1/objects/%s?timeout_ms=30000" % o3).json()
    assert d["state"] == "READY" and d["value"]["kind"] == "tensor", d
    assert d["value"]["shape"] == [5, 5] and d["value"]["dtype"] == "float64", d
    raw = c.get("/api/v1/objects/%s?format=raw&timeout_ms=1000" % o3)
    assert raw.status == 200 and raw.body == b"\0" * 200, raw
    s = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [2, 40]})
    d = c.get("/api/v1/objects/%s?timeout_ms=30000" % s.json()["object_ids"][0]).json()
    assert d["value"] == {"kind": "json", "value": 42}, d
    f = c.post("/api/v1/tasks", {"package": "builtin", "function": "fail", "args": ["nope"]})
    d = c.get("/api/v1/objects/%s?timeout_ms=30000" % f.json()["object_ids"][0]).json()
    assert d["state"] == "FAILED" and d["error"]["message"] == "nope", d
    assert d["error"]["task"] == "builtin/fail", d
    slow = c.post("/api/v1/tasks", {"package": "builtin", "function": "sleep", "args": [3000]})
    r = c.get("/api/v1/objects/%s" % slow.json()["object_ids"][0])
    assert r.status == 202 and r.json()["state"] == "PENDING", r
    listed = wait_until(lambda: (lambda d: d if d["total"] == 6 else None)(
        c.get("/api/v1/objects").json()), what="the GCS's six objects listed")
    assert {o["owner"] for o in listed["objects"]} == {"gcs"}, listed
    assert c.get("/api/v1/objects?owner=gcs&state=FAILED").json()["total"] == 1
    assert c.request("DELETE", "/api/v1/objects/" + o1).json() == {"deleted": True}
    assert c.get("/api/v1/objects/" + o1).status == 404
    for bad, code in (({"function": "x"}, 400), ({"package": "builtin", "function": "echo",
                                                   "args": "x"}, 400),
                      ({"package": "builtin", "function": "echo", "args": [{"$ref": "f" * 40}]}, 404),
                      ({"package": "builtin", "function": "echo",
                        "options": {"strategy": "NOWHERE"}}, 400)):
        r = c.post("/api/v1/tasks", bad)
        assert r.status == code, (bad, r)
    # Options a lease could never be granted for, refused at once (not a
    # task that waits for ever while its lease is refused again and again).
    for options in ({"resources": {"GPU": "x"}}, {"resources": {"CPU": -1}},
                    {"strategy": "NODE_AFFINITY"}, {"max_retries": 1e10}, {"max_retries": 2.5},
                    {"max_retries": -2}, {"num_returns": 1.9}, {"retry_exceptions": "yes"},
                    {"soft": 1}):
        r = c.post("/api/v1/tasks", {"package": "builtin", "function": "echo",
                                     "options": options})
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (options, r)
    r = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [1, 1],
                                 "options": {"max_retries": -1, "resources": {"CPU": 0.5}}})
    d = c.get("/api/v1/objects/%s?timeout_ms=30000" % r.json()["object_ids"][0]).json()
    assert d["value"] == {"kind": "json", "value": 2}, d



def test_lost_object_is_rebuilt(c):
    """A stored result whose node dies is made again from its lineage on get."""
    c.start_node("node-2", "--num-cpus", "4")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    p = subprocess.Popen([PROBE, "reconstruct", nodes["node-2"]], env=probe_env(c),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "first get ok", p.stderr.read()
        c.nodes["node-2"].kill()
        c.stores["node-2"].kill()
        for pid in c.worker_pids("node-2"):
            kill_quietly(pid)
        wait_until(lambda: c.get("/api/v1/nodes/" + nodes["node-2"]).json()["state"] == "DEAD",
                   what="node-2 DEAD")
        out, err = p.communicate("go\n", timeout=120)
        assert p.returncode == 0 and "lost argument rebuilt ok" in out, (out, err)
        assert "reconstructed ok" in out, (out, err)
    finally:
        if p.poll() is None:
            p.kill()



def test_value_from_another_node_through_the_local_store(c):
    """A driver with a store of its own gets a value stored on another node by
    having its store pull it (which vouches for the source store) and reads
    it there zero-copy: the token never goes to a store named in a reply."""
    c.start_node("node-2", "--num-cpus", "4")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    before = c.store_stats("node-1")["transfer_in_bytes_total"]
    env = probe_env(c, PRISM_STORE_URL=c.store_addresses["node-1"])
    r = subprocess.run([PROBE, "remoteget", nodes["node-2"]], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "remoteget ok" in r.stdout, (r.stdout, r.stderr)
    assert c.store_stats("node-1")["transfer_in_bytes_total"] - before >= 400000


def test_infeasible_task_waits_for_a_node(c):
    """A task asking for what no node has stays pending with a reason, then runs."""
    r = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [1, 2],
                                 "options": {"resources": {"special": 1}}})
    oid = r.json()["object_ids"][0]
    d = wait_until(lambda: (lambda x: x if "special" in x.get("reason", "") else None)(
        c.get("/api/v1/objects/%s?timeout_ms=200" % oid).json()), what="a pending reason")
    assert d["state"] == "PENDING" and "no node" in d["reason"], d
    c.start_node("special-node", "--resources", '{"special": 1}')
    d = c.get("/api/v1/objects/%s?timeout_ms=30000" % oid).json()
    assert d["state"] == "READY" and d["value"]["value"] == 3, d



def test_task_waits_for_a_scheduler(c):
    """With no scheduler running, a task stays pending and says why (its owner's lease request
    got the bus's no-responders notice), then runs once a scheduler starts."""
    c.scheduler.kill()
    r = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [2, 3],
                                 "options": {"num_cpus": 1.25}})
    oid = r.json()["object_ids"][0]
    d = wait_until(lambda: (lambda x: x if "scheduler" in x.get("reason", "") else None)(
        c.get("/api/v1/objects/%s?timeout_ms=200" % oid).json()), what="a pending reason")
    assert d["state"] == "PENDING" and "none is running" in d["reason"], d
    c.start_scheduler()
    d = c.get("/api/v1/objects/%s?timeout_ms=30000" % oid).json()
    assert d["state"] == "READY" and d["value"]["value"] == 5, d


def test_200mib_argument_from_another_node(c):
    c.start_node("node-2", "--num-cpus", "4")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    out = probe(c, "bigarg", nodes["node-1"], nodes["node-2"]).stdout
    assert "bigarg ok" in out, out
    stats = c.store_stats("node-2")
    assert stats["transfer_in_bytes_total"] >= 200 << 20, stats
test_200mib_argument_from_another_node.cluster = {"store_memory": "512MiB"}



def test_task_list(c):
    """Owners report their tasks; GET /api/v1/tasks shows the recent ones."""
    probe(c, "seed")
    probe(c, "errors")
    r = c.post("/api/v1/tasks", {"package": "builtin", "function": "echo", "args": [1],
                                 "options": {"resources": {"nowhere": 1}}})
    assert r.status == 201, r
    echo = r.json()["object_ids"][0]

    def listed():
        tasks = c.get("/api/v1/tasks?limit=1000").json()["tasks"]
        names = {(t["name"], t["state"]) for t in tasks}
        want = {("builtin/zeros", "FINISHED"), ("builtin/add", "FINISHED"),
                ("builtin/fail", "FAILED"), ("builtin/echo", "PENDING")}
        return tasks if want <= names else None
    tasks = wait_until(listed, timeout=20, what="the task list")
    done = [t for t in tasks if t["name"] == "builtin/zeros"][0]
    assert done["node_id"] and done["worker_id"] and done["ended_at"] >= done["started_at"], done
    failed = [t for t in tasks if t["name"] == "builtin/fail"][0]
    assert failed["error"], failed
    pending = [t for t in tasks if t["name"] == "builtin/echo"][0]
    assert "nowhere" in pending["reason"], pending
    only_failed = c.get("/api/v1/tasks?state=FAILED").json()["tasks"]
    assert only_failed and {t["state"] for t in only_failed} == {"FAILED"}, only_failed
    assert c.get("/api/v1/tasks?state=DONE").status == 400
    cli = [os.path.join(BIN, "prism"), "--address", c.url, "--token", c.token]
    out = subprocess.run(cli + ["task", "list", "--state", "FAILED"], capture_output=True,
                         text=True, timeout=30)
    rows = out.stdout.splitlines()[1:]
    assert out.returncode == 0 and any("builtin/fail" in r and "boom" in r for r in rows), out
    assert all(" FAILED " in r for r in rows), out
    out = wait_until(lambda: (lambda o: o if echo in o.stdout else None)(
        subprocess.run(cli + ["object", "list"], capture_output=True, text=True, timeout=30)),
        what="the pending object in prism object list")
    row = [r for r in out.stdout.splitlines() if echo in r][0]
    assert out.returncode == 0 and "OBJECT ID" in out.stdout, out
    assert row.split()[1:3] == ["gcs", "PENDING"], out



def start_holder(c, node_id, remote_node):
    """A driver on node-1 (`node_id`) holding objects of every kind, one made
    on `remote_node`, until its stdin closes (task_probe hold)."""
    if not os.access(PROBE, os.X_OK):
        skip("task_probe is not built")
    return subprocess.Popen([PROBE, "hold", remote_node], env=probe_env(c, PRISM_NODE_ID=node_id),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_holder(p):
    """The holder's owner address and {name: object_id}, once it says ready."""
    ids = {}
    for line in p.stdout:
        if line.strip() == "ready":
            return ids.pop("owner"), ids
        name, value = line.split()
        ids[name] = value
    raise AssertionError("the holder ended early: %s" % p.stderr.read())


def test_object_list(c):
    """Every owner reports its objects: GET /api/v1/objects lists them with
    owner, state, size, place and references; filters work; an owner's
    objects go when it exits, or soon after it is killed."""
    c.start_node("node-2", "--num-cpus", "4")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    n1, n2 = nodes["node-1"], nodes["node-2"]
    holder, victim = start_holder(c, n1, n2), start_holder(c, n1, n2)
    try:
        owner, ids = read_holder(holder)
        victim_owner, _ = read_holder(victim)

        def listed(query):
            r = c.get("/api/v1/objects?" + query)
            assert r.status == 200, r
            return r.json()
        def all_six():
            d = listed("owner=" + owner)
            states = sorted(o["state"] for o in d["objects"])  # reports lag up to a second
            settled = states == ["FAILED", "PENDING", "READY", "READY", "READY", "READY"]
            return d if d["total"] == 6 and settled else None
        got = wait_until(all_six, what="the holder's six objects")
        objs = {o["object_id"]: o for o in got["objects"]}
        assert set(objs) == set(ids.values()) and got["unreported"] == 0, (got, ids)
        by = {name: objs[oid] for name, oid in ids.items()}
        for o in by.values():
            assert o["owner"] == owner and o["owner_node_id"] == n1, o
        want = {  # name: (state, source, location, node, refs)
            "small": ("READY", "put", "owner", n1, 1), "big": ("READY", "put", "store", n1, 1),
            "answer": ("READY", "task", "owner", n1, 2), "remote": ("READY", "task", "store", n2, 1),
            "failed": ("FAILED", "task", "owner", n1, 1), "pending": ("PENDING", "task", None, None, 1)}
        for name, (state, source, location, node, refs) in want.items():
            o = by[name]
            assert (o["state"], o["source"], o.get("location"), o.get("node_id"), o["refs"]) == \
                (state, source, location, node, refs), (name, o)
        assert 256 << 10 <= by["big"]["size"] < (256 << 10) + 256, by["big"]
        assert 320000 <= by["remote"]["size"] < 320000 + 256, by["remote"]
        assert 0 < by["small"]["size"] < 100 and 0 < by["answer"]["size"] < 100, by
        assert by["failed"]["size"] == 0 and by["pending"]["size"] == 0, by

        # filters, the union of owners, limits
        everyone = wait_until(lambda: (lambda d: d if d["total"] == 12 and listed(
            "state=PENDING")["total"] == 2 else None)(listed("limit=1000")),
            what="both holders' objects, settled")
        assert {o["owner"] for o in everyone["objects"]} == {owner, victim_owner}, everyone
        ready = listed("owner=%s&state=READY" % owner)
        assert ready["total"] == 4 and {o["state"] for o in ready["objects"]} == {"READY"}, ready
        on_n2 = listed("node_id=" + n2)
        assert on_n2["total"] == 2 and {o["node_id"] for o in on_n2["objects"]} == {n2}, on_n2
        assert ids["remote"] in {o["object_id"] for o in on_n2["objects"]}, on_n2
        pending = listed("state=PENDING&owner=" + owner)["objects"]
        assert [o["object_id"] for o in pending] == [ids["pending"]], pending
        page = listed("limit=2")
        assert len(page["objects"]) == 2 and page["total"] == 12, page
        assert listed("owner=nobody") == {"objects": [], "total": 0, "unreported": 0}
        for bad in ("limit=-1", "limit=abc", "limit=0", "limit=1001", "state=BOGUS", "state="):
            r = c.get("/api/v1/objects?" + bad)
            assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument" and \
                r.json()["error"]["message"], (bad, r)
        metrics = c.get("/metrics").body.decode()
        assert "prism_gcs_objects 12" in metrics and "prism_gcs_object_owners 2" in metrics, metrics

        cli = [os.path.join(BIN, "prism"), "--address", c.url, "--token", c.token]
        out = subprocess.run(cli + ["object", "list", "--owner", owner, "--state", "READY"],
                             capture_output=True, text=True, timeout=30)
        rows = out.stdout.splitlines()
        assert out.returncode == 0 and rows[0].split()[:3] == ["OBJECT", "ID", "OWNER"], out
        assert len(rows) == 5 and all(owner in r and " READY " in r for r in rows[1:]), out
        assert any(ids["remote"] in r and n2[:12] in r for r in rows), out
        out = subprocess.run(cli + ["object", "list", "--node", n2, "--json"], capture_output=True,
                             text=True, timeout=30)
        lines = [json.loads(x) for x in out.stdout.splitlines()]
        assert out.returncode == 0 and len(lines) == 2 and {x["node_id"] for x in lines} == {n2}, out

        # a clean exit takes the owner's objects along; a killed owner's expire
        victim.kill()
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0, holder.stderr.read()
        t0 = time.time()
        wait_until(lambda: listed("owner=" + owner)["total"] == 0, timeout=10,
                   what="the holder's objects to go")
        # its last report said so: expiring would take 4 s or more
        assert time.time() - t0 < 3, "gone after %.1fs" % (time.time() - t0)
        t0 = time.time()
        wait_until(lambda: listed("")["total"] == 0, timeout=30,
                   what="the killed holder's objects to expire")
        assert time.time() - t0 < 15, "expired after %.1fs" % (time.time() - t0)
    finally:
        for p in (holder, victim):
            if p.poll() is None:
                p.kill()
            p.wait()


def store_holdings(c, node):
    """{object_id: owner hex or None} of what `node`'s object store holds."""
    r = c.request("GET", "/api/v1/objects?limit=10000", base=c.store_addresses[node])
    assert r.status == 200, r
    return {o["object_id"]: o.get("owner") for o in r.json()["objects"]}


def test_stores_free_what_no_owner_holds(c):
    """An object store asks the owners of its objects what they still hold:
    the copies of a killed owner go (with no delete ever sent), and so does
    an object its (live) owner does not know, as after a delete lost while
    the store was unreachable; a live owner's objects and objects with no
    owner (put over HTTP or by a plain store client) stay."""
    client = os.path.join(BIN, "prism-objectstore-testclient")
    if not os.access(client, os.X_OK):
        skip("prism-objectstore-testclient is not built")
    c.start_node("node-2", "--num-cpus", "4")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    holder, victim = start_holder(c, nodes["node-1"], nodes["node-2"]), \
        start_holder(c, nodes["node-1"], nodes["node-2"])
    try:
        owner, ids = read_holder(holder)
        victim_owner, victim_ids = read_holder(victim)
        owner_hex, victim_hex = owner.split(":")[1], victim_owner.split(":")[1]
        # the holder's stored objects, in the store of each node, name their owner
        kept = {"node-1": ids["big"], "node-2": ids["remote"]}
        gone = {"node-1": victim_ids["big"], "node-2": victim_ids["remote"]}
        for node in kept:
            held = store_holdings(c, node)
            assert held.get(kept[node]) == owner_hex and held.get(gone[node]) == victim_hex, held
        sock = os.path.join(c.dir, "nodes", "node-1", "objectstore.sock")
        stray, plain = "5" * 40, "6" * 40
        # and 9,000 small objects of no owner: the store's walk of its objects for the
        # owners' questions lets go of its lock every 8,192 (os_owners.c); the listing
        # below still sees all (10,000 at most)
        out = subprocess.run([client, sock, "put", stray, "300000", "1", "pin",
                              "owner=" + owner_hex, "--", "put", plain, "1000", "2", "pin",
                              "--", "fill", "8" * 32, "9000", "16"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "ERR" not in out.stdout, out
        r = c.request("PUT", "/api/v1/objects/" + "7" * 40, raw=b"by curl",
                      base=c.store_addresses["node-1"])
        assert r.status in (200, 201), r
        victim.kill()
        victim.wait()
        t0 = time.time()
        wait_until(lambda: not any(gone[n] in store_holdings(c, n) for n in gone) and
                   stray not in store_holdings(c, "node-1"), timeout=40,
                   what="the stores to free the killed owner's objects and the stray one")
        print("freed within %.1fs of the owner's death" % (time.time() - t0))
        for node in kept:  # the live owner's objects are all there
            assert store_holdings(c, node).get(kept[node]) == owner_hex, (node, kept)
        held = store_holdings(c, "node-1")
        assert plain in held and held[plain] is None and "7" * 40 in held, held
        r = c.request("GET", "/api/v1/stats", base=c.store_addresses["node-1"])
        assert r.status == 200 and r.json()["objects"] >= 9000, r
        got = probe(c, "seed")  # the cluster works on
        assert "seed ok" in got.stdout, got
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0, holder.stderr.read()
        wait_until(lambda: not any(kept[n] in store_holdings(c, n) for n in kept), timeout=20,
                   what="the holder's objects to go with its clean exit")
    finally:
        for p in (holder, victim):
            if p.poll() is None:
                p.kill()
            p.wait()


def test_locality(c):
    """A task goes to the node that holds its large argument."""
    c.start_node("node-2", "--num-cpus", "4")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    for name in ("node-1", "node-2"):
        r = c.post("/api/v1/tasks", {"package": "builtin", "function": "zeros", "args": [[200, 200]],
                                     "options": {"strategy": "NODE_AFFINITY",
                                                 "node_id": nodes[name]}})
        big = r.json()["object_ids"][0]
        assert c.get("/api/v1/objects/%s?timeout_ms=30000" % big).json()["state"] == "READY"
        # a shape of its own, so no lease is reused: the scheduler chooses afresh
        r = c.post("/api/v1/tasks", {"package": "builtin", "function": "sum",
                                     "args": [{"$ref": big}],
                                     "options": {"num_cpus": 0.25 if name == "node-1" else 0.5}})
        total = r.json()["object_ids"][0]
        d = c.get("/api/v1/objects/%s?timeout_ms=30000" % total).json()
        assert d["state"] == "READY" and d["value"]["value"] == 0, d
        task_id = total[:32]
        ran = wait_until(lambda: [t for t in c.get("/api/v1/tasks?limit=1000").json()["tasks"]
                                  if t["task_id"] == task_id], what="the sum task in the list")
        assert ran[0]["node_id"] == nodes[name], (name, ran, nodes)



def test_nested_tasks_on_one_cpu(c):
    """A task blocked in get lends its CPU: three levels of 1-CPU tasks on a 1-CPU node."""
    assert "3 levels" in probe(c, "nested", 3).stdout
test_nested_tasks_on_one_cpu.cluster = {"node_args": ("--num-cpus", "1")}


def test_borrowed_references(c):
    """A reference a task put and returned is got by the driver, passed on to
    other tasks, kept alive inside a put list; afterwards the stores are empty."""
    sha = upload_package(c)
    out = probe(c, "borrow", sha).stdout
    print(out.strip())
    for line in ("borrowed get ok", "passed on ok", "nested in a put ok", "borrow ok"):
        assert line in out, out
    wait_until(lambda: sum(c.store_stats(n)["objects"] for n in c.store_addresses) == 0,
               timeout=20, what="every object store to be empty after the borrowers left")


def test_borrowed_objects_across_nodes(c):
    """A reference to an object in another node's store reads from any node:
    a driver on node-1 reads what a worker or an actor on either node put and
    returned (its store pulls it), and a task on either node reads it and the
    driver's own object through a list (borrowers of a borrower). Then the
    stores empty."""
    sha = upload_package(c)
    c.start_node("node-2", "--num-cpus", "4")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    n1, n2 = nodes["node-1"], nodes["node-2"]
    for stash_node, use_node in ((n2, n1), (n2, n2), (n1, n2), (n1, n1)):
        out = probe(c, "borrowx", sha, stash_node, use_node).stdout
        assert "driver read the object a worker owns ok" in out and "borrowx ok" in out, out
        out = probe(c, "borrowa", sha, stash_node, use_node).stdout
        assert "driver read the object an actor owns ok" in out and "borrowa ok" in out, out
        print(out.strip().replace("\n", "; "))
    wait_until(lambda: sum(c.store_stats(n)["objects"] for n in c.store_addresses) == 0,
               timeout=20, what="every object store to be empty after the borrowers left")


def test_owner_death_fails_borrowers(c):
    sha = upload_package(c)
    t0 = time.monotonic()
    out = probe(c, "ownerdied", sha).stdout
    assert "owner died ok" in out and "died" in out, out
    print(out.strip())
    assert time.monotonic() - t0 < 30, "owner death took too long to notice"


def test_wait_for_k_of_n(c):
    assert "waitk ok" in probe(c, "waitk").stdout


def test_worker_refuses_a_ready_fd_that_is_not_open(c):
    """A --ready-fd that is not open would be the worker's own next descriptor (its event
    loop's), closed once ready: the loop then spun on EBADF. It is refused at start."""
    sock = os.path.join(c.dir, "refused-worker.sock")
    r = subprocess.run([os.path.join(BIN, "prism-worker"), "--socket", sock, "--ready-fd", "3",
                        "--no-auth"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--ready-fd 3 is not an open descriptor" in r.stderr, r
    assert not os.path.exists(sock), "it stopped before listening"


def test_force_cancel_of_a_running_task(c):
    t0 = time.monotonic()
    out = probe(c, "cancel").stdout
    assert "waiting task cancelled ok" in out and "cancelled ok" in out and "cancel ok" in out, out
    assert time.monotonic() - t0 < 25, "the 30 s task was not cut short"


def test_free_while_a_lease_waits(c):
    """An object dropped while a lease request of its process is out leaves the store at once:
    neither the owner's deletion nor a borrower's REMOVE waits for the scheduler's answer (here
    the scheduler is stopped, and the request waits for its whole 10 s timeout). Both: an
    object the driver put, and one a worker owns that the driver borrows."""
    if not os.access(PROBE, os.X_OK):
        skip("task_probe is not built")
    sha = upload_package(c)
    for args in (["freeleasing"], ["freeleasing", sha]):
        p = subprocess.Popen([PROBE] + args, env=probe_env(c), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            assert line.startswith("object "), (args, line, p.poll() is not None and p.stderr.read())
            wait_until(lambda: c.store_stats("node-1")["objects"] == 1, timeout=10,
                       what="the object in the store")
            c.scheduler.send_signal(signal.SIGSTOP)
            try:
                p.stdin.write("drop\n")
                p.stdin.flush()
                assert p.stdout.readline().strip() == "released", args
                t0 = time.monotonic()
                wait_until(lambda: c.store_stats("node-1")["objects"] == 0, timeout=5,
                           what="the dropped object to leave the store while the lease request "
                                "waits (%s)" % " ".join(args[:1] + ["SHA"] * (len(args) - 1)))
                print("  %s: the store emptied in %.2f s" % (args[-1][:11], time.monotonic() - t0))
            finally:
                c.scheduler.send_signal(signal.SIGCONT)
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 and "freeleasing ok" in out, (args, out, err)
        finally:
            if p.poll() is None:
                p.kill()



def test_actor_call_while_a_lease_waits(c):
    """A first call to an actor while a lease request of its process is out goes at once: the
    caller looks the actor up and connects to it without waiting for the scheduler's answer
    (here the scheduler is stopped, and the request would wait for its whole 10 s timeout)."""
    if not os.access(PROBE, os.X_OK):
        skip("task_probe is not built")
    p = subprocess.Popen([PROBE, "callleasing"], env=probe_env(c), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("actor "), (line, p.poll() is not None and p.stderr.read())
        aid = line.split()[1]
        wait_until(lambda: c.get("/api/v1/actors/" + aid).json().get("state") == "ALIVE",
                   timeout=30, what="the actor alive")
        c.scheduler.send_signal(signal.SIGSTOP)
        try:
            p.stdin.write("go\n")
            p.stdin.flush()
            line = p.stdout.readline().split()
            assert line[:2] == ["call", "ok"], (line, p.poll() is not None and p.stderr.read())
            print("  the call took %s ms" % line[2])
        finally:
            c.scheduler.send_signal(signal.SIGCONT)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "callleasing ok" in out, (out, err)
    finally:
        if p.poll() is None:
            p.kill()


def test_grant_after_the_client_left(c):
    """A client that disconnects while a lease request is out waits a little for the answer, and
    gives the grant back at once: the node's CPUs are all free again soon, not once the worker
    notices after 15 s that nobody used the lease."""
    if not os.access(PROBE, os.X_OK):
        skip("task_probe is not built")
    from test_scheduler import available
    wait_until(lambda: available(c, "node-1", "CPU") == 4, timeout=30, what="all CPUs free")
    p = subprocess.Popen([PROBE, "leaveleasing"], env=probe_env(c), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.poll() is not None and p.stderr.read()
        c.scheduler.send_signal(signal.SIGSTOP)
        try:
            p.stdin.write("go\n")
            p.stdin.flush()
            time.sleep(0.6)  # submitted, and the disconnect waits for the answer
        finally:
            c.scheduler.send_signal(signal.SIGCONT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, (out, err)
        left = time.monotonic()
        wait_until(lambda: available(c, "node-1", "CPU") == 4, timeout=8,
                   what="the grant that came after the client left to be given back")
        print("  all CPUs free %.2f s after the client left" % (time.monotonic() - left))
    finally:
        if p.poll() is None:
            p.kill()


def test_storeless_client_keeps_its_token(c):
    """A client without a store of its own reads a value over the HTTP API of the store that
    holds it, with the cluster's token; the URL comes from the value's owner. An owner that
    names its store by a URL the GCS does not list (here a listener of the test's own) gets
    its value refused with a clear error and the listener hears nothing: no token goes there.
    A value of an owner naming its store rightly is read as before."""
    hits = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def answer(self):
            hits.append((self.command, self.path, self.headers.get("Authorization")))
            self.send_response(404)
            self.end_headers()
        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        if not os.access(PROBE, os.X_OK):
            skip("task_probe is not built")
        env = probe_env(c, PRISM_STORE_URL="http://127.0.0.1:%d" % server.server_port)
        r = subprocess.run([PROBE, "strangestore"], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr)
        print("  " + r.stdout.strip().replace("\n", "\n  "))
        assert "does not list" in r.stdout and "read 1048576 bytes" in r.stdout, r.stdout
        assert hits == [], hits
    finally:
        server.shutdown()
        server.server_close()


def test_task_while_the_gcs_hangs(c):
    """A client asking a stopped GCS where its actor went (its worker was killed) still gets
    leases for its tasks: the question does not hold up the thread that takes the grants."""
    if not os.access(PROBE, os.X_OK):
        skip("task_probe is not built")
    p = subprocess.Popen([PROBE, "queryhung"], env=probe_env(c), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().split()
        assert line[:1] == ["actor"], (line, p.poll() is not None and p.stderr.read())
        c.gcs.send_signal(signal.SIGSTOP)
        try:
            os.kill(int(line[2]), signal.SIGKILL)
            p.stdin.write("go\n")
            p.stdin.flush()
            line = p.stdout.readline().split()
            assert line[:2] == ["task", "ok"], (line, p.poll() is not None and p.stderr.read())
            print("  the task took %s ms with the GCS stopped" % line[2])
        finally:
            c.gcs.send_signal(signal.SIGCONT)
        p.stdin.write("done\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "queryhung ok" in out, (out, err)
    finally:
        if p.poll() is None:
            p.kill()

if __name__ == "__main__":
    run([test_seed_program, test_seed_as_a_job, test_ten_thousand_tasks, test_nested_tasks,
         test_errors_are_clear, test_package_tasks, test_long_tasks_run_side_by_side, test_worker_crash_is_retried_then_fails,
         test_kill_worker_mid_task, test_stores_empty_after_the_program, test_rest_tasks,
         test_lost_object_is_rebuilt,
         test_value_from_another_node_through_the_local_store,
         test_infeasible_task_waits_for_a_node, test_task_waits_for_a_scheduler,
         test_200mib_argument_from_another_node, test_task_list, test_object_list,
         test_stores_free_what_no_owner_holds, test_locality,
         test_nested_tasks_on_one_cpu, test_borrowed_references,
         test_borrowed_objects_across_nodes,
         test_owner_death_fails_borrowers, test_wait_for_k_of_n,
         test_force_cancel_of_a_running_task, test_free_while_a_lease_waits,
         test_actor_call_while_a_lease_waits, test_grant_after_the_client_left,
         test_task_while_the_gcs_hangs, test_storeless_client_keeps_its_token,
         test_worker_refuses_a_ready_fd_that_is_not_open], nodes=1,
        node_args=("--num-cpus", "4"))
