#!/usr/bin/python3
# bench.py — the priority benchmark's driver: starts the servers, runs the
# trials (client.py) interleaved, prints medians, percentiles and ratios.
"""Priority benchmark: the time to last byte of a small urgent response while
large low-urgency downloads flow on the same HTTP/2 connection, for sluice
with priorities on and off, nginx, h2o and nghttpd serving the same files
over h2c with one worker each (run by tests/bench/run-priority.sh, on plain
loopback and inside a network namespace whose `lo` is rate-limited).

Each trial (client.py) opens a connection, measures the 1 KiB file unloaded,
starts --bulk downloads of the 10 MiB file at `u=7` (and RFC 7540 weight 1),
samples the kernel's queues once --flowing bytes arrived, then requests the
1 KiB file at `u=0` (weight 256, exclusive) and times it to its last byte.
The servers are interleaved: every round runs --trials trials against each,
the order rotating. Servers pinned to --server-cpu, the client to
--client-cpu. Debian's /usr/bin/python3 with python3-h2.
"""
import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
_here = os.path.dirname(os.path.abspath(__file__))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The host benchmark's process handling and formatting: the same methodology.
hb = _load("host_bench", os.path.join(_here, "..", "host", "bench.py"))
client = _load("priority_client", os.path.join(_here, "client.py"))
log, fmt, ratio = hb.log, hb.fmt, hb.ratio

ALL_SYSTEMS = ["sluice", "sluice-nopri", "nginx", "h2o", "nghttpd"]
SMALL, BULK = "1k.bin", "10m.bin"


class Server(hb.Server):
    """An h2c server; sluice's two variants get their own configuration, the
    peers the host benchmark's (plain `listen ... http2;` for nginx)."""

    def command(self, tls, port):
        e = self.env
        if self.name in ("sluice", "sluice-nopri"):
            conf = os.path.join(e["tmp"], f"{self.name}.lua")
            with open(conf, "w") as f:
                f.write(sluice_config(port, e["docroot"], self.name == "sluice-nopri"))
            return [e["sluice"], "-q", "-c", conf]
        return super().command(False, port)


def sluice_config(port, docroot, nopri):
    return (f'listen {{ "127.0.0.1:{port}" }}\n'
            f'route {{ path = "/", static = "{docroot}" }}\n'
            "workers(1)\n"
            + ("http2 { priorities = false }\n" if nopri else ""))


def config_error(sluice, tmp, text):
    """sluice -t on a configuration: None if it is accepted, else its message."""
    path = os.path.join(tmp, "check.lua")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([sluice, "-t", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return None if p.returncode == 0 else p.stdout.strip()


# ---- report --------------------------------------------------------------------

def pctl(xs, q):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ms(x):
    return fmt(None if x is None else x * 1e3, ".2f")


def kb(x):
    return fmt(None if x is None else x / 1024, ".0f")


def report(args, systems, results, errors, skipped, info):
    lines = []
    out = lines.append
    out("")
    out("=" * 100)
    out(f"PRIORITY [{args.label}]: time to last byte of a 1 KiB u=0 request on one connection while "
        f"{args.bulk} x 10 MiB u=7 downloads flow")
    out("  " + "; ".join(info["versions"]))
    out(f"  link: {info['link']}; servers on CPU {args.server_cpu}, client on CPU {args.client_cpu}; "
        f"{args.rounds} rounds x {args.trials} trials, interleaved")
    out("  unloaded: the same request on the idle connection. loaded: after "
        f"{args.flowing // 1024} KiB of bulk data arrived. x = system/sluice loaded median "
        "(>1: sluice faster)")
    out("  queues in front of the urgent request, sampled just before it was sent (medians, KiB):"
        " qdisc = lo qdisc backlog,")
    out("  sendq = server socket Send-Q (unacked + unsent), notsent = of which unsent, "
        "recvq = client socket Recv-Q;")
    out("  ahead = bulk KiB that arrived between the urgent request and its last byte; "
        "bulk MB/s = bulk goodput while loaded;")
    out("  rtx = trials in which the server retransmitted while the urgent request ran "
        "(a loss can add a timeout)")
    out(f"  {'system':<13} {'n':>3} {'unloaded ms':>11} {'loaded ms':>10} {'p90':>8} {'max':>8} "
        f"{'x':>6} {'ahead':>7} {'qdisc':>6} {'sendq':>6} {'notsent':>7} {'recvq':>6} "
        f"{'bulk MB/s':>9} {'rtx':>4}")
    base = None
    summary = {}
    for s in systems:
        if s in skipped:
            out(f"  {s:<13} skipped: {skipped[s]}")
            continue
        rs = [r for r in results if r["system"] == s]
        good = [r for r in rs if r["loaded_ok"]]
        lo = [r["loaded"] for r in good]
        m = {"n": len(good), "unloaded": med([r["unloaded"] for r in rs]), "loaded": med(lo),
             "p90": pctl(lo, 0.9), "max": max(lo) if lo else None,
             "ahead": med([r["ahead"] for r in good]),
             "qdisc": med([r.get("qdisc_backlog") for r in good]),
             "sendq": med([r.get("srv_sendq") for r in good]),
             "notsent": med([r.get("srv_notsent") for r in good]),
             "recvq": med([r.get("cli_recvq") for r in good]),
             "rate": med([r.get("bulk_rate") for r in good]),
             "rtx": sum(1 for r in good if r.get("retrans_during"))}
        summary[s] = m
        if s == "sluice":
            base = m["loaded"]
        x = ratio(m["loaded"], base) if s != "sluice" else None
        note = ""
        if len(rs) != len(good):
            note += f"  ({len(rs) - len(good)} trials left out: all bulk downloads had ended)"
        ne = sum(1 for e in errors if e["system"] == s)
        if ne:
            note += f"  {ne} FAILED trials"
        out(f"  {s:<13} {m['n']:>3} {ms(m['unloaded']):>11} {ms(m['loaded']):>10} "
            f"{ms(m['p90']):>8} {ms(m['max']):>8} {fmt(x, '.2f'):>6} {kb(m['ahead']):>7} "
            f"{kb(m['qdisc']):>6} {kb(m['sendq']):>6} {kb(m['notsent']):>7} {kb(m['recvq']):>6} "
            f"{fmt(None if m['rate'] is None else m['rate'] / 1e6, '9.1f')} {m['rtx']:>4}{note}")
    if errors:
        out("")
        out("FAILED TRIALS:")
        for e in errors[:20]:
            out(f"  {e['system']} round {e['round'] + 1}: {e['error']}")
        if len(errors) > 20:
            out(f"  ... and {len(errors) - 20} more")
    s = summary.get("sluice")
    if s and s["loaded"] is not None:
        peers = [(summary[p]["loaded"], p) for p in ("nginx", "h2o", "nghttpd")
                 if p in summary and summary[p]["loaded"] is not None]
        best = min(peers) if peers else None
        goal = f"  sluice loaded median {ms(s['loaded'])} ms, unloaded {ms(s['unloaded'])} ms"
        if best:
            goal += (f"; fastest peer {best[1]} {ms(best[0])} ms (x{best[0] / s['loaded']:.1f})")
        if args.goal_ms:
            met = s["loaded"] * 1e3 < args.goal_ms and (not best or s["loaded"] * 10 <= best[0])
            goal += (f"; issue 7 goal (< {args.goal_ms:g} ms and a tenth of the peers): "
                     f"{'met' if met else 'NOT met'}")
        out("")
        out(goal)
    out("=" * 100)
    return "\n".join(lines), summary


# ---- main -------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sluice", required=True, help="the sluice binary")
    ap.add_argument("--label", default="loopback", help="names this run in the report")
    ap.add_argument("--link", default="plain loopback, no qdisc",
                    help="describes the link in the report")
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS), help="which, comma-separated")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--trials", type=int, default=6, help="trials per system and round")
    ap.add_argument("--bulk", type=int, default=4, help="concurrent 10 MiB downloads")
    ap.add_argument("--flowing", type=int, default=1 << 20,
                    help="bulk bytes received before the urgent request")
    ap.add_argument("--pause", type=float, default=0.1, help="seconds between trials")
    ap.add_argument("--trial-timeout", type=float, default=20, help="seconds per trial")
    ap.add_argument("--goal-ms", type=float, default=0,
                    help="print whether sluice met this goal (0: no goal line)")
    ap.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to")
    ap.add_argument("--client-cpu", type=int, default=1, help="CPU the client runs on")
    ap.add_argument("--port-base", type=int, default=18700, help="ports used: base+1 .. base+5")
    ap.add_argument("--json", help="write every trial's numbers here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in ALL_SYSTEMS:
            ap.error(f"unknown system {s}")
    if "sluice" in systems:  # ratios are against sluice: it goes first
        systems.remove("sluice")
        systems.insert(0, "sluice")
    ncpu = os.cpu_count() or 1
    if args.client_cpu == args.server_cpu or max(args.client_cpu, args.server_cpu) >= ncpu:
        log(f"warning: CPUs {args.server_cpu} (servers) and {args.client_cpu} (client) are not two "
            f"distinct CPUs of this {ncpu}-CPU machine")
        if max(args.client_cpu, args.server_cpu) >= ncpu:
            args.server_cpu = args.client_cpu = 0

    tmp = tempfile.mkdtemp(prefix="sluice-bench-prio-")
    os.chmod(tmp, 0o755)  # nginx and h2o workers may run as nobody
    docroot = os.path.join(tmp, "htdocs")
    os.mkdir(docroot)
    os.chmod(docroot, 0o755)
    small = os.urandom(1024)
    with open(os.path.join(docroot, SMALL), "wb") as f:
        f.write(small)
    with open(os.path.join(docroot, BULK), "wb") as f:
        f.write(os.urandom(10 << 20))
    env = {"tmp": tmp, "docroot": docroot, "cert": None, "key": None,
           "sluice": os.path.abspath(args.sluice), "server_cpu": args.server_cpu,
           "client_cpu": args.client_cpu, "nofile": 4096}
    objs = {s: Server(s, env) for s in systems}

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
    os.sched_setaffinity(0, {args.client_cpu})  # the client runs in this process
    skipped, active = {}, []
    if "sluice-nopri" in systems:
        err = config_error(env["sluice"], tmp, sluice_config(1, docroot, True))
        if err:
            skipped["sluice-nopri"] = ("this sluice does not accept `http2 { priorities = false }` "
                                       f"yet ({err.splitlines()[-1][:120]})")
            log(f"sluice-nopri: SKIPPED: {skipped['sluice-nopri']}")
    results, errors = [], []
    info = {"versions": [hb.versions(env)[i] for i in (0, 1, 2, 3)], "link": args.link}
    t_start = time.monotonic()
    try:
        for i, s in enumerate(systems):
            if s in skipped:
                continue
            try:
                objs[s].start(False, args.port_base + 1 + i)
                active.append(s)
            except RuntimeError as e:
                skipped[s] = f"did not start: {e}"
                log(f"{s}: NOT BENCHMARKED: {e}")
        for s in active:  # page cache, first connection
            try:
                client.trial("127.0.0.1", objs[s].port, "/" + SMALL, small, "/" + BULK,
                             10 << 20, args.bulk, args.flowing, args.trial_timeout, sample=False)
            except (client.TrialError, OSError) as e:
                log(f"{s}: warm-up trial failed: {e}")
        for rnd in range(args.rounds):
            k = rnd % max(1, len(active))
            for s in active[k:] + active[:k]:
                o = objs[s]
                for _ in range(args.trials):
                    if not o.alive():
                        errors.append({"system": s, "round": rnd,
                                       "error": f"server died: {o.log_tail(300)!r}"})
                        o.start(False, o.port)
                    try:
                        r = client.trial("127.0.0.1", o.port, "/" + SMALL, small, "/" + BULK,
                                         10 << 20, args.bulk, args.flowing, args.trial_timeout)
                        r.update(system=s, round=rnd)
                        results.append(r)
                    except (client.TrialError, OSError) as e:
                        errors.append({"system": s, "round": rnd, "error": str(e)})
                        log(f"{s} round {rnd + 1}: FAILED: {e}")
                    time.sleep(args.pause)
                rs = [r for r in results if r["system"] == s and r["round"] == rnd]
                log(f"[{args.label}] round {rnd + 1}/{args.rounds} {s:<13} loaded ms "
                    + " ".join(ms(r["loaded"]) for r in rs)
                    + "  sendq KiB " + " ".join(kb(r.get("srv_sendq")) for r in rs))
        text, summary = report(args, systems, results, errors, skipped, info)
        print(text)
        print(f"(took {time.monotonic() - t_start:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"label": args.label, "link": args.link, "results": results,
                           "errors": errors, "skipped": skipped, "summary": summary,
                           "info": info}, f, indent=1)
    finally:
        cleanup()
    return 1 if errors or "sluice" in skipped else 0


if __name__ == "__main__":
    sys.exit(main())
