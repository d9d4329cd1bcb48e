/* mem.c — default allocator (libc) behind sl_mem.
 * Kept apart so embedders can see exactly what "no allocator" means. */
#include <stdlib.h>

#include "mem.h"

static void *libc_malloc(size_t n, void *ud)
{
    (void)ud;
    return malloc(n ? n : 1);
}

static void *libc_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    return realloc(p, n ? n : 1);
}

static void libc_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

void sl_mem_init(sl_mem *m, const sluice_allocator *alloc)
{
    if (alloc && alloc->malloc && alloc->realloc && alloc->free) {
        m->a = *alloc;
        return;
    }
    m->a.malloc = libc_malloc;
    m->a.realloc = libc_realloc;
    m->a.free = libc_free;
    m->a.ud = NULL;
}

int sl_grow(const sl_mem *m, void *buf, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first;
    while (n < need)
        n *= 2;
    void **pp = buf;
    void *b = sl_realloc(m, *pp, n);
    if (!b)
        return SLUICE_ERR_NOMEM;
    *pp = b;
    *cap = n;
    return 0;
}
