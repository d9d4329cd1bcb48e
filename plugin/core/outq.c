/* outq.c — the session's output queue: units (control runs, header blocks,
 * DATA frames) placed by the rules below; owned bytes in an arena per kind. */
#include <string.h>

#include "outq.h"

/* Order rules. A unit that has started being written stays first: frames
 * are never split. Then:
 *  - control frames keep their order, and go ahead of queued header blocks
 *    and DATA, except that one on a stream follows the header blocks of
 *    (or promising) that stream, so it never names a stream the peer has
 *    not seen opened; SL_OUTQ_AFTER_* push one further back;
 *  - header blocks keep their order (HPACK state, RFC 7541 §2.2), follow
 *    every control frame queued before them (one encoded after a SETTINGS
 *    ACK may rely on what the ACK confirms), and go ahead of queued DATA
 *    except their own stream's (trailers follow the body, RFC 9113 §8.1):
 *    that DATA moves up just ahead of the block instead (a PUSH_PROMISE
 *    need not wait for it);
 *  - DATA follows everything but DATA queued before it and its own stream's
 *    DATA, and goes ahead of queued DATA that is less urgent, so a stream
 *    that becomes urgent waits at most for the one frame being written. */

#define OUTQ_MIN_UNITS 16
#define OUTQ_MIN_BUF 1024 /* a SETTINGS, a WINDOW_UPDATE and a HEADERS fit */
/* How far back a control frame looks for its stream's header block before
 * it simply follows all of them: bounded work per frame when a peer that
 * does not read has made us queue thousands of responses. */
#define OUTQ_SCAN 64

void sl_outq_init(sl_outq *q, const sl_mem *mem, sl_outq_release_fn release,
                  void *ud)
{
    memset(q, 0, sizeof(*q));
    q->mem = *mem;
    q->release = release;
    q->ud = ud;
}

static sl_outq_unit *at(const sl_outq *q, size_t i)
{
    return &q->u[q->first + i];
}

static size_t left_of(const sl_outq_unit *u)
{
    return u->len + u->dlen;
}

static size_t max2(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* The allocator contract does not promise realloc(NULL, n) == malloc(n). */
static void *mem_resize(const sl_mem *m, void *p, size_t n)
{
    return p ? sl_realloc(m, p, n) : sl_malloc(m, n);
}

void sl_outq_free(sl_outq *q)
{
    for (size_t i = 0; i < q->count; i++) {
        const sl_outq_unit *u = at(q, i);
        if (u->kind == SL_OUTQ_DATA && u->total && q->release)
            q->release(q->ud, u->stream_id, u->total);
    }
    sl_free(&q->mem, q->u);
    sl_free(&q->mem, q->a[0].buf);
    sl_free(&q->mem, q->a[1].buf);
    sl_mem mem = q->mem;
    sl_outq_init(q, &mem, q->release, q->ud);
}

/* ---- storage ---------------------------------------------------------------- */

/* Room for one more unit at the end. Written units below first are
 * reclaimed once there are as many as units left (each move then paid for
 * by a unit written), but not while they are being released. */
static int unit_room(sl_outq *q)
{
    if (q->first + q->count < q->cap)
        return 0;
    if (!q->busy && q->first > 0 && q->first >= q->count) {
        memmove(q->u, q->u + q->first, q->count * sizeof(*q->u));
        q->first = 0;
        return 0;
    }
    size_t ncap = q->cap ? q->cap : OUTQ_MIN_UNITS / 2;
    if (ncap > SIZE_MAX / 2 / sizeof(*q->u))
        return SLUICE_ERR_NOMEM;
    ncap *= 2;
    sl_outq_unit *u = mem_resize(&q->mem, q->u, ncap * sizeof(*u));
    if (!u)
        return SLUICE_ERR_NOMEM;
    q->u = u;
    q->cap = ncap;
    return 0;
}

/* Move arena k's bytes not yet written to its front. */
static void compact(sl_outq *q, int k)
{
    sl_outq_arena *a = &q->a[k];
    memmove(a->buf, a->buf + a->lo, a->hi - a->lo);
    for (size_t i = 0; i < q->count; i++) {
        sl_outq_unit *u = at(q, i);
        if (u->kind == k)
            u->off -= a->lo;
    }
    a->hi -= a->lo;
    a->lo = 0;
}

/* Room for n more bytes at arena k's hi. The written prefix [0, lo) is
 * reclaimed only once it is at least half the buffer: every byte moved is
 * then paid for by a byte already written. Otherwise the buffer doubles. */
static int arena_room(sl_outq *q, int k, size_t n)
{
    sl_outq_arena *a = &q->a[k];
    if (a->buf && n <= a->cap - a->hi)
        return 0;
    if (a->lo > 0 && a->lo >= a->cap / 2)
        compact(q, k);
    if (a->buf && n <= a->cap - a->hi)
        return 0;
    if (n > SIZE_MAX - a->hi)
        return SLUICE_ERR_NOMEM;
    size_t need = a->hi + n;
    size_t cap = a->cap ? a->cap : OUTQ_MIN_BUF;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *b = mem_resize(&q->mem, a->buf, cap);
    if (!b)
        return SLUICE_ERR_NOMEM;
    a->buf = b;
    a->cap = cap;
    return 0;
}

static void insert_at(sl_outq *q, size_t pos, const sl_outq_unit *nu)
{
    sl_outq_unit *base = q->u + q->first;
    memmove(base + pos + 1, base + pos, (q->count - pos) * sizeof(*base));
    base[pos] = *nu;
    q->count++;
    if (pos < q->end_ctrl)
        q->end_ctrl++;
    if (pos < q->end_block)
        q->end_block++;
    if (nu->kind == SL_OUTQ_CTRL)
        q->end_ctrl = pos + 1;
    else if (nu->kind == SL_OUTQ_BLOCK)
        q->end_block = pos + 1;
}

/* Only DATA behind the last control unit and block is ever removed or
 * moved, so end_ctrl and end_block stay as they are. */
static void remove_at(sl_outq *q, size_t pos)
{
    sl_outq_unit *base = q->u + q->first;
    memmove(base + pos, base + pos + 1, (q->count - pos - 1) * sizeof(*base));
    q->count--;
    if (q->count == 0 && !q->busy)
        q->first = 0;
}

/* ---- placement ---------------------------------------------------------------- */

/* The first place anything may go: after a unit being written. */
static size_t floor_of(const sl_outq *q)
{
    return q->started ? 1 : 0;
}

/* Where the DATA that is only behind other DATA begins. */
static size_t tail_of(const sl_outq *q)
{
    return max2(floor_of(q), max2(q->end_ctrl, q->end_block));
}

static int is_data_of(const sl_outq_unit *u, uint32_t id)
{
    return u->kind == SL_OUTQ_DATA && u->stream_id == id;
}

static size_t count_data_of(const sl_outq *q, size_t from, uint32_t id)
{
    size_t n = 0;
    for (size_t i = from; i < q->count; i++)
        n += (size_t)is_data_of(at(q, i), id);
    return n;
}

/* Move stream id's DATA in [from, count) up to from, keeping its order
 * and everyone else's. */
static void promote(sl_outq *q, size_t from, uint32_t id)
{
    size_t k = from;
    for (size_t i = from; i < q->count; i++) {
        if (!is_data_of(at(q, i), id))
            continue;
        if (i != k) {
            sl_outq_unit t = *at(q, i);
            memmove(at(q, k + 1), at(q, k), (i - k) * sizeof(t));
            *at(q, k) = t;
        }
        k++;
    }
}

/* Just past the last header block on (or promising) stream id at or after
 * from; from if there is none; past every block if too many to look at. */
static size_t after_blocks_of(const sl_outq *q, size_t from, uint32_t id)
{
    size_t steps = 0;
    for (size_t i = q->end_block; i > from; i--) {
        const sl_outq_unit *u = at(q, i - 1);
        if (u->kind != SL_OUTQ_BLOCK)
            continue;
        if (u->stream_id == id || u->promised == id)
            return i;
        if (++steps == OUTQ_SCAN)
            return q->end_block;
    }
    return from;
}

/* A control frame's place, and how much of its stream's DATA moves up to
 * just ahead of it (*moved; it then goes at pos + *moved). */
static size_t place_control(const sl_outq *q, uint32_t id, unsigned flags, size_t *moved)
{
    size_t pos = max2(floor_of(q), q->end_ctrl);
    *moved = 0;
    if (flags & SL_OUTQ_AFTER_ALL)
        return q->count;
    if (flags & (SL_OUTQ_AFTER_BLOCKS | SL_OUTQ_AFTER_DATA))
        pos = max2(pos, q->end_block);
    else if (id != 0)
        pos = after_blocks_of(q, pos, id);
    if (flags & SL_OUTQ_AFTER_DATA) {
        pos = tail_of(q);
        *moved = count_data_of(q, pos, id);
    }
    return pos;
}

/* Insert a control or block unit of n bytes whose place is pos (after its
 * stream's DATA is moved up by moved units). */
static uint8_t *put_owned(sl_outq *q, int kind, size_t pos, size_t moved, size_t n,
                          uint32_t id, uint32_t promised)
{
    if (n == 0 || n > SIZE_MAX - q->pending)
        return NULL;
    sl_outq_arena *a = &q->a[kind];
    /* A control frame right behind the last control run extends it;
     * compaction shifts both sides of this test alike. */
    sl_outq_unit *prev = pos > 0 && moved == 0 ? at(q, pos - 1) : NULL;
    int merge = kind == SL_OUTQ_CTRL && prev && prev->kind == SL_OUTQ_CTRL &&
                prev->off + prev->len == a->hi;
    if (!merge && unit_room(q) != 0)
        return NULL;
    if (arena_room(q, kind, n) != 0)
        return NULL;
    size_t off = a->hi;
    a->hi += n;
    q->pending += n;
    if (merge) {
        at(q, pos - 1)->len += n;
        return a->buf + off;
    }
    if (moved)
        promote(q, pos, id);
    sl_outq_unit nu;
    memset(&nu, 0, sizeof(nu));
    nu.kind = (uint8_t)kind;
    nu.off = off;
    nu.len = n;
    nu.stream_id = id;
    nu.promised = promised;
    insert_at(q, pos + moved, &nu);
    return a->buf + off;
}

uint8_t *sl_outq_reserve_control(sl_outq *q, size_t n, uint32_t stream_id,
                                 unsigned flags)
{
    size_t moved;
    size_t pos = place_control(q, stream_id, flags, &moved);
    return put_owned(q, SL_OUTQ_CTRL, pos, moved, n, stream_id, 0);
}

int sl_outq_append_control(sl_outq *q, const void *p, size_t n,
                           uint32_t stream_id, unsigned flags)
{
    if (n == 0)
        return 0;
    if (!p)
        return SLUICE_ERR_INVAL;
    uint8_t *dst = sl_outq_reserve_control(q, n, stream_id, flags);
    if (!dst)
        return SLUICE_ERR_NOMEM;
    memcpy(dst, p, n);
    return 0;
}

int sl_outq_append(sl_outq *q, const void *p, size_t n)
{
    return sl_outq_append_control(q, p, n, 0, SL_OUTQ_AFTER_BLOCKS);
}

uint8_t *sl_outq_reserve_block(sl_outq *q, size_t n, uint32_t stream_id,
                               uint32_t promised)
{
    size_t pos = tail_of(q);
    /* A PUSH_PROMISE may overtake its stream's DATA: RFC 9113 §8.4 wants
     * it before the data that refers to the pushed response anyway. */
    size_t moved = promised ? 0 : count_data_of(q, pos, stream_id);
    return put_owned(q, SL_OUTQ_BLOCK, pos, moved, n, stream_id, promised);
}

/* Ahead of less urgent DATA, behind its own stream's and the rest. */
static size_t place_data(const sl_outq *q, uint32_t id, uint8_t urgency)
{
    size_t lo = tail_of(q), i = q->count;
    for (; i > lo; i--) {
        const sl_outq_unit *u = at(q, i - 1);
        if (u->stream_id == id || u->urgency <= urgency)
            break;
    }
    return i;
}

int sl_outq_append_data(sl_outq *q, const void *hdr, size_t hlen,
                        const void *data, size_t n, uint32_t stream_id,
                        uint8_t urgency)
{
    if ((hlen > 0 && !hdr) || (n > 0 && !data) || hlen > SL_OUTQ_HDR_MAX)
        return SLUICE_ERR_INVAL;
    if (n > SIZE_MAX - hlen || hlen + n > SIZE_MAX - q->pending)
        return SLUICE_ERR_INVAL;
    if (hlen + n == 0)
        return 0;
    int rv = unit_room(q);
    if (rv != 0)
        return rv;
    sl_outq_unit nu;
    memset(&nu, 0, sizeof(nu));
    nu.kind = SL_OUTQ_DATA;
    nu.data = data;
    nu.len = hlen;
    nu.dlen = n;
    nu.total = n;
    nu.stream_id = stream_id;
    nu.urgency = urgency;
    nu.hlen = (uint8_t)hlen;
    if (hlen)
        memcpy(nu.hdr, hdr, hlen);
    insert_at(q, place_data(q, stream_id, urgency), &nu);
    q->pending += hlen + n;
    return 0;
}

size_t sl_outq_drop_data(sl_outq *q, uint32_t stream_id, size_t *frames)
{
    size_t bytes = 0, nf = 0;
    /* Look again from the start each time: release may change the queue. */
    for (;;) {
        size_t i = tail_of(q);
        while (i < q->count && !(at(q, i)->kind == SL_OUTQ_DATA &&
                                 (stream_id == 0 || at(q, i)->stream_id == stream_id)))
            i++;
        if (i == q->count)
            break;
        sl_outq_unit u = *at(q, i);
        remove_at(q, i);
        q->pending -= left_of(&u);
        bytes += u.dlen;
        nf++;
        if (u.total && q->release)
            q->release(q->ud, u.stream_id, u.total);
    }
    if (frames)
        *frames = nf;
    return bytes;
}

/* ---- writing ------------------------------------------------------------------ */

typedef struct iov_out {
    sl_iovec *iov;
    int n, cap;
    size_t max;
    int arena;    /* of the last iovec, -1 if none: owned runs of one arena join */
    size_t end;   /* its end offset in that arena */
} iov_out;

/* Add len bytes at p (at offset off of arena k, or k = -1); 0 once full. */
static int iov_add(iov_out *o, const uint8_t *p, size_t len, int k, size_t off)
{
    if (len > o->max)
        len = o->max;
    if (len == 0)
        return o->max > 0;
    if (k >= 0 && o->arena == k && o->end == off) {
        o->iov[o->n - 1].len += len;
    } else {
        if (o->n == o->cap)
            return 0;
        o->iov[o->n].base = p;
        o->iov[o->n].len = len;
        o->n++;
    }
    o->arena = k;
    o->end = off + len;
    o->max -= len;
    return o->max > 0;
}

int sl_outq_iov(const sl_outq *q, sl_iovec *iov, int iovcnt, size_t max_bytes)
{
    if (iovcnt < 0)
        return SLUICE_ERR_INVAL;
    iov_out o = {iov, 0, iovcnt, max_bytes, -1, 0};
    for (size_t i = 0; i < q->count; i++) {
        const sl_outq_unit *u = at(q, i);
        int more;
        if (u->kind == SL_OUTQ_DATA) {
            more = iov_add(&o, u->hdr + u->hlen - u->len, u->len, -1, 0);
            if (more)
                more = iov_add(&o, u->data, u->dlen, -1, 0);
        } else {
            more = iov_add(&o, q->a[u->kind].buf + u->off, u->len, u->kind, u->off);
        }
        if (!more)
            break;
    }
    return o.n;
}

/* The first m bytes of unit 0, but not all of it, were written. */
static void advance_front(sl_outq *q, size_t m)
{
    sl_outq_unit *u = at(q, 0);
    q->pending -= m;
    q->started = 1;
    if (u->kind != SL_OUTQ_DATA) {
        u->off += m;
        u->len -= m;
        q->a[u->kind].lo += m;
        return;
    }
    size_t h = m < u->len ? m : u->len;
    u->len -= h;
    u->data += m - h;
    u->dlen -= m - h;
}

/* Unit 0 was written to its end. It stays below first, for release. */
static void pop_front(sl_outq *q)
{
    sl_outq_unit *u = at(q, 0);
    q->pending -= left_of(u);
    if (u->kind != SL_OUTQ_DATA) {
        sl_outq_arena *a = &q->a[u->kind];
        a->lo += u->len;
        if (a->lo == a->hi) /* nothing left: start again at the front */
            a->lo = a->hi = 0;
    }
    q->first++;
    q->count--;
    q->end_ctrl -= (size_t)(q->end_ctrl > 0);
    q->end_block -= (size_t)(q->end_block > 0);
    q->started = 0;
}

int sl_outq_consume(sl_outq *q, size_t n)
{
    if (n > q->pending || q->busy)
        return SLUICE_ERR_INVAL;
    size_t from = q->first;
    while (n > 0) {
        size_t left = left_of(at(q, 0));
        if (n < left) {
            advance_front(q, n);
            break;
        }
        n -= left;
        pop_front(q);
    }
    /* Release only now, in order: whatever release queues then goes behind
     * the bytes the host has written, not among them. */
    q->busy = 1;
    for (size_t i = from; i < q->first; i++) {
        const sl_outq_unit *u = &q->u[i]; /* release may move the array */
        if (u->kind == SL_OUTQ_DATA && u->total && q->release)
            q->release(q->ud, u->stream_id, u->total);
    }
    q->busy = 0;
    if (q->count == 0)
        q->first = 0;
    return 0;
}
