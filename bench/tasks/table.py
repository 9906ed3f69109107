#!/usr/bin/python3
"""Prints the table of bench/tasks/run.sh from the JSON lines of
prism-tasks-bench, peers.py, prism-tasks-pingpong and prism-tasks-soak.

    table.py RESULTS.jsonl

Prism ÷ best peer is the plain ratio of the Prism number to the best peer's
(the highest rate, the lowest latency): above 1 is better for a rate,
below 1 is better for a latency."""
import json
import sys

PEERS = ("dask", "multiprocessing")


def load(path):
    res, errors = {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if "error" in d:
                errors.append(d)
                continue
            key = (d.get("system"), d.get("bench"))
            old = res.get(key)
            if d.get("system") == "limit" and old is not None:
                # measured more than once: the best is the limit (the rest was noise)
                if "median_us" in d and d["median_us"] > old["median_us"]:
                    continue
                if "median_ms" in d and d["median_ms"] > old["median_ms"]:
                    continue
                if "median_us" not in d and "median_ms" not in d and d["rate"] < old["rate"]:
                    continue
            res[key] = d
    return res, errors


def fmt(x, unit=""):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if x >= 1000:
        s = "{:,.0f}".format(x)
    elif x >= 100:
        s = "%.0f" % x
    elif x >= 10:
        s = "%.1f" % x
    else:
        s = "%.2f" % x
    return s + unit


def val(res, system, bench, field):
    d = res.get((system, bench))
    return None if d is None else d.get(field)


def limit_text(res, kind):
    """The physical limit shown next to a row: "rtt_rate", "rtt_us", "pipe",
    "copy_1mib", "copy_100mib" (prism-tasks-pingpong's results), or ""."""
    def lim(bench, field):
        return val(res, "limit", bench, field)
    rtt_us, rtt_rate = lim("unix_rtt", "median_us"), lim("unix_rtt", "rate")
    hand_us = lim("unix_rtt_handoff", "median_us")
    pipe_rate = lim("unix_pipelined", "rate")
    if kind == "rtt_rate" and rtt_rate:
        return "1 RTT: %s/s" % fmt(rtt_rate)
    if kind == "rtt_us" and rtt_us:
        same, two = lim("unix_rtt_same_cpu", "median_us"), lim("unix_rtt_two_cpus", "median_us")
        text = "1 RTT: %s µs" % fmt(rtt_us)
        if same is not None and two is not None:
            text += " (one CPU %s, two CPUs %s)" % (fmt(same), fmt(two))
        return text + "; with a thread hand-off %s" % fmt(hand_us)
    if kind == "pipe" and pipe_rate:
        return "pipelined msgs: %s/s" % fmt(pipe_rate)
    if kind.startswith("copy") and lim("memcpy_" + kind[5:], "median_ms") is not None:
        return "zero-copy: 1 RTT %s µs; one copy %s µs" % (
            fmt(rtt_us), fmt(1e3 * lim("memcpy_" + kind[5:], "median_ms")))
    return ""


def print_table(res, rows, peers, peer_heads):
    """rows: (label, bench, field, unit, higher is better, limit kind); one
    column for Prism, one per peer, the ratio to the best peer and the limit.
    A result marked "unsupported" shows as "not supported"."""
    def cell(system, bench, field):
        d = res.get((system, bench))
        return "not supported" if d is not None and "unsupported" in d else fmt(
            None if d is None else d.get(field))
    head = ("benchmark", "unit", "Prism") + tuple(peer_heads) + ("Prism ÷ best peer",
                                                                 "physical limit")
    table = []
    for label, bench, field, unit, higher, limit in rows:
        p = val(res, "prism", bench, field)
        have = [x for x in (val(res, s, bench, field) for s in peers) if x is not None]
        best = (max(have) if higher else min(have)) if have else None
        ratio = "%.2f" % (p / best) if p is not None and best else "n/a"
        table.append((label, unit, cell("prism", bench, field)) +
                     tuple(cell(s, bench, field) for s in peers) +
                     (ratio, limit_text(res, limit)))
    widths = [max(len(r[i]) for r in table + [head]) for i in range(len(head))]
    left = (0, 1, len(head) - 1)
    line = lambda r: "  ".join(c.ljust(w) if i in left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    print(line(head))
    print(line(tuple("-" * w for w in widths)))
    for r in table:
        print(line(r))
    print("Prism ÷ best peer: the Prism number over the best peer's; above 1 is better for a "
          "rate, below 1 for a latency.")


def print_errors(errors):
    for e in errors:
        print("error: %s %s: %s" % (e.get("system"), e.get("bench"), e.get("error")))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: table.py RESULTS.jsonl")
    res, errors = load(sys.argv[1])

    # (label, bench, field, unit, higher is better, limit)
    rows = [
        ("single_client_tasks_sync", "single_client_tasks_sync", "rate", "tasks/s", True,
         "rtt_rate"),
        ("  median latency", "single_client_tasks_sync", "median_us", "µs", False, "rtt_us"),
        ("  p99 latency", "single_client_tasks_sync", "p99_us", "µs", False, ""),
        ("single_client_tasks_async", "single_client_tasks_async", "rate", "tasks/s", True,
         "pipe"),
        ("multi_client_tasks_async", "multi_client_tasks_async", "rate", "tasks/s", True, "pipe"),
        ("single_client_wait_1k_refs", "single_client_wait_1k_refs", "rate", "rounds/s", True, ""),
        ("single_client_get_object_containing_10k_refs",
         "single_client_get_object_containing_10k_refs", "rate", "ops/s", True, ""),
        ("  the same through a task (echo)",
         "single_client_get_object_containing_10k_refs_via_task", "rate", "ops/s", True, ""),
        ("single_client_tasks_1mib_arg", "single_client_tasks_1mib_arg", "rate", "tasks/s", True,
         ""),
        ("  median latency", "single_client_tasks_1mib_arg", "median_us", "µs", False, "copy_1mib"),
        ("  put or scatter, once", "single_client_tasks_1mib_arg", "put_ms", "ms", False, ""),
        ("single_client_tasks_100mib_arg", "single_client_tasks_100mib_arg", "rate", "tasks/s",
         True, ""),
        ("  median latency", "single_client_tasks_100mib_arg", "median_us", "µs", False,
         "copy_100mib"),
        ("  put or scatter, once", "single_client_tasks_100mib_arg", "put_ms", "ms", False, ""),
    ]
    print_table(res, rows, PEERS, ("Dask", "multiproc."))

    # targets
    print()
    async_rate = val(res, "prism", "single_client_tasks_async", "rate")
    sync_med = val(res, "prism", "single_client_tasks_sync", "median_us")
    verdict = lambda ok: "met" if ok else "MISSED"
    if async_rate is not None:
        print("target single_client_tasks_async >= 50,000/s: %s (%s/s)"
              % (verdict(async_rate >= 50000), fmt(async_rate)))
    if sync_med is not None:
        print("target single_client_tasks_sync median <= 50 µs on one node: %s (%s µs)"
              % (verdict(sync_med <= 50), fmt(sync_med)))

    soak = res.get(("prism", "soak"))
    if soak:
        print()
        print("soak: %s tasks%s through one driver in %.0f s (%s tasks/s) after %s warm-up tasks"
              % (fmt(soak["tasks"]), " (cut short by the time bound)" if soak["cut_short"] else "",
                 soak["seconds"], fmt(soak["rate"]), fmt(soak["warmup"])))
        print("  %-22s %8s %12s %12s %8s %12s %12s" % ("process", "pid", "VmRSS warm", "VmRSS end",
                                                      "change", "RssAnon warm", "RssAnon end"))
        for p in soak["processes"]:
            print("  %-22s %8d %9d KiB %9d KiB %7.1f%% %8d KiB %8d KiB%s"
                  % (p["name"], p["pid"], p["rss_warm_kib"], p["rss_end_kib"], p["change_pct"],
                     p["anon_warm_kib"], p["anon_end_kib"],
                     " (new)" if p.get("new") else " (gone)" if p.get("gone") else ""))
        print("  largest growth %.1f%% (limit 10%%); objects in the %d object store(s): %d after "
              "warm-up, %d at the end: %s"
              % (soak["max_growth_pct"], soak["stores"], soak["store_objects_warm"],
                 soak["store_objects_end"], "ok" if soak["ok"] else "FAILED"))
    print_errors(errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
