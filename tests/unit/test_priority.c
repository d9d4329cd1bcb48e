/* test_priority.c — RFC 9218 priorities: the field parser, the scheduler's
 * order, and a server session answering requests in priority order for
 * every signal (priority header, PRIORITY_UPDATE, RFC 7540 fields). */
#include <string.h>

#include "priority.h"
#include "raw_peer.h"
#include "scheduler.h"
#include "t.h"

/* ---- the field ----------------------------------------------------------- */

static int parse(const char *v, int *u, int *i)
{
    *u = SLUICE_URGENCY_DEFAULT;
    *i = 0;
    return sluice_priority_parse((const uint8_t *)v, strlen(v), u, i);
}

TEST(parse_urgency_and_incremental)
{
    int u, i;
    CHECK_INT(parse("u=1, i", &u, &i), 0);
    CHECK_INT(u, 1);
    CHECK_INT(i, 1);
    CHECK_INT(parse("u=0", &u, &i), 0);
    CHECK_INT(u, 0);
    CHECK_INT(i, 0);
    CHECK_INT(parse("i=?1,u=7", &u, &i), 0);
    CHECK_INT(u, 7);
    CHECK_INT(i, 1);
    CHECK_INT(parse("i=?0", &u, &i), 0);
    CHECK_INT(i, 0);
    CHECK_INT(parse("", &u, &i), 0);
    CHECK_INT(u, 3);
}

TEST(parse_ignores_what_rfc9218_says_to_ignore)
{
    int u, i;
    /* §4.1: out of range or not an integer: the default stays. */
    CHECK_INT(parse("u=8", &u, &i), 0);
    CHECK_INT(u, 3);
    CHECK_INT(parse("u=-1", &u, &i), 0);
    CHECK_INT(u, 3);
    CHECK_INT(parse("u=1.5", &u, &i), 0);
    CHECK_INT(u, 3);
    CHECK_INT(parse("u=\"1\"", &u, &i), 0);
    CHECK_INT(u, 3);
    CHECK_INT(parse("u=10", &u, &i), 0);
    CHECK_INT(u, 3);
    /* Unknown keys, parameters and inner lists are skipped. */
    CHECK_INT(parse("x=(a b);p=1, u=2;foo=bar, i, z=:YWJj:", &u, &i), 0);
    CHECK_INT(u, 2);
    CHECK_INT(i, 1);
    /* i with a non-boolean value is not "true". */
    CHECK_INT(parse("i=1", &u, &i), 0);
    CHECK_INT(i, 0);
}

TEST(parse_rejects_non_dictionaries)
{
    int u, i;
    CHECK_INT(parse("u=1,,i", &u, &i), SLUICE_ERR_INVAL);
    CHECK_INT(parse("u=1,", &u, &i), SLUICE_ERR_INVAL);
    CHECK_INT(parse("U=1", &u, &i), SLUICE_ERR_INVAL);
    CHECK_INT(parse("u=1 i", &u, &i), SLUICE_ERR_INVAL);
    CHECK_INT(parse("u=\"open", &u, &i), SLUICE_ERR_INVAL);
    CHECK_INT(u, 3); /* nothing applied from a bad field */
}

TEST(weight_maps_to_urgency)
{
    CHECK_INT(sl_priority_from_weight(256), 0);
    CHECK_INT(sl_priority_from_weight(220), 1);
    CHECK_INT(sl_priority_from_weight(183), 2);
    CHECK_INT(sl_priority_from_weight(147), 3);
    CHECK_INT(sl_priority_from_weight(110), 4);
    CHECK_INT(sl_priority_from_weight(16), 7);
    CHECK_INT(sl_priority_from_weight(1), 7);
}

/* ---- the scheduler ------------------------------------------------------- */

static sl_sched_node nodes[64];

static sl_sched_node *node(uint32_t id, int u, int inc)
{
    sl_sched_node *n = &nodes[id];
    sl_sched_node_init(n, id);
    n->urgency = (uint8_t)u;
    n->incremental = (uint8_t)inc;
    return n;
}

/* Send one frame from the top each time; the ids in order (0 ends). */
static void order(sl_sched *q, uint32_t *out, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        sl_sched_node *t = sl_sched_top(q);
        out[k] = t ? t->id : 0;
        if (t)
            sl_sched_sent(q, t);
    }
}

TEST(sched_urgency_then_sequential_then_round_robin)
{
    sl_sched q;
    sl_sched_init(&q, 0);
    sl_sched_add(&q, node(9, 3, 1));
    sl_sched_add(&q, node(7, 3, 0));
    sl_sched_add(&q, node(5, 3, 0));
    sl_sched_add(&q, node(11, 3, 1));
    sl_sched_add(&q, node(3, 5, 0));
    sl_sched_add(&q, node(13, 1, 1));
    uint32_t got[4];
    order(&q, got, 2);
    CHECK_INT(got[0], 13); /* urgency 1 first, as long as it is ready */
    CHECK_INT(got[1], 13);
    sl_sched_remove(&q, &nodes[13]);
    order(&q, got, 2);
    CHECK_INT(got[0], 5); /* urgency 3: non-incremental, lowest id, to the end */
    CHECK_INT(got[1], 5);
    sl_sched_remove(&q, &nodes[5]);
    order(&q, got, 1);
    CHECK_INT(got[0], 7);
    sl_sched_remove(&q, &nodes[7]);
    order(&q, got, 4);
    CHECK_INT(got[0], 9); /* incremental ones take turns */
    CHECK_INT(got[1], 11);
    CHECK_INT(got[2], 9);
    CHECK_INT(got[3], 11);
    sl_sched_remove(&q, &nodes[9]);
    sl_sched_remove(&q, &nodes[11]);
    order(&q, got, 1);
    CHECK_INT(got[0], 3);
    sl_sched_remove(&q, &nodes[3]);
    CHECK(sl_sched_top(&q) == NULL);
    CHECK_INT(q.count, 0);
}

TEST(sched_reprioritise_mid_stream)
{
    sl_sched q;
    sl_sched_init(&q, 0);
    sl_sched_add(&q, node(1, 3, 0));
    sl_sched_add(&q, node(3, 3, 0));
    CHECK_INT(sl_sched_top(&q)->id, 1);
    sl_sched_set(&q, &nodes[3], 0, 0);
    CHECK_INT(sl_sched_top(&q)->id, 3);
    sl_sched_set(&q, &nodes[3], 7, 1);
    CHECK_INT(sl_sched_top(&q)->id, 1);
    /* Not queued: the new values wait for it. */
    sl_sched_remove(&q, &nodes[1]);
    sl_sched_set(&q, &nodes[1], 0, 0);
    CHECK_INT(sl_sched_top(&q)->id, 3);
    sl_sched_add(&q, &nodes[1]);
    CHECK_INT(sl_sched_top(&q)->id, 1);
    sl_sched_set(&q, &nodes[1], 9, 0); /* out of range: ignored */
    CHECK_INT(nodes[1].urgency, 0);
}

TEST(sched_flat_is_round_robin)
{
    sl_sched q;
    sl_sched_init(&q, 1);
    sl_sched_add(&q, node(1, 7, 0));
    sl_sched_add(&q, node(3, 0, 0));
    sl_sched_add(&q, node(5, 3, 1));
    uint32_t got[6];
    order(&q, got, 6);
    uint32_t want[6] = {1, 3, 5, 1, 3, 5};
    CHECK_MEM(got, sizeof(got), want, sizeof(want));
}

/* Thousands of streams, added in any order and removed from the middle:
 * the heap gives them back in id order. */
TEST(sched_many_streams_heap_order)
{
    enum { N = 5000 };
    static sl_sched_node many[N];
    sl_sched q;
    sl_sched_init(&q, 0);
    for (uint32_t k = 0; k < N; k++) {
        uint32_t id = (k * 7919u) % N * 2 + 1; /* a permutation of the odd ids */
        sl_sched_node_init(&many[(id - 1) / 2], id);
        sl_sched_add(&q, &many[(id - 1) / 2]);
    }
    for (uint32_t k = 0; k < N; k += 3)
        sl_sched_remove(&q, &many[k]);
    uint32_t last = 0, seen = 0;
    sl_sched_node *t;
    while ((t = sl_sched_top(&q))) {
        CHECK(t->id > last);
        CHECK(((t->id - 1) / 2) % 3 != 0);
        last = t->id;
        seen++;
        sl_sched_remove(&q, t);
    }
    CHECK_INT(seen, N - (N + 2) / 3);
}

/* ---- a server session ---------------------------------------------------- */

static uint8_t body[40000];

/* A server answering every request with a 40000-byte body, windows wide
 * open so that only the scheduler decides the order. */
static rp *server(const sluice_session_options *o)
{
    rp *p = rp_server(o);
    if (!p)
        return NULL;
    uint32_t v[] = {SL_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 24};
    rp_settings(p, v, 1);
    rp_window_update(p, 0, 1u << 24);
    rp_read(p);
    p->respond = 1;
    p->body = body;
    p->body_len = sizeof(body);
    return p;
}

static void request(rp *p, uint32_t id, const char *priority)
{
    sluice_nv nv[5] = {NV(":method", "GET"), NV(":scheme", "https"),
                       NV(":authority", "example.com"), NV(":path", "/")};
    size_t n = 4;
    if (priority)
        nv[n++] = (sluice_nv){(const uint8_t *)"priority", (const uint8_t *)priority, 8,
                              strlen(priority), 0};
    rp_headers(p, id, nv, n, 1);
}

/* Stream ids of the DATA frames of the last read, in order. */
static size_t data_order(const rp *p, uint32_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nf && n < cap; i++)
        if (p->f[i].type == SL_FRAME_DATA)
            out[n++] = p->f[i].stream_id;
    return n;
}

/* The first stream to finish all its DATA, among those that got any. */
static uint32_t first_done(const rp *p)
{
    for (size_t i = 0; i < p->nf; i++)
        if (p->f[i].type == SL_FRAME_DATA && (p->f[i].flags & SL_FLAG_END_STREAM))
            return p->f[i].stream_id;
    return 0;
}

TEST(session_priority_header_orders_data)
{
    rp *p = server(NULL);
    CHECK(p);
    request(p, 1, "u=7");
    request(p, 3, "u=5");
    request(p, 5, "u=0");
    rp_read(p);
    uint32_t ids[32];
    size_t n = data_order(p, ids, 32);
    CHECK_INT(n, 9); /* 3 x 40000 in 16384-byte frames */
    uint32_t want[9] = {5, 5, 5, 3, 3, 3, 1, 1, 1};
    CHECK_MEM(ids, sizeof(want), want, sizeof(want));
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(p->s, 1, &u, &inc), SLUICE_ERR_NOT_FOUND); /* done */
    rp_free(p);
}

TEST(session_incremental_streams_interleave)
{
    rp *p = server(NULL);
    CHECK(p);
    request(p, 1, "u=3, i");
    request(p, 3, "u=3, i");
    rp_read(p);
    uint32_t ids[32];
    size_t n = data_order(p, ids, 32);
    CHECK_INT(n, 6);
    uint32_t want[6] = {1, 3, 1, 3, 1, 3};
    CHECK_MEM(ids, sizeof(want), want, sizeof(want));
    rp_free(p);
}

TEST(session_priorities_off_is_round_robin)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    o.priorities = 0;
    rp *p = server(&o);
    CHECK(p);
    request(p, 1, "u=7");
    request(p, 3, "u=0");
    rp_read(p);
    uint32_t ids[32];
    data_order(p, ids, 32);
    uint32_t want[6] = {1, 3, 1, 3, 1, 3};
    CHECK_MEM(ids, sizeof(want), want, sizeof(want));
    rp_free(p);
}

static long priority_update(rp *p, uint32_t id, const char *field)
{
    uint8_t b[64];
    size_t n = strlen(field);
    rp_put32(b, id);
    memcpy(b + 4, field, n);
    return rp_frame_raw(p, SL_FRAME_PRIORITY_UPDATE, 0, 0, b, 4 + n);
}

TEST(session_priority_update_for_idle_and_open_streams)
{
    rp *p = server(NULL);
    CHECK(p);
    p->body_defer = 1; /* hold the bodies until all signals are in */
    request(p, 1, NULL);
    request(p, 3, NULL);
    CHECK(priority_update(p, 3, "u=1") > 0);      /* open */
    CHECK(priority_update(p, 5, "u=0") > 0);      /* idle: kept for its request */
    CHECK(priority_update(p, 1, "u=9, x") > 0);   /* out of range: ignored */
    CHECK(priority_update(p, 1, "u=1,,") > 0);    /* unparsable: ignored */
    request(p, 5, NULL);
    rp_read(p);
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(p->s, 1, &u, &inc), 0);
    CHECK_INT(u, 3);
    CHECK_INT(sluice_session_get_priority(p->s, 3, &u, &inc), 0);
    CHECK_INT(u, 1);
    CHECK_INT(sluice_session_get_priority(p->s, 5, &u, &inc), 0);
    CHECK_INT(u, 0);
    p->body_defer = 0;
    for (uint32_t id = 1; id <= 5; id += 2)
        sluice_session_resume_data(p->s, id);
    rp_read(p);
    uint32_t ids[32];
    data_order(p, ids, 32);
    uint32_t want[9] = {5, 5, 5, 3, 3, 3, 1, 1, 1};
    CHECK_MEM(ids, sizeof(want), want, sizeof(want));
    CHECK_INT(rp_count(p, SL_FRAME_GOAWAY, RP_ANY), 0);
    rp_free(p);
}

TEST(session_priority_update_stream_0_is_protocol_error)
{
    rp *p = server(NULL);
    CHECK(p);
    priority_update(p, 0, "u=1");
    rp_read(p);
    const rp_frame *g = rp_find(p, SL_FRAME_GOAWAY, RP_ANY);
    CHECK(g != NULL);
    CHECK_INT(g->code, SLUICE_H2_PROTOCOL_ERROR);
    rp_free(p);
}

TEST(session_rfc7540_priority_maps_to_urgency)
{
    rp *p = server(NULL);
    CHECK(p);
    p->body_defer = 1;
    request(p, 1, NULL);
    request(p, 3, NULL);
    CHECK(rp_priority(p, 3, 0, 1, 255) > 0); /* weight 256 */
    CHECK(rp_priority(p, 1, 0, 0, 0) > 0);   /* weight 1 */
    rp_read(p);
    int u = -1;
    CHECK_INT(sluice_session_get_priority(p->s, 3, &u, NULL), 0);
    CHECK_INT(u, 0);
    CHECK_INT(sluice_session_get_priority(p->s, 1, &u, NULL), 0);
    CHECK_INT(u, 7);
    p->body_defer = 0;
    sluice_session_resume_data(p->s, 1);
    sluice_session_resume_data(p->s, 3);
    rp_read(p);
    CHECK_INT(first_done(p), 3);
    rp_free(p);
}

TEST(session_rfc7540_ignored_once_rfc9218_seen)
{
    rp *p = server(NULL);
    CHECK(p);
    p->body_defer = 1;
    request(p, 1, "u=4");
    CHECK(rp_priority(p, 1, 0, 0, 255) > 0); /* would be u=0 */
    rp_read(p);
    int u = -1;
    CHECK_INT(sluice_session_get_priority(p->s, 1, &u, NULL), 0);
    CHECK_INT(u, 4);
    rp_free(p);
}

TEST(session_no_rfc7540_priorities_setting)
{
    rp *p = server(NULL);
    CHECK(p);
    uint32_t v[] = {SL_SETTINGS_NO_RFC7540_PRIORITIES, 1};
    rp_settings(p, v, 1);
    p->body_defer = 1;
    request(p, 1, NULL);
    CHECK(rp_priority(p, 1, 0, 0, 255) > 0);
    rp_read(p);
    int u = -1;
    CHECK_INT(sluice_session_get_priority(p->s, 1, &u, NULL), 0);
    CHECK_INT(u, 3);
    rp_free(p);
}

TEST(session_headers_depending_on_itself_is_stream_error)
{
    rp *p = server(NULL);
    CHECK(p);
    uint8_t block[256], payload[300];
    size_t n = rp_block(p, rp_get, 4, block, sizeof(block));
    rp_put32(payload, 1); /* depends on stream 1: itself */
    payload[4] = 15;
    memcpy(payload + 5, block, n);
    CHECK(rp_frame_raw(p, SL_FRAME_HEADERS, 0x4 | 0x1 | 0x20, 1, payload, 5 + n) > 0);
    rp_read(p);
    const rp_frame *r = rp_find(p, SL_FRAME_RST_STREAM, 1);
    CHECK(r != NULL);
    CHECK_INT(r->code, SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(rp_count(p, SL_FRAME_GOAWAY, RP_ANY), 0);
    /* HPACK stayed in step: the next request, encoded after it, works. */
    request(p, 3, NULL);
    rp_read(p);
    const rp_frame *h = rp_find(p, SL_FRAME_HEADERS, 3);
    CHECK(h != NULL);
    CHECK_STR(h->status, "200");
    rp_free(p);
}

TEST(session_reprioritisation_flood_is_calmed)
{
    rp *p = server(NULL);
    CHECK(p);
    p->body_defer = 1;
    request(p, 1, NULL);
    for (int k = 0; k < 700; k++)
        priority_update(p, 1, k % 2 ? "u=1" : "u=2");
    rp_read(p);
    const rp_frame *g = rp_find(p, SL_FRAME_GOAWAY, RP_ANY);
    CHECK(g != NULL);
    CHECK_INT(g->code, SLUICE_H2_ENHANCE_YOUR_CALM);
    rp_free(p);
}

TEST(session_set_priority_api_and_response_field)
{
    rp *p = server(NULL);
    CHECK(p);
    p->respond = 0;
    request(p, 1, NULL);
    request(p, 3, NULL);
    rp_read(p);
    CHECK_INT(sluice_session_set_priority(p->s, 1, 8, 0), SLUICE_ERR_INVAL);
    CHECK_INT(sluice_session_set_priority(p->s, 99, 1, 0), SLUICE_ERR_NOT_FOUND);
    CHECK_INT(sluice_session_set_priority(p->s, 1, 6, 0), 0);
    /* RFC 9218 §8: the response's own priority field counts too. */
    static const sluice_nv res3[] = {NV(":status", "200"), NV("priority", "u=0")};
    static const sluice_nv res1[] = {NV(":status", "200")};
    sluice_data_source src = {rp_body_read, p};
    CHECK_INT(sluice_session_submit_response(p->s, 1, res1, 1, &src), 0);
    CHECK_INT(sluice_session_submit_response(p->s, 3, res3, 2, &src), 0);
    int u = -1;
    CHECK_INT(sluice_session_get_priority(p->s, 3, &u, NULL), 0);
    CHECK_INT(u, 0);
    rp_read(p);
    CHECK_INT(first_done(p), 3);
    rp_free(p);
}

/* An urgent stream that becomes ready while bulk flows waits at most one
 * frame: output is produced a frame at a time, re-choosing each time. */
TEST(session_urgent_waits_at_most_one_frame)
{
    rp *p = server(NULL);
    CHECK(p);
    static uint8_t big[1 << 20];
    p->body = big;
    p->body_len = sizeof(big);
    request(p, 1, "u=7");
    rp_read_max(p, 3 * 16393); /* bulk is flowing */
    request(p, 3, "u=0");
    rp_read_max(p, 64 * 1024);
    uint32_t ids[8];
    size_t n = data_order(p, ids, 8);
    CHECK(n >= 2);
    CHECK(ids[0] == 3 || ids[1] == 3);
    rp_free(p);
}

/* A host's per-route default must not replace what the client said: every
 * kind of client signal marks the stream, none marks the others. */
TEST(session_priority_signalled_by_each_kind_of_signal)
{
    rp *p = server(NULL);
    CHECK(p);
    p->body_defer = 1;
    request(p, 1, NULL);                      /* nothing said */
    request(p, 3, "u=5");                     /* the field */
    CHECK(priority_update(p, 5, "u=2") > 0);  /* PRIORITY_UPDATE before the request */
    request(p, 5, NULL);
    request(p, 7, NULL);
    CHECK(rp_priority(p, 7, 0, 0, 200) > 0);  /* RFC 7540 PRIORITY on an open stream */
    rp_read(p);
    CHECK_INT(sluice_session_priority_signalled(p->s, 1), 0);
    CHECK_INT(sluice_session_priority_signalled(p->s, 3), 1);
    CHECK_INT(sluice_session_priority_signalled(p->s, 5), 1);
    /* Once the client used RFC 9218, RFC 7540 signals no longer count. */
    CHECK_INT(sluice_session_priority_signalled(p->s, 7), 0);
    CHECK_INT(sluice_session_priority_signalled(p->s, 9), SLUICE_ERR_NOT_FOUND);
    rp_free(p);
}

TEST(session_priority_signalled_by_rfc7540_fields)
{
    rp *p = server(NULL);
    CHECK(p);
    p->body_defer = 1;
    request(p, 1, NULL);
    CHECK(rp_priority(p, 1, 0, 0, 100) > 0);
    rp_read(p);
    CHECK_INT(sluice_session_priority_signalled(p->s, 1), 1);
    rp_free(p);
}
