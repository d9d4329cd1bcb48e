/* ring.h — a byte ring whose readers borrow: bytes handed out stay in place
 * until released, so a protocol can write them without a copy. */
#ifndef SL_UV_RING_H
#define SL_UV_RING_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Positions only grow; index = pos % cap. [rd, hd) is borrowed, [hd, wr)
 * is ready, the rest is free. */
typedef struct sl_ring {
    uint8_t *buf;
    size_t cap;
    uint64_t rd, hd, wr;
} sl_ring;

static inline size_t sl_ring_room(const sl_ring *g)
{
    return g->cap - (size_t)(g->wr - g->rd);
}

static inline size_t sl_ring_ready(const sl_ring *g)
{
    return (size_t)(g->wr - g->hd);
}

static inline size_t sl_ring_borrowed(const sl_ring *g)
{
    return (size_t)(g->hd - g->rd);
}

/* Copy in up to the room; returns bytes taken (0 if the buffer cannot be
 * allocated: it is allocated on first use, most rings never see a byte). */
static inline size_t sl_ring_put(sl_ring *g, const uint8_t *d, size_t n)
{
    if (!g->buf && n) {
        g->buf = malloc(g->cap);
        if (!g->buf)
            return 0;
    }
    size_t room = sl_ring_room(g);
    if (n > room)
        n = room;
    for (size_t done = 0; done < n;) {
        size_t at = (size_t)(g->wr % g->cap), k = g->cap - at;
        if (k > n - done)
            k = n - done;
        memcpy(g->buf + at, d + done, k);
        g->wr += k;
        done += k;
    }
    return n;
}

/* Borrow up to max ready bytes, contiguous (up to the wrap). */
static inline size_t sl_ring_take(sl_ring *g, const uint8_t **p, size_t max)
{
    size_t ready = sl_ring_ready(g);
    if (ready == 0)
        return 0;
    size_t at = (size_t)(g->hd % g->cap), n = g->cap - at;
    if (n > ready)
        n = ready;
    if (n > max)
        n = max;
    *p = g->buf + at;
    g->hd += n;
    return n;
}

/* The first n borrowed bytes are done with. */
static inline void sl_ring_release(sl_ring *g, size_t n)
{
    size_t b = sl_ring_borrowed(g);
    g->rd += n < b ? n : b;
}

/* Give back the borrowed bytes not written (they are read again). */
static inline void sl_ring_unborrow(sl_ring *g)
{
    g->hd = g->rd;
}

static inline void sl_ring_free(sl_ring *g)
{
    free(g->buf);
    g->buf = NULL;
}

#endif /* SL_UV_RING_H */
