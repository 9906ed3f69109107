#!/usr/bin/python3
"""Chaos: a mixed workload on three nodes (each in its own network namespace)
while a bounded loop kills workers, object stores, node agents, the scheduler
and the GCS, restarting each as a supervisor would, and pulls and restores
nodes' cables.

The workload is chaos_driver (tasks whose 160 KB arguments and results go
through the object stores and across nodes, a restarting actor, application
errors, nested tasks): one driver in the root namespace for the whole run,
and short drivers submitted as jobs over REST, which run on the nodes.

Afterwards: every result was right or failed with an error the faults
explain (every wait is bounded, so a hang is a failure); every job ended in a
state that matches what happened to its driver; once the drivers are gone
no actor lives on, no owner is listed with objects and every object store is
empty; and every process the test started is gone.

PRISM_CHAOS_SEED replays a run's faults (the seed is printed)."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import BIN, OWNER_VAR, NetCluster, check_prerequisites, exit_on_sigterm, skip, \
    wait_until  # noqa: E402

DRIVER = os.path.join(BIN, "chaos_driver")
NODES = ("node-1", "node-2", "node-3")
TIMEOUT_MS = 3000  # the GCS's node timeout: long cuts go past it, short ones stay below
CHAOS_S = 75  # the fault loop ends by then
FAULTS = 13
JOB_EVERY_S = 6
JOB_S = 8  # how long each job's driver submits work
# Why a job whose driver did not finish may have FAILED: its node or agent was lost.
JOB_LOST = re.compile(r"died|declared|node agent (restarted|shut down)|killed by signal")


def log(msg):
    print("[%6.1f] %s" % (time.time() - T0, msg), flush=True)


T0 = time.time()


class Chaos:
    def __init__(self, c, rng):
        self.c, self.rng = c, rng
        self.faults = []

    def _alive_nodes(self):
        return [n for n in NODES if n in self.c.nodes and self.c.nodes[n].alive()]

    def kill_worker(self):
        name = self.rng.choice(NODES)
        i = self.c.node_index(name)
        workers = [p for p, cmd in self.c.net.ns_cmdlines(i).items() if "prism-worker" in cmd]
        if not workers:
            return "no worker on %s" % name
        pid = self.rng.choice(workers)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return "worker %d on %s" % (pid, name)

    def kill_store(self):
        name = self.rng.choice(NODES)
        p, _ = self.c.node_stores[name]
        p.kill()
        self._down()
        self.c.start_store(name)  # same port and socket: the agent's address stays right
        return "object store of %s" % name

    def kill_agent(self):
        name = self.rng.choice(NODES)
        self.c.nodes[name].kill()  # its workers and drivers die with it (PDEATHSIG)
        self._down()
        self.c.start_node(name)  # a new incarnation, with the store that still runs
        return "node agent of %s" % name

    def kill_scheduler(self):
        self.c.scheduler.kill()
        self._down()
        self.c.start_scheduler()
        return "scheduler"

    def kill_gcs(self):
        self.c.gcs.kill()
        self._down()
        self.c.start_gcs()
        return "GCS"

    def cut(self, seconds):
        name = self.rng.choice(NODES)
        i = self.c.node_index(name)
        self.c.net.cut(i)
        try:
            time.sleep(seconds)
        finally:
            self.c.net.restore(i)
        return "%s cut for %.1fs" % (name, seconds)

    def _down(self):
        time.sleep(self.rng.uniform(0.2, 1.5))  # how long a supervisor takes to notice

    def run_one(self, kind):
        t = time.time()
        what = {"worker": self.kill_worker, "store": self.kill_store, "agent": self.kill_agent,
                "scheduler": self.kill_scheduler, "gcs": self.kill_gcs,
                "blip": lambda: self.cut(self.rng.uniform(0.3, 1.5)),
                "cut": lambda: self.cut(TIMEOUT_MS / 1000 + self.rng.uniform(1, 2))}[kind]()
        self.faults.append(what)
        log("fault %d: %s (%.1fs)" % (len(self.faults), what, time.time() - t))


def driver_env(c):
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token, PRISM_NATS_URL=c.nats_url)
    for k in ("PRISM_STORE_SOCKET", "PRISM_STORE_URL", "PRISM_NODE_ID"):
        env.pop(k, None)
    return env


def check_output(who, text):
    """The driver's outcome lines: no BAD one, and a summary saying so."""
    bad = [ln for ln in text.splitlines() if ln.startswith("BAD ")]
    assert not bad, "%s: wrong results or unexplained failures:\n%s" % (who, "\n".join(bad[:20]))
    m = re.search(r"^summary \S+ rounds=(\d+) ok=(\d+) err=(\d+) bad=0$", text, re.M)
    assert m, "%s: no summary line:\n%s" % (who, text[-2000:])
    return [int(x) for x in m.groups()]


def show_failures(who, text, most=4):
    """The failures the faults explain, a few of each kind (op and status)."""
    kinds = {}
    for ln in text.splitlines():
        if ln.startswith("err "):
            w = ln.split(" ", 3)
            kinds.setdefault((w[0], w[1].split("/")[0], w[2] if len(w) > 2 else ""), []).append(ln)
    for (kind, op, _), lines in sorted(kinds.items()):
        log("  %s: %d %s %s, e.g. %s" % (who, len(lines), kind, op, lines[0][:220]))


def job_log(c, job):
    """The driver's log, read from the node's state directory (the incarnation
    that ran it may be gone; the directory stays)."""
    for name in NODES:
        path = os.path.join(c.dir, "nodes", name, "jobs", job["job_id"], "driver.log")
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                return f.read()
    return ""


def store_objects(c, name):
    r = c.http(c.node_stores[name][1], "GET", "/api/v1/objects?limit=10000", timeout=10)
    assert r.status == 200, r
    return [o["object_id"] for o in r.json()["objects"]]


def test_chaos(c):
    seed = int(os.environ.get("PRISM_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    log("seed %d (PRISM_CHAOS_SEED=%d replays these faults)" % (seed, seed))
    if not os.access(DRIVER, os.X_OK):
        skip("chaos_driver is not built")
    chaos = Chaos(c, rng)
    # every kind at least once, the rest at random, in a random order
    kinds = ["worker", "worker", "store", "agent", "scheduler", "gcs", "blip", "cut"]
    kinds += [rng.choice(["worker", "store", "agent", "blip", "cut", "gcs", "worker"])
              for _ in range(FAULTS - len(kinds))]
    rng.shuffle(kinds)
    out_path = os.path.join(c.dir, "root-driver.out")
    with open(out_path, "w") as out:
        root = subprocess.Popen([DRIVER, "--seconds", str(CHAOS_S - 10), "--tag", "root"],
                                stdout=out, stderr=subprocess.STDOUT, env=driver_env(c),
                                start_new_session=True)
    jobs = []
    try:
        t_end = time.time() + CHAOS_S - 5
        next_job = time.time()
        time.sleep(2)  # the workload gets going before the first fault
        for k, kind in enumerate(kinds):
            if time.time() >= next_job:
                jid = c.submit("exec %s --seconds %d --tag job%d" % (DRIVER, JOB_S, len(jobs)))
                jobs.append(jid)
                next_job = time.time() + JOB_EVERY_S
            if time.time() >= t_end:
                break
            chaos.run_one(kind)
            # spread the rest over what is left of the chaos period
            left = max(1, len(kinds) - k - 1)
            time.sleep(max(0.5, min(rng.uniform(1.5, 5), (t_end - time.time()) / left)))
        log("%d faults; the cluster heals" % len(chaos.faults))
        assert len(chaos.faults) >= 10, chaos.faults

        # The cluster is whole again: three nodes alive, each with its store.
        c.wait_nodes(3, timeout=30)
        rc = root.wait(timeout=CHAOS_S + 120)
        with open(out_path) as f:
            text = f.read()
        rounds, ok, err = check_output("the root driver", text)
        assert rc == 0, "the root driver exited with %d:\n%s" % (rc, text[-3000:])
        log("root driver: %d rounds, %d right, %d failed with a clear error" % (rounds, ok, err))
        assert ok > 0 and rounds >= 5, text[-2000:]
        show_failures("root", text)

        # Jobs: each ends; SUCCEEDED only with every result right; FAILED only
        # when its node or agent was lost (its driver gone with it).
        succeeded = 0
        for jid in jobs:
            j = c.wait_job(jid, timeout=JOB_S + 100)
            text = job_log(c, j)
            bad = [ln for ln in text.splitlines() if ln.startswith("BAD ")]
            assert not bad, "job %s: %s" % (jid, "\n".join(bad[:20]))
            if j["state"] == "SUCCEEDED":
                check_output("job " + jid, text)
                succeeded += 1
                show_failures(jid[:8], text)
            else:
                assert j["state"] == "FAILED" and JOB_LOST.search(j["message"] or ""), (j, text[-2000:])
            log("job %s %s %s" % (jid, j["state"], (j["message"] or "")[:100]))
        assert succeeded >= 1, "no job survived the chaos"
        c.check_no_false_state()
        assert not [j for j in c.all_jobs() if j["state"] in ("PENDING", "RUNNING")], c.all_jobs()

        # Every driver is gone: their actors die with them, nothing stays owned,
        # and no object store keeps an object: the stores free the objects of
        # dead owners and those whose delete was lost while a node was cut.
        wait_until(lambda: all(a["state"] == "DEAD" for a in
                               c.get("/api/v1/actors?limit=1000").json()["actors"]),
                   timeout=20, what="every actor DEAD once its driver is gone")
        wait_until(lambda: c.get("/api/v1/objects?limit=1000").json()["total"] == 0, timeout=20,
                   what="no owner listed with objects")
        for name in NODES:
            try:
                wait_until(lambda: not store_objects(c, name), timeout=40,
                           what="the store of %s to be empty" % name)
            except AssertionError:
                raise AssertionError("%s's store keeps objects nobody owns: %r" % (
                    name, store_objects(c, name)[:20]))
        log("every job ended rightly (%d of %d succeeded); every store is empty" %
            (succeeded, len(jobs)))
    finally:
        if root.poll() is None:
            root.kill()
            root.wait()


def main():
    check_prerequisites()
    exit_on_sigterm()
    c = NetCluster(nodes=3, node_timeout_ms=TIMEOUT_MS, objectstores=True,
                   node_args=("--num-cpus", "2"))
    failed = False
    try:
        test_chaos(c)
    except BaseException as e:
        failed = True
        print("FAIL test_chaos - %r" % e, flush=True)
        c.dump_logs()
        raise
    finally:
        c.close(check=not failed)
    # Every process the run started is gone: the services exited by
    # themselves on SIGTERM (close checks their status), and nothing was left
    # for the namespace teardown to kill or lives on elsewhere.
    assert not c.net.stragglers, "left running: %r" % c.net.stragglers
    mine = "%s=%d" % (OWNER_VAR, os.getpid())
    left = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    if mine.encode() + b"\0" in f.read():
                        left.append(int(d))
            except OSError:
                pass
    assert not left, "processes of this run still alive: %r" % left
    print("PASS test_chaos (%.1fs)" % (time.time() - T0), flush=True)


if __name__ == "__main__":
    main()
