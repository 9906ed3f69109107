"""The single-node figures of the scalability envelope as a regression test:
one task with 10,000 object arguments, one with 3,000 returns, one get of
10,000 task results, 20,000 tasks queued by one driver on a 1-CPU node, and
the largest object: one that fits the store's arena is put and got back, a
larger one is refused with a clear error (the store has no allocation
outside its arena). bench/scale/run.sh runs
the same program with the full figures and reports the times; here every
value must come back right, and nothing is timed."""
import json
import os
import subprocess

from harness import BIN, run, skip

PROGRAM = os.path.join(BIN, "prism-scale-single")


def scale(c, case, n, timeout=300, ok=True):
    if not os.access(PROGRAM, os.X_OK) or not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("prism-scale-single or prism-worker is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", "node-1", "objectstore.sock"))
    env.pop("PRISM_HOME", None)
    r = subprocess.run([PROGRAM, case, str(n)], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if not ok:
        return r
    assert r.returncode == 0, "%s %d failed (%d):\n%s\n%s" % (case, n, r.returncode, r.stdout, r.stderr)
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines and lines[-1]["n"] == n, r.stdout
    return lines


def test_ten_thousand_object_arguments(c):
    scale(c, "args", 10000)


def test_three_thousand_returns(c):
    scale(c, "returns", 3000)


def test_one_get_of_ten_thousand_objects(c):
    scale(c, "get", 10000)


def test_twenty_thousand_tasks_queued_on_one_cpu(c):
    lines = scale(c, "queued", 20000)
    assert lines[0]["case"] == "queued_submit" and lines[0]["bytes_per_queued_task"] > 0, lines


def test_largest_object(c):
    # the store's arena is 64 MiB (harness.Cluster's store_memory)
    scale(c, "object", 48)
    r = scale(c, "object", 96, ok=False)
    assert r.returncode == 1 and "larger than the object store's arena" in r.stderr, r


if __name__ == "__main__":
    run([test_ten_thousand_object_arguments, test_three_thousand_returns,
         test_one_get_of_ten_thousand_objects, test_twenty_thousand_tasks_queued_on_one_cpu,
         test_largest_object], nodes=1, node_args=("--num-cpus", "1"))
