#!/usr/bin/python3
"""test_tls_upstream.py — TLS to upstreams: HTTP/2 (ALPN h2) and HTTP/1.1
servers whose certificate the configured CA file verifies, with SNI; with
another CA the handshake fails verification: 502 and a log line saying so,
and the server never gets a request."""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import Site, Upstream, curl, hostutil, main, pattern, serve, sha  # noqa: E402


def certs(site):
    """The upstream's certificate (localhost, 127.0.0.1) and an unrelated one."""
    good = hostutil.make_cert(site.dir, "upstream", ["DNS:localhost", "IP:127.0.0.1"])
    other = hostutil.make_cert(site.dir, "other", ["DNS:localhost", "IP:127.0.0.1"])
    return good, other


def check_verified(kind):
    with Site() as site:
        good, _ = certs(site)
        with Upstream(kind, tls=good) as up, serve(
                site, [up], tls={"ca": "upstream.pem", "sni": "localhost", "verify": True}) as sl:
            for proto in ("h2c", "h1"):
                r = curl(site.plain, "/size/1000000", proto=proto)
                assert r.status == 200 and sha(r.body) == sha(pattern(1000000)), (proto, r)
                r = curl(site.plain, "/id", proto=proto)
                assert r.status == 200 and r.body == kind.encode(), (proto, r)
            assert up.count("/id") == 2
            assert "verify" not in sl.stderr().lower(), sl.stderr()


def test_tls_upstream_h2_verified():
    check_verified("h2")


def test_tls_upstream_h1_verified():
    check_verified("h1")


def test_tls_upstream_wrong_ca():
    with Site() as site:
        good, other = certs(site)
        with Upstream("h2", tls=good) as up, serve(
                site, [up], tries=1, tls={"ca": "other.pem", "sni": "localhost"}) as sl:
            r = curl(site.plain, "/id")
            assert r.status == 502, r
            lines = [ln for ln in sl.stderr().splitlines()
                     if up.addr in ln and re.search("verif", ln, re.I)]
            assert lines, "no log line about verification:\n" + sl.stderr()
            assert up.stats()["started"] == {"/_stats": 1}, up.stats()["started"]


if __name__ == "__main__":
    main(globals())
