/* test_session.c — the HTTP/2 session: sluice client against sluice
 * server in memory, and hand-made frames for each error path. */
#include "t.h"
#include "session_pair.h"

#define NV(n, v) {(const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0}

typedef struct app {
    int requests, responses, infos, trailers, ends, closes;
    uint32_t last_close_code;
    uint32_t last_stream;
    char body[1 << 16];
    size_t body_len;
    size_t consume; /* consume delivered data at once */
    /* server: what to answer */
    const char *resp_body;
    size_t resp_len, resp_off;
    int send_trailers;
    int goaways;
    uint32_t goaway_code, goaway_last;
} app;

static long body_read(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                      uint32_t *flags, void *ud)
{
    (void)s; (void)id;
    app *a = ud;
    size_t n = a->resp_len - a->resp_off;
    if (n > max)
        n = max;
    *data = (const uint8_t *)a->resp_body + a->resp_off;
    a->resp_off += n;
    if (a->resp_off == a->resp_len)
        *flags |= SLUICE_DATA_EOF | (a->send_trailers ? SLUICE_DATA_NO_END_STREAM : 0);
    return (long)n;
}

static int on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv, size_t n,
                      int end_stream, void *ud)
{
    (void)nv; (void)n; (void)end_stream;
    app *a = ud;
    a->last_stream = id;
    switch (kind) {
    case SLUICE_HEADERS_REQUEST: {
        a->requests++;
        static const sluice_nv res[] = {NV(":status", "200"), NV("content-type", "text/plain")};
        sluice_data_source src = {body_read, a};
        return sluice_session_submit_response(s, id, res, 2, a->resp_body ? &src : NULL);
    }
    case SLUICE_HEADERS_RESPONSE: a->responses++; break;
    case SLUICE_HEADERS_INFO: a->infos++; break;
    case SLUICE_HEADERS_TRAILERS: a->trailers++; break;
    }
    return 0;
}

static int on_data(sluice_session *s, uint32_t id, const uint8_t *d, size_t len, void *ud)
{
    app *a = ud;
    if (a->body_len < sizeof(a->body)) {
        size_t room = sizeof(a->body) - a->body_len;
        memcpy(a->body + a->body_len, d, len < room ? len : room);
    }
    a->body_len += len;
    if (a->consume)
        sluice_session_consume(s, id, len);
    return 0;
}

static int on_end(sluice_session *s, uint32_t id, void *ud)
{
    (void)s; (void)id;
    ((app *)ud)->ends++;
    return 0;
}

static int on_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    (void)s; (void)id;
    app *a = ud;
    a->closes++;
    a->last_close_code = code;
    return 0;
}

static int on_goaway(sluice_session *s, uint32_t last, uint32_t code, const uint8_t *d,
                     size_t len, void *ud)
{
    (void)s; (void)d; (void)len;
    app *a = ud;
    a->goaways++;
    a->goaway_code = code;
    a->goaway_last = last;
    return 0;
}

static sluice_session_callbacks callbacks(void)
{
    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = on_headers;
    cb.on_data = on_data;
    cb.on_stream_end = on_end;
    cb.on_stream_close = on_close;
    cb.on_goaway = on_goaway;
    return cb;
}

static const sluice_nv get_req[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                    NV(":authority", "example.com"), NV(":path", "/")};

TEST(get_roundtrip_client_server)
{
    app ca = {0}, sa = {0};
    sa.resp_body = "hello, world";
    sa.resp_len = 12;
    ca.consume = 1;
    sluice_session_callbacks cb = callbacks();
    sluice_session *c, *s;
    CHECK_INT(sluice_session_new(&c, SLUICE_ROLE_CLIENT, &cb, &ca, NULL, NULL, 0), 0);
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, &cb, &sa, NULL, NULL, 0), 0);
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_request(c, get_req, 4, NULL, &id), 0);
    CHECK_INT(id, 1);
    CHECK_INT(pair_pump(c, s, 0), 0);
    CHECK_INT(sa.requests, 1);
    CHECK_INT(sa.ends, 1);
    CHECK_INT(ca.responses, 1);
    CHECK_INT(ca.ends, 1);
    CHECK_MEM(ca.body, ca.body_len, "hello, world", 12);
    CHECK_INT(ca.closes, 1);
    CHECK_INT(ca.last_close_code, 0);
    CHECK_INT(sa.closes, 1);
    sluice_session_free(c);
    sluice_session_free(s);
}

TEST(large_body_flows_under_small_windows)
{
    static char big[300000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    app ca = {0}, sa = {0};
    sa.resp_body = big;
    sa.resp_len = sizeof(big);
    sa.send_trailers = 0;
    ca.consume = 1;
    sluice_session_callbacks cb = callbacks();
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.initial_window_size = 1000; /* many WINDOW_UPDATE rounds */
    sluice_session *c, *s;
    CHECK_INT(sluice_session_new(&c, SLUICE_ROLE_CLIENT, &cb, &ca, &o, NULL, 0), 0);
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, &cb, &sa, NULL, NULL, 0), 0);
    CHECK_INT(sluice_session_submit_request(c, get_req, 4, NULL, NULL), 0);
    CHECK_INT(pair_pump(c, s, 0), 0);
    CHECK_INT(ca.ends, 1);
    CHECK_INT(ca.body_len, sizeof(big));
    for (size_t i = 0; i < sizeof(ca.body); i++)
        if (ca.body[i] != big[i]) {
            T_FAIL("differs at %zu", i);
            return;
        }
    sluice_session_free(c);
    sluice_session_free(s);
}

TEST(unacknowledged_settings_are_bounded)
{
    sluice_session_callbacks cb = callbacks();
    app a = {0};
    sluice_session *s;
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, &cb, &a, NULL, NULL, 0), 0);
    const uint32_t v[2] = {3 /* MAX_CONCURRENT_STREAMS */, 50};
    /* the initial SETTINGS is the first of four that may wait for an ACK */
    for (int i = 0; i < 3; i++)
        CHECK_INT(sluice_session_submit_settings(s, v, 1), 0);
    CHECK_INT(sluice_session_submit_settings(s, v, 1), SLUICE_ERR_AGAIN);
    const uint32_t bad[2] = {2 /* ENABLE_PUSH: a server must not */, 1};
    CHECK_INT(sluice_session_submit_settings(s, bad, 1), SLUICE_ERR_INVAL);
    uint32_t many[22];
    for (int i = 0; i < 11; i++)
        many[2 * i] = 3, many[2 * i + 1] = 10;
    CHECK_INT(sluice_session_submit_settings(s, many, 11), SLUICE_ERR_INVAL);
    sluice_session_free(s);
}

/* A header block left open (HEADERS without END_HEADERS, then nothing) is
 * a slowloris: after header_block_timeout_ns the connection ends with
 * ENHANCE_YOUR_CALM; a block completed in time is served. */
TEST(header_block_timeout)
{
    sluice_session_callbacks cb = callbacks();
    app a = {0};
    sluice_session *s;
    const uint64_t sec = 1000000000ull;
    CHECK_INT(sluice_session_new(&s, SLUICE_ROLE_SERVER, &cb, &a, NULL, NULL, 0), 0);
    /* preface, empty SETTINGS, and the ACK of ours */
    static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                     "\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                                     "\x00\x00\x00\x04\x01\x00\x00\x00\x00";
    CHECK_INT(sluice_session_recv(s, preface, sizeof(preface) - 1, 0), sizeof(preface) - 1);
    /* HEADERS, stream 1, END_STREAM only: ":method GET" (82) — block open */
    static const uint8_t open_block[] = {0, 0, 1, 1, 0x01, 0, 0, 0, 1, 0x82};
    CHECK_INT(sluice_session_recv(s, open_block, sizeof(open_block), sec), sizeof(open_block));
    CHECK_INT(sluice_session_next_deadline(s) <= 11 * sec, 1);
    CHECK_INT(sluice_session_handle_timeout(s, 10 * sec), 0);
    CHECK_INT(sluice_session_handle_timeout(s, 11 * sec), SLUICE_ERR_CALM);
    sluice_session_stats st = {.struct_size = sizeof(st)};
    CHECK_INT(sluice_session_get_stats(s, &st), 0);
    CHECK_INT(st.goaway_sent, 1);
    CHECK_INT(st.goaway_sent_code, SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(a.requests, 0);
    sluice_session_free(s);
}
