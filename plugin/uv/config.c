/* config.c — loads the `sluice` host's Lua config: runs the file in a sandboxed,
 * bounded lua_State whose directives record declarations, then checks them. */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* realpath, strndup */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "config.h"

/* Bounds on running a config: far above any real one, low enough that an
 * endless loop or a runaway table makes `sluice -t` fail in about a second
 * instead of hanging or swapping. */
#define MEM_CAP ((size_t)64 << 20)
#define MEM_CAP_TEXT "64 MiB"
#define INSN_BUDGET 10000000L
#define HOOK_EVERY 1000

#define KIB 1024LL
#define MIB (1024LL * KIB)
#define GIB (1024LL * MIB)
#define DAY_MS 86400000LL

/* Directives that may appear once; the slot keeps where, for "already set". */
enum once_slot {
    ONCE_WORKERS, ONCE_MAX_CONN, ONCE_MAX_BODY, ONCE_LOWAT, ONCE_TLS_MIN,
    ONCE_ACCESS_LOG, ONCE_ERROR_LOG, ONCE_PID_FILE, ONCE_USER,
    ONCE_TIMEOUTS, ONCE_HTTP2, ONCE_ADMIN, ONCE_COUNT
};

typedef struct loader {
    sl_config *cfg;
    const char *path;      /* as given: names the file in messages, like Lua does */
    char *dir;             /* absolute directory of the config: base of relative paths */
    size_t mem_used;       /* Lua heap plus recorded declarations, against MEM_CAP */
    int mem_exceeded;
    long insns;            /* instructions run, counted in hook steps */
    int line;              /* last line entered: where a memory error happened */
    const char *at_file;   /* the declaration being read, for messages */
    int at_line;
    char at_buf[LUA_IDSIZE];
    const char *label;     /* message prefix: "route", "route: ret" */
    int got_addr;          /* listen: an address was given by position */
    int kinds;             /* route: how many of static, echo, ret, proxy */
    int got_forwarded;     /* route: a forwarded table was given */
    sl_cfg_where once[ONCE_COUNT];
    int rc;                /* the first error: code and text */
    char msg[1024];
} loader;

static loader *get_loader(lua_State *L)
{
    loader *ld;
    memcpy(&ld, lua_getextraspace(L), sizeof ld);
    return ld;
}

/* ---- errors ---------------------------------------------------------------- */

static void vset_error(loader *ld, const char *file, int line, int rc, const char *fmt,
                       va_list ap)
{
    if (ld->msg[0])
        return; /* the first error is the one to fix; later ones may follow from it */
    int n = snprintf(ld->msg, sizeof ld->msg, "%s:%d: ", file, line);
    if (n > 0 && (size_t)n < sizeof ld->msg)
        vsnprintf(ld->msg + n, sizeof ld->msg - (size_t)n, fmt, ap);
    ld->rc = rc;
}

__attribute__((format(printf, 5, 6)))
static int error_at(loader *ld, const char *file, int line, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_error(ld, file, line, rc, fmt, ap);
    va_end(ap);
    return rc;
}

/* Record an error at the declaration being read and unwind the config run.
 * Recorded first, so a pcall in the config cannot hide it. */
__attribute__((format(printf, 4, 5)))
_Noreturn static void fail(loader *ld, lua_State *L, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_error(ld, ld->at_file, ld->at_line, rc, fmt, ap);
    va_end(ap);
    lua_pushstring(L, ld->msg);
    lua_error(L);
    abort(); /* not reached: lua_error does not return */
}

static void set_at(loader *ld, const lua_Debug *ar)
{
    if (ar->source[0] == '@') {
        ld->at_file = ar->source + 1; /* alive while that function runs */
    } else {
        memcpy(ld->at_buf, ar->short_src, sizeof ld->at_buf);
        ld->at_file = ld->at_buf;
    }
    ld->at_line = ar->currentline;
}

/* The innermost Lua line that led to this call: the directive's caller,
 * skipping C frames such as pcall. */
static void caller_where(loader *ld, lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0) {
            set_at(ld, &ar);
            return;
        }
    }
    /* A tail call leaves no caller frame; the line hook saw the line. */
    ld->at_file = ld->path;
    ld->at_line = ld->line;
}

/* ---- memory: declarations count against the same cap as the Lua heap ------- */

static void *lua_alloc_capped(void *ud, void *ptr, size_t osize, size_t nsize)
{
    loader *ld = ud;
    if (!ptr)
        osize = 0; /* then osize encodes the object type, not a size */
    if (nsize == 0) {
        free(ptr);
        ld->mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && nsize - osize > MEM_CAP - ld->mem_used) {
        ld->mem_exceeded = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p)
        ld->mem_used = ld->mem_used - osize + nsize;
    return p;
}

static void charge(loader *ld, lua_State *L, size_t n)
{
    if (n > MEM_CAP - ld->mem_used) {
        ld->mem_exceeded = 1;
        fail(ld, L, SLUICE_ERR_LIMIT, "config uses more than " MEM_CAP_TEXT " of memory");
    }
    ld->mem_used += n;
}

static char *dup_mem(loader *ld, lua_State *L, const char *s, size_t len)
{
    charge(ld, L, len + 1);
    char *p = malloc(len + 1);
    if (!p)
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static char *dup_str(loader *ld, lua_State *L, const char *s)
{
    return dup_mem(ld, L, s, strlen(s));
}

/* Arrays of declarations grow to 4, 8, 16, ... entries. */
static void *grow(loader *ld, lua_State *L, void *arr, size_t n, size_t size)
{
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return arr;
    size_t cap = n ? 2 * n : 4;
    charge(ld, L, (cap - n) * size);
    void *p = realloc(arr, cap * size);
    if (!p)
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    return p;
}

/* Append a zeroed entry. It belongs to the config at once, so whatever is
 * stored in it is freed by sl_config_free even if the run unwinds. */
#define PUSH(ld, L, arr, n)                                                     \
    ((arr) = grow((ld), (L), (arr), (n), sizeof *(arr)),                        \
     memset(&(arr)[(n)], 0, sizeof *(arr)), &(arr)[(n)++])

static sl_cfg_where own_where(loader *ld, lua_State *L)
{
    sl_cfg_where w;
    w.file = dup_str(ld, L, ld->at_file);
    w.line = ld->at_line;
    return w;
}

/* ---- paths ----------------------------------------------------------------- */

static char *join_path(const char *dir, const char *name, size_t len)
{
    size_t dl = strlen(dir);
    int sep = dl > 0 && dir[dl - 1] != '/';
    char *p = malloc(dl + (size_t)sep + len + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, dl);
    if (sep)
        p[dl] = '/';
    memcpy(p + dl + sep, name, len);
    p[dl + (size_t)sep + len] = '\0';
    return p;
}

/* Relative paths are relative to the config file, not to the working
 * directory, so `sluice -c conf/sluice.lua` works from anywhere. */
static char *resolve(loader *ld, lua_State *L, const char *s, size_t len)
{
    while (len > 1 && s[len - 1] == '/')
        len--;
    while (len > 2 && s[0] == '.' && s[1] == '/') {
        s += 2;
        len -= 2;
    }
    if (s[0] == '/')
        return dup_mem(ld, L, s, len);
    charge(ld, L, strlen(ld->dir) + len + 2);
    char *p = join_path(ld->dir, s, len);
    if (!p)
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    return p;
}

static char *config_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d;
    if (!slash)
        d = strdup(".");
    else if (slash == path)
        d = strdup("/");
    else
        d = strndup(path, (size_t)(slash - path));
    if (!d)
        return NULL;
    char *abs = realpath(d, NULL);
    free(d);
    return abs;
}

/* ---- reading values -------------------------------------------------------- */

typedef struct field field;
typedef void (*read_fn)(loader *ld, lua_State *L, int v, void *obj, const field *f);

/* One key of a directive: how to read it and where it goes in obj. */
struct field {
    const char *key;  /* NULL: the directive's only argument */
    read_fn read;
    size_t off;
    long long min, max; /* integers, bytes, or stored time units */
    long long unit;     /* rd_secs: stored units per second */
    int width;          /* integer targets: 2, 4 or 8 bytes */
};

#define SLOT(obj, f, type) ((type *)(void *)((char *)(obj) + (f)->off))

/* "http2: max_frame_size", or just "workers" for a one-argument directive. */
static const char *subject(const loader *ld, const field *f, char *buf, size_t n)
{
    if (!f->key)
        return ld->label;
    snprintf(buf, n, "%s: %s", ld->label, f->key);
    return buf;
}

static void num_text(lua_State *L, int v, char *buf, size_t n)
{
    if (lua_isinteger(L, v))
        snprintf(buf, n, "%lld", (long long)lua_tointeger(L, v));
    else
        snprintf(buf, n, "%.14g", (double)lua_tonumber(L, v));
}

static void store_uint(void *obj, const field *f, unsigned long long v)
{
    if (f->width == 2) {
        uint16_t x = (uint16_t)v;
        memcpy(SLOT(obj, f, char), &x, sizeof x);
    } else if (f->width == 4) { /* also int fields: values in range are the same bits */
        uint32_t x = (uint32_t)v;
        memcpy(SLOT(obj, f, char), &x, sizeof x);
    } else {
        uint64_t x = v;
        memcpy(SLOT(obj, f, char), &x, sizeof x);
    }
}

static void set_str(char **slot, char *s)
{
    free(*slot);
    *slot = s;
}

static void rd_bool(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    char sub[128];
    if (!lua_isboolean(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be true or false, got %s",
             subject(ld, f, sub, sizeof sub), luaL_typename(L, v));
    *SLOT(obj, f, int) = lua_toboolean(L, v);
}

static long long want_int(loader *ld, lua_State *L, int v, const field *f)
{
    char sub[128], got[64];
    const char *s = subject(ld, f, sub, sizeof sub);
    if (lua_type(L, v) != LUA_TNUMBER)
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a number, got %s", s, luaL_typename(L, v));
    int ok;
    lua_Integer x = lua_tointegerx(L, v, &ok);
    if (!ok || x < f->min || x > f->max) {
        num_text(L, v, got, sizeof got);
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be an integer in %lld..%lld, got %s", s,
             f->min, f->max, got);
    }
    return (long long)x;
}

static void rd_int(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    store_uint(obj, f, (unsigned long long)want_int(ld, L, v, f));
}

/* "123", "64k", "16m", "1g" (binary multiples). Saturates on overflow so
 * the range check reports it. */
static int parse_size(const char *s, unsigned long long *out)
{
    unsigned long long v = 0, mul = 1;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v > (ULLONG_MAX - 9) / 10 ? ULLONG_MAX : v * 10 + (unsigned)(*s - '0');
    switch (*s) {
    case 'k': case 'K': mul = KIB; s++; break;
    case 'm': case 'M': mul = MIB; s++; break;
    case 'g': case 'G': mul = GIB; s++; break;
    }
    if (*s)
        return -1;
    *out = v > ULLONG_MAX / mul ? ULLONG_MAX : v * mul;
    return 0;
}

static void size_text(long long v, char *buf, size_t n)
{
    if (v != 0 && v % GIB == 0)
        snprintf(buf, n, "%lldg", v / GIB);
    else if (v != 0 && v % MIB == 0)
        snprintf(buf, n, "%lldm", v / MIB);
    else if (v != 0 && v % KIB == 0)
        snprintf(buf, n, "%lldk", v / KIB);
    else
        snprintf(buf, n, "%lld", v);
}

static void rd_size(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    char sub[128], got[80], lo[32], hi[32];
    const char *s = subject(ld, f, sub, sizeof sub);
    unsigned long long x = ULLONG_MAX;
    int ok = 0;
    if (lua_type(L, v) == LUA_TNUMBER) {
        lua_Integer i = lua_tointegerx(L, v, &ok);
        ok = ok && i >= 0;
        x = ok ? (unsigned long long)i : x;
        num_text(L, v, got, sizeof got);
    } else if (lua_type(L, v) == LUA_TSTRING) {
        if (parse_size(lua_tostring(L, v), &x) != 0)
            fail(ld, L, SLUICE_ERR_INVAL, "%s must be a size such as 65536, \"64k\", "
                 "\"16m\" or \"1g\", got '%s'", s, lua_tostring(L, v));
        ok = 1;
        snprintf(got, sizeof got, "'%s'", lua_tostring(L, v));
    } else {
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a size (a number or a string such "
             "as \"16m\"), got %s", s, luaL_typename(L, v));
    }
    if (!ok || x < (unsigned long long)f->min || x > (unsigned long long)f->max) {
        size_text(f->min, lo, sizeof lo);
        size_text(f->max, hi, sizeof hi);
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a size in %s..%s, got %s", s, lo, hi, got);
    }
    store_uint(obj, f, x);
}

/* Seconds, fractions allowed, stored as f->unit per second (ms or ns). */
static void rd_secs(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    char sub[128], got[64];
    const char *s = subject(ld, f, sub, sizeof sub);
    if (lua_type(L, v) != LUA_TNUMBER)
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a number of seconds, got %s", s,
             luaL_typename(L, v));
    double x = (double)lua_tonumber(L, v) * (double)f->unit;
    if (!(x >= (double)f->min && x <= (double)f->max)) { /* also catches NaN */
        num_text(L, v, got, sizeof got);
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be in %g..%g seconds, got %s", s,
             (double)f->min / (double)f->unit, (double)f->max / (double)f->unit, got);
    }
    store_uint(obj, f, (unsigned long long)(x + 0.5));
}

static const char *want_str(loader *ld, lua_State *L, int v, const field *f, size_t *len)
{
    char sub[128];
    const char *s = subject(ld, f, sub, sizeof sub);
    if (lua_type(L, v) != LUA_TSTRING)
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a string, got %s", s, luaL_typename(L, v));
    const char *str = lua_tolstring(L, v, len);
    if (*len == 0)
        fail(ld, L, SLUICE_ERR_INVAL, "%s must not be empty", s);
    if (strlen(str) != *len)
        fail(ld, L, SLUICE_ERR_INVAL, "%s must not contain a NUL byte", s);
    return str;
}

static void rd_str(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    set_str(SLOT(obj, f, char *), dup_mem(ld, L, s, len));
}

static void rd_path(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    set_str(SLOT(obj, f, char *), resolve(ld, L, s, len));
}

/* A URL path: a route's prefix, a health check's target. */
static const char *want_url_path(loader *ld, lua_State *L, int v, const field *f, size_t *len)
{
    char sub[128];
    const char *s = want_str(ld, L, v, f, len);
    if (s[0] != '/')
        fail(ld, L, SLUICE_ERR_INVAL, "%s must start with '/', got '%s'",
             subject(ld, f, sub, sizeof sub), s);
    return s;
}

/* Letters, digits, '-' and single dots between labels: a DNS name as SNI
 * carries it (RFC 6066 §3). Host names a resolver looks up (/etc/hosts,
 * container names) may also hold '_': underscore = 1 allows it. */
static int dns_name_ok(const char *s, size_t len, int underscore)
{
    int ok = len > 0 && len <= 253 && s[0] != '.' && s[len - 1] != '.';
    for (size_t i = 0; ok && i < len; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || (c == '_' && underscore) || (c == '.' && s[i - 1] != '.');
    }
    return ok;
}

/* ---- tables ---------------------------------------------------------------- */

/* Handles integer keys (positional values) of a directive's table. */
typedef void (*pos_fn)(loader *ld, lua_State *L, lua_Integer i, int v, void *obj);

_Noreturn static void unknown_key(loader *ld, lua_State *L, const char *k, const field *fields)
{
    char keys[512];
    size_t n = 0;
    keys[0] = '\0';
    for (const field *f = fields; f->key && n < sizeof keys; f++) {
        int w = snprintf(keys + n, sizeof keys - n, "%s%s", n ? ", " : "", f->key);
        n += w > 0 ? (size_t)w : 0;
    }
    fail(ld, L, SLUICE_ERR_INVAL, "%s: unknown key '%s' (known: %s)", ld->label, k, keys);
}

/* Read every key of the table at t into obj. lua_next is raw, so no
 * metamethod of the config runs while a declaration is half recorded. */
static void read_table(loader *ld, lua_State *L, int t, const field *fields, void *obj,
                       pos_fn pos)
{
    t = lua_absindex(L, t);
    if (!lua_checkstack(L, 4))
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int v = lua_gettop(L);
        if (lua_type(L, v - 1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, v - 1);
            const field *f = fields;
            while (f->key && strcmp(f->key, k) != 0)
                f++;
            if (!f->key)
                unknown_key(ld, L, k, fields);
            f->read(ld, L, v, obj, f);
        } else if (lua_isinteger(L, v - 1) && pos) {
            pos(ld, L, lua_tointeger(L, v - 1), v, obj);
        } else if (lua_isinteger(L, v - 1)) {
            fail(ld, L, SLUICE_ERR_INVAL, "%s: unexpected value at index %lld (use key = value)",
                 ld->label, (long long)lua_tointeger(L, v - 1));
        } else {
            fail(ld, L, SLUICE_ERR_INVAL, "%s: keys must be names, got a %s key", ld->label,
                 luaL_typename(L, v - 1));
        }
        lua_settop(L, v - 1);
    }
}

/* A list {a, b, c}: its length, checking there are no other keys. */
static size_t list_len(loader *ld, lua_State *L, int v, const char *what)
{
    size_t n = 0;
    lua_Integer max = 0;
    lua_pushnil(L);
    while (lua_next(L, v)) {
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1)
            fail(ld, L, SLUICE_ERR_INVAL, "%s must be a list, as in { \"a\", \"b\" }", what);
        if (lua_tointeger(L, -2) > max)
            max = lua_tointeger(L, -2);
        n++;
        lua_pop(L, 1);
    }
    if ((lua_Integer)n != max)
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a list without holes", what);
    return n;
}

/* Every directive starts here: where it was called, and its one argument. */
static loader *enter(lua_State *L, const char *name, int type)
{
    loader *ld = get_loader(L);
    caller_where(ld, L);
    ld->label = name;
    int n = lua_gettop(L);
    if (n != 1)
        fail(ld, L, SLUICE_ERR_INVAL, "%s expects 1 argument, got %d", name, n);
    if (type != LUA_TNONE && lua_type(L, 1) != type)
        fail(ld, L, SLUICE_ERR_INVAL, "%s expects a %s, got %s", name, lua_typename(L, type),
             luaL_typename(L, 1));
    return ld;
}

static void once(loader *ld, lua_State *L, int slot)
{
    sl_cfg_where *w = &ld->once[slot];
    if (w->file)
        fail(ld, L, SLUICE_ERR_INVAL, "%s: already set at %s:%d", ld->label, w->file, w->line);
    w->file = dup_str(ld, L, ld->at_file);
    w->line = ld->at_line;
}

/* ---- addresses ------------------------------------------------------------- */

/* A numeric IPv4 or IPv6 address in canonical text ("0::0" -> "::"), so
 * duplicates compare equal. Empty or "*" mean every IPv4 address. */
static char *canon_host(loader *ld, lua_State *L, const char *h, size_t len)
{
    char in[64], out[INET6_ADDRSTRLEN];
    unsigned char bin[16];
    if (len == 0 || (len == 1 && h[0] == '*'))
        return dup_str(ld, L, "0.0.0.0");
    if (len < sizeof in) {
        memcpy(in, h, len);
        in[len] = '\0';
        if (inet_pton(AF_INET, in, bin) == 1 && inet_ntop(AF_INET, bin, out, sizeof out))
            return dup_str(ld, L, out);
        if (inet_pton(AF_INET6, in, bin) == 1 && inet_ntop(AF_INET6, bin, out, sizeof out))
            return dup_str(ld, L, out);
    }
    fail(ld, L, SLUICE_ERR_INVAL, "%s: bad host '%.*s': not an IPv4 or IPv6 address",
         ld->label, (int)(len < 200 ? len : 200), h);
}

static uint16_t parse_port(loader *ld, lua_State *L, const char *p, const char *whole)
{
    unsigned long v = 0;
    size_t n = 0;
    for (; p[n] >= '0' && p[n] <= '9' && n < 6; n++)
        v = v * 10 + (unsigned long)(p[n] - '0');
    if (n == 0 || p[n] != '\0' || v < 1 || v > 65535)
        fail(ld, L, SLUICE_ERR_INVAL, "%s: bad port in '%s': must be 1..65535", ld->label, whole);
    return (uint16_t)v;
}

/* "HOST:PORT", "[IPV6]:PORT", "*:PORT" or "PORT". */
static void parse_addr(loader *ld, lua_State *L, const char *s, char **host, uint16_t *port)
{
    const char *h = s, *hend = s, *p = s;
    if (*s == '[') {
        hend = strchr(s, ']');
        if (!hend || hend[1] != ':')
            fail(ld, L, SLUICE_ERR_INVAL, "%s: bad address '%s': expected HOST:PORT, "
                 "[IPV6]:PORT or PORT", ld->label, s);
        h = s + 1;
        p = hend + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon && memchr(s, ':', (size_t)(colon - s)))
            fail(ld, L, SLUICE_ERR_INVAL, "%s: bad address '%s': an IPv6 address needs "
                 "brackets, as in [::1]:8080", ld->label, s);
        if (colon) {
            hend = colon;
            p = colon + 1;
        }
    }
    *port = parse_port(ld, L, p, s);
    set_str(host, canon_host(ld, L, h, (size_t)(hend - h)));
}

static void addr_text(char *buf, size_t n, const char *host, unsigned port)
{
    snprintf(buf, n, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

/* ---- listen { "HOST:PORT" | host = , port = , tls = , backlog = , reuseport = } */

static void rd_host(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    set_str(SLOT(obj, f, char *), canon_host(ld, L, s, len));
}

static const field listen_fields[] = {
    {"host", rd_host, offsetof(sl_cfg_listen, host), 0, 0, 0, 0},
    {"port", rd_int, offsetof(sl_cfg_listen, port), 1, 65535, 0, 2},
    {"tls", rd_bool, offsetof(sl_cfg_listen, tls), 0, 0, 0, 0},
    {"backlog", rd_int, offsetof(sl_cfg_listen, backlog), 1, 65535, 0, 4},
    {"reuseport", rd_bool, offsetof(sl_cfg_listen, reuseport), 0, 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static void listen_pos(loader *ld, lua_State *L, lua_Integer i, int v, void *obj)
{
    (void)obj;
    if (i != 1)
        fail(ld, L, SLUICE_ERR_INVAL, "listen: unexpected value at index %lld", (long long)i);
    if (lua_type(L, v) != LUA_TSTRING && lua_type(L, v) != LUA_TNUMBER)
        fail(ld, L, SLUICE_ERR_INVAL, "listen: the address must be a string such as "
             "\"0.0.0.0:8080\", got %s", luaL_typename(L, v));
    ld->got_addr = 1; /* parsed after the walk, to catch a host or port given too */
}

static void listen_addr(loader *ld, lua_State *L, sl_cfg_listen *l)
{
    if (l->host || l->port)
        fail(ld, L, SLUICE_ERR_INVAL, "listen: give the address as \"HOST:PORT\" or as "
             "host and port, not both");
    lua_rawgeti(L, 1, 1);
    if (lua_type(L, -1) == LUA_TNUMBER)
        rd_int(ld, L, lua_gettop(L), l, &listen_fields[1]);
    else
        parse_addr(ld, L, lua_tostring(L, -1), &l->host, &l->port);
    lua_pop(L, 1);
}

static int d_listen(lua_State *L)
{
    loader *ld = enter(L, "listen", LUA_TTABLE);
    sl_config *cfg = ld->cfg;
    sl_cfg_listen *l = PUSH(ld, L, cfg->listens, cfg->nlistens);
    l->where = own_where(ld, L);
    l->backlog = 511;
    l->reuseport = 1;
    ld->got_addr = 0;
    read_table(ld, L, 1, listen_fields, l, listen_pos);
    if (ld->got_addr)
        listen_addr(ld, L, l);
    else if (!l->port)
        fail(ld, L, SLUICE_ERR_INVAL, "listen: no port: give \"HOST:PORT\" or port = N");
    if (!l->host)
        l->host = dup_str(ld, L, "0.0.0.0");
    return 0;
}

/* ---- tls_certificate { cert = , key = , names = { ... } } -------------------- */

/* A DNS name as SNI carries it, or "*." and one: lower-cased, since SNI and
 * DNS compare without case. */
static char *sni_name(loader *ld, lua_State *L, int v)
{
    if (lua_type(L, v) != LUA_TSTRING)
        fail(ld, L, SLUICE_ERR_INVAL, "tls_certificate: names must be strings, got %s",
             luaL_typename(L, v));
    size_t len;
    const char *s = lua_tolstring(L, v, &len);
    size_t start = len > 2 && s[0] == '*' && s[1] == '.' ? 2 : 0;
    if (len > 253 || !dns_name_ok(s + start, len - start, 0))
        fail(ld, L, SLUICE_ERR_INVAL, "tls_certificate: bad name '%s' in names", s);
    char *d = dup_mem(ld, L, s, len);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return d;
}

static void rd_names(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    (void)f;
    sl_cfg_cert *c = obj;
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "tls_certificate: names must be a list of strings, "
             "got %s", luaL_typename(L, v));
    size_t n = list_len(ld, L, v, "tls_certificate: names");
    if (n == 0)
        return;
    charge(ld, L, n * sizeof *c->names);
    c->names = calloc(n, sizeof *c->names);
    if (!c->names)
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    c->nnames = n; /* NULL entries free fine if the run unwinds halfway */
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, v, (lua_Integer)i + 1);
        c->names[i] = sni_name(ld, L, lua_gettop(L));
        lua_pop(L, 1);
    }
}

static const field cert_fields[] = {
    {"cert", rd_path, offsetof(sl_cfg_cert, cert_file), 0, 0, 0, 0},
    {"key", rd_path, offsetof(sl_cfg_cert, key_file), 0, 0, 0, 0},
    {"names", rd_names, 0, 0, 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static int d_tls_certificate(lua_State *L)
{
    loader *ld = enter(L, "tls_certificate", LUA_TTABLE);
    sl_config *cfg = ld->cfg;
    sl_cfg_cert *c = PUSH(ld, L, cfg->certs, cfg->ncerts);
    c->where = own_where(ld, L);
    read_table(ld, L, 1, cert_fields, c, NULL);
    if (!c->cert_file)
        fail(ld, L, SLUICE_ERR_INVAL, "tls_certificate: cert is required");
    if (!c->key_file)
        fail(ld, L, SLUICE_ERR_INVAL, "tls_certificate: key is required");
    return 0;
}

/* ---- upstream { name = , servers = { ... }, ... } ---------------------------- */

/* Names appear in log lines ("upstream app server ..."): characters that
 * need no quoting there. */
static void rd_upstream_name(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            fail(ld, L, SLUICE_ERR_INVAL, "upstream: name may hold only letters, digits, "
                 "'.', '-' and '_', got '%s'", s);
    }
    set_str(SLOT(obj, f, char *), dup_mem(ld, L, s, len));
}

/* "HOST:PORT" or "[IPV6]:PORT". HOST may be a name: it is resolved when
 * connecting, so only its spelling is checked here. */
static void parse_server(loader *ld, lua_State *L, const char *s, sl_cfg_server *sv)
{
    const char *h = s, *hend, *colon;
    if (*s == '[') {
        char in[64];
        unsigned char bin[16];
        hend = strchr(s, ']');
        if (!hend || hend[1] != ':')
            fail(ld, L, SLUICE_ERR_INVAL, "%s: bad server '%s': expected HOST:PORT or "
                 "[IPV6]:PORT", ld->label, s);
        h = s + 1;
        colon = hend + 1;
        size_t n = (size_t)(hend - h);
        if (n < sizeof in) {
            memcpy(in, h, n);
            in[n] = '\0';
        }
        if (n >= sizeof in || inet_pton(AF_INET6, in, bin) != 1)
            fail(ld, L, SLUICE_ERR_INVAL, "%s: bad server '%s': not an IPv6 address in the "
                 "brackets", ld->label, s);
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            fail(ld, L, SLUICE_ERR_INVAL, "%s: bad server '%s': expected HOST:PORT or "
                 "[IPV6]:PORT", ld->label, s);
        if (memchr(s, ':', (size_t)(colon - s)))
            fail(ld, L, SLUICE_ERR_INVAL, "%s: bad server '%s': an IPv6 address needs "
                 "brackets, as in [::1]:8080", ld->label, s);
        hend = colon;
        if (!dns_name_ok(h, (size_t)(hend - h), 1))
            fail(ld, L, SLUICE_ERR_INVAL, "%s: bad host in '%s': expected a name or an "
                 "address", ld->label, s);
    }
    sv->port = parse_port(ld, L, colon + 1, s);
    sv->host = dup_mem(ld, L, h, (size_t)(hend - h));
    sv->name = dup_str(ld, L, s);
}

static void rd_servers(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_upstream *u = obj;
    (void)f;
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "upstream: servers must be a list of \"HOST:PORT\" "
             "strings, got %s", luaL_typename(L, v));
    size_t n = list_len(ld, L, v, "upstream: servers");
    if (n == 0)
        fail(ld, L, SLUICE_ERR_INVAL, "upstream: servers must not be empty");
    charge(ld, L, n * sizeof *u->servers);
    u->servers = calloc(n, sizeof *u->servers);
    if (!u->servers)
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    u->nservers = n; /* NULL entries free fine if the run unwinds halfway */
    ld->label = "upstream: servers";
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, v, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            fail(ld, L, SLUICE_ERR_INVAL, "upstream: servers must be strings such as "
                 "\"127.0.0.1:8080\", got %s", luaL_typename(L, -1));
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len)
            fail(ld, L, SLUICE_ERR_INVAL, "upstream: servers must not contain a NUL byte");
        parse_server(ld, L, s, &u->servers[i]);
        lua_pop(L, 1);
    }
    ld->label = "upstream";
}

/* One of names (NULL-terminated): its index, which is the enum's value. */
static int choose(loader *ld, lua_State *L, int v, const field *f, const char *const *names)
{
    char sub[128], opts[128];
    size_t len, n = 0;
    const char *s = want_str(ld, L, v, f, &len);
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    opts[0] = '\0';
    for (int i = 0; names[i] && n < sizeof opts; i++) {
        int w = snprintf(opts + n, sizeof opts - n, "%s'%s'",
                         i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
        n += w > 0 ? (size_t)w : 0;
    }
    fail(ld, L, SLUICE_ERR_INVAL, "%s must be %s, got '%s'", subject(ld, f, sub, sizeof sub),
         opts, s);
}

static void rd_protocol(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    static const char *const names[] = {"http1", "h2", NULL}; /* enum sl_up_proto */
    *SLOT(obj, f, int) = choose(ld, L, v, f, names);
}

static void rd_balance(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    static const char *const names[] = {"round_robin", "least_conn", NULL}; /* enum sl_balance */
    *SLOT(obj, f, int) = choose(ld, L, v, f, names);
}

static void rd_sni(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    char sub[128];
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    if (!dns_name_ok(s, len, 0))
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a DNS name, got '%s'",
             subject(ld, f, sub, sizeof sub), s);
    set_str(SLOT(obj, f, char *), dup_mem(ld, L, s, len));
}

static const field upstream_tls_fields[] = {
    {"ca", rd_path, offsetof(sl_cfg_upstream, tls_ca), 0, 0, 0, 0},
    {"sni", rd_sni, offsetof(sl_cfg_upstream, tls_sni), 0, 0, 0, 0},
    {"verify", rd_bool, offsetof(sl_cfg_upstream, tls_verify), 0, 0, 0, 0},
    {"certificate", rd_path, offsetof(sl_cfg_upstream, tls_cert), 0, 0, 0, 0},
    {"key", rd_path, offsetof(sl_cfg_upstream, tls_key), 0, 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static void rd_upstream_tls(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_upstream *u = obj;
    (void)f;
    if (lua_isboolean(L, v)) {
        u->tls = lua_toboolean(L, v);
        return;
    }
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "upstream: tls must be true, false or a table { ca = , "
             "sni = , verify = , certificate = , key = }, got %s", luaL_typename(L, v));
    u->tls = 1;
    ld->label = "upstream: tls";
    read_table(ld, L, v, upstream_tls_fields, u, NULL);
    ld->label = "upstream";
}

/* The health check's request line carries the path as it is: nothing that
 * would split or end that line. */
static void rd_health_path(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    char sub[128];
    size_t len;
    const char *s = want_url_path(ld, L, v, f, &len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            fail(ld, L, SLUICE_ERR_INVAL, "%s must be printable ASCII without spaces",
                 subject(ld, f, sub, sizeof sub));
    set_str(SLOT(obj, f, char *), dup_mem(ld, L, s, len));
}

#define HEALTH(name, read, min, max, unit)                                      \
    {#name, read, offsetof(sl_cfg_health, name), (min), (max), (unit), 4}

static const field health_fields[] = {
    HEALTH(path, rd_health_path, 0, 0, 0),
    HEALTH(interval, rd_secs, 1, DAY_MS, 1000),
    HEALTH(timeout, rd_secs, 1, DAY_MS, 1000),
    HEALTH(fails, rd_int, 1, 1000, 0),
    HEALTH(passes, rd_int, 1, 1000, 0),
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static void rd_health(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_upstream *u = obj;
    (void)f;
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "upstream: health_check must be a table { path = , "
             "interval = , timeout = , fails = , passes = }, got %s", luaL_typename(L, v));
    u->health.enabled = 1;
    ld->label = "upstream: health_check";
    read_table(ld, L, v, health_fields, &u->health, NULL);
    ld->label = "upstream";
}

#define UP(name, read, min, max, unit, width)                                   \
    {#name, read, offsetof(sl_cfg_upstream, name), (min), (max), (unit), (width)}

static const field upstream_fields[] = {
    UP(name, rd_upstream_name, 0, 0, 0, 0),
    {"servers", rd_servers, 0, 0, 0, 0, 0},
    UP(protocol, rd_protocol, 0, 0, 0, 0),
    UP(balance, rd_balance, 0, 0, 0, 0),
    {"tls", rd_upstream_tls, 0, 0, 0, 0, 0},
    UP(keepalive, rd_int, 0, 100000, 0, 4),
    UP(max_conns, rd_int, 1, 1000000, 0, 4),
    UP(h2_streams, rd_int, 1, 10000, 0, 4),
    UP(connect_timeout, rd_secs, 1, DAY_MS, 1000, 4),
    UP(read_timeout, rd_secs, 1, DAY_MS, 1000, 4),
    UP(send_timeout, rd_secs, 1, DAY_MS, 1000, 4),
    UP(idle_timeout, rd_secs, 1, DAY_MS, 1000, 4),
    UP(tries, rd_int, 1, 16, 0, 4),
    UP(max_fails, rd_int, 1, 1000, 0, 4),
    UP(fail_timeout, rd_secs, 1, DAY_MS, 1000, 4),
    UP(buffer, rd_size, 4 * KIB, 64 * MIB, 0, 4),
    {"health_check", rd_health, 0, 0, 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static void upstream_defaults(loader *ld, lua_State *L, sl_cfg_upstream *u)
{
    u->tls_verify = 1;
    u->keepalive = 32;
    u->max_conns = 1024;
    u->h2_streams = 100;
    u->connect_timeout = 5000;
    u->read_timeout = 60000;
    u->send_timeout = 60000;
    u->idle_timeout = 60000;
    u->tries = 3;
    u->max_fails = 1;
    u->fail_timeout = 10000;
    u->buffer = 64 * KIB;
    u->health = (sl_cfg_health){.interval = 5000, .timeout = 2000, .fails = 2, .passes = 1};
    u->health.path = dup_str(ld, L, "/");
}

static int d_upstream(lua_State *L)
{
    loader *ld = enter(L, "upstream", LUA_TTABLE);
    sl_config *cfg = ld->cfg;
    sl_cfg_upstream *u = PUSH(ld, L, cfg->upstreams, cfg->nupstreams);
    u->where = own_where(ld, L);
    upstream_defaults(ld, L, u);
    read_table(ld, L, 1, upstream_fields, u, NULL);
    if (!u->name)
        fail(ld, L, SLUICE_ERR_INVAL, "upstream: name is required");
    if (!u->servers)
        fail(ld, L, SLUICE_ERR_INVAL, "upstream: servers is required");
    if (!u->tls_cert != !u->tls_key)
        fail(ld, L, SLUICE_ERR_INVAL, "upstream: tls: certificate and key must be given "
             "together");
    return 0;
}

/* ---- route { authority = , path = , static = | echo = | ret = | proxy = , ... } - */

static void rd_authority(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    char *d = dup_mem(ld, L, s, len);
    set_str(SLOT(obj, f, char *), d);
    for (char *p = d; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a'); /* RFC 9110 §4.2.3: the host is case-insensitive */
        else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                   strchr(".-:[]", *p)))
            fail(ld, L, SLUICE_ERR_INVAL, "route: bad authority '%s'", s);
    }
}

static void rd_route_path(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_url_path(ld, L, v, f, &len);
    set_str(SLOT(obj, f, char *), dup_mem(ld, L, s, len));
}

static void rd_static(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    rd_path(ld, L, v, obj, f);
    ((sl_cfg_route *)obj)->kind = SL_ROUTE_STATIC;
    ld->kinds++;
}

static void rd_echo(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    if (lua_type(L, v) != LUA_TBOOLEAN || !lua_toboolean(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "route: echo must be true, got %s",
             lua_isboolean(L, v) ? "false" : luaL_typename(L, v));
    (void)f;
    ((sl_cfg_route *)obj)->kind = SL_ROUTE_ECHO;
    ld->kinds++;
}

static void rd_body(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_route *r = obj;
    (void)f;
    if (lua_type(L, v) != LUA_TSTRING)
        fail(ld, L, SLUICE_ERR_INVAL, "route: ret: body must be a string, got %s",
             luaL_typename(L, v));
    size_t len;
    const char *s = lua_tolstring(L, v, &len);
    set_str(&r->body, dup_mem(ld, L, s, len)); /* any bytes, NUL included */
    r->body_len = len;
}

static const field ret_fields[] = {
    {"status", rd_int, offsetof(sl_cfg_route, status), 200, 599, 0, 4},
    {"body", rd_body, 0, 0, 0, 0, 0},
    {"content_type", rd_str, offsetof(sl_cfg_route, content_type), 0, 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static void rd_ret(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_route *r = obj;
    (void)f;
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "route: ret must be a table { status = , body = , "
             "content_type = }, got %s", luaL_typename(L, v));
    r->kind = SL_ROUTE_RETURN;
    r->status = 200;
    ld->kinds++;
    ld->label = "route: ret";
    read_table(ld, L, v, ret_fields, r, NULL);
    ld->label = "route";
    /* RFC 9110 §15.3.5, §15.4.5: these responses end at their header section. */
    if ((r->status == 204 || r->status == 304) && r->body_len > 0)
        fail(ld, L, SLUICE_ERR_INVAL, "route: ret: a %d response cannot have a body", r->status);
    if (!r->body)
        r->body = dup_str(ld, L, "");
    if (!r->content_type)
        r->content_type = dup_str(ld, L, "text/plain");
}

static void rd_index(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    if (strchr(s, '/'))
        fail(ld, L, SLUICE_ERR_INVAL, "route: index must be a file name, got '%s'", s);
    set_str(SLOT(obj, f, char *), dup_mem(ld, L, s, len));
}

/* The upstream's name; resolved to its index once the whole file ran, so
 * a route may come before its upstream. */
static void rd_proxy(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    rd_str(ld, L, v, obj, f);
    ((sl_cfg_route *)obj)->kind = SL_ROUTE_PROXY;
    ld->kinds++;
}

/* Sent as Host or :authority: nothing that could end or split a header
 * line (RFC 9110 §7.2: uri-host [ ":" port ]). Case is kept. */
static void rd_proxy_host(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr(".-_:[]", s[i])))
            fail(ld, L, SLUICE_ERR_INVAL, "route: bad host '%s'", s);
    set_str(SLOT(obj, f, char *), dup_mem(ld, L, s, len));
}

#define FWD(name) {#name, rd_bool, offsetof(sl_cfg_forwarded, name), 0, 0, 0, 0}

static const field forwarded_fields[] = {
    FWD(via), FWD(x_forwarded_for), FWD(x_forwarded_proto), FWD(forwarded),
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static void rd_forwarded(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_route *r = obj;
    (void)f;
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "route: forwarded must be a table { via = , "
             "x_forwarded_for = , x_forwarded_proto = , forwarded = }, got %s",
             luaL_typename(L, v));
    ld->got_forwarded = 1;
    ld->label = "route: forwarded";
    read_table(ld, L, v, forwarded_fields, &r->forwarded, NULL);
    ld->label = "route";
}

/* urgency = 0..7, incremental = bool: the default priority of the route's
 * streams when the client signals none (RFC 9218 §4). */
static void rd_urgency(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    rd_int(ld, L, v, obj, f);
    ((sl_cfg_route *)obj)->has_priority = 1;
}

static void rd_incremental(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    rd_bool(ld, L, v, obj, f);
    ((sl_cfg_route *)obj)->has_priority = 1;
}

/* A link field value as RFC 8288 §3 writes it, "<uri-reference>" first,
 * and nothing that could not go in a header field (RFC 9110 §5.5). */
static int link_value_ok(const char *s, size_t len)
{
    const char *gt = memchr(s, '>', len);
    if (s[0] != '<' || !gt || gt == s + 1 || s[len - 1] == ' ' || s[len - 1] == '\t')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] > 0x20 && s[i] < 0x7f) || s[i] == ' ' || s[i] == '\t'))
            return 0;
    return 1;
}

/* A pushed request's :path: absolute, visible ASCII, no fragment. */
static int push_path_ok(const char *s, size_t len)
{
    if (s[0] != '/')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '#')
            return 0;
    return 1;
}

/* hints = { ... } and push = { ... }: a short list of checked strings. */
static void rd_strings(loader *ld, lua_State *L, int v, const field *f, char ***list,
                       size_t *count, int (*ok)(const char *s, size_t len), const char *want)
{
    char sub[128];
    const char *what = subject(ld, f, sub, sizeof sub);
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a list of strings, got %s", what,
             luaL_typename(L, v));
    size_t n = list_len(ld, L, v, what);
    if (n > (size_t)f->max)
        fail(ld, L, SLUICE_ERR_INVAL, "%s: at most %lld entries, got %zu", what, f->max, n);
    if (n == 0)
        return;
    charge(ld, L, n * sizeof(char *));
    char **out = calloc(n, sizeof *out);
    if (!out)
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    *list = out; /* the route owns it now: NULL entries free fine if the run unwinds */
    *count = n;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, v, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            fail(ld, L, SLUICE_ERR_INVAL, "%s: entries must be strings, got %s", what,
                 luaL_typename(L, -1));
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len == 0 || strlen(s) != len || !ok(s, len))
            fail(ld, L, SLUICE_ERR_INVAL, "%s: bad entry '%s' (want %s)", what, s, want);
        out[i] = dup_mem(ld, L, s, len);
        lua_pop(L, 1);
    }
}

static void rd_hints(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_route *r = obj;
    rd_strings(ld, L, v, f, &r->hints, &r->nhints, link_value_ok,
               "a link value such as \"</style.css>; rel=preload; as=style\"");
}

static void rd_push(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_route *r = obj;
    rd_strings(ld, L, v, f, &r->push, &r->npush, push_path_ok,
               "a path such as \"/style.css\"");
}

static const field route_fields[] = {
    {"authority", rd_authority, offsetof(sl_cfg_route, authority), 0, 0, 0, 0},
    {"path", rd_route_path, offsetof(sl_cfg_route, path), 0, 0, 0, 0},
    {"static", rd_static, offsetof(sl_cfg_route, root), 0, 0, 0, 0},
    {"echo", rd_echo, 0, 0, 0, 0, 0},
    {"ret", rd_ret, 0, 0, 0, 0, 0},
    {"proxy", rd_proxy, offsetof(sl_cfg_route, proxy), 0, 0, 0, 0},
    {"index", rd_index, offsetof(sl_cfg_route, index), 0, 0, 0, 0},
    {"host", rd_proxy_host, offsetof(sl_cfg_route, proxy_host), 0, 0, 0, 0},
    {"forwarded", rd_forwarded, 0, 0, 0, 0, 0},
    {"urgency", rd_urgency, offsetof(sl_cfg_route, urgency), 0, 7, 0, 4},
    {"incremental", rd_incremental, offsetof(sl_cfg_route, incremental), 0, 0, 0, 0},
    {"hints", rd_hints, 0, 0, SL_CFG_MAX_HINTS, 0, 0},
    {"push", rd_push, 0, 0, SL_CFG_MAX_PUSH, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static int d_route(lua_State *L)
{
    loader *ld = enter(L, "route", LUA_TTABLE);
    sl_config *cfg = ld->cfg;
    sl_cfg_route *r = PUSH(ld, L, cfg->routes, cfg->nroutes);
    r->where = own_where(ld, L);
    r->forwarded = (sl_cfg_forwarded){.via = 1, .x_forwarded_for = 1, .x_forwarded_proto = 1};
    r->urgency = SLUICE_URGENCY_DEFAULT;
    ld->kinds = 0;
    ld->got_forwarded = 0;
    read_table(ld, L, 1, route_fields, r, NULL);
    if (ld->kinds != 1)
        fail(ld, L, SLUICE_ERR_INVAL, "route: exactly one of static, echo, ret, proxy is "
             "required");
    if (r->index && r->kind != SL_ROUTE_STATIC)
        fail(ld, L, SLUICE_ERR_INVAL, "route: index is only for static routes");
    if (r->proxy_host && r->kind != SL_ROUTE_PROXY)
        fail(ld, L, SLUICE_ERR_INVAL, "route: host is only for proxy routes");
    if (ld->got_forwarded && r->kind != SL_ROUTE_PROXY)
        fail(ld, L, SLUICE_ERR_INVAL, "route: forwarded is only for proxy routes");
    if (!r->path)
        r->path = dup_str(ld, L, "/");
    if (r->kind == SL_ROUTE_STATIC && !r->index)
        r->index = dup_str(ld, L, "index.html");
    return 0;
}

/* ---- timeouts { ... } and http2 { ... } ------------------------------------ */

#define TIMEOUT(name, min)                                                      \
    {#name, rd_secs, offsetof(sl_cfg_timeouts, name), (min), DAY_MS, 1000, 4}

static const field timeout_fields[] = {
    TIMEOUT(handshake, 1), TIMEOUT(preface, 1), TIMEOUT(idle, 1), TIMEOUT(header, 1),
    TIMEOUT(send, 1), TIMEOUT(drain, 1),
    TIMEOUT(close_wait, 0), TIMEOUT(linger, 0), /* 0: do not wait */
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static int d_timeouts(lua_State *L)
{
    loader *ld = enter(L, "timeouts", LUA_TTABLE);
    once(ld, L, ONCE_TIMEOUTS);
    read_table(ld, L, 1, timeout_fields, &ld->cfg->timeouts, NULL);
    return 0;
}

static const field rate_fields[] = {
    {"burst", rd_int, offsetof(sluice_rate, burst), 1, 1000000, 0, 4},
    {"per_sec", rd_int, offsetof(sluice_rate, per_sec), 1, 1000000, 0, 4},
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static void rate_pos(loader *ld, lua_State *L, lua_Integer i, int v, void *obj)
{
    if (i < 1 || i > 2)
        fail(ld, L, SLUICE_ERR_INVAL, "%s: expects { burst, per_sec }, got a value at index %lld",
             ld->label, (long long)i);
    rate_fields[i - 1].read(ld, L, v, obj, &rate_fields[i - 1]);
}

/* A token bucket, as { burst, per_sec } or { burst = , per_sec = }. Zero
 * would switch the guard off, so it is not accepted. */
static void rd_rate(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    char sub[128];
    const char *s = subject(ld, f, sub, sizeof sub);
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "%s must be a table { burst, per_sec }, got %s", s,
             luaL_typename(L, v));
    sluice_rate r = {0, 0};
    const char *outer = ld->label;
    ld->label = s;
    read_table(ld, L, v, rate_fields, &r, rate_pos);
    if (!r.burst || !r.per_sec)
        fail(ld, L, SLUICE_ERR_INVAL, "%s needs both burst and per_sec", s);
    ld->label = outer;
    memcpy(SLOT(obj, f, char), &r, sizeof r);
}

#define H2(name, read, min, max, unit, width)                                   \
    {#name, read, offsetof(sluice_session_options, name), (min), (max), (unit), (width)}
#define H2RATE(name) H2(name, rd_rate, 0, 0, 0, 0)

static const field h2_fields[] = {
    H2(header_table_size, rd_int, 0, MIB, 0, 4),
    H2(max_concurrent_streams, rd_int, 1, 65535, 0, 4),
    H2(initial_window_size, rd_int, 1, 0x7fffffff, 0, 4),   /* RFC 9113 §6.9.2 */
    H2(connection_window, rd_int, 65535, 0x7fffffff, 0, 4), /* RFC 9113 §6.9.1 */
    H2(max_frame_size, rd_int, 16384, 16777215, 0, 4),      /* RFC 9113 §6.5.2 */
    H2(max_header_list_size, rd_int, 1, 16 * MIB, 0, 4),
    H2(max_header_block_size, rd_int, 1, 64 * MIB, 0, 4),
    H2(max_continuation_frames, rd_int, 0, 65535, 0, 4),
    H2(max_outbound_control, rd_size, 16 * KIB, 64 * MIB, 0, 4),
    {"settings_timeout", rd_secs, offsetof(sluice_session_options, settings_timeout_ns),
     1000000, 3600 * 1000000000LL, 1000000000, 8},
    {"goaway_timeout", rd_secs, offsetof(sluice_session_options, goaway_timeout_ns),
     1000000, 3600 * 1000000000LL, 1000000000, 8},
    H2RATE(rst_received), H2RATE(rst_provoked), H2RATE(ping), H2RATE(settings),
    H2RATE(empty_data), H2RATE(priority),
    H2(priorities, rd_bool, 0, 0, 0, 0),
    {"push", rd_bool, offsetof(sluice_session_options, enable_push), 0, 0, 0, 0},
    H2(window_adaptive, rd_bool, 0, 0, 0, 0),
    H2(window_min, rd_size, 1, 0x7fffffff, 0, 4),                /* per stream */
    H2(window_max, rd_size, 1, 0x7fffffff, 0, 4),
    H2(connection_window_max, rd_size, 65535, 0x7fffffff, 0, 4),
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static int d_http2(lua_State *L)
{
    loader *ld = enter(L, "http2", LUA_TTABLE);
    sluice_session_options *h2 = &ld->cfg->h2;
    once(ld, L, ONCE_HTTP2);
    h2->max_header_block_size = 0; /* unset: follows max_header_list_size */
    read_table(ld, L, 1, h2_fields, h2, NULL);
    if (h2->max_header_block_size == 0)
        h2->max_header_block_size = 4 * h2->max_header_list_size;
    if (h2->window_min > h2->window_max) { /* else every session would refuse to start */
        char lo[32], hi[32];
        size_text(h2->window_min, lo, sizeof lo);
        size_text(h2->window_max, hi, sizeof hi);
        fail(ld, L, SLUICE_ERR_INVAL, "http2: window_min (%s) is above window_max (%s)", lo, hi);
    }
    return 0;
}

/* ---- admin { listen = "HOST:PORT" } ------------------------------------------ */

static void rd_admin_listen(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_config *cfg = obj;
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    parse_addr(ld, L, s, &cfg->admin_host, &cfg->admin_port);
}

static const field admin_fields[] = {
    {"listen", rd_admin_listen, 0, 0, 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0}
};

static int d_admin(lua_State *L)
{
    loader *ld = enter(L, "admin", LUA_TTABLE);
    once(ld, L, ONCE_ADMIN);
    read_table(ld, L, 1, admin_fields, ld->cfg, NULL);
    if (!ld->cfg->admin_host)
        fail(ld, L, SLUICE_ERR_INVAL, "admin: listen is required");
    return 0;
}

/* ---- policy { file = | files = , split = , limits ... } ---------------------- */

/* A policy's text is read with the config (so that a reload checks and
 * switches both together), whole, into memory: bounded, since every worker
 * compiles it into a state of its own. */
#define POLICY_MAX_FILES 8
#define POLICY_MAX_BYTES ((size_t)1 << 20)
#define POLICY_MAX_TEXT "1 MiB"

static void policy_sources(loader *ld, lua_State *L, sl_cfg_policy *p, size_t n)
{
    if (p->files)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: exactly one of file, files is required");
    charge(ld, L, n * sizeof *p->files);
    p->files = calloc(n, sizeof *p->files);
    if (!p->files)
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    p->nfiles = n; /* NULL entries free fine if the run unwinds halfway */
}

static void rd_policy_file(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_policy *p = obj;
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    policy_sources(ld, L, p, 1);
    p->files[0].path = resolve(ld, L, s, len);
}

static void rd_policy_files(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    sl_cfg_policy *p = obj;
    (void)f;
    if (!lua_istable(L, v))
        fail(ld, L, SLUICE_ERR_INVAL, "policy: files must be a list of paths, got %s",
             luaL_typename(L, v));
    size_t n = list_len(ld, L, v, "policy: files");
    if (n == 0)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: files must not be empty");
    if (n > POLICY_MAX_FILES)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: files: at most %d entries, got %zu",
             POLICY_MAX_FILES, n);
    policy_sources(ld, L, p, n);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, v, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            fail(ld, L, SLUICE_ERR_INVAL, "policy: files: entries must be strings, got %s",
                 luaL_typename(L, -1));
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len == 0 || strlen(s) != len)
            fail(ld, L, SLUICE_ERR_INVAL, "policy: files: entry %zu is %s", i + 1,
                 len ? "a path with a NUL byte" : "empty");
        p->files[i].path = resolve(ld, L, s, len);
        lua_pop(L, 1);
    }
}

static void rd_split(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    static const char *const names[] = {"client_hash", NULL}; /* enum sl_policy_split, from 1 */
    *SLOT(obj, f, int) = SL_SPLIT_CLIENT_HASH + choose(ld, L, v, f, names);
}

/* Whole and NUL-terminated. Regular files only: opening a FIFO would
 * wait for a writer. A file that grows while it is read still stops at the
 * bound. The buffer belongs to pf at once, so a failure frees it. */
static void read_policy(loader *ld, lua_State *L, sl_cfg_policy_file *pf)
{
    int fd = open(pf->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: %s: %s", pf->path, strerror(errno));
    struct stat st;
    int e = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (e == 0 && !S_ISREG(st.st_mode)) {
        close(fd);
        fail(ld, L, SLUICE_ERR_INVAL, "policy: %s: not a regular file", pf->path);
    }
    if (e == 0 && (unsigned long long)st.st_size > POLICY_MAX_BYTES) {
        close(fd);
        fail(ld, L, SLUICE_ERR_INVAL, "policy: %s: larger than " POLICY_MAX_TEXT, pf->path);
    }
    /* One byte more than its size, to notice growth. */
    size_t cap = e ? 0 : (size_t)st.st_size + 1, len = 0;
    if (e == 0 && !(pf->src = malloc(cap + 1)))
        e = ENOMEM;
    while (e == 0 && len < cap) {
        ssize_t r = read(fd, pf->src + len, cap - len);
        if (r > 0)
            len += (size_t)r;
        else if (r == 0)
            break;
        else if (errno != EINTR)
            e = errno;
        if (len == cap && cap <= POLICY_MAX_BYTES) { /* it grew since fstat */
            char *b = realloc(pf->src, POLICY_MAX_BYTES + 2);
            cap = POLICY_MAX_BYTES + 1;
            if (b)
                pf->src = b;
            else
                e = ENOMEM;
        }
    }
    close(fd);
    if (e == ENOMEM)
        fail(ld, L, SLUICE_ERR_NOMEM, "out of memory");
    if (e)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: %s: %s", pf->path, strerror(e));
    if (len > POLICY_MAX_BYTES)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: %s: larger than " POLICY_MAX_TEXT, pf->path);
    charge(ld, L, cap + 1);
    pf->src[len] = '\0';
    pf->len = len;
}

#define POL(name, key, read, min, max, unit, width)                             \
    {key, read, offsetof(sl_cfg_policy, name), (min), (max), (unit), (width)}
#define POLSIZE(name, key, min, max) POL(name, key, rd_size, min, max, 0, (int)sizeof(size_t))

static const field policy_fields[] = {
    {"file", rd_policy_file, 0, 0, 0, 0, 0},
    {"files", rd_policy_files, 0, 0, 0, 0, 0},
    POL(split, "split", rd_split, 0, 0, 0, 0),
    POL(limits.max_instructions, "instructions", rd_int, 1000, 10000000000LL, 0, 8),
    POL(limits.max_time_ns, "time", rd_secs, 1000000, 60000000000LL, 1000000000, 8),
    POLSIZE(limits.max_memory, "memory", MIB, 16 * GIB),
    POLSIZE(limits.max_string, "max_string", KIB, GIB),
    POL(limits.shared_max_keys, "shared_keys", rd_int, 1, 10000000, 0, (int)sizeof(size_t)),
    POLSIZE(limits.shared_max_bytes, "shared_memory", KIB, 16 * GIB),
    POL(window_interval, "window_interval", rd_secs, 10, 60000, 1000, 4),
    POL(watch, "watch", rd_bool, 0, 0, 0, 0),
    {NULL, NULL, 0, 0, 0, 0, 0}
};

/* The Lua is not compiled here: the host builds and checks the policies
 * with the rest of a generation (sl_gen_new), which `-t` and reloads run. */
static int d_policy(lua_State *L)
{
    loader *ld = enter(L, "policy", LUA_TTABLE);
    sl_cfg_policy *p = &ld->cfg->policy;
    if (p->where.file)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: declared twice, first at %s:%d", p->where.file,
             p->where.line);
    p->where = own_where(ld, L);
    read_table(ld, L, 1, policy_fields, p, NULL);
    if (!p->files)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: exactly one of file, files is required");
    if (p->nfiles > 1 && p->split == SL_SPLIT_NONE)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: %zu files need split = \"client_hash\" to "
             "choose one per connection", p->nfiles);
    if (p->nfiles == 1 && p->split != SL_SPLIT_NONE)
        fail(ld, L, SLUICE_ERR_INVAL, "policy: split needs several files");
    for (size_t i = 0; i < p->nfiles; i++)
        read_policy(ld, L, &p->files[i]);
    return 0;
}

/* ---- one-argument directives ------------------------------------------------- */

static void rd_tls_version(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    if (strcmp(s, "1.2") != 0 && strcmp(s, "1.3") != 0)
        fail(ld, L, SLUICE_ERR_INVAL, "tls_min_version must be '1.2' or '1.3', got '%s'", s);
    set_str(SLOT(obj, f, char *), dup_mem(ld, L, s, len));
}

/* "-" is stderr: kept as "-" for the access log, NULL for the error log
 * (what config.h promises the host). */
static void rd_access_log(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    set_str(SLOT(obj, f, char *), strcmp(s, "-") == 0 ? dup_str(ld, L, "-")
                                                      : resolve(ld, L, s, len));
}

static void rd_error_log(loader *ld, lua_State *L, int v, void *obj, const field *f)
{
    size_t len;
    const char *s = want_str(ld, L, v, f, &len);
    set_str(SLOT(obj, f, char *), strcmp(s, "-") == 0 ? NULL : resolve(ld, L, s, len));
}

#define SCALAR(name, slot, read, min, max, width)                               \
    {#name, slot, {NULL, read, offsetof(sl_config, name), (min), (max), 0, (width)}}

static const struct scalar {
    const char *name;
    int slot;
    field f;
} scalars[] = {
    SCALAR(workers, ONCE_WORKERS, rd_int, 1, 1024, 4),
    SCALAR(max_connections, ONCE_MAX_CONN, rd_int, 1, 10000000, 4),
    SCALAR(max_body, ONCE_MAX_BODY, rd_size, 0, 1024 * GIB, 8),
    SCALAR(notsent_lowat, ONCE_LOWAT, rd_size, 1, 64 * MIB, 4),
    SCALAR(tls_min_version, ONCE_TLS_MIN, rd_tls_version, 0, 0, 0),
    SCALAR(access_log, ONCE_ACCESS_LOG, rd_access_log, 0, 0, 0),
    SCALAR(error_log, ONCE_ERROR_LOG, rd_error_log, 0, 0, 0),
    SCALAR(pid_file, ONCE_PID_FILE, rd_path, 0, 0, 0),
    SCALAR(user, ONCE_USER, rd_str, 0, 0, 0),
};

static int d_scalar(lua_State *L)
{
    const struct scalar *s = &scalars[lua_tointeger(L, lua_upvalueindex(1))];
    loader *ld = enter(L, s->name, LUA_TNONE);
    once(ld, L, s->slot);
    s->f.read(ld, L, 1, ld->cfg, &s->f);
    return 0;
}

static const luaL_Reg table_directives[] = {
    {"listen", d_listen}, {"tls_certificate", d_tls_certificate}, {"route", d_route},
    {"upstream", d_upstream}, {"timeouts", d_timeouts}, {"http2", d_http2},
    {"admin", d_admin}, {"policy", d_policy}, {NULL, NULL}
};

/* ---- the sandbox ------------------------------------------------------------- */

/* Every HOOK_EVERY instructions: stop a config that runs too long. Every
 * line: remember it, since a memory error carries no position. */
static void hook(lua_State *L, lua_Debug *ar)
{
    loader *ld = get_loader(L);
    if (ar->event == LUA_HOOKLINE) {
        ld->line = ar->currentline;
        return;
    }
    ld->insns += lua_gethookcount(L);
    if (ld->insns < INSN_BUDGET)
        return;
    /* From now on fail at every instruction, so a pcall cannot outlast it. */
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    lua_getinfo(L, "Sl", ar);
    set_at(ld, ar);
    fail(ld, L, SLUICE_ERR_LIMIT, "config did not finish within %ld instructions "
         "(endless loop?)", INSN_BUDGET);
}

/* load() for text only: binary chunks skip the compiler's checks. */
static int safe_load(lua_State *L)
{
    int n = lua_gettop(L) < 3 ? 3 : lua_gettop(L);
    lua_settop(L, n); /* an absent env stays absent: n counts it only if given */
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* Finalizers run with hooks off, so one could loop forever unbounded. */
static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) {
            loader *ld = get_loader(L);
            caller_where(ld, L);
            fail(ld, L, SLUICE_ERR_INVAL, "setmetatable: __gc is not allowed in a config");
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* `workers = 4` for `workers(4)` would silently do nothing: refuse it. */
static int guard_newindex(lua_State *L)
{
    lua_settop(L, 3);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {
        loader *ld = get_loader(L);
        caller_where(ld, L);
        fail(ld, L, SLUICE_ERR_INVAL, "%s is a directive: call it, do not assign to it",
             lua_tostring(L, 2));
    }
    lua_pop(L, 1);
    lua_rawset(L, 1);
    return 0;
}

static void wrap_global(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getglobal(L, name);
    lua_pushcclosure(L, fn, 1);
    lua_setglobal(L, name);
}

static void open_sandbox(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base}, {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math}, {NULL, NULL}
    };
    static const char *const removed[] = {"dofile", "loadfile", "collectgarbage", NULL};
    for (const luaL_Reg *l = libs; l->name; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    for (const char *const *r = removed; *r; r++) {
        lua_pushnil(L);
        lua_setglobal(L, *r);
    }
    wrap_global(L, "load", safe_load);
    wrap_global(L, "setmetatable", safe_setmetatable);
}

/* Directives live in a table behind _G's __index, so assigning to one of
 * their names reaches guard_newindex. */
static void open_directives(lua_State *L)
{
    lua_newtable(L);
    luaL_setfuncs(L, table_directives, 0);
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        lua_pushinteger(L, (lua_Integer)i);
        lua_pushcclosure(L, d_scalar, 1);
        lua_setfield(L, -2, scalars[i].name);
    }
    lua_pushglobaltable(L);
    lua_newtable(L);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, guard_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_pop(L, 2);
}

/* Runs under lua_pcall, so that even a memory error while opening the
 * libraries unwinds here instead of panicking. */
static int run_protected(lua_State *L)
{
    loader *ld = get_loader(L);
    open_sandbox(L);
    open_directives(L);
    if (luaL_loadfilex(L, ld->path, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);
    return 0;
}

static int run_failed(loader *ld, lua_State *L, int status)
{
    if (ld->msg[0])
        return ld->rc; /* a directive or a limit said why */
    if (status == LUA_ERRMEM && ld->mem_exceeded)
        return error_at(ld, ld->path, ld->line, SLUICE_ERR_LIMIT,
                        "config uses more than " MEM_CAP_TEXT " of memory");
    if (status == LUA_ERRMEM) {
        snprintf(ld->msg, sizeof ld->msg, "%s: out of memory", ld->path);
        return ld->rc = SLUICE_ERR_NOMEM;
    }
    const char *m = lua_tostring(L, -1);
    if (!m)
        return error_at(ld, ld->path, ld->line, SLUICE_ERR_INVAL,
                        "error object is a %s value", luaL_typename(L, -1));
    snprintf(ld->msg, sizeof ld->msg, "%s", m); /* Lua's own "file:line: message" */
    return ld->rc = SLUICE_ERR_INVAL;
}

static int run_file(loader *ld)
{
    lua_State *L = lua_newstate(lua_alloc_capped, ld);
    if (!L) {
        snprintf(ld->msg, sizeof ld->msg, "%s: out of memory", ld->path);
        return ld->rc = SLUICE_ERR_NOMEM;
    }
    memcpy(lua_getextraspace(L), &ld, sizeof ld);
    lua_sethook(L, hook, LUA_MASKCOUNT | LUA_MASKLINE, HOOK_EVERY);
    lua_pushcfunction(L, run_protected);
    int status = lua_pcall(L, 0, 0, 0);
    int rc = status == LUA_OK && !ld->msg[0] ? 0 : run_failed(ld, L, status);
    lua_close(L);
    return rc;
}

/* ---- checks across declarations, after the file ran ------------------------- */

typedef struct dup_key {
    char *key;
    size_t owner; /* index of the declaration */
} dup_key;

static int cmp_key(const void *a, const void *b)
{
    const dup_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->owner > y->owner) - (x->owner < y->owner);
}

/* Sorting keeps this O(n log n): a loop in the config can declare many
 * thousands of routes. Returns p > 0 where k[p - 1] and k[p] are the
 * repeat that comes first in the file, or 0. */
static size_t find_dup(dup_key *k, size_t n)
{
    size_t best = 0;
    qsort(k, n, sizeof *k, cmp_key);
    for (size_t i = 1; i < n; i++)
        if (strcmp(k[i - 1].key, k[i].key) == 0 && (!best || k[i].owner < k[best].owner))
            best = i;
    return best;
}

static void free_keys(dup_key *k, size_t n, int owned)
{
    for (size_t i = 0; owned && i < n; i++)
        free(k[i].key);
    free(k);
}

static char *key_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *k = malloc(la + lb + 2);
    if (k) {
        memcpy(k, a, la);
        k[la] = '\n'; /* cannot occur in either part */
        memcpy(k + la + 1, b, lb + 1);
    }
    return k;
}

static int no_memory(loader *ld)
{
    snprintf(ld->msg, sizeof ld->msg, "%s: out of memory", ld->path);
    return ld->rc = SLUICE_ERR_NOMEM;
}

static int check_listen_dups(loader *ld)
{
    const sl_config *c = ld->cfg;
    dup_key *k = calloc(c->nlistens, sizeof *k);
    if (!k)
        return no_memory(ld);
    for (size_t i = 0; i < c->nlistens; i++) {
        char port[8];
        snprintf(port, sizeof port, "%u", (unsigned)c->listens[i].port);
        k[i].owner = i;
        if (!(k[i].key = key_join(c->listens[i].host, port))) {
            free_keys(k, c->nlistens, 1);
            return no_memory(ld);
        }
    }
    size_t p = find_dup(k, c->nlistens);
    int rc = 0;
    if (p) {
        const sl_cfg_listen *first = &c->listens[k[p - 1].owner], *l = &c->listens[k[p].owner];
        char a[80];
        addr_text(a, sizeof a, l->host, l->port);
        rc = error_at(ld, l->where.file, l->where.line, SLUICE_ERR_INVAL,
                      "listen: duplicate address %s (first declared at %s:%d)", a,
                      first->where.file, first->where.line);
    }
    free_keys(k, c->nlistens, 1);
    return rc;
}

static int check_listens(loader *ld)
{
    const sl_config *c = ld->cfg;
    if (c->nlistens == 0)
        return error_at(ld, ld->path, 1, SLUICE_ERR_INVAL,
                        "no listen declared: sluice needs at least one listener");
    int rc = check_listen_dups(ld);
    for (size_t i = 0; rc == 0 && c->ncerts == 0 && i < c->nlistens; i++) {
        const sl_cfg_listen *l = &c->listens[i];
        char a[80];
        addr_text(a, sizeof a, l->host, l->port);
        if (l->tls)
            rc = error_at(ld, l->where.file, l->where.line, SLUICE_ERR_INVAL,
                          "listen: TLS listener %s needs a tls_certificate", a);
    }
    return rc;
}

static int check_readable(loader *ld, const sl_cfg_where *w, const char *label,
                          const char *what, const char *file)
{
    if (!file || access(file, R_OK) == 0)
        return 0;
    return error_at(ld, w->file, w->line, SLUICE_ERR_INVAL, "%s: cannot read %s %s: %s",
                    label, what, file, strerror(errno));
}

static int check_name_dups(loader *ld)
{
    const sl_config *c = ld->cfg;
    size_t n = 0, j = 0;
    for (size_t i = 0; i < c->ncerts; i++)
        n += c->certs[i].nnames;
    if (n < 2)
        return 0;
    dup_key *k = calloc(n, sizeof *k);
    if (!k)
        return no_memory(ld);
    for (size_t i = 0; i < c->ncerts; i++)
        for (size_t m = 0; m < c->certs[i].nnames; m++, j++)
            k[j] = (dup_key){c->certs[i].names[m], i};
    size_t p = find_dup(k, n);
    int rc = 0;
    if (p) {
        const sl_cfg_cert *first = &c->certs[k[p - 1].owner], *d = &c->certs[k[p].owner];
        rc = first == d
                 ? error_at(ld, d->where.file, d->where.line, SLUICE_ERR_INVAL,
                            "tls_certificate: name %s is listed twice", k[p].key)
                 : error_at(ld, d->where.file, d->where.line, SLUICE_ERR_INVAL,
                            "tls_certificate: name %s is already served by the "
                            "certificate at %s:%d", k[p].key, first->where.file,
                            first->where.line);
    }
    free_keys(k, n, 0);
    return rc;
}

static int check_certs(loader *ld)
{
    const sl_config *c = ld->cfg;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->ncerts; i++) {
        const sl_cfg_cert *k = &c->certs[i];
        rc = check_readable(ld, &k->where, "tls_certificate", "cert", k->cert_file);
        if (rc == 0)
            rc = check_readable(ld, &k->where, "tls_certificate", "key", k->key_file);
    }
    return rc ? rc : check_name_dups(ld);
}

/* Upstream names sorted, for the duplicate check and for routes to find
 * theirs: a loop in the config can declare many thousands of either. */
static dup_key *upstream_keys(loader *ld)
{
    const sl_config *c = ld->cfg;
    dup_key *k = calloc(c->nupstreams ? c->nupstreams : 1, sizeof *k);
    if (!k) {
        no_memory(ld);
        return NULL;
    }
    for (size_t i = 0; i < c->nupstreams; i++)
        k[i] = (dup_key){c->upstreams[i].name, i};
    return k;
}

static int check_upstream_dups(loader *ld)
{
    const sl_config *c = ld->cfg;
    dup_key *k = upstream_keys(ld);
    if (!k)
        return ld->rc;
    size_t p = find_dup(k, c->nupstreams);
    int rc = 0;
    if (p) {
        const sl_cfg_upstream *first = &c->upstreams[k[p - 1].owner];
        const sl_cfg_upstream *u = &c->upstreams[k[p].owner];
        rc = error_at(ld, u->where.file, u->where.line, SLUICE_ERR_INVAL,
                      "upstream: duplicate name '%s' (first declared at %s:%d)", u->name,
                      first->where.file, first->where.line);
    }
    free_keys(k, c->nupstreams, 0);
    return rc;
}

static int check_upstreams(loader *ld)
{
    const sl_config *c = ld->cfg;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->nupstreams; i++) {
        const sl_cfg_upstream *u = &c->upstreams[i];
        rc = check_readable(ld, &u->where, "upstream: tls", "ca", u->tls_ca);
        if (rc == 0)
            rc = check_readable(ld, &u->where, "upstream: tls", "certificate", u->tls_cert);
        if (rc == 0)
            rc = check_readable(ld, &u->where, "upstream: tls", "key", u->tls_key);
    }
    return rc ? rc : check_upstream_dups(ld);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const dup_key *)a)->key, ((const dup_key *)b)->key);
}

/* After check_upstreams: names are unique, so a match is the upstream. */
static int resolve_proxies(loader *ld)
{
    sl_config *c = ld->cfg;
    dup_key *k = upstream_keys(ld);
    if (!k)
        return ld->rc;
    qsort(k, c->nupstreams, sizeof *k, cmp_name);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->nroutes; i++) {
        sl_cfg_route *r = &c->routes[i];
        dup_key want = {r->proxy, 0};
        const dup_key *hit;
        if (r->kind != SL_ROUTE_PROXY)
            continue;
        hit = bsearch(&want, k, c->nupstreams, sizeof *k, cmp_name);
        if (hit)
            r->upstream = hit->owner;
        else
            rc = error_at(ld, r->where.file, r->where.line, SLUICE_ERR_INVAL,
                          "route: proxy: no upstream named '%s'", r->proxy);
    }
    free_keys(k, c->nupstreams, 0);
    return rc;
}

static int check_route_dups(loader *ld)
{
    const sl_config *c = ld->cfg;
    dup_key *k = calloc(c->nroutes ? c->nroutes : 1, sizeof *k);
    if (!k)
        return no_memory(ld);
    for (size_t i = 0; i < c->nroutes; i++) {
        const sl_cfg_route *r = &c->routes[i];
        k[i].owner = i;
        if (!(k[i].key = key_join(r->authority ? r->authority : "", r->path))) {
            free_keys(k, c->nroutes, 1);
            return no_memory(ld);
        }
    }
    size_t p = find_dup(k, c->nroutes);
    int rc = 0;
    if (p) {
        const sl_cfg_route *first = &c->routes[k[p - 1].owner], *r = &c->routes[k[p].owner];
        rc = error_at(ld, r->where.file, r->where.line, SLUICE_ERR_INVAL,
                      "route: duplicate route for %s%s (first declared at %s:%d)",
                      r->authority ? r->authority : "", r->path,
                      first->where.file, first->where.line);
    }
    free_keys(k, c->nroutes, 1);
    return rc;
}

static int check_routes(loader *ld)
{
    const sl_config *c = ld->cfg;
    for (size_t i = 0; i < c->nroutes; i++) {
        const sl_cfg_route *r = &c->routes[i];
        struct stat st;
        if (r->kind != SL_ROUTE_STATIC)
            continue;
        if (stat(r->root, &st) != 0)
            return error_at(ld, r->where.file, r->where.line, SLUICE_ERR_INVAL,
                            "route: static root %s: %s", r->root, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return error_at(ld, r->where.file, r->where.line, SLUICE_ERR_INVAL,
                            "route: static root %s is not a directory", r->root);
    }
    int rc = resolve_proxies(ld);
    return rc ? rc : check_route_dups(ld);
}

static int check_admin(loader *ld)
{
    const sl_config *c = ld->cfg;
    const sl_cfg_where *w = &ld->once[ONCE_ADMIN];
    for (size_t i = 0; c->admin_host && i < c->nlistens; i++) {
        const sl_cfg_listen *l = &c->listens[i];
        char a[80];
        if (l->port != c->admin_port || strcmp(l->host, c->admin_host) != 0)
            continue;
        addr_text(a, sizeof a, l->host, l->port);
        return error_at(ld, w->file, w->line, SLUICE_ERR_INVAL,
                        "admin: %s is already a listener (%s:%d)", a, l->where.file,
                        l->where.line);
    }
    return 0;
}

/* Checked now so that `sluice -t` catches it, not the drop after binding. */
static int check_user(loader *ld)
{
    const sl_cfg_where *w = &ld->once[ONCE_USER];
    if (!ld->cfg->user || getpwnam(ld->cfg->user))
        return 0;
    return error_at(ld, w->file, w->line, SLUICE_ERR_INVAL, "user: no such user '%s'",
                    ld->cfg->user);
}

static int check_config(loader *ld)
{
    int rc = check_listens(ld);
    if (rc == 0)
        rc = check_certs(ld);
    if (rc == 0)
        rc = check_upstreams(ld);
    if (rc == 0)
        rc = check_routes(ld);
    if (rc == 0)
        rc = check_admin(ld);
    if (rc == 0)
        rc = check_user(ld);
    return rc;
}

/* ---- entry points ------------------------------------------------------------ */

static int set_defaults(sl_config *cfg)
{
    cfg->workers = 1;
    cfg->max_connections = 10000;
    cfg->max_body = 16 * MIB;
    cfg->notsent_lowat = 16384;
    cfg->timeouts = (sl_cfg_timeouts){.handshake = 10000, .preface = 10000, .idle = 60000,
                                      .header = 10000, .send = 30000, .drain = 30000,
                                      .close_wait = 2000, .linger = 5000};
    sluice_session_options_init(&cfg->h2);
    sluice_policy_options_init(&cfg->policy.limits);
    cfg->policy.window_interval = 100;
    cfg->tls_min_version = strdup("1.2");
    return cfg->tls_min_version ? 0 : SLUICE_ERR_NOMEM;
}

static int start(loader *ld)
{
    if (access(ld->path, R_OK) != 0) {
        snprintf(ld->msg, sizeof ld->msg, "cannot open %s: %s", ld->path, strerror(errno));
        return ld->rc = SLUICE_ERR_INVAL;
    }
    ld->cfg = calloc(1, sizeof *ld->cfg);
    if (!ld->cfg || set_defaults(ld->cfg) != 0)
        return no_memory(ld);
    ld->dir = config_dir(ld->path);
    if (!ld->dir) {
        snprintf(ld->msg, sizeof ld->msg, "cannot open %s: %s", ld->path, strerror(errno));
        return ld->rc = SLUICE_ERR_INVAL;
    }
    const char *slash = strrchr(ld->path, '/');
    const char *base = slash ? slash + 1 : ld->path;
    /* Absolute, so a reload finds it after the process changed directory. */
    ld->cfg->file = join_path(ld->dir, base, strlen(base));
    return ld->cfg->file ? 0 : no_memory(ld);
}

int sl_config_load(const char *path, sl_config **out, char *err, size_t errlen)
{
    loader ld;
    memset(&ld, 0, sizeof ld);
    ld.path = path;
    int rc;
    if (!path || !out) {
        snprintf(ld.msg, sizeof ld.msg, "no config file given");
        rc = SLUICE_ERR_INVAL;
    } else {
        *out = NULL;
        rc = start(&ld);
    }
    if (rc == 0)
        rc = run_file(&ld);
    if (rc == 0)
        rc = check_config(&ld);
    if (rc == 0) {
        *out = ld.cfg;
        ld.cfg = NULL;
    } else if (err && errlen) {
        snprintf(err, errlen, "%s", ld.msg);
    }
    for (int i = 0; i < ONCE_COUNT; i++)
        free(ld.once[i].file);
    free(ld.dir);
    sl_config_free(ld.cfg);
    return rc;
}

static void free_routes(sl_cfg_route *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].where.file);
        free(r[i].authority);
        free(r[i].path);
        free(r[i].root);
        free(r[i].index);
        free(r[i].body);
        free(r[i].content_type);
        free(r[i].proxy);
        free(r[i].proxy_host);
        for (size_t j = 0; j < r[i].nhints; j++)
            free(r[i].hints[j]);
        free(r[i].hints);
        for (size_t j = 0; j < r[i].npush; j++)
            free(r[i].push[j]);
        free(r[i].push);
    }
    free(r);
}

static void free_upstreams(sl_cfg_upstream *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(u[i].where.file);
        free(u[i].name);
        for (size_t j = 0; j < u[i].nservers; j++) {
            free(u[i].servers[j].host);
            free(u[i].servers[j].name);
        }
        free(u[i].servers);
        free(u[i].tls_ca);
        free(u[i].tls_sni);
        free(u[i].tls_cert);
        free(u[i].tls_key);
        free(u[i].health.path);
    }
    free(u);
}

static void free_policy(sl_cfg_policy *p)
{
    free(p->where.file);
    for (size_t i = 0; i < p->nfiles; i++) {
        free(p->files[i].path);
        free(p->files[i].src);
    }
    free(p->files);
}

static void free_certs(sl_cfg_cert *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].where.file);
        free(c[i].cert_file);
        free(c[i].key_file);
        for (size_t j = 0; j < c[i].nnames; j++)
            free(c[i].names[j]);
        free(c[i].names);
    }
    free(c);
}

void sl_config_free(sl_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nlistens; i++) {
        free(cfg->listens[i].where.file);
        free(cfg->listens[i].host);
    }
    free(cfg->listens);
    free_certs(cfg->certs, cfg->ncerts);
    free_routes(cfg->routes, cfg->nroutes);
    free_upstreams(cfg->upstreams, cfg->nupstreams);
    free_policy(&cfg->policy);
    free(cfg->access_log);
    free(cfg->error_log);
    free(cfg->admin_host);
    free(cfg->pid_file);
    free(cfg->user);
    free(cfg->tls_min_version);
    free(cfg->file);
    free(cfg);
}
