"""Datasets end to end: plans posted through the GCS's address, run by
prism-dataservice's streaming executor as tasks on real workers, blocks in
real object stores (docs/datasets.md)."""
import json
import os
import threading
import time
import urllib.request

from harness import BIN, run, skip, wait_until

PACKAGE = os.path.join(BIN, "..", "tests", "data_test_fns.so")


def need_binaries():
    for b in ("prism-dataservice", "prism-worker"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            skip("%s is not built" % b)
    if not os.path.exists(PACKAGE):
        skip("the test package %s is not built" % PACKAGE)


def upload_package(c):
    with open(PACKAGE, "rb") as f:
        r = c.request("POST", "/api/v1/packages", raw=f.read())
    assert r.status in (200, 201), r
    return r.json()["sha256"]


def post(c, plan, status=201):
    r = c.post("/api/v1/datasets", plan)
    assert r.status == status, (r, plan)
    return r.json()


def dataset(c, did):
    r = c.get("/api/v1/datasets/" + did)
    assert r.status == 200, r
    return r.json()


def count(c, did):
    r = c.get("/api/v1/datasets/%s/count?timeout_ms=60000" % did, timeout=90)
    assert r.status == 200, r
    body = r.json()
    assert body["complete"] and body["state"] == "FINISHED", body
    return body["count"]


def rows(c, did, limit):
    r = c.get("/api/v1/datasets/%s/rows?limit=%d&timeout_ms=60000" % (did, limit), timeout=90)
    assert r.status == 200, r
    body = r.json()
    assert body["complete"], body
    return body["rows"]


def fn(pkg, function, **args):
    return {"package": pkg, "function": function, "args": args}


def test_range_map_filter_limit(c):
    """range -> map_batches(builtin cast) -> filter(package) -> limit, every row checked,
    in order and without."""
    need_binaries()
    pkg = upload_package(c)
    ops = [{"op": "range", "n": 100000, "override_num_blocks": 10},
           {"op": "map_batches", "fn": fn("builtin", "cast", column="id", dtype="float64")},
           {"op": "filter", "fn": fn(pkg, "keep_multiples", column="id", of=3)},
           {"op": "limit", "limit": 5000}]
    d = post(c, {"name": "ordered", "ops": ops, "options": {"preserve_order": True}})
    assert d["state"] in ("PENDING", "RUNNING") and d["name"] == "ordered", d
    did = d["dataset_id"]
    assert count(c, did) == 5000
    got = rows(c, did, 5000)
    assert got == [{"id": float(3 * i)} for i in range(5000)], got[:5]
    info = dataset(c, did)
    assert info["state"] == "FINISHED" and info["output"]["rows"] == 5000, info
    # one fused stage (read, cast and filter in one task per block), then the limit
    assert [s["kind"] for s in info["stages"]] == ["read", "limit"], info["stages"]
    assert info["stages"][0]["name"] == "ReadRange->MapBatches(cast)->Filter(keep_multiples)"
    assert info["stages"][1]["rows"] == 5000 and info["stages"][0]["tasks_running"] == 0, info
    assert "Physical Plan" in info["explain"] and info["explain_json"]["physical"], info
    assert info["plan"]["ops"][0] == {"op": "range", "n": 100000, "override_num_blocks": 10}

    # Without preserve_order any 5000 rows may come: each a distinct multiple of 3.
    d = post(c, {"ops": ops})
    assert count(c, d["dataset_id"]) == 5000
    ids = [r["id"] for r in rows(c, d["dataset_id"], 5000)]
    assert len(set(ids)) == 5000 and all(i % 3 == 0 and 0 <= i < 100000 for i in ids), ids[:10]

    # Without a limit: every multiple of 3 below 100000, and the plan's limit pushed into range.
    d = post(c, {"ops": ops[:3]})
    assert count(c, d["dataset_id"]) == 33334
    d = post(c, {"ops": [ops[0], ops[1], {"op": "limit", "limit": 7}]})
    assert count(c, d["dataset_id"]) == 7
    assert rows(c, d["dataset_id"], 7) == [{"id": float(i)} for i in range(7)]
    listed = c.get("/api/v1/datasets").json()["datasets"]
    assert len(listed) == 4 and all(x["state"] == "FINISHED" for x in listed), listed


def test_from_items_and_columns(c):
    """from_items, add_column and map_batches with package functions, normalize,
    select_columns and drop_columns."""
    need_binaries()
    pkg = upload_package(c)
    items = [{"a": i, "s": "row %d" % i} for i in range(300)]
    d = post(c, {"ops": [
        {"op": "from_items", "items": items, "override_num_blocks": 4},
        {"op": "add_column", "col": "b", "fn": fn(pkg, "twice", column="a")},
        {"op": "map", "fn": fn("builtin", "normalize", column="a", mean=[100], std=[2])},
        {"op": "drop_columns", "columns": ["s"]},
        {"op": "select_columns", "columns": ["b", "a"]}],
        "options": {"preserve_order": True}})
    assert count(c, d["dataset_id"]) == 300
    got = rows(c, d["dataset_id"], 300)
    assert got == [{"b": 2.0 * i, "a": (i - 100) / 2} for i in range(300)], got[:3]

    # map_batches with a package function and small batches; items that are not objects.
    d = post(c, {"ops": [
        {"op": "from_items", "items": list(range(50))},
        {"op": "map_batches", "fn": fn(pkg, "square", column="item"), "batch_size": 7}],
        "options": {"preserve_order": True}})
    assert rows(c, d["dataset_id"], 50) == [{"item": float(i), "square": float(i * i)}
                                           for i in range(50)]


def test_bad_plans(c):
    """Plans the library or the executor refuses: 400 naming the operator; functions that
    fail: the dataset FAILED naming the operator."""
    need_binaries()
    pkg = upload_package(c)
    rng = {"op": "range", "n": 10}
    cases = [
        ({"ops": [rng, {"op": "map_batchez", "fn": fn(pkg, "square")}]}, "unknown_operator",
         "ops[1]"),
        ({"ops": [rng, {"op": "map_batches", "fn": fn(pkg, "square"), "batchsize": 4}]},
         "invalid_plan", "ops[1] (map_batches)"),
        ({"ops": [rng, {"op": "sort", "key": "id"}]}, "unsupported_operator", "ops[1]"),
        ({"ops": [{"op": "read_images", "paths": "/nonexistent"}]}, "unsupported_operator",
         "ops[0] (read_images)"),
        ({"ops": [rng, {"op": "map_batches", "fn": fn("builtin", "decode_image")}]},
         "unsupported_operator", "ops[1] (map_batches)"),
        ({"ops": [rng, {"op": "map_batches", "fn": fn(pkg, "square"),
                        "compute": {"kind": "actors"}}]}, "unsupported_operator", "ops[1]"),
        ({"ops": []}, "invalid_plan", ""),
    ]
    for plan, code, where in cases:
        r = c.post("/api/v1/datasets", plan)
        assert r.status == 400, (r, plan)
        err = r.json()["error"]
        assert err["code"] == code and where in err["message"], (err, plan)
    r = c.request("POST", "/api/v1/datasets", raw=b"{not json",
                  headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_plan", r
    assert c.get("/api/v1/datasets").json()["datasets"] == []

    # Failures while running name the operator.
    for op, words in [({"op": "map_batches", "fn": fn(pkg, "broken")},
                       ["ops[2] (map_batches)", "always fails"]),
                      ({"op": "map_batches", "fn": fn("f" * 64, "square")},
                       ["ops[2] (map_batches)", "no package"]),
                      ({"op": "select_columns", "columns": ["nope"]},
                       ["ops[2] (select_columns)", "no column \"nope\""])]:
        d = post(c, {"ops": [rng, {"op": "map_batches", "fn": fn("builtin", "cast",
                                                                 column="id", dtype="int32")},
                             op]})
        r = c.get("/api/v1/datasets/%s/count?timeout_ms=60000" % d["dataset_id"], timeout=90)
        assert r.status == 409 and r.json()["error"]["code"] == "dataset_failed", r
        msg = r.json()["error"]["message"]
        assert all(w in msg for w in words), msg
        info = dataset(c, d["dataset_id"])
        assert info["state"] == "FAILED" and info["error"] == msg, info
    assert c.get("/api/v1/datasets/nope").status == 404
    assert c.get("/api/v1/datasets/nope/count").status == 404


def test_stop(c):
    need_binaries()
    pkg = upload_package(c)
    d = post(c, {"ops": [{"op": "range", "n": 1000000, "override_num_blocks": 200},
                         {"op": "map_batches", "fn": fn(pkg, "slow", ms=300)}]})
    did = d["dataset_id"]
    wait_until(lambda: dataset(c, did)["output"]["rows"] > 0, timeout=60, what="first rows")
    r = c.post("/api/v1/datasets/%s/stop" % did)
    assert r.status == 200 and r.json()["stopping"], r
    wait_until(lambda: dataset(c, did)["state"] == "STOPPED", timeout=30, what="STOPPED")
    info = dataset(c, did)
    assert 0 < info["output"]["rows"] < 1000000 and info["bytes_in_flight"] == 0, info
    r = c.get("/api/v1/datasets/%s/count" % did)
    assert r.status == 200 and not r.json()["complete"], r
    r = c.post("/api/v1/datasets/%s/stop" % did)
    assert r.status == 409 and r.json()["error"]["code"] == "dataset_ended", r
    assert c.post("/api/v1/datasets/nope/stop").status == 404


def store_used(c):
    out = {}
    for node, url in c.store_addresses.items():
        req = urllib.request.Request(url + "/api/v1/stats",
                                     headers={"Authorization": "Bearer " + c.token})
        with urllib.request.urlopen(req, timeout=10) as r:
            out[node] = json.loads(r.read())
    return out


def test_streams_within_the_memory_budget(c):
    """A dataset eight times its memory budget (and as large as the object store) streams
    through two stages, a slow one last, with the store's used bytes never above the budget
    and nothing spilled."""
    need_binaries()
    pkg = upload_package(c)
    budget = 8 << 20
    n = 8 << 20  # 8M int64 rows: 64 MiB in 64 blocks of 1 MiB
    d = post(c, {"ops": [{"op": "range", "n": n, "override_num_blocks": 64},
                         {"op": "map_batches", "fn": fn(pkg, "slow", ms=100), "batch_size": None,
                          "num_cpus": 0.5}],
                 "options": {"memory_budget_bytes": budget}})
    did = d["dataset_id"]
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            used = sum(s["used_bytes"] for s in store_used(c).values())
            peak[0] = max(peak[0], used)
            time.sleep(0.01)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        assert count(c, did) == n
    finally:
        done.set()
        t.join()
    info = dataset(c, did)
    assert [s["kind"] for s in info["stages"]] == ["read", "map"], info["stages"]
    stats = store_used(c)
    spilled = sum(s["spills_total"] + s["spilled_bytes_total"] for s in stats.values())
    print("  peak store use %d bytes, executor peak %d, budget %d, spilled %d" % (
        peak[0], info["peak_bytes_in_flight"], budget, spilled))
    assert 0 < peak[0] <= budget, (peak[0], budget)
    assert info["peak_bytes_in_flight"] <= budget, info
    assert spilled == 0, stats
test_streams_within_the_memory_budget.cluster = {"store_memory": "64MiB"}


def test_default_budget_is_half_the_stores(c):
    """Without memory_budget_bytes a dataset may hold half of the object stores' memory
    (--memory-fraction 0.5), once the node agents' reports named the stores."""
    need_binaries()
    def known():
        m = c.get("/metrics", base=c.dataservice_url).body.decode()
        return "prism_dataservice_store_capacity_bytes %d" % (2 * (64 << 20)) in m
    wait_until(known, timeout=20, what="the dataservice knowing both stores")
    d = post(c, {"ops": [{"op": "range", "n": 10}]})
    assert d["memory_budget_bytes"] == 64 << 20, d
    assert count(c, d["dataset_id"]) == 10
    d = post(c, {"ops": [{"op": "range", "n": 10}], "options": {"memory_budget_bytes": 12345}})
    assert d["memory_budget_bytes"] == 12345, d
test_default_budget_is_half_the_stores.cluster = {"nodes": 2}


def test_without_dataservice(c):
    r = c.get("/api/v1/datasets")
    assert r.status == 503 and r.json()["error"]["code"] == "dataservice_unavailable", r
test_without_dataservice.cluster = {"dataservice": False, "nodes": 0}


if __name__ == "__main__":
    run([test_range_map_filter_limit, test_from_items_and_columns, test_bad_plans, test_stop,
         test_streams_within_the_memory_budget, test_default_budget_is_half_the_stores,
         test_without_dataservice], dataservice=True)
