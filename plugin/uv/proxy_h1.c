/* proxy_h1.c — an exchange over an HTTP/1.1 upstream connection: the
 * request head and body (content-length or chunked, with trailers) out,
 * the response parsed by the core's h1 codec, read only while it fits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "proxy.h"

#define PH1_HOLD_MAX (64 * 1024) /* response bytes held unparsed */
#define PH1_CHUNK (64 * 1024)

static int out_reserve(sl_uconn *u, size_t n)
{
    sl_mem m;
    sl_mem_init(&m, NULL);
    return sl_grow(&m, &u->out, &u->out_cap, u->out_len + n, 1024);
}

int sl_ph1_start(sl_uconn *u, sl_proxy *px)
{
    u->px = px;
    px->uc = u;
    px->attached = 1;
    u->out_len = u->out_off = 0;
    u->bl = u->boff = u->tail_len = u->tail_off = 0;
    u->body_done = !px->has_body;
    u->body_chunked = px->has_body && px->content_length < 0;
    sluice_nv te = {(const uint8_t *)"transfer-encoding", (const uint8_t *)"chunked", 17, 7, 0};
    sluice_nv *nv = px->fields;
    size_t n = px->nfields;
    sluice_nv *tmp = NULL;
    if (u->body_chunked) {
        tmp = malloc((n + 1) * sizeof(*tmp));
        if (!tmp)
            return SLUICE_ERR_NOMEM;
        memcpy(tmp, nv, n * sizeof(*tmp));
        tmp[n++] = te;
        nv = tmp;
    }
    size_t need = 0;
    const uint8_t *m = (const uint8_t *)px->method;
    int rv = sl_h1_write_request_head(m, strlen(px->method), (const uint8_t *)px->path,
                                      strlen(px->path), (const uint8_t *)px->authority,
                                      strlen(px->authority), nv, n, NULL, 0, &need);
    if (rv == SLUICE_ERR_NOBUF && out_reserve(u, need) == 0)
        rv = sl_h1_write_request_head(m, strlen(px->method), (const uint8_t *)px->path,
                                      strlen(px->path), (const uint8_t *)px->authority,
                                      strlen(px->authority), nv, n, u->out, u->out_cap,
                                      &u->out_len);
    free(tmp);
    if (rv != 0)
        return rv;
    sl_h1_parser_set_method(&u->parser, m, strlen(px->method));
    px->last_progress = sl_uconn_now(u);
    sl_uconn_kick(u);
    return 0;
}

/* Queue the next piece of request body (and its chunk framing). 1: none
 * ready now. */
static int next_piece(sl_uconn *u, sl_proxy *px)
{
    const uint8_t *p;
    size_t n = sl_ring_take(&px->req, &p, PH1_CHUNK);
    if (n) {
        if (u->body_chunked) {
            size_t len = 0;
            if (out_reserve(u, 24) != 0 ||
                sl_h1_write_chunk_header(n, u->out + u->out_len, u->out_cap - u->out_len,
                                         &len) != 0)
                return SLUICE_ERR_NOMEM;
            u->out_len += len;
            memcpy(u->tail, "\r\n", 2);
            u->tail_len = 2;
        }
        u->bp = p;
        u->bl = n;
        u->boff = 0;
        return 0;
    }
    if (!px->req_eof)
        return 1;
    u->body_done = 1;
    if (u->body_chunked) {
        size_t need = 0;
        sl_h1_write_last_chunk(px->req_trailers, px->nreq_trailers, NULL, 0, &need);
        if (out_reserve(u, need) != 0 ||
            sl_h1_write_last_chunk(px->req_trailers, px->nreq_trailers, u->out + u->out_len,
                                   u->out_cap - u->out_len, &need) != 0)
            return SLUICE_ERR_NOMEM;
        u->out_len += need;
    }
    return 0;
}

/* Write what is queued. 1: the socket is full. */
static int push(sl_uconn *u, sl_proxy *px)
{
    while (u->out_off < u->out_len || u->boff < u->bl || u->tail_off < u->tail_len) {
        sluice_iovec iov[3];
        int n = 0;
        if (u->out_off < u->out_len)
            iov[n++] = (sluice_iovec){u->out + u->out_off, u->out_len - u->out_off};
        if (u->boff < u->bl)
            iov[n++] = (sluice_iovec){u->bp + u->boff, u->bl - u->boff};
        if (u->tail_off < u->tail_len)
            iov[n++] = (sluice_iovec){u->tail + u->tail_off, u->tail_len - u->tail_off};
        long w = sl_uconn_write(u, iov, n);
        if (w < 0)
            return (int)w;
        if (w == 0)
            return 1;
        px->sent_any = 1;
        size_t k = (size_t)w, own = u->out_len - u->out_off;
        size_t a = k < own ? k : own;
        u->out_off += a;
        k -= a;
        size_t bleft = u->bl - u->boff, b = k < bleft ? k : bleft;
        u->boff += b;
        u->tail_off += k - b;
        if (b) {
            sl_ring_release(&px->req, b);
            sl_px_req_taken(px, b);
        }
    }
    u->out_off = u->out_len = 0;
    u->tail_off = u->tail_len = 0;
    u->bl = u->boff = 0;
    return 0;
}

int sl_ph1_flush(sl_uconn *u)
{
    sl_proxy *px = u->px;
    if (px) {
        for (;;) {
            int rv = push(u, px);
            if (rv < 0)
                return rv;
            if (rv == 1) /* socket full; held response bytes still go on */
                break;
            if (u->body_done)
                break;
            rv = next_piece(u, px);
            if (rv < 0)
                return rv;
            if (rv == 1)
                break;
        }
    }
    /* Response bytes held while the client was slow may fit now. */
    if (u->px && u->in_len && (!u->px->r || sl_ring_room(&u->px->res) > 0)) {
        if (u->px->blocked)
            u->px->last_progress = sl_uconn_now(u); /* read_timeout restarts */
        u->px->blocked = 0;
        return sl_ph1_input(u, NULL, 0);
    }
    u->read_paused = u->in_len >= PH1_HOLD_MAX;
    return 0;
}

/* The response is whole: the connection goes back to the pool when it
 * can carry another exchange. */
static void finish(sl_uconn *u, int reusable)
{
    sl_proxy *px = u->px;
    u->px = NULL;
    px->uc = NULL;
    px->attached = 0;
    if (!u->body_done || !reusable || u->in_len)
        u->no_pool = 1; /* the request body was cut short, or junk follows */
    sl_px_end(px);
    sl_px_free_if_done(px);
    sl_uconn_release(u);
}

static void fail(sl_uconn *u, int kind, const char *why)
{
    sl_proxy *px = u->px;
    u->px = NULL;
    if (px) {
        px->uc = NULL;
        px->attached = 0;
        sl_px_failed(px, kind, why);
    }
    sl_uconn_close(u, why);
}

static int hold(sl_uconn *u, const uint8_t *in, size_t len)
{
    sl_mem m;
    sl_mem_init(&m, NULL);
    if (sl_grow(&m, &u->in, &u->in_cap, u->in_len + len, 4096) != 0)
        return SLUICE_ERR_NOMEM;
    if (len)
        memcpy(u->in + u->in_len, in, len);
    u->in_len += len;
    return 0;
}

int sl_ph1_input(sl_uconn *u, const uint8_t *in, size_t len)
{
    if (!u->px) {
        if (len) /* an idle connection must not speak */
            fail(u, SL_PXF_PROTOCOL, "bytes on an idle connection");
        return u->state == SL_UC_CLOSED ? -1 : 0;
    }
    if (hold(u, in, len) != 0) {
        fail(u, SL_PXF_PROTOCOL, "out of memory");
        return -1;
    }
    size_t off = 0;
    int reusable = 1;
    while (u->px) {
        sl_proxy *px = u->px;
        size_t left = u->in_len - off, budget = left;
        if (px->got_head) {
            size_t room = px->r ? sl_ring_room(&px->res) : left;
            if (room < budget)
                budget = room;
            if (budget == 0 && left > 0) {
                px->blocked = 1;
                break;
            }
        }
        size_t used = 0;
        sl_h1_event ev;
        int rv = sl_h1_parse(&u->parser, u->in + off, budget, &used, &ev);
        off += used;
        if (rv < 0) {
            char why[160];
            snprintf(why, sizeof(why), "bad response: %s", sl_h1_strerror(rv));
            memmove(u->in, u->in + off, u->in_len - off);
            u->in_len -= off;
            fail(u, SL_PXF_PROTOCOL, why);
            return -1;
        }
        if (ev.type == SL_H1_EV_HEAD) {
            const sl_h1_head *h = ev.head;
            if (h->status == 101) {
                fail(u, SL_PXF_PROTOCOL, "bad response: 101 Switching Protocols");
                return -1;
            }
            if (h->status < 200) { /* 1xx: the final response follows */
                sl_px_info(px, h->status, h->fields, h->nfields);
                continue;
            }
            reusable = h->keep_alive;
            u->no_pool |= !h->keep_alive;
            sl_px_head(px, h->status, h->fields, h->nfields, h->body != SL_H1_BODY_NONE);
        } else if (ev.type == SL_H1_EV_DATA) {
            sl_px_body(px, ev.data, ev.len); /* fits: budgeted by the room */
        } else if (ev.type == SL_H1_EV_TRAILERS) {
            sl_px_trailers(px, ev.fields, ev.nfields);
        } else if (ev.type == SL_H1_EV_COMPLETE) {
            if (!px->got_head)
                continue; /* the end of a 1xx: the final response follows */
            memmove(u->in, u->in + off, u->in_len - off);
            u->in_len -= off;
            off = 0;
            finish(u, reusable && !u->no_pool);
            return 0;
        } else if (used == 0) {
            break;
        }
    }
    memmove(u->in, u->in + off, u->in_len - off);
    u->in_len -= off;
    u->read_paused = u->in_len >= PH1_HOLD_MAX;
    return 0;
}

void sl_ph1_eof(sl_uconn *u)
{
    sl_proxy *px = u->px;
    if (!px) {
        sl_uconn_close(u, "closed by the server");
        return;
    }
    if (u->in_len && px->blocked) /* what is held goes to the client first */
        return;
    sl_h1_event ev;
    int rv = sl_h1_parse_eof(&u->parser, &ev);
    if (rv == 0 && ev.type == SL_H1_EV_COMPLETE) {
        finish(u, 0);
        return;
    }
    fail(u, SL_PXF_RESET,
         px->res_bytes ? "closed by the server mid-response" : "closed by the server before responding");
}

void sl_ph1_free(sl_uconn *u)
{
    if (u->px) {
        sl_proxy *px = u->px;
        u->px = NULL;
        px->uc = NULL;
        px->attached = 0;
        sl_px_failed(px, SL_PXF_RESET, "connection closed");
    }
    sl_h1_parser_free(&u->parser);
    free(u->in);
    free(u->out);
    u->in = u->out = NULL;
}
