/* frame.c — HTTP/2 frame codec: a streaming decoder that enforces every
 * per-frame rule of RFC 9113 §4–§6 and RFC 9218 §7.1, and the encoders. */
#include <string.h>

#include "frame.h"

#define SL_ID_MASK 0x7fffffffu /* RFC 9113 §4.1: the reserved bit is ignored */
#define SL_MAX_PAD 255u
#define SL_PRIORITY_LEN 5u
#define SL_BUF_MIN 1024u /* first payload buffer; grows by doubling */

/* Payload of an empty frame: a valid pointer even when the input was NULL. */
static const uint8_t empty_payload[1];

/* ---- byte order ----------------------------------------------------------- */

static uint32_t get16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- errors --------------------------------------------------------------- */

static int stream_err(sl_frame_error *e, int err, uint32_t stream_id,
                      const char *reason)
{
    e->err = err;
    e->h2_code = sluice_error_to_h2(err);
    e->stream_id = stream_id;
    e->stream_scope = 1;
    e->reason = reason;
    return err;
}

static int conn_err(sl_frame_error *e, int err, const char *reason)
{
    stream_err(e, err, 0, reason);
    e->stream_scope = 0;
    return err;
}

/* ---- SETTINGS values ------------------------------------------------------ */

int sl_settings_check(uint16_t id, uint32_t value)
{
    switch (id) {
    case SL_SETTINGS_ENABLE_PUSH:             /* RFC 9113 §6.5.2 */
    case SL_SETTINGS_ENABLE_CONNECT_PROTOCOL: /* RFC 8441 §3 */
    case SL_SETTINGS_NO_RFC7540_PRIORITIES:   /* RFC 9218 §2.1 */
        return value <= 1 ? 0 : SLUICE_ERR_PROTOCOL;
    case SL_SETTINGS_INITIAL_WINDOW_SIZE:
        return value <= SL_MAX_WINDOW ? 0 : SLUICE_ERR_FLOW_CONTROL;
    case SL_SETTINGS_MAX_FRAME_SIZE:
        return value >= SL_MAX_FRAME_SIZE_MIN && value <= SL_MAX_FRAME_SIZE_MAX
                   ? 0
                   : SLUICE_ERR_PROTOCOL;
    }
    return 0; /* other values are unbounded; unknown ids are ignored */
}

static const char *settings_reason(uint16_t id)
{
    switch (id) {
    case SL_SETTINGS_ENABLE_PUSH: return "SETTINGS_ENABLE_PUSH is not 0 or 1";
    case SL_SETTINGS_INITIAL_WINDOW_SIZE:
        return "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1";
    case SL_SETTINGS_MAX_FRAME_SIZE:
        return "SETTINGS_MAX_FRAME_SIZE outside 16384..16777215";
    case SL_SETTINGS_ENABLE_CONNECT_PROTOCOL:
        return "SETTINGS_ENABLE_CONNECT_PROTOCOL is not 0 or 1";
    case SL_SETTINGS_NO_RFC7540_PRIORITIES:
        return "SETTINGS_NO_RFC7540_PRIORITIES is not 0 or 1";
    }
    return "invalid SETTINGS value";
}

void sl_frame_settings_get(const sl_frame *f, size_t i, sl_setting *s)
{
    const uint8_t *p = f->u.settings.raw + i * 6;
    s->id = (uint16_t)get16(p);
    s->value = get32(p + 2);
}

/* ---- decoder: header checks ----------------------------------------------- */

typedef struct frame_hdr {
    uint32_t length;
    uint8_t type;
    uint8_t flags;
    uint32_t stream_id;
} frame_hdr;

static frame_hdr parse_hdr(const uint8_t *p)
{
    frame_hdr h;
    h.length = get24(p);
    h.type = p[3];
    h.flags = p[4];
    h.stream_id = get32(p + 5) & SL_ID_MASK;
    return h;
}

enum { SID_ANY, SID_ZERO, SID_NONZERO };

/* What the 9-byte header alone must satisfy for each known type, so that
 * bad frames are refused before their payload is buffered. PRIORITY's
 * length is checked later: it is a stream error (§6.3), so the frame must
 * be consumed first. */
typedef struct type_rule {
    uint8_t known;
    uint8_t sid;      /* SID_*: where the type may appear */
    uint8_t padded;   /* the PADDED flag adds a pad-length byte */
    uint8_t min_len;  /* fixed fields after any pad-length byte */
    uint8_t exact;    /* the length must be exactly min_len */
    const char *sid_reason;
    const char *len_reason;
} type_rule;

static const type_rule type_rules[] = {
    [SL_FRAME_DATA] = {1, SID_NONZERO, 1, 0, 0, "DATA on stream 0", NULL},
    [SL_FRAME_HEADERS] = {1, SID_NONZERO, 1, 0, 0, "HEADERS on stream 0",
                          "HEADERS too short for its priority fields"},
    [SL_FRAME_PRIORITY] = {1, SID_NONZERO, 0, 0, 0, "PRIORITY on stream 0", NULL},
    [SL_FRAME_RST_STREAM] = {1, SID_NONZERO, 0, 4, 1, "RST_STREAM on stream 0",
                             "RST_STREAM length is not 4"},
    [SL_FRAME_SETTINGS] = {1, SID_ZERO, 0, 0, 0, "SETTINGS on a stream", NULL},
    [SL_FRAME_PUSH_PROMISE] = {1, SID_NONZERO, 1, 4, 0, "PUSH_PROMISE on stream 0",
                               "PUSH_PROMISE too short for the promised stream id"},
    [SL_FRAME_PING] = {1, SID_ZERO, 0, 8, 1, "PING on a stream",
                       "PING length is not 8"},
    [SL_FRAME_GOAWAY] = {1, SID_ZERO, 0, 8, 0, "GOAWAY on a stream",
                         "GOAWAY shorter than 8"},
    [SL_FRAME_WINDOW_UPDATE] = {1, SID_ANY, 0, 4, 1, NULL,
                                "WINDOW_UPDATE length is not 4"},
    [SL_FRAME_CONTINUATION] = {1, SID_NONZERO, 0, 0, 0,
                               "CONTINUATION on stream 0", NULL},
    [SL_FRAME_PRIORITY_UPDATE] = {1, SID_ZERO, 0, 4, 0, "PRIORITY_UPDATE on a stream",
                                  "PRIORITY_UPDATE shorter than 4"},
};

static const type_rule *rule_of(uint8_t type)
{
    if (type < sizeof(type_rules) / sizeof(type_rules[0]) && type_rules[type].known)
        return &type_rules[type];
    return NULL;
}

/* RFC 9113 §6.10: a header block, once open, admits only CONTINUATION
 * frames on its own stream; and CONTINUATION needs an open block. */
static int check_sequence(const sl_frame_decoder *d, const frame_hdr *h,
                          sl_frame_error *e)
{
    if (d->continuation_stream != 0) {
        if (h->type != SL_FRAME_CONTINUATION || h->stream_id != d->continuation_stream)
            return conn_err(e, SLUICE_ERR_PROTOCOL,
                            "header block interrupted before END_HEADERS");
        return 0;
    }
    if (h->type == SL_FRAME_CONTINUATION)
        return conn_err(e, SLUICE_ERR_PROTOCOL, "CONTINUATION without an open header block");
    return 0;
}

/* RFC 9113 §6.5: an ACK is empty, entries are 6 bytes each. */
static int check_settings_length(const frame_hdr *h, sl_frame_error *e)
{
    if ((h->flags & SL_FLAG_ACK) && h->length != 0)
        return conn_err(e, SLUICE_ERR_FRAME_SIZE, "SETTINGS ACK with a payload");
    if (h->length % 6 != 0)
        return conn_err(e, SLUICE_ERR_FRAME_SIZE, "SETTINGS length is not a multiple of 6");
    return 0;
}

/* Stream-id and size rules of RFC 9113 §6.1–§6.10 and RFC 9218 §7.1. Size
 * errors here are connection errors: every one of these frames either
 * carries a field block, is on stream 0, or is declared so by its section. */
static int check_type_rules(const frame_hdr *h, sl_frame_error *e)
{
    const type_rule *r = rule_of(h->type);
    if (!r)
        return 0; /* §5.5: unknown types are ignored */
    if ((r->sid == SID_ZERO && h->stream_id != 0) ||
        (r->sid == SID_NONZERO && h->stream_id == 0))
        return conn_err(e, SLUICE_ERR_PROTOCOL, r->sid_reason);
    if (h->type == SL_FRAME_SETTINGS)
        return check_settings_length(h, e);
    size_t pad_byte = (r->padded && (h->flags & SL_FLAG_PADDED)) ? 1 : 0;
    size_t min = pad_byte + r->min_len;
    if (h->type == SL_FRAME_HEADERS && (h->flags & SL_FLAG_PRIORITY))
        min += SL_PRIORITY_LEN;
    if (pad_byte && h->length < 1)
        return conn_err(e, SLUICE_ERR_FRAME_SIZE, "PADDED frame without room for the pad length");
    if (h->length < min || (r->exact && h->length != min))
        return conn_err(e, SLUICE_ERR_FRAME_SIZE,
                        r->len_reason ? r->len_reason : "frame too short");
    return 0;
}

static int check_header(const sl_frame_decoder *d, const frame_hdr *h,
                        sl_frame_error *e)
{
    /* RFC 9113 §4.2: refused from the header, before any payload is held. */
    if (h->length > d->max_frame_size)
        return conn_err(e, SLUICE_ERR_FRAME_SIZE, "frame larger than SETTINGS_MAX_FRAME_SIZE");
    int rc = check_sequence(d, h, e);
    if (rc < 0)
        return rc;
    return check_type_rules(h, e);
}

/* ---- decoder: payloads ---------------------------------------------------- */

/* A padded payload split up (RFC 9113 §6.1, §6.2, §6.6): `fixed` bytes of
 * other fields follow the pad-length byte, then the content, then padding. */
typedef struct body {
    const uint8_t *fields;
    const uint8_t *content;
    size_t len;
    size_t pad;
} body;

static int unpad(const frame_hdr *h, const uint8_t *p, size_t fixed, body *b,
                 sl_frame_error *e)
{
    size_t n = h->length; /* at least pad byte + fixed: checked on the header */
    b->pad = 0;
    if (h->flags & SL_FLAG_PADDED) {
        b->pad = p[0];
        p++;
        n--;
    }
    /* The padding may use all of what is left but no more: "the length of
     * the frame payload or greater" is the error (§6.1). */
    if (b->pad > n - fixed)
        return conn_err(e, SLUICE_ERR_PROTOCOL, "pad length exceeds the payload");
    b->fields = p;
    b->content = p + fixed;
    b->len = n - fixed - b->pad;
    return 0;
}

static void read_priority(const uint8_t *p, sl_priority_spec *pri)
{
    uint32_t v = get32(p);
    pri->exclusive = (uint8_t)(v >> 31);
    pri->dep_stream_id = v & SL_ID_MASK;
    pri->weight = (uint16_t)(p[4] + 1);
}

static int decode_data(const frame_hdr *h, const uint8_t *p, sl_frame *f,
                       sl_frame_error *e)
{
    body b;
    int rc = unpad(h, p, 0, &b, e);
    if (rc < 0)
        return rc;
    f->u.data.data = b.content;
    f->u.data.len = b.len;
    f->u.data.pad = b.pad;
    return 0;
}

static int decode_headers(sl_frame_decoder *d, const frame_hdr *h,
                          const uint8_t *p, sl_frame *f, sl_frame_error *e)
{
    int has_pri = (h->flags & SL_FLAG_PRIORITY) != 0;
    body b;
    int rc = unpad(h, p, has_pri ? SL_PRIORITY_LEN : 0, &b, e);
    if (rc < 0)
        return rc;
    f->u.headers.has_priority = has_pri;
    if (has_pri) {
        /* A stream depending on itself is a stream error (RFC 9113
         * §5.3.1) that the session raises after the field block went
         * through HPACK (§4.3): the frame is delivered as it is. */
        read_priority(b.fields, &f->u.headers.pri);
    }
    f->u.headers.block = b.content;
    f->u.headers.len = b.len;
    f->u.headers.pad = b.pad;
    if (!(h->flags & SL_FLAG_END_HEADERS))
        d->continuation_stream = h->stream_id;
    return 0;
}

static int decode_priority(const frame_hdr *h, const uint8_t *p, sl_frame *f,
                           sl_frame_error *e)
{
    if (h->length != SL_PRIORITY_LEN) /* RFC 9113 §6.3 */
        return stream_err(e, SLUICE_ERR_FRAME_SIZE, h->stream_id, "PRIORITY length is not 5");
    read_priority(p, &f->u.priority);
    if (f->u.priority.dep_stream_id == h->stream_id) /* RFC 9113 §5.3.1 */
        return stream_err(e, SLUICE_ERR_PROTOCOL, h->stream_id, "PRIORITY stream depends on itself");
    return 0;
}

static int decode_settings(const frame_hdr *h, const uint8_t *p, sl_frame *f,
                           sl_frame_error *e)
{
    f->u.settings.raw = p;
    f->u.settings.n = h->length / 6;
    for (size_t i = 0; i < f->u.settings.n; i++) {
        sl_setting s;
        sl_frame_settings_get(f, i, &s);
        int rc = sl_settings_check(s.id, s.value); /* RFC 9113 §6.5.2 */
        if (rc < 0)
            return conn_err(e, rc, settings_reason(s.id));
    }
    return 0;
}

static int decode_push_promise(sl_frame_decoder *d, const frame_hdr *h,
                               const uint8_t *p, sl_frame *f, sl_frame_error *e)
{
    body b;
    int rc = unpad(h, p, 4, &b, e);
    if (rc < 0)
        return rc;
    f->u.push_promise.promised_stream_id = get32(b.fields) & SL_ID_MASK;
    /* RFC 9113 §5.1.1: stream 0 can never be opened. */
    if (f->u.push_promise.promised_stream_id == 0)
        return conn_err(e, SLUICE_ERR_PROTOCOL, "PUSH_PROMISE promises stream 0");
    f->u.push_promise.block = b.content;
    f->u.push_promise.len = b.len;
    f->u.push_promise.pad = b.pad;
    if (!(h->flags & SL_FLAG_END_HEADERS))
        d->continuation_stream = h->stream_id;
    return 0;
}

static int decode_goaway(const frame_hdr *h, const uint8_t *p, sl_frame *f)
{
    f->u.goaway.last_stream_id = get32(p) & SL_ID_MASK;
    f->u.goaway.error_code = get32(p + 4);
    f->u.goaway.debug = p + 8;
    f->u.goaway.debug_len = h->length - 8;
    return 0;
}

static int decode_window_update(const frame_hdr *h, const uint8_t *p, sl_frame *f,
                                sl_frame_error *e)
{
    f->u.window_update.increment = get32(p) & SL_ID_MASK;
    if (f->u.window_update.increment != 0)
        return 0;
    /* RFC 9113 §6.9: the scope is that of the window it would change. */
    if (h->stream_id != 0)
        return stream_err(e, SLUICE_ERR_PROTOCOL, h->stream_id, "WINDOW_UPDATE increment is 0");
    return conn_err(e, SLUICE_ERR_PROTOCOL, "WINDOW_UPDATE increment is 0");
}

static int decode_continuation(sl_frame_decoder *d, const frame_hdr *h,
                               const uint8_t *p, sl_frame *f)
{
    f->u.continuation.block = p;
    f->u.continuation.len = h->length;
    if (h->flags & SL_FLAG_END_HEADERS)
        d->continuation_stream = 0;
    return 0;
}

static int decode_priority_update(const frame_hdr *h, const uint8_t *p, sl_frame *f,
                                  sl_frame_error *e)
{
    f->u.priority_update.prioritized_stream_id = get32(p) & SL_ID_MASK;
    if (f->u.priority_update.prioritized_stream_id == 0) /* RFC 9218 §7.1 */
        return conn_err(e, SLUICE_ERR_PROTOCOL, "PRIORITY_UPDATE for stream 0");
    f->u.priority_update.field = p + 4;
    f->u.priority_update.len = h->length - 4;
    return 0;
}

static int decode_payload(sl_frame_decoder *d, const frame_hdr *h,
                          const uint8_t *p, sl_frame *f, sl_frame_error *e)
{
    switch (h->type) {
    case SL_FRAME_DATA: return decode_data(h, p, f, e);
    case SL_FRAME_HEADERS: return decode_headers(d, h, p, f, e);
    case SL_FRAME_PRIORITY: return decode_priority(h, p, f, e);
    case SL_FRAME_RST_STREAM:
        f->u.rst_stream.error_code = get32(p);
        return 0;
    case SL_FRAME_SETTINGS: return decode_settings(h, p, f, e);
    case SL_FRAME_PUSH_PROMISE: return decode_push_promise(d, h, p, f, e);
    case SL_FRAME_PING:
        memcpy(f->u.ping.opaque, p, 8);
        return 0;
    case SL_FRAME_GOAWAY: return decode_goaway(h, p, f);
    case SL_FRAME_WINDOW_UPDATE: return decode_window_update(h, p, f, e);
    case SL_FRAME_CONTINUATION: return decode_continuation(d, h, p, f);
    case SL_FRAME_PRIORITY_UPDATE: return decode_priority_update(h, p, f, e);
    }
    f->u.unknown.payload = p; /* RFC 9113 §5.5: for the caller to ignore */
    f->u.unknown.len = h->length;
    return 0;
}

/* ---- decoder: input handling ---------------------------------------------- */

void sl_frame_decoder_init(sl_frame_decoder *d, const sl_mem *mem)
{
    memset(d, 0, sizeof(*d));
    d->mem = *mem;
    d->max_frame_size = SL_MAX_FRAME_SIZE_MIN; /* RFC 9113 §6.5.2 initial value */
}

void sl_frame_decoder_free(sl_frame_decoder *d)
{
    sl_free(&d->mem, d->buf);
    d->buf = NULL;
    d->buf_cap = 0;
    d->buf_have = 0;
}

void sl_frame_decoder_set_max_frame_size(sl_frame_decoder *d, uint32_t size)
{
    if (size < SL_MAX_FRAME_SIZE_MIN)
        size = SL_MAX_FRAME_SIZE_MIN;
    if (size > SL_MAX_FRAME_SIZE_MAX)
        size = SL_MAX_FRAME_SIZE_MAX;
    d->max_frame_size = size;
}

static int fail(sl_frame_decoder *d, const sl_frame_error *e)
{
    d->failed = 1;
    d->fail = *e;
    return e->err;
}

/* Room for `need` payload bytes of a frame of flen (flen having passed the
 * size check). The buffer grows with what has arrived, not with what the
 * header announces, so a peer that announces a large frame and then
 * dribbles pins about twice what it really sent. It is kept for reuse. */
static int reserve(sl_frame_decoder *d, size_t need, size_t flen, sl_frame_error *e)
{
    if (need <= d->buf_cap)
        return 0;
    size_t cap = d->buf_cap ? d->buf_cap * 2 : SL_BUF_MIN;
    if (cap < need)
        cap = need;
    if (cap > flen)
        cap = flen;
    uint8_t *nb = sl_realloc(&d->mem, d->buf, cap);
    if (!nb)
        return conn_err(e, SLUICE_ERR_NOMEM, "out of memory for a frame payload");
    d->buf = nb;
    d->buf_cap = cap;
    return 0;
}

/* Collect the payload of the frame whose header is in d->hdr. Returns 1
 * with *payload set once it is whole, 0 when it needs more input. */
static int take_payload(sl_frame_decoder *d, size_t flen, const uint8_t *in,
                        size_t len, size_t *used, const uint8_t **payload,
                        sl_frame_error *e)
{
    size_t avail = len - *used;
    if (flen == 0) {
        *payload = empty_payload;
        return 1;
    }
    if (d->buf_have == 0 && avail >= flen) { /* all here: no copy */
        *payload = in + *used;
        *used += flen;
        return 1;
    }
    if (avail == 0)
        return 0;
    size_t n = flen - d->buf_have;
    if (n > avail)
        n = avail;
    int rc = reserve(d, d->buf_have + n, flen, e);
    if (rc < 0)
        return rc;
    memcpy(d->buf + d->buf_have, in + *used, n);
    d->buf_have += n;
    *used += n;
    if (d->buf_have < flen)
        return 0;
    *payload = d->buf;
    return 1;
}

/* Take header bytes; returns 1 once the header is whole and has passed
 * its checks, 0 when more input is needed. */
static int take_header(sl_frame_decoder *d, const uint8_t *in, size_t len,
                       size_t *used, sl_frame_error *e)
{
    if (d->hdr_have == SL_FRAME_HDR_LEN)
        return 1; /* checked when it completed */
    size_t n = SL_FRAME_HDR_LEN - d->hdr_have;
    if (n > len)
        n = len;
    if (n > 0)
        memcpy(d->hdr + d->hdr_have, in, n);
    d->hdr_have += n;
    *used += n;
    if (d->hdr_have < SL_FRAME_HDR_LEN)
        return 0;
    frame_hdr h = parse_hdr(d->hdr);
    int rc = check_header(d, &h, e);
    return rc < 0 ? rc : 1;
}

int sl_frame_decode(sl_frame_decoder *d, const uint8_t *in, size_t len,
                    size_t *consumed, sl_frame *f, sl_frame_error *e)
{
    size_t used = 0;
    const uint8_t *payload = NULL;
    *consumed = 0;
    if (d->failed) {
        *e = d->fail;
        return e->err;
    }
    int rc = take_header(d, in, len, &used, e);
    if (rc == 1)
        rc = take_payload(d, get24(d->hdr), in, len, &used, &payload, e);
    *consumed = used;
    if (rc <= 0)
        return rc < 0 ? fail(d, e) : 0;

    frame_hdr h = parse_hdr(d->hdr);
    d->hdr_have = 0;
    d->buf_have = 0;
    memset(f, 0, sizeof(*f));
    f->length = h.length;
    f->type = h.type;
    f->flags = h.flags;
    f->stream_id = h.stream_id;
    rc = decode_payload(d, &h, payload, f, e);
    if (rc < 0)
        return e->stream_scope ? rc : fail(d, e);
    return 1;
}

/* ---- encoders --------------------------------------------------------------- */

void sl_frame_pack_header(uint8_t out[SL_FRAME_HDR_LEN], uint32_t length,
                          uint8_t type, uint8_t flags, uint32_t stream_id)
{
    out[0] = (uint8_t)(length >> 16);
    out[1] = (uint8_t)(length >> 8);
    out[2] = (uint8_t)length;
    out[3] = type;
    out[4] = flags;
    put32(out + 5, stream_id & SL_ID_MASK); /* §4.1: reserved bit sent as 0 */
}

/* A stream id we may put on the wire: 31 bits, and not 0 unless allowed. */
static int id_ok(uint32_t id, int zero_ok)
{
    return id <= SL_ID_MASK && (zero_ok || id != 0);
}

static int bytes_ok(const uint8_t *p, size_t n)
{
    return p != NULL || n == 0;
}

static int pri_ok(uint32_t stream_id, const sl_priority_spec *pri)
{
    return id_ok(pri->dep_stream_id, 1) && pri->dep_stream_id != stream_id &&
           pri->weight >= 1 && pri->weight <= 256; /* RFC 9113 §5.3.1, §6.3 */
}

/* Payload length of `fixed + content` bytes with `pad` bytes of padding
 * (plus the pad-length byte), or 0 with *ok cleared if it cannot be sent. */
static size_t payload_len(size_t fixed, size_t content, size_t pad, int *ok)
{
    *ok = 0;
    if (pad > SL_MAX_PAD || content > SL_MAX_FRAME_SIZE_MAX)
        return 0;
    size_t n = fixed + content + (pad ? pad + 1 : 0);
    if (n > SL_MAX_FRAME_SIZE_MAX) /* §4.1: 24-bit length */
        return 0;
    *ok = 1;
    return n;
}

static void put_bytes(uint8_t *p, const uint8_t *src, size_t n)
{
    if (n > 0)
        memcpy(p, src, n);
}

static void put_priority(uint8_t *p, const sl_priority_spec *pri)
{
    put32(p, pri->dep_stream_id | (pri->exclusive ? 0x80000000u : 0));
    p[4] = (uint8_t)(pri->weight - 1);
}

long sl_frame_encode_data_header(uint8_t *out, size_t cap, uint32_t stream_id,
                                 size_t data_len, size_t pad, int end_stream)
{
    int ok;
    size_t plen = payload_len(0, data_len, pad, &ok);
    if (!ok || !id_ok(stream_id, 0)) /* RFC 9113 §6.1 */
        return SLUICE_ERR_INVAL;
    size_t hlen = SL_FRAME_HDR_LEN + (pad ? 1 : 0);
    if (cap < hlen)
        return SLUICE_ERR_NOBUF;
    uint8_t flags = (uint8_t)((end_stream ? SL_FLAG_END_STREAM : 0) |
                              (pad ? SL_FLAG_PADDED : 0));
    sl_frame_pack_header(out, (uint32_t)plen, SL_FRAME_DATA, flags, stream_id);
    if (pad)
        out[SL_FRAME_HDR_LEN] = (uint8_t)pad;
    return (long)hlen;
}

long sl_frame_encode_headers(uint8_t *out, size_t cap, uint32_t stream_id,
                             const uint8_t *frag, size_t frag_len, int end_stream,
                             int end_headers, const sl_priority_spec *pri, size_t pad)
{
    int ok;
    size_t fixed = pri ? SL_PRIORITY_LEN : 0;
    size_t plen = payload_len(fixed, frag_len, pad, &ok);
    if (!ok || !id_ok(stream_id, 0) || !bytes_ok(frag, frag_len) ||
        (pri && !pri_ok(stream_id, pri)))
        return SLUICE_ERR_INVAL;
    if (cap < SL_FRAME_HDR_LEN + plen)
        return SLUICE_ERR_NOBUF;
    uint8_t flags = (uint8_t)((end_stream ? SL_FLAG_END_STREAM : 0) |
                              (end_headers ? SL_FLAG_END_HEADERS : 0) |
                              (pad ? SL_FLAG_PADDED : 0) | (pri ? SL_FLAG_PRIORITY : 0));
    sl_frame_pack_header(out, (uint32_t)plen, SL_FRAME_HEADERS, flags, stream_id);
    uint8_t *p = out + SL_FRAME_HDR_LEN;
    if (pad)
        *p++ = (uint8_t)pad;
    if (pri) {
        put_priority(p, pri);
        p += SL_PRIORITY_LEN;
    }
    put_bytes(p, frag, frag_len);
    memset(p + frag_len, 0, pad); /* §6.2: padding is zeros */
    return (long)(SL_FRAME_HDR_LEN + plen);
}

long sl_frame_encode_priority(uint8_t *out, size_t cap, uint32_t stream_id,
                              const sl_priority_spec *pri)
{
    if (!pri || !id_ok(stream_id, 0) || !pri_ok(stream_id, pri))
        return SLUICE_ERR_INVAL;
    if (cap < SL_FRAME_HDR_LEN + SL_PRIORITY_LEN)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, SL_PRIORITY_LEN, SL_FRAME_PRIORITY, 0, stream_id);
    put_priority(out + SL_FRAME_HDR_LEN, pri);
    return SL_FRAME_HDR_LEN + SL_PRIORITY_LEN;
}

long sl_frame_encode_rst_stream(uint8_t *out, size_t cap, uint32_t stream_id,
                                uint32_t error_code)
{
    if (!id_ok(stream_id, 0)) /* RFC 9113 §6.4 */
        return SLUICE_ERR_INVAL;
    if (cap < SL_FRAME_HDR_LEN + 4)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, 4, SL_FRAME_RST_STREAM, 0, stream_id);
    put32(out + SL_FRAME_HDR_LEN, error_code);
    return SL_FRAME_HDR_LEN + 4;
}

long sl_frame_encode_settings(uint8_t *out, size_t cap, const sl_setting *s,
                              size_t n)
{
    if (!s && n > 0)
        return SLUICE_ERR_INVAL;
    if (n > SL_MAX_FRAME_SIZE_MAX / 6)
        return SLUICE_ERR_INVAL;
    for (size_t i = 0; i < n; i++)
        if (sl_settings_check(s[i].id, s[i].value) < 0)
            return SLUICE_ERR_INVAL;
    size_t plen = n * 6;
    if (cap < SL_FRAME_HDR_LEN + plen)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, (uint32_t)plen, SL_FRAME_SETTINGS, 0, 0);
    uint8_t *p = out + SL_FRAME_HDR_LEN;
    for (size_t i = 0; i < n; i++, p += 6) {
        put16(p, s[i].id);
        put32(p + 2, s[i].value);
    }
    return (long)(SL_FRAME_HDR_LEN + plen);
}

long sl_frame_encode_settings_ack(uint8_t *out, size_t cap)
{
    if (cap < SL_FRAME_HDR_LEN)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, 0, SL_FRAME_SETTINGS, SL_FLAG_ACK, 0);
    return SL_FRAME_HDR_LEN;
}

long sl_frame_encode_push_promise(uint8_t *out, size_t cap, uint32_t stream_id,
                                  uint32_t promised_stream_id, const uint8_t *frag,
                                  size_t frag_len, int end_headers, size_t pad)
{
    int ok;
    size_t plen = payload_len(4, frag_len, pad, &ok);
    if (!ok || !id_ok(stream_id, 0) || !id_ok(promised_stream_id, 0) ||
        !bytes_ok(frag, frag_len))
        return SLUICE_ERR_INVAL;
    if (cap < SL_FRAME_HDR_LEN + plen)
        return SLUICE_ERR_NOBUF;
    uint8_t flags = (uint8_t)((end_headers ? SL_FLAG_END_HEADERS : 0) |
                              (pad ? SL_FLAG_PADDED : 0));
    sl_frame_pack_header(out, (uint32_t)plen, SL_FRAME_PUSH_PROMISE, flags, stream_id);
    uint8_t *p = out + SL_FRAME_HDR_LEN;
    if (pad)
        *p++ = (uint8_t)pad;
    put32(p, promised_stream_id);
    p += 4;
    put_bytes(p, frag, frag_len);
    memset(p + frag_len, 0, pad); /* §6.6: padding is zeros */
    return (long)(SL_FRAME_HDR_LEN + plen);
}

long sl_frame_encode_ping(uint8_t *out, size_t cap, const uint8_t opaque[8], int ack)
{
    if (!opaque)
        return SLUICE_ERR_INVAL;
    if (cap < SL_FRAME_HDR_LEN + 8)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, 8, SL_FRAME_PING, ack ? SL_FLAG_ACK : 0, 0);
    memcpy(out + SL_FRAME_HDR_LEN, opaque, 8);
    return SL_FRAME_HDR_LEN + 8;
}

long sl_frame_encode_goaway(uint8_t *out, size_t cap, uint32_t last_stream_id,
                            uint32_t error_code, const uint8_t *debug, size_t debug_len)
{
    int ok;
    size_t plen = payload_len(8, debug_len, 0, &ok);
    if (!ok || !id_ok(last_stream_id, 1) || !bytes_ok(debug, debug_len))
        return SLUICE_ERR_INVAL;
    if (cap < SL_FRAME_HDR_LEN + plen)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, (uint32_t)plen, SL_FRAME_GOAWAY, 0, 0);
    put32(out + SL_FRAME_HDR_LEN, last_stream_id);
    put32(out + SL_FRAME_HDR_LEN + 4, error_code);
    put_bytes(out + SL_FRAME_HDR_LEN + 8, debug, debug_len);
    return (long)(SL_FRAME_HDR_LEN + plen);
}

long sl_frame_encode_window_update(uint8_t *out, size_t cap, uint32_t stream_id,
                                   uint32_t increment)
{
    /* RFC 9113 §6.9: 1..2^31-1 */
    if (!id_ok(stream_id, 1) || increment == 0 || increment > SL_MAX_WINDOW)
        return SLUICE_ERR_INVAL;
    if (cap < SL_FRAME_HDR_LEN + 4)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, 4, SL_FRAME_WINDOW_UPDATE, 0, stream_id);
    put32(out + SL_FRAME_HDR_LEN, increment);
    return SL_FRAME_HDR_LEN + 4;
}

long sl_frame_encode_continuation(uint8_t *out, size_t cap, uint32_t stream_id,
                                  const uint8_t *frag, size_t frag_len, int end_headers)
{
    int ok;
    size_t plen = payload_len(0, frag_len, 0, &ok);
    if (!ok || !id_ok(stream_id, 0) || !bytes_ok(frag, frag_len))
        return SLUICE_ERR_INVAL;
    if (cap < SL_FRAME_HDR_LEN + plen)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, (uint32_t)plen, SL_FRAME_CONTINUATION,
                         end_headers ? SL_FLAG_END_HEADERS : 0, stream_id);
    put_bytes(out + SL_FRAME_HDR_LEN, frag, frag_len);
    return (long)(SL_FRAME_HDR_LEN + plen);
}

long sl_frame_encode_priority_update(uint8_t *out, size_t cap,
                                     uint32_t prioritized_stream_id,
                                     const uint8_t *field, size_t field_len)
{
    int ok;
    size_t plen = payload_len(4, field_len, 0, &ok);
    if (!ok || !id_ok(prioritized_stream_id, 0) || !bytes_ok(field, field_len))
        return SLUICE_ERR_INVAL; /* RFC 9218 §7.1 */
    if (cap < SL_FRAME_HDR_LEN + plen)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, (uint32_t)plen, SL_FRAME_PRIORITY_UPDATE, 0, 0);
    put32(out + SL_FRAME_HDR_LEN, prioritized_stream_id);
    put_bytes(out + SL_FRAME_HDR_LEN + 4, field, field_len);
    return (long)(SL_FRAME_HDR_LEN + plen);
}
