#!/usr/bin/python3
"""test_conn.py — the TCP life cycle of `sluice` connections: every timeout
(TLS handshake, preface, idle with GOAWAY then close-wait, close-wait, HTTP/1.1
request header, send), HTTP/1.1 connections closed when the client closes,
accept paused at max_connections without spinning, graceful stop with a large
response in flight (two-phase GOAWAY), a large download that must not stall,
and the orderly close in which the client closes first: a clean EOF for the
client and no TIME-WAIT socket on the server."""

import hashlib
import os
import select
import socket
import ssl
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import (H2, MAX_STREAM_ID, NO_ERROR, ROUTES, T_DATA, T_GOAWAY,  # noqa: E402
                      T_HEADERS, T_PING, T_SETTINGS, Site, Sluice, cpu_ticks, h1_response, hf,
                      main, need, run, time_wait_from)


def wait_closed(sock, timeout):
    """Seconds until the server ends the connection (EOF or reset), reading
    and discarding whatever it sends; (seconds, 'eof'|'reset', data)."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            return time.monotonic() - t0, "reset", data
        except socket.timeout:
            raise AssertionError("still open after %.1f s" % timeout)
        if not b:
            return time.monotonic() - t0, "eof", data
        data += b


def quiet_for(sock, seconds):
    """True if nothing (not even EOF) arrives for `seconds`."""
    r, _, _ = select.select([sock], [], [], seconds)
    return not r


def test_timeout_handshake():
    cfg = ROUTES + "timeouts { handshake = 0.5, preface = 10, idle = 10 }\n"
    with Site() as site, Sluice(site.config(cfg, plain=False)) as s:
        # A TCP connection that never starts TLS.
        with socket.create_connection(("127.0.0.1", site.tls)) as c:
            took, how, _ = wait_closed(c, 5)
            assert 0.4 <= took <= 2.0, "closed after %.2f s (handshake = 0.5)" % took
        # One that starts and stalls: a TLS record header and nothing more.
        with socket.create_connection(("127.0.0.1", site.tls)) as c:
            c.sendall(b"\x16\x03\x01\x02\x00")
            took, how, _ = wait_closed(c, 5)
            assert 0.4 <= took <= 2.0, "closed after %.2f s (handshake = 0.5)" % took
        # A handshake that completes is not cut by this timeout.
        c = H2.tls(site.tls)
        c.handshake()
        time.sleep(1.0)
        h, body = c.response(c.request("/", scheme="https"))
        assert (h[b":status"], body) == (b"200", Site.INDEX), h
        c.close()
        assert s.alive()


def test_timeout_preface():
    cfg = ROUTES + "timeouts { preface = 0.5, idle = 10, header = 10 }\n"
    with Site() as site, Sluice(site.config(cfg, tls=False)):
        for first in (b"", b"PRI * HTTP/2.0\r\n"):  # nothing; half a preface
            with socket.create_connection(("127.0.0.1", site.plain)) as c:
                c.sendall(first)
                took, how, data = wait_closed(c, 5)
                assert 0.4 <= took <= 2.0, "%r: closed after %.2f s (preface = 0.5)" % (
                    first, took)
                assert data == b"", data


def test_timeout_idle_goaway_then_client_closes():
    cfg = ROUTES + "timeouts { idle = 0.5, close_wait = 3, linger = 1 }\n"
    with Site() as site, Sluice(site.config(cfg, tls=False)):
        c = H2.plain(site.plain)
        c.handshake()
        sid = c.request("/")
        assert c.response(sid)[1] == Site.INDEX
        t0 = time.monotonic()
        f = c.expect_goaway(NO_ERROR, timeout=5)
        took = time.monotonic() - t0
        assert 0.3 <= took <= 2.0, "GOAWAY after %.2f s idle (idle = 0.5)" % took
        assert f.last_stream_id == sid, f.last_stream_id
        # Having said GOAWAY, the server waits for our FIN instead of sending its own.
        assert quiet_for(c.sock, 1.0), "the server closed first after its GOAWAY"
        client_port = c.sock.getsockname()[1]
        c.sock.shutdown(socket.SHUT_WR)
        took, how, data = wait_closed(c.sock, 3)
        assert how == "eof" and data == b"", (how, data)
        assert took < 0.5, "server closed %.2f s after our FIN" % took
        c.close()
        time.sleep(0.1)
        assert time_wait_from(site.plain) == [], time_wait_from(site.plain)
        assert time_wait_from(client_port), "no TIME-WAIT on the client either"


def test_timeout_close_wait():
    """A client that never closes: after close_wait the server sends its FIN
    (and lingers), so the client still sees a clean EOF."""
    cfg = ROUTES + "timeouts { idle = 0.5, close_wait = 0.5, linger = 2 }\n"
    with Site() as site, Sluice(site.config(cfg, tls=False)):
        c = H2.plain(site.plain)
        c.handshake()
        t0 = time.monotonic()
        c.expect_goaway(NO_ERROR, timeout=5)
        c.read_to_eof(timeout=5)
        took = time.monotonic() - t0
        assert not c.reset, "ended in RST"
        assert 0.7 <= took <= 3.0, "EOF %.2f s after the start (idle 0.5 + close_wait 0.5)" % took
        c.close()


def test_timeout_header_h1():
    cfg = ROUTES + "timeouts { header = 0.5, idle = 10, preface = 10 }\n"
    with Site() as site, Sluice(site.config(cfg, tls=False)):
        # Slowloris: a header line every 0.2 s, never the end of the head.
        with socket.create_connection(("127.0.0.1", site.plain)) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            t0 = time.monotonic()
            closed = False
            for i in range(20):
                if not quiet_for(c, 0.2):
                    closed = True
                    break
                try:
                    c.sendall(b"X-Slow-%d: x\r\n" % i)
                except OSError:
                    closed = True
                    break
            took = time.monotonic() - t0
            assert closed, "head still being read after %.1f s (header = 0.5)" % took
            assert took <= 2.0, "closed after %.2f s (header = 0.5)" % took
            _, _, data = wait_closed(c, 5)
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]


def test_timeout_send():
    cfg = ROUTES + "timeouts { send = 0.5, idle = 10 }\n"
    with Site() as site, Sluice(site.config(cfg, tls=False)) as s:
        site.write("site/big.bin", b"x" * (32 << 20))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", site.plain))
        c = H2(sock, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: MAX_STREAM_ID})
        c.send(hf.WindowUpdateFrame(0, window_increment=MAX_STREAM_ID - 65535))
        c.request("/big.bin")
        # Never read again: the server's writes stall; after `send` it gives up.
        deadline = time.monotonic() + 5
        while "closed (timeout)" not in s.stderr():
            assert time.monotonic() < deadline, "no send timeout:\n" + s.stderr()[-2000:]
            time.sleep(0.05)
        c.close()


def close_wait_sockets(port):
    """Server sockets on `port` in CLOSE-WAIT: the client closed, we did not."""
    _, out, _ = run(["ss", "-tanH", "state", "close-wait", "( sport = :%d )" % port])
    return [ln for ln in out.decode().splitlines() if ln.strip()]


def test_h1_client_closes_after_request():
    """HTTP/1.1 keep-alive requests (with and without a body) answered, then
    the client closes: the server closes too at once, it does not keep the
    connection in CLOSE-WAIT (and graceful stop does not wait for it)."""
    need("ss")
    with Site() as site, Sluice(site.config(ROUTES, tls=False)) as s:
        reqs = [b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello",
                b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                b"\r\n5\r\nhello\r\n0\r\n\r\n"]
        for req in reqs:
            with socket.create_connection(("127.0.0.1", site.plain), timeout=5) as c:
                c.sendall(req)
                status, _, body = h1_response(c)
                assert status == 200, status
                assert b"POST" not in req or body == b"hello", body
                c.shutdown(socket.SHUT_WR)
                try:
                    took, how, data = wait_closed(c, 3)
                except AssertionError as e:
                    raise AssertionError("%r: %s after our FIN" % (req[:30], e))
                assert how == "eof" and data == b"", (req, how, data)
            time.sleep(0.2)
            stuck = close_wait_sockets(site.plain)
            assert not stuck, "%r: server left in CLOSE-WAIT: %s" % (req[:30], stuck)
        s.terminate()
        assert s.wait_exit(5) == 0


def test_accept_paused_at_max_connections():
    cfg = ROUTES + "max_connections(5)\nworkers(1)\ntimeouts { idle = 30, preface = 30 }\n"
    with Site() as site, Sluice(site.config(cfg, tls=False)) as s:
        held = []
        for _ in range(5):
            c = H2.plain(site.plain)
            c.handshake()
            held.append(c)
        # The 6th: the kernel completes the handshake (backlog), sluice waits.
        sixth = H2.plain(site.plain)
        sid = sixth.request("/")
        before = cpu_ticks(s.pid)
        t0 = time.monotonic()
        quiet = quiet_for(sixth.sock, 1.0)
        spent = cpu_ticks(s.pid) - before
        elapsed = time.monotonic() - t0
        assert quiet, "the 6th connection was served over max_connections(5)"
        ticks = os.sysconf("SC_CLK_TCK")
        assert spent <= 0.1 * ticks * elapsed, \
            "sluice used %d ticks (%d/s) in %.2f s of paused accepting: spinning?" % (
                spent, ticks, elapsed)
        # One of the five leaves: the 6th is accepted and served.
        held.pop().close()
        h, body = sixth.response(sid, timeout=5)
        assert (h[b":status"], body) == (b"200", Site.INDEX), h
        for c in held:  # the other four still work
            h, body = c.response(c.request("/"))
            assert h[b":status"] == b"200", h
            c.close()
        sixth.close()
        assert "accepting paused" in s.stderr(), s.stderr()[-2000:]


def test_graceful_stop_completes_response():
    size = 50 << 20
    block = bytes(range(256)) * 4096  # 1 MiB
    with Site() as site, Sluice(site.config(ROUTES, tls=False)) as s:
        site.write("site/big.bin", block * (size // len(block)))
        want = hashlib.sha256(block * (size // len(block))).hexdigest()
        c = H2.plain(site.plain, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: MAX_STREAM_ID})
        c.send(hf.WindowUpdateFrame(0, window_increment=MAX_STREAM_ID - 65535))
        sid = c.request("/big.bin")
        got, h = 0, None
        digest = hashlib.sha256()
        goaways, pings_acked, ended = [], 0, False
        signalled_at = None
        t0 = time.monotonic()
        while not ended:
            assert time.monotonic() - t0 < 40, "response not complete in 40 s (%d bytes)" % got
            if signalled_at is None and got >= (1 << 20):
                s.terminate()  # SIGTERM with ~49 MiB still to go
                signalled_at = time.monotonic()
            # Read slowly for the first second after SIGTERM.
            if signalled_at is not None and time.monotonic() - signalled_at < 1.0:
                time.sleep(0.01)
            try:
                raw = c.read_raw(timeout=10)
            except TimeoutError:
                _, ss_out, _ = run(["ss", "-tanoi", "( sport = :%d )" % site.plain],
                                   check=False)
                raise AssertionError("stalled 10 s after %d of %d bytes (SIGTERM %s); GOAWAYs %s, "
                                     "PINGs acked %d\n%s\n%s" % (
                                         got, size, "sent" if signalled_at else "not sent",
                                         goaways, pings_acked, ss_out.decode(),
                                         s.stderr()[-3000:]))
            assert raw is not None, "EOF after %d of %d bytes; GOAWAYs %s" % (got, size, goaways)
            t, flags, fsid, payload = raw
            if t == T_DATA:
                assert fsid == sid, fsid
                got += len(payload)
                digest.update(payload)
                ended = bool(flags & 0x1)
            elif t == T_HEADERS:
                h = dict(c.dec.decode(payload, raw=True))
                assert h[b":status"] == b"200", h
            elif t == T_GOAWAY:
                last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                goaways.append((last, int.from_bytes(payload[4:8], "big")))
            elif t == T_PING and not flags & 0x1:
                c.send(hf.PingFrame(0, opaque_data=payload, flags=["ACK"]))
                pings_acked += 1
            elif t == T_SETTINGS and not flags & 0x1:
                c.send(hf.SettingsFrame(0, flags=["ACK"]))
        assert signalled_at is not None
        assert got == size and digest.hexdigest() == want, "got %d of %d bytes" % (got, size)
        # Then the server has nothing left: the final GOAWAY must be out by now.
        until = time.monotonic() + 5
        while len(goaways) < 2:
            raw = c.read_raw(timeout=max(until - time.monotonic(), 0.01))
            assert raw is not None, "EOF before the final GOAWAY: %s" % goaways
            if raw[0] == T_GOAWAY:
                p = raw[3]
                goaways.append((int.from_bytes(p[:4], "big") & 0x7FFFFFFF,
                                int.from_bytes(p[4:8], "big")))
            elif raw[0] == T_PING and not raw[1] & 0x1:
                c.send(hf.PingFrame(0, opaque_data=raw[3], flags=["ACK"]))
                pings_acked += 1
        assert goaways == [(MAX_STREAM_ID, NO_ERROR), (sid, NO_ERROR)], goaways
        assert pings_acked >= 1, "no PING with the first GOAWAY"
        # No new connections once stopping.
        try:
            socket.create_connection(("127.0.0.1", site.plain), timeout=2).close()
            raise AssertionError("a new connection was accepted after SIGTERM")
        except ConnectionRefusedError:
            pass
        # We close first; the server follows and exits 0.
        c.sock.shutdown(socket.SHUT_WR)
        took, how, data = wait_closed(c.sock, 5)
        assert how == "eof" and data == b"", (how, data)
        c.close()
        rc = s.wait_exit(10)
        assert rc == 0, rc
        assert time_wait_from(site.plain) == [], time_wait_from(site.plain)


def test_large_download_no_stall():
    """50 MiB over h2c, read slowly for a second (the socket fills, writes
    are partial) and then at full speed: the response must keep flowing.
    A write path that forgets to wait for POLLOUT while the session still
    has output leaves the stream stuck forever; it shows within a few tries."""
    size = 50 << 20
    with Site() as site, Sluice(site.config(ROUTES, tls=False)):
        site.write("site/big.bin", b"z" * size)
        for attempt in range(4):
            c = H2.plain(site.plain,
                         settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: MAX_STREAM_ID})
            c.send(hf.WindowUpdateFrame(0, window_increment=MAX_STREAM_ID - 65535))
            sid = c.request("/big.bin")
            got, ended, t0 = 0, False, time.monotonic()
            while not ended:
                if time.monotonic() - t0 < 1.0:
                    time.sleep(0.01)
                try:
                    raw = c.read_raw(timeout=5)
                except TimeoutError:
                    _, ss_out, _ = run(["ss", "-tanoi", "( sport = :%d )" % site.plain],
                                       check=False)
                    raise AssertionError("try %d: response stalled for 5 s after %d of %d bytes "
                                         "(nothing unsent in the socket):\n%s" % (
                                             attempt + 1, got, size, ss_out.decode()))
                assert raw is not None, "EOF after %d of %d bytes" % (got, size)
                t, flags, fsid, payload = raw
                if t == T_DATA and fsid == sid:
                    got += len(payload)
                    ended = bool(flags & 0x1)
                elif t == T_SETTINGS and not flags & 0x1:
                    c.send(hf.SettingsFrame(0, flags=["ACK"]))
            assert got == size, (got, size)
            c.close()


def test_clean_close_no_time_wait():
    """The server says goodbye (GOAWAY, or the end of a Connection: close
    response), the client closes first and gets a clean EOF, and only the
    client is left with a TIME-WAIT socket: over h2c, h2 over TLS and HTTP/1.1."""
    cfg = ROUTES + "timeouts { idle = 0.3, close_wait = 5, linger = 1 }\n"
    with Site() as site, Sluice(site.config(cfg)):
        socks = []
        # h2c
        c = H2.plain(site.plain)
        c.handshake()
        assert c.response(c.request("/"))[1] == Site.INDEX
        c.expect_goaway(NO_ERROR, timeout=5)
        socks.append(("h2c", c.sock, site.plain))
        # h2 over TLS: after the GOAWAY the server's close_notify, not its FIN
        t = H2.tls(site.tls)
        t.handshake()
        assert t.response(t.request("/", scheme="https"))[1] == Site.INDEX
        t.expect_goaway(NO_ERROR, timeout=5)
        socks.append(("h2 tls", t.sock, site.tls))
        # HTTP/1.1, Connection: close
        h = socket.create_connection(("127.0.0.1", site.plain), timeout=5)
        h.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status, _, body = h1_response(h)
        assert (status, body) == (200, Site.INDEX), status
        socks.append(("http/1.1", h, site.plain))
        for name, sock, port in socks:
            assert quiet_for(sock, 0.3) or name == "h2 tls", \
                "%s: the server closed first" % name
            client_port = sock.getsockname()[1]
            if isinstance(sock, ssl.SSLSocket):
                # The server's close_notify may be waiting; then our TCP FIN.
                raw = socket.socket(fileno=os.dup(sock.fileno()))
                sock.close()
                sock = raw
            sock.shutdown(socket.SHUT_WR)
            took, how, data = wait_closed(sock, 3)
            assert how == "eof", "%s: %s instead of a clean EOF" % (name, how)
            assert took < 0.5, "%s: server closed %.2f s after our FIN" % (name, took)
            sock.close()
            time.sleep(0.1)
            tw = time_wait_from(port)
            assert not [ln for ln in tw if ":%d" % client_port in ln], \
                "%s: the server holds a TIME-WAIT socket: %s" % (name, tw)
            assert time_wait_from(client_port), "%s: no TIME-WAIT on the client" % name


if __name__ == "__main__":
    main(globals())
