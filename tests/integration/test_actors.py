"""Actors end to end: a C driver (actor_probe) with the builtin Counter
against real schedulers, node agents, workers and the GCS."""
import os
import signal
import subprocess

from harness import BIN, kill_quietly, run, skip, wait_until

PROBE = os.path.join(BIN, "actor_probe")
PACKAGE = os.path.join(BIN, "..", "examples", "example_tasks.so")


def env_of(c, node="node-1"):
    if not os.access(PROBE, os.X_OK) or not os.access(os.path.join(BIN, "prism-worker"), os.X_OK):
        skip("actor_probe or prism-worker is not built")
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token,
               PRISM_STORE_SOCKET=os.path.join(c.dir, "nodes", node, "objectstore.sock"),
               PRISM_NODE_ID="")
    env.pop("PRISM_HOME", None)
    return env


def probe(c, *args, timeout=180):
    r = subprocess.run([PROBE] + [str(a) for a in args], env=env_of(c), capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, "probe %s failed (%d):\n%s\n%s" % (args, r.returncode, r.stdout,
                                                                r.stderr)
    return r.stdout


def start(c, *args):
    return subprocess.Popen([PROBE] + [str(a) for a in args], env=env_of(c), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def actor(c, actor_id):
    r = c.get("/api/v1/actors/" + actor_id)
    assert r.status == 200, r
    return r.json()


def first_line(p, prefix):
    line = p.stdout.readline().strip()
    assert line.startswith(prefix), (line, p.stderr.read() if p.poll() is not None else "")
    return line


def test_counter(c):
    out = probe(c, "counter")
    for line in ("counter ok: [1, 2]", "unknown method:", "constructor failed:", "errors ok"):
        assert line in out, out
    print(out.strip())


def test_return_written_in_place(c):
    """prism_task_return_bytes: Counter.fill writes its bytes where the return
    goes (inline up to the frame's limit, else the node's store), every byte
    as made; one that fails after asking leaves nothing in the store, and the
    next call is whole."""
    base = c.store_stats()
    out = probe(c, "fill")
    assert "fill ok" in out, out
    wait_until(lambda: c.store_stats()["objects"] == base["objects"], timeout=20,
               what="the store back to %d objects" % base["objects"])
    print(out.strip(), "- store objects before and after:", base["objects"])


def test_many_actors_from_one_client(c):
    """Twelve actors from one client, called in turns: each call reaches its own
    actor (the client's index of actors by ID grows past its first size)."""
    out = probe(c, "many", "12")
    assert "many ok: 12" in out, out


def test_order_of_three_callers(c):
    """10,002 calls from three processes at once: each sees its own counts
    rise in the order it made the calls, and the total is exact."""
    owner = start(c, "create", "ordered")
    try:
        first_line(owner, "actor ")
        callers = [start(c, "calls", "ordered", 3334) for _ in range(3)]
        for p in callers:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0 and "calls ok: 3334 in order" in out, (out, err)
        assert "count 10002" in probe(c, "get", "ordered")
        a = c.get("/api/v1/actors?name=ordered").json()["actors"][0]
        wait_until(lambda: actor(c, a["actor_id"]).get("calls_done", 0) >= 10003, timeout=10,
                   what="the worker to report the calls it finished")
        assert actor(c, a["actor_id"])["pending_calls"] == 0
    finally:
        owner.communicate("done\n", timeout=60)


def test_named_actor_from_another_job(c):
    owner = start(c, "create", "shared")
    try:
        first_line(owner, "actor ")
        jid = c.submit("%s calls shared 50" % PROBE)
        j = c.wait_job(jid, timeout=120)
        assert j["state"] == "SUCCEEDED" and "calls ok: 50 in order" in c.logs(jid), (j, c.logs(jid))
        assert "count 50" in probe(c, "get", "shared")
    finally:
        owner.communicate("done\n", timeout=60)


def test_detached_actor_outlives_its_driver(c):
    out = probe(c, "create", "keeper", "detached")
    actor_id = out.split()[1]
    assert "calls ok: 5" in probe(c, "calls", "keeper", 5)
    a = actor(c, actor_id)
    assert a["state"] == "ALIVE" and a["detached"] and a["name"] == "keeper", a
    r = c.post("/api/v1/actors/%s/kill" % actor_id, {"no_restart": True})
    assert r.status == 200, r
    wait_until(lambda: actor(c, actor_id)["state"] == "DEAD", what="the killed actor to be DEAD")
    assert "killed" in actor(c, actor_id).get("cause", ""), actor(c, actor_id)


def test_owned_actor_dies_with_its_owner(c):
    owner = start(c, "create", "short-lived")
    actor_id = first_line(owner, "actor ").split()[1]
    owner.communicate("done\n", timeout=60)
    wait_until(lambda: actor(c, actor_id)["state"] == "DEAD", timeout=20,
               what="an owned actor to die with its owner")
    assert "owner" in actor(c, actor_id).get("cause", ""), actor(c, actor_id)


def test_restart_then_max_restarts(c):
    p = start(c, "restart")
    try:
        actor_id = first_line(p, "actor ").split()[1]
        first_line(p, "restarted ok")
        a = actor(c, actor_id)
        assert a["state"] == "ALIVE" and a["restarts"] == 1, a
        out, err = p.communicate("go\n", timeout=120)
        assert p.returncode == 0 and "dead ok" in out, (out, err)
        a = actor(c, actor_id)
        assert a["state"] == "DEAD" and a["restarts"] == 1 and a.get("cause"), a
        print(a["cause"])
    finally:
        if p.poll() is None:
            p.kill()


def test_calls_in_flight_when_the_actor_dies(c):
    assert "inflight ok: " in probe(c, "inflight", 0)
    assert "inflight ok: retried" in probe(c, "inflight", 1)


def upload_package(c):
    with open(PACKAGE, "rb") as f:
        r = c.request("POST", "/api/v1/packages", raw=f.read())
    assert r.status in (200, 201), r
    return r.json()["sha256"]


def test_cancel_actor_calls(c):
    out = probe(c, "cancel")
    assert "queued call cancelled ok" in out and "running call cancelled with force ok" in out, out


def test_handle_passed_to_a_task(c):
    assert "handle ok" in probe(c, "handle", upload_package(c))


def test_only_actor_users_follow_actor_events(c):
    """Every actor's state changes go to the clients that use actors, not to
    every worker: nested tasks leave workers whose clients are connected, and
    none of them, nor the task driver, subscribes to prism.event.actor; an
    actor's creator does, and the worker it runs on does not."""
    tasks = os.path.join(BIN, "task_probe")
    if not os.access(tasks, os.X_OK):
        skip("task_probe is not built")
    r = subprocess.run([tasks, "nested", "3"], env=env_of(c), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr)

    def following():
        return sum("prism.event.actor" in subs for subs in c.nats_subscriptions())

    # Clients subscribe to their owner subject (the GCS to one of its own).
    owners = sum(any(s.startswith("prism.owner.") for s in subs) for subs in c.nats_subscriptions())
    assert owners >= 2, "no worker's client is connected"
    assert following() == 0
    owner = start(c, "create", "watched")
    try:
        first_line(owner, "actor ")
        assert following() == 1
    finally:
        owner.communicate("done\n", timeout=60)


test_only_actor_users_follow_actor_events.cluster = {"nats_monitor": True}


def test_actor_class_from_a_package(c):
    out = probe(c, "package", upload_package(c))
    assert "package actor ok" in out and "no method 'inc'" in out, out


def test_actor_keeps_a_borrowed_reference(c):
    """An actor holds a reference after the call that brought it: the object
    outlives the driver's own handle, and goes once the actor drops it."""
    p = start(c, "hold", upload_package(c))
    try:
        first_line(p, "kept ok")
        # The driver's own handle is gone: the object lists a borrower, no handle.
        held = lambda: [o for o in c.get("/api/v1/objects?state=READY").json()["objects"]
                        if o.get("borrowers") == 1 and o["refs"] == 0 and o["size"] > 1000000]
        wait_until(held, timeout=10, what="the object listed with one borrower")
        env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
        out = subprocess.run([os.path.join(BIN, "prism"), "object", "list"], env=env,
                             capture_output=True, text=True, timeout=60).stdout
        assert "+1 borrowing" in out, out
        p.stdin.write("go\n")
        p.stdin.flush()
        first_line(p, "dropped")
        wait_until(lambda: c.store_stats()["objects"] == 0, timeout=20,
                   what="the object store to be empty once the actor dropped the reference")
        out, err = p.communicate("done\n", timeout=60)
        assert p.returncode == 0, (out, err)
    finally:
        if p.poll() is None:
            p.kill()


def worker_pid(c, worker_id):
    """The pid of a worker of node-1, from its node agent's worker list."""
    addr = [n["address"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]
            if n["name"] == "node-1"][0]
    ws = c.get("/api/v1/workers", base=addr.rstrip("/")).json()["workers"]
    pids = [w["pid"] for w in ws if w["worker_id"] == worker_id]
    assert pids and pids[0] > 1, (worker_id, ws)
    return pids[0]


def constructor_argument_outlives_its_creator_reference(c, *args):
    p = start(c, *args)
    try:
        actor_id = first_line(p, "actor ").split()[1]
        held = lambda: [o for o in c.get("/api/v1/objects?state=READY").json()["objects"]
                        if o.get("borrowers") == 1 and o["refs"] == 0 and o["size"] > 1000000]
        wait_until(held, timeout=10, what="the argument listed with one borrower (the GCS)")
        assert c.store_stats()["objects"] == 1
        kill_quietly(worker_pid(c, actor(c, actor_id)["worker_id"]))
        wait_until(lambda: actor(c, actor_id)["restarts"] == 1 and
                   actor(c, actor_id)["state"] == "ALIVE", what="the actor restarted")
        p.stdin.write("go\n")
        p.stdin.flush()
        first_line(p, "restarted with its argument ok")
        first_line(p, "killed")
        a = actor(c, actor_id)
        assert a["restarts"] == 1 and a["state"] == "DEAD", a
        wait_until(lambda: c.store_stats()["objects"] == 0, timeout=20,
                   what="the object store to be empty once the actor is DEAD")
        out, err = p.communicate("done\n", timeout=60)
        assert p.returncode == 0, (out, err)
    finally:
        if p.poll() is None:
            p.kill()


def test_constructor_argument_outlives_its_creator_reference(c):
    """A constructor argument in the object store is borrowed by the GCS: the
    creator drops its reference, the worker is killed, the restarted actor
    gets the same value; killed for good, the GCS lets the object go. The
    same for a reference inside a list argument."""
    constructor_argument_outlives_its_creator_reference(c, "ctorarg")
    constructor_argument_outlives_its_creator_reference(c, "ctorlist", upload_package(c))


def test_pending_calls_count_calls_queued_at_callers(c):
    """An actor stuck in a long call: its worker cannot report, but the calls
    queued at the caller (past the connection's window of 256) show in
    pending_calls; once all are done it is 0 again."""
    p = start(c, "stuck")
    try:
        actor_id = first_line(p, "actor ").split()[1]
        wait_until(lambda: actor(c, actor_id).get("pending_calls", 0) >= 140, timeout=6,
                   what="the calls queued at the caller counted in pending_calls")
        p.stdin.write("go\n")
        p.stdin.flush()
        first_line(p, "drained")
        wait_until(lambda: actor(c, actor_id).get("pending_calls") == 0, timeout=10,
                   what="pending_calls back to 0")
        out, err = p.communicate("done\n", timeout=60)
        assert p.returncode == 0, (out, err)
    finally:
        if p.poll() is None:
            p.kill()


def test_pipelined_calls_that_wait_for_each_other(c):
    """Calls pushed together where each gets the result of the one before:
    the worker sends the DONE frames it holds before a call blocks in get."""
    assert "chain ok" in probe(c, "chain", timeout=120)


def test_concurrent_actor(c):
    assert "concurrent ok" in probe(c, "concurrent")


def lives_on(a, node_id):
    return a["state"] == "ALIVE" and a.get("node_id") == node_id


def actor_leaves(c, name, take_down):
    """A Counter placed (soft) on a new node `name`; `take_down()` takes the node
    down; the actor's next call, made once the GCS shows it ALIVE on node-1,
    answers from there. Returns the actor's record and the nodes' IDs."""
    c.start_node(name, "--num-cpus", "4")
    c.wait_nodes(2)
    nodes = {n["name"]: n["node_id"] for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]}
    p = start(c, "onnode", nodes[name])
    try:
        actor_id = first_line(p, "actor ").split()[1]
        assert actor(c, actor_id)["node_id"] == nodes[name]
        take_down()
        # The call is made once the actor lives again: one sent before the
        # caller sees its old worker go fails, as the probe's actor has no
        # max_task_retries (a killed process's socket closes a moment later).
        wait_until(lambda: lives_on(actor(c, actor_id), nodes["node-1"]), timeout=60,
                   what="the actor restarted on node-1")
        out, err = p.communicate("go\n", timeout=120)
        assert p.returncode == 0 and "moved ok" in out, (out, err)
        return actor(c, actor_id), nodes
    finally:
        if p.poll() is None:
            p.kill()


def test_actor_on_a_node_that_dies(c):
    def kill():
        c.nodes["node-2"].kill()
        c.stores["node-2"].kill()
        for pid in c.worker_pids("node-2"):
            kill_quietly(pid)
    a, nodes = actor_leaves(c, "node-2", kill)
    assert a["restarts"] >= 1 and a.get("node_id") == nodes["node-1"], a


def test_actor_whose_worker_hangs_with_its_node(c):
    """The actor's node hangs (its agent, store and workers stopped, their
    sockets open): the GCS restarts the actor elsewhere once the node misses
    its heartbeats, and the caller, told the node died, sends its next call to
    the new worker rather than down the old connection, which never closes."""
    hung = []

    def hang():
        hung.extend(c.worker_pids("node-3"))
        assert hung, "no worker of node-3 found"
        for pid in hung:
            kill_quietly(pid, signal.SIGSTOP)
        c.nodes["node-3"].send_signal(signal.SIGSTOP)
        c.stores["node-3"].send_signal(signal.SIGSTOP)
    try:
        actor_leaves(c, "node-3", hang)
    finally:
        for pid in hung:
            kill_quietly(pid)
        if "node-3" in c.nodes:
            c.nodes["node-3"].kill()
            c.stores["node-3"].kill()


if __name__ == "__main__":
    run([test_counter, test_return_written_in_place, test_many_actors_from_one_client, test_order_of_three_callers,
         test_named_actor_from_another_job,
         test_detached_actor_outlives_its_driver, test_owned_actor_dies_with_its_owner,
         test_restart_then_max_restarts, test_calls_in_flight_when_the_actor_dies,
         test_cancel_actor_calls,
         test_handle_passed_to_a_task, test_only_actor_users_follow_actor_events,
         test_actor_class_from_a_package,
         test_actor_keeps_a_borrowed_reference,
         test_constructor_argument_outlives_its_creator_reference,
         test_pending_calls_count_calls_queued_at_callers,
         test_pipelined_calls_that_wait_for_each_other, test_concurrent_actor,
         test_actor_on_a_node_that_dies, test_actor_whose_worker_hangs_with_its_node],
        nodes=1, node_args=("--num-cpus", "4"))
