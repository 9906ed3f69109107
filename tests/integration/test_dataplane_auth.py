"""The direct data plane as an attacker on the same host sees it (docs/security.md):
a worker's TCP port acts on nothing before the peer proved it holds the
cluster's secret (HMAC challenge-response), serves leases only as the node
agent granted them, refuses large frames from strangers, drops peers that
stall the handshake, and keeps serving legitimate owners meanwhile."""
import hashlib
import hmac
import json
import os
import secrets
import socket
import ssl
import struct
import time

from harness import BIN, NatsClient, run, wait_until
from test_actors_api import create, wait_actor

HELLO, PUSH, DONE, ACTOR_KILL, CHALLENGE, AUTH, AUTH_OK = 1, 2, 3, 6, 8, 9, 10


def frame(kind, payload=b""):
    return struct.pack("<IB", len(payload) + 1, kind) + payload


def text(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def push_echo():
    """A PUSH of builtin/echo with no arguments (one return)."""
    return frame(PUSH, secrets.token_bytes(16) + text("builtin") + text("echo") +
                 struct.pack("<HI", 1, 0))


def read_frame(sock, timeout=5.0):
    """(type, payload), or None when the peer closed the connection."""
    sock.settimeout(timeout)
    head = b""
    try:
        while len(head) < 5:
            chunk = sock.recv(5 - len(head))
            if not chunk:
                return None
            head += chunk
        n, kind = struct.unpack("<IB", head)
        body = b""
        while len(body) < n - 1:
            chunk = sock.recv(n - 1 - len(body))
            if not chunk:
                return None
            body += chunk
        return kind, body
    except ConnectionResetError:
        return None


def closed(sock, timeout=5.0):
    """True when the worker closes the connection with nothing more sent."""
    return read_frame(sock, timeout) is None


def wire_key(token):
    return hmac.new(token.encode(), b"prism direct connections v1", hashlib.sha256).digest()


def proof(key, role, server_nonce, client_nonce):
    return hmac.new(key, role + server_nonce + client_nonce, hashlib.sha256).digest()


def connect(tcp):
    host, port = tcp.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    kind, challenge = read_frame(s)
    assert kind == CHALLENGE and len(challenge) == 33 and challenge[0] == 1, (kind, challenge)
    return s, challenge[1:]


def authenticate(tcp, key):
    """A connection that passed the handshake (the worker's proof checked too)."""
    s, server_nonce = connect(tcp)
    client_nonce = secrets.token_bytes(32)
    s.sendall(frame(AUTH, client_nonce + proof(key, b"C", server_nonce, client_nonce)))
    kind, body = read_frame(s)
    assert kind == AUTH_OK and body == proof(key, b"S", server_nonce, client_nonce), (kind, body)
    return s


def idle_worker_tcp(c):
    node = c.get("/api/v1/nodes").json()["nodes"][0]
    workers = wait_until(lambda: [w for w in c.request("GET", "/api/v1/workers",
                                                        base=node["address"]).json()["workers"]
                                  if w["state"] == "idle" and w.get("tcp")],
                         what="an idle worker with a TCP port")
    return workers[0]["tcp"]


def task_runs(c):
    """A task through the GCS (its own lease and connection): the cluster still serves."""
    r = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [2, 40]})
    assert r.status == 201, r
    d = c.get("/api/v1/objects/%s?timeout_ms=30000" % r.json()["object_ids"][0]).json()
    assert d["state"] == "READY" and d["value"] == {"kind": "json", "value": 42}, d


def test_strangers_get_nothing_done(c):
    tcp = idle_worker_tcp(c)
    # No handshake at all: HELLO and PUSH straight away.
    s, _ = connect(tcp)
    s.sendall(frame(HELLO, text("lease") + text("owner:x")) + push_echo())
    assert closed(s), "a worker ran frames from a peer that never authenticated"
    # A proof made with a wrong token.
    s, nonce = connect(tcp)
    bad = wire_key("not-the-token")
    cn = secrets.token_bytes(32)
    s.sendall(frame(AUTH, cn + proof(bad, b"C", nonce, cn)) + push_echo())
    assert closed(s), "a worker accepted a proof made without the cluster token"
    # The token itself is no proof either: only the HMAC of the nonces is.
    s, nonce = connect(tcp)
    s.sendall(frame(AUTH, c.token.encode().ljust(64, b"\0")[:64]))
    assert closed(s)
    # A huge frame before the handshake: refused at its header, nothing buffered.
    s, _ = connect(tcp)
    s.sendall(struct.pack("<IB", 256 << 20, AUTH) + b"\0" * 65536)
    assert closed(s)
    # A TLS client at a plain port: its ClientHello is no frame, and the
    # CHALLENGE is no TLS record. Both ends give up at once.
    host, port = tcp.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=5)
    t0 = time.time()
    try:
        ssl.create_default_context().wrap_socket(raw, server_hostname=host)
        assert False, "a TLS handshake passed on a plain worker port"
    except (ssl.SSLError, OSError):
        pass
    assert time.time() - t0 < 3
    raw.close()
    # The worker is still there and still serves real owners.
    task_runs(c)


def test_unix_sockets_are_private(c):
    """Whatever the umask, only the node's user may connect to a worker's or
    the object store's Unix socket."""
    node = c.get("/api/v1/nodes").json()["nodes"][0]
    workers = c.request("GET", "/api/v1/workers", base=node["address"]).json()["workers"]
    paths = [w["unix"] for w in workers if w.get("unix")]
    paths.append(os.path.join(c.dir, "nodes", "node-1", "objectstore.sock"))
    for p in paths:
        mode = os.stat(p).st_mode & 0o777
        assert mode == 0o600, "%s has mode %o" % (p, mode)


def test_long_state_dir_sockets_in_a_private_dir(c):
    """A node agent whose state directory is too long for a socket address
    puts its workers' sockets in a directory it made (0700, a name nobody
    could guess before), serves tasks through them, and removes it as it
    stops."""
    tmp = os.path.join(c.dir, "tmp")
    os.makedirs(tmp)
    state = os.path.join(c.dir, "nodes", "long-" + "s" * 100)
    os.makedirs(state)
    argv = [os.path.join(BIN, "prism-nodeagent"), "--port", "0", "--token-file", c.token_file,
            "--nats-url", c.nats_url, "--gcs-address", c.url, "--state-dir", state, "--name",
            "long", "--num-cpus", "1", "--heartbeat-ms", "300", "--log-level", "debug"]
    agent = c._spawn("long", argv, dict(c.service_env(), TMPDIR=tmp))
    try:
        c.wait_nodes(2)
        node = [n for n in c.get("/api/v1/nodes?state=ALIVE").json()["nodes"]
                if n["name"] == "long"][0]
        workers = wait_until(lambda: [w for w in c.request(
            "GET", "/api/v1/workers", base=node["address"]).json()["workers"] if w.get("unix")],
            what="a worker of the long-named node")
        made = os.listdir(tmp)
        assert len(made) == 1 and made[0].startswith("prism-"), made
        assert os.stat(os.path.join(tmp, made[0])).st_mode & 0o777 == 0o700
        for w in workers:
            assert os.path.dirname(w["unix"]) == os.path.join(tmp, made[0]), w
        r = c.post("/api/v1/tasks", {"package": "builtin", "function": "add", "args": [2, 40],
                                     "options": {"strategy": "NODE_AFFINITY",
                                                 "node_id": node["node_id"]}})
        assert r.status == 201, r
        d = c.get("/api/v1/objects/%s?timeout_ms=30000" % r.json()["object_ids"][0]).json()
        assert d["value"] == {"kind": "json", "value": 42}, d
    finally:
        assert agent.stop() == 0
    assert os.listdir(tmp) == [], os.listdir(tmp)


def test_leases_are_checked(c):
    key = wire_key(c.token)
    tcp = idle_worker_tcp(c)
    # Authenticated, but a made-up lease: the node agent never granted it.
    s = authenticate(tcp, key)
    s.sendall(frame(HELLO, text("f" * 32) + text("owner:test")) + push_echo())
    assert closed(s), "a worker served a lease its node agent did not grant"
    # Authenticated without a lease: no task (only actor calls go without one).
    s = authenticate(tcp, key)
    s.sendall(push_echo())
    assert closed(s), "a worker ran a task for a peer that holds no lease"
    # A real lease, named by another owner than the one it was granted to.
    nc = NatsClient(c.nats_port, c.token)
    try:
        grant = nc.request_json("prism.sched.lease", {"owner_id": "owner:test",
                                                      "resources": {"CPU": 1}})
        assert grant.get("ok"), grant
        s = authenticate(grant["tcp"], key)
        s.sendall(frame(HELLO, text(grant["lease_id"]) + text("owner:someone-else")) +
                  push_echo())
        assert closed(s), "a worker served a lease to another owner than its holder"
        # The holder itself is served: the same path with the right names works,
        # whether the worker knows the grant from the node agent's announcement
        # or (the announcement overwritten here) asks the node agent.
        for overwrite in (False, True):
            if overwrite:
                body = json.dumps({"lease_id": "0" * 32, "owner_id": "owner:nobody"}).encode()
                nc.sock.sendall(b"PUB prism.worker.%s.granted %d\r\n%s\r\n" %
                                (grant["worker_id"].encode(), len(body), body))
                time.sleep(0.2)
            s = authenticate(grant["tcp"], key)
            s.sendall(frame(HELLO, text(grant["lease_id"]) + text("owner:test")) + push_echo())
            got = read_frame(s, 10)
            assert got and got[0] == DONE, (overwrite, got)
            s.close()
            time.sleep(0.2)  # the worker returns the lease when the connection closes...
            # ...so it is taken again for the next round
            grant = nc.request_json("prism.sched.lease", {"owner_id": "owner:test",
                                                          "resources": {"CPU": 1}})
            assert grant.get("ok"), grant
        nc.request_json("prism.node.%s.worker.return" % grant["node_id"],
                        {"lease_id": grant["lease_id"]})
    finally:
        nc.close()


def test_actor_kill_needs_the_lease(c):
    nc = NatsClient(c.nats_port, c.token)
    try:
        aid = create(nc, name="victim", resources={"CPU": 1})
    finally:
        nc.close()
    a = wait_actor(c, aid, ("ALIVE",))
    actor_id = bytes.fromhex(aid)
    s, _ = connect(a["tcp"])
    s.sendall(frame(ACTOR_KILL, actor_id))  # no handshake
    assert closed(s)
    s = authenticate(a["tcp"], wire_key(c.token))
    s.sendall(frame(ACTOR_KILL, actor_id))  # the secret, but not the actor's lease
    assert closed(s)
    time.sleep(1.0)
    b = wait_actor(c, aid, ("ALIVE",))
    assert b["restarts"] == 0 and b["worker_id"] == a["worker_id"], b


def test_stalled_handshakes_are_dropped(c):
    """Strangers that connect and say nothing cannot crowd owners out: the
    oldest make room for new ones, and each is dropped after its deadline."""
    tcp = idle_worker_tcp(c)
    host, port = tcp.rsplit(":", 1)
    held = []
    try:
        for _ in range(200):
            held.append(socket.create_connection((host, int(port)), timeout=5))
        task_runs(c)  # an owner is served while they are held
        t0 = time.time()
        # At most 64 wait in the handshake: the rest were closed already, and
        # those left go after the 5 s deadline.
        def all_closed():
            n = 0
            for s in held:
                s.settimeout(0.05)
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            n += 1
                            break
                except socket.timeout:
                    pass
                except OSError:
                    n += 1
            return n == len(held)
        wait_until(all_closed, timeout=15, what="the stalled connections closed")
        assert time.time() - t0 < 12
    finally:
        for s in held:
            s.close()
    task_runs(c)


if __name__ == "__main__":
    os.umask(0)  # the services inherit it: their sockets must not
    run([test_strangers_get_nothing_done, test_unix_sockets_are_private,
         test_long_state_dir_sockets_in_a_private_dir, test_leases_are_checked,
         test_actor_kill_needs_the_lease,
         test_stalled_handshakes_are_dropped], node_args=("--num-cpus", "2"))
