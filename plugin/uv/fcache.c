/* fcache.c — small-file cache of a worker: chained hash by path, LRU
 * eviction within entry and byte bounds, entries in use kept alive by a
 * reference count until their last response has been written. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fcache.h"

#define NBUCKETS 1024u

static uint32_t hash_path(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

void sl_fcache_init(sl_fcache *c)
{
    memset(c, 0, sizeof(*c));
}

static void entry_free(sl_fentry *e)
{
    free(e->data);
    free(e->path);
    free(e);
}

/* Take e out of the table and the LRU; it is freed when unused. */
static void detach(sl_fcache *c, sl_fentry *e)
{
    sl_fentry **pp = &c->buckets[e->hash % NBUCKETS];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    c->entries--;
    c->bytes -= (size_t)(e->kind == SL_FENTRY_FILE ? e->st.st_size : 0);
    if (--e->refs == 0)
        entry_free(e);
}

void sl_fcache_free(sl_fcache *c)
{
    while (c->lru_head)
        detach(c, c->lru_head);
    free(c->buckets);
    c->buckets = NULL;
}

static void touch(sl_fcache *c, sl_fentry *e)
{
    if (c->lru_head == e)
        return;
    e->lru_prev->lru_next = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    c->lru_head->lru_prev = e;
    c->lru_head = e;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

static sl_fentry *load(const char *path, uint32_t h, uint64_t now_ms)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    struct stat st;
    sl_fentry *e = NULL;
    if (fstat(fd, &st) != 0 || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) ||
        (S_ISREG(st.st_mode) && st.st_size > SL_FCACHE_MAX_FILE))
        goto out;
    e = calloc(1, sizeof(*e));
    if (!e || !(e->path = strdup(path)))
        goto fail;
    e->st = st;
    e->hash = h;
    e->checked_ms = now_ms;
    e->kind = S_ISDIR(st.st_mode) ? SL_FENTRY_DIR : SL_FENTRY_FILE;
    if (e->kind == SL_FENTRY_FILE) {
        size_t len = (size_t)st.st_size, got = 0;
        e->data = malloc(len ? len : 1);
        if (!e->data)
            goto fail;
        while (got < len) {
            ssize_t n = pread(fd, e->data + got, len - got, (off_t)got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                goto fail; /* changed under us: let the caller open it */
            got += (size_t)n;
        }
    }
    goto out;
fail:
    if (e)
        entry_free(e);
    e = NULL;
out:
    close(fd);
    return e;
}

static void insert(sl_fcache *c, sl_fentry *e)
{
    size_t size = (size_t)(e->kind == SL_FENTRY_FILE ? e->st.st_size : 0);
    while (c->lru_tail && (c->entries >= SL_FCACHE_MAX_ENTRIES ||
                           c->bytes + size > SL_FCACHE_MAX_BYTES))
        detach(c, c->lru_tail);
    sl_fentry **b = &c->buckets[e->hash % NBUCKETS];
    e->hnext = *b;
    *b = e;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
    c->entries++;
    c->bytes += size;
    e->refs = 1; /* the cache's own */
}

sl_fentry *sl_fcache_get(sl_fcache *c, const char *path, uint64_t now_ms)
{
    if (!c->buckets && !(c->buckets = calloc(NBUCKETS, sizeof(*c->buckets))))
        return NULL;
    uint32_t h = hash_path(path);
    sl_fentry *e = c->buckets[h % NBUCKETS];
    while (e && (e->hash != h || strcmp(e->path, path) != 0))
        e = e->hnext;
    if (e && now_ms - e->checked_ms >= SL_FCACHE_VALID_MS) {
        struct stat st;
        if (stat(path, &st) == 0 && same_file(&st, &e->st)) {
            e->checked_ms = now_ms;
        } else { /* changed or gone: reload below */
            detach(c, e);
            e = NULL;
        }
    }
    if (!e) {
        e = load(path, h, now_ms);
        if (!e)
            return NULL;
        insert(c, e);
    } else {
        touch(c, e);
    }
    e->refs++;
    return e;
}

void sl_fcache_put(sl_fcache *c, sl_fentry *e)
{
    (void)c;
    if (e && --e->refs == 0)
        entry_free(e);
}
