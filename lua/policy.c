/* policy.c — the policy engine: loading and checking a policy version,
 * connections and streams that hold it, and calling its hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "policy_int.h"

static const char *const hook_names[SL_NHOOKS] = {"on_connection", "on_request", "on_response",
                                                  "on_window", "on_close"};

void sluice_policy_options_init_versioned(size_t struct_size, sluice_policy_options *opt)
{
    sluice_policy_options d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.max_instructions = 1000000;
    d.max_time_ns = 50000000;
    d.max_memory = 32u << 20;
    d.max_string = 1u << 20;
    d.shared_max_keys = 10000;
    d.shared_max_bytes = 4u << 20;
    size_t n = struct_size < sizeof d ? struct_size : sizeof d;
    memcpy(opt, &d, n);
    opt->struct_size = n;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The host's clock when it has one, so tests can move time. */
static uint64_t box_clock(void *ud)
{
    sluice_policy *p = ud;
    return p->e->host.now ? p->e->host.now(p->e->ud) : mono_ns();
}

static void box_log(void *ud, int level, const char *msg)
{
    sluice_policy *p = ud;
    sl_plog(p->e, level, "policy %s: %s", p->name, msg);
}

int sluice_policy_engine_new(sluice_policy_engine **out, const sluice_policy_options *opt,
                             const sluice_policy_host *host, void *engine_ud)
{
    sluice_policy_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return SLUICE_ERR_NOMEM;
    sluice_policy_options_init(&e->opt);
    if (opt)
        memcpy(&e->opt, opt, opt->struct_size < sizeof e->opt ? opt->struct_size : sizeof e->opt);
    e->opt.struct_size = sizeof e->opt;
    if (host)
        memcpy(&e->host, host,
               host->struct_size < sizeof e->host ? host->struct_size : sizeof e->host);
    e->host.struct_size = sizeof e->host;
    e->ud = engine_ud;
    e->shared = sl_lshared_new(e->opt.shared_max_keys, e->opt.shared_max_bytes);
    if (!e->shared) {
        free(e);
        return SLUICE_ERR_NOMEM;
    }
    *out = e;
    return 0;
}

void sluice_policy_engine_free(sluice_policy_engine *e)
{
    if (!e)
        return;
    sl_lshared_free(e->shared);
    free(e);
}

/* ---- versions ---------------------------------------------------------------- */

static void policy_free(sluice_policy *p)
{
    if (p->box)
        sl_lbox_free(p->box);
    sl_act_drop(p);
    free(p->arena);
    free(p->acts);
    free(p->slots);
    free(p->name);
    if (p->eprev) {
        *p->eprev = p->enext;
        if (p->enext)
            p->enext->eprev = p->eprev;
    }
    p->e->live--;
    free(p);
}

void sluice_policy_ref(sluice_policy *p)
{
    p->refs++;
}

void sluice_policy_unref(sluice_policy *p)
{
    if (p && --p->refs == 0)
        policy_free(p);
}

const char *sluice_policy_name(const sluice_policy *p)
{
    return p->name;
}

unsigned sluice_policy_hooks(const sluice_policy *p)
{
    return p->hooks;
}

static void copy_stats(sluice_policy_stats *st, const sluice_policy_stats *s)
{
    size_t n = st->struct_size && st->struct_size < sizeof(*s) ? st->struct_size : sizeof(*s);
    sluice_policy_stats c = *s;
    c.struct_size = n;
    memcpy(st, &c, n);
}

int sluice_policy_engine_get_stats(const sluice_policy_engine *e, sluice_policy_stats *st)
{
    sluice_policy_stats s = e->stats;
    s.memory = 0;
    for (const sluice_policy *p = e->versions; p; p = p->enext)
        s.memory += sl_lbox_memory(p->box);
    copy_stats(st, &s);
    return 0;
}

int sluice_policy_get_stats(const sluice_policy *p, sluice_policy_stats *st)
{
    sluice_policy_stats s = p->stats;
    s.memory = sl_lbox_memory(p->box);
    copy_stats(st, &s);
    return 0;
}

/* Hooks from the table the chunk returned, else from its globals. Runs
 * protected (lua_pcall of take_hooks_fn): lookups may allocate. */
typedef struct take_ctx {
    sluice_policy *p;
    char *err;
    size_t errlen;
    int rv;
} take_ctx;

static int take_hooks(sluice_policy *p, int has_table, char *err, size_t errlen)
{
    lua_State *L = p->L;
    /* Raw lookups: a metamethod here would run outside any budget. */
    if (has_table)
        lua_pushvalue(L, 2);
    else
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    for (int i = 0; i < SL_NHOOKS; i++) {
        lua_pushstring(L, hook_names[i]);
        lua_rawget(L, -2);
        int t = lua_type(L, -1);
        if (t == LUA_TNIL) {
            lua_pop(L, 1);
            p->hook[i] = LUA_NOREF;
            continue;
        }
        if (t != LUA_TFUNCTION) {
            snprintf(err, errlen, "%s: %s is a %s, not a function", p->name, hook_names[i],
                     lua_typename(L, t));
            lua_pop(L, 1);
            return -1;
        }
        p->hook[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        p->hooks |= 1u << i;
    }
    return 0;
}

static int take_hooks_fn(lua_State *L)
{
    take_ctx *c = lua_touserdata(L, 1);
    c->rv = take_hooks(c->p, lua_istable(L, 2), c->err, c->errlen);
    return 0;
}

static int open_fn(lua_State *L)
{
    sl_bind_open(lua_touserdata(L, 1));
    return 0;
}

static int dry_run(sluice_policy *p, char *err, size_t errlen);

int sluice_policy_load(sluice_policy_engine *e, const char *name, const char *src, size_t len,
                       sluice_policy **out, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: out of memory", name);
    sluice_policy *p = calloc(1, sizeof(*p));
    if (!p)
        return SLUICE_ERR_NOMEM;
    p->e = e;
    e->live++;
    p->enext = e->versions; /* first, so policy_free can unlink it */
    if (p->enext)
        p->enext->eprev = &p->enext;
    p->eprev = &e->versions;
    e->versions = p;
    p->refs = 1;
    for (int i = 0; i < SL_NHOOKS; i++)
        p->hook[i] = LUA_NOREF;
    const char *base = strrchr(name, '/');
    p->name = strdup(base ? base + 1 : name);
    /* The chunk's top level gets ten times the hooks' budgets, and at
     * least 10M instructions and a second: it runs once per load, may build
     * tables, and a worker loads while it serves (a busy worker must not
     * fail a load that the main thread's check passed). */
    uint64_t ins = e->opt.max_instructions, tns = e->opt.max_time_ns;
    uint64_t load_ins = ins ? (ins * 10 > 10000000 ? ins * 10 : 10000000) : 0;
    uint64_t load_tns = tns ? (tns * 10 > 1000000000 ? tns * 10 : 1000000000) : 0;
    sl_lbox_limits lim = {load_ins, load_tns, e->opt.max_memory, e->opt.max_string};
    sl_lbox_env env = {box_log, box_clock, p};
    if (!p->name || !(p->box = sl_lbox_new(&lim, &env))) {
        policy_free(p);
        return SLUICE_ERR_NOMEM;
    }
    p->L = sl_lbox_state(p->box);
    lua_pushcfunction(p->L, open_fn);
    lua_pushlightuserdata(p->L, p);
    if (lua_pcall(p->L, 1, 0, 0) != LUA_OK) {
        policy_free(p);
        return SLUICE_ERR_NOMEM;
    }
    if (sl_lbox_compile(p->box, src, len, p->name, err, errlen) != 0 ||
        sl_lbox_call(p->box, 0, 1, err, errlen) != SL_LBOX_OK) {
        policy_free(p);
        return SLUICE_ERR_INVAL;
    }
    int t = lua_type(p->L, -1);
    if (t != LUA_TNIL && t != LUA_TTABLE) {
        snprintf(err, errlen, "%s: the policy returned a %s; return a table of hooks or nothing",
                 p->name, lua_typename(p->L, t));
        lua_pop(p->L, 1);
        policy_free(p);
        return SLUICE_ERR_INVAL;
    }
    take_ctx tc = {p, err, errlen, -1};
    lua_pushcfunction(p->L, take_hooks_fn);
    lua_insert(p->L, -2);
    lua_pushlightuserdata(p->L, &tc);
    lua_insert(p->L, -2);
    if (lua_pcall(p->L, 2, 0, 0) != LUA_OK) {
        lua_pop(p->L, 1);
        snprintf(err, errlen, "%s: out of memory", p->name);
    }
    /* The dry run is a hook call like any other. */
    sl_lbox_set_call_limits(p->box, ins, tns);
    if (tc.rv != 0 || dry_run(p, err, errlen) != 0) {
        policy_free(p);
        return SLUICE_ERR_INVAL;
    }
    err[0] = 0;
    *out = p;
    return 0;
}

/* ---- calling hooks --------------------------------------------------------------- */

/* One hook call. Everything that may allocate in the state (handles,
 * tables) happens inside the protected, budgeted call, so a state at its
 * memory cap fails the call instead of aborting the process. */
typedef struct hook_ctx {
    sluice_policy *p;
    int h;
    sluice_policy_conn *pc;
    sluice_policy_stream *ps;
    const sluice_policy_message *m;
    const sluice_policy_conn_stats *st;
} hook_ctx;

static int trampoline(lua_State *L)
{
    hook_ctx *c = lua_touserdata(L, 1);
    sluice_policy *p = c->p;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->hook[c->h]);
    int n = 2;
    switch (c->h) {
    case SL_ON_CONNECTION:
        sl_bind_push_conn(p, L, c->pc);
        n = 1;
        break;
    case SL_ON_REQUEST:
    case SL_ON_RESPONSE:
        sl_bind_push_stream(p, L, c->ps);
        sl_bind_push_message(p, L, c->h == SL_ON_RESPONSE, c->m);
        break;
    default:
        sl_bind_push_conn(p, L, c->pc);
        sl_bind_push_stats(L, c->st);
        break;
    }
    lua_call(L, n, 0);
    return 0;
}

/* Call the hook; carry out its actions if it succeeds. Returns 0, 1 when
 * the policy has no such hook, or -1 (logged unless quiet; err set). */
static int call_hook(hook_ctx *c, char *err, size_t errlen, int quiet)
{
    sluice_policy *p = c->p;
    if (p->hook[c->h] == LUA_NOREF)
        return 1;
    /* Not while a hook runs; while its actions are carried out, a host op
     * may end a connection and so call on_close — a few levels deep. */
    if (p->cur || p->depth >= 4) {
        snprintf(err, errlen, "%s: %s called from inside a hook", p->name, hook_names[c->h]);
        return -1;
    }
    p->cur = c->pc;
    p->cur_stream = c->ps;
    p->stats.calls++;
    p->e->stats.calls++;
    lua_pushcfunction(p->L, trampoline);
    lua_pushlightuserdata(p->L, c);
    int rv = sl_lbox_call(p->box, 1, 0, err, errlen);
    if (c->m)
        sl_bind_clear_message(p, c->h == SL_ON_RESPONSE);
    if (rv != SL_LBOX_OK) {
        p->stats.errors++;
        p->e->stats.errors++;
        if (rv != SL_LBOX_ERROR) {
            p->stats.budget_exceeded++;
            p->e->stats.budget_exceeded++;
        }
        sl_act_drop(p);
        p->cur = NULL;
        p->cur_stream = NULL;
        if (!quiet)
            sl_plog(p->e, SLUICE_LOG_ERROR, "policy %s: %s failed (default applies): %s",
                    p->name, hook_names[c->h], err);
        return -1;
    }
    p->cur = NULL;
    p->cur_stream = NULL;
    /* An op may close the last connection holding p. */
    sluice_policy_ref(p);
    p->depth++;
    sl_act_apply(p);
    p->depth--;
    sluice_policy_unref(p);
    return 0;
}

static int run_on_connection(sluice_policy_conn *pc, sluice_session_options *opt,
                             int *push_allowed, char *err, size_t errlen, int quiet)
{
    sluice_policy *p = pc->p;
    /* The hook works on copies: a failure leaves the caller's untouched. */
    sluice_session_options o = *opt;
    int push = *push_allowed;
    pc->opt = &o;
    pc->push_allowed = &push;
    hook_ctx c = {p, SL_ON_CONNECTION, pc, NULL, NULL, NULL};
    int rv = call_hook(&c, err, errlen, quiet);
    pc->opt = NULL;
    pc->push_allowed = NULL;
    if (rv == 0) {
        *opt = o;
        *push_allowed = push;
    }
    return rv < 0 ? -1 : 0;
}

static int dry_run(sluice_policy *p, char *err, size_t errlen)
{
    sluice_policy_conn_info info = {sizeof info, "192.0.2.1:40000", "192.0.2.1", 40000,
                                    "0.0.0.0:443", "example.com", "h2", "TLSv1.3", 0};
    sluice_policy_conn *pc;
    if (sluice_policy_conn_new(p, &info, NULL, &pc) != 0) {
        snprintf(err, errlen, "%s: out of memory", p->name);
        return -1;
    }
    sluice_session_options opt;
    sluice_session_options_init(&opt);
    int push = 1;
    /* The synthetic connection's writes to `shared` go to a scratch store
     * seeded with nothing: a check must not count as a client. */
    sl_lshared *scratch = sl_lshared_new(p->e->opt.shared_max_keys, p->e->opt.shared_max_bytes);
    if (!scratch) {
        sluice_policy_conn_close(pc, NULL);
        snprintf(err, errlen, "%s: out of memory", p->name);
        return -1;
    }
    p->shared = scratch;
    /* Quietly: a failure here is reported to the loader, not logged. */
    int rv = run_on_connection(pc, &opt, &push, err, errlen, 1);
    sluice_policy_conn_close(pc, NULL);
    p->shared = p->e->shared;
    sl_lshared_free(scratch);
    if (rv != 0) {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen, "%s (in a dry run of on_connection)", tmp);
    }
    return rv;
}

/* ---- connections and streams --------------------------------------------------- */

static char *dup_into(char **cur, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = *cur;
    memcpy(d, s, n);
    *cur += n;
    return d;
}

int sluice_policy_conn_new(sluice_policy *p, const sluice_policy_conn_info *info, void *conn_ud,
                           sluice_policy_conn **out)
{
    sluice_policy_conn_info in;
    memset(&in, 0, sizeof in);
    memcpy(&in, info, info->struct_size < sizeof in ? info->struct_size : sizeof in);
    const char *strs[6] = {in.peer, in.ip, in.local, in.sni, in.alpn, in.tls_version};
    size_t total = 0;
    for (int i = 0; i < 6; i++)
        total += strs[i] ? strlen(strs[i]) + 1 : 0;
    sluice_policy_conn *pc = calloc(1, sizeof(*pc));
    char *buf = malloc(total + 1);
    if (!pc || !buf) {
        free(pc);
        free(buf);
        return SLUICE_ERR_NOMEM;
    }
    char *cur = buf;
    pc->info = in;
    pc->info.struct_size = sizeof in;
    pc->info.peer = dup_into(&cur, in.peer);
    pc->info.ip = dup_into(&cur, in.ip);
    pc->info.local = dup_into(&cur, in.local);
    pc->info.sni = dup_into(&cur, in.sni);
    pc->info.alpn = dup_into(&cur, in.alpn);
    pc->info.tls_version = dup_into(&cur, in.tls_version);
    pc->strs = buf;
    pc->p = p;
    pc->ud = conn_ud;
    pc->ref = LUA_NOREF;
    sluice_policy_ref(p);
    *out = pc;
    return 0;
}

int sluice_policy_on_connection(sluice_policy_conn *pc, sluice_session_options *opt,
                                int *push_allowed)
{
    char err[512];
    run_on_connection(pc, opt, push_allowed, err, sizeof err, 0);
    return 0;
}

void sluice_policy_conn_set_session(sluice_policy_conn *pc, sluice_session *s)
{
    pc->s = s;
}

void sluice_policy_conn_set_window_limit(sluice_policy_conn *pc, uint32_t max)
{
    pc->window_limit = max;
}

sluice_policy *sluice_policy_conn_policy(const sluice_policy_conn *pc)
{
    return pc->p;
}

/* Every handle the connection's state gave out goes stale. */
static void detach(sluice_policy_conn *pc)
{
    sl_bind_invalidate(pc->p, &pc->ref);
    for (sluice_policy_stream *ps = pc->streams; ps; ps = ps->next)
        sl_bind_invalidate(pc->p, &ps->ref);
}

void sluice_policy_conn_switch(sluice_policy_conn *pc, sluice_policy *p)
{
    if (!p || p == pc->p)
        return;
    detach(pc);
    sluice_policy_ref(p);
    sluice_policy_unref(pc->p);
    pc->p = p;
}

void sluice_policy_conn_close(sluice_policy_conn *pc, const sluice_policy_conn_stats *st)
{
    if (!pc)
        return;
    sluice_policy *p = pc->p;
    char err[512];
    if (st) {
        hook_ctx c = {p, SL_ON_CLOSE, pc, NULL, NULL, st};
        call_hook(&c, err, sizeof err, 0);
    }
    while (pc->streams) /* the host should have freed them; be safe */
        sluice_policy_stream_free(pc->streams);
    sl_act_forget(p, pc, NULL);
    detach(pc);
    free(pc->strs);
    free(pc);
    sluice_policy_unref(p);
}

int sluice_policy_on_window(sluice_policy_conn *pc, const sluice_policy_conn_stats *st)
{
    char err[512];
    sluice_policy_conn_stats none;
    if (!st) {
        memset(&none, 0, sizeof none);
        none.struct_size = sizeof none;
        st = &none;
    }
    hook_ctx c = {pc->p, SL_ON_WINDOW, pc, NULL, NULL, st};
    call_hook(&c, err, sizeof err, 0);
    return 0;
}

int sluice_policy_stream_new(sluice_policy_conn *pc, uint32_t stream_id, void *stream_ud,
                             sluice_policy_stream **out)
{
    sluice_policy_stream *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return SLUICE_ERR_NOMEM;
    ps->pc = pc;
    ps->id = stream_id;
    ps->ud = stream_ud;
    ps->ref = LUA_NOREF;
    ps->next = pc->streams;
    if (pc->streams)
        pc->streams->prev = ps;
    pc->streams = ps;
    *out = ps;
    return 0;
}

void sluice_policy_stream_free(sluice_policy_stream *ps)
{
    if (!ps)
        return;
    sluice_policy_conn *pc = ps->pc;
    sluice_policy *p = pc->p;
    sl_bind_invalidate(p, &ps->ref);
    sl_act_forget(p, NULL, ps); /* queued for it: nothing to act on now */
    if (ps->prev)
        ps->prev->next = ps->next;
    else
        pc->streams = ps->next;
    if (ps->next)
        ps->next->prev = ps->prev;
    free(ps);
}

static int on_message(sluice_policy_stream *ps, int h, const sluice_policy_message *m)
{
    char err[512];
    hook_ctx c = {ps->pc->p, h, ps->pc, ps, m, NULL};
    call_hook(&c, err, sizeof err, 0);
    return 0;
}

int sluice_policy_on_request(sluice_policy_stream *ps, const sluice_policy_message *req)
{
    return on_message(ps, SL_ON_REQUEST, req);
}

int sluice_policy_on_response(sluice_policy_stream *ps, const sluice_policy_message *res)
{
    return on_message(ps, SL_ON_RESPONSE, res);
}
