"""The prism command end to end: `prism up` starts a real cluster in a temporary
PRISM_HOME, jobs are submitted and followed through the CLI, `prism down` stops it.

Belongs in tests/integration/ (it imports harness.py from there)."""
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import urllib.request

from harness import BIN, find_nats, skip, wait_until

PRISM = os.path.join(BIN, "prism")


class Home:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="prism-cli-")
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PRISM_ADDRESS", "PRISM_TOKEN")}
        self.env["PRISM_HOME"] = self.dir
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1")

    def prism(self, *args, check=None, timeout=120):
        r = subprocess.run([PRISM] + list(args), env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check is not None and r.returncode != check:
            raise AssertionError("prism %s: status %d, want %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), r.returncode, check, r.stdout, r.stderr))
        return r

    def ok(self, *args, **kw):
        return self.prism(*args, check=0, **kw).stdout

    def pids(self):
        path = os.path.join(self.dir, "pids")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [int(line.split()[1]) for line in f if line.strip()]

    def sanitizer_reports(self):
        logs = os.path.join(self.dir, "logs")
        found = []
        for name in os.listdir(logs) if os.path.isdir(logs) else []:
            with open(os.path.join(logs, name), errors="replace") as f:
                if "Sanitizer" in f.read():
                    found.append(name)
        return found

    def close(self):
        self.prism("down")
        shutil.rmtree(self.dir, ignore_errors=True)


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def listening(pid):
    """The (address, port) of every TCP socket process `pid` listens on."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % (pid, table)) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                    continue
                addr, port = cols[1].split(":")
                raw = bytes.fromhex(addr)
                if len(raw) == 4:
                    host = socket.inet_ntop(socket.AF_INET, raw[::-1])
                else:  # four little-endian words
                    host = socket.inet_ntop(socket.AF_INET6, b"".join(
                        raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                found.add((host, int(port, 16)))
    return found


def test_up_status_down(h):
    out = h.ok("up", "--nodes", "2")
    assert "2 nodes alive" in out and "dashboard: http://127.0.0.1:" in out, out
    for name in ("token", "nats.conf"):
        mode = stat.S_IMODE(os.stat(os.path.join(h.dir, name)).st_mode)
        assert mode == 0o600, (name, oct(mode))
    with open(os.path.join(h.dir, "address")) as f:
        assert f.read().startswith("http://127.0.0.1:")
    pids = h.pids()
    # nats-server, GCS, scheduler, an object store and a node agent per node, dataservice
    assert len(pids) == 8 and all(running(p) for p in pids), pids
    # nats-server serves its clients on loopback and no monitoring at all (its
    # /connz?auth=1 would show the token to anyone on the host), on a port
    # it bound itself (no port picked before it started, which another user
    # could take in between) and named in its ports file in run/
    with open(os.path.join(h.dir, "pids")) as f:
        nats = [int(l.split()[1]) for l in f if l.split()[0] == "nats-server"]
    with open(os.path.join(h.dir, "nats.conf")) as f:
        assert 'listen: "127.0.0.1:-1"' in f.read()
    assert len(nats) == 1, nats
    with open(os.path.join(h.dir, "run", "nats-server_%d.ports" % nats[0])) as f:
        port = int(json.load(f)["nats"][0].rsplit(":", 1)[1])
    assert listening(nats[0]) == {("127.0.0.1", port)}, listening(nats[0])
    out = h.ok("status")
    assert "2 alive, 0 dead" in out and "node-1" in out and "node-2" in out, out
    assert re.search(r"services: +gcs ALIVE, (dataservice ALIVE, scheduler ALIVE|scheduler ALIVE, "
                     r"dataservice ALIVE)?", out) and "scheduler ALIVE" in out, out
    # The dashboard: its URL, which serves the page without the token.
    with open(os.path.join(h.dir, "address")) as f:
        address = f.read().strip()
    url = h.ok("dashboard").strip()
    assert url == address + "/", (url, address)
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200 and b"/dashboard/app.js" in r.read()
    r = h.prism("--token", "wrong", "dashboard", check=1)
    assert r.stdout == "" and "token" in r.stderr, r
    # --open hands the URL to the desktop's opener (xdg-open, first on PATH)
    opener = os.path.join(h.dir, "opener")
    os.makedirs(opener, exist_ok=True)
    opened = os.path.join(h.dir, "opened")
    with open(os.path.join(opener, "xdg-open"), "w") as f:
        f.write('#!/bin/sh\nprintf "%%s" "$1" > %s\n' % opened)
    os.chmod(os.path.join(opener, "xdg-open"), 0o755)
    env = dict(h.env, PATH=opener + os.pathsep + h.env.get("PATH", os.defpath))
    r = subprocess.run([PRISM, "dashboard", "--open"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == url, r
    with open(opened) as f:
        assert f.read() == url
    assert json.loads(h.ok("status", "--json"))["nodes_alive"] == 2
    r = h.prism("up", check=1)
    assert "already running" in r.stderr, r.stderr
    out = h.ok("down")
    assert "8 processes" in out, out
    assert not any(running(p) for p in pids), pids
    assert not os.path.exists(os.path.join(h.dir, "pids"))
    assert not os.path.exists(os.path.join(h.dir, "address"))
    assert "No cluster" in h.ok("down")
    r = h.prism("status", check=1)
    assert "run `prism up`" in r.stderr, r.stderr
    assert not h.sanitizer_reports(), h.sanitizer_reports()


def test_driver_uses_the_local_store(h):
    """A driver started by hand on the machine of `prism up` (its address from
    PRISM_HOME, or PRISM_ADDRESS naming the same cluster) uses node-1's store
    as its own, as a job's driver there does: a large put is stored there,
    on that node, not kept in the driver."""
    probe = os.path.join(BIN, "task_probe")
    if not os.access(probe, os.X_OK):
        skip("task_probe is not built")
    h.ok("up", "--nodes", "2")
    with open(os.path.join(h.dir, "address")) as f:
        address = f.read().strip()
    with open(os.path.join(h.dir, "token")) as f:
        token = f.read().strip()

    def get(path):
        req = urllib.request.Request(address + path, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    nodes = {n["name"]: n["node_id"] for n in get("/api/v1/nodes?state=ALIVE")["nodes"]}
    env = {k: v for k, v in h.env.items() if not k.startswith("PRISM_STORE")}
    for extra in ({}, {"PRISM_ADDRESS": address, "PRISM_TOKEN": token}):
        p = subprocess.Popen([probe, "hold", nodes["node-2"]], env=dict(env, **extra),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            ids = {}
            for line in p.stdout:
                if line.strip() == "ready":
                    break
                name, value = line.split()
                ids[name] = value
            assert "big" in ids, (ids, p.stderr.read())

            def big():
                objs = get("/api/v1/objects?owner=" + ids["owner"])["objects"]
                return next((o for o in objs if o["object_id"] == ids["big"]), None)
            o = wait_until(big, what="the driver's large put, listed")
            assert (o["location"], o["node_id"], o["owner_node_id"]) == \
                ("store", nodes["node-1"], nodes["node-1"]), (extra, o)
        finally:
            p.communicate(input="\n", timeout=60)
        assert p.returncode == 0, p.returncode


def test_submit_quoting_and_wait(h):
    h.ok("up")
    jid = h.ok("job", "submit", "--", "echo", "a  b", "it's").strip()
    assert len(jid) == 32, jid
    h.ok("job", "logs", "-f", jid)
    assert h.ok("job", "logs", jid) == "a  b it's\n"
    r = h.prism("job", "submit", "--wait", "--", "seq 1 100 | paste -sd+ | bc", check=0)
    assert r.stdout == "5050\n" and "SUCCEEDED" in r.stderr, r
    r = h.prism("job", "submit", "--wait", "--", "echo failing; exit 3", check=1)
    assert "failing" in r.stdout and "FAILED (exit code 3)" in r.stderr, r


def test_options_reach_the_job(h):
    h.ok("up")
    jid = h.ok("job", "submit", "--submission-id", "cli-opts", "-e", "A=1 2", "--env", "B=x=y",
               "-m", "team=ml", "--num-cpus", "0.5", "--memory", "1MiB", "--", 'echo "$A|$B"').strip()
    assert jid == "cli-opts"
    h.ok("job", "logs", "--follow", jid)
    job = json.loads(h.ok("job", "status", "--json", jid))
    assert job["env"] == {"A": "1 2", "B": "x=y"} and job["metadata"] == {"team": "ml"}, job
    assert job["resources"]["CPU"] == 0.5 and job["resources"]["memory"] == 1 << 20, job
    assert h.ok("job", "logs", jid) == "1 2|x=y\n"
    r = h.prism("job", "submit", "--submission-id", "cli-opts", "--", "true", check=1)
    assert r.stderr.startswith("prism: ") and "cli-opts" in r.stderr, r.stderr
    lines = h.ok("job", "list", "--json").splitlines()
    assert [json.loads(l)["job_id"] for l in lines] == ["cli-opts"], lines
    assert "cli-opts" in h.ok("job", "list", "--state", "SUCCEEDED")


def test_follow_stop_delete(h):
    h.ok("up")
    jid = h.ok("job", "submit", "--", "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done").strip()
    out = h.ok("job", "logs", "-f", jid)
    assert out == "".join("line %d\n" % i for i in range(1, 6)), out
    jid = h.ok("job", "submit", "--", "echo started; exec sleep 600").strip()
    wait_until(lambda: "started" in h.ok("job", "logs", jid), what="driver output")
    assert "Stop requested" in h.ok("job", "stop", jid)
    h.ok("job", "logs", "-f", jid, timeout=30)
    assert json.loads(h.ok("job", "status", "--json", jid))["state"] == "STOPPED"
    h.ok("job", "delete", jid)
    r = h.prism("job", "status", jid, check=1)
    assert r.stderr.startswith("prism: "), r.stderr


def test_package_working_dir(h):
    h.ok("up")
    src = os.path.join(h.dir, "src")
    os.makedirs(src)
    with open(os.path.join(src, "data.txt"), "w") as f:
        f.write("42\n")
    sha = h.ok("package", "upload", src).strip()
    assert len(sha) == 64, sha
    r = h.prism("job", "submit", "--wait", "--working-dir", sha, "--", "cat data.txt", check=0)
    assert r.stdout == "42\n", r
    r = h.prism("job", "submit", "--wait", "--working-dir", src, "--", "cat", "data.txt", check=0)
    assert r.stdout == "42\n", r


def test_job_packages(h):
    h.ok("up")
    lib = os.path.join(h.dir, "libdemo.so")
    with open(lib, "wb") as f:
        f.write(b"stands in for a task library")
    other = h.ok("package", "upload", lib).strip()
    with open(lib, "wb") as f:
        f.write(b"another task library")
    r = h.prism("job", "submit", "--wait", "--package", "demo=" + lib, "--package", other, "--",
                'echo "$PRISM_PACKAGE_DEMO|$PRISM_PACKAGES"', check=0)
    sha = hashlib.sha256(b"another task library").hexdigest()
    assert r.stdout == "%s|%s %s\n" % (sha, sha, other), r
    assert "Uploaded %s as package %s" % (lib, sha) in r.stderr, r.stderr
    job = json.loads(h.ok("job", "list", "--json").splitlines()[0])
    assert job["packages"] == [{"sha256": sha, "name": "demo"},
                               {"sha256": other, "name": None}], job
    out = h.ok("job", "status", job["job_id"])
    assert "packages:         demo=%s\n" % sha in out and " %s\n" % other in out, out
    r = h.prism("job", "submit", "--package", "no-such-file.so", "--", "true", check=1)
    assert "neither a package sha256 nor a local file" in r.stderr, r.stderr
    r = h.prism("job", "submit", "--package", "0" * 64, "--", "true", check=1)
    assert r.stderr.startswith("prism: no package '%s'" % ("0" * 64)), r.stderr


def test_errors(h):
    h.ok("up")
    r = h.prism("--token", "wrong", "status", check=1)
    assert r.stderr.startswith("prism: ") and "token" in r.stderr, r.stderr
    r = h.prism("job", "logs", "no-such-job", check=1)
    assert r.stderr.startswith("prism: "), r.stderr
    assert h.prism("job", "submit", check=2).returncode == 2
    assert h.prism("no-such-command", check=2).returncode == 2
    assert "usage: prism job submit" in h.ok("job", "submit", "--help")


def test_up_failure_cleans_up(h):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = h.prism("up", "--port", str(port), check=1)
    assert "last lines of" in r.stderr and "gcs.log" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(h.dir, "pids"))
    assert not os.path.exists(os.path.join(h.dir, "address"))


def main():
    if not find_nats():
        skip("nats-server is not installed (make bootstrap installs it)")
    for b in ("prism", "prism-gcs", "prism-nodeagent"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            skip("%s is not built in %s" % (b, BIN))
    tests = [test_up_status_down, test_driver_uses_the_local_store, test_submit_quoting_and_wait,
             test_options_reach_the_job, test_follow_stop_delete, test_package_working_dir,
             test_job_packages, test_errors, test_up_failure_cleans_up]
    failed = 0
    for t in tests:
        h = Home()
        try:
            t(h)
            print("PASS", t.__name__, flush=True)
        except BaseException as e:
            failed += 1
            print("FAIL", t.__name__, "-", repr(e), flush=True)
            subprocess.run("tail -n 30 %s/logs/*.log" % h.dir, shell=True)
        finally:
            h.close()
    print("%d passed, %d failed" % (len(tests) - failed, failed))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
