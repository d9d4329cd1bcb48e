/* test_session_proto.c — the session's state machine and every error path,
 * driven with hand-made frames (raw_peer.h); asserts the exact frames and codes. */
#include "t.h"
#include "raw_peer.h"

#define SEC 1000000000ull
#define MAXWIN 0x7fffffffu

/* The last recv failed with err and the session wrote GOAWAY code. */
#define CHECK_GOAWAY(p, err, h2code)                                           \
    do {                                                                       \
        CHECK_INT((p)->rv, (err));                                             \
        rp_read(p);                                                            \
        const rp_frame *g_ = rp_find((p), SL_FRAME_GOAWAY, 0);                 \
        CHECK(g_ != NULL);                                                     \
        CHECK_INT(g_->code, (h2code));                                         \
        CHECK_INT(rp_count((p), SL_FRAME_GOAWAY, RP_ANY), 1);                  \
    } while (0)

/* The last read holds exactly one RST_STREAM, on id with code. */
#define CHECK_RST(p, id, h2code)                                               \
    do {                                                                       \
        const rp_frame *r_ = rp_find((p), SL_FRAME_RST_STREAM, RP_ANY);        \
        CHECK(r_ != NULL);                                                     \
        CHECK_INT(r_->stream_id, (id));                                        \
        CHECK_INT(r_->code, (h2code));                                         \
        CHECK_INT(rp_count((p), SL_FRAME_RST_STREAM, RP_ANY), 1);              \
        CHECK_INT(rp_count((p), SL_FRAME_GOAWAY, RP_ANY), 0);                  \
    } while (0)

/* The connection still serves requests: stream id gets a 200. */
#define CHECK_SERVES(p, id)                                                    \
    do {                                                                       \
        (p)->respond = 1;                                                      \
        CHECK(rp_request((p), (id), 1) > 0);                                   \
        rp_read(p);                                                            \
        const rp_frame *h_ = rp_find((p), SL_FRAME_HEADERS, (id));             \
        CHECK(h_ != NULL);                                                     \
        CHECK_STR(h_->status, "200");                                          \
        CHECK_INT(rp_count((p), SL_FRAME_GOAWAY, RP_ANY), 0);                  \
    } while (0)

static const char ping8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static uint8_t big_body[300000];

static const uint8_t *body_bytes(size_t n)
{
    for (size_t i = 0; i < n && i < sizeof(big_body); i++)
        big_body[i] = (uint8_t)('a' + i % 26);
    return big_body;
}

/* ==== connection preface (RFC 9113 §3.4) =================================== */

TEST(preface_bad_magic_goaway_protocol_3_4)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    rp_send(p, "PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n", 24);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(rp_find(p, SL_FRAME_GOAWAY, 0)->last_id, 0);
    CHECK_INT(sluice_session_want_read(p->s), 0);
    rp_free(p);
}

TEST(preface_first_frame_not_settings_3_4)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    CHECK_INT(rp_preface(p), 24);
    rp_ping(p, ping8, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(rp_count(p, SL_FRAME_PING, RP_ANY), 0); /* the PING is not answered */
    rp_free(p);
}

TEST(preface_first_settings_is_ack_3_4)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    rp_preface(p);
    rp_settings_ack(p);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(preface_split_byte_by_byte)
{
    static const uint8_t in[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                "\x00\x00\x06\x04\x00\x00\x00\x00\x00"
                                "\x00\x03\x00\x00\x00\x0a";
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    rp_read(p); /* the session's own SETTINGS */
    for (size_t i = 0; i < sizeof(in) - 1; i++) {
        CHECK_INT(rp_send(p, in + i, 1), 1);
        rp_read(p);
        if (i + 2 < sizeof(in)) /* nothing is answered before the frame is whole */
            CHECK_INT(p->nf, 0);
    }
    const rp_frame *ack = rp_find(p, SL_FRAME_SETTINGS, 0);
    CHECK(ack != NULL);
    CHECK_INT(ack->flags, SL_FLAG_ACK);
    CHECK_INT(ack->length, 0);
    CHECK_INT(rp_count(p, SL_FRAME_GOAWAY, RP_ANY), 0);
    rp_free(p);
}

TEST(client_first_frame_must_be_settings_3_4)
{
    rp *p = rp_new(SLUICE_ROLE_CLIENT, NULL);
    CHECK(p);
    rp_read(p);
    CHECK_INT(p->preface_seen, 1);
    const rp_frame *st = rp_find(p, SL_FRAME_SETTINGS, 0);
    CHECK(st != NULL);
    CHECK_INT(st->settings[0].id, SL_SETTINGS_ENABLE_PUSH); /* a client refuses push */
    CHECK_INT(st->settings[0].value, 0);
    rp_ping(p, ping8, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(client_server_settings_acked)
{
    rp *p = rp_new(SLUICE_ROLE_CLIENT, NULL);
    CHECK(p);
    rp_read(p);
    uint32_t v[] = {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 10};
    CHECK_INT(rp_settings(p, v, 1), 15);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_SETTINGS);
    CHECK_INT(p->f[0].flags, SL_FLAG_ACK);
    rp_free(p);
}

/* ==== SETTINGS (§6.5) ========================================================= */

TEST(settings_ack_exact_bytes_6_5_3)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_HEADER_TABLE_SIZE, 8192, SL_SETTINGS_MAX_FRAME_SIZE, 32768};
    CHECK_INT(rp_settings(p, v, 2), 21);
    rp_read(p);
    static const uint8_t ack[] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
    CHECK_MEM(p->out, p->out_len, ack, sizeof(ack));
    rp_free(p);
}

TEST(settings_server_first_settings_content)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    rp_read(p);
    /* SETTINGS {MAX_CONCURRENT_STREAMS 100, MAX_HEADER_LIST_SIZE 65536}, then
     * the connection window raised to 1 MiB. */
    CHECK_INT(p->nf, 2);
    CHECK_INT(p->f[0].type, SL_FRAME_SETTINGS);
    CHECK_INT(p->f[0].nsettings, 2);
    CHECK_INT(p->f[0].settings[0].id, SL_SETTINGS_MAX_CONCURRENT_STREAMS);
    CHECK_INT(p->f[0].settings[0].value, 100);
    CHECK_INT(p->f[0].settings[1].id, SL_SETTINGS_MAX_HEADER_LIST_SIZE);
    CHECK_INT(p->f[0].settings[1].value, 65536);
    CHECK_INT(p->f[1].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[1].stream_id, 0);
    CHECK_INT(p->f[1].increment, (1u << 20) - 65535);
    rp_free(p);
}

TEST(settings_enable_push_2_protocol_error_6_5_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_ENABLE_PUSH, 2};
    rp_settings(p, v, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(rp_count(p, SL_FRAME_SETTINGS, RP_ANY), 0); /* no ACK */
    rp_free(p);
}

TEST(settings_initial_window_2_31_flow_control_error_6_5_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 0x80000000u};
    rp_settings(p, v, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_FLOW_CONTROL, SLUICE_H2_FLOW_CONTROL_ERROR);
    rp_free(p);
}

TEST(settings_max_frame_size_16383_protocol_error_6_5_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_MAX_FRAME_SIZE, 16383};
    rp_settings(p, v, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(settings_max_frame_size_2_24_protocol_error_6_5_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_MAX_FRAME_SIZE, 16777216};
    rp_settings(p, v, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(settings_unknown_id_ignored_6_5_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t v[] = {0x99, 12345, 0xffff, 0xffffffffu};
    CHECK_INT(rp_settings(p, v, 2), 21);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].flags, SL_FLAG_ACK);
    CHECK_SERVES(p, 1);
    rp_free(p);
}

TEST(settings_timeout_goaway_6_5_3)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    rp_preface(p);
    rp_settings(p, NULL, 0); /* but never ACK the session's SETTINGS */
    rp_read(p);
    CHECK_INT(sluice_session_next_deadline(p->s), 10 * SEC);
    CHECK_INT(sluice_session_handle_timeout(p->s, 10 * SEC - 1), 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(sluice_session_handle_timeout(p->s, 10 * SEC), SLUICE_ERR_SETTINGS_TIMEOUT);
    p->now = 10 * SEC;
    rp_read(p);
    const rp_frame *g = rp_find(p, SL_FRAME_GOAWAY, 0);
    CHECK(g != NULL);
    CHECK_INT(g->code, SLUICE_H2_SETTINGS_TIMEOUT);
    CHECK_INT(sluice_session_next_deadline(p->s), UINT64_MAX);
    rp_free(p);
}

TEST(settings_timeout_custom_and_cleared_by_ack)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.settings_timeout_ns = 3 * SEC;
    rp *p = rp_new(SLUICE_ROLE_SERVER, &o);
    CHECK(p);
    CHECK_INT(sluice_session_next_deadline(p->s), 3 * SEC);
    rp_handshake(p, NULL, 0);
    CHECK_INT(p->settings_acks, 1);
    CHECK_INT(sluice_session_next_deadline(p->s), UINT64_MAX);
    CHECK_INT(sluice_session_handle_timeout(p->s, 100 * SEC), 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

/* §6.9.2: the change applies to every open stream's send window, which may
 * go negative; DATA resumes only once WINDOW_UPDATEs bring it above zero. */
TEST(settings_initial_window_change_negative_window_6_9_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    p->respond = 1;
    p->body = body_bytes(100000);
    p->body_len = 100000;
    rp_window_update(p, 0, 1u << 20);
    CHECK(rp_request(p, 1, 1) > 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 65535);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1000};
    rp_settings(p, v, 1); /* window: 0 + 1000 - 65535 = -64535 */
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_SETTINGS);
    rp_window_update(p, 1, 64535); /* back to 0 */
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_window_update(p, 1, 500);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 500);
    CHECK_INT(rp_count(p, SL_FRAME_DATA, 1), 1);
    uint32_t up[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 3000}; /* +2000 */
    rp_settings(p, up, 1);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 2000);
    rp_free(p);
}

TEST(settings_initial_window_overflow_flow_control_6_9_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_window_update(p, 1, MAXWIN - 65535) > 0); /* exactly 2^31-1 */
    rp_read(p);
    CHECK_INT(p->nf, 0);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 65536};
    rp_settings(p, v, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_FLOW_CONTROL, SLUICE_H2_FLOW_CONTROL_ERROR);
    rp_free(p);
}

/* ==== stream identifiers and states (§5.1, §5.1.1) ============================ */

TEST(stream_even_id_from_client_5_1_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    rp_request(p, 2, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->requests, 0);
    rp_free(p);
}

TEST(stream_decreasing_id_5_1_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 5, 1) > 0);
    CHECK_INT(p->requests, 1);
    rp_request(p, 3, 1); /* 3 was never opened: an unexpected id */
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(rp_find(p, SL_FRAME_GOAWAY, 0)->last_id, 5);
    rp_free(p);
}

TEST(stream_data_on_idle_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    rp_data(p, 1, 10, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(stream_window_update_on_idle_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    rp_window_update(p, 3, 100);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(stream_rst_on_idle_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    rp_rst(p, 1, SLUICE_H2_CANCEL);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(stream_rst_on_server_idle_even_id_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    rp_rst(p, 2, SLUICE_H2_CANCEL); /* a stream the server could open, never did */
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

/* A stream-scoped frame error (§6.9: increment 0) on an idle stream: RST_STREAM
 * must not be sent for an idle stream (§6.4), and any frame but HEADERS or
 * PRIORITY there is a connection error PROTOCOL_ERROR (§5.1). */
TEST(stream_window_update_zero_on_idle_stream_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    rp_window_update(p, 3, 0);
    CHECK_INT(p->rv, SLUICE_ERR_PROTOCOL);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_RST_STREAM, RP_ANY), 0);
    const rp_frame *g = rp_find(p, SL_FRAME_GOAWAY, 0);
    CHECK(g != NULL);
    CHECK_INT(g->code, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(stream_headers_on_closed_stream_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    p->respond = 1;
    CHECK(rp_request(p, 1, 1) > 0);
    rp_read(p);
    CHECK_INT(p->closes, 1);
    CHECK_INT(p->last_close_code, SLUICE_H2_NO_ERROR);
    rp_request(p, 1, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_STREAM_CLOSED, SLUICE_H2_STREAM_CLOSED);
    rp_free(p);
}

TEST(stream_data_after_end_stream_half_closed_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK(rp_data(p, 1, 10, 0) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_STREAM_CLOSED);
    CHECK_INT(p->last_close_code, SLUICE_H2_STREAM_CLOSED);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

TEST(stream_half_closed_remote_accepts_window_update_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK(rp_window_update(p, 1, 1000) > 0);
    CHECK(rp_priority(p, 1, 0, 0, 15) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

/* After our RST_STREAM the peer may still have frames in flight (§5.1
 * "closed"): they are dropped without a second RST_STREAM. */
TEST(stream_frames_after_our_reset_ignored_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const sluice_nv bad[] = {NV(":method", "POST"), NV(":scheme", "https"),
                                    NV(":authority", "a.example"), NV(":path", "/"),
                                    NV("connection", "close")};
    CHECK(rp_headers(p, 1, bad, 5, 0) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    static const sluice_nv trailer[] = {NV("x-sum", "1")};
    CHECK(rp_data(p, 1, 100, 0) > 0);
    CHECK(rp_window_update(p, 1, 100) > 0);
    CHECK(rp_headers(p, 1, trailer, 1, 1) > 0);
    CHECK(rp_rst(p, 1, SLUICE_H2_CANCEL) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

/* A stream the application reset: the peer's DATA in flight is ignored too. */
TEST(stream_frames_after_app_reset_ignored_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK_INT(sluice_session_submit_rst(p->s, 1, SLUICE_H2_CANCEL), 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_CANCEL);
    CHECK(rp_data(p, 1, 100, 1) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

/* ==== SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2) ================================= */

TEST(concurrency_third_stream_refused_then_accepted_5_1_2)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_concurrent_streams = 2;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_request(p, 3, 0) > 0);
    CHECK(rp_request(p, 5, 0) > 0);
    rp_read(p);
    CHECK_RST(p, 5, SLUICE_H2_REFUSED_STREAM);
    CHECK_INT(p->requests, 2);
    CHECK(rp_rst(p, 1, SLUICE_H2_CANCEL) > 0);
    CHECK_INT(p->last_close_id, 1);
    CHECK(rp_request(p, 7, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(p->requests, 3);
    rp_free(p);
}

/* ==== CONTINUATION (§6.10) ====================================================== */

TEST(continuation_interleaved_ping_6_10)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint8_t b[256];
    CHECK(rp_block(p, rp_get, 4, b, sizeof(b)) > 2);
    CHECK(rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_STREAM, 1, b, 2) > 0);
    rp_ping(p, ping8, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(rp_count(p, SL_FRAME_PING, RP_ANY), 0);
    rp_free(p);
}

TEST(continuation_on_other_stream_6_10)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint8_t b[256];
    size_t len = rp_block(p, rp_get, 4, b, sizeof(b));
    CHECK(rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_STREAM, 1, b, 2) > 0);
    rp_frame_raw(p, SL_FRAME_CONTINUATION, SL_FLAG_END_HEADERS, 3, b + 2, len - 2);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(continuation_without_headers_6_10)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint8_t b[256];
    size_t len = rp_block(p, rp_get, 4, b, sizeof(b));
    rp_frame_raw(p, SL_FRAME_CONTINUATION, SL_FLAG_END_HEADERS, 1, b, len);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(continuation_after_complete_block_6_10)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    rp_frame_raw(p, SL_FRAME_CONTINUATION, SL_FLAG_END_HEADERS, 1, NULL, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(continuation_block_split_in_four_6_10)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    p->respond = 1;
    static const sluice_nv nv[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                   NV(":authority", "example.com"), NV(":path", "/split"),
                                   NV("user-agent", "raw-peer/1.0 (a long enough value)")};
    uint8_t b[512];
    size_t len = rp_block(p, nv, 5, b, sizeof(b));
    CHECK(len > 12);
    size_t q = len / 4;
    CHECK(rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_STREAM, 1, b, q) > 0);
    CHECK(rp_frame_raw(p, SL_FRAME_CONTINUATION, 0, 1, b + q, q) > 0);
    CHECK(rp_frame_raw(p, SL_FRAME_CONTINUATION, 0, 1, b + 2 * q, q) > 0);
    CHECK_INT(p->requests, 0);
    CHECK(rp_frame_raw(p, SL_FRAME_CONTINUATION, SL_FLAG_END_HEADERS, 1, b + 3 * q,
                       len - 3 * q) > 0);
    CHECK_INT(p->requests, 1);
    CHECK(strstr(p->fields, ":path: /split\n") != NULL);
    CHECK(strstr(p->fields, "user-agent: raw-peer/1.0 (a long enough value)\n") != NULL);
    rp_read(p);
    const rp_frame *h = rp_find(p, SL_FRAME_HEADERS, 1);
    CHECK(h != NULL);
    CHECK_STR(h->status, "200");
    rp_free(p);
}

TEST(continuation_32_frames_allowed)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint8_t b[256];
    size_t len = rp_block(p, rp_get, 4, b, sizeof(b));
    CHECK(rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_STREAM, 1, b, len) > 0);
    for (int i = 0; i < 31; i++)
        CHECK(rp_frame_raw(p, SL_FRAME_CONTINUATION, 0, 1, NULL, 0) > 0);
    CHECK(rp_frame_raw(p, SL_FRAME_CONTINUATION, SL_FLAG_END_HEADERS, 1, NULL, 0) > 0);
    CHECK_INT(p->requests, 1);
    rp_free(p);
}

TEST(continuation_33_frames_enhance_your_calm)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint8_t b[256];
    size_t len = rp_block(p, rp_get, 4, b, sizeof(b));
    CHECK(rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_STREAM, 1, b, len) > 0);
    for (int i = 0; i < 32; i++)
        CHECK(rp_frame_raw(p, SL_FRAME_CONTINUATION, 0, 1, NULL, 0) > 0);
    rp_frame_raw(p, SL_FRAME_CONTINUATION, 0, 1, NULL, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(p->requests, 0);
    rp_free(p);
}

TEST(continuation_block_over_max_size_calm)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_header_block_size = 1000;
    rp *p = rp_server(&o);
    CHECK(p);
    static uint8_t junk[600];
    CHECK(rp_frame_raw(p, SL_FRAME_HEADERS, 0, 1, junk, sizeof(junk)) > 0);
    rp_frame_raw(p, SL_FRAME_CONTINUATION, 0, 1, junk, sizeof(junk));
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    rp_free(p);
}

/* ==== header validation (§8.2, §8.3): RST_STREAM PROTOCOL_ERROR ================ */

/* A malformed request on stream 1 is reset with PROTOCOL_ERROR, never reaches
 * the application, and the connection then serves stream 3. */
static void bad_request(const sluice_nv *nv, size_t n)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_headers(p, 1, nv, n, 1) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->requests, 0);
    CHECK_SERVES(p, 3);
    CHECK_INT(p->requests, 1);
    rp_free(p);
}

#define REQ4(m, s, a, pa) NV(":method", m), NV(":scheme", s), NV(":authority", a), NV(":path", pa)

TEST(hdr_uppercase_name_8_2_1)
{
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "/"), NV("X-Foo", "1")};
    bad_request(nv, 5);
}

TEST(hdr_connection_specific_8_2_2)
{
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "/"),
                                   NV("keep-alive", "timeout=5")};
    bad_request(nv, 5);
}

TEST(hdr_transfer_encoding_8_2_2)
{
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "/"),
                                   NV("transfer-encoding", "chunked")};
    bad_request(nv, 5);
}

TEST(hdr_te_gzip_8_2_2)
{
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "/"), NV("te", "gzip")};
    bad_request(nv, 5);
}

TEST(hdr_te_trailers_allowed_8_2_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "/"),
                                   NV("te", "trailers")};
    CHECK(rp_headers(p, 1, nv, 5, 1) > 0);
    CHECK_INT(p->requests, 1);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

TEST(hdr_missing_path_8_3_1)
{
    static const sluice_nv nv[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                   NV(":authority", "example.com")};
    bad_request(nv, 3);
}

TEST(hdr_empty_path_8_3_1)
{
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "")};
    bad_request(nv, 4);
}

TEST(hdr_duplicate_method_8_3_1)
{
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "/"),
                                   NV(":method", "GET")};
    bad_request(nv, 5);
}

TEST(hdr_pseudo_after_regular_8_3)
{
    static const sluice_nv nv[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                   NV("accept", "*/*"), NV(":authority", "example.com"),
                                   NV(":path", "/")};
    bad_request(nv, 5);
}

TEST(hdr_unknown_pseudo_8_3)
{
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "/"),
                                   NV(":foo", "bar")};
    bad_request(nv, 5);
}

TEST(hdr_response_pseudo_in_request_8_3)
{
    static const sluice_nv nv[] = {REQ4("GET", "https", "example.com", "/"),
                                   NV(":status", "200")};
    bad_request(nv, 5);
}

/* content-length says 3, DATA brings 5 (§8.1.1). */
TEST(hdr_content_length_less_than_data_8_1_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const sluice_nv nv[] = {REQ4("POST", "https", "example.com", "/"),
                                   NV("content-length", "3")};
    CHECK(rp_headers(p, 1, nv, 5, 0) > 0);
    CHECK_INT(p->requests, 1);
    CHECK(rp_data(p, 1, 5, 1) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->ends, 0);
    CHECK_INT(p->last_close_code, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

/* content-length says 10, the stream ends after 5. */
TEST(hdr_content_length_more_than_data_8_1_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const sluice_nv nv[] = {REQ4("POST", "https", "example.com", "/"),
                                   NV("content-length", "10")};
    CHECK(rp_headers(p, 1, nv, 5, 0) > 0);
    CHECK(rp_data(p, 1, 5, 0) > 0);
    CHECK(rp_data(p, 1, 0, 1) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->ends, 0);
    CHECK_INT(p->data_bytes, 5);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

TEST(hdr_content_length_with_no_data_8_1_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const sluice_nv nv[] = {REQ4("POST", "https", "example.com", "/"),
                                   NV("content-length", "10")};
    CHECK(rp_headers(p, 1, nv, 5, 1) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->ends, 0);
    rp_free(p);
}

TEST(hdr_content_length_exact_ok_8_1_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const sluice_nv nv[] = {REQ4("POST", "https", "example.com", "/"),
                                   NV("content-length", "7")};
    CHECK(rp_headers(p, 1, nv, 5, 0) > 0);
    CHECK(rp_data(p, 1, 3, 0) > 0);
    CHECK(rp_data(p, 1, 4, 1) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(p->ends, 1);
    rp_free(p);
}

TEST(hdr_trailers_without_end_stream_8_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    static const sluice_nv tr[] = {NV("x-checksum", "abc")};
    CHECK(rp_headers(p, 1, tr, 1, 0) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->trailers_in, 0);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

TEST(hdr_trailers_with_pseudo_8_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    static const sluice_nv tr[] = {NV(":path", "/")};
    CHECK(rp_headers(p, 1, tr, 1, 1) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(hdr_trailers_delivered_8_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_data(p, 1, 10, 0) > 0);
    static const sluice_nv tr[] = {NV("x-checksum", "abc")};
    CHECK(rp_headers(p, 1, tr, 1, 1) > 0);
    CHECK_INT(p->trailers_in, 1);
    CHECK_INT(p->ends, 1);
    CHECK_STR(p->fields, "x-checksum: abc\n");
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

/* ---- header list over SETTINGS_MAX_HEADER_LIST_SIZE: 431 (§10.5.1) ------------- */

static char val_a[101], val_b[101], val_c[101];

static void big_fields(sluice_nv *nv)
{
    memset(val_a, 'a', 100);
    memset(val_b, 'b', 100);
    memset(val_c, 'c', 100);
    memcpy(nv, rp_get, sizeof(rp_get));
    nv[4] = (sluice_nv){(const uint8_t *)"x-a", (const uint8_t *)val_a, 3, 100, 0};
    nv[5] = (sluice_nv){(const uint8_t *)"x-b", (const uint8_t *)val_b, 3, 100, 0};
    nv[6] = (sluice_nv){(const uint8_t *)"x-c", (const uint8_t *)val_c, 3, 100, 0};
}

/* The next request refers to x-a through the dynamic table entry that the
 * oversized block added: it decodes right only if the table stayed in sync. */
static void check_next_uses_table(rp *p, sluice_nv *nv)
{
    uint8_t b[512];
    sluice_nv next[5];
    memcpy(next, rp_get, sizeof(rp_get));
    next[4] = nv[4];
    size_t len = rp_block(p, next, 5, b, sizeof(b));
    CHECK(len > 0 && len < 12); /* indexed references, not literals */
    p->respond = 1;
    CHECK(rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM, 3, b,
                       len) > 0);
    CHECK_INT(p->requests, 1);
    char want[128];
    snprintf(want, sizeof(want), "x-a: %s\n", val_a);
    CHECK(strstr(p->fields, want) != NULL);
    rp_read(p);
    const rp_frame *h = rp_find(p, SL_FRAME_HEADERS, 3);
    CHECK(h != NULL);
    CHECK_STR(h->status, "200");
    CHECK_INT(rp_count(p, SL_FRAME_GOAWAY, RP_ANY), 0);
}

TEST(hdr_list_too_large_431_10_5_1)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_header_list_size = 400;
    rp *p = rp_server(&o);
    CHECK(p);
    sluice_nv nv[7];
    big_fields(nv);
    CHECK(rp_headers(p, 1, nv, 7, 1) > 0);
    CHECK_INT(p->requests, 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_HEADERS);
    CHECK_INT(p->f[0].stream_id, 1);
    CHECK_INT(p->f[0].flags, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM);
    CHECK_STR(p->f[0].status, "431");
    check_next_uses_table(p, nv);
    rp_free(p);
}

TEST(hdr_list_too_large_431_with_body_rst_no_error_10_5_1)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_header_list_size = 400;
    rp *p = rp_server(&o);
    CHECK(p);
    sluice_nv nv[7];
    big_fields(nv);
    CHECK(rp_headers(p, 1, nv, 7, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 2);
    CHECK_INT(p->f[0].type, SL_FRAME_HEADERS);
    CHECK_INT(p->f[0].flags, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM);
    CHECK_STR(p->f[0].status, "431");
    CHECK_INT(p->f[1].type, SL_FRAME_RST_STREAM);
    CHECK_INT(p->f[1].stream_id, 1);
    CHECK_INT(p->f[1].code, SLUICE_H2_NO_ERROR);
    CHECK(rp_data(p, 1, 100, 1) > 0); /* was in flight: dropped quietly */
    rp_read(p);
    CHECK_INT(p->nf, 0);
    check_next_uses_table(p, nv);
    rp_free(p);
}

TEST(hpack_garbage_compression_error_4_3)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const uint8_t junk[] = {0x80}; /* index 0 (RFC 7541 §6.1) */
    rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM, 1, junk, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_COMPRESSION, SLUICE_H2_COMPRESSION_ERROR);
    CHECK_INT(p->requests, 0);
    rp_free(p);
}

TEST(hpack_truncated_block_compression_error_4_3)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const uint8_t junk[] = {0x40, 0x05, 'a', 'b'}; /* name says 5, has 2 */
    rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM, 1, junk, 4);
    CHECK_GOAWAY(p, SLUICE_ERR_COMPRESSION, SLUICE_H2_COMPRESSION_ERROR);
    rp_free(p);
}

/* ==== flow control (§6.9) ======================================================= */

TEST(flow_data_beyond_connection_window_6_9_1)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.connection_window = 65535;
    o.initial_window_size = 1u << 20;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    for (int i = 0; i < 3; i++)
        CHECK(rp_data(p, 1, 16384, 0) > 0);
    CHECK(rp_data(p, 1, 16383, 0) > 0); /* exactly 65535: still allowed */
    rp_data(p, 1, 1, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_FLOW_CONTROL, SLUICE_H2_FLOW_CONTROL_ERROR);
    rp_free(p);
}

TEST(flow_data_beyond_stream_window_6_9_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    for (int i = 0; i < 3; i++)
        CHECK(rp_data(p, 1, 16384, 0) > 0);
    CHECK(rp_data(p, 1, 16383, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK(rp_data(p, 1, 1, 0) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_FLOW_CONTROL_ERROR);
    CHECK_INT(p->last_close_code, SLUICE_H2_FLOW_CONTROL_ERROR);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

TEST(flow_window_update_overflow_stream_6_9_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_window_update(p, 1, MAXWIN - 65535) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK(rp_window_update(p, 1, 1) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_FLOW_CONTROL_ERROR);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

TEST(flow_window_update_overflow_connection_6_9_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_window_update(p, 0, MAXWIN - 65535) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_window_update(p, 0, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_FLOW_CONTROL, SLUICE_H2_FLOW_CONTROL_ERROR);
    rp_free(p);
}

TEST(flow_window_update_zero_stream_6_9)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_window_update(p, 1, 0) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->last_close_id, 1);
    CHECK_INT(p->last_close_code, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

TEST(flow_window_update_zero_connection_6_9)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    rp_window_update(p, 0, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

/* Receive credit follows sluice_session_consume(), not arrival. */
TEST(flow_credit_only_on_consume)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_data_many(p, 1, 40000, 0) > 0);
    CHECK_INT(p->data_bytes, 40000);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(sluice_session_consume(p->s, 1, 30000), 0); /* 30000 < 65535 / 2 */
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(sluice_session_consume(p->s, 1, 10000), 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[0].stream_id, 1);
    CHECK_INT(p->f[0].increment, 40000);
    CHECK_INT(sluice_session_consume(p->s, 1, 1), SLUICE_ERR_INVAL); /* nothing left */
    CHECK_INT(sluice_session_consume(p->s, 9, 1), SLUICE_ERR_NOT_FOUND);
    rp_free(p);
}

TEST(flow_connection_credit_on_consume)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.connection_window = 65535;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_data_many(p, 1, 40000, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(sluice_session_consume(p->s, 1, 40000), 0);
    rp_read(p);
    CHECK_INT(p->nf, 2);
    CHECK(rp_find(p, SL_FRAME_WINDOW_UPDATE, 1) != NULL);
    CHECK_INT(rp_find(p, SL_FRAME_WINDOW_UPDATE, 1)->increment, 40000);
    CHECK(rp_find(p, SL_FRAME_WINDOW_UPDATE, 0) != NULL);
    CHECK_INT(rp_find(p, SL_FRAME_WINDOW_UPDATE, 0)->increment, 40000);
    rp_free(p);
}

TEST(flow_credit_auto_consume)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.auto_consume = 1;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_data(p, 1, 16384, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK(rp_data(p, 1, 16384, 0) > 0); /* 32768: past half the window */
    CHECK(rp_data(p, 1, 7232, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[0].stream_id, 1);
    CHECK_INT(p->f[0].increment, 32768);
    rp_free(p);
}

/* Padding never reaches the application, so it is credited at once. */
TEST(flow_padding_credited_without_consume_6_1)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.initial_window_size = 1024;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_data_pad(p, 1, 10, 255, 0) > 0); /* 266 counted, 256 of it padding */
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK(rp_data_pad(p, 1, 10, 255, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[0].stream_id, 1);
    CHECK_INT(p->f[0].increment, 512);
    CHECK_INT(p->data_bytes, 20);
    rp_free(p);
}

TEST(flow_set_window_raise_stream)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK_INT(sluice_session_set_window(p->s, 1, 100000), 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[0].stream_id, 1);
    CHECK_INT(p->f[0].increment, 100000 - 65535);
    CHECK(rp_data_many(p, 1, 100000, 0) > 0); /* the whole new window is usable */
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(sluice_session_set_window(p->s, 9, 100000), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(sluice_session_set_window(p->s, 1, 0x80000000u), SLUICE_ERR_INVAL);
    rp_free(p);
}

TEST(flow_set_window_raise_connection)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_set_window(p->s, 0, 2u << 20), 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[0].stream_id, 0);
    CHECK_INT(p->f[0].increment, 1u << 20);
    rp_free(p);
}

TEST(flow_set_window_lower_withholds_credit)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK_INT(sluice_session_set_window(p->s, 1, 30000), 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK(rp_data_many(p, 1, 40000, 0) > 0); /* the peer may still use the old window */
    CHECK_INT(sluice_session_consume(p->s, 1, 40000), 0);
    rp_read(p);
    CHECK_INT(p->nf, 0); /* window 25535: owed 4465, under half of 30000 */
    CHECK(rp_data(p, 1, 10535, 0) > 0);
    CHECK_INT(sluice_session_consume(p->s, 1, 10535), 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[0].increment, 15000); /* back up to the new target */
    rp_free(p);
}

/* A stream target lowered with set_window, then our INITIAL_WINDOW_SIZE
 * lowered by more than that target (§6.9.2): the target must not wrap. */
TEST(flow_lowered_target_then_initial_window_drop)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_data(p, 1, 100, 0) > 0);
    CHECK_INT(sluice_session_set_window(p->s, 1, 1000), 0);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 0};
    CHECK_INT(sluice_session_submit_settings(p->s, v, 1), 0);
    rp_read(p);
    CHECK(rp_settings_ack(p) > 0); /* window: 65435 - 65535 = -100 */
    CHECK_INT(sluice_session_consume(p->s, 1, 100), 0);
    rp_read(p);
    /* Window -100, target max(1000 - 65535, 0): at most 1100 may be owed. */
    for (size_t i = 0; i < p->nf; i++) {
        CHECK_INT(p->f[i].type, SL_FRAME_WINDOW_UPDATE);
        CHECK(p->f[i].increment <= 1100);
    }
    CHECK_INT(rp_count(p, SL_FRAME_GOAWAY, RP_ANY), 0);
    rp_free(p);
}

TEST(flow_peer_reset_returns_connection_window)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.connection_window = 65535;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_data_many(p, 1, 40000, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK(rp_rst(p, 1, SLUICE_H2_CANCEL) > 0);
    CHECK_INT(p->last_close_code, SLUICE_H2_CANCEL);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[0].stream_id, 0);
    CHECK_INT(p->f[0].increment, 40000);
    sluice_session_stats st = {.struct_size = sizeof(st)};
    CHECK_INT(sluice_session_get_stats(p->s, &st), 0);
    CHECK_INT(st.recv_buffered, 0);
    rp_free(p);
}

TEST(flow_our_reset_returns_connection_window)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.connection_window = 65535;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_data_many(p, 1, 40000, 0) > 0);
    CHECK_INT(sluice_session_submit_rst(p->s, 1, SLUICE_H2_CANCEL), 0);
    rp_read(p);
    CHECK_INT(p->nf, 2);
    CHECK_INT(p->f[0].type, SL_FRAME_RST_STREAM);
    CHECK_INT(p->f[0].code, SLUICE_H2_CANCEL);
    CHECK_INT(p->f[1].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[1].stream_id, 0);
    CHECK_INT(p->f[1].increment, 40000);
    rp_free(p);
}

/* Data on a stream that is gone still counts against the connection window,
 * and is credited back at once (§6.9). */
TEST(flow_data_on_reset_stream_credited)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.connection_window = 65535;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK_INT(sluice_session_submit_rst(p->s, 1, SLUICE_H2_CANCEL), 0);
    rp_read(p);
    CHECK(rp_data_many(p, 1, 40000, 0) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_WINDOW_UPDATE);
    CHECK_INT(p->f[0].stream_id, 0);
    CHECK_INT(p->f[0].increment, 32768); /* sent as soon as half was owed */
    rp_free(p);
}

/* ---- sending side ------------------------------------------------------------- */

TEST(send_stops_at_stream_window_and_resumes_6_9)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1000};
    CHECK(rp_handshake(p, v, 1) > 0);
    p->respond = 1;
    p->body = body_bytes(5000);
    p->body_len = 5000;
    CHECK(rp_request(p, 1, 1) > 0);
    rp_read(p);
    CHECK(rp_find(p, SL_FRAME_HEADERS, 1) != NULL);
    CHECK_INT(rp_data_total(p, 1), 1000);
    CHECK_INT(rp_find(p, SL_FRAME_DATA, 1)->flags, 0);
    CHECK_INT(sluice_session_want_write(p->s), 0);
    CHECK(rp_window_update(p, 1, 1500) > 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 1500);
    CHECK(rp_window_update(p, 1, 10000) > 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 2500);
    CHECK_INT(p->f[p->nf - 1].flags, SL_FLAG_END_STREAM);
    CHECK_INT(p->closes, 1);
    rp_free(p);
}

TEST(send_stops_at_connection_window_and_resumes_6_9)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20};
    CHECK(rp_handshake(p, v, 1) > 0);
    p->respond = 1;
    p->body = body_bytes(100000);
    p->body_len = 100000;
    CHECK(rp_request(p, 1, 1) > 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 65535);
    CHECK(rp_window_update(p, 0, 10000) > 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 10000);
    CHECK(rp_window_update(p, 0, 50000) > 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 24465);
    CHECK_INT(p->f[p->nf - 1].flags, SL_FLAG_END_STREAM);
    rp_free(p);
}

/* Frames are cut at the peer's SETTINGS_MAX_FRAME_SIZE (§4.2). */
static void check_frame_sizes(uint32_t max_frame)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20, SL_SETTINGS_MAX_FRAME_SIZE,
                    max_frame};
    CHECK(rp_handshake(p, v, max_frame == 16384 ? 1 : 2) > 0);
    CHECK(rp_window_update(p, 0, 1u << 20) > 0);
    p->respond = 1;
    p->body = body_bytes(100000);
    p->body_len = 100000;
    CHECK(rp_request(p, 1, 1) > 0);
    rp_read(p);
    CHECK_INT(p->parse_error, 0);
    CHECK_INT(rp_data_total(p, 1), 100000);
    uint32_t biggest = 0;
    for (size_t i = 0; i < p->nf; i++) {
        CHECK(p->f[i].length <= max_frame);
        if (p->f[i].length > biggest)
            biggest = p->f[i].length;
    }
    CHECK_INT(biggest, max_frame);
    rp_free(p);
}

TEST(send_data_frames_within_default_max_frame_size_4_2)
{
    check_frame_sizes(16384);
}

TEST(send_data_frames_within_raised_max_frame_size_4_2)
{
    check_frame_sizes(20000);
}

TEST(send_large_response_headers_use_continuation_4_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    static char v[40000];
    memset(v, 'v', sizeof(v));
    sluice_nv nv[] = {NV(":status", "200"),
                      {(const uint8_t *)"x-big", (const uint8_t *)v, 5, sizeof(v), 0}};
    CHECK_INT(sluice_session_submit_response(p->s, 1, nv, 2, NULL), 0);
    rp_read(p);
    CHECK_INT(p->parse_error, 0);
    CHECK_INT(p->f[0].type, SL_FRAME_HEADERS);
    CHECK_INT(p->f[0].flags, SL_FLAG_END_STREAM);
    CHECK_STR(p->f[0].status, "200");
    CHECK_INT(p->f[0].nfields, 2);
    CHECK(p->nf >= 3);
    for (size_t i = 1; i < p->nf; i++) {
        CHECK_INT(p->f[i].type, SL_FRAME_CONTINUATION);
        CHECK(p->f[i].length <= 16384);
    }
    CHECK_INT(p->f[p->nf - 1].flags, SL_FLAG_END_HEADERS);
    rp_free(p);
}

/* ==== abuse budgets (§10.5) with default limits =================================== */

/* Rapid reset (CVE-2023-44487): open and cancel at one instant, forever. */
TEST(calm_rapid_reset_flood)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    int i;
    for (i = 0; i < 1000; i++) {
        uint32_t id = 2 * (uint32_t)i + 1;
        if (rp_request(p, id, 1) < 0 || rp_rst(p, id, SLUICE_H2_CANCEL) < 0)
            break;
    }
    CHECK_INT(i, 200); /* the burst of rst_received */
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(rp_find(p, SL_FRAME_GOAWAY, 0)->last_id, 401);
    rp_free(p);
}

/* A client that cancels 10 streams a second for a minute is not an attacker. */
TEST(calm_cancel_heavy_client_not_cut_off)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t id = 1;
    for (int i = 0; i < 600; i++, id += 2) {
        p->now = (uint64_t)i * (SEC / 10);
        CHECK(rp_request(p, id, 1) > 0);
        CHECK(rp_rst(p, id, SLUICE_H2_CANCEL) > 0);
        rp_read(p);
        CHECK_INT(p->nf, 0);
    }
    CHECK_INT(p->requests, 600);
    CHECK_SERVES(p, id);
    rp_free(p);
}

/* MadeYouReset (CVE-2025-8671): each WINDOW_UPDATE overflow makes us reset. */
TEST(calm_made_you_reset_window_overflow_flood)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    int i;
    for (i = 0; i < 1000; i++) {
        uint32_t id = 2 * (uint32_t)i + 1;
        if (rp_request(p, id, 1) < 0 || rp_window_update(p, id, MAXWIN) < 0)
            break;
    }
    CHECK_INT(i, 100); /* the burst of rst_provoked */
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(rp_count(p, SL_FRAME_RST_STREAM, RP_ANY), 100);
    rp_free(p);
}

TEST(calm_made_you_reset_malformed_headers_flood)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const sluice_nv bad[] = {REQ4("GET", "https", "example.com", "/"),
                                    NV("connection", "close")};
    int i;
    for (i = 0; i < 1000; i++)
        if (rp_headers(p, 2 * (uint32_t)i + 1, bad, 5, 1) < 0)
            break;
    CHECK_INT(i, 100);
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    rp_free(p);
}

TEST(calm_made_you_reset_occasional_ok)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    uint32_t id = 1;
    for (int i = 0; i < 600; i++, id += 2) { /* 10 a second, under the 20/s refill */
        p->now = (uint64_t)i * (SEC / 10);
        CHECK(rp_request(p, id, 1) > 0);
        CHECK(rp_window_update(p, id, MAXWIN) > 0);
        rp_read(p);
        CHECK_RST(p, id, SLUICE_H2_FLOW_CONTROL_ERROR);
    }
    CHECK_SERVES(p, id);
    rp_free(p);
}

TEST(calm_ping_flood)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    int i;
    for (i = 0; i < 1000; i++)
        if (rp_ping(p, ping8, 0) < 0)
            break;
    CHECK_INT(i, 50);
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(rp_count(p, SL_FRAME_PING, RP_ANY), 50);
    rp_free(p);
}

TEST(calm_ping_spread_over_time_ok)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    for (int i = 0; i < 600; i++) { /* 5 a second for two minutes */
        p->now = (uint64_t)i * (SEC / 5);
        char op[8] = {'p', 'i', 'n', 'g', (char)(i >> 8), (char)i, 0, 1};
        CHECK(rp_ping(p, op, 0) > 0);
        rp_read(p);
        CHECK_INT(p->nf, 1);
        CHECK_INT(p->f[0].type, SL_FRAME_PING);
        CHECK_INT(p->f[0].flags, SL_FLAG_ACK);
        CHECK_MEM(p->f[0].opaque, 8, op, 8);
    }
    rp_free(p);
}

TEST(calm_ping_ack_not_answered)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_ping(p, ping8, 1) > 0); /* an unsolicited ACK is ignored */
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(p->ping_acks, 1);
    rp_free(p);
}

TEST(calm_settings_flood)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    int i;
    for (i = 0; i < 1000; i++)
        if (rp_settings(p, NULL, 0) < 0)
            break;
    CHECK_INT(i, 50); /* the first SETTINGS of the handshake is free */
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    rp_free(p);
}

TEST(calm_settings_spread_over_time_ok)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    for (int i = 0; i < 600; i++) {
        p->now = (uint64_t)i * (SEC / 5);
        CHECK(rp_settings(p, NULL, 0) > 0);
        rp_read(p);
        CHECK_INT(p->nf, 1);
        CHECK_INT(p->f[0].flags, SL_FLAG_ACK);
    }
    rp_free(p);
}

TEST(calm_empty_data_flood)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    int i;
    for (i = 0; i < 1000; i++)
        if (rp_data(p, 1, 0, 0) < 0)
            break;
    CHECK_INT(i, 100);
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    rp_free(p);
}

TEST(calm_empty_data_spread_over_time_ok)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    for (int i = 0; i < 600; i++) {
        p->now = (uint64_t)i * (SEC / 10);
        CHECK(rp_data(p, 1, 0, 0) > 0);
    }
    CHECK(rp_data(p, 1, 0, 1) > 0); /* the empty DATA that ends a stream is fine */
    CHECK_INT(p->ends, 1);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

TEST(calm_priority_flood)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    int i;
    for (i = 0; i < 5000; i++)
        if (rp_priority(p, 1, 0, 0, 15) < 0)
            break;
    CHECK_INT(i, 1000);
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    rp_free(p);
}

TEST(calm_priority_spread_over_time_ok)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    for (int i = 0; i < 6000; i++) { /* 100 a second for a minute */
        p->now = (uint64_t)i * (SEC / 100);
        CHECK(rp_priority(p, 2 * (uint32_t)(i % 50) + 1, 0, 0, 15) > 0);
    }
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_SERVES(p, 101);
    rp_free(p);
}

TEST(calm_priority_update_flood)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const uint8_t pu[] = {0, 0, 0, 1, 'u', '=', '1'};
    int i;
    for (i = 0; i < 5000; i++)
        if (rp_frame_raw(p, SL_FRAME_PRIORITY_UPDATE, 0, 0, pu, sizeof(pu)) < 0)
            break;
    CHECK_INT(i, 1000);
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    rp_free(p);
}

/* A peer that makes us answer while never reading what we write. */
TEST(calm_outbound_control_unread)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_outbound_control = 1000;
    o.ping = (sluice_rate){100000, 100000};
    rp *p = rp_server(&o);
    CHECK(p);
    int i;
    for (i = 0; i < 1000; i++)
        if (rp_ping(p, ping8, 0) < 0)
            break;
    CHECK_INT(i, 58); /* 58 ACKs of 17 bytes fit in 1000 */
    CHECK_GOAWAY(p, SLUICE_ERR_CALM, SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(rp_count(p, SL_FRAME_PING, RP_ANY), 58);
    rp_free(p);
}

TEST(calm_outbound_control_read_in_time_ok)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_outbound_control = 1000;
    o.ping = (sluice_rate){100000, 100000};
    rp *p = rp_server(&o);
    CHECK(p);
    for (int i = 0; i < 1000; i++) {
        CHECK(rp_ping(p, ping8, 0) > 0);
        if (i % 50 == 49)
            rp_read(p);
    }
    rp_free(p);
}

/* ==== GOAWAY (§6.8) ================================================================ */

TEST(goaway_graceful_two_phase_6_8)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(sluice_session_goaway(p->s, SLUICE_H2_NO_ERROR, NULL, 1), 0);
    rp_read(p);
    CHECK_INT(p->nf, 2);
    CHECK_INT(p->f[0].type, SL_FRAME_GOAWAY);
    CHECK_INT(p->f[0].last_id, MAXWIN);
    CHECK_INT(p->f[0].code, SLUICE_H2_NO_ERROR);
    CHECK_INT(p->f[1].type, SL_FRAME_PING);
    CHECK_INT(p->f[1].flags, 0);
    uint8_t op[8];
    memcpy(op, p->f[1].opaque, 8);
    CHECK(rp_request(p, 3, 1) > 0); /* opened before the client saw the GOAWAY */
    CHECK_INT(p->requests, 2);
    CHECK(rp_ping(p, (const char *)op, 1) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_GOAWAY);
    CHECK_INT(p->f[0].last_id, 3);
    CHECK_INT(p->f[0].code, SLUICE_H2_NO_ERROR);
    CHECK_INT(sluice_session_goaway(p->s, SLUICE_H2_NO_ERROR, NULL, 1), SLUICE_ERR_STATE);
    CHECK(rp_request(p, 5, 1) > 0); /* above the final id: ignored */
    CHECK_INT(p->requests, 2);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(sluice_session_want_read(p->s), 1);
    static const sluice_nv ok[] = {NV(":status", "204")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, ok, 1, NULL), 0);
    CHECK_INT(sluice_session_submit_response(p->s, 3, ok, 1, NULL), 0);
    CHECK_INT(sluice_session_want_write(p->s), 1);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_HEADERS, RP_ANY), 2);
    CHECK_INT(p->closes, 2);
    CHECK_INT(sluice_session_want_read(p->s), 0);
    CHECK_INT(sluice_session_want_write(p->s), 0);
    rp_free(p);
}

/* Final GOAWAY sent: streams above its id are ignored (§6.8), and so must be
 * the DATA and trailers the client had in flight on them. */
static rp *server_after_final_goaway(void)
{
    rp *p = rp_server(NULL);
    if (!p)
        return NULL;
    if (rp_request(p, 1, 1) < 0 ||
        sluice_session_goaway(p->s, SLUICE_H2_NO_ERROR, NULL, 0) != 0) {
        rp_free(p);
        return NULL;
    }
    rp_read(p);
    return p;
}

TEST(goaway_data_on_ignored_streams_no_rst_6_8)
{
    rp *p = server_after_final_goaway();
    CHECK(p);
    CHECK_INT(p->f[0].last_id, 1);
    /* 120 uploads the client started before it saw our GOAWAY. */
    for (uint32_t id = 3; id < 243; id += 2) {
        CHECK(rp_request(p, id, 0) > 0);
        CHECK(rp_data(p, id, 100, 1) > 0);
    }
    CHECK_INT(p->requests, 1);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_RST_STREAM, RP_ANY), 0);
    CHECK_INT(rp_count(p, SL_FRAME_GOAWAY, RP_ANY), 0);
    rp_free(p);
}

TEST(goaway_trailers_on_ignored_stream_ignored_6_8)
{
    rp *p = server_after_final_goaway();
    CHECK(p);
    CHECK(rp_request(p, 3, 0) > 0);
    static const sluice_nv tr[] = {NV("x-checksum", "abc")};
    CHECK(rp_headers(p, 3, tr, 1, 1) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

TEST(goaway_graceful_timeout_without_ping_ack_6_8)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    p->now = 5 * SEC;
    rp_read(p);
    CHECK_INT(sluice_session_goaway(p->s, SLUICE_H2_NO_ERROR, NULL, 1), 0);
    CHECK_INT(sluice_session_next_deadline(p->s), 7 * SEC);
    rp_read(p);
    CHECK_INT(p->f[0].last_id, MAXWIN);
    CHECK_INT(sluice_session_handle_timeout(p->s, 7 * SEC - 1), 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(sluice_session_handle_timeout(p->s, 7 * SEC), 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_GOAWAY);
    CHECK_INT(p->f[0].last_id, 1);
    CHECK_INT(p->f[0].code, SLUICE_H2_NO_ERROR);
    CHECK_INT(sluice_session_next_deadline(p->s), UINT64_MAX);
    rp_free(p);
}

TEST(goaway_immediate_with_code_6_8)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK(rp_request(p, 3, 1) > 0);
    CHECK_INT(sluice_session_goaway(p->s, SLUICE_H2_INTERNAL_ERROR, "bye", 0), 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_GOAWAY);
    CHECK_INT(p->f[0].last_id, 3);
    CHECK_INT(p->f[0].code, SLUICE_H2_INTERNAL_ERROR);
    CHECK_MEM(p->f[0].payload + 8, p->f[0].length - 8, "bye", 3);
    rp_free(p);
}

TEST(goaway_client_refuses_streams_above_last_6_8)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    uint32_t id[3];
    for (int i = 0; i < 3; i++)
        CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, &id[i]), 0);
    CHECK_INT(id[2], 5);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_HEADERS, RP_ANY), 3);
    CHECK(rp_goaway(p, 1, SLUICE_H2_NO_ERROR) > 0);
    CHECK_INT(p->goaways, 1);
    CHECK_INT(p->goaway_last, 1);
    CHECK_INT(p->closes, 2);
    long c3 = rp_event_find(p, RP_EV_CLOSE, 3), c5 = rp_event_find(p, RP_EV_CLOSE, 5);
    CHECK(c3 >= 0 && c5 >= 0);
    CHECK_INT(p->ev[c3].arg, SLUICE_H2_REFUSED_STREAM);
    CHECK_INT(p->ev[c5].arg, SLUICE_H2_REFUSED_STREAM);
    CHECK_INT(rp_event_find(p, RP_EV_CLOSE, 1), -1);
    rp_free(p);
}

TEST(goaway_client_submit_after_goaway_state_6_8)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK(rp_goaway(p, 0, SLUICE_H2_NO_ERROR) > 0);
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, &id), SLUICE_ERR_STATE);
    rp_free(p);
}

TEST(goaway_client_finishes_stream_then_idle_6_8)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), 0);
    rp_read(p);
    CHECK(rp_goaway(p, 1, SLUICE_H2_NO_ERROR) > 0);
    CHECK_INT(sluice_session_want_read(p->s), 1);
    static const sluice_nv res[] = {NV(":status", "200")};
    CHECK(rp_headers(p, 1, res, 1, 0) > 0);
    CHECK(rp_data(p, 1, 10, 1) > 0);
    CHECK_INT(p->responses, 1);
    CHECK_INT(p->closes, 1);
    CHECK_INT(p->last_close_code, SLUICE_H2_NO_ERROR);
    CHECK_INT(sluice_session_want_read(p->s), 0);
    rp_read(p);
    CHECK_INT(sluice_session_want_write(p->s), 0);
    rp_free(p);
}

TEST(goaway_raised_last_id_protocol_error_6_8)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK(rp_goaway(p, 1, SLUICE_H2_NO_ERROR) > 0);
    rp_goaway(p, 3, SLUICE_H2_NO_ERROR);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

/* ==== frames a role must not receive, PRIORITY, unknown frames ===================== */

TEST(push_promise_to_server_protocol_error_8_4)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    uint8_t b[256] = {0, 0, 0, 2};
    size_t len = rp_block(p, rp_get, 4, b + 4, sizeof(b) - 4);
    rp_frame_raw(p, SL_FRAME_PUSH_PROMISE, SL_FLAG_END_HEADERS, 1, b, len + 4);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(push_promise_to_client_push_disabled_8_4)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), 0);
    rp_read(p);
    uint8_t b[256] = {0, 0, 0, 2};
    size_t len = rp_block(p, rp_get, 4, b + 4, sizeof(b) - 4);
    rp_frame_raw(p, SL_FRAME_PUSH_PROMISE, SL_FLAG_END_HEADERS, 1, b, len + 4);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(client_refuses_enable_push_from_server_6_5_2)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_ENABLE_PUSH, 1};
    rp_settings(p, v, 1);
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(priority_update_to_client_protocol_error_rfc9218_7_1)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), 0);
    rp_read(p);
    static const uint8_t pu[] = {0, 0, 0, 1, 'u', '=', '1'};
    rp_frame_raw(p, SL_FRAME_PRIORITY_UPDATE, 0, 0, pu, sizeof(pu));
    CHECK_GOAWAY(p, SLUICE_ERR_PROTOCOL, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(priority_self_dependency_rst_5_3_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    CHECK(rp_priority(p, 1, 1, 0, 15) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->last_close_id, 1);
    CHECK_INT(p->last_close_code, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

TEST(priority_bad_length_rst_frame_size_6_3)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    static const uint8_t four[4] = {0};
    CHECK(rp_frame_raw(p, SL_FRAME_PRIORITY, 0, 1, four, 4) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_FRAME_SIZE_ERROR);
    rp_free(p);
}

TEST(unknown_frame_types_ignored_5_5)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    static const uint8_t junk[] = "whatever an extension carries";
    CHECK_INT(rp_frame_raw(p, 0xfa, 0xff, 0, junk, sizeof(junk)), 9 + sizeof(junk));
    CHECK_INT(rp_frame_raw(p, 0xfb, 0, 1, junk, sizeof(junk)), 9 + sizeof(junk));
    CHECK_INT(rp_frame_raw(p, 0x0c, 0, 99, junk, sizeof(junk)), 9 + sizeof(junk));
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK(rp_data(p, 1, 5, 1) > 0);
    CHECK_INT(p->ends, 1);
    CHECK_SERVES(p, 3);
    rp_free(p);
}

TEST(frame_larger_than_max_frame_size_4_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0);
    rp_data(p, 1, 16385, 0);
    CHECK_GOAWAY(p, SLUICE_ERR_FRAME_SIZE, SLUICE_H2_FRAME_SIZE_ERROR);
    rp_free(p);
}

/* ==== client role: responses (§8.1) ================================================= */

TEST(client_103_then_final_response_8_1)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), 0);
    rp_read(p);
    static const sluice_nv hint[] = {NV(":status", "103"),
                                     NV("link", "</a.css>; rel=preload; as=style")};
    static const sluice_nv fin[] = {NV(":status", "200"), NV("content-length", "3")};
    CHECK(rp_headers(p, 1, hint, 2, 0) > 0);
    CHECK(rp_headers(p, 1, fin, 2, 0) > 0);
    CHECK(rp_data(p, 1, 3, 1) > 0);
    CHECK_INT(p->infos, 1);
    CHECK_INT(p->responses, 1);
    long i1 = rp_event_find(p, RP_EV_HEADERS, 1);
    CHECK(i1 >= 0);
    CHECK_INT(p->ev[i1].arg, SLUICE_HEADERS_INFO);
    CHECK_INT(p->ev[i1 + 1].type, RP_EV_HEADERS);
    CHECK_INT(p->ev[i1 + 1].arg, SLUICE_HEADERS_RESPONSE);
    CHECK_INT(p->last_close_code, SLUICE_H2_NO_ERROR);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_RST_STREAM, RP_ANY), 0);
    rp_free(p);
}

TEST(client_1xx_with_end_stream_rst_8_1)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), 0);
    rp_read(p);
    static const sluice_nv hint[] = {NV(":status", "103")};
    CHECK(rp_headers(p, 1, hint, 1, 1) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(p->infos, 0);
    CHECK_INT(p->last_close_code, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(client_head_response_content_length_no_data_8_1_1)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    static const sluice_nv head[] = {REQ4("HEAD", "https", "example.com", "/big")};
    CHECK_INT(sluice_session_submit_request(p->s, head, 4, NULL, NULL), 0);
    rp_read(p);
    static const sluice_nv res[] = {NV(":status", "200"), NV("content-length", "1234")};
    CHECK(rp_headers(p, 1, res, 2, 1) > 0);
    CHECK_INT(p->responses, 1);
    CHECK_INT(p->ends, 1);
    CHECK_INT(p->last_close_code, SLUICE_H2_NO_ERROR);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

TEST(client_response_without_status_rst_8_3_2)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), 0);
    rp_read(p);
    static const sluice_nv res[] = {NV("content-type", "text/plain")};
    CHECK(rp_headers(p, 1, res, 1, 1) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(client_data_before_response_rst_8_1)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), 0);
    rp_read(p);
    CHECK(rp_data(p, 1, 5, 0) > 0);
    rp_read(p);
    CHECK_RST(p, 1, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(client_request_limited_by_server_max_concurrent_5_1_2)
{
    rp *p = rp_new(SLUICE_ROLE_CLIENT, NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 1};
    CHECK(rp_handshake(p, v, 1) > 0);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), 0);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), SLUICE_ERR_LIMIT);
    rp_read(p);
    static const sluice_nv res[] = {NV(":status", "204")};
    CHECK(rp_headers(p, 1, res, 1, 1) > 0);
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, &id), 0);
    CHECK_INT(id, 3);
    rp_free(p);
}

TEST(client_request_headers_exact_fields)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, &id), 0);
    CHECK_INT(id, 1);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_INT(p->f[0].type, SL_FRAME_HEADERS);
    CHECK_INT(p->f[0].stream_id, 1);
    CHECK_INT(p->f[0].flags, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM);
    CHECK_INT(p->f[0].nfields, 4);
    rp_free(p);
}

/* ==== submit API misuse ============================================================= */

TEST(submit_response_unknown_stream_not_found)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    static const sluice_nv ok[] = {NV(":status", "200")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, ok, 1, NULL), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(sluice_session_submit_info(p->s, 7, ok, 1), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(sluice_session_submit_trailers(p->s, 7, ok, 1), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(sluice_session_submit_rst(p->s, 7, 0), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(sluice_session_resume_data(p->s, 7), SLUICE_ERR_NOT_FOUND);
    rp_free(p);
}

TEST(submit_response_uppercase_name_inval)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    static const sluice_nv bad[] = {NV(":status", "200"), NV("X-Up", "1")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, bad, 2, NULL), SLUICE_ERR_INVAL);
    rp_read(p);
    CHECK_INT(p->nf, 0); /* nothing went out, the stream can still be answered */
    static const sluice_nv ok[] = {NV(":status", "200")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, ok, 1, NULL), 0);
    rp_free(p);
}

TEST(submit_response_crlf_in_value_inval)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    static const sluice_nv bad[] = {NV(":status", "200"), NV("x-a", "1\r\nset-cookie: x")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, bad, 2, NULL), SLUICE_ERR_INVAL);
    static const sluice_nv lf[] = {NV(":status", "200"), NV("x-a", "1\nb")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, lf, 2, NULL), SLUICE_ERR_INVAL);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

TEST(submit_response_bad_status_inval)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    static const sluice_nv info[] = {NV(":status", "103")};
    static const sluice_nv none[] = {NV("x-a", "1")};
    static const sluice_nv fin[] = {NV(":status", "200")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, info, 1, NULL), SLUICE_ERR_INVAL);
    CHECK_INT(sluice_session_submit_response(p->s, 1, none, 1, NULL), SLUICE_ERR_INVAL);
    CHECK_INT(sluice_session_submit_info(p->s, 1, fin, 1), SLUICE_ERR_INVAL);
    CHECK_INT(sluice_session_submit_info(p->s, 1, info, 1), 0);
    rp_read(p);
    CHECK_INT(p->nf, 1);
    CHECK_STR(p->f[0].status, "103");
    CHECK_INT(p->f[0].flags, SL_FLAG_END_HEADERS);
    rp_free(p);
}

TEST(submit_trailers_twice_state)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    p->respond = 1;
    p->body = body_bytes(10);
    p->body_len = 10;
    p->body_defer = 1;
    CHECK(rp_request(p, 1, 1) > 0);
    static const sluice_nv tr[] = {NV("x-checksum", "abc")};
    CHECK_INT(sluice_session_submit_trailers(p->s, 1, tr, 1), 0);
    CHECK_INT(sluice_session_submit_trailers(p->s, 1, tr, 1), SLUICE_ERR_STATE);
    p->body_defer = 0;
    CHECK_INT(sluice_session_resume_data(p->s, 1), 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 1), 10);
    CHECK_INT(rp_find(p, SL_FRAME_DATA, 1)->flags, 0);
    CHECK_INT(p->f[p->nf - 1].type, SL_FRAME_HEADERS); /* trailers end the stream */
    CHECK_INT(p->f[p->nf - 1].flags, SL_FLAG_END_HEADERS | SL_FLAG_END_STREAM);
    CHECK_INT(p->f[p->nf - 1].nfields, 1);
    rp_free(p);
}

TEST(submit_trailers_without_body_state)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    static const sluice_nv tr[] = {NV("x-checksum", "abc")};
    CHECK_INT(sluice_session_submit_trailers(p->s, 1, tr, 1), SLUICE_ERR_STATE);
    rp_free(p);
}

TEST(submit_request_on_server_inval)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, NULL), SLUICE_ERR_INVAL);
    rp_free(p);
}

TEST(submit_request_malformed_inval)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    static const sluice_nv nopath[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                       NV(":authority", "example.com")};
    static const sluice_nv upper[] = {REQ4("GET", "https", "example.com", "/"),
                                      NV("Accept", "*/*")};
    CHECK_INT(sluice_session_submit_request(p->s, nopath, 3, NULL, NULL), SLUICE_ERR_INVAL);
    CHECK_INT(sluice_session_submit_request(p->s, upper, 5, NULL, NULL), SLUICE_ERR_INVAL);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, &id), 0);
    CHECK_INT(id, 1); /* refused calls used no stream id */
    rp_free(p);
}

TEST(submit_response_after_connection_error_state)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    rp_window_update(p, 0, 0);
    CHECK_INT(p->rv, SLUICE_ERR_PROTOCOL);
    static const sluice_nv ok[] = {NV(":status", "200")};
    CHECK_INT(sluice_session_submit_response(p->s, 1, ok, 1, NULL), SLUICE_ERR_STATE);
    CHECK_INT(rp_ping(p, ping8, 0), SLUICE_ERR_PROTOCOL); /* recv keeps failing */
    rp_free(p);
}

/* ==== allocator ======================================================================= */

typedef struct counting {
    long live;     /* blocks handed out and not freed */
    long calls;    /* malloc and realloc calls so far */
    long fail_at;  /* fail this call (1-based); 0: never */
    int fail_rest; /* and every call after it */
    long failed;
} counting;

static int counting_fails(counting *c)
{
    c->calls++;
    if (c->fail_at && (c->calls == c->fail_at || (c->fail_rest && c->calls > c->fail_at))) {
        c->failed++;
        return 1;
    }
    return 0;
}

static void *c_malloc(size_t n, void *ud)
{
    counting *c = ud;
    if (counting_fails(c))
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        c->live++;
    return p;
}

static void *c_realloc(void *ptr, size_t n, void *ud)
{
    counting *c = ud;
    if (counting_fails(c))
        return NULL;
    void *p = realloc(ptr, n ? n : 1);
    if (p && !ptr)
        c->live++;
    return p;
}

static void c_free(void *ptr, void *ud)
{
    counting *c = ud;
    if (ptr)
        c->live--;
    free(ptr);
}

/* A short exchange touching most allocation sites: streams, a body in and
 * out, trailers, large headers, PING, a reset. Stops at the first error. */
static void exchange(rp *p, int leave_open)
{
    p->respond = 1;
    p->consume = 1;
    p->body = body_bytes(40000);
    p->body_len = 40000;
    if (rp_handshake(p, NULL, 0) < 0 || rp_window_update(p, 0, 1u << 20) < 0)
        return;
    static char v[3000];
    memset(v, 'h', sizeof(v));
    sluice_nv nv[5];
    memcpy(nv, rp_post, sizeof(rp_post));
    nv[4] = (sluice_nv){(const uint8_t *)"x-big", (const uint8_t *)v, 5, sizeof(v), 0};
    if (rp_headers(p, 1, nv, 5, 0) < 0 || rp_data_many(p, 1, 50000, 0) < 0)
        return;
    static const sluice_nv tr[] = {NV("x-checksum", "abc")};
    if (rp_headers(p, 1, tr, 1, 1) < 0 || rp_ping(p, ping8, 0) < 0)
        return;
    rp_read(p);
    for (uint32_t id = 3; id < 40; id += 2)
        if (rp_request(p, id, 0) < 0)
            return;
    if (rp_rst(p, 3, SLUICE_H2_CANCEL) < 0)
        return;
    rp_read(p);
    if (!leave_open)
        for (uint32_t id = 5; id < 40; id += 2)
            if (rp_data(p, id, 100, 1) < 0)
                return;
    if (rp_ping(p, ping8, 0) < 0 || rp_request(p, 41, 1) < 0)
        return;
    rp_read_max(p, 1000); /* leave output queued, borrowed body bytes too */
}

static void counted_run(counting *c, int leave_open, int conn_error)
{
    sluice_allocator a = {c_malloc, c_realloc, c_free, c};
    int err = 0;
    rp *p = rp_new_alloc(SLUICE_ROLE_SERVER, NULL, &a, &err);
    if (!p) {
        CHECK_INT(err, SLUICE_ERR_NOMEM);
        return;
    }
    exchange(p, leave_open);
    if (conn_error) {
        static const uint8_t junk[] = {0x80};
        rp_frame_raw(p, SL_FRAME_HEADERS, SL_FLAG_END_HEADERS, 101, junk, 1);
        rp_read(p);
    }
    rp_free(p);
}

TEST(alloc_everything_freed_after_exchange)
{
    counting c = {0};
    counted_run(&c, 0, 0);
    CHECK(c.calls > 10);
    CHECK_INT(c.live, 0);
}

TEST(alloc_everything_freed_with_streams_open)
{
    counting c = {0};
    counted_run(&c, 1, 0);
    CHECK(c.calls > 10);
    CHECK_INT(c.live, 0);
}

TEST(alloc_everything_freed_after_connection_error)
{
    counting c = {0};
    counted_run(&c, 1, 1);
    CHECK(c.calls > 10);
    CHECK_INT(c.live, 0);
}

TEST(alloc_exchange_really_uses_allocator)
{
    counting c = {0};
    sluice_allocator a = {c_malloc, c_realloc, c_free, &c};
    rp *p = rp_new_alloc(SLUICE_ROLE_SERVER, NULL, &a, NULL);
    CHECK(p);
    exchange(p, 1);
    CHECK(c.live > 0); /* streams open: memory is held through our allocator */
    CHECK_INT(p->requests, 21);
    rp_free(p);
    CHECK_INT(c.live, 0);
}

TEST(alloc_fail_nth_no_crash_no_leak)
{
    counting probe = {0};
    counted_run(&probe, 1, 0);
    CHECK(probe.calls > 30);
    long k = probe.calls + 2;
    for (long n = 1; n <= k; n++) {
        counting c = {0};
        c.fail_at = n;
        counted_run(&c, 1, 0);
        if (n <= probe.calls && c.failed != 1) {
            T_FAIL("allocation %ld was never made", n);
            return;
        }
        if (c.live != 0) {
            T_FAIL("failing allocation %ld of %ld: %ld blocks leaked", n, k, c.live);
            return;
        }
    }
}

TEST(alloc_fail_from_nth_on_no_crash_no_leak)
{
    counting probe = {0};
    counted_run(&probe, 0, 1);
    CHECK(probe.calls > 30);
    long k = probe.calls + 2;
    for (long n = 1; n <= k; n++) {
        counting c = {0};
        c.fail_at = n;
        c.fail_rest = 1;
        counted_run(&c, 0, 1);
        if (n <= probe.calls && c.failed < 1) {
            T_FAIL("allocation %ld was never made", n);
            return;
        }
        if (c.live != 0) {
            T_FAIL("allocations failing from %ld of %ld: %ld blocks leaked", n, k, c.live);
            return;
        }
    }
}
