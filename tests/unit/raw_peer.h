/* raw_peer.h — a hand-driven HTTP/2 peer for the session tests: builds frames
 * as bytes, feeds them to one sluice session and parses every frame it writes. */
#ifndef SL_RAW_PEER_H
#define SL_RAW_PEER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "sluice.h"

#define RP_ANY 0xffffffffu      /* rp_find: any stream id */
#define RP_MAX_FRAMES 8192
#define RP_OUT_CAP (4u << 20)  /* one read of the session's output */
#define RP_MAX_EVENTS 4096
#define RP_BODY_SLOTS 4096     /* per-stream body offsets, by id / 2 */

#define NV(n, v) {(const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0}

/* One frame the session wrote, with the fields the tests look at. */
typedef struct rp_frame {
    uint8_t type, flags;
    uint32_t stream_id, length;
    const uint8_t *payload; /* into rp.out: valid until the next rp_read */
    uint32_t code;          /* RST_STREAM, GOAWAY */
    uint32_t last_id;       /* GOAWAY */
    uint32_t increment;     /* WINDOW_UPDATE */
    uint8_t opaque[8];      /* PING */
    size_t data_len;        /* DATA: payload without padding */
    size_t nsettings;       /* SETTINGS */
    sl_setting settings[16];
    char status[8];         /* HEADERS: :status of the whole block, or "" */
    size_t nfields;         /* HEADERS: fields of the whole block */
} rp_frame;

/* What the session told the application, in order. */
enum rp_ev { RP_EV_HEADERS, RP_EV_DATA, RP_EV_END, RP_EV_CLOSE, RP_EV_GOAWAY };
typedef struct rp_event {
    int type;
    uint32_t stream_id;
    uint32_t arg; /* HEADERS: kind; DATA: length; CLOSE: code; GOAWAY: code */
    int end_stream;
} rp_event;

typedef struct rp {
    sluice_session *s;
    int role;
    uint64_t now;
    long rv;                      /* of the last sluice_session_recv */
    sluice_hpack_encoder *enc;    /* our side of the session's decoder */
    sluice_hpack_decoder *dec;    /* our side of the session's encoder */
    int preface_seen;             /* client session: its magic was skipped */
    int parse_error;

    /* Output of the last rp_read. */
    uint8_t out[RP_OUT_CAP];
    size_t out_len;
    rp_frame f[RP_MAX_FRAMES];
    size_t nf;
    uint8_t hblock[1 << 16];      /* a header block being joined */
    size_t hblock_len;
    long hblock_frame;            /* index of its HEADERS frame */

    /* The application's side. */
    rp_event ev[RP_MAX_EVENTS];
    size_t nev;
    int requests, responses, infos, trailers_in, ends, closes, goaways;
    int settings_acks, ping_acks;
    uint32_t last_close_id, last_close_code, goaway_last, goaway_code;
    size_t data_bytes;
    char fields[4096];            /* last header block delivered, "name: value\n" */
    int respond;                  /* answer each request with 200 at once */
    int consume;                  /* consume data as it is delivered */
    const uint8_t *body;          /* response body of every answer */
    size_t body_len;
    size_t body_off[RP_BODY_SLOTS];
    int body_defer;               /* body source says AGAIN */
    char last_log[256];
} rp;

/* ---- the application's callbacks --------------------------------------- */

static inline void rp_event_add(rp *p, int type, uint32_t id, uint32_t arg, int end)
{
    if (p->nev < RP_MAX_EVENTS)
        p->ev[p->nev++] = (rp_event){type, id, arg, end};
}

static inline long rp_body_read(sluice_session *s, uint32_t id, const uint8_t **data,
                                size_t max, uint32_t *flags, void *ud)
{
    (void)s;
    rp *p = ud;
    if (p->body_defer)
        return SLUICE_ERR_AGAIN;
    size_t *off = &p->body_off[(id >> 1) % RP_BODY_SLOTS];
    size_t n = p->body_len - *off;
    if (n > max)
        n = max;
    *data = p->body + *off;
    *off += n;
    if (*off == p->body_len)
        *flags |= SLUICE_DATA_EOF;
    return (long)n;
}

static inline int rp_on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv,
                                size_t n, int end_stream, void *ud)
{
    rp *p = ud;
    rp_event_add(p, RP_EV_HEADERS, id, (uint32_t)kind, end_stream);
    size_t len = 0;
    p->fields[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(p->fields + len, sizeof(p->fields) - len, "%.*s: %.*s\n",
                         (int)nv[i].name_len, (const char *)nv[i].name,
                         (int)nv[i].value_len, (const char *)nv[i].value);
        if (w < 0 || (size_t)w >= sizeof(p->fields) - len)
            break;
        len += (size_t)w;
    }
    switch (kind) {
    case SLUICE_HEADERS_REQUEST: p->requests++; break;
    case SLUICE_HEADERS_RESPONSE: p->responses++; break;
    case SLUICE_HEADERS_INFO: p->infos++; break;
    default: p->trailers_in++; break;
    }
    if (kind == SLUICE_HEADERS_REQUEST && p->respond) {
        static const sluice_nv res[] = {NV(":status", "200")};
        sluice_data_source src = {rp_body_read, p};
        p->body_off[(id >> 1) % RP_BODY_SLOTS] = 0;
        return sluice_session_submit_response(s, id, res, 1, p->body ? &src : NULL);
    }
    return 0;
}

static inline int rp_on_data(sluice_session *s, uint32_t id, const uint8_t *d, size_t len,
                             void *ud)
{
    (void)d;
    rp *p = ud;
    rp_event_add(p, RP_EV_DATA, id, (uint32_t)len, 0);
    p->data_bytes += len;
    return p->consume ? sluice_session_consume(s, id, len) : 0;
}

static inline int rp_on_end(sluice_session *s, uint32_t id, void *ud)
{
    (void)s;
    rp *p = ud;
    rp_event_add(p, RP_EV_END, id, 0, 1);
    p->ends++;
    return 0;
}

static inline int rp_on_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    (void)s;
    rp *p = ud;
    rp_event_add(p, RP_EV_CLOSE, id, code, 0);
    p->closes++;
    p->last_close_id = id;
    p->last_close_code = code;
    return 0;
}

static inline int rp_on_goaway(sluice_session *s, uint32_t last, uint32_t code,
                               const uint8_t *d, size_t len, void *ud)
{
    (void)s; (void)d; (void)len;
    rp *p = ud;
    rp_event_add(p, RP_EV_GOAWAY, last, code, 0);
    p->goaways++;
    p->goaway_last = last;
    p->goaway_code = code;
    return 0;
}

static inline int rp_on_settings_ack(sluice_session *s, void *ud)
{
    (void)s;
    ((rp *)ud)->settings_acks++;
    return 0;
}

static inline int rp_on_ping_ack(sluice_session *s, const uint8_t opaque[8], void *ud)
{
    (void)s; (void)opaque;
    ((rp *)ud)->ping_acks++;
    return 0;
}

static inline void rp_on_log(sluice_session *s, int level, const char *msg, void *ud)
{
    (void)s; (void)level;
    rp *p = ud;
    snprintf(p->last_log, sizeof(p->last_log), "%s", msg);
    if (getenv("RP_VERBOSE"))
        fprintf(stderr, "  [session] %s\n", msg);
}

/* ---- life cycle ------------------------------------------------------------ */

/* A peer and its session, created at time 0; nothing exchanged yet. Returns
 * NULL if the session could not be created (*err says why when given). */
static inline rp *rp_new_alloc(int role, const sluice_session_options *o,
                               const sluice_allocator *a, int *err)
{
    rp *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->role = role;
    p->hblock_frame = -1;
    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = rp_on_headers;
    cb.on_data = rp_on_data;
    cb.on_stream_end = rp_on_end;
    cb.on_stream_close = rp_on_close;
    cb.on_goaway = rp_on_goaway;
    cb.on_settings_ack = rp_on_settings_ack;
    cb.on_ping_ack = rp_on_ping_ack;
    cb.on_log = rp_on_log;
    int rv = sluice_hpack_encoder_new(&p->enc, NULL, NULL);
    if (rv == 0)
        rv = sluice_hpack_decoder_new(&p->dec, NULL, NULL);
    if (rv == 0)
        rv = sluice_session_new(&p->s, role, &cb, p, o, a, 0);
    if (err)
        *err = rv;
    if (rv != 0) {
        sluice_hpack_encoder_free(p->enc);
        sluice_hpack_decoder_free(p->dec);
        free(p);
        return NULL;
    }
    return p;
}

static inline rp *rp_new(int role, const sluice_session_options *o)
{
    return rp_new_alloc(role, o, NULL, NULL);
}

static inline void rp_free(rp *p)
{
    if (!p)
        return;
    sluice_session_free(p->s);
    sluice_hpack_encoder_free(p->enc);
    sluice_hpack_decoder_free(p->dec);
    free(p);
}

/* ---- frames in --------------------------------------------------------------- */

static inline long rp_send(rp *p, const void *bytes, size_t len)
{
    p->rv = sluice_session_recv(p->s, bytes, len, p->now);
    return p->rv;
}

static inline void rp_put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

/* Any frame, valid or not, exactly as given. */
static inline long rp_frame_raw(rp *p, uint8_t type, uint8_t flags, uint32_t id,
                                const void *payload, size_t len)
{
    static uint8_t buf[SL_FRAME_HDR_LEN + (1 << 17)];
    if (len > sizeof(buf) - SL_FRAME_HDR_LEN)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(buf, (uint32_t)len, type, flags, id);
    if (len)
        memcpy(buf + SL_FRAME_HDR_LEN, payload, len);
    return rp_send(p, buf, SL_FRAME_HDR_LEN + len);
}

static inline long rp_preface(rp *p)
{
    return rp_send(p, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
}

/* SETTINGS from {id, value} pairs (values are not checked: tests send bad ones). */
static inline long rp_settings(rp *p, const uint32_t *ids_values, size_t n)
{
    uint8_t b[16 * 6];
    for (size_t i = 0; i < n && i < 16; i++) {
        b[i * 6] = (uint8_t)(ids_values[2 * i] >> 8);
        b[i * 6 + 1] = (uint8_t)ids_values[2 * i];
        rp_put32(b + i * 6 + 2, ids_values[2 * i + 1]);
    }
    return rp_frame_raw(p, SL_FRAME_SETTINGS, 0, 0, b, (n < 16 ? n : 16) * 6);
}

static inline long rp_settings_ack(rp *p)
{
    return rp_frame_raw(p, SL_FRAME_SETTINGS, SL_FLAG_ACK, 0, NULL, 0);
}

static inline long rp_ping(rp *p, const char opaque[8], int ack)
{
    return rp_frame_raw(p, SL_FRAME_PING, ack ? SL_FLAG_ACK : 0, 0, opaque, 8);
}

static inline long rp_window_update(rp *p, uint32_t id, uint32_t inc)
{
    uint8_t b[4];
    rp_put32(b, inc);
    return rp_frame_raw(p, SL_FRAME_WINDOW_UPDATE, 0, id, b, 4);
}

static inline long rp_rst(rp *p, uint32_t id, uint32_t code)
{
    uint8_t b[4];
    rp_put32(b, code);
    return rp_frame_raw(p, SL_FRAME_RST_STREAM, 0, id, b, 4);
}

static inline long rp_goaway(rp *p, uint32_t last, uint32_t code)
{
    uint8_t b[8];
    rp_put32(b, last);
    rp_put32(b + 4, code);
    return rp_frame_raw(p, SL_FRAME_GOAWAY, 0, 0, b, 8);
}

/* weight is the wire value (0..255). */
static inline long rp_priority(rp *p, uint32_t id, uint32_t dep, int exclusive, uint8_t weight)
{
    uint8_t b[5];
    rp_put32(b, dep | (exclusive ? 0x80000000u : 0));
    b[4] = weight;
    return rp_frame_raw(p, SL_FRAME_PRIORITY, 0, id, b, 5);
}

/* DATA of len bytes ('x'), with pad bytes of padding when pad >= 0. */
static inline long rp_data_pad(rp *p, uint32_t id, size_t len, int pad, int end_stream)
{
    static uint8_t b[1 << 17];
    size_t n = 0;
    if (len + 256 > sizeof(b))
        return SLUICE_ERR_NOBUF;
    if (pad >= 0)
        b[n++] = (uint8_t)pad;
    memset(b + n, 'x', len);
    n += len;
    if (pad > 0) {
        memset(b + n, 0, (size_t)pad);
        n += (size_t)pad;
    }
    uint8_t flags = (uint8_t)((end_stream ? SL_FLAG_END_STREAM : 0) |
                              (pad >= 0 ? SL_FLAG_PADDED : 0));
    return rp_frame_raw(p, SL_FRAME_DATA, flags, id, b, n);
}

static inline long rp_data(rp *p, uint32_t id, size_t len, int end_stream)
{
    return rp_data_pad(p, id, len, -1, end_stream);
}

/* DATA of total bytes in frames of at most 16384. */
static inline long rp_data_many(rp *p, uint32_t id, size_t total, int end_stream)
{
    long rv = 0;
    do {
        size_t n = total < 16384 ? total : 16384;
        total -= n;
        rv = rp_data(p, id, n, end_stream && total == 0);
    } while (total > 0 && rv >= 0);
    return rv;
}

/* A header block from our encoder; its bytes stay in *out (cap given). */
static inline size_t rp_block(rp *p, const sluice_nv *nv, size_t n, uint8_t *out, size_t cap)
{
    size_t len = 0;
    if (sluice_hpack_encode(p->enc, nv, n, out, cap, &len) != 0)
        return 0;
    return len;
}

/* HEADERS with END_HEADERS and the whole block (flags: END_STREAM or 0). */
static inline long rp_headers(rp *p, uint32_t id, const sluice_nv *nv, size_t n, int end_stream)
{
    uint8_t b[1 << 16];
    size_t len = rp_block(p, nv, n, b, sizeof(b));
    uint8_t flags = (uint8_t)(SL_FLAG_END_HEADERS | (end_stream ? SL_FLAG_END_STREAM : 0));
    return rp_frame_raw(p, SL_FRAME_HEADERS, flags, id, b, len);
}

static const sluice_nv rp_get[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                   NV(":authority", "example.com"), NV(":path", "/")};
static const sluice_nv rp_post[] = {NV(":method", "POST"), NV(":scheme", "https"),
                                    NV(":authority", "example.com"), NV(":path", "/up")};

static inline long rp_request(rp *p, uint32_t id, int end_stream)
{
    return rp_headers(p, id, end_stream ? rp_get : rp_post, 4, end_stream);
}

/* ---- frames out ------------------------------------------------------------ */

static inline uint32_t rp_get32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline int rp_collect(void *ud, const sluice_nv *nv)
{
    rp_frame *f = ud;
    f->nfields++;
    if (nv->name_len == 7 && memcmp(nv->name, ":status", 7) == 0 && nv->value_len < 8) {
        memcpy(f->status, nv->value, nv->value_len);
        f->status[nv->value_len] = 0;
    }
    return 0;
}

/* HEADERS/CONTINUATION: join the block and decode it at END_HEADERS so our
 * decoder follows the session's encoder. */
static inline void rp_header_fragment(rp *p, rp_frame *f, const uint8_t *frag, size_t len)
{
    if (f->type == SL_FRAME_HEADERS) {
        p->hblock_len = 0;
        p->hblock_frame = (long)(f - p->f);
    }
    if (p->hblock_len + len > sizeof(p->hblock) || p->hblock_frame < 0) {
        p->parse_error = 1;
        return;
    }
    memcpy(p->hblock + p->hblock_len, frag, len);
    p->hblock_len += len;
    if (f->flags & SL_FLAG_END_HEADERS) {
        rp_frame *h = &p->f[p->hblock_frame];
        if (sluice_hpack_decode(p->dec, p->hblock, p->hblock_len, rp_collect, h) != 0)
            p->parse_error = 1;
        p->hblock_frame = -1;
    }
}

static inline void rp_parse_one(rp *p, rp_frame *f)
{
    const uint8_t *pl = f->payload;
    size_t len = f->length, pad = 0;
    switch (f->type) {
    case SL_FRAME_DATA:
    case SL_FRAME_HEADERS:
        if (f->flags & SL_FLAG_PADDED && len > 0) {
            pad = pl[0];
            pl++;
            len = pad + 1 <= f->length ? f->length - 1 - pad : 0;
        }
        if (f->type == SL_FRAME_DATA) {
            f->data_len = len;
            break;
        }
        if (f->flags & SL_FLAG_PRIORITY && len >= 5) {
            pl += 5;
            len -= 5;
        }
        rp_header_fragment(p, f, pl, len);
        break;
    case SL_FRAME_CONTINUATION: rp_header_fragment(p, f, pl, len); break;
    case SL_FRAME_RST_STREAM:
        if (len == 4)
            f->code = rp_get32(pl);
        break;
    case SL_FRAME_GOAWAY:
        if (len >= 8) {
            f->last_id = rp_get32(pl) & 0x7fffffffu;
            f->code = rp_get32(pl + 4);
        }
        break;
    case SL_FRAME_WINDOW_UPDATE:
        if (len == 4)
            f->increment = rp_get32(pl) & 0x7fffffffu;
        break;
    case SL_FRAME_PING:
        if (len == 8)
            memcpy(f->opaque, pl, 8);
        break;
    case SL_FRAME_SETTINGS:
        for (size_t i = 0; i + 6 <= len && f->nsettings < 16; i += 6) {
            f->settings[f->nsettings].id = (uint16_t)(pl[i] << 8 | pl[i + 1]);
            f->settings[f->nsettings++].value = rp_get32(pl + i + 2);
        }
        break;
    default: break;
    }
}

/* Parse the complete frames of p->out from off into p->f (appending);
 * returns the offset after the last one. */
static inline size_t rp_parse_frames(rp *p, size_t off)
{
    while (off + SL_FRAME_HDR_LEN <= p->out_len && p->nf < RP_MAX_FRAMES) {
        const uint8_t *h = p->out + off;
        rp_frame *f = &p->f[p->nf];
        memset(f, 0, sizeof(*f));
        f->length = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        f->type = h[3];
        f->flags = h[4];
        f->stream_id = rp_get32(h + 5) & 0x7fffffffu;
        if (off + SL_FRAME_HDR_LEN + f->length > p->out_len)
            break;
        f->payload = h + SL_FRAME_HDR_LEN;
        p->nf++;
        rp_parse_one(p, f);
        off += SL_FRAME_HDR_LEN + f->length;
    }
    return off;
}

/* Take everything the session has to write (at most max_bytes; 0: all) and
 * parse it into p->f[0..nf). Returns nf. */
static inline size_t rp_read_max(rp *p, size_t max_bytes)
{
    p->out_len = 0;
    p->nf = 0;
    size_t cap = max_bytes && max_bytes < RP_OUT_CAP ? max_bytes : RP_OUT_CAP;
    for (;;) {
        sluice_iovec iov[64];
        int n = sluice_session_output(p->s, iov, 64, cap - p->out_len, p->now);
        if (n <= 0)
            break;
        size_t sum = 0;
        for (int i = 0; i < n; i++) {
            memcpy(p->out + p->out_len + sum, iov[i].base, iov[i].len);
            sum += iov[i].len;
        }
        sluice_session_output_done(p->s, sum);
        p->out_len += sum;
        if (p->out_len == cap)
            break;
    }
    size_t off = 0;
    if (p->role == SLUICE_ROLE_CLIENT && !p->preface_seen && p->out_len >= 24) {
        if (memcmp(p->out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24) != 0)
            p->parse_error = 1;
        p->preface_seen = 1;
        off = 24;
    }
    off = rp_parse_frames(p, off);
    if (off != p->out_len) /* the session cut a frame, or we ran out of room */
        p->parse_error = 1;
    return p->nf;
}

static inline size_t rp_read(rp *p)
{
    return rp_read_max(p, 0);
}

/* The first frame of the last read of this type (and stream, unless RP_ANY). */
static inline const rp_frame *rp_find(const rp *p, uint8_t type, uint32_t id)
{
    for (size_t i = 0; i < p->nf; i++)
        if (p->f[i].type == type && (id == RP_ANY || p->f[i].stream_id == id))
            return &p->f[i];
    return NULL;
}

static inline size_t rp_count(const rp *p, uint8_t type, uint32_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nf; i++)
        if (p->f[i].type == type && (id == RP_ANY || p->f[i].stream_id == id))
            n++;
    return n;
}

/* DATA payload bytes (padding excluded) of the last read on a stream. */
static inline size_t rp_data_total(const rp *p, uint32_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nf; i++)
        if (p->f[i].type == SL_FRAME_DATA && (id == RP_ANY || p->f[i].stream_id == id))
            n += p->f[i].data_len;
    return n;
}

/* ---- connection set-up ------------------------------------------------------ */

/* Server session: our preface and SETTINGS (pairs given), then our ACK of
 * its SETTINGS; its output is read. Client session: read its preface and
 * SETTINGS, then send ours and the ACK. Returns the last recv result. */
static inline long rp_handshake(rp *p, const uint32_t *ids_values, size_t n)
{
    if (p->role == SLUICE_ROLE_SERVER && rp_preface(p) < 0)
        return p->rv;
    if (p->role == SLUICE_ROLE_CLIENT)
        rp_read(p);
    if (rp_settings(p, ids_values, n) < 0 || rp_settings_ack(p) < 0)
        return p->rv;
    rp_read(p);
    return p->rv;
}

/* A server session that has finished the handshake with default settings. */
static inline rp *rp_server(const sluice_session_options *o)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, o);
    if (p && rp_handshake(p, NULL, 0) < 0) {
        rp_free(p);
        return NULL;
    }
    return p;
}

static inline rp *rp_client(const sluice_session_options *o)
{
    rp *p = rp_new(SLUICE_ROLE_CLIENT, o);
    if (p && rp_handshake(p, NULL, 0) < 0) {
        rp_free(p);
        return NULL;
    }
    return p;
}

/* The index of the first event of this type on this stream, or -1. */
static inline long rp_event_find(const rp *p, int type, uint32_t id)
{
    for (size_t i = 0; i < p->nev; i++)
        if (p->ev[i].type == type && p->ev[i].stream_id == id)
            return (long)i;
    return -1;
}

#endif /* SL_RAW_PEER_H */
