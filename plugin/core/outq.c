/* outq.c — the session's output queue: a ring of segments, owned bytes in
 * one growable buffer (addressed by offset), borrowed DATA payloads by pointer. */
#include <string.h>

#include "outq.h"

#define OUTQ_MIN_SEGS 16
#define OUTQ_MIN_BUF 1024 /* a SETTINGS, a WINDOW_UPDATE and a HEADERS fit */

void sl_outq_init(sl_outq *q, const sl_mem *mem, sl_outq_release_fn release,
                  void *ud)
{
    memset(q, 0, sizeof(*q));
    q->mem = *mem;
    q->release = release;
    q->ud = ud;
}

static sl_outq_seg *seg_at(const sl_outq *q, size_t i)
{
    return &q->segs[(q->head + i) & q->mask];
}

/* The allocator contract does not promise realloc(NULL, n) == malloc(n). */
static void *mem_resize(const sl_mem *m, void *p, size_t n)
{
    return p ? sl_realloc(m, p, n) : sl_malloc(m, n);
}

/* The head segment has been written to its end. It leaves the ring before
 * release runs, so that release may append to q. */
static void pop_head(sl_outq *q)
{
    sl_outq_seg s = *seg_at(q, 0);
    q->head = (q->head + 1) & q->mask;
    q->count--;
    q->pending -= s.len;
    if (s.owned) {
        q->lo += s.len;
        if (q->lo == q->hi) /* no owned bytes left: start again at the front */
            q->lo = q->hi = 0;
    } else if (q->release) {
        q->release(q->ud, s.stream_id, s.total);
    }
}

void sl_outq_free(sl_outq *q)
{
    while (q->count)
        pop_head(q);
    sl_free(&q->mem, q->segs);
    sl_free(&q->mem, q->buf);
    sl_mem mem = q->mem;
    sl_outq_init(q, &mem, q->release, q->ud);
}

/* Room for k more segments. The ring doubles; segments that had wrapped
 * past the old end move up so segment i stays at (head + i) & mask. */
static int grow_segs(sl_outq *q, size_t k)
{
    size_t cap = q->segs ? q->mask + 1 : 0;
    if (k <= cap - q->count)
        return 0;
    size_t ncap = cap ? cap : OUTQ_MIN_SEGS / 2;
    do {
        if (ncap > SIZE_MAX / 2 / sizeof(sl_outq_seg))
            return SLUICE_ERR_NOMEM;
        ncap *= 2;
    } while (k > ncap - q->count);
    sl_outq_seg *s = mem_resize(&q->mem, q->segs, ncap * sizeof(*s));
    if (!s)
        return SLUICE_ERR_NOMEM;
    size_t wrapped = q->head + q->count > cap ? q->head + q->count - cap : 0;
    memcpy(s + cap, s, wrapped * sizeof(*s));
    q->segs = s;
    q->mask = ncap - 1;
    return 0;
}

/* Move the owned bytes not yet written to the front of the buffer. */
static void compact(sl_outq *q)
{
    memmove(q->buf, q->buf + q->lo, q->hi - q->lo);
    for (size_t i = 0; i < q->count; i++) {
        sl_outq_seg *s = seg_at(q, i);
        if (s->owned)
            s->at.off -= q->lo;
    }
    q->hi -= q->lo;
    q->lo = 0;
}

/* Room for n more owned bytes at hi. The written prefix [0, lo) is
 * reclaimed only once it is at least half the buffer: every byte moved is
 * then paid for by a byte already written. Otherwise the buffer doubles. */
static int make_room(sl_outq *q, size_t n)
{
    if (q->buf && n <= q->cap - q->hi)
        return 0;
    if (q->lo > 0 && q->lo >= q->cap / 2)
        compact(q);
    if (q->buf && n <= q->cap - q->hi)
        return 0;
    if (n > SIZE_MAX - q->hi)
        return SLUICE_ERR_NOMEM;
    size_t need = q->hi + n;
    size_t cap = q->cap ? q->cap : OUTQ_MIN_BUF;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *b = mem_resize(&q->mem, q->buf, cap);
    if (!b)
        return SLUICE_ERR_NOMEM;
    q->buf = b;
    q->cap = cap;
    return 0;
}

uint8_t *sl_outq_reserve(sl_outq *q, size_t n)
{
    /* The last owned segment always ends at hi, so a tail that is owned
     * can simply grow. */
    int extend = q->count > 0 && seg_at(q, q->count - 1)->owned;
    if (n > SIZE_MAX - q->pending)
        return NULL;
    if (!extend && n > 0 && grow_segs(q, 1) != 0)
        return NULL;
    if (make_room(q, n) != 0)
        return NULL;
    uint8_t *p = q->buf + q->hi;
    if (n == 0)
        return p;
    if (extend) {
        seg_at(q, q->count - 1)->len += n;
    } else {
        sl_outq_seg *s = seg_at(q, q->count++);
        memset(s, 0, sizeof(*s));
        s->at.off = q->hi;
        s->len = n;
        s->owned = 1;
    }
    q->hi += n;
    q->pending += n;
    return p;
}

int sl_outq_append(sl_outq *q, const void *p, size_t n)
{
    if (n > 0 && !p)
        return SLUICE_ERR_INVAL;
    uint8_t *dst = sl_outq_reserve(q, n);
    if (!dst)
        return SLUICE_ERR_NOMEM;
    if (n > 0)
        memcpy(dst, p, n);
    return 0;
}

int sl_outq_append_borrowed(sl_outq *q, const void *p, size_t n,
                            uint32_t stream_id)
{
    if (n == 0)
        return 0;
    if (!p || n > SIZE_MAX - q->pending)
        return SLUICE_ERR_INVAL;
    int rv = grow_segs(q, 1);
    if (rv != 0)
        return rv;
    sl_outq_seg *s = seg_at(q, q->count++);
    s->at.ptr = p;
    s->len = n;
    s->total = n;
    s->stream_id = stream_id;
    s->owned = 0;
    q->pending += n;
    return 0;
}

int sl_outq_append_data(sl_outq *q, const void *hdr, size_t hlen,
                        const void *data, size_t n, uint32_t stream_id)
{
    if ((hlen > 0 && !hdr) || (n > 0 && !data))
        return SLUICE_ERR_INVAL;
    if (hlen > SIZE_MAX - q->pending || n > SIZE_MAX - q->pending - hlen)
        return SLUICE_ERR_INVAL;
    /* With room for both segments and the header bytes secured first, the
     * appends below cannot fail, so a header never goes out alone. */
    int rv = grow_segs(q, 2);
    if (rv == 0)
        rv = make_room(q, hlen);
    if (rv != 0)
        return rv;
    rv = sl_outq_append(q, hdr, hlen);
    if (rv == 0)
        rv = sl_outq_append_borrowed(q, data, n, stream_id);
    return rv;
}

int sl_outq_iov(const sl_outq *q, sl_iovec *iov, int iovcnt, size_t max_bytes)
{
    if (iovcnt < 0)
        return SLUICE_ERR_INVAL;
    size_t lim = (size_t)iovcnt < q->count ? (size_t)iovcnt : q->count;
    size_t n = 0;
    for (; n < lim && max_bytes > 0; n++) {
        const sl_outq_seg *s = seg_at(q, n);
        size_t len = s->len < max_bytes ? s->len : max_bytes;
        iov[n].base = s->owned ? (const void *)(q->buf + s->at.off)
                               : (const void *)s->at.ptr;
        iov[n].len = len;
        max_bytes -= len;
    }
    return (int)n;
}

/* The first n bytes of the head segment, but not all of it, were written. */
static void advance_head(sl_outq *q, size_t n)
{
    sl_outq_seg *s = seg_at(q, 0);
    if (s->owned) {
        s->at.off += n;
        q->lo += n;
    } else {
        s->at.ptr += n;
    }
    s->len -= n;
    q->pending -= n;
}

int sl_outq_consume(sl_outq *q, size_t n)
{
    if (n > q->pending)
        return SLUICE_ERR_INVAL;
    /* Look the head up afresh each time: release may have appended and
     * moved the ring or the buffer. */
    while (n > 0) {
        size_t len = seg_at(q, 0)->len;
        if (n < len) {
            advance_head(q, n);
            break;
        }
        n -= len;
        pop_head(q);
    }
    return 0;
}
