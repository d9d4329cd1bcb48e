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
/* Bytes scanned per unit of budget by C code that reads without building
 * anything (load()'s parser, utf8.len, tonumber; lpattern's rate too). */
#define LBOX_BYTES_PER_UNIT 16
/* Bytes allocated during a call cost one unit per 2^LBOX_ALLOC_SHIFT: C
 * code and VM instructions that copy strings (.., string.upper, format)
 * build what they copy, so this prices them without a wrapper each. */
#define LBOX_ALLOC_SHIFT 5
/* load() with a reader function keeps the current piece in this slot. */
#define LBOX_READ_SLOT 5

#if LUA_VERSION_RELEASE_NUM >= 50406
#define lbox_closethread(co, from) lua_closethread(co, from)
#else
#define lbox_closethread(co, from) ((void)(from), lua_resetthread(co))
#endif

struct sl_lbox {
    lua_State *L;
    sl_lbox_limits lim;
    sl_lbox_env env;
    size_t mem;                /* bytes the state holds */
    size_t cap;                /* lim.memory, or SIZE_MAX */
    /* The cap was hit: an allocation was refused and Lua's retry of it
     * after an emergency collection (the next growth, if it is the same
     * block) failed too. Noted even if a pcall in the policy swallows the
     * "not enough memory" error. */
    int refused;
    /* The last refusal, by the cap or the budget, while its retry may
     * still come. */
    int retry;
    void *retry_ptr;
    size_t retry_size;
    /* "name:line: " of the running Lua function when an allocation was
     * refused: by the time the failure is reported the stack is gone. */
    char where[96];
    /* The running call. */
    int in_call;
    int fail;                  /* enum sl_lbox_fail once the call is doomed */
    lua_State *run;            /* the thread running policy code, or NULL */
    uint64_t used;             /* instructions and charged units */
    uint64_t alloc_limit;      /* lim.instructions during a call, else UINT64_MAX */
    uint64_t clock_at;         /* `used` at the last read of the clock */
    uint64_t start;            /* the clock when the call began */
    char msg[192];             /* the budget error of the call ("" until known) */
    char warn[256];            /* a warning being assembled from pieces */
    size_t warn_len;
};

static void lbox_hook(lua_State *L, lua_Debug *ar);
static void lbox_doom(sl_lbox *b, int why, const char *where);

/* ---- where a failure happened -------------------------------------------- */

/* "name:line: " of the innermost Lua function of L (a C function such as
 * a pattern matcher has no line), or "". Neither lua_getstack nor
 * lua_getinfo "Sl" allocates, so this is safe at the memory cap. */
static void lbox_where(lua_State *L, char *buf, size_t len)
{
    lua_Debug ar;
    buf[0] = '\0';
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(buf, len, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
}

/* ---- memory ------------------------------------------------------------ */

/* An allocation is being refused while policy code runs: note where that
 * code stands, and make its thread stop at its next instruction (a pcall
 * in the policy would otherwise run on for up to LBOX_EVERY instructions;
 * lua_sethook is safe at any point, lua.c calls it from a signal handler).
 * Walking the stack here is safe because Lua keeps its frames consistent
 * across every allocation, with one exception from 5.4.6 on: a stack
 * being reallocated has its frames turned into offsets meanwhile, and it
 * is the only stack block reallocated in place (ptr != NULL). */
static void lbox_refusing(sl_lbox *b, const void *ptr)
{
    b->where[0] = '\0';
    if (!b->run)
        return;
#if LUA_VERSION_RELEASE_NUM >= 50406
    if (ptr == NULL)
        lbox_where(b->run, b->where, sizeof b->where);
#else
    (void)ptr;
    lbox_where(b->run, b->where, sizeof b->where);
#endif
    lua_sethook(b->run, lbox_hook, LUA_MASKCOUNT, 1);
}

/* After a refusal Lua collects all garbage and retries the allocation
 * once, when it can: the next growth, if it is the same block. */
enum { LBOX_RETRY_NONE, LBOX_RETRY_CAP, LBOX_RETRY_BUDGET };

/* The cap (or malloc) refused; the cap is hit once the retry fails too,
 * or when none comes. */
static void *lbox_refuse_cap(sl_lbox *b, void *ptr, size_t nsize, int retried)
{
    if (retried) {
        b->refused = 1;
        return NULL;
    }
    b->retry = LBOX_RETRY_CAP;
    b->retry_ptr = ptr;
    b->retry_size = nsize;
    lbox_refusing(b, ptr);
    return NULL;
}

static int lbox_capped(const sl_lbox *b)
{
    return b->refused || b->retry == LBOX_RETRY_CAP;
}

/* The charge of an allocation took `used` past the budget: the call is
 * doomed and the allocation fails, as does Lua's retry of it, so a C
 * function copying in a loop stops at once. Later allocations go
 * through, so the error of the doomed call can still be built. */
static void *lbox_over_budget(sl_lbox *b, void *ptr, size_t nsize)
{
    b->retry = LBOX_RETRY_BUDGET;
    b->retry_ptr = ptr;
    b->retry_size = nsize;
    lbox_refusing(b, ptr);
    b->fail = SL_LBOX_INSTRUCTIONS;
    /* Without a position the hook, or the end of the call, says it. */
    b->msg[0] = '\0';
    if (b->where[0])
        lbox_doom(b, SL_LBOX_INSTRUCTIONS, b->where);
    return NULL;
}

/* The first growth after a refusal: 1 if it is Lua's retry of the
 * block. A retry the budget refused fails again (-1). */
static int lbox_retry(sl_lbox *b, const void *ptr, size_t nsize)
{
    int same = ptr == b->retry_ptr && nsize == b->retry_size, why = b->retry;
    b->retry = LBOX_RETRY_NONE;
    if (why == LBOX_RETRY_BUDGET)
        return same ? -1 : 0;
    if (!same)
        b->refused = 1; /* Lua gave up without a retry */
    return same;
}

/* Counts every byte; refuses growth past the cap, never a free or a
 * shrink (Lua cannot recover from a failed shrink). Growth during a call
 * is charged to its budget: a few integer operations, as this runs for
 * every string and table the policy makes. */
static void *lbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sl_lbox *b = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    int retried = 0;
    void *p;
    if (nsize == 0) {
        free(ptr);
        b->mem -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        uint64_t used = b->used + (grow >> LBOX_ALLOC_SHIFT);
        if (b->retry && (retried = lbox_retry(b, ptr, nsize)) < 0)
            return NULL;
        if (grow > b->cap - b->mem)
            return lbox_refuse_cap(b, ptr, nsize, retried);
        b->used = used < b->used ? UINT64_MAX : used;
        if (b->used > b->alloc_limit && !b->fail)
            return lbox_over_budget(b, ptr, nsize);
    }
    p = realloc(ptr, nsize);
    if (!p) {
        if (nsize <= old) { /* realloc may fail to shrink: keep the block */
            b->mem -= old - nsize;
            return ptr;
        }
        return lbox_refuse_cap(b, ptr, nsize, retried);
    }
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

/* The message of a failure, after `where` ("name:line: " or ""). */
static void lbox_what(const sl_lbox *b, int why, const char *where, char *buf, size_t len)
{
    switch (why) {
    case SL_LBOX_TIME:
        snprintf(buf, len, "%stime limit exceeded", where);
        break;
    case SL_LBOX_MEMORY:
        if (b->lim.memory)
            snprintf(buf, len, "%smemory limit exceeded (%zu bytes)", where, b->lim.memory);
        else
            snprintf(buf, len, "%snot enough memory", where);
        break;
    default:
        snprintf(buf, len, "%sinstruction budget exceeded", where);
        break;
    }
}

/* Dooms the call: records why, into b->msg without allocating (the
 * state may be at its cap). */
static void lbox_doom(sl_lbox *b, int why, const char *where)
{
    b->fail = why;
    lbox_what(b, why, where, b->msg, sizeof b->msg);
}

/* Dooms the call at the position of L's innermost Lua function. */
static void lbox_doom_at(lua_State *L, sl_lbox *b, int why)
{
    char where[96];
    lbox_where(L, where, sizeof where);
    lbox_doom(b, why, where);
}

/* From now on every instruction of this thread and of the main thread
 * fails, so neither a pcall nor a coroutine boundary can swallow the
 * error for long (a resume that returns into a doomed call raises it). */
static int lbox_raise(lua_State *L, sl_lbox *b)
{
    if (!b->msg[0]) /* doomed by an allocation that could not say where */
        lbox_doom_at(L, b, b->fail);
    lua_sethook(L, lbox_hook, LUA_MASKCOUNT, 1);
    if (L != b->L)
        lua_sethook(b->L, lbox_hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, b->msg);
    return lua_error(L);
}

static void lbox_check(lua_State *L, sl_lbox *b)
{
    if (lbox_capped(b)) {
        /* Where the cap refused, if known: the hook comes later. */
        if (b->where[0])
            lbox_doom(b, SL_LBOX_MEMORY, b->where);
        else
            lbox_doom_at(L, b, SL_LBOX_MEMORY);
    } else if (b->lim.instructions && b->used > b->lim.instructions) {
        lbox_doom_at(L, b, SL_LBOX_INSTRUCTIONS);
    } else if (b->lim.time_ns && b->used - b->clock_at >= LBOX_EVERY) {
        uint64_t now = lbox_now(b);
        b->clock_at = b->used;
        /* A clock that goes backwards does not doom the call. */
        if (now > b->start && now - b->start > b->lim.time_ns)
            lbox_doom_at(L, b, SL_LBOX_TIME);
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

/* After C code that ran policy code on another thread (a resume): a call
 * doomed meanwhile, or that hit the cap, fails here too. */
static void lbox_recheck(lua_State *L, sl_lbox *b)
{
    if (!b->in_call)
        return;
    if (!b->fail && lbox_capped(b))
        lbox_check(L, b);
    if (b->fail)
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

/* Replaces each function named in wrapped, in the table at t, by the
 * wrapper with the original as its upvalue 1 (see lbox_forward). */
static void lbox_wrap(lua_State *L, int t, const luaL_Reg *wrapped)
{
    for (const luaL_Reg *r = wrapped; r->name; r++) {
        lua_getfield(L, t, r->name);
        lua_pushcclosure(L, r->func, 1);
        lua_setfield(L, t, r->name);
    }
}

static void lbox_open_table(lua_State *L, int t)
{
    static const luaL_Reg wrapped[] = {{"insert", lbox_tinsert}, {"remove", lbox_tremove},
                                       {"move", lbox_tmove},     {"concat", lbox_tconcat},
                                       {"unpack", lbox_tunpack}, {"sort", lbox_tsort},
                                       {NULL, NULL}};
    lbox_wrap(L, t, wrapped);
}

/* ---- C functions that read more than they build ------------------------------ */

/* Most string functions build a result as long as the work they do, and
 * the allocator charges that. These read a long string, or push a value
 * per byte onto a stack that an earlier call may have grown already, and
 * allocate little: each wrapper charges before calling the library. */

static void lbox_charge_bytes(lua_State *L, size_t n)
{
    if (n >= LBOX_BYTES_PER_UNIT)
        sl_lbox_charge(L, (uint64_t)(n / LBOX_BYTES_PER_UNIT));
}

/* The length of the string at i, or 0 for anything else (a number is
 * short, and converting it here would change the argument). */
static size_t lbox_strlen_arg(lua_State *L, int i)
{
    size_t len = 0;
    if (lua_type(L, i) == LUA_TSTRING)
        lua_tolstring(L, i, &len);
    return len;
}

/* How many bytes s[i..j] of the string at 1 covers, i and j read as the
 * string functions read them (negative counts from the end, both are
 * clipped to the string); i defaults to 1, j to i if j_is_i, else to -1.
 * 0 when an argument is not an integer: the library then raises. */
static uint64_t lbox_slice(lua_State *L, int ai, int aj, int j_is_i)
{
    lua_Integer len = (lua_Integer)lbox_strlen_arg(L, 1), i = 1, j;
    if (!lua_isnoneornil(L, ai) && !lbox_int_arg(L, ai, &i))
        return 0;
    if (lua_isnoneornil(L, aj))
        j = j_is_i ? i : -1;
    else if (!lbox_int_arg(L, aj, &j))
        return 0;
    if (i < 0)
        i = i < -len ? 1 : len + i + 1;
    else if (i == 0)
        i = 1;
    if (j < 0)
        j = j < -len ? 0 : len + j + 1;
    else if (j > len)
        j = len;
    return j >= i ? (uint64_t)(j - i + 1) : 0;
}

/* string.byte, utf8.codepoint: up to a value per byte of s[i..j]. */
static int lbox_per_byte(lua_State *L)
{
    uint64_t n = lbox_slice(L, 2, 3, 1);
    if (n > 1)
        sl_lbox_charge(L, n);
    return lbox_forward(L);
}

/* utf8.len: decodes s[i..j]. */
static int lbox_ulen(lua_State *L)
{
    lbox_charge_bytes(L, (size_t)lbox_slice(L, 2, 3, 0));
    return lbox_forward(L);
}

/* utf8.offset, tonumber: may read all of the string at 1. */
static int lbox_scan_arg1(lua_State *L)
{
    lbox_charge_bytes(L, lbox_strlen_arg(L, 1));
    return lbox_forward(L);
}

/* string.format: ('%.3s'):format(s) measures all of s to copy 3 bytes. */
static int lbox_sformat(lua_State *L)
{
    size_t n = 0;
    for (int i = 1, top = lua_gettop(L); i <= top; i++)
        n += lbox_strlen_arg(L, i);
    lbox_charge_bytes(L, n);
    return lbox_forward(L);
}

/* string.pack, packsize, unpack: up to a value per byte of the format. */
static int lbox_spack(lua_State *L)
{
    size_t n = lbox_strlen_arg(L, 1);
    if (n > 1)
        sl_lbox_charge(L, n);
    return lbox_forward(L);
}

/* ---- coroutines ------------------------------------------------------------------ */

/* The body of every coroutine a policy creates runs its function under a
 * yieldable pcall and raises any error again from here. A budget error
 * raised from inside the count hook leaves the thread with hooks off
 * until a pcall catches it (Lua turns them back on there); a coroutine
 * that ended on such an error would run the __close handlers that wrap
 * and coroutine.close run afterwards with no hook: no budget at all. */
static int lbox_body_k(lua_State *L, int st, lua_KContext ctx)
{
    (void)ctx;
    if (st != LUA_OK && st != LUA_YIELD)
        return lua_error(L);
    return lua_gettop(L);
}

static int lbox_body(lua_State *L)
{
    int st;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    st = lua_pcallk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, 0, lbox_body_k);
    return lbox_body_k(L, st, 0);
}

static int lbox_cocreate(lua_State *L)
{
    lua_State *co;
    luaL_checktype(L, 1, LUA_TFUNCTION);
    co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, lbox_body, 1);
    lua_xmove(L, co, 1);
    return 1;
}

/* Resumes co with the narg values on top of L: the number of values it
 * yielded or returned, moved to L, or -1 with its error on L. Keeps
 * b->run, the thread the allocator stops when the budget or the cap runs
 * out, up to date (lua_resume never raises into its caller). */
static int lbox_resume(lua_State *L, sl_lbox *b, lua_State *co, int narg)
{
    lua_State *prev = b->run;
    int st, nres;
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    b->run = co;
    st = lua_resume(co, L, narg, &nres);
    b->run = prev;
    if (st != LUA_OK && st != LUA_YIELD) {
        lua_xmove(co, L, 1);
        return -1;
    }
    if (!lua_checkstack(L, nres + 1)) {
        lua_pop(co, nres);
        lua_pushliteral(L, "too many results to resume");
        return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
}

static int lbox_coresume(lua_State *L)
{
    sl_lbox *b = sl_lbox_of(L);
    lua_State *co = lua_tothread(L, 1);
    int n;
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    n = lbox_resume(L, b, co, lua_gettop(L) - 1);
    lbox_recheck(L, b);
    if (n < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(n + 1));
    return n + 1;
}

/* The function coroutine.wrap returns: on an error the coroutine is
 * closed and the error raised in the caller, with the caller's position
 * in front of a message. */
static int lbox_wrapped(lua_State *L)
{
    sl_lbox *b = sl_lbox_of(L);
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int n = lbox_resume(L, b, co, lua_gettop(L)), st;
    lbox_recheck(L, b);
    if (n >= 0)
        return n;
    st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD) {
        lua_State *prev = b->run;
        b->run = co;
        lbox_closethread(co, L);
        b->run = prev;
        lua_settop(co, 0);
        lbox_recheck(L, b);
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int lbox_cowrap(lua_State *L)
{
    lbox_cocreate(L);
    lua_pushcclosure(L, lbox_wrapped, 1);
    return 1;
}

/* coroutine.close runs the __close handlers of the coroutine. */
static int lbox_coclose(lua_State *L)
{
    int n = lbox_forward(L);
    lbox_recheck(L, sl_lbox_of(L));
    return n;
}

/* ---- the state ------------------------------------------------------------ */

static void lbox_open_string(lua_State *L, int s)
{
    static const luaL_Reg wrapped[] = {{"byte", lbox_per_byte}, {"format", lbox_sformat},
                                       {"pack", lbox_spack},    {"packsize", lbox_spack},
                                       {"unpack", lbox_spack},  {NULL, NULL}};
    sl_lpattern_install(L, s);
    lbox_wrap(L, s, wrapped);
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

static void lbox_open_utf8(lua_State *L, int u)
{
    static const luaL_Reg wrapped[] = {{"codepoint", lbox_per_byte},
                                       {"len", lbox_ulen},
                                       {"offset", lbox_scan_arg1},
                                       {NULL, NULL}};
    lbox_wrap(L, u, wrapped);
}

static void lbox_open_coroutine(lua_State *L, int c)
{
    static const luaL_Reg replaced[] = {{"create", lbox_cocreate},
                                        {"resume", lbox_coresume},
                                        {"wrap", lbox_cowrap},
                                        {NULL, NULL}};
    static const luaL_Reg wrapped[] = {{"close", lbox_coclose}, {NULL, NULL}};
    lua_pushvalue(L, c);
    luaL_setfuncs(L, replaced, 0);
    lua_pop(L, 1);
    lbox_wrap(L, c, wrapped);
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
    static const luaL_Reg base_wrapped[] = {{"tonumber", lbox_scan_arg1}, {NULL, NULL}};
    for (const luaL_Reg *lib = libs; lib->name; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        if (lib->func == luaopen_string)
            lbox_open_string(L, lua_gettop(L));
        else if (lib->func == luaopen_table)
            lbox_open_table(L, lua_gettop(L));
        else if (lib->func == luaopen_utf8)
            lbox_open_utf8(L, lua_gettop(L));
        else if (lib->func == luaopen_coroutine)
            lbox_open_coroutine(L, lua_gettop(L));
        else if (lib->func == luaopen_base)
            lbox_wrap(L, lua_gettop(L), base_wrapped);
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

void sl_lbox_set_call_limits(sl_lbox *b, uint64_t instructions, uint64_t time_ns)
{
    b->lim.instructions = instructions;
    b->lim.time_ns = time_ns;
}

sl_lbox *sl_lbox_new(const sl_lbox_limits *lim, const sl_lbox_env *env)
{
    sl_lbox *b = calloc(1, sizeof(*b));
    lua_State *L;
    if (!b)
        return NULL;
    b->lim = *lim;
    b->cap = lim->memory ? lim->memory : SIZE_MAX;
    b->alloc_limit = UINT64_MAX;
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
    char chunk[256], what[96];
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
        lbox_what(b, SL_LBOX_MEMORY, "", what, sizeof what);
        lbox_err(err, errlen, "%s: %s", name, what);
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
 * lua_pcall returns, which costs a call nothing when it succeeds. Where a
 * memory failure happened was noted by the allocator as it refused. */
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
    b->retry = LBOX_RETRY_NONE;
    b->msg[0] = '\0';
    b->where[0] = '\0';
    b->run = L;
    b->used = 0;
    b->alloc_limit = b->lim.instructions ? b->lim.instructions : UINT64_MAX;
    b->clock_at = 0;
    b->start = b->lim.time_ns ? lbox_now(b) : 0;
    lua_sethook(L, lbox_hook, LUA_MASKCOUNT, LBOX_EVERY);
    st = lua_pcall(L, nargs, nresults, 0);
    b->in_call = 0;
    b->run = NULL;
    b->alloc_limit = UINT64_MAX;
    why = b->fail;
    if (!why && (lbox_capped(b) || st == LUA_ERRMEM)) {
        why = SL_LBOX_MEMORY;
        lbox_doom(b, why, lbox_capped(b) ? b->where : "");
    } else if (why && !b->msg[0]) {
        lbox_doom(b, why, ""); /* doomed by an allocation, and no hook ran since */
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
