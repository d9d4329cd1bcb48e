#!/usr/bin/python3
"""test_bodies.py — bodies through the proxy: 20 MiB downloads and uploads
over HTTP/1.1 and HTTP/2 upstreams from HTTP/1.1 and h2c clients (checked by
sha256 at both ends), request bodies chunked by an HTTP/1.1 client or
streamed without a length by an HTTP/2 one, and trailers both ways."""

import os
import socket
import subprocess
import sys
from contextlib import ExitStack

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import (H1Reader, H2T, MiB, Site, Upstream, curl, hdr, main,  # noqa: E402
                       pattern, serve, sha)

BIG = 20 * MiB


def check_download(kind):
    with Site() as site, Upstream(kind) as up, serve(site, [up]):
        want = sha(pattern(BIG))
        for proto in ("h2c", "h1"):
            for path in ("/size/%d" % BIG, "/chunked/%d" % BIG):
                r = curl(site.plain, path, proto=proto)
                assert r.status == 200, (proto, path, r)
                assert len(r.body) == BIG and sha(r.body) == want, (
                    "%s %s: %d bytes, sha %s" % (proto, path, len(r.body), sha(r.body)))
                if path.startswith("/size"):
                    assert r.headers.get("content-length") == str(BIG), (proto, r.headers)


def test_get_20m_h1_upstream():
    check_download("h1")


def test_get_20m_h2_upstream():
    check_download("h2")


def upload(site, up, proto, extra, length_header):
    """POST the 20 MiB file to /echo; the echo and the upstream's record of
    the body must match it."""
    data_path = site.path("upload.bin")
    want = sha(open(data_path, "rb").read())
    before = len(up.stats()["log"])
    r = curl(site.plain, "/echo", *extra, proto=proto)
    assert r.status == 200, (proto, r)
    assert len(r.body) == BIG and sha(r.body) == want, "%s: echo %d bytes" % (proto, len(r.body))
    log = up.stats()["log"][before:]
    assert len(log) == 1, log
    e = log[0]
    assert e["method"] == "POST" and e["body_len"] == BIG and e["body_sha256"] == want, e
    if up.kind == "h1":
        cl, te = hdr(e, "content-length"), hdr(e, "transfer-encoding")
        if length_header:
            assert cl == [str(BIG)] and te == [], (proto, e["headers"])
        else:
            # no length known: the only framing left is chunked
            assert cl == [] and te == ["chunked"], (proto, e["headers"])
    else:
        want_cl = [str(BIG)] if length_header else []
        assert hdr(e, "content-length") == want_cl, (proto, e["headers"])


def check_upload(kind):
    with Site() as site, Upstream(kind) as up, serve(site, [up]):
        site.write("upload.bin", os.urandom(BIG))
        f = "@" + site.path("upload.bin")
        for proto in ("h2c", "h1"):
            # with content-length
            upload(site, up, proto, ["--data-binary", f, "-H", "content-type: x/y"], True)
        # HTTP/1.1 client, chunked request body
        upload(site, up, "h1", ["-X", "POST", "-T", site.path("upload.bin"),
                                "-H", "transfer-encoding: chunked"], False)
        # HTTP/2 client, DATA frames without content-length (read from stdin)
        with open(site.path("upload.bin"), "rb") as stdin:
            r = curl_stdin(site, stdin)
        assert r[0] == 200, r[:2]
        assert len(r[1]) == BIG and sha(r[1]) == sha(open(site.path("upload.bin"), "rb").read())
        e = up.stats()["log"][-1]
        assert e["body_len"] == BIG and hdr(e, "content-length") == [], e["headers"]
        if kind == "h1":
            assert hdr(e, "transfer-encoding") == ["chunked"], e["headers"]


def curl_stdin(site, stdin):
    """An h2c POST whose body curl reads from stdin: no content-length."""
    p = subprocess.run(["curl", "-sS", "--max-time", "50", "--http2-prior-knowledge",
                        "-X", "POST", "-T", "-", "-w", "\n%{http_code}",
                        "http://127.0.0.1:%d/echo" % site.plain],
                       stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), body


def test_post_20m_h1_upstream():
    check_upload("h1")


def test_post_20m_h2_upstream():
    check_upload("h2")


def check_trailers(kind, path):
    with ExitStack() as st:
        site = st.enter_context(Site())
        up = st.enter_context(Upstream(kind))
        st.enter_context(serve(site, [up]))
        n = 100000
        want = sha(pattern(n))
        # response trailers to an HTTP/2 client
        c = H2T.plain(site.plain)
        sid = c.request(path % n)
        h, body = c.response(sid)
        assert h[b":status"] == b"200" and body == pattern(n), (h, len(body))
        assert c.trailers.get(sid) == {b"x-checksum": want.encode()}, c.trailers
        # request trailers from an HTTP/2 client, echoed back as trailers
        payload = os.urandom(50000)
        sid = c.new_id()
        c.send(c.headers_frame(sid, c.req_headers("/echo", "POST"), end_stream=False))
        c.send_data(sid, payload)
        c.send_trailers(sid, [("x-client-sum", sha(payload))])
        h, body = c.response(sid)
        assert h[b":status"] == b"200" and body == payload, (h, len(body))
        assert c.trailers.get(sid) == {b"x-client-sum": sha(payload).encode(),
                                       b"x-checksum": sha(payload).encode()}, c.trailers.get(sid)
        e = up.stats()["log"][-1]
        assert e["trailers"] == [["x-client-sum", sha(payload)]], e
        c.close()
        # response trailers to an HTTP/1.1 client (which says it takes them)
        s = socket.create_connection(("127.0.0.1", site.plain), timeout=5)
        s.sendall(("GET %s HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\r\n" % (path % n)).encode())
        rd = H1Reader(s)
        status, hdrs, body, trailers = rd.response()
        assert status == 200 and body == pattern(n), (status, hdrs, len(body))
        assert dict(hdrs).get("transfer-encoding") == "chunked", hdrs
        assert trailers == [("x-checksum", want)], trailers
        # request trailers from an HTTP/1.1 client (chunked), same connection
        s.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
                  b"te: trailers\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-client-sum: "
                  + sha(b"hello world").encode() + b"\r\n\r\n")
        status, hdrs, body, trailers = rd.response()
        assert status == 200 and body == b"hello world", (status, hdrs, body)
        assert sorted(trailers) == [("x-checksum", sha(b"hello world")),
                                    ("x-client-sum", sha(b"hello world"))], trailers
        e = up.stats()["log"][-1]
        assert e["trailers"] == [["x-client-sum", sha(b"hello world")]], e
        s.close()


def test_trailers_h1_upstream():
    check_trailers("h1", "/chunked/%d")


def test_trailers_h2_upstream():
    check_trailers("h2", "/trailers/%d")


if __name__ == "__main__":
    main(globals())
