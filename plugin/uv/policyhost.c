/* policyhost.c — Lua policies in the `sluice` host: one engine per worker
 * loop, the versions of each reload, and what hooks ask the host to do. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policyhost.h"
#include "worker.h"

/* A response field edit from res:set/add/remove. */
typedef struct sl_hedit {
    char *name;              /* name and value in one allocation */
    char *value;             /* NULL: remove */
    size_t nlen, vlen;
    int add;
} sl_hedit;

#define MAX_EDITS 32
#define MAX_TAGS 512

/* ---- engine callbacks ---------------------------------------------------- */

static void pol_log(void *ud, int level, const char *msg)
{
    (void)ud;
    sl_log(level, "%s", msg);
}

static uint64_t pol_now(void *ud)
{
    (void)ud;
    return uv_hrtime();
}

static int op_push(void *cud, void *sud, const char *path, const sluice_nv *h, size_t n)
{
    sl_conn *c = cud;
    sl_req *r = sud;
    if (!c->pol_push)
        return SLUICE_ERR_STATE;
    return r->push ? r->push(r, path, h, n) : SLUICE_ERR_STATE;
}

static int op_hint(void *cud, void *sud, const sluice_nv *nv, size_t n)
{
    (void)cud;
    sl_req *r = sud;
    return r->hint ? r->hint(r, nv, n) : SLUICE_ERR_STATE;
}

static int op_respond(void *cud, void *sud, int status, const char *body, size_t len)
{
    (void)cud;
    sl_req *r = sud;
    if (r->status || r->proxy)
        return SLUICE_ERR_STATE; /* already answered (on_response: too late) */
    if (!body) {
        sl_respond_error(r, status);
        return 0;
    }
    r->status = status;
    sl_resp_header(r, "content-type", "text/plain", 10);
    return sl_respond_owned_body(r, body, len);
}

static int op_upstream(void *cud, void *sud, const char *name)
{
    sl_conn *c = cud;
    sl_req *r = sud;
    const sl_config *cfg = r->gen ? r->gen->cfg : c->gen->cfg;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (strcmp(cfg->upstreams[i].name, name) == 0) {
            r->pol_upstream = i + 1;
            return 0;
        }
    sl_log(1, "conn %llu %s: policy chose upstream '%s', which the config does not have",
           (unsigned long long)c->id, c->peer, name);
    return SLUICE_ERR_NOT_FOUND;
}

static int op_tag(void *cud, void *sud, const char *key, const char *value)
{
    (void)cud;
    sl_req *r = sud;
    size_t kl = strlen(key), vl = strlen(value);
    if (r->tags_len + kl + vl + 2 > MAX_TAGS)
        return SLUICE_ERR_LIMIT;
    char *t = realloc(r->tags, r->tags_len + kl + vl + 3);
    if (!t)
        return SLUICE_ERR_NOMEM;
    r->tags = t;
    r->tags_len += (size_t)sprintf(t + r->tags_len, " %s=%s", key, value);
    return 0;
}

static int op_header(void *cud, void *sud, const char *name, const char *value, int add)
{
    (void)cud;
    sl_req *r = sud;
    if (r->nedits == MAX_EDITS)
        return SLUICE_ERR_LIMIT;
    if (r->nedits == 0 && !(r->edits = calloc(MAX_EDITS, sizeof(sl_hedit))))
        return SLUICE_ERR_NOMEM;
    size_t nl = strlen(name), vl = value ? strlen(value) : 0;
    char *buf = malloc(nl + vl + 2);
    if (!buf)
        return SLUICE_ERR_NOMEM;
    memcpy(buf, name, nl + 1);
    sl_hedit *e = &r->edits[r->nedits++];
    e->name = buf;
    e->nlen = nl;
    e->value = NULL;
    if (value) {
        e->value = buf + nl + 1;
        memcpy(e->value, value, vl + 1);
    }
    e->vlen = vl;
    e->add = add;
    return 0;
}

static const sluice_policy_host host_ops = {
    sizeof(sluice_policy_host), op_push, op_hint, op_respond, op_upstream, op_tag, op_header,
    pol_log, pol_now};

static void limits_of(const sl_config *cfg, sluice_policy_options *o)
{
    *o = cfg->policy.limits;
    o->struct_size = sizeof(*o);
}

/* ---- checking and loading -------------------------------------------------- */

int sl_policy_check(const sl_config *cfg, char *err, size_t errlen)
{
    const sl_cfg_policy *pc = &cfg->policy;
    if (!pc->nfiles)
        return 0;
    sluice_policy_options o;
    limits_of(cfg, &o);
    sluice_policy_host quiet = host_ops;
    quiet.log = NULL;
    sluice_policy_engine *e;
    if (sluice_policy_engine_new(&e, &o, &quiet, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        return SLUICE_ERR_NOMEM;
    }
    int rv = 0;
    for (size_t i = 0; i < pc->nfiles && rv == 0; i++) {
        sluice_policy *p;
        char perr[768];
        rv = sluice_policy_load(e, pc->files[i].path, pc->files[i].src, pc->files[i].len, &p,
                                perr, sizeof perr);
        if (rv == 0)
            sluice_policy_unref(p);
        else
            snprintf(err, errlen, "%s:%d: policy: %s", pc->where.file, pc->where.line, perr);
    }
    sluice_policy_engine_free(e);
    return rv;
}

static void drop_versions(sl_worker *w)
{
    for (size_t i = 0; i < w->npols; i++)
        sluice_policy_unref(w->pols[i]);
    free(w->pols);
    w->pols = NULL;
    w->npols = 0;
}

void sl_wpol_load(sl_worker *w, sl_gen *g)
{
    const sl_cfg_policy *pc = &g->cfg->policy;
    if (!pc->nfiles) {
        drop_versions(w);
        w->pol_serial++;
        return;
    }
    sluice_policy_options o;
    limits_of(g->cfg, &o);
    if (!w->pe && sluice_policy_engine_new(&w->pe, &o, &host_ops, w) != 0) {
        sl_log(0, "policy: out of memory; running without policies");
        return;
    }
    sluice_policy **np = calloc(pc->nfiles, sizeof(*np));
    if (!np)
        return;
    for (size_t i = 0; i < pc->nfiles; i++) {
        char err[768];
        if (sluice_policy_load(w->pe, pc->files[i].path, pc->files[i].src, pc->files[i].len,
                               &np[i], err, sizeof err) != 0) {
            /* Checked before the switch (and loading has generous time
             * limits), so only memory can fail here: keep what runs. */
            if (w->npols)
                sl_log(0, "policy: worker %d: %s; this worker keeps the policies it had",
                       w->index, err);
            else
                sl_log(0, "policy: worker %d: %s; this worker runs without policies", w->index,
                       err);
            for (size_t k = 0; k < i; k++)
                sluice_policy_unref(np[k]);
            free(np);
            return;
        }
    }
    drop_versions(w);
    w->pols = np;
    w->npols = pc->nfiles;
    w->pol_serial++;
}

void sl_wpol_stats(sl_worker *w)
{
    sluice_policy_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    if (w->pe)
        sluice_policy_engine_get_stats(w->pe, &st);
    w->stats.pol_calls = st.calls;
    w->stats.pol_errors = st.errors;
    w->stats.pol_budget = st.budget_exceeded;
    w->stats.pol_memory = st.memory;
}

void sl_wpol_free(sl_worker *w)
{
    drop_versions(w);
    if (w->pe)
        sluice_policy_engine_free(w->pe);
    w->pe = NULL;
}

/* ---- connections --------------------------------------------------------------- */

/* FNV-1a of the client's address without its port: a client keeps its
 * A/B side across connections. */
static uint32_t addr_hash(const char *peer)
{
    const char *end = strrchr(peer, ':');
    if (!end)
        end = peer + strlen(peer);
    uint32_t h = 2166136261u;
    for (const char *p = peer; p < end; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

static sluice_policy *version_for(sl_conn *c)
{
    sl_worker *w = c->w;
    return w->npols ? w->pols[c->pol_hash % w->npols] : NULL;
}

uint32_t sl_pol_window_limit(const sl_config *cfg)
{
    const sluice_session_options *ho = &cfg->h2;
    return ho->window_max > ho->initial_window_size ? ho->window_max : ho->initial_window_size;
}

void sl_cpol_start(sl_conn *c, const char *alpn, sluice_session_options *opt)
{
    c->pol_push = 1;
    c->started_ms = sl_now_ms(c);
    c->pol_hash = c->gen->cfg->policy.split == SL_SPLIT_CLIENT_HASH ? addr_hash(c->peer) : 0;
    sluice_policy *p = version_for(c);
    if (!p)
        return;
    char ip[64], local[64] = "";
    snprintf(ip, sizeof ip, "%s", c->peer[0] == '[' ? c->peer + 1 : c->peer);
    char *colon = strrchr(ip, ':');
    if (colon)
        *colon = 0;
    size_t il = strlen(ip);
    if (il && ip[il - 1] == ']')
        ip[il - 1] = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0)
        sl_addr_name((struct sockaddr *)&ss, local, sizeof local);
    const char *port = strrchr(c->peer, ':');
    sluice_policy_conn_info info = {sizeof info, c->peer, ip, port ? atoi(port + 1) : 0,
                                    local, c->tls ? sl_tls_sni(c->tls) : NULL, alpn,
                                    c->tls ? sl_tls_version(c->tls) : NULL, c->id};
    if (sluice_policy_conn_new(p, &info, c, &c->pol) != 0)
        return;
    c->pol_serial = c->w->pol_serial;
    sluice_session_options scratch;
    if (!opt) { /* HTTP/1.1: settings have nothing to act on */
        sluice_session_options_init(&scratch);
        opt = &scratch;
    }
    sluice_policy_on_connection(c->pol, opt, &c->pol_push);
    /* Request bodies are buffered up to a stream window: a policy gets
     * no more than the operator's largest configured window. */
    uint32_t lim = sl_pol_window_limit(c->gen->cfg);
    if (opt->initial_window_size > lim || (opt->window_adaptive && opt->window_max > lim)) {
        sl_log(1, "conn %llu %s: policy %s: stream window capped at %u (http2 window_max)",
               (unsigned long long)c->id, c->peer, sluice_policy_name(p), lim);
        if (opt->initial_window_size > lim)
            opt->initial_window_size = lim;
        if (opt->window_max > lim)
            opt->window_max = lim;
        if (opt->window_min > opt->window_max)
            opt->window_min = opt->window_max;
    }
    sluice_policy_conn_set_window_limit(c->pol, lim);
}

int sl_cpol_sync(sl_conn *c)
{
    if (!c->pol)
        return 0;
    if (c->pol_serial != c->w->pol_serial) { /* reloaded: switch at this call */
        c->pol_serial = c->w->pol_serial;
        sluice_policy *p = version_for(c);
        if (!p)
            return 0;
        sluice_policy_conn_switch(c->pol, p);
    }
    return c->w->npols != 0;
}

static void fill_stats(sl_conn *c, sluice_policy_conn_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->struct_size = sizeof(*st);
    uint64_t now = sl_now_ms(c);
    st->duration_ns = (now - c->started_ms) * 1000000u;
    if (c->h2) {
        sluice_session_stats ss = {.struct_size = sizeof ss};
        sluice_session_get_stats(c->h2, &ss);
        st->rtt_ns = ss.rtt_ns;
        st->recv_rate = ss.recv_rate;
        st->bytes_in = ss.bytes_in;
        st->bytes_out = ss.bytes_out;
        st->buffered_in = ss.recv_buffered;
        st->buffered_out = ss.buffered_out;
        st->streams_open = ss.streams_open;
        st->streams_total = ss.streams_total;
        uint64_t dt = now - c->pol_window_at;
        uint64_t moved = ss.bytes_out > c->pol_out ? ss.bytes_out - c->pol_out : 0;
        st->send_rate = dt ? moved * 1000u / dt : 0;
    }
}

void sl_cpol_window(sl_conn *c)
{
    if (!c->pol || !c->h2 || !(sluice_policy_hooks(sluice_policy_conn_policy(c->pol)) &
                               SLUICE_HOOK_WINDOW))
        return;
    uint64_t now = sl_now_ms(c);
    sluice_session_stats ss = {.struct_size = sizeof ss};
    sluice_session_get_stats(c->h2, &ss);
    uint64_t every = c->gen->cfg->policy.window_interval;
    if (ss.rtt_ns / 1000000u > every)
        every = ss.rtt_ns / 1000000u; /* once per RTT estimate is enough */
    if (now - c->pol_window_at < every || ss.bytes_in + ss.bytes_out == c->pol_bytes)
        return;
    if (!sl_cpol_sync(c))
        return;
    sluice_policy_conn_stats st;
    fill_stats(c, &st);
    c->pol_window_at = now;
    c->pol_bytes = ss.bytes_in + ss.bytes_out;
    c->pol_out = ss.bytes_out;
    sluice_policy_on_window(c->pol, &st);
}

void sl_cpol_close(sl_conn *c)
{
    static const char *const reasons[] = {"peer", "idle", "timeout", "protocol",
                                          "tls", "shutdown", "io", "limit"};
    if (!c->pol)
        return;
    sluice_policy_conn_stats st;
    fill_stats(c, &st);
    st.close_reason = reasons[(unsigned)c->close_reason & 7];
    sl_cpol_sync(c);
    sluice_policy_conn_close(c->pol, &st);
    c->pol = NULL;
}

/* ---- requests ------------------------------------------------------------------ */

void sl_rpol_request(sl_conn *c, sl_req *r, uint32_t stream_id, const char *scheme,
                     const sluice_nv *nv, size_t n)
{
    if (!sl_cpol_sync(c))
        return;
    if (!r->pol && sluice_policy_stream_new(c->pol, stream_id, r, &r->pol) != 0)
        return;
    sluice_policy_message m = {sizeof m, r->method, scheme, r->authority, r->path, 0, nv, n};
    sluice_policy_on_request(r->pol, &m);
}

void sl_rpol_response(sl_conn *c, sl_req *r, const sluice_nv *hdrs, size_t n)
{
    if (!r->pol || !sl_cpol_sync(c))
        return;
    sluice_policy_message m = {sizeof m, r->method, NULL, r->authority, r->path, r->status,
                               hdrs, n};
    sluice_policy_on_response(r->pol, &m);
}

static int same_name(const sluice_nv *f, const sl_hedit *e)
{
    return f->name_len == e->nlen && memcmp(f->name, e->name, e->nlen) == 0;
}

size_t sl_rpol_fields(const sl_req *r, const sluice_nv *in, size_t n, sluice_nv *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap; i++) { /* fields not replaced or removed */
        int drop = 0;
        for (size_t j = 0; j < r->nedits && !drop; j++)
            drop = !r->edits[j].add && same_name(&in[i], &r->edits[j]);
        if (!drop)
            out[k++] = in[i];
    }
    for (size_t j = 0; j < r->nedits && k < cap; j++) { /* then the set and added ones */
        const sl_hedit *e = &r->edits[j];
        int later = 0; /* a later set/remove of the same name wins */
        for (size_t x = j + 1; x < r->nedits && !later; x++)
            later = !r->edits[x].add && r->edits[x].nlen == e->nlen &&
                    memcmp(r->edits[x].name, e->name, e->nlen) == 0;
        if (e->value && !later)
            out[k++] = (sluice_nv){(const uint8_t *)e->name, (const uint8_t *)e->value,
                                   e->nlen, e->vlen, 0};
    }
    return k;
}

void sl_rpol_free(sl_req *r)
{
    if (r->pol)
        sluice_policy_stream_free(r->pol);
    r->pol = NULL;
    for (size_t i = 0; i < r->nedits; i++)
        free(r->edits[i].name);
    free(r->edits);
    r->edits = NULL;
    r->nedits = 0;
    free(r->tags);
    r->tags = NULL;
}
