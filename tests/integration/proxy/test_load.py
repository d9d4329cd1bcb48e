#!/usr/bin/python3
"""test_load.py — h2load through sluice (h2c, 10 connections, 10 streams
each) to an HTTP/1.1 upstream and to an h2c upstream: every request
succeeds with 200 and reaches the upstream exactly once."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import Site, Upstream, hostutil, main, need, run, serve  # noqa: E402

N = 2000


def check_load(kind, path):
    need("h2load")
    with Site() as site, Upstream(kind) as up, serve(site, [up]) as sl:
        _, out, _ = run(["h2load", "-n", str(N), "-c", "10", "-m", "10", "-T", "20",
                         "http://127.0.0.1:%d%s" % (site.plain, path)], timeout=90)
        total, ok, failed, errored, timeout, s2xx = hostutil.h2load_counts(out)
        assert (total, ok, failed, errored, timeout, s2xx) == (N, N, 0, 0, 0, N), \
            out.decode()[-1500:]
        assert up.count(path.split("?")[0]) == N, up.stats()["counts"]
        assert sl.alive()


def test_h2load_h1_upstream():
    check_load("h1", "/size/1000")


def test_h2load_h2_upstream():
    check_load("h2", "/size/1000")


if __name__ == "__main__":
    main(globals())
