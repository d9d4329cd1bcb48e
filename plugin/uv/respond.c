/* respond.c — built-in responders: static files (etag, last-modified,
 * conditional GET, single ranges), echo, and fixed returns, plus routing
 * by authority and path prefix. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h1.h"
#include "fcache.h"
#include "proxy.h"
#include "respond.h"
#include "policyhost.h"
#include "tls.h"

const char *sl_status_text(int status)
{
    const char *r = sl_h1_reason(status);
    return r[0] ? r : "Unknown";
}

int sl_resp_header(sl_req *r, const char *name, const char *value, size_t vlen)
{
    size_t nlen = strlen(name);
    if (r->nhdrs == SL_RESP_MAX_HDRS || r->hlen + nlen + vlen > sizeof(r->hbuf))
        return SLUICE_ERR_LIMIT;
    char *p = r->hbuf + r->hlen;
    memcpy(p, name, nlen);
    memcpy(p + nlen, value, vlen);
    r->hdrs[r->nhdrs++] = (sluice_nv){(const uint8_t *)p, (const uint8_t *)p + nlen, nlen,
                                      vlen, 0};
    r->hlen += nlen + vlen;
    return 0;
}

static void header_u64(sl_req *r, const char *name, uint64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%" PRIu64, v);
    sl_resp_header(r, name, b, (size_t)n);
}

static void set_mem_body(sl_req *r, const void *p, size_t len)
{
    r->body_kind = len && !r->is_head ? SL_BODY_MEM : SL_BODY_NONE;
    r->mem = p;
    r->body_len = len;
    header_u64(r, "content-length", len);
}

void sl_respond_error(sl_req *r, int status)
{
    r->status = status;
    r->nhdrs = r->hlen = 0;
    sl_resp_header(r, "content-type", "text/plain", 10);
    /* The text lives in a static table, so it outlives the request. */
    static const char *const bodies[] = {"bad request\n", "not found\n", "forbidden\n",
                                         "error\n"};
    const char *body = status == 400 ? bodies[0] : status == 404 ? bodies[1]
                     : status == 403 ? bodies[2] : bodies[3];
    set_mem_body(r, body, strlen(body));
}

/* ---- routing ---------------------------------------------------------- */

static int host_matches(const char *pattern, const char *host)
{
    if (!pattern)
        return 1;
    if (!host)
        return 0;
    size_t hl = strcspn(host, ":"); /* compare without the port */
    if (host[0] == '[')
        hl = strcspn(host, "]") + 1;
    return strlen(pattern) == hl && strncasecmp(pattern, host, hl) == 0;
}

static const sl_cfg_route *find_route(const sl_config *cfg, const char *authority,
                                      const char *path)
{
    const sl_cfg_route *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const sl_cfg_route *rt = &cfg->routes[i];
        size_t pl = strlen(rt->path);
        if (!host_matches(rt->authority, authority) || strncmp(rt->path, path, pl) != 0)
            continue;
        /* A prefix matches whole segments: /img does not match /images. */
        if (pl > 1 && rt->path[pl - 1] != '/' && path[pl] && path[pl] != '/' && path[pl] != '?')
            continue;
        /* Longest prefix wins; a route naming the host beats a catch-all. */
        size_t score = pl * 2 + (rt->authority ? 1 : 0);
        if (!best || score > best_len) {
            best = rt;
            best_len = score;
        }
    }
    return best;
}

/* ---- static files ----------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode the path part of the target and refuse anything that could leave
 * the root: "..", NUL, backslash-free but encoded slashes are kept as-is. */
static int safe_path(const char *target, size_t skip, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = target + skip;
    while (*p && *p != '?' && *p != '#') {
        int c = (unsigned char)*p++;
        if (c == '%') {
            int h = hexval(p[0]), l = h < 0 ? -1 : hexval(p[1]);
            if (l < 0)
                return -1;
            c = h * 16 + l;
            p += 2;
            if (c == 0 || c == '/')
                return -1;
        }
        if (o + 2 >= cap)
            return -1;
        if (c == '/' && o > 0 && out[o - 1] == '/')
            continue;
        out[o++] = (char)c;
    }
    out[o] = 0;
    /* No segment may be "." or "..". */
    for (const char *s = out; *s;) {
        while (*s == '/')
            s++;
        size_t n = strcspn(s, "/");
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return -1;
        s += n;
    }
    return 0;
}

static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"css", "text/css"}, {"js", "text/javascript"}, {"mjs", "text/javascript"},
        {"json", "application/json"}, {"txt", "text/plain; charset=utf-8"},
        {"svg", "image/svg+xml"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"webp", "image/webp"},
        {"ico", "image/x-icon"}, {"woff2", "font/woff2"}, {"woff", "font/woff"},
        {"wasm", "application/wasm"}, {"pdf", "application/pdf"},
        {"xml", "application/xml"}, {"mp4", "video/mp4"}, {"gz", "application/gzip"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

char *sl_strndup(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

int sl_tls_covers_cb(void *ud, const char *host, size_t len)
{
    return sl_tls_cert_covers(ud, host, len);
}

const char *sl_find_header(const sluice_nv *nv, size_t n, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (nv[i].name_len == nl && strncasecmp((const char *)nv[i].name, name, nl) == 0) {
            *len = nv[i].value_len;
            return (const char *)nv[i].value;
        }
    return NULL;
}

static int etag_matches(const char *list, size_t len, const char *etag)
{
    size_t el = strlen(etag);
    for (size_t i = 0; i + el <= len; i++) {
        if (list[i] == '*')
            return 1;
        if (memcmp(list + i, etag, el) == 0)
            return 1;
    }
    return 0;
}

static time_t parse_http_date(const char *v, size_t len)
{
    char b[64];
    struct tm tm;
    if (len >= sizeof(b))
        return (time_t)-1;
    memcpy(b, v, len);
    b[len] = 0;
    memset(&tm, 0, sizeof(tm));
    if (!strptime(b, "%a, %d %b %Y %H:%M:%S GMT", &tm))
        return (time_t)-1;
    return timegm(&tm);
}

/* "bytes=a-b", "bytes=a-", "bytes=-n": one range only (several: ignored,
 * RFC 9110 §14.2 lets a server serve the whole representation). Returns
 * 1 with the range, 0 to ignore, -1 when unsatisfiable. */
static int parse_range(const char *v, size_t len, uint64_t size, uint64_t *from, uint64_t *to)
{
    char b[64];
    if (len < 7 || len >= sizeof(b) || strncmp(v, "bytes=", 6) != 0)
        return 0;
    memcpy(b, v + 6, len - 6);
    b[len - 6] = 0;
    if (strchr(b, ','))
        return 0;
    char *dash = strchr(b, '-'), *end;
    if (!dash)
        return 0;
    *dash = 0;
    if (b[0] == 0) { /* suffix */
        unsigned long long n = strtoull(dash + 1, &end, 10);
        if (*end || dash[1] == 0 || n == 0 || size == 0)
            return n == 0 || size == 0 ? -1 : 0;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    unsigned long long a = strtoull(b, &end, 10);
    if (*end)
        return 0;
    unsigned long long z = size ? size - 1 : 0;
    if (dash[1]) {
        z = strtoull(dash + 1, &end, 10);
        if (*end || z < a)
            return 0;
        if (z >= size)
            z = size - 1;
    }
    if (a >= size)
        return -1;
    *from = a;
    *to = z;
    return 1;
}

static void http_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* root + the decoded, checked request path. */
static int build_path(const sl_cfg_route *rt, const char *path, char *full, size_t cap)
{
    char rel[2048];
    size_t skip = strlen(rt->path) - (rt->path[strlen(rt->path) - 1] == '/');
    if (safe_path(path, skip, rel, sizeof(rel)) != 0)
        return -EACCES;
    if (rel[0] && rel[0] != '/')
        return -ENOENT;
    int n = snprintf(full, cap, "%s%s", rt->root, rel[0] ? rel : "/");
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int add_index(const sl_cfg_route *rt, char *full, size_t cap)
{
    size_t fl = strlen(full);
    int n = snprintf(full + fl, cap - fl, "%s%s", full[fl - 1] == '/' ? "" : "/",
                     rt->index ? rt->index : "index.html");
    return n < 0 || (size_t)n >= cap - fl ? -ENAMETOOLONG : 0;
}

static int open_file(const sl_cfg_route *rt, char *full, size_t cap, struct stat *st)
{
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0 && fstat(fd, st) == 0 && S_ISDIR(st->st_mode)) {
        close(fd);
        if (add_index(rt, full, cap) != 0)
            return -ENAMETOOLONG;
        fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0 && fstat(fd, st) != 0) {
            close(fd);
            return -EIO;
        }
    }
    if (fd < 0)
        return -errno;
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return -EACCES;
    }
    return fd;
}

/* Small files come from the worker's cache (NULL: open it instead). */
static sl_fentry *cached_file(sl_req *r, const sl_cfg_route *rt, char *full, size_t cap)
{
    if (!r->fcache)
        return NULL;
    sl_fentry *e = sl_fcache_get(r->fcache, full, r->started_ms);
    if (e && e->kind == SL_FENTRY_DIR) {
        sl_fcache_put(r->fcache, e);
        e = add_index(rt, full, cap) == 0 ? sl_fcache_get(r->fcache, full, r->started_ms)
                                          : NULL;
    }
    if (e && e->kind != SL_FENTRY_FILE) {
        sl_fcache_put(r->fcache, e);
        e = NULL;
    }
    return e;
}

/* Validators, conditional GET and ranges (RFC 9110 §13, §14). Returns 1
 * with the byte range to send, 0 when no body goes out. */
static int static_headers(sl_req *r, const struct stat *st, const char *full,
                          const sluice_nv *nv, size_t n, uint64_t *from, uint64_t *len)
{
    char etag[64], lm[64];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st->st_mtime,
             (unsigned long long)st->st_size);
    http_date(st->st_mtime, lm, sizeof(lm));
    size_t vl;
    const char *inm = sl_find_header(nv, n, "if-none-match", &vl);
    const char *ims = inm ? NULL : sl_find_header(nv, n, "if-modified-since", &vl);
    int not_modified = inm ? etag_matches(inm, vl, etag)
                           : ims && parse_http_date(ims, vl) >= st->st_mtime;
    r->status = not_modified ? 304 : 200;
    sl_resp_header(r, "etag", etag, strlen(etag));
    sl_resp_header(r, "last-modified", lm, strlen(lm));
    sl_resp_header(r, "accept-ranges", "bytes", 5);
    if (not_modified)
        return 0;
    const char *ct = content_type(full);
    sl_resp_header(r, "content-type", ct, strlen(ct));
    uint64_t size = (uint64_t)st->st_size, to = size ? size - 1 : 0;
    *from = 0;
    const char *range = sl_find_header(nv, n, "range", &vl);
    int rr = range ? parse_range(range, vl, size, from, &to) : 0;
    char cr[96];
    if (rr < 0) {
        r->nhdrs = r->hlen = 0;
        sl_respond_error(r, 416);
        int k = snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
        sl_resp_header(r, "content-range", cr, (size_t)k);
        return 0;
    }
    if (rr > 0) {
        r->status = 206;
        int k = snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)*from,
                         (unsigned long long)to, (unsigned long long)size);
        sl_resp_header(r, "content-range", cr, (size_t)k);
    }
    *len = size ? to - *from + 1 : 0;
    header_u64(r, "content-length", *len);
    r->body_len = *len;
    r->body_kind = SL_BODY_NONE;
    return !r->is_head && *len > 0;
}

static void respond_static(sl_req *r, const sl_cfg_route *rt, const sluice_nv *nv, size_t n)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        sl_respond_error(r, 405);
        sl_resp_header(r, "allow", "GET, HEAD", 9);
        return;
    }
    char full[4096];
    struct stat st;
    uint64_t from = 0, len = 0;
    int rc = build_path(rt, r->path, full, sizeof(full));
    sl_fentry *e = rc == 0 ? cached_file(r, rt, full, sizeof(full)) : NULL;
    if (e) { /* memory body: no file syscalls at all */
        if (static_headers(r, &e->st, full, nv, n, &from, &len)) {
            r->fentry = e;
            r->body_kind = SL_BODY_MEM;
            r->mem = e->data + from;
        } else {
            sl_fcache_put(r->fcache, e);
        }
        return;
    }
    int fd = rc == 0 ? open_file(rt, full, sizeof(full), &st) : rc;
    if (fd < 0) {
        sl_respond_error(r, fd == -ENOENT || fd == -ENOTDIR ? 404 : 403);
        return;
    }
    if (!static_headers(r, &st, full, nv, n, &from, &len)) {
        close(fd);
        return;
    }
    r->body_kind = SL_BODY_FILE;
    r->fd = fd;
    r->file_off = from;
    r->file_left = len;
}

static void respond_echo(sl_req *r, const sluice_nv *nv, size_t n)
{
    size_t vl;
    const char *ct = sl_find_header(nv, n, "content-type", &vl);
    r->status = 200;
    if (ct)
        sl_resp_header(r, "content-type", ct, vl);
    else
        sl_resp_header(r, "content-type", "application/octet-stream", 24);
    if (r->content_length >= 0) {
        header_u64(r, "content-length", (uint64_t)r->content_length);
        r->body_len = (uint64_t)r->content_length;
    } else {
        r->body_len = UINT64_MAX;
    }
    r->body_kind = r->is_head ? SL_BODY_NONE : SL_BODY_ECHO;
}

void sl_respond(sl_req *r, const sl_config *cfg, const sluice_nv *nv, size_t n,
                int (*cert_covers)(void *ud, const char *host, size_t len), void *ud)
{
    r->fd = -1;
    r->max_body = cfg->max_body;
    if (r->content_length >= 0 && (uint64_t)r->content_length > cfg->max_body) {
        sl_respond_error(r, 413);
        return;
    }
    if (cert_covers && r->authority) { /* RFC 9113 §9.1.1 */
        size_t hl = strcspn(r->authority, ":");
        if (r->authority[0] == '[')
            hl = strcspn(r->authority, "]") + 1;
        const char *h = r->authority;
        if (h[0] == '[' && hl >= 2) /* IPv6 literal: the address without brackets */
            h++, hl -= 2;
        if (!cert_covers(ud, h, hl)) {
            sl_respond_error(r, 421);
            return;
        }
    }
    if (r->handler) {
        r->fields = nv;
        r->nfields = n;
        int handled = r->handler(r, r->handler_ud) == 0 && r->status;
        r->fields = NULL;
        r->nfields = 0;
        if (handled)
            return;
        r->status = 0;
        r->nhdrs = r->hlen = 0;
    }
    const sl_cfg_route *rt = find_route(cfg, r->authority, r->path);
    r->route = rt;
    if (r->on_route) {
        r->on_route(r, nv, n);
        if (r->status) /* a policy answered */
            return;
        if (r->pol_upstream) { /* a policy chose the upstream */
            r->pol_route = rt && rt->kind == SL_ROUTE_PROXY ? *rt : (sl_cfg_route){
                .forwarded = {.via = 1, .x_forwarded_for = 1, .x_forwarded_proto = 1}};
            r->pol_route.kind = SL_ROUTE_PROXY;
            r->pol_route.upstream = r->pol_upstream - 1;
            sl_proxy_start(r, cfg, &r->pol_route, nv, n);
            return;
        }
    }
    if (!rt) {
        sl_respond_error(r, 404);
        return;
    }
    switch (rt->kind) {
    case SL_ROUTE_STATIC: respond_static(r, rt, nv, n); return;
    case SL_ROUTE_ECHO: respond_echo(r, nv, n); return;
    case SL_ROUTE_PROXY: sl_proxy_start(r, cfg, rt, nv, n); return;
    default:
        r->status = rt->status;
        if (rt->content_type)
            sl_resp_header(r, "content-type", rt->content_type, strlen(rt->content_type));
        set_mem_body(r, rt->body, rt->body_len);
        if (r->is_head)
            r->body_kind = SL_BODY_NONE;
    }
}

/* ---- body production -------------------------------------------------- */

/* The file is read into the free part of the ring while the protocol
 * still holds earlier bytes, so the stream stays ready for the scheduler. */
static long read_file(sl_req *r, const uint8_t **p, size_t max, int *eof)
{
    if (r->written == r->handed_end) {
        if (r->file_left == 0) {
            *eof = 1;
            return 0;
        }
        if (!r->buf) { /* no bigger than the file: most are small */
            size_t cap = r->file_left < SL_FILE_RING ? (size_t)r->file_left : SL_FILE_RING;
            r->buf = malloc(cap);
            if (!r->buf)
                return SLUICE_ERR_NOMEM;
            r->buf_cap = cap;
        }
        size_t room = r->buf_cap - (size_t)(r->written - r->released);
        if (room == 0) /* all of it borrowed: wait until the protocol gives some back */
            return SLUICE_ERR_AGAIN;
        size_t at = (size_t)(r->written % r->buf_cap), want = r->buf_cap - at;
        if (want > room)
            want = room;
        if (want > r->file_left)
            want = (size_t)r->file_left;
        ssize_t got = pread(r->fd, r->buf + at, want, (off_t)r->file_off);
        if (got <= 0) /* the file shrank or failed under us */
            return SLUICE_ERR_INTERNAL;
        r->written += (uint64_t)got;
        r->file_off += (uint64_t)got;
        r->file_left -= (uint64_t)got;
    }
    size_t at = (size_t)(r->handed_end % r->buf_cap), n = r->buf_cap - at;
    if (n > r->written - r->handed_end)
        n = (size_t)(r->written - r->handed_end);
    if (n > max)
        n = max;
    *p = r->buf + at;
    r->handed_end += n;
    r->handed += n;
    *eof = r->file_left == 0 && r->handed_end == r->written;
    return (long)n;
}

static long read_echo(sl_req *r, const uint8_t **p, size_t max, int *eof)
{
    if (sl_ring_ready(&r->echo) == 0) {
        if (r->in_eof) {
            *eof = 1;
            return 0;
        }
        return SLUICE_ERR_AGAIN;
    }
    size_t n = sl_ring_take(&r->echo, p, max);
    r->handed_end += n;
    *eof = r->in_eof && sl_ring_ready(&r->echo) == 0;
    return (long)n;
}

long sl_body_read(sl_req *r, const uint8_t **p, size_t max, int *eof)
{
    *eof = 0;
    long n;
    switch (r->body_kind) {
    case SL_BODY_MEM: {
        size_t left = r->body_len - r->mem_off;
        n = (long)(left < max ? left : max);
        *p = r->mem + r->mem_off;
        r->mem_off += (size_t)n;
        r->handed += (size_t)n; /* owned or cached bytes must outlive the write */
        *eof = r->mem_off == r->body_len;
        break;
    }
    case SL_BODY_FILE: n = read_file(r, p, max, eof); break;
    case SL_BODY_ECHO: n = read_echo(r, p, max, eof); break;
    case SL_BODY_PROXY:
        if (!r->proxy) {
            *eof = 1;
            return 0;
        }
        n = sl_proxy_read(r, p, max, eof);
        if (n > 0)
            r->handed += (size_t)n;
        break;
    default: *eof = 1; return 0;
    }
    r->waiting = n == SLUICE_ERR_AGAIN;
    if (n > 0)
        r->sent += (uint64_t)n;
    return n;
}

void sl_body_released(sl_req *r, size_t n)
{
    if (r->body_kind == SL_BODY_ECHO) {
        sl_ring_release(&r->echo, n);
        r->released += n;
        return;
    }
    r->handed -= n < r->handed ? n : r->handed;
    if (r->body_kind == SL_BODY_PROXY && r->proxy)
        sl_proxy_released(r, n);
    if (r->body_kind == SL_BODY_FILE)
        r->released += n;
}

size_t sl_body_feed(sl_req *r, const uint8_t *d, size_t n)
{
    r->body_received += n;
    if (r->body_kind == SL_BODY_PROXY && r->proxy)
        return sl_proxy_req_body(r, d, n);
    if (r->body_kind != SL_BODY_ECHO)
        return n; /* discarded */
    if (!r->echo.cap) /* a whole stream window must fit; memory follows use */
        r->echo.cap = r->echo_cap > SL_ECHO_BUF ? r->echo_cap : SL_ECHO_BUF;
    n = sl_ring_put(&r->echo, d, n);
    r->written += n;
    return n;
}

void sl_body_feed_end(sl_req *r)
{
    if (!r->in_eof && r->body_kind == SL_BODY_PROXY && r->proxy)
        sl_proxy_req_end(r, NULL, 0);
    r->in_eof = 1;
}

int sl_respond_owned_body(sl_req *r, const void *body, size_t len)
{
    free(r->owned);
    r->owned = NULL;
    if (len && !(r->owned = malloc(len)))
        return SLUICE_ERR_NOMEM;
    if (len)
        memcpy(r->owned, body, len);
    set_mem_body(r, r->owned, len);
    return 0;
}

void sl_req_free(sl_req *r)
{
    sl_rpol_free(r);
    sl_proxy_detach(r);
    free(r->owned);
    if (r->fentry)
        sl_fcache_put(r->fcache, r->fentry);
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    sl_ring_free(&r->echo);
    free(r->path);
    free(r->authority);
    free(r);
}
