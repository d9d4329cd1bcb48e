/* test_outq.c — the output queue: exact iovecs, partial writes at every
 * offset, release timing, compaction, limits and allocator failure. */
#include <stddef.h>
#include <sys/uio.h>

#include "t.h"
#include "outq.h"

/* ---- helpers ------------------------------------------------------------ */

#define MAX_RELEASES 64

typedef struct rel_log {
    int n;
    uint32_t sid[MAX_RELEASES];
    size_t len[MAX_RELEASES];
    sl_outq *requeue; /* if set, release appends "R" to it (re-entrancy) */
} rel_log;

static void on_release(void *ud, uint32_t stream_id, size_t len)
{
    rel_log *log = ud;
    if (log->n < MAX_RELEASES) {
        log->sid[log->n] = stream_id;
        log->len[log->n] = len;
    }
    log->n++;
    if (log->requeue)
        (void)sl_outq_append(log->requeue, "R", 1);
}

/* An allocator that counts calls and fails once its budget is spent. */
typedef struct test_alloc {
    int budget; /* allocations still allowed; < 0 for no limit */
    int calls;  /* successful malloc + realloc */
} test_alloc;

static int take(test_alloc *a)
{
    if (a->budget == 0)
        return 0;
    if (a->budget > 0)
        a->budget--;
    a->calls++;
    return 1;
}

static void *ta_malloc(size_t n, void *ud)
{
    return take(ud) ? malloc(n ? n : 1) : NULL;
}

static void *ta_realloc(void *p, size_t n, void *ud)
{
    return take(ud) ? realloc(p, n ? n : 1) : NULL;
}

static void ta_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

static void mem_with(sl_mem *m, test_alloc *a)
{
    sluice_allocator al = { ta_malloc, ta_realloc, ta_free, a };
    sl_mem_init(m, &al);
}

static void init_q(sl_outq *q, rel_log *log)
{
    sl_mem m;
    sl_mem_init(&m, NULL);
    memset(log, 0, sizeof(*log));
    sl_outq_init(q, &m, on_release, log);
}

/* Join what sl_outq_iov() returns into out; the byte count. */
static size_t gather(const sl_outq *q, uint8_t *out, int iovcnt, size_t max)
{
    sl_iovec iov[64];
    int n = sl_outq_iov(q, iov, iovcnt, max);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + len, iov[i].base, iov[i].len);
        len += iov[i].len;
    }
    return len;
}

static uint32_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 32);
}

/* A HEADERS-like owned run, a borrowed body, an owned frame header, a
 * second borrowed body and an owned trailer: the stream a session makes. */
static const char body1[] = "0123456789abcdef";
static const char body2[] = "ZYXWVUTSRQ";

static void fill_mix(sl_outq *q)
{
    (void)sl_outq_append(q, "HDR1", 4);
    (void)sl_outq_append_borrowed(q, body1, 16, 1);
    (void)sl_outq_append(q, "hd", 2);
    (void)sl_outq_append_borrowed(q, body2, 10, 3);
    (void)sl_outq_append(q, "end", 3);
}

static const char mix_stream[] = "HDR1" "0123456789abcdef" "hd" "ZYXWVUTSRQ" "end";
#define MIX_LEN (sizeof(mix_stream) - 1)

/* ---- tests --------------------------------------------------------------- */

TEST(iovec_layout_matches_posix)
{
    CHECK_INT(sizeof(sl_iovec), sizeof(struct iovec));
    CHECK_INT(offsetof(sl_iovec, base), offsetof(struct iovec, iov_base));
    CHECK_INT(offsetof(sl_iovec, len), offsetof(struct iovec, iov_len));
}

TEST(empty_queue)
{
    sl_outq q;
    rel_log log;
    sl_iovec iov[4];
    init_q(&q, &log);
    CHECK_INT(sl_outq_pending(&q), 0);
    CHECK_INT(sl_outq_owned_pending(&q), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 4, SIZE_MAX), 0);
    CHECK_INT(sl_outq_consume(&q, 0), 0);
    sl_outq_free(&q);
    sl_outq_free(&q); /* free leaves it as after init */
    CHECK_INT(log.n, 0);
}

TEST(mixed_iovecs_exact)
{
    sl_outq q;
    rel_log log;
    sl_iovec iov[8];
    init_q(&q, &log);
    fill_mix(&q);
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 5);
    CHECK_MEM(iov[0].base, iov[0].len, "HDR1", 4);
    CHECK(iov[1].base == body1); /* borrowed: the caller's own bytes */
    CHECK_INT(iov[1].len, 16);
    CHECK_MEM(iov[2].base, iov[2].len, "hd", 2);
    CHECK(iov[3].base == body2);
    CHECK_INT(iov[3].len, 10);
    CHECK_MEM(iov[4].base, iov[4].len, "end", 3);
    CHECK_INT(sl_outq_pending(&q), MIX_LEN);
    CHECK_INT(sl_outq_owned_pending(&q), 9);
    sl_outq_free(&q);
}

TEST(owned_appends_coalesce)
{
    sl_outq q;
    rel_log log;
    sl_iovec iov[8];
    init_q(&q, &log);
    CHECK_INT(sl_outq_append(&q, "abc", 3), 0);
    uint8_t *p = sl_outq_reserve(&q, 2);
    CHECK(p != NULL);
    memcpy(p, "XY", 2);
    CHECK_INT(sl_outq_append(&q, "de", 2), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 1);
    CHECK_MEM(iov[0].base, iov[0].len, "abcXYde", 7);

    /* Still one segment after a partial write of it. */
    CHECK_INT(sl_outq_consume(&q, 2), 0);
    CHECK_INT(sl_outq_append(&q, "f", 1), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 1);
    CHECK_MEM(iov[0].base, iov[0].len, "cXYdef", 6);

    /* A borrowed segment splits the run; borrowed ones never merge. */
    CHECK_INT(sl_outq_append_borrowed(&q, "gh", 2, 1), 0);
    CHECK_INT(sl_outq_append_borrowed(&q, "ij", 2, 1), 0);
    CHECK_INT(sl_outq_append(&q, "k", 1), 0);
    CHECK_INT(sl_outq_append(&q, "l", 1), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 4);
    CHECK_MEM(iov[3].base, iov[3].len, "kl", 2);
    sl_outq_free(&q);
    CHECK_INT(log.n, 2);
}

TEST(zero_length_appends_queue_nothing)
{
    sl_outq q;
    rel_log log;
    sl_iovec iov[4];
    init_q(&q, &log);
    CHECK(sl_outq_reserve(&q, 0) != NULL);
    CHECK_INT(sl_outq_append(&q, NULL, 0), 0);
    CHECK_INT(sl_outq_append_borrowed(&q, NULL, 0, 1), 0);
    CHECK_INT(sl_outq_pending(&q), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 4, SIZE_MAX), 0);
    CHECK_INT(sl_outq_append(&q, NULL, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_append_borrowed(&q, NULL, 1, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_pending(&q), 0);
    sl_outq_free(&q);
    CHECK_INT(log.n, 0);
}

TEST(partial_write_at_every_offset)
{
    for (size_t k = 0; k <= MIX_LEN; k++) {
        sl_outq q;
        rel_log log;
        uint8_t out[MIX_LEN], tmp[MIX_LEN];
        init_q(&q, &log);
        fill_mix(&q);
        size_t first = gather(&q, out, 64, k);
        CHECK_INT(first, k);
        CHECK_INT(sl_outq_consume(&q, k), 0);
        CHECK_INT(sl_outq_pending(&q), MIX_LEN - k);
        size_t rest = gather(&q, tmp, 64, SIZE_MAX);
        memcpy(out + first, tmp, rest);
        CHECK_MEM(out, first + rest, mix_stream, MIX_LEN);
        sl_outq_free(&q);
        CHECK_INT(log.n, 2);
    }
}

TEST(random_partial_writes_same_stream)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 200; round++) {
        sl_outq q;
        rel_log log;
        uint8_t out[MIX_LEN], tmp[MIX_LEN];
        size_t got = 0;
        init_q(&q, &log);
        fill_mix(&q);
        while (sl_outq_pending(&q) > 0) {
            int cnt = 1 + (int)(rnd(&seed) % 3);
            size_t max = 1 + rnd(&seed) % 12;
            size_t n = gather(&q, tmp, cnt, max);
            size_t w = rnd(&seed) % (n + 1); /* the socket took part of it */
            memcpy(out + got, tmp, w);
            got += w;
            CHECK_INT(sl_outq_consume(&q, w), 0);
        }
        CHECK_MEM(out, got, mix_stream, MIX_LEN);
        CHECK_INT(log.n, 2);
        sl_outq_free(&q);
        CHECK_INT(log.n, 2);
    }
}

TEST(release_once_after_last_byte)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    fill_mix(&q); /* HDR1(4) body1(16, sid 1) hd(2) body2(10, sid 3) end(3) */
    CHECK_INT(sl_outq_consume(&q, 4), 0);
    CHECK_INT(log.n, 0);
    CHECK_INT(sl_outq_consume(&q, 15), 0); /* one byte of body1 left */
    CHECK_INT(log.n, 0);
    CHECK_INT(sl_outq_consume(&q, 1), 0);
    CHECK_INT(log.n, 1);
    CHECK_INT(log.sid[0], 1);
    CHECK_INT(log.len[0], 16);
    CHECK_INT(sl_outq_consume(&q, 2 + 9), 0);
    CHECK_INT(log.n, 1);
    CHECK_INT(sl_outq_consume(&q, 2), 0); /* last of body2 and into "end" */
    CHECK_INT(log.n, 2);
    CHECK_INT(log.sid[1], 3);
    CHECK_INT(log.len[1], 10);
    CHECK_INT(sl_outq_consume(&q, 2), 0);
    CHECK_INT(sl_outq_pending(&q), 0);
    sl_outq_free(&q);
    CHECK_INT(log.n, 2);
}

TEST(release_in_order_within_one_consume)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(sl_outq_append_borrowed(&q, "aaa", 3, 7), 0);
    CHECK_INT(sl_outq_append_borrowed(&q, "bb", 2, 9), 0);
    CHECK_INT(sl_outq_append_borrowed(&q, "c", 1, 11), 0);
    CHECK_INT(sl_outq_consume(&q, 5), 0);
    CHECK_INT(log.n, 2);
    CHECK_INT(log.sid[0], 7);
    CHECK_INT(log.len[0], 3);
    CHECK_INT(log.sid[1], 9);
    CHECK_INT(log.len[1], 2);
    sl_outq_free(&q);
    CHECK_INT(log.n, 3);
    CHECK_INT(log.sid[2], 11);
    CHECK_INT(log.len[2], 1);
}

TEST(free_releases_unwritten_borrowed)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(sl_outq_append_borrowed(&q, "done", 4, 1), 0);
    CHECK_INT(sl_outq_append(&q, "h", 1), 0);
    CHECK_INT(sl_outq_append_borrowed(&q, "half", 4, 3), 0);
    CHECK_INT(sl_outq_append_borrowed(&q, "none", 4, 5), 0);
    CHECK_INT(sl_outq_consume(&q, 4 + 1 + 2), 0);
    CHECK_INT(log.n, 1);
    sl_outq_free(&q);
    CHECK_INT(log.n, 3);
    CHECK_INT(log.sid[1], 3);
    CHECK_INT(log.len[1], 4); /* the full length, though half was written */
    CHECK_INT(log.sid[2], 5);
    CHECK_INT(log.len[2], 4);
    CHECK_INT(sl_outq_pending(&q), 0);

    /* Reusable after free. */
    CHECK_INT(sl_outq_append(&q, "x", 1), 0);
    CHECK_INT(sl_outq_pending(&q), 1);
    sl_outq_free(&q);
    CHECK_INT(log.n, 3);
}

TEST(iov_limits)
{
    sl_outq q;
    rel_log log;
    sl_iovec iov[8];
    init_q(&q, &log);
    fill_mix(&q);
    CHECK_INT(sl_outq_iov(&q, iov, 2, SIZE_MAX), 2);
    CHECK_INT(iov[1].len, 16);
    CHECK_INT(sl_outq_iov(&q, iov, 8, 7), 2); /* cut inside body1 */
    CHECK_INT(iov[0].len, 4);
    CHECK(iov[1].base == body1);
    CHECK_INT(iov[1].len, 3);
    CHECK_INT(sl_outq_iov(&q, iov, 8, 20), 2); /* ends on a boundary */
    CHECK_INT(iov[1].len, 16);
    CHECK_INT(sl_outq_iov(&q, iov, 8, 0), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 0, SIZE_MAX), 0);
    CHECK_INT(sl_outq_iov(&q, iov, -1, SIZE_MAX), SLUICE_ERR_INVAL);

    /* After a partial write the first iovec starts at the offset. */
    CHECK_INT(sl_outq_consume(&q, 9), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 1, 4), 1);
    CHECK(iov[0].base == body1 + 5);
    CHECK_INT(iov[0].len, 4);
    sl_outq_free(&q);
}

TEST(owned_pending_accounting)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    fill_mix(&q);
    CHECK_INT(sl_outq_owned_pending(&q), 9);
    CHECK_INT(sl_outq_consume(&q, 3), 0); /* inside HDR1 */
    CHECK_INT(sl_outq_owned_pending(&q), 6);
    CHECK_INT(sl_outq_consume(&q, 1 + 10), 0); /* into body1 */
    CHECK_INT(sl_outq_owned_pending(&q), 5);
    CHECK_INT(sl_outq_consume(&q, 6 + 1), 0); /* one byte of "hd" */
    CHECK_INT(sl_outq_owned_pending(&q), 4);
    CHECK(sl_outq_reserve(&q, 5) != NULL);
    CHECK_INT(sl_outq_owned_pending(&q), 9);
    CHECK_INT(sl_outq_pending(&q), MIX_LEN - 21 + 5);
    CHECK_INT(sl_outq_consume(&q, sl_outq_pending(&q)), 0);
    CHECK_INT(sl_outq_owned_pending(&q), 0);
    CHECK_INT(q.lo, 0); /* emptied: back to the front of the buffer */
    CHECK_INT(q.hi, 0);
    sl_outq_free(&q);
}

TEST(consume_beyond_pending_changes_nothing)
{
    sl_outq q;
    rel_log log;
    uint8_t out[MIX_LEN];
    init_q(&q, &log);
    fill_mix(&q);
    CHECK_INT(sl_outq_consume(&q, 5), 0);
    CHECK_INT(sl_outq_consume(&q, MIX_LEN - 4), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_consume(&q, SIZE_MAX), SLUICE_ERR_INVAL);
    CHECK_INT(log.n, 0);
    CHECK_INT(sl_outq_pending(&q), MIX_LEN - 5);
    CHECK_INT(sl_outq_owned_pending(&q), 5);
    size_t n = gather(&q, out, 64, SIZE_MAX);
    CHECK_MEM(out, n, mix_stream + 5, MIX_LEN - 5);
    CHECK_INT(sl_outq_consume(&q, MIX_LEN - 5), 0);
    CHECK_INT(log.n, 2);
    CHECK_INT(sl_outq_consume(&q, 1), SLUICE_ERR_INVAL);
    sl_outq_free(&q);
}

/* Fill the buffer, write most of it, and append across the end: the live
 * bytes move to the front (with a borrowed segment between owned ones)
 * instead of the buffer growing. */
TEST(compaction_keeps_content)
{
    sl_outq q;
    rel_log log;
    sl_iovec iov[8];
    static const char borrow[] = "BORROW";
    uint8_t big[1024];
    init_q(&q, &log);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 1);
    CHECK_INT(sl_outq_append(&q, big, 1000), 0);
    size_t cap = q.cap;
    CHECK(cap >= 1000 && cap <= sizeof(big));
    CHECK_INT(sl_outq_append_borrowed(&q, borrow, 6, 1), 0);
    CHECK_INT(sl_outq_append(&q, big + 1000, cap - 1000), 0); /* buffer full */
    CHECK_INT(sl_outq_consume(&q, 990), 0);
    uint8_t *p = sl_outq_reserve(&q, 100);
    CHECK(p != NULL);
    memcpy(p, "0123456789", 10);
    memset(p + 10, 'z', 90);
    CHECK_INT(q.cap, cap); /* compacted, not grown */
    CHECK_INT(q.lo, 0);
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 3);
    CHECK_MEM(iov[0].base, iov[0].len, big + 990, 10);
    CHECK(iov[1].base == borrow);
    CHECK_INT(iov[1].len, 6);
    CHECK_INT(iov[2].len, cap - 1000 + 100);
    CHECK_MEM(iov[2].base, cap - 1000, big + 1000, cap - 1000);
    CHECK_MEM((const uint8_t *)iov[2].base + cap - 1000, 10, "0123456789", 10);
    sl_outq_free(&q);
    CHECK_INT(log.n, 1);
}

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* A long run of appends and partial writes that never lets the queue
 * empty, so only compaction reclaims space: the stream written matches the
 * stream queued, the buffer stays bounded, and steady state allocates
 * nothing. */
TEST(long_run_checksum_no_steady_allocs)
{
    static const uint8_t pool[64] = "the quick brown fox jumps over the lazy dog 0123456789ABCDEFGHI";
    test_alloc ta = { -1, 0 };
    sl_mem m;
    sl_outq q;
    rel_log log;
    uint64_t seed = 12345;
    uint32_t h_in = 2166136261u, h_out = 2166136261u;
    size_t released = 0, borrowed = 0;
    uint8_t tmp[512];
    mem_with(&m, &ta);
    memset(&log, 0, sizeof(log));
    sl_outq_init(&q, &m, on_release, &log);
    int warm_calls = 0;
    for (int i = 0; i < 20000; i++) {
        if (i == 2000)
            warm_calls = ta.calls;
        size_t n = 1 + rnd(&seed) % 40, off = rnd(&seed) % 24;
        if (rnd(&seed) % 3 == 0) {
            CHECK_INT(sl_outq_append_borrowed(&q, pool + off, n, (uint32_t)i), 0);
            borrowed++;
        } else {
            uint8_t *p = sl_outq_reserve(&q, n);
            CHECK(p != NULL);
            memcpy(p, pool + off, n);
        }
        h_in = fnv(h_in, pool + off, n);
        /* Write a little less than was queued on average, keeping a
         * backlog, but never all of it. */
        size_t got = gather(&q, tmp, 4, rnd(&seed) % 48);
        if (got >= sl_outq_pending(&q))
            got = sl_outq_pending(&q) - 1;
        h_out = fnv(h_out, tmp, got);
        CHECK_INT(sl_outq_consume(&q, got), 0);
        CHECK(sl_outq_pending(&q) > 0);
        CHECK(sl_outq_owned_pending(&q) <= sl_outq_pending(&q));
    }
    CHECK_INT(ta.calls, warm_calls);
    CHECK(q.cap <= 4096);
    while (sl_outq_pending(&q) > 0) {
        size_t left = gather(&q, tmp, 4, sizeof(tmp));
        h_out = fnv(h_out, tmp, left);
        CHECK_INT(sl_outq_consume(&q, left), 0);
    }
    CHECK_INT(h_out, h_in);
    released = (size_t)log.n;
    CHECK_INT(released, borrowed);
    sl_outq_free(&q);
    CHECK_INT(log.n, borrowed);
}

TEST(ring_wraps_and_grows)
{
    sl_outq q;
    rel_log log;
    char expect[200];
    uint8_t out[200];
    size_t elen = 0;
    init_q(&q, &log);
    /* Move head into the middle of the ring, then grow it while wrapped. */
    for (int i = 0; i < 10; i++)
        CHECK_INT(sl_outq_append_borrowed(&q, "w", 1, 1), 0);
    CHECK_INT(sl_outq_consume(&q, 10), 0);
    for (int i = 0; i < 40; i++) {
        static const char digits[] = "0123456789";
        if (i % 2)
            CHECK_INT(sl_outq_append(&q, "-", 1), 0);
        else
            CHECK_INT(sl_outq_append_borrowed(&q, digits + (i / 2) % 10, 1, 2), 0);
        expect[elen++] = i % 2 ? '-' : digits[(i / 2) % 10];
    }
    size_t n = gather(&q, out, 64, SIZE_MAX);
    CHECK_MEM(out, n, expect, elen);
    CHECK_INT(sl_outq_consume(&q, elen), 0);
    CHECK_INT(log.n, 10 + 20);
    sl_outq_free(&q);
}

TEST(release_may_append)
{
    sl_outq q;
    rel_log log;
    uint8_t out[64];
    init_q(&q, &log);
    log.requeue = &q;
    CHECK_INT(sl_outq_append_borrowed(&q, "ab", 2, 1), 0);
    CHECK_INT(sl_outq_append_borrowed(&q, "cd", 2, 3), 0);
    CHECK_INT(sl_outq_append(&q, "e", 1), 0);
    CHECK_INT(sl_outq_consume(&q, 4), 0); /* two releases, each queues "R" */
    CHECK_INT(log.n, 2);
    size_t n = gather(&q, out, 64, SIZE_MAX);
    CHECK_MEM(out, n, "eRR", 3);
    log.requeue = NULL;
    sl_outq_free(&q);
}

TEST(alloc_failure_leaves_queue_intact)
{
    test_alloc ta = { 0, 0 };
    sl_mem m;
    sl_outq q;
    rel_log log;
    uint8_t out[4096];
    mem_with(&m, &ta);
    memset(&log, 0, sizeof(log));
    sl_outq_init(&q, &m, on_release, &log);

    /* Nothing allocated yet: every append fails cleanly. */
    CHECK(sl_outq_reserve(&q, 4) == NULL);
    CHECK_INT(sl_outq_append(&q, "abcd", 4), SLUICE_ERR_NOMEM);
    CHECK_INT(sl_outq_append_borrowed(&q, "xy", 2, 1), SLUICE_ERR_NOMEM);
    CHECK_INT(sl_outq_pending(&q), 0);
    CHECK_INT(log.n, 0);

    /* Ring allocated, buffer not: the owned append must not leave an
     * empty segment behind. */
    ta.budget = 1;
    CHECK_INT(sl_outq_append(&q, "abcd", 4), SLUICE_ERR_NOMEM);
    CHECK_INT(sl_outq_pending(&q), 0);
    CHECK_INT(q.count, 0);

    ta.budget = -1;
    CHECK_INT(sl_outq_append(&q, "head", 4), 0);
    CHECK_INT(sl_outq_append_borrowed(&q, "body", 4, 1), 0);
    ta.budget = 0;

    /* The buffer would have to grow. */
    static uint8_t big[4000];
    memset(big, 'B', sizeof(big));
    CHECK(sl_outq_reserve(&q, sizeof(big)) == NULL);
    CHECK_INT(sl_outq_append(&q, big, sizeof(big)), SLUICE_ERR_NOMEM);
    /* The ring would have to grow (fill it with borrowed segments). */
    int i = 0, rv = 0;
    while ((rv = sl_outq_append_borrowed(&q, "s", 1, 5)) == 0)
        i++;
    CHECK_INT(rv, SLUICE_ERR_NOMEM);
    CHECK(sl_outq_reserve(&q, 1) == NULL); /* a new owned segment too */
    CHECK_INT(sl_outq_pending(&q), 8 + (size_t)i);
    CHECK_INT(sl_outq_owned_pending(&q), 4);
    size_t n = gather(&q, out, 64, SIZE_MAX);
    CHECK_MEM(out, 8, "headbody", 8);
    CHECK_INT(n, 8 + (size_t)i);

    /* Memory again: the queue carries on as if nothing happened. */
    ta.budget = -1;
    CHECK_INT(sl_outq_append(&q, "tail", 4), 0);
    CHECK_INT(sl_outq_consume(&q, 8 + (size_t)i), 0);
    CHECK_INT(log.n, 1 + i);
    n = gather(&q, out, 64, SIZE_MAX);
    CHECK_MEM(out, n, "tail", 4);
    sl_outq_free(&q);
}

TEST(append_data_header_and_payload)
{
    static const char payload[] = "payload";
    sl_outq q;
    rel_log log;
    sl_iovec iov[4];
    init_q(&q, &log);
    CHECK_INT(sl_outq_append(&q, "ctl", 3), 0);
    CHECK_INT(sl_outq_append_data(&q, "HDR", 3, payload, 7, 5), 0);
    CHECK_INT(sl_outq_append_data(&q, "EMPTY", 5, NULL, 0, 7), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 4, SIZE_MAX), 3);
    CHECK_MEM(iov[0].base, iov[0].len, "ctlHDR", 6); /* header coalesced */
    CHECK(iov[1].base == payload);
    CHECK_INT(iov[1].len, 7);
    CHECK_MEM(iov[2].base, iov[2].len, "EMPTY", 5);
    CHECK_INT(sl_outq_append_data(&q, NULL, 1, payload, 1, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_append_data(&q, "h", 1, NULL, 1, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_append_data(&q, "h", 1, payload, SIZE_MAX, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_pending(&q), 18);
    sl_outq_free(&q);
    CHECK_INT(log.n, 1);
    CHECK_INT(log.sid[0], 5);
    CHECK_INT(log.len[0], 7);
}

/* Whichever allocation fails, a DATA header never stays queued alone. */
TEST(append_data_all_or_nothing)
{
    static const char payload[] = "xyz";
    test_alloc ta = { 0, 0 };
    sl_mem m;
    sl_outq q;
    rel_log log;
    uint8_t out[256];
    mem_with(&m, &ta);
    memset(&log, 0, sizeof(log));
    sl_outq_init(&q, &m, on_release, &log);
    CHECK_INT(sl_outq_append_data(&q, "H", 1, payload, 3, 1), SLUICE_ERR_NOMEM);
    ta.budget = 1; /* the ring, not the buffer */
    CHECK_INT(sl_outq_append_data(&q, "H", 1, payload, 3, 1), SLUICE_ERR_NOMEM);
    CHECK_INT(sl_outq_pending(&q), 0);

    /* Fill the ring to one free slot, with the buffer already there: the
     * header would fit, the payload not. */
    ta.budget = -1;
    CHECK_INT(sl_outq_append(&q, "o", 1), 0);
    out[0] = 'o';
    size_t want = 1;
    while (q.count + 1 < (q.segs ? q.mask + 1 : 2)) {
        CHECK_INT(sl_outq_append_borrowed(&q, "b", 1, 9), 0);
        out[want++] = 'b';
    }
    ta.budget = 0;
    CHECK_INT(sl_outq_append_data(&q, "H", 1, payload, 3, 1), SLUICE_ERR_NOMEM);
    CHECK_INT(sl_outq_pending(&q), want);
    CHECK_INT(q.count, want);
    CHECK_INT(sl_outq_owned_pending(&q), 1);

    ta.budget = -1;
    CHECK_INT(sl_outq_append_data(&q, "H", 1, payload, 3, 1), 0);
    memcpy(out + want, "Hxyz", 4);
    want += 4;
    uint8_t got[256];
    size_t n = gather(&q, got, 64, SIZE_MAX);
    CHECK_MEM(got, n, out, want);
    CHECK_INT(sl_outq_consume(&q, n), 0);
    CHECK_INT(log.n, (int)want - 5 + 1);
    sl_outq_free(&q);
}
