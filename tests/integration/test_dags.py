"""Compiled DAGs end to end: a C driver (dag_probe) compiles graphs of builtin
Counters (Counter(k).add(x) = x + k) on real workers and checks every result."""
import os
import signal
import subprocess

from harness import BIN, run, skip

PROBE = os.path.join(BIN, "dag_probe")
# Under the sanitizers every hop costs more: fewer executions keep the time bounded.
EXECUTIONS = int(os.environ.get("PRISM_DAG_EXECUTIONS", "100000"))


def probe(c, *args, timeout=120, rc=0):
    if not os.access(PROBE, os.X_OK) or not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("dag_probe or prism-worker is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    env.pop("PRISM_HOME", None)
    r = subprocess.run([PROBE] + [str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == rc, "probe %s failed (%d):\n%s\n%s" % (args, r.returncode, r.stdout,
                                                                 r.stderr)
    print(r.stdout.strip())
    return r.stdout


def test_pipeline_parallel(c):
    """input -> 4 actors in a chain, 16 executions in flight: every result exact."""
    assert "chain ok: %d executions" % EXECUTIONS in probe(c, "chain", 4, EXECUTIONS, 16)


def test_tensor_parallel(c):
    """input fans out to 3 actors, a multi-output node gathers their outputs."""
    assert "fanout ok: %d executions" % EXECUTIONS in probe(c, "fanout", 3, EXECUTIONS, 16)


def test_errors(c):
    """A failing method names Class.method and the DAG goes on; ordinary calls
    are refused during the DAG and taken after teardown; max_inflight holds;
    a compile that fails (unknown method, dead actor) says why and frees the
    actors that started."""
    out = probe(c, "errors")
    assert "method error: Counter.add failed" in out and "errors ok" in out, out
    assert "no method 'nope'" in out and "is dead" in out, out


def test_several_returns(c):
    """A bind of two returns: one is an output item, the other feeds another actor."""
    assert "returns ok" in probe(c, "returns")


def test_actor_killed(c):
    """SIGKILL to the middle actor: executions fail with PRISM_ERR_ACTOR_DIED."""
    assert "died ok" in probe(c, "died")


def test_driver_dies(c):
    """A driver killed without teardown: its detached actor's loop ends (the
    input's writer died) and the actor takes ordinary calls again."""
    assert "compiled" in probe(c, "orphan", rc=-signal.SIGKILL)
    assert "orphan ok" in probe(c, "orphan-after")


def test_teardown_leaves_nothing(c):
    """Ten compiles and teardowns: no thread, no channel fd left in the
    workers or the driver (and memfds are never in /dev/shm)."""
    shm = set(os.listdir("/dev/shm"))
    assert "teardown ok" in probe(c, "teardown")
    assert not [f for f in set(os.listdir("/dev/shm")) - shm if "prism" in f]


if __name__ == "__main__":
    run([test_pipeline_parallel, test_tensor_parallel, test_errors, test_several_returns,
         test_actor_killed, test_driver_dies, test_teardown_leaves_nothing], nodes=1, node_args=("--num-cpus", "8"))
