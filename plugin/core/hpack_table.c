/* hpack_table.c — HPACK's static table (RFC 7541 Appendix A) and dynamic
 * table: entries in insertion order, bytes in one buffer compacted lazily. */
#include <string.h>

#include "hpack_table.h"

#define S(n, v) { n, v, (uint8_t)(sizeof(n) - 1), (uint8_t)(sizeof(v) - 1) }

const sl_hpack_static_entry sl_hpack_static[SL_HPACK_STATIC_LEN] = {
    S(":authority", ""), S(":method", "GET"), S(":method", "POST"),
    S(":path", "/"), S(":path", "/index.html"), S(":scheme", "http"),
    S(":scheme", "https"), S(":status", "200"), S(":status", "204"),
    S(":status", "206"), S(":status", "304"), S(":status", "400"),
    S(":status", "404"), S(":status", "500"), S("accept-charset", ""),
    S("accept-encoding", "gzip, deflate"), S("accept-language", ""),
    S("accept-ranges", ""), S("accept", ""),
    S("access-control-allow-origin", ""), S("age", ""), S("allow", ""),
    S("authorization", ""), S("cache-control", ""),
    S("content-disposition", ""), S("content-encoding", ""),
    S("content-language", ""), S("content-length", ""),
    S("content-location", ""), S("content-range", ""),
    S("content-type", ""), S("cookie", ""), S("date", ""), S("etag", ""),
    S("expect", ""), S("expires", ""), S("from", ""), S("host", ""),
    S("if-match", ""), S("if-modified-since", ""), S("if-none-match", ""),
    S("if-range", ""), S("if-unmodified-since", ""), S("last-modified", ""),
    S("link", ""), S("location", ""), S("max-forwards", ""),
    S("proxy-authenticate", ""), S("proxy-authorization", ""),
    S("range", ""), S("referer", ""), S("refresh", ""),
    S("retry-after", ""), S("server", ""), S("set-cookie", ""),
    S("strict-transport-security", ""), S("transfer-encoding", ""),
    S("user-agent", ""), S("vary", ""), S("via", ""),
    S("www-authenticate", ""),
};

#undef S

/* First static index of each distinct name, grouped by name length, so a
 * lookup compares only the few names of the right length. */
static const uint8_t by_len[] = {
    /* 3 */ 21, 60,
    /* 4 */ 33, 34, 37, 38, 45, 59,
    /* 5 */ 4, 22, 50,
    /* 6 */ 19, 32, 35, 54,
    /* 7 */ 2, 6, 8, 36, 51, 52,
    /* 8 */ 39, 42, 46,
    /* 10 */ 1, 55, 58,
    /* 11 */ 53,
    /* 12 */ 31, 47,
    /* 13 */ 18, 23, 24, 30, 41, 44,
    /* 14 */ 15, 28,
    /* 15 */ 16, 17,
    /* 16 */ 26, 27, 29, 61,
    /* 17 */ 40, 57,
    /* 18 */ 48,
    /* 19 */ 25, 43, 49,
    /* 25 */ 56,
    /* 27 */ 20,
};

/* by_len[start[len] .. start[len + 1]) holds the names of length len. */
static const uint8_t start[29] = {
    0, 0, 0, 0, 2, 8, 11, 15, 21, 24, 24, 27, 28, 30, 36, 38, 40, 44, 46,
    47, 50, 50, 50, 50, 50, 50, 51, 51, 52,
};

unsigned sl_hpack_static_find_name(const uint8_t *name, size_t len)
{
    if (len < 3 || len > 27)
        return 0;
    for (unsigned i = start[len]; i < start[len + 1]; i++) {
        const sl_hpack_static_entry *e = &sl_hpack_static[by_len[i] - 1];
        if (memcmp(e->name, name, len) == 0)
            return by_len[i];
    }
    return 0;
}

uint32_t sl_hpack_hash(uint32_t seed, const uint8_t *p, size_t n)
{
    /* 8 bytes per step: header values such as cookies run to hundreds of
     * bytes, and this runs for every field the encoder sees. */
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return (uint32_t)h;
}

void sl_hpack_table_init(sl_hpack_table *t, const sl_mem *mem, size_t max_size)
{
    memset(t, 0, sizeof(*t));
    t->mem = *mem;
    t->max_size = max_size;
}

void sl_hpack_table_free(sl_hpack_table *t)
{
    sl_free(&t->mem, t->ents);
    sl_free(&t->mem, t->buf);
    t->ents = NULL;
    t->buf = NULL;
}

static void evict_oldest(sl_hpack_table *t)
{
    const sl_hpack_entry *e = sl_hpack_table_get(t, t->count);
    t->size -= e->name_len + e->value_len + SL_HPACK_ENTRY_OVERHEAD;
    t->count--;
    if (t->count == 0)
        t->lo = t->hi = 0;
    else
        t->lo = sl_hpack_table_get(t, t->count)->off;
}

void sl_hpack_table_set_max(sl_hpack_table *t, size_t max_size)
{
    t->max_size = max_size;
    while (t->size > max_size)
        evict_oldest(t);
}

/* Move the live bytes to the front of the buffer. */
static void compact(sl_hpack_table *t)
{
    if (t->lo == 0)
        return;
    memmove(t->buf, t->buf + t->lo, t->hi - t->lo);
    for (uint32_t i = 1; i <= t->count; i++)
        t->ents[(t->next - i) & t->ent_mask].off -= (uint32_t)t->lo;
    t->hi -= t->lo;
    t->lo = 0;
}

static int reserve_bytes(sl_hpack_table *t, size_t n)
{
    if (t->hi + n <= t->cap)
        return 0;
    compact(t);
    return sl_grow(&t->mem, &t->buf, &t->cap, t->hi + n, 256);
}

static int reserve_entry(sl_hpack_table *t)
{
    uint32_t cap = t->ents ? t->ent_mask + 1 : 0;
    if (t->count < cap)
        return 0;
    uint32_t ncap = cap ? cap * 2 : 16;
    sl_hpack_entry *e = sl_malloc(&t->mem, ncap * sizeof(*e));
    if (!e)
        return SLUICE_ERR_NOMEM;
    /* Re-seat the entries so insertion number n sits at n & (ncap - 1). */
    for (uint32_t i = 1; i <= t->count; i++) {
        uint32_t n = t->next - i;
        e[n & (ncap - 1)] = t->ents[n & t->ent_mask];
    }
    sl_free(&t->mem, t->ents);
    t->ents = e;
    t->ent_mask = ncap - 1;
    return 0;
}

int sl_hpack_table_add(sl_hpack_table *t, const uint8_t *name, size_t name_len,
                       const uint8_t *value, size_t value_len,
                       uint32_t name_hash, uint32_t nv_hash)
{
    size_t esize = name_len + value_len + SL_HPACK_ENTRY_OVERHEAD;
    if (esize > t->max_size) { /* RFC 7541 §4.4: empties the table */
        while (t->count)
            evict_oldest(t);
        return 0;
    }
    while (t->size + esize > t->max_size)
        evict_oldest(t);
    /* At least one byte, so entries always point into a real buffer even
     * when name and value are both empty. */
    int rv = reserve_bytes(t, name_len + value_len ? name_len + value_len : 1);
    if (rv == 0)
        rv = reserve_entry(t);
    if (rv != 0)
        return rv;
    sl_hpack_entry *e = &t->ents[t->next & t->ent_mask];
    e->off = (uint32_t)t->hi;
    e->name_len = (uint32_t)name_len;
    e->value_len = (uint32_t)value_len;
    e->name_hash = name_hash;
    e->nv_hash = nv_hash;
    if (name_len)
        memcpy(t->buf + t->hi, name, name_len);
    if (value_len)
        memcpy(t->buf + t->hi + name_len, value, value_len);
    t->hi += name_len + value_len;
    t->next++;
    t->count++;
    t->size += esize;
    return 0;
}
