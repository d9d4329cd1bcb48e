/* fuzz_h1.c — parses each input as requests and as responses, whole and in
 * pieces, aborting when the splits disagree; re-parses the heads it writes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Everything a parse reported, in a form two runs can be compared in. */
struct log {
    uint8_t *p;
    size_t n, cap;
    int in_data;
};

static void log_put(struct log *l, const void *s, size_t n)
{
    if (l->n + n > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->n + n)
            cap *= 2;
        uint8_t *np = realloc(l->p, cap);
        if (!np)
            abort();
        l->p = np;
        l->cap = cap;
    }
    if (n)
        memcpy(l->p + l->n, s, n);
    l->n += n;
}

static void log_num(struct log *l, uint64_t v)
{
    log_put(l, &v, sizeof(v));
}

static void log_bytes(struct log *l, const uint8_t *s, size_t n)
{
    log_num(l, n);
    log_put(l, s, n);
}

static void log_fields(struct log *l, const sluice_nv *f, size_t n)
{
    log_num(l, n);
    for (size_t i = 0; i < n; i++) {
        log_bytes(l, f[i].name, f[i].name_len);
        log_bytes(l, f[i].value, f[i].value_len);
    }
}

static void log_head(struct log *l, const sl_h1_head *h)
{
    log_put(l, "H", 1);
    log_bytes(l, h->method, h->method_len);
    log_bytes(l, h->target, h->target_len);
    log_bytes(l, h->reason, h->reason_len);
    log_bytes(l, h->host, h->host_len);
    log_num(l, (uint64_t)h->status);
    log_num(l, (uint64_t)h->version);
    log_num(l, (uint64_t)h->body);
    log_num(l, h->content_length);
    log_num(l, (uint64_t)(h->keep_alive | h->expect_continue << 1 | h->upgrade << 2));
    log_fields(l, h->fields, h->nfields);
}

static void log_event(struct log *l, const sl_h1_event *ev)
{
    if (ev->type == SL_H1_EV_NONE)
        return;
    if (ev->type == SL_H1_EV_DATA) {
        if (ev->len == 0)
            abort(); /* never an empty DATA */
        if (!l->in_data)
            log_put(l, "D", 1);
        l->in_data = 1;
        log_put(l, ev->data, ev->len);
        return;
    }
    l->in_data = 0;
    if (ev->type == SL_H1_EV_HEAD)
        log_head(l, ev->head);
    else if (ev->type == SL_H1_EV_TRAILERS) {
        log_put(l, "T", 1);
        log_fields(l, ev->fields, ev->nfields);
    } else if (ev->type == SL_H1_EV_COMPLETE)
        log_put(l, "C", 1);
}

struct mode {
    int response;
    const char *method;
    const sl_h1_options *opt;
};

static void check_round_trip(const struct mode *m, const sl_h1_parser *orig,
                             const sl_h1_head *h);

/* Feed size bytes in pieces: step 0 means all at once, 1 byte by byte,
 * anything else pseudo-random pieces of 1..16 bytes seeded by step. */
static int run(const struct mode *m, const uint8_t *data, size_t size, unsigned step,
               struct log *l)
{
    sl_h1_parser p;
    sl_h1_event ev;
    int rc = 0;
    uint32_t seed = step;
    sl_h1_parser_init(&p, m->response, m->opt, NULL);
    if (m->method)
        sl_h1_parser_set_method(&p, (const uint8_t *)m->method, strlen(m->method));
    for (size_t off = 0; off <= size && rc == 0;) {
        size_t piece = size - off;
        if (step == 1)
            piece = piece ? 1 : 0;
        else if (step) {
            seed = seed * 1103515245u + 12345u;
            size_t r = 1 + (seed >> 16) % 16;
            piece = piece < r ? piece : r;
        }
        size_t end = off + piece;
        do {
            size_t used = 0;
            rc = sl_h1_parse(&p, data + off, end - off, &used, &ev);
            if (used > end - off)
                abort();
            if (rc == 0 && ev.type == SL_H1_EV_NONE && used != end - off)
                abort(); /* NONE means everything was taken */
            if (rc == 0 && ev.type == SL_H1_EV_DATA &&
                (ev.data < data + off || ev.data + ev.len > data + end))
                abort(); /* content points into the input */
            off += used;
            if (rc == 0) {
                log_event(l, &ev);
                if (ev.type == SL_H1_EV_HEAD && step == 0)
                    check_round_trip(m, &p, ev.head);
            }
        } while (rc == 0 && ev.type != SL_H1_EV_NONE);
        if (off == size)
            break;
    }
    if (rc == 0) {
        rc = sl_h1_parse_eof(&p, &ev);
        if (rc == 0)
            log_event(l, &ev);
    }
    l->in_data = 0;
    log_put(l, "E", 1);
    log_num(l, (uint64_t)(int64_t)rc);
    sl_h1_parser_free(&p);
    return rc;
}

static int same_fields(const sluice_nv *a, size_t na, const sluice_nv *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i].name_len != b[i].name_len || a[i].value_len != b[i].value_len ||
            memcmp(a[i].name, b[i].name, a[i].name_len) != 0 ||
            (a[i].value_len && memcmp(a[i].value, b[i].value, a[i].value_len) != 0))
            return 0;
    return 1;
}

/* Write the head back out and parse it: whatever we accepted we must be
 * able to send, and it must read back as the same message. */
static int write_head(const struct mode *m, const sl_h1_head *h, uint8_t *out,
                      size_t cap, size_t *n)
{
    if (m->response)
        return sl_h1_write_response_head(h->status, h->reason, h->reason_len, h->fields,
                                         h->nfields, out, cap, n);
    return sl_h1_write_request_head(h->method, h->method_len, h->target, h->target_len,
                                    NULL, 0, h->fields, h->nfields, out, cap, n);
}

static void check_round_trip(const struct mode *m, const sl_h1_parser *orig,
                             const sl_h1_head *h)
{
    size_t need = 0, n = 0;
    if (h->version != 11)
        return; /* we write 1.1, whose rules (Host) differ */
    if (write_head(m, h, NULL, 0, &need) != SLUICE_ERR_NOBUF)
        abort();
    uint8_t *out = malloc(need);
    if (!out || write_head(m, h, out, need, &n) != 0 || n != need)
        abort();
    sl_h1_options big;
    sl_h1_options_init(&big);
    big.max_head = big.max_line = 1u << 30; /* CRLF and ": " add bytes */
    big.max_headers = 1u << 20;
    sl_h1_parser p;
    sl_h1_event ev;
    size_t used;
    sl_h1_parser_init(&p, m->response, &big, NULL);
    p.req_head = orig->req_head; /* the request this response answers */
    p.req_connect = orig->req_connect;
    if (sl_h1_parse(&p, out, n, &used, &ev) != 0 || ev.type != SL_H1_EV_HEAD ||
        used != n || ev.head->status != h->status || ev.head->body != h->body ||
        ev.head->content_length != h->content_length ||
        !same_fields(ev.head->fields, ev.head->nfields, h->fields, h->nfields))
        abort();
    sl_h1_parser_free(&p);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 15)
        return 0;
    sl_h1_options small;
    sl_h1_options_init(&small);
    small.max_head = 200;
    small.max_line = 64;
    small.max_headers = 6;
    small.max_chunk_line = 12;
    small.max_body = 40;
    small.allow_bare_lf = 0;
    const struct mode modes[] = {
        {0, NULL, NULL},       {1, "GET", NULL},   {1, "HEAD", NULL},
        {1, "CONNECT", NULL},  {0, NULL, &small},  {1, "GET", &small},
    };
    static const unsigned steps[] = {0, 1, 7, 1234};
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        struct log first = {0}, other = {0};
        run(&modes[m], data, size, steps[0], &first);
        for (size_t s = 1; s < sizeof(steps) / sizeof(steps[0]); s++) {
            other.n = 0;
            run(&modes[m], data, size, steps[s], &other);
            if (other.n != first.n || memcmp(other.p, first.p, first.n) != 0)
                abort(); /* the split changed what was parsed */
        }
        free(first.p);
        free(other.p);
    }
    return 0;
}
