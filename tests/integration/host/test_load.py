#!/usr/bin/python3
"""test_load.py — h2load against `sluice`: thousands of requests over many
connections on h2c, h2 over TLS and HTTP/1.1 with zero failures, and the
same while SIGHUP reloads a changing config ten times: no request fails,
new connections see the new config, open ones keep going."""

import os
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import (H2, ROUTES, Site, Sluice, free_port, h2load_counts, main, need,  # noqa: E402
                      run, tls_connect)


def h2load(*args, n=5000, timeout=30):
    need("h2load")
    rc, out, err = run(["h2load", "-n", str(n)] + list(args), timeout=timeout, check=False)
    total, ok, failed, errored, tmo, s2xx = h2load_counts(out)
    assert (total, ok, failed, errored, tmo, s2xx) == (n, n, 0, 0, 0, n), \
        "h2load %s: %d/%d succeeded, %d failed, %d errored, %d timeout, %d 2xx\n%s" % (
            " ".join(args), ok, total, failed, errored, tmo, s2xx,
            out.decode(errors="replace")[-2000:])
    assert rc == 0, err


def test_h2load_h2c():
    with Site() as site, Sluice(site.config(ROUTES, tls=False)):
        h2load("-c", "20", "-m", "10", "http://127.0.0.1:%d/" % site.plain)


def test_h2load_tls():
    with Site() as site, Sluice(site.config(ROUTES, plain=False)):
        h2load("-c", "20", "-m", "10", "https://127.0.0.1:%d/" % site.tls)


def test_h2load_h1():
    with Site() as site, Sluice(site.config(ROUTES)):
        # Plain text: keep-alive with pipelining (10 requests in flight).
        h2load("--h1", "-c", "20", "-m", "10", "http://127.0.0.1:%d/" % site.plain)
        # TLS with ALPN http/1.1, one request at a time per connection.
        h2load("--h1", "-c", "20", "-m", "1", "https://127.0.0.1:%d/" % site.tls)


def reload_config(site, version):
    return site.config(ROUTES + 'route { path = "/r", ret = { body = "v%d\\n" } }\n' % version,
                       tls=False)


def get_r(port):
    c = H2.plain(port)
    try:
        h, body = c.response(c.request("/r"))
        assert h[b":status"] == b"200", h
        return body
    finally:
        c.close()


def test_sighup_reload_under_load():
    need("h2load")
    with Site() as site, Sluice(reload_config(site, 0)) as s:
        old = H2.plain(site.plain)  # open before any reload: keeps its config
        old.handshake()
        assert old.response(old.request("/r"))[1] == b"v0\n"
        url = "http://127.0.0.1:%d/r" % site.plain
        cmd = ["h2load", "-n", "30000", "-c", "10", "-m", "10", url]
        runs, version, deadline = [], 0, time.monotonic() + 40
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            while version < 10:
                assert time.monotonic() < deadline, "reloads took too long"
                if load.poll() is not None:  # finished early: keep the load going
                    runs.append(load.communicate())
                    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                time.sleep(0.2)
                version += 1
                reload_config(site, version)
                s.signal(signal.SIGHUP)
                # New connections get the new config (reload is asynchronous).
                want = b"v%d\n" % version
                until = time.monotonic() + 3
                while get_r(site.plain) != want:
                    assert time.monotonic() < until, "v%d not served 3 s after SIGHUP" % version
                    time.sleep(0.02)
            runs.append(load.communicate(timeout=30))
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        for out, err in runs:
            total, ok, failed, errored, tmo, s2xx = h2load_counts(out)
            assert (ok, failed, errored, tmo, s2xx) == (total, 0, 0, 0, total), \
                "during reloads: %d/%d succeeded, %d failed, %d errored\n%s" % (
                    ok, total, failed, errored, out.decode(errors="replace")[-2000:])
        # The connection opened before the reloads: no GOAWAY, old config.
        h, body = old.response(old.request("/r"))
        assert (h[b":status"], body) == (b"200", b"v0\n"), (h, body)
        assert old.goaways == [], old.goaways
        old.close()
        assert "reload failed" not in s.stderr(), s.stderr()[-2000:]


def test_sighup_changes_listeners():
    """A reload that moves the plain listener: the new address serves, the
    dropped one refuses, and the TLS listener (kept) never stops."""
    with Site() as site:
        moved = free_port()
        with Sluice(site.config(ROUTES)) as s:
            c = H2.plain(site.plain)
            assert c.response(c.request("/"))[1] == Site.INDEX
            c.close()
            cfg = open(site.config(ROUTES)).read().replace(
                "127.0.0.1:%d\"" % site.plain, "127.0.0.1:%d\"" % moved)
            site.write("sluice.lua", cfg)
            s.signal(signal.SIGHUP)
            until = time.monotonic() + 3
            while True:
                try:
                    c = H2.plain(moved)
                    break
                except OSError:
                    assert time.monotonic() < until, "new listener not up 3 s after SIGHUP"
                    time.sleep(0.05)
            assert c.response(c.request("/"))[1] == Site.INDEX
            c.close()
            until = time.monotonic() + 3
            while True:
                try:
                    socket.create_connection(("127.0.0.1", site.plain), timeout=1).close()
                except ConnectionRefusedError:
                    break
                assert time.monotonic() < until, "dropped listener still accepts"
                time.sleep(0.05)
            t = tls_connect(site.tls, alpn=["h2"], server_hostname="localhost")
            t.close()
            assert "no longer listening on 127.0.0.1:%d" % site.plain in s.stderr()


if __name__ == "__main__":
    main(globals())
