/* handlers.c — h2host's request handlers and the session callbacks that
 * drive them: fixed bodies, /size/N, /slow/N, a streaming /echo, /trailers. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2host.h"

#define PATTERN_LEN 65536u /* a multiple of 64: byte i of a body is ALPHABET[i % 64] */
#define SLOW_ROUNDS 8      /* /slow/N arrives in this many pieces */
#define SLOW_GAP_NS (5 * H2H_NS_PER_MS)
#define MAX_REQ_TRAILERS 16

static const char ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char HELLO[] = "hello from sluice\n";
static const char NOT_FOUND[] = "not found\n";
static const char TRAILERS_BODY[] = "this body is followed by trailers\n";
static uint8_t pattern[PATTERN_LEN];

enum req_kind { K_FIXED, K_PATTERN, K_ECHO };

struct h2h_req {
    h2h_req *next;
    h2h_conn *c;
    uint32_t id;
    int kind;
    unsigned closed : 1;        /* the session forgot the stream */
    unsigned req_ended : 1;     /* the client's END_STREAM arrived */
    unsigned with_trailers : 1; /* the response ends with trailers */
    unsigned trailers_sent : 1;
    size_t inflight; /* body bytes handed out and not yet reported sent */
    /* K_FIXED and K_PATTERN */
    const uint8_t *fixed;
    uint64_t off, len;
    uint64_t budget;  /* /slow: bytes this round; UINT64_MAX otherwise */
    uint64_t chunk;
    uint64_t wake_at; /* /slow: when the next round starts */
    /* K_ECHO: a ring; [head, hand) is lent to the session, [hand, tail) unread */
    uint8_t *ring;
    size_t cap;
    uint64_t head, hand, tail;
    uint32_t crc;
};

#define NV(n, v) {(const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1, strlen(v), 0}

void h2h_handlers_init(void)
{
    for (size_t i = 0; i < PATTERN_LEN; i++)
        pattern[i] = (uint8_t)ALPHABET[i % 64];
}

/* CRC-32 as zlib computes it, so tests can check it with zlib.crc32. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* ---- request bookkeeping ------------------------------------------------ */

static h2h_req *req_find(h2h_conn *c, uint32_t id)
{
    for (h2h_req *r = c->reqs; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void req_unlink_free(h2h_req *r)
{
    h2h_req **pp = &r->c->reqs;
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    free(r->ring);
    free(r);
}

/* A request outlives its stream while the session still holds pointers
 * into its echo buffer. */
static void req_maybe_free(h2h_req *r)
{
    if (r->closed && r->inflight == 0)
        req_unlink_free(r);
}

void h2h_reqs_free(h2h_conn *c)
{
    while (c->reqs)
        req_unlink_free(c->reqs);
}

uint64_t h2h_reqs_deadline(const h2h_conn *c)
{
    uint64_t d = H2H_NEVER;
    for (const h2h_req *r = c->reqs; r; r = r->next)
        if (r->wake_at < d)
            d = r->wake_at;
    return d;
}

void h2h_reqs_run_timers(h2h_conn *c, uint64_t now)
{
    for (h2h_req *r = c->reqs; r; r = r->next) {
        if (r->closed || now < r->wake_at)
            continue;
        r->wake_at = H2H_NEVER;
        r->budget = r->chunk;
        sluice_session_resume_data(c->s, r->id);
    }
}

/* ---- body sources -------------------------------------------------------- */

static long src_fixed(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                      uint32_t *flags, void *ud)
{
    (void)s; (void)id;
    h2h_req *r = ud;
    uint64_t n = r->len - r->off;
    if (n > max)
        n = max;
    *data = r->fixed + r->off;
    r->off += n;
    r->inflight += n;
    if (r->off == r->len)
        *flags |= SLUICE_DATA_EOF;
    return (long)n;
}

/* N bytes of the pattern, pointed at rather than copied; /slow/N hands
 * out one chunk per round and waits for a timer between rounds. */
static long src_pattern(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                        uint32_t *flags, void *ud)
{
    (void)s; (void)id;
    h2h_req *r = ud;
    if (r->budget == 0) {
        if (r->wake_at == H2H_NEVER)
            r->wake_at = r->c->now + SLOW_GAP_NS;
        return SLUICE_ERR_AGAIN;
    }
    size_t at = (size_t)(r->off % PATTERN_LEN);
    uint64_t n = r->len - r->off;
    if (n > max)
        n = max;
    if (n > PATTERN_LEN - at)
        n = PATTERN_LEN - at;
    if (n > r->budget)
        n = r->budget;
    if (r->budget != UINT64_MAX)
        r->budget -= n;
    *data = pattern + at;
    r->off += n;
    r->inflight += n;
    if (r->off == r->len)
        *flags |= SLUICE_DATA_EOF;
    return (long)n;
}

/* Echo what has arrived; wait (AGAIN) for on_data when nothing has. */
static long src_echo(sluice_session *s, uint32_t id, const uint8_t **data, size_t max,
                     uint32_t *flags, void *ud)
{
    (void)s; (void)id;
    h2h_req *r = ud;
    uint64_t unread = r->tail - r->hand;
    if (unread == 0) {
        if (!r->req_ended)
            return SLUICE_ERR_AGAIN;
        *flags |= SLUICE_DATA_EOF;
        return 0;
    }
    size_t at = (size_t)(r->hand % r->cap);
    uint64_t n = unread < r->cap - at ? unread : r->cap - at;
    if (n > max)
        n = max;
    *data = r->ring + at;
    r->hand += n;
    r->inflight += n;
    if (r->req_ended && r->hand == r->tail)
        *flags |= SLUICE_DATA_EOF;
    return (long)n;
}

/* ---- responses ---------------------------------------------------------- */

typedef long (*read_fn)(sluice_session *, uint32_t, const uint8_t **, size_t, uint32_t *,
                        void *);

/* HEAD gets the same headers and no body. */
static int submit(h2h_req *r, const char *status, const char *type, int with_length,
                  int head, read_fn read)
{
    char len[24];
    snprintf(len, sizeof(len), "%llu", (unsigned long long)r->len);
    sluice_nv nv[3] = {NV(":status", status), NV("content-type", type),
                       NV("content-length", len)};
    sluice_data_source src = {read, r};
    int rv = sluice_session_submit_response(r->c->s, r->id, nv, with_length ? 3 : 2,
                                            head ? NULL : &src);
    if (rv != 0)
        h2h_log(r->c, "stream %u: submit_response: %s", r->id, sluice_strerror(rv));
    return rv;
}

static int respond_fixed(h2h_req *r, const char *status, const char *body, int head)
{
    r->kind = K_FIXED;
    r->fixed = (const uint8_t *)body;
    r->len = strlen(body);
    return submit(r, status, "text/plain", 1, head, src_fixed);
}

static int respond_pattern(h2h_req *r, uint64_t n, int slow, int head)
{
    r->kind = K_PATTERN;
    r->len = n;
    r->budget = UINT64_MAX;
    if (slow) {
        r->chunk = n / SLOW_ROUNDS ? (n + SLOW_ROUNDS - 1) / SLOW_ROUNDS : 1;
        r->budget = r->chunk;
    }
    return submit(r, "200", "application/octet-stream", 1, head, src_pattern);
}

static int respond_echo(h2h_req *r, int with_trailers)
{
    r->kind = K_ECHO;
    r->with_trailers = with_trailers ? 1 : 0;
    r->cap = r->c->echo_cap;
    r->ring = malloc(r->cap);
    if (!r->ring)
        return SLUICE_ERR_NOMEM;
    return submit(r, "200", "application/octet-stream", 0, 0, src_echo);
}

static int respond_trailers_get(h2h_req *r, int head)
{
    int rv = respond_fixed(r, "200", TRAILERS_BODY, head);
    if (rv != 0 || head)
        return rv;
    char sum[9];
    snprintf(sum, sizeof(sum), "%08x",
             crc32_update(0, (const uint8_t *)TRAILERS_BODY, strlen(TRAILERS_BODY)));
    sluice_nv t[1] = {NV("x-checksum", sum)};
    r->trailers_sent = 1;
    return sluice_session_submit_trailers(r->c->s, r->id, t, 1);
}

/* ---- routing ------------------------------------------------------------ */

static int nv_is(const sluice_nv *nv, const char *name)
{
    size_t n = strlen(name);
    return nv->name_len == n && memcmp(nv->name, name, n) == 0;
}

static int str_is(const uint8_t *p, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(p, s, len) == 0;
}

/* "/<prefix>N" with N decimal: 1 and *n set, else 0. */
static int path_number(const uint8_t *p, size_t len, const char *prefix, uint64_t *n)
{
    size_t k = strlen(prefix);
    if (len <= k || len - k > 15 || memcmp(p, prefix, k) != 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = k; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *n = v;
    return 1;
}

static int route(h2h_req *r, const sluice_nv *method, const sluice_nv *path)
{
    const uint8_t *p = path->value;
    size_t len = path->value_len;
    const uint8_t *q = memchr(p, '?', len);
    if (q)
        len = (size_t)(q - p);
    int head = str_is(method->value, method->value_len, "HEAD");
    int get = head || str_is(method->value, method->value_len, "GET");
    int post = str_is(method->value, method->value_len, "POST") ||
               str_is(method->value, method->value_len, "PUT");
    uint64_t n;
    if (get && str_is(p, len, "/"))
        return respond_fixed(r, "200", HELLO, head);
    if (get && path_number(p, len, "/size/", &n))
        return respond_pattern(r, n, 0, head);
    if (get && path_number(p, len, "/slow/", &n))
        return respond_pattern(r, n, 1, head);
    if (get && str_is(p, len, "/trailers"))
        return respond_trailers_get(r, head);
    if (post && (str_is(p, len, "/echo") || str_is(p, len, "/trailers")))
        return respond_echo(r, str_is(p, len, "/trailers"));
    return respond_fixed(r, "404", NOT_FOUND, head);
}

static int new_request(h2h_conn *c, uint32_t id, const sluice_nv *nv, size_t n)
{
    static const sluice_nv none = {(const uint8_t *)"", (const uint8_t *)"", 0, 0, 0};
    const sluice_nv *method = &none, *path = &none; /* CONNECT has no :path: 404 */
    for (size_t i = 0; i < n; i++) {
        if (nv_is(&nv[i], ":method"))
            method = &nv[i];
        else if (nv_is(&nv[i], ":path"))
            path = &nv[i];
    }
    h2h_req *r = calloc(1, sizeof(*r));
    if (!r)
        return sluice_session_submit_rst(c->s, id, SLUICE_H2_INTERNAL_ERROR);
    r->c = c;
    r->id = id;
    r->wake_at = H2H_NEVER;
    r->next = c->reqs;
    c->reqs = r;
    sluice_session_set_stream_user_data(c->s, id, r);
    if (route(r, method, path) != 0)
        sluice_session_submit_rst(c->s, id, SLUICE_H2_INTERNAL_ERROR);
    return 0;
}

/* ---- echo --------------------------------------------------------------- */

static void echo_push(h2h_req *r, const uint8_t *data, size_t len)
{
    h2h_conn *c = r->c;
    if (len > r->cap - (r->tail - r->head)) {
        /* Flow control makes this impossible unless auto-consume credits
         * the client past what we hold: refuse to grow. */
        h2h_log(c, "stream %u: echo buffer full", r->id);
        sluice_session_submit_rst(c->s, r->id, SLUICE_H2_INTERNAL_ERROR);
        return;
    }
    r->crc = crc32_update(r->crc, data, len);
    size_t at = (size_t)(r->tail % r->cap);
    size_t first = len < r->cap - at ? len : r->cap - at;
    memcpy(r->ring + at, data, first);
    memcpy(r->ring, data + first, len - first);
    r->tail += len;
    sluice_session_resume_data(c->s, r->id);
}

/* Trailers of an echo: the CRC-32 of the body and the request's own
 * trailers renamed x-request-trailer-<name>. */
static void echo_trailers(h2h_req *r, const sluice_nv *in, size_t n)
{
    char sum[9], names[MAX_REQ_TRAILERS][96];
    sluice_nv t[MAX_REQ_TRAILERS + 1];
    size_t k = 0;
    snprintf(sum, sizeof(sum), "%08x", r->crc);
    t[k++] = (sluice_nv)NV("x-checksum", sum);
    for (size_t i = 0; i < n && k <= MAX_REQ_TRAILERS; i++) {
        int len = snprintf(names[k - 1], sizeof(names[0]), "x-request-trailer-%.*s",
                           (int)in[i].name_len, (const char *)in[i].name);
        if (len < 0 || (size_t)len >= sizeof(names[0]))
            continue;
        t[k] = in[i];
        t[k].name = (const uint8_t *)names[k - 1];
        t[k].name_len = (size_t)len;
        k++;
    }
    r->trailers_sent = 1;
    int rv = sluice_session_submit_trailers(r->c->s, r->id, t, k);
    if (rv != 0)
        h2h_log(r->c, "stream %u: submit_trailers: %s", r->id, sluice_strerror(rv));
}

/* ---- session callbacks --------------------------------------------------- */

static int on_headers(sluice_session *s, uint32_t id, int kind, const sluice_nv *nv,
                      size_t n, int end_stream, void *ud)
{
    (void)s; (void)end_stream;
    h2h_conn *c = ud;
    if (kind == SLUICE_HEADERS_REQUEST)
        return new_request(c, id, nv, n);
    h2h_req *r = req_find(c, id);
    if (kind == SLUICE_HEADERS_TRAILERS && r && r->with_trailers && !r->trailers_sent)
        echo_trailers(r, nv, n);
    return 0;
}

static int on_data(sluice_session *s, uint32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    h2h_conn *c = ud;
    h2h_req *r = req_find(c, id);
    if (r && r->kind == K_ECHO && !r->closed) {
        echo_push(r, data, len);
        return 0;
    }
    if (!c->cfg->opt.auto_consume) /* a body nobody reads */
        sluice_session_consume(s, id, len);
    return 0;
}

static int on_stream_end(sluice_session *s, uint32_t id, void *ud)
{
    h2h_conn *c = ud;
    h2h_req *r = req_find(c, id);
    if (!r)
        return 0;
    r->req_ended = 1;
    if (r->kind == K_ECHO) {
        if (r->with_trailers && !r->trailers_sent)
            echo_trailers(r, NULL, 0);
        sluice_session_resume_data(s, id);
    }
    return 0;
}

static int on_stream_close(sluice_session *s, uint32_t id, uint32_t code, void *ud)
{
    (void)s;
    h2h_conn *c = ud;
    h2h_req *r = req_find(c, id);
    size_t lent = r ? r->inflight : 0;
    if (c->cfg->verbose && (code != SLUICE_H2_NO_ERROR || lent))
        h2h_log(c, "stream %u closed %s, %zu bytes still lent", id,
                sluice_h2_error_name(code), lent);
    if (r) {
        r->closed = 1;
        r->wake_at = H2H_NEVER;
        req_maybe_free(r);
    }
    return 0;
}

/* Lent bytes are written: echo bytes are consumed only now, so the client
 * gets window back only for what has left this process. */
static void on_data_sent(sluice_session *s, uint32_t id, size_t len, void *ud)
{
    h2h_conn *c = ud;
    if (c->freeing)
        return;
    h2h_req *r = req_find(c, id);
    if (!r)
        return;
    r->inflight -= len;
    if (r->kind == K_ECHO) {
        r->head += len;
        if (!r->closed && !c->cfg->opt.auto_consume)
            sluice_session_consume(s, id, len);
    }
    req_maybe_free(r);
}

static void on_log(sluice_session *s, int level, const char *msg, void *ud)
{
    (void)s;
    static const char *names[] = {"error", "warn", "info", "debug"};
    h2h_log(ud, "%s: %s", level >= 0 && level <= 3 ? names[level] : "?", msg);
}

void h2h_callbacks(sluice_session_callbacks *cb)
{
    memset(cb, 0, sizeof(*cb));
    cb->struct_size = sizeof(*cb);
    cb->on_headers = on_headers;
    cb->on_data = on_data;
    cb->on_stream_end = on_stream_end;
    cb->on_stream_close = on_stream_close;
    cb->on_data_sent = on_data_sent;
    cb->on_log = on_log;
}
