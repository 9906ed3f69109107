#!/usr/bin/python3
"""deploy/docker on a real Docker engine: the image built from the Dockerfile,
the compose file brought up as the README says (gen-env.sh, then compose up),
and the scenarios of the namespace emulation (test_compose_emulated.py), now
with containers:

- the curl job submission of docs/deploy.md, its log, a task and its object,
  a dataset run by the dataservice through the GCS;
- a large task result made on node-1 used by a task on node-2;
- the seed program and a driver of the test's own, built against the image's
  libprism as a user builds theirs, run as jobs inside the cluster;
- node-2's containers killed: the node DEAD, its task retried on node-1; its
  containers started again: a new incarnation of node-2;
- the GCS container restarted: jobs and a detached actor still right (its
  SQLite volume kept);
- `compose down -v` leaves no container, network or volume of the test.

The engine comes from scripts/docker-engine.sh (Debian's docker.io, base
images made with debootstrap when no registry answers); the test skips with
the reason where no engine can run. The compose network's addresses come
from 198.18.0.0/15 whatever the engine's defaults, and the test talks only to
the GCS's port published on 127.0.0.1 and to its own containers. It prints
the image's size and build time, the cluster's start-up time and the seed
program's latency (docs/deploy.md reports them)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import (BIN, exit_on_sigterm, rest, skip, submit_task,  # noqa: E402
                        task_value, tasks_across_nodes, wait_until)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOCKER_DIR = os.path.join(ROOT, "deploy", "docker")
ENGINE = os.path.join(ROOT, "scripts", "docker-engine.sh")
IMAGE = "prism:compose-test"
IMAGE_MAX_MB = 150


def log(msg):
    print("compose_real: " + msg, flush=True)


def run(argv, timeout=300, check=True, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                       text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(argv), r.returncode, r.stdout[-3000:]))
    return r.stdout


def docker():
    # Debian's client, like the engine (a newer one on PATH may want plugins)
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Compose:
    """One compose project of the test's own: its name, network and port."""

    def __init__(self, tmp, token):
        self.project = "prismtest%d" % os.getpid()
        self.port = free_port()
        self.gcs = "http://127.0.0.1:%d" % self.port
        self.token = token
        # a /24 of 198.18.0.0/16 that the engine's own pool (when
        # docker-engine.sh started it) does not hand out first
        subnet = "198.18.%d.0/24" % (200 + os.getpid() % 50)
        self.override = os.path.join(tmp, "network.yml")
        with open(self.override, "w") as f:
            f.write("networks:\n  default:\n    ipam:\n      config:\n        - subnet: %s\n" % subnet)
        self.env = dict(os.environ, PRISM_IMAGE=IMAGE,
                        PRISM_GCS_PUBLISH="127.0.0.1:%d" % self.port)
        self.cmd = ([shutil.which("docker-compose")] if shutil.which("docker-compose")
                    else [docker(), "compose"])
        self.cmd += ["-p", self.project, "-f", os.path.join(DOCKER_DIR, "docker-compose.yml"),
                     "-f", self.override]

    def __call__(self, *args, timeout=300, check=True):
        return run(self.cmd + list(args), timeout=timeout, check=check, env=self.env,
                   cwd=DOCKER_DIR)

    def container(self, service):
        cid = self("ps", "-q", service).strip()
        assert cid, "no container for " + service
        return cid

    def ip(self, service):
        return run([docker(), "inspect", "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    self.container(service)]).strip()

    def leftovers(self):
        label = "label=com.docker.compose.project=" + self.project
        return {kind: run([docker(), kind, "ls", "-q", "--filter", label] +
                          (["-a"] if kind == "container" else [])).split()
                for kind in ("container", "network", "volume")}

    # ---- the REST API, as a client outside sees it ----

    def get(self, path, timeout=60):
        st, body = rest(self.gcs + path, self.token, timeout=timeout)
        assert st == 200, (path, st, body[:300])
        return json.loads(body)

    def post(self, path, body):
        st, out = rest(self.gcs + path, self.token, "POST", body)
        assert st in (200, 201), (path, st, out[:300])
        return json.loads(out)

    def nodes(self, state="ALIVE"):
        return {n["name"]: n for n in self.get("/api/v1/nodes?state=%s&limit=1000" % state)["nodes"]}

    def job(self, jid, timeout=120):
        """The job once it ended, and its log."""
        j = wait_until(lambda: (lambda j: j if j["state"] in ("SUCCEEDED", "FAILED", "STOPPED")
                                else None)(self.get("/api/v1/jobs/" + jid)),
                       timeout=timeout, interval=0.2, what="job %s to end" % jid)
        st, out = rest(self.gcs + "/api/v1/jobs/%s/logs" % jid, self.token)
        return j, out.decode(errors="replace")

    def cli(self, *args, timeout=180):
        env = dict(os.environ, PRISM_ADDRESS=self.gcs, PRISM_TOKEN=self.token)
        return run([os.path.join(BIN, "prism")] + list(args), timeout=timeout, env=env)


def build_image():
    t0 = time.time()
    run([docker(), "build", "-q", "-f", os.path.join(DOCKER_DIR, "Dockerfile"), "-t", IMAGE, ROOT],
        timeout=1800, env=dict(os.environ, DOCKER_BUILDKIT="1"))
    took = time.time() - t0
    size = int(run([docker(), "image", "inspect", "-f", "{{.Size}}", IMAGE]).strip())
    log("image %s built in %.1fs, %.1f MB" % (IMAGE, took, size / 1e6))
    assert size < IMAGE_MAX_MB * 1e6, "the image is %.1f MB (at most %d)" % (size / 1e6, IMAGE_MAX_MB)


def build_drivers(tmp):
    """The seed program and compose_driver.c, compiled here against the
    image's libprism and headers, as a user builds a driver for a release."""
    lib = os.path.join(tmp, "lib")
    os.makedirs(lib)
    cid = run([docker(), "create", IMAGE]).strip()
    try:
        run([docker(), "cp", cid + ":/usr/local/lib/.", lib])
    finally:
        run([docker(), "rm", cid], check=False)
    pkg = os.path.join(tmp, "drivers")
    os.makedirs(pkg)
    cc = shutil.which("cc") or shutil.which("gcc")
    for src, out in (("examples/seed.c", "seed"), ("tests/cluster/compose_driver.c", "compose-driver")):
        run([cc, "-O2", "-I", os.path.join(ROOT, "include"), os.path.join(ROOT, src), "-o",
             os.path.join(pkg, out), "-L", lib, "-lprism", "-Wl,-rpath-link," + lib])
    return pkg


def job_in_cluster(c, pkg, command):
    """A job whose working directory is the drivers' package; its end and log."""
    out = c.cli("job", "submit", "--working-dir", pkg, "--", command)
    jid = out.strip().split()[-1]
    return c.job(jid)


def scenario(c, pkg):
    # the README's flow, with curl's requests
    job = c.post("/api/v1/jobs", {"entrypoint": "echo hi from $PRISM_NODE_ID", "resources": {"CPU": 1}})
    j, out = c.job(job["job_id"])
    assert j["state"] == "SUCCEEDED" and out == "hi from %s\n" % j["node_id"], (j, out)
    sub = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [2, 40]})
    assert task_value(c.gcs, c.token, sub["object_ids"][0]) == {"kind": "json", "value": 42}
    # a dataset, run by the dataservice container through the GCS's proxy
    d = c.post("/api/v1/datasets", {"name": "compose", "ops": [
        {"op": "range", "n": 10000, "override_num_blocks": 4}]})
    n = c.get("/api/v1/datasets/%s/count?timeout_ms=60000" % d["dataset_id"], timeout=90)
    assert n["complete"] and n["count"] == 10000, n
    # a large result made on node-1 is the argument of a task on node-2
    a = {"name": "node-1", "store": "http://%s:8267" % c.ip("node-1-store")}
    b = {"name": "node-2", "store": "http://%s:8267" % c.ip("node-2-store")}
    tasks_across_nodes(c.gcs, c.token, a, b)

    # the seed program as a job inside the cluster, timed there
    j, out = job_in_cluster(c, pkg, "s=$(date +%s%N); ./seed; rc=$?; "
                            "echo \"seed took $((($(date +%s%N) - s) / 1000)) us\"; exit $rc")
    assert j["state"] == "SUCCEEDED" and "result: a 5x5 tensor" in out, (j, out)
    log("seed program inside compose: " + out.strip().splitlines()[-1])
    seed_job = j["job_id"]

    # node-2's containers killed while its task runs: node DEAD, the task retried on node-1
    nodes = c.nodes()
    old = nodes["node-2"]["node_id"]
    oid = submit_task(c.gcs, c.token, "sleep", [15000], strategy="NODE_AFFINITY", node_id=old,
                      soft=True)
    # Task events reach the GCS in batches (a started one may wait for its
    # end), so the task is given time to start rather than watched for it.
    time.sleep(4)
    t0 = time.time()
    run([docker(), "kill", c.container("node-2"), c.container("node-2-store")])
    wait_until(lambda: c.nodes("DEAD").get("node-2", {}).get("node_id") == old, timeout=40,
               interval=0.5, what="node-2 DEAD")
    log("node-2 declared DEAD %.1fs after its containers were killed" % (time.time() - t0))
    assert task_value(c.gcs, c.token, oid) == {"kind": "json", "value": None}
    assert list(c.nodes()) == ["node-1"], c.nodes()
    # the retry ran on node-1, after the kill
    one = c.nodes()["node-1"]["node_id"]
    sleeps = lambda: [t for t in c.get("/api/v1/tasks?limit=1000")["tasks"]  # noqa: E731
                      if t["name"] == "builtin/sleep"]
    wait_until(lambda: any(t["state"] == "FINISHED" and t.get("node_id") == one and
                           t.get("started_at", 0) >= t0 * 1000 - 1000 for t in sleeps()),
               timeout=20, interval=0.5,
               what="the sleep task's retry listed FINISHED on node-1 (%r)" % sleeps())
    # started again: a new incarnation of node-2
    c("start", "node-2-store", "node-2")
    new = wait_until(lambda: c.nodes().get("node-2"), timeout=60, interval=0.5,
                     what="node-2 alive again")
    assert new["node_id"] != old, new

    # a detached actor, then the GCS restarted: jobs and the actor still right
    j, out = job_in_cluster(c, pkg, "./compose-driver create compose-counter")
    assert j["state"] == "SUCCEEDED" and "inc -> 1" in out, (j, out)
    actor = out.split("actor ")[-1].split()[0]
    c("restart", "gcs", timeout=120)
    wait_until(lambda: rest(c.gcs + "/healthz", c.token, timeout=5)[0] == 200 if _answers(c) else None,
               timeout=60, interval=0.5, what="the GCS back")
    wait_until(lambda: len(c.nodes()) == 2, timeout=60, interval=0.5, what="both nodes known again")
    assert c.get("/api/v1/jobs/" + seed_job)["state"] == "SUCCEEDED"
    a = c.get("/api/v1/actors/" + actor)
    assert a["state"] == "ALIVE" and a["name"] == "compose-counter", a
    j, out = job_in_cluster(c, pkg, "./compose-driver call compose-counter 2")
    assert j["state"] == "SUCCEEDED" and "inc -> 2" in out, (j, out)


def _answers(c):
    try:
        with socket.create_connection(("127.0.0.1", c.port), timeout=2):
            return True
    except OSError:
        return False


def main():
    exit_on_sigterm()
    if os.geteuid() != 0:
        skip("a Docker engine is started as root (scripts/docker-engine.sh)")
    for b in ("prism",):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            skip("%s is not built in %s" % (b, BIN))
    if not (shutil.which("cc") or shutil.which("gcc")):
        skip("a C compiler is needed to build the drivers")
    was_running = subprocess.run([ENGINE, "status"], timeout=60).returncode == 0
    r = subprocess.run([ENGINE, "start"], timeout=900)
    if r.returncode == 77:
        skip("no Docker engine can run here (scripts/docker-engine.sh start said why above)")
    assert r.returncode == 0, "scripts/docker-engine.sh start: exit %d" % r.returncode
    if not docker():
        skip("no docker client")
    tmp = tempfile.mkdtemp(prefix="prism-compose-")
    env_file = os.path.join(DOCKER_DIR, "prism.env")
    made_env = not os.path.exists(env_file)
    c = None
    ok = False
    t_start = time.time()
    try:
        build_image()
        pkg = build_drivers(tmp)
        run([os.path.join(DOCKER_DIR, "gen-env.sh")])
        with open(env_file) as f:
            token = [ln.split("=", 1)[1].strip() for ln in f if ln.startswith("PRISM_TOKEN=")][0]
        c = Compose(tmp, token)
        t0 = time.time()
        c("up", "-d", "--no-build", timeout=600)
        wait_until(lambda: _answers(c) and len(c.nodes()) == 2, timeout=120, interval=0.5,
                   what="the GCS answering with both nodes alive")
        wait_until(lambda: rest(c.gcs + "/api/v1/datasets", c.token, timeout=5)[0] == 200,
                   timeout=60, interval=0.5, what="the dataservice found by the GCS")
        log("compose up to healthy in %.1fs" % (time.time() - t0))
        scenario(c, pkg)
        ok = True
    finally:
        if c is not None:
            if not ok:
                print(c("logs", "--no-color", "--tail", "40", timeout=120, check=False)[-12000:])
            c("down", "-v", "--remove-orphans", timeout=300, check=False)
            left = c.leftovers()
            if any(left.values()):
                ok = False
                print("FAIL compose down -v left %r" % left)
        if made_env and os.path.exists(env_file):
            os.unlink(env_file)
        run([docker(), "rmi", IMAGE], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        if not was_running:
            subprocess.run([ENGINE, "stop"], timeout=120)
    if not ok:
        print("0 passed, 1 failed")
        sys.exit(1)
    print("PASS compose_real (%.1fs)" % (time.time() - t_start))
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
