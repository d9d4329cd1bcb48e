/* fuzz_lua_pattern.c — differential libFuzzer target for lua/lpattern.c:
 * each input runs through the sandbox's bounded string functions and stock Lua 5.4's. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "sandbox.h"

/*
 * Input: five header bytes, then the pattern, the replacement (or rep's
 * separator) and the subject, back to back:
 *
 *   [op] [arg] [flags] [plen] [rlen] pattern[plen] repl[rlen] subject...
 *
 *   op % 5     find, match, gmatch, gsub, rep
 *   arg        find/match/gmatch: init; gsub: max_n; rep: n. 0 leaves it
 *              out (find with a 4th argument passes nil; rep passes 0),
 *              0x7f is math.maxinteger, 0x80 math.mininteger, anything
 *              else is the signed byte (rep: its value mod 8, -7..7)
 *   flags % 4  find: no 4th argument, true, false, 0 (true in Lua);
 *              gsub: replacement is repl, an integer (flags >> 2), a
 *              table or a function (fz_repl); rep: flags & 1 passes repl
 *              as the separator
 *   plen       pattern length, at most 64
 *   rlen       low 5 bits: repl length, at most 16; high 3 bits: k, the
 *              pattern is repeated 2^k times (at most 512 bytes in all),
 *              which reaches the matcher's depth limit ("pattern too
 *              complex" at 200 nested calls: "a?" 200 times)
 *   subject    the rest, at most 256 bytes
 *
 * Lengths past the end of the input are cut short. Both states get the
 * same arguments; the results (every value, every gmatch step, or the
 * error message) must be byte for byte the same, or the target aborts.
 *
 * Stock Lua is the Lua that sluice_lua_static links (Debian's
 * liblua5.4.so), opened with luaL_openlibs in a plain state: the same
 * core runs both states, only the string functions differ.
 *
 * Small inputs keep stock Lua's backtracking from hanging the fuzzer:
 * sluice runs first under an instruction budget, and an input that spends
 * it is not run in stock Lua at all (stock Lua does about as much work per
 * step as sluice charges for).
 *
 * Deliberate differences, never compared:
 *  - the budget: sluice fails with "instruction budget exceeded" where
 *    stock Lua goes on (for ever, on a backtracking bomb);
 *  - max_string: sluice's rep and gsub fail with "resulting string too
 *    large" past the sandbox's limit (1 MB here, out of the inputs' reach),
 *    stock Lua's rep only past math.maxinteger bytes and its gsub never
 *    (until memory runs out);
 *  - rep of empty pieces: sluice answers "" at once, stock Lua loops n
 *    times (n = math.maxinteger is not generated for them), and rep with
 *    n = math.maxinteger of a one-byte piece, where stock Lua tries to
 *    allocate 2^63 bytes ("not enough memory"), sluice says "resulting
 *    string too large" (not generated either).
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_HEADER 5
#define FZ_MAX_PATTERN 64
#define FZ_MAX_REPEATED 512
#define FZ_MAX_REPL 16
#define FZ_MAX_SUBJECT 256
/* About 10 ms of matching: enough for any input of these sizes that does
 * not backtrack badly. */
#define FZ_BUDGET (UINT64_C(1) << 20)
/* gmatch steps: a 256-byte subject has at most 257 matches. */
#define FZ_MAX_STEPS 300

enum { OP_FIND, OP_MATCH, OP_GMATCH, OP_GSUB, OP_REP, OP_COUNT };
static const char *const OP_NAME[OP_COUNT] = {"find", "match", "gmatch", "gsub", "rep"};

typedef struct fz_case {
    int op;
    uint8_t arg, flags;
    const char *pat, *repl, *subj;
    size_t lpat, lrepl, lsubj;
} fz_case;

typedef struct fz_buf {
    char *p;
    size_t len, cap;
} fz_buf;

typedef struct fz_state {
    lua_State *L;
    sl_lbox *box; /* NULL: stock Lua in a plain state */
    int tab;      /* registry ref of the gsub replacement table */
} fz_state;

/* What fz_drive needs, as its light userdata argument. */
typedef struct fz_run {
    const fz_case *c;
    const fz_state *st;
    fz_buf *out;
} fz_run;

/* ---- the answer as text ---------------------------------------------------- */

static void buf_add(fz_buf *b, const char *s, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->len < n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_str(fz_buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* A quoted string with every byte outside printable ASCII escaped. */
static void buf_quote(fz_buf *b, const char *s, size_t n)
{
    buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            buf_add(b, s + i, 1);
        } else {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            buf_str(b, esc);
        }
    }
    buf_add(b, "\"", 1);
}

/* Read without lua_tolstring on numbers, which would convert them in place. */
static void put_value(fz_buf *b, lua_State *L, int i)
{
    char num[64];
    size_t n;
    const char *s;
    switch (lua_type(L, i)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, i, &n);
        buf_quote(b, s, n);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, i))
            snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, i));
        else
            snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, i));
        buf_str(b, num);
        break;
    case LUA_TBOOLEAN:
        buf_str(b, lua_toboolean(L, i) ? "true" : "false");
        break;
    default:
        buf_str(b, luaL_typename(L, i));
        break;
    }
}

/* The outcome of a lua_pcall whose results start at index first. */
static void put_results(fz_buf *b, lua_State *L, int status, int first)
{
    char num[32];
    if (status != LUA_OK) {
        buf_str(b, "error: ");
        put_value(b, L, -1);
        buf_str(b, "\n");
        return;
    }
    snprintf(num, sizeof num, "%d:", lua_gettop(L) - first + 1);
    buf_str(b, num);
    for (int i = first; i <= lua_gettop(L); i++) {
        buf_str(b, " ");
        put_value(b, L, i);
    }
    buf_str(b, "\n");
}

/* ---- the call, the same in both states ------------------------------------- */

static lua_Integer small_int(uint8_t v)
{
    if (v == 0x7f)
        return LUA_MAXINTEGER;
    if (v == 0x80)
        return LUA_MININTEGER;
    return (lua_Integer)(int8_t)v;
}

/* gsub's replacement function: a pure function of its arguments that
 * answers each kind of value add_value must handle. */
static int fz_repl(lua_State *L)
{
    int n = lua_gettop(L);
    size_t len = 0;
    if (lua_type(L, 1) == LUA_TSTRING)
        lua_tolstring(L, 1, &len);
    else if (lua_isinteger(L, 1))
        len = (size_t)lua_tointeger(L, 1);
    switch ((len + (size_t)n) % 8) {
    case 0:
        lua_pushnil(L); /* keep the match */
        break;
    case 1:
        lua_pushboolean(L, 0);
        break;
    case 2:
    case 3:
        lua_pushvalue(L, 1); /* a string or a position */
        break;
    case 4: { /* every capture, as "<c1|c2|...>" */
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addchar(&b, '<');
        for (int i = 1; i <= n; i++) {
            if (i > 1)
                luaL_addchar(&b, '|');
            luaL_tolstring(L, i, NULL);
            luaL_addvalue(&b);
        }
        luaL_addchar(&b, '>');
        luaL_pushresult(&b);
        break;
    }
    case 5:
        lua_pushnumber(L, 0.5 * n);
        break;
    case 6:
        lua_pushboolean(L, 1); /* "invalid replacement value (a boolean)" */
        break;
    default:
        lua_newtable(L); /* "invalid replacement value (a table)" */
        break;
    }
    return 1;
}

/* Pushes the arguments of c's call; returns how many. */
static int push_args(lua_State *L, const fz_case *c, const fz_state *st)
{
    int n = 2;
    lua_pushlstring(L, c->subj, c->lsubj);
    switch (c->op) {
    case OP_FIND:
    case OP_MATCH:
    case OP_GMATCH:
        lua_pushlstring(L, c->pat, c->lpat);
        if (c->arg == 0 && (c->op != OP_FIND || c->flags % 4 == 0))
            return n;
        if (c->arg == 0)
            lua_pushnil(L);
        else
            lua_pushinteger(L, small_int(c->arg));
        n++;
        if (c->op != OP_FIND || c->flags % 4 == 0)
            return n;
        if (c->flags % 4 == 3)
            lua_pushinteger(L, 0);
        else
            lua_pushboolean(L, c->flags % 4 == 1);
        return n + 1;
    case OP_GSUB:
        lua_pushlstring(L, c->pat, c->lpat);
        switch (c->flags % 4) {
        case 0:
            lua_pushlstring(L, c->repl, c->lrepl);
            break;
        case 1:
            lua_pushinteger(L, c->flags >> 2);
            break;
        case 2:
            lua_rawgeti(L, LUA_REGISTRYINDEX, st->tab);
            break;
        default:
            lua_pushcfunction(L, fz_repl);
            break;
        }
        n++;
        if (c->arg == 0)
            return n;
        lua_pushinteger(L, small_int(c->arg));
        return n + 1;
    default: { /* rep */
        lua_Integer reps = (lua_Integer)((int8_t)c->arg % 8);
        size_t lsep = c->flags & 1 ? c->lrepl : 0;
        if (c->arg == 0x80 || (c->arg == 0x7f && c->lsubj + lsep >= 2))
            reps = small_int(c->arg);
        lua_pushinteger(L, reps);
        if (!(c->flags & 1))
            return n;
        lua_pushlstring(L, c->repl, c->lrepl);
        return n + 1;
    }
    }
}

/* Runs the case in L, its answer to r->out; raises nothing of its own. */
static int fz_drive(lua_State *L)
{
    fz_run *r = lua_touserdata(L, 1);
    int st, nargs;
    lua_settop(L, 0);
    lua_getglobal(L, "string");
    lua_getfield(L, 1, OP_NAME[r->c->op]);
    nargs = push_args(L, r->c, r->st);
    st = lua_pcall(L, nargs, LUA_MULTRET, 0);
    put_results(r->out, L, st, 2);
    if (r->c->op != OP_GMATCH || st != LUA_OK)
        return 0;
    lua_settop(L, 2); /* the iterator */
    for (int i = 0; i < FZ_MAX_STEPS; i++) {
        lua_pushvalue(L, 2);
        st = lua_pcall(L, 0, LUA_MULTRET, 0);
        put_results(r->out, L, st, 3);
        if (st != LUA_OK || lua_gettop(L) == 2 || lua_isnil(L, 3))
            break;
        lua_settop(L, 2);
    }
    return 0;
}

/* ---- the two states -------------------------------------------------------- */

static fz_state stock, ours;
static fz_buf out_stock, out_ours;

/* gsub's replacement table: strings, a float, an integer, false (keep the
 * match), and values that are errors (true, a table). */
static int make_table(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, "<empty>");
    lua_setfield(L, -2, "");
    lua_pushliteral(L, "<A>");
    lua_setfield(L, -2, "a");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "b");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "c");
    lua_newtable(L);
    lua_setfield(L, -2, "ab");
    lua_pushinteger(L, 12);
    lua_setfield(L, -2, "abc");
    lua_pushliteral(L, "%1"); /* taken literally, unlike a string replacement */
    lua_setfield(L, -2, "x");
    lua_pushliteral(L, "<one>");
    lua_rawseti(L, -2, 1);
    lua_pushnumber(L, 2.5);
    lua_rawseti(L, -2, 2);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void setup(void)
{
    sl_lbox_limits lim = {FZ_BUDGET, 0, (size_t)64 << 20, (size_t)1 << 20};
    stock.L = luaL_newstate();
    ours.box = sl_lbox_new(&lim, NULL);
    if (stock.L == NULL || ours.box == NULL)
        abort();
    luaL_openlibs(stock.L);
    ours.L = sl_lbox_state(ours.box);
    stock.tab = make_table(stock.L);
    ours.tab = make_table(ours.L);
}

static void report(const fz_case *c)
{
    fz_buf b = {0};
    char head[96];
    snprintf(head, sizeof head, "lpattern differs from stock Lua: %s arg=0x%02x flags=0x%02x\n",
             OP_NAME[c->op], c->arg, c->flags);
    buf_str(&b, head);
    buf_str(&b, "  pattern: ");
    buf_quote(&b, c->pat, c->lpat);
    buf_str(&b, "\n  repl:    ");
    buf_quote(&b, c->repl, c->lrepl);
    buf_str(&b, "\n  subject: ");
    buf_quote(&b, c->subj, c->lsubj);
    buf_str(&b, "\n--- stock:\n");
    buf_add(&b, out_stock.p, out_stock.len);
    buf_str(&b, "--- sluice:\n");
    buf_add(&b, out_ours.p, out_ours.len);
    fwrite(b.p, 1, b.len, stderr);
    free(b.p);
}

static size_t take(size_t want, size_t cap, size_t *left)
{
    size_t n = want < cap ? want : cap;
    if (n > *left)
        n = *left;
    *left -= n;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char pat[FZ_MAX_REPEATED];
    fz_case c;
    fz_run run;
    char err[256];
    const char *base;
    size_t left, lbase;
    int rc;
    if (size < FZ_HEADER)
        return 0;
    if (stock.L == NULL)
        setup();
    c.op = data[0] % OP_COUNT;
    c.arg = data[1];
    c.flags = data[2];
    left = size - FZ_HEADER;
    base = (const char *)data + FZ_HEADER;
    lbase = take(data[3], FZ_MAX_PATTERN, &left);
    c.repl = base + lbase;
    c.lrepl = take(data[4] & 0x1f, FZ_MAX_REPL, &left);
    c.subj = c.repl + c.lrepl;
    c.lsubj = take(left, FZ_MAX_SUBJECT, &left);
    c.lpat = 0;
    for (int i = 0; i < 1 << (data[4] >> 5); i++) {
        size_t n = lbase < FZ_MAX_REPEATED - c.lpat ? lbase : FZ_MAX_REPEATED - c.lpat;
        memcpy(pat + c.lpat, base, n);
        c.lpat += n;
    }
    c.pat = pat;

    out_ours.len = out_stock.len = 0;
    run.c = &c;
    run.st = &ours;
    run.out = &out_ours;
    lua_pushcfunction(ours.L, fz_drive);
    lua_pushlightuserdata(ours.L, &run);
    rc = sl_lbox_call(ours.box, 1, 0, err, sizeof err);
    if (rc == SL_LBOX_INSTRUCTIONS || rc == SL_LBOX_TIME || rc == SL_LBOX_MEMORY)
        return 0; /* a budget stock Lua does not have */
    if (rc != SL_LBOX_OK) {
        fprintf(stderr, "fz_drive failed in the sandbox: %s\n", err);
        abort();
    }

    run.st = &stock;
    run.out = &out_stock;
    lua_pushcfunction(stock.L, fz_drive);
    lua_pushlightuserdata(stock.L, &run);
    if (lua_pcall(stock.L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "fz_drive failed in stock Lua: %s\n", lua_tostring(stock.L, -1));
        abort();
    }

    if (out_stock.len != out_ours.len || memcmp(out_stock.p, out_ours.p, out_ours.len) != 0) {
        report(&c);
        abort();
    }
    return 0;
}
