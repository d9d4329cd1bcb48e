/* conn.c — one h2host TCP connection: bytes from read() into the session,
 * session output out with sendmsg(), its timers, and an orderly close. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "h2host.h"

#define READ_BUF (64 * 1024)
#define READS_PER_STEP 16      /* then let other connections run */
#define WRITE_MAX (256 * 1024) /* what one sendmsg() is offered */
#define WRITES_PER_STEP 16
#define IOV_N 64
#define EOF_FLUSH_NS (2000 * H2H_NS_PER_MS)  /* client closed: time to flush */
#define LINGER_NS (2000 * H2H_NS_PER_MS)     /* wait for the client's FIN */
#define LINGER_MAX_BYTES (4u << 20)
#define UNREAD_NS (5000 * H2H_NS_PER_MS)     /* ending, but the client stopped reading */

static uint8_t rbuf[READ_BUF]; /* single-threaded: one buffer for every read */

void h2h_log(const h2h_conn *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "h2host: conn %u: %s\n", c ? c->id : 0u, msg);
}

h2h_conn *h2h_conn_new(int fd, unsigned id, const h2h_config *cfg, uint64_t now)
{
    h2h_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = fd;
    c->id = id;
    c->cfg = cfg;
    c->now = now;
    c->close_by = H2H_NEVER;
    /* Until our SETTINGS are acknowledged a stream may hold 65535 bytes. */
    c->echo_cap = cfg->opt.initial_window_size > 65536 ? cfg->opt.initial_window_size : 65536;
    sluice_session_callbacks cb;
    h2h_callbacks(&cb);
    int rv = sluice_session_new(&c->s, SLUICE_ROLE_SERVER, &cb, c, &cfg->opt, NULL, now);
    if (rv != 0) {
        h2h_log(c, "session_new: %s", sluice_strerror(rv));
        free(c);
        return NULL;
    }
    if (cfg->verbose)
        h2h_log(c, "open");
    return c;
}

void h2h_conn_free(h2h_conn *c)
{
    if (c->cfg->verbose)
        h2h_log(c, "closed");
    c->freeing = 1;
    sluice_session_free(c->s);
    h2h_reqs_free(c);
    close(c->fd);
    free(c);
}

short h2h_conn_events(const h2h_conn *c)
{
    if (c->lingering)
        return POLLIN;
    short ev = 0;
    if (!c->peer_eof && sluice_session_want_read(c->s))
        ev |= POLLIN;
    if (c->blocked)
        ev |= POLLOUT;
    return ev;
}

uint64_t h2h_conn_deadline(const h2h_conn *c)
{
    uint64_t d = c->close_by;
    if (c->lingering)
        return d;
    uint64_t t = sluice_session_next_deadline(c->s);
    if (t < d)
        d = t;
    t = h2h_reqs_deadline(c);
    return t < d ? t : d;
}

/* Feed what the socket has. Returns -1 when the socket failed. */
static int conn_read(h2h_conn *c)
{
    for (int i = 0; i < READS_PER_STEP && sluice_session_want_read(c->s); i++) {
        ssize_t n = read(c->fd, rbuf, sizeof(rbuf));
        if (n > 0) {
            long rv = sluice_session_recv(c->s, rbuf, (size_t)n, c->now);
            if (rv < 0) /* the GOAWAY is queued; want_read is now 0 */
                h2h_log(c, "recv: %s", sluice_strerror((int)rv));
            if ((size_t)n < sizeof(rbuf))
                return 0;
        } else if (n == 0) {
            c->peer_eof = 1;
            c->close_by = c->now + EOF_FLUSH_NS;
            return 0;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

/* Write what the session has, all iovecs of one output call at once
 * (they are valid only until the next call into the session). Returns -1
 * when the socket or the session failed. */
static int conn_flush(h2h_conn *c)
{
    c->blocked = 0;
    for (int round = 0; round < WRITES_PER_STEP; round++) {
        sluice_iovec iov[IOV_N];
        int n = sluice_session_output(c->s, iov, IOV_N, WRITE_MAX, c->now);
        if (n < 0) {
            h2h_log(c, "output: %s", sluice_strerror(n));
            return -1;
        }
        if (n == 0)
            return 0;
        struct iovec v[IOV_N];
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            v[i].iov_base = (void *)(uintptr_t)iov[i].base;
            v[i].iov_len = iov[i].len;
            total += iov[i].len;
        }
        struct msghdr mh;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = v;
        mh.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        int err = errno;
        sluice_session_output_done(c->s, w > 0 ? (size_t)w : 0);
        if (w < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
            return -1;
        if (w < 0 || (size_t)w < total) {
            c->blocked = 1;
            return 0;
        }
    }
    c->blocked = sluice_session_want_write(c->s); /* more: come back after others */
    return 0;
}

/* Throw away what the client still sends after our FIN, so that closing
 * with unread input never turns into a RST that destroys our GOAWAY. */
static int linger_read(h2h_conn *c)
{
    for (int i = 0; i < READS_PER_STEP; i++) {
        ssize_t n = read(c->fd, rbuf, sizeof(rbuf));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return 1;
        if (n < 0)
            break;
        c->discarded += (size_t)n;
        if (c->discarded > LINGER_MAX_BYTES)
            return 1;
    }
    return c->now >= c->close_by;
}

static void start_linger(h2h_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->lingering = 1;
    c->close_by = c->now + LINGER_NS;
}

/* Decide whether the connection is over. */
static int conn_check_end(h2h_conn *c)
{
    int wr = sluice_session_want_write(c->s);
    if (c->peer_eof)
        return !wr || c->now >= c->close_by;
    if (sluice_session_want_read(c->s))
        return 0;
    if (!wr) {
        start_linger(c);
        return 0;
    }
    /* Only output is left (a GOAWAY, the last responses): bounded, in
     * case the client never reads it. */
    if (c->close_by == H2H_NEVER)
        c->close_by = c->now + UNREAD_NS;
    return c->now >= c->close_by;
}

int h2h_conn_step(h2h_conn *c, short revents, uint64_t now)
{
    c->now = now;
    if (c->lingering)
        return linger_read(c);
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->peer_eof && conn_read(c) < 0)
        return 1;
    if (now >= sluice_session_next_deadline(c->s)) {
        int rv = sluice_session_handle_timeout(c->s, now);
        if (rv < 0)
            h2h_log(c, "timeout: %s", sluice_strerror(rv));
    }
    h2h_reqs_run_timers(c, now);
    if (conn_flush(c) < 0)
        return 1;
    return conn_check_end(c);
}

void h2h_conn_shutdown(h2h_conn *c, uint64_t now)
{
    c->now = now;
    if (c->lingering)
        return;
    int rv = sluice_session_goaway(c->s, SLUICE_H2_NO_ERROR, "shutting down", 1);
    if (rv != 0 && rv != SLUICE_ERR_STATE)
        h2h_log(c, "goaway: %s", sluice_strerror(rv));
}
