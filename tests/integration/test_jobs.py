"""Jobs end to end: real GCS, node agents and drivers."""
import hashlib
import os
import threading
import time
import urllib.request

from harness import BIN, run, skip, wait_until

TASKS_SO = os.path.join(BIN, "..", "examples", "example_tasks.so")
PROBE = os.path.join(BIN, "task_probe")


def test_echo_job(c):
    jid = c.submit("echo hello from $PRISM_JOB_ID; echo to-stderr >&2")
    j = c.wait_job(jid)
    assert j["state"] == "SUCCEEDED" and j["driver_exit_code"] == 0, j
    assert j["start_time"] and j["end_time"] and j["end_time"] >= j["start_time"], j
    assert j["node_id"], j
    logs = c.logs(jid)
    assert "hello from " + jid in logs and "to-stderr" in logs, logs


def test_exit_code_3_fails(c):
    jid = c.submit("echo about to fail; exit 3")
    j = c.wait_job(jid)
    assert j["state"] == "FAILED" and j["driver_exit_code"] == 3, j
    assert "3" in j["message"], j
    assert "about to fail" in c.logs(jid)


def test_env_and_cluster_access(c):
    jid = c.submit('echo "A=$A"; test -n "$PRISM_ADDRESS" && test -n "$PRISM_TOKEN" && '
                   'curl -sf -H "Authorization: Bearer $PRISM_TOKEN" "$PRISM_ADDRESS/api/v1/cluster"',
                   env={"A": "value with spaces"})
    j = c.wait_job(jid)
    logs = c.logs(jid)
    assert j["state"] == "SUCCEEDED", (j, logs)
    assert "A=value with spaces" in logs and '"nodes_alive":1' in logs, logs


def test_stop_long_job(c):
    jid = c.submit("echo started; exec sleep 600")
    c.wait_job(jid, states=("RUNNING",))
    wait_until(lambda: "started" in c.logs(jid), what="driver output")
    r = c.post("/api/v1/jobs/%s/stop" % jid)
    assert r.status == 200, r
    j = c.wait_job(jid, timeout=15)
    assert j["state"] == "STOPPED", j
    # A driver that ignores SIGTERM is killed after the grace period.
    jid = c.submit("trap '' TERM; echo stubborn; while true; do sleep 0.1; done")
    c.wait_job(jid, states=("RUNNING",))
    wait_until(lambda: "stubborn" in c.logs(jid), what="driver output")
    c.post("/api/v1/jobs/%s/stop" % jid)
    assert c.wait_job(jid, timeout=15)["state"] == "STOPPED"


def test_follow_logs(c):
    jid = c.submit("for i in 1 2 3 4 5; do echo line-$i; sleep 0.2; done")
    req = urllib.request.Request(c.url + "/api/v1/jobs/%s/logs?follow=true" % jid,
                                 headers={"Authorization": "Bearer " + c.token})
    t0 = time.time()
    with urllib.request.urlopen(req, timeout=30) as r:
        first = r.readline()
        t_first = time.time() - t0
        rest = r.read()
    text = (first + rest).decode()
    assert [l for l in text.splitlines()] == ["line-%d" % i for i in range(1, 6)], text
    assert t_first < 1.0, "the first line should arrive while the job runs (%.2fs)" % t_first
    assert c.job(jid)["state"] == "SUCCEEDED"


def test_resources_and_infeasible(c):
    cl = c.get("/api/v1/cluster").json()
    assert cl["resources"]["total"]["CPU"] == 2 and cl["resources"]["total"]["accel"] == 1, cl
    big = c.submit("echo never", resources={"GPU": 1})
    a = c.submit("sleep 1", resources={"accel": 1})
    b = c.submit("echo second", resources={"accel": 1})
    assert c.wait_job(a, states=("RUNNING",))
    j = c.job(b)
    wait_until(lambda: "busy" in c.job(b)["message"], what="busy message")
    assert c.job(b)["state"] == "PENDING"
    assert c.wait_job(b)["state"] == "SUCCEEDED"
    j = c.job(big)
    assert j["state"] == "PENDING" and "GPU 1" in j["message"], j
    c.post("/api/v1/jobs/%s/stop" % big)
test_resources_and_infeasible.cluster = {"node_args": ("--num-cpus", "2", "--num-gpus", "0",
                                                       "--resources", '{"accel": 1}')}


def test_infeasible_until_node_joins(c):
    jid = c.submit("echo got it", resources={"special": 1})
    time.sleep(0.5)
    assert c.job(jid)["state"] == "PENDING"
    c.start_node("special-node", "--resources", '{"special": 2}')
    j = c.wait_job(jid)
    assert j["state"] == "SUCCEEDED", j


def test_concurrent_submissions(c):
    ids, errors = [], []
    lock = threading.Lock()

    def worker(k):
        for i in range(25):
            r = c.post("/api/v1/jobs", {"entrypoint": "echo job-%d-%d" % (k, i)})
            with lock:
                (ids.append(r.json()["job_id"]) if r.status == 201 else errors.append(r))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 100, errors
    for jid in ids:
        assert c.wait_job(jid, timeout=120)["state"] == "SUCCEEDED", c.job(jid)
    listed = c.get("/api/v1/jobs?limit=1000").json()["jobs"]
    assert len(listed) == 100


def test_gcs_restart_mid_job(c):
    jid = c.submit("echo before; sleep 3; echo after")
    c.wait_job(jid, states=("RUNNING",))
    c.gcs.kill()
    time.sleep(4)  # the job ends while the GCS is down: its event is lost
    c.start_gcs()
    j = c.wait_job(jid, timeout=30)
    assert j["state"] == "SUCCEEDED" and j["driver_exit_code"] == 0, j
    assert "after" in c.logs(jid)
    # And a job running across the restart is still followed.
    jid = c.submit("sleep 2; echo done")
    c.wait_job(jid, states=("RUNNING",))
    c.gcs.kill()
    c.start_gcs()
    assert c.wait_job(jid, timeout=30)["state"] == "SUCCEEDED"


def test_node_agent_killed(c):
    jid = c.submit("echo running; exec sleep 600")
    c.wait_job(jid, states=("RUNNING",))
    node_id = c.job(jid)["node_id"]
    c.nodes["node-1"].kill()
    j = c.wait_job(jid, timeout=20)
    assert j["state"] == "FAILED" and "died" in j["message"], j
    n = c.get("/api/v1/nodes/" + node_id).json()
    assert n["state"] == "DEAD" and n["message"], n
    # A restarted agent is a new incarnation.
    c.start_node("node-1")
    c.wait_nodes(1)
    nodes = c.get("/api/v1/nodes").json()["nodes"]
    assert len(nodes) == 2 and {n["state"] for n in nodes} == {"ALIVE", "DEAD"}, nodes
    assert c.wait_job(c.submit("true"))["state"] == "SUCCEEDED"


def test_logs_outlive_their_node(c):
    jid = c.submit("for i in $(seq 1 300); do echo line-$i of a log that outlives its node; done")
    assert c.wait_job(jid)["state"] == "SUCCEEDED"
    want = c.logs(jid)  # from the node agent
    assert want.count("\n") == 300, want
    # The GCS copies an ended job's log into its data directory.
    copy = os.path.join(c.dir, "gcs", "logs", jid)
    wait_until(lambda: os.path.exists(copy), what="the GCS's copy of the log")
    running = c.submit("echo still running; exec sleep 600")
    c.wait_job(running, states=("RUNNING",))
    wait_until(lambda: "still running" in c.logs(running), what="driver output")
    node_id = c.job(jid)["node_id"]
    c.nodes["node-1"].kill()

    def follow(job_id):
        req = urllib.request.Request(c.url + "/api/v1/jobs/%s/logs?follow=true" % job_id,
                                     headers={"Authorization": "Bearer " + c.token})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode()

    def readable():
        assert c.logs(jid) == want
        assert follow(jid) == want
        assert c.get("/api/jobs/%s/logs" % jid).json() == {"logs": want}
    readable()  # the node does not answer: the copy does
    wait_until(lambda: c.get("/api/v1/nodes/" + node_id).json()["state"] == "DEAD",
               what="the node declared dead")
    readable()  # the node is dead: the copy, without asking it
    # A job that was running when its node died has no copy: its log is gone.
    assert c.wait_job(running)["state"] == "FAILED"
    r = c.get("/api/v1/jobs/%s/logs" % running)
    assert r.status == 503 and r.json()["error"]["code"] == "node_unavailable", r
    # Copies survive a GCS restart, and go with their job.
    c.gcs.kill()
    c.start_gcs()
    readable()
    assert c.request("DELETE", "/api/v1/jobs/" + jid).status == 200
    assert not os.path.exists(copy)


def test_working_dir_package(c):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"#!/bin/sh\necho script says hi\n"
        info = tarfile.TarInfo("run.sh")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    r = c.request("POST", "/api/v1/packages", raw=buf.getvalue())
    assert r.status == 201, r
    sha = r.json()["sha256"]
    jid = c.submit("./run.sh && pwd", working_dir=sha)
    j = c.wait_job(jid)
    logs = c.logs(jid)
    assert j["state"] == "SUCCEEDED" and "script says hi" in logs and sha in logs, (j, logs)


def tar_of(members, gz=False, fmt=None):
    """A tar archive (bytes) of (name, type, link-or-data, mode) tuples."""
    import io
    import tarfile
    buf = io.BytesIO()
    kw = {"format": fmt} if fmt is not None else {}
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", **kw) as tar:
        for name, kind, extra, mode in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            data = None
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = extra
            elif kind == tarfile.REGTYPE:
                data = extra or b""
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def test_unsafe_packages_refused_at_upload(c):
    """A working directory that would put anything outside its directory, or make a
    device or a FIFO, is refused whole when it is uploaded (400 unsafe_package)."""
    import tarfile
    REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
    f = ("ok.txt", REG, b"fine", 0o644)
    cases = [  # (members, what the message names, gzip, format)
        ([f, ("link", SYM, "/etc/passwd", 0o777)], "link", False, None),
        ([f, ("a/b/link", SYM, "../../../etc", 0o777)], "a/b/link", True, None),
        ([("s", SYM, ".", 0o777), ("t", SYM, "s/..", 0o777)], "'t'", False, None),
        ([("d", DIR, None, 0o755), ("l", SYM, "d", 0o777), ("l/x", REG, b"x", 0o644)], "l/x",
         False, None),
        ([f, ("h", LNK, "../outside", 0o644)], "'h'", False, None),
        ([f, ("h", LNK, "/etc/shadow", 0o644)], "'h'", True, None),
        ([f, ("dev", tarfile.CHRTYPE, None, 0o666)], "character device", False, None),
        ([f, ("pipe", tarfile.FIFOTYPE, None, 0o666)], "FIFO", True, None),
        ([("/abs", REG, b"x", 0o644)], "/abs", False, None),
        ([("../up", REG, b"x", 0o644)], "../up", False, None),
        ([("d" * 120 + "/../../y", REG, b"x", 0o644)], "d" * 100, True, tarfile.PAX_FORMAT),
        ([("ln", SYM, "/" + "a" * 150, 0o777)], "'ln'", False, tarfile.GNU_FORMAT),
    ]
    for members, names, gz, fmt in cases:
        data = tar_of(members, gz, fmt)
        r = c.request("POST", "/api/v1/packages", raw=data)
        assert r.status == 400 and r.json()["error"]["code"] == "unsafe_package", (members, r)
        assert names in r.json()["error"]["message"], (names, r)
        assert c.get("/api/v1/packages/" + hashlib.sha256(data).hexdigest()).status == 404
    # links that stay inside, a hard link, and blobs that are not tar archives are stored
    inside = tar_of([("file", REG, b"x", 0o644), ("lib/a", SYM, "../file", 0o777),
                     ("cur", SYM, "lib/a", 0o777), ("lib/b", SYM, "./a", 0o777),
                     ("h", LNK, "file", 0o644), ("suid", REG, b"y", 0o4755)], gz=True)
    for ok in (inside, b"\x7fELF not really a library", b"\x1f\x8b but not gzip"):
        assert c.request("POST", "/api/v1/packages", raw=ok).status == 201, ok[:20]
test_unsafe_packages_refused_at_upload.cluster = {"nodes": 0}


def test_package_extracted_safely(c):
    """The node agent drops setuid, setgid, sticky and world-write bits when it
    extracts a working directory, and refuses an unsafe one the GCS stored before it
    checked uploads."""
    import sqlite3
    import tarfile
    REG, DIR, SYM = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE
    sha = upload(c, tar_of([("run.sh", REG, b"#!/bin/sh\necho from-run\n", 0o6755),
                            ("open", REG, b"x", 0o666), ("tmp", DIR, None, 0o1777),
                            ("sub/up", SYM, "../run.sh", 0o777)]))
    jid = c.submit("stat -c '%a %n' run.sh open tmp; ./sub/up", working_dir=sha)
    j = c.wait_job(jid)
    logs = c.logs(jid)
    assert j["state"] == "SUCCEEDED" and "from-run" in logs, (j, logs)
    modes = {l.split()[1]: int(l.split()[0], 8) for l in logs.splitlines() if " " in l}
    assert set(modes) == {"run.sh", "open", "tmp"}, logs
    for name, mode in modes.items():
        assert not mode & 0o7002, (name, oct(mode))
    assert modes["run.sh"] & 0o100, logs  # still executable

    bad = tar_of([("run.sh", REG, b"x", 0o755), ("etc", SYM, "/etc", 0o777)])
    sha = hashlib.sha256(bad).hexdigest()
    with open(os.path.join(c.dir, "gcs", "packages", sha), "wb") as f:
        f.write(bad)
    db = sqlite3.connect(os.path.join(c.dir, "gcs", "gcs.db"), timeout=10)
    with db:
        db.execute("INSERT INTO packages (sha256, size, created_at) VALUES (?, ?, 0)",
                   (sha, len(bad)))
    db.close()
    jid = c.submit("echo the driver ran", working_dir=sha)
    j = c.wait_job(jid)
    assert j["state"] == "FAILED" and j["driver_exit_code"] is None, j
    assert "refused" in j["message"] and "'etc'" in j["message"], j
    assert not os.path.exists(os.path.join(c.dir, "nodes", "node-1", "packages", sha))


def upload(c, data):
    r = c.request("POST", "/api/v1/packages", raw=data)
    assert r.status in (200, 201), r
    return r.json()["sha256"]


def test_package_cache_pruned(c):
    """A node keeps its package cache within --package-cache-max: the least
    recently used package goes, never the working directory of a running job,
    and a package that went is fetched again when a job needs it."""
    c.start_node("node-2", "--resources", '{"cache": 4}', "--package-cache-max", "250KiB")
    c.wait_nodes(2)
    import tarfile
    shas = [upload(c, tar_of([("data", tarfile.REGTYPE, os.urandom(100 << 10), 0o644)]))
            for _ in range(3)]
    cache = os.path.join(c.dir, "nodes", "node-2", "packages")

    def cached():
        return {s for s in shas if os.path.isdir(os.path.join(cache, s))}

    def start(sha, cmd="true"):
        return c.submit(cmd, working_dir=sha, resources={"cache": 1})
    a = start(shas[0], "sleep 3")  # running in A's directory while B and C come
    c.wait_job(a, states=("RUNNING",))
    assert c.wait_job(start(shas[1]))["state"] == "SUCCEEDED"
    assert cached() == {shas[0], shas[1]}, cached()
    assert c.wait_job(start(shas[2]))["state"] == "SUCCEEDED"
    assert cached() == {shas[0], shas[2]}, cached()  # B went; A is in use
    assert c.wait_job(a)["state"] == "SUCCEEDED"
    assert c.wait_job(start(shas[1]))["state"] == "SUCCEEDED"  # fetched again
    assert cached() == {shas[2], shas[1]}, cached()  # now A, the least recently used, went
    lib = upload(c, os.urandom(100 << 10))  # task libraries count too
    j = c.submit("true", packages=[lib], resources={"cache": 1})
    assert c.wait_job(j)["state"] == "SUCCEEDED"
    assert os.path.exists(os.path.join(c.dir, "nodes", "node-2", "worker-packages", lib + ".so"))
    assert cached() == {shas[1]}, cached()


def test_job_packages(c):
    """A job names the example task package (by a name) and a second one: both are in the
    node's worker cache when the driver starts, the driver sees them in its environment
    and runs a task of the named one by $PRISM_PACKAGE_TASKS."""
    for path in (TASKS_SO, PROBE, os.path.join(BIN, "prism-worker")):
        if not os.access(path, os.R_OK):
            skip("%s is not built" % path)
    with open(TASKS_SO, "rb") as f:
        tasks = upload(c, f.read())
    other = upload(c, b"not a library, just bytes a job names")
    cache = os.path.join(c.dir, "nodes", "node-1", "worker-packages")
    assert not os.path.exists(os.path.join(cache, tasks + ".so"))
    driver = ('test -f "%s/$PRISM_PACKAGE_TASKS.so" && test -f "%s/%s.so" && echo cached-first; '
              'echo "all=$PRISM_PACKAGES"; exec %s package "$PRISM_PACKAGE_TASKS"'
              % (cache, cache, other, os.path.abspath(PROBE)))
    r = c.post("/api/v1/jobs", {"entrypoint": driver, "packages": [
        {"name": "tasks", "sha256": tasks}, other],
        "env": {"PRISM_STORE_SOCKET": os.path.join(c.dir, "nodes", "node-1", "objectstore.sock")}})
    assert r.status == 201, r
    job = r.json()
    want = [{"sha256": tasks, "name": "tasks"}, {"sha256": other, "name": None}]
    assert job["packages"] == want, job
    j = c.wait_job(job["job_id"], timeout=120)
    logs = c.logs(job["job_id"])
    assert j["state"] == "SUCCEEDED" and j["packages"] == want, (j, logs)
    assert "cached-first" in logs and "all=%s %s" % (tasks, other) in logs, logs
    assert "package ok" in logs, logs
    listed = c.get("/api/v1/jobs").json()["jobs"]
    assert listed[0]["packages"] == want and c.job(c.submit("true"))["packages"] == [], listed


def test_job_packages_refused(c):
    known = upload(c, b"a known package")
    other = upload(c, b"another known package")
    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    r = c.post("/api/v1/jobs", {"entrypoint": "true", "submission_id": "pkg-unknown",
                                "packages": [known, {"name": "lib", "sha256": unknown}]})
    err = r.json()["error"]
    assert r.status == 400 and err["code"] == "unknown_package", r
    assert unknown in err["message"] and "POST /api/v1/packages" in err["message"], r
    many = [hashlib.sha256(b"%d" % i).hexdigest() for i in range(33)]
    for bad in ("abc", 5, {"sha256": known}, [5], [None], ["nothex"], [known.upper()],
                [{"name": "lib"}], [{"sha256": 7}], [{"sha256": known, "name": "bad-name"}],
                [{"sha256": known, "name": ""}], [{"sha256": known, "name": "x" * 65}],
                [{"sha256": known, "name": 7}], many, [known, known],
                [known, {"name": "x", "sha256": known}],
                [{"name": "lib", "sha256": known}, {"name": "LIB", "sha256": other}]):
        r = c.post("/api/v1/jobs", {"entrypoint": "true", "packages": bad})
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (bad, r)
        assert "packages" in r.json()["error"]["message"], (bad, r)
    assert c.get("/api/v1/jobs").json()["jobs"] == [], "a refused job was stored"
    assert c.get("/api/v1/jobs/pkg-unknown").status == 404
    # null and an empty list are no packages
    for none in (None, []):
        assert c.job(c.submit("true", packages=none))["packages"] == []


def test_job_package_cannot_be_fetched(c):
    """The GCS knows the package but has lost its bytes: the job fails before its driver runs."""
    sha = upload(c, b"bytes that will be lost")
    os.unlink(os.path.join(c.dir, "gcs", "packages", sha))
    jid = c.submit("echo the driver ran", packages=[{"name": "lost", "sha256": sha}])
    j = c.wait_job(jid)
    assert j["state"] == "FAILED" and j["driver_exit_code"] is None, j
    assert "package %s could not be fetched" % sha in j["message"], j
    r = c.get("/api/v1/jobs/%s/logs" % jid)
    assert r.status in (200, 404) and b"the driver ran" not in r.body, r
    assert not os.path.exists(os.path.join(c.dir, "nodes", "node-1", "worker-packages",
                                           sha + ".so"))


def test_slow_package_fetch_fails_job(c):
    """A download that outlasts the GCS's start request still ends the job FAILED with
    the reason (the node agent publishes it), rather than as a lost driver."""
    import socket
    hole = socket.socket()  # accepts connections (the backlog) and never answers
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    try:
        c.start_node("slow-node", "--gcs-address", "http://127.0.0.1:%d" % hole.getsockname()[1],
                     "--package-timeout-ms", "7000")
        c.wait_nodes(1)
        sha = upload(c, b"a package the node cannot get in time")
        jid = c.submit("echo the driver ran", packages=[sha])
        j = c.wait_job(jid, timeout=30)
        assert j["state"] == "FAILED", j
        assert "package %s could not be fetched" % sha in j["message"], j
    finally:
        hole.close()
test_slow_package_fetch_fails_job.cluster = {"nodes": 0}


class GatedProxy:
    """An HTTP proxy to the GCS that holds package downloads until `release()`:
    a node agent given its address fetches packages as slowly as the test says."""

    def __init__(self, target):
        import http.server
        import threading
        import urllib.error
        import urllib.request
        self.gate = threading.Event()
        gate = self.gate

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/api/v1/packages/"):
                    gate.wait(60)
                req = urllib.request.Request(target + self.path, headers={
                    k: v for k, v in self.headers.items() if k.lower() in ("authorization",)})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, body = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, body = e.code, e.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self):
        self.gate.set()

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def test_job_fetching_packages_is_pending(c):
    """While its node fetches its packages a job is PENDING with a message saying
    so (on the node agent and in the GCS, also after the GCS stopped waiting for
    the start), and RUNNING only once its driver started."""
    proxy = GatedProxy(c.url)
    try:
        c.start_node("slow-node", "--gcs-address", proxy.url)
        c.wait_nodes(1)
        sha = upload(c, b"a package the node gets when the test lets it")
        jid = c.submit("echo the driver ran", packages=[sha])
        j = wait_until(lambda: (lambda j: j if "fetching its packages" in (j["message"] or "")
                                else None)(c.job(jid)), timeout=20, what="the fetching message")
        assert j["state"] == "PENDING", j
        time.sleep(6)  # past the GCS's wait for the start's answer (5 s)
        j = c.job(jid)
        assert j["state"] == "PENDING" and "fetching its packages" in j["message"], j
        proxy.release()
        j = c.wait_job(jid, timeout=30)
        assert j["state"] == "SUCCEEDED" and c.logs(jid) == "the driver ran\n", (j, c.logs(jid))
    finally:
        proxy.close()
test_job_fetching_packages_is_pending.cluster = {"nodes": 0}


def test_retention_prunes_jobs(c):
    ids = [c.submit("true") for _ in range(8)]
    for jid in ids:
        c.wait_job(jid)
    wait_until(lambda: len(c.get("/api/v1/jobs").json()["jobs"]) == 3, timeout=20,
               what="retention to keep 3 jobs")
    kept = [j["job_id"] for j in c.get("/api/v1/jobs").json()["jobs"]]
    assert kept == list(reversed(ids[-3:])), kept
    assert c.get("/api/v1/jobs/" + ids[0]).status == 404
test_retention_prunes_jobs.cluster = {"gcs_args": ("--job-retention-count", "3")}


def test_events_and_metrics(c):
    jid = c.submit("true")
    c.wait_job(jid)
    text = c.get("/metrics").body.decode()
    assert "prism_gcs_jobs_finished_total 1" in text, text
    node = c.get("/api/v1/nodes").json()["nodes"][0]
    assert node["state"] == "ALIVE" and node["available"]["CPU"] == node["resources"]["CPU"], node


if __name__ == "__main__":
    run([test_echo_job, test_exit_code_3_fails, test_env_and_cluster_access, test_stop_long_job,
         test_follow_logs, test_resources_and_infeasible, test_infeasible_until_node_joins,
         test_concurrent_submissions, test_gcs_restart_mid_job, test_node_agent_killed,
         test_logs_outlive_their_node,
         test_working_dir_package, test_unsafe_packages_refused_at_upload,
         test_package_extracted_safely, test_package_cache_pruned, test_job_packages, test_job_packages_refused,
         test_job_package_cannot_be_fetched, test_slow_package_fetch_fails_job, test_job_fetching_packages_is_pending,
         test_retention_prunes_jobs, test_events_and_metrics],
        nodes=1)
