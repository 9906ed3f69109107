#!/usr/bin/python3
"""Every benchmark in one go, REPS times, each figure as the median of the
repetitions with its min and max, and the ratios of issue 18's targets, each
computed within one repetition (a figure and the limit it is compared with
come from the same run).

    bench/run-all.sh [BUILD_DIR]       (this script, with /usr/bin/python3)
    bench/run_all.py --recompute bench/results/latest.json   (ratios again)

Environment: REPS (5), QUICK=1 (each benchmark's quick mode), ONLY (a comma
list of benchmarks: objectstore, tasks, actors, dag). Writes, under
bench/results/ (or OUT):

  latest.json  every figure {key, unit, higher_is_better, values, median, min,
               max} and every ratio, with the machine and the command;
  latest.md    the same as Markdown tables;

and rewrites the part of bench/README.md between the `run-all` markers with
latest.md (that part is never edited by hand). bench/compare.py compares two
latest.json files."""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BENCHES = ("objectstore", "tasks", "actors", "dag")
BEGIN, END = "<!-- run-all: begin -->", "<!-- run-all: end -->"

# Issue 18's targets: (name, numerator key, denominator: a key, a tuple of keys
# (the smallest of them in that repetition: the machine's best), or None;
# target, ">=" or "<=")
RTTS = ("limit/unix_rtt/median_us", "limit/unix_rtt_same_cpu/median_us",
        "limit/unix_rtt_two_cpus/median_us")
RATIOS = [
    ("100 MiB put ÷ memcpy of 100 MiB", "objectstore/prism/single_client_put_gigabytes/value",
     "objectstore/limit/memcpy_100MiB/value", 0.7, ">="),
    ("single_client_put_get_pairs (pairs/s)",
     "objectstore/prism/single_client_put_get_pairs/value", None, 100000, ">="),
    ("single_client_tasks_async ÷ pipelined messages",
     "tasks/prism/single_client_tasks_async/rate", "tasks/limit/unix_pipelined/rate", 0.5, ">="),
    ("single_client_tasks_sync median ÷ one socket RTT (the fastest measured)",
     "tasks/prism/single_client_tasks_sync/median_us", tuple("tasks/" + k for k in RTTS), 1.2,
     "<="),
    ("1_1_actor_calls_sync median ÷ one socket RTT (the fastest measured)",
     "actors/prism/1_1_actor_calls_sync/median_us", tuple("actors/" + k for k in RTTS), 1.2,
     "<="),
    ("n_n_actor_calls_async ÷ multiprocessing", "actors/prism/n_n_actor_calls_async/rate",
     "actors/multiprocessing/n_n_actor_calls_async/rate", 1.0, ">="),
    ("actor create + first call (ms)", "actors/prism/1_1_actor_calls_sync/create_ms", None, 5.0,
     "<="),
]

# numbers in a result line that say what was run, not how it went
PARAMETERS = ("n", "chain", "payload", "warmup", "rounds", "max_concurrency", "tasks", "pid", "actors",
              "clients", "window", "size")
LOWER = ("_us", "_ms", "latency", "seconds", "_s", "_kib", "bytes", "growth")


def higher_is_better(field, unit=""):
    if unit:
        return unit.endswith("/s")
    return not any(field.endswith(x) or x in field for x in LOWER)


def say(*a):
    print("run-all:", *a, file=sys.stderr, flush=True)


def run_bench(name, build, out_jsonl, log):
    """Runs bench/NAME/run.sh; returns its figures {key: (value, unit)}."""
    env = dict(os.environ, BENCH_RESULTS_OUT=out_jsonl)
    cmd = [os.path.join(ROOT, "bench", name, "run.sh"), build]
    with open(log, "w") as f:
        r = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=f, text=True,
                           timeout=7200)
    figures = {}
    if name == "objectstore":  # "name value unit" lines
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3:
                try:
                    v = float(parts[1])
                except ValueError:
                    continue
                system = "limit" if parts[0].startswith(("memcpy", "dd_")) else "prism"
                figures["objectstore/%s/%s/value" % (system, parts[0])] = (v, parts[2])
    elif os.path.exists(out_jsonl):
        for line in open(out_jsonl):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if not isinstance(d, dict) or "error" in d or "unsupported" in d:
                continue
            system = d.get("system")
            # the DAG benchmarks name a row by its mode or transport, chain and payload
            bench = d.get("bench") or d.get("case") or "-".join(
                str(d[k]) for k in ("mode", "transport", "chain", "payload") if k in d)
            if not bench:
                continue
            for k, v in d.items():
                if k in PARAMETERS:
                    continue
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    key = "%s/%s/%s/%s" % (name, system or "prism", bench, k)
                    old = figures.get(key)
                    if system == "limit" and old is not None:  # the best of repeated limits
                        better = v > old[0] if higher_is_better(k) else v < old[0]
                        if not better:
                            continue
                    figures[key] = (v, "")
    if r.returncode != 0:
        say("%s failed (status %d); its figures so far are kept; log %s" % (name, r.returncode,
                                                                           log))
    return figures


def ratio_values(reps, num, den):
    out = []
    for figs in reps:
        a = figs.get(num)
        if isinstance(den, tuple):
            have = [figs[k] for k in den if k in figs]
            b = min(have) if have else None
        else:
            b = figs.get(den) if den else (1.0, "")
        if a and b and b[0]:
            out.append(a[0] / b[0])
    return out


def ratios_of(all_reps):
    ratios = []
    for name, num, den, target, op in RATIOS:
        vals = ratio_values(all_reps, num, den)
        r = {"name": name, "numerator": num, "denominator": den, "target": target, "op": op}
        r.update(summary(vals) if vals else {"median": None})
        ratios.append(r)
    return ratios


def recompute(path):
    """Rebuilds the ratios, latest.md and README's part from a latest.json (after
    a change of the targets), without running anything again."""
    doc = json.load(open(path))
    reps = [{} for _ in range(doc["reps"])]
    for f in doc["figures"]:
        if len(f["values"]) == doc["reps"]:  # in every repetition: aligned
            for i, v in enumerate(f["values"]):
                reps[i][f["key"]] = (v, f["unit"])
    doc["ratios"] = ratios_of(reps)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    md = markdown(doc)
    with open(os.path.join(os.path.dirname(path), "latest.md"), "w") as f:
        f.write(md)
    update_readme(md)
    print(md)


def summary(values):
    return {"values": values, "median": statistics.median(values), "min": min(values),
            "max": max(values)}


def fmt(x):
    if x is None:
        return "n/a"
    a = abs(x)
    return ("{:,.0f}".format(x) if a >= 1000 else "%.0f" % x if a >= 100 else "%.1f" % x
            if a >= 10 else "%.3g" % x)


def markdown(doc):
    lines = ["Generated by `%s` on %s (%s); %d repetitions, each figure the median with "
             "[min – max]; load average %s at the start." % (
                 doc["command"], doc["date"], doc["machine"], doc["reps"], doc["load_start"]),
             "", "| target (issue 18) | median [min – max] | target | met |", "|---|---|---|---|"]
    for r in doc["ratios"]:
        if r.get("median") is None:
            lines.append("| %s | not measured | %s %s | |" % (r["name"], r["op"],
                                                            fmt(r["target"])))
            continue
        ok = r["median"] >= r["target"] if r["op"] == ">=" else r["median"] <= r["target"]
        lines.append("| %s | %s [%s – %s] | %s %s | %s |" % (
            r["name"], fmt(r["median"]), fmt(r["min"]), fmt(r["max"]), r["op"], fmt(r["target"]),
            "yes" if ok else "no"))
    lines += ["", "<details><summary>Every figure</summary>", "",
              "| figure | median | min | max |", "|---|---|---|---|"]
    for f in doc["figures"]:
        lines.append("| `%s`%s | %s | %s | %s |" % (f["key"], " " + f["unit"] if f["unit"] else "",
                                                   fmt(f["median"]), fmt(f["min"]),
                                                   fmt(f["max"])))
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def update_readme(md):
    path = os.path.join(ROOT, "bench", "README.md")
    text = open(path).read()
    if BEGIN not in text or END not in text:
        say("bench/README.md has no run-all markers; left alone")
        return
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path, "w") as f:
        f.write(head + BEGIN + "\n" + md + END + tail)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--recompute":
        return recompute(sys.argv[2])
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-bench"))
    reps = int(os.environ.get("REPS", "5"))
    only = [b for b in os.environ.get("ONLY", ",".join(BENCHES)).split(",") if b]
    unknown = [b for b in only if b not in BENCHES]
    if unknown:
        raise SystemExit("unknown benchmarks: %s (known: %s)" % (unknown, ", ".join(BENCHES)))
    out_dir = os.environ.get("OUT", os.path.join(ROOT, "bench", "results"))
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="prism-run-all.")
    load0 = open("/proc/loadavg").read().split()[0]
    all_reps = []
    for rep in range(1, reps + 1):
        figs = {}
        for b in only:
            say("repetition %d of %d: %s" % (rep, reps, b))
            figs.update(run_bench(b, build, os.path.join(work, "%s-%d.jsonl" % (b, rep)),
                                  os.path.join(work, "%s-%d.log" % (b, rep))))
        all_reps.append(figs)
    keys = sorted({k for figs in all_reps for k in figs})
    figures = []
    for k in keys:
        vals = [figs[k][0] for figs in all_reps if k in figs]
        unit = next(figs[k][1] for figs in all_reps if k in figs)
        figures.append(dict(key=k, unit=unit,
                            higher_is_better=higher_is_better(k.rsplit("/", 1)[1], unit),
                            **summary(vals)))
    ratios = ratios_of(all_reps)
    cmd = "bench/run-all.sh %s" % os.path.relpath(build, ROOT)
    if os.environ.get("QUICK"):
        cmd = "QUICK=1 " + cmd
    if reps != 5:
        cmd = "REPS=%d %s" % (reps, cmd)
    doc = {"command": cmd, "date": datetime.date.today().isoformat(),
           "machine": "%d CPUs, %s %s" % (os.cpu_count(), platform.system(), platform.release()),
           "reps": reps, "load_start": load0, "figures": figures, "ratios": ratios}
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
    md = markdown(doc)
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(md)
    if not os.environ.get("OUT"):
        update_readme(md)
    print(md)
    say("logs and raw results in %s" % work)


if __name__ == "__main__":
    main()
