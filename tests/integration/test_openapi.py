"""The REST specifications in openapi/ against the services that serve them.

1. Each spec is well formed: every $ref resolves, path templates and path
   parameters agree, operation IDs are unique, examples validate against
   their schemas, and (gcs.yaml) every error response is the Error envelope.
2. Each service binary serves exactly the routes its spec documents
   (every service prints its static route table with --print-routes):
   nothing undocumented answers, nothing documented is missing.
3. Against a live cluster, every documented GCS route answers a valid
   request with a documented status and a body that validates against the
   documented schema, and every error we can provoke (400, 401, 404, 405,
   409, 413, 503) is documented and is the Error envelope. The node agent's
   documented routes are checked the same way when openapi/nodeagent.yaml
   exists.

The JSON-schema checks use a small validator of the subset the specs use.
"""
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from http.client import HTTPConnection, HTTPSConnection

from harness import BIN, NatsClient, Response, run, skip, wait_until

try:
    import yaml
except ImportError:
    skip("python3-yaml is not installed (apt-get install python3-yaml)")

SRC = os.environ.get("PRISM_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OPENAPI = os.path.join(SRC, "openapi")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# binary, spec, whether a missing spec fails the test
SERVICES = [("prism-gcs", "gcs.yaml", True),
            ("prism-nodeagent", "nodeagent.yaml", True),
            ("prism-objectstore", "objectstore.yaml", True),
            ("prism-scheduler", "scheduler.yaml", True),
            ("prism-dataservice", "dataservice.yaml", True)]
DEFAULT = object()

# (spec name, METHOD, path template, status) of every response seen, for the report.
SEEN = set()


# ---------------------------------------------------------------- spec + validator

class Spec:
    def __init__(self, name):
        self.name = name
        self.path = os.path.join(OPENAPI, name)
        with open(self.path) as f:
            self.doc = yaml.safe_load(f)

    def ref(self, ref):
        assert ref.startswith("#/"), "%s: only local $refs are supported: %s" % (self.name, ref)
        node = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, "%s: $ref %s does not resolve" % (
                self.name, ref)
            node = node[part]
        return node

    def deref(self, obj):
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj:
            obj = self.ref(obj["$ref"])
            seen += 1
            assert seen < 32, "%s: $ref loop" % self.name
        return obj

    def operations(self):
        """Yields (METHOD, template, operation, path item)."""
        for template, item in self.doc.get("paths", {}).items():
            item = self.deref(item)
            for m in METHODS:
                if m in item:
                    yield m.upper(), template, item[m], item

    def route_set(self):
        return {(m, t) for m, t, _, _ in self.operations()}

    def op(self, method, template):
        item = self.deref(self.doc["paths"][template])
        return item[method.lower()]

    def parameters(self, method, template):
        item = self.deref(self.doc["paths"][template])
        params = {}
        for p in item.get("parameters", []) + item[method.lower()].get("parameters", []):
            p = self.deref(p)
            params[(p["name"], p["in"])] = p
        return params

    def secured(self, op):
        sec = op.get("security", self.doc.get("security", []))
        return bool(sec) and all(bool(s) for s in sec)

    # -- validation of values against schemas (the subset the specs use) --
    def errors(self, schema, v, at="$"):
        schema = self.deref(schema)
        if not isinstance(schema, dict):
            return []
        if v is None:
            if schema.get("nullable"):
                return []
            if "type" in schema or "properties" in schema or "enum" in schema:
                return ["%s: null is not allowed" % at]
        out = []
        for sub in schema.get("allOf", []):
            out += self.errors(sub, v, at)
        if "oneOf" in schema:
            ok = [s for s in schema["oneOf"] if not self.errors(s, v, at)]
            if len(ok) != 1:
                out.append("%s: matches %d of the oneOf schemas, not exactly one" % (at, len(ok)))
        if "anyOf" in schema and not any(not self.errors(s, v, at) for s in schema["anyOf"]):
            out.append("%s: matches none of the anyOf schemas" % at)
        if v is None:
            return out
        t = schema.get("type")
        if t and not type_ok(t, v):
            return out + ["%s: %s is not of type %s" % (at, short(v), t)]
        if "enum" in schema and not any(type(e) is type(v) and e == v for e in schema["enum"]):
            out.append("%s: %s is not one of %s" % (at, short(v), schema["enum"]))
        if isinstance(v, dict):
            for k in schema.get("required", []):
                if k not in v:
                    out.append("%s: required field '%s' is missing" % (at, k))
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            for k, val in v.items():
                if k in props:
                    out += self.errors(props[k], val, "%s.%s" % (at, k))
                elif extra is False:
                    out.append("%s: field '%s' is not documented" % (at, k))
                elif isinstance(extra, dict):
                    out += self.errors(extra, val, "%s.%s" % (at, k))
        elif isinstance(v, list):
            if "items" in schema:
                for i, item in enumerate(v):
                    out += self.errors(schema["items"], item, "%s[%d]" % (at, i))
            if len(v) < schema.get("minItems", 0):
                out.append("%s: fewer than %d items" % (at, schema["minItems"]))
            if "maxItems" in schema and len(v) > schema["maxItems"]:
                out.append("%s: more than %d items" % (at, schema["maxItems"]))
        elif isinstance(v, str):
            if len(v) < schema.get("minLength", 0):
                out.append("%s: shorter than %d" % (at, schema["minLength"]))
            if "maxLength" in schema and len(v) > schema["maxLength"]:
                out.append("%s: longer than %d" % (at, schema["maxLength"]))
            if "pattern" in schema and not re.search(schema["pattern"], v):
                out.append("%s: %s does not match %s" % (at, short(v), schema["pattern"]))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in schema and v < schema["minimum"]:
                out.append("%s: %s is below %s" % (at, v, schema["minimum"]))
            if "maximum" in schema and v > schema["maximum"]:
                out.append("%s: %s is above %s" % (at, v, schema["maximum"]))
        return out


def type_ok(t, v):
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, {"string": str, "boolean": bool, "object": dict, "array": list}[t])


def short(v):
    text = json.dumps(v)
    return text if len(text) < 80 else text[:77] + "..."


def load_spec(name, required):
    """The spec, or None (printing why) when the file does not exist."""
    path = os.path.join(OPENAPI, name)
    if not os.path.exists(path):
        print("  NOTE: openapi/%s does not exist%s" % (
            name, " (required)" if required else "; its checks are skipped"), flush=True)
        assert not required, "openapi/%s is missing" % name
        return None
    return Spec(name)


# ---------------------------------------------------------------- HTTP against a spec

def header(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def http(method, url, data=None, headers=None, timeout=60):
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as e:
        return Response(e.code, e.read(), dict(e.headers))


class Api:
    """Calls one service and checks every answer against its spec."""

    def __init__(self, spec, base, token):
        self.spec, self.base, self.token = spec, base, token
        self.ok = set()  # (METHOD, template) that answered a 2xx here

    def call(self, method, template, params=None, query=None, body=None, raw=None,
             headers=None, token=DEFAULT, expect=None, code=None):
        """Sends a request to a documented route; returns the Response.

        `expect`: the status wanted (int or tuple); `code`: the error code wanted.
        A request expected to succeed must also satisfy the documented
        request schema (a valid request is one the spec accepts)."""
        spec = self.spec
        op = spec.op(method, template)
        where = "%s %s" % (method, template)
        declared = spec.parameters(method, template)
        path = template
        for name in re.findall(r"{([^}]+)}", template):
            assert (name, "path") in declared, "%s: path parameter %s is not declared" % (where, name)
            path = path.replace("{%s}" % name, urllib.parse.quote(str((params or {})[name]), safe=""))
        for name in (query or {}):
            assert (name, "query") in declared, "%s: query parameter %s is not documented" % (
                where, name)
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if data is not None and method in ("POST", "PUT"):
            hdrs.setdefault("Content-Type", "application/octet-stream")
        tok = self.token if token is DEFAULT else token
        if tok is not None:
            hdrs["Authorization"] = "Bearer " + tok
        wants_success = expect is not None and all(
            200 <= s < 300 for s in (expect if isinstance(expect, tuple) else (expect,)))
        if wants_success and body is not None:
            media = op.get("requestBody", {}).get("content", {}).get("application/json")
            assert media, "%s: sends a JSON body the spec does not document" % where
            errs = spec.errors(media.get("schema", {}), body)
            assert not errs, "%s: a valid request body fails the documented schema: %s" % (
                where, errs)
        r = http(method, url, data, hdrs)
        self.check(method, template, op, r, where)
        if expect is not None:
            want = expect if isinstance(expect, tuple) else (expect,)
            assert r.status in want, "%s (%s): wanted %s, got %r" % (where, url, want, r)
        if code is not None:
            got = r.json()["error"]["code"]
            assert got == code, "%s: wanted error code %s, got %r" % (where, code, r)
        if 200 <= r.status < 300 or r.status == 101:
            self.ok.add((method, template))
        return r

    def check(self, method, template, op, r, where):
        """The response's status is documented and its body matches the documentation."""
        spec = self.spec
        responses = {str(k): v for k, v in op.get("responses", {}).items()}
        key = str(r.status)
        if key not in responses:
            key = key[0] + "XX" if key[0] + "XX" in responses else "default"
        assert key in responses, "%s answered %d, which is not documented (%s): %r" % (
            where, r.status, ", ".join(sorted(responses)), r)
        SEEN.add((spec.name, method, template, str(r.status)))
        doc = spec.deref(responses[key])
        check_body(spec, doc, r, "%s -> %d" % (where, r.status))

    def check_error(self, r, where, status=None, code=None):
        """An answer outside any operation (unknown route): the Error envelope."""
        if status is not None:
            assert r.status == status, "%s: wanted %d, got %r" % (where, status, r)
        validate_error(self.spec, r, where)
        if code is not None:
            assert r.json()["error"]["code"] == code, (where, r)


def validate_error(spec, r, where):
    assert media_type(r) == "application/json", "%s: error is not JSON: %r" % (where, r)
    errs = spec.errors({"$ref": "#/components/schemas/Error"}, r.json())
    assert not errs, "%s: error body does not match Error: %s (%r)" % (where, errs, r)


def media_type(r):
    return (header(r.headers, "Content-Type") or "").split(";")[0].strip().lower()


def check_body(spec, doc, r, where):
    for name, h in doc.get("headers", {}).items():
        h = spec.deref(h)
        if h.get("required"):
            assert header(r.headers, name) is not None, "%s: header %s is missing" % (where, name)
    content = doc.get("content")
    if not content:
        return
    ctype = media_type(r)
    media = (content.get(ctype) or content.get(ctype.split("/")[0] + "/*")
             or content.get("*/*"))
    assert media is not None, "%s: Content-Type %r is not documented (%s)" % (
        where, ctype, ", ".join(content))
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            value = json.loads(r.body)
        except ValueError as e:
            raise AssertionError("%s: body is not JSON (%s): %r" % (where, e, r))
        errs = spec.errors(media.get("schema", {}), value)
        assert not errs, "%s: body does not match the documented schema: %s\n%s" % (
            where, "; ".join(errs[:10]), short(value))


# ---------------------------------------------------------------- 1. well-formed specs

def walk(node, fn, at="#"):
    fn(node, at)
    if isinstance(node, dict):
        for k, v in node.items():
            walk(v, fn, "%s/%s" % (at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, fn, "%s/%d" % (at, i))


def check_spec(spec, problems):
    name = spec.name
    d = spec.doc
    if not str(d.get("openapi", "")).startswith("3.0"):
        problems.append("%s: openapi is %r, not 3.0.x" % (name, d.get("openapi")))

    def refs(node, at):
        if isinstance(node, dict) and "$ref" in node:
            try:
                spec.ref(node["$ref"])
            except AssertionError as e:
                problems.append("%s (at %s)" % (e, at))
    walk(d, refs)
    op_ids = {}
    for method, template, op, item in spec.operations():
        where = "%s: %s %s" % (name, method, template)
        try:
            params = spec.parameters(method, template)
        except AssertionError as e:
            problems.append(str(e))
            continue
        in_path = set(re.findall(r"{([^}]+)}", template))
        declared = {n for (n, loc) in params if loc == "path"}
        if in_path != declared:
            problems.append("%s: path parameters %s but declared %s" % (
                where, sorted(in_path), sorted(declared)))
        for (n, loc), p in params.items():
            if loc == "path" and not p.get("required"):
                problems.append("%s: path parameter %s must be required" % (where, n))
        if not op.get("responses"):
            problems.append("%s: no responses" % where)
        oid = op.get("operationId")
        if oid and oid in op_ids:
            problems.append("%s: operationId %s is also %s" % (where, oid, op_ids[oid]))
        op_ids[oid] = where

    def examples(node, at):
        # media types and parameters carry `schema` + `example`; schemas carry `example`
        if not isinstance(node, dict) or "example" not in node or at.endswith("/properties"):
            return
        if "schema" in node:
            schema = node["schema"]
        elif any(k in node for k in ("type", "properties", "$ref", "allOf", "items", "enum")):
            schema = node
        else:
            return
        errs = spec.errors(schema, node["example"])
        if errs:
            problems.append("%s: example at %s does not match its schema: %s" % (name, at, errs))
    walk(d, examples)


def check_gcs_conventions(spec, problems):
    d = spec.doc
    schemes = d.get("components", {}).get("securitySchemes", {})
    bearer = [n for n, s in schemes.items() if s.get("type") == "http" and s.get("scheme") == "bearer"]
    if not bearer or d.get("security") != [{bearer[0]: []}]:
        problems.append("gcs.yaml: bearer auth is not the global security")
    if spec.op("GET", "/healthz").get("security") != []:
        problems.append("gcs.yaml: /healthz must override security to none")
    for method, template, op, _ in spec.operations():
        where = "gcs.yaml: %s %s" % (method, template)
        responses = {str(k): spec.deref(v) for k, v in op["responses"].items()}
        if spec.secured(op) and "401" not in responses:
            problems.append("%s: secured but 401 is not documented" % where)
        if (re.search(r"{(id|key|sha256)}", template) and method != "PUT"
                and "404" not in responses):
            problems.append("%s: names a resource but documents no 404" % where)
        if "requestBody" in op and "413" not in responses:
            problems.append("%s: takes a body but documents no 413" % where)
        for status, resp in responses.items():
            if not status.isdigit() or int(status) < 400:
                continue
            schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") != "#/components/schemas/Error":
                problems.append("%s: %s is not the Error envelope" % (where, status))
            if not resp.get("description"):
                problems.append("%s: %s has no description" % (where, status))


def test_specs_are_well_formed(c):
    problems = []
    for _, name, required in SERVICES:
        spec = load_spec(name, required)
        if spec is None:
            continue
        check_spec(spec, problems)
        if name == "gcs.yaml":
            check_gcs_conventions(spec, problems)
    assert not problems, "spec problems:\n  " + "\n  ".join(problems)
test_specs_are_well_formed.cluster = {"nodes": 0}


# ---------------------------------------------------------------- 2. routes = spec

ROUTE_LINE = re.compile(r"^(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) (/\S*)$")


def served_routes(binary):
    """The routes `binary --print-routes` prints, or None (printing why) when the
    binary is not built. Every service supports the flag (libs/service)."""
    path = os.path.join(BIN, binary)
    if not os.access(path, os.X_OK):
        print("  NOTE: %s is not built in %s: its routes are not compared" % (binary, BIN))
        return None
    try:
        p = subprocess.run([path, "--print-routes"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s --print-routes did not exit" % binary)
    lines = p.stdout.decode(errors="replace").splitlines()
    if p.returncode != 0 or not lines or not all(ROUTE_LINE.match(l) for l in lines):
        why = (p.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise AssertionError("%s --print-routes failed (exit %d: %s)" % (
            binary, p.returncode, why))
    return {tuple(ROUTE_LINE.match(l).groups()) for l in lines}


def test_routes_match_specs(c):
    failures = []
    for binary, name, required in SERVICES:
        served = served_routes(binary)
        spec = load_spec(name, required)  # a missing required spec fails here
        if served is None or spec is None:
            continue
        documented = spec.route_set()
        undocumented = sorted(served - documented)
        missing = sorted(documented - served)
        for m, t in undocumented:
            failures.append("%s serves %s %s, which openapi/%s does not document" % (
                binary, m, t, name))
        for m, t in missing:
            failures.append("openapi/%s documents %s %s, which %s does not serve" % (
                name, m, t, binary))
        print("  %s: %d routes, %d documented, %d undocumented, %d missing" % (
            binary, len(served), len(documented), len(undocumented), len(missing)), flush=True)
    assert not failures, "routes and specs differ:\n  " + "\n  ".join(failures)
test_routes_match_specs.cluster = {"nodes": 0}


# ---------------------------------------------------------------- 3. the live GCS

def gcs_api(c):
    return Api(Spec("gcs.yaml"), c.url, c.token)


def tar_package(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def request_example(api, method, template):
    media = api.spec.op(method, template)["requestBody"]["content"]["application/json"]
    assert "example" in media, "%s %s: no request example in the spec" % (method, template)
    return json.loads(json.dumps(media["example"]))


def wait_state(api, job_id, states, timeout=30):
    def done():
        j = api.call("GET", "/api/v1/jobs/{id}", {"id": job_id}, expect=200).json()
        return j if j["state"] in states else None
    return wait_until(done, timeout=timeout, what="job %s in %s" % (job_id, states))


def websocket_handshake(api, template, params, headers=None):
    """A WebSocket handshake on a documented route (urllib cannot send one: it
    always says `Connection: close`), checked as Api.call checks answers."""
    path = template
    for name, value in params.items():
        path = path.replace("{%s}" % name, urllib.parse.quote(str(value), safe=""))
    u = urllib.parse.urlsplit(api.base)
    conn = (HTTPSConnection if u.scheme == "https" else HTTPConnection)(u.hostname, u.port,
                                                                        timeout=30)
    hdrs = {"Authorization": "Bearer " + api.token, "Upgrade": "websocket",
            "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    hdrs.update(headers or {})
    conn.request("GET", path, headers=hdrs)
    resp = conn.getresponse()
    r = Response(resp.status, resp.read() if resp.status != 101 else b"", dict(resp.getheaders()))
    conn.close()
    api.check("GET", template, api.spec.op("GET", template), r, "GET " + template)
    if r.status == 101:
        api.ok.add(("GET", template))
    return r


def redocly_installed():
    """Whether the build could render the API reference (apidocs.cmake: the
    CLI installed and Node.js 20.19 or later)."""
    cli = os.path.join(SRC, "tools", "openapi", "node_modules", ".bin", "redocly")
    node = shutil.which("node")
    if not os.access(cli, os.X_OK) or not node:
        return False
    v = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    m = re.match(r"^v(\d+)\.(\d+)", v)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (20, 19)


def check_api_docs(api):
    r = api.call("GET", "/api/docs", token=None, expect=(200, 404))
    if r.status == 404:
        assert r.json()["error"]["code"] == "docs_not_built", r
        assert not redocly_installed(), (
            "tools/openapi has Redocly's CLI but the GCS was built without the API reference: "
            "reconfigure the build (cmake -S . -B BUILD)")
        print("  NOTE: /api/docs not rendered (no Node.js or tools/openapi install)", flush=True)
        return
    assert media_type(r) == "text/html", r
    assert b"<title>Prism GCS API</title>" in r.body, r.body[:300]
    # The page is self-contained: Redoc inlined, nothing fetched from a CDN.
    assert not re.search(rb"<script[^>]* src=|<link[^>]* href=\"?https?:", r.body), \
        "the reference loads scripts or styles from elsewhere"
    csp = header(r.headers, "Content-Security-Policy")
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, csp
    for op_id in ("submitJob", "getApiDocs"):
        assert op_id.encode() in r.body, "%s is not in the reference" % op_id
    api.call("GET", "/api/docs", token=None, headers={"If-None-Match": header(r.headers, "ETag")},
             expect=304)
    render_api_docs(api.base)


def render_api_docs(url):
    """The page in headless Chromium, when installed: Redoc's scripts run
    under the page's Content-Security-Policy (its banner is logged) and
    nothing of the page is refused but what it would fetch from elsewhere."""
    chromium = shutil.which("chromium")
    if not chromium:
        print("  NOTE: Chromium is not installed: /api/docs not rendered in a browser", flush=True)
        return
    profile = tempfile.mkdtemp(prefix="prism-chromium-")
    argv = [chromium, "--headless=new", "--disable-gpu", "--user-data-dir=" + profile,
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom",
            url + "/api/docs"]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    log = p.stderr
    assert p.returncode == 0 and "Prism GCS API" in p.stdout, (p.returncode, log[-3000:])
    assert "Redoc" in log, "Redoc's scripts did not run:\n" + log[-3000:]
    refused = [line for line in log.splitlines()
               if "Content Security Policy" in line and "https://" not in line]
    assert not refused, "the page's own code was refused:\n" + "\n".join(refused)


def test_gcs_routes_answer_valid_requests(c):
    api = gcs_api(c)
    r = api.call("GET", "/healthz", token=None, expect=200)
    assert r.json()["service"] == "prism-gcs", r
    r = api.call("GET", "/metrics", expect=200)
    assert b"prism_gcs_nodes_alive 1" in r.body, r

    # the dashboard's static files: no token, revalidated by ETag
    page = api.call("GET", "/", token=None, expect=200)
    assert b"/dashboard/app.js" in page.body, page
    for name in ("index.html", "app.js", "style.css"):
        r = api.call("GET", "/dashboard/{file}", {"file": name}, token=None, expect=200)
        etag = header(r.headers, "ETag")
        api.call("GET", "/dashboard/{file}", {"file": name}, token=None,
                 headers={"If-None-Match": etag}, expect=304)
    api.call("GET", "/", token=None, headers={"If-None-Match": header(page.headers, "ETag")},
             expect=304)

    # the API reference and the spec it is rendered from: no token
    r = api.call("GET", "/api/openapi.yaml", token=None, expect=200)
    assert media_type(r) == "application/yaml", r
    assert yaml.safe_load(r.body) == api.spec.doc, "/api/openapi.yaml is not openapi/gcs.yaml"
    api.call("GET", "/api/openapi.yaml", token=None,
             headers={"If-None-Match": header(r.headers, "ETag")}, expect=304)
    check_api_docs(api)

    # cluster and nodes
    cl = api.call("GET", "/api/v1/cluster", expect=200).json()
    assert cl["nodes_alive"] == 1, cl
    svcs = api.call("GET", "/api/v1/services", expect=200).json()["services"]
    assert svcs[0]["service"] == "gcs", svcs
    nodes = api.call("GET", "/api/v1/nodes", expect=200).json()
    assert len(nodes["nodes"]) == 1 and nodes["next_cursor"] is None, nodes
    node = nodes["nodes"][0]
    page = api.call("GET", "/api/v1/nodes", query={"state": "ALIVE", "limit": 1}, expect=200).json()
    assert page["nodes"][0]["node_id"] == node["node_id"] and page["next_cursor"] is None, page
    api.call("GET", "/api/v1/nodes", query={"state": "DEAD"}, expect=200)
    api.call("GET", "/api/v1/nodes/{id}", {"id": node["node_id"]}, expect=200)
    workers = api.call("GET", "/api/v1/nodes/{id}/workers", {"id": node["node_id"]},
                       expect=200).json()
    assert workers["node_id"] == node["node_id"], workers

    # packages
    blob = tar_package({"run.sh": b"#!/bin/sh\necho package script ran\n"})
    sha = hashlib.sha256(blob).hexdigest()
    r = api.call("POST", "/api/v1/packages", raw=blob, expect=201)
    assert r.json() == {"sha256": sha, "size": len(blob)}, r

    # Ray's package routes: a zip working directory, as `ray job submit` uploads it
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("run.sh", "echo zip package ran\n")
    ray_pkg = {"protocol": "gcs", "name": "_ray_pkg_0123456789abcdef.zip"}
    api.call("GET", "/api/packages/{protocol}/{name}", ray_pkg, expect=404, code="not_found")
    r = api.call("PUT", "/api/packages/{protocol}/{name}", ray_pkg, raw=zbuf.getvalue(),
                 expect=200).json()
    assert r["sha256"] == hashlib.sha256(zbuf.getvalue()).hexdigest(), r
    api.call("GET", "/api/packages/{protocol}/{name}", ray_pkg, expect=200)
    api.call("PUT", "/api/packages/{protocol}/{name}", ray_pkg, raw=b"no zip", expect=400,
             code="invalid_argument")
    api.call("POST", "/api/v1/packages", raw=blob, expect=200)
    r = api.call("GET", "/api/v1/packages/{sha256}", {"sha256": sha}, expect=200)
    assert r.body == blob

    # key-value
    kv = {"namespace": "app", "key": "greeting"}
    r = api.call("PUT", "/api/v1/kv/{namespace}/{key}", kv, raw=b"hello",
                 headers={"Content-Type": "text/plain"}, expect=200)
    assert r.json() == {"namespace": "app", "key": "greeting", "size": 5}, r
    api.call("PUT", "/api/v1/kv/{namespace}/{key}", {"namespace": "app", "key": "key with spaces"},
             raw=b"\x00\x01", expect=200)
    r = api.call("GET", "/api/v1/kv/{namespace}/{key}", kv, expect=200)
    assert r.body == b"hello" and media_type(r) == "text/plain", r
    r = api.call("GET", "/api/v1/kv/{namespace}/{key}", {"namespace": "app", "key": "key with spaces"},
                 expect=200)
    assert r.body == b"\x00\x01" and media_type(r) == "application/octet-stream", r
    r = api.call("GET", "/api/v1/kv/{namespace}", {"namespace": "app"}, expect=200).json()
    assert r == {"namespace": "app", "keys": ["greeting", "key with spaces"], "next_cursor": None}, r
    r = api.call("GET", "/api/v1/kv/{namespace}", {"namespace": "app"}, query={"limit": 1},
                 expect=200).json()
    assert r["keys"] == ["greeting"] and r["next_cursor"] == "greeting", r
    r = api.call("GET", "/api/v1/kv/{namespace}", {"namespace": "app"},
                 query={"cursor": r["next_cursor"], "prefix": "key"}, expect=200).json()
    assert r["keys"] == ["key with spaces"] and r["next_cursor"] is None, r
    api.call("DELETE", "/api/v1/kv/{namespace}/{key}", kv, expect=200)

    # jobs: the spec's example, a package working_dir, a pending one, a stopped one
    example = request_example(api, "POST", "/api/v1/jobs")
    first = api.call("POST", "/api/v1/jobs", body=example, expect=201).json()
    assert first["state"] == "PENDING" and first["entrypoint"] == example["entrypoint"], first
    pkg_job = api.call("POST", "/api/v1/jobs", body={"entrypoint": "./run.sh", "working_dir": sha,
                                                     "submission_id": "openapi-pkg",
                                                     "packages": [{"name": "run", "sha256": sha}]},
                       expect=201).json()
    assert pkg_job["packages"] == [{"sha256": sha, "name": "run"}], pkg_job
    waiting = api.call("POST", "/api/v1/jobs",
                       body={"entrypoint": "true", "resources": {"GPU": 1000}}, expect=201).json()
    for j in (first, pkg_job):
        done = wait_state(api, j["job_id"], ("SUCCEEDED", "FAILED", "STOPPED"))
        assert done["state"] == "SUCCEEDED", done
    r = api.call("GET", "/api/v1/jobs/{id}/logs", {"id": pkg_job["job_id"]}, expect=200)
    assert b"package script ran" in r.body, r
    r = api.call("GET", "/api/v1/jobs/{id}/logs", {"id": first["job_id"]},
                 query={"follow": "true"}, expect=200)
    assert first["job_id"].encode() in r.body, r
    api.call("GET", "/api/v1/jobs/{id}/logs", {"id": waiting["job_id"]},
             query={"follow": "false"}, expect=200)
    lst = api.call("GET", "/api/v1/jobs", expect=200).json()
    assert [j["job_id"] for j in lst["jobs"]] == [waiting["job_id"], pkg_job["job_id"],
                                                  first["job_id"]], lst
    assert lst["next_cursor"] is None, lst
    p1 = api.call("GET", "/api/v1/jobs", query={"limit": 2}, expect=200).json()
    p2 = api.call("GET", "/api/v1/jobs", query={"limit": 2, "cursor": p1["next_cursor"]},
                  expect=200).json()
    assert [j["job_id"] for j in p1["jobs"] + p2["jobs"]] == [j["job_id"] for j in lst["jobs"]]
    assert p2["next_cursor"] is None, p2
    r = api.call("GET", "/api/v1/jobs", query={"state": "SUCCEEDED"}, expect=200).json()
    assert len(r["jobs"]) == 2, r
    long_job = api.call("POST", "/api/v1/jobs", body={"entrypoint": "echo up; exec sleep 600"},
                        expect=201).json()
    wait_state(api, long_job["job_id"], ("RUNNING",))
    r = api.call("POST", "/api/v1/jobs/{id}/stop", {"id": long_job["job_id"]}, expect=200).json()
    assert r["stop_requested"] is True, r
    assert wait_state(api, long_job["job_id"], ("STOPPED",), timeout=15)["state"] == "STOPPED"
    r = api.call("POST", "/api/v1/jobs/{id}/stop", {"id": waiting["job_id"]}, expect=200).json()
    assert r["state"] == "STOPPED", r
    for j in (first, waiting, long_job):
        api.call("DELETE", "/api/v1/jobs/{id}", {"id": j["job_id"]}, expect=200)
    api.call("GET", "/api/v1/jobs/{id}", {"id": pkg_job["job_id"]}, expect=200)

    # tasks through the GCS (needs the task runtime: scheduler, workers)
    made = api.call("POST", "/api/v1/tasks", body={"package": "builtin", "function": "add",
                                                   "args": [2, 40]}, expect=201).json()
    oid = made["object_ids"][0]
    ready = api.call("GET", "/api/v1/objects/{id}", {"id": oid}, query={"timeout_ms": 30000},
                     expect=200).json()
    assert ready["value"] == {"kind": "json", "value": 42}, ready
    tasks = wait_until(lambda: api.call("GET", "/api/v1/tasks", query={"limit": 10},
                                        expect=200).json()["tasks"], what="the task list")
    assert tasks[0]["name"] == "builtin/add", tasks
    api.call("GET", "/api/v1/tasks", query={"state": "DONE"}, expect=400, code="invalid_argument")
    trace = wait_until(lambda: (lambda t: t if t["otherData"]["tasks"] else None)(api.call(
        "GET", "/api/v1/timeline", query={"limit": 10}, expect=200).json()), what="the timeline")
    assert trace["traceEvents"][0]["name"] == "builtin/add", trace
    api.call("GET", "/api/v1/timeline", query={"job_id": "none"}, expect=200)
    api.call("GET", "/api/v1/timeline", query={"limit": 0}, expect=400, code="invalid_argument")
    hist = wait_until(lambda: (lambda h: h if h["stores"] and h["t"] else None)(api.call(
        "GET", "/api/v1/metrics/history", expect=200).json()), what="a store in the history")
    api.call("GET", "/api/v1/metrics/history", query={"since": hist["t"][-1]}, expect=200)
    api.call("GET", "/api/v1/metrics/history", query={"since": -1}, expect=400,
             code="invalid_argument")
    listed = wait_until(lambda: (lambda d: d if [o["object_id"] for o in d["objects"]] == [oid]
                                 else None)(api.call("GET", "/api/v1/objects", query={"limit": 10},
                                                     expect=200).json()), what="the object listed")
    assert listed["objects"][0]["owner"] == "gcs", listed
    for q in ({"owner": "gcs"}, {"state": "READY"}, {"node_id": "0" * 32}):
        api.call("GET", "/api/v1/objects", query=q, expect=200)
    api.call("GET", "/api/v1/objects", query={"sort": "size", "limit": 5}, expect=200)
    api.call("GET", "/api/v1/objects", query={"state": "BOGUS"}, expect=400, code="invalid_argument")
    api.call("GET", "/api/v1/objects", query={"limit": "abc"}, expect=400, code="invalid_argument")
    api.call("DELETE", "/api/v1/objects/{id}", {"id": oid}, expect=200)
    api.call("GET", "/api/v1/objects/{id}", {"id": oid}, expect=404, code="not_found")

    # actors: created over NATS as libprism does (a resource no node has keeps it pending)
    aid = "ab" * 16
    spec = json.dumps({"actor_id": aid, "owner": "gcs", "detached": True, "package": "builtin",
                       "class": "Counter", "name": "openapi", "resources": {"nothing-has": 1}})
    nc = NatsClient(c.nats_port, c.token)
    try:
        made = nc.request("prism.gcs.actor.create",
                          struct.pack("<I", len(spec)) + spec.encode() + struct.pack("<I", 0))
        assert json.loads(made) == {"ok": True, "actor_id": aid}, made
        # a compiled DAG of that actor, as a driver reports it (dags.md#visible-state)
        dag_id = "da" * 16
        nc.publish("prism.gcs.dag.update", {"dags": [{
            "id": dag_id, "owner": "owner:" + "0f" * 16, "state": "COMPILED", "executions": 3,
            "created_at": 1, "max_inflight": 8, "max_buf_size": 1024,
            "nodes": [{"index": 0, "kind": "input", "args": []},
                      {"index": 1, "kind": "bind", "actor_id": aid, "method": "add", "args": [0]}],
            "edges": [{"from": 0, "to": 1, "kind": "shm", "slot_size": 1024}], "outputs": [1],
            "latency": {"edges": [{"count": 3, "mean_us": 2.5, "buckets": [0, 1, 2] + [0] * 12}],
                        "outputs": [{"count": 3, "mean_us": 0.5, "buckets": [3] + [0] * 14}]}}]})
    finally:
        nc.close()
    wait_until(lambda: api.call("GET", "/api/v1/dags", query={"state": "COMPILED", "limit": 10},
                                expect=200).json()["dags"], what="the DAG listed")
    dag = api.call("GET", "/api/v1/dags/{id}", {"id": dag_id}, expect=200).json()
    assert dag["nodes"][1]["class"] == "Counter" and dag["executions"] == 3, dag
    assert dag["edges"][0]["latency"]["count"] == 3 and dag["output_latency"][0]["count"] == 3, dag
    assert dag["loops"] == [{"actor_id": aid, "state": "UNKNOWN", "executions": 0,
                             "active_at": None, "error": None, "values": {}}], dag
    # its actor's loop, as the actor's worker reports it with its calls
    nc = NatsClient(c.nats_port, c.token)
    try:
        nc.publish("prism.event.actor.calls", {
            "actor_id": aid, "worker_id": "ff" * 16, "node_id": "", "lease_id": "", "pending": 0,
            "done": 0, "dag": {"dag": dag_id, "state": "ENDED", "executions": 3, "active_at": 5,
                               "error": "a peer of the DAG died",
                               "inputs": [[1, 0, {"count": 4, "mean_us": 1.5,
                                                  "buckets": [0, 4] + [0] * 13}]],
                               # what looks like a count is kept, the rest dropped
                               "values": {"read_decoded": 3, "written_copied": 3,
                                          "Not-A-Name": 1, "negative": -1, "text": "x",
                                          "x" * 33: 1}}})
    finally:
        nc.close()
    dag = wait_until(lambda: (lambda d: d if d["loops"][0]["state"] == "ENDED" else None)(
        api.call("GET", "/api/v1/dags/{id}", {"id": dag_id}, expect=200).json()),
        what="the loop's report in the listing")
    assert dag["loops"][0]["error"] == "a peer of the DAG died", dag
    assert dag["loops"][0]["values"] == {"read_decoded": 3, "written_copied": 3}, dag
    assert dag["edges"][0]["latency"]["count"] == 4, dag
    api.call("GET", "/api/v1/dags", query={"state": "GONE"}, expect=400, code="invalid_argument")
    api.call("GET", "/api/v1/dags/{id}", {"id": "nope"}, expect=404, code="not_found")
    lst = api.call("GET", "/api/v1/actors", query={"namespace": "default", "limit": 10},
                   expect=200).json()
    assert [a["actor_id"] for a in lst["actors"]] == [aid] and lst["next_cursor"] is None, lst
    api.call("GET", "/api/v1/actors", query={"state": "PENDING_CREATION", "class": "Counter",
                                             "name": "openapi"}, expect=200)
    wait_until(lambda: api.call("GET", "/api/v1/actors/{id}", {"id": aid},
                                expect=200).json().get("reason"), what="the actor's reason")
    api.call("POST", "/api/v1/actors/{id}/kill", {"id": aid}, raw=b"[]",
             headers={"Content-Type": "application/json"}, expect=400, code="invalid_json")
    killed = api.call("POST", "/api/v1/actors/{id}/kill", {"id": aid}, body={"no_restart": True},
                      expect=200).json()
    assert killed["state"] == "DEAD" and killed["cause"] == "killed", killed

    # placement groups: the spec's example waits (no GPU here), a small one is placed
    example = request_example(api, "POST", "/api/v1/placement_groups")
    waiting = api.call("POST", "/api/v1/placement_groups", body=example, expect=201).json()
    small = api.call("POST", "/api/v1/placement_groups", body={"bundles": [{"CPU": 0.5}]},
                     expect=201).json()
    pg = {"id": small["placement_group_id"]}
    wait_until(lambda: api.call("GET", "/api/v1/placement_groups/{id}", pg,
                                expect=200).json()["state"] == "CREATED", what="a CREATED group")
    lst = api.call("GET", "/api/v1/placement_groups", query={"state": "PENDING", "limit": 5},
                   expect=200).json()
    assert [g["placement_group_id"] for g in lst["placement_groups"]] == [
        waiting["placement_group_id"]], lst
    api.call("POST", "/api/v1/placement_groups", body={"bundles": []}, expect=400,
             code="invalid_argument")
    removed = api.call("DELETE", "/api/v1/placement_groups/{id}", pg, expect=200).json()
    assert removed["state"] == "REMOVED", removed

    # Ray's Jobs API
    v = api.call("GET", "/api/version", expect=200).json()
    assert v["version"] == "4", v
    example = request_example(api, "POST", "/api/jobs")
    example["submission_id"] = "openapi-ray-example"
    r = api.call("POST", "/api/jobs", body=example, expect=200).json()
    assert r == {"submission_id": "openapi-ray-example", "job_id": "openapi-ray-example"}, r
    api.call("POST", "/api/jobs", body={"entrypoint": "./run.sh", "submission_id": "openapi-ray-pkg",
                                        "runtime_env": {"working_dir": sha, "env_vars": {"A": "1"}},
                                        "entrypoint_resources": {"CPU": 0.5}}, expect=200)
    api.call("POST", "/api/jobs", body={"entrypoint": "exec sleep 600",
                                        "job_id": "openapi-ray-long"}, expect=200)
    for jid in ("openapi-ray-example", "openapi-ray-pkg"):
        done = wait_state(api, jid, ("SUCCEEDED", "FAILED", "STOPPED"))
        assert done["state"] == "SUCCEEDED", done
    wait_state(api, "openapi-ray-long", ("RUNNING",))
    lst = api.call("GET", "/api/jobs", expect=200).json()
    assert [d["submission_id"] for d in lst][:3] == ["openapi-ray-long", "openapi-ray-pkg",
                                                     "openapi-ray-example"], lst
    d = api.call("GET", "/api/jobs/{id}", {"id": "openapi-ray-pkg"}, expect=200).json()
    assert d["runtime_env"] == {"env_vars": {"A": "1"}, "working_dir": sha}, d
    assert d["entrypoint_num_cpus"] == 0.5 and d["entrypoint_resources"] is None, d
    r = api.call("GET", "/api/jobs/{id}/logs", {"id": "openapi-ray-pkg"}, expect=200).json()
    assert "package script ran" in r["logs"], r
    # The logs tail WebSocket: its handshake (test_ray_jobs.py follows the stream).
    r = websocket_handshake(api, "/api/jobs/{id}/logs/tail", {"id": "openapi-ray-pkg"})
    assert r.status == 101, r
    assert header(r.headers, "Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", r
    assert api.call("POST", "/api/jobs/{id}/stop", {"id": "openapi-ray-long"},
                    expect=200).json() == {"stopped": True}
    wait_state(api, "openapi-ray-long", ("STOPPED",), timeout=15)
    assert api.call("POST", "/api/jobs/{id}/stop", {"id": "openapi-ray-long"},
                    expect=200).json() == {"stopped": False}
    api.call("DELETE", "/api/jobs/{id}", {"id": "openapi-ray-long"}, expect=200)

    # datasets, forwarded to the dataservice
    exercise_datasets(api)

    missing = sorted(api.spec.route_set() - api.ok)
    assert not missing, "documented routes that never answered a valid request: %s" % missing
test_gcs_routes_answer_valid_requests.cluster = {"dataservice": True}


def exercise_datasets(api):
    """Every dataset route with a valid request, and the errors it documents (the GCS's
    routes forward to the dataservice, whose own spec has the same routes)."""
    d = api.call("POST", "/api/v1/datasets", body=request_example(api, "POST", "/api/v1/datasets"),
                 expect=201).json()
    did = {"id": d["dataset_id"]}
    r = api.call("GET", "/api/v1/datasets/{id}/count", did, query={"timeout_ms": 60000},
                 expect=200).json()
    assert r["count"] == 10 and r["complete"], r
    r = api.call("GET", "/api/v1/datasets/{id}/rows", did, query={"limit": 3}, expect=200).json()
    # any rows of the range (a limit after map_batches, without preserve_order)
    assert len(r["rows"]) == 3 and all(0 <= row["id"] < 1000000 for row in r["rows"]), r
    info = api.call("GET", "/api/v1/datasets/{id}", did, expect=200).json()
    assert info["state"] == "FINISHED" and info["stages"], info
    assert api.call("GET", "/api/v1/datasets", expect=200).json()["datasets"][0]["dataset_id"] == \
        d["dataset_id"]
    api.call("POST", "/api/v1/datasets/{id}/stop", did, expect=409, code="dataset_ended")
    slow = api.call("POST", "/api/v1/datasets", body={"ops": [
        {"op": "range", "n": 1000000, "override_num_blocks": 1000},
        {"op": "map_batches", "fn": {"package": "builtin", "function": "cast",
                                     "args": {"column": "id", "dtype": "float32"}},
         "num_cpus": 0.5}], "options": {"memory_budget_bytes": 1}}, expect=201).json()
    api.call("POST", "/api/v1/datasets/{id}/stop", {"id": slow["dataset_id"]}, expect=200)
    for bad, code in ((b"{not json", "invalid_plan"), (b'{"ops": [{"op": "nope"}]}',
                                                       "unknown_operator"),
                      (b'{"ops": [{"op": "range", "n": 1}, {"op": "sort", "key": []}]}',
                       "invalid_plan")):
        api.call("POST", "/api/v1/datasets", raw=bad, headers={"Content-Type": "application/json"},
                 expect=400, code=code)
    # materialize, then an epoch of it
    mat = api.call("POST", "/api/v1/datasets", query={"materialize": "true"},
                   body={"ops": [{"op": "range", "n": 5}]}, expect=201).json()
    api.call("GET", "/api/v1/datasets/{id}/count", {"id": mat["dataset_id"]},
             query={"timeout_ms": 60000}, expect=200)
    ep = api.call("POST", "/api/v1/datasets/{id}/epochs", {"id": mat["dataset_id"]},
                  query={"split": 1}, expect=201).json()
    assert ep["source"] == mat["dataset_id"], ep
    api.call("POST", "/api/v1/datasets/{id}/epochs", did, expect=409, code="not_materialized")
    api.call("POST", "/api/v1/datasets/{id}/stop", {"id": ep["dataset_id"]}, expect=409,
             code="dataset_ended")
    api.call("POST", "/api/v1/datasets/{id}/stop", {"id": mat["dataset_id"]}, expect=409,
             code="dataset_ended")
    # writes are off without the dataservice's --data-roots
    api.call("POST", "/api/v1/datasets", body={"ops": [{"op": "range", "n": 1}, {
        "op": "write_jsonl", "path": "/tmp/out"}]}, expect=403, code="path_not_allowed")
    api.call("GET", "/api/v1/datasets/{id}/rows", did, query={"limit": 0}, expect=400,
             code="invalid_argument")
    api.call("GET", "/api/v1/datasets/{id}/count", did, query={"timeout_ms": -1}, expect=400,
             code="invalid_argument")
    failing = api.call("POST", "/api/v1/datasets", body={"ops": [
        {"op": "range", "n": 10},
        {"op": "select_columns", "columns": ["nope"]}]}, expect=201).json()
    for route in ("/api/v1/datasets/{id}/count", "/api/v1/datasets/{id}/rows"):
        api.call("GET", route, {"id": failing["dataset_id"]}, query={"timeout_ms": 60000},
                 expect=409, code="dataset_failed")
    # a streamed dataset: its blocks lent and given back, then the end
    streamed = api.call("POST", "/api/v1/datasets", query={"stream": "true"},
                        body={"ops": [{"op": "range", "n": 10}]}, expect=201).json()
    sid = {"id": streamed["dataset_id"]}
    rows = 0
    for _ in range(100):
        r = api.call("POST", "/api/v1/datasets/{id}/blocks/next", sid,
                     query={"timeout_ms": 60000}, expect=200).json()
        if r["end"]:
            break
        assert r["block"], r
        rows += r["block"]["rows"]
        api.call("POST", "/api/v1/datasets/{id}/blocks/release", sid,
                 query={"seq": r["block"]["seq"]}, expect=200)
    assert rows == 10 and r["end"] and r["complete"], (rows, r)
    api.call("POST", "/api/v1/datasets/{id}/blocks/release", sid, query={"seq": 0}, expect=404,
             code="not_found")
    api.call("POST", "/api/v1/datasets/{id}/blocks/next", did, expect=409, code="not_streamed")
    api.call("POST", "/api/v1/datasets/{id}/blocks/release", sid, query={"seq": -5}, expect=400,
             code="invalid_argument")


def test_dataservice_routes(c):
    """The dataservice's own port, checked against openapi/dataservice.yaml."""
    api = Api(Spec("dataservice.yaml"), c.dataservice_url, c.token)
    assert api.call("GET", "/healthz", token=None, expect=200).json()["service"] == \
        "prism-dataservice"
    r = api.call("GET", "/metrics", expect=200)
    assert b"prism_dataservice_datasets_submitted_total" in r.body, r
    exercise_datasets(api)
    for method, template, op, _ in api.spec.operations():
        if api.spec.secured(op):
            path = template.replace("{id}", "x")
            api.check_error(http(method, c.dataservice_url + path,
                                 data=b"" if method == "POST" else None), method + " " + template,
                            401, "unauthorized")
        if "{id}" in template:
            api.call(method, template, {"id": "no-such-id"}, expect=404, code="not_found")
    missing = sorted(api.spec.route_set() - api.ok)
    assert not missing, "documented routes that never answered a valid request: %s" % missing
test_dataservice_routes.cluster = {"dataservice": True}


def test_gcs_errors_are_documented(c):
    api = gcs_api(c)
    spec = api.spec
    ops = list(spec.operations())

    def sample(template):
        values = {"id": "no-such-id", "namespace": "ns", "key": "k", "sha256": "0" * 64,
                  "file": "index.html", "protocol": "gcs", "name": "_ray_pkg_none.zip"}
        return {n: values[n] for n in re.findall(r"{([^}]+)}", template)}

    # 401 on every secured route, without a token and with a wrong one
    for method, template, op, _ in ops:
        if not spec.secured(op):
            api.call(method, template, sample(template), token=None,
                     expect=(200, 404) if template == "/api/docs" else 200)
            continue
        for tok in (None, "wrong-" + c.token, ""):
            r = api.call(method, template, sample(template), token=tok, expect=401,
                         code="unauthorized")
            assert header(r.headers, "WWW-Authenticate") == "Bearer", r

    # 404: unknown ids on every route with path parameters, and unknown routes
    for method, template, op, _ in ops:
        if "{" in template and "404" in {str(s) for s in op["responses"]}:
            params = dict(sample(template), **({"file": "no-such-file.js"}
                                               if "{file}" in template else {}))
            api.call(method, template, params, expect=404, code="not_found")
    for path in ("/api/v1/no/such/route", "/api", "/api/v2/jobs", "/api/v1/jobs/a/b/c"):
        api.check_error(http("GET", c.url + path, headers={"Authorization": "Bearer " + c.token}),
                        "GET " + path, 404, "not_found")
    api.call("POST", "/api/v1/jobs", body={"entrypoint": "true", "working_dir": "1" * 64},
             expect=404, code="not_found")
    api.call("POST", "/api/jobs", body={"entrypoint": "true", "runtime_env": {"working_dir": "1" * 64}},
             expect=404, code="not_found")
    api.call("POST", "/api/v1/jobs", body={"entrypoint": "true", "packages": ["1" * 64]},
             expect=400, code="unknown_package")

    # 405: every method a documented path does not document
    for template in spec.doc["paths"]:
        documented = {m for m, t in spec.route_set() if t == template}
        path = template
        for n, v in sample(template).items():
            path = path.replace("{%s}" % n, v)
        for method in ("GET", "POST", "PUT", "DELETE"):
            if method in documented:
                continue
            r = http(method, c.url + path, data=b"" if method in ("POST", "PUT") else None,
                     headers={"Authorization": "Bearer " + c.token})
            builtin = template in ("/healthz", "/metrics")
            api.check_error(r, "%s %s" % (method, template), 404 if builtin else 405,
                            "not_found" if builtin else "method_not_allowed")

    # 400: bad queries and parameters
    for template, query in [("/api/v1/jobs", {"limit": 0}), ("/api/v1/jobs", {"limit": 1001}),
                            ("/api/v1/jobs", {"limit": "abc"}), ("/api/v1/jobs", {"cursor": "x"}),
                            ("/api/v1/jobs", {"state": "DONE"}), ("/api/v1/nodes", {"state": "UP"}),
                            ("/api/v1/nodes", {"limit": -1}), ("/api/v1/nodes", {"cursor": "-5"}),
                            ("/api/v1/actors", {"state": "UP"}), ("/api/v1/actors", {"limit": 0}),
                            ("/api/v1/actors", {"cursor": "x"})]:
        api.call("GET", template, query=query, expect=400, code="invalid_argument")
    api.call("GET", "/api/v1/jobs/{id}/logs", {"id": "x"}, query={"follow": "maybe"}, expect=400,
             code="invalid_argument")
    api.call("GET", "/api/v1/kv/{namespace}", {"namespace": "ns"}, query={"limit": 0},
             expect=400, code="invalid_argument")
    for ns, key in (("bad ns", "k"), ("..", "k"), ("n" * 129, "k"), ("ns", "k" * 513),
                    ("ns", "tab\there")):
        for method in ("GET", "PUT", "DELETE"):
            api.call(method, "/api/v1/kv/{namespace}/{key}", {"namespace": ns, "key": key},
                     raw=b"x" if method == "PUT" else None, expect=400, code="invalid_argument")
    api.call("GET", "/api/v1/kv/{namespace}", {"namespace": "bad ns"}, expect=400,
             code="invalid_argument")
    for bad in ("ABC", "0" * 63 + "g", "0" * 65, "A" * 64):
        api.call("GET", "/api/v1/packages/{sha256}", {"sha256": bad}, expect=400,
                 code="invalid_argument")
    api.call("POST", "/api/v1/packages", raw=b"", expect=400, code="invalid_argument")

    # 400: bad bodies, which the documented request schemas must refuse as well
    def bad_bodies(template, cases):
        schema = spec.op("POST", template)["requestBody"]["content"]["application/json"]["schema"]
        for raw, code in cases:
            r = api.call("POST", template, raw=raw, headers={"Content-Type": "application/json"},
                         expect=400, code=code)
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            assert spec.errors(schema, value), (
                "POST %s: the server refuses %s (%s) but the documented schema accepts it"
                % (template, raw, r.json()["error"]["message"]))
    j = lambda d: json.dumps(d).encode()
    bad_bodies("/api/v1/jobs", [
        (b"{not json", "invalid_json"), (b"[1,2]", "invalid_json"), (b"", "invalid_json"),
        (b"null", "invalid_json"), (j({}), "invalid_argument"),
        (j({"entrypoint": 5}), "invalid_argument"), (j({"entrypoint": ""}), "invalid_argument"),
        (j({"entrypoint": "true", "env": {"A": 1}}), "invalid_argument"),
        (j({"entrypoint": "true", "env": "A=1"}), "invalid_argument"),
        (j({"entrypoint": "true", "metadata": {"k": ["v"]}}), "invalid_argument"),
        (j({"entrypoint": "true", "resources": {"CPU": -1}}), "invalid_argument"),
        (j({"entrypoint": "true", "resources": {"CPU": "1"}}), "invalid_argument"),
        (j({"entrypoint": "true", "submission_id": "../etc"}), "invalid_argument"),
        (j({"entrypoint": "true", "submission_id": ".."}), "invalid_argument"),
        (j({"entrypoint": "true", "submission_id": "x" * 129}), "invalid_argument"),
        (j({"entrypoint": "true", "submission_id": 7}), "invalid_argument"),
        (j({"entrypoint": "true", "working_dir": "/tmp"}), "invalid_argument"),
        (j({"entrypoint": "true", "packages": "1" * 64}), "invalid_argument"),
        (j({"entrypoint": "true", "packages": [7]}), "invalid_argument"),
        (j({"entrypoint": "true", "packages": ["/tmp/lib.so"]}), "invalid_argument"),
        (j({"entrypoint": "true", "packages": [{"name": "lib"}]}), "invalid_argument"),
        (j({"entrypoint": "true", "packages": [{"sha256": "1" * 64, "name": "a-b"}]}),
         "invalid_argument"),
        (j({"entrypoint": "true", "packages": ["%064x" % i for i in range(33)]}),
         "invalid_argument"),
    ])
    bad_bodies("/api/jobs", [
        (b"{not json", "invalid_json"), (j({}), "invalid_argument"),
        (j({"entrypoint": "x", "runtime_env": {"pip": ["numpy"]}}), "unsupported"),
        (j({"entrypoint": "x", "runtime_env": "env"}), "invalid_argument"),
        (j({"entrypoint": "x", "runtime_env": {"working_dir": "s3://bucket/dir.zip"}}),
         "unsupported"),
        (j({"entrypoint": "x", "runtime_env": {"working_dir": "./dir"}}), "invalid_argument"),
        (j({"entrypoint": "x", "runtime_env": {"env_vars": {"A": 1}}}), "invalid_argument"),
        (j({"entrypoint": "x", "entrypoint_resources": "CPU"}), "invalid_argument"),
        (j({"entrypoint": "x", "entrypoint_num_cpus": -1}), "invalid_argument"),
        (j({"entrypoint": "x", "job_id": "../x"}), "invalid_argument"),
    ])
    assert api.call("GET", "/api/v1/jobs", expect=200).json()["jobs"] == [], \
        "a refused submission left a job behind"

    # 409: duplicates, deleting a job that has not ended, stopping one that has
    pending = api.call("POST", "/api/v1/jobs", body={"entrypoint": "true", "submission_id": "dup"},
                       expect=201).json()
    assert pending["node_id"] is None and pending["state"] == "PENDING", pending
    api.call("POST", "/api/v1/jobs", body={"entrypoint": "true", "submission_id": "dup"},
             expect=409, code="duplicate_submission_id")
    api.call("POST", "/api/jobs", body={"entrypoint": "true", "submission_id": "dup"},
             expect=409, code="duplicate_submission_id")
    api.call("DELETE", "/api/v1/jobs/{id}", {"id": "dup"}, expect=409, code="job_not_ended")
    api.call("DELETE", "/api/jobs/{id}", {"id": "dup"}, expect=409, code="job_not_ended")
    api.call("GET", "/api/jobs/{id}", {"id": "dup"}, expect=200)
    api.call("GET", "/api/jobs/{id}/logs", {"id": "dup"}, expect=200)
    api.call("POST", "/api/v1/jobs/{id}/stop", {"id": "dup"}, expect=200)
    api.call("POST", "/api/v1/jobs/{id}/stop", {"id": "dup"}, expect=409, code="job_ended")
    api.call("POST", "/api/jobs/{id}/stop", {"id": "dup"}, expect=200)
    # WebSocket handshakes the tail route refuses
    api.call("GET", "/api/jobs/{id}/logs/tail", {"id": "dup"}, expect=426, code="upgrade_required")
    for bad in ({"Sec-WebSocket-Key": "short"}, {"Connection": "keep-alive"}):
        r = websocket_handshake(api, "/api/jobs/{id}/logs/tail", {"id": "dup"}, bad)
        assert r.status == 400 and r.json()["error"]["code"] == "bad_handshake", r
    r = websocket_handshake(api, "/api/jobs/{id}/logs/tail", {"id": "dup"},
                            {"Sec-WebSocket-Version": "8"})
    assert r.status == 426 and header(r.headers, "Sec-WebSocket-Version") == "13", r

    # 413: bodies over each route's limit (this GCS runs with small package and value limits)
    big = b'{"entrypoint": "' + b"x" * (1 << 20) + b'"}'
    for template in ("/api/v1/jobs", "/api/jobs"):
        api.call("POST", template, raw=big, headers={"Content-Type": "application/json"},
                 expect=413, code="body_too_large")
    api.call("PUT", "/api/v1/kv/{namespace}/{key}", {"namespace": "ns", "key": "k"},
             raw=b"v" * 1025, expect=413, code="body_too_large")
    api.call("PUT", "/api/v1/kv/{namespace}/{key}", {"namespace": "ns", "key": "k"},
             raw=b"v" * 1024, expect=200)
    api.call("POST", "/api/v1/packages", raw=b"p" * (64 * 1024 + 1), expect=413,
             code="body_too_large")
    api.call("POST", "/api/v1/packages", raw=b"p" * (64 * 1024), expect=201)
    api.call("POST", "/api/v1/actors/{id}/kill", {"id": "0" * 32}, raw=b"{" + b" " * 8192 + b"}",
             headers={"Content-Type": "application/json"}, expect=413, code="body_too_large")
test_gcs_errors_are_documented.cluster = {
    "nodes": 0, "gcs_args": ("--max-package-size", "64KiB", "--max-kv-value-size", "1KiB"),
    "dataservice": True}


def test_unreachable_node_is_503(c):
    api = gcs_api(c)
    for jid in ("unreach-v1", "unreach-ray"):
        api.call("POST", "/api/v1/jobs", body={"entrypoint": "echo up; exec sleep 600",
                                               "submission_id": jid}, expect=201)
        wait_state(api, jid, ("RUNNING",))
    c.nodes["node-1"].kill()  # SIGKILL; the GCS will not call it dead for a minute
    api.call("GET", "/api/v1/jobs/{id}/logs", {"id": "unreach-v1"}, expect=503,
             code="node_unavailable")
    api.call("GET", "/api/jobs/{id}/logs", {"id": "unreach-ray"}, expect=503,
             code="node_unavailable")
    api.call("POST", "/api/v1/jobs/{id}/stop", {"id": "unreach-v1"}, expect=503,
             code="node_unavailable")
    api.call("POST", "/api/jobs/{id}/stop", {"id": "unreach-ray"}, expect=503,
             code="node_unavailable")
test_unreachable_node_is_503.cluster = {"nodes": 1, "node_timeout_ms": 60000}


# ---------------------------------------------------------------- the node agent

def fill_value(spec, p, fixtures):
    if p["name"] in fixtures:
        return fixtures[p["name"]]
    if "example" in p:
        return p["example"]
    schema = spec.deref(p.get("schema", {}))
    if "example" in schema:
        return schema["example"]
    if "default" in schema:
        return schema["default"]
    return None


def test_nodeagent_routes(c):
    spec = load_spec("nodeagent.yaml", False)
    if spec is None:
        return
    jid = c.submit("echo hello from the node agent")
    c.wait_job(jid)
    node = c.get("/api/v1/nodes").json()["nodes"][0]
    api = Api(spec, node["address"].rstrip("/"), c.token)
    fixtures = {"id": jid, "job_id": jid, "node_id": node["node_id"]}
    for method, template, op, _ in spec.operations():
        where = "%s %s" % (method, template)
        if method != "GET":
            print("  NOTE: nodeagent %s is not exercised (only GET routes are called)" % where)
            continue
        params, query, missing = {}, {}, []
        for (name, loc), p in spec.parameters(method, template).items():
            value = fill_value(spec, p, fixtures)
            if loc == "path":
                (params.__setitem__(name, value) if value is not None else missing.append(name))
            elif loc == "query" and p.get("required"):
                (query.__setitem__(name, value) if value is not None else missing.append(name))
        assert not missing, "%s: no value for parameters %s (give them an example)" % (
            where, missing)
        token = DEFAULT if spec.secured(op) else None
        r = api.call(method, template, params, query=query, token=token, expect=tuple(range(200, 300)))
        if template.endswith("/logs"):
            assert b"hello from the node agent" in r.body, r
        if spec.secured(op):
            api.call(method, template, params, query=query, token=None, expect=401)
        responses = {str(k) for k in op.get("responses", {})}
        if "id" in params and "404" in responses:
            api.call(method, template, dict(params, id="no-such-job"), query=query, expect=404)
    assert api.ok == {(m, t) for m, t in spec.route_set() if m == "GET"}, api.ok


# ---------------------------------------------------------------- report

def test_report_coverage(c):
    """Prints the documented GCS responses no test provoked (they stay unchecked)."""
    spec = Spec("gcs.yaml")
    unseen = []
    for method, template, op, _ in spec.operations():
        for status in op["responses"]:
            if ("gcs.yaml", method, template, str(status)) not in SEEN:
                unseen.append("%s %s -> %s" % (method, template, status))
    print("  %d documented GCS responses checked live; not provoked: %s" % (
        len([s for s in SEEN if s[0] == "gcs.yaml"]), ", ".join(unseen) or "none"), flush=True)
    ok = {(m, t) for (n, m, t, s) in SEEN if n == "gcs.yaml" and (s.startswith("2") or s == "101")}
    assert ok == spec.route_set(), "routes never answered 2xx (101 for a WebSocket): %s" % sorted(
        spec.route_set() - ok)
test_report_coverage.cluster = {"nodes": 0}


if __name__ == "__main__":
    run([test_specs_are_well_formed, test_routes_match_specs,
         test_gcs_routes_answer_valid_requests, test_gcs_errors_are_documented,
         test_dataservice_routes,
         test_unreachable_node_is_503, test_nodeagent_routes, test_report_coverage], nodes=1)
