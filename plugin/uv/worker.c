/* worker.c — one event loop per thread: its own SO_REUSEPORT listeners,
 * accepting with a connection limit (paused, never refused in a busy
 * loop), configuration generations for reload, and graceful stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host.h"
#include "policyhost.h"
#include "proxy.h"
#include "worker.h"

/* ---- logging (process-wide: this is the host, not the core) -------------- */

static FILE *log_file;
static int log_level = 2;
static uv_mutex_t log_lock;
static uv_once_t log_once = UV_ONCE_INIT;

static void log_init(void)
{
    uv_mutex_init(&log_lock);
}

void sl_log_setup(FILE *f, int level)
{
    uv_once(&log_once, log_init);
    log_file = f;
    log_level = level;
}

void sl_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > log_level)
        return;
    uv_once(&log_once, log_init);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    uv_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    fprintf(f, "sluice[%d] %s: %s\n", (int)getpid(), names[level & 3], msg);
    fflush(f);
    uv_mutex_unlock(&log_lock);
}

void sl_addr_name(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%d", host, port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%d", host, port);
    } else {
        snprintf(out, cap, "?");
    }
}

/* ---- generations ---------------------------------------------------------- */

sl_gen *sl_gen_new(sl_config *cfg, char *err, size_t errlen)
{
    sl_gen *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->cfg = cfg;
    g->refs = 1;
    /* Config and policies switch together: a policy that does not load
     * fails the generation. */
    if (sl_policy_check(cfg, err, errlen) != 0) {
        free(g);
        return NULL;
    }
    int tls = 0;
    for (size_t i = 0; i < cfg->nlistens; i++)
        tls |= cfg->listens[i].tls;
    if (tls && sl_tls_ctx_new_server(&g->tls, cfg, err, errlen) != 0) {
        free(g);
        return NULL;
    }
    return g;
}

void sl_gen_ref(sl_gen *g)
{
    __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
}

void sl_gen_unref(sl_gen *g)
{
    if (!g || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (g->tls)
        sl_tls_ctx_free(g->tls);
    sl_config_free(g->cfg);
    free(g);
}

/* ---- listeners -------------------------------------------------------------- */

int sl_listen_socket(const sl_cfg_listen *l, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    int family;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    if (inet_pton(AF_INET6, l->host, &a6->sin6_addr) == 1) {
        family = a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(l->port);
        len = sizeof(*a6);
    } else if (inet_pton(AF_INET, l->host, &a4->sin_addr) == 1) {
        family = a4->sin_family = AF_INET;
        a4->sin_port = htons(l->port);
        len = sizeof(*a4);
    } else {
        snprintf(err, errlen, "%s:%d: listen: bad address %s", l->where.file, l->where.line,
                 l->host);
        return -1;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l->reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, l->backlog) != 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "%s:%d: listen %s:%d: %s", l->where.file, l->where.line, l->host,
             l->port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static void on_listener_poll(uv_poll_t *p, int status, int events);

void sl_worker_resume_accept(sl_worker *w)
{
    if (w->stopping || w->nconns >= w->gen->cfg->max_connections)
        return;
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i]->paused) {
            w->listeners[i]->paused = 0;
            uv_poll_start(&w->listeners[i]->poll, UV_READABLE, on_listener_poll);
        }
}

static void pause_accept(sl_worker *w)
{
    for (size_t i = 0; i < w->nlisteners; i++)
        if (!w->listeners[i]->paused && w->listeners[i]->fd >= 0) {
            w->listeners[i]->paused = 1;
            uv_poll_stop(&w->listeners[i]->poll);
        }
    sl_log(1, "worker %d: %u connections: accepting paused", w->index, w->nconns);
}

static void on_listener_poll(uv_poll_t *p, int status, int events)
{
    (void)events;
    sl_listener *l = p->data;
    sl_worker *w = l->w;
    if (status < 0)
        return;
    for (int i = 0; i < 64; i++) {
        if (w->nconns >= w->gen->cfg->max_connections) {
            pause_accept(w);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                sl_log(0, "accept on %s: %s: accepting paused", l->name, strerror(errno));
                pause_accept(w);
            }
            return;
        }
        sl_conn_accept(w, fd, l->tls, (struct sockaddr *)&ss);
    }
}

static void listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void close_listener(sl_listener *l)
{
    uv_poll_stop(&l->poll);
    uv_close((uv_handle_t *)&l->poll, listener_closed);
    close(l->fd);
}

static sl_listener *open_listener(sl_worker *w, const sl_listen_plan *p)
{
    sl_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->w = w;
    l->fd = p->fd;
    l->tls = p->tls;
    memcpy(l->name, p->name, sizeof(l->name));
    uv_poll_init(w->loop, &l->poll, l->fd);
    l->poll.data = l;
    l->paused = w->nconns >= w->gen->cfg->max_connections;
    if (!l->paused)
        uv_poll_start(&l->poll, UV_READABLE, on_listener_poll);
    return l;
}

/* Listen on plan: sockets already held are kept as they are (their accept
 * queues survive), new ones start, the others close. */
static void apply_plan(sl_worker *w, const sl_listen_plan *plan, size_t n)
{
    sl_listener **next = calloc(n ? n : 1, sizeof(*next));
    if (!next) {
        sl_log(0, "worker %d: out of memory applying listeners", w->index);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        sl_listener *l = NULL;
        for (size_t j = 0; j < w->nlisteners && !l; j++)
            if (w->listeners[j] && w->listeners[j]->fd == plan[i].fd) {
                l = w->listeners[j];
                w->listeners[j] = NULL;
                l->tls = plan[i].tls;
            }
        if (!l)
            l = open_listener(w, &plan[i]);
        if (l)
            next[k++] = l;
    }
    for (size_t j = 0; j < w->nlisteners; j++)
        if (w->listeners[j]) {
            if (plan) /* a reload dropped it (at stop all go, silently) */
                sl_log(2, "worker %d: no longer listening on %s", w->index,
                       w->listeners[j]->name);
            close_listener(w->listeners[j]);
        }
    free(w->listeners);
    w->listeners = next;
    w->nlisteners = k;
}

static void close_listeners(sl_worker *w)
{
    apply_plan(w, NULL, 0);
}

/* ---- stop and reload -------------------------------------------------------- */

static void closed_one(uv_handle_t *h)
{
    sl_worker *w = h->data;
    if (--w->closing == 0 && w->on_stopped)
        w->on_stopped(w);
}

/* Stopped and drained: close our own handles only (an embedder's loop has
 * others), so a worker thread's loop runs out and returns. */
static void maybe_exit(sl_worker *w)
{
    if (w->stopping && w->nconns == 0 && w->nuconns == 0 && !w->uprts && !w->closing) {
        uv_handle_t *hs[4] = {(uv_handle_t *)&w->stop_timer, (uv_handle_t *)&w->check,
                              (uv_handle_t *)&w->wake, (uv_handle_t *)&w->kick};
        w->closing = 4;
        for (int i = 0; i < 4; i++)
            uv_close(hs[i], closed_one);
    }
}

void sl_worker_maybe_exit(sl_worker *w)
{
    maybe_exit(w);
}

/* Deferred work: a proxy exchange's news for a client connection, or for
 * an upstream one, is acted on here, outside both sides' callbacks. */
static void on_kick(uv_idle_t *h)
{
    sl_worker *w = h->data;
    for (int round = 0; round < 8 && (w->kicked || w->ukicked); round++) {
        while (w->ukicked) {
            sl_uconn *u = w->ukicked;
            w->ukicked = u->kick_next;
            u->kicked = 0;
            sl_uconn_service(u);
        }
        while (w->kicked) {
            sl_conn *c = w->kicked;
            w->kicked = c->kick_next;
            c->kicked = 0;
            sl_conn_flush(c);
        }
    }
    if (!w->kicked && !w->ukicked)
        uv_idle_stop(h);
}

void sl_worker_kick(sl_worker *w)
{
    if (!uv_is_active((uv_handle_t *)&w->kick))
        uv_idle_start(&w->kick, on_kick);
}

static void on_stop_timer(uv_timer_t *t)
{
    sl_worker *w = t->data;
    /* Drain time is over: whatever is still open goes now. */
    while (w->conns)
        sl_conn_abort(w->conns, SL_CLOSE_SHUTDOWN);
    maybe_exit(w);
}

static void on_check(uv_timer_t *t)
{
    sl_worker *w = t->data;
    sl_wpol_stats(w);
    uv_mutex_lock(&w->lock);
    w->snapshot = w->stats;
    uv_mutex_unlock(&w->lock);
    maybe_exit(w);
}

static void begin_stop(sl_worker *w, int mode)
{
    if (w->stopping && mode == 1)
        return;
    w->stopping = mode;
    close_listeners(w);
    sl_uprt_retire(w, 1); /* pools close; busy upstream connections finish */
    if (mode == 2) {
        while (w->conns)
            sl_conn_abort(w->conns, SL_CLOSE_SHUTDOWN);
    } else {
        for (sl_conn *c = w->conns, *next; c; c = next) {
            next = c->next;
            sl_conn_graceful(c);
        }
    }
    uv_timer_start(&w->stop_timer, on_stop_timer, w->gen->cfg->timeouts.drain, 0);
    maybe_exit(w);
}

static void on_wake(uv_async_t *a)
{
    sl_worker *w = a->data;
    uv_mutex_lock(&w->lock);
    sl_gen *g = w->pending_gen;
    sl_listen_plan *plan = w->pending_plan;
    size_t nplan = w->pending_nplan;
    w->pending_gen = NULL;
    w->pending_plan = NULL;
    int stop = w->stop;
    uv_mutex_unlock(&w->lock);
    if (g) { /* new connections get it; open ones keep theirs */
        sl_gen_unref(w->gen);
        w->gen = g;
        sl_wpol_load(w, g); /* new connections at once, open ones at their next hook */
        sl_uprt_retire(w, 0); /* pools of the old generation close */
        if (g->cfg->nupstreams && !w->stopping)
            sl_uprt_get(w, g); /* health checks start now, not at the first request */
        if (!w->stopping && plan)
            apply_plan(w, plan, nplan);
        sl_worker_resume_accept(w);
    }
    free(plan);
    if (stop)
        begin_stop(w, stop);
}

static void run(void *arg)
{
    sl_worker *w = arg;
    uv_run(w->loop, UV_RUN_DEFAULT);
    uv_loop_close(w->loop);
}

/* Everything but the thread: on loop (NULL: a loop of its own). */
int sl_worker_init(sl_worker *w, uv_loop_t *loop)
{
    w->rbuf_cap = 64 * 1024;
    w->tbuf_cap = 64 * 1024;
    w->rbuf = malloc(w->rbuf_cap);
    w->tbuf = malloc(w->tbuf_cap);
    w->wbuf = malloc(16384);
    if (!w->rbuf || !w->tbuf || !w->wbuf)
        return SLUICE_ERR_NOMEM;
    if (!loop) {
        uv_loop_init(&w->own_loop);
        loop = &w->own_loop;
    }
    w->loop = loop;
    sl_fcache_init(&w->fcache);
    uv_mutex_init(&w->lock);
    w->inited = 1;
    uv_async_init(w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(w->loop, &w->stop_timer);
    w->stop_timer.data = w;
    uv_timer_init(w->loop, &w->check);
    w->check.data = w;
    uv_timer_start(&w->check, on_check, 100, 100);
    uv_idle_init(w->loop, &w->kick);
    w->kick.data = w;
    if (w->gen && w->gen->cfg->nupstreams)
        sl_uprt_get(w, w->gen);
    if (w->gen)
        sl_wpol_load(w, w->gen);
    sl_listen_plan *plan = w->pending_plan;
    w->pending_plan = NULL;
    apply_plan(w, plan, w->pending_nplan);
    free(plan);
    return 0;
}

int sl_worker_start(sl_worker *w)
{
    int rv = sl_worker_init(w, NULL);
    if (rv == 0 && uv_thread_create(&w->thread, run, w) != 0)
        rv = SLUICE_ERR_INTERNAL;
    return rv;
}

void sl_worker_begin_stop(sl_worker *w, int mode)
{
    begin_stop(w, mode);
}

void sl_worker_reload(sl_worker *w, sl_gen *g, sl_listen_plan *plan, size_t n)
{
    sl_gen_ref(g);
    uv_mutex_lock(&w->lock);
    if (w->pending_gen)
        sl_gen_unref(w->pending_gen);
    /* A plan not applied yet is superseded: sockets bound for it that the
     * new plan drops were never the worker's, so they are closed here. */
    for (size_t i = 0; w->pending_plan && i < w->pending_nplan; i++) {
        const sl_listen_plan *old = &w->pending_plan[i];
        int kept = 0;
        for (size_t j = 0; j < n; j++)
            if (plan[j].fd == old->fd) {
                plan[j].fresh |= old->fresh;
                kept = 1;
            }
        if (old->fresh && !kept)
            close(old->fd);
    }
    free(w->pending_plan);
    w->pending_gen = g;
    w->pending_plan = plan;
    w->pending_nplan = n;
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->wake);
}

void sl_worker_stop(sl_worker *w, int mode)
{
    uv_mutex_lock(&w->lock);
    w->stop = mode;
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->wake);
}

void sl_worker_join(sl_worker *w)
{
    uv_thread_join(&w->thread);
    sl_worker_release(w);
}

void sl_worker_release(sl_worker *w)
{
    sl_wpol_free(w);
    sl_fcache_free(&w->fcache);
    if (w->pending_gen)
        sl_gen_unref(w->pending_gen);
    free(w->pending_plan);
    sl_gen_unref(w->gen);
    if (w->inited)
        uv_mutex_destroy(&w->lock);
    free(w->listeners);
    free(w->rbuf);
    free(w->tbuf);
    free(w->wbuf);
}
