#!/usr/bin/python3
"""Offline checks of deploy/: neither Docker nor Kubernetes runs here, so this
validates what can be validated without them.

- every YAML file is well formed; the chart's metadata is complete;
- deploy/k8s/manifests/ is exactly a fresh rendering of the chart with its
  default values (scripts/render-k8s.py --check);
- the chart's objects reference each other consistently, with default values
  and with every optional part on: Services select pods that exist, on ports
  those pods declare; StatefulSets name their Service; mounts name volumes
  that exist; Secret and ConfigMap names match; probes use declared ports;
  every URL in the environment names a Service and one of its ports (or the
  pod's own IP and one of the pod's ports); every $(VAR) is defined above it;
- the compose file, likewise: URLs name services and the ports they listen
  on, healthchecks probe those ports, volumes are declared, each node's agent
  and object store share /dev/shm;
- the scheduler runs (on by default in the chart), and each node agent is
  handed its own store's socket (PRISM_STORE_SOCKET = the store's
  PRISM_SOCKET, on the shared /dev/shm, a name no other node uses) and URL
  (PRISM_STORE_ADDRESS), and binds an address other pods or containers reach,
  not a wildcard (its workers announce that address to task owners);
- every PRISM_* variable given to a service is one of that binary's flags
  (read from its --help) and PRISM_PORT is the port it is reached on;
- the image builds every program the files run and prism-worker (next to
  prism-nodeagent), carries libprism.so, and installs a Debian package for
  each library the binaries load;
- the chart with tls.enabled: every pod's init container (prism-tls-init,
  in the image with openssl) signs a certificate with the CA Secret, for the
  names of every Service that selects the pod (a node pod's name under the
  headless one) and its pod IP; only it mounts the CA; every container gets
  PRISM_TLS_CERT/KEY/CA from what it writes, every URL is https:// or
  tls://, and the HTTP probes use HTTPS;
- NATS monitoring (whose /connz?auth=1 shows the token) listens on the NATS
  container's loopback only: prism-nats binds it to 127.0.0.1, probes and
  healthchecks ask it from inside, and no Service, containerPort, EXPOSE or
  published port names it;
- `docker-compose config` accepts the compose file (when Debian's
  docker-compose is installed; otherwise a note says it was skipped).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed (make bootstrap installs it)")
    sys.exit(77)

ROOT = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("PRISM_BIN_DIR", os.path.join(ROOT, "build", "bin"))
DOCKER = os.path.join(ROOT, "deploy", "docker")
CHART = os.path.join(ROOT, "deploy", "k8s", "prism")
MANIFESTS = os.path.join(ROOT, "deploy", "k8s", "manifests")
RENDER = os.path.join(ROOT, "scripts", "render-k8s.py")
PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

# Variables a container may carry that are not flags of its own program.
NOT_FLAGS = {
    "PRISM_ADDRESS",  # for the `prism` CLI run inside the GCS container
    # TLS: read from the environment by every service (docs/security.md)
    "PRISM_TLS_CERT", "PRISM_TLS_KEY", "PRISM_TLS_CA",
}
NATS_SCRIPT = os.path.join(DOCKER, "prism-nats.sh")
TLS_INIT_SCRIPT = os.path.join(DOCKER, "prism-tls-init.sh")
# Programs of the image that are scripts: the variables they read are theirs.
SCRIPTS = {"prism-nats": NATS_SCRIPT, "prism-tls-init": TLS_INIT_SCRIPT}
# Programs the image must carry: those the files run, and prism-worker, which
# prism-nodeagent starts from its own directory (--worker-bin's default).
IMAGE_PROGRAMS = {"prism", "prism-gcs", "prism-nodeagent", "prism-objectstore", "prism-scheduler",
                  "prism-worker"}
# What the downward API gives, as the checks below see it.
POD_NAME, POD_IP, POD_NAMESPACE = "{pod-name}", "{pod-ip}", "{pod-namespace}"
FIELD_REFS = {"metadata.name": POD_NAME, "status.podIP": POD_IP, "metadata.namespace": POD_NAMESPACE}
WILDCARDS = ("0.0.0.0", "::", "")

notes = []


def note(msg):
    notes.append(msg)
    print("NOTE:", msg, flush=True)


# ---- helpers ----

_flag_cache = {}


def flags_of(program):
    """The PRISM_* variables a program reads, from its --help; None if not built."""
    if program not in _flag_cache:
        exe = os.path.join(BIN, program)
        if program in SCRIPTS:  # a script of the image: the variables it reads
            with open(SCRIPTS[program]) as f:
                _flag_cache[program] = set(re.findall(r"\$\{?(PRISM_[A-Z0-9_]+)", f.read()))
        elif not os.access(exe, os.X_OK):
            _flag_cache[program] = None
        else:
            out = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=30).stdout.decode()
            _flag_cache[program] = set(re.findall(r"\[(PRISM_[A-Z0-9_]+)", out))
    return _flag_cache[program]


def check_env(where, program, env):
    """env: {name: value or None}. Checks the PRISM_* names against the program's flags."""
    flags = flags_of(program)
    if flags is None:
        note("%s is not built in %s: the flags of %s were not checked" % (program, BIN, where))
        return
    bad = [k for k in env if k.startswith("PRISM_") and k not in flags and k not in NOT_FLAGS]
    assert not bad, "%s: %s does not read %s (see its --help)" % (where, program, bad)


URL = re.compile(r"^(nats|tls|http|https)://([A-Za-z0-9.{}-]+):(\d+)")
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(cname, c, secret):
    """A container's environment as the kubelet makes it: secrets as None,
    downward API fields as POD_NAME / POD_IP, $(VAR) expanded (each must name a
    variable defined above it in the same container)."""
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            v = str(e["value"])
            for ref in VAR_REF.findall(v):
                assert ref in env and env[ref] is not None, \
                    "%s: %s refers to $(%s), not defined above it" % (cname, e["name"], ref)
            env[e["name"]] = VAR_REF.sub(lambda m: env[m.group(1)], v)
            continue
        ref = e.get("valueFrom", {})
        if "secretKeyRef" in ref:
            assert ref["secretKeyRef"]["name"] == secret and ref["secretKeyRef"]["key"] == "token", \
                "%s: %r" % (cname, ref)
            env[e["name"]] = None
        else:
            path = ref.get("fieldRef", {}).get("fieldPath")
            assert path in FIELD_REFS, "%s: %s from %r" % (cname, e["name"], ref)
            env[e["name"]] = FIELD_REFS[path]
    return env


def label_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


# ---- YAML well formed ----

def test_yaml_well_formed():
    count = 0
    for d, _, files in os.walk(os.path.join(ROOT, "deploy")):
        if os.path.join("k8s", "prism", "templates") in d:
            continue  # Go templates: checked once rendered
        for f in files:
            if f.endswith((".yaml", ".yml")):
                with open(os.path.join(d, f)) as fh:
                    docs = [x for x in yaml.safe_load_all(fh) if x is not None]
                assert docs, "%s is empty" % f
                count += 1
    assert count >= 4, count
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    for k in ("apiVersion", "name", "version", "appVersion"):
        assert meta.get(k), "Chart.yaml lacks %s" % k
    assert meta["apiVersion"] == "v2" and meta["name"] == "prism"


# ---- the chart ----

def render(*sets):
    r = subprocess.run([PY, RENDER] + [a for s in sets for a in ("--set", s)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return [d for d in yaml.safe_load_all(r.stdout) if d is not None]


def test_manifests_are_fresh():
    r = subprocess.run([PY, RENDER, "--check", MANIFESTS], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, r.stdout.decode()
    # and the committed files parse to the same objects as a plain rendering
    committed = []
    for f in sorted(os.listdir(MANIFESTS)):
        with open(os.path.join(MANIFESTS, f)) as fh:
            committed += [d for d in yaml.safe_load_all(fh) if d is not None]
    fresh = render()
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(committed, key=key) == sorted(fresh, key=key)


def pods_of(objs):
    """(workload, pod template spec, pod labels) for each Deployment/StatefulSet."""
    return [(o, o["spec"]["template"]["spec"], o["spec"]["template"]["metadata"]["labels"])
            for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def container_ports(spec):
    return {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}


def check_chart(objs, values):
    tls = values["tls"]["enabled"]
    by_kind = {}
    for o in objs:
        assert o.get("apiVersion") and o.get("kind") and o.get("metadata", {}).get("name"), o
        names = by_kind.setdefault(o["kind"], {})
        assert o["metadata"]["name"] not in names, "two %s named %s" % (o["kind"], o["metadata"]["name"])
        names[o["metadata"]["name"]] = o
        assert o["metadata"].get("labels", {}).get("app.kubernetes.io/instance"), o["metadata"]
    services = by_kind.get("Service", {})
    pods = pods_of(objs)
    assert pods, "no workloads"
    secret = values["auth"]["secretName"]
    secrets = {secret, values["tls"]["secretName"]} if tls else {secret}
    for w, spec, labels in pods:
        name = "%s/%s" % (w["kind"], w["metadata"]["name"])
        assert label_match(w["spec"]["selector"]["matchLabels"], labels), name + ": selector"
        if w["kind"] == "StatefulSet":
            assert w["spec"]["serviceName"] in services, name + ": no Service " + w["spec"]["serviceName"]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        vols.update({t["metadata"]["name"]: t for t in w["spec"].get("volumeClaimTemplates", [])})
        mounted = set()
        ports = container_ports(spec)
        for v in vols.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in by_kind.get("ConfigMap", {}), name + ": ConfigMap"
            if "secret" in v:
                assert v["secret"]["secretName"] in secrets, name + ": Secret"
        for c in spec.get("initContainers", []):
            cname = "%s init container %s" % (name, c["name"])
            for m in c.get("volumeMounts", []):
                assert m["name"] in vols, "%s mounts unknown volume %s" % (cname, m["name"])
                mounted.add(m["name"])
            assert c["command"][0].startswith("prism-"), cname + ": runs a program of the image"
            check_env(cname, c["command"][0], container_env(cname, c, secret))
        for c in spec["containers"]:
            cname = "%s container %s" % (name, c["name"])
            for m in c.get("volumeMounts", []):
                assert m["name"] in vols, "%s mounts unknown volume %s" % (cname, m["name"])
                mounted.add(m["name"])
            cports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in c, "%s has no %s" % (cname, probe)
                if "exec" in c[probe]:  # a loopback-only port, asked from inside
                    cmd = c[probe]["exec"]["command"]
                    assert cmd[0] == "curl" and re.match(r"http://127\.0\.0\.1:\d+/healthz$",
                                                         cmd[-1]), "%s: %s %s" % (cname, probe, cmd)
                    continue
                port = c[probe]["httpGet"]["port"]
                assert port in cports or port in cports.values(), "%s: %s port %s" % (cname, probe, port)
                assert c[probe]["httpGet"]["path"] == "/healthz"
                assert c[probe]["httpGet"].get("scheme", "HTTP") == ("HTTPS" if tls else "HTTP"), \
                    "%s: %s scheme" % (cname, probe)
            env = container_env(cname, c, secret)
            assert "PRISM_TOKEN" in env, cname + " gets no token"
            program = c["command"][0]
            assert program.startswith("prism-"), cname + ": every container runs a program of the image"
            check_env(cname, program, env)
            if program == "prism-nats":
                assert int(env["PRISM_NATS_PORT"]) in cports.values(), cname + ": client port"
                check_nats_monitoring(cname, c, env, services)
            else:
                assert int(env["PRISM_PORT"]) in cports.values(), cname + ": PRISM_PORT not a containerPort"
                assert "PRISM_HOST" in env, cname + " binds loopback only"
            for k, v in env.items():
                m = URL.match(v or "")
                if m:
                    assert m.group(1) in (("https", "tls") if tls else ("http", "nats")), \
                        "%s: %s=%s: tls.enabled is %s" % (cname, k, v, tls)
                if m and m.group(2) == POD_IP:  # this pod's own address
                    assert int(m.group(3)) in ports.values(), \
                        "%s: %s=%s: the pod has no such port" % (cname, k, v)
                elif m:
                    svc = services.get(m.group(2))
                    assert svc, "%s: %s=%s names no Service" % (cname, k, v)
                    assert int(m.group(3)) in [p["port"] for p in svc["spec"]["ports"]], \
                        "%s: %s=%s: the Service has no such port" % (cname, k, v)
        assert mounted == set(vols), "%s: volumes never mounted: %s" % (name, set(vols) - mounted)
        # the object store's arena fits in its container
        for c in spec["containers"]:
            if c["command"][0] == "prism-objectstore":
                arena = parse_size([e["value"] for e in c["env"] if e["name"] == "PRISM_MEMORY"][0])
                limit = parse_size(c["resources"]["limits"]["memory"])
                assert limit > arena, "object store limit %d <= arena %d" % (limit, arena)
        # a node's agent and object store share /dev/shm, an emptyDir in memory
        progs = {c["command"][0]: c for c in spec["containers"]}
        if "prism-objectstore" in progs:
            shm = [{m["name"] for m in progs[p].get("volumeMounts", []) if m["mountPath"] == "/dev/shm"}
                   for p in ("prism-nodeagent", "prism-objectstore")]
            assert len(shm[0] & shm[1]) == 1, name + ": agent and store share /dev/shm"
            assert vols[(shm[0] & shm[1]).pop()]["emptyDir"]["medium"] == "Memory", name
            agent = container_env(name, progs["prism-nodeagent"], secret)
            store = container_env(name, progs["prism-objectstore"], secret)
            check_node(name, agent, store, int(store["PRISM_PORT"]), POD_IP, "https" if tls else "http")
            # every pod names its socket apart: libprism tells a local store by the path
            assert POD_NAME in store["PRISM_SOCKET"], \
                name + ": the store's socket must be named after its pod"
    for s in services.values():
        sel = s["spec"]["selector"]
        matches = [(w, spec) for w, spec, labels in pods if label_match(sel, labels)]
        assert matches, "Service %s selects no pods" % s["metadata"]["name"]
        for p in s["spec"]["ports"]:
            for w, spec in matches:
                ports = container_ports(spec)
                t = p.get("targetPort", p["port"])
                assert t in ports or t in ports.values(), \
                    "Service %s port %s: pods of %s have no port %s" % (s["metadata"]["name"], p["name"], w["metadata"]["name"], t)
    if values["auth"]["token"]:
        sec = by_kind.get("Secret", {}).get(secret)
        assert sec and "token" in sec.get("data", {}), "the Secret %s with key token" % secret
    else:
        assert "Secret" not in by_kind, "no Secret without a token"
    return by_kind


def check_nats_monitoring(cname, c, env, services):
    """NATS monitoring shows the clients' token (/connz?auth=1) and every subject:
    it must stay on the pod's loopback, probed from inside, never a port of the
    pod or of a Service."""
    monitor = int(env["PRISM_NATS_MONITOR_PORT"])
    assert monitor not in [p["containerPort"] for p in c.get("ports", [])], \
        cname + ": the NATS monitoring port must not be a containerPort"
    for probe in ("readinessProbe", "livenessProbe"):
        assert "httpGet" not in c[probe] and "tcpSocket" not in c[probe], \
            "%s: %s would need monitoring on the pod IP" % (cname, probe)
        assert c[probe]["exec"]["command"][-1] == "http://127.0.0.1:%d/healthz" % monitor, c[probe]
    for sname, svc in services.items():
        for p in svc["spec"]["ports"]:
            assert monitor not in (p["port"], p.get("targetPort")) and \
                p.get("targetPort") != "monitor", "Service %s exposes NATS monitoring" % sname


def test_nats_monitoring_private():
    """prism-nats binds monitoring to loopback; neither the image nor compose
    publishes it (the chart is checked in check_chart)."""
    with open(os.path.join(DOCKER, "prism-nats.sh")) as f:
        script = f.read()
    conf = re.findall(r"(?m)^(?:http|https|http_port|https_port|monitor_port)\s*:.*$", script)
    assert conf == ['http: "127.0.0.1:$monitor"'], conf
    assert not re.search(r"(?m)^\s*(listen|host|net)\s*:\s*.*\$monitor", script), script
    assert "-m" not in script.split("exec", 1)[1].split(), "prism-nats passes a monitoring flag"
    exposed = re.findall(r"(?m)^EXPOSE\s+(.*)$", dockerfile())
    assert exposed and all("8222" not in e for e in exposed), exposed
    s = compose()["services"]["nats"]
    monitor = expand(s["environment"]["PRISM_NATS_MONITOR_PORT"])
    assert not s.get("ports") and not s.get("expose"), "compose publishes NATS ports: %s" % s
    assert s["healthcheck"]["test"][-1] == "http://127.0.0.1:%s/healthz" % monitor, s["healthcheck"]


def check_node(where, agent, store, store_port, host, scheme="http"):
    """A node agent and its object store: the workers the agent starts get the
    store's socket and URL, and its address (host) is reachable from other
    nodes, since the agent hands it to its workers (--host), which announce
    it to task owners elsewhere."""
    sock = store.get("PRISM_SOCKET") or ""
    assert sock.startswith("/dev/shm/"), where + ": the store's socket is on /dev/shm"
    assert agent.get("PRISM_STORE_SOCKET") == sock, \
        "%s: the agent's PRISM_STORE_SOCKET %r is not its store's socket %r" % (
            where, agent.get("PRISM_STORE_SOCKET"), sock)
    assert agent.get("PRISM_STORE_ADDRESS") == "%s://%s:%d" % (scheme, host, store_port), \
        "%s: the agent's PRISM_STORE_ADDRESS %r is not its store's URL" % (
            where, agent.get("PRISM_STORE_ADDRESS"))
    assert agent.get("PRISM_HOST") not in WILDCARDS, \
        "%s: the agent binds %r: its workers would announce that address to owners" % (
            where, agent.get("PRISM_HOST"))


def parse_size(s):
    s = str(s)
    m = re.fullmatch(r"(\d+)\s*(|[KMGT]i?B?|[KMGT])", s)
    assert m, "size %r" % s
    mult = {"": 1, "K": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4}
    unit = m.group(2).rstrip("B")
    if unit.endswith("i"):
        return int(m.group(1)) << (10 * "KMGT".index(unit[0]) + 10)
    return int(m.group(1)) * mult[unit]


def chart_values(*sets):
    sys.path.insert(0, os.path.dirname(RENDER))
    import importlib.util
    spec = importlib.util.spec_from_file_location("render_k8s", RENDER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.load_values(CHART, (), sets)


def test_chart_defaults_consistent():
    by_kind = check_chart(render(), chart_values())
    assert set(by_kind["StatefulSet"]) == {"prism-gcs", "prism-node"}
    assert set(by_kind["Deployment"]) == {"prism-nats", "prism-scheduler", "prism-dataservice"}, \
        "the scheduler and the dataservice are on by default"
    sched = by_kind["Deployment"]["prism-scheduler"]
    assert sched["spec"]["replicas"] == chart_values()["scheduler"]["replicas"] >= 2, \
        "the scheduler has replicas (they share lease requests)"
    assert "prism-scheduler" in by_kind["Service"]
    gcs = by_kind["StatefulSet"]["prism-gcs"]
    assert gcs["spec"]["replicas"] == 1 and gcs["spec"]["volumeClaimTemplates"]
    node = by_kind["StatefulSet"]["prism-node"]["spec"]["template"]["spec"]
    names = sorted(c["command"][0] for c in node["containers"])
    assert names == ["prism-nodeagent", "prism-objectstore"], names
    shm = [v for v in node["volumes"] if v["name"] == "shm"][0]
    assert shm["emptyDir"]["medium"] == "Memory"
    # TLS is off by default: plain HTTP, nothing of it in the pods
    for w, spec, _ in pods_of(render()):
        assert "initContainers" not in spec and not [v for v in spec.get("volumes", []) if "secret" in v]
        assert not [e for c in spec["containers"] for e in c.get("env", [])
                    if e["name"].startswith("PRISM_TLS_")], w["metadata"]["name"]


def test_chart_everything_on_consistent():
    sets = ("auth.token=0123abcd", "scheduler.enabled=true", "dataservice.enabled=true",
            "nodes.replicas=5")
    by_kind = check_chart(render(*sets), chart_values(*sets))
    assert {"prism-scheduler", "prism-dataservice", "prism-nats"} <= set(by_kind["Deployment"])
    assert by_kind["StatefulSet"]["prism-node"]["spec"]["replicas"] == 5


def test_chart_tls_consistent():
    """tls.enabled: each pod's init container signs the pod's certificate with
    the CA Secret, for every name and address clients use to reach the pod;
    only it sees the CA's key; every container reads what it writes."""
    sets = ("auth.token=0123abcd", "scheduler.enabled=true", "dataservice.enabled=true",
            "tls.enabled=true", "tls.secretName=my-ca", "tls.gcsExtraNames=gcs.example.com 203.0.113.7")
    objs = render(*sets)
    by_kind = check_chart(objs, chart_values(*sets))
    services = by_kind["Service"]
    for w, spec, labels in pods_of(objs):
        name = w["metadata"]["name"]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        inits = spec.get("initContainers", [])
        assert [c["command"] for c in inits] == [["prism-tls-init"]], name + ": one prism-tls-init"
        init = inits[0]
        env = container_env(name, init, "prism-token")
        mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
        ca = vols[mounts[env["PRISM_TLS_CA_DIR"]]]
        assert ca["secret"]["secretName"] == "my-ca", name + ": the CA comes from tls.secretName"
        out = mounts[env["PRISM_TLS_DIR"]]
        assert vols[out]["emptyDir"].get("medium") == "Memory", name + ": the key stays in memory"
        # the names: every Service that selects the pod (a node pod's name under
        # the headless one), in the pod's namespace, and the pod's IP
        names = env["PRISM_TLS_DNS_NAMES"].split()
        for sname, svc in services.items():
            if label_match(svc["spec"]["selector"], labels):
                want = "%s.%s" % (POD_NAME, sname) if svc["spec"].get("clusterIP") == "None" else sname
                assert want in names, "%s: the certificate does not name %s" % (name, want)
        assert env["PRISM_TLS_IP_ADDRESSES"] == POD_IP and env["PRISM_TLS_NAMESPACE"] == POD_NAMESPACE
        if name == "prism-gcs":
            assert env["PRISM_TLS_EXTRA_NAMES"] == "gcs.example.com 203.0.113.7"
        for c in spec["containers"]:
            cname = "%s container %s" % (name, c["name"])
            cmounts = {m["name"]: m for m in c.get("volumeMounts", [])}
            assert mounts[env["PRISM_TLS_CA_DIR"]] not in cmounts, cname + " must not see the CA's key"
            assert cmounts[out].get("readOnly"), cname + ": the certificate is read-only"
            cenv = container_env(cname, c, "prism-token")
            d = cmounts[out]["mountPath"]
            assert (cenv["PRISM_TLS_CERT"], cenv["PRISM_TLS_KEY"], cenv["PRISM_TLS_CA"]) == \
                (d + "/tls.crt", d + "/tls.key", d + "/ca.crt"), cname
    with open(TLS_INIT_SCRIPT) as f:  # what it writes, under those names
        script = f.read()
    for f in ("tls.crt", "tls.key", "ca.crt"):
        assert '"$out/$f"' in script and f in script.split("for f in ")[-1].split(";")[0], f
    assert "chmod 600 \"$tmp/tls.key\"" in script


# ---- the compose file ----

def compose():
    with open(os.path.join(DOCKER, "docker-compose.yml")) as f:
        return yaml.safe_load(f)  # PyYAML resolves the << merge keys like compose does


def expand(v):
    """${VAR:-default} as compose expands it with VAR unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(v))


def test_compose_consistent():
    doc = compose()
    services = doc["services"]
    volumes = doc.get("volumes", {})
    assert "nats" in services and "gcs" in services
    # the ports each service listens on, from its environment
    listen = {}
    for name, s in services.items():
        env = {k: expand(v) for k, v in (s.get("environment") or {}).items()}
        listen[name] = {int(env[k]) for k in ("PRISM_PORT", "PRISM_NATS_PORT",
                                              "PRISM_NATS_MONITOR_PORT") if k in env}
    nodes, sockets = 0, set()
    for name, s in services.items():
        where = "compose service " + name
        assert s.get("image") and s.get("env_file") == "prism.env", where
        env = {k: expand(v) for k, v in (s.get("environment") or {}).items()}
        program = s["command"][0]
        assert program.startswith("prism-"), where + ": runs a program of the image"
        check_env(where, program, env)
        if program in ("prism-nodeagent", "prism-dataservice"):
            # its own address, not a wildcard: the agent's workers announce it to task
            # owners, the dataservice announces it to the GCS
            assert env.get("PRISM_HOST") == name == s.get("hostname"), \
                where + ": it binds its service name, which is its host name"
        elif program != "prism-nats":
            assert env.get("PRISM_HOST") == "0.0.0.0", where + " must listen beyond loopback"
        for k, v in env.items():
            m = URL.match(v)
            if m:
                host = name if m.group(2) == "127.0.0.1" else m.group(2)
                assert host in services, "%s: %s=%s names no service" % (where, k, v)
                assert int(m.group(3)) in listen.get(host, ()), \
                    "%s: %s=%s: %s does not listen there" % (where, k, v, host)
        hc = " ".join(s["healthcheck"]["test"])
        m = re.search(r"http://([A-Za-z0-9.-]+):(\d+)/healthz", hc)
        assert m and m.group(1) in ("127.0.0.1", env.get("PRISM_HOST")) and \
            int(m.group(2)) in listen[name], "%s: healthcheck %s" % (where, hc)
        for dep in s.get("depends_on", {}):
            assert dep in services, "%s depends on unknown %s" % (where, dep)
        mounts = {}
        for v in s.get("volumes", []):
            src, dst = v.split(":")[:2]
            if not src.startswith((".", "/")):
                assert src in volumes, "%s: volume %s is not declared" % (where, src)
            mounts[dst] = src
        if program == "prism-nodeagent":
            nodes += 1
            assert s.get("hostname") == name, where + ": the agent advertises its host name"
            assert env.get("PRISM_NAME") == name
            store = services.get(name + "-store")
            assert store and store["command"][0] == "prism-objectstore", where + ": its object store"
            smounts = dict(v.split(":")[:2][::-1] for v in store["volumes"])
            assert mounts.get("/dev/shm") and smounts.get("/dev/shm") == mounts["/dev/shm"], \
                where + ": agent and store share /dev/shm"
            senv = {k: expand(v) for k, v in store["environment"].items()}
            check_node(where, env, senv, int(senv["PRISM_PORT"]), name + "-store")
            assert senv["PRISM_SOCKET"] not in sockets, \
                where + ": another node's store has this socket path (libprism tells a local " \
                "store by the path)"
            sockets.add(senv["PRISM_SOCKET"])
            assert volumes[mounts["/dev/shm"]]["driver_opts"]["type"] == "tmpfs"
        if name == "gcs":
            assert "/var/lib/prism/gcs" in mounts and env["PRISM_DATA_DIR"] == "/var/lib/prism/gcs"
            assert any(expand(p).endswith(":8265") for p in s["ports"]), s["ports"]
    assert nodes >= 2, nodes
    assert [n for n, s in services.items() if s["command"][0] == "prism-scheduler"], \
        "no scheduler: tasks would find no worker"
    # the token's env file: an example is committed, gen-env.sh makes a real one
    with open(os.path.join(DOCKER, "prism.env.example")) as f:
        assert re.search(r"(?m)^PRISM_TOKEN=", f.read())
    tmp = tempfile.mkdtemp(prefix="prism-deploy-")
    try:
        shutil.copy(os.path.join(DOCKER, "gen-env.sh"), tmp)
        r = subprocess.run(["sh", os.path.join(tmp, "gen-env.sh")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert r.returncode == 0, r.stdout
        with open(os.path.join(tmp, "prism.env")) as f:
            assert re.fullmatch(r"PRISM_TOKEN=[0-9a-f]{64}\n", f.read())
        assert os.stat(os.path.join(tmp, "prism.env")).st_mode & 0o077 == 0, "prism.env is private"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_docker_compose_config():
    exe = shutil.which("docker-compose")
    if not exe:
        note("docker-compose is not installed (Debian package docker-compose): "
             "`docker-compose config` was not run")
        return
    tmp = tempfile.mkdtemp(prefix="prism-compose-")
    try:
        d = os.path.join(tmp, "deploy", "docker")
        os.makedirs(d)
        shutil.copy(os.path.join(DOCKER, "docker-compose.yml"), d)
        shutil.copy(os.path.join(DOCKER, "prism.env.example"), os.path.join(d, "prism.env"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "COMPOSE_"))}
        r = subprocess.run([exe, "config"], cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120, env=env)
        assert r.returncode == 0, r.stderr.decode()
        out = yaml.safe_load(r.stdout)
        assert set(out["services"]) == set(compose()["services"])
        assert out["services"]["gcs"]["environment"]["PRISM_TOKEN"] == "replace-with-64-hex-digits"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_compose_tls():
    """docker-compose.tls.yml on top of docker-compose.yml: the certificate names
    every service, and every Prism service gets the certificate, speaks and is
    reached over https:// and tls:// (compose itself merges, when installed)."""
    with open(os.path.join(DOCKER, "docker-compose.tls.yml")) as f:
        tls = yaml.safe_load(f)
    base = compose()["services"]
    init = tls["services"]["tls-init"]
    assert init["command"] == ["prism-tls-init"]
    check_env("compose TLS service tls-init", "prism-tls-init", init["environment"])
    assert set(init["environment"]["PRISM_TLS_DNS_NAMES"].split()) == set(base), \
        "tls-init must name every service of the cluster"
    assert set(tls["services"]) == set(base) | {"tls-init"}, "every service gets the certificate"
    exe = shutil.which("docker-compose")
    if not exe:
        note("docker-compose is not installed: the TLS file's merge was not checked by compose")
        return
    tmp = tempfile.mkdtemp(prefix="prism-compose-")
    try:
        d = os.path.join(tmp, "deploy", "docker")
        os.makedirs(d)
        for f in ("docker-compose.yml", "docker-compose.tls.yml"):
            shutil.copy(os.path.join(DOCKER, f), d)
        shutil.copy(os.path.join(DOCKER, "prism.env.example"), os.path.join(d, "prism.env"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "COMPOSE_"))}
        r = subprocess.run([exe, "-f", "docker-compose.yml", "-f", "docker-compose.tls.yml", "config"],
                           cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, env=env)
        assert r.returncode == 0, r.stderr.decode()
        out = yaml.safe_load(r.stdout)["services"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name, s in out.items():
        if name == "tls-init":
            continue
        where = "compose TLS service " + name
        env = s["environment"]
        program = s["command"][0]
        check_env(where, program, env)
        assert env.get("PRISM_TLS_CERT") and env.get("PRISM_TLS_KEY"), where + ": no certificate"
        assert any(v.endswith(":/etc/prism/tls:ro") for v in s["volumes"]), where + ": no tls volume"
        assert s["depends_on"]["tls-init"]["condition"] == "service_completed_successfully", where
        assert not [v for v in env.values() if str(v).startswith(("http://", "nats://"))], \
            "%s: a plaintext address is left: %s" % (where, env)
        if program != "prism-nats":
            assert env["PRISM_TLS_CA"] and env["PRISM_NATS_URL"].startswith("tls://"), where
            test = s["healthcheck"]["test"]
            assert "--cacert" in test and test[-1].startswith("https://"), where + ": " + str(test)


# ---- the image ----

def dockerfile():
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        return f.read().replace("\\\n", " ")


def test_dockerfile():
    text = dockerfile()
    froms = re.findall(r"(?m)^FROM\s+(\S+)", text)
    assert froms == ["debian:${DEBIAN_RELEASE}", "debian:${DEBIAN_RELEASE}-slim"], froms
    assert re.search(r"(?m)^ARG DEBIAN_RELEASE=bookworm$", text)
    copied = {}
    for src, dst in re.findall(r"(?m)^COPY\s+(?:--chmod=\S+\s+)?(?!--from)(\S+)\s+(\S+)", text):
        if src != ".":
            assert os.path.exists(os.path.join(ROOT, src)), "COPY of missing " + src
            copied[os.path.basename(dst)] = src
    for prog, path in SCRIPTS.items():
        assert copied.get(prog) == os.path.relpath(path, ROOT), (prog, copied)
        assert os.access(path, os.X_OK), path
    # `for b in LIST; do BODY done` loops of the build stage: a body that tests
    # `[ -x` keeps what exists (optional); the others fail the build without one
    kept, required = set(), set()
    for names, body in re.findall(r"for b in ([^;]+); do(.*?)done", text):
        kept |= set(names.split())
        if "[ -x" not in body:
            required |= set(names.split())
    assert IMAGE_PROGRAMS <= required, "the image build must fail without %s" % (
        IMAGE_PROGRAMS - required)
    # prism-worker lands next to prism-nodeagent, where the agent looks for it
    assert re.search(r"(?m)^COPY --from=build /out/bin/ /usr/local/bin/$", text)
    assert "test -f /build/lib/libprism.so" in text, "the image must carry libprism.so"
    assert re.search(r'(?m)^RUN ldconfig\s+&& for b in /usr/local/bin/prism\*; do "\$b" --help', text), \
        "the runtime stage must check that every program loads (libprism.so found)"
    used = set()
    for s in compose()["services"].values():
        used.add(s["command"][0])
    for o in render("scheduler.enabled=true", "dataservice.enabled=true", "tls.enabled=true"):
        for w in ([o] if o["kind"] in ("Deployment", "StatefulSet") else []):
            spec = w["spec"]["template"]["spec"]
            used |= {c["command"][0] for c in spec["containers"] + spec.get("initContainers", [])}
    assert used <= kept | set(SCRIPTS), "the image lacks %s" % (used - kept - set(SCRIPTS))
    runtime = text.split("AS runtime", 1)[1]
    pkgs = set(re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", runtime).group(1).split())
    assert {"nats-server", "curl", "tini"} <= pkgs, pkgs
    assert "openssl" in pkgs, "prism-tls-init needs the openssl program"
    # each library the binaries load directly comes from a package the image installs
    if not shutil.which("readelf") or not shutil.which("dpkg"):
        note("readelf or dpkg missing: the image's library packages were not checked")
        return
    base = {"libc6", "libgcc-s1"}  # in every Debian image
    build_only = ("libasan", "libubsan", "libcudart")  # sanitizer and CUDA builds only
    needs = {}  # library -> binaries
    libdir = os.path.join(BIN, "..", "lib")
    own_libs = sorted(f for f in os.listdir(libdir) if ".so" in f) if os.path.isdir(libdir) else []
    for b in ["prism", "prism-gcs", "prism-nodeagent", "prism-objectstore", "prism-scheduler",
              "prism-dataservice", "prism-worker"] + [os.path.join("..", "lib", f) for f in own_libs]:
        exe = os.path.join(BIN, b)
        if not os.path.isfile(exe):
            continue
        for lib in re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(
                ["readelf", "-d", exe], stdout=subprocess.PIPE, timeout=30).stdout.decode()):
            if lib.startswith(build_only):
                continue
            if os.path.exists(os.path.join(BIN, "..", "lib", lib)):  # the project's own
                assert re.search(r"COPY --from=build /out/lib/ /usr/local/lib/", text) and \
                    "/build/lib/*.so" in text and re.search(r"(?m)^RUN ldconfig", text), \
                    "%s needs %s: the image must carry the project's libraries" % (b, lib)
                continue
            needs.setdefault(lib, []).append(b)
    checked = len(needs)
    if needs:  # one dpkg -S for all: it is slow
        r = subprocess.run(["dpkg", "-S"] + ["*/" + lib for lib in sorted(needs)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        owners = {}
        for line in r.stdout.decode().splitlines():
            pkg, path = line.split(": ", 1)
            for p in pkg.split(", "):
                owners.setdefault(os.path.basename(path), set()).add(p.split(":")[0])
        for lib, users in sorted(needs.items()):
            assert owners.get(lib), "no Debian package owns %s (needed by %s)" % (lib, users)
            assert owners[lib] & (pkgs | base), \
                "%s need %s from %s, which the image does not install" % (users, lib, owners[lib])
    if not checked:
        note("no binaries in %s: the image's library packages were not checked" % BIN)
    if shutil.which("apt-cache"):
        r = subprocess.run(["apt-cache", "show", "--no-all-versions"] + sorted(pkgs),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        known = set(re.findall(r"(?m)^Package: (\S+)", r.stdout.decode()))
        if pkgs - known:
            note("apt-cache does not know %s here (no package lists?)" % sorted(pkgs - known))


def main():
    tests = [test_yaml_well_formed, test_manifests_are_fresh, test_chart_defaults_consistent,
             test_chart_everything_on_consistent, test_chart_tls_consistent, test_compose_consistent,
             test_docker_compose_config, test_compose_tls, test_dockerfile,
             test_nats_monitoring_private]
    passed = failed = 0
    for t in tests:
        try:
            t()
            passed += 1
            print("PASS", t.__name__, flush=True)
        except Exception as e:
            failed += 1
            print("FAIL", t.__name__, "-", e, flush=True)
    print("The image is built and the compose file run on a real engine by test_compose_real.py; "
          "Kubernetes does not run here: the chart is not installed. See docs/deploy.md.")
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
