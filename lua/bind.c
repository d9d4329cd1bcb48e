/* bind.c — what policy code sees: conn, stream, req and res handles (light userdata
 * that turn stale, never dangle), the `sluice` module and `shared`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "policy_int.h"

#define MT_CONN "sluice.conn"
#define MT_STREAM "sluice.stream"
#define MT_MSG "sluice.message"

/* Handles are light userdata that encode (generation, slot, class): a conn
 * or stream handle names a slot of p->slots, a req/res handle the running
 * call's message of its kind. A handle is valid while its slot holds an
 * object of the same generation; freeing the object bumps the generation,
 * so a kept handle turns stale and can never reach another object that
 * took the slot. Giving one out allocates nothing in the Lua state, and the
 * same object always gives the same value (== and table keys work). These
 * are the only light userdata policy code can reach, so the one metatable
 * of light userdata is theirs. */
#define H_CLASS_BITS 2
#define H_SLOT_BITS 20 /* handles alive at once per state */
#define H_SLOT_MAX ((uintptr_t)1 << H_SLOT_BITS)
#define H_GEN_SHIFT (H_CLASS_BITS + H_SLOT_BITS)

static const char *const class_names[SL_NCLASSES] = {MT_CONN, MT_STREAM, MT_MSG};

static sluice_policy *P(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void *h_value(uintptr_t gen, uintptr_t slot, int cls)
{
    return (void *)(gen << H_GEN_SHIFT | slot << H_CLASS_BITS | (uintptr_t)cls);
}

/* The object a handle value stands for, or NULL when it is stale. */
static void *h_object(sluice_policy *p, uintptr_t v)
{
    uintptr_t slot = (v >> H_CLASS_BITS) & (H_SLOT_MAX - 1), gen = v >> H_GEN_SHIFT;
    if ((v & 3) == SL_CLASS_MSG) {
        sl_msg_slot *ms = &p->msg[slot & 1];
        return ms->m && ms->gen == gen ? ms : NULL;
    }
    if (slot >= p->nslots || p->slots[slot].gen != gen)
        return NULL;
    return p->slots[slot].obj;
}

/* The object of the class-cls handle at i; a wrong argument or a stale
 * handle raises. */
static void *check_obj(lua_State *L, int i, int cls, const char *gone)
{
    if (lua_type(L, i) == LUA_TLIGHTUSERDATA) {
        uintptr_t v = (uintptr_t)lua_touserdata(L, i);
        if ((int)(v & 3) == cls) {
            void *o = h_object(P(L), v);
            if (!o)
                luaL_error(L, "%s", gone);
            return o;
        }
    }
    const char *got = lua_type(L, i) == LUA_TLIGHTUSERDATA
                          ? class_names[(uintptr_t)lua_touserdata(L, i) & 3]
                          : luaL_typename(L, i);
    luaL_argerror(L, i, lua_pushfstring(L, "%s expected, got %s", class_names[cls], got));
    return NULL;
}

static sluice_policy_conn *check_conn(lua_State *L, int i)
{
    return check_obj(L, i, SL_CLASS_CONN, "connection is gone");
}

static sluice_policy_stream *check_stream(lua_State *L, int i)
{
    return check_obj(L, i, SL_CLASS_STREAM, "stream is gone");
}

static sl_msg_slot *check_msg(lua_State *L)
{
    return check_obj(L, 1, SL_CLASS_MSG,
                     "request/response handles are valid only during their hook");
}

/* ---- handle life ------------------------------------------------------------ */

/* Pushed on L, the running thread (a coroutine's, maybe), not p->L. */
static void push_handle(sluice_policy *p, lua_State *L, int *ref, void *obj, int cls)
{
    if (*ref < 0) {
        uint32_t slot;
        if (p->free_slot) {
            slot = p->free_slot - 1;
            p->free_slot = p->slots[slot].next_free;
        } else {
            if (p->nslots == p->slots_cap) {
                size_t cap = p->slots_cap ? p->slots_cap * 2 : 64;
                sl_slot *n = cap <= H_SLOT_MAX ? realloc(p->slots, cap * sizeof(*n)) : NULL;
                if (!n)
                    luaL_error(L, "too many connections and streams for policy handles");
                p->slots = n;
                p->slots_cap = cap;
            }
            slot = (uint32_t)p->nslots++;
            p->slots[slot].gen = 1; /* never 0: a NULL light userdata is no handle */
        }
        p->slots[slot].obj = obj;
        *ref = (int)slot;
    }
    uintptr_t gen = p->slots[*ref].gen;
    lua_pushlightuserdata(L, h_value(gen, (uintptr_t)*ref, cls));
}

void sl_bind_push_conn(sluice_policy *p, lua_State *L, sluice_policy_conn *pc)
{
    push_handle(p, L, &pc->ref, pc, SL_CLASS_CONN);
}

void sl_bind_push_stream(sluice_policy *p, lua_State *L, sluice_policy_stream *ps)
{
    push_handle(p, L, &ps->ref, ps, SL_CLASS_STREAM);
}

void sl_bind_invalidate(sluice_policy *p, int *ref)
{
    if (*ref < 0)
        return;
    sl_slot *sl = &p->slots[*ref];
    sl->obj = NULL;
    /* Within the bits a handle has for it; wrapping to 0 skips to 1. */
    sl->gen = (sl->gen + 1) & (UINTPTR_MAX >> H_GEN_SHIFT);
    if (!sl->gen)
        sl->gen = 1;
    sl->next_free = p->free_slot;
    p->free_slot = (uint32_t)*ref + 1;
    *ref = LUA_NOREF;
}

void sl_bind_push_message(sluice_policy *p, lua_State *L, int which,
                          const sluice_policy_message *m)
{
    sl_msg_slot *ms = &p->msg[which];
    ms->gen = (ms->gen + 1) & (UINTPTR_MAX >> H_GEN_SHIFT);
    if (!ms->gen)
        ms->gen = 1;
    ms->m = m;
    ms->ps = p->cur_stream;
    lua_pushlightuserdata(L, h_value(ms->gen, (uintptr_t)which, SL_CLASS_MSG));
}

void sl_bind_clear_message(sluice_policy *p, int which)
{
    p->msg[which].m = NULL;
    p->msg[which].ps = NULL;
}

static void set_num(lua_State *L, const char *k, lua_Number v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

void sl_bind_push_stats(lua_State *L, const sluice_policy_conn_stats *st)
{
    lua_createtable(L, 0, 12);
    if (st->rtt_ns)
        set_num(L, "rtt", (lua_Number)st->rtt_ns / 1e9);
    set_int(L, "recv_rate", st->recv_rate);
    set_int(L, "send_rate", st->send_rate);
    set_int(L, "bytes_in", st->bytes_in);
    set_int(L, "bytes_out", st->bytes_out);
    set_int(L, "buffered_in", st->buffered_in);
    set_int(L, "buffered_out", st->buffered_out);
    set_int(L, "streams_open", st->streams_open);
    set_int(L, "streams_total", st->streams_total);
    set_num(L, "duration", (lua_Number)st->duration_ns / 1e9);
    if (st->close_reason) {
        lua_pushstring(L, st->close_reason);
        lua_setfield(L, -2, "reason");
    }
}

/* ---- argument helpers ----------------------------------------------------------- */

static uint32_t check_u32(lua_State *L, int i, const char *what, uint64_t lo, uint64_t hi)
{
    int isnum;
    lua_Integer v = lua_tointegerx(L, i, &isnum);
    if (!isnum || v < (lua_Integer)lo || (uint64_t)v > hi)
        luaL_error(L, "%s must be an integer in %I..%I", what, (lua_Integer)lo, (lua_Integer)hi);
    return (uint32_t)v;
}

static int check_bool(lua_State *L, int i, const char *what)
{
    if (lua_type(L, i) != LUA_TBOOLEAN)
        luaL_error(L, "%s must be a boolean, not a %s", what, luaL_typename(L, i));
    return lua_toboolean(L, i);
}

/* A field name: lowercase token characters (RFC 9110 §5.1, RFC 9113 §8.2.1). */
static const char *check_name(lua_State *L, int i, const char *what, size_t *len)
{
    if (i < 0 && lua_type(L, i) != LUA_TSTRING) /* a table key: no argument number */
        luaL_error(L, "%s: field names must be strings, not a %s (use { name = value })", what,
                   luaL_typename(L, i));
    const char *s = luaL_checklstring(L, i, len);
    if (*len == 0)
        luaL_error(L, "%s: empty field name", what);
    for (size_t k = 0; k < *len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)))
            luaL_error(L, "%s: invalid field name '%s' (lowercase token characters only)", what, s);
    }
    return s;
}

static const char *check_value(lua_State *L, int i, const char *what, size_t *len)
{
    if (i < 0 && lua_type(L, i) != LUA_TSTRING)
        luaL_error(L, "%s: field values must be strings, not a %s", what, luaL_typename(L, i));
    const char *s = luaL_checklstring(L, i, len);
    for (size_t k = 0; k < *len; k++)
        if (s[k] == '\r' || s[k] == '\n' || s[k] == 0)
            luaL_error(L, "%s: CR, LF or NUL in a field value", what);
    return s;
}

/* After on_connection the host's buffers are sized: stream windows stay
 * within what it said it can hold. */
static uint32_t check_window(lua_State *L, sluice_policy_conn *pc, uint32_t v, const char *what)
{
    if (!pc->opt && pc->window_limit && v > pc->window_limit)
        luaL_error(L, "%s: %d is above this connection's limit of %d bytes", what, (int)v,
                   (int)pc->window_limit);
    return v;
}

static sl_act *act(lua_State *L, sluice_policy *p, int kind, sluice_policy_stream *ps)
{
    if (!p->cur)
        luaL_error(L, "no hook is running");
    sl_act *a = sl_act_new(p, kind, ps);
    if (!a)
        luaL_error(L, "too many actions in one hook call");
    return a;
}

/* Room for n actions, so a binding that queues several queues all or none. */
static void reserve(lua_State *L, sluice_policy *p, size_t n)
{
    if (sl_act_reserve(p, n) != 0)
        luaL_error(L, "too many actions in one hook call");
}

/* A host op the engine was built without cannot be asked for. */
static void need_op(lua_State *L, int have, const char *what)
{
    if (!have)
        luaL_error(L, "%s: not available in this host", what);
}

static char *astr(lua_State *L, sluice_policy *p, const char *s, size_t len)
{
    char *d = sl_act_str(p, s, len);
    if (!d)
        luaL_error(L, "not enough memory");
    return d;
}

/* ---- conn ------------------------------------------------------------------------ */

/* The connection bindings check every field before they change anything:
 * in on_connection they work on a copy of the options committed at the
 * end, later they queue their actions last, so an error that the policy
 * catches with pcall leaves nothing half done. */

/* conn:settings{...}: our SETTINGS. In on_connection they are the session's
 * first SETTINGS; later, a new SETTINGS frame. */
static int conn_settings(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_conn *pc = check_conn(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    sluice_session_options o;
    if (pc->opt)
        o = *pc->opt;
    uint32_t pairs[12];
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        uint32_t id, v;
        if (strcmp(k, "header_table_size") == 0) {
            id = 1, v = check_u32(L, -1, "conn:settings: header_table_size", 0, 1u << 20);
        } else if (strcmp(k, "max_concurrent_streams") == 0) {
            id = 3, v = check_u32(L, -1, "conn:settings: max_concurrent_streams", 1, 100000);
        } else if (strcmp(k, "initial_window") == 0) {
            id = 4, v = check_window(L, pc, check_u32(L, -1, "conn:settings: initial_window", 0,
                                                      0x7fffffff), "conn:settings: initial_window");
        } else if (strcmp(k, "max_frame_size") == 0) {
            id = 5, v = check_u32(L, -1, "conn:settings: max_frame_size", 16384, 16777215);
        } else if (strcmp(k, "max_header_list_size") == 0) {
            id = 6, v = check_u32(L, -1, "conn:settings: max_header_list_size", 1024, 1u << 24);
        } else {
            return luaL_error(L, "conn:settings: unknown setting '%s'", k);
        }
        lua_pop(L, 1);
        if (pc->opt) {
            switch (id) {
            case 1: o.header_table_size = v; break;
            case 3: o.max_concurrent_streams = v; break;
            case 4: o.initial_window_size = v; break;
            case 5: o.max_frame_size = v; break;
            default: o.max_header_list_size = v; break;
            }
        } else if (n < 12) { /* five known keys: never more than ten values */
            pairs[n++] = id;
            pairs[n++] = v;
        }
    }
    if (pc->opt) {
        *pc->opt = o;
    } else if (n) {
        sl_act *a = act(L, p, SL_ACT_SETTINGS, NULL);
        memcpy(a->u32, pairs, n * sizeof(uint32_t));
        a->nu32 = n;
    }
    return 0;
}

/* conn:push(false): this connection is not pushed to (a local switch; a
 * server never sends ENABLE_PUSH=1, RFC 9113 §6.5.2). */
static int conn_push(lua_State *L)
{
    sluice_policy_conn *pc = check_conn(L, 1);
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    if (!pc->push_allowed)
        return luaL_error(L, "conn:push: only in on_connection");
    *pc->push_allowed = lua_toboolean(L, 2);
    return 0;
}

static int conn_window(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_conn *pc = check_conn(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    sluice_session_options o;
    if (pc->opt)
        o = *pc->opt;
    int64_t conn_v = -1, stream_v = -1;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "adaptive") == 0) {
            if (!pc->opt)
                return luaL_error(L, "conn:window: adaptive only in on_connection");
            o.window_adaptive = check_bool(L, -1, "conn:window: adaptive");
        } else if (strcmp(k, "connection") == 0) {
            conn_v = check_u32(L, -1, "conn:window: connection", 65535, 0x7fffffff);
        } else if (strcmp(k, "stream") == 0) {
            stream_v = check_window(L, pc, check_u32(L, -1, "conn:window: stream", 0, 0x7fffffff),
                                    "conn:window: stream");
        } else if (strcmp(k, "min") == 0 || strcmp(k, "max") == 0 ||
                   strcmp(k, "connection_max") == 0) {
            if (!pc->opt)
                return luaL_error(L, "conn:window: %s only in on_connection", k);
            char what[48];
            snprintf(what, sizeof what, "conn:window: %s", k);
            uint32_t v = check_u32(L, -1, what, 0, 0x7fffffff);
            if (k[0] == 'c')
                o.connection_window_max = v;
            else if (k[1] == 'i')
                o.window_min = v;
            else
                o.window_max = v;
        } else {
            return luaL_error(L, "conn:window: unknown field '%s'", k);
        }
        lua_pop(L, 1);
    }
    if (pc->opt) {
        if (o.window_adaptive && o.window_min > o.window_max)
            return luaL_error(L, "conn:window: min is above max");
        if (conn_v >= 0)
            o.connection_window = (uint32_t)conn_v;
        if (stream_v >= 0)
            o.initial_window_size = (uint32_t)stream_v;
        *pc->opt = o;
        return 0;
    }
    reserve(L, p, 2);
    sl_act *a = conn_v >= 0 ? act(L, p, SL_ACT_CONN_WINDOW, NULL) : NULL;
    sl_act *b = stream_v >= 0 ? act(L, p, SL_ACT_SETTINGS, NULL) : NULL;
    if (a)
        a->u32[0] = (uint32_t)conn_v;
    if (b) {
        b->u32[0] = 4; /* SETTINGS_INITIAL_WINDOW_SIZE */
        b->u32[1] = (uint32_t)stream_v;
        b->nu32 = 2;
    }
    return 0;
}

/* conn:limits{ rst = {burst, per_sec}, ... }: abuse budgets by client class. */
static int conn_limits(lua_State *L)
{
    static const char *const names[] = {"rst", "rst_provoked", "ping", "settings",
                                        "empty_data", "priority", "reprioritize", NULL};
    enum { NKINDS = 7 };
    sluice_policy *p = P(L);
    sluice_policy_conn *pc = check_conn(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    sluice_rate set[NKINDS];
    int given[NKINDS] = {0};
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        int kind = -1;
        for (int i = 0; names[i]; i++)
            if (strcmp(k, names[i]) == 0)
                kind = i;
        if (kind < 0)
            return luaL_error(L, "conn:limits: unknown limit '%s'", k);
        if (!lua_istable(L, -1))
            return luaL_error(L, "conn:limits: %s must be { burst, per_sec }", k);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        if (lua_isnil(L, -2)) {
            lua_pop(L, 2);
            lua_getfield(L, -1, "burst");
            lua_getfield(L, -2, "per_sec");
        }
        char what[64];
        snprintf(what, sizeof what, "conn:limits: %s burst", k);
        set[kind].burst = check_u32(L, -2, what, 0, 1000000);
        snprintf(what, sizeof what, "conn:limits: %s per_sec", k);
        set[kind].per_sec = check_u32(L, -1, what, 0, 1000000);
        given[kind] = 1;
        lua_pop(L, 3);
    }
    if (pc->opt) {
        sluice_session_options *o = pc->opt;
        sluice_rate *dst[NKINDS] = {&o->rst_received, &o->rst_provoked, &o->ping, &o->settings,
                                    &o->empty_data, &o->priority, &o->reprioritize};
        for (int i = 0; i < NKINDS; i++)
            if (given[i])
                *dst[i] = set[i];
        return 0;
    }
    int n = 0;
    for (int i = 0; i < NKINDS; i++)
        n += given[i];
    reserve(L, p, (size_t)n);
    for (int i = 0; i < NKINDS; i++) {
        if (!given[i])
            continue;
        sl_act *a = act(L, p, SL_ACT_RATE, NULL);
        a->a = i; /* same order as enum sluice_rate_kind */
        a->u32[0] = set[i].burst;
        a->u32[1] = set[i].per_sec;
    }
    return 0;
}

static void push_opt_str(lua_State *L, const char *s)
{
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
}

static int conn_index(lua_State *L, const char *k)
{
    sluice_policy_conn *pc = check_conn(L, 1);
    const sluice_policy_conn_info *in = &pc->info;
    if (strcmp(k, "peer") == 0)
        push_opt_str(L, in->peer);
    else if (strcmp(k, "ip") == 0)
        push_opt_str(L, in->ip);
    else if (strcmp(k, "port") == 0)
        lua_pushinteger(L, in->port);
    else if (strcmp(k, "local_addr") == 0)
        push_opt_str(L, in->local);
    else if (strcmp(k, "sni") == 0)
        push_opt_str(L, in->sni);
    else if (strcmp(k, "alpn") == 0)
        push_opt_str(L, in->alpn);
    else if (strcmp(k, "tls") == 0)
        push_opt_str(L, in->tls_version);
    else if (strcmp(k, "id") == 0)
        lua_pushinteger(L, (lua_Integer)in->id);
    else if (strcmp(k, "policy") == 0)
        lua_pushstring(L, pc->p->name);
    else
        lua_pushnil(L);
    return 1;
}

/* ---- stream ------------------------------------------------------------------------ */

static int stream_priority(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_stream *ps = check_stream(L, 1);
    uint32_t u = check_u32(L, 2, "stream:priority: urgency", 0, 7);
    int inc = -1; /* unchanged unless given: resolved when applied, after earlier calls */
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TBOOLEAN);
        inc = lua_toboolean(L, 3);
    }
    sl_act *a = act(L, p, SL_ACT_PRIORITY, ps);
    a->a = (int)u;
    a->b = inc;
    return 0;
}

/* stream:push(path [, headers]): a GET of path on the same authority. */
static int stream_push(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_stream *ps = check_stream(L, 1);
    size_t len;
    const char *path = luaL_checklstring(L, 2, &len);
    need_op(L, p->e->host.push != NULL, "stream:push");
    if (len == 0 || path[0] != '/')
        return luaL_error(L, "stream:push: the path must start with '/'");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)path[i] <= 0x20 || path[i] == 0x7f)
            return luaL_error(L, "stream:push: space or control character in the path");
    size_t nh = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            nh++;
            lua_pop(L, 1);
        }
        if (nh > 16)
            return luaL_error(L, "stream:push: at most 16 headers");
    }
    sl_act *a = act(L, p, SL_ACT_PUSH, ps);
    a->s1 = astr(L, p, path, len);
    if (nh) {
        a->nv = sl_act_mem(p, nh * sizeof(sluice_nv));
        if (!a->nv)
            return luaL_error(L, "not enough memory");
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            size_t nl, vl;
            const char *n = check_name(L, -2, "stream:push", &nl);
            if (n[0] == ':')
                return luaL_error(L, "stream:push: pseudo-header '%s' not allowed", n);
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "stream:push: the value of '%s' must be a string, not a %s",
                                  n, luaL_typename(L, -1));
            const char *v = check_value(L, -1, "stream:push", &vl);
            a->nv[a->nnv++] = (sluice_nv){(const uint8_t *)astr(L, p, n, nl),
                                          (const uint8_t *)astr(L, p, v, vl), nl, vl, 0};
            lua_pop(L, 1);
        }
    }
    return 0;
}

/* stream:hint(links): a 103 Early Hints; links is a `link` value or a list. */
static int stream_hint(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_stream *ps = check_stream(L, 1);
    need_op(L, p->e->host.hint != NULL, "stream:hint");
    size_t n = 1;
    if (lua_istable(L, 2)) {
        n = lua_rawlen(L, 2);
        if (n == 0 || n > 32)
            return luaL_error(L, "stream:hint: 1 to 32 links");
    } else {
        luaL_checkstring(L, 2);
    }
    sl_act *a = act(L, p, SL_ACT_HINT, ps);
    a->nv = sl_act_mem(p, n * sizeof(sluice_nv));
    if (!a->nv)
        return luaL_error(L, "not enough memory");
    for (size_t i = 0; i < n; i++) {
        if (lua_istable(L, 2))
            lua_rawgeti(L, 2, (lua_Integer)i + 1);
        else
            lua_pushvalue(L, 2);
        size_t vl;
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "stream:hint: link %d is not a string", (int)i + 1);
        const char *v = check_value(L, -1, "stream:hint", &vl);
        a->nv[a->nnv++] = (sluice_nv){(const uint8_t *)"link", (const uint8_t *)astr(L, p, v, vl),
                                      4, vl, 0};
        lua_pop(L, 1);
    }
    return 0;
}

static int stream_respond(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_stream *ps = check_stream(L, 1);
    uint32_t status = check_u32(L, 2, "stream:respond: status", 200, 599);
    need_op(L, p->e->host.respond != NULL, "stream:respond");
    size_t len = 0;
    const char *body = luaL_optlstring(L, 3, NULL, &len);
    sl_act *a = act(L, p, SL_ACT_RESPOND, ps);
    a->a = (int)status;
    if (body) {
        a->s2 = astr(L, p, body, len);
        a->l2 = len;
    }
    return 0;
}

static int stream_upstream(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_stream *ps = check_stream(L, 1);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    need_op(L, p->e->host.upstream != NULL, "stream:upstream");
    act(L, p, SL_ACT_UPSTREAM, ps)->s1 = astr(L, p, name, len);
    return 0;
}

static int stream_tag(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_stream *ps = check_stream(L, 1);
    size_t kl, vl;
    const char *k = check_name(L, 2, "stream:tag", &kl);
    const char *v = check_value(L, 3, "stream:tag", &vl);
    if (kl > 64 || vl > 256)
        return luaL_error(L, "stream:tag: key up to 64 and value up to 256 bytes");
    need_op(L, p->e->host.tag != NULL, "stream:tag");
    sl_act *a = act(L, p, SL_ACT_TAG, ps);
    a->s1 = astr(L, p, k, kl);
    a->s2 = astr(L, p, v, vl);
    return 0;
}

static int stream_window(lua_State *L)
{
    sluice_policy *p = P(L);
    sluice_policy_stream *ps = check_stream(L, 1);
    uint32_t v = check_window(L, ps->pc, check_u32(L, 2, "stream:window", 0, 0x7fffffff),
                              "stream:window");
    act(L, p, SL_ACT_STREAM_WINDOW, ps)->u32[0] = v;
    return 0;
}

static int stream_index(lua_State *L, const char *k)
{
    sluice_policy *p = P(L);
    sluice_policy_stream *ps = check_stream(L, 1);
    if (strcmp(k, "id") == 0) {
        lua_pushinteger(L, ps->id);
    } else if (strcmp(k, "conn") == 0) {
        sl_bind_push_conn(p, L, ps->pc);
    } else if (strcmp(k, "urgency") == 0 || strcmp(k, "incremental") == 0) {
        int u = SLUICE_URGENCY_DEFAULT, i = 0;
        if (ps->pc->s)
            sluice_session_get_priority(ps->pc->s, ps->id, &u, &i);
        if (k[0] == 'u')
            lua_pushinteger(L, u);
        else
            lua_pushboolean(L, i);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

/* ---- req / res ----------------------------------------------------------------------- */

/* The first value of a field; for cookie (RFC 9113 §8.2.3) the split
 * crumbs joined with "; ", as an HTTP/1.1 server would see it. */
static int msg_header(lua_State *L)
{
    const sluice_policy_message *m = check_msg(L)->m;
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    int cookie = nl == 6 && memcmp(name, "cookie", 6) == 0;
    luaL_Buffer b;
    int found = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        const sluice_nv *f = &m->fields[i];
        if (f->name_len != nl || memcmp(f->name, name, nl) != 0)
            continue;
        if (!cookie) {
            lua_pushlstring(L, (const char *)f->value, f->value_len);
            return 1;
        }
        if (!found)
            luaL_buffinit(L, &b);
        else
            luaL_addstring(&b, "; ");
        luaL_addlstring(&b, (const char *)f->value, f->value_len);
        found = 1;
    }
    if (found)
        luaL_pushresult(&b);
    else
        lua_pushnil(L);
    return 1;
}

static int msg_edit(lua_State *L, int add, int remove, const char *what)
{
    sluice_policy *p = P(L);
    sl_msg_slot *h = check_msg(L);
    if (h == &p->msg[0] || !h->ps)
        return luaL_error(L, "req is read-only: change the response in on_response");
    size_t nl, vl = 0;
    const char *n = check_name(L, 2, what, &nl);
    const char *v = remove ? NULL : check_value(L, 3, what, &vl);
    need_op(L, p->e->host.header != NULL, what);
    sl_act *a = act(L, p, SL_ACT_HEADER, h->ps);
    a->s1 = astr(L, p, n, nl);
    a->s2 = v ? astr(L, p, v, vl) : NULL;
    a->a = add;
    return 0;
}

static int msg_set(lua_State *L)
{
    if (lua_isnil(L, 3))
        return msg_edit(L, 0, 1, "res:set");
    return msg_edit(L, 0, 0, "res:set");
}

static int msg_add(lua_State *L)
{
    return msg_edit(L, 1, 0, "res:add");
}

static int msg_remove(lua_State *L)
{
    return msg_edit(L, 0, 1, "res:remove");
}

static int msg_index(lua_State *L, const char *k)
{
    const sluice_policy_message *m = check_msg(L)->m;
    const char *s = NULL;
    if (strcmp(k, "path") == 0)
        s = m->path;
    else if (strcmp(k, "method") == 0)
        s = m->method;
    else if (strcmp(k, "authority") == 0)
        s = m->authority;
    else if (strcmp(k, "scheme") == 0)
        s = m->scheme;
    else if (strcmp(k, "status") == 0) {
        if (m->status)
            lua_pushinteger(L, m->status);
        else
            lua_pushnil(L);
        return 1;
    } else if (strcmp(k, "headers") == 0) {
        /* A fresh table: name -> value, repeated names joined with ", "
         * (cookie with "; "). */
        lua_createtable(L, 0, (int)m->nfields);
        for (size_t i = 0; i < m->nfields; i++) {
            const sluice_nv *f = &m->fields[i];
            lua_pushlstring(L, (const char *)f->name, f->name_len);
            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) == LUA_TSTRING) {
                int cookie = f->name_len == 6 && memcmp(f->name, "cookie", 6) == 0;
                lua_pushstring(L, cookie ? "; " : ", ");
                lua_pushlstring(L, (const char *)f->value, f->value_len);
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, (const char *)f->value, f->value_len);
            }
            lua_rawset(L, -3);
        }
        return 1;
    }
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
    return 1;
}

/* ---- the sluice module ------------------------------------------------------------------ */

static int l_log(lua_State *L)
{
    sluice_policy *p = P(L);
    int level;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        level = (int)check_u32(L, 1, "sluice.log: level", 0, 3);
    } else {
        static const char *const names[] = {"error", "warn", "info", "debug", NULL};
        level = luaL_checkoption(L, 1, NULL, names);
    }
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 2; i <= n; i++) {
        if (i > 2)
            luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_Debug ar;
    char where[128] = "";
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(where, sizeof where, "%s:%d: ", ar.short_src, ar.currentline);
    sl_plog(p->e, level, "policy %s: %s%s", p->name, where, lua_tostring(L, -1));
    return 0;
}

static int l_now(lua_State *L)
{
    sluice_policy *p = P(L);
    uint64_t ns = p->e->host.now ? p->e->host.now(p->e->ud) : 0;
    if (!p->e->host.now) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    lua_pushnumber(L, (lua_Number)ns / 1e9);
    return 1;
}

/* ---- opening ------------------------------------------------------------------------------- */

/* ---- the handles' metatable ---------------------------------------------------------- */

/* handle.key: a method of the handle's class (upvalues 2..4), else a field. */
static int h_index(lua_State *L)
{
    int cls = (int)((uintptr_t)lua_touserdata(L, 1) & 3);
    if (cls >= SL_NCLASSES)
        return luaL_error(L, "not a sluice handle");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2 + cls)) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    switch (cls) {
    case SL_CLASS_CONN: return conn_index(L, k);
    case SL_CLASS_STREAM: return stream_index(L, k);
    default: return msg_index(L, k);
    }
}

/* Lua names light userdata plainly "userdata" in its own errors: say what
 * the handle is and what to do instead. */
static int h_newindex(lua_State *L)
{
    switch ((uintptr_t)lua_touserdata(L, 1) & 3) {
    case SL_CLASS_CONN: return luaL_error(L, "conn fields are read-only");
    case SL_CLASS_STREAM: return luaL_error(L, "stream fields are read-only: use its methods");
    default: return luaL_error(L, "req and res are read-only: change response fields with res:set");
    }
}

static int h_tostring(lua_State *L)
{
    uintptr_t v = (uintptr_t)lua_touserdata(L, 1);
    lua_pushfstring(L, "%s: %p", class_names[v & 3], lua_touserdata(L, 1));
    return 1;
}

static void push_methods(lua_State *L, sluice_policy *p, const luaL_Reg *methods)
{
    lua_newtable(L);
    lua_pushlightuserdata(L, p);
    luaL_setfuncs(L, methods, 1);
}

int sl_bind_open(sluice_policy *p)
{
    static const luaL_Reg conn_m[] = {{"settings", conn_settings}, {"push", conn_push},
                                      {"window", conn_window},     {"limits", conn_limits},
                                      {NULL, NULL}};
    static const luaL_Reg stream_m[] = {
        {"priority", stream_priority}, {"push", stream_push},         {"hint", stream_hint},
        {"respond", stream_respond},   {"upstream", stream_upstream}, {"tag", stream_tag},
        {"window", stream_window},     {NULL, NULL}};
    static const luaL_Reg msg_m[] = {{"header", msg_header}, {"set", msg_set},
                                     {"add", msg_add},       {"remove", msg_remove},
                                     {NULL, NULL}};
    static const luaL_Reg mod[] = {{"log", l_log}, {"now", l_now}, {NULL, NULL}};
    lua_State *L = p->L;
    lua_pushlightuserdata(L, NULL);
    lua_createtable(L, 0, 5);
    lua_pushlightuserdata(L, p);
    push_methods(L, p, conn_m); /* in SL_CLASS_* order */
    push_methods(L, p, stream_m);
    push_methods(L, p, msg_m);
    lua_pushcclosure(L, h_index, 4);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, h_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, h_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "sluice.handle");
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0); /* getmetatable(handle) gives nothing to play with */
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushlightuserdata(L, p);
    luaL_setfuncs(L, mod, 1);
    lua_pushstring(L, sluice_version());
    lua_setfield(L, -2, "version");
    p->shared = p->e->shared;
    sl_lshared_push(L, &p->shared);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "shared");
    lua_setfield(L, -2, "shared");
    lua_setglobal(L, "sluice");
    return 0;
}
