/* shared.c — a worker's `shared` table: an open-addressing hash of scalar
 * values in C memory, reached from any number of Lua states through proxies. */
#include "shared.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <lauxlib.h>

#define SH_MT "sluice.shared"
#define SH_INLINE 8   /* strings this short live in the slot itself */
#define SH_MIN_CAP 16
#define SH_K 0x9e3779b97f4a7c15u

/* Key kinds: a float key is never integral (1.0 is stored as 1), so
 * equal Lua keys always have the same kind. */
enum { K_EMPTY, K_DEAD, K_INT, K_FLT, K_STR };
enum { V_BOOL, V_INT, V_FLT, V_STR };

typedef union sh_val {
    lua_Integer i;
    lua_Number n;
    int b;
    char *p;
    char in[SH_INLINE];
} sh_val;

typedef struct sh_slot {
    uint64_t hash;
    unsigned char kt, vt;
    size_t klen, vlen; /* of string keys and values */
    sh_val k, v;
} sh_slot;

struct sl_lshared {
    sh_slot *slots;
    size_t cap;        /* a power of two, or 0 before the first write */
    size_t live, dead; /* dead slots (deleted keys) keep probe chains intact */
    size_t bytes;      /* of string keys and values */
    size_t max_keys, max_bytes;
    uint64_t seed[2];  /* keys may come from clients: a secret seed keeps
                          them from choosing colliding ones */
};

/* A key as Lua gave it, not yet copied. */
typedef struct sh_key {
    int kt;
    uint64_t hash;
    lua_Integer i;
    lua_Number n;
    const char *s;
    size_t len;
} sh_key;

/* ---- hashing ---------------------------------------------------------------- */

__extension__ typedef unsigned __int128 sh_u128;

/* The two halves of a 64x64 product folded together. */
static uint64_t sh_mum(uint64_t a, uint64_t b)
{
    sh_u128 r = (sh_u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t sh_hash_str(const sl_lshared *sh, const char *s, size_t len)
{
    uint64_t h = sh->seed[0] ^ ((uint64_t)len * SH_K);
    for (;;) {
        uint64_t a = 0, c = 0;
        size_t n = len < 16 ? len : 16;
        if (n > 8) {
            memcpy(&a, s, 8);
            memcpy(&c, s + 8, n - 8);
        } else {
            memcpy(&a, s, n);
        }
        h = sh_mum(a ^ sh->seed[1], c ^ h);
        if (len <= 16)
            break;
        s += 16;
        len -= 16;
    }
    return sh_mum(h, sh->seed[0] ^ SH_K);
}

static uint64_t sh_hash_word(const sl_lshared *sh, uint64_t w)
{
    return sh_mum(w ^ sh->seed[1], sh->seed[0] ^ SH_K);
}

/* ---- strings ------------------------------------------------------------------ */

static const char *sh_str(const sh_val *v, size_t len)
{
    return len <= SH_INLINE ? v->in : v->p;
}

static int sh_str_set(sh_val *v, const char *s, size_t len)
{
    if (len <= SH_INLINE) {
        memcpy(v->in, s, len);
        return 0;
    }
    v->p = malloc(len);
    if (!v->p)
        return -1;
    memcpy(v->p, s, len);
    return 0;
}

static void sh_str_free(sh_val *v, size_t len)
{
    if (len > SH_INLINE)
        free(v->p);
}

/* ---- the table ------------------------------------------------------------------- */

sl_lshared *sl_lshared_new(size_t max_keys, size_t max_bytes)
{
    sl_lshared *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return NULL;
    sh->max_keys = max_keys;
    sh->max_bytes = max_bytes;
    if (getrandom(sh->seed, sizeof sh->seed, GRND_NONBLOCK) != (ssize_t)sizeof sh->seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sh->seed[0] = sh_mum((uint64_t)(uintptr_t)sh ^ SH_K, (uint64_t)ts.tv_nsec | 1);
        sh->seed[1] = sh_mum(sh->seed[0] ^ (uint64_t)ts.tv_sec, SH_K);
    }
    return sh;
}

void sl_lshared_free(sl_lshared *sh)
{
    if (!sh)
        return;
    for (size_t i = 0; i < sh->cap; i++) {
        sh_slot *s = &sh->slots[i];
        if (s->kt < K_INT)
            continue;
        if (s->kt == K_STR)
            sh_str_free(&s->k, s->klen);
        if (s->vt == V_STR)
            sh_str_free(&s->v, s->vlen);
    }
    free(sh->slots);
    free(sh);
}

size_t sl_lshared_count(const sl_lshared *sh)
{
    return sh->live;
}

static int sh_key_eq(const sh_slot *s, const sh_key *k)
{
    switch (k->kt) {
    case K_INT:
        return s->k.i == k->i;
    case K_FLT:
        return s->k.n == k->n;
    default:
        return s->klen == k->len && memcmp(sh_str(&s->k, s->klen), k->s, k->len) == 0;
    }
}

/* The slot of k, or NULL; then *hole (if asked) is where k would go: the
 * first dead slot on its probe chain, else the empty slot that ends it. */
static sh_slot *sh_find(const sl_lshared *sh, const sh_key *k, sh_slot **hole)
{
    sh_slot *dead = NULL;
    size_t mask = sh->cap - 1;
    if (hole)
        *hole = NULL;
    if (sh->cap == 0)
        return NULL;
    for (size_t i = (size_t)k->hash & mask;; i = (i + 1) & mask) {
        sh_slot *s = &sh->slots[i];
        if (s->kt == K_EMPTY) {
            if (hole)
                *hole = dead ? dead : s;
            return NULL;
        }
        if (s->kt == K_DEAD) {
            if (!dead)
                dead = s;
        } else if (s->kt == k->kt && s->hash == k->hash && sh_key_eq(s, k)) {
            return s;
        }
    }
}

/* Room for live + 1 keys at a load of at most 1/2, without dead slots. */
static int sh_rehash(sl_lshared *sh)
{
    size_t cap = SH_MIN_CAP;
    sh_slot *ns;
    while (cap < (sh->live + 1) * 2)
        cap *= 2;
    ns = calloc(cap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i < sh->cap; i++) {
        size_t j = (size_t)sh->slots[i].hash & (cap - 1);
        if (sh->slots[i].kt < K_INT)
            continue;
        while (ns[j].kt != K_EMPTY)
            j = (j + 1) & (cap - 1);
        ns[j] = sh->slots[i];
    }
    free(sh->slots);
    sh->slots = ns;
    sh->cap = cap;
    sh->dead = 0;
    return 0;
}

/* ---- the proxy ---------------------------------------------------------------- */

/* The metamethods are reached only through the proxy's metatable, which
 * the policy cannot get (__metatable), so their first argument is always
 * a proxy and needs no check on this hot path. */
static sl_lshared *sh_self(lua_State *L, int idx)
{
    return **(sl_lshared *const **)lua_touserdata(L, idx);
}

/* 0, or raises; a NaN key is reported as 1 (a read of it finds nothing). */
static int sh_key_of(lua_State *L, const sl_lshared *sh, int idx, sh_key *k)
{
    int isint;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        k->kt = K_STR;
        k->s = lua_tolstring(L, idx, &k->len);
        k->hash = sh_hash_str(sh, k->s, k->len);
        return 0;
    case LUA_TNUMBER:
        /* As in a table: a float with an integer value is that integer. */
        k->i = lua_tointegerx(L, idx, &isint);
        if (isint) {
            k->kt = K_INT;
            k->hash = sh_hash_word(sh, (uint64_t)k->i);
        } else {
            uint64_t bits;
            k->n = lua_tonumber(L, idx);
            if (k->n != k->n)
                return 1;
            memcpy(&bits, &k->n, sizeof bits);
            k->kt = K_FLT;
            k->hash = sh_hash_word(sh, bits);
        }
        return 0;
    default:
        return luaL_error(L, "shared: keys must be strings or numbers");
    }
}

static void sh_push_key(lua_State *L, const sh_slot *s)
{
    if (s->kt == K_INT)
        lua_pushinteger(L, s->k.i);
    else if (s->kt == K_FLT)
        lua_pushnumber(L, s->k.n);
    else
        lua_pushlstring(L, sh_str(&s->k, s->klen), s->klen);
}

static void sh_push_value(lua_State *L, const sh_slot *s)
{
    switch (s->vt) {
    case V_BOOL:
        lua_pushboolean(L, s->v.b);
        break;
    case V_INT:
        lua_pushinteger(L, s->v.i);
        break;
    case V_FLT:
        lua_pushnumber(L, s->v.n);
        break;
    default:
        lua_pushlstring(L, sh_str(&s->v, s->vlen), s->vlen);
        break;
    }
}

static int sh_index(lua_State *L)
{
    sl_lshared *sh = sh_self(L, 1);
    sh_key k;
    const sh_slot *s;
    if (sh_key_of(L, sh, 2, &k) != 0) {
        lua_pushnil(L);
        return 1;
    }
    s = sh_find(sh, &k, NULL);
    if (s)
        sh_push_value(L, s);
    else
        lua_pushnil(L);
    return 1;
}

static void sh_delete(sl_lshared *sh, const sh_key *k)
{
    sh_slot *s = sh_find(sh, k, NULL);
    if (!s)
        return;
    if (s->kt == K_STR) {
        sh->bytes -= s->klen;
        sh_str_free(&s->k, s->klen);
    }
    if (s->vt == V_STR) {
        sh->bytes -= s->vlen;
        sh_str_free(&s->v, s->vlen);
    }
    s->kt = K_DEAD;
    sh->live--;
    sh->dead++;
}

/* The value at idx as it will be stored (a string not yet copied), or raises. */
static void sh_value_of(lua_State *L, int idx, sh_slot *v, const char **str)
{
    *str = NULL;
    v->vlen = 0;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        v->vt = V_BOOL;
        v->v.b = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v->vt = V_INT;
            v->v.i = lua_tointeger(L, idx);
        } else {
            v->vt = V_FLT;
            v->v.n = lua_tonumber(L, idx);
        }
        break;
    case LUA_TSTRING:
        v->vt = V_STR;
        *str = lua_tolstring(L, idx, &v->vlen);
        break;
    default:
        luaL_error(L, "shared: values must be nil, boolean, number or string");
    }
}

static int sh_full(lua_State *L, const sl_lshared *sh)
{
    return luaL_error(L, "shared: table full (%I keys, %I bytes)", (lua_Integer)sh->max_keys,
                      (lua_Integer)sh->max_bytes);
}

/* Every check and allocation comes before the first change, so an error
 * leaves the table as it was. */
static int sh_newindex(lua_State *L)
{
    sl_lshared *sh = sh_self(L, 1);
    sh_key k;
    sh_slot nv, *s, *hole;
    const char *vs;
    size_t bytes;
    int nk = sh_key_of(L, sh, 2, &k);
    if (lua_isnil(L, 3)) {
        if (nk == 0)
            sh_delete(sh, &k);
        return 0;
    }
    if (nk != 0)
        return luaL_error(L, "shared: key is NaN");
    sh_value_of(L, 3, &nv, &vs);
    s = sh_find(sh, &k, &hole);
    bytes = sh->bytes + nv.vlen;
    if (s) {
        if (s->vt == V_STR)
            bytes -= s->vlen;
    } else {
        if (sh->max_keys && sh->live >= sh->max_keys)
            return sh_full(L, sh);
        if (k.kt == K_STR)
            bytes += k.len;
    }
    if (sh->max_bytes && bytes > sh->max_bytes)
        return sh_full(L, sh);
    if (vs && sh_str_set(&nv.v, vs, nv.vlen) != 0)
        return luaL_error(L, "shared: out of memory");
    if (!s) {
        sh_val key;
        if (k.kt == K_STR && sh_str_set(&key, k.s, k.len) != 0) {
            sh_str_free(&nv.v, nv.vlen);
            return luaL_error(L, "shared: out of memory");
        }
        /* A dead slot is reused as it is; an empty one may need room. */
        if (!hole || (hole->kt == K_EMPTY && (sh->live + sh->dead + 1) * 4 > sh->cap * 3)) {
            if (sh_rehash(sh) != 0) {
                if (k.kt == K_STR)
                    sh_str_free(&key, k.len);
                sh_str_free(&nv.v, nv.vlen);
                return luaL_error(L, "shared: out of memory");
            }
            sh_find(sh, &k, &hole);
        }
        s = hole;
        if (s->kt == K_DEAD)
            sh->dead--;
        s->kt = (unsigned char)k.kt;
        s->hash = k.hash;
        s->klen = k.kt == K_STR ? k.len : 0;
        if (k.kt == K_STR)
            s->k = key;
        else if (k.kt == K_INT)
            s->k.i = k.i;
        else
            s->k.n = k.n;
        sh->live++;
    } else if (s->vt == V_STR) {
        sh_str_free(&s->v, s->vlen);
    }
    s->vt = nv.vt;
    s->v = nv.v;
    s->vlen = nv.vlen;
    sh->bytes = bytes;
    return 0;
}

static int sh_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sh_self(L, 1)->live);
    return 1;
}

/* The iterator walks slots by position (upvalue 2) over the proxy in
 * upvalue 1, not over its arguments, which a policy may forge. Deleting
 * the current key moves nothing; adding keys may rehash (as with next,
 * the order is then undefined). */
static int sh_next(lua_State *L)
{
    sl_lshared *sh = sh_self(L, lua_upvalueindex(1));
    for (size_t i = (size_t)lua_tointeger(L, lua_upvalueindex(2)); i < sh->cap; i++) {
        const sh_slot *s = &sh->slots[i];
        if (s->kt < K_INT)
            continue;
        lua_pushinteger(L, (lua_Integer)i + 1);
        lua_replace(L, lua_upvalueindex(2));
        sh_push_key(L, s);
        sh_push_value(L, s);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)sh->cap);
    lua_replace(L, lua_upvalueindex(2));
    lua_pushnil(L);
    return 1;
}

static int sh_pairs(lua_State *L)
{
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, sh_next, 2);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

void sl_lshared_push(lua_State *L, sl_lshared *const *slot)
{
    static const luaL_Reg mm[] = {{"__index", sh_index},
                                  {"__newindex", sh_newindex},
                                  {"__len", sh_len},
                                  {"__pairs", sh_pairs},
                                  {NULL, NULL}};
    sl_lshared *const **u = lua_newuserdatauv(L, sizeof(*u), 0);
    *u = slot;
    /* One metatable per state, in its registry. */
    if (luaL_newmetatable(L, SH_MT)) {
        luaL_setfuncs(L, mm, 0);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
}
