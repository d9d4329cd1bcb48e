/* hpack.c — HPACK benchmark: sluice against libnghttp2 on the same realistic
 * header lists, interleaved, median of several rounds, ns per header field. */
#define _POSIX_C_SOURCE 200809L

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"
#include "hpack_corpus.h"

/* One direction of the corpus as both libraries take it. */
typedef struct dir_lists {
    const hc_list *src;
    size_t n;
    sluice_nv (*nv)[HC_MAX_FIELDS];
    nghttp2_nv (*ng)[HC_MAX_FIELDS];
} dir_lists;

/* The header blocks of one connection of `conn_len` lists per direction,
 * as libnghttp2's deflater wrote them: both decoders decode these bytes. */
typedef struct blocks {
    uint8_t *buf;
    size_t *off, *len;
    size_t n, total;
} blocks;

static dir_lists g_req, g_res;
static blocks g_req_blk, g_res_blk;
static uint8_t g_out[1 << 16];
static volatile size_t g_sink; /* keeps the work observable */

#define CHECKED(x)                                                             \
    do {                                                                       \
        if (!(x)) {                                                            \
            fprintf(stderr, "bench_hpack: %s failed (line %d)\n", #x, __LINE__); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void load_dir(dir_lists *d, const hc_list *src, size_t n)
{
    d->src = src;
    d->n = n;
    d->nv = calloc(n, sizeof(*d->nv));
    d->ng = calloc(n, sizeof(*d->ng));
    CHECKED(d->nv && d->ng);
    for (size_t i = 0; i < n; i++) {
        CHECKED(src[i].n <= HC_MAX_FIELDS);
        hc_to_nv(&src[i], d->nv[i]);
        for (size_t k = 0; k < src[i].n; k++) {
            nghttp2_nv *g = &d->ng[i][k];
            g->name = (uint8_t *)(uintptr_t)d->nv[i][k].name;
            g->value = (uint8_t *)(uintptr_t)d->nv[i][k].value;
            g->namelen = d->nv[i][k].name_len;
            g->valuelen = d->nv[i][k].value_len;
            g->flags = (src[i].f[k].flags & SLUICE_NV_NEVER_INDEX) ? NGHTTP2_NV_FLAG_NO_INDEX
                                                                   : NGHTTP2_NV_FLAG_NONE;
        }
    }
}

static size_t fields_per_conn(const dir_lists *d, size_t conn_len)
{
    size_t n = 0;
    for (size_t i = 0; i < conn_len; i++)
        n += d->src[i % d->n].n;
    return n;
}

static void make_blocks(blocks *b, const dir_lists *d, size_t conn_len)
{
    nghttp2_hd_deflater *def;
    CHECKED(nghttp2_hd_deflate_new(&def, 4096) == 0);
    free(b->buf);
    free(b->off);
    free(b->len);
    b->buf = malloc((size_t)conn_len * 4096);
    b->off = malloc(conn_len * sizeof(size_t));
    b->len = malloc(conn_len * sizeof(size_t));
    CHECKED(b->buf && b->off && b->len);
    b->n = conn_len;
    b->total = 0;
    for (size_t i = 0; i < conn_len; i++) {
        size_t l = i % d->n;
        ssize_t r = nghttp2_hd_deflate_hd(def, b->buf + b->total, 4096, d->ng[l], d->src[l].n);
        CHECKED(r > 0);
        b->off[i] = b->total;
        b->len[i] = (size_t)r;
        b->total += (size_t)r;
    }
    nghttp2_hd_deflate_del(def);
}

/* ---- the four workloads; each runs `conns` connections ------------------------ */

/* Both decoders do the same with each field: add up its lengths. */
static int sl_emit(void *ud, const sluice_nv *nv)
{
    size_t *acc = ud;
    *acc += nv->name_len + nv->value_len + nv->flags;
    return 0;
}

static size_t ng_inflate_block(nghttp2_hd_inflater *inf, const uint8_t *in, size_t len)
{
    size_t acc = 0;
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, len, 1);
        CHECKED(rv >= 0);
        in += rv;
        len -= (size_t)rv;
        if (flags & NGHTTP2_HD_INFLATE_EMIT)
            acc += nv.namelen + nv.valuelen + nv.flags;
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(inf);
            return acc;
        }
        CHECKED((flags & NGHTTP2_HD_INFLATE_EMIT) || len > 0);
    }
}

static size_t sl_encode_conns(size_t conns, size_t conn_len)
{
    size_t bytes = 0;
    for (size_t c = 0; c < conns; c++) {
        sluice_hpack_encoder *req, *res;
        CHECKED(sluice_hpack_encoder_new(&req, NULL, NULL) == 0);
        CHECKED(sluice_hpack_encoder_new(&res, NULL, NULL) == 0);
        for (size_t i = 0; i < conn_len; i++) {
            size_t a = i % g_req.n, b = i % g_res.n, len = 0;
            CHECKED(sluice_hpack_encode(req, g_req.nv[a], g_req.src[a].n, g_out,
                                        sizeof(g_out), &len) == 0);
            bytes += len;
            CHECKED(sluice_hpack_encode(res, g_res.nv[b], g_res.src[b].n, g_out,
                                        sizeof(g_out), &len) == 0);
            bytes += len;
        }
        sluice_hpack_encoder_free(req);
        sluice_hpack_encoder_free(res);
    }
    return bytes;
}

static size_t ng_encode_conns(size_t conns, size_t conn_len)
{
    size_t bytes = 0;
    for (size_t c = 0; c < conns; c++) {
        nghttp2_hd_deflater *req, *res;
        CHECKED(nghttp2_hd_deflate_new(&req, 4096) == 0);
        CHECKED(nghttp2_hd_deflate_new(&res, 4096) == 0);
        for (size_t i = 0; i < conn_len; i++) {
            size_t a = i % g_req.n, b = i % g_res.n;
            ssize_t r = nghttp2_hd_deflate_hd(req, g_out, sizeof(g_out), g_req.ng[a],
                                              g_req.src[a].n);
            CHECKED(r >= 0);
            bytes += (size_t)r;
            r = nghttp2_hd_deflate_hd(res, g_out, sizeof(g_out), g_res.ng[b], g_res.src[b].n);
            CHECKED(r >= 0);
            bytes += (size_t)r;
        }
        nghttp2_hd_deflate_del(req);
        nghttp2_hd_deflate_del(res);
    }
    return bytes;
}

static size_t sl_decode_conns(size_t conns, size_t conn_len)
{
    size_t acc = 0;
    for (size_t c = 0; c < conns; c++) {
        sluice_hpack_decoder *req, *res;
        CHECKED(sluice_hpack_decoder_new(&req, NULL, NULL) == 0);
        CHECKED(sluice_hpack_decoder_new(&res, NULL, NULL) == 0);
        for (size_t i = 0; i < conn_len; i++) {
            CHECKED(sluice_hpack_decode(req, g_req_blk.buf + g_req_blk.off[i], g_req_blk.len[i],
                                        sl_emit, &acc) == 0);
            CHECKED(sluice_hpack_decode(res, g_res_blk.buf + g_res_blk.off[i], g_res_blk.len[i],
                                        sl_emit, &acc) == 0);
        }
        sluice_hpack_decoder_free(req);
        sluice_hpack_decoder_free(res);
    }
    return acc;
}

static size_t ng_decode_conns(size_t conns, size_t conn_len)
{
    size_t acc = 0;
    for (size_t c = 0; c < conns; c++) {
        nghttp2_hd_inflater *req, *res;
        CHECKED(nghttp2_hd_inflate_new(&req) == 0);
        CHECKED(nghttp2_hd_inflate_new(&res) == 0);
        for (size_t i = 0; i < conn_len; i++) {
            acc += ng_inflate_block(req, g_req_blk.buf + g_req_blk.off[i], g_req_blk.len[i]);
            acc += ng_inflate_block(res, g_res_blk.buf + g_res_blk.off[i], g_res_blk.len[i]);
        }
        nghttp2_hd_inflate_del(req);
        nghttp2_hd_inflate_del(res);
    }
    return acc;
}

/* ---- measuring ----------------------------------------------------------------- */

typedef size_t (*work_fn)(size_t conns, size_t conn_len);

static double run_ns(work_fn f, size_t conns, size_t conn_len, size_t *result)
{
    double t0 = now_ns();
    *result = f(conns, conn_len);
    double t1 = now_ns();
    g_sink += *result;
    return t1 - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define MAX_ROUNDS 15

typedef struct result {
    double sl_enc, ng_enc, sl_dec, ng_dec; /* median ns per field */
    size_t sl_bytes, ng_bytes;             /* encoded bytes per connection */
} result;

/* Run one mode (connection length) for `rounds` interleaved rounds. */
static result measure(size_t conn_len, int rounds, double target_ns)
{
    make_blocks(&g_req_blk, &g_req, conn_len);
    make_blocks(&g_res_blk, &g_res, conn_len);
    size_t fields = fields_per_conn(&g_req, conn_len) + fields_per_conn(&g_res, conn_len);

    /* Same results from both decoders: they did the same work. */
    size_t r1, r2;
    run_ns(sl_decode_conns, 1, conn_len, &r1);
    run_ns(ng_decode_conns, 1, conn_len, &r2);
    CHECKED(r1 == r2);

    result res;
    run_ns(sl_encode_conns, 1, conn_len, &res.sl_bytes);
    run_ns(ng_encode_conns, 1, conn_len, &res.ng_bytes);

    /* Size each measurement to about target_ns, from the slower library. */
    double one = 0;
    work_fn all[4] = { sl_encode_conns, ng_encode_conns, sl_decode_conns, ng_decode_conns };
    for (int k = 0; k < 4; k++) {
        double t = run_ns(all[k], 1, conn_len, &r1);
        if (t > one)
            one = t;
    }
    size_t conns = (size_t)(target_ns / (one > 1 ? one : 1));
    if (conns < 1)
        conns = 1;

    double t[4][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        /* alternate which library goes first, so neither always gets the
         * warmer caches or the quieter moment */
        for (int k = 0; k < 4; k++) {
            int j = (r & 1) ? (k ^ 1) : k;
            t[j][r] = run_ns(all[j], conns, conn_len, &r1) / (double)(conns * fields);
        }
    }
    for (int k = 0; k < 4; k++)
        qsort(t[k], (size_t)rounds, sizeof(double), cmp_double);
    res.sl_enc = t[0][rounds / 2];
    res.ng_enc = t[1][rounds / 2];
    res.sl_dec = t[2][rounds / 2];
    res.ng_dec = t[3][rounds / 2];
    return res;
}

static void print_row(const char *mode, const char *op, double sl, double ng)
{
    printf("%-24s %-7s %12.1f %14.1f %16.2f\n", mode, op, sl, ng, ng / sl);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    double ms = argc > 2 ? atof(argv[2]) : 60.0;
    if (rounds < 1 || rounds > MAX_ROUNDS || ms <= 0) {
        fprintf(stderr, "usage: %s [rounds 1..%d] [ms per measurement]\n", argv[0], MAX_ROUNDS);
        return 2;
    }
    load_dir(&g_req, hc_requests, HC_NREQUESTS);
    load_dir(&g_res, hc_responses, HC_NRESPONSES);
    size_t nf = fields_per_conn(&g_req, g_req.n) + fields_per_conn(&g_res, g_res.n);
    nghttp2_info *info = nghttp2_version(0);
    printf("HPACK: sluice %s vs libnghttp2 %s; corpus %zu requests + %zu responses, "
           "%zu fields; median of %d rounds\n",
           sluice_version(), info->version_str, g_req.n, g_res.n, nf, rounds);
    printf("both encode with Huffman when shorter and a 4096-byte table; both decode "
           "the blocks libnghttp2 encoded\n\n");
    printf("%-24s %-7s %12s %14s %16s\n", "connection", "op", "sluice ns/f",
           "nghttp2 ns/f", "nghttp2/sluice");

    static const struct { size_t len; const char *name; } modes[] = {
        { 1000, "long-lived (1000 lists)" },
        { 8, "short (8 lists)" },
    };
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        result r = measure(modes[m].len, rounds, ms * 1e6);
        print_row(modes[m].name, "encode", r.sl_enc, r.ng_enc);
        print_row(modes[m].name, "decode", r.sl_dec, r.ng_dec);
        size_t f = fields_per_conn(&g_req, modes[m].len) + fields_per_conn(&g_res, modes[m].len);
        printf("%-24s %-7s %12.2f %14.2f %16s\n", modes[m].name, "B/field",
               (double)r.sl_bytes / (double)f, (double)r.ng_bytes / (double)f, "");
    }
    printf("\n(ratio > 1: sluice is faster)\n");
    return g_sink == 0; /* never: but the compiler cannot know */
}
