# client.py — the priority benchmark's HTTP/2 client (python3-h2): one trial
# is bulk downloads at low urgency on one connection, then one urgent request.
"""One trial, on a fresh h2c connection (prior knowledge):

1. two 1 KiB requests on the idle connection; the second one's time to last
   byte is the unloaded latency;
2. `bulk` requests for the large file with low urgency: the RFC 9218 header
   `priority: u=7` and RFC 7540 priority fields on HEADERS (weight 1,
   depending on stream 0, not exclusive), since nginx 1.22 and h2o 2.2.5 only
   read the latter;
3. once `flowing` bytes of them arrived, the kernel's queues are sampled
   (qdisc backlog, the server socket's Send-Q and unsent bytes, our Recv-Q)
   while the downloads keep flowing, then the 1 KiB file is requested with
   `priority: u=0` and weight 256, exclusive dependency on stream 0; its time
   from sending the HEADERS to its last byte is the loaded latency.

The client advertises 2^31-1 byte windows (stream and connection) and reads
as fast as it can, so flow control never holds the server back: the order in
which the bytes arrive is the server's choice. Data ahead of the urgent
response is counted (bulk bytes that arrived between the request and its
last byte). Afterwards the bulk streams are cancelled and the connection is
closed.
"""
import re
import socket
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

MAX_WINDOW = 2 ** 31 - 1
BULK_PRIORITY = {"header": b"u=7", "weight": 1, "exclusive": False}
URGENT_PRIORITY = {"header": b"u=0", "weight": 256, "exclusive": True}


class TrialError(Exception):
    pass


class Conn:
    """A blocking h2c client connection with per-stream bookkeeping."""

    def __init__(self, host, port, timeout):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(cfg)
        self.h2.local_settings = h2.settings.Settings(
            client=True, initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            })
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(MAX_WINDOW - 65535)
        self.flush()
        self.streams = {}  # id -> {"status", "body" (bytearray or None), "bytes", "ended", "t_end"}
        self.bulk_bytes = 0

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(self, path, prio, keep_body):
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(b":method", b"GET"), (b":scheme", b"http"),
                (b":authority", f"{self.host}:{self.port}".encode()), (b":path", path.encode()),
                (b"priority", prio["header"])]
        self.h2.send_headers(sid, hdrs, end_stream=True, priority_weight=prio["weight"],
                             priority_depends_on=0, priority_exclusive=prio["exclusive"])
        self.streams[sid] = {"status": None, "body": bytearray() if keep_body else None,
                             "bytes": 0, "ended": False, "t_end": None, "bulk": not keep_body}
        return sid

    def pump(self, wait):
        """Reads once (up to 64 KiB, so a response's arrival is timed to
        within one small read) and handles the events. wait: socket timeout
        for this read; returns False when nothing came in that time."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            raise TrialError("server closed the connection")
        events = self.h2.receive_data(data)
        now = time.perf_counter()
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    st["status"] = dict(ev.headers).get(b":status")
            elif isinstance(ev, h2.events.DataReceived):
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    st["bytes"] += len(ev.data)
                    if st["body"] is not None:
                        st["body"] += ev.data
                    else:
                        self.bulk_bytes += len(ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                st = self.streams.get(ev.stream_id)
                if st is not None:  # bulk bytes so far: what came before its end
                    st["ended"], st["t_end"], st["bulk_at_end"] = True, now, self.bulk_bytes
            elif isinstance(ev, h2.events.StreamReset):
                raise TrialError(f"stream {ev.stream_id} reset by the server (code {ev.error_code})")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise TrialError(f"GOAWAY from the server (code {ev.error_code})")
        self.flush()  # SETTINGS and PING acknowledgements
        return True

    def wait_for(self, cond, deadline, what, wait=None):
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TrialError(f"timed out waiting for {what}")
            self.pump(min(left, wait) if wait else left)

    def close(self, cancel=()):
        try:
            for sid in cancel:
                self.h2.reset_stream(sid, 8)  # CANCEL
            self.h2.close_connection()
            self.flush()
        except Exception:
            pass
        self.sock.close()


def check_small(conn, sid, expect):
    st = conn.streams[sid]
    if st["status"] != b"200":
        raise TrialError(f"urgent request: status {st['status']!r}")
    if bytes(st["body"]) != expect:
        raise TrialError(f"urgent request: body of {len(st['body'])} bytes is not the file")


# ---- the kernel's queues ----------------------------------------------------

def sample_queues(port, qdisc=True):
    """The loopback qdisc's backlog and the sockets of our connection, from
    `tc -s qdisc show dev lo` and `ss -tmi` (run in the caller's namespace)."""
    r = {"qdisc": None, "qdisc_backlog": None, "srv_sendq": None, "srv_notsent": None,
         "cli_recvq": None, "srv_retrans": None}
    try:
        tc = subprocess.run(["tc", "-s", "qdisc", "show", "dev", "lo"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, timeout=5).stdout if qdisc else ""
    except (OSError, subprocess.SubprocessError):
        tc = ""
    m = re.search(r"^qdisc (\S+)", tc, re.M)
    r["qdisc"] = m.group(1) if m else None
    m = re.search(r"backlog (\d+)b", tc)
    if m and r["qdisc"] != "noqueue":
        r["qdisc_backlog"] = int(m.group(1))
    try:
        ss = subprocess.run(["ss", "-tmiHn", f"( sport = :{port} or dport = :{port} )"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return r
    socks, cur = [], None
    for line in ss.splitlines():
        if line and not line[0].isspace():
            cur = [line, ""]
            socks.append(cur)
        elif cur is not None:
            cur[1] += " " + line.strip()
    for head, info in socks:
        w = head.split()
        if len(w) < 5 or w[0] != "ESTAB":
            continue
        recvq, sendq, local = int(w[1]), int(w[2]), w[3]
        m = re.search(r"notsent:(\d+)", info)
        rt = re.search(r"retrans:\d+/(\d+)", info)
        if local.endswith(f":{port}"):
            r["srv_sendq"] = (r["srv_sendq"] or 0) + sendq
            r["srv_notsent"] = (r["srv_notsent"] or 0) + (int(m.group(1)) if m else 0)
            r["srv_retrans"] = (r["srv_retrans"] or 0) + (int(rt.group(1)) if rt else 0)
        else:
            r["cli_recvq"] = (r["cli_recvq"] or 0) + recvq
    return r


# ---- one trial -------------------------------------------------------------------

def trial(host, port, small_path, small_body, bulk_path, bulk_size, bulk, flowing, timeout,
          sample=True):
    """Returns a dict of times (seconds) and queue sizes (bytes); raises
    TrialError when a response was wrong or late."""
    deadline = time.monotonic() + timeout
    c = Conn(host, port, timeout)
    bulk_ids = []
    try:
        # The idle connection: a warm-up request, then the unloaded latency.
        sid = c.request(small_path, URGENT_PRIORITY, True)
        c.flush()
        c.wait_for(lambda: c.streams[sid]["ended"], deadline, "the warm-up response")
        check_small(c, sid, small_body)
        t0 = time.perf_counter()
        sid = c.request(small_path, URGENT_PRIORITY, True)
        c.flush()
        c.wait_for(lambda: c.streams[sid]["ended"], deadline, "the unloaded response")
        check_small(c, sid, small_body)
        unloaded = c.streams[sid]["t_end"] - t0

        # The bulk downloads, until they flow.
        for _ in range(bulk):
            bulk_ids.append(c.request(bulk_path, BULK_PRIORITY, False))
        c.flush()
        c.wait_for(lambda: c.bulk_bytes >= flowing, deadline, f"{flowing} bulk bytes")
        t_flow, b_flow = time.perf_counter(), c.bulk_bytes
        for b in bulk_ids:
            if c.streams[b]["status"] not in (None, b"200"):
                raise TrialError(f"bulk request: status {c.streams[b]['status']!r}")

        # The queues in front of the urgent request, sampled while we keep
        # reading (sampling during the urgent request would put the tools'
        # fork and exec on the client's CPU inside the measurement).
        q = {}
        if sample:
            th = threading.Thread(target=lambda: q.update(sample_queues(port)), daemon=True)
            th.start()
            c.wait_for(lambda: not th.is_alive(), deadline, "the queue sample", wait=0.01)
            th.join()

        # The urgent request.
        bulk_before = c.bulk_bytes
        t0 = time.perf_counter()
        sid = c.request(small_path, URGENT_PRIORITY, True)
        c.flush()
        c.wait_for(lambda: c.streams[sid]["ended"], deadline, "the urgent response")
        t1 = c.streams[sid]["t_end"]
        check_small(c, sid, small_body)
        # Segments the server retransmitted meanwhile (a loss on the way
        # can add a retransmission timeout to the urgent response).
        rtx = None
        if sample and q.get("srv_retrans") is not None:
            after = sample_queues(port, qdisc=False).get("srv_retrans")
            rtx = None if after is None else after - q["srv_retrans"]
        bulk_done = sum(1 for b in bulk_ids if c.streams[b]["ended"])
        r = {"unloaded": unloaded, "loaded": t1 - t0,
             "ahead": c.streams[sid]["bulk_at_end"] - bulk_before,
             "retrans_during": rtx,
             "bulk_total": c.bulk_bytes, "bulk_done": bulk_done,
             # Still loaded at the end? (a server may finish one download
             # before the next; if all had ended, the urgent response may
             # have waited for nothing)
             "loaded_ok": bulk_done < bulk and c.bulk_bytes < bulk * bulk_size,
             # Bulk goodput from "flowing" to the urgent response's end.
             "bulk_rate": (c.bulk_bytes - b_flow) / (t1 - t_flow) if t1 > t_flow else None}
        r.update(q)
        return r
    finally:
        c.close(cancel=[b for b in bulk_ids if not c.streams[b]["ended"]])
