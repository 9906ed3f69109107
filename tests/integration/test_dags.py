"""Compiled DAGs end to end: a C driver (dag_probe) compiles graphs of builtin
Counters (Counter(k).add(x) = x + k) on real workers and checks every result."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from harness import BIN, run, skip, wait_until

PROBE = os.path.join(BIN, "dag_probe")
# Under the sanitizers every hop costs more: fewer executions keep the time bounded.
EXECUTIONS = int(os.environ.get("PRISM_DAG_EXECUTIONS", "100000"))


def probe_env(c):
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    env.pop("PRISM_HOME", None)
    return env


def read_until(p, line):
    """The probe's output up to `line`, which it prints before it waits."""
    out = ""
    while True:
        got = p.stdout.readline()
        assert got, "the probe ended before %r:\n%s" % (line, out)
        out += got
        if got.strip() == line:
            return out


def probe(c, *args, timeout=120, rc=0, store=False):
    """Runs dag_probe; with `store`, as a driver on node-1 with its object
    store (as a job is), for values through the store."""
    if not os.access(PROBE, os.X_OK) or not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("dag_probe or prism-worker is not built")
    env = probe_env(c)
    if store:
        env["PRISM_STORE_SOCKET"] = os.path.join(c.dir, "nodes", "node-1", "objectstore.sock")
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
    """SIGKILL to the middle actor: executions fail with PRISM_ERR_ACTOR_DIED,
    and the listing shows the DAG BROKEN, and the loop of the actor after the
    dead one ENDED with its error."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
    p = subprocess.Popen([PROBE, "died", "pause"], env=probe_env(c), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        out = read_until(p, "broken")

        def states():
            return [d["state"] for d in c.get("/api/v1/dags").json()["dags"]
                    if d["id"] not in before]

        wait_until(lambda: states() == ["BROKEN"], timeout=10, what="the DAG BROKEN")

        def loops():
            return [d["loops"] for d in c.get("/api/v1/dags").json()["dags"]
                    if d["id"] not in before][0]

        wait_until(lambda: loops()[2]["state"] == "ENDED", timeout=10,
                   what="the last actor's loop ENDED")
        assert "died" in loops()[2]["error"] and loops()[0]["error"] is None, loops()
        p.stdin.write("go\n")
        p.stdin.flush()
        out += p.stdout.read()
        assert p.wait(timeout=60) == 0 and "died ok" in out, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


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


def test_listed(c):
    """GET /api/v1/dags shows a compiled DAG: its actors (class and method),
    its shared-memory edges and each hop's latency histogram, the executions
    done, each loop's values (JSON decoded, copied into the slot); TORN_DOWN
    after teardown; an unknown id is a 404 not_found."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
    env = probe_env(c)
    p = subprocess.Popen([PROBE, "listed", "50"], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        actors = p.stdout.readline().split()[1:]
        assert p.stdout.readline().strip() == "executed", "the probe failed"

        def mine():
            new = [d for d in c.get("/api/v1/dags").json()["dags"] if d["id"] not in before]
            return new[0] if new else None

        wait_until(lambda: mine() and mine()["executions"] == 50, timeout=10,
                   what="the DAG listed with its 50 executions")
        d = c.get("/api/v1/dags/" + mine()["id"]).json()
        assert d["state"] == "COMPILED", d
        binds = [n for n in d["nodes"] if n["kind"] == "bind"]
        assert [n["actor_id"] for n in binds] == actors, d
        assert all(n["class"] == "Counter" and n["method"] == "add" for n in binds), d
        assert [(e["from"], e["to"], e["kind"]) for e in d["edges"]] == [(0, 1, "shm"),
                                                                         (1, 2, "shm")], d
        assert all(e["slot_size"] == d["max_buf_size"] for e in d["edges"]), d
        assert d["outputs"] == [2] and d["owner"].startswith("owner:"), d
        # every hop's latency, from the channels' counters: one value in 8
        # is timed, of 50 the 1st, 9th, ... 49th
        hops = [e["latency"] for e in d["edges"]] + d["output_latency"]
        assert len(hops) == 3, d
        for h in hops:
            assert h["count"] == 7 and sum(h["buckets"]) == 7 and len(h["buckets"]) == 15, d
            assert h["mean_us"] > 0, d
        # each actor's loop, as its worker reports it: running, its 50
        # passes, and when it last moved

        def loops():
            return c.get("/api/v1/dags/" + d["id"]).json()["loops"]

        wait_until(lambda: [(l["state"], l["executions"]) for l in loops()] ==
                   [("RUNNING", 50)] * 2, timeout=10, what="both loops RUNNING, 50 executions")
        now = time.time() * 1000
        for l in loops():
            assert l["error"] is None and now - 60000 < l["active_at"] <= now + 5000, l
            assert l["values"] == dict(ZERO_VALUES, read_decoded=50, written_copied=50), l
        assert [l["actor_id"] for l in loops()] == actors, loops()
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "torn down", "the teardown failed"
        wait_until(lambda: c.get("/api/v1/dags/" + d["id"]).json()["state"] == "TORN_DOWN",
                   timeout=10, what="the DAG TORN_DOWN")
        assert [l["state"] for l in loops()] == ["STOPPED"] * 2, loops()
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    r = c.get("/api/v1/dags/0123456789abcdef")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found", r
    # the CLI shows the same
    cli = os.path.join(BIN, "prism")
    listed = subprocess.run([cli, "dag", "list", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [x["state"] for x in rows if x["id"] == d["id"]] == ["TORN_DOWN"], listed.stdout
    shown = subprocess.run([cli, "dag", "get", d["id"]], env=env, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and shown.stdout.count("Counter.add on") == 2, shown.stdout
    assert "   0 -> 1" in shown.stdout and "   2 -> driver" in shown.stdout, shown.stdout
    assert shown.stdout.count("          7 timed") == 3, shown.stdout
    assert "TORN_DOWN, 50 executions" in shown.stdout, shown.stdout
    assert len([l for l in shown.stdout.splitlines() if "STOPPED" in l and
                " 50 executions  last active" in l]) == 2, shown.stdout
    assert shown.stdout.count("    values: read_decoded 50, written_copied 50\n") == 2, \
        shown.stdout
    assert [r for r in subprocess.run([cli, "dag", "list"], env=env, capture_output=True,
                                      text=True, timeout=60).stdout.splitlines()
            if r.startswith(d["id"])][0].split()[4] == "0/2", "the list's LOOPS column"
    missing = subprocess.run([cli, "dag", "get", "0123456789abcdef"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "no DAG" in missing.stderr, missing.stderr


def rendezvous_sockets(pid):
    """Names of the listening Unix sockets that process `pid` holds."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    names = []
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            cols = line.split()
            # Flags 00010000: listening (__SO_ACCEPTCON)
            if len(cols) >= 8 and cols[6] in inodes and int(cols[3], 16) & 0x10000:
                names.append(cols[7])
    return names


# Connects to an abstract Unix socket, sends `send` (bytes), and reports as
# JSON whether the peer closed and whether any fd came (SCM_RIGHTS).
STRANGER = r"""
import array, json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect("\0" + sys.argv[1])
fds, data = [], b""
try:
    if sys.argv[2]:
        s.sendall(bytes.fromhex(sys.argv[2]))
    while True:
        msg, anc, flags, _ = s.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", payload[:len(payload) - len(payload) % 4]).tolist()
        data += msg
        if not msg and not anc:
            break
    closed = True
except (BrokenPipeError, ConnectionResetError):  # closed with what it sent unread
    closed = True
except socket.timeout:
    closed = False
print(json.dumps({"closed": closed, "fds": len(fds), "data": len(data)}))
"""


def strangers(name, tries):
    """Runs STRANGER for each (bytes to send, uid or None) at once: the
    socket listens only while compile waits."""
    ps = [subprocess.Popen([sys.executable, "-c", STRANGER, name.lstrip("@"), send.hex()],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, user=user)
          for send, user in tries]
    got = []
    for p in ps:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        got.append(json.loads(out))
    return got


def test_rendezvous_refuses_strangers(c):
    """The driver's rendezvous socket, which hands out the channels' memfds,
    gives nothing to a peer without an actor's nonce: no nonce, a short one,
    a wrong one, another uid (when the test runs as root). Each is closed
    with no fd and no byte, the compile goes on, and the socket is abstract
    (no file) and gone once compile returned."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    p = subprocess.Popen([PROBE, "rendezvous", "8000"], env=probe_env(c),
                         stdout=subprocess.PIPE, text=True)
    try:
        read_until(p, "compiling")
        names = []
        wait_until(lambda: names.extend(rendezvous_sockets(p.pid)) or names, timeout=10,
                   what="the rendezvous socket")
        assert len(names) == 1 and names[0].startswith("@prism-dag-"), names
        name = names[0]
        assert not os.path.exists(name.lstrip("@")) and "/" not in name, name
        tries = [(b"", None), (b"0123456789abcdef", None), (b"0" * 32, None),
                 (b"g" * 32 + b"\n", None), (os.urandom(64), None)]
        if os.getuid() == 0:
            tries.append((b"0" * 32, 65534))
        for t, g in zip(tries, strangers(name, tries)):
            assert g == {"closed": True, "fds": 0, "data": 0}, (t, g)
        assert read_until(p, "compiled"), "compile failed"
        assert rendezvous_sockets(p.pid) == [], "the socket outlived compile"
        out = p.stdout.read()
        assert p.wait(timeout=60) == 0 and "rendezvous ok" in out, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_peer_rendezvous_refuses_strangers(c):
    """The socket on which an actor's worker hands out the channels it made
    (edges between two actors of a node that is not the driver's) gives
    nothing to a peer without the reader's nonce: no nonce, a short one, a
    wrong one, another uid. The reader's nonce then gets its one fd, once;
    the socket is abstract and gone once the start ended."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    p = subprocess.Popen([PROBE, "serve"], env=probe_env(c), stdout=subprocess.PIPE, text=True)
    try:
        pid = int(read_until(p, "serving").split("pid ")[1].split()[0])
        def dag_sockets():
            return [n for n in rendezvous_sockets(pid) if n.startswith("@prism-dag-")]

        wait_until(dag_sockets, timeout=10, what="the worker's rendezvous socket")
        names = dag_sockets()
        assert names == ["@prism-dag-0123456789abcdef0123456789abcdee-0"], names
        tries = [(b"", None), (b"0123456789abcdef", None), (b"0" * 32, None),
                 (b"00112233445566778899aabbccddeefe", None), (os.urandom(64), None)]
        if os.getuid() == 0:
            tries.append((b"00112233445566778899aabbccddeeff", 65534))
        for t, g in zip(tries, strangers(names[0], tries)):
            assert g == {"closed": True, "fds": 0, "data": 0}, (t, g)
        right = [(b"00112233445566778899aabbccddeeff", None)]
        got = strangers(names[0], right)
        assert got == [{"closed": True, "fds": 1, "data": 1}], got  # a byte carries the fd
        wait_until(lambda: dag_sockets() == [], timeout=10,
                   what="the socket gone once its one reader was served")
        out = p.stdout.read()
        assert p.wait(timeout=60) == 0 and "serve ok" in out, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_large_values(c):
    """Values of 4 MiB through 64 KiB slots go through the object store (a
    reference in the slot), read by two readers after the first actor, and
    come back intact among 1 KiB ones that stay in the slots. While the DAG
    runs the store holds at most a slot's worth per edge; after teardown it
    is back where it was (no object left behind)."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    base = c.store_stats()
    env = probe_env(c)  # a driver on the node, with its object store, as a job is
    env["PRISM_STORE_SOCKET"] = os.path.join(c.dir, "nodes", "node-1", "objectstore.sock")
    p = subprocess.Popen([PROBE, "large", "20", str(4 << 20)], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        read_until(p, "executed")
        # 4 edges (input, A, B, C), 2 slots each: at most 8 objects of 4 MiB
        # are still held by their writers, nothing more.
        during = c.store_stats()
        print("store before: %d objects, %d bytes; running: %d, %d" % (
            base["objects"], base["used_bytes"], during["objects"], during["used_bytes"]))
        assert 0 < during["objects"] - base["objects"] <= 8, (base, during)
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "torn down")
        wait_until(lambda: c.store_stats()["objects"] == base["objects"] and
                   c.store_stats()["used_bytes"] == base["used_bytes"], timeout=20,
                   what="the store back to %s" % base)
        p.stdin.write("go\n")
        p.stdin.flush()
        out = p.stdout.read()
        assert p.wait(timeout=60) == 0 and "large ok" in out, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


test_large_values.cluster = {"store_memory": "256MiB"}


def fill_values(c, before, n):
    """The loops' counts of what became of their values (`values`) in the
    two DAGs `dag_probe fill N` made since `before`, once every loop's last
    report came: each value's path is known from its size (8 sizes in
    turn: 5 fit a 64 KiB slot, 2 do not, 1 fails after asking)."""
    def dags():
        new = [d for d in c.get("/api/v1/dags").json()["dags"] if d["id"] not in before]
        # a loop's counts are whole once it wrote a record per execution
        done = all(sum(v for k, v in l["values"].items() if k.startswith("written_")) ==
                   d["executions"] for d in new for l in d["loops"])
        return new if len(new) == 2 and done else None

    swap, two = wait_until(dags, timeout=20, what="both DAGs' loops counted")
    fit, big = n // 8 * 5, n // 8 * 2
    a, b = (l["values"] for l in two["loops"])
    assert two["executions"] == n and a == dict(
        ZERO_VALUES, read_decoded=n, written_in_slot=fit, written_to_store=big,
        written_errors=n // 8), a
    assert b == dict(ZERO_VALUES, read_in_place=fit, read_from_store=big, written_in_slot=fit,
                     written_to_store=big, written_errors=n // 8), b
    assert swap["loops"][0]["values"] == dict(ZERO_VALUES, read_decoded=6, written_copied=6), swap


ZERO_VALUES = dict.fromkeys(
    ("read_in_place", "read_decoded", "read_from_store", "read_device", "written_in_slot",
     "written_copied", "written_to_store", "written_device", "written_errors"), 0)


def test_returns_written_in_slot(c):
    """prism_task_return_bytes in a DAG: Counter.fill writes its bytes in its
    channel's slot and Counter.echo copies them slot to slot, A's slot read
    by B and the driver; sizes from empty to a slot's fill, one byte past it
    and larger (a value of their own, through the object store), and a fill
    that fails after asking (the error names it; the next is whole). The
    loops' counts show each value's path: in the slot, or through the
    store."""
    before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
    assert "fill ok: 400 executions" in probe(c, "fill", 400, store=True)
    fill_values(c, before, 400)


def test_input_written_in_place(c):
    """prism_dag_execute_begin/_end: the driver writes each input in the
    input channel's slot, read by two actors; every size up to a slot's
    fill comes back as written; a value too large, a second begin, an
    execute or one execution too many meanwhile, an end without a begin and
    a DAG that takes items are refused, and a cancelled input leaves no
    trace."""
    assert "written ok: 600 executions" in probe(c, "written", 600)


def test_get_in_place(c):
    """prism_dag_get_in_place: 300 executions of 0 to 40 KiB (every seventh
    100 KiB, through the object store), two in flight, each value as sent,
    unchanged while held (the execution after next waits for its slot) and
    read in its slot (it lies where the one two executions earlier lay);
    out of order, after a get that copies, a method's error, a fan-out's
    list of two; a multi-output execution begun in place that times out,
    finished by a copying get or while an earlier one is got in between;
    teardown with a value still lent."""
    assert "in-place ok: 300 executions" in probe(c, "in-place", 300, store=True)


def test_constants(c):
    """Binds that take constants (prism_dag_constant): one taken twice by a
    bind, by two actors and by two binds of one actor, over 2,000
    executions four in flight, the graph freed before the first; a 200 KiB
    constant through 64 KiB slots, as sent every time. The listing shows
    the constants as nodes with no edge out of them."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
    assert "constants ok: 2000 executions" in probe(c, "constants", 2000)
    new = [d for d in c.get("/api/v1/dags").json()["dags"] if d["id"] not in before]
    assert len(new) == 2, new
    first = c.get("/api/v1/dags/" + new[-1]["id"]).json()
    kinds = [n["kind"] for n in first["nodes"]]
    assert kinds == ["input", "constant", "constant", "bind", "bind", "bind", "multi_output"], first
    assert [n["args"] for n in first["nodes"][3:6]] == [[0, 1], [2, 3, 1], [4, 2, 2]], first
    # the channels only: input -> a, a -> b, b -> c
    assert [(e["from"], e["to"]) for e in first["edges"]] == [(0, 3), (3, 4), (4, 5)], first
    assert first["outputs"] == [3, 5], first


def test_input_items(c):
    """Items of the input (prism_dag_input_item, Ray's inp[0] and inp[1]):
    one actor takes both, one the second, one the whole list, over 2,000
    executions four in flight, every third by prism_dag_execute_args; an
    input that is not a list, one too short, or too few arguments are
    refused with nothing written while executions are in flight, and the DAG
    goes on. Then a DAG that takes the items only, in reverse order, run
    by execute_args. The listing shows each item as a node of its own
    with its own edges."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
    assert "items ok: 2000 executions" in probe(c, "items", 2000)
    new = [d for d in c.get("/api/v1/dags").json()["dags"] if d["id"] not in before]
    assert len(new) == 2, new  # newest first: the second takes no whole input
    d = c.get("/api/v1/dags/" + new[-1]["id"]).json()
    assert [n["kind"] for n in d["nodes"]] == ["input", "input_item", "input_item", "bind", "bind",
                                               "bind", "multi_output"], d
    assert [n["args"] for n in d["nodes"][1:3]] == [[0], [0]], d
    assert [(e["from"], e["to"]) for e in d["edges"]] == [(1, 3), (2, 3), (2, 4), (0, 5)], d


def test_input_keys(c):
    """A key of the input (prism_dag_input_key, Ray's inp.scale) beside an
    item: two nodes of one key, 1,000 executions four in flight by
    prism_dag_execute_kwargs, the whole input the item then the key;
    executing it without its key, with another key, a key twice or a
    positional value too many is refused with nothing written, and the DAG
    goes on."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    assert "keys ok: 1000 executions" in probe(c, "keys", 1000)


def graph(dag):
    """A listed DAG without what its running loops report."""
    live = ("executions", "loops", "output_latency")
    g = {k: v for k, v in dag.items() if k not in live}
    g["edges"] = [{k: v for k, v in e.items() if k != "latency"} for e in dag["edges"]]
    return g


def test_listed_after_gcs_restart(c):
    """The GCS keeps its DAGs in its database: after a restart it lists them
    again with their graph and count. The DAG runs on while the GCS is down
    (its channels never need it), and the driver's later reports reach the
    new GCS."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    p = subprocess.Popen([PROBE, "listed", "20", "3"], env=probe_env(c), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)

    def go():
        p.stdin.write("go\n")
        p.stdin.flush()

    def mine(n=None):
        ds = [d for d in c.get("/api/v1/dags").json()["dags"]]
        return ds[0] if len(ds) == 1 and (n is None or ds[0]["executions"] == n) else None

    try:
        p.stdout.readline()  # its actors
        read_until(p, "executed")
        before = wait_until(lambda: mine(20), timeout=10, what="the DAG listed, 20 executions")
        assert c.stop_proc(c.gcs) is None and not c.failed_shutdowns, c.failed_shutdowns
        go()
        read_until(p, "executed")  # 20 more, with no GCS
        c.start_gcs()
        after = c.get("/api/v1/dags/" + before["id"]).json()
        # Its graph and count come from the database; the loops' states and
        # the latencies are live, and the actors may report them to the new
        # GCS before this read, as may the driver its 20 later executions.
        assert graph(after) == graph(before), (before, after)
        assert after["executions"] in (20, 40), after
        go()
        read_until(p, "executed")
        wait_until(lambda: mine(60), timeout=10, what="the new GCS told of 60 executions")
        go()
        read_until(p, "torn down")
        wait_until(lambda: mine() and mine()["state"] == "TORN_DOWN", timeout=10,
                   what="the DAG TORN_DOWN")
        go()
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def tcp_sockets(pid):
    """The TCP sockets of process `pid`: {inode: (state, local port)} (state
    "0A" is LISTEN), from its fds and its network namespace's tables."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = {}
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % (pid, table)) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[9] in inodes:
                    found[cols[9]] = (cols[3], int(cols[1].split(":")[1], 16))
    return found


def listeners(pid):
    return sorted(port for state, port in tcp_sockets(pid).values() if state == "0A")


def test_across_nodes(c):
    """A chain of 4 actors on two nodes (B, A, B, B; the driver on A): the
    input, every hop across the nodes and the output are TCP edges, the hop
    between the two actors of B a shared-memory ring made on B, right
    results for many
    executions with 16 in flight. The DAG's listeners are gone once its
    edges are connected, and teardown leaves the workers no socket more than
    before the compile."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    if "node-2" not in c.nodes:
        c.start_node("node-2", "--num-cpus", "8")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    env = dict(probe_env(c), PRISM_NODE_ID=nodes["node-1"])
    before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
    n = max(EXECUTIONS // 10, 1000)
    p = subprocess.Popen([PROBE, "nodes", nodes["node-1"], nodes["node-2"], str(n), "16"], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        out = read_until(p, "ready")
        pids = sorted({int(l.split()[1]) for l in out.splitlines() if l.startswith("pid ")})
        assert len(pids) == 4, out
        ready = {pid: tcp_sockets(pid) for pid in pids}
        own_listeners = {pid: listeners(pid) for pid in pids}
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "compiled")
        compiled = {pid: tcp_sockets(pid) for pid in pids}
        # Each worker holds its edges' connections, and no DAG listener is left.
        for pid in pids:
            assert listeners(pid) == own_listeners[pid], (pid, compiled[pid])
            assert len(compiled[pid]) > len(ready[pid]), (pid, ready[pid], compiled[pid])
        def listed():
            return [d for d in c.get("/api/v1/dags").json()["dags"] if d["id"] not in before]

        wait_until(listed, timeout=10, what="the DAG listed")
        mine = listed()
        assert len(mine) == 1, mine
        assert [e["kind"] for e in mine[0]["edges"]] == ["tcp"] * 3 + ["shm"], mine[0]["edges"]
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "executed")
        def hops_counted():
            d = c.get("/api/v1/dags/" + mine[0]["id"]).json()
            return ([e["latency"]["count"] for e in d["edges"]] +
                    [h["count"] for h in d["output_latency"]] +
                    [(l["state"], l["executions"]) for l in d["loops"]])
        # every hop's latency, the TCP edges' and the rings' of node 2 too
        # (counted by their readers' workers), and every actor's loop
        timed = (n + 7) // 8
        want = [timed] * (4 + 1) + [("RUNNING", n)] * 4
        wait_until(lambda: hops_counted() == want, timeout=10,
                   what="every hop's latency and every loop in the listing")
        p.stdin.write("go\n")
        p.stdin.flush()
        read_until(p, "torn down")
        for pid in pids:
            left = set(tcp_sockets(pid)) - set(ready[pid])
            assert not left, (pid, left)
        out = p.communicate("go\n", timeout=60)[0]
        assert p.returncode == 0 and "nodes ok: %d executions" % n in out, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_shapes_errors_and_death_across_nodes(c):
    """The other checks with the actors on two nodes (B, A, B; the driver on
    A), so most edges are TCP: tensor-parallel (the input fans out over one
    connection per reader, B's outputs come back over TCP, A's through
    shared memory), several returns, constant arguments, items of the
    input (a TCP channel each), returns written in the slot (the socket
    channel's frame), the input written in place (one frame sent on both
    readers' connections), 4 MiB values through 64 KiB slots (a
    reference on the edge, the bytes from another node's store), a failing
    method that names
    Class.method while the DAG goes on, max_inflight, compile failures; and a
    SIGKILLed middle actor (its TCP streams end without the end mark) fails
    the executions with PRISM_ERR_ACTOR_DIED."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    if "node-2" not in c.nodes:
        c.start_node("node-2", "--num-cpus", "8")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    env = dict(probe_env(c), PRISM_NODE_ID=nodes["node-1"],
               DAG_PROBE_NODES="%s,%s" % (nodes["node-1"], nodes["node-2"]))
    n = max(EXECUTIONS // 10, 1000)
    env["PRISM_STORE_SOCKET"] = os.path.join(c.dir, "nodes", "node-1", "objectstore.sock")
    for args, want in ((["fanout", 3, n, 16], "fanout ok: %d executions" % n),
                       (["returns"], "returns ok"),
                       (["constants", 200], "constants ok"),
                       (["items", 200], "items ok"),
                       (["large", 10, 4 << 20], "large ok"),
                       (["fill", 200], "fill ok"),
                       (["written", 200], "written ok"),
                       (["errors"], "method error: Counter.add failed"),
                       (["died"], "actor died: ")):
        args = [str(a) for a in args]
        before = {d["id"] for d in c.get("/api/v1/dags").json()["dags"]}
        r = subprocess.run([PROBE] + args, env=env, capture_output=True, text=True, timeout=120,
                           input="go\ngo\n")
        assert r.returncode == 0 and want in r.stdout, (args, r.stdout, r.stderr)
        print(r.stdout.strip())
        if args[0] == "fill":  # the same paths over TCP edges
            fill_values(c, before, int(args[1]))


def test_edge_refuses_strangers(c):
    """An actor's listener for a TCP edge: a peer without the edge's secret
    gets the challenge and nothing else (a forged proof closes it), the start
    that waited for the edge's writer fails saying so, the listener is gone,
    and the actor takes ordinary calls again; a listen whose start never
    comes (its driver died) lets the actor go after twice its timeout."""
    if not os.access(PROBE, os.X_OK):
        skip("dag_probe is not built")
    p = subprocess.Popen([PROBE, "rogue"], env=probe_env(c), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        out = read_until(p, "listening")
        answer = json.loads(out.split("listen ", 1)[1].splitlines()[0])
        host, port = answer["addrs"][0].rsplit(":", 1)
        assert host == "127.0.0.1", answer
        silent = socket.create_connection((host, int(port)), timeout=10)
        forged = socket.create_connection((host, int(port)), timeout=10)
        p.stdin.write("go\n")
        p.stdin.flush()
        for s in (silent, forged):
            head = s.recv(4, socket.MSG_WAITALL)
            size = int.from_bytes(head, "little")
            challenge = s.recv(size, socket.MSG_WAITALL)
            assert size == 2 + 32 and challenge[0] == 8, (head, challenge)  # CHALLENGE
            if s is forged:
                s.sendall((1 + 64).to_bytes(4, "little") + bytes([9]) + os.urandom(64))  # AUTH
            assert s.recv(4096) == b"", "a peer without the secret got data"
            s.close()
        out = p.communicate("", timeout=60)[0]
        assert p.returncode == 0 and "rogue ok" in out and "with its secret" in out, out
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
            assert False, "the edge's listener outlived the failed start"
        except ConnectionRefusedError:
            pass
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


if __name__ == "__main__":
    run([test_pipeline_parallel, test_tensor_parallel, test_errors, test_several_returns,
         test_actor_killed, test_driver_dies, test_teardown_leaves_nothing, test_listed,
         test_rendezvous_refuses_strangers, test_peer_rendezvous_refuses_strangers,
         test_large_values, test_returns_written_in_slot, test_input_written_in_place,
         test_get_in_place, test_constants,
         test_input_items, test_input_keys, test_listed_after_gcs_restart,
         test_edge_refuses_strangers, test_across_nodes,
         test_shapes_errors_and_death_across_nodes], nodes=1, node_args=("--num-cpus", "8"))
