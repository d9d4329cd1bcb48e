/* hpack.c — HPACK header compression (RFC 7541): the public encoder and
 * decoder, on top of hpack_table (tables) and huffman (string coding). */
#include <string.h>

#include "hpack.h"
#include "huffman.h"

#define DEFAULT_TABLE_SIZE 4096u  /* RFC 9113 §6.5.2 initial value */
#define DEFAULT_LIST_SIZE 65536u
#define DEFAULT_INDEXED_VALUE 3072u  /* the 3/4-of-table rule decides first */
#define COOKIE_CRUMB_MIN 20u      /* shorter cookies are guessable secrets */

struct sluice_hpack_encoder {
    sl_mem mem;
    sl_hpack_table t;
    uint32_t cap;          /* our own limit (options) */
    uint32_t max_indexed_value;
    int huffman;
    /* Size updates owed at the start of the next block (§4.2). */
    int update_pending;
    uint32_t update_min;
    uint32_t update_final;
};

struct sluice_hpack_decoder {
    sl_mem mem;
    sl_hpack_table t;
    uint32_t settings_max; /* our SETTINGS_HEADER_TABLE_SIZE */
    uint32_t max_list;
    int need_update;       /* limit fell below the table's size: §4.2 */
    uint8_t *scratch;      /* Huffman-decoded strings of the current field */
    size_t scratch_cap;
};

/* ---- options ------------------------------------------------------------ */

void sluice_hpack_options_init_versioned(size_t struct_size, sluice_hpack_options *opt)
{
    sluice_hpack_options d;
    d.struct_size = struct_size;
    d.max_table_size = DEFAULT_TABLE_SIZE;
    d.max_header_list_size = DEFAULT_LIST_SIZE;
    d.max_indexed_value_len = DEFAULT_INDEXED_VALUE;
    d.huffman = 1;
    if (struct_size > sizeof(d))
        struct_size = sizeof(d);
    memcpy(opt, &d, struct_size);
}

/* Merge the caller's options over the defaults, reading no field past its
 * struct_size (an older caller's struct is shorter). */
static void load_options(sluice_hpack_options *o, const sluice_hpack_options *user)
{
    sluice_hpack_options_init(o);
    if (!user || user->struct_size < sizeof(size_t))
        return;
    size_t n = user->struct_size < sizeof(*o) ? user->struct_size : sizeof(*o);
    memcpy(o, user, n);
    o->struct_size = sizeof(*o);
}

/* ---- integers and strings (§5.1, §5.2) ---------------------------------- */

static size_t put_int(uint8_t *out, uint8_t first, unsigned prefix, uint32_t v)
{
    uint32_t max = (1u << prefix) - 1;
    if (v < max) {
        out[0] = (uint8_t)(first | v);
        return 1;
    }
    out[0] = (uint8_t)(first | max);
    v -= max;
    size_t n = 1;
    while (v >= 128) {
        out[n++] = (uint8_t)(0x80 | (v & 0x7f));
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static int get_int(const uint8_t **pp, const uint8_t *end, unsigned prefix,
                   uint32_t *out)
{
    const uint8_t *p = *pp;
    uint32_t max = (1u << prefix) - 1;
    uint32_t v = *p++ & max;
    if (v < max) {
        *pp = p;
        *out = v;
        return 0;
    }
    uint64_t acc = v;
    for (unsigned shift = 0;; shift += 7) {
        if (p == end)
            return SLUICE_ERR_HPACK_TRUNCATED;
        if (shift > 28) /* a sixth continuation byte cannot fit 32 bits */
            return SLUICE_ERR_HPACK_INTEGER;
        uint8_t b = *p++;
        acc += (uint64_t)(b & 0x7f) << shift;
        if (acc > UINT32_MAX)
            return SLUICE_ERR_HPACK_INTEGER;
        if (!(b & 0x80))
            break;
    }
    *pp = p;
    *out = (uint32_t)acc;
    return 0;
}

static size_t put_str(uint8_t *out, const uint8_t *s, size_t len, int huffman)
{
    if (huffman && len > 0) {
        size_t hl = sl_huffman_encoded_len(s, len);
        if (hl < len) {
            size_t n = put_int(out, 0x80, 7, (uint32_t)hl);
            return n + sl_huffman_encode(out + n, s, len);
        }
    }
    size_t n = put_int(out, 0, 7, (uint32_t)len);
    if (len)
        memcpy(out + n, s, len);
    return n + len;
}

/* ---- encoder ------------------------------------------------------------ */

int sluice_hpack_encoder_new(sluice_hpack_encoder **out, const sluice_hpack_options *opt,
                             const sluice_allocator *alloc)
{
    sl_mem mem;
    sluice_hpack_options o;
    if (!out)
        return SLUICE_ERR_INVAL;
    sl_mem_init(&mem, alloc);
    load_options(&o, opt);
    sluice_hpack_encoder *e = sl_calloc(&mem, sizeof(*e));
    if (!e)
        return SLUICE_ERR_NOMEM;
    e->mem = mem;
    e->cap = o.max_table_size;
    e->max_indexed_value = o.max_indexed_value_len;
    e->huffman = o.huffman;
    /* Both ends start at 4096 (RFC 9113 §6.5.2); a smaller own limit must
     * be announced before it is used. */
    sl_hpack_table_init(&e->t, &mem, DEFAULT_TABLE_SIZE);
    if (e->cap < DEFAULT_TABLE_SIZE)
        sluice_hpack_encoder_set_max_table_size(e, DEFAULT_TABLE_SIZE);
    *out = e;
    return 0;
}

void sluice_hpack_encoder_free(sluice_hpack_encoder *e)
{
    if (!e)
        return;
    sl_hpack_table_free(&e->t);
    sl_free(&e->mem, e);
}

int sluice_hpack_encoder_set_max_table_size(sluice_hpack_encoder *e, uint32_t size)
{
    if (!e)
        return SLUICE_ERR_INVAL;
    uint32_t eff = size < e->cap ? size : e->cap;
    if (!e->update_pending) {
        if (eff == e->t.max_size)
            return 0;
        e->update_pending = 1;
        e->update_min = eff;
    } else if (eff < e->update_min) {
        e->update_min = eff;
    }
    e->update_final = eff;
    return 0;
}

size_t sluice_hpack_encoder_table_size(const sluice_hpack_encoder *e)
{
    return e ? e->t.size : 0;
}

size_t sluice_hpack_encode_bound(const sluice_hpack_encoder *e, const sluice_nv *nv,
                                 size_t n)
{
    (void)e;
    size_t b = 12; /* two size updates */
    for (size_t i = 0; i < n; i++)
        b += nv[i].name_len + nv[i].value_len + 16;
    return b;
}

enum idx_mode { IDX_INCREMENTAL, IDX_NONE, IDX_NEVER };

/* memcmp() must not see NULL, even for zero bytes. */
static int mem_eq(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

static int name_is(const sluice_nv *nv, const char *s, size_t len)
{
    return nv->name_len == len && mem_eq(nv->name, s, len);
}
#define NAME_IS(nv, lit) name_is((nv), (lit), sizeof(lit) - 1)

/* Values that differ in almost every message: indexing them only evicts
 * entries that would have been reused. */
static int is_volatile(const sluice_nv *nv)
{
    switch (nv->name_len) {
    case 3: return NAME_IS(nv, "age");
    case 4: return NAME_IS(nv, "etag");
    case 5: return NAME_IS(nv, ":path");
    case 7: return NAME_IS(nv, "expires");
    case 8: return NAME_IS(nv, "location");
    case 10: return NAME_IS(nv, "set-cookie");
    case 13:
        return NAME_IS(nv, "last-modified") || NAME_IS(nv, "if-none-match") ||
               NAME_IS(nv, "content-range");
    case 14: return NAME_IS(nv, "content-length");
    case 17: return NAME_IS(nv, "if-modified-since");
    }
    return 0;
}

static enum idx_mode choose_mode(const sluice_hpack_encoder *e, const sluice_nv *nv)
{
    if (nv->flags & SLUICE_NV_NEVER_INDEX)
        return IDX_NEVER;
    if (NAME_IS(nv, "authorization") || NAME_IS(nv, "proxy-authorization"))
        return IDX_NEVER;
    if (NAME_IS(nv, "cookie") && nv->value_len < COOKIE_CRUMB_MIN)
        return IDX_NEVER;
    if (nv->flags & SLUICE_NV_NO_INDEX)
        return IDX_NONE;
    size_t esize = nv->name_len + nv->value_len + SL_HPACK_ENTRY_OVERHEAD;
    if (nv->value_len > e->max_indexed_value || esize > e->t.max_size / 4 * 3)
        return IDX_NONE;
    if (is_volatile(nv))
        return IDX_NONE;
    return IDX_INCREMENTAL;
}

/* Full match (>0: index) or name match (<0: -index) or 0, searching the
 * static table, then the dynamic table newest first. */
static long find(const sluice_hpack_encoder *e, const sluice_nv *nv,
                 uint32_t name_hash, uint32_t nv_hash)
{
    long name_idx = 0;
    unsigned s = sl_hpack_static_find_name(nv->name, nv->name_len);
    if (s) {
        name_idx = -(long)s;
        /* Entries of one name are adjacent (:status is 8..14). */
        for (unsigned i = s; i <= SL_HPACK_STATIC_LEN; i++) {
            const sl_hpack_static_entry *se = &sl_hpack_static[i - 1];
            if (se->name_len != nv->name_len || !mem_eq(se->name, nv->name, nv->name_len))
                break;
            if (se->value_len == nv->value_len && mem_eq(se->value, nv->value, nv->value_len))
                return (long)i;
        }
    }
    const sl_hpack_table *t = &e->t;
    for (uint32_t i = 1; i <= t->count; i++) {
        const sl_hpack_entry *de = sl_hpack_table_get(t, i);
        if (de->name_hash != name_hash || de->name_len != nv->name_len ||
            !mem_eq(sl_hpack_entry_name(t, de), nv->name, nv->name_len))
            continue;
        if (de->nv_hash == nv_hash && de->value_len == nv->value_len &&
            mem_eq(sl_hpack_entry_value(t, de), nv->value, nv->value_len))
            return (long)(SL_HPACK_STATIC_LEN + i);
        if (!name_idx)
            name_idx = -(long)(SL_HPACK_STATIC_LEN + i);
    }
    return name_idx;
}

static int encode_field(sluice_hpack_encoder *e, const sluice_nv *nv, uint8_t *out,
                        size_t *pos)
{
    enum idx_mode mode = choose_mode(e, nv);
    uint32_t nh = sl_hpack_hash(SL_HPACK_HASH_SEED, nv->name, nv->name_len);
    uint32_t vh = sl_hpack_hash(nh, nv->value, nv->value_len);
    long found = find(e, nv, nh, vh);
    uint8_t *p = out + *pos;
    if (found > 0 && mode != IDX_NEVER) { /* §6.1 */
        *pos += put_int(p, 0x80, 7, (uint32_t)found);
        return 0;
    }
    uint32_t name_idx = found < 0 ? (uint32_t)-found : 0;
    if (found > 0)
        name_idx = (uint32_t)found;
    size_t n;
    switch (mode) { /* §6.2.1, §6.2.2, §6.2.3 */
    case IDX_INCREMENTAL: n = put_int(p, 0x40, 6, name_idx); break;
    case IDX_NONE: n = put_int(p, 0x00, 4, name_idx); break;
    default: n = put_int(p, 0x10, 4, name_idx); break;
    }
    if (!name_idx)
        n += put_str(p + n, nv->name, nv->name_len, e->huffman);
    n += put_str(p + n, nv->value, nv->value_len, e->huffman);
    *pos += n;
    if (mode == IDX_INCREMENTAL)
        return sl_hpack_table_add(&e->t, nv->name, nv->name_len, nv->value,
                                  nv->value_len, nh, vh);
    return 0;
}

static size_t encode_updates(sluice_hpack_encoder *e, uint8_t *out)
{
    size_t n = 0;
    if (!e->update_pending)
        return 0;
    if (e->update_min < e->update_final) {
        n += put_int(out, 0x20, 5, e->update_min);
        sl_hpack_table_set_max(&e->t, e->update_min);
    }
    n += put_int(out + n, 0x20, 5, e->update_final);
    sl_hpack_table_set_max(&e->t, e->update_final);
    e->update_pending = 0;
    return n;
}

int sluice_hpack_encode(sluice_hpack_encoder *e, const sluice_nv *nv, size_t n,
                        uint8_t *out, size_t cap, size_t *out_len)
{
    if (!e || (n && !nv) || !out_len || (cap && !out))
        return SLUICE_ERR_INVAL;
    for (size_t i = 0; i < n; i++)
        if (nv[i].name_len > UINT32_MAX / 2 || nv[i].value_len > UINT32_MAX / 2)
            return SLUICE_ERR_INVAL;
    if (cap < sluice_hpack_encode_bound(e, nv, n))
        return SLUICE_ERR_NOBUF;
    size_t pos = encode_updates(e, out);
    for (size_t i = 0; i < n; i++) {
        int rv = encode_field(e, &nv[i], out, &pos);
        if (rv != 0)
            return rv;
    }
    *out_len = pos;
    return 0;
}

/* ---- decoder ------------------------------------------------------------ */

int sluice_hpack_decoder_new(sluice_hpack_decoder **out, const sluice_hpack_options *opt,
                             const sluice_allocator *alloc)
{
    sl_mem mem;
    sluice_hpack_options o;
    if (!out)
        return SLUICE_ERR_INVAL;
    sl_mem_init(&mem, alloc);
    load_options(&o, opt);
    sluice_hpack_decoder *d = sl_calloc(&mem, sizeof(*d));
    if (!d)
        return SLUICE_ERR_NOMEM;
    d->mem = mem;
    d->max_list = o.max_header_list_size;
    /* Until our SETTINGS is acknowledged the peer may use 4096 (§4.2). */
    d->settings_max = DEFAULT_TABLE_SIZE;
    sl_hpack_table_init(&d->t, &mem, DEFAULT_TABLE_SIZE);
    if (o.max_table_size != DEFAULT_TABLE_SIZE)
        sluice_hpack_decoder_set_max_table_size(d, o.max_table_size);
    *out = d;
    return 0;
}

void sluice_hpack_decoder_free(sluice_hpack_decoder *d)
{
    if (!d)
        return;
    sl_hpack_table_free(&d->t);
    sl_free(&d->mem, d->scratch);
    sl_free(&d->mem, d);
}

int sluice_hpack_decoder_set_max_table_size(sluice_hpack_decoder *d, uint32_t size)
{
    if (!d)
        return SLUICE_ERR_INVAL;
    d->settings_max = size;
    if (size < d->t.max_size)
        d->need_update = 1;
    return 0;
}

size_t sluice_hpack_decoder_table_size(const sluice_hpack_decoder *d)
{
    return d ? d->t.size : 0;
}

static int reserve_scratch(sluice_hpack_decoder *d, size_t n)
{
    return sl_grow(&d->mem, &d->scratch, &d->scratch_cap, n, 256);
}

/* A string of the field being decoded: in the input, or at an offset of
 * scratch (which may move while the field's second string is decoded). */
typedef struct str_ref {
    const uint8_t *p;
    size_t off;
    size_t len;
    int in_scratch;
} str_ref;

static const uint8_t *str_ptr(const sluice_hpack_decoder *d, const str_ref *s)
{
    return s->in_scratch ? d->scratch + s->off : s->p;
}

static int get_str(sluice_hpack_decoder *d, const uint8_t **pp, const uint8_t *end,
                   size_t *scratch_used, str_ref *s)
{
    if (*pp == end)
        return SLUICE_ERR_HPACK_TRUNCATED;
    int huff = **pp & 0x80;
    uint32_t len;
    int rv = get_int(pp, end, 7, &len);
    if (rv != 0)
        return rv;
    if (len > (size_t)(end - *pp))
        return SLUICE_ERR_HPACK_TRUNCATED;
    if (!huff) {
        s->p = *pp;
        s->len = len;
        s->in_scratch = 0;
        *pp += len;
        return 0;
    }
    /* The shortest code is 5 bits, so len bytes decode to at most 8len/5. */
    size_t maxout = (size_t)len * 8 / 5 + 1;
    rv = reserve_scratch(d, *scratch_used + maxout);
    if (rv != 0)
        return rv;
    long n = sl_huffman_decode(d->scratch + *scratch_used, *pp, len);
    if (n < 0)
        return (int)n;
    s->off = *scratch_used;
    s->len = (size_t)n;
    s->in_scratch = 1;
    *scratch_used += (size_t)n;
    *pp += len;
    return 0;
}

/* Copy a name that lives in the dynamic table to scratch, so adding the
 * new entry cannot evict or move it first (RFC 7541 §4.4). */
static int detach_name(sluice_hpack_decoder *d, str_ref *name, size_t *scratch_used)
{
    int rv = reserve_scratch(d, *scratch_used + name->len + 1);
    if (rv != 0)
        return rv;
    if (name->len)
        memcpy(d->scratch + *scratch_used, name->p, name->len);
    name->off = *scratch_used;
    name->in_scratch = 1;
    *scratch_used += name->len;
    return 0;
}

/* Resolve an index of either table (§2.3.3) into a name and maybe value. */
static int lookup(const sluice_hpack_decoder *d, uint32_t idx, str_ref *name,
                  str_ref *value, int *dynamic)
{
    if (idx == 0)
        return SLUICE_ERR_HPACK_INDEX;
    name->in_scratch = value->in_scratch = 0;
    if (idx <= SL_HPACK_STATIC_LEN) {
        const sl_hpack_static_entry *se = &sl_hpack_static[idx - 1];
        name->p = (const uint8_t *)se->name;
        name->len = se->name_len;
        value->p = (const uint8_t *)se->value;
        value->len = se->value_len;
        *dynamic = 0;
        return 0;
    }
    idx -= SL_HPACK_STATIC_LEN;
    if (idx > d->t.count)
        return SLUICE_ERR_HPACK_INDEX;
    const sl_hpack_entry *e = sl_hpack_table_get(&d->t, idx);
    name->p = sl_hpack_entry_name(&d->t, e);
    name->len = e->name_len;
    value->p = sl_hpack_entry_value(&d->t, e);
    value->len = e->value_len;
    *dynamic = 1;
    return 0;
}

typedef struct decode_ctx {
    sluice_hpack_emit_fn emit;
    void *ud;
    size_t list_size;
    int over;
} decode_ctx;

static int emit_field(sluice_hpack_decoder *d, decode_ctx *c, const str_ref *name,
                      const str_ref *value, uint32_t flags)
{
    c->list_size += name->len + value->len + SL_HPACK_ENTRY_OVERHEAD;
    if (c->list_size > d->max_list)
        c->over = 1;
    if (c->over)
        return 0; /* keep decoding so the table stays in sync */
    sluice_nv nv = {str_ptr(d, name), str_ptr(d, value), name->len, value->len, flags};
    int rv = c->emit ? c->emit(c->ud, &nv) : 0;
    return rv < 0 ? rv : 0;
}

static int decode_indexed(sluice_hpack_decoder *d, decode_ctx *c, const uint8_t **pp,
                          const uint8_t *end)
{
    uint32_t idx;
    str_ref name, value;
    int dyn;
    int rv = get_int(pp, end, 7, &idx);
    if (rv == 0)
        rv = lookup(d, idx, &name, &value, &dyn);
    if (rv == 0)
        rv = emit_field(d, c, &name, &value, 0);
    return rv;
}

static int decode_literal(sluice_hpack_decoder *d, decode_ctx *c, const uint8_t **pp,
                          const uint8_t *end, unsigned prefix, enum idx_mode mode)
{
    uint32_t idx;
    str_ref name, value;
    size_t used = 0;
    int dyn = 0;
    int rv = get_int(pp, end, prefix, &idx);
    if (rv != 0)
        return rv;
    if (idx) {
        rv = lookup(d, idx, &name, &value, &dyn);
        if (rv == 0 && dyn && mode == IDX_INCREMENTAL)
            rv = detach_name(d, &name, &used);
    } else {
        rv = get_str(d, pp, end, &used, &name);
    }
    if (rv == 0)
        rv = get_str(d, pp, end, &used, &value);
    if (rv == 0)
        rv = emit_field(d, c, &name, &value, mode == IDX_NEVER ? SLUICE_NV_NEVER_INDEX : 0);
    if (rv == 0 && mode == IDX_INCREMENTAL) {
        const uint8_t *np = str_ptr(d, &name), *vp = str_ptr(d, &value);
        uint32_t nh = sl_hpack_hash(SL_HPACK_HASH_SEED, np, name.len);
        rv = sl_hpack_table_add(&d->t, np, name.len, vp, value.len, nh,
                                sl_hpack_hash(nh, vp, value.len));
    }
    return rv;
}

static int decode_size_update(sluice_hpack_decoder *d, const uint8_t **pp,
                              const uint8_t *end)
{
    uint32_t size;
    int rv = get_int(pp, end, 5, &size);
    if (rv != 0)
        return rv;
    if (size > d->settings_max) /* §6.3 */
        return SLUICE_ERR_HPACK_TABLE_SIZE;
    sl_hpack_table_set_max(&d->t, size);
    d->need_update = 0;
    return 0;
}

int sluice_hpack_decode(sluice_hpack_decoder *d, const uint8_t *block, size_t len,
                        sluice_hpack_emit_fn emit, void *ud)
{
    if (!d || (len && !block))
        return SLUICE_ERR_INVAL;
    if (len == 0) /* an empty block is valid, unless an update is owed */
        return d->need_update ? SLUICE_ERR_HPACK_TABLE_SIZE : 0;
    decode_ctx c = {emit, ud, 0, 0};
    const uint8_t *p = block, *end = block + len;
    int at_start = 1;
    while (p < end) {
        uint8_t b = *p;
        int rv;
        if ((b & 0xe0) == 0x20) { /* §6.3: only before the first field */
            if (!at_start)
                return SLUICE_ERR_HPACK_TABLE_SIZE;
            rv = decode_size_update(d, &p, end);
            if (rv != 0)
                return rv;
            continue;
        }
        if (at_start && d->need_update) /* §4.2: the update is mandatory */
            return SLUICE_ERR_HPACK_TABLE_SIZE;
        at_start = 0;
        if (b & 0x80)
            rv = decode_indexed(d, &c, &p, end);
        else if (b & 0x40)
            rv = decode_literal(d, &c, &p, end, 6, IDX_INCREMENTAL);
        else if (b & 0x10)
            rv = decode_literal(d, &c, &p, end, 4, IDX_NEVER);
        else
            rv = decode_literal(d, &c, &p, end, 4, IDX_NONE);
        if (rv != 0)
            return rv;
    }
    if (d->need_update)
        return SLUICE_ERR_HPACK_TABLE_SIZE;
    return c.over ? SLUICE_ERR_HEADER_LIST_TOO_LARGE : 0;
}
