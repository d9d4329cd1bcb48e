/* h2conn.c — HTTP/2 on a host connection: drives the core session with
 * socket bytes and loop time, and maps its streams to built-in responses
 * whose bodies go out as borrowed data (never copied by the session); the
 * route's priority, Early Hints and pushes go with them. */
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host.h"
#include "http.h"
#include "policyhost.h"
#include "proxy.h"
#include "respond.h"

#define NS_PER_MS 1000000ull

/* A request whose stream is gone but whose body bytes the session still
 * holds (borrowed): freed when the last of them is released. */
typedef struct h2_req {
    sl_req r;
    uint32_t id;
    int closed;
    uint32_t close_code;
    struct h2_req *next_zombie;
    int submitted;           /* the response head is with the session */
    int dirty;               /* on the dirty list: the proxy has news */
    int trailers_due;        /* the body ended: the trailers go next */
    struct h2_req *next_dirty;
    sl_conn *c;
    int pushed;              /* a promised stream: our request, not the client's */
    int held;                /* the response waits for the request's end (holds) */
    int expects_100;         /* expect: 100-continue: the client waits before its body */
} h2_req;

/* What the write path knows of the socket: see pace_budget(). */
typedef struct h2_pace {
    size_t target;           /* unsent bytes the kernel may hold (0: not set yet) */
    unsigned lowat;          /* TCP_NOTSENT_LOWAT on the socket now */
    int waiting;             /* the last flush left output in the session */
    uint64_t probe_ns;       /* when we last asked the kernel (TCP_INFO) */
    uint64_t mark_ns;        /* start of the current rate sample (0: none) */
    uint64_t mark_acked;     /* bytes the peer had acknowledged then */
} h2_pace;

typedef struct h2_state {
    h2_req *zombies;
    h2_req *dirty;
    h2_pace pace;
} h2_state;

/* The session's clock: nanoseconds, not the loop's cached milliseconds —
 * it times SETTINGS and PING round trips, which are well under a
 * millisecond on a LAN or loopback (read as 0, "unknown", at ms grain). */
static uint64_t now_ns(sl_conn *c)
{
    (void)c;
    return uv_hrtime();
}

static size_t outstanding(const h2_req *q)
{
    if (q->r.body_kind == SL_BODY_ECHO && !q->r.proxy)
        return (size_t)(q->r.handed_end - q->r.released);
    return q->r.handed;
}

static h2_state *state_of(sl_conn *c)
{
    return c->h2_state;
}

static h2_req *find_zombie(sl_conn *c, uint32_t id, h2_req ***link)
{
    h2_req **pp = &state_of(c)->zombies;
    for (; *pp; pp = &(*pp)->next_zombie)
        if ((*pp)->id == id) {
            *link = pp;
            return *pp;
        }
    return NULL;
}

/* ---- access log ----------------------------------------------------------- */

static void access_log(sl_conn *c, h2_req *q)
{
    FILE *f = c->w->access_log;
    if (!f)
        return;
    uint64_t dur = sl_now_ms(c) - q->r.started_ms;
    const char *up = q->r.proxy ? q->r.proxy->srv_name : NULL;
    fprintf(f, "%s %s %s %s %d %llu %llums stream=%u proto=h2 tls=%s code=%s%s%s%s\n", c->peer,
            q->r.method, q->r.authority ? q->r.authority : "-", q->r.path, q->r.status,
            (unsigned long long)q->r.sent, (unsigned long long)dur, q->id,
            c->tls ? sl_tls_version(c->tls) : "-", sluice_h2_error_name(q->close_code),
            up ? " upstream=" : "", up ? up : "", q->r.tags ? q->r.tags : "");
}

/* ---- callbacks ---------------------------------------------------------- */

static long source_read(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                        uint32_t *flags, void *ud)
{
    (void)s;
    (void)id;
    h2_req *q = ud;
    int eof = 0;
    long n = sl_body_read(&q->r, data, max, &eof);
    if (eof) {
        *flags |= SLUICE_DATA_EOF;
        if (q->r.ntrailers) { /* proxied trailers follow the body */
            *flags |= SLUICE_DATA_NO_END_STREAM;
            q->trailers_due = 1;
            q->r.notify(&q->r);
        }
    }
    return n;
}

static h2_state *state_of(sl_conn *c);

/* The proxy has news for this stream: act on it from the kick step. */
static void notify(sl_req *r)
{
    h2_req *q = (h2_req *)r;
    if (q->closed)
        return;
    if (!q->dirty) {
        h2_state *st = state_of(q->c);
        q->dirty = 1;
        q->next_dirty = st->dirty;
        st->dirty = q;
    }
    sl_conn_kick(q->c);
}

static void undirty(sl_conn *c, h2_req *q)
{
    if (!q->dirty)
        return;
    for (h2_req **pp = &state_of(c)->dirty; *pp; pp = &(*pp)->next_dirty)
        if (*pp == q) {
            *pp = q->next_dirty;
            break;
        }
    q->dirty = 0;
}

static int fill_request(h2_req *q, const sluice_nv *nv, size_t n)
{
    q->r.content_length = -1;
    for (size_t i = 0; i < n; i++) {
        const sluice_nv *f = &nv[i];
        if (f->name_len == 7 && memcmp(f->name, ":method", 7) == 0) {
            size_t k = f->value_len < sizeof(q->r.method) - 1 ? f->value_len
                                                               : sizeof(q->r.method) - 1;
            memcpy(q->r.method, f->value, k);
            q->r.method[k] = 0;
        } else if (f->name_len == 5 && memcmp(f->name, ":path", 5) == 0) {
            q->r.path = sl_strndup(f->value, f->value_len);
        } else if ((f->name_len == 10 && memcmp(f->name, ":authority", 10) == 0) ||
                   (f->name_len == 4 && memcmp(f->name, "host", 4) == 0 && !q->r.authority)) {
            free(q->r.authority);
            q->r.authority = sl_strndup(f->value, f->value_len);
        } else if (f->name_len == 14 && memcmp(f->name, "content-length", 14) == 0) {
            sl_http_parse_content_length(f->value, f->value_len, &q->r.content_length);
        } else if (f->name_len == 6 && memcmp(f->name, "expect", 6) == 0) {
            q->expects_100 = f->value_len == 12 &&
                             strncasecmp((const char *)f->value, "100-continue", 12) == 0;
        }
    }
    q->r.is_head = strcmp(q->r.method, "HEAD") == 0;
    if (!q->r.path)
        q->r.path = sl_strndup((const uint8_t *)"/", 1); /* CONNECT has none */
    return q->r.path ? 0 : SLUICE_ERR_NOMEM;
}

static int submit(sl_conn *c, h2_req *q)
{
    sluice_nv local[SL_RESP_MAX_HDRS + 1], *nv = local;
    const sluice_nv *hdrs = q->r.xhdrs ? q->r.xhdrs : q->r.hdrs;
    size_t nh = q->r.xhdrs ? q->r.nxhdrs : q->r.nhdrs;
    if (q->r.pol)
        sl_rpol_response(c, &q->r, hdrs, nh);
    size_t cap = nh + q->r.nedits;
    if (cap > SL_RESP_MAX_HDRS && !(nv = malloc((cap + 1) * sizeof(*nv))))
        return sluice_session_submit_rst(c->h2, q->id, SLUICE_H2_INTERNAL_ERROR);
    q->submitted = 1;
    char status[4];
    unsigned st = (unsigned)q->r.status % 1000u;
    status[0] = (char)('0' + st / 100);
    status[1] = (char)('0' + st / 10 % 10);
    status[2] = (char)('0' + st % 10);
    status[3] = 0;
    nv[0] = (sluice_nv){(const uint8_t *)":status", (const uint8_t *)status, 7, 3, 0};
    if (q->r.nedits)
        nh = sl_rpol_fields(&q->r, hdrs, nh, nv + 1, cap);
    else if (nh)
        memcpy(nv + 1, hdrs, nh * sizeof(sluice_nv));
    sluice_data_source src = {source_read, q};
    int has_body = q->r.body_kind != SL_BODY_NONE;
    int rv = sluice_session_submit_response(c->h2, q->id, nv, nh + 1, has_body ? &src : NULL);
    if (nv != local)
        free(nv);
    if (rv != 0) /* e.g. fields HTTP/2 cannot carry: the stream ends, not the connection */
        return sluice_session_submit_rst(c->h2, q->id, SLUICE_H2_INTERNAL_ERROR);
    return 0;
}

/* A 103 Early Hints (RFC 8297) with these fields, before the final
 * response; hints are optional, so a failure only goes to the debug log. */
static void submit_103(sl_conn *c, uint32_t id, const sluice_nv *fields, size_t n)
{
    sluice_nv local[SL_CFG_MAX_HINTS + 1], *nv = local;
    if (n > SL_CFG_MAX_HINTS && !(nv = malloc((n + 1) * sizeof(*nv))))
        return;
    nv[0] = (sluice_nv){(const uint8_t *)":status", (const uint8_t *)"103", 7, 3, 0};
    if (n)
        memcpy(nv + 1, fields, n * sizeof(*nv));
    int rv = sluice_session_submit_info(c->h2, id, nv, n + 1);
    if (nv != local)
        free(nv);
    if (rv != 0)
        sl_log(3, "conn %llu %s: stream %u: 103 not sent: %s", (unsigned long long)c->id,
               c->peer, id, sluice_strerror(rv));
}

/* Proxied streams with news: the response head, request credit, the
 * body resumed, trailers, or a reset when the upstream failed. */
static void process_dirty(sl_conn *c)
{
    h2_state *st = state_of(c);
    while (st->dirty) {
        h2_req *q = st->dirty;
        st->dirty = q->next_dirty;
        q->dirty = 0;
        sl_req *r = &q->r;
        if (r->credit) {
            sluice_session_consume(c->h2, q->id, (size_t)r->credit);
            r->credit = 0;
        }
        if (r->abort) {
            r->abort = 0;
            sluice_session_submit_rst(c->h2, q->id, SLUICE_H2_INTERNAL_ERROR);
            continue;
        }
        if (r->info_due) { /* the upstream's 103, before its final head */
            r->info_due = 0;
            if (!q->submitted)
                submit_103(c, q->id, r->info, r->ninfo);
        }
        if (!q->submitted) {
            if (r->status)
                submit(c, q);
            continue;
        }
        if (q->trailers_due) {
            q->trailers_due = 0;
            sluice_session_submit_trailers(c->h2, q->id, r->trailers, r->ntrailers);
        } else if (r->waiting) {
            sluice_session_resume_data(c->h2, q->id);
        }
    }
}

static h2_req *new_req(sl_conn *c, uint32_t id, const sluice_nv *nv, size_t n, int end_stream);
static int answer(sl_conn *c, h2_req *q, const sluice_nv *nv, size_t n);
static void on_route(sl_req *r, const sluice_nv *nv, size_t n);
static int hint(sl_req *r, const sluice_nv *nv, size_t n);
static int push(sl_req *r, const char *path, const sluice_nv *h, size_t n);

static int on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv, size_t n,
                      int end_stream, void *ud)
{
    sl_conn *c = ud;
    if (kind == SLUICE_HEADERS_TRAILERS) {
        h2_req *q = sluice_session_get_stream_user_data(s, id);
        if (q && q->r.proxy)
            sl_proxy_req_end(&q->r, nv, n);
        if (q)
            sl_body_feed_end(&q->r);
        return 0;
    }
    if (kind != SLUICE_HEADERS_REQUEST)
        return 0;
    h2_req *q = new_req(c, id, nv, n, end_stream);
    if (!q)
        return sluice_session_submit_rst(s, id, SLUICE_H2_INTERNAL_ERROR);
    c->w->stats.requests++;
    return answer(c, q, nv, n);
}

/* A request on stream id (the client's or a pushed one), on the stream. */
static h2_req *new_req(sl_conn *c, uint32_t id, const sluice_nv *nv, size_t n, int end_stream)
{
    h2_req *q = calloc(1, sizeof(*q));
    if (!q || fill_request(q, nv, n) != 0) {
        if (q)
            sl_req_free(&q->r);
        return NULL;
    }
    q->id = id;
    q->r.started_ms = sl_now_ms(c);
    /* The client may send a whole stream window before any credit: with
     * adaptive windows that can be window_max (memory bounded by it). */
    const sluice_session_options *ho = &c->gen->cfg->h2;
    q->r.echo_cap = ho->window_adaptive && ho->window_max > ho->initial_window_size
                        ? ho->window_max : ho->initial_window_size;
    if (c->pol) /* a policy may raise windows up to this */
        q->r.echo_cap = sl_pol_window_limit(c->gen->cfg);
    q->r.fcache = &c->w->fcache;
    q->r.handler = c->w->handler;
    q->r.handler_ud = c->w->handler_ud;
    q->r.w = c->w;
    q->r.gen = c->gen;
    q->r.peer = c->peer;
    q->r.tls = c->tls != NULL;
    q->r.front_h2 = 1;
    q->r.no_body = end_stream;
    q->r.notify = notify;
    q->r.front = c;
    q->r.on_route = on_route;
    q->r.hint = hint;
    q->r.push = push;
    q->c = c;
    sluice_session_set_stream_user_data(c->h2, id, q);
    c->open_reqs++;
    c->w->stats.streams_total++;
    return q;
}

/* The route's default priority, unless the client signalled its own
 * (RFC 9218 §4: the `priority` field, a PRIORITY_UPDATE, RFC 7540 fields). */
static void route_priority(sl_conn *c, h2_req *q)
{
    const sl_cfg_route *rt = q->r.route;
    if (rt && rt->has_priority && sluice_session_priority_signalled(c->h2, q->id) == 0)
        sluice_session_set_priority(c->h2, q->id, rt->urgency, rt->incremental);
}

static void route_hints(sl_conn *c, h2_req *q)
{
    const sl_cfg_route *rt = q->r.route;
    sluice_nv nv[SL_CFG_MAX_HINTS];
    if (!rt || !rt->nhints)
        return;
    for (size_t i = 0; i < rt->nhints; i++)
        nv[i] = (sluice_nv){(const uint8_t *)"link", (const uint8_t *)rt->hints[i], 4,
                            strlen(rt->hints[i]), 0};
    submit_103(c, q->id, nv, rt->nhints);
}

/* Server push (RFC 9113 §8.4) of the route's paths with a GET's response,
 * promised while its stream is still open; each promised stream is
 * answered as a request for that path would be. A push the session
 * refuses (the client has it open, its stream limit, push turned off) is
 * simply not made. */
static int push_path(sl_conn *c, h2_req *q, const char *path, const sluice_nv *extra,
                     size_t nextra)
{
    if (q->pushed || !q->r.authority || strcmp(q->r.method, "GET") != 0 || !c->pol_push)
        return SLUICE_ERR_STATE;
    const char *scheme = c->tls ? "https" : "http", *auth = q->r.authority;
    sluice_nv nv[4 + 16] = {
        {(const uint8_t *)":method", (const uint8_t *)"GET", 7, 3, 0},
        {(const uint8_t *)":scheme", (const uint8_t *)scheme, 7, strlen(scheme), 0},
        {(const uint8_t *)":authority", (const uint8_t *)auth, 10, strlen(auth), 0},
        {(const uint8_t *)":path", (const uint8_t *)path, 5, strlen(path), 0},
    };
    if (nextra > 16)
        nextra = 16;
    if (nextra)
        memcpy(nv + 4, extra, nextra * sizeof(*nv));
    uint32_t pid = 0;
    int rv = sluice_session_submit_push(c->h2, q->id, nv, 4 + nextra, &pid);
    if (rv != 0) {
        sl_log(3, "conn %llu %s: stream %u: push %s skipped: %s", (unsigned long long)c->id,
               c->peer, q->id, path, sluice_strerror(rv));
        return rv;
    }
    h2_req *p = new_req(c, pid, nv, 4 + nextra, 1);
    if (!p)
        return sluice_session_submit_rst(c->h2, pid, SLUICE_H2_INTERNAL_ERROR);
    p->pushed = 1;
    answer(c, p, nv, 4 + nextra);
    return 0;
}

static void route_push(sl_conn *c, h2_req *q)
{
    const sl_cfg_route *rt = q->r.route;
    if (!rt || !rt->npush)
        return;
    for (size_t i = 0; i < rt->npush && sluice_session_push_allowed(c->h2); i++)
        push_path(c, q, rt->push[i], NULL, 0);
}

/* A policy's stream:push() and stream:hint(). */
static int push(sl_req *r, const char *path, const sluice_nv *h, size_t n)
{
    h2_req *q = (h2_req *)r;
    return push_path(q->c, q, path, h, n);
}

static int hint(sl_req *r, const sluice_nv *nv, size_t n)
{
    h2_req *q = (h2_req *)r;
    if (q->submitted)
        return SLUICE_ERR_STATE; /* 1xx only before the final response */
    submit_103(q->c, q->id, nv, n);
    return 0;
}

/* sl_respond() found the route: its default priority, then the policy,
 * whose choices win. */
static void on_route(sl_req *r, const sluice_nv *nv, size_t n)
{
    h2_req *q = (h2_req *)r;
    sl_conn *c = q->c;
    route_priority(c, q);
    if (c->pol && !q->pushed)
        sl_rpol_request(c, r, q->id, c->tls ? "https" : "http", nv, n);
}

/* A success the request body does not feed, while an upload the client
 * announced still comes: the response waits for the request's end
 * (on_stream_end). RFC 9113 §8.1 lets it go first, but a client may then
 * stop reading while it uploads, never see the WINDOW_UPDATEs and stall
 * (curl 7.88 on 2xx; a content-length it has all of counts as the end
 * too), and a RST_STREAM(NO_ERROR) after it fails its transfer. On >= 300
 * such a client stops uploading by itself, so those go at once; so do
 * answers to a client that waits for one before its body (100-continue),
 * to a tunnel, and to GET or HEAD without a content-length. */
static int holds(const h2_req *q)
{
    const sl_req *r = &q->r;
    if (r->in_eof || r->status >= 300 || r->body_kind == SL_BODY_ECHO ||
        r->body_kind == SL_BODY_PROXY || q->expects_100)
        return 0;
    if (r->content_length >= 0)
        return r->content_length > 0;
    return strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
           strcmp(r->method, "CONNECT") != 0;
}

/* Route and answer a request: priority, then 103 and pushes, which must
 * go before the final response (it may end the stream at once). */
static int answer(sl_conn *c, h2_req *q, const sluice_nv *nv, size_t n)
{
    sl_respond(&q->r, c->gen->cfg, nv, n, c->tls ? sl_tls_covers_cb : NULL, c->tls);
    if (q->r.no_body)
        sl_body_feed_end(&q->r);
    if (!q->pushed) {
        route_hints(c, q);
        route_push(c, q);
    }
    if (!q->r.status)
        return 0; /* an upstream answers later */
    q->held = holds(q);
    return q->held ? 0 : submit(c, q);
}

static int on_data(sluice_session *s, uint32_t id, const uint8_t *d, size_t len, void *ud)
{
    (void)ud;
    h2_req *q = sluice_session_get_stream_user_data(s, id);
    if (!q)
        return sluice_session_consume(s, id, len);
    if (q->r.body_received + len > q->r.max_body) /* 413 is too late now */
        return sluice_session_submit_rst(s, id, SLUICE_H2_CANCEL);
    size_t took = sl_body_feed(&q->r, d, len);
    if (q->r.body_kind == SL_BODY_PROXY) {
        /* Credited as the upstream takes it; the buffer holds a whole
         * window, so all of it fits. */
        if (took < len)
            return sluice_session_submit_rst(s, id, SLUICE_H2_FLOW_CONTROL_ERROR);
        return 0;
    }
    if (q->r.body_kind != SL_BODY_ECHO || took < len)
        sluice_session_consume(s, id, q->r.body_kind == SL_BODY_ECHO ? len - took : len);
    if (q->r.waiting)
        sluice_session_resume_data(s, id);
    return 0;
}

static int on_stream_end(sluice_session *s, uint32_t id, void *ud)
{
    h2_req *q = sluice_session_get_stream_user_data(s, id);
    if (q) {
        sl_body_feed_end(&q->r);
        if (q->r.waiting)
            sluice_session_resume_data(s, id);
        if (q->held) {
            q->held = 0;
            return submit(ud, q);
        }
    }
    return 0;
}

static int on_stream_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    sl_conn *c = ud;
    h2_req *q = sluice_session_get_stream_user_data(s, id);
    if (!q)
        return 0;
    c->open_reqs--;
    undirty(c, q);
    if (q->r.pol) { /* its handle goes stale now, even if bytes linger */
        sluice_policy_stream_free(q->r.pol);
        q->r.pol = NULL;
    }
    q->close_code = code;
    q->closed = 1;
    c->w->stats.stream_closes[code < 14 ? code : SLUICE_H2_INTERNAL_ERROR]++;
    access_log(c, q);
    if (outstanding(q) == 0) {
        sl_req_free(&q->r);
        return 0;
    }
    q->closed = 1;
    q->next_zombie = state_of(c)->zombies;
    state_of(c)->zombies = q;
    return 0;
}

static void on_data_sent(sluice_session *s, uint32_t id, size_t len, void *ud)
{
    sl_conn *c = ud;
    h2_req *q = sluice_session_get_stream_user_data(s, id), **link = NULL;
    if (!q)
        q = find_zombie(c, id, &link);
    if (!q)
        return;
    sl_body_released(&q->r, len);
    if (link) {
        if (outstanding(q) == 0) {
            *link = q->next_zombie;
            sl_req_free(&q->r);
        }
        return;
    }
    if (q->r.body_kind == SL_BODY_ECHO && !q->r.proxy)
        sluice_session_consume(s, id, len);
    if (q->r.waiting)
        sluice_session_resume_data(s, id);
}

static void on_log(sluice_session *s, int level, const char *msg, void *ud)
{
    (void)s;
    sl_conn *c = ud;
    sl_log(level, "conn %llu %s: %s", (unsigned long long)c->id, c->peer, msg);
}

/* ---- connection glue ---------------------------------------------------- */

int sl_h2_start(sl_conn *c, const uint8_t *in, size_t len)
{
    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = on_headers;
    cb.on_data = on_data;
    cb.on_stream_end = on_stream_end;
    cb.on_stream_close = on_stream_close;
    cb.on_data_sent = on_data_sent;
    cb.on_log = on_log;
    c->h2_state = calloc(1, sizeof(h2_state));
    if (!c->h2_state)
        return SLUICE_ERR_NOMEM;
    c->proto = 1;
    sluice_session_options opt = c->gen->cfg->h2;
    sl_cpol_start(c, c->tls ? "h2" : "h2c", &opt);
    int rv = sluice_session_new(&c->h2, SLUICE_ROLE_SERVER, &cb, c, &opt, NULL, now_ns(c));
    if (rv != 0)
        return rv;
    if (c->pol)
        sluice_policy_conn_set_session(c->pol, c->h2);
    return len ? sl_h2_input(c, in, len) : 0;
}

int sl_h2_input(sl_conn *c, const uint8_t *in, size_t len)
{
    long rv = sluice_session_recv(c->h2, in, len, now_ns(c));
    if (rv < 0) /* the GOAWAY is queued: flush, then close-wait */
        c->close_reason = SL_CLOSE_PROTOCOL;
    else if (c->pol)
        sl_cpol_window(c);
    return 0;
}

/* ---- write pacing -------------------------------------------------------- */

/* Each write becomes one burst of packets (on a path with a small RTT Linux
 * builds segments of up to 64 KiB from it), and an urgent response written
 * later waits behind all of it, in the socket and in the bottleneck's queue.
 * So the kernel gets about PACE_NS worth of data at the connection's rate
 * at a time, at least PACE_MIN, at most four times notsent_lowat: on a
 * 100 Mbit/s link that is 4 KiB instead of 64 KiB; from ~2 Gbit/s on
 * writes stay as large as before. */
#define PACE_NS 250000u         /* a quarter of a millisecond of data */
#define PACE_MIN 4096u
#define PACE_SAMPLE_NS 2000000u /* the rate: bytes acknowledged over >= 2 ms */

#ifdef __linux__
/* Linux's struct tcp_info goes on past glibc's copy of it (which stops at
 * tcpi_total_retrans); these fields have been there since Linux 4.6. */
typedef struct pace_tcp_info {
    struct tcp_info base;
    uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
    uint32_t segs_out, segs_in, notsent_bytes;
} pace_tcp_info;
_Static_assert(offsetof(pace_tcp_info, notsent_bytes) == 144, "Linux's tcp_info layout");

static void pace_lowat(sl_conn *c, h2_pace *p, unsigned lowat)
{
    if (lowat != p->lowat &&
        setsockopt(c->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat)) == 0)
        p->lowat = lowat;
}
#endif

/* How many bytes this flush may write: the target less what the kernel
 * still holds unsent. The target follows the rate at which the peer
 * acknowledges data while the socket is busy, and doubles when the socket
 * ran empty while we held output (we were too slow to refill it). The
 * kernel's mark follows the target, so it wakes us once half of it went. */
static size_t pace_budget(sl_conn *c)
{
    unsigned cfg_lowat = c->gen->cfg->notsent_lowat;
    size_t max = cfg_lowat ? 4 * (size_t)cfg_lowat : (size_t)1 << 20;
#ifdef __linux__
    h2_pace *p = &state_of(c)->pace;
    uint64_t now = uv_hrtime();
    if (!cfg_lowat || (p->target >= max && now - p->probe_ns < PACE_SAMPLE_NS))
        return max; /* fast enough for whole writes: ask again now and then */
    pace_tcp_info ti;
    socklen_t len = sizeof(ti);
    p->probe_ns = now;
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || len < sizeof(ti)) {
        p->target = max; /* an old kernel: write as much as it takes */
        return max;
    }
    if (!p->target) {
        /* Whole writes until the rate is known: starting small left the
         * loopback benchmark's client with a larger receive queue all
         * along (1.5 -> 5 ms for an urgent response behind bulk). */
        p->target = max;
        p->lowat = cfg_lowat;
    }
    if (ti.base.tcpi_unacked == 0 && ti.notsent_bytes == 0) {
        if (p->waiting && p->target < max)
            p->target = 2 * p->target < max ? 2 * p->target : max;
        p->mark_ns = 0; /* an empty pipe says nothing about its rate */
    } else if (!p->mark_ns) {
        p->mark_ns = now;
        p->mark_acked = ti.bytes_acked;
    } else if (now - p->mark_ns >= PACE_SAMPLE_NS) {
        uint64_t t = (ti.bytes_acked - p->mark_acked) * PACE_NS / (now - p->mark_ns);
        p->target = t < PACE_MIN ? PACE_MIN : t > max ? max : (size_t)t;
        p->mark_ns = now;
        p->mark_acked = ti.bytes_acked;
    }
    unsigned lowat = cfg_lowat;
    while (lowat > PACE_MIN && lowat > p->target)
        lowat /= 2;
    pace_lowat(c, p, lowat);
    /* Even a small room is filled: the socket polls writable while its
     * unsent bytes are under the mark (<= target), so leaving a room
     * unused would wake us again at once, over and over. */
    return ti.notsent_bytes < p->target ? p->target - ti.notsent_bytes : 0;
#else
    (void)c;
    return max;
#endif
}

int sl_h2_flush(sl_conn *c)
{
    process_dirty(c);
    size_t budget = pace_budget(c);
    state_of(c)->pace.waiting = 0;
    while (budget > 0) {
        sluice_iovec iov[64];
        int n = sluice_session_output(c->h2, iov, 64, budget, now_ns(c));
        if (n == 0 && sluice_session_want_write(c->h2))
            break; /* budget too small for a frame: come back when writable */
        if (n <= 0)
            return n;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].len;
        long w = sl_conn_write(c, iov, n, total);
        if (w < 0)
            return (int)w;
        sluice_session_output_done(c->h2, (size_t)w);
        if ((size_t)w < total) {
            c->write_blocked = state_of(c)->pace.waiting = 1;
            return 1;
        }
        budget -= (size_t)w < budget ? (size_t)w : budget;
    }
    /* Budget used up: come back when the socket drains below the mark. */
    if (sluice_session_want_write(c->h2))
        c->write_blocked = state_of(c)->pace.waiting = 1;
    return 1;
}

void sl_h2_goaway(sl_conn *c, int graceful)
{
    if (c->h2)
        sluice_session_goaway(c->h2, SLUICE_H2_NO_ERROR, graceful ? "shutdown" : "idle",
                              graceful);
}

int sl_h2_done(sl_conn *c)
{
    return !sluice_session_want_read(c->h2) && !sluice_session_want_write(c->h2);
}

uint64_t sl_h2_deadline_ms(sl_conn *c)
{
    uint64_t d = sluice_session_next_deadline(c->h2);
    return d == UINT64_MAX ? d : d / NS_PER_MS + 1;
}

void sl_h2_timeout(sl_conn *c)
{
    if (sluice_session_handle_timeout(c->h2, now_ns(c)) < 0)
        c->close_reason = SL_CLOSE_PROTOCOL;
}

void sl_h2_free(sl_conn *c)
{
    /* Freeing the session closes its streams (on_stream_close) and then
     * releases borrowed data (on_data_sent); zombies left are ours. */
    h2_state *st = state_of(c);
    sluice_session_stats ss = {.struct_size = sizeof(ss)};
    if (sluice_session_get_stats(c->h2, &ss) == 0) {
        sl_stats *w = &c->w->stats;
        if (ss.goaway_sent)
            w->goaways[ss.goaway_sent_code < 14 ? ss.goaway_sent_code : SLUICE_H2_INTERNAL_ERROR]++;
        w->h2_pushes += ss.pushes;
        if (ss.rtt_ns) {
            static const unsigned bounds[] = SL_RTT_BOUNDS_MS;
            int b = 0;
            while (b < SL_RTT_BUCKETS - 1 && ss.rtt_ns > (uint64_t)bounds[b] * 1000000u)
                b++;
            w->rtt_buckets[b]++;
            w->rtt_n++;
            w->rtt_sum_ns += ss.rtt_ns;
        }
    }
    sluice_session_free(c->h2);
    c->h2 = NULL;
    if (st) {
        while (st->zombies) {
            h2_req *q = st->zombies;
            st->zombies = q->next_zombie;
            sl_req_free(&q->r);
        }
        free(st);
    }
    c->h2_state = NULL;
}
