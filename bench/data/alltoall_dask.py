#!/usr/bin/python3
"""Dask's side of the all-to-all benchmark (bench/data/alltoall.sh): the same
ROWS rows as bench/data/rows.h (the same arithmetic in numpy) made in
PARTS partitions by Dask distributed's workers (a LocalCluster of WORKERS
processes), then one operator, the result brought to this process and every
row checked as prism-data-alltoall checks it:
  none, shuffle (rows to random partitions: shuffle on a random column),
  sort (sort_values by key), groupby (groupby(group).agg(count, sum, mean)).
Prints one JSON line.
    alltoall_dask.py none|shuffle|sort|groupby ROWS PARTS WORKERS"""
import json
import sys
import time

import numpy as np

VALUES, GROUPS = 10, 1000
M = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def make(start, stop):
    import pandas as pd
    with np.errstate(over="ignore"):
        h = mix(np.arange(start, stop, dtype=np.uint64))
        cols = {"key": (h >> np.uint64(1)).astype(np.int64),
                "group": (mix(h) % np.uint64(GROUPS)).astype(np.int64)}
    for j in range(VALUES):
        bits = (h >> np.uint64(j * 4)) & np.uint64(0xFFFF)
        cols["v%d" % j] = bits.astype(np.float64) / 65536.0 + j
    return pd.DataFrame(cols)


def main():
    op, rows, parts, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    import dask
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster
    dask.config.set({"dataframe.shuffle.method": "tasks"})
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        bounds = [(rows * i // parts, rows * (i + 1) // parts) for i in range(parts)]
        want = None
        with np.errstate(over="ignore"):
            want = int(((mix(np.arange(rows, dtype=np.uint64)) >> np.uint64(1)).sum()) & M)
        t0 = time.monotonic()
        df = dd.from_map(lambda b: make(*b), bounds)
        if op == "shuffle":
            df = df.assign(r=df.key % 7919).shuffle(on="r").drop(columns="r")
        elif op == "sort":
            df = df.sort_values("key")
        elif op == "groupby":
            df = df.groupby("group").agg({"key": "count", "v0": "sum", "v1": "mean"})
        elif op != "none":
            raise SystemExit("unknown operator " + op)
        out = df.compute()
        secs = time.monotonic() - t0
    if op == "groupby":
        ok = len(out) == GROUPS and int(out["key"].sum()) == rows
    else:
        keys = out["key"].to_numpy()
        ok = len(keys) == rows and int(keys.astype(np.uint64).sum() & M) == want
        if op == "sort":
            ok = ok and bool((np.diff(keys) >= 0).all())
    if not ok:
        raise SystemExit("Dask's %s gave wrong rows" % op)
    print(json.dumps({"peer": "Dask distributed (%d workers)" % workers, "op": op, "rows": rows,
                      "seconds": round(secs, 3), "rows_per_s": round(rows / secs),
                      "gb_per_s": round(rows * 96 / secs / 1e9, 3)}))


if __name__ == "__main__":
    main()
