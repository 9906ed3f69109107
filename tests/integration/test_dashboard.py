"""The dashboard (docs/dashboard.md) in a real browser: Debian's Chromium,
headless, driven through the DevTools protocol over a WebSocket (a small
client below: the standard library only). Against a real cluster it signs
in, reads the overview, follows a job's log as it is printed, kills an actor
and sees it DEAD with its cause, reads the Tasks and Objects pages, sees a
node that stops heartbeating DEAD and checks the answer to a wrong token; no
console error and no failed request are allowed, and each page is saved as
a PNG in the cluster's directory (PRISM_KEEP_TEST_DIR=1 keeps it). It
prints the bytes the overview's first load transfers and the time to its
first render. Skips where Chromium is missing or cannot start."""
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

from harness import BIN, NatsClient, run, skip, wait_until

CHROMIUM = os.environ.get("PRISM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


# ------------------------------------------------------- WebSocket (RFC 6455)
class WebSocket:
    """A client for one ws:// URL on loopback: text frames out (masked), frames
    in (continuations joined, pings answered)."""

    def __init__(self, url, timeout=30):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("the browser closed the WebSocket handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise AssertionError("WebSocket handshake refused: %r" % head[:200])

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the browser closed the WebSocket")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = secrets.token_bytes(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text):
        self._frame(0x1, text.encode())

    def recv(self):
        data = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise EOFError("the browser closed the WebSocket")
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                data += payload
                if b0 & 0x80:
                    return data.decode()

    def close(self):
        try:
            self._frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


# ------------------------------------------------------- the browser
class Browser:
    """A headless Chromium with one page, its console errors, failed requests
    and transferred bytes recorded from the protocol's events."""

    def __init__(self, outdir):
        self.profile = tempfile.mkdtemp(prefix="prism-chromium-")
        self.outdir = outdir
        self.log = open(os.path.join(outdir, "chromium.log"), "wb")
        argv = [CHROMIUM, "--headless=new", "--remote-debugging-port=0",
                "--user-data-dir=" + self.profile, "--no-first-run", "--no-default-browser-check",
                "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,900", "about:blank"]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if self.proc.poll() is not None or time.time() > deadline:
                self.quit()
                with open(os.path.join(outdir, "chromium.log"), errors="replace") as f:
                    tail = f.read()[-1500:]
                skip("Chromium cannot start here (%s):\n%s" % (CHROMIUM, tail))
            time.sleep(0.1)
        time.sleep(0.2)
        with open(port_file) as f:
            port = int(f.read().split()[0])
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        self.ws = WebSocket(pages[0]["webSocketDebuggerUrl"])
        self.next_id = 0
        self.reset_records()
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(domain + ".enable")

    def reset_records(self):
        self.errors, self.failed, self.requests = [], [], {}
        self.bytes = 0

    def _event(self, msg):
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            self.errors.append("console.%s: %s" % (p["type"], " ".join(
                str(a.get("value", a.get("description", ""))) for a in p["args"])))
        elif m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.errors.append("exception: %s" % d.get("exception", {}).get(
                "description", d.get("text")))
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.errors.append("log: %s (%s)" % (p["entry"]["text"], p["entry"].get("url", "")))
        elif m == "Network.requestWillBeSent":
            self.requests[p["requestId"]] = p["request"]["url"]
        elif m == "Network.responseReceived" and p["response"]["status"] >= 400:
            self.failed.append("%d %s" % (p["response"]["status"], p["response"]["url"]))
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            # Streams this page ends itself (a log it stops following) are canceled.
            self.failed.append("%s %s" % (p["errorText"], self.requests.get(p["requestId"])))
        elif m == "Network.loadingFinished":
            self.bytes += int(p["encodedDataLength"])

    def call(self, method, timeout=30, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.sock.settimeout(timeout)
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise AssertionError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self._event(msg)

    def pump(self):
        """Handles the events that arrived (a no-op command flushes them)."""
        self.call("Runtime.evaluate", expression="0")

    def js(self, expr):
        """The value of a JavaScript expression in the page (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError("%s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, expr, what, timeout=20):
        return wait_until(lambda: self.js(expr), timeout=timeout, interval=0.1, what=what)

    def goto(self, url):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'", "the page to load")

    def screenshot(self, name):
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path = os.path.join(self.outdir, name + ".png")
        with open(path, "wb") as f:
            f.write(png)
        return path

    def quit(self):
        if getattr(self, "ws", None):
            try:
                self.call("Browser.close", timeout=5)
            except (AssertionError, EOFError, OSError):
                pass
            self.ws.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def text_of(selector):
    return "((document.querySelector(%s) || {}).textContent || '')" % json.dumps(selector)


def click(selector):
    """Clicks in one synchronous step (the page redraws its tables every 2 s)."""
    return ("(() => { const e = document.querySelector(%s); if (!e || e.disabled) return false;"
            " e.click(); return true; })()" % json.dumps(selector))


def chart_points(chart_id):
    """The samples a chart of the overview draws."""
    return "Number((document.getElementById(%s) || {dataset: {}}).dataset.points || 0)" % (
        json.dumps(chart_id))


def chart_top(chart_id):
    """How far the first line of a chart rises above its axis (SVG units)."""
    return ("(l => { if (!l) return 0; let top = 0; for (let i = 0; i < l.points.numberOfItems;"
            " i++) top = Math.max(top, 79 - l.points.getItem(i).y); return top; })"
            "(document.querySelector('#%s polyline'))" % chart_id)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def create_actor(c, name):
    """A detached builtin Counter, created as a program would (NATS request)."""
    aid = secrets.token_hex(16)
    spec = json.dumps({"actor_id": aid, "owner": "gcs", "detached": True, "package": "builtin",
                       "class": "Counter", "name": name}).encode()
    nc = NatsClient(c.nats_port, c.token)
    try:
        reply = json.loads(nc.request("prism.gcs.actor.create",
                                      struct.pack("<I", len(spec)) + spec + b"\0\0\0\0"))
    finally:
        nc.close()
    assert reply == {"ok": True, "actor_id": aid}, reply
    return aid


def test_dashboard(c):
    outdir = os.path.join(c.dir, "dashboard")
    os.makedirs(outdir, exist_ok=True)
    b = Browser(outdir)
    try:
        # The static files need no token; the data does.
        r = c.get("/", token=None)
        assert r.status == 200 and "script-src 'self'" in r.headers["Content-Security-Policy"], r
        assert c.get("/api/v1/cluster", token=None).status == 401

        # A wrong token: the page says so (the 401 it provokes is expected).
        b.goto(c.url + "/")
        b.wait("!document.getElementById('signin').hidden", "the sign-in form")
        b.js("document.getElementById('token').value = 'wrong-token'; "
             "document.getElementById('signin').requestSubmit(); true")
        msg = b.wait("(e => !e.hidden && e.textContent)(document.getElementById('signin-error'))",
                     "the wrong-token message")
        assert "401" in msg and "token" in msg.lower(), msg
        assert b.js("sessionStorage.getItem('prism.token')") is None
        b.screenshot("signin-wrong-token")
        b.pump()
        assert all("401" in f for f in b.failed), b.failed
        b.reset_records()

        # Sign in; the overview shows the node.
        b.js("document.getElementById('token').value = %s; "
             "document.getElementById('signin').requestSubmit(); true" % json.dumps(c.token))
        b.wait(text_of("#ov-resources") + ".includes('node-1')", "the node on the overview")
        assert b.js(text_of("#ov-nodes")).replace(" ", "").startswith("Nodes1alive"), \
            b.js(text_of("#ov-nodes"))
        assert b.js("sessionStorage.getItem('prism.token')") == c.token

        # Page weight and first render: a cold load of the overview, signed in.
        b.call("Network.setCacheDisabled", cacheDisabled=True)
        b.goto("about:blank")
        b.pump()
        b.reset_records()
        b.goto(c.url + "/#/overview")
        b.wait("performance.getEntriesByName('prism-first-render').length > 0",
               "the overview's first render")
        first = b.js("performance.getEntriesByName('prism-first-render')[0].startTime")
        b.pump()
        print("dashboard: overview cold load transferred %d bytes (%.1f KiB), first render "
              "after %.0f ms" % (b.bytes, b.bytes / 1024, first))
        assert b.bytes < 300 * 1024, b.bytes
        b.call("Network.setCacheDisabled", cacheDisabled=False)
        b.wait(text_of("#ov-resources") + ".includes('CPU')", "resources on the overview")
        # The live charts draw the GCS's history, and node-1's object store shows.
        b.wait(chart_points("chart-nodes") + " >= 2", "two samples on the charts", timeout=30)
        assert b.js(text_of("#chart-nodes .chart-legend")) == "alive 1", \
            b.js(text_of("#chart-nodes"))
        assert b.js("document.querySelectorAll('#chart-cpu polyline').length") == 2
        b.wait(text_of("#ov-resources td.store") + ".includes('/ 64.0 MiB')",
               "node-1's object store on the overview")
        b.screenshot("overview")

        # A job's log streams in while it runs.
        jid = c.submit("for i in 1 2 3 4 5 6; do echo dashboard-line-$i; sleep 0.5; done; "
                       "sleep 1", submission_id="dash-job")
        b.goto(c.url + "/#/jobs")
        b.wait(text_of("tr[data-job='dash-job']") + ".length > 0", "the job in the list")
        b.screenshot("jobs")
        b.js(click("tr[data-job='dash-job'] a"))
        b.wait(text_of("#job-log") + ".includes('dashboard-line-1')", "the first log line")
        early = b.js(text_of("#job-log"))
        assert c.job(jid)["state"] == "RUNNING" and "dashboard-line-6" not in early, early
        b.wait(text_of("#job-log") + ".includes('dashboard-line-6')", "the last log line")
        b.wait(text_of("#job-state") + ".includes('SUCCEEDED')", "the job SUCCEEDED", timeout=30)
        b.wait(text_of("#job-log-state") + " === 'complete'", "the log stream to end")
        lines = [l for l in b.js(text_of("#job-log")).splitlines() if l]
        assert lines == ["dashboard-line-%d" % i for i in range(1, 7)], lines
        b.screenshot("job")
        # Delete it from its page: back to the list, and gone from the API.
        b.wait(click("#job-delete"), "the delete button")
        b.wait("location.hash === '#/jobs'", "the jobs list after delete")
        wait_until(lambda: c.get("/api/v1/jobs/dash-job").status == 404, what="the job deleted")

        # Stop a running job from its page.
        c.submit("echo started; sleep 60", submission_id="dash-stop")
        b.goto(c.url + "/#/jobs/dash-stop")
        b.wait(text_of("#job-log") + ".includes('started')", "the stopped job's log")
        b.wait(click("#job-stop"), "the stop button")
        b.wait(text_of("#job-state") + ".includes('STOPPED')", "the job STOPPED", timeout=30)

        # The list's state filter.
        b.goto(c.url + "/#/jobs")
        for state, shown in (("STOPPED", True), ("RUNNING", False), ("", True)):
            b.js("(s => { s.value = %s; s.dispatchEvent(new Event('change')); return true; })"
                 "(document.getElementById('job-state'))" % json.dumps(state))
            b.wait(text_of("#view table, #view p.empty") + ".includes('dash-stop') === %s"
                   % json.dumps(shown), "dash-stop %s under filter %r" % (
                       "shown" if shown else "hidden", state))

        # An actor killed from the Actors page turns DEAD with its cause.
        aid = create_actor(c, "dash-counter")
        b.goto(c.url + "/#/actors")
        row = "tr[data-actor='%s']" % aid
        b.wait(text_of(row + " td.state") + " === 'ALIVE'", "the actor ALIVE", timeout=30)
        b.screenshot("actors-alive")
        assert b.js(click(row + " button[data-action='kill']"))
        b.wait(text_of(row + " button[data-action='kill']") + " === 'Confirm kill'",
               "the kill confirmation")
        assert b.js(click(row + " button[data-action='kill']"))
        b.wait(text_of(row + " td.state") + " === 'DEAD'", "the actor DEAD", timeout=30)
        assert b.js(text_of(row + " td.cause")) == "killed", b.js(text_of(row))
        assert c.get("/api/v1/actors/" + aid).json()["cause"] == "killed"
        b.screenshot("actors")

        # Tasks and objects: tasks run through the REST API (an add, then sleeps
        # of 100-400 ms for the timeline), and their results.
        r = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [2, 40]})
        assert r.status == 201, r
        oid = r.json()["object_ids"][0]
        assert c.get("/api/v1/objects/%s?timeout_ms=30000" % oid).status == 200
        sleeps = [c.post("/api/v1/tasks", {"package": "builtin", "function": "sleep",
                                           "args": [100 + 50 * (i % 7)]}).json()["object_ids"][0]
                  for i in range(8)]
        for o in sleeps:
            assert c.get("/api/v1/objects/%s?timeout_ms=30000" % o).status == 200
        ran = wait_until(lambda: (lambda ts: ts if len(ts) == 9 else None)(
            {t["task_id"] for t in c.get("/api/v1/tasks").json()["tasks"]
             if t["state"] == "FINISHED"}), what="the 9 tasks reported")
        b.goto(c.url + "/#/tasks")
        b.wait(text_of("#view table") + ".includes('builtin/add')", "the task listed",
               timeout=30)
        b.wait(text_of("#view tbody tr td.state") + " === 'FINISHED'", "the task FINISHED")
        b.wait("document.querySelectorAll('#timeline-svg rect.task').length === 9",
               "the tasks on the timeline", timeout=30)
        drawn = set(b.js("Array.from(document.querySelectorAll('#timeline-svg rect.task'), "
                         "r => r.dataset.task)"))
        assert drawn == ran, (drawn, ran)
        b.screenshot("tasks")
        # The timeline's download link saves the API's Chrome trace.
        b.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=outdir)
        assert b.js(click("#timeline-download"))
        saved = os.path.join(outdir, "prism-timeline.json")
        trace = wait_until(lambda: load_json(saved), timeout=20, what="the downloaded trace")
        assert {e["args"]["task_id"] for e in trace["traceEvents"] if e["ph"] == "X"} == ran, \
            trace
        b.wait(text_of("#timeline-download-status") + ".startsWith('saved')",
               "the download's note")
        # Two tensors in node-1's store, for the objects page's largest per node.
        big = [c.post("/api/v1/tasks", {"package": "builtin", "function": "zeros",
                                        "args": [[n, n]]}).json()["object_ids"][0]
               for n in (200, 300)]
        for o in big:
            assert c.get("/api/v1/objects/%s?timeout_ms=30000" % o).status == 200
        b.goto(c.url + "/#/objects")
        b.wait("Array.from(document.querySelectorAll('#largest tr[data-largest]'), "
               "r => r.dataset.largest).join() === %s" % json.dumps(",".join(big[::-1])),
               "the two tensors, largest first, in node-1's largest", timeout=30)
        assert b.js(text_of("#largest tr[data-largest] td.size")) == "703.2 KiB", \
            b.js(text_of("#largest"))
        row = "tr[data-object='%s']" % oid
        b.wait(text_of(row + " td.state") + " === 'READY'", "the task's object READY",
               timeout=30)
        assert "gcs" in b.js(text_of(row)), b.js(text_of(row))
        b.screenshot("objects")

        # Nodes: a second node that stops heartbeating turns DEAD, with why.
        c.start_node("node-2")
        c.wait_nodes(2)
        node2 = [n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]
                 if n["name"] == "node-2"][0]
        b.goto(c.url + "/#/nodes")
        row = "tr[data-node='%s']" % node2
        b.wait(text_of(row + " td.state") + " === 'ALIVE'", "node-2 ALIVE on the Nodes page")
        b.wait(text_of(row + " td.store") + ".includes('/ 64.0 MiB')",
               "node-2's object store on the Nodes page", timeout=30)
        b.wait("Number(document.querySelector(%s).dataset.points) >= 1" % json.dumps(
            row + " td.store svg.spark"), "node-2's store use drawn over time")
        # Each live node's workers, from its agent: node-1 ran the tasks above,
        # and every worker the page lists is a process of node-1's agent.
        node1 = [n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]
                 if n["name"] == "node-1"][0]
        pids = "tr[data-workers='%s'] tr[data-worker] td.pid" % node1
        b.wait("document.querySelectorAll(%s).length >= 1" % json.dumps(pids),
               "node-1's workers on the Nodes page", timeout=30)
        shown = [int(p) for p in b.js("Array.from(document.querySelectorAll(%s), "
                                      "td => td.textContent)" % json.dumps(pids))]
        agent = c.nodes["node-1"].p.pid
        for pid in shown:
            with open("/proc/%d/stat" % pid) as f:
                assert int(f.read().rsplit(")", 1)[1].split()[1]) == agent, (pid, agent)
        health = b.js(text_of("tr[data-node='%s'] td.health" % node1))
        assert "node agent: heartbeat" in health and "workers: answered" in health and \
            "object store: reported" in health, health
        # the cluster's services, as they announce themselves
        for svc in ("gcs", "scheduler", "dataservice"):
            b.wait(text_of("#svc-" + svc) + " === 'ALIVE'", "the %s listed ALIVE" % svc)
        c.nodes["node-2"].p.send_signal(signal.SIGSTOP)
        try:
            b.wait(text_of(row + " td.state") + " === 'DEAD'", "node-2 DEAD", timeout=30)
            assert b.js(text_of(row + " td.cause")), b.js(text_of(row))
            b.screenshot("nodes")
            # While node-2 was silent but not yet DEAD, asking its agent for its
            # workers failed (503 node_unavailable, or 409 once it died): expected.
            # (Chromium logs each as a console error too.)
            b.pump()
            asked = "/api/v1/nodes/%s/workers" % node2
            b.failed = [f for f in b.failed
                        if not (f.startswith(("503 ", "409 ")) and f.endswith(asked))]
            b.errors = [e for e in b.errors if not (
                ("status of 503" in e or "status of 409" in e) and e.endswith(asked + ")"))]
            b.goto(c.url + "/#/overview")
            b.wait(text_of("#ov-nodes") + ".replace(/\\s/g, '').includes('1alive1dead')",
                   "one node alive and one dead on the overview")
        finally:
            c.nodes["node-2"].p.send_signal(signal.SIGCONT)

        # The task chart shows the tasks run above (its curve leaves the axis).
        b.wait(chart_points("chart-tasks") + " >= 2 && " + chart_top("chart-tasks") + " > 0",
               "the finished task on the task chart", timeout=30)
        b.screenshot("overview-live")

        # Datasets: one run through the dataservice, listed with its stages.
        r = c.post("/api/v1/datasets", {"name": "dash-squares", "ops": [
            {"op": "range", "n": 1000, "override_num_blocks": 4}, {"op": "limit", "limit": 10}]})
        assert r.status == 201, r
        did = r.json()["dataset_id"]
        b.goto(c.url + "/#/datasets")
        row = "tr[data-dataset='%s']" % did
        b.wait(text_of(row + " td.state") + " === 'FINISHED'", "the dataset FINISHED",
               timeout=60)
        assert "10 rows" in b.js(text_of(row)), b.js(text_of(row))
        b.screenshot("datasets")
        assert b.js(click(row + " a"))
        b.wait("document.querySelectorAll('#view tr[data-stage]').length >= 1",
               "the dataset's stages")
        assert b.js(text_of("#dataset-state")) == "FINISHED"
        b.screenshot("dataset")

        b.pump()
        assert not b.errors, "console errors:\n" + "\n".join(b.errors)
        assert not b.failed, "failed requests:\n" + "\n".join(b.failed)
        print("dashboard: screenshots in", outdir)
    finally:
        b.quit()


test_dashboard.cluster = {"dataservice": True}


def test_dags_page(c):
    """A DAG a driver compiled and ran 50 times is on the DAGs page with its
    stages and executions; its page shows its nodes and each actor's loop
    (RUNNING, 50 passes, the paths its values took), and TORN_DOWN (loops STOPPED) after the driver
    tears it down."""
    probe = os.path.join(BIN, "dag_probe")
    if not os.access(probe, os.X_OK):
        skip("dag_probe is not built")
    outdir = os.path.join(c.dir, "dashboard")
    os.makedirs(outdir, exist_ok=True)
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    env.pop("PRISM_HOME", None)
    p = subprocess.Popen([probe, "listed", "50"], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    b = Browser(outdir)
    try:
        actors = p.stdout.readline().split()[1:]
        assert len(actors) == 2, actors
        assert p.stdout.readline().strip() == "executed", "the probe failed"
        dag = wait_until(lambda: (lambda ds: ds[0] if ds and ds[0]["executions"] == 50 else None)(
            c.get("/api/v1/dags").json()["dags"]), timeout=10, what="the DAG listed")
        b.goto(c.url + "/")
        b.js("document.getElementById('token').value = %s; "
             "document.getElementById('signin').requestSubmit(); true" % json.dumps(c.token))
        b.wait("!document.getElementById('nav').hidden", "the signed-in page")
        b.goto(c.url + "/#/dags")
        row = "tr[data-dag='%s']" % dag["id"]
        b.wait(text_of(row + " td.executions") + " === '50'", "the DAG's 50 executions")
        assert b.js(text_of(row + " td.state")) == "COMPILED"
        assert "Counter.add → Counter.add" in b.js(text_of(row)), b.js(text_of(row))
        b.screenshot("dags")
        assert b.js(click(row + " a"))
        b.wait("document.querySelectorAll('#view tr[data-node]').length === 3",
               "the DAG's input and its two stages")
        assert b.js(text_of("#dag-executions")) == "50"
        # Each actor's loop, as its worker reports it (twice a second at most
        # while it moves, else every 5 s): running, 50 passes, no error.
        for a in actors:
            loop = "tr[data-loop='%s']" % a
            b.wait(text_of(loop + " td.executions") + " === '50'", "actor %s's loop: 50" % a)
            assert b.js(text_of(loop + " td.state")) == "RUNNING"
            assert b.js(text_of(loop + " td.cause")) == ""
            assert "Counter.add" in b.js(text_of(loop)), b.js(text_of(loop))
            # JSON numbers in, JSON numbers out: decoded, and copied into the slot
            b.wait(text_of(loop + " td.values") +
                   " === 'read_decoded 50, written_copied 50'", "actor %s's values" % a)
        b.screenshot("dag")
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "torn down", "the teardown failed"
        b.wait(text_of("#dag-state") + " === 'TORN_DOWN'", "the DAG TORN_DOWN")
        for a in actors:
            b.wait(text_of("tr[data-loop='%s'] td.state" % a) + " === 'STOPPED'",
                   "actor %s's loop STOPPED" % a)
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.wait(timeout=60) == 0
        b.pump()
        assert not b.errors, "console errors:\n" + "\n".join(b.errors)
        assert not b.failed, "failed requests:\n" + "\n".join(b.failed)
    finally:
        b.quit()
        if p.poll() is None:
            p.kill()
            p.wait()


test_dags_page.cluster = {"node_args": ("--num-cpus", "8")}


def proc_usage(pid):
    """(resident KiB, CPU seconds) of a process."""
    with open("/proc/%d/status" % pid) as f:
        rss = int([l for l in f if l.startswith("VmRSS:")][0].split()[1])
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_dashboard_left_open(c):
    """With PRISM_DASHBOARD_SOAK_S=N: the overview left open N seconds; prints
    what the GCS's memory and CPU time, and the page's JavaScript heap, did
    meanwhile (measured after a minute's warm-up), next to the GCS's CPU time
    over a quarter of that (at most 5 minutes) without the page. Nothing is
    asserted of them."""
    seconds = float(os.environ["PRISM_DASHBOARD_SOAK_S"])
    pid = c.gcs.p.pid
    time.sleep(5)
    idle_s = min(seconds / 4, 300)
    _, cpu_a = proc_usage(pid)
    time.sleep(idle_s)
    _, cpu_b = proc_usage(pid)
    print("dashboard soak: GCS CPU without the page %.2f s in %.0f s (%.2f%% of a core)" % (
        cpu_b - cpu_a, idle_s, 100 * (cpu_b - cpu_a) / idle_s), flush=True)
    outdir = os.path.join(c.dir, "dashboard")
    os.makedirs(outdir, exist_ok=True)
    b = Browser(outdir)
    try:
        b.goto(c.url + "/")
        b.js("document.getElementById('token').value = %s; "
             "document.getElementById('signin').requestSubmit(); true" % json.dumps(c.token))
        b.wait(text_of("#ov-resources") + ".includes('node-1')", "the node on the overview")
        time.sleep(min(60, seconds / 4))
        b.call("HeapProfiler.collectGarbage")
        heap0 = b.call("Runtime.getHeapUsage")["usedSize"]
        b.pump()
        b.reset_records()
        rss0, cpu0 = proc_usage(pid)
        t0 = time.time()
        while time.time() - t0 < seconds:
            time.sleep(5)
            b.pump()
        rss1, cpu1 = proc_usage(pid)
        elapsed = time.time() - t0
        b.call("HeapProfiler.collectGarbage")
        heap1 = b.call("Runtime.getHeapUsage")["usedSize"]
        print("dashboard soak: page left open %.0f s: %d requests, %.1f KiB transferred; GCS resident "
              "%d -> %d KiB (%+d), CPU %.2f s (%.2f%% of a core); page heap %d -> %d KiB" % (
                  elapsed, len(b.requests), b.bytes / 1024, rss0, rss1, rss1 - rss0,
                  cpu1 - cpu0, 100 * (cpu1 - cpu0) / elapsed, heap0 // 1024, heap1 // 1024))
        assert not b.errors and not b.failed, (b.errors, b.failed)
    finally:
        b.quit()


if __name__ == "__main__":
    if not (os.access(CHROMIUM, os.X_OK)):
        skip("Chromium is not installed (apt-get install chromium; make bootstrap does)")
    run([test_dashboard, test_dags_page] +
        ([test_dashboard_left_open] if os.environ.get("PRISM_DASHBOARD_SOAK_S") else []))
