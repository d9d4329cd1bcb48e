/* lpattern.c — Lua 5.4 patterns (manual §6.4.1) for string.find, match,
 * gmatch and gsub, plus string.rep, with their work charged to the sandbox. */
#include "lpattern.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "sandbox.h"

#define PAT_ESC '%'
/* The stock library's LUA_MAXCAPTURES and MAXCCALLS: the same limits give
 * the same "too many captures" and "pattern too complex" errors. */
#define PAT_MAXCAPTURES 32
#define PAT_MAXDEPTH 200
/* Steps are charged in batches so that the budget costs one call per
 * PAT_BATCH steps, not one per step. */
#define PAT_BATCH 256
/* A unit of budget is about one VM instruction: one matcher step, or this
 * many bytes scanned or copied by memchr/memcmp/memcpy. */
#define PAT_BYTES_PER_UNIT 16
/* Plain find charges its near-misses in batches of this many units. */
#define PAT_PLAIN_BATCH 4096

enum { CAP_OPEN = -1, CAP_POSITION = -2 };

typedef struct pat_cap {
    const char *at;
    ptrdiff_t len; /* or CAP_OPEN / CAP_POSITION */
} pat_cap;

typedef struct pat_state {
    lua_State *L;
    const char *src, *src_end; /* the whole subject */
    const char *pat_end;
    int depth;                 /* nested matches left before "too complex" */
    int ncap;
    uint64_t steps;            /* not yet charged */
    pat_cap cap[PAT_MAXCAPTURES];
} pat_state;

/* ---- the budget ---------------------------------------------------------- */

static void pat_settle(pat_state *m)
{
    uint64_t n = m->steps;
    /* Zeroed first: the charge may raise, and a gmatch state lives on. */
    m->steps = 0;
    if (n > 0)
        sl_lbox_charge(m->L, n);
}

static inline void pat_step(pat_state *m, uint64_t n)
{
    m->steps += n;
    if (m->steps >= PAT_BATCH)
        pat_settle(m);
}

static uint64_t bytes_cost(size_t n)
{
    return (uint64_t)(n / PAT_BYTES_PER_UNIT);
}

/* ---- single-character classes -------------------------------------------- */

/* Does c belong to %cl? Letters outside the list stand for themselves.
 * (cl | 0x20 lowercases exactly the ASCII letters of the list.) */
static inline int class_has(int c, int cl)
{
    int r;
    switch (cl | 0x20) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break; /* deprecated in 5.4 but still there */
    default: return cl == c;
    }
    if (cl <= 'Z')
        return !r;
    return r != 0;
}

/* Is c in the set that opens at p ('[') and closes at close (its ']')?
 * The first character after "[" or "[^" is a member even when it is ']'. */
static int set_has(int c, const char *p, const char *close)
{
    int in = 1;
    p++;
    if (*p == '^') {
        in = 0;
        p++;
    }
    for (; p < close; p++) {
        if (*p == PAT_ESC) {
            p++;
            if (class_has(c, (unsigned char)*p))
                return in;
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return in;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return in;
        }
    }
    return !in;
}

/* Past the ']' of the set that opens at p. */
static const char *set_end(pat_state *m, const char *p)
{
    const char *q = p + 1;
    if (q < m->pat_end && *q == '^')
        q++;
    do {
        if (q >= m->pat_end)
            luaL_error(m->L, "malformed pattern (missing ']')");
        if (*q++ == PAT_ESC && q < m->pat_end)
            q++;
    } while (q >= m->pat_end || *q != ']');
    pat_step(m, bytes_cost((size_t)(q - p)));
    return q + 1;
}

/* Where the class item at p ends (its quantifier, if any, starts there). */
static inline const char *item_end(pat_state *m, const char *p)
{
    if (*p == '[')
        return set_end(m, p);
    if (*p != PAT_ESC)
        return p + 1;
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (ends with '%%')");
    return p + 2;
}

/* Does the subject character at s match the item p..ep? */
static inline int single(pat_state *m, const char *s, const char *p, const char *ep)
{
    int c;
    pat_step(m, 1);
    if (s >= m->src_end)
        return 0;
    c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case PAT_ESC:
        return class_has(c, (unsigned char)p[1]);
    case '[':
        pat_step(m, bytes_cost((size_t)(ep - p)));
        return set_has(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- the matcher --------------------------------------------------------- */

static const char *do_match(pat_state *m, const char *s, const char *p);

/* %bxy at s: the end of the balanced run, or NULL. */
static const char *balance(pat_state *m, const char *s, const char *p)
{
    const char *q = s;
    size_t open = 1;
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != p[0])
        return NULL;
    while (++q < m->src_end) {
        if (*q == p[1]) {
            if (--open == 0) {
                pat_step(m, bytes_cost((size_t)(q - s)));
                return q + 1;
            }
        } else if (*q == p[0]) {
            open++;
        }
    }
    pat_step(m, bytes_cost((size_t)(q - s)));
    return NULL;
}

/* %1-%9 (and the invalid %0) in a pattern: the text of capture k again. */
static const char *backref(pat_state *m, const char *s, int k)
{
    int i = k - '1';
    ptrdiff_t len;
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
    len = m->cap[i].len;
    /* A position capture never matches (Lua compares its length as a
     * huge size_t). */
    if (len < 0 || m->src_end - s < len)
        return NULL;
    pat_step(m, bytes_cost((size_t)len));
    if (memcmp(m->cap[i].at, s, (size_t)len) != 0)
        return NULL;
    return s + len;
}

static const char *open_capture(pat_state *m, const char *s, const char *p, ptrdiff_t what)
{
    const char *r;
    if (m->ncap >= PAT_MAXCAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = what;
    m->ncap++;
    r = do_match(m, s, p);
    if (r == NULL)
        m->ncap--;
    return r;
}

static const char *close_capture(pat_state *m, const char *s, const char *p)
{
    const char *r;
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    r = do_match(m, s, p);
    if (r == NULL)
        m->cap[i].len = CAP_OPEN;
    return r;
}

/* item* and item+ (after its first match): the longest run that lets the
 * rest of the pattern match. */
static const char *greedy(pat_state *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (single(m, s + n, p, ep))
        n++;
    for (; n >= 0; n--) {
        const char *r = do_match(m, s + n, ep + 1);
        if (r != NULL)
            return r;
    }
    return NULL;
}

/* item-: the shortest run that lets the rest match. */
static const char *lazy(pat_state *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = do_match(m, s, ep + 1);
        if (r != NULL)
            return r;
        if (!single(m, s, p, ep))
            return NULL;
        s++;
    }
}

/* %f[set] at s: the set does not hold the previous character (NUL at the
 * start) and holds this one (NUL at the end). */
static int frontier(pat_state *m, const char *s, const char *p, const char *ep)
{
    int prev = s == m->src ? 0 : (unsigned char)s[-1];
    int cur = s < m->src_end ? (unsigned char)*s : 0;
    pat_step(m, 1 + bytes_cost((size_t)(ep - p)));
    return !set_has(prev, p, ep - 1) && set_has(cur, p, ep - 1);
}

/* Match pattern p at s: the end of the match or NULL. A plain tail is
 * matched in the loop; captures and quantifiers that must try alternatives
 * recurse, at most PAT_MAXDEPTH deep, as in the stock library. */
static const char *do_match(pat_state *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    for (;;) {
        const char *ep;
        char q;
        pat_step(m, 1);
        if (p == m->pat_end)
            break;
        switch (*p) {
        case '(':
            if (p + 1 < m->pat_end && p[1] == ')')
                s = open_capture(m, s, p + 2, CAP_POSITION);
            else
                s = open_capture(m, s, p + 1, CAP_OPEN);
            goto done;
        case ')':
            s = close_capture(m, s, p + 1);
            goto done;
        case '$':
            if (p + 1 == m->pat_end) {
                if (s != m->src_end)
                    s = NULL;
                goto done;
            }
            break; /* a '$' inside the pattern is a literal */
        case PAT_ESC:
            if (p + 1 == m->pat_end)
                break; /* item_end reports it */
            if (p[1] == 'b') {
                s = balance(m, s, p + 2);
                if (s == NULL)
                    goto done;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (p == m->pat_end || *p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                ep = item_end(m, p);
                if (!frontier(m, s, p, ep)) {
                    s = NULL;
                    goto done;
                }
                p = ep;
                continue;
            }
            if (p[1] >= '0' && p[1] <= '9') {
                s = backref(m, s, p[1]);
                if (s == NULL)
                    goto done;
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }
        /* A single-character class and its optional quantifier. */
        ep = item_end(m, p);
        q = ep < m->pat_end ? *ep : '\0';
        if (!single(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1;
                continue;
            }
            s = NULL;
            goto done;
        }
        switch (q) {
        case '?': {
            const char *r = do_match(m, s + 1, ep + 1);
            if (r != NULL) {
                s = r;
                goto done;
            }
            p = ep + 1;
            continue;
        }
        case '+':
            s = greedy(m, s + 1, p, ep);
            goto done;
        case '*':
            s = greedy(m, s, p, ep);
            goto done;
        case '-':
            s = lazy(m, s, p, ep);
            goto done;
        default:
            s++;
            p = ep;
            continue;
        }
    }
done:
    m->depth++;
    return s;
}

/* ---- results ------------------------------------------------------------- */

static void pat_init(pat_state *m, lua_State *L, const char *s, size_t ls, const char *p,
                     size_t lp)
{
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->steps = 0;
    m->ncap = 0;
    m->depth = PAT_MAXDEPTH;
}

static void pat_reset(pat_state *m)
{
    m->ncap = 0;
    m->depth = PAT_MAXDEPTH;
}

/* Capture i: its text (or position) at *at, its length or CAP_POSITION.
 * Without captures, "capture 0" is the whole match s..e. */
static ptrdiff_t get_capture(pat_state *m, int i, const char *s, const char *e,
                             const char **at)
{
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        *at = s;
        return e - s;
    }
    if (m->cap[i].len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    *at = m->cap[i].at;
    return m->cap[i].len;
}

static void push_capture(pat_state *m, int i, const char *s, const char *e)
{
    const char *at;
    ptrdiff_t len = get_capture(m, i, s, e, &at);
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (lua_Integer)(at - m->src) + 1);
    else
        lua_pushlstring(m->L, at, (size_t)len);
}

/* Push every capture, or the whole match s..e when there are none and s is
 * not NULL (find pushes its positions instead). */
static int push_captures(pat_state *m, const char *s, const char *e)
{
    int i, n = (m->ncap == 0 && s != NULL) ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* Lua 5.4's start index: negative counts from the end, 0 and anything
 * before the start mean 1. One-based; may be past the end. */
static size_t start_index(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return (size_t)((lua_Integer)len + pos + 1);
}

/* ---- find and match ------------------------------------------------------ */

/* Its cost is charged by the caller along with the search. */
static int has_specials(const char *p, size_t lp)
{
    size_t i;
    for (i = 0; i < lp; i++) {
        switch (p[i]) {
        case '^': case '$': case '*': case '+': case '?':
        case '.': case '(': case '[': case '%': case '-':
            return 1;
        default:
            break;
        }
    }
    return 0;
}

/* The first byte with memchr, the rest with memcmp: fast on the short
 * subjects policies see. A subject of repeated near-misses makes each
 * candidate cost a compare of lp bytes, so each is charged that. */
static const char *plain_find(lua_State *L, const char *s, size_t ls, const char *p, size_t lp,
                              uint64_t cost)
{
    const char *at = s, *last, *c;
    if (lp == 0 || ls < lp) {
        sl_lbox_charge(L, cost);
        return lp == 0 ? s : NULL;
    }
    last = s + (ls - lp);
    while (at <= last) {
        size_t span = (size_t)(last - at) + 1;
        c = memchr(at, (unsigned char)p[0], span);
        if (c == NULL) {
            cost += 1 + bytes_cost(span);
            break;
        }
        cost += 1 + bytes_cost((size_t)(c - at) + lp);
        if (memcmp(c + 1, p + 1, lp - 1) == 0) {
            sl_lbox_charge(L, cost);
            return c;
        }
        if (cost >= PAT_PLAIN_BATCH) {
            sl_lbox_charge(L, cost);
            cost = 0;
        }
        at = c + 1;
    }
    sl_lbox_charge(L, cost);
    return NULL;
}

/* The byte the pattern's first item needs when it is one literal that must
 * be there (not optional, not a class): an unanchored scan then jumps to its
 * next occurrence instead of starting the matcher at every position. The
 * positions skipped would fail on that first item, before the matcher could
 * see (and complain about) anything later in the pattern. -1 otherwise. */
static int first_literal(const char *p, size_t lp)
{
    size_t n = 1;
    int c = (unsigned char)p[0];
    if (lp == 0 || strchr("^$*+?.([])-", c))
        return -1;
    if (c == '%') {
        if (lp < 2 || isalnum((unsigned char)p[1]))
            return -1; /* a class, a back reference, %b or %f */
        c = (unsigned char)p[1];
        n = 2;
    }
    if (n < lp && (p[n] == '*' || p[n] == '?' || p[n] == '-'))
        return -1;
    return c;
}

static int find_aux(lua_State *L, int find)
{
    size_t ls, lp, init;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *s1;
    pat_state m;
    int anchor;
    uint64_t cost;
    init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    cost = 1 + bytes_cost(lp);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *r = plain_find(L, s + init, ls - init, p, lp, cost);
        if (r == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(r - s) + 1);
        lua_pushinteger(L, (lua_Integer)(r - s) + (lua_Integer)lp);
        return 2;
    }
    anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    pat_init(&m, L, s, ls, p, lp);
    m.steps = cost;
    s1 = s + init;
    int lit = anchor ? -1 : first_literal(p, lp);
    for (;;) {
        const char *e;
        if (lit >= 0) {
            s1 = memchr(s1, lit, (size_t)(m.src_end - s1));
            if (!s1)
                break;
        }
        pat_reset(&m);
        e = do_match(&m, s1, p);
        if (e != NULL) {
            pat_settle(&m);
            if (!find)
                return push_captures(&m, s1, e);
            lua_pushinteger(L, (lua_Integer)(s1 - s) + 1);
            lua_pushinteger(L, (lua_Integer)(e - s));
            return push_captures(&m, NULL, NULL) + 2;
        }
        if (anchor || s1 == m.src_end)
            break;
        s1++;
    }
    pat_settle(&m);
    luaL_pushfail(L);
    return 1;
}

static int str_find(lua_State *L)
{
    return find_aux(L, 1);
}

static int str_match(lua_State *L)
{
    return find_aux(L, 0);
}

/* ---- gmatch -------------------------------------------------------------- */

/* The iterator's state, a userdata beside the subject and the pattern
 * (upvalues that keep the strings it points into alive). */
typedef struct gmatch_state {
    pat_state m;
    const char *pat;
    size_t at;                 /* next start offset; may be past the end */
    const char *last;          /* end of the previous match */
} gmatch_state;

static int gmatch_next(lua_State *L)
{
    gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    size_t ls = (size_t)(g->m.src_end - g->m.src);
    size_t i;
    g->m.L = L; /* the iterator may run in another coroutine */
    for (i = g->at; i <= ls; i++) {
        const char *e, *s = g->m.src + i;
        pat_reset(&g->m);
        e = do_match(&g->m, s, g->pat);
        /* An empty match where the last one ended is not a new match. */
        if (e != NULL && e != g->last) {
            g->at = (size_t)(e - g->m.src);
            g->last = e;
            pat_settle(&g->m);
            return push_captures(&g->m, s, e);
        }
    }
    pat_settle(&g->m);
    return 0;
}

static int str_gmatch(lua_State *L)
{
    size_t ls, lp, init;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    gmatch_state *g;
    init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2);
    g = lua_newuserdatauv(L, sizeof *g, 0);
    /* No anchor: gmatch takes a leading '^' literally, as Lua 5.4 does. */
    pat_init(&g->m, L, s, ls, p, lp);
    g->pat = p;
    g->at = init > ls ? ls + 1 : init;
    g->last = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* ---- gsub ---------------------------------------------------------------- */

/* The result is built lazily: subject text between replacements is copied
 * only when a replacement is made, so the buffer always holds a prefix of
 * the result and its size can be held to max_string as it grows. */
typedef struct gsub_state {
    pat_state m;
    luaL_Buffer b;
    const char *copied;        /* subject copied into b up to here */
    size_t room;               /* bytes the result may still grow */
} gsub_state;

#define GSUB_SLOT 5            /* stack slot holding a replacement value */

static void out_add(gsub_state *g, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (n > g->room)
        luaL_error(g->m.L, "resulting string too large");
    g->room -= n;
    pat_step(&g->m, bytes_cost(n));
    luaL_addlstring(&g->b, p, n);
}

/* Copy the subject up to s, where a replacement starts. */
static void out_catch_up(gsub_state *g, const char *s)
{
    out_add(g, g->copied, (size_t)(s - g->copied));
}

/* A replacement string: %0-%9 are captures (or the match), %% is '%'. */
static void add_string(gsub_state *g, const char *s, const char *e)
{
    lua_State *L = g->m.L;
    size_t l;
    const char *r = lua_tolstring(L, 3, &l), *pct;
    const char *end = r + l;
    while ((pct = memchr(r, PAT_ESC, (size_t)(end - r))) != NULL) {
        char k = pct + 1 < end ? pct[1] : '\0';
        out_add(g, r, (size_t)(pct - r));
        if (k == PAT_ESC) {
            out_add(g, pct + 1, 1);
        } else if (k == '0') {
            out_add(g, s, (size_t)(e - s));
        } else if (k >= '1' && k <= '9') {
            const char *at;
            ptrdiff_t len = get_capture(&g->m, k - '1', s, e, &at);
            if (len == CAP_POSITION) {
                char num[32];
                int n = snprintf(num, sizeof num, LUA_INTEGER_FMT,
                                 (LUA_INTEGER)(at - g->m.src) + 1);
                out_add(g, num, (size_t)n);
            } else {
                out_add(g, at, (size_t)len);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", PAT_ESC);
        }
        r = pct + 2;
    }
    out_add(g, r, (size_t)(end - r));
}

/* Replace the match s..e; 0 when the function or table said to keep it. */
static int add_value(gsub_state *g, const char *s, const char *e, int tr)
{
    lua_State *L = g->m.L;
    size_t l;
    const char *v;
    if (tr == LUA_TFUNCTION) {
        int n;
        pat_settle(&g->m);
        lua_pushvalue(L, 3);
        n = push_captures(&g->m, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_capture(&g->m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        out_catch_up(g, s);
        add_string(g, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        return 0; /* the match stays in the uncopied subject text */
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    /* Parked below the buffer's top, so the buffer may grow. */
    lua_replace(L, GSUB_SLOT);
    out_catch_up(g, s);
    v = lua_tolstring(L, GSUB_SLOT, &l);
    out_add(g, v, l);
    return 1;
}

static int str_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *s, *last = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    lua_Integer n = 0;
    int anchor, changed = 0;
    gsub_state g;
    luaL_argexpected(L,
                     tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                         tr == LUA_TTABLE,
                     3, "string/function/table");
    if (tr == LUA_TFUNCTION || tr == LUA_TTABLE)
        lua_settop(L, GSUB_SLOT);
    anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    pat_init(&g.m, L, src, ls, p, lp);
    g.copied = src;
    g.room = sl_lbox_max_string(L);
    luaL_buffinit(L, &g.b);
    s = src;
    while (n < max_n) {
        const char *e;
        pat_reset(&g.m);
        e = do_match(&g.m, s, p);
        if (e != NULL && e != last) {
            n++;
            if (add_value(&g, s, e, tr)) {
                changed = 1;
                g.copied = e;
            }
            s = last = e;
        } else if (s < g.m.src_end) {
            s++;
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (!changed) {
        pat_settle(&g.m);
        lua_pushvalue(L, 1);
    } else {
        out_catch_up(&g, g.m.src_end);
        pat_settle(&g.m);
        luaL_pushresult(&g.b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* ---- rep ----------------------------------------------------------------- */

static int str_rep(lua_State *L)
{
    size_t l, lsep, unit, total, max, filled;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    luaL_Buffer b;
    char *out;
    /* Without a check on empty pieces, rep("", 2^62) would loop for ages. */
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    max = sl_lbox_max_string(L);
    unit = l + lsep;
    /* total = l + (n - 1) * unit, checked without overflow. */
    if (unit < l || l > max || (lua_Unsigned)(n - 1) > (max - l) / unit)
        return luaL_error(L, "resulting string too large");
    total = l + (size_t)(n - 1) * unit;
    sl_lbox_charge(L, 1 + bytes_cost(total));
    out = luaL_buffinitsize(L, &b, total);
    /* (s sep) once, doubled up to n - 1 copies, then the last s. */
    filled = 0;
    if (n > 1) {
        size_t want = (size_t)(n - 1) * unit;
        memcpy(out, s, l);
        memcpy(out + l, sep, lsep);
        filled = unit;
        while (filled < want) {
            size_t c = want - filled < filled ? want - filled : filled;
            memcpy(out + filled, out, c);
            filled += c;
        }
    }
    memcpy(out + filled, s, l);
    luaL_pushresultsize(&b, total);
    return 1;
}

void sl_lpattern_install(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch},
        {"gsub", str_gsub}, {"rep", str_rep},     {NULL, NULL},
    };
    lua_pushvalue(L, idx);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
