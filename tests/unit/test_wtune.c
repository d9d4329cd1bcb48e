/* test_wtune.c — the adaptive-window estimator on its own: RTT smoothing,
 * the target rule, growth to the bounds, and the RTT probe's bookkeeping. */
#include "t.h"
#include "wtune.h"

#define MS 1000000ull
#define MIB (1024u * 1024u)

TEST(rtt_smoothing_rfc6298)
{
    sl_wtune w;
    sl_wtune_init(&w, 65535, MIB, 65535, 16 * MIB, 64 * MIB, 0);
    CHECK_INT(w.srtt_ns, 0);
    sl_wtune_rtt_sample(&w, 100 * MS); /* first sample: SRTT = R */
    CHECK_INT(w.srtt_ns, 100 * MS);
    sl_wtune_rtt_sample(&w, 200 * MS); /* 7/8 x 100 + 1/8 x 200 */
    CHECK_INT(w.srtt_ns, 112500000);
    sl_wtune_rtt_sample(&w, 12500000); /* 7/8 x 112.5 + 1/8 x 12.5 */
    CHECK_INT(w.srtt_ns, 100 * MS);
    for (int i = 0; i < 200; i++)
        sl_wtune_rtt_sample(&w, 200 * MS);
    CHECK(w.srtt_ns <= 200 * MS && w.srtt_ns >= 200 * MS - 7);
}

TEST(rtt_zero_sample_is_a_measurement)
{
    sl_wtune w;
    sl_wtune_init(&w, 65535, MIB, 65535, 16 * MIB, 64 * MIB, 0);
    sl_wtune_rtt_sample(&w, 0);
    CHECK_INT(w.srtt_ns, 1);
    sl_wtune_rtt_sample(&w, 0);
    CHECK_INT(w.srtt_ns, 1);
}

TEST(target_rule)
{
    CHECK_INT(sl_wtune_target(65535, 0, 65535, 16 * MIB), 65535);
    CHECK_INT(sl_wtune_target(65535, 50000, 65535, 16 * MIB), 100000); /* 2 x per RTT */
    CHECK_INT(sl_wtune_target(65535, 1000000, 65535, 16 * MIB), 131070); /* doubles at most */
    CHECK_INT(sl_wtune_target(100000, 30000, 65535, 16 * MIB), 100000); /* never falls */
    CHECK_INT(sl_wtune_target(1000, 0, 65535, 16 * MIB), 65535);           /* lo */
    CHECK_INT(sl_wtune_target(12 * MIB, 100 * MIB, 65535, 16 * MIB), 16 * MIB); /* hi */
    CHECK_INT(sl_wtune_target(0x7fffffffu, UINT64_MAX, 65535, 0x7fffffffu), 0x7fffffffu);
    CHECK_INT(sl_wtune_target(64 * MIB, UINT64_MAX, 65535, 16 * MIB), 64 * MIB);
}

/* A window-limited sender: each RTT brings exactly the window granted one
 * RTT before. A whole window consumed within an RTT doubles the target at
 * once, so it doubles each RTT up to hi, and the connection (starting at
 * its own 1 MiB) follows once the stream passes it. */
TEST(growth_to_the_clamp)
{
    sl_wtune w;
    sl_wtune_init(&w, 65535, MIB, 65535, MIB, 4 * MIB, 0);
    sl_wtune_rtt_sample(&w, 10 * MS);
    static const uint32_t stream[] = {262140, 524280, 1048560, MIB, MIB, MIB, MIB};
    static const uint32_t conn[] = {MIB, MIB, MIB, 2 * MIB, 2 * MIB, 2 * MIB, 2 * MIB};
    CHECK_INT(sl_wtune_consumed(&w, w.stream_target, 0), 1);
    CHECK_INT(w.stream_target, 131070);
    CHECK_INT(w.conn_target, MIB);
    for (int i = 0; i < 7; i++) {
        int raised = sl_wtune_consumed(&w, w.stream_target, (uint64_t)(i + 1) * 10 * MS);
        CHECK_INT(w.stream_target, stream[i]);
        CHECK_INT(w.conn_target, conn[i]);
        CHECK_INT(raised, i < 4);
    }
    /* Half a window per RTT keeps it where it is. */
    for (int i = 8; i < 20; i++)
        CHECK_INT(sl_wtune_consumed(&w, MIB / 2, (uint64_t)i * 10 * MS), 0);
    CHECK_INT(w.stream_target, MIB);
}

/* Within an RTT a target moves once, however the bytes come: not a
 * WINDOW_UPDATE round per DATA frame. */
TEST(one_raise_per_target_per_interval)
{
    sl_wtune w;
    sl_wtune_init(&w, 65535, MIB, 65535, 16 * MIB, 64 * MIB, 0);
    sl_wtune_rtt_sample(&w, 10 * MS);
    int raises = 0;
    for (int i = 0; i < 640; i++) /* 10 MiB in 16 KiB frames within 6.4 ms */
        raises += sl_wtune_consumed(&w, 16384, (uint64_t)i * 10000);
    CHECK_INT(raises, 2); /* stream at 64 KiB, connection at 1 MiB */
    CHECK_INT(w.stream_target, 131070);
    CHECK_INT(w.conn_target, 2 * MIB);
}

/* Not window-limited: a steady 1,000,000 bytes per 10 ms RTT (100 MB/s)
 * gives about 2 x BDP and no more, however long it runs. A doubling fires
 * at 3/4 of the window, so a target lands in [2, 8/3] x BDP: here
 * 1,048,560 x 2 (800,000 bytes came within an RTT at that window). */
TEST(converges_to_twice_the_bdp)
{
    sl_wtune w;
    sl_wtune_init(&w, 65535, MIB, 65535, 16 * MIB, 64 * MIB, 0);
    sl_wtune_rtt_sample(&w, 10 * MS);
    for (uint64_t t = 0; t <= 2000; t++) /* 100,000 bytes each ms, for 2 s */
        sl_wtune_consumed(&w, 100000, t * MS);
    CHECK_INT(w.stream_target, 2097120);
    CHECK_INT(w.conn_target, 2 * MIB);
    CHECK_INT(w.rate, 100000000);
    /* The transfer slows to a trickle: targets stay (no shrink). */
    for (uint64_t t = 2001; t <= 4000; t++)
        sl_wtune_consumed(&w, 10, t * MS);
    CHECK_INT(w.stream_target, 2097120);
    CHECK_INT(w.conn_target, 2 * MIB);
    CHECK_INT(w.rate, 10000);
    CHECK_INT(sl_wtune_rate(&w, 4000 * MS), 10000);
    CHECK_INT(sl_wtune_rate(&w, 4009 * MS), 10000); /* the open interval is short */
    /* Then nothing at all: the open interval says so once an SRTT old. */
    CHECK_INT(sl_wtune_rate(&w, 4010 * MS), 1000); /* 10 bytes in 10 ms */
    CHECK_INT(sl_wtune_rate(&w, 5000 * MS), 10);
}

TEST(no_growth_without_consumption)
{
    sl_wtune w;
    sl_wtune_init(&w, 65535, MIB, 65535, 16 * MIB, 64 * MIB, 0);
    /* No RTT yet: any amount consumed tells nothing per RTT. */
    for (uint64_t t = 0; t < 100; t++)
        CHECK_INT(sl_wtune_consumed(&w, 1000000, t * MS), 0);
    CHECK_INT(w.stream_target, 65535);
    sl_wtune_init(&w, 65535, MIB, 65535, 16 * MIB, 64 * MIB, 0);
    sl_wtune_rtt_sample(&w, 10 * MS);
    /* Time passes, nothing is consumed. */
    for (uint64_t t = 0; t < 1000; t += 5)
        CHECK_INT(sl_wtune_consumed(&w, 0, t * MS), 0);
    CHECK_INT(w.stream_target, 65535);
    CHECK_INT(w.conn_target, MIB);
    CHECK_INT(w.rate, 0);
    /* A slow reader: 10,000 bytes per RTT wants 20,000, under the start. */
    for (uint64_t t = 1000; t < 2000; t += 10)
        CHECK_INT(sl_wtune_consumed(&w, 10000, t * MS), 0);
    CHECK_INT(w.stream_target, 65535);
    CHECK_INT(w.rate, 1000000);
}

TEST(min_and_max_respected)
{
    sl_wtune w;
    /* Starts below window_min: raised to it. */
    sl_wtune_init(&w, 16384, 65535, 65535, 256 * 1024, 64 * MIB, 0);
    CHECK_INT(w.stream_target, 65535);
    CHECK_INT(w.conn_target, 65535);
    /* A stream may never be allowed more than the connection. */
    sl_wtune_init(&w, 65535, 65535, 65535, 256 * 1024, 131072, 0);
    sl_wtune_rtt_sample(&w, MS);
    for (uint64_t t = 0; t < 100; t++) {
        sl_wtune_consumed(&w, 100 * MIB, t * MS);
        CHECK(w.stream_target <= 131072);
        CHECK(w.conn_target <= 131072);
        CHECK(w.conn_target >= w.stream_target);
    }
    CHECK_INT(w.stream_target, 131072);
    CHECK_INT(w.conn_target, 131072);
    /* hi and conn_hi themselves, from unbounded consumption. */
    sl_wtune_init(&w, 65535, MIB, 65535, 4 * MIB, 8 * MIB, 0);
    sl_wtune_rtt_sample(&w, MS);
    for (uint64_t t = 0; t < 100; t++) {
        sl_wtune_consumed(&w, 0x7fffffffu, t * MS);
        CHECK(w.stream_target <= 4 * MIB);
        CHECK(w.conn_target <= 8 * MIB);
    }
    CHECK_INT(w.stream_target, 4 * MIB);
    CHECK_INT(w.conn_target, 8 * MIB);
    /* Configured starting windows above the maxima are kept, not cut. */
    sl_wtune_init(&w, 8 * MIB, 32 * MIB, 65535, 4 * MIB, 16 * MIB, 0);
    CHECK_INT(w.stream_target, 8 * MIB);
    CHECK_INT(w.conn_target, 32 * MIB);
    /* Fixed windows (lo = hi): nothing moves, the rate is still measured. */
    sl_wtune_init(&w, 65535, MIB, 65535, 65535, MIB, 0);
    sl_wtune_rtt_sample(&w, MS);
    for (uint64_t t = 0; t <= 10; t++)
        CHECK_INT(sl_wtune_consumed(&w, 65535, t * MS), 0);
    CHECK_INT(w.stream_target, 65535);
    CHECK_INT(w.conn_target, MIB);
    CHECK_INT(w.rate, 65535000);
}

TEST(clock_going_back_restarts_the_interval)
{
    sl_wtune w;
    sl_wtune_init(&w, 65535, MIB, 65535, 16 * MIB, 64 * MIB, 1000 * MS);
    sl_wtune_rtt_sample(&w, 10 * MS);
    CHECK_INT(sl_wtune_consumed(&w, 65535, 5 * MS), 1);
    CHECK_INT(w.interval_start, 5 * MS);
    CHECK_INT(w.stream_target, 131070);
    CHECK_INT(sl_wtune_consumed(&w, 131070, 15 * MS), 1);
    CHECK_INT(w.stream_target, 262140);
}

TEST(probe_bookkeeping)
{
    sl_wtune w;
    uint8_t op[8];
    sl_wtune_init(&w, 65535, MIB, 65535, 16 * MIB, 64 * MIB, 0);
    CHECK_INT(sl_wtune_probe_due(&w, 0), 1);
    sl_wtune_probe_sent(&w, 1000 * MS, op);
    CHECK_MEM(op, 8, "sl-rtt\0\0", 8);
    CHECK_INT(sl_wtune_probe_due(&w, 5000 * MS), 0); /* one in flight at most */
    CHECK_INT(sl_wtune_probe_ack(&w, (const uint8_t *)"sl-rtt\0\1", 1020 * MS), 0);
    CHECK_INT(sl_wtune_probe_ack(&w, (const uint8_t *)"sl-drain", 1020 * MS), 0);
    CHECK_INT(w.srtt_ns, 0);
    CHECK_INT(sl_wtune_probe_ack(&w, (const uint8_t *)"sl-rtt\0\0", 1030 * MS), 1);
    CHECK_INT(w.srtt_ns, 30 * MS);
    CHECK_INT(sl_wtune_probe_ack(&w, (const uint8_t *)"sl-rtt\0\0", 1040 * MS), 0); /* answered */
    /* The next one: SL_WTUNE_PROBE_GAP_NS after the last was sent. */
    CHECK_INT(sl_wtune_probe_due(&w, 1000 * MS + SL_WTUNE_PROBE_GAP_NS - 1), 0);
    CHECK_INT(sl_wtune_probe_due(&w, 1000 * MS + SL_WTUNE_PROBE_GAP_NS), 1);
    sl_wtune_probe_sent(&w, 2000 * MS, op);
    CHECK_MEM(op, 8, "sl-rtt\0\1", 8);
    CHECK_INT(sl_wtune_probe_ack(&w, op, 5000 * MS), 1);
    CHECK_INT(w.srtt_ns, 30 * MS + (3000 * MS - 30 * MS) / 8);
    /* An SRTT above the gap spaces probes by the SRTT. */
    uint64_t srtt = w.srtt_ns;
    CHECK(srtt > SL_WTUNE_PROBE_GAP_NS);
    CHECK_INT(sl_wtune_probe_due(&w, 2000 * MS + srtt - 1), 0);
    CHECK_INT(sl_wtune_probe_due(&w, 2000 * MS + srtt), 1);
}
