/* fuzz_session.c — a whole server session fed a client's bytes in chunks the
 * input chooses, while a small application answers, resets, consumes and
 * moves the clock. Every byte the server writes must parse as frames, and
 * every header block it writes must decode; the sanitizers watch the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "sluice.h"

/* Input: an 8-byte prefix, then the client's bytes after its preface and
 * first SETTINGS (which the target sends itself).
 *   [0]    options (OPT_*)
 *   [1..4] seed of the generator behind every application decision,
 *          chunk size and clock step
 *   [5]    chunking: low 3 bits pick the largest chunk (1 .. whole input)
 *   [6]    output: bit 0 short writes, bit 1 drain only every other chunk
 *   [7]    clock: how far a jump may go */
#define PREFIX_LEN 8
#define OPT_AUTO_CONSUME 0x01u
#define OPT_TINY_WINDOW 0x02u
#define OPT_FEW_STREAMS 0x04u
#define OPT_SMALL_HEADERS 0x08u
#define OPT_BIG_FRAMES 0x10u
#define OPT_SMALL_CONN_WINDOW 0x20u
#define OPT_FEW_CONTINUATIONS 0x40u
#define OPT_CALLBACK_FAILS 0x80u

#define NSLOT 32
#define MAX_BODY 3000u

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            __builtin_trap();                                                  \
    } while (0)

/* What the application knows of one request. */
typedef struct slot {
    uint32_t id;
    uint32_t body_len, off;
    int trailers, trailers_early, trailers_due, defer, waiting, answer_at_end, answer_later;
    size_t unconsumed;
} slot;

typedef struct fz {
    sluice_session *s;
    uint32_t rng;
    uint64_t now;
    uint8_t opt;
    uint32_t max_streams;
    slot slots[NSLOT];
    /* the checker of everything the server writes */
    sl_frame_decoder dec;
    sluice_hpack_decoder *hd;
    uint8_t *block;
    size_t block_len, block_cap;
} fz;

static const uint8_t body[MAX_BODY + 16] = {'b', 'o', 'd', 'y'};
static uint8_t long_value[18000]; /* a field value larger than one frame */

static uint32_t rnd(fz *z)
{
    uint32_t x = z->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    z->rng = x;
    return x;
}

static int one_in(fz *z, uint32_t n)
{
    return rnd(z) % n == 0;
}

static slot *slot_of(fz *z, uint32_t id)
{
    for (int i = 0; i < NSLOT; i++)
        if (z->slots[i].id == id)
            return &z->slots[i];
    return NULL;
}

/* ---- the server's output must be well-formed ------------------------------------ */

static int ignore_field(void *ud, const sluice_nv *nv)
{
    (void)ud; (void)nv;
    return 0;
}

static void block_add(fz *z, const uint8_t *p, size_t n)
{
    if (z->block_len + n > z->block_cap) {
        size_t cap = z->block_cap ? z->block_cap * 2 : 1024;
        while (cap < z->block_len + n)
            cap *= 2;
        uint8_t *b = realloc(z->block, cap);
        CHECK(b != NULL);
        z->block = b;
        z->block_cap = cap;
    }
    if (n)
        memcpy(z->block + z->block_len, p, n);
    z->block_len += n;
}

static void check_frame(fz *z, const sl_frame *f)
{
    const uint8_t *frag = NULL;
    size_t len = 0;
    if (f->type == SL_FRAME_HEADERS) {
        z->block_len = 0;
        frag = f->u.headers.block;
        len = f->u.headers.len;
    } else if (f->type == SL_FRAME_CONTINUATION) {
        frag = f->u.continuation.block;
        len = f->u.continuation.len;
    } else {
        CHECK(f->type != SL_FRAME_PUSH_PROMISE && f->type != SL_FRAME_PRIORITY_UPDATE);
        if (f->type == SL_FRAME_DATA || f->type == SL_FRAME_RST_STREAM)
            CHECK(f->stream_id % 2 == 1); /* only the client's streams exist */
        return;
    }
    CHECK(f->stream_id % 2 == 1);
    block_add(z, frag, len);
    if (f->flags & SL_FLAG_END_HEADERS)
        CHECK(sluice_hpack_decode(z->hd, z->block, z->block_len, ignore_field, z) == 0);
}

static void check_output(fz *z, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t used = 0;
        sl_frame f;
        sl_frame_error e;
        int rv = sl_frame_decode(&z->dec, p, n, &used, &f, &e);
        CHECK(rv >= 0); /* sluice never writes a malformed frame */
        CHECK(used <= n);
        p += used;
        n -= used;
        if (rv == 0)
            break;
        check_frame(z, &f);
    }
}

/* Take what the server has to say, all of it or a short write. */
static void drain(fz *z, int allow_short)
{
    for (int round = 0; round < 64; round++) {
        sluice_iovec iov[16];
        int cnt = 1 + (int)(rnd(z) % 16);
        size_t max = one_in(z, 2) ? SIZE_MAX : 1 + rnd(z) % 20000;
        int k = sluice_session_output(z->s, iov, cnt, max, z->now);
        CHECK(k >= 0 && k <= cnt);
        if (k == 0) {
            if (max == SIZE_MAX) {
                sluice_session_stats st;
                memset(&st, 0, sizeof(st));
                st.struct_size = sizeof(st);
                CHECK(sluice_session_get_stats(z->s, &st) == 0);
                CHECK(st.buffered_out == 0);
            }
            return;
        }
        size_t sum = 0;
        for (int i = 0; i < k; i++) {
            CHECK(iov[i].len > 0 && iov[i].base != NULL);
            sum += iov[i].len;
        }
        CHECK(sum <= max);
        size_t take = sum;
        if (allow_short && one_in(z, 3))
            take = rnd(z) % (sum + 1);
        size_t left = take;
        for (int i = 0; i < k && left > 0; i++) {
            size_t n = iov[i].len < left ? iov[i].len : left;
            check_output(z, iov[i].base, n);
            left -= n;
        }
        CHECK(sluice_session_output_done(z->s, take) == 0);
        if (take < sum && one_in(z, 2))
            return; /* the socket is full: come back later */
    }
}

/* ---- the application ------------------------------------------------------------- */

static long source_read(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                        uint32_t *flags, void *ud)
{
    (void)s;
    fz *z = ud;
    slot *sl = slot_of(z, id);
    CHECK(sl != NULL); /* the session reads only open streams */
    if (max == 0 && sl->off < sl->body_len)
        return 0; /* the window is closed and more is to come */
    if (sl->defer && max > 0 && one_in(z, 2)) {
        sl->waiting = 1;
        return one_in(z, 2) ? SLUICE_ERR_AGAIN : 0;
    }
    if (max > 0 && one_in(z, 200))
        return SLUICE_ERR_INTERNAL; /* the upstream broke: the stream is reset */
    size_t n = sl->body_len - sl->off;
    if (n > max)
        n = max;
    if (n > 1 && one_in(z, 3))
        n = 1 + rnd(z) % n;
    *data = body + sl->off;
    sl->off += (uint32_t)n;
    /* Sometimes the end is known only at the next read, which may come
     * with the window closed (max 0). */
    if (sl->off == sl->body_len && (n == 0 || !one_in(z, 3))) {
        *flags |= SLUICE_DATA_EOF;
        if (sl->trailers) {
            *flags |= SLUICE_DATA_NO_END_STREAM;
            if (!sl->trailers_early)
                sl->trailers_due = 1;
        }
    }
    return (long)n;
}

static int submit_trailers(fz *z, slot *sl)
{
    static const sluice_nv t[] = {
        {(const uint8_t *)"grpc-status", (const uint8_t *)"0", 11, 1, 0},
        {(const uint8_t *)"grpc-message", (const uint8_t *)"ok", 12, 2, 0}};
    sl->trailers_due = 0;
    return sluice_session_submit_trailers(z->s, sl->id, t, 1 + rnd(z) % 2);
}

static int respond(fz *z, uint32_t id, slot *sl)
{
    static const char *const statuses[] = {"200", "404", "500", "204", "304"};
    uint32_t pick = rnd(z) % 5;
    sluice_nv nv[3] = {
        {(const uint8_t *)":status", (const uint8_t *)statuses[pick], 7, 3, 0},
        {(const uint8_t *)"content-type", (const uint8_t *)"text/plain", 12, 10, 0},
        {(const uint8_t *)"x-long", long_value, 6, 0, 0}};
    size_t n = 2;
    if (one_in(z, 8)) { /* a header block larger than one frame */
        if (long_value[0] != 'v')
            memset(long_value, 'v', sizeof(long_value));
        nv[2].value_len = 16000 + rnd(z) % 2000;
        n = 3;
    }
    if (one_in(z, 6)) {
        static const sluice_nv info[] = {
            {(const uint8_t *)":status", (const uint8_t *)"103", 7, 3, 0},
            {(const uint8_t *)"link", (const uint8_t *)"</a.css>; rel=preload", 4, 21, 0}};
        int rv = sluice_session_submit_info(z->s, id, info, 2);
        CHECK(rv == 0 || rv == SLUICE_ERR_NOT_FOUND || rv == SLUICE_ERR_STATE);
    }
    int has_body = sl && pick < 3 && !one_in(z, 4);
    if (has_body) {
        sl->body_len = rnd(z) % (MAX_BODY + 1);
        sl->off = 0;
        sl->trailers = one_in(z, 4);
        sl->trailers_early = sl->trailers && one_in(z, 2);
        sl->defer = one_in(z, 4);
    }
    sluice_data_source src = {source_read, z};
    int rv = sluice_session_submit_response(z->s, id, nv, n, has_body ? &src : NULL);
    /* The stream may have been reset meanwhile, or the session be over. */
    CHECK(rv == 0 || rv == SLUICE_ERR_NOT_FOUND || rv == SLUICE_ERR_STATE);
    if (rv == 0 && has_body && sl->trailers_early) {
        rv = submit_trailers(z, sl);
        CHECK(rv == 0 || rv == SLUICE_ERR_NOT_FOUND);
    }
    return 0;
}

static int on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv, size_t n,
                      int end_stream, void *ud)
{
    fz *z = ud;
    CHECK(id % 2 == 1 && (n == 0 || nv != NULL));
    for (size_t i = 0; i < n; i++)
        CHECK(nv[i].name_len > 0);
    if (z->opt & OPT_CALLBACK_FAILS && one_in(z, 64))
        return SLUICE_ERR_INTERNAL;
    if (kind != SLUICE_HEADERS_REQUEST)
        return 0;
    if (one_in(z, 8)) {
        static const uint32_t codes[] = {SLUICE_H2_REFUSED_STREAM, SLUICE_H2_CANCEL,
                                         SLUICE_H2_INTERNAL_ERROR, SLUICE_H2_NO_ERROR};
        int rv = sluice_session_submit_rst(s, id, codes[rnd(z) % 4]);
        CHECK(rv == 0);
        return 0;
    }
    slot *sl = slot_of(z, 0);
    if (!sl)
        return respond(z, id, NULL);
    memset(sl, 0, sizeof(*sl));
    sl->id = id;
    uint32_t when = rnd(z) % 3;
    if (when == 0 || end_stream)
        return respond(z, id, sl);
    if (when == 1)
        sl->answer_at_end = 1;
    else
        sl->answer_later = 1;
    return 0;
}

static int on_data(sluice_session *s, uint32_t id, const uint8_t *d, size_t len, void *ud)
{
    fz *z = ud;
    CHECK(len > 0 && d != NULL);
    if (z->opt & OPT_AUTO_CONSUME)
        return 0;
    slot *sl = slot_of(z, id);
    if (sl && one_in(z, 2))
        sl->unconsumed += len;
    else
        CHECK(sluice_session_consume(s, id, len) == 0);
    return 0;
}

static int on_stream_end(sluice_session *s, uint32_t id, void *ud)
{
    (void)s;
    fz *z = ud;
    slot *sl = slot_of(z, id);
    if (sl && sl->answer_at_end) {
        sl->answer_at_end = 0;
        return respond(z, id, sl);
    }
    return 0;
}

static int on_stream_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    (void)s; (void)code;
    fz *z = ud;
    slot *sl = slot_of(z, id);
    if (sl)
        memset(sl, 0, sizeof(*sl)); /* its unread bytes went back with it */
    return 0;
}

/* Between two chunks: the application catches up with its work. The
 * rarer actions, like the clock's jumps, come about as often per byte of
 * input whatever its chunking, so byte-by-byte runs do not drown in them. */
static int now_and_then(fz *z, size_t chunk)
{
    return rnd(z) % 1024 < 4 + chunk;
}

static void app_round(fz *z, size_t chunk)
{
    for (int i = 0; i < NSLOT; i++) {
        slot *sl = &z->slots[i];
        if (!sl->id)
            continue;
        uint32_t id = sl->id;
        if (sl->unconsumed && one_in(z, 2)) {
            size_t n = 1 + rnd(z) % sl->unconsumed;
            sl->unconsumed -= n;
            CHECK(sluice_session_consume(z->s, id, n) == 0);
        }
        if (sl->answer_later && one_in(z, 2)) {
            sl->answer_later = 0;
            respond(z, id, sl);
        } else if (sl->waiting && one_in(z, 2)) {
            sl->waiting = 0;
            int rv = sluice_session_resume_data(z->s, id);
            CHECK(rv == 0 || rv == SLUICE_ERR_STATE);
        } else if (sl->trailers_due) {
            int rv = submit_trailers(z, sl);
            CHECK(rv == 0 || rv == SLUICE_ERR_NOT_FOUND);
        }
    }
    if (!now_and_then(z, chunk))
        return;
    uint32_t x = rnd(z) % 64;
    if (x == 0) {
        int rv = sluice_session_submit_ping(z->s, (const uint8_t *)"fuzzping");
        CHECK(rv == 0 || rv == SLUICE_ERR_CALM);
    } else if (x == 1) {
        static const uint32_t ids[] = {1, 3, 4, 5, 6};
        uint32_t iv[2] = {ids[rnd(z) % 5], 0};
        switch (iv[0]) {
        case 1: iv[1] = rnd(z) % 8192; break;
        case 3: iv[1] = rnd(z) % 200; break;
        case 4: iv[1] = rnd(z) % 2 ? rnd(z) % 100 : rnd(z) % (1u << 20); break;
        case 5: iv[1] = 16384 + rnd(z) % 50000; break;
        default: iv[1] = 1024 + rnd(z) % 100000; break;
        }
        int rv = sluice_session_submit_settings(z->s, iv, 1);
        CHECK(rv == 0 || rv == SLUICE_ERR_AGAIN || rv < -19);
    } else if (x == 2) {
        slot *sl = &z->slots[rnd(z) % NSLOT];
        uint32_t id = sl->id ? sl->id : 0;
        int rv = sluice_session_set_window(z->s, id, 1 + rnd(z) % (1u << 22));
        CHECK(rv == 0 || rv < -19);
    } else if (x == 3) {
        int rv = sluice_session_goaway(z->s, one_in(z, 2) ? SLUICE_H2_NO_ERROR
                                                          : SLUICE_H2_ENHANCE_YOUR_CALM,
                                       "fuzz", (int)(rnd(z) % 2));
        CHECK(rv == 0 || rv == SLUICE_ERR_STATE);
    } else if (x == 4) {
        slot *sl = &z->slots[rnd(z) % NSLOT];
        if (sl->id) {
            uint32_t id = sl->id;
            CHECK(sluice_session_submit_rst(z->s, id, SLUICE_H2_CANCEL) == 0);
            CHECK(sl->id == 0); /* on_stream_close ran */
        }
    }
}

/* Invariants that hold between calls. */
static void check_state(fz *z)
{
    sluice_session_stats st;
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    CHECK(sluice_session_get_stats(z->s, &st) == 0);
    CHECK(st.streams_open <= z->max_streams);
    size_t held = 0;
    for (int i = 0; i < NSLOT; i++)
        held += z->slots[i].unconsumed;
    CHECK(st.recv_buffered == held);
    uint64_t d = sluice_session_next_deadline(z->s);
    if (d <= z->now)
        sluice_session_handle_timeout(z->s, z->now);
}

static void step_clock(fz *z, uint8_t scale, size_t chunk)
{
    if (now_and_then(z, chunk) && one_in(z, 16))
        z->now += (uint64_t)(rnd(z) % 1000) * 16000000ull * (scale % 16 + 1) / 16;
    else
        z->now += rnd(z) % 2000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PREFIX_LEN)
        return 0;
    fz z;
    memset(&z, 0, sizeof(z));
    z.opt = data[0];
    z.rng = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
    z.rng = z.rng * 2654435761u + 1;
    if (z.rng == 0)
        z.rng = 1;
    static const size_t spans[] = {1, 3, 9, 64, 500, 4096, 65536, SIZE_MAX};
    size_t span = spans[data[5] & 7];
    int short_writes = data[6] & 1, lazy_drain = data[6] & 2;
    uint8_t scale = data[7];

    sluice_session_options o;
    sluice_session_options_init(&o);
    o.auto_consume = (z.opt & OPT_AUTO_CONSUME) != 0;
    if (z.opt & OPT_TINY_WINDOW)
        o.initial_window_size = 1 + data[4] % 200;
    if (z.opt & OPT_FEW_STREAMS)
        o.max_concurrent_streams = 1 + data[3] % 4;
    if (z.opt & OPT_SMALL_HEADERS) {
        o.header_table_size = 256;
        o.max_header_list_size = 2048;
        o.max_header_block_size = 4096;
    }
    if (z.opt & OPT_BIG_FRAMES)
        o.max_frame_size = 1u << 16;
    if (z.opt & OPT_SMALL_CONN_WINDOW)
        o.connection_window = 65535;
    if (z.opt & OPT_FEW_CONTINUATIONS)
        o.max_continuation_frames = 2;
    z.max_streams = o.max_concurrent_streams;

    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = on_headers;
    cb.on_data = on_data;
    cb.on_stream_end = on_stream_end;
    cb.on_stream_close = on_stream_close;
    CHECK(sluice_session_new(&z.s, SLUICE_ROLE_SERVER, &cb, &z, &o, NULL, 0) == 0);
    sl_mem m;
    sl_mem_init(&m, NULL);
    sl_frame_decoder_init(&z.dec, &m);
    sl_frame_decoder_set_max_frame_size(&z.dec, SL_MAX_FRAME_SIZE_MAX);
    CHECK(sluice_hpack_decoder_new(&z.hd, NULL, NULL) == 0);

    static const uint8_t hello[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                   "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    CHECK(sluice_session_recv(z.s, hello, sizeof(hello) - 1, z.now) == (long)sizeof(hello) - 1);

    const uint8_t *in = data + PREFIX_LEN;
    size_t len = size - PREFIX_LEN, off = 0;
    int fatal = 0;
    for (int chunk = 0; off < len; chunk++) {
        size_t n = span == SIZE_MAX ? len - off : 1 + rnd(&z) % span;
        if (n > len - off)
            n = len - off;
        long rv = sluice_session_recv(z.s, in + off, n, z.now);
        off += n;
        if (rv < 0) {
            /* A connection error: sticky, and the GOAWAY is queued. */
            CHECK(sluice_session_recv(z.s, in, 1, z.now) == rv);
            CHECK(sluice_session_want_read(z.s) == 0);
            fatal = 1;
            break;
        }
        CHECK(rv == (long)n);
        app_round(&z, n);
        if (!lazy_drain || chunk % 2)
            drain(&z, short_writes);
        check_state(&z);
        step_clock(&z, scale, n);
    }
    /* Let the application finish what it started, then close. */
    for (int i = 0; i < 16 && !fatal; i++) {
        app_round(&z, 0);
        drain(&z, 0);
        check_state(&z);
    }
    drain(&z, 0);
    sluice_session_free(z.s);
    sluice_hpack_decoder_free(z.hd);
    sl_frame_decoder_free(&z.dec);
    free(z.block);
    return 0;
}
