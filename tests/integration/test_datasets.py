"""Datasets end to end: plans posted through the GCS's address, run by
prism-dataservice's streaming executor as tasks on real workers, blocks in
real object stores (docs/datasets.md)."""
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

from harness import BIN, NatsSubscriber, kill_quietly, run, skip, wait_until

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
    assert info["stages"][0]["rows_per_s"] > 0, info["stages"]
    assert "Physical Plan" in info["explain"] and info["explain_json"]["physical"], info
    assert info["plan"]["ops"][0] == {"op": "range", "n": 100000, "override_num_blocks": 10}

    # Without preserve_order any 5000 rows may come: each a distinct multiple of 3.
    d = post(c, {"ops": ops})
    assert count(c, d["dataset_id"]) == 5000
    ids = [r["id"] for r in rows(c, d["dataset_id"], 5000)]
    assert len(set(ids)) == 5000 and all(i % 3 == 0 and 0 <= i < 100000 for i in ids), ids[:10]

    # Without a limit: every multiple of 3 below 100000; then a limit of 7 after the cast.
    d = post(c, {"ops": ops[:3]})
    assert count(c, d["dataset_id"]) == 33334
    d = post(c, {"ops": [ops[0], ops[1], {"op": "limit", "limit": 7}]})
    assert count(c, d["dataset_id"]) == 7
    # a limit after map_batches stays a limit stage: any 7 rows without preserve_order
    ids = [r["id"] for r in rows(c, d["dataset_id"], 7)]
    assert len(set(ids)) == 7 and all(0 <= i < 100000 for i in ids), ids
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
        ({"ops": [rng, {"op": "sort"}]}, "invalid_plan", 'ops[1] (sort): missing "key"'),
        ({"ops": [rng, {"op": "groupby", "key": "id", "aggs": [{"fn": "median", "on": "id"}]}]},
         "invalid_plan", "ops[1] (groupby)"),
        ({"ops": [rng, {"op": "groupby", "key": "id", "aggs": [{"fn": "sum"}]}]},
         "invalid_plan", 'ops[1] (groupby): "aggs[0].on"'),
        ({"ops": [rng, {"op": "repartition", "num_blocks": 0}]}, "invalid_plan",
         "ops[1] (repartition)"),
        ({"ops": [{"op": "read_images", "paths": ["/tmp", "gs://bucket/a.jpg"]}]},
         "invalid_plan", 'ops[0] (read_images): "paths[1]"'),
        ({"ops": [rng, {"op": "map_batches", "fn": fn(pkg, "square"), "concurrency": 2,
                        "compute": {"kind": "actors"}}]}, "invalid_plan", "ops[1]"),
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
    # Writes are off without --data-roots: refused before anything runs.
    r = c.post("/api/v1/datasets", {"ops": [rng, {"op": "write_jsonl", "path": "/tmp/out"}]})
    err = r.json()["error"]
    assert r.status == 403 and err["code"] == "path_not_allowed", r
    assert "ops[1] (write_jsonl)" in err["message"] and "--data-roots" in err["message"], err
    assert c.get("/api/v1/datasets").json()["datasets"] == []

    # Failures while running name the operator.
    for op, words in [({"op": "map_batches", "fn": fn(pkg, "broken")},
                       ["ops[2] (map_batches)", "always fails"]),
                      ({"op": "map_batches", "fn": fn("f" * 64, "square")},
                       ["ops[2] (map_batches)", "no package"]),
                      ({"op": "select_columns", "columns": ["nope"]},
                       ["ops[2] (select_columns)", "no column \"nope\""]),
                      ({"op": "map_batches", "fn": fn("builtin", "decode_image")},
                       ["ops[2] (map_batches)", "no binary column \"bytes\""])]:
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
    # IDs the server decodes are forwarded as they came (not a bad URL, nor
    # another path): unknown, as any
    for path in ("/api/v1/datasets/a%20b", "/api/v1/datasets/x%3Fa=1/count",
                 "/api/v1/datasets/x%23y"):
        r = c.get(path)
        assert r.status == 404 and r.json()["error"]["code"] == "not_found", (path, r)
    assert c.get("/api/v1/datasets/nope").status == 404  # the address of the dataservice kept


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
    return {node: c.store_stats(node) for node in c.store_addresses}


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
    # a running dataset's default budget follows the stores: a third node's joins it
    pkg = upload_package(c)
    d = post(c, {"ops": [{"op": "range", "n": 800, "override_num_blocks": 80},
                         {"op": "map_batches", "fn": fn(pkg, "slow", ms=200),
                          "batch_size": None}]})
    assert d["memory_budget_bytes"] == 64 << 20, d
    c.start_node("node-3")
    c.wait_nodes(3)
    wait_until(lambda: dataset(c, d["dataset_id"])["memory_budget_bytes"] == 96 << 20,
               timeout=20, what="the running dataset's budget to take the third store")
    assert dataset(c, d["dataset_id"])["state"] == "RUNNING"
    assert count(c, d["dataset_id"]) == 800
test_default_budget_is_half_the_stores.cluster = {"nodes": 2}


def test_without_dataservice(c):
    r = c.get("/api/v1/datasets")
    assert r.status == 503 and r.json()["error"]["code"] == "dataservice_unavailable", r
test_without_dataservice.cluster = {"dataservice": False, "nodes": 0}


# ---------- reads of files ----------

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_image(path, fmt, w, h, channels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    r = subprocess.run([os.path.join(BIN, "image_writer"), fmt, path, str(w), str(h),
                        str(channels)], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def gradient(w, h, channels):
    """The pixels image_writer writes, as the nested lists a tensor row reads back as."""
    def px(x, y):
        v = [x * 255 // (w - 1), y * 255 // (h - 1), 128, 255]
        return v[:channels]
    return [[px(x, y) for x in range(w)] for y in range(h)]


def failed_with(c, plan):
    d = post(c, plan)
    r = c.get("/api/v1/datasets/%s/count?timeout_ms=60000" % d["dataset_id"], timeout=90)
    assert r.status == 409 and r.json()["error"]["code"] == "dataset_failed", r
    return r.json()["error"]["message"]


def test_read_files(c):
    """read_binary_files, read_text, read_jsonl and read_csv over files and directories,
    with paths, every row checked (names starting with "." and symbolic links under a
    directory left out); files split into read tasks."""
    need_binaries()
    top = tempfile.mkdtemp(prefix="prism-data-")
    try:
        for i in range(5):
            write(os.path.join(top, "bin", "f%d.dat" % i), bytes([i]) * (10 + i))
        write(os.path.join(top, "bin", ".hidden"), b"skipped")
        write(os.path.join(top, "bin", "sub", "g.dat"), b"\x00\xffnested")
        os.symlink(os.path.join(top, "bin", "f0.dat"), os.path.join(top, "bin", "link.dat"))
        d = post(c, {"ops": [{"op": "read_binary_files", "paths": os.path.join(top, "bin"),
                              "include_paths": True, "override_num_blocks": 3}],
                     "options": {"preserve_order": True}})
        got = rows(c, d["dataset_id"], 100)
        want = [{"bytes": base64.b64encode(bytes([i]) * (10 + i)).decode(),
                 "path": os.path.join(top, "bin", "f%d.dat" % i)} for i in range(5)]
        want.append({"bytes": base64.b64encode(b"\x00\xffnested").decode(),
                     "path": os.path.join(top, "bin", "sub", "g.dat")})
        assert got == want, got
        assert dataset(c, d["dataset_id"])["stages"][0]["blocks"] == 3

        # A directory of thousands of files is looked at by several threads:
        # the same files, in name order (a subdirectory at its name's place),
        # other extensions and hidden names left out.
        many = os.path.join(top, "many")
        want_paths = []
        for i in range(2600):
            name = "f%04d.%s" % (i, "txt" if i % 7 == 3 else "dat")
            write(os.path.join(many, name), b"x" * (i % 50))
            if name.endswith(".dat"):
                want_paths.append(os.path.join(many, name))
            if i == 1300:
                write(os.path.join(many, "f1300d", "inner.dat"), b"inner")
                want_paths.append(os.path.join(many, "f1300d", "inner.dat"))
        write(os.path.join(many, ".f0001.dat"), b"hidden")
        d = post(c, {"ops": [{"op": "read_binary_files", "paths": many, "include_paths": True,
                              "file_extensions": ["dat"]},
                             {"op": "select_columns", "columns": ["path"]}],
                     "options": {"preserve_order": True}})
        assert [r["path"] for r in rows(c, d["dataset_id"], 3000)] == want_paths

        write(os.path.join(top, "a.txt"), b"one\r\ntwo\n\nthree")
        write(os.path.join(top, "b.txt"), "d\u00e9j\u00e0\n".encode())
        d = post(c, {"ops": [{"op": "read_text", "paths": [os.path.join(top, "a.txt"),
                                                           os.path.join(top, "b.txt")]}],
                     "options": {"preserve_order": True}})
        assert rows(c, d["dataset_id"], 10) == [{"text": t} for t in
                                                ["one", "two", "three", "d\u00e9j\u00e0"]]
        d = post(c, {"ops": [{"op": "read_text", "paths": os.path.join(top, "a.txt"),
                              "drop_empty_lines": False}]})
        assert count(c, d["dataset_id"]) == 4

        write(os.path.join(top, "j", "x.jsonl"),
              b'{"a": 1, "s": "x"}\n\n{"a": 2, "s": null}\n{"a": 3, "s": "z", "v": [1, 2]}\n')
        d = post(c, {"ops": [{"op": "read_jsonl", "paths": os.path.join(top, "j", "*.jsonl")}]})
        assert rows(c, d["dataset_id"], 10) == [{"a": 1, "s": "x", "v": None},
                                                {"a": 2, "s": None, "v": None},
                                                {"a": 3, "s": "z", "v": [1, 2]}]

        write(os.path.join(top, "c", "x.csv"),
              b'id,name,score\r\n1,"Smith, J",2.5\r\n2,"say ""hi""",\r\n3, spaced ,4\r\n')
        write(os.path.join(top, "c", "y.txt"), b"id;name;score\n4;x;1\n")
        d = post(c, {"ops": [{"op": "read_csv", "paths": os.path.join(top, "c"),
                              "file_extensions": ["csv"], "include_paths": True},
                             {"op": "drop_columns", "columns": ["path"]}]})
        assert rows(c, d["dataset_id"], 10) == [
            {"id": 1, "name": "Smith, J", "score": 2.5},
            {"id": 2, "name": 'say "hi"', "score": None},
            {"id": 3, "name": " spaced ", "score": 4.0}]
        d = post(c, {"ops": [{"op": "read_csv", "paths": os.path.join(top, "c", "y.txt"),
                              "delimiter": ";"}]})
        assert rows(c, d["dataset_id"], 10) == [{"id": 4, "name": "x", "score": 1}]

        # What cannot be read fails the dataset naming the operator and the file.
        write(os.path.join(top, "bad.csv"), b'a,b\n1,"unterminated\n')
        write(os.path.join(top, "bad.jsonl"), b'{"a": 1}\n[2]\n')
        write(os.path.join(top, "ragged.csv"), b"a,b\n1,2\n3\n")
        for plan, words in [
                ({"op": "read_text", "paths": os.path.join(top, "missing")},
                 ["ops[0] (read_text)", os.path.join(top, "missing"), "No such file"]),
                ({"op": "read_csv", "paths": os.path.join(top, "bad.csv")},
                 ["ops[0] (read_csv)", "bad.csv", "not valid CSV"]),
                ({"op": "read_csv", "paths": os.path.join(top, "ragged.csv")},
                 ["ragged.csv", "record 3 has 1 fields"]),
                ({"op": "read_jsonl", "paths": os.path.join(top, "bad.jsonl")},
                 ["ops[0] (read_jsonl)", "bad.jsonl: line 2: not a JSON object"]),
                ({"op": "read_text", "paths": os.path.join(top, "bin", "*.none")},
                 ["matches no file"]),
                ({"op": "read_binary_files", "paths": top, "file_extensions": ["xyz"]},
                 ["no files found"])]:
            msg = failed_with(c, {"ops": [plan]})
            assert all(w in msg for w in words), (msg, words)

        # skip_corrupt: what cannot be read or parsed is left out, whole, and counted
        write(os.path.join(top, "mixed", "a.jsonl"), b'{"a": 1}\n{"a": 2}\n')
        write(os.path.join(top, "mixed", "b.jsonl"), b'{"a": 3}\nnot json\n')
        write(os.path.join(top, "mixed", "c.jsonl"), b'{"a": 4}\n')
        d = post(c, {"ops": [{"op": "read_jsonl", "paths": os.path.join(top, "mixed"),
                              "override_num_blocks": 1}],
                     "options": {"skip_corrupt": True}})
        assert sorted(r["a"] for r in rows(c, d["dataset_id"], 10)) == [1, 2, 4]
        assert dataset(c, d["dataset_id"])["output"]["skipped"] == 1
        # the read fused into a shuffle's maps: the same rows, the same file counted
        d = post(c, {"ops": [{"op": "read_jsonl", "paths": os.path.join(top, "mixed"),
                              "override_num_blocks": 2}, {"op": "random_shuffle"}],
                     "options": {"skip_corrupt": True}})
        assert sorted(r["a"] for r in rows(c, d["dataset_id"], 10)) == [1, 2, 4]
        info = dataset(c, d["dataset_id"])
        assert info["output"]["skipped"] == 1 and len(info["stages"]) == 1, info
        write(os.path.join(top, "t", "good.txt"), b"x\ny\n")
        write(os.path.join(top, "t", "bad.txt"), b"ok\n\xff\xfe\n")
        d = post(c, {"ops": [{"op": "read_text", "paths": os.path.join(top, "t")}],
                     "options": {"skip_corrupt": True}})
        assert sorted(r["text"] for r in rows(c, d["dataset_id"], 10)) == ["x", "y"]
        assert dataset(c, d["dataset_id"])["output"]["skipped"] == 1
    finally:
        shutil.rmtree(top)


def test_read_images(c):
    """read_images of PNGs (checked pixel by pixel) and JPEGs (within JPEG's loss), with size
    and mode, and the image builtins in map_batches: crops, flips, resize, normalize, and
    decode_image after read_binary_files."""
    need_binaries()
    top = tempfile.mkdtemp(prefix="prism-img-")
    try:
        for i in range(4):
            make_image(os.path.join(top, "png", "p%d.png" % i), "png", 6, 4, 3)
        write(os.path.join(top, "png", "notes.txt"), b"not an image")
        d = post(c, {"ops": [{"op": "read_images", "paths": os.path.join(top, "png"),
                              "include_paths": True}],
                     "options": {"preserve_order": True}})
        got = rows(c, d["dataset_id"], 10)
        assert [r["path"] for r in got] == [os.path.join(top, "png", "p%d.png" % i)
                                            for i in range(4)], got
        assert all(r["image"] == gradient(6, 4, 3) for r in got), got[0]

        ops = [{"op": "read_images", "paths": os.path.join(top, "png"), "mode": "RGBA"},
               {"op": "map_batches", "fn": fn("builtin", "center_crop", size=[2, 4])},
               {"op": "map_batches", "fn": fn("builtin", "flip")}]
        d = post(c, {"ops": ops})
        img = gradient(6, 4, 4)
        want = [list(reversed(row[1:5])) for row in img[1:3]]
        got = rows(c, d["dataset_id"], 10)
        assert len(got) == 4 and all(r["image"] == want for r in got), got[0]
        info = dataset(c, d["dataset_id"])
        assert [s["name"] for s in info["stages"]] == [
            "ReadImages->MapBatches(center_crop)->MapBatches(flip)"], info["stages"]

        # random_crop picks a window of the image; resize to 3 x 2 nearest; normalize.
        d = post(c, {"ops": [
            {"op": "read_images", "paths": os.path.join(top, "png"), "mode": "L"},
            {"op": "map_batches", "fn": fn("builtin", "random_crop", size=[4, 3], seed=7)},
            {"op": "map_batches", "fn": fn("builtin", "flip", direction="vertical", p=0)}]})
        crops = [r["image"] for r in rows(c, d["dataset_id"], 10)]
        d = post(c, {"ops": [{"op": "read_images", "paths": os.path.join(top, "png"),
                              "mode": "L", "override_num_blocks": 1}]})
        full = rows(c, d["dataset_id"], 1)[0]["image"]  # grey from RGB: libpng's weights
        windows = [[row[x:x + 3] for row in full] for x in range(4)]
        assert len(crops) == 4 and all(i in windows for i in crops), (crops, full)
        d = post(c, {"ops": [
            {"op": "read_images", "paths": os.path.join(top, "png"), "size": [2, 3], "mode": "L"},
            {"op": "map_batches", "fn": fn("builtin", "normalize", mean=[128], std=[2])}]})
        got = rows(c, d["dataset_id"], 1)[0]["image"]
        assert len(got) == 2 and len(got[0]) == 3 and len(got[0][0]) == 1, got
        assert all(-64.0 <= v[0] <= 63.5 for row in got for v in row), got

        # JPEGs: decoded close to what was written; decode_image of the bytes and read_images
        # agree; resize to 8 x 12 keeps the gradient's corners.
        for i in range(3):
            make_image(os.path.join(top, "jpg", "j%d.jpg" % i), "jpeg", 32, 24, 3)
        d = post(c, {"ops": [{"op": "read_images", "paths": os.path.join(top, "jpg")}]})
        a = rows(c, d["dataset_id"], 3)
        want = gradient(32, 24, 3)
        err = max(abs(p - q) for r in a for y in range(24) for x in range(32)
                  for p, q in zip(r["image"][y][x], want[y][x]))
        assert len(a) == 3 and err <= 12, err
        d = post(c, {"ops": [
            {"op": "read_binary_files", "paths": os.path.join(top, "jpg")},
            {"op": "map_batches", "fn": fn("builtin", "decode_image")},
            {"op": "map_batches", "fn": fn("builtin", "resize", size=[8, 12])}]})
        b = rows(c, d["dataset_id"], 3)
        assert sorted(b[0].keys()) == ["image"], b[0].keys()
        img = b[0]["image"]
        assert len(img) == 8 and len(img[0]) == 12, (len(img), len(img[0]))
        assert img[0][0][0] < 30 and img[0][11][0] > 225 and img[7][0][1] > 225, img

        # Corrupt, mixed-size and missing images fail naming the file.
        write(os.path.join(top, "bad", "a.png"), open(os.path.join(top, "png", "p0.png"),
                                                      "rb").read()[:40])
        make_image(os.path.join(top, "mixed", "a.png"), "png", 6, 4, 3)
        make_image(os.path.join(top, "mixed", "b.png"), "png", 5, 4, 3)
        write(os.path.join(top, "fake", "x.jpg"), b"\xff\xd8\xff garbage")
        for plan, words in [
                ({"op": "read_images", "paths": os.path.join(top, "bad")},
                 ["ops[0] (read_images)", "a.png", "PNG"]),
                ({"op": "read_images", "paths": os.path.join(top, "fake", "x.jpg")},
                 ["x.jpg", "JPEG"]),
                ({"op": "read_images", "paths": os.path.join(top, "mixed"),
                  "override_num_blocks": 1},
                 ["b.png", "unlike the first image", "give a size"])]:
            msg = failed_with(c, {"ops": [plan]})
            assert all(w in msg for w in words), (msg, words)
        d = post(c, {"ops": [{"op": "read_images", "paths": os.path.join(top, "mixed"),
                              "size": [4, 6]}]})
        assert count(c, d["dataset_id"]) == 2
        msg = failed_with(c, {"ops": [
            {"op": "read_images", "paths": os.path.join(top, "png")},
            {"op": "map_batches", "fn": fn("builtin", "center_crop", size=[5, 5])}]})
        assert "ops[1] (map_batches)" in msg and "cannot crop" in msg, msg

        # skip_corrupt: the corrupt files are left out and counted, by read_images and by
        # decode_image; paths stay with their images
        shutil.copy(os.path.join(top, "bad", "a.png"), os.path.join(top, "png", "p9.png"))
        shutil.copy(os.path.join(top, "fake", "x.jpg"), os.path.join(top, "png", "x.jpg"))
        d = post(c, {"ops": [{"op": "read_images", "paths": os.path.join(top, "png"),
                              "include_paths": True, "override_num_blocks": 1}],
                     "options": {"skip_corrupt": True}})
        got = rows(c, d["dataset_id"], 10)
        assert sorted(os.path.basename(r["path"]) for r in got) == \
            ["p%d.png" % i for i in range(4)], [r["path"] for r in got]
        assert all(r["image"] == gradient(6, 4, 3) for r in got)
        assert dataset(c, d["dataset_id"])["output"]["skipped"] == 2
        d = post(c, {"ops": [
            {"op": "read_binary_files", "paths": os.path.join(top, "png"),
             "file_extensions": ["png", "jpg"], "override_num_blocks": 1},
            {"op": "map_batches", "fn": fn("builtin", "decode_image")}],
            "options": {"skip_corrupt": True}})
        assert count(c, d["dataset_id"]) == 4
        assert dataset(c, d["dataset_id"])["output"]["skipped"] == 2
    finally:
        shutil.rmtree(top)


def test_image_runs_fused(c):
    """decode_image -> random_crop -> flip in one stage runs as one pass per image (the
    optimizer marks the run): seeded, its images equal those of the same builtins in stages
    of their own (unfused), and those of crop -> flip fused without the decode. The crop is
    37 pixels wide: a flip of RGB lines reverses five pixels a step, then the rest."""
    need_binaries()
    top = tempfile.mkdtemp(prefix="prism-img-")
    try:
        for i in range(8):
            make_image(os.path.join(top, "p%d.png" % i), "png", 40, 12, 3)

        steps = [("decode_image", {}), ("random_crop", {"size": [6, 37], "seed": 11}),
                 ("flip", {"p": 0.5, "seed": 5})]

        def run_images(cpus, steps=steps, paths=top):
            ops = [{"op": "read_binary_files", "paths": paths, "override_num_blocks": 1}]
            for (name, args), n in zip(steps, cpus):
                ops.append({"op": "map_batches", "fn": fn("builtin", name, **args),
                            "num_cpus": n})
            d = post(c, {"ops": ops, "options": {"preserve_order": True}})
            got = [r["image"] for r in rows(c, d["dataset_id"], 10)]
            return got, dataset(c, d["dataset_id"])

        fused, info = run_images([1, 1, 1])
        assert len(info["stages"]) == 1, info["stages"]
        ops = info["explain_json"]["physical"]["stages"][0]["ops"]
        args = [o["spec"]["fn"]["args"] for o in ops[1:]]
        assert [f["function"] for f in args[0]["then"]] == ["random_crop", "flip"], args
        assert args[1]["fused"] is True and args[2]["fused"] is True, args
        unfused, info = run_images([1, 0.5, 0.25])
        assert len(info["stages"]) == 3, info["stages"]
        assert all("then" not in o["spec"]["fn"]["args"]
                   for s in info["explain_json"]["physical"]["stages"] for o in s["ops"][1:])
        crop_flip, info = run_images([0.5, 1, 1])  # decode alone, crop -> flip fused
        assert [s["name"] for s in info["stages"]][1:] == [
            "MapBatches(decode_image)", "MapBatches(random_crop)->MapBatches(flip)"], info
        ops = info["explain_json"]["physical"]["stages"][2]["ops"]
        assert [f["function"] for f in ops[0]["spec"]["fn"]["args"]["then"]] == ["flip"], ops
        assert len(fused) == 8 and len(fused[0]) == 6 and len(fused[0][0]) == 37, fused[0]
        assert fused == unfused and crop_flip == unfused
        # what the builtins document, drawn with their generator (splitmix64): per image the
        # crop's y0 then x0, and the flip's 53-bit number against p
        def splitmix(state):
            while True:
                state = (state + 0x9e3779b97f4a7c15) % 2**64
                z = (state ^ (state >> 30)) * 0xbf58476d1ce4e5b9 % 2**64
                z = (z ^ (z >> 27)) * 0x94d049bb133111eb % 2**64
                yield z ^ (z >> 31)
        crop_rng, flip_rng, full = splitmix(11), splitmix(5), gradient(40, 12, 3)
        want = []
        for _ in range(8):
            y0, x0 = next(crop_rng) % 7, next(crop_rng) % 4
            img = [row[x0:x0 + 37] for row in full[y0:y0 + 6]]
            want.append([list(reversed(r)) for r in img]
                        if (next(flip_rng) >> 11) / 2.0**53 < 0.5 else img)
        assert unfused == want, (unfused, want)
        assert len({json.dumps(i) for i in want}) > 1, want

        # a crop after a flip is not part of the run: decode -> flip fused, the crop alone
        flip_first = [steps[0], steps[2], steps[1]]
        got, info = run_images([1, 1, 1], flip_first)
        ops = info["explain_json"]["physical"]["stages"][0]["ops"]
        assert [f["function"] for f in ops[1]["spec"]["fn"]["args"]["then"]] == ["flip"], ops
        assert "fused" not in ops[3]["spec"]["fn"]["args"], ops
        assert got == run_images([1, 0.5, 0.25], flip_first)[0]

        # normalize ends a run: the pixels cut, flipped and made float32 in the same pass,
        # the floats those of normalize on its own
        norm = ("normalize", {"mean": [100, 120, 140], "std": [2, 4, 8]})
        fused, info = run_images([1, 1, 1, 1], steps + [norm])
        ops = info["explain_json"]["physical"]["stages"][0]["ops"]
        assert [f["function"] for f in ops[1]["spec"]["fn"]["args"]["then"]] == [
            "random_crop", "flip", "normalize"], ops
        assert ops[4]["spec"]["fn"]["args"]["fused"] is True, ops
        unfused, info = run_images([1, 0.5, 0.25, 0.125], steps + [norm])
        assert len(info["stages"]) == 4, info["stages"]
        assert fused == unfused, (fused[0][0][:2], unfused[0][0][:2])
        assert all(abs(f[ch] - (w[ch] - (100, 120, 140)[ch]) / (2, 4, 8)[ch]) < 1e-6
                   for img, wimg in zip(fused, want) for row, wrow in zip(img, wimg)
                   for f, w in zip(row, wrow) for ch in range(3)), fused[0][0][:2]
        # a run headed by a crop of float pixels: cut and flipped, then normalized on its own
        cast = ("cast", {"dtype": "float32"})
        got, info = run_images([1, 1, 1, 1, 1], [steps[0], cast, steps[1], steps[2], norm])
        ops = info["explain_json"]["physical"]["stages"][0]["ops"]
        assert [f["function"] for f in ops[3]["spec"]["fn"]["args"]["then"]] == [
            "flip", "normalize"], ops
        assert got == fused, (got[0][0][:2], fused[0][0][:2])

        # JPEGs: the fused run decodes only the rows of each crop, the same pixels as a
        # decode of the whole image cut after it
        jpg = os.path.join(top, "jpg")
        for i in range(6):
            make_image(os.path.join(jpg, "j%d.jpg" % i), "jpeg", 40, 48, 3)
        jsteps = [("decode_image", {}), ("random_crop", {"size": [9, 37], "seed": 3}),
                  ("flip", {"p": 0.5, "seed": 4})]
        fused, info = run_images([1, 1, 1], jsteps, jpg)
        assert len(info["stages"]) == 1 and len(fused) == 6, info["stages"]
        assert len(fused[0]) == 9 and len(fused[0][0]) == 37, fused[0]
        assert fused == run_images([1, 0.5, 0.25], jsteps, jpg)[0]
        assert len({json.dumps(i) for i in fused}) > 1

        # Blocks above the inline size go to the object store, a fused run's made in the
        # task's return space there: the same images; and with a corrupt file skipped (the
        # block shorter than that space, so made apart), the same again
        big = os.path.join(top, "big")
        for i in range(6):
            make_image(os.path.join(big, "b%d.png" % i), "png", 120, 100, 3)
        large = [("decode_image", {}), ("random_crop", {"size": [90, 110], "seed": 2}),
                 ("flip", {"p": 0.5, "seed": 9})]

        def run_big(cpus, skip_corrupt=False):
            ops = [{"op": "read_binary_files", "paths": big, "override_num_blocks": 1}]
            for (name, args), n in zip(large, cpus):
                ops.append({"op": "map_batches", "fn": fn("builtin", name, **args),
                            "num_cpus": n})
            # a budget that no block of these comes near: each stage's block is one task's
            # (seeded crops repeat for a given block; a probe would cut it in two)
            d = post(c, {"ops": ops, "options": {"preserve_order": True,
                                                  "skip_corrupt": skip_corrupt,
                                                  "memory_budget_bytes": 1 << 30}})
            got = [r["image"] for r in rows(c, d["dataset_id"], 10)]
            return got, dataset(c, d["dataset_id"])
        fused, info = run_big([1, 1, 1])
        assert len(info["stages"]) == 1 and info["stages"][0]["bytes"] > 100 * 1024, info
        assert len(fused) == 6 and fused == run_big([1, 0.5, 0.25])[0]
        write(os.path.join(big, "b9.png"), b"not a png")
        fused, info = run_big([1, 1, 1], skip_corrupt=True)
        assert len(fused) == 6 and info["output"]["skipped"] == 1, info
        assert fused == run_big([1, 0.5, 0.25], skip_corrupt=True)[0]
    finally:
        shutil.rmtree(top)


def test_block_sizes(c):
    """A read whose fused operators make blocks far larger than its files (decode, then
    normalize to float32) is cut into splits whose blocks stay near target_max_block_size
    (docs/datasets.md#block-sizes); every row arrives once, in order; override_num_blocks
    still gives exactly that many blocks."""
    need_binaries()
    top = tempfile.mkdtemp(prefix="prism-img-")
    try:
        n, w, h = 40, 64, 48
        for i in range(n):
            make_image(os.path.join(top, "p%02d.png" % i), "png", w, h, 3)
        target = 65536  # an image normalized: 64 * 48 * 3 * 4 = 36864 bytes
        image = w * h * 3 * 4

        def run_images(**read):
            ops = [dict({"op": "read_images", "paths": top, "include_paths": True}, **read),
                   {"op": "map_batches", "fn": fn("builtin", "normalize", mean=[128], std=[2])}]
            d = post(c, {"ops": ops, "options": {"preserve_order": True,
                                                  "target_max_block_size": target}})
            got = rows(c, d["dataset_id"], n + 1)
            info = dataset(c, d["dataset_id"])
            assert info["state"] == "FINISHED", info
            return got, info["stages"][0]

        got, stage = run_images()
        assert [r["path"] for r in got] == [os.path.join(top, "p%02d.png" % i)
                                            for i in range(n)], [r["path"] for r in got]
        want = [[[(v - 128) / 2 for v in px] for px in row] for row in gradient(w, h, 3)]
        assert all(r["image"] == want for r in got), got[0]["image"][0][:2]
        assert stage["rows"] == n, stage
        # The files' bytes alone would make 16 splits of 2-3 images (73-110 KiB each). Cut to
        # the target, a block holds one image, but for the first split, run alone to learn
        # the sizes: the files in a 64th of the target, within the first of those 16 splits.
        assert n - 2 <= stage["blocks"] <= n, stage
        assert stage["bytes"] <= stage["blocks"] * target and stage["bytes"] >= n * image, stage

        fixed, stage = run_images(override_num_blocks=4)
        assert stage["blocks"] == 4 and fixed == got, stage

        # A map stage of its own (an actor pool) that makes 4 bytes of each: its one input
        # block (the read's, 40 images) is taken in slices whose output stays near the
        # target, the first (an eighth of the block) alone to learn that
        d = post(c, {"ops": [
            {"op": "read_images", "paths": top, "include_paths": True, "override_num_blocks": 1},
            {"op": "map_batches", "fn": fn("builtin", "normalize", mean=[128], std=[2]),
             "compute": {"kind": "actors", "min_size": 1, "max_size": 2}}],
            "options": {"preserve_order": True, "target_max_block_size": target}})
        sliced = rows(c, d["dataset_id"], n + 1)
        stages = dataset(c, d["dataset_id"])["stages"]
        assert stages[0]["blocks"] == 1 and stages[1]["rows"] == n, stages
        assert n - 8 <= stages[1]["blocks"] <= n, stages
        assert sliced == got, [r["path"] for r in sliced]

        # A consumer's batch size (iter_batches sends it): blocks of whole batches of 4,
        # so that each batch is read in place, even where one is over the target (three
        # images here); the probe may be short, and so is the read's last round: no more
        # than a split for each CPU of the cluster, cut in quarter batches (one image)
        target = 3 * image + 1024
        cpus = int(c.get("/api/v1/cluster").json()["resources"]["total"]["CPU"])
        for order in (False, True):
            r = c.post("/api/v1/datasets?stream=true&batch_size=4", {
                "ops": [{"op": "read_images", "paths": top},
                        {"op": "map_batches", "fn": fn("builtin", "normalize", mean=[128], std=[2])}],
                "options": {"preserve_order": order, "target_max_block_size": target}})
            assert r.status == 201, r
            did, sizes = r.json()["dataset_id"], []
            while True:
                r = c.post("/api/v1/datasets/%s/blocks/next?timeout_ms=30000" % did, None)
                assert r.status == 200, r
                b = r.json()
                if b["block"]:
                    sizes.append(b["block"]["rows"])
                    r = c.post("/api/v1/datasets/%s/blocks/release?seq=%d" % (did, b["block"]["seq"]),
                               None)
                    assert r.status == 200, r
                elif b["end"]:
                    break
            for seq in ("", "?seq=-1", "?seq=x"):  # which block is not said
                r = c.post("/api/v1/datasets/%s/blocks/release%s" % (did, seq), None)
                assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", r
            assert b["complete"] and sum(sizes) == n and max(sizes) == 4, sizes
            short = [k for k in sizes[1:] if k % 4]  # but the probe
            assert len(short) >= 2 and sum(short) <= 4 * cpus + 4, (order, cpus, sizes)
            if order:  # the block after the probe completes the probe's batch; then the end
                tail = len(sizes) - sizes[::-1].index(4)
                assert sizes[0] + sizes[1] == 4 and all(k == 4 for k in sizes[2:tail]), sizes
                assert sum(sizes[tail:]) <= 4 * cpus, sizes
        r = c.post("/api/v1/datasets?stream=true&batch_size=-1", {"ops": [{"op": "range", "n": 1}]})
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", r
    finally:
        shutil.rmtree(top)


def test_worker_killed_mid_pipeline(c):
    """Every worker killed twice while a two-stage pipeline runs: the stage tasks they ran
    are retried, and the output has every row exactly once."""
    need_binaries()
    pkg = upload_package(c)
    n = 10000
    d = post(c, {"ops": [{"op": "range", "n": n, "override_num_blocks": 40},
                         {"op": "map_batches", "fn": fn(pkg, "slow", ms=400), "batch_size": None},
                         {"op": "map_batches", "fn": fn("builtin", "cast", column="id",
                                                        dtype="float64"), "num_cpus": 0.5}]})
    did = d["dataset_id"]
    killed = 0
    for threshold in (1, 12):  # tasks of the slow stage done
        wait_until(lambda: dataset(c, did)["stages"][0]["tasks_done"] >= threshold, timeout=60,
                   what="%d tasks done" % threshold)
        assert dataset(c, did)["state"] == "RUNNING", dataset(c, did)
        pids = c.worker_pids()
        assert pids, "no workers found"
        for pid in pids:
            kill_quietly(pid)
        killed += len(pids)
    assert count(c, did) == n
    ids = sorted(r["id"] for r in rows(c, did, n))
    assert ids == [float(i) for i in range(n)], (len(ids), len(set(ids)))
    info = dataset(c, did)
    print("  %d workers killed; %d tasks done" % (
        killed, sum(s["tasks_done"] for s in info["stages"])))


def probe(c, *args, timeout=120, store=False):
    """data_probe with ARGS; with `store`, it uses node-1's object store (blocks there are
    read in place, not borrowed)."""
    exe = os.path.join(BIN, "data_probe")
    if not os.access(exe, os.X_OK):
        skip("data_probe is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    if store:
        env["PRISM_STORE_SOCKET"] = os.path.join(c.dir, "nodes", "node-1", "objectstore.sock")
    r = subprocess.run([exe] + [str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_c_api(c):
    """include/prism/data.h: batches streamed through the object store to a C driver (every
    id once, batches cut and joined across blocks), images with the Arrow export, count,
    take, and errors that name the operator."""
    need_binaries()
    # 100 blocks of 1000 rows (8 KB, inline) and 8 blocks of 20000 (160 KB, in the store),
    # batches that cut blocks and batches that join them
    assert "100000 rows in 334 batches" in probe(c, "range", 100000, 100, 300)
    # Without a store the consumer borrows each block from its owner (a GET, an ADD and a
    # REMOVE on prism.owner.HEX, docs/tasks.md); with the node's store it reads them there
    # and borrows none (the stores empty below: each was still given back)
    def borrows(store):
        sub = NatsSubscriber(c.nats_port, c.token, "prism.owner.*", raw=True)
        try:
            assert "160000 rows in 7 batches" in probe(c, "range", 160000, 8, 25000, store=store)
            return sum(1 for _, data in sub.events() if data[:1] in (b"\x01", b"\x02", b"\x03"))
        finally:
            sub.close()
    assert borrows(False) >= 8 * 3
    assert borrows(True) == 0
    top = tempfile.mkdtemp(prefix="prism-capi-")
    try:
        for i in range(7):
            make_image(os.path.join(top, "p%d.png" % i), "png", 6 + i, 4 + i, 3)
        assert "images ok: 7 rows" in probe(c, "images", top, 3)
        assert "count_take ok: 1000 rows" in probe(c, "count_take", 1000)
        assert "bad ok" in probe(c, "bad", top)
        # a consumer that stops early: the dataset stops, what it held is given back
        assert "early ok" in probe(c, "early", 1 << 20)
    finally:
        shutil.rmtree(top)
    listed = c.get("/api/v1/datasets").json()["datasets"]
    wait_until(lambda: dataset(c, listed[0]["dataset_id"])["state"] in ("STOPPED", "FINISHED"),
               timeout=30, what="the early dataset to end")
    listed = c.get("/api/v1/datasets").json()["datasets"]
    streamed = [d for d in listed if d["streamed"]]
    assert len(streamed) == 6 and all(d["bytes_in_flight"] == 0 for d in streamed), streamed
    # every block given back: the stores hold nothing
    wait_until(lambda: all(s["objects"] == 0 for s in store_used(c).values()), timeout=20,
               what="the object stores to be empty")


def test_c_api_slow_consumer(c):
    """A C consumer slower than the pipeline holds it back: the blocks it has not given back
    count in the budget, the object store's use stays under it, and every row comes."""
    need_binaries()
    budget = 4 << 20
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sum(s["used_bytes"] for s in store_used(c).values()))
            time.sleep(0.01)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        # 32 blocks of 1 MiB through a 4 MiB budget, the consumer taking 50 ms a batch
        out = probe(c, "range", 4 << 20, 32, 1 << 17, 50, budget)
    finally:
        done.set()
        t.join()
    assert "4194304 rows in 32 batches" in out, out
    info = c.get("/api/v1/datasets").json()["datasets"][0]
    print("  peak store use %d bytes, executor peak %d, budget %d" % (
        peak[0], info["peak_bytes_in_flight"], budget))
    # The executor may start one task when none runs even past the budget (so
    # a budget smaller than a block still makes progress), and a block is its
    # rows plus a header: the budget holds to within one block.
    block = 1 << 20
    assert info["peak_bytes_in_flight"] <= budget + block, info
    assert 0 < peak[0] <= budget + block, peak[0]
test_c_api_slow_consumer.cluster = {"store_memory": "64MiB"}


def test_cli(c):
    """prism data run, list, get, stop and explain."""
    need_binaries()
    exe = os.path.join(BIN, "prism")
    if not os.access(exe, os.X_OK):
        skip("prism is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)

    def prism(*args, status=0, stdin=None):
        r = subprocess.run([exe, "data"] + list(args), env=env, capture_output=True, text=True,
                           timeout=120, input=stdin)
        assert r.returncode == status, (args, r.returncode, r.stdout, r.stderr)
        return r
    top = tempfile.mkdtemp(prefix="prism-cli-data-")
    try:
        plan = os.path.join(top, "plan.json")
        with open(plan, "w") as f:
            json.dump({"name": "cli", "ops": [
                {"op": "range", "n": 1000},
                {"op": "map_batches", "fn": fn("builtin", "cast", column="id", dtype="float64")},
                {"op": "limit", "limit": 3}], "options": {"preserve_order": True}}, f)
        out = prism("run", plan, "--take", "3").stdout
        assert out.split() == ['{"id":0.0}', '{"id":1.0}', '{"id":2.0}'], out
        out = prism("run", "-", "--wait", stdin='{"ops": [{"op": "range", "n": 77}]}').stdout
        assert "FINISHED: 77 rows" in out, out
        did = re.search(r"Dataset ([0-9a-f]{32})", out).group(1)
        listed = prism("list").stdout
        assert did in listed and "cli" in listed and "FINISHED" in listed, listed
        assert len(prism("list", "--json").stdout.splitlines()) == 2
        got = prism("get", did).stdout
        assert "Output: 77 rows" in got and "ReadRange" in got and "Physical Plan" in got, got
        assert json.loads(prism("get", did, "--json").stdout)["output"]["rows"] == 77
        # --watch draws a bar per stage until the dataset ends (here: at once)
        out = prism("get", did, "--watch").stdout
        assert "FINISHED, 77 rows out" in out and "[" in out and " done " in out, out
        # a running one is followed to its end
        pkg = upload_package(c)
        r = c.post("/api/v1/datasets", {"ops": [
            {"op": "range", "n": 400, "override_num_blocks": 4},
            {"op": "map_batches", "fn": fn(pkg, "slow", ms=300), "batch_size": None}]})
        assert r.status == 201, r
        out = prism("get", r.json()["dataset_id"], "--watch").stdout
        assert out.count("Dataset ") >= 2 and "FINISHED, 400 rows out" in out, out
        err = prism("stop", did, status=1).stderr
        assert "has ended" in err, err
        prism("get", "f" * 32, status=1)
        out = prism("explain", plan).stdout
        assert "Limit(3)" in out and "TaskPoolMapOperator" in out, out
        with open(plan, "w") as f:
            json.dump({"ops": [{"op": "range", "n": 1}, {"op": "map_batches",
                                                          "fn": fn("builtin", "cast"),
                                                          "batchsize": 2}]}, f)
        err = prism("explain", plan, status=1).stderr
        assert "invalid_plan" in err and "ops[1] (map_batches)" in err, err
        slow = prism("run", "-", stdin=json.dumps({"ops": [
            {"op": "range", "n": 100000, "override_num_blocks": 100},
            {"op": "map_batches", "fn": fn(upload_package(c), "slow", ms=200)}]})).stdout
        sid = re.search(r"Dataset ([0-9a-f]{32})", slow).group(1)
        assert "Stopping" in prism("stop", sid).stdout
        wait_until(lambda: dataset(c, sid)["state"] == "STOPPED", timeout=30, what="STOPPED")
    finally:
        shutil.rmtree(top)


def test_read_urls(c):
    """Reads of http:// URLs (a server on loopback): text and images, a missing one failing
    the dataset naming it, or skipped with skip_corrupt."""
    need_binaries()
    import functools
    import http.server
    top = tempfile.mkdtemp(prefix="prism-urls-")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=top)
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d/" % server.server_address[1]
    try:
        write(os.path.join(top, "a.txt"), b"alpha\nbeta\n")
        for i in range(3):
            make_image(os.path.join(top, "p%d.png" % i), "png", 6, 4, 3)
        d = post(c, {"ops": [{"op": "read_text", "paths": base + "a.txt",
                              "include_paths": True}]})
        assert rows(c, d["dataset_id"], 10) == [{"text": "alpha", "path": base + "a.txt"},
                                                {"text": "beta", "path": base + "a.txt"}]
        urls = [base + "p%d.png" % i for i in range(3)]
        d = post(c, {"ops": [{"op": "read_images", "paths": urls, "include_paths": True}],
                     "options": {"preserve_order": True}})
        got = rows(c, d["dataset_id"], 10)
        assert [r["path"] for r in got] == urls and all(
            r["image"] == gradient(6, 4, 3) for r in got), got
        msg = failed_with(c, {"ops": [{"op": "read_binary_files",
                                       "paths": [base + "a.txt", base + "missing.bin"]}]})
        assert "ops[0] (read_binary_files)" in msg and base + "missing.bin: HTTP 404" in msg, msg
        d = post(c, {"ops": [{"op": "read_binary_files",
                              "paths": [base + "a.txt", base + "missing.bin"],
                              "override_num_blocks": 1}],
                     "options": {"skip_corrupt": True}})
        assert count(c, d["dataset_id"]) == 1
        assert dataset(c, d["dataset_id"])["output"]["skipped"] == 1
    finally:
        server.shutdown()
        shutil.rmtree(top)


def test_stages_of_other_shapes_overlap(c):
    """A stage of 1-CPU tasks that could keep every CPU of a 4-CPU node busy leaves room for
    the next stage, of 2-CPU tasks, once that one has input: its tasks run while the first
    still has tasks to run. Before, the first stage's queued tasks held every CPU's lease
    until it had run them all, and the second stage ran only after it."""
    need_binaries()
    pkg = upload_package(c)
    wait_until(lambda: 'prism_dataservice_cluster_resources{resource="CPU"} 4' in
               c.get("/metrics", base=c.dataservice_url).body.decode(),
               timeout=20, what="the dataservice knowing the node's CPUs")
    plan = {"ops": [{"op": "range", "n": 1600, "override_num_blocks": 16},
                    {"op": "map_batches", "fn": fn(pkg, "slow", ms=400), "batch_size": None,
                     "num_cpus": 1},
                    {"op": "map_batches", "fn": fn(pkg, "slow", ms=20), "batch_size": None,
                     "num_cpus": 2}]}
    did = post(c, plan)["dataset_id"]
    overlap = None
    deadline = time.time() + 60
    while time.time() < deadline:
        d = dataset(c, did)
        first, last = d["stages"][0], d["stages"][-1]
        if overlap is None and last["tasks_done"] > 0 and first["tasks_done"] < 16:
            overlap = (first["tasks_done"], last["tasks_done"])
        if d["state"] != "RUNNING" and d["state"] != "PENDING":
            break
        time.sleep(0.02)
    assert d["state"] == "FINISHED" and d["output"]["rows"] == 1600, d
    assert len(d["stages"]) == 2, d["stages"]  # the first map fused into the read
    print("  the 2-CPU stage had done %s tasks when the first had done %s of 16" % (
        overlap and overlap[1], overlap and overlap[0]))
    # before, the first stage's last queued task started only once 12 had ended, and the
    # second stage's leases came after that: 14-15 of 16; now 2-4 (a worker's start for the
    # 2-CPU shape under load may cost a few more)
    assert overlap is not None and overlap[0] <= 12, (overlap, d["stages"])

    # an actor pool after it (1 CPU an actor, 1..2 of them): its second actor starts while
    # the first stage runs (the constructor logs its process), not once it ended
    log = os.path.join(tempfile.mkdtemp(prefix="prism-pool-"), "pool.log")
    plan["ops"][2] = {"op": "map_batches", "fn": fn(pkg, "model", log=log, ms=300),
                      "batch_size": None, "num_cpus": 1,
                      "compute": {"kind": "actors", "min_size": 1, "max_size": 2}}
    did = post(c, plan)["dataset_id"]
    grown = None
    deadline = time.time() + 60
    while time.time() < deadline:
        d = dataset(c, did)
        if grown is None and os.path.exists(log) and len(open(log).read().split()) >= 2:
            grown = d["stages"][0]["tasks_done"]
        if d["state"] not in ("RUNNING", "PENDING"):
            break
        time.sleep(0.02)
    assert d["state"] == "FINISHED" and d["output"]["rows"] == 1600, d
    print("  the pool's second actor started when the first stage had done %s of 16" % grown)
    assert grown is not None and grown <= 12, (grown, d["stages"])
    shutil.rmtree(os.path.dirname(log), ignore_errors=True)
test_stages_of_other_shapes_overlap.cluster = {"node_args": ("--num-cpus", "4")}


def test_c_api_two_nodes(c):
    """Blocks made on a two-node cluster (a slow stage, to keep CPUs busy), streamed to a C
    consumer with no store of its own: every id once, and the stores empty afterwards."""
    need_binaries()
    pkg = upload_package(c)
    plan = {"ops": [{"op": "range", "n": 64000, "override_num_blocks": 32},
                    {"op": "map_batches", "fn": fn(pkg, "slow", ms=300), "batch_size": None}]}
    assert "64000 rows in 64 batches" in probe(c, "plan", json.dumps(plan), 64000)
    held = {n: s["objects"] for n, s in store_used(c).items()}
    wait_until(lambda: all(s["objects"] == 0 for s in store_used(c).values()), timeout=20,
               what="the object stores to be empty")
    nodes = {t["node_id"] for t in c.get("/api/v1/tasks?limit=200").json()["tasks"]
             if t.get("node_id")}
    # on both nodes: each queued task gets a worker of its own while the cluster has room
    assert len(nodes) == 2, nodes
    print("  tasks ran on %d node(s); objects held at the end: %s" % (len(nodes), held))
test_c_api_two_nodes.cluster = {"nodes": 2}


def test_operator_metrics(c):
    """The dataservice's /metrics per operator: rows, blocks and bytes of the stages ending in
    each operator, and gauges of tasks running and bytes queued."""
    need_binaries()
    d = post(c, {"ops": [{"op": "range", "n": 1000, "override_num_blocks": 4},
                         {"op": "map_batches", "num_cpus": 0.5,
                          "fn": fn("builtin", "cast", column="id", dtype="float64")}]})
    assert count(c, d["dataset_id"]) == 1000
    r = c.get("/metrics", base=c.dataservice_url)
    assert r.status == 200, r
    text = r.body.decode()

    def value(name, op):
        m = re.search(r'^%s\{operator="%s"\} (\S+)$' % (name, op), text, re.M)
        assert m, (name, op)
        return float(m.group(1))
    assert value("prism_dataservice_operator_output_rows_total", "range") == 1000
    assert value("prism_dataservice_operator_output_blocks_total", "range") == 4
    assert value("prism_dataservice_operator_output_rows_total", "map_batches") == 1000
    assert value("prism_dataservice_operator_output_bytes_total", "map_batches") > 8000
    assert value("prism_dataservice_operator_tasks_running", "map_batches") == 0
    assert value("prism_dataservice_operator_queued_bytes", "range") == 0
    assert value("prism_dataservice_operator_output_rows_total", "filter") == 0


# ---------- actor pools ----------

def test_actor_pool(c):
    """map_batches with compute=actors: the function's setup (model__init) runs once in each
    actor of the pool, the batches in those processes; a pool of min 1 and max 3 grows while
    input waits and never passes 3; every row comes out once."""
    need_binaries()
    pkg = upload_package(c)
    top = tempfile.mkdtemp(prefix="prism-pool-")
    try:
        log = os.path.join(top, "fixed.log")
        plan = {"ops": [{"op": "range", "n": 4000, "override_num_blocks": 20},
                        {"op": "map_batches", "fn": fn(pkg, "model", log=log, ms=20),
                         "batch_size": 100, "num_cpus": 0.5,
                         "compute": {"kind": "actors", "min_size": 2, "max_size": 2}}]}
        d = post(c, plan)
        assert count(c, d["dataset_id"]) == 4000
        got = sorted(r["id"] for r in rows(c, d["dataset_id"], 4000))
        assert got == list(range(4000)), got[:5]
        with open(log) as f:
            pids = f.read().split()
        # the constructor ran exactly pool-size times, in distinct processes
        assert len(pids) == 2 and len(set(pids)) == 2, pids
        info = dataset(c, d["dataset_id"])
        pool = [s for s in info["stages"] if s["operator"] == "ActorPoolMapOperator"]
        assert len(pool) == 1 and pool[0]["actors"]["created"] == 2, info["stages"]
        assert pool[0]["tasks_done"] >= 1, pool
        if os.access(os.path.join(BIN, "prism"), os.X_OK):  # prism data get shows the pool
            r = subprocess.run([os.path.join(BIN, "prism"), "data", "get", d["dataset_id"]],
                               env=dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token),
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and "MapBatches(model): actors" in r.stdout and \
                "2 made" in r.stdout, r

        # autoscaling: 1..3 actors, slow batches keep input waiting
        log = os.path.join(top, "scaled.log")
        plan["ops"][1] = {"op": "map_batches", "fn": fn(pkg, "model", log=log, ms=150),
                          "batch_size": None, "num_cpus": 0.5,
                          "compute": {"kind": "actors", "min_size": 1, "max_size": 3}}
        d = post(c, plan)
        assert count(c, d["dataset_id"]) == 4000
        with open(log) as f:
            pids = f.read().split()
        info = dataset(c, d["dataset_id"])
        pool = [s for s in info["stages"] if s["operator"] == "ActorPoolMapOperator"][0]
        print("  autoscaled pool: %d actors made (1..3)" % len(pids))
        assert 1 <= len(pids) <= 3 and len(set(pids)) == len(pids), pids
        assert pool["actors"]["created"] == len(pids), pool
        # the pool goes with the dataset: no actor left alive
        wait_until(lambda: not [a for a in c.get("/api/v1/actors").json()["actors"]
                                if a["state"] == "ALIVE"], timeout=30,
                   what="the pools' actors to go")
    finally:
        shutil.rmtree(top)


# ---------- streaming_split ----------

def consumers(c, did, n, batch, slow=(), nodes=()):
    """n consumer processes of dataset `did`, one per split (data_probe consume); consumer i
    says it is on node nodes[i] when given."""
    exe = os.path.join(BIN, "data_probe")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    env.pop("PRISM_NODE_ID", None)
    return [subprocess.Popen([exe, "consume", did, str(i), str(batch),
                              str(slow[i] if i < len(slow) else 0)],
                             env=dict(env, PRISM_NODE_ID=nodes[i]) if i < len(nodes) else env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(n)]


def shares(procs):
    """Each consumer's ids, once it exited 0."""
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, (stdout[-2000:], stderr[-2000:])
        line = [ln for ln in stdout.splitlines() if ln.startswith("rows ")][0]
        words = line.split()
        ids = [int(w) for w in words[3:]]
        assert int(words[1]) == len(ids), line[:200]
        out.append(ids)
    return out


def split_start(c, plan, n, equal, timeout_ms=0):
    return probe(c, "split", json.dumps(plan), n, "true" if equal else "false",
                 timeout_ms).strip()


def test_streaming_split(c):
    """streaming_split(n) to n consumer processes: disjoint shares that together hold every
    row once; equal=true gives each as many rows (the remainder, under n, dropped), a slow
    consumer included; a consumer killed mid-epoch is detected and the dataset fails naming
    its split."""
    need_binaries()
    if not os.access(os.path.join(BIN, "data_probe"), os.X_OK):
        skip("data_probe is not built")
    # any consumer takes the next block: 3 consumers, one slow
    plan = {"ops": [{"op": "range", "n": 20000, "override_num_blocks": 40}]}
    did = split_start(c, plan, 3, False)
    got = shares(consumers(c, did, 3, 500, slow=(0, 0, 30)))
    assert sorted(sum(got, [])) == list(range(20000)), [len(g) for g in got]
    info = dataset(c, did)
    assert info["split"]["n"] == 3 and info["split"]["rows"] == [len(g) for g in got], info
    print("  shares without equal: %s rows" % [len(g) for g in got])

    # equal: 10001 rows in 7 blocks of unequal size to 3 consumers, one slow: 3333 each
    plan = {"ops": [{"op": "range", "n": 10001, "override_num_blocks": 7}]}
    did = split_start(c, plan, 3, True)
    got = shares(consumers(c, did, 3, 256, slow=(0, 20, 0)))
    assert [len(g) for g in got] == [3333] * 3, [len(g) for g in got]
    every = sorted(sum(got, []))
    assert len(set(every)) == 9999 and set(every) <= set(range(10001)), every[:5]
    info = dataset(c, did)
    assert info["split"]["equal"] and info["split"]["dropped"] == 2, info["split"]
    assert info["state"] == "FINISHED", info
    wait_until(lambda: all(s["objects"] == 0 for s in store_used(c).values()), timeout=20,
               what="the object stores to be empty")

    # a consumer killed after its first batch: lost once silent for 2 s, the dataset fails
    plan = {"ops": [{"op": "range", "n": 400000, "override_num_blocks": 100}],
            "options": {"memory_budget_bytes": 1 << 20}}
    did = split_start(c, plan, 2, False, timeout_ms=2000)
    procs = consumers(c, did, 2, 1000, slow=(20, 1000))
    assert procs[1].stdout.readline().strip() == "first"
    procs[1].kill()
    procs[1].wait()
    stdout, stderr = procs[0].communicate(timeout=120)
    assert procs[0].returncode == 1 and "split 1" in stdout and "lost" in stdout, (stdout[-500:],
                                                                                  stderr[-500:])
    info = dataset(c, did)
    assert info["state"] == "FAILED" and "the consumer of split 1 was lost" in info["error"], info
    r = c.post("/api/v1/datasets/%s/blocks/next?split=5" % did, None)
    assert r.status in (400, 409), r
    wait_until(lambda: all(s["objects"] == 0 for s in store_used(c).values()), timeout=20,
               what="the object stores to be empty")
    # split and equal are for streamed datasets
    r = c.post("/api/v1/datasets?split=2", plan)
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", r


def test_materialize(c):
    """materialize() runs the plan once and keeps its blocks in the object store: three
    epochs read them (every id once each) with no task run again; destroying the dataset
    empties the stores. Epochs of a materialized dataset split over REST too."""
    need_binaries()
    out = probe(c, "materialize", 20000, 8, 3)
    assert "materialize ok: 20000 rows, 3 epochs" in out, out
    listed = c.get("/api/v1/datasets").json()["datasets"]
    mats = [d for d in listed if "materialized" in d]
    epochs = [d for d in listed if d.get("source")]
    assert len(mats) == 1 and len(epochs) == 3, listed
    assert all(e["source"] == mats[0]["dataset_id"] for e in epochs), epochs
    # made 8 blocks; the probe destroyed it, which let them go
    assert mats[0]["output"]["blocks"] == 8 and mats[0]["materialized"]["blocks"] == 0, mats[0]
    info = dataset(c, mats[0]["dataset_id"])
    assert sum(s["tasks_done"] for s in info["stages"]) == 8, info["stages"]
    # one task per block, once: the epochs ran nothing
    # (owners report their tasks to the GCS's list in batches: wait for the 8)
    wait_until(lambda: len(c.get("/api/v1/tasks?limit=1000").json()["tasks"]) >= 8,
               timeout=20, what="the 8 tasks listed")
    time.sleep(1)
    tasks = c.get("/api/v1/tasks?limit=1000").json()["tasks"]
    assert len(tasks) == 8, len(tasks)
    wait_until(lambda: all(s["objects"] == 0 for s in store_used(c).values()), timeout=20,
               what="the object stores to be empty")

    # over REST: an epoch split among 2 consumer processes, equal shares
    r = c.post("/api/v1/datasets?materialize=true",
               {"ops": [{"op": "range", "n": 1001, "override_num_blocks": 3}]})
    assert r.status == 201, r
    mid = r.json()["dataset_id"]
    assert count(c, mid) == 1001
    assert dataset(c, mid)["materialized"]["blocks"] == 3
    r = c.post("/api/v1/datasets/%s/epochs?split=2&equal=true" % mid, None)
    assert r.status == 201 and r.json()["source"] == mid, r
    got = shares(consumers(c, r.json()["dataset_id"], 2, 100))
    assert [len(g) for g in got] == [500, 500] and len(set(got[0]) | set(got[1])) == 1000, got
    # epochs only of a materialized dataset that finished
    r = c.post("/api/v1/datasets/%s/epochs" % r.json()["dataset_id"], None)
    assert r.status == 409 and r.json()["error"]["code"] == "not_materialized", r
    assert c.post("/api/v1/datasets/nope/epochs", None).status == 404
    r = c.post("/api/v1/datasets?materialize=true&stream=true",
               {"ops": [{"op": "range", "n": 1}]})
    assert r.status == 400, r
    c.post("/api/v1/datasets/%s/stop" % mid, None)
    wait_until(lambda: all(s["objects"] == 0 for s in store_used(c).values()), timeout=20,
               what="the object stores to be empty")


def test_split_locality(c):
    """streaming_split on two nodes: each consumer says its node and gets the blocks made
    there first, so at least as many blocks as the smaller node made are read locally."""
    need_binaries()
    pkg = upload_package(c)
    # each slow task takes a node's 2 CPUs, so that two at once run on both nodes; the
    # cast after it needs no CPU, so the node of its input always has room for it (with
    # some, it ran wherever a slow task had just ended, and under load every block of
    # the last stage was made on one node)
    plan = {"ops": [{"op": "range", "n": 32000, "override_num_blocks": 32},
                    {"op": "map_batches", "fn": fn(pkg, "slow", ms=100), "batch_size": None,
                     "num_cpus": 2},
                    {"op": "map_batches", "fn": fn("builtin", "cast", column="id", dtype="int64"),
                     "num_cpus": 0, "batch_size": None}]}
    for attempt in range(3):  # where the scheduler put the tasks is its choice: bounded retries
        r = c.post("/api/v1/datasets?materialize=true", plan)
        assert r.status == 201, r
        mid = r.json()["dataset_id"]
        assert count(c, mid) == 32000
        stages = dataset(c, mid)["stages"]
        print("  the second stage: %d of %d tasks on the node of their input; the third %d" % (
            stages[1]["tasks_local"], stages[1]["tasks_done"], stages[2]["tasks_local"]))
        assert stages[2]["tasks_local"] == stages[2]["tasks_done"] == 32, stages[2]
        made = dataset(c, mid)["materialized"]["nodes"]
        assert sum(made.values()) == 32 and "" not in made, made
        if len(made) == 2:
            break
        c.post("/api/v1/datasets/%s/stop" % mid, None)
    if len(made) < 2:
        skip("the stage ran on one node only, 3 times: %s" % made)
    ids = sorted(made)
    r = c.post("/api/v1/datasets/%s/epochs?split=2" % mid, None)
    assert r.status == 201, r
    eid = r.json()["dataset_id"]
    got = shares(consumers(c, eid, 2, 1000, nodes=ids))
    assert sorted(sum(got, [])) == list(range(32000))
    split = dataset(c, eid)["split"]
    local, blocks = sum(split["local_blocks"]), sum(split["blocks"])
    print("  blocks made per node %s; %d of %d read on their node (%s per consumer)" % (
        sorted(made.values()), local, blocks, split["local_blocks"]))
    assert blocks == 32 and local >= min(made.values()), (split, made)
    c.post("/api/v1/datasets/%s/stop" % mid, None)
test_split_locality.cluster = {"nodes": 2}


# ---------- writes ----------

def written_files(d):
    """The files of a write and what else is in its directory (temporary files: none)."""
    names = sorted(os.listdir(d))
    return [n for n in names if not n.startswith(".")], [n for n in names if n.startswith(".")]


def test_all_to_all(c):
    """random_shuffle, randomize_block_order, repartition, sort and groupby: every row checked
    against what Python computes from the same input."""
    need_binaries()
    n = 8000  # the rows preview keeps 10000
    rng = {"op": "range", "n": n, "override_num_blocks": 8}

    def run_rows(ops, expect_rows, options=None):
        d = post(c, {"ops": ops, "options": options or {}})
        got = rows(c, d["dataset_id"], min(expect_rows + 10, 10000))
        info = dataset(c, d["dataset_id"])
        assert info["state"] == "FINISHED", info
        return got, info

    # random_shuffle: a permutation of the input, not its order; a seed repeats it
    orders = []
    for seed in (7, 7, 8):
        got, info = run_rows([rng, {"op": "random_shuffle", "seed": seed}], n)
        ids = [r["id"] for r in got]
        assert sorted(ids) == list(range(n)), (len(ids), len(set(ids)))
        assert ids != list(range(n)) and ids[:100] != sorted(ids[:100]), ids[:20]
        orders.append(ids)
        a2a = [s for s in info["stages"] if s["kind"] == "all_to_all"]
        assert len(a2a) == 1 and a2a[0]["name"] == "ReadRange->RandomShuffle", info["stages"]
        assert a2a[0]["blocks"] == 8 and a2a[0]["tasks_done"] == 16, a2a  # 8 maps, 8 reduces
    assert orders[0] == orders[1], [(a, b) for a, b in zip(orders[0], orders[1]) if a != b][:5]
    assert orders[0] != orders[2]
    # push-based: merges join the parts of every 4 maps as they end; the same rows, in the
    # same order, as the merge joins what the reduce would
    push = {"use_push_based_shuffle": True}
    got, info = run_rows([rng, {"op": "random_shuffle", "seed": 7}], n, push)
    assert [r["id"] for r in got] == orders[0]
    a2a = [s for s in info["stages"] if s["kind"] == "all_to_all"][0]
    assert a2a["tasks_done"] == 18, a2a  # 8 maps, 2 merges, 8 reduces
    got, _ = run_rows([rng, {"op": "random_shuffle"}], n)
    assert sorted(r["id"] for r in got) == list(range(n))

    # randomize_block_order: whole blocks move, rows inside them keep their order
    got, info = run_rows([rng, {"op": "randomize_block_order", "seed": 3}], n)
    ids = [r["id"] for r in got]
    assert sorted(ids) == list(range(n))
    starts = [ids[k] for k in range(0, n, n // 8)]
    assert all(ids[k:k + n // 8] == list(range(ids[k], ids[k] + n // 8))
               for k in range(0, n, n // 8)), starts

    # repartition: 8 blocks into 3, in order without shuffle; with shuffle any order
    got, info = run_rows([rng, {"op": "repartition", "num_blocks": 3}], n)
    assert [r["id"] for r in got] == list(range(n))
    a2a = [s for s in info["stages"] if s["kind"] == "all_to_all"][0]
    assert a2a["blocks"] == 3 and info["output"]["blocks"] == 3, info
    got, _ = run_rows([{"op": "range", "n": 3}, {"op": "repartition", "num_blocks": 5}], 3)
    assert [r["id"] for r in got] == [0, 1, 2], got
    got, info = run_rows([rng, {"op": "repartition", "num_blocks": 5, "shuffle": True}], n)
    assert sorted(r["id"] for r in got) == list(range(n))
    assert info["output"]["blocks"] == 5, info

    # sort: numbers ascending and descending, strings, several keys; after a shuffle
    items = [{"k": (i * 7919) % 1000, "s": "é%05d" % ((i * 104729) % 3001), "v": i}
             for i in range(6000)]
    src = {"op": "from_items", "items": items, "override_num_blocks": 6}
    got, _ = run_rows([src, {"op": "sort", "key": "k", "descending": True}], 6000)
    assert [r["k"] for r in got] == sorted((it["k"] for it in items), reverse=True)
    assert sorted(r["v"] for r in got) == list(range(6000))
    got, _ = run_rows([src, {"op": "sort", "key": "s"}], 6000)
    assert [r["s"] for r in got] == sorted(it["s"] for it in items)
    got, _ = run_rows([src, {"op": "sort", "key": ["k", "s"]}], 6000)
    assert [(r["k"], r["s"]) for r in got] == sorted((it["k"], it["s"]) for it in items)
    got, _ = run_rows([rng, {"op": "random_shuffle", "seed": 1},
                       {"op": "sort", "key": "id"}], n)
    assert [r["id"] for r in got] == list(range(n))
    # push-based, a sort and a groupby give the same rows in the same order
    for ops, rows_out, tasks in (([src, {"op": "sort", "key": ["k", "s"]}], 6000, 6 + 6 + 1 + 6),
                                 ([src, {"op": "groupby", "key": "k",
                                         "aggs": [{"fn": "sum", "on": "v"}]}], 1000, 6 + 1 + 6)):
        plain, _ = run_rows(ops, rows_out)
        merged, info = run_rows(ops, rows_out, push)
        assert merged == plain, [(a, b) for a, b in zip(merged, plain) if a != b][:3]
        a2a = [s for s in info["stages"] if s["kind"] == "all_to_all"][0]
        assert a2a["tasks_done"] == tasks, a2a  # samples, maps, a merge of 4, reduces

    # groupby: count, sum, min, max, mean, std per key against Python's
    gitems = [{"g": "g%d" % (i % 13), "x": (i * 37) % 101, "y": i / 4.0} for i in range(5000)]
    aggs = [{"fn": "count"}, {"fn": "sum", "on": "x"}, {"fn": "min", "on": "x"},
            {"fn": "max", "on": "y"}, {"fn": "mean", "on": "y"}, {"fn": "std", "on": "x"}]
    got, info = run_rows([{"op": "from_items", "items": gitems, "override_num_blocks": 5},
                          {"op": "groupby", "key": "g", "aggs": aggs}], 13)
    assert len(got) == 13, got
    for r in got:
        xs = [it["x"] for it in gitems if it["g"] == r["g"]]
        ys = [it["y"] for it in gitems if it["g"] == r["g"]]
        assert r["count()"] == len(xs) and r["sum(x)"] == sum(xs), r
        assert r["min(x)"] == min(xs) and r["max(y)"] == max(ys), r
        assert abs(r["mean(y)"] - statistics.mean(ys)) < 1e-9, r
        assert abs(r["std(x)"] - statistics.stdev(xs)) < 1e-9, r
    assert sorted(r["g"] for r in got) == sorted("g%d" % k for k in range(13))
    # an int64 key (the maps' typed path) gives the same groups as Python
    iitems = [{"k": (i * 7) % 11, "y": i / 8.0} for i in range(3000)]
    got, _ = run_rows([{"op": "from_items", "items": iitems, "override_num_blocks": 4},
                       {"op": "groupby", "key": "k", "aggs": [{"fn": "count"},
                                                              {"fn": "sum", "on": "y"},
                                                              {"fn": "std", "on": "y"}]}], 11)
    for r in got:
        ys = [it["y"] for it in iitems if it["k"] == r["k"]]
        assert r["count()"] == len(ys) and abs(r["sum(y)"] - sum(ys)) < 1e-6, r
        assert abs(r["std(y)"] - statistics.stdev(ys)) < 1e-9, r
    assert sorted(r["k"] for r in got) == list(range(11)), got
    # nulls across blocks (each map aggregates its block, the reduce merges):
    # group a has x in each block, group b never
    nitems = [{"g": "a" if i % 2 else "b", "x": i if i % 2 else None} for i in range(40)]
    naggs = [{"fn": "count"}, {"fn": "count", "on": "x"}, {"fn": "sum", "on": "x"},
             {"fn": "min", "on": "x"}, {"fn": "mean", "on": "x"}, {"fn": "std", "on": "x"}]
    got, _ = run_rows([{"op": "from_items", "items": nitems, "override_num_blocks": 4},
                       {"op": "groupby", "key": "g", "aggs": naggs}], 2)
    by = {r["g"]: r for r in got}
    xs = list(range(1, 40, 2))
    assert by["a"]["count()"] == 20 and by["a"]["count(x)"] == 20, by
    assert by["a"]["sum(x)"] == sum(xs) and by["a"]["min(x)"] == 1, by
    assert abs(by["a"]["mean(x)"] - statistics.mean(xs)) < 1e-9, by
    assert abs(by["a"]["std(x)"] - statistics.stdev(xs)) < 1e-9, by
    assert by["b"]["count()"] == 20 and by["b"]["count(x)"] == 0, by
    assert by["b"]["std(x)"] is None and by["b"]["mean(x)"] is None, by
    assert by["b"]["sum(x)"] is None and by["b"]["min(x)"] is None, by
    assert "GroupBy(g)" in info["explain"] and "AllToAllOperator" in info["explain"], info
    # map_groups: a package function per group's rows
    pkg = upload_package(c)
    mitems = [{"k": i % 7, "v": (i * 31) % 1000} for i in range(3000)]
    got, info = run_rows([{"op": "from_items", "items": mitems, "override_num_blocks": 4},
                          {"op": "map_groups", "key": "k",
                           "fn": fn(pkg, "group_spread", key="k", column="v")}], 7)
    want = {}
    for it in mitems:
        want.setdefault(it["k"], []).append(it["v"])
    assert sorted((r["key"], r["rows"], r["spread"]) for r in got) == sorted(
        (float(k), float(len(v)), float(max(v) - min(v))) for k, v in want.items()), got
    assert "MapGroups(group_spread)" in info["explain"], info["explain"]
    # unique: each distinct value once, that column only
    got, _ = run_rows([{"op": "from_items", "items": gitems, "override_num_blocks": 5},
                       {"op": "unique", "column": "g"}], 13)
    assert sorted(r["g"] for r in got) == sorted("g%d" % k for k in range(13)), got
    assert all(list(r) == ["g"] for r in got), got

    # from C (data.h): shuffle, sort, repartition; a groupby's rows checked here
    out = probe(c, "a2a", 30000, pkg)
    assert "a2a ok: 30000 rows" in out, out
    grouped = json.loads(out.split("groupby: ", 1)[1].splitlines()[0])
    assert sorted(r["g"] for r in grouped) == [0, 1, 2, 3, 4], grouped
    for r in grouped:
        xs = [i for i in range(100) if i % 5 == r["g"]]
        want = {"g": r["g"], "count()": 20, "sum(x)": sum(xs), "min(x)": min(xs),
                "max(x)": max(xs), "mean(x)": statistics.mean(xs)}
        assert {k: r[k] for k in want} == want, r
        assert abs(r["std(x)"] - statistics.stdev(xs)) < 1e-9, r
    spreads = json.loads(out.split("map_groups: ", 1)[1].splitlines()[0])
    assert sorted((r["key"], r["rows"], r["spread"]) for r in spreads) == [
        (float(g), 20.0, 95.0) for g in range(5)], spreads

    # nulls sort last either way; a null key is a group of its own
    nitems = [{"k": (i * 13) % 50 if i % 10 else None, "v": i} for i in range(400)]
    nsrc = {"op": "from_items", "items": nitems, "override_num_blocks": 4}
    for desc in (False, True):
        got, _ = run_rows([nsrc, {"op": "sort", "key": "k", "descending": desc}], 400)
        ks = [r["k"] for r in got]
        present = sorted((k for k in ks if k is not None), reverse=desc)
        assert ks == present + [None] * 40, ks[:5] + ks[-45:]
    got, _ = run_rows([nsrc, {"op": "groupby", "key": "k", "aggs": [{"fn": "count"}]}], 60)
    counts = {r["k"]: r["count()"] for r in got}
    want_counts = {}
    for it in nitems:
        want_counts[it["k"]] = want_counts.get(it["k"], 0) + 1
    assert counts == want_counts and counts[None] == 40, counts

    # a key the rows lack fails the dataset naming the operator
    msg = failed_with(c, {"ops": [rng, {"op": "sort", "key": "nope"}]})
    assert "Sort(nope)" in msg and 'no column "nope"' in msg, msg
    msg = failed_with(c, {"ops": [rng, {"op": "groupby", "key": "id",
                                        "aggs": [{"fn": "sum", "on": "nope"}]}]})
    assert "GroupBy(id)" in msg and "sum(nope): no such column" in msg, msg

    msg = failed_with(c, {"ops": [rng, {"op": "repartition", "num_blocks": 70000,
                                        "shuffle": True}]})
    assert "Repartition(70000): 70000 parts; a map task makes at most 65534" in msg, msg

    # empty input, and a limit after a sort
    got, _ = run_rows([{"op": "range", "n": 0}, {"op": "random_shuffle"}], 0)
    assert got == []
    got, _ = run_rows([rng, {"op": "sort", "key": "id", "descending": True},
                       {"op": "limit", "limit": 5}], 5)
    assert [r["id"] for r in got] == [n - 1 - k for k in range(5)], got


def test_all_to_all_larger_than_the_stores(c):
    """A shuffle and a sort of 3x the object store's memory through an 8 MiB budget: the
    parts spill and come back, every row once (the C consumer checks each id), the sort's
    first rows the largest ids; the store's use sampled stays within its memory."""
    need_binaries()
    store = 16 << 20
    n = 6 << 20  # int64 ids: 48 MiB in 24 blocks
    rng = {"op": "range", "n": n, "override_num_blocks": 24}
    opts = {"memory_budget_bytes": 8 << 20}
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sum(s["used_bytes"] for s in store_used(c).values()))
            time.sleep(0.02)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        plan = {"ops": [rng, {"op": "random_shuffle", "seed": 4}], "options": opts}
        assert "range ok: %d rows" % n in probe(c, "plan", json.dumps(plan), n, timeout=400)
        d = post(c, {"ops": [rng, {"op": "random_shuffle"},
                             {"op": "sort", "key": "id", "descending": True}], "options": opts})
        assert count(c, d["dataset_id"]) == n
        got = rows(c, d["dataset_id"], 10000)
        assert [r["id"] for r in got] == [n - 1 - k for k in range(10000)], got[:3]
        info = dataset(c, d["dataset_id"])
    finally:
        done.set()
        t.join()
    stats = store_used(c)
    spilled = sum(s["spilled_bytes_total"] for s in stats.values())
    print("  store peak %d of %d bytes, executor peak %d, spilled %d bytes" % (
        peak[0], store, info["peak_bytes_in_flight"], spilled))
    assert 0 < peak[0] <= store, peak
    assert spilled > 0, stats  # 48 MiB of parts cannot all sit in 16 MiB
    # The parts, and what their lineage pins through the reduces and their outputs, count up
    # to half the budget (the rest is the stores' to spill): the executor stays within its
    # budget, but for the one task it may always start (a 2 MiB block and its output).
    assert info["peak_bytes_in_flight"] <= opts["memory_budget_bytes"] + (4 << 20), info
    assert info["bytes_in_flight"] == 0, info
    # One reduce that reads parts larger than the store together (48 MiB into one block):
    # it fails saying so, instead of making the parts again as if they were lost
    msg = failed_with(c, {"ops": [rng, {"op": "repartition", "num_blocks": 1}], "options": opts})
    assert "Repartition(1)" in msg and "no room in the arena to read it back" in msg, msg
test_all_to_all_larger_than_the_stores.cluster = {"store_memory": "16MiB"}


def test_all_to_all_worker_killed(c):
    """Every worker killed while a seeded shuffle's maps run and again at its reduces: the
    tasks are retried and the output is the same rows in the same order as a run
    without kills."""
    need_binaries()
    pkg = upload_package(c)
    n = 8000

    def a2a(did):
        return [s for s in dataset(c, did)["stages"] if s["kind"] == "all_to_all"][0]
    slow = {"op": "map_batches", "fn": fn(pkg, "slow", ms=300), "batch_size": None}
    # the read and map fused into the shuffle's maps; and (a cap of its own) a stage before it
    for pre in (slow, dict(slow, concurrency=16)):
        ops = [{"op": "range", "n": n, "override_num_blocks": 16}, pre,
               {"op": "random_shuffle", "seed": 9}]
        want = [r["id"] for r in rows(c, post(c, {"ops": ops})["dataset_id"], n)]
        assert sorted(want) == list(range(n))
        # push-based, so that merges die too
        did = post(c, {"ops": ops, "options": {"use_push_based_shuffle": True}})["dataset_id"]
        assert len(dataset(c, did)["stages"]) == (1 if pre is slow else 2)
        killed = 0
        # all-to-all tasks done: some maps; every map and merge (16 and 4) and a reduce
        for threshold in (3, 21):
            wait_until(lambda: dataset(c, did)["state"] != "RUNNING" or
                       a2a(did)["tasks_done"] >= threshold, timeout=60,
                       what="%d all-to-all tasks done" % threshold)
            pids = c.worker_pids()
            for pid in pids:
                kill_quietly(pid)
            killed += len(pids)
        got = [r["id"] for r in rows(c, did, n)]
        assert got == want, [(a, b) for a, b in zip(got, want) if a != b][:5]
        info = dataset(c, did)
        assert info["state"] == "FINISHED", info
        print("  %d workers killed; %d all-to-all tasks done" % (killed, a2a(did)["tasks_done"]))

    # stopped while its maps run (a sort: while it samples): every part and block let go
    for op in ({"op": "random_shuffle"}, {"op": "sort", "key": "id"}):
        pre = [{"op": "range", "n": n, "override_num_blocks": 64}, slow]  # about 10 s
        did = post(c, {"ops": pre + [op]})["dataset_id"]
        wait_until(lambda: a2a(did)["tasks_done"] >= 2, timeout=60, what="all-to-all tasks done")
        r = c.post("/api/v1/datasets/%s/stop" % did)
        assert r.status == 200, (r, dataset(c, did))
        wait_until(lambda: dataset(c, did)["state"] == "STOPPED", timeout=30, what="STOPPED")
        assert dataset(c, did)["bytes_in_flight"] == 0, dataset(c, did)


def test_all_to_all_fused(c):
    """The read and map stage before random_shuffle, repartition(shuffle), groupby, unique and
    map_groups run in the all-to-all's maps: the same rows as with a stage of their own (a
    concurrency cap keeps one) and as Python computes; not before a sort."""
    need_binaries()
    pkg = upload_package(c)
    n = 6000
    items = [{"k": i % 7, "v": i} for i in range(n)]
    src = {"op": "from_items", "items": items, "override_num_blocks": 6}
    twice = {"op": "add_column", "col": "t", "fn": fn(pkg, "twice", column="v")}

    def run_both(ops, limit, options=None):
        """ops[1] fused, then with a stage of its own: both runs' rows and explains."""
        out = []
        for pre in (ops[1], dict(ops[1], concurrency=6)):
            d = post(c, {"ops": [ops[0], pre] + ops[2:], "options": options or {}})
            got = rows(c, d["dataset_id"], limit)
            info = dataset(c, d["dataset_id"])
            assert info["state"] == "FINISHED", info
            out.append((got, info))
        (fused, fi), (alone, ai) = out
        assert len(fi["stages"]) == len(ai["stages"]) - 1, (fi["stages"], ai["stages"])
        assert fi["stages"][0]["kind"] == "all_to_all", fi["stages"]
        return fused, alone, fi["explain"]

    # random_shuffle: a permutation of the map's output, nothing lost or twice
    rng = {"op": "range", "n": n, "override_num_blocks": 8}
    sq = {"op": "map_batches", "fn": fn(pkg, "square", column="id"), "batch_size": None}
    want = sorted((float(i), float(i * i)) for i in range(n))
    for options in ({}, {"use_push_based_shuffle": True}, {"preserve_order": True}):
        fused, alone, explain = run_both([rng, sq, {"op": "random_shuffle", "seed": 5}], n + 10,
                                         options)
        assert "AllToAllOperator[ReadRange->MapBatches(square)->RandomShuffle]" in explain, explain
        for got in (fused, alone):
            assert sorted((r["id"], r["square"]) for r in got) == want, (options, got[:3])
        assert [r["id"] for r in fused] != sorted(r["id"] for r in fused)
    # a filter fused in: fewer rows than blocks made
    keep = {"op": "filter", "fn": fn(pkg, "keep_multiples", column="id", of=3)}
    fused, alone, _ = run_both([rng, keep, {"op": "repartition", "num_blocks": 4,
                                            "shuffle": True}], n + 10)
    for got in (fused, alone):
        assert sorted(r["id"] for r in got) == list(range(0, n, 3)), got[:3]

    # after a limit: the map stage fused in takes only the rows the limit let through
    d = post(c, {"ops": [rng, keep, {"op": "limit", "limit": 10},
                         {"op": "add_column", "col": "t", "fn": fn(pkg, "twice", column="id")},
                         {"op": "random_shuffle", "seed": 2}]})
    got = rows(c, d["dataset_id"], 100)
    # any 10 rows the filter kept: without preserve_order a limit takes the first to come,
    # from whichever block ends first (docs/datasets.md)
    assert len(got) == 10 and len({r["id"] for r in got}) == 10, got
    assert all(r["id"] % 3 == 0 and r["id"] < n and r["t"] == 2.0 * r["id"] for r in got), got
    info = dataset(c, d["dataset_id"])
    assert info["stages"][-1]["name"] == "AddColumn(t)->RandomShuffle", info["stages"]

    # groupby: count, sum, mean against Python's
    aggs = [{"fn": "count"}, {"fn": "sum", "on": "t"}, {"fn": "mean", "on": "v"}]
    fused, alone, explain = run_both([src, twice, {"op": "groupby", "key": "k", "aggs": aggs}],
                                     20)
    assert "AllToAllOperator[FromItems->AddColumn(t)->GroupBy(k)]" in explain, explain
    assert sorted(fused, key=lambda r: r["k"]) == sorted(alone, key=lambda r: r["k"])
    for r in fused:
        vs = [it["v"] for it in items if it["k"] == r["k"]]
        assert r["count()"] == len(vs) and r["sum(t)"] == 2 * sum(vs), r
        assert abs(r["mean(v)"] - statistics.mean(vs)) < 1e-9, r
    assert sorted(r["k"] for r in fused) == list(range(7)), fused
    # a map stage that bundles blocks (batch_size 2500 of blocks of 1000 rows, after a stage
    # of other resources): each map takes a bundle of what has come, as the stage would
    cast = {"op": "map_batches", "fn": fn("builtin", "cast", column="v", dtype="float64"),
            "batch_size": 2500}
    d = post(c, {"ops": [src, dict(twice, num_cpus=0.5), cast,
                         {"op": "groupby", "key": "k", "aggs": aggs}]})
    got = rows(c, d["dataset_id"], 20)
    assert sorted(got, key=lambda r: r["k"]) == sorted(fused, key=lambda r: r["k"]), got
    info = dataset(c, d["dataset_id"])
    a2a = info["stages"][-1]
    assert a2a["name"] == "MapBatches(cast)->GroupBy(k)", info["stages"]
    print("  bundled maps: %d tasks done" % a2a["tasks_done"])
    assert 2 + 6 <= a2a["tasks_done"] <= 6 + 6, a2a  # maps of 1 to 3 blocks, 6 reduces
    assert "bundles of 2500+ rows" in info["explain"], info["explain"]

    # unique and map_groups
    fused, alone, _ = run_both([src, twice, {"op": "unique", "column": "k"}], 20)
    assert sorted(r["k"] for r in fused) == sorted(r["k"] for r in alone) == list(range(7))
    fused, alone, _ = run_both([src, twice, {"op": "map_groups", "key": "k",
                                             "fn": fn(pkg, "group_spread", key="k",
                                                      column="t")}], 20)
    assert sorted((r["key"], r["rows"], r["spread"]) for r in fused) == sorted(
        (r["key"], r["rows"], r["spread"]) for r in alone) == sorted(
        (float(k), float(len(range(k, n, 7))), float(2 * (max(range(k, n, 7)) - k)))
        for k in range(7)), fused

    # an all-to-all after a fused one makes as many blocks as the read made
    d = post(c, {"ops": [rng, sq, {"op": "random_shuffle"}, {"op": "sort", "key": "id"}]})
    assert [r["id"] for r in rows(c, d["dataset_id"], n + 10)] == list(range(n))
    info = dataset(c, d["dataset_id"])
    assert [s["blocks"] for s in info["stages"]] == [8, 8], info["stages"]

    # a sort's maps wait for every sample: the stage before it stays its own
    d = post(c, {"ops": [src, twice, {"op": "sort", "key": "v"}]})
    assert [r["v"] for r in rows(c, d["dataset_id"], n + 10)] == list(range(n))
    info = dataset(c, d["dataset_id"])
    assert [s["kind"] for s in info["stages"]] == ["read", "all_to_all"], info["stages"]

    # a fused operator's failure names it
    msg = failed_with(c, {"ops": [rng, {"op": "map_batches", "fn": fn(pkg, "broken")},
                                  {"op": "random_shuffle"}]})
    assert "ops[1] (map_batches)" in msg and "always fails" in msg, msg


def test_writes(c):
    """write_jsonl and write_csv over REST and from C: one file per block under the
    dataservice's --data-roots, every row read back from the files (and through read_csv);
    paths outside the roots, through "..", through a link or relative are refused."""
    need_binaries()
    top = tempfile.mkdtemp(prefix="prism-write-")
    outside = tempfile.mkdtemp(prefix="prism-outside-")
    try:
        c.start_dataservice(extra=["--data-roots", top])
        items = [{"i": k, "name": ["plain", 'with "quotes"', "a,b", "two\nlines", "",
                                   None][k % 6],
                  "x": k / 4, "ok": k % 2 == 0} for k in range(60)]
        # jsonl into a directory that does not exist yet (made, nested)
        out = os.path.join(top, "jsonl", "nested")
        d = post(c, {"ops": [{"op": "from_items", "items": items, "override_num_blocks": 3},
                             {"op": "write_jsonl", "path": out}]})
        assert count(c, d["dataset_id"]) == 60
        info = dataset(c, d["dataset_id"])
        names, hidden = written_files(out)
        assert names == ["%s_%06d.jsonl" % (d["dataset_id"], k) for k in range(3)], names
        assert hidden == [], hidden
        assert info["written"] == {"path": out, "files": 3, "bytes": sum(
            os.path.getsize(os.path.join(out, n)) for n in names)}, info["written"]
        back = []
        for n in names:
            with open(os.path.join(out, n)) as f:
                back += [json.loads(line) for line in f.read().splitlines()]
        assert sorted(back, key=lambda r: r["i"]) == items, back[:3]
        if os.access(os.path.join(BIN, "prism"), os.X_OK):  # prism data get says so
            r = subprocess.run([os.path.join(BIN, "prism"), "data", "get", d["dataset_id"]],
                               env=dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token),
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and "Written: 3 files" in r.stdout and out in r.stdout, r
        assert "WriteJSONL(%s)" % out in info["explain"], info["explain"]

        # csv, then read back by the dataservice's own read_csv and by Python's csv
        out = os.path.join(top, "csv")
        d = post(c, {"ops": [{"op": "from_items", "items": items, "override_num_blocks": 2},
                             {"op": "write_csv", "path": out}],
                     "options": {"preserve_order": True}})
        assert count(c, d["dataset_id"]) == 60
        names, hidden = written_files(out)
        assert len(names) == 2 and hidden == [] and all(n.endswith(".csv") for n in names)
        import csv
        with open(os.path.join(out, names[0]), newline="") as f:
            recs = list(csv.reader(f))
        assert recs[0] == ["i", "name", "x", "ok"], recs[0]
        assert recs[1:4] == [["0", "plain", "0", "true"], ["1", 'with "quotes"', "0.25", "false"],
                             ["2", "a,b", "0.5", "true"]], recs[1:4]
        d = post(c, {"ops": [{"op": "read_csv", "paths": out}]})
        got = sorted(rows(c, d["dataset_id"], 100), key=lambda r: r["i"])
        want = [dict(r, ok="true" if r["ok"] else "false") for r in items]
        assert got == want, [(g, w) for g, w in zip(got, want) if g != w][:3]

        # TSV: written with a tab, read back with read_csv's delimiter "\t"
        out = os.path.join(top, "tsv")
        d = post(c, {"ops": [{"op": "from_items", "items": items},
                             {"op": "write_csv", "path": out, "delimiter": "\t"}]})
        assert count(c, d["dataset_id"]) == 60
        names = written_files(out)[0]
        with open(os.path.join(out, names[0])) as f:
            assert f.readline() == '"i"\t"name"\t"x"\t"ok"\n', "a tab-separated header"
        d = post(c, {"ops": [{"op": "read_csv", "paths": out, "delimiter": "\t"}]})
        got = sorted(rows(c, d["dataset_id"], 100), key=lambda r: r["i"])
        assert got == want, [(g, w) for g, w in zip(got, want) if g != w][:3]

        # a CSV cannot hold bytes: the write fails naming the column, and leaves no file
        out = os.path.join(top, "bad")
        os.makedirs(os.path.join(top, "in"))
        write(os.path.join(top, "in", "a.bin"), b"\x00\x01")
        msg = failed_with(c, {"ops": [{"op": "read_binary_files",
                                       "paths": os.path.join(top, "in")},
                                      {"op": "write_csv", "path": out}]})
        assert "ops[1] (write_csv)" in msg and 'column "bytes" is binary' in msg, msg
        assert written_files(out) == ([], []), written_files(out)

        # write_binary: a file a row, the bytes as they were read
        out = os.path.join(top, "wbin")
        d = post(c, {"ops": [{"op": "read_binary_files", "paths": os.path.join(top, "in")},
                             {"op": "write_binary", "path": out}]})
        assert count(c, d["dataset_id"]) == 1
        names = written_files(out)[0]
        assert names == ["%s_000000_000000.bin" % d["dataset_id"]], names
        with open(os.path.join(out, names[0]), "rb") as f:
            assert f.read() == b"\x00\x01"

        # write_images: PNG (lossless: the same pixels read back) and JPEG
        for i in range(4):
            make_image(os.path.join(top, "imgs", "i%d.png" % i), "png", 6, 4, 3)
        for fmt, ext in (("png", "png"), ("jpeg", "jpg")):
            out = os.path.join(top, "w" + fmt)
            d = post(c, {"ops": [{"op": "read_images", "paths": os.path.join(top, "imgs"),
                                  "override_num_blocks": 2},
                                 {"op": "write_images", "path": out, "file_format": fmt}]})
            assert count(c, d["dataset_id"]) == 4
            names = written_files(out)[0]
            assert len(names) == 4 and all(n.endswith("." + ext) for n in names), names
            d = post(c, {"ops": [{"op": "read_images", "paths": out}]})
            back = rows(c, d["dataset_id"], 10)
            assert len(back) == 4, back
            if fmt == "png":
                assert all(r["image"] == gradient(6, 4, 3) for r in back), back[0]
        msg = failed_with(c, {"ops": [{"op": "range", "n": 3},
                                      {"op": "write_images", "path": os.path.join(top, "x")}]})
        assert "ops[1] (write_images)" in msg and 'no image' in msg, msg

        # refused before anything runs: 403 naming the operator
        rng = {"op": "range", "n": 10}
        os.symlink(outside, os.path.join(top, "link"))
        for path, words in [(outside, "outside"), (top + "/../" + os.path.basename(outside),
                                                   '".."'),
                            (os.path.join(top, "link", "x"), "outside"),
                            ("relative/dir", "absolute")]:
            r = c.post("/api/v1/datasets", {"ops": [rng, {"op": "write_jsonl", "path": path}]})
            err = r.json()["error"]
            assert r.status == 403 and err["code"] == "path_not_allowed", (r, path)
            assert "ops[1] (write_jsonl)" in err["message"] and words in err["message"], err
        assert os.listdir(outside) == []
        # a write ends the plan, and is not streamed
        r = c.post("/api/v1/datasets", {"ops": [rng, {"op": "write_jsonl", "path": top},
                                                {"op": "limit", "limit": 1}]})
        assert r.status == 400 and "a write ends the plan" in r.json()["error"]["message"], r
        r = c.post("/api/v1/datasets?stream=true",
                   {"ops": [rng, {"op": "write_jsonl", "path": top}]})
        assert r.status == 400 and "not streamed" in r.json()["error"]["message"], r
        # reads stay under the roots too
        write(os.path.join(outside, "secret.txt"), b"no\n")
        msg = failed_with(c, {"ops": [{"op": "read_text", "paths": outside}]})
        assert "ops[0] (read_text)" in msg and "outside" in msg, msg

        # from C: prism_data_write_jsonl and _csv
        for fmt in ("jsonl", "csv"):
            out = os.path.join(top, "c-" + fmt)
            assert "write ok: 1000 rows in 4 files" in probe(c, "write", fmt, out, 1000, 4)
            ids = []
            for n in written_files(out)[0]:
                with open(os.path.join(out, n), newline="") as f:
                    if fmt == "jsonl":
                        ids += [json.loads(line)["id"] for line in f.read().splitlines()]
                    else:
                        ids += [float(r[0]) for r in list(csv.reader(f))[1:]]
            assert sorted(ids) == [float(k) for k in range(1000)], ids[:5]
    finally:
        shutil.rmtree(top)
        shutil.rmtree(outside)
test_writes.cluster = {"dataservice": False}


def test_union_zip(c):
    """union: every dataset's rows, in the order of the datasets with preserve_order, then
    through a sort and a limit; zip: columns side by side row by row across unequal blocks,
    a duplicate name suffixed; different row counts fail naming the operator."""
    need_binaries()

    def run_rows(ops, expect_rows, options=None):
        d = post(c, {"ops": ops, "options": options or {}})
        got = rows(c, d["dataset_id"], expect_rows + 10)
        info = dataset(c, d["dataset_id"])
        assert info["state"] == "FINISHED", info
        assert info["output"]["rows"] == expect_rows, info["output"]
        return got, info

    a = {"op": "range", "n": 1000, "override_num_blocks": 4}
    b = [{"op": "from_items", "items": [{"id": 5000 + i} for i in range(300)],
          "override_num_blocks": 3}]
    cc = [{"op": "range", "n": 700, "override_num_blocks": 5}, {"op": "limit", "limit": 200}]
    union = {"op": "union", "other": [{"ops": b}, {"ops": cc}]}
    want = list(range(1000)) + [5000 + i for i in range(300)] + list(range(200))
    got, info = run_rows([a, union], 1500, {"preserve_order": True})
    assert [r["id"] for r in got] == want, [r["id"] for r in got][995:1005]
    kinds = [s["kind"] for s in info["stages"]]
    assert kinds.count("read") == 3 and kinds[-1] == "union", kinds
    assert "UnionOperator[Union]" in info["explain"], info["explain"]
    got, _ = run_rows([a, union], 1500)
    assert sorted(r["id"] for r in got) == sorted(want)
    # an all-to-all after a union takes every dataset's blocks; a limit after it stops them all
    got, info = run_rows([a, union, {"op": "sort", "key": "id", "descending": True}], 1500)
    assert [r["id"] for r in got] == sorted(want, reverse=True)
    a2a = [s for s in info["stages"] if s["kind"] == "all_to_all"][0]
    assert a2a["blocks"] == 4 + 3 + 5, a2a  # as many outputs as the reads make blocks
    got, _ = run_rows([a, union, {"op": "limit", "limit": 7}], 7)
    assert len(got) == 7 and set(r["id"] for r in got) <= set(want), got

    # zip: 1000 rows in 4 blocks beside 1000 rows in 7, as in Ray Data "id" becomes "id_1"
    other = [{"op": "from_items", "override_num_blocks": 7,
              "items": [{"id": 10 * i, "s": "x%d" % i} for i in range(1000)]}]
    zipped = [a, {"op": "map_batches", "fn": {"package": "builtin", "function": "cast",
                                              "args": {"column": "id", "dtype": "float64"}}},
              {"op": "zip", "other": {"ops": other}}]
    for opts in ({}, {"preserve_order": True}):
        got, info = run_rows(zipped, 1000, opts)
        assert all(list(r) == ["id", "id_1", "s"] for r in got), got[:2]
        assert all(r["id_1"] == 10 * int(r["id"]) and r["s"] == "x%d" % r["id"] for r in got), \
            [r for r in got if r["id_1"] != 10 * int(r["id"])][:3]
        assert sorted(int(r["id"]) for r in got) == list(range(1000))
        zs = [s for s in info["stages"] if s["kind"] == "zip"]
        assert len(zs) == 1 and zs[0]["tasks_done"] == 4 and zs[0]["blocks"] == 4, zs
    assert [int(r["id"]) for r in got] == list(range(1000))  # preserve_order: in order
    # a shuffled dataset zipped with its seed pairs the same rows every run
    shuffled = [{"op": "range", "n": 500, "override_num_blocks": 3},
                {"op": "random_shuffle", "seed": 5}]
    pairs = []
    for _ in range(2):
        got, _ = run_rows([{"op": "range", "n": 500, "override_num_blocks": 2},
                           {"op": "zip", "other": {"ops": shuffled}}], 500)
        pairs.append(sorted((r["id"], r["id_1"]) for r in got))
        assert sorted(p[1] for p in pairs[-1]) == list(range(500))
    assert pairs[0] == pairs[1] and pairs[0] != [(i, i) for i in range(500)]

    # a filter that empties some blocks on either side: the empty ones keep their place
    pkg = upload_package(c)
    sparse = [{"op": "range", "n": 1000, "override_num_blocks": 10},
              {"op": "filter", "fn": fn(pkg, "keep_multiples", column="id", of=200)}]
    got, _ = run_rows([{"op": "range", "n": 5, "override_num_blocks": 5},
                       {"op": "zip", "other": {"ops": sparse}}], 5, {"preserve_order": True})
    assert [(r["id"], r["id_1"]) for r in got] == [(k, 200 * k) for k in range(5)], got
    got, _ = run_rows(sparse + [{"op": "zip", "other": {"ops": [
        {"op": "range", "n": 5, "override_num_blocks": 2}]}}], 5)
    assert sorted((r["id"], r["id_1"]) for r in got) == [(200 * k, k) for k in range(5)], got

    # different row counts: the dataset fails naming the operator
    msg = failed_with(c, {"ops": [{"op": "range", "n": 100}, {"op": "map_batches", "fn": {
        "package": "builtin", "function": "cast", "args": {"column": "id", "dtype": "int32"}}},
        {"op": "zip", "other": {"ops": [{"op": "range", "n": 99}]}}]})
    assert "ops[2] (zip): the datasets have different row counts: 100 and 99" in msg, msg
    msg = failed_with(c, {"ops": [{"op": "range", "n": 10}, {"op": "zip", "other": {"ops": [
        {"op": "range", "n": 30}, {"op": "map_batches", "fn": {
            "package": "builtin", "function": "cast", "args": {"column": "id", "dtype": "int32"}}}]}}]})
    # (the longer one may not have ended when the shorter one did: then "N so far")
    assert re.search(r"ops\[1\] \(zip\): the datasets have different row counts: 10 and "
                     r"(30|[1-2][0-9] so far)", msg), msg
    # counts the plan tells (reads of ranges and items, operators that keep every row): refused
    r = c.post("/api/v1/datasets", {"ops": [
        {"op": "range", "n": 100}, {"op": "union", "other": [{"ops": [
            {"op": "from_items", "items": [{"id": 1}]}]}]}, {"op": "sort", "key": "id"},
        {"op": "zip", "other": {"ops": [{"op": "range", "n": 30}, {"op": "limit", "limit": 20}]}}]})
    assert r.status == 400 and r.json()["error"] == {
        "code": "invalid_plan", "message": "ops[3] (zip): the datasets have different row counts: "
        "101 and 20 (zip joins rows by their place: each must have as many)"}, r.json()
    # datasets of different schemas: an operator that joins their blocks fails naming both
    msg = failed_with(c, {"ops": [{"op": "range", "n": 10}, {"op": "union", "other": [
        {"ops": [{"op": "from_items", "items": [{"s": "a"}]}]}]},
        {"op": "repartition", "num_blocks": 1}]})
    print("  union of two schemas, repartitioned: %s" % msg)
    assert "Repartition(1)" in msg and "names differ from block 0" in msg, msg
    # a read of another dataset that fails names the union it is in
    top = tempfile.mkdtemp(prefix="prism-data-")
    try:
        msg = failed_with(c, {"ops": [a, {"op": "union", "other": [{"ops": [
            {"op": "read_text", "paths": os.path.join(top, "missing.txt")}]}]}]})
    finally:
        shutil.rmtree(top)
    assert "ReadText: ops[1] (union): read_text: " in msg and "missing.txt" in msg, msg
    # plans: the other datasets are checked as plans are, errors placed in them
    for plan, code, text in (
            ({"ops": [a, {"op": "zip"}]}, "invalid_plan", 'ops[1] (zip): missing "other"'),
            ({"ops": [a, {"op": "union", "other": []}]}, "invalid_plan",
             'ops[1] (union): "other" must be a list of 1 to 64 datasets'),
            ({"ops": [a, {"op": "union", "other": [{"ops": [{"op": "map", "fn": {
                "package": "builtin", "function": "cast", "args": {"dtype": "int32"}}}]}]}]},
             "invalid_plan", "ops[1] (union): other[0].ops[0] (map): a plan starts with a read"),
            ({"ops": [a, {"op": "zip", "other": {"ops": [a, {"op": "write_jsonl",
                                                             "path": "/x"}]}}]},
             "invalid_plan", "ops[1] (zip): other.ops[1] (write_jsonl): a dataset given to zip "
                             "cannot hold a write"),
            ({"ops": [a, {"op": "zip", "other": {"ops": [a], "name": "x"}}]}, "invalid_plan",
             'ops[1] (zip): "other" must be a dataset')):
        r = c.post("/api/v1/datasets", plan)
        assert r.status == 400 and r.json()["error"]["code"] == code, (r, plan)
        assert text in r.json()["error"]["message"], r.json()

    # from C (data.h): the same operators, the same checks
    out = probe(c, "union_zip", 1000)
    got = json.loads(out.split("zip: ", 1)[1].splitlines()[0])
    assert sorted((r["id"], r["id_1"]) for r in got) == [(i, 999 - i) for i in range(1000)], got[:3]
    assert "zip refused: PRISM_ERR_INVALID ops[1] (zip): the datasets have different row " \
           "counts: 1000 and 999" in out, out
    assert "zip of 1000 and 999 rows: PRISM_ERR_TASK" in out, out
    assert "ops[1] (zip): the datasets have different row counts: 1000 and 999" in out, out


if __name__ == "__main__":
    run([test_range_map_filter_limit, test_from_items_and_columns, test_bad_plans, test_stop,
         test_streams_within_the_memory_budget, test_default_budget_is_half_the_stores,
         test_without_dataservice, test_read_files, test_read_images, test_image_runs_fused,
         test_block_sizes,
         test_worker_killed_mid_pipeline, test_c_api, test_c_api_slow_consumer,
         test_cli, test_read_urls, test_c_api_two_nodes, test_writes, test_streaming_split,
         test_materialize, test_actor_pool, test_operator_metrics, test_split_locality,
         test_all_to_all, test_all_to_all_larger_than_the_stores,
         test_all_to_all_worker_killed, test_all_to_all_fused, test_union_zip,
         test_stages_of_other_shapes_overlap],
        dataservice=True)
