/* act.c — what hooks ask for, queued during the call and carried out after
 * it returns cleanly, so a hook that fails halfway changes nothing. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

/* Strings of one call live in a chain of blocks that never move (pointers
 * into them stay valid until the queue is applied or dropped). */
typedef struct sl_blk {
    struct sl_blk *next;
    size_t len, cap;
    char data[];
} sl_blk;

void sl_plog(sluice_policy_engine *e, int level, const char *fmt, ...)
{
    if (!e->host.log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    e->host.log(e->ud, level, msg);
}

void *sl_act_mem(sluice_policy *p, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    sl_blk *b = (sl_blk *)p->arena;
    if (!b || b->cap - b->len < n) {
        size_t cap = n > 4096 ? n : 4096;
        sl_blk *nb = malloc(sizeof(*nb) + cap);
        if (!nb)
            return NULL;
        nb->next = b;
        nb->len = 0;
        nb->cap = cap;
        p->arena = (char *)nb;
        b = nb;
    }
    void *m = b->data + b->len;
    b->len += n;
    return m;
}

char *sl_act_str(sluice_policy *p, const char *s, size_t len)
{
    char *d = sl_act_mem(p, len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

int sl_act_reserve(sluice_policy *p, size_t n)
{
    if (p->nacts + n <= p->acts_cap)
        return 0;
    if (p->nacts + n > SL_ACT_MAX)
        return -1; /* a call cannot queue without bound */
    size_t cap = p->acts_cap ? p->acts_cap : 8;
    while (cap < p->nacts + n)
        cap *= 2;
    sl_act *a = realloc(p->acts, cap * sizeof(*a));
    if (!a)
        return -1;
    p->acts = a;
    p->acts_cap = cap;
    return 0;
}

sl_act *sl_act_new(sluice_policy *p, int kind, sluice_policy_stream *ps)
{
    if (sl_act_reserve(p, 1) != 0)
        return NULL;
    sl_act *a = &p->acts[p->nacts++];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->ps = ps;
    a->pc = ps ? ps->pc : p->cur;
    return a;
}

/* A list taken out of p while it is carried out: hooks that run meanwhile
 * (on_close from a host op that closed the connection) queue their own. */
typedef struct sl_actlist {
    sl_act *acts;
    size_t n, cap;
    char *arena;
    struct sl_actlist *outer;
} sl_actlist;

static void free_blocks(sl_blk *b)
{
    while (b) {
        sl_blk *n = b->next;
        free(b);
        b = n;
    }
}

/* Empty the queue; the newest block is kept for the next call. */
static void reset(sluice_policy *p)
{
    sl_blk *b = (sl_blk *)p->arena;
    p->nacts = 0;
    if (b) {
        free_blocks(b->next);
        b->next = NULL;
        b->len = 0;
    }
}

void sl_act_drop(sluice_policy *p)
{
    reset(p);
}

static void forget_in(sl_act *acts, size_t n, sluice_policy_conn *pc, sluice_policy_stream *ps)
{
    for (size_t i = 0; i < n; i++)
        if ((ps && acts[i].ps == ps) || (pc && acts[i].pc == pc))
            acts[i].kind = -1;
}

void sl_act_forget(sluice_policy *p, sluice_policy_conn *pc, sluice_policy_stream *ps)
{
    forget_in(p->acts, p->nacts, pc, ps);
    /* Every version's lists: a connection may have switched versions since. */
    for (sl_actlist *l = p->e->applying; l; l = l->outer)
        forget_in(l->acts, l->n, pc, ps);
}

static int apply_one(sluice_policy *p, const sl_act *a)
{
    sluice_policy_conn *pc = a->pc;
    const sluice_policy_host *h = &p->e->host;
    void *cud = pc ? pc->ud : NULL, *sud = a->ps ? a->ps->ud : NULL;
    sluice_session *s = pc ? pc->s : NULL;
    switch (a->kind) {
    case SL_ACT_PRIORITY: {
        int inc = a->b, cu, ci;
        if (!s)
            return 0;
        if (inc < 0) /* not given: the stream's incremental flag as it is now */
            inc = sluice_session_get_priority(s, a->ps->id, &cu, &ci) == 0 ? ci : 0;
        return sluice_session_set_priority(s, a->ps->id, a->a, inc);
    }
    case SL_ACT_STREAM_WINDOW:
        return s ? sluice_session_set_window(s, a->ps->id, a->u32[0]) : 0;
    case SL_ACT_CONN_WINDOW:
        return s ? sluice_session_set_window(s, 0, a->u32[0]) : 0;
    case SL_ACT_SETTINGS:
        return s ? sluice_session_submit_settings(s, a->u32, a->nu32 / 2) : 0;
    case SL_ACT_RATE:
        return s ? sluice_session_set_rate(s, a->a,
                                           (sluice_rate){a->u32[0], a->u32[1]}) : 0;
    case SL_ACT_PUSH:
        return h->push ? h->push(cud, sud, a->s1, a->nv, a->nnv) : SLUICE_ERR_STATE;
    case SL_ACT_HINT:
        return h->hint ? h->hint(cud, sud, a->nv, a->nnv) : SLUICE_ERR_STATE;
    case SL_ACT_RESPOND:
        return h->respond ? h->respond(cud, sud, a->a, a->s2, a->l2) : SLUICE_ERR_STATE;
    case SL_ACT_UPSTREAM:
        return h->upstream ? h->upstream(cud, sud, a->s1) : SLUICE_ERR_STATE;
    case SL_ACT_TAG:
        return h->tag ? h->tag(cud, sud, a->s1, a->s2) : SLUICE_ERR_STATE;
    case SL_ACT_HEADER:
        return h->header ? h->header(cud, sud, a->s1, a->s2, a->a) : SLUICE_ERR_STATE;
    }
    return SLUICE_ERR_INVAL;
}

static const char *const act_names[] = {"priority", "push",   "hint",   "respond",
                                        "upstream", "tag",    "header", "stream window",
                                        "window",   "settings", "limits"};

void sl_act_apply(sluice_policy *p)
{
    if (!p->nacts) {
        reset(p);
        return;
    }
    sl_actlist run = {p->acts, p->nacts, p->acts_cap, p->arena, p->e->applying};
    p->acts = NULL;
    p->nacts = p->acts_cap = 0;
    p->arena = NULL;
    p->e->applying = &run;
    for (size_t i = 0; i < run.n; i++) {
        const sl_act *a = &run.acts[i];
        if (a->kind < 0)
            continue; /* its stream or connection went away meanwhile */
        int rv = apply_one(p, a);
        if (rv != 0 && a->kind >= 0)
            sl_plog(p->e, SLUICE_LOG_DEBUG, "policy %s: %s on stream %u not done: %s", p->name,
                    act_names[a->kind], a->ps ? a->ps->id : 0, sluice_strerror(rv));
    }
    p->e->applying = run.outer;
    /* Give the storage back for the next call unless a nested call made
     * its own meanwhile. */
    if (!p->acts) {
        p->acts = run.acts;
        p->acts_cap = run.cap;
        p->nacts = 0;
    } else {
        free(run.acts);
    }
    if (!p->arena) {
        p->arena = run.arena;
        reset(p);
    } else {
        free_blocks((sl_blk *)run.arena);
    }
}
