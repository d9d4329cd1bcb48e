#!/usr/bin/python3
# upload.py — the upload benchmark: one large HTTP/2 upload through a slow,
# delaying link, for sluice's fixed and adaptive receive windows.
"""Upload benchmark: sluice's receive windows over a link with a round trip
(run by tests/bench/run-priority.sh inside a network namespace whose
loopback rate-limits traffic towards the server with tbf).

Path: client --Unix socket--> relay.py (holds every chunk --delay-ms each
way) --TCP over the rate-limited lo--> server. Legs, interleaved per round,
each on a freshly started server:
  raw       plain TCP to a sink that discards (what the link carries)
  default   sluice with its default windows (65,535-byte stream window)
  fixed     sluice, http2 { initial_window_size = 16 MiB, connection_window = 64 MiB }
  adaptive  sluice, http2 { window_adaptive = true } (skipped while this
            sluice does not accept the key)
The HTTP/2 client (python3-h2) POSTs --size bytes to an `echo` route, which
reads the whole body (and sends it back; the return direction is not
rate-limited, the client reads and drops it). Throughput = bytes echoed /
time from the request's HEADERS to the response's end; an upload still going
after --upload-timeout is stopped and its rate so far reported. Beside it:
the largest window the client was given (the most it could send at once),
the most bytes sent and not yet echoed back (in the relay, the link or
sluice), sluice's VmRSS growth over the upload (peak minus before), and any
window/RTT lines of sluice's admin metrics.
"""
import argparse
import importlib.util
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.dont_write_bytecode = True
_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("host_bench",
                                               os.path.join(_here, "..", "host", "bench.py"))
hb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hb)
log, fmt, med = hb.log, hb.fmt, hb.med

import h2.config  # noqa: E402  (Debian's python3-h2)
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402

MAX_WINDOW = 2 ** 31 - 1
LEGS = {
    "raw": None,
    "default": "",
    "fixed": "http2 { initial_window_size = 16777216, connection_window = 67108864 }\n",
    "adaptive": "http2 { window_adaptive = true }\n",
}
METRIC_RE = re.compile(r"window|rtt|recv_rate|recv_target|buffer", re.I)


# ---- clients ----------------------------------------------------------------------

def upload_h2(unix_path, size, timeout):
    """POSTs `size` bytes on one stream through the relay; returns numbers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(unix_path)
    sock.setblocking(False)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding=None))
    conn.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW,
        h2.settings.SettingCodes.ENABLE_PUSH: 0})
    conn.initiate_connection()
    conn.increment_flow_control_window(MAX_WINDOW - 65535)
    sid = 1
    conn.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"),
                            (b":authority", b"bench"), (b":path", b"/up"),
                            (b"content-type", b"application/octet-stream"),
                            (b"content-length", str(size).encode())])
    out = bytearray(conn.data_to_send())
    block = memoryview(os.urandom(1 << 20))
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    r = {"sent": 0, "echoed": 0, "inc_stream": 0, "inc_conn": 0, "max_window": 0, "max_unechoed": 0,
         "server_initial_window": None, "status": None, "capped": False, "error": None}
    t0 = time.monotonic()
    deadline = t0 + timeout
    done = ended = False
    try:
        while not done:
            now = time.monotonic()
            if now >= deadline:
                r["capped"] = True
                break
            # Fill the socket while the window allows (a little at a time, so
            # WINDOW_UPDATEs are read promptly).
            while not ended and len(out) < (256 << 10):
                win = conn.local_flow_control_window(sid)
                n = min(win, size - r["sent"], conn.max_outbound_frame_size)
                if n <= 0:
                    break
                at = r["sent"] % len(block)
                n = min(n, len(block) - at)
                r["sent"] += n
                ended = r["sent"] == size
                conn.send_data(sid, block[at:at + n].tobytes(), end_stream=ended)
                out += conn.data_to_send()
            sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0))
            for _key, ev in sel.select(min(0.5, deadline - now)):
                if ev & selectors.EVENT_WRITE and out:
                    try:
                        k = sock.send(out)
                        del out[:k]
                    except BlockingIOError:
                        pass
                if ev & selectors.EVENT_READ:
                    try:
                        data = sock.recv(256 << 10)
                    except BlockingIOError:
                        continue
                    if not data:
                        raise ConnectionError("connection closed")
                    for e in conn.receive_data(data):
                        if isinstance(e, h2.events.WindowUpdated):
                            r["inc_stream" if e.stream_id == sid else "inc_conn"] += e.delta
                        elif isinstance(e, h2.events.RemoteSettingsChanged):
                            c = e.changed_settings.get(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE)
                            if c is not None:
                                r["server_initial_window"] = c.new_value
                        elif isinstance(e, h2.events.ResponseReceived):
                            r["status"] = dict(e.headers).get(b":status", b"").decode()
                        elif isinstance(e, h2.events.DataReceived):
                            r["echoed"] += len(e.data)
                            r["max_unechoed"] = max(r["max_unechoed"], r["sent"] - r["echoed"])
                        elif isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                            done = True
                        elif isinstance(e, h2.events.StreamReset):
                            raise ConnectionError(f"stream reset, code {e.error_code}")
                        elif isinstance(e, h2.events.ConnectionTerminated):
                            raise ConnectionError(f"GOAWAY, code {e.error_code}")
                    out += conn.data_to_send()
                    if not ended:
                        r["max_window"] = max(r["max_window"], conn.local_flow_control_window(sid))
    except (ConnectionError, OSError, h2.exceptions.ProtocolError) as e:
        r["error"] = str(e) or type(e).__name__
    r["seconds"] = time.monotonic() - t0
    sock.close()
    if r["server_initial_window"] is None:  # not announced: RFC 9113's default
        r["server_initial_window"] = 65535
    if not r["error"] and not r["capped"]:
        if r["status"] != "200":
            r["error"] = f"status {r['status']}"
        elif r["echoed"] != size:
            r["error"] = f"echoed {r['echoed']} of {size} bytes"
    r["rate"] = r["echoed"] / r["seconds"] if r["seconds"] > 0 else None
    return r


def upload_raw(unix_path, size, timeout):
    """Plain bytes through the relay to the sink; the sink answers with the
    count it read once it saw our end."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(unix_path)
    sock.settimeout(timeout)
    block = os.urandom(1 << 20)
    r = {"sent": 0, "capped": False, "error": None}
    t0 = time.monotonic()
    try:
        while r["sent"] < size:
            if time.monotonic() - t0 > timeout:
                r["capped"] = True
                break
            n = min(len(block), size - r["sent"])
            sock.sendall(block[:n])
            r["sent"] += n
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while len(got) < 8:
            k = sock.recv(8 - len(got))
            if not k:
                break
            got += k
        r["echoed"] = int.from_bytes(got, "big") if len(got) == 8 else 0
        if r["echoed"] != r["sent"]:
            r["error"] = f"the sink read {r['echoed']} of {r['sent']} bytes"
    except OSError as e:
        r["error"] = str(e)
        r["echoed"] = 0
    r["seconds"] = time.monotonic() - t0
    sock.close()
    r["rate"] = r["echoed"] / r["seconds"] if r["seconds"] > 0 else None
    return r


def sink(port):
    """Reads connections to their end, discarding; answers with the count."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    while True:
        c, _ = ls.accept()
        n = 0
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            n += len(d)
        c.sendall(n.to_bytes(8, "big"))
        c.close()


# ---- one run ----------------------------------------------------------------------

class Watch(threading.Thread):
    """Samples the server's VmRSS (and sluice's admin metrics) until stopped."""

    def __init__(self, pids, admin_port):
        super().__init__(daemon=True)
        self.pids, self.admin_port = pids, admin_port
        self.peak = 0
        self.metrics = []
        self.stop = threading.Event()

    def scrape(self):
        if not self.admin_port:
            return
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics",
                                        timeout=2) as f:
                text = f.read().decode()
        except OSError:
            return
        lines = [ln for ln in text.splitlines() if not ln.startswith("#") and METRIC_RE.search(ln)]
        if lines:
            self.metrics = lines

    def run(self):
        last = 0
        while not self.stop.is_set():
            self.peak = max(self.peak, hb.rss_kb(self.pids))
            if time.monotonic() - last > 0.5:
                self.scrape()
                last = time.monotonic()
            self.stop.wait(0.02)
        self.peak = max(self.peak, hb.rss_kb(self.pids))


def start(cmd, cpu, logf, ready=None):
    p = subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE if ready else logf, stderr=logf,
                         start_new_session=True, text=True)
    if ready:
        line = p.stdout.readline()
        if ready not in line:
            p.kill()
            p.wait()
            raise RuntimeError(f"{cmd[0]} did not start: {line!r}")
    return p


def stop(p):
    if p is None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def wait_port(port, proc, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited at start ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def run_leg(args, env, leg):
    tmp, port = env["tmp"], args.port
    logf = open(os.path.join(tmp, f"{leg}.log"), "a")
    server = relay = None
    try:
        if leg == "raw":
            server = start([sys.executable, os.path.abspath(__file__), "sink", "--port", str(port)],
                           args.server_cpu, logf)
        else:
            conf = os.path.join(tmp, f"sluice-{leg}.lua")
            with open(conf, "w") as f:
                f.write(sluice_config(args, leg))
            server = start([env["sluice"], "-q", "-c", conf], args.server_cpu, logf)
        wait_port(port, server)
        time.sleep(0.2)
        unix = os.path.join(tmp, "relay.sock")
        relay = start([sys.executable, os.path.join(_here, "relay.py"), "--listen", unix,
                       "--connect", f"127.0.0.1:{port}", "--delay-ms", str(args.delay_ms),
                       "--queue", str(args.relay_queue), "--sndbuf", str(args.relay_sndbuf)],
                      args.client_cpu, logf, ready="ready")
        pids = hb.proc_tree(server.pid)
        before = hb.rss_kb(pids)
        w = Watch(pids, args.admin_port if leg != "raw" else None)
        w.start()
        try:
            if leg == "raw":
                r = upload_raw(unix, args.size, args.upload_timeout)
            else:
                r = upload_h2(unix, args.size, args.upload_timeout)
        finally:
            w.stop.set()
            w.join()
        r.update(leg=leg, rss_before_kb=before, rss_peak_kb=w.peak,
                 rss_growth_kb=w.peak - before if before else None, metrics=w.metrics,
                 alive=server.poll() is None)
        if not r["alive"] and not r["error"]:
            r["error"] = "server died"
        return r
    finally:
        stop(relay)
        stop(server)
        logf.close()


def sluice_config(args, leg):
    return (f'listen {{ "127.0.0.1:{args.port}" }}\n'
            f'admin {{ listen = "127.0.0.1:{args.admin_port}" }}\n'
            'route { path = "/up", echo = true }\n'
            "workers(1)\n"
            'max_body "4g"\n'
            + LEGS[leg])


def config_error(env, args, leg):
    path = os.path.join(env["tmp"], "check.lua")
    with open(path, "w") as f:
        f.write(sluice_config(args, leg))
    p = subprocess.run([env["sluice"], "-t", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return None if p.returncode == 0 else p.stdout.strip().splitlines()[-1][:160]


# ---- report --------------------------------------------------------------------------

def report(args, legs, runs, skipped):
    lines = []
    out = lines.append
    mbit = lambda x: fmt(None if x is None else x * 8 / 1e6, ".1f")  # noqa: E731
    kib = lambda x: fmt(None if x is None else x / 1024, ".0f")  # noqa: E731
    out("")
    out("=" * 100)
    out(f"UPLOAD: {args.size >> 20} MiB over HTTP/2 (h2c) to sluice's echo route; "
        f"{args.link}; relay delay {args.delay_ms:g} ms each way")
    out(f"  relay: queue {args.relay_queue >> 10} KiB per direction, SO_SNDBUF "
        f"{args.relay_sndbuf >> 10} KiB; {args.rounds} interleaved rounds, medians; sluice on "
        f"CPU {args.server_cpu}, client and relay on CPU {args.client_cpu}")
    out("  Mbit/s: bytes echoed / time; % link: of the configured rate; % raw: of plain TCP "
        "through the same relay")
    out("  window: the most the client could send at once (stream and connection window); "
        "unechoed: the most bytes")
    out("  sent and not yet back (in the relay, the link or sluice); RSS +: sluice's VmRSS peak "
        "minus before; all medians")
    out(f"  {'leg':<9} {'n':>2} {'Mbit/s':>7} {'range':>11} {'% link':>6} {'% raw':>6} "
        f"{'window KiB':>10} {'unechoed KiB':>12} {'RSS + KiB':>9} {'SETTINGS':>9}  notes")
    raw = med([r["rate"] for r in runs if r["leg"] == "raw" and not r["error"]])
    for leg in legs:
        if leg in skipped:
            out(f"  {leg:<9} skipped: {skipped[leg]}")
            continue
        rs = [r for r in runs if r["leg"] == leg]
        good = [r for r in rs if not r["error"]]
        rates = [r["rate"] for r in good if r["rate"]]
        m = med(rates)
        notes = []
        if any(r["capped"] for r in good):
            notes.append(f"{sum(r['capped'] for r in good)} stopped at {args.upload_timeout:g} s")
        bad = [r for r in rs if r["error"]]
        if bad:
            notes.append(f"{len(bad)} FAILED: {bad[0]['error']}")
        rng = f"{mbit(min(rates))}-{mbit(max(rates))}" if rates else "-"
        win = med([r.get("server_initial_window") for r in good])
        out(f"  {leg:<9} {len(good):>2} {mbit(m):>7} {rng:>11} "
            f"{fmt(None if m is None else 100 * m * 8 / args.link_bps, '.0f'):>6} "
            f"{fmt(None if m is None or not raw else 100 * m / raw, '.0f'):>6} "
            f"{kib(med([r.get('max_window') for r in good])) if leg != 'raw' else '-':>10} "
            f"{kib(med([r.get('max_unechoed') for r in good])) if leg != 'raw' else '-':>12} "
            f"{fmt(med([r['rss_growth_kb'] for r in good]), '9.0f') if leg != 'raw' else '-':>9} "
            f"{fmt(win, '9.0f') if win is not None else '-':>9}  {'; '.join(notes)}")
        if good and good[-1].get("metrics"):
            out("            admin metrics (last run): " + "; ".join(good[-1]["metrics"][:8]))
    out("  SETTINGS: the SETTINGS_INITIAL_WINDOW_SIZE sluice announced (bytes); raw: the sink "
        "is not sluice, so no RSS")
    out("=" * 100)
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "sink":
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--port", type=int, required=True)
        sink(ap.parse_args().port)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sluice", required=True, help="the sluice binary")
    ap.add_argument("--legs", default=",".join(LEGS), help="which, comma-separated")
    ap.add_argument("--size", type=int, default=64 << 20, help="bytes per upload")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    ap.add_argument("--upload-timeout", type=float, default=30,
                    help="seconds after which an upload is stopped and its rate so far counted")
    ap.add_argument("--delay-ms", type=float, default=20, help="the relay's one-way delay")
    ap.add_argument("--relay-queue", type=int, default=1 << 20, help="the relay's queue per direction")
    ap.add_argument("--relay-sndbuf", type=int, default=256 << 10,
                    help="the relay's SO_SNDBUF towards the server")
    ap.add_argument("--port", type=int, default=18801,
                    help="the server's port (the one the link's rate limit applies to)")
    ap.add_argument("--admin-port", type=int, default=18802, help="sluice's metrics port")
    ap.add_argument("--link", default="no rate limit", help="describes the link in the report")
    ap.add_argument("--link-bps", type=float, default=100e6, help="the link's rate, bits/s")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--json", help="write every run's numbers here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()
    legs = [x for x in args.legs.split(",") if x]
    for x in legs:
        if x not in LEGS:
            ap.error(f"unknown leg {x}")
    if max(args.client_cpu, args.server_cpu) >= (os.cpu_count() or 1):
        args.server_cpu = args.client_cpu = 0
    tmp = tempfile.mkdtemp(prefix="sluice-bench-upload-")
    env = {"tmp": tmp, "sluice": os.path.abspath(args.sluice)}
    skipped = {}
    for leg in legs:
        if leg != "raw":
            err = config_error(env, args, leg)
            if err:
                skipped[leg] = f"this sluice does not accept the configuration yet ({err})"
                log(f"upload {leg}: SKIPPED: {skipped[leg]}")
    active = [x for x in legs if x not in skipped]
    # On a signal, unwind: run_leg's finally stops the relay and the server
    # (each in its own session, so nothing else would).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _f: sys.exit(128 + signum))
    os.sched_setaffinity(0, {args.client_cpu})
    runs = []
    t_start = time.monotonic()
    try:
        for rnd in range(args.rounds):
            k = rnd % max(1, len(active))
            for leg in active[k:] + active[:k]:
                try:
                    r = run_leg(args, env, leg)
                except RuntimeError as e:
                    r = {"leg": leg, "error": str(e), "rate": None, "capped": False,
                         "rss_growth_kb": None}
                r["round"] = rnd
                runs.append(r)
                log(f"upload round {rnd + 1}/{args.rounds} {leg:<9} "
                    f"{fmt(None if not r.get('rate') else r['rate'] * 8 / 1e6, '7.1f')} Mbit/s "
                    f"in {fmt(r.get('seconds'), '.1f')} s, window "
                    f"{fmt(r.get('max_window'), '.0f')} B, unechoed {fmt(r.get('max_unechoed'), '.0f')}"
                    f" B, RSS +{r.get('rss_growth_kb')} KiB"
                    + (" (stopped at the time limit)" if r.get("capped") else "")
                    + (f"  FAILED: {r['error']}" if r["error"] else ""))
        print(report(args, legs, runs, skipped))
        print(f"(took {time.monotonic() - t_start:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"runs": runs, "skipped": skipped, "link": args.link}, f, indent=1)
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", tmp])
        else:
            log(f"kept {tmp}")
    return 1 if any(r["error"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
