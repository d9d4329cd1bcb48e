/* test_outq.c — the output queue: the order rules (also against a model, at
 * random), exact iovecs, partial writes, release, dropping, memory. */
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
    sl_outq *requeue; /* if set, release queues the control byte "R" */
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
        (void)sl_outq_append_control(log->requeue, "R", 1, 0, 0);
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

/* Everything still queued, in write order, as a string (for short queues). */
static const char *order(const sl_outq *q)
{
    static char buf[4096];
    size_t n = gather(q, (uint8_t *)buf, 64, sizeof(buf) - 1);
    buf[n] = 0;
    return buf;
}

static uint32_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 32);
}

static int ctl(sl_outq *q, const char *s, uint32_t sid, unsigned flags)
{
    return sl_outq_append_control(q, s, strlen(s), sid, flags);
}

static int block(sl_outq *q, const char *s, uint32_t sid, uint32_t promised)
{
    uint8_t *p = sl_outq_reserve_block(q, strlen(s), sid, promised);
    if (!p)
        return SLUICE_ERR_NOMEM;
    memcpy(p, s, strlen(s));
    return 0;
}

/* A DATA unit: header h (copied), payload d (borrowed). */
static int data(sl_outq *q, const char *h, const char *d, uint32_t sid, uint8_t u)
{
    return sl_outq_append_data(q, h, strlen(h), d, strlen(d), sid, u);
}

/* A control run, a header block, two DATA frames: what a session queues
 * for one response while nothing is written. */
static const char body1[] = "0123456789abcdef";
static const char body2[] = "ZYXWVUTSRQ";

static void fill_mix(sl_outq *q)
{
    (void)ctl(q, "ctl", 0, 0);
    (void)block(q, "HDR1", 1, 0);
    (void)data(q, "d1", body1, 1, 3);
    (void)data(q, "d3", body2, 3, 3);
}

static const char mix_stream[] = "ctl" "HDR1" "d1" "0123456789abcdef" "d3" "ZYXWVUTSRQ";
#define MIX_LEN (sizeof(mix_stream) - 1)

/* ---- layout and iovecs ----------------------------------------------------- */

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
    CHECK_INT(sl_outq_drop_data(&q, 1, NULL), 0);
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
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 6);
    CHECK_MEM(iov[0].base, iov[0].len, "ctl", 3);
    CHECK_MEM(iov[1].base, iov[1].len, "HDR1", 4); /* another arena: its own iovec */
    CHECK_MEM(iov[2].base, iov[2].len, "d1", 2);
    CHECK(iov[3].base == body1); /* borrowed: the caller's own bytes */
    CHECK_INT(iov[3].len, 16);
    CHECK_MEM(iov[4].base, iov[4].len, "d3", 2);
    CHECK(iov[5].base == body2);
    CHECK_INT(iov[5].len, 10);
    CHECK_INT(sl_outq_pending(&q), MIX_LEN);
    CHECK_INT(sl_outq_owned_pending(&q), 7); /* DATA headers are not counted */
    sl_outq_free(&q);
    CHECK_INT(log.n, 2);
}

TEST(control_runs_coalesce)
{
    sl_outq q;
    rel_log log;
    sl_iovec iov[8];
    init_q(&q, &log);
    CHECK_INT(ctl(&q, "abc", 0, 0), 0);
    uint8_t *p = sl_outq_reserve_control(&q, 2, 0, 0);
    CHECK(p != NULL);
    memcpy(p, "XY", 2);
    CHECK_INT(ctl(&q, "de", 0, 0), 0);
    CHECK_INT(q.count, 1); /* one unit */
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 1);
    CHECK_MEM(iov[0].base, iov[0].len, "abcXYde", 7);

    /* Still one after a partial write of it. */
    CHECK_INT(sl_outq_consume(&q, 2), 0);
    CHECK_INT(ctl(&q, "f", 0, 0), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 1);
    CHECK_MEM(iov[0].base, iov[0].len, "cXYdef", 6);

    /* Header blocks stay units of their own (each names its stream), but
     * blocks that lie side by side go out in one iovec. */
    CHECK_INT(block(&q, "H1", 1, 0), 0);
    CHECK_INT(block(&q, "H3", 3, 0), 0);
    CHECK_INT(q.count, 3);
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 2);
    CHECK_MEM(iov[1].base, iov[1].len, "H1H3", 4);
    sl_outq_free(&q);
    CHECK_INT(log.n, 0);
}

TEST(zero_length_and_bad_arguments)
{
    sl_outq q;
    rel_log log;
    uint8_t hdr[SL_OUTQ_HDR_MAX + 1] = {0};
    init_q(&q, &log);
    CHECK(sl_outq_reserve_control(&q, 0, 0, 0) == NULL);
    CHECK(sl_outq_reserve_block(&q, 0, 1, 0) == NULL);
    CHECK_INT(sl_outq_append(&q, NULL, 0), 0);
    CHECK_INT(sl_outq_append_control(&q, NULL, 0, 0, 0), 0);
    CHECK_INT(sl_outq_append_data(&q, NULL, 0, NULL, 0, 1, 3), 0);
    CHECK_INT(sl_outq_pending(&q), 0);
    CHECK_INT(q.count, 0);
    CHECK_INT(sl_outq_append(&q, NULL, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_append_data(&q, NULL, 1, "x", 1, 1, 3), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_append_data(&q, "h", 1, NULL, 1, 1, 3), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_append_data(&q, hdr, sizeof(hdr), "x", 1, 1, 3), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_append_data(&q, "h", 1, "x", SIZE_MAX, 1, 3), SLUICE_ERR_INVAL);
    CHECK_INT(sl_outq_pending(&q), 0);
    sl_outq_free(&q);
    CHECK_INT(log.n, 0);
}

TEST(iov_limits)
{
    sl_outq q;
    rel_log log;
    sl_iovec iov[8];
    init_q(&q, &log);
    fill_mix(&q);
    CHECK_INT(sl_outq_iov(&q, iov, 4, SIZE_MAX), 4);
    CHECK_INT(iov[3].len, 16);
    CHECK_INT(sl_outq_iov(&q, iov, 8, 12), 4); /* cut inside body1 */
    CHECK_INT(iov[2].len, 2);
    CHECK(iov[3].base == body1);
    CHECK_INT(iov[3].len, 3);
    CHECK_INT(sl_outq_iov(&q, iov, 8, 9), 3); /* ends on a boundary */
    CHECK_INT(sl_outq_iov(&q, iov, 8, 0), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 0, SIZE_MAX), 0);
    CHECK_INT(sl_outq_iov(&q, iov, -1, SIZE_MAX), SLUICE_ERR_INVAL);

    /* After a partial write the first iovec starts at the offset: within a
     * DATA header, then within its payload. */
    CHECK_INT(sl_outq_consume(&q, 8), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 2, SIZE_MAX), 2);
    CHECK_MEM(iov[0].base, iov[0].len, "1", 1);
    CHECK(iov[1].base == body1);
    CHECK_INT(sl_outq_consume(&q, 6), 0);
    CHECK_INT(sl_outq_iov(&q, iov, 1, 4), 1);
    CHECK(iov[0].base == body1 + 5);
    CHECK_INT(iov[0].len, 4);
    sl_outq_free(&q);
}

/* ---- partial writes --------------------------------------------------------- */

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

/* A control frame queued after a partial write goes right behind the unit
 * being written, whichever it is, and never inside it. */
TEST(control_after_partial_write_at_every_offset)
{
    for (size_t k = 0; k < MIX_LEN; k++) {
        sl_outq q;
        rel_log log;
        char want[MIX_LEN + 2];
        init_q(&q, &log);
        fill_mix(&q); /* units: ctl [0,3) HDR1 [3,7) DATA [7,25) DATA [25,37) */
        CHECK_INT(sl_outq_consume(&q, k), 0);
        CHECK_INT(ctl(&q, "P", 0, 0), 0);
        /* P goes behind "ctl" (control keeps its order) and behind a unit
         * partly written, ahead of any unit not started. */
        size_t end = k < 3 ? 3 : k == 3 || k == 7 || k == 25 ? k : k < 7 ? 7 : k < 25 ? 25 : 37;
        memcpy(want, mix_stream + k, end - k);
        want[end - k] = 'P';
        memcpy(want + end - k + 1, mix_stream + end, MIX_LEN - end);
        want[MIX_LEN - k + 1] = 0;
        CHECK_STR(order(&q), want);
        sl_outq_free(&q);
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
    CHECK_INT(sl_outq_owned_pending(&q), 2);
    size_t n = gather(&q, out, 64, SIZE_MAX);
    CHECK_MEM(out, n, mix_stream + 5, MIX_LEN - 5);
    CHECK_INT(sl_outq_consume(&q, MIX_LEN - 5), 0);
    CHECK_INT(log.n, 2);
    CHECK_INT(sl_outq_consume(&q, 1), SLUICE_ERR_INVAL);
    sl_outq_free(&q);
}

TEST(owned_pending_accounting)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    fill_mix(&q);
    CHECK_INT(sl_outq_owned_pending(&q), 7);
    CHECK_INT(sl_outq_consume(&q, 2), 0); /* inside "ctl" */
    CHECK_INT(sl_outq_owned_pending(&q), 5);
    CHECK_INT(sl_outq_consume(&q, 1 + 3), 0); /* into HDR1 */
    CHECK_INT(sl_outq_owned_pending(&q), 1);
    CHECK_INT(sl_outq_consume(&q, 1 + 2 + 5), 0); /* into body1 */
    CHECK_INT(sl_outq_owned_pending(&q), 0);
    CHECK(sl_outq_reserve_control(&q, 5, 0, 0) != NULL);
    CHECK_INT(sl_outq_owned_pending(&q), 5);
    CHECK_INT(sl_outq_pending(&q), MIX_LEN - 14 + 5);
    CHECK_INT(sl_outq_consume(&q, sl_outq_pending(&q)), 0);
    CHECK_INT(sl_outq_owned_pending(&q), 0);
    CHECK_INT(q.a[0].hi, 0); /* emptied: back to the front of the buffer */
    CHECK_INT(q.a[1].hi, 0);
    CHECK_INT(q.first, 0);
    sl_outq_free(&q);
}

/* ---- release ------------------------------------------------------------------ */

TEST(release_once_after_last_byte)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    fill_mix(&q); /* ctl(3) HDR1(4) d1(2) body1(16, sid 1) d3(2) body2(10, sid 3) */
    CHECK_INT(sl_outq_consume(&q, 9), 0);
    CHECK_INT(log.n, 0);
    CHECK_INT(sl_outq_consume(&q, 15), 0); /* one byte of body1 left */
    CHECK_INT(log.n, 0);
    CHECK_INT(sl_outq_consume(&q, 1), 0);
    CHECK_INT(log.n, 1);
    CHECK_INT(log.sid[0], 1);
    CHECK_INT(log.len[0], 16);
    CHECK_INT(sl_outq_consume(&q, 11), 0);
    CHECK_INT(log.n, 1);
    CHECK_INT(sl_outq_consume(&q, 1), 0);
    CHECK_INT(log.n, 2);
    CHECK_INT(log.sid[1], 3);
    CHECK_INT(log.len[1], 10);
    CHECK_INT(sl_outq_pending(&q), 0);
    sl_outq_free(&q);
    CHECK_INT(log.n, 2);
}

TEST(release_in_order_within_one_consume)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "", "aaa", 7, 3), 0);
    CHECK_INT(data(&q, "", "bb", 9, 3), 0);
    CHECK_INT(data(&q, "", "c", 11, 3), 0);
    CHECK_INT(data(&q, "E", "", 13, 3), 0); /* END_STREAM alone: nothing to release */
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
    CHECK_INT(data(&q, "", "done", 1, 3), 0);
    CHECK_INT(data(&q, "h", "half", 3, 3), 0);
    CHECK_INT(data(&q, "", "none", 5, 3), 0);
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

/* Release runs once the whole write is accounted for: what it queues goes
 * behind the bytes the host wrote, not in their place. */
TEST(release_may_append_behind_what_was_written)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    log.requeue = &q;
    CHECK_INT(data(&q, "", "ab", 1, 3), 0);
    CHECK_INT(data(&q, "", "cd", 3, 3), 0);
    CHECK_INT(data(&q, "", "ef", 5, 3), 0);
    CHECK_INT(sl_outq_consume(&q, 5), 0); /* "abcde": two releases, each queues "R" */
    CHECK_INT(log.n, 2);
    CHECK_STR(order(&q), "fRR");
    CHECK_INT(sl_outq_consume(&q, 1), 0);
    CHECK_INT(log.n, 3);
    CHECK_STR(order(&q), "RRR"); /* the last R behind the others: control keeps its order */
    log.requeue = NULL;
    sl_outq_free(&q);

    /* Ending on a unit boundary: the next unit has not started, so the
     * control frames go ahead of it. */
    init_q(&q, &log);
    log.requeue = &q;
    CHECK_INT(data(&q, "", "ab", 1, 3), 0);
    CHECK_INT(data(&q, "", "cd", 3, 3), 0);
    CHECK_INT(sl_outq_consume(&q, 2), 0);
    CHECK_STR(order(&q), "Rcd");
    log.requeue = NULL;
    sl_outq_free(&q);
}

/* ---- the order rules ------------------------------------------------------------ */

TEST(control_goes_ahead_of_unstarted_data)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "D", "1111", 1, 3), 0);
    CHECK_INT(data(&q, "D", "3333", 3, 3), 0);
    CHECK_INT(ctl(&q, "<ack>", 0, 0), 0);
    CHECK_STR(order(&q), "<ack>D1111D3333");
    CHECK_INT(ctl(&q, "<wu>", 0, 0), 0); /* control keeps its own order */
    CHECK_STR(order(&q), "<ack><wu>D1111D3333");
    CHECK_INT(sl_outq_consume(&q, 5 + 4 + 2), 0); /* into the first DATA */
    CHECK_INT(ctl(&q, "<ping>", 0, 0), 0);
    CHECK_STR(order(&q), "111<ping>D3333");
    sl_outq_free(&q);
}

TEST(block_goes_ahead_of_other_streams_data)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "D", "1111", 1, 7), 0);
    CHECK_INT(data(&q, "D", "1111", 1, 7), 0);
    CHECK_INT(block(&q, "<H3>", 3, 0), 0);
    CHECK_INT(ctl(&q, "<c>", 0, 0), 0);
    CHECK_INT(block(&q, "<H5>", 5, 0), 0); /* behind the control frame queued before */
    CHECK_STR(order(&q), "<c><H3><H5>D1111D1111");
    sl_outq_free(&q);
}

/* Trailers follow their own body: the stream's queued DATA moves up just
 * ahead of them rather than holding them behind everyone's DATA. */
TEST(block_follows_own_data_moved_up)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "a", "1", 1, 3), 0);
    CHECK_INT(data(&q, "b", "3", 3, 3), 0);
    CHECK_INT(data(&q, "c", "1", 1, 3), 0);
    CHECK_INT(data(&q, "d", "3", 3, 3), 0);
    CHECK_INT(block(&q, "<T3>", 3, 0), 0);
    CHECK_STR(order(&q), "b3d3<T3>a1c1");
    CHECK_INT(q.end_block, 3);
    /* A new block follows the trailers (HPACK order), new DATA the rest. */
    CHECK_INT(block(&q, "<H5>", 5, 0), 0);
    CHECK_INT(data(&q, "e", "5", 5, 0), 0);
    CHECK_STR(order(&q), "b3d3<T3><H5>e5a1c1");
    /* Later trailers: their DATA moves up behind the blocks before them,
     * never ahead of the frame being written. */
    CHECK_INT(sl_outq_consume(&q, 1), 0);
    CHECK_INT(data(&q, "f", "7", 7, 3), 0);
    CHECK_INT(block(&q, "<T7>", 7, 0), 0);
    CHECK_STR(order(&q), "3d3<T3><H5>f7<T7>e5a1c1");
    sl_outq_free(&q);
}

TEST(push_promise_overtakes_own_data)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "D", "1", 1, 3), 0);
    CHECK_INT(block(&q, "<PP1:2>", 1, 2), 0);
    CHECK_STR(order(&q), "<PP1:2>D1");
    sl_outq_free(&q);
}

/* A control frame on a stream never reaches the peer before the block
 * that opens (or promises) the stream. */
TEST(control_on_stream_follows_its_blocks)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "D", "1", 1, 3), 0);
    CHECK_INT(block(&q, "<H3>", 3, 0), 0);
    CHECK_INT(block(&q, "<PP3:4>", 3, 4), 0);
    CHECK_INT(block(&q, "<H5>", 5, 0), 0);
    CHECK_INT(ctl(&q, "<wu0>", 0, 0), 0);
    CHECK_INT(ctl(&q, "<wu5>", 5, 0), 0);
    CHECK_STR(order(&q), "<wu0><H3><PP3:4><H5><wu5>D1");
    sl_outq_free(&q);

    init_q(&q, &log);
    CHECK_INT(block(&q, "<H3>", 3, 0), 0);
    CHECK_INT(block(&q, "<PP3:4>", 3, 4), 0);
    CHECK_INT(block(&q, "<H5>", 5, 0), 0);
    CHECK_INT(ctl(&q, "<rst4>", 4, 0), 0); /* the promised stream */
    CHECK_INT(ctl(&q, "<ping>", 0, 0), 0); /* behind it: control keeps order */
    CHECK_STR(order(&q), "<H3><PP3:4><rst4><ping><H5>");
    CHECK_INT(ctl(&q, "<rst9>", 9, 0), 0);
    CHECK_STR(order(&q), "<H3><PP3:4><rst4><ping><rst9><H5>");
    sl_outq_free(&q);
}

TEST(control_placement_flags)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "a", "1", 1, 3), 0);
    CHECK_INT(data(&q, "b", "3", 3, 3), 0);
    CHECK_INT(block(&q, "<H5>", 5, 0), 0);
    CHECK_INT(ctl(&q, "<x>", 0, 0), 0);
    CHECK_INT(ctl(&q, "<ack>", 0, SL_OUTQ_AFTER_BLOCKS), 0);
    CHECK_STR(order(&q), "<x><H5><ack>a1b3");
    CHECK_INT(ctl(&q, "<rst3>", 3, SL_OUTQ_AFTER_DATA), 0);
    CHECK_STR(order(&q), "<x><H5><ack>b3<rst3>a1");
    CHECK_INT(ctl(&q, "<all>", 0, SL_OUTQ_AFTER_ALL), 0);
    CHECK_STR(order(&q), "<x><H5><ack>b3<rst3>a1<all>");
    /* Everything that follows goes behind it, DATA included. */
    CHECK_INT(ctl(&q, "<y>", 0, 0), 0);
    CHECK_INT(data(&q, "c", "0", 7, 0), 0);
    CHECK_STR(order(&q), "<x><H5><ack>b3<rst3>a1<all><y>c0");
    sl_outq_free(&q);
}

TEST(data_goes_ahead_of_less_urgent_data)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "a", "7", 1, 7), 0);
    CHECK_INT(data(&q, "b", "7", 1, 7), 0);
    CHECK_INT(data(&q, "c", "3", 3, 3), 0);
    CHECK_STR(order(&q), "c3a7b7");
    CHECK_INT(data(&q, "d", "3", 5, 3), 0); /* equal urgency: in turn */
    CHECK_INT(data(&q, "e", "0", 9, 0), 0);
    CHECK_STR(order(&q), "e0c3d3a7b7");
    /* A stream's own frames keep their order whatever its urgency now. */
    CHECK_INT(data(&q, "f", "1", 1, 1), 0);
    CHECK_STR(order(&q), "e0c3d3a7b7f1");
    /* Not ahead of a frame being written. */
    CHECK_INT(sl_outq_consume(&q, 1), 0);
    CHECK_INT(data(&q, "g", "0", 11, 0), 0);
    CHECK_STR(order(&q), "0g0c3d3a7b7f1");
    /* Nor ahead of control frames or blocks. */
    CHECK_INT(block(&q, "<H>", 13, 0), 0);
    CHECK_INT(data(&q, "h", "0", 13, 0), 0);
    CHECK_STR(order(&q), "0<H>g0h0c3d3a7b7f1");
    sl_outq_free(&q);
}

/* With more blocks behind the last control frame than it looks at, a
 * control frame on a stream simply follows all of them. */
TEST(control_scan_is_bounded)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(block(&q, "<H1>", 1, 0), 0);
    for (int i = 0; i < 100; i++)
        CHECK_INT(block(&q, "h", 3, 0), 0);
    CHECK_INT(ctl(&q, "<wu1>", 1, 0), 0);
    CHECK_INT(q.end_ctrl, 102);
    CHECK_INT(ctl(&q, "<wu0>", 0, 0), 0); /* merges into the run behind */
    CHECK_INT(q.count, 102);
    sl_outq_free(&q);

    init_q(&q, &log);
    CHECK_INT(block(&q, "<H1>", 1, 0), 0);
    for (int i = 0; i < 10; i++)
        CHECK_INT(block(&q, "h", 3, 0), 0);
    CHECK_INT(ctl(&q, "<wu1>", 1, 0), 0); /* found: right behind <H1> */
    CHECK_INT(q.end_ctrl, 2);
    sl_outq_free(&q);
}

/* ---- dropping DATA ----------------------------------------------------------------- */

TEST(drop_takes_out_unstarted_data_of_the_stream)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "a", "111", 1, 3), 0);
    CHECK_INT(data(&q, "b", "333", 3, 3), 0);
    CHECK_INT(data(&q, "c", "11", 1, 3), 0);
    CHECK_INT(data(&q, "E", "", 1, 3), 0); /* END_STREAM alone */
    CHECK_INT(sl_outq_consume(&q, 2), 0);  /* a1 started */
    size_t frames = 99;
    CHECK_INT(sl_outq_drop_data(&q, 1, &frames), 2); /* c11, E */
    CHECK_INT(frames, 2);
    CHECK_INT(log.n, 1);
    CHECK_INT(log.sid[0], 1);
    CHECK_INT(log.len[0], 2);
    CHECK_STR(order(&q), "11b333");
    CHECK_INT(sl_outq_pending(&q), 6);
    CHECK_INT(sl_outq_drop_data(&q, 1, &frames), 0);
    CHECK_INT(frames, 0);
    sl_outq_free(&q);
    CHECK_INT(log.n, 3);
}

/* Stream 0: every stream's DATA (a connection error: nothing after the
 * GOAWAY), still not the frame being written. */
TEST(drop_all_streams)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "a", "111", 1, 3), 0);
    CHECK_INT(data(&q, "b", "33", 3, 3), 0);
    CHECK_INT(data(&q, "c", "5", 5, 0), 0);
    CHECK_INT(sl_outq_consume(&q, 1), 0); /* c5 started */
    CHECK_INT(ctl(&q, "<g>", 0, SL_OUTQ_AFTER_BLOCKS), 0);
    size_t frames = 0;
    CHECK_INT(sl_outq_drop_data(&q, 0, &frames), 5);
    CHECK_INT(frames, 2);
    CHECK_STR(order(&q), "5<g>");
    CHECK_INT(log.n, 2);
    CHECK_INT(log.sid[0], 1);
    CHECK_INT(log.sid[1], 3);
    sl_outq_free(&q);
    CHECK_INT(log.n, 3);
}

/* DATA moved up ahead of a block or control frame is past the point of
 * taking back: the frames after it already assume it. */
TEST(drop_leaves_data_moved_ahead)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    CHECK_INT(data(&q, "a", "1", 1, 3), 0);
    CHECK_INT(data(&q, "b", "3", 3, 3), 0);
    CHECK_INT(block(&q, "<T3>", 3, 0), 0);
    CHECK_INT(data(&q, "c", "3", 3, 3), 0); /* (a session sends none after trailers) */
    CHECK_INT(sl_outq_drop_data(&q, 3, NULL), 1);
    CHECK_STR(order(&q), "b3<T3>a1");
    sl_outq_free(&q);
}

/* What release does while a drop runs is seen by the drop. */
TEST(drop_release_may_queue)
{
    sl_outq q;
    rel_log log;
    init_q(&q, &log);
    log.requeue = &q;
    CHECK_INT(data(&q, "a", "1", 1, 3), 0);
    CHECK_INT(data(&q, "b", "1", 1, 3), 0);
    CHECK_INT(data(&q, "c", "3", 3, 3), 0);
    CHECK_INT(sl_outq_drop_data(&q, 1, NULL), 2);
    CHECK_STR(order(&q), "RRc3");
    log.requeue = NULL;
    sl_outq_free(&q);
}

/* ---- storage ------------------------------------------------------------------------- */

/* Fill the control buffer, write most of it, and append across the end:
 * the live bytes move to the front instead of the buffer growing. */
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
    CHECK_INT(sl_outq_append_control(&q, big, 1000, 0, 0), 0);
    size_t cap = q.a[0].cap;
    CHECK(cap >= 1000 && cap <= sizeof(big));
    CHECK_INT(sl_outq_append_data(&q, "", 0, borrow, 6, 1, 3), 0);
    CHECK_INT(sl_outq_append_control(&q, big + 1000, cap - 1000, 0, SL_OUTQ_AFTER_ALL), 0);
    CHECK_INT(sl_outq_consume(&q, 990), 0);
    uint8_t *p = sl_outq_reserve_control(&q, 100, 0, SL_OUTQ_AFTER_ALL);
    CHECK(p != NULL);
    memcpy(p, "0123456789", 10);
    memset(p + 10, 'z', 90);
    CHECK_INT(q.a[0].cap, cap); /* compacted, not grown */
    CHECK_INT(q.a[0].lo, 0);
    CHECK_INT(sl_outq_iov(&q, iov, 8, SIZE_MAX), 3);
    CHECK_MEM(iov[0].base, iov[0].len, big + 990, 10);
    CHECK(iov[1].base == borrow);
    CHECK_INT(iov[1].len, 6);
    CHECK_INT(iov[2].len, cap - 1000 + 100); /* the two runs side by side */
    CHECK_MEM(iov[2].base, cap - 1000, big + 1000, cap - 1000);
    CHECK_MEM((const uint8_t *)iov[2].base + cap - 1000, 10, "0123456789", 10);
    sl_outq_free(&q);
    CHECK_INT(log.n, 1);
}

TEST(unit_array_wraps_and_grows)
{
    sl_outq q;
    rel_log log;
    char expect[200];
    size_t elen = 0;
    init_q(&q, &log);
    /* Move first into the middle, then grow while units sit below it. */
    for (int i = 0; i < 10; i++)
        CHECK_INT(data(&q, "", "w", 1, 3), 0);
    CHECK_INT(sl_outq_consume(&q, 9), 0);
    CHECK_INT(q.first, 9);
    for (int i = 0; i < 40; i++) {
        static const char digits[] = "0123456789";
        if (i % 2)
            CHECK_INT(block(&q, "-", 2, 0), 0);
        else
            CHECK_INT(sl_outq_append_data(&q, "", 0, digits + i % 10, 1, 3, 3), 0);
    }
    /* The blocks went ahead of all the DATA. */
    for (int i = 0; i < 20; i++)
        expect[elen++] = '-';
    expect[elen++] = 'w';
    for (int i = 0; i < 40; i += 2)
        expect[elen++] = "0123456789"[i % 10];
    expect[elen] = 0;
    CHECK_STR(order(&q), expect);
    CHECK_INT(sl_outq_consume(&q, elen), 0);
    CHECK_INT(log.n, 10 + 20);
    sl_outq_free(&q);
}

TEST(alloc_failure_leaves_queue_intact)
{
    test_alloc ta = { 0, 0 };
    sl_mem m;
    sl_outq q;
    rel_log log;
    mem_with(&m, &ta);
    memset(&log, 0, sizeof(log));
    sl_outq_init(&q, &m, on_release, &log);

    /* Nothing allocated yet: every append fails cleanly. */
    CHECK(sl_outq_reserve_control(&q, 4, 0, 0) == NULL);
    CHECK_INT(sl_outq_append(&q, "abcd", 4), SLUICE_ERR_NOMEM);
    CHECK(sl_outq_reserve_block(&q, 4, 1, 0) == NULL);
    CHECK_INT(data(&q, "h", "xy", 1, 3), SLUICE_ERR_NOMEM);
    CHECK_INT(sl_outq_pending(&q), 0);
    CHECK_INT(log.n, 0);

    /* Units allocated, buffer not: no empty unit stays behind. */
    ta.budget = 1;
    CHECK_INT(sl_outq_append(&q, "abcd", 4), SLUICE_ERR_NOMEM);
    CHECK_INT(sl_outq_pending(&q), 0);
    CHECK_INT(q.count, 0);

    ta.budget = -1;
    CHECK_INT(ctl(&q, "head", 0, 0), 0);
    CHECK_INT(data(&q, "", "body", 1, 3), 0);
    CHECK_INT(block(&q, "blk", 3, 0), 0);
    ta.budget = 0;

    /* A control frame that extends the run needs no new unit, only room. */
    CHECK_INT(ctl(&q, "+", 0, 0), 0);
    static uint8_t big[4000];
    memset(big, 'B', sizeof(big));
    CHECK_INT(sl_outq_append_control(&q, big, sizeof(big), 0, 0), SLUICE_ERR_NOMEM);
    CHECK(sl_outq_reserve_block(&q, sizeof(big), 1, 0) == NULL);
    /* Fill the unit array: then nothing that needs a unit fits. */
    int i = 0, rv = 0;
    while ((rv = data(&q, "", "s", 5, 3)) == 0)
        i++;
    CHECK_INT(rv, SLUICE_ERR_NOMEM);
    CHECK(sl_outq_reserve_block(&q, 1, 7, 0) == NULL);
    CHECK(sl_outq_reserve_control(&q, 1, 0, SL_OUTQ_AFTER_ALL) == NULL);
    CHECK_INT(sl_outq_pending(&q), 12 + (size_t)i);
    CHECK_INT(sl_outq_owned_pending(&q), 8);
    char want[128] = "head+blkbody";
    for (int k = 0; k < i; k++)
        strcat(want, "s");
    CHECK_STR(order(&q), want);

    /* Memory again: the queue carries on as if nothing happened. */
    ta.budget = -1;
    CHECK_INT(ctl(&q, "tail", 0, SL_OUTQ_AFTER_ALL), 0);
    CHECK_INT(sl_outq_consume(&q, 12 + (size_t)i), 0);
    CHECK_INT(log.n, 1 + i);
    CHECK_STR(order(&q), "tail");
    sl_outq_free(&q);
}

/* ---- a random run against a model ---------------------------------------------------- */

/* The order rules written the plain way, over a list of tagged units. */
typedef struct m_unit {
    int kind;
    uint32_t sid, promised;
    uint8_t urgency;
    char bytes[24];
    size_t len, done;
} m_unit;

typedef struct model {
    m_unit u[512];
    size_t n;
} model;

static size_t m_floor(const model *m)
{
    return m->n && m->u[0].done ? 1 : 0;
}

static size_t m_end(const model *m, int kind)
{
    size_t e = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->u[i].kind == kind)
            e = i + 1;
    return e;
}

static size_t m_tail(const model *m)
{
    size_t t = m_floor(m);
    if (m_end(m, SL_OUTQ_CTRL) > t)
        t = m_end(m, SL_OUTQ_CTRL);
    if (m_end(m, SL_OUTQ_BLOCK) > t)
        t = m_end(m, SL_OUTQ_BLOCK);
    return t;
}

static void m_insert(model *m, size_t pos, const m_unit *x)
{
    memmove(&m->u[pos + 1], &m->u[pos], (m->n - pos) * sizeof(*x));
    m->u[pos] = *x;
    m->n++;
}

/* Move sid's DATA at or after from up to from; how many moved. */
static size_t m_promote(model *m, size_t from, uint32_t sid)
{
    m_unit tmp[512];
    size_t k = 0, j = 0;
    for (size_t i = from; i < m->n; i++)
        if (m->u[i].kind == SL_OUTQ_DATA && m->u[i].sid == sid)
            tmp[k++] = m->u[i];
    j = k;
    for (size_t i = from; i < m->n; i++)
        if (!(m->u[i].kind == SL_OUTQ_DATA && m->u[i].sid == sid))
            tmp[j++] = m->u[i];
    memcpy(&m->u[from], tmp, (m->n - from) * sizeof(tmp[0]));
    return k;
}

static void m_control(model *m, const m_unit *x, unsigned flags)
{
    size_t pos = m_floor(m);
    if (m_end(m, SL_OUTQ_CTRL) > pos)
        pos = m_end(m, SL_OUTQ_CTRL);
    if (flags & SL_OUTQ_AFTER_ALL) {
        m_insert(m, m->n, x);
        return;
    }
    if (flags & (SL_OUTQ_AFTER_BLOCKS | SL_OUTQ_AFTER_DATA)) {
        if (m_end(m, SL_OUTQ_BLOCK) > pos)
            pos = m_end(m, SL_OUTQ_BLOCK);
    } else if (x->sid) {
        for (size_t i = 0; i < m->n; i++)
            if (m->u[i].kind == SL_OUTQ_BLOCK &&
                (m->u[i].sid == x->sid || m->u[i].promised == x->sid) && i + 1 > pos)
                pos = i + 1;
    }
    if (flags & SL_OUTQ_AFTER_DATA) {
        pos = m_tail(m);
        pos += m_promote(m, pos, x->sid);
    }
    m_insert(m, pos, x);
}

static void m_block(model *m, const m_unit *x)
{
    size_t pos = m_tail(m);
    if (!x->promised)
        pos += m_promote(m, pos, x->sid);
    m_insert(m, pos, x);
}

static void m_data(model *m, const m_unit *x)
{
    size_t i = m->n;
    while (i > m_tail(m) && m->u[i - 1].sid != x->sid && m->u[i - 1].urgency > x->urgency)
        i--;
    m_insert(m, i, x);
}

static void m_drop(model *m, uint32_t sid)
{
    for (size_t i = m_tail(m); i < m->n;) {
        if (m->u[i].kind == SL_OUTQ_DATA && m->u[i].sid == sid) {
            memmove(&m->u[i], &m->u[i + 1], (m->n - i - 1) * sizeof(m->u[0]));
            m->n--;
        } else {
            i++;
        }
    }
}

/* Write n bytes from the model into out. */
static size_t m_write(model *m, size_t n, uint8_t *out)
{
    size_t w = 0;
    while (n > 0 && m->n > 0) {
        m_unit *u = &m->u[0];
        size_t k = u->len - u->done < n ? u->len - u->done : n;
        memcpy(out + w, u->bytes + u->done, k);
        u->done += k;
        w += k;
        n -= k;
        if (u->done == u->len) {
            memmove(&m->u[0], &m->u[1], (m->n - 1) * sizeof(*u));
            m->n--;
        }
    }
    return w;
}

static size_t m_pending(const model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += m->u[i].len - m->u[i].done;
    return n;
}

/* Random control frames, blocks, DATA, drops and short writes: the queue
 * writes exactly the bytes the model does, in the same order; steady
 * state allocates nothing. */
TEST(random_run_matches_model)
{
    static model m;
    static char payload[20000][8]; /* DATA payloads stay put until written */
    test_alloc ta = { -1, 0 };
    sl_mem mem;
    sl_outq q;
    rel_log log;
    uint64_t seed = 0x2545f4914f6cdd1dull;
    uint8_t got[1024], want[1024];
    size_t tag = 0, datas = 0, dropped = 0;
    int warm_calls = 0;
    mem_with(&mem, &ta);
    memset(&log, 0, sizeof(log));
    sl_outq_init(&q, &mem, on_release, &log);
    m.n = 0;
    for (int step = 0; step < 20000; step++) {
        if (step == 10000)
            warm_calls = ta.calls;
        uint32_t r = rnd(&seed) % 100;
        uint32_t sid = 1 + 2 * (rnd(&seed) % 6);
        m_unit x;
        memset(&x, 0, sizeof(x));
        x.sid = sid;
        if (m.n < 40 && r < 25) {
            static const unsigned fl[] = {0, 0, 0, SL_OUTQ_AFTER_BLOCKS, SL_OUTQ_AFTER_DATA,
                                          SL_OUTQ_AFTER_ALL};
            unsigned flags = fl[rnd(&seed) % 6];
            x.kind = SL_OUTQ_CTRL;
            x.sid = rnd(&seed) % 3 ? sid : 0;
            x.len = (size_t)snprintf(x.bytes, sizeof(x.bytes), "<c%zu>", tag++);
            CHECK_INT(sl_outq_append_control(&q, x.bytes, x.len, x.sid, flags), 0);
            m_control(&m, &x, flags);
        } else if (m.n < 40 && r < 45) {
            x.kind = SL_OUTQ_BLOCK;
            x.promised = rnd(&seed) % 4 == 0 ? 2 * (rnd(&seed) % 4) + 2 : 0;
            x.len = (size_t)snprintf(x.bytes, sizeof(x.bytes), "<b%zu>", tag++);
            uint8_t *p = sl_outq_reserve_block(&q, x.len, x.sid, x.promised);
            CHECK(p != NULL);
            memcpy(p, x.bytes, x.len);
            m_block(&m, &x);
        } else if (m.n < 40 && r < 75) {
            x.kind = SL_OUTQ_DATA;
            x.urgency = (uint8_t)(rnd(&seed) % 8);
            char *pl = payload[datas++ % 20000];
            int k = snprintf(pl, 8, "%zu", tag++ % 100000);
            x.len = (size_t)snprintf(x.bytes, sizeof(x.bytes), "[d%u]%s", (unsigned)sid, pl);
            size_t hl = x.len - (size_t)k;
            CHECK_INT(sl_outq_append_data(&q, x.bytes, hl, pl, (size_t)k, sid, x.urgency), 0);
            m_data(&m, &x);
        } else if (r < 78) {
            size_t before = m_pending(&m);
            m_drop(&m, sid);
            size_t n0 = sl_outq_pending(&q);
            sl_outq_drop_data(&q, sid, NULL);
            CHECK_INT(n0 - sl_outq_pending(&q), before - m_pending(&m));
            dropped++;
        } else {
            size_t max = rnd(&seed) % 3 ? 1 + rnd(&seed) % 40 : sizeof(got);
            size_t n = gather(&q, got, 1 + (int)(rnd(&seed) % 16), max);
            size_t w = rnd(&seed) % 4 ? n : rnd(&seed) % (n + 1);
            size_t mw = m_write(&m, w, want);
            CHECK_INT(mw, w);
            CHECK_MEM(got, w, want, w);
            CHECK_INT(sl_outq_consume(&q, w), 0);
        }
        CHECK_INT(sl_outq_pending(&q), m_pending(&m));
    }
    CHECK(dropped > 0);
    CHECK_INT(ta.calls, warm_calls);
    CHECK(q.cap <= 128 && q.a[0].cap == 1024 && q.a[1].cap == 1024);
    while (sl_outq_pending(&q) > 0) {
        size_t n = gather(&q, got, 16, sizeof(got));
        CHECK_MEM(got, n, want, m_write(&m, n, want));
        CHECK_INT(sl_outq_consume(&q, n), 0);
    }
    CHECK_INT(m.n, 0);
    sl_outq_free(&q);
}
