/* conn.c — one client connection: socket reads and writes through uv_poll
 * (so unsent data stays in sluice, not in the kernel), TLS, protocol
 * detection (h2c preface, ALPN, else HTTP/1.1), timeouts and the orderly
 * close in which the client sends its FIN first. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "host.h"
#include "policyhost.h"
#include "sockio.h"
#include "worker.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define TLS_OUT_MAX (16 * 1024) /* encrypted but unsent: cannot be reordered */
#define TLS_RECORD 16384        /* the largest TLS record's plaintext */

static const char *const close_names[] = {"peer closed", "idle", "timeout", "protocol error",
                                          "tls error", "shutdown", "socket error", "limit"};

uint64_t sl_now_ms(const sl_conn *c)
{
    return uv_now(c->w->loop);
}

static void on_handle_closed(uv_handle_t *h)
{
    sl_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    sl_gen_unref(c->gen);
    free(c);
}

static void unlink_conn(sl_conn *c)
{
    sl_worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    w->stats.conns_open--;
}

void sl_conn_abort(sl_conn *c, int reason)
{
    if (c->state == SL_CONN_CLOSED)
        return;
    c->state = SL_CONN_CLOSED;
    c->close_reason = reason;
    c->w->stats.closes[reason]++;
    if (c->kicked) {
        for (sl_conn **pp = &c->w->kicked; *pp; pp = &(*pp)->kick_next)
            if (*pp == c) {
                *pp = c->kick_next;
                break;
            }
        c->kicked = 0;
    }
    sl_log(2, "conn %llu %s: closed (%s)", (unsigned long long)c->id, c->peer,
           close_names[reason]);
    if (c->h2)
        sl_h2_free(c);
    if (c->h1)
        sl_h1_free(c);
    sl_cpol_close(c); /* after its streams are gone */
    if (c->tls)
        sl_tls_conn_free(c->tls);
    c->tls = NULL;
    unlink_conn(c);
    uv_poll_stop(&c->poll);
    uv_timer_stop(&c->timer);
    close(c->fd);
    uv_close((uv_handle_t *)&c->poll, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    /* A slot is free: listeners paused at the connection limit resume. */
    sl_worker_resume_accept(c->w);
    sl_worker_maybe_exit(c->w);
}

/* ---- writing ------------------------------------------------------------ */

static long sock_writev(sl_conn *c, const struct iovec *iov, int n)
{
    long r = sl_fd_writev(c->fd, iov, n);
    if (r > 0) {
        c->w->stats.bytes_out += (uint64_t)r;
        c->last_write_progress = sl_now_ms(c);
    }
    return r;
}

/* Push ciphertext TLS has ready. Returns 1 if some is left. */
static int tls_push(sl_conn *c)
{
    size_t written = 0;
    int rv = sl_tls_push_fd(c->tls, c->fd, &written);
    if (written) {
        c->w->stats.bytes_out += written;
        c->last_write_progress = sl_now_ms(c);
    }
    return rv;
}

long sl_conn_write(sl_conn *c, const sluice_iovec *iov, int n, size_t max)
{
    (void)max;
    if (!c->tls) {
        long w = sock_writev(c, (const struct iovec *)iov, n);
        if (w == 0)
            c->write_blocked = 1;
        return w;
    }
    /* TLS: encrypt only while little ciphertext is waiting, so what the
     * scheduler has not committed yet stays reorderable; gather the pieces
     * (frame headers, payloads) so each record is full, not one per iovec. */
    long taken = 0;
    int i = 0;
    size_t off = 0;
    while (i < n && sl_tls_unsent(c->tls) < TLS_OUT_MAX) {
        size_t len = 0;
        while (i < n && len < TLS_RECORD) {
            size_t k = iov[i].len - off;
            if (k > TLS_RECORD - len)
                k = TLS_RECORD - len;
            memcpy(c->w->wbuf + len, (const uint8_t *)iov[i].base + off, k);
            len += k;
            off += k;
            if (off == iov[i].len) {
                i++;
                off = 0;
            }
        }
        long k = sl_tls_write(c->tls, c->w->wbuf, len);
        if (k < 0)
            return k;
        taken += k;
        if ((size_t)k < len)
            break; /* handshake not done: nothing taken past this */
    }
    int left = tls_push(c);
    if (left < 0)
        return left;
    if (left)
        c->write_blocked = 1;
    return taken;
}

/* ---- events ------------------------------------------------------------- */

static int proto_done(sl_conn *c)
{
    if (c->h2)
        return sl_h2_done(c);
    if (c->h1)
        return sl_h1_done(c);
    return 0;
}

void sl_conn_flush(sl_conn *c)
{
    if (c->state == SL_CONN_CLOSED)
        return;
    c->write_blocked = 0;
    if (c->tls) {
        int left = tls_push(c);
        if (left < 0) {
            sl_conn_abort(c, SL_CLOSE_IO);
            return;
        }
        if (left) {
            c->write_blocked = 1;
            sl_conn_update(c);
            return;
        }
    }
    int rv = 0;
    if (c->h2)
        rv = sl_h2_flush(c);
    else if (c->h1)
        rv = sl_h1_flush(c);
    if (rv < 0) {
        sl_conn_abort(c, SL_CLOSE_IO);
        return;
    }
    if (c->state == SL_CONN_CLOSED)
        return;
    if (!c->write_blocked && c->state == SL_CONN_ACTIVE && proto_done(c))
        sl_conn_close(c, c->close_reason);
    sl_conn_update(c);
}

/* Everything is said: wait (bounded) for the client to close first, so
 * TIME-WAIT stays on the client. */
void sl_conn_close(sl_conn *c, int reason)
{
    if (c->state >= SL_CONN_CLOSE_WAIT)
        return;
    c->close_reason = reason;
    if (c->peer_fin) {
        sl_conn_abort(c, reason);
        return;
    }
    if (c->tls)
        sl_tls_shutdown(c->tls), tls_push(c);
    c->state = SL_CONN_CLOSE_WAIT;
    c->state_since = sl_now_ms(c);
    sl_conn_update(c);
}

static void linger(sl_conn *c)
{
    /* Our FIN now; keep reading so late client bytes never turn into RST. */
    shutdown(c->fd, SHUT_WR);
    c->state = SL_CONN_LINGER;
    c->state_since = sl_now_ms(c);
    sl_conn_update(c);
}

static int detect(sl_conn *c, const uint8_t *in, size_t len)
{
    size_t take = sizeof(c->detect) - c->detect_len;
    if (take > len)
        take = len;
    memcpy(c->detect + c->detect_len, in, take);
    c->detect_len += take;
    int h2 = memcmp(c->detect, PREFACE, c->detect_len) == 0;
    if (h2 && c->detect_len < sizeof(c->detect))
        return 0; /* could still be the preface */
    c->state = SL_CONN_ACTIVE;
    c->state_since = sl_now_ms(c);
    int rv = h2 ? sl_h2_start(c, c->detect, c->detect_len)
                : sl_h1_start(c, c->detect, c->detect_len);
    if (rv == 0 && len > take)
        rv = h2 ? sl_h2_input(c, in + take, len - take) : sl_h1_input(c, in + take, len - take);
    return rv;
}

static int plaintext_in(sl_conn *c, const uint8_t *in, size_t len)
{
    if (c->state == SL_CONN_DETECT)
        return detect(c, in, len);
    if (c->state != SL_CONN_ACTIVE)
        return 0; /* closing: read and discard */
    if (c->h2)
        return sl_h2_input(c, in, len);
    return sl_h1_input(c, in, len);
}

static int tls_in(sl_conn *c, const uint8_t *in, size_t len)
{
    if (sl_tls_feed(c->tls, in, len) != 0) {
        tls_push(c); /* the alert */
        sl_conn_abort(c, SL_CLOSE_TLS);
        return -1;
    }
    if (c->state == SL_CONN_HANDSHAKE) {
        tls_push(c);
        if (!sl_tls_handshake_done(c->tls))
            return 0;
        c->state_since = sl_now_ms(c);
        if (sl_tls_alpn(c->tls) == SL_ALPN_H2) {
            c->state = SL_CONN_ACTIVE;
            if (sl_h2_start(c, NULL, 0) != 0)
                return -1;
        } else {
            c->state = SL_CONN_ACTIVE;
            if (sl_h1_start(c, NULL, 0) != 0)
                return -1;
        }
    }
    for (;;) {
        int eof = 0;
        long n = sl_tls_read(c->tls, c->w->tbuf, c->w->tbuf_cap, &eof);
        if (n < 0) {
            tls_push(c);
            sl_conn_abort(c, SL_CLOSE_TLS);
            return -1;
        }
        if (n > 0 && plaintext_in(c, c->w->tbuf, (size_t)n) != 0)
            return -1;
        if (c->state == SL_CONN_CLOSED)
            return -1;
        if (eof)
            c->peer_fin = 1;
        if (n == 0 || eof)
            return 0;
    }
}

static void on_readable(sl_conn *c)
{
    for (int rounds = 0; rounds < 4 && c->state != SL_CONN_CLOSED; rounds++) {
        ssize_t n = read(c->fd, c->w->rbuf, c->w->rbuf_cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                sl_conn_abort(c, SL_CLOSE_IO);
            return;
        }
        if (n == 0) {
            c->peer_fin = 1;
            return;
        }
        c->last_read = sl_now_ms(c);
        c->w->stats.bytes_in += (uint64_t)n;
        if (c->state >= SL_CONN_CLOSE_WAIT && !c->tls)
            continue; /* discard */
        int rv = c->tls ? tls_in(c, c->w->rbuf, (size_t)n)
                        : plaintext_in(c, c->w->rbuf, (size_t)n);
        if (rv != 0 || c->state == SL_CONN_CLOSED)
            return;
        if ((size_t)n < c->w->rbuf_cap)
            return;
    }
}

static void after_fin(sl_conn *c)
{
    /* The client closed its side. Closing now leaves TIME-WAIT with it;
     * what we still owe (a response to a half-closed HTTP/1.1 request)
     * is written first. */
    if (c->state >= SL_CONN_CLOSE_WAIT || c->state < SL_CONN_ACTIVE || proto_done(c) ||
        (c->h2 && !sluice_session_want_write(c->h2)) || (c->h1 && !sl_h1_busy(c)))
        sl_conn_abort(c, c->close_reason ? c->close_reason : SL_CLOSE_PEER);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sl_conn *c = p->data;
    if (status < 0) {
        sl_conn_abort(c, SL_CLOSE_IO);
        return;
    }
    if (events & UV_READABLE)
        on_readable(c);
    if (c->state == SL_CONN_CLOSED)
        return;
    sl_conn_flush(c);
    if (c->state != SL_CONN_CLOSED && c->peer_fin)
        after_fin(c);
}

/* ---- timers ------------------------------------------------------------- */

static uint64_t state_deadline(sl_conn *c)
{
    const sl_cfg_timeouts *t = &c->gen->cfg->timeouts;
    switch (c->state) {
    case SL_CONN_HANDSHAKE: return c->state_since + t->handshake;
    case SL_CONN_DETECT: return c->state_since + t->preface;
    case SL_CONN_CLOSE_WAIT: return c->state_since + t->close_wait;
    case SL_CONN_LINGER: return c->state_since + t->linger;
    default: break;
    }
    uint64_t d = UINT64_MAX;
    if (c->write_blocked)
        d = c->last_write_progress + t->send;
    if (c->open_reqs == 0) {
        uint64_t idle = (c->last_read > c->state_since ? c->last_read : c->state_since) + t->idle;
        if (idle < d)
            d = idle;
    }
    if (c->h2) {
        uint64_t hd = sl_h2_deadline_ms(c);
        if (hd < d)
            d = hd;
    }
    if (c->h1) {
        uint64_t hd = sl_h1_deadline_ms(c);
        if (hd < d)
            d = hd;
    }
    return d;
}

static void on_timer(uv_timer_t *t)
{
    sl_conn *c = t->data;
    uint64_t now = sl_now_ms(c);
    if (now < state_deadline(c)) {
        sl_conn_update(c);
        return;
    }
    switch (c->state) {
    case SL_CONN_HANDSHAKE:
    case SL_CONN_DETECT: sl_conn_abort(c, SL_CLOSE_TIMEOUT); return;
    case SL_CONN_CLOSE_WAIT: linger(c); return;
    case SL_CONN_LINGER: sl_conn_abort(c, c->close_reason); return;
    default: break;
    }
    if (c->write_blocked && now >= c->last_write_progress + c->gen->cfg->timeouts.send) {
        sl_conn_abort(c, SL_CLOSE_TIMEOUT);
        return;
    }
    if (c->h1 && now >= sl_h1_deadline_ms(c)) {
        sl_log(2, "conn %llu %s: request header timeout", (unsigned long long)c->id, c->peer);
        sl_conn_abort(c, SL_CLOSE_TIMEOUT);
        return;
    }
    if (c->h2 && now >= sl_h2_deadline_ms(c)) {
        sl_h2_timeout(c);
        sl_conn_flush(c);
        return;
    }
    /* Idle: say goodbye properly (GOAWAY for h2), then close-wait. */
    c->close_reason = SL_CLOSE_IDLE;
    if (c->h2)
        sl_h2_goaway(c, 0);
    sl_conn_flush(c);
    if (c->state == SL_CONN_ACTIVE)
        sl_conn_close(c, SL_CLOSE_IDLE);
}

void sl_conn_update(sl_conn *c)
{
    if (c->state == SL_CONN_CLOSED)
        return;
    int events = c->peer_fin || c->read_paused ? 0 : UV_READABLE;
    if (c->write_blocked)
        events |= UV_WRITABLE;
    if (events != c->poll_events) { /* each change is an epoll_ctl */
        if (events)
            uv_poll_start(&c->poll, events, on_poll);
        else
            uv_poll_stop(&c->poll);
        c->poll_events = events;
    }
    uint64_t d = state_deadline(c), now = sl_now_ms(c);
    uv_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0);
}

void sl_conn_kick(sl_conn *c)
{
    if (c->kicked || c->state == SL_CONN_CLOSED)
        return;
    c->kicked = 1;
    c->kick_next = c->w->kicked;
    c->w->kicked = c;
    sl_worker_kick(c->w);
}

void sl_conn_graceful(sl_conn *c)
{
    if (c->state == SL_CONN_HANDSHAKE || c->state == SL_CONN_DETECT) {
        sl_conn_abort(c, SL_CLOSE_SHUTDOWN);
        return;
    }
    if (c->state != SL_CONN_ACTIVE)
        return;
    c->close_reason = SL_CLOSE_SHUTDOWN;
    if (c->h2)
        sl_h2_goaway(c, 1);
    sl_conn_flush(c);
}

static void tune_socket(int fd, uint32_t lowat)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    if (lowat) /* unsent data stays with us, where it can be reordered */
        setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

void sl_conn_accept(sl_worker *w, int fd, int tls, const struct sockaddr *peer)
{
    sl_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->w = w;
    c->gen = w->gen;
    sl_gen_ref(c->gen);
    c->fd = fd;
    c->id = ++w->next_conn_id;
    c->tls_listener = tls;
    c->state_since = c->last_read = c->last_write_progress = uv_now(w->loop);
    sl_addr_name(peer, c->peer, sizeof(c->peer));
    tune_socket(fd, c->gen->cfg->notsent_lowat);
    if (tls && (!c->gen->tls || sl_tls_conn_new(&c->tls, c->gen->tls, NULL) != 0)) {
        close(fd);
        sl_gen_unref(c->gen);
        free(c);
        return;
    }
    c->state = tls ? SL_CONN_HANDSHAKE : SL_CONN_DETECT;
    c->poll_events = -1;
    uv_poll_init(w->loop, &c->poll, fd);
    uv_timer_init(w->loop, &c->timer);
    c->poll.data = c->timer.data = c;
    c->handles_open = 2;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    w->stats.conns_open++;
    w->stats.conns_total++;
    sl_conn_update(c);
}
