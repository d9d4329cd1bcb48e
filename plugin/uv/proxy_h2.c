/* proxy_h2.c — exchanges multiplexed over an HTTP/2 upstream connection
 * through the core's client role: request bodies go out borrowed from the
 * exchange's ring, response bytes are credited back only as the client
 * takes them, so each stream's window is its buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "proxy.h"

#define NS_PER_MS 1000000ull

static uint64_t now_ns(const sl_uconn *u)
{
    return sl_uconn_now(u) * NS_PER_MS;
}

static void link_px(sl_uconn *u, sl_proxy *px)
{
    px->sprev = NULL;
    px->snext = u->streams;
    if (u->streams)
        u->streams->sprev = px;
    u->streams = px;
}

static void unlink_px(sl_uconn *u, sl_proxy *px)
{
    if (px->sprev)
        px->sprev->snext = px->snext;
    else
        u->streams = px->snext;
    if (px->snext)
        px->snext->sprev = px->sprev;
    px->snext = px->sprev = NULL;
}

static sl_proxy *find(sl_uconn *u, uint32_t id)
{
    for (sl_proxy *px = u->streams; px; px = px->snext)
        if (px->sid == id)
            return px;
    return NULL;
}

/* px leaves the connection: at once, or once the session gave back the
 * request bytes it borrowed. */
static void leave(sl_uconn *u, sl_proxy *px)
{
    if (u->h2)
        sluice_session_set_stream_user_data(u->h2, px->sid, NULL);
    if (sl_ring_borrowed(&px->req) > 0 && u->h2) {
        px->sid_closed = 1;
        return;
    }
    unlink_px(u, px);
    px->uc = NULL;
    px->attached = 0;
    px->sid_closed = 0;
}

/* ---- callbacks ------------------------------------------------------------------ */

static long source_read(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                        uint32_t *flags, void *ud)
{
    (void)s;
    (void)id;
    sl_proxy *px = ud;
    size_t n = sl_ring_take(&px->req, data, max);
    if (px->req_eof && sl_ring_ready(&px->req) == 0) {
        *flags |= SLUICE_DATA_EOF;
        if (px->nreq_trailers) {
            *flags |= SLUICE_DATA_NO_END_STREAM;
            px->req_trailers_due = 1;
            if (px->uc)
                sl_uconn_kick(px->uc);
        }
        return (long)n;
    }
    return n ? (long)n : SLUICE_ERR_AGAIN;
}

static int on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv, size_t n,
                      int end_stream, void *ud)
{
    (void)ud;
    sl_proxy *px = sluice_session_get_stream_user_data(s, id);
    if (!px)
        return 0;
    if (kind == SLUICE_HEADERS_TRAILERS) {
        sl_px_trailers(px, nv, n);
        return 0;
    }
    if (kind != SLUICE_HEADERS_RESPONSE && kind != SLUICE_HEADERS_INFO)
        return 0;
    int status = 0;
    for (size_t i = 0; i < n; i++)
        if (nv[i].name_len == 7 && memcmp(nv[i].name, ":status", 7) == 0 && nv[i].value_len == 3)
            status = (nv[i].value[0] - '0') * 100 + (nv[i].value[1] - '0') * 10 +
                     (nv[i].value[2] - '0');
    if (kind == SLUICE_HEADERS_INFO)
        sl_px_info(px, status, nv, n); /* 1xx: the final response follows */
    else
        sl_px_head(px, status, nv, n, !end_stream);
    return 0;
}

static int on_data(sluice_session *s, uint32_t id, const uint8_t *d, size_t len, void *ud)
{
    (void)ud;
    sl_proxy *px = sluice_session_get_stream_user_data(s, id);
    if (!px || !px->r)
        return sluice_session_consume(s, id, len); /* nobody reads it */
    size_t took = sl_px_body(px, d, len);
    px->res_unconsumed += took;
    if (took < len) /* more than the window we gave: cannot happen */
        return sluice_session_submit_rst(s, id, SLUICE_H2_FLOW_CONTROL_ERROR);
    return 0;
}

static int on_stream_end(sluice_session *s, uint32_t id, void *ud)
{
    (void)ud;
    sl_proxy *px = sluice_session_get_stream_user_data(s, id);
    if (!px)
        return 0;
    /* No more data on this stream: what the client has not read yet still
     * counts against the connection window, so give it back now. */
    if (px->res_unconsumed)
        sluice_session_consume(s, id, (size_t)px->res_unconsumed);
    px->res_unconsumed = 0;
    px->res_credit = 0;
    int body_left = px->has_body && !(px->req_eof && sl_ring_ready(&px->req) == 0);
    sl_px_end(px);
    /* RFC 9113 §8.1: a complete response ends the exchange; the rest of a
     * request body nobody will read stops here (most servers send this
     * RST_STREAM themselves). */
    if (body_left)
        sluice_session_submit_rst(s, id, SLUICE_H2_NO_ERROR);
    return 0;
}

static int on_stream_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    sl_uconn *u = ud;
    if (u->nstreams && --u->nstreams == 0)
        u->idle_since = sl_uconn_now(u);
    sl_proxy *px = sluice_session_get_stream_user_data(s, id);
    if (!px)
        return 0;
    int done = px->done;
    leave(u, px);
    if (!done) {
        char why[96];
        snprintf(why, sizeof(why), "stream reset: %s", sluice_h2_error_name(code));
        if (code == SLUICE_H2_REFUSED_STREAM && !px->res_bytes)
            px->sent_any = 0; /* RFC 9113 §8.7: not processed, safe to retry */
        if (px->sid_closed) { /* cannot retry while bytes are borrowed here */
            px->res_bytes = 1;
        }
        px->uc = px->sid_closed ? px->uc : NULL;
        sl_px_failed(px, SL_PXF_RESET, why);
        return 0;
    }
    sl_px_free_if_done(px);
    return 0;
}

static void on_data_sent(sluice_session *s, uint32_t id, size_t len, void *ud)
{
    (void)s;
    sl_uconn *u = ud;
    sl_proxy *px = find(u, id);
    if (!px)
        return;
    sl_ring_release(&px->req, len);
    sl_px_req_taken(px, len);
    if (px->sid_closed && sl_ring_borrowed(&px->req) == 0) {
        unlink_px(u, px);
        px->uc = NULL;
        px->attached = 0;
        px->sid_closed = 0;
        sl_px_free_if_done(px);
    }
}

static int on_goaway(sluice_session *s, uint32_t last, uint32_t code, const uint8_t *debug,
                     size_t len, void *ud)
{
    (void)s;
    (void)last;
    (void)debug;
    (void)len;
    sl_uconn *u = ud;
    u->goaway = 1;
    if (code != SLUICE_H2_NO_ERROR)
        sl_log(1, "upstream %s server %s: GOAWAY %s", u->srv->g->cfg->name, u->srv->cfg->name,
               sluice_h2_error_name(code));
    return 0;
}

static void on_log(sluice_session *s, int level, const char *msg, void *ud)
{
    (void)s;
    sl_uconn *u = ud;
    sl_log(level, "upstream %s server %s: %s", u->srv->g->cfg->name, u->srv->cfg->name, msg);
}

/* ---- glue ----------------------------------------------------------------------- */

int sl_ph2_init(sl_uconn *u)
{
    const sl_cfg_upstream *c = u->srv->g->cfg;
    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = on_headers;
    cb.on_data = on_data;
    cb.on_stream_end = on_stream_end;
    cb.on_stream_close = on_stream_close;
    cb.on_data_sent = on_data_sent;
    cb.on_goaway = on_goaway;
    cb.on_log = on_log;
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.initial_window_size = c->buffer < 0x7fffffffu ? c->buffer : 0x7fffffffu;
    uint64_t cw = (uint64_t)c->buffer * c->h2_streams;
    o.connection_window = cw < (1u << 30) ? (uint32_t)cw : (1u << 30);
    if (o.connection_window < 65535)
        o.connection_window = 65535;
    return sluice_session_new(&u->h2, SLUICE_ROLE_CLIENT, &cb, u, &o, NULL, now_ns(u));
}

int sl_ph2_start(sl_uconn *u, sl_proxy *px)
{
    size_t n = px->nfields + 4;
    sluice_nv *nv = malloc(n * sizeof(*nv));
    if (!nv)
        return SLUICE_ERR_NOMEM;
    const char *scheme = u->srv->g->cfg->tls ? "https" : "http";
    nv[0] = (sluice_nv){(const uint8_t *)":method", (const uint8_t *)px->method, 7,
                        strlen(px->method), 0};
    nv[1] = (sluice_nv){(const uint8_t *)":scheme", (const uint8_t *)scheme, 7, strlen(scheme), 0};
    nv[2] = (sluice_nv){(const uint8_t *)":authority", (const uint8_t *)px->authority, 10,
                        strlen(px->authority), 0};
    nv[3] = (sluice_nv){(const uint8_t *)":path", (const uint8_t *)px->path, 5,
                        strlen(px->path), 0};
    if (px->nfields)
        memcpy(nv + 4, px->fields, px->nfields * sizeof(*nv));
    sluice_data_source src = {source_read, px};
    uint32_t sid = 0;
    int rv = sluice_session_submit_request(u->h2, nv, n, px->has_body ? &src : NULL, &sid);
    free(nv);
    if (rv == SLUICE_ERR_LIMIT)
        u->nstreams = u->srv->g->cfg->h2_streams; /* full: the next goes elsewhere */
    if (rv != 0) {
        px->uc = NULL;
        px->attached = 0;
        return rv;
    }
    px->uc = u;
    px->attached = 1;
    px->sid = sid;
    px->sent_any = 1;
    px->last_progress = sl_uconn_now(u);
    u->nstreams++;
    sluice_session_set_stream_user_data(u->h2, sid, px);
    link_px(u, px);
    sl_uconn_kick(u);
    return 0;
}

int sl_ph2_input(sl_uconn *u, const uint8_t *in, size_t len)
{
    long rv = sluice_session_recv(u->h2, in, len, now_ns(u));
    if (rv < 0) {
        sl_ph2_flush(u); /* our GOAWAY */
        char why[96];
        snprintf(why, sizeof(why), "HTTP/2 connection error: %s", sluice_strerror((int)rv));
        sl_uconn_close(u, why);
        return -1;
    }
    return 0;
}

static void streams_step(sl_uconn *u)
{
    for (sl_proxy *px = u->streams, *next; px; px = next) {
        next = px->snext;
        if (px->sid_closed)
            continue;
        if (px->res_credit && px->res_unconsumed) {
            uint64_t k = px->res_credit < px->res_unconsumed ? px->res_credit : px->res_unconsumed;
            sluice_session_consume(u->h2, px->sid, (size_t)k);
            px->res_unconsumed -= k;
            if (px->blocked)
                px->last_progress = sl_uconn_now(u);
            px->blocked = sl_ring_room(&px->res) == 0;
        }
        px->res_credit = 0;
        if (px->req_trailers_due) {
            px->req_trailers_due = 0;
            sluice_session_submit_trailers(u->h2, px->sid, px->req_trailers, px->nreq_trailers);
        } else if (px->has_body && (sl_ring_ready(&px->req) || px->req_eof)) {
            sluice_session_resume_data(u->h2, px->sid);
        }
    }
}

int sl_ph2_flush(sl_uconn *u)
{
    if (!u->h2)
        return 0;
    streams_step(u);
    for (int rounds = 0; rounds < 64; rounds++) {
        sluice_iovec iov[64];
        int n = sluice_session_output(u->h2, iov, 64, 256 * 1024, now_ns(u));
        if (n <= 0)
            break;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].len;
        long w = sl_uconn_write(u, iov, n);
        if (w < 0)
            return (int)w;
        sluice_session_output_done(u->h2, (size_t)w);
        if ((size_t)w < total) {
            u->write_blocked = 1;
            break;
        }
    }
    if (u->nstreams == 0 && !u->waiting && (u->goaway || u->srv->g->rt->retired))
        sl_uconn_close(u, "drained");
    else if (!sluice_session_want_read(u->h2) && !sluice_session_want_write(u->h2))
        sl_uconn_close(u, "session ended");
    return 0;
}

uint64_t sl_ph2_deadline(sl_uconn *u)
{
    uint32_t rt = u->srv->g->cfg->read_timeout;
    uint64_t d = sluice_session_next_deadline(u->h2);
    d = d == UINT64_MAX ? d : d / NS_PER_MS + 1;
    for (sl_proxy *px = u->streams; px; px = px->snext)
        if (!px->sid_closed && !px->done && !px->blocked && px->last_progress + rt < d)
            d = px->last_progress + rt;
    return d;
}

void sl_ph2_timeout(sl_uconn *u)
{
    uint64_t now = sl_uconn_now(u);
    uint32_t rt = u->srv->g->cfg->read_timeout;
    if (sluice_session_handle_timeout(u->h2, now_ns(u)) < 0) {
        sl_ph2_flush(u);
        sl_uconn_close(u, "HTTP/2 timeout");
        return;
    }
    for (sl_proxy *px = u->streams, *next; px; px = next) {
        next = px->snext;
        if (px->sid_closed || px->done || px->blocked || now < px->last_progress + rt)
            continue;
        char why[64];
        snprintf(why, sizeof(why), "read timed out after %u ms", rt);
        uint32_t sid = px->sid;
        leave(u, px); /* first: the reset closes the stream at once */
        sluice_session_submit_rst(u->h2, sid, SLUICE_H2_CANCEL);
        px->res_bytes |= px->sid_closed; /* borrowed bytes here: no retry */
        if (!px->sid_closed)
            px->uc = NULL;
        sl_px_failed(px, SL_PXF_TIMEOUT, why);
    }
}

void sl_ph2_cancel(sl_uconn *u, sl_proxy *px)
{
    if (!u->h2 || px->sid_closed)
        return;
    uint32_t sid = px->sid;
    leave(u, px); /* first: the reset closes the stream (and its callbacks) at once */
    sluice_session_submit_rst(u->h2, sid, SLUICE_H2_CANCEL);
    sl_uconn_kick(u);
}

void sl_ph2_free(sl_uconn *u)
{
    if (!u->h2)
        return;
    sluice_session *s = u->h2;
    u->h2 = NULL; /* its callbacks must not call back into it now */
    sluice_session_free(s); /* closes streams (failing them), then releases borrowed bytes */
    while (u->streams) {
        sl_proxy *px = u->streams;
        unlink_px(u, px);
        px->uc = NULL;
        px->attached = 0;
        px->sid_closed = 0;
        sl_px_free_if_done(px);
    }
}
