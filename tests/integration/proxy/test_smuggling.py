#!/usr/bin/python3
"""test_smuggling.py — HTTP/1.1 request smuggling attempts sent to sluice
(CL+TE, differing Content-Length, bad chunk sizes, obs-fold, ...), each
followed by a would-be second request: 400, the connection closed, and the
upstream's counters show that nothing reached it; a well-formed pipelined
pair on the same setup does reach it, so the counters can see."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import Site, Upstream, h1_exchange, main, serve  # noqa: E402

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

# Rejected from the header section alone: the upstream must not even see a
# request start.
HEAD_ATTACKS = {
    "cl_te": b"POST /id HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_cl": b"POST /id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 6\r\n\r\n0\r\n\r\n",
    "cl_mismatch": b"POST /id HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Content-Length: 41\r\n\r\nhello",
    "cl_list": b"POST /id HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 41\r\n\r\nhello",
    "cl_sign": b"POST /id HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "obs_fold": b"POST /id HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n"
                b"Content-Length: 5\r\n\r\nhello",
    "space_before_colon": b"POST /id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
                          b"Content-Length: 5\r\n\r\nhello",
    "te_chunked_twice": b"POST /id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_http10": b"POST /id HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n",
    "two_hosts": b"GET /id HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
}

# Rejected in the body: a request may have started upstream, but none may
# complete there, and the request behind it must never be seen.
BODY_ATTACKS = {
    "chunk_size_bad": b"POST /id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk_size_negative": b"POST /id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"-5\r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflow": b"POST /id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"10000000000000005\r\nhello\r\n0\r\n\r\n",
    "chunk_data_no_crlf": b"POST /id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhelloXX0\r\n\r\n",
}


def attack(site, name, raw):
    # sluice answers from the bytes of one read: a second response would be quick
    status, hdrs, body, _, rest = h1_exchange(site.plain, raw + SMUGGLED, quiet=0.2)
    assert status == 400, "%s: status %d %r %r" % (name, status, hdrs, body)
    assert b"HTTP/1.1" not in rest, "%s: a second response followed: %r" % (name, rest[:200])


def test_smuggling_rejected_and_not_forwarded():
    with Site() as site, Upstream("h1") as up, serve(site, [up]):
        for name, raw in HEAD_ATTACKS.items():
            attack(site, name, raw)
        st = up.stats()
        assert st["started"] == {"/_stats": 1} and not st["errors"], st
        for name, raw in BODY_ATTACKS.items():
            attack(site, name, raw)
        st = up.stats()
        assert st["counts"] == {}, "forwarded whole: %s" % st["counts"]
        assert "/smuggled" not in st["started"], st["started"]
        # control: the same framing done right gets through, both requests
        ok = (b"POST /id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED)
        status, _, body, _, rest = h1_exchange(site.plain, ok)
        assert status == 200 and body == b"h1", (status, body)
        assert rest.startswith(b"HTTP/1.1 404"), rest[:200]
        assert up.stats()["counts"] == {"/id": 1, "/smuggled": 1}, up.stats()["counts"]


if __name__ == "__main__":
    main(globals())
