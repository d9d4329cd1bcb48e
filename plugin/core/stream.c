/* stream.c — the id → stream map of a session: chained hashing with a
 * power-of-two table that doubles as streams are added. */
#include "stream.h"

static uint32_t slot(const sl_stream_map *m, uint32_t id)
{
    /* Ids grow by two; a multiplicative hash spreads them over the table. */
    return (id * 2654435761u) >> 7 & m->mask;
}

void sl_stream_map_init(sl_stream_map *m, const sl_mem *mem)
{
    m->mem = *mem;
    m->buckets = NULL;
    m->mask = 0;
    m->count = 0;
}

void sl_stream_map_free(sl_stream_map *m)
{
    sl_free(&m->mem, m->buckets);
    m->buckets = NULL;
    m->count = 0;
}

sl_stream *sl_stream_map_get(const sl_stream_map *m, uint32_t id)
{
    if (!m->buckets)
        return NULL;
    for (sl_stream *s = m->buckets[slot(m, id)]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

static int grow(sl_stream_map *m)
{
    uint32_t n = m->buckets ? (m->mask + 1) * 2 : 16;
    sl_stream **b = sl_calloc(&m->mem, n * sizeof(*b));
    if (!b)
        return SLUICE_ERR_NOMEM;
    sl_stream **old = m->buckets;
    uint32_t oldn = old ? m->mask + 1 : 0;
    m->buckets = b;
    m->mask = n - 1;
    for (uint32_t i = 0; i < oldn; i++) {
        sl_stream *s = old[i];
        while (s) {
            sl_stream *next = s->hnext;
            uint32_t k = slot(m, s->id);
            s->hnext = b[k];
            b[k] = s;
            s = next;
        }
    }
    sl_free(&m->mem, old);
    return 0;
}

int sl_stream_map_put(sl_stream_map *m, sl_stream *s)
{
    if (!m->buckets || m->count >= m->mask + 1) {
        int rv = grow(m);
        if (rv != 0)
            return rv;
    }
    uint32_t k = slot(m, s->id);
    s->hnext = m->buckets[k];
    m->buckets[k] = s;
    m->count++;
    return 0;
}

void sl_stream_map_del(sl_stream_map *m, sl_stream *s)
{
    sl_stream **pp = &m->buckets[slot(m, s->id)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = s->hnext;
        m->count--;
    }
}

void sl_stream_map_each(sl_stream_map *m, void (*fn)(sl_stream *, void *), void *ud)
{
    if (!m->buckets)
        return;
    for (uint32_t i = 0; i <= m->mask; i++) {
        sl_stream *s = m->buckets[i];
        while (s) {
            sl_stream *next = s->hnext;
            fn(s, ud);
            s = next;
        }
    }
}
