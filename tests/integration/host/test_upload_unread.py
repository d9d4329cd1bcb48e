#!/usr/bin/python3
"""test_upload_unread.py — HTTP/2 uploads to routes that never read the
request body (`ret`): curl 7.88 stops reading once it has a whole 2xx
response and stalls on the rest of its upload, so such a response waits for
the request's end; error answers, GET without a body and 100-continue
requests are still answered at once."""

import os
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import H2, ROUTES, Site, Sluice, hf, main, need, run, summary  # noqa: E402

RETS = """
route { path = "/ret", ret = { status = 201, body = "fixed\\n" } }
route { path = "/empty", ret = { status = 200 } }
route { path = "/none", ret = { status = 204 } }
route { path = "/gone", ret = { status = 404, body = "gone\\n" } }
"""
MIB = 1 << 20


def curl_upload(site, tls, path, *args):
    """curl sends 1 MiB to path; returns (status, bytes uploaded, body).
    A stall ends at --max-time and fails run() with curl's exit 28."""
    url = "%s://127.0.0.1:%d%s" % ("https" if tls else "http",
                                   site.tls if tls else site.plain, path)
    opts = ["--http2", "--cacert", site.cert] if tls else ["--http2-prior-knowledge"]
    with tempfile.NamedTemporaryFile() as body:
        _, out, _ = run(["curl", "-sS", "--max-time", "15", "-o", body.name, "-w",
                         "%{http_version} %{http_code} %{size_upload}"] + opts + list(args) +
                        [url], timeout=25)
        version, code, up = out.decode().split()
        assert version == "2", (path, out)
        return int(code), int(up), open(body.name, "rb").read()


def test_curl_upload_to_ret():
    """1 MiB POST and PUT by curl over h2c and h2 (TLS) to fixed answers
    with a body, an empty one (content-length: 0) and a 204: each completes
    with the exact answer and the whole body sent."""
    need("curl", "openssl")
    with Site() as site, Sluice(site.config(ROUTES + RETS)), \
            tempfile.NamedTemporaryFile() as up:
        up.write(os.urandom(MIB))
        up.flush()
        for tls in (False, True):
            for path, status, body in (("/ret", 201, b"fixed\n"), ("/empty", 200, b""),
                                       ("/none", 204, b"")):
                got = curl_upload(site, tls, path, "--data-binary", "@" + up.name)
                assert got == (status, MIB, body), (tls, path, got)
            got = curl_upload(site, tls, "/ret", "-T", up.name)
            assert got == (201, MIB, b"fixed\n"), (tls, "PUT", got)


def handshake(c):
    """The server's SETTINGS, acknowledged; returns its initial stream window."""
    f, _ = c.frames_until(lambda f: isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags)
    c.send(hf.SettingsFrame(0, flags=["ACK"]))
    return f.settings.get(hf.SettingsFrame.INITIAL_WINDOW_SIZE, 65535)


def send_body(c, sid, body, stream_window):
    """Send body on sid (without END_STREAM) within the server's windows,
    reading its frames when blocked; returns the frames read."""
    conn, stream, off, seen = 65535, stream_window, 0, []
    while off < len(body):
        n = min(16384, conn, stream, len(body) - off)
        if n > 0:
            c.send(hf.DataFrame(sid, data=body[off:off + n]))
            off, conn, stream = off + n, conn - n, stream - n
            continue
        f = c.read_frame(5)
        assert f is not None, "closed after %d bytes: %s" % (off, summary(seen))
        seen.append(f)
        if isinstance(f, hf.WindowUpdateFrame):
            if f.stream_id == 0:
                conn += f.window_increment
            elif f.stream_id == sid:
                stream += f.window_increment
        else:
            c.reply(f)
    return seen


def test_ret_answers_after_request_end():
    """Frame by frame: a 1 MiB body with its content-length goes through on
    the server's WINDOW_UPDATEs, no answer comes while the request is open,
    and the whole 201 follows the request's END_STREAM."""
    with Site() as site, Sluice(site.config(ROUTES + RETS, tls=False)):
        c = H2.plain(site.plain)
        window = handshake(c)
        sid = c.new_id()
        c.send(c.headers_frame(sid, c.req_headers("/ret", "POST", extra=[
            ("content-length", str(MIB))]), end_stream=False))
        seen = send_body(c, sid, os.urandom(MIB), window)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # the request is still open
            try:
                f = c.read_frame(max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                break
            assert f is not None, "closed: " + summary(seen)
            seen.append(f)
            c.reply(f)
        early = [f for f in seen if f.stream_id == sid and
                 not isinstance(f, hf.WindowUpdateFrame)]
        assert not early, "answered before the request ended: " + summary(early)
        c.send(hf.DataFrame(sid, flags=["END_STREAM"]))
        headers, body = c.response(sid)
        assert headers[b":status"] == b"201" and headers[b"content-length"] == b"6", headers
        assert body == b"fixed\n", body
        c.close()


def test_answered_at_once_without_upload():
    """No waiting where the client does not upload or waits itself: a 404
    with 1 MiB announced, GET left open without a content-length, and a
    POST with expect: 100-continue, all before any DATA."""
    with Site() as site, Sluice(site.config(ROUTES + RETS, tls=False)):
        c = H2.plain(site.plain)
        handshake(c)
        cases = (("/gone", "POST", [("content-length", str(MIB))], b"404", b"gone\n"),
                 ("/index.html", "GET", [], b"200", Site.INDEX),
                 ("/ret", "POST", [("content-length", str(MIB)), ("expect", "100-continue")],
                  b"201", b"fixed\n"))
        for path, method, extra, status, want in cases:
            sid = c.new_id()
            c.send(c.headers_frame(sid, c.req_headers(path, method, extra=extra),
                                   end_stream=False))
            headers, body = c.response(sid, timeout=3)
            assert (headers[b":status"], body) == (status, want), (path, headers, body[:100])
            c.send(hf.RstStreamFrame(sid, error_code=0x8))  # CANCEL: no upload follows
        c.close()


if __name__ == "__main__":
    main(globals())
