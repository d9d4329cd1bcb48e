#!/usr/bin/python3
"""test_tls.py — TLS on the `sluice` host: ALPN picks h2 or HTTP/1.1 (and
HTTP/1.1 without ALPN), SNI picks the certificate, a request for an
authority the connection's certificate does not cover gets 421 (RFC 9113
section 9.1.1), virtual hosts by :authority, and nghttp over TLS and h2c."""

import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import (H2, ROUTES, Site, Sluice, cert_der, h1_response, main,  # noqa: E402
                      make_cert, need, run, tls_connect)


def h1_get(sock, path="/", host="127.0.0.1"):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (
        path, host)).encode())
    return h1_response(sock)


def test_alpn():
    with Site() as site, Sluice(site.config(ROUTES, plain=False)):
        cases = [(["http/1.1"], "http/1.1"), (["h2"], "h2"), (["h2", "http/1.1"], "h2"),
                 (["http/1.1", "h2"], "h2"), (None, None), (["spdy/3.1", "foo"], None)]
        for offer, want in cases:
            with tls_connect(site.tls, offer) as s:
                got = s.selected_alpn_protocol()
                assert got == want, "offered %s: got %s, want %s" % (offer, got, want)
                if want == "h2":
                    c = H2(s)
                    sid = c.request("/", scheme="https")
                    h, body = c.response(sid)
                    assert h[b":status"] == b"200" and body == Site.INDEX, (offer, h, body)
                else:  # HTTP/1.1, whether agreed on or not negotiated at all
                    status, hdrs, body = h1_get(s)
                    assert status == 200 and body == Site.INDEX, (offer, status, body)


def sni_site(site):
    a_cert, _ = make_cert(site.dir, "a", ["DNS:a.test"])
    b_cert, _ = make_cert(site.dir, "b", ["DNS:b.test", "DNS:*.b.test"])
    cfg = site.config("""
tls_certificate { cert = "a.pem", key = "a.key" }
tls_certificate { cert = "b.pem", key = "b.key" }
route { authority = "b.test", path = "/", ret = { body = "this is b\\n" } }
""" + ROUTES, plain=False, cert=False)
    return cfg, a_cert, b_cert


def test_sni_selects_certificate():
    with Site() as site:
        cfg, a_cert, b_cert = sni_site(site)
        with Sluice(cfg):
            der = {"a": cert_der(a_cert), "b": cert_der(b_cert)}
            # name sent -> certificate expected; the first declared is the default
            for name, want in (("a.test", "a"), ("b.test", "b"), ("B.TEST", "b"),
                               ("x.b.test", "b"), ("c.test", "a"), (None, "a")):
                with tls_connect(site.tls, ["h2"], name) as s:
                    got = s.getpeercert(binary_form=True)
                    assert got == der[want], "SNI %s: not the %s.test certificate" % (name, want)
            # And a verifying client accepts each one for its own name.
            for name, cert in (("a.test", a_cert), ("b.test", b_cert)):
                with tls_connect(site.tls, ["h2"], name, cafile=cert) as s:
                    assert s.version() in ("TLSv1.2", "TLSv1.3"), s.version()
            need("openssl")
            rc, out, err = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % site.tls,
                                "-servername", "b.test", "-alpn", "h2"],
                               stdin=open(os.devnull), timeout=15, check=False)
            text = out.decode(errors="replace")
            assert "subject=CN = b.test" in text, text[-2000:]
            assert "ALPN protocol: h2" in text, text[-2000:]


def test_misdirected_421():
    with Site() as site:
        cfg, _, _ = sni_site(site)
        with Sluice(cfg):
            with tls_connect(site.tls, ["h2"], "a.test") as s:
                c = H2(s)
                want = [("b.test", b"421", None), ("a.test", b"200", Site.INDEX),
                        ("a.test:%d" % site.tls, b"200", Site.INDEX),
                        ("b.test:%d" % site.tls, b"421", None), ("A.TEST", b"200", Site.INDEX),
                        ("c.test", b"421", None)]
                for authority, status, body in want:
                    sid = c.request("/", scheme="https", authority=authority)
                    h, got = c.response(sid)
                    assert h[b":status"] == status, (authority, h)
                    if body is not None:
                        assert got == body, (authority, got)
            # The b.test connection reaches b.test's virtual host, not a.test's.
            with tls_connect(site.tls, ["h2"], "b.test") as s:
                c = H2(s)
                sid = c.request("/", scheme="https", authority="b.test")
                h, got = c.response(sid)
                assert (h[b":status"], got) == (b"200", b"this is b\n"), (h, got)
                sid = c.request("/", scheme="https", authority="a.test")
                h, _ = c.response(sid)
                assert h[b":status"] == b"421", h
            # HTTP/1.1 over TLS: the Host header decides the same way.
            with tls_connect(site.tls, ["http/1.1"], "a.test") as s:
                status, _, _ = h1_get(s, host="b.test")
                assert status == 421, status
            with tls_connect(site.tls, ["http/1.1"], "b.test") as s:
                status, _, body = h1_get(s, host="b.test")
                assert (status, body) == (200, b"this is b\n"), (status, body)


def test_nghttp():
    need("nghttp")
    with Site() as site, Sluice(site.config(ROUTES)):
        for url in ("https://127.0.0.1:%d/" % site.tls, "http://127.0.0.1:%d/" % site.plain):
            _, out, _ = run(["nghttp", "-nv", "-t", "10", url], timeout=20)
            text = out.decode(errors="replace")
            assert re.search(r"recv \(stream_id=\d+\) :status: 200", text), text[-3000:]
            assert re.search(r"recv DATA frame <length=%d, flags=0x01, stream_id=\d+>" % len(
                Site.INDEX), text), text[-3000:]
            assert "send GOAWAY frame" in text, text[-3000:]
            if url.startswith("https"):
                assert "The negotiated protocol: h2" in text, text[-3000:]
        # Several streams on one TLS connection; then an upload echoed back.
        base = "https://127.0.0.1:%d" % site.tls
        _, out, _ = run(["nghttp", "-nv", "-t", "10", base + "/", base + "/index.html",
                         base + "/missing"], timeout=20)
        text = out.decode(errors="replace")
        assert text.count(":status: 200") == 2 and ":status: 404" in text, text[-3000:]
        data = site.write("up.bin", os.urandom(200000))
        _, out, _ = run(["nghttp", "-nv", "-t", "10", "-d", data, base + "/echo"], timeout=20)
        text = out.decode(errors="replace")
        assert ":status: 200" in text, text[-3000:]
        got = sum(int(n) for n in re.findall(r"recv DATA frame <length=(\d+)", text))
        assert got == 200000, (got, text[-3000:])

if __name__ == "__main__":
    main(globals())
