/* fuzz_frame.c — the frame decoder must report the same frames and errors
 * however its input is split, and every frame it accepts must re-encode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* Input: byte 0 picks options, bytes 1..3 seed the split points (and give
 * the max frame size when bit 2 of byte 0 is set); the rest is the byte
 * stream from the peer. */
#define OPT_CHUNK_MASK 0x3u
#define OPT_MAX_FRAME_SIZE 0x4u
#define PREFIX_LEN 4

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            __builtin_trap();                                                  \
    } while (0)

typedef struct ev {
    int rc;
    uint8_t type;
    uint8_t flags;
    uint32_t stream_id;
    uint32_t length;
    size_t end; /* input offset just after the event */
    uint64_t digest;
    sl_frame_error e;
} ev;

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

/* The flags each type defines; re-encoding keeps only these. */
static uint8_t known_flags(uint8_t type)
{
    switch (type) {
    case SL_FRAME_DATA: return SL_FLAG_END_STREAM | SL_FLAG_PADDED;
    case SL_FRAME_HEADERS:
        return SL_FLAG_END_STREAM | SL_FLAG_END_HEADERS | SL_FLAG_PADDED | SL_FLAG_PRIORITY;
    case SL_FRAME_SETTINGS:
    case SL_FRAME_PING: return SL_FLAG_ACK;
    case SL_FRAME_PUSH_PROMISE: return SL_FLAG_END_HEADERS | SL_FLAG_PADDED;
    case SL_FRAME_CONTINUATION: return SL_FLAG_END_HEADERS;
    }
    return 0;
}

/* Everything decoded about a frame, pointers followed; flags masked. */
static uint64_t digest(const sl_frame *f, uint8_t flag_mask)
{
    uint64_t h = 14695981039346656037ull;
    h = mix_u(mix_u(mix_u(h, f->length), f->type), f->flags & flag_mask);
    h = mix_u(h, f->stream_id);
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

static void record(ev *v, int rc, const sl_frame *f, const sl_frame_error *e, size_t end)
{
    memset(v, 0, sizeof(*v));
    v->rc = rc;
    v->end = end;
    if (rc == 1) {
        v->type = f->type;
        v->flags = f->flags;
        v->stream_id = f->stream_id;
        v->length = f->length;
        v->digest = digest(f, 0xff);
    } else {
        v->e = *e;
    }
}

static int same(const ev *a, const ev *b)
{
    return a->rc == b->rc && a->type == b->type && a->flags == b->flags &&
           a->stream_id == b->stream_id && a->length == b->length && a->end == b->end &&
           a->digest == b->digest && a->e.err == b->e.err && a->e.h2_code == b->e.h2_code &&
           a->e.stream_id == b->e.stream_id && a->e.stream_scope == b->e.stream_scope &&
           a->e.reason == b->e.reason;
}

/* ---- re-encoding ---------------------------------------------------------- */

static long encode_settings(uint8_t *out, size_t cap, const sl_frame *f)
{
    if (f->flags & SL_FLAG_ACK)
        return sl_frame_encode_settings_ack(out, cap);
    sl_setting *s = malloc(f->u.settings.n * sizeof(*s) + 1);
    CHECK(s != NULL);
    for (size_t i = 0; i < f->u.settings.n; i++)
        sl_frame_settings_get(f, i, &s[i]);
    long n = sl_frame_encode_settings(out, cap, s, f->u.settings.n);
    free(s);
    return n;
}

static long encode_data(uint8_t *out, size_t cap, const sl_frame *f)
{
    long n = sl_frame_encode_data_header(out, cap, f->stream_id, f->u.data.len,
                                         f->u.data.pad, f->flags & SL_FLAG_END_STREAM);
    if (n < 0 || (size_t)n + f->u.data.len + f->u.data.pad > cap)
        return n < 0 ? n : SLUICE_ERR_NOBUF;
    memcpy(out + n, f->u.data.data, f->u.data.len);
    memset(out + n + f->u.data.len, 0, f->u.data.pad);
    return n + (long)(f->u.data.len + f->u.data.pad);
}

static long encode_unknown(uint8_t *out, size_t cap, const sl_frame *f)
{
    if (cap < SL_FRAME_HDR_LEN + f->u.unknown.len)
        return SLUICE_ERR_NOBUF;
    sl_frame_pack_header(out, f->length, f->type, f->flags, f->stream_id);
    memcpy(out + SL_FRAME_HDR_LEN, f->u.unknown.payload, f->u.unknown.len);
    return (long)(SL_FRAME_HDR_LEN + f->u.unknown.len);
}

static long encode(uint8_t *out, size_t cap, const sl_frame *f)
{
    int eh = (f->flags & SL_FLAG_END_HEADERS) != 0;
    switch (f->type) {
    case SL_FRAME_DATA: return encode_data(out, cap, f);
    case SL_FRAME_HEADERS:
        return sl_frame_encode_headers(out, cap, f->stream_id, f->u.headers.block,
                                       f->u.headers.len, f->flags & SL_FLAG_END_STREAM, eh,
                                       f->u.headers.has_priority ? &f->u.headers.pri : NULL,
                                       f->u.headers.pad);
    case SL_FRAME_PRIORITY:
        return sl_frame_encode_priority(out, cap, f->stream_id, &f->u.priority);
    case SL_FRAME_RST_STREAM:
        return sl_frame_encode_rst_stream(out, cap, f->stream_id, f->u.rst_stream.error_code);
    case SL_FRAME_SETTINGS: return encode_settings(out, cap, f);
    case SL_FRAME_PUSH_PROMISE:
        return sl_frame_encode_push_promise(out, cap, f->stream_id,
                                            f->u.push_promise.promised_stream_id,
                                            f->u.push_promise.block, f->u.push_promise.len,
                                            eh, f->u.push_promise.pad);
    case SL_FRAME_PING:
        return sl_frame_encode_ping(out, cap, f->u.ping.opaque, f->flags & SL_FLAG_ACK);
    case SL_FRAME_GOAWAY:
        return sl_frame_encode_goaway(out, cap, f->u.goaway.last_stream_id,
                                      f->u.goaway.error_code, f->u.goaway.debug,
                                      f->u.goaway.debug_len);
    case SL_FRAME_WINDOW_UPDATE:
        return sl_frame_encode_window_update(out, cap, f->stream_id,
                                             f->u.window_update.increment);
    case SL_FRAME_CONTINUATION:
        return sl_frame_encode_continuation(out, cap, f->stream_id, f->u.continuation.block,
                                            f->u.continuation.len, eh);
    case SL_FRAME_PRIORITY_UPDATE:
        return sl_frame_encode_priority_update(out, cap,
                                               f->u.priority_update.prioritized_stream_id,
                                               f->u.priority_update.field,
                                               f->u.priority_update.len);
    }
    return encode_unknown(out, cap, f);
}

/* The pad length of a padded frame; 0 when it has none. */
static size_t pad_of(const sl_frame *f)
{
    switch (f->type) {
    case SL_FRAME_DATA: return f->u.data.pad;
    case SL_FRAME_HEADERS: return f->u.headers.pad;
    case SL_FRAME_PUSH_PROMISE: return f->u.push_promise.pad;
    }
    return 0;
}

/* A frame we accepted encodes to exactly its own length, and decodes back
 * to the same frame (unknown flags and padding contents aside). The
 * encoders never send PADDED with a pad length of 0, so such a frame comes
 * back one byte shorter and without the flag. */
static void check_reencode(const sl_frame *orig, uint32_t max_fs, uint32_t open_block)
{
    if (orig->type == SL_FRAME_HEADERS && orig->u.headers.has_priority &&
        orig->u.headers.pri.dep_stream_id == orig->stream_id)
        return; /* accepted for the session to reset (§5.3.1); never sent */
    sl_frame copy = *orig;
    sl_frame *f = &copy;
    if ((known_flags(f->type) & SL_FLAG_PADDED) && (f->flags & SL_FLAG_PADDED) &&
        pad_of(f) == 0) {
        f->flags = (uint8_t)(f->flags & ~SL_FLAG_PADDED);
        f->length--;
    }
    size_t cap = SL_FRAME_HDR_LEN + f->length;
    uint8_t *out = malloc(cap);
    CHECK(out != NULL);
    long n = encode(out, cap, f);
    CHECK(n == (long)cap);
    if (cap > 0)
        CHECK(encode(out, cap - 1, f) == SLUICE_ERR_NOBUF);

    sl_mem m;
    sl_frame_decoder d;
    sl_frame g;
    sl_frame_error e;
    size_t used;
    sl_mem_init(&m, NULL);
    sl_frame_decoder_init(&d, &m);
    sl_frame_decoder_set_max_frame_size(&d, max_fs);
    d.continuation_stream = open_block;
    CHECK(sl_frame_decode(&d, out, cap, &used, &g, &e) == 1);
    CHECK(used == cap);
    CHECK(digest(&g, known_flags(g.type)) == digest(f, known_flags(f->type)));
    sl_frame_decoder_free(&d);
    free(out);
}

/* ---- the two decodes -------------------------------------------------------- */

static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static size_t chunk_size(uint8_t opt, uint32_t *seed)
{
    static const uint32_t spans[] = {8, 64, 4096, 1};
    return 1 + next_rand(seed) % spans[opt & OPT_CHUNK_MASK];
}

static void decoder_new(sl_frame_decoder *d, uint32_t max_fs)
{
    sl_mem m;
    sl_mem_init(&m, NULL);
    sl_frame_decoder_init(d, &m);
    sl_frame_decoder_set_max_frame_size(d, max_fs);
}

/* All at once: the reference sequence. Re-encodes every frame on the way. */
static size_t decode_whole(const uint8_t *in, size_t len, uint32_t max_fs, ev *out)
{
    sl_frame_decoder d;
    size_t off = 0, n = 0;
    decoder_new(&d, max_fs);
    while (off < len) {
        sl_frame f;
        sl_frame_error e;
        size_t used = 0;
        uint32_t open_block = d.continuation_stream;
        int rc = sl_frame_decode(&d, in + off, len - off, &used, &f, &e);
        CHECK(used <= len - off);
        off += used;
        if (rc == 0) {
            CHECK(off == len);
            break;
        }
        CHECK(rc == 1 || rc < 0);
        record(&out[n++], rc, &f, &e, off);
        if (rc == 1)
            check_reencode(&f, d.max_frame_size, open_block);
        if (rc < 0 && !e.stream_scope)
            break;
    }
    sl_frame_decoder_free(&d);
    return n;
}

/* In pieces: must match the reference event by event. */
static void decode_split(const uint8_t *in, size_t len, uint32_t max_fs, uint8_t opt,
                         uint32_t seed, const ev *want, size_t nwant)
{
    sl_frame_decoder d;
    size_t off = 0, n = 0;
    decoder_new(&d, max_fs);
    while (off < len) {
        size_t avail = chunk_size(opt, &seed), used = 0;
        if (avail > len - off)
            avail = len - off;
        sl_frame f;
        sl_frame_error e;
        int rc = sl_frame_decode(&d, in + off, avail, &used, &f, &e);
        CHECK(used <= avail);
        off += used;
        if (rc == 0) {
            CHECK(used == avail);
            continue;
        }
        ev got;
        record(&got, rc, &f, &e, off);
        CHECK(n < nwant && same(&got, &want[n]));
        n++;
        if (rc < 0 && !e.stream_scope) {
            /* Sticky: the next call gives the same error and takes nothing. */
            sl_frame_error again;
            CHECK(sl_frame_decode(&d, in, len, &used, &f, &again) == rc && used == 0);
            CHECK(again.err == e.err && again.reason == e.reason);
            break;
        }
    }
    CHECK(n == nwant);
    sl_frame_decoder_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PREFIX_LEN)
        return 0;
    uint8_t opt = data[0];
    uint32_t seed = (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
    uint32_t max_fs = SL_MAX_FRAME_SIZE_MIN;
    if (opt & OPT_MAX_FRAME_SIZE)
        max_fs = SL_MAX_FRAME_SIZE_MIN + seed; /* the decoder clamps it */
    seed = seed * 2654435761u + opt + 1; /* never 0: xorshift would stick */
    if (seed == 0)
        seed = 1;

    const uint8_t *in = data + PREFIX_LEN;
    size_t len = size - PREFIX_LEN;
    ev *want = malloc((len / SL_FRAME_HDR_LEN + 2) * sizeof(*want));
    CHECK(want != NULL);
    size_t n = decode_whole(in, len, max_fs, want);
    decode_split(in, len, max_fs, opt, seed, want, n);
    free(want);
    return 0;
}
