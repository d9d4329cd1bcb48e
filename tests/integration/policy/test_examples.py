#!/usr/bin/python3
"""test_examples.py — the example policies of examples/policies/, copied
unchanged into each test's temp dir, observed with real clients: browser.lua
orders DATA by its urgencies and leaves a client's priority alone;
manifest.lua sends 103s, pushes (not to clients with the cookie or without
ENABLE_PUSH) and pushes what an upstream's link field names; windows.lua
sets SETTINGS, windows and ping budgets per client class; ip_limit.lua
divides MAX_CONCURRENT_STREAMS per address and answers 429 past its rate;
ab_a.lua/ab_b.lua split clients by address; typical.lua sets cache-control
and counts in `shared`. Then broken policies: errors and endless loops leave
the default in place, and sluice -t names the config and policy lines."""

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from policyutil import (H2, ENHANCE_YOUR_CALM, Site, Skip, Sluice, addresses,  # noqa: E402
                        config, connect_from, copy_examples, example_text, first_settings,
                        h1_get, h2_from, hf, main, need, nghttp, pattern, run,
                        server_settings, tags, wait_log, wait_stderr)

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:  # main() reports the skip
    h2 = None

BIG = 4 << 20
REFUSED_STREAM = 0x7
INDEX = Site.INDEX


def need_h2():
    if h2 is None:
        raise Skip("python3-h2 not installed")


def ended_order(frames, a, b):
    """From nghttp's DATA frames on streams a and b: which stream's
    END_STREAM came first, and how many bytes of the other one came before
    it."""
    got = {a: 0, b: 0}
    for f in frames:
        if f.type == "DATA" and f.sid in got:
            got[f.sid] += f.length
            if f.flags & 1:
                return f.sid, got[b if f.sid == a else a]
    raise AssertionError("no END_STREAM on %d or %d: %r" % (a, b, frames[-10:]))


# -- browser.lua -----------------------------------------------------------------------

def race(port, first, second, extra_first=(), extra_second=()):
    """Raw HTTP/2: `first` then `second` in one write, windows wide open;
    return (path that ended first, bytes of the other one by then)."""
    c = H2.plain(port, settings={4: 1 << 30})
    c.send(hf.WindowUpdateFrame(0, window_increment=1 << 30))
    a, b = c.new_id(), c.new_id()
    c.send(c.headers_frame(a, c.req_headers(first, extra=extra_first)),
           c.headers_frame(b, c.req_headers(second, extra=extra_second)))
    done = []

    def ended(f):
        for sid, other in ((a, b), (b, a)):
            st = c.streams.get(sid)
            if st is not None and st.ended and not [d for d in done if d[0] == sid]:
                ost = c.streams.get(other)
                done.append((sid, len(ost.body) if ost else 0))
        return len(done) == 2
    f, _ = c.frames_until(ended, timeout=30)
    c.reply(f)
    for sid in (a, b):
        h, body = c.response(sid)
        assert h[b":status"] == b"200" and body == pattern(BIG), (h, len(body))
    c.close()
    return (first if done[0][0] == a else second), done[0][1]


def test_browser_urgency_by_extension():
    need("nghttp")
    with Site() as site:
        copy_examples(site, "browser.lua")
        site.write("site/photo.png", pattern(BIG))
        site.write("site/site.css", pattern(BIG))
        site.write("site/data.json", b"{}\n")
        site.write("site/notes.txt", b"notes\n")
        for with_policy in (True, False):
            pol = 'policy { file = "browser.lua" }' if with_policy else ""
            with Sluice(config(site, pol, tls=False)):
                # The image is asked for first; windows never hold the server.
                frames, text = nghttp(site.plain, ["/photo.png", "/site.css"],
                                      "-n", "-w", "30", "-W", "30")
                heads = {f.field("content-type"): f for f in frames if f.type == "HEADERS"}
                assert set(heads) == {"image/png", "text/css"}, text[-3000:]
                assert all(h.field("content-length") == str(BIG) and h.field(":status") == "200"
                           for h in heads.values()), text[-3000:]
                png, css = heads["image/png"].sid, heads["text/css"].sid
                assert png < css, (png, css)
                winner, other = ended_order(frames, png, css)
                if with_policy:  # css u=1 before png u=5
                    assert winner == css and other <= 256 << 10, (winner, other)
                else:            # both u=3: in the order asked
                    assert winner == png and other <= 256 << 10, (winner, other)
                for p in ("/", "/data.json?v=2", "/notes.txt"):
                    assert h1_get(site.plain, p)[0] == 200, p
            lines = wait_log(site, 5)
            got = {ln.split()[3]: tags(ln) for ln in lines}
            want = {"/photo.png": ["u=5"], "/site.css": ["u=1"], "/": ["u=0"],
                    "/data.json?v=2": ["u=3"], "/notes.txt": []}
            if not with_policy:
                want = {k: [] for k in want}
            assert got == want and len(lines) == 5, lines
            os.remove(site.path("access.log"))


def test_browser_client_priority_left_alone():
    with Site() as site:
        copy_examples(site, "browser.lua")
        site.write("site/photo.png", pattern(BIG))
        site.write("site/site.css", pattern(BIG))
        with Sluice(config(site, 'policy { file = "browser.lua" }', tls=False)):
            # Without priority fields the policy's css u=1 beats png u=5...
            who, other = race(site.plain, "/photo.png", "/site.css")
            assert who == "/site.css" and other <= 256 << 10, (who, other)
            # ...but the image's own u=0 stands (asked second, still first).
            who, other = race(site.plain, "/site.css", "/photo.png",
                              extra_second=[("priority", "u=0")])
            assert who == "/photo.png" and other <= 256 << 10, (who, other)
            lines = wait_log(site, 4)
        got = [(ln.split()[3], tags(ln)) for ln in lines]
        assert sorted(got[:2]) == [("/photo.png", ["u=5"]), ("/site.css", ["u=1"])], lines
        assert sorted(got[2:]) == [("/photo.png", []), ("/site.css", ["u=1"])], lines


# -- manifest.lua ----------------------------------------------------------------------

SITE_CSS = b"body { margin: 0 }\n" * 20
DOCS_CSS = b"pre { tab-size: 4 }\n"
APP_JS = b"console.log('app');\n"
COOKIE = "assets=v3; Path=/; Max-Age=86400"
LINKS = ["</css/site.css>; rel=preload; as=style", "</js/app.js>; rel=preload; as=script"]


def manifest_site(site):
    copy_examples(site, "manifest.lua")
    os.makedirs(site.path("site/css"))
    os.makedirs(site.path("site/js"))
    os.makedirs(site.path("site/docs"))
    site.write("site/css/site.css", SITE_CSS)
    site.write("site/css/docs.css", DOCS_CSS)
    site.write("site/js/app.js", APP_JS)
    site.write("site/docs/index.html", b"docs\n")
    site.write("site/other.html", b"other\n")


def curl_heads(port, path, proto, tls=False):
    """curl -v: the response heads it saw, as (status, [(name, value)]), and the body."""
    need("curl")
    cmd = ["curl", "-sv", "--max-time", "10", proto] + (["-k"] if tls else [])
    _, out, err = run(cmd + ["%s://127.0.0.1:%d%s" % ("https" if tls else "http", port, path)])
    heads = []
    for line in err.decode("latin-1").splitlines():
        if line.startswith("< HTTP/"):
            heads.append((int(line.split()[2]), []))
        elif line.startswith("< ") and heads and ":" in line:
            k, _, v = line[2:].partition(":")
            heads[-1][1].append((k.strip().lower(), v.strip()))
    return heads, out


def values(fields, name):
    return [v for k, v in fields if k == name]


def test_manifest_early_hints():
    with Site() as site:
        manifest_site(site)
        with Sluice(config(site, 'policy { file = "manifest.lua" }')):
            for port, proto, tls in ((site.tls, "--http2", True),
                                     (site.plain, "--http2-prior-knowledge", False),
                                     (site.tls, "--http1.1", True),
                                     (site.plain, "--http1.1", False)):
                what = (proto, tls)
                heads, body = curl_heads(port, "/", proto, tls)
                assert [st for st, _ in heads] == [103, 200], (what, heads)
                assert heads[0][1] == [("link", v) for v in LINKS], (what, heads)
                assert values(heads[1][1], "set-cookie") == [COOKIE], (what, heads)
                assert body == INDEX, (what, body)
            # Never a 103 to HTTP/1.0 (RFC 9110 §15.2); the cookie still.
            heads, body = curl_heads(site.plain, "/", "--http1.0")
            assert [st for st, _ in heads] == [200] and body == INDEX, heads
            assert values(heads[0][1], "set-cookie") == [COOKIE], heads
            heads, body = curl_heads(site.plain, "/docs/", "--http1.1")
            assert [st for st, _ in heads] == [103, 200], heads
            assert values(heads[0][1], "link") == [
                "</css/site.css>; rel=preload; as=style",
                "</css/docs.css>; rel=preload; as=style"], heads
            assert values(heads[1][1], "set-cookie") == [COOKIE] and body == b"docs\n", heads
            # Not in the manifest: no 103, no cookie.
            heads, body = curl_heads(site.plain, "/other.html", "--http2-prior-knowledge")
            assert [st for st, _ in heads] == [200] and body == b"other\n", heads
            assert values(heads[0][1], "set-cookie") == [], heads


def page_and_pushes(frames, text):
    """The page's stream, its 103 and 200 HEADERS, and the pushes as
    {path: promised stream id}, checking each push's response."""
    page = next(f.sid for f in frames if f.type == "HEADERS" and f.sid % 2 == 1)
    heads = [f for f in frames if f.type == "HEADERS" and f.sid == page]
    assert [f.field(":status") for f in heads] == ["103", "200"], text[-3000:]
    assert values(heads[0].fields, "link") == LINKS, heads[0].fields
    promises = [f for f in frames if f.type == "PUSH_PROMISE"]
    pushed = {}
    for p in promises:
        assert p.sid == page, p
        assert frames.index(heads[0]) < frames.index(p) < frames.index(heads[1]), frames
        pid = p.number("promised_stream_id")
        assert pid % 2 == 0, p.detail
        assert p.fields == [(":method", "GET"), (":scheme", "http"),
                            (":authority", p.field(":authority")),
                            (":path", p.field(":path"))], p.fields
        pushed[p.field(":path")] = pid
    return page, heads, pushed


def check_pushed(frames, text, pid, ctype, body):
    h = [f for f in frames if f.type == "HEADERS" and f.sid == pid]
    assert len(h) == 1 and h[0].field(":status") == "200", text[-3000:]
    assert h[0].field("content-type") == ctype, h[0].fields
    assert h[0].field("content-length") == str(len(body)), h[0].fields
    data = [f for f in frames if f.type == "DATA" and f.sid == pid]
    assert sum(f.length for f in data) == len(body) and data[-1].flags & 1, data
    assert body.decode() in text


def test_manifest_push():
    with Site() as site:
        manifest_site(site)
        with Sluice(config(site, 'policy { file = "manifest.lua" }', tls=False)):
            frames, text = nghttp(site.plain, ["/"])
            page, heads, pushed = page_and_pushes(frames, text)
            assert list(pushed) == ["/css/site.css", "/js/app.js"], pushed
            check_pushed(frames, text, pushed["/css/site.css"], "text/css", SITE_CSS)
            check_pushed(frames, text, pushed["/js/app.js"], "text/javascript", APP_JS)
            assert values(heads[1].fields, "set-cookie") == [COOKIE], heads[1].fields
            assert INDEX.decode() in text
            # The cookie says the client has the assets: hints, no push.
            for cookie in ("assets=v3", "theme=dark; assets=v3"):
                frames, text = nghttp(site.plain, ["/"], "-H", "cookie: " + cookie)
                page, heads, pushed = page_and_pushes(frames, text)
                assert pushed == {}, (cookie, text[-3000:])
                assert INDEX.decode() in text
            # An older version's cookie does not count.
            frames, text = nghttp(site.plain, ["/"], "-H", "cookie: assets=v2")
            assert list(page_and_pushes(frames, text)[2]) == ["/css/site.css", "/js/app.js"]
            # A client with SETTINGS_ENABLE_PUSH=0: hints, no push.
            frames, text = nghttp(site.plain, ["/"], "--no-push")
            assert "SETTINGS_ENABLE_PUSH(0x02):0" in text, text[:2000]
            page, heads, pushed = page_and_pushes(frames, text)
            assert pushed == {} and "PUSH_PROMISE" not in text, text[-3000:]
            assert values(heads[1].fields, "set-cookie") == [COOKIE]
            # Pages outside the manifest push nothing.
            frames, text = nghttp(site.plain, ["/other.html"])
            assert "PUSH_PROMISE" not in text and "other\n" in text, text[-3000:]


class LinkUpstream(BaseHTTPRequestHandler):
    """An upstream whose page names preload links (and two that are not
    pushed: another origin's, and a prefetch)."""
    protocol_version = "HTTP/1.1"
    LINK = ("</js/app.js>; rel=preload; as=script, <https://cdn.example/x.js>; rel=preload, "
            "</css/docs.css>; rel=prefetch, </css/site.css>; rel=preload; as=style")

    def do_GET(self):
        body = b"from upstream\n"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.send_header("link", self.LINK)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_manifest_push_from_upstream_link():
    with Site() as site:
        manifest_site(site)
        up = ThreadingHTTPServer(("127.0.0.1", 0), LinkUpstream)
        t = threading.Thread(target=up.serve_forever, daemon=True)
        t.start()
        try:
            routes = ('upstream { name = "app", servers = { "127.0.0.1:%d" } }\n'
                      'route { path = "/app/", proxy = "app" }\n'
                      'route { path = "/", static = "site" }\n' % up.server_address[1])
            cfg = config(site, 'policy { file = "manifest.lua" }', routes=routes, tls=False)
            with Sluice(cfg):
                frames, text = nghttp(site.plain, ["/app/page"])
                heads = [f for f in frames if f.type == "HEADERS" and f.sid % 2 == 1]
                assert [f.field(":status") for f in heads] == ["200"], text[-3000:]
                assert heads[0].field("link") == LinkUpstream.LINK, heads[0].fields
                assert heads[0].field("set-cookie") is None, heads[0].fields
                promises = [f for f in frames if f.type == "PUSH_PROMISE"]
                assert [p.field(":path") for p in promises] == ["/js/app.js", "/css/site.css"], \
                    text[-3000:]
                assert all(frames.index(p) < frames.index(heads[0]) for p in promises), frames
                check_pushed(frames, text, promises[0].number("promised_stream_id"),
                             "text/javascript", APP_JS)
                check_pushed(frames, text, promises[1].number("promised_stream_id"),
                             "text/css", SITE_CSS)
                assert "from upstream\n" in text
        finally:
            up.shutdown()
            up.server_close()


# -- windows.lua -----------------------------------------------------------------------

MiB = 1 << 20
DEFAULT_SETTINGS = {"SETTINGS_MAX_CONCURRENT_STREAMS": 100,
                    "SETTINGS_MAX_HEADER_LIST_SIZE": 65536}


def external_variant(site):
    """windows.lua with 127.0.0.1 no longer internal."""
    src = example_text("windows.lua")
    old = 'return ip == "127.0.0.1" or ip == "::1"'
    assert src.count(old) == 1, "windows.lua's internal() changed: update this test"
    site.write("windows_ext.lua", src.replace(old, 'return ip == "::1"'))


def window_updates(frames, sid):
    return [f.number("window_size_increment") for f in frames
            if f.type == "WINDOW_UPDATE" and f.sid == sid]


def ping_burst(port, n):
    """n PINGs in one write on a fresh connection; return ("answered", k)
    once all are acknowledged, or ("goaway", code)."""
    c = H2.plain(port)
    c.handshake()
    c.send(*[hf.PingFrame(0, opaque_data=i.to_bytes(8, "big")) for i in range(n)])
    acks = set()

    def done(f):
        if isinstance(f, hf.PingFrame) and "ACK" in f.flags:
            acks.add(int.from_bytes(f.opaque_data, "big"))
        return isinstance(f, hf.GoAwayFrame) or len(acks) == n
    f, _ = c.frames_until(done, timeout=10)
    if isinstance(f, hf.GoAwayFrame):
        c.close()
        return "goaway", f.error_code
    # The connection goes on after the burst.
    sid = c.request("/index.html")
    h, body = c.response(sid)
    assert h[b":status"] == b"200" and body == INDEX, (h, body)
    c.close()
    return "answered", len(acks)


def test_windows_internal_client():
    with Site() as site:
        copy_examples(site, "windows.lua")
        with Sluice(config(site, 'policy { file = "windows.lua" }', tls=False)):
            frames, text = nghttp(site.plain, ["/"])
            assert first_settings(frames) == dict(DEFAULT_SETTINGS, SETTINGS_INITIAL_WINDOW_SIZE=
                                                  8 * MiB), text[:3000]
            # The connection window raised from 65535 to 64 MiB.
            assert window_updates(frames, 0)[0] == 64 * MiB - 65535, text[:3000]
            # The looser ping budget: 100 at once are answered, 600 are too many.
            got = ping_burst(site.plain, 100)
            assert got == ("answered", 100), got
            got = ping_burst(site.plain, 600)
            assert got == ("goaway", ENHANCE_YOUR_CALM), got
        with Sluice(config(site, "", tls=False)):  # the defaults, for comparison
            frames, text = nghttp(site.plain, ["/"])
            assert first_settings(frames) == DEFAULT_SETTINGS, text[:3000]
            assert window_updates(frames, 0)[0] == MiB - 65535, text[:3000]
            got = ping_burst(site.plain, 100)
            assert got == ("goaway", ENHANCE_YOUR_CALM), got


def upload_window_updates(port, size):
    """POST size bytes to /echo with python3-h2 (sending as fast as the
    windows allow); return the WINDOW_UPDATE increments the server sent on
    the request's stream, after checking the echo."""
    s = connect_from(port)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.increment_flow_control_window(1 << 30)
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "127.0.0.1"),
                         (":path", "/echo"), ("content-length", str(size))])
    sent, got, ups, status, ended = 0, 0, [], None, False
    deadline = time.monotonic() + 15
    chunk = b"u" * 16384
    while not ended:
        while sent < size:
            n = min(c.local_flow_control_window(sid), c.max_outbound_frame_size, size - sent)
            if n <= 0:
                break
            c.send_data(sid, chunk[:n], end_stream=sent + n == size)
            sent += n
        s.sendall(c.data_to_send())
        assert time.monotonic() < deadline, (sent, got, ups[-5:])
        data = s.recv(1 << 20)
        assert data, "server closed"
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.WindowUpdated) and ev.stream_id == sid:
                ups.append(ev.delta)
            elif isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[b":status"]
            elif isinstance(ev, h2.events.DataReceived):
                got += len(ev.data)
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
            elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                raise AssertionError("upload failed: %r" % ev)
        s.sendall(c.data_to_send())
    s.close()
    assert status == b"200" and got >= size, (status, got)
    return ups


def test_windows_external_client():
    need_h2()
    with Site() as site:
        external_variant(site)
        with Sluice(config(site, 'policy { file = "windows_ext.lua" }', tls=False)):
            frames, text = nghttp(site.plain, ["/"])
            # Adaptive windows start at the defaults...
            assert first_settings(frames) == DEFAULT_SETTINGS, text[:3000]
            assert window_updates(frames, 0)[0] == MiB - 65535, text[:3000]
            # ...and grow with an upload: credit beyond the first 65535.
            ups = upload_window_updates(site.plain, 16 * MiB)
            assert max(ups) > 65535, ups[:40]
            # The default ping budget applies outside.
            got = ping_burst(site.plain, 100)
            assert got == ("goaway", ENHANCE_YOUR_CALM), got
        with Sluice(config(site, "", tls=False)):  # fixed windows, for comparison
            ups = upload_window_updates(site.plain, 16 * MiB)
            assert 0 < max(ups) <= 65535, ups[:40]


# -- ip_limit.lua ----------------------------------------------------------------------

def check_max_streams(c, want):
    got = server_settings(c)
    assert got.get(3) == want, ("SETTINGS_MAX_CONCURRENT_STREAMS", want, got)


def test_ip_limit_streams_per_address():
    with Site() as site:
        copy_examples(site, "ip_limit.lua")
        with Sluice(config(site, 'policy { file = "ip_limit.lua" }', tls=False)) as s:
            c1 = H2.plain(site.plain)
            check_max_streams(c1, 32)
            c2 = H2.plain(site.plain)
            check_max_streams(c2, 16)
            c3 = H2.plain(site.plain)
            check_max_streams(c3, 10)  # 32 // 3
            # Another address has its own share.
            o = h2_from(site.plain, "127.0.0.2")
            check_max_streams(o, 32)
            for c in (c3, c2):
                c.close()
            wait_stderr(s, "closed (peer closed)", 2)
            c4 = H2.plain(site.plain)
            check_max_streams(c4, 16)  # c1 and c4
            # The session holds c1 to what it was told: 32 at once are
            # answered, a 33rd is refused.
            sids = [c1.new_id() for _ in range(33)]
            c1.send(*[c1.headers_frame(sid, c1.req_headers("/index.html")) for sid in sids])
            for sid in sids[:32]:
                h, body = c1.response(sid)
                assert h[b":status"] == b"200" and body == INDEX, h
            refused = lambda f=None: (sids[32] in c1.streams and  # noqa: E731
                                      c1.streams[sids[32]].reset is not None)
            if not refused():
                c1.frames_until(refused)
            assert c1.streams[sids[32]].reset == REFUSED_STREAM, c1.streams[sids[32]].reset
            for c in (c1, c4, o):
                c.close()


def test_ip_limit_rate():
    with Site() as site:
        copy_examples(site, "ip_limit.lua")
        with Sluice(config(site, 'policy { file = "ip_limit.lua" }', tls=False)):
            c = H2.plain(site.plain)
            c.handshake()
            statuses = []
            t0 = time.monotonic()
            for _ in range(5):  # 150 requests, 30 at a time (the limit is 32)
                sids = [c.new_id() for _ in range(30)]
                c.send(*[c.headers_frame(sid, c.req_headers("/index.html")) for sid in sids])
                for sid in sids:
                    h, body = c.response(sid)
                    statuses.append(int(h[b":status"]))
                    if statuses[-1] == 429:
                        assert body == b"too many requests\n", body
                        assert h[b"content-type"] == b"text/plain", h
                    else:
                        assert statuses[-1] == 200 and body == INDEX, (h, body)
            elapsed = time.monotonic() - t0
            c.close()
            # The burst of 100 all pass; later ones only as tokens come back
            # (50 per second).
            assert statuses[:100] == [200] * 100, statuses
            refill = int(elapsed * 50) + 1
            limited = statuses.count(429)
            assert limited >= 50 - refill and limited > 0, (limited, elapsed)
            assert limited + statuses.count(200) == 150
            lines = wait_log(site, 150)
        rated = [ln for ln in lines if tags(ln) == ["limited=rate"]]
        assert len(rated) == limited, lines
        assert all(ln.split()[4] == "429" and ln.endswith(" limited=rate") for ln in rated)
        assert all(tags(ln) == [] for ln in lines if ln.split()[4] == "200"), lines


# -- ab_a.lua + ab_b.lua ---------------------------------------------------------------

def side(port, src):
    status, hdrs, body = h1_get(port, "/index.html", src)
    assert status == 200 and body == INDEX, (status, hdrs)
    return hdrs["x-ab"]


def test_ab_split_by_client_address():
    with Site() as site:
        copy_examples(site, "ab_a.lua", "ab_b.lua")
        pol = 'policy { files = { "ab_a.lua", "ab_b.lua" }, split = "client_hash" }'
        with Sluice(config(site, pol, tls=False)):
            home = [side(site.plain, "127.0.0.1") for _ in range(10)]
            assert home in (["a"] * 10, ["b"] * 10), home
            tried, other = [], None
            for addr in addresses():
                tried.append(addr)
                if side(site.plain, addr) != home[0]:
                    other = addr
                    break
            assert other, "every address got side %s" % home[0]
            away = [side(site.plain, other) for _ in range(9)]
            assert away == [away[0]] * 9 and away[0] != home[0], away
            # Over HTTP/2 too, for each request of a connection.
            for addr, want in (("127.0.0.1", home[0]), (other, away[0])):
                c = h2_from(site.plain, addr)
                for _ in range(3):
                    h, body = c.response(c.request("/index.html"))
                    assert h[b"x-ab"] == want.encode() and body == INDEX, h
                c.close()
            lines = wait_log(site, 10 + len(tried) + 9 + 6)
        assert len(lines) == 10 + len(tried) + 9 + 6, lines
        want = {"127.0.0.1": home[0], other: away[0]}
        for ln in lines:
            peer = ln.split()[0].rsplit(":", 1)[0]
            # the addresses tried on the way got the same side as 127.0.0.1
            assert tags(ln) == ["ab=" + want.get(peer, home[0])], ln
        assert sum(1 for ln in lines if ln.startswith(other + ":")) == 1 + 9 + 3, lines


# -- typical.lua -----------------------------------------------------------------------

PROBE = """-- probe.lua: shows the worker's shared.hits (typical.lua counts them)
function on_response(stream, res)
  res:set("x-hits", tostring(shared.hits or 0))
end
"""

CACHE = {"/a.css": "public, max-age=31536000", "/a.js": "public, max-age=31536000",
         "/a.png": "public, max-age=86400", "/index.html": "no-cache",
         "/a.txt": "no-store", "/": "no-store"}


def test_typical_cache_control_and_shared_counter():
    with Site() as site:
        copy_examples(site, "typical.lua")
        site.write("probe.lua", PROBE)
        for p in CACHE:
            if p not in ("/", "/index.html"):
                site.write("site" + p, b"x\n")
        pol = 'policy { files = { "typical.lua", "probe.lua" }, split = "client_hash" }'
        with Sluice(config(site, pol, tls=False)):
            counted = 0  # responses typical.lua saw

            def get(path, src):
                nonlocal counted
                status, hdrs, body = h1_get(site.plain, path, src)
                if "x-hits" not in hdrs:
                    counted += 1
                return status, hdrs

            # Which address gets which policy (found by asking).
            typical = probe = None
            for addr in ["127.0.0.1"] + addresses():
                _, hdrs = get("/a.txt", addr)
                if "x-hits" in hdrs:
                    probe = probe or addr
                else:
                    typical = typical or addr
                if typical and probe:
                    break
            assert typical and probe, (typical, probe)
            for path, want in CACHE.items():
                status, hdrs = get(path, typical)
                assert status == 200 and hdrs.get("cache-control") == want, (path, hdrs)
                # The probe's side is untouched.
                status, hdrs = get(path, probe)
                assert status == 200 and "cache-control" not in hdrs, (path, hdrs)
            # The counter: every response typical.lua answered, errors too.
            assert get("/missing.css", typical)[0] == 404
            c = h2_from(site.plain, typical)
            for _ in range(5):
                h, _ = c.response(c.request("/a.css", extra=[("user-agent", "t")]))
                assert h[b"cache-control"] == b"public, max-age=31536000", h
                counted += 1
            c.close()
            status, hdrs = get("/a.txt", probe)
            assert hdrs["x-hits"] == str(counted), (hdrs, counted)


# -- broken policies -------------------------------------------------------------------

BROKEN = """-- broken.lua: on_request fails, by error or endless loop
function on_request(stream, req)
  stream:tag("seen", "yes")
  if req.path:find("loop", 1, true) then
    while true do end
  end
  local p = nil
  return p.field
end
"""

ERR = ("policy broken.lua: on_request failed (default applies): "
       "broken.lua:8: attempt to index a nil value (local 'p')")


def test_broken_on_request_error():
    with Site() as site:
        site.write("broken.lua", BROKEN)
        with Sluice(config(site, 'policy { file = "broken.lua" }')) as s:
            status, _, body = h1_get(site.plain, "/index.html")
            assert (status, body) == (200, INDEX)
            c = H2.plain(site.plain)
            for _ in range(3):
                h, body = c.response(c.request("/index.html"))
                assert h[b":status"] == b"200" and body == INDEX, h
            c.close()
            heads, body = curl_heads(site.tls, "/index.html", "--http2", tls=True)
            assert [st for st, _ in heads] == [200] and body == INDEX, heads
            text = wait_stderr(s, ERR, 5)
            assert text.count(ERR) == 5, text
            lines = wait_log(site, 5)
        # What the failed hook asked for (a tag) was not done.
        assert [tags(ln) for ln in lines] == [[]] * 5, lines


def test_broken_endless_loop():
    with Site() as site:
        site.write("broken.lua", BROKEN)
        budget = "policy broken.lua: on_request failed (default applies): broken.lua:5: "
        for limits, why in (("", "instruction budget exceeded"),
                            ("instructions = 10000000000, time = 0.05, ", "time limit exceeded")):
            pol = 'policy { %sfile = "broken.lua" }' % limits
            with Sluice(config(site, pol, tls=False)) as s:
                c = H2.plain(site.plain)
                t0 = time.monotonic()
                h, body = c.response(c.request("/index.html?loop"))
                took = time.monotonic() - t0
                assert h[b":status"] == b"200" and body == INDEX, h
                wait_stderr(s, budget + why)
                # The connection and the next requests go on.
                h, body = c.response(c.request("/index.html?loop=2"))
                assert h[b":status"] == b"200" and body == INDEX, h
                h, body = c.response(c.request("/index.html"))
                assert h[b":status"] == b"200" and body == INDEX, h
                assert not c.goaways, c.goaways
                c.close()
                text = wait_stderr(s, ERR)
                assert text.count(budget + why) == 2, text
                if why.startswith("time"):
                    assert 0.04 <= took < 2, took


def test_check_reports_policy_syntax_error():
    with Site() as site:
        os.mkdir(site.path("policies"))
        site.write("policies/syn.lua", "-- syn.lua\nfunction on_request(s, r)\n  if then\nend\n")
        site.write("policies/dry.lua", "function on_connection(c)\n"
                                       "  c:settings{ max_frame_size = 1 }\nend\n")
        exe = Sluice.exe()
        for name, msg in (
                ("syn.lua", "syn.lua:3: unexpected symbol near 'then'"),
                ("dry.lua", "dry.lua:2: conn:settings: max_frame_size must be an integer in "
                            "16384..16777215 (in a dry run of on_connection)")):
            cfg = site.write("sluice.lua", 'listen { "127.0.0.1:%d" }\n'
                                           'route { path = "/", static = "site" }\n\n'
                                           'policy { file = "policies/%s" }\n' % (site.plain, name))
            want = "sluice: %s:4: policy: %s\n" % (cfg, msg)
            for cmd in ([exe, "-t", "-c", cfg], [exe, "-c", cfg]):
                rc, out, err = run(cmd, timeout=10, check=False)
                assert (rc, err.decode()) == (1, want), (cmd, rc, out, err)
        # With the file fixed, the check passes.
        site.write("policies/syn.lua", "function on_request(s, r) end\n")
        cfg = site.write("sluice.lua", 'listen { "127.0.0.1:%d" }\n'
                                       'route { path = "/", static = "site" }\n'
                                       'policy { file = "policies/syn.lua" }\n' % site.plain)
        rc, out, err = run([exe, "-t", "-c", cfg], timeout=10, check=False)
        assert rc == 0, (rc, out, err)


if __name__ == "__main__":
    main(globals())
