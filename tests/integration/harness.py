"""Starts real Prism clusters for integration tests.

A Cluster runs a real nats-server and the real service binaries as separate
processes on free loopback ports, with state in a temporary directory: the
GCS, the scheduler, and per node an object store and a node agent (which runs
its pool of prism-worker processes when that program is built). Every
process is stopped with SIGTERM at the end, and a service that does not exit
cleanly (status 0: no crash, no sanitizer report, no leak) fails the test.
Only the Python standard library is used.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

BIN = os.environ.get("PRISM_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build/bin"))
SKIP = 77


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(SKIP)


def find_nats():
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/usr/bin"]:
        p = os.path.join(d, "nats-server")
        if os.access(p, os.X_OK):
            return p
    return None


_ports_given = set()


def free_port():
    """A port nothing listens on now and not given out before by this process
    (two calls in a row may otherwise get the same one). Another process can
    still take it before it is used: services choose their own (`--port 0`)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def kill_quietly(pid, sig=signal.SIGKILL):
    """Signals a process that may have exited meanwhile (one found by pgrep)."""
    try:
        os.kill(int(pid), sig)
    except ProcessLookupError:
        pass


def wait_until(fn, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))


class Proc:
    def __init__(self, name, argv, log_path, env=None):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.p.send_signal(sig)
        self.p.wait(timeout=30)

    def send_signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def stop(self, timeout=20, signalled=False):
        """SIGTERM (unless `signalled` already); returns the exit status (None
        when it had to be killed)."""
        if not self.alive():
            return self.p.returncode
        if not signalled:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Response:
    def __init__(self, status, body, headers):
        self.status, self.body, self.headers = status, body, headers

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Cluster:
    """nats-server, the GCS, the scheduler (unless scheduler=False) and `nodes`
    node agents, each with its object store (unless objectstore=False)."""

    def __init__(self, nodes=1, node_timeout_ms=3000, gcs_args=(), node_args=None,
                 scheduler=True, scheduler_args=(), objectstore=True, store_memory="64MiB",
                 dataservice=False, dataservice_args=(), nats_monitor=False):
        if not find_nats():
            skip("nats-server is not installed (make bootstrap installs it)")
        needed = ("prism-gcs",) + (("prism-scheduler",) if scheduler else ())
        needed += ("prism-dataservice",) if dataservice else ()
        if nodes:
            needed += ("prism-nodeagent",) + (("prism-objectstore",) if objectstore else ())
        for b in needed:
            if not os.access(os.path.join(BIN, b), os.X_OK):
                skip("%s is not built in %s" % (b, BIN))
        self.dir = tempfile.mkdtemp(prefix="prism-it-")
        self.token = secrets.token_hex(16)
        self.token_file = os.path.join(self.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(self.token)
        os.chmod(self.token_file, 0o600)
        self.node_timeout_ms = node_timeout_ms
        self.gcs_args = list(gcs_args)
        self.procs = []
        self.nodes = {}
        self.stores = {}  # node name -> its prism-objectstore Proc
        self.store_addresses = {}  # node name -> the store's HTTP URL
        self.objectstore = objectstore
        self.store_memory = store_memory  # each node's arena (not prefaulted)
        self.scheduler_args = list(scheduler_args)
        self.scheduler = None
        self.dataservice = None
        self.dataservice_args = list(dataservice_args)
        self.failed_shutdowns = []
        self.nats_port = free_port()
        self.nats_monitor_port = free_port() if nats_monitor else None
        # With a certificate in the environment NATS speaks TLS too, as under `prism up`.
        self.nats_tls = bool(os.environ.get("PRISM_TLS_CERT") and os.environ.get("PRISM_TLS_KEY"))
        self.nats_url = "%s://127.0.0.1:%d" % ("tls" if self.nats_tls else "nats", self.nats_port)
        self.start_nats()
        self.gcs_port = 0  # the GCS's choice, kept for its restarts
        self.start_gcs()
        if scheduler:
            self.start_scheduler()
        for i in range(nodes):
            self.start_node("node-%d" % (i + 1), *(node_args or ()))
        if nodes:
            self.wait_nodes(nodes)
        if dataservice:
            self.start_dataservice()

    # ---- processes ----
    def _spawn(self, name, argv, env=None):
        p = Proc(name, argv, os.path.join(self.dir, name + ".log"), env)
        self.procs.append(p)
        return p

    def start_nats(self):
        conf = os.path.join(self.dir, "nats.conf")
        with open(conf, "w") as f:
            f.write('listen: 127.0.0.1:%d\nauthorization { token: "%s" }\n' % (self.nats_port, self.token))
            if self.nats_monitor_port:
                f.write('http: 127.0.0.1:%d\n' % self.nats_monitor_port)
            if self.nats_tls:
                f.write('tls { cert_file: "%s", key_file: "%s" }\n'
                        % (os.environ["PRISM_TLS_CERT"], os.environ["PRISM_TLS_KEY"]))
        self.nats = self._spawn("nats", [find_nats(), "-c", conf])
        wait_until(lambda: self._port_open(self.nats_port), what="nats-server")

    def nats_subscriptions(self):
        """Each NATS connection's subjects, as lists (needs nats_monitor=True)."""
        url = "http://127.0.0.1:%d/connz?subs=1&limit=1024" % self.nats_monitor_port
        with urllib.request.urlopen(url, timeout=10) as r:
            conns = json.load(r).get("connections") or []
        return [x.get("subscriptions_list") or [] for x in conns]

    def _port_open(self, port):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def service_env(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        return env

    def _serve(self, name, argv, port, what):
        """Spawns a service on `port` (0: a port it binds itself, which no other
        process can take first) and waits for its /healthz; returns (Proc, URL)."""
        addr = os.path.join(self.dir, name + ".address")
        if os.path.exists(addr):
            os.unlink(addr)
        p = self._spawn(name, argv + ["--port", str(port), "--address-file", addr],
                        self.service_env())
        wait_until(lambda: os.path.exists(addr) or not p.alive(), what=what + " to serve")
        if not p.alive():
            raise AssertionError("%s exited: %s" % (what, p.tail()))
        with open(addr) as f:
            url = f.read().strip()
        wait_until(lambda: self._healthy(url), what=what + " /healthz")
        return p, url

    def start_gcs(self, extra=()):
        argv = [os.path.join(BIN, "prism-gcs"), "--token-file", self.token_file, "--nats-url",
                self.nats_url, "--data-dir", os.path.join(self.dir, "gcs"), "--node-timeout-ms",
                str(self.node_timeout_ms), "--log-level", "debug"] + self.gcs_args + list(extra)
        self.gcs, self.url = self._serve("gcs", argv, self.gcs_port, "GCS")
        self.gcs_port = int(self.url.rsplit(":", 1)[1])
        return self.gcs

    def _healthy(self, base=None):
        try:
            return self.get("/healthz", token=None, base=base).status == 200
        except OSError:
            return False

    def start_scheduler(self, extra=()):
        """prism-scheduler on a free port; its REST base URL is self.scheduler_url."""
        argv = [os.path.join(BIN, "prism-scheduler"), "--token-file", self.token_file,
                "--nats-url", self.nats_url, "--node-timeout-ms", str(self.node_timeout_ms),
                "--log-level", "debug"] + self.scheduler_args + list(extra)
        self.scheduler, self.scheduler_url = self._serve("scheduler-" + str(len(self.procs)),
                                                         argv, 0, "scheduler")
        return self.scheduler

    def start_dataservice(self, extra=()):
        """prism-dataservice on a free port; its REST base URL is self.dataservice_url
        (the GCS forwards /api/v1/datasets* there, once it answers on NATS)."""
        argv = [os.path.join(BIN, "prism-dataservice"), "--token-file", self.token_file,
                "--nats-url", self.nats_url, "--gcs-address", self.url,
                "--log-level", "debug"] + self.dataservice_args + list(extra)
        self.dataservice, self.dataservice_url = self._serve(
            "dataservice-" + str(len(self.procs)), argv, 0, "dataservice")
        # The GCS finds it over NATS: wait until a request through the GCS gets there.
        wait_until(lambda: self.get("/api/v1/datasets").status == 200,
                   what="the GCS forwarding to the dataservice")
        return self.dataservice

    def start_store(self, name):
        """The object store of node `name` (kept when it still runs); returns its URL."""
        p = self.stores.get(name)
        if p and p.alive():
            return self.store_addresses[name]
        state = os.path.join(self.dir, "nodes", name)
        os.makedirs(state, exist_ok=True)
        addr_file = os.path.join(state, "objectstore.address")
        if os.path.exists(addr_file):
            os.unlink(addr_file)
        argv = [os.path.join(BIN, "prism-objectstore"), "--socket",
                os.path.join(state, "objectstore.sock"), "--port", "0", "--address-file",
                addr_file, "--token-file", self.token_file, "--nats-url", self.nats_url,
                "--memory", self.store_memory, "--prefault=false", "--spill-dir",
                os.path.join(state, "spill"), "--log-level", "debug"]
        p = self._spawn("store-%s-%d" % (name, len(self.procs)), argv, self.service_env())
        self.stores[name] = p

        def address():
            if not p.alive():
                raise AssertionError("the object store of %s exited:\n%s" % (name, p.tail()))
            try:
                with open(addr_file) as f:
                    url = f.read().strip()
            except OSError:
                return None
            return url if url and self._healthy(url) else None
        self.store_addresses[name] = wait_until(address, what="object store of " + name)
        return self.store_addresses[name]

    def start_node(self, name, *extra, objectstore=None):
        """A node agent named `name`, with its object store unless objectstore=False
        (default: the cluster's setting)."""
        state = os.path.join(self.dir, "nodes", name)
        os.makedirs(state, exist_ok=True)
        argv = [os.path.join(BIN, "prism-nodeagent"), "--port", "0", "--token-file",
                self.token_file, "--nats-url", self.nats_url, "--gcs-address", self.url,
                "--state-dir", state, "--name", name, "--heartbeat-ms", "300",
                "--stop-grace-ms", "1000", "--log-level", "debug"]
        if self.objectstore if objectstore is None else objectstore:
            argv += ["--store-socket", os.path.join(state, "objectstore.sock"),
                     "--store-address", self.start_store(name)]
        p = self._spawn(name + "-" + str(len(self.procs)), argv + list(extra), self.service_env())
        self.nodes[name] = p
        return p

    def worker_pids(self, node=None):
        """The PIDs of this cluster's worker processes, or of node `node`'s (a name)."""
        pattern = "prism-worker.*" + self.dir + ("/nodes/%s/" % node if node else "")
        out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def wait_nodes(self, n, timeout=20):
        """Waits until the GCS counts `n` nodes alive and, when a scheduler runs, until it
        has each of them in its view too: it learns of a node from the node's own report,
        which may come after the GCS's registration (a lease with soft affinity for a node
        the scheduler does not know yet goes elsewhere)."""
        got = wait_until(lambda: self.get("/api/v1/cluster").json()["nodes_alive"] == n,
                         timeout=timeout, what="%d nodes alive" % n)
        if self.scheduler is not None and self.scheduler.alive():
            def seen():
                alive = {x["node_id"] for x in
                         self.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
                r = self.get("/api/v1/scheduler", base=self.scheduler_url)
                return r.status == 200 and alive <= {x["node_id"] for x in r.json()["nodes"]}
            wait_until(seen, timeout=timeout, what="the scheduler to see the %d nodes" % n)
        return got

    # ---- HTTP ----
    def request(self, method, path, body=None, token="default", headers=None, raw=None,
                timeout=30, base=None):
        """An HTTP request to the GCS (or to `base`, another service's URL)."""
        data = raw
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if token == "default":
            token = self.token
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        req = urllib.request.Request((base or self.url) + path, data=data, method=method,
                                     headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as e:
            return Response(e.code, e.read(), dict(e.headers))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def store_stats(self, node="node-1"):
        """The node's object store's counters (its GET /api/v1/stats)."""
        r = self.get("/api/v1/stats", base=self.store_addresses[node])
        assert r.status == 200, r
        return r.json()

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def submit(self, entrypoint, **fields):
        fields["entrypoint"] = entrypoint
        r = self.post("/api/v1/jobs", fields)
        assert r.status == 201, r
        return r.json()["job_id"]

    def job(self, job_id):
        r = self.get("/api/v1/jobs/" + job_id)
        assert r.status == 200, r
        return r.json()

    def wait_job(self, job_id, states=("SUCCEEDED", "FAILED", "STOPPED"), timeout=30):
        return wait_until(lambda: (lambda j: j if j["state"] in states else None)(self.job(job_id)),
                          timeout=timeout, what="job %s in %s" % (job_id, states))

    def logs(self, job_id):
        r = self.get("/api/v1/jobs/%s/logs" % job_id)
        assert r.status == 200, r
        return r.body.decode()

    # ---- teardown ----
    def stop_proc(self, p, signalled=False):
        rc = p.stop(signalled=signalled)
        if rc is None:
            self.failed_shutdowns.append((p.name, "did not exit on SIGTERM", p.tail()))
        elif rc != 0:
            self.failed_shutdowns.append((p.name, rc, p.tail()))

    def worker_reports(self):
        """Sanitizer reports in the workers' logs: a worker is no service of
        the harness's, but the node agent stops it with SIGTERM too, and what
        it leaked or broke by then is in its log."""
        found = []
        for root, _, files in os.walk(os.path.join(self.dir, "nodes")):
            for f in files:
                if not f.endswith(".log") or os.path.basename(root) != "workers":
                    continue
                with open(os.path.join(root, f), errors="replace") as log:
                    text = log.read()
                at = min([i for i in (text.find("ERROR: AddressSanitizer"),
                                      text.find("ERROR: LeakSanitizer"),
                                      text.find("runtime error:")) if i >= 0], default=-1)
                if at >= 0:
                    found.append(("worker " + f[:-4], "a sanitizer report", text[at:at + 6000]))
        return found

    def close(self, check=True):
        # Every service is told at once, as an orchestrator tearing the whole
        # cluster down does: each must exit cleanly while its peers go too.
        services = [p for p in reversed(self.procs) if p is not self.nats and p.alive()]
        for p in services:
            p.send_signal(signal.SIGTERM)
        for p in services:
            self.stop_proc(p, signalled=True)
        self.nats.stop()
        for p in self.procs:
            p.log.close()
        self.failed_shutdowns += self.worker_reports()
        if check and self.failed_shutdowns:
            msg = "\n".join("%s: exit %s\n%s" % f for f in self.failed_shutdowns)
            raise AssertionError("services did not shut down cleanly:\n" + msg)
        if os.environ.get("PRISM_KEEP_TEST_DIR"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self):
        for p in self.procs:
            print("----- %s (%s) -----\n%s" % (p.name, p.log_path, p.tail(60)))


def run(tests, cluster_class=None, **cluster_kw):
    """Runs test functions against one fresh cluster each (a Cluster, or
    `cluster_class`); prints 'N passed, N failed'. A cluster is always closed,
    also when a test skips or fails midway. Names on the command line run
    only those cases: `tests/integration/test_tasks.py test_nested_tasks`."""
    wanted = [a for a in sys.argv[1:] if not a.startswith("-")]
    unknown = sorted(set(wanted) - {t.__name__ for t in tests})
    if unknown:
        print("no such test case: %s (cases: %s)" % (", ".join(unknown),
                                                     ", ".join(t.__name__ for t in tests)))
        sys.exit(2)
    if wanted:
        tests = [t for t in tests if t.__name__ in wanted]
    passed = failed = skipped = 0
    for t in tests:
        c = None
        t0 = time.time()
        try:
            kw = dict(cluster_kw)
            kw.update(getattr(t, "cluster", {}))
            c = (cluster_class or Cluster)(**kw)
            t(c)
            c.close()
            c = None
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except SystemExit as e:
            if e.code != SKIP:
                raise
            # one case skipping (its reason is printed) ends that case only:
            # the others still run and their failures count; a file with a
            # skipped case and no failure reports SKIP, so the skip shows in
            # CTest's summary
            skipped += 1
            print("SKIPPED %s" % t.__name__, flush=True)
        except BaseException as e:
            failed += 1
            print("FAIL", t.__name__, "-", repr(e), flush=True)
            traceback.print_exc(file=sys.stdout)  # which assert: most carry no message
            sys.stdout.flush()
            if c:
                c.dump_logs()
        finally:
            if c:
                try:
                    c.close(check=False)
                except Exception:
                    pass
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed else SKIP if skipped else 0)


class NatsSubscriber:
    """A minimal NATS client (the text protocol over a socket) that records the
    messages of one subject, so tests can check the events services publish."""

    def __init__(self, port, token, subject, raw=False):
        import threading
        self.raw = raw  # keep the bytes (binary payloads) rather than parse JSON
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.messages = []
        self.lock = threading.Lock()
        self.buf = b""
        self._line()  # INFO
        connect = {"verbose": False, "pedantic": False, "auth_token": token, "name": "test"}
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nSUB " +
                          subject.encode() + b" 1\r\nPING\r\n")
        while self._line() != b"PONG":
            pass
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _loop(self):
        try:
            while True:
                line = self._line()
                if line.startswith(b"MSG "):
                    parts = line.split()
                    data = self._read(int(parts[-1]))
                    with self.lock:
                        self.messages.append((parts[1].decode(),
                                              data if self.raw else json.loads(data)))
                elif line == b"PING":
                    self.sock.sendall(b"PONG\r\n")
        except (EOFError, OSError, ValueError):
            pass

    def events(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class NoResponders(Exception):
    """A NATS request found no subscriber on its subject."""


class NatsClient:
    """A minimal NATS client for requests (binary or JSON bodies): each request
    gets its own inbox; "no responders" (a 503 status) raises NoResponders."""

    def __init__(self, port, token):
        import threading
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.lock = threading.Lock()
        self.sid = 0
        self._line()  # INFO
        connect = {"verbose": False, "pedantic": False, "auth_token": token, "name": "test",
                   "headers": True, "no_responders": True, "protocol": 1}
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        while self._line() != b"PONG":
            pass

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("NATS closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, data, timeout=10.0):
        """Sends `data` (bytes, or anything JSON) and returns the reply's bytes."""
        if not isinstance(data, bytes):
            data = json.dumps(data).encode()
        with self.lock:
            self.sid += 1
            sid = str(self.sid).encode()
            inbox = ("_INBOX.test.%s.%d" % (secrets.token_hex(4), self.sid)).encode()
            self.sock.sendall(b"SUB " + inbox + b" " + sid + b"\r\nPUB " + subject.encode() + b" " +
                              inbox + b" " + str(len(data)).encode() + b"\r\n" + data + b"\r\n")
            self.sock.settimeout(timeout)
            try:
                while True:
                    line = self._line()
                    if line == b"PING":
                        self.sock.sendall(b"PONG\r\n")
                        continue
                    parts = line.split()
                    if parts[:1] == [b"MSG"] and parts[2] == sid:
                        return self._read(int(parts[-1]))
                    if parts[:1] == [b"HMSG"] and parts[2] == sid:
                        msg = self._read(int(parts[-1]))
                        head = msg[:int(parts[-2])]
                        if head.split(b"\r\n")[0].split()[1:2] == [b"503"]:
                            raise NoResponders(subject)
                        return msg[int(parts[-2]):]
                    if parts[:1] in ([b"MSG"], [b"HMSG"]):  # a late answer to an earlier request
                        self._read(int(parts[-1]))
            except socket.timeout:
                raise TimeoutError("no answer on %s in %.1fs" % (subject, timeout))
            finally:
                self.sock.settimeout(None)
                self.sock.sendall(b"UNSUB " + sid + b"\r\n")

    def request_json(self, subject, data, timeout=10.0):
        return json.loads(self.request(subject, data, timeout))

    def publish(self, subject, data):
        """Publishes `data` (bytes, or anything JSON), expecting no answer."""
        if not isinstance(data, bytes):
            data = json.dumps(data).encode()
        with self.lock:
            self.sock.sendall(b"PUB " + subject.encode() + b" " + str(len(data)).encode() +
                              b"\r\n" + data + b"\r\n")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
