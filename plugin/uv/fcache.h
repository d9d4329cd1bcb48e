/* fcache.h — a per-worker cache of small static files: their bytes, stat
 * and validators, revalidated at most once a second, so a hot small file
 * costs no open/fstat/pread/close per request. */
#ifndef SL_UV_FCACHE_H
#define SL_UV_FCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define SL_FCACHE_MAX_FILE (256 * 1024)      /* larger files are not cached */
#define SL_FCACHE_MAX_BYTES (16u << 20)      /* per worker */
#define SL_FCACHE_MAX_ENTRIES 4096
#define SL_FCACHE_VALID_MS 1000              /* how long a stat is trusted */

enum sl_fentry_kind { SL_FENTRY_FILE, SL_FENTRY_DIR };

typedef struct sl_fentry {
    struct sl_fentry *hnext, *lru_prev, *lru_next;
    char *path;
    uint32_t hash;
    int kind;
    int refs;                /* requests using data; the cache holds one */
    struct stat st;
    uint8_t *data;           /* SL_FENTRY_FILE: the whole file */
    uint64_t checked_ms;
} sl_fentry;

typedef struct sl_fcache {
    sl_fentry **buckets;     /* 1024 */
    sl_fentry *lru_head, *lru_tail; /* most recent first */
    size_t entries, bytes;
} sl_fcache;

void sl_fcache_init(sl_fcache *c);
void sl_fcache_free(sl_fcache *c);
/* The entry for path with a reference taken, or NULL when it is not
 * cacheable (missing, large, not a file or directory): then the caller
 * opens the file itself and gets the real error. */
sl_fentry *sl_fcache_get(sl_fcache *c, const char *path, uint64_t now_ms);
void sl_fcache_put(sl_fcache *c, sl_fentry *e);

#endif /* SL_UV_FCACHE_H */
