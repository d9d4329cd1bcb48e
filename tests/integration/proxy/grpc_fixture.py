#!/usr/bin/python3
"""grpc_fixture.py — a gRPC server (python3-grpcio, h2c) for the proxy
tests, and the client calls the tests make through sluice. Generic handlers
with raw-bytes messages, so no .proto and no code generation are needed.

Server: grpc_fixture.py --port P; prints "ready", stops on SIGTERM.
Service sluice.test.Echo:
  Unary(bytes) -> b"echo:" + request; trailing metadata x-trail: unary
  Stream(b"N") -> N messages b"msg-0", b"msg-1", ...; x-trail: stream
  Bidi(stream) -> each request back upper-cased
  Missing(bytes) -> fails with NOT_FOUND, details "no such thing"."""

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "sluice.test.Echo"


def ident(b):
    return b


def unary(request, context):
    context.set_trailing_metadata((("x-trail", "unary"),))
    return b"echo:" + request


def stream(request, context):
    context.set_trailing_metadata((("x-trail", "stream"),))
    for i in range(int(request)):
        yield b"msg-%d" % i


def bidi(requests, context):
    for r in requests:
        yield r.upper()


def missing(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def handler():
    h = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, ident, ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, ident, ident),
        "Missing": grpc.unary_unary_rpc_method_handler(missing, ident, ident),
    })
    return h


def method(channel, name, kind):
    """A client callable for SERVICE/name; kind: unary_unary, unary_stream, ..."""
    return getattr(channel, kind)("/%s/%s" % (SERVICE, name),
                                  request_serializer=ident, response_deserializer=ident)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler(),))
    if server.add_insecure_port("127.0.0.1:%d" % args.port) == 0:
        sys.exit("cannot bind port %d" % args.port)
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    print("ready", flush=True)
    done.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
