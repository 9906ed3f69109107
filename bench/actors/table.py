#!/usr/bin/python3
"""Prints the table of bench/actors/run.sh from the JSON lines of
prism-actors-bench, peers.py and prism-tasks-pingpong.

    table.py RESULTS.jsonl

Prism ÷ best peer is the plain ratio of the Prism number to the best peer's
(the highest rate, the lowest latency): above 1 is better for a rate,
below 1 is better for a latency. Ray's figures are its published ones (64
cores), not measured here: they are printed for scale, below the table."""
import os
import sys

# The table code of the task benchmarks (bench/tasks/table.py): its folder
# goes first on the path, so `import table` finds that file, not this one.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tasks"))
from table import fmt, load, print_errors, print_table, val  # noqa: E402

PEERS = ("dask", "multiprocessing")
# Ray's published microbenchmark figures (64 cores), for scale: not measured here
RAY = {"1_1_actor_calls_sync": 2000, "1_1_actor_calls_async": 8700}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: table.py RESULTS.jsonl")
    res, errors = load(sys.argv[1])
    # (label, bench, field, unit, higher is better, limit)
    rows = [
        ("1_1_actor_calls_sync", "1_1_actor_calls_sync", "rate", "calls/s", True, "rtt_rate"),
        ("  median latency", "1_1_actor_calls_sync", "median_us", "µs", False, "rtt_us"),
        ("  p99 latency", "1_1_actor_calls_sync", "p99_us", "µs", False, ""),
        ("  create + first call", "1_1_actor_calls_sync", "create_ms", "ms", False, ""),
        ("  the same, 10 in a row", "1_1_actor_calls_sync", "churn_ms", "ms", False, ""),
        ("1_1_actor_calls_async", "1_1_actor_calls_async", "rate", "calls/s", True, "pipe"),
        ("1_1_actor_calls_concurrent", "1_1_actor_calls_concurrent", "rate", "calls/s", True,
         "pipe"),
        ("1_n_actor_calls_async", "1_n_actor_calls_async", "rate", "calls/s", True, "pipe"),
        ("n_n_actor_calls_async", "n_n_actor_calls_async", "rate", "calls/s", True, "pipe"),
    ]
    print_table(res, rows, PEERS, ("Dask", "multiproc."))

    conc = res.get(("prism", "1_1_actor_calls_concurrent"))
    if conc and "unsupported" in conc:
        print("1_1_actor_calls_concurrent (max_concurrency %s) is not supported by Prism: %s"
              % (conc.get("max_concurrency"), conc["unsupported"]))
    elif conc:
        print("1_1_actor_calls_concurrent: max_concurrency %s; %s (one at a time would take "
              "%s × 20 ms): %s"
              % (conc.get("max_concurrency"), conc.get("overlap_check"),
                 conc.get("max_concurrency"),
                 "they overlap" if conc.get("overlapped") else "they did NOT overlap"))
    dconc = res.get(("dask", "1_1_actor_calls_concurrent"))
    if dconc:
        print("Dask's 1_1_actor_calls_concurrent: %s" % dconc.get("note", ""))

    print()
    verdict = lambda ok: "met" if ok else "MISSED"
    async_rate = val(res, "prism", "1_1_actor_calls_async", "rate")
    sync_med = val(res, "prism", "1_1_actor_calls_sync", "median_us")
    if async_rate is not None:
        print("target 1_1_actor_calls_async >= 50,000 calls/s: %s (%s/s)"
              % (verdict(async_rate >= 50000), fmt(async_rate)))
    if sync_med is not None:
        print("target 1_1_actor_calls_sync median <= 50 µs on one node: %s (%s µs)"
              % (verdict(sync_med <= 50), fmt(sync_med)))
    for bench, ray in RAY.items():
        p = val(res, "prism", bench, "rate")
        if p is not None:
            print("%s: Ray publishes ~%s calls/s on 64 cores; Prism here %s/s (%.1fx)"
                  % (bench, fmt(ray), fmt(p), p / ray))
    print_errors(errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
