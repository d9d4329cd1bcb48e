/* test_frame.c — the HTTP/2 frame codec: exact bytes of every encoder, every
 * decoder rule with its error and scope, and decoding in any split. */
#include "t.h"
#include "frame.h"

/* A frame header as bytes: 24-bit length, type, flags, 32-bit stream id. */
#define HDR(len, type, flags, sid)                                             \
    (uint8_t)(((len) >> 16) & 0xff), (uint8_t)(((len) >> 8) & 0xff),          \
        (uint8_t)((len) & 0xff), (uint8_t)(type), (uint8_t)(flags),            \
        (uint8_t)(((sid) >> 24) & 0xff), (uint8_t)(((sid) >> 16) & 0xff),      \
        (uint8_t)(((sid) >> 8) & 0xff), (uint8_t)((sid) & 0xff)

/* ---- helpers ------------------------------------------------------------ */

static void dec_init(sl_frame_decoder *d, const sluice_allocator *a)
{
    sl_mem m;
    sl_mem_init(&m, a);
    sl_frame_decoder_init(d, &m);
}

/* Decode exactly one frame that is whole in `in`; returns sl_frame_decode's
 * result. Pointers in *f stay valid as long as `in` does. */
static int dec_one(const uint8_t *in, size_t len, sl_frame *f, sl_frame_error *e,
                   size_t *consumed)
{
    sl_frame_decoder d;
    dec_init(&d, NULL);
    int rc = sl_frame_decode(&d, in, len, consumed, f, e);
    sl_frame_decoder_free(&d);
    return rc;
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix_u(uint64_t h, uint64_t v)
{
    return mix(h, &v, sizeof(v));
}

static uint64_t mix_pri(uint64_t h, const sl_priority_spec *p)
{
    return mix_u(mix_u(mix_u(h, p->dep_stream_id), p->exclusive), p->weight);
}

/* Everything the decoder reported about a frame, pointers followed. */
static uint64_t frame_digest(const sl_frame *f)
{
    uint64_t h = 14695981039346656037ull;
    h = mix_u(mix_u(mix_u(mix_u(h, f->length), f->type), f->flags), f->stream_id);
    switch (f->type) {
    case SL_FRAME_DATA:
        return mix_u(mix(h, f->u.data.data, f->u.data.len), f->u.data.pad);
    case SL_FRAME_HEADERS:
        h = mix(h, f->u.headers.block, f->u.headers.len);
        h = mix_u(mix_u(h, f->u.headers.pad), (uint64_t)f->u.headers.has_priority);
        return mix_pri(h, &f->u.headers.pri);
    case SL_FRAME_PRIORITY: return mix_pri(h, &f->u.priority);
    case SL_FRAME_RST_STREAM: return mix_u(h, f->u.rst_stream.error_code);
    case SL_FRAME_SETTINGS: return mix(h, f->u.settings.raw, f->u.settings.n * 6);
    case SL_FRAME_PUSH_PROMISE:
        h = mix(h, f->u.push_promise.block, f->u.push_promise.len);
        return mix_u(mix_u(h, f->u.push_promise.pad), f->u.push_promise.promised_stream_id);
    case SL_FRAME_PING: return mix(h, f->u.ping.opaque, 8);
    case SL_FRAME_GOAWAY:
        h = mix(h, f->u.goaway.debug, f->u.goaway.debug_len);
        return mix_u(mix_u(h, f->u.goaway.last_stream_id), f->u.goaway.error_code);
    case SL_FRAME_WINDOW_UPDATE: return mix_u(h, f->u.window_update.increment);
    case SL_FRAME_CONTINUATION:
        return mix(h, f->u.continuation.block, f->u.continuation.len);
    case SL_FRAME_PRIORITY_UPDATE:
        h = mix(h, f->u.priority_update.field, f->u.priority_update.len);
        return mix_u(h, f->u.priority_update.prioritized_stream_id);
    }
    return mix(h, f->u.unknown.payload, f->u.unknown.len);
}

typedef struct ev {
    int rc;
    uint8_t type;
    uint32_t stream_id;
    size_t end; /* input offset just after the frame or error */
    uint64_t digest;
    sl_frame_error e;
} ev;

#define MAX_EV 128

/* After a connection error, every call must return the same error. */
static int still_failed(sl_frame_decoder *d, const sl_frame_error *first)
{
    static const uint8_t ack[] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
    sl_frame f;
    sl_frame_error e;
    size_t used = 1;
    int rc = sl_frame_decode(d, ack, sizeof(ack), &used, &f, &e);
    return rc == first->err && used == 0 && e.err == first->err &&
           e.h2_code == first->h2_code && e.stream_scope == 0 &&
           e.reason == first->reason;
}

/* Decode in[0..len) handing the decoder `chunk` bytes at a time (0: all at
 * once), recording each frame and error until a connection error. */
static size_t run(const uint8_t *in, size_t len, size_t chunk, uint32_t max_fs,
                  ev *out)
{
    sl_frame_decoder d;
    size_t off = 0, n = 0;
    dec_init(&d, NULL);
    if (max_fs)
        sl_frame_decoder_set_max_frame_size(&d, max_fs);
    while (off < len && n < MAX_EV) {
        size_t avail = len - off, used = 0;
        if (chunk && avail > chunk)
            avail = chunk;
        sl_frame f;
        sl_frame_error e;
        memset(&e, 0, sizeof(e));
        int rc = sl_frame_decode(&d, in + off, avail, &used, &f, &e);
        off += used;
        if (rc == 0 && used == avail)
            continue;
        ev *v = &out[n++];
        memset(v, 0, sizeof(*v));
        v->rc = rc == 0 ? 99 : rc; /* 99: returned 0 with input left over */
        v->end = off;
        if (rc == 1) {
            v->type = f.type;
            v->stream_id = f.stream_id;
            v->digest = frame_digest(&f);
        } else {
            v->e = e;
        }
        if (rc == 0)
            break;
        if (rc < 0 && !e.stream_scope) {
            if (!still_failed(&d, &e) && n < MAX_EV)
                out[n++].rc = 98; /* 98: the error did not stick */
            break;
        }
    }
    sl_frame_decoder_free(&d);
    return n;
}

static int same_events(const ev *a, size_t na, const ev *b, size_t nb)
{
    if (na != nb) {
        T_FAIL("%zu events, expected %zu", nb, na);
        return 0;
    }
    for (size_t i = 0; i < na; i++) {
        if (a[i].rc != b[i].rc || a[i].type != b[i].type ||
            a[i].stream_id != b[i].stream_id || a[i].digest != b[i].digest ||
            a[i].end != b[i].end ||
            a[i].e.err != b[i].e.err || a[i].e.h2_code != b[i].e.h2_code ||
            a[i].e.stream_id != b[i].e.stream_id ||
            a[i].e.stream_scope != b[i].e.stream_scope || a[i].e.reason != b[i].e.reason) {
            T_FAIL("event %zu differs (rc %d vs %d, type %u vs %u)", i, a[i].rc,
                   b[i].rc, a[i].type, b[i].type);
            return 0;
        }
    }
    return 1;
}

/* The input must end in the given error, the same whether it is decoded
 * all at once or one byte at a time. */
static int expect_error(const uint8_t *in, size_t len, int err, uint32_t h2,
                        int stream_scope, uint32_t stream_id)
{
    ev all[MAX_EV], bytes[MAX_EV];
    size_t na = run(in, len, 0, 0, all);
    size_t nb = run(in, len, 1, 0, bytes);
    if (!same_events(all, na, bytes, nb))
        return 0;
    if (na == 0) {
        T_FAIL("no error reported");
        return 0;
    }
    const ev *v = &all[na - 1];
    if (v->rc != err || v->e.err != err || v->e.h2_code != h2 ||
        v->e.stream_scope != stream_scope || v->e.stream_id != stream_id ||
        v->e.reason == NULL) {
        T_FAIL("got rc %d err %d h2 %u scope %d stream %u (%s)", v->rc, v->e.err,
               v->e.h2_code, v->e.stream_scope, v->e.stream_id,
               v->e.reason ? v->e.reason : "no reason");
        return 0;
    }
    return 1;
}

#define CONN_PROTOCOL SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR, 0, 0
#define CONN_FRAME_SIZE SLUICE_ERR_FRAME_SIZE, SLUICE_H2_FRAME_SIZE_ERROR, 0, 0
#define CHECK_ERROR(arr, ...) CHECK(expect_error((arr), sizeof(arr), __VA_ARGS__))

/* Allocator that counts, and fails once `fail` is set. */
typedef struct counting {
    int allocs, frees, fail;
    size_t largest;
} counting;

static void *c_malloc(size_t n, void *ud)
{
    counting *c = ud;
    if (c->fail)
        return NULL;
    c->allocs++;
    if (n > c->largest)
        c->largest = n;
    return malloc(n ? n : 1);
}

static void *c_realloc(void *p, size_t n, void *ud)
{
    counting *c = ud;
    if (c->fail)
        return NULL;
    if (!p)
        c->allocs++;
    if (n > c->largest)
        c->largest = n;
    return realloc(p, n ? n : 1);
}

static void c_free(void *p, void *ud)
{
    counting *c = ud;
    if (p)
        c->frees++;
    free(p);
}

/* ---- encoders: exact bytes, then decoded back --------------------------- */

TEST(data_header_encode)
{
    uint8_t out[16];
    static const uint8_t plain[] = {0x00, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01};
    static const uint8_t padded[] = {0x00, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x03, 0x02};
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), 1, 5, 0, 1), 9);
    CHECK_MEM(out, 9, plain, sizeof(plain));
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), 3, 5, 2, 0), 10);
    CHECK_MEM(out, 10, padded, sizeof(padded));
    CHECK_INT(sl_frame_encode_data_header(out, 9, 3, 5, 2, 0), SLUICE_ERR_NOBUF);
    CHECK_INT(sl_frame_encode_data_header(out, 8, 1, 5, 0, 0), SLUICE_ERR_NOBUF);
}

TEST(data_decode_points_into_input)
{
    static const uint8_t in[] = {0x00, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
                                 'h', 'e', 'l', 'l', 'o', 0xee};
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(dec_one(in, sizeof(in), &f, &e, &used), 1);
    CHECK_INT(used, 14); /* the next frame's first byte is left alone */
    CHECK_INT(f.type, SL_FRAME_DATA);
    CHECK_INT(f.flags, SL_FLAG_END_STREAM);
    CHECK_INT(f.stream_id, 1);
    CHECK_INT(f.length, 5);
    CHECK(f.u.data.data == in + 9); /* not copied */
    CHECK_MEM(f.u.data.data, f.u.data.len, "hello", 5);
    CHECK_INT(f.u.data.pad, 0);
}

TEST(data_padding_stripped)
{
    static const uint8_t in[] = {0x00, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x03,
                                 0x02, 'h', 'e', 'l', 'l', 'o', 0x00, 0x00};
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(dec_one(in, sizeof(in), &f, &e, &used), 1);
    CHECK_INT(used, sizeof(in));
    CHECK_INT(f.length, 8);
    CHECK_INT(f.u.data.pad, 2);
    CHECK(f.u.data.data == in + 10);
    CHECK_MEM(f.u.data.data, f.u.data.len, "hello", 5);
}

TEST(data_padding_may_fill_payload)
{
    /* Pad length 2 in a 3-byte payload: no data, allowed (§6.1). */
    static const uint8_t in[] = {HDR(3, 0x0, 0x08, 1), 0x02, 0x00, 0x00};
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(dec_one(in, sizeof(in), &f, &e, &used), 1);
    CHECK_INT(f.u.data.len, 0);
    CHECK_INT(f.u.data.pad, 2);
    CHECK(f.u.data.data != NULL);
}

TEST(empty_data_frame)
{
    static const uint8_t in[] = {HDR(0, 0x0, 0x1, 7)};
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(dec_one(in, sizeof(in), &f, &e, &used), 1);
    CHECK_INT(used, 9);
    CHECK_INT(f.u.data.len, 0);
    CHECK(f.u.data.data != NULL);
}

TEST(headers_encode_decode)
{
    static const uint8_t frag[] = {0x82, 0x86};
    static const uint8_t plain[] = {0x00, 0x00, 0x02, 0x01, 0x05, 0x00, 0x00, 0x00, 0x01,
                                    0x82, 0x86};
    uint8_t out[64];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 1, frag, 2, 1, 1, NULL, 0), 11);
    CHECK_MEM(out, 11, plain, sizeof(plain));
    CHECK_INT(dec_one(out, 11, &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_HEADERS);
    CHECK_INT(f.flags, SL_FLAG_END_STREAM | SL_FLAG_END_HEADERS);
    CHECK_INT(f.u.headers.has_priority, 0);
    CHECK_INT(f.u.headers.pad, 0);
    CHECK_MEM(f.u.headers.block, f.u.headers.len, frag, 2);
}

TEST(headers_priority_padded_encode_decode)
{
    static const uint8_t frag[] = {0x82, 0x86};
    static const uint8_t want[] = {0x00, 0x00, 0x09, 0x01, 0x2c, 0x00, 0x00, 0x00, 0x05,
                                   0x01,                         /* pad length */
                                   0x80, 0x00, 0x00, 0x03, 0xff, /* E, dep 3, weight 256 */
                                   0x82, 0x86, 0x00};
    sl_priority_spec pri = {3, 1, 256};
    uint8_t out[64];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 5, frag, 2, 0, 1, &pri, 1), 18);
    CHECK_MEM(out, 18, want, sizeof(want));
    CHECK_INT(sl_frame_encode_headers(out, 17, 5, frag, 2, 0, 1, &pri, 1), SLUICE_ERR_NOBUF);
    CHECK_INT(dec_one(want, sizeof(want), &f, &e, &used), 1);
    CHECK_INT(f.stream_id, 5);
    CHECK_INT(f.length, 9);
    CHECK_INT(f.u.headers.has_priority, 1);
    CHECK_INT(f.u.headers.pri.dep_stream_id, 3);
    CHECK_INT(f.u.headers.pri.exclusive, 1);
    CHECK_INT(f.u.headers.pri.weight, 256);
    CHECK_INT(f.u.headers.pad, 1);
    CHECK_MEM(f.u.headers.block, f.u.headers.len, frag, 2);
}

TEST(priority_encode_decode)
{
    static const uint8_t want[] = {0x00, 0x00, 0x05, 0x02, 0x00, 0x00, 0x00, 0x00, 0x05,
                                   0x00, 0x00, 0x00, 0x03, 0x0f};
    sl_priority_spec pri = {3, 0, 16};
    uint8_t out[32];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_priority(out, sizeof(out), 5, &pri), 14);
    CHECK_MEM(out, 14, want, sizeof(want));
    CHECK_INT(sl_frame_encode_priority(out, 13, 5, &pri), SLUICE_ERR_NOBUF);
    CHECK_INT(dec_one(want, sizeof(want), &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_PRIORITY);
    CHECK_INT(f.stream_id, 5);
    CHECK_INT(f.u.priority.dep_stream_id, 3);
    CHECK_INT(f.u.priority.exclusive, 0);
    CHECK_INT(f.u.priority.weight, 16);
}

TEST(rst_stream_encode_decode)
{
    static const uint8_t want[] = {0x00, 0x00, 0x04, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01,
                                   0x00, 0x00, 0x00, 0x08};
    uint8_t out[32];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_rst_stream(out, sizeof(out), 1, SLUICE_H2_CANCEL), 13);
    CHECK_MEM(out, 13, want, sizeof(want));
    CHECK_INT(sl_frame_encode_rst_stream(out, 12, 1, 8), SLUICE_ERR_NOBUF);
    CHECK_INT(dec_one(want, sizeof(want), &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_RST_STREAM);
    CHECK_INT(f.stream_id, 1);
    CHECK_INT(f.u.rst_stream.error_code, SLUICE_H2_CANCEL);
}

TEST(settings_encode_decode)
{
    static const sl_setting s[] = {{SL_SETTINGS_HEADER_TABLE_SIZE, 4096},
                                   {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                   {SL_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
    static const uint8_t want[] = {0x00, 0x00, 0x12, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x01, 0x00, 0x00, 0x10, 0x00,
                                   0x00, 0x03, 0x00, 0x00, 0x00, 0x64,
                                   0x00, 0x04, 0x00, 0x00, 0xff, 0xff};
    uint8_t out[64];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    sl_setting got;
    CHECK_INT(sl_frame_encode_settings(out, sizeof(out), s, 3), 27);
    CHECK_MEM(out, 27, want, sizeof(want));
    CHECK_INT(sl_frame_encode_settings(out, 26, s, 3), SLUICE_ERR_NOBUF);
    CHECK_INT(dec_one(want, sizeof(want), &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_SETTINGS);
    CHECK_INT(f.u.settings.n, 3);
    for (size_t i = 0; i < 3; i++) {
        sl_frame_settings_get(&f, i, &got);
        CHECK_INT(got.id, s[i].id);
        CHECK_INT(got.value, s[i].value);
    }
}

TEST(settings_empty_and_ack)
{
    static const uint8_t empty[] = {0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t ack[] = {0x00, 0x00, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00};
    uint8_t out[16];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_settings(out, sizeof(out), NULL, 0), 9);
    CHECK_MEM(out, 9, empty, sizeof(empty));
    CHECK_INT(sl_frame_encode_settings_ack(out, sizeof(out)), 9);
    CHECK_MEM(out, 9, ack, sizeof(ack));
    CHECK_INT(sl_frame_encode_settings_ack(out, 8), SLUICE_ERR_NOBUF);
    CHECK_INT(dec_one(ack, sizeof(ack), &f, &e, &used), 1);
    CHECK_INT(f.flags, SL_FLAG_ACK);
    CHECK_INT(f.u.settings.n, 0);
}

TEST(push_promise_encode_decode)
{
    static const uint8_t frag[] = {0x82};
    static const uint8_t plain[] = {0x00, 0x00, 0x05, 0x05, 0x04, 0x00, 0x00, 0x00, 0x01,
                                    0x00, 0x00, 0x00, 0x02, 0x82};
    static const uint8_t padded[] = {0x00, 0x00, 0x09, 0x05, 0x08, 0x00, 0x00, 0x00, 0x01,
                                     0x03, 0x00, 0x00, 0x00, 0x04, 0x82, 0x00, 0x00, 0x00};
    uint8_t out[64];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_push_promise(out, sizeof(out), 1, 2, frag, 1, 1, 0), 14);
    CHECK_MEM(out, 14, plain, sizeof(plain));
    CHECK_INT(sl_frame_encode_push_promise(out, sizeof(out), 1, 4, frag, 1, 0, 3), 18);
    CHECK_MEM(out, 18, padded, sizeof(padded));
    CHECK_INT(sl_frame_encode_push_promise(out, 17, 1, 4, frag, 1, 0, 3), SLUICE_ERR_NOBUF);
    CHECK_INT(dec_one(plain, sizeof(plain), &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_PUSH_PROMISE);
    CHECK_INT(f.u.push_promise.promised_stream_id, 2);
    CHECK_MEM(f.u.push_promise.block, f.u.push_promise.len, frag, 1);
    CHECK_INT(dec_one(padded, sizeof(padded), &f, &e, &used), 1);
    CHECK_INT(f.u.push_promise.promised_stream_id, 4);
    CHECK_INT(f.u.push_promise.pad, 3);
    CHECK_MEM(f.u.push_promise.block, f.u.push_promise.len, frag, 1);
}

TEST(ping_encode_decode)
{
    static const uint8_t opaque[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t want[] = {0x00, 0x00, 0x08, 0x06, 0x01, 0x00, 0x00, 0x00, 0x00,
                                   1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t out[32];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_ping(out, sizeof(out), opaque, 1), 17);
    CHECK_MEM(out, 17, want, sizeof(want));
    CHECK_INT(sl_frame_encode_ping(out, 16, opaque, 1), SLUICE_ERR_NOBUF);
    CHECK_INT(sl_frame_encode_ping(out, sizeof(out), opaque, 0), 17);
    CHECK_INT(out[4], 0);
    CHECK_INT(dec_one(want, sizeof(want), &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_PING);
    CHECK_INT(f.flags, SL_FLAG_ACK);
    CHECK_MEM(f.u.ping.opaque, 8, opaque, 8);
}

TEST(goaway_encode_decode)
{
    static const uint8_t want[] = {0x00, 0x00, 0x0a, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x02, 'h', 'i'};
    uint8_t out[32];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_goaway(out, sizeof(out), 7, 2, (const uint8_t *)"hi", 2), 19);
    CHECK_MEM(out, 19, want, sizeof(want));
    CHECK_INT(sl_frame_encode_goaway(out, 18, 7, 2, (const uint8_t *)"hi", 2), SLUICE_ERR_NOBUF);
    CHECK_INT(sl_frame_encode_goaway(out, sizeof(out), SL_MAX_WINDOW, 0, NULL, 0), 17);
    CHECK_INT(dec_one(want, sizeof(want), &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_GOAWAY);
    CHECK_INT(f.u.goaway.last_stream_id, 7);
    CHECK_INT(f.u.goaway.error_code, SLUICE_H2_INTERNAL_ERROR);
    CHECK_MEM(f.u.goaway.debug, f.u.goaway.debug_len, "hi", 2);
}

TEST(window_update_encode_decode)
{
    static const uint8_t conn[] = {0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0xff, 0xff};
    static const uint8_t strm[] = {0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x03,
                                   0x7f, 0xff, 0xff, 0xff};
    uint8_t out[32];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_window_update(out, sizeof(out), 0, 65535), 13);
    CHECK_MEM(out, 13, conn, sizeof(conn));
    CHECK_INT(sl_frame_encode_window_update(out, sizeof(out), 3, SL_MAX_WINDOW), 13);
    CHECK_MEM(out, 13, strm, sizeof(strm));
    CHECK_INT(sl_frame_encode_window_update(out, 12, 3, 1), SLUICE_ERR_NOBUF);
    CHECK_INT(dec_one(strm, sizeof(strm), &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(f.stream_id, 3);
    CHECK_INT(f.u.window_update.increment, SL_MAX_WINDOW);
}

TEST(continuation_encode_decode)
{
    static const uint8_t want[] = {0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01,
                                   0x00, 0x00, 0x01, 0x09, 0x04, 0x00, 0x00, 0x00, 0x01,
                                   0x84};
    static const uint8_t frag[] = {0x84};
    uint8_t out[32];
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 1, NULL, 0, 0, 0, NULL, 0), 9);
    CHECK_INT(sl_frame_encode_continuation(out + 9, sizeof(out) - 9, 1, frag, 1, 1), 10);
    CHECK_MEM(out, 19, want, sizeof(want));
    CHECK_INT(sl_frame_encode_continuation(out, 9, 1, frag, 1, 1), SLUICE_ERR_NOBUF);
    dec_init(&d, NULL);
    CHECK_INT(sl_frame_decode(&d, want, sizeof(want), &used, &f, &e), 1);
    CHECK_INT(used, 9);
    CHECK_INT(d.continuation_stream, 1);
    CHECK_INT(sl_frame_decode(&d, want + 9, sizeof(want) - 9, &used, &f, &e), 1);
    CHECK_INT(f.type, SL_FRAME_CONTINUATION);
    CHECK_INT(f.flags, SL_FLAG_END_HEADERS);
    CHECK_MEM(f.u.continuation.block, f.u.continuation.len, frag, 1);
    CHECK_INT(d.continuation_stream, 0);
    sl_frame_decoder_free(&d);
}

TEST(priority_update_encode_decode)
{
    static const uint8_t want[] = {0x00, 0x00, 0x07, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x01, 'u', '=', '1'};
    uint8_t out[32];
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(sl_frame_encode_priority_update(out, sizeof(out), 1, (const uint8_t *)"u=1", 3), 16);
    CHECK_MEM(out, 16, want, sizeof(want));
    CHECK_INT(sl_frame_encode_priority_update(out, 15, 1, (const uint8_t *)"u=1", 3),
              SLUICE_ERR_NOBUF);
    CHECK_INT(dec_one(want, sizeof(want), &f, &e, &used), 1);
    CHECK_INT(f.type, SL_FRAME_PRIORITY_UPDATE);
    CHECK_INT(f.stream_id, 0);
    CHECK_INT(f.u.priority_update.prioritized_stream_id, 1);
    CHECK_MEM(f.u.priority_update.field, f.u.priority_update.len, "u=1", 3);
}

TEST(pack_header_masks_reserved_bit)
{
    static const uint8_t want[] = {0x12, 0x34, 0x56, 0xfa, 0xff, 0x7f, 0xff, 0xff, 0xff};
    uint8_t out[9];
    sl_frame_pack_header(out, 0x123456, 0xfa, 0xff, 0xffffffffu);
    CHECK_MEM(out, 9, want, sizeof(want));
}

TEST(nobuf_writes_nothing)
{
    uint8_t out[32], ref[32];
    static const uint8_t frag[] = {1, 2, 3};
    memset(out, 0xaa, sizeof(out));
    memcpy(ref, out, sizeof(out));
    CHECK_INT(sl_frame_encode_headers(out, 11, 1, frag, 3, 0, 1, NULL, 0), SLUICE_ERR_NOBUF);
    CHECK_INT(sl_frame_encode_goaway(out, 16, 1, 0, NULL, 0), SLUICE_ERR_NOBUF);
    CHECK_INT(sl_frame_encode_window_update(out, 0, 1, 1), SLUICE_ERR_NOBUF);
    CHECK_MEM(out, sizeof(out), ref, sizeof(ref));
}

/* ---- encoders: what we must not send ------------------------------------ */

TEST(encode_rejects_stream_zero)
{
    uint8_t out[64];
    static const uint8_t frag[] = {0x82};
    sl_priority_spec pri = {0, 0, 16};
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), 0, 1, 0, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 0, frag, 1, 0, 1, NULL, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_priority(out, sizeof(out), 0, &pri), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_rst_stream(out, sizeof(out), 0, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_push_promise(out, sizeof(out), 0, 2, frag, 1, 1, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_push_promise(out, sizeof(out), 1, 0, frag, 1, 1, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_continuation(out, sizeof(out), 0, frag, 1, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_priority_update(out, sizeof(out), 0, frag, 1), SLUICE_ERR_INVAL);
}

TEST(encode_rejects_top_bit_ids)
{
    uint8_t out[64];
    static const uint8_t frag[] = {0x82};
    sl_priority_spec bad_dep = {0x80000001u, 0, 16}, ok = {0, 0, 16};
    const uint32_t big = 0x80000001u;
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), big, 1, 0, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), big, frag, 1, 0, 1, NULL, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 3, frag, 1, 0, 1, &bad_dep, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_priority(out, sizeof(out), big, &ok), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_rst_stream(out, sizeof(out), big, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_push_promise(out, sizeof(out), 1, big, frag, 1, 1, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_goaway(out, sizeof(out), big, 0, NULL, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_window_update(out, sizeof(out), big, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_continuation(out, sizeof(out), big, frag, 1, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_priority_update(out, sizeof(out), big, frag, 1), SLUICE_ERR_INVAL);
}

TEST(encode_rejects_bad_increment)
{
    uint8_t out[32];
    CHECK_INT(sl_frame_encode_window_update(out, sizeof(out), 1, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_window_update(out, sizeof(out), 0, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_window_update(out, sizeof(out), 0, 0x80000000u), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_window_update(out, sizeof(out), 0, 1), 13);
}

TEST(encode_rejects_bad_lengths_and_pad)
{
    uint8_t out[600];
    static const uint8_t frag[] = {0x82};
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), 1, 1, 256, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), 1, 1, 255, 0), 10);
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), 1, SL_MAX_FRAME_SIZE_MAX, 0, 0), 9);
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), 1, SL_MAX_FRAME_SIZE_MAX, 1, 0),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_data_header(out, sizeof(out), 1, (size_t)SL_MAX_FRAME_SIZE_MAX + 1, 0, 0),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 1, frag, 1, 0, 1, NULL, 256), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 1, frag, (size_t)SL_MAX_FRAME_SIZE_MAX + 1, 0, 1,
                                      NULL, 0),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_push_promise(out, sizeof(out), 1, 2, frag, 1, 1, 256), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_push_promise(out, sizeof(out), 1, 2, frag, SL_MAX_FRAME_SIZE_MAX - 3, 1, 0),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_continuation(out, sizeof(out), 1, frag, (size_t)SL_MAX_FRAME_SIZE_MAX + 1, 1),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_goaway(out, sizeof(out), 1, 0, frag, SL_MAX_FRAME_SIZE_MAX - 7),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_priority_update(out, sizeof(out), 1, frag, SL_MAX_FRAME_SIZE_MAX - 3),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 1, NULL, 1, 0, 1, NULL, 0), SLUICE_ERR_INVAL);
}

TEST(encode_rejects_bad_priority)
{
    uint8_t out[64];
    sl_priority_spec self = {5, 0, 16}, w0 = {3, 0, 0}, w257 = {3, 0, 257};
    CHECK_INT(sl_frame_encode_priority(out, sizeof(out), 5, &self), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_priority(out, sizeof(out), 5, &w0), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_priority(out, sizeof(out), 5, &w257), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_priority(out, sizeof(out), 5, NULL), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_headers(out, sizeof(out), 5, NULL, 0, 0, 1, &self, 0), SLUICE_ERR_INVAL);
}

TEST(encode_rejects_bad_settings)
{
    uint8_t out[64];
    static const sl_setting bad[] = {
        {SL_SETTINGS_ENABLE_PUSH, 2},
        {SL_SETTINGS_INITIAL_WINDOW_SIZE, 0x80000000u},
        {SL_SETTINGS_MAX_FRAME_SIZE, 16383},
        {SL_SETTINGS_MAX_FRAME_SIZE, 16777216},
        {SL_SETTINGS_ENABLE_CONNECT_PROTOCOL, 2},
        {SL_SETTINGS_NO_RFC7540_PRIORITIES, 2},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(sl_frame_encode_settings(out, sizeof(out), &bad[i], 1), SLUICE_ERR_INVAL);
    CHECK_INT(sl_frame_encode_settings(out, sizeof(out), NULL, 1), SLUICE_ERR_INVAL);
}

TEST(settings_check_values)
{
    CHECK_INT(sl_settings_check(SL_SETTINGS_ENABLE_PUSH, 0), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_ENABLE_PUSH, 1), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_ENABLE_PUSH, 2), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_settings_check(SL_SETTINGS_INITIAL_WINDOW_SIZE, 0x7fffffff), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_INITIAL_WINDOW_SIZE, 0x80000000u),
              SLUICE_ERR_FLOW_CONTROL);
    CHECK_INT(sl_settings_check(SL_SETTINGS_MAX_FRAME_SIZE, 16383), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_settings_check(SL_SETTINGS_MAX_FRAME_SIZE, 16384), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_MAX_FRAME_SIZE, 16777215), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_MAX_FRAME_SIZE, 16777216), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_settings_check(SL_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_ENABLE_CONNECT_PROTOCOL, 2), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_settings_check(SL_SETTINGS_NO_RFC7540_PRIORITIES, 1), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_NO_RFC7540_PRIORITIES, 2), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_settings_check(SL_SETTINGS_HEADER_TABLE_SIZE, 0xffffffffu), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_MAX_CONCURRENT_STREAMS, 0xffffffffu), 0);
    CHECK_INT(sl_settings_check(SL_SETTINGS_MAX_HEADER_LIST_SIZE, 0xffffffffu), 0);
    CHECK_INT(sl_settings_check(0x0, 0xffffffffu), 0);
    CHECK_INT(sl_settings_check(0xabcd, 0xffffffffu), 0);
}

/* ---- decoder: size ---------------------------------------------------------- */

TEST(oversized_frame_rejected_from_header)
{
    /* Only the 9 header bytes are given: the error needs no payload, and
     * nothing is allocated for it. */
    static const uint8_t in[] = {HDR(16385, 0x0, 0x0, 1)};
    counting c = {0, 0, 0, 0};
    sluice_allocator a = {c_malloc, c_realloc, c_free, &c};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used;
    dec_init(&d, &a);
    CHECK_INT(sl_frame_decode(&d, in, 8, &used, &f, &e), 0);
    CHECK_INT(used, 8);
    CHECK_INT(sl_frame_decode(&d, in + 8, 1, &used, &f, &e), SLUICE_ERR_FRAME_SIZE);
    CHECK_INT(used, 1);
    CHECK_INT(e.h2_code, SLUICE_H2_FRAME_SIZE_ERROR);
    CHECK_INT(e.stream_scope, 0);
    CHECK_INT(c.allocs, 0);
    sl_frame_decoder_free(&d);
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(oversized_unknown_type_rejected)
{
    static const uint8_t in[] = {HDR(16385, 0xfa, 0x0, 0)};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(max_frame_size_raised)
{
    static uint8_t in[9 + 16385];
    static const uint8_t hdr[] = {HDR(16385, 0x0, 0x0, 1)};
    counting c = {0, 0, 0, 0};
    sluice_allocator a = {c_malloc, c_realloc, c_free, &c};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used;
    memcpy(in, hdr, 9);
    memset(in + 9, 'x', 16385);
    dec_init(&d, &a);
    sl_frame_decoder_set_max_frame_size(&d, 16385);
    /* In two pieces: the payload is buffered, in one allocation. */
    CHECK_INT(sl_frame_decode(&d, in, 100, &used, &f, &e), 0);
    CHECK_INT(sl_frame_decode(&d, in + 100, sizeof(in) - 100, &used, &f, &e), 1);
    CHECK_INT(used, sizeof(in) - 100);
    CHECK_INT(f.u.data.len, 16385);
    CHECK(f.u.data.data == d.buf);
    CHECK_MEM(f.u.data.data, f.u.data.len, in + 9, 16385);
    CHECK_INT(c.allocs, 1);
    CHECK_INT(c.largest, 16385);
    sl_frame_decoder_free(&d);
    CHECK_INT(c.frees, 1);
}

TEST(max_frame_size_clamped)
{
    sl_frame_decoder d;
    dec_init(&d, NULL);
    CHECK_INT(d.max_frame_size, 16384);
    sl_frame_decoder_set_max_frame_size(&d, 100);
    CHECK_INT(d.max_frame_size, 16384);
    sl_frame_decoder_set_max_frame_size(&d, 0xffffffffu);
    CHECK_INT(d.max_frame_size, SL_MAX_FRAME_SIZE_MAX);
    sl_frame_decoder_free(&d);
}

TEST(split_payload_is_buffered_whole_is_not)
{
    static const uint8_t in[] = {HDR(4, 0x0, 0x0, 1), 'a', 'b', 'c', 'd'};
    counting c = {0, 0, 0, 0};
    sluice_allocator a = {c_malloc, c_realloc, c_free, &c};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used;
    dec_init(&d, &a);
    /* Header alone, then the whole payload: still no copy. */
    CHECK_INT(sl_frame_decode(&d, in, 9, &used, &f, &e), 0);
    CHECK_INT(sl_frame_decode(&d, in + 9, 4, &used, &f, &e), 1);
    CHECK(f.u.data.data == in + 9);
    CHECK_INT(c.allocs, 0);
    /* Payload in pieces: copied, and the pieces joined. */
    CHECK_INT(sl_frame_decode(&d, in, 11, &used, &f, &e), 0);
    CHECK_INT(used, 11);
    CHECK_INT(sl_frame_decode(&d, in + 11, 2, &used, &f, &e), 1);
    CHECK(f.u.data.data == d.buf);
    CHECK_MEM(f.u.data.data, f.u.data.len, "abcd", 4);
    CHECK_INT(c.allocs, 1);
    sl_frame_decoder_free(&d);
    CHECK_INT(c.frees, 1);
}

TEST(dribbled_payload_buffer_grows_with_input)
{
    /* A header announcing 16384 bytes, then 10: the buffer holds what came,
     * not what was announced. */
    static uint8_t in[9 + 16384];
    static const uint8_t hdr[] = {HDR(16384, 0x0, 0x0, 1)};
    counting c = {0, 0, 0, 0};
    sluice_allocator a = {c_malloc, c_realloc, c_free, &c};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used;
    memcpy(in, hdr, 9);
    for (size_t i = 9; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    dec_init(&d, &a);
    CHECK_INT(sl_frame_decode(&d, in, 19, &used, &f, &e), 0);
    CHECK_INT(c.largest, 1024);
    CHECK_INT(sl_frame_decode(&d, in + 19, 3000, &used, &f, &e), 0);
    CHECK_INT(c.largest, 3010); /* all that has arrived so far */
    CHECK_INT(sl_frame_decode(&d, in + 3019, sizeof(in) - 3019, &used, &f, &e), 1);
    CHECK_INT(c.largest, 16384);
    CHECK_MEM(f.u.data.data, f.u.data.len, in + 9, 16384);
    sl_frame_decoder_free(&d);
    CHECK_INT(c.allocs, 1);
    CHECK_INT(c.frees, 1);
}

TEST(nomem_is_fatal)
{
    static const uint8_t in[] = {HDR(4, 0x0, 0x0, 1), 'a', 'b', 'c', 'd'};
    counting c = {0, 0, 1, 0};
    sluice_allocator a = {c_malloc, c_realloc, c_free, &c};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used;
    dec_init(&d, &a);
    CHECK_INT(sl_frame_decode(&d, in, 10, &used, &f, &e), SLUICE_ERR_NOMEM);
    CHECK_INT(e.h2_code, SLUICE_H2_INTERNAL_ERROR);
    CHECK_INT(e.stream_scope, 0);
    c.fail = 0;
    CHECK_INT(sl_frame_decode(&d, in + 10, 3, &used, &f, &e), SLUICE_ERR_NOMEM);
    CHECK_INT(used, 0);
    sl_frame_decoder_free(&d);
}

TEST(empty_input)
{
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used = 7;
    dec_init(&d, NULL);
    CHECK_INT(sl_frame_decode(&d, NULL, 0, &used, &f, &e), 0);
    CHECK_INT(used, 0);
    sl_frame_decoder_free(&d);
}

/* ---- decoder: stream id rules ------------------------------------------------ */

TEST(data_on_stream_zero)
{
    static const uint8_t in[] = {HDR(1, 0x0, 0x0, 0), 'x'};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(headers_on_stream_zero)
{
    static const uint8_t in[] = {HDR(1, 0x1, 0x4, 0), 0x82};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(priority_on_stream_zero)
{
    static const uint8_t in[] = {HDR(5, 0x2, 0x0, 0), 0, 0, 0, 1, 15};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(rst_stream_on_stream_zero)
{
    static const uint8_t in[] = {HDR(4, 0x3, 0x0, 0), 0, 0, 0, 8};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(push_promise_on_stream_zero)
{
    static const uint8_t in[] = {HDR(4, 0x5, 0x4, 0), 0, 0, 0, 2};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(continuation_on_stream_zero)
{
    static const uint8_t in[] = {HDR(1, 0x9, 0x4, 0), 0x82};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(settings_on_stream)
{
    static const uint8_t in[] = {HDR(0, 0x4, 0x0, 1)};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(ping_on_stream)
{
    static const uint8_t in[] = {HDR(8, 0x6, 0x0, 1), 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(goaway_on_stream)
{
    static const uint8_t in[] = {HDR(8, 0x7, 0x0, 3), 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(priority_update_on_stream)
{
    static const uint8_t in[] = {HDR(4, 0x10, 0x0, 1), 0, 0, 0, 1};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(priority_update_for_stream_zero)
{
    static const uint8_t in[] = {HDR(7, 0x10, 0x0, 0), 0x80, 0, 0, 0, 'u', '=', '1'};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(priority_update_too_short)
{
    static const uint8_t in[] = {HDR(3, 0x10, 0x0, 0), 0, 0, 1};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(push_promise_promises_stream_zero)
{
    static const uint8_t in[] = {HDR(4, 0x5, 0x4, 1), 0x80, 0, 0, 0};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

/* ---- decoder: padding -------------------------------------------------------- */

TEST(data_padded_without_pad_length)
{
    static const uint8_t in[] = {HDR(0, 0x0, 0x8, 1)};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(headers_padded_without_pad_length)
{
    static const uint8_t in[] = {HDR(0, 0x1, 0xc, 1)};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(push_promise_padded_without_pad_length)
{
    static const uint8_t in[] = {HDR(0, 0x5, 0xc, 1)};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(data_pad_too_long)
{
    /* Pad length 3 in a 3-byte payload: the padding is the whole payload. */
    static const uint8_t in[] = {HDR(3, 0x0, 0x8, 1), 3, 0, 0};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(headers_pad_too_long)
{
    /* PADDED + PRIORITY: 1 + 5 bytes of fields leave 1 byte; pad 2. */
    static const uint8_t in[] = {HDR(7, 0x1, 0x2c, 1), 2, 0, 0, 0, 0, 15, 0};
    static const uint8_t fits[] = {HDR(7, 0x1, 0x2c, 1), 1, 0, 0, 0, 0, 15, 0};
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_ERROR(in, CONN_PROTOCOL);
    CHECK_INT(dec_one(fits, sizeof(fits), &f, &e, &used), 1);
    CHECK_INT(f.u.headers.len, 0);
    CHECK_INT(f.u.headers.pad, 1);
    CHECK_INT(f.u.headers.pri.weight, 16);
}

TEST(push_promise_pad_too_long)
{
    static const uint8_t in[] = {HDR(6, 0x5, 0xc, 1), 2, 0, 0, 0, 2, 0};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

/* ---- decoder: sizes of each type ------------------------------------------- */

TEST(headers_priority_too_short)
{
    static const uint8_t in[] = {HDR(4, 0x1, 0x24, 1), 0, 0, 0, 0};
    static const uint8_t padded[] = {HDR(5, 0x1, 0x2c, 1), 0, 0, 0, 0, 0};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
    CHECK_ERROR(padded, CONN_FRAME_SIZE);
}

TEST(priority_wrong_length_is_stream_error)
{
    /* §6.3: a stream error; the frame is consumed and the PING after it
     * still decodes. */
    static const uint8_t in[] = {HDR(4, 0x2, 0x0, 3), 0, 0, 0, 1,
                                 HDR(8, 0x6, 0x0, 0), 1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t longer[] = {HDR(6, 0x2, 0x0, 3), 0, 0, 0, 1, 15, 0};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used;
    dec_init(&d, NULL);
    CHECK_INT(sl_frame_decode(&d, in, sizeof(in), &used, &f, &e), SLUICE_ERR_FRAME_SIZE);
    CHECK_INT(used, 13);
    CHECK_INT(e.h2_code, SLUICE_H2_FRAME_SIZE_ERROR);
    CHECK_INT(e.stream_scope, 1);
    CHECK_INT(e.stream_id, 3);
    CHECK_INT(sl_frame_decode(&d, in + 13, sizeof(in) - 13, &used, &f, &e), 1);
    CHECK_INT(f.type, SL_FRAME_PING);
    sl_frame_decoder_free(&d);
    CHECK_ERROR(longer, SLUICE_ERR_FRAME_SIZE, SLUICE_H2_FRAME_SIZE_ERROR, 1, 3);
}

TEST(priority_depends_on_itself)
{
    static const uint8_t in[] = {HDR(5, 0x2, 0x0, 3), 0x80, 0, 0, 3, 15};
    CHECK_ERROR(in, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR, 1, 3);
}

TEST(headers_depends_on_itself)
{
    /* Delivered: the session resets the stream once its field block has
     * been through HPACK (§4.3, §5.3.1). */
    static const uint8_t in[] = {HDR(6, 0x1, 0x24, 3), 0, 0, 0, 3, 15, 0x82};
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(dec_one(in, sizeof(in), &f, &e, &used), 1);
    CHECK_INT(f.u.headers.has_priority, 1);
    CHECK_INT(f.u.headers.pri.dep_stream_id, 3);
    CHECK_INT(f.u.headers.pri.weight, 16);
}

TEST(rst_stream_wrong_length)
{
    static const uint8_t short3[] = {HDR(3, 0x3, 0x0, 1), 0, 0, 8};
    static const uint8_t long5[] = {HDR(5, 0x3, 0x0, 1), 0, 0, 0, 8, 0};
    CHECK_ERROR(short3, CONN_FRAME_SIZE);
    CHECK_ERROR(long5, CONN_FRAME_SIZE);
}

TEST(settings_length_not_multiple_of_6)
{
    static const uint8_t in[] = {HDR(7, 0x4, 0x0, 0), 0, 3, 0, 0, 0, 100, 0};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(settings_ack_with_payload)
{
    static const uint8_t in[] = {HDR(6, 0x4, 0x1, 0), 0, 3, 0, 0, 0, 100};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(settings_bad_enable_push)
{
    static const uint8_t in[] = {HDR(12, 0x4, 0x0, 0), 0, 3, 0, 0, 0, 100, 0, 2, 0, 0, 0, 2};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(settings_bad_initial_window_size)
{
    static const uint8_t in[] = {HDR(6, 0x4, 0x0, 0), 0, 4, 0x80, 0, 0, 0};
    CHECK_ERROR(in, SLUICE_ERR_FLOW_CONTROL, SLUICE_H2_FLOW_CONTROL_ERROR, 0, 0);
}

TEST(settings_bad_max_frame_size)
{
    static const uint8_t low[] = {HDR(6, 0x4, 0x0, 0), 0, 5, 0, 0, 0x3f, 0xff};
    static const uint8_t high[] = {HDR(6, 0x4, 0x0, 0), 0, 5, 0x01, 0, 0, 0};
    CHECK_ERROR(low, CONN_PROTOCOL);
    CHECK_ERROR(high, CONN_PROTOCOL);
}

TEST(settings_bad_connect_and_priorities)
{
    static const uint8_t connect[] = {HDR(6, 0x4, 0x0, 0), 0, 8, 0, 0, 0, 2};
    static const uint8_t nopri[] = {HDR(6, 0x4, 0x0, 0), 0, 9, 0, 0, 0, 2};
    CHECK_ERROR(connect, CONN_PROTOCOL);
    CHECK_ERROR(nopri, CONN_PROTOCOL);
}

TEST(settings_edge_values_accepted)
{
    static const uint8_t in[] = {HDR(48, 0x4, 0x0, 0),
                                 0, 2, 0, 0, 0, 1,             /* ENABLE_PUSH 1 */
                                 0, 4, 0x7f, 0xff, 0xff, 0xff, /* window 2^31-1 */
                                 0, 5, 0, 0, 0x40, 0,          /* 16384 */
                                 0, 5, 0, 0xff, 0xff, 0xff,    /* 16777215 */
                                 0, 8, 0, 0, 0, 1,
                                 0, 9, 0, 0, 0, 1,
                                 0xff, 0x99, 0xff, 0xff, 0xff, 0xff, /* unknown id */
                                 0, 0, 0xff, 0xff, 0xff, 0xff};
    sl_frame f;
    sl_frame_error e;
    sl_setting s;
    size_t used;
    CHECK_INT(dec_one(in, sizeof(in), &f, &e, &used), 1);
    CHECK_INT(f.u.settings.n, 8);
    sl_frame_settings_get(&f, 6, &s);
    CHECK_INT(s.id, 0xff99);
    CHECK_INT(s.value, 0xffffffffu);
}

TEST(push_promise_too_short)
{
    static const uint8_t in[] = {HDR(3, 0x5, 0x4, 1), 0, 0, 2};
    static const uint8_t padded[] = {HDR(4, 0x5, 0xc, 1), 0, 0, 0, 2};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
    CHECK_ERROR(padded, CONN_FRAME_SIZE);
}

TEST(ping_wrong_length)
{
    static const uint8_t short7[] = {HDR(7, 0x6, 0x0, 0), 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t long9[] = {HDR(9, 0x6, 0x0, 0), 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_ERROR(short7, CONN_FRAME_SIZE);
    CHECK_ERROR(long9, CONN_FRAME_SIZE);
}

TEST(goaway_too_short)
{
    static const uint8_t in[] = {HDR(7, 0x7, 0x0, 0), 0, 0, 0, 0, 0, 0, 0};
    CHECK_ERROR(in, CONN_FRAME_SIZE);
}

TEST(window_update_wrong_length)
{
    static const uint8_t short3[] = {HDR(3, 0x8, 0x0, 1), 0, 0, 1};
    static const uint8_t long5[] = {HDR(5, 0x8, 0x0, 0), 0, 0, 0, 1, 0};
    CHECK_ERROR(short3, CONN_FRAME_SIZE);
    CHECK_ERROR(long5, CONN_FRAME_SIZE);
}

TEST(window_update_zero_on_stream)
{
    /* §6.9: a stream error; decoding goes on. */
    static const uint8_t in[] = {HDR(4, 0x8, 0x0, 5), 0, 0, 0, 0,
                                 HDR(4, 0x8, 0x0, 5), 0, 0, 0, 1};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used;
    dec_init(&d, NULL);
    CHECK_INT(sl_frame_decode(&d, in, sizeof(in), &used, &f, &e), SLUICE_ERR_PROTOCOL);
    CHECK_INT(used, 13);
    CHECK_INT(e.h2_code, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(e.stream_scope, 1);
    CHECK_INT(e.stream_id, 5);
    CHECK_INT(sl_frame_decode(&d, in + 13, 13, &used, &f, &e), 1);
    CHECK_INT(f.u.window_update.increment, 1);
    sl_frame_decoder_free(&d);
}

TEST(window_update_zero_on_connection)
{
    /* Only the reserved bit set: the increment is 0. */
    static const uint8_t in[] = {HDR(4, 0x8, 0x0, 0), 0x80, 0, 0, 0};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

/* ---- decoder: CONTINUATION sequencing (§6.10) ------------------------------- */

TEST(header_block_interrupted_by_data)
{
    static const uint8_t in[] = {HDR(1, 0x1, 0x0, 1), 0x82, HDR(1, 0x0, 0x0, 1), 'x'};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(header_block_interrupted_by_other_stream)
{
    static const uint8_t in[] = {HDR(1, 0x1, 0x0, 1), 0x82, HDR(1, 0x9, 0x4, 3), 0x84};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(header_block_interrupted_by_unknown_type)
{
    static const uint8_t in[] = {HDR(1, 0x1, 0x0, 1), 0x82, HDR(1, 0xfa, 0x0, 1), 0};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(header_block_interrupted_by_ping)
{
    static const uint8_t in[] = {HDR(4, 0x5, 0x0, 1), 0, 0, 0, 2,
                                 HDR(8, 0x6, 0x0, 0), 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(continuation_without_headers)
{
    static const uint8_t in[] = {HDR(1, 0x9, 0x4, 1), 0x84};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(continuation_after_end_headers)
{
    static const uint8_t in[] = {HDR(1, 0x1, 0x4, 1), 0x82, HDR(1, 0x9, 0x4, 1), 0x84};
    CHECK_ERROR(in, CONN_PROTOCOL);
}

TEST(continuation_chain_accepted)
{
    static const uint8_t in[] = {HDR(4, 0x5, 0x0, 1), 0, 0, 0, 2,
                                 HDR(1, 0x9, 0x0, 1), 0x82,
                                 HDR(0, 0x9, 0x0, 1),
                                 HDR(1, 0x9, 0x4, 1), 0x84,
                                 HDR(1, 0x0, 0x1, 1), 'x'};
    ev v[MAX_EV];
    size_t n = run(in, sizeof(in), 0, 0, v);
    CHECK_INT(n, 5);
    CHECK_INT(v[0].type, SL_FRAME_PUSH_PROMISE);
    CHECK_INT(v[1].type, SL_FRAME_CONTINUATION);
    CHECK_INT(v[2].type, SL_FRAME_CONTINUATION);
    CHECK_INT(v[3].type, SL_FRAME_CONTINUATION);
    CHECK_INT(v[4].type, SL_FRAME_DATA);
    for (size_t i = 0; i < n; i++)
        CHECK_INT(v[i].rc, 1);
}

/* ---- decoder: errors are sticky, unknowns skipped, reserved bit ignored ------ */

TEST(connection_error_is_sticky)
{
    static const uint8_t bad[] = {HDR(1, 0x0, 0x0, 0), 'x'};
    static const uint8_t good[] = {HDR(0, 0x4, 0x1, 0)};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e, first;
    size_t used;
    dec_init(&d, NULL);
    CHECK_INT(sl_frame_decode(&d, bad, sizeof(bad), &used, &f, &first), SLUICE_ERR_PROTOCOL);
    for (int i = 0; i < 3; i++) {
        memset(&e, 0, sizeof(e));
        CHECK_INT(sl_frame_decode(&d, good, sizeof(good), &used, &f, &e), SLUICE_ERR_PROTOCOL);
        CHECK_INT(used, 0);
        CHECK_INT(e.err, first.err);
        CHECK_INT(e.h2_code, first.h2_code);
        CHECK_INT(e.stream_scope, 0);
        CHECK(e.reason == first.reason);
    }
    sl_frame_decoder_free(&d);
}

TEST(unknown_types_skipped)
{
    /* Unknown type 0xfa with every flag set, then 0x0b empty, then a PING:
     * the unknowns come back as such and the PING follows. */
    static const uint8_t in[] = {HDR(3, 0xfa, 0xff, 0x80000007u), 'a', 'b', 'c',
                                 HDR(0, 0x0b, 0x0, 0),
                                 HDR(8, 0x6, 0x0, 0), 1, 2, 3, 4, 5, 6, 7, 8};
    sl_frame_decoder d;
    sl_frame f;
    sl_frame_error e;
    size_t used, off = 0;
    dec_init(&d, NULL);
    CHECK_INT(sl_frame_decode(&d, in, sizeof(in), &used, &f, &e), 1);
    off += used;
    CHECK_INT(f.type, 0xfa);
    CHECK_INT(f.flags, 0xff);
    CHECK_INT(f.stream_id, 7);
    CHECK(f.u.unknown.payload == in + 9);
    CHECK_MEM(f.u.unknown.payload, f.u.unknown.len, "abc", 3);
    CHECK_INT(sl_frame_decode(&d, in + off, sizeof(in) - off, &used, &f, &e), 1);
    off += used;
    CHECK_INT(f.type, 0x0b);
    CHECK_INT(f.u.unknown.len, 0);
    CHECK_INT(sl_frame_decode(&d, in + off, sizeof(in) - off, &used, &f, &e), 1);
    off += used;
    CHECK_INT(f.type, SL_FRAME_PING);
    CHECK_INT(off, sizeof(in));
    sl_frame_decoder_free(&d);
}

TEST(unknown_flags_ignored)
{
    /* DATA with every flag but PADDED and END_STREAM; PING with all but ACK;
     * SETTINGS with PADDED, which means nothing there. */
    static const uint8_t data[] = {HDR(2, 0x0, 0xf6, 1), 'h', 'i'};
    static const uint8_t ping[] = {HDR(8, 0x6, 0xfe, 0), 1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t settings[] = {HDR(6, 0x4, 0x08, 0), 0, 3, 0, 0, 0, 9};
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(dec_one(data, sizeof(data), &f, &e, &used), 1);
    CHECK_INT(f.flags, 0xf6);
    CHECK_INT(f.u.data.pad, 0);
    CHECK_MEM(f.u.data.data, f.u.data.len, "hi", 2);
    CHECK_INT(dec_one(ping, sizeof(ping), &f, &e, &used), 1);
    CHECK_INT(f.flags & SL_FLAG_ACK, 0);
    CHECK_INT(dec_one(settings, sizeof(settings), &f, &e, &used), 1);
    CHECK_INT(f.u.settings.n, 1);
}

TEST(reserved_bit_ignored)
{
    static const uint8_t data[] = {HDR(1, 0x0, 0x0, 0x80000001u), 'x'};
    static const uint8_t pri[] = {HDR(5, 0x2, 0x0, 0x80000003u), 0x80, 0, 0, 1, 15};
    static const uint8_t pp[] = {HDR(4, 0x5, 0x4, 1), 0x80, 0, 0, 2};
    static const uint8_t wu[] = {HDR(4, 0x8, 0x0, 0x80000000u), 0x80, 0, 0, 9};
    static const uint8_t ga[] = {HDR(8, 0x7, 0x0, 0x80000000u), 0x80, 0, 0, 5, 0, 0, 0, 0};
    static const uint8_t pu[] = {HDR(4, 0x10, 0x0, 0), 0x80, 0, 0, 3};
    sl_frame f;
    sl_frame_error e;
    size_t used;
    CHECK_INT(dec_one(data, sizeof(data), &f, &e, &used), 1);
    CHECK_INT(f.stream_id, 1);
    CHECK_INT(dec_one(pri, sizeof(pri), &f, &e, &used), 1);
    CHECK_INT(f.stream_id, 3);
    CHECK_INT(f.u.priority.dep_stream_id, 1);
    CHECK_INT(f.u.priority.exclusive, 1);
    CHECK_INT(dec_one(pp, sizeof(pp), &f, &e, &used), 1);
    CHECK_INT(f.u.push_promise.promised_stream_id, 2);
    CHECK_INT(dec_one(wu, sizeof(wu), &f, &e, &used), 1);
    CHECK_INT(f.stream_id, 0);
    CHECK_INT(f.u.window_update.increment, 9);
    CHECK_INT(dec_one(ga, sizeof(ga), &f, &e, &used), 1);
    CHECK_INT(f.u.goaway.last_stream_id, 5);
    CHECK_INT(dec_one(pu, sizeof(pu), &f, &e, &used), 1);
    CHECK_INT(f.u.priority_update.prioritized_stream_id, 3);
}

/* ---- decoder: any split gives the same frames ------------------------------- */

/* A long, valid-then-broken sequence with every frame type, two stream
 * errors in the middle and a connection error at the end. */
static size_t build_sequence(uint8_t *out, size_t cap)
{
    static const sl_setting s[] = {{SL_SETTINGS_ENABLE_PUSH, 0},
                                   {SL_SETTINGS_MAX_FRAME_SIZE, 16384},
                                   {SL_SETTINGS_INITIAL_WINDOW_SIZE, 65535},
                                   {0x99, 7}};
    static const uint8_t opaque[8] = {9, 8, 7, 6, 5, 4, 3, 2};
    static const uint8_t bad_pri[] = {HDR(4, 0x2, 0x0, 9), 0, 0, 0, 1};
    static const uint8_t bad_wu[] = {HDR(4, 0x8, 0x0, 5), 0, 0, 0, 0};
    static const uint8_t unknown[] = {HDR(5, 0xbb, 0xff, 9), 1, 2, 3, 4, 5};
    static const uint8_t data0[] = {HDR(2, 0x0, 0x0, 0), 'n', 'o', 0xde, 0xad};
    static uint8_t block[16384];
    sl_priority_spec pri = {0, 1, 42};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = (uint8_t)(i * 7 + 3);
#define PUT(expr) n += (size_t)(expr)
#define RAW(arr) (memcpy(out + n, arr, sizeof(arr)), n += sizeof(arr))
    PUT(sl_frame_encode_settings(out + n, cap - n, s, 4));
    PUT(sl_frame_encode_settings_ack(out + n, cap - n));
    PUT(sl_frame_encode_headers(out + n, cap - n, 1, block, 20, 0, 0, &pri, 3));
    PUT(sl_frame_encode_continuation(out + n, cap - n, 1, block + 20, 10, 0));
    PUT(sl_frame_encode_continuation(out + n, cap - n, 1, NULL, 0, 1));
    PUT(sl_frame_encode_data_header(out + n, cap - n, 1, 100, 7, 0));
    memcpy(out + n, block, 100);
    memset(out + n + 100, 0, 7);
    n += 107;
    PUT(sl_frame_encode_data_header(out + n, cap - n, 1, 0, 0, 1));
    PUT(sl_frame_encode_priority(out + n, cap - n, 3, &pri));
    PUT(sl_frame_encode_rst_stream(out + n, cap - n, 3, 8));
    PUT(sl_frame_encode_push_promise(out + n, cap - n, 1, 2, block, 30, 1, 2));
    PUT(sl_frame_encode_push_promise(out + n, cap - n, 1, 4, block, 5, 0, 0));
    PUT(sl_frame_encode_continuation(out + n, cap - n, 1, block + 5, 5, 1));
    PUT(sl_frame_encode_ping(out + n, cap - n, opaque, 0));
    PUT(sl_frame_encode_ping(out + n, cap - n, opaque, 1));
    PUT(sl_frame_encode_window_update(out + n, cap - n, 0, 1000));
    PUT(sl_frame_encode_window_update(out + n, cap - n, 1, 2000));
    RAW(unknown);
    PUT(sl_frame_encode_priority_update(out + n, cap - n, 1, (const uint8_t *)"u=2, i", 6));
    RAW(bad_pri);
    RAW(bad_wu);
    PUT(sl_frame_encode_data_header(out + n, cap - n, 1, 16384, 0, 0));
    memcpy(out + n, block, 16384);
    n += 16384;
    PUT(sl_frame_encode_headers(out + n, cap - n, 7, block, 300, 1, 1, NULL, 0));
    PUT(sl_frame_encode_goaway(out + n, cap - n, 7, 0, (const uint8_t *)"bye", 3));
    RAW(data0);
#undef PUT
#undef RAW
    return n;
}

TEST(any_split_same_frames)
{
    static uint8_t in[20000];
    static const size_t chunks[] = {1, 2, 3, 5, 8, 9, 10, 13, 64, 1000, 4096};
    ev all[MAX_EV], split[MAX_EV];
    size_t len = build_sequence(in, sizeof(in));
    size_t na = run(in, len, 0, 0, all);
    /* 21 frames, 2 stream errors, then the connection error. */
    CHECK_INT(na, 24);
    CHECK_INT(all[0].type, SL_FRAME_SETTINGS);
    CHECK_INT(all[16].type, 0xbb);
    CHECK_INT(all[18].rc, SLUICE_ERR_FRAME_SIZE);
    CHECK_INT(all[18].e.stream_scope, 1);
    CHECK_INT(all[18].e.stream_id, 9);
    CHECK_INT(all[19].rc, SLUICE_ERR_PROTOCOL);
    CHECK_INT(all[19].e.stream_scope, 1);
    CHECK_INT(all[19].e.stream_id, 5);
    CHECK_INT(all[20].rc, 1);
    CHECK_INT(all[21].type, SL_FRAME_HEADERS);
    CHECK_INT(all[22].type, SL_FRAME_GOAWAY);
    CHECK_INT(all[23].rc, SLUICE_ERR_PROTOCOL);
    CHECK_INT(all[23].e.stream_scope, 0);
    for (size_t i = 0; i < 18; i++)
        CHECK_INT(all[i].rc, 1);
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        size_t ns = run(in, len, chunks[c], 0, split);
        if (!same_events(all, na, split, ns)) {
            T_FAIL("chunk size %zu", chunks[c]);
            return;
        }
    }
}
