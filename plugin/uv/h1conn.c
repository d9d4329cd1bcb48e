/* h1conn.c — HTTP/1.1 on a host connection (RFC 9112): requests parsed by
 * the core's h1 codec, one at a time (pipelined ones wait their turn),
 * answered by the built-in responders (after a 103 Early Hints when the
 * route or the upstream has hints); static files go out with sendfile on
 * plain-text connections. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "host.h"
#include "policyhost.h"
#include "proxy.h"
#include "respond.h"

#define H1_PENDING_MAX (64 * 1024) /* unparsed input held while answering */
#define H1_CHUNK 16384

typedef struct sl_h1conn {
    sl_h1_parser p;
    sl_req *req;
    int in_body;           /* the request's body is being read */
    int req_complete;      /* the request has been read whole */
    int head_sent;
    int chunked;           /* response body in chunked coding */
    int keep_alive;
    int finishing;         /* last chunk queued */
    int closing;           /* no further request on this connection */
    int http11;            /* the request was HTTP/1.1: 1xx may go before the response */
    uint8_t *ob;           /* head, chunk framing: bytes we own */
    size_t ob_len, ob_off, ob_cap;
    uint8_t ob_inline[2048];
    const uint8_t *bp;     /* borrowed body bytes being written */
    size_t bl, boff;
    uint8_t tail[16];      /* after the body: chunk CRLF, last chunk */
    size_t tail_len, tail_off;
    uint8_t *in;           /* input not parsed yet */
    size_t in_len, in_cap;
    uint64_t head_since;   /* first byte of a request head not yet whole */
} sl_h1conn;

static void access_log(sl_conn *c, sl_req *r)
{
    FILE *f = c->w->access_log;
    if (!f)
        return;
    const char *up = r->proxy ? r->proxy->srv_name : NULL;
    fprintf(f, "%s %s %s %s %d %llu %llums stream=0 proto=http/1.1 tls=%s%s%s%s\n", c->peer,
            r->method, r->authority ? r->authority : "-", r->path ? r->path : "-", r->status,
            (unsigned long long)r->sent,
            (unsigned long long)(sl_now_ms(c) - r->started_ms),
            c->tls ? sl_tls_version(c->tls) : "-", up ? " upstream=" : "", up ? up : "",
            r->tags ? r->tags : "");
}

/* Room in the owned output buffer: the inline one, or a larger one for a
 * big proxied head or trailers. */
static int ob_reserve(sl_h1conn *h, size_t n)
{
    if (!h->ob) {
        h->ob = h->ob_inline;
        h->ob_cap = sizeof(h->ob_inline);
    }
    if (h->ob_len + n <= h->ob_cap)
        return 0;
    size_t cap = h->ob_cap * 2;
    while (cap < h->ob_len + n)
        cap *= 2;
    uint8_t *b = malloc(cap);
    if (!b)
        return SLUICE_ERR_NOMEM;
    memcpy(b, h->ob, h->ob_len);
    if (h->ob != h->ob_inline)
        free(h->ob);
    h->ob = b;
    h->ob_cap = cap;
    return 0;
}

static void h1_notify(sl_req *r)
{
    sl_conn_kick(r->front);
}

/* 103 Early Hints (RFC 8297) ahead of the final head, to HTTP/1.1 clients
 * only: an HTTP/1.0 one would take it for the response (RFC 9110 §15.2).
 * Hints are optional: fields that cannot be written drop the 103. */
static void queue_103(sl_h1conn *h, const sluice_nv *nv, size_t n)
{
    size_t len = 0;
    if (!h->http11)
        return;
    int rv = sl_h1_write_response_head(103, NULL, 0, nv, n, NULL, 0, &len);
    if (rv == SLUICE_ERR_NOBUF && ob_reserve(h, len) == 0)
        rv = sl_h1_write_response_head(103, NULL, 0, nv, n, h->ob + h->ob_len,
                                       h->ob_cap - h->ob_len, &len);
    if (rv == 0)
        h->ob_len += len;
}

static void route_hints(sl_h1conn *h, const sl_cfg_route *rt)
{
    sluice_nv nv[SL_CFG_MAX_HINTS];
    if (!rt || !rt->nhints)
        return;
    for (size_t i = 0; i < rt->nhints; i++)
        nv[i] = (sluice_nv){(const uint8_t *)"link", (const uint8_t *)rt->hints[i], 4,
                            strlen(rt->hints[i]), 0};
    queue_103(h, nv, rt->nhints);
}

/* A policy's stream:hint(): before the head only. */
static int h1_hint(sl_req *r, const sluice_nv *nv, size_t n)
{
    sl_conn *c = r->front;
    if (!c->h1 || c->h1->head_sent)
        return SLUICE_ERR_STATE;
    queue_103(c->h1, nv, n);
    return 0;
}

static void h1_on_route(sl_req *r, const sluice_nv *nv, size_t n)
{
    sl_conn *c = r->front;
    if (c->pol)
        sl_rpol_request(c, r, (uint32_t)c->w->stats.requests, c->tls ? "https" : "http", nv, n);
}

static int begin(sl_conn *c, sl_h1conn *h, const sl_h1_head *hd)
{
    sl_req *r = calloc(1, sizeof(*r));
    if (!r)
        return SLUICE_ERR_NOMEM;
    r->fd = -1;
    size_t ml = hd->method_len < sizeof(r->method) - 1 ? hd->method_len : sizeof(r->method) - 1;
    memcpy(r->method, hd->method, ml);
    r->path = sl_strndup(hd->target, hd->target_len);
    r->authority = hd->host ? sl_strndup(hd->host, hd->host_len) : NULL;
    r->is_head = strcmp(r->method, "HEAD") == 0;
    r->content_length = hd->body == SL_H1_BODY_LENGTH ? (int64_t)hd->content_length
                        : hd->body == SL_H1_BODY_NONE ? 0 : -1;
    r->started_ms = sl_now_ms(c);
    r->echo_cap = SL_ECHO_BUF;
    r->fcache = &c->w->fcache;
    r->handler = c->w->handler;
    r->handler_ud = c->w->handler_ud;
    r->w = c->w;
    r->gen = c->gen;
    r->peer = c->peer;
    r->tls = c->tls != NULL;
    r->no_body = hd->body == SL_H1_BODY_NONE;
    r->notify = h1_notify;
    r->front = c;
    r->on_route = h1_on_route;
    r->hint = h1_hint;
    h->req = r;
    h->head_since = 0;
    h->keep_alive = hd->keep_alive && !h->closing;
    h->http11 = hd->version >= 11;
    c->open_reqs++;
    c->w->stats.requests++;
    if (!r->path)
        return SLUICE_ERR_NOMEM;
    sl_respond(r, c->gen->cfg, hd->fields, hd->nfields, c->tls ? sl_tls_covers_cb : NULL, c->tls);
    if (r->status >= 400 && hd->body != SL_H1_BODY_NONE)
        h->keep_alive = 0; /* do not read a body we refused */
    if (hd->expect_continue && (r->body_kind == SL_BODY_ECHO || r->body_kind == SL_BODY_PROXY)) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (ob_reserve(h, sizeof(cont)) == 0) {
            memcpy(h->ob + h->ob_len, cont, sizeof(cont) - 1);
            h->ob_len += sizeof(cont) - 1;
        }
    }
    route_hints(h, r->route);
    return 0;
}

/* A request we cannot parse: answer with the status its error maps to,
 * then close (the framing of what follows is unknown). */
static void fail(sl_conn *c, sl_h1conn *h, int err)
{
    sl_log(2, "conn %llu %s: bad HTTP/1.1 request: %s", (unsigned long long)c->id, c->peer,
           sl_h1_strerror(err));
    h->closing = 1;
    h->keep_alive = 0;
    if (h->req && h->head_sent) {
        h->finishing = 1; /* mid-response: just stop */
        return;
    }
    if (!h->req) {
        h->req = calloc(1, sizeof(*h->req));
        if (!h->req)
            return;
        h->req->fd = -1;
        c->open_reqs++;
        h->req->started_ms = sl_now_ms(c);
    }
    sl_req *r = h->req;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->body_kind = SL_BODY_NONE;
    sl_respond_error(r, sl_h1_error_status(err));
    h->req_complete = 1;
}

/* Give the parser what it may take now: while an echo request's body is
 * read, no more than its buffer can hold. */
static size_t parse_budget(sl_h1conn *h, size_t len)
{
    if (h->req && h->req->body_kind == SL_BODY_PROXY && h->req->proxy) {
        size_t room = sl_proxy_req_room(h->req);
        return len < room ? len : room;
    }
    if (!h->req || h->req->body_kind != SL_BODY_ECHO)
        return len;
    size_t room = h->req->echo.cap ? sl_ring_room(&h->req->echo) : SL_ECHO_BUF;
    return len < room ? len : room;
}

/* Parse from the held input; returns 0 or a negative error. */
static int parse(sl_conn *c, sl_h1conn *h)
{
    size_t off = 0;
    while (!h->req_complete && !h->closing) {
        size_t left = h->in_len - off, budget = parse_budget(h, left), used = 0;
        if (budget == 0 && left > 0)
            break;
        sl_h1_event ev;
        int rv = sl_h1_parse(&h->p, h->in + off, budget, &used, &ev);
        off += used;
        if (rv < 0) {
            fail(c, h, rv);
            break;
        }
        if (ev.type == SL_H1_EV_HEAD) {
            rv = begin(c, h, ev.head);
            if (rv < 0)
                return rv;
        } else if (ev.type == SL_H1_EV_DATA) {
            if (h->req->body_received + ev.len > h->req->max_body) {
                fail(c, h, SL_H1_ERR_BODY_TOO_LARGE);
                break;
            }
            sl_body_feed(h->req, ev.data, ev.len);
        } else if (ev.type == SL_H1_EV_TRAILERS) {
            if (h->req->proxy)
                sl_proxy_req_end(h->req, ev.fields, ev.nfields);
        } else if (ev.type == SL_H1_EV_COMPLETE) {
            sl_body_feed_end(h->req);
            h->req_complete = 1;
        } else if (ev.type == SL_H1_EV_NONE && used == 0) {
            break;
        }
    }
    memmove(h->in, h->in + off, h->in_len - off);
    h->in_len -= off;
    return 0;
}

static int hold(sl_h1conn *h, const uint8_t *in, size_t len)
{
    sl_mem m;
    sl_mem_init(&m, NULL);
    if (sl_grow(&m, &h->in, &h->in_cap, h->in_len + len, 4096) != 0)
        return SLUICE_ERR_NOMEM;
    memcpy(h->in + h->in_len, in, len);
    h->in_len += len;
    return 0;
}

int sl_h1_input(sl_conn *c, const uint8_t *in, size_t len)
{
    sl_h1conn *h = c->h1;
    if (h->closing)
        return 0; /* discard: we are done with this connection */
    if (!h->req && !h->head_since)
        h->head_since = sl_now_ms(c); /* a head begins: the header timeout runs */
    int rv = hold(h, in, len);
    if (rv == 0)
        rv = parse(c, h);
    /* Backpressure: a client sending faster than we answer is held by TCP,
     * not by our memory. */
    c->read_paused = h->in_len >= H1_PENDING_MAX;
    return rv;
}

int sl_h1_start(sl_conn *c, const uint8_t *in, size_t len)
{
    sl_h1conn *h = calloc(1, sizeof(*h));
    if (!h)
        return SLUICE_ERR_NOMEM;
    h->ob = h->ob_inline;
    h->ob_cap = sizeof(h->ob_inline);
    sl_h1_options o;
    sl_h1_options_init(&o);
    sl_mem mem;
    sl_mem_init(&mem, NULL);
    sl_h1_parser_init(&h->p, 0, &o, &mem);
    c->h1 = h;
    c->proto = 2;
    sl_cpol_start(c, "http/1.1", NULL);
    return len ? sl_h1_input(c, in, len) : 0;
}

/* ---- output ---------------------------------------------------------------- */

static int queue_head(sl_conn *c, sl_h1conn *h)
{
    sl_req *r = h->req;
    sluice_nv local[SL_RESP_MAX_HDRS + 2], *nv = local;
    const sluice_nv *hdrs = r->xhdrs ? r->xhdrs : r->hdrs;
    size_t n = r->xhdrs ? r->nxhdrs : r->nhdrs;
    if (r->pol)
        sl_rpol_response(c, r, hdrs, n);
    size_t cap = n + r->nedits;
    if (cap > SL_RESP_MAX_HDRS && !(nv = malloc((cap + 2) * sizeof(*nv))))
        return SLUICE_ERR_NOMEM;
    if (r->nedits)
        n = sl_rpol_fields(r, hdrs, n, nv, cap);
    else if (n)
        memcpy(nv, hdrs, n * sizeof(*nv));
    int has_body = r->body_kind != SL_BODY_NONE;
    h->chunked = has_body && r->body_len == UINT64_MAX;
    if (h->chunked)
        nv[n++] = (sluice_nv){(const uint8_t *)"transfer-encoding", (const uint8_t *)"chunked",
                              17, 7, 0};
    if (!h->keep_alive)
        nv[n++] = (sluice_nv){(const uint8_t *)"connection", (const uint8_t *)"close", 10, 5, 0};
    size_t len = 0;
    int rv = ob_reserve(h, 0);
    if (rv == 0)
        rv = sl_h1_write_response_head(r->status, NULL, 0, nv, n, h->ob + h->ob_len,
                                       h->ob_cap - h->ob_len, &len);
    if (rv == SLUICE_ERR_NOBUF && ob_reserve(h, len) == 0)
        rv = sl_h1_write_response_head(r->status, NULL, 0, nv, n, h->ob + h->ob_len,
                                       h->ob_cap - h->ob_len, &len);
    if (nv != local)
        free(nv);
    if (rv != 0)
        return rv;
    h->ob_len += len;
    h->head_sent = 1;
    (void)c;
    return 0;
}

/* Write what is queued; 1 when the socket is full. */
static int push(sl_conn *c, sl_h1conn *h)
{
    while (h->ob_off < h->ob_len || h->boff < h->bl || h->tail_off < h->tail_len) {
        sluice_iovec iov[3];
        int n = 0;
        if (h->ob_off < h->ob_len)
            iov[n++] = (sluice_iovec){h->ob + h->ob_off, h->ob_len - h->ob_off};
        if (h->boff < h->bl)
            iov[n++] = (sluice_iovec){h->bp + h->boff, h->bl - h->boff};
        if (h->tail_off < h->tail_len)
            iov[n++] = (sluice_iovec){h->tail + h->tail_off, h->tail_len - h->tail_off};
        long w = sl_conn_write(c, iov, n, SIZE_MAX);
        if (w < 0)
            return (int)w;
        if (w == 0)
            return 1;
        size_t k = (size_t)w, own = h->ob_len - h->ob_off;
        size_t a = k < own ? k : own; /* the owned bytes go first */
        h->ob_off += a;
        k -= a;
        size_t bleft = h->bl - h->boff, b = k < bleft ? k : bleft;
        h->boff += b;
        h->tail_off += k - b;
    }
    h->ob_off = h->ob_len = 0;
    h->tail_off = h->tail_len = 0;
    if (h->bl) {
        sl_body_released(h->req, h->bl);
        h->bp = NULL;
        h->bl = h->boff = 0;
    }
    return 0;
}

/* Plain text static file: the kernel copies it (sendfile). */
static int send_file(sl_conn *c, sl_h1conn *h)
{
    sl_req *r = h->req;
    while (r->file_left > 0) {
        off_t off = (off_t)r->file_off;
        size_t want = r->file_left < (1u << 20) ? (size_t)r->file_left : (1u << 20);
        ssize_t n = sendfile(c->fd, r->fd, &off, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->write_blocked = 1;
            return 1;
        }
        if (n <= 0)
            return n < 0 ? -errno : SLUICE_ERR_INTERNAL; /* the file shrank */
        r->file_off += (uint64_t)n;
        r->file_left -= (uint64_t)n;
        r->sent += (uint64_t)n;
        c->w->stats.bytes_out += (uint64_t)n;
        c->last_write_progress = sl_now_ms(c);
    }
    h->finishing = 1;
    return 0;
}

/* Queue the next piece of body (with chunk framing); 1 when the body has
 * nothing ready now, 0 when something was queued or the body ended. */
static int next_piece(sl_h1conn *h)
{
    const uint8_t *p = NULL;
    int eof = 0;
    long n = sl_body_read(h->req, &p, H1_CHUNK, &eof);
    if (n == SLUICE_ERR_AGAIN)
        return 1;
    if (n < 0)
        return (int)n;
    size_t len = 0;
    if (n > 0) {
        h->ob_len = 0;
        if (h->chunked && (ob_reserve(h, 24) != 0 ||
                           sl_h1_write_chunk_header((uint64_t)n, h->ob, h->ob_cap, &len) != 0))
            return SLUICE_ERR_INTERNAL;
        h->ob_len = len;
        if (h->chunked) {
            memcpy(h->tail, "\r\n", 2);
            h->tail_len = 2;
        }
        h->bp = p;
        h->bl = (size_t)n;
        h->boff = 0;
    }
    if (eof && h->chunked && h->req->ntrailers) {
        /* Trailers (proxied) go in the last chunk, after this piece. */
        if (n > 0)
            return 0;
        const sl_req *r = h->req;
        sl_h1_write_last_chunk(r->trailers, r->ntrailers, NULL, 0, &len);
        if (ob_reserve(h, len) != 0 ||
            sl_h1_write_last_chunk(r->trailers, r->ntrailers, h->ob + h->ob_len,
                                   h->ob_cap - h->ob_len, &len) != 0)
            return SLUICE_ERR_INTERNAL;
        h->ob_len += len;
        h->finishing = 1;
        return 0;
    }
    if (eof) {
        h->finishing = 1;
        if (h->chunked && sl_h1_write_last_chunk(NULL, 0, h->tail + h->tail_len,
                                                 sizeof(h->tail) - h->tail_len, &len) == 0)
            h->tail_len += len;
    }
    return 0;
}

static void finish_request(sl_conn *c, sl_h1conn *h)
{
    access_log(c, h->req);
    sl_req_free(h->req);
    h->req = NULL;
    c->open_reqs--;
    h->head_sent = h->finishing = h->chunked = 0;
    if (!h->keep_alive || !h->req_complete)
        h->closing = 1;
    h->req_complete = 0;
    if (h->in_len)
        h->head_since = sl_now_ms(c); /* a pipelined head is waiting */
}

/* Slow request headers (slowloris): the whole head must arrive within the
 * header timeout. */
uint64_t sl_h1_deadline_ms(sl_conn *c)
{
    sl_h1conn *h = c->h1;
    if (!h || h->req || !h->head_since)
        return UINT64_MAX;
    return h->head_since + c->gen->cfg->timeouts.header;
}

int sl_h1_flush(sl_conn *c)
{
    sl_h1conn *h = c->h1;
    for (;;) {
        if (!h->req) {
            if (h->closing || h->in_len == 0)
                return 0;
            int rv = parse(c, h); /* a pipelined request */
            c->read_paused = h->in_len >= H1_PENDING_MAX;
            if (rv < 0 || !h->req)
                return rv;
        }
        sl_req *r = h->req;
        if (r->proxy) {
            /* The upstream took request bytes: held input may fit now. */
            r->credit = 0;
            if (h->in_len && !h->req_complete) {
                parse(c, h);
                c->read_paused = h->in_len >= H1_PENDING_MAX;
            }
            if (r->abort) /* the upstream failed mid-response: cut it short */
                return SLUICE_ERR_INTERNAL;
            if (r->info_due) { /* the upstream's 103, before its final head */
                r->info_due = 0;
                if (!h->head_sent)
                    queue_103(h, r->info, r->ninfo);
            }
            if (!h->head_sent && r->status == 0) { /* no response yet */
                int rv = push(c, h); /* a 100 Continue, a 103 */
                return rv < 0 ? rv : rv ? 1 : 0;
            }
        }
        if (!h->head_sent && queue_head(c, h) != 0)
            return SLUICE_ERR_INTERNAL;
        for (;;) {
            int rv = push(c, h);
            if (rv != 0)
                return rv < 0 ? rv : 1;
            if (h->finishing)
                break;
            if (h->req->body_kind == SL_BODY_FILE && !c->tls) {
                rv = send_file(c, h);
                if (rv != 0)
                    return rv;
                continue;
            }
            rv = next_piece(h);
            if (rv < 0)
                return rv;
            if (rv == 1) { /* nothing ready: maybe held input fits now */
                uint64_t before = h->req->written;
                if (h->req->body_kind == SL_BODY_ECHO && h->in_len) {
                    parse(c, h);
                    c->read_paused = h->in_len >= H1_PENDING_MAX;
                }
                if (h->req->written == before)
                    return 0;
            }
        }
        if (!h->req_complete) {
            /* Answered before the body arrived: close instead of reading it. */
            h->keep_alive = 0;
        }
        finish_request(c, h);
    }
}

int sl_h1_busy(sl_conn *c)
{
    return c->h1 && c->h1->req != NULL;
}

int sl_h1_done(sl_conn *c)
{
    sl_h1conn *h = c->h1;
    return !h->req && (h->closing || (c->peer_fin && h->in_len == 0));
}

void sl_h1_free(sl_conn *c)
{
    sl_h1conn *h = c->h1;
    if (!h)
        return;
    if (h->req) {
        access_log(c, h->req);
        sl_req_free(h->req);
    }
    sl_h1_parser_free(&h->p);
    free(h->in);
    if (h->ob != h->ob_inline)
        free(h->ob);
    free(h);
    c->h1 = NULL;
}
