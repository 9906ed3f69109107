"""The TypeScript client (clients/typescript) as its users get it:

1. its generated types (src/gcs.ts) are what openapi-typescript makes of
   openapi/gcs.yaml today (scripts/generate.sh --check): no drift;
2. it compiles with `tsc --strict`, and its tests (node --test) pass
   against a live cluster this test starts: GCS, scheduler, a node, the
   dataservice, and an actor made over NATS as libprism makes one.

Needs Node.js 20 or later and the packages clients/typescript/package-lock.json
pins, installed by scripts/bootstrap.sh (`npm ci`); without them it exits 77
(skipped) and says which is missing. Nothing is downloaded here."""
import json
import os
import shutil
import struct
import subprocess
import uuid

from harness import NatsClient, run, skip

SRC = os.environ.get("PRISM_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLIENT = os.path.join(SRC, "clients", "typescript")
BIN = os.path.join(CLIENT, "node_modules", ".bin")


def check_tools():
    node = shutil.which("node")
    if not node or not shutil.which("npm"):
        skip("Node.js and npm are not installed (scripts/bootstrap.sh installs them)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        skip("Node.js %s is too old: the client needs 20 or later" % version)
    for tool in ("tsc", "openapi-typescript"):
        if not os.access(os.path.join(BIN, tool), os.X_OK):
            skip("clients/typescript/node_modules lacks %s: run scripts/bootstrap.sh "
                 "(npm ci in clients/typescript)" % tool)
    return node


def sh(argv, env=None, timeout=300):
    p = subprocess.run(argv, cwd=CLIENT, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, "%s exited %d:\n%s%s" % (" ".join(argv), p.returncode, p.stdout[-6000:],
                                                      p.stderr[-6000:])
    return p.stdout


def test_generated_types_are_current(c):
    out = sh(["sh", "scripts/generate.sh", "--check"])
    assert "matches" in out, out
test_generated_types_are_current.cluster = {"nodes": 0, "scheduler": False}


def make_actor(c):
    """A detached Counter of the builtin package, created as libprism does."""
    aid = uuid.uuid4().hex
    spec = json.dumps({"actor_id": aid, "owner": "gcs", "detached": True, "package": "builtin",
                       "class": "Counter", "name": "ts-client"})
    nc = NatsClient(c.nats_port, c.token)
    try:
        made = nc.request("prism.gcs.actor.create",
                          struct.pack("<I", len(spec)) + spec.encode() + struct.pack("<I", 0))
        assert json.loads(made) == {"ok": True, "actor_id": aid}, made
    finally:
        nc.close()
    return aid


def test_client_against_a_cluster(c):
    node = check_tools()
    sh([node, os.path.join(BIN, "tsc"), "-p", "tsconfig.json", "--strict"])
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_TEST_ACTOR_ID=make_actor(c))
    out = sh([node, "--test", "--test-reporter=spec",
              os.path.join("dist", "test", "client.test.js")], env=env)
    print(out, flush=True)
    assert "fail 0" in out, out
test_client_against_a_cluster.cluster = {"dataservice": True}


if __name__ == "__main__":
    check_tools()
    run([test_generated_types_are_current, test_client_against_a_cluster], nodes=1)
