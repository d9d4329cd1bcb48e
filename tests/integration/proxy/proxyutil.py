"""proxyutil.py — shared by the reverse-proxy tests: upstream fixture
processes (upstream_h1.py, upstream_h2.py, grpc_fixture.py) on free ports,
sluice configs with upstream groups, clients that see trailers, and waits
on sluice's log. Builds on ../host/hostutil.py (Site, Sluice, the raw H2
client, the test runner)."""

import hashlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "host"))
import hostutil  # noqa: E402
from hostutil import H2, Site, Skip, Sluice, free_port, need, run  # noqa: E402,F401

PY = "/usr/bin/python3"  # Debian's: it has python3-h2 and python3-grpcio
MiB = 1 << 20

from upstream_h1 import pattern_chunks  # noqa: E402


def pattern(n):
    return b"".join(pattern_chunks(n))


def sha(data):
    return hashlib.sha256(data).hexdigest()


# -- upstream fixtures ---------------------------------------------------------

class Upstream:
    """A fixture server process: kind "h1", "h2" or "grpc". .addr is
    "127.0.0.1:PORT". Stopped (SIGTERM) when the block ends; a fixture that
    crashed fails the test."""

    SCRIPTS = {"h1": "upstream_h1.py", "h2": "upstream_h2.py", "grpc": "grpc_fixture.py"}

    def __init__(self, kind, name=None, flag=None, reset=False, tls=None, port=None):
        self.kind, self.name, self.flag, self.tls = kind, name or kind, flag, tls
        self.port = port or free_port()
        self.addr = "127.0.0.1:%d" % self.port
        args = [PY, os.path.join(HERE, self.SCRIPTS[kind]), "--port", str(self.port)]
        if kind != "grpc":
            args += ["--name", self.name]
        if flag:
            args += ["--flag", flag]
        if reset:
            args += ["--reset"]
        if tls:
            args += ["--tls", tls[0], tls[1]]
        self.args = args
        self.proc = None

    def start(self):
        self.err = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.err,
                                     env=env)
        deadline = time.monotonic() + 10
        out = b""
        while b"ready" not in out:
            r, _, _ = select.select([self.proc.stdout], [], [],
                                    max(deadline - time.monotonic(), 0))
            if not r:
                self.kill()
                raise AssertionError("%s fixture not ready: %s" % (self.name, self.stderr()))
            b = os.read(self.proc.stdout.fileno(), 256)
            if not b:
                raise AssertionError("%s fixture exited: %s" % (self.name, self.stderr()))
            out += b
        return self

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def kill(self):
        """Stop it now (a server that dies); the port then refuses."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc.stdout.close()
        text = self.stderr()
        self.proc = None
        if "Traceback" in text:
            raise AssertionError("%s fixture failed:\n%s" % (self.name, text[-3000:]))

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        try:
            self.stop()
        except AssertionError:
            if et is None:
                raise
        return False

    def stats(self):
        """The fixture's counters and request log, asked directly."""
        if self.kind == "h1":
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if self.tls:
                s = hostutil.tls_client_context().wrap_socket(s)
            s.sendall(b"GET /_stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            status, _, body = hostutil.h1_response(s)
            s.close()
        else:
            c = H2.tls(self.port) if self.tls else H2.plain(self.port)
            sid = c.request("/_stats")
            hdrs, body = c.response(sid)
            c.close()
            status = int(hdrs[b":status"])
        assert status == 200, status
        return json.loads(body)

    def count(self, path=None):
        """Complete requests the fixture received (for path, or all)."""
        c = self.stats()["counts"]
        return c.get(path, 0) if path else sum(c.values())


# -- sluice configs ------------------------------------------------------------

def lua(v):
    """A Python value as a Lua literal (dicts become tables with keys)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(v, (list, tuple)):
        return "{ " + ", ".join(lua(x) for x in v) + " }"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (k, lua(x)) for k, x in v.items()) + " }"
    raise TypeError(v)


def upstream_block(name, servers, **opts):
    """upstream { name = ..., servers = {...}, opts... }; durations in
    seconds, fractions allowed (config.c's rd_secs, like timeouts{})."""
    fields = {"name": name, "servers": [getattr(s, "addr", s) for s in servers]}
    fields.update(opts)
    return "upstream " + lua(fields) + "\n"


def route_block(upstream="app", path="/", **opts):
    fields = {"path": path, "proxy": upstream}
    fields.update(opts)
    return "route " + lua(fields) + "\n"


# Short timeouts everywhere, so that a test that fails does so quickly.
FAST = {"connect_timeout": 1, "read_timeout": 5, "send_timeout": 5}


def proxy_site(site, servers, route=None, extra="", listen_tls=False, **opts):
    """Write a config proxying everything (route "/") to upstream "app" with
    servers (protocol h2 if they are h2 or grpc fixtures) and opts (the
    upstream block's keys), access log on stderr; listen_tls adds the TLS
    listener. Returns the config's path."""
    o = dict(FAST)
    kinds = {getattr(s, "kind", None) for s in servers}
    if kinds & {"h2", "grpc"}:
        o["protocol"] = "h2"
    o.update(opts)
    body = (upstream_block("app", servers, **o) + (route or route_block()) +
            'access_log "-"\nmax_body "1g"\n' + extra)
    return site.config(body, tls=listen_tls)


class Proxy(Sluice):
    """A Sluice that, when the test fails inside its block, prints the tail
    of its log (where the upstream errors are) with the failure."""

    def __exit__(self, et, ev, tb):
        if et is not None and et is not Skip and self.proc is not None:
            sys.stderr.write("--- sluice log:\n%s\n" % "\n".join(
                self.stderr().splitlines()[-40:]))
        return super().__exit__(et, ev, tb)


def serve(site, servers, **kw):
    need("curl")
    return Proxy(proxy_site(site, servers, **kw))


# -- waiting on sluice's log -----------------------------------------------------

def wait_log(sl, regex, timeout=5.0, count=1):
    """Wait until sluice's stderr has `count` lines matching regex; return them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in sl.stderr().splitlines() if re.search(regex, ln)]
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError("no%s log line matching %r in %.1f s; log:\n%s" % (
                "" if count == 1 else " %d" % count, regex, timeout, sl.stderr()[-3000:]))
        time.sleep(0.05)


def log_lines(sl, regex):
    return [ln for ln in sl.stderr().splitlines() if re.search(regex, ln)]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


# -- clients ---------------------------------------------------------------------

class Reply:
    def __init__(self, version, status, headers, body):
        self.version, self.status, self.headers, self.body = version, status, headers, body

    def __repr__(self):
        return "HTTP/%s %d %r %r" % (self.version, self.status, self.headers, self.body[:200])


def curl(port, path, *args, proto="h2c", timeout=60, scheme=None, cafile=None):
    """One request with curl to sluice on 127.0.0.1:port. proto: h2c, h1,
    h2 (TLS), h1-tls. Returns a Reply with lower-case header names (repeated
    ones joined with ", ")."""
    opts = {"h2c": ["--http2-prior-knowledge"], "h1": ["--http1.1"],
            "h2": ["--http2"], "h1-tls": ["--http1.1"]}[proto]
    scheme = scheme or ("https" if proto in ("h2", "h1-tls") else "http")
    with tempfile.NamedTemporaryFile() as hdr, tempfile.NamedTemporaryFile() as body:
        cmd = ["curl", "-sS", "--max-time", str(timeout - 5), "-D", hdr.name,
               "-o", body.name, "-w", "%{http_version} %{http_code}"] + opts
        if scheme == "https":
            cmd += ["--cacert", cafile] if cafile else ["-k"]
        cmd += list(args) + ["%s://127.0.0.1:%d%s" % (scheme, port, path)]
        _, out, _ = run(cmd, timeout=timeout)
        version, code = out.decode().split()
        headers = {}
        for line in open(hdr.name, "rb").read().decode("latin-1").splitlines()[1:]:
            k, sep, v = line.partition(":")
            if sep:
                k = k.strip().lower()
                headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
        return Reply(version, int(code), headers, open(body.name, "rb").read())


class H2T(H2):
    """hostutil's raw HTTP/2 client, also keeping each stream's trailers
    (the second HEADERS block) in .trailers[sid]."""

    def __init__(self, *a, **kw):
        self.trailers = {}
        super().__init__(*a, **kw)

    def _record(self, f):
        st = self.streams.get(f.stream_id)
        if (st is not None and st.headers is not None and
                isinstance(f, hostutil.hf.HeadersFrame)):
            self.trailers[f.stream_id] = dict(f.headers)
        super()._record(f)

    def send_trailers(self, sid, headers):
        self.send(self.headers_frame(sid, headers, end_stream=True))

    def send_data(self, sid, data, end=False):
        """DATA frames of at most 16 KiB (the default max frame size)."""
        frames = []
        for i in range(0, len(data), 16384):
            last = end and i + 16384 >= len(data)
            frames.append(hostutil.hf.DataFrame(sid, data=data[i:i + 16384],
                                                flags=["END_STREAM"] if last else []))
        self.send(*frames)


def h1_exchange(port, raw, timeout=5.0, quiet=0.5):
    """Send raw bytes on a new HTTP/1.1 connection; return (status, headers
    as a list of (lower-case name, value), body, trailers list, rest) where
    rest is whatever followed the first response until the server closed or
    went quiet for `quiet` seconds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(raw)
    r = H1Reader(s, timeout)
    status, hdrs, body, trailers = r.response()
    rest = r.drain(quiet)
    s.close()
    return status, hdrs, body, trailers, rest


class H1Reader:
    """HTTP/1.1 responses off a socket, with chunked trailers."""

    def __init__(self, sock, timeout=5.0):
        self.sock, self.buf = sock, bytearray()
        sock.settimeout(timeout)

    def more(self):
        b = self.sock.recv(262144)
        assert b, "EOF inside the response: %r" % bytes(self.buf[-300:])
        self.buf += b

    def line(self):
        while b"\r\n" not in self.buf:
            self.more()
        i = self.buf.index(b"\r\n")
        ln = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return ln.decode("latin-1")

    def fields(self):
        out = []
        while True:
            ln = self.line()
            if not ln:
                return out
            k, _, v = ln.partition(":")
            out.append((k.strip().lower(), v.strip()))

    def response(self, head=False):
        status = int(self.line().split()[1])
        hdrs = self.fields()
        h = dict(hdrs)
        body, trailers = bytearray(), []
        if head or status in (204, 304):
            pass
        elif h.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.line().split(";")[0], 16)
                if size == 0:
                    trailers = self.fields()
                    break
                while len(self.buf) < size + 2:
                    self.more()
                assert self.buf[size:size + 2] == b"\r\n", "chunk without CRLF"
                body += self.buf[:size]
                del self.buf[:size + 2]
        elif "content-length" in h:
            n = int(h["content-length"])
            while len(self.buf) < n:
                self.more()
            body = self.buf[:n]
            del self.buf[:n]
        else:
            try:
                while True:
                    self.more()
            except AssertionError:
                pass
            body, self.buf = self.buf, bytearray()
        return status, hdrs, bytes(body), trailers

    def drain(self, quiet):
        """Bytes until EOF or `quiet` seconds of silence."""
        out = bytes(self.buf)
        self.buf = bytearray()
        self.sock.settimeout(quiet)
        try:
            while True:
                b = self.sock.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def hdr(entry, name):
    """Values of header `name` in a fixture log entry (a list)."""
    return [v for k, v in entry["headers"] if k == name]


def main(env):
    hostutil.main(env)
