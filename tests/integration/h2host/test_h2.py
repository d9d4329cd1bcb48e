#!/usr/bin/python3
"""test_h2.py — well-behaved traffic from python3-h2 against h2host:
concurrent streams, bodies resumed by timers, streamed echo under flow
control, trailers both ways; and graceful shutdown on SIGTERM."""

import os
import socket
import sys
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2util import NO_ERROR, Raw, Server, hf, main, pattern  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events as ev  # noqa: E402


class Client:
    """A python3-h2 client that keeps every stream's response."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(cfg)
        self.conn.initiate_connection()
        self.resp = {}
        self.flush()

    def close(self):
        self.sock.close()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, path, method="GET", end_stream=True, extra=()):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":scheme", "http"),
                                     (":authority", "127.0.0.1"), (":path", path)]
                               + list(extra), end_stream=end_stream)
        self.resp[sid] = {"headers": None, "body": bytearray(), "trailers": None,
                          "ended": False, "data_events": 0}
        self.flush()
        return sid

    def pump(self, deadline):
        """Read once from the socket and handle what arrived."""
        self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        data = self.sock.recv(65536)
        assert data, "server closed the connection"
        for e in self.conn.receive_data(data):
            self.handle(e)
        self.flush()

    def handle(self, e):
        if isinstance(e, ev.ResponseReceived):
            self.resp[e.stream_id]["headers"] = dict(e.headers)
        elif isinstance(e, ev.TrailersReceived):
            self.resp[e.stream_id]["trailers"] = dict(e.headers)
        elif isinstance(e, ev.DataReceived):
            r = self.resp[e.stream_id]
            r["body"].extend(e.data)
            r["data_events"] += 1
            self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, ev.StreamEnded):
            self.resp[e.stream_id]["ended"] = True
        elif isinstance(e, ev.StreamReset):
            raise AssertionError("stream %d reset %s" % (e.stream_id, e.error_code))
        elif isinstance(e, ev.ConnectionTerminated):
            raise AssertionError("GOAWAY %s %s" % (e.error_code, e.additional_data))

    def wait(self, *sids):
        deadline = time.monotonic() + self.timeout
        while not all(self.resp[s]["ended"] for s in sids):
            self.pump(deadline)
        return [self.resp[s] for s in sids]

    def send_body(self, sid, body, trailers=None):
        """Send body as flow control allows, reading meanwhile."""
        deadline = time.monotonic() + self.timeout
        off = 0
        while off < len(body):
            n = min(self.conn.local_flow_control_window(sid),
                    self.conn.max_outbound_frame_size, len(body) - off)
            if n <= 0:
                self.pump(deadline)
                continue
            self.conn.send_data(sid, body[off:off + n])
            off += n
            self.flush()
        if trailers:
            self.conn.send_headers(sid, trailers, end_stream=True)
        else:
            self.conn.end_stream(sid)
        self.flush()


def test_h2_concurrent_gets():
    with Server() as s:
        c = Client(s.port)
        sizes = [0, 1, 100, 16384, 16385, 65535, 65536, 200000] * 3
        sids = [c.start("/size/%d" % n) for n in sizes]
        root = c.start("/")
        missing = c.start("/missing")
        for sid, n, r in zip(sids, sizes, c.wait(*sids)):
            assert r["headers"][b":status"] == b"200", r["headers"]
            assert r["headers"][b"content-length"] == b"%d" % n
            assert bytes(r["body"]) == pattern(n), (sid, n, len(r["body"]))
        r, m = c.wait(root, missing)
        assert bytes(r["body"]) == b"hello from sluice\n"
        assert r["headers"][b"content-type"] == b"text/plain"
        assert m["headers"][b":status"] == b"404"
        c.close()


def test_h2_slow_bodies_resume():
    """/slow/N is handed out in 8 pieces, each after a timer: the session
    must resume a deferred source, also with several interleaved."""
    with Server() as s:
        c = Client(s.port)
        t0 = time.monotonic()
        sids = [c.start("/slow/%d" % n) for n in (80000, 8, 3, 0)]
        res = c.wait(*sids)
        took = time.monotonic() - t0
        for n, r in zip((80000, 8, 3, 0), res):
            assert bytes(r["body"]) == pattern(n), (n, len(r["body"]))
        assert res[0]["data_events"] >= 8, res[0]["data_events"]
        assert took >= 0.03, took  # seven 5 ms gaps at least
        c.close()


def test_h2_echo_streams_in_parallel():
    """Four 1 MiB uploads at once to /echo, under 64 KiB windows: each
    echo advances only as its bytes leave the server."""
    with Server() as s:
        c = Client(s.port, timeout=30)
        bodies = [os.urandom(1 << 20) for _ in range(4)]
        sids = [c.start("/echo", "POST", end_stream=False) for _ in bodies]
        for sid, b in zip(sids, bodies):
            c.send_body(sid, b)
        for b, r in zip(bodies, c.wait(*sids)):
            assert r["headers"][b":status"] == b"200"
            assert bytes(r["body"]) == b
        c.close()


def test_h2_trailers_both_ways():
    with Server() as s:
        c = Client(s.port)
        sid = c.start("/trailers")
        (r,) = c.wait(sid)
        body = b"this body is followed by trailers\n"
        assert bytes(r["body"]) == body
        assert r["trailers"] == {b"x-checksum": b"%08x" % zlib.crc32(body)}, r["trailers"]
        up = os.urandom(300000)
        sid = c.start("/trailers", "POST", end_stream=False)
        c.send_body(sid, up, trailers=[("x-sig", "abc"), ("x-n", "2")])
        (r,) = c.wait(sid)
        assert bytes(r["body"]) == up
        assert r["trailers"] == {b"x-checksum": b"%08x" % zlib.crc32(up),
                                 b"x-request-trailer-x-sig": b"abc",
                                 b"x-request-trailer-x-n": b"2"}, r["trailers"]
        sid = c.start("/trailers", "POST", end_stream=False)  # no request trailers
        c.send_body(sid, b"abc")
        (r,) = c.wait(sid)
        assert r["trailers"] == {b"x-checksum": b"%08x" % zlib.crc32(b"abc")}
        c.close()


def test_h2_ignored_upload_is_credited():
    """3 MiB sent to a path that never reads its body (404 answered before
    the body ends): the bytes must be credited back, whether h2host
    consumes them or the session auto-consumes."""
    for args in ((), ("--auto-consume",)):
        with Server(*args) as s:
            c = Client(s.port)
            sid = c.start("/nowhere", "POST", end_stream=False)
            c.send_body(sid, os.urandom(3 << 20))
            (r,) = c.wait(sid)
            assert r["headers"][b":status"] == b"404" and bytes(r["body"]) == b"not found\n"
            (r,) = c.wait(c.start("/"))
            assert bytes(r["body"]) == b"hello from sluice\n"
            c.close()


def test_h2_window_reopened_by_settings():
    """Stream windows start at 0; a later SETTINGS opens them (RFC 9113
    6.9.2) and the stalled response resumes."""
    with Server() as s, \
            Raw(s.port, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 0}) as c:
        sid = c.request("/size/100000")
        try:
            f, _ = c.frames_until(lambda f: isinstance(f, hf.DataFrame), 0.3)
            raise AssertionError("DATA despite a zero window: %r" % f)
        except TimeoutError:
            pass
        c.send(hf.SettingsFrame(0, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 65535}))
        h, b, _ = c.response(sid)
        assert b == pattern(100000)


def test_h2_connection_window_stall_and_resume():
    """Large stream window, connection window left at 65535: the response
    stops there and resumes on a connection WINDOW_UPDATE."""
    with Server() as s, \
            Raw(s.port, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20}) as c:
        sid = c.request("/size/200000")
        got = 0
        while got < 65535:
            f = c.read_frame(5)
            assert f is not None
            if isinstance(f, hf.DataFrame):
                got += len(f.data)
        assert got == 65535, got
        try:
            f = c.read_frame(0.3)
            raise AssertionError("frame beyond the connection window: %r" % f)
        except TimeoutError:
            pass
        c.send(hf.WindowUpdateFrame(0, window_increment=1 << 20))
        h, b, _ = c.response(sid)
        assert len(c.streams[sid].body) == 200000


def test_graceful_shutdown():
    """SIGTERM: GOAWAY 2^31-1 with a PING, the final GOAWAY once the PING
    returns, the stream in flight completes, then the server exits 0."""
    with Server() as s, Raw(s.port) as c:
        sid = c.new_id()
        c.send(c.headers_frame(sid, c.req_headers("/echo", "POST"), end_stream=False))
        c.send(hf.DataFrame(sid, data=b"first "))
        c.frames_until(lambda f: isinstance(f, hf.DataFrame) and f.stream_id == sid)
        s.terminate()
        g, _ = c.frames_until(lambda f: isinstance(f, hf.GoAwayFrame))
        assert (g.last_stream_id, g.error_code) == ((1 << 31) - 1, NO_ERROR), g
        g, _ = c.frames_until(lambda f: isinstance(f, hf.GoAwayFrame))  # PING answered
        assert (g.last_stream_id, g.error_code) == (sid, NO_ERROR), g
        c.send(hf.DataFrame(sid, data=b"last", flags=["END_STREAM"]))
        h, b, _ = c.response(sid)
        assert b == b"first last", b
        assert c.read_frame(5) is None  # the server closes the connection
        c.close()  # our FIN ends the server's lingering close at once
        s.proc.wait(10)
        assert s.proc.returncode == 0


def test_shutdown_with_unresponsive_client():
    """A client that never reads nor answers the PING cannot hold the server
    past its grace period; it still exits 0 and frees everything."""
    with Server() as s:
        c = Raw(s.port)
        c.request("/size/100000000")
        time.sleep(0.2)
        t0 = time.monotonic()
        s.terminate()
        s.proc.wait(15)
        took = time.monotonic() - t0
        c.close()
        assert took < 8, took


if __name__ == "__main__":
    main(globals())
