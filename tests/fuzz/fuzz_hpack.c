/* fuzz_hpack.c — libFuzzer target for the HPACK decoder: header blocks on one
 * decoder; each list that decodes is re-encoded and must round-trip exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

/* Input layout (the seeds in corpus/hpack/ follow it):
 *   byte 0      options: bits 0-2 decoder table size, bits 3-4 header list
 *               limit, bit 5 Huffman in the re-encoder, bit 6 small (256)
 *               re-encoder table, bit 7 resize the re-encoder now and then
 *   then chunks of a 2-byte header and data:
 *     h0 & 0x80   a SETTINGS change: the decoder's limit becomes
 *                 table_sizes[h1 & 7]; no data follows
 *     otherwise   a header block of ((h0 & 0x7f) << 8 | h1) bytes (or what
 *                 is left of the input)
 */

static const uint32_t table_sizes[8] = { 0, 64, 256, 1024, 4096, 4096, 8192, 65536 };
static const uint32_t list_limits[4] = { 128, 4096, 65536, 1u << 20 };

typedef struct field {
    size_t name_off, name_len, value_off, value_len;
    uint32_t flags;
} field;

typedef struct list {
    field *f;
    size_t n, cap;
    uint8_t *buf;
    size_t used, buf_cap;
} list;

static void die(void)
{
    __builtin_trap();
}

static int list_emit(void *ud, const sluice_nv *nv)
{
    list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        field *f = realloc(l->f, cap * sizeof(*f));
        if (!f)
            die();
        l->f = f;
        l->cap = cap;
    }
    size_t need = l->used + nv->name_len + nv->value_len;
    if (need > l->buf_cap || !l->buf) { /* never NULL: see roundtrip() */
        size_t cap = l->buf_cap ? l->buf_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *b = realloc(l->buf, cap);
        if (!b)
            die();
        l->buf = b;
        l->buf_cap = cap;
    }
    field *f = &l->f[l->n++];
    f->name_off = l->used;
    f->name_len = nv->name_len;
    if (nv->name_len)
        memcpy(l->buf + l->used, nv->name, nv->name_len);
    l->used += nv->name_len;
    f->value_off = l->used;
    f->value_len = nv->value_len;
    if (nv->value_len)
        memcpy(l->buf + l->used, nv->value, nv->value_len);
    l->used += nv->value_len;
    f->flags = nv->flags;
    /* the decoder reports only NEVER_INDEX */
    if (nv->flags & ~(uint32_t)SLUICE_NV_NEVER_INDEX)
        die();
    return 0;
}

static int name_is_ci(const uint8_t *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)s[i])
            return 0;
    }
    return 1;
}

/* Fields the sluice encoder never-indexes on its own (sluice.h). */
static int auto_never(const uint8_t *name, size_t nl, size_t vl)
{
    return name_is_ci(name, nl, "authorization") ||
           name_is_ci(name, nl, "proxy-authorization") ||
           (name_is_ci(name, nl, "cookie") && vl < 20);
}

typedef struct ctx {
    sluice_hpack_encoder *enc;
    sluice_hpack_decoder *dec2;
    sluice_nv *nv;
    size_t nv_cap;
    uint8_t *out;
    size_t out_cap;
    list l1, l2;
    int resize;
    unsigned blocks;
} ctx;

/* Re-encode what the first decoder produced, decode it again, compare. */
static void roundtrip(ctx *c)
{
    list *a = &c->l1, *b = &c->l2;
    if (a->n > c->nv_cap) {
        sluice_nv *nv = realloc(c->nv, a->n * sizeof(*nv));
        if (!nv)
            die();
        c->nv = nv;
        c->nv_cap = a->n;
    }
    for (size_t i = 0; i < a->n; i++) {
        c->nv[i].name = a->buf + a->f[i].name_off;
        c->nv[i].name_len = a->f[i].name_len;
        c->nv[i].value = a->buf + a->f[i].value_off;
        c->nv[i].value_len = a->f[i].value_len;
        c->nv[i].flags = a->f[i].flags;
    }
    /* A forwarding proxy's peer changes its table size now and then. */
    if (c->resize && (c->blocks % 3) == 1) {
        uint32_t s = (c->blocks / 3) % 2 ? 4096 : 512;
        if (sluice_hpack_encoder_set_max_table_size(c->enc, s) != 0 ||
            sluice_hpack_decoder_set_max_table_size(c->dec2, s) != 0)
            die();
    }
    size_t bound = sluice_hpack_encode_bound(c->enc, c->nv, a->n);
    if (bound > c->out_cap) {
        uint8_t *o = realloc(c->out, bound);
        if (!o)
            die();
        c->out = o;
        c->out_cap = bound;
    }
    size_t len = 0;
    if (sluice_hpack_encode(c->enc, c->nv, a->n, c->out, bound, &len) != 0)
        die();
    if (len > bound)
        die();
    b->n = 0;
    b->used = 0;
    if (sluice_hpack_decode(c->dec2, c->out, len, list_emit, b) != 0)
        die();
    if (a->n != b->n)
        die();
    for (size_t i = 0; i < a->n; i++) {
        const field *x = &a->f[i], *y = &b->f[i];
        if (x->name_len != y->name_len || x->value_len != y->value_len)
            die();
        if (memcmp(a->buf + x->name_off, b->buf + y->name_off, x->name_len) != 0 ||
            memcmp(a->buf + x->value_off, b->buf + y->value_off, x->value_len) != 0)
            die();
        /* never-indexed must survive forwarding (RFC 7541 §7.1.3); the
         * encoder may add it only where its own rule says so */
        int n1 = (x->flags & SLUICE_NV_NEVER_INDEX) != 0;
        int n2 = (y->flags & SLUICE_NV_NEVER_INDEX) != 0;
        if (n1 && !n2)
            die();
        if (!n1 && n2 && !auto_never(a->buf + x->name_off, x->name_len, x->value_len))
            die();
    }
    if (sluice_hpack_encoder_table_size(c->enc) != sluice_hpack_decoder_table_size(c->dec2))
        die();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    data++;
    size--;

    sluice_hpack_options o;
    sluice_hpack_options_init(&o);
    o.max_table_size = table_sizes[opt & 7];
    o.max_header_list_size = list_limits[(opt >> 3) & 3];
    sluice_hpack_decoder *dec = NULL;
    if (sluice_hpack_decoder_new(&dec, &o, NULL) != 0)
        die();

    ctx c;
    memset(&c, 0, sizeof(c));
    sluice_hpack_options eo;
    sluice_hpack_options_init(&eo);
    eo.max_table_size = (opt & 0x40) ? 256 : 4096;
    eo.huffman = (opt & 0x20) ? 1 : 0;
    eo.max_header_list_size = o.max_header_list_size;
    c.resize = (opt & 0x80) != 0;
    if (sluice_hpack_encoder_new(&c.enc, &eo, NULL) != 0 ||
        sluice_hpack_decoder_new(&c.dec2, &eo, NULL) != 0)
        die();

    uint32_t largest = o.max_table_size > 4096 ? o.max_table_size : 4096;
    while (size >= 2) {
        uint8_t h0 = data[0], h1 = data[1];
        data += 2;
        size -= 2;
        if (h0 & 0x80) {
            uint32_t s = table_sizes[h1 & 7];
            if (sluice_hpack_decoder_set_max_table_size(dec, s) != 0)
                die();
            if (s > largest)
                largest = s;
            continue;
        }
        size_t len = (size_t)(h0 & 0x7f) << 8 | h1;
        if (len > size)
            len = size;
        c.l1.n = 0;
        c.l1.used = 0;
        int rc = sluice_hpack_decode(dec, data, len, list_emit, &c.l1);
        data += len;
        size -= len;
        if (sluice_hpack_decoder_table_size(dec) > largest)
            die();
        if (rc == SLUICE_ERR_HEADER_LIST_TOO_LARGE) {
            /* the decoder stays in sync; what was emitted fit the limit */
            size_t total = 0;
            for (size_t i = 0; i < c.l1.n; i++)
                total += c.l1.f[i].name_len + c.l1.f[i].value_len + 32;
            if (total > o.max_header_list_size)
                die();
            continue;
        }
        if (rc != 0) {
            /* any other failure is a connection error: only HPACK codes */
            if (rc > SLUICE_ERR_COMPRESSION || rc < SLUICE_ERR_HPACK_STRING)
                die();
            break;
        }
        c.blocks++;
        roundtrip(&c);
    }

    sluice_hpack_decoder_free(dec);
    sluice_hpack_encoder_free(c.enc);
    sluice_hpack_decoder_free(c.dec2);
    free(c.nv);
    free(c.out);
    free(c.l1.f);
    free(c.l1.buf);
    free(c.l2.f);
    free(c.l2.buf);
    return 0;
}
