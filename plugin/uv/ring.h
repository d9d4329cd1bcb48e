/* ring.h — a byte ring whose readers borrow: bytes handed out stay in place
 * until released, so a protocol can write them without a copy. */
#ifndef SL_UV_RING_H
#define SL_UV_RING_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The ring is made of segments allocated as bytes reach them and freed
 * once all their bytes are released (one is kept spare), so its memory
 * follows the bytes in flight, not its capacity (a request ring must be
 * able to hold a whole stream window, up to 16 MiB with adaptive windows,
 * though most hold a few KiB). Segments never move: borrowed bytes stay
 * valid while others are put. */
#define SL_RING_SEG ((size_t)64 * 1024)

/* Positions only grow; index = pos % cap. [rd, hd) is borrowed, [hd, wr)
 * is ready, the rest is free. Set cap (then leave it) before the first put. */
typedef struct sl_ring {
    uint8_t **segs;
    uint8_t *spare;          /* a drained segment kept for the next one */
    size_t cap;
    uint64_t rd, hd, wr;
} sl_ring;

static inline size_t sl_ring_seg(const sl_ring *g)
{
    return g->cap < SL_RING_SEG ? g->cap : SL_RING_SEG;
}

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

/* Copy in up to the room; returns bytes taken (fewer if memory runs out). */
static inline size_t sl_ring_put(sl_ring *g, const uint8_t *d, size_t n)
{
    size_t seg = sl_ring_seg(g);
    if (!n || !seg)
        return 0;
    if (!g->segs) {
        g->cap = (g->cap + seg - 1) / seg * seg; /* whole segments */
        g->segs = calloc(g->cap / seg, sizeof(*g->segs));
        if (!g->segs)
            return 0;
    }
    size_t room = sl_ring_room(g);
    if (n > room)
        n = room;
    size_t done = 0;
    while (done < n) {
        size_t at = (size_t)(g->wr % g->cap), i = at / seg, off = at % seg;
        if (!g->segs[i]) {
            g->segs[i] = g->spare ? g->spare : malloc(seg);
            g->spare = NULL;
            if (!g->segs[i])
                break;
        }
        size_t k = seg - off < n - done ? seg - off : n - done;
        memcpy(g->segs[i] + off, d + done, k);
        g->wr += k;
        done += k;
    }
    return done;
}

/* Borrow up to max ready bytes, contiguous (up to a segment's end). */
static inline size_t sl_ring_take(sl_ring *g, const uint8_t **p, size_t max)
{
    size_t ready = sl_ring_ready(g), seg = sl_ring_seg(g);
    if (ready == 0)
        return 0;
    size_t at = (size_t)(g->hd % g->cap), n = seg - at % seg;
    if (n > ready)
        n = ready;
    if (n > max)
        n = max;
    *p = g->segs[at / seg] + at % seg;
    g->hd += n;
    return n;
}

/* The first n borrowed bytes are done with. Segments left behind by the
 * reader go, unless the writer has already come round into them. */
static inline void sl_ring_release(sl_ring *g, size_t n)
{
    size_t b = sl_ring_borrowed(g), seg = sl_ring_seg(g);
    uint64_t from = g->rd / seg;
    g->rd += n < b ? n : b;
    for (uint64_t s = from; s < g->rd / seg; s++) {
        size_t i = (size_t)(s * seg % g->cap) / seg;
        if (g->wr > s * seg + g->cap || !g->segs[i])
            continue; /* holds bytes of the next lap */
        if (!g->spare)
            g->spare = g->segs[i];
        else
            free(g->segs[i]);
        g->segs[i] = NULL;
    }
}

/* Give back the borrowed bytes not written (they are read again). */
static inline void sl_ring_unborrow(sl_ring *g)
{
    g->hd = g->rd;
}

static inline void sl_ring_free(sl_ring *g)
{
    size_t seg = sl_ring_seg(g);
    for (size_t i = 0; g->segs && i < g->cap / seg; i++)
        free(g->segs[i]);
    free(g->segs);
    free(g->spare);
    g->segs = NULL;
    g->spare = NULL;
}

#endif /* SL_UV_RING_H */
