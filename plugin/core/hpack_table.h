/* hpack_table.h — HPACK's static table and the dynamic table (RFC 7541 §2.3,
 * §4): a FIFO of entries whose bytes live in one buffer, compacted on demand. */
#ifndef SL_HPACK_TABLE_H
#define SL_HPACK_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define SL_HPACK_STATIC_LEN 61
#define SL_HPACK_ENTRY_OVERHEAD 32 /* RFC 7541 §4.1 */

typedef struct sl_hpack_static_entry {
    const char *name;
    const char *value;
    uint8_t name_len;
    uint8_t value_len;
} sl_hpack_static_entry;

/* Index 1..61 of RFC 7541 Appendix A at [index - 1]. */
extern const sl_hpack_static_entry sl_hpack_static[SL_HPACK_STATIC_LEN];

/* The first static index whose name is name, or 0. */
unsigned sl_hpack_static_find_name(const uint8_t *name, size_t len);

typedef struct sl_hpack_entry {
    uint32_t off;       /* of the name in the table's byte buffer */
    uint32_t name_len;
    uint32_t value_len;
    uint32_t name_hash; /* let the encoder skip most memcmp()s */
    uint32_t nv_hash;
} sl_hpack_entry;

typedef struct sl_hpack_table {
    sl_mem mem;
    sl_hpack_entry *ents; /* ring; entry of insertion number n at n & mask */
    uint32_t ent_mask;    /* ring capacity - 1 (0 when none allocated) */
    uint32_t next;        /* insertion number of the next entry */
    uint32_t count;
    size_t size;          /* RFC 7541 §4.1 size of all entries */
    size_t max_size;      /* current maximum (set by size updates) */
    uint8_t *buf;         /* live bytes are buf[lo..hi) */
    size_t lo, hi, cap;
} sl_hpack_table;

void sl_hpack_table_init(sl_hpack_table *t, const sl_mem *mem, size_t max_size);
void sl_hpack_table_free(sl_hpack_table *t);
/* Change the maximum size, evicting oldest entries as needed (§4.3). */
void sl_hpack_table_set_max(sl_hpack_table *t, size_t max_size);
/* Add an entry, evicting as needed (§4.4). name and value must not point
 * into the table. An entry larger than the maximum empties the table and
 * is not added; that is not an error. */
int sl_hpack_table_add(sl_hpack_table *t, const uint8_t *name, size_t name_len,
                       const uint8_t *value, size_t value_len,
                       uint32_t name_hash, uint32_t nv_hash);

/* Dynamic entry i, 1 = newest. i must be 1..count. */
static inline const sl_hpack_entry *sl_hpack_table_get(const sl_hpack_table *t,
                                                       uint32_t i)
{
    return &t->ents[(t->next - i) & t->ent_mask];
}

static inline const uint8_t *sl_hpack_entry_name(const sl_hpack_table *t,
                                                 const sl_hpack_entry *e)
{
    return t->buf + e->off;
}

static inline const uint8_t *sl_hpack_entry_value(const sl_hpack_table *t,
                                                  const sl_hpack_entry *e)
{
    return t->buf + e->off + e->name_len;
}

/* Hashes of a name, and of name and value together, as the table stores. */
uint32_t sl_hpack_hash(uint32_t seed, const uint8_t *p, size_t n);
#define SL_HPACK_HASH_SEED 0x9e3779b9u

#endif /* SL_HPACK_TABLE_H */
