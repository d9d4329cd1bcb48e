#!/usr/bin/python3
"""test_grpc.py — gRPC (python3-grpcio) through sluice, h2c on both sides:
a unary call with its trailing metadata, server-streaming and bidirectional
calls, and a failing call whose grpc-status NOT_FOUND and message reach the
client in the trailers."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import Site, Skip, Upstream, main, serve  # noqa: E402

try:
    import grpc
    import grpc_fixture as g
except ImportError:
    grpc = None


def channel(site):
    if grpc is None:
        raise Skip("python3-grpcio not installed")
    return grpc.insecure_channel("127.0.0.1:%d" % site.plain)


def proxied(fn):
    if grpc is None:
        raise Skip("python3-grpcio not installed")
    with Site() as site, Upstream("grpc") as up, serve(site, [up]) as sl:
        ch = channel(site)
        try:
            fn(ch)
        finally:
            ch.close()
        assert sl.alive()


def test_grpc_unary():
    def fn(ch):
        resp, call = g.method(ch, "Unary", "unary_unary").with_call(b"hello", timeout=10)
        assert resp == b"echo:hello", resp
        assert call.code() == grpc.StatusCode.OK
        assert ("x-trail", "unary") in [tuple(m) for m in call.trailing_metadata()], \
            call.trailing_metadata()
        big = os.urandom(1 << 20)
        assert g.method(ch, "Unary", "unary_unary")(big, timeout=10) == b"echo:" + big
    proxied(fn)


def test_grpc_streaming():
    def fn(ch):
        call = g.method(ch, "Stream", "unary_stream")(b"50", timeout=10)
        got = list(call)
        assert got == [b"msg-%d" % i for i in range(50)], got[:5]
        assert call.code() == grpc.StatusCode.OK
        assert ("x-trail", "stream") in [tuple(m) for m in call.trailing_metadata()]
        reqs = [b"a%d" % i for i in range(20)]
        got = list(g.method(ch, "Bidi", "stream_stream")(iter(reqs), timeout=10))
        assert got == [r.upper() for r in reqs], got
    proxied(fn)


def test_grpc_status_not_found():
    def fn(ch):
        try:
            g.method(ch, "Missing", "unary_unary")(b"x", timeout=10)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
            assert e.details() == "no such thing", e.details()
        else:
            raise AssertionError("the call succeeded")
    proxied(fn)


if __name__ == "__main__":
    main(globals())
