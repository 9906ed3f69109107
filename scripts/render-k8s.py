#!/usr/bin/python3
"""Renders the Prism Helm chart (deploy/k8s/prism) into plain Kubernetes
manifests, for users without Helm, with Debian's python3 and python3-yaml.

    scripts/render-k8s.py --out deploy/k8s/manifests          # what is committed
    scripts/render-k8s.py --check deploy/k8s/manifests        # is it up to date?
    scripts/render-k8s.py --set nodes.replicas=4 --set auth.token=$(openssl rand -hex 32) > prism.yaml

It understands the subset of Go templates (and Helm functions) the chart
uses, and refuses anything else, so the chart stays renderable by both:
`{{ .Values.a.b }}`, `.Release.Name`, `.Chart.Name/Version/AppVersion`,
string and number literals, pipelines with quote, b64enc, toYaml, indent,
nindent, default, required, not; `{{ if X }}`/`{{ else }}`/`{{ end }}`;
`{{/* comments */}}`; `{{-` and `-}}` whitespace trimming. A value the
templates name but the values lack is an error, not an empty string.
"""
import argparse
import base64
import json
import os
import re
import sys

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_CHART = os.path.join(ROOT, "deploy", "k8s", "prism")
HEADER = ("# Rendered from the chart in deploy/k8s/prism with its default values by\n"
          "# scripts/render-k8s.py. Do not edit: change the chart and render again.\n")


class TemplateError(Exception):
    pass


# ---- parsing ----

ACTION = re.compile(r"\{\{(-\s+)?(.*?)(\s+-)?\}\}", re.S)


def tokenize(text):
    """Splits a template into ('text', s) and ('action', expr) items, trimmed."""
    items, pos = [], 0
    for m in ACTION.finditer(text):
        items.append(["text", text[pos:m.start()]])
        if m.group(1):
            items[-1][1] = items[-1][1].rstrip(" \t\r\n")
        items.append(["action", m.group(2).strip(), bool(m.group(3))])
        pos = m.end()
    items.append(["text", text[pos:]])
    out = []
    trim_next = False
    for it in items:
        if it[0] == "text":
            s = it[1].lstrip(" \t\r\n") if trim_next else it[1]
            out.append(("text", s))
            trim_next = False
        else:
            out.append(("action", it[1]))
            trim_next = it[2]
    return out


def parse(items, i=0, closers=()):
    """Builds a tree: list of ('text', s) | ('expr', e) | ('if', cond, then, else)."""
    nodes = []
    while i < len(items):
        kind, val = items[i]
        if kind == "text":
            if val:
                nodes.append(("text", val))
            i += 1
            continue
        if val.startswith("/*"):
            if not val.endswith("*/"):
                raise TemplateError("unterminated comment: {{%s}}" % val)
            i += 1
            continue
        word = val.split(None, 1)[0] if val else ""
        if word in ("end", "else"):
            if word not in closers:
                raise TemplateError("unexpected {{ %s }}" % val)
            return nodes, i
        if word == "if":
            cond = val[2:].strip()
            then, i = parse(items, i + 1, ("else", "end"))
            other = []
            if items[i][1] == "else":
                other, i = parse(items, i + 1, ("end",))
            if i >= len(items) or items[i][1] != "end":
                raise TemplateError("{{ if %s }} without {{ end }}" % cond)
            nodes.append(("if", cond, then, other))
            i += 1
            continue
        if word in ("range", "with", "define", "template", "block", "include"):
            raise TemplateError("{{ %s }} is not supported by this renderer" % word)
        nodes.append(("expr", val))
        i += 1
    if closers:
        raise TemplateError("missing {{ end }}")
    return nodes, i


# ---- evaluation ----

def split_top(s, sep):
    """Splits s on sep outside quotes and parentheses."""
    parts, depth, cur, quote = [], 0, "", None
    for ch in s:
        if quote:
            cur += ch
            if ch == quote and not cur.endswith("\\" + quote):
                quote = None
            continue
        if ch in "\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if depth == 0 and ((sep == " " and ch.isspace()) or ch == sep):
            if cur.strip() or sep != " ":
                parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def truthy(v):
    return v not in (None, False, 0, "", [], {})


def to_text(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        raise TemplateError("a map or list printed without toYaml: %r" % (v,))
    return str(v)


def f_quote(*args):
    return " ".join(json.dumps(to_text(a)) for a in args)


def f_indent(n, s):
    pad = " " * int(n)
    return "\n".join(pad + line if line else line for line in to_text(s).split("\n"))


def f_to_yaml(v):
    if v in (None, {}, []):
        return "{}" if isinstance(v, dict) or v is None else "[]"
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def f_required(msg, v):
    if not truthy(v):
        raise TemplateError(msg)
    return v


FUNCS = {
    "quote": f_quote,
    "b64enc": lambda s: base64.b64encode(to_text(s).encode()).decode(),
    "toYaml": f_to_yaml,
    "indent": f_indent,
    "nindent": lambda n, s: "\n" + f_indent(n, s),
    "default": lambda d, v=None: v if truthy(v) else d,
    "required": f_required,
    "not": lambda v: not truthy(v),
}


def lookup(path, ctx):
    cur = ctx
    for part in path.split(".")[1:]:
        if not isinstance(cur, dict) or part not in cur:
            raise TemplateError("no value for %s" % path)
        cur = cur[part]
    return cur


def eval_arg(tok, ctx):
    if tok.startswith("(") and tok.endswith(")"):
        return eval_pipeline(tok[1:-1], ctx)
    if tok.startswith('"'):
        return json.loads(tok)
    if tok.startswith("`"):
        return tok[1:-1]
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    if tok in ("true", "false"):
        return tok == "true"
    if tok.startswith("."):
        return lookup(tok, ctx)
    raise TemplateError("cannot evaluate %r" % tok)


def eval_command(cmd, ctx, piped=None, has_piped=False):
    words = split_top(cmd, " ")
    if not words:
        raise TemplateError("empty command")
    if words[0] in FUNCS:
        args = [eval_arg(w, ctx) for w in words[1:]]
        if has_piped:
            args.append(piped)
        try:
            return FUNCS[words[0]](*args)
        except TypeError as e:
            raise TemplateError("%s: %s" % (cmd, e))
    if has_piped or len(words) != 1:
        raise TemplateError("unknown function in %r" % cmd)
    return eval_arg(words[0], ctx)


def eval_pipeline(expr, ctx):
    cmds = split_top(expr, "|")
    v = eval_command(cmds[0], ctx)
    for c in cmds[1:]:
        v = eval_command(c, ctx, v, True)
    return v


def execute(nodes, ctx):
    out = []
    for n in nodes:
        if n[0] == "text":
            out.append(n[1])
        elif n[0] == "expr":
            out.append(to_text(eval_pipeline(n[1], ctx)))
        else:
            out.append(execute(n[2] if truthy(eval_pipeline(n[1], ctx)) else n[3], ctx))
    return "".join(out)


def render_template(text, ctx, name="template"):
    try:
        tree, _ = parse(tokenize(text))
        return execute(tree, ctx)
    except TemplateError as e:
        raise TemplateError("%s: %s" % (name, e))


# ---- values and the chart ----

def deep_merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def parse_set(expr):
    """--set a.b=c (Helm's --set for scalars): numbers and booleans are typed."""
    if "=" not in expr:
        raise SystemExit("--set wants key=value, got %r" % expr)
    key, raw = expr.split("=", 1)
    if re.fullmatch(r"-?\d+", raw):
        val = int(raw)
    elif raw in ("true", "false"):
        val = raw == "true"
    elif raw == "null":
        val = None
    else:
        val = raw
    d = val
    for part in reversed(key.split(".")):
        d = {part: d}
    return d


def load_values(chart, files=(), sets=()):
    with open(os.path.join(chart, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for path in files:
        with open(path) as f:
            deep_merge(values, yaml.safe_load(f) or {})
    for s in sets:
        deep_merge(values, parse_set(s))
    return values


def render_chart(chart=DEFAULT_CHART, release="prism", files=(), sets=()):
    """Returns {template file name: rendered text} for the templates that
    render to at least one object, with Helm's '# Source:' lines."""
    with open(os.path.join(chart, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    ctx = {
        "Values": load_values(chart, files, sets),
        "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"],
                  "AppVersion": meta.get("appVersion", "")},
    }
    tdir = os.path.join(chart, "templates")
    out = {}
    for name in sorted(os.listdir(tdir)):
        if not name.endswith((".yaml", ".yml")) or name.startswith("_"):
            continue
        with open(os.path.join(tdir, name)) as f:
            text = render_template(f.read(), ctx, name)
        docs = []
        for doc in re.split(r"(?m)^---\s*$", text):
            body = doc.strip("\n")
            if yaml.safe_load(body) is None:
                continue
            docs.append("# Source: %s/templates/%s\n%s\n" % (meta["name"], name, body))
        if docs:
            out[name] = "---\n".join(docs)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chart", default=DEFAULT_CHART, help="chart directory")
    ap.add_argument("--release", default="prism", help="release name (prefix of every object)")
    ap.add_argument("-f", "--values", action="append", default=[], help="extra values file")
    ap.add_argument("--set", action="append", default=[], help="key.path=value")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--out", help="write one file per template into this directory")
    g.add_argument("--check", help="exit 1 unless this directory holds exactly the rendering")
    a = ap.parse_args()
    try:
        files = render_chart(a.chart, a.release, a.values, a.set)
    except (TemplateError, yaml.YAMLError) as e:
        print("render-k8s: %s" % e, file=sys.stderr)
        return 1
    if a.check:
        have = {n for n in os.listdir(a.check) if n.endswith(".yaml")} if os.path.isdir(a.check) else set()
        bad = sorted(have ^ set(files))
        for name, text in sorted(files.items()):
            if name in have:
                with open(os.path.join(a.check, name)) as f:
                    if f.read() != HEADER + text:
                        bad.append(name)
        if bad:
            print("render-k8s: %s differs from the chart's rendering: %s (run scripts/render-k8s.py "
                  "--out %s)" % (a.check, ", ".join(bad), a.check), file=sys.stderr)
            return 1
        print("render-k8s: %s is up to date (%d files)" % (a.check, len(files)))
        return 0
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        for name in os.listdir(a.out):
            if name.endswith(".yaml") and name not in files:
                os.unlink(os.path.join(a.out, name))
        for name, text in files.items():
            with open(os.path.join(a.out, name), "w") as f:
                f.write(HEADER + text)
        print("render-k8s: wrote %d files to %s" % (len(files), a.out))
        return 0
    sys.stdout.write("---\n".join(files[n] for n in sorted(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
