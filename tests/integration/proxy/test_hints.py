#!/usr/bin/python3
"""test_hints.py — an upstream's 103 Early Hints passed through (RFC 8297):
curl sees the upstream's 103 with its link before the 200, over HTTP/2 (TLS
and h2c) and HTTP/1.1, from HTTP/1.1 and HTTP/2 upstreams, without the
103's hop-by-hop fields and without other 1xx; it is passed on as it
arrives, not with the response; a route's own hints go first; HTTP/1.0
clients get none. And a pushed path that a proxy route serves comes from
the upstream."""

import os
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import (H2T, Site, Skip, Upstream, h1_exchange, main, need,  # noqa: E402
                       pattern, route_block, run, serve)

LINK = "</hinted.css>; rel=preload; as=style"
ROUTE_LINK = "</route.js>; rel=preload; as=script"


def curl_heads(port, path, proto, tls=False):
    """curl -v: the response heads it saw, in order, as (status, [(name,
    value)]), and the body."""
    need("curl")
    scheme = "https" if tls else "http"
    cmd = ["curl", "-sv", "--max-time", "20", proto] + (["-k"] if tls else [])
    _, out, err = run(cmd + ["%s://127.0.0.1:%d%s" % (scheme, port, path)])
    heads = []
    for line in err.decode("latin-1").splitlines():
        if line.startswith("< HTTP/"):
            heads.append((int(line.split()[2]), []))
        elif line.startswith("< ") and heads and ":" in line:
            k, _, v = line[2:].partition(":")
            heads[-1][1].append((k.strip().lower(), v.strip()))
    return heads, out


CLIENTS = (("--http2", True), ("--http2-prior-knowledge", False), ("--http1.1", False),
           ("--http1.1", True))


def check_passed_through(kind):
    with Site() as site, Upstream(kind) as up, serve(site, [up], listen_tls=True):
        for proto, tls in CLIENTS:
            heads, body = curl_heads(site.tls if tls else site.plain, "/hints", proto, tls)
            what = (kind, proto, tls, heads)
            # Only the 103: the h1 upstream's 100 Continue stops at sluice.
            assert [st for st, _ in heads] == [103, 200], what
            assert heads[0][1] == [("link", LINK)], what  # hop-by-hop fields gone
            assert body == b"hinted\n", (what, body)
            assert dict(heads[1][1]).get("x-server") == kind, what


def test_hints_from_h1_upstream():
    check_passed_through("h1")


def test_hints_from_h2_upstream():
    check_passed_through("h2")


def test_hints_passed_at_once():
    """The upstream answers 200 ms after its 103: the client has the 103
    long before the response."""
    for kind in ("h1", "h2"):
        with Site() as site, Upstream(kind) as up, serve(site, [up]):
            c = H2T.plain(site.plain)
            t0 = time.monotonic()
            sid = c.request("/hints")
            seen = {}

            def heads(f):
                if getattr(f, "stream_id", 0) == sid and hasattr(f, "headers"):
                    seen[dict(f.headers)[b":status"]] = time.monotonic() - t0
                return b"200" in seen
            c.frames_until(heads, timeout=10)
            _, body = c.response(sid)  # (the headers kept are the 103's)
            assert body == b"hinted\n", (kind, body)
            assert list(seen) == [b"103", b"200"], (kind, seen)
            assert seen[b"200"] - seen[b"103"] > 0.1, (kind, seen)
            c.close()


def test_hints_route_then_upstream():
    """A proxied route's own hints go at once; the upstream's follow."""
    for kind in ("h1", "h2"):
        with Site() as site, Upstream(kind) as up, \
                serve(site, [up], route=route_block(hints=[ROUTE_LINK])):
            for proto in ("--http2-prior-knowledge", "--http1.1"):
                heads, body = curl_heads(site.plain, "/hints", proto)
                what = (kind, proto, heads)
                assert [st for st, _ in heads] == [103, 103, 200], what
                assert heads[0][1] == [("link", ROUTE_LINK)], what
                assert heads[1][1] == [("link", LINK)], what
                assert body == b"hinted\n", what
            # An upstream without a 103: just the route's.
            heads, body = curl_heads(site.plain, "/id", "--http1.1")
            assert [st for st, _ in heads] == [103, 200], (kind, heads)
            assert body == kind.encode(), (kind, body)


def test_hints_not_to_http10():
    with Site() as site, Upstream("h1") as up, serve(site, [up]):
        status, hdrs, body, _, rest = h1_exchange(
            site.plain, b"GET /hints HTTP/1.0\r\nHost: x\r\n\r\n", quiet=0.3)
        assert (status, body) == (200, b"hinted\n"), (status, hdrs, body)
        assert rest == b"", rest


def test_push_of_proxied_path():
    """route { push = ... } naming a path of a proxy route: the promised
    stream is answered by the upstream, like a request for it."""
    try:
        import h2.config
        import h2.connection
        import h2.events
    except ImportError:
        raise Skip("python3-h2 not installed")
    routes = ('route { path = "/page", ret = { body = "page\\n" }, push = { "/size/70000" } }\n'
              + route_block())
    for kind in ("h1", "h2"):
        with Site() as site, Upstream(kind) as up, serve(site, [up], route=routes):
            sock = socket.create_connection(("127.0.0.1", site.plain), timeout=5)
            conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
            conn.initiate_connection()
            conn.send_headers(1, [(":method", "GET"), (":scheme", "http"),
                                  (":authority", "front.test"), (":path", "/page")],
                              end_stream=True)
            promised, heads, bodies, ended = {}, {}, {}, set()
            deadline = time.monotonic() + 10
            while not (1 in ended and promised and set(promised) <= ended):
                assert time.monotonic() < deadline, (kind, promised, heads, ended)
                sock.sendall(conn.data_to_send())
                data = sock.recv(1 << 20)
                assert data, "closed"
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.PushedStreamReceived):
                        promised[ev.pushed_stream_id] = dict(ev.headers)
                    elif isinstance(ev, h2.events.ResponseReceived):
                        heads[ev.stream_id] = dict(ev.headers)
                    elif isinstance(ev, h2.events.DataReceived):
                        bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        ended.add(ev.stream_id)
            sock.close()
            (pid, req), = promised.items()
            assert req[":path"] == "/size/70000" and req[":authority"] == "front.test", req
            assert bodies[1] == b"page\n", bodies.get(1)
            assert heads[pid][":status"] == "200" and heads[pid]["x-server"] == kind, heads
            assert heads[pid]["via"] in ("1.1 sluice", "2 sluice"), heads
            assert bodies[pid] == pattern(70000), (kind, len(bodies.get(pid, b"")))
            log = up.stats()["log"]  # h1 entries have a target, h2 ones a path
            e = [x for x in log if x.get("target", x.get("path")) == "/size/70000"]
            assert len(e) == 1, log


if __name__ == "__main__":
    main(globals())
