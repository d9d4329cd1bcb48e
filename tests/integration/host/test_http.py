#!/usr/bin/python3
"""test_http.py — curl against `sluice` on every protocol it speaks: h2c
with prior knowledge, h2 over TLS (ALPN), HTTP/1.1 over TLS and plain text.
Static files (exact bytes, HEAD, 404, conditional GET, ranges, path
traversal), echo of a 3 MiB body and the 413 body limit."""

import os
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import ROUTES, Site, Skip, Sluice, free_port, main, need, run  # noqa: E402

# name -> (curl options, scheme, which port, the %{http_version} curl reports)
PROTOCOLS = {
    "h2c": (["--http2-prior-knowledge"], "http", "plain", "2"),
    "h2": (["--http2"], "https", "tls", "2"),
    "h1-tls": (["--http1.1"], "https", "tls", "1.1"),
    "h1": (["--http1.1"], "http", "plain", "1.1"),
}


class Reply:
    def __init__(self, version, status, headers, body):
        self.version, self.status, self.headers, self.body = version, status, headers, body

    def __repr__(self):
        return "HTTP/%s %d %r %r" % (self.version, self.status, self.headers, self.body[:200])


def curl(site, proto, path, *args, timeout=30):
    """One request with curl; returns a Reply (headers: lower-case names)."""
    opts, scheme, port_kind, _ = PROTOCOLS[proto]
    port = site.tls if port_kind == "tls" else site.plain
    with tempfile.NamedTemporaryFile() as hdr, tempfile.NamedTemporaryFile() as body:
        cmd = ["curl", "-sS", "--max-time", str(timeout - 5), "--path-as-is",
               "-D", hdr.name, "-o", body.name, "-w", "%{http_version} %{http_code}"]
        if scheme == "https":
            cmd += ["--cacert", site.cert]
        cmd += opts + list(args) + ["%s://127.0.0.1:%d%s" % (scheme, port, path)]
        _, out, _ = run(cmd, timeout=timeout)
        version, code = out.decode().split()
        headers = {}
        for line in open(hdr.name, "rb").read().decode("latin-1").splitlines()[1:]:
            k, sep, v = line.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        return Reply(version, int(code), headers, open(body.name, "rb").read())


def check(reply, proto, status, body=None):
    assert reply.version == PROTOCOLS[proto][3], "%s: version %s, %r" % (
        proto, reply.version, reply)
    assert reply.status == status, "%s: status %d, want %d: %r" % (
        proto, reply.status, status, reply)
    if body is not None:
        assert reply.body == body, "%s: body %r, want %r" % (proto, reply.body[:200], body[:200])


def each(protocols, fn):
    """fn(proto) for every protocol; failures are collected so that one
    protocol's failure does not hide another's."""
    errors = []
    for proto in protocols:
        try:
            fn(proto)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("%s: %s: %s" % (proto, type(e).__name__, e))
    assert not errors, "\n".join(["failed on %d of %d protocols:" % (
        len(errors), len(protocols))] + errors)


def serve(site, extra=""):
    need("curl", "openssl")
    return Sluice(site.config(ROUTES + extra))


def test_curl_get_head_404():
    with Site() as site, serve(site):
        site.write("site/hello.txt", b"plain text\n")

        def one(proto):
            r = curl(site, proto, "/")
            check(r, proto, 200, Site.INDEX)
            assert r.headers["content-type"] == "text/html; charset=utf-8", r
            assert r.headers["content-length"] == str(len(Site.INDEX)), r
            r = curl(site, proto, "/hello.txt")
            check(r, proto, 200, b"plain text\n")
            assert r.headers["content-type"] == "text/plain; charset=utf-8", r
            # curl -I writes the head to -o; the body's absence is checked
            # frame by frame in test_h2.py (head_has_no_body).
            r = curl(site, proto, "/index.html", "-I")
            check(r, proto, 200)
            assert r.headers["content-length"] == str(len(Site.INDEX)), r
            assert "etag" in r.headers and "last-modified" in r.headers, r
            r = curl(site, proto, "/no/such/file")
            check(r, proto, 404)
            r = curl(site, proto, "/no/such/file", "-I")
            check(r, proto, 404)

        each(PROTOCOLS, one)


def test_curl_conditional_get():
    with Site() as site, serve(site):

        def one(proto):
            r = curl(site, proto, "/index.html")
            check(r, proto, 200, Site.INDEX)
            etag, lm = r.headers["etag"], r.headers["last-modified"]
            r = curl(site, proto, "/index.html", "-H", "If-None-Match: " + etag)
            check(r, proto, 304, b"")
            assert r.headers.get("etag") == etag, r
            r = curl(site, proto, "/index.html", "-H", 'If-None-Match: "x", ' + etag)
            check(r, proto, 304, b"")
            r = curl(site, proto, "/index.html", "-H", 'If-None-Match: "other"')
            check(r, proto, 200, Site.INDEX)
            r = curl(site, proto, "/index.html", "-H", "If-Modified-Since: " + lm)
            check(r, proto, 304, b"")
            r = curl(site, proto, "/index.html", "-H",
                     "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT")
            check(r, proto, 200, Site.INDEX)

        each(PROTOCOLS, one)


def test_curl_range():
    data = bytes(range(256)) * 40  # 10240 bytes
    with Site() as site, serve(site):
        site.write("site/data.bin", data)

        def one(proto):
            r = curl(site, proto, "/data.bin", "-r", "100-1099")
            check(r, proto, 206, data[100:1100])
            assert r.headers["content-range"] == "bytes 100-1099/10240", r
            assert r.headers["content-length"] == "1000", r
            r = curl(site, proto, "/data.bin", "-r", "10000-")
            check(r, proto, 206, data[10000:])
            assert r.headers["content-range"] == "bytes 10000-10239/10240", r
            r = curl(site, proto, "/data.bin", "-r", "-40")
            check(r, proto, 206, data[-40:])
            assert r.headers["content-range"] == "bytes 10200-10239/10240", r
            r = curl(site, proto, "/data.bin", "-r", "10240-20000")
            check(r, proto, 416)
            assert r.headers["content-range"] == "bytes */10240", r
            r = curl(site, proto, "/data.bin", "-r", "99999-")
            check(r, proto, 416)

        each(PROTOCOLS, one)


def test_path_traversal():
    secret = b"SECRET-OUTSIDE-THE-ROOT\n"
    attempts = ["/../secret.txt", "/../../../../../../etc/passwd", "/%2e%2e/secret.txt",
                "/%2E%2E/secret.txt", "/.%2e/secret.txt", "/%2e%2e%2fsecret.txt",
                "/..%2fsecret.txt", "/sub/..%2f..%2fsecret.txt", "/sub/../../secret.txt",
                "/%2fetc%2fpasswd", "/..%5csecret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
                "/./../secret.txt"]
    with Site() as site, serve(site):
        site.write("secret.txt", secret)
        os.mkdir(site.path("site/sub"))

        def one(proto):
            for path in attempts:
                r = curl(site, proto, path)
                assert r.status in (403, 404), "%s %s: %r" % (proto, path, r)
                assert r.version == PROTOCOLS[proto][3], r
                assert b"SECRET" not in r.body and b"root:" not in r.body, (proto, path, r)

        each(PROTOCOLS, one)


def test_echo_3m():
    body = os.urandom(3 * 1024 * 1024)
    with Site() as site, serve(site), tempfile.NamedTemporaryFile() as up:
        up.write(body)
        up.flush()

        def one(proto):
            r = curl(site, proto, "/echo", "--data-binary", "@" + up.name, "-H", "Expect:",
                     "-H", "content-type: application/x-test")
            check(r, proto, 200)
            assert len(r.body) == len(body), (proto, len(r.body))
            assert r.body == body, proto + ": echoed bytes differ"
            assert r.headers["content-type"] == "application/x-test", r

        each(PROTOCOLS, one)


def test_echo_chunked_upload():
    """A body of unknown length (chunked upload on HTTP/1.1, no
    content-length on HTTP/2) is echoed back in a body of unknown length:
    chunked coding on HTTP/1.1, which must be well formed."""
    body = os.urandom(300 * 1024 + 17)
    with Site() as site, serve(site), tempfile.NamedTemporaryFile() as up:
        up.write(body)
        up.flush()

        def one(proto):
            r = curl(site, proto, "/echo", "--data-binary", "@" + up.name, "-H", "Expect:",
                     "-H", "Transfer-Encoding: chunked")
            check(r, proto, 200)
            assert len(r.body) == len(body) and r.body == body, (proto, len(r.body))
            if proto.startswith("h1"):
                assert r.headers.get("transfer-encoding") == "chunked", r

        each(PROTOCOLS, one)


def test_body_limit_413():
    with Site() as site, serve(site, 'max_body "64k"\n'), \
            tempfile.NamedTemporaryFile() as big, tempfile.NamedTemporaryFile() as edge:
        big.write(os.urandom(100 * 1024))
        big.flush()
        exact = os.urandom(64 * 1024)
        edge.write(exact)
        edge.flush()

        def one(proto):
            r = curl(site, proto, "/echo", "--data-binary", "@" + big.name, "-H", "Expect:")
            check(r, proto, 413)
            r = curl(site, proto, "/echo", "--data-binary", "@" + edge.name, "-H", "Expect:")
            check(r, proto, 200, exact)

        each(PROTOCOLS, one)


def test_h1_keep_alive():
    """Several requests on one HTTP/1.1 connection: curl reuses it (one
    connect for all), with and without request bodies."""
    with Site() as site, serve(site):

        def one(proto):
            _, scheme, kind, _ = PROTOCOLS[proto]
            url = "%s://127.0.0.1:%d" % (scheme, site.tls if kind == "tls" else site.plain)
            t0 = time.monotonic()
            _, out, _ = run(["curl", "-sS", "--http1.1", "--max-time", "10", "--cacert",
                             site.cert, "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                             "-w", "%{http_code} %{num_connects}\\n",
                             url + "/", url + "/index.html", url + "/"], timeout=15)
            took = time.monotonic() - t0
            assert out.decode().split("\n")[:3] == ["200 1", "200 0", "200 0"], (proto, out)
            assert took < 1.5, "%s: %.2f s for three requests" % (proto, took)
            _, out, _ = run(["curl", "-sS", "--http1.1", "--max-time", "10", "--cacert",
                             site.cert, "-H", "Expect:", "--data-binary", "abc",
                             "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n",
                             url + "/echo", "--next", "--http1.1", "--cacert", site.cert,
                             "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n",
                             url + "/"], timeout=15)
            assert out.decode().split("\n")[:2] == ["200 1", "200 0"], (proto, out)

        each(("h1", "h1-tls"), one)


def test_ipv6_listeners():
    """Listeners on ::1 (TLS and plain) next to the IPv4 ones."""
    try:
        port6, tls6 = free_port(socket.AF_INET6), free_port(socket.AF_INET6)
    except OSError:
        raise Skip("no IPv6 loopback")
    with Site() as site, serve(site, 'listen { "[::1]:%d" }\nlisten { host = "::1", port = %d, '
                               'tls = true }\n' % (port6, tls6)):
        for opts, url, version in (
                (["--http2-prior-knowledge"], "http://[::1]:%d/" % port6, "2"),
                (["--http1.1"], "http://[::1]:%d/" % port6, "1.1"),
                (["--http2", "--cacert", site.cert], "https://[::1]:%d/" % tls6, "2"),
                (["--http2-prior-knowledge"], "http://127.0.0.1:%d/" % site.plain, "2")):
            _, out, _ = run(["curl", "-sS", "-g", "--max-time", "10", "-w", "\n%{http_version}"]
                            + opts + [url], timeout=15)
            assert out == Site.INDEX + b"\n" + version.encode(), (url, out)


if __name__ == "__main__":
    main(globals())
