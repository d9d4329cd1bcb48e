/* mem.h — the per-object allocator every core unit allocates through.
 * Wraps a caller-supplied sluice_allocator, falling back to libc. */
#ifndef SL_MEM_H
#define SL_MEM_H

#include <stddef.h>
#include <string.h>

#include "sluice.h"

typedef struct sl_mem {
    sluice_allocator a;
} sl_mem;

/* Fill m from alloc, or with libc's functions when alloc is NULL. */
void sl_mem_init(sl_mem *m, const sluice_allocator *alloc);

/* Make *buf hold at least need bytes, doubling from first (or from the
 * current *cap): 0 or SLUICE_ERR_NOMEM, with *buf unchanged on failure. */
int sl_grow(const sl_mem *m, void *buf, size_t *cap, size_t need, size_t first);

static inline void *sl_malloc(const sl_mem *m, size_t n)
{
    return m->a.malloc(n, m->a.ud);
}

static inline void *sl_realloc(const sl_mem *m, void *p, size_t n)
{
    return m->a.realloc(p, n, m->a.ud);
}

static inline void sl_free(const sl_mem *m, void *p)
{
    if (p)
        m->a.free(p, m->a.ud);
}

static inline void *sl_calloc(const sl_mem *m, size_t n)
{
    void *p = m->a.malloc(n, m->a.ud);
    if (p)
        memset(p, 0, n);
    return p;
}

#endif /* SL_MEM_H */
