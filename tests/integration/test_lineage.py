"""Arguments lost after their task was submitted: the owner learns of the loss
from the worker that could not read the argument (not from a node's death
before it pushed), makes the argument again from its lineage and runs the task
again, without using one of the task's retries. What cannot be made again (a
put value, a result whose task has no retries left) fails the task with
OBJECT_LOST naming the object, without a hang. A C driver (task_probe) against
real schedulers, node agents, workers and object stores."""
import os
import subprocess
import time

from harness import BIN, kill_quietly, run, skip, wait_until

PROBE = os.path.join(BIN, "task_probe")


def start_probe(c, *args, node="node-1"):
    if not os.access(PROBE, os.X_OK) or not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("task_probe or prism-worker is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", node, "objectstore.sock"))
    env.pop("PRISM_HOME", None)
    return subprocess.Popen([PROBE] + list(args), env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def vanished(c, how):
    """The probe's stored argument is deleted from its store behind its owner's
    back, then a task taking it is submitted. Returns the probe's output."""
    p = start_probe(c, "lostarg", how)
    try:
        line = p.stdout.readline().split()
        assert line[:1] == ["stored"], (line, p.stderr.read() if p.poll() is not None else "")
        r = c.request("DELETE", "/api/v1/objects/" + line[1], base=c.store_addresses["node-1"])
        assert r.status in (200, 204), r
        t0 = time.monotonic()
        out, err = p.communicate("go\n", timeout=120)
        assert p.returncode == 0 and "lostarg ok: " in out, (out, err)
        print("  " + out.strip().splitlines()[-1])
        return out, time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()


def test_vanished_argument_is_made_again(c):
    """The worker cannot read the argument; its task (max_retries 0) still
    runs: the argument is made again from its lineage and the sum is right."""
    out, _ = vanished(c, "")
    assert "the argument was made again" in out, out


def test_vanished_put_argument_fails_clearly(c):
    """A put value cannot be made again: OBJECT_LOST naming it and saying why,
    within the worker's wait for the object (5 s), not the get's 60 s."""
    out, took = vanished(c, "put")
    assert "OBJECT_LOST" in out or "lost" in out, out
    assert "put" in out, out
    assert took < 30, "the task took %.1f s to fail" % took


def test_vanished_argument_without_retries_fails_clearly(c):
    """Making an object again uses a retry of the task that made it (as in
    Ray): with max_retries 0 it cannot be, and the error says so."""
    out, took = vanished(c, "once")
    assert "retries" in out, out
    assert took < 30, "the task took %.1f s to fail" % took


def test_argument_lost_with_its_node_after_the_push(c):
    """A result made on node-2 is the argument of a sum pushed to node-3's
    only worker behind a 4 s sleep; node-2 dies while the sum waits there.
    The worker's read fails, the owner makes the argument again elsewhere and
    the sum runs again (it has no retries of its own): its result is right."""
    c.start_node("node-2", "--num-cpus", "2")
    c.start_node("node-3", "--num-cpus", "1")
    c.wait_nodes(3)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    p = start_probe(c, "lostpushed", nodes["node-2"], nodes["node-3"])
    try:
        line = p.stdout.readline().strip()
        if line != "pushed":
            p.wait(timeout=60)
            err = p.stderr.read()
            raise AssertionError((line, [e for e in err.splitlines() if e.startswith("probe")]
                                  or err[-3000:]))
        t0 = time.monotonic()
        c.nodes["node-2"].kill()
        c.stores["node-2"].kill()
        for pid in c.worker_pids("node-2"):
            kill_quietly(pid)
        # the sum's worker reads its argument once the 4 s sleep ends: after this
        assert time.monotonic() - t0 < 3, "node-2 took too long to kill"
        out, err = p.communicate("go\n", timeout=150)
        assert p.returncode == 0 and "lostpushed ok" in out, (out, err)
        wait_until(lambda: c.get("/api/v1/nodes/" + nodes["node-2"]).json()["state"] == "DEAD",
                   what="node-2 DEAD")
    finally:
        if p.poll() is None:
            p.kill()


if __name__ == "__main__":
    run([test_vanished_argument_is_made_again, test_vanished_put_argument_fails_clearly,
         test_vanished_argument_without_retries_fails_clearly,
         test_argument_lost_with_its_node_after_the_push], nodes=1,
        node_args=("--num-cpus", "4"))
