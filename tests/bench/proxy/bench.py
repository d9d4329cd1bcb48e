#!/usr/bin/python3
"""Proxy benchmark: sluice, nginx and h2o as reverse proxies, one worker each,
in front of the same fast HTTP/1.1 upstream (run by tests/bench/run-proxy.sh,
which builds sluice first).

The upstream is a second sluice process answering from `ret` routes (1 KiB
and 64 KiB bodies) on 127.0.0.1 over HTTP/1.1 keep-alive, with its metrics
endpoint on: its request counter proves every response came through it, and
its connection counter shows how often the proxies' pools reconnected. Its CPU
is reported beside the proxies' but is not part of their figures.

h2load (one thread, h2c with prior knowledge and TLS with ALPN h2) runs a
fixed number of requests against each proxy in turn, the order rotating every
round; per run, req/s and the proxy's CPU time per request (utime+stime from
/proc/PID/stat of all its processes, before and after). The proxies are
pinned to --server-cpu, h2load and the upstream to --client-cpu (and
--upstream-cpu). Stdlib only: Debian's /usr/bin/python3.
"""
import argparse
import http.client
import importlib.util
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# The host benchmark's /proc readers, h2load parser, process handling and
# number formatting are the same methodology: use them, do not copy them
# (and leave no __pycache__ behind in the tree).
sys.dont_write_bytecode = True
_spec = importlib.util.spec_from_file_location(
    "host_bench", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host", "bench.py"))
hb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hb)
log, med, fmt, ratio = hb.log, hb.med, hb.fmt, hb.ratio


def pct(x):
    return "-" if x is None else hb.pct(x)


SIZES = {"1k": 1024, "64k": 64 * 1024}
DEFAULT_LOAD = {"1k": "-n 50000 -c 10 -m 10", "64k": "-n 10000 -c 10 -m 10"}
WARMUP = "-n 2000 -c 10 -m 10"
ALL_PROXIES = ["sluice", "nginx", "h2o"]
PROTOS = ["h2c", "tls"]


# ---- processes ------------------------------------------------------------------

class Proc(hb.Server):
    """A proxy (or the upstream) with a TLS and an h2c listener in one process;
    start/stop/pids/log_tail are the host benchmark's."""

    def __init__(self, name, env, ports):
        super().__init__(name, env)
        self.ports = ports  # {"tls": p, "h2c": p} for proxies; {"http": p, "admin": p} upstream

    def command(self, tls, port):
        e, p = self.env, self.ports
        cert, key, tmp, up = e["cert"], e["key"], e["tmp"], e["upstream_port"]
        if self.name == "upstream":
            conf = os.path.join(tmp, "upstream.lua")
            with open(conf, "w") as f:
                f.write(f'listen {{ "127.0.0.1:{p["http"]}" }}\n'
                        f'admin {{ listen = "127.0.0.1:{p["admin"]}" }}\n')
                for size, n in SIZES.items():
                    f.write(f'route {{ path = "/{size}", ret = {{ status = 200, '
                            f'body = string.rep("x", {n}), '
                            'content_type = "application/octet-stream" } }\n')
                f.write("workers(1)\nmax_connections(100000)\n")
            return [e["sluice"], "-q", "-c", conf]
        if self.name == "sluice":
            conf = os.path.join(tmp, "sluice-proxy.lua")
            with open(conf, "w") as f:
                f.write(f'listen {{ "127.0.0.1:{p["tls"]}", tls = true }}\n'
                        f'listen {{ "127.0.0.1:{p["h2c"]}" }}\n'
                        f'tls_certificate {{ cert = "{cert}", key = "{key}" }}\n'
                        f'upstream {{ name = "up", servers = {{ "127.0.0.1:{up}" }}, '
                        f'keepalive = {e["keepalive"]} }}\n'
                        'route { path = "/", proxy = "up" }\n'
                        "workers(1)\nmax_connections(100000)\n")
            return [e["sluice"], "-q", "-c", conf]
        if self.name == "nginx":
            prefix = os.path.join(tmp, "nginx")
            os.makedirs(prefix, exist_ok=True)
            conf = os.path.join(prefix, "nginx.conf")
            with open(conf, "w") as f:
                f.write(
                    "worker_processes 1;\ndaemon off;\nmaster_process on;\n"
                    f"pid {prefix}/nginx.pid;\n"
                    f"error_log {prefix}/error.log warn;\n"
                    f"worker_rlimit_nofile {e['nofile']};\n"
                    f"events {{ worker_connections {min(e['nofile'], 100000)}; }}\n"
                    "http {\n"
                    "  access_log off;\n"
                    "  keepalive_requests 1000000;\n"  # 1.22: also HTTP/2 requests
                    f"  client_body_temp_path {prefix}/body;\n"
                    f"  proxy_temp_path {prefix}/proxy;\n"
                    f"  fastcgi_temp_path {prefix}/fastcgi;\n"
                    f"  uwsgi_temp_path {prefix}/uwsgi;\n"
                    f"  scgi_temp_path {prefix}/scgi;\n"
                    # keepalive_requests: nginx would otherwise close each
                    # upstream connection after 1000 requests; the others don't.
                    f"  upstream up {{ server 127.0.0.1:{up}; keepalive {e['keepalive']}; "
                    "keepalive_requests 1000000; }\n"
                    "  server {\n"
                    f"    listen 127.0.0.1:{p['tls']} ssl http2;\n"
                    f"    listen 127.0.0.1:{p['h2c']} http2;\n"
                    # 1.22's default ssl_protocols lacks TLSv1.3; the others use it.
                    f"    ssl_certificate {cert}; ssl_certificate_key {key}; "
                    "ssl_protocols TLSv1.2 TLSv1.3;\n"
                    "    location / {\n"
                    "      proxy_pass http://up;\n"
                    "      proxy_http_version 1.1;\n"
                    '      proxy_set_header Connection "";\n'
                    # The forwarding headers sluice and h2o add by default.
                    "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                    "      proxy_set_header X-Forwarded-Proto $scheme;\n"
                    # Never spool a response to disk (sluice and h2o don't).
                    "      proxy_max_temp_file_size 0;\n"
                    "    }\n"
                    "  }\n"
                    "}\n")
            return ["nginx", "-p", prefix, "-e", f"{prefix}/error.log", "-c", conf]
        if self.name == "h2o":
            conf = os.path.join(tmp, "h2o.conf")
            with open(conf, "w") as f:
                # No OCSP stapling: it runs a helper process against the network.
                f.write(
                    "num-threads: 1\n"
                    "max-connections: 100000\n"
                    "http2-idle-timeout: 300\n"
                    "proxy.timeout.keepalive: 60000\n"
                    # Two listeners: h2o takes a repeated key, not a list.
                    f"listen:\n  host: 127.0.0.1\n  port: {p['h2c']}\n"
                    f"listen:\n  host: 127.0.0.1\n  port: {p['tls']}\n"
                    f"  ssl:\n    certificate-file: {cert}\n    key-file: {key}\n"
                    "    ocsp-update-interval: 0\n"
                    "hosts:\n  default:\n    paths:\n      /:\n"
                    f"        proxy.reverse.url: http://127.0.0.1:{up}/\n")
            return ["h2o", "-c", conf]
        raise ValueError(self.name)

    def start_all(self):
        """Starts it and waits until every listener accepts."""
        ports = list(self.ports.values())
        self.start(None, ports[0])
        for port in ports[1:]:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or not self.alive():
                        self.stop()
                        raise RuntimeError(f"{self.name} did not listen on {port}: "
                                           + self.log_tail())
                    time.sleep(0.05)


# ---- the upstream ---------------------------------------------------------------

def upstream_counters(port):
    """(requests, connections) the upstream has seen, from its metrics; None
    when they cannot be read (the upstream died)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    got = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) == 2 and w[0] in ("sluice_requests_total", "sluice_connections_total"):
            got[w[0]] = int(w[1])
    if len(got) != 2:
        return None
    return got["sluice_requests_total"], got["sluice_connections_total"]


def settled_counters(port):
    """The counters once they stop moving: the worker publishes them every
    100 ms."""
    last = upstream_counters(port)
    for _ in range(10):
        time.sleep(0.25)
        now = upstream_counters(port)
        if now == last or now is None:
            return now
        last = now
    return last


def check_upstream(port):
    """Each size over one HTTP/1.1 keep-alive connection: the body lengths."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for size, n in SIZES.items():
            c.request("GET", f"/{size}")
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or len(body) != n:
                raise RuntimeError(f"upstream: GET /{size}: status {r.status}, {len(body)} bytes")
    finally:
        c.close()


# ---- h2load ---------------------------------------------------------------------

def run_h2load(env, proxy, upstream, proto, size, opts):
    scheme = "https" if proto == "tls" else "http"
    url = f"{scheme}://127.0.0.1:{proxy.ports[proto]}/{size}"
    cmd = ["taskset", "-c", str(env["client_cpu"]), "h2load", "-t", "1"]
    if proto == "tls" and env["tls13_ciphers"]:  # the same cipher for every proxy
        cmd.append("--tls13-ciphers=" + env["tls13_ciphers"])
    cmd += opts.split() + [url]
    pids, upids = proxy.pids(), upstream.pids()
    up0 = settled_counters(env["admin_port"])
    before, ubefore = hb.cpu_ticks(pids), hb.cpu_ticks(upids)
    cpu0 = hb.cpu_line(env["server_cpu"])
    # A stall: the proxy's client and upstream sockets, then h2load is killed.
    rc, out, diag, wall = hb.run_client(
        cmd, env["run_timeout"], "h2load",
        lambda: "the proxy's sockets:)\n" + hb.sh(
            ["ss", "-tnoi", "state", "established",
             f"( sport = :{proxy.ports[proto]} or dport = :{env['upstream_port']} )"]))
    after, uafter = hb.cpu_ticks(pids), hb.cpu_ticks(upids)
    cpu1 = hb.cpu_line(env["server_cpu"])
    up1 = settled_counters(env["admin_port"])
    r = hb.parse_h2load(out)
    total = cpu1[1] - cpu0[1]
    r["bg"] = max(0, (cpu1[0] - cpu0[0]) - (after - before)) / total if total > 0 else None
    r.update(server=proxy.name, proto=proto, size=size, opts=opts, rc=rc, wall_total=wall,
             cpu_s=(after - before) / hb.CLK_TCK, up_cpu_s=(uafter - ubefore) / hb.CLK_TCK,
             up_requests=up1[0] - up0[0] if up0 and up1 else None,
             up_conns=up1[1] - up0[1] if up0 and up1 else None, alive=proxy.alive())
    ok = r.get("req_succeeded", 0)
    r["us_per_req"] = r["cpu_s"] * 1e6 / ok if ok else None
    r["up_us_per_req"] = r["up_cpu_s"] * 1e6 / ok if ok else None
    r["busy"] = r["cpu_s"] / r["wall_s"] if r.get("wall_s") else None
    n = int(opts.split()[opts.split().index("-n") + 1])
    problems = []
    if rc == "timeout":
        problems.append(f"h2load had not finished after {env['run_timeout']:g} s (stalled?); "
                        "killed, the proxy's sockets at that moment are in the log")
    elif rc != 0:
        problems.append(f"h2load exit {rc}")
    if rc != "timeout":
        bad = {k: r.get("req_" + k) for k in ("failed", "errored", "timeout")}
        if ok != n or any(v != 0 for v in bad.values()):
            problems.append(f"{ok}/{n} succeeded (failed {bad['failed']}, errored "
                            f"{bad['errored']}, timeout {bad['timeout']})")
        if r.get("2xx", 0) != n:
            codes = [ln.split(":", 1)[1].strip() for ln in out.splitlines()
                     if ln.startswith("status codes:")]
            problems.append(f"{r.get('2xx', 0)} 2xx of {n}"
                            + (f" (status codes: {codes[0]})" if codes else ""))
    if ok and r.get("bytes_data") is not None and r["bytes_data"] != ok * SIZES[size]:
        problems.append(f"data bytes {r['bytes_data']} != {ok}*{SIZES[size]}")
    if rc != "timeout" and r.get("alpn") != ("h2" if proto == "tls" else "h2c"):
        problems.append(f"application protocol {r.get('alpn')}")
    # Each response must have come from the upstream, once: no cache, no
    # retries of requests that had succeeded.
    if r["up_requests"] is None:
        problems.append("the upstream's metrics could not be read")
    elif rc != "timeout" and r["up_requests"] != ok:
        problems.append(f"the upstream saw {r['up_requests']} requests for {ok} responses")
    if not r["alive"]:
        problems.append("proxy died")
    if not upstream.alive():
        problems.append("upstream died")
    r["problems"] = problems
    if problems:
        r["output"] = out[-3000:] + diag[:8000]
    return r


def show_problem(proxy, r):
    log("    h2load output (tail):\n    " + r.get("output", "").replace("\n", "\n    "))
    log("    proxy log (tail):\n    " + proxy.log_tail(1500).replace("\n", "\n    "))


# ---- report ---------------------------------------------------------------------

def versions(env):
    def first(cmd):
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=10)
            return p.stdout.strip().splitlines()[0]
        except Exception:
            return "?"
    return [first([env["sluice"], "-v"]), first(["nginx", "-v"]), first(["h2o", "--version"]),
            first(["h2load", "--version"]), first(["openssl", "version"])]


def report(proxies, protos, sizes, runs, args, info):
    lines = []
    out = lines.append
    out("")
    out("=" * 100)
    out("sluice proxy benchmark: " + "; ".join(info["versions"]))
    out(f"{os.cpu_count()} CPUs, kernel {os.uname().release}; proxies on CPU {args.server_cpu}, "
        f"h2load on CPU {args.client_cpu}, upstream on CPU {args.upstream_cpu}; load average at "
        f"start {info['load_start']}, at end {info['load_end']}")
    out(f"upstream: sluice `ret` routes over HTTP/1.1, one worker; sluice and nginx keep up to "
        f"{args.keepalive} idle connections to it, h2o all")
    out(f"medians of {args.rounds} interleaved round(s); h2load -t 1"
        f"{', TLS with --tls13-ciphers=' + args.tls13_ciphers if args.tls13_ciphers else ''}")
    out("  CPU/req: the proxy's utime+stime per request, all its processes (/proc/PID/stat)")
    out("  busy: proxy CPU / wall time; bg: other processes' share of the proxy's CPU (noise)")
    out("  up us: the upstream's CPU per request (not counted above); up conns: connections the "
        "upstream accepted during a run")
    out("  cpu x = peer/sluice CPU per request (>1: sluice uses less); "
        "req/s x = sluice/peer (>1: sluice faster)")
    summary = {}
    for proto in protos:
        for size in sizes:
            out("")
            out(f"  {proto} {size} ({SIZES[size]} B), h2load {args.load[size]}:")
            out(f"  {'proxy':<7} {'req/s':>8} {'range':>13} {'CPU/req us':>10} {'range':>13} "
                f"{'busy':>5} {'bg':>4} {'up us':>6} {'up conns':>8} {'cpu x':>6} {'req/s x':>7}")
            base = {}
            for srv in proxies:
                rs = [r for r in runs if r["server"] == srv and r["proto"] == proto
                      and r["size"] == size and isinstance(r.get("round"), int)]
                good = [r for r in rs if not r["problems"]]
                rps = [r["rps"] for r in good if r.get("rps") is not None]
                cpu = [r["us_per_req"] for r in good if r.get("us_per_req") is not None]
                m = {"rps": med(rps), "cpu": med(cpu), "busy": med([r["busy"] for r in good]),
                     "bg": med([r["bg"] for r in rs]), "bad": len(rs) - len(good),
                     "runs": len(rs), "up": med([r["up_us_per_req"] for r in good]),
                     "conns": med([r["up_conns"] for r in good])}
                summary[(proto, size, srv)] = m
                if srv == "sluice":
                    base = m
                cx = ratio(m["cpu"], base.get("cpu")) if srv != "sluice" else None
                rx = ratio(base.get("rps"), m["rps"]) if srv != "sluice" else None
                rr = f"{min(rps):.0f}-{max(rps):.0f}" if rps else "-"
                cr = f"{min(cpu):.1f}-{max(cpu):.1f}" if cpu else "-"
                note = f"  FAILED: {m['bad']} of {m['runs']} runs" if m["bad"] else ""
                if not rs:
                    note = "  not run"
                out(f"  {srv:<7} {fmt(m['rps'], '.0f'):>8} {rr:>13} {fmt(m['cpu'], '.1f'):>10} "
                    f"{cr:>13} {pct(m['busy']):>5} {pct(m['bg']):>4} {fmt(m['up'], '.1f'):>6} "
                    f"{fmt(m['conns'], '.0f'):>8} {fmt(cx, '.2f'):>6} {fmt(rx, '.2f'):>7}{note}")
    problems = [r for r in runs if r["problems"]]
    if problems:
        out("")
        out("PROBLEMS (runs left out of the medians):")
        for r in problems:
            rnd = r.get("round")
            rnd = f"round {rnd + 1}" if isinstance(rnd, int) else rnd
            out(f"  {r['proto']} {r['size']} {rnd} {r['server']} (h2load {r['opts']}): "
                f"{'; '.join(r['problems'])}")
    if any(summary.get((p, z, "sluice"), {}).get("cpu") for p in protos for z in sizes) \
            and len(proxies) > 1:
        out("")
        out("SUMMARY, sluice against each peer (x > 1: sluice better; cpu = CPU per request):")
        for srv in proxies[1:]:
            parts = []
            for proto in protos:
                for size in sizes:
                    sm, pm = summary.get((proto, size, "sluice")), summary.get((proto, size, srv))
                    parts.append(f"{proto} {size} cpu x{fmt(ratio(pm['cpu'], sm['cpu']), '.2f')} "
                                 f"req/s x{fmt(ratio(sm['rps'], pm['rps']), '.2f')}")
            out(f"  vs {srv:<6} " + " | ".join(parts))
    out("=" * 100)
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sluice", required=True, help="the sluice binary")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--quick", action="store_true",
                    help="one round, a fifth of the requests (a smoke test, not a measurement)")
    ap.add_argument("--proxies", default=",".join(ALL_PROXIES), help="which, comma-separated")
    ap.add_argument("--protos", default=",".join(PROTOS), help="h2c, tls or both")
    ap.add_argument("--sizes", default=",".join(SIZES), help="response sizes, comma-separated")
    for s in SIZES:
        ap.add_argument(f"--load-{s}", default=DEFAULT_LOAD[s],
                        help=f"h2load options for {s} (must include -n)")
    ap.add_argument("--keepalive", type=int, default=128,
                    help="idle upstream connections each proxy keeps (more than h2load's "
                         "-c x -m, or the pools reconnect all the time)")
    ap.add_argument("--server-cpu", type=int, default=0, help="CPU the proxies are pinned to")
    ap.add_argument("--client-cpu", type=int, default=1, help="CPU h2load is pinned to")
    ap.add_argument("--upstream-cpu", type=int, default=None,
                    help="CPU the upstream is pinned to (default: --client-cpu)")
    ap.add_argument("--port-base", type=int, default=18500, help="ports used: base+1 .. base+32")
    ap.add_argument("--run-timeout", type=float, default=60,
                    help="seconds before an h2load run is killed and counted as failed")
    ap.add_argument("--tls13-ciphers", default="TLS_AES_128_GCM_SHA256",
                    help="h2load's TLS 1.3 cipher list ('' for h2load's default)")
    ap.add_argument("--json", help="write every run's raw numbers here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()
    if args.upstream_cpu is None:
        args.upstream_cpu = args.client_cpu
    ncpu = os.cpu_count() or 1
    if args.client_cpu == args.server_cpu or max(args.client_cpu, args.server_cpu) >= ncpu:
        log(f"warning: CPUs {args.server_cpu} (proxy) and {args.client_cpu} (client) are not two "
            f"distinct CPUs of this {ncpu}-CPU machine; results mix client and proxy")
        if max(args.client_cpu, args.server_cpu, args.upstream_cpu) >= ncpu:
            args.server_cpu = args.client_cpu = args.upstream_cpu = 0
    if args.quick:
        args.rounds = 1
    args.load = {}
    for s in SIZES:
        o = getattr(args, f"load_{s}").split()
        if "-n" not in o:
            ap.error(f"--load-{s} needs -n")
        if args.quick:
            i = o.index("-n") + 1
            o[i] = str(max(int(o[i]) // 5, 100))
        args.load[s] = " ".join(o)
    proxies = [s for s in args.proxies.split(",") if s]
    protos = [s for s in args.protos.split(",") if s]
    sizes = [s for s in args.sizes.split(",") if s]
    for lst, known, what in ((proxies, ALL_PROXIES, "proxy"), (protos, PROTOS, "protocol"),
                             (sizes, SIZES, "size")):
        for s in lst:
            if s not in known:
                ap.error(f"unknown {what} {s}")
    if "sluice" in proxies:  # ratios are against sluice: it goes first in tables
        proxies.remove("sluice")
        proxies.insert(0, "sluice")

    tmp = tempfile.mkdtemp(prefix="sluice-bench-proxy-")
    os.chmod(tmp, 0o755)  # nginx's and h2o's workers run as nobody
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o644)
    b = args.port_base
    env = {"tmp": tmp, "cert": cert, "key": key, "sluice": os.path.abspath(args.sluice),
           "server_cpu": args.server_cpu, "client_cpu": args.client_cpu,
           "run_timeout": args.run_timeout, "tls13_ciphers": args.tls13_ciphers,
           "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
           "keepalive": args.keepalive, "upstream_port": b + 1, "admin_port": b + 2}
    upstream = Proc("upstream", dict(env, server_cpu=args.upstream_cpu),
                    {"http": b + 1, "admin": b + 2})
    objs = {s: Proc(s, env, {"tls": b + 11 + 10 * i, "h2c": b + 12 + 10 * i})
            for i, s in enumerate(ALL_PROXIES) if s in proxies}

    def cleanup():
        for o in list(objs.values()) + [upstream]:
            o.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", tmp])
        else:
            log(f"kept {tmp}")

    def on_signal(signum, _frame):
        cleanup()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    info = {"versions": versions(env), "load_start": open("/proc/loadavg").read().split()[0]}
    runs, failed = [], {}  # failed: proxy -> why it was dropped
    t_start = time.monotonic()
    try:
        upstream.start_all()
        check_upstream(b + 1)
        settled_counters(b + 2)
        active = []
        for s in proxies:
            try:
                objs[s].start_all()
            except RuntimeError as e:
                failed[s] = f"did not start: {e}"
                log(f"NOT BENCHMARKED: {s} {failed[s]}")
                continue
            # A first short run per protocol: allocators, upstream pools,
            # handshakes. A proxy that fails it is dropped, loudly.
            for proto in protos:
                r = run_h2load(env, objs[s], upstream, proto, "1k", WARMUP)
                r["round"] = "warm-up"
                if r["problems"]:
                    runs.append(r)
                    failed[s] = f"warm-up over {proto} failed: {'; '.join(r['problems'])}"
                    log(f"NOT BENCHMARKED: {s} {failed[s]}")
                    show_problem(objs[s], r)
                    objs[s].stop()
                    break
            else:
                active.append(s)
        for proto in protos:
            for size in sizes:
                for rnd in range(args.rounds):
                    k = rnd % max(1, len(active))  # rotate the order every round
                    for s in active[k:] + active[:k]:
                        o = objs[s]
                        if not o.alive():
                            log(f"{s} is not running (exit {o.proc.returncode if o.proc else '?'}),"
                                f" log: {o.log_tail(500)!r}; restarting it")
                            try:
                                o.start_all()
                            except RuntimeError as e:
                                failed[s] = f"died, and did not start again: {e}"
                                log(f"DROPPED: {s} {failed[s]}")
                                active.remove(s)
                                continue
                        r = run_h2load(env, o, upstream, proto, size, args.load[size])
                        r["round"] = rnd
                        runs.append(r)
                        log(f"{proto} {size:>3} round {rnd + 1}/{args.rounds} {s:<6} "
                            f"{fmt(r.get('rps'), '8.0f')} req/s {fmt(r['us_per_req'], '7.1f')} "
                            f"us/req busy {pct(r['busy'])} bg {pct(r['bg'])} "
                            f"up {fmt(r['up_us_per_req'], '.1f')} us/req {r['up_conns']} conns "
                            f"wall {r['wall_total']:.1f}s"
                            + (f"  PROBLEM: {'; '.join(r['problems'])}" if r["problems"] else ""))
                        if r["problems"]:
                            show_problem(o, r)
        info["load_end"] = open("/proc/loadavg").read().split()[0]
        text = report(proxies, protos, sizes, runs, args, info)
        for s, why in failed.items():
            text += f"\n{s}: NOT BENCHMARKED: {why}"
        bad = sorted({r["server"] for r in runs if r["problems"]} | set(failed))
        if "sluice" in bad:
            text += ("\nSLUICE PROXY LEG FAILED: "
                     + failed.get("sluice", "some runs had errors (PROBLEMS above)")
                     + "\n  (its log and h2load's output are on stderr)")
        print(text)
        print(f"(benchmark took {time.monotonic() - t_start:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"runs": runs, "load": args.load, "info": info, "failed": failed},
                          f, indent=1)
    finally:
        cleanup()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
