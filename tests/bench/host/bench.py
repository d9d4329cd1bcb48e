#!/usr/bin/python3
"""Host benchmark: sluice against nghttpd, h2o and nginx serving the same
static files over TLS with one worker each (run by tests/bench/run-host.sh,
which installs the peers and builds sluice first).

Part 1, throughput: h2load (one thread) against each server in turn, the
servers interleaved (the order rotates every round), repeated; per run
req/s and the server's CPU time per request (utime+stime from /proc/PID/stat
of every process of the server, before and after the run).
Part 2, memory: N idle HTTP/2 connections (TLS + preface + SETTINGS, or h2c),
VmRSS of the server's processes before and after, KB per connection.

Everything is pinned: the servers to --server-cpu, the clients to
--client-cpu. Only loopback is used. Stdlib only: Debian's /usr/bin/python3.
"""
import argparse
import json
import os
import resource
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

SIZES = {"1k": 1024, "100k": 100 * 1024, "10m": 10 * 1024 * 1024}
# h2load options per size. Without -n, the number of requests is chosen per
# server from a calibration run so that each run takes about --seconds.
DEFAULT_LOAD = {
    "1k": "-c 10 -m 10",
    "100k": "-c 10 -m 10",
    "10m": "-c 4 -m 1",
}
CALIBRATE_N = {"1k": 4000, "100k": 400, "10m": 8}
ALL_SERVERS = ["sluice", "nghttpd", "h2o", "nginx"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- /proc --------------------------------------------------------------------

def proc_tree(root):
    """root and all its descendants (pids)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, pending = [], [root]
    while pending:
        p = pending.pop()
        out.append(p)
        pending.extend(children.get(p, []))
    return out


def cpu_ticks(pids):
    """utime+stime (clock ticks) summed over pids; threads are included in a
    process's own line."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return str(e)


def sh(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=10).stdout
    except Exception as e:
        return f"{cmd[0]}: {e}\n"


def cpu_line(cpu):
    """(busy, total) clock ticks of one CPU from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]  # idle, iowait
                return sum(v[:8]) - idle, sum(v[:8])
    return 0, 0


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---- servers --------------------------------------------------------------------

class Server:
    """One server process (and its children), started in its own session so
    that stopping it reaches exactly what we started."""

    def __init__(self, name, env):
        self.name = name
        self.env = env
        self.proc = None
        self.logf = None
        self.port = None
        self.tls = None
        self.starts = 0

    # configuration, per server ---------------------------------------------
    def command(self, tls, port):
        e = self.env
        d, cert, key = e["docroot"], e["cert"], e["key"]
        tmp = e["tmp"]
        if self.name == "sluice":
            conf = os.path.join(tmp, f"sluice-{port}.lua")
            with open(conf, "w") as f:
                f.write(
                    f'listen {{ "127.0.0.1:{port}", tls = {"true" if tls else "false"} }}\n'
                    f'tls_certificate {{ cert = "{cert}", key = "{key}" }}\n'
                    f'route {{ path = "/", static = "{d}" }}\n'
                    "workers(1)\n"
                    "max_connections(100000)\n")
            return [e["sluice"], "-q", "-c", conf]
        if self.name == "nghttpd":
            if tls:
                return ["nghttpd", "-a", "127.0.0.1", f"--htdocs={d}", "-n1", str(port), key, cert]
            return ["nghttpd", "-a", "127.0.0.1", "--no-tls", f"--htdocs={d}", "-n1", str(port)]
        if self.name == "h2o":
            conf = os.path.join(tmp, f"h2o-{port}.conf")
            # No OCSP stapling: it runs a helper process against the network.
            ssl_part = (f"  ssl:\n    certificate-file: {cert}\n    key-file: {key}\n"
                        "    ocsp-update-interval: 0\n" if tls else "")
            with open(conf, "w") as f:
                f.write(
                    "num-threads: 1\n"
                    "max-connections: 100000\n"
                    "http2-idle-timeout: 300\n"
                    f"listen:\n  host: 127.0.0.1\n  port: {port}\n{ssl_part}"
                    f"hosts:\n  default:\n    paths:\n      /:\n        file.dir: {d}\n")
            return ["h2o", "-c", conf]
        if self.name == "nginx":
            prefix = os.path.join(tmp, f"nginx-{port}")
            os.makedirs(prefix, exist_ok=True)
            conf = os.path.join(prefix, "nginx.conf")
            listen = f"listen 127.0.0.1:{port} {'ssl ' if tls else ''}http2;"
            # nginx 1.22's default ssl_protocols lacks TLSv1.3; the others use it.
            certs = (f"ssl_certificate {cert}; ssl_certificate_key {key}; "
                     "ssl_protocols TLSv1.2 TLSv1.3;" if tls else "")
            with open(conf, "w") as f:
                f.write(
                    "worker_processes 1;\n"
                    "daemon off;\n"
                    "master_process on;\n"
                    f"pid {prefix}/nginx.pid;\n"
                    f"error_log {prefix}/error.log warn;\n"
                    f"worker_rlimit_nofile {e['nofile']};\n"
                    f"events {{ worker_connections {e['nofile']}; }}\n"
                    "http {\n"
                    "  access_log off;\n"
                    "  default_type application/octet-stream;\n"
                    "  keepalive_requests 1000000;\n"
                    "  http2_max_requests 1000000;\n"
                    f"  client_body_temp_path {prefix}/body;\n"
                    f"  proxy_temp_path {prefix}/proxy;\n"
                    f"  fastcgi_temp_path {prefix}/fastcgi;\n"
                    f"  uwsgi_temp_path {prefix}/uwsgi;\n"
                    f"  scgi_temp_path {prefix}/scgi;\n"
                    f"  server {{ {listen} {certs} root {d}; }}\n"
                    "}\n")
            return ["nginx", "-p", prefix, "-e", f"{prefix}/error.log", "-c", conf]
        raise ValueError(self.name)

    # life cycle ---------------------------------------------------------------
    def start(self, tls, port):
        self.stop()
        self.tls, self.port = tls, port
        if not port_free(port):
            raise RuntimeError(f"{self.name}: port {port} is in use")
        cmd = self.command(tls, port)
        self.logf = open(os.path.join(self.env["tmp"], f"{self.name}-{port}.log"), "ab")
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(self.env["server_cpu"])] + cmd,
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            start_new_session=True)
        self.starts += 1
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start ({self.proc.returncode}): "
                                   + self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(0.2)  # nginx: let the worker start
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {port}: " + self.log_tail())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return proc_tree(self.proc.pid) if self.alive() else []

    def log_tail(self, n=2000):
        try:
            with open(os.path.join(self.env["tmp"], f"{self.name}-{self.port}.log"), "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # The group (nginx's worker, h2o's helpers) goes too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---- h2load ---------------------------------------------------------------------

def parse_h2load(out):
    r = {}
    for line in out.splitlines():
        w = line.split()
        if line.startswith("finished in"):
            # finished in 2.51s, 7962.45 req/s, 8.01MB/s
            r["wall_s"] = to_seconds(w[2].rstrip(","))
            r["rps"] = float(w[3])
        elif line.startswith("requests:"):
            # requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
            for i in range(1, len(w) - 1, 2):
                r["req_" + w[i + 1].rstrip(",")] = int(w[i])
        elif line.startswith("status codes:"):
            r["2xx"] = int(w[2])
        elif line.startswith("traffic:"):
            # traffic: 20.31MB (21296586) total, 302.71KB (309979) headers (...), 19.53MB (20480000) data
            nums = [int(x.strip("()")) for x in w if x.startswith("(") and x.strip("()").isdigit()]
            if len(nums) >= 3:
                r["bytes_total"], r["bytes_headers"], r["bytes_data"] = nums[:3]
        elif line.startswith("Cipher:"):
            r["cipher"] = w[1]
        elif line.startswith("Application protocol:"):
            r["alpn"] = w[2]
    return r


def to_seconds(t):
    if t.endswith("ms"):
        return float(t[:-2]) / 1000
    if t.endswith("us"):
        return float(t[:-2]) / 1e6
    return float(t.rstrip("s"))


def calibrate(env, server, size, opts, seconds):
    """-n for about `seconds` per run, from a short run (which also warms the
    server up). Returns (n, the calibration run)."""
    c = int(opts.split()[opts.split().index("-c") + 1]) if "-c" in opts.split() else 1
    n = max(CALIBRATE_N[size], c)
    for _ in range(4):
        r = run_h2load(env, server, size, f"-n {n} {opts}")
        ok = r.get("req_succeeded") or 0
        if r["problems"] or not r.get("wall_s") or r["wall_s"] >= 0.5:
            break
        n *= 4
    if r["problems"] or not ok or not r.get("wall_s"):
        target = 4 * CALIBRATE_N[size]  # no rate to go by
    else:
        target = int(ok / r["wall_s"] * seconds)
    return (max(target - target % c, c, 10 if size != "10m" else c), r)


def run_client(cmd, timeout, what, stall_info):
    """Run a load client to its end or timeout seconds: (exit code or
    "timeout", its output, diag, wall seconds). A stall is recorded before the
    client is killed: diag names what was running and adds stall_info()
    (the server's sockets, say)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as outf:
        p = subprocess.Popen(cmd, stdout=outf, stderr=subprocess.STDOUT, text=True)
        try:
            rc = p.wait(timeout=timeout)
            diag = ""
        except subprocess.TimeoutExpired:
            diag = f"\n({what} killed after {timeout:g} s; {stall_info()}"
            p.kill()
            p.wait()
            rc = "timeout"
        outf.seek(0)
        out = outf.read()
    return rc, out, diag, time.monotonic() - t0


def run_h2load(env, server, size, opts):
    url = f"https://127.0.0.1:{server.port}/{size}.bin"
    cmd = ["taskset", "-c", str(env["client_cpu"]), "h2load", "-t", "1"]
    if env["tls13_ciphers"]:  # the same cipher for every server
        cmd.append("--tls13-ciphers=" + env["tls13_ciphers"])
    cmd += opts.split() + [url]
    pids = server.pids()
    before = cpu_ticks(pids)
    cpu0 = cpu_line(env["server_cpu"])

    def stalled():  # the server's sockets (queues, windows), what its threads wait in
        info = "the server's connections:)\n"
        info += sh(["ss", "-tnoi", "state", "established", f"( sport = :{server.port} )"])
        for pid in pids:
            info += f"{pid} wchan: " + read_text(f"/proc/{pid}/wchan") + "\n"
        return info

    rc, out, diag, wall = run_client(cmd, env["run_timeout"], "h2load", stalled)
    out += diag
    after = cpu_ticks(pids)
    cpu1 = cpu_line(env["server_cpu"])
    r = parse_h2load(out)
    # Other processes on the server's CPU during the run (they steal from it).
    total = cpu1[1] - cpu0[1]
    r["bg"] = max(0, (cpu1[0] - cpu0[0]) - (after - before)) / total if total > 0 else None
    r.update(server=server.name, size=size, opts=opts, rc=rc, wall_total=wall,
             cpu_s=(after - before) / CLK_TCK, alive=server.alive())
    ok = r.get("req_succeeded", 0)
    r["us_per_req"] = r["cpu_s"] * 1e6 / ok if ok else None
    r["busy"] = r["cpu_s"] / r["wall_s"] if r.get("wall_s") else None
    n_expected = int(opts.split()[opts.split().index("-n") + 1]) if "-n" in opts.split() else None
    problems = []
    if rc == "timeout":
        problems.append(f"h2load had not finished after {env['run_timeout']:g} s (stalled?); "
                        "killed, the server's sockets at that moment are in the log")
    elif rc != 0:
        problems.append(f"h2load exit {rc}")
    if rc != "timeout" and n_expected is not None and ok != n_expected:
        problems.append(f"{ok}/{n_expected} succeeded (failed {r.get('req_failed')}, "
                        f"errored {r.get('req_errored')}, timeout {r.get('req_timeout')})")
    if rc != "timeout" and r.get("2xx", 0) != ok:
        problems.append(f"{r.get('2xx', 0)} 2xx of {ok}")
    if ok and r.get("bytes_data") is not None and r["bytes_data"] != ok * SIZES[size]:
        problems.append(f"data bytes {r['bytes_data']} != {ok}*{SIZES[size]}")
    if r.get("alpn") not in (None, "h2"):
        problems.append(f"ALPN {r.get('alpn')}")
    if not r["alive"]:
        problems.append("server died")
    r["problems"] = problems
    if problems:
        r["output"] = out[-6000:]
    return r


# ---- memory: idle connections -----------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise ConnectionError("closed by server")
        b += k
    return b


def memclient(args):
    """Opens args.n connections, each: (TLS with ALPN h2,) preface + SETTINGS,
    reads until the server's SETTINGS, ACKs it; prints 'ready N' and holds
    them until stdin closes or says anything."""
    ctx = None
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
    conns, errors = [], []
    for i in range(args.n):
        try:
            s = socket.create_connection(("127.0.0.1", args.port), timeout=10)
            if ctx:
                s = ctx.wrap_socket(s, server_hostname="localhost")
                if s.selected_alpn_protocol() != "h2":
                    raise ConnectionError(f"ALPN {s.selected_alpn_protocol()}")
            s.sendall(PREFACE + SETTINGS)
            while True:
                h = recv_exact(s, 9)
                ln, typ, flags = int.from_bytes(h[:3], "big"), h[3], h[4]
                recv_exact(s, ln)
                if typ == 4 and not flags & 1:
                    break
            s.sendall(SETTINGS_ACK)
            conns.append(s)
        except Exception as e:  # report, keep going
            errors.append(f"conn {i}: {e!r}")
            if len(errors) > 20:
                break
    time.sleep(args.settle)
    # Are they all still open? (a server may have closed some)
    alive = 0
    for s in conns:
        try:
            s.setblocking(False)
            try:
                d = s.recv(65536)
                alive += 1 if d else 0
            except (BlockingIOError, ssl.SSLWantReadError):
                alive += 1
        except Exception:
            pass
    print(json.dumps({"opened": len(conns), "alive": alive, "errors": errors[:5]}), flush=True)
    sys.stdin.readline()
    for s in conns:
        try:
            s.close()
        except Exception:
            pass


def measure_memory(env, server, tls, port, n):
    server.start(tls, port)
    me = os.path.abspath(__file__)

    def client(count):
        return subprocess.Popen(
            ["taskset", "-c", str(env["client_cpu"]), sys.executable, me, "memclient",
             "--port", str(port), "--n", str(count), "--settle", str(env["settle"])]
            + (["--tls"] if tls else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def opened(p):
        line = p.stdout.readline()
        return json.loads(line) if line else {"opened": 0, "alive": 0, "errors": ["no output"]}

    # Warm-up: first connections pay for one-time allocations.
    w = client(10)
    opened(w)
    w.stdin.close()
    w.wait()
    time.sleep(env["settle"])
    pids = server.pids()
    before = rss_kb(pids)
    c = client(n)
    info = opened(c)
    pids = server.pids()
    after = rss_kb(pids)
    c.stdin.close()
    c.wait()
    alive = server.alive()
    server.stop()
    k = info.get("alive") or 0
    if not alive or after == 0:
        k = 0  # the server died: no per-connection figure
    return {"server": server.name, "proto": "tls" if tls else "h2c", "n": n,
            "opened": info.get("opened"), "alive": k, "errors": info.get("errors"),
            "rss_before_kb": before, "rss_after_kb": after,
            "kb_per_conn": (after - before) / k if k else None,
            "server_alive": alive, "nprocs": len(pids)}


# ---- report ---------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec, none="-"):
    return none if x is None else format(x, spec)


def ratio(a, b):
    return a / b if a is not None and b else None


def pct(x):
    return fmt(None if x is None else 100 * x, ".0f") + "%"


def versions(env):
    def first(cmd):
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=10)
            return p.stdout.strip().splitlines()[0]
        except Exception:
            return "?"
    return [first([env["sluice"], "-v"]), first(["nghttpd", "--version"]),
            first(["h2o", "--version"]), first(["nginx", "-v"]),
            first(["h2load", "--version"]), first(["openssl", "version"])]


def report(servers, sizes, runs, mem, args, env, info):
    lines = []
    out = lines.append
    out("")
    out("=" * 100)
    out("sluice host benchmark: " + "; ".join(info["versions"]))
    out(f"{os.cpu_count()} CPUs, kernel {os.uname().release}; servers on CPU {args.server_cpu}, "
        f"clients on CPU {args.client_cpu}; load average at start {info['load_start']}, "
        f"at end {info['load_end']}")
    if runs:
        out("")
        out(f"THROUGHPUT over TLS (h2load -t 1"
            f"{', --tls13-ciphers=' + args.tls13_ciphers if args.tls13_ciphers else ''}), "
            f"medians of {args.rounds} interleaved rounds")
        out("  CPU/req: the server's utime+stime per request, all its processes (/proc/PID/stat)")
        out("  busy: server CPU / wall time; bg: other processes' share of the server's CPU "
            "during the run (noise)")
        out("  cpu x = peer/sluice CPU per request (>1: sluice uses less); "
            "req/s x = sluice/peer (>1: sluice faster)")
        out("  hdrB: response header bytes per request as h2load counts them (HPACK)")
    summary = {}
    for size in sizes if runs else []:
        out("")
        fixed = "-n" in args.load[size].split()
        out(f"  {size} ({SIZES[size]} B), h2load {args.load[size]}"
            + ("" if fixed else f", -n per server for ~{args.seconds:g} s a run") + ":")
        out(f"  {'server':<8} {'-n':>6} {'req/s':>8} {'range':>13} {'CPU/req us':>10} {'range':>15} "
            f"{'busy':>5} {'bg':>4} {'cpu x':>6} {'req/s x':>7} {'hdrB':>5}  cipher")
        base = {}
        for srv in servers:
            rs = [r for r in runs if r["server"] == srv and r["size"] == size]
            good = [r for r in rs if not r["problems"]]
            rps = [r["rps"] for r in good if r.get("rps") is not None]
            cpu = [r["us_per_req"] for r in good if r.get("us_per_req") is not None]
            m = {"rps": med(rps), "cpu": med(cpu), "busy": med([r["busy"] for r in good]),
                 "bg": med([r["bg"] for r in rs]), "bad": len(rs) - len(good), "runs": len(rs),
                 "hdr": med([r["bytes_headers"] / r["req_succeeded"] for r in good
                             if r.get("bytes_headers") is not None and r.get("req_succeeded")])}
            summary[(size, srv)] = m
            if srv == "sluice":
                base = m
            cx = ratio(m["cpu"], base.get("cpu")) if srv != "sluice" else None
            rx = ratio(base.get("rps"), m["rps"]) if srv != "sluice" else None
            rr = f"{min(rps):.0f}-{max(rps):.0f}" if rps else "-"
            cr = f"{min(cpu):.1f}-{max(cpu):.1f}" if cpu else "-"
            ciphers = ",".join(sorted({r.get("cipher") for r in rs if r.get("cipher")})) or "-"
            bad = f"  FAILED: {m['bad']} of {m['runs']} runs" if m["bad"] else ""
            ns = sorted({r["opts"].split()[r["opts"].split().index("-n") + 1] for r in rs
                         if isinstance(r.get("round"), int)
                         if "-n" in r.get("opts", "").split()})
            out(f"  {srv:<8} {'/'.join(ns) or '-':>6} {fmt(m['rps'], '8.0f')} {rr:>13} "
                f"{fmt(m['cpu'], '10.1f')} {cr:>15} {pct(m['busy']):>5} {pct(m['bg']):>4} "
                f"{fmt(cx, '6.2f'):>6} {fmt(rx, '7.2f'):>7} {fmt(m['hdr'], '5.0f')}  {ciphers}{bad}")
    memsum = {}
    if mem:
        out("")
        out(f"MEMORY: RSS per idle HTTP/2 connection, {args.mem_conns} connections held open "
            "(TLS handshake with ALPN h2, or h2c;")
        out("  preface + SETTINGS both ways), server started fresh and warmed with 10 connections; "
            "median of " f"{args.mem_rounds} round(s); x = peer/sluice (>1: sluice uses less)")
        out(f"  {'proto':<5} {'server':<8} {'KB/conn':>8} {'x':>6} {'RSS before':>11} "
            f"{'after':>9} {'open':>5}")
        for proto in ("tls", "h2c"):
            base = None
            for srv in servers:
                ms = [m for m in mem if m["server"] == srv and m["proto"] == proto]
                if not ms:
                    continue
                kb = med([m["kb_per_conn"] for m in ms])
                memsum[(proto, srv)] = kb
                if srv == "sluice":
                    base = kb
                x = ratio(kb, base) if srv != "sluice" else None
                m0 = ms[-1]
                note = ""
                if m0.get("errors"):
                    note += f"  client errors: {m0['errors'][:2]}"
                if m0["alive"] != m0["n"]:
                    note += f"  only {m0['alive']} of {m0['n']} stayed open"
                if not m0["server_alive"]:
                    note += "  SERVER DIED"
                out(f"  {proto:<5} {srv:<8} {fmt(kb, '8.1f')} {fmt(x, '6.2f'):>6} "
                    f"{m0['rss_before_kb']:>9}KB {m0['rss_after_kb']:>7}KB {m0['alive']:>5}{note}")
    problems = [r for r in runs if r["problems"]]
    if problems:
        out("")
        out("PROBLEMS (runs left out of the medians):")
        for r in problems:
            rnd = r.get("round", 0)
            rnd = f"round {rnd + 1}" if isinstance(rnd, int) else rnd
            out(f"  {r['size']} {rnd} {r['server']} (h2load {r.get('opts', '')}): "
                f"{'; '.join(r['problems'])}")
    if "sluice" in servers and len(servers) > 1:
        out("")
        out("SUMMARY, sluice against each peer (x > 1: sluice better; cpu = CPU per request, "
            "mem = KB per idle connection):")
        for srv in servers[1:]:
            parts = []
            for size in sizes:
                sm, pm = summary.get((size, "sluice")), summary.get((size, srv))
                if sm and pm:
                    parts.append(f"{size} cpu x{fmt(ratio(pm['cpu'], sm['cpu']), '.2f')} "
                                 f"req/s x{fmt(ratio(sm['rps'], pm['rps']), '.2f')}")
            for proto in ("tls", "h2c"):
                r = ratio(memsum.get((proto, srv)), memsum.get((proto, "sluice")))
                if r is not None:
                    parts.append(f"mem {proto} x{r:.2f}")
            out(f"  vs {srv:<8} " + " | ".join(parts))
        s1 = summary.get(("1k", "sluice"), {}).get("cpu")
        best = min([(summary[("1k", p)]["cpu"], p) for p in servers[1:]
                    if summary.get(("1k", p), {}).get("cpu") is not None], default=None)
        smem = memsum.get(("tls", "sluice"))
        goal = []
        if s1 is not None and best:
            goal.append(f"1 KiB over TLS: sluice {s1:.1f} us CPU/request, best peer {best[1]} "
                        f"{best[0]:.1f} us ({'met' if s1 < best[0] else 'NOT met'})")
        if smem is not None:
            goal.append(f"idle TLS connection: {smem:.1f} KB ({'met' if smem < 8 else 'NOT met'}: < 8 KB)")
        if goal:
            out("  issue 5 goals: " + "; ".join(goal))
    out("=" * 100)
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "memclient":
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--port", type=int, required=True)
        ap.add_argument("--n", type=int, required=True)
        ap.add_argument("--tls", action="store_true")
        ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait before reading RSS")
        memclient(ap.parse_args())
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sluice", required=True, help="the sluice binary")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per size")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS), help="which, comma-separated")
    ap.add_argument("--sizes", default="1k,100k,10m", help="which files, comma-separated")
    for s in SIZES:
        ap.add_argument(f"--load-{s}", default=DEFAULT_LOAD[s],
                        help=f"h2load options for {s} (add -n N for a fixed count)")
    ap.add_argument("--seconds", type=float, default=3,
                    help="target duration of a run when the h2load options have no -n")
    ap.add_argument("--mem-conns", type=int, default=500, help="idle connections to hold")
    ap.add_argument("--mem-rounds", type=int, default=1, help="memory measurements per server")
    ap.add_argument("--no-mem", action="store_true", help="skip the memory part")
    ap.add_argument("--no-throughput", action="store_true", help="skip the h2load part")
    ap.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to")
    ap.add_argument("--client-cpu", type=int, default=1, help="CPU h2load and the client use")
    ap.add_argument("--port-base", type=int, default=18400, help="ports used: base+1 .. base+32")
    ap.add_argument("--run-timeout", type=float, default=30,
                    help="seconds before an h2load run is killed and counted as failed")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait before reading RSS")
    ap.add_argument("--tls13-ciphers", default="TLS_AES_128_GCM_SHA256",
                    help="h2load's TLS 1.3 cipher list, so every server uses the same cipher "
                         "('' for h2load's default)")
    ap.add_argument("--json", help="write every run's raw numbers here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()
    if args.client_cpu == args.server_cpu or max(args.client_cpu, args.server_cpu) >= (os.cpu_count() or 1):
        log(f"warning: CPUs {args.server_cpu} (server) and {args.client_cpu} (client) are not two "
            f"distinct CPUs of this {os.cpu_count()}-CPU machine; results mix client and server")
        if max(args.client_cpu, args.server_cpu) >= (os.cpu_count() or 1):
            args.server_cpu = args.client_cpu = 0
    args.load = {s: getattr(args, f"load_{s}") for s in SIZES}
    servers = [s for s in args.servers.split(",") if s]
    sizes = [s for s in args.sizes.split(",") if s]
    for s in servers:
        if s not in ALL_SERVERS:
            ap.error(f"unknown server {s}")
    for s in sizes:
        if s not in SIZES:
            ap.error(f"unknown size {s}")
    if "sluice" in servers:  # ratios are against sluice: it goes first in tables
        servers.remove("sluice")
        servers.insert(0, "sluice")

    # Enough descriptors for the idle connections (servers inherit this).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile < args.mem_conns + 100:
        ap.error(f"open files limit {nofile} is too low for {args.mem_conns} connections")

    tmp = tempfile.mkdtemp(prefix="sluice-bench-host-")
    os.chmod(tmp, 0o755)  # h2o and nginx workers run as nobody
    docroot = os.path.join(tmp, "htdocs")
    os.mkdir(docroot)
    os.chmod(docroot, 0o755)
    for name, n in SIZES.items():
        with open(os.path.join(docroot, f"{name}.bin"), "wb") as f:
            f.write(os.urandom(n))
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o644)
    env = {"tmp": tmp, "docroot": docroot, "cert": cert, "key": key,
           "sluice": os.path.abspath(args.sluice), "server_cpu": args.server_cpu,
           "client_cpu": args.client_cpu, "run_timeout": args.run_timeout,
           "settle": args.settle, "nofile": nofile,
           "tls13_ciphers": args.tls13_ciphers}
    objs = {s: Server(s, env) for s in servers}
    port_of = {s: args.port_base + 10 * i for i, s in enumerate(ALL_SERVERS)}

    def cleanup(*_):
        for o in objs.values():
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
    runs, mem, start_errors = [], [], []
    t_start = time.monotonic()
    try:
        if not args.no_throughput:
            active = []
            for s in servers:
                try:
                    objs[s].start(True, port_of[s] + 1)
                    active.append(s)
                except RuntimeError as e:
                    start_errors.append(str(e))
                    log(f"NOT BENCHMARKED: {e}")
            # A first short run each: page cache, allocators, first handshakes.
            for s in active:
                run_h2load(env, objs[s], "1k", "-n 2000 -c 10 -m 10")
            for size in sizes:
                opts = {s: args.load[size] for s in active}
                if "-n" not in args.load[size].split():
                    for s in active:
                        n, r = calibrate(env, objs[s], size, args.load[size], args.seconds)
                        opts[s] = f"-n {n} {args.load[size]}"
                        info.setdefault("n", {})[f"{size} {s}"] = n
                        log(f"{size:>5} calibration {s:<8} {fmt(r.get('rps'), '9.0f')} req/s: "
                            f"-n {n}" + (f"  PROBLEM: {'; '.join(r['problems'])}"
                                         if r["problems"] else ""))
                        if r["problems"]:  # reported with the others
                            r["round"] = "calibration"
                            runs.append(r)
                            log("    h2load output (tail):\n    "
                                + r.get("output", "").replace("\n", "\n    "))
                            log("    server log (tail):\n    "
                                + objs[s].log_tail(1000).replace("\n", "\n    "))
                for rnd in range(args.rounds):
                    k = rnd % max(1, len(active))  # rotate the order every round
                    for s in active[k:] + active[:k]:
                        o = objs[s]
                        if not o.alive():
                            log(f"{s} is not running (exit {o.proc.returncode if o.proc else '?'}),"
                                f" log: {o.log_tail(500)!r}; restarting it")
                            o.start(True, port_of[s] + 1)
                        r = run_h2load(env, o, size, opts[s])
                        r["round"] = rnd
                        runs.append(r)
                        log(f"{size:>5} round {rnd + 1}/{args.rounds} {s:<8} "
                            f"{fmt(r.get('rps'), '9.0f')} req/s {fmt(r['us_per_req'], '8.1f')} us/req"
                            f" busy {pct(r['busy'])} bg {pct(r['bg'])} wall {r['wall_total']:.1f}s"
                            + (f"  PROBLEM: {'; '.join(r['problems'])}" if r["problems"] else ""))
                        if r["problems"]:
                            log("    h2load output (tail):\n    "
                                + r.get("output", "").replace("\n", "\n    "))
                            log("    server log (tail):\n    "
                                + o.log_tail(1000).replace("\n", "\n    "))
            for s in servers:
                objs[s].stop()
        if not args.no_mem:
            for rnd in range(args.mem_rounds):
                for tls in (True, False):
                    for s in servers:
                        try:
                            m = measure_memory(env, objs[s], tls,
                                               port_of[s] + (1 if tls else 2), args.mem_conns)
                        except RuntimeError as e:
                            start_errors.append(str(e))
                            log(f"memory: NOT MEASURED: {e}")
                            objs[s].stop()
                            continue
                        mem.append(m)
                        log(f"  mem {m['proto']} {s:<8} {fmt(m['kb_per_conn'], '7.1f')} KB/conn "
                            f"({m['alive']}/{m['n']} open, RSS {m['rss_before_kb']} -> "
                            f"{m['rss_after_kb']} KB)"
                            + (f" errors: {m['errors']}" if m["errors"] else ""))
        info["load_end"] = open("/proc/loadavg").read().split()[0]
        text = report(servers, sizes, runs, mem, args, env, info)
        if start_errors:
            text += "\nservers that did not start:\n  " + "\n  ".join(start_errors)
        print(text)
        print(f"(benchmark took {time.monotonic() - t_start:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"runs": runs, "mem": mem, "load": args.load, "info": info,
                           "start_errors": start_errors}, f, indent=1)
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
