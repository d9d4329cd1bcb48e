/* upstream.c — a worker's view of the configured upstream groups: server
 * addresses, balancing, passive failure counting and active health checks.
 * One runtime per config generation, so a reload never mixes pools. */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "proxy.h"
#include "worker.h"

static int resolve(sl_upsrv *s)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof(port), "%u", s->cfg->port);
    /* Names resolve once per generation (at most a reload away from a
     * change), from /etc/hosts or DNS, never on the request path. */
    if (getaddrinfo(s->cfg->host, port, &hints, &res) != 0 || !res)
        return -1;
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    s->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void hc_tick(uv_timer_t *t);

static void hc_result(sl_proxy *px, int status)
{
    sl_upsrv *s = px->result_ud;
    s->hc_running = 0;
    int ok = status >= 200 && status < 400;
    const sl_cfg_health *h = &s->g->cfg->health;
    const char *name = s->g->cfg->name;
    if (ok) {
        s->hc_fails = 0;
        if (s->hc_down && ++s->hc_passes < h->passes)
            return;
        uint64_t now = uv_now(s->g->rt->w->loop);
        if (s->hc_down || s->down_until > now) /* also lifts a passive "down" */
            sl_log(1, "upstream %s server %s: up (health check passed)", name, s->cfg->name);
        s->hc_down = 0;
        s->hc_passes = 0;
        s->fails = 0;
        s->down_until = 0;
        return;
    }
    s->hc_passes = 0;
    if (!s->hc_down && ++s->hc_fails >= h->fails) {
        s->hc_down = 1;
        s->hc_fails = 0;
        if (status)
            sl_log(1, "upstream %s server %s: down (health check: status %d)", name,
                   s->cfg->name, status);
        else
            sl_log(1, "upstream %s server %s: down (health check: no answer)", name,
                   s->cfg->name);
    }
}

static void hc_tick(uv_timer_t *t)
{
    sl_upgroup *g = t->data;
    for (size_t i = 0; i < g->nsrv; i++) {
        sl_upsrv *s = &g->srv[i];
        if (s->hc_running || !s->addrlen)
            continue;
        if (sl_proxy_check(s, hc_result, s) == 0)
            s->hc_running = 1;
    }
}

static void free_rt(sl_uprt *rt)
{
    for (size_t i = 0; i < rt->ngroups; i++) {
        free(rt->groups[i].srv);
        if (rt->groups[i].tls)
            sl_tls_ctx_free(rt->groups[i].tls);
    }
    free(rt->groups);
    sl_gen_unref(rt->gen);
    free(rt);
}

static void timer_closed(uv_handle_t *h)
{
    sl_upgroup *g = h->data;
    sl_uprt *rt = g->rt;
    rt->handles--;
    sl_uprt_unref(rt);
}

static int make_tls(sl_upgroup *g)
{
    const sl_cfg_upstream *u = g->cfg;
    static const uint8_t alpn_h2[] = "\x02h2", alpn_h1[] = "\x08http/1.1";
    sl_tls_client_opts o;
    memset(&o, 0, sizeof(o));
    o.ca_file = u->tls_ca;
    o.verify = u->tls_verify;
    o.cert_file = u->tls_cert;
    o.key_file = u->tls_key;
    o.alpn = u->protocol == SL_UP_H2 ? alpn_h2 : alpn_h1;
    o.alpn_len = u->protocol == SL_UP_H2 ? sizeof(alpn_h2) - 1 : sizeof(alpn_h1) - 1;
    return sl_tls_ctx_new_client(&g->tls, &o, g->tls_err, sizeof(g->tls_err));
}

static sl_uprt *new_rt(sl_worker *w, sl_gen *gen, int retired)
{
    const sl_config *cfg = gen->cfg;
    sl_uprt *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return NULL;
    rt->w = w;
    rt->gen = gen;
    sl_gen_ref(gen);
    rt->retired = retired;
    rt->refs = retired ? 0 : 1;
    rt->groups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(sl_upgroup));
    if (!rt->groups) {
        free_rt(rt);
        return NULL;
    }
    rt->ngroups = cfg->nupstreams;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        sl_upgroup *g = &rt->groups[i];
        g->rt = rt;
        g->cfg = &cfg->upstreams[i];
        g->nsrv = g->cfg->nservers;
        g->srv = calloc(g->nsrv ? g->nsrv : 1, sizeof(sl_upsrv));
        if (!g->srv) {
            free_rt(rt);
            return NULL;
        }
        for (size_t k = 0; k < g->nsrv; k++) {
            g->srv[k].g = g;
            g->srv[k].cfg = &g->cfg->servers[k];
            if (resolve(&g->srv[k]) != 0)
                sl_log(1, "upstream %s server %s: cannot resolve %s", g->cfg->name,
                       g->srv[k].cfg->name, g->srv[k].cfg->host);
        }
        if (g->cfg->tls && make_tls(g) != 0) {
            sl_log(0, "upstream %s: tls: %s", g->cfg->name, g->tls_err);
            g->tls = NULL;
        }
        if (g->cfg->health.enabled && !retired) {
            uv_timer_init(w->loop, &g->hc_timer);
            g->hc_timer.data = g;
            uv_timer_start(&g->hc_timer, hc_tick, 10, g->cfg->health.interval);
            g->hc_timer_on = 1;
            rt->handles++;
            rt->refs++;
        }
    }
    rt->next = w->uprts;
    w->uprts = rt;
    return rt;
}

sl_uprt *sl_uprt_get(sl_worker *w, sl_gen *g)
{
    for (sl_uprt *rt = w->uprts; rt; rt = rt->next)
        if (rt->gen == g)
            return rt;
    return new_rt(w, g, g != w->gen || w->stopping);
}

static void retire(sl_uprt *rt)
{
    if (rt->retired)
        return;
    rt->retired = 1;
    for (size_t i = 0; i < rt->ngroups; i++) {
        sl_upgroup *g = &rt->groups[i];
        for (size_t k = 0; k < g->nsrv; k++)
            while (g->srv[k].idle)
                sl_uconn_close(g->srv[k].idle, "configuration retired");
        for (size_t k = 0; k < g->nsrv; k++)
            for (sl_uconn *u = g->srv[k].conns, *next; u; u = next) {
                next = u->next;
                if (u->proto == SL_UP_H2 && u->nstreams == 0 && !u->waiting)
                    sl_uconn_close(u, "configuration retired");
            }
        if (g->hc_timer_on) {
            g->hc_timer_on = 0;
            uv_timer_stop(&g->hc_timer);
            uv_close((uv_handle_t *)&g->hc_timer, timer_closed);
        }
    }
    sl_uprt_unref(rt); /* the "current" reference */
}

void sl_uprt_retire(sl_worker *w, int all)
{
    for (sl_uprt *rt = w->uprts, *next; rt; rt = next) {
        next = rt->next;
        if (all || rt->gen != w->gen)
            retire(rt);
    }
}

void sl_uprt_unref(sl_uprt *rt)
{
    if (--rt->refs > 0 || !rt->retired || rt->handles)
        return;
    sl_worker *w = rt->w;
    for (sl_uprt **pp = &w->uprts; *pp; pp = &(*pp)->next)
        if (*pp == rt) {
            *pp = rt->next;
            break;
        }
    free_rt(rt);
    sl_worker_maybe_exit(w);
}

/* ---- choosing ------------------------------------------------------------------ */

int sl_up_is_down(const sl_upsrv *s, uint64_t now)
{
    return s->hc_down || s->down_until > now || !s->addrlen;
}

static int tried(const sl_proxy *px, size_t i)
{
    for (uint32_t k = 0; k < px->tries; k++)
        if (px->tried[k] == i)
            return 1;
    return 0;
}

sl_upsrv *sl_up_pick(sl_upgroup *g, const sl_proxy *px, uint64_t now)
{
    sl_upsrv *best = NULL;
    for (size_t k = 0; k < g->nsrv; k++) {
        size_t i = (g->rr + k) % g->nsrv;
        sl_upsrv *s = &g->srv[i];
        if (sl_up_is_down(s, now) || tried(px, i))
            continue;
        if (g->cfg->balance == SL_BALANCE_ROUND_ROBIN) {
            best = s;
            break;
        }
        if (!best || s->active < best->active)
            best = s;
    }
    if (best)
        g->rr = (size_t)(best - g->srv) + 1;
    return best;
}

void sl_up_failed(sl_upsrv *s, uint64_t now, const char *why)
{
    const sl_cfg_upstream *u = s->g->cfg;
    if (s->g->nsrv == 1)
        return; /* as nginx: a lone server is never marked down by failures */
    if (s->fail_since + u->fail_timeout <= now) {
        s->fails = 0;
        s->fail_since = now;
    }
    if (++s->fails >= u->max_fails && u->max_fails > 0 && s->down_until <= now) {
        s->down_until = now + u->fail_timeout;
        sl_log(1, "upstream %s server %s: down for %u ms (%u failure%s: %s)", u->name,
               s->cfg->name, u->fail_timeout, s->fails, s->fails == 1 ? "" : "s", why);
        s->fails = 0;
    }
}

void sl_up_succeeded(sl_upsrv *s)
{
    s->fails = 0;
}
