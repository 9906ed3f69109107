#!/usr/bin/python3
"""The actor benchmarks of bench/actors on the peers: Dask distributed actors
(a LocalCluster of 2 worker processes with one thread each;
`client.submit(Counter, actor=True)`, methods called on the proxy) and a
Python multiprocessing baseline (a Process serving calls over a Pipe). Same
names and JSON lines as prism-actors-bench:

    {"system": "dask" | "multiprocessing", "bench": NAME, "rate": ..., "unit": ..., ...}

    /usr/bin/python3 bench/actors/peers.py dask|multiprocessing|all [--quick]

Run it with Debian's python3 (Dask from the python3-distributed package).
The call is echo() returning None, as Prism's Counter.echo().

1_1_actor_calls_concurrent: Dask actors have no max_concurrency (every
actor of a worker runs its methods on the worker's one actor thread); what
lets calls to one Dask actor overlap is an `async def` method, which runs on
the worker's event loop, so that is what the row measures for Dask. The
multiprocessing baseline has no counterpart (a Process reading a Pipe serves
one call at a time) and leaves the row out.
"""
import os
import statistics
import sys
import threading

# The helpers of the task benchmarks' peers (bench/tasks/peers.py): its
# folder goes first on the path, so `import peers` finds that file, not this
# one (which runs as __main__).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tasks"))
from peers import (QUICK, client_rounds, dask_local_cluster, emit, latency_fields,  # noqa: E402
                   now, round_rates, rates_fields, rounds_in_processes, timed_loop)

UNIT = "calls/s"
N_ACTORS = 2   # 1_n: actors of one caller; n_n: caller processes, one actor each
CONCURRENCY = 16  # as Ray's 1_1_actor_calls_concurrent


class Counter:
    def __init__(self):
        self.n = 0

    def echo(self, x=None):
        return x

    def inc(self, by=1):
        self.n += by
        return self.n


class AsyncCounter:
    """Counter whose methods are coroutines: Dask runs them concurrently."""

    async def echo(self, x=None):
        return x


# ---------------------------------------------------------------- Dask

def dask_round(actors, n):
    """n calls made at once, the i-th to actors[i % len(actors)], then all waited for."""
    futs = [actors[i % len(actors)].echo() for i in range(n)]
    for f in futs:
        f.result()
    return n


CHURN = 10  # actors made one after another, each dropped before the next


def churn_ms(make, drop):
    """The median ms of CHURN rounds of make() (create and first call), each
    actor dropped (untimed) before the next is made."""
    times = []
    for _ in range(CHURN):
        t0 = now()
        a = make()
        times.append((now() - t0) / 1e6)
        drop(a)
    return round(statistics.median(times), 2)


def dask_nn_child(address, workers, n, rounds, warmup, index, barrier, results):
    from distributed import Client
    client = Client(address)
    actor = client.submit(Counter, actor=True, pure=False,
                          workers=[workers[index % len(workers)]]).result()
    dask_round([actor], warmup)
    client_rounds(barrier, results, rounds, lambda: dask_round([actor], n))
    client.close()


def run_dask():
    cluster, client = dask_local_cluster()
    import multiprocessing as mp
    import distributed
    S = "dask"
    workers = sorted(client.scheduler_info()["workers"])
    version = distributed.__version__

    def actor_of(cls, worker):
        # pinned to a worker: actors on one worker share its one actor thread
        return client.submit(cls, actor=True, pure=False, workers=[worker]).result()

    n, rounds, warmup = (300, 2, 50) if QUICK else (1000, 3, 100)

    def rates_of(actors):
        return rates_fields(round_rates(lambda m: dask_round(actors, m), n, rounds, warmup),
                            UNIT)

    # 1_1_actor_calls_sync
    a0 = now()
    actor = actor_of(Counter, workers[0])
    actor.echo().result()
    create_ms = (now() - a0) / 1e6
    lat, total = timed_loop(lambda: actor.echo().result(), 300 if QUICK else 3000,
                            3 if QUICK else 10, 100)

    def dask_make():
        a = actor_of(Counter, workers[0])
        a.echo().result()
        return a

    emit(system=S, bench="1_1_actor_calls_sync", version=version, create_ms=round(create_ms, 2),
         churn_ms=churn_ms(dask_make, lambda a: None), **latency_fields(lat, total, UNIT))

    # 1_1_actor_calls_async
    emit(system=S, bench="1_1_actor_calls_async", actors=1, n=n,
         **rates_of([actor]))

    # 1_1_actor_calls_concurrent: coroutine methods
    concurrent = actor_of(AsyncCounter, workers[0])
    emit(system=S, bench="1_1_actor_calls_concurrent", actors=1, n=n,
         note="async def methods (Dask actors have no max_concurrency)",
         **rates_of([concurrent]))
    del concurrent

    # 1_n_actor_calls_async: one caller, an actor on each worker
    actors = [actor] + [actor_of(Counter, workers[i % len(workers)]) for i in range(1, N_ACTORS)]
    emit(system=S, bench="1_n_actor_calls_async", actors=N_ACTORS, n=n,
         **rates_of(actors))
    del actors, actor

    # n_n_actor_calls_async: caller processes, each with its own Client and actor
    k = N_ACTORS
    rates = rounds_in_processes(dask_nn_child, (cluster.scheduler_address, workers, n, rounds,
                                                warmup), k, rounds, mp.get_context("spawn"))
    emit(system=S, bench="n_n_actor_calls_async", clients=k, actors=k, n=n * k,
         **rates_fields(rates, UNIT))
    client.close()
    cluster.close()


# ---------------------------------------------------------------- multiprocessing

def serve(conn):
    """The actor: a Counter in a process of its own, one call at a time."""
    counter = Counter()
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        method, args = msg
        conn.send(getattr(counter, method)(*args))


class MpActor:
    def __init__(self, ctx):
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(theirs,), daemon=True)
        self.proc.start()
        theirs.close()

    def call(self, method, *args):
        self.conn.send((method, args))
        return self.conn.recv()

    def close(self):
        self.conn.send(None)
        self.proc.join()
        self.conn.close()


def mp_round(actors, n):
    """n calls made at once, the i-th to actors[i % len(actors)], then all their
    results. A thread per actor reads the results while the calls are sent:
    a caller that only sent would block once the actor blocks on its replies."""
    k = len(actors)
    got = [0] * k

    def read(i, m):
        conn = actors[i].conn
        for _ in range(m):
            conn.recv()
        got[i] = m
    readers = [threading.Thread(target=read, args=(i, n // k + (i < n % k))) for i in range(k)]
    for t in readers:
        t.start()
    for i in range(n):
        actors[i % k].conn.send(("echo", ()))
    for t in readers:
        t.join()
    return sum(got)


def mp_nn_child(n, rounds, warmup, index, barrier, results):
    import multiprocessing as mp
    actor = MpActor(mp.get_context("fork"))
    mp_round([actor], warmup)
    client_rounds(barrier, results, rounds, lambda: mp_round([actor], n))
    actor.close()


def run_multiprocessing():
    import multiprocessing as mp
    S = "multiprocessing"
    ctx = mp.get_context("fork")
    n, rounds, warmup = (2000, 2, 200) if QUICK else (10000, 5, 1000)

    def rates_of(actors):
        return rates_fields(round_rates(lambda m: mp_round(actors, m), n, rounds, warmup), UNIT)

    # 1_1_actor_calls_sync
    a0 = now()
    actor = MpActor(ctx)
    actor.call("echo")
    create_ms = (now() - a0) / 1e6
    lat, total = timed_loop(lambda: actor.call("echo"), 2000 if QUICK else 20000,
                            3 if QUICK else 10, 1000)

    def mp_make():
        a = MpActor(ctx)
        a.call("echo")
        return a

    emit(system=S, bench="1_1_actor_calls_sync", create_ms=round(create_ms, 2),
         churn_ms=churn_ms(mp_make, MpActor.close), **latency_fields(lat, total, UNIT))

    # 1_1_actor_calls_async
    emit(system=S, bench="1_1_actor_calls_async", actors=1, n=n,
         **rates_of([actor]))

    # 1_n_actor_calls_async
    actors = [actor] + [MpActor(ctx) for _ in range(1, N_ACTORS)]
    emit(system=S, bench="1_n_actor_calls_async", actors=N_ACTORS, n=n,
         **rates_of(actors))
    for a in actors:
        a.close()

    # n_n_actor_calls_async: caller processes, each with its own actor process
    k = N_ACTORS
    rates = rounds_in_processes(mp_nn_child, (n, rounds, warmup), k, rounds, ctx)
    emit(system=S, bench="n_n_actor_calls_async", clients=k, actors=k, n=n * k,
         **rates_fields(rates, UNIT))


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
