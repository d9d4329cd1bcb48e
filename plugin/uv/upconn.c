/* upconn.c — one connection to an upstream server: non-blocking connect,
 * TLS, socket I/O through uv_poll, the timeouts (connect, send, read,
 * idle) and the keep-alive pool. The protocol lives in proxy_h1/proxy_h2. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "host.h"
#include "proxy.h"
#include "sockio.h"
#include "worker.h"

#define UC_TLS_OUT_MAX (64 * 1024)

static sl_worker *worker_of(const sl_uconn *u)
{
    return u->srv->g->rt->w;
}

uint64_t sl_uconn_now(const sl_uconn *u)
{
    return uv_now(worker_of(u)->loop);
}

static const sl_cfg_upstream *ucfg(const sl_uconn *u)
{
    return u->srv->g->cfg;
}

static void on_closed(uv_handle_t *h)
{
    sl_uconn *u = h->data;
    if (--u->handles_open > 0)
        return;
    sl_uprt *rt = u->srv->g->rt;
    sl_worker *w = rt->w;
    w->nuconns--;
    free(u);
    sl_uprt_unref(rt);
    sl_worker_maybe_exit(w);
}

static void unkick(sl_uconn *u)
{
    if (!u->kicked)
        return;
    sl_worker *w = worker_of(u);
    for (sl_uconn **pp = &w->ukicked; *pp; pp = &(*pp)->kick_next)
        if (*pp == u) {
            *pp = u->kick_next;
            break;
        }
    u->kicked = 0;
}

static void fail_waiting(sl_uconn *u, int kind, const char *why)
{
    while (u->waiting) {
        sl_proxy *px = u->waiting;
        u->waiting = px->snext;
        px->snext = px->sprev = NULL;
        px->uc = NULL;
        px->attached = 0;
        sl_px_failed(px, kind, why);
    }
}

static void close_with(sl_uconn *u, int kind, const char *why)
{
    if (u->state == SL_UC_CLOSED)
        return;
    int connecting = u->state < SL_UC_READY;
    u->state = SL_UC_CLOSED;
    unkick(u);
    sl_upsrv *s = u->srv;
    if (u->in_idle) {
        for (sl_uconn **pp = &s->idle; *pp; pp = &(*pp)->idle_next)
            if (*pp == u) {
                *pp = u->idle_next;
                break;
            }
        s->nidle--;
        u->in_idle = 0;
    }
    if (u->prev)
        u->prev->next = u->next;
    else
        s->conns = u->next;
    if (u->next)
        u->next->prev = u->prev;
    s->nconns--;
    worker_of(u)->stats.up_conns_open--;
    uv_poll_stop(&u->poll);
    uv_timer_stop(&u->timer);
    /* Exchanges still on it fail (and may retry elsewhere). */
    fail_waiting(u, connecting ? kind : SL_PXF_RESET, why);
    if (u->proto == SL_UP_H2)
        sl_ph2_free(u);
    else
        sl_ph1_free(u);
    if (u->tls)
        sl_tls_conn_free(u->tls);
    u->tls = NULL;
    close(u->fd);
    uv_close((uv_handle_t *)&u->poll, on_closed);
    uv_close((uv_handle_t *)&u->timer, on_closed);
}

void sl_uconn_close(sl_uconn *u, const char *why)
{
    close_with(u, SL_PXF_RESET, why);
}

void sl_uconn_kick(sl_uconn *u)
{
    if (u->kicked || u->state == SL_UC_CLOSED)
        return;
    sl_worker *w = worker_of(u);
    u->kicked = 1;
    u->kick_next = w->ukicked;
    w->ukicked = u;
    sl_worker_kick(w);
}

/* ---- writing ------------------------------------------------------------------ */

static long sock_writev(sl_uconn *u, const struct iovec *iov, int n)
{
    long r = sl_fd_writev(u->fd, iov, n);
    if (r > 0)
        u->last_write = sl_uconn_now(u);
    return r;
}

static int tls_push(sl_uconn *u)
{
    size_t written = 0;
    int rv = sl_tls_push_fd(u->tls, u->fd, &written);
    if (written)
        u->last_write = sl_uconn_now(u);
    if (rv == 1)
        u->write_blocked = 1;
    return rv;
}

long sl_uconn_write(sl_uconn *u, const sluice_iovec *iov, int n)
{
    if (!u->tls) {
        long w = sock_writev(u, (const struct iovec *)iov, n);
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].len;
        if (w >= 0 && (size_t)w < total)
            u->write_blocked = 1;
        return w;
    }
    long taken = 0;
    for (int i = 0; i < n && sl_tls_unsent(u->tls) < UC_TLS_OUT_MAX; i++) {
        long k = sl_tls_write(u->tls, iov[i].base, iov[i].len);
        if (k < 0)
            return k;
        taken += k;
        if ((size_t)k < iov[i].len)
            break;
    }
    int left = tls_push(u);
    if (left < 0)
        return left;
    if (sl_tls_unsent(u->tls) >= UC_TLS_OUT_MAX)
        u->write_blocked = 1;
    return taken;
}

/* ---- events ------------------------------------------------------------------- */

static int proto_input(sl_uconn *u, const uint8_t *in, size_t len)
{
    return u->proto == SL_UP_H2 ? sl_ph2_input(u, in, len) : sl_ph1_input(u, in, len);
}

static void became_ready(sl_uconn *u)
{
    u->state = SL_UC_READY;
    if (u->proto == SL_UP_H2 && sl_ph2_init(u) != 0) {
        close_with(u, SL_PXF_PROTOCOL, "cannot start HTTP/2");
        return;
    }
    /* Start what waited; HTTP/1.1 carries only the first. */
    while (u->waiting && u->state == SL_UC_READY) {
        if (u->proto == SL_UP_HTTP1 && u->px)
            break;
        sl_proxy *px = u->waiting;
        u->waiting = px->snext;
        if (u->waiting)
            u->waiting->sprev = NULL;
        px->snext = px->sprev = NULL;
        sl_px_ready(px);
    }
    if (u->state == SL_UC_READY && u->proto == SL_UP_HTTP1 && !u->px && !u->waiting)
        sl_uconn_release(u);
    if (u->state == SL_UC_READY && u->proto == SL_UP_H2) {
        u->idle_since = sl_uconn_now(u);
        sl_uconn_kick(u); /* our preface and SETTINGS go now */
    }
}

static int tls_in(sl_uconn *u, const uint8_t *in, size_t len)
{
    if (sl_tls_feed(u->tls, in, len) != 0) {
        tls_push(u);
        char why[300];
        snprintf(why, sizeof(why), "tls handshake failed: %s",
                 sl_tls_error(u->tls) ? sl_tls_error(u->tls) : "error");
        close_with(u, SL_PXF_TLS, why);
        return -1;
    }
    if (u->state == SL_UC_HANDSHAKE) {
        if (tls_push(u) < 0) {
            close_with(u, SL_PXF_CONNECT, "write failed");
            return -1;
        }
        if (!sl_tls_handshake_done(u->tls))
            return 0;
        int want = u->proto == SL_UP_H2 ? SL_ALPN_H2 : SL_ALPN_HTTP11;
        int got = sl_tls_alpn(u->tls);
        if (u->proto == SL_UP_H2 && got != want) {
            close_with(u, SL_PXF_TLS, "server did not agree to h2 (ALPN)");
            return -1;
        }
        became_ready(u);
        if (u->state == SL_UC_CLOSED)
            return -1;
    }
    uint8_t *buf = worker_of(u)->tbuf;
    size_t cap = worker_of(u)->tbuf_cap;
    for (;;) {
        int eof = 0;
        long n = sl_tls_read(u->tls, buf, cap, &eof);
        if (n < 0) {
            close_with(u, SL_PXF_RESET, "tls error");
            return -1;
        }
        if (n > 0 && proto_input(u, buf, (size_t)n) != 0)
            return -1;
        if (u->state == SL_UC_CLOSED)
            return -1;
        if (eof)
            u->peer_fin = 1;
        if (n == 0 || eof)
            return 0;
    }
}

static void on_readable(sl_uconn *u)
{
    sl_worker *w = worker_of(u);
    for (int rounds = 0; rounds < 4 && u->state != SL_UC_CLOSED && !u->read_paused; rounds++) {
        ssize_t n = read(u->fd, w->rbuf, w->rbuf_cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                char why[128];
                snprintf(why, sizeof(why), "read failed: %s", strerror(errno));
                sl_uconn_close(u, why);
            }
            return;
        }
        if (n == 0) {
            u->peer_fin = 1;
            return;
        }
        int rv = u->tls ? tls_in(u, w->rbuf, (size_t)n) : proto_input(u, w->rbuf, (size_t)n);
        if (rv != 0 || u->state == SL_UC_CLOSED)
            return;
        if ((size_t)n < w->rbuf_cap)
            return;
    }
}

static void connected(sl_uconn *u)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        close_with(u, SL_PXF_CONNECT, strerror(err));
        return;
    }
    u->since = sl_uconn_now(u);
    if (u->tls) {
        u->state = SL_UC_HANDSHAKE;
        if (sl_tls_feed(u->tls, NULL, 0) != 0 || tls_push(u) < 0) {
            close_with(u, SL_PXF_TLS, "tls handshake failed");
            return;
        }
        sl_uconn_update(u);
        return;
    }
    became_ready(u);
}

void sl_uconn_service(sl_uconn *u)
{
    if (u->state == SL_UC_CLOSED)
        return;
    u->write_blocked = 0;
    if (u->tls && tls_push(u) < 0) {
        sl_uconn_close(u, "write failed");
        return;
    }
    if (u->state == SL_UC_READY) {
        int rv = u->proto == SL_UP_H2 ? sl_ph2_flush(u) : sl_ph1_flush(u);
        if (rv < 0) {
            char why[128];
            snprintf(why, sizeof(why), "write failed: %s", sluice_strerror(rv));
            sl_uconn_close(u, why);
            return;
        }
    }
    if (u->state == SL_UC_CLOSED)
        return;
    if (u->peer_fin) {
        if (u->proto == SL_UP_HTTP1)
            sl_ph1_eof(u);
        else
            sl_uconn_close(u, "closed by the server");
        if (u->state == SL_UC_CLOSED)
            return;
    }
    sl_uconn_update(u);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sl_uconn *u = p->data;
    if (status < 0) {
        /* libuv reports any POLLERR as EBADF: the socket knows the truth. */
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        close_with(u, u->state < SL_UC_READY ? SL_PXF_CONNECT : SL_PXF_RESET,
                   err ? strerror(err) : uv_strerror(status));
        return;
    }
    if (u->state == SL_UC_CONNECTING) {
        if (events & (UV_WRITABLE | UV_READABLE))
            connected(u);
        return;
    }
    if (events & UV_READABLE)
        on_readable(u);
    sl_uconn_service(u);
}

/* ---- timers ------------------------------------------------------------------ */

static uint64_t deadline(sl_uconn *u)
{
    const sl_cfg_upstream *c = ucfg(u);
    if (u->state < SL_UC_READY)
        return u->since + c->connect_timeout;
    uint64_t d = UINT64_MAX;
    /* An upstream that stops reading because we stopped reading its
     * response (the client is slow) is not timing out. */
    if (u->write_blocked && !(u->px && u->px->blocked))
        d = u->last_write + c->send_timeout;
    if (u->in_idle && u->idle_since + c->idle_timeout < d)
        d = u->idle_since + c->idle_timeout;
    if (u->proto == SL_UP_HTTP1 && u->px && !u->px->blocked &&
        u->px->last_progress + c->read_timeout < d)
        d = u->px->last_progress + c->read_timeout;
    if (u->proto == SL_UP_H2 && u->h2) {
        uint64_t h = sl_ph2_deadline(u);
        if (h < d)
            d = h;
        if (u->nstreams == 0 && !u->waiting && u->idle_since + c->idle_timeout < d)
            d = u->idle_since + c->idle_timeout;
    }
    return d;
}

static void on_timer(uv_timer_t *t)
{
    sl_uconn *u = t->data;
    const sl_cfg_upstream *c = ucfg(u);
    uint64_t now = sl_uconn_now(u);
    if (now < deadline(u)) {
        sl_uconn_update(u);
        return;
    }
    char why[128];
    if (u->state < SL_UC_READY) {
        snprintf(why, sizeof(why), "connect timed out after %u ms", c->connect_timeout);
        close_with(u, SL_PXF_TIMEOUT, why);
        return;
    }
    if (u->write_blocked && !(u->px && u->px->blocked) &&
        now >= u->last_write + c->send_timeout) {
        snprintf(why, sizeof(why), "send timed out after %u ms", c->send_timeout);
        if (u->px) {
            sl_proxy *px = u->px;
            u->px = NULL;
            px->uc = NULL;
            px->attached = 0;
            sl_px_failed(px, SL_PXF_TIMEOUT, why);
        }
        sl_uconn_close(u, why);
        return;
    }
    if (u->in_idle) {
        sl_uconn_close(u, "idle");
        return;
    }
    if (u->proto == SL_UP_HTTP1 && u->px) {
        snprintf(why, sizeof(why), "read timed out after %u ms", c->read_timeout);
        sl_proxy *px = u->px;
        u->px = NULL;
        px->uc = NULL;
        px->attached = 0;
        sl_px_failed(px, SL_PXF_TIMEOUT, why);
        sl_uconn_close(u, why);
        return;
    }
    if (u->proto == SL_UP_H2 && u->h2 && u->nstreams == 0 && !u->waiting &&
        now >= u->idle_since + c->idle_timeout) {
        sl_uconn_close(u, "idle");
        return;
    }
    if (u->proto == SL_UP_H2 && u->h2) {
        sl_ph2_timeout(u);
        if (u->state != SL_UC_CLOSED)
            sl_uconn_service(u);
        return;
    }
    sl_uconn_update(u);
}

void sl_uconn_update(sl_uconn *u)
{
    if (u->state == SL_UC_CLOSED)
        return;
    int events;
    if (u->state == SL_UC_CONNECTING)
        events = UV_WRITABLE;
    else
        events = (u->peer_fin || u->read_paused ? 0 : UV_READABLE) |
                 (u->write_blocked ? UV_WRITABLE : 0);
    if (events != u->poll_events) {
        if (events)
            uv_poll_start(&u->poll, events, on_poll);
        else
            uv_poll_stop(&u->poll);
        u->poll_events = events;
    }
    uint64_t d = deadline(u), now = sl_uconn_now(u);
    if (d == UINT64_MAX)
        uv_timer_stop(&u->timer);
    else
        uv_timer_start(&u->timer, on_timer, d > now ? d - now : 0, 0);
}

/* ---- pool -------------------------------------------------------------------- */

void sl_uconn_release(sl_uconn *u)
{
    sl_upsrv *s = u->srv;
    if (u->state != SL_UC_READY || u->peer_fin || s->g->rt->retired ||
        s->nidle >= s->g->cfg->keepalive || u->no_pool) {
        sl_uconn_close(u, "not kept");
        return;
    }
    u->reused = 1;
    u->in_idle = 1;
    u->idle_since = sl_uconn_now(u);
    u->idle_next = s->idle;
    s->idle = u;
    s->nidle++;
    sl_uconn_update(u);
}

int sl_uconn_open(sl_upsrv *s, int proto, sl_uconn **out)
{
    sl_upgroup *g = s->g;
    if (g->cfg->tls && !g->tls)
        return SLUICE_ERR_INVAL; /* its context failed to load (logged) */
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return SLUICE_ERR_INTERNAL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&s->addr, s->addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e; /* the caller logs it */
        return SLUICE_ERR_INTERNAL;
    }
    sl_uconn *u = calloc(1, sizeof(*u));
    if (!u) {
        close(fd);
        return SLUICE_ERR_NOMEM;
    }
    u->srv = s;
    u->fd = fd;
    u->proto = proto;
    u->state = SL_UC_CONNECTING;
    u->poll_events = -1;
    u->since = u->last_write = uv_now(g->rt->w->loop);
    if (g->cfg->tls) {
        const char *sni = g->cfg->tls_sni ? g->cfg->tls_sni : s->cfg->host;
        if (sl_tls_conn_new(&u->tls, g->tls, sni) != 0) {
            close(fd);
            free(u);
            return SLUICE_ERR_NOMEM;
        }
    }
    if (proto == SL_UP_HTTP1) {
        sl_h1_options o;
        sl_h1_options_init(&o);
        sl_mem mem;
        sl_mem_init(&mem, NULL);
        sl_h1_parser_init(&u->parser, 1, &o, &mem);
    }
    sl_worker *w = g->rt->w;
    w->stats.up_conns_open++;
    w->stats.up_conns_total++;
    uv_poll_init(w->loop, &u->poll, fd);
    uv_timer_init(w->loop, &u->timer);
    u->poll.data = u->timer.data = u;
    u->handles_open = 2;
    w->nuconns++;
    g->rt->refs++;
    u->next = s->conns;
    if (s->conns)
        s->conns->prev = u;
    s->conns = u;
    s->nconns++;
    sl_uconn_update(u);
    *out = u;
    return 0;
}
