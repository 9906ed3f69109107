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

With --tls the chart is rendered with tls.enabled=true and the Secret
tls.secretName holds a CA this test makes: each pod's init containers run
first, to completion, with their own command, environment and mounts (the
chart's prism-tls-init signs the pod's certificate with the CA), then its
containers; probes ask over HTTPS as the kubelet does (without verifying),
and the same scenario runs over HTTPS, NATS over TLS and TLS between workers,
every client checking the certificates against the CA. Plain HTTP to the
GCS gets no answer, a plaintext NATS client is told TLS is required, each
pod's certificate names its pod IP and its key is private, and the CA's key
is mounted into the init containers only.

This checks that the chart's configuration alone makes a working cluster;
neither an image nor a Kubernetes cluster is involved."""
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import ssl
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
IMAGE_PROGRAMS = {"prism-nats": os.path.join(ROOT, "deploy", "docker", "prism-nats.sh"),
                  "prism-tls-init": os.path.join(ROOT, "deploy", "docker", "prism-tls-init.sh")}
NODES = 3
# container paths that volumes are mounted on for real (in the container's own
# mount namespace); other container paths become directories of the test
REAL_MOUNTS = ("/dev/shm",)


class Pods:
    def __init__(self, tls=False):
        self.token = "7e3" + secrets.token_hex(32)[3:]
        self.tls = tls
        self.scheme = "https" if tls else "http"
        out = subprocess.run(["/usr/bin/python3", RENDER, "--set", "auth.token=" + self.token,
                              "--set", "nodes.replicas=%d" % NODES,
                              # a 64 MiB arena, not 1 GiB per pod, on this one machine
                              "--set", "nodes.objectStore.memory=64MiB"] +
                             (["--set", "tls.enabled=true"] if tls else []),
                             stdout=subprocess.PIPE, check=True, timeout=60).stdout
        self.objs = [o for o in yaml.safe_load_all(out) if o]
        self.secrets = {}  # Secret name -> {key: bytes}, what `kubectl create secret` would hold
        self.dir = tempfile.mkdtemp(prefix="prism-k8s-")
        if tls:
            ca = os.path.join(self.dir, "ca")
            os.makedirs(ca)
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca + "/ca.key",
                            "-out", ca + "/ca.crt", "-days", "2", "-subj", "/CN=prism-test-ca"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            self.ca = ca + "/ca.crt"
            self.secrets[self.values_tls_secret()] = {
                k: open(os.path.join(ca, k), "rb").read() for k in ("ca.crt", "ca.key")}
            # every client of this test checks the cluster's certificates against the CA
            urllib.request.install_opener(urllib.request.build_opener(
                urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=self.ca))))
        self.pods = []  # (pod name, workload, pod spec)
        for o in self.objs:
            if o["kind"] in ("Deployment", "StatefulSet"):
                for k in range(o["spec"]["replicas"]):
                    name = "%s-%d" % (o["metadata"]["name"], k)
                    self.pods.append((name, o, o["spec"]["template"]["spec"]))
        self.net = Net(len(self.pods))
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

    def values_tls_secret(self):
        """The Secret the chart's pods mount for TLS (tls.secretName)."""
        names = {v["secret"]["secretName"] for o in self.objs if o["kind"] in ("Deployment", "StatefulSet")
                 for v in o["spec"]["template"]["spec"].get("volumes", []) if "secret" in v}
        assert len(names) == 1, names
        return names.pop()

    def container_env(self, i, pod, c, host_path):
        """A container's environment as the kubelet makes it."""
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
                    val = {"metadata.name": pod, "metadata.namespace": "default",
                           "status.podIP": self.ip(i)}[ref["fieldRef"]["fieldPath"]]
            seen[e["name"]] = val
            env[e["name"]] = host_path(val) if val.startswith("/") else val
        return env

    def start_all(self):
        fs = os.path.join(self.dir, "fs")  # FS/POD/volumes/VOLUME, FS/POD/CONTAINER/...
        for i, (pod, w, spec) in enumerate(self.pods):
            vols = {}
            for v in spec.get("volumes", []) + w["spec"].get("volumeClaimTemplates", []):
                vname = v.get("name") or v["metadata"]["name"]
                vols[vname] = os.path.join(pod, "volumes", vname)
                os.makedirs(os.path.join(fs, vols[vname]), exist_ok=True)
                if "secret" in v:  # the Secret's keys as files, as the kubelet writes them
                    for key, data in self.secrets[v["secret"]["secretName"]].items():
                        f = os.path.join(fs, vols[vname], key)
                        with open(f, "wb") as fh:
                            fh.write(data)
                        os.chmod(f, v["secret"].get("defaultMode", 0o644))
            # init containers first, one after another, each to completion
            inits = [(c, True) for c in spec.get("initContainers", [])]
            for c, init in inits + [(c, False) for c in spec["containers"]]:
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

                env = self.container_env(i, pod, c, host_path)
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
                log = os.path.join(self.dir, "%s.%s.log" % (pod, c["name"]))
                if init:
                    with open(log, "wb") as f:
                        r = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT,
                                           timeout=60)
                    if r.returncode != 0:
                        with open(log) as f:
                            raise AssertionError("init container %s.%s exited %d:\n%s" % (
                                pod, c["name"], r.returncode, f.read()))
                    continue
                self.procs.append(Proc("%s.%s" % (pod, c["name"]), argv, log, env))

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
                get = c["readinessProbe"]["httpGet"]
                port = {p["name"]: p["containerPort"] for p in c["ports"]}.get(get["port"], get["port"])
                url = "%s://%s:%d%s" % (get.get("scheme", "HTTP").lower(), self.ip(i), port, get["path"])
                # the kubelet does not verify a probe's certificate
                unverified = ssl._create_unverified_context() if url.startswith("https:") else None
                try:
                    with urllib.request.urlopen(url, timeout=2, context=unverified) as r:
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


def tls_checks(k):
    """What only the TLS variant has: the pods' certificates, and nothing in the clear."""
    fs = os.path.join(k.dir, "fs")
    for i, (pod, w, spec) in enumerate(k.pods):
        # the CA's key reaches the init containers only
        ca_vols = {v["name"] for v in spec["volumes"] if "secret" in v}
        for c in spec["containers"]:
            assert not {m["name"] for m in c.get("volumeMounts", [])} & ca_vols, (pod, c["name"])
        d = os.path.join(fs, pod, "volumes", "tls")
        assert os.stat(os.path.join(d, "tls.key")).st_mode & 0o077 == 0, pod + ": the key is private"
        assert not os.path.exists(os.path.join(d, "ca.key")), pod
        text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                               os.path.join(d, "tls.crt")], stdout=subprocess.PIPE, check=True,
                              timeout=30).stdout.decode()
        sans = {x.strip() for x in text.split("\n", 1)[1].split(",")}
        # the names it is reached by: its pod IP, its Service's name (a node
        # pod's name under the headless Service), localhost for port-forwards
        svc = {"prism-node": "%s.prism-node" % pod}.get(w["metadata"]["name"], w["metadata"]["name"])
        assert {"IP Address:" + k.ip(i), "DNS:" + svc, "DNS:%s.default.svc.cluster.local" % svc,
                "DNS:localhost", "IP Address:127.0.0.1"} <= sans, (pod, sans)
        assert subprocess.run(["openssl", "verify", "-CAfile", k.ca, os.path.join(d, "tls.crt")],
                              stdout=subprocess.DEVNULL).returncode == 0, pod
    # plain HTTP to the GCS gets no answer; HTTPS without the CA stops at the handshake
    gcs_ip = k.pod_ip("prism-gcs-0")
    try:
        urllib.request.urlopen("http://%s:8265/healthz" % gcs_ip, timeout=5)
        raise AssertionError("the GCS answered plain HTTP")
    except urllib.error.HTTPError as e:
        raise AssertionError("the GCS answered plain HTTP with %d" % e.code)
    except (OSError, http.client.HTTPException):
        pass
    try:
        urllib.request.urlopen("https://%s:8265/healthz" % gcs_ip, timeout=5,
                               context=ssl.create_default_context())
        raise AssertionError("a client without the CA trusted the GCS")
    except urllib.error.URLError as e:
        assert isinstance(e.reason, ssl.SSLCertVerificationError), e
    # NATS tells a plaintext client that TLS is required before it reads a token
    nats = [k.ip(i) for i, (p, _, _) in enumerate(k.pods) if p.startswith("prism-nats")][0]
    with socket.create_connection((nats, 4222), timeout=5) as sk:
        info = sk.recv(4096).decode()
    assert info.startswith("INFO ") and json.loads(info[5:])["tls_required"] is True, info


def scenario(k):
    nats_monitoring_private(k)
    if k.tls:
        tls_checks(k)
    s = k.scheme
    gcs = "%s://%s:8265" % (s, k.pod_ip("prism-gcs-0"))
    wait_until(lambda: json.loads(k.req(gcs, "GET", "/api/v1/cluster")[1])["nodes_alive"] == NODES,
               timeout=30, what="%d node pods alive" % NODES)
    nodes = json.loads(k.req(gcs, "GET", "/api/v1/nodes?state=ALIVE")[1])["nodes"]
    names = sorted(n["name"] for n in nodes)
    assert names == ["prism-node-%d" % i for i in range(NODES)], names  # PRISM_NAME = pod name
    for n in nodes:  # each agent advertises its pod IP (PRISM_HOST = status.podIP)
        assert n["address"] == "%s://%s:8266" % (s, k.pod_ip(n["name"])), n
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
    a = "%s://%s:8267" % (s, k.pod_ip("prism-node-0"))
    st, _ = k.req(a, "PUT", "/api/v1/objects/" + oid, raw=b"from pod 0", ctype="text/plain")
    assert st == 201
    b = "%s://%s:8267" % (s, k.pod_ip("prism-node-1"))
    st, body = k.req(b, "POST", "/api/v1/objects/%s/pull" % oid,
                     {"source": "%s://prism-node-0.prism-node:8267" % s})
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
        wait_until(lambda: len(json.loads(k.req("%s://%s:8268" % (s, ip), "GET", "/api/v1/scheduler")[1])
                               ["nodes"]) == NODES, timeout=20, what="scheduler %s's view" % ip)
    # a task through the GCS's REST API (the GCS owns its result)
    assert task_value(gcs, k.token, submit_task(gcs, k.token, "add", [2, 40])) == \
        {"kind": "json", "value": 42}
    # a large result made on node pod 0 is the argument of a task on node pod 1
    tasks_across_nodes(gcs, k.token,
                       {"name": "prism-node-0", "store": "%s://%s:8267" % (s, k.pod_ip("prism-node-0"))},
                       {"name": "prism-node-1", "store": "%s://%s:8267" % (s, k.pod_ip("prism-node-1"))})
    # a dataset, run by the dataservice pod that the GCS found over NATS
    st, body = k.req(gcs, "POST", "/api/v1/datasets",
                     {"name": "k8s", "ops": [{"op": "range", "n": 1000, "override_num_blocks": 2}]})
    assert st == 201, body
    did = json.loads(body)["dataset_id"]
    st, body = k.req(gcs, "GET", "/api/v1/datasets/%s/count?timeout_ms=60000" % did, timeout=90)
    assert st == 200 and json.loads(body)["count"] == 1000, body
    # the replicas (a NATS queue group) granted the leases of those three task shapes
    status = [json.loads(rest("%s://%s:8268/api/v1/scheduler" % (s, ip), k.token)[1]) for ip in scheds]
    grants = sum(st["leases"]["grants"] for st in status)
    assert grants >= 3, grants
    if k.tls:  # the workers that ran them took task connections over TLS only
        for n in (0, 1):
            pod = "prism-node-%d" % n
            d = os.path.join(k.dir, "fs", pod, "volumes", "state", "workers")
            lines = [ln for f in os.listdir(d) if f.endswith(".log")
                     for ln in open(os.path.join(d, f)) if " serving on " in ln]
            assert lines and all(ln.rstrip().split(" and ")[-1].startswith("tls:%s:" % k.pod_ip(pod))
                                 for ln in lines), (pod, lines)


def main():
    check_prerequisites()
    exit_on_sigterm()
    for b in ("prism-gcs", "prism-nodeagent", "prism-objectstore", "prism-scheduler", "prism-worker"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            skip("%s is not built in %s" % (b, BIN))
    if not shutil.which("unshare"):
        skip("unshare (util-linux) is needed")
    tls = "--tls" in sys.argv[1:]
    name = "k8s_emulated_tls" if tls else "k8s_emulated"
    if tls and not shutil.which("openssl"):
        skip("openssl is needed to make the test's CA")
    t0 = time.time()
    k = Pods(tls)
    try:
        k.start_all()
        wait_until(k.ready, timeout=30, interval=0.2, what="every pod ready")
        scenario(k)
    except BaseException as e:
        print("FAIL %s -" % name, repr(e), flush=True)
        k.dump()
        k.down(check=False)
        print("0 passed, 1 failed")
        sys.exit(1)
    k.down()
    print("PASS %s (%.1fs)" % (name, time.time() - t0))
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
