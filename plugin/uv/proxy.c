/* proxy.c — one proxied request: the head rewritten for the upstream
 * (hop-by-hop fields out, forwarding fields in), bodies through bounded
 * rings each way, server choice, retries where safe, and 502/504. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host.h"
#include "http.h"
#include "proxy.h"
#include "respond.h"

/* ---- fields -------------------------------------------------------------- */

static int name_is(const sluice_nv *f, const char *name)
{
    size_t l = strlen(name);
    return f->name_len == l && strncasecmp((const char *)f->name, name, l) == 0;
}

/* Is name among the comma-separated tokens of any Connection field? */
static int connection_token(const sluice_nv *nv, size_t n, const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (!name_is(&nv[i], "connection"))
            continue;
        const char *v = (const char *)nv[i].value, *end = v + nv[i].value_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *t = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            if ((size_t)(v - t) == len && strncasecmp(t, (const char *)name, len) == 0)
                return 1;
        }
    }
    return 0;
}

/* RFC 9110 §7.6.1, RFC 9113 §8.2.2: never forwarded, either way. te is
 * handled by the caller (HTTP/2 keeps "te: trailers"). */
static int hop_by_hop(const sluice_nv *f, const sluice_nv *all, size_t n)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade", "host", "expect",
                                        "http2-settings", "proxy-authenticate"};
    if (f->name_len && f->name[0] == ':')
        return 1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (name_is(f, names[i]))
            return 1;
    return connection_token(all, n, f->name, f->name_len);
}

/* A field list built in one buffer, names lowercased. */
typedef struct fl {
    sluice_nv *nv;
    size_t n, cap;
    char *buf;
    size_t len, bcap;
} fl;

static int fl_add(fl *l, const char *name, size_t nl, const char *v, size_t vl)
{
    if (l->n == l->cap || l->len + nl + vl > l->bcap)
        return SLUICE_ERR_LIMIT;
    char *p = l->buf + l->len;
    for (size_t i = 0; i < nl; i++) {
        char c = name[i];
        p[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    memcpy(p + nl, v, vl);
    l->nv[l->n++] = (sluice_nv){(const uint8_t *)p, (const uint8_t *)p + nl, nl, vl, 0};
    l->len += nl + vl;
    return 0;
}

static int fl_init(fl *l, size_t n, size_t bytes)
{
    memset(l, 0, sizeof(*l));
    l->cap = n;
    l->bcap = bytes;
    l->nv = malloc(n * sizeof(*l->nv) + 1);
    l->buf = malloc(bytes + 1);
    return l->nv && l->buf ? 0 : SLUICE_ERR_NOMEM;
}

/* The client's address without the port: "1.2.3.4", "::1". */
static size_t client_ip(const char *peer, char *out, size_t cap)
{
    if (!peer)
        peer = "-";
    size_t n;
    if (peer[0] == '[') {
        n = strcspn(peer + 1, "]");
        peer++;
    } else {
        n = strcspn(peer, ":");
        if (strchr(peer + n + (peer[n] != 0), ':')) /* bare v6 */
            n = strlen(peer);
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, peer, n);
    out[n] = 0;
    return n;
}

static const char *methods_idempotent[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};

/* The upstream request's fields. */
static int build_request(sl_proxy *px, sl_req *r, const sl_cfg_route *rt, const sluice_nv *nv,
                         size_t n)
{
    const sl_cfg_upstream *u = px->g->cfg;
    size_t bytes = 1024;
    for (size_t i = 0; i < n; i++)
        bytes += nv[i].name_len + nv[i].value_len + 2;
    fl l;
    if (fl_init(&l, n + 8, bytes) != 0) {
        free(l.nv);
        free(l.buf);
        return SLUICE_ERR_NOMEM;
    }
    char ip[64];
    size_t iplen = client_ip(r->peer, ip, sizeof(ip));
    const char *proto = r->tls ? "https" : "http";
    const sluice_nv *xff = NULL, *via = NULL, *fwd = NULL;
    size_t cookie_at = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        const sluice_nv *f = &nv[i];
        if (name_is(f, "te")) {
            /* HTTP/2 upstreams (gRPC) need "te: trailers"; HTTP/1.1 ones
             * would need it listed in Connection, so it stays here. */
            if (u->protocol == SL_UP_H2 && f->value_len == 8 &&
                strncasecmp((const char *)f->value, "trailers", 8) == 0)
                fl_add(&l, "te", 2, "trailers", 8);
            continue;
        }
        if (hop_by_hop(f, nv, n))
            continue;
        if (rt->forwarded.x_forwarded_for && name_is(f, "x-forwarded-for")) {
            xff = f;
            continue;
        }
        if (rt->forwarded.x_forwarded_proto && name_is(f, "x-forwarded-proto"))
            continue; /* ours is the truth */
        if (rt->forwarded.via && name_is(f, "via")) {
            via = f;
            continue;
        }
        if (rt->forwarded.forwarded && name_is(f, "forwarded")) {
            fwd = f;
            continue;
        }
        if (u->protocol == SL_UP_HTTP1 && name_is(f, "cookie")) {
            /* RFC 9113 §8.2.3: split cookies are joined for HTTP/1.1. */
            if (cookie_at != SIZE_MAX) {
                sluice_nv *c = &l.nv[cookie_at];
                if (l.len + 2 + f->value_len > l.bcap)
                    continue;
                /* the cookie field is the last one written when joined in
                 * place; otherwise append a fresh joined copy */
                char *end = l.buf + l.len;
                if ((const char *)c->value + c->value_len == end) {
                    memcpy(end, "; ", 2);
                    memcpy(end + 2, f->value, f->value_len);
                    c->value_len += 2 + f->value_len;
                    l.len += 2 + f->value_len;
                    continue;
                }
                size_t vl = c->value_len;
                char tmp[8192];
                if (vl + 2 + f->value_len > sizeof(tmp))
                    continue;
                memcpy(tmp, c->value, vl);
                memcpy(tmp + vl, "; ", 2);
                memcpy(tmp + vl + 2, f->value, f->value_len);
                c->name_len = 0; /* dropped below */
                fl_add(&l, "cookie", 6, tmp, vl + 2 + f->value_len);
                cookie_at = l.n - 1;
                continue;
            }
            fl_add(&l, "cookie", 6, (const char *)f->value, f->value_len);
            cookie_at = l.n - 1;
            continue;
        }
        if (name_is(f, "content-length") && r->no_body)
            continue;
        fl_add(&l, (const char *)f->name, f->name_len, (const char *)f->value, f->value_len);
    }
    char b[512];
    int k;
    if (rt->forwarded.via) {
        k = snprintf(b, sizeof(b), "%.*s%s%s sluice", via ? (int)via->value_len : 0,
                     via ? (const char *)via->value : "", via ? ", " : "",
                     r->front_h2 ? "2" : "1.1");
        if (k > 0 && (size_t)k < sizeof(b))
            fl_add(&l, "via", 3, b, (size_t)k);
    }
    if (rt->forwarded.x_forwarded_for) {
        k = snprintf(b, sizeof(b), "%.*s%s%s", xff ? (int)xff->value_len : 0,
                     xff ? (const char *)xff->value : "", xff ? ", " : "", ip);
        if (k > 0 && (size_t)k < sizeof(b))
            fl_add(&l, "x-forwarded-for", 15, b, (size_t)k);
    }
    if (rt->forwarded.x_forwarded_proto)
        fl_add(&l, "x-forwarded-proto", 17, proto, strlen(proto));
    if (rt->forwarded.forwarded) {
        int v6 = memchr(ip, ':', iplen) != NULL;
        k = snprintf(b, sizeof(b), "%.*s%sfor=%s%s%s;proto=%s%s%s%s", fwd ? (int)fwd->value_len : 0,
                     fwd ? (const char *)fwd->value : "", fwd ? ", " : "", v6 ? "\"[" : "", ip,
                     v6 ? "]\"" : "", proto, r->authority ? ";host=\"" : "",
                     r->authority ? r->authority : "", r->authority ? "\"" : "");
        if (k > 0 && (size_t)k < sizeof(b))
            fl_add(&l, "forwarded", 9, b, (size_t)k);
    }
    /* Drop fields emptied by cookie joining. */
    size_t o = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.nv[i].name_len)
            l.nv[o++] = l.nv[i];
    l.n = o;
    px->fields = l.nv;
    px->nfields = l.n;
    px->fbuf = l.buf;
    const char *host = rt->proxy_host ? rt->proxy_host : r->authority;
    if (!host)
        host = px->g->srv[0].cfg->name;
    px->authority = strdup(host);
    px->path = strdup(r->path);
    return px->authority && px->path ? 0 : SLUICE_ERR_NOMEM;
}

/* Response fields for the client: hop-by-hop out, via in; the list
 * replaces *out (buffer *buf). */
static int filter_response(sl_proxy *px, const sluice_nv *nv, size_t n, int via,
                           sluice_nv **out, size_t *nout, char **buf)
{
    size_t bytes = 64;
    int te = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += nv[i].name_len + nv[i].value_len;
        te |= name_is(&nv[i], "transfer-encoding");
    }
    fl l;
    if (fl_init(&l, n + 2, bytes) != 0) {
        free(l.nv);
        free(l.buf);
        return SLUICE_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const sluice_nv *f = &nv[i];
        if (name_is(f, "te") || hop_by_hop(f, nv, n) || (te && name_is(f, "content-length")))
            continue;
        fl_add(&l, (const char *)f->name, f->name_len, (const char *)f->value, f->value_len);
    }
    if (via) {
        const char *v = px->g->cfg->protocol == SL_UP_H2 ? "2 sluice" : "1.1 sluice";
        fl_add(&l, "via", 3, v, strlen(v));
    }
    free(*out);
    free(*buf);
    *out = l.nv;
    *nout = l.n;
    *buf = l.buf;
    return 0;
}

static int copy_response(sl_proxy *px, const sluice_nv *nv, size_t n, int via)
{
    return filter_response(px, nv, n, via, &px->hdrs, &px->nhdrs, &px->hbuf);
}

static int copy_fields(const sluice_nv *nv, size_t n, sluice_nv **out, size_t *nout, char **buf)
{
    size_t bytes = 1;
    for (size_t i = 0; i < n; i++)
        bytes += nv[i].name_len + nv[i].value_len;
    fl l;
    if (fl_init(&l, n + 1, bytes) != 0) {
        free(l.nv);
        free(l.buf);
        return SLUICE_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (!(nv[i].name_len && nv[i].name[0] == ':'))
            fl_add(&l, (const char *)nv[i].name, nv[i].name_len, (const char *)nv[i].value,
                   nv[i].value_len);
    free(*out);
    free(*buf);
    *out = l.nv;
    *nout = l.n;
    *buf = l.buf;
    return 0;
}

/* ---- logging --------------------------------------------------------------- */

static void plog(sl_proxy *px, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (px->srv)
        sl_log(level, "upstream %s server %s: %s", px->g->cfg->name, px->srv->cfg->name, msg);
    else
        sl_log(level, "upstream %s: %s", px->g->cfg->name, msg);
}

static uint64_t now_ms(const sl_proxy *px)
{
    return uv_now(px->rt->w->loop);
}

static void notify(sl_proxy *px)
{
    if (px->r && px->r->notify)
        px->r->notify(px->r);
}

/* ---- attempts ---------------------------------------------------------------- */

static void uncount(sl_proxy *px)
{
    if (px->counted && px->srv) {
        px->srv->active--;
        px->counted = 0;
    }
}

static void give_error(sl_proxy *px, int status)
{
    sl_req *r = px->r;
    if (px->on_result) {
        void (*cb)(sl_proxy *, int) = px->on_result;
        px->on_result = NULL;
        cb(px, 0);
        return;
    }
    if (!r)
        return;
    sl_stats *st = &px->rt->w->stats;
    if (status == 504)
        st->up_504++;
    else
        st->up_502++;
    r->xhdrs = NULL;
    r->nxhdrs = 0;
    sl_respond_error(r, status);
    px->head_given = 1;
    notify(px);
}

static void attempt(sl_proxy *px);

void sl_px_ready(sl_proxy *px)
{
    sl_uconn *u = px->uc;
    int rv = u->proto == SL_UP_H2 ? sl_ph2_start(u, px) : sl_ph1_start(u, px);
    if (rv != 0)
        sl_px_failed(px, SL_PXF_PROTOCOL, rv == SLUICE_ERR_LIMIT ? "stream limit" : "cannot start");
}

static sl_uconn *h2_conn(sl_upsrv *s)
{
    for (sl_uconn *u = s->conns; u; u = u->next)
        if (u->proto == SL_UP_H2 && u->state != SL_UC_CLOSED && !u->goaway &&
            u->nstreams < s->g->cfg->h2_streams)
            return u;
    return NULL;
}

static void attach_waiting(sl_uconn *u, sl_proxy *px)
{
    px->uc = u;
    px->attached = 1;
    px->snext = u->waiting;
    px->sprev = NULL;
    if (u->waiting)
        u->waiting->sprev = px;
    u->waiting = px;
}

static void attempt(sl_proxy *px)
{
    uint64_t now = now_ms(px);
    const sl_cfg_upstream *cfg = px->g->cfg;
    if (px->tries >= cfg->tries || px->tries >= 16) {
        give_error(px, 502);
        return;
    }
    sl_upsrv *s = sl_up_pick(px->g, px, now);
    if (!s) {
        if (px->tries == 0) {
            px->srv = NULL;
            plog(px, 1, "no live servers");
        }
        give_error(px, 502);
        return;
    }
    px->srv = s;
    px->rt->w->stats.up_attempts++;
    px->rt->w->stats.up_retries += px->tries > 0;
    px->tried[px->tries++] = (uint32_t)(s - px->g->srv);
    free(px->srv_name);
    px->srv_name = strdup(s->cfg->name);
    s->active++;
    px->counted = 1;
    px->sent_any = px->res_bytes = px->got_head = 0;
    px->last_progress = now;
    sl_uconn *u = NULL;
    if (cfg->protocol == SL_UP_H2)
        u = h2_conn(s);
    else {
        while (s->idle && !u) {
            u = s->idle;
            s->idle = u->idle_next;
            s->nidle--;
            u->in_idle = 0;
            if (u->peer_fin || u->state != SL_UC_READY) {
                sl_uconn_close(u, "closed while idle");
                u = NULL;
            }
        }
    }
    if (!u) {
        if (s->nconns >= cfg->max_conns) {
            plog(px, 1, "max_conns (%u) reached", cfg->max_conns);
            sl_px_failed(px, SL_PXF_RESET, "no connection");
            return;
        }
        int rv = sl_uconn_open(s, cfg->protocol, &u);
        if (rv != 0) {
            sl_px_failed(px, SL_PXF_CONNECT,
                         rv == SLUICE_ERR_INTERNAL ? strerror(errno)
                         : rv == SLUICE_ERR_INVAL ? "tls context failed to load"
                                                  : sluice_strerror(rv));
            return;
        }
    }
    if (u->state == SL_UC_READY && (u->proto == SL_UP_HTTP1 || u->h2)) {
        px->uc = u;
        px->attached = 1;
        sl_px_ready(px);
    } else {
        attach_waiting(u, px);
    }
}

static int can_retry(const sl_proxy *px)
{
    if (px->res_bytes || !px->r)
        return 0;
    if (!px->sent_any)
        return 1;
    return px->idempotent && !px->has_body;
}

void sl_px_failed(sl_proxy *px, int kind, const char *why)
{
    /* The caller has taken px off its connection already. */
    uint64_t now = now_ms(px);
    px->rt->w->stats.up_fails[kind]++;
    int level = px->on_result ? 3 : 1; /* a failing check says so once, in hc_result */
    if (kind == SL_PXF_CONNECT)
        plog(px, level, "connect failed: %s", why);
    else
        plog(px, level, "%s", why);
    /* Health checks keep their own count (upstream.c). */
    if (px->srv && !px->on_result &&
        (kind == SL_PXF_CONNECT || kind == SL_PXF_TIMEOUT || kind == SL_PXF_TLS))
        sl_up_failed(px->srv, now, why);
    uncount(px);
    if (px->on_result) {
        give_error(px, 0);
        px->done = 1;
        sl_px_free_if_done(px);
        return;
    }
    if (!px->r) {
        px->done = 1;
        sl_px_free_if_done(px);
        return;
    }
    if (!px->head_given && can_retry(px) && px->tries < px->g->cfg->tries) {
        attempt(px);
        return;
    }
    px->done = 1;
    if (!px->head_given) {
        give_error(px, kind == SL_PXF_TIMEOUT ? 504 : 502);
        return;
    }
    px->r->abort = 1;
    notify(px);
}

void sl_px_head(sl_proxy *px, int status, const sluice_nv *nv, size_t n, int body)
{
    px->status = status;
    px->got_head = 1;
    px->res_bytes = 1;
    px->last_progress = now_ms(px);
    if (px->on_result)
        return; /* the check's verdict comes at the end */
    sl_req *r = px->r;
    if (!r)
        return;
    if (copy_response(px, nv, n, 1) != 0) {
        sl_px_failed(px, SL_PXF_PROTOCOL, "out of memory");
        return;
    }
    r->status = status;
    r->xhdrs = px->hdrs;
    r->nxhdrs = px->nhdrs;
    r->body_kind = body && !r->is_head ? SL_BODY_PROXY : SL_BODY_NONE;
    r->body_len = UINT64_MAX;
    size_t vl;
    const char *cl = sl_find_header(px->hdrs, px->nhdrs, "content-length", &vl);
    int64_t len;
    if (cl && sl_http_parse_content_length((const uint8_t *)cl, vl, &len) == 0)
        r->body_len = (uint64_t)len;
    px->head_given = 1;
    notify(px);
}

/* RFC 8297: 103 Early Hints pass through (the hints are the upstream's
 * to give); other 1xx are this hop's business (RFC 9110 §15.2). */
void sl_px_info(sl_proxy *px, int status, const sluice_nv *nv, size_t n)
{
    px->last_progress = now_ms(px);
    sl_req *r = px->r;
    if (status != 103 || !r || px->head_given || px->on_result)
        return;
    if (filter_response(px, nv, n, 0, &px->info, &px->ninfo, &px->ibuf) != 0)
        return; /* out of memory: hints are optional */
    r->info = px->info;
    r->ninfo = px->ninfo;
    r->info_due = 1;
    notify(px);
}

size_t sl_px_body(sl_proxy *px, const uint8_t *d, size_t n)
{
    px->res_bytes = 1;
    px->last_progress = now_ms(px);
    if (!px->r)
        return n; /* a check, or the client is gone: dropped */
    size_t took = sl_ring_put(&px->res, d, n);
    px->blocked = took < n;
    if (took)
        notify(px);
    return took;
}

void sl_px_trailers(sl_proxy *px, const sluice_nv *nv, size_t n)
{
    if (!px->r)
        return;
    if (copy_fields(nv, n, &px->trailers, &px->ntrailers, &px->tbuf) == 0 && px->ntrailers) {
        px->r->trailers = px->trailers;
        px->r->ntrailers = px->ntrailers;
    }
}

void sl_px_end(sl_proxy *px)
{
    px->res_eof = 1;
    px->done = 1;
    uncount(px);
    if (px->srv)
        sl_up_succeeded(px->srv);
    if (px->on_result) {
        void (*cb)(sl_proxy *, int) = px->on_result;
        px->on_result = NULL;
        cb(px, px->status);
        return;
    }
    notify(px);
}

void sl_px_req_taken(sl_proxy *px, size_t n)
{
    px->req_taken += n;
    if (px->r && n) {
        px->r->credit += n;
        notify(px);
    }
}

int sl_px_detached(const sl_proxy *px)
{
    return px->r == NULL && px->on_result == NULL;
}

void sl_px_free_if_done(sl_proxy *px)
{
    if (px->r || px->attached || px->on_result)
        return;
    uncount(px);
    sl_ring_free(&px->req);
    sl_ring_free(&px->res);
    free(px->fields);
    free(px->fbuf);
    free(px->req_trailers);
    free(px->req_tbuf);
    free(px->hdrs);
    free(px->hbuf);
    free(px->trailers);
    free(px->tbuf);
    free(px->info);
    free(px->ibuf);
    free(px->path);
    free(px->authority);
    free(px->srv_name);
    sl_uprt *rt = px->rt;
    free(px);
    sl_uprt_unref(rt);
}

/* ---- front ends ------------------------------------------------------------ */

static sl_proxy *px_new(sl_uprt *rt, size_t group)
{
    sl_proxy *px = calloc(1, sizeof(*px));
    if (!px)
        return NULL;
    px->rt = rt;
    rt->refs++;
    px->g = &rt->groups[group];
    px->content_length = -1;
    px->req.cap = px->res.cap = px->g->cfg->buffer;
    return px;
}

void sl_proxy_start(sl_req *r, const sl_config *cfg, const sl_cfg_route *rt,
                    const sluice_nv *nv, size_t n)
{
    (void)cfg; /* the request's generation (r->gen) decides */
    sl_uprt *up = r->w ? sl_uprt_get(r->w, r->gen) : NULL;
    sl_proxy *px = up ? px_new(up, rt->upstream) : NULL;
    if (!px) {
        sl_respond_error(r, 502);
        return;
    }
    r->proxy = px;
    px->r = r;
    r->body_kind = SL_BODY_PROXY;
    r->status = 0;
    memcpy(px->method, r->method, sizeof(px->method));
    for (size_t i = 0; i < sizeof(methods_idempotent) / sizeof(methods_idempotent[0]); i++)
        px->idempotent |= strcmp(r->method, methods_idempotent[i]) == 0;
    px->has_body = !r->no_body && r->content_length != 0;
    px->content_length = px->has_body ? r->content_length : -1;
    if (!px->has_body)
        px->req_eof = 1;
    /* The client may send a whole stream window before we credit any. */
    /* A whole client stream window must fit: the front end says how big
     * it may get (adaptive windows, a policy's). */
    if (r->front_h2 && r->echo_cap > px->req.cap)
        px->req.cap = r->echo_cap;
    if (build_request(px, r, rt, nv, n) != 0) {
        r->status = 502;
        give_error(px, 502);
        return;
    }
    attempt(px);
}

size_t sl_proxy_req_room(sl_req *r)
{
    sl_proxy *px = r->proxy;
    return px && !px->done ? sl_ring_room(&px->req) : SIZE_MAX;
}

size_t sl_proxy_req_body(sl_req *r, const uint8_t *d, size_t n)
{
    sl_proxy *px = r->proxy;
    if (!px || px->done || px->req_eof) {
        r->credit += n; /* nobody wants it: discarded, and credited */
        if (r->notify)
            r->notify(r);
        return n;
    }
    size_t took = sl_ring_put(&px->req, d, n);
    if (took && px->uc)
        sl_uconn_kick(px->uc);
    return took;
}

void sl_proxy_req_end(sl_req *r, const sluice_nv *trailers, size_t n)
{
    sl_proxy *px = r->proxy;
    if (!px || px->req_eof)
        return;
    if (n)
        copy_fields(trailers, n, &px->req_trailers, &px->nreq_trailers, &px->req_tbuf);
    px->req_eof = 1;
    if (px->uc)
        sl_uconn_kick(px->uc);
}

long sl_proxy_read(sl_req *r, const uint8_t **p, size_t max, int *eof)
{
    sl_proxy *px = r->proxy;
    size_t n = max ? sl_ring_take(&px->res, p, max) : 0;
    *eof = px->res_eof && sl_ring_ready(&px->res) == 0;
    if (n == 0 && !*eof && (max || sl_ring_ready(&px->res) == 0))
        return SLUICE_ERR_AGAIN; /* with the window shut, ready bytes are not "again" */
    return (long)n;
}

void sl_proxy_released(sl_req *r, size_t n)
{
    sl_proxy *px = r->proxy;
    sl_ring_release(&px->res, n);
    px->res_credit += n;
    if (px->uc && !px->done)
        sl_uconn_kick(px->uc);
}

void sl_proxy_detach(sl_req *r)
{
    sl_proxy *px = r->proxy;
    if (!px)
        return;
    r->proxy = NULL;
    px->r = NULL;
    if (!px->done && px->uc) {
        sl_uconn *u = px->uc;
        if (u->proto == SL_UP_H2 && u->h2 && px->sid) {
            sl_ph2_cancel(u, px);
        } else {
            /* HTTP/1.1: the rest of the exchange cannot be skipped over. */
            if (u->px == px)
                u->px = NULL;
            else if (px->attached) { /* still waiting for the connection */
                if (px->sprev)
                    px->sprev->snext = px->snext;
                else
                    u->waiting = px->snext;
                if (px->snext)
                    px->snext->sprev = px->sprev;
            }
            px->uc = NULL;
            px->attached = 0;
            if (u->proto == SL_UP_HTTP1)
                sl_uconn_close(u, "client gone");
        }
    }
    sl_px_free_if_done(px);
}

int sl_proxy_check(sl_upsrv *s, void (*on_result)(sl_proxy *px, int status), void *ud)
{
    sl_upgroup *g = s->g;
    sl_proxy *px = px_new(g->rt, (size_t)(g - g->rt->groups));
    if (!px)
        return SLUICE_ERR_NOMEM;
    px->on_result = on_result;
    px->result_ud = ud;
    memcpy(px->method, "GET", 4);
    px->idempotent = 1;
    px->req_eof = 1;
    px->path = strdup(g->cfg->health.path ? g->cfg->health.path : "/");
    px->authority = strdup(s->cfg->name);
    px->fields = calloc(1, sizeof(sluice_nv));
    if (!px->path || !px->authority || !px->fields) {
        px->on_result = NULL;
        sl_px_free_if_done(px);
        return SLUICE_ERR_NOMEM;
    }
    px->srv = s;
    px->tried[px->tries++] = (uint32_t)(s - g->srv);
    px->srv_name = strdup(s->cfg->name);
    px->last_progress = now_ms(px);
    sl_uconn *u;
    int rv = sl_uconn_open(s, g->cfg->protocol, &u);
    if (rv != 0) {
        px->on_result = NULL;
        sl_px_free_if_done(px);
        return rv;
    }
    u->no_pool = 1; /* a check's connection goes after the check */
    attach_waiting(u, px);
    return 0;
}
