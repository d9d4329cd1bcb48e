/* test_hpack_nghttp2.c — HPACK interop with libnghttp2 in both directions:
 * the corpus as one connection, table size changes, never-indexed flags. */
#include <nghttp2/nghttp2.h>

#include "t.h"
#include "sluice.h"
#include "hpack_corpus.h"

#define MAXF 300
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- header lists ------------------------------------------------------------ */

/* One header list as both libraries want it. */
typedef struct tlist {
    size_t n;
    sluice_nv nv[MAXF];
    nghttp2_nv ng[MAXF];
} tlist;

static void tl_fill_ng(tlist *t)
{
    for (size_t i = 0; i < t->n; i++) {
        t->ng[i].name = (uint8_t *)(uintptr_t)t->nv[i].name;
        t->ng[i].value = (uint8_t *)(uintptr_t)t->nv[i].value;
        t->ng[i].namelen = t->nv[i].name_len;
        t->ng[i].valuelen = t->nv[i].value_len;
        t->ng[i].flags = (t->nv[i].flags & SLUICE_NV_NEVER_INDEX)
                             ? NGHTTP2_NV_FLAG_NO_INDEX
                             : NGHTTP2_NV_FLAG_NONE;
    }
}

static void tl_from_corpus(tlist *t, const hc_list *l)
{
    t->n = l->n;
    hc_to_nv(l, t->nv);
    tl_fill_ng(t);
}

static int name_is(const sluice_nv *nv, const char *s)
{
    size_t n = strlen(s);
    return nv->name_len == n && memcmp(nv->name, s, n) == 0;
}

/* Which fields each encoder sends never-indexed on its own. libnghttp2:
 * authorization and cookies under 20 bytes. sluice (sluice.h): those and
 * proxy-authorization. Plus, for both, whatever the caller flagged. */
static int ng_never(const sluice_nv *nv)
{
    return (nv->flags & SLUICE_NV_NEVER_INDEX) || name_is(nv, "authorization") ||
           (name_is(nv, "cookie") && nv->value_len < 20);
}

static int sl_never(const sluice_nv *nv)
{
    return ng_never(nv) || name_is(nv, "proxy-authorization");
}

/* ---- what a decoder produced ------------------------------------------------- */

typedef struct got {
    size_t n;
    size_t nl[MAXF], vl[MAXF], off[MAXF];
    int never[MAXF];
    size_t used;
    uint8_t buf[1 << 17];
    int overflow;
} got;

static void got_add(got *g, const uint8_t *name, size_t nl, const uint8_t *value,
                    size_t vl, int never)
{
    if (g->n >= MAXF || g->used + nl + vl > sizeof(g->buf)) {
        g->overflow = 1;
        return;
    }
    g->off[g->n] = g->used;
    g->nl[g->n] = nl;
    g->vl[g->n] = vl;
    g->never[g->n] = never;
    if (nl) /* an empty string may come as NULL */
        memcpy(g->buf + g->used, name, nl);
    if (vl)
        memcpy(g->buf + g->used + nl, value, vl);
    g->used += nl + vl;
    g->n++;
}

static int sl_emit(void *ud, const sluice_nv *nv)
{
    got_add(ud, nv->name, nv->name_len, nv->value, nv->value_len,
            (nv->flags & SLUICE_NV_NEVER_INDEX) != 0);
    return 0;
}

/* Compare every field: name, value, order, never-indexed flag. Reports the
 * list and field number on a mismatch. */
static int same_list(const got *g, const tlist *t, int (*never)(const sluice_nv *),
                     const char *what, size_t list_no)
{
    if (g->overflow || g->n != t->n) {
        fprintf(stderr, "  %s list %zu: %zu fields, expected %zu\n", what, list_no,
                g->n, t->n);
        return 0;
    }
    for (size_t i = 0; i < t->n; i++) {
        const sluice_nv *e = &t->nv[i];
        const uint8_t *gn = g->buf + g->off[i], *gv = gn + g->nl[i];
        if (g->nl[i] != e->name_len || memcmp(gn, e->name, e->name_len) != 0 ||
            g->vl[i] != e->value_len || memcmp(gv, e->value, e->value_len) != 0) {
            fprintf(stderr, "  %s list %zu field %zu: got \"%.*s: %.*s\"\n", what,
                    list_no, i, (int)g->nl[i], (const char *)gn, (int)g->vl[i],
                    (const char *)gv);
            return 0;
        }
        if (g->never[i] != never(e)) {
            fprintf(stderr, "  %s list %zu field %zu (%.*s): never-indexed %d, expected %d\n",
                    what, list_no, i, (int)e->name_len, (const char *)e->name,
                    g->never[i], never(e));
            return 0;
        }
    }
    return 1;
}

/* ---- the two directions ------------------------------------------------------ */

/* A table size change before list `at`: the decoder's SETTINGS value went
 * to `size`; the encoder learns it before the same block. dec_too = 0
 * models an encoder that applied the new SETTINGS while our decoder has not
 * yet seen the ACK (only the encoder side changes). */
typedef struct change {
    size_t at;
    uint32_t size;
    int dec_too;
} change;

typedef struct conn_cfg {
    uint32_t enc_max;   /* encoder's own limit */
    uint32_t dec_max;   /* decoder's own limit (option / inflater setting) */
    int huffman;        /* sluice encoder only */
    const change *changes;
    size_t nchanges;
} conn_cfg;

static uint8_t g_block[1 << 18];
static got g_got;

/* libnghttp2 deflates, sluice decodes. */
static int ng_to_sluice(const tlist *lists, size_t nlists, const conn_cfg *cfg)
{
    nghttp2_hd_deflater *def = NULL;
    sluice_hpack_decoder *dec = NULL;
    sluice_hpack_options o;
    sluice_hpack_options_init(&o);
    o.max_table_size = cfg->dec_max;
    o.max_header_list_size = 1u << 20;
    int ok = 0;
    if (nghttp2_hd_deflate_new(&def, cfg->enc_max) != 0 ||
        sluice_hpack_decoder_new(&dec, &o, NULL) != 0)
        goto out;
    /* The peer learns our setting from SETTINGS; libnghttp2's deflater
     * announces it (capped by its own limit) in its next block. */
    if (cfg->dec_max != 4096 && nghttp2_hd_deflate_change_table_size(def, cfg->dec_max) != 0)
        goto out;
    for (size_t i = 0; i < nlists; i++) {
        for (size_t c = 0; c < cfg->nchanges; c++) {
            if (cfg->changes[c].at != i)
                continue;
            if (nghttp2_hd_deflate_change_table_size(def, cfg->changes[c].size) != 0)
                goto out;
            if (cfg->changes[c].dec_too &&
                sluice_hpack_decoder_set_max_table_size(dec, cfg->changes[c].size) != 0)
                goto out;
        }
        const tlist *t = &lists[i];
        ssize_t len = nghttp2_hd_deflate_hd(def, g_block, sizeof(g_block), t->ng, t->n);
        if (len < 0) {
            fprintf(stderr, "  nghttp2 deflate failed: %s\n", nghttp2_strerror((int)len));
            goto out;
        }
        memset(&g_got, 0, offsetof(got, buf));
        int rc = sluice_hpack_decode(dec, g_block, (size_t)len, sl_emit, &g_got);
        if (rc != 0) {
            fprintf(stderr, "  sluice decode of list %zu: %s\n", i, sluice_strerror(rc));
            t_hexdump("block", g_block, (size_t)len);
            goto out;
        }
        if (!same_list(&g_got, t, ng_never, "nghttp2->sluice", i))
            goto out;
        size_t ds = sluice_hpack_decoder_table_size(dec);
        size_t es = nghttp2_hd_deflate_get_dynamic_table_size(def);
        if (ds != es) {
            fprintf(stderr, "  list %zu: sluice table %zu, nghttp2 table %zu\n", i, ds, es);
            goto out;
        }
    }
    ok = 1;
out:
    nghttp2_hd_deflate_del(def);
    sluice_hpack_decoder_free(dec);
    return ok;
}

/* Inflate one whole block with libnghttp2 into g. Returns 0 or its error. */
static int ng_inflate(nghttp2_hd_inflater *inf, const uint8_t *in, size_t len, got *g)
{
    memset(g, 0, offsetof(got, buf));
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, len, 1);
        if (rv < 0)
            return (int)rv;
        in += rv;
        len -= (size_t)rv;
        if (flags & NGHTTP2_HD_INFLATE_EMIT)
            got_add(g, nv.name, nv.namelen, nv.value, nv.valuelen,
                    (nv.flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0);
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(inf);
            return 0;
        }
        if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && len == 0)
            return -1; /* not final with all input given: cannot happen */
    }
}

/* sluice encodes, libnghttp2 inflates. */
static int sluice_to_ng(const tlist *lists, size_t nlists, const conn_cfg *cfg)
{
    nghttp2_hd_inflater *inf = NULL;
    sluice_hpack_encoder *enc = NULL;
    sluice_hpack_options o;
    sluice_hpack_options_init(&o);
    o.max_table_size = cfg->enc_max;
    o.huffman = cfg->huffman;
    int ok = 0;
    if (nghttp2_hd_inflate_new(&inf) != 0 || sluice_hpack_encoder_new(&enc, &o, NULL) != 0)
        goto out;
    if (cfg->dec_max != 4096) {
        if (nghttp2_hd_inflate_change_table_size(inf, cfg->dec_max) != 0 ||
            sluice_hpack_encoder_set_max_table_size(enc, cfg->dec_max) != 0)
            goto out;
    }
    for (size_t i = 0; i < nlists; i++) {
        for (size_t c = 0; c < cfg->nchanges; c++) {
            if (cfg->changes[c].at != i)
                continue;
            if (sluice_hpack_encoder_set_max_table_size(enc, cfg->changes[c].size) != 0)
                goto out;
            if (cfg->changes[c].dec_too &&
                nghttp2_hd_inflate_change_table_size(inf, cfg->changes[c].size) != 0)
                goto out;
        }
        const tlist *t = &lists[i];
        size_t bound = sluice_hpack_encode_bound(enc, t->nv, t->n);
        if (bound > sizeof(g_block)) {
            fprintf(stderr, "  list %zu: bound %zu too big for the test\n", i, bound);
            goto out;
        }
        size_t len = 0;
        int rc = sluice_hpack_encode(enc, t->nv, t->n, g_block, bound, &len);
        if (rc != 0 || len > bound) {
            fprintf(stderr, "  sluice encode of list %zu: %s\n", i, sluice_strerror(rc));
            goto out;
        }
        rc = ng_inflate(inf, g_block, len, &g_got);
        if (rc != 0) {
            fprintf(stderr, "  nghttp2 inflate of list %zu: %s\n", i, nghttp2_strerror(rc));
            t_hexdump("block", g_block, len);
            goto out;
        }
        if (!same_list(&g_got, t, sl_never, "sluice->nghttp2", i))
            goto out;
        size_t es = sluice_hpack_encoder_table_size(enc);
        size_t ds = nghttp2_hd_inflate_get_dynamic_table_size(inf);
        if (ds != es) {
            fprintf(stderr, "  list %zu: sluice table %zu, nghttp2 table %zu\n", i, es, ds);
            goto out;
        }
    }
    ok = 1;
out:
    nghttp2_hd_inflate_del(inf);
    sluice_hpack_encoder_free(enc);
    return ok;
}

/* ---- the corpus -------------------------------------------------------------- */

static tlist g_req[HC_NREQUESTS], g_res[HC_NRESPONSES];

static void load_corpus(void)
{
    for (size_t i = 0; i < HC_NREQUESTS; i++)
        tl_from_corpus(&g_req[i], &hc_requests[i]);
    for (size_t i = 0; i < HC_NRESPONSES; i++)
        tl_from_corpus(&g_res[i], &hc_responses[i]);
}

/* Both directions of one connection, with both Huffman settings. */
static int both_ways(const conn_cfg *cfg)
{
    conn_cfg c = *cfg;
    for (c.huffman = 0; c.huffman <= 1; c.huffman++) {
        if (!sluice_to_ng(g_req, HC_NREQUESTS, &c) || !sluice_to_ng(g_res, HC_NRESPONSES, &c)) {
            fprintf(stderr, "  (sluice encoder, huffman %d)\n", c.huffman);
            return 0;
        }
    }
    return ng_to_sluice(g_req, HC_NREQUESTS, cfg) && ng_to_sluice(g_res, HC_NRESPONSES, cfg);
}

TEST(corpus_nghttp2_to_sluice)
{
    load_corpus();
    conn_cfg cfg = { 4096, 4096, 1, NULL, 0 };
    CHECK(ng_to_sluice(g_req, HC_NREQUESTS, &cfg));
    CHECK(ng_to_sluice(g_res, HC_NRESPONSES, &cfg));
}

TEST(corpus_sluice_to_nghttp2)
{
    load_corpus();
    for (int h = 0; h <= 1; h++) {
        conn_cfg cfg = { 4096, 4096, h, NULL, 0 };
        CHECK(sluice_to_ng(g_req, HC_NREQUESTS, &cfg));
        CHECK(sluice_to_ng(g_res, HC_NRESPONSES, &cfg));
    }
}

/* The decoder lowers its SETTINGS_HEADER_TABLE_SIZE to 512, then 0, then
 * raises it back; the encoder follows with size updates (RFC 7541 §4.2). */
TEST(table_size_changes_midstream)
{
    load_corpus();
    static const change ch[] = {
        { 5, 512, 1 }, { 10, 0, 1 }, { 14, 4096, 1 }, { 17, 1024, 1 },
        { 19, 2048, 1 }, { 20, 100, 1 }, { 20, 3000, 1 }, { 22, 4096, 1 },
    };
    conn_cfg cfg = { 4096, 4096, 1, ch, NELEM(ch) };
    CHECK(both_ways(&cfg));
}

/* Only the encoder side learns of the change (our ACK is still in flight):
 * its size updates stay within our unchanged limit, so they are valid. */
TEST(table_size_changes_encoder_only)
{
    load_corpus();
    static const change ch[] = {
        { 3, 256, 0 }, { 8, 0, 0 }, { 9, 4096, 0 }, { 15, 64, 0 }, { 16, 4096, 0 },
    };
    conn_cfg cfg = { 4096, 4096, 1, ch, NELEM(ch) };
    CHECK(both_ways(&cfg));
}

/* Our decoder allows 8192 while the encoder keeps to 4096, and the other
 * way round: the encoder would use 8192 but the decoder allows 4096. */
TEST(asymmetric_table_limits)
{
    load_corpus();
    conn_cfg a = { 4096, 8192, 1, NULL, 0 };
    CHECK(both_ways(&a));
    conn_cfg b = { 8192, 4096, 1, NULL, 0 };
    CHECK(both_ways(&b));
    /* both allow 8192: the encoder announces it and uses it */
    conn_cfg c = { 8192, 8192, 1, NULL, 0 };
    CHECK(both_ways(&c));
    /* small limits on either side */
    conn_cfg d = { 1024, 4096, 1, NULL, 0 };
    CHECK(both_ways(&d));
    conn_cfg e = { 4096, 1024, 1, NULL, 0 };
    CHECK(both_ways(&e));
    conn_cfg f = { 0, 4096, 1, NULL, 0 };
    CHECK(both_ways(&f));
    conn_cfg g = { 4096, 0, 1, NULL, 0 };
    CHECK(both_ways(&g));
}

/* An 8192-byte update is refused by a side that only allows 4096: each
 * library's update reaches the other, and the other checks it. */
TEST(size_update_above_setting_refused)
{
    load_corpus();
    nghttp2_hd_deflater *def = NULL;
    CHECK_INT(nghttp2_hd_deflate_new(&def, 8192), 0);
    CHECK_INT(nghttp2_hd_deflate_change_table_size(def, 8192), 0);
    ssize_t len = nghttp2_hd_deflate_hd(def, g_block, sizeof(g_block), g_req[0].ng, g_req[0].n);
    nghttp2_hd_deflate_del(def);
    CHECK(len > 3);
    sluice_hpack_decoder *dec = NULL;
    CHECK_INT(sluice_hpack_decoder_new(&dec, NULL, NULL), 0);
    memset(&g_got, 0, offsetof(got, buf));
    CHECK_INT(sluice_hpack_decode(dec, g_block, (size_t)len, sl_emit, &g_got),
              SLUICE_ERR_HPACK_TABLE_SIZE);
    sluice_hpack_decoder_free(dec);

    sluice_hpack_options o;
    sluice_hpack_options_init(&o);
    o.max_table_size = 8192;
    sluice_hpack_encoder *enc = NULL;
    CHECK_INT(sluice_hpack_encoder_new(&enc, &o, NULL), 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(enc, 8192), 0);
    size_t slen = 0;
    CHECK_INT(sluice_hpack_encode(enc, g_req[0].nv, g_req[0].n, g_block, sizeof(g_block), &slen), 0);
    sluice_hpack_encoder_free(enc);
    nghttp2_hd_inflater *inf = NULL;
    CHECK_INT(nghttp2_hd_inflate_new(&inf), 0);
    CHECK_INT(ng_inflate(inf, g_block, slen, &g_got), NGHTTP2_ERR_HEADER_COMP);
    nghttp2_hd_inflate_del(inf);
}

/* ---- never-indexed fields and the whole Huffman code ---------------------------- */

/* Flagged fields, authorization and short cookie crumbs arrive flagged,
 * both ways, even when the same field was sent indexable before. */
TEST(never_indexed_flags_survive)
{
    static const hc_field f1[] = {
        HC_F(":method", "GET"), HC_F(":path", "/"), HC_F("x-api-key", "k-123456"),
        HC_SECRET("x-session", "s3cr3t-v4lu3"), HC_F("cookie", "a=1"),
        HC_F("cookie", "long_enough_crumb=0123456789"), HC_SECRET("cookie", "pref=dark-mode-and-more"),
        HC_F("authorization", "Bearer abc.def.ghi"),
        HC_F("proxy-authorization", "Basic Zm9vOmJhcg=="),
        HC_SECRET(":method", "GET"), /* even a static-table match */
    };
    static const hc_field f2[] = {
        HC_SECRET("x-api-key", "k-123456"), /* indexed in list 1, secret now */
        HC_F("x-session", "s3cr3t-v4lu3"),  /* secret in list 1, plain now */
        HC_F("cookie", "long_enough_crumb=0123456789"),
        HC_SECRET("cookie", "long_enough_crumb=0123456789"),
    };
    static const hc_list l[] = { HC_LIST(f1), HC_LIST(f2), HC_LIST(f1), HC_LIST(f2) };
    static tlist t[4];
    for (size_t i = 0; i < 4; i++)
        tl_from_corpus(&t[i], &l[i]);
    for (int h = 0; h <= 1; h++) {
        conn_cfg cfg = { 4096, 4096, h, NULL, 0 };
        CHECK(sluice_to_ng(t, 4, &cfg));
    }
    conn_cfg cfg = { 4096, 4096, 1, NULL, 0 };
    CHECK(ng_to_sluice(t, 4, &cfg));
}

/* Every byte value as a Huffman-coded symbol: each value is sixteen 'e's
 * (5-bit codes) and the byte, short enough that both encoders choose
 * Huffman; names too. Also every byte in one raw string. */
TEST(huffman_every_symbol)
{
    static uint8_t vals[256][17];
    static uint8_t all[256];
    static tlist t[3];
    memset(t, 0, sizeof(t));
    for (int b = 0; b < 256; b++) {
        memset(vals[b], 'e', 16);
        vals[b][16] = (uint8_t)b;
        all[b] = (uint8_t)b;
        sluice_nv *nv = &t[b < 128 ? 0 : 1].nv[b % 128];
        nv->name = (const uint8_t *)"x-huffman-symbol";
        nv->name_len = 16;
        nv->value = vals[b];
        nv->value_len = 17;
    }
    t[0].n = t[1].n = 128;
    t[2].n = 2;
    t[2].nv[0].name = vals[200]; /* a name with a rare symbol */
    t[2].nv[0].name_len = 17;
    t[2].nv[0].value = all;
    t[2].nv[0].value_len = 256;
    t[2].nv[1].name = (const uint8_t *)"x-all-bytes";
    t[2].nv[1].name_len = 11;
    t[2].nv[1].value = all;
    t[2].nv[1].value_len = 256;
    for (int i = 0; i < 3; i++)
        tl_fill_ng(&t[i]);
    for (int h = 0; h <= 1; h++) {
        conn_cfg cfg = { 4096, 4096, h, NULL, 0 };
        CHECK(sluice_to_ng(t, 3, &cfg));
    }
    conn_cfg cfg = { 4096, 4096, 1, NULL, 0 };
    CHECK(ng_to_sluice(t, 3, &cfg));
    /* a table of 0 keeps every field literal */
    conn_cfg z = { 0, 0, 1, NULL, 0 };
    CHECK(ng_to_sluice(t, 3, &z));
}

/* Large values and many fields: a 16 KiB value, an empty value, an empty
 * name (HPACK carries it; HTTP rejects it a layer above). */
TEST(large_and_odd_fields)
{
    static char big[16384];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    static tlist t[2];
    memset(t, 0, sizeof(t));
    sluice_nv *nv = t[0].nv;
    nv[0] = (sluice_nv){ (const uint8_t *)"x-big", (const uint8_t *)big, 5, sizeof(big), 0 };
    nv[1] = (sluice_nv){ (const uint8_t *)"x-empty", (const uint8_t *)"", 7, 0, 0 };
    nv[2] = (sluice_nv){ (const uint8_t *)"", (const uint8_t *)"no-name", 0, 7, 0 };
    nv[3] = (sluice_nv){ (const uint8_t *)"x-mid", (const uint8_t *)big, 5, 3000, 0 };
    t[0].n = 4;
    for (size_t i = 0; i < 200; i++) {
        t[1].nv[i] = (sluice_nv){ (const uint8_t *)"x-many", (const uint8_t *)big + i, 6, 8, 0 };
    }
    t[1].n = 200;
    tl_fill_ng(&t[0]);
    tl_fill_ng(&t[1]);
    for (int h = 0; h <= 1; h++) {
        conn_cfg cfg = { 4096, 4096, h, NULL, 0 };
        CHECK(sluice_to_ng(t, 2, &cfg));
    }
    conn_cfg cfg = { 4096, 4096, 1, NULL, 0 };
    CHECK(ng_to_sluice(t, 2, &cfg));
}
