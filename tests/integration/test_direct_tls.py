"""TLS on the workers' TCP ports (docs/security.md#tls): with PRISM_TLS_CERT
and PRISM_TLS_KEY a worker serves its TCP port over TLS only and advertises
it as tls:HOST:PORT; owners and the GCS verify it with PRISM_TLS_CA.

On one machine owners reach workers through their Unix sockets, so the
drivers here and the GCS run in a mount namespace of their own in which the
nodes' directories (where the worker sockets are) are an empty tmpfs: they
must use TCP, as owners on other nodes do. That needs root (else skipped).

Checked: tasks and actor calls over TLS give the right values (the GCS
creates the actor over TLS too); a plaintext peer gets no CHALLENGE in the
clear and is closed; a Python TLS client with the CA gets the CHALLENGE
inside TLS; clients with a wrong CA or none fail with a clear error and
quickly; a TLS client at a plain worker port fails at once."""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import harness
from harness import BIN, run, skip, wait_until
from test_actors_api import create, nats

CERTS = tempfile.mkdtemp(prefix="prism-dtls-")


def openssl_cert(name):
    """A self-signed certificate for 127.0.0.1 and localhost: its own CA."""
    cert, key = os.path.join(CERTS, name + ".pem"), os.path.join(CERTS, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return cert, key


def setup():
    if not shutil.which("openssl"):
        skip("openssl is not installed (make bootstrap installs it)")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        skip("hiding the workers' Unix sockets needs root and unshare(1)")
    for b in ("prism-worker", "task_probe", "actor_probe"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            skip(b + " is not built")
    openssl_cert("cluster")
    openssl_cert("stranger")
    # Everyone trusts the cluster's CA; SSL_CERT_FILE: this test's own HTTPS client.
    os.environ.update(PRISM_TLS_CA=os.path.join(CERTS, "cluster.pem"),
                      SSL_CERT_FILE=os.path.join(CERTS, "cluster.pem"))


def hidden_sockets(cluster_dir, argv):
    """argv run where the nodes' directories are empty: no worker socket."""
    nodes = os.path.join(cluster_dir, "nodes")
    os.makedirs(nodes, exist_ok=True)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs none "$0" && exec "$@"', nodes] + list(argv)


class Cluster(harness.Cluster):
    """Only the node agents (and so their workers) have the certificate: the
    GCS serves plain HTTP, so that a driver with a wrong CA still reaches it
    and fails at the worker. The GCS cannot see the worker sockets: it
    creates actors over TLS."""

    def __init__(self, gcs_ca=True, **kw):
        self.gcs_ca = gcs_ca
        super().__init__(**kw)

    def _spawn(self, name, argv, env=None):
        if name == "gcs":
            argv = hidden_sockets(self.dir, argv)
            if not self.gcs_ca:
                env = dict(env or os.environ)
                env.pop("PRISM_TLS_CA")
        if name.startswith("node-"):
            env = dict(env or os.environ, PRISM_TLS_CERT=os.path.join(CERTS, "cluster.pem"),
                       PRISM_TLS_KEY=os.path.join(CERTS, "cluster.key"))
        return super()._spawn(name, argv, env)


def probe(c, prog, *args, ca="default", timeout=120):
    env = dict(os.environ, PRISM_ADDRESS=c.url, PRISM_TOKEN=c.token)
    for k in ("PRISM_HOME", "PRISM_STORE_SOCKET", "PRISM_TLS_CERT", "PRISM_TLS_KEY"):
        env.pop(k, None)
    if ca is None:
        env.pop("PRISM_TLS_CA")
    elif ca != "default":
        env["PRISM_TLS_CA"] = ca
    argv = hidden_sockets(c.dir, [os.path.join(BIN, prog)] + [str(a) for a in args])
    t0 = time.time()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return r, time.time() - t0


def workers(c):
    node = c.get("/api/v1/nodes").json()["nodes"][0]
    return c.get("/api/v1/workers", base=node["address"]).json()["workers"]


def tls_port(c):
    tcp = wait_until(lambda: [w["tcp"] for w in workers(c) if w.get("tcp")], what="a worker")[0]
    assert tcp.startswith("tls:127.0.0.1:"), tcp
    return int(tcp.rsplit(":", 1)[1])


def test_tasks_and_actors_over_tls(c):
    tls_port(c)
    r, _ = probe(c, "task_probe", "many", 200)
    assert r.returncode == 0 and "many ok: 200" in r.stdout, (r.stdout, r.stderr)
    r, _ = probe(c, "task_probe", "seed")  # tensors, and arguments that are references
    assert r.returncode == 0 and "seed ok" in r.stdout, (r.stdout, r.stderr)
    r, _ = probe(c, "actor_probe", "counter")
    assert r.returncode == 0 and "errors ok" in r.stdout, (r.stdout, r.stderr)
    # the GCS reached the actors' workers, and everyone did over TLS
    with open(c.gcs.log_path, errors="replace") as f:
        log = f.read()
    assert "creating builtin/Counter" in log and "could not be reached" not in log, log[-3000:]
    # (that it was TLS for the drivers: a wrong CA fails them, below; for the GCS: no CA fails it)


def test_plaintext_peer_gets_nothing(c):
    port = tls_port(c)
    # a plaintext peer waits for a CHALLENGE that never comes in the clear...
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        got = s.recv(100)
    except socket.timeout:
        got = b""
    assert b"\x22\x00\x00\x00\x08" not in got, got
    # ...and what it sends ends the connection at once
    s.settimeout(5)
    s.sendall(struct.pack("<IB", 65, 9) + b"\0" * 64)  # an AUTH frame in the clear
    t0 = time.time()
    try:
        rest = s.recv(100)
        while rest and b"\x15\x03" not in rest:  # a TLS alert is all it may get
            rest = s.recv(100)
    except ConnectionResetError:
        rest = b""
    assert time.time() - t0 < 3, "the worker kept a plaintext peer"
    s.close()
    # a TLS client that trusts the CA gets the CHALLENGE inside TLS
    ctx = ssl.create_default_context(cafile=os.environ["PRISM_TLS_CA"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as t:
            frame = t.recv(100)
            assert len(frame) == 38 and frame[:5] == b"\x22\x00\x00\x00\x08", frame
    # one that does not stops at the handshake
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "stranger.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            assert False, "a certificate the CA did not sign was accepted"
        except ssl.SSLCertVerificationError:
            pass
    # and a handshake that stalls is dropped like any peer that does not prove itself
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
    t0 = time.time()
    try:
        while s.recv(100):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    assert 4 < time.time() - t0 < 9, time.time() - t0
    s.close()


def test_wrong_or_no_ca_fails_clearly(c):
    tls_port(c)
    r, took = probe(c, "task_probe", "many", 1, ca=os.path.join(CERTS, "stranger.pem"))
    assert r.returncode != 0 and "not trusted" in r.stderr, (r.stdout, r.stderr)
    assert took < 30, took
    r, took = probe(c, "task_probe", "many", 1, ca=None)
    assert r.returncode != 0 and "PRISM_TLS_CA is not set" in r.stderr, (r.stdout, r.stderr)
    assert took < 30, took
    # the leases went back: the node's workers are all free again
    wait_until(lambda: all(w["state"] != "leased" for w in workers(c)), what="leases returned")
    r, _ = probe(c, "task_probe", "many", 3)
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_gcs_without_ca_says_why(c):
    """The GCS cannot verify the worker: the actor waits with the reason, and
    the lease it got goes back."""
    nc = nats(c)
    try:
        aid = create(nc)
        a = wait_until(lambda: (lambda a: a if "PRISM_TLS_CA is not set" in a.get("reason", "")
                                else None)(c.get("/api/v1/actors/" + aid).json()),
                       what="the actor's reason")
        assert a["state"] == "PENDING_CREATION", a
        wait_until(lambda: all(w["state"] != "leased" for w in workers(c)), what="leases returned")
    finally:
        nc.close()


test_gcs_without_ca_says_why.cluster = {"gcs_ca": False}


if __name__ == "__main__":
    try:
        setup()
        run([test_tasks_and_actors_over_tls, test_plaintext_peer_gets_nothing,
             test_wrong_or_no_ca_fails_clearly, test_gcs_without_ca_says_why],
            cluster_class=Cluster)
    finally:
        shutil.rmtree(CERTS, ignore_errors=True)
