/* wtune.c — the adaptive receive-window estimator: SRTT as RFC 6298 keeps
 * it, bytes consumed per RTT, and the targets (about 2 x BDP) they give. */
#include <string.h>

#include "wtune.h"

#define NS_PER_SEC 1000000000ull
#define MAX_RTT_NS (3600 * NS_PER_SEC)

void sl_wtune_init(sl_wtune *w, uint32_t stream_init, uint32_t conn_init, uint32_t lo,
                   uint32_t hi, uint32_t conn_hi, uint64_t now)
{
    memset(w, 0, sizeof(*w));
    /* The connection window carries every stream's bytes: a stream may
     * never be allowed more than it. */
    w->conn_hi = conn_hi;
    w->hi = hi < conn_hi ? hi : conn_hi;
    w->lo = lo < w->hi ? lo : w->hi;
    w->stream_target = stream_init > w->lo ? stream_init : w->lo;
    w->conn_target = conn_init > w->stream_target ? conn_init : w->stream_target;
    w->base_stream = w->stream_target;
    w->base_conn = w->conn_target;
    w->interval_start = now;
}

/* RFC 6298 §2: the first sample is taken as it is, later ones move SRTT
 * by 1/8 of the difference. A zero sample (everything at one instant)
 * still counts as a measurement: 1 ns; one over an hour is a clock gone
 * wrong, taken as an hour. */
void sl_wtune_rtt_sample(sl_wtune *w, uint64_t rtt_ns)
{
    if (rtt_ns == 0)
        rtt_ns = 1;
    if (rtt_ns > MAX_RTT_NS)
        rtt_ns = MAX_RTT_NS;
    if (w->srtt_ns == 0) {
        w->srtt_ns = rtt_ns;
        return;
    }
    int64_t d = (int64_t)rtt_ns - (int64_t)w->srtt_ns;
    w->srtt_ns = (uint64_t)((int64_t)w->srtt_ns + d / 8);
    if (w->srtt_ns == 0)
        w->srtt_ns = 1;
}

/* x * num / den without overflowing on the way. */
static uint64_t scale(uint64_t x, uint64_t num, uint64_t den)
{
    double v = (double)x * (double)num / (double)den;
    return v >= (double)UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

/* About twice the bandwidth-delay product: what arrives during one RTT
 * while the credit for it travels back. Growth is at most a doubling of
 * cur (once per RTT: as fast as a window can prove itself, a sender it
 * limits delivers one window per RTT), and a target never falls: it only
 * bounds what a peer may send, the maxima bound memory, and a shrunk
 * window would throttle the next burst of a transfer that merely paused. */
uint32_t sl_wtune_target(uint32_t cur, uint64_t per_rtt, uint32_t lo, uint32_t hi)
{
    uint64_t want = per_rtt > UINT64_MAX / 2 ? UINT64_MAX : 2 * per_rtt;
    if (want > 2 * (uint64_t)cur)
        want = 2 * (uint64_t)cur;
    if (want > hi)
        want = hi;
    if (want < lo)
        want = lo;
    return want > cur ? (uint32_t)want : cur;
}

/* New targets from the bytes consumed per RTT, as seen by each target: a
 * target moves at most to double what it was when the interval began. */
static int retarget(sl_wtune *w, uint64_t per_rtt_stream, uint64_t per_rtt_conn)
{
    uint32_t st = sl_wtune_target(w->base_stream, per_rtt_stream, w->lo, w->hi);
    if (st < w->stream_target)
        st = w->stream_target;
    uint32_t ct = sl_wtune_target(w->base_conn, per_rtt_conn, st, w->conn_hi);
    if (ct < w->conn_target)
        ct = w->conn_target;
    int raised = st != w->stream_target || ct != w->conn_target;
    w->stream_target = st;
    w->conn_target = ct;
    return raised;
}

/* At least 3/4 of a window. */
static int most_of(uint64_t bytes, uint32_t window)
{
    return bytes >= window - window / 4;
}

/* Consumption is counted over intervals of at least one SRTT: an interval
 * is [interval_start, the first consumption one SRTT or more later), and
 * that consumption opens the next one. At its end the bytes, scaled to one
 * SRTT, set the targets (a long quiet interval counts as little per RTT).
 * Within it, 3/4 of a target's window consumed in less than an RTT means
 * the window is what limits the transfer (a flow that is not limited runs
 * at half its 2 x BDP target): that target doubles at once, not an RTT
 * later, and only once, so WINDOW_UPDATE is not sent per frame. */
int sl_wtune_consumed(sl_wtune *w, size_t n, uint64_t now)
{
    int raised = 0;
    if (now < w->interval_start) { /* a clock that went back: start over */
        w->interval_start = now;
        w->bytes = 0;
    }
    uint64_t elapsed = now - w->interval_start;
    if (w->srtt_ns && elapsed >= w->srtt_ns) {
        uint64_t per_rtt = scale(w->bytes, w->srtt_ns, elapsed);
        w->rate = scale(w->bytes, NS_PER_SEC, elapsed);
        raised = retarget(w, per_rtt, per_rtt);
        w->bytes = 0;
        w->interval_start = now;
        w->base_stream = w->stream_target;
        w->base_conn = w->conn_target;
    }
    w->bytes += n;
    if (w->srtt_ns && most_of(w->bytes, w->base_stream)) {
        uint64_t conn = most_of(w->bytes, w->base_conn) ? w->base_conn : 0;
        raised |= retarget(w, w->base_stream, conn);
    }
    return raised;
}

/* An interval that has run one SRTT or more without closing (nothing
 * consumed since) tells the rate better than the last closed one. */
uint64_t sl_wtune_rate(const sl_wtune *w, uint64_t now)
{
    if (w->srtt_ns && now >= w->interval_start && now - w->interval_start >= w->srtt_ns)
        return scale(w->bytes, NS_PER_SEC, now - w->interval_start);
    return w->rate;
}

int sl_wtune_probe_due(const sl_wtune *w, uint64_t now)
{
    if (w->probe_out)
        return 0;
    if (w->probes == 0)
        return 1;
    uint64_t gap = w->srtt_ns > SL_WTUNE_PROBE_GAP_NS ? w->srtt_ns : SL_WTUNE_PROBE_GAP_NS;
    return now >= w->probe_sent_at && now - w->probe_sent_at >= gap;
}

void sl_wtune_probe_sent(sl_wtune *w, uint64_t now, uint8_t opaque[8])
{
    uint16_t seq = (uint16_t)w->probes++;
    memcpy(w->probe_opaque, SL_WTUNE_PROBE_TAG, SL_WTUNE_PROBE_TAG_LEN);
    w->probe_opaque[6] = (uint8_t)(seq >> 8);
    w->probe_opaque[7] = (uint8_t)seq;
    memcpy(opaque, w->probe_opaque, 8);
    w->probe_out = 1;
    w->probe_sent_at = now;
}

int sl_wtune_probe_ack(sl_wtune *w, const uint8_t opaque[8], uint64_t now)
{
    if (!w->probe_out || memcmp(opaque, w->probe_opaque, 8) != 0)
        return 0;
    w->probe_out = 0;
    sl_wtune_rtt_sample(w, now >= w->probe_sent_at ? now - w->probe_sent_at : 0);
    return 1;
}
