/* test_uv_ring.c — the host's borrowing byte ring (plugin/uv/ring.h):
 * segments allocated as bytes reach them, borrowed bytes that never move. */
#include "ring.h"
#include "t.h"

static size_t segs_allocated(const sl_ring *g)
{
    size_t n = 0, seg = sl_ring_seg(g);
    for (size_t i = 0; g->segs && i < g->cap / seg; i++)
        n += g->segs[i] != NULL;
    return n;
}

static uint8_t big[1 << 20];

TEST(memory_follows_bytes_in_flight_not_capacity)
{
    sl_ring g = {.cap = 16u << 20};
    CHECK_INT(sl_ring_room(&g), 16u << 20);
    CHECK_INT(sl_ring_put(&g, big, 1000), 1000);
    CHECK_INT(segs_allocated(&g), 1);
    /* Stream 64 MiB through, never more than 100 KiB in it. */
    for (int i = 0; i < 640; i++) {
        CHECK_INT(sl_ring_put(&g, big, 100000), 100000);
        const uint8_t *p;
        size_t got = 0, n;
        while ((n = sl_ring_take(&g, &p, SIZE_MAX)) > 0)
            got += n;
        sl_ring_release(&g, got);
    }
    /* Drained segments go (one is kept spare): after 64 MiB through a
     * 16 MiB ring, only what 100 KiB in flight needs. */
    CHECK(segs_allocated(&g) <= 2);
    CHECK(g.spare != NULL);
    sl_ring_free(&g);
    CHECK(g.segs == NULL);
}

TEST(small_ring_never_allocates_more_than_few_segments)
{
    sl_ring g = {.cap = 16u << 20};
    for (int i = 0; i < 1000; i++) { /* 1 KiB at a time, drained each time */
        CHECK_INT(sl_ring_put(&g, big, 1024), 1024);
        const uint8_t *p;
        size_t n = sl_ring_take(&g, &p, SIZE_MAX);
        CHECK_INT(n, 1024);
        sl_ring_release(&g, n);
    }
    /* 1 MiB went through, 1 KiB at a time: one segment in use. */
    CHECK_INT(segs_allocated(&g), 1);
    sl_ring_free(&g);
}

TEST(borrowed_bytes_stay_put_while_more_arrive)
{
    sl_ring g = {.cap = 256 * 1024};
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    CHECK_INT(sl_ring_put(&g, big, 70000), 70000);
    const uint8_t *p1, *p2;
    size_t n1 = sl_ring_take(&g, &p1, SIZE_MAX); /* up to the segment's end */
    CHECK_INT(n1, SL_RING_SEG);
    size_t n2 = sl_ring_take(&g, &p2, SIZE_MAX);
    CHECK_INT(n2, 70000 - SL_RING_SEG);
    CHECK_INT(sl_ring_put(&g, big + 70000, 150000), 150000);
    CHECK(memcmp(p1, big, n1) == 0);
    CHECK(memcmp(p2, big + n1, n2) == 0);
    /* The room counts borrowed bytes as taken. */
    CHECK_INT(sl_ring_room(&g), 256 * 1024 - 220000);
    CHECK_INT(sl_ring_put(&g, big, 100000), 256 * 1024 - 220000);
    sl_ring_unborrow(&g); /* not written: read again from the start */
    const uint8_t *p3;
    CHECK_INT(sl_ring_take(&g, &p3, 10), 10);
    CHECK(p3 == p1);
    sl_ring_free(&g);
}

TEST(wraps_in_order)
{
    sl_ring g = {.cap = 100}; /* one segment of 100 bytes */
    uint8_t out[300];
    size_t got = 0;
    for (int round = 0; round < 3; round++) {
        CHECK_INT(sl_ring_put(&g, big + round * 100, 100), 100);
        CHECK_INT(sl_ring_put(&g, big, 1), 0); /* full */
        const uint8_t *p;
        size_t n;
        while ((n = sl_ring_take(&g, &p, 33)) > 0) {
            memcpy(out + got, p, n);
            got += n;
        }
        sl_ring_release(&g, 100);
    }
    CHECK_INT(got, 300);
    CHECK(memcmp(out, big, 300) == 0);
    sl_ring_free(&g);
}

/* A segment the reader leaves behind stays when the writer has already come
 * round into it (a full ring), and its new bytes read back intact. */
TEST(segment_with_next_lap_bytes_is_kept)
{
    sl_ring g = {.cap = 2 * SL_RING_SEG};
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 13 + 1);
    CHECK_INT(sl_ring_put(&g, big, 2 * SL_RING_SEG), 2 * SL_RING_SEG);
    const uint8_t *p;
    CHECK_INT(sl_ring_take(&g, &p, 100), 100);
    sl_ring_release(&g, 100);
    CHECK_INT(sl_ring_put(&g, big + 2 * SL_RING_SEG, 100), 100); /* into segment 0 again */
    size_t n = sl_ring_take(&g, &p, SIZE_MAX);
    CHECK_INT(n, SL_RING_SEG - 100);
    sl_ring_release(&g, n); /* the reader leaves segment 0 */
    CHECK_INT(segs_allocated(&g), 2);
    uint8_t out[SL_RING_SEG + 100];
    size_t got = 0;
    while ((n = sl_ring_take(&g, &p, SIZE_MAX)) > 0) {
        memcpy(out + got, p, n);
        got += n;
    }
    CHECK_INT(got, SL_RING_SEG + 100);
    CHECK(memcmp(out, big + SL_RING_SEG, got) == 0);
    sl_ring_release(&g, got);
    /* Now both are drained: one freed, one kept spare. */
    CHECK_INT(segs_allocated(&g), 1); /* the reader's current one (at its start) */
    sl_ring_free(&g);
}
