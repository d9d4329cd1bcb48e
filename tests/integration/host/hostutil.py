"""hostutil.py — shared by the `sluice` host integration tests: a temp
directory with certificates and a config, a `sluice` process started on free
ports and stopped with SIGTERM (failing if it crashed, exited non-zero or a
sanitizer spoke), a raw HTTP/2 client on hyperframe + hpack, and a runner
that calls the one test named on the command line."""

import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_STREAM_ID = 2**31 - 1

# HTTP/2 error codes (RFC 9113 section 7) and frame types the tests use.
NO_ERROR = 0x0
ENHANCE_YOUR_CALM = 0xB
T_DATA, T_HEADERS, T_SETTINGS, T_PING, T_GOAWAY = 0, 1, 4, 6, 7

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error")

try:
    import hpack
    from hyperframe import frame as hf
except ImportError:  # reported as a skip by main()
    hpack = hf = None


class Skip(Exception):
    """The test cannot run here (a program is missing)."""


def need(*programs):
    for p in programs:
        if shutil.which(p) is None:
            raise Skip(p + " not installed")


def free_port(family=socket.AF_INET):
    """A TCP port that was free a moment ago on 127.0.0.1 (or ::1)."""
    s = socket.socket(family)
    s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, timeout=30, check=True, stdin=None):
    """Run a client; return (exit code, stdout, stderr) as bytes."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, stdin=stdin)
    if check:
        assert p.returncode == 0, "%s: exit %d\n%s" % (
            " ".join(cmd), p.returncode, p.stderr.decode(errors="replace")[-3000:])
    return p.returncode, p.stdout, p.stderr


def make_cert(directory, name, sans):
    """A self-signed EC certificate (the command examples/sluice.lua shows);
    returns (cert path, key path)."""
    need("openssl")
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=" + sans[0].split(":", 1)[1],
         "-addext", "subjectAltName=" + ",".join(sans),
         "-keyout", key, "-out", cert], timeout=20)
    return cert, key


def cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def admin_metrics(port):
    """The admin endpoint's Prometheus text: ({series: value}, text)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/metrics" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    text = p.stdout.decode()
    out = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            name, _, value = ln.rpartition(" ")
            out[name] = float(value)
    return out, text


def wait_admin_metrics(port, pred, timeout=5.0):
    """admin_metrics() once pred(series) holds or timeout passed (workers
    publish every 100 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        m, text = admin_metrics(port)
        if pred(m) or time.monotonic() > deadline:
            return m, text
        time.sleep(0.05)


def cpu_ticks(pid):
    """utime + stime of a process (all threads), in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


class Site:
    """A temp directory holding the config, certificates and a static root
    (`site/`, with index.html = INDEX). Ports: .tls and .plain, free ones."""

    INDEX = b"<!doctype html>\n<title>sluice</title>\n<p>hello from the host tests</p>\n"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-host-")
        self.root = os.path.join(self.dir, "site")
        os.mkdir(self.root)
        self.write("site/index.html", self.INDEX)
        self.tls = free_port()
        self.plain = free_port()
        self.cert = self.key = None

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def write(self, rel, data):
        with open(self.path(rel), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return self.path(rel)

    def localhost_cert(self):
        if self.cert is None:
            self.cert, self.key = make_cert(self.dir, "localhost",
                                            ["DNS:localhost", "IP:127.0.0.1", "IP:::1"])
        return self.cert, self.key

    def config(self, body="", tls=True, plain=True, cert=True):
        """Write sluice.lua: the listeners, the default certificate, the usual
        routes (/echo, / static) and `body` (more directives); return its path."""
        lines = []
        if tls:
            lines.append('listen { "127.0.0.1:%d", tls = true }' % self.tls)
        if plain:
            lines.append('listen { "127.0.0.1:%d" }' % self.plain)
        if tls and cert:
            self.localhost_cert()
            lines.append('tls_certificate { cert = "localhost.pem", key = "localhost.key" }')
        lines.append(body)
        return self.write("sluice.lua", "\n".join(lines) + "\n")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.cleanup()
        return False


ROUTES = """
route { path = "/echo", echo = true }
route { path = "/", static = "site" }
"""


class Sluice:
    """A `sluice -c CONFIG` process: `with Sluice(cfg) as s:`. Starting waits
    for "ready" on stdout; leaving the block stops it with SIGTERM and fails
    the test if it did not exit 0 in time, died before, or its stderr holds a
    sanitizer report."""

    def __init__(self, config, stop_timeout=8):
        self.config = config
        self.stop_timeout = stop_timeout
        self.proc = None
        self.terminated = False
        self.stderr_text = ""

    @staticmethod
    def exe():
        exe = os.environ.get("SLUICE_BIN")
        if not exe or not os.access(exe, os.X_OK):
            raise AssertionError("set SLUICE_BIN to the sluice executable")
        return exe

    def __enter__(self):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([self.exe(), "-c", self.config], stdout=subprocess.PIPE,
                                     stderr=self.err)
        out = b""
        deadline = time.monotonic() + 10
        while b"ready" not in out:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not r:
                self._kill()
                raise AssertionError("sluice not ready in 10 s: " + self.stderr())
            b = os.read(self.proc.stdout.fileno(), 256)
            if not b:
                self.proc.wait(5)
                raise AssertionError("sluice exited at start (%s): %s" % (
                    self.proc.returncode, self.stderr()))
            out += b
        return self

    def __exit__(self, et, ev, tb):
        try:
            self.stop()
        except AssertionError:
            if et is None:
                raise
            # the test's own failure is the one to report; print the server's
            sys.stderr.write("sluice stderr:\n" + self.stderr_text[-4000:] + "\n")
        return False

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.alive(), "sluice died: " + self.stderr()[-3000:]
        self.proc.send_signal(sig)

    def terminate(self):
        """SIGTERM now (graceful stop); stop() then only waits."""
        self.signal(signal.SIGTERM)
        self.terminated = True

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def wait_exit(self, timeout):
        """Wait for the process to end by itself (after terminate())."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("sluice still running %.1f s after SIGTERM" % timeout)
        return self.proc.returncode

    def stop(self):
        if self.proc is None:
            return
        died = None if self.terminated else self.proc.poll()
        if self.proc.poll() is None:
            if not self.terminated:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                self.stderr_text = self.stderr()
                raise AssertionError("sluice did not exit within %d s of SIGTERM:\n%s" % (
                    self.stop_timeout, self.stderr_text[-4000:]))
        rc = self.proc.returncode
        self.proc.stdout.close()
        self.stderr_text = self.stderr()
        self.err.close()
        self.proc = None
        if os.environ.get("SLUICE_VERBOSE"):
            sys.stdout.write("--- sluice stderr:\n" + self.stderr_text)
        bad = [m for m in SANITIZER_MARKS if m in self.stderr_text]
        if rc != 0 or bad or died is not None:
            raise AssertionError("sluice exit status %s%s%s; stderr:\n%s" % (
                rc, " (died before SIGTERM)" if died is not None else "",
                " sanitizer: %s" % bad if bad else "", self.stderr_text[-6000:]))


# -- TLS ------------------------------------------------------------------------

def tls_client_context(alpn=None, cafile=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(port, alpn=None, server_hostname=None, cafile=None, timeout=5.0):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    ctx = tls_client_context(alpn, cafile)
    return ctx.wrap_socket(raw, server_hostname=server_hostname)


def h1_response(sock, timeout=5.0):
    """Read one HTTP/1.1 response framed by content-length or chunked coding
    (decoded strictly: malformed framing fails); return (status, headers
    dict with lower-case names, body)."""
    sock.settimeout(timeout)
    buf = bytearray()

    def more():
        b = sock.recv(65536)
        assert b, "EOF inside the response: %r" % bytes(buf[-300:])
        buf.extend(b)

    while b"\r\n\r\n" not in buf:
        more()
    end = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[:end + 4]
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            while b"\r\n" not in buf:
                more()
            i = buf.index(b"\r\n")
            line = bytes(buf[:i])
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                raise AssertionError("bad chunk-size line %r; body so far %r, then %r" % (
                    line, bytes(body[-100:]), bytes(buf[:100])))
            del buf[:i + 2]
            if size == 0:
                while not buf.startswith(b"\r\n"):  # no trailers expected
                    if len(buf) >= 2:
                        raise AssertionError("bytes after the last chunk: %r" % bytes(buf[:100]))
                    more()
                del buf[:2]
                break
            while len(buf) < size + 2:
                more()
            assert buf[size:size + 2] == b"\r\n", "chunk of %d not followed by CRLF: %r" % (
                size, bytes(buf[max(size - 20, 0):size + 20]))
            body += buf[:size]
            del buf[:size + 2]
    else:
        n = int(hdrs.get("content-length", "0"))
        while len(buf) < n:
            more()
        body = buf[:n]
        del buf[:n]
    assert not buf, "%d bytes after the response: %r" % (len(buf), bytes(buf[:100]))
    return status, hdrs, bytes(body)


# -- a raw HTTP/2 client --------------------------------------------------------

class Stream:
    """What the server sent on one stream."""

    def __init__(self):
        self.headers = None
        self.body = bytearray()
        self.reset = None
        self.ended = False


class H2:
    """A hand-driven HTTP/2 client over a socket (plain or TLS): frames go
    out as given, come back one at a time. Header blocks use one HPACK
    encoder/decoder pair per connection."""

    def __init__(self, sock, settings=None, preface=True, timeout=5.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.pending = None
        self.next_id = 1
        self.streams = {}
        self.goaways = []   # (last stream id, code) in arrival order
        self.eof = False
        self.reset = False  # the connection ended in RST, not FIN
        self.recv_size = 1 << 18  # bytes per recv(): small ones make a slow reader
        if preface:
            f = hf.SettingsFrame(0)
            for k, v in (settings or {}).items():
                f.settings[k] = v
            self.send_bytes(PREFACE + f.serialize())

    @classmethod
    def plain(cls, port, **kw):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, **kw)

    @classmethod
    def tls(cls, port, server_hostname=None, **kw):
        s = tls_connect(port, ["h2"], server_hostname)
        assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
        return cls(s, **kw)

    def close(self):
        self.sock.close()

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send(self, *frames):
        self.send_bytes(b"".join(f.serialize() for f in frames))

    def new_id(self):
        sid = self.next_id
        self.next_id += 2
        return sid

    def headers_frame(self, sid, headers, end_stream=True):
        f = hf.HeadersFrame(sid)
        f.data = self.enc.encode(headers, huffman=False)
        f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        return f

    def req_headers(self, path, method="GET", authority="127.0.0.1", scheme="http",
                    extra=()):
        return [(":method", method), (":scheme", scheme), (":authority", authority),
                (":path", path)] + list(extra)

    def request(self, path, method="GET", body=None, **kw):
        sid = self.new_id()
        frames = [self.headers_frame(sid, self.req_headers(path, method, **kw),
                                     end_stream=body is None)]
        if body is not None:
            frames.append(hf.DataFrame(sid, data=body, flags=["END_STREAM"]))
        self.send(*frames)
        return sid

    # -- receiving ----------------------------------------------------------

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("nothing from the server in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(self.recv_size)
            except ConnectionResetError:
                self.reset = True
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def read_raw(self, timeout=None):
        """The next frame as (type, flags, stream id, payload), undecoded,
        or None at end of stream."""
        deadline = time.monotonic() + (timeout or self.timeout)
        if not self._fill(9, deadline):
            return None
        length = int.from_bytes(self.buf[:3], "big")
        if not self._fill(9 + length, deadline):
            return None
        t, flags = self.buf[3], self.buf[4]
        sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload = bytes(self.buf[9:9 + length])
        del self.buf[:9 + length]
        return t, flags, sid, payload

    def read_frame(self, timeout=None):
        """The next frame (hyperframe object; header blocks decoded into
        .headers), or None at end of stream."""
        while True:
            raw = self.read_raw(timeout)
            if raw is None:
                return None
            t, flags, sid, payload = raw
            header = (len(payload).to_bytes(3, "big") + bytes([t, flags]) +
                      sid.to_bytes(4, "big"))
            f, _ = hf.Frame.parse_frame_header(memoryview(header))
            f.parse_body(memoryview(payload))
            f = self._fold(f)
            if f is not None:
                self._record(f)
                return f

    def _fold(self, f):
        if isinstance(f, hf.HeadersFrame):
            if "END_HEADERS" not in f.flags:
                self.pending = f
                return None
            f.headers = self.dec.decode(bytes(f.data), raw=True)
            return f
        if isinstance(f, hf.ContinuationFrame):
            self.pending.data += f.data
            if "END_HEADERS" not in f.flags:
                return None
            f, self.pending = self.pending, None
            f.headers = self.dec.decode(bytes(f.data), raw=True)
        return f

    def _record(self, f):
        if isinstance(f, hf.GoAwayFrame):
            self.goaways.append((f.last_stream_id, f.error_code))
        if f.stream_id == 0:
            return
        st = self.streams.setdefault(f.stream_id, Stream())
        if isinstance(f, hf.HeadersFrame):
            if st.headers is None:
                st.headers = dict(f.headers)
        elif isinstance(f, hf.DataFrame):
            st.body.extend(f.data)
        elif isinstance(f, hf.RstStreamFrame):
            st.reset = f.error_code
        if "END_STREAM" in getattr(f, "flags", ()):
            st.ended = True

    def reply(self, f):
        """What a well-behaved client answers: SETTINGS ACK, PING ACK and
        WINDOW_UPDATEs for every DATA frame."""
        try:
            if isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags:
                self.send(hf.SettingsFrame(0, flags=["ACK"]))
            elif isinstance(f, hf.PingFrame) and "ACK" not in f.flags:
                self.send(hf.PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]))
            elif isinstance(f, hf.DataFrame) and f.flow_controlled_length:
                n = f.flow_controlled_length
                frames = [hf.WindowUpdateFrame(0, window_increment=n)]
                if "END_STREAM" not in f.flags:
                    frames.append(hf.WindowUpdateFrame(f.stream_id, window_increment=n))
                self.send(*frames)
        except OSError:
            pass  # the server may be gone; the caller will see

    def frames_until(self, pred, timeout=None, limit=100000):
        """Read (and answer) frames until pred(frame); return (frame, seen)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        for _ in range(limit):
            f = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if f is None:
                raise AssertionError("connection closed%s; frames: %s" % (
                    " (reset)" if self.reset else "", summary(seen)))
            seen.append(f)
            if pred(f):
                return f, seen
            self.reply(f)
        raise AssertionError("%d frames and no match: %s" % (limit, summary(seen)))

    def handshake(self):
        """Wait for the server's SETTINGS and acknowledge them."""
        self.frames_until(lambda f: isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags)
        self.send(hf.SettingsFrame(0, flags=["ACK"]))

    def expect_goaway(self, code, timeout=None):
        f, _ = self.frames_until(lambda f: isinstance(f, hf.GoAwayFrame), timeout)
        assert f.error_code == code, "GOAWAY code %#x, want %#x (%r)" % (
            f.error_code, code, f.additional_data)
        return f

    def response(self, sid, timeout=None):
        """Wait until stream sid ends; return (headers dict, body)."""
        def done(f):
            if isinstance(f, hf.GoAwayFrame) and f.error_code != NO_ERROR:
                raise AssertionError("GOAWAY %#x while waiting for stream %d" % (
                    f.error_code, sid))
            st = self.streams.get(sid)
            if st is not None and st.reset is not None:
                raise AssertionError("stream %d reset: %#x" % (sid, st.reset))
            return st is not None and st.ended
        st = self.streams.get(sid)
        if st is None or not st.ended:
            f, _ = self.frames_until(done, timeout)
            self.reply(f)
        st = self.streams[sid]
        return st.headers, bytes(st.body)

    def read_to_eof(self, timeout=None):
        """Read (and answer) frames until the server closes; return them.
        self.reset tells whether it ended in RST."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        while True:
            f = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if f is None:
                return seen
            seen.append(f)
            self.reply(f)


def summary(frames, n=12):
    out = []
    for f in frames[-n:]:
        s = type(f).__name__.replace("Frame", "") + "(%d" % f.stream_id
        if hasattr(f, "error_code"):
            s += ",%#x" % f.error_code
        out.append(s + ")")
    return " ".join(out)


def h2load_counts(out):
    """Parse h2load's summary: (total, succeeded, failed, errored, timeout, 2xx)."""
    text = out.decode(errors="replace")
    m = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    assert m, text
    c = re.search(r"status codes: (\d+) 2xx", text)
    return tuple(int(x) for x in m.groups()) + (int(c.group(1)) if c else 0,)


def time_wait_from(port):
    """TIME-WAIT sockets whose local port is `port` (lines of ss -tan)."""
    need("ss")
    _, out, _ = run(["ss", "-tanH", "state", "time-wait", "( sport = :%d )" % port])
    return [ln for ln in out.decode().splitlines() if ln.strip()]


def main(env):
    """Run test_<argv[1]> from the calling module's globals."""
    if len(sys.argv) != 2 or "test_" + sys.argv[1] not in env:
        names = sorted(k[5:] for k in env if k.startswith("test_"))
        print("usage: %s TEST\ntests: %s" % (sys.argv[0], " ".join(names)))
        sys.exit(2)
    if hpack is None:
        print("SKIP: python3-h2 (hpack, hyperframe) not installed")
        sys.exit(SKIP)
    t0 = time.monotonic()
    try:
        env["test_" + sys.argv[1]]()
    except Skip as e:
        print("SKIP:", e)
        sys.exit(SKIP)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print("ok %s (%.2f s)" % (sys.argv[1], time.monotonic() - t0))
