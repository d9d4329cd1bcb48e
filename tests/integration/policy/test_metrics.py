"""test_metrics.py — the admin endpoint's policy counters: hook calls, hook
errors, budget overruns and the Lua states' memory, summed over workers."""

import subprocess
import time

from policyutil import Sluice, Site, config, main, need
from hostutil import admin_metrics, free_port, wait_admin_metrics

POLICY = """
function on_request(stream, req)
  if req.path == "/boom" then error("boom") end
  if req.path == "/spin" then while true do end end
end
"""


def policy_series(m):
    """The sluice_policy_* series of admin_metrics(), as integers."""
    return {k: int(v) for k, v in m.items() if k.startswith("sluice_policy_")}


def metrics(port):
    return policy_series(admin_metrics(port)[0])


def get(port, path):
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "5", "-o",
                        "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d%s" % (port, path)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return int(p.stdout)


def test_policy_counters():
    """Five requests: three run cleanly, one raises, one spins into the
    instruction budget; each gets its normal answer, and /metrics counts
    5 calls, 2 errors, 1 budget overrun, and the state's memory."""
    need("curl")
    with Site() as site:
        site.write("p.lua", POLICY)
        site.write("site/index.html", "hello\n")
        admin = free_port()
        cfg = config(site, policy='policy { file = "p.lua" }\n',
                     extra='admin { listen = "127.0.0.1:%d" }\n' % admin, tls=False)
        with Sluice(cfg):
            before = policy_series(wait_admin_metrics(  # the worker's first publication
                admin, lambda m: m.get("sluice_policy_memory_bytes", 0) > 0, timeout=3)[0])
            # No on_connection, so the load's dry run made no call.
            assert before["sluice_policy_calls_total"] == 0, before
            assert before["sluice_policy_errors_total"] == 0, before
            assert before["sluice_policy_budget_exceeded_total"] == 0, before
            assert before["sluice_policy_memory_bytes"] > 10000, before
            # A failed hook changes nothing: the static route answers as usual.
            for path, status in (("/", 200), ("/boom", 404), ("/", 200), ("/spin", 404),
                                 ("/index.html", 200)):
                assert get(site.plain, path) == status, path
            calls0 = before["sluice_policy_calls_total"]
            m = policy_series(wait_admin_metrics(
                admin, lambda m: m["sluice_policy_calls_total"] - calls0 >= 5, timeout=3)[0])
            assert m["sluice_policy_calls_total"] - before["sluice_policy_calls_total"] == 5, m
            assert m["sluice_policy_errors_total"] == 2, m
            assert m["sluice_policy_budget_exceeded_total"] == 1, m
            assert m["sluice_policy_memory_bytes"] > 10000, m


def test_no_policy_counts_nothing():
    need("curl")
    with Site() as site:
        site.write("site/index.html", "hello\n")
        admin = free_port()
        cfg = config(site, extra='admin { listen = "127.0.0.1:%d" }\n' % admin, tls=False)
        with Sluice(cfg):
            assert get(site.plain, "/index.html") == 200
            time.sleep(0.3)
            assert metrics(admin) == {"sluice_policy_calls_total": 0,
                                      "sluice_policy_errors_total": 0,
                                      "sluice_policy_budget_exceeded_total": 0,
                                      "sluice_policy_memory_bytes": 0}


if __name__ == "__main__":
    main(globals())
