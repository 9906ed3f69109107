#!/usr/bin/python3
"""The task benchmarks of bench/tasks on the peers: Dask distributed (a
LocalCluster of 2 worker processes with one thread each) and Python
multiprocessing (Pool(2)). Same names and JSON lines as prism-tasks-bench:

    {"system": "dask" | "multiprocessing", "bench": NAME, "rate": ..., "unit": ..., ...}

    /usr/bin/python3 bench/tasks/peers.py dask|multiprocessing|all [--quick]

Run it with Debian's python3 (Dask from the python3-distributed package).
Benchmarks that have no counterpart in a peer are left out (multiprocessing
has no references; neither has an object holding references), and the table
shows n/a for them.
"""
import json
import os
import statistics
import sys
import threading
import time
import zlib

QUICK = "--quick" in sys.argv
SIZES = (1 << 20, 100 << 20)


def noop():
    return None


def echo_small(small, big):
    return small


def checksum(big):
    return len(big), zlib.crc32(big)


def now():
    return time.monotonic_ns()


def emit(**fields):
    print(json.dumps(fields), flush=True)


def size_label(size):
    return "%dmib" % (size >> 20)


def make_bytes(size):
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def latency_fields(lat_ns, total_s, unit="tasks/s"):
    lat = sorted(lat_ns)
    n = len(lat)
    return dict(n=n, rate=round(n / total_s, 1), unit=unit,
                median_us=round(lat[n // 2] / 1e3, 2),
                p99_us=round(lat[min(n - 1, int(n * 0.99))] / 1e3, 2),
                mean_us=round(sum(lat) / n / 1e3, 2))


def rates_fields(rates, unit="tasks/s"):
    """The median rate of some rounds, with the lowest and highest."""
    return dict(rounds=len(rates), rate=round(statistics.median(rates), 1), unit=unit,
                rate_min=round(min(rates), 1), rate_max=round(max(rates), 1))


def round_rates(one_round, n, rounds, warmup):
    """one_round(warmup) once, then `rounds` timed rounds of one_round(n):
    the rate of each."""
    one_round(warmup)
    rates = []
    for _ in range(rounds):
        a = now()
        one_round(n)
        rates.append(n / ((now() - a) / 1e9))
    return rates


def dask_local_cluster():
    """A Dask LocalCluster of 2 worker processes with one thread each, and a
    Client of it. Exits with a hint when Dask is missing."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        sys.exit("peers.py: Dask distributed is missing: install Debian's python3-distributed "
                 "(apt-get install python3-distributed) and run this with /usr/bin/python3")
    import logging
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    client.wait_for_workers(2)
    return cluster, client


def timed_loop(call, n_max, max_s, warmup):
    """Runs call() warmup times, then up to n_max times or max_s seconds;
    returns (latencies in ns, total seconds)."""
    for _ in range(warmup):
        call()
    lat = []
    t0 = now()
    while len(lat) < n_max:
        a = now()
        call()
        b = now()
        lat.append(b - a)
        if b - t0 > max_s * 1e9:
            break
    return lat, (now() - t0) / 1e9


# ---------------------------------------------------------------- Dask

def client_rounds(barrier, results, rounds, one_round):
    """The rounds of one client process of rounds_in_processes: each waits at
    the barrier, then runs one_round(), which returns how many calls it made."""
    for _ in range(rounds):
        barrier.wait()
        a = now()
        n = one_round()
        results.put((a, now(), n))


def rounds_in_processes(target, args, k, rounds, ctx):
    """Runs target(*args, index, barrier, results) in k processes (index 0
    to k-1) of the multiprocessing context ctx; target calls client_rounds.
    Returns the rate of each round: all the calls over the time from the
    first start to the last end (as bench_clients_rounds in bench_util.h)."""
    barrier, results = ctx.Barrier(k), ctx.Queue()
    kids = [ctx.Process(target=target, args=tuple(args) + (i, barrier, results))
            for i in range(k)]
    for p in kids:
        p.start()
    rates = []
    for _ in range(rounds):
        got = [results.get(timeout=600) for _ in range(k)]
        rates.append(sum(g[2] for g in got) / ((max(g[1] for g in got) -
                                                min(g[0] for g in got)) / 1e9))
    for p in kids:
        p.join()
    return rates


def dask_multi_child(address, n, rounds, warmup, index, barrier, results):
    from distributed import Client
    client = Client(address)
    futs = [client.submit(noop, pure=False) for _ in range(warmup)]
    client.gather(futs)

    def one_round():
        client.gather([client.submit(noop, pure=False) for _ in range(n)])
        return n
    client_rounds(barrier, results, rounds, one_round)
    client.close()


def run_dask():
    cluster, client = dask_local_cluster()
    import multiprocessing as mp
    import distributed
    from distributed import wait
    S = "dask"
    version = distributed.__version__

    # single_client_tasks_sync
    lat, total = timed_loop(lambda: client.submit(noop, pure=False).result(),
                            300 if QUICK else 3000, 3 if QUICK else 10, 100)
    emit(system=S, bench="single_client_tasks_sync", version=version, **latency_fields(lat, total))

    # single_client_tasks_async
    n = 500 if QUICK else 3000
    rates = round_rates(lambda m: client.gather([client.submit(noop, pure=False)
                                                 for _ in range(m)]),
                        n, 2 if QUICK else 3, 200)
    emit(system=S, bench="single_client_tasks_async", n=n, **rates_fields(rates))

    # multi_client_tasks_async: 2 driver processes, each with its own Client
    k, n, rounds = 2, (300 if QUICK else 1500), (2 if QUICK else 3)
    rates = rounds_in_processes(dask_multi_child, (cluster.scheduler_address, n, rounds, 100),
                                k, rounds, mp.get_context("spawn"))
    emit(system=S, bench="multi_client_tasks_async", clients=k, n=n * k, rounds=rounds,
         rate=round(statistics.median(rates), 1), unit="tasks/s")

    # single_client_wait_1k_refs
    def wait_round():
        not_ready = set(client.submit(noop, pure=False) for _ in range(1000))
        while not_ready:
            done, not_ready = wait(not_ready, return_when="FIRST_COMPLETED")
            done = set(done)
            done.pop()  # one taken per call, as ray.wait(not_ready) returns one
            not_ready = set(not_ready) | done
    wait_round()
    ms = []
    rounds = 2 if QUICK else 3
    t0 = now()
    for _ in range(rounds):
        a = now()
        wait_round()
        ms.append((now() - a) / 1e6)
    emit(system=S, bench="single_client_wait_1k_refs", rounds=rounds,
         rate=round(rounds / ((now() - t0) / 1e9), 2), unit="rounds/s",
         median_ms=round(statistics.median(ms), 2))

    # tasks with a 1 MiB and a 100 MiB argument, scattered once
    for size in SIZES:
        data = make_bytes(size)
        a = now()
        big = client.scatter(data, hash=False)
        put_ms = (now() - a) / 1e6
        assert client.submit(checksum, big, pure=False).result() == (size, zlib.crc32(data))
        lat, total = timed_loop(lambda: client.submit(echo_small, 1, big, pure=False).result(),
                                50 if QUICK else 1000, 3 if QUICK else 10, 5)
        emit(system=S, bench="single_client_tasks_%s_arg" % size_label(size), size=size,
             put_ms=round(put_ms, 3), **latency_fields(lat, total))
        del big
    client.close()
    cluster.close()


# ---------------------------------------------------------------- multiprocessing

def run_multiprocessing():
    import multiprocessing as mp
    S = "multiprocessing"
    pool = mp.Pool(2)

    # single_client_tasks_sync
    lat, total = timed_loop(lambda: pool.apply(noop), 2000 if QUICK else 20000,
                            3 if QUICK else 10, 1000)
    emit(system=S, bench="single_client_tasks_sync", **latency_fields(lat, total))

    # single_client_tasks_async
    def async_round(n):
        rs = [pool.apply_async(noop) for _ in range(n)]
        for r in rs:
            r.get()
    n = 2000 if QUICK else 10000
    rates = round_rates(async_round, n, 2 if QUICK else 5, 1000)
    emit(system=S, bench="single_client_tasks_async", n=n, **rates_fields(rates))

    # multi_client_tasks_async: 2 threads submitting to the one pool
    k, rounds = 2, (2 if QUICK else 5)
    barrier = threading.Barrier(k)
    spans = [[] for _ in range(k)]

    def client_thread(i):
        async_round(500)
        for _ in range(rounds):
            barrier.wait()
            a = now()
            async_round(n)
            spans[i].append((a, now()))
    ts = [threading.Thread(target=client_thread, args=(i,)) for i in range(k)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rates = [k * n / ((max(spans[i][r][1] for i in range(k)) -
                       min(spans[i][r][0] for i in range(k))) / 1e9) for r in range(rounds)]
    emit(system=S, bench="multi_client_tasks_async", clients=k, n=n * k, rounds=rounds,
         rate=round(statistics.median(rates), 1), unit="tasks/s", note="threads sharing one Pool")

    # single_client_wait_1k_refs: apply_async with callbacks, a condition to wait on
    cond = threading.Condition()
    finished = set()

    def wait_round():
        rs = []
        for i in range(1000):
            rs.append(pool.apply_async(noop, callback=lambda _r, i=i: done_cb(i)))
        not_ready = set(range(1000))
        while not_ready:
            with cond:
                while not (finished & not_ready):
                    cond.wait()
                not_ready.discard(next(iter(finished & not_ready)))
        with cond:
            finished.clear()

    def done_cb(i):
        with cond:
            finished.add(i)
            cond.notify()
    wait_round()
    ms = []
    rounds = 3 if QUICK else 20
    t0 = now()
    for _ in range(rounds):
        a = now()
        wait_round()
        ms.append((now() - a) / 1e6)
    emit(system=S, bench="single_client_wait_1k_refs", rounds=rounds,
         rate=round(rounds / ((now() - t0) / 1e9), 2), unit="rounds/s",
         median_ms=round(statistics.median(ms), 2))

    # tasks with a 1 MiB and a 100 MiB argument: pickled to the worker each call
    for size in SIZES:
        data = make_bytes(size)
        assert pool.apply(checksum, (data,)) == (size, zlib.crc32(data))
        lat, total = timed_loop(lambda: pool.apply(echo_small, (1, data)),
                                100 if QUICK else 2000, 3 if QUICK else 10, 3)
        emit(system=S, bench="single_client_tasks_%s_arg" % size_label(size), size=size,
             **latency_fields(lat, total))
    pool.close()
    pool.join()


def main():
    which = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(which) != 1 or which[0] not in ("dask", "multiprocessing", "all"):
        sys.exit("usage: peers.py dask|multiprocessing|all [--quick]")
    if which[0] in ("multiprocessing", "all"):
        run_multiprocessing()
    if which[0] in ("dask", "all"):
        run_dask()


if __name__ == "__main__":
    main()
