#!/usr/bin/python3
"""Objects across nodes: an object put into node A's object store is pulled by
node B's store over the bridge and read back intact from B; once A is gone B's
copy still serves, and a pull from the dead node fails cleanly."""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netcluster import BIN, run, skip  # noqa: E402

MiB = 1 << 20


def object_id(n):
    return "c1a55e7" + "0" * 25 + "%08x" % n


def test_object_made_on_a_used_on_b(c):
    a, b = c.node_stores["node-1"][1], c.node_stores["node-2"][1]
    assert a.startswith("http://%s:" % c.net.node_ip(1)), a
    assert b.startswith("http://%s:" % c.net.node_ip(2)), b
    data = os.urandom(8 * MiB + 123)
    oid = object_id(1)
    r = c.http(a, "PUT", "/api/v1/objects/" + oid, data, {"Content-Type": "application/x-test"})
    assert r.status == 201, r
    assert c.http(b, "GET", "/api/v1/objects/" + oid).status == 404
    r = c.http(b, "POST", "/api/v1/objects/%s/pull" % oid,
               json.dumps({"source": a, "timeout_ms": 30000}).encode(),
               {"Content-Type": "application/json"})
    assert r.status == 200 and r.json()["size"] == len(data), r
    r = c.http(b, "GET", "/api/v1/objects/" + oid)
    assert r.status == 200, r
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest(), "bytes differ"
    assert r.headers.get("Content-Type") == "application/x-test", r.headers
    stats = c.http(b, "GET", "/api/v1/stats").json()
    assert stats["transfer_in_bytes_total"] >= len(data), stats
    # node-3 pulls from B (a copy of a copy), over the bridge too
    c3 = c.node_stores["node-3"][1]
    r = c.http(c3, "POST", "/api/v1/objects/%s/pull" % oid, json.dumps({"source": b}).encode(),
               {"Content-Type": "application/json"})
    assert r.status == 200, r
    # A dies: B's copy still serves; a pull of something only A had fails cleanly.
    only_a = object_id(2)
    assert c.http(a, "PUT", "/api/v1/objects/" + only_a, b"x" * MiB).status == 201
    c.kill_node("node-1")
    r = c.http(b, "GET", "/api/v1/objects/" + oid)
    assert r.status == 200 and hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest()
    r = c.http(b, "POST", "/api/v1/objects/%s/pull" % only_a,
               json.dumps({"source": a, "timeout_ms": 5000}).encode(),
               {"Content-Type": "application/json"}, timeout=30)
    assert r.status == 502, r
    assert c.http(b, "GET", "/api/v1/objects/" + only_a).status == 404, "no partial object"


if __name__ == "__main__":
    if not os.access(os.path.join(BIN, "prism-objectstore"), os.X_OK):
        skip("prism-objectstore is not built: the object transfer scenario needs its HTTP API")
    run([test_object_made_on_a_used_on_b], nodes=3, objectstores=True)
