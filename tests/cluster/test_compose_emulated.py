#!/usr/bin/python3
"""deploy/docker/docker-compose.yml, run without Docker: each compose service
becomes a process in its own network namespace (as each container has its
own network), started in depends_on order once its dependencies' healthchecks
pass, with exactly the command and environment the compose file gives it, the
token from an env file, service names resolved through a hosts file (as
Docker's DNS does), the service's `hostname:`, and named volumes as shared
directories (node-N and node-N-store share the one mounted on /dev/shm).
Each container sees only its own files and the volumes it mounts (a mount
namespace of its own; its /tmp is private too), so a Unix socket of one
container cannot be reached from another, as under Docker; a volume mounted
on /dev/shm is mounted there for real, so every node's processes use the
very socket paths the file names.
Then the curl job submission of docs/deploy.md runs against the GCS, logs
come back from both nodes, and an object moves between the nodes' stores by
service name. Tasks run end to end through the GCS's REST API: the curl
add(2, 40) of docs/deploy.md, then a large result made on node-1 is the
argument of a task on node-2 (the scheduler's leases, the node agents'
workers reached by their node's name, the stores' sockets and URLs as the
compose file gives them). NATS monitoring answers the nats container's
healthcheck on its loopback and nothing on its network address (it would
show the token).

The same runs again with docker-compose.tls.yml on top, merged as compose
merges files: its one-shot tls-init makes the certificates first, and then
every REST call above is HTTPS checked against that CA, NATS and the
workers' connections are TLS, and plain HTTP to the GCS gets nothing.

This checks that the compose files' configuration alone makes a working
cluster; the image itself is not built here (no Docker)."""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import (BIN, Net, Proc, check_prerequisites, container_argv,  # noqa: E402
                        exit_on_sigterm, skip, tasks_across_nodes, wait_until)

try:
    import yaml
except ImportError:
    skip("python3-yaml is not installed")

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOCKER = os.path.join(ROOT, "deploy", "docker")
# what the image's COPY lines put where
IMAGE_PROGRAMS = {"prism-nats": os.path.join(DOCKER, "prism-nats.sh"),
                  "prism-tls-init": os.path.join(DOCKER, "prism-tls-init.sh")}
# container paths that volumes are mounted on for real (in the container's own
# mount namespace); other container paths become directories of the test
REAL_MOUNTS = ("/dev/shm",)


def expand(v, variables=None):
    """${NAME:-default} as compose interpolates it: the variable when set and not empty."""
    return re.sub(r"\$\{([A-Z0-9_]+):-([^}]*)\}",
                  lambda m: (variables or {}).get(m.group(1)) or m.group(2), str(v))


def merge(base, over, key=None):
    """What `docker compose -f base -f over` makes of two files: mappings merge
    key by key, a service's volumes merge by their path in the container, any
    other value of `over` (a command, a healthcheck's test) replaces base's."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, k) if k in base else v
        return out
    if key == "volumes" and isinstance(base, list) and isinstance(over, list):
        by_target = {v.split(":")[1]: v for v in base}
        by_target.update({v.split(":")[1]: v for v in over})
        return list(by_target.values())
    return over


def order(services):
    done, out = set(), []
    for _ in range(len(services) + 1):
        for name, s in services.items():
            if name not in done and set(s.get("depends_on", {})) <= done:
                done.add(name)
                out.append(name)
    assert len(out) == len(services), "depends_on has a cycle"
    return out


class Compose:
    def __init__(self, files=("docker-compose.yml",)):
        self.doc = {}
        for name in files:
            with open(os.path.join(DOCKER, name)) as f:
                self.doc = merge(self.doc, yaml.safe_load(f))
        self.services = self.doc["services"]
        self.names = list(self.services)
        self.net = Net(len(self.names))
        self.tls = "tls-init" in self.services
        self.scheme = "https" if self.tls else "http"
        # compose's own variables (the shell's or .env's): the certificate also
        # names the addresses this test reaches the services by, as a user
        # names the host the GCS port is published on
        self.variables = {"PRISM_TLS_NAMES": " ".join(self.ip(n) for n in self.names)}
        self.dir = tempfile.mkdtemp(prefix="prism-compose-")
        self.procs = {}
        # a hex token that reads like a number: nats-server must still take it as a string
        self.token = "1e9" + secrets.token_hex(32)[3:]
        with open(os.path.join(self.dir, "prism.env"), "w") as f:  # what gen-env.sh writes
            f.write("PRISM_TOKEN=%s\n" % self.token)
        hosts = "127.0.0.1 localhost\n" + "".join(
            "%s %s\n" % (self.ip(n), n) for n in self.names)
        for i in range(1, len(self.names) + 1):
            self.net.set_etc_file(i, "hosts", hosts)

    def idx(self, name):
        return self.names.index(name) + 1

    def ip(self, name):
        return self.net.node_ip(self.idx(name))

    def env_file(self, path):
        env = {}
        with open(os.path.join(self.dir, path)) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = v
        return env

    @property
    def fs(self):
        """Every container's files: fs/containers/NAME (its own), fs/volumes/VOLUME."""
        return os.path.join(self.dir, "fs")

    def path_map(self, name, s):
        """Container paths -> directories under fs: named volumes shared, the rest private."""
        m = {}
        for v in s.get("volumes", []):
            vol, dst = v.split(":")[:2]
            d = os.path.join(self.fs, "volumes", vol)
            os.makedirs(d, exist_ok=True)
            m[dst] = d
        return m

    def host_path(self, name, pmap, p):
        for dst, d in sorted(pmap.items(), key=lambda x: -len(x[0])):
            if dst in REAL_MOUNTS:
                continue
            if p == dst or p.startswith(dst + "/"):
                return d + p[len(dst):]
        d = os.path.join(self.fs, "containers", name) + p
        os.makedirs(d if not os.path.splitext(p)[1] else os.path.dirname(d), exist_ok=True)
        return d

    def container_env(self, name, pmap):
        """The PRISM_ variables of the service's container, its paths as this host sees them."""
        s = self.services[name]
        env = self.env_file(s["env_file"]) if "env_file" in s else {}
        for k, v in (s.get("environment") or {}).items():
            v = expand(v, self.variables)
            real = any(v == m or v.startswith(m + "/") for m in REAL_MOUNTS)
            env[k] = self.host_path(name, pmap, v) if v.startswith("/") and not real else v
        return env

    def start(self, name):
        s = self.services[name]
        pmap = self.path_map(name, s)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "TMPDIR"))}
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env["TMPDIR"] = self.host_path(name, pmap, "/tmp")  # the container's own /tmp
        env.update(self.container_env(name, pmap))
        argv = []
        for a in s["command"]:
            if a.startswith("/"):
                a = self.host_path(name, pmap, a)
            elif a in IMAGE_PROGRAMS:
                a = IMAGE_PROGRAMS[a]
            elif a.startswith("prism"):
                a = os.path.join(BIN, a)
            argv.append(a)
        if name == "nats":
            from harness import find_nats
            env["PATH"] = os.path.dirname(find_nats()) + ":" + env.get("PATH", "/usr/bin:/bin")
            env["PRISM_NATS_RUN_DIR"] = self.host_path(name, pmap, "/tmp/prism-nats")
        # what the container sees of fs: its own files and the volumes it mounts
        visible = [os.path.join("containers", name)] + [
            os.path.relpath(d, self.fs) for dst, d in pmap.items() if dst not in REAL_MOUNTS]
        mounts = [(os.path.relpath(d, self.fs), dst) for dst, d in pmap.items() if dst in REAL_MOUNTS]
        argv = container_argv(self.net, self.idx(name), s.get("hostname") or name, self.fs,
                              os.path.join(self.dir, "stash", name), visible, argv, mounts)
        self.procs[name] = Proc(name, argv, os.path.join(self.dir, name + ".log"), env)

    def healthy(self, name):
        s = self.services[name]
        test = s["healthcheck"]["test"]
        assert test[0] == "CMD"
        pmap = self.path_map(name, s)
        test = [self.host_path(name, pmap, a) if a.startswith("/") else a for a in test[1:]]
        r = subprocess.run(["ip", "netns", "exec", self.net.ns(self.idx(name))] + test,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        if not self.procs[name].alive():
            raise AssertionError("%s exited:\n%s" % (name, self.procs[name].tail()))
        return r.returncode == 0

    def completed(self, name):
        """A one-shot service (no healthcheck) ran to exit status 0."""
        p = self.procs[name]
        if p.alive():
            return False
        rc = p.stop()
        assert rc == 0, "%s exited %s:\n%s" % (name, rc, p.tail())
        return True

    def up(self):
        for name in order(self.services):
            for dep, cond in self.services[name].get("depends_on", {}).items():
                if cond.get("condition") == "service_completed_successfully":
                    wait_until(lambda: self.completed(dep), timeout=30, interval=0.2,
                               what="%s done" % dep)
                    continue
                assert cond.get("condition") == "service_healthy"
                wait_until(lambda: self.healthy(dep), timeout=30, interval=0.2,
                           what="%s healthy" % dep)
            self.start(name)
        for name in self.names:
            if "healthcheck" in self.services[name]:
                wait_until(lambda: self.healthy(name), timeout=30, interval=0.2,
                           what="%s healthy" % name)
        if self.tls:  # this test's own HTTPS clients trust the cluster's CA
            self.ca = self.host_path("tls-init", self.path_map("tls-init", self.services["tls-init"]),
                                     "/etc/prism/tls/ca.crt")
            os.environ["SSL_CERT_FILE"] = self.ca

    def curl(self, *args):
        tls = ["--cacert", self.ca] if self.tls else []
        r = subprocess.run(["curl", "-sS", "--max-time", "45"] + tls + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout.decode()

    def down(self, check=True):
        bad = []
        for name in reversed(order(self.services)):
            p = self.procs.get(name)
            if p:
                rc = p.stop()
                # nats-server exits 1 on SIGTERM; Prism's services must exit 0
                if rc != 0 and self.services[name]["command"][0] != "prism-nats":
                    bad.append("%s: exit %s\n%s" % (name, rc, p.tail()))
                p.log.close()
        self.net.teardown()
        if os.environ.get("PRISM_KEEP_TEST_DIR"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if check and bad:
            raise AssertionError("services did not stop cleanly:\n" + "\n".join(bad))

    def dump(self):
        for name, p in self.procs.items():
            print("----- %s -----\n%s" % (name, p.tail(30)))


def nats_monitoring_private(c):
    """NATS monitoring (/connz?auth=1 shows the token) is on the container's loopback only."""
    import socket
    assert c.healthy("nats")  # its healthcheck asks 127.0.0.1:8222 inside the container
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((c.ip("nats"), 8222)) != 0, "NATS monitoring answers on its address"


def scenario(c):
    nats_monitoring_private(c)
    http = c.scheme + "://"
    addr = http + "%s:8265" % c.ip("gcs")  # published on the host as 127.0.0.1:8265
    auth = "Authorization: Bearer " + c.token
    cluster = json.loads(c.curl("-H", auth, addr + "/api/v1/cluster"))
    nodes = [n for n, s in c.services.items() if s["command"][0] == "prism-nodeagent"]
    wait_until(lambda: json.loads(c.curl("-H", auth, addr + "/api/v1/cluster"))["nodes_alive"] == len(nodes),
               timeout=20, what="every compose node alive")
    # docs/deploy.md's job submission, word for word
    job = json.loads(c.curl("-H", auth, "-H", "Content-Type: application/json", "-d",
                            '{"entrypoint": "echo hi from $PRISM_NODE_ID", "resources": {"CPU": 1}}',
                            addr + "/api/v1/jobs"))
    log = c.curl("-H", auth, "%s/api/v1/jobs/%s/logs?follow=true" % (addr, job["job_id"]))
    j = json.loads(c.curl("-H", auth, "%s/api/v1/jobs/%s" % (addr, job["job_id"])))
    assert j["state"] == "SUCCEEDED" and log == "hi from %s\n" % j["node_id"], (j, log)
    # every node runs jobs, and the GCS reads their logs by the nodes' host names
    listed = json.loads(c.curl("-H", auth, addr + "/api/v1/nodes?state=ALIVE"))["nodes"]
    assert sorted(n["address"] for n in listed) == sorted(http + "%s:8266" % n for n in nodes), listed
    for n in listed:
        body = json.dumps({"entrypoint": "hostname", "resources": {"CPU": 2}})
        jid = json.loads(c.curl("-H", auth, "-H", "Content-Type: application/json", "-d", body,
                                addr + "/api/v1/jobs"))["job_id"]
        out = c.curl("-H", auth, "%s/api/v1/jobs/%s/logs?follow=true" % (addr, jid))
        assert out.strip() in nodes, out
    # `docker compose exec gcs prism status`: the CLI finds the GCS through the container's env
    s = c.services["gcs"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_")}
    env.update(c.container_env("gcs", c.path_map("gcs", s)))
    r = subprocess.run(["ip", "netns", "exec", c.net.ns(c.idx("gcs")), os.path.join(BIN, "prism"),
                        "status"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=30)
    assert r.returncode == 0 and b"node-1" in r.stdout, r.stdout.decode()
    # an object put into node-1's store, pulled by node-2's store by service name
    if "node-1-store" in c.services and "node-2-store" in c.services:
        oid = "c0de" * 8 + "00000001"
        a, b = http + "%s:8267" % c.ip("node-1-store"), http + "%s:8267" % c.ip("node-2-store")
        c.curl("-f", "-H", auth, "-X", "PUT", "--data-binary", "compose object",
               a + "/api/v1/objects/" + oid)
        c.curl("-f", "-H", auth, "-H", "Content-Type: application/json", "-d",
               json.dumps({"source": http + "node-1-store:8267"}), b + "/api/v1/objects/%s/pull" % oid)
        assert c.curl("-f", "-H", auth, b + "/api/v1/objects/" + oid) == "compose object"
        # each store made its socket on the /dev/shm volume it shares with its agent
        for n in nodes:
            vol = [v.split(":")[0] for v in c.services[n]["volumes"] if v.endswith(":/dev/shm")][0]
            sock = os.path.basename(c.services[n + "-store"]["environment"]["PRISM_SOCKET"])
            assert os.path.exists(os.path.join(c.fs, "volumes", vol, sock)), n
    # the scheduler knows every node from their reports
    sched = http + "%s:8268" % c.ip("scheduler")
    wait_until(lambda: sorted(n["name"] for n in json.loads(
        c.curl("-H", auth, sched + "/api/v1/scheduler"))["nodes"]) == sorted(nodes),
        timeout=20, what="the scheduler's view of every node")
    # docs/deploy.md's task, word for word: the GCS owns the result
    sub = json.loads(c.curl("-H", auth, "-H", "Content-Type: application/json", "-d",
                            '{"package": "builtin", "function": "add", "args": [2, 40]}',
                            addr + "/api/v1/tasks"))
    assert sub.get("owner") == "gcs" and len(sub["object_ids"]) == 1, sub
    obj = json.loads(c.curl("-H", auth, "%s/api/v1/objects/%s?timeout_ms=30000" %
                            (addr, sub["object_ids"][0])))
    assert obj["state"] == "READY" and obj["value"] == {"kind": "json", "value": 42}, obj
    # a dataset, run by the dataservice container that the GCS found over NATS
    d = json.loads(c.curl("-H", auth, "-H", "Content-Type: application/json", "-d", json.dumps(
        {"name": "compose", "ops": [{"op": "range", "n": 1000, "override_num_blocks": 2}]}),
        addr + "/api/v1/datasets"))
    n = json.loads(c.curl("-H", auth, "%s/api/v1/datasets/%s/count?timeout_ms=60000" %
                          (addr, d["dataset_id"])))
    assert n["count"] == 1000, n
    # a large result on node-1 is the argument of a task on node-2
    tasks_across_nodes(addr, c.token, {"name": "node-1", "store": a}, {"name": "node-2", "store": b})
    if c.tls:
        # nothing in the clear: plain HTTP gets no answer, the workers' ports are tls:
        plain = subprocess.run(["curl", "-sS", "-m", "5", "http://%s:8265/healthz" % c.ip("gcs")],
                               capture_output=True, text=True, timeout=30)
        assert plain.returncode != 0 or "ok" not in plain.stdout, plain
        for n in nodes:  # the workers that ran the tasks took connections over TLS only
            d = c.host_path(n, c.path_map(n, c.services[n]), "/var/lib/prism/node/workers")
            lines = [ln for f in os.listdir(d) if f.endswith(".log")
                     for ln in open(os.path.join(d, f)) if " serving on " in ln]
            assert lines and all(ln.rstrip().split(" and ")[-1].startswith("tls:%s:" % n)
                                 for ln in lines), (n, lines)
    return cluster


def main():
    check_prerequisites()
    exit_on_sigterm()
    for b in ("prism", "prism-gcs", "prism-nodeagent", "prism-objectstore", "prism-scheduler",
              "prism-worker"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            skip("%s is not built in %s" % (b, BIN))
    if not shutil.which("curl") or not shutil.which("unshare"):
        skip("curl and unshare are needed")
    if not shutil.which("openssl"):
        skip("openssl is needed for the TLS run (make bootstrap installs it)")
    passed = 0
    for name, files in (("compose_emulated", ("docker-compose.yml",)),
                        ("compose_emulated_tls", ("docker-compose.yml", "docker-compose.tls.yml"))):
        t0 = time.time()
        c = Compose(files)
        try:
            c.up()
            scenario(c)
        except BaseException as e:
            print("FAIL %s -" % name, repr(e), flush=True)
            c.dump()
            c.down(check=False)
            print("%d passed, 1 failed" % passed)
            sys.exit(1)
        finally:
            os.environ.pop("SSL_CERT_FILE", None)
        c.down()
        passed += 1
        print("PASS %s (%.1fs)" % (name, time.time() - t0))
    print("%d passed, 0 failed" % passed)


if __name__ == "__main__":
    main()
