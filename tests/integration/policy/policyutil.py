"""policyutil.py — shared by the policy integration tests: example policies
copied into a test's temp dir, configs that load them, clients bound to a
chosen 127.0.0.x source address, nghttp -v parsed into frames, and waits on
the access and error logs. Builds on ../host/hostutil.py."""

import os
import re
import shutil
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "host"))
from hostutil import (ENHANCE_YOUR_CALM, H2, Site, Skip, Sluice, h1_response,  # noqa: E402,F401
                      hf, main, need, run)

EXAMPLES = os.path.normpath(os.path.join(HERE, "..", "..", "..", "examples", "policies"))

ROUTES = """
route { path = "/echo", echo = true }
route { path = "/", static = "site" }
"""


def copy_examples(site, *names):
    """The example policy files, unchanged, next to the test's config."""
    for n in names:
        shutil.copy(os.path.join(EXAMPLES, n), site.path(n))


def example_text(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        return f.read()


def config(site, policy="", extra="", routes=ROUTES, **kw):
    """sluice.lua with one worker (`shared` is per worker), an access log,
    the usual routes and the policy directive given."""
    body = "workers(1)\naccess_log \"access.log\"\n%s\n%s\n%s" % (extra, routes, policy)
    return site.config(body, **kw)


def pattern(n):
    block = bytes(range(251)) * 4200
    return (block * (n // len(block) + 1))[:n]


# -- clients from a chosen source address ------------------------------------------

def connect_from(port, src="127.0.0.1", timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def h1_get(port, path, src="127.0.0.1", headers=()):
    """One HTTP/1.1 GET on a new connection from src; (status, headers, body)."""
    s = connect_from(port, src)
    req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % path
    req += "".join("%s: %s\r\n" % kv for kv in headers) + "Connection: close\r\n\r\n"
    s.sendall(req.encode())
    try:
        return h1_response(s)
    finally:
        s.close()


def h2_from(port, src="127.0.0.1", **kw):
    return H2(connect_from(port, src), **kw)


def server_settings(c):
    """Read up to the server's first SETTINGS (answering as a client does);
    return its values as a dict."""
    f, _ = c.frames_until(lambda f: isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags)
    c.send(hf.SettingsFrame(0, flags=["ACK"]))
    return dict(f.settings)


def addresses(skip=()):
    """Loopback source addresses to try, 127.0.0.2 onwards."""
    return ["127.0.0.%d" % i for i in range(2, 64) if "127.0.0.%d" % i not in skip]


# -- nghttp -v ------------------------------------------------------------------------

class Frame:
    """A frame nghttp received: .type ("HEADERS", "DATA", ...), .sid,
    .length, .flags, .fields (the header fields nghttp printed just before
    it) and .detail (the indented lines it printed after it)."""

    def __init__(self, type_, sid, length, flags, fields):
        self.type, self.sid, self.length, self.flags = type_, sid, length, flags
        self.fields = fields
        self.detail = []

    def field(self, name):
        return dict(self.fields).get(name)

    def settings(self):
        out = {}
        for ln in self.detail:
            m = re.match(r"\[(SETTINGS_\w+)\(0x[0-9a-f]+\):(\d+)\]", ln)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def number(self, key):
        for ln in self.detail:
            m = re.search(key + r"=(\d+)", ln)
            if m:
                return int(m.group(1))
        return None

    def __repr__(self):
        return "%s(%d,len=%d,flags=%#x)" % (self.type, self.sid, self.length, self.flags)


def nghttp(port, paths, *opts, timeout=30):
    """nghttp -v on paths of one connection -> (received frames, stdout)."""
    need("nghttp")
    urls = ["http://127.0.0.1:%d%s" % (port, p) for p in paths]
    _, out, _ = run(["nghttp", "-v"] + list(opts) + urls, timeout=timeout)
    text = out.decode("latin-1")
    frames, fields, cur = [], [], None
    for line in text.splitlines():
        m = re.match(r"\[[ \d.]+\] recv \(stream_id=\d+\) (:?[^:]+): (.*)$", line)
        if m:
            fields.append((m.group(1), m.group(2)))
            cur = None
            continue
        m = re.match(r"\[[ \d.]+\] recv (\w+) frame <length=(\d+), flags=(0x[0-9a-f]+), "
                     r"stream_id=(\d+)>", line)
        if m:
            cur = Frame(m.group(1), int(m.group(4)), int(m.group(2)), int(m.group(3), 16),
                        fields)
            frames.append(cur)
            fields = []
            continue
        if line.startswith("[") or not line.startswith(" "):
            cur = None  # a frame we sent, or a body line
        elif cur is not None:
            cur.detail.append(line.strip())
    return frames, text


def first_settings(frames):
    return next(f for f in frames if f.type == "SETTINGS" and not f.flags & 1).settings()


# -- logs ---------------------------------------------------------------------------

def wait_for(what, pred, timeout=5.0):
    """Poll pred() until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def log_lines(site):
    try:
        with open(site.path("access.log")) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_log(site, n):
    """The access log once it has at least n lines."""
    return wait_for("%d access log lines (have %r)" % (n, log_lines(site)[-5:]),
                    lambda: len(log_lines(site)) >= n and log_lines(site))


def wait_stderr(s, text, count=1, timeout=5.0):
    """The server's stderr once `text` appears in it `count` times."""
    return wait_for("%r in stderr: %s" % (text, s.stderr()[-2000:]),
                    lambda: s.stderr().count(text) >= count and s.stderr(), timeout)


def tags(line):
    """The ` key=value` policy tags at the end of an access log line (the
    fields after code=... for h2, after tls=... for HTTP/1.1)."""
    words = line.split()
    fixed = 11 if "proto=h2" in words else 10
    return [w for w in words[fixed:] if not w.startswith("upstream=")]
