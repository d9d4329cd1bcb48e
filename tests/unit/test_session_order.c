/* test_session_order.c — the order a session writes frames in, frame by
 * frame on the wire: control first, header blocks next, DATA by urgency. */
#include <stdio.h>
#include <string.h>

#include "raw_peer.h"
#include "t.h"

static uint8_t big[1 << 20];
static const sluice_nv res200[] = {NV(":status", "200")};

/* ---- the wire -------------------------------------------------------------- */

/* Everything the session wrote since wire_reset() stays in p->out; the
 * frames complete so far are parsed into p->f as they arrive, so the peer's
 * HPACK decoder sees every block once, in wire order. */
static size_t parsed;

static void wire_reset(rp *p)
{
    p->out_len = 0;
    p->nf = 0;
    parsed = 0;
}

static void parse_new(rp *p)
{
    parsed = rp_parse_frames(p, parsed);
}

/* The socket takes up to max bytes (the session may cut a frame there). */
static size_t write_some(rp *p, size_t max)
{
    size_t got = 0;
    while (got < max && p->out_len < RP_OUT_CAP) {
        sluice_iovec iov[64];
        size_t room = RP_OUT_CAP - p->out_len;
        int n = sluice_session_output(p->s, iov, 64, max - got < room ? max - got : room,
                                      p->now);
        if (n <= 0)
            break;
        size_t sum = 0;
        for (int i = 0; i < n; i++) {
            memcpy(p->out + p->out_len + sum, iov[i].base, iov[i].len);
            sum += iov[i].len;
        }
        sluice_session_output_done(p->s, sum);
        p->out_len += sum;
        got += sum;
    }
    parse_new(p);
    return got;
}

/* The session queues output for a write of max bytes, and the socket
 * takes none of it. Returns the bytes queued. */
static size_t queue_unwritten(rp *p, size_t max)
{
    sluice_iovec iov[64];
    sluice_session_output(p->s, iov, 64, max, p->now);
    sluice_session_output_done(p->s, 0);
    sluice_session_stats st;
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    sluice_session_get_stats(p->s, &st);
    return st.buffered_out;
}

static size_t pending_out(rp *p)
{
    return queue_unwritten(p, 0);
}

typedef struct want_frame {
    uint8_t type;
    uint32_t id;
} want_frame;

#define W(t, i) {SL_FRAME_##t, i}

static const char *type_name(uint8_t t)
{
    static const char *names[] = {"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS",
                                  "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE",
                                  "CONTINUATION"};
    return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* The frames parsed since wire_reset() are exactly want (type and stream). */
static int frames_are(const rp *p, const want_frame *want, size_t n)
{
    int ok = p->nf == n && p->parse_error == 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = p->f[i].type == want[i].type && p->f[i].stream_id == want[i].id;
    if (!ok) {
        fprintf(stderr, "  got (%zu frames%s):", p->nf, p->parse_error ? ", parse error" : "");
        for (size_t i = 0; i < p->nf; i++)
            fprintf(stderr, " %s/%u", type_name(p->f[i].type), p->f[i].stream_id);
        fprintf(stderr, "\n  want (%zu):", n);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s/%u", type_name(want[i].type), want[i].id);
        fputc('\n', stderr);
    }
    return ok;
}

#define CHECK_FRAMES(p, ...)                                                   \
    do {                                                                       \
        static const want_frame w_[] = {__VA_ARGS__};                          \
        CHECK(frames_are((p), w_, sizeof(w_) / sizeof(w_[0])));                \
    } while (0)

/* ---- the peer ------------------------------------------------------------------ */

static void request(rp *p, uint32_t id, const char *priority, int end_stream)
{
    sluice_nv nv[5] = {NV(":method", "GET"), NV(":scheme", "https"),
                       NV(":authority", "example.com"), NV(":path", "/")};
    size_t n = 4;
    if (!end_stream)
        nv[0] = (sluice_nv)NV(":method", "POST");
    if (priority)
        nv[n++] = (sluice_nv){(const uint8_t *)"priority", (const uint8_t *)priority, 8,
                              strlen(priority), 0};
    rp_headers(p, id, nv, n, end_stream);
}

/* Server p's streams ids[0..n) each answer with 1 MiB of body at the
 * given priority; their HEADERS are written, no DATA yet. The peer's
 * stream windows are wide, and so is the connection's when conn_credit,
 * so that only the queue decides the order. */
static rp *bulk_server_on(rp *p, const uint32_t *ids, size_t n, const char *priority,
                          int conn_credit)
{
    if (!p)
        return NULL;
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 24};
    rp_settings(p, v, 1);
    if (conn_credit)
        rp_window_update(p, 0, 1u << 24);
    p->respond = 1;
    p->body = big;
    p->body_len = sizeof(big);
    p->body_defer = 1;
    for (size_t i = 0; i < n; i++)
        request(p, ids[i], priority, 1);
    rp_read(p);
    p->body_defer = 0;
    for (size_t i = 0; i < n; i++)
        sluice_session_resume_data(p->s, ids[i]);
    p->respond = 0;
    wire_reset(p);
    return p;
}

static rp *bulk_server(const sluice_session_options *o, const uint32_t *ids, size_t n,
                       const char *priority, int conn_credit)
{
    return bulk_server_on(rp_server(o), ids, n, priority, conn_credit);
}

/* Streams 1, 3 and 5, incremental, so they take turns frame by frame. */
static rp *three_bulk(const sluice_session_options *o, int conn_credit)
{
    static const uint32_t ids[] = {1, 3, 5};
    return bulk_server(o, ids, 3, "u=3, i", conn_credit);
}

/* 128 KiB queued on three_bulk(): D1 D3 D5 D1 D3 D5 D1 D3 (the last cut
 * short to fit). */
#define BULK 131072
#define BULK_FRAMES W(DATA, 1), W(DATA, 3), W(DATA, 5), W(DATA, 1), W(DATA, 3), \
                    W(DATA, 5), W(DATA, 1), W(DATA, 3)

/* A source of 40000 bytes per stream (rp's own source serves p->body_len). */
static size_t short_off[16];

static long short_read(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                       uint32_t *flags, void *ud)
{
    (void)s;
    (void)ud;
    size_t *off = &short_off[id % 16];
    size_t n = 40000 - *off < max ? 40000 - *off : max;
    *data = big + *off;
    *off += n;
    if (*off == 40000)
        *flags |= SLUICE_DATA_EOF;
    return (long)n;
}

/* ---- control frames first -------------------------------------------------------- */

TEST(ping_ack_goes_ahead_of_queued_data)
{
    rp *p = three_bulk(NULL, 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, BULK), BULK);
    CHECK(rp_ping(p, "abcdefgh", 0) > 0);
    CHECK_INT(write_some(p, 17 + BULK), 17 + BULK);
    CHECK_FRAMES(p, W(PING, 0), BULK_FRAMES);
    CHECK_INT(p->f[0].flags, SL_FLAG_ACK);
    CHECK_MEM(p->f[0].opaque, 8, "abcdefgh", 8);
    CHECK_INT(p->f[8].length, BULK - 7 * 16393 - 9);
    rp_free(p);
}

TEST(settings_ack_goes_ahead_of_queued_data)
{
    rp *p = three_bulk(NULL, 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, BULK), BULK);
    uint32_t v[] = {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 50};
    CHECK(rp_settings(p, v, 1) > 0);
    CHECK_INT(write_some(p, 9 + BULK), 9 + BULK);
    CHECK_FRAMES(p, W(SETTINGS, 0), BULK_FRAMES);
    CHECK_INT(p->f[0].flags, SL_FLAG_ACK);
    rp_free(p);
}

TEST(window_update_goes_ahead_of_queued_data)
{
    rp *p = three_bulk(NULL, 1);
    CHECK(p);
    request(p, 7, NULL, 0); /* an upload: 40000 bytes the application holds */
    CHECK(rp_data_many(p, 7, 40000, 0) > 0);
    CHECK_INT(pending_out(p), 0);
    CHECK_INT(queue_unwritten(p, BULK), BULK);
    CHECK_INT(sluice_session_consume(p->s, 7, 40000), 0);
    CHECK_INT(write_some(p, 13 + BULK), 13 + BULK);
    CHECK_FRAMES(p, W(WINDOW_UPDATE, 7), BULK_FRAMES);
    CHECK_INT(p->f[0].increment, 40000);
    rp_free(p);
}

/* The reset stream's queued DATA goes too, and its connection credit comes
 * back: the peer never sees those bytes. */
TEST(rst_stream_goes_ahead_and_takes_its_data_out)
{
    rp *p = three_bulk(NULL, 0); /* connection window: 65535 */
    CHECK(p);
    CHECK_INT(queue_unwritten(p, BULK), 65535 + 4 * 9); /* D1 D3 D5 D1 */
    sluice_session_stats st;
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    CHECK_INT(sluice_session_get_stats(p->s, &st), 0);
    uint64_t frames_before = st.frames_out;
    CHECK_INT(sluice_session_submit_rst(p->s, 3, SLUICE_H2_CANCEL), 0);
    CHECK_INT(pending_out(p), 13 + 65535 - 16384 + 3 * 9);
    CHECK_INT(sluice_session_get_stats(p->s, &st), 0);
    CHECK_INT(st.frames_out, frames_before + 1 - 1); /* the RST in, D3 out */
    write_some(p, 1 << 20);
    CHECK_FRAMES(p, W(RST_STREAM, 3), W(DATA, 1), W(DATA, 5), W(DATA, 1), W(DATA, 5));
    CHECK_INT(p->f[0].code, SLUICE_H2_CANCEL);
    CHECK_INT(rp_data_total(p, 3), 0);
    CHECK_INT(rp_data_total(p, RP_ANY), 65535); /* D3's credit went to stream 5 */
    rp_free(p);
}

/* A frame partly written is finished first, never split. */
TEST(partial_data_frame_finishes_before_control)
{
    rp *p = three_bulk(NULL, 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, BULK), BULK);
    CHECK_INT(write_some(p, 100), 100);
    CHECK_INT(p->nf, 0);
    CHECK(rp_ping(p, "abcdefgh", 0) > 0);
    CHECK_INT(write_some(p, 17 + BULK - 100), 17 + BULK - 100);
    CHECK_FRAMES(p, W(DATA, 1), W(PING, 0), W(DATA, 3), W(DATA, 5), W(DATA, 1), W(DATA, 3),
                 W(DATA, 5), W(DATA, 1), W(DATA, 3));
    CHECK_INT(p->f[0].length, 16384);
    CHECK_INT(p->f[1].flags, SL_FLAG_ACK);
    rp_free(p);
}

TEST(partial_header_block_finishes_before_control)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    request(p, 1, NULL, 1);
    static char v[40000];
    memset(v, 'v', sizeof(v));
    sluice_nv nv[] = {NV(":status", "200"),
                      {(const uint8_t *)"x-big", (const uint8_t *)v, 5, sizeof(v), 0}};
    CHECK_INT(sluice_session_submit_response(p->s, 1, nv, 2, NULL), 0);
    wire_reset(p);
    CHECK_INT(write_some(p, 100), 100);
    CHECK(rp_ping(p, "abcdefgh", 0) > 0);
    write_some(p, 1 << 20);
    CHECK_FRAMES(p, W(HEADERS, 1), W(CONTINUATION, 1), W(CONTINUATION, 1), W(PING, 0));
    CHECK_STR(p->f[0].status, "200");
    CHECK_INT(p->f[0].nfields, 2);
    rp_free(p);
}

/* ---- SETTINGS ACK: what it must not overtake ------------------------------------- */

/* The peer shrinks its windows when it reads the ACK: DATA queued under the
 * larger ones must reach it first. The control frames behind the ACK wait
 * with it. */
TEST(settings_ack_lowering_the_window_follows_queued_data)
{
    rp *p = three_bulk(NULL, 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, BULK), BULK);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20};
    CHECK(rp_settings(p, v, 1) > 0);
    CHECK(rp_ping(p, "abcdefgh", 0) > 0);
    CHECK_INT(write_some(p, 9 + 17 + BULK), 9 + 17 + BULK);
    CHECK_FRAMES(p, BULK_FRAMES, W(SETTINGS, 0), W(PING, 0));
    rp_free(p);
}

/* Likewise a smaller MAX_FRAME_SIZE: frames cut to the old size come first. */
TEST(settings_ack_lowering_max_frame_size_follows_queued_data)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 24, SL_SETTINGS_MAX_FRAME_SIZE,
                    32768};
    rp_settings(p, v, 2);
    rp_window_update(p, 0, 1u << 24);
    p->respond = 1;
    p->body = big;
    p->body_len = sizeof(big);
    p->body_defer = 1;
    request(p, 1, NULL, 1);
    rp_read(p);
    p->body_defer = 0;
    CHECK_INT(sluice_session_resume_data(p->s, 1), 0);
    wire_reset(p);
    CHECK_INT(queue_unwritten(p, 2 * 32777), 2 * 32777);
    uint32_t w[] = {SL_SETTINGS_MAX_FRAME_SIZE, 16384};
    CHECK(rp_settings(p, w, 1) > 0);
    write_some(p, 9 + 2 * 32777);
    CHECK_FRAMES(p, W(DATA, 1), W(DATA, 1), W(SETTINGS, 0));
    CHECK_INT(p->f[1].length, 32768);
    /* From now on, frames of the new size. */
    wire_reset(p);
    write_some(p, 3 * 16393);
    CHECK_FRAMES(p, W(DATA, 1), W(DATA, 1), W(DATA, 1));
    CHECK_INT(p->f[0].length, 16384);
    rp_free(p);
}

/* A block encoded before the peer's settings applied (HEADER_TABLE_SIZE)
 * reaches the peer before the ACK; one encoded after, behind it. */
TEST(settings_ack_follows_header_blocks_encoded_before)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    request(p, 1, NULL, 1);
    request(p, 3, NULL, 1);
    CHECK_INT(sluice_session_submit_response(p->s, 1, res200, 1, NULL), 0);
    uint32_t v[] = {SL_SETTINGS_HEADER_TABLE_SIZE, 0};
    CHECK(rp_settings(p, v, 1) > 0);
    CHECK_INT(sluice_session_submit_response(p->s, 3, res200, 1, NULL), 0);
    wire_reset(p);
    write_some(p, 1 << 20);
    CHECK_FRAMES(p, W(HEADERS, 1), W(SETTINGS, 0), W(HEADERS, 3));
    CHECK_INT(p->f[2].payload[0], 0x20); /* dynamic table size update to 0 first */
    CHECK_STR(p->f[2].status, "200");
    rp_free(p);
}

/* ---- header blocks and urgent streams -------------------------------------------- */

/* An urgent stream's response goes ahead of queued bulk DATA; its DATA
 * follows the one bulk frame being written. */
TEST(urgent_response_waits_at_most_one_bulk_frame)
{
    static const uint32_t bulk_id[] = {1};
    rp *p = bulk_server(NULL, bulk_id, 1, "u=7", 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, 65536), 65536); /* D1 x 4 */
    CHECK_INT(write_some(p, 20000), 20000);      /* the second one started */
    p->respond = 1;
    request(p, 3, "u=0", 1);
    CHECK_INT(write_some(p, 65536), 65536);
    CHECK_FRAMES(p, W(DATA, 1), W(DATA, 1), W(HEADERS, 3), W(DATA, 3), W(DATA, 3), W(DATA, 1),
                 W(DATA, 1));
    CHECK_STR(p->f[2].status, "200");
    CHECK_INT(p->f[3].length, 16384);
    /* The rest of the write: 65536 - 45536 queued - HEADERS - D3 - header. */
    CHECK_INT(p->f[4].length, 20000 - (9 + p->f[2].length) - 16393 - 9);
    rp_free(p);
}

/* Trailers follow their own body: that DATA moves up ahead of the other
 * stream's rather than holding the trailers (and every block after them)
 * behind everyone's DATA. */
TEST(trailers_follow_own_data)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 24};
    rp_settings(p, v, 1);
    rp_window_update(p, 0, 1u << 24);
    request(p, 1, "u=3, i", 1);
    request(p, 3, "u=3, i", 1);
    rp_read(p);
    p->body = big;
    p->body_len = sizeof(big);
    memset(short_off, 0, sizeof(short_off));
    sluice_data_source bulk = {rp_body_read, p}, small = {short_read, p};
    static const sluice_nv trailers[] = {NV("grpc-status", "0")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, res200, 1, &bulk), 0);
    CHECK_INT(sluice_session_submit_response(p->s, 3, res200, 1, &small), 0);
    CHECK_INT(sluice_session_submit_trailers(p->s, 3, trailers, 1), 0);
    wire_reset(p);
    size_t q = queue_unwritten(p, BULK);
    CHECK_INT(write_some(p, q), q);
    CHECK_FRAMES(p, W(HEADERS, 1), W(HEADERS, 3), W(DATA, 3), W(DATA, 3), W(DATA, 3),
                 W(HEADERS, 3), W(DATA, 1), W(DATA, 1), W(DATA, 1), W(DATA, 1), W(DATA, 1),
                 W(DATA, 1));
    CHECK_INT(rp_data_total(p, 3), 40000);
    CHECK_INT(p->f[4].flags, 0);
    CHECK_INT(p->f[5].flags, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM);
    CHECK_INT(p->f[5].nfields, 1);
    rp_free(p);
}

/* Blocks go out in the order they were encoded, whatever was queued
 * between them: the peer's decoder, which follows the dynamic table block
 * by block, reads every one (201 and x-tag are indexed by the first
 * response and referenced by the later ones). */
TEST(header_blocks_keep_hpack_order)
{
    static const uint32_t bulk_id[] = {1};
    rp *p = bulk_server(NULL, bulk_id, 1, "u=7", 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, 65536), 65536);
    CHECK_INT(write_some(p, 100), 100);
    for (uint32_t id = 3; id <= 9; id += 2)
        request(p, id, NULL, 0);
    static const sluice_nv r3[] = {NV(":status", "201"), NV("x-tag", "alpha")};
    static const sluice_nv i5[] = {NV(":status", "103"), NV("link", "</a.css>; rel=preload")};
    static const sluice_nv r5[] = {NV(":status", "201"), NV("x-tag", "alpha")};
    static const sluice_nv r7[] = {NV(":status", "202"), NV("x-tag", "beta")};
    static const sluice_nv r9[] = {NV(":status", "201"), NV("x-tag", "beta")};
    memset(short_off, 0, sizeof(short_off));
    sluice_data_source small = {short_read, p};
    static const sluice_nv trailers[] = {NV("x-tag", "alpha")};
    CHECK_INT(sluice_session_submit_response(p->s, 3, r3, 2, &small), 0);
    CHECK_INT(sluice_session_submit_trailers(p->s, 3, trailers, 1), 0);
    CHECK(rp_ping(p, "abcdefgh", 0) > 0);
    CHECK_INT(sluice_session_submit_info(p->s, 5, i5, 2), 0);
    CHECK_INT(sluice_session_submit_response(p->s, 5, r5, 2, NULL), 0);
    CHECK_INT(sluice_session_submit_response(p->s, 7, r7, 2, NULL), 0);
    CHECK_INT(sluice_session_submit_response(p->s, 9, r9, 2, NULL), 0);
    write_some(p, 1 << 20);
    CHECK_INT(p->parse_error, 0);
    CHECK(p->nf > 14);
    size_t nf = p->nf;
    p->nf = 14; /* the first frames exactly; all the rest is stream 1's DATA */
    CHECK_FRAMES(p, W(DATA, 1), W(PING, 0), W(HEADERS, 3), W(HEADERS, 5), W(HEADERS, 5),
                 W(HEADERS, 7), W(HEADERS, 9), W(DATA, 3), W(DATA, 3), W(DATA, 3),
                 W(HEADERS, 3), W(DATA, 1), W(DATA, 1), W(DATA, 1));
    p->nf = nf;
    for (size_t i = 14; i < p->nf; i++)
        CHECK(p->f[i].type == SL_FRAME_DATA && p->f[i].stream_id == 1);
    static const char *status[] = {"201", "103", "201", "202", "201"};
    for (size_t i = 0; i < 5; i++)
        CHECK_STR(p->f[2 + i].status, status[i]);
    CHECK_INT(p->f[10].nfields, 1); /* the trailers, after stream 3's body */
    CHECK_INT(p->f[10].flags, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM);
    rp_free(p);
}

/* ---- RST_STREAM and GOAWAY --------------------------------------------------------- */

/* An RST for a stream whose HEADERS are still queued follows them (the
 * peer must see the stream open), and its DATA goes. */
TEST(rst_follows_own_headers_and_drops_data)
{
    static const uint32_t none[] = {0};
    rp *p = bulk_server(NULL, none, 0, NULL, 1);
    CHECK(p);
    p->respond = 1;
    request(p, 1, NULL, 1);
    CHECK_INT(queue_unwritten(p, 65536), 65536);
    CHECK_INT(sluice_session_submit_rst(p->s, 1, SLUICE_H2_INTERNAL_ERROR), 0);
    write_some(p, 1 << 20);
    CHECK_FRAMES(p, W(HEADERS, 1), W(RST_STREAM, 1));
    CHECK_INT(p->f[1].code, SLUICE_H2_INTERNAL_ERROR);
    rp_free(p);
}

/* Our side has ended (the whole response is queued): RST NO_ERROR only
 * stops the rest of the request (RFC 9113 §8.1) and follows the response.
 * Any other code aborts the stream: the response DATA goes. */
TEST(rst_after_complete_response_follows_it_only_without_error)
{
    static const uint32_t none[] = {0};
    static const uint32_t codes[] = {SLUICE_H2_NO_ERROR, SLUICE_H2_CANCEL};
    for (size_t k = 0; k < 2; k++) {
        rp *p = bulk_server(NULL, none, 0, NULL, 1);
        CHECK(p);
        request(p, 1, NULL, 0); /* its body has not all come */
        memset(short_off, 0, sizeof(short_off));
        sluice_data_source small = {short_read, p};
        CHECK_INT(sluice_session_submit_response(p->s, 1, res200, 1, &small), 0);
        CHECK_INT(queue_unwritten(p, 65536), 10 + 40000 + 3 * 9);
        CHECK_INT(sluice_session_submit_rst(p->s, 1, codes[k]), 0);
        write_some(p, 1 << 20);
        if (k == 0) {
            CHECK_FRAMES(p, W(HEADERS, 1), W(DATA, 1), W(DATA, 1), W(DATA, 1),
                         W(RST_STREAM, 1));
            CHECK_INT(p->f[3].flags, SL_FLAG_END_STREAM);
            CHECK_INT(rp_data_total(p, 1), 40000);
        } else {
            CHECK_FRAMES(p, W(HEADERS, 1), W(RST_STREAM, 1));
        }
        CHECK_INT(p->f[p->nf - 1].code, codes[k]);
        rp_free(p);
    }
}

/* GOAWAY goes ahead of DATA but after the blocks queued before it: the
 * streams it covers were all opened on the wire first. */
TEST(goaway_follows_blocks_ahead_of_data)
{
    rp *p = three_bulk(NULL, 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, BULK), BULK);
    p->respond = 1;
    request(p, 7, NULL, 1);
    CHECK_INT(sluice_session_goaway(p->s, SLUICE_H2_NO_ERROR, NULL, 0), 0);
    write_some(p, pending_out(p));
    CHECK_FRAMES(p, W(HEADERS, 7), W(GOAWAY, 0), BULK_FRAMES);
    CHECK_INT(p->f[1].last_id, 7);
    rp_free(p);
}

/* ---- client side ---------------------------------------------------------------------- */

/* A WINDOW_UPDATE for a stream we just opened never reaches the peer before
 * the HEADERS that open it (§5.1: idle stream, PROTOCOL_ERROR), though both
 * go ahead of the upload queued before them. */
TEST(client_window_update_follows_request_headers)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 24};
    rp_settings(p, v, 1);
    rp_window_update(p, 0, 1u << 24);
    rp_read(p);
    static const sluice_nv post[] = {NV(":method", "POST"), NV(":scheme", "https"),
                                     NV(":authority", "example.com"), NV(":path", "/up")};
    p->body = big;
    p->body_len = sizeof(big);
    sluice_data_source up = {rp_body_read, p};
    uint32_t id1 = 0, id3 = 0;
    CHECK_INT(sluice_session_submit_request(p->s, post, 4, &up, &id1), 0);
    wire_reset(p);
    size_t queued = queue_unwritten(p, 65536);
    CHECK_INT(queued, 65536);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, &id3), 0);
    CHECK_INT(sluice_session_set_window(p->s, id3, 1u << 20), 0);
    CHECK(rp_ping(p, "abcdefgh", 0) > 0);
    write_some(p, pending_out(p));
    CHECK_FRAMES(p, W(HEADERS, 1), W(HEADERS, 3), W(WINDOW_UPDATE, 3), W(PING, 0), W(DATA, 1),
                 W(DATA, 1), W(DATA, 1), W(DATA, 1));
    CHECK_INT(p->f[2].increment, (1u << 20) - 65535);
    rp_free(p);
}

/* ---- the flood bound -------------------------------------------------------------------- */

/* Queued DATA does not count toward the bound on unread control frames.
 * The GOAWAY that ends the flood goes out after the replies already
 * queued, and the DATA behind it never: the connection closes (§5.4.1). */
TEST(control_bound_ignores_queued_data)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_outbound_control = 1000;
    o.ping = (sluice_rate){100000, 100000};
    rp *p = three_bulk(&o, 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, BULK), BULK);
    int i;
    for (i = 0; i < 1000; i++)
        if (rp_ping(p, "abcdefgh", 0) < 0)
            break;
    CHECK_INT(i, 58); /* 58 ACKs of 17 bytes fit in 1000 */
    write_some(p, 1 << 20);
    CHECK_INT(p->nf, 58 + 1);
    for (size_t k = 0; k < 58; k++)
        CHECK_INT(p->f[k].type, SL_FRAME_PING);
    CHECK_INT(p->f[58].type, SL_FRAME_GOAWAY);
    CHECK_INT(p->f[58].code, SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(pending_out(p), 0);
    CHECK_INT(sluice_session_want_write(p->s), 0);
    rp_free(p);
}

/* A frame already started is finished even then: the GOAWAY must not land
 * inside it. */
TEST(connection_error_finishes_started_frame_only)
{
    rp *p = three_bulk(NULL, 1);
    CHECK(p);
    CHECK_INT(queue_unwritten(p, BULK), BULK);
    CHECK_INT(write_some(p, 100), 100);
    CHECK(rp_frame_raw(p, SL_FRAME_PING, 0, 0, "short", 5) < 0); /* FRAME_SIZE_ERROR */
    write_some(p, 1 << 20);
    CHECK_FRAMES(p, W(DATA, 1), W(GOAWAY, 0));
    CHECK_INT(p->f[0].length, 16384);
    CHECK_INT(p->f[1].code, SLUICE_H2_FRAME_SIZE_ERROR);
    rp_free(p);
}

/* ---- on_data_sent for DATA taken out --------------------------------------------- */

static size_t sent_bytes;
static int reset_in_callback; /* reset the stream again from the first callback */

static void count_sent(sluice_session *s, uint32_t id, size_t len, void *ud)
{
    (void)ud;
    sent_bytes += len;
    if (reset_in_callback) {
        reset_in_callback = 0;
        sluice_session_submit_rst(s, id, SLUICE_H2_CANCEL);
    }
}

/* A server as rp_server() makes, with on_data_sent counting the bytes. */
static rp *server_counting_sent(void)
{
    rp *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->role = SLUICE_ROLE_SERVER;
    p->hblock_frame = -1;
    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = rp_on_headers;
    cb.on_data = rp_on_data;
    cb.on_stream_end = rp_on_end;
    cb.on_stream_close = rp_on_close;
    cb.on_goaway = rp_on_goaway;
    cb.on_data_sent = count_sent;
    if (sluice_hpack_encoder_new(&p->enc, NULL, NULL) != 0 ||
        sluice_hpack_decoder_new(&p->dec, NULL, NULL) != 0 ||
        sluice_session_new(&p->s, SLUICE_ROLE_SERVER, &cb, p, NULL, NULL, 0) != 0 ||
        rp_handshake(p, NULL, 0) < 0) {
        rp_free(p);
        return NULL;
    }
    return p;
}

/* Every byte the application lent is reported back exactly once, written
 * or taken out by a reset, also when the application resets the stream
 * again from inside the callback. */
TEST(rst_reports_dropped_data_to_the_application)
{
    static const uint32_t ids[] = {1, 3};
    for (int again = 0; again < 2; again++) {
        rp *p = bulk_server_on(server_counting_sent(), ids, 2, "u=3, i", 1);
        CHECK(p);
        sent_bytes = 0;
        CHECK_INT(queue_unwritten(p, BULK), BULK); /* D1 D3 D1 D3 D1 D3 D1 D3 */
        reset_in_callback = again;
        CHECK_INT(sluice_session_submit_rst(p->s, 3, SLUICE_H2_CANCEL), 0);
        CHECK_INT(sent_bytes, 3 * 16384 + BULK - 7 * 16393 - 9);
        CHECK_INT(sluice_session_get_priority(p->s, 3, NULL, NULL), SLUICE_ERR_NOT_FOUND);
        CHECK_INT(p->closes, 1);
        sent_bytes = 0;
        size_t q = pending_out(p);
        CHECK_INT(write_some(p, q), q);
        CHECK_INT(sent_bytes, 4 * 16384);
        CHECK_INT(rp_count(p, SL_FRAME_RST_STREAM, 3), 1 + (size_t)again);
        CHECK_INT(rp_data_total(p, 3), 0);
        rp_free(p);
    }
}
