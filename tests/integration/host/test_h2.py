#!/usr/bin/python3
"""test_h2.py — frame-level HTTP/2 through the `sluice` host with a raw
client (hyperframe + hpack): rapid reset ends in GOAWAY ENHANCE_YOUR_CALM,
a header list over the limit gets 431 and the connection stays usable, and
HEAD answers carry no body (HTTP/2 and HTTP/1.1)."""

import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import ENHANCE_YOUR_CALM, H2, ROUTES, Site, Sluice, hf, main, summary  # noqa: E402

RET = 'route { path = "/r", ret = { body = "r\\n" } }\n'


def test_rapid_reset():
    with Site() as site, Sluice(site.config(ROUTES + RET, tls=False)) as s:
        c = H2.plain(site.plain)
        c.handshake()
        # HEADERS + RST_STREAM(CANCEL) pairs, far over rst_received {200, 50}.
        batch = []
        try:
            for _ in range(2000):
                sid = c.new_id()
                batch.append(c.headers_frame(sid, c.req_headers("/r")))
                batch.append(hf.RstStreamFrame(sid, error_code=0x8))
                if len(batch) >= 200:
                    c.send(*batch)
                    batch = []
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may have hung up already; the GOAWAY is what counts
        f = c.expect_goaway(ENHANCE_YOUR_CALM, timeout=10)
        assert f.last_stream_id < 2 * 2000, f.last_stream_id
        c.sock.shutdown(socket.SHUT_WR)  # we close first: the server follows at once
        c.read_to_eof(timeout=5)
        assert not c.reset, "the connection ended in RST, not FIN"
        c.close()
        # The server is fine: a new connection is served.
        c = H2.plain(site.plain)
        sid = c.request("/r")
        h, body = c.response(sid)
        assert (h[b":status"], body) == (b"200", b"r\n"), (h, body)
        c.close()
        assert s.alive()


def test_header_list_431():
    cfg = ROUTES + RET + "http2 { max_header_list_size = 4096 }\n"
    with Site() as site, Sluice(site.config(cfg, tls=False)):
        c = H2.plain(site.plain)
        c.handshake()
        sid = c.request("/r", extra=[("x-big", "v" * 6000)])
        h, _ = c.response(sid)
        assert h[b":status"] == b"431", h
        # Many small fields over the limit too.
        sid = c.request("/r", extra=[("x-f%d" % i, "y" * 60) for i in range(80)])
        h, _ = c.response(sid)
        assert h[b":status"] == b"431", h
        # The HPACK state stayed in sync: the same connection still works.
        sid = c.request("/r", extra=[("x-small", "ok")])
        h, body = c.response(sid)
        assert (h[b":status"], body) == (b"200", b"r\n"), (h, body)
        c.close()


def test_head_has_no_body():
    """RFC 9110 section 9.3.2: a HEAD response has no content, whatever its
    status (content-length still says what a GET would get)."""
    with Site() as site, Sluice(site.config(ROUTES + RET, tls=False)):
        c = H2.plain(site.plain)
        c.handshake()
        for path, status in (("/index.html", b"200"), ("/r", b"200"), ("/missing", b"404")):
            sid = c.request(path, method="HEAD")
            f, seen = c.frames_until(lambda f: isinstance(f, hf.HeadersFrame) and
                                     f.stream_id == sid)
            h = dict(f.headers)
            assert h[b":status"] == status, (path, h)
            if path == "/index.html":
                assert h[b"content-length"] == str(len(Site.INDEX)).encode(), h
            # Nothing more on the stream: END_STREAM on HEADERS, and a PING
            # round trip shows no DATA was sent after it.
            c.send(hf.PingFrame(0, opaque_data=b"headtest"))
            _, seen = c.frames_until(lambda f: isinstance(f, hf.PingFrame) and "ACK" in f.flags)
            data = [x for x in seen if isinstance(x, hf.DataFrame)]
            assert "END_STREAM" in f.flags and not data, "HEAD %s: body sent: %s %s" % (
                path, f.flags, summary(seen))
        c.close()
        # HTTP/1.1: the head ends the response; nothing follows it.
        for path, status in (("/index.html", b"200"), ("/missing", b"404")):
            with socket.create_connection(("127.0.0.1", site.plain), timeout=5) as s:
                s.sendall(b"HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                          % path.encode())
                s.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    b = s.recv(4096)
                    assert b, data
                    data += b
                time.sleep(0.2)  # let a wrongly sent body arrive
                s.shutdown(socket.SHUT_WR)
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    data += b
                head, _, rest = data.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 " + status), head
                assert rest == b"", "HEAD %s over HTTP/1.1: body sent: %r" % (path, rest)


if __name__ == "__main__":
    main(globals())
