#!/usr/bin/python3
"""test_hints_push.py — what a route's priority, Early Hints and push keys
do, seen by real clients: curl gets the 103 with the route's link values
before the 200 (HTTP/2 and HTTP/1.1, never HTTP/1.0); nghttp and python3-h2
get PUSH_PROMISE and the pushed body, a client with SETTINGS_ENABLE_PUSH=0
(or http2 { push = false }) gets none, a cancelled push stops and the
connection goes on; the route's urgency orders two large responses, a
client's priority field overrides it, and http2 { priorities = false }
shares the link instead."""

import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import H2, Site, Skip, Sluice, h1_response, hf, main, need, run  # noqa: E402

try:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.settings
except ImportError:  # main() reports the skip
    h2 = None

HINTS = ("</style.css>; rel=preload; as=style", "</app.js>; rel=preload; as=script")
STYLE = b"body { color: #123456 }\n" * 40       # pushed, served from the cache
BIG = 8 << 20
PUSH_BIG = 32 << 20


def pattern(n):
    block = bytes(range(251)) * 4200
    return (block * (n // len(block) + 1))[:n]


def lua_list(items):
    return "{ " + ", ".join('"%s"' % s for s in items) + " }"


def site_files(site):
    site.write("site/style.css", STYLE)
    site.write("site/app.js", b"console.log(1)\n")
    os.mkdir(site.path("low"))
    os.mkdir(site.path("high"))
    site.write("low/big.bin", pattern(BIG))
    site.write("high/big.bin", pattern(BIG))
    site.write("site/huge.bin", pattern(PUSH_BIG))


def config(site, extra="", **kw):
    site_files(site)
    body = ('route { path = "/", static = "site", hints = %s, push = { "/style.css" } }\n'
            'route { path = "/plain", ret = { body = "plain\\n" } }\n'
            'route { path = "/cancel", ret = { body = "cancel\\n" }, push = { "/huge.bin" } }\n'
            'route { path = "/low", static = "low", urgency = 7 }\n'
            'route { path = "/high", static = "high", urgency = 0 }\n' % lua_list(HINTS))
    return site.config(body + extra, **kw)


# -- curl -v ---------------------------------------------------------------------

def curl_heads(port, path, proto, tls=False):
    """curl -v: every response head it saw, in order, as (status, [(name,
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


def links(fields):
    return [v for k, v in fields if k == "link"]


def test_hints_curl_h2_and_h1():
    with Site() as site, Sluice(config(site)):
        for port, proto, tls in ((site.tls, "--http2", True),
                                 (site.plain, "--http2-prior-knowledge", False),
                                 (site.tls, "--http1.1", True),
                                 (site.plain, "--http1.1", False)):
            heads, body = curl_heads(port, "/", proto, tls)
            what = (proto, tls, heads)
            assert [st for st, _ in heads] == [103, 200], what
            assert links(heads[0][1]) == list(HINTS), what
            assert not [k for k, _ in heads[0][1] if k != "link"], what
            assert body == Site.INDEX, (what, body)
        # A route without hints: no 103.
        heads, body = curl_heads(site.plain, "/plain", "--http1.1")
        assert [st for st, _ in heads] == [200] and body == b"plain\n", heads


def test_hints_never_to_http10():
    with Site() as site, Sluice(config(site, tls=False)):
        heads, body = curl_heads(site.plain, "/", "--http1.0")
        assert [st for st, _ in heads] == [200], heads
        assert body == Site.INDEX, body
        # The raw bytes too: the first status line is the response's, and
        # nothing but the response follows.
        s = socket.create_connection(("127.0.0.1", site.plain), timeout=5)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        status, hdrs, body = h1_response(s)
        s.close()
        assert (status, body) == (200, Site.INDEX), (status, hdrs, body)


# -- push ------------------------------------------------------------------------

def nghttp_run(port, path, *opts):
    """nghttp -v (bodies too, pushed ones included) -> (frames, text) where
    frames lists ("HEADERS" | "PUSH_PROMISE" | "DATA" | ..., stream id,
    fields, details) in arrival order; a frame's fields are the
    "recv (stream_id=N) name: value" lines printed just before it."""
    need("nghttp")
    _, out, _ = run(["nghttp", "-v"] + list(opts) + ["http://127.0.0.1:%d%s" % (port, path)],
                    timeout=30)
    text = out.decode("latin-1")
    frames, fields = [], []
    for line in text.splitlines():
        m = re.match(r"\[[ \d.]+\] recv \(stream_id=\d+\) (:?[^:]+): (.*)$", line)
        if m:
            fields.append((m.group(1), m.group(2)))
            continue
        m = re.match(r"\[[ \d.]+\] recv (\w+) frame <length=(\d+), flags=(0x[0-9a-f]+), "
                     r"stream_id=(\d+)>", line)
        if m:
            frames.append([m.group(1), int(m.group(4)), fields,
                           {"length": int(m.group(2)), "flags": int(m.group(3), 16)}])
            fields = []
            continue
        m = re.search(r"promised_stream_id=(\d+)", line)
        if m and frames and frames[-1][0] == "PUSH_PROMISE":
            frames[-1][3]["promised"] = int(m.group(1))
    return frames, text


def test_push_nghttp():
    with Site() as site, Sluice(config(site, tls=False)):
        frames, text = nghttp_run(site.plain, "/")
        promises = [f for f in frames if f[0] == "PUSH_PROMISE"]
        assert len(promises) == 1, text[-3000:]
        _, sid, req, d = promises[0]
        pid = d["promised"]
        assert pid % 2 == 0, text[-3000:]
        assert req == [(":method", "GET"), (":scheme", "http"),
                       (":authority", "127.0.0.1:%d" % site.plain), (":path", "/style.css")], req
        # The promise goes before the response it comes with (and after the 103).
        heads = [f for f in frames if f[0] == "HEADERS" and f[1] == sid]
        assert [dict(f[2])[":status"] for f in heads] == ["103", "200"], heads
        assert frames.index(heads[0]) < frames.index(promises[0]) < frames.index(heads[1]), frames
        # The pushed response: 200, the file's length, all of it, and the bytes.
        pushed = [f for f in frames if f[0] == "HEADERS" and f[1] == pid]
        assert len(pushed) == 1, frames
        ph = dict(pushed[0][2])
        assert ph[":status"] == "200" and ph["content-type"] == "text/css", ph
        assert int(ph["content-length"]) == len(STYLE), ph
        data = [f for f in frames if f[0] == "DATA" and f[1] == pid]
        assert sum(f[3]["length"] for f in data) == len(STYLE), data
        assert data[-1][3]["flags"] & 1, data  # END_STREAM
        assert STYLE.decode() in text, "pushed body not printed by nghttp"
        assert Site.INDEX.decode() in text


class Client:
    """python3-h2 as a client on h2c, push accepted unless told, windows so
    large that flow control never holds the server; every frame the server
    sends is also logged raw (time, type, stream id, length), since h2 hides
    DATA on streams it has reset."""

    def __init__(self, port, enable_push=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(cfg)
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: int(enable_push),
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 30})
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 30)
        self.raw = bytearray()
        self.frames = []       # (time, type, stream id, length)
        self.headers = {}      # stream id -> response headers
        self.bodies = {}       # stream id -> bytes
        self.ended = []        # stream ids in the order they ended
        self.promises = {}     # promised id -> (parent id, request headers)
        self.resets = {}       # stream id -> code, sent by the server
        self.on_push = None    # called with the PushedStreamReceived event
        self.flush()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def request(self, path, extra=(), method="GET", end_stream=True):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":scheme", "http"),
                                     (":authority", "127.0.0.1"), (":path", path)] +
                               list(extra), end_stream=end_stream)
        return sid

    def _log_raw(self, data):
        self.raw += data
        now = time.monotonic()
        while len(self.raw) >= 9:
            n = int.from_bytes(self.raw[:3], "big")
            if len(self.raw) < 9 + n:
                break
            sid = int.from_bytes(self.raw[5:9], "big") & 0x7FFFFFFF
            self.frames.append((now, self.raw[3], sid, n))
            del self.raw[:9 + n]

    def event(self, ev):
        if isinstance(ev, h2.events.ResponseReceived):
            self.headers[ev.stream_id] = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            self.bodies[ev.stream_id] = self.bodies.get(ev.stream_id, b"") + ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.ended.append(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.resets[ev.stream_id] = ev.error_code
        elif isinstance(ev, h2.events.PushedStreamReceived):
            self.promises[ev.pushed_stream_id] = (ev.parent_stream_id, dict(ev.headers))
            if self.on_push:
                self.on_push(ev)

    def pump(self, until, timeout=10.0):
        """Read until until() is true (or, with until None, for timeout s)."""
        deadline = time.monotonic() + timeout
        while until is None or not until():
            left = deadline - time.monotonic()
            if left <= 0:
                if until is None:
                    return
                raise AssertionError("timed out; ended %r, headers %r, frames %r" % (
                    self.ended, self.headers, self.frames[-10:]))
            self.flush()
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            assert data, "the server closed the connection"
            self._log_raw(data)
            for ev in self.conn.receive_data(data):
                self.event(ev)
            self.flush()

    def close(self):
        self.sock.close()


def need_h2():
    if h2 is None:
        raise Skip("python3-h2 not installed")


T_PUSH_PROMISE, T_DATA = 5, 0


def test_push_h2_body_and_order():
    need_h2()
    with Site() as site, Sluice(config(site, tls=False)):
        c = Client(site.plain)
        sid = c.request("/")
        c.pump(lambda: sid in c.ended and len(c.ended) == 2)
        assert len(c.promises) == 1, c.promises
        (pid, (parent, req)), = c.promises.items()
        assert parent == sid and pid % 2 == 0, c.promises
        assert req == {":method": "GET", ":scheme": "http", ":authority": "127.0.0.1",
                       ":path": "/style.css"}, req
        assert c.headers[pid][":status"] == "200", c.headers
        assert c.headers[pid]["content-type"] == "text/css", c.headers
        assert c.bodies[pid] == STYLE, len(c.bodies.get(pid, b""))
        assert c.bodies[sid] == Site.INDEX
        # RFC 9113 §8.4: the promise precedes the response that refers to it.
        kinds = [(t, s) for _, t, s, _ in c.frames if s in (sid, pid)]
        final = max(i for i, k in enumerate(kinds) if k == (1, sid))  # after the 103
        assert kinds.index((T_PUSH_PROMISE, sid)) < final < kinds.index((T_DATA, sid)), kinds
        # A second request for the page pushes again (the first push is over).
        sid2 = c.request("/")
        c.pump(lambda: sid2 in c.ended and len(c.ended) == 4)
        assert len(c.promises) == 2, c.promises
        # HEAD, and routes without push, push nothing.
        n = len(c.promises)
        sid3 = c.request("/plain")
        sid4 = c.request("/", method="HEAD")
        c.pump(lambda: sid3 in c.ended and sid4 in c.ended)
        assert len(c.promises) == n and c.bodies[sid3] == b"plain\n", c.promises
        assert c.headers[sid4][":status"] == "200" and sid4 not in c.bodies, c.headers
        c.close()


def test_push_skipped_when_open():
    """No push of what the client has open on the connection: its own
    request for /style.css, still open (no END_STREAM yet)."""
    need_h2()
    with Site() as site, Sluice(config(site, tls=False)):
        c = Client(site.plain)
        own = c.request("/style.css", end_stream=False)
        sid = c.request("/")
        c.pump(lambda: sid in c.ended and own in c.headers)
        assert not c.promises, c.promises
        assert c.bodies[sid] == Site.INDEX
        c.conn.end_stream(own)
        c.pump(lambda: own in c.ended)
        assert c.bodies[own] == STYLE
        sid = c.request("/")  # now it is pushed
        c.pump(lambda: sid in c.ended and len(c.promises) == 1)
        (pid, (parent, req)), = c.promises.items()
        assert parent == sid and req[":path"] == "/style.css", c.promises
        c.pump(lambda: pid in c.ended)
        assert c.bodies[pid] == STYLE
        c.close()


def test_push_disabled_by_client():
    need_h2()
    with Site() as site, Sluice(config(site, tls=False)):
        frames, text = nghttp_run(site.plain, "/", "--no-push")
        assert "SETTINGS_ENABLE_PUSH(0x02):0" in text, text[:2000]
        assert "PUSH_PROMISE" not in text, text[-3000:]
        statuses = [dict(f[2]).get(":status") for f in frames if f[0] == "HEADERS"]
        assert statuses == ["103", "200"], text[-3000:]
        assert Site.INDEX.decode() in text
        c = Client(site.plain, enable_push=False)
        sid = c.request("/")
        c.pump(lambda: sid in c.ended)
        c.pump(None, timeout=0.3)  # nothing more may come
        assert not c.promises, c.promises
        assert not [f for f in c.frames if f[1] == T_PUSH_PROMISE], c.frames
        assert c.bodies[sid] == Site.INDEX
        c.close()


def test_push_disabled_by_config():
    need_h2()
    with Site() as site, Sluice(config(site, "http2 { push = false }\n", tls=False)):
        c = Client(site.plain)
        sid = c.request("/")
        c.pump(lambda: sid in c.ended)
        c.pump(None, timeout=0.3)
        assert not c.promises and not [f for f in c.frames if f[1] == T_PUSH_PROMISE], c.frames
        assert c.bodies[sid] == Site.INDEX
        c.close()


def test_push_cancelled():
    """RST_STREAM(CANCEL) on the promised stream as soon as it is promised:
    the server stops sending it, the page and later requests are served."""
    need_h2()
    with Site() as site, Sluice(config(site, tls=False)) as s:
        c = Client(site.plain)
        cancelled = {}

        def cancel(ev):
            c.conn.reset_stream(ev.pushed_stream_id, h2.errors.ErrorCodes.CANCEL)
            c.flush()
            cancelled[ev.pushed_stream_id] = time.monotonic()
        c.on_push = cancel
        sid = c.request("/cancel")
        c.pump(lambda: sid in c.ended)
        assert c.bodies[sid] == b"cancel\n", c.bodies
        assert len(cancelled) == 1, c.promises
        (pid, at), = cancelled.items()
        assert c.promises[pid][1][":path"] == "/huge.bin", c.promises
        # What was in flight when the reset left may still arrive; then nothing.
        c.pump(None, timeout=0.5)
        grace = at + 0.3
        late = [f for f in c.frames if f[2] == pid and f[1] == T_DATA and f[0] > grace]
        assert not late, late[:5]
        got = sum(f[3] for f in c.frames if f[2] == pid and f[1] == T_DATA)
        assert got < PUSH_BIG // 2, got
        # The connection goes on.
        sid2 = c.request("/plain")
        sid3 = c.request("/style.css")
        c.pump(lambda: sid2 in c.ended and sid3 in c.ended)
        assert c.bodies[sid2] == b"plain\n" and c.bodies[sid3] == STYLE
        assert c.headers[sid2][":status"] == "200"
        c.close()
        assert s.alive()


# -- urgency ---------------------------------------------------------------------

class Raw:
    """Bytes sent as they are (for frames hyperframe does not know)."""

    def __init__(self, data):
        self.data = data

    def serialize(self):
        return self.data


def priority_update(sid, field):
    """RFC 9218 §7.1 PRIORITY_UPDATE (type 0x10) on stream 0."""
    payload = sid.to_bytes(4, "big") + field.encode()
    return Raw(len(payload).to_bytes(3, "big") + b"\x10\x00" + (0).to_bytes(4, "big") + payload)


def race(site, first, second, extra_first=(), extra_second=(), after=()):
    """Request first then second in one write on a fresh connection (then
    the frames after(a, b) returns); return (which ended first, bytes of
    the other received by then)."""
    c = H2.plain(site.plain, settings={4: 1 << 30})  # INITIAL_WINDOW_SIZE
    c.send(hf.WindowUpdateFrame(0, window_increment=1 << 30))
    a = c.new_id()
    b = c.new_id()
    c.send(c.headers_frame(a, c.req_headers(first, extra=extra_first)),
           c.headers_frame(b, c.req_headers(second, extra=extra_second)),
           *(after(a, b) if after else ()))
    done = {}  # stream id -> bytes of the other stream when it ended, in order

    def ended(f):
        for sid, other in ((a, b), (b, a)):
            st, ost = c.streams.get(sid), c.streams.get(other)
            if st is not None and st.ended and sid not in done:
                done[sid] = len(ost.body) if ost else 0
        return len(done) == 2
    f, _ = c.frames_until(ended, timeout=30)
    c.reply(f)
    for sid in (a, b):
        h, body = c.response(sid)
        assert h[b":status"] == b"200" and body == pattern(BIG), (h, len(body))
    c.close()
    winner = next(iter(done))
    return ("first" if winner == a else "second"), done[winner]


def test_urgency_route_default():
    with Site() as site, Sluice(config(site, tls=False)):
        # /low (u=7) is asked first, /high (u=0) wins.
        who, other = race(site, "/low/big.bin", "/high/big.bin")
        assert who == "second" and other < 1 << 20, (who, other)
        # The client's own priority field overrides the route's.
        who, other = race(site, "/low/big.bin", "/high/big.bin",
                          extra_first=[("priority", "u=0")], extra_second=[("priority", "u=6")])
        assert who == "first" and other < 1 << 20, (who, other)


def test_priority_update_reorders():
    with Site() as site, Sluice(config(site, tls=False)):
        # Both on the u=7 route; a PRIORITY_UPDATE makes the second urgent.
        who, other = race(site, "/low/big.bin", "/low/big.bin",
                          after=lambda a, b: [priority_update(b, "u=0")])
        assert who == "second" and other < 1 << 20, (who, other)
        # An unparsable field is ignored (RFC 9218 §7.1): the order stays.
        who, _ = race(site, "/high/big.bin", "/low/big.bin",
                      after=lambda a, b: [priority_update(b, "u=0,,")])
        assert who == "first", who


def test_rfc7540_priority_frame_reorders():
    with Site() as site, Sluice(config(site, tls=False)):
        # An old client's PRIORITY (weight 256) on the second stream.
        who, other = race(site, "/low/big.bin", "/low/big.bin",
                          after=lambda a, b: [hf.PriorityFrame(b, depends_on=0,
                                                               stream_weight=255,
                                                               exclusive=True)])
        assert who == "second" and other < 1 << 20, (who, other)


def test_urgency_off_shares():
    cfg = "http2 { priorities = false }\n"
    with Site() as site, Sluice(config(site, cfg, tls=False)):
        # Round robin: when one ends, the other has most of its bytes too.
        _, other = race(site, "/low/big.bin", "/high/big.bin")
        assert other > BIG // 2, other


if __name__ == "__main__":
    main(globals())
