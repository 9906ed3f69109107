#!/usr/bin/python3
"""Transfers between two prism-objectstore processes: a 200 MiB object moves
intact, concurrent pulls of one object are merged into one transfer, a
transfer whose source dies midway fails cleanly, leaving no partial object,
and a store pulls only from the cluster's stores (it sends them the token)."""
import http.server
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_objectstore import (MiB, Nats, Store, TOKEN, expect, object_id,  # noqa: E402
                              run_tests, wait_for)


def pull(dst, oid, source, out=None, timeout_ms=120000):
    st, _, body = dst.http("POST", "/api/v1/objects/%s/pull" % oid,
                           json.dumps({"source": source, "timeout_ms": timeout_ms}).encode(),
                           {"Content-Type": "application/json"}, timeout=180)
    if out is not None:
        out.append((st, body))
    return st, body


def test_transfer_200mib(tmp):
    a = Store(tmp, "a", memory="256MiB")
    b = Store(tmp, "b", memory="256MiB", extra=("--peers", a.url))
    try:
        oid = object_id(1)
        sha = a.client(["put", oid, 200 * MiB, 42, "pin"])[0].split("sha256=")[1]
        st, body = pull(b, oid, a.url)
        expect(st == 200 and json.loads(body)["size"] == 200 * MiB, body)
        out = b.client(["get", oid])[0]
        expect(out.startswith("OK size=%d sha256=%s" % (200 * MiB, sha)), out)
        expect(out.endswith("metadata=application/x-test"), "metadata travels: " + out)
        # a pull of an object already here answers at once
        st, body = pull(b, oid, a.url)
        expect(st == 200, body)
        # concurrent pulls of one object: one transfer
        oid2 = object_id(2)
        a.client(["put", oid2, 32 * MiB, 7])
        before = json.loads(b.http("GET", "/api/v1/stats")[2])["transfer_in_bytes_total"]
        results = []
        threads = [threading.Thread(target=pull, args=(b, oid2, a.url, results)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expect(len(results) == 4 and all(r[0] == 200 for r in results), results)
        after = json.loads(b.http("GET", "/api/v1/stats")[2])["transfer_in_bytes_total"]
        expect(after - before == 32 * MiB, "merged into one transfer: %d bytes" % (after - before))
        # an object the source lacks
        st, body = pull(b, object_id(3), a.url)
        expect(st == 404, body)
    finally:
        a.stop()
        b.stop()


class AnnouncingSource(http.server.BaseHTTPRequestHandler):
    """A source store's /info: an object of SIZE bytes, sealed. The body's
    GET is the subclass's `send_body`."""
    protocol_version = "HTTP/1.1"
    SIZE = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        if not path.endswith("/info"):
            self.send_response(200)
            self.send_header("Content-Length", str(self.SIZE))
            self.end_headers()
            self.send_body()
            return
        body = json.dumps({"object_id": path.split("/")[4], "size": self.SIZE, "state": "sealed",
                           "metadata_hex": ""}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class DyingSource(AnnouncingSource):
    """Announces a 200 MiB object, sends 50 MiB of it and dies."""
    SIZE = 200 * MiB

    def send_body(self):
        chunk = b"\xab" * MiB
        for _ in range(50):
            self.wfile.write(chunk)
        self.wfile.flush()
        self.connection.shutdown(2)
        self.close_connection = True


def test_source_dies_midway(tmp):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DyingSource)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    oid = object_id(5)
    a = Store(tmp, "a", memory="16MiB")
    a.client(["put", oid, MiB, 1])
    url = a.url
    source = "http://127.0.0.1:%d" % srv.server_address[1]
    b = Store(tmp, "b", memory="256MiB", extra=("--peers", source + "," + url))
    try:
        st, body = pull(b, oid, source)
        expect(st == 502 and b"transfer_failed" in body, "%d %s" % (st, body))
        expect(b.client(["contains", oid])[0] == "OK absent", "no partial object")
        expect(b.stats()["used"] == 0, "its space is reclaimed")
        # a real source killed before the pull
        a.stop()
        st, body = pull(b, oid, url)
        expect(st == 502, body)
        expect(b.client(["contains", oid])[0] == "OK absent", "no partial object")
    finally:
        b.stop()
        srv.shutdown()
        srv.server_close()


class StallingSource(AnnouncingSource):
    """Announces a 4 MiB object, sends 64 KiB of it and then nothing until
    `release` is set (a frozen node: no close, no reset)."""
    SIZE = 4 * MiB
    release = threading.Event()

    def send_body(self):
        self.wfile.write(b"\xcd" * 65536)
        self.wfile.flush()
        StallingSource.release.wait(60)
        self.close_connection = True


def test_stalled_source_and_timeouts(tmp):
    """A pull's timeout_ms bounds it: 0 and one past a day are refused (an
    int of milliseconds past 2^31 used to leave the transfer without any);
    a request that joins a pull under way of a source that stalls gives up
    after its own timeout_ms (504 timeout), and the pull after its own
    (502), leaving no partial object."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingSource)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    source = "http://127.0.0.1:%d" % srv.server_address[1]
    b = Store(tmp, "b", memory="64MiB", extra=("--peers", source))
    oid = object_id(9)
    try:
        for bad in (0, 3e9, 2 ** 32):
            st, body = pull(b, oid, source, timeout_ms=bad)
            expect(st == 400 and b"timeout_ms" in body, "%s: %d %s" % (bad, st, body))
        first = []
        t = threading.Thread(target=pull, args=(b, oid, source, first, 4000))
        t.start()
        wait_for(lambda: b.stats()["used"] > 0, what="the first pull under way")
        st, body = pull(b, oid, source, timeout_ms=500)
        expect(st == 504 and json.loads(body)["error"]["code"] == "timeout", "%d %s" % (st, body))
        expect(t.is_alive(), "the joiner gave up before the pull it joined")
        t.join(30)
        expect(first and first[0][0] == 502, first)
        expect(b.client(["contains", oid])[0] == "OK absent", "no partial object")
    finally:
        StallingSource.release.set()
        b.stop()
        srv.shutdown()
        srv.server_close()


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 404 to everything and keeps the Authorization headers it saw."""
    seen = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Recorder.seen.append(self.headers.get("Authorization"))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_unknown_source_gets_no_token(tmp):
    """A pull naming a URL that is no store of the cluster is refused before
    anything is sent there: the token never leaves for a stranger."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    b = Store(tmp, "b", memory="16MiB")
    try:
        st, body = pull(b, object_id(7), "http://127.0.0.1:%d" % srv.server_address[1])
        expect(st == 403 and b"unknown_source" in body, "%d %s" % (st, body))
        expect(Recorder.seen == [], "the stranger was sent %s" % Recorder.seen)
    finally:
        b.stop()
        srv.shutdown()
        srv.server_close()


def stat(store, name):
    return json.loads(store.http("GET", "/api/v1/stats")[2])[name]


def hold_upload(store, oid):
    """A pull of `oid` from `store` that reads nothing past the headers: it
    holds one of the store's upload slots for the object until closed."""
    host, port = store.url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(("GET /api/v1/objects/%s?pull=1 HTTP/1.1\r\nHost: x\r\n"
                  "Authorization: Bearer %s\r\n\r\n" % (oid, TOKEN)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    expect(head.startswith(b"HTTP/1.1 200"), head)
    return sock


def test_pulls_spread_from_copies(tmp):
    """A large object read on several nodes is copied from the copies made
    before, not every time from its first store; a store already serving its
    share of pulls of one object turns the next ones away, and they go to
    another copy or wait for one."""
    nats = Nats(tmp)
    stores = []
    try:
        for name in ("a", "b", "c", "d", "e", "f"):
            # each store may pull from those started before it
            peers = ",".join(s.url for s in stores)
            extra = ("--max-uploads-per-object", "1") + (("--peers", peers) if peers else ())
            stores.append(Store(tmp, name, memory="128MiB", nats=nats, extra=extra))
        a, b, c, d, e, f = stores
        time.sleep(0.5)  # the stores' bus connections come up in the background
        oid = object_id(11)
        sha = a.client(["put", oid, 16 * MiB, 5, "pin"])[0].split("sha256=")[1]
        expect(pull(b, oid, a.url)[0] == 200, "b pulls from a")
        expect(stat(a, "transfer_out_bytes_total") == 16 * MiB, "a served b")
        time.sleep(0.5)  # b's copy is announced
        st, body = pull(c, oid, a.url)
        expect(st == 200, body)
        expect(stat(a, "transfer_out_bytes_total") == 16 * MiB, "c was not served by a")
        expect(stat(b, "transfer_out_bytes_total") == 16 * MiB, "c was served by b's copy")
        out = c.client(["get", oid])[0]
        expect(out.startswith("OK size=%d sha256=%s" % (16 * MiB, sha)), out)

        # A store serving its share of pulls of an object (one here) turns
        # the next puller away (busy); plain readers are not counted.
        oid2 = object_id(12)
        a.client(["put", oid2, 32 * MiB, 6, "pin"])
        held = hold_upload(a, oid2)
        try:
            st, _, body = a.http("GET", "/api/v1/objects/%s/info?pull=1" % oid2)
            expect(st == 503 and json.loads(body)["error"]["code"] == "busy", body)
            st, _, _ = a.http("GET", "/api/v1/objects/%s/info" % oid2)
            expect(st == 200, "a reader that is no pull is served: %d" % st)
            # a pull finding every holder busy waits, and ends once one frees
            results = []
            t = threading.Thread(target=pull, args=(d, oid2, a.url, results))
            t.start()
            time.sleep(1.0)
            expect(results == [], "the pull waited: %s" % results)
        finally:
            held.close()
        t.join()
        expect(results and results[0][0] == 200, results)
        # a busy copy is passed over for the next holder: d's copy busy, a free
        time.sleep(0.5)  # d's copy is announced
        held = hold_upload(d, oid2)
        try:
            before = stat(a, "transfer_out_bytes_total")
            st, body = pull(e, oid2, a.url)
            expect(st == 200, body)
            expect(stat(a, "transfer_out_bytes_total") - before == 32 * MiB, "a served e")
        finally:
            held.close()
    finally:
        for s in stores:
            s.stop()
        nats.stop()


def test_small_copy_dropped_with_primary(tmp):
    """Objects are announced only once another store pulled them; the
    deletion of a small one that another store pulled still reaches it, and
    its copy goes."""
    nats = Nats(tmp)
    a = Store(tmp, "a", memory="32MiB", nats=nats)
    b = Store(tmp, "b", memory="32MiB", nats=nats, extra=("--peers", a.url))
    try:
        time.sleep(0.5)  # the stores' bus connections come up in the background
        oid = object_id(21)
        a.client(["put", oid, 1024, 9, "pin"])
        expect(pull(b, oid, a.url)[0] == 200, "b pulls the small object from a")
        expect(b.http("GET", "/api/v1/objects/%s/info" % oid)[0] == 200, "b holds a copy")
        expect(a.http("DELETE", "/api/v1/objects/" + oid)[0] == 200, "a deletes the primary")
        deadline = time.time() + 10
        while b.http("GET", "/api/v1/objects/%s/info" % oid)[0] != 404:
            expect(time.time() < deadline, "b's copy outlived the primary")
            time.sleep(0.05)
    finally:
        a.stop()
        b.stop()
        nats.stop()


if __name__ == "__main__":
    sys.exit(run_tests([test_transfer_200mib, test_source_dies_midway,
                        test_unknown_source_gets_no_token, test_pulls_spread_from_copies,
                        test_small_copy_dropped_with_primary, test_stalled_source_and_timeouts]))
