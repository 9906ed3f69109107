"""Ray's job clients against the GCS: the logs tail WebSocket
(GET /api/jobs/{id}/logs/tail) that `ray job submit` and `ray job logs
--follow` (JobSubmissionClient.tail_job_logs) read a job's log from, and the
package routes through which `ray job submit --working-dir DIR` uploads DIR
as a zip (JobSubmissionClient._upload_package_if_needed).

The client is python3-websockets (Debian's), used as Ray's SDK uses
aiohttp: the bearer token in the handshake's headers, text messages until
the server's close frame, and a close code of 1006 (no close frame) taken
as a failure."""
import asyncio
import hashlib
import http.client
import io
import json
import os
import re
import socket
import ssl
import stat
import struct
import tempfile
import time
import zipfile

from harness import run, skip, wait_until

try:
    import websockets
    import websockets.exceptions
except ImportError:
    skip("python3-websockets is not installed (make bootstrap installs it)")

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def ws_url(c, job_id):
    return c.url.replace("http", "ws", 1) + "/api/jobs/%s/logs/tail" % job_id


def ssl_context(c):
    return ssl.create_default_context() if c.url.startswith("https") else None


def tail(c, job_id, token="default", stop_after=None, on_message=None):
    """Follows a job's log as Ray's tail_job_logs does. Returns (messages,
    close code, seconds until the first message). `stop_after`: close from
    this side after that many messages."""
    token = c.token if token == "default" else token
    headers = {"Authorization": "Bearer " + token} if token else {}

    async def go():
        msgs, first = [], None
        t0 = time.time()
        async with websockets.connect(ws_url(c, job_id), extra_headers=headers,
                                      ssl=ssl_context(c), open_timeout=10, close_timeout=10,
                                      max_size=None) as ws:
            while True:
                try:
                    m = await asyncio.wait_for(ws.recv(), timeout=60)
                except websockets.exceptions.ConnectionClosed:
                    break
                assert isinstance(m, str), "a binary message: %r" % m[:100]
                if first is None:
                    first = time.time() - t0
                msgs.append(m)
                if on_message:
                    on_message(m)
                if stop_after is not None and len(msgs) >= stop_after:
                    await ws.close()
                    break
            await ws.wait_closed()
            return msgs, ws.close_code, first
    return asyncio.run(go())


def handshake(c, job_id, headers, method="GET"):
    """A request to the tail route with exactly `headers` (plus Host)."""
    port = int(c.url.rsplit(":", 1)[1])
    if c.url.startswith("https"):
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ssl_context(c))
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, "/api/jobs/%s/logs/tail" % job_id, headers=headers)
    r = conn.getresponse()
    body = r.read() if r.status != 101 else b""
    conn.close()
    return r.status, dict(r.getheaders()), body


def ws_headers(c, **over):
    h = {"Authorization": "Bearer " + c.token, "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": KEY}
    for k, v in over.items():
        k = k.replace("_", "-")
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    return h


def ray_submit(c, entrypoint, submission_id=None):
    body = {"entrypoint": entrypoint}
    if submission_id:
        body["submission_id"] = submission_id
    r = c.post("/api/jobs/", body)
    assert r.status == 200, r
    return r.json()["submission_id"]


def test_tail_follows_a_running_job(c):
    jid = ray_submit(c, "for i in $(seq 1 12); do echo line-$i; sleep 0.25; done", "raysubmit_tail")
    t0 = time.time()
    msgs, code, first = tail(c, jid)
    took = time.time() - t0
    text = "".join(msgs)
    assert text.splitlines() == ["line-%d" % i for i in range(1, 13)], text
    assert code == 1000, code
    # Followed as it ran: the first line came long before the job's 3 s were up.
    assert first is not None and first < 2.0, first
    assert took >= 2.0, took
    assert len(msgs) > 1, msgs
    # The close came once the job had ended.
    assert c.get("/api/jobs/" + jid).json()["status"] == "SUCCEEDED"

    # An ended job: its whole log, then the close.
    msgs, code, _ = tail(c, jid)
    assert "".join(msgs) == text and code == 1000, (msgs, code)
    # A job that printed nothing: no message, a close.
    quiet = ray_submit(c, "true")
    c.wait_job(quiet)
    assert tail(c, quiet)[:2] == ([], 1000)


def test_tail_text_is_utf8(c):
    jid = c.submit(r"printf 'caf\303\251 \342\230\203\nbad \377 byte\n'")
    c.wait_job(jid)
    msgs, code, _ = tail(c, jid)
    assert "".join(msgs) == "caf\u00e9 \u2603\nbad ? byte\n" and code == 1000, (msgs, code)


def test_tail_refusals(c):
    jid = c.submit("echo hi")
    c.wait_job(jid)
    # No token (or a wrong one): 401 before any upgrade.
    for token in (None, "wrong"):
        try:
            tail(c, jid, token=token)
            raise AssertionError("upgraded without the token")
        except websockets.exceptions.InvalidStatusCode as e:
            assert e.status_code == 401, e
    status, headers, body = handshake(c, jid, ws_headers(c, Authorization=None))
    assert status == 401 and b'"unauthorized"' in body, (status, body)
    # An unknown job: 404, as Ray answers.
    try:
        tail(c, "no-such-job")
        raise AssertionError("upgraded for an unknown job")
    except websockets.exceptions.InvalidStatusCode as e:
        assert e.status_code == 404, e
    # Bad handshakes: the JSON error envelope.
    for over, want, code in [
            ({"Upgrade": None, "Connection": None, "Sec-WebSocket-Key": None}, 426,
             "upgrade_required"),
            ({"Sec-WebSocket-Version": "8"}, 426, "upgrade_required"),
            ({"Connection": "keep-alive"}, 400, "bad_handshake"),
            ({"Sec-WebSocket-Key": "not base64!"}, 400, "bad_handshake"),
            ({"Sec-WebSocket-Key": None}, 400, "bad_handshake")]:
        status, headers, body = handshake(c, jid, ws_headers(c, **over))
        assert status == want, (over, status, body)
        assert headers.get("Content-Type", "").startswith("application/json"), headers
        assert json.loads(body)["error"]["code"] == code, (over, body)
    # And a good one by hand: the accept key of RFC 6455's example.
    status, headers, _ = handshake(c, jid, ws_headers(c))
    assert status == 101 and headers.get("Sec-WebSocket-Accept") == ACCEPT, (status, headers)


def raw_upgrade(c, jid):
    """A WebSocket opened on a bare socket (plain HTTP only), its 101 read."""
    port = int(c.url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = "GET /api/jobs/%s/logs/tail HTTP/1.1\r\nHost: t\r\n" % jid + "".join(
        "%s: %s\r\n" % kv for kv in ws_headers(c).items()) + "\r\n"
    s.sendall(req.encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 101"), got
    return s


def test_clients_that_leave(c):
    jid = c.submit("i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.1; done")
    c.wait_job(jid, states=("RUNNING",))
    # One closes properly after a few messages, one vanishes without a word.
    msgs, code, _ = tail(c, jid, stop_after=3)
    assert len(msgs) == 3 and code == 1000, (msgs, code)
    s = raw_upgrade(c, jid)
    assert s.recv(100)  # the first frame came
    s.close()
    # The GCS is fine: it answers, and follows the job for a new client.
    assert c.get("/healthz", token=None).status == 200
    assert tail(c, jid, stop_after=2)[0]

    # A client still following when the GCS is told to stop: a close frame
    # of 1001 (going away), and the GCS exits cleanly and quickly.
    async def follow_until_closed():
        async with websockets.connect(ws_url(c, jid), ssl=ssl_context(c),
                                      extra_headers={"Authorization": "Bearer " + c.token}) as ws:
            await ws.recv()
            c.gcs.p.send_signal(15)
            t0 = time.time()
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=20)
            except websockets.exceptions.ConnectionClosed:
                pass
            return ws.close_code, time.time() - t0
    code, took = asyncio.run(follow_until_closed())
    assert code == 1001 and took < 5, (code, took)
    rc = c.gcs.p.wait(timeout=10)
    assert rc == 0, "the GCS exited %s:\n%s" % (rc, c.gcs.tail())
    c.start_gcs()
    c.post("/api/v1/jobs/%s/stop" % jid)
    c.wait_job(jid)


def test_tail_after_the_node_died(c):
    jid = ray_submit(c, "seq 1 50")
    c.wait_job(jid)
    wait_until(lambda: os.path.exists(os.path.join(c.dir, "gcs", "logs", jid)),
               what="the GCS's copy of the log")
    node_id = c.job(jid)["node_id"]
    c.nodes["node-1"].kill()
    want = "".join("%d\n" % i for i in range(1, 51))
    msgs, code, _ = tail(c, jid)  # the node does not answer
    assert "".join(msgs) == want and code == 1000, (msgs, code)
    wait_until(lambda: c.get("/api/v1/nodes/" + node_id).json()["state"] == "DEAD",
               what="the node declared dead")
    msgs, code, _ = tail(c, jid)
    assert "".join(msgs) == want and code == 1000, (msgs, code)


# ---------------------------------------------------------------- working_dir zips

def ray_zip(directory):
    """DIR zipped as Ray's create_package does (zipfile, deflated, a directory
    entry for each directory, names relative to DIR), and the name Ray gives
    it: _ray_pkg_ and a hash of the files (Ray's own hash differs; any is fine)."""
    buf, h = io.BytesIO(), hashlib.sha1()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in sorted(os.walk(directory)):
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, directory)
                z.write(path, rel)
                if os.path.isfile(path):
                    h.update(rel.encode() + open(path, "rb").read())
    return buf.getvalue(), "_ray_pkg_%s.zip" % h.hexdigest()[:32]


def ray_version_ok(c):
    """JobSubmissionClient's constructor: GET /api/version, and ray_version
    parsed as a Python version must be at least 1.9."""
    r = c.get("/api/version")
    assert r.status == 200, r
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)(\+[a-z0-9.]+)?$", r.json()["ray_version"])
    assert m and (int(m.group(1)), int(m.group(2))) >= (1, 9), r.json()


def ray_submit_with_working_dir(c, directory, entrypoint, submission_id):
    """The requests `ray job submit --working-dir DIR -- ENTRYPOINT` sends, in
    order: the version check, GET the package (200: stored, 404: not), PUT it
    when missing, POST /api/jobs/ naming gcs://NAME. Returns the job's ID and
    whether the package was uploaded."""
    ray_version_ok(c)
    data, name = ray_zip(directory)
    path = "/api/packages/gcs/" + name
    r = c.get(path)
    assert r.status in (200, 404), r
    uploaded = r.status == 404
    if uploaded:
        r = c.request("PUT", path, raw=data)
        assert r.status == 200, r  # Ray's client takes nothing else
        assert r.json()["uri"] == "gcs://" + name, r
        assert r.json()["sha256"] == hashlib.sha256(data).hexdigest(), r
    body = {"entrypoint": entrypoint, "submission_id": submission_id,
            "runtime_env": {"working_dir": "gcs://" + name}, "metadata": {}}
    r = c.post("/api/jobs/", body)
    assert r.status == 200, r
    return r.json()["submission_id"], uploaded


def test_working_dir_zip(c):
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "data", "deeper"))
        with open(os.path.join(d, "data", "greeting.txt"), "w") as f:
            f.write("hello from the zip\n")
        with open(os.path.join(d, "data", "deeper", "n.txt"), "w") as f:
            f.write("42\n")
        with open(os.path.join(d, "tool.sh"), "w") as f:
            f.write("#!/bin/sh\necho tool ran in $(basename $(pwd))\n")
        os.chmod(os.path.join(d, "tool.sh"), 0o755)
        entry = "cat data/greeting.txt data/deeper/n.txt && ./tool.sh && echo $GREETING"
        jid, uploaded = ray_submit_with_working_dir(c, d, entry, "raysubmit_zip1")
        assert uploaded
        job = c.wait_job(jid)
        assert job["state"] == "SUCCEEDED", (job, c.logs(jid))
        logs = c.get("/api/jobs/%s/logs" % jid).json()["logs"]
        assert logs.startswith("hello from the zip\n42\ntool ran in "), logs
        details = c.get("/api/jobs/" + jid).json()
        assert re.match("^[0-9a-f]{64}$", details["runtime_env"]["working_dir"]), details

        # The same directory again: the package is found, nothing is uploaded.
        jid2, uploaded = ray_submit_with_working_dir(c, d, "cat data/greeting.txt",
                                                     "raysubmit_zip2")
        assert not uploaded
        assert c.wait_job(jid2)["state"] == "SUCCEEDED"

        # Prism's own API takes a zip too: POST /api/v1/packages, then its sha256.
        data, _ = ray_zip(d)
        r = c.request("POST", "/api/v1/packages", raw=data)
        assert r.status in (200, 201), r
        jid3 = c.submit("cat data/deeper/n.txt", working_dir=r.json()["sha256"])
        assert c.wait_job(jid3)["state"] == "SUCCEEDED" and c.logs(jid3) == "42\n"

    # A URI never uploaded, and other URIs.
    r = c.post("/api/jobs/", {"entrypoint": "true",
                              "runtime_env": {"working_dir": "gcs://_ray_pkg_missing.zip"}})
    assert r.status == 404 and r.json()["error"]["code"] == "not_found", r
    assert "_ray_pkg_missing.zip" in r.json()["error"]["message"], r
    for uri in ("s3://bucket/pkg.zip", "https://example.com/pkg.zip"):
        r = c.post("/api/jobs/", {"entrypoint": "true", "runtime_env": {"working_dir": uri}})
        assert r.status == 400 and r.json()["error"]["code"] == "unsupported", r
    r = c.post("/api/jobs/", {"entrypoint": "true", "runtime_env": {"pip": ["requests"]}})
    assert r.status == 400 and r.json()["error"]["code"] == "unsupported", r


def zip_with(entries):
    """A zip of (ZipInfo or name, data) pairs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok.txt", "fine")
        for info, data in entries:
            z.writestr(info, data)
    return buf.getvalue()


def entry(name, mode):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode is in the high bits of external_attr
    info.external_attr = mode << 16
    return info


def put_refused(c, name, data, code, words):
    r = c.request("PUT", "/api/packages/gcs/" + name, raw=data)
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == code and words in err["message"], (words, r)
    assert c.get("/api/packages/gcs/" + name).status == 404  # nothing stored


def test_working_dir_zip_refusals(c):
    # The same check guards Prism's own package upload.
    r = c.request("POST", "/api/v1/packages", raw=zip_with([("../evil.sh", "x")]))
    assert r.status == 400 and r.json()["error"]["code"] == "unsafe_package", r
    put_refused(c, "_ray_pkg_slip.zip", zip_with([("../evil.sh", "echo escaped")]),
                "unsafe_package", "outside the package directory")
    put_refused(c, "_ray_pkg_slip2.zip", zip_with([("a/../../evil.sh", "x")]),
                "unsafe_package", "outside the package directory")
    put_refused(c, "_ray_pkg_abs.zip", zip_with([("/tmp/evil.sh", "x")]),
                "unsafe_package", "outside the package directory")
    put_refused(c, "_ray_pkg_link.zip",
                zip_with([(entry("link", stat.S_IFLNK | 0o777), "/etc/passwd")]),
                "unsafe_package", "is a link")
    # (A FIFO's mode bits are no refusal: libarchive reads every zip entry
    # that is not a directory or a link as a regular file.)
    # A zip bomb: sizes that claim 3 GiB once extracted (over the 2 GiB limit).
    bomb = bytearray(zip_with([("big.bin", "x" * 100)]))
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        for m in re.finditer(re.escape(sig), bomb):
            struct.pack_into("<I", bomb, m.start() + at, 3 << 30)
    put_refused(c, "_ray_pkg_bomb.zip", bytes(bomb), "unsafe_package", "more than 2147483648 bytes")
    put_refused(c, "_ray_pkg_text.zip", b"not a zip at all", "invalid_argument", "zip archive")
    for path in ("/api/packages/s3/_ray_pkg_x.zip", "/api/packages/gcs/bad%20name.zip",
                 "/api/packages/gcs/_ray_pkg_x.tar"):
        for method in ("GET", "PUT"):
            r = c.request(method, path, raw=zip_with([]) if method == "PUT" else None)
            assert r.status == 400 and r.json()["error"]["code"] == "invalid_argument", (path, r)
    # Over --max-package-size: 413 before anything is read.
    big = zip_with([("big.bin", os.urandom(96 * 1024))])
    r = c.request("PUT", "/api/packages/gcs/_ray_pkg_big.zip", raw=big)
    assert r.status == 413 and r.json()["error"]["code"] == "body_too_large", r
    # Nothing was written next to any node's package directory.
    for root, dirs, files in os.walk(c.dir):
        assert "evil.sh" not in files, root
test_working_dir_zip_refusals.cluster = {"gcs_args": ["--max-package-size", "64KiB"]}


if __name__ == "__main__":
    run([test_tail_follows_a_running_job, test_tail_text_is_utf8, test_tail_refusals,
         test_clients_that_leave, test_tail_after_the_node_died, test_working_dir_zip,
         test_working_dir_zip_refusals], nodes=1)
