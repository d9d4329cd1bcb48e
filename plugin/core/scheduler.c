/* scheduler.c — the RFC 9218 scheduler: eight urgency levels, each a pairing
 * heap of non-incremental streams (sequential by id) and a ring of
 * incremental ones (round robin), and a bitmap of non-empty levels. */
#include "scheduler.h"

#include <string.h>

void sl_sched_init(sl_sched *q, int flat)
{
    memset(q, 0, sizeof(*q));
    q->flat = flat;
}

void sl_sched_node_init(sl_sched_node *n, uint32_t id)
{
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->urgency = 3; /* RFC 9218 §4.1 default */
}

/* ---- pairing heap ---------------------------------------------------------- */

static sl_sched_node *meld(sl_sched_node *a, sl_sched_node *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (b->id < a->id) {
        sl_sched_node *t = a;
        a = b;
        b = t;
    }
    /* b becomes a's first child */
    b->prev = a;
    b->sibling = a->child;
    if (a->child)
        a->child->prev = b;
    a->child = b;
    a->sibling = a->prev = NULL;
    return a;
}

/* Two-pass pairing of a child list: what keeps delete O(log n) amortized. */
static sl_sched_node *merge_pairs(sl_sched_node *first)
{
    if (!first)
        return NULL;
    sl_sched_node *pairs = NULL; /* melded pairs, linked through sibling */
    while (first) {
        sl_sched_node *a = first, *b = first->sibling;
        first = b ? b->sibling : NULL;
        a->sibling = a->prev = NULL;
        if (b)
            b->sibling = b->prev = NULL;
        sl_sched_node *m = meld(a, b);
        m->sibling = pairs;
        pairs = m;
    }
    sl_sched_node *root = NULL;
    while (pairs) {
        sl_sched_node *next = pairs->sibling;
        pairs->sibling = NULL;
        root = meld(root, pairs);
        pairs = next;
    }
    return root;
}

static void heap_remove(sl_sched_node **root, sl_sched_node *n)
{
    sl_sched_node *sub = merge_pairs(n->child);
    n->child = NULL;
    if (n == *root) {
        *root = sub;
        if (sub)
            sub->prev = NULL;
        return;
    }
    /* Cut n out of its parent's child list. */
    if (n->prev->child == n)
        n->prev->child = n->sibling;
    else
        n->prev->sibling = n->sibling;
    if (n->sibling)
        n->sibling->prev = n->prev;
    n->sibling = n->prev = NULL;
    *root = meld(*root, sub);
}

/* ---- rings ------------------------------------------------------------------- */

static void ring_add(sl_sched_node **ring, sl_sched_node *n)
{
    if (!*ring) {
        n->rnext = n->rprev = n;
        *ring = n;
        return;
    }
    /* At the back: it waits its turn behind those already there. */
    sl_sched_node *h = *ring;
    n->rnext = h;
    n->rprev = h->rprev;
    h->rprev->rnext = n;
    h->rprev = n;
}

static void ring_remove(sl_sched_node **ring, sl_sched_node *n)
{
    if (n->rnext == n) {
        *ring = NULL;
    } else {
        n->rprev->rnext = n->rnext;
        n->rnext->rprev = n->rprev;
        if (*ring == n)
            *ring = n->rnext;
    }
    n->rnext = n->rprev = NULL;
}

/* ---- the scheduler ---------------------------------------------------------- */

static void level_update(sl_sched *q, uint8_t u)
{
    if (q->lv[u].heap || q->lv[u].ring)
        q->mask = (uint8_t)(q->mask | (1u << u));
    else
        q->mask = (uint8_t)(q->mask & ~(1u << u));
}

void sl_sched_add(sl_sched *q, sl_sched_node *n)
{
    if (n->queued)
        return;
    /* Without priorities every stream takes its turn in one ring. */
    n->level = q->flat ? 0 : n->urgency;
    n->inc_q = q->flat ? 1 : n->incremental;
    sl_sched_level *l = &q->lv[n->level];
    if (n->inc_q)
        ring_add(&l->ring, n);
    else
        l->heap = meld(l->heap, n);
    n->queued = 1;
    q->count++;
    level_update(q, n->level);
}

void sl_sched_remove(sl_sched *q, sl_sched_node *n)
{
    if (!n->queued)
        return;
    sl_sched_level *l = &q->lv[n->level];
    if (n->inc_q)
        ring_remove(&l->ring, n);
    else
        heap_remove(&l->heap, n);
    n->queued = 0;
    q->count--;
    level_update(q, n->level);
}

sl_sched_node *sl_sched_top(const sl_sched *q)
{
    if (!q->mask)
        return NULL;
    unsigned u = (unsigned)__builtin_ctz(q->mask);
    const sl_sched_level *l = &q->lv[u];
    return l->heap ? l->heap : l->ring;
}

void sl_sched_sent(sl_sched *q, sl_sched_node *n)
{
    if (n->queued && n->inc_q) {
        sl_sched_level *l = &q->lv[n->level];
        if (l->ring == n)
            l->ring = n->rnext;
    }
}

void sl_sched_set(sl_sched *q, sl_sched_node *n, int urgency, int incremental)
{
    if (urgency < 0 || urgency >= SL_URGENCY_LEVELS)
        return;
    int was = n->queued;
    if (was && n->urgency == urgency && n->incremental == (incremental != 0))
        return;
    if (was)
        sl_sched_remove(q, n);
    n->urgency = (uint8_t)urgency;
    n->incremental = incremental != 0;
    if (was)
        sl_sched_add(q, n);
}
