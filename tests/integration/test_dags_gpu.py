"""Compiled DAGs carrying device tensors (docs/dags.md#gpu-values): GpuStage
actors of an uploaded package (gpu_fns.c) pass CUDA device memory between
their processes over CUDA IPC rings, and to the driver as host copies.
Needs the CUDA toolkit at build time and a CUDA device at run time: skips,
saying which is missing, without either."""
import os
import subprocess

from harness import BIN, run, skip

PROBE = os.path.join(BIN, "dag_probe")
PACKAGE = os.path.join(BIN, "..", "tests", "gpu_test_fns.so")
EXECUTIONS = int(os.environ.get("PRISM_DAG_GPU_EXECUTIONS", "2000"))


def test_device_edges(c):
    """input -> A.to_device -> B.rotate -> (C.rotate, D.rotate): device tensors
    on every edge between actors (B's read by two), host copies to the
    driver, each byte checked; without device slots the same graph's rotate
    gets a host copy and says so; an ordinary call may not return device
    memory. The four actors lease a quarter of one GPU each."""
    if not os.path.exists(PACKAGE):
        skip("built without the CUDA toolkit: %s is not there" % PACKAGE)
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    nodes = c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]
    if not any(n["resources"].get("GPU", 0) > 0 for n in nodes):
        skip("no CUDA device here: the node offers no GPU")
    with open(PACKAGE, "rb") as f:
        r = c.request("POST", "/api/v1/packages", raw=f.read())
    assert r.status in (200, 201), r
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    env.pop("PRISM_HOME", None)
    p = subprocess.run([PROBE, "gpu", r.json()["sha256"], str(EXECUTIONS)], env=env,
                       capture_output=True, text=True, timeout=300)
    print(p.stdout.strip())
    if p.returncode == 77:
        skip(p.stdout.strip() or "no CUDA device")
    assert p.returncode == 0, "probe failed (%d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
    assert "gpu ok: %d executions" % EXECUTIONS in p.stdout


if __name__ == "__main__":
    # Each actor leases a quarter of a GPU: four share the node's first device.
    run([test_device_edges], nodes=1, node_args=("--num-cpus", "8"))
