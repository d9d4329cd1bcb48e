/* test_lua_sandbox.c — the policy sandbox (lua/sandbox.c): the libraries a
 * policy sees, and the instruction, time and memory budgets of a call. */
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "sandbox.h"
#include "t.h"

#define T_MEM (8u << 20)
#define T_INSTR 1000000u

typedef struct tenv {
    int nlog;
    int level[8];
    char msg[8][256];
    uint64_t now, step; /* the fake clock: a read returns now, then adds step */
} tenv;

static void t_log(void *ud, int level, const char *msg)
{
    tenv *e = ud;
    if (e->nlog < 8) {
        e->level[e->nlog] = level;
        snprintf(e->msg[e->nlog], sizeof e->msg[0], "%s", msg);
    }
    e->nlog++;
}

static uint64_t t_clock(void *ud)
{
    tenv *e = ud;
    uint64_t t = e->now;
    e->now += e->step;
    return t;
}

static sl_lbox *box_with(tenv *e, uint64_t instr, uint64_t time_ns, size_t mem)
{
    sl_lbox_limits lim = {instr, time_ns, mem, 1u << 20};
    sl_lbox_env env = {t_log, t_clock, e};
    memset(e, 0, sizeof *e);
    return sl_lbox_new(&lim, &env);
}

static sl_lbox *box(tenv *e)
{
    return box_with(e, T_INSTR, 1000000000u, T_MEM);
}

static char err[256];

/* Compile and call: an enum sl_lbox_fail, or -1 when it does not compile. */
static int run(sl_lbox *b, const char *name, const char *src, int nres)
{
    err[0] = '\0';
    if (sl_lbox_compile(b, src, strlen(src), name, err, sizeof err) != 0)
        return -1;
    return sl_lbox_call(b, 0, nres, err, sizeof err);
}

/* Run src for one string result and compare it. */
static int run_str(sl_lbox *b, const char *src, const char *want)
{
    lua_State *L = sl_lbox_state(b);
    int rv = run(b, "t.lua", src, 1), ok;
    if (rv != SL_LBOX_OK) {
        fprintf(stderr, "  %s: rv %d: %s\n", src, rv, err);
        return 0;
    }
    ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), want) == 0;
    if (!ok)
        fprintf(stderr, "  %s: got %s, want %s\n", src, luaL_tolstring(L, -1, NULL), want);
    lua_settop(L, 0);
    return ok;
}

/* burn(n): charges n units, as a pattern matcher or binding does. */
static int t_burn(lua_State *L)
{
    sl_lbox_charge(L, (uint64_t)luaL_checkinteger(L, 1));
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- what the state offers --------------------------------------------------- */

TEST(unsafe_globals_are_nil)
{
    static const char *const names[] = {"os",      "io",       "debug",       "package",
                                        "require", "dofile",   "loadfile",    "string.dump",
                                        "module",  "newproxy", "_G.loadstring"};
    tenv e;
    sl_lbox *b = box(&e);
    char src[128];
    CHECK(b != NULL);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(src, sizeof src, "return type(%s)", names[i]);
        CHECK(run_str(b, src, "nil"));
    }
    CHECK(run_str(b,
                  "return type(string.find) .. type(table.insert) .. type(math.floor) .. "
                  "type(utf8.char) .. type(coroutine.wrap) .. type(pcall)",
                  "functionfunctionfunctionfunctionfunctionfunction"));
    CHECK(run_str(b, "return ('%d'):format(7) .. ('abc'):upper()", "7ABC"));
    sl_lbox_free(b);
}

TEST(load_refuses_bytecode)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_State *L = sl_lbox_state(b), *P = luaL_newstate();
    size_t bl;
    const char *bc;
    luaL_openlibs(P);
    CHECK_INT(luaL_dostring(P, "return string.dump(function() return 42 end)"), LUA_OK);
    bc = lua_tolstring(P, -1, &bl);
    CHECK(bl > 4 && bc[0] == '\x1b');
    lua_pushlstring(L, bc, bl);
    lua_setglobal(L, "bc");
    CHECK(run_str(b, "local f, msg = load(bc) return tostring(f) .. ': ' .. msg",
                  "nil: binary chunks are not allowed"));
    /* Asking for mode "b" changes nothing. */
    CHECK(run_str(b, "return select(2, load(bc, 'x', 'b'))", "binary chunks are not allowed"));
    /* A reader function: Lua's own check of mode "t". */
    CHECK(run_str(b,
                  "local n = 0\n"
                  "return select(2, load(function() n = n + 1 if n == 1 then return bc end end))",
                  "attempt to load a binary chunk (mode is 't')"));
    CHECK_INT(sl_lbox_compile(b, bc, bl, "bc.lua", err, sizeof err), -1);
    CHECK_STR(err, "bc.lua: binary chunks are not allowed");
    CHECK_INT(lua_gettop(L), 0);
    lua_close(P);
    sl_lbox_free(b);
}

TEST(load_of_text_works)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK(run_str(b, "return tostring(load('return 40 + ...')(2))", "42"));
    CHECK(run_str(b, "return load('return x', 'c', 't', {x = 'env'})()", "env"));
    /* Without env, the chunk sees the globals. */
    CHECK(run_str(b, "load('y = \"global\"')() return y", "global"));
    CHECK(run_str(b, "return select(2, load('x = = 1', '=chunk'))",
                  "chunk:1: unexpected symbol near '='"));
    CHECK(run_str(b,
                  "local parts, i = {'return ', '\"pieces\"'}, 0\n"
                  "return load(function() i = i + 1 return parts[i] end)()",
                  "pieces"));
    sl_lbox_free(b);
}

TEST(print_and_warn_go_to_the_log)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK_INT(run(b, "p.lua", "print(1, 'a', nil, true, 2.5)", 0), SL_LBOX_OK);
    CHECK_INT(e.nlog, 1);
    CHECK_INT(e.level[0], 2);
    CHECK_STR(e.msg[0], "1\ta\tnil\ttrue\t2.5");
    CHECK_INT(run(b, "p.lua", "print()", 0), SL_LBOX_OK);
    CHECK_INT(e.nlog, 2);
    CHECK_STR(e.msg[1], "");
    /* Control messages are not logged; warnings are always on. */
    CHECK_INT(run(b, "w.lua", "warn('@off') warn('disk ', 'full')", 0), SL_LBOX_OK);
    CHECK_INT(e.nlog, 3);
    CHECK_INT(e.level[2], 1);
    CHECK_STR(e.msg[2], "disk full");
    sl_lbox_free(b);
}

TEST(collectgarbage_only_counts)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_State *L = sl_lbox_state(b);
    static const char *const refused[] = {"collectgarbage()", "collectgarbage('collect')",
                                          "collectgarbage('stop')", "collectgarbage(1)"};
    CHECK_INT(run(b, "gc.lua", "return collectgarbage('count')", 1), SL_LBOX_OK);
    CHECK(lua_tonumber(L, -1) > 1.0);
    CHECK(lua_tonumber(L, -1) * 1024 < (double)T_MEM);
    lua_pop(L, 1);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECK_INT(run(b, "gc.lua", refused[i], 0), SL_LBOX_ERROR);
        CHECK_STR(err, "gc.lua:1: collectgarbage: only 'count' is allowed");
    }
    sl_lbox_free(b);
}

TEST(string_metatable_is_out_of_reach)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK(run_str(b, "return tostring(getmetatable(''))", "false"));
    CHECK_INT(run(b, "mt.lua", "getmetatable('').__index.upper = nil", 0), SL_LBOX_ERROR);
    CHECK_STR(err, "mt.lua:1: attempt to index a boolean value");
    CHECK(run_str(b, "return ('x'):upper()", "X"));
    sl_lbox_free(b);
}

TEST(gc_metamethods_are_refused)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK_INT(run(b, "gc.lua", "setmetatable({}, {__gc = function() while true do end end})", 0),
              SL_LBOX_ERROR);
    CHECK_STR(err, "gc.lua:1: setmetatable: __gc metamethods are not allowed");
    CHECK(run_str(b, "return getmetatable(setmetatable({}, {__index = {a = 'meta'}})).__index.a",
                  "meta"));
    CHECK_INT(run(b, "gc.lua", "setmetatable(setmetatable({}, {__metatable = 1}), {})", 0),
              SL_LBOX_ERROR);
    CHECK_STR(err, "gc.lua:1: cannot change a protected metatable");
    CHECK_INT(run(b, "gc.lua", "setmetatable(1, {})", 0), SL_LBOX_ERROR);
    CHECK_STR(err, "gc.lua:1: bad argument #1 to 'setmetatable' (table expected, got number)");
    sl_lbox_free(b);
}

/* ---- errors ---------------------------------------------------------------- */

TEST(runtime_error_has_file_and_line)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_State *L = sl_lbox_state(b);
    CHECK_INT(run(b, "err.lua", "local t = nil\nreturn t.x", 1), SL_LBOX_ERROR);
    CHECK_STR(err, "err.lua:2: attempt to index a nil value (local 't')");
    CHECK_INT(lua_gettop(L), 0);
    CHECK_INT(run(b, "err.lua", "error({})", 0), SL_LBOX_ERROR);
    CHECK_STR(err, "(error object is a table value)");
    CHECK_INT(run(b, "err.lua", "error()", 0), SL_LBOX_ERROR);
    CHECK_STR(err, "(error object is a nil value)");
    CHECK_INT(run(b, "err.lua", "error(42)", 0), SL_LBOX_ERROR);
    CHECK_STR(err, "42");
    CHECK_INT(run(b, "err.lua", "error('as is', 0)", 0), SL_LBOX_ERROR);
    CHECK_STR(err, "as is");
    CHECK(run_str(b, "return 'fine'", "fine"));
    sl_lbox_free(b);
}

TEST(compile_error_has_name_and_line)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK_INT(run(b, "bad.lua", "local x = 1\nx = = 2\n", 0), -1);
    CHECK_STR(err, "bad.lua:2: unexpected symbol near '='");
    CHECK_INT(run(b, "bad.lua", "for i = 1, 2 do\n", 0), -1);
    CHECK_STR(err, "bad.lua:2: 'end' expected (to close 'for' at line 1) near <eof>");
    CHECK_INT(lua_gettop(sl_lbox_state(b)), 0);
    sl_lbox_free(b);
}

/* ---- budgets ------------------------------------------------------------------- */

TEST(infinite_loop_spends_the_instruction_budget)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK_INT(run(b, "loop.lua", "local n = 0\nwhile true do n = n + 1 end\n", 0),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "loop.lua:2: instruction budget exceeded");
    CHECK_INT(lua_gettop(sl_lbox_state(b)), 0);
    CHECK(run_str(b, "return 'next call runs'", "next call runs"));
    /* A loop just under the budget finishes. */
    CHECK(run_str(b, "local n = 0 for i = 1, 100000 do n = n + 1 end return tostring(n)",
                  "100000"));
    sl_lbox_free(b);
}

TEST(pcall_cannot_swallow_the_budget)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK_INT(run(b, "swallow.lua",
                  "local caught = 0\n"
                  "for i = 1, 1000 do\n"
                  "  if not pcall(function() while true do end end) then caught = caught + 1 end\n"
                  "end\n"
                  "return caught\n",
                  1),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "swallow.lua:3: instruction budget exceeded");
    /* The policy's own error after the budget does not replace it. */
    CHECK_INT(run(b, "swallow.lua",
                  "local ok = pcall(function() while true do end end)\nerror('mine')", 0),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "swallow.lua:1: instruction budget exceeded");
    CHECK_INT(run(b, "swallow.lua", "xpcall(function() while true do end end, print)", 0),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "swallow.lua:1: instruction budget exceeded");
    CHECK(run_str(b, "return 'after'", "after"));
    sl_lbox_free(b);
}

TEST(time_limit_with_a_clock_that_jumps)
{
    tenv e;
    sl_lbox *b = box_with(&e, 0, 10000000u, T_MEM);
    e.step = 1000000; /* every read of the clock: one more millisecond */
    CHECK_INT(run(b, "time.lua", "while true do end", 0), SL_LBOX_TIME);
    CHECK_STR(err, "time.lua:1: time limit exceeded");
    /* 11 reads: the start, then one per thousand instructions. */
    CHECK(e.now >= 11000000u && e.now <= 13000000u);
    e.step = 0;
    CHECK(run_str(b, "local n = 0 for i = 1, 100000 do n = n + i end return tostring(n)",
                  "5000050000"));
    /* Charges from C read the clock too. */
    lua_register(sl_lbox_state(b), "burn", t_burn);
    e.step = 1000000;
    CHECK_INT(run(b, "time.lua", "for i = 1, 100 do burn(1000) end", 0), SL_LBOX_TIME);
    CHECK_STR(err, "time.lua:1: time limit exceeded");
    sl_lbox_free(b);
}

TEST(coroutines_are_budgeted)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_State *L = sl_lbox_state(b);
    CHECK_INT(run(b, "co.lua", "local co = coroutine.wrap(function() while true do end end)\nco()",
                  0),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "co.lua:1: instruction budget exceeded");
    /* resume returns false, but the caller cannot go on. */
    CHECK_INT(run(b, "co.lua",
                  "for i = 1, 100 do\n"
                  "  coroutine.resume(coroutine.create(function() while true do end end))\n"
                  "end\n"
                  "return 'done'",
                  1),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "co.lua:2: instruction budget exceeded");
    /* Created in one call, resumed in the next. */
    CHECK_INT(run(b, "co.lua",
                  "co = coroutine.create(function() coroutine.yield() while true do end end)\n"
                  "coroutine.resume(co)",
                  0),
              SL_LBOX_OK);
    CHECK_INT(run(b, "co.lua", "return coroutine.resume(co)", 1), SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "co.lua:1: instruction budget exceeded");
    /* Created outside any call (by C, unbudgeted), resumed in one. */
    CHECK_INT(sl_lbox_compile(b, "while true do end", 17, "spin.lua", err, sizeof err), 0);
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "create");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 1);
    lua_setglobal(L, "co2");
    lua_settop(L, 0);
    CHECK_INT(run(b, "co.lua", "return coroutine.resume(co2)", 1), SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "spin.lua:1: instruction budget exceeded");
    CHECK(run_str(b,
                  "local co = coroutine.wrap(function()\n"
                  "  for i = 1, 3 do coroutine.yield(i) end\n"
                  "end)\n"
                  "return tostring(co() + co() + co())",
                  "6"));
    sl_lbox_free(b);
}

TEST(memory_bomb_hits_the_cap)
{
    tenv e;
    sl_lbox *b = box_with(&e, 0, 0, 4u << 20);
    size_t base = sl_lbox_memory(b);
    CHECK(base > 0 && base < (64u << 10));
    CHECK_INT(run(b, "bomb.lua",
                  "local t = {}\nwhile true do t[#t + 1] = string.rep('x', 1000) .. #t end", 0),
              SL_LBOX_MEMORY);
    CHECK_STR(err, "bomb.lua:2: memory limit exceeded (4194304 bytes)");
    CHECK_INT(lua_gettop(sl_lbox_state(b)), 0);
    /* Collected after the failure: back near where it started. */
    CHECK(sl_lbox_memory(b) < base + (64u << 10));
    CHECK(run_str(b, "return 'alive'", "alive"));
    /* Table growth. */
    CHECK_INT(run(b, "bomb.lua", "local t = {}\n\nfor i = 1, 1e9 do t[i] = i end", 0),
              SL_LBOX_MEMORY);
    CHECK_STR(err, "bomb.lua:3: memory limit exceeded (4194304 bytes)");
    CHECK(sl_lbox_memory(b) < base + (64u << 10));
    /* One big block built in C: the line of the Lua code that called it. */
    CHECK_INT(run(b, "bomb.lua",
                  "local s, t = string.rep('x', 1 << 20), {}\n"
                  "for i = 1, 8 do t[i] = s end\n"
                  "return #table.concat(t)",
                  1),
              SL_LBOX_MEMORY);
    CHECK_STR(err, "bomb.lua:3: memory limit exceeded (4194304 bytes)");
    /* The cap was hit even though pcall caught "not enough memory": the
     * line is where memory ran out. */
    CHECK_INT(run(b, "bomb.lua",
                  "local ok = pcall(function()\n"
                  "  local t = {} while true do t[#t + 1] = {} end\n"
                  "end)\n"
                  "return ok",
                  1),
              SL_LBOX_MEMORY);
    CHECK_STR(err, "bomb.lua:2: memory limit exceeded (4194304 bytes)");
    CHECK(sl_lbox_memory(b) < (4u << 20));
    CHECK(run_str(b, "local t = {} for i = 1, 1000 do t[i] = {i} end return tostring(#t)", "1000"));
    sl_lbox_free(b);
}

/* The stack is gone when the failure reaches the caller: the line is
 * taken where the cap refused, in whichever thread was running. */
TEST(memory_failure_names_the_line_in_every_thread)
{
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"local function f(n) return 1 + f(n + 1) end\nf(1)",
         "deep.lua:1: memory limit exceeded (4194304 bytes)"},
        {"local t = {}\nfor i = 1, 1e9 do\n  t['k' .. i] = i\nend",
         "deep.lua:3: memory limit exceeded (4194304 bytes)"},
        {"local s = 'x'\nwhile true do\n  s = s .. s\nend",
         "deep.lua:3: memory limit exceeded (4194304 bytes)"},
        {"local f = coroutine.wrap(function()\n"
         "  local t = {}\n"
         "  for i = 1, 1e9 do t[i] = {} end\n"
         "end)\n"
         "f()",
         "deep.lua:3: memory limit exceeded (4194304 bytes)"},
        /* resume returns false, but the call cannot go on. */
        {"local ok = coroutine.resume(coroutine.create(function()\n"
         "  local t = {}\n"
         "  for i = 1, 1e9 do t[i] = {} end\n"
         "end))\n"
         "return ok",
         "deep.lua:3: memory limit exceeded (4194304 bytes)"},
        {"local t = {}\nfor i = 1, 1e9 do\n  t[i] = load('return ' .. i)\nend",
         "deep.lua:3: memory limit exceeded (4194304 bytes)"},
    };
    tenv e;
    sl_lbox *b = box_with(&e, 0, 0, 4u << 20);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_INT(run(b, "deep.lua", cases[i].src, 1), SL_LBOX_MEMORY);
        CHECK_STR(err, cases[i].want);
        CHECK_INT(lua_gettop(sl_lbox_state(b)), 0);
        CHECK(run_str(b, "return ('after'):upper()", "AFTER"));
    }
    sl_lbox_free(b);
}

TEST(state_that_cannot_fit_its_cap_is_not_made)
{
    tenv e;
    CHECK(box_with(&e, T_INSTR, 0, 4096) == NULL);
}

TEST(charge_from_c_spends_the_budget)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_State *L = sl_lbox_state(b);
    lua_register(L, "burn", t_burn);
    CHECK(run_str(b, "burn(1000) return 'cheap'", "cheap"));
    CHECK_INT(run(b, "burn.lua", "local x = 1\nburn(2000000)", 0), SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "burn.lua:2: instruction budget exceeded");
    CHECK_INT(run(b, "burn.lua", "for i = 1, 2000 do burn(1000) end", 0), SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "burn.lua:1: instruction budget exceeded");
    CHECK_INT(run(b, "burn.lua", "local ok = pcall(burn, 2000000)\nreturn ok", 1),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "burn.lua:1: instruction budget exceeded");
    /* A tail call returns pcall's false without another instruction: the
     * call still fails. */
    CHECK_INT(run(b, "burn.lua", "return pcall(burn, 2000000)", LUA_MULTRET),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "burn.lua:1: instruction budget exceeded");
    CHECK_INT(lua_gettop(L), 0);
    /* Outside a call a charge does nothing (raising here would panic). */
    sl_lbox_charge(L, UINT64_MAX);
    CHECK(run_str(b, "burn(10) return 'after'", "after"));
    sl_lbox_free(b);
}

TEST(table_functions_are_charged)
{
    static const char *const bombs[] = {
        "table.move({}, 1, 1e15, 2)",
        "table.insert(setmetatable({}, {__len = function() return 1e14 end}), 1, 0)",
        "table.remove(setmetatable({}, {__len = function() return 1e14 end}), 1)",
        "table.concat(setmetatable({}, {__len = function() return 1e14 end,\n"
        "                               __index = function() return 'x' end}))",
        "table.unpack({}, 1, 1e8)",
        "table.sort(setmetatable({}, {__len = function() return 1e9 end}))",
    };
    tenv e;
    sl_lbox *b = box(&e);
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        CHECK_INT(run(b, "tab.lua", bombs[i], 0), SL_LBOX_INSTRUCTIONS);
        CHECK_STR(err, "tab.lua:1: instruction budget exceeded");
    }
    CHECK(run_str(b,
                  "local t = {3, 1, 2} table.sort(t) table.insert(t, 1, 0) table.remove(t)\n"
                  "return table.concat(t, ',') .. ';' ..\n"
                  "  table.concat(table.move({1, 2}, 1, 2, 2, {9}), ',') .. ';' ..\n"
                  "  select('#', table.unpack({1, 2, 3}))",
                  "0,1,2;9,1,2;3"));
    CHECK_INT(run(b, "tab.lua", "table.insert(nil, 1)", 0), SL_LBOX_ERROR);
    CHECK_STR(err, "tab.lua:1: bad argument #1 to 'insert' (table expected, got nil)");
    sl_lbox_free(b);
}

/* lua/lpattern.c is installed on the string table, which is also the
 * strings' __index: its bounds hold for method calls too. */
TEST(patterns_and_rep_are_bounded)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK_INT(run(b, "pat.lua", "local s = string.rep('a', 200000)\nreturn s:find('.-b')", 1),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "pat.lua:2: instruction budget exceeded");
    CHECK_INT(run(b, "pat.lua", "return ('x'):rep(2 * 1024 * 1024)", 1), SL_LBOX_ERROR);
    CHECK_STR(err, "pat.lua:1: resulting string too large");
    CHECK(run_str(b, "return (('key=value'):gsub('(%w+)=(%w+)', '%2=%1'))", "value=key"));
    sl_lbox_free(b);
}

/* Work done in C, or by one VM instruction, is charged too: bytes built
 * through the allocator, bytes read or values pushed by a wrapper. Each
 * runaway below would run for minutes on the instruction count alone. */
TEST(copying_and_scanning_spend_the_budget)
{
    static const char *const loops[] = {
        "for i = 1, 1e6 do local t = s .. s end",
        "for i = 1, 1e6 do local t = s:upper() end",
        "for i = 1, 1e6 do local t = s:lower() end",
        "for i = 1, 1e6 do local t = s:reverse() end",
        "for i = 1, 1e6 do local t = s:sub(2) end",
        "for i = 1, 1e6 do local t = ('%s'):format(s) end",
        "for i = 1, 1e6 do local t = ('%.3s'):format(s) end",
        "for i = 1, 1e6 do local t = ('x'):rep(1000000) end",
        "for i = 1, 1e6 do local t = s:byte(1, 100000) end",
        "for i = 1, 1e6 do local t = utf8.len(s) end",
        "for i = 1, 1e6 do local t = utf8.codepoint(s, -100000, -1) end",
        "for i = 1, 1e6 do local t = utf8.offset(s, 1000000) end",
        "for i = 1, 1e6 do local t = utf8.char(string.byte(s, 1, 200)) end",
        "local d = (' '):rep(999999) .. '7' for i = 1, 1e6 do local t = tonumber(d) end",
        "local f = ('b'):rep(100000) for i = 1, 1e6 do local t = string.unpack(f, s) end",
        "for i = 1, 1e6 do local t = table.concat({s, s, s}) end",
        "for i = 1, 1e6 do local t = tostring(s) end",
        "for i = 1, 1e6 do pcall(function() local t = s .. s end) end",
    };
    tenv e;
    sl_lbox *b = box(&e);
    char src[256];
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        snprintf(src, sizeof src, "local s = string.rep('x', 1000000)\n%s\nreturn 'ran'", loops[i]);
        CHECK_INT(run(b, "copy.lua", src, 1), SL_LBOX_INSTRUCTIONS);
        CHECK_STR(err, "copy.lua:2: instruction budget exceeded");
        CHECK_INT(lua_gettop(sl_lbox_state(b)), 0);
        CHECK(run_str(b, "return ('next'):upper() .. ' call'", "NEXT call"));
    }
    /* In a coroutine: the line is the coroutine's. */
    CHECK_INT(run(b, "copy.lua",
                  "local f = coroutine.wrap(function()\n"
                  "  local s = string.rep('x', 100000)\n"
                  "  for i = 1, 1e6 do local t = s .. s end\n"
                  "end)\n"
                  "f()",
                  0),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "copy.lua:3: instruction budget exceeded");
    sl_lbox_free(b);
}

/* The charge is about one unit per 32 bytes built: ordinary string work,
 * even a few megabytes of it, stays well inside the budget. */
TEST(small_string_work_is_not_refused)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK(run_str(b,
                  "local parts = {}\n"
                  "for i = 1, 2000 do\n"
                  "  local k = ('key%d'):format(i):upper() .. '=' .. tostring(i):rep(2)\n"
                  "  parts[#parts + 1] = k:lower():reverse():sub(1, 6) .. utf8.char(233)\n"
                  "end\n"
                  "local all = table.concat(parts, ',')\n"
                  "return #all .. ' ' .. utf8.len(all) .. ' ' .. parts[12] .. ' ' ..\n"
                  "  tonumber(('%d'):format(#parts)) .. ' ' .. string.byte(all, 1)",
                  "17999 15999 2121=2\xc3\xa9 2000 49"));
    /* About 9 MB of short strings built in one call. */
    CHECK(run_str(b,
                  "local n = 0\n"
                  "for i = 1, 40000 do n = n + #(('y'):rep(90) .. i) end\n"
                  "return tostring(n)",
                  "3788894"));
    sl_lbox_free(b);
}

/* Lua runs the __close handlers of a coroutine that died on an error
 * after the fact (wrap, coroutine.close), and a budget error raised by the
 * count hook leaves the thread's hooks off: those handlers must still run
 * under the budget. */
TEST(close_handlers_of_a_doomed_coroutine_are_budgeted)
{
    tenv e;
    sl_lbox *b = box(&e);
    CHECK_INT(run(b, "tbc.lua",
                  "local spin = setmetatable({}, {__close = function() while true do end end})\n"
                  "local f = coroutine.wrap(function()\n"
                  "  local x <close> = spin\n"
                  "  while true do end\n"
                  "end)\n"
                  "f()",
                  0),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "tbc.lua:4: instruction budget exceeded");
    /* Doomed in one call, closed in the next. */
    CHECK_INT(run(b, "tbc.lua",
                  "co = coroutine.create(function()\n"
                  "  local x <close> = setmetatable({},\n"
                  "    {__close = function() while true do end end})\n"
                  "  coroutine.yield()\n"
                  "  while true do end\n"
                  "end)\n"
                  "coroutine.resume(co)",
                  0),
              SL_LBOX_OK);
    CHECK_INT(run(b, "tbc.lua", "coroutine.resume(co)", 0), SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "tbc.lua:5: instruction budget exceeded");
    CHECK(run_str(b, "return coroutine.status(co) .. ' ' .. tostring(coroutine.close(co))",
                  "dead false"));
    /* Closing a suspended coroutine runs its handler, under the budget. */
    CHECK_INT(run(b, "tbc.lua",
                  "co = coroutine.create(function()\n"
                  "  local x <close> = setmetatable({},\n"
                  "    {__close = function() while true do end end})\n"
                  "  coroutine.yield()\n"
                  "end)\n"
                  "coroutine.resume(co)",
                  0),
              SL_LBOX_OK);
    CHECK_INT(run(b, "tbc.lua", "local ok = coroutine.close(co)\nreturn ok", 1),
              SL_LBOX_INSTRUCTIONS);
    CHECK_STR(err, "tbc.lua:3: instruction budget exceeded"); /* the handler's line */
    CHECK(run_str(b,
                  "local log = {}\n"
                  "local co = coroutine.wrap(function(a)\n"
                  "  local x <close> = setmetatable({},\n"
                  "    {__close = function() log[#log + 1] = 'closed' end})\n"
                  "  local b = coroutine.yield(a + 1)\n"
                  "  error('boom ' .. b)\n"
                  "end)\n"
                  "local first = co(1)\n"
                  "local ok, msg = pcall(co, 5)\n"
                  "return first .. ' ' .. tostring(ok) .. ' ' .. msg .. ' ' .. log[1]",
                  "2 false t.lua:6: boom 5 closed"));
    sl_lbox_free(b);
}

/* ---- the C side ---------------------------------------------------------------- */

static int t_whoami(lua_State *L)
{
    lua_pushboolean(L, sl_lbox_of(L) == lua_touserdata(L, lua_upvalueindex(1)));
    return 1;
}

TEST(sandbox_of_every_thread)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_State *L = sl_lbox_state(b), *P = luaL_newstate();
    lua_pushlightuserdata(L, b);
    lua_pushcclosure(L, t_whoami, 1);
    lua_setglobal(L, "whoami");
    CHECK(run_str(b,
                  "return tostring(whoami()) .. ' ' ..\n"
                  "  tostring(coroutine.wrap(function() return whoami() end)())",
                  "true true"));
    CHECK(sl_lbox_max_string(L) == 1u << 20);
    CHECK(sl_lbox_of(P) == NULL);
    lua_close(P);
    sl_lbox_free(b);
}

TEST(call_keeps_the_stack_balanced)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_State *L = sl_lbox_state(b);
    lua_register(L, "burn", t_burn);
    lua_pushliteral(L, "below");
    CHECK_INT(sl_lbox_compile(b, "local a, b = ... return a + b, a * b", 36, "args.lua", err,
                              sizeof err),
              0);
    lua_pushinteger(L, 3);
    lua_pushinteger(L, 4);
    CHECK_INT(sl_lbox_call(b, 2, 2, err, sizeof err), SL_LBOX_OK);
    CHECK_INT(lua_gettop(L), 3);
    CHECK_INT(lua_tointeger(L, 2), 7);
    CHECK_INT(lua_tointeger(L, 3), 12);
    lua_settop(L, 1);
    CHECK_INT(sl_lbox_compile(b, "return 1, 2, 3", 14, "multi.lua", err, sizeof err), 0);
    CHECK_INT(sl_lbox_call(b, 0, LUA_MULTRET, err, sizeof err), SL_LBOX_OK);
    CHECK_INT(lua_gettop(L), 4);
    lua_settop(L, 1);
    CHECK_INT(sl_lbox_compile(b, "return 1, pcall(burn, 2e6)", 26, "multi.lua", err, sizeof err),
              0);
    CHECK_INT(sl_lbox_call(b, 0, LUA_MULTRET, err, sizeof err), SL_LBOX_INSTRUCTIONS);
    CHECK_INT(lua_gettop(L), 1);
    CHECK_INT(sl_lbox_compile(b, "error('x')", 10, "fail.lua", err, sizeof err), 0);
    CHECK_INT(sl_lbox_call(b, 0, 3, err, sizeof err), SL_LBOX_ERROR);
    CHECK_STR(err, "fail.lua:1: x");
    CHECK_INT(lua_gettop(L), 1);
    CHECK_STR(lua_tostring(L, 1), "below");
    sl_lbox_free(b);
}

static int t_reenter(lua_State *L)
{
    sl_lbox *b = sl_lbox_of(L);
    char e2[64];
    int rv;
    lua_pushcfunction(L, t_burn);
    rv = sl_lbox_call(b, 0, 0, e2, sizeof e2);
    lua_pushinteger(L, rv);
    lua_pushstring(L, e2);
    return 2;
}

TEST(call_is_not_reentrant)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_register(sl_lbox_state(b), "reenter", t_reenter);
    CHECK(run_str(b, "local rv, msg = reenter() return rv .. ' ' .. msg",
                  "1 sl_lbox_call: not reentrant"));
    sl_lbox_free(b);
}

TEST(memory_is_counted_and_returned)
{
    tenv e;
    sl_lbox *b = box(&e);
    lua_State *L = sl_lbox_state(b);
    size_t base = sl_lbox_memory(b);
    CHECK_INT(run(b, "m.lua", "big = string.rep('x', 1000000)", 0), SL_LBOX_OK);
    CHECK(sl_lbox_memory(b) >= base + 1000000);
    CHECK_INT(run(b, "m.lua", "big = nil", 0), SL_LBOX_OK);
    lua_gc(L, LUA_GCCOLLECT);
    CHECK(sl_lbox_memory(b) < base + 100000);
    sl_lbox_free(b);
}
