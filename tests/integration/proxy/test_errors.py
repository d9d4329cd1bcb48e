#!/usr/bin/python3
"""test_errors.py — upstream failures: 502 on a refused connection, 504 when
the upstream does not answer within read_timeout, 502 with no live servers,
each with its log line naming the upstream and server; retries on another
server when safe (a refused connect; a GET whose server reset it) and not
when not (a POST with a body the server has read)."""

import os
import re
import sys
import time
from contextlib import ExitStack

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import (Site, Upstream, curl, free_port, log_lines, main, serve,  # noqa: E402
                       wait_log)


def test_502_connect_refused():
    dead = "127.0.0.1:%d" % free_port()
    with Site() as site, serve(site, [dead], tries=1, max_fails=10) as sl:
        for proto in ("h2c", "h1"):
            r = curl(site.plain, "/id", proto=proto)
            assert r.status == 502, (proto, r)
        lines = wait_log(sl, re.escape("upstream app server %s: connect failed: "
                                       "Connection refused" % dead), count=2)
        assert all(ln.rstrip().endswith("upstream app server %s: connect failed: "
                                        "Connection refused" % dead) for ln in lines), lines
        access = wait_log(sl, r"^\S+ GET \S+ /id ", count=2)
        assert all(ln.rstrip().endswith(" upstream=" + dead) for ln in access), access


def test_504_read_timeout():
    # max_fails: a timeout counts as a failure; keep the server up for the last check
    with Site() as site, Upstream("h1") as up, serve(site, [up], read_timeout=0.5, tries=1,
                                                      max_fails=10) as sl:
        t0 = time.monotonic()
        r = curl(site.plain, "/stall", proto="h2c")
        took = time.monotonic() - t0
        assert r.status == 504, r
        assert 0.4 < took < 3, "504 after %.2f s with read_timeout 0.5 s" % took
        wait_log(sl, re.escape("upstream app server %s: read timed out after 500 ms" % up.addr))
        # the upstream got the request once: a timeout is not retried on it
        assert up.stats()["started"].get("/stall") == 1, up.stats()["started"]
        r = curl(site.plain, "/slow/100", proto="h1")
        assert r.status == 200 and r.body == b"slow h1", r


def test_502_no_live_servers():
    dead = ["127.0.0.1:%d" % free_port() for _ in range(2)]
    with Site() as site, serve(site, dead, tries=2, max_fails=1, fail_timeout=30) as sl:
        r = curl(site.plain, "/id")
        assert r.status == 502, r
        for d in dead:
            wait_log(sl, re.escape("upstream app server %s: down" % d))
        r = curl(site.plain, "/id")
        assert r.status == 502, r
        wait_log(sl, re.escape("upstream app: no live servers"))
        # the servers that are down were not tried again
        assert len(log_lines(sl, "connect failed")) == 2, sl.stderr()
    # A lone server is never marked down (as in nginx): each request tries it.
    with Site() as site, serve(site, dead[:1], tries=1, max_fails=1, fail_timeout=30) as sl:
        for _ in range(2):
            r = curl(site.plain, "/id")
            assert r.status == 502, r
        wait_log(sl, "connect failed", count=2)
        assert not log_lines(sl, ": down"), sl.stderr()


def test_retry_after_connect_refused():
    dead = "127.0.0.1:%d" % free_port()
    with Site() as site, Upstream("h1", name="live") as live, \
            serve(site, [dead, live], tries=2, max_fails=100) as sl:
        for i in range(6):
            r = curl(site.plain, "/id", proto="h1" if i % 2 else "h2c")
            assert r.status == 200 and r.body == b"live", (i, r)
        assert live.count("/id") == 6
        n = len(log_lines(sl, re.escape("server %s: connect failed: Connection refused" % dead)))
        assert n >= 1, "no request tried the dead server first:\n" + sl.stderr()


def test_retry_after_server_dies():
    """The first server dies while the proxy runs: GETs still succeed."""
    with ExitStack() as st:
        site = st.enter_context(Site())
        a = st.enter_context(Upstream("h1", name="a"))
        b = st.enter_context(Upstream("h1", name="b"))
        sl = st.enter_context(serve(site, [a, b], tries=2, max_fails=100))
        got = {curl(site.plain, "/id").body for _ in range(4)}
        assert got == {b"a", b"b"}, got
        a.kill()
        for i in range(6):
            r = curl(site.plain, "/id", proto="h1" if i % 2 else "h2c")
            assert r.status == 200 and r.body == b"b", (i, r)
        wait_log(sl, re.escape("upstream app server %s: connect failed" % a.addr))


def test_retry_get_after_reset():
    """A server that reads the request and resets: a GET without a body is
    safe to send again, to the other server."""
    with ExitStack() as st:
        site = st.enter_context(Site())
        bad = st.enter_context(Upstream("h1", name="bad", reset=True))
        good = st.enter_context(Upstream("h1", name="good"))
        st.enter_context(serve(site, [bad, good], tries=2, max_fails=100))
        for i in range(6):
            r = curl(site.plain, "/id", proto="h1" if i % 2 else "h2c")
            assert r.status == 200 and r.body == b"good", (i, r)
        assert good.count("/id") == 6
        assert bad.count("/id") >= 1, "round robin never chose the resetting server"


def test_post_with_body_not_retried():
    """The same servers, POSTs with a body: the one that read it and reset
    got the only copy; the client gets 502, the other server nothing."""
    with ExitStack() as st:
        site = st.enter_context(Site())
        bad = st.enter_context(Upstream("h1", name="bad", reset=True))
        good = st.enter_context(Upstream("h1", name="good"))
        sl = st.enter_context(serve(site, [bad, good], tries=2, max_fails=100))
        body = os.urandom(3000)
        site.write("body.bin", body)
        codes = []
        for i in range(6):
            r = curl(site.plain, "/echo", "--data-binary", "@" + site.path("body.bin"),
                     proto="h1" if i % 2 else "h2c")
            codes.append(r.status)
            assert r.status in (200, 502), (i, r)
            if r.status == 200:
                assert r.body == body, (i, len(r.body))
        bad_n, good_n = bad.count("/echo"), good.count("/echo")
        assert codes.count(502) >= 1, "no POST went to the resetting server: %s" % codes
        assert codes.count(502) == bad_n and codes.count(200) == good_n, (
            "codes %s; the resetting server read %d, the good one %d (retried?)" % (
                codes, bad_n, good_n))
        assert all(e["body_len"] == 3000 for e in good.stats()["log"]), "partial bodies"
        wait_log(sl, re.escape("upstream app server %s" % bad.addr))


if __name__ == "__main__":
    main(globals())
