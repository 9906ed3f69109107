"""What every service's HTTP server owes an unauthenticated client on the same
host: slow or malformed requests neither starve authenticated clients nor get
anything but the JSON error envelope; HEAD works where GET does; path bytes
that are not UTF-8, or NUL, are refused."""
import json
import os
import resource
import select
import socket
import time

from harness import run, wait_until

HELD = 1200  # above the old limit of 1000 connections
STRANGERS = 1100  # above half the server's 2,048 connections


def raw(port, data, timeout=10):
    """Sends raw bytes (the server may stop reading early); returns all it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except OSError:
            pass
        return out


def expect_json_error(port, data, status, code):
    out = raw(port, data)
    assert out.startswith(b"HTTP/1.1 %d " % status), (status, out[:300])
    assert out.count(b"HTTP/1.1 ") == 1, out[:600]  # one response, one status line
    head, _, body = out.partition(b"\r\n\r\n")
    headers = dict(l.split(b": ", 1) for l in head.split(b"\r\n")[1:])
    assert headers[b"Content-Type"] == b"application/json", head
    assert int(headers[b"Content-Length"]) == len(body), out[:600]
    err = json.loads(body)["error"]
    assert err["code"] == code and err["message"], err


def malformed_requests(token):
    auth = b"Authorization: Bearer " + token.encode() + b"\r\n"
    return [
        (b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: abc\r\n\r\n",
         400, "bad_request"),
        (b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth +
         b"Content-Length: 99999999999999999999999\r\n\r\n", 413, "body_too_large"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400, "bad_request"),
        (b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth +
         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 << 10) + b"\r\n\r\n",
         431, "headers_too_large"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (300 << 10) + b"\r\n\r\n",
         431, "headers_too_large"),
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    ]


def test_parser_errors_are_json(c):
    for port in (c.gcs_port, int(c.scheduler_url.rsplit(":", 1)[1])):
        for data, status, code in malformed_requests(c.token):
            if b"chunked" in data and port != c.gcs_port:
                continue  # the scheduler has no route that reads a body (405 first)
            expect_json_error(port, data, status, code)
    assert c.get("/healthz", token=None).status == 200
    assert c.get("/healthz", token=None, base=c.scheduler_url).status == 200


test_parser_errors_are_json.cluster = {"scheduler": True}


def test_head_is_get_without_body(c):
    get = c.get("/healthz", token=None)
    r = c.request("HEAD", "/healthz", token=None)
    assert r.status == 200 and r.body == b"", r
    assert r.headers["Content-Length"] == str(len(get.body)), r.headers
    assert c.request("HEAD", "/api/v1/cluster", token=None).status == 401
    r = c.request("HEAD", "/api/v1/cluster")
    assert r.status == 200 and r.body == b"" and r.headers["Content-Type"] == "application/json", r
    r = c.request("HEAD", "/api/v1/jobs/nope")
    assert r.status == 404 and r.body == b"", r
    r = c.request("PUT", "/api/v1/cluster")
    assert r.status == 405 and "HEAD" in r.headers["Allow"], r.headers


def test_path_ids_not_utf8_are_400(c):
    for path in ("/api/v1/jobs/%ff", "/api/v1/jobs/%ff/logs", "/api/v1/actors/%c0%af",
                 "/api/v1/nodes/%ff%fe", "/api/v1/objects/%ed%a0%80", "/api/v1/kv/ns/%ff",
                 "/api/v1/packages/%ff", "/api/jobs/%ff", "/api/v1/jobs/a%00b"):
        for method in ("GET", "DELETE"):
            r = c.request(method, path)
            assert r.status == 400, (method, path, r)
            assert r.json()["error"]["code"] == "invalid_argument", r


def test_kv_refuses_keys_not_utf8_or_with_nul(c):
    assert c.request("PUT", "/api/v1/kv/ns/a", raw=b"one").status == 200
    for key in ("a%00b", "a%00", "%ff", "x%c3"):
        r = c.request("PUT", "/api/v1/kv/ns/" + key, raw=b"two")
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (key, r)
    assert c.get("/api/v1/kv/ns/a").body == b"one"
    assert c.get("/api/v1/kv/ns").json()["keys"] == ["a"]


def closed(s):
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def gcs_sockets(c):
    """How many sockets the GCS has open."""
    fds, n = "/proc/%d/fd" % c.gcs.p.pid, 0
    for f in os.listdir(fds):
        try:
            n += os.readlink(os.path.join(fds, f)).startswith("socket:")
        except OSError:
            pass  # closed meanwhile
    return n


def test_slowloris_does_not_starve_clients(c):
    base = gcs_sockets(c)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < HELD + 200:
        soft = hard if hard != resource.RLIM_INFINITY and hard < HELD + 200 else HELD + 200
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    n = min(HELD, soft - 100)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", c.gcs_port), timeout=5)
            s.setblocking(False)
            try:
                s.send(b"GET /api/v1/cluster HTTP/1.1\r\n")  # the headers never end
            except OSError:
                pass
            socks.append(s)

        def trickle():
            for s in socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass

        # Authenticated requests are served while they are held (not once
        # the slow ones were dropped: hundreds are still there after).
        for _ in range(3):
            trickle()
            r = c.get("/api/v1/cluster", timeout=20)
            assert r.status == 200, r
            assert gcs_sockets(c) - base >= 256, "served only once the slow ones went"
        # Trickling does not keep a connection: headers are due within seconds.
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)

        def all_closed():
            trickle()
            poller.poll(500)
            return all(closed(s) for s in socks)
        wait_until(all_closed, timeout=20, interval=0.2,
                   what="the server to drop %d slow connections" % n)
    finally:
        for s in socks:
            s.close()
    assert c.get("/api/v1/cluster").status == 200


def test_strangers_get_no_body_and_a_deadline(c):
    """A request without the token may reach a public route (the
    dashboard's files, the API reference) but carries no body, and has 30 s
    from its headers to its response's end: a stranger who never reads
    /api/docs (2.6 MB) is cut off then, and many such are pushed out by
    clients with the token, who are served at once."""
    expect_json_error(c.gcs_port, b"GET /api/docs HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 5\r\n\r\nhello", 401, "unauthorized")
    expect_json_error(c.gcs_port, b"GET /dashboard/app.js HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                      401, "unauthorized")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < STRANGERS + 200:
        soft = hard if hard != resource.RLIM_INFINITY and hard < STRANGERS + 200 else \
            STRANGERS + 200
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    n = min(STRANGERS, soft - 100)

    base = gcs_sockets(c)

    def held():
        return gcs_sockets(c) - base

    socks = []
    t0 = time.time()
    try:
        for _ in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the page stays unsent
            s.settimeout(5)
            s.connect(("127.0.0.1", c.gcs_port))
            s.sendall(b"GET /api/docs HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        for _ in range(3):  # served while they are held
            assert c.get("/api/v1/cluster", timeout=20).status == 200
        # the oldest beyond half the server's connections went at once
        at_once = held()
        assert 0 < at_once <= 1024 + 8, "the GCS holds %d of %d" % (at_once, n)
        wait_until(lambda: held() <= 8, timeout=60, interval=0.5,
                   what="the GCS to cut off %d strangers" % n)
        assert time.time() - t0 > 25, "cut off before their 30 s"
        print("%d strangers: %d held at once, all cut off after %.0f s" %
              (n, at_once, time.time() - t0))
    finally:
        for s in socks:
            s.close()
    assert c.get("/api/v1/cluster").status == 200


if __name__ == "__main__":
    run([test_parser_errors_are_json, test_head_is_get_without_body, test_path_ids_not_utf8_are_400,
         test_kv_refuses_keys_not_utf8_or_with_nul, test_slowloris_does_not_starve_clients,
         test_strangers_get_no_body_and_a_deadline],
        nodes=0, scheduler=False)
