"""One placement authority: jobs and tasks draw on one account of a node's
resources, the node agent's, whichever asks first. Jobs are submitted to the
GCS; tasks' worker leases are asked of the scheduler over NATS the way owners
ask for them (docs/tasks.md). A node must never hold more than it has.

What a job held is measured from its driver's start_time to its end_time (the
node agent stamps both inside the time the job holds its resources), what a
lease held from the moment its grant arrived to the moment the test gave it
back (inside the time the node agent counts it). If those intervals ever
overlap more than the node's CPUs, the node was oversubscribed."""
import os
import threading
import time

from harness import BIN, NatsClient, run, skip, wait_until

WORKER = os.path.join(BIN, "prism-worker")
if not os.access(WORKER, os.X_OK):
    skip("prism-worker is not built in %s" % BIN)

CPUS = 2
NODE = {"node_args": ("--worker-bin", WORKER, "--num-cpus", str(CPUS), "--num-gpus", "0",
                      "--prestart-workers", str(CPUS))}


def now_ms():
    return int(time.time() * 1000)


class Tasks:
    """Worker leases of CPU 1 asked of the scheduler, as a task owner asks."""

    def __init__(self, c):
        self.nats = NatsClient(c.nats_port, c.token)
        self.held = []  # [start_ms, end_ms or None]

    def lease(self):
        r = self.nats.request_json("prism.sched.lease",
                                   {"owner_id": "f" * 32, "resources": {"CPU": 1}}, timeout=15)
        if r.get("ok"):
            r["held"] = [now_ms(), None]
            self.held.append(r["held"])
        return r

    def give_back(self, grant):
        grant["held"][1] = now_ms()
        r = self.nats.request_json("prism.node.%s.worker.return" % grant["node_id"],
                                   {"lease_id": grant["lease_id"]})
        assert r == {"ok": True}, r

    def close(self):
        self.nats.close()


def job_intervals(c, ids):
    out = []
    for jid in ids:
        j = c.job(jid)
        if j["start_time"]:
            out.append([j["start_time"], j["end_time"] or now_ms()])
    return out


def most_held(intervals):
    """The most CPUs held at once: a sweep over [start, end) intervals, an end
    before a start at the same millisecond."""
    events = sorted([(s, 1) for s, e in intervals] + [(e, -1) for s, e in intervals])
    most = held = 0
    for _, d in events:
        held += d
        most = max(most, held)
    return most


def node_available_cpu(c):
    return c.get("/api/v1/nodes?state=ALIVE").json()["nodes"][0]["available"].get("CPU")


def granted(t):
    return wait_until(lambda: (lambda r: r if r.get("ok") else None)(t.lease()),
                      what="a lease of CPU 1")


def test_tasks_fill_the_node_jobs_wait(c):
    t = Tasks(c)
    grants = [granted(t) for _ in range(CPUS)]
    jobs = [c.submit("echo ran", resources={"CPU": 1}) for _ in range(2)]
    wait_until(lambda: all("waiting for resources: CPU 1" in c.job(j)["message"] for j in jobs),
               what="the jobs to wait for the CPUs the tasks hold")
    time.sleep(1.5)  # several placement rounds: the node is full, nothing may start
    assert all(c.job(j)["state"] == "PENDING" for j in jobs), [c.job(j) for j in jobs]
    wait_until(lambda: node_available_cpu(c) == 0, what="the GCS to show the node full")
    returned = now_ms()
    for g in grants:
        t.give_back(g)
    for j in jobs:
        done = c.wait_job(j)
        assert done["state"] == "SUCCEEDED" and done["start_time"] >= returned, done
    t.close()


def test_jobs_fill_the_node_tasks_wait(c):
    t = Tasks(c)
    jobs = [c.submit("sleep 3", resources={"CPU": 1}) for _ in range(CPUS)]
    for j in jobs:
        c.wait_job(j, states=("RUNNING",))
    wait_until(lambda: node_available_cpu(c) == 0, what="the GCS to show the node full")
    r = t.lease()
    assert r.get("error", {}).get("code") == "busy", r
    for j in jobs:
        assert c.wait_job(j)["state"] == "SUCCEEDED", c.job(j)
    t.give_back(granted(t))
    t.close()


def test_jobs_and_tasks_at_once_never_oversubscribe(c):
    t = Tasks(c)
    t.give_back(granted(t))  # the scheduler sees the node
    t.held.clear()
    stop = threading.Event()
    busy = []

    def tasks():
        while not stop.is_set():
            r = t.lease()
            if r.get("ok"):
                time.sleep(0.4)
                t.give_back(r)
                time.sleep(0.3)  # room for the jobs now and then (they are asked for every second)
            else:
                busy.append(r)
                time.sleep(0.02)

    threads = [threading.Thread(target=tasks) for _ in range(CPUS)]
    for th in threads:
        th.start()
    try:
        jobs = [c.submit("sleep 0.5", resources={"CPU": 1}) for _ in range(3 * CPUS)]
        for j in jobs:
            assert c.wait_job(j, timeout=120)["state"] == "SUCCEEDED", c.job(j)
    finally:
        stop.set()
        for th in threads:
            th.join()
    t.close()
    held = [h for h in t.held if h[1] is not None]
    ran = job_intervals(c, jobs)
    assert len(ran) == len(jobs) and held, (ran, held)
    most = most_held(ran + held)
    assert most <= CPUS, "the node held %d CPUs of %d at once: jobs %s, leases %s" % (
        most, CPUS, ran, held)
    assert busy, "the tasks never found the node full"


if __name__ == "__main__":
    run([test_tasks_fill_the_node_jobs_wait, test_jobs_fill_the_node_tasks_wait,
         test_jobs_and_tasks_at_once_never_oversubscribe], nodes=1, **NODE)
