"""Dataset reads from S3 (docs/datasets.md#s3): a real S3-compatible server
(s3rver, installed under tools/s3rver by the bootstrap) on loopback, a bucket
filled by the test with signed PUTs, and s3:// reads run by the dataservice
(listing) and real workers (GETs)."""
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse

from harness import Cluster, Proc, free_port, run, skip, wait_until
from test_datasets import (dataset, failed_with, gradient, make_image, need_binaries,
                           post, rows)

S3RVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "s3rver",
                      "node_modules", "s3rver", "bin", "s3rver.js")
KEY = SECRET = "S3RVER"  # the one account s3rver knows
REGION = "us-east-1"
BUCKET = "data"


def sign(method, host, path, query, payload, key=KEY, secret=SECRET):
    """The headers of an AWS Signature V4 request (what the client under test sends via
    libcurl; s3rver checks the key id, not the V4 signature)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    digest = hashlib.sha256(payload).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": digest, "x-amz-date": amzdate}
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, path, query,
                           "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers)),
                           names, digest])
    scope = "%s/%s/s3/aws4_request" % (day, REGION)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                                "Signature=%s" % (key, scope, names, signature))
    return headers


class S3Cluster(Cluster):
    """A cluster whose services and workers reach an s3rver of their own through the
    AWS_* environment (the credentials `s3_env` overrides)."""

    def __init__(self, s3_env=None, **kw):
        if not shutil.which("node"):
            skip("node is not installed (make bootstrap installs it)")
        if not os.path.exists(S3RVER):
            skip("s3rver is not installed in tools/s3rver (make bootstrap runs npm ci there)")
        self.s3_dir = tempfile.mkdtemp(prefix="prism-s3-")
        self.s3_port = free_port()
        self.s3_host = "127.0.0.1:%d" % self.s3_port
        self.s3_env = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                       "AWS_REGION": REGION, "AWS_ENDPOINT_URL": "http://" + self.s3_host}
        self.s3_env.update(s3_env or {})
        # s3rver's continuation tokens use DES, a legacy cipher to OpenSSL 3
        legacy = subprocess.run(["node", "--openssl-legacy-provider", "-e", "0"],
                                capture_output=True).returncode == 0
        node = ["node"] + (["--openssl-legacy-provider"] if legacy else [])
        argv = node + [S3RVER, "-d", os.path.join(self.s3_dir, "store"), "-a", "127.0.0.1",
                       "-p", str(self.s3_port), "--configure-bucket", BUCKET]
        self.s3 = Proc("s3rver", argv, os.path.join(self.s3_dir, "s3rver.log"))
        try:
            wait_until(self.s3_up, timeout=30, what="s3rver")
            super().__init__(**kw)
        except BaseException:
            self.stop_s3()
            shutil.rmtree(self.s3_dir, ignore_errors=True)
            raise

    def s3_up(self):
        try:
            return self.s3_request("GET", "/" + BUCKET)[0] == 200
        except OSError:
            return False

    def service_env(self):
        env = super().service_env()
        env.update(self.s3_env)
        return env

    def s3_request(self, method, path, body=b"", query=""):
        conn = http.client.HTTPConnection(self.s3_host, timeout=10)
        try:
            conn.request(method, path + ("?" + query if query else ""), body=body or None,
                         headers=sign(method, self.s3_host, path, query, body))
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def put(self, key, data):
        status, body = self.s3_request("PUT", "/%s/%s" % (BUCKET, urllib.parse.quote(key)), data)
        assert status == 200, (key, status, body)

    def stop_s3(self):
        if self.s3.alive():
            self.s3.kill()

    def close(self, check=True):
        try:
            super().close(check)
        finally:
            self.stop_s3()
            shutil.rmtree(self.s3_dir, ignore_errors=True)


def fill(c):
    """Images, JSON lines, CSV and text in the bucket; returns the image paths."""
    tmp = tempfile.mkdtemp(prefix="prism-s3-files-")
    try:
        images = []
        for i in range(12):
            local = os.path.join(tmp, "p%02d.png" % i)
            make_image(local, "png", 6, 4, 3)
            with open(local, "rb") as f:
                c.put("imgs/p%02d.png" % i, f.read())
            images.append("s3://%s/imgs/p%02d.png" % (BUCKET, i))
        c.put("imgs/_SUCCESS", b"")  # left out, as in a local directory
        c.put("imgs2/other.png", open(os.path.join(tmp, "p00.png"), "rb").read())
    finally:
        shutil.rmtree(tmp)
    for k in range(3):
        c.put("rows/part-%d.jsonl" % k,
              "".join(json.dumps({"id": k * 100 + i, "name": "r%d" % (k * 100 + i)}) + "\n"
                      for i in range(100)).encode())
    c.put("table.csv", b"a,b\n1,x\n2,y\n")
    c.put("text/a b&c.txt", b"alpha\nbeta\n")
    return images


def test_read_from_s3(c):
    """An image pipeline, JSON lines, CSV and text read from s3:// paths, every row checked;
    an object larger than one ranged GET; a listing of more than one page (ListObjectsV2's
    continuation tokens)."""
    need_binaries()
    images = fill(c)
    d = post(c, {"ops": [{"op": "read_images", "paths": "s3://%s/imgs" % BUCKET,
                          "include_paths": True, "override_num_blocks": 4},
                         {"op": "map_batches", "fn": {"package": "builtin",
                                                      "function": "center_crop",
                                                      "args": {"size": [2, 2]}}}],
                 "options": {"preserve_order": True}})
    got = rows(c, d["dataset_id"], 100)
    crop = [row[2:4] for row in gradient(6, 4, 3)[1:3]]
    assert [r["path"] for r in got] == images, [r["path"] for r in got]
    assert all(r["image"] == crop for r in got), got[0]

    d = post(c, {"ops": [{"op": "read_jsonl", "paths": "s3://%s/rows/" % BUCKET,
                          "override_num_blocks": 3}]})
    got = sorted(rows(c, d["dataset_id"], 1000), key=lambda r: r["id"])
    assert got == [{"id": i, "name": "r%d" % i} for i in range(300)], got[:3]

    d = post(c, {"ops": [{"op": "read_csv", "paths": "s3://%s/table.csv" % BUCKET}]})
    assert rows(c, d["dataset_id"], 10) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    path = "s3://%s/text/a b&c.txt" % BUCKET  # a key to percent-encode and XML-escape
    d = post(c, {"ops": [{"op": "read_text", "paths": "s3://%s/text" % BUCKET,
                          "include_paths": True}]})
    assert rows(c, d["dataset_id"], 10) == [{"text": "alpha", "path": path},
                                            {"text": "beta", "path": path}]

    # 17 MiB: fetched in 8 MiB ranged GETs, lines cut across the parts' seams
    lines = ["%07d" % i + "x" * (2000 + i % 23) for i in range(17 * 1024 * 1024 // 2012)]
    c.put("big/lines.txt", "".join(line + "\n" for line in lines).encode())
    d = post(c, {"ops": [{"op": "read_text", "paths": "s3://%s/big" % BUCKET},
                         {"op": "repartition", "num_blocks": 8}],  # blocks rows can give
                 "options": {"preserve_order": True}})
    got = [r["text"] for r in rows(c, d["dataset_id"], len(lines) + 1)]
    assert got == lines, (len(got), len(lines))
    with open(os.path.join(c.s3_dir, "s3rver.log"), errors="replace") as f:
        parts = [line.strip() for line in f if "big/lines.txt 206 " in line]
    assert len(parts) == 3, parts  # s3rver's log of each answer: 8, 8 and 1 MiB

    # s3rver answers 1000 keys a page: 1005 objects take two
    for i in range(1005):
        c.put("many/k%04d.txt" % i, b"line %d\n" % i)
    d = post(c, {"ops": [{"op": "read_text", "paths": "s3://%s/many" % BUCKET}]})
    got = sorted(r["text"] for r in rows(c, d["dataset_id"], 2000))
    assert got == sorted("line %d" % i for i in range(1005)), (len(got), got[:3])


def test_write_to_s3(c):
    """write_jsonl and write_csv to s3:// prefixes: one object a block, PUT by the
    dataservice, read back from S3 row for row."""
    need_binaries()
    fill(c)
    items = [{"i": k, "name": "n%d" % k, "x": k / 4} for k in range(50)]
    src = {"op": "from_items", "items": items, "override_num_blocks": 3}
    for op, ext in (("write_jsonl", "jsonl"), ("write_csv", "csv")):
        out = "s3://%s/out/%s/" % (BUCKET, ext)
        d = post(c, {"ops": [src, {"op": op, "path": out}]})
        r = c.get("/api/v1/datasets/%s/count?timeout_ms=60000" % d["dataset_id"], timeout=90)
        assert r.status == 200 and r.json()["count"] == 50, r
        written = dataset(c, d["dataset_id"])["written"]
        assert written["files"] == 3 and written["bytes"] > 0, written
        back = post(c, {"ops": [{"op": "read_" + ext, "paths": out}]})
        got = sorted(rows(c, back["dataset_id"], 100), key=lambda r: r["i"])
        assert got == items, (op, got[:3])
    # the objects' names: the dataset's id and the block's place
    d = post(c, {"ops": [{"op": "read_binary_files", "paths": "s3://%s/out/jsonl" % BUCKET,
                          "include_paths": True}]})
    names = sorted(r["path"].rsplit("/", 1)[1] for r in rows(c, d["dataset_id"], 10))
    assert len(names) == 3 and all(n.endswith(".jsonl") for n in names), names


def test_s3_errors(c):
    """A missing bucket, a missing key and a server that dies mid-read fail the dataset with
    a message naming the bucket or object, after bounded retries; nothing hangs; so does a
    write to a missing bucket."""
    need_binaries()
    fill(c)
    msg = failed_with(c, {"ops": [{"op": "read_jsonl", "paths": "s3://nosuch/rows"}]})
    assert "ops[0] (read_jsonl)" in msg and "s3://nosuch: no such bucket" in msg, msg
    msg = failed_with(c, {"ops": [{"op": "read_text", "paths": "s3://%s/missing.txt" % BUCKET}]})
    assert "s3://%s/missing.txt: no objects" % BUCKET in msg, msg
    msg = failed_with(c, {"ops": [{"op": "read_images", "paths": "s3://%s/rows" % BUCKET}]})
    assert "s3://%s/rows: no objects with those extensions" % BUCKET in msg, msg

    d = post(c, {"ops": [{"op": "read_text", "paths": "s3://%s/text" % BUCKET},
                         {"op": "write_jsonl", "path": "s3://nosuch/out"}]})
    r = c.get("/api/v1/datasets/%s/count?timeout_ms=60000" % d["dataset_id"], timeout=90)
    assert r.status == 409 and "s3://nosuch: no such bucket" in r.json()["error"]["message"], r

    for i in range(200):
        c.put("many/k%04d.txt" % i, b"line %d\n" % i)
    d = post(c, {"ops": [{"op": "read_text", "paths": "s3://%s/many" % BUCKET,
                          "override_num_blocks": 200}]})
    did = d["dataset_id"]
    wait_until(lambda: dataset(c, did)["stages"][0]["tasks_done"] >= 1, timeout=60,
               what="a read task done")
    c.stop_s3()
    t0 = time.time()
    r = c.get("/api/v1/datasets/%s/count?timeout_ms=60000" % did, timeout=90)
    assert r.status == 409 and r.json()["error"]["code"] == "dataset_failed", r
    msg = r.json()["error"]["message"]
    assert "s3://%s/many/k" % BUCKET in msg and "after 5 tries" in msg, msg
    print("  failed %.1fs after s3rver died: %s" % (time.time() - t0, msg))


def test_s3_wrong_credentials(c):
    """Credentials the store does not know: access denied, naming the bucket."""
    need_binaries()
    msg = failed_with(c, {"ops": [{"op": "read_jsonl", "paths": "s3://%s/rows" % BUCKET}]})
    assert "s3://%s/rows: access denied to bucket %s" % (BUCKET, BUCKET) in msg, msg
    assert "InvalidAccessKeyId" in msg, msg
test_s3_wrong_credentials.cluster = {"s3_env": {"AWS_ACCESS_KEY_ID": "NOT-A-KEY"}}


class SigV4Checker(http.server.BaseHTTPRequestHandler):
    """Checks each request's AWS Signature V4 as S3 does (s3rver checks only the key id),
    then answers a one-key listing or the object: a check of the signing, with the S3
    behaviour itself tested against s3rver above. Records what it saw."""
    seen = []
    throttle = 0  # answer this many next requests with 503 SlowDown
    listed = ["d/a+b.txt"]  # the keys a listing gives; only d/a+b.txt exists
    endless = False  # every page says "more", with the same token
    # bkt/big.txt: one part past S3's 8 MiB parts, "a\n" lines (ETag "v1"); with
    # big_changes, replaced by "b\n" lines ("v2") once its first part has gone
    big_size = (8 << 20) + 6
    big_etag = '"v1"'
    big_changes = False
    lock = threading.Lock()

    def log_message(self, *a):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        auth = self.headers.get("Authorization", "")
        fields = dict(f.strip().split("=", 1) for f in auth.split(" ", 1)[-1].split(","))
        key, day, region, service, _ = fields["Credential"].split("/")
        names = fields["SignedHeaders"].split(";")
        pairs = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
        canonical = "\n".join([
            "GET", path, "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"),
                                             urllib.parse.quote(v, safe="-_.~"))
                                  for k, v in pairs),
            "".join("%s:%s\n" % (h, self.headers[h].strip()) for h in names),
            ";".join(names), self.headers["x-amz-content-sha256"]])
        scope = "/".join([day, region, service, "aws4_request"])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self.headers["x-amz-date"], scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + SECRET).encode()
        for part in (day, region, service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        ok = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest() == fields["Signature"]
        SigV4Checker.seen.append({"path": path, "query": query, "ok": ok, "region": region,
                                  "key": key, "signed": names,
                                  "token": self.headers.get("x-amz-security-token")})
        with SigV4Checker.lock:
            throttled = SigV4Checker.throttle > 0
            SigV4Checker.throttle -= throttled
        if not ok:
            self.answer(403, b"<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message>"
                        b"</Error>")
        elif throttled:
            self.answer(503, b"<Error><Code>SlowDown</Code><Message>Please reduce your request "
                        b"rate.</Message></Error>")
        elif "list-type=2" in query and SigV4Checker.endless:
            self.answer(200, b"<ListBucketResult><IsTruncated>true</IsTruncated>"
                        b"<NextContinuationToken>again</NextContinuationToken></ListBucketResult>")
        elif "list-type=2" in query:
            self.answer(200, b"<ListBucketResult><IsTruncated>false</IsTruncated>" + b"".join(
                b"<Contents><Key>%s</Key><Size>6</Size></Contents>" % k.encode()
                for k in SigV4Checker.listed) + b"</ListBucketResult>")
        elif path == "/bkt/d/a%2Bb.txt":
            self.answer(200, b"hello\n")
        elif path == "/bkt/big.txt":
            self.big()
        else:
            self.answer(404, b"<Error><Code>NoSuchKey</Code><Message>The specified key does "
                        b"not exist.</Message></Error>")


    def big(self):
        cls = SigV4Checker
        first, last = (int(x) for x in self.headers["Range"].split("=")[1].split("-"))
        last = min(last, cls.big_size - 1)
        match = self.headers.get("If-Match")
        if match is not None and match != cls.big_etag:
            return self.answer(412, b"<Error><Code>PreconditionFailed</Code><Message>At least "
                               b"one of the pre-conditions you specified did not hold</Message>"
                               b"</Error>")
        line = b"a\n" if cls.big_etag == '"v1"' else b"b\n"
        body = (line * ((last - first) // 2 + 1))[:last - first + 1]
        self.send_response(206)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, cls.big_size))
        self.send_header("ETag", cls.big_etag)
        self.end_headers()
        self.wfile.write(body)
        if cls.big_changes and first == 0:
            cls.big_etag = '"v2"'


def test_signature_v4(c):
    """The requests' SigV4 signatures check out (with a session token and a region), the
    listing's query signed in its canonical order, the key percent-encoded."""
    need_binaries()
    SigV4Checker.seen.clear()
    d = post(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/d", "include_paths": True}]})
    assert rows(c, d["dataset_id"], 10) == [{"text": "hello", "path": "s3://bkt/d/a+b.txt"}]
    seen = SigV4Checker.seen
    assert len(seen) == 2 and all(s["ok"] for s in seen), seen
    assert seen[0]["path"] == "/bkt/" and seen[0]["query"] == "list-type=2&prefix=d", seen
    assert seen[1]["path"] == "/bkt/d/a%2Bb.txt", seen
    assert all(s["key"] == KEY and s["region"] == "eu-west-3" and s["token"] == "tok-1/2+3"
               and "x-amz-security-token" in s["signed"] for s in seen), seen


def test_throttling_and_missing_keys(c):
    """503 SlowDown is retried with backoff until it passes, or fails the dataset after 5
    tries; a key listed but gone by the time a task fetches it fails naming the key; a
    listing that never ends is cut."""
    need_binaries()
    SigV4Checker.seen.clear()
    SigV4Checker.throttle = 3
    d = post(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/d"}]})
    assert rows(c, d["dataset_id"], 10) == [{"text": "hello"}]
    assert len(SigV4Checker.seen) == 5, SigV4Checker.seen  # 3 throttled, a listing, a GET
    SigV4Checker.throttle = 1000
    try:
        msg = failed_with(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/d"}]})
    finally:
        SigV4Checker.throttle = 0
    assert "s3://bkt/d: listing: HTTP 503 SlowDown: Please reduce your request rate. " \
           "(after 5 tries)" in msg, msg
    SigV4Checker.listed = ["d/a+b.txt", "d/gone.txt"]
    try:
        msg = failed_with(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/d"}]})
    finally:
        SigV4Checker.listed = ["d/a+b.txt"]
    assert "s3://bkt/d/gone.txt: no such key (HTTP 404 NoSuchKey" in msg, msg
    SigV4Checker.endless = True
    try:
        msg = failed_with(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/d"}]})
    finally:
        SigV4Checker.endless = False
    assert "s3://bkt/d: the listing does not end (2 pages)" in msg, msg


def test_object_changed_mid_read(c):
    """An object read in several ranged GETs is read whole when it stays as it is; replaced
    between two of them (same size, another ETag), the read fails saying so instead of
    joining the two: every GET after the first asks If-Match with the first one's ETag."""
    need_binaries()
    SigV4Checker.listed = ["big.txt"]
    try:
        d = post(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/big.txt"}]})
        r = c.get("/api/v1/datasets/%s/count?timeout_ms=60000" % d["dataset_id"], timeout=90)
        assert r.status == 200 and r.json()["count"] == SigV4Checker.big_size // 2, r.json()
        SigV4Checker.big_changes = True
        msg = failed_with(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/big.txt"}]})
    finally:
        SigV4Checker.listed = ["d/a+b.txt"]
        SigV4Checker.big_changes = False
        SigV4Checker.big_etag = '"v1"'
    assert 's3://bkt/big.txt: the object changed while it was read (its ETag was "v1")' \
        in msg, msg


def test_shared_credentials_profile(c):
    """Without credentials in the environment, a profile of the shared credentials file
    (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE) signs the requests: its key, secret and
    session token, not the default profile's."""
    need_binaries()
    SigV4Checker.seen.clear()
    d = post(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/d"}]})
    assert rows(c, d["dataset_id"], 10) == [{"text": "hello"}]
    seen = SigV4Checker.seen
    assert len(seen) == 2 and all(s["ok"] and s["key"] == KEY for s in seen), seen
    assert all(s["token"] == "profile-token" for s in seen), seen


def test_signature_mismatch(c):
    """A secret the store does not share: access denied, naming the bucket and the
    signature."""
    need_binaries()
    msg = failed_with(c, {"ops": [{"op": "read_text", "paths": "s3://bkt/d"}]})
    assert "s3://bkt/d: access denied to bucket bkt" in msg and "signature" in msg, msg
    assert "SignatureDoesNotMatch" in msg, msg


if __name__ == "__main__":
    checker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SigV4Checker)
    threading.Thread(target=checker.serve_forever, daemon=True).start()
    test_signature_v4.cluster = {"s3_env": {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:%d/" % checker.server_address[1],
        "AWS_REGION": "eu-west-3", "AWS_SESSION_TOKEN": "tok-1/2+3"}}
    test_throttling_and_missing_keys.cluster = test_signature_v4.cluster
    test_object_changed_mid_read.cluster = test_signature_v4.cluster
    test_signature_mismatch.cluster = {"s3_env": dict(
        test_signature_v4.cluster["s3_env"], AWS_SECRET_ACCESS_KEY="not-the-secret")}
    creds = tempfile.NamedTemporaryFile("w", prefix="prism-s3-credentials-", delete=False)
    creds.write("# two profiles\n[default]\naws_access_key_id = NOT-THIS-ONE\n"
                "aws_secret_access_key = nor-this\n\n[prism]\n"
                "aws_access_key_id = %s\naws_secret_access_key=%s\n"
                "aws_session_token = profile-token\n" % (KEY, SECRET))
    creds.close()
    test_shared_credentials_profile.cluster = {"s3_env": {
        "AWS_ENDPOINT_URL": test_signature_v4.cluster["s3_env"]["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
        "AWS_SHARED_CREDENTIALS_FILE": creds.name, "AWS_PROFILE": "prism"}}
    try:
        run([test_read_from_s3, test_write_to_s3, test_s3_errors, test_s3_wrong_credentials,
             test_signature_v4, test_throttling_and_missing_keys, test_object_changed_mid_read,
             test_shared_credentials_profile,
             test_signature_mismatch], cluster_class=S3Cluster, dataservice=True)
    finally:
        os.unlink(creds.name)
