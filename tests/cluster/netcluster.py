"""Multi-node Prism clusters on one machine, one network namespace per node.

Layout (all names carry this process's pid, all addresses are in the
benchmarking range 198.18.0.0/15, which exists nowhere else; its upper half,
198.19.0.0/16, so that they never meet the Docker test's networks in
198.18.200-249):

    root namespace                      namespace prism-PID-n1 ...
    ------------------------------      ------------------------------
    bridge prPIDb  198.19.S.1/24        veth prPIDc1  198.19.S.2/24
      veth prPIDh1 -------------------- (its peer)
      veth prPIDh2 ...                  prism-nodeagent  --host 198.19.S.2
    nats-server, prism-gcs on S.1       prism-objectstore --host 198.19.S.2

S is a slot number (0-15): concurrent runs take different /24 slots, each
guarded by a lock file, so two test processes never share addresses; a slot
holds up to MAX_NODES nodes.
Each node's services bind only to that node's address and reach the head
only over its veth, so killing a node's processes or setting its veth down is
a real node loss or a real partition. Every interface, namespace and process
is removed at the end, on failure too; leftovers of a run that was killed
(its pid gone) are removed before a new run starts.

Needs root and `ip netns`; otherwise the tests exit 77 (skipped) with a reason.
Uses the integration harness (tests/integration/harness.py) for processes,
HTTP and shutdown checks."""
import atexit
import fcntl
import functools
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import BIN, Proc, find_nats, skip, wait_until  # noqa: E402,F401

NET_PREFIX = "198.19."
SLOTS = 16  # /24 slots, 198.19.0.0/24 to 198.19.15.0/24
MAX_NODES = 250  # a /24 holds the bridge and 253 nodes


def sh(*argv, check=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.decode(errors="replace").strip()))
    return r.stdout.decode(errors="replace")


@functools.lru_cache(maxsize=None)
def agent_help():
    return subprocess.run([os.path.join(BIN, "prism-nodeagent"), "--help"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30).stdout.decode(errors="replace")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def check_prerequisites():
    if os.geteuid() != 0:
        skip("network namespaces need root (run as root, or use `prism up --nodes N` for a "
             "single-namespace cluster)")
    if not shutil.which("ip"):
        skip("the `ip` command (iproute2) is not installed")
    probe = "prism-%d-probe" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        skip("cannot create a network namespace: " + r.stderr.decode(errors="replace").strip())
    sh("ip", "netns", "del", probe, check=False)
    if not find_nats():
        skip("nats-server is not installed (make bootstrap installs it)")
    for b in ("prism-gcs", "prism-nodeagent"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            skip("%s is not built in %s" % (b, BIN))


OWNER_VAR = "PRISMTEST_NETNS_OWNER"  # marks every process a run starts, with the run's pid
OWNER_FILE = "netns-owner"  # in a run's temporary directory: the run's pid


def remove_stale():
    """Removes the processes, namespaces and links left by runs whose process is gone
    (killed before their cleanup ran)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                m = re.search(rb"(?:^|\0)" + OWNER_VAR.encode() + rb"=(\d+)\0", f.read())
        except OSError:
            continue
        if m and not pid_alive(int(m.group(1))):
            try:
                os.kill(int(d), signal.SIGKILL)
            except ProcessLookupError:
                pass
    for line in sh("ip", "netns", "list", check=False).splitlines():
        m = re.match(r"^(prism-(\d+)-\S+)", line)
        if m and not pid_alive(int(m.group(2))):
            for pid in sh("ip", "netns", "pids", m.group(1), check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", m.group(1), check=False)
            shutil.rmtree(os.path.join("/etc/netns", m.group(1)), ignore_errors=True)
    # the FORWARD rules of bridges whose run is gone (see Net._allow_forwarding)
    if shutil.which("iptables"):
        for line in sh("iptables", "-S", "FORWARD", check=False).splitlines():
            m = re.match(r"^-A (FORWARD -i pr(\d+)b -o pr\d+b -j ACCEPT)$", line)
            if m and not pid_alive(int(m.group(2))):
                sh("iptables", "-D", *m.group(1).split(), check=False)
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name, OWNER_FILE)
        if name.startswith("prism-it-") and os.path.isfile(path):
            try:
                with open(path) as f:
                    owner = int(f.read().strip() or 0)
            except (OSError, ValueError):
                continue
            if owner and not pid_alive(owner):
                shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
    if os.path.isdir("/etc/netns"):
        for name in os.listdir("/etc/netns"):
            m = re.match(r"^prism-(\d+)-", name)
            if m and not pid_alive(int(m.group(1))):
                shutil.rmtree(os.path.join("/etc/netns", name), ignore_errors=True)
    for line in sh("ip", "-o", "link", "show", check=False).splitlines():
        m = re.match(r"^\d+:\s+(pr(\d+)[bhc]\d*)[@:]", line)
        if m and not pid_alive(int(m.group(2))):
            sh("ip", "link", "del", m.group(1), check=False)


class Net:
    """A bridge in the root namespace and one namespace + veth pair per node."""

    def __init__(self, nodes):
        assert 1 <= nodes <= MAX_NODES
        self.pid = os.getpid()
        os.environ[OWNER_VAR] = str(self.pid)  # inherited by every process started from here
        self.nodes = nodes
        self.bridge = "pr%db" % self.pid
        self.created_ns, self.created_links = [], []
        self.stragglers = []  # (pid, command line) that teardown had to kill
        self.forward_rule = False  # the iptables rule of _allow_forwarding is in
        self.lock_fd = None
        remove_stale()
        self.slot = self._take_slot()
        self.head_ip = self.node_ip(0)
        atexit.register(self.teardown)
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise

    def _take_slot(self):
        used = sh("ip", "-o", "-4", "addr", "show", check=False)
        for slot in range(SLOTS):
            path = os.path.join(tempfile.gettempdir(), "prism-netns-net-%d.lock" % slot)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            taken = re.search(r"inet %s%d\." % (re.escape(NET_PREFIX), slot), used)
            if taken:
                os.close(fd)
                continue
            self.lock_fd = fd
            return slot
        skip("every %s0.0/24 to %s%d.0/24 slot is in use by other test runs"
             % (NET_PREFIX, NET_PREFIX, SLOTS - 1))

    def ns(self, i):
        return "prism-%d-n%d" % (self.pid, i)

    def node_ip(self, i):
        return "%s%d.%d" % (NET_PREFIX, self.slot, 1 + i)

    def host_veth(self, i):
        return "pr%dh%d" % (self.pid, i)

    def _build(self):
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.created_links.append(self.bridge)
        sh("ip", "addr", "add", self.head_ip + "/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        self._allow_forwarding()
        for i in range(1, self.nodes + 1):
            ns, host, peer = self.ns(i), self.host_veth(i), "pr%dc%d" % (self.pid, i)
            sh("ip", "netns", "add", ns)
            self.created_ns.append(ns)
            sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
            self.created_links.append(host)
            sh("ip", "link", "set", peer, "netns", ns)
            sh("ip", "link", "set", host, "master", self.bridge)
            sh("ip", "link", "set", host, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", self.node_ip(i) + "/24", "dev", peer)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")

    def _forward_rule(self):
        return ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]

    def _allow_forwarding(self):
        """A Docker engine sets iptables' FORWARD policy to DROP, and with
        br_netfilter loaded that drops frames between two ports of this bridge
        too (node to node): accept this bridge's own traffic, and only that.
        Docker started before or after this test, the rule comes first."""
        if shutil.which("iptables") and sh("iptables", "-S", "FORWARD", check=False):
            sh("iptables", "-I", *self._forward_rule())
            self.forward_rule = True

    def set_etc_file(self, i, name, text):
        """A file that processes run with `ip netns exec` in namespace i see as
        /etc/NAME (e.g. hosts, to resolve names the way a container network does)."""
        d = os.path.join("/etc/netns", self.ns(i))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "w") as f:
            f.write(text)

    def cut(self, i):
        """The node's cable is pulled: its veth's bridge end goes down."""
        sh("ip", "link", "set", self.host_veth(i), "down")

    def restore(self, i):
        sh("ip", "link", "set", self.host_veth(i), "up")

    def ns_pids(self, i):
        return [int(p) for p in sh("ip", "netns", "pids", self.ns(i), check=False).split()]

    def ns_cmdlines(self, i):
        """{pid: command line} of the processes in node i's namespace."""
        out = {}
        for pid in self.ns_pids(i):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    out[pid] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                pass
        return out

    @staticmethod
    def _cmdline(pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return "?"

    def kill_ns(self, i):
        """SIGKILL to every process of the node's namespace: the machine is gone."""
        for pid in self.ns_pids(i):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def teardown(self):
        for ns in self.created_ns:
            for _ in range(50):  # bounded: processes should all be gone already
                pids = [int(p) for p in sh("ip", "netns", "pids", ns, check=False).split()]
                if not pids:
                    break
                for pid in pids:
                    self.stragglers.append((pid, self._cmdline(pid)))
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            sh("ip", "netns", "del", ns, check=False)
            # files `ip netns exec` mounts over /etc (see set_etc_file)
            shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)
        for link in reversed(self.created_links):
            sh("ip", "link", "del", link, check=False)
        self.created_ns, self.created_links = [], []
        if self.forward_rule:
            sh("iptables", "-D", *self._forward_rule(), check=False)
            self.forward_rule = False
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


class NetCluster(harness.Cluster):
    """harness.Cluster with the head on the bridge and each node in its namespace.

    Node i is named node-i, offers CPU 1 and a custom resource `on_node_i: 1`
    (to aim a job at it), and with objectstores=True also runs a
    prism-objectstore in its namespace."""

    def __init__(self, nodes=3, node_timeout_ms=2000, objectstores=False, gcs_args=(),
                 node_args=None, store_memory="64MiB", store_args=()):
        check_prerequisites()
        self.net = Net(nodes)
        self.objectstores = objectstores
        self.node_store_memory = store_memory
        self.store_args = list(store_args)
        self.node_stores = {}  # node name -> (Proc, HTTP URL) of its object store
        self.store_ports = {}  # node name -> its store's port, kept across restarts
        self.killed = []
        self.procs = []
        # This class starts the nodes' object stores itself, in their namespaces;
        # the head runs the scheduler, which places jobs as it places tasks.
        params = inspect.signature(harness.Cluster.__init__).parameters
        extra = {k: False for k in ("objectstore",) if k in params}
        try:
            super().__init__(nodes=nodes, node_timeout_ms=node_timeout_ms, gcs_args=gcs_args,
                             node_args=node_args, **extra)
        except BaseException:
            self._abort()
            raise

    # ---- head services, on the bridge address ----
    def start_nats(self):
        with open(os.path.join(self.dir, OWNER_FILE), "w") as f:  # for remove_stale()
            f.write(str(self.net.pid))
        conf = os.path.join(self.dir, "nats.conf")
        with open(conf, "w") as f:
            f.write('listen: %s:%d\nauthorization { token: "%s" }\n' %
                    (self.net.head_ip, self.nats_port, self.token))
        self.nats_url = "nats://%s:%d" % (self.net.head_ip, self.nats_port)
        self.nats = self._spawn("nats", [find_nats(), "-c", conf])
        wait_until(lambda: self._port_open(self.nats_port), what="nats-server")

    def _port_open(self, port, host=None):
        import socket
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex((host or self.net.head_ip, port)) == 0

    def start_gcs(self, extra=()):
        if not self.gcs_port:  # on the test's own bridge address: no other test's port
            self.gcs_port = harness.free_port()
        argv = [os.path.join(BIN, "prism-gcs"), "--host", self.net.head_ip, "--port",
                str(self.gcs_port), "--token-file", self.token_file, "--nats-url", self.nats_url,
                "--data-dir", os.path.join(self.dir, "gcs"), "--node-timeout-ms",
                str(self.node_timeout_ms), "--log-level", "debug"] + self.gcs_args + list(extra)
        self.gcs = self._spawn("gcs", argv, self.service_env())
        self.url = "http://%s:%d" % (self.net.head_ip, self.gcs_port)
        wait_until(self._healthy, what="GCS /healthz")
        return self.gcs

    # ---- nodes, each in its namespace ----
    def node_index(self, name):
        return int(name.rsplit("-", 1)[1])

    def start_node(self, name, *extra, **_):
        i = self.node_index(name)
        state = os.path.join(self.dir, "nodes", name)
        os.makedirs(state, exist_ok=True)
        ip = self.net.node_ip(i)
        if self.objectstores:
            url = self.start_store(name)
            if "--store-address" in agent_help():  # agents that know their store
                extra = ("--store-socket", os.path.join(state, "store.sock"),
                         "--store-address", url) + tuple(extra)
        argv = ["ip", "netns", "exec", self.net.ns(i), os.path.join(BIN, "prism-nodeagent"),
                "--host", ip, "--port", "0", "--address-file", os.path.join(state, "agent.address"),
                "--token-file", self.token_file, "--nats-url", self.nats_url, "--gcs-address",
                self.url, "--state-dir", state, "--name", name, "--heartbeat-ms", "300",
                "--stop-grace-ms", "1000", "--num-cpus", "1", "--resources",
                json.dumps({"on_node_%d" % i: 1}), "--log-level", "debug"] + list(extra)
        p = self._spawn("%s-agent-%d" % (name, len(self.procs)), argv, self.service_env())
        self.nodes[name] = p
        return p

    def start_store(self, name):
        """The node's object store (kept when it still runs); a store that
        replaces a dead one listens on the same port, so that the address
        its node agent hands out stays right. Returns its URL."""
        old = self.node_stores.get(name)
        if old and old[0].alive():
            return old[1]
        i = self.node_index(name)
        state = os.path.join(self.dir, "nodes", name)
        addr_file = os.path.join(state, "store.address")
        if os.path.exists(addr_file):
            os.unlink(addr_file)
        argv = ["ip", "netns", "exec", self.net.ns(i), os.path.join(BIN, "prism-objectstore"),
                "--host", self.net.node_ip(i), "--port", str(self.store_ports.get(name, 0)),
                "--address-file", addr_file,
                "--token-file", self.token_file, "--nats-url", self.nats_url, "--socket",
                os.path.join(state, "store.sock"), "--memory", self.node_store_memory, "--spill-dir",
                os.path.join(state, "spill"), "--prefault=false", "--log-level", "debug"
                ] + self.store_args
        p = self._spawn("%s-store-%d" % (name, len(self.procs)), argv, self.service_env())
        url = wait_until(lambda: self._read(addr_file) if p.alive() or self._fail(p) else None,
                         what="%s's object store address" % name)
        self.node_stores[name] = (p, url)
        self.store_ports[name] = int(url.rsplit(":", 1)[1])
        return url

    def _read(self, path):
        try:
            with open(path) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def _fail(self, p):
        raise AssertionError("%s exited with %s:\n%s" % (p.name, p.p.poll(), p.tail()))

    def agent_address(self, name):
        return self._read(os.path.join(self.dir, "nodes", name, "agent.address"))

    def kill_node(self, name):
        """SIGKILL to every process in the node's namespace (agent, store, drivers)."""
        i = self.node_index(name)
        self.net.kill_ns(i)
        mine = [p for p in self.procs if p.argv[:4] == ["ip", "netns", "exec", self.net.ns(i)]]
        for p in mine:
            p.p.wait(timeout=30)
            self.procs.remove(p)
            self.killed.append(p)
        self.nodes.pop(name, None)
        self.node_stores.pop(name, None)
        wait_until(lambda: not self.net.ns_pids(i), timeout=10,
                   what="every process of %s gone" % name)

    def http(self, base, method, path, data=None, headers=None, timeout=60):
        """A request to any service of this cluster (a node's store, agent...)."""
        import urllib.error
        import urllib.request
        hdrs = dict(headers or {})
        hdrs["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return harness.Response(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as e:
            return harness.Response(e.code, e.read(), dict(e.headers))

    # ---- GCS views ----
    def node_list(self, state=None):
        q = "?limit=1000" + ("&state=" + state if state else "")
        r = self.get("/api/v1/nodes" + q)
        assert r.status == 200, r
        return r.json()["nodes"]

    def alive_node(self, name):
        for n in self.node_list("ALIVE"):
            if n["name"] == name:
                return n
        return None

    def node_by_id(self, node_id):
        r = self.get("/api/v1/nodes/" + node_id)
        assert r.status == 200, r
        return r.json()

    def all_jobs(self):
        r = self.get("/api/v1/jobs?limit=1000")
        assert r.status == 200, r
        return r.json()["jobs"]

    def check_no_false_state(self):
        """No job is RUNNING on a node the GCS considers DEAD."""
        dead = {n["node_id"] for n in self.node_list("DEAD")}
        bad = [j for j in self.all_jobs() if j["state"] == "RUNNING" and j["node_id"] in dead]
        assert not bad, "jobs RUNNING on dead nodes: %r" % bad

    # ---- teardown ----
    def _abort(self):
        for p in reversed(self.procs):
            try:
                p.kill()
            except Exception:
                pass
        self.net.teardown()

    def close(self, check=True):
        try:
            for p in self.killed:
                p.log.close()
            super().close(check=check)
        finally:
            self.net.teardown()

    def dump_logs(self):
        for p in self.killed:
            print("----- %s (killed by the test) -----\n%s" % (p.name, p.tail(30)))
        super().dump_logs()


# ---- containers (the deployment tests) ----

CONTAINER_SCRIPT = (
    'set -e; hostname "$0"; fs=$1; stash=$2; n=$3; shift 3; '
    'mount --bind "$fs" "$stash"; '
    'mount -t tmpfs -o mode=755 prism-container "$fs"; '
    'while [ "$n" -gt 0 ]; do mkdir -p "$fs/$1"; mount --bind "$stash/$1" "$fs/$1"; shift; n=$((n-1)); done; '
    'n=$1; shift; '
    'while [ "$n" -gt 0 ]; do mount --bind "$stash/$1" "$2"; shift 2; n=$((n-1)); done; '
    'umount "$stash"; exec "$@"')


def container_argv(net, i, hostname, fs, stash, visible, argv, mounts=()):
    """argv run in namespace i the way a container runs: with its own host name
    and its own files. `fs` is the directory holding the files of every
    container of the test (their private directories and the volumes); the
    process sees only the paths `visible` (relative to fs) of it, through a
    mount namespace of its own, so another container's files, its Unix
    sockets included, are out of its reach as they are under Docker or
    Kubernetes. `mounts`: (path relative to fs, absolute directory that
    exists here, e.g. /dev/shm) pairs mounted there for the container only,
    so its programs use the very paths the deployment file names. `stash`:
    an empty directory of this container's, outside fs."""
    for v in list(visible) + [m[0] for m in mounts]:
        os.makedirs(os.path.join(fs, v), exist_ok=True)
    os.makedirs(stash, exist_ok=True)
    return (["ip", "netns", "exec", net.ns(i), "unshare", "--mount", "--uts", "--propagation",
             "private", "sh", "-c", CONTAINER_SCRIPT, hostname, fs, stash, str(len(visible))] +
            list(visible) + [str(len(mounts))] + [x for m in mounts for x in m] + list(argv))


# ---- tasks through the GCS's REST API (the deployment tests) ----

def rest(url, token, method="GET", body=None, timeout=60):
    """(status, body bytes) of one request with the cluster token."""
    import urllib.error
    import urllib.request
    hdrs = {"Authorization": "Bearer " + token}
    data = None
    if body is not None:
        data, hdrs["Content-Type"] = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def submit_task(gcs, token, function, args, **options):
    """POST /api/v1/tasks of a built-in function; the ID of its one object."""
    body = {"package": "builtin", "function": function, "args": args}
    if options:
        body["options"] = options
    st, out = rest(gcs + "/api/v1/tasks", token, "POST", body)
    assert st == 201, (st, out)
    return json.loads(out)["object_ids"][0]


def task_value(gcs, token, oid):
    """The object's value once READY (waits up to 30 s in the GCS)."""
    st, out = rest(gcs + "/api/v1/objects/%s?timeout_ms=30000" % oid, token, timeout=45)
    o = json.loads(out)
    assert st == 200 and o["state"] == "READY", (st, o)
    return o["value"]


def tasks_across_nodes(gcs, token, a, b):
    """A deployment's scheduler, workers and object stores together: a 320 KB
    tensor made by a task pinned to node a stays in a's object store; a task
    pinned to node b takes it as its argument, so b's worker has b's store
    pull it from a's store (the URL a's agent hands its workers); the GCS,
    the owner, reads it through that URL too, and DELETE frees a's copy
    through it. a and b:
    {"name", "store": a URL of the node's object store reachable from here}."""
    nodes = {n["name"]: n["node_id"] for n in json.loads(
        rest(gcs + "/api/v1/nodes?state=ALIVE&limit=1000", token)[1])["nodes"]}
    pin = lambda n: {"strategy": "NODE_AFFINITY", "node_id": nodes[n["name"]]}  # noqa: E731
    big = submit_task(gcs, token, "zeros", [[200, 200]], **pin(a))
    total = submit_task(gcs, token, "sum", [{"$ref": big}], **pin(b))
    v = task_value(gcs, token, total)
    assert v["kind"] == "json" and v["value"] == 0, v
    # the GCS, the owner, reads the tensor from a's store (its URL, as the worker reported it)
    v = task_value(gcs, token, big)
    assert v["kind"] == "tensor" and v["shape"] == [200, 200] and v["size"] == 200 * 200 * 8, v
    st, raw = rest(a["store"] + "/api/v1/objects/" + big, token)
    assert st == 200 and len(raw) >= 200 * 200 * 8, (st, raw[:200])  # the primary copy, on a
    st, raw = rest(b["store"] + "/api/v1/objects/" + big, token)
    assert st == 200 and len(raw) >= 200 * 200 * 8, (st, raw[:200])  # b's pulled copy
    st, out = rest(gcs + "/api/v1/objects/" + big, token, "DELETE")
    assert st == 200, (st, out)
    wait_until(lambda: rest(a["store"] + "/api/v1/objects/" + big, token)[0] == 404, timeout=15,
               what="the owner freeing the tensor in %s's store" % a["name"])


def exit_on_sigterm():
    """SIGTERM (a test runner's timeout, a stop) unwinds like an exception, so
    the finally blocks and atexit handlers tear everything down."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def run(tests, **cluster_kw):
    """Each test function gets a fresh NetCluster; prints 'N passed, N failed'."""
    check_prerequisites()
    exit_on_sigterm()
    harness.run(tests, cluster_class=NetCluster, **cluster_kw)
