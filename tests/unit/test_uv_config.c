/* test_uv_config.c — the host's Lua config loader: every directive, the
 * defaults, the sandbox and its limits, and the exact "file:line: message"
 * of each error. Each case works in its own temporary directory. */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, realpath */
#endif

#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "config.h"

#define INVAL SLUICE_ERR_INVAL

/* A scratch directory that is also the working directory, so that the
 * messages name "t.lua" and the tests can spell them out. */
typedef struct tdir {
    char path[64];
    char old[PATH_MAX];
    char real[PATH_MAX]; /* what relative config paths resolve against */
} tdir;

static int tdir_enter(tdir *t)
{
    snprintf(t->path, sizeof t->path, "/tmp/sluice-cfg-XXXXXX");
    if (!getcwd(t->old, sizeof t->old) || !mkdtemp(t->path) || chdir(t->path) != 0)
        return -1;
    return realpath(".", t->real) ? 0 : -1;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void tdir_leave(tdir *t)
{
    if (chdir(t->old) == 0)
        nftw(t->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int put(const char *name, const char *text)
{
    FILE *f = fopen(name, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* Files the configs below refer to. */
static int fixtures(void)
{
    if (put("a.pem", "cert\n") || put("a.key", "key\n") || put("b.pem", "cert\n"))
        return -1;
    return mkdir("site", 0755);
}

static sl_config *load_ok(const char *text)
{
    char err[1024] = "";
    sl_config *cfg = NULL;
    if (put("t.lua", text) != 0)
        return NULL;
    int rc = sl_config_load("t.lua", &cfg, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  unexpected error %d: %s\n", rc, err);
    return cfg;
}

/* 1 if the config fails with exactly rc and msg, and hands out nothing. */
static int fails_with(const char *text, int rc, const char *msg)
{
    char err[1024] = "";
    sl_config *cfg = NULL;
    int got = put("t.lua", text) == 0 ? sl_config_load("t.lua", &cfg, err, sizeof err) : 1;
    if (got == rc && strcmp(err, msg) == 0 && !cfg)
        return 1;
    fprintf(stderr, "  config:\n%s\n  rc %d, want %d\n  got:  %s\n  want: %s\n", text, got,
            rc, err, msg);
    sl_config_free(cfg);
    return 0;
}

#define FAILS(text, msg) CHECK(fails_with((text), INVAL, (msg)))
#define LISTEN "listen { \"8080\" }\n"

static const char full_config[] =
    "-- every directive\n"
    "listen { \"127.0.0.1:8443\", tls = true, backlog = 1024, reuseport = false }\n"
    "listen { host = \"::\", port = 8080 }\n"
    "tls_certificate { cert = \"a.pem\", key = \"a.key\", names = { \"Example.com\", "
    "\"*.example.com\" } }\n"
    "tls_min_version \"1.3\"\n"
    "route { authority = \"Example.com\", path = \"/static\", static = \"site\", "
    "index = \"home.html\" }\n"
    "route { path = \"/echo\", echo = true }\n"
    "route { path = \"/\", ret = { status = 404, body = \"no\\0pe\", content_type = "
    "\"text/html\" } }\n"
    "workers(4)\n"
    "max_connections(500)\n"
    "max_body \"2m\"\n"
    "notsent_lowat(8192)\n"
    "timeouts { handshake = 1.5, preface = 2, idle = 120, header = 3, send = 4, drain = 5,\n"
    "           close_wait = 0, linger = 0.25 }\n"
    "http2 { max_concurrent_streams = 250, initial_window_size = 1048576,\n"
    "        connection_window = 8388608, max_frame_size = 32768, max_header_list_size = 32768,\n"
    "        header_table_size = 8192, max_continuation_frames = 8,\n"
    "        rst_received = { 100, 10 }, rst_provoked = { burst = 50, per_sec = 5 },\n"
    "        ping = { 20, 2 }, settings = { 30, 3 }, empty_data = { 40, 4 },\n"
    "        priority = { 500, 50 }, max_outbound_control = \"256k\",\n"
    "        settings_timeout = 5, goaway_timeout = 0.5 }\n"
    "access_log \"logs/access.log\"\n"
    "error_log \"/var/log/sluice-error.log\"\n"
    "admin { listen = \"127.0.0.1:9100\" }\n"
    "pid_file \"run/sluice.pid\"\n"
    "user \"root\"\n";

static int same_path(const char *got, const tdir *t, const char *rel)
{
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/%s", t->real, rel);
    if (got && strcmp(got, want) == 0)
        return 1;
    fprintf(stderr, "  path %s, want %s\n", got ? got : "(null)", want);
    return 0;
}

static int check_full_listens_certs(const sl_config *c, const tdir *t)
{
    const sl_cfg_listen *l = c->listens;
    if (c->nlistens != 2 || strcmp(l[0].host, "127.0.0.1") || l[0].port != 8443 ||
        !l[0].tls || l[0].backlog != 1024 || l[0].reuseport ||
        strcmp(l[0].where.file, "t.lua") || l[0].where.line != 2)
        return 0;
    if (strcmp(l[1].host, "::") || l[1].port != 8080 || l[1].tls || l[1].backlog != 511 ||
        !l[1].reuseport || l[1].where.line != 3)
        return 0;
    const sl_cfg_cert *k = c->certs;
    return c->ncerts == 1 && same_path(k->cert_file, t, "a.pem") &&
           same_path(k->key_file, t, "a.key") && k->nnames == 2 &&
           !strcmp(k->names[0], "example.com") && !strcmp(k->names[1], "*.example.com") &&
           k->where.line == 4 && !strcmp(c->tls_min_version, "1.3");
}

static int check_full_routes(const sl_config *c, const tdir *t)
{
    const sl_cfg_route *r = c->routes;
    if (c->nroutes != 3 || r[0].kind != SL_ROUTE_STATIC || strcmp(r[0].authority, "example.com") ||
        strcmp(r[0].path, "/static") || !same_path(r[0].root, t, "site") ||
        strcmp(r[0].index, "home.html") || r[0].where.line != 6)
        return 0;
    if (r[1].kind != SL_ROUTE_ECHO || r[1].authority || strcmp(r[1].path, "/echo") ||
        r[1].root || r[1].index || r[1].where.line != 7)
        return 0;
    return r[2].kind == SL_ROUTE_RETURN && !strcmp(r[2].path, "/") && r[2].status == 404 &&
           r[2].body_len == 5 && !memcmp(r[2].body, "no\0pe", 5) &&
           !strcmp(r[2].content_type, "text/html") && r[2].where.line == 8;
}

TEST(full_config)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(fixtures() == 0);
    sl_config *c = load_ok(full_config);
    CHECK(c);
    CHECK(check_full_listens_certs(c, &t));
    CHECK(check_full_routes(c, &t));
    CHECK_INT(c->workers, 4);
    CHECK_INT(c->max_connections, 500);
    CHECK_INT(c->max_body, 2 << 20);
    CHECK_INT(c->notsent_lowat, 8192);
    const sl_cfg_timeouts *to = &c->timeouts;
    CHECK_INT(to->handshake, 1500);
    CHECK_INT(to->preface, 2000);
    CHECK_INT(to->idle, 120000);
    CHECK_INT(to->header, 3000);
    CHECK_INT(to->send, 4000);
    CHECK_INT(to->drain, 5000);
    CHECK_INT(to->close_wait, 0);
    CHECK_INT(to->linger, 250);
    const sluice_session_options *h = &c->h2;
    CHECK_INT(h->max_concurrent_streams, 250);
    CHECK_INT(h->initial_window_size, 1048576);
    CHECK_INT(h->connection_window, 8388608);
    CHECK_INT(h->max_frame_size, 32768);
    CHECK_INT(h->max_header_list_size, 32768);
    CHECK_INT(h->max_header_block_size, 4 * 32768); /* follows the list size */
    CHECK_INT(h->header_table_size, 8192);
    CHECK_INT(h->max_continuation_frames, 8);
    CHECK_INT(h->rst_received.burst, 100);
    CHECK_INT(h->rst_received.per_sec, 10);
    CHECK_INT(h->rst_provoked.burst, 50);
    CHECK_INT(h->rst_provoked.per_sec, 5);
    CHECK_INT(h->ping.burst, 20);
    CHECK_INT(h->settings.per_sec, 3);
    CHECK_INT(h->empty_data.burst, 40);
    CHECK_INT(h->priority.per_sec, 50);
    CHECK_INT(h->max_outbound_control, 256 * 1024);
    CHECK_INT(h->settings_timeout_ns, 5000000000ull);
    CHECK_INT(h->goaway_timeout_ns, 500000000ull);
    CHECK_INT(h->auto_consume, 0);
    CHECK(same_path(c->access_log, &t, "logs/access.log"));
    CHECK_STR(c->error_log, "/var/log/sluice-error.log");
    CHECK_STR(c->admin_host, "127.0.0.1");
    CHECK_INT(c->admin_port, 9100);
    CHECK(same_path(c->pid_file, &t, "run/sluice.pid"));
    CHECK_STR(c->user, "root");
    CHECK(same_path(c->file, &t, "t.lua"));
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(defaults)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok(LISTEN);
    CHECK(c);
    CHECK_INT(c->nlistens, 1);
    CHECK_STR(c->listens[0].host, "0.0.0.0");
    CHECK_INT(c->listens[0].port, 8080);
    CHECK_INT(c->listens[0].tls, 0);
    CHECK_INT(c->listens[0].backlog, 511);
    CHECK_INT(c->listens[0].reuseport, 1);
    CHECK_INT(c->ncerts, 0);
    CHECK_INT(c->nroutes, 0);
    CHECK_INT(c->workers, 1);
    CHECK_INT(c->max_connections, 10000);
    CHECK_INT(c->max_body, 16 << 20);
    CHECK_INT(c->notsent_lowat, 16384);
    sl_cfg_timeouts to = {10000, 10000, 60000, 10000, 30000, 30000, 2000, 5000};
    CHECK(memcmp(&c->timeouts, &to, sizeof to) == 0);
    sluice_session_options h2;
    sluice_session_options_init(&h2);
    CHECK(memcmp(&c->h2, &h2, sizeof h2) == 0);
    CHECK(!c->access_log && !c->error_log && !c->admin_host && !c->pid_file && !c->user);
    CHECK_INT(c->admin_port, 0);
    CHECK_STR(c->tls_min_version, "1.2");
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(listen_address_forms)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok("listen { \"8080\" }\n"
                           "listen { \"*:8081\" }\n"
                           "listen { \"127.0.0.1:8082\" }\n"
                           "listen { \"[::1]:8083\" }\n"
                           "listen { \"[0::0]:8084\" }\n"
                           "listen { host = \"[::1]\", port = 8085 }\n"
                           "listen { 8086 }\n"
                           "listen { port = 8087 }\n");
    CHECK(c);
    static const char *const hosts[] = {"0.0.0.0", "0.0.0.0", "127.0.0.1", "::1",
                                        "::", "::1", "0.0.0.0", "0.0.0.0"};
    CHECK_INT(c->nlistens, 8);
    for (size_t i = 0; i < 8; i++) {
        CHECK_STR(c->listens[i].host, hosts[i]);
        CHECK_INT(c->listens[i].port, 8080 + i);
        CHECK_INT(c->listens[i].where.line, i + 1);
    }
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(relative_paths)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(mkdir("conf", 0755) == 0 && mkdir("conf/site", 0755) == 0);
    CHECK(mkdir("conf/certs", 0755) == 0);
    CHECK(put("conf/certs/a.pem", "c") == 0 && put("conf/certs/a.key", "k") == 0);
    CHECK(put("conf/sluice.lua",
              "listen { \"8443\", tls = true }\n"
              "tls_certificate { cert = \"certs/a.pem\", key = \"./certs/a.key\" }\n"
              "route { static = \"site/\" }\n"
              "access_log \"-\"\n"
              "error_log \"-\"\n"
              "pid_file \"/run/sluice.pid\"\n") == 0);
    char err[1024] = "";
    sl_config *c = NULL;
    CHECK_INT(sl_config_load("conf/sluice.lua", &c, err, sizeof err), 0);
    CHECK(same_path(c->certs[0].cert_file, &t, "conf/certs/a.pem"));
    CHECK(same_path(c->certs[0].key_file, &t, "conf/certs/a.key"));
    CHECK(same_path(c->routes[0].root, &t, "conf/site"));
    CHECK_STR(c->routes[0].where.file, "conf/sluice.lua");
    CHECK_STR(c->routes[0].path, "/");
    CHECK_STR(c->routes[0].index, "index.html");
    CHECK_STR(c->access_log, "-");
    CHECK(c->error_log == NULL);
    CHECK_STR(c->pid_file, "/run/sluice.pid");
    CHECK(same_path(c->file, &t, "conf/sluice.lua"));
    sl_config_free(c);
    /* Errors name the file as it was given. */
    CHECK(put("conf/bad.lua", "listen { \"8080\" }\nroute { path = \"x\", echo = true }\n") == 0);
    CHECK_INT(sl_config_load("conf/bad.lua", &c, err, sizeof err), INVAL);
    CHECK_STR(err, "conf/bad.lua:2: route: path must start with '/', got 'x'");
    tdir_leave(&t);
}

TEST(missing_file)
{
    char err[256];
    sl_config dummy, *c = &dummy; /* must be reset to NULL */
    CHECK_INT(sl_config_load("/nonexistent/sluice.lua", &c, err, sizeof err), INVAL);
    CHECK_STR(err, "cannot open /nonexistent/sluice.lua: No such file or directory");
    CHECK(c == NULL);
}

TEST(lua_syntax_and_runtime_errors)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS("listen { \"8080\"\nroute {\n",
          "t.lua:2: '}' expected (to close '{' at line 1) near 'route'");
    FAILS(LISTEN "error(\"boom\")\n", "t.lua:2: boom");
    FAILS("listn { \"8080\" }\n", "t.lua:1: attempt to call a nil value (global 'listn')");
    FAILS(LISTEN "error({})\n", "t.lua:2: error object is a table value");
    tdir_leave(&t);
}

TEST(wrong_types)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS("listen(8080)\n", "t.lua:1: listen expects a table, got number");
    FAILS("listen({ \"8080\" }, 2)\n", "t.lua:1: listen expects 1 argument, got 2");
    FAILS("workers()\n", "t.lua:1: workers expects 1 argument, got 0");
    FAILS(LISTEN "timeouts \"10\"\n", "t.lua:2: timeouts expects a table, got string");
    FAILS("listen { \"8080\", tls = \"yes\" }\n", "t.lua:1: listen: tls must be true or false, got string");
    FAILS("listen { true }\n", "t.lua:1: listen: the address must be a string such as "
          "\"0.0.0.0:8080\", got boolean");
    FAILS(LISTEN "route { path = 5, echo = true }\n", "t.lua:2: route: path must be a string, got number");
    FAILS(LISTEN "route { ret = \"hi\" }\n", "t.lua:2: route: ret must be a table { status = , "
          "body = , content_type = }, got string");
    FAILS(LISTEN "route { echo = false }\n", "t.lua:2: route: echo must be true, got false");
    FAILS(LISTEN "tls_certificate { cert = \"a\", key = \"b\", names = \"x.org\" }\n",
          "t.lua:2: tls_certificate: names must be a list of strings, got string");
    FAILS(LISTEN "tls_certificate { cert = \"a\", key = \"b\", names = { a = \"x.org\" } }\n",
          "t.lua:2: tls_certificate: names must be a list, as in { \"a\", \"b\" }");
    FAILS(LISTEN "workers \"4\"\n", "t.lua:2: workers must be a number, got string");
    FAILS(LISTEN "user(5)\n", "t.lua:2: user must be a string, got number");
    FAILS(LISTEN "pid_file \"\"\n", "t.lua:2: pid_file must not be empty");
    FAILS(LISTEN "http2 { ping = 5 }\n", "t.lua:2: http2: ping must be a table { burst, per_sec }, got number");
    FAILS(LISTEN "timeouts { linger = \"5\" }\n", "t.lua:2: timeouts: linger must be a number of seconds, got string");
    FAILS(LISTEN "max_body(true)\n", "t.lua:2: max_body must be a size (a number or a string "
          "such as \"16m\"), got boolean");
    FAILS(LISTEN "tls_min_version(1.3)\n", "t.lua:2: tls_min_version must be a string, got number");
    tdir_leave(&t);
}

TEST(unknown_keys)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS("listen { \"8080\", tsl = true }\n",
          "t.lua:1: listen: unknown key 'tsl' (known: host, port, tls, backlog, reuseport)");
    FAILS(LISTEN "route { echo = true, pth = \"/\" }\n",
          "t.lua:2: route: unknown key 'pth' (known: authority, path, static, echo, ret, index)");
    FAILS(LISTEN "route { ret = { stat = 200 } }\n",
          "t.lua:2: route: ret: unknown key 'stat' (known: status, body, content_type)");
    FAILS(LISTEN "http2 { ping = { burst = 1, per_sec = 1, extra = 2 } }\n",
          "t.lua:2: http2: ping: unknown key 'extra' (known: burst, per_sec)");
    FAILS(LISTEN "timeouts { idel = 5 }\n", "t.lua:2: timeouts: unknown key 'idel' (known: "
          "handshake, preface, idle, header, send, drain, close_wait, linger)");
    FAILS(LISTEN "admin { listen = \"127.0.0.1:9100\", allow = \"all\" }\n",
          "t.lua:2: admin: unknown key 'allow' (known: listen)");
    FAILS(LISTEN "route { \"/\", echo = true }\n",
          "t.lua:2: route: unexpected value at index 1 (use key = value)");
    FAILS(LISTEN "route { [true] = 1 }\n", "t.lua:2: route: keys must be names, got a boolean key");
    FAILS("listen { \"8080\", \"8081\" }\n", "t.lua:1: listen: unexpected value at index 2");
    tdir_leave(&t);
}

TEST(bad_listen_addresses)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS("listen { \"127.0.0.1:70000\" }\n",
          "t.lua:1: listen: bad port in '127.0.0.1:70000': must be 1..65535");
    FAILS("listen { \"127.0.0.1:\" }\n", "t.lua:1: listen: bad port in '127.0.0.1:': must be 1..65535");
    FAILS("listen { \"0\" }\n", "t.lua:1: listen: bad port in '0': must be 1..65535");
    FAILS("listen { port = 0 }\n", "t.lua:1: listen: port must be an integer in 1..65535, got 0");
    FAILS("listen { 65536 }\n", "t.lua:1: listen: port must be an integer in 1..65535, got 65536");
    FAILS("listen { \"localhost:80\" }\n",
          "t.lua:1: listen: bad host 'localhost': not an IPv4 or IPv6 address");
    FAILS("listen { \"::1:8080\" }\n", "t.lua:1: listen: bad address '::1:8080': an IPv6 "
          "address needs brackets, as in [::1]:8080");
    FAILS("listen { \"[::1]8080\" }\n", "t.lua:1: listen: bad address '[::1]8080': expected "
          "HOST:PORT, [IPV6]:PORT or PORT");
    FAILS("listen { \"8080\", port = 1 }\n", "t.lua:1: listen: give the address as "
          "\"HOST:PORT\" or as host and port, not both");
    FAILS("listen { tls = true }\n", "t.lua:1: listen: no port: give \"HOST:PORT\" or port = N");
    FAILS("listen { port = 80, backlog = 0 }\n",
          "t.lua:1: listen: backlog must be an integer in 1..65535, got 0");
    tdir_leave(&t);
}

TEST(listener_checks)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS("", "t.lua:1: no listen declared: sluice needs at least one listener");
    FAILS("workers(2)\n", "t.lua:1: no listen declared: sluice needs at least one listener");
    FAILS("listen { \"0.0.0.0:8080\" }\nlisten { \"127.0.0.1:8080\" }\nlisten { port = 8080 }\n",
          "t.lua:3: listen: duplicate address 0.0.0.0:8080 (first declared at t.lua:1)");
    FAILS("listen { \"[::0]:80\" }\n\nlisten { host = \"0::\", port = 80 }\n",
          "t.lua:3: listen: duplicate address [::]:80 (first declared at t.lua:1)");
    FAILS(LISTEN "listen { \"8443\", tls = true }\n",
          "t.lua:2: listen: TLS listener 0.0.0.0:8443 needs a tls_certificate");
    tdir_leave(&t);
}

TEST(certificate_checks)
{
    tdir t;
    char want[PATH_MAX + 200];
    CHECK(tdir_enter(&t) == 0);
    CHECK(fixtures() == 0);
    snprintf(want, sizeof want, "t.lua:2: tls_certificate: cannot read cert %s/missing.pem: "
             "No such file or directory", t.real);
    FAILS(LISTEN "tls_certificate { cert = \"missing.pem\", key = \"a.key\" }\n", want);
    snprintf(want, sizeof want, "t.lua:3: tls_certificate: cannot read key %s/missing.key: "
             "No such file or directory", t.real);
    FAILS(LISTEN "tls_certificate { cert = \"a.pem\", key = \"a.key\" }\n"
          "tls_certificate { cert = \"b.pem\", key = \"missing.key\" }\n", want);
    FAILS(LISTEN "tls_certificate { cert = \"a.pem\" }\n", "t.lua:2: tls_certificate: key is required");
    FAILS(LISTEN "tls_certificate { key = \"a.key\" }\n", "t.lua:2: tls_certificate: cert is required");
    FAILS(LISTEN "tls_certificate { cert = \"a.pem\", key = \"a.key\", names = { \"a..b\" } }\n",
          "t.lua:2: tls_certificate: bad name 'a..b' in names");
    FAILS(LISTEN "tls_certificate { cert = \"a.pem\", key = \"a.key\", names = { \"x.*.org\" } }\n",
          "t.lua:2: tls_certificate: bad name 'x.*.org' in names");
    FAILS(LISTEN "tls_certificate { cert = \"a.pem\", key = \"a.key\", names = { \"a.org\", \"b.org\" } }\n"
          "tls_certificate { cert = \"b.pem\", key = \"a.key\", names = { \"c.org\", \"A.org\" } }\n",
          "t.lua:3: tls_certificate: name a.org is already served by the certificate at t.lua:2");
    FAILS(LISTEN "tls_certificate { cert = \"a.pem\", key = \"a.key\", names = { \"a.org\", \"a.org\" } }\n",
          "t.lua:2: tls_certificate: name a.org is listed twice");
    FAILS(LISTEN "tls_min_version \"1.1\"\n", "t.lua:2: tls_min_version must be '1.2' or '1.3', got '1.1'");
    tdir_leave(&t);
}

TEST(route_checks)
{
    tdir t;
    char want[PATH_MAX + 200];
    CHECK(tdir_enter(&t) == 0);
    CHECK(fixtures() == 0);
    snprintf(want, sizeof want, "t.lua:2: route: static root %s/a.pem is not a directory", t.real);
    FAILS(LISTEN "route { static = \"a.pem\" }\n", want);
    snprintf(want, sizeof want, "t.lua:3: route: static root %s/nope: No such file or directory",
             t.real);
    FAILS(LISTEN "route { path = \"/a\", static = \"site\" }\nroute { static = \"nope\" }\n", want);
    FAILS(LISTEN "route { path = \"echo\", echo = true }\n",
          "t.lua:2: route: path must start with '/', got 'echo'");
    FAILS(LISTEN "\n\n\n\n\nroute { path = \"/\" }\n",
          "t.lua:7: route: exactly one of static, echo, ret is required");
    FAILS(LISTEN "route { echo = true, static = \"site\" }\n",
          "t.lua:2: route: exactly one of static, echo, ret is required");
    FAILS(LISTEN "route { path = \"/a\", echo = true }\nroute { path = \"/a\", ret = {} }\n",
          "t.lua:3: route: duplicate route for /a (first declared at t.lua:2)");
    FAILS(LISTEN "route { authority = \"x.org\", echo = true }\n"
          "route { echo = true }\n"
          "route { authority = \"X.ORG\", path = \"/\", ret = {} }\n",
          "t.lua:4: route: duplicate route for x.org/ (first declared at t.lua:2)");
    FAILS(LISTEN "route { authority = \"a b\", echo = true }\n", "t.lua:2: route: bad authority 'a b'");
    FAILS(LISTEN "route { echo = true, index = \"i.html\" }\n",
          "t.lua:2: route: index is only for static routes");
    FAILS(LISTEN "route { static = \"site\", index = \"a/i.html\" }\n",
          "t.lua:2: route: index must be a file name, got 'a/i.html'");
    FAILS(LISTEN "route { ret = { status = 99 } }\n",
          "t.lua:2: route: ret: status must be an integer in 200..599, got 99");
    FAILS(LISTEN "route { ret = { status = 204, body = \"x\" } }\n",
          "t.lua:2: route: ret: a 204 response cannot have a body");
    tdir_leave(&t);
}

TEST(route_ret_defaults)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok(LISTEN "route { path = \"/a\", ret = {} }\n"
                           "route { path = \"/b\", ret = { status = 204 } }\n");
    CHECK(c);
    CHECK_INT(c->routes[0].status, 200);
    CHECK_STR(c->routes[0].body, "");
    CHECK_INT(c->routes[0].body_len, 0);
    CHECK_STR(c->routes[0].content_type, "text/plain");
    CHECK(c->routes[0].root == NULL && c->routes[0].index == NULL);
    CHECK_INT(c->routes[1].status, 204);
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(bad_numbers)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS(LISTEN "workers(0)\n", "t.lua:2: workers must be an integer in 1..1024, got 0");
    FAILS(LISTEN "workers(-1)\n", "t.lua:2: workers must be an integer in 1..1024, got -1");
    FAILS(LISTEN "workers(1.5)\n", "t.lua:2: workers must be an integer in 1..1024, got 1.5");
    FAILS(LISTEN "max_connections(1e12)\n",
          "t.lua:2: max_connections must be an integer in 1..10000000, got 1000000000000");
    FAILS(LISTEN "http2 { initial_window_size = 2^31 }\n",
          "t.lua:2: http2: initial_window_size must be an integer in 1..2147483647, got 2147483648");
    FAILS(LISTEN "http2 { max_frame_size = 100 }\n",
          "t.lua:2: http2: max_frame_size must be an integer in 16384..16777215, got 100");
    FAILS(LISTEN "http2 { connection_window = 1000 }\n",
          "t.lua:2: http2: connection_window must be an integer in 65535..2147483647, got 1000");
    FAILS(LISTEN "http2 { max_concurrent_streams = 0 }\n",
          "t.lua:2: http2: max_concurrent_streams must be an integer in 1..65535, got 0");
    FAILS(LISTEN "http2 { rst_received = { 0, 10 } }\n",
          "t.lua:2: http2: rst_received: burst must be an integer in 1..1000000, got 0");
    FAILS(LISTEN "http2 { ping = { 5 } }\n", "t.lua:2: http2: ping needs both burst and per_sec");
    FAILS(LISTEN "http2 { ping = { 5, 1, 2 } }\n",
          "t.lua:2: http2: ping: expects { burst, per_sec }, got a value at index 3");
    FAILS(LISTEN "timeouts { idle = -1 }\n", "t.lua:2: timeouts: idle must be in 0.001..86400 seconds, got -1");
    FAILS(LISTEN "timeouts { idle = 0 }\n", "t.lua:2: timeouts: idle must be in 0.001..86400 seconds, got 0");
    FAILS(LISTEN "timeouts { linger = 1e6 }\n",
          "t.lua:2: timeouts: linger must be in 0..86400 seconds, got 1000000");
    FAILS(LISTEN "max_body \"2x\"\n", "t.lua:2: max_body must be a size such as 65536, \"64k\", "
          "\"16m\" or \"1g\", got '2x'");
    FAILS(LISTEN "max_body \"2000g\"\n", "t.lua:2: max_body must be a size in 0..1024g, got '2000g'");
    FAILS(LISTEN "max_body \"99999999999999999999999k\"\n",
          "t.lua:2: max_body must be a size in 0..1024g, got '99999999999999999999999k'");
    FAILS(LISTEN "max_body(-1)\n", "t.lua:2: max_body must be a size in 0..1024g, got -1");
    FAILS(LISTEN "notsent_lowat(0)\n", "t.lua:2: notsent_lowat must be a size in 1..64m, got 0");
    tdir_leave(&t);
}

TEST(sizes_and_fractions)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok(LISTEN "max_body \"1G\"\nnotsent_lowat \"64k\"\n"
                           "timeouts { idle = 0.0015, header = 1e-3 }\n");
    CHECK(c);
    CHECK_INT(c->max_body, 1ull << 30);
    CHECK_INT(c->notsent_lowat, 65536);
    CHECK_INT(c->timeouts.idle, 2); /* rounded to the nearest ms */
    CHECK_INT(c->timeouts.header, 1);
    sl_config_free(c);
    c = load_ok(LISTEN "max_body(0)\n");
    CHECK(c);
    CHECK_INT(c->max_body, 0);
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(once_only_directives)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS(LISTEN "workers(2)\nworkers(3)\n", "t.lua:3: workers: already set at t.lua:2");
    FAILS(LISTEN "http2 {}\n\nhttp2 {}\n", "t.lua:4: http2: already set at t.lua:2");
    FAILS(LISTEN "admin { listen = \"9100\" }\nadmin { listen = \"9101\" }\n",
          "t.lua:3: admin: already set at t.lua:2");
    tdir_leave(&t);
}

TEST(admin_and_user)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS("listen { \"127.0.0.1:8080\" }\nadmin { listen = \"127.0.0.1:8080\" }\n",
          "t.lua:2: admin: 127.0.0.1:8080 is already a listener (t.lua:1)");
    FAILS(LISTEN "admin {}\n", "t.lua:2: admin: listen is required");
    FAILS(LISTEN "admin { listen = \"x:1\" }\n", "t.lua:2: admin: bad host 'x': not an IPv4 or IPv6 address");
    FAILS(LISTEN "user \"no-such-user-sluice\"\n", "t.lua:2: user: no such user 'no-such-user-sluice'");
    sl_config *c = load_ok(LISTEN "admin { listen = \"[::1]:9100\" }\n");
    CHECK(c);
    CHECK_STR(c->admin_host, "::1");
    CHECK_INT(c->admin_port, 9100);
    sl_config_free(c);
    tdir_leave(&t);
}

/* The line is the directive's caller, even through a helper or pcall, and
 * an error a pcall caught still fails the load. */
TEST(error_lines_through_helpers_and_pcall)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS(LISTEN "local function site(p)\n  route { path = p, echo = true }\nend\n"
          "site(\"/a\")\nsite(\"a\")\n", "t.lua:3: route: path must start with '/', got 'a'");
    FAILS(LISTEN "local ok = pcall(listen, 5)\n", "t.lua:2: listen expects a table, got number");
    FAILS(LISTEN "return route { path = \"b\", echo = true }\n",
          "t.lua:2: route: path must start with '/', got 'b'");
    tdir_leave(&t);
}

TEST(sandbox)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok(
        "assert(io == nil and os == nil and debug == nil and package == nil)\n"
        "assert(require == nil and dofile == nil and loadfile == nil and coroutine == nil)\n"
        "assert(collectgarbage == nil and utf8 == nil)\n"
        "assert(string.format and table.concat and math.floor and pairs and pcall)\n"
        "assert(load(\"return 7\")() == 7)\n"
        "local port = 8000 + 80\n"
        "for _, p in ipairs({ port, port + 1 }) do listen { port = p } end\n");
    CHECK(c);
    CHECK_INT(c->nlistens, 2);
    CHECK_INT(c->listens[1].port, 8081);
    CHECK_INT(c->listens[1].where.line, 7);
    sl_config_free(c);
    FAILS(LISTEN "local f, e = load(string.dump(function() end))\nassert(f == nil)\nerror(e, 0)\n",
          "attempt to load a binary chunk (mode is 't')");
    FAILS(LISTEN "local f, e = load(string.dump(function() end), \"x\", \"b\")\nerror(e, 0)\n",
          "attempt to load a binary chunk (mode is 't')");
    FAILS(LISTEN "setmetatable({}, { __gc = function() while true do end end })\n",
          "t.lua:2: setmetatable: __gc is not allowed in a config");
    FAILS(LISTEN "\nworkers = 4\n", "t.lua:3: workers is a directive: call it, do not assign to it");
    tdir_leave(&t);
}

TEST(endless_loop_stopped)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(fails_with(LISTEN "while true do end\n", SLUICE_ERR_LIMIT,
                     "t.lua:2: config did not finish within 10000000 instructions (endless loop?)"));
    /* pcall cannot swallow it: the limit fails every instruction after. */
    CHECK(fails_with(LISTEN "\nwhile true do pcall(function() while true do end end) end\n",
                     SLUICE_ERR_LIMIT,
                     "t.lua:3: config did not finish within 10000000 instructions (endless loop?)"));
    tdir_leave(&t);
}

TEST(memory_bomb_stopped)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(fails_with("local t = {} while true do t[#t+1] = string.rep(\"x\", 1e6) end\n",
                     SLUICE_ERR_LIMIT, "t.lua:1: config uses more than 64 MiB of memory"));
    /* Declarations count too: each route copies the body out of Lua. */
    CHECK(fails_with(LISTEN "local body = string.rep(\"x\", 100000)\n"
                     "for i = 1, 1e6 do\n"
                     "  route { path = \"/\" .. i, ret = { body = body } }\n"
                     "end\n",
                     SLUICE_ERR_LIMIT, "t.lua:4: config uses more than 64 MiB of memory"));
    tdir_leave(&t);
}

TEST(many_routes_checked_quickly)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    /* Duplicate detection sorts, so tens of thousands of routes are cheap. */
    CHECK(fails_with(LISTEN "for i = 1, 40000 do route { path = \"/\" .. i, echo = true } end\n"
                     "route { path = \"/39999\", echo = true }\n",
                     INVAL, "t.lua:3: route: duplicate route for /39999 (first declared at t.lua:2)"));
    tdir_leave(&t);
}
