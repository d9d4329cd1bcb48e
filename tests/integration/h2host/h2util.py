"""h2util.py — shared by the h2host integration tests: start and stop an
h2host on a free port (failing if it crashed or a sanitizer spoke), a raw
HTTP/2 client on hyperframe + hpack for frame-level misbehaviour, and a
runner that calls the one test named on the command line."""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# HTTP/2 error codes (RFC 9113 section 7) the tests assert.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")


class Skip(Exception):
    """The test cannot run here (a client is missing)."""


try:
    import hpack
    from hyperframe import frame as hf
except ImportError:  # reported as a skip by main()
    hpack = hf = None


def pattern(n):
    """The body h2host sends for /size/N: byte i is ALPHABET[i % 64]."""
    return (ALPHABET * (n // 64 + 1))[:n]


def need(*programs):
    for p in programs:
        if shutil.which(p) is None:
            raise Skip(p + " not installed")


class Server:
    """An h2host process on 127.0.0.1: `with Server("--window", "1024") as s:`.
    Leaving the block stops it with SIGTERM and fails the test if it did not
    exit 0 in time or its stderr carries a sanitizer report."""

    def __init__(self, *args):
        self.args = list(args)
        self.proc = None
        self.port = None
        self.stderr_text = ""
        self.terminated = False

    def __enter__(self):
        exe = os.environ.get("H2HOST")
        if not exe or not os.access(exe, os.X_OK):
            raise AssertionError("set H2HOST to the h2host executable")
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([exe, "-p", "0"] + self.args, stdout=subprocess.PIPE,
                                     stderr=self.err)
        line = b""
        deadline = time.monotonic() + 10
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not r:
                self._kill()
                raise AssertionError("h2host did not report its port in 10 s")
            b = os.read(self.proc.stdout.fileno(), 1)
            if not b:
                self._kill()
                raise AssertionError("h2host exited at start: " + self.stderr())
            line += b
        m = re.match(rb"listening on (\d+)", line)
        assert m, line
        self.port = int(m.group(1))
        return self

    def __exit__(self, et, ev, tb):
        self.stop()
        return False

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self):
        """Send SIGTERM now (graceful stop); stop() then only waits."""
        assert self.proc.poll() is None, "h2host died: " + self.stderr()
        self.proc.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self, timeout=10):
        if self.proc is None:
            return
        crashed_before = None if self.terminated else self.proc.poll()
        if self.proc.poll() is None:
            if not self.terminated:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise AssertionError("h2host did not exit within %d s of SIGTERM" % timeout)
        rc = self.proc.returncode
        self.proc.stdout.close()
        text = self.stderr()
        self.stderr_text = text
        self.err.close()
        self.proc = None
        if os.environ.get("H2HOST_VERBOSE"):
            sys.stdout.write("--- h2host stderr:\n" + text)
        bad = [m for m in SANITIZER_MARKS if m in text]
        if rc != 0 or bad or crashed_before is not None:
            raise AssertionError("h2host exit status %s%s; stderr:\n%s" % (
                rc, " (died before SIGTERM)" if crashed_before is not None else "",
                text[-6000:]))


class Raw:
    """A hand-driven HTTP/2 client: frames go out as given, frames come in
    one at a time with a timeout. Header blocks are HPACK-coded with one
    encoder/decoder pair per connection, so the connection stays usable."""

    def __init__(self, port, settings=None, preface=True, timeout=5.0, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the window TCP offers stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.pending = None  # HEADERS waiting for its CONTINUATIONs
        self.next_id = 1
        self.streams = {}  # id -> Stream: what the server sent on it
        self.eof = False
        if preface:
            f = hf.SettingsFrame(0)
            for k, v in (settings or {}).items():
                f.settings[k] = v
            self.send_bytes(PREFACE + f.serialize())

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    # -- sending ------------------------------------------------------------

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send(self, *frames):
        self.send_bytes(b"".join(f.serialize() for f in frames))

    def new_id(self):
        sid = self.next_id
        self.next_id += 2
        return sid

    def block(self, headers):
        return self.enc.encode(headers, huffman=False)

    def headers_frame(self, sid, headers, end_stream=True, end_headers=True):
        f = hf.HeadersFrame(sid)
        f.data = self.block(headers)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    def header_frames(self, sid, headers, end_stream=True, max_frame=16384):
        """HEADERS, plus CONTINUATIONs when the block exceeds max_frame."""
        block = self.block(headers)
        first = hf.HeadersFrame(sid, data=block[:max_frame])
        if end_stream:
            first.flags.add("END_STREAM")
        frames = [first]
        for off in range(max_frame, len(block), max_frame):
            frames.append(hf.ContinuationFrame(sid, data=block[off:off + max_frame]))
        frames[-1].flags.add("END_HEADERS")
        return frames

    def req_headers(self, path, method="GET", extra=()):
        return [(":method", method), (":scheme", "http"),
                (":authority", "127.0.0.1"), (":path", path)] + list(extra)

    def request(self, path, method="GET", body=None, extra=()):
        """Send a whole request (body in one DATA frame); return its id."""
        sid = self.new_id()
        frames = self.header_frames(sid, self.req_headers(path, method, extra),
                                    end_stream=body is None)
        if body is not None:
            d = hf.DataFrame(sid)
            d.data = body
            d.flags.add("END_STREAM")
            frames.append(d)
        self.send(*frames)
        return sid

    # -- receiving ----------------------------------------------------------

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the server in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def read_frame(self, timeout=None):
        """The next frame, or None at end of stream. Header blocks come back
        as one HeadersFrame with .headers decoded (CONTINUATIONs folded in)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if not self._fill(9, deadline):
                return None
            f, length = hf.Frame.parse_frame_header(memoryview(bytes(self.buf[:9])))
            if not self._fill(9 + length, deadline):
                return None
            f.parse_body(memoryview(bytes(self.buf[9:9 + length])))
            del self.buf[:9 + length]
            f = self._fold_headers(f)
            if f is not None:
                self._record(f)
                return f

    def skim(self, ftype, limit, timeout=None):
        """Skip frames, undecoded (fast; HPACK state is lost, so only for a
        connection that is ending), until one of type ftype; return its
        payload and how many frames came before it, or None at limit."""
        deadline = time.monotonic() + (timeout or self.timeout)
        for count in range(limit):
            if not self._fill(9, deadline):
                raise AssertionError("connection closed after %d frames" % count)
            length = int.from_bytes(self.buf[:3], "big")
            if not self._fill(9 + length, deadline):
                raise AssertionError("connection closed after %d frames" % count)
            t = self.buf[3]
            payload = bytes(self.buf[9:9 + length])
            del self.buf[:9 + length]
            if t == ftype:
                return payload, count
        return None

    def _record(self, f):
        """Keep what each stream received, whoever reads the frame."""
        if f.stream_id == 0:
            return
        st = self.streams.setdefault(f.stream_id, Stream())
        if isinstance(f, hf.HeadersFrame):
            if st.headers is None:
                st.headers = dict(f.headers)
            else:
                st.trailers = dict(f.headers)
        elif isinstance(f, hf.DataFrame):
            st.body.extend(f.data)
        elif isinstance(f, hf.RstStreamFrame):
            st.reset = f.error_code
        if "END_STREAM" in getattr(f, "flags", ()):
            st.ended = True

    def _fold_headers(self, f):
        if isinstance(f, (hf.HeadersFrame, hf.PushPromiseFrame)):
            if "END_HEADERS" not in f.flags:
                self.pending = f
                return None
            f.headers = self.dec.decode(bytes(f.data), raw=True)
            return f
        if isinstance(f, hf.ContinuationFrame):
            assert self.pending is not None, "CONTINUATION without HEADERS"
            self.pending.data += f.data
            if "END_HEADERS" not in f.flags:
                return None
            f, self.pending = self.pending, None
            f.headers = self.dec.decode(bytes(f.data), raw=True)
        return f

    def frames_until(self, pred, timeout=None, limit=1000000):
        """Read frames until pred(frame) holds; return (that frame, all read).
        Acknowledges the server's SETTINGS and PINGs on the way, and credits
        every DATA frame back so responses keep flowing."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        for _ in range(limit):
            f = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if f is None:
                raise AssertionError("connection closed; frames: %s" % summary(seen))
            seen.append(f)
            if pred(f):
                return f, seen
            self._auto_reply(f)
        raise AssertionError("%d frames and still no match: %s" % (limit, summary(seen)))

    def handshake(self):
        """Wait for the server's SETTINGS and acknowledge them; afterwards
        the server's limits apply to what we send."""
        self.frames_until(lambda f: isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags)
        self.send(hf.SettingsFrame(0, flags=["ACK"]))

    def _auto_reply(self, f):
        try:
            self._reply(f)
        except OSError:  # the server may be gone already; the caller will see
            pass

    def _reply(self, f):
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

    def expect_goaway(self, code, timeout=None):
        f, seen = self.frames_until(lambda f: isinstance(f, hf.GoAwayFrame), timeout)
        assert f.error_code == code, "GOAWAY code %#x, want %#x (%s)" % (
            f.error_code, code, f.additional_data)
        return f

    def expect_rst(self, sid, code, timeout=None):
        st = self.streams.get(sid)
        if st is None or st.reset is None:
            f, seen = self.frames_until(
                lambda f: isinstance(f, hf.GoAwayFrame) or
                isinstance(f, hf.RstStreamFrame) and f.stream_id == sid, timeout)
            assert isinstance(f, hf.RstStreamFrame), "got %s, not RST_STREAM on %d" % (
                summary([f]), sid)
            st = self.streams[sid]
        assert st.reset == code, "RST_STREAM code %#x, want %#x" % (st.reset, code)

    def response(self, sid, timeout=None):
        """Wait until stream sid ends; return (headers, body, trailers).
        Fails on a GOAWAY or a RST_STREAM of this stream."""
        def done(f):
            if isinstance(f, hf.GoAwayFrame):
                raise AssertionError("GOAWAY %#x while waiting for stream %d" % (
                    f.error_code, sid))
            return self._finished(sid)

        if not self._finished(sid):
            self.frames_until(done, timeout)
        st = self.streams[sid]
        return st.headers, bytes(st.body), st.trailers

    def _finished(self, sid):
        st = self.streams.get(sid)
        if st is not None and st.reset is not None:
            raise AssertionError("stream %d reset: %#x" % (sid, st.reset))
        return st is not None and st.ended


class Stream:
    """What the server sent on one stream."""

    def __init__(self):
        self.headers = None
        self.trailers = None
        self.body = bytearray()
        self.reset = None
        self.ended = False


def summary(frames, n=12):
    out = []
    for f in frames[-n:]:
        s = type(f).__name__.replace("Frame", "") + "(%d" % f.stream_id
        if hasattr(f, "error_code"):
            s += ",%#x" % f.error_code
        out.append(s + ")")
    return " ".join(out)


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
