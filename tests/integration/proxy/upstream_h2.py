#!/usr/bin/python3
"""upstream_h2.py — the HTTP/2 upstream the proxy tests put behind sluice:
python3-h2 on a non-blocking socket per connection (h2c with prior
knowledge, or TLS with ALPN h2), honouring flow control both ways so that a
stream that stalls or is not read does not hold the others up.

Usage: upstream_h2.py --port P --name NAME [--flag FILE] [--tls CERT KEY].
Prints "ready" when listening; stops on SIGTERM. Endpoints (/_stats is not
counted; it answers the request log as JSON, each entry with its connection
and stream id):
  /size/N      N bytes of the pattern (byte i = i % 251), content-length
  /chunked/N, /trailers/N   the same without content-length, then trailers
               x-checksum: sha256 of the body
  /echo        the request body streamed back as it arrives; trailers: the
               request's trailers plus x-checksum
  /headers     the request (pseudo-headers included) as JSON
  /status/N, /slow/MS, /health (500 while --flag FILE exists), /id
  /hints       a 103 Early Hints (link </hinted.css>), 200 ms later the 200
  /stall, /stall/...   never answers; other streams go on"""

import argparse
import hashlib
import json
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from upstream_h1 import pattern_chunks  # noqa: E402

WINDOW = 1 << 20


class Stream:
    def __init__(self, sid, headers):
        self.sid = sid
        self.headers = headers
        self.path = dict(headers).get(":path", "").split("?")[0]
        self.method = dict(headers).get(":method", "")
        self.digest = hashlib.sha256()
        self.size = 0
        self.trailers = []
        self.out = []            # bytes waiting for flow-control window
        self.source = None       # iterator producing more body
        self.end_trailers = None  # trailers to send after the body (list)
        self.end = False         # end the stream once out/source are drained
        self.completed = False   # the request is whole (recorded, answered)
        self.done = False        # the response is whole


class Server:
    def __init__(self, args):
        self.args = args
        self.name = args.name
        self.lock = threading.Lock()
        self.counts, self.started, self.log = {}, {}, []
        self.resets = []         # (conn, stream, path, code): RST_STREAM from sluice
        self.conns = 0           # connections accepted
        self.used = set()        # ... of which carried a request other than /_stats
        self.bytes_out = 0
        self.stop = threading.Event()
        self.tls = None
        if args.tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(args.tls[0], args.tls[1])
            self.tls.set_alpn_protocols(["h2"])

    def serve(self):
        ls = socket.socket(socket.AF_INET)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.args.host, self.args.port))
        ls.listen(512)
        ls.settimeout(0.2)
        print("ready", flush=True)
        while not self.stop.is_set():
            try:
                s, _ = ls.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.run_conn, args=(s,), daemon=True).start()
        ls.close()

    def run_conn(self, s):
        with self.lock:
            self.conns += 1
            cid = self.conns
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                s.settimeout(5)
                s = self.tls.wrap_socket(s, server_side=True)
                if s.selected_alpn_protocol() != "h2":
                    return
            Conn(self, s, cid).loop()
        except (ConnectionError, ssl.SSLError, OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def stats(self):
        with self.lock:
            return json.dumps({"name": self.name, "counts": self.counts,
                               "started": self.started, "log": self.log,
                               "conns": len(self.used), "resets": self.resets,
                               "bytes_out": self.bytes_out}).encode()


class Conn:
    def __init__(self, srv, sock, cid):
        self.srv, self.sock, self.cid = srv, sock, cid
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(cfg)
        self.streams = {}
        self.timers = []         # (deadline, stream id)
        self.outbuf = bytearray()

    def loop(self):
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                                 h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
        self.h2.increment_flow_control_window(WINDOW * 16)
        self.sock.setblocking(False)
        while not self.srv.stop.is_set():
            self.pump()
            self.flush()
            now = time.monotonic()
            wait = 0.2
            if self.timers:
                wait = max(0.0, min(wait, min(t for t, _ in self.timers) - now))
            want_w = [self.sock] if self.outbuf else []
            pending = self.srv.tls is not None and self.sock.pending()
            if not pending:
                r, _, _ = select.select([self.sock], want_w, [], wait)
            else:
                r = [self.sock]
            self.fire_timers()
            if r:
                try:
                    data = self.sock.recv(262144)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                if not data:
                    return
                for ev in self.h2.receive_data(data):
                    self.event(ev)

    def flush(self):
        self.outbuf += self.h2.data_to_send()
        while self.outbuf:
            try:
                n = self.sock.send(self.outbuf[:262144])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            del self.outbuf[:n]

    def fire_timers(self):
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        self.timers = [t for t in self.timers if t[0] > now]
        for _, sid in due:
            st = self.streams.get(sid)
            if st is not None and not st.done:
                body = b"hinted\n" if st.path == "/hints" else b"slow " + self.srv.name.encode()
                self.respond(st, 200, [("x-server", self.srv.name)], body)

    # -- events ----------------------------------------------------------

    def event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            st = Stream(ev.stream_id, list(ev.headers))
            self.streams[ev.stream_id] = st
            with self.srv.lock:
                self.srv.started[st.path] = self.srv.started.get(st.path, 0) + 1
                if st.path != "/_stats":
                    self.srv.used.add(self.cid)
            if st.path == "/echo":
                self.h2.send_headers(st.sid, [(":status", "200"), ("x-server", self.srv.name)])
            if ev.stream_ended:
                self.complete(st)
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if ev.flow_controlled_length:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if st is None:
                return
            st.digest.update(ev.data)
            st.size += len(ev.data)
            if st.path == "/echo":
                st.out.append(ev.data)
            if ev.stream_ended:
                self.complete(st)
        elif isinstance(ev, h2.events.TrailersReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.trailers = list(ev.headers)
                if ev.stream_ended:
                    self.complete(st)
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                self.complete(st)
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.pop(ev.stream_id, None)
            with self.srv.lock:
                self.srv.resets.append((self.cid, ev.stream_id, st.path if st else None,
                                        int(ev.error_code)))
            if st is not None:
                st.done = True

    def complete(self, st):
        """The request is whole: record it and answer."""
        if st.completed:
            return
        st.completed = True
        entry = {"method": st.method, "path": st.path, "headers": st.headers,
                 "trailers": st.trailers, "body_len": st.size,
                 "body_sha256": st.digest.hexdigest(), "conn": self.cid,
                 "stream": st.sid, "time": time.time()}
        if st.path != "/_stats":
            with self.srv.lock:
                self.srv.counts[st.path] = self.srv.counts.get(st.path, 0) + 1
                self.srv.log.append(entry)
        seg = st.path.split("/")
        if st.path == "/_stats":
            self.respond(st, 200, [("content-type", "application/json")], self.srv.stats())
        elif st.path == "/echo":
            st.end_trailers = st.trailers + [("x-checksum", st.digest.hexdigest())]
            st.end = True
        elif len(seg) == 3 and seg[1] == "size" and seg[2].isdigit():
            n = int(seg[2])
            self.h2.send_headers(st.sid, [(":status", "200"), ("content-length", str(n)),
                                          ("x-server", self.srv.name)], end_stream=n == 0)
            st.source = pattern_chunks(n, 16384)
            st.end = n > 0
            st.done = n == 0
        elif len(seg) == 3 and seg[1] in ("chunked", "trailers") and seg[2].isdigit():
            n = int(seg[2])
            body = b"".join(pattern_chunks(n))
            self.h2.send_headers(st.sid, [(":status", "200"), ("x-server", self.srv.name)])
            st.out.append(body)
            st.end_trailers = [("x-checksum", hashlib.sha256(body).hexdigest())]
            st.end = True
        elif st.path == "/headers":
            self.respond(st, 200, [("content-type", "application/json")],
                         json.dumps(entry).encode())
        elif len(seg) == 3 and seg[1] == "status" and seg[2].isdigit():
            code = int(seg[2])
            self.respond(st, code, [], b"" if code in (204, 304) else b"status %d\n" % code)
        elif len(seg) == 3 and seg[1] == "slow" and seg[2].isdigit():
            self.timers.append((time.monotonic() + int(seg[2]) / 1000.0, st.sid))
        elif st.path == "/hints":
            self.h2.send_headers(st.sid, [(":status", "103"),
                                          ("link", "</hinted.css>; rel=preload; as=style")])
            self.timers.append((time.monotonic() + 0.2, st.sid))  # then the 200
        elif seg[1:2] == ["stall"]:
            pass
        elif st.path == "/health":
            bad = self.srv.args.flag and os.path.exists(self.srv.args.flag)
            self.respond(st, 500 if bad else 200, [], b"bad\n" if bad else b"ok\n")
        elif st.path == "/id":
            self.respond(st, 200, [("x-server", self.srv.name)], self.srv.name.encode())
        else:
            self.respond(st, 404, [], b"no such endpoint\n")

    def respond(self, st, status, headers, body):
        self.h2.send_headers(st.sid, [(":status", str(status)),
                                      ("content-length", str(len(body)))] + headers,
                             end_stream=not body)
        if body:
            st.out.append(body)
            st.end = True
        else:
            st.done = True

    def pump(self):
        """Send what the flow-control windows allow, stream by stream; a
        stream sluice reset meanwhile is dropped, not the connection."""
        for st in list(self.streams.values()):
            if st.done:
                continue
            try:
                self.pump_stream(st)
            except h2.exceptions.StreamClosedError:
                st.done = True
        for sid in [s for s, st in self.streams.items() if st.done]:
            del self.streams[sid]

    def pump_stream(self, st):
        while True:
            if not st.out and st.source is not None:
                nxt = next(st.source, None)
                if nxt is None:
                    st.source = None
                else:
                    st.out.append(nxt)
            if not st.out:
                break
            if len(self.outbuf) > (1 << 20):
                return  # the socket is behind: produce no more for now
            try:
                win = min(self.h2.local_flow_control_window(st.sid),
                          self.h2.max_outbound_frame_size)
            except h2.exceptions.StreamClosedError:
                st.done = True
                break
            if win <= 0:
                break
            piece = st.out[0][:win]
            if len(piece) == len(st.out[0]):
                st.out.pop(0)
            else:
                st.out[0] = st.out[0][win:]
            self.h2.send_data(st.sid, piece)
            with self.srv.lock:
                self.srv.bytes_out += len(piece)
            self.outbuf += self.h2.data_to_send()
        if st.end and not st.out and st.source is None and not st.done:
            if st.end_trailers is not None:
                self.h2.send_headers(st.sid, st.end_trailers, end_stream=True)
            else:
                self.h2.end_stream(st.sid)
            st.done = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="h2")
    ap.add_argument("--flag")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = ap.parse_args()
    srv = Server(args)
    signal.signal(signal.SIGTERM, lambda *a: srv.stop.set())
    srv.serve()
    sys.exit(0)


if __name__ == "__main__":
    main()
