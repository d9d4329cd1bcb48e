/* test_push.c — server push (RFC 9113 §8.4) against a hand-driven client
 * (raw_peer.h): the promise's exact bytes, the promised stream's states, the
 * client's ENABLE_PUSH and MAX_CONCURRENT_STREAMS, duplicates, cancellation. */
#include "t.h"
#include "raw_peer.h"

#define MAXWIN 0x7fffffffu

static uint8_t big_body[300000];

static const uint8_t *body_bytes(void)
{
    for (size_t i = 0; i < sizeof(big_body); i++)
        big_body[i] = (uint8_t)('a' + i % 26);
    return big_body;
}

static sluice_session_stats stats_of(const rp *p)
{
    sluice_session_stats st;
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    sluice_session_get_stats(p->s, &st);
    return st;
}

static sluice_nv nvs(const char *n, const char *v)
{
    sluice_nv nv = {(const uint8_t *)n, (const uint8_t *)v, strlen(n), strlen(v), 0};
    return nv;
}

/* Promise a GET of https://authority/path on stream assoc. */
static int push_at(rp *p, uint32_t assoc, const char *authority, const char *path,
                   uint32_t *id)
{
    sluice_nv nv[4] = {nvs(":method", "GET"), nvs(":scheme", "https"),
                       nvs(":authority", authority), nvs(":path", path)};
    return sluice_session_submit_push(p->s, assoc, nv, 4, id);
}

static int push(rp *p, uint32_t assoc, const char *path, uint32_t *id)
{
    return push_at(p, assoc, "example.com", path, id);
}

static int respond(rp *p, uint32_t id, size_t body_len)
{
    static const sluice_nv res[] = {NV(":status", "200")};
    sluice_data_source src = {rp_body_read, p};
    /* Nothing is read before the next output, so a refused call changes
     * nothing; streams answered together share one body length. */
    int rv = sluice_session_submit_response(p->s, id, res, 1, body_len ? &src : NULL);
    if (rv == 0 && body_len) {
        p->body = body_bytes();
        p->body_len = body_len;
        p->body_off[(id >> 1) % RP_BODY_SLOTS] = 0;
    }
    return rv;
}

/* What rp_read cannot do: PUSH_PROMISE header blocks. Reads the session's
 * output and decodes each promise's block (padding-free, as sluice sends
 * it) into fields ("name: value\n", the last promise's); the ids promised
 * go to ids[]. raw_peer decodes HEADERS blocks as it reads, so a HEADERS
 * after a promise in one read would be decoded out of order: *bad says so. */
typedef struct promises {
    uint32_t ids[64];
    uint32_t assoc[64];
    size_t n;
    int bad;
    char fields[30000];
} promises;

static int pp_collect(void *ud, const sluice_nv *nv)
{
    promises *pr = ud;
    size_t len = strlen(pr->fields);
    snprintf(pr->fields + len, sizeof(pr->fields) - len, "%.*s: %.*s\n", (int)nv->name_len,
             (const char *)nv->name, (int)nv->value_len, (const char *)nv->value);
    return 0;
}

static void read_promises(rp *p, promises *pr)
{
    memset(pr, 0, sizeof(*pr));
    rp_read(p);
    int seen = 0;
    for (size_t i = 0; i < p->nf; i++) {
        const rp_frame *f = &p->f[i];
        if ((f->type == SL_FRAME_HEADERS || f->type == SL_FRAME_CONTINUATION) && seen)
            pr->bad = 1;
        if (f->type != SL_FRAME_PUSH_PROMISE)
            continue;
        seen = 1;
        if (f->length < 4 || !(f->flags & SL_FLAG_END_HEADERS) || pr->n == 64) {
            pr->bad = 1;
            continue;
        }
        pr->ids[pr->n] = rp_get32(f->payload) & MAXWIN;
        pr->assoc[pr->n++] = f->stream_id;
        pr->fields[0] = 0;
        if (sluice_hpack_decode(p->dec, f->payload + 4, f->length - 4, pp_collect, pr) != 0)
            pr->bad = 1;
    }
}

/* A server with the client's SETTINGS given as {id, value} pairs. */
static rp *server_with(const uint32_t *v, size_t n, const sluice_session_options *o)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, o);
    if (p && rp_handshake(p, v, n) < 0) {
        rp_free(p);
        return NULL;
    }
    return p;
}

static long close_code(const rp *p, uint32_t id)
{
    long i = rp_event_find(p, RP_EV_CLOSE, id);
    return i < 0 ? -1 : (long)p->ev[i].arg;
}

static size_t close_events(const rp *p, uint32_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nev; i++)
        if (p->ev[i].type == RP_EV_CLOSE && p->ev[i].stream_id == id)
            n++;
    return n;
}

/* ==== when a push may be made ===================================================== */

TEST(allowed_once_client_settings_arrive)
{
    rp *p = rp_new(SLUICE_ROLE_SERVER, NULL);
    CHECK(p);
    CHECK_INT(rp_preface(p), 24);
    CHECK_INT(sluice_session_push_allowed(p->s), 0); /* its ENABLE_PUSH is not known */
    CHECK(rp_settings(p, NULL, 0) > 0);
    CHECK_INT(sluice_session_push_allowed(p->s), 1);
    CHECK_INT(sluice_session_push_allowed(NULL), 0);
    rp_free(p);
}

TEST(client_role_never_pushes)
{
    rp *p = rp_client(NULL);
    CHECK(p);
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_request(p->s, rp_get, 4, NULL, &id), 0);
    CHECK_INT(sluice_session_push_allowed(p->s), 0);
    CHECK_INT(sluice_session_submit_push(p->s, id, rp_get, 4, NULL), SLUICE_ERR_STATE);
    rp_free(p);
}

TEST(option_off_state)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.enable_push = 0;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(sluice_session_push_allowed(p->s), 0);
    CHECK_INT(push(p, 1, "/a", NULL), SLUICE_ERR_STATE);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_free(p);
}

TEST(enable_push_0_state_and_no_promise_6_5_2)
{
    uint32_t v[] = {SL_SETTINGS_ENABLE_PUSH, 0};
    rp *p = server_with(v, 1, NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(sluice_session_push_allowed(p->s), 0);
    uint32_t id = 77;
    CHECK_INT(push(p, 1, "/a", &id), SLUICE_ERR_STATE);
    CHECK_INT(id, 77);
    CHECK_INT(respond(p, 1, 1000), 0);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_PUSH_PROMISE, RP_ANY), 0);
    CHECK_INT(rp_data_total(p, 1), 1000);
    CHECK_INT(stats_of(p).pushes, 0);
    CHECK_INT(p->parse_error, 0);
    rp_free(p);
}

TEST(enable_push_0_later_forbids_further_pushes_6_5_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    uint32_t id = 0;
    CHECK_INT(push(p, 1, "/a", &id), 0);
    CHECK_INT(id, 2);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 1);
    uint32_t v[] = {SL_SETTINGS_ENABLE_PUSH, 0};
    CHECK(rp_settings(p, v, 1) > 0);
    CHECK_INT(sluice_session_push_allowed(p->s), 0);
    CHECK_INT(push(p, 1, "/b", NULL), SLUICE_ERR_STATE);
    rp_read(p);
    CHECK_INT(p->nf, 1); /* the SETTINGS ACK only */
    CHECK_INT(p->f[0].type, SL_FRAME_SETTINGS);
    /* A promise already made can still be kept. */
    CHECK_INT(respond(p, 2, 10), 0);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_PUSH_PROMISE, RP_ANY), 0);
    const rp_frame *h = rp_find(p, SL_FRAME_HEADERS, 2);
    CHECK(h != NULL);
    CHECK_STR(h->status, "200");
    CHECK_INT(rp_data_total(p, 2), 10);
    CHECK_INT(stats_of(p).pushes, 1);
    rp_free(p);
}

TEST(goaway_either_way_state_6_8)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(sluice_session_goaway(p->s, SLUICE_H2_NO_ERROR, NULL, 1), 0);
    CHECK_INT(sluice_session_push_allowed(p->s), 0);
    CHECK_INT(push(p, 1, "/a", NULL), SLUICE_ERR_STATE);
    rp_free(p);

    p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK(rp_goaway(p, 0, SLUICE_H2_NO_ERROR) > 0);
    CHECK_INT(sluice_session_push_allowed(p->s), 0);
    CHECK_INT(push(p, 1, "/a", NULL), SLUICE_ERR_STATE);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_PUSH_PROMISE, RP_ANY), 0);
    rp_free(p);
}

/* The client's GOAWAY names the last promise it took (§6.8): later ones
 * are gone, as if refused. */
TEST(client_goaway_refuses_promises_above_its_last_id_6_8)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(push(p, 1, "/a", NULL), 0);
    CHECK_INT(push(p, 1, "/b", NULL), 0);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 2);
    CHECK(rp_goaway(p, 2, SLUICE_H2_NO_ERROR) > 0);
    CHECK_INT(close_code(p, 4), SLUICE_H2_REFUSED_STREAM);
    CHECK_INT(close_code(p, 2), -1);
    CHECK_INT(respond(p, 2, 0), 0);
    CHECK_INT(close_code(p, 2), SLUICE_H2_NO_ERROR);
    rp_free(p);
}

/* ==== the PUSH_PROMISE frame (§6.6) ================================================= */

TEST(promise_exact_bytes_6_6)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    static const sluice_nv req[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                    NV(":authority", "example.com"), NV(":path", "/a.css"),
                                    NV("accept", "text/css")};
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_push(p->s, 1, req, 5, &id), 0);
    CHECK_INT(id, 2);
    /* The session's encoder has encoded nothing yet: a fresh one with the
     * same defaults writes the same block. */
    sluice_hpack_encoder *e = NULL;
    CHECK_INT(sluice_hpack_encoder_new(&e, NULL, NULL), 0);
    uint8_t want[512];
    size_t blen = 0;
    int rv = sluice_hpack_encode(e, req, 5, want + 13, sizeof(want) - 13, &blen);
    sluice_hpack_encoder_free(e);
    CHECK_INT(rv, 0);
    static const uint8_t hdr[13] = {0, 0, 0, 0x05, 0x04, 0, 0, 0, 1, 0, 0, 0, 2};
    CHECK(4 + blen < 256);
    memcpy(want, hdr, 13);
    want[2] = (uint8_t)(4 + blen); /* length; type PUSH_PROMISE, END_HEADERS, stream 1 */
    promises pr;
    read_promises(p, &pr);
    CHECK_MEM(p->out, p->out_len, want, 13 + blen);
    CHECK_INT(pr.n, 1);
    CHECK_INT(pr.bad, 0);
    CHECK_STR(pr.fields, ":method: GET\n:scheme: https\n:authority: example.com\n"
                         ":path: /a.css\naccept: text/css\n");
    sluice_session_stats st = stats_of(p);
    CHECK_INT(st.pushes, 1);
    CHECK_INT(st.streams_open, 2);
    rp_free(p);
}

/* A block over the client's frame size goes on in CONTINUATION frames
 * (§6.10), the first carrying the promised id and max_frame_size - 4 bytes. */
TEST(promise_continuation_over_frame_size_6_10)
{
    static char big[20001];
    memset(big, 'v', sizeof(big) - 1);
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    sluice_nv req[] = {nvs(":method", "GET"), nvs(":scheme", "https"),
                       nvs(":authority", "example.com"), nvs(":path", "/big"),
                       nvs("x-big", big)};
    CHECK_INT(sluice_session_submit_push(p->s, 1, req, 5, NULL), 0);
    sluice_hpack_encoder *e = NULL;
    CHECK_INT(sluice_hpack_encoder_new(&e, NULL, NULL), 0);
    static uint8_t block[30000];
    size_t blen = 0;
    int rv = sluice_hpack_encode(e, req, 5, block, sizeof(block), &blen);
    sluice_hpack_encoder_free(e);
    CHECK_INT(rv, 0);
    CHECK(blen > 16380 && blen < 2 * 16384);
    rp_read(p); /* raw_peer flags the CONTINUATION it cannot join: expected */
    CHECK_INT(p->nf, 2);
    static uint8_t want[40000];
    size_t rest = blen - 16380;
    uint8_t h1[13] = {0, 0x40, 0, 0x05, 0x00, 0, 0, 0, 1, 0, 0, 0, 2};
    uint8_t h2[9] = {(uint8_t)(rest >> 16), (uint8_t)(rest >> 8), (uint8_t)rest, 0x09, 0x04,
                     0, 0, 0, 1};
    memcpy(want, h1, 13);
    memcpy(want + 13, block, 16380);
    memcpy(want + 13 + 16380, h2, 9);
    memcpy(want + 13 + 16380 + 9, block + 16380, rest);
    CHECK_MEM(p->out, p->out_len, want, 13 + 16380 + 9 + rest);
    rp_free(p);
}

TEST(promised_ids_even_increasing_5_1_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK(rp_request(p, 3, 0) > 0);
    uint32_t a = 0, b = 0, c = 0, d = 0;
    CHECK_INT(push(p, 1, "/a", &a), 0);
    CHECK_INT(push(p, 1, "/b", &b), 0);
    CHECK_INT(push(p, 3, "/c", &c), 0);
    CHECK_INT(push(p, 1, "/d", &d), 0);
    CHECK_INT(a, 2);
    CHECK_INT(b, 4);
    CHECK_INT(c, 6);
    CHECK_INT(d, 8);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.bad, 0);
    CHECK_INT(pr.n, 4);
    const uint32_t ids[] = {2, 4, 6, 8}, assoc[] = {1, 1, 3, 1};
    CHECK_MEM(pr.ids, sizeof(pr.ids[0]) * pr.n, ids, sizeof(ids));
    CHECK_MEM(pr.assoc, sizeof(pr.assoc[0]) * pr.n, assoc, sizeof(assoc));
    CHECK_STR(pr.fields, ":method: GET\n:scheme: https\n:authority: example.com\n:path: /d\n");
    /* A promise that fails uses no id. */
    CHECK_INT(push(p, 1, "/a", NULL), SLUICE_ERR_AGAIN);
    uint32_t e = 0;
    CHECK_INT(push(p, 1, "/e", &e), 0);
    CHECK_INT(e, 10);
    CHECK_INT(stats_of(p).pushes, 5);
    rp_free(p);
}

/* ==== what may be promised, and where (§8.4, §8.4.1) ================================== */

TEST(pushed_request_must_be_safe_cacheable_and_complete_8_4_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    const char *auth = "example.com";
    sluice_nv bad[][5] = {
        {nvs(":method", "POST"), nvs(":scheme", "https"), nvs(":authority", auth), nvs(":path", "/")},
        {nvs(":method", "OPTIONS"), nvs(":scheme", "https"), nvs(":authority", auth), nvs(":path", "/")},
        {nvs(":method", "GET"), nvs(":scheme", "https"), nvs(":path", "/"), nvs("host", auth)},
        {nvs(":method", "GET"), nvs(":scheme", "https"), nvs(":authority", ""), nvs(":path", "/")},
        {nvs(":method", "GET"), nvs(":authority", auth), nvs(":path", "/"), nvs("accept", "*/*")},
        {nvs(":method", "GET"), nvs(":scheme", "https"), nvs(":authority", auth), nvs("accept", "*/*")},
        {nvs(":method", "GET"), nvs(":scheme", "https"), nvs(":authority", auth), nvs(":path", "/"),
         nvs("content-length", "3")},
        {nvs(":method", "GET"), nvs(":scheme", "https"), nvs(":authority", auth), nvs(":path", "/"),
         nvs("Accept", "*/*")},
        {nvs(":method", "GET"), nvs(":scheme", "https"), nvs(":authority", auth), nvs(":path", "/"),
         nvs("connection", "close")},
        {nvs(":method", "GET"), nvs(":scheme", "https"), nvs(":authority", auth), nvs(":path", "/"),
         nvs("x-a", "b\r\nc: d")},
        {nvs(":method", "GET"), nvs(":scheme", "https"), nvs(":authority", auth), nvs(":path", "/"),
         nvs(":status", "200")},
    };
    const size_t nbad[] = {4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5};
    for (size_t i = 0; i < sizeof(nbad) / sizeof(nbad[0]); i++) {
        uint32_t id = 99;
        if (sluice_session_submit_push(p->s, 1, bad[i], nbad[i], &id) != SLUICE_ERR_INVAL ||
            id != 99) {
            T_FAIL("case %zu not refused with INVAL", i);
            return;
        }
    }
    CHECK_INT(sluice_session_submit_push(p->s, 1, NULL, 4, NULL), SLUICE_ERR_INVAL);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    CHECK_INT(stats_of(p).pushes, 0);
    /* HEAD is safe and cacheable too; content-length 0 is no body. */
    sluice_nv head[] = {nvs(":method", "HEAD"), nvs(":scheme", "https"), nvs(":authority", auth),
                        nvs(":path", "/h"), nvs("content-length", "0")};
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_push(p->s, 1, head, 5, &id), 0);
    CHECK_INT(id, 2);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 1);
    CHECK_STR(pr.fields, ":method: HEAD\n:scheme: https\n:authority: example.com\n:path: /h\n"
                         "content-length: 0\n");
    rp_free(p);
}

TEST(associated_stream_open_or_half_closed_remote_8_4)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 0) > 0); /* open: its body is still coming */
    CHECK(rp_request(p, 3, 0) > 0);
    CHECK_INT(push(p, 0, "/a", NULL), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(push(p, 5, "/a", NULL), SLUICE_ERR_NOT_FOUND); /* idle */
    uint32_t id = 0;
    CHECK_INT(push(p, 1, "/a", &id), 0);
    CHECK_INT(id, 2);
    CHECK_INT(push(p, 2, "/b", NULL), SLUICE_ERR_STATE); /* our own stream */
    /* Stream 3 answered in full: half-closed (local), no more promises. */
    CHECK_INT(respond(p, 3, 0), 0);
    CHECK_INT(push(p, 3, "/b", NULL), SLUICE_ERR_STATE);
    /* Once the client ends it, it is gone. */
    CHECK(rp_data(p, 3, 0, 1) > 0);
    CHECK_INT(close_code(p, 3), SLUICE_H2_NO_ERROR);
    CHECK_INT(push(p, 3, "/b", NULL), SLUICE_ERR_NOT_FOUND);
    rp_free(p);
}

/* ==== the client's concurrency limit (§5.1.2) ========================================== */

TEST(promises_count_toward_client_limit_5_1_2)
{
    uint32_t v[] = {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 2};
    rp *p = server_with(v, 1, NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    uint32_t a = 0, b = 0, c = 0;
    CHECK_INT(push(p, 1, "/a", &a), 0);
    CHECK_INT(push(p, 1, "/b", &b), 0);
    CHECK_INT(push(p, 1, "/c", &c), SLUICE_ERR_LIMIT);
    CHECK_INT(c, 0);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 2);
    /* Answering a promise does not free its slot; finishing it does. */
    p->body_defer = 1;
    CHECK_INT(respond(p, a, 100), 0);
    CHECK_INT(push(p, 1, "/c", NULL), SLUICE_ERR_LIMIT);
    p->body_defer = 0;
    CHECK_INT(sluice_session_resume_data(p->s, a), 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, a), 100);
    CHECK_INT(close_code(p, a), SLUICE_H2_NO_ERROR);
    CHECK_INT(push(p, 1, "/c", &c), 0);
    CHECK_INT(c, 6);
    read_promises(p, &pr);
    CHECK_INT(pr.n, 1);
    CHECK_INT(pr.bad, 0);
    rp_free(p);
}

/* A client that lowers its limit below the promises already made: a
 * response that would open one stream too many is refused until another
 * pushed stream finishes. */
TEST(response_on_promise_refused_over_lowered_limit_5_1_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(push(p, 1, "/a", NULL), 0);
    CHECK_INT(push(p, 1, "/b", NULL), 0);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 2);
    uint32_t v[] = {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 1};
    CHECK(rp_settings(p, v, 1) > 0);
    p->body_defer = 1;
    CHECK_INT(respond(p, 2, 100), 0);
    CHECK_INT(respond(p, 4, 100), SLUICE_ERR_LIMIT);
    CHECK_INT(push(p, 1, "/c", NULL), SLUICE_ERR_LIMIT);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_HEADERS, 4), 0);
    CHECK(rp_find(p, SL_FRAME_HEADERS, 2) != NULL);
    p->body_defer = 0;
    CHECK_INT(sluice_session_resume_data(p->s, 2), 0);
    rp_read(p);
    CHECK_INT(close_code(p, 2), SLUICE_H2_NO_ERROR);
    CHECK_INT(respond(p, 4, 100), 0);
    rp_read(p);
    CHECK_INT(rp_data_total(p, 4), 100);
    CHECK_INT(close_code(p, 4), SLUICE_H2_NO_ERROR);
    CHECK_INT(p->parse_error, 0);
    rp_free(p);
}

/* Our own max_concurrent_streams bounds promises too, when the client
 * sets no limit (its initial value is unlimited). */
TEST(own_stream_limit_bounds_promises)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.max_concurrent_streams = 2;
    rp *p = rp_server(&o);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(push(p, 1, "/a", NULL), 0);
    CHECK_INT(push(p, 1, "/b", NULL), 0);
    CHECK_INT(push(p, 1, "/c", NULL), SLUICE_ERR_LIMIT);
    rp_free(p);
}

/* ==== no push of what the client already has open ====================================== */

TEST(duplicate_of_open_request_or_promise_again)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0); /* GET https://example.com/ */
    static const sluice_nv by_host[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                        NV(":path", "/h"), NV("host", "example.com")};
    CHECK(rp_headers(p, 3, by_host, 4, 1) > 0);
    CHECK_INT(p->requests, 2);
    CHECK_INT(push(p, 1, "/", NULL), SLUICE_ERR_AGAIN);
    CHECK_INT(push(p, 1, "/h", NULL), SLUICE_ERR_AGAIN); /* host stands in for :authority */
    uint32_t a = 0, id = 0;
    CHECK_INT(push(p, 1, "/a", &a), 0);
    CHECK_INT(push(p, 3, "/a", NULL), SLUICE_ERR_AGAIN);
    CHECK_INT(push_at(p, 1, "EXAMPLE.com", "/a", NULL), SLUICE_ERR_AGAIN);
    CHECK_INT(push(p, 1, "/A", &id), 0); /* paths are case-sensitive */
    CHECK_INT(push(p, 1, "/a?x", &id), 0);
    CHECK_INT(push_at(p, 1, "other.example", "/a", &id), 0);
    CHECK_INT(id, 8);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 4);
    CHECK_INT(pr.bad, 0);
    /* Once a stream is gone, its resource may be pushed again. */
    CHECK_INT(respond(p, a, 0), 0);
    CHECK_INT(close_code(p, a), SLUICE_H2_NO_ERROR);
    CHECK_INT(respond(p, 1, 0), 0);
    CHECK_INT(close_code(p, 1), SLUICE_H2_NO_ERROR);
    rp_read(p);
    CHECK_INT(push(p, 3, "/a", &id), 0);
    CHECK_INT(id, 10);
    CHECK_INT(push(p, 3, "/", &id), 0);
    CHECK_INT(id, 12);
    CHECK_INT(push(p, 3, "/h", NULL), SLUICE_ERR_AGAIN); /* 3 itself is still open */
    read_promises(p, &pr);
    CHECK_INT(pr.n, 2);
    CHECK_INT(stats_of(p).pushes, 6);
    rp_free(p);
}

/* ==== the promised stream (§5.1, §8.4.2) ================================================= */

TEST(pushed_response_headers_then_data_8_4_2)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    uint32_t id = 0;
    CHECK_INT(push(p, 1, "/a", &id), 0);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 1);
    /* Reserved: no 1xx, no trailers, no data to resume, until it opens. */
    static const sluice_nv hints[] = {NV(":status", "103"), NV("link", "</x>; rel=preload")};
    CHECK_INT(sluice_session_submit_info(p->s, id, hints, 2), SLUICE_ERR_STATE);
    CHECK_INT(sluice_session_submit_trailers(p->s, id, hints + 1, 1), SLUICE_ERR_STATE);
    CHECK_INT(sluice_session_resume_data(p->s, id), SLUICE_ERR_STATE);
    CHECK_INT(respond(p, id, 40000), 0);
    CHECK_INT(respond(p, id, 0), SLUICE_ERR_NOT_FOUND); /* answered already */
    rp_read(p);
    const rp_frame *h = rp_find(p, SL_FRAME_HEADERS, id);
    CHECK(h != NULL);
    CHECK_STR(h->status, "200");
    CHECK_INT(h->flags, SL_FLAG_END_HEADERS);
    CHECK_INT(rp_data_total(p, id), 40000);
    const rp_frame *last = &p->f[p->nf - 1];
    CHECK_INT(last->type, SL_FRAME_DATA);
    CHECK_MEM(last->payload, last->data_len, big_body + 40000 - last->data_len, last->data_len);
    CHECK_INT(p->f[p->nf - 1].flags, SL_FLAG_END_STREAM);
    CHECK_INT(close_code(p, id), SLUICE_H2_NO_ERROR);
    CHECK_INT(p->parse_error, 0);
    /* Half-closed (remote) now, then closed: the client's DATA is a stream
     * error, no longer a connection one. */
    CHECK(rp_request(p, 3, 0) > 0);
    CHECK_INT(push(p, 3, "/b", &id), 0);
    read_promises(p, &pr);
    p->body_defer = 1;
    CHECK_INT(respond(p, id, 10), 0);
    rp_read(p);
    CHECK(rp_data(p, id, 5, 0) > 0);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_RST_STREAM, id), 1);
    CHECK_INT(rp_find(p, SL_FRAME_RST_STREAM, id)->code, SLUICE_H2_STREAM_CLOSED);
    CHECK_INT(rp_count(p, SL_FRAME_GOAWAY, RP_ANY), 0);
    rp_free(p);
}

/* Pushed responses go through the same scheduler: the priority field of
 * the promised request (RFC 9218 §4) puts this one first. */
TEST(pushed_response_scheduled_by_urgency)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    sluice_nv req[] = {nvs(":method", "GET"), nvs(":scheme", "https"),
                       nvs(":authority", "example.com"), nvs(":path", "/app.js"),
                       nvs("priority", "u=0")};
    uint32_t id = 0;
    CHECK_INT(sluice_session_submit_push(p->s, 1, req, 5, &id), 0);
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(p->s, id, &u, &inc), 0);
    CHECK_INT(u, 0);
    CHECK_INT(inc, 0);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 1);
    CHECK_INT(respond(p, 1, 30000), 0);
    CHECK_INT(respond(p, id, 30000), 0);
    rp_read(p);
    long first1 = -1, last2 = -1;
    for (size_t i = 0; i < p->nf; i++) {
        if (p->f[i].type != SL_FRAME_DATA)
            continue;
        if (p->f[i].stream_id == 1 && first1 < 0)
            first1 = (long)i;
        if (p->f[i].stream_id == id)
            last2 = (long)i;
    }
    CHECK(first1 >= 0 && last2 >= 0);
    CHECK(last2 < first1);
    CHECK_INT(rp_data_total(p, 1), 30000);
    CHECK_INT(rp_data_total(p, id), 30000);
    rp_free(p);
}

/* §5.1: on a reserved (local) stream the client may send only RST_STREAM,
 * PRIORITY and WINDOW_UPDATE. */
TEST(client_data_on_promised_stream_protocol_error_5_1)
{
    rp *p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(push(p, 1, "/a", NULL), 0);
    promises pr;
    read_promises(p, &pr);
    CHECK(rp_window_update(p, 2, 1000) > 0);
    CHECK(rp_priority(p, 2, 0, 0, 200) > 0);
    rp_read(p);
    CHECK_INT(p->nf, 0);
    rp_data(p, 2, 10, 0);
    CHECK_INT(p->rv, SLUICE_ERR_PROTOCOL);
    rp_read(p);
    CHECK_INT(rp_find(p, SL_FRAME_GOAWAY, 0)->code, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);

    p = rp_server(NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    CHECK_INT(push(p, 1, "/a", NULL), 0);
    read_promises(p, &pr);
    rp_headers(p, 2, rp_get, 4, 1);
    CHECK_INT(p->rv, SLUICE_ERR_PROTOCOL);
    rp_read(p);
    CHECK_INT(rp_find(p, SL_FRAME_GOAWAY, 0)->code, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

/* The client cancels a push mid-body: the stream closes at once, its
 * source is never read again, frames already queued may still go out. */
TEST(cancel_stops_pushed_data_at_once)
{
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20};
    rp *p = server_with(v, 1, NULL);
    CHECK(p);
    CHECK(rp_window_update(p, 0, 1u << 20) > 0);
    CHECK(rp_request(p, 1, 1) > 0);
    uint32_t id = 0;
    CHECK_INT(push(p, 1, "/big", &id), 0);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(pr.n, 1);
    CHECK_INT(respond(p, id, 250000), 0);
    /* Pull about two frames into the queue, unwritten. */
    sluice_iovec iov[16];
    CHECK(sluice_session_output(p->s, iov, 16, 30000, 0) > 0);
    size_t pulled = p->body_off[id >> 1];
    CHECK(pulled > 0 && pulled < 30000);
    CHECK(rp_rst(p, id, SLUICE_H2_CANCEL) > 0);
    CHECK_INT(close_events(p, id), 1);
    CHECK_INT(close_code(p, id), SLUICE_H2_CANCEL);
    CHECK_INT(stats_of(p).rst_received, 1);
    rp_read(p);
    CHECK_INT(p->body_off[id >> 1], pulled); /* not read again */
    CHECK_INT(rp_data_total(p, id), pulled); /* queued frames went out, no more */
    for (size_t i = 0; i < p->nf; i++)
        CHECK_INT(p->f[i].flags & SL_FLAG_END_STREAM && p->f[i].stream_id == id, 0);
    CHECK_INT(rp_count(p, SL_FRAME_RST_STREAM, RP_ANY), 0); /* nothing to answer */
    CHECK_INT(sluice_session_resume_data(p->s, id), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(respond(p, id, 0), SLUICE_ERR_NOT_FOUND);
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_DATA, id), 0);
    CHECK_INT(close_events(p, id), 1);
    /* The rest of the connection goes on. */
    CHECK_INT(respond(p, 1, 100), 0);
    rp_read(p);
    const rp_frame *h = rp_find(p, SL_FRAME_HEADERS, 1);
    CHECK(h != NULL);
    CHECK_STR(h->status, "200");
    CHECK_INT(rp_data_total(p, 1), 100);
    CHECK_INT(p->parse_error, 0);
    rp_free(p);
}

/* REFUSED_STREAM before the response: the promise is dropped, its slot freed. */
TEST(refused_promise_frees_its_slot)
{
    uint32_t v[] = {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 1};
    rp *p = server_with(v, 1, NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    uint32_t id = 0;
    CHECK_INT(push(p, 1, "/a", &id), 0);
    CHECK_INT(push(p, 1, "/b", NULL), SLUICE_ERR_LIMIT);
    promises pr;
    read_promises(p, &pr);
    CHECK(rp_rst(p, id, SLUICE_H2_REFUSED_STREAM) > 0);
    CHECK_INT(close_code(p, id), SLUICE_H2_REFUSED_STREAM);
    CHECK_INT(respond(p, id, 0), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(push(p, 1, "/a", &id), 0); /* no longer open: not a duplicate */
    CHECK_INT(id, 4);
    CHECK_INT(stats_of(p).streams_open, 2);
    rp_free(p);
}

/* The application resets a promise itself: RST_STREAM goes out, the slot is free. */
TEST(server_resets_promise)
{
    uint32_t v[] = {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 1};
    rp *p = server_with(v, 1, NULL);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    uint32_t id = 0;
    CHECK_INT(push(p, 1, "/a", &id), 0);
    promises pr;
    read_promises(p, &pr);
    CHECK_INT(sluice_session_submit_rst(p->s, id, SLUICE_H2_CANCEL), 0);
    rp_read(p);
    CHECK_INT(rp_find(p, SL_FRAME_RST_STREAM, id)->code, SLUICE_H2_CANCEL);
    CHECK_INT(close_code(p, id), SLUICE_H2_CANCEL);
    CHECK_INT(push(p, 1, "/b", NULL), 0);
    rp_free(p);
}

/* ==== allocation failures ================================================================ */

typedef struct counting {
    long live, calls, fail_at, failed;
} counting;

static int counting_fails(counting *c)
{
    c->calls++;
    if (c->fail_at && c->calls == c->fail_at) {
        c->failed++;
        return 1;
    }
    return 0;
}

static void *c_malloc(size_t n, void *ud)
{
    counting *c = ud;
    void *p = counting_fails(c) ? NULL : malloc(n ? n : 1);
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

/* Promises (one with a header block bigger than any before), pushed
 * bodies, a cancelled promise, one left reserved at the end. */
static uint64_t push_exchange(counting *c)
{
    static char big[6000];
    memset(big, 'p', sizeof(big) - 1);
    sluice_allocator a = {c_malloc, c_realloc, c_free, c};
    rp *p = rp_new_alloc(SLUICE_ROLE_SERVER, NULL, &a, NULL);
    if (!p)
        return 0;
    if (rp_handshake(p, NULL, 0) >= 0 && rp_request(p, 1, 1) >= 0) {
        uint32_t ids[4] = {0};
        sluice_nv req[] = {nvs(":method", "GET"), nvs(":scheme", "https"),
                           nvs(":authority", "example.com"), nvs(":path", "/big"),
                           nvs("x-big", big)};
        push(p, 1, "/a", &ids[0]);
        sluice_session_submit_push(p->s, 1, req, 5, &ids[1]);
        push(p, 1, "/c", &ids[2]);
        push(p, 1, "/d", &ids[3]);
        rp_read(p);
        respond(p, ids[0], 30000);
        respond(p, ids[1], 30000);
        rp_rst(p, ids[2], SLUICE_H2_CANCEL);
        rp_read_max(p, 20000);
        respond(p, 1, 100);
    }
    uint64_t pushes = stats_of(p).pushes;
    rp_free(p);
    return pushes;
}

TEST(alloc_fail_nth_no_crash_no_leak)
{
    counting probe = {0};
    CHECK_INT(push_exchange(&probe), 4);
    CHECK(probe.calls > 10);
    CHECK_INT(probe.live, 0);
    for (long n = 1; n <= probe.calls + 2; n++) {
        counting c = {0};
        c.fail_at = n;
        push_exchange(&c);
        if (n <= probe.calls && c.failed != 1) {
            T_FAIL("allocation %ld was never made", n);
            return;
        }
        if (c.live != 0) {
            T_FAIL("failing allocation %ld: %ld blocks leaked", n, c.live);
            return;
        }
    }
}

/* Cancelling pushes is the client's right (RFC 9113 §8.4.2) and bounded by
 * our own pushes: it does not spend the rapid-reset budget, while resets
 * of its own streams still do. */
TEST(cancelled_pushes_do_not_count_as_rapid_reset)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.rst_received = (sluice_rate){3, 1};
    o.max_concurrent_streams = 100;
    uint32_t v[] = {SL_SETTINGS_MAX_CONCURRENT_STREAMS, 100};
    rp *p = server_with(v, 1, &o);
    CHECK(p);
    CHECK(rp_request(p, 1, 1) > 0);
    char path[16];
    for (int i = 0; i < 10; i++) {
        uint32_t id = 0;
        snprintf(path, sizeof path, "/p%d", i);
        CHECK_INT(push(p, 1, path, &id), 0);
        CHECK(rp_rst(p, id, SLUICE_H2_CANCEL) > 0);
    }
    rp_read(p);
    CHECK_INT(rp_count(p, SL_FRAME_GOAWAY, RP_ANY), 0);
    CHECK_INT(stats_of(p).rst_received, 10);
    /* Its own streams: the fourth reset in a burst of {3, 1} is a flood. */
    for (uint32_t id = 3; id <= 9; id += 2) {
        CHECK(rp_request(p, id, 0) > 0);
        rp_rst(p, id, SLUICE_H2_CANCEL);
    }
    rp_read(p);
    const rp_frame *g = rp_find(p, SL_FRAME_GOAWAY, 0);
    CHECK(g != NULL);
    CHECK_INT(g ? g->code : 0, SLUICE_H2_ENHANCE_YOUR_CALM);
    rp_free(p);
}
