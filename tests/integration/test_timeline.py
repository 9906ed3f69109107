"""The task timeline (GET /api/v1/timeline, prism timeline) and the cluster's
history (GET /api/v1/metrics/history), from real tasks run by a C driver
(task_probe), once as a job and once on its own."""
import json
import os
import subprocess
import time

from harness import BIN, run, skip, wait_until

PROBE = os.path.abspath(os.path.join(BIN, "task_probe"))


def need_probe():
    if not os.access(PROBE, os.X_OK) or not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("task_probe or prism-worker is not built")


def probe(c, *args):
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", "node-1", "objectstore.sock"))
    env.pop("PRISM_HOME", None)
    env.pop("PRISM_JOB_ID", None)
    r = subprocess.run([PROBE] + [str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, "probe %s failed:\n%s\n%s" % (args, r.stdout, r.stderr)


def task_events(trace):
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


def check_trace(trace, lo_ms, hi_ms):
    """Every complete event is a task that ran between lo_ms and hi_ms, in a
    named lane; returns the events."""
    events = task_events(trace)
    assert trace["otherData"]["tasks"] == len(events), trace["otherData"]
    named = {(e["pid"], e.get("tid")) for e in trace["traceEvents"]
             if e["ph"] == "M" and e["args"]["name"]}
    for e in events:
        assert e["name"] == "builtin/add" and e["cat"] == "task", e
        assert e["dur"] >= 0 and lo_ms * 1000 <= e["ts"] <= e["ts"] + e["dur"] <= hi_ms * 1000, \
            (e, lo_ms, hi_ms)
        assert e["args"]["state"] == "FINISHED" and len(e["args"]["task_id"]) == 32, e
        assert (e["pid"], None) in named and (e["pid"], e["tid"]) in named, (e, named)
    ids = [e["args"]["task_id"] for e in events]
    assert len(set(ids)) == len(ids), "a task twice in the timeline"
    # A worker runs its tasks one at a time: its lane's bars do not overlap.
    lanes = {}
    for e in sorted(events, key=lambda e: (e["ts"], e["dur"])):
        prev = lanes.get((e["pid"], e["tid"]))
        assert not prev or e["ts"] >= prev["ts"] + prev["dur"], (prev, e)
        lanes[(e["pid"], e["tid"])] = e
    return events


def test_timeline(c):
    need_probe()
    t0 = int(time.time() * 1000)
    jid = c.submit(PROBE + " many 20", submission_id="timeline-job")
    job = c.wait_job(jid, timeout=120)
    assert job["state"] == "SUCCEEDED", (job, c.logs(jid))
    probe(c, "many", 30)
    t1 = int(time.time() * 1000)

    def trace_of(query):
        r = c.get("/api/v1/timeline" + query)
        assert r.status == 200 and r.headers["Content-Type"].startswith("application/json"), r
        return r.json()

    # Every task that ran is one event (owners report them within a second).
    trace = wait_until(lambda: (lambda t: t if len(task_events(t)) == 50 else None)(
        trace_of("")), timeout=20, what="50 tasks in the timeline")
    events = check_trace(trace, t0, t1)
    assert trace["displayTimeUnit"] == "ms", trace
    lanes = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert any(n.startswith("node-1 ") for n in lanes), lanes
    assert any(n.startswith("worker ") for n in lanes), lanes

    # The job's 20, within the job's run; the limit keeps the newest.
    mine = check_trace(trace_of("?job_id=timeline-job"), job["start_time"], job["end_time"])
    assert len(mine) == 20 and all(e["args"]["job_id"] == "timeline-job" for e in mine), mine
    assert task_events(trace_of("?job_id=nosuchjob")) == []
    newest = task_events(trace_of("?limit=5"))
    assert len(newest) == 5, newest
    assert min(e["ts"] for e in newest) >= sorted(e["ts"] for e in events)[-5] - 1000 * 1000
    for bad in ("?limit=0", "?limit=abc", "?job_id="):
        r = c.get("/api/v1/timeline" + bad)
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (bad, r)
    assert c.get("/api/v1/timeline", token=None).status == 401

    # prism timeline -o FILE writes the same trace.
    path = os.path.join(c.dir, "trace.json")
    cli = [os.path.join(BIN, "prism"), "--address", c.url, "--token", c.token]
    out = subprocess.run(cli + ["timeline", "-o", path, "--job", "timeline-job"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "20 tasks written" in out.stderr, out
    with open(path) as f:
        assert len(check_trace(json.load(f), job["start_time"], job["end_time"])) == 20
    out = subprocess.run(cli + ["timeline", "--limit", "0"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 1 and "limit" in out.stderr, out


def test_metrics_history(c):
    need_probe()
    c.start_node("node-2", "--num-cpus", "2")
    c.wait_nodes(2)
    probe(c, "many", 40)
    url = "/api/v1/metrics/history"

    def sums():
        h = c.get(url).json()
        done = sum(h["series"]["tasks_finished"]) >= 40 and len(h["t"]) >= 2
        return h if done and len(h["stores"]) == 2 else None
    h = wait_until(sums, timeout=20, what="40 tasks and two stores in the history")
    assert h["interval_ms"] == 2000 and h["max_samples"] == 300, h
    n = len(h["t"])
    assert h["t"] == sorted(h["t"]), h["t"]
    assert all(len(v) == n for v in h["series"].values()), h["series"]
    s = h["series"]
    assert s["nodes_alive"][-1] == 2 and s["cpu_total"][-1] == 4, s  # two nodes of 2 CPUs
    assert s["store_capacity"][-1] == 2 * 64 << 20 and s["tasks_failed"] == [0] * n, s
    assert 0 <= s["cpu_used"][-1] <= s["cpu_total"][-1], s
    names = sorted(st["name"] for st in h["stores"])
    assert names == ["node-1", "node-2"], h["stores"]
    for st in h["stores"]:
        assert st["capacity_bytes"] == 64 << 20 and 0 <= st["used_bytes"] <= 64 << 20, st
        assert st["url"] == c.store_addresses[st["name"]], st
        assert 1 <= len(st["used_series"]) <= n, (st, n)
        assert all(0 <= u <= 64 << 20 for u in st["used_series"]), st
    # ?since= answers only the newer samples.
    later = c.get(url + "?since=%d" % h["t"][-1]).json()
    assert all(t > h["t"][-1] for t in later["t"]), later["t"]
    assert all(len(st["used_series"]) == len(later["t"]) for st in later["stores"]), later
    assert c.get(url + "?since=-1").status == 400
    # A stopped store is forgotten after three silent report periods.
    c.stores["node-2"].p.kill()
    wait_until(lambda: [st["name"] for st in c.get(url).json()["stores"]] == ["node-1"],
               timeout=20, what="node-2's store forgotten")
    assert c.get(url, token=None).status == 401


test_metrics_history.cluster = {"node_args": ("--num-cpus", "2")}


if __name__ == "__main__":
    run([test_timeline, test_metrics_history])
