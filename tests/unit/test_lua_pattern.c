/* test_lua_pattern.c — lpattern.c against Lua 5.4's own string library
 * (a corpus and generated cases, result by result) and its bounds. */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lpattern.h"
#include "sandbox.h"
#include "t.h"

/* ---- two runners: stock Lua and the sandbox ------------------------------ */

/* Loaded in both states; returns {expr = f(src), op = f(name, s, p, a, b)},
 * each answering with the call's results (or error) as one string (a long
 * string as its start, length and a digest of all its bytes). */
static const char DRIVER[] =
    "local pack, unpack, concat = table.pack, table.unpack, table.concat\n"
    "local fmt, mtype = string.format, math.type\n"
    "local function digest(s)\n"
    "  local h = #s\n"
    "  for i = 1, #s, 4096 do\n"
    "    local t = pack(s:byte(i, i + 4095))\n"
    "    for j = 1, t.n do h = (h * 31 + t[j]) % 4294967296 end\n"
    "  end\n"
    "  return h\n"
    "end\n"
    "local function ser1(v)\n"
    "  local t = type(v)\n"
    "  if t == 'string' and #v > 256 then\n"
    "    return fmt('%q...(%d bytes, digest %d)', v:sub(1, 64), #v, digest(v))\n"
    "  end\n"
    "  if t == 'string' then return fmt('%q', v) end\n"
    "  if t == 'number' then return mtype(v) .. ':' .. tostring(v) end\n"
    "  return t == 'nil' and 'nil' or t == 'boolean' and tostring(v) or t\n"
    "end\n"
    "local function ser(ok, ...)\n"
    "  if not ok then return 'error: ' .. tostring((...)) end\n"
    "  local n, out = select('#', ...), {}\n"
    "  for i = 1, n do out[i] = ser1((select(i, ...))) end\n"
    "  return n .. '|' .. concat(out, ',')\n"
    "end\n"
    "local function G(s, p, init)\n"
    "  local it, out = string.gmatch(s, p, init), {}\n"
    "  for _ = 1, 300 do\n"
    "    local r = pack(it())\n"
    "    if r[1] == nil then break end\n"
    "    out[#out + 1] = ser(true, unpack(r, 1, r.n))\n"
    "  end\n"
    "  return concat(out, ';')\n"
    "end\n"
    "local ALL = {}\n"
    "for i = 0, 255 do ALL[#ALL + 1] = string.char(i) end\n"
    "ALL = concat(ALL)\n"
    "local env = setmetatable({G = G, ALL = ALL}, {__index = _G})\n"
    "local function expr(src)\n"
    "  local f, err = load('return ' .. src, '=case', 't', env)\n"
    "  if not f then return 'compile: ' .. err end\n"
    "  return ser(pcall(f))\n"
    "end\n"
    "local ops = {\n"
    "  find = function(s, p, a, b) return string.find(s, p, a, b) end,\n"
    "  match = function(s, p, a) return string.match(s, p, a) end,\n"
    "  gmatch = function(s, p, a) return G(s, p, a) end,\n"
    "  gsub = function(s, p, a, b) return string.gsub(s, p, a, b) end,\n"
    "}\n"
    "local function op(name, s, p, a, b) return ser(pcall(ops[name], s, p, a, b)) end\n"
    "return {expr = expr, op = op}\n";

typedef struct runner {
    lua_State *L;
    sl_lbox *box;  /* NULL: the stock library in a plain state */
    int driver;    /* registry ref of the driver's table */
    char err[512];
} runner;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t env_clock(void *ud)
{
    (void)ud;
    return now_ns();
}

static void env_log(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    (void)msg;
}

static const sl_lbox_env ENV = {env_log, env_clock, NULL};

static sl_lbox *new_box(uint64_t instructions, size_t max_string)
{
    sl_lbox_limits lim = {instructions, 20ull * 1000000000u, (size_t)256 << 20, max_string};
    return sl_lbox_new(&lim, &ENV);
}

/* Call the function under it with nargs arguments for one result. */
static int runner_call(runner *r, int nargs)
{
    if (r->box != NULL)
        return sl_lbox_call(r->box, nargs, 1, r->err, sizeof r->err);
    if (lua_pcall(r->L, nargs, 1, 0) != LUA_OK) {
        snprintf(r->err, sizeof r->err, "%s", lua_tostring(r->L, -1));
        lua_pop(r->L, 1);
        return SL_LBOX_ERROR;
    }
    return SL_LBOX_OK;
}

static int runner_open(runner *r, int sandboxed)
{
    memset(r, 0, sizeof *r);
    if (sandboxed) {
        r->box = new_box(UINT64_C(1) << 40, (size_t)16 << 20);
        if (r->box == NULL)
            return -1;
        r->L = sl_lbox_state(r->box);
        if (sl_lbox_compile(r->box, DRIVER, strlen(DRIVER), "driver", r->err, sizeof r->err))
            return -1;
    } else {
        r->L = luaL_newstate();
        luaL_openlibs(r->L);
        if (luaL_loadbufferx(r->L, DRIVER, strlen(DRIVER), "@driver", "t") != LUA_OK)
            return -1;
    }
    if (runner_call(r, 0) != SL_LBOX_OK || !lua_istable(r->L, -1))
        return -1;
    r->driver = luaL_ref(r->L, LUA_REGISTRYINDEX);
    return 0;
}

static void runner_close(runner *r)
{
    if (r->box != NULL)
        sl_lbox_free(r->box);
    else if (r->L != NULL)
        lua_close(r->L);
}

/* The driver's answer (or why the call failed) into out. */
static void runner_result(runner *r, int nargs, char *out, size_t outlen)
{
    int rc = runner_call(r, nargs);
    if (rc != SL_LBOX_OK) {
        snprintf(out, outlen, "call failed (%d): %s", rc, r->err);
        return;
    }
    snprintf(out, outlen, "%s", lua_tostring(r->L, -1) ? lua_tostring(r->L, -1) : "(not a string)");
    lua_pop(r->L, 1);
}

static void runner_fn(runner *r, const char *name)
{
    lua_rawgeti(r->L, LUA_REGISTRYINDEX, r->driver);
    lua_getfield(r->L, -1, name);
    lua_remove(r->L, -2);
}

static void run_expr(runner *r, const char *src, char *out, size_t outlen)
{
    runner_fn(r, "expr");
    lua_pushstring(r->L, src);
    runner_result(r, 1, out, outlen);
}

/* ---- the corpus ---------------------------------------------------------- */

static const char *const CORPUS[] = {
    /* find: init, plain, special-free patterns */
    "('hello world'):find('o w')",
    "('hello world'):find('o', 6)",
    "('hello world'):find('l', -3)",
    "('hello world'):find('l', -100)",
    "('hello world'):find('h', 0)",
    "('hello'):find('', 10)",
    "('hello'):find('', 6)",
    "('hello'):find('', 7)",
    "('hello'):find('', -1)",
    "('a.b'):find('.', 1, true)",
    "('a+b'):find('+', 1, true)",
    "('a+b'):find('a+b')",
    "('x^y'):find('^y', 1, true)",
    "('abc'):find('b', 1, false)",
    "('abc'):find('b', nil, true)",
    "('abc'):find('', 2, true)",
    "('aaa'):find('aab')",
    "('abc'):find('c$')",
    "('abc$'):find('c$')",
    "('a$b'):find('$b')",
    "('abc'):find('^b')",
    "('abc'):find('^a')",
    "('^abc'):find('^^a')",
    "string.find('abc', 'b', 1.0)",
    "string.find('abc', 'b', 1.5)",
    "string.find('abc', 'b', '2')",
    "string.find('abc')",
    "string.find(nil, 'a')",
    "string.find(12345, 34)",
    "('abc'):find('b', {})",
    "('a\\0b\\0c'):find('\\0c')",
    "('a\\0b\\0c'):find('%z')",
    "('a\\0b'):find('[\\0]')",
    "('a\\0b'):find('.%z?b')",
    "('hello'):find('l+')",
    "('hello'):find('xyz', 1, true)",
    "('hello'):find('llo', -3, true)",
    "('hello'):find('hello!', 1, true)",
    "(string.rep('ab', 1000) .. 'c'):find('abc', 1, true)",
    "(string.rep('a', 65534) .. 'bc' .. string.rep('a', 70000)):find('bc', 1, true)",
    "(string.rep('a', 65535) .. 'bc'):find('abc', 1, true)",
    "(string.rep('a', 65536) .. 'bc'):find('abc', 2, true)",
    "(string.rep('ab', 70000) .. 'c'):find(string.rep('ab', 40000) .. 'c', 1, true)",
    "(string.rep('x', 200000)):find('y', 1, true)",
    "(string.rep('x', 200000) .. 'y'):find('xy', 150000, true)",
    "(string.rep('a', 100000) .. 'b'):find('ab')",
    /* character classes, each with its complement, over all 256 bytes */
    "ALL:gsub('%a+', '<%0>')",
    "ALL:gsub('%A+', '<%0>')",
    "ALL:gsub('%c+', '<%0>')",
    "ALL:gsub('%C+', '<%0>')",
    "ALL:gsub('%d+', '<%0>')",
    "ALL:gsub('%D+', '<%0>')",
    "ALL:gsub('%g+', '<%0>')",
    "ALL:gsub('%G+', '<%0>')",
    "ALL:gsub('%l+', '<%0>')",
    "ALL:gsub('%L+', '<%0>')",
    "ALL:gsub('%p+', '<%0>')",
    "ALL:gsub('%P+', '<%0>')",
    "ALL:gsub('%s+', '<%0>')",
    "ALL:gsub('%S+', '<%0>')",
    "ALL:gsub('%u+', '<%0>')",
    "ALL:gsub('%U+', '<%0>')",
    "ALL:gsub('%w+', '<%0>')",
    "ALL:gsub('%W+', '<%0>')",
    "ALL:gsub('%x+', '<%0>')",
    "ALL:gsub('%X+', '<%0>')",
    "ALL:gsub('.', '')",
    "ALL:gsub('[%a_]+', '<%0>')",
    "ALL:gsub('[^%d%s]+', '<%0>')",
    "ALL:gsub('[\\128-\\255]+', '<%0>')",
    "ALL:gsub('[%W%d]+', '<%0>')",
    /* escapes of non-alphanumerics and of letters that are no class */
    "('a.b'):match('%.')",
    "('50%'):match('%d+%%')",
    "('[x]'):match('%[(.)%]')",
    "('a-b'):match('%-')",
    "('(a)'):match('%((.-)%)')",
    "('zq'):match('%z%q')",
    "('a*b'):match('%*')",
    "('^$'):match('%^%$')",
    /* sets */
    "('hello'):match('[aeiou]+')",
    "('HeLLo'):match('[A-Z]+')",
    "('abc-def'):match('[a-]+')",
    "('-abc'):match('[a-]+')",
    "('x]y'):match('[]]')",
    "('x]y'):match('[^]]+')",
    "('a^b'):match('[b^]+')",
    "('a^b'):match('[^^]+')",
    "('abc123'):match('[%d]+')",
    "('a-z'):match('[%a-]+')",
    "('A1_ x'):match('[%w_]+')",
    "('abc'):match('[^%a]')",
    "('abcdef'):match('[a-c-e]+')",
    "('-'):match('[a-c-e]+')",
    "('z'):match('[a-]')",
    "('%'):match('[%%]')",
    "('a]'):match('[]a]+')",
    "('a-b'):match('[a%-b]+')",
    "('\\255\\128'):match('[\\128-\\255]+')",
    "('b'):match('[c-a]')",
    "('a]]'):match('[a-%]]+')",
    "('abc'):match('[')",
    "('abc'):match('[a')",
    "('abc'):match('[^')",
    "('abc'):match('[%')",
    "('abc'):match('[]')",
    "('abc'):match('[^]')",
    "('abc'):match('[%]')",
    "('xyz'):match('a[')",
    /* quantifiers */
    "('aaab'):match('a*')",
    "('aaab'):match('a+b')",
    "('aaab'):match('a-b')",
    "('aaab'):match('a?a?b')",
    "('b'):match('a+b')",
    "('<a><b>'):match('<(.-)>')",
    "('<a><b>'):match('<(.*)>')",
    "('abc'):match('.-$')",
    "('abc'):match('^(.-)b')",
    "('x'):match('x*?')",
    "('a+'):match('a+?')",
    "('**'):match('**')",
    "('-'):match('-')",
    "('aaa'):match('^-')",
    "('123abc'):match('%d+')",
    "('  x y  '):match('^%s*(.-)%s*$')",
    "('aaa'):match('a-')",
    "('aaa'):match('a-$')",
    "('abab'):match('[ab]-b')",
    "('xxyy'):match('x*y+')",
    /* anchors */
    "('abc'):match('^abc$')",
    "('abcd'):match('^abc$')",
    "('abc'):match('$')",
    "('abc'):find('$')",
    "('a$'):match('a$$')",
    "('hello hello'):gsub('^hello', 'X')",
    "('abc'):gsub('^', '>')",
    "('abc'):gsub('$', '<')",
    "('abc'):gsub('^%w', '')",
    "('abc'):match('^')",
    /* captures */
    "('key=val'):match('(%w+)=(%w+)')",
    "('hello'):match('()ll()')",
    "('hello'):find('()ll()')",
    "('hello'):match('(h)(e)(l)(l)(o)')",
    "('abc'):match('((a)(b))')",
    "('abc'):match('(a()b)')",
    "string.rep('a', 32):match(string.rep('(a)', 32))",
    "string.rep('a', 33):match(string.rep('(a)', 33))",
    "('x'):match(string.rep('(', 33))",
    "('abc'):match('(a')",
    "('abc'):find('(a')",
    "('abc'):match('a)')",
    "('abc'):match('()')",
    "('abc'):match('()', 4)",
    "('abc'):gsub('()', '%1')",
    "('abc'):gsub('', '-')",
    "('abc'):match('(a)(')",
    "('abc'):match('x)')",
    /* %b */
    "('f(a(b)c) d'):match('%b()')",
    "('[[x]]'):match('%b[]')",
    "('((('):match('%b()')",
    "('abc'):match('%b')",
    "('abc'):match('%ba')",
    "('aXbXa'):match('%bXX')",
    "('x = (1 + (2*3))'):gsub('%b()', '[]')",
    "('(a)(b)'):gsub('%b()', '')",
    "('((a)'):match('%b()')",
    "('x'):match('%b()')",
    /* %f */
    "('THE (quick) fox'):gsub('%f[%a]%a+', 'W')",
    "('hello world'):find('%f[%w]%w+', 2)",
    "('abc'):match('()%f[%l]')",
    "('abc'):find('%f[%z]')",
    "('abc'):find('%f[\\0]')",
    "('abc'):match('%fa')",
    "('abc'):match('%f')",
    "('abc'):match('%f[a')",
    "('THE (quick) fox'):find('%f[%a]%a+%f[%A]')",
    "('aaa'):gsub('%f[a]', '|')",
    "('a b c'):gsub('%f[%S]', '|')",
    "('ab'):gsub('%f[^a]', '|')",
    "('\\1x'):find('%f[\\1-\\127]')",
    "('\\0x'):find('%f[%z]')",
    "('\\0x'):find('%f[^%z]')",
    /* back references */
    "([[say \"hi\" and 'yo']]):match('([\"\\'])(.-)%1')",
    "('abcabc'):match('(abc)%1')",
    "('abab'):find('(a)(b)%1%2')",
    "('abc'):match('%1')",
    "('abc'):match('(a)%2')",
    "('aa'):match('(a%1)')",
    "('abc'):match('%0')",
    "('11'):match('()%1')",
    "('xxxyy'):gsub('(x)%1', 'Y')",
    "('xy'):match('(x)%1')",
    /* lazy errors: a bad tail is only an error once the matcher gets there */
    "('abc'):match('%')",
    "('abc'):match('a%')",
    "('bcd'):match('a%')",
    "('abc'):find('[a-')",
    "('bcd'):match('a%b')",
    "('bcd'):match('a(')",
    /* gmatch */
    "G('hello world from Lua', '%a+')",
    "G('k1=v1, k2=v2', '(%w+)=(%w+)')",
    "G('abc', '')",
    "G('abc', '()')",
    "G('a,b,,c', '([^,]*)')",
    "G('hello', 'l*')",
    "G('hello world', '%a+', 3)",
    "G('hello world', '%a+', -5)",
    "G('hello', '.', 10)",
    "G('hello', '.', 6)",
    "G('hello', '.', 0)",
    "G('abc', '^a')",
    "G('a^a', '^a')",
    "G('abc', '(a')",
    "G('abc', '%')",
    "G('aaa', 'a-')",
    "G('abcd', '(.)(.)')",
    "G('one two', '()%a+()')",
    "G(nil, 'a')",
    "G('aXbXc', '%f[%u]')",
    /* gsub */
    "('hello world'):gsub('o', '0')",
    "('hello world'):gsub('o', '0', 1)",
    "('hello world'):gsub('o', '0', 0)",
    "('hello world'):gsub('o', '0', -1)",
    "('hello world'):gsub('(%w+)', '<%1>')",
    "('hello world'):gsub('%w+', '%0 %0', 1)",
    "('hello world'):gsub('(%w+) (%w+)', '%2 %1')",
    "('abc'):gsub('%w', '%%')",
    "('abc'):gsub('%w', '%%%0')",
    "('$name is $age'):gsub('%$(%w+)', {name = 'Lua', age = 30})",
    "('$name $x'):gsub('%$(%w+)', {name = 'Lua'})",
    "('abc'):gsub('%w', {a = false, b = 'B'})",
    "('abc'):gsub('%w', function(c) return c:upper() .. '.' end)",
    "('abc'):gsub('%w', function(c) end)",
    "('abc'):gsub('(%w)()', function(c, p) return c .. p end)",
    "('abc'):gsub('%w', function(c) return 1.5 end)",
    "('abc'):gsub('%w', function(c) error('boom') end)",
    "('abc'):gsub('.-', '-')",
    "('abc'):gsub('b*', '-')",
    "('hello'):gsub('l+', function(x) return #x end)",
    "string.gsub(12345, 3, 9)",
    "string.gsub('abc', 'b', 7)",
    "string.gsub('abc', 'b', 7.5)",
    "('a.b.c'):gsub('%.', '%%')",
    "('abc'):gsub('', '', 2)",
    "string.gsub('abc', '%w', 'x', 2.0)",
    "string.gsub('abc', '%w', 'x', 2.5)",
    "string.gsub('hello', '', 'x', 100)",
    "('abc'):gsub('()b', '%1')",
    "('abc'):gsub('(b)', '%0%1%0')",
    "('a b'):gsub('(%w)', '%1%1', nil)",
    "('abc'):gsub('b', '%\\0')",
    "('x'):gsub('x', 'a%%b%%')",
    "('abc'):gsub('()', {[1] = 'one', [4] = 'four'})",
    "('abc'):gsub('%w', setmetatable({}, {__index = function(t, k) return k:upper() end}))",
    "('abc'):gsub('a', '%')",
    "('abc'):gsub('a', 'x%')",
    "('abc'):gsub('a', '%x')",
    "('abc'):gsub('a', '%2')",
    "('abc'):gsub('(a)', '%2')",
    "('abc'):gsub('(a)', '%1%1')",
    "('abc'):gsub('a', true)",
    "('abc'):gsub('a')",
    "('abc'):gsub('a', {a = true})",
    "('abc'):gsub('a', function() return {} end)",
    "('abc'):gsub('a', 'x', 'y')",
    "('abc'):gsub('(a', 'x')",
    "('abc'):gsub('(a', '%1')",
    "('abc'):gsub('(a', {})",
    "('abc'):gsub('(a', function(...) return select('#', ...) end)",
    "('abc'):gsub('x', function() error('never') end)",
    "('hello world'):gsub('o', {o = 1.25})",
    "('abc'):gsub('', {})",
    "('abc'):gsub('%w', '%1')",
    "('a,b'):gsub(',', '%%1')",
    /* depth: the same "pattern too complex" at the same depth as stock */
    "string.rep('a', 300):match(string.rep('a?', 300))",
    "string.rep('a', 150):match(string.rep('a?', 150))",
    "string.rep('a', 197):match(string.rep('a?', 197))",
    "string.rep('a', 198):match(string.rep('a?', 198))",
    "string.rep('a', 199):match(string.rep('a?', 199))",
    "string.rep('a', 200):match(string.rep('a?', 200))",
    "string.rep('a', 201):match(string.rep('a?', 201))",
    "string.rep('a', 10):match(string.rep('a*', 250))",
    "string.rep('a', 10):match(string.rep('a*', 199))",
    "string.rep('a', 300):match(string.rep('a-', 150) .. '$')",
    "string.rep('a', 50):match(string.rep('(a)a?', 30))",
    /* rep */
    "string.rep('ab', 3)",
    "string.rep('ab', 3, ',')",
    "string.rep('ab', 0)",
    "string.rep('ab', -1)",
    "string.rep('', 5)",
    "string.rep('', 5, '')",
    "string.rep('', 3, 'x')",
    "string.rep('x', 1, ',')",
    "string.rep('ab', 1)",
    "('x'):rep(5)",
    "string.rep(1, 3)",
    "string.rep('a', 2, 3)",
    "string.rep('ab', 3.0)",
    "string.rep()",
    "string.rep('x')",
    "string.rep('x', 2.5)",
    "string.rep('x', 'y')",
    "string.rep('abc', 7, '--')",
    "string.rep('abc', 100000, ';')",
    "string.rep('abc', 100001)",
    /* match with init */
    "('hello'):match('l', 4)",
    "('hello'):match('l', -1)",
    "('hello'):match('h', 2)",
    "('hello'):match('^l', 3)",
    "('hello'):match('', 100)",
    "('hello'):match('()', 6)",
    "('hello'):match('()', -100)",
    "('hello'):match('.', math.mininteger)",
    "('hello'):find('.', math.maxinteger)",
    "('hello'):match('(l)(l)', 2)",
};

TEST(corpus_matches_stock_lua)
{
    runner stock, ours;
    char a[8192], b[8192];
    size_t i, n = sizeof CORPUS / sizeof CORPUS[0];
    int bad = 0;
    CHECK(n >= 150);
    CHECK_INT(runner_open(&stock, 0), 0);
    if (runner_open(&ours, 1) != 0) {
        T_FAIL("sandbox: %s", ours.err);
        runner_close(&stock);
        return;
    }
    for (i = 0; i < n; i++) {
        run_expr(&stock, CORPUS[i], a, sizeof a);
        run_expr(&ours, CORPUS[i], b, sizeof b);
        if (strcmp(a, b) != 0) {
            T_FAIL("%s\n  stock: %.300s\n  ours:  %.300s", CORPUS[i], a, b);
            bad++;
        }
    }
    runner_close(&stock);
    runner_close(&ours);
    CHECK_INT(bad, 0);
}

/* ---- generated cases ----------------------------------------------------- */

static uint32_t rng_state;

static uint32_t rng(void)
{
    /* xorshift32: the same cases on every run. */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static const char *pick(const char *const *list, size_t n)
{
    return list[rng() % n];
}

#define PICK(list) pick(list, sizeof list / sizeof list[0])

static void gen_subject(char *out, size_t cap)
{
    static const char alpha[] = "aabbc()%.- x";
    size_t i, n = rng() % 13;
    if (n >= cap)
        n = cap - 1;
    for (i = 0; i < n; i++)
        out[i] = alpha[rng() % (sizeof alpha - 1)];
    out[n] = '\0';
}

static void gen_pattern(char *out, size_t cap)
{
    static const char *const tok[] = {
        "a", "b", "c", ".", "%a", "%d", "%s", "%w", "%p", "%A", "[ab]", "[^a]", "[a-c]",
        "[%a]", "[", "]", "(", ")", "()", "%b()", "%f[a]", "%f[%w]", "%1", "%2", "^",
        "$", "*", "+", "-", "?", "%%", "%.", "%", "x", "a*", "b+", ".-", "(a)", "%(",
    };
    size_t i, n = 1 + rng() % 6;
    out[0] = '\0';
    for (i = 0; i < n; i++) {
        const char *t = PICK(tok);
        if (strlen(out) + strlen(t) + 1 > cap)
            break;
        strcat(out, t);
    }
}

/* Push arguments a and b of an op: an integer, a string, a boolean or nil. */
static void push_arg(lua_State *L, const char *spec)
{
    if (spec == NULL)
        lua_pushnil(L);
    else if (strcmp(spec, "true") == 0)
        lua_pushboolean(L, 1);
    else if (spec[0] == '#')
        lua_pushinteger(L, strtoll(spec + 1, NULL, 10));
    else
        lua_pushstring(L, spec);
}

static void run_op(runner *r, const char *op, const char *s, const char *p, const char *x,
                   const char *y, char *out, size_t outlen)
{
    runner_fn(r, "op");
    lua_pushstring(r->L, op);
    lua_pushstring(r->L, s);
    lua_pushstring(r->L, p);
    push_arg(r->L, x);
    push_arg(r->L, y);
    runner_result(r, 5, out, outlen);
}

TEST(generated_cases_match_stock_lua)
{
    static const char *const inits[] = {NULL, "#1", "#2", "#0", "#-1", "#-3", "#5", "#14", "#-20"};
    static const char *const repls[] = {"%0x", "<%1>", "%%", "%2", "", "%", "-", "%1%0", "#7"};
    static const char *const maxn[] = {NULL, NULL, "#0", "#1", "#2", "#-1"};
    static const char *const ops[] = {"find", "find", "match", "gmatch", "gsub"};
    runner stock, ours;
    char s[32], p[64], a[4096], b[4096];
    int i, bad = 0, errors = 0;
    rng_state = 0x5eed1234u;
    CHECK_INT(runner_open(&stock, 0), 0);
    if (runner_open(&ours, 1) != 0) {
        T_FAIL("sandbox: %s", ours.err);
        runner_close(&stock);
        return;
    }
    for (i = 0; i < 4000 && bad < 20; i++) {
        const char *op = PICK(ops), *x = NULL, *y = NULL;
        gen_subject(s, sizeof s);
        gen_pattern(p, sizeof p);
        if (strcmp(op, "gsub") == 0) {
            x = PICK(repls);
            y = PICK(maxn);
        } else {
            x = PICK(inits);
            if (strcmp(op, "find") == 0 && rng() % 4 == 0)
                y = "true";
        }
        run_op(&stock, op, s, p, x, y, a, sizeof a);
        run_op(&ours, op, s, p, x, y, b, sizeof b);
        if (strncmp(a, "error: ", 7) == 0)
            errors++;
        if (strcmp(a, b) != 0) {
            T_FAIL("%s(%s, %s, %s, %s)\n  stock: %s\n  ours:  %s", op, s, p, x ? x : "nil",
                   y ? y : "nil", a, b);
            bad++;
        }
    }
    runner_close(&stock);
    runner_close(&ours);
    CHECK_INT(bad, 0);
    /* The generator reaches the error paths too, not only matches. */
    CHECK(errors > 200);
}

/* ---- bounds -------------------------------------------------------------- */

/* Run src in b: the sl_lbox_call result, err filled on failure and the
 * first result (as a string) in out on success. */
static int box_run(sl_lbox *b, const char *src, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    lua_State *L = sl_lbox_state(b);
    int rc;
    err[0] = out[0] = '\0';
    if (sl_lbox_compile(b, src, strlen(src), "bounds.lua", err, errlen) != 0)
        return -1;
    rc = sl_lbox_call(b, 0, 1, err, errlen);
    if (rc == SL_LBOX_OK) {
        const char *v = lua_tostring(L, -1);
        snprintf(out, outlen, "%s", v ? v : "(nil)");
        lua_pop(L, 1);
    }
    return rc;
}

/* The state answers a normal call after a failure. */
static int still_works(sl_lbox *b)
{
    char out[64], err[256];
    int rc = box_run(b, "local i, j = ('abcabc'):find('c', 4) return i .. ',' .. j", out,
                     sizeof out, err, sizeof err);
    return rc == SL_LBOX_OK && strcmp(out, "6,6") == 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t ls = strlen(s), lt = strlen(tail);
    return ls >= lt && strcmp(s + ls - lt, tail) == 0;
}

TEST(backtracking_bomb_spends_the_budget_quickly)
{
    sl_lbox *b = new_box(10000000, (size_t)1 << 20);
    char out[64], err[256];
    uint64_t t0;
    int rc;
    CHECK(b != NULL);
    t0 = now_ns();
    rc = box_run(b, "return string.rep('a', 1e5):find('.-.-.-.-b')", out, sizeof out, err,
                 sizeof err);
    CHECK_INT(rc, SL_LBOX_INSTRUCTIONS);
    CHECK(now_ns() - t0 < 1000000000u);
    CHECK_STR(err, "bounds.lua:1: instruction budget exceeded");
    CHECK(still_works(b));
    /* A pcall in the script does not swallow the spent budget. */
    t0 = now_ns();
    rc = box_run(b,
                 "local s = string.rep('a', 1e5)\n"
                 "local ok = pcall(string.match, s, '(.-)(.-)(.-)(.-)b')\n"
                 "return 'survived ' .. tostring(ok)",
                 out, sizeof out, err, sizeof err);
    CHECK_INT(rc, SL_LBOX_INSTRUCTIONS);
    CHECK(now_ns() - t0 < 1000000000u);
    CHECK(still_works(b));
    /* gmatch and gsub are charged the same way. */
    rc = box_run(b, "for x in string.rep('a', 1e5):gmatch('.-.-.-b') do end return 'done'", out,
                 sizeof out, err, sizeof err);
    CHECK_INT(rc, SL_LBOX_INSTRUCTIONS);
    rc = box_run(b, "return (string.rep('(', 1e5):gsub('%b()', ''))", out, sizeof out, err,
                 sizeof err);
    CHECK_INT(rc, SL_LBOX_INSTRUCTIONS);
    CHECK(still_works(b));
    sl_lbox_free(b);
}

TEST(plain_find_is_charged_per_byte)
{
    /* 10^5 scans of a 1 MB subject: a budget of 10^6 runs out early. */
    sl_lbox *b = new_box(1000000, (size_t)4 << 20);
    char out[64], err[256];
    uint64_t t0;
    int rc;
    CHECK(b != NULL);
    t0 = now_ns();
    rc = box_run(b,
                 "local s = string.rep('x', 1 << 20)\n"
                 "for i = 1, 1e5 do s:find('y', 1, true) end return 'done'",
                 out, sizeof out, err, sizeof err);
    CHECK_INT(rc, SL_LBOX_INSTRUCTIONS);
    CHECK(now_ns() - t0 < 1000000000u);
    CHECK(still_works(b));
    sl_lbox_free(b);
}

TEST(rep_is_charged_per_byte)
{
    /* 10^5 strings of 1 MB: the copying, not the few instructions of the
     * loop, spends a budget of 10^6 at once. */
    sl_lbox *b = new_box(1000000, (size_t)1 << 20);
    char out[64], err[256];
    uint64_t t0;
    CHECK(b != NULL);
    t0 = now_ns();
    CHECK_INT(box_run(b, "for i = 1, 1e5 do local s = string.rep('x', 1 << 20) end return 'done'",
                      out, sizeof out, err, sizeof err),
              SL_LBOX_INSTRUCTIONS);
    CHECK(now_ns() - t0 < 1000000000u);
    CHECK(still_works(b));
    sl_lbox_free(b);
}

TEST(rep_is_capped_at_max_string)
{
    sl_lbox *b = new_box(100000000, (size_t)1 << 20);
    char out[64], err[256];
    CHECK(b != NULL);
    CHECK_INT(box_run(b, "return string.rep('x', 1e9)", out, sizeof out, err, sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    CHECK(still_works(b));
    CHECK_INT(box_run(b, "return string.rep('x', math.maxinteger, 'yy')", out, sizeof out, err,
                      sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    /* Exactly max_string is allowed, one byte more is not. */
    CHECK_INT(box_run(b, "return #string.rep('ab', 1 << 19)", out, sizeof out, err, sizeof err),
              SL_LBOX_OK);
    CHECK_STR(out, "1048576");
    CHECK_INT(box_run(b, "return #string.rep('ab', 1 << 19, 'x')", out, sizeof out, err,
                      sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    CHECK_INT(box_run(b, "return #string.rep('ab', 349525, 'x')", out, sizeof out, err,
                      sizeof err),
              SL_LBOX_OK);
    CHECK_STR(out, "1048574");
    /* Empty pieces: stock Lua would loop 2^62 times doing nothing. */
    CHECK_INT(box_run(b, "return '[' .. string.rep('', 1 << 62) .. ']'", out, sizeof out, err,
                      sizeof err),
              SL_LBOX_OK);
    CHECK_STR(out, "[]");
    CHECK(still_works(b));
    sl_lbox_free(b);
}

TEST(gsub_growth_is_capped_at_max_string)
{
    sl_lbox *b = new_box(100000000, (size_t)1 << 20);
    char out[64], err[256];
    CHECK(b != NULL);
    /* Doubling: 2^20 bytes is allowed, the next round is not. */
    CHECK_INT(box_run(b,
                      "local s, n = 'x', 0\n"
                      "for i = 1, 40 do s = s:gsub('x', 'xx') n = i end\n"
                      "return n",
                      out, sizeof out, err, sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    CHECK_INT(box_run(b,
                      "local s = 'x' for i = 1, 20 do s = s:gsub('x', 'xx') end return #s",
                      out, sizeof out, err, sizeof err),
              SL_LBOX_OK);
    CHECK_STR(out, "1048576");
    /* One call: each replacement small, the sum too large; with a
     * function, with a table and with %0 in the replacement. */
    CHECK_INT(box_run(b, "return (string.rep('x', 1000):gsub('x', string.rep('y', 2000)))", out,
                      sizeof out, err, sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    CHECK_INT(box_run(b,
                      "local big = string.rep('y', 5000)\n"
                      "return (string.rep('x', 1000):gsub('x', function() return big end))",
                      out, sizeof out, err, sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    CHECK_INT(box_run(b,
                      "return (string.rep('x', 1000):gsub('x', {x = string.rep('y', 5000)}))",
                      out, sizeof out, err, sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    CHECK_INT(box_run(b, "return (string.rep('x', 600000):gsub('x+', '%0%0'))", out, sizeof out,
                      err, sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    /* Shrinking a subject is fine however long the subject. */
    CHECK_INT(box_run(b, "return #(string.rep('xy', 1 << 19):gsub('y', ''))", out, sizeof out,
                      err, sizeof err),
              SL_LBOX_OK);
    CHECK_STR(out, "524288");
    /* The limit is exact. */
    CHECK_INT(box_run(b, "return #string.rep('x', (1 << 20) - 1):gsub('$', 'y')", out, sizeof out,
                      err, sizeof err),
              SL_LBOX_OK);
    CHECK_STR(out, "1048576");
    CHECK_INT(box_run(b, "return #string.rep('x', 1 << 20):gsub('$', 'y')", out, sizeof out, err,
                      sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "resulting string too large"));
    CHECK(still_works(b));
    sl_lbox_free(b);
}

TEST(deep_pattern_is_too_complex)
{
    sl_lbox *b = new_box(100000000, (size_t)1 << 20);
    char out[64], err[256];
    CHECK(b != NULL);
    CHECK_INT(box_run(b, "return string.rep('a', 1000):match(string.rep('a?', 1000))", out,
                      sizeof out, err, sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "pattern too complex"));
    CHECK(still_works(b));
    CHECK_INT(box_run(b, "return string.rep('a', 500):find(string.rep('a-', 250) .. 'b')", out,
                      sizeof out, err, sizeof err),
              SL_LBOX_ERROR);
    CHECK(ends_with(err, "pattern too complex"));
    CHECK_INT(box_run(b, "return #string.rep('a', 150):match(string.rep('a?', 150))", out,
                      sizeof out, err, sizeof err),
              SL_LBOX_OK);
    CHECK_STR(out, "150");
    CHECK(still_works(b));
    sl_lbox_free(b);
}

TEST(gmatch_iterator_outlives_its_call)
{
    /* The iterator keeps subject and pattern alive across calls and a
     * full collection, and can run in another coroutine. */
    sl_lbox *b = new_box(100000000, (size_t)1 << 20);
    char out[256], err[256];
    CHECK(b != NULL);
    CHECK_INT(box_run(b, "it = string.gmatch(('k1=v1;k2=v2;'):rep(2), '(%w+)=(%w+)') return ''",
                      out, sizeof out, err, sizeof err),
              SL_LBOX_OK);
    lua_gc(sl_lbox_state(b), LUA_GCCOLLECT);
    CHECK_INT(box_run(b,
                      "local out = {}\n"
                      "local co = coroutine.wrap(function()\n"
                      "  for k, v in it do out[#out + 1] = k .. v coroutine.yield() end\n"
                      "end)\n"
                      "for i = 1, 4 do co() end\n"
                      "return table.concat(out, ',') .. '|' .. tostring((it()))",
                      out, sizeof out, err, sizeof err),
              SL_LBOX_OK);
    CHECK_STR(out, "k1v1,k2v2,k1v1,k2v2|nil");
    sl_lbox_free(b);
}
