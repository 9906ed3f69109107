#!/usr/bin/python3
"""prism-objectstore, black-box: real store processes (and a real nats-server
for the events) on free loopback ports, driven over the Unix socket by
prism-objectstore-testclient and over HTTP with urllib.

The helpers here are also used by test_objectstore_transfer.py."""
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

MiB = 1 << 20
TOKEN = "objectstore-test-token"
BIN = os.environ.get("PRISM_BIN_DIR", "")


def skip(reason):
    print("SKIP:", reason)
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=20.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def object_id(n, prefix="7e57"):
    return (prefix * 8)[:32] + "%08x" % n


class Nats:
    """nats-server, and a tiny subscriber speaking the NATS text protocol."""

    def __init__(self, tmp):
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not os.path.exists(exe):
            skip("nats-server is not installed")
        self.port = free_port()
        self.url = "nats://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen([exe, "-a", "127.0.0.1", "-p", str(self.port), "--auth", TOKEN],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "nats.log"), "w"))
        wait_for(self._up, what="nats-server")
        self.msgs = []
        self.lock = threading.Lock()
        self.sock = None

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def subscribe(self, subject):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.recv(4096)  # INFO
        s.sendall(b'CONNECT {"auth_token":"%s","verbose":false,"pedantic":false}\r\nSUB %s 1\r\nPING\r\n'
                  % (TOKEN.encode(), subject.encode()))
        self.sock = s
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            try:
                d = self.sock.recv(65536)
            except OSError:
                return
            if not d:
                return
            buf += d
            while b"\r\n" in buf:
                line, rest = buf.split(b"\r\n", 1)
                if line.startswith(b"PING"):
                    self.sock.sendall(b"PONG\r\n")
                    buf = rest
                elif line.startswith(b"MSG "):
                    parts = line.split()
                    n = int(parts[-1])
                    if len(rest) < n + 2:
                        break
                    with self.lock:
                        self.msgs.append((parts[1].decode(), json.loads(rest[:n])))
                    buf = rest[n + 2:]
                else:
                    buf = rest

    def events(self):
        with self.lock:
            return list(self.msgs)

    def stop(self):
        if self.sock:
            self.sock.close()
        self.proc.terminate()
        self.proc.wait(10)


class Store:
    def __init__(self, tmp, name, memory="32MiB", nats=None, extra=(), spill_batch="8MiB"):
        exe = os.path.join(BIN, "prism-objectstore")
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "store.sock")
        self.spill = os.path.join(self.dir, "spill")
        addr = os.path.join(self.dir, "address")
        if os.path.exists(addr):
            os.unlink(addr)
        args = [exe, "--socket", self.sock, "--memory", memory, "--port", "0", "--address-file", addr,
                "--token", TOKEN, "--spill-dir", self.spill, "--spill-batch", spill_batch,
                "--node-id", name] + list(extra)
        if nats:
            args += ["--nats-url", nats.url]
        self.log = open(os.path.join(self.dir, "store.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(addr) or self.proc.poll() is not None, what="store address")
        if self.proc.poll() is not None:
            raise AssertionError("store %s exited: %s" % (name, open(os.path.join(self.dir, "store.log")).read()))
        self.url = open(addr).read().strip()

    def client(self, *cmds, timeout=120, check=True, lazy=False):
        """Runs testclient commands (lists of words); returns its output lines."""
        args = [os.path.join(BIN, "prism-objectstore-testclient")] + ["--lazy"] * lazy + [self.sock]
        for i, c in enumerate(cmds):
            if i:
                args.append("--")
            args += [str(w) for w in c]
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        lines = r.stdout.strip().splitlines()
        if check and r.returncode != 0:
            raise AssertionError("testclient %s failed: %s %s" % (cmds, r.stdout, r.stderr))
        return lines

    def spawn(self, *words):
        args = [os.path.join(BIN, "prism-objectstore-testclient"), self.sock] + [str(w) for w in words]
        return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)

    def stats(self):
        line = self.client(["stats"])[0]
        return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}

    def http(self, method, path, body=None, headers=None, token=TOKEN, timeout=120):
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(30)
        self.log.close()
        return rc


def sanitizer_report(store):
    text = open(os.path.join(store.dir, "store.log")).read()
    return "ERROR: AddressSanitizer" in text or "ERROR: LeakSanitizer" in text or "runtime error" in text


def run_tests(tests):
    if not BIN or not os.path.exists(os.path.join(BIN, "prism-objectstore")):
        skip("prism-objectstore is not built (PRISM_BIN_DIR=%r)" % BIN)
    failed = 0
    for t in tests:
        tmp = tempfile.mkdtemp(prefix="prism-os-test-")
        start = time.time()
        try:
            t(tmp)
            print("PASS %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
        except Exception as e:  # report and go on with the next test
            failed += 1
            print("FAIL %s: %r" % (t.__name__, e), flush=True)
            for root, _, files in os.walk(tmp):
                for f in files:
                    if f.endswith(".log"):
                        print("--- %s:\n%s" % (f, open(os.path.join(root, f)).read()[-3000:]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


# --- tests ---

def test_round_trips(tmp):
    s = Store(tmp, "a")
    try:
        a, b = object_id(1), object_id(2)
        out = s.client(["put", a, 100000, 1, "pin"], ["get", a], ["contains", a], ["contains", b],
                       ["put", a, 10, 1], ["unpin", a], ["pin", a], ["delete", a], ["contains", a],
                       ["get", a], check=False)
        sha = out[0].split("sha256=")[1]
        expect(out[1].startswith("OK size=100000 sha256=" + sha), out[1])
        expect(out[1].endswith("metadata=application/x-test"), out[1])
        expect(out[2] == "OK memory" and out[3] == "OK absent", out)
        expect(out[4].startswith("ERR 3 "), "a second create of one ID is refused: " + out[4])
        expect(out[5:8] == ["OK"] * 3 and out[8] == "OK absent", out)
        expect(out[9].startswith("ERR 2 "), out[9])
        # abort: an unsealed object disappears with its space
        out = s.client(["wait", b, 50], ["stats"], check=False)
        expect(out[0].startswith("ERR 4 "), "a get of a missing object times out: " + out[0])
        st = s.stats()
        expect(st["used"] == 0 and st["objects"] == 0, st)
    finally:
        expect(s.stop() == 0, "clean exit")
        expect(not sanitizer_report(s), "sanitizer report in the store log")


def test_large_arena(tmp):
    """An arena over 1 GiB is not mapped whole by each client at connect; its large creates
    map their own pages (docs/objectstore.md#the-arena): what they write reads back the
    same, in this client and in another."""
    s = Store(tmp, "large", memory="1100MiB")
    try:
        a, b = object_id(1), object_id(2)
        size = 8 << 20  # at least a MiB: created pages mapped at once
        out = s.client(["put", a, size, 1], ["put", b, size, 2], ["get", a], ["get", b])
        for put, get in ((out[0], out[2]), (out[1], out[3])):
            sha = put.split("sha256=")[1]
            expect(get.startswith("OK size=%d sha256=%s" % (size, sha)), (put, get))
        expect(out[0] != out[1], "two seeds, two contents: %s" % out[:2])
        again = s.client(["get", a], ["get", b])
        expect(again == out[2:4], (again, out[2:4]))
    finally:
        expect(s.stop() == 0, "clean exit")
        expect(not sanitizer_report(s), "sanitizer report in the store log")


def test_lazy_client(tmp):
    """A lazy client (a worker's) maps none of the arena at connect, and the chunks of
    its large creates and gets as they come; a client that is not lazy maps an arena of
    up to 1 GiB whole (docs/objectstore.md#the-arena). Objects across chunk edges read
    back the same in both, and a small one faults in only its own pages."""
    s = Store(tmp, "lazy", memory="64MiB")
    try:
        rss = lambda line: int(line.split("rss=")[1])
        whole = s.client(["rss"])
        expect(rss(whole[0]) >= 60 * 1024, "mapped whole at connect: %s" % whole)
        # sizes around the 64 KiB threshold (with the metadata), and across 2 MiB chunks
        sizes = [1000, 60000, 64 * 1024, 3 * MiB + 12345, 5 * MiB + 1]
        cmds = [["rss"]]
        for i, size in enumerate(sizes):
            cmds += [["put", object_id(i), size, i + 1, "pin"], ["rss"]]
        out = s.client(*cmds, lazy=True)
        expect(rss(out[0]) < 1024, "nothing mapped at connect: %s" % out[0])
        expect(rss(out[2]) < 1024 and rss(out[4]) < 1024, "small puts map their pages: %s" % out)
        # Whole 2 MiB chunks, not only the pages written: any 3 MiB range spans two
        # chunks (4 MiB mapped), any 5 MiB one three (6 MiB).
        expect(rss(out[8]) >= 4 * 1024, "a 3 MiB put maps its chunks whole: %s" % out)
        expect(rss(out[10]) - rss(out[8]) >= 5 * 1024, "and a 5 MiB one: %s" % out)
        expect(rss(out[10]) >= 6 * 1024, "its three chunks whole: %s" % out)
        shas = [line.split("sha256=")[1] for line in out[1::2]]
        # read back lazily (a fresh process: it maps the chunks of each large get) and whole
        for lazy in (True, False):
            got = s.client(*[["get", object_id(i)] for i in range(len(sizes))] + [["rss"]],
                           lazy=lazy)
            for i, size in enumerate(sizes):
                expect(got[i].startswith("OK size=%d sha256=%s" % (size, shas[i])), got[i])
            if lazy:
                expect(3 * 1024 + 5 * 1024 <= rss(got[-1]) < 20 * 1024, got[-1])
    finally:
        expect(s.stop() == 0, "clean exit")
        expect(not sanitizer_report(s), "sanitizer report in the store log")


def huge_pages():
    """(HugePages_Free, Hugepagesize in KiB) of /proc/meminfo."""
    info = dict(l.split(":", 1) for l in open("/proc/meminfo"))
    return int(info["HugePages_Free"].split()[0]), int(info["Hugepagesize"].split()[0])


def test_huge_pages(tmp):
    """--huge-pages: the arena in reserved huge pages; without enough of them the store
    refuses to start and says where they are reserved; with them (root reserves 16 here, and
    gives them back), objects round-trip and the arena holds its pages."""
    path = "/proc/sys/vm/nr_hugepages"
    before = int(open(path).read())
    root = os.geteuid() == 0 and os.access(path, os.W_OK)
    try:
        if root:
            with open(path, "w") as f:
                f.write("0")
        if huge_pages()[0] < 16:
            try:
                Store(tmp, "none", extra=["--huge-pages"])
                raise AssertionError("a store started without huge pages reserved")
            except AssertionError as e:
                expect("nr_hugepages" in str(e) and "huge pages" in str(e), str(e))
        if not root:
            print("  not root: no huge pages reserved here, only the refusal checked")
            return
        with open(path, "w") as f:
            f.write(str(16))
        free, size_kib = huge_pages()
        if free < 16 or size_kib != 2048:
            print("  only %d huge pages of %d KiB could be reserved: the rest not checked"
                  % (free, size_kib))
            return
        s = Store(tmp, "huge", memory="33MiB", extra=["--huge-pages"])  # rounded to 32 MiB
        try:
            expect(huge_pages()[0] == 0, "the arena holds its 16 pages: %s" % (huge_pages(),))
            a = object_id(1)
            out = s.client(["put", a, 5 << 20, 3], ["get", a])
            expect(out[1].startswith("OK size=%d sha256=%s" % (5 << 20, out[0].split("sha256=")[1])),
                   out)
            st = s.stats()
            expect(st["capacity"] == 32 << 20, st)
        finally:
            expect(s.stop() == 0, "clean exit")
            expect(not sanitizer_report(s), "sanitizer report in the store log")
        expect(huge_pages()[0] == 16, "the pages are free again: %s" % (huge_pages(),))
    finally:
        if root:
            with open(path, "w") as f:
                f.write(str(before))


def test_concurrent_clients(tmp):
    s = Store(tmp, "a", memory="48MiB")
    try:
        procs = [s.spawn("stress", 300, 1000 + i) for i in range(4)]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        for p, o in zip(procs, outs):
            expect(p.returncode == 0 and o.startswith("OK stress 300"), o)
        st = s.stats()
        expect(st["used"] == 0 and st["objects"] == 0 and st["clients"] == 1, st)
    finally:
        expect(s.stop() == 0, "clean exit")


def test_spill_three_times_the_arena(tmp):
    s = Store(tmp, "a", memory="32MiB")
    try:
        n, size = 24, 4 * MiB  # 96 MiB of pinned objects through a 32 MiB arena
        out = s.client(["fill", "5b" * 16, n, size], ["stats"])
        expect(out[0] == "OK filled %d" % n, out)
        st = s.stats()
        expect(st["used"] <= st["capacity"], st)
        expect(st["spills"] >= n - 7 and st["restores"] > 0 and st["evictions"] == 0, st)
        expect(st["spill_files"] < st["spills"], "spilling is batched: %s" % st)
        files = os.listdir(s.spill)
        expect(files, "spill files exist")
        # contains reports spilled copies; a get restores them
        oid = ("5b" * 16) + "%08x" % 0
        expect(s.client(["contains", oid])[0] in ("OK spilled", "OK memory"), "contains")
        s.client(*[["delete", ("5b" * 16) + "%08x" % i] for i in range(n)])
        expect(os.listdir(s.spill) == [], "spill files removed with their objects: %s" % os.listdir(s.spill))
        st = s.stats()
        expect(st["used"] == 0 and st["objects"] == 0, st)
    finally:
        expect(s.stop() == 0, "clean exit")


def test_eviction_order(tmp):
    s = Store(tmp, "a", memory="32MiB")
    try:
        ids = [object_id(i) for i in range(5)]
        size = 7 * MiB
        for i in range(4):
            s.client(["put", ids[i], size, i])
        s.client(["get", ids[0]])  # 0 becomes the most recently used
        s.client(["put", ids[4], size, 4])  # room for it: 1 goes
        got = [s.client(["contains", x])[0] for x in ids]
        expect(got == ["OK memory", "OK absent", "OK memory", "OK memory", "OK memory"], got)
        expect(s.stats()["evictions"] == 1, s.stats())
    finally:
        s.stop()


def test_killed_clients(tmp):
    s = Store(tmp, "a")
    try:
        a, b = object_id(1), object_id(2)
        p = s.spawn("create-hang", a, 8 * MiB)
        expect(p.stdout.readline().startswith("OK created"), "created")
        expect(s.client(["contains", a])[0] == "OK unsealed", "unsealed while written")
        p.kill()
        p.wait()
        wait_for(lambda: s.client(["contains", a])[0] == "OK absent", what="abort of the dead writer's object")
        expect(s.stats()["used"] == 0, "space reclaimed")
        # a reader killed while holding a reference
        s.client(["put", b, MiB, 2])
        p = s.spawn("hold", b)
        expect(p.stdout.readline().startswith("OK held"), "held")
        st, _, body = s.http("GET", "/api/v1/objects/%s/info" % b)
        expect(json.loads(body)["readers"] == 1, body)
        p.kill()
        p.wait()
        wait_for(lambda: json.loads(s.http("GET", "/api/v1/objects/%s/info" % b)[2])["readers"] == 0,
                 what="references dropped")
    finally:
        s.stop()


def test_too_large(tmp):
    s = Store(tmp, "a", memory="16MiB")
    try:
        out = s.client(["put", object_id(1), 64 * MiB, 1], check=False)
        expect(out[0].startswith("ERR 6 ") and "larger than" in out[0], out)
        # a full arena of objects being written: out of memory, not a hang
        p = s.spawn("create-hang", object_id(2), 12 * MiB)
        expect(p.stdout.readline().startswith("OK created"), "created")
        out = s.client(["put", object_id(3), 8 * MiB, 1], check=False)
        expect(out[0].startswith("ERR 5 ") and "out of memory" in out[0], out)
        p.kill()
        p.wait()
        st, _, body = s.http("PUT", "/api/v1/objects/" + object_id(4), b"x" * (17 * MiB))
        expect(st == 413, "HTTP put larger than the arena: %d %s" % (st, body[:200]))
    finally:
        s.stop()


def test_garbage_frames(tmp):
    s = Store(tmp, "a")
    try:
        frames = [
            b"\x00" * 64,  # type 0
            struct.pack("<IHH", 1 << 30, 2, 0),  # a frame past the cap
            struct.pack("<IHH", 8, 1, 0) + struct.pack("<II", 1, 1) + struct.pack("<IHH", 3, 99, 0) + b"abc",
            struct.pack("<IHH", 20, 3, 0) + b"\x01" * 20,  # a request before hello
            os.urandom(4096),
        ]
        keep = s.spawn("hold", object_id(9))  # fails (absent) but proves service; see below
        keep.wait()
        for f in frames:
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(10)
            c.connect(s.sock)
            try:
                c.sendall(f)
            except OSError:
                pass
            data = b""
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    data += d
            except ConnectionResetError:
                pass
            c.close()
            out = s.client(["put", object_id(1), 1000, 1], ["get", object_id(1)], ["delete", object_id(1)])
            expect(out[1].startswith("OK size=1000"), "the store still serves others")
        expect(s.stats()["clients"] == 1, "the garbage connections are gone")
    finally:
        expect(s.stop() == 0, "clean exit")
        expect(not sanitizer_report(s), "sanitizer report in the store log")


def test_store_restart(tmp):
    s = Store(tmp, "a")
    p = s.spawn("wait", object_id(1), 600000)
    time.sleep(0.5)
    s.stop(signal.SIGKILL)
    out, _ = p.communicate(timeout=20)
    expect(out.startswith("ERR 13 "), "a waiting client reports the lost store: " + out)
    s2 = Store(tmp, "a")  # restarts on the same socket path
    try:
        out = s2.client(["put", object_id(1), 10, 1], ["get", object_id(1)])
        expect(out[1].startswith("OK size=10"), out)
        # A client that lives across a restart (a worker) connects again by
        # itself; what it still holds from the old store stays readable, and
        # its release does not reach the new store, which may hold an object
        # of that ID for it too.
        a, b = object_id(2), object_id(3)
        words = ["put", a, MiB, 7, "pin", "--", "keep", a, "--", "line", "--",
                 "put", a, MiB, 8, "pin", "--", "keep", a, "--", "unkeep", a, "--",
                 "line", "--", "put", b, 10, 1, "--", "get", b, "--", "stats"]
        p = subprocess.Popen([os.path.join(BIN, "prism-objectstore-testclient"), s2.sock] +
                             [str(w) for w in words],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            expect(p.stdout.readline().startswith("OK sha256="), "put")
            kept = p.stdout.readline()
            expect(kept.startswith("OK kept"), kept)
            expect(p.stdout.readline().startswith("OK waiting"), "waiting")
            s2.stop(signal.SIGKILL)
            s3 = Store(tmp, "a")
            try:
                p.stdin.write("go\n")
                p.stdin.flush()
                lines = [p.stdout.readline().strip() for _ in range(4)]
                expect(lines[0].startswith("OK sha256=") and lines[1].startswith("OK kept"), lines)
                new_sha = lines[1].split()[2]
                expect(new_sha != kept.split()[2], "the new object has other bytes: %r" % lines)
                expect(lines[2] == "OK " + kept.split()[2], "the old pointer's bytes: %r" % lines)
                expect(lines[3] == "OK waiting", lines)
                st, _, body = s3.http("GET", "/api/v1/objects/%s/info" % a)
                expect(json.loads(body)["readers"] == 1, "the new copy is still held: %s" % body)
                out, _ = p.communicate("go\n", timeout=30)
                lines = out.splitlines()
                expect(p.returncode == 0 and lines[1].startswith("OK size=10"), out)
                expect(" objects=2 " in lines[2] and " clients=1" in lines[2], out)
            finally:
                s3.stop()
        finally:
            if p.poll() is None:
                p.kill()
    finally:
        s2.stop()


def test_put_keeps_a_reference(tmp):
    """A small put leaves its client a reference to the object: a get of it is
    answered without the store (stopped here), and the reference goes with
    the client's next request. A delete by that client ends it at once."""
    s = Store(tmp, "a")
    a, b = object_id(1), object_id(2)
    words = ["putsmall", a, 1000, 5, "--", "line", "--", "get", a, "--", "line", "--",
             "stats", "--", "line", "--", "putsmall", b, 10, 1, "--", "keep", b, "--",
             "delete", b, "--", "contains", b, "--", "get", b, "--", "unkeep", b, "--", "get", a,
             "--", "stats"]
    p = subprocess.Popen([os.path.join(BIN, "prism-objectstore-testclient"), s.sock] +
                         [str(w) for w in words],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def readers(oid):
        return json.loads(s.http("GET", "/api/v1/objects/%s/info" % oid)[2])["readers"]

    try:
        put = p.stdout.readline().strip()
        expect(put.startswith("OK sha256="), put)
        expect(p.stdout.readline().strip() == "OK waiting", "waiting")
        expect(readers(a) == 1, "the put's reference")
        s.proc.send_signal(signal.SIGSTOP)
        try:
            p.stdin.write("go\n")
            p.stdin.flush()
            ready, _, _ = select.select([p.stdout], [], [], 20)
            expect(ready, "the get was answered while the store was stopped")
            got = p.stdout.readline().strip()
            expect(got == "OK size=1000 %s metadata=application/x-test" % put.split()[1], got)
            expect(p.stdout.readline().strip() == "OK waiting", "waiting")
        finally:
            s.proc.send_signal(signal.SIGCONT)
        expect(readers(a) == 1, "kept until the client's next request")
        p.stdin.write("go\n")
        p.stdin.flush()
        before = p.stdout.readline()
        expect(" objects=1 " in before, before)
        expect(p.stdout.readline().strip() == "OK waiting", "waiting")
        expect(readers(a) == 0, "released with the next request")
        out, _ = p.communicate("go\n", timeout=30)
        lines = out.splitlines()
        expect(p.returncode == 1 and len(lines) == 8, out)  # 1: the get of b fails
        # b, deleted while read through the kept reference: gone for others
        # and for this client's later gets, its bytes intact for the reader
        # until it lets go
        expect(lines[1] == "OK kept " + lines[0].split()[1] and lines[3] == "OK absent", out)
        expect(lines[4].startswith("ERR 2 "), "a get after the delete asks the store: %s" % out)
        expect(lines[5] == "OK " + lines[0].split()[1], out)
        expect(lines[6].startswith("OK size=1000 "), out)
        # b's space is free again: only a is left
        used = [line.split(" used=")[1].split()[0] for line in (before, lines[7])]
        expect(" objects=1 " in lines[7] and used[0] == used[1], (before, out))
    finally:
        if p.poll() is None:
            p.kill()
        expect(s.stop() == 0, "clean exit")


def test_put_reference_across_restart(tmp):
    """The store restarts while a client reads through its put's reference:
    the bytes stay readable, and nothing of the old reference reaches the
    new store."""
    s = Store(tmp, "a")
    c = object_id(3)
    words = ["putsmall", c, 5000, 9, "--", "keep", c, "--", "line", "--", "contains", c, "--",
             "unkeep", c, "--", "get", c, "--", "putsmall", c, 10, 2, "--", "get", c, "--",
             "stats"]
    p = subprocess.Popen([os.path.join(BIN, "prism-objectstore-testclient"), s.sock] +
                         [str(w) for w in words],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    s2 = None
    try:
        sha = p.stdout.readline().split()[1]
        expect(p.stdout.readline().strip() == "OK kept " + sha, "kept")
        expect(p.stdout.readline().strip() == "OK waiting", "waiting")
        s.stop(signal.SIGKILL)
        s2 = Store(tmp, "a")
        out, _ = p.communicate("go\n", timeout=30)
        lines = out.splitlines()
        expect(p.returncode == 1 and len(lines) == 6, out)  # 1: the get of the old c fails
        expect(lines[0] == "OK absent" and lines[1] == "OK " + sha, out)
        expect(lines[2].startswith("ERR 2 "), "the new store is asked, not the old reference: %s" % out)
        expect(lines[4].startswith("OK size=10 ") and " objects=1 " in lines[5], out)
        expect(json.loads(s2.http("GET", "/api/v1/objects/%s/info" % c)[2])["readers"] == 0,
               "the reference went back with the stats request")
    finally:
        if p.poll() is None:
            p.kill()
        if s2:
            expect(s2.stop() == 0, "clean exit")


def test_http_and_events(tmp):
    nats = Nats(tmp)
    nats.subscribe("prism.object.>")
    s = Store(tmp, "node1", memory="16MiB", nats=nats)
    try:
        time.sleep(0.5)  # the store's bus connection comes up in the background
        oid = object_id(1)
        st, _, _ = s.http("PUT", "/api/v1/objects/" + oid, b"hi", token=None)
        expect(st == 401, "a token is required: %d" % st)
        st, _, body = s.http("PUT", "/api/v1/objects/" + oid, bytes(range(256)) * 4,
                             {"Content-Type": "application/x-bytes"})
        expect(st == 201 and json.loads(body)["size"] == 1024, body)
        st, h, body = s.http("GET", "/api/v1/objects/" + oid)
        expect(st == 200 and body == bytes(range(256)) * 4 and h["Content-Type"] == "application/x-bytes", h)
        st, h, body = s.http("GET", "/api/v1/objects/" + oid, headers={"Range": "bytes=10-19"})
        expect(st == 206 and body == bytes(range(10, 20)) and h["Content-Range"] == "bytes 10-19/1024", h)
        st, h, body = s.http("GET", "/api/v1/objects/" + oid, headers={"Range": "bytes=-4"})
        expect(st == 206 and body == bytes(range(252, 256)), body)
        st, _, _ = s.http("GET", "/api/v1/objects/" + oid, headers={"Range": "bytes=5000-"})
        expect(st == 416, "unsatisfiable range: %d" % st)
        st, _, body = s.http("POST", "/api/v1/objects", b"x" * 5000, {"Content-Type": "text/plain"})
        new = json.loads(body)["object_id"]
        expect(st == 201 and len(new) == 40, body)
        st, _, body = s.http("GET", "/api/v1/objects/%s/info" % new)
        info = json.loads(body)
        expect(info["size"] == 5000 and info["content_type"] == "text/plain" and info["pinned"], info)
        expect(s.http("GET", "/api/v1/objects/" + object_id(99))[0] == 404, "absent object")
        expect(s.http("GET", "/api/v1/objects/nothex")[0] == 400, "bad id")
        # a Content-Type that is not ASCII is refused before anything is stored
        before = json.loads(s.http("GET", "/api/v1/stats")[2])["objects"]
        for method, path in (("PUT", "/api/v1/objects/" + object_id(98)), ("POST", "/api/v1/objects")):
            st, _, body = s.http(method, path, b"x", {"Content-Type": "text/\xff"})
            expect(st == 400 and json.loads(body)["error"]["code"] == "bad_request", (st, body))
        expect(s.http("GET", "/api/v1/objects/" + object_id(98))[0] == 404, "nothing stored")
        expect(json.loads(s.http("GET", "/api/v1/stats")[2])["objects"] == before, "no object made")
        # spill everything: 20 MiB of pinned objects through a 16 MiB arena
        for i in range(5):
            st, _, _ = s.http("PUT", "/api/v1/objects/" + object_id(10 + i), b"%d" % i * (4 * MiB))
            expect(st == 201, "put %d" % i)
            if i == 0:  # pulled by another store: its events are published from now on
                st, _, _ = s.http("GET", "/api/v1/objects/%s/info?pull=1" % object_id(10))
                expect(st == 200, "pull info")
        st, _, body = s.http("GET", "/api/v1/objects/" + object_id(10))
        expect(st == 200 and body == b"0" * (4 * MiB), "restored through HTTP")
        # a small object is announced only once another store pulled it: `new`
        # (never pulled) goes silently, `oid` after a pull with an event
        expect(s.http("GET", "/api/v1/objects/%s/info?pull=1" % oid)[0] == 200, "pull info")
        expect(s.http("DELETE", "/api/v1/objects/" + new)[0] == 200, "delete unpulled")
        expect(s.http("DELETE", "/api/v1/objects/" + oid)[0] == 200, "delete")
        st, _, body = s.http("GET", "/api/v1/stats")
        stats = json.loads(body)
        expect(stats["node_id"] == "node1" and stats["spills_total"] > 0 and stats["restores_total"] > 0, stats)
        time.sleep(1.2)  # counters reach /metrics with the next cron
        st, _, body = s.http("GET", "/metrics")
        text = body.decode()
        for m in ("prism_objectstore_used_bytes", "prism_objectstore_capacity_bytes", "prism_objectstore_objects",
                  "prism_objectstore_spilled_bytes", "prism_objectstore_evictions_total",
                  "prism_objectstore_restores_total", "prism_objectstore_transfer_bytes_total",
                  "prism_objectstore_disk_jobs", "prism_objectstore_disk_errors_total"):
            expect(m in text, "metric " + m)
        ev = wait_for(lambda: [e for e in nats.events() if e[0] == "prism.object.removed"], what="removed event")
        expect(ev[0][1] == {"object_id": oid, "node_id": "node1", "size": 1024, "primary": True,
                            "store_address": s.url}, ev)
        spilled = [e[1]["object_id"] for e in nats.events() if e[0] == "prism.object.spilled"]
        expect(spilled == [object_id(10)], spilled)
        # One publisher, so events arrive in order: by the time `oid`'s removal
        # came, any other would have come before it. Objects no other store
        # pulled are not announced: puts (nothing here was pulled from
        # elsewhere), `new`'s deletion, the other spills.
        others = [e for e in nats.events() if e[0] == "prism.object.added" or
                  e[1].get("object_id") not in (oid, object_id(10))]
        expect(not others, others)
    finally:
        s.stop()
        nats.stop()


def test_http_get_waits_for_the_seal(tmp):
    """A GET with timeout_ms waits for an object that is not there yet and returns it once it is
    sealed (a PUT 0.3 s later), well before its own timeout; an object that never comes is a 404
    once the timeout passed."""
    s = Store(tmp, "node1", memory="16MiB")
    try:
        oid = object_id(7)
        got = {}

        def get():
            t0 = time.monotonic()
            got["reply"] = s.http("GET", "/api/v1/objects/%s?timeout_ms=20000" % oid)
            got["at"] = time.monotonic()
            got["took"] = got["at"] - t0

        t = threading.Thread(target=get)
        t.start()
        time.sleep(0.3)
        put_sent = time.monotonic()
        st, _, _ = s.http("PUT", "/api/v1/objects/" + oid, b"late" * 1000)
        put_done = time.monotonic()
        expect(st == 201, "put: %d" % st)
        t.join(30)
        st, _, body = got["reply"]
        expect(st == 200 and body == b"late" * 1000, "the waiting GET: %d" % st)
        expect(got["took"] < 15, "the GET waited %.2f s of its 20 s" % got["took"])
        print("  the waiting GET returned %.1f ms after the PUT was sent (which took %.1f ms)"
              % ((got["at"] - put_sent) * 1e3, (put_done - put_sent) * 1e3))
        t0 = time.monotonic()
        st, _, _ = s.http("GET", "/api/v1/objects/%s?timeout_ms=300" % object_id(8))
        expect(st == 404 and time.monotonic() - t0 >= 0.29, "an object that never comes: %d" % st)
    finally:
        s.stop()


if __name__ == "__main__":
    sys.exit(run_tests([test_round_trips, test_large_arena, test_lazy_client, test_huge_pages, test_concurrent_clients,
                        test_spill_three_times_the_arena,
                        test_eviction_order, test_killed_clients, test_too_large, test_garbage_frames,
                        test_store_restart, test_put_keeps_a_reference,
                        test_put_reference_across_restart, test_http_and_events,
                        test_http_get_waits_for_the_seal]))
