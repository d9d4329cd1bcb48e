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

sl_act *sl_act_new(sluice_policy *p, int kind, sluice_policy_stream *ps)
{
    if (p->nacts == p->acts_cap) {
        size_t cap = p->acts_cap ? p->acts_cap * 2 : 8;
        if (cap > 4096)
            return NULL; /* a call cannot queue without bound */
        sl_act *a = realloc(p->acts, cap * sizeof(*a));
        if (!a)
            return NULL;
        p->acts = a;
        p->acts_cap = cap;
    }
    sl_act *a = &p->acts[p->nacts++];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->ps = ps;
    return a;
}

static void reset(sluice_policy *p)
{
    p->nacts = 0;
    sl_blk *b = (sl_blk *)p->arena;
    if (!b)
        return;
    while (b->next) { /* keep one block for the next call */
        sl_blk *n = b->next;
        free(b);
        b = n;
    }
    b->len = 0;
    p->arena = (char *)b;
}

void sl_act_drop(sluice_policy *p)
{
    reset(p);
}

static int apply_one(sluice_policy *p, const sl_act *a)
{
    /* A stream's own connection: a handle kept from another connection's
     * hook acts there. */
    sluice_policy_conn *pc = a->ps ? a->ps->pc : p->cur;
    const sluice_policy_host *h = &p->e->host;
    void *cud = pc ? pc->ud : NULL, *sud = a->ps ? a->ps->ud : NULL;
    sluice_session *s = pc ? pc->s : NULL;
    switch (a->kind) {
    case SL_ACT_PRIORITY:
        return s ? sluice_session_set_priority(s, a->ps->id, a->a, a->b) : 0;
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
    for (size_t i = 0; i < p->nacts; i++) {
        const sl_act *a = &p->acts[i];
        if (a->kind < 0)
            continue; /* its stream went away meanwhile */
        int rv = apply_one(p, a);
        if (rv != 0)
            sl_plog(p->e, SLUICE_LOG_DEBUG, "policy %s: %s on stream %u not done: %s", p->name,
                    act_names[a->kind], a->ps ? a->ps->id : 0, sluice_strerror(rv));
    }
    reset(p);
}
