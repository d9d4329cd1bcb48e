#!/usr/bin/python3
# relay.py — a delaying TCP relay for the upload benchmark: adds a fixed
# one-way delay in each direction (netem, which would do this, is missing).
"""Accepts connections on a Unix socket and relays each to a TCP address,
holding every chunk for --delay-ms before forwarding it, in both directions:
a round trip through the relay takes twice the delay. The client reaches
the relay over a Unix socket so that the bytes cross the namespace's
rate-limited loopback only once (relay -> server).

The relay is a bounded queue, like a link's buffer: a direction holding more
than --queue bytes stops reading until it drains, and the TCP send buffer
towards the server is fixed at --sndbuf, so a large HTTP/2 window cannot hide
megabytes in the relay. Prints "ready" once listening. Stdlib only.
"""
import argparse
import asyncio
import collections
import os
import socket
import sys


class Pipe:
    """One direction: read, hold for `delay`, write; at most `limit` bytes held."""

    def __init__(self, reader, writer, delay, limit, chunk):
        self.reader, self.writer = reader, writer
        self.delay, self.limit, self.chunk = delay, limit, chunk
        self.q = collections.deque()
        self.held = 0
        self.room = asyncio.Event()
        self.room.set()
        self.more = asyncio.Event()
        self.eof = False

    async def pull(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.room.wait()
                data = await self.reader.read(self.chunk)
                if not data:
                    break
                self.q.append((loop.time() + self.delay, data))
                self.held += len(data)
                if self.held >= self.limit:
                    self.room.clear()
                self.more.set()
        except (ConnectionError, OSError):
            pass
        self.eof = True
        self.more.set()

    async def push(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self.q:
                    if self.eof:
                        if self.writer.can_write_eof():
                            self.writer.write_eof()
                        return
                    self.more.clear()
                    await self.more.wait()
                due, data = self.q[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.q.popleft()
                self.writer.write(data)
                await self.writer.drain()
                self.held -= len(data)
                if self.held < self.limit:
                    self.room.set()
        except (ConnectionError, OSError):
            pass


async def handle(args, c_reader, c_writer):
    host, port = args.connect.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if args.sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        s_reader, s_writer = await asyncio.open_connection(sock=sock, limit=args.chunk)
    except OSError as e:
        print(f"relay: cannot connect to {args.connect}: {e}", file=sys.stderr, flush=True)
        sock.close()
        c_writer.close()
        return
    d = args.delay_ms / 1000
    up = Pipe(c_reader, s_writer, d, args.queue, args.chunk)
    down = Pipe(s_reader, c_writer, d, args.queue, args.chunk)
    await asyncio.gather(up.pull(), up.push(), down.pull(), down.push())
    for w in (s_writer, c_writer):
        w.close()


async def main_async(args):
    if os.path.exists(args.listen):
        os.unlink(args.listen)
    server = await asyncio.start_unix_server(lambda r, w: handle(args, r, w), path=args.listen,
                                             limit=args.chunk)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--listen", required=True, help="Unix socket path to accept on")
    ap.add_argument("--connect", required=True, help="HOST:PORT to relay to")
    ap.add_argument("--delay-ms", type=float, default=20, help="one-way delay, each direction")
    ap.add_argument("--queue", type=int, default=1 << 20,
                    help="bytes a direction may hold before it stops reading")
    ap.add_argument("--sndbuf", type=int, default=256 << 10,
                    help="SO_SNDBUF towards the server (the kernel doubles it; 0: autotuned)")
    ap.add_argument("--chunk", type=int, default=64 << 10, help="read size")
    args = ap.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
