#!/usr/bin/python3
"""How soon an HTTP GET that waits (`?timeout_ms=`) returns once its object is sealed.

    bench/objectstore/http_wait.py BUILD [BUILD_BEFORE]

Starts BUILD's prism-objectstore (and BUILD_BEFORE's, taking turns, three turns each);
per turn, 30 times: a GET of an absent object with timeout_ms=20000 in a thread, 50 ms
later a PUT of it (100 B) from this process; prints the median and the longest time from
the PUT's reply to the GET's."""
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "integration"))
import test_objectstore as T  # noqa: E402 (its Store helper starts and stops a store)


def turn(build):
    T.BIN = os.path.join(os.path.abspath(build), "bin")
    s = T.Store(tempfile.mkdtemp(prefix="prism-http-wait."), "node1", memory="16MiB")
    lat = []
    try:
        for i in range(30):
            oid = T.object_id(100 + i)
            got = {}

            def get():
                got["reply"] = s.http("GET", "/api/v1/objects/%s?timeout_ms=20000" % oid)
                got["at"] = time.monotonic()

            t = threading.Thread(target=get)
            t.start()
            time.sleep(0.05)
            st, _, _ = s.http("PUT", "/api/v1/objects/" + oid, b"x" * 100)
            put_done = time.monotonic()
            t.join(30)
            assert st == 201 and got["reply"][0] == 200, (st, got)
            lat.append((got["at"] - put_done) * 1e3)
    finally:
        s.stop()
    return statistics.median(lat), max(lat)


def main():
    builds = sys.argv[1:3]
    if not builds:
        sys.exit(__doc__)
    for k in range(3):
        for b in builds:
            med, worst = turn(b)
            print("%s turn %d: the GET returned %.2f ms after the PUT's reply (median of 30), "
                  "%.2f ms at most" % (b, k + 1, med, worst))


if __name__ == "__main__":
    main()
