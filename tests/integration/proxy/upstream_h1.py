#!/usr/bin/python3
"""upstream_h1.py — the HTTP/1.1 upstream the proxy tests put behind sluice:
a threaded keep-alive server on raw sockets (strict framing, so what sluice
forwards is seen byte for byte) with test endpoints, and a log of every
request that tests read from /_stats directly, not through sluice.

Usage: upstream_h1.py --port P --name NAME [--flag FILE] [--reset]
       [--tls CERT KEY]. Prints "ready" when listening; stops on SIGTERM.
Endpoints (any method unless noted; /_stats is not counted):
  /size/N      N bytes of the pattern (byte i = i % 251), content-length
  /chunked/N   the same, chunked, trailer x-checksum: sha256 of the body
  /echo        the request body streamed back (chunked, with the request's
               trailers plus x-checksum, when the request was chunked)
  /headers     the request (method, target, headers, trailers) as JSON
  /hop         a response with hop-by-hop headers sluice must remove
  /hints       a 100 Continue nobody asked for, a 103 Early Hints (link
               </hinted.css>, plus hop-by-hop fields), 200 ms later the 200
  /status/N    status N
  /slow/MS     answers after MS ms
  /stall, /stall/...   never answer (until the server stops)
  /health      200, or 500 while FILE (--flag) exists
  /id          the server's name
With --reset every connection is reset (RST) after a full request is read,
before any response byte: a server that dies mid-request."""

import argparse
import hashlib
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time

BLOCK = bytes(range(251)) * 261  # 65511 bytes: a whole number of periods


def pattern_chunks(n, size=65511):
    """The first n bytes of the pattern, in pieces of at most `size`."""
    off = 0
    while off < n:
        k = min(size, n - off)
        start = off % 251
        if start + k <= len(BLOCK):
            yield BLOCK[start:start + k]
        else:
            yield (BLOCK[start:] + BLOCK)[:k]
        off += k


class BadRequest(Exception):
    pass


class Conn:
    """Buffered reading of one client connection with strict HTTP/1.1 framing."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self):
        b = self.sock.recv(262144)
        if not b:
            raise EOFError
        self.buf += b

    def line(self, limit=65536):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self.fill()

    def exact(self, n):
        """Up to n bytes, at least one (a piece of a body)."""
        if not self.buf:
            self.fill()
        k = min(n, len(self.buf))
        out = bytes(self.buf[:k])
        del self.buf[:k]
        return out

    def fields(self):
        out = []
        while True:
            ln = self.line()
            if not ln:
                return out
            if ln[:1] in (b" ", b"\t"):
                raise BadRequest("obs-fold")
            name, sep, value = ln.partition(b":")
            if not sep or not name or name != name.strip():
                raise BadRequest("bad field line %r" % ln)
            out.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))


class Server:
    def __init__(self, args):
        self.args = args
        self.name = args.name
        self.lock = threading.Lock()
        self.counts = {}          # path (without query) -> complete requests
        self.started = {}         # path -> request heads read (complete or not)
        self.log = []             # one dict per complete request
        self.conns = 0            # connections accepted
        self.used = set()         # ... of which carried a request other than /_stats
        self.active = 0           # requests being answered now
        self.bytes_out = 0        # response body bytes written
        self.errors = []          # malformed requests sluice sent us
        self.stop = threading.Event()
        self.tls = None
        if args.tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(args.tls[0], args.tls[1])
            self.tls.set_alpn_protocols(["http/1.1"])

    # -- serving ---------------------------------------------------------

    def serve(self):
        ls = socket.socket(socket.AF_INET6 if ":" in self.args.host else socket.AF_INET)
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
            threading.Thread(target=self.conn, args=(s,), daemon=True).start()
        ls.close()

    def conn(self, s):
        with self.lock:
            self.conns += 1
            cid = self.conns
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                s.settimeout(5)
                s = self.tls.wrap_socket(s, server_side=True)
                s.settimeout(None)
            c = Conn(s)
            while not self.stop.is_set():
                if not self.request(c, cid):
                    break
        except (EOFError, ConnectionError, ssl.SSLError, OSError):
            pass
        except BadRequest as e:
            with self.lock:
                self.errors.append(str(e))
            try:
                s.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"
                          b"connection: close\r\n\r\n")
            except OSError:
                pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def read_body(self, c, hdrs, sink):
        """Read the request body by its framing, passing pieces to sink;
        return (trailers, chunked)."""
        te = [v for k, v in hdrs if k == "transfer-encoding"]
        cl = [v for k, v in hdrs if k == "content-length"]
        if te and cl:
            raise BadRequest("content-length with transfer-encoding")
        if te:
            if [x.strip().lower() for x in ",".join(te).split(",")] != ["chunked"]:
                raise BadRequest("transfer-encoding %r" % te)
            while True:
                ln = c.line(4096)
                size_s = ln.split(b";")[0]
                try:
                    size = int(size_s, 16)
                except ValueError:
                    raise BadRequest("chunk size %r" % ln)
                if size_s != size_s.strip() or not size_s:
                    raise BadRequest("chunk size %r" % ln)
                if size == 0:
                    return c.fields(), True
                while size:
                    b = c.exact(size)
                    size -= len(b)
                    sink(b)
                if c.line(2) != b"":
                    raise BadRequest("chunk not followed by CRLF")
        if cl:
            if len(cl) > 1 or not cl[0].isdigit():
                raise BadRequest("content-length %r" % cl)
            n = int(cl[0])
            while n:
                b = c.exact(n)
                n -= len(b)
                sink(b)
        return [], False

    def request(self, c, cid):
        try:
            start = c.line()
        except EOFError:
            return False
        parts = start.split(b" ")
        if len(parts) != 3 or parts[2] != b"HTTP/1.1":
            raise BadRequest("request line %r" % start)
        method, target = parts[0].decode(), parts[1].decode("latin-1")
        hdrs = c.fields()
        path = target.split("?")[0]
        with self.lock:
            self.started[path] = self.started.get(path, 0) + 1
            if path != "/_stats":
                self.used.add(cid)
        if path == "/_stats":
            self.read_body(c, hdrs, lambda b: None)
            with self.lock:
                body = json.dumps({"name": self.name, "counts": self.counts,
                                   "started": self.started, "log": self.log,
                                   "conns": len(self.used), "active": self.active,
                                   "bytes_out": self.bytes_out,
                                   "errors": self.errors}).encode()
            c.sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                           b"content-length: %d\r\n\r\n" % len(body) + body)
            return True
        entry = {"method": method, "target": target, "headers": hdrs, "conn": cid,
                 "time": time.time()}
        if path == "/echo":
            return self.echo(c, hdrs, entry, path)
        digest = hashlib.sha256()
        size = [0]

        def sink(b):
            digest.update(b)
            size[0] += len(b)
        trailers, _ = self.read_body(c, hdrs, sink)
        entry.update(body_len=size[0], body_sha256=digest.hexdigest(), trailers=trailers)
        self.record(path, entry)
        if self.args.reset:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        with self.lock:
            self.active += 1
        try:
            return self.answer(c, method, path, hdrs, entry)
        finally:
            with self.lock:
                self.active -= 1

    def record(self, path, entry):
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1
            self.log.append(entry)

    def send(self, c, status, headers, body=b"", head=False):
        out = ["HTTP/1.1 %d X" % status] + ["%s: %s" % kv for kv in headers]
        if status not in (204, 304):
            out.append("content-length: %d" % len(body))
        data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        if not head:
            data += body
            with self.lock:
                self.bytes_out += len(body)
        c.sock.sendall(data)

    def send_body(self, c, chunks):
        for b in chunks:
            c.sock.sendall(b)
            with self.lock:
                self.bytes_out += len(b)

    def answer(self, c, method, path, hdrs, entry):
        seg = path.split("/")
        head = method == "HEAD"
        if len(seg) == 3 and seg[1] == "size" and seg[2].isdigit():
            n = int(seg[2])
            c.sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                           b"x-server: %s\r\ncontent-length: %d\r\n\r\n" % (
                               self.name.encode(), n))
            if not head:
                self.send_body(c, pattern_chunks(n))
        elif len(seg) == 3 and seg[1] == "chunked" and seg[2].isdigit():
            n = int(seg[2])
            c.sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                           b"transfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n")
            digest = hashlib.sha256()
            sizes = [1, 100, 4096, 65511]
            i = 0
            for piece in pattern_chunks(n):
                while piece:  # varied chunk sizes, so framing bugs show
                    k = sizes[i % len(sizes)]
                    i += 1
                    part, piece = piece[:k], piece[k:]
                    digest.update(part)
                    self.send_body(c, [b"%x\r\n" % len(part) + part + b"\r\n"])
            c.sock.sendall(b"0\r\nx-checksum: %s\r\n\r\n" % digest.hexdigest().encode())
        elif path == "/headers":
            body = json.dumps(entry).encode()
            self.send(c, 200, [("content-type", "application/json")], body, head)
        elif path == "/hop":
            self.send(c, 200, [("connection", "x-resp-hop"), ("x-resp-hop", "1"),
                               ("keep-alive", "timeout=5"), ("proxy-connection", "keep-alive"),
                               ("x-kept", "yes")], b"hop\n", head)
        elif path == "/hints":
            # Only the 103 may reach the client (RFC 8297), without the
            # hop-by-hop fields; the 100 is this hop's business.
            c.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"
                           b"HTTP/1.1 103 Early Hints\r\n"
                           b"link: </hinted.css>; rel=preload; as=style\r\n"
                           b"connection: x-hint-hop\r\nx-hint-hop: 1\r\n"
                           b"keep-alive: timeout=5\r\n\r\n")
            if self.stop.wait(0.2):
                return False
            self.send(c, 200, [("x-server", self.name)], b"hinted\n", head)
        elif len(seg) == 3 and seg[1] == "status" and seg[2].isdigit():
            st = int(seg[2])
            self.send(c, st, [], b"" if st in (204, 304) else b"status %d\n" % st, head)
        elif len(seg) == 3 and seg[1] == "slow" and seg[2].isdigit():
            if self.stop.wait(int(seg[2]) / 1000.0):
                return False
            self.send(c, 200, [("x-server", self.name)], b"slow " + self.name.encode(), head)
        elif seg[1:2] == ["stall"]:
            self.stop.wait()
            return False
        elif path == "/health":
            bad = self.args.flag and os.path.exists(self.args.flag)
            self.send(c, 500 if bad else 200, [], b"bad\n" if bad else b"ok\n", head)
        elif path == "/id":
            self.send(c, 200, [("x-server", self.name)], self.name.encode(), head)
        else:
            self.send(c, 404, [], b"no such endpoint\n", head)
        return not any(k == "connection" and "close" in v.lower() for k, v in hdrs)

    def echo(self, c, hdrs, entry, path):
        """Stream the body back as it arrives: the response head goes out
        before the body is read, so a proxy that waits for the whole request
        body first, or buffers the response, still works but one that
        deadlocks on flow control shows."""
        if self.args.reset:
            self.read_body(c, hdrs, lambda b: None)
            self.record(path, dict(entry, body_len=None))
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        chunked = any(k == "transfer-encoding" for k, v in hdrs)
        cl = [v for k, v in hdrs if k == "content-length"]
        digest = hashlib.sha256()
        size = [0]
        if chunked or not cl:
            c.sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                           b"x-server: %s\r\ntransfer-encoding: chunked\r\n\r\n" %
                           self.name.encode())

            def sink(b):
                digest.update(b)
                size[0] += len(b)
                self.send_body(c, [b"%x\r\n" % len(b) + b + b"\r\n"])
            trailers, _ = self.read_body(c, hdrs, sink)
            tail = "".join("%s: %s\r\n" % kv for kv in trailers)
            tail += "x-checksum: %s\r\n" % digest.hexdigest()
            c.sock.sendall(b"0\r\n" + tail.encode("latin-1") + b"\r\n")
        else:
            c.sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                           b"x-server: %s\r\ncontent-length: %s\r\n\r\n" % (
                               self.name.encode(), cl[0].encode()))

            def sink(b):
                digest.update(b)
                size[0] += len(b)
                self.send_body(c, [b])
            trailers, _ = self.read_body(c, hdrs, sink)
        entry.update(body_len=size[0], body_sha256=digest.hexdigest(), trailers=trailers)
        self.record(path, entry)
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="h1")
    ap.add_argument("--flag")
    ap.add_argument("--reset", action="store_true")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = ap.parse_args()
    srv = Server(args)
    signal.signal(signal.SIGTERM, lambda *a: srv.stop.set())
    srv.serve()
    sys.exit(0)


if __name__ == "__main__":
    main()
