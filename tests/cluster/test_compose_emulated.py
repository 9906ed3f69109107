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

This checks that the compose file's configuration alone makes a working
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
IMAGE_PROGRAMS = {"prism-nats": os.path.join(DOCKER, "prism-nats.sh")}
# container paths that volumes are mounted on for real (in the container's own
# mount namespace); other container paths become directories of the test
REAL_MOUNTS = ("/dev/shm",)


def expand(v):
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(v))


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
    def __init__(self):
        with open(os.path.join(DOCKER, "docker-compose.yml")) as f:
            self.doc = yaml.safe_load(f)
        self.services = self.doc["services"]
        self.names = list(self.services)
        self.net = Net(len(self.names))
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

    def start(self, name):
        s = self.services[name]
        pmap = self.path_map(name, s)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "TMPDIR"))}
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env["TMPDIR"] = self.host_path(name, pmap, "/tmp")  # the container's own /tmp
        env.update(self.env_file(s["env_file"]))
        for k, v in (s.get("environment") or {}).items():
            v = expand(v)
            real = any(v == m or v.startswith(m + "/") for m in REAL_MOUNTS)
            env[k] = self.host_path(name, pmap, v) if v.startswith("/") and not real else v
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
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        r = subprocess.run(["ip", "netns", "exec", self.net.ns(self.idx(name))] + test[1:],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        if not self.procs[name].alive():
            raise AssertionError("%s exited:\n%s" % (name, self.procs[name].tail()))
        return r.returncode == 0

    def up(self):
        for name in order(self.services):
            for dep, cond in self.services[name].get("depends_on", {}).items():
                assert cond.get("condition") == "service_healthy"
                wait_until(lambda: self.healthy(dep), timeout=30, interval=0.2,
                           what="%s healthy" % dep)
            self.start(name)
        for name in self.names:
            wait_until(lambda: self.healthy(name), timeout=30, interval=0.2,
                       what="%s healthy" % name)

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "--max-time", "45"] + list(args),
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
    addr = "http://%s:8265" % c.ip("gcs")  # published on the host as 127.0.0.1:8265
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
    assert sorted(n["address"] for n in listed) == sorted("http://%s:8266" % n for n in nodes), listed
    for n in listed:
        body = json.dumps({"entrypoint": "hostname", "resources": {"CPU": 2}})
        jid = json.loads(c.curl("-H", auth, "-H", "Content-Type: application/json", "-d", body,
                                addr + "/api/v1/jobs"))["job_id"]
        out = c.curl("-H", auth, "%s/api/v1/jobs/%s/logs?follow=true" % (addr, jid))
        assert out.strip() in nodes, out
    # `docker compose exec gcs prism status`: the CLI finds the GCS through the container's env
    s = c.services["gcs"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_")}
    env.update(c.env_file(s["env_file"]))
    env.update({k: expand(v) for k, v in s["environment"].items()})
    r = subprocess.run(["ip", "netns", "exec", c.net.ns(c.idx("gcs")), os.path.join(BIN, "prism"),
                        "status"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=30)
    assert r.returncode == 0 and b"node-1" in r.stdout, r.stdout.decode()
    # an object put into node-1's store, pulled by node-2's store by service name
    if "node-1-store" in c.services and "node-2-store" in c.services:
        oid = "c0de" * 8 + "00000001"
        a, b = "http://%s:8267" % c.ip("node-1-store"), "http://%s:8267" % c.ip("node-2-store")
        c.curl("-f", "-H", auth, "-X", "PUT", "--data-binary", "compose object",
               a + "/api/v1/objects/" + oid)
        c.curl("-f", "-H", auth, "-H", "Content-Type: application/json", "-d",
               json.dumps({"source": "http://node-1-store:8267"}), b + "/api/v1/objects/%s/pull" % oid)
        assert c.curl("-f", "-H", auth, b + "/api/v1/objects/" + oid) == "compose object"
        # each store made its socket on the /dev/shm volume it shares with its agent
        for n in nodes:
            vol = [v.split(":")[0] for v in c.services[n]["volumes"] if v.endswith(":/dev/shm")][0]
            sock = os.path.basename(c.services[n + "-store"]["environment"]["PRISM_SOCKET"])
            assert os.path.exists(os.path.join(c.fs, "volumes", vol, sock)), n
    # the scheduler knows every node from their reports
    sched = "http://%s:8268" % c.ip("scheduler")
    wait_until(lambda: sorted(n["name"] for n in json.loads(
        c.curl("-H", auth, sched + "/api/v1/scheduler"))["nodes"]) == sorted(nodes),
        timeout=20, what="the scheduler's view of every node")
    # docs/deploy.md's task, word for word: the GCS owns the result
    sub = json.loads(c.curl("-H", auth, "-H", "Content-Type: application/json", "-d",
                            '{"package": "builtin", "function": "add", "args": [2, 40]}',
                            addr + "/api/v1/tasks"))
    assert sub["owner"] == "gcs" and len(sub["object_ids"]) == 1, sub
    obj = json.loads(c.curl("-H", auth, "%s/api/v1/objects/%s?timeout_ms=30000" %
                            (addr, sub["object_ids"][0])))
    assert obj["state"] == "READY" and obj["value"] == {"kind": "json", "value": 42}, obj
    # a large result on node-1 is the argument of a task on node-2
    tasks_across_nodes(addr, c.token,
                       {"name": "node-1", "store": "http://%s:8267" % c.ip("node-1-store")},
                       {"name": "node-2", "store": "http://%s:8267" % c.ip("node-2-store")})
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
    t0 = time.time()
    c = Compose()
    try:
        c.up()
        scenario(c)
    except BaseException as e:
        print("FAIL compose_emulated -", repr(e), flush=True)
        c.dump()
        c.down(check=False)
        print("0 passed, 1 failed")
        sys.exit(1)
    c.down()
    print("PASS compose_emulated (%.1fs)" % (time.time() - t0))
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
