/* test_h1.c — the HTTP/1.1 codec: parsing in every split, framing and
 * smuggling rules, limits, keep-alive, and the writers' exact bytes. */
#include "t.h"
#include "h1.h"

/* ---- a transcript of everything the parser reports ---------------------
 * Each input is parsed all at once, one byte at a time and in 7-byte
 * pieces; the three transcripts must be identical to the expected one. */

struct tr {
    char s[8192];
    size_t n;
    int in_data;
};

static void tr_put(struct tr *t, const void *p, size_t n)
{
    if (n > sizeof(t->s) - 1 - t->n)
        n = sizeof(t->s) - 1 - t->n;
    memcpy(t->s + t->n, p, n);
    t->n += n;
    t->s[t->n] = 0;
}

static void tr_str(struct tr *t, const char *s)
{
    tr_put(t, s, strlen(s));
}

/* label then a number, e.g. tr_num(t, " cl=", 5) */
static void tr_num(struct tr *t, const char *label, long long v)
{
    char tmp[64];
    int k = snprintf(tmp, sizeof(tmp), "%s%lld", label, v);
    tr_put(t, tmp, (size_t)k);
}

static void tr_end_data(struct tr *t)
{
    if (t->in_data)
        tr_str(t, "]\n");
    t->in_data = 0;
}

static void tr_fields(struct tr *t, const sluice_nv *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tr_str(t, "  ");
        tr_put(t, f[i].name, f[i].name_len);
        tr_str(t, ": ");
        tr_put(t, f[i].value, f[i].value_len);
        tr_str(t, "\n");
    }
}

static const char *body_name(int b)
{
    static const char *const names[] = {"none", "length", "chunked", "close", "tunnel"};
    return b >= 0 && b <= SL_H1_BODY_TUNNEL ? names[b] : "?";
}

static void tr_head(struct tr *t, const sl_h1_head *h, int response)
{
    if (response) {
        tr_num(t, "H ", h->status);
        tr_str(t, " [");
        tr_put(t, h->reason, h->reason_len);
        tr_str(t, "]");
    } else {
        tr_str(t, "H ");
        tr_put(t, h->method, h->method_len);
        tr_str(t, " ");
        tr_put(t, h->target, h->target_len);
    }
    tr_num(t, " ", h->version);
    tr_str(t, " ");
    tr_str(t, body_name(h->body));
    tr_num(t, " cl=", (long long)h->content_length);
    tr_num(t, " ka=", h->keep_alive);
    if (!response) {
        tr_num(t, " exp=", h->expect_continue);
        tr_num(t, " up=", h->upgrade);
        if (h->host) {
            tr_str(t, " host=");
            tr_put(t, h->host, h->host_len);
        }
    }
    tr_str(t, "\n");
    tr_fields(t, h->fields, h->nfields);
}

static void tr_event(struct tr *t, const sl_h1_event *ev, int response)
{
    if (ev->type == SL_H1_EV_NONE)
        return;
    if (ev->type != SL_H1_EV_DATA)
        tr_end_data(t);
    switch (ev->type) {
    case SL_H1_EV_HEAD: tr_head(t, ev->head, response); break;
    case SL_H1_EV_DATA:
        if (!t->in_data)
            tr_str(t, "D[");
        t->in_data = 1;
        tr_put(t, ev->data, ev->len);
        break;
    case SL_H1_EV_TRAILERS:
        tr_str(t, "T\n");
        tr_fields(t, ev->fields, ev->nfields);
        break;
    case SL_H1_EV_COMPLETE: tr_str(t, "C\n"); break;
    }
}

struct setup {
    int response;
    const char *method; /* response mode: the request's method */
    const sl_h1_options *opt;
    int eof;            /* report EOF after the input */
};

/* Feed in[0..len) in pieces of `step` bytes; returns the first error. */
static int transcript(const struct setup *su, const char *in, size_t len,
                      size_t step, struct tr *t)
{
    sl_h1_parser p;
    sl_h1_event ev;
    int rc = 0;
    memset(t, 0, sizeof(*t));
    sl_h1_parser_init(&p, su->response, su->opt, NULL);
    if (su->method)
        sl_h1_parser_set_method(&p, (const uint8_t *)su->method, strlen(su->method));
    for (size_t off = 0; off < len && rc == 0;) {
        size_t end = len - off < step ? len : off + step;
        do {
            size_t used = 0;
            rc = sl_h1_parse(&p, (const uint8_t *)in + off, end - off, &used, &ev);
            off += used;
            if (rc == 0)
                tr_event(t, &ev, su->response);
        } while (rc == 0 && ev.type != SL_H1_EV_NONE);
        if (rc == 0 && off != end)
            tr_str(t, "!unconsumed\n");
    }
    if (rc == 0) {
        sl_h1_event last;
        do { /* drain a COMPLETE that needs no input */
            size_t used = 0;
            rc = sl_h1_parse(&p, NULL, 0, &used, &last);
            if (rc == 0)
                tr_event(t, &last, su->response);
        } while (rc == 0 && last.type != SL_H1_EV_NONE);
    }
    if (rc == 0 && su->eof) {
        rc = sl_h1_parse_eof(&p, &ev);
        if (rc == 0)
            tr_event(t, &ev, su->response);
    }
    tr_end_data(t);
    if (rc) {
        tr_num(t, "E", rc);
        tr_str(t, "\n");
    }
    sl_h1_parser_free(&p);
    return rc;
}

/* All splits give `want`; reports the first that does not. */
static int same_in_every_split(const struct setup *su, const char *in, size_t len,
                               const char *want)
{
    static const size_t steps[] = {SIZE_MAX, 1, 7};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        static struct tr t;
        transcript(su, in, len, steps[i], &t);
        if (strcmp(t.s, want) != 0) {
            T_FAIL("step %zu:\n--- got\n%s--- want\n%s", steps[i], t.s, want);
            return 0;
        }
    }
    return 1;
}

static const struct setup REQ = {0, NULL, NULL, 0};

#define PARSES(su, in, want) CHECK(same_in_every_split((su), (in), sizeof(in) - 1, (want)))

/* The error a request gives (the same in every split, or 1). */
static int req_error(const char *in, size_t len)
{
    static struct tr a, b;
    int e1 = transcript(&REQ, in, len, SIZE_MAX, &a);
    int e2 = transcript(&REQ, in, len, 1, &b);
    if (e1 != e2 || strcmp(a.s, b.s) != 0)
        return 1;
    return e1;
}

#define REQ_ERR(in, err) CHECK_INT(req_error((in), sizeof(in) - 1), (err))

/* ---- requests ---------------------------------------------------------- */

TEST(simple_get)
{
    PARSES(&REQ,
           "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n"
           "User-Agent: t/1\r\nAccept:*/*  \r\n\r\n",
           "H GET /index.html?q=1 11 none cl=0 ka=1 exp=0 up=0 host=example.com\n"
           "  Host: example.com\n  User-Agent: t/1\n  Accept: */*\n"
           "C\n");
}

TEST(post_content_length)
{
    PARSES(&REQ,
           "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"
           "hello world",
           "H POST /form 11 length cl=11 ka=1 exp=0 up=0 host=a\n"
           "  Host: a\n  Content-Length: 11\n"
           "D[hello world]\nC\n");
}

TEST(content_length_zero_completes_at_once)
{
    PARSES(&REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
           "H POST / 11 length cl=0 ka=1 exp=0 up=0 host=a\n"
           "  Host: a\n  Content-Length: 0\nC\n");
}

TEST(chunked_with_extensions_and_trailers)
{
    PARSES(&REQ,
           "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5;name=val\r\nhello\r\n"
           "6 ; a = \"q\\\"x;y\" ;b\r\n world\r\n"
           "A\r\n0123456789\r\n"
           "0;last\r\nX-Sum: 1\r\nX-Other:  2 \r\n\r\n",
           "H POST /up 11 chunked cl=0 ka=1 exp=0 up=0 host=a\n"
           "  Host: a\n  Transfer-Encoding: chunked\n"
           "D[hello world0123456789]\n"
           "T\n  X-Sum: 1\n  X-Other: 2\n"
           "C\n");
}

TEST(chunked_without_trailers)
{
    PARSES(&REQ,
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
           "3\r\nabc\r\n0\r\n\r\n",
           "H POST / 11 chunked cl=0 ka=1 exp=0 up=0 host=a\n"
           "  Host: a\n  Transfer-Encoding: Chunked\nD[abc]\nC\n");
}

TEST(pipelined_requests)
{
    static const char in[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                             "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
                             "GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    PARSES(&REQ, in,
           "H GET /a 11 none cl=0 ka=1 exp=0 up=0 host=a\n  Host: a\nC\n"
           "H POST /b 11 length cl=2 ka=1 exp=0 up=0 host=a\n"
           "  Host: a\n  Content-Length: 2\nD[hi]\nC\n"
           "H GET /c 11 none cl=0 ka=0 exp=0 up=0 host=a\n"
           "  Host: a\n  Connection: close\nC\n");

    /* COMPLETE leaves the next message's bytes with the caller. */
    sl_h1_parser p;
    sl_h1_event ev;
    size_t used = 0, first = sizeof("GET /a HTTP/1.1\r\nHost: a\r\n\r\n") - 1;
    sl_h1_parser_init(&p, 0, NULL, NULL);
    CHECK_INT(sl_h1_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &ev), 0);
    CHECK_INT(ev.type, SL_H1_EV_HEAD);
    CHECK_INT(used, first);
    CHECK_INT(sl_h1_parse(&p, (const uint8_t *)in + first, sizeof(in) - 1 - first,
                          &used, &ev), 0);
    CHECK_INT(ev.type, SL_H1_EV_COMPLETE);
    CHECK_INT(used, 0);
    sl_h1_parser_free(&p);
}

TEST(every_split_gives_the_same_events)
{
    static const char in[] =
        "\r\nPUT /x HTTP/1.1\r\nHost: h:8080\r\nTransfer-Encoding: chunked\r\n"
        "Expect: 100-continue\r\n\r\n"
        "1f;e=\"v\"\r\n0123456789abcdef0123456789abcde\r\n0\r\nT: v\r\n\r\n"
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    struct tr whole;
    CHECK_INT(transcript(&REQ, in, sizeof(in) - 1, SIZE_MAX, &whole), 0);
    CHECK(strstr(whole.s, "D[0123456789abcdef0123456789abcde]\nT\n  T: v\nC\n"));
    for (size_t step = 1; step < sizeof(in); step++) {
        static struct tr t;
        CHECK_INT(transcript(&REQ, in, sizeof(in) - 1, step, &t), 0);
        CHECK_STR(t.s, whole.s);
    }
}

TEST(leading_empty_lines_and_bare_lf)
{
    PARSES(&REQ, "\r\n\nGET / HTTP/1.1\nHost: a\n\n",
           "H GET / 11 none cl=0 ka=1 exp=0 up=0 host=a\n  Host: a\nC\n");
    sl_h1_options o;
    sl_h1_options_init(&o);
    o.allow_bare_lf = 0;
    struct setup strict = {0, NULL, &o, 0};
    PARSES(&strict, "GET / HTTP/1.1\r\nHost: a\n\r\n", "E-308\n");
}

TEST(expect_and_upgrade_reported)
{
    PARSES(&REQ,
           "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
           "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
           "H GET / 11 none cl=0 ka=1 exp=1 up=1 host=a\n"
           "  Host: a\n  Expect: 100-Continue\n"
           "  Connection: Upgrade, HTTP2-Settings\n  Upgrade: h2c\nC\n");
    /* RFC 9110 §10.1.1: ignore the expectation in an HTTP/1.0 request;
     * Upgrade without the connection option is no upgrade. */
    PARSES(&REQ, "GET / HTTP/1.0\r\nExpect: 100-continue\r\nUpgrade: h2c\r\n\r\n",
           "H GET / 10 none cl=0 ka=0 exp=0 up=0\n"
           "  Expect: 100-continue\n  Upgrade: h2c\nC\n");
}

TEST(keep_alive_rules)
{
    PARSES(&REQ, "GET / HTTP/1.0\r\n\r\n", "H GET / 10 none cl=0 ka=0 exp=0 up=0\nC\n");
    PARSES(&REQ, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
           "H GET / 10 none cl=0 ka=1 exp=0 up=0\n  Connection: Keep-Alive\nC\n");
    PARSES(&REQ, "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
           "H GET / 10 none cl=0 ka=0 exp=0 up=0\n  Connection: keep-alive, close\nC\n");
    PARSES(&REQ, "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n",
           "H GET / 11 none cl=0 ka=0 exp=0 up=0 host=a\n"
           "  Host: a\n  Connection: foo, CLOSE\nC\n");
}

TEST(identical_content_lengths_accepted)
{
    PARSES(&REQ,
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3 ,\t3\r\n"
           "Content-Length: 003\r\n\r\nabc",
           "H POST / 11 length cl=3 ka=1 exp=0 up=0 host=a\n"
           "  Host: a\n  Content-Length: 3 ,\t3\n  Content-Length: 003\n"
           "D[abc]\nC\n");
}

/* ---- request errors ---------------------------------------------------- */

TEST(smuggling_cl_and_te)
{
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n", SL_H1_ERR_CL_AND_TE);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Content-Length: 5\r\n\r\n", SL_H1_ERR_CL_AND_TE);
}

TEST(smuggling_content_length)
{
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            "Content-Length: 6\r\n\r\n", SL_H1_ERR_CL_MISMATCH);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            SL_H1_ERR_CL_MISMATCH);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            SL_H1_ERR_CONTENT_LENGTH);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
            SL_H1_ERR_CONTENT_LENGTH);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n",
            SL_H1_ERR_CONTENT_LENGTH);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
            SL_H1_ERR_CONTENT_LENGTH);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
            SL_H1_ERR_CONTENT_LENGTH);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
            SL_H1_ERR_CONTENT_LENGTH);
    /* 2^63 overflows; 2^63-1 is the largest length taken. */
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
            SL_H1_ERR_CONTENT_LENGTH);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            SL_H1_ERR_CONTENT_LENGTH);
    PARSES(&REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
           "H POST / 11 length cl=9223372036854775807 ka=1 exp=0 up=0 host=a\n"
           "  Host: a\n  Content-Length: 9223372036854775807\n");
}

TEST(smuggling_transfer_encoding)
{
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            SL_H1_ERR_TE_NOT_LAST);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: gzip\r\n\r\n", SL_H1_ERR_TE_NOT_LAST);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            SL_H1_ERR_TE_UNSUPPORTED);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            SL_H1_ERR_TE_UNSUPPORTED);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            SL_H1_ERR_TE_CHUNKED_TWICE);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n", SL_H1_ERR_TE_CHUNKED_TWICE);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
            SL_H1_ERR_TE_INVALID);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked x\r\n\r\n",
            SL_H1_ERR_TE_INVALID);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip x\r\n\r\n",
            SL_H1_ERR_TE_INVALID);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip;level=1\r\n\r\n",
            SL_H1_ERR_TE_UNSUPPORTED);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , \r\n\r\n",
            SL_H1_ERR_TE_INVALID);
    REQ_ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            SL_H1_ERR_TE_HTTP10);
}

TEST(smuggling_chunk_size)
{
#define CHUNKED "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    REQ_ERR(CHUNKED "0x5\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_SIZE);
    REQ_ERR(CHUNKED "-5\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_SIZE);
    REQ_ERR(CHUNKED "+5\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_SIZE);
    REQ_ERR(CHUNKED "\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_SIZE);
    REQ_ERR(CHUNKED "5x\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_SIZE);
    REQ_ERR(CHUNKED "5 x\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_SIZE);
    REQ_ERR(CHUNKED "5 \r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_SIZE);
    REQ_ERR(CHUNKED "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_OVERFLOW);
    REQ_ERR(CHUNKED "8000000000000000\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_OVERFLOW);
    REQ_ERR(CHUNKED "5\nhello\r\n0\r\n\r\n", SL_H1_ERR_BARE_LF);
    REQ_ERR(CHUNKED "5\r\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_BARE_CR);
    REQ_ERR(CHUNKED "5\r\nhelloX\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_DATA_END);
    REQ_ERR(CHUNKED "5\r\nhello\n0\r\n\r\n", SL_H1_ERR_BARE_LF);
    REQ_ERR(CHUNKED "5\r\nhello\r0\r\n\r\n", SL_H1_ERR_BARE_CR);
    REQ_ERR(CHUNKED "5\r\nhello\r\n0\r\n\n", SL_H1_ERR_BARE_LF);
    REQ_ERR(CHUNKED "5\r\nhello\r\n0\r\nT: v\n\r\n", SL_H1_ERR_BARE_LF);
}

TEST(chunk_extensions_malformed)
{
    REQ_ERR(CHUNKED "5;\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_EXT);
    REQ_ERR(CHUNKED "5;a=\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_EXT);
    REQ_ERR(CHUNKED "5;a=\"x\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_EXT);
    REQ_ERR(CHUNKED "5;a=\"x\\\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_EXT);
    REQ_ERR(CHUNKED "5;a=b c\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_EXT);
    REQ_ERR(CHUNKED "5;a \r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_EXT);
    REQ_ERR(CHUNKED "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_EXT);
    REQ_ERR(CHUNKED "5;a=b\r\nhello\r\n0\r\n\r\n", 0);
    REQ_ERR(CHUNKED "5;a=\"\"\r\nhello\r\n0\r\n\r\n", 0);
}

TEST(field_line_errors)
{
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", SL_H1_ERR_BARE_CR);
    REQ_ERR("GET / HTTP/1.1\rHost: a\r\n\r\n", SL_H1_ERR_BARE_CR);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", SL_H1_ERR_OBS_FOLD);
    REQ_ERR("GET / HTTP/1.1\r\n Host: a\r\n\r\n", SL_H1_ERR_OBS_FOLD);
    REQ_ERR("GET / HTTP/1.1\r\nHost : a\r\n\r\n", SL_H1_ERR_HEADER_SPACE);
    REQ_ERR("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", SL_H1_ERR_HEADER_SPACE);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", SL_H1_ERR_HEADER_VALUE);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", SL_H1_ERR_HEADER_VALUE);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n", SL_H1_ERR_HEADER_VALUE);
    REQ_ERR("GET / HTTP/1.1\r\nHo@st: a\r\n\r\n", SL_H1_ERR_HEADER_NAME);
    REQ_ERR("GET / HTTP/1.1\r\n: a\r\n\r\n", SL_H1_ERR_HEADER_NAME);
    REQ_ERR("GET / HTTP/1.1\r\nHost\r\n\r\n", SL_H1_ERR_NO_COLON);
    /* Tabs and obs-text are fine inside a value. */
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xff\r\n\r\n", 0);
}

TEST(request_line_errors)
{
    REQ_ERR("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_REQUEST_LINE);
    REQ_ERR("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_REQUEST_LINE);
    REQ_ERR("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", SL_H1_ERR_REQUEST_LINE);
    REQ_ERR(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_REQUEST_LINE);
    REQ_ERR("GET /\r\n\r\n", SL_H1_ERR_REQUEST_LINE);
    REQ_ERR("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_REQUEST_LINE);
    REQ_ERR("G\tT / HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_METHOD);
    REQ_ERR("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_METHOD);
    REQ_ERR("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_TARGET);
    REQ_ERR("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_TARGET);
    REQ_ERR("GET / http/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_VERSION);
    REQ_ERR("GET / HTTP/1.10\r\nHost: a\r\n\r\n", SL_H1_ERR_VERSION);
    REQ_ERR("GET / HTTP/1\r\nHost: a\r\n\r\n", SL_H1_ERR_VERSION);
    REQ_ERR("GET / HTTP/1.2\r\nHost: a\r\n\r\n", SL_H1_ERR_VERSION_UNSUPPORTED);
    REQ_ERR("GET / HTTP/2.0\r\nHost: a\r\n\r\n", SL_H1_ERR_VERSION_UNSUPPORTED);
    REQ_ERR("GET / HTTP/0.9\r\nHost: a\r\n\r\n", SL_H1_ERR_VERSION_UNSUPPORTED);
}

TEST(host_rules)
{
    REQ_ERR("GET / HTTP/1.1\r\n\r\n", SL_H1_ERR_HOST);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", SL_H1_ERR_HOST);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", SL_H1_ERR_HOST);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", SL_H1_ERR_HOST);
    PARSES(&REQ, "GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
           "H GET / 11 none cl=0 ka=1 exp=0 up=0 host=[::1]:8443\n"
           "  Host: [::1]:8443\nC\n");
    PARSES(&REQ, "GET / HTTP/1.1\r\nHost:\r\n\r\n",
           "H GET / 11 none cl=0 ka=1 exp=0 up=0 host=\n  Host: \nC\n");
}

TEST(errors_are_sticky)
{
    sl_h1_parser p;
    sl_h1_event ev;
    size_t used;
    static const char bad[] = "GET / HTTP/1.1\r\nHost : a\r\n\r\n";
    sl_h1_parser_init(&p, 0, NULL, NULL);
    CHECK_INT(sl_h1_parse(&p, (const uint8_t *)bad, sizeof(bad) - 1, &used, &ev),
              SL_H1_ERR_HEADER_SPACE);
    CHECK_INT(sl_h1_parse(&p, (const uint8_t *)"GET", 3, &used, &ev),
              SL_H1_ERR_HEADER_SPACE);
    CHECK_INT(used, 0);
    CHECK_INT(sl_h1_parse_eof(&p, &ev), SL_H1_ERR_HEADER_SPACE);
    sl_h1_parser_free(&p);
}

/* ---- limits ------------------------------------------------------------ */

static void small_limits(sl_h1_options *o)
{
    sl_h1_options_init(o);
    o->max_line = 32;
    o->max_head = 80;
    o->max_headers = 3;
    o->max_chunk_line = 8;
    o->max_body = 10;
}

static int limited(const char *in, size_t len)
{
    sl_h1_options o;
    small_limits(&o);
    struct setup su = {0, NULL, &o, 0};
    static struct tr a, b;
    int e1 = transcript(&su, in, len, SIZE_MAX, &a);
    int e2 = transcript(&su, in, len, 1, &b);
    return e1 == e2 && strcmp(a.s, b.s) == 0 ? e1 : 1;
}

#define LIMITED(in, err) CHECK_INT(limited((in), sizeof(in) - 1), (err))

TEST(limit_request_line_414)
{
    /* A line may take max_line bytes with its CRLF, not one more. */
    LIMITED("GET /2345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    LIMITED("GET /23456789012345678 HTTP/1.1\r\nHost: a\r\n\r\n", SL_H1_ERR_URI_TOO_LONG);
    LIMITED("GET /234567890123456789012345678901234567890", SL_H1_ERR_URI_TOO_LONG);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_URI_TOO_LONG), 414);
}

TEST(limit_header_431)
{
    LIMITED("GET / HTTP/1.1\r\nHost: a\r\nX: 456789012345678901234567890\r\n\r\n", 0);
    LIMITED("GET / HTTP/1.1\r\nHost: a\r\nX: 4567890123456789012345678901\r\n\r\n",
            SL_H1_ERR_LINE_TOO_LONG);
    LIMITED("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
            SL_H1_ERR_TOO_MANY_HEADERS);
    /* 80 bytes with the empty line is max_head exactly; one more is not. */
    LIMITED("GET / HTTP/1.1\r\nHost: a\r\nX: 4567890123456789012345\r\n"
            "Y: 456789012345678901234\r\n\r\n", 0);
    LIMITED("GET / HTTP/1.1\r\nHost: a\r\nX: 4567890123456789012345\r\n"
            "Y: 4567890123456789012345\r\n\r\n", SL_H1_ERR_HEAD_TOO_LARGE);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_LINE_TOO_LONG), 431);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_TOO_MANY_HEADERS), 431);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_HEAD_TOO_LARGE), 431);
}

TEST(limit_trailers_and_chunks)
{
    LIMITED(CHUNKED "1;abcd\r\na\r\n0\r\n\r\n", 0);
    LIMITED(CHUNKED "1;abcde\r\na\r\n0\r\n\r\n", SL_H1_ERR_CHUNK_LINE_TOO_LONG);
    LIMITED(CHUNKED "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", SL_H1_ERR_TOO_MANY_HEADERS);
    LIMITED(CHUNKED "0\r\nX: 4567890123456789012345678901\r\n\r\n", SL_H1_ERR_LINE_TOO_LONG);
}

TEST(limit_body_413)
{
    LIMITED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", 0);
    LIMITED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", SL_H1_ERR_BODY_TOO_LARGE);
    LIMITED(CHUNKED "6\r\n012345\r\n5\r\n", SL_H1_ERR_BODY_TOO_LARGE);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_BODY_TOO_LARGE), 413);
    /* A close-delimited body gets exactly max_body bytes, then the error. */
    sl_h1_options o;
    small_limits(&o);
    struct setup res = {1, NULL, &o, 1};
    PARSES(&res, "HTTP/1.1 200 OK\r\n\r\n0123456789", "H 200 [OK] 11 close cl=0 ka=0\nD[0123456789]\nC\n");
    PARSES(&res, "HTTP/1.1 200 OK\r\n\r\n0123456789X", "H 200 [OK] 11 close cl=0 ka=0\nD[0123456789]\nE-345\n");
}

TEST(large_head_grows_the_buffer)
{
    char in[2048];
    static const char start[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ";
    size_t n = sizeof(start) - 1;
    memcpy(in, start, n);
    memset(in + n, 'v', 1500);
    memcpy(in + n + 1500, "\r\nY: 1\r\n\r\n", 10);
    struct tr t;
    CHECK_INT(transcript(&REQ, in, n + 1510, 1, &t), 0);
    CHECK(strstr(t.s, "  X-Big: vvvv"));
    CHECK(strstr(t.s, "v\n  Y: 1\nC\n"));
    CHECK_INT(strlen(t.s), strlen("H GET / 11 none cl=0 ka=1 exp=0 up=0 host=a\n  Host: a\n"
                                  "  X-Big: \n  Y: 1\nC\n") + 1500);
}

TEST(error_classes_and_statuses)
{
    CHECK_INT(sl_h1_error_to_sluice(SL_H1_ERR_CL_AND_TE), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_h1_error_to_sluice(SL_H1_ERR_BARE_CR), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_h1_error_to_sluice(SL_H1_ERR_URI_TOO_LONG), SLUICE_ERR_LIMIT);
    CHECK_INT(sl_h1_error_to_sluice(SL_H1_ERR_CHUNK_LINE_TOO_LONG), SLUICE_ERR_LIMIT);
    CHECK_INT(sl_h1_error_to_sluice(SLUICE_ERR_NOMEM), SLUICE_ERR_NOMEM);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_CL_AND_TE), 400);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_TE_UNSUPPORTED), 501);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_VERSION_UNSUPPORTED), 505);
    CHECK_INT(sl_h1_error_status(SL_H1_ERR_CHUNK_LINE_TOO_LONG), 400);
    CHECK_INT(sl_h1_error_status(SLUICE_ERR_NOMEM), 500);
    CHECK_STR(sl_h1_strerror(SL_H1_ERR_OBS_FOLD), "folded or indented field line");
    CHECK_STR(sl_h1_strerror(SLUICE_ERR_NOMEM), "out of memory");
    /* Every code has its own text. */
    for (int a = -345; a <= -301; a++)
        for (int b = a + 1; b <= -301; b++)
            if (sl_h1_error_status(a) != 500 && sl_h1_error_status(b) != 500)
                CHECK(strcmp(sl_h1_strerror(a), sl_h1_strerror(b)) != 0);
}

/* ---- responses --------------------------------------------------------- */

static const struct setup RES = {1, NULL, NULL, 0};
static const struct setup RES_EOF = {1, NULL, NULL, 1};
static const struct setup RES_HEAD = {1, "HEAD", NULL, 0};
static const struct setup RES_CONNECT = {1, "CONNECT", NULL, 0};

TEST(response_with_length)
{
    PARSES(&RES, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
           "H 200 [OK] 11 length cl=3 ka=1\n  Content-Length: 3\nD[abc]\nC\n");
    PARSES(&RES, "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
           "H 404 [] 11 length cl=0 ka=1\n  Content-Length: 0\nC\n");
    PARSES(&RES, "HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n",
           "H 599 [] 11 length cl=0 ka=1\n  Content-Length: 0\nC\n");
}

TEST(responses_without_content)
{
    /* RFC 9112 §6.3 rule 1: the length fields are there, the bytes are not;
     * what follows is the next response. */
    PARSES(&RES_HEAD, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
           "H 200 [OK] 11 none cl=0 ka=1\n  Content-Length: 100\nC\n"
           "H 200 [OK] 11 length cl=1 ka=1\n  Content-Length: 1\nD[x]\nC\n");
    PARSES(&RES, "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
           "H 204 [No Content] 11 none cl=0 ka=1\n  Transfer-Encoding: chunked\nC\n");
    PARSES(&RES, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
           "H 304 [Not Modified] 11 none cl=0 ka=1\n  Content-Length: 5\nC\n");
}

TEST(interim_responses_keep_the_request_method)
{
    PARSES(&RES_HEAD, "HTTP/1.1 100 Continue\r\n\r\n"
                      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
           "H 100 [Continue] 11 none cl=0 ka=1\nC\n"
           "H 103 [Early Hints] 11 none cl=0 ka=1\n  Link: </s.css>\nC\n"
           "H 200 [OK] 11 none cl=0 ka=1\n  Content-Length: 5\nC\n");
}

TEST(response_read_until_close)
{
    PARSES(&RES_EOF, "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nabc\r\ndef",
           "H 200 [OK] 11 close cl=0 ka=0\n  Server: x\nD[abc\r\ndef]\nC\n");
    PARSES(&RES_EOF, "HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
           "E-321\n");
    PARSES(&RES_EOF, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nzz",
           "H 200 [OK] 11 close cl=0 ka=0\n  Transfer-Encoding: chunked, gzip\nD[zz]\nC\n");

    /* Nothing is HTTP after that close. */
    sl_h1_parser p;
    sl_h1_event ev;
    size_t used;
    static const char in[] = "HTTP/1.1 200 OK\r\n\r\nab";
    sl_h1_parser_init(&p, 1, NULL, NULL);
    CHECK_INT(sl_h1_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &ev), 0);
    CHECK_INT(ev.type, SL_H1_EV_HEAD);
    CHECK_INT(ev.head->body, SL_H1_BODY_CLOSE);
    CHECK_INT(sl_h1_parse(&p, (const uint8_t *)in + used, sizeof(in) - 1 - used,
                          &used, &ev), 0);
    CHECK_INT(ev.type, SL_H1_EV_DATA);
    CHECK_MEM(ev.data, ev.len, "ab", 2);
    CHECK_INT(sl_h1_parse_eof(&p, &ev), 0);
    CHECK_INT(ev.type, SL_H1_EV_COMPLETE);
    CHECK_INT(sl_h1_parse(&p, (const uint8_t *)"x", 1, &used, &ev), SLUICE_ERR_STATE);
    CHECK_INT(sl_h1_parse(&p, NULL, 0, &used, &ev), 0);
    CHECK_INT(ev.type, SL_H1_EV_NONE);
    CHECK_INT(sl_h1_parse_eof(&p, &ev), 0);
    CHECK_INT(ev.type, SL_H1_EV_NONE);
    sl_h1_parser_free(&p);
}

TEST(response_te_overrides_cl)
{
    PARSES(&RES, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
           "H 200 [OK] 11 chunked cl=0 ka=1\n  Content-Length: 100\n"
           "  Transfer-Encoding: chunked\nD[ok]\nC\n");
}

TEST(response_truncated)
{
    PARSES(&RES_EOF, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
           "H 200 [OK] 11 length cl=10 ka=1\n  Content-Length: 10\nD[abc]\nE-327\n");
    PARSES(&RES_EOF, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
           "H 200 [OK] 11 chunked cl=0 ka=1\n  Transfer-Encoding: chunked\nD[abc]\nE-327\n");
    PARSES(&RES_EOF, "HTTP/1.1 200 OK\r\nConte", "E-327\n");
    PARSES(&RES_EOF, "", "");
    PARSES(&RES_EOF, "HTTP/1.1 204 No Content\r\n\r\n", "H 204 [No Content] 11 none cl=0 ka=1\nC\n");
}

TEST(tunnels)
{
    PARSES(&RES_CONNECT, "HTTP/1.1 200 Connection Established\r\n\r\n",
           "H 200 [Connection Established] 11 tunnel cl=0 ka=0\nC\n");
    PARSES(&RES_CONNECT, "HTTP/1.1 407 Auth\r\nContent-Length: 1\r\n\r\nx",
           "H 407 [Auth] 11 length cl=1 ka=1\n  Content-Length: 1\nD[x]\nC\n");
    /* Tunnel bytes right after the head are left alone. */
    PARSES(&RES, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x00\x00\x12",
           "H 101 [Switching Protocols] 11 tunnel cl=0 ka=0\n  Upgrade: h2c\nC\nE-5\n");
}

TEST(status_line_errors)
{
    PARSES(&RES, "HTTP/1.1 20 OK\r\n\r\n", "E-306\n");
    PARSES(&RES, "HTTP/1.1 20\r\n\r\n", "E-306\n");
    PARSES(&RES, "HTTP/1.1 2000 OK\r\n\r\n", "E-306\n");
    PARSES(&RES, "HTTP/1.1 200OK\r\n\r\n", "E-306\n");
    PARSES(&RES, "HTTP/1.1 600 X\r\n\r\n", "E-306\n");
    PARSES(&RES, "HTTP/1.1 099 X\r\n\r\n", "E-306\n");
    PARSES(&RES, "HTTP/1.1 200 O\x01K\r\n\r\n", "E-306\n");
    PARSES(&RES, "HTTP/1.1\r\n\r\n", "E-306\n");
    PARSES(&RES, "HTTP/2 200\r\n\r\n", "E-304\n");
    PARSES(&RES, "HTTP/3.0 200 OK\r\n\r\n", "E-305\n");
    PARSES(&RES, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "E-319\n");
    CHECK_INT(SL_H1_ERR_STATUS_LINE, -306);
    CHECK_INT(SL_H1_ERR_VERSION, -304);
    CHECK_INT(SL_H1_ERR_VERSION_UNSUPPORTED, -305);
    CHECK_INT(SL_H1_ERR_TE_CHUNKED_TWICE, -319);
    CHECK_INT(SL_H1_ERR_TRUNCATED, -327);
    CHECK_INT(SL_H1_ERR_TE_HTTP10, -321);
    CHECK_INT(SL_H1_ERR_BARE_LF, -308);
}

TEST(set_method_only_for_responses)
{
    sl_h1_parser p;
    sl_h1_parser_init(&p, 0, NULL, NULL);
    CHECK_INT(sl_h1_parser_set_method(&p, (const uint8_t *)"HEAD", 4), SLUICE_ERR_STATE);
    sl_h1_parser_free(&p);
}

/* ---- memory ------------------------------------------------------------ */

struct counting {
    int live, calls, fail_at;
};

static void *c_malloc(size_t n, void *ud)
{
    struct counting *c = ud;
    if (++c->calls == c->fail_at)
        return NULL;
    c->live++;
    return malloc(n);
}

static void *c_realloc(void *p, size_t n, void *ud)
{
    struct counting *c = ud;
    if (++c->calls == c->fail_at)
        return NULL;
    if (!p)
        c->live++;
    return realloc(p, n);
}

static void c_free(void *p, void *ud)
{
    struct counting *c = ud;
    if (p)
        c->live--;
    free(p);
}

static int parse_with(struct counting *c, const char *in, size_t len)
{
    sluice_allocator a = {c_malloc, c_realloc, c_free, c};
    sl_mem m;
    sl_h1_parser p;
    sl_h1_event ev;
    size_t used;
    int rc;
    sl_mem_init(&m, &a);
    sl_h1_parser_init(&p, 0, NULL, &m);
    do {
        rc = sl_h1_parse(&p, (const uint8_t *)in, len, &used, &ev);
        in += used;
        len -= used;
    } while (rc == 0 && ev.type != SL_H1_EV_NONE);
    sl_h1_parser_free(&p);
    return rc;
}

TEST(allocations_freed_and_failures_reported)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    struct counting c = {0, 0, 0};
    CHECK_INT(parse_with(&c, in, sizeof(in) - 1), 0);
    CHECK_INT(c.live, 0);
    int total = c.calls;
    CHECK(total >= 3); /* buffer, field refs, field array */
    for (int k = 1; k <= total; k++) {
        struct counting f = {0, 0, k};
        CHECK_INT(parse_with(&f, in, sizeof(in) - 1), SLUICE_ERR_NOMEM);
        CHECK_INT(f.live, 0);
    }
}

/* ---- writers ----------------------------------------------------------- */

#define NV(n, v) {(const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0}

TEST(write_request_head_exact)
{
    static const sluice_nv f[] = {NV("accept", "*/*"), NV("x-a", "1\t2")};
    uint8_t out[128];
    size_t n;
    CHECK_INT(sl_h1_write_request_head((const uint8_t *)"GET", 3, (const uint8_t *)"/p?q", 4,
                                       (const uint8_t *)"example.com", 11, f, 2, out,
                                       sizeof(out), &n), 0);
    static const char want[] = "GET /p?q HTTP/1.1\r\nHost: example.com\r\n"
                               "accept: */*\r\nx-a: 1\t2\r\n\r\n";
    CHECK_MEM(out, n, want, sizeof(want) - 1);
    CHECK_INT(sl_h1_write_request_head((const uint8_t *)"OPTIONS", 7, (const uint8_t *)"*", 1,
                                       NULL, 0, NULL, 0, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "OPTIONS * HTTP/1.1\r\n\r\n", 22);
}

TEST(write_response_head_exact)
{
    static const sluice_nv f[] = {NV("content-length", "5")};
    uint8_t out[128];
    size_t n;
    CHECK_INT(sl_h1_write_response_head(200, NULL, 0, f, 1, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", 38);
    CHECK_INT(sl_h1_write_response_head(431, NULL, 0, NULL, 0, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n", 48);
    CHECK_INT(sl_h1_write_response_head(299, NULL, 0, NULL, 0, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "HTTP/1.1 299 \r\n\r\n", 17);
    CHECK_INT(sl_h1_write_response_head(103, (const uint8_t *)"Hints", 5, NULL, 0, out,
                                        sizeof(out), &n), 0);
    CHECK_MEM(out, n, "HTTP/1.1 103 Hints\r\n\r\n", 22);
    CHECK_STR(sl_h1_reason(413), "Content Too Large");
    CHECK_STR(sl_h1_reason(505), "HTTP Version Not Supported");
    CHECK_STR(sl_h1_reason(299), "");
}

TEST(write_chunk_framing_exact)
{
    uint8_t out[64];
    size_t n;
    CHECK_INT(sl_h1_write_chunk_header(1, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "1\r\n", 3);
    CHECK_INT(sl_h1_write_chunk_header(0x1a2b, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "1a2b\r\n", 6);
    CHECK_INT(sl_h1_write_chunk_header(UINT64_MAX, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "ffffffffffffffff\r\n", 18);
    CHECK_INT(sl_h1_write_chunk_header(0, out, sizeof(out), &n), SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_last_chunk(NULL, 0, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "0\r\n\r\n", 5);
    static const sluice_nv t[] = {NV("grpc-status", "0")};
    CHECK_INT(sl_h1_write_last_chunk(t, 1, out, sizeof(out), &n), 0);
    CHECK_MEM(out, n, "0\r\ngrpc-status: 0\r\n\r\n", 21);
}

TEST(write_nobuf_leaves_buffer_alone)
{
    uint8_t out[32];
    size_t n;
    memset(out, 0xaa, sizeof(out));
    CHECK_INT(sl_h1_write_response_head(200, NULL, 0, NULL, 0, out, 19, &n), 0);
    memset(out, 0xaa, sizeof(out));
    CHECK_INT(sl_h1_write_response_head(200, NULL, 0, NULL, 0, out, 18, &n), SLUICE_ERR_NOBUF);
    CHECK_INT(n, 19);
    for (size_t i = 0; i < sizeof(out); i++)
        CHECK_INT(out[i], 0xaa);
    CHECK_INT(sl_h1_write_chunk_header(0x100, out, 4, &n), SLUICE_ERR_NOBUF);
    CHECK_INT(n, 5);
    CHECK_INT(sl_h1_write_last_chunk(NULL, 0, out, 4, &n), SLUICE_ERR_NOBUF);
    CHECK_INT(n, 5);
    CHECK_INT(sl_h1_write_request_head((const uint8_t *)"GET", 3, (const uint8_t *)"/", 1,
                                       (const uint8_t *)"a", 1, NULL, 0, out, 26, &n),
              SLUICE_ERR_NOBUF);
    CHECK_INT(n, 27); /* "GET / HTTP/1.1\r\nHost: a\r\n\r\n" */
    CHECK_INT(out[0], 0xaa);
}

TEST(write_rejects_what_could_smuggle)
{
    uint8_t out[256];
    size_t n;
    const uint8_t *g = (const uint8_t *)"GET", *s = (const uint8_t *)"/";
    static const sluice_nv crlf[] = {NV("x", "a\r\nContent-Length: 0")};
    static const sluice_nv lf[] = {NV("x", "a\nb")};
    static const sluice_nv nul[] = {NV("x", "a\0b")};
    static const sluice_nv name_sp[] = {NV("x y", "a")};
    static const sluice_nv name_colon[] = {NV("x:", "a")};
    static const sluice_nv name_empty[] = {NV("", "a")};
    CHECK_INT(sl_h1_write_request_head(g, 3, s, 1, NULL, 0, crlf, 1, out, sizeof(out), &n),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head(g, 3, s, 1, NULL, 0, lf, 1, out, sizeof(out), &n),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head(g, 3, s, 1, NULL, 0, nul, 1, out, sizeof(out), &n),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head(g, 3, s, 1, NULL, 0, name_sp, 1, out, sizeof(out), &n),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head(g, 3, s, 1, NULL, 0, name_colon, 1, out, sizeof(out),
                                       &n), SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head(g, 3, s, 1, NULL, 0, name_empty, 1, out, sizeof(out),
                                       &n), SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head(g, 3, (const uint8_t *)"/ HTTP/1.1\r\n", 12, NULL, 0,
                                       NULL, 0, out, sizeof(out), &n), SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head(g, 3, s, 0, NULL, 0, NULL, 0, out, sizeof(out), &n),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head((const uint8_t *)"G T", 3, s, 1, NULL, 0, NULL, 0, out,
                                       sizeof(out), &n), SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_request_head(g, 3, s, 1, (const uint8_t *)"a\r\nX: y", 7, NULL, 0,
                                       out, sizeof(out), &n), SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_response_head(200, (const uint8_t *)"OK\r\nX: y", 8, NULL, 0, out,
                                        sizeof(out), &n), SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_response_head(99, NULL, 0, NULL, 0, out, sizeof(out), &n),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_response_head(600, NULL, 0, NULL, 0, out, sizeof(out), &n),
              SLUICE_ERR_INVAL);
    CHECK_INT(sl_h1_write_last_chunk(crlf, 1, out, sizeof(out), &n), SLUICE_ERR_INVAL);
}

TEST(written_head_parses_back)
{
    static const sluice_nv f[] = {NV("content-length", "2"), NV("x-y", "z")};
    uint8_t out[256];
    size_t n;
    CHECK_INT(sl_h1_write_request_head((const uint8_t *)"PUT", 3, (const uint8_t *)"/k", 2,
                                       (const uint8_t *)"h", 1, f, 2, out, sizeof(out), &n), 0);
    memcpy(out + n, "ok", 2);
    CHECK(same_in_every_split(&REQ, (const char *)out, n + 2,
                              "H PUT /k 11 length cl=2 ka=1 exp=0 up=0 host=h\n"
                              "  Host: h\n  content-length: 2\n  x-y: z\nD[ok]\nC\n"));
}
