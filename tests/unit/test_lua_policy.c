/* test_lua_policy.c — every binding of the policy engine and its misuse, stale
 * handles, budgets, shared state and reload, against a recording host and sessions. */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "policy_int.h" /* e->live: versions not yet freed */
#include "raw_peer.h"
#include "sluice/policy.h"
#include "t.h"

/* ---- a host that writes down what it was asked -------------------------------- */

#define REC_LOGS 512

typedef struct rec {
    char ops[16384];          /* one line per host op, in order */
    size_t ops_len, nops;
    char log[REC_LOGS][1100];
    int level[REC_LOGS];
    size_t nlog;
    int bad_engine_ud;        /* log/now got another engine_ud than &R */
    uint64_t now;             /* the fake clock (ns) */
    uint64_t tick;            /* added after each read of it */
    int real_clock;           /* now() reads CLOCK_MONOTONIC instead */
    int op_rv;                /* what every op returns */
    /* op_respond: let the stream go and close its connection, as a host
     * that gives up on a connection after an error response might. */
    sluice_policy_stream *free_on_respond;
    sluice_policy_conn *close_on_respond;
    sluice_policy *switch_on_respond;  /* switch close_on_respond's conn first */
} rec;

static rec R;

static const char *ud_name(void *ud)
{
    return ud ? (const char *)ud : "-";
}

static void op_line(void *cud, void *sud, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_line(void *cud, void *sud, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    R.nops++;
    size_t room = sizeof R.ops - R.ops_len;
    int w = snprintf(R.ops + R.ops_len, room, "%s/%s %s\n", ud_name(cud), ud_name(sud), line);
    if (w > 0 && (size_t)w < room)
        R.ops_len += (size_t)w;
}

/* " [name: value]" for each field. */
static void fields_text(char *out, size_t cap, const sluice_nv *nv, size_t n)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + len, cap - len, " [%.*s: %.*s]", (int)nv[i].name_len,
                         (const char *)nv[i].name, (int)nv[i].value_len,
                         (const char *)nv[i].value);
        if (w < 0 || (size_t)w >= cap - len)
            return;
        len += (size_t)w;
    }
}

static int op_push(void *cud, void *sud, const char *path, const sluice_nv *h, size_t n)
{
    char f[2048];
    fields_text(f, sizeof f, h, n);
    op_line(cud, sud, "push %s%s", path, f);
    return R.op_rv;
}

static int op_hint(void *cud, void *sud, const sluice_nv *nv, size_t n)
{
    char f[2048];
    fields_text(f, sizeof f, nv, n);
    op_line(cud, sud, "hint%s", f);
    return R.op_rv;
}

static int op_respond(void *cud, void *sud, int status, const char *body, size_t len)
{
    if (body)
        op_line(cud, sud, "respond %d [%.*s]", status, (int)len, body);
    else
        op_line(cud, sud, "respond %d NULL", status);
    if (R.free_on_respond) {
        sluice_policy_stream_free(R.free_on_respond);
        R.free_on_respond = NULL;
    }
    if (R.close_on_respond) {
        sluice_policy_conn_stats st = {sizeof st, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "local"};
        sluice_policy_conn *pc = R.close_on_respond;
        R.close_on_respond = NULL;
        if (R.switch_on_respond)
            sluice_policy_conn_switch(pc, R.switch_on_respond);
        R.switch_on_respond = NULL;
        sluice_policy_conn_close(pc, &st);
    }
    return R.op_rv;
}

static int op_upstream(void *cud, void *sud, const char *name)
{
    op_line(cud, sud, "upstream %s", name);
    return R.op_rv;
}

static int op_tag(void *cud, void *sud, const char *key, const char *value)
{
    op_line(cud, sud, "tag %s=%s", key, value);
    return R.op_rv;
}

static int op_header(void *cud, void *sud, const char *name, const char *value, int add)
{
    if (!value)
        op_line(cud, sud, "header remove %s%s", name, add ? " (add!)" : "");
    else
        op_line(cud, sud, "header %s %s=%s", add ? "add" : "set", name, value);
    return R.op_rv;
}

static void host_log(void *ud, int level, const char *msg)
{
    if (ud != &R)
        R.bad_engine_ud = 1;
    if (getenv("LPOL_VERBOSE"))
        fprintf(stderr, "  [log %d] %s\n", level, msg);
    if (R.nlog == REC_LOGS)
        return;
    snprintf(R.log[R.nlog], sizeof R.log[0], "%s", msg);
    R.level[R.nlog++] = level;
}

static uint64_t host_now(void *ud)
{
    if (ud != &R)
        R.bad_engine_ud = 1;
    if (R.real_clock) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    uint64_t t = R.now;
    R.now += R.tick;
    return t;
}

static sluice_policy_host host_all(void)
{
    sluice_policy_host h = {sizeof h,   op_push, op_hint,  op_respond, op_upstream,
                            op_tag,     op_header, host_log, host_now};
    return h;
}

/* ---- fixtures -------------------------------------------------------------------- */

static char ERR[1024];

/* An engine with the recording host; R starts empty. */
static sluice_policy_engine *eng_host(const sluice_policy_options *o, const sluice_policy_host *h)
{
    memset(&R, 0, sizeof R);
    sluice_policy_engine *e = NULL;
    if (sluice_policy_engine_new(&e, o, h, &R) != 0)
        return NULL;
    return e;
}

static sluice_policy_engine *eng(const sluice_policy_options *o)
{
    sluice_policy_host h = host_all();
    return eng_host(o, &h);
}

static sluice_policy *load_as(sluice_policy_engine *e, const char *name, const char *src)
{
    sluice_policy *p = NULL;
    ERR[0] = 0;
    if (sluice_policy_load(e, name, src, strlen(src), &p, ERR, sizeof ERR) != 0) {
        if (getenv("LPOL_VERBOSE"))
            fprintf(stderr, "  [load] %s\n", ERR);
        return NULL;
    }
    return p;
}

static sluice_policy *load(sluice_policy_engine *e, const char *src)
{
    return load_as(e, "t.lua", src);
}

static sluice_policy_conn *conn_of(sluice_policy *p, uint64_t id, void *ud)
{
    sluice_policy_conn_info in = {sizeof in,         "203.0.113.7:51234", "203.0.113.7", 51234,
                                  "0.0.0.0:8443",    "www.example.com",   "h2",
                                  "TLSv1.3",         id};
    sluice_policy_conn *pc = NULL;
    return sluice_policy_conn_new(p, &in, ud, &pc) == 0 ? pc : NULL;
}

static sluice_policy_stream *stream_of(sluice_policy_conn *pc, uint32_t id, void *ud)
{
    sluice_policy_stream *ps = NULL;
    return sluice_policy_stream_new(pc, id, ud, &ps) == 0 ? ps : NULL;
}

static const sluice_nv req_fields[] = {NV("user-agent", "curl/8.0"), NV("accept", "text/css"),
                                       NV("cookie", "a=1"), NV("cookie", "b=2"),
                                       NV("accept", "*/*")};
static const sluice_nv res_fields[] = {NV("content-type", "text/css"), NV("server", "origin"),
                                       NV("link", "</a.css>; rel=preload"),
                                       NV("link", "</b.js>; rel=preload")};

static sluice_policy_message req_msg(const char *path)
{
    sluice_policy_message m = {sizeof m, "GET", "https", "example.com", path, 0, req_fields, 5};
    return m;
}

static sluice_policy_message res_msg(const char *path)
{
    sluice_policy_message m = {sizeof m, "GET", NULL, "example.com", path, 200, res_fields, 4};
    return m;
}

static int request(sluice_policy_stream *ps, const char *path)
{
    sluice_policy_message m = req_msg(path);
    return sluice_policy_on_request(ps, &m);
}

static sluice_policy_conn_stats no_stats(uint64_t bytes_in)
{
    sluice_policy_conn_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    st.bytes_in = bytes_in;
    return st;
}

static int window(sluice_policy_conn *pc, uint64_t bytes_in)
{
    sluice_policy_conn_stats st = no_stats(bytes_in);
    return sluice_policy_on_window(pc, &st);
}

static void close_conn(sluice_policy_conn *pc)
{
    sluice_policy_conn_stats st = no_stats(0);
    st.close_reason = "peer";
    sluice_policy_conn_close(pc, &st);
}

static sluice_policy_stats pstats(const sluice_policy *p)
{
    sluice_policy_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    sluice_policy_get_stats(p, &st);
    return st;
}

static const char *last_log(void)
{
    return R.nlog ? R.log[R.nlog - 1] : "(nothing logged)";
}

/* The 1-based line of src where marker first appears (0: absent). */
static int line_of(const char *src, const char *marker)
{
    const char *at = strstr(src, marker);
    if (!at)
        return 0;
    int line = 1;
    for (const char *c = src; c < at; c++)
        line += *c == '\n';
    return line;
}

/* The error line the engine logs for a hook that failed at marker's line. */
static const char *fail_at(const char *hook, const char *src, const char *marker,
                           const char *msg)
{
    static char buf[4][1100];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "policy t.lua: %s failed (default applies): t.lua:%d: %s", hook,
             line_of(src, marker), msg);
    return b;
}

/* What sluice.log at marker's line writes. */
static const char *log_at(const char *src, const char *marker, const char *msg)
{
    static char buf[4][1100];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "policy t.lua: t.lua:%d: %s", line_of(src, marker), msg);
    return b;
}

#define CHECK_TXT(a, b)                                                                   \
    do {                                                                                  \
        const char *t_x_ = (a), *t_y_ = (b);                                              \
        if (strcmp(t_x_, t_y_) != 0) {                                                    \
            T_FAIL("%s:\n    got  \"%s\"\n    want \"%s\"", #a, t_x_, t_y_);              \
            return;                                                                       \
        }                                                                                 \
    } while (0)

#define CHECK_HAS(a, sub)                                                                 \
    do {                                                                                  \
        const char *t_x_ = (a), *t_y_ = (sub);                                            \
        if (!strstr(t_x_, t_y_)) {                                                        \
            T_FAIL("%s:\n    got  \"%s\"\n    lacks \"%s\"", #a, t_x_, t_y_);             \
            return;                                                                       \
        }                                                                                 \
    } while (0)

#define CHECK_PREFIX(a, pre)                                                              \
    do {                                                                                  \
        const char *t_x_ = (a), *t_y_ = (pre);                                            \
        if (strncmp(t_x_, t_y_, strlen(t_y_)) != 0) {                                     \
            T_FAIL("%s:\n    got  \"%s\"\n    want \"%s...\"", #a, t_x_, t_y_);           \
            return;                                                                       \
        }                                                                                 \
    } while (0)

static sluice_session_options default_opt(void)
{
    sluice_session_options o;
    sluice_session_options_init(&o);
    return o;
}

static int same_opt(const sluice_session_options *a, const sluice_session_options *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* A server session past its handshake with stream 1 open: a GET (its
 * request body done) or a POST whose body may still come. */
static rp *server_with_stream(int get)
{
    rp *peer = rp_server(NULL);
    if (!peer)
        return NULL;
    if (rp_request(peer, 1, get) < 0) {
        rp_free(peer);
        return NULL;
    }
    rp_read(peer);
    return peer;
}

static const rp_frame *settings_frame(const rp *peer)
{
    for (size_t i = 0; i < peer->nf; i++)
        if (peer->f[i].type == SL_FRAME_SETTINGS && !(peer->f[i].flags & SL_FLAG_ACK))
            return &peer->f[i];
    return NULL;
}

static long setting_of(const rp_frame *f, uint16_t id)
{
    for (size_t i = 0; i < f->nsettings; i++)
        if (f->settings[i].id == id)
            return (long)f->settings[i].value;
    return -1;
}

static size_t ping_acks(const rp *peer)
{
    size_t n = 0;
    for (size_t i = 0; i < peer->nf; i++)
        n += peer->f[i].type == SL_FRAME_PING && (peer->f[i].flags & SL_FLAG_ACK);
    return n;
}

/* ---- loading ------------------------------------------------------------------------- */

TEST(load_syntax_error_names_file_and_line)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  local x = = 1\n"
                              "end\n";
    sluice_policy *p = (sluice_policy *)&R; /* must stay untouched */
    int rv = sluice_policy_load(e, "/etc/sluice/t.lua", src, strlen(src), &p, ERR, sizeof ERR);
    CHECK_INT(rv, SLUICE_ERR_INVAL);
    CHECK(p == (sluice_policy *)&R);
    CHECK_TXT(ERR, "t.lua:2: unexpected symbol near '='");
    CHECK_INT(R.nlog, 0); /* the loader reports it, nothing is logged */
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

TEST(load_error_in_the_chunk_names_its_line)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    CHECK(!load(e, "local limits = {}\n"
                   "\n"
                   "limits.x.y = 1\n"));
    CHECK_TXT(ERR, "t.lua:3: attempt to index a nil value (field 'x')");
    CHECK(!load(e, "function on_request() end\nerror('no config')\n"));
    CHECK_TXT(ERR, "t.lua:2: no config");
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

TEST(load_hook_that_is_not_a_function)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    CHECK(!load(e, "on_request = 'images first'\n"));
    CHECK_TXT(ERR, "t.lua: on_request is a string, not a function");
    CHECK(!load(e, "return { on_window = function() end, on_close = 5 }\n"));
    CHECK_TXT(ERR, "t.lua: on_close is a number, not a function");
    CHECK(!load(e, "on_connection = {}\n"));
    CHECK_TXT(ERR, "t.lua: on_connection is a table, not a function");
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

TEST(load_chunk_returning_something_else)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    CHECK(!load(e, "return 42\n"));
    CHECK_TXT(ERR, "t.lua: the policy returned a number; return a table of hooks or nothing");
    CHECK(!load(e, "return 'on_request'\n"));
    CHECK_TXT(ERR, "t.lua: the policy returned a string; return a table of hooks or nothing");
    CHECK(!load(e, "return true\n"));
    CHECK_TXT(ERR, "t.lua: the policy returned a boolean; return a table of hooks or nothing");
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

TEST(load_hooks_from_globals_or_a_returned_table)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *g = load_as(e, "/srv/policies/g.lua",
                               "function on_request(stream, req) end\n"
                               "function on_close(conn, st) end\n"
                               "helper = 5 -- other globals are no hooks\n");
    CHECK(g);
    CHECK_TXT(sluice_policy_name(g), "g.lua");
    CHECK_INT(sluice_policy_hooks(g), SLUICE_HOOK_REQUEST | SLUICE_HOOK_CLOSE);
    /* A returned table wins: globals are then not hooks. */
    sluice_policy *t = load(e, "function on_response() error('not a hook') end\n"
                               "local M = {}\n"
                               "function M.on_connection(conn) end\n"
                               "M.on_window = function(conn, st) end\n"
                               "return M\n");
    CHECK(t);
    CHECK_INT(sluice_policy_hooks(t), SLUICE_HOOK_CONNECTION | SLUICE_HOOK_WINDOW);
    sluice_policy *all = load(e, "local f = function() end\n"
                                 "return { on_connection = f, on_request = f,\n"
                                 "  on_response = f, on_window = f, on_close = f }\n");
    CHECK(all);
    CHECK_INT(sluice_policy_hooks(all), SLUICE_HOOK_CONNECTION | SLUICE_HOOK_REQUEST |
                                            SLUICE_HOOK_RESPONSE | SLUICE_HOOK_WINDOW |
                                            SLUICE_HOOK_CLOSE);
    sluice_policy *none = load(e, "");
    CHECK(none);
    CHECK_INT(sluice_policy_hooks(none), 0);
    CHECK_INT(e->live, 4);
    /* The global on_response of t is not called. */
    sluice_policy_conn *pc = conn_of(t, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    sluice_policy_message m = res_msg("/");
    CHECK_INT(sluice_policy_on_response(ps, &m), 0);
    CHECK_INT(R.nlog, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(g);
    sluice_policy_unref(t);
    sluice_policy_unref(all);
    sluice_policy_unref(none);
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

TEST(load_runs_on_connection_dry)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_connection(conn)\n"
                              "  if conn.sni == 'example.com' then\n"
                              "    error('no ' .. conn.sni)\n"
                              "  end\n"
                              "end\n";
    CHECK(!load(e, src));
    CHECK_TXT(ERR, "t.lua:3: no example.com (in a dry run of on_connection)");
    CHECK_INT(R.nlog, 0); /* reported to the loader, not logged */
    /* Misuse of a binding is caught by the dry run too. */
    CHECK(!load(e, "function on_connection(conn)\n"
                   "  conn:settings{ max_frame_size = 1 }\n"
                   "end\n"));
    CHECK_TXT(ERR, "t.lua:2: conn:settings: max_frame_size must be an integer in "
                   "16384..16777215 (in a dry run of on_connection)");
    CHECK_INT(e->live, 0);
    /* What the dry run's connection looks like. */
    sluice_policy *p = load(e, "function on_connection(conn)\n"
                               "  sluice.log('info', conn.peer, conn.ip, conn.port, conn.local_addr,\n"
                               "             conn.sni, conn.alpn, conn.tls, conn.id)\n"
                               "end\n");
    CHECK(p);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], "policy t.lua: t.lua:2: 192.0.2.1:40000 192.0.2.1 40000 0.0.0.0:443 "
                        "example.com h2 TLSv1.3 0");
    CHECK_INT(pstats(p).calls, 1);
    sluice_policy_unref(p);
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

typedef struct dump_buf {
    char b[4096];
    size_t len;
} dump_buf;

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    dump_buf *d = ud;
    if (d->len + sz > sizeof d->b)
        return 1;
    memcpy(d->b + d->len, p, sz);
    d->len += sz;
    return 0;
}

TEST(load_refuses_bytecode)
{
    /* Bytecode of a policy, from a plain Lua state of our own. */
    dump_buf d;
    d.len = 0;
    lua_State *L = luaL_newstate();
    CHECK(L);
    CHECK_INT(luaL_loadstring(L, "function on_request(s, r) s:priority(0) end"), LUA_OK);
    CHECK_INT(lua_dump(L, dump_writer, &d, 0), 0);
    lua_close(L);
    CHECK(d.len > 4 && memcmp(d.b, "\x1bLua", 4) == 0);

    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = NULL;
    CHECK_INT(sluice_policy_load(e, "t.lua", d.b, d.len, &p, ERR, sizeof ERR), SLUICE_ERR_INVAL);
    CHECK(p == NULL);
    CHECK_PREFIX(ERR, "t.lua");
    CHECK_HAS(ERR, "binary");

    /* Nor can a policy load() it. */
    char src[16384];
    size_t n = (size_t)snprintf(src, sizeof src, "local bc = \"");
    for (size_t i = 0; i < d.len; i++)
        n += (size_t)snprintf(src + n, sizeof src - n, "\\%u", (unsigned char)d.b[i]);
    snprintf(src + n, sizeof src - n,
             "\"\n"
             "local f1, e1 = load(bc)\n"
             "local f2, e2 = load(bc, 'x', 'b')\n"
             "local f3 = load('return 6 * 7')\n"
             "sluice.log('info', f1, f2, f3())\n"
             "sluice.log('info', e1)\n"
             "sluice.log('info', e2)\n");
    p = load(e, src);
    CHECK(p);
    CHECK_INT(R.nlog, 3);
    CHECK_TXT(R.log[0], log_at(src, "sluice.log('info', f1", "nil nil 42"));
    CHECK_HAS(R.log[1], "binary");
    CHECK_HAS(R.log[2], "binary");
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(sandbox_leaves_out_unsafe_libraries)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] =
        "sluice.log('info', io, os, debug, package, require, dofile, loadfile,\n"
        "           collectgarbage == nil or type(collectgarbage))\n"
        "sluice.log('info', type(string.format), type(table.concat), type(math.floor),\n"
        "           type(utf8.char), type(coroutine.wrap), type(pcall), type(load))\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    CHECK_INT(R.nlog, 2);
    CHECK_PREFIX(R.log[0], log_at(src, "io, os", "nil nil nil nil nil nil nil "));
    CHECK_TXT(R.log[1], log_at(src, "type(string.format)",
                               "function function function function function function "
                               "function"));
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* ---- on_connection ----------------------------------------------------------------- */

TEST(on_connection_sees_the_connection)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] =
        "function on_connection(conn)\n"
        "  if conn.id == 0 then return end -- the dry run\n"
        "  sluice.log('info', conn.peer, conn.ip, conn.port, conn.local_addr, conn.sni,\n"
        "             conn.alpn, conn.tls, conn.id, conn.policy, conn.nosuch, math.type(conn.port))\n"
        "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    CHECK_INT(R.nlog, 0);
    sluice_policy_conn *pc = conn_of(p, 42, "C1");
    CHECK(pc);
    CHECK(sluice_policy_conn_policy(pc) == p);
    sluice_session_options o = default_opt(), want = o;
    int push = 1;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_INT(R.level[0], SLUICE_LOG_INFO);
    CHECK_TXT(R.log[0], log_at(src, "sluice.log", "203.0.113.7:51234 203.0.113.7 51234 "
                                                  "0.0.0.0:8443 www.example.com h2 TLSv1.3 42 "
                                                  "t.lua nil integer"));
    CHECK(same_opt(&o, &want));
    CHECK_INT(push, 1);
    close_conn(pc);

    /* Plain text over IPv6: no SNI, no TLS; the info strings are copies. */
    char peer[] = "[2001:db8::1]:443", ip[] = "2001:db8::1";
    sluice_policy_conn_info in = {sizeof in, peer, ip, 443, "[::]:80", NULL, "h2c", NULL, 7};
    CHECK_INT(sluice_policy_conn_new(p, &in, NULL, &pc), 0);
    memset(peer, 'x', sizeof peer - 1);
    memset(ip, 'x', sizeof ip - 1);
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    CHECK_TXT(last_log(), log_at(src, "sluice.log", "[2001:db8::1]:443 2001:db8::1 443 [::]:80 "
                                                     "nil h2c nil 7 t.lua nil integer"));
    close_conn(pc);
    CHECK_INT(R.bad_engine_ud, 0);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(on_connection_settings_set_each_option)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_connection(conn)\n"
                               "  conn:settings{ header_table_size = 8192, max_concurrent_streams = 10,\n"
                               "    initial_window = 1048576, max_frame_size = 32768,\n"
                               "    max_header_list_size = 16384 }\n"
                               "end\n");
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_session_options o = default_opt(), want = o;
    int push = 1;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    want.header_table_size = 8192;
    want.max_concurrent_streams = 10;
    want.initial_window_size = 1048576;
    want.max_frame_size = 32768;
    want.max_header_list_size = 16384;
    CHECK_INT(o.header_table_size, 8192);
    CHECK_INT(o.max_concurrent_streams, 10);
    CHECK_INT(o.initial_window_size, 1048576);
    CHECK_INT(o.max_frame_size, 32768);
    CHECK_INT(o.max_header_list_size, 16384);
    CHECK(same_opt(&o, &want)); /* and nothing else */
    CHECK_INT(push, 1);
    CHECK_INT(R.nlog, 0);
    CHECK_INT(R.nops, 0);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* Statements run by on_connection, one per connection id; each must fail
 * the hook with msg and leave the options and the push switch alone. */
typedef struct lcase {
    const char *lua, *msg;
} lcase;

static const lcase conn_bad[] = {
    {"conn:settings({ max_concurrent_streams = 10, bogus = 1 })",
     "conn:settings: unknown setting 'bogus'"},
    {"conn:settings({ max_frame_size = 16383 })",
     "conn:settings: max_frame_size must be an integer in 16384..16777215"},
    {"conn:settings({ max_frame_size = 16777216 })",
     "conn:settings: max_frame_size must be an integer in 16384..16777215"},
    {"conn:settings({ max_concurrent_streams = 0 })",
     "conn:settings: max_concurrent_streams must be an integer in 1..100000"},
    {"conn:settings({ initial_window = 2^31 })",
     "conn:settings: initial_window must be an integer in 0..2147483647"},
    {"conn:settings({ header_table_size = 'big' })",
     "conn:settings: header_table_size must be an integer in 0..1048576"},
    {"conn:settings({ max_header_list_size = 1023 })",
     "conn:settings: max_header_list_size must be an integer in 1024..16777216"},
    {"conn:settings({ max_concurrent_streams = 1.5 })",
     "conn:settings: max_concurrent_streams must be an integer in 1..100000"},
    {"conn:settings({ 5 })", "conn:settings: unknown setting '?'"},
    {"conn:settings(5)", "bad argument #1 to 'settings' (table expected, got number)"},
    {"conn:push(false) conn:settings({ bogus = 1 })", "conn:settings: unknown setting 'bogus'"},
    {"conn:window({ connection = 1000 })",
     "conn:window: connection must be an integer in 65535..2147483647"},
    {"conn:window({ bogus = 1 })", "conn:window: unknown field 'bogus'"},
    {"conn:window({ adaptive = true, min = 200000, max = 100000 })",
     "conn:window: min is above max"},
    {"conn:window({ stream = -1 })", "conn:window: stream must be an integer in 0..2147483647"},
    {"conn:window({ max = 2^31 })", "conn:window: max must be an integer in 0..2147483647"},
    {"conn:window()", "bad argument #1 to 'window' (table expected, got no value)"},
    {"conn:limits({ bogus = { 1, 1 } })", "conn:limits: unknown limit 'bogus'"},
    {"conn:limits({ ping = 5 })", "conn:limits: ping must be { burst, per_sec }"},
    {"conn:limits({ ping = { -1, 1 } })",
     "conn:limits: ping burst must be an integer in 0..1000000"},
    {"conn:limits({ ping = { 1 } })",
     "conn:limits: ping per_sec must be an integer in 0..1000000"},
    {"conn:limits({ rst = { burst = 1 } })",
     "conn:limits: rst per_sec must be an integer in 0..1000000"},
    {"conn:limits({ settings = { 1, 2000000 } })",
     "conn:limits: settings per_sec must be an integer in 0..1000000"},
    {"conn:push('no')", "bad argument #1 to 'push' (boolean expected, got string)"},
    {"conn:push(false) conn:window({ connection = 4194304 }) error('late')", "late"},
    {"conn.settings(nil, {})", "bad argument #1 to 'settings' (sluice.conn expected, got nil)"},
    {"conn.peer = 'x'", "conn fields are read-only"},
};

/* "local cases = {\n  function(a, b) <lua> end,\n ... }\n" then the hook:
 * case i is on line i + 1. */
static void cases_src(char *src, size_t cap, const lcase *c, size_t n, const char *args,
                      const char *hook)
{
    size_t len = (size_t)snprintf(src, cap, "local cases = {\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(src + len, cap - len, "  function(%s) %s end,\n", args, c[i].lua);
    snprintf(src + len, cap - len, "}\n%s", hook);
}

static const char *case_fail(const char *hook, size_t i, const char *msg)
{
    static char buf[1100];
    snprintf(buf, sizeof buf, "policy t.lua: %s failed (default applies): t.lua:%d: %s", hook,
             (int)i + 2, msg);
    return buf;
}

TEST(on_connection_errors_leave_the_options_alone)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    char src[16384];
    cases_src(src, sizeof src, conn_bad, sizeof conn_bad / sizeof conn_bad[0], "conn",
              "function on_connection(conn)\n"
              "  local f = cases[conn.id]\n"
              "  if f then f(conn) end\n"
              "end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    for (size_t i = 0; i < sizeof conn_bad / sizeof conn_bad[0]; i++) {
        sluice_policy_conn *pc = conn_of(p, i + 1, "C1");
        CHECK(pc);
        sluice_session_options o = default_opt(), want = o;
        int push = 1;
        size_t before = R.nlog;
        CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
        if (R.nlog != before + 1 || strcmp(last_log(), case_fail("on_connection", i,
                                                                  conn_bad[i].msg)) != 0) {
            T_FAIL("case %zu: %s", i + 1, conn_bad[i].lua);
            CHECK_TXT(last_log(), case_fail("on_connection", i, conn_bad[i].msg));
            CHECK_INT(R.nlog, before + 1);
        }
        CHECK_INT(R.level[R.nlog - 1], SLUICE_LOG_ERROR);
        if (!same_opt(&o, &want) || push != 1) {
            T_FAIL("case %zu changed the options: %s", i + 1, conn_bad[i].lua);
            return;
        }
        close_conn(pc);
    }
    sluice_policy_stats st = pstats(p);
    CHECK_INT(st.errors, sizeof conn_bad / sizeof conn_bad[0]);
    CHECK_INT(st.budget_exceeded, 0);
    CHECK_INT(R.nops, 0);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* A field of the wrong type names the field, not a stack slot. */
TEST(type_error_in_a_table_field_names_the_field)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_connection(conn)\n"
                              "  if conn.id == 1 then conn:window({ adaptive = 1 }) end\n"
                              "end\n"
                              "function on_request(stream, req)\n"
                              "  stream:push('/a', { accept = {} })\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_session_options o = default_opt(), want = o;
    int push = 1;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    CHECK(same_opt(&o, &want));
    CHECK_INT(R.nlog, 1);
    CHECK_PREFIX(last_log(), fail_at("on_connection", src, "adaptive", ""));
    int bad = 0;
    if (!strstr(last_log(), "adaptive") || strstr(last_log(), "#-")) {
        fprintf(stderr, "conn:window{ adaptive = 1 }: %s\n", last_log());
        bad++;
    }
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 2);
    CHECK_PREFIX(last_log(), fail_at("on_request", src, "stream:push", ""));
    if (!strstr(last_log(), "accept") || strstr(last_log(), "#-")) {
        fprintf(stderr, "stream:push('/a', { accept = {} }): %s\n", last_log());
        bad++;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(R.nops, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* A binding that raised an error changed nothing, even when the policy
 * caught the error and the hook went on. */
TEST(on_connection_failed_call_caught_by_pcall_changes_nothing)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] =
        "function on_connection(conn)\n"
        "  if conn.id == 0 then return end\n"
        "  local ok, err = pcall(function() conn:window{ adaptive = true, min = 200000, max = 100000 } end)\n"
        "  sluice.log('info', ok, err)\n"
        "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_session_options o = default_opt(), want = o;
    int push = 1;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(last_log(), log_at(src, "sluice.log", "false t.lua:3: conn:window: min is above max"));
    CHECK_INT(o.window_adaptive, 0);
    CHECK_INT(o.window_min, want.window_min);
    CHECK_INT(o.window_max, want.window_max);
    CHECK(same_opt(&o, &want));
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(on_connection_push_switch)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_connection(conn)\n"
                               "  if conn.id == 1 then conn:push(false) end\n"
                               "  if conn.id == 2 then conn:push(true) end\n"
                               "end\n");
    CHECK(p);
    sluice_session_options o = default_opt(), want = o;
    int push = 1;
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    CHECK_INT(push, 0);
    CHECK(same_opt(&o, &want)); /* a local switch: no ENABLE_PUSH setting */
    close_conn(pc);
    pc = conn_of(p, 2, "C2");
    push = 0;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    CHECK_INT(push, 1);
    CHECK(same_opt(&o, &want));
    close_conn(pc);
    CHECK_INT(R.nlog, 0);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(on_connection_window_fixed_and_adaptive)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_connection(conn)\n"
                               "  if conn.id == 1 then\n"
                               "    conn:window{ connection = 8388608, stream = 1048576 }\n"
                               "  elseif conn.id == 2 then\n"
                               "    conn:window{ adaptive = true, min = 131072, max = 4194304,\n"
                               "                 connection_max = 33554432 }\n"
                               "  end\n"
                               "end\n");
    CHECK(p);
    sluice_session_options o = default_opt(), want = o;
    int push = 1;
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    want.connection_window = 8388608;
    want.initial_window_size = 1048576;
    CHECK_INT(o.connection_window, 8388608);
    CHECK_INT(o.initial_window_size, 1048576);
    CHECK_INT(o.window_adaptive, 0);
    CHECK(same_opt(&o, &want));
    close_conn(pc);

    o = want = default_opt();
    pc = conn_of(p, 2, "C2");
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    want.window_adaptive = 1;
    want.window_min = 131072;
    want.window_max = 4194304;
    want.connection_window_max = 33554432;
    CHECK_INT(o.window_adaptive, 1);
    CHECK_INT(o.window_min, 131072);
    CHECK_INT(o.window_max, 4194304);
    CHECK_INT(o.connection_window_max, 33554432);
    CHECK(same_opt(&o, &want));
    close_conn(pc);
    CHECK_INT(R.nlog, 0);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(on_connection_limits_set_each_budget)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_connection(conn)\n"
                               "  conn:limits{ rst = { 100, 10 }, rst_provoked = { 5, 1 },\n"
                               "    ping = { burst = 2, per_sec = 1 }, settings = { 7, 3 },\n"
                               "    empty_data = { 8, 4 }, priority = { 9, 5 }, reprioritize = { 0, 0 } }\n"
                               "end\n");
    CHECK(p);
    sluice_session_options o = default_opt(), want = o;
    int push = 1;
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    CHECK_INT(R.nlog, 0);
    want.rst_received = (sluice_rate){100, 10};
    want.rst_provoked = (sluice_rate){5, 1};
    want.ping = (sluice_rate){2, 1};
    want.settings = (sluice_rate){7, 3};
    want.empty_data = (sluice_rate){8, 4};
    want.priority = (sluice_rate){9, 5};
    want.reprioritize = (sluice_rate){0, 0};
    CHECK_INT(o.rst_received.burst, 100);
    CHECK_INT(o.rst_received.per_sec, 10);
    CHECK_INT(o.ping.burst, 2);
    CHECK_INT(o.ping.per_sec, 1);
    CHECK_INT(o.reprioritize.burst, 0);
    CHECK(same_opt(&o, &want));
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* What on_connection decided is what the session uses: its first SETTINGS
 * and its PING budget. */
TEST(on_connection_options_reach_the_session)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_connection(conn)\n"
                               "  conn:settings{ max_concurrent_streams = 10, initial_window = 131072,\n"
                               "                 max_frame_size = 65536 }\n"
                               "  conn:limits{ ping = { 2, 1 } }\n"
                               "end\n");
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_session_options o = default_opt();
    int push = 1;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    rp *peer = rp_new(SLUICE_ROLE_SERVER, &o);
    CHECK(peer);
    sluice_policy_conn_set_session(pc, peer->s);
    CHECK(rp_handshake(peer, NULL, 0) >= 0);
    const rp_frame *f = settings_frame(peer);
    CHECK(f);
    CHECK_INT(setting_of(f, 3), 10);
    CHECK_INT(setting_of(f, 4), 131072);
    CHECK_INT(setting_of(f, 5), 65536);
    CHECK(rp_ping(peer, "ping0001", 0) >= 0);
    CHECK(rp_ping(peer, "ping0002", 0) >= 0);
    CHECK(rp_ping(peer, "ping0003", 0) < 0);
    rp_read(peer);
    CHECK_INT(ping_acks(peer), 2);
    const rp_frame *g = rp_find(peer, SL_FRAME_GOAWAY, 0);
    CHECK(g);
    CHECK_INT(g->code, SLUICE_H2_ENHANCE_YOUR_CALM);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* ---- after the session exists ------------------------------------------------------ */

TEST(settings_after_the_session_send_a_settings_frame)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_window(conn, st)\n"
                               "  if st.bytes_in == 1 then\n"
                               "    conn:settings{ max_concurrent_streams = 50, initial_window = 131072 }\n"
                               "  else\n"
                               "    conn:window{ stream = 262144 }\n"
                               "  end\n"
                               "end\n");
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    CHECK_INT(window(pc, 1), 0);
    CHECK_INT(R.nlog, 0);
    rp_read(peer);
    CHECK_INT(rp_count(peer, SL_FRAME_SETTINGS, 0), 1);
    const rp_frame *f = settings_frame(peer);
    CHECK(f);
    CHECK_INT(f->nsettings, 2);
    CHECK_INT(setting_of(f, 3), 50);
    CHECK_INT(setting_of(f, 4), 131072);
    CHECK_INT(window(pc, 2), 0);
    CHECK_INT(R.nlog, 0);
    rp_read(peer);
    f = settings_frame(peer);
    CHECK(f);
    CHECK_INT(f->nsettings, 1);
    CHECK_INT(setting_of(f, 4), 262144);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(conn_window_after_the_session_sends_window_update)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_window(conn, st)\n"
                               "  conn:window{ connection = 4194304 }\n"
                               "end\n");
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    /* Without a session (HTTP/1.1) the window has nothing to act on. */
    CHECK_INT(window(pc, 1), 0);
    CHECK_INT(R.nlog, 0);
    rp_read(peer);
    CHECK_INT(peer->nf, 0);
    sluice_policy_conn_set_session(pc, peer->s);
    CHECK_INT(window(pc, 1), 0);
    CHECK_INT(R.nlog, 0);
    rp_read(peer);
    CHECK_INT(rp_count(peer, SL_FRAME_WINDOW_UPDATE, RP_ANY), 1);
    const rp_frame *w = rp_find(peer, SL_FRAME_WINDOW_UPDATE, 0);
    CHECK(w);
    CHECK_INT(w->increment, 4194304 - (1u << 20)); /* up from the 1 MiB default */
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

static const lcase window_late[] = {
    {"conn:window({ adaptive = true })", "conn:window: adaptive only in on_connection"},
    {"conn:window({ adaptive = false })", "conn:window: adaptive only in on_connection"},
    {"conn:window({ min = 65535 })", "conn:window: min only in on_connection"},
    {"conn:window({ max = 65535 })", "conn:window: max only in on_connection"},
    {"conn:window({ connection_max = 65535 })", "conn:window: connection_max only in on_connection"},
    {"conn:push(false)", "conn:push: only in on_connection"},
    {"conn:push(true)", "conn:push: only in on_connection"},
    {"conn:window({ connection = 4194304 }) conn:settings({ bogus = 1 })",
     "conn:settings: unknown setting 'bogus'"},
    {"conn:limits({ ping = { 1, 1 } }) error('late')", "late"},
};

TEST(connection_only_bindings_fail_after_on_connection)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    char src[8192];
    size_t n = sizeof window_late / sizeof window_late[0];
    cases_src(src, sizeof src, window_late, n, "conn",
              "function on_window(conn, st) cases[st.bytes_in](conn) end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(window(pc, i + 1), 0);
        if (strcmp(last_log(), case_fail("on_window", i, window_late[i].msg)) != 0) {
            T_FAIL("case %zu: %s", i + 1, window_late[i].lua);
            CHECK_TXT(last_log(), case_fail("on_window", i, window_late[i].msg));
        }
        CHECK_INT(R.nlog, i + 1);
    }
    rp_read(peer);
    CHECK_INT(peer->nf, 0); /* no WINDOW_UPDATE, no SETTINGS */
    /* The PING budget was not lowered either. */
    CHECK(rp_ping(peer, "ping0001", 0) >= 0);
    CHECK(rp_ping(peer, "ping0002", 0) >= 0);
    rp_read(peer);
    CHECK_INT(ping_acks(peer), 2);
    CHECK(!rp_find(peer, SL_FRAME_GOAWAY, 0));
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

static const lcase over_limit[] = {
    {"stream:window(2097152)",
     "stream:window: 2097152 is above this connection's limit of 1048576 bytes"},
    {"stream.conn:settings({ initial_window = 2097152 })",
     "conn:settings: initial_window: 2097152 is above this connection's limit of 1048576 bytes"},
    {"stream.conn:window({ stream = 1048577 })",
     "conn:window: stream: 1048577 is above this connection's limit of 1048576 bytes"},
};

TEST(window_above_the_host_limit_is_an_error)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    char src[8192];
    size_t n = sizeof over_limit / sizeof over_limit[0];
    cases_src(src, sizeof src, over_limit, n, "stream",
              "function on_request(stream, req)\n"
              "  if req.path == '/ok' then stream:window(1048576) return end\n"
              "  cases[tonumber(req.path:sub(2))](stream)\n"
              "end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    rp *peer = server_with_stream(0); /* a POST: its window may be raised */
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_conn_set_window_limit(pc, 1048576);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    for (size_t i = 0; i < n; i++) {
        char path[16];
        snprintf(path, sizeof path, "/%zu", i + 1);
        CHECK_INT(request(ps, path), 0);
        if (strcmp(last_log(), case_fail("on_request", i, over_limit[i].msg)) != 0) {
            T_FAIL("case %zu: %s", i + 1, over_limit[i].lua);
            CHECK_TXT(last_log(), case_fail("on_request", i, over_limit[i].msg));
        }
    }
    rp_read(peer);
    CHECK_INT(peer->nf, 0);
    /* At the limit it is done. */
    CHECK_INT(request(ps, "/ok"), 0);
    CHECK_INT(R.nlog, n);
    rp_read(peer);
    const rp_frame *w = rp_find(peer, SL_FRAME_WINDOW_UPDATE, 1);
    CHECK(w);
    CHECK_INT(w->increment, 1048576 - 65535);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(limits_after_the_session_change_its_budget)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_window(conn, st)\n"
                               "  conn:limits{ ping = { 2, 1 } }\n"
                               "end\n"
                               "function on_request(stream, req)\n"
                               "  stream.conn:limits{ ping = { burst = 1, per_sec = 1 } }\n"
                               "end\n");
    CHECK(p);
    /* on_window, positional form: the third PING of a burst is too many. */
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    CHECK_INT(window(pc, 1), 0);
    CHECK(rp_ping(peer, "ping0001", 0) >= 0);
    CHECK(rp_ping(peer, "ping0002", 0) >= 0);
    CHECK(rp_ping(peer, "ping0003", 0) < 0);
    rp_read(peer);
    CHECK_INT(ping_acks(peer), 2);
    const rp_frame *g = rp_find(peer, SL_FRAME_GOAWAY, 0);
    CHECK(g);
    CHECK_INT(g->code, SLUICE_H2_ENHANCE_YOUR_CALM);
    close_conn(pc);
    rp_free(peer);

    /* on_request, named form: the second. */
    peer = server_with_stream(1);
    CHECK(peer);
    pc = conn_of(p, 2, "C2");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK(rp_ping(peer, "ping0001", 0) >= 0);
    CHECK(rp_ping(peer, "ping0002", 0) < 0);
    rp_read(peer);
    CHECK_INT(ping_acks(peer), 1);
    g = rp_find(peer, SL_FRAME_GOAWAY, 0);
    CHECK(g);
    CHECK_INT(g->code, SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(R.nlog, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* ---- on_request ------------------------------------------------------------------------ */

TEST(on_request_reads_the_request)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] =
        "function on_request(stream, req)\n"
        "  sluice.log('info', req.method, req.path, req.authority, req.scheme, req.status, stream.id)\n"
        "  sluice.log('info', req:header('accept'), req:header('cookie'), req:header('x-none'),\n"
        "             req:header('user-agent'), req:header('Accept'))\n"
        "  local h = req.headers\n"
        "  sluice.log('info', h.accept, h.cookie, h['user-agent'], h[':path'], h.priority)\n"
        "  h.accept = 'changed' -- a fresh table: the request stays\n"
        "  sluice.log('info', req.headers.accept, req.nosuch, stream.nosuch, stream.urgency,\n"
        "             stream.incremental, stream.conn.id)\n"
        "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 9, "C1");
    sluice_policy_stream *ps = stream_of(pc, 5, "S5");
    CHECK_INT(request(ps, "/style.css?v=2"), 0);
    CHECK_INT(R.nlog, 4);
    CHECK_TXT(R.log[0], log_at(src, "req.method", "GET /style.css?v=2 example.com https nil 5"));
    CHECK_TXT(R.log[1], log_at(src, "req:header('accept')", "text/css a=1; b=2 nil curl/8.0 nil"));
    CHECK_TXT(R.log[2], log_at(src, "h.accept, h.cookie", "text/css, */* a=1; b=2 curl/8.0 nil nil"));
    CHECK_TXT(R.log[3], log_at(src, "req.headers.accept", "text/css, */* nil nil 3 false 9"));
    CHECK_INT(R.nops, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(priority_applies_when_the_hook_returns)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  if req.path == '/a.css' then\n"
                              "    stream:priority(1, true)\n"
                              "    sluice.log('info', stream.urgency, stream.incremental)\n"
                              "  else\n"
                              "    stream:priority(5) -- incremental stays\n"
                              "  end\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(peer->s, 1, &u, &inc), 0);
    CHECK_INT(u, 3);
    CHECK_INT(inc, 0);
    CHECK_INT(request(ps, "/a.css"), 0);
    CHECK_INT(R.nlog, 1);
    /* During the hook the session still had the old priority. */
    CHECK_TXT(R.log[0], log_at(src, "stream.urgency", "3 false"));
    CHECK_INT(sluice_session_get_priority(peer->s, 1, &u, &inc), 0);
    CHECK_INT(u, 1);
    CHECK_INT(inc, 1);
    CHECK_INT(request(ps, "/b"), 0);
    CHECK_INT(sluice_session_get_priority(peer->s, 1, &u, &inc), 0);
    CHECK_INT(u, 5);
    CHECK_INT(inc, 1);
    CHECK_INT(R.nlog, 1);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(priority_dropped_when_the_hook_fails_later)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  stream:priority(0, true)\n"
                              "  stream:tag('route', 'static')\n"
                              "  local n = req.nosuch + 1\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/x"), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_INT(R.level[0], SLUICE_LOG_ERROR);
    CHECK_TXT(R.log[0], fail_at("on_request", src, "req.nosuch + 1",
                                "attempt to perform arithmetic on a nil value (field 'nosuch')"));
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(peer->s, 1, &u, &inc), 0);
    CHECK_INT(u, 3);
    CHECK_INT(inc, 0);
    CHECK_INT(R.nops, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* "unchanged unless given" counts what the hook itself set a moment ago. */
TEST(priority_without_incremental_keeps_the_hooks_own_choice)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_request(stream, req)\n"
                               "  stream:priority(5, true) -- images: incremental\n"
                               "  stream:priority(1)       -- but this one is urgent\n"
                               "end\n");
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/hero.jpg"), 0);
    CHECK_INT(R.nlog, 0);
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(peer->s, 1, &u, &inc), 0);
    CHECK_INT(u, 1);
    CHECK_INT(inc, 1);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(stream_actions_reach_the_host_with_exact_arguments)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_request(stream, req)\n"
                               "  stream:push('/a.css', { accept = 'text/css' })\n"
                               "  stream:push('/b.js?v=1')\n"
                               "  stream:push('/c.js', {})\n"
                               "  stream:hint('</a.css>; rel=preload; as=style')\n"
                               "  stream:hint({ '</a.css>; rel=preload', '</b.js>; rel=preload' })\n"
                               "  stream:upstream('api')\n"
                               "  stream:tag('route', 'static')\n"
                               "  stream:tag('n', 42)\n"
                               "  stream:respond(403, 'denied')\n"
                               "  stream:respond(204)\n"
                               "  stream:respond(503, '')\n"
                               "end\n");
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 3, "S3");
    CHECK_INT(request(ps, "/index.html"), 0);
    CHECK_INT(R.nlog, 0);
    CHECK_TXT(R.ops, "C1/S3 push /a.css [accept: text/css]\n"
                     "C1/S3 push /b.js?v=1\n"
                     "C1/S3 push /c.js\n"
                     "C1/S3 hint [link: </a.css>; rel=preload; as=style]\n"
                     "C1/S3 hint [link: </a.css>; rel=preload] [link: </b.js>; rel=preload]\n"
                     "C1/S3 upstream api\n"
                     "C1/S3 tag route=static\n"
                     "C1/S3 tag n=42\n"
                     "C1/S3 respond 403 [denied]\n"
                     "C1/S3 respond 204 NULL\n"
                     "C1/S3 respond 503 []\n");
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* CHECK_TXT stops at the NUL above: check the body's length separately. */
static size_t respond_len;
static int op_respond_len(void *cud, void *sud, int status, const char *body, size_t len)
{
    (void)cud;
    (void)sud;
    (void)status;
    respond_len = body ? len : (size_t)-1;
    return 0;
}

TEST(respond_body_keeps_its_length)
{
    sluice_policy_host h = host_all();
    h.respond = op_respond_len;
    sluice_policy_engine *e = eng_host(NULL, &h);
    CHECK(e);
    sluice_policy *p = load(e, "function on_request(stream, req)\n"
                               "  stream:respond(200, 'a\\0b\\0')\n"
                               "end\n");
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    respond_len = 0;
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(respond_len, 4);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(push_with_several_headers)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_request(stream, req)\n"
                               "  local h = {}\n"
                               "  for i = 1, 16 do h['x-h' .. i] = tostring(i) end\n"
                               "  stream:push('/all', h)\n"
                               "end\n");
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 0);
    CHECK_INT(R.nops, 1);
    CHECK_PREFIX(R.ops, "C1/S1 push /all [");
    for (int i = 1; i <= 16; i++) {
        char want[32];
        snprintf(want, sizeof want, "[x-h%d: %d]", i, i);
        CHECK_HAS(R.ops, want);
    }
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(stream_window_sends_window_update)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_request(stream, req)\n"
                               "  stream:window(200000)\n"
                               "end\n");
    CHECK(p);
    rp *peer = server_with_stream(0);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/up"), 0);
    CHECK_INT(R.nlog, 0);
    rp_read(peer);
    CHECK_INT(rp_count(peer, SL_FRAME_WINDOW_UPDATE, RP_ANY), 1);
    const rp_frame *w = rp_find(peer, SL_FRAME_WINDOW_UPDATE, 1);
    CHECK(w);
    CHECK_INT(w->increment, 200000 - 65535);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(actions_dropped_when_the_hook_fails)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  stream:push('/a.css')\n"
                              "  stream:hint('</a.css>; rel=preload')\n"
                              "  stream:upstream('api')\n"
                              "  stream:tag('route', 'static')\n"
                              "  stream:respond(403)\n"
                              "  error('changed my mind')\n"
                              "end\n"
                              "function on_response(stream, res)\n"
                              "  res:set('x-a', '1')\n"
                              "  res:remove('server')\n"
                              "  error({})\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], fail_at("on_request", src, "changed my mind", "changed my mind"));
    sluice_policy_message m = res_msg("/");
    CHECK_INT(sluice_policy_on_response(ps, &m), 0);
    CHECK_INT(R.nlog, 2);
    CHECK_PREFIX(R.log[1], "policy t.lua: on_response failed (default applies): ");
    CHECK_INT(R.nops, 0);
    sluice_policy_stats st = pstats(p);
    CHECK_INT(st.calls, 2);
    CHECK_INT(st.errors, 2);
    CHECK_INT(st.budget_exceeded, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

static const lcase stream_bad[] = {
    {"stream:push('a.css')", "stream:push: the path must start with '/'"},
    {"stream:push('')", "stream:push: the path must start with '/'"},
    {"stream:push('/a b')", "stream:push: space or control character in the path"},
    {"stream:push('/a\\tb')", "stream:push: space or control character in the path"},
    {"stream:push('/a\\127')", "stream:push: space or control character in the path"},
    {"stream:push('/a', { ['X-Up'] = '1' })",
     "stream:push: invalid field name 'X-Up' (lowercase token characters only)"},
    {"stream:push('/a', { x = 'a\\r\\nb' })", "stream:push: CR, LF or NUL in a field value"},
    {"stream:push('/a', { x = 'a\\0b' })", "stream:push: CR, LF or NUL in a field value"},
    {"stream:push('/a', { [':path'] = '/b' })",
     "stream:push: invalid field name ':path' (lowercase token characters only)"},
    {"stream:push('/a', { [''] = '1' })", "stream:push: empty field name"},
    {"local h = {} for i = 1, 17 do h['x-' .. i] = '1' end stream:push('/a', h)",
     "stream:push: at most 16 headers"},
    {"stream:push('/a', 'accept')", "bad argument #2 to 'push' (table expected, got string)"},
    {"stream:push()", "bad argument #1 to 'push' (string expected, got no value)"},
    {"stream:hint({})", "stream:hint: 1 to 32 links"},
    {"local l = {} for i = 1, 33 do l[i] = '</x>' end stream:hint(l)",
     "stream:hint: 1 to 32 links"},
    {"stream:hint({ '</a>', 5 })", "stream:hint: link 2 is not a string"},
    {"stream:hint('</a>\\n')", "stream:hint: CR, LF or NUL in a field value"},
    {"stream:hint({ '</a>', '</b>\\r' })", "stream:hint: CR, LF or NUL in a field value"},
    {"stream:hint(true)", "bad argument #1 to 'hint' (string expected, got boolean)"},
    {"stream:respond(99)", "stream:respond: status must be an integer in 200..599"},
    {"stream:respond(103)", "stream:respond: status must be an integer in 200..599"},
    {"stream:respond(600)", "stream:respond: status must be an integer in 200..599"},
    {"stream:respond(200.5)", "stream:respond: status must be an integer in 200..599"},
    {"stream:respond('ok')", "stream:respond: status must be an integer in 200..599"},
    {"stream:respond(200, {})", "bad argument #2 to 'respond' (string expected, got table)"},
    {"stream:upstream()", "bad argument #1 to 'upstream' (string expected, got no value)"},
    {"stream:tag('Route', 'x')",
     "stream:tag: invalid field name 'Route' (lowercase token characters only)"},
    {"stream:tag(('k'):rep(65), 'x')", "stream:tag: key up to 64 and value up to 256 bytes"},
    {"stream:tag('k', ('v'):rep(257))", "stream:tag: key up to 64 and value up to 256 bytes"},
    {"stream:tag('k', 'a\\0b')", "stream:tag: CR, LF or NUL in a field value"},
    {"stream:tag('k')", "bad argument #2 to 'tag' (string expected, got no value)"},
    {"stream:priority(8)", "stream:priority: urgency must be an integer in 0..7"},
    {"stream:priority(-1)", "stream:priority: urgency must be an integer in 0..7"},
    {"stream:priority('high')", "stream:priority: urgency must be an integer in 0..7"},
    {"stream:priority(1, 1)", "bad argument #2 to 'priority' (boolean expected, got number)"},
    {"stream:window(-1)", "stream:window must be an integer in 0..2147483647"},
    {"stream:window(2^31)", "stream:window must be an integer in 0..2147483647"},
    {"stream.push(stream.conn, '/a')",
     "bad argument #1 to 'push' (sluice.stream expected, got sluice.conn)"},
    {"stream.conn.settings(stream, {})",
     "bad argument #1 to 'settings' (sluice.conn expected, got sluice.stream)"},
    {"stream.priority(req, 1)",
     "bad argument #1 to 'priority' (sluice.stream expected, got sluice.message)"},
    {"stream.priority({}, 1)", "bad argument #1 to 'priority' (sluice.stream expected, got table)"},
    {"req.header(stream, 'x')",
     "bad argument #1 to 'header' (sluice.message expected, got sluice.stream)"},
    {"stream.id = 5", "stream fields are read-only: use its methods"},
    {"stream:nosuch()", "attempt to call a nil value (method 'nosuch')"},
    {"req:set('x', '1')", "req is read-only: change the response in on_response"},
    {"req:add('x', '1')", "req is read-only: change the response in on_response"},
    {"req:remove('x')", "req is read-only: change the response in on_response"},
    {"stream.conn:push(false)", "conn:push: only in on_connection"},
    {"stream.conn:window({ adaptive = true })", "conn:window: adaptive only in on_connection"},
    {"for i = 1, 4097 do stream:tag('k', 'v') end", "too many actions in one hook call"},
    {"stream:push('/ok') stream:priority(9)", "stream:priority: urgency must be an integer in 0..7"},
};

TEST(misused_stream_bindings_fail_the_hook_with_their_message)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    char src[32768];
    size_t n = sizeof stream_bad / sizeof stream_bad[0];
    cases_src(src, sizeof src, stream_bad, n, "stream, req",
              "function on_request(stream, req) cases[stream.id](stream, req) end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        sluice_policy_stream *ps = stream_of(pc, (uint32_t)i + 1, "S1");
        CHECK(ps);
        size_t before = R.nlog;
        CHECK_INT(request(ps, "/"), 0);
        const char *want = case_fail("on_request", i, stream_bad[i].msg);
        if (R.nlog != before + 1 || strcmp(last_log(), want) != 0) {
            fprintf(stderr, "case %zu: %s\n    got  \"%s\"\n    want \"%s\"\n", i + 1,
                    stream_bad[i].lua, R.nlog == before ? "(nothing logged)" : last_log(), want);
            bad++;
        }
        sluice_policy_stream_free(ps);
    }
    CHECK_INT(bad, 0);
    CHECK_INT(R.nops, 0); /* nothing of a failed hook reached the host */
    CHECK_INT(pstats(p).errors, n);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* A list where a table of name = value was expected: the error says so,
 * with the policy's file and line. */
TEST(push_headers_given_as_a_list_are_refused_clearly)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  stream:push('/a.css', { 'accept: text/css' })\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nops, 0);
    CHECK_INT(R.nlog, 1);
    CHECK_PREFIX(last_log(), fail_at("on_request", src, "stream:push", "stream:push"));
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* policy.h: a host op that is NULL refuses its action with a Lua error
 * naming it. */
TEST(host_without_an_op_refuses_it_with_a_lua_error)
{
    sluice_policy_host h = host_all();
    h.push = NULL;
    h.upstream = NULL;
    sluice_policy_engine *e = eng_host(NULL, &h);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  local ok, err = pcall(function() stream:push('/a.css') end)\n"
                              "  sluice.log('info', ok, err)\n"
                              "  ok, err = pcall(function() stream:upstream('api') end)\n"
                              "  sluice.log('info', ok, err)\n"
                              "  stream:tag('done', 'yes')\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(R.ops, "C1/S1 tag done=yes\n");
    CHECK(R.nlog >= 2);
    CHECK_PREFIX(R.log[0], log_at(src, "sluice.log('info', ok, err)\n  ok", "false t.lua:2: "));
    CHECK_HAS(R.log[0], "push");
    CHECK_PREFIX(R.log[1], "policy t.lua: t.lua:5: false t.lua:4: ");
    CHECK_HAS(R.log[1], "upstream");
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(ops_that_fail_are_logged_at_debug)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_request(stream, req)\n"
                               "  stream:tag('route', 'static')\n"
                               "  stream:priority(2)\n"
                               "end\n");
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_stream *ps = stream_of(pc, 9, "S9"); /* the session has no stream 9 */
    R.op_rv = SLUICE_ERR_LIMIT;
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(R.ops, "C1/S9 tag route=static\n");
    CHECK_INT(R.nlog, 2);
    char want[256];
    snprintf(want, sizeof want, "policy t.lua: tag on stream 9 not done: %s",
             sluice_strerror(SLUICE_ERR_LIMIT));
    CHECK_TXT(R.log[0], want);
    CHECK_INT(R.level[0], SLUICE_LOG_DEBUG);
    snprintf(want, sizeof want, "policy t.lua: priority on stream 9 not done: %s",
             sluice_strerror(SLUICE_ERR_NOT_FOUND));
    CHECK_TXT(R.log[1], want);
    CHECK_INT(R.level[1], SLUICE_LOG_DEBUG);
    CHECK_INT(pstats(p).errors, 0); /* the hook itself was fine */
    sluice_policy_stream_free(ps);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* ---- on_response --------------------------------------------------------------------- */

TEST(on_response_reads_and_edits_the_response)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] =
        "function on_response(stream, res)\n"
        "  sluice.log('info', res.status, math.type(res.status), res.path, res.method,\n"
        "             res:header('content-type'), res:header('link'), res.headers.link)\n"
        "  res:set('cache-control', 'no-store')\n"
        "  res:add('link', '</c.css>; rel=preload')\n"
        "  res:remove('server')\n"
        "  res:set('x-powered-by', nil)\n"
        "  res:set('x-n', 5)\n"
        "  stream:priority(6, true)\n"
        "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    sluice_policy_message m = res_msg("/a.css");
    CHECK_INT(sluice_policy_on_response(ps, &m), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], log_at(src, "res.status", "200 integer /a.css GET text/css "
                                                  "</a.css>; rel=preload "
                                                  "</a.css>; rel=preload, </b.js>; rel=preload"));
    CHECK_TXT(R.ops, "C1/S1 header set cache-control=no-store\n"
                     "C1/S1 header add link=</c.css>; rel=preload\n"
                     "C1/S1 header remove server\n"
                     "C1/S1 header remove x-powered-by\n"
                     "C1/S1 header set x-n=5\n");
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(peer->s, 1, &u, &inc), 0);
    CHECK_INT(u, 6);
    CHECK_INT(inc, 1);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

static const lcase res_bad[] = {
    {"res:set('Cache-Control', 'x')",
     "res:set: invalid field name 'Cache-Control' (lowercase token characters only)"},
    {"res:set('x', 'a\\r\\nb')", "res:set: CR, LF or NUL in a field value"},
    {"res:add('x')", "bad argument #2 to 'add' (string expected, got no value)"},
    {"res:set('x')", "bad argument #2 to 'set' (string expected, got no value)"},
    {"res:remove()", "bad argument #1 to 'remove' (string expected, got no value)"},
    {"res:add('Link', 'x')",
     "res:add: invalid field name 'Link' (lowercase token characters only)"},
    {"res:remove('Server')",
     "res:remove: invalid field name 'Server' (lowercase token characters only)"},
    {"res.status = 500", "req and res are read-only: change response fields with res:set"},
};

TEST(misused_response_bindings_fail_the_hook)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    char src[8192];
    size_t n = sizeof res_bad / sizeof res_bad[0];
    cases_src(src, sizeof src, res_bad, n, "stream, res",
              "function on_response(stream, res) cases[stream.id](stream, res) end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        sluice_policy_stream *ps = stream_of(pc, (uint32_t)i + 1, "S1");
        sluice_policy_message m = res_msg("/");
        CHECK_INT(sluice_policy_on_response(ps, &m), 0);
        const char *want = case_fail("on_response", i, res_bad[i].msg);
        if (strcmp(last_log(), want) != 0) {
            fprintf(stderr, "case %zu: %s\n    got  \"%s\"\n    want \"%s\"\n", i + 1,
                    res_bad[i].lua, last_log(), want);
            bad++;
        }
        sluice_policy_stream_free(ps);
    }
    CHECK_INT(bad, 0);
    CHECK_INT(R.nlog, n);
    CHECK_INT(R.nops, 0);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* A req kept from one request is stale in the next request's hook too: it
 * never shows another request's message. */
TEST(request_handle_kept_is_stale_in_the_next_request)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  if kept then sluice.log('info', pcall(function() return kept.path end)) end\n"
                              "  kept = req\n"
                              "  sluice.log('info', req.path)\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *s1 = stream_of(pc, 1, "S1");
    sluice_policy_stream *s3 = stream_of(pc, 3, "S3");
    CHECK_INT(request(s1, "/first"), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(last_log(), log_at(src, "req.path)", "/first"));
    CHECK_INT(request(s3, "/second"), 0);
    CHECK_INT(R.nlog, 3);
    CHECK_TXT(R.log[1], log_at(src, "pcall", "false t.lua:2: request/response handles are valid "
                                             "only during their hook"));
    CHECK_TXT(last_log(), log_at(src, "req.path)", "/second"));
    sluice_policy_stream_free(s1);
    sluice_policy_stream_free(s3);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* Handles read inside a coroutine land on the coroutine's stack. */
/* Loading runs the chunk under larger budgets than a hook gets (ten times,
 * at least 10M instructions and a second); the dry run of on_connection
 * is held to a hook's. */
TEST(load_budget_is_larger_than_a_hooks)
{
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.max_instructions = 100000;
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    static const char big_top[] = "local t = {}\n"
                                  "for i = 1, 200000 do t[i] = i end\n"
                                  "function on_request(stream, req)\n"
                                  "  for i = 1, 200000 do end\n"
                                  "end\n";
    sluice_policy *p = load(e, big_top);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(last_log(), fail_at("on_request", big_top, "for i = 1, 200000 do end",
                                  "instruction budget exceeded"));
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    static const char big_conn[] = "function on_connection(conn)\n"
                                   "  for i = 1, 200000 do end\n"
                                   "end\n";
    CHECK(load(e, big_conn) == NULL);
    CHECK_TXT(ERR, "t.lua:2: instruction budget exceeded (in a dry run of on_connection)");
    sluice_policy_engine_free(e);
}

TEST(handles_from_inside_a_coroutine)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] =
        "function on_request(stream, req)\n"
        "  local c, p = coroutine.wrap(function() return stream.conn, req.path end)()\n"
        "  sluice.log('info', c == stream.conn, c.id, p)\n"
        "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 7, "C7");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/co"), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(last_log(), log_at(src, "sluice.log", "true 7 /co"));
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(request_handle_kept_for_later_is_stale)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  kept_req = req\n"
                              "end\n"
                              "function on_response(stream, res)\n"
                              "  if res.status == 200 then local p = kept_req.path end\n"
                              "  if res.status == 201 then kept_req:header('accept') end\n"
                              "  if res.status == 202 then kept_res = res end\n"
                              "end\n"
                              "function on_window(conn, st)\n"
                              "  kept_res:set('x', '1')\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 0);
    sluice_policy_message m = res_msg("/");
    CHECK_INT(sluice_policy_on_response(ps, &m), 0);
    CHECK_TXT(last_log(), fail_at("on_response", src, "kept_req.path",
                                  "request/response handles are valid only during their hook"));
    m.status = 201;
    CHECK_INT(sluice_policy_on_response(ps, &m), 0);
    CHECK_TXT(last_log(), fail_at("on_response", src, "kept_req:header",
                                  "request/response handles are valid only during their hook"));
    m.status = 202;
    CHECK_INT(sluice_policy_on_response(ps, &m), 0);
    CHECK_INT(R.nlog, 2);
    CHECK_INT(window(pc, 1), 0);
    CHECK_TXT(last_log(), fail_at("on_window", src, "kept_res:set",
                                  "request/response handles are valid only during their hook"));
    CHECK_INT(R.nops, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* ---- stale handles ---------------------------------------------------------------------- */

TEST(stream_handle_is_gone_after_the_stream_is_freed)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  kept = stream\n"
                              "end\n"
                              "function on_window(conn, st)\n"
                              "  if st.bytes_in == 1 then sluice.log('info', kept.id) end\n"
                              "  if st.bytes_in == 2 then kept:priority(1) end\n"
                              "  if st.bytes_in == 3 then local id = kept.id end\n"
                              "  if st.bytes_in == 4 then kept:tag('a', 'b') end\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(pc, peer->s);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(window(pc, 1), 0);
    CHECK_TXT(last_log(), log_at(src, "kept.id) end", "1"));
    sluice_policy_stream_free(ps);
    CHECK_INT(window(pc, 2), 0);
    CHECK_TXT(last_log(), fail_at("on_window", src, "kept:priority", "stream is gone"));
    CHECK_INT(window(pc, 3), 0);
    CHECK_TXT(last_log(), fail_at("on_window", src, "local id = kept.id", "stream is gone"));
    CHECK_INT(window(pc, 4), 0);
    CHECK_TXT(last_log(), fail_at("on_window", src, "kept:tag", "stream is gone"));
    CHECK_INT(R.nlog, 4);
    CHECK_INT(R.nops, 0);
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(peer->s, 1, &u, &inc), 0);
    CHECK_INT(u, 3);
    close_conn(pc);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(conn_handle_is_gone_after_the_connection_closes)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_window(conn, st)\n"
                              "  if st.bytes_in == 1 then kept = conn; kept_s = kept_stream end\n"
                              "  if st.bytes_in == 2 then sluice.log('info', kept.ip) end\n"
                              "  if st.bytes_in == 3 then kept:limits{ ping = { 1, 1 } } end\n"
                              "  if st.bytes_in == 4 then kept_s:tag('a', 'b') end\n"
                              "  if st.bytes_in == 5 then sluice.log('info', conn.id) end\n"
                              "end\n"
                              "function on_request(stream, req) kept_stream = stream end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *a = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(a, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(window(a, 1), 0);
    /* The host forgets to free the stream first: closing frees it too. */
    close_conn(a);
    sluice_policy_conn *b = conn_of(p, 2, "C2");
    CHECK_INT(window(b, 2), 0);
    CHECK_TXT(last_log(), fail_at("on_window", src, "kept.ip", "connection is gone"));
    CHECK_INT(window(b, 3), 0);
    CHECK_TXT(last_log(), fail_at("on_window", src, "kept:limits", "connection is gone"));
    CHECK_INT(window(b, 4), 0);
    CHECK_TXT(last_log(), fail_at("on_window", src, "kept_s:tag", "stream is gone"));
    CHECK_INT(window(b, 5), 0);
    CHECK_TXT(last_log(), log_at(src, "conn.id) end", "2"));
    CHECK_INT(R.nops, 0);
    close_conn(b);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* A stream handle kept from connection A and used in B's hook acts on A:
 * A's session and A's user data. */
TEST(stream_handle_of_another_connection_acts_on_its_own)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_request(stream, req) kept = stream end\n"
                               "function on_window(conn, st)\n"
                               "  kept:tag('from', tostring(conn.id))\n"
                               "  kept:priority(0)\n"
                               "end\n");
    CHECK(p);
    rp *peer = server_with_stream(1);
    CHECK(peer);
    sluice_policy_conn *a = conn_of(p, 1, "C1");
    sluice_policy_conn_set_session(a, peer->s);
    sluice_policy_stream *ps = stream_of(a, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    sluice_policy_conn *b = conn_of(p, 2, "C2");
    CHECK_INT(window(b, 1), 0);
    CHECK_INT(R.nlog, 0);
    CHECK_TXT(R.ops, "C1/S1 tag from=2\n");
    int u = -1, inc = -1;
    CHECK_INT(sluice_session_get_priority(peer->s, 1, &u, &inc), 0);
    CHECK_INT(u, 0);
    sluice_policy_stream_free(ps);
    close_conn(a);
    close_conn(b);
    rp_free(peer);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(switch_to_a_new_version_makes_old_handles_stale)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char v1[] = "function on_request(stream, req) ks = stream; kc = stream.conn end\n"
                             "function on_window(conn, st)\n"
                             "  if st.bytes_in == 1 then sluice.log('info', 'v1 sees', ks.id) end\n"
                             "  if st.bytes_in == 2 then sluice.log('info', 'v1 sees', kc.ip) end\n"
                             "  if st.bytes_in == 3 then sluice.log('info', 'v1 on', conn.id, conn.policy) end\n"
                             "end\n";
    static const char v2[] =
        "function on_request(stream, req) sluice.log('info', 'v2 request', stream.id, stream.conn.policy) end\n"
        "function on_window(conn, st) sluice.log('info', 'v2 on', conn.id, conn.policy) end\n";
    sluice_policy *p1 = load(e, v1);
    CHECK(p1);
    sluice_policy *p2 = load_as(e, "t2.lua", v2);
    CHECK(p2);
    sluice_policy_conn *a = conn_of(p1, 1, "C1");
    sluice_policy_conn *b = conn_of(p1, 2, "C2");
    sluice_policy_stream *ps = stream_of(a, 7, "S7");
    CHECK_INT(request(ps, "/"), 0);
    /* Switching to the version it has changes nothing. */
    sluice_policy_conn_switch(a, p1);
    CHECK_INT(window(b, 1), 0);
    CHECK_TXT(last_log(), log_at(v1, "'v1 sees', ks.id", "v1 sees 7"));

    sluice_policy_conn_switch(a, p2);
    CHECK(sluice_policy_conn_policy(a) == p2);
    CHECK_INT(window(a, 3), 0);
    CHECK_TXT(last_log(), "policy t2.lua: t2.lua:2: v2 on 1 t2.lua");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(last_log(), "policy t2.lua: t2.lua:1: v2 request 7 t2.lua");
    /* In the old state, A's handles are stale; B still runs there. */
    CHECK_INT(window(b, 1), 0);
    CHECK_TXT(last_log(), fail_at("on_window", v1, "'v1 sees', ks.id", "stream is gone"));
    CHECK_INT(window(b, 2), 0);
    CHECK_TXT(last_log(), fail_at("on_window", v1, "'v1 sees', kc.ip", "connection is gone"));
    CHECK_INT(window(b, 3), 0);
    CHECK_TXT(last_log(), log_at(v1, "'v1 on'", "v1 on 2 t.lua"));
    CHECK_INT(pstats(p2).calls, 2);
    sluice_policy_stream_free(ps);
    close_conn(a);
    close_conn(b);
    sluice_policy_unref(p1);
    sluice_policy_unref(p2);
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

/* ---- budgets ------------------------------------------------------------------------------ */

/* A bomb that defeats the budget would hang the test: fail it instead. */
static void alarm_guard(unsigned seconds)
{
    signal(SIGALRM, SIG_DFL);
    alarm(seconds);
}

TEST(infinite_loop_is_stopped_and_the_connection_goes_on)
{
    alarm_guard(30);
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.max_instructions = 100000;
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  if req.path == '/loop' then\n"
                              "    local n = 0\n"
                              "    while true do n = n + 1 end\n"
                              "  end\n"
                              "  stream:tag('ok', req.path)\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/loop"), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_INT(R.level[0], SLUICE_LOG_ERROR);
    CHECK_TXT(R.log[0], fail_at("on_request", src, "while true", "instruction budget exceeded"));
    sluice_policy_stats st = pstats(p);
    CHECK_INT(st.calls, 1);
    CHECK_INT(st.errors, 1);
    CHECK_INT(st.budget_exceeded, 1);
    CHECK_INT(R.nops, 0);
    /* The next call has a budget of its own. */
    CHECK_INT(request(ps, "/next"), 0);
    CHECK_TXT(R.ops, "C1/S1 tag ok=/next\n");
    CHECK_INT(R.nlog, 1);
    st = pstats(p);
    CHECK_INT(st.calls, 2);
    CHECK_INT(st.errors, 1);
    CHECK_INT(st.budget_exceeded, 1);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
    alarm(0);
}

static const lcase spinners[] = {
    {"while true do pcall(function() while true do end end) end", NULL},
    {"while true do pcall(error, 'x') end", NULL},
    {"local function f() return f() end f()", NULL},
    {"local co = coroutine.wrap(function() while true do end end) co()", NULL},
    {"while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
     NULL},
    {"for i = 1, math.maxinteger do end", NULL},
    {"local s = ('x'):rep(1000) while true do s:find('y', 1, true) end", NULL},
};

/* Whatever the policy does to escape the budget, the call ends with it. */
TEST(budget_cannot_be_caught_or_escaped)
{
    alarm_guard(60);
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.max_instructions = 200000;
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    char src[8192];
    size_t n = sizeof spinners / sizeof spinners[0];
    cases_src(src, sizeof src, spinners, n, "stream",
              "function on_request(stream, req)\n"
              "  if req.path == '/' then stream:tag('ok', 'yes') return end\n"
              "  cases[stream.id](stream)\n"
              "  stream:tag('escaped', tostring(stream.id))\n"
              "end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    for (size_t i = 0; i < n; i++) {
        sluice_policy_stream *ps = stream_of(pc, (uint32_t)i + 1, "S1");
        size_t before = R.nlog;
        CHECK_INT(request(ps, "/spin"), 0);
        if (R.nlog != before + 1 || pstats(p).budget_exceeded != i + 1) {
            T_FAIL("case %zu escaped the budget: %s (%s)", i + 1, spinners[i].lua, last_log());
            return;
        }
        CHECK_PREFIX(last_log(), "policy t.lua: on_request failed (default applies): t.lua:");
        sluice_policy_stream_free(ps);
    }
    CHECK_INT(R.nops, 0);
    sluice_policy_stream *ps = stream_of(pc, 99, "S99");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(R.ops, "C1/S99 tag ok=yes\n");
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
    alarm(0);
}

TEST(wall_clock_limit_uses_the_host_clock)
{
    alarm_guard(30);
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.max_instructions = (uint64_t)1 << 50;
    o.max_time_ns = 20000000; /* 20 ms */
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  while true do end\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    R.now = 1000000000;
    R.tick = 1000000; /* each reading of the clock: 1 ms later */
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], fail_at("on_request", src, "while true", "time limit exceeded"));
    CHECK(R.now - 1000000000 >= 20000000);  /* it waited for 20 ms of host time */
    CHECK(R.now - 1000000000 < 200000000);  /* and not much more */
    sluice_policy_stats st = pstats(p);
    CHECK_INT(st.errors, 1);
    CHECK_INT(st.budget_exceeded, 1);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
    alarm(0);
}

static const lcase memory_bombs[] = {
    {"local t = {} local i = 0 while true do i = i + 1 t[i] = ('x'):rep(1000) .. i end", NULL},
    {"local s = 'x' while true do s = s .. s end", NULL},
    {"local t = {} for i = 1, 100 do t[i] = ('x'):rep(1048576 - i) end", NULL},
    {"local t = {} for i = 1, 1e7 do t[i] = i end", NULL},
    {"local t = {} for i = 1, 1e6 do t[#t + 1] = {} end", NULL},
    {"local t = {} for i = 1, 100 do t[i] = ('x'):rep(100000) end local s = table.concat(t) "
     "local u = table.concat({ s, s, s })",
     NULL},
    {"local t = {} while true do t[#t + 1] = coroutine.create(print) end", NULL},
};

TEST(memory_bombs_hit_the_cap_and_the_state_goes_on)
{
    alarm_guard(60);
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.max_memory = 8u << 20;
    o.max_instructions = 50000000;
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    char src[8192];
    size_t n = sizeof memory_bombs / sizeof memory_bombs[0];
    cases_src(src, sizeof src, memory_bombs, n, "stream",
              "function on_request(stream, req)\n"
              "  if req.path == '/' then stream:tag('ok', tostring(#shared)) return end\n"
              "  cases[stream.id](stream)\n"
              "end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    for (size_t i = 0; i < n; i++) {
        sluice_policy_stream *ps = stream_of(pc, (uint32_t)i + 1, "S1");
        size_t before = R.nlog;
        CHECK_INT(request(ps, "/bomb"), 0);
        if (R.nlog != before + 1 || pstats(p).budget_exceeded != i + 1) {
            T_FAIL("case %zu: %s: %s", i + 1, memory_bombs[i].lua, last_log());
            return;
        }
        CHECK_PREFIX(last_log(), "policy t.lua: on_request failed (default applies): ");
        CHECK_HAS(last_log(), "memory limit exceeded (8388608 bytes)");
        CHECK(pstats(p).memory <= o.max_memory);
        /* The state still works. */
        CHECK_INT(request(ps, "/"), 0);
        CHECK_INT(R.nlog, before + 1);
        CHECK_INT(R.nops, i + 1);
        sluice_policy_stream_free(ps);
    }
    sluice_policy_stats st = pstats(p);
    CHECK_INT(st.errors, n);
    CHECK(st.memory > 0);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
    alarm(0);
}

/* The issue: a hook that errors or exceeds its budget is logged with
 * file:line — the memory cap too. */
TEST(memory_cap_failure_names_file_and_line)
{
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.max_memory = 4u << 20;
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  local t = {}\n"
                              "  for i = 1, 1e6 do t[i] = ('x'):rep(100) .. i end\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(pstats(p).budget_exceeded, 1);
    CHECK_TXT(last_log(), fail_at("on_request", src, "for i", "memory limit exceeded (4194304 bytes)"));
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* sluice_policy_load: "On failure err holds name:line: message". */
TEST(budget_at_load_fails_the_load_with_file_and_line)
{
    alarm_guard(30);
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.max_memory = 4u << 20;
    o.max_instructions = 100000;
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    CHECK(!load(e, "local n = 0\n"
                   "while true do n = n + 1 end\n"));
    CHECK_TXT(ERR, "t.lua:2: instruction budget exceeded");
    CHECK(!load(e, "function on_connection(conn)\n"
                   "  while true do end\n"
                   "end\n"));
    CHECK_TXT(ERR, "t.lua:2: instruction budget exceeded (in a dry run of on_connection)");
    CHECK_INT(e->live, 0);
    CHECK_INT(R.nlog, 0);
    sluice_policy_engine_free(e);
    o.max_instructions = 10000000;
    e = eng(&o);
    CHECK(e);
    CHECK(!load(e, "local t = {}\n"
                   "for i = 1, 1e6 do t[i] = ('x'):rep(100) .. i end\n"));
    CHECK_TXT(ERR, "t.lua:2: memory limit exceeded (4194304 bytes)");
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
    alarm(0);
}

static const lcase string_bombs[] = {
    {"local s = string.rep('x', 2^40)", "resulting string too large"},
    {"local s = ('ab'):rep(2^20)", "resulting string too large"},
    {"local s = string.rep('x', 2^19, ('y'):rep(2^10))", "resulting string too large"},
    {"local s = ('x'):rep(2^10):gsub('x', ('y'):rep(2^11))", "resulting string too large"},
    {"local s = ('x'):rep(2^20 + 1)", "resulting string too large"},
    {"local s = string.rep('x', math.maxinteger)", "resulting string too large"},
};

TEST(string_rep_bombs_are_capped)
{
    alarm_guard(30);
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    char src[8192];
    size_t n = sizeof string_bombs / sizeof string_bombs[0];
    cases_src(src, sizeof src, string_bombs, n, "stream",
              "function on_request(stream, req)\n"
              "  if req.path == '/' then\n"
              "    stream:tag('n', #string.rep('', 2^62) .. ' ' .. #('x'):rep(2^20) .. ' ' ..\n"
              "               #string.rep('', 2^62, '') .. ' ' .. #('ab'):rep(3, ', '))\n"
              "    return\n"
              "  end\n"
              "  cases[stream.id](stream)\n"
              "end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        sluice_policy_stream *ps = stream_of(pc, (uint32_t)i + 1, "S1");
        CHECK_INT(request(ps, "/bomb"), 0);
        const char *want = case_fail("on_request", i, string_bombs[i].msg);
        if (strcmp(last_log(), want) != 0) {
            fprintf(stderr, "case %zu: %s\n    got  \"%s\"\n    want \"%s\"\n", i + 1,
                    string_bombs[i].lua, last_log(), want);
            bad++;
        }
        sluice_policy_stream_free(ps);
    }
    CHECK_INT(bad, 0);
    CHECK_INT(R.nlog, n);
    /* Empty pieces are done at once; exactly max_string is allowed. */
    sluice_policy_stream *ps = stream_of(pc, 99, "S99");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, n);
    CHECK_TXT(R.ops, "C1/S99 tag n=0 1048576 0 10\n");
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
    alarm(0);
}

static const lcase pattern_bombs[] = {
    {"local s = ('a'):rep(2^16) local i = s:find('.-.-.-.-.-.-.-.-.-b')", NULL},
    {"local s = ('a'):rep(2^16) local m = s:match('(.-)(.-)(.-)(.-)(.-)(.-)b')", NULL},
    {"local s = ('a'):rep(2^16) for w in s:gmatch('a*a*a*a*a*a*b') do end", NULL},
    {"local s = ('a'):rep(2^16) local r = s:gsub('.-.-.-.-.-.-b', 'x')", NULL},
    {"local s = ('a'):rep(2^20) local i = s:find(('a'):rep(2^19) .. 'b', 1, true)", NULL},
    {"local s = ('a'):rep(2^20) while true do s:find('b', 1, true) end", NULL},
    {"local s = ('a'):rep(30) local i = s:find(('a?'):rep(30) .. ('a'):rep(30) .. 'b')", NULL},
};

TEST(pattern_bombs_are_charged_to_the_budget)
{
    alarm_guard(60);
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    char src[8192];
    size_t n = sizeof pattern_bombs / sizeof pattern_bombs[0];
    cases_src(src, sizeof src, pattern_bombs, n, "stream",
              "function on_request(stream, req)\n"
              "  if req.path == '/' then\n"
              "    stream:tag('m', ('key=value'):match('(%w+)=(%w+)') .. ' ' ..\n"
              "               select(2, ('a.b.c'):gsub('%.', '/')))\n"
              "    return\n"
              "  end\n"
              "  cases[stream.id](stream)\n"
              "end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    for (size_t i = 0; i < n; i++) {
        sluice_policy_stream *ps = stream_of(pc, (uint32_t)i + 1, "S1");
        size_t before = R.nlog;
        CHECK_INT(request(ps, "/bomb"), 0);
        if (R.nlog != before + 1 || pstats(p).budget_exceeded != i + 1) {
            T_FAIL("case %zu not stopped by the budget: %s (%s)", i + 1, pattern_bombs[i].lua,
                   last_log());
            return;
        }
        CHECK_PREFIX(last_log(), "policy t.lua: on_request failed (default applies): t.lua:");
        sluice_policy_stream_free(ps);
    }
    sluice_policy_stream *ps = stream_of(pc, 99, "S99");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(R.ops, "C1/S99 tag m=key 2\n");
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
    alarm(0);
}

/* C functions of the safe libraries loop where count hooks do not fire:
 * they too must end within the call's budget. */
static const lcase c_loops[] = {
    {"table.move({}, 1, 2^40, 2)", NULL},
    {"local t = {} for i = 1, 200000 do table.insert(t, 1, i) end", NULL},
    {"local t = {} for i = 1, 200000 do t[i] = i end for i = 1, 200000 do table.remove(t, 1) end",
     NULL},
    {"local t = {} for i = 1, 2e5 do t[i] = i end while true do table.sort(t, function(a, b) "
     "return a > b end) end",
     NULL},
};

TEST(c_library_loops_are_bounded)
{
    alarm_guard(20);
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.max_time_ns = 500000000; /* 0.5 s */
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    R.real_clock = 1;
    char src[8192];
    size_t n = sizeof c_loops / sizeof c_loops[0];
    cases_src(src, sizeof src, c_loops, n, "stream",
              "function on_request(stream, req) cases[stream.id](stream) end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    for (size_t i = 0; i < n; i++) {
        sluice_policy_stream *ps = stream_of(pc, (uint32_t)i + 1, "S1");
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_INT(request(ps, "/"), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (s > 3.0 || pstats(p).budget_exceeded != i + 1) {
            T_FAIL("case %zu took %.1f s: %s (%s)", i + 1, s, c_loops[i].lua, last_log());
            return;
        }
        sluice_policy_stream_free(ps);
    }
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
    alarm(0);
}

/* A finalizer would run outside every budget (Lua runs no hooks in
 * __gc, and lua_close runs them all): policies cannot have one. */
TEST(finalizers_are_refused)
{
    alarm_guard(20);
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    CHECK(!load(e, "local mt = { __gc = function() while true do end end }\n"
                   "keep = setmetatable({}, mt)\n"));
    CHECK_TXT(ERR, "t.lua:2: setmetatable: __gc metamethods are not allowed");
    /* __gc added to the metatable afterwards does not make a finalizer
     * (Lua 5.4 §2.5.3): freeing the state does not run it. */
    sluice_policy *p = load(e, "local mt = {}\n"
                               "keep = setmetatable({}, mt)\n"
                               "mt.__gc = function() while true do end end\n"
                               "function on_request(stream, req)\n"
                               "  local m2 = {}\n"
                               "  setmetatable({}, m2)\n"
                               "  m2.__gc = function() while true do end end\n"
                               "end\n");
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    for (int i = 0; i < 100; i++)
        CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
    alarm(0);
}

TEST(an_error_in_each_hook_is_logged_and_the_default_applies)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_connection(conn) if conn.id ~= 0 then error('c') end end\n"
                              "function on_request(stream, req) error('q') end\n"
                              "function on_response(stream, res) res:set('x', '1') error('s') end\n"
                              "function on_window(conn, st) conn:window{ connection = 70000 } error('w') end\n"
                              "function on_close(conn, st) error('x') end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    CHECK_INT(pstats(p).calls, 1); /* the dry run */
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_session_options o = default_opt(), want = o;
    int push = 1;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    CHECK(same_opt(&o, &want));
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    sluice_policy_message m = res_msg("/");
    CHECK_INT(sluice_policy_on_response(ps, &m), 0);
    CHECK_INT(window(pc, 1), 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    CHECK_INT(R.nlog, 5);
    CHECK_TXT(R.log[0], "policy t.lua: on_connection failed (default applies): t.lua:1: c");
    CHECK_TXT(R.log[1], "policy t.lua: on_request failed (default applies): t.lua:2: q");
    CHECK_TXT(R.log[2], "policy t.lua: on_response failed (default applies): t.lua:3: s");
    CHECK_TXT(R.log[3], "policy t.lua: on_window failed (default applies): t.lua:4: w");
    CHECK_TXT(R.log[4], "policy t.lua: on_close failed (default applies): t.lua:5: x");
    for (int i = 0; i < 5; i++)
        CHECK_INT(R.level[i], SLUICE_LOG_ERROR);
    CHECK_INT(R.nops, 0);
    sluice_policy_stats st = pstats(p);
    CHECK_INT(st.calls, 6);
    CHECK_INT(st.errors, 5);
    CHECK_INT(st.budget_exceeded, 0);
    sluice_policy_unref(p);
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

/* ---- stats, shared, log, clock ----------------------------------------------------- */

TEST(on_window_and_on_close_get_the_stats)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] =
        "local function show(what, st)\n"
        "  sluice.log('info', what, st.rtt, st.recv_rate, st.send_rate, st.bytes_in, st.bytes_out,\n"
        "             st.buffered_in, st.buffered_out, st.streams_open, st.streams_total,\n"
        "             st.duration, st.reason, math.type(st.bytes_in), math.type(st.duration))\n"
        "end\n"
        "function on_window(conn, st) show('window ' .. conn.id, st) end\n"
        "function on_close(conn, st) show('close ' .. conn.id, st) end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 4, "C4");
    sluice_policy_conn_stats st = {sizeof st, 25000000, 1000000, 2000000, 100, 200, 3, 4,
                                   2,         7,        1500000000, NULL};
    CHECK_INT(sluice_policy_on_window(pc, &st), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], log_at(src, "sluice.log", "window 4 0.025 1000000 2000000 100 200 3 4 2 7 "
                                                  "1.5 nil integer float"));
    sluice_policy_conn_stats cs = {sizeof cs, 0, 0, 0, 5000, 6000, 0, 0, 0, 9, 2000000000, "idle"};
    sluice_policy_conn_close(pc, &cs);
    CHECK_INT(R.nlog, 2);
    CHECK_TXT(R.log[1], log_at(src, "sluice.log", "close 4 nil 0 0 5000 6000 0 0 0 9 2.0 idle "
                                                  "integer float"));
    /* Closed without stats: on_close is not called. */
    pc = conn_of(p, 5, "C5");
    sluice_policy_conn_close(pc, NULL);
    CHECK_INT(R.nlog, 2);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(shared_table_survives_a_reload)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p1 = load(e, "shared.version = 1\n"
                                "function on_request(stream, req)\n"
                                "  shared.hits = (shared.hits or 0) + 1\n"
                                "  shared['last ' .. stream.id] = req.path\n"
                                "  sluice.shared.flag = true\n"
                                "end\n");
    CHECK(p1);
    sluice_policy_conn *pc = conn_of(p1, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/a"), 0);
    CHECK_INT(request(ps, "/b"), 0);
    CHECK_INT(R.nlog, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p1);
    CHECK_INT(e->live, 0); /* the first version is gone */
    static const char src[] =
        "local at_load = shared.hits\n"
        "function on_request(stream, req)\n"
        "  sluice.log('info', at_load, shared.hits, shared.version, shared['last 1'], shared.flag,\n"
        "             sluice.shared == shared, #shared, shared.nothing)\n"
        "  shared.version = nil\n"
        "end\n";
    sluice_policy *p2 = load_as(e, "t.lua", src);
    CHECK(p2);
    pc = conn_of(p2, 2, "C2");
    ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/c"), 0);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], log_at(src, "sluice.log", "2 2 1 /b true true 4 nil"));
    CHECK_INT(request(ps, "/c"), 0);
    CHECK_TXT(R.log[1], log_at(src, "sluice.log", "2 2 nil /b true true 3 nil"));
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p2);
    sluice_policy_engine_free(e);
}

TEST(shared_table_holds_scalars_only)
{
    sluice_policy_options o;
    sluice_policy_options_init(&o);
    o.shared_max_keys = 3;
    sluice_policy_engine *e = eng(&o);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  if req.path == '/t' then shared.t = {} end\n"
                              "  if req.path == '/f' then shared.f = print end\n"
                              "  if req.path == '/k' then shared[{}] = 1 end\n"
                              "  if req.path == '/s' then shared.s = stream end\n"
                              "  if req.path == '/full' then shared.a = 1 shared.b = 2.5 shared.c = 'x' shared.d = true end\n"
                              "  if req.path == '/read' then\n"
                              "    sluice.log('info', shared.a, shared.b, shared.c, shared.d, #shared, math.type(shared.a))\n"
                              "  end\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    static const char values[] = "shared: values must be nil, boolean, number or string";
    CHECK_INT(request(ps, "/t"), 0);
    CHECK_TXT(last_log(), fail_at("on_request", src, "shared.t", values));
    CHECK_INT(request(ps, "/f"), 0);
    CHECK_TXT(last_log(), fail_at("on_request", src, "shared.f", values));
    CHECK_INT(request(ps, "/k"), 0);
    CHECK_TXT(last_log(), fail_at("on_request", src, "shared[{}]",
                                  "shared: keys must be strings or numbers"));
    CHECK_INT(request(ps, "/s"), 0);
    CHECK_TXT(last_log(), fail_at("on_request", src, "shared.s", values));
    CHECK_INT(request(ps, "/full"), 0);
    CHECK_TXT(last_log(), fail_at("on_request", src, "shared.d",
                                  "shared: table full (3 keys, 4194304 bytes)"));
    CHECK_INT(R.nlog, 5);
    /* shared lives outside the state: what was written before the error stays. */
    CHECK_INT(request(ps, "/read"), 0);
    CHECK_TXT(last_log(), log_at(src, "sluice.log", "1 2.5 x nil 3 integer"));
    CHECK_INT(pstats(p).errors, 5);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* The dry run is a check, not a connection: what a policy keeps in
 * shared per connection (ip_limit.lua counts connections per address in
 * on_connection and uncounts them in on_close) must not drift at every
 * reload. */
TEST(dry_run_leaves_no_trace_in_shared)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_connection(conn)\n"
                              "  shared.conns = (shared.conns or 0) + 1\n"
                              "end\n"
                              "function on_close(conn, st)\n"
                              "  shared.conns = shared.conns - 1\n"
                              "end\n"
                              "function on_request(stream, req)\n"
                              "  sluice.log('info', 'open connections', shared.conns)\n"
                              "end\n";
    sluice_policy *p1 = load(e, src);
    CHECK(p1);
    sluice_policy_unref(p1);
    sluice_policy *p2 = load(e, src); /* a reload */
    CHECK(p2);
    sluice_policy_conn *pc = conn_of(p2, 1, "C1");
    sluice_session_options o = default_opt();
    int push = 1;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(last_log(), log_at(src, "sluice.log", "open connections 1"));
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p2);
    sluice_policy_engine_free(e);
}

TEST(handles_hide_their_metatables)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] =
        "function on_request(stream, req)\n"
        "  sluice.log('info', getmetatable(stream), getmetatable(stream.conn), getmetatable(req),\n"
        "             getmetatable(''), sluice.version)\n"
        "  local ok = pcall(setmetatable, stream, {})\n"
        "  sluice.log('info', ok, tostring(stream):match('^sluice%.stream: ') ~= nil)\n"
        "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 2);
    char want[256];
    snprintf(want, sizeof want, "false false false false %s", sluice_version());
    CHECK_TXT(R.log[0], log_at(src, "getmetatable(stream)", want));
    CHECK_TXT(R.log[1], log_at(src, "sluice.log('info', ok", "false true"));
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(sluice_log_levels_and_prefix)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "local function helper() sluice.log('warn', 'from helper') end\n"
                              "sluice.log('info', 'loading')\n"
                              "function on_request(stream, req)\n"
                              "  sluice.log('error', 'e', 1)\n"
                              "  sluice.log('warn', 'w')\n"
                              "  sluice.log('info', 'i', true, nil, 2.5, {} ~= nil)\n"
                              "  sluice.log('debug', 'd')\n"
                              "  sluice.log(2, 'two')\n"
                              "  sluice.log('info')\n"
                              "  helper()\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], "policy t.lua: t.lua:2: loading");
    CHECK_INT(R.level[0], SLUICE_LOG_INFO);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(R.nlog, 8);
    CHECK_TXT(R.log[1], "policy t.lua: t.lua:4: e 1");
    CHECK_INT(R.level[1], SLUICE_LOG_ERROR);
    CHECK_TXT(R.log[2], "policy t.lua: t.lua:5: w");
    CHECK_INT(R.level[2], SLUICE_LOG_WARN);
    CHECK_TXT(R.log[3], "policy t.lua: t.lua:6: i true nil 2.5 true");
    CHECK_INT(R.level[3], SLUICE_LOG_INFO);
    CHECK_TXT(R.log[4], "policy t.lua: t.lua:7: d");
    CHECK_INT(R.level[4], SLUICE_LOG_DEBUG);
    CHECK_TXT(R.log[5], "policy t.lua: t.lua:8: two");
    CHECK_INT(R.level[5], SLUICE_LOG_INFO);
    CHECK_TXT(R.log[6], "policy t.lua: t.lua:9: ");
    CHECK_TXT(R.log[7], "policy t.lua: t.lua:1: from helper");
    CHECK_INT(R.level[7], SLUICE_LOG_WARN);
    CHECK_INT(pstats(p).errors, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

static const lcase log_bad[] = {
    {"sluice.log('loud', 'x')", "bad argument #1 to 'log' (invalid option 'loud')"},
    {"sluice.log(4, 'x')", "sluice.log: level must be an integer in 0..3"},
    {"sluice.log(-1, 'x')", "sluice.log: level must be an integer in 0..3"},
    {"sluice.log()", "bad argument #1 to 'log' (string expected, got no value)"},
    {"sluice.log('info', setmetatable({}, { __tostring = function() return {} end }))",
     "'__tostring' must return a string"},
    {"sluice.now = nil sluice.now()", "attempt to call a nil value (field 'now')"},
};

TEST(sluice_log_misuse)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    char src[8192];
    size_t n = sizeof log_bad / sizeof log_bad[0];
    cases_src(src, sizeof src, log_bad, n, "stream",
              "function on_request(stream, req) cases[stream.id](stream) end\n");
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        sluice_policy_stream *ps = stream_of(pc, (uint32_t)i + 1, "S1");
        CHECK_INT(request(ps, "/"), 0);
        const char *want = case_fail("on_request", i, log_bad[i].msg);
        if (strcmp(last_log(), want) != 0) {
            fprintf(stderr, "case %zu: %s\n    got  \"%s\"\n    want \"%s\"\n", i + 1,
                    log_bad[i].lua, last_log(), want);
            bad++;
        }
        sluice_policy_stream_free(ps);
    }
    CHECK_INT(bad, 0);
    CHECK_INT(R.nlog, n);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(print_goes_to_the_log)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "print('loaded', 1, nil, true)\n"
                               "function on_request(stream, req) print(req.path) end\n");
    CHECK(p);
    CHECK_INT(R.nlog, 1);
    CHECK_PREFIX(R.log[0], "policy t.lua: ");
    CHECK_HAS(R.log[0], "loaded\t1\tnil\ttrue");
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/from-print"), 0);
    CHECK_INT(R.nlog, 2);
    CHECK_PREFIX(R.log[1], "policy t.lua: ");
    CHECK_HAS(R.log[1], "/from-print");
    CHECK_INT(R.level[0], R.level[1]);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

TEST(now_uses_the_host_clock)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  sluice.log('info', string.format('%.9f', sluice.now()), math.type(sluice.now()))\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    R.now = 1234567890123ull;
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(last_log(), log_at(src, "sluice.log", "1234.567890123 float"));
    R.now += 500000000;
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(last_log(), log_at(src, "sluice.log", "1235.067890123 float"));
    CHECK_INT(R.bad_engine_ud, 0);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* ---- versions and references ------------------------------------------------------------- */

TEST(old_version_is_freed_when_its_last_connection_closes)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "big = ('x'):rep(100000)\n"
                              "function on_request(stream, req) kept = stream end\n";
    sluice_policy *p1 = load(e, src);
    CHECK(p1);
    CHECK_INT(e->live, 1);
    sluice_policy_conn *a = conn_of(p1, 1, "C1");
    sluice_policy_conn *b = conn_of(p1, 2, "C2");
    sluice_policy_stream *sa = stream_of(a, 1, "S1");
    CHECK_INT(request(sa, "/"), 0);
    sluice_policy_unref(p1); /* the host moves on to a new version... */
    CHECK_INT(e->live, 1);   /* ...the connections keep the old one */
    CHECK(pstats(p1).memory > 100000);
    sluice_policy *p2 = load(e, src);
    CHECK(p2);
    CHECK_INT(e->live, 2);
    sluice_policy_conn_switch(a, p2);
    CHECK_INT(e->live, 2); /* b still uses p1 */
    CHECK_INT(request(sa, "/"), 0);
    close_conn(b);
    CHECK_INT(e->live, 1);
    /* A reference of the host's own keeps a version. */
    sluice_policy_ref(p2);
    sluice_policy_stream_free(sa);
    close_conn(a);
    CHECK_INT(e->live, 1);
    sluice_policy_unref(p2);
    CHECK_INT(e->live, 1);
    sluice_policy_unref(p2);
    CHECK_INT(e->live, 0);
    CHECK_INT(R.nlog, 0);
    sluice_policy_engine_free(e);
}

/* Stream freed while its version was switched; closing frees it with the
 * state it belongs to now. */
TEST(switch_with_open_streams_then_free)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p1 = load(e, "function on_request(stream, req) kept = stream end\n");
    sluice_policy *p2 = load(e, "function on_request(stream, req) kept = stream end\n");
    CHECK(p1 && p2);
    sluice_policy_conn *a = conn_of(p1, 1, "C1");
    sluice_policy_stream *s1 = stream_of(a, 1, "S1");
    sluice_policy_stream *s3 = stream_of(a, 3, "S3");
    CHECK_INT(request(s1, "/"), 0);
    CHECK_INT(request(s3, "/"), 0);
    sluice_policy_unref(p1);
    sluice_policy_conn_switch(a, p2); /* p1 is freed here */
    CHECK_INT(e->live, 1);
    CHECK_INT(request(s3, "/"), 0);
    sluice_policy_stream_free(s1);
    sluice_policy_stream_free(s3);
    close_conn(a);
    sluice_policy_unref(p2);
    CHECK_INT(e->live, 0);
    CHECK_INT(R.nlog, 0);
    sluice_policy_engine_free(e);
}

/* The host answers and, as a host that gives up on a connection after
 * an error might, lets the stream go and closes the connection from
 * inside the op: the rest of the hook's actions must not touch them, and
 * on_close still runs. */
TEST(op_that_closes_the_connection)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  stream:respond(403)\n"
                              "  stream:tag('after', 'respond')\n"
                              "  stream.conn:limits{ ping = { 1, 1 } }\n"
                              "  stream.conn:window{ connection = 4194304 }\n"
                              "end\n"
                              "function on_close(conn, st)\n"
                              "  sluice.log('info', 'closed', conn.id, st.reason)\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    R.free_on_respond = ps;
    R.close_on_respond = pc;
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(R.ops, "C1/S1 respond 403 NULL\n");
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], log_at(src, "'closed'", "closed 1 local"));
    sluice_policy_unref(p);
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

TEST(stats_count_calls_errors_and_memory)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    sluice_policy *p = load(e, "function on_request(stream, req)\n"
                               "  if req.path == '/bad' then error('bad') end\n"
                               "end\n");
    CHECK(p);
    sluice_policy_stats st = pstats(p);
    CHECK_INT(st.struct_size, sizeof st);
    CHECK_INT(st.calls, 0); /* no on_connection: no dry run call */
    CHECK(st.memory > 0);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_session_options o = default_opt();
    int push = 1;
    CHECK_INT(sluice_policy_on_connection(pc, &o, &push), 0); /* no such hook: no call */
    CHECK_INT(window(pc, 1), 0);
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    CHECK_INT(request(ps, "/"), 0);
    CHECK_INT(request(ps, "/bad"), 0);
    CHECK_INT(request(ps, "/"), 0);
    st = pstats(p);
    CHECK_INT(st.calls, 3);
    CHECK_INT(st.errors, 1);
    CHECK_INT(st.budget_exceeded, 0);
    /* An old caller's smaller struct gets only what it knows. */
    sluice_policy_stats small;
    memset(&small, 0xab, sizeof small);
    small.struct_size = offsetof(sluice_policy_stats, errors);
    CHECK_INT(sluice_policy_get_stats(p, &small), 0);
    CHECK_INT(small.calls, 3);
    CHECK_INT(small.struct_size, offsetof(sluice_policy_stats, errors));
    CHECK(small.errors == 0xababababababababull);
    sluice_policy_stream_free(ps);
    close_conn(pc);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
}

/* An op that moves the connection to a new version and then closes it:
 * the actions still queued by the old version for that connection are
 * dropped too (ASan sees a use-after-free otherwise). */
TEST(op_that_switches_and_closes_the_connection)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  stream:respond(403)\n"
                              "  stream.conn:limits{ ping = { 1, 1 } }\n"
                              "  stream:tag('after', 'respond')\n"
                              "end\n";
    sluice_policy *p = load(e, src);
    CHECK(p);
    sluice_policy *p2 = load(e, "function on_close(conn, st) sluice.log('info', 'v2 closed') end\n");
    CHECK(p2);
    sluice_policy_conn *pc = conn_of(p, 1, "C1");
    sluice_policy_stream *ps = stream_of(pc, 1, "S1");
    R.free_on_respond = ps;
    R.close_on_respond = pc;
    R.switch_on_respond = p2;
    CHECK_INT(request(ps, "/"), 0);
    CHECK_TXT(R.ops, "C1/S1 respond 403 NULL\n");
    CHECK_INT(R.nlog, 1);
    CHECK_TXT(R.log[0], "policy t.lua: t.lua:1: v2 closed");
    sluice_policy_unref(p);
    sluice_policy_unref(p2);
    CHECK_INT(e->live, 0);
    sluice_policy_engine_free(e);
}

/* The engine's counters sum every version it loaded, also versions freed
 * since; its memory is that of the versions alive. */
TEST(engine_stats_sum_versions)
{
    sluice_policy_engine *e = eng(NULL);
    CHECK(e);
    static const char src[] = "function on_request(stream, req)\n"
                              "  if req.path == '/boom' then error('boom') end\n"
                              "end\n";
    sluice_policy *p1 = load(e, src);
    sluice_policy *p2 = load(e, src);
    CHECK(p1 && p2);
    sluice_policy_conn *c1 = conn_of(p1, 1, "C1"), *c2 = conn_of(p2, 2, "C2");
    sluice_policy_stream *s1 = stream_of(c1, 1, "S1"), *s2 = stream_of(c2, 1, "S2");
    CHECK_INT(request(s1, "/"), 0);
    CHECK_INT(request(s1, "/boom"), 0);
    CHECK_INT(request(s2, "/boom"), 0);
    sluice_policy_stats a, b;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    b = a;
    CHECK_INT(sluice_policy_engine_get_stats(e, &a), 0);
    CHECK_INT(a.calls, 3);
    CHECK_INT(a.errors, 2);
    CHECK_INT(a.budget_exceeded, 0);
    sluice_policy_get_stats(p1, &b);
    CHECK_INT(b.calls, 2);
    size_t m1 = b.memory;
    sluice_policy_get_stats(p2, &b);
    CHECK_INT(a.memory, m1 + b.memory);
    sluice_policy_stream_free(s2);
    close_conn(c2);
    sluice_policy_unref(p2); /* freed: its counts stay, its memory goes */
    CHECK_INT(sluice_policy_engine_get_stats(e, &a), 0);
    CHECK_INT(a.calls, 3);
    CHECK_INT(a.errors, 2);
    sluice_policy_get_stats(p1, &b);
    CHECK_INT(a.memory, b.memory);
    sluice_policy_stream_free(s1);
    close_conn(c1);
    sluice_policy_unref(p1);
    CHECK_INT(sluice_policy_engine_get_stats(e, &a), 0);
    CHECK_INT(a.memory, 0);
    sluice_policy_engine_free(e);
}
