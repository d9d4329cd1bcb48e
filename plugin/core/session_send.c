/* session_send.c — everything a session writes: control frames, header
 * blocks, DATA pulled from body sources, and the submit calls behind them.
 * The output queue (outq.c) puts control frames ahead of queued DATA and
 * keeps header blocks in the order they were encoded (HPACK). */
#include <stddef.h>
#include <string.h>

#include "http.h"
#include "push.h"
#include "session.h"

static void response_priority(sluice_session *s, sl_stream *st, const sluice_nv *nv, size_t n);

/* A control frame (whole, with its header) into the control lane. */
static int queue_frame(sluice_session *s, const uint8_t *frame, size_t len, unsigned flags)
{
    /* A peer that keeps provoking replies while never reading them would
     * otherwise grow this queue without bound. */
    if (sl_outq_owned_pending(&s->out) + len > s->opt.max_outbound_control && !s->fatal)
        return sl_session_conn_error(s, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM,
                                     "peer does not read our control frames");
    /* The frame's stream: the frame follows that stream's header blocks. */
    uint32_t id = 0;
    if (len >= SL_FRAME_HDR_LEN)
        id = ((uint32_t)frame[5] << 24 | (uint32_t)frame[6] << 16 | (uint32_t)frame[7] << 8 |
              frame[8]) & SL_MAX_WINDOW;
    int rv = sl_outq_append_control(&s->out, frame, len, id, flags);
    if (rv == 0)
        s->stats.frames_out++;
    return rv;
}

/* A SETTINGS ACK tells the peer its settings now hold (§6.5.3), so it
 * follows the header blocks encoded before they did (a smaller
 * HEADER_TABLE_SIZE, RFC 7541 §4.2; a smaller MAX_FRAME_SIZE), and, when
 * the settings lowered INITIAL_WINDOW_SIZE or MAX_FRAME_SIZE, the DATA
 * queued under the old values too: the peer applies the new ones on the
 * ACK and would hold that DATA to them. Other control frames go ahead of
 * both. */
static unsigned control_order(sluice_session *s, const uint8_t *frame, size_t len)
{
    if (len < SL_FRAME_HDR_LEN || frame[3] != SL_FRAME_SETTINGS || !(frame[4] & SL_FLAG_ACK))
        return 0;
    uint32_t iws = s->remote.initial_window_size, mfs = s->remote.max_frame_size;
    int lowered = iws < (s->acked_known ? s->acked_iws : SL_DEFAULT_WINDOW) ||
                  mfs < (s->acked_known ? s->acked_mfs : SL_MAX_FRAME_SIZE_MIN);
    s->acked_iws = iws;
    s->acked_mfs = mfs;
    s->acked_known = 1;
    return SL_OUTQ_AFTER_BLOCKS | (lowered ? SL_OUTQ_AFTER_ALL : 0u);
}

int sl_session_queue_control(sluice_session *s, const uint8_t *frame, size_t len)
{
    return queue_frame(s, frame, len, control_order(s, frame, len));
}

/* An RST_STREAM goes ahead of queued DATA like any control frame (after
 * the stream's own header blocks), and the stream's DATA not yet started
 * is taken out: it is of no use to the peer, would only reach it on a
 * closed stream, and its flow-control credit comes back. Except NO_ERROR
 * once our side has ended: that only stops the rest of the peer's side
 * after a complete response (§8.1), so it follows the response. Taking
 * DATA out calls on_data_sent: callers look the stream up again. */
int sl_session_send_rst(sluice_session *s, uint32_t id, uint32_t code)
{
    uint8_t f[SL_FRAME_HDR_LEN + 4];
    long n = sl_frame_encode_rst_stream(f, sizeof(f), id, code);
    if (n < 0)
        return (int)n;
    s->stats.rst_sent++;
    const sl_stream *st = sl_session_stream(s, id);
    int complete = code == SLUICE_H2_NO_ERROR && st && st->send_closed;
    int rv = queue_frame(s, f, (size_t)n, complete ? SL_OUTQ_AFTER_DATA : 0);
    if (rv != 0 || complete)
        return rv;
    size_t frames = 0;
    size_t bytes = sl_outq_drop_data(&s->out, id, &frames);
    s->send_window += (int64_t)bytes;
    s->stats.frames_out -= frames;
    return 0;
}

int sl_session_send_window_update(sluice_session *s, uint32_t id, uint32_t inc)
{
    uint8_t f[SL_FRAME_HDR_LEN + 4];
    long n = sl_frame_encode_window_update(f, sizeof(f), id, inc);
    if (n < 0)
        return (int)n;
    return sl_session_queue_control(s, f, (size_t)n);
}

int sl_session_send_settings(sluice_session *s, const sl_setting *v, size_t n)
{
    if (s->npending == SL_MAX_PENDING_SETTINGS || n > SL_MAX_SETTINGS)
        return SLUICE_ERR_AGAIN;
    uint8_t f[SL_FRAME_HDR_LEN + SL_MAX_SETTINGS * 6];
    long len = sl_frame_encode_settings(f, sizeof(f), v, n);
    if (len < 0)
        return (int)len;
    int rv = sl_session_queue_control(s, f, (size_t)len);
    if (rv != 0)
        return rv;
    sl_pending_settings *p = &s->pending[s->npending++];
    memcpy(p->s, v, n * sizeof(*v));
    p->n = n;
    p->sent_at = s->now;
    return 0;
}

int sl_session_send_goaway(sluice_session *s, uint32_t last_id, uint32_t code,
                           const char *debug)
{
    uint8_t f[SL_FRAME_HDR_LEN + 8 + 128];
    size_t dlen = debug ? strlen(debug) : 0;
    if (dlen > 128)
        dlen = 128;
    long n = sl_frame_encode_goaway(f, sizeof(f), last_id, code, (const uint8_t *)debug, dlen);
    if (n < 0)
        return (int)n;
    /* Bypass the control-queue bound: this is the last thing we say. It
     * follows the header blocks queued before it, so every stream it
     * covers was opened on the wire before the peer reads last_id. */
    int rv = sl_outq_append_control(&s->out, f, (size_t)n, 0, SL_OUTQ_AFTER_BLOCKS);
    if (rv != 0)
        return rv;
    s->goaway_phase = 2;
    s->goaway_last_id = last_id;
    s->stats.goaway_sent = 1;
    s->stats.goaway_sent_code = code;
    s->stats.frames_out++;
    return 0;
}

int sl_session_conn_error(sluice_session *s, int err, uint32_t code, const char *why)
{
    if (s->fatal)
        return s->fatal;
    sl_session_log(s, SLUICE_LOG_WARN, "connection error %s: %s",
                   sluice_h2_error_name(code), why);
    s->fatal = err;
    sl_session_send_goaway(s, s->last_peer_stream, code, why);
    return err;
}

/* Reset a stream because of something the peer did, counting it: a peer
 * that makes us reset streams in a loop frees its concurrency slots as
 * fast as rapid reset does (MadeYouReset, CVE-2025-8671). */
int sl_session_stream_error(sluice_session *s, uint32_t id, uint32_t code, const char *why)
{
    sl_session_log(s, SLUICE_LOG_INFO, "stream %u reset %s: %s", id,
                   sluice_h2_error_name(code), why);
    if (!sl_bucket_take(&s->b_rst_provoked, s->now))
        return sl_session_conn_error(s, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM,
                                     "too many stream errors");
    int rv = sl_session_send_rst(s, id, code);
    if (rv != 0)
        return rv;
    sl_stream *st = sl_session_stream(s, id);
    if (st)
        sl_session_close_stream(s, st, code);
    else {
        s->reset_ring[s->reset_pos] = id;
        s->reset_pos = (s->reset_pos + 1) % SL_RESET_RING;
    }
    return 0;
}

/* ---- receive credit (§6.9) -------------------------------------------- */

/* Credit that keeps window + unread data within the target. A raised
 * target (at_once) is credited whole at once; otherwise credit waits until
 * at least half the target is due, so WINDOW_UPDATE is not sent per frame. */
static uint32_t credit_due(int64_t window, size_t buffered, uint32_t target, int at_once)
{
    int64_t due = (int64_t)target - window - (int64_t)buffered;
    if (due <= 0 || (!at_once && due < (int64_t)target / 2))
        return 0;
    return (uint32_t)(due > SL_MAX_WINDOW ? SL_MAX_WINDOW : due);
}

/* Send due credit for stream id (0: the connection) and count it. */
static int grant(sluice_session *s, uint32_t id, int64_t *window, uint32_t due)
{
    if (!due)
        return 0;
    int rv = sl_session_send_window_update(s, id, due);
    if (rv == 0)
        *window += due;
    return rv;
}

/* Our INITIAL_WINDOW_SIZE is changing: every stream's window moves by the
 * difference when the peer acknowledges it (§6.9.2). */
static int iws_pending(const sluice_session *s)
{
    for (size_t i = 0; i < s->npending; i++)
        for (size_t j = 0; j < s->pending[i].n; j++)
            if (s->pending[i].s[j].id == SL_SETTINGS_INITIAL_WINDOW_SIZE)
                return 1;
    return 0;
}

/* Adaptive windows: a target below the tuner's is raised (unless the
 * application chose it). Returns 1 when it was, so it is credited at once.
 * Not while a new INITIAL_WINDOW_SIZE is unacknowledged: credit given now
 * and the difference added at the ACK would together pass the maximum. */
static int adapt_stream(sluice_session *s, sl_stream *st)
{
    if (!s->opt.window_adaptive || st->target_set || st->recv_target >= s->wtune.stream_target ||
        iws_pending(s))
        return 0;
    st->recv_target = s->wtune.stream_target;
    return 1;
}

static int adapt_conn(sluice_session *s)
{
    if (!s->opt.window_adaptive || s->conn_target_set || s->recv_target >= s->wtune.conn_target)
        return 0;
    s->recv_target = s->wtune.conn_target;
    return 1;
}

/* Adaptive: credit once a quarter of the target is due, not half, so a
 * peer the window limits delivers over 3/4 of it per RTT: the signal the
 * tuner doubles on (sl_wtune_consumed). */
static int eager(const sluice_session *s, int64_t window, size_t buffered, uint32_t target)
{
    return s->opt.window_adaptive &&
           (int64_t)target - window - (int64_t)buffered >= (int64_t)target / 4;
}

int sl_session_credit(sluice_session *s, sl_stream *st)
{
    if (s->fatal)
        return 0;
    if (st && !st->recv_closed) {
        int at_once = adapt_stream(s, st) ||
                      eager(s, st->recv_window, st->recv_buffered, st->recv_target);
        int rv = grant(s, st->id, &st->recv_window,
                       credit_due(st->recv_window, st->recv_buffered, st->recv_target, at_once));
        if (rv != 0)
            return rv;
    }
    int at_once = adapt_conn(s) || eager(s, s->recv_window, s->recv_buffered, s->recv_target);
    return grant(s, 0, &s->recv_window,
                 credit_due(s->recv_window, s->recv_buffered, s->recv_target, at_once));
}

struct raise_ctx { sluice_session *s; int rv; };

static void raise_stream(sl_stream *st, void *ud)
{
    struct raise_ctx *rc = ud;
    if (rc->rv == 0 && !st->closed && !st->recv_closed && adapt_stream(rc->s, st))
        rc->rv = grant(rc->s, st->id, &st->recv_window,
                       credit_due(st->recv_window, st->recv_buffered, st->recv_target, 1));
}

/* The targets rise (twice per RTT at most): every stream still receiving
 * gets its new credit now, not when its next DATA arrives. */
int sl_session_consumed(sluice_session *s, size_t n)
{
    if (!sl_wtune_consumed(&s->wtune, n, s->now) || !s->opt.window_adaptive || s->fatal)
        return 0;
    struct raise_ctx rc = {s, 0};
    sl_stream_map_each(&s->streams, raise_stream, &rc);
    if (rc.rv != 0 || s->fatal)
        return rc.rv;
    return sl_session_credit(s, NULL);
}

/* RTT probe while DATA arrives (the SETTINGS round trip alone would go
 * stale): one in flight, one per SRTT at most (SL_WTUNE_PROBE_GAP_NS). */
int sl_session_rtt_probe(sluice_session *s)
{
    if (!s->opt.window_adaptive || s->fatal || !sl_wtune_probe_due(&s->wtune, s->now))
        return 0;
    uint8_t opaque[8], f[SL_FRAME_HDR_LEN + 8];
    sl_wtune_probe_sent(&s->wtune, s->now, opaque);
    long n = sl_frame_encode_ping(f, sizeof(f), opaque, 0);
    return n < 0 ? (int)n : sl_session_queue_control(s, f, (size_t)n);
}

int sluice_session_consume(sluice_session *s, uint32_t stream_id, size_t n)
{
    if (!s)
        return SLUICE_ERR_INVAL;
    sl_stream *st = sl_session_stream(s, stream_id);
    if (!st)
        return SLUICE_ERR_NOT_FOUND; /* closing released its bytes already */
    if (n > st->recv_buffered)
        return SLUICE_ERR_INVAL;
    st->recv_buffered -= n;
    s->recv_buffered -= n;
    int rv = sl_session_consumed(s, n);
    return rv != 0 ? rv : sl_session_credit(s, st);
}

int sluice_session_set_window(sluice_session *s, uint32_t stream_id, uint32_t window)
{
    if (!s || window > SL_MAX_WINDOW)
        return SLUICE_ERR_INVAL;
    if (stream_id == 0) {
        if (window < SL_DEFAULT_WINDOW) /* the connection window never shrinks below its start */
            window = SL_DEFAULT_WINDOW;
        s->recv_target = window;
        s->conn_target_set = 1;
        if (s->fatal)
            return 0;
        return grant(s, 0, &s->recv_window,
                     credit_due(s->recv_window, s->recv_buffered, window, 1));
    }
    sl_stream *st = sl_session_stream(s, stream_id);
    if (!st)
        return SLUICE_ERR_NOT_FOUND;
    st->recv_target = window;
    st->target_set = 1;
    if (st->recv_closed || s->fatal)
        return 0;
    return grant(s, st->id, &st->recv_window,
                 credit_due(st->recv_window, st->recv_buffered, window, 1));
}

/* ---- header blocks ------------------------------------------------------- */

static int reserve_scratch(sluice_session *s, size_t n)
{
    return sl_grow(&s->mem, &s->scratch, &s->scratch_cap, n, 1024);
}

/* Encode a header block and queue it right away, as one unit so nothing
 * comes between its frames (§6.10): HEADERS, or PUSH_PROMISE when promised
 * is set (§6.6: the promised id leads its payload), then CONTINUATION as
 * the peer's frame size requires. */
static int send_block(sluice_session *s, uint32_t id, uint32_t promised,
                      const sluice_nv *nv, size_t n, int end_stream)
{
    /* Responses to a client that sends requests but never reads them
     * would pile up here: the same bound as for control frames. */
    if (sl_outq_owned_pending(&s->out) > s->opt.max_outbound_control && !s->fatal) {
        if (s->role == SLUICE_ROLE_CLIENT)
            return SLUICE_ERR_LIMIT;
        return sl_session_conn_error(s, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM,
                                     "peer does not read our responses");
    }
    size_t bound = sluice_hpack_encode_bound(s->enc, nv, n);
    int rv = reserve_scratch(s, bound);
    size_t len = 0;
    if (rv == 0)
        rv = sluice_hpack_encode(s->enc, nv, n, s->scratch, s->scratch_cap, &len);
    if (rv != 0)
        return rv;
    size_t max = s->remote.max_frame_size, off = 0;
    size_t pre = promised ? 4 : 0; /* PUSH_PROMISE's promised stream id */
    size_t frames = len <= max - pre ? 1 : 1 + (len - (max - pre) + max - 1) / max;
    uint8_t *p = sl_outq_reserve_block(&s->out, len + pre + frames * SL_FRAME_HDR_LEN, id,
                                       promised);
    if (!p)
        return SLUICE_ERR_NOMEM;
    int first = 1;
    do {
        size_t chunk = len - off < max - pre ? len - off : max - pre;
        int last = off + chunk == len;
        uint8_t type = !first ? SL_FRAME_CONTINUATION
                       : promised ? SL_FRAME_PUSH_PROMISE : SL_FRAME_HEADERS;
        uint8_t flags = (uint8_t)((last ? SL_FLAG_END_HEADERS : 0) |
                                  (first && end_stream ? SL_FLAG_END_STREAM : 0));
        sl_frame_pack_header(p, (uint32_t)(pre + chunk), type, flags, id);
        for (size_t i = 0; i < pre; i++)
            p[SL_FRAME_HDR_LEN + i] = (uint8_t)(promised >> (24 - 8 * i));
        memcpy(p + SL_FRAME_HDR_LEN + pre, s->scratch + off, chunk);
        p += SL_FRAME_HDR_LEN + pre + chunk;
        s->stats.frames_out++;
        off += chunk;
        first = 0;
        pre = 0;
    } while (off < len);
    return 0;
}

int sl_session_send_headers(sluice_session *s, uint32_t id, const sluice_nv *nv,
                            size_t n, int end_stream)
{
    return send_block(s, id, 0, nv, n, end_stream);
}

int sl_session_send_push_promise(sluice_session *s, uint32_t id, uint32_t promised,
                                 const sluice_nv *nv, size_t n)
{
    return send_block(s, id, promised, nv, n, 0);
}

static int check_fields(const sluice_nv *nv, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sl_http_check_field(&nv[i]) != 0)
            return SLUICE_ERR_INVAL; /* nothing we send can be malformed */
    return 0;
}

/* ---- ready list: streams with a body source to pull from ---------------- */

void sl_session_ready_add(sluice_session *s, sl_stream *st)
{
    if (st->in_ready)
        return;
    st->in_ready = 1;
    sl_sched_add(&s->sched, &st->sn);
}

void sl_session_ready_del(sluice_session *s, sl_stream *st)
{
    if (!st->in_ready)
        return;
    sl_sched_remove(&s->sched, &st->sn);
    st->in_ready = 0;
}

static sl_stream *ready_top(const sluice_session *s)
{
    sl_sched_node *n = sl_sched_top(&s->sched);
    return n ? (sl_stream *)((char *)n - offsetof(sl_stream, sn)) : NULL;
}

/* Our side of the stream is done: close it if the peer's is too. */
static void local_end(sluice_session *s, sl_stream *st)
{
    st->send_closed = 1;
    sl_session_ready_del(s, st);
    if (st->recv_closed)
        sl_session_close_stream(s, st, SLUICE_H2_NO_ERROR);
}

static int send_trailers(sluice_session *s, sl_stream *st)
{
    int rv = sl_session_send_headers(s, st->id, st->trailers, st->ntrailers, 1);
    if (rv == 0)
        local_end(s, st);
    return rv;
}

/* Pull one DATA frame from a stream's source. Returns 1 when a frame was
 * queued and more may follow, 2 when that was the stream's last (st may be
 * gone), 0 when the stream has nothing to send now, or an error. */
static int pull_data(sluice_session *s, sl_stream *st, size_t budget)
{
    int64_t win = st->send_window < s->send_window ? st->send_window : s->send_window;
    size_t max = s->remote.max_frame_size;
    if (win < (int64_t)max)
        max = win > 0 ? (size_t)win : 0;
    if (budget < max)
        max = budget;
    /* With the window closed the source is still asked (for 0 bytes): a
     * body that has ended needs no window for its empty END_STREAM frame
     * (§6.9.1 counts payload only). */
    const uint8_t *data = NULL;
    uint32_t flags = 0;
    long n = st->source.read(s, st->id, &data, max, &flags, st->source.ud);
    if (max == 0 && n == 0 && !(flags & SLUICE_DATA_EOF)) {
        if (st->send_window <= 0)
            sl_session_ready_del(s, st); /* WINDOW_UPDATE puts it back */
        return 0;
    }
    if (n == SLUICE_ERR_AGAIN || (n == 0 && !(flags & SLUICE_DATA_EOF))) {
        st->source_deferred = 1;
        sl_session_ready_del(s, st);
        return 0;
    }
    if (n < 0 || (size_t)n > max) {
        uint32_t id = st->id;
        sl_session_log(s, SLUICE_LOG_ERROR, "stream %u: body source failed", id);
        int rv = sl_session_send_rst(s, id, SLUICE_H2_INTERNAL_ERROR);
        st = sl_session_stream(s, id); /* on_data_sent may have closed it */
        if (rv == 0 && st)
            sl_session_close_stream(s, st, SLUICE_H2_INTERNAL_ERROR);
        return rv;
    }
    int eof = (flags & SLUICE_DATA_EOF) != 0;
    int end_stream = eof && !st->trailers && !(flags & SLUICE_DATA_NO_END_STREAM);
    int rv = 0;
    /* An empty frame carries nothing unless it ends the stream; trailers
     * do that job themselves. */
    if (n > 0 || end_stream) {
        uint8_t hdr[SL_FRAME_HDR_LEN];
        sl_frame_pack_header(hdr, (uint32_t)n, SL_FRAME_DATA,
                             end_stream ? SL_FLAG_END_STREAM : 0, st->id);
        /* Priorities off: one urgency, so DATA keeps the order it came in. */
        uint8_t urgency = s->sched.flat ? 0 : st->sn.urgency;
        rv = sl_outq_append_data(&s->out, hdr, sizeof(hdr), data, (size_t)n, st->id, urgency);
        if (rv != 0)
            return rv;
        s->stats.frames_out++;
        st->send_window -= n;
        s->send_window -= n;
    }
    if (!eof)
        return 1;
    st->source_eof = 1;
    if (end_stream)
        local_end(s, st); /* may free st */
    else if (st->trailers)
        rv = send_trailers(s, st);
    else {
        st->awaiting_trailers = 1;
        sl_session_ready_del(s, st);
    }
    return rv < 0 ? rv : 2;
}

/* Fill the queue with DATA up to budget bytes, one frame at a time from
 * the stream the RFC 9218 scheduler puts first. */
static int fill_data(sluice_session *s, size_t budget)
{
    sl_stream *st;
    while ((st = ready_top(s)) && budget > SL_FRAME_HDR_LEN && !s->fatal) {
        size_t before = sl_outq_pending(&s->out);
        uint32_t id = st->id;
        int rv = pull_data(s, st, budget - SL_FRAME_HDR_LEN);
        if (rv < 0)
            return rv;
        if (rv == 0 && ready_top(s) == st)
            break; /* the connection window is closed: all wait for it */
        /* Less than before when a reset took the stream's DATA out. */
        size_t after = sl_outq_pending(&s->out);
        size_t added = after > before ? after - before : 0;
        budget = added < budget ? budget - added : 0;
        /* One frame at a time, then the most urgent ready stream again: an
         * urgent stream that becomes ready waits at most one frame. */
        if (rv == 1 && (st = sl_session_stream(s, id)) && st->in_ready)
            sl_sched_sent(&s->sched, &st->sn);
    }
    return 0;
}

int sluice_session_output(sluice_session *s, sluice_iovec *iov, int iovcnt,
                          size_t max_bytes, uint64_t now)
{
    if (!s || !iov || iovcnt <= 0)
        return SLUICE_ERR_INVAL;
    s->now = now;
    /* §5.4.1: after a GOAWAY for an error the connection closes; DATA
     * queued behind it would never be of use. */
    if (s->fatal) {
        size_t frames = 0;
        sl_outq_drop_data(&s->out, 0, &frames);
        s->stats.frames_out -= frames;
    }
    size_t pending = sl_outq_pending(&s->out);
    if (pending < max_bytes) {
        int rv = fill_data(s, max_bytes - pending);
        if (rv < 0)
            return rv;
    }
    return sl_outq_iov(&s->out, (sl_iovec *)iov, iovcnt, max_bytes);
}

int sluice_session_output_done(sluice_session *s, size_t written)
{
    if (!s)
        return SLUICE_ERR_INVAL;
    int rv = sl_outq_consume(&s->out, written);
    if (rv == 0)
        s->stats.bytes_out += written;
    return rv;
}

int sluice_session_want_write(const sluice_session *s)
{
    if (!s)
        return 0;
    if (sl_outq_pending(&s->out) > 0)
        return 1;
    return !s->fatal && ready_top(s) != NULL && s->send_window > 0;
}

/* ---- submit calls -------------------------------------------------------- */

sl_stream *sl_session_new_stream(sluice_session *s, uint32_t id, int peer)
{
    sl_stream *st = sl_calloc(&s->mem, sizeof(*st));
    if (!st)
        return NULL;
    st->id = id;
    st->peer_initiated = peer ? 1 : 0;
    st->send_window = s->remote.initial_window_size;
    st->recv_window = s->local.initial_window_size;
    st->recv_target = s->local.initial_window_size;
    st->content_length = -1;
    sl_sched_node_init(&st->sn, id);
    if (sl_stream_map_put(&s->streams, st) != 0) {
        sl_free(&s->mem, st);
        return NULL;
    }
    if (peer)
        s->peer_streams++;
    else
        s->local_streams++;
    s->stats.streams_total++;
    return st;
}

static void set_source(sluice_session *s, sl_stream *st, const sluice_data_source *src)
{
    st->has_source = 1;
    st->source = *src;
    sl_session_ready_add(s, st);
}

int sluice_session_submit_request(sluice_session *s, const sluice_nv *nv, size_t n,
                                  const sluice_data_source *source, uint32_t *stream_id)
{
    if (!s || s->role != SLUICE_ROLE_CLIENT || (n && !nv) || (source && !source->read))
        return SLUICE_ERR_INVAL;
    if (s->fatal || s->goaway_received || s->goaway_phase)
        return SLUICE_ERR_STATE;
    if (s->local_streams >= s->remote.max_concurrent_streams ||
        s->next_local_stream > SL_MAX_WINDOW)
        return SLUICE_ERR_LIMIT;
    sl_http_request req;
    if (sl_http_check_request(nv, n, 0, &req) != 0 || check_fields(nv, n) != 0)
        return SLUICE_ERR_INVAL;
    sl_stream *st = sl_session_new_stream(s, s->next_local_stream, 0);
    if (!st)
        return SLUICE_ERR_NOMEM;
    s->next_local_stream += 2;
    st->is_head = req.is_head ? 1 : 0;
    st->headers_sent = 1;
    int rv = sl_session_send_headers(s, st->id, nv, n, source == NULL);
    if (rv != 0) {
        sl_session_close_stream(s, st, SLUICE_H2_INTERNAL_ERROR);
        return rv;
    }
    if (source)
        set_source(s, st, source);
    else
        st->send_closed = 1;
    if (stream_id)
        *stream_id = st->id;
    return 0;
}

static sl_stream *server_stream(sluice_session *s, uint32_t id)
{
    if (!s || s->role != SLUICE_ROLE_SERVER || s->fatal)
        return NULL;
    sl_stream *st = sl_session_stream(s, id);
    if (!st || st->send_closed || st->headers_sent)
        return NULL;
    return st;
}

int sluice_session_submit_response(sluice_session *s, uint32_t stream_id,
                                   const sluice_nv *nv, size_t n,
                                   const sluice_data_source *source)
{
    if ((n && !nv) || (source && !source->read))
        return SLUICE_ERR_INVAL;
    sl_stream *st = server_stream(s, stream_id);
    if (!st)
        return s && !s->fatal ? SLUICE_ERR_NOT_FOUND : SLUICE_ERR_STATE;
    sl_http_response res;
    if (sl_http_check_response(nv, n, &res) != 0 || res.status < 200 || check_fields(nv, n) != 0)
        return SLUICE_ERR_INVAL;
    /* A promised stream opens with its response (§5.1), room permitting. */
    int rv = st->reserved ? sl_push_open(s, st) : 0;
    if (rv != 0)
        return rv;
    response_priority(s, st, nv, n);
    rv = sl_session_send_headers(s, st->id, nv, n, source == NULL);
    if (rv != 0)
        return rv;
    st->headers_sent = 1;
    if (source)
        set_source(s, st, source);
    else
        local_end(s, st);
    return 0;
}

int sluice_session_submit_info(sluice_session *s, uint32_t stream_id, const sluice_nv *nv,
                               size_t n)
{
    if (n && !nv)
        return SLUICE_ERR_INVAL;
    sl_stream *st = server_stream(s, stream_id);
    if (!st)
        return s && !s->fatal ? SLUICE_ERR_NOT_FOUND : SLUICE_ERR_STATE;
    sl_http_response res;
    if (sl_http_check_response(nv, n, &res) != 0 || res.status >= 200 || res.status == 101 ||
        check_fields(nv, n) != 0)
        return SLUICE_ERR_INVAL;
    if (st->reserved) /* a promise opens with its final response */
        return SLUICE_ERR_STATE;
    return sl_session_send_headers(s, st->id, nv, n, 0);
}

/* Trailers are copied: they may go out long after this call returns. */
static int copy_trailers(sluice_session *s, sl_stream *st, const sluice_nv *nv, size_t n)
{
    size_t bytes = n * sizeof(sluice_nv);
    for (size_t i = 0; i < n; i++)
        bytes += nv[i].name_len + nv[i].value_len;
    sluice_nv *t = sl_malloc(&s->mem, bytes ? bytes : 1);
    if (!t)
        return SLUICE_ERR_NOMEM;
    uint8_t *p = (uint8_t *)(t + n);
    for (size_t i = 0; i < n; i++) {
        t[i] = nv[i];
        memcpy(p, nv[i].name, nv[i].name_len);
        t[i].name = p;
        p += nv[i].name_len;
        if (nv[i].value_len)
            memcpy(p, nv[i].value, nv[i].value_len);
        t[i].value = p;
        p += nv[i].value_len;
    }
    st->trailers = t;
    st->ntrailers = n;
    return 0;
}

int sluice_session_submit_trailers(sluice_session *s, uint32_t stream_id,
                                   const sluice_nv *nv, size_t n)
{
    if (!s || (n && !nv))
        return SLUICE_ERR_INVAL;
    sl_stream *st = sl_session_stream(s, stream_id);
    if (!st || s->fatal)
        return SLUICE_ERR_NOT_FOUND;
    if (st->send_closed || !st->headers_sent || !st->has_source || st->trailers)
        return SLUICE_ERR_STATE;
    if (sl_http_check_trailers(nv, n) != 0 || check_fields(nv, n) != 0)
        return SLUICE_ERR_INVAL;
    int rv = copy_trailers(s, st, nv, n);
    if (rv == 0 && st->awaiting_trailers)
        rv = send_trailers(s, st);
    return rv;
}

int sluice_session_resume_data(sluice_session *s, uint32_t stream_id)
{
    sl_stream *st = s ? sl_session_stream(s, stream_id) : NULL;
    if (!st)
        return SLUICE_ERR_NOT_FOUND;
    if (!st->has_source || st->source_eof || st->send_closed)
        return SLUICE_ERR_STATE;
    st->source_deferred = 0;
    sl_session_ready_add(s, st);
    return 0;
}

int sluice_session_submit_rst(sluice_session *s, uint32_t stream_id, uint32_t error_code)
{
    sl_stream *st = s ? sl_session_stream(s, stream_id) : NULL;
    if (!st)
        return SLUICE_ERR_NOT_FOUND;
    int rv = sl_session_send_rst(s, stream_id, error_code);
    st = sl_session_stream(s, stream_id); /* on_data_sent may have closed it */
    if (rv == 0 && st)
        sl_session_close_stream(s, st, error_code == SLUICE_H2_NO_ERROR ?
                                           SLUICE_H2_CANCEL : error_code);
    return rv;
}

int sluice_session_submit_ping(sluice_session *s, const uint8_t opaque[8])
{
    static const uint8_t zero[8];
    uint8_t f[SL_FRAME_HDR_LEN + 8];
    if (!s)
        return SLUICE_ERR_INVAL;
    long n = sl_frame_encode_ping(f, sizeof(f), opaque ? opaque : zero, 0);
    return n < 0 ? (int)n : sl_session_queue_control(s, f, (size_t)n);
}

int sluice_session_submit_settings(sluice_session *s, const uint32_t *ids_values, size_t n)
{
    sl_setting v[SL_MAX_SETTINGS];
    if (!s || n > SL_MAX_SETTINGS || (n && !ids_values))
        return SLUICE_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids_values[2 * i], val = ids_values[2 * i + 1];
        if (id > 0xffff || sl_settings_check((uint16_t)id, val) != 0 ||
            (id == SL_SETTINGS_ENABLE_PUSH && val != 0))
            return SLUICE_ERR_INVAL;
        v[i] = (sl_setting){(uint16_t)id, val};
    }
    return sl_session_send_settings(s, v, n);
}

int sluice_session_goaway(sluice_session *s, uint32_t error_code, const char *debug,
                          int graceful)
{
    if (!s)
        return SLUICE_ERR_INVAL;
    if (s->goaway_phase == 2 || s->fatal)
        return SLUICE_ERR_STATE;
    if (!graceful || error_code != SLUICE_H2_NO_ERROR)
        return sl_session_send_goaway(s, s->last_peer_stream, error_code, debug);
    if (s->goaway_phase == 1)
        return 0;
    /* §6.8: a first GOAWAY with 2^31-1 and a PING; streams the peer opens
     * meanwhile are still served; the final GOAWAY follows the PING ACK. */
    uint8_t f[SL_FRAME_HDR_LEN + 8];
    long n = sl_frame_encode_goaway(f, sizeof(f), SL_MAX_WINDOW, SLUICE_H2_NO_ERROR,
                                    (const uint8_t *)debug, 0);
    int rv = n < 0 ? (int)n
                   : sl_outq_append_control(&s->out, f, (size_t)n, 0, SL_OUTQ_AFTER_BLOCKS);
    if (rv != 0)
        return rv;
    memcpy(s->goaway_ping, "sl-drain", 8);
    rv = sluice_session_submit_ping(s, s->goaway_ping);
    if (rv != 0)
        return rv;
    s->goaway_phase = 1;
    s->goaway_ping_at = s->now;
    s->stats.goaway_sent = 1;
    s->stats.goaway_sent_code = SLUICE_H2_NO_ERROR;
    return 0;
}

/* ---- priorities ----------------------------------------------------------- */

int sluice_session_set_priority(sluice_session *s, uint32_t stream_id, int urgency,
                                int incremental)
{
    if (!s || urgency < 0 || urgency > 7)
        return SLUICE_ERR_INVAL;
    sl_stream *st = sl_session_stream(s, stream_id);
    if (!st)
        return SLUICE_ERR_NOT_FOUND;
    sl_sched_set(&s->sched, &st->sn, urgency, incremental != 0);
    return 0;
}

int sluice_session_get_priority(const sluice_session *s, uint32_t stream_id, int *urgency,
                                int *incremental)
{
    const sl_stream *st = s ? sl_session_stream(s, stream_id) : NULL;
    if (!st)
        return SLUICE_ERR_NOT_FOUND;
    if (urgency)
        *urgency = st->sn.urgency;
    if (incremental)
        *incremental = st->sn.incremental;
    return 0;
}

/* RFC 9218 §8: a server's `priority` response field (from the origin
 * behind a proxy, say) changes how this stream is scheduled. */
static void response_priority(sluice_session *s, sl_stream *st, const sluice_nv *nv, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (nv[i].name_len == 8 && memcmp(nv[i].name, "priority", 8) == 0) {
            int u = st->sn.urgency, inc = st->sn.incremental;
            if (sluice_priority_parse(nv[i].value, nv[i].value_len, &u, &inc) == 0)
                sl_sched_set(&s->sched, &st->sn, u, inc);
        }
}
