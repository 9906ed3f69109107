"""Every service resolves the cluster token the same way (libs/service,
docs/services.md): --no-auth beats everything, then --token, --token-file,
PRISM_TOKEN, PRISM_TOKEN_FILE; with none of them a service refuses to start.

Each long-running service is started alone, with the same sources of a
token, against a nats-server without authorization (it accepts clients with
or without a token), and the same authenticated route is asked with each
token: every service must answer alike.
"""
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

from harness import BIN, Proc, find_nats, free_port, run, skip, wait_until

# binary, an authenticated route, extra arguments (STATE is the service's directory)
SERVICES = [
    ("prism-gcs", "/api/v1/cluster", ["--data-dir", "STATE/gcs"]),
    ("prism-scheduler", "/api/v1/scheduler", []),
    ("prism-nodeagent", "/api/v1/node",
     ["--state-dir", "STATE", "--name", "n1", "--num-cpus", "1", "--prestart-workers", "0",
      "--gcs-address", "http://127.0.0.1:9"]),
    ("prism-objectstore", "/api/v1/stats",
     ["--socket", "STATE/store.sock", "--memory", "8MiB", "--prefault=false",
      "--spill-dir", "STATE/spill"]),
    ("prism-dataservice", "/api/v1/datasets", ["--gcs-address", "http://127.0.0.1:9"]),
]
ENV_TOKEN, FLAG_TOKEN = "env-token", "flag-token"
FILE_TOKEN, ENV_FILE_TOKEN = "file-token", "env-file-token"


class Services:
    """A nats-server without authorization and a directory; services are
    started one at a time by the tests."""

    def __init__(self):
        if not find_nats():
            skip("nats-server is not installed (make bootstrap installs it)")
        for b, _, _ in SERVICES + [("prism-worker", None, None)]:
            if not os.access(os.path.join(BIN, b), os.X_OK):
                skip("%s is not built in %s" % (b, BIN))
        self.dir = tempfile.mkdtemp(prefix="prism-auth-")
        self.procs = []
        self.failed_shutdowns = []
        self.files = {}
        self.runs = 0  # names each run's directory
        for name, text in (("file", FILE_TOKEN), ("env-file", ENV_FILE_TOKEN)):
            self.files[name] = os.path.join(self.dir, name + ".token")
            with open(self.files[name], "w") as f:
                f.write(text + "\n")
        self.nats_port = free_port()
        self.nats_url = "nats://127.0.0.1:%d" % self.nats_port
        nats = Proc("nats", [find_nats(), "-a", "127.0.0.1", "-p", str(self.nats_port)],
                    os.path.join(self.dir, "nats.log"))
        self.procs.append(nats)
        self.nats = nats

    def env(self, extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_")}
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.update(extra)
        return env

    def argv(self, binary, extra, state):
        argv = [os.path.join(BIN, binary), "--nats-url", self.nats_url, "--log-level", "debug"]
        return argv + [a.replace("STATE", state) for a in extra]

    def start(self, binary, extra, args, env):
        """Starts `binary` and returns (its Proc, its REST URL)."""
        self.runs += 1
        state = os.path.join(self.dir, "%s-%d" % (binary, self.runs))
        os.makedirs(state)
        addr = os.path.join(state, "address")
        argv = self.argv(binary, extra, state) + ["--port", "0", "--address-file", addr] + args
        p = Proc(os.path.basename(state), argv, state + ".log", self.env(env))
        self.procs.append(p)

        def url():
            if not p.alive():
                raise AssertionError("%s exited:\n%s" % (binary, p.tail()))
            try:
                with open(addr) as f:
                    return f.read().strip() or None
            except OSError:
                return None
        return p, wait_until(url, what=binary + "'s address file")

    def refuses(self, binary, extra, args, env):
        """Runs `binary` that must refuse to start; returns its output."""
        self.runs += 1
        state = os.path.join(self.dir, "%s-%d" % (binary, self.runs))
        os.makedirs(state)
        p = subprocess.run(self.argv(binary, extra, state) + args, env=self.env(env),
                           capture_output=True, timeout=30)
        out = (p.stdout + p.stderr).decode(errors="replace")
        assert p.returncode == 2, "%s %s: wanted exit 2, got %d:\n%s" % (
            binary, args, p.returncode, out)
        return out

    def stop(self, p):
        rc = p.stop()
        if rc != 0:
            self.failed_shutdowns.append("%s exited %r:\n%s" % (p.name, rc, p.tail()))

    def close(self, check=True):
        for p in reversed(self.procs):
            if p is not self.nats and p.alive():
                self.stop(p)
        self.nats.stop()
        failed = self.failed_shutdowns
        self.failed_shutdowns = []
        if check:
            assert not failed, "services did not stop cleanly:\n" + "\n".join(failed)
        shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self):
        for p in self.procs:
            print("----- %s -----\n%s" % (p.name, p.tail()))


def status(url, token):
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# (what the case gives: flags, environment), the token it must resolve to (None: no auth)
CASES = [
    ((["--no-auth"], {"PRISM_TOKEN": ENV_TOKEN}), None),
    ((["--no-auth", "--token", FLAG_TOKEN], {}), None),
    ((["--token", FLAG_TOKEN, "--token-file", "FILE"], {"PRISM_TOKEN": ENV_TOKEN}), FLAG_TOKEN),
    ((["--token-file", "FILE"], {"PRISM_TOKEN": ENV_TOKEN}), FILE_TOKEN),
    (([], {"PRISM_TOKEN": ENV_TOKEN, "PRISM_TOKEN_FILE": "ENV_FILE"}), ENV_TOKEN),
    (([], {"PRISM_TOKEN_FILE": "ENV_FILE"}), ENV_FILE_TOKEN),
    (([], {"PRISM_NO_AUTH": "1", "PRISM_TOKEN": ENV_TOKEN}), None),
]


def test_same_precedence_everywhere(c):
    tokens = (ENV_TOKEN, FLAG_TOKEN, FILE_TOKEN, ENV_FILE_TOKEN)
    seen = {}
    for (args, env), want in CASES:
        args = [c.files["file"] if a == "FILE" else a for a in args]
        env = {k: c.files["env-file"] if v == "ENV_FILE" else v for k, v in env.items()}
        for binary, route, extra in SERVICES:
            p, url = c.start(binary, extra, args, env)
            got = {t: status(url + route, t) for t in (None,) + tokens}
            c.stop(p)
            if want is None:
                ok = all(s == 200 for s in got.values())
            else:
                ok = got[want] == 200 and all(s == 401 for t, s in got.items() if t != want)
            assert ok, "%s %s %s: wanted %s to be the token, got %s" % (
                binary, args, env, want or "no token", got)
            seen.setdefault((tuple(args), tuple(sorted(env.items()))), set()).add(
                tuple(sorted((str(k), v) for k, v in got.items())))
    for case, answers in seen.items():
        assert len(answers) == 1, "services disagree on %s: %s" % (case, answers)


def test_no_token_refuses_to_start(c):
    """A service without a token refuses to start. The worker is the exception:
    its node agent hands it the token only when the cluster has one."""
    worker = ("prism-worker", None, ["--socket", "STATE/w.sock"])
    for binary, _, extra in SERVICES + [worker]:
        if binary != "prism-worker":
            out = c.refuses(binary, extra, [], {})
            assert "no cluster token" in out, "%s: %s" % (binary, out)
        out = c.refuses(binary, extra, ["--token-file", os.path.join(c.dir, "missing")], {
            "PRISM_TOKEN": ENV_TOKEN})
        assert "cannot read token file" in out, "%s: %s" % (binary, out)


if __name__ == "__main__":
    run([test_same_precedence_everywhere, test_no_token_refuses_to_start], cluster_class=Services)
