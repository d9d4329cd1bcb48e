/* test_session_window.c — adaptive receive windows end to end: a sluice
 * client and server in memory over a simulated link with a one-way delay,
 * every frame on the wire tallied to check the credit each side grants. */
#include <stdlib.h>
#include <string.h>

#include "sluice.h"
#include "t.h"
#include "wtune.h"

#define MS 1000000ull
#define MIB (1024u * 1024u)
#define NSID 32 /* stream ids tallied: 1..31 */

/* ---- a link: bytes arrive `delay` after they were written ------------------- */

typedef struct seg {
    struct seg *next;
    uint64_t at;
    size_t len;
    uint8_t data[];
} seg;

/* Frames as they pass one point of a link (written, or delivered). */
typedef struct tally {
    size_t skip; /* the client's connection preface is not a frame */
    uint8_t hdr[9];
    size_t hlen, plen;
    uint32_t left;
    uint8_t pay[64];
    uint64_t wu[NSID];   /* WINDOW_UPDATE increments per stream; [0] connection */
    uint64_t data[NSID]; /* DATA frame lengths (flow-controlled bytes); [0] all */
    int bad_pings;
    int settings, settings_acks;
    uint32_t settings_iws[16];    /* INITIAL_WINDOW_SIZE each SETTINGS set, or 0 */
    int probes, probe_acks;       /* PINGs whose opaque starts "sl-rtt" */
    int other_pings, other_acks;  /* anyone else's */
    uint8_t probe_opaque[64][8];
    uint64_t probe_at[64];        /* when each probe (not ACK) passed */
} tally;

typedef struct link {
    seg *head, *tail;
    uint64_t delay;
    tally out, in;
} link;

static void tally_frame(tally *t, uint64_t now)
{
    uint32_t len = (uint32_t)t->hdr[0] << 16 | (uint32_t)t->hdr[1] << 8 | t->hdr[2];
    uint8_t type = t->hdr[3], flags = t->hdr[4];
    uint32_t sid = ((uint32_t)t->hdr[5] << 24 | (uint32_t)t->hdr[6] << 16 |
                    (uint32_t)t->hdr[7] << 8 | t->hdr[8]) & 0x7fffffffu;
    if (type == 0x0) { /* DATA */
        t->data[0] += len;
        if (sid < NSID)
            t->data[sid] += len;
    } else if (type == 0x4) { /* SETTINGS */
        if (flags & 1) {
            t->settings_acks++;
        } else if (t->settings < 16) {
            t->settings_iws[t->settings] = 0;
            for (size_t i = 0; i + 6 <= t->plen; i += 6)
                if (t->pay[i] == 0 && t->pay[i + 1] == 4)
                    t->settings_iws[t->settings] =
                        (uint32_t)t->pay[i + 2] << 24 | (uint32_t)t->pay[i + 3] << 16 |
                        (uint32_t)t->pay[i + 4] << 8 | t->pay[i + 5];
            t->settings++;
        }
    } else if (type == 0x8 && t->plen == 4) { /* WINDOW_UPDATE */
        uint32_t inc = ((uint32_t)t->pay[0] << 24 | (uint32_t)t->pay[1] << 16 |
                        (uint32_t)t->pay[2] << 8 | t->pay[3]) & 0x7fffffffu;
        if (sid < NSID)
            t->wu[sid] += inc;
    } else if (type == 0x6) { /* PING */
        if (len != 8 || sid != 0 || (flags & ~1u) != 0)
            t->bad_pings++;
        int probe = memcmp(t->pay, SL_WTUNE_PROBE_TAG, SL_WTUNE_PROBE_TAG_LEN) == 0;
        int ack = flags & 1;
        if (probe && !ack && t->probes < 64) {
            memcpy(t->probe_opaque[t->probes], t->pay, 8);
            t->probe_at[t->probes] = now;
        }
        t->probes += probe && !ack;
        t->probe_acks += probe && ack;
        t->other_pings += !probe && !ack;
        t->other_acks += !probe && ack;
    }
}

/* Follow the frame stream byte by byte across writes. */
static void tally_bytes(tally *t, const uint8_t *p, size_t n, uint64_t now)
{
    size_t pre = n < t->skip ? n : t->skip;
    t->skip -= pre;
    p += pre;
    n -= pre;
    while (n > 0) {
        if (t->hlen < 9) {
            t->hdr[t->hlen++] = *p++;
            n--;
            if (t->hlen == 9) {
                t->left = (uint32_t)t->hdr[0] << 16 | (uint32_t)t->hdr[1] << 8 | t->hdr[2];
                t->plen = 0;
            }
        } else {
            size_t k = n < t->left ? n : t->left;
            for (size_t i = 0; i < k && t->plen < sizeof(t->pay); i++)
                t->pay[t->plen++] = p[i];
            p += k;
            n -= k;
            t->left -= (uint32_t)k;
        }
        if (t->hlen == 9 && t->left == 0) {
            tally_frame(t, now);
            t->hlen = 0;
        }
    }
}

static int link_put(link *l, const uint8_t *p, size_t n, uint64_t now)
{
    seg *s = malloc(sizeof(*s) + n);
    if (!s)
        return SLUICE_ERR_NOMEM;
    s->next = NULL;
    s->at = now + l->delay;
    s->len = n;
    memcpy(s->data, p, n);
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    tally_bytes(&l->out, p, n, now);
    return 0;
}

static void link_free(link *l)
{
    while (l->head) {
        seg *s = l->head;
        l->head = s->next;
        free(s);
    }
    l->tail = NULL;
}

/* ---- the two endpoints ----------------------------------------------------- */

#define BODY_SPAN 65536u
static const uint8_t body_bytes[BODY_SPAN];

typedef struct ep {
    sluice_session *s;
    int server;
    int auto_consume;      /* the session credits by itself */
    int hold;              /* the application does not consume (yet) */
    uint32_t fix_window;   /* server: set_window on each request */
    uint32_t fix_conn;     /* server: set_window on the connection, then */
    uint64_t respond_len;  /* server: the response body's length */
    uint64_t to_send[NSID], sent[NSID], received[NSID], held[NSID];
    int opened[NSID], status[NSID], ended[NSID], closed[NSID];
    int app_ping_acks;
    uint8_t app_ping[8];
    size_t peak_buffered;
} ep;

static long body_read(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                      uint32_t *flags, void *ud)
{
    (void)s;
    ep *e = ud;
    if (id >= NSID)
        return SLUICE_ERR_INTERNAL;
    uint64_t left = e->to_send[id] - e->sent[id];
    size_t n = left < max ? (size_t)left : max;
    if (n > BODY_SPAN)
        n = BODY_SPAN;
    *data = body_bytes;
    e->sent[id] += n;
    if (e->sent[id] == e->to_send[id])
        *flags |= SLUICE_DATA_EOF;
    return (long)n;
}

static sluice_nv nv_of(const char *n, const char *v)
{
    sluice_nv nv = {(const uint8_t *)n, (const uint8_t *)v, strlen(n), strlen(v), 0};
    return nv;
}

static sluice_session_stats stats_of(const sluice_session *s)
{
    sluice_session_stats st;
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    sluice_session_get_stats(s, &st);
    return st;
}

static int on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv,
                      size_t n, int end_stream, void *ud)
{
    (void)end_stream;
    ep *e = ud;
    if (id >= NSID)
        return SLUICE_ERR_INTERNAL;
    if (kind == SLUICE_HEADERS_REQUEST && e->fix_conn) {
        int rv = sluice_session_set_window(s, 0, e->fix_conn);
        if (rv != 0)
            return rv;
    }
    if (kind == SLUICE_HEADERS_REQUEST && e->fix_window)
        return sluice_session_set_window(s, id, e->fix_window);
    for (size_t i = 0; i < n; i++)
        if (nv[i].name_len == 7 && memcmp(nv[i].name, ":status", 7) == 0 &&
            nv[i].value_len == 3)
            e->status[id] = (nv[i].value[0] - '0') * 100 + (nv[i].value[1] - '0') * 10 +
                            (nv[i].value[2] - '0');
    return 0;
}

static int on_data(sluice_session *s, uint32_t id, const uint8_t *d, size_t len, void *ud)
{
    (void)d;
    ep *e = ud;
    if (id >= NSID)
        return SLUICE_ERR_INTERNAL;
    e->received[id] += len;
    size_t buffered = stats_of(s).recv_buffered;
    if (buffered > e->peak_buffered)
        e->peak_buffered = buffered;
    if (e->auto_consume)
        return 0;
    if (e->hold) {
        e->held[id] += len;
        return 0;
    }
    return sluice_session_consume(s, id, len);
}

/* Server: answer once the request is complete, with a body if asked. */
static int on_stream_end(sluice_session *s, uint32_t id, void *ud)
{
    ep *e = ud;
    e->ended[id] = 1;
    if (!e->server)
        return 0;
    sluice_nv nv[] = {nv_of(":status", "200")};
    sluice_data_source src = {body_read, e};
    e->to_send[id] = e->respond_len;
    return sluice_session_submit_response(s, id, nv, 1, e->respond_len ? &src : NULL);
}

static int on_stream_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    (void)s;
    ep *e = ud;
    if (id < NSID && code == SLUICE_H2_NO_ERROR)
        e->closed[id] = 1;
    return 0;
}

static int on_ping_ack(sluice_session *s, const uint8_t opaque[8], void *ud)
{
    (void)s;
    ep *e = ud;
    e->app_ping_acks++;
    memcpy(e->app_ping, opaque, 8);
    return 0;
}

/* Release what a holding endpoint kept unconsumed. */
static int release(ep *e)
{
    e->hold = 0;
    for (uint32_t id = 1; id < NSID; id++)
        if (e->held[id]) {
            int rv = sluice_session_consume(e->s, id, (size_t)e->held[id]);
            e->held[id] = 0;
            if (rv != 0)
                return rv;
        }
    return 0;
}

/* ---- the simulation ---------------------------------------------------------- */

typedef struct sim {
    ep c, s;
    link c2s, s2c;
    uint64_t now;
    /* Credit outstanding (window the receiver granted, data not yet
     * arrived), highest seen: as the server grants it, as the client does. */
    int64_t s_peak[NSID], c_peak[NSID];
    int probes_in_flight_max;
} sim;

/* The receiver's window: its INITIAL_WINDOW_SIZE as acknowledged so far
 * (streams move with it, RFC 9113 §6.9.2; the connection does not), plus
 * the credit it sent, less the DATA it received. */
static int64_t outstanding(const tally *grants, const tally *data, uint32_t id)
{
    int64_t initial = 65535;
    for (int i = 0; id != 0 && i < data->settings_acks && i < 16; i++)
        if (grants->settings_iws[i])
            initial = grants->settings_iws[i];
    return initial + (int64_t)grants->wu[id] - (int64_t)data->data[id];
}

static void peaks(sim *m)
{
    for (uint32_t id = 0; id < NSID; id++) {
        int64_t so = outstanding(&m->s2c.out, &m->c2s.in, id);
        int64_t co = outstanding(&m->c2s.out, &m->s2c.in, id);
        if (so > m->s_peak[id])
            m->s_peak[id] = so;
        if (co > m->c_peak[id])
            m->c_peak[id] = co;
    }
    int fl = m->s2c.out.probes - m->c2s.in.probe_acks;
    if (fl > m->probes_in_flight_max)
        m->probes_in_flight_max = fl;
}

static long flush(sim *m, ep *from, link *l)
{
    long moved = 0;
    for (;;) {
        sluice_iovec iov[16];
        int n = sluice_session_output(from->s, iov, 16, MIB, m->now);
        if (n <= 0)
            return n < 0 ? n : moved;
        size_t sum = 0;
        for (int i = 0; i < n; i++) {
            int rv = link_put(l, iov[i].base, iov[i].len, m->now);
            if (rv != 0)
                return rv;
            sum += iov[i].len;
        }
        int rv = sluice_session_output_done(from->s, sum);
        if (rv != 0)
            return rv;
        moved += (long)sum;
        peaks(m);
    }
}

/* Deliver one segment that is due, if any; the receiver writes at once,
 * as a host does after each read. */
static long deliver(sim *m, link *l, ep *to, link *back)
{
    if (!l->head || l->head->at > m->now)
        return 0;
    seg *s = l->head;
    tally_bytes(&l->in, s->data, s->len, m->now);
    long rv = sluice_session_recv(to->s, s->data, s->len, m->now);
    long moved = (long)s->len;
    l->head = s->next;
    if (!l->head)
        l->tail = NULL;
    free(s);
    peaks(m);
    if (rv >= 0)
        rv = flush(m, to, back);
    return rv < 0 ? rv : moved;
}

enum { RUN_DONE = 0, RUN_IDLE = 1, RUN_TIME = 2 };

/* Run until done(m), until nothing is in flight, or until time `until`.
 * Time jumps from one arrival to the next. */
static int sim_run(sim *m, uint64_t until, int (*done)(const sim *))
{
    for (;;) {
        long moved;
        do {
            long a = flush(m, &m->c, &m->c2s), b = flush(m, &m->s, &m->s2c);
            long c = deliver(m, &m->c2s, &m->s, &m->s2c);
            long d = deliver(m, &m->s2c, &m->c, &m->c2s);
            if (a < 0 || b < 0 || c < 0 || d < 0)
                return (int)(a < 0 ? a : b < 0 ? b : c < 0 ? c : d);
            moved = a + b + c + d;
        } while (moved > 0);
        if (done && done(m))
            return RUN_DONE;
        uint64_t next = UINT64_MAX;
        if (m->c2s.head)
            next = m->c2s.head->at;
        if (m->s2c.head && m->s2c.head->at < next)
            next = m->s2c.head->at;
        if (next == UINT64_MAX)
            return RUN_IDLE;
        if (next > until)
            return RUN_TIME;
        m->now = next;
    }
}

static int sim_init(sim *m, const sluice_session_options *co,
                    const sluice_session_options *so, uint64_t one_way)
{
    memset(m, 0, sizeof(*m));
    m->c2s.delay = m->s2c.delay = one_way;
    m->c2s.out.skip = m->c2s.in.skip = 24;
    m->s.server = 1;
    m->c.auto_consume = co && co->auto_consume;
    m->s.auto_consume = so && so->auto_consume;
    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = on_headers;
    cb.on_data = on_data;
    cb.on_stream_end = on_stream_end;
    cb.on_stream_close = on_stream_close;
    cb.on_ping_ack = on_ping_ack;
    int rv = sluice_session_new(&m->c.s, SLUICE_ROLE_CLIENT, &cb, &m->c, co, NULL, 0);
    if (rv == 0)
        rv = sluice_session_new(&m->s.s, SLUICE_ROLE_SERVER, &cb, &m->s, so, NULL, 0);
    return rv;
}

static void sim_free(sim *m)
{
    sluice_session_free(m->c.s);
    sluice_session_free(m->s.s);
    link_free(&m->c2s);
    link_free(&m->s2c);
}

/* Client: a request, with a body of len bytes when len > 0. */
static int request(sim *m, const char *method, uint64_t len, uint32_t *id)
{
    sluice_nv nv[] = {nv_of(":method", method), nv_of(":scheme", "https"),
                      nv_of(":authority", "example.org"), nv_of(":path", "/up")};
    sluice_data_source src = {body_read, &m->c};
    int rv = sluice_session_submit_request(m->c.s, nv, 4, len ? &src : NULL, id);
    if (rv == 0 && *id < NSID) {
        m->c.to_send[*id] = len;
        m->c.opened[*id] = 1;
    }
    return rv;
}

static int all_closed(const sim *m)
{
    for (uint32_t id = 1; id < NSID; id += 2)
        if (m->c.opened[id] && !m->c.closed[id])
            return 0;
    return 1;
}

static void adaptive(sluice_session_options *o, uint32_t wmax, uint32_t cmax)
{
    sluice_session_options_init(o);
    o->window_adaptive = 1;
    o->window_max = wmax;
    o->connection_window_max = cmax;
}

/* ---- tests -------------------------------------------------------------------- */

/* 64 MiB up over a 20 ms RTT. The server starts at 64 KiB a stream, 1 MiB
 * for the connection, and grows both until the stream window is at
 * window_max, exactly and never above; the upload takes a fraction of the
 * 1024 RTTs a fixed 64 KiB window needs (next test). */
TEST(upload_grows_to_window_max)
{
    sim m;
    sluice_session_options so;
    adaptive(&so, 4 * MIB, 8 * MIB);
    CHECK_INT(sim_init(&m, NULL, &so, 10 * MS), 0);
    uint32_t id = 0;
    CHECK_INT(request(&m, "POST", 64ull * MIB, &id), 0);
    CHECK_INT(id, 1);
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_DONE);
    CHECK_INT(m.c.status[1], 200);
    CHECK_INT(m.s.received[1], 64ull * MIB);
    CHECK_INT(m.s_peak[1], 4 * MIB);
    CHECK(m.s_peak[0] >= 4 * MIB && m.s_peak[0] <= 8 * MIB);
    CHECK(m.now < 800 * MS);
    sluice_session_stats st = stats_of(m.s.s);
    CHECK_INT(st.rtt_ns, 20 * MS);
    CHECK_INT(st.recv_target_stream, 4 * MIB);
    CHECK(st.recv_target_conn >= 4 * MIB && st.recv_target_conn <= 8 * MIB);
    CHECK(st.recv_rate > 100ull * MIB); /* 4 MiB per 20 ms at the end */
    CHECK_INT(m.s.peak_buffered, 16384); /* consumed as it came */
    /* The client's windows were not touched: it is not adaptive. */
    CHECK_INT(m.c_peak[0], MIB);
    sim_free(&m);
}

/* window_adaptive = 0: no probe PING, the configured windows and no more,
 * one 64 KiB window per RTT; the RTT is still measured for the stats. */
TEST(fixed_windows_stay_fixed)
{
    sim m;
    CHECK_INT(sim_init(&m, NULL, NULL, 10 * MS), 0);
    uint32_t id = 0;
    CHECK_INT(request(&m, "POST", 4ull * MIB, &id), 0);
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_DONE);
    CHECK_INT(m.s.received[1], 4ull * MIB);
    CHECK_INT(m.s_peak[1], 65535);
    CHECK_INT(m.s_peak[0], MIB);
    CHECK_INT(m.s2c.out.probes + m.s2c.out.other_pings, 0);
    CHECK(m.now >= 64 * 20 * MS); /* 4 MiB / 64 KiB round trips */
    sluice_session_stats st = stats_of(m.s.s);
    CHECK_INT(st.rtt_ns, 20 * MS);
    CHECK_INT(st.recv_target_stream, 65535);
    CHECK_INT(st.recv_target_conn, MIB);
    CHECK(st.recv_rate > 0);
    sim_free(&m);
}

/* The probe: a PING of the right shape, one in flight at most, no more
 * often than SL_WTUNE_PROBE_GAP_NS, answered by the peer, and its ACK kept
 * from on_ping_ack — which still gets the application's own PING. */
TEST(probe_ping_format_and_ack_kept_from_application)
{
    sim m;
    sluice_session_options so;
    adaptive(&so, 16 * MIB, 64 * MIB);
    CHECK_INT(sim_init(&m, NULL, &so, 10 * MS), 0);
    uint32_t id = 0;
    CHECK_INT(request(&m, "POST", 256ull * MIB, &id), 0);
    CHECK_INT(sim_run(&m, 300 * MS, all_closed), RUN_TIME);
    CHECK_INT(sluice_session_submit_ping(m.s.s, (const uint8_t *)"app-ping"), 0);
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_DONE);
    CHECK_INT(m.s.received[1], 256ull * MIB);
    const tally *out = &m.s2c.out;
    CHECK(out->probes >= 3);
    CHECK_INT(out->bad_pings, 0);
    CHECK_INT(m.c2s.in.bad_pings, 0);
    for (int i = 0; i < out->probes && i < 64; i++) {
        uint8_t want[8] = {'s', 'l', '-', 'r', 't', 't', (uint8_t)(i >> 8), (uint8_t)i};
        CHECK_MEM(out->probe_opaque[i], 8, want, 8);
        if (i > 0)
            CHECK(out->probe_at[i] - out->probe_at[i - 1] >= SL_WTUNE_PROBE_GAP_NS);
    }
    CHECK_INT(m.c2s.in.probe_acks, out->probes); /* every probe answered */
    CHECK_INT(m.probes_in_flight_max, 1);
    CHECK_INT(out->other_pings, 1);
    CHECK_INT(m.s.app_ping_acks, 1);
    CHECK_MEM(m.s.app_ping, 8, "app-ping", 8);
    CHECK_INT(m.c.app_ping_acks, 0);
    CHECK_INT(stats_of(m.s.s).rtt_ns, 20 * MS);
    CHECK_INT(m.s_peak[1], 16 * MIB);
    sim_free(&m);
}

/* The application chose this stream's window: it stays, while the target
 * for new streams follows what is measured. */
TEST(explicit_stream_window_is_kept)
{
    sim m;
    sluice_session_options so;
    adaptive(&so, 16 * MIB, 64 * MIB);
    CHECK_INT(sim_init(&m, NULL, &so, 10 * MS), 0);
    m.s.fix_window = 200000;
    uint32_t id = 0;
    CHECK_INT(request(&m, "POST", 16ull * MIB, &id), 0);
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_DONE);
    CHECK_INT(m.s.received[1], 16ull * MIB);
    CHECK_INT(m.s_peak[1], 200000);
    CHECK_INT(m.s_peak[0], MIB);
    sluice_session_stats st = stats_of(m.s.s);
    /* 2 to 8/3 x what came per RTT: 200,000 less the credit withheld
     * (under a quarter of the window). */
    CHECK(st.recv_target_stream >= 300000 && st.recv_target_stream <= 533333);
    CHECK_INT(st.recv_target_conn, MIB);
    sim_free(&m);
}

/* The same for the connection's window: the tuner leaves it alone. */
TEST(explicit_connection_window_is_kept)
{
    sim m;
    sluice_session_options so;
    adaptive(&so, 16 * MIB, 64 * MIB);
    CHECK_INT(sim_init(&m, NULL, &so, 10 * MS), 0);
    m.s.fix_conn = 3 * MIB;
    uint32_t id = 0;
    CHECK_INT(request(&m, "POST", 64ull * MIB, &id), 0);
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_DONE);
    CHECK_INT(m.s.received[1], 64ull * MIB);
    CHECK_INT(m.s_peak[0], 3 * MIB);
    CHECK(m.s_peak[1] > 3 * MIB); /* the stream's own window still grew */
    sluice_session_stats st = stats_of(m.s.s);
    CHECK_INT(st.recv_target_conn, 3 * MIB);
    CHECK(st.recv_target_stream > 3 * MIB);
    sim_free(&m);
}

/* A larger INITIAL_WINDOW_SIZE of ours that the client has not yet
 * acknowledged when its upload starts: the stream gains the difference at
 * the ACK (RFC 9113 §6.9.2), so credit given before it would add up past
 * window_max. */
TEST(initial_window_change_in_flight_stays_within_max)
{
    sim m;
    sluice_session_options so;
    adaptive(&so, MIB, 4 * MIB);
    so.initial_window_size = MIB;
    CHECK_INT(sim_init(&m, NULL, &so, 10 * MS), 0);
    uint32_t id = 0;
    CHECK_INT(request(&m, "POST", 16ull * MIB, &id), 0);
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_DONE);
    CHECK_INT(m.s.received[1], 16ull * MIB);
    CHECK_INT(m.s_peak[1], MIB);
    CHECK(m.s_peak[0] <= 4 * MIB);
    CHECK_INT(stats_of(m.s.s).recv_target_stream, MIB);
    sim_free(&m);
}

/* An application that does not consume: no growth, and the peer can make
 * us hold one initial window and no more; consuming later resumes it. */
TEST(no_growth_without_consumption)
{
    sim m;
    sluice_session_options so;
    adaptive(&so, 16 * MIB, 64 * MIB);
    CHECK_INT(sim_init(&m, NULL, &so, 10 * MS), 0);
    m.s.hold = 1;
    uint32_t id = 0;
    CHECK_INT(request(&m, "POST", 8ull * MIB, &id), 0);
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_IDLE);
    sluice_session_stats st = stats_of(m.s.s);
    CHECK_INT(m.s.received[1], 65535);
    CHECK_INT(st.recv_buffered, 65535);
    CHECK_INT(st.recv_target_stream, 65535);
    CHECK_INT(st.recv_target_conn, MIB);
    CHECK_INT(m.s_peak[1], 65535);
    CHECK_INT(m.s2c.out.wu[1], 0);
    m.now += 5000 * MS;
    CHECK_INT(release(&m.s), 0);
    CHECK_INT(sim_run(&m, 120000 * MS, all_closed), RUN_DONE);
    CHECK_INT(m.s.received[1], 8ull * MIB);
    CHECK(stats_of(m.s.s).recv_target_stream > 65535);
    sim_free(&m);
}

/* Eight uploads at once: every stream within window_max, and all of them
 * within connection_window_max, which is less than 8 x window_max. */
TEST(concurrent_uploads_within_connection_max)
{
    sim m;
    sluice_session_options so;
    adaptive(&so, 2 * MIB, 6 * MIB);
    CHECK_INT(sim_init(&m, NULL, &so, 5 * MS), 0);
    m.s.hold = 1; /* fill the windows, then read */
    for (int i = 0; i < 8; i++) {
        uint32_t id = 0;
        CHECK_INT(request(&m, "POST", 16ull * MIB, &id), 0);
        CHECK_INT(id, 2 * i + 1);
    }
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_IDLE);
    CHECK_INT(stats_of(m.s.s).recv_buffered, 8 * 65535);
    CHECK_INT(release(&m.s), 0);
    CHECK_INT(sim_run(&m, 120000 * MS, all_closed), RUN_DONE);
    for (uint32_t id = 1; id < 16; id += 2) {
        CHECK_INT(m.s.received[id], 16ull * MIB);
        CHECK(m.s_peak[id] <= 2 * MIB);
    }
    CHECK(m.s_peak[0] <= 6 * MIB);
    CHECK_INT(m.s_peak[0], 6 * MIB);
    CHECK(m.s.peak_buffered <= 6 * MIB);
    sluice_session_stats st = stats_of(m.s.s);
    CHECK_INT(st.recv_target_stream, 2 * MIB);
    CHECK_INT(st.recv_target_conn, 6 * MIB);
    sim_free(&m);
}

/* The other direction, with auto_consume: a client downloading grows its
 * windows; the server answers the client's probes. */
TEST(download_with_auto_consume)
{
    sim m;
    sluice_session_options co;
    adaptive(&co, 8 * MIB, 16 * MIB);
    co.auto_consume = 1;
    CHECK_INT(sim_init(&m, &co, NULL, 10 * MS), 0);
    m.s.respond_len = 64ull * MIB;
    uint32_t id = 0;
    CHECK_INT(request(&m, "GET", 0, &id), 0);
    CHECK_INT(sim_run(&m, 60000 * MS, all_closed), RUN_DONE);
    CHECK_INT(m.c.status[1], 200);
    CHECK_INT(m.c.received[1], 64ull * MIB);
    CHECK_INT(m.c_peak[1], 8 * MIB);
    CHECK(m.c_peak[0] <= 16 * MIB);
    CHECK(m.c2s.out.probes >= 1);
    CHECK_INT(m.s2c.in.probe_acks, m.c2s.out.probes);
    CHECK_INT(m.c.app_ping_acks, 0);
    CHECK(m.now < 800 * MS);
    sluice_session_stats st = stats_of(m.c.s);
    CHECK_INT(st.rtt_ns, 20 * MS);
    CHECK_INT(st.recv_target_stream, 8 * MIB);
    sim_free(&m);
}

TEST(bad_adaptive_options_rejected)
{
    sluice_session *s = NULL;
    sluice_session_options o;
    adaptive(&o, 65535, 64 * MIB);
    o.window_min = 65536; /* above window_max */
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, NULL, NULL, &o, NULL, 0),
              SLUICE_ERR_INVAL);
    adaptive(&o, 0x80000000u, 64 * MIB);
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, NULL, NULL, &o, NULL, 0),
              SLUICE_ERR_INVAL);
    adaptive(&o, 16 * MIB, 65534);
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, NULL, NULL, &o, NULL, 0),
              SLUICE_ERR_INVAL);
    adaptive(&o, 16 * MIB, 64 * MIB);
    o.window_min = 0;
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, NULL, NULL, &o, NULL, 0),
              SLUICE_ERR_INVAL);
    /* Not adaptive: the bounds are not used, so not checked. */
    o.window_adaptive = 0;
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, NULL, NULL, &o, NULL, 0), 0);
    sluice_session_free(s);
}
