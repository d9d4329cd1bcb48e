#!/usr/bin/python3
"""test_abuse.py — frame-level misbehaviour against h2host, one test per
abuse limit, each asserting the exact GOAWAY or RST_STREAM code, and that
the server lives on. Budgets are sluice's defaults (plugin/core/session.c):
RST_STREAM 200 burst + 50/s, PING and SETTINGS 50 + 10/s, empty DATA
100 + 20/s, PRIORITY 1000 + 200/s, provoked resets 100 + 20/s, 32
CONTINUATIONs and 4 x 64 KiB of header block, 64 KiB header list. Floods
send ten times the burst in one write; legitimate traffic stays far below."""

import os
import re
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2util import (CANCEL, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR,  # noqa: E402
                    PROTOCOL_ERROR, REFUSED_STREAM, SETTINGS_TIMEOUT, Raw, Server, hf,
                    main, pattern)

HELLO = b"hello from sluice\n"


def get_ok(c, path="/", body=HELLO):
    """A request on connection c is answered normally."""
    h, b, _ = c.response(c.request(path))
    assert h[b":status"] == b"200", h
    assert b == body, b[:100]


def fresh_get_ok(server):
    with Raw(server.port) as c:
        get_ok(c)


def flood_test(why, make_frames, setup=None):
    """Send the flood in one write; expect GOAWAY ENHANCE_YOUR_CALM for the
    reason given (its debug data), and a server that still serves others."""
    with Server() as s:
        with Raw(s.port) as c:
            ctx = setup(c) if setup else None
            c.send_bytes(b"".join(f.serialize() for f in make_frames(c, ctx)))
            g = c.expect_goaway(ENHANCE_YOUR_CALM)
            assert g.additional_data == why, g.additional_data
        fresh_get_ok(s)
        return g


def test_rapid_reset():
    def frames(c, _):
        for _ in range(2000):
            sid = c.new_id()
            yield c.headers_frame(sid, c.req_headers("/"))
            yield hf.RstStreamFrame(sid, error_code=CANCEL)
    g = flood_test(b"RST_STREAM flood", frames)
    assert g.last_stream_id < 4000, g.last_stream_id


def test_cancel_heavy_client():
    """Open, read a little, cancel, about 10 times a second for 5 s: a
    video player seeking. Never a GOAWAY; later requests still work."""
    with Server() as s, \
            Raw(s.port, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 16384}) as c:
        c.send(hf.WindowUpdateFrame(0, window_increment=(1 << 30)))
        end = time.monotonic() + 5.0
        cancelled = 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            sid = c.request("/size/10000000")
            c.frames_until(lambda f: isinstance(f, hf.DataFrame) and f.stream_id == sid
                           or isinstance(f, hf.GoAwayFrame) and _fail_goaway(f))
            c.send(hf.RstStreamFrame(sid, error_code=CANCEL))
            cancelled += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
        assert cancelled >= 25, cancelled  # ~50 unless the machine is very busy
        for _ in range(5):
            get_ok(c)
        get_ok(c, "/size/100000", pattern(100000))


def _fail_goaway(f):
    raise AssertionError("GOAWAY %#x: %s" % (f.error_code, f.additional_data))


def test_ping_flood():
    flood_test(b"PING flood",
               lambda c, _: (hf.PingFrame(0, opaque_data=b"%08d" % i) for i in range(500)))


def test_settings_flood():
    flood_test(b"SETTINGS flood", lambda c, _: (hf.SettingsFrame(0) for _ in range(500)))


def open_echo(c):
    """A POST /echo left open: a stream that may receive DATA."""
    sid = c.new_id()
    c.send(c.headers_frame(sid, c.req_headers("/echo", "POST"), end_stream=False))
    return sid


def test_empty_data_flood():
    flood_test(b"empty DATA flood", lambda c, sid: (hf.DataFrame(sid) for _ in range(1000)),
               setup=open_echo)


def test_priority_flood():
    def frames(c, _):
        for i in range(5000):
            yield hf.PriorityFrame(3 + 2 * (i % 50), depends_on=0, stream_weight=15)
    flood_test(b'PRIORITY flood', frames)


def test_continuation_flood():
    def frames(c, _):
        sid = c.new_id()
        yield c.headers_frame(sid, c.req_headers("/"), end_headers=False)
        for _ in range(300):
            yield hf.ContinuationFrame(sid)
    flood_test(b'too many CONTINUATION frames', frames)


def test_header_block_too_large():
    """Few CONTINUATIONs but more compressed bytes than 4 x the list limit."""
    def frames(c, _):
        sid = c.new_id()
        yield c.headers_frame(sid, c.req_headers("/"), end_headers=False)
        for i in range(20):  # 20 x 16 KiB = 320 KiB > 256 KiB
            yield hf.ContinuationFrame(sid, data=b"\x00" * 16384)
    flood_test(b'header block too large', frames)


def test_provoked_reset_flood():
    """MadeYouReset: every stream gets a window-overflowing WINDOW_UPDATE,
    so the server has to reset it; the provoked-reset budget ends that."""
    def frames(c, _):
        for _ in range(1000):
            sid = c.new_id()
            yield c.headers_frame(sid, c.req_headers("/echo", "POST"), end_stream=False)
            yield hf.WindowUpdateFrame(sid, window_increment=(1 << 31) - 1)
    flood_test(b'too many stream errors', frames)


def test_echo_reset_midway():
    """Echo streams reset by the client while their bytes are still queued
    in the server (small socket buffers, and we stop reading): the buffers
    lent to the session must outlive the streams (ASan would see a use
    after free), and the connection goes on afterwards."""
    with Server("-v", "--sndbuf", "32768") as s, Raw(
            s.port, rcvbuf=32768, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20}) as c:
        c.send(hf.WindowUpdateFrame(0, window_increment=1 << 28))
        # 12 x 60000 bytes: under the server's 1 MiB connection window,
        # well over what the two socket buffers hold.
        ids = [open_echo(c) for _ in range(12)]
        c.send(*[hf.DataFrame(sid, data=b"z" * 15000) for sid in ids for _ in range(4)])
        c.frames_until(lambda f: isinstance(f, hf.DataFrame))  # echoing has begun
        time.sleep(0.2)  # it goes on until the sockets are full
        c.send(*[hf.RstStreamFrame(sid, error_code=CANCEL) for sid in ids])
        get_ok(c)
        get_ok(c, "/size/100000", pattern(100000))
    assert re.search(r"closed CANCEL, [1-9]\d* bytes still lent", s.stderr_text), \
        "no stream was reset while its echo bytes were queued"


def test_header_list_too_large_431():
    with Server() as s, Raw(s.port) as c:
        sid = c.request("/", extra=[("x-big", "v" * 100000)])
        h, b, _ = c.response(sid)
        assert h == {b":status": b"431"}, h
        assert b == b""
        get_ok(c)
        get_ok(c, "/size/70000", pattern(70000))


def test_hpack_bomb_431():
    """A 4000-byte value put in the dynamic table, then referenced 16000
    times at one byte each: 20 KB on the wire, 64 MB decoded. The decoder
    must stop at the list limit (431), stay in sync, and keep serving."""
    with Server() as s, Raw(s.port) as c:
        before = s.rss_kib()
        block = c.block(c.req_headers("/") + [("x-bomb", "v" * 4000)])
        block += b"\xbe" * 16000  # indexed field 62: the entry just added
        sid = c.new_id()
        frames = [hf.HeadersFrame(sid, data=block[:16384], flags=["END_STREAM"])]
        for off in range(16384, len(block), 16384):
            frames.append(hf.ContinuationFrame(sid, data=block[off:off + 16384]))
        frames[-1].flags.add("END_HEADERS")
        c.send(*frames)
        h, b, _ = c.response(sid)
        assert h == {b":status": b"431"}, h
        get_ok(c)
        grew = s.rss_kib() - before
        assert grew < 4096, "RSS grew by %d KiB" % grew


def test_refused_stream_over_max_concurrent():
    with Server("--max-concurrent", "2") as s, Raw(s.port) as c:
        ids = [open_echo(c) for _ in range(4)]
        for sid in ids[2:]:  # we ignore the server's SETTINGS on purpose
            c.expect_rst(sid, REFUSED_STREAM)
        d = hf.DataFrame(ids[0], data=b"still here", flags=["END_STREAM"])
        c.send(d)
        h, b, _ = c.response(ids[0])
        assert h[b":status"] == b"200" and b == b"still here", (h, b)
        get_ok(c)


def test_data_beyond_stream_window():
    with Server("--window", "1024") as s, Raw(s.port) as c:
        c.handshake()  # our ACK precedes the request: the 1024 window applies
        sid = open_echo(c)
        c.send(hf.DataFrame(sid, data=b"x" * 2000))
        c.expect_rst(sid, FLOW_CONTROL_ERROR)
        sid = open_echo(c)  # within the window all is well
        c.send(hf.DataFrame(sid, data=b"y" * 1000, flags=["END_STREAM"]))
        h, b, _ = c.response(sid)
        assert b == b"y" * 1000
        get_ok(c)


def test_invalid_preface():
    with Server() as s:
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 9):
            with Raw(s.port, preface=False) as c:
                c.send_bytes(junk)
                c.expect_goaway(PROTOCOL_ERROR)
        fresh_get_ok(s)


def test_uppercase_header_name():
    with Server() as s, Raw(s.port) as c:
        sid = c.request("/", extra=[("X-Upper", "1")])
        c.expect_rst(sid, PROTOCOL_ERROR)
        get_ok(c)
        get_ok(c)


def test_unread_responses_bounded():
    """A client that sends HEAD requests in a loop and never reads: each
    response is a HEADERS frame that closes its stream at once, so neither
    the stream limit nor a reset budget applies. The server must bound what
    it queues (GOAWAY ENHANCE_YOUR_CALM, as for control frames: 1 MiB, some
    60000 such responses) rather than grow with what the client sends."""
    n, limit = 300000, 150000
    with Server("--sndbuf", "32768") as s, Raw(s.port, rcvbuf=32768) as c:
        c.handshake()
        c.send(c.headers_frame(c.new_id(), c.req_headers("/", "HEAD")))
        blk = c.block(c.req_headers("/", "HEAD"))  # all indexed: the same from now on
        head = struct.pack(">I", len(blk))[1:] + b"\x01\x05"  # HEADERS END_STREAM|END_HEADERS
        c.sock.settimeout(1.0)
        try:
            for _ in range(n // 10000):
                out = bytearray()
                for _ in range(10000):
                    out += head + struct.pack(">I", c.new_id()) + blk
                c.send_bytes(bytes(out))
        except OSError:
            pass  # the server stopped reading us: what the bound should do
        # Now read what was queued: the GOAWAY must come before `limit`
        # responses (an unbounded server answers all n and says nothing).
        got = c.skim(7, limit, timeout=20)  # 7: GOAWAY
        assert got is not None, "%d responses queued and no GOAWAY: unbounded" % limit
        code = struct.unpack(">I", got[0][4:8])[0]
        assert code == ENHANCE_YOUR_CALM, "GOAWAY %#x after %d frames" % (code, got[1])


def test_settings_timeout():
    """Our SETTINGS never acknowledged: GOAWAY SETTINGS_TIMEOUT (0x4) once
    the timeout passes, driven by the session's deadline; a client that
    does acknowledge is not affected."""
    with Server("--settings-timeout", "300") as s:
        with Raw(s.port) as good:
            good.handshake()
            with Raw(s.port) as bad:
                t0 = time.monotonic()
                got = bad.skim(7, 100, timeout=5)  # skim never acknowledges
                took = time.monotonic() - t0
                assert got is not None
                assert struct.unpack(">I", got[0][4:8])[0] == SETTINGS_TIMEOUT, got
                assert 0.25 <= took < 3, took
            get_ok(good)


def test_slow_reader_memory_bounded():
    """Clients that never read 100 MB responses (one with a tiny window,
    one with the largest window) cost the server no more than a few MiB,
    and it keeps answering others meanwhile."""
    big = "/size/100000000"
    with Server() as s:
        fresh_get_ok(s)  # allocations of a first connection are not growth
        before = s.rss_kib()
        tiny = Raw(s.port, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 1})
        huge = Raw(s.port, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
        huge.send(hf.WindowUpdateFrame(0, window_increment=(1 << 31) - 1 - 65535))
        try:
            tiny.request(big)
            huge.request(big)
            time.sleep(1.0)  # the server fills the socket buffers, then waits
            during = s.rss_kib()
            for _ in range(3):
                fresh_get_ok(s)
            after = s.rss_kib()
        finally:
            tiny.close()
            huge.close()
        grew = max(during, after) - before
        print("RSS KiB: before %d, during %d, after %d" % (before, during, after))
        assert grew < 8 * 1024, "RSS grew by %d KiB (%d -> %d -> %d)" % (
            grew, before, during, after)


if __name__ == "__main__":
    main(globals())
