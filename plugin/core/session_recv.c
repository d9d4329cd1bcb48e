/* session_recv.c — what a session does with each frame it receives: the
 * stream state machine (RFC 9113 §5.1), flow control (§6.9), SETTINGS,
 * PING, GOAWAY, header blocks, and the abuse budgets around them. */
#include <string.h>

#include "http.h"
#include "priority.h"
#include "push.h"
#include "session.h"

#define CONN_ERR(s, code, why) sl_session_conn_error((s), sl_h2_to_err(code), (code), (why))

static int sl_h2_to_err(uint32_t code)
{
    switch (code) {
    case SLUICE_H2_FRAME_SIZE_ERROR: return SLUICE_ERR_FRAME_SIZE;
    case SLUICE_H2_FLOW_CONTROL_ERROR: return SLUICE_ERR_FLOW_CONTROL;
    case SLUICE_H2_STREAM_CLOSED: return SLUICE_ERR_STREAM_CLOSED;
    case SLUICE_H2_COMPRESSION_ERROR: return SLUICE_ERR_COMPRESSION;
    case SLUICE_H2_ENHANCE_YOUR_CALM: return SLUICE_ERR_CALM;
    case SLUICE_H2_INTERNAL_ERROR: return SLUICE_ERR_INTERNAL;
    default: return SLUICE_ERR_PROTOCOL;
    }
}

static int calm(sluice_session *s, const char *why)
{
    return sl_session_conn_error(s, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM, why);
}

/* A stream id that neither side has used yet (§5.1 "idle"). */
static int is_idle(const sluice_session *s, uint32_t id)
{
    int peer_parity = (id & 1) == (s->role == SLUICE_ROLE_SERVER ? 1u : 0u);
    if (peer_parity)
        return id > s->last_peer_stream;
    return id >= s->next_local_stream;
}

/* Frames on a stream we reset recently, or on one the peer opened after
 * our final GOAWAY (§6.8), may be in flight through no fault of the peer:
 * they are dropped without an answer. */
static int ignored(const sluice_session *s, uint32_t id)
{
    int peer_parity = (id & 1) == (s->role == SLUICE_ROLE_SERVER ? 1u : 0u);
    if (peer_parity && s->goaway_phase == 2 && id > s->goaway_last_id)
        return 1;
    return sl_session_recently_reset(s, id);
}

/* ---- DATA (§6.1) --------------------------------------------------------- */

/* Bytes the application will never see (padding, data on streams that
 * are gone) go straight back to the connection window: they were charged
 * to it but never buffered, so the credit computation gives them back. */
static int release_conn(sluice_session *s)
{
    return sl_session_credit(s, NULL);
}

static int end_of_stream(sluice_session *s, sl_stream *st)
{
    if (st->content_length >= 0 && st->data_received != (uint64_t)st->content_length)
        return sl_session_stream_error(s, st->id, SLUICE_H2_PROTOCOL_ERROR,
                                       "content-length does not match DATA"); /* §8.1.1 */
    uint32_t id = st->id;
    st->recv_closed = 1;
    if (s->cb.on_stream_end) {
        int rv = s->cb.on_stream_end(s, id, s->ud);
        if (rv < 0)
            return rv;
    }
    st = sl_session_stream(s, id); /* the callback may have reset it */
    if (st && st->send_closed)
        sl_session_close_stream(s, st, SLUICE_H2_NO_ERROR);
    return 0;
}

static int on_data(sluice_session *s, const sl_frame *f)
{
    uint32_t len = f->length;
    if (len > s->recv_window) /* §6.9.1 */
        return CONN_ERR(s, SLUICE_H2_FLOW_CONTROL_ERROR, "DATA beyond connection window");
    s->recv_window -= len;
    sl_stream *st = sl_session_stream(s, f->stream_id);
    if (!st) {
        if (is_idle(s, f->stream_id))
            return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "DATA on idle stream");
        int rv = release_conn(s);
        if (rv == 0 && !ignored(s, f->stream_id))
            rv = sl_session_stream_error(s, f->stream_id, SLUICE_H2_STREAM_CLOSED,
                                         "DATA on closed stream");
        return rv;
    }
    if (st->reserved) /* §5.1: reserved (local) */
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "DATA on a promised stream");
    if (st->recv_closed || (!st->peer_initiated && !st->final_received)) {
        release_conn(s);
        return sl_session_stream_error(s, st->id, st->recv_closed ? SLUICE_H2_STREAM_CLOSED
                                                                  : SLUICE_H2_PROTOCOL_ERROR,
                                       "DATA not allowed in this state");
    }
    if (len > st->recv_window) {
        release_conn(s);
        return sl_session_stream_error(s, st->id, SLUICE_H2_FLOW_CONTROL_ERROR,
                                       "DATA beyond stream window");
    }
    st->recv_window -= len;
    size_t n = f->u.data.len;
    int end = (f->flags & SL_FLAG_END_STREAM) != 0;
    if (n == 0 && !end && !sl_bucket_take(&s->b_empty_data, s->now))
        return calm(s, "empty DATA flood");
    st->data_received += n;
    if (st->content_length >= 0 && st->data_received > (uint64_t)st->content_length)
        return sl_session_stream_error(s, st->id, SLUICE_H2_PROTOCOL_ERROR,
                                       "DATA beyond content-length");
    if (st->is_head && n > 0)
        return sl_session_stream_error(s, st->id, SLUICE_H2_PROTOCOL_ERROR,
                                       "DATA in a response to HEAD");
    if (n > 0) {
        st->recv_buffered += n;
        s->recv_buffered += n;
        if (s->cb.on_data) {
            int rv = s->cb.on_data(s, st->id, f->u.data.data, n, s->ud);
            if (rv < 0)
                return rv;
            st = sl_session_stream(s, f->stream_id);
            if (!st)
                return 0;
        }
        if (s->opt.auto_consume) {
            st->recv_buffered -= n;
            s->recv_buffered -= n;
            int rv = sl_session_consumed(s, n);
            if (rv != 0)
                return rv;
        }
    }
    int rv = sl_session_rtt_probe(s);
    if (rv == 0)
        rv = sl_session_credit(s, st); /* padding and auto-consumed bytes */
    if (rv == 0 && end)
        rv = end_of_stream(s, st);
    return rv;
}

/* ---- header blocks (§4.3, §6.2, §6.10) ---------------------------------- */

static int hb_append(sluice_session *s, const uint8_t *p, size_t n)
{
    sl_hblock *hb = &s->hb;
    if (hb->len + n > s->opt.max_header_block_size)
        return calm(s, "header block too large");
    if (sl_grow(&s->mem, &hb->buf, &hb->cap, hb->len + n, 1024) != 0)
        return SLUICE_ERR_NOMEM;
    if (n)
        memcpy(hb->buf + hb->len, p, n);
    hb->len += n;
    return 0;
}

static int fields_reserve(sluice_session *s, size_t bytes)
{
    sl_fields *fl = &s->fields;
    if (sl_grow(&s->mem, &fl->buf, &fl->cap, fl->len + bytes, 1024) != 0)
        return SLUICE_ERR_NOMEM;
    if (fl->n == fl->cap_nv) {
        size_t cap = fl->cap_nv ? fl->cap_nv * 2 : 32;
        sluice_nv *nv = sl_realloc(&s->mem, fl->nv, cap * sizeof(*nv));
        if (!nv)
            return SLUICE_ERR_NOMEM;
        fl->nv = nv;
        fl->cap_nv = cap;
    }
    return 0;
}

/* HPACK emit: copy out, storing offsets (the buffer may move). */
static int collect_field(void *ud, const sluice_nv *nv)
{
    sluice_session *s = ud;
    sl_fields *fl = &s->fields;
    /* One byte more, so the buffer exists even for empty fields. */
    int rv = fields_reserve(s, nv->name_len + nv->value_len + 1);
    if (rv != 0)
        return rv;
    sluice_nv *out = &fl->nv[fl->n++];
    *out = *nv;
    out->name = (const uint8_t *)(uintptr_t)fl->len;
    if (nv->name_len)
        memcpy(fl->buf + fl->len, nv->name, nv->name_len);
    fl->len += nv->name_len;
    out->value = (const uint8_t *)(uintptr_t)fl->len;
    if (nv->value_len)
        memcpy(fl->buf + fl->len, nv->value, nv->value_len);
    fl->len += nv->value_len;
    return 0;
}

/* Decode the assembled block. Returns 0, 1 when the list was over our
 * limit (fields dropped, HPACK still in sync), or a connection error. */
static int decode_block(sluice_session *s)
{
    sl_fields *fl = &s->fields;
    fl->len = fl->n = 0;
    int rv = sluice_hpack_decode(s->dec, s->hb.buf, s->hb.len, collect_field, s);
    if (rv == SLUICE_ERR_NOMEM)
        return rv;
    if (rv != 0 && rv != SLUICE_ERR_HEADER_LIST_TOO_LARGE)
        return sl_session_conn_error(s, SLUICE_ERR_COMPRESSION, SLUICE_H2_COMPRESSION_ERROR,
                                     sluice_strerror(rv));
    for (size_t i = 0; i < fl->n; i++) {
        fl->nv[i].name = fl->buf + (uintptr_t)fl->nv[i].name;
        fl->nv[i].value = fl->buf + (uintptr_t)fl->nv[i].value;
    }
    return rv == SLUICE_ERR_HEADER_LIST_TOO_LARGE ? 1 : 0;
}

static int deliver(sluice_session *s, sl_stream *st, int kind, int end_stream)
{
    uint32_t id = st->id;
    if (s->cb.on_headers) {
        int rv = s->cb.on_headers(s, id, kind, s->fields.nv, s->fields.n, end_stream, s->ud);
        if (rv < 0)
            return rv;
    }
    if (!end_stream)
        return 0;
    st = sl_session_stream(s, id); /* the callback may have reset it */
    return st ? end_of_stream(s, st) : 0;
}

static int trailers(sluice_session *s, sl_stream *st, int end_stream, int too_large)
{
    if (!end_stream) /* §8.1: trailers end the stream */
        return sl_session_stream_error(s, st->id, SLUICE_H2_PROTOCOL_ERROR,
                                       "trailers without END_STREAM");
    if (too_large)
        return sl_session_stream_error(s, st->id, SLUICE_H2_CANCEL, "trailers too large");
    const char *why = NULL;
    if (sl_http_check_trailers_why(s->fields.nv, s->fields.n, &why) != 0)
        return sl_session_stream_error(s, st->id, SLUICE_H2_PROTOCOL_ERROR, why);
    return deliver(s, st, SLUICE_HEADERS_TRAILERS, 1);
}

/* §8.1.1 / RFC 9113 §10.5.1: a request over our header list limit is
 * answered 431 without reaching the application. */
static int reject_431(sluice_session *s, uint32_t id, int end_stream)
{
    static const sluice_nv nv[] = {{(const uint8_t *)":status", (const uint8_t *)"431", 7, 3, 0}};
    sl_session_log(s, SLUICE_LOG_INFO, "stream %u: request header list too large: 431", id);
    if (!sl_bucket_take(&s->b_rst_provoked, s->now))
        return calm(s, "too many oversized requests");
    int rv = sl_session_send_headers(s, id, nv, 1, 1);
    if (rv == 0 && !end_stream) /* §8.1: stop the body without error */
        rv = sl_session_send_rst(s, id, SLUICE_H2_NO_ERROR);
    s->reset_ring[s->reset_pos] = id;
    s->reset_pos = (s->reset_pos + 1) % SL_RESET_RING;
    return rv;
}

/* ---- priority signals (RFC 9218, RFC 7540 §5.3) ---------------------------- */

/* RFC 7540 signals count until the client shows it speaks RFC 9218 or
 * says it sends none (SETTINGS_NO_RFC7540_PRIORITIES, RFC 9218 §2.1). */
static int use_7540(const sluice_session *s)
{
    return !s->rfc9218_seen && s->remote.no_rfc7540_priorities != 1;
}

/* A new request's priority: its `priority` field, else RFC 7540 fields on
 * HEADERS; then a PRIORITY_UPDATE that came before the request. */
static void request_priority(sluice_session *s, sl_stream *st)
{
    int u = SLUICE_URGENCY_DEFAULT, inc = 0, have = 0;
    for (size_t i = 0; i < s->fields.n; i++) {
        const sluice_nv *f = &s->fields.nv[i];
        if (f->name_len == 8 && memcmp(f->name, "priority", 8) == 0) {
            have = 1;
            sluice_priority_parse(f->value, f->value_len, &u, &inc); /* bad: defaults */
        }
    }
    if (have)
        s->rfc9218_seen = 1;
    else if (s->hb.has_pri && use_7540(s))
        u = sl_priority_from_weight(s->hb.pri.weight);
    else
        have = s->hb.has_pri && use_7540(s);
    for (size_t i = 0; i < sizeof(s->prio_idle) / sizeof(s->prio_idle[0]); i++)
        if (s->prio_idle[i].id == st->id) {
            u = s->prio_idle[i].urgency;
            inc = s->prio_idle[i].incremental;
            s->prio_idle[i].id = 0;
            have = 1;
        }
    st->prio_signalled = have != 0;
    st->sn.urgency = (uint8_t)u;
    st->sn.incremental = (uint8_t)inc;
}

/* CVE-2019-9513 ("resource loop"): changes are cheap, and bounded. */
static int reprioritize(sluice_session *s, sl_stream *st, int u, int inc)
{
    st->prio_signalled = 1;
    if (st->sn.urgency == u && st->sn.incremental == inc)
        return 0;
    if (!sl_bucket_take(&s->b_reprioritize, s->now))
        return calm(s, "priority change flood");
    sl_sched_set(&s->sched, &st->sn, u, inc);
    return 0;
}

static int new_request(sluice_session *s, uint32_t id, int end_stream, int too_large)
{
    if (!(id & 1) || id <= s->last_peer_stream)
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "bad stream id for a new stream");
    s->last_peer_stream = id;
    if (s->goaway_phase == 2 && id > s->goaway_last_id)
        return 0; /* §6.8: ignored after our final GOAWAY */
    if (s->peer_streams >= s->local.max_concurrent_streams ||
        s->peer_streams >= s->opt.max_concurrent_streams) /* §5.1.2 */
        return sl_session_stream_error(s, id, SLUICE_H2_REFUSED_STREAM,
                                       "too many concurrent streams");
    if (too_large)
        return reject_431(s, id, end_stream);
    if (s->hb.has_pri && s->hb.pri.dep_stream_id == id) /* RFC 9113 §5.3.1 */
        return sl_session_stream_error(s, id, SLUICE_H2_PROTOCOL_ERROR,
                                       "HEADERS stream depends on itself");
    sl_http_request req;
    if (sl_http_check_request(s->fields.nv, s->fields.n, 0, &req) != 0)
        return sl_session_stream_error(s, id, SLUICE_H2_PROTOCOL_ERROR, req.reason);
    sl_stream *st = sl_session_new_stream(s, id, 1);
    if (!st)
        return SLUICE_ERR_NOMEM;
    st->content_length = req.content_length;
    st->push_key = sl_push_key(&req); /* not to be pushed while open */
    request_priority(s, st);
    return deliver(s, st, SLUICE_HEADERS_REQUEST, end_stream);
}

static int response(sluice_session *s, sl_stream *st, int end_stream, int too_large)
{
    if (too_large)
        return sl_session_stream_error(s, st->id, SLUICE_H2_CANCEL, "response headers too large");
    sl_http_response res;
    if (sl_http_check_response(s->fields.nv, s->fields.n, &res) != 0)
        return sl_session_stream_error(s, st->id, SLUICE_H2_PROTOCOL_ERROR, res.reason);
    if (res.status < 200) {
        if (end_stream) /* §8.1: 1xx never ends a stream */
            return sl_session_stream_error(s, st->id, SLUICE_H2_PROTOCOL_ERROR,
                                           "informational response with END_STREAM");
        return deliver(s, st, SLUICE_HEADERS_INFO, 0);
    }
    st->final_received = 1;
    if (!st->is_head && res.status != 204 && res.status != 304)
        st->content_length = res.content_length;
    return deliver(s, st, SLUICE_HEADERS_RESPONSE, end_stream);
}

static int header_block_done(sluice_session *s)
{
    sl_hblock *hb = &s->hb;
    hb->active = 0;
    int too_large = decode_block(s);
    if (too_large < 0)
        return too_large;
    uint32_t id = hb->stream_id;
    sl_stream *st = sl_session_stream(s, id);
    if (!st) {
        if (s->role == SLUICE_ROLE_SERVER && is_idle(s, id))
            return new_request(s, id, hb->end_stream, too_large);
        if (is_idle(s, id))
            return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "HEADERS on idle stream");
        if (ignored(s, id))
            return 0;
        if (sl_session_recently_closed(s, id))
            return CONN_ERR(s, SLUICE_H2_STREAM_CLOSED, "HEADERS on closed stream");
        /* §5.1.1: an id below one already used that never was a stream */
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "stream id not increasing");
    }
    if (st->reserved) /* §5.1: reserved (local) */
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "HEADERS on a promised stream");
    if (st->recv_closed)
        return sl_session_stream_error(s, id, SLUICE_H2_STREAM_CLOSED,
                                       "HEADERS after END_STREAM");
    if (hb->has_pri && hb->pri.dep_stream_id == id) /* RFC 9113 §5.3.1 */
        return sl_session_stream_error(s, id, SLUICE_H2_PROTOCOL_ERROR,
                                       "HEADERS stream depends on itself");
    if (s->role == SLUICE_ROLE_CLIENT && !st->final_received)
        return response(s, st, hb->end_stream, too_large);
    return trailers(s, st, hb->end_stream, too_large);
}

static int on_headers(sluice_session *s, const sl_frame *f)
{
    sl_hblock *hb = &s->hb;
    hb->len = 0;
    hb->frames = 0;
    hb->active = 1;
    hb->started_at = s->now;
    hb->stream_id = f->stream_id;
    hb->end_stream = (f->flags & SL_FLAG_END_STREAM) != 0;
    hb->has_pri = f->u.headers.has_priority;
    hb->pri = f->u.headers.pri;
    int rv = hb_append(s, f->u.headers.block, f->u.headers.len);
    if (rv == 0 && (f->flags & SL_FLAG_END_HEADERS))
        rv = header_block_done(s);
    return rv;
}

static int on_continuation(sluice_session *s, const sl_frame *f)
{
    sl_hblock *hb = &s->hb;
    /* CVE-2024-27316 style floods: many tiny CONTINUATION frames. */
    if (++hb->frames > s->opt.max_continuation_frames)
        return calm(s, "too many CONTINUATION frames");
    int rv = hb_append(s, f->u.continuation.block, f->u.continuation.len);
    if (rv == 0 && (f->flags & SL_FLAG_END_HEADERS))
        rv = header_block_done(s);
    return rv;
}

/* ---- control frames ------------------------------------------------------ */

static int on_rst_stream(sluice_session *s, const sl_frame *f)
{
    if (is_idle(s, f->stream_id))
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "RST_STREAM on idle stream");
    s->stats.rst_received++;
    /* Rapid reset (CVE-2023-44487): open and cancel at once, forever. A
     * server's promised streams do not count: the client cannot make more
     * of them, and cancelling unwanted pushes is what RFC 9113 §8.4.2
     * asks of it. */
    int promised = s->role == SLUICE_ROLE_SERVER && f->stream_id % 2 == 0;
    if (!promised && !sl_bucket_take(&s->b_rst_received, s->now))
        return calm(s, "RST_STREAM flood");
    sl_stream *st = sl_session_stream(s, f->stream_id);
    if (st)
        sl_session_close_stream(s, st, f->u.rst_stream.error_code);
    return 0;
}

struct send_delta { sluice_session *s; int64_t delta; int overflow; };

static void apply_send_delta(sl_stream *st, void *ud)
{
    struct send_delta *sd = ud;
    st->send_window += sd->delta;
    if (st->send_window > SL_MAX_WINDOW)
        sd->overflow = 1;
    if (sd->delta > 0 && st->has_source && !st->source_deferred && !st->source_eof &&
        !st->send_closed)
        sl_session_ready_add(sd->s, st);
}

static int apply_remote_setting(sluice_session *s, const sl_setting *v)
{
    switch (v->id) {
    case SL_SETTINGS_HEADER_TABLE_SIZE:
        s->remote.header_table_size = v->value;
        return sluice_hpack_encoder_set_max_table_size(s->enc, v->value);
    case SL_SETTINGS_ENABLE_PUSH:
        if (s->role == SLUICE_ROLE_CLIENT && v->value != 0) /* §6.5.2 */
            return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "server sent ENABLE_PUSH");
        s->remote.enable_push = v->value;
        return 0;
    case SL_SETTINGS_MAX_CONCURRENT_STREAMS: s->remote.max_concurrent_streams = v->value; return 0;
    case SL_SETTINGS_INITIAL_WINDOW_SIZE: {
        struct send_delta sd = {s, (int64_t)v->value - s->remote.initial_window_size, 0};
        s->remote.initial_window_size = v->value;
        sl_stream_map_each(&s->streams, apply_send_delta, &sd);
        if (sd.overflow) /* §6.9.2 */
            return CONN_ERR(s, SLUICE_H2_FLOW_CONTROL_ERROR, "window overflow from SETTINGS");
        return 0;
    }
    case SL_SETTINGS_MAX_FRAME_SIZE: s->remote.max_frame_size = v->value; return 0;
    case SL_SETTINGS_MAX_HEADER_LIST_SIZE: s->remote.max_header_list_size = v->value; return 0;
    case SL_SETTINGS_NO_RFC7540_PRIORITIES: s->remote.no_rfc7540_priorities = v->value; return 0;
    default: return 0; /* §6.5.2: unknown settings are ignored */
    }
}

static int on_settings(sluice_session *s, const sl_frame *f)
{
    if (f->flags & SL_FLAG_ACK) {
        if (s->npending == 0)
            return 0;
        if (s->now >= s->pending[0].sent_at) /* a round trip, for the window tuner */
            sl_wtune_rtt_sample(&s->wtune, s->now - s->pending[0].sent_at);
        sl_session_apply_local_settings(s, &s->pending[0]);
        memmove(&s->pending[0], &s->pending[1], (s->npending - 1) * sizeof(s->pending[0]));
        s->npending--;
        if (s->cb.on_settings_ack)
            return s->cb.on_settings_ack(s, s->ud);
        return 0;
    }
    if (s->settings_received && !sl_bucket_take(&s->b_settings, s->now))
        return calm(s, "SETTINGS flood");
    s->settings_received = 1;
    for (size_t i = 0; i < f->u.settings.n; i++) {
        sl_setting v;
        sl_frame_settings_get(f, i, &v);
        int rv = apply_remote_setting(s, &v);
        if (rv != 0)
            return rv;
    }
    uint8_t ack[SL_FRAME_HDR_LEN];
    long n = sl_frame_encode_settings_ack(ack, sizeof(ack));
    return n < 0 ? (int)n : sl_session_queue_control(s, ack, (size_t)n);
}

static int on_ping(sluice_session *s, const sl_frame *f)
{
    if (f->flags & SL_FLAG_ACK) {
        if (sl_wtune_probe_ack(&s->wtune, f->u.ping.opaque, s->now))
            return 0; /* our RTT probe, not the application's */
        if (s->goaway_phase == 1 && memcmp(f->u.ping.opaque, s->goaway_ping, 8) == 0)
            return sl_session_send_goaway(s, s->last_peer_stream, SLUICE_H2_NO_ERROR, NULL);
        if (s->cb.on_ping_ack)
            return s->cb.on_ping_ack(s, f->u.ping.opaque, s->ud);
        return 0;
    }
    if (!sl_bucket_take(&s->b_ping, s->now))
        return calm(s, "PING flood");
    uint8_t ack[SL_FRAME_HDR_LEN + 8];
    long n = sl_frame_encode_ping(ack, sizeof(ack), f->u.ping.opaque, 1);
    return n < 0 ? (int)n : sl_session_queue_control(s, ack, (size_t)n);
}

struct refuse_ctx { sluice_session *s; uint32_t last; };

static void refuse_above(sl_stream *st, void *ud)
{
    struct refuse_ctx *rc = ud;
    if (!st->peer_initiated && st->id > rc->last)
        sl_session_close_stream(rc->s, st, SLUICE_H2_REFUSED_STREAM);
}

static int on_goaway(sluice_session *s, const sl_frame *f)
{
    uint32_t last = f->u.goaway.last_stream_id;
    if (s->goaway_received && last > s->goaway_received_last) /* §6.8 */
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "GOAWAY raised last stream id");
    s->goaway_received = 1;
    s->goaway_received_last = last;
    s->stats.goaway_received = 1;
    /* Streams we opened above last were never processed: safe to retry. */
    struct refuse_ctx rc = {s, last};
    sl_stream_map_each(&s->streams, refuse_above, &rc);
    if (s->cb.on_goaway)
        return s->cb.on_goaway(s, last, f->u.goaway.error_code, f->u.goaway.debug,
                               f->u.goaway.debug_len, s->ud);
    return 0;
}

static int on_window_update(sluice_session *s, const sl_frame *f)
{
    uint32_t inc = f->u.window_update.increment;
    if (f->stream_id == 0) {
        if (s->send_window + inc > SL_MAX_WINDOW)
            return CONN_ERR(s, SLUICE_H2_FLOW_CONTROL_ERROR, "connection window overflow");
        s->send_window += inc;
        return 0;
    }
    sl_stream *st = sl_session_stream(s, f->stream_id);
    if (!st) {
        if (is_idle(s, f->stream_id))
            return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "WINDOW_UPDATE on idle stream");
        return 0; /* §6.9: may arrive after the stream closed */
    }
    if (st->send_window + inc > SL_MAX_WINDOW)
        return sl_session_stream_error(s, st->id, SLUICE_H2_FLOW_CONTROL_ERROR,
                                       "stream window overflow");
    st->send_window += inc;
    if (st->has_source && !st->source_deferred && !st->source_eof && !st->send_closed)
        sl_session_ready_add(s, st);
    return 0;
}

static int on_priority(sluice_session *s, const sl_frame *f)
{
    if (!sl_bucket_take(&s->b_priority, s->now))
        return calm(s, "PRIORITY flood");
    sl_stream *st = sl_session_stream(s, f->stream_id);
    if (!st || !use_7540(s) || s->role != SLUICE_ROLE_SERVER)
        return 0; /* idle or closed streams: nothing to keep (§5.3 is gone) */
    return reprioritize(s, st, sl_priority_from_weight(f->u.priority.weight),
                        st->sn.incremental);
}

static int on_priority_update(sluice_session *s, const sl_frame *f)
{
    if (s->role == SLUICE_ROLE_CLIENT) /* RFC 9218 §7.1 */
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "PRIORITY_UPDATE sent by a server");
    if (!sl_bucket_take(&s->b_priority, s->now))
        return calm(s, "PRIORITY flood");
    uint32_t id = f->u.priority_update.prioritized_stream_id;
    if (id == 0) /* RFC 9218 §7.1 */
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "PRIORITY_UPDATE for stream 0");
    s->rfc9218_seen = 1;
    sl_stream *st = sl_session_stream(s, id);
    int u = st ? st->sn.urgency : SLUICE_URGENCY_DEFAULT;
    int inc = st ? st->sn.incremental : 0;
    if (sluice_priority_parse(f->u.priority_update.field, f->u.priority_update.len, &u,
                              &inc) != 0)
        return 0; /* §7.1: a field that does not parse is ignored */
    if (st)
        return reprioritize(s, st, u, inc);
    if ((id & 1) && id > s->last_peer_stream) { /* idle: kept for its request */
        size_t k = s->prio_idle_pos++ % (sizeof(s->prio_idle) / sizeof(s->prio_idle[0]));
        s->prio_idle[k].id = id;
        s->prio_idle[k].urgency = (uint8_t)u;
        s->prio_idle[k].incremental = (uint8_t)inc;
    }
    return 0;
}

int sl_session_recv_frame(sluice_session *s, const sl_frame *f)
{
    s->stats.frames_in++;
    if (!s->settings_received && f->type != SL_FRAME_SETTINGS) /* §3.4 */
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "first frame is not SETTINGS");
    if (!s->settings_received && (f->flags & SL_FLAG_ACK))
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "first SETTINGS is an ACK");
    switch (f->type) {
    case SL_FRAME_DATA: return on_data(s, f);
    case SL_FRAME_HEADERS: return on_headers(s, f);
    case SL_FRAME_PRIORITY: return on_priority(s, f);
    case SL_FRAME_RST_STREAM: return on_rst_stream(s, f);
    case SL_FRAME_SETTINGS: return on_settings(s, f);
    case SL_FRAME_PUSH_PROMISE: /* we never enable push (§8.4) */
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "PUSH_PROMISE not enabled");
    case SL_FRAME_PING: return on_ping(s, f);
    case SL_FRAME_GOAWAY: return on_goaway(s, f);
    case SL_FRAME_WINDOW_UPDATE: return on_window_update(s, f);
    case SL_FRAME_CONTINUATION: return on_continuation(s, f);
    case SL_FRAME_PRIORITY_UPDATE: return on_priority_update(s, f);
    default: return 0; /* §5.5: unknown frame types are ignored */
    }
}

/* ---- bytes in ------------------------------------------------------------ */

static long check_preface(sluice_session *s, const uint8_t *in, size_t len)
{
    size_t off = SL_PREFACE_LEN - s->preface_left;
    size_t n = len < s->preface_left ? len : s->preface_left;
    static const char magic[] = SL_PREFACE;
    if (memcmp(in, magic + off, n) != 0)
        return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "invalid connection preface");
    s->preface_left -= n;
    return (long)n;
}

long sluice_session_recv(sluice_session *s, const uint8_t *in, size_t len, uint64_t now)
{
    if (!s || (len && !in))
        return SLUICE_ERR_INVAL;
    s->now = now;
    if (s->fatal)
        return s->fatal;
    size_t off = 0;
    if (s->preface_left) {
        long n = check_preface(s, in, len);
        if (n < 0)
            return n;
        off = (size_t)n;
    }
    while (off < len && !s->fatal) {
        size_t used = 0;
        sl_frame f;
        sl_frame_error e;
        int rv = sl_frame_decode(&s->fd, in + off, len - off, &used, &f, &e);
        off += used;
        if (rv == 0)
            break;
        if (rv < 0 && e.stream_scope) {
            if (!s->settings_received)
                return CONN_ERR(s, SLUICE_H2_PROTOCOL_ERROR, "first frame is not SETTINGS");
            /* §6.4: no RST_STREAM for an idle stream; §5.1 makes it ours */
            if (is_idle(s, e.stream_id))
                rv = sl_session_conn_error(s, e.err, e.h2_code, e.reason);
            else if (ignored(s, e.stream_id))
                rv = 0;
            else
                rv = sl_session_stream_error(s, e.stream_id, e.h2_code, e.reason);
        } else if (rv < 0) {
            rv = sl_session_conn_error(s, e.err, e.h2_code, e.reason);
        } else {
            rv = sl_session_recv_frame(s, &f);
        }
        if (rv < 0) {
            if (!s->fatal) /* a callback failed or memory ran out */
                sl_session_conn_error(s, rv, sluice_error_to_h2(rv), sluice_strerror(rv));
            return rv;
        }
    }
    s->stats.bytes_in += len;
    /* A callback's submit call may have ended the connection. */
    return s->fatal ? s->fatal : (long)len;
}
