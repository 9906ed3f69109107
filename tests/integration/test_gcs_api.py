"""The GCS REST API without nodes: auth, errors, key-value, packages, versions."""
import hashlib
import json
import os
import signal

from harness import BIN, run, skip, wait_until


def test_healthz_needs_no_token(c):
    r = c.get("/healthz", token=None)
    assert r.status == 200 and r.json()["status"] == "ok", r


def test_token_required_everywhere_else(c):
    for path in ("/api/v1/cluster", "/api/v1/jobs", "/api/v1/nodes", "/metrics", "/api/version",
                 "/api/jobs/", "/api/v1/kv/ns/k", "/api/v1/services"):
        r = c.get(path, token=None)
        assert r.status == 401, (path, r)
        assert r.json()["error"]["code"] == "unauthorized", r
        r = c.get(path, token="wrong-" + c.token)
        assert r.status == 401, (path, r)


def test_cluster_without_nodes(c):
    d = c.get("/api/v1/cluster").json()
    assert d["nodes_alive"] == 0 and d["nodes_dead"] == 0, d
    assert d["resources"]["total"] == {} and d["jobs"] == {"pending": 0, "running": 0}, d


def test_unknown_ids_are_404(c):
    for path in ("/api/v1/jobs/nope", "/api/v1/nodes/00000000000000000000000000000000",
                 "/api/v1/nodes/00000000000000000000000000000000/workers",
                 "/api/v1/jobs/nope/logs", "/api/v1/kv/ns/missing", "/api/jobs/nope",
                 "/api/v1/packages/" + "0" * 64, "/api/v1/no/such/route"):
        r = c.get(path)
        assert r.status == 404, (path, r)
        assert r.json()["error"]["code"] == "not_found", r
    for path in ("/api/v1/jobs/nope/stop", "/api/jobs/nope/stop"):
        assert c.post(path).status == 404, path
    assert c.request("DELETE", "/api/v1/jobs/nope").status == 404


def test_wrong_method_is_405(c):
    r = c.request("PUT", "/api/v1/jobs")
    assert r.status == 405 and r.json()["error"]["code"] == "method_not_allowed", r


def test_bad_job_bodies_are_400(c):
    cases = [
        (b"{not json", "invalid_json"),
        (b"[1,2]", "invalid_json"),
        (b"", "invalid_json"),
        (json.dumps({}).encode(), "invalid_argument"),
        (json.dumps({"entrypoint": 5}).encode(), "invalid_argument"),
        (json.dumps({"entrypoint": ""}).encode(), "invalid_argument"),
        (json.dumps({"entrypoint": "true", "env": {"A": 1}}).encode(), "invalid_argument"),
        (json.dumps({"entrypoint": "true", "env": "A=1"}).encode(), "invalid_argument"),
        (json.dumps({"entrypoint": "true", "resources": {"CPU": -1}}).encode(), "invalid_argument"),
        (json.dumps({"entrypoint": "true", "resources": {"CPU": "1"}}).encode(), "invalid_argument"),
        (json.dumps({"entrypoint": "true", "submission_id": "../etc"}).encode(), "invalid_argument"),
        (json.dumps({"entrypoint": "true", "working_dir": "/tmp"}).encode(), "invalid_argument"),
    ]
    for raw, code in cases:
        r = c.request("POST", "/api/v1/jobs", raw=raw, headers={"Content-Type": "application/json"})
        assert r.status == 400, (raw, r)
        assert r.json()["error"]["code"] == code, (raw, r)
        assert r.json()["error"]["message"], r
    # env names the driver's environment could not hold, named in the answer (Ray's too)
    for name in ("A=B", "", "=", "PATH=/tmp"):
        for path, body in (("/api/v1/jobs", {"entrypoint": "true", "env": {name: "x"}}),
                           ("/api/jobs/", {"entrypoint": "true",
                                           "runtime_env": {"env_vars": {name: "x"}}})):
            r = c.post(path, body)
            assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (name, r)
            assert "'%s'" % name in r.json()["error"]["message"], (name, r)
    assert c.get("/api/v1/jobs").json()["jobs"] == [], "a rejected submission left a job behind"


def test_oversized_body_is_413(c):
    big = b'{"entrypoint": "' + b"x" * (2 << 20) + b'"}'
    r = c.request("POST", "/api/v1/jobs", raw=big, headers={"Content-Type": "application/json"})
    assert r.status == 413 and r.json()["error"]["code"] == "body_too_large", r
    assert c.get("/healthz", token=None).status == 200


def test_bad_query_is_400(c):
    for path in ("/api/v1/jobs?limit=0", "/api/v1/jobs?limit=abc", "/api/v1/jobs?state=DONE",
                 "/api/v1/nodes?state=UP", "/api/v1/objects?sort=age",
                 "/api/v1/jobs/x/logs?follow=maybe"):
        r = c.get(path)
        assert r.status in (400, 404), (path, r)
        if "logs" not in path:
            assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (path, r)


def test_pending_job_without_nodes(c):
    jid = c.submit("echo hi", resources={"GPU": 1})
    j = c.job(jid)
    assert j["state"] == "PENDING" and j["node_id"] is None, j
    import time
    time.sleep(0.5)
    j = c.job(jid)
    assert "waiting for resources: GPU 1" in j["message"], j
    r = c.post("/api/v1/jobs", {"entrypoint": "true", "submission_id": jid})
    assert r.status == 409 and r.json()["error"]["code"] == "duplicate_submission_id", r
    assert c.request("DELETE", "/api/v1/jobs/" + jid).status == 409
    r = c.post("/api/v1/jobs/%s/stop" % jid)
    assert r.status == 200 and r.json()["state"] == "STOPPED", r
    j = c.job(jid)
    assert j["state"] == "STOPPED" and j["end_time"], j
    assert c.post("/api/v1/jobs/%s/stop" % jid).status == 409
    assert c.request("DELETE", "/api/v1/jobs/" + jid).json() == {"deleted": True}
    assert c.get("/api/v1/jobs/" + jid).status == 404


def test_job_list_pagination(c):
    ids = [c.submit("true", submission_id="page-%02d" % i) for i in range(25)]
    seen, cursor = [], None
    while True:
        q = "/api/v1/jobs?limit=10" + ("&cursor=" + cursor if cursor else "")
        d = c.get(q).json()
        seen += [j["job_id"] for j in d["jobs"]]
        cursor = d["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids)), seen
    pend = c.get("/api/v1/jobs?state=PENDING&limit=1000").json()["jobs"]
    assert len(pend) == 25


def test_kv(c):
    assert c.request("PUT", "/api/v1/kv/app/greeting", raw=b"hello",
                     headers={"Content-Type": "text/plain"}).status == 200
    r = c.get("/api/v1/kv/app/greeting")
    assert r.status == 200 and r.body == b"hello" and r.headers["Content-Type"] == "text/plain", r
    c.request("PUT", "/api/v1/kv/app/greeting", raw=b"again")
    assert c.get("/api/v1/kv/app/greeting").body == b"again"
    c.request("PUT", "/api/v1/kv/app/other", raw=b"\x00\x01binary")
    assert c.get("/api/v1/kv/app/other").body == b"\x00\x01binary"
    keys = c.get("/api/v1/kv/app").json()["keys"]
    assert keys == ["greeting", "other"], keys
    assert c.get("/api/v1/kv/app?prefix=gr").json()["keys"] == ["greeting"]
    assert c.request("DELETE", "/api/v1/kv/app/greeting").json() == {"deleted": True}
    assert c.get("/api/v1/kv/app/greeting").status == 404
    assert c.request("DELETE", "/api/v1/kv/app/greeting").status == 404
    r = c.request("PUT", "/api/v1/kv/bad%20ns/k", raw=b"x")
    assert r.status == 400, r
    r = c.request("PUT", "/api/v1/kv/app/big", raw=b"x" * (2 << 20))
    assert r.status == 413, r


def test_packages(c):
    blob = b"package bytes \x00\xff" * 1000
    sha = hashlib.sha256(blob).hexdigest()
    r = c.request("POST", "/api/v1/packages", raw=blob,
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201 and r.json() == {"sha256": sha, "size": len(blob)}, r
    r = c.request("POST", "/api/v1/packages", raw=blob)
    assert r.status == 200 and r.json()["sha256"] == sha, r
    r = c.get("/api/v1/packages/" + sha)
    assert r.status == 200 and r.body == blob, r
    for bad in ("../../etc/passwd", "ABC", "%2e%2e%2fgcs.db", "0" * 63 + "g"):
        r = c.get("/api/v1/packages/" + bad)
        assert r.status in (400, 404), (bad, r)
    assert c.request("POST", "/api/v1/packages", raw=b"").status == 400
    r = c.post("/api/v1/jobs", {"entrypoint": "true", "working_dir": "1" * 64})
    assert r.status == 404 and "no package" in r.json()["error"]["message"], r


def test_metrics(c):
    c.get("/api/v1/cluster")
    text = c.get("/metrics").body.decode()
    assert "# TYPE prism_http_requests_total counter" in text, text
    assert "prism_gcs_nodes_alive 0" in text, text
    assert "prism_gcs_jobs_submitted_total" in text, text


def test_ray_version_and_jobs(c):
    v = c.get("/api/version").json()
    assert v["version"] == "4" and "ray_version" in v and "ray_commit" in v, v
    r = c.post("/api/jobs/", {"entrypoint": "echo ray", "submission_id": "raysubmit_abc",
                              "runtime_env": {"env_vars": {"A": "1"}},
                              "entrypoint_num_cpus": 0.5, "entrypoint_resources": {"accel": 1},
                              "metadata": {"owner": "me"}})
    assert r.status == 200 and r.json()["submission_id"] == "raysubmit_abc", r
    d = c.get("/api/jobs/raysubmit_abc").json()
    assert d["type"] == "SUBMISSION" and d["status"] == "PENDING", d
    assert d["entrypoint"] == "echo ray" and d["metadata"] == {"owner": "me"}, d
    assert d["runtime_env"]["env_vars"] == {"A": "1"}, d
    assert d["entrypoint_num_cpus"] == 0.5 and d["entrypoint_resources"] == {"accel": 1}, d
    assert isinstance(d["start_time"], int), d
    lst = c.get("/api/jobs/").json()
    assert isinstance(lst, list) and lst[0]["submission_id"] == "raysubmit_abc", lst
    r = c.post("/api/jobs/", {"entrypoint": "x", "runtime_env": {"pip": ["numpy"]}})
    assert r.status == 400 and r.json()["error"]["code"] == "unsupported", r
    assert c.post("/api/jobs/raysubmit_abc/stop").json() == {"stopped": True}
    assert c.post("/api/jobs/raysubmit_abc/stop").json() == {"stopped": False}
    assert c.get("/api/jobs/raysubmit_abc/logs").json() == {"logs": ""}
    assert c.request("DELETE", "/api/jobs/raysubmit_abc").json() == {"deleted": True}


def test_restart_keeps_state(c):
    jid = c.submit("echo kept", resources={"GPU": 4}, metadata={"k": "v"})
    c.request("PUT", "/api/v1/kv/ns/key", raw=b"value")
    assert c.stop_proc(c.gcs) is None and not c.failed_shutdowns, c.failed_shutdowns
    c.start_gcs()
    j = c.job(jid)
    assert j["state"] == "PENDING" and j["metadata"] == {"k": "v"}, j
    assert c.get("/api/v1/kv/ns/key").body == b"value"


def test_schema_upgrade(c):
    """A database of schema version 1 (before jobs named packages) is migrated on start."""
    import os
    import sqlite3
    jid = c.submit("echo old", metadata={"k": "v"})
    assert c.stop_proc(c.gcs) is None and not c.failed_shutdowns, c.failed_shutdowns
    db = sqlite3.connect(os.path.join(c.dir, "gcs", "gcs.db"))
    db.executescript("ALTER TABLE jobs DROP COLUMN packages; DROP TABLE ray_packages; "
                     "PRAGMA user_version = 1;")
    db.close()
    c.start_gcs()
    j = c.job(jid)
    assert j["packages"] == [] and j["metadata"] == {"k": "v"}, j
    sha = c.request("POST", "/api/v1/packages", raw=b"lib").json()["sha256"]
    assert c.job(c.submit("true", packages=[sha]))["packages"] == [{"sha256": sha, "name": None}]
    db = sqlite3.connect(os.path.join(c.dir, "gcs", "gcs.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 6  # the latest (6: compiled DAGs)
    db.close()


def test_node_workers(c):
    """A live node's workers come from its agent; a silent agent is 503
    node_unavailable, a dead node 409 node_dead."""
    c.wait_nodes(1)
    node = c.get("/api/v1/nodes?state=ALIVE").json()["nodes"][0]["node_id"]
    r = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [1, 2]})
    assert r.status == 201, r
    assert c.get("/api/v1/objects/%s?timeout_ms=30000" % r.json()["object_ids"][0]).status == 200
    doc = c.get("/api/v1/nodes/%s/workers" % node).json()
    assert doc["node_id"] == node and doc["max_workers"] >= 1, doc
    assert doc["workers"], doc  # the task's worker
    for w in doc["workers"]:
        assert w["state"] in ("starting", "idle", "leased", "stopping"), w
        os.kill(w["pid"], 0)  # a real process
    # The node's largest objects: two tensors in its store (each holds a
    # header besides its values), largest first.
    big = [c.post("/api/v1/tasks", {"package": "builtin", "function": "zeros",
                                    "args": [[n, n]]}).json()["object_ids"][0] for n in (200, 300)]
    for o in big:
        assert c.get("/api/v1/objects/%s?timeout_ms=30000" % o).status == 200
    q = "/api/v1/objects?node_id=%s&state=READY&sort=size&limit=2" % node
    doc = wait_until(lambda: (lambda d: d if len(d["objects"]) == 2 else None)(c.get(q).json()),
                     what="the two tensors listed")
    assert [o["object_id"] for o in doc["objects"]] == big[::-1], doc
    assert [o["size"] for o in doc["objects"]] == [720032, 320032], doc
    agent = c.nodes["node-1"].p
    agent.send_signal(signal.SIGSTOP)
    try:
        r = c.get("/api/v1/nodes/%s/workers" % node)
        assert r.status == 503 and r.json()["error"]["code"] == "node_unavailable", r
        wait_until(lambda: c.get("/api/v1/nodes/" + node).json()["state"] == "DEAD",
                   what="the silent node DEAD")
        r = c.get("/api/v1/nodes/%s/workers" % node)
        assert r.status == 409 and r.json()["error"]["code"] == "node_dead", r
    finally:
        agent.send_signal(signal.SIGCONT)


test_node_workers.cluster = {"nodes": 1}


def test_large_value_described_not_copied(c):
    """GET /api/v1/objects/{id} of a large tensor describes it from its first
    bytes: the GCS does not copy 8 MiB out of the node's store to say its
    shape (only ?format=raw does)."""
    if not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("prism-worker is not built")
    store = c.store_addresses["node-1"]
    sent = lambda: c.get("/api/v1/stats", base=store).json()["transfer_out_bytes_total"]  # noqa
    oid = c.post("/api/v1/tasks", {"package": "builtin", "function": "zeros",
                                   "args": [[1024, 1024]]}).json()["object_ids"][0]
    small = c.post("/api/v1/tasks", {"package": "builtin", "function": "zeros",
                                     "args": [[3, 2]]}).json()["object_ids"][0]
    first = c.get("/api/v1/objects/%s?timeout_ms=30000" % oid).json()
    before = sent()
    for _ in range(3):
        d = c.get("/api/v1/objects/%s?timeout_ms=30000" % oid).json()
        assert d == first, (d, first)
    assert d["state"] == "READY" and d["value"] == {
        "kind": "tensor", "dtype": "float64", "shape": [1024, 1024], "size": 8 << 20}, d
    assert sent() - before < 4096, "the GCS copied %d bytes to describe it" % (sent() - before)
    d = c.get("/api/v1/objects/%s?timeout_ms=30000" % small).json()
    assert d["value"] == {"kind": "tensor", "dtype": "float64", "shape": [3, 2], "size": 48}, d
    raw = c.get("/api/v1/objects/%s?format=raw" % oid)
    assert raw.status == 200 and len(raw.body) == 8 << 20 and not raw.body.strip(b"\0"), raw.status
    assert sent() - before >= 8 << 20


test_large_value_described_not_copied.cluster = {"nodes": 1}


def test_store_addresses_after_restart(c):
    """The nodes listing names each live node's store, the only stores a client without a
    store of its own (the GCS's, for REST tasks) sends the token to. A restarted GCS, whose
    database does not keep them, learns them again from the nodes' reports, and a large task
    result is read through it as before."""
    if not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("prism-worker is not built")
    c.wait_nodes(1)
    store = c.store_addresses["node-1"]
    listed = lambda: [n.get("store_address") for n in  # noqa: E731
                      c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]]
    assert listed() == [store], listed()
    assert c.stop_proc(c.gcs) is None and not c.failed_shutdowns, c.failed_shutdowns
    c.start_gcs()
    wait_until(lambda: listed() == [store], timeout=20, what="the restarted GCS to list the store")
    oid = c.post("/api/v1/tasks", {"package": "builtin", "function": "zeros",
                                   "args": [[512, 512]]}).json()["object_ids"][0]
    raw = c.get("/api/v1/objects/%s?format=raw&timeout_ms=30000" % oid)
    assert raw.status == 200 and len(raw.body) == 2 << 20, (raw.status, len(raw.body))


test_store_addresses_after_restart.cluster = {"nodes": 1}


def test_services(c):
    """The GCS lists itself and the services announcing themselves; one that
    stops announcing turns SILENT, and ALIVE again when it comes back."""
    import time

    def services():
        return c.get("/api/v1/services").json()["services"]

    def of(kind):
        return [s for s in services() if s["service"] == kind]

    first = services()[0]
    assert first["service"] == "gcs" and first["address"] == c.url and \
        first["pid"] == c.gcs.p.pid and first["state"] == "ALIVE", first
    one = wait_until(lambda: of("scheduler"), what="the scheduler listed")[0]
    assert one["address"] == c.scheduler_url and one["pid"] == c.scheduler.p.pid, one
    assert one["state"] == "ALIVE" and one["nodes"] == 0 and one["lease_requests"] == 0, one
    assert abs(one["last_seen"] - time.time() * 1000) < 10000, one
    second = c.start_scheduler()
    wait_until(lambda: len(of("scheduler")) == 2, what="both schedulers listed")
    second.p.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: [s["state"] for s in of("scheduler") if s["pid"] == second.p.pid]
                   == ["SILENT"], timeout=30, what="the stopped scheduler SILENT")
        assert [s["state"] for s in of("scheduler") if s["pid"] == one["pid"]] == ["ALIVE"]
    finally:
        second.p.send_signal(signal.SIGCONT)
    wait_until(lambda: all(s["state"] == "ALIVE" for s in of("scheduler")), timeout=30,
               what="the scheduler ALIVE again")
    # a node's heartbeat as the API shows it is the live one
    node = wait_until(lambda: c.get("/api/v1/nodes?state=ALIVE").json()["nodes"],
                      what="the node listed")[0]
    assert abs(node["last_heartbeat"] - time.time() * 1000) < 5000, node


test_services.cluster = {"nodes": 1}


if __name__ == "__main__":
    run([test_healthz_needs_no_token, test_token_required_everywhere_else, test_cluster_without_nodes,
         test_unknown_ids_are_404, test_wrong_method_is_405, test_bad_job_bodies_are_400,
         test_oversized_body_is_413, test_bad_query_is_400, test_pending_job_without_nodes,
         test_job_list_pagination, test_kv, test_packages, test_metrics, test_ray_version_and_jobs,
         test_restart_keeps_state, test_schema_upgrade, test_node_workers,
         test_large_value_described_not_copied, test_store_addresses_after_restart, test_services],
        nodes=0)
