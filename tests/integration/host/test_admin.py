"""test_admin.py — the admin endpoint's Prometheus text: connection and
request counters, the HTTP/2 RTT histogram and pushes, filled in by real
clients (curl, nghttp) as their connections close."""

import re

from hostutil import Site, Sluice, free_port, main, need, run, wait_admin_metrics


def test_h2_rtt_and_pushes():
    """An h2c connection from curl and one from nghttp that accepts a push:
    when both have closed, the RTT histogram counts their measured round
    trips (cumulative buckets ending at +Inf = count, a positive sum, in
    nanoseconds: a loopback RTT is well under a millisecond) and the push
    counter one PUSH_PROMISE."""
    need("curl", "nghttp")
    with Site() as site:
        site.write("site/style.css", "body { color: black }\n")
        admin = free_port()
        cfg = site.config('route { path = "/", static = "site", push = { "/style.css" } }\n'
                          'admin { listen = "127.0.0.1:%d" }\n' % admin, tls=False)
        with Sluice(cfg):
            m, text = wait_admin_metrics(admin, lambda m: "sluice_h2_pushes_total" in m)
            assert m["sluice_h2_pushes_total"] == 0, text
            assert m["sluice_h2_connection_rtt_seconds_count"] == 0, text
            _, out, _ = run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10",
                             "http://127.0.0.1:%d/" % site.plain])
            assert out == Site.INDEX
            _, out, _ = run(["nghttp", "-n", "-s", "http://127.0.0.1:%d/" % site.plain])
            assert b"/style.css" in out, out  # nghttp's summary lists the pushed stream
            m, text = wait_admin_metrics(admin, lambda m: m["sluice_connections_total"] == 2 and
                                   m["sluice_connections_open"] == 0 and
                                   m["sluice_h2_connection_rtt_seconds_count"] >= 1)
            # curl's SETTINGS ACK always gives a round trip; nghttp's may come
            # with its GOAWAY after the server has stopped reading.
            n = m["sluice_h2_connection_rtt_seconds_count"]
            assert n in (1, 2), text
            assert m["sluice_h2_pushes_total"] == 1, text
            buckets = [(float(le) if le != "+Inf" else float("inf"), float(v))
                       for le, v in re.findall(
                           r'^sluice_h2_connection_rtt_seconds_bucket\{le="([^"]+)"\} (\d+)$',
                           text, re.M)]
            assert len(buckets) == 10 and buckets[-1] == (float("inf"), n), buckets
            assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
            assert 0 < m["sluice_h2_connection_rtt_seconds_sum"] < 0.5, text
            assert m["sluice_connections_total"] == 2, text  # the admin port is not counted


if __name__ == "__main__":
    main(globals())
