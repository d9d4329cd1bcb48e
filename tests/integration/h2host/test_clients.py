#!/usr/bin/python3
"""test_clients.py — real HTTP/2 clients (curl, nghttp, h2load) against
h2host over TCP with prior knowledge: exact bodies, sizes, digests, echo of
a large upload, trailers, and load runs where every request must succeed."""

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2util import Server, main, need, pattern  # noqa: E402


def run(cmd, timeout=30, stdin=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, stdin=stdin)
    assert p.returncode == 0, "%s: exit %d\n%s" % (cmd[0], p.returncode,
                                                   p.stderr.decode(errors="replace"))
    return p.stdout


def curl(*args, timeout=30):
    return run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", str(timeout - 5)]
               + list(args), timeout=timeout)


# -- curl -------------------------------------------------------------------

def test_curl_get_root():
    need("curl")
    with Server() as s:
        out = curl("-w", "\n%{http_version} %{http_code}", s.url("/"))
        assert out == b"hello from sluice\n\n2 200", out
        out = curl("-w", "%{http_version} %{http_code}", "-o", "/dev/null", s.url("/nope"))
        assert out == b"2 404", out


def test_curl_size_1m():
    need("curl")
    n = 1048576
    with Server() as s:
        with tempfile.NamedTemporaryFile() as f:
            out = curl("-o", f.name, "-w", "%{http_version} %{size_download}",
                       s.url("/size/%d" % n))
            assert out == b"2 %d" % n, out
            got = hashlib.sha256(open(f.name, "rb").read()).hexdigest()
        assert got == hashlib.sha256(pattern(n)).hexdigest()


def test_curl_echo_5m():
    need("curl")
    body = os.urandom(5 * 1024 * 1024)
    with Server() as s, tempfile.NamedTemporaryFile() as up, \
            tempfile.NamedTemporaryFile() as down:
        up.write(body)
        up.flush()
        # Expect: disabled so curl does not wait a second for a 100.
        out = curl("--data-binary", "@" + up.name, "-H", "Expect:",
                   "-H", "content-type: application/octet-stream",
                   "-o", down.name, "-w", "%{http_version} %{http_code}",
                   s.url("/echo"), timeout=40)
        assert out == b"2 200", out
        got = open(down.name, "rb").read()
        assert len(got) == len(body), (len(got), len(body))
        assert got == body


def test_curl_head_and_slow():
    need("curl")
    with Server() as s:
        out = curl("-I", s.url("/size/12345")).decode()
        assert out.startswith("HTTP/2 200"), out
        assert re.search(r"(?im)^content-length: 12345\r?$", out), out
        out = curl(s.url("/slow/100000"))
        assert out == pattern(100000)


# -- nghttp -----------------------------------------------------------------

def test_nghttp_settings_and_200():
    need("nghttp")
    with Server() as s:
        out = run(["nghttp", "-nv", "-t", "10", s.url("/")], timeout=20).decode()
        # The server's SETTINGS: its limits, as h2host's defaults set them.
        m = re.search(r"recv SETTINGS frame <length=\d+, flags=0x00, stream_id=0>\n"
                      r"((?:\s+[(\[].*\n)+)", out)
        assert m, out
        assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100]" in m.group(1), m.group(1)
        assert "[SETTINGS_MAX_HEADER_LIST_SIZE(0x06):65536]" in m.group(1), m.group(1)
        assert re.search(r"recv SETTINGS frame <length=0, flags=0x01, stream_id=0>", out), out
        assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
        assert re.search(r"recv DATA frame <length=18, flags=0x01", out), out


def test_nghttp_upload_echo():
    need("nghttp")
    body = os.urandom(1024 * 1024 + 17)
    with Server() as s, tempfile.NamedTemporaryFile() as up:
        up.write(body)
        up.flush()
        out = run(["nghttp", "-t", "20", "-d", up.name, s.url("/echo")], timeout=30)
        assert out == body, (len(out), len(body))


def test_nghttp_trailers():
    need("nghttp")
    with Server() as s, tempfile.NamedTemporaryFile() as up:
        out = run(["nghttp", "-v", "-t", "10", s.url("/trailers")], timeout=20).decode()
        want = "%08x" % zlib.crc32(b"this body is followed by trailers\n")
        assert re.search(r"recv \(stream_id=\d+\) x-checksum: " + want, out), out
        body = b"trailer body " * 1000
        up.write(body)
        up.flush()
        out = run(["nghttp", "-v", "-t", "10", "--trailer", "x-sig: abc",
                   "-d", up.name, s.url("/trailers")], timeout=20).decode()
        assert "x-checksum: %08x" % zlib.crc32(body) in out, out
        assert "x-request-trailer-x-sig: abc" in out, out


# -- h2load -----------------------------------------------------------------

def h2load(url, *args):
    out = run(["h2load"] + list(args) + [url], timeout=40).decode()
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out)
    assert m, out
    return [int(x) for x in m.groups()], out


def test_h2load_root():
    need("h2load")
    with Server() as s:
        (total, started, done, ok, failed, errored), out = h2load(
            s.url("/"), "-n", "2000", "-c", "10", "-m", "10", "-T", "20")
        assert (total, done, ok, failed, errored) == (2000, 2000, 2000, 0, 0), out
        assert "status codes: 2000 2xx" in out, out


def test_h2load_size_64k():
    need("h2load")
    with Server() as s:
        (total, started, done, ok, failed, errored), out = h2load(
            s.url("/size/65536"), "-n", "400", "-c", "4", "-m", "10", "-T", "20")
        assert (total, done, ok, failed, errored) == (400, 400, 400, 0, 0), out
        m = re.search(r"traffic: .*?\((\d+)\) total.*?\((\d+)\) data", out, re.S)
        assert m and int(m.group(2)) >= 400 * 65536, out


if __name__ == "__main__":
    main(globals())
