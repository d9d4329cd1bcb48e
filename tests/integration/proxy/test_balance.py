#!/usr/bin/python3
"""test_balance.py — choosing servers: round robin spreads sequential
requests evenly, least_conn avoids the busy server, passive health skips a
dead server after its first failure, an active health_check marks a server
down (its /health answers 500, or it is gone) and up again; keep-alive pools
and HTTP/2 multiplexing keep the upstream connection count low."""

import os
import re
import socket
import sys
import threading
import time
from contextlib import ExitStack

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import (H1Reader, H2T, Site, Upstream, curl, free_port, log_lines,  # noqa: E402
                       main, serve, wait_log)


def ids(port, n, path="/id"):
    """n sequential GETs on one HTTP/1.1 keep-alive connection; the bodies."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    rd = H1Reader(s)
    out = []
    for _ in range(n):
        s.sendall(("GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % path).encode())
        status, hdrs, body, _ = rd.response()
        assert status == 200, (status, hdrs, body)
        out.append(body.decode())
    s.close()
    return out


def fixtures(st, n, **kw):
    return [st.enter_context(Upstream("h1", name=chr(ord("a") + i), **kw)) for i in range(n)]


def test_round_robin():
    with ExitStack() as st:
        site = st.enter_context(Site())
        ups = fixtures(st, 3)
        st.enter_context(serve(site, ups, balance="round_robin"))
        got = ids(site.plain, 30)
        assert sorted(set(got[:3])) == ["a", "b", "c"], got
        assert got == got[:3] * 10, "not a rotation: %s" % got
        assert [u.count("/id") for u in ups] == [10, 10, 10]


def test_least_conn():
    """While a slow request occupies one server, least_conn sends every other
    request to the idle one (round robin would alternate)."""
    with ExitStack() as st:
        site = st.enter_context(Site())
        a, b = fixtures(st, 2)
        st.enter_context(serve(site, [a, b], balance="least_conn"))
        slow = []
        t = threading.Thread(target=lambda: slow.append(curl(site.plain, "/slow/2000")))
        t.start()
        try:
            deadline = time.monotonic() + 3
            while not (a.stats()["active"] or b.stats()["active"]):
                assert time.monotonic() < deadline, "the slow request did not arrive"
                time.sleep(0.05)
            busy, idle = (a, b) if a.stats()["active"] else (b, a)
            got = ids(site.plain, 6)
            assert got == [idle.name] * 6, "busy %s, answers %s" % (busy.name, got)
            assert busy.stats()["active"] == 1, "the slow request ended too soon"
        finally:
            t.join()
        assert slow[0].status == 200 and slow[0].body == b"slow " + busy.name.encode(), slow


def test_passive_health():
    """A dead server fails once, is marked down, and is not tried again
    within fail_timeout: requests go to the live one."""
    dead = "127.0.0.1:%d" % free_port()
    with Site() as site, Upstream("h1", name="live") as live, \
            serve(site, [dead, live], tries=2, max_fails=1, fail_timeout=30) as sl:
        got = ids(site.plain, 10)
        assert got == ["live"] * 10, got
        wait_log(sl, re.escape("upstream app server %s: down" % dead))
        fails = log_lines(sl, re.escape("server %s: connect failed" % dead))
        assert len(fails) == 1, "dead server tried %d times:\n%s" % (len(fails), sl.stderr())
        assert live.count("/id") == 10


def test_active_health_check():
    with ExitStack() as st:
        site = st.enter_context(Site())
        flag = site.path("a.down")
        a = st.enter_context(Upstream("h1", name="a", flag=flag))
        b = st.enter_context(Upstream("h1", name="b"))
        sl = st.enter_context(serve(site, [a, b], health_check={
            "path": "/health", "interval": 0.1, "timeout": 0.5, "fails": 2, "passes": 1}))
        # checks run from the start, before any request arrives
        time.sleep(0.6)
        assert a.count("/health") >= 3 and b.count("/health") >= 3, (
            a.count("/health"), b.count("/health"))
        assert sorted(ids(site.plain, 4)) == ["a", "a", "b", "b"]
        # /health answers 500: down after two checks
        site.write("a.down", "")
        wait_log(sl, re.escape("upstream app server %s: down (health check: status 500)" %
                               a.addr), timeout=3)
        n = a.count("/id")
        assert ids(site.plain, 6) == ["b"] * 6
        assert a.count("/id") == n
        assert a.count("/health") >= 2, a.stats()["counts"]
        # healthy again: up after one check, and chosen again
        os.unlink(flag)
        wait_log(sl, re.escape("upstream app server %s: up" % a.addr), timeout=3)
        assert sorted(ids(site.plain, 4)) == ["a", "a", "b", "b"]
        # the process is gone: down again; back on the same port: up
        a.kill()
        wait_log(sl, re.escape("upstream app server %s: down" % a.addr), count=2, timeout=3)
        assert ids(site.plain, 4) == ["b"] * 4
        a2 = st.enter_context(Upstream("h1", name="a2", port=a.port))
        try:
            wait_log(sl, re.escape("upstream app server %s: up" % a.addr), count=2, timeout=3)
        except AssertionError as e:
            raise AssertionError("%s\nhealth checks the restarted server got: %d" % (
                e, a2.count("/health")))
        assert sorted(ids(site.plain, 4)) == ["a2", "a2", "b", "b"]
        assert a2.count("/health") >= 1


def test_keepalive_pool_reuse():
    """Sequential requests from many client connections reuse one pooled
    upstream connection."""
    with Site() as site, Upstream("h1") as up, serve(site, [up], keepalive=4):
        for i in range(10):
            r = curl(site.plain, "/id", proto="h1" if i % 2 else "h2c")
            assert r.status == 200 and r.body == b"h1", r
        assert ids(site.plain, 10) == ["h1"] * 10
        st = up.stats()
        assert st["counts"]["/id"] == 20 and st["conns"] == 1, (
            "%d upstream connections for 20 sequential requests" % st["conns"])


def test_h2_upstream_multiplexed():
    """50 concurrent slow requests share one upstream HTTP/2 connection and
    run in parallel."""
    with Site() as site, Upstream("h2") as up, serve(site, [up], h2_streams=100):
        c = H2T.plain(site.plain, timeout=10)
        t0 = time.monotonic()
        sids = [c.request("/slow/500") for _ in range(50)]
        for sid in sids:
            h, body = c.response(sid)
            assert h[b":status"] == b"200" and body == b"slow h2", (h, body)
        took = time.monotonic() - t0
        c.close()
        assert took < 3, "50 requests of 0.5 s took %.1f s" % took
        st = up.stats()
        assert st["counts"]["/slow/500"] == 50 and st["conns"] == 1, st["conns"]


if __name__ == "__main__":
    main(globals())
