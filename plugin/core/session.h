/* session.h — the internal state of a sluice_session, shared by the units
 * that make it up: session.c (life cycle, settings), session_recv.c (frames
 * in), session_send.c (submit calls and frames out). */
#ifndef SL_SESSION_H
#define SL_SESSION_H

#include "frame.h"
#include "guard.h"
#include "hpack.h"
#include "mem.h"
#include "outq.h"
#include "stream.h"
#include "wtune.h"

#define SL_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define SL_PREFACE_LEN 24
#define SL_MAX_PENDING_SETTINGS 4
#define SL_MAX_SETTINGS 10 /* per SETTINGS frame we send */
#define SL_RESET_RING 64
#define SL_DEFAULT_WINDOW 65535u

/* The SETTINGS values of one side (RFC 9113 §6.5.2). */
typedef struct sl_settings {
    uint32_t header_table_size;
    uint32_t enable_push;
    uint32_t max_concurrent_streams;
    uint32_t initial_window_size;
    uint32_t max_frame_size;
    uint32_t max_header_list_size;
    uint32_t no_rfc7540_priorities;
} sl_settings;

/* SETTINGS we sent that the peer has not acknowledged yet. */
typedef struct sl_pending_settings {
    sl_setting s[SL_MAX_SETTINGS];
    size_t n;
    uint64_t sent_at;
} sl_pending_settings;

/* A header block being assembled from HEADERS + CONTINUATION. */
typedef struct sl_hblock {
    uint8_t *buf;
    size_t len, cap;
    uint32_t stream_id;
    uint32_t frames;     /* CONTINUATIONs so far */
    int end_stream;
    int active;
    uint64_t started_at; /* for header_block_timeout_ns */
    int has_pri;         /* HEADERS carried RFC 7540 priority fields */
    sl_priority_spec pri;
} sl_hblock;

/* Decoded fields of the current block: names and values copied out of
 * the HPACK decoder, then pointed at by nv. */
typedef struct sl_fields {
    uint8_t *buf;
    size_t len, cap;
    sluice_nv *nv;
    size_t n, cap_nv;
} sl_fields;

struct sluice_session {
    sl_mem mem;
    int role;
    sluice_session_callbacks cb;
    void *ud;
    sluice_session_options opt;
    uint64_t now;

    sl_frame_decoder fd;
    sluice_hpack_encoder *enc;
    sluice_hpack_decoder *dec;
    sl_outq out;
    uint8_t *scratch; /* header block encoding */
    size_t scratch_cap;

    size_t preface_left;  /* server: bytes of the client magic still due */
    int settings_received; /* the peer's first frame must be SETTINGS */
    sl_settings local;    /* acknowledged by the peer */
    sl_settings remote;
    sl_pending_settings pending[SL_MAX_PENDING_SETTINGS];
    size_t npending;

    sl_stream_map streams;
    uint32_t last_peer_stream; /* highest id the peer opened (§5.1.1) */
    uint32_t next_local_stream;
    uint32_t peer_streams;     /* peer-initiated, open or half-closed */
    uint32_t local_streams;
    /* Priorities (scheduler.c): streams with body to send, in RFC 9218 order;
     * PRIORITY_UPDATEs for streams not opened yet (RFC 9218 §7.1); once
     * the client has used RFC 9218 signals its RFC 7540 ones are ignored. */
    sl_sched sched;
    struct { uint32_t id; uint8_t urgency, incremental; } prio_idle[8];
    size_t prio_idle_pos;
    int rfc9218_seen;
    sl_bucket b_reprioritize;
    uint32_t reset_ring[SL_RESET_RING]; /* streams reset recently */
    size_t reset_pos;
    uint32_t closed_ring[SL_RESET_RING]; /* streams closed normally */
    size_t closed_pos;

    int64_t send_window;   /* connection windows (§6.9) */
    int64_t recv_window;
    uint32_t recv_target;
    size_t recv_buffered;

    sl_hblock hb;
    sl_fields fields;

    sl_bucket b_rst_received, b_rst_provoked, b_ping, b_settings, b_empty_data,
        b_priority;

    /* The peer's INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE as of our last
     * SETTINGS ACK (known: one was queued): an ACK that lowers either
     * waits behind the DATA queued under the old values. */
    uint32_t acked_iws, acked_mfs;
    int acked_known;

    int fatal;               /* a connection error ended the session */
    int goaway_phase;        /* 0 none, 1 graceful first sent, 2 final sent */
    uint32_t goaway_last_id;
    uint64_t goaway_ping_at;
    uint8_t goaway_ping[8];
    int goaway_received;
    uint32_t goaway_received_last;

    /* Server push (push.c): promised streams whose response has not
     * started; they are counted in local_streams too. */
    uint32_t push_reserved;

    /* Adaptive receive windows (wtune.c; session_send.c applies them):
     * RTT and consumption estimates, the targets they give, the probe
     * PING. conn_target_set: the application chose the connection's
     * target (set_window 0), which the tuner then leaves alone. */
    sl_wtune wtune;
    int conn_target_set;

    sluice_session_stats stats;
};

/* A stream that is open for use: not being closed. */
static inline sl_stream *sl_session_stream(const sluice_session *s, uint32_t id)
{
    sl_stream *st = sl_stream_map_get(&s->streams, id);
    return st && !st->closed ? st : NULL;
}

/* session.c */
void sl_session_log(sluice_session *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sl_session_apply_local_settings(sluice_session *s, const sl_pending_settings *p);
void sl_session_close_stream(sluice_session *s, sl_stream *st, uint32_t code);
int sl_session_recently_reset(const sluice_session *s, uint32_t id);
int sl_session_recently_closed(const sluice_session *s, uint32_t id);

/* session_recv.c */
int sl_session_recv_frame(sluice_session *s, const sl_frame *f);

/* session_send.c */
int sl_session_conn_error(sluice_session *s, int err, uint32_t code, const char *why);
int sl_session_stream_error(sluice_session *s, uint32_t id, uint32_t code,
                            const char *why);
int sl_session_send_rst(sluice_session *s, uint32_t id, uint32_t code);
int sl_session_send_goaway(sluice_session *s, uint32_t last_id, uint32_t code,
                           const char *debug);
int sl_session_send_settings(sluice_session *s, const sl_setting *v, size_t n);
int sl_session_send_window_update(sluice_session *s, uint32_t id, uint32_t inc);
int sl_session_send_headers(sluice_session *s, uint32_t id, const sluice_nv *nv,
                            size_t n, int end_stream);
/* PUSH_PROMISE (+ CONTINUATION) on stream id promising stream promised. */
int sl_session_send_push_promise(sluice_session *s, uint32_t id, uint32_t promised,
                                 const sluice_nv *nv, size_t n);
sl_stream *sl_session_new_stream(sluice_session *s, uint32_t id, int peer);
int sl_session_queue_control(sluice_session *s, const uint8_t *frame, size_t len);
void sl_session_ready_add(sluice_session *s, sl_stream *st);
void sl_session_ready_del(sluice_session *s, sl_stream *st);
/* Send WINDOW_UPDATEs that consumption or a new target has made due. */
int sl_session_credit(sluice_session *s, sl_stream *st);
/* Adaptive windows: the application consumed n bytes (raised targets are
 * credited at once); DATA is arriving (an RTT probe PING may go out). */
int sl_session_consumed(sluice_session *s, size_t n);
int sl_session_rtt_probe(sluice_session *s);

#endif /* SL_SESSION_H */
