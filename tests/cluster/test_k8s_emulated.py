#!/usr/bin/python3
"""The Kubernetes chart, run without Kubernetes: the chart is rendered
(scripts/render-k8s.py, with a token and three node replicas) and each pod
becomes one network namespace in which its containers run as processes with
exactly their command and environment: values, the Secret's token,
metadata.name and status.podIP from the downward API, $(VAR) references
expanded as the kubelet does. Service names (and the headless Service's pod
names) resolve through a hosts file as cluster DNS would; emptyDirs and the
GCS's volume claim are directories. Each container sees only its own files
and its pod's volumes it mounts (a mount namespace of its own, its /tmp
private), so no Unix socket is reachable across pods; a volume mounted on
/dev/shm is mounted there for real, so the socket paths are the chart's own.
Every pod starts at once, in no order, as on Kubernetes. Readiness probes are
polled the way the kubelet does (HTTP GET on the pod IP and the named port, or
the exec probe's command inside the pod's network namespace); NATS monitoring
answers there on loopback and not on the pod IP (it would show the token); then a job runs on each node, logs come back through the GCS, an object moves
between two node pods' stores, and tasks run end to end through the GCS's
REST API: add(2, 40), then a large result made on one node pod is the
argument of a task on another (the schedulers' leases, the agents' workers
on the pod IPs, the stores' sockets and URLs as the chart gives them).

This checks that the chart's configuration alone makes a working cluster;
neither an image nor a Kubernetes cluster is involved."""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import (BIN, Net, Proc, check_prerequisites, container_argv,  # noqa: E402
                        exit_on_sigterm, rest, skip, submit_task, task_value, tasks_across_nodes,
                        wait_until)

try:
    import yaml
except ImportError:
    skip("python3-yaml is not installed")

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RENDER = os.path.join(ROOT, "scripts", "render-k8s.py")
IMAGE_PROGRAMS = {"prism-nats": os.path.join(ROOT, "deploy", "docker", "prism-nats.sh")}
NODES = 3
# container paths that volumes are mounted on for real (in the container's own
# mount namespace); other container paths become directories of the test
REAL_MOUNTS = ("/dev/shm",)


class Pods:
    def __init__(self):
        self.token = "7e3" + secrets.token_hex(32)[3:]
        out = subprocess.run(["/usr/bin/python3", RENDER, "--set", "auth.token=" + self.token,
                              "--set", "nodes.replicas=%d" % NODES,
                              # a 64 MiB arena, not 1 GiB per pod, on this one machine
                              "--set", "nodes.objectStore.memory=64MiB"],
                             stdout=subprocess.PIPE, check=True, timeout=60).stdout
        self.objs = [o for o in yaml.safe_load_all(out) if o]
        self.pods = []  # (pod name, workload, pod spec)
        for o in self.objs:
            if o["kind"] in ("Deployment", "StatefulSet"):
                for k in range(o["spec"]["replicas"]):
                    name = "%s-%d" % (o["metadata"]["name"], k)
                    self.pods.append((name, o, o["spec"]["template"]["spec"]))
        self.net = Net(len(self.pods))
        self.dir = tempfile.mkdtemp(prefix="prism-k8s-")
        self.procs = []
        hosts = ["127.0.0.1 localhost"]
        for o in self.objs:
            if o["kind"] != "Service":
                continue
            sel = o["spec"]["selector"]
            backs = [i for i, (_, w, _) in enumerate(self.pods)
                     if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v
                            for k, v in sel.items())]
            assert backs, o["metadata"]["name"]
            if o["spec"].get("clusterIP") == "None":  # headless: pod-name.service
                for i in backs:
                    hosts.append("%s %s.%s" % (self.ip(i), self.pods[i][0], o["metadata"]["name"]))
            else:  # a virtual IP that balances over the pods: here the first pod
                hosts.append("%s %s" % (self.ip(backs[0]), o["metadata"]["name"]))
        for i in range(len(self.pods)):
            self.net.set_etc_file(i + 1, "hosts", "\n".join(hosts) + "\n")

    def ip(self, i):
        return self.net.node_ip(i + 1)

    def start_all(self):
        fs = os.path.join(self.dir, "fs")  # FS/POD/volumes/VOLUME, FS/POD/CONTAINER/...
        for i, (pod, w, spec) in enumerate(self.pods):
            vols = {}
            for v in spec.get("volumes", []) + w["spec"].get("volumeClaimTemplates", []):
                vname = v.get("name") or v["metadata"]["name"]
                vols[vname] = os.path.join(pod, "volumes", vname)
                os.makedirs(os.path.join(fs, vols[vname]), exist_ok=True)
            for c in spec["containers"]:
                mounts = {m["mountPath"]: vols[m["name"]] for m in c.get("volumeMounts", [])}
                own = os.path.join(pod, c["name"])

                def host_path(p):
                    """A path of the container -> the test's directory for it."""
                    if any(p == m or p.startswith(m + "/") for m in REAL_MOUNTS):
                        return p
                    for mp, d in mounts.items():
                        if p == mp or p.startswith(mp + "/"):
                            return os.path.join(fs, d) + p[len(mp):]
                    d = os.path.join(fs, own) + p  # the container's own filesystem
                    os.makedirs(d, exist_ok=True)
                    return d

                env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "TMPDIR"))}
                env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
                env["TMPDIR"] = host_path("/tmp")
                seen = {}  # the container's own view, for $(VAR)
                for e in c.get("env", []):
                    if "value" in e:
                        # $(VAR): a variable defined above in this container; else left as is
                        val = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                                     lambda m: seen.get(m.group(1), m.group(0)), e["value"])
                    else:
                        ref = e["valueFrom"]
                        if "secretKeyRef" in ref:
                            val = self.token
                        else:
                            val = {"metadata.name": pod, "status.podIP": self.ip(i)}[
                                ref["fieldRef"]["fieldPath"]]
                    seen[e["name"]] = val
                    env[e["name"]] = host_path(val) if val.startswith("/") else val
                prog = c["command"][0]
                argv = [IMAGE_PROGRAMS.get(prog) or os.path.join(BIN, prog)] + c["command"][1:]
                if prog == "prism-nats":
                    from harness import find_nats
                    env["PATH"] = os.path.dirname(find_nats()) + ":" + env.get("PATH", "/usr/bin")
                visible = [own] + [d for mp, d in mounts.items() if mp not in REAL_MOUNTS]
                real = [(d, mp) for mp, d in mounts.items() if mp in REAL_MOUNTS]
                argv = container_argv(self.net, i + 1, pod, fs,
                                      os.path.join(self.dir, "stash", pod, c["name"]), visible, argv,
                                      real)
                self.procs.append(Proc("%s.%s" % (pod, c["name"]), argv,
                                       os.path.join(self.dir, "%s.%s.log" % (pod, c["name"])), env))

    def ready(self):
        """Every container's readinessProbe answers, as the kubelet would ask it."""
        for i, (pod, _, spec) in enumerate(self.pods):
            for c in spec["containers"]:
                if "exec" in c["readinessProbe"]:  # run inside the pod's network namespace
                    r = subprocess.run(["ip", "netns", "exec", self.net.ns(i + 1)] +
                                       c["readinessProbe"]["exec"]["command"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
                    if r.returncode != 0:
                        return False
                    continue
                port = c["readinessProbe"]["httpGet"]["port"]
                port = {p["name"]: p["containerPort"] for p in c["ports"]}.get(port, port)
                url = "http://%s:%d%s" % (self.ip(i), port, c["readinessProbe"]["httpGet"]["path"])
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        if r.status != 200:
                            return False
                except OSError:
                    return False
        for p in self.procs:
            if not p.alive():
                raise AssertionError("%s exited:\n%s" % (p.name, p.tail()))
        return True

    def req(self, base, method, path, body=None, raw=None, ctype=None, timeout=30):
        hdrs = {"Authorization": "Bearer " + self.token}
        data = raw
        if body is not None:
            data, ctype = json.dumps(body).encode(), "application/json"
        if ctype:
            hdrs["Content-Type"] = ctype
        r = urllib.request.Request(base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def pod_ip(self, prefix):
        return [self.ip(i) for i, (p, _, _) in enumerate(self.pods) if p == prefix][0]

    def down(self, check=True):
        bad = []
        # node pods, then the GCS, then NATS: with NATS gone first, prism-gcs and
        # prism-nodeagent are slow to exit (see docs/deploy.md)
        rank = lambda p: (p.name.endswith(".nats"), p.name.endswith(".gcs"))  # noqa: E731
        for p in sorted(self.procs, key=rank):
            rc = p.stop()
            if rc != 0 and not p.name.endswith(".nats"):  # nats-server exits 1 on SIGTERM
                bad.append("%s: exit %s\n%s" % (p.name, rc, p.tail()))
            p.log.close()
        self.net.teardown()
        if not os.environ.get("PRISM_KEEP_TEST_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if check and bad:
            raise AssertionError("containers did not stop cleanly:\n" + "\n".join(bad))

    def dump(self):
        for p in self.procs:
            print("----- %s -----\n%s" % (p.name, p.tail(30)))


def nats_monitoring_private(k):
    """NATS monitoring (/connz?auth=1 shows the token) answers only on the NATS
    pod's loopback, where its probes ask it."""
    i = [n for n, (p, _, _) in enumerate(k.pods) if p.startswith("prism-nats")][0]
    assert subprocess.run(["ip", "netns", "exec", k.net.ns(i + 1), "curl", "-fsS",
                           "http://127.0.0.1:8222/healthz"], stdout=subprocess.DEVNULL).returncode == 0
    for path in ("/healthz", "/connz?auth=1"):
        try:
            urllib.request.urlopen("http://%s:8222%s" % (k.ip(i), path), timeout=2)
            raise AssertionError("NATS monitoring answers on the pod IP: " + path)
        except urllib.error.URLError as e:
            assert isinstance(e.reason, ConnectionRefusedError), e


def scenario(k):
    nats_monitoring_private(k)
    gcs = "http://%s:8265" % k.pod_ip("prism-gcs-0")
    wait_until(lambda: json.loads(k.req(gcs, "GET", "/api/v1/cluster")[1])["nodes_alive"] == NODES,
               timeout=30, what="%d node pods alive" % NODES)
    nodes = json.loads(k.req(gcs, "GET", "/api/v1/nodes?state=ALIVE")[1])["nodes"]
    names = sorted(n["name"] for n in nodes)
    assert names == ["prism-node-%d" % i for i in range(NODES)], names  # PRISM_NAME = pod name
    for n in nodes:  # each agent advertises its pod IP (PRISM_HOST = status.podIP)
        assert n["address"] == "http://%s:8266" % k.pod_ip(n["name"]), n
        assert n["resources"]["CPU"] == 2, n  # nodes.numCpus, not the machine's CPUs
    # one 2-CPU job per node: the chart's nodes offer 2 CPUs each
    ids = []
    for _ in range(NODES):
        st, body = k.req(gcs, "POST", "/api/v1/jobs",
                         {"entrypoint": "echo $PRISM_NODE_ID; sleep 2", "resources": {"CPU": 2}})
        assert st == 201, body
        ids.append(json.loads(body)["job_id"])
    seen = set()
    for jid in ids:
        st, log = k.req(gcs, "GET", "/api/v1/jobs/%s/logs?follow=true" % jid, timeout=60)
        j = json.loads(k.req(gcs, "GET", "/api/v1/jobs/" + jid)[1])
        assert st == 200 and j["state"] == "SUCCEEDED" and log.decode() == j["node_id"] + "\n", (j, log)
        seen.add(j["node_id"])
    assert len(seen) == NODES, "the jobs did not spread over the node pods"
    # an object from node pod 0's store to node pod 1's, named as node pod 0's
    # agent announces its store (PRISM_STORE_ADDRESS: the pod's IP); any other
    # name for it, the headless Service's included, is no source a store sends the token to
    oid = "8c" * 16 + "00000001"
    a = "http://%s:8267" % k.pod_ip("prism-node-0")
    st, _ = k.req(a, "PUT", "/api/v1/objects/" + oid, raw=b"from pod 0", ctype="text/plain")
    assert st == 201
    b = "http://%s:8267" % k.pod_ip("prism-node-1")
    st, body = k.req(b, "POST", "/api/v1/objects/%s/pull" % oid,
                     {"source": "http://prism-node-0.prism-node:8267"})
    assert st == 403 and b"unknown_source" in body, body
    st, body = k.req(b, "POST", "/api/v1/objects/%s/pull" % oid, {"source": a})
    assert st == 200, body
    assert k.req(b, "GET", "/api/v1/objects/" + oid) == (200, b"from pod 0")
    # each store made its socket, named after its pod, on the pod's /dev/shm
    for n in range(NODES):
        pod = "prism-node-%d" % n
        assert os.path.exists(os.path.join(k.dir, "fs", pod, "volumes", "shm",
                                           "prism-objectstore-%s.sock" % pod)), pod
    # every scheduler replica knows every node pod from their reports
    scheds = [k.ip(i) for i, (p, _, _) in enumerate(k.pods) if p.startswith("prism-scheduler-")]
    assert len(scheds) == 2, scheds  # scheduler.replicas
    for ip in scheds:
        wait_until(lambda: len(json.loads(k.req("http://%s:8268" % ip, "GET", "/api/v1/scheduler")[1])
                               ["nodes"]) == NODES, timeout=20, what="scheduler %s's view" % ip)
    # a task through the GCS's REST API (the GCS owns its result)
    assert task_value(gcs, k.token, submit_task(gcs, k.token, "add", [2, 40])) == \
        {"kind": "json", "value": 42}
    # a large result made on node pod 0 is the argument of a task on node pod 1
    tasks_across_nodes(gcs, k.token,
                       {"name": "prism-node-0", "store": "http://%s:8267" % k.pod_ip("prism-node-0")},
                       {"name": "prism-node-1", "store": "http://%s:8267" % k.pod_ip("prism-node-1")})
    # the replicas (a NATS queue group) granted the leases of those three task shapes
    status = [json.loads(rest("http://%s:8268/api/v1/scheduler" % ip, k.token)[1]) for ip in scheds]
    grants = sum(st["leases"]["grants"] for st in status)
    assert grants >= 3, grants


def main():
    check_prerequisites()
    exit_on_sigterm()
    for b in ("prism-gcs", "prism-nodeagent", "prism-objectstore", "prism-scheduler", "prism-worker"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            skip("%s is not built in %s" % (b, BIN))
    if not shutil.which("unshare"):
        skip("unshare (util-linux) is needed")
    t0 = time.time()
    k = Pods()
    try:
        k.start_all()
        wait_until(k.ready, timeout=30, interval=0.2, what="every pod ready")
        scenario(k)
    except BaseException as e:
        print("FAIL k8s_emulated -", repr(e), flush=True)
        k.dump()
        k.down(check=False)
        print("0 passed, 1 failed")
        sys.exit(1)
    k.down()
    print("PASS k8s_emulated (%.1fs)" % (time.time() - t0))
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
