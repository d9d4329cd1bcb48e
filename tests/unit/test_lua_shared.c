/* test_lua_shared.c — the worker's `shared` table (lua/shared.c): scalar
 * values by string or number key, bounds, pairs and #, seen from several states. */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "shared.h"
#include "t.h"

static char err[256];

/* The proxies reach a store through a slot that outlives the states. */
static sl_lshared *slots[64];

static sl_lshared *const *slot_for(sl_lshared *sh)
{
    size_t i = 0;
    while (i < 63 && slots[i] && slots[i] != sh)
        i++;
    slots[i] = sh;
    return &slots[i];
}

static lua_State *state(sl_lshared *sh)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    sl_lshared_push(L, slot_for(sh));
    lua_setglobal(L, "shared");
    return L;
}

/* Runs src (chunk "sh"): LUA_OK with nres results, or the error in err. */
static int run(lua_State *L, const char *src, int nres)
{
    int rv = luaL_loadbuffer(L, src, strlen(src), "=sh");
    if (rv == LUA_OK)
        rv = lua_pcall(L, 0, nres, 0);
    if (rv != LUA_OK) {
        snprintf(err, sizeof err, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return rv;
}

/* Runs src for one result, compared as tostring() gives it. */
static int run_str(lua_State *L, const char *src, const char *want)
{
    int ok;
    if (run(L, src, 1) != LUA_OK) {
        fprintf(stderr, "  %s: %s\n", src, err);
        return 0;
    }
    ok = strcmp(luaL_tolstring(L, -1, NULL), want) == 0;
    if (!ok)
        fprintf(stderr, "  %s: got %s, want %s\n", src, lua_tostring(L, -1), want);
    lua_settop(L, 0);
    return ok;
}

TEST(each_type_reads_writes_and_deletes)
{
    sl_lshared *sh = sl_lshared_new(100, 4096);
    lua_State *L = state(sh);
    CHECK_INT(run(L,
                  "shared.yes = true shared.no = false shared.i = 42 shared.x = 1.5\n"
                  "shared.one = 1.0 shared.s = 'hello' shared.long = string.rep('y', 100)\n"
                  "shared.nul = 'a\\0b'",
                  0),
              LUA_OK);
    CHECK_INT(sl_lshared_count(sh), 8);
    CHECK(run_str(L, "return shared.yes", "true"));
    CHECK(run_str(L, "return shared.no", "false"));
    CHECK(run_str(L, "return math.type(shared.i) .. ' ' .. shared.i", "integer 42"));
    CHECK(run_str(L, "return math.type(shared.x) .. ' ' .. shared.x", "float 1.5"));
    CHECK(run_str(L, "return math.type(shared.one)", "float"));
    CHECK(run_str(L, "return shared.s", "hello"));
    CHECK(run_str(L, "return shared.long == string.rep('y', 100)", "true"));
    CHECK(run_str(L, "return shared.nul == 'a\\0b'", "true"));
    CHECK(run_str(L, "return shared.missing", "nil"));
    /* A write replaces the value and its type. */
    CHECK(run_str(L, "shared.i = 'now a string of some length' return shared.i",
                  "now a string of some length"));
    CHECK(run_str(L, "shared.long = 7 return shared.long", "7"));
    CHECK(run_str(L, "shared.s = nil return shared.s", "nil"));
    CHECK(run_str(L, "shared.missing = nil return #shared", "7"));
    CHECK_INT(sl_lshared_count(sh), 7);
    lua_close(L);
    sl_lshared_free(sh);
}

TEST(number_and_string_keys_differ)
{
    sl_lshared *sh = sl_lshared_new(100, 4096);
    lua_State *L = state(sh);
    CHECK(run_str(L, "shared[1] = 'number' shared['1'] = 'string'\n"
                     "return shared[1] .. ' ' .. shared['1'] .. ' ' .. #shared",
                  "number string 2"));
    CHECK(run_str(L, "shared['1'] = nil return tostring(shared[1]) .. ' ' .. tostring(shared['1'])",
                  "number nil"));
    lua_close(L);
    sl_lshared_free(sh);
}

TEST(integral_float_keys_are_integer_keys)
{
    sl_lshared *sh = sl_lshared_new(100, 4096);
    lua_State *L = state(sh);
    CHECK(run_str(L, "shared[2.0] = 'two' return shared[2]", "two"));
    CHECK(run_str(L, "local k = next({}) for key in pairs(shared) do k = key end\n"
                     "return math.type(k)",
                  "integer"));
    CHECK(run_str(L, "shared[2^53] = 'big' return shared[9007199254740992]", "big"));
    CHECK(run_str(L, "shared[0.5] = 'half' return shared[1 / 2]", "half"));
    CHECK(run_str(L, "shared[-0.0] = 'zero' return shared[0]", "zero"));
    CHECK(run_str(L, "shared[1e300] = 'huge' return shared[1e300]", "huge"));
    CHECK(run_str(L, "return shared[0 / 0]", "nil"));
    CHECK_INT(run(L, "shared[0 / 0] = 1", 0), LUA_ERRRUN);
    CHECK_STR(err, "sh:1: shared: key is NaN");
    CHECK_INT(sl_lshared_count(sh), 5);
    lua_close(L);
    sl_lshared_free(sh);
}

TEST(bad_keys_and_values_raise)
{
    static const char *const bad_values[] = {"shared.x = {}", "shared.x = print",
                                             "shared.x = coroutine.create(print)",
                                             "shared.x = shared"};
    sl_lshared *sh = sl_lshared_new(100, 4096);
    lua_State *L = state(sh);
    CHECK_INT(run(L, "shared[{}] = 1", 0), LUA_ERRRUN);
    CHECK_STR(err, "sh:1: shared: keys must be strings or numbers");
    CHECK_INT(run(L, "return shared[true]", 1), LUA_ERRRUN);
    CHECK_STR(err, "sh:1: shared: keys must be strings or numbers");
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        CHECK_INT(run(L, bad_values[i], 0), LUA_ERRRUN);
        CHECK_STR(err, "sh:1: shared: values must be nil, boolean, number or string");
    }
    CHECK_INT(sl_lshared_count(sh), 0);
    CHECK(run_str(L, "return tostring(getmetatable(shared))", "false"));
    CHECK_INT(run(L, "setmetatable(shared, {})", 0), LUA_ERRRUN);
    CHECK_STR(err, "sh:1: bad argument #1 to 'setmetatable' (table expected, got sluice.shared)");
    lua_close(L);
    sl_lshared_free(sh);
}

TEST(writes_past_the_bounds_raise)
{
    sl_lshared *sh = sl_lshared_new(3, 20);
    lua_State *L = state(sh);
    CHECK_INT(run(L, "shared.a = 1 shared.b = 2 shared[3] = 3", 0), LUA_OK);
    CHECK_INT(run(L, "shared.d = 4", 0), LUA_ERRRUN);
    CHECK_STR(err, "sh:1: shared: table full (3 keys, 20 bytes)");
    CHECK_INT(run(L, "shared[4] = 4", 0), LUA_ERRRUN);
    CHECK_STR(err, "sh:1: shared: table full (3 keys, 20 bytes)");
    /* Existing keys can still change; a deleted key makes room. */
    CHECK(run_str(L, "shared.a = 5 return shared.a", "5"));
    CHECK(run_str(L, "shared.a = nil shared.d = 4 return shared.d", "4"));
    /* Bytes: keys "b" and "d" (number keys count nothing) and values. */
    CHECK(run_str(L, "shared.b = string.rep('x', 18) return #shared.b", "18"));
    CHECK_INT(run(L, "shared.b = string.rep('x', 19)", 0), LUA_ERRRUN);
    CHECK_STR(err, "sh:1: shared: table full (3 keys, 20 bytes)");
    CHECK(run_str(L, "return #shared.b", "18"));
    CHECK(run_str(L, "shared.b = nil shared.d = nil return #shared", "1"));
    CHECK_INT(run(L, "shared[string.rep('k', 21)] = true", 0), LUA_ERRRUN);
    CHECK_STR(err, "sh:1: shared: table full (3 keys, 20 bytes)");
    CHECK(run_str(L, "shared[string.rep('k', 20)] = true return #shared", "2"));
    lua_close(L);
    sl_lshared_free(sh);
}

TEST(pairs_walks_every_entry)
{
    sl_lshared *sh = sl_lshared_new(1000, 1 << 16);
    lua_State *L = state(sh);
    CHECK(run_str(L, "local n = 0 for k, v in pairs(shared) do n = n + 1 end return n", "0"));
    CHECK_INT(run(L, "for i = 1, 50 do shared[i] = i shared['k' .. i] = 1000 * i end", 0), LUA_OK);
    CHECK(run_str(L,
                  "local n, sum, ints = 0, 0, 0\n"
                  "for k, v in pairs(shared) do\n"
                  "  n = n + 1 sum = sum + v\n"
                  "  if math.type(k) == 'integer' then ints = ints + 1 assert(v == k)\n"
                  "  else assert(v == 1000 * tonumber(k:sub(2))) end\n"
                  "end\n"
                  "return n .. ' ' .. sum .. ' ' .. ints",
                  "100 1276275 50"));
    /* The iterator ignores forged arguments. */
    CHECK(run_str(L, "local f = pairs(shared) return f('junk', {}) ~= nil", "true"));
    /* Clearing entries while walking. */
    CHECK(run_str(L, "for k in pairs(shared) do shared[k] = nil end return #shared", "0"));
    CHECK_INT(sl_lshared_count(sh), 0);
    lua_close(L);
    sl_lshared_free(sh);
}

TEST(many_keys_survive_deletes_and_rehashes)
{
    sl_lshared *sh = sl_lshared_new(10000, 1 << 20);
    lua_State *L = state(sh);
    CHECK(run_str(L,
                  "for i = 1, 5000 do shared['key' .. i] = i end\n"
                  "for i = 1, 5000, 2 do shared['key' .. i] = nil end\n"
                  "for round = 1, 3 do\n"
                  "  for i = 1, 2000 do shared[i + 0.5] = i end\n"
                  "  for i = 1, 2000 do shared[i + 0.5] = nil end\n"
                  "end\n"
                  "for i = 1, 5000, 2 do shared['key' .. i] = -i end\n"
                  "for i = 1, 5000 do\n"
                  "  assert(shared['key' .. i] == (i % 2 == 1 and -i or i), i)\n"
                  "end\n"
                  "return #shared",
                  "5000"));
    lua_close(L);
    sl_lshared_free(sh);
}

TEST(two_states_see_the_same_table)
{
    sl_lshared *sh = sl_lshared_new(100, 4096);
    lua_State *A = state(sh), *B = state(sh);
    CHECK_INT(run(A, "for i = 1, 2 do shared.hits = (shared.hits or 0) + 1 end", 0), LUA_OK);
    CHECK(run_str(B, "return shared.hits", "2"));
    CHECK_INT(run(B, "shared.hits = shared.hits + 1 shared.who = 'B'", 0), LUA_OK);
    CHECK(run_str(A, "return shared.hits .. shared.who", "3B"));
    /* Two proxies in one state. */
    sl_lshared_push(A, slot_for(sh));
    lua_setglobal(A, "again");
    CHECK(run_str(A, "again.x = 1 return shared.x + #again", "4"));
    lua_close(A);
    lua_close(B);
    sl_lshared_free(sh);
}

TEST(values_outlive_a_state)
{
    sl_lshared *sh = sl_lshared_new(100, 4096);
    lua_State *A = state(sh), *B;
    CHECK_INT(run(A, "shared.version = 'old' shared.count = 41 shared[1.25] = 'q'", 0), LUA_OK);
    lua_close(A);
    B = state(sh);
    CHECK(run_str(B, "shared.count = shared.count + 1\n"
                     "return shared.version .. ' ' .. shared.count .. ' ' .. shared[1.25]",
                  "old 42 q"));
    CHECK_INT(sl_lshared_count(sh), 3);
    lua_close(B);
    sl_lshared_free(sh);
}
