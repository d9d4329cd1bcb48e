#!/usr/bin/python3
"""test_headers.py — what the proxy adds and removes: via, x-forwarded-for
(appended), x-forwarded-proto, forwarded, hop-by-hop fields removed in both
directions, Host <-> :authority, the route's host override, and path and
query passed unchanged; checked in the upstream's own record of the request."""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import (H2T, Site, Upstream, curl, h1_exchange, hdr, main,  # noqa: E402
                       route_block, serve)

HOP = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
       "x-hop")
TARGET = "/headers?a=1&b=%20x&c=/d/../e"


def fields(entry):
    return sorted(k for k, _ in entry["headers"])


def test_forward_headers_h1_client():
    with Site() as site, Upstream("h1") as up, serve(site, [up]):
        raw = ("GET %s HTTP/1.1\r\nHost: front.test:8080\r\nX-Forwarded-For: 10.1.2.3\r\n"
               "Connection: keep-alive, x-hop\r\nx-hop: secret\r\nKeep-Alive: timeout=5\r\n"
               "Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Custom: a\r\n"
               "X-Custom: b\r\n\r\n" % TARGET).encode()
        status, hdrs, body, _, _ = h1_exchange(site.plain, raw)
        assert status == 200, (status, hdrs, body)
        e = json.loads(body)
        assert e["method"] == "GET" and e["target"] == TARGET, e
        assert hdr(e, "host") == ["front.test:8080"], e["headers"]
        assert hdr(e, "via") == ["1.1 sluice"], e["headers"]
        assert hdr(e, "x-forwarded-for") == ["10.1.2.3, 127.0.0.1"], e["headers"]
        assert hdr(e, "x-forwarded-proto") == ["http"], e["headers"]
        assert hdr(e, "forwarded") == [], e["headers"]  # off unless configured
        assert ", ".join(hdr(e, "x-custom")) == "a, b", e["headers"]
        for h in HOP:
            if h == "connection":
                # sluice may speak for its own upstream connection, not the client's
                assert all("x-hop" not in v for v in hdr(e, h)), e["headers"]
            else:
                assert hdr(e, h) == [], (h, e["headers"])
        assert dict(hdrs).get("via") == "1.1 sluice", hdrs


def test_forward_headers_h2_client():
    with Site() as site, Upstream("h1") as up, serve(site, [up]):
        c = H2T.plain(site.plain)
        sid = c.request(TARGET, authority="front.test:8443",
                        extra=[("x-forwarded-for", "10.1.2.3"), ("te", "trailers"),
                               ("x-custom", "a")])
        h, body = c.response(sid)
        assert h[b":status"] == b"200", (h, body)
        assert h.get(b"via") == b"1.1 sluice", h
        e = json.loads(body)
        assert e["method"] == "GET" and e["target"] == TARGET, e
        # :authority becomes the one Host field of the HTTP/1.1 request
        assert hdr(e, "host") == ["front.test:8443"], e["headers"]
        assert hdr(e, "via") == ["2 sluice"], e["headers"]
        assert hdr(e, "x-forwarded-for") == ["10.1.2.3, 127.0.0.1"], e["headers"]
        assert hdr(e, "x-forwarded-proto") == ["http"], e["headers"]
        assert hdr(e, "x-custom") == ["a"], e["headers"]
        assert not [k for k, _ in e["headers"] if k.startswith(":")], e["headers"]
        c.close()


def test_forward_headers_h2_upstream():
    """An HTTP/1.1 client's Host becomes :authority; no connection-specific
    field may reach an HTTP/2 upstream (it would be a protocol error)."""
    with Site() as site, Upstream("h2") as up, serve(site, [up]):
        raw = ("GET %s HTTP/1.1\r\nHost: front.test:8080\r\nConnection: keep-alive, x-hop\r\n"
               "x-hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
               "X-Forwarded-For: 10.1.2.3\r\n\r\n" % TARGET).encode()
        status, hdrs, body, _, _ = h1_exchange(site.plain, raw)
        assert status == 200, (status, hdrs, body)
        assert dict(hdrs).get("via") == "2 sluice", hdrs
        e = json.loads(body)
        assert hdr(e, ":authority") == ["front.test:8080"], e["headers"]
        assert hdr(e, ":path") == [TARGET] and hdr(e, ":method") == ["GET"], e["headers"]
        assert hdr(e, ":scheme") == ["http"], e["headers"]
        assert hdr(e, "host") in ([], ["front.test:8080"]), e["headers"]
        assert hdr(e, "te") == ["trailers"], e["headers"]
        assert hdr(e, "via") == ["1.1 sluice"], e["headers"]
        assert hdr(e, "x-forwarded-for") == ["10.1.2.3, 127.0.0.1"], e["headers"]
        for h in HOP:
            assert hdr(e, h) == [], (h, e["headers"])


def test_route_host_and_forwarded():
    """route { host = ... } replaces the Host sent upstream; forwarded = {...}
    switches each field; over TLS the proto is https."""
    with Site() as site, Upstream("h1") as up:
        route = route_block(host="backend.internal",
                            forwarded={"via": False, "x_forwarded_for": False,
                                       "x_forwarded_proto": True, "forwarded": True})
        with serve(site, [up], route=route, listen_tls=True):
            r = curl(site.tls, "/headers", proto="h2", cafile=site.cert)
            assert r.status == 200 and r.version == "2", r
            e = json.loads(r.body)
            assert hdr(e, "host") == ["backend.internal"], e["headers"]
            assert hdr(e, "via") == [], e["headers"]
            assert hdr(e, "x-forwarded-for") == [], e["headers"]
            assert hdr(e, "x-forwarded-proto") == ["https"], e["headers"]
            assert hdr(e, "forwarded") == [
                'for=127.0.0.1;proto=https;host="127.0.0.1:%d"' % site.tls], e["headers"]


def test_response_hop_by_hop_removed():
    with Site() as site, Upstream("h1") as up, serve(site, [up]):
        for proto in ("h1", "h2c"):
            r = curl(site.plain, "/hop", proto=proto)
            assert r.status == 200 and r.body == b"hop\n", (proto, r)
            assert r.headers.get("x-kept") == "yes", (proto, r.headers)
            for h in ("x-resp-hop", "keep-alive", "proxy-connection"):
                assert h not in r.headers, (proto, h, r.headers)
            assert "x-resp-hop" not in r.headers.get("connection", ""), (proto, r.headers)
            assert r.headers.get("via") == "1.1 sluice", (proto, r.headers)


if __name__ == "__main__":
    main(globals())
