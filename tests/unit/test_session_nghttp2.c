/* test_session_nghttp2.c — sluice sessions against libnghttp2 in memory: a
 * sluice server driven by nghttp2's client, a sluice client against
 * nghttp2's server; bodies checked byte for byte, both sides' views checked. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>

#include "t.h"
#include "sluice.h"

#define MAXID 2048u /* stream ids the tests use stay below this */
#define MIB (1024u * 1024u)
#define MS 1000000ull

/* ---- body pattern ----------------------------------------------------------- */

/* Bodies are a pseudo-random byte sequence read at an offset given by the
 * stream, so a chunk that is lost, repeated or misplaced never matches.
 * The period is prime and the array is longer than any one chunk, so a
 * chunk is always one contiguous slice (a sluice source can lend it). */
#define PAT_PERIOD 65521u
#define PAT_SPAN 65536u
static uint8_t pat[PAT_PERIOD + PAT_SPAN];

static void pat_init(void)
{
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof(pat); i++) {
        if (i < PAT_PERIOD) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            pat[i] = (uint8_t)(x >> 24);
        } else {
            pat[i] = pat[i - PAT_PERIOD];
        }
    }
}

static const uint8_t *pat_at(uint32_t seed, uint64_t off)
{
    return pat + (off + seed) % PAT_PERIOD;
}

static int pat_ok(uint32_t seed, uint64_t off, const uint8_t *d, size_t len)
{
    while (len > 0) {
        size_t n = len < PAT_SPAN ? len : PAT_SPAN;
        if (memcmp(d, pat_at(seed, off), n) != 0)
            return 0;
        d += n;
        off += n;
        len -= n;
    }
    return 1;
}

static uint32_t req_seed(uint32_t id) { return id * 7919u + 1; }
static uint32_t res_seed(uint32_t id) { return id * 104729u + 3; }

/* ---- per-stream record, the same for both libraries --------------------------- */

/* A request's :path says what the server answers: "/<length>/<flags>".
 * Flags: t trailers after the body (submitted once the source is done),
 * T trailers submitted with the response, i a 103 first, d a body source
 * that keeps saying "not now", x answer before the request body ends,
 * c send content-length, L a 20000-byte field (HEADERS + CONTINUATION)
 * and a few that HPACK indexes. */
typedef struct rec {
    int used;
    uint64_t res_len;
    char flags[8];
    int head;
    /* the body this side sends */
    uint64_t tx_len, tx_off;
    uint32_t tx_seed;
    int tx_trailers, tx_defer, tx_waiting, trailers_due, trailers_sent;
    unsigned reads;
    /* the body the peer sends */
    uint64_t rx;
    uint32_t rx_seed;
    int rx_bad;
    size_t unconsumed, max_unconsumed;
    /* events */
    int cur_status, status, info_status, infos, finals, trailers, ended, closed, responded;
    uint32_t close_code, rst_code;
    int rst_recv;
    char trailer_value[16]; /* grpc-status or x-req-trailer */
} rec;

static int has_flag(const rec *r, char f)
{
    return strchr(r->flags, f) != NULL;
}

static char large_value[20001]; /* 'L': more than one 16384-byte frame */

static const char *large(void)
{
    if (!large_value[0])
        memset(large_value, 'v', sizeof(large_value) - 1);
    return large_value;
}

static void parse_path(rec *r, const uint8_t *p, size_t len)
{
    char buf[64];
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, p, len);
    buf[len] = 0;
    char *end = buf;
    r->res_len = buf[0] == '/' ? strtoull(buf + 1, &end, 10) : 0;
    r->flags[0] = 0;
    if (*end == '/')
        snprintf(r->flags, sizeof(r->flags), "%s", end + 1);
}

static int parse_status(const uint8_t *v, size_t len)
{
    int st = 0;
    for (size_t i = 0; i < len && i < 3; i++)
        st = st * 10 + (v[i] - '0');
    return st;
}

static void keep_trailer(rec *r, const uint8_t *v, size_t len)
{
    if (len >= sizeof(r->trailer_value))
        len = sizeof(r->trailer_value) - 1;
    memcpy(r->trailer_value, v, len);
    r->trailer_value[len] = 0;
}

static void rx_chunk(rec *r, const uint8_t *d, size_t len)
{
    if (!pat_ok(r->rx_seed, r->rx, d, len))
        r->rx_bad = 1;
    r->rx += len;
}

/* ---- the sluice side ---------------------------------------------------------- */

typedef struct slep {
    sluice_session *s;
    int role;
    rec *r;
    uint32_t max_id;
    int auto_respond;     /* server: answer each request as it comes */
    int consume_later;    /* 0: consume in on_data; 1: sl_tick does, consume_step a round */
    size_t consume_step;
    long resume_every;    /* rounds between resuming waiting sources */
    size_t read_cap;      /* most bytes a source gives per read (0: no cap) */
    uint64_t tx_total, sent_total; /* lent by sources / reported by on_data_sent */
    int closes, goaways, ping_acks, requests, peak_open, fail;
    uint32_t goaway_last[4], goaway_code[4];
    uint8_t ping_opaque[8];
    char lastlog[256];
} slep;

static sluice_nv snv(const char *n, const char *v)
{
    sluice_nv nv = {(const uint8_t *)n, (const uint8_t *)v, strlen(n), strlen(v), 0};
    return nv;
}

static int snv_is(const sluice_nv *nv, const char *name)
{
    return nv->name_len == strlen(name) && memcmp(nv->name, name, nv->name_len) == 0;
}

static sluice_session_stats stats_of(const sluice_session *s)
{
    sluice_session_stats st;
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    sluice_session_get_stats(s, &st);
    return st;
}

static rec *sl_rec(slep *e, uint32_t id)
{
    if (id == 0 || id >= MAXID) {
        e->fail = 1;
        return &e->r[0];
    }
    if (id > e->max_id)
        e->max_id = id;
    return &e->r[id];
}

/* The body has ended: END_STREAM, or trailers to follow. */
static void mark_eof(rec *r, uint32_t *flags)
{
    *flags |= SLUICE_DATA_EOF;
    if (r->tx_trailers) {
        *flags |= SLUICE_DATA_NO_END_STREAM;
        if (!r->trailers_sent)
            r->trailers_due = 1;
    }
}

static long sl_read(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                    uint32_t *flags, void *ud)
{
    (void)s;
    slep *e = ud;
    rec *r = sl_rec(e, id);
    if (max == 0) { /* the window is closed: only an ended body can say so */
        if (r->tx_off == r->tx_len)
            mark_eof(r, flags);
        return 0;
    }
    if (r->tx_defer && r->tx_off < r->tx_len) {
        /* Every third read says AGAIN, every third "nothing" (0 without EOF). */
        unsigned k = r->reads++ % 3;
        if (k < 2) {
            r->tx_waiting = 1;
            return k == 0 ? SLUICE_ERR_AGAIN : 0;
        }
    }
    uint64_t left = r->tx_len - r->tx_off;
    size_t n = left < max ? (size_t)left : max;
    if (n > PAT_SPAN)
        n = PAT_SPAN;
    if (e->read_cap && n > e->read_cap)
        n = e->read_cap;
    *data = pat_at(r->tx_seed, r->tx_off);
    r->tx_off += n;
    e->tx_total += n;
    if (r->tx_off == r->tx_len)
        mark_eof(r, flags);
    return (long)n;
}

static int sl_trailers(slep *e, uint32_t id)
{
    rec *r = sl_rec(e, id);
    r->trailers_due = 0;
    r->trailers_sent = 1;
    sluice_nv t[2];
    size_t n = 0;
    if (e->role == SLUICE_ROLE_SERVER) {
        t[n++] = snv("grpc-status", "0");
        t[n++] = snv("grpc-message", "ok");
    } else {
        t[n++] = snv("x-req-trailer", "done");
    }
    return sluice_session_submit_trailers(e->s, id, t, n);
}

static int sl_respond(slep *e, uint32_t id)
{
    rec *r = sl_rec(e, id);
    if (r->responded)
        return 0;
    r->responded = 1;
    if (has_flag(r, 'i')) {
        sluice_nv info[] = {snv(":status", "103"), snv("link", "</a.css>; rel=preload")};
        int rv = sluice_session_submit_info(e->s, id, info, 2);
        if (rv != 0)
            return rv;
    }
    char cl[24];
    snprintf(cl, sizeof(cl), "%llu", (unsigned long long)r->res_len);
    sluice_nv nv[6];
    size_t n = 0;
    nv[n++] = snv(":status", "200");
    nv[n++] = snv("content-type", "application/grpc");
    if (r->head || has_flag(r, 'c'))
        nv[n++] = snv("content-length", cl);
    if (has_flag(r, 'L')) {
        nv[n++] = snv("x-large", large());
        nv[n++] = snv("server", "sluice");
        nv[n++] = snv("cache-control", "max-age=60");
    }
    r->tx_len = r->head ? 0 : r->res_len;
    r->tx_seed = res_seed(id);
    r->tx_trailers = !r->head && (has_flag(r, 't') || has_flag(r, 'T'));
    r->tx_defer = has_flag(r, 'd');
    int body = !r->head && (r->tx_len > 0 || r->tx_trailers);
    sluice_data_source src = {sl_read, e};
    int rv = sluice_session_submit_response(e->s, id, nv, n, body ? &src : NULL);
    if (rv == 0 && r->tx_trailers && has_flag(r, 'T'))
        rv = sl_trailers(e, id);
    return rv;
}

static int sl_on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv,
                         size_t n, int end_stream, void *ud)
{
    slep *e = ud;
    rec *r = sl_rec(e, id);
    switch (kind) {
    case SLUICE_HEADERS_REQUEST: {
        memset(r, 0, sizeof(*r));
        r->used = 1;
        r->rx_seed = req_seed(id);
        e->requests++;
        for (size_t i = 0; i < n; i++) {
            if (snv_is(&nv[i], ":method"))
                r->head = nv[i].value_len == 4 && memcmp(nv[i].value, "HEAD", 4) == 0;
            if (snv_is(&nv[i], ":path"))
                parse_path(r, nv[i].value, nv[i].value_len);
        }
        int open = (int)stats_of(s).streams_open;
        if (open > e->peak_open)
            e->peak_open = open;
        if (e->auto_respond && (end_stream || has_flag(r, 'x')))
            return sl_respond(e, id);
        return 0;
    }
    case SLUICE_HEADERS_INFO:
    case SLUICE_HEADERS_RESPONSE:
        for (size_t i = 0; i < n; i++)
            if (snv_is(&nv[i], ":status")) {
                int st = parse_status(nv[i].value, nv[i].value_len);
                if (kind == SLUICE_HEADERS_INFO) {
                    r->infos++;
                    r->info_status = st;
                } else {
                    r->finals++;
                    r->status = st;
                }
            }
        return 0;
    case SLUICE_HEADERS_TRAILERS:
        r->trailers++;
        for (size_t i = 0; i < n; i++)
            if (snv_is(&nv[i], "grpc-status") || snv_is(&nv[i], "x-req-trailer"))
                keep_trailer(r, nv[i].value, nv[i].value_len);
        return 0;
    }
    e->fail = 1;
    return 0;
}

static int sl_on_data(sluice_session *s, uint32_t id, const uint8_t *d, size_t len, void *ud)
{
    slep *e = ud;
    rec *r = sl_rec(e, id);
    rx_chunk(r, d, len);
    if (e->consume_later) {
        r->unconsumed += len;
        if (r->unconsumed > r->max_unconsumed)
            r->max_unconsumed = r->unconsumed;
    } else if (sluice_session_consume(s, id, len) != 0) {
        e->fail = 1;
    }
    return 0;
}

static int sl_on_end(sluice_session *s, uint32_t id, void *ud)
{
    (void)s;
    slep *e = ud;
    rec *r = sl_rec(e, id);
    r->ended = 1;
    if (e->role == SLUICE_ROLE_SERVER && e->auto_respond)
        return sl_respond(e, id);
    return 0;
}

static int sl_on_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    (void)s;
    slep *e = ud;
    rec *r = sl_rec(e, id);
    if (r->closed)
        e->fail = 1; /* closed twice */
    r->closed = 1;
    r->close_code = code;
    r->unconsumed = 0; /* closing gave the window back */
    r->tx_waiting = 0;
    r->trailers_due = 0;
    e->closes++;
    return 0;
}

static int sl_on_goaway(sluice_session *s, uint32_t last, uint32_t code, const uint8_t *d,
                        size_t len, void *ud)
{
    (void)s; (void)d; (void)len;
    slep *e = ud;
    if (e->goaways < 4) {
        e->goaway_last[e->goaways] = last;
        e->goaway_code[e->goaways] = code;
    }
    e->goaways++;
    return 0;
}

static int sl_on_ping_ack(sluice_session *s, const uint8_t opaque[8], void *ud)
{
    (void)s;
    slep *e = ud;
    e->ping_acks++;
    memcpy(e->ping_opaque, opaque, 8);
    return 0;
}

static void sl_on_data_sent(sluice_session *s, uint32_t id, size_t len, void *ud)
{
    (void)s; (void)id;
    ((slep *)ud)->sent_total += len;
}

static void sl_on_log(sluice_session *s, int level, const char *msg, void *ud)
{
    (void)s; (void)level;
    slep *e = ud;
    snprintf(e->lastlog, sizeof(e->lastlog), "%s", msg);
    if (getenv("SL_TEST_VERBOSE"))
        fprintf(stderr, "sluice: %s\n", msg);
}

static sluice_session_callbacks sl_callbacks(void)
{
    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = sl_on_headers;
    cb.on_data = sl_on_data;
    cb.on_stream_end = sl_on_end;
    cb.on_stream_close = sl_on_close;
    cb.on_goaway = sl_on_goaway;
    cb.on_ping_ack = sl_on_ping_ack;
    cb.on_data_sent = sl_on_data_sent;
    cb.on_log = sl_on_log;
    return cb;
}

/* Client: a request; body bytes of pattern for POST. rflags: t/T request
 * trailers (late/early), d deferring source. */
static int sl_request(slep *e, const char *method, const char *path, uint64_t body,
                      const char *rflags, uint32_t *out_id)
{
    sluice_nv nv[6];
    size_t n = 0;
    nv[n++] = snv(":method", method);
    nv[n++] = snv(":scheme", "https");
    nv[n++] = snv(":authority", "example.org");
    nv[n++] = snv(":path", path);
    int trailers = strchr(rflags, 't') || strchr(rflags, 'T');
    if (trailers)
        nv[n++] = snv("te", "trailers");
    int post = strcmp(method, "POST") == 0;
    sluice_data_source src = {sl_read, e};
    uint32_t id = 0;
    int rv = sluice_session_submit_request(e->s, nv, n, post ? &src : NULL, &id);
    if (rv != 0)
        return rv;
    rec *r = sl_rec(e, id);
    memset(r, 0, sizeof(*r));
    r->used = 1;
    parse_path(r, (const uint8_t *)path, strlen(path));
    r->head = strcmp(method, "HEAD") == 0;
    r->rx_seed = res_seed(id);
    r->tx_seed = req_seed(id);
    r->tx_len = post ? body : 0;
    r->tx_trailers = post && trailers;
    r->tx_defer = strchr(rflags, 'd') != NULL;
    if (post && strchr(rflags, 'T'))
        rv = sl_trailers(e, id);
    if (out_id)
        *out_id = id;
    return rv;
}

/* Consume, resume sources and send due trailers: one round of the
 * application's work. Returns how many things are still in progress. */
static int sl_tick(slep *e, long round)
{
    int busy = 0;
    for (uint32_t id = 1; id <= e->max_id; id++) {
        rec *r = &e->r[id];
        if (!r->used || r->closed)
            continue;
        if (r->unconsumed && e->consume_step) {
            size_t n = r->unconsumed < e->consume_step ? r->unconsumed : e->consume_step;
            if (sluice_session_consume(e->s, id, n) != 0)
                e->fail = 1;
            r->unconsumed -= n;
            busy++;
        }
        if (r->tx_waiting) {
            busy++;
            if (e->resume_every && round % e->resume_every == 0) {
                r->tx_waiting = 0;
                if (sluice_session_resume_data(e->s, id) != 0)
                    e->fail = 1;
            }
        }
        if (r->trailers_due) {
            busy++;
            if (sl_trailers(e, id) != 0)
                e->fail = 1;
        }
    }
    return busy;
}

/* ---- the nghttp2 side ---------------------------------------------------------- */

typedef struct ngep {
    nghttp2_session *ng;
    int server;
    rec *r;
    int32_t max_id;
    int auto_respond;
    int manual_consume; /* NGHTTP2_OPT_NO_AUTO_WINDOW_UPDATE: ng_tick consumes */
    size_t consume_step;
    long resume_every;
    size_t read_cap;
    int invalid, lib_errors, fail;
    int goaways;
    int32_t goaway_last[4];
    uint32_t goaway_code[4];
    int goaway_sent;
    uint32_t goaway_sent_code;
    int rst_sent;
    uint32_t rst_sent_code;
    int pings, ping_acks, settings_acks;
    uint8_t ping_opaque[8];
    int open, peak_open;
    uint64_t rx_total;
} ngep;

#define NGNV(n, v)                                                                  \
    {(uint8_t *)(uintptr_t)(n), (uint8_t *)(uintptr_t)(v), strlen(n), strlen(v),  \
     NGHTTP2_NV_FLAG_NONE}

static rec *ng_rec(ngep *e, int32_t id)
{
    if (id <= 0 || (uint32_t)id >= MAXID) {
        e->fail = 1;
        return &e->r[0];
    }
    if (id > e->max_id)
        e->max_id = id;
    return &e->r[id];
}

static ssize_t ng_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)src;
    ngep *e = ud;
    rec *r = ng_rec(e, id);
    if (r->tx_defer && r->tx_off < r->tx_len && r->reads++ % 2 == 0) {
        r->tx_waiting = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    uint64_t left = r->tx_len - r->tx_off;
    size_t n = left < len ? (size_t)left : len;
    if (e->read_cap && n > e->read_cap)
        n = e->read_cap;
    memcpy(buf, pat_at(r->tx_seed, r->tx_off), n);
    r->tx_off += n;
    if (r->tx_off == r->tx_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (r->tx_trailers) {
            nghttp2_nv srv[] = {NGNV("grpc-status", "0"), NGNV("grpc-message", "ok")};
            nghttp2_nv cli[] = {NGNV("x-req-trailer", "done")};
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            int rv = e->server ? nghttp2_submit_trailer(ng, id, srv, 2)
                               : nghttp2_submit_trailer(ng, id, cli, 1);
            if (rv != 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
            r->trailers_sent = 1;
        }
    }
    return (ssize_t)n;
}

static int ng_respond(ngep *e, int32_t id)
{
    rec *r = ng_rec(e, id);
    if (r->responded)
        return 0;
    r->responded = 1;
    if (has_flag(r, 'i')) {
        nghttp2_nv info[] = {NGNV(":status", "103"), NGNV("link", "</a.css>; rel=preload")};
        if (nghttp2_submit_headers(e->ng, NGHTTP2_FLAG_NONE, id, NULL, info, 2, NULL) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    char cl[24];
    snprintf(cl, sizeof(cl), "%llu", (unsigned long long)r->res_len);
    nghttp2_nv nv[6] = {NGNV(":status", "200"), NGNV("content-type", "application/grpc"),
                        NGNV("content-length", cl)};
    size_t n = r->head || has_flag(r, 'c') ? 3 : 2;
    if (has_flag(r, 'L')) {
        nghttp2_nv more[3] = {NGNV("x-large", large()), NGNV("server", "nghttp2"),
                              NGNV("cache-control", "max-age=60")};
        memcpy(nv + n, more, sizeof(more));
        n += 3;
    }
    r->tx_len = r->head ? 0 : r->res_len;
    r->tx_seed = res_seed((uint32_t)id);
    r->tx_trailers = !r->head && (has_flag(r, 't') || has_flag(r, 'T'));
    r->tx_defer = has_flag(r, 'd');
    int body = !r->head && (r->tx_len > 0 || r->tx_trailers);
    nghttp2_data_provider prd;
    prd.source.ptr = NULL;
    prd.read_callback = ng_read;
    if (nghttp2_submit_response(e->ng, id, nv, n, body ? &prd : NULL) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int ng_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ng;
    ngep *e = ud;
    rec *r = ng_rec(e, f->hd.stream_id);
    if (e->server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        memset(r, 0, sizeof(*r));
        r->used = 1;
        r->rx_seed = req_seed((uint32_t)f->hd.stream_id);
        if (++e->open > e->peak_open)
            e->peak_open = e->open;
    }
    r->cur_status = 0;
    return 0;
}

static int name_is(const uint8_t *name, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

static int ng_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud)
{
    (void)ng; (void)flags;
    ngep *e = ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    rec *r = ng_rec(e, f->hd.stream_id);
    if (e->server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (name_is(name, namelen, ":method"))
            r->head = name_is(value, valuelen, "HEAD");
        if (name_is(name, namelen, ":path"))
            parse_path(r, value, valuelen);
    }
    if (name_is(name, namelen, ":status"))
        r->cur_status = parse_status(value, valuelen);
    if (name_is(name, namelen, "grpc-status") || name_is(name, namelen, "x-req-trailer"))
        keep_trailer(r, value, valuelen);
    return 0;
}

static int ng_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ng;
    ngep *e = ud;
    int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS: {
        rec *r = ng_rec(e, f->hd.stream_id);
        if (e->server) {
            if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
                r->trailers++;
        } else if (r->cur_status && r->cur_status < 200) {
            r->infos++;
            r->info_status = r->cur_status;
        } else if (r->cur_status) {
            r->finals++;
            r->status = r->cur_status;
        } else {
            r->trailers++;
        }
        if (end)
            r->ended = 1;
        if (e->server && e->auto_respond && (end || has_flag(r, 'x')))
            return ng_respond(e, f->hd.stream_id);
        break;
    }
    case NGHTTP2_DATA:
        if (end) {
            rec *r = ng_rec(e, f->hd.stream_id);
            r->ended = 1;
            if (e->server && e->auto_respond)
                return ng_respond(e, f->hd.stream_id);
        }
        break;
    case NGHTTP2_GOAWAY:
        if (e->goaways < 4) {
            e->goaway_last[e->goaways] = f->goaway.last_stream_id;
            e->goaway_code[e->goaways] = f->goaway.error_code;
        }
        e->goaways++;
        break;
    case NGHTTP2_PING:
        if (f->hd.flags & NGHTTP2_FLAG_ACK) {
            e->ping_acks++;
            memcpy(e->ping_opaque, f->ping.opaque_data, 8);
        } else {
            e->pings++;
        }
        break;
    case NGHTTP2_SETTINGS:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            e->settings_acks++;
        break;
    case NGHTTP2_RST_STREAM: {
        rec *r = ng_rec(e, f->hd.stream_id);
        r->rst_recv = 1;
        r->rst_code = f->rst_stream.error_code;
        break;
    }
    }
    return 0;
}

static int ng_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d,
                      size_t len, void *ud)
{
    (void)ng; (void)flags;
    ngep *e = ud;
    rec *r = ng_rec(e, id);
    rx_chunk(r, d, len);
    e->rx_total += len;
    if (e->manual_consume) {
        r->unconsumed += len;
        if (r->unconsumed > r->max_unconsumed)
            r->max_unconsumed = r->unconsumed;
    }
    return 0;
}

static int ng_on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    (void)ng;
    ngep *e = ud;
    rec *r = ng_rec(e, id);
    if (r->closed)
        e->fail = 1;
    r->closed = 1;
    r->close_code = code;
    r->tx_waiting = 0;
    if (e->server)
        e->open--;
    return 0;
}

static int ng_on_invalid(nghttp2_session *ng, const nghttp2_frame *f, int err, void *ud)
{
    (void)ng;
    ngep *e = ud;
    e->invalid++;
    fprintf(stderr, "nghttp2: invalid frame type %u on stream %d: %s\n", f->hd.type,
            f->hd.stream_id, nghttp2_strerror(err));
    return 0;
}

static int ng_on_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ng;
    ngep *e = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        e->goaway_sent++;
        e->goaway_sent_code = f->goaway.error_code;
    }
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        e->rst_sent++;
        e->rst_sent_code = f->rst_stream.error_code;
    }
    return 0;
}

static int ng_on_error(nghttp2_session *ng, int code, const char *msg, size_t len, void *ud)
{
    (void)ng;
    ngep *e = ud;
    e->lib_errors++;
    fprintf(stderr, "nghttp2: error %d: %.*s\n", code, (int)len, msg);
    return 0;
}

/* Client: a request; POST sends body bytes of pattern (rflags t: trailers,
 * d: deferring provider). Returns the stream id or a negative error. */
static int32_t ng_request(ngep *e, const char *method, const char *path, uint64_t body,
                          const char *rflags)
{
    nghttp2_nv nv[5] = {NGNV(":method", method), NGNV(":scheme", "https"),
                        NGNV(":authority", "example.org"), NGNV(":path", path),
                        NGNV("te", "trailers")};
    int post = strcmp(method, "POST") == 0;
    int trailers = post && strchr(rflags, 't') != NULL;
    nghttp2_data_provider prd;
    prd.source.ptr = NULL;
    prd.read_callback = ng_read;
    int32_t id = nghttp2_submit_request(e->ng, NULL, nv, trailers ? 5 : 4, post ? &prd : NULL,
                                        NULL);
    if (id < 0)
        return id;
    rec *r = ng_rec(e, id);
    memset(r, 0, sizeof(*r));
    r->used = 1;
    parse_path(r, (const uint8_t *)path, strlen(path));
    r->head = strcmp(method, "HEAD") == 0;
    r->rx_seed = res_seed((uint32_t)id);
    r->tx_seed = req_seed((uint32_t)id);
    r->tx_len = post ? body : 0;
    r->tx_trailers = trailers;
    r->tx_defer = strchr(rflags, 'd') != NULL;
    return id;
}

static int ng_tick(ngep *e, long round)
{
    int busy = 0;
    for (int32_t id = 1; id <= e->max_id; id++) {
        rec *r = &e->r[id];
        if (!r->used)
            continue;
        /* Closed streams too: their unread bytes still hold connection window. */
        if (e->manual_consume && r->unconsumed && e->consume_step) {
            size_t n = r->unconsumed < e->consume_step ? r->unconsumed : e->consume_step;
            if (nghttp2_session_consume(e->ng, id, n) != 0)
                e->fail = 1;
            r->unconsumed -= n;
            busy++;
        }
        if (r->tx_waiting && !r->closed) {
            busy++;
            if (e->resume_every && round % e->resume_every == 0) {
                r->tx_waiting = 0;
                if (nghttp2_session_resume_data(e->ng, id) != 0)
                    e->fail = 1;
            }
        }
    }
    return busy;
}

/* ---- the connection -------------------------------------------------------------- */

typedef struct conn conn;
struct conn {
    slep sl;
    ngep ng;
    uint64_t now;
    long round;
    size_t chunk;        /* max_bytes of each sluice_session_output call */
    int (*hook)(conn *c); /* the test's own work each round; returns "busy" */
    long hook_arg;
    long sl_err, ng_err;
};

static conn *conn_new(int sl_role, const sluice_session_options *o,
                      const nghttp2_settings_entry *iv, size_t niv, int ng_manual)
{
    pat_init();
    conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->sl.r = calloc(MAXID, sizeof(rec));
    c->ng.r = calloc(MAXID, sizeof(rec));
    c->sl.role = sl_role;
    c->sl.auto_respond = c->ng.auto_respond = 1;
    c->sl.resume_every = c->ng.resume_every = 3;
    c->ng.server = sl_role == SLUICE_ROLE_CLIENT;
    c->ng.manual_consume = ng_manual;
    c->ng.consume_step = 1u << 30;
    c->chunk = 65536;
    sluice_session_callbacks cb = sl_callbacks();
    int rv = sluice_session_new(&c->sl.s, sl_role, &cb, &c->sl, o, NULL, 0);

    nghttp2_session_callbacks *ncb;
    nghttp2_session_callbacks_new(&ncb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(ncb, ng_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(ncb, ng_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(ncb, ng_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(ncb, ng_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(ncb, ng_on_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(ncb, ng_on_invalid);
    nghttp2_session_callbacks_set_on_frame_send_callback(ncb, ng_on_send);
    nghttp2_session_callbacks_set_error_callback2(ncb, ng_on_error);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    if (ng_manual)
        nghttp2_option_set_no_auto_window_update(opt, 1);
    /* Until our SETTINGS arrive nghttp2 assumes 100; let it assume more,
     * so a test can send past sluice's limit. */
    nghttp2_option_set_peer_max_concurrent_streams(opt, 1000);
    int nrv = c->ng.server ? nghttp2_session_server_new2(&c->ng.ng, ncb, &c->ng, opt)
                           : nghttp2_session_client_new2(&c->ng.ng, ncb, &c->ng, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(ncb);
    if (nrv == 0)
        nrv = nghttp2_submit_settings(c->ng.ng, NGHTTP2_FLAG_NONE, iv, niv);
    if (rv != 0 || nrv != 0 || !c->sl.r || !c->ng.r) {
        fprintf(stderr, "conn_new: sluice %d nghttp2 %d\n", rv, nrv);
        return NULL;
    }
    return c;
}

static void conn_free(conn *c)
{
    if (!c)
        return;
    sluice_session_free(c->sl.s);
    nghttp2_session_del(c->ng.ng);
    free(c->sl.r);
    free(c->ng.r);
    free(c);
}

/* sluice → nghttp2, at most budget bytes. */
static long sl_to_ng(conn *c, size_t budget)
{
    long moved = 0;
    while (budget > 0) {
        sluice_iovec iov[16];
        size_t max = c->chunk < budget ? c->chunk : budget;
        int k = sluice_session_output(c->sl.s, iov, 16, max, c->now);
        if (k < 0) {
            c->sl_err = k;
            return k;
        }
        if (k == 0)
            break;
        size_t sum = 0;
        for (int i = 0; i < k; i++) {
            ssize_t r = nghttp2_session_mem_recv(c->ng.ng, iov[i].base, iov[i].len);
            if (r < 0 || (size_t)r != iov[i].len) {
                c->ng_err = r < 0 ? (long)r : -1;
                sluice_session_output_done(c->sl.s, sum);
                return -1;
            }
            sum += iov[i].len;
        }
        if (sluice_session_output_done(c->sl.s, sum) != 0) {
            c->sl_err = SLUICE_ERR_INTERNAL;
            return -1;
        }
        moved += (long)sum;
        budget -= sum;
    }
    return moved;
}

/* nghttp2 → sluice, everything nghttp2 has to say. */
static long ng_to_sl(conn *c)
{
    long moved = 0;
    for (int i = 0; i < 100000; i++) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->ng.ng, &p);
        if (n < 0) {
            c->ng_err = (long)n;
            return -1;
        }
        if (n == 0)
            break;
        long rv = sluice_session_recv(c->sl.s, p, (size_t)n, c->now);
        if (rv != n) {
            c->sl_err = rv < 0 ? rv : SLUICE_ERR_INTERNAL;
            return -1;
        }
        moved += n;
    }
    return moved;
}

static long pump_round(conn *c)
{
    long a = ng_to_sl(c);
    if (a < 0)
        return a;
    long b = sl_to_ng(c, SIZE_MAX);
    if (b < 0)
        return b;
    if (sluice_session_next_deadline(c->sl.s) <= c->now &&
        sluice_session_handle_timeout(c->sl.s, c->now) < 0)
        c->sl_err = SLUICE_ERR_INTERNAL;
    return a + b;
}

/* Move bytes and do the applications' work until nothing happens any more.
 * 0 when quiet, 1 if still busy after max_rounds, -1 on an error. */
static int run(conn *c, long max_rounds)
{
    for (long i = 0; i < max_rounds; i++) {
        long m = pump_round(c);
        if (m < 0)
            return -1;
        int busy = sl_tick(&c->sl, c->round) + ng_tick(&c->ng, c->round);
        if (c->hook)
            busy += c->hook(c);
        c->round++;
        c->now += MS;
        if (m == 0 && busy == 0)
            return 0;
    }
    return 1;
}

/* ---- checks ------------------------------------------------------------------------ */

/* Neither side saw anything wrong: no error, nghttp2 accepted every frame
 * sluice sent and did not end the connection. */
static int clean(conn *c)
{
    int ok = 1;
    if (c->sl_err) {
        T_FAIL("sluice error %ld (%s); last log: %s", c->sl_err,
               sluice_strerror((int)c->sl_err), c->sl.lastlog);
        ok = 0;
    }
    if (c->ng_err) {
        T_FAIL("nghttp2 error %ld (%s)", c->ng_err, nghttp2_strerror((int)c->ng_err));
        ok = 0;
    }
    if (c->ng.invalid || c->ng.lib_errors) {
        T_FAIL("nghttp2 rejected %d frames, %d errors", c->ng.invalid, c->ng.lib_errors);
        ok = 0;
    }
    if (c->ng.goaway_sent && c->ng.goaway_sent_code != NGHTTP2_NO_ERROR) {
        T_FAIL("nghttp2 sent GOAWAY %u", c->ng.goaway_sent_code);
        ok = 0;
    }
    if (c->sl.fail || c->ng.fail) {
        T_FAIL("a callback saw something wrong (sluice %d, nghttp2 %d); last log: %s",
               c->sl.fail, c->ng.fail, c->sl.lastlog);
        ok = 0;
    }
    return ok;
}

/* sluice holds nothing any more: no stream, no queued or unconsumed byte. */
static int sl_idle(const slep *e)
{
    sluice_session_stats st = stats_of(e->s);
    if (st.streams_open || st.buffered_out || st.recv_buffered) {
        T_FAIL("sluice not idle: %u streams, %zu queued, %zu unconsumed", st.streams_open,
               st.buffered_out, st.recv_buffered);
        return 0;
    }
    return 1;
}

/* A stream finished without error and its body was exactly rx bytes. */
static int done_ok(const rec *r, uint32_t id, uint64_t rx)
{
    if (!r->used || !r->closed || r->close_code != 0 || r->rx_bad || r->rx != rx) {
        T_FAIL("stream %u: used %d closed %d code %u bad %d rx %llu (want %llu)", id, r->used,
               r->closed, r->close_code, r->rx_bad, (unsigned long long)r->rx,
               (unsigned long long)rx);
        return 0;
    }
    return 1;
}

/* Frees the sessions, then checks every byte a sluice source lent was
 * reported back through on_data_sent. */
static int finish(conn *c)
{
    sluice_session_free(c->sl.s);
    c->sl.s = NULL;
    int ok = c->sl.sent_total == c->sl.tx_total;
    if (!ok)
        T_FAIL("sluice lent %llu body bytes, reported %llu",
               (unsigned long long)c->sl.tx_total, (unsigned long long)c->sl.sent_total);
    conn_free(c);
    return ok;
}

static char *pathf(char *buf, size_t cap, uint64_t len, const char *flags)
{
    snprintf(buf, cap, "/%llu/%s", (unsigned long long)len, flags);
    return buf;
}

/* ==== a) sluice server, nghttp2 client =========================================== */

static conn *server_conn(const sluice_session_options *o, const nghttp2_settings_entry *iv,
                         size_t niv, int ng_manual)
{
    return conn_new(SLUICE_ROLE_SERVER, o, iv, niv, ng_manual);
}

TEST(srv_hundred_concurrent_gets)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    int32_t ids[100];
    char p[64];
    for (int i = 0; i < 100; i++) {
        ids[i] = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 1000u + 997u * (unsigned)i,
                                                 i % 3 ? "c" : ""), 0, "");
        CHECK(ids[i] > 0);
    }
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(c->sl.requests, 100);
    CHECK_INT(c->sl.peak_open, 100); /* all at once, not one after another */
    for (int i = 0; i < 100; i++) {
        rec *r = &c->ng.r[ids[i]];
        CHECK(done_ok(r, (uint32_t)ids[i], 1000u + 997u * (unsigned)i));
        CHECK_INT(r->status, 200);
        CHECK_INT(r->finals, 1);
        CHECK_INT(c->sl.r[ids[i]].close_code, 0);
    }
    CHECK_INT(c->sl.closes, 100);
    CHECK_INT(c->ng.rst_sent, 0);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* Requests sent before sluice's SETTINGS arrive, past its limit of 10:
 * the extra ones are refused and succeed when retried. */
static int retry_refused(conn *c)
{
    int busy = 0;
    for (int32_t id = 1; id <= c->ng.max_id; id++) {
        rec *r = &c->ng.r[id];
        if (r->used && r->closed && r->close_code == NGHTTP2_REFUSED_STREAM &&
            !r->responded) {
            char p[64];
            r->responded = 1; /* marks "retried" on the client */
            c->hook_arg++;
            if (ng_request(&c->ng, "GET", pathf(p, sizeof(p), r->res_len, ""), 0, "") < 0)
                c->ng.fail = 1;
            busy++;
        }
    }
    return busy;
}

TEST(srv_refuses_streams_beyond_its_limit)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_concurrent_streams = 10;
    conn *c = server_conn(&o, NULL, 0, 0);
    CHECK(c);
    char p[64];
    for (int i = 0; i < 25; i++)
        CHECK(ng_request(&c->ng, "GET", pathf(p, sizeof(p), 20000, ""), 0, "") > 0);
    c->hook = retry_refused;
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    int refused = 0, ok = 0;
    for (int32_t id = 1; id <= c->ng.max_id; id++) {
        rec *r = &c->ng.r[id];
        if (!r->used)
            continue;
        if (r->close_code == NGHTTP2_REFUSED_STREAM) {
            refused++;
            CHECK(r->rst_recv);
            CHECK_INT(r->rx, 0);
        } else {
            CHECK(done_ok(r, (uint32_t)id, 20000));
            ok++;
        }
    }
    CHECK_INT(refused, 15);
    CHECK_INT(c->hook_arg, 15);
    CHECK_INT(ok, 25);
    CHECK_INT(c->sl.closes, 25); /* refused streams never opened */
    CHECK_INT(c->sl.peak_open, 10);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(srv_large_bodies_both_ways)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    c->sl.consume_later = 1;
    c->sl.consume_step = 20000;
    c->chunk = 16384 + 9;
    static const uint64_t up[3] = {3 * MIB + 1, 4 * MIB, 2 * MIB + 12345};
    static const uint64_t down[3] = {2 * MIB, 5 * MIB + 7, 3 * MIB - 1};
    int32_t ids[3];
    char p[64];
    for (int i = 0; i < 3; i++) {
        ids[i] = ng_request(&c->ng, "POST", pathf(p, sizeof(p), down[i], "x"), up[i], "");
        CHECK(ids[i] > 0);
    }
    CHECK_INT(run(c, 1000000), 0);
    CHECK(clean(c));
    for (int i = 0; i < 3; i++) {
        CHECK(done_ok(&c->ng.r[ids[i]], (uint32_t)ids[i], down[i]));
        CHECK(done_ok(&c->sl.r[ids[i]], (uint32_t)ids[i], up[i]));
        CHECK(c->sl.r[ids[i]].ended);
    }
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(srv_eight_mib_response)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    int32_t id = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 8 * MIB + 13, "c"), 0, "");
    CHECK(id > 0);
    CHECK_INT(run(c, 1000000), 0);
    CHECK(clean(c));
    CHECK(done_ok(&c->ng.r[id], (uint32_t)id, 8 * MIB + 13));
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* sluice receives through a stream window of a few bytes. */
TEST(srv_tiny_receive_window)
{
    static const uint32_t wins[] = {1, 2, 7, 100};
    for (size_t w = 0; w < sizeof(wins) / sizeof(wins[0]); w++) {
        sluice_session_options o;
        sluice_session_options_init(&o);
        o.initial_window_size = wins[w];
        conn *c = server_conn(&o, NULL, 0, 0);
        CHECK(c);
        c->sl.consume_later = 1;
        c->sl.consume_step = 1 + w * 3;
        CHECK_INT(run(c, 100), 0); /* SETTINGS both ways first */
        char p[64];
        uint64_t up = 2000 + 1000 * w;
        int32_t id = ng_request(&c->ng, "POST", pathf(p, sizeof(p), 10, ""), up, "");
        CHECK(id > 0);
        CHECK_INT(run(c, 200000), 0);
        CHECK(clean(c));
        CHECK(done_ok(&c->sl.r[id], (uint32_t)id, up));
        CHECK(done_ok(&c->ng.r[id], (uint32_t)id, 10));
        CHECK(c->sl.r[id].max_unconsumed <= wins[w]);
        CHECK(sl_idle(&c->sl));
        CHECK(finish(c));
    }
}

/* nghttp2 receives through a window of a few bytes and credits only what
 * its application consumed: sluice's sender has to wait. */
TEST(srv_tiny_window_at_nghttp2)
{
    static const uint32_t wins[] = {1, 10, 100};
    for (size_t w = 0; w < sizeof(wins) / sizeof(wins[0]); w++) {
        nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, wins[w]}};
        conn *c = server_conn(NULL, iv, 1, 1);
        CHECK(c);
        c->ng.consume_step = 1 + w * 5;
        char p[64];
        uint64_t down = 3000 + 700 * w;
        int32_t id = ng_request(&c->ng, "GET", pathf(p, sizeof(p), down, "c"), 0, "");
        CHECK(id > 0);
        CHECK_INT(run(c, 200000), 0);
        CHECK(clean(c));
        CHECK(done_ok(&c->ng.r[id], (uint32_t)id, down));
        CHECK(c->ng.r[id].max_unconsumed <= wins[w]);
        CHECK(sl_idle(&c->sl));
        CHECK(finish(c));
    }
}

static void check_trailer_scenario(const char *resp_flags, uint64_t down, uint64_t up)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    int32_t id = ng_request(&c->ng, "POST", pathf(p, sizeof(p), down, resp_flags), up, "t");
    CHECK(id > 0);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    rec *n = &c->ng.r[id], *s = &c->sl.r[id];
    CHECK(done_ok(n, (uint32_t)id, down));
    CHECK(done_ok(s, (uint32_t)id, up));
    CHECK_INT(n->status, 200);
    CHECK_INT(n->trailers, 1);
    CHECK_STR(n->trailer_value, "0");
    CHECK_INT(s->trailers, 1);
    CHECK_STR(s->trailer_value, "done");
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(srv_trailers_late_both_ways) { check_trailer_scenario("t", 40000, 70000); }
TEST(srv_trailers_early_both_ways) { check_trailer_scenario("T", 100, 5); }
TEST(srv_trailers_only_response) { check_trailer_scenario("t", 0, 1); }
TEST(srv_trailers_deferred_source) { check_trailer_scenario("td", 50000, 0); }

/* sluice's receive window of stream 1, raised and lowered while the peer
 * sends: raising gives the credit at once; after lowering, what nghttp2
 * may still send plus what sluice holds unconsumed never exceeds the new
 * target once the old credit is used up. After a pump round nothing is in
 * flight, so nghttp2's view of the window is exactly sluice's. */
static int recv_window_steps(conn *c)
{
    rec *r = &c->sl.r[1];
    if (!r->used || r->closed)
        return 0;
    int64_t held = (int64_t)nghttp2_session_get_stream_remote_window_size(c->ng.ng, 1) +
                   (int64_t)r->unconsumed;
    switch (c->hook_arg) {
    case 0:
        if (r->rx > 300000) {
            if (sluice_session_set_window(c->sl.s, 1, 1000) != 0 ||
                sluice_session_set_window(c->sl.s, 0, 4 * MIB) != 0)
                c->sl.fail = 1;
            c->hook_arg = 1;
        }
        return 1;
    case 1:
        if (held <= 1000)
            c->hook_arg = 2;
        return 1;
    case 2:
        if (held > 1000) {
            T_FAIL("round %ld: window + held = %lld, over the target 1000", c->round,
                   (long long)held);
            c->sl.fail = 1;
        }
        if (r->rx > 1200000) {
            if (sluice_session_set_window(c->sl.s, 1, 256 * 1024) != 0 ||
                sluice_session_set_window(c->sl.s, 0, 65535) != 0)
                c->sl.fail = 1;
            if (sl_to_ng(c, SIZE_MAX) <= 0)
                c->sl.fail = 1;
            held = (int64_t)nghttp2_session_get_stream_remote_window_size(c->ng.ng, 1) +
                   (int64_t)r->unconsumed;
            if (held != 256 * 1024) {
                T_FAIL("raised to 256 KiB: window + held = %lld", (long long)held);
                c->sl.fail = 1;
            }
            c->hook_arg = 3;
        }
        return 1;
    }
    return 0;
}

/* Stream 1 of c carries len bytes to sluice. */
static void check_recv_window_changes(conn *c, uint64_t len)
{
    c->sl.consume_later = 1;
    c->sl.consume_step = 0; /* hold everything: the peer stalls on 65535 */
    CHECK_INT(run(c, 1000), 0);
    CHECK_INT(c->sl.r[1].rx, 65535);
    CHECK_INT(sluice_session_set_window(c->sl.s, 1, 1 * MIB), 0);
    CHECK(sl_to_ng(c, SIZE_MAX) > 0);
    CHECK_INT(nghttp2_session_get_stream_remote_window_size(c->ng.ng, 1), 1 * MIB - 65535);
    c->sl.consume_step = 3000;
    c->hook = recv_window_steps;
    CHECK_INT(run(c, 1000000), 0);
    CHECK(clean(c));
    CHECK_INT(c->hook_arg, 3);
    CHECK(done_ok(&c->sl.r[1], 1, len));
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(srv_window_raised_and_lowered_midstream)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    CHECK_INT(ng_request(&c->ng, "POST", pathf(p, sizeof(p), 10, ""), 2 * MIB + 99, ""), 1);
    check_recv_window_changes(c, 2 * MIB + 99);
}

/* nghttp2 lowers INITIAL_WINDOW_SIZE while sluice is sending, so sluice's
 * stream window goes negative: nothing more may come until nghttp2 has
 * consumed enough; then it raises the setting and the body completes. */
/* Shared by both directions: stream 1 carries a body to nghttp2, whose
 * application holds every byte until the window is lowered to `low`. */
static int lower_then_raise_to(conn *c, uint32_t low)
{
    rec *r = &c->ng.r[1];
    if (c->hook_arg == 0) { /* stalled on the full window, nothing consumed */
        if (r->rx == 65535 && r->unconsumed == 65535) {
            nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, low}};
            if (nghttp2_submit_settings(c->ng.ng, NGHTTP2_FLAG_NONE, iv, 1) != 0)
                c->ng.fail = 1;
            c->hook_arg = 1;
        }
    } else if (c->hook_arg < 100) { /* sluice's window is now negative */
        if (r->rx != 65535) {
            T_FAIL("sluice sent %llu bytes past a negative window",
                   (unsigned long long)r->rx - 65535);
            c->sl.fail = 1;
        }
        /* Once sluice has acknowledged, wait 30 rounds, then drain slowly. */
        if (c->ng.settings_acks >= 2 && ++c->hook_arg > 30) {
            c->ng.consume_step = 4000;
            c->hook_arg = 100;
        }
    } else if (c->hook_arg == 100) {
        if (r->rx > 300000) {
            nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
            if (nghttp2_submit_settings(c->ng.ng, NGHTTP2_FLAG_NONE, iv, 1) != 0)
                c->ng.fail = 1;
            c->ng.consume_step = 1 << 20;
            c->hook_arg = 200;
        }
    } else {
        return 0;
    }
    return 1;
}

static int lower_then_raise(conn *c)
{
    return lower_then_raise_to(c, 1000);
}

TEST(srv_nghttp2_lowers_initial_window_midstream)
{
    conn *c = server_conn(NULL, NULL, 0, 1);
    CHECK(c);
    c->ng.consume_step = 0; /* hold everything at first */
    c->hook = lower_then_raise;
    char p[64];
    int32_t id = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 1 * MIB + 3, "c"), 0, "");
    CHECK_INT(id, 1);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(c->hook_arg, 200);
    CHECK(done_ok(&c->ng.r[id], (uint32_t)id, 1 * MIB + 3));
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* A sluice server whose INITIAL_WINDOW_SIZE is below the default: the
 * client uploads on the default window before our SETTINGS arrive, and
 * the ACK then shrinks the windows of streams already open (some below
 * zero, their bytes long consumed). Every upload must still finish. */
TEST(srv_small_initial_window_uploads_started_before_settings)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.initial_window_size = 16384;
    conn *c = server_conn(&o, NULL, 0, 0);
    CHECK(c);
    char p[64];
    int32_t ids[3];
    for (int i = 0; i < 3; i++)
        CHECK((ids[i] = ng_request(&c->ng, "POST", pathf(p, sizeof(p), 10, ""), 100000, "")) > 0);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    for (int i = 0; i < 3; i++) {
        CHECK(done_ok(&c->sl.r[ids[i]], (uint32_t)ids[i], 100000));
        CHECK(done_ok(&c->ng.r[ids[i]], (uint32_t)ids[i], 10));
    }
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* nghttp2 changes HEADER_TABLE_SIZE (0, then 4096, then 100) and
 * MAX_FRAME_SIZE between batches of responses with a field larger than a
 * frame: sluice's encoder must announce each size (RFC 7541 §4.2) and
 * split blocks into CONTINUATION, and nghttp2 must accept all of it. */
static int table_batch(conn *c, int32_t *ids, int from, int to)
{
    char p[64];
    for (int i = from; i < to; i++)
        if ((ids[i] = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 100000 + (unsigned)i, "Lc"),
                                 0, "")) < 0)
            return 0;
    return run(c, 100000) == 0 && clean(c);
}

TEST(srv_header_table_and_frame_size_changes)
{
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0},
                                   {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 1 << 20},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    conn *c = server_conn(NULL, iv, 3, 0);
    CHECK(c);
    c->chunk = SIZE_MAX;
    int32_t ids[15];
    CHECK(table_batch(c, ids, 0, 5));
    nghttp2_settings_entry up[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 4096},
                                   {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 16384}};
    CHECK_INT(nghttp2_submit_settings(c->ng.ng, NGHTTP2_FLAG_NONE, up, 2), 0);
    CHECK(table_batch(c, ids, 5, 10));
    nghttp2_settings_entry down[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 100}};
    CHECK_INT(nghttp2_submit_settings(c->ng.ng, NGHTTP2_FLAG_NONE, down, 1), 0);
    CHECK(table_batch(c, ids, 10, 15));
    for (int i = 0; i < 15; i++) {
        CHECK(done_ok(&c->ng.r[ids[i]], (uint32_t)ids[i], 100000 + (unsigned)i));
        CHECK_INT(c->ng.r[ids[i]].status, 200);
    }
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(srv_early_hints_103)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    int32_t a = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 3000, "i"), 0, "");
    int32_t b = ng_request(&c->ng, "POST", pathf(p, sizeof(p), 0, "ix"), 5000, "");
    CHECK(a > 0 && b > 0);
    CHECK_INT(run(c, 10000), 0);
    CHECK(clean(c));
    CHECK(done_ok(&c->ng.r[a], (uint32_t)a, 3000));
    CHECK(done_ok(&c->ng.r[b], (uint32_t)b, 0));
    CHECK(done_ok(&c->sl.r[b], (uint32_t)b, 5000));
    for (int32_t id = a; id <= b; id += 2) {
        CHECK_INT(c->ng.r[id].infos, 1);
        CHECK_INT(c->ng.r[id].info_status, 103);
        CHECK_INT(c->ng.r[id].finals, 1);
        CHECK_INT(c->ng.r[id].status, 200);
    }
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(srv_head_has_no_body)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    int32_t a = ng_request(&c->ng, "HEAD", pathf(p, sizeof(p), 5000, "c"), 0, "");
    int32_t b = ng_request(&c->ng, "HEAD", pathf(p, sizeof(p), 123, "i"), 0, "");
    CHECK(a > 0 && b > 0);
    CHECK_INT(run(c, 10000), 0);
    CHECK(clean(c));
    CHECK(done_ok(&c->ng.r[a], (uint32_t)a, 0));
    CHECK(done_ok(&c->ng.r[b], (uint32_t)b, 0));
    CHECK_INT(c->ng.r[a].status, 200);
    CHECK_INT(c->ng.r[b].infos, 1);
    CHECK_INT(c->sl.tx_total, 0);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(srv_deferred_source_resumed_later)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    c->sl.resume_every = 0; /* never, at first */
    char p[64];
    int32_t id = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 200000, "dc"), 0, "");
    CHECK(id > 0);
    CHECK_INT(run(c, 20), 1);
    CHECK(c->sl.r[id].tx_waiting);
    /* Waiting on the application: nothing to write, not busy. */
    CHECK_INT(sluice_session_want_write(c->sl.s), 0);
    sluice_iovec iov[4];
    CHECK_INT(sluice_session_output(c->sl.s, iov, 4, 65536, c->now), 0);
    CHECK_INT(sluice_session_resume_data(c->sl.s, (uint32_t)id), 0);
    c->sl.r[id].tx_waiting = 0;
    CHECK_INT(sluice_session_want_write(c->sl.s), 1);
    c->sl.resume_every = 4;
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK(done_ok(&c->ng.r[id], (uint32_t)id, 200000));
    CHECK(c->sl.r[id].reads > 20);
    CHECK_INT(sluice_session_resume_data(c->sl.s, (uint32_t)id), SLUICE_ERR_NOT_FOUND);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* nghttp2 cancels a download and an upload halfway; sluice stops, frees
 * the streams, and the connection window comes back for the next request. */
static int cancel_at(conn *c)
{
    for (int32_t id = 1; id <= c->ng.max_id; id++) {
        rec *r = &c->ng.r[id];
        if (!r->used || r->closed || r->rst_code == 99)
            continue;
        if ((r->tx_len && r->tx_off >= 300000) || r->rx >= 300000) {
            r->rst_code = 99; /* marks "cancelled by us" */
            if (nghttp2_submit_rst_stream(c->ng.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL))
                c->ng.fail = 1;
        }
    }
    return 0;
}

TEST(srv_client_cancels_midbody)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    c->sl.consume_later = 1;
    c->sl.consume_step = 2000; /* unread bytes are held when the RST comes */
    c->hook = cancel_at;
    char p[64];
    int32_t down = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 4 * MIB, "c"), 0, "");
    int32_t up = ng_request(&c->ng, "POST", pathf(p, sizeof(p), 10, ""), 4 * MIB, "");
    CHECK(down > 0 && up > 0);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(c->ng.rst_sent, 2);
    CHECK_INT(c->sl.r[down].close_code, NGHTTP2_CANCEL);
    CHECK_INT(c->sl.r[up].close_code, NGHTTP2_CANCEL);
    CHECK(c->ng.r[down].rx < 4 * MIB);
    CHECK(c->sl.r[up].rx < 4 * MIB);
    CHECK(!c->ng.r[down].rx_bad && !c->sl.r[up].rx_bad);
    CHECK(sl_idle(&c->sl));
    /* The connection window is whole again: 2 MiB more each way. */
    c->hook = NULL;
    int32_t a = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 2 * MIB, ""), 0, "");
    int32_t b = ng_request(&c->ng, "POST", pathf(p, sizeof(p), 0, ""), 2 * MIB, "");
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK(done_ok(&c->ng.r[a], (uint32_t)a, 2 * MIB));
    CHECK(done_ok(&c->sl.r[b], (uint32_t)b, 2 * MIB));
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* Graceful shutdown: GOAWAY 2^31-1 and a PING, a request that crosses the
 * first GOAWAY is still served, the final GOAWAY names it, every stream in
 * flight completes. */
TEST(srv_graceful_goaway_with_streams_in_flight)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    int32_t ids[6];
    for (int i = 0; i < 5; i++)
        CHECK((ids[i] = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 1 * MIB, ""), 0, "")) > 0);
    for (int i = 0; i < 3; i++)
        CHECK(pump_round(c) >= 0);
    CHECK_INT(sluice_session_goaway(c->sl.s, SLUICE_H2_NO_ERROR, NULL, 1), 0);
    ids[5] = ng_request(&c->ng, "GET", pathf(p, sizeof(p), 70000, ""), 0, "");
    CHECK_INT(ids[5], 11);
    CHECK(ng_to_sl(c) > 0); /* it crosses the first GOAWAY */
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(c->ng.goaways, 2);
    CHECK_INT(c->ng.goaway_last[0], 0x7fffffff);
    CHECK_INT(c->ng.goaway_code[0], NGHTTP2_NO_ERROR);
    CHECK_INT(c->ng.goaway_last[1], 11);
    CHECK_INT(c->ng.goaway_code[1], NGHTTP2_NO_ERROR);
    CHECK_INT(c->ng.pings, 1);
    for (int i = 0; i < 6; i++)
        CHECK(done_ok(&c->ng.r[ids[i]], (uint32_t)ids[i], i < 5 ? 1 * MIB : 70000));
    sluice_session_stats st = stats_of(c->sl.s);
    CHECK_INT(st.goaway_sent, 1);
    CHECK_INT(st.goaway_sent_code, 0);
    CHECK_INT(sluice_session_want_read(c->sl.s), 0);
    CHECK_INT(sluice_session_want_write(c->sl.s), 0);
    CHECK_INT(sluice_session_goaway(c->sl.s, SLUICE_H2_NO_ERROR, NULL, 1), SLUICE_ERR_STATE);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(srv_ping_both_ways)
{
    conn *c = server_conn(NULL, NULL, 0, 0);
    CHECK(c);
    CHECK_INT(nghttp2_submit_ping(c->ng.ng, NGHTTP2_FLAG_NONE, (const uint8_t *)"12345678"), 0);
    CHECK_INT(sluice_session_submit_ping(c->sl.s, (const uint8_t *)"abcdefgh"), 0);
    CHECK_INT(run(c, 100), 0);
    CHECK(clean(c));
    CHECK_INT(c->ng.ping_acks, 1);
    CHECK_MEM(c->ng.ping_opaque, 8, "12345678", 8);
    CHECK_INT(c->sl.ping_acks, 1);
    CHECK_MEM(c->sl.ping_opaque, 8, "abcdefgh", 8);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* ==== b) sluice client, nghttp2 server =========================================== */

static conn *client_conn(const sluice_session_options *o, const nghttp2_settings_entry *iv,
                         size_t niv, int ng_manual)
{
    return conn_new(SLUICE_ROLE_CLIENT, o, iv, niv, ng_manual);
}

/* Requests the client could not open yet: retried as streams close. */
typedef struct backlog {
    int next, total;
} backlog;
static backlog g_backlog;

static uint64_t backlog_len(int i)
{
    return 1 + (uint64_t)i * 131u % 30000u;
}

static int submit_backlog(conn *c)
{
    char p[64];
    while (g_backlog.next < g_backlog.total) {
        uint32_t id;
        int rv = sl_request(&c->sl, "GET",
                            pathf(p, sizeof(p), backlog_len(g_backlog.next), ""), 0, "", &id);
        if (rv == SLUICE_ERR_LIMIT)
            return 1;
        if (rv != 0) {
            c->sl.fail = 1;
            return 0;
        }
        g_backlog.next++;
    }
    return 0;
}

TEST(cli_concurrency_limit_and_retry)
{
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    conn *c = client_conn(NULL, iv, 1, 0);
    CHECK(c);
    CHECK_INT(run(c, 100), 0); /* learn the server's limit */
    g_backlog.next = 0;
    g_backlog.total = 250;
    CHECK_INT(submit_backlog(c), 1);
    CHECK_INT(g_backlog.next, 100); /* the 101st got SLUICE_ERR_LIMIT */
    c->hook = submit_backlog;
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(g_backlog.next, 250);
    for (int i = 0; i < 250; i++) {
        uint32_t id = 1 + 2 * (uint32_t)i;
        CHECK(done_ok(&c->sl.r[id], id, backlog_len(i)));
        CHECK_INT(c->sl.r[id].status, 200);
        CHECK_INT(c->ng.r[id].close_code, 0);
    }
    CHECK_INT(c->ng.peak_open, 100);
    CHECK_INT(c->ng.rst_sent, 0);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(cli_large_bodies_both_ways)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    c->sl.consume_later = 1;
    c->sl.consume_step = 30000;
    static const uint64_t up[3] = {4 * MIB + 3, 3 * MIB, 1};
    static const uint64_t down[3] = {4 * MIB, 1, 5 * MIB + 77};
    uint32_t ids[3];
    char p[64];
    for (int i = 0; i < 3; i++)
        CHECK_INT(sl_request(&c->sl, "POST", pathf(p, sizeof(p), down[i], "xc"), up[i], "",
                             &ids[i]), 0);
    CHECK_INT(run(c, 1000000), 0);
    CHECK(clean(c));
    for (int i = 0; i < 3; i++) {
        CHECK(done_ok(&c->sl.r[ids[i]], ids[i], down[i]));
        CHECK(!c->ng.r[ids[i]].rx_bad);
        CHECK_INT(c->ng.r[ids[i]].rx, up[i]);
        CHECK(c->ng.r[ids[i]].ended);
    }
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(cli_tiny_receive_window)
{
    static const uint32_t wins[] = {1, 3, 100};
    for (size_t w = 0; w < sizeof(wins) / sizeof(wins[0]); w++) {
        sluice_session_options o;
        sluice_session_options_init(&o);
        o.initial_window_size = wins[w];
        conn *c = client_conn(&o, NULL, 0, 0);
        CHECK(c);
        c->sl.consume_later = 1;
        c->sl.consume_step = 1 + w;
        char p[64];
        uint64_t down = 2500 + 1000 * w;
        uint32_t id;
        CHECK_INT(sl_request(&c->sl, "GET", pathf(p, sizeof(p), down, ""), 0, "", &id), 0);
        CHECK_INT(run(c, 200000), 0);
        CHECK(clean(c));
        CHECK(done_ok(&c->sl.r[id], id, down));
        CHECK(c->sl.r[id].max_unconsumed <= wins[w]);
        CHECK(sl_idle(&c->sl));
        CHECK(finish(c));
    }
}

TEST(cli_tiny_window_at_nghttp2)
{
    static const uint32_t wins[] = {1, 10, 100};
    for (size_t w = 0; w < sizeof(wins) / sizeof(wins[0]); w++) {
        nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, wins[w]}};
        conn *c = client_conn(NULL, iv, 1, 1);
        CHECK(c);
        c->ng.consume_step = 1 + w * 7;
        CHECK_INT(run(c, 100), 0);
        char p[64];
        uint64_t up = 3000 + 500 * w;
        uint32_t id;
        CHECK_INT(sl_request(&c->sl, "POST", pathf(p, sizeof(p), 7, ""), up, "", &id), 0);
        CHECK_INT(run(c, 200000), 0);
        CHECK(clean(c));
        CHECK(done_ok(&c->sl.r[id], id, 7));
        CHECK_INT(c->ng.r[id].rx, up);
        CHECK(!c->ng.r[id].rx_bad);
        CHECK(c->ng.r[id].max_unconsumed <= wins[w]);
        CHECK(sl_idle(&c->sl));
        CHECK(finish(c));
    }
}

static void check_cli_trailers(const char *resp_flags, const char *req_flags, uint64_t down,
                               uint64_t up)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    uint32_t id;
    CHECK_INT(sl_request(&c->sl, "POST", pathf(p, sizeof(p), down, resp_flags), up, req_flags,
                         &id), 0);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    rec *s = &c->sl.r[id], *n = &c->ng.r[id];
    CHECK(done_ok(s, id, down));
    CHECK_INT(s->status, 200);
    CHECK_INT(s->trailers, 1);
    CHECK_STR(s->trailer_value, "0");
    CHECK_INT(n->rx, up);
    CHECK(!n->rx_bad);
    CHECK_INT(n->trailers, 1);
    CHECK_STR(n->trailer_value, "done");
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(cli_trailers_late_request_trailers) { check_cli_trailers("t", "t", 30000, 90000); }
TEST(cli_trailers_early_request_trailers) { check_cli_trailers("t", "T", 10, 70000); }
TEST(cli_trailers_empty_bodies) { check_cli_trailers("t", "t", 0, 0); }
TEST(cli_trailers_deferred_sources) { check_cli_trailers("td", "td", 40000, 40000); }

TEST(cli_window_raised_and_lowered_midstream)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    uint32_t id;
    CHECK_INT(sl_request(&c->sl, "GET", pathf(p, sizeof(p), 3 * MIB, "c"), 0, "", &id), 0);
    CHECK_INT(id, 1);
    check_recv_window_changes(c, 3 * MIB);
}

/* The nghttp2 server lowers INITIAL_WINDOW_SIZE while sluice uploads:
 * sluice's send window goes negative and it must wait. */
static int srv_lowers(conn *c)
{
    return lower_then_raise_to(c, 10);
}

TEST(cli_nghttp2_lowers_initial_window_midupload)
{
    conn *c = client_conn(NULL, NULL, 0, 1);
    CHECK(c);
    c->ng.consume_step = 0;
    c->hook = srv_lowers;
    char p[64];
    uint32_t id;
    CHECK_INT(sl_request(&c->sl, "POST", pathf(p, sizeof(p), 5, ""), 1 * MIB + 5, "", &id), 0);
    CHECK_INT(id, 1);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(c->hook_arg, 200);
    CHECK_INT(c->ng.r[1].rx, 1 * MIB + 5);
    CHECK(!c->ng.r[1].rx_bad);
    CHECK(done_ok(&c->sl.r[1], 1, 5));
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* The other way: sluice's client takes big frames, changes its
 * HEADER_TABLE_SIZE mid-connection, and decodes nghttp2's blocks
 * (CONTINUATION included) after each change. */
TEST(cli_header_table_and_frame_size_changes)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.header_table_size = 0;
    o.max_frame_size = 1 << 20;
    o.initial_window_size = 1 << 20;
    conn *c = client_conn(&o, NULL, 0, 0);
    CHECK(c);
    static const uint32_t sizes[] = {0, 4096, 100, 65536};
    char p[64];
    uint32_t id = 0;
    for (size_t k = 0; k < 4; k++) {
        if (k > 0) {
            uint32_t iv[] = {1 /* HEADER_TABLE_SIZE */, sizes[k]};
            CHECK_INT(sluice_session_submit_settings(c->sl.s, iv, 1), 0);
        }
        for (int i = 0; i < 4; i++)
            CHECK_INT(sl_request(&c->sl, "GET", pathf(p, sizeof(p), 70000, "Lc"), 0, "", &id), 0);
        CHECK_INT(run(c, 100000), 0);
        CHECK(clean(c));
    }
    for (uint32_t i = 1; i <= id; i += 2) {
        CHECK(done_ok(&c->sl.r[i], i, 70000));
        CHECK_INT(c->sl.r[i].status, 200);
    }
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(cli_early_hints_103)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    uint32_t a, b;
    CHECK_INT(sl_request(&c->sl, "GET", pathf(p, sizeof(p), 4000, "i"), 0, "", &a), 0);
    CHECK_INT(sl_request(&c->sl, "POST", pathf(p, sizeof(p), 0, "ix"), 3000, "", &b), 0);
    CHECK_INT(run(c, 10000), 0);
    CHECK(clean(c));
    CHECK(done_ok(&c->sl.r[a], a, 4000));
    CHECK(done_ok(&c->sl.r[b], b, 0));
    CHECK_INT(c->ng.r[b].rx, 3000);
    for (uint32_t id = a; id <= b; id += 2) {
        CHECK_INT(c->sl.r[id].infos, 1);
        CHECK_INT(c->sl.r[id].info_status, 103);
        CHECK_INT(c->sl.r[id].finals, 1);
        CHECK_INT(c->sl.r[id].status, 200);
    }
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(cli_head_with_content_length)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    char p[64];
    uint32_t id;
    CHECK_INT(sl_request(&c->sl, "HEAD", pathf(p, sizeof(p), 5000, "c"), 0, "", &id), 0);
    CHECK_INT(run(c, 1000), 0);
    CHECK(clean(c));
    CHECK(done_ok(&c->sl.r[id], id, 0));
    CHECK_INT(c->sl.r[id].status, 200);
    CHECK(c->sl.r[id].ended);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(cli_deferred_upload_resumed_later)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    c->sl.resume_every = 0;
    char p[64];
    uint32_t id;
    CHECK_INT(sl_request(&c->sl, "POST", pathf(p, sizeof(p), 100, ""), 300000, "d", &id), 0);
    CHECK_INT(run(c, 20), 1);
    CHECK(c->sl.r[id].tx_waiting);
    CHECK_INT(sluice_session_want_write(c->sl.s), 0);
    c->sl.resume_every = 2;
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(c->ng.r[id].rx, 300000);
    CHECK(!c->ng.r[id].rx_bad);
    CHECK(done_ok(&c->sl.r[id], id, 100));
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* sluice cancels a download and an upload halfway. */
static int sl_cancel_at(conn *c)
{
    for (uint32_t id = 1; id <= c->sl.max_id; id++) {
        rec *r = &c->sl.r[id];
        if (!r->used || r->closed || r->rst_code == 99)
            continue;
        if ((r->tx_len && r->tx_off >= 300000) || r->rx >= 300000) {
            r->rst_code = 99;
            if (sluice_session_submit_rst(c->sl.s, id, SLUICE_H2_CANCEL) != 0)
                c->sl.fail = 1;
            /* Gone at once: no more callbacks, nothing to consume. */
            if (!r->closed || r->close_code != SLUICE_H2_CANCEL)
                c->sl.fail = 1;
        }
    }
    return 0;
}

TEST(cli_cancels_midbody)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    c->sl.consume_later = 1;
    c->sl.consume_step = 3000;
    c->hook = sl_cancel_at;
    char p[64];
    uint32_t down, up;
    CHECK_INT(sl_request(&c->sl, "GET", pathf(p, sizeof(p), 4 * MIB, "c"), 0, "", &down), 0);
    CHECK_INT(sl_request(&c->sl, "POST", pathf(p, sizeof(p), 10, ""), 4 * MIB, "", &up), 0);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(c->ng.r[down].close_code, NGHTTP2_CANCEL);
    CHECK_INT(c->ng.r[up].close_code, NGHTTP2_CANCEL);
    CHECK(c->ng.r[up].rx < 4 * MIB && !c->ng.r[up].rx_bad);
    CHECK(c->sl.r[down].rx < 4 * MIB && !c->sl.r[down].rx_bad);
    CHECK(sl_idle(&c->sl));
    c->hook = NULL;
    uint32_t a, b;
    CHECK_INT(sl_request(&c->sl, "GET", pathf(p, sizeof(p), 2 * MIB, ""), 0, "", &a), 0);
    CHECK_INT(sl_request(&c->sl, "POST", pathf(p, sizeof(p), 0, ""), 2 * MIB, "", &b), 0);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK(done_ok(&c->sl.r[a], a, 2 * MIB));
    CHECK_INT(c->ng.r[b].rx, 2 * MIB);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

/* nghttp2's server shuts down gracefully: GOAWAY 2^31-1, then a GOAWAY
 * with last id 5 while 7, 9 and 11 are open: those are refused (safe to
 * retry), 1, 3 and 5 complete. */
TEST(cli_server_graceful_goaway)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    c->ng.auto_respond = 0;
    char p[64];
    uint32_t ids[6];
    for (int i = 0; i < 6; i++)
        CHECK_INT(sl_request(&c->sl, "GET", pathf(p, sizeof(p), 500000, ""), 0, "", &ids[i]),
                  0);
    CHECK_INT(run(c, 100), 0);
    CHECK_INT(nghttp2_submit_shutdown_notice(c->ng.ng), 0);
    CHECK_INT(run(c, 100), 0);
    CHECK_INT(c->sl.goaways, 1);
    CHECK_INT(c->sl.goaway_last[0], 0x7fffffff);
    CHECK_INT(sl_request(&c->sl, "GET", "/1/", 0, "", NULL), SLUICE_ERR_STATE);
    for (int i = 0; i < 3; i++)
        CHECK_INT(ng_respond(&c->ng, (int32_t)ids[i]), 0);
    CHECK(pump_round(c) >= 0);
    CHECK_INT(nghttp2_submit_goaway(c->ng.ng, NGHTTP2_FLAG_NONE, 5, NGHTTP2_NO_ERROR, NULL, 0),
              0);
    CHECK_INT(run(c, 100000), 0);
    CHECK(clean(c));
    CHECK_INT(c->sl.goaways, 2);
    CHECK_INT(c->sl.goaway_last[1], 5);
    CHECK_INT(c->sl.goaway_code[1], 0);
    for (int i = 0; i < 6; i++) {
        rec *r = &c->sl.r[ids[i]];
        if (i < 3) {
            CHECK(done_ok(r, ids[i], 500000));
        } else {
            CHECK(r->closed);
            CHECK_INT(r->close_code, SLUICE_H2_REFUSED_STREAM);
            CHECK_INT(r->rx, 0);
        }
    }
    CHECK_INT(sluice_session_want_read(c->sl.s), 0);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}

TEST(cli_ping_both_ways)
{
    conn *c = client_conn(NULL, NULL, 0, 0);
    CHECK(c);
    CHECK_INT(sluice_session_submit_ping(c->sl.s, (const uint8_t *)"sluice!!"), 0);
    CHECK_INT(nghttp2_submit_ping(c->ng.ng, NGHTTP2_FLAG_NONE, (const uint8_t *)"nghttp2!"), 0);
    CHECK_INT(run(c, 100), 0);
    CHECK(clean(c));
    CHECK_INT(c->sl.ping_acks, 1);
    CHECK_MEM(c->sl.ping_opaque, 8, "sluice!!", 8);
    CHECK_INT(c->ng.ping_acks, 1);
    CHECK_MEM(c->ng.ping_opaque, 8, "nghttp2!", 8);
    CHECK(sl_idle(&c->sl));
    CHECK(finish(c));
}
