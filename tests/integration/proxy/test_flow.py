#!/usr/bin/python3
"""test_flow.py — flow control end to end: a 100 MiB response to a client
reading at 1 MiB/s must not grow sluice's RSS by 16 MiB (the upstream read
stops while the per-stream buffer is full), and a stream whose upstream
stalls, or whose client does not read, does not hold up the other streams of
the same client connection or of the same upstream HTTP/2 connection."""

import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxyutil import (H2T, MiB, Site, Upstream, hostutil, main, need, pattern,  # noqa: E402
                       rss_kib, run, serve)

HUGE = 100 * MiB
MEASURE_S = 10  # long enough for an unbounded proxy to have read ~all 100 MiB


def check_slow_client(kind, proto):
    # Under ASan, freed blocks wait in a quarantine (256 MiB by default) and
    # count in RSS: a streaming proxy would look like a buffering one.
    os.environ["ASAN_OPTIONS"] = ":".join(
        filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=1"]))
    with Site() as site, Upstream(kind) as up, serve(site, [up], buffer="64k",
                                                     read_timeout=30) as sl:
        # warm up: a first proxied request allocates what every request needs
        subprocess.run(["curl", "-sS", "-o", "/dev/null", proto,
                        "http://127.0.0.1:%d/size/1000000" % site.plain], check=True)
        base = rss_kib(sl.pid)
        out = site.path("big.out")
        cl = subprocess.Popen(["curl", "-sS", proto, "--limit-rate", "1M", "-o", out,
                               "http://127.0.0.1:%d/size/%d" % (site.plain, HUGE)],
                              stderr=subprocess.PIPE)
        peak = base
        try:
            t_end = time.monotonic() + MEASURE_S
            while time.monotonic() < t_end:
                if cl.poll() is not None:
                    raise AssertionError("curl ended early (exit %d) after %d bytes: %s" % (
                        cl.returncode, os.path.getsize(out) if os.path.exists(out) else 0,
                        cl.stderr.read()))
                peak = max(peak, rss_kib(sl.pid))
                time.sleep(0.2)
            got = os.path.getsize(out)
            sent = up.stats()["bytes_out"]
        finally:
            cl.kill()
            cl.wait()
            cl.stderr.close()
        grew = (peak - base) / 1024.0
        print("rss %d KiB -> peak %d KiB; client got %.1f MiB, upstream sent %.1f MiB" % (
            base, peak, got / MiB, sent / MiB))
        # the transfer is running at the client's pace...
        assert 4 * MiB < got < 20 * MiB, "client got %d bytes in %d s" % (got, MEASURE_S)
        with open(out, "rb") as f:
            assert f.read(1 << 20) == pattern(1 << 20), "body bytes differ"
        # ...and sluice neither holds nor lets the upstream push the rest
        assert grew < 16, "sluice RSS grew by %.1f MiB (from %d KiB)" % (grew, base)
        assert sent < got + 32 * MiB, (
            "upstream sent %.1f MiB while the client read %.1f MiB: the upstream read "
            "did not stop" % (sent / MiB, got / MiB))


def test_slow_client_rss_h1_upstream():
    check_slow_client("h1", "--http2-prior-knowledge")


def test_slow_client_rss_h2_upstream():
    check_slow_client("h2", "--http1.1")


def test_small_window_client():
    """nghttp with its default 64 KiB stream window: the response resumes
    each time the client's WINDOW_UPDATEs reopen it."""
    need("nghttp")
    with Site() as site, Upstream("h1") as h1, Upstream("h2") as h2:
        for up in (h1, h2):
            with serve(site, [up]):
                for path in ("/size/%d" % (4 * MiB), "/chunked/%d" % (4 * MiB)):
                    _, out, _ = run(["nghttp", "-n", "-s", "-w", "16", "-W", "16", "-t", "5",
                                     "http://127.0.0.1:%d%s" % (site.plain, path)], timeout=20)
                    stat = out.decode().splitlines()[-1].split()
                    assert stat[-1] == path, "%s upstream, %s: no whole response in 5 s" % (
                        up.kind, path)
                    assert stat[4:6] == ["200", "4M"], "%s %s: %s" % (up.kind, path, stat)


class Frozen(H2T):
    """Grants no window to the streams in .frozen: their data is not read."""

    def __init__(self, *a, **kw):
        self.frozen = set()
        super().__init__(*a, **kw)

    def reply(self, f):
        if (isinstance(f, hostutil.hf.DataFrame) and f.stream_id in self.frozen and
                f.flow_controlled_length):
            self.send(hostutil.hf.WindowUpdateFrame(0, window_increment=f.flow_controlled_length))
            return
        super().reply(f)


def check_stall(kind):
    """One client connection: stream A waits on an upstream that never
    answers, stream B has a 8 MiB response the client does not read; 30
    requests and a 1 MiB download on the same connection still finish
    promptly."""
    with Site() as site, Upstream(kind) as up, serve(site, [up], read_timeout=20):
        c = Frozen.plain(site.plain, timeout=10)
        try:
            stalled_streams(c, up, kind)
        finally:
            c.close()  # sluice's graceful stop would wait for the open streams


def stalled_streams(c, up, kind):
    """check_stall's requests and checks on client connection c."""
    stall = c.request("/stall/a")
    unread = c.request("/size/%d" % (8 * MiB))
    c.frozen.add(unread)
    t0 = time.monotonic()
    ids = [c.request("/id") for _ in range(30)]
    for sid in ids:
        h, body = c.response(sid)
        assert h[b":status"] == b"200" and body == up.name.encode(), (sid, h, body)
    sid = c.request("/size/%d" % MiB)
    h, body = c.response(sid, timeout=5)
    assert h[b":status"] == b"200" and body == pattern(MiB), (h, len(body))
    took = time.monotonic() - t0
    assert took < 3, "the other streams took %.1f s" % took
    assert not c.streams.get(stall) or not c.streams[stall].ended, "stall answered"
    assert not c.streams[unread].ended, "unread stream ended"
    got = len(c.streams[unread].body)
    assert 0 < got <= 65535, "unread stream got %d bytes" % got
    stats = up.stats()
    assert stats["started"].get("/stall/a", 0) == 1, stats["started"]
    if kind == "h2":
        # one upstream connection carries the stalled, the unread and the others
        log = stats["log"]
        stall_conn = [e["conn"] for e in log if e["path"] == "/size/%d" % (8 * MiB)]
        assert stall_conn, log
        assert [e["conn"] for e in log if e["path"] == "/stall/a"] == stall_conn, log
        shared = [e for e in log if e["path"] == "/id" and e["conn"] == stall_conn[0]]
        assert len(shared) == 30, "only %d of 30 requests on the upstream connection " \
            "of the unread stream (conns: %d)" % (len(shared), stats["conns"])


def test_stall_h1_upstream():
    check_stall("h1")


def test_stall_h2_upstream():
    check_stall("h2")


if __name__ == "__main__":
    main(globals())
