/* sandbox.c — a Lua 5.4 state for untrusted policy code: safe libraries
 * only, a memory cap in the allocator, and per-call instruction and time budgets. */
#include "sandbox.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lpattern.h"

/* The count hook runs every LBOX_EVERY VM instructions: the clock is read
 * every few microseconds of Lua code, and the hook costs next to nothing. */
#define LBOX_EVERY 1000
/* Source bytes load() parses per unit of budget (lpattern's rate too). */
#define LBOX_BYTES_PER_UNIT 16
/* load() with a reader function keeps the current piece in this slot. */
#define LBOX_READ_SLOT 5

struct sl_lbox {
    lua_State *L;
    sl_lbox_limits lim;
    sl_lbox_env env;
    size_t mem;                /* bytes the state holds */
    /* An allocation the cap refused. Lua retries it once after an
     * emergency collection; if that succeeds the refusal is forgotten,
     * otherwise the cap was hit (even if a pcall in the policy swallows
     * the "not enough memory" error). */
    int refused;
    void *refused_ptr;
    size_t refused_size;
    /* The running call. */
    int in_call;
    int fail;                  /* enum sl_lbox_fail once the call is doomed */
    uint64_t used;             /* instructions and charged units */
    uint64_t clock_at;         /* `used` at the last read of the clock */
    uint64_t start;            /* the clock when the call began */
    char msg[192];             /* the budget error of the call */
    char warn[256];            /* a warning being assembled from pieces */
    size_t warn_len;
};

/* ---- memory ------------------------------------------------------------ */

/* Counts every byte; refuses growth past the cap, never a free or a
 * shrink (Lua cannot recover from a failed shrink). */
static void *lbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sl_lbox *b = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    void *p;
    if (nsize == 0) {
        free(ptr);
        b->mem -= old;
        return NULL;
    }
    if (nsize > old && b->lim.memory && nsize - old > b->lim.memory - b->mem) {
        b->refused = 1;
        b->refused_ptr = ptr;
        b->refused_size = nsize;
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (!p) {
        if (nsize <= old) { /* realloc may fail to shrink: keep the block */
            b->mem -= old - nsize;
            return ptr;
        }
        b->refused = 1;
        b->refused_ptr = ptr;
        b->refused_size = nsize;
        return NULL;
    }
    if (b->refused && ptr == b->refused_ptr && nsize == b->refused_size)
        b->refused = 0; /* the retry after the emergency collection */
    b->mem = b->mem - old + nsize;
    return p;
}

/* ---- budgets ----------------------------------------------------------- */

static uint64_t lbox_now(const sl_lbox *b)
{
    struct timespec ts;
    if (b->env.clock)
        return b->env.clock(b->env.ud);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lbox_memory_msg(sl_lbox *b)
{
    if (b->lim.memory)
        snprintf(b->msg, sizeof b->msg, "memory limit exceeded (%zu bytes)", b->lim.memory);
    else
        snprintf(b->msg, sizeof b->msg, "not enough memory");
}

/* Dooms the call: records why, with the position of the innermost Lua
 * function (a C function such as a pattern matcher has no line). Formats
 * into b->msg without allocating: the state may be at its cap. */
static void lbox_doom(lua_State *L, sl_lbox *b, int why)
{
    const char *what = why == SL_LBOX_TIME ? "time limit exceeded" : "instruction budget exceeded";
    lua_Debug ar;
    b->fail = why;
    if (why == SL_LBOX_MEMORY) {
        lbox_memory_msg(b);
        return;
    }
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(b->msg, sizeof b->msg, "%s:%d: %s", ar.short_src, ar.currentline, what);
            return;
        }
    }
    snprintf(b->msg, sizeof b->msg, "%s", what);
}

static void lbox_hook(lua_State *L, lua_Debug *ar);

/* From now on every instruction of this thread and of the main thread
 * fails, so neither a pcall nor a coroutine boundary can swallow the
 * error for long (an outer coroutine fails at its next hook). */
static int lbox_raise(lua_State *L, sl_lbox *b)
{
    lua_sethook(L, lbox_hook, LUA_MASKCOUNT, 1);
    if (L != b->L)
        lua_sethook(b->L, lbox_hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, b->msg);
    return lua_error(L);
}

static void lbox_check(lua_State *L, sl_lbox *b)
{
    if (b->refused) {
        lbox_doom(L, b, SL_LBOX_MEMORY);
    } else if (b->lim.instructions && b->used > b->lim.instructions) {
        lbox_doom(L, b, SL_LBOX_INSTRUCTIONS);
    } else if (b->lim.time_ns && b->used - b->clock_at >= LBOX_EVERY) {
        uint64_t now = lbox_now(b);
        b->clock_at = b->used;
        /* A clock that goes backwards does not doom the call. */
        if (now > b->start && now - b->start > b->lim.time_ns)
            lbox_doom(L, b, SL_LBOX_TIME);
    }
}

static uint64_t sat_add(uint64_t a, uint64_t c)
{
    return a + c < a ? UINT64_MAX : a + c;
}

static void lbox_hook(lua_State *L, lua_Debug *ar)
{
    sl_lbox *b = sl_lbox_of(L);
    int n = lua_gethookcount(L);
    (void)ar;
    /* Threads keep the hook they were created with (or the count of 1 of
     * a doomed call): every thread gets back to the normal count once the
     * call that doomed them is over. */
    if (!b->in_call) {
        if (n != LBOX_EVERY)
            lua_sethook(L, lbox_hook, LUA_MASKCOUNT, LBOX_EVERY);
        return;
    }
    if (!b->fail) {
        if (n != LBOX_EVERY)
            lua_sethook(L, lbox_hook, LUA_MASKCOUNT, LBOX_EVERY);
        b->used = sat_add(b->used, (uint64_t)n);
        lbox_check(L, b);
        if (!b->fail)
            return;
    }
    lbox_raise(L, b);
}

void sl_lbox_charge(lua_State *L, uint64_t units)
{
    sl_lbox *b = sl_lbox_of(L);
    if (!b || !b->in_call)
        return;
    if (!b->fail) {
        b->used = sat_add(b->used, units);
        lbox_check(L, b);
        if (!b->fail)
            return;
    }
    lbox_raise(L, b);
}

size_t sl_lbox_max_string(lua_State *L)
{
    sl_lbox *b = sl_lbox_of(L);
    if (!b)
        return (size_t)LUA_MAXINTEGER;
    if (b->lim.max_string)
        return b->lim.max_string;
    return b->lim.memory ? b->lim.memory : (size_t)LUA_MAXINTEGER;
}

/* The allocator's ud is the box: every thread of the state reaches it,
 * and a state that is not a sandbox answers NULL instead of garbage. */
sl_lbox *sl_lbox_of(lua_State *L)
{
    void *ud;
    return lua_getallocf(L, &ud) == lbox_alloc ? ud : NULL;
}

/* ---- base library replacements ------------------------------------------ */

static void lbox_log(sl_lbox *b, int level, const char *msg)
{
    if (b->env.log)
        b->env.log(b->env.ud, level, msg);
}

/* tostring() of each argument, tab-separated, as one info line. */
static int lbox_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&buf, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&buf);
    }
    luaL_pushresult(&buf);
    lbox_log(sl_lbox_of(L), 2, lua_tostring(L, -1));
    return 0;
}

static void lbox_warn(void *ud, const char *msg, int tocont)
{
    sl_lbox *b = ud;
    size_t room = sizeof b->warn - 1 - b->warn_len, len = strlen(msg);
    if (b->warn_len == 0 && !tocont && msg[0] == '@')
        return; /* "@on"/"@off": warnings always go to the log */
    if (len > room)
        len = room;
    memcpy(b->warn + b->warn_len, msg, len);
    b->warn_len += len;
    if (!tocont) {
        b->warn[b->warn_len] = '\0';
        b->warn_len = 0;
        lbox_log(b, 1, b->warn);
    }
}

/* A policy may read its memory use, but not drive or stop the collector. */
static int lbox_collectgarbage(lua_State *L)
{
    const char *opt = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    if (!opt || strcmp(opt, "count") != 0)
        return luaL_error(L, "collectgarbage: only 'count' is allowed");
    lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) +
                          (lua_Number)lua_gc(L, LUA_GCCOUNTB) / 1024.0);
    return 1;
}

/* Each piece of a reader function's chunk, charged like the source text. */
static const char *lbox_read(lua_State *L, void *ud, size_t *size)
{
    const char *s;
    (void)ud;
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *size = 0;
        return NULL;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "reader function must return a string");
    lua_replace(L, LBOX_READ_SLOT); /* keeps the piece alive while it is parsed */
    s = lua_tolstring(L, LBOX_READ_SLOT, size);
    sl_lbox_charge(L, 1 + *size / LBOX_BYTES_PER_UNIT);
    return s;
}

/* load(chunk [, chunkname [, mode [, env]]]) for text only: mode is
 * always "t". Failures return nil and a message, as load does. */
static int lbox_load(lua_State *L)
{
    size_t len;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
    int has_env = !lua_isnone(L, 4), st;
    if (s) {
        const char *name = luaL_optstring(L, 2, s);
        if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
            luaL_pushfail(L);
            lua_pushliteral(L, "binary chunks are not allowed");
            return 2;
        }
        sl_lbox_charge(L, 1 + len / LBOX_BYTES_PER_UNIT);
        st = luaL_loadbufferx(L, s, len, name, "t");
    } else {
        const char *name = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, LBOX_READ_SLOT);
        st = lua_load(L, lbox_read, NULL, name, "t");
    }
    if (st != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* Calls the library function in upvalue 1 on this frame, so its argument
 * errors still name it ("bad argument #1 to 'insert'"). */
static int lbox_forward(lua_State *L)
{
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* Lua 5.4 never runs hooks inside finalizers: a __gc that loops would
 * escape every budget (and could run outside any call). */
static int lbox_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed");
        lua_pop(L, 1);
    }
    return lbox_forward(L);
}

static void lbox_open_base(lua_State *L)
{
    static const char *const removed[] = {"dofile", "loadfile", "require"};
    static const luaL_Reg replaced[] = {{"load", lbox_load},
                                        {"print", lbox_print},
                                        {"collectgarbage", lbox_collectgarbage},
                                        {NULL, NULL}};
    lua_pushglobaltable(L);
    for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, removed[i]);
    }
    luaL_setfuncs(L, replaced, 0);
    lua_getfield(L, -1, "setmetatable");
    lua_pushcclosure(L, lbox_setmetatable, 1);
    lua_setfield(L, -2, "setmetatable");
    lua_pop(L, 1);
}

/* ---- table functions that loop in C ------------------------------------------ */

/* The table library loops in C, where the count hook never runs, over
 * ranges the caller chooses: table.move({}, 1, 1e15, 2), or a __len that
 * claims 1e14 elements. Each wrapper charges the loop before running it. */

static int lbox_int_arg(lua_State *L, int i, lua_Integer *v)
{
    int ok;
    *v = lua_tointegerx(L, i, &ok);
    return ok;
}

/* #t as the library will see it, when it can be taken. */
static int lbox_len_arg(lua_State *L, lua_Integer *n)
{
    if (lua_type(L, 1) != LUA_TTABLE) {
        if (luaL_getmetafield(L, 1, "__len") == LUA_TNIL)
            return 0;
        lua_pop(L, 1);
    }
    *n = luaL_len(L, 1);
    return 1;
}

static void lbox_charge_span(lua_State *L, lua_Integer from, lua_Integer to)
{
    if (to >= from)
        sl_lbox_charge(L, (uint64_t)((lua_Unsigned)to - (lua_Unsigned)from) + 1);
}

static int lbox_tinsert(lua_State *L)
{
    lua_Integer n, pos;
    if (lua_gettop(L) == 3 && lbox_int_arg(L, 2, &pos) && lbox_len_arg(L, &n))
        lbox_charge_span(L, pos, n);
    return lbox_forward(L);
}

static int lbox_tremove(lua_State *L)
{
    lua_Integer n, pos = 0;
    if (lbox_len_arg(L, &n) && (lua_isnoneornil(L, 2) || lbox_int_arg(L, 2, &pos)))
        lbox_charge_span(L, lua_isnoneornil(L, 2) ? n : pos, n);
    return lbox_forward(L);
}

static int lbox_tmove(lua_State *L)
{
    lua_Integer f, e;
    if (lbox_int_arg(L, 2, &f) && lbox_int_arg(L, 3, &e))
        lbox_charge_span(L, f, e);
    return lbox_forward(L);
}

/* i..j, with j defaulting to #t (concat's and unpack's ranges). */
static void lbox_charge_range(lua_State *L, int ai, int aj)
{
    lua_Integer i = 1, j;
    if (!lua_isnoneornil(L, ai) && !lbox_int_arg(L, ai, &i))
        return;
    if (lua_isnoneornil(L, aj) ? !lbox_len_arg(L, &j) : !lbox_int_arg(L, aj, &j))
        return;
    lbox_charge_span(L, i, j);
}

static int lbox_tconcat(lua_State *L)
{
    lbox_charge_range(L, 3, 4);
    return lbox_forward(L);
}

static int lbox_tunpack(lua_State *L)
{
    lbox_charge_range(L, 2, 3);
    return lbox_forward(L);
}

/* n log2 n comparisons and moves. */
static int lbox_tsort(lua_State *L)
{
    lua_Integer n;
    if (lbox_len_arg(L, &n) && n > 1) {
        uint64_t u = (uint64_t)n, lg = 1;
        while (u >>= 1)
            lg++;
        sl_lbox_charge(L, (uint64_t)n > UINT64_MAX / lg ? UINT64_MAX : (uint64_t)n * lg);
    }
    return lbox_forward(L);
}

static void lbox_open_table(lua_State *L, int t)
{
    static const luaL_Reg wrapped[] = {{"insert", lbox_tinsert}, {"remove", lbox_tremove},
                                       {"move", lbox_tmove},     {"concat", lbox_tconcat},
                                       {"unpack", lbox_tunpack}, {"sort", lbox_tsort},
                                       {NULL, NULL}};
    for (const luaL_Reg *r = wrapped; r->name; r++) {
        lua_getfield(L, t, r->name);
        lua_pushcclosure(L, r->func, 1);
        lua_setfield(L, t, r->name);
    }
}

/* ---- the state ------------------------------------------------------------ */

static void lbox_open_string(lua_State *L, int s)
{
    sl_lpattern_install(L, s);
    lua_pushnil(L);
    lua_setfield(L, s, "dump");
    /* getmetatable("") answers false: the strings' metatable (and through
     * it every string's methods) stays out of the policy's reach. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

static int lbox_open(lua_State *L)
{
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8},
                                    {LUA_COLIBNAME, luaopen_coroutine},
                                    {NULL, NULL}};
    for (const luaL_Reg *lib = libs; lib->name; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        if (lib->func == luaopen_string)
            lbox_open_string(L, lua_gettop(L));
        else if (lib->func == luaopen_table)
            lbox_open_table(L, lua_gettop(L));
        lua_pop(L, 1);
    }
    lbox_open_base(L);
    return 0;
}

static int lbox_panic(lua_State *L)
{
    sl_lbox *b = sl_lbox_of(L);
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    char line[256];
    snprintf(line, sizeof line, "unprotected error in the Lua state: %s", msg);
    lbox_log(b, 0, line);
    return 0; /* Lua aborts */
}

sl_lbox *sl_lbox_new(const sl_lbox_limits *lim, const sl_lbox_env *env)
{
    sl_lbox *b = calloc(1, sizeof(*b));
    lua_State *L;
    if (!b)
        return NULL;
    b->lim = *lim;
    if (env)
        b->env = *env;
    L = lua_newstate(lbox_alloc, b);
    if (!L) {
        free(b);
        return NULL;
    }
    b->L = L;
    lua_atpanic(L, lbox_panic);
    lua_setwarnf(L, lbox_warn, b);
    /* Installed once, disarmed outside calls: every thread inherits it,
     * also coroutines created outside a call and resumed in one. */
    lua_sethook(L, lbox_hook, LUA_MASKCOUNT, LBOX_EVERY);
    lua_pushcfunction(L, lbox_open);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        lua_close(L);
        free(b);
        return NULL;
    }
    return b;
}

void sl_lbox_free(sl_lbox *b)
{
    if (!b)
        return;
    lua_close(b->L);
    free(b);
}

lua_State *sl_lbox_state(sl_lbox *b)
{
    return b->L;
}

size_t sl_lbox_memory(const sl_lbox *b)
{
    return b->mem;
}

/* ---- compile and call ---------------------------------------------------------- */

static void lbox_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lbox_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int sl_lbox_compile(sl_lbox *b, const char *src, size_t len, const char *name, char *err,
                    size_t errlen)
{
    lua_State *L = b->L;
    char chunk[256];
    int st;
    if (len > 0 && src[0] == LUA_SIGNATURE[0]) {
        lbox_err(err, errlen, "%s: binary chunks are not allowed", name);
        return -1;
    }
    /* "@name": messages and tracebacks read "name:line:". */
    snprintf(chunk, sizeof chunk, "@%s", name);
    st = luaL_loadbufferx(L, src, len, chunk, "t");
    if (st == LUA_OK)
        return 0;
    if (st == LUA_ERRMEM) {
        lbox_memory_msg(b);
        lbox_err(err, errlen, "%s: %s", name, b->msg);
        lua_pop(L, 1);
        lua_gc(L, LUA_GCCOLLECT);
        return -1;
    }
    lbox_err(err, errlen, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
}

/* The error object at the top as text, without allocating in the state:
 * a number is formatted here, anything else but a string is named. */
static void lbox_errobj(lua_State *L, char *err, size_t errlen)
{
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        lbox_err(err, errlen, "%s", lua_tostring(L, -1));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1))
            lbox_err(err, errlen, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, -1));
        else
            lbox_err(err, errlen, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, -1));
        break;
    default:
        lbox_err(err, errlen, "(error object is a %s value)", luaL_typename(L, -1));
        break;
    }
}

/* No message handler: the message is kept as it is and converted after
 * lua_pcall returns, which costs a call nothing when it succeeds. */
int sl_lbox_call(sl_lbox *b, int nargs, int nresults, char *err, size_t errlen)
{
    lua_State *L = b->L;
    int base = lua_gettop(L) - nargs - 1, st, why;
    if (b->in_call) {
        lua_settop(L, base);
        lbox_err(err, errlen, "sl_lbox_call: not reentrant");
        return SL_LBOX_ERROR;
    }
    b->in_call = 1;
    b->fail = 0;
    b->refused = 0;
    b->used = 0;
    b->clock_at = 0;
    b->start = b->lim.time_ns ? lbox_now(b) : 0;
    lua_sethook(L, lbox_hook, LUA_MASKCOUNT, LBOX_EVERY);
    st = lua_pcall(L, nargs, nresults, 0);
    b->in_call = 0;
    why = b->fail;
    if (!why && (b->refused || st == LUA_ERRMEM)) {
        why = SL_LBOX_MEMORY;
        lbox_memory_msg(b);
    }
    if (!why && st == LUA_OK)
        return SL_LBOX_OK;
    if (why)
        lbox_err(err, errlen, "%s", b->msg);
    else
        lbox_errobj(L, err, errlen);
    /* The error object, or the results of a call that swallowed its
     * budget error. */
    lua_settop(L, base);
    if (why == SL_LBOX_MEMORY)
        lua_gc(L, LUA_GCCOLLECT);
    return why ? why : SL_LBOX_ERROR;
}
