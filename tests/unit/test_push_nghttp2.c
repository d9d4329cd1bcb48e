/* test_push_nghttp2.c — sluice's server push against libnghttp2's client in
 * memory: promises, pushed responses and bodies as nghttp2 sees them; its
 * SETTINGS_ENABLE_PUSH=0, MAX_CONCURRENT_STREAMS and RST_STREAM CANCEL. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>

#include "t.h"
#include "sluice.h"

#define MAXID 64u
#define MAXPUSH 8
#define PERIOD 251u

/* Stream id's body: byte k is (k + id) % PERIOD; a chunk is one slice. */
static uint8_t pat[PERIOD + 65536];

static void pat_init(void)
{
    for (size_t i = 0; i < sizeof(pat); i++)
        pat[i] = (uint8_t)(i % PERIOD);
}

static sluice_nv snv(const char *n, const char *v)
{
    sluice_nv nv = {(const uint8_t *)n, (const uint8_t *)v, strlen(n), strlen(v), 0};
    return nv;
}

static nghttp2_nv nnv(const char *n, const char *v)
{
    nghttp2_nv nv = {(uint8_t *)(uintptr_t)n, (uint8_t *)(uintptr_t)v, strlen(n), strlen(v),
                     NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* ---- the sluice server: pushes its list on every request, then answers -------------- */

typedef struct srv {
    sluice_session *s;
    const char *push_paths[MAXPUSH];
    size_t npush;
    const char *big_header;        /* added to the first promise when set */
    size_t main_len, push_len;     /* body bytes of each response */
    int push_rv[MAXPUSH];          /* of the last request's pushes */
    uint32_t pushed[MAXPUSH];
    size_t len[MAXID], off[MAXID];
    uint32_t close_code[MAXID];
    int closed[MAXID];
    int fail;
} srv;

static long srv_read(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                     uint32_t *flags, void *ud)
{
    (void)s;
    srv *v = ud;
    size_t n = v->len[id] - v->off[id];
    if (n > max)
        n = max;
    if (n > 65536)
        n = 65536;
    *data = pat + (v->off[id] + id) % PERIOD;
    v->off[id] += n;
    if (v->off[id] == v->len[id])
        *flags |= SLUICE_DATA_EOF;
    return (long)n;
}

static int srv_respond(srv *v, uint32_t id, size_t len)
{
    static const sluice_nv res[] = {
        {(const uint8_t *)":status", (const uint8_t *)"200", 7, 3, 0},
        {(const uint8_t *)"cache-control", (const uint8_t *)"max-age=60", 13, 10, 0}};
    sluice_data_source src = {srv_read, v};
    v->len[id] = len;
    v->off[id] = 0;
    return sluice_session_submit_response(v->s, id, res, 2, len ? &src : NULL);
}

static int srv_on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv,
                          size_t n, int end_stream, void *ud)
{
    (void)s; (void)nv; (void)n; (void)end_stream;
    srv *v = ud;
    if (kind != SLUICE_HEADERS_REQUEST || id >= MAXID) {
        v->fail = 1;
        return 0;
    }
    for (size_t i = 0; i < v->npush; i++) {
        sluice_nv req[] = {snv(":method", "GET"), snv(":scheme", "https"),
                           snv(":authority", "example.com"), snv(":path", v->push_paths[i]),
                           snv("accept-encoding", "gzip"),
                           snv("x-big", i == 0 && v->big_header ? v->big_header : "")};
        uint32_t pid = 0;
        v->push_rv[i] = sluice_session_submit_push(s, id, req, 6, &pid);
        v->pushed[i] = pid;
        if (v->push_rv[i] == 0 && (pid >= MAXID || srv_respond(v, pid, v->push_len) != 0))
            v->fail = 1;
    }
    return srv_respond(v, id, v->main_len);
}

static int srv_on_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    (void)s;
    srv *v = ud;
    if (id < MAXID) {
        v->closed[id]++;
        v->close_code[id] = code;
    }
    return 0;
}

/* ---- the nghttp2 client ---------------------------------------------------------- */

typedef struct cli {
    nghttp2_session *ng;
    int cancel_pushes;             /* RST_STREAM CANCEL each promise at once */
    int promises;
    int32_t promised[MAXPUSH], assoc[MAXPUSH];
    char promise_fields[MAXPUSH][256];
    size_t big_len;                /* x-big value length seen in a promise */
    int status[MAXID];
    size_t rx[MAXID];
    int rx_bad, ended[MAXID], closed[MAXID];
    uint32_t close_code[MAXID];
    int goaway_sent, goaway_recv, rst_sent;
} cli;

static int cli_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                         size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags,
                         void *ud)
{
    (void)ng; (void)flags;
    cli *c = ud;
    if (f->hd.type == NGHTTP2_PUSH_PROMISE && c->promises < MAXPUSH) {
        if (nlen == 5 && memcmp(name, "x-big", 5) == 0) {
            if (vlen > 0)
                c->big_len = vlen;
            return 0;
        }
        char *out = c->promise_fields[c->promises];
        size_t len = strlen(out);
        snprintf(out + len, 256 - len, "%.*s=%.*s;", (int)nlen, (const char *)name, (int)vlen,
                 (const char *)value);
    } else if (f->hd.type == NGHTTP2_HEADERS && nlen == 7 && memcmp(name, ":status", 7) == 0 &&
               f->hd.stream_id < (int32_t)MAXID) {
        c->status[f->hd.stream_id] = atoi((const char *)value); /* followed by more bytes */
    }
    return 0;
}

static int cli_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    cli *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY)
        c->goaway_recv++;
    if (f->hd.type == NGHTTP2_PUSH_PROMISE && c->promises < MAXPUSH) {
        c->promised[c->promises] = f->push_promise.promised_stream_id;
        c->assoc[c->promises++] = f->hd.stream_id;
        if (c->cancel_pushes)
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->push_promise.promised_stream_id,
                                      NGHTTP2_CANCEL);
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && f->hd.stream_id < (int32_t)MAXID)
        c->ended[f->hd.stream_id] = 1;
    return 0;
}

static int cli_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d,
                       size_t len, void *ud)
{
    (void)ng; (void)flags;
    cli *c = ud;
    if (id < 0 || id >= (int32_t)MAXID) {
        c->rx_bad = 1;
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        if (d[i] != (uint8_t)((c->rx[id] + i + (size_t)id) % PERIOD))
            c->rx_bad = 1;
    c->rx[id] += len;
    return 0;
}

static int cli_on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    (void)ng;
    cli *c = ud;
    if (id >= 0 && id < (int32_t)MAXID) {
        c->closed[id]++;
        c->close_code[id] = code;
    }
    return 0;
}

static int cli_on_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ng;
    cli *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY)
        c->goaway_sent++;
    if (f->hd.type == NGHTTP2_RST_STREAM)
        c->rst_sent++;
    return 0;
}

/* ---- the connection ---------------------------------------------------------------- */

typedef struct conn {
    srv sv;
    cli cl;
    long err;
} conn;

static conn *conn_new(const nghttp2_settings_entry *iv, size_t niv)
{
    pat_init();
    conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    sluice_session_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.struct_size = sizeof(cb);
    cb.on_headers = srv_on_headers;
    cb.on_stream_close = srv_on_close;
    int rv = sluice_session_new(&c->sv.s, SLUICE_ROLE_SERVER, &cb, &c->sv, NULL, NULL, 0);
    nghttp2_session_callbacks *ncb;
    nghttp2_session_callbacks_new(&ncb);
    nghttp2_session_callbacks_set_on_header_callback(ncb, cli_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(ncb, cli_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(ncb, cli_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(ncb, cli_on_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(ncb, cli_on_send);
    int nrv = nghttp2_session_client_new(&c->cl.ng, ncb, &c->cl);
    nghttp2_session_callbacks_del(ncb);
    if (nrv == 0)
        nrv = nghttp2_submit_settings(c->cl.ng, NGHTTP2_FLAG_NONE, iv, niv);
    if (rv != 0 || nrv != 0) {
        fprintf(stderr, "conn_new: sluice %d nghttp2 %d\n", rv, nrv);
        if (rv == 0)
            sluice_session_free(c->sv.s);
        if (nrv == 0)
            nghttp2_session_del(c->cl.ng);
        free(c);
        return NULL;
    }
    return c;
}

static void conn_free(conn *c)
{
    if (!c)
        return;
    sluice_session_free(c->sv.s);
    nghttp2_session_del(c->cl.ng);
    free(c);
}

/* Move bytes both ways until neither side has anything to say: 0, or -1
 * with c->err set. */
static int run(conn *c)
{
    for (int round = 0; round < 10000; round++) {
        long moved = 0;
        const uint8_t *p;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(c->cl.ng, &p)) > 0) {
            long rv = sluice_session_recv(c->sv.s, p, (size_t)n, 0);
            if (rv != n) {
                c->err = rv < 0 ? rv : -1;
                return -1;
            }
            moved += n;
        }
        if (n < 0) {
            c->err = (long)n;
            return -1;
        }
        sluice_iovec iov[16];
        int k;
        while ((k = sluice_session_output(c->sv.s, iov, 16, 65536, 0)) > 0) {
            size_t sum = 0;
            for (int i = 0; i < k; i++) {
                ssize_t r = nghttp2_session_mem_recv(c->cl.ng, iov[i].base, iov[i].len);
                if (r != (ssize_t)iov[i].len) {
                    c->err = r < 0 ? (long)r : -1;
                    return -1;
                }
                sum += iov[i].len;
            }
            sluice_session_output_done(c->sv.s, sum);
            moved += (long)sum;
        }
        if (k < 0) {
            c->err = k;
            return -1;
        }
        if (moved == 0)
            return 0;
    }
    c->err = -2;
    return -1;
}

static int32_t get(conn *c, const char *path)
{
    nghttp2_nv req[] = {nnv(":method", "GET"), nnv(":scheme", "https"),
                        nnv(":authority", "example.com"), nnv(":path", path),
                        nnv("accept-encoding", "gzip")};
    return nghttp2_submit_request(c->cl.ng, NULL, req, 5, NULL, NULL);
}

static uint64_t pushes_of(const conn *c)
{
    sluice_session_stats st;
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    sluice_session_get_stats(c->sv.s, &st);
    return st.pushes;
}

/* Both sides healthy: no error, no GOAWAY, nothing reset by the client
 * unless expected, bodies intact. */
#define CHECK_CLEAN(c, rsts)                                                   \
    do {                                                                       \
        CHECK_INT((c)->err, 0);                                                \
        CHECK_INT((c)->cl.goaway_sent, 0);                                     \
        CHECK_INT((c)->cl.goaway_recv, 0);                                     \
        CHECK_INT((c)->cl.rst_sent, (rsts));                                   \
        CHECK_INT((c)->cl.rx_bad, 0);                                          \
        CHECK_INT((c)->sv.fail, 0);                                            \
    } while (0)

/* A response the client got whole: status 200, len bytes, END_STREAM. */
#define CHECK_GOT(c, id, len)                                                  \
    do {                                                                       \
        CHECK_INT((c)->cl.status[id], 200);                                    \
        CHECK_INT((c)->cl.rx[id], (len));                                      \
        CHECK_INT((c)->cl.ended[id], 1);                                       \
        CHECK_INT((c)->cl.closed[id], 1);                                      \
        CHECK_INT((c)->cl.close_code[id], NGHTTP2_NO_ERROR);                   \
        CHECK_INT((c)->sv.closed[id], 1);                                      \
        CHECK_INT((c)->sv.close_code[id], SLUICE_H2_NO_ERROR);                 \
    } while (0)

/* ==== tests ============================================================================= */

TEST(promises_and_pushed_bodies_reach_nghttp2)
{
    static char big[20001];
    memset(big, 'b', sizeof(big) - 1);
    conn *c = conn_new(NULL, 0);
    CHECK(c);
    c->sv.push_paths[0] = "/style.css";
    c->sv.push_paths[1] = "/app.js";
    c->sv.push_paths[2] = "/font.woff2";
    c->sv.npush = 3;
    c->sv.big_header = big; /* the first promise needs CONTINUATION */
    c->sv.main_len = 3000;
    c->sv.push_len = 150000; /* beyond nghttp2's 65535 windows: WINDOW_UPDATEs */
    CHECK_INT(get(c, "/"), 1);
    CHECK_INT(run(c), 0);
    CHECK_CLEAN(c, 0);
    CHECK_INT(c->sv.push_rv[0], 0);
    CHECK_INT(c->sv.push_rv[1], 0);
    CHECK_INT(c->sv.push_rv[2], 0);
    CHECK_INT(c->cl.promises, 3);
    CHECK_INT(c->cl.promised[0], 2);
    CHECK_INT(c->cl.promised[1], 4);
    CHECK_INT(c->cl.promised[2], 6);
    CHECK_INT(c->cl.assoc[0], 1);
    CHECK_INT(c->cl.assoc[2], 1);
    CHECK_STR(c->cl.promise_fields[0], ":method=GET;:scheme=https;:authority=example.com;"
                                       ":path=/style.css;accept-encoding=gzip;");
    CHECK_STR(c->cl.promise_fields[2], ":method=GET;:scheme=https;:authority=example.com;"
                                       ":path=/font.woff2;accept-encoding=gzip;");
    CHECK_INT(c->cl.big_len, 20000);
    CHECK_GOT(c, 1, 3000);
    CHECK_GOT(c, 2, 150000);
    CHECK_GOT(c, 4, 150000);
    CHECK_GOT(c, 6, 150000);
    CHECK_INT(pushes_of(c), 3);
    /* HPACK stays in step over promises: a second request, more pushes. */
    c->sv.push_paths[0] = "/next.css";
    c->sv.npush = 1;
    c->sv.big_header = NULL;
    CHECK_INT(get(c, "/page2"), 3);
    CHECK_INT(run(c), 0);
    CHECK_CLEAN(c, 0);
    CHECK_INT(c->cl.promises, 4);
    CHECK_INT(c->cl.promised[3], 8);
    CHECK_INT(c->cl.assoc[3], 3);
    CHECK_STR(c->cl.promise_fields[3], ":method=GET;:scheme=https;:authority=example.com;"
                                       ":path=/next.css;accept-encoding=gzip;");
    CHECK_GOT(c, 3, 3000);
    CHECK_GOT(c, 8, 150000);
    CHECK_INT(pushes_of(c), 4);
    conn_free(c);
}

TEST(enable_push_0_client_gets_no_promise)
{
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    conn *c = conn_new(iv, 1);
    CHECK(c);
    c->sv.push_paths[0] = "/style.css";
    c->sv.npush = 1;
    c->sv.main_len = 3000;
    c->sv.push_len = 1000;
    CHECK_INT(get(c, "/"), 1);
    CHECK_INT(run(c), 0);
    CHECK_CLEAN(c, 0);
    CHECK_INT(c->sv.push_rv[0], SLUICE_ERR_STATE);
    CHECK_INT(sluice_session_push_allowed(c->sv.s), 0);
    CHECK_INT(c->cl.promises, 0);
    CHECK_GOT(c, 1, 3000);
    CHECK_INT(pushes_of(c), 0);
    conn_free(c);
}

/* nghttp2 refuses a pushed response beyond its MAX_CONCURRENT_STREAMS
 * (REFUSED_STREAM): promises count toward it, so none is. */
TEST(client_concurrency_limit_respected)
{
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1}};
    conn *c = conn_new(iv, 1);
    CHECK(c);
    c->sv.push_paths[0] = "/a.css";
    c->sv.push_paths[1] = "/b.css";
    c->sv.npush = 2;
    c->sv.main_len = 100;
    c->sv.push_len = 100000;
    CHECK_INT(get(c, "/"), 1);
    CHECK_INT(run(c), 0);
    CHECK_CLEAN(c, 0);
    CHECK_INT(c->sv.push_rv[0], 0);
    CHECK_INT(c->sv.push_rv[1], SLUICE_ERR_LIMIT);
    CHECK_INT(c->cl.promises, 1);
    CHECK_GOT(c, 2, 100000);
    /* That push is done: the next request may push again. */
    c->sv.push_paths[0] = "/b.css";
    c->sv.npush = 1;
    CHECK_INT(get(c, "/2"), 3);
    CHECK_INT(run(c), 0);
    CHECK_CLEAN(c, 0);
    CHECK_INT(c->sv.push_rv[0], 0);
    CHECK_INT(c->cl.promised[1], 4);
    CHECK_GOT(c, 4, 100000);
    conn_free(c);
}

/* The client cancels each promise as it arrives: the pushed stream closes
 * (CANCEL) with no more than the first window of it sent. */
TEST(client_cancels_push)
{
    conn *c = conn_new(NULL, 0);
    CHECK(c);
    c->cl.cancel_pushes = 1;
    c->sv.push_paths[0] = "/huge.bin";
    c->sv.npush = 1;
    c->sv.main_len = 5000;
    c->sv.push_len = 1u << 20;
    CHECK_INT(get(c, "/"), 1);
    CHECK_INT(run(c), 0);
    CHECK_CLEAN(c, 1);
    CHECK_INT(c->sv.push_rv[0], 0);
    CHECK_INT(c->cl.promises, 1);
    CHECK_INT(c->sv.closed[2], 1);
    CHECK_INT(c->sv.close_code[2], SLUICE_H2_CANCEL);
    CHECK(c->sv.off[2] <= 65535); /* the stream window nghttp2 never raised */
    CHECK_INT(c->cl.ended[2], 0);
    CHECK_GOT(c, 1, 5000);
    /* The connection goes on, and may push that resource again. */
    c->cl.cancel_pushes = 0;
    c->sv.push_len = 1000;
    CHECK_INT(get(c, "/again"), 3);
    CHECK_INT(run(c), 0);
    CHECK_CLEAN(c, 1);
    CHECK_INT(c->sv.push_rv[0], 0);
    CHECK_INT(c->cl.promised[1], 4);
    CHECK_GOT(c, 4, 1000);
    conn_free(c);
}
