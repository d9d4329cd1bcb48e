/* session.c — life cycle of a sluice_session: options and their defaults,
 * creation and teardown, SETTINGS bookkeeping, timers, stream closing. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "session.h"

#define NS_PER_SEC 1000000000ull

void sluice_session_options_init_versioned(size_t struct_size, sluice_session_options *opt)
{
    sluice_session_options d;
    memset(&d, 0, sizeof(d));
    d.struct_size = struct_size;
    d.header_table_size = 4096;
    d.max_concurrent_streams = 100;
    d.initial_window_size = SL_DEFAULT_WINDOW;
    d.max_frame_size = SL_MAX_FRAME_SIZE_MIN;
    d.max_header_list_size = 65536;
    d.connection_window = 1u << 20;
    d.auto_consume = 0;
    d.max_continuation_frames = 32;
    d.max_header_block_size = 4 * 65536;
    d.max_outbound_control = 1u << 20;
    /* A player that seeks cancels a few streams a second at most; the
     * rapid-reset attack needs thousands. */
    d.rst_received = (sluice_rate){200, 50};
    d.rst_provoked = (sluice_rate){100, 20};
    d.ping = (sluice_rate){50, 10};
    d.settings = (sluice_rate){50, 10};
    d.empty_data = (sluice_rate){100, 20};
    d.priority = (sluice_rate){1000, 200};
    d.settings_timeout_ns = 10 * NS_PER_SEC;
    d.goaway_timeout_ns = 2 * NS_PER_SEC;
    d.header_block_timeout_ns = 10 * NS_PER_SEC;
    d.priorities = 1;
    d.enable_push = 1;
    d.window_adaptive = 0;
    d.window_min = SL_DEFAULT_WINDOW;
    d.window_max = 16u << 20;
    d.connection_window_max = 64u << 20;
    d.reprioritize = (sluice_rate){500, 100};
    if (struct_size > sizeof(d))
        struct_size = sizeof(d);
    memcpy(opt, &d, struct_size);
}

static int load_options(sluice_session_options *o, const sluice_session_options *user)
{
    sluice_session_options_init(o);
    if (user && user->struct_size >= sizeof(size_t)) {
        size_t n = user->struct_size < sizeof(*o) ? user->struct_size : sizeof(*o);
        memcpy(o, user, n);
        o->struct_size = sizeof(*o);
    }
    if (sl_settings_check(SL_SETTINGS_INITIAL_WINDOW_SIZE, o->initial_window_size) ||
        sl_settings_check(SL_SETTINGS_MAX_FRAME_SIZE, o->max_frame_size) ||
        o->connection_window < SL_DEFAULT_WINDOW || o->connection_window > SL_MAX_WINDOW ||
        o->max_header_block_size == 0)
        return SLUICE_ERR_INVAL;
    if (o->window_adaptive && (o->window_min == 0 || o->window_min > o->window_max ||
                               o->window_max > SL_MAX_WINDOW ||
                               o->connection_window_max < SL_DEFAULT_WINDOW ||
                               o->connection_window_max > SL_MAX_WINDOW))
        return SLUICE_ERR_INVAL;
    return 0;
}

/* Fixed windows are the tuner with no room to move: it still measures
 * the RTT and the rate for the stats. */
static void init_wtune(sluice_session *s, uint64_t now)
{
    const sluice_session_options *o = &s->opt;
    if (!o->window_adaptive) {
        sl_wtune_init(&s->wtune, o->initial_window_size, o->connection_window,
                      o->initial_window_size, o->initial_window_size, o->connection_window,
                      now);
        return;
    }
    sl_wtune_init(&s->wtune, o->initial_window_size, o->connection_window, o->window_min,
                  o->window_max, o->connection_window_max, now);
    s->recv_target = s->wtune.conn_target; /* never below a stream's */
}

static void load_callbacks(sluice_session_callbacks *cb, const sluice_session_callbacks *user)
{
    memset(cb, 0, sizeof(*cb));
    if (user && user->struct_size >= sizeof(size_t)) {
        size_t n = user->struct_size < sizeof(*cb) ? user->struct_size : sizeof(*cb);
        memcpy(cb, user, n);
    }
}

void sl_session_log(sluice_session *s, int level, const char *fmt, ...)
{
    if (!s->cb.on_log)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->cb.on_log(s, level, msg, s->ud);
}

static void release_borrowed(void *ud, uint32_t stream_id, size_t len)
{
    sluice_session *s = ud;
    if (s->cb.on_data_sent)
        s->cb.on_data_sent(s, stream_id, len, s->ud);
}

/* RFC 9113 §6.5.2 initial values: what each side may assume before any
 * SETTINGS arrives. */
static void settings_initial(sl_settings *st)
{
    st->header_table_size = 4096;
    st->enable_push = 1;
    st->max_concurrent_streams = UINT32_MAX;
    st->initial_window_size = SL_DEFAULT_WINDOW;
    st->max_frame_size = SL_MAX_FRAME_SIZE_MIN;
    st->max_header_list_size = UINT32_MAX;
    st->no_rfc7540_priorities = 0;
}

/* Our first SETTINGS: only what differs from the initial values, plus the
 * limits a peer should know up front. */
static int send_initial_settings(sluice_session *s)
{
    sl_setting v[8];
    size_t n = 0;
    const sluice_session_options *o = &s->opt;
    if (o->header_table_size != 4096)
        v[n++] = (sl_setting){SL_SETTINGS_HEADER_TABLE_SIZE, o->header_table_size};
    if (s->role == SLUICE_ROLE_CLIENT) /* we do not accept push (yet) */
        v[n++] = (sl_setting){SL_SETTINGS_ENABLE_PUSH, 0};
    v[n++] = (sl_setting){SL_SETTINGS_MAX_CONCURRENT_STREAMS, o->max_concurrent_streams};
    if (o->initial_window_size != SL_DEFAULT_WINDOW)
        v[n++] = (sl_setting){SL_SETTINGS_INITIAL_WINDOW_SIZE, o->initial_window_size};
    if (o->max_frame_size != SL_MAX_FRAME_SIZE_MIN)
        v[n++] = (sl_setting){SL_SETTINGS_MAX_FRAME_SIZE, o->max_frame_size};
    v[n++] = (sl_setting){SL_SETTINGS_MAX_HEADER_LIST_SIZE, o->max_header_list_size};
    int rv = sl_session_send_settings(s, v, n);
    if (rv == 0 && s->recv_target > SL_DEFAULT_WINDOW) {
        rv = sl_session_send_window_update(s, 0, s->recv_target - SL_DEFAULT_WINDOW);
        s->recv_window = s->recv_target;
    }
    return rv;
}

static void init_guards(sluice_session *s, uint64_t now)
{
    sl_bucket_init(&s->b_rst_received, s->opt.rst_received, now);
    sl_bucket_init(&s->b_rst_provoked, s->opt.rst_provoked, now);
    sl_bucket_init(&s->b_ping, s->opt.ping, now);
    sl_bucket_init(&s->b_settings, s->opt.settings, now);
    sl_bucket_init(&s->b_empty_data, s->opt.empty_data, now);
    sl_bucket_init(&s->b_priority, s->opt.priority, now);
    sl_bucket_init(&s->b_reprioritize, s->opt.reprioritize, now);
    sl_sched_init(&s->sched, !s->opt.priorities);
}

static int init_codecs(sluice_session *s, const sluice_allocator *alloc)
{
    sluice_hpack_options ho;
    sluice_hpack_options_init(&ho);
    ho.max_header_list_size = s->opt.max_header_list_size;
    int rv = sluice_hpack_encoder_new(&s->enc, &ho, alloc);
    if (rv == 0) /* the table limit rises to ours only once acknowledged */
        rv = sluice_hpack_decoder_new(&s->dec, &ho, alloc);
    sl_frame_decoder_init(&s->fd, &s->mem);
    sl_outq_init(&s->out, &s->mem, release_borrowed, s);
    sl_stream_map_init(&s->streams, &s->mem);
    return rv;
}

int sluice_session_new(sluice_session **out, int role, const sluice_session_callbacks *cb,
                       void *ud, const sluice_session_options *opt,
                       const sluice_allocator *alloc, uint64_t now)
{
    sl_mem mem;
    if (!out || (role != SLUICE_ROLE_SERVER && role != SLUICE_ROLE_CLIENT))
        return SLUICE_ERR_INVAL;
    sl_mem_init(&mem, alloc);
    sluice_session *s = sl_calloc(&mem, sizeof(*s));
    if (!s)
        return SLUICE_ERR_NOMEM;
    s->mem = mem;
    s->role = role;
    s->ud = ud;
    s->now = now;
    int rv = load_options(&s->opt, opt);
    if (rv != 0) {
        sl_free(&mem, s);
        return rv;
    }
    load_callbacks(&s->cb, cb);
    settings_initial(&s->local);
    settings_initial(&s->remote);
    s->local.enable_push = 0; /* we never accept push yet */
    s->preface_left = role == SLUICE_ROLE_SERVER ? SL_PREFACE_LEN : 0;
    s->next_local_stream = role == SLUICE_ROLE_CLIENT ? 1 : 2;
    s->send_window = s->recv_window = SL_DEFAULT_WINDOW;
    s->recv_target = s->opt.connection_window;
    init_wtune(s, now);
    s->stats.struct_size = sizeof(s->stats);
    init_guards(s, now);
    rv = init_codecs(s, alloc);
    if (rv == 0 && role == SLUICE_ROLE_CLIENT)
        rv = sl_outq_append(&s->out, SL_PREFACE, SL_PREFACE_LEN);
    if (rv == 0)
        rv = send_initial_settings(s);
    if (rv != 0) {
        sluice_session_free(s);
        return rv;
    }
    *out = s;
    return 0;
}

static void free_stream(sl_stream *st, void *ud)
{
    sluice_session *s = ud;
    sl_free(&s->mem, st->trailers);
    sl_free(&s->mem, st);
}

/* Streams still open when the session goes: the application hears of
 * each (CANCEL) so it can free what it hung on them. */
static void drop_stream(sl_stream *st, void *ud)
{
    sluice_session *s = ud;
    st->closed = 1;
    if (s->cb.on_stream_close)
        s->cb.on_stream_close(s, st->id, SLUICE_H2_CANCEL, s->ud);
    sl_stream_map_del(&s->streams, st);
    free_stream(st, s);
}

void sluice_session_free(sluice_session *s)
{
    if (!s)
        return;
    /* Callbacks below may call back in; nothing may be queued any more. */
    s->fatal = s->fatal ? s->fatal : SLUICE_ERR_STATE;
    sl_sched_init(&s->sched, !s->opt.priorities);
    sl_stream_map_each(&s->streams, drop_stream, s);
    sl_stream_map_free(&s->streams);
    sl_outq_free(&s->out); /* on_data_sent for borrowed bytes not written */
    sl_frame_decoder_free(&s->fd);
    sluice_hpack_encoder_free(s->enc);
    sluice_hpack_decoder_free(s->dec);
    sl_free(&s->mem, s->scratch);
    sl_free(&s->mem, s->hb.buf);
    sl_free(&s->mem, s->fields.buf);
    sl_free(&s->mem, s->fields.nv);
    sl_free(&s->mem, s);
}

/* Adjust every stream's receive window when our INITIAL_WINDOW_SIZE takes
 * effect (§6.9.2: the peer applies the difference the moment it ACKs). */
struct window_delta { sluice_session *s; int64_t delta; };

static void apply_recv_delta(sl_stream *st, void *ud)
{
    struct window_delta *wd = ud;
    st->recv_window += wd->delta;
    /* A target the application chose stays; the default one follows. */
    int64_t t = st->target_set ? st->recv_target : (int64_t)st->recv_target + wd->delta;
    st->recv_target = (uint32_t)(t < 0 ? 0 : t > SL_MAX_WINDOW ? SL_MAX_WINDOW : t);
    /* A window the ACK pushed below zero with nothing left to consume
     * would wait forever: credit it now (§6.9.2). */
    sl_session_credit(wd->s, st);
}

int sl_session_apply_local_settings(sluice_session *s, const sl_pending_settings *p)
{
    for (size_t i = 0; i < p->n; i++) {
        uint32_t v = p->s[i].value;
        switch (p->s[i].id) {
        case SL_SETTINGS_HEADER_TABLE_SIZE:
            s->local.header_table_size = v;
            sluice_hpack_decoder_set_max_table_size(s->dec, v);
            break;
        case SL_SETTINGS_MAX_CONCURRENT_STREAMS: s->local.max_concurrent_streams = v; break;
        case SL_SETTINGS_INITIAL_WINDOW_SIZE: {
            struct window_delta wd = {s, (int64_t)v - s->local.initial_window_size};
            s->local.initial_window_size = v;
            sl_stream_map_each(&s->streams, apply_recv_delta, &wd);
            break;
        }
        case SL_SETTINGS_MAX_FRAME_SIZE:
            s->local.max_frame_size = v;
            sl_frame_decoder_set_max_frame_size(&s->fd, v);
            break;
        case SL_SETTINGS_MAX_HEADER_LIST_SIZE: s->local.max_header_list_size = v; break;
        default: break;
        }
    }
    return 0;
}

static int in_ring(const uint32_t *ring, uint32_t id)
{
    for (size_t i = 0; i < SL_RESET_RING; i++)
        if (ring[i] == id)
            return 1;
    return 0;
}

int sl_session_recently_reset(const sluice_session *s, uint32_t id)
{
    return in_ring(s->reset_ring, id);
}

int sl_session_recently_closed(const sluice_session *s, uint32_t id)
{
    return in_ring(s->closed_ring, id);
}

/* Remove a stream for good: give back the connection window its unread
 * data held, tell the application (the stream's user data is still there
 * during the call, but no call can use the stream), and free it. */
void sl_session_close_stream(sluice_session *s, sl_stream *st, uint32_t code)
{
    sl_session_ready_del(s, st);
    st->closed = 1;
    if (st->peer_initiated)
        s->peer_streams--;
    else
        s->local_streams--;
    if (st->reserved) /* a promise cancelled before its response */
        s->push_reserved--;
    if (code != SLUICE_H2_NO_ERROR) {
        s->reset_ring[s->reset_pos] = st->id;
        s->reset_pos = (s->reset_pos + 1) % SL_RESET_RING;
    } else {
        s->closed_ring[s->closed_pos] = st->id;
        s->closed_pos = (s->closed_pos + 1) % SL_RESET_RING;
    }
    s->recv_buffered -= st->recv_buffered;
    st->recv_buffered = 0;
    if (s->cb.on_stream_close)
        s->cb.on_stream_close(s, st->id, code, s->ud);
    sl_stream_map_del(&s->streams, st);
    free_stream(st, s);
    sl_session_credit(s, NULL);
}

uint64_t sluice_session_next_deadline(const sluice_session *s)
{
    uint64_t d = UINT64_MAX;
    if (!s || s->fatal)
        return d;
    if (s->npending && s->pending[0].sent_at + s->opt.settings_timeout_ns < d)
        d = s->pending[0].sent_at + s->opt.settings_timeout_ns;
    if (s->goaway_phase == 1 && s->goaway_ping_at + s->opt.goaway_timeout_ns < d)
        d = s->goaway_ping_at + s->opt.goaway_timeout_ns;
    if (s->hb.active && s->hb.started_at + s->opt.header_block_timeout_ns < d)
        d = s->hb.started_at + s->opt.header_block_timeout_ns;
    return d;
}

int sluice_session_handle_timeout(sluice_session *s, uint64_t now)
{
    if (!s)
        return SLUICE_ERR_INVAL;
    s->now = now;
    if (s->fatal)
        return s->fatal;
    if (s->npending && now >= s->pending[0].sent_at + s->opt.settings_timeout_ns)
        return sl_session_conn_error(s, SLUICE_ERR_SETTINGS_TIMEOUT,
                                     SLUICE_H2_SETTINGS_TIMEOUT, "SETTINGS not acknowledged");
    if (s->hb.active && now >= s->hb.started_at + s->opt.header_block_timeout_ns)
        return sl_session_conn_error(s, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM,
                                     "header block not completed in time");
    if (s->goaway_phase == 1 && now >= s->goaway_ping_at + s->opt.goaway_timeout_ns)
        return sl_session_send_goaway(s, s->last_peer_stream, SLUICE_H2_NO_ERROR, NULL);
    return 0;
}

int sluice_session_want_read(const sluice_session *s)
{
    if (!s || s->fatal)
        return 0;
    /* After both sides said GOAWAY and the last stream is done, nothing
     * more can come that we would act on. */
    if ((s->goaway_phase == 2 || s->goaway_received) && s->streams.count == 0)
        return 0;
    return 1;
}

int sluice_session_set_stream_user_data(sluice_session *s, uint32_t stream_id, void *data)
{
    sl_stream *st = s ? sl_stream_map_get(&s->streams, stream_id) : NULL;
    if (!st)
        return SLUICE_ERR_NOT_FOUND;
    st->user_data = data;
    return 0;
}

void *sluice_session_get_stream_user_data(const sluice_session *s, uint32_t stream_id)
{
    sl_stream *st = s ? sl_stream_map_get(&s->streams, stream_id) : NULL;
    return st ? st->user_data : NULL;
}

int sluice_session_get_stats(const sluice_session *s, sluice_session_stats *st)
{
    if (!s || !st || st->struct_size < sizeof(size_t))
        return SLUICE_ERR_INVAL;
    sluice_session_stats cur = s->stats;
    cur.streams_open = s->streams.count;
    cur.buffered_out = sl_outq_pending(&s->out);
    cur.recv_buffered = s->recv_buffered;
    cur.rtt_ns = s->wtune.srtt_ns;
    cur.recv_rate = sl_wtune_rate(&s->wtune, s->now);
    cur.recv_target_conn = s->recv_target;
    cur.recv_target_stream = s->opt.window_adaptive ? s->wtune.stream_target
                                                    : s->local.initial_window_size;
    size_t n = st->struct_size < sizeof(cur) ? st->struct_size : sizeof(cur);
    cur.struct_size = st->struct_size;
    memcpy(st, &cur, n);
    return 0;
}

int sluice_session_set_rate(sluice_session *s, int kind, sluice_rate rate)
{
    sl_bucket *b;
    switch (kind) {
    case SLUICE_RATE_RST_RECEIVED: b = &s->b_rst_received; s->opt.rst_received = rate; break;
    case SLUICE_RATE_RST_PROVOKED: b = &s->b_rst_provoked; s->opt.rst_provoked = rate; break;
    case SLUICE_RATE_PING: b = &s->b_ping; s->opt.ping = rate; break;
    case SLUICE_RATE_SETTINGS: b = &s->b_settings; s->opt.settings = rate; break;
    case SLUICE_RATE_EMPTY_DATA: b = &s->b_empty_data; s->opt.empty_data = rate; break;
    case SLUICE_RATE_PRIORITY: b = &s->b_priority; s->opt.priority = rate; break;
    case SLUICE_RATE_REPRIORITIZE: b = &s->b_reprioritize; s->opt.reprioritize = rate; break;
    default: return SLUICE_ERR_INVAL;
    }
    uint64_t level = b->level, was_unlimited = b->burst == 0;
    sl_bucket_init(b, rate, b->last_ns);
    if (!was_unlimited && level < b->level)
        b->level = level;
    return 0;
}

int sluice_session_priority_signalled(const sluice_session *s, uint32_t stream_id)
{
    const sl_stream *st = s ? sl_session_stream(s, stream_id) : NULL;
    return st ? st->prio_signalled : SLUICE_ERR_NOT_FOUND;
}
