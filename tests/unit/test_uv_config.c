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
          "t.lua:2: route: unknown key 'pth' (known: authority, path, static, echo, ret, proxy, "
          "index, host, forwarded, urgency, incremental, hints, push)");
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
          "t.lua:7: route: exactly one of static, echo, ret, proxy is required");
    FAILS(LISTEN "route { echo = true, static = \"site\" }\n",
          "t.lua:2: route: exactly one of static, echo, ret, proxy is required");
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

/* ---- upstream { ... } and proxy routes ---------------------------------------- */

#define UPSTREAM "upstream { name = \"app\", servers = { \"127.0.0.1:9001\" } }\n"

TEST(upstream_defaults)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok(LISTEN UPSTREAM "route { proxy = \"app\" }\n");
    CHECK(c);
    CHECK_INT(c->nupstreams, 1);
    const sl_cfg_upstream *u = c->upstreams;
    CHECK_STR(u->name, "app");
    CHECK_STR(u->where.file, "t.lua");
    CHECK_INT(u->where.line, 2);
    CHECK_INT(u->nservers, 1);
    CHECK_STR(u->servers[0].host, "127.0.0.1");
    CHECK_INT(u->servers[0].port, 9001);
    CHECK_STR(u->servers[0].name, "127.0.0.1:9001");
    CHECK_INT(u->protocol, SL_UP_HTTP1);
    CHECK_INT(u->balance, SL_BALANCE_ROUND_ROBIN);
    CHECK_INT(u->tls, 0);
    CHECK(!u->tls_ca && !u->tls_sni && !u->tls_cert && !u->tls_key);
    CHECK_INT(u->tls_verify, 1);
    CHECK_INT(u->keepalive, 32);
    CHECK_INT(u->max_conns, 1024);
    CHECK_INT(u->h2_streams, 100);
    CHECK_INT(u->connect_timeout, 5000);
    CHECK_INT(u->read_timeout, 60000);
    CHECK_INT(u->send_timeout, 60000);
    CHECK_INT(u->idle_timeout, 60000);
    CHECK_INT(u->tries, 3);
    CHECK_INT(u->max_fails, 1);
    CHECK_INT(u->fail_timeout, 10000);
    CHECK_INT(u->buffer, 65536);
    CHECK_INT(u->health.enabled, 0);
    CHECK_STR(u->health.path, "/");
    CHECK_INT(u->health.interval, 5000);
    CHECK_INT(u->health.timeout, 2000);
    CHECK_INT(u->health.fails, 2);
    CHECK_INT(u->health.passes, 1);
    const sl_cfg_route *r = c->routes;
    CHECK_INT(r->kind, SL_ROUTE_PROXY);
    CHECK_STR(r->proxy, "app");
    CHECK_INT(r->upstream, 0);
    CHECK_STR(r->path, "/");
    CHECK(!r->proxy_host && !r->root && !r->index && !r->body);
    sl_cfg_forwarded fwd = {1, 1, 1, 0};
    CHECK(memcmp(&r->forwarded, &fwd, sizeof fwd) == 0);
    sl_config_free(c);
    /* health_check = {} switches the checks on with their defaults. */
    c = load_ok(LISTEN "upstream { name = \"a\", servers = { \"h:1\" }, health_check = {} }\n");
    CHECK(c);
    CHECK_INT(c->upstreams[0].health.enabled, 1);
    CHECK_STR(c->upstreams[0].health.path, "/");
    CHECK_INT(c->upstreams[0].health.interval, 5000);
    CHECK_INT(c->nroutes, 0);
    sl_config_free(c);
    tdir_leave(&t);
}

static const char upstream_config[] =
    "listen { \"8080\" }\n"
    "route { path = \"/api/\", proxy = \"api\", host = \"Backend.internal:8443\",\n"
    "        forwarded = { via = false, x_forwarded_for = false, x_forwarded_proto = false,\n"
    "                      forwarded = true } }\n"
    "upstream { name = \"app\", servers = { \"127.0.0.1:9001\" } }\n"
    "upstream {\n"
    "  name = \"api\",\n"
    "  servers = { \"127.0.0.1:9001\", \"[::1]:9002\", \"LocalHost:9003\", \"my_app.svc:80\",\n"
    "              \"[2001:db8::1]:65535\" },\n"
    "  protocol = \"h2\", balance = \"least_conn\",\n"
    "  tls = { ca = \"tls/ca.pem\", sni = \"api.example.com\", verify = false,\n"
    "          certificate = \"./tls/client.pem\", key = \"tls/client.key\" },\n"
    "  keepalive = 0, max_conns = 1000000, h2_streams = 10000,\n"
    "  connect_timeout = 0.5, read_timeout = 1, send_timeout = 2.25, idle_timeout = 86400,\n"
    "  tries = 16, max_fails = 5, fail_timeout = 30, buffer = \"64k\",\n"
    "  health_check = { path = \"/health?full=1\", interval = 1.5, timeout = 0.25,\n"
    "                   fails = 3, passes = 4 },\n"
    "}\n"
    "route { path = \"/\", proxy = \"app\", forwarded = { via = false } }\n";

static int check_api_upstream(const sl_cfg_upstream *u, const tdir *t)
{
    static const char *const names[] = {"127.0.0.1:9001", "[::1]:9002", "LocalHost:9003",
                                         "my_app.svc:80", "[2001:db8::1]:65535"};
    static const char *const hosts[] = {"127.0.0.1", "::1", "LocalHost", "my_app.svc",
                                        "2001:db8::1"};
    static const uint16_t ports[] = {9001, 9002, 9003, 80, 65535};
    if (strcmp(u->name, "api") || u->where.line != 6 || u->nservers != 5)
        return 0;
    for (size_t i = 0; i < 5; i++)
        if (strcmp(u->servers[i].name, names[i]) || strcmp(u->servers[i].host, hosts[i]) ||
            u->servers[i].port != ports[i])
            return 0;
    return u->protocol == SL_UP_H2 && u->balance == SL_BALANCE_LEAST_CONN && u->tls == 1 &&
           same_path(u->tls_ca, t, "conf/tls/ca.pem") &&
           !strcmp(u->tls_sni, "api.example.com") && u->tls_verify == 0 &&
           same_path(u->tls_cert, t, "conf/tls/client.pem") &&
           same_path(u->tls_key, t, "conf/tls/client.key");
}

TEST(upstream_every_key)
{
    tdir t;
    char err[1024] = "";
    CHECK(tdir_enter(&t) == 0);
    CHECK(mkdir("conf", 0755) == 0 && mkdir("conf/tls", 0755) == 0);
    CHECK(put("conf/tls/ca.pem", "c") == 0 && put("conf/tls/client.pem", "c") == 0);
    CHECK(put("conf/tls/client.key", "k") == 0 && put("conf/sluice.lua", upstream_config) == 0);
    sl_config *c = NULL;
    CHECK_INT(sl_config_load("conf/sluice.lua", &c, err, sizeof err), 0);
    CHECK_INT(c->nupstreams, 2);
    const sl_cfg_upstream *u = &c->upstreams[1];
    CHECK(check_api_upstream(u, &t));
    CHECK_INT(u->keepalive, 0);
    CHECK_INT(u->max_conns, 1000000);
    CHECK_INT(u->h2_streams, 10000);
    CHECK_INT(u->connect_timeout, 500);
    CHECK_INT(u->read_timeout, 1000);
    CHECK_INT(u->send_timeout, 2250);
    CHECK_INT(u->idle_timeout, 86400000);
    CHECK_INT(u->tries, 16);
    CHECK_INT(u->max_fails, 5);
    CHECK_INT(u->fail_timeout, 30000);
    CHECK_INT(u->buffer, 65536);
    CHECK_INT(u->health.enabled, 1);
    CHECK_STR(u->health.path, "/health?full=1");
    CHECK_INT(u->health.interval, 1500);
    CHECK_INT(u->health.timeout, 250);
    CHECK_INT(u->health.fails, 3);
    CHECK_INT(u->health.passes, 4);
    /* Routes find their upstream by name, declared before or after them. */
    const sl_cfg_route *r = c->routes;
    CHECK_INT(c->nroutes, 2);
    CHECK_INT(r[0].kind, SL_ROUTE_PROXY);
    CHECK_INT(r[0].upstream, 1);
    CHECK_STR(r[0].proxy_host, "Backend.internal:8443");
    sl_cfg_forwarded fwd0 = {0, 0, 0, 1}, fwd1 = {0, 1, 1, 0};
    CHECK(memcmp(&r[0].forwarded, &fwd0, sizeof fwd0) == 0);
    CHECK_INT(r[0].where.line, 2);
    CHECK_INT(r[1].upstream, 0);
    CHECK(memcmp(&r[1].forwarded, &fwd1, sizeof fwd1) == 0); /* the others keep defaults */
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(upstream_tls_forms)
{
    tdir t;
    char want[PATH_MAX + 200];
    CHECK(tdir_enter(&t) == 0);
    CHECK(fixtures() == 0);
    sl_config *c = load_ok(LISTEN "upstream { name = \"a\", servers = { \"h:1\" }, tls = true }\n"
                           "upstream { name = \"b\", servers = { \"h:1\" }, tls = false }\n"
                           "upstream { name = \"c\", servers = { \"h:1\" }, tls = {} }\n");
    CHECK(c);
    CHECK_INT(c->upstreams[0].tls, 1);
    CHECK_INT(c->upstreams[0].tls_verify, 1);
    CHECK(!c->upstreams[0].tls_ca && !c->upstreams[0].tls_sni); /* system store, server's name */
    CHECK_INT(c->upstreams[1].tls, 0);
    CHECK_INT(c->upstreams[2].tls, 1);
    CHECK_INT(c->upstreams[2].tls_verify, 1);
    sl_config_free(c);
    snprintf(want, sizeof want, "t.lua:3: upstream: tls: cannot read ca %s/missing.pem: "
             "No such file or directory", t.real);
    FAILS(LISTEN UPSTREAM "upstream { name = \"b\", servers = { \"h:1\" }, "
          "tls = { ca = \"missing.pem\" } }\n", want);
    snprintf(want, sizeof want, "t.lua:2: upstream: tls: cannot read key %s/missing.key: "
             "No such file or directory", t.real);
    FAILS(LISTEN "upstream { name = \"b\", servers = { \"h:1\" }, "
          "tls = { certificate = \"a.pem\", key = \"missing.key\" } }\n", want);
    FAILS(LISTEN "upstream { name = \"b\", servers = { \"h:1\" }, tls = { certificate = \"a.pem\" } }\n",
          "t.lua:2: upstream: tls: certificate and key must be given together");
    FAILS(LISTEN "upstream { name = \"b\", servers = { \"h:1\" }, tls = { key = \"a.key\" } }\n",
          "t.lua:2: upstream: tls: certificate and key must be given together");
    FAILS(LISTEN "upstream { name = \"b\", servers = { \"h:1\" }, tls = \"yes\" }\n",
          "t.lua:2: upstream: tls must be true, false or a table { ca = , sni = , verify = , "
          "certificate = , key = }, got string");
    FAILS(LISTEN "upstream { name = \"b\", servers = { \"h:1\" }, tls = { cafile = \"a.pem\" } }\n",
          "t.lua:2: upstream: tls: unknown key 'cafile' (known: ca, sni, verify, certificate, key)");
    FAILS(LISTEN "upstream { name = \"b\", servers = { \"h:1\" }, tls = { sni = \"a..b\" } }\n",
          "t.lua:2: upstream: tls: sni must be a DNS name, got 'a..b'");
    FAILS(LISTEN "upstream { name = \"b\", servers = { \"h:1\" }, tls = { verify = 1 } }\n",
          "t.lua:2: upstream: tls: verify must be true or false, got number");
    FAILS(LISTEN "upstream { name = \"b\", servers = { \"h:1\" }, tls = { ca = \"\" } }\n",
          "t.lua:2: upstream: tls: ca must not be empty");
    tdir_leave(&t);
}

TEST(upstream_servers)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
#define SRV(list) LISTEN "upstream { name = \"a\", servers = " list " }\n"
    FAILS(SRV("{ \"127.0.0.1\" }"), "t.lua:2: upstream: servers: bad server '127.0.0.1': "
          "expected HOST:PORT or [IPV6]:PORT");
    FAILS(SRV("{ \"::1:80\" }"), "t.lua:2: upstream: servers: bad server '::1:80': an IPv6 "
          "address needs brackets, as in [::1]:8080");
    FAILS(SRV("{ \"[::1]80\" }"), "t.lua:2: upstream: servers: bad server '[::1]80': "
          "expected HOST:PORT or [IPV6]:PORT");
    FAILS(SRV("{ \"[::1\" }"), "t.lua:2: upstream: servers: bad server '[::1': "
          "expected HOST:PORT or [IPV6]:PORT");
    FAILS(SRV("{ \"[example.com]:80\" }"), "t.lua:2: upstream: servers: bad server "
          "'[example.com]:80': not an IPv6 address in the brackets");
    FAILS(SRV("{ \"[]:80\" }"), "t.lua:2: upstream: servers: bad server '[]:80': "
          "not an IPv6 address in the brackets");
    FAILS(SRV("{ \":80\" }"), "t.lua:2: upstream: servers: bad host in ':80': expected a name "
          "or an address");
    FAILS(SRV("{ \"h:1\", \"a b:80\" }"), "t.lua:2: upstream: servers: bad host in 'a b:80': "
          "expected a name or an address");
    FAILS(SRV("{ \"a..b:80\" }"), "t.lua:2: upstream: servers: bad host in 'a..b:80': expected "
          "a name or an address");
    FAILS(SRV("{ \"h:0\" }"), "t.lua:2: upstream: servers: bad port in 'h:0': must be 1..65535");
    FAILS(SRV("{ \"h:65536\" }"), "t.lua:2: upstream: servers: bad port in 'h:65536': must be "
          "1..65535");
    FAILS(SRV("{ \"h:\" }"), "t.lua:2: upstream: servers: bad port in 'h:': must be 1..65535");
    FAILS(SRV("{ \"[::1]:http\" }"), "t.lua:2: upstream: servers: bad port in '[::1]:http': "
          "must be 1..65535");
    FAILS(SRV("{}"), "t.lua:2: upstream: servers must not be empty");
    FAILS(SRV("\"h:1\""), "t.lua:2: upstream: servers must be a list of \"HOST:PORT\" strings, "
          "got string");
    FAILS(SRV("{ 9001 }"), "t.lua:2: upstream: servers must be strings such as "
          "\"127.0.0.1:8080\", got number");
    FAILS(SRV("{ s = \"h:1\" }"), "t.lua:2: upstream: servers must be a list, as in { \"a\", \"b\" }");
    FAILS(SRV("{ [1] = \"h:1\", [3] = \"h:2\" }"),
          "t.lua:2: upstream: servers must be a list without holes");
    FAILS(SRV("{ \"h\\0x:1\" }"), "t.lua:2: upstream: servers must not contain a NUL byte");
#undef SRV
    tdir_leave(&t);
}

TEST(upstream_checks)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
#define UP1(keys) LISTEN "upstream { name = \"a\", servers = { \"h:1\" }, " keys " }\n"
    FAILS(LISTEN "upstream { servers = { \"h:1\" } }\n", "t.lua:2: upstream: name is required");
    FAILS(LISTEN "\nupstream { name = \"a\" }\n", "t.lua:3: upstream: servers is required");
    FAILS(LISTEN "upstream \"a\"\n", "t.lua:2: upstream expects a table, got string");
    FAILS(LISTEN "upstream { name = \"a b\", servers = { \"h:1\" } }\n",
          "t.lua:2: upstream: name may hold only letters, digits, '.', '-' and '_', got 'a b'");
    FAILS(LISTEN "upstream { name = 5, servers = { \"h:1\" } }\n",
          "t.lua:2: upstream: name must be a string, got number");
    FAILS(UP1("sever = 1"), "t.lua:2: upstream: unknown key 'sever' (known: name, servers, "
          "protocol, balance, tls, keepalive, max_conns, h2_streams, connect_timeout, "
          "read_timeout, send_timeout, idle_timeout, tries, max_fails, fail_timeout, buffer, "
          "health_check)");
    FAILS(UP1("\"h:2\""), "t.lua:2: upstream: unexpected value at index 1 (use key = value)");
    FAILS(UP1("protocol = \"h3\""), "t.lua:2: upstream: protocol must be 'http1' or 'h2', got 'h3'");
    FAILS(UP1("protocol = 2"), "t.lua:2: upstream: protocol must be a string, got number");
    FAILS(UP1("balance = \"random\""),
          "t.lua:2: upstream: balance must be 'round_robin' or 'least_conn', got 'random'");
    FAILS(UP1("health_check = true"), "t.lua:2: upstream: health_check must be a table { path = , "
          "interval = , timeout = , fails = , passes = }, got boolean");
    FAILS(UP1("health_check = { uri = \"/\" }"), "t.lua:2: upstream: health_check: unknown key "
          "'uri' (known: path, interval, timeout, fails, passes)");
    FAILS(UP1("health_check = { path = \"health\" }"),
          "t.lua:2: upstream: health_check: path must start with '/', got 'health'");
    FAILS(UP1("health_check = { path = \"/a b\" }"),
          "t.lua:2: upstream: health_check: path must be printable ASCII without spaces");
    FAILS(UP1("health_check = { path = \"/a\\r\\nx: y\" }"),
          "t.lua:2: upstream: health_check: path must be printable ASCII without spaces");
    /* Duplicate names point at the first declaration. */
    FAILS(LISTEN UPSTREAM "upstream { name = \"b\", servers = { \"h:1\" } }\n\n"
          "upstream { name = \"app\", servers = { \"h:2\" } }\n",
          "t.lua:5: upstream: duplicate name 'app' (first declared at t.lua:2)");
    FAILS(LISTEN "\nupstream = {}\n", "t.lua:3: upstream is a directive: call it, do not assign to it");
#undef UP1
    tdir_leave(&t);
}

TEST(upstream_bad_numbers)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
#define UP1(keys) LISTEN "upstream { name = \"a\", servers = { \"h:1\" }, " keys " }\n"
    FAILS(UP1("keepalive = -1"), "t.lua:2: upstream: keepalive must be an integer in 0..100000, got -1");
    FAILS(UP1("max_conns = 0"), "t.lua:2: upstream: max_conns must be an integer in 1..1000000, got 0");
    FAILS(UP1("h2_streams = 10001"),
          "t.lua:2: upstream: h2_streams must be an integer in 1..10000, got 10001");
    FAILS(UP1("tries = 17"), "t.lua:2: upstream: tries must be an integer in 1..16, got 17");
    FAILS(UP1("tries = 1.5"), "t.lua:2: upstream: tries must be an integer in 1..16, got 1.5");
    FAILS(UP1("max_fails = 0"), "t.lua:2: upstream: max_fails must be an integer in 1..1000, got 0");
    FAILS(UP1("buffer = \"1k\""), "t.lua:2: upstream: buffer must be a size in 4k..64m, got '1k'");
    FAILS(UP1("buffer = \"128m\""), "t.lua:2: upstream: buffer must be a size in 4k..64m, got '128m'");
    FAILS(UP1("buffer = 4095"), "t.lua:2: upstream: buffer must be a size in 4k..64m, got 4095");
    FAILS(UP1("buffer = \"64kb\""), "t.lua:2: upstream: buffer must be a size such as 65536, "
          "\"64k\", \"16m\" or \"1g\", got '64kb'");
    FAILS(UP1("connect_timeout = 0"),
          "t.lua:2: upstream: connect_timeout must be in 0.001..86400 seconds, got 0");
    FAILS(UP1("read_timeout = \"5s\""),
          "t.lua:2: upstream: read_timeout must be a number of seconds, got string");
    FAILS(UP1("send_timeout = 86401"),
          "t.lua:2: upstream: send_timeout must be in 0.001..86400 seconds, got 86401");
    FAILS(UP1("idle_timeout = -1"),
          "t.lua:2: upstream: idle_timeout must be in 0.001..86400 seconds, got -1");
    FAILS(UP1("fail_timeout = 1/0"),
          "t.lua:2: upstream: fail_timeout must be in 0.001..86400 seconds, got inf");
    FAILS(UP1("health_check = { interval = 0 }"),
          "t.lua:2: upstream: health_check: interval must be in 0.001..86400 seconds, got 0");
    FAILS(UP1("health_check = { timeout = 1e9 }"),
          "t.lua:2: upstream: health_check: timeout must be in 0.001..86400 seconds, got 1000000000");
    FAILS(UP1("health_check = { fails = 0 }"),
          "t.lua:2: upstream: health_check: fails must be an integer in 1..1000, got 0");
    FAILS(UP1("health_check = { passes = 1001 }"),
          "t.lua:2: upstream: health_check: passes must be an integer in 1..1000, got 1001");
#undef UP1
    sl_config *c = load_ok(LISTEN "upstream { name = \"a\", servers = { \"h:1\" }, buffer = \"64M\", "
                           "read_timeout = 0.0015 }\n"
                           "upstream { name = \"b\", servers = { \"h:1\" }, buffer = 4096 }\n");
    CHECK(c);
    CHECK_INT(c->upstreams[0].buffer, 64 << 20);
    CHECK_INT(c->upstreams[0].read_timeout, 2); /* rounded to the nearest ms */
    CHECK_INT(c->upstreams[1].buffer, 4096);
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(proxy_route_checks)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS(LISTEN UPSTREAM "\nroute { path = \"/x\", proxy = \"ap\" }\n",
          "t.lua:4: route: proxy: no upstream named 'ap'");
    FAILS(LISTEN "route { proxy = \"app\" }\n", "t.lua:2: route: proxy: no upstream named 'app'");
    FAILS(LISTEN UPSTREAM "route { echo = true, proxy = \"app\" }\n",
          "t.lua:3: route: exactly one of static, echo, ret, proxy is required");
    FAILS(LISTEN UPSTREAM "route { ret = {}, proxy = \"app\" }\n",
          "t.lua:3: route: exactly one of static, echo, ret, proxy is required");
    FAILS(LISTEN UPSTREAM "route { proxy = 1 }\n", "t.lua:3: route: proxy must be a string, got number");
    FAILS(LISTEN UPSTREAM "route { proxy = \"\" }\n", "t.lua:3: route: proxy must not be empty");
    FAILS(LISTEN "route { echo = true, host = \"b.org\" }\n",
          "t.lua:2: route: host is only for proxy routes");
    FAILS(LISTEN "route { echo = true, forwarded = {} }\n",
          "t.lua:2: route: forwarded is only for proxy routes");
    FAILS(LISTEN UPSTREAM "route { proxy = \"app\", index = \"i.html\" }\n",
          "t.lua:3: route: index is only for static routes");
    FAILS(LISTEN UPSTREAM "route { proxy = \"app\", host = \"a\\r\\nx: y\" }\n",
          "t.lua:3: route: bad host 'a\r\nx: y'");
    FAILS(LISTEN UPSTREAM "route { proxy = \"app\", forwarded = true }\n",
          "t.lua:3: route: forwarded must be a table { via = , x_forwarded_for = , "
          "x_forwarded_proto = , forwarded = }, got boolean");
    FAILS(LISTEN UPSTREAM "route { proxy = \"app\", forwarded = { xff = true } }\n",
          "t.lua:3: route: forwarded: unknown key 'xff' (known: via, x_forwarded_for, "
          "x_forwarded_proto, forwarded)");
    FAILS(LISTEN UPSTREAM "route { proxy = \"app\", forwarded = { via = 1 } }\n",
          "t.lua:3: route: forwarded: via must be true or false, got number");
    FAILS(LISTEN UPSTREAM "route { proxy = \"app\" }\nroute { proxy = \"app\", path = \"/\" }\n",
          "t.lua:4: route: duplicate route for / (first declared at t.lua:3)");
    tdir_leave(&t);
}

TEST(many_upstreams_resolved_quickly)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    /* Names are sorted once, so each route's lookup is a binary search. */
    sl_config *c = load_ok(LISTEN "for i = 1, 20000 do\n"
                           "  upstream { name = \"u\" .. i, servers = { \"h:\" .. i } }\n"
                           "  route { path = \"/\" .. i, proxy = \"u\" .. (20001 - i) }\n"
                           "end\n");
    CHECK(c);
    CHECK_INT(c->nupstreams, 20000);
    CHECK_INT(c->routes[0].upstream, 19999);
    CHECK_STR(c->upstreams[c->routes[123].upstream].name, "u19877");
    sl_config_free(c);
    CHECK(fails_with(LISTEN "for i = 1, 20000 do\n"
                     "  upstream { name = \"u\" .. i, servers = { \"h:1\" } }\n"
                     "end\n"
                     "upstream { name = \"u777\", servers = { \"h:1\" } }\n",
                     INVAL, "t.lua:5: upstream: duplicate name 'u777' (first declared at t.lua:3)"));
    tdir_leave(&t);
}

TEST(route_priority_hints_push)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(fixtures() == 0);
    sl_config *c = load_ok(LISTEN UPSTREAM
                           "route { path = \"/\", static = \"site\", urgency = 1,\n"
                           "        hints = { \"</style.css>; rel=preload; as=style\",\n"
                           "                  \"</app.js>; rel=preload; as=script\" },\n"
                           "        push = { \"/style.css\", \"/app.js?v=2\" } }\n"
                           "route { path = \"/api\", proxy = \"app\", incremental = true }\n"
                           "route { path = \"/big\", echo = true, urgency = 7,\n"
                           "        incremental = false, hints = {}, push = {} }\n"
                           "route { path = \"/none\", echo = true }\n");
    CHECK(c);
    const sl_cfg_route *r = c->routes;
    CHECK_INT(c->nroutes, 4);
    CHECK_INT(r[0].has_priority, 1);
    CHECK_INT(r[0].urgency, 1);
    CHECK_INT(r[0].incremental, 0);
    CHECK_INT(r[0].nhints, 2);
    CHECK_STR(r[0].hints[0], "</style.css>; rel=preload; as=style");
    CHECK_STR(r[0].hints[1], "</app.js>; rel=preload; as=script");
    CHECK_INT(r[0].npush, 2);
    CHECK_STR(r[0].push[0], "/style.css");
    CHECK_STR(r[0].push[1], "/app.js?v=2");
    /* incremental alone keeps the default urgency (RFC 9218 §4.1) */
    CHECK_INT(r[1].has_priority, 1);
    CHECK_INT(r[1].urgency, 3);
    CHECK_INT(r[1].incremental, 1);
    CHECK_INT(r[2].has_priority, 1);
    CHECK_INT(r[2].urgency, 7);
    CHECK(r[2].nhints == 0 && r[2].hints == NULL && r[2].npush == 0 && r[2].push == NULL);
    CHECK_INT(r[3].has_priority, 0);
    CHECK_INT(r[3].urgency, 3);
    CHECK(r[3].nhints == 0 && r[3].npush == 0);
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(route_priority_hints_push_checks)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    FAILS(LISTEN "route { echo = true, urgency = 8 }\n",
          "t.lua:2: route: urgency must be an integer in 0..7, got 8");
    FAILS(LISTEN "route { echo = true, urgency = -1 }\n",
          "t.lua:2: route: urgency must be an integer in 0..7, got -1");
    FAILS(LISTEN "route { echo = true, urgency = \"1\" }\n",
          "t.lua:2: route: urgency must be a number, got string");
    FAILS(LISTEN "route { echo = true, incremental = 1 }\n",
          "t.lua:2: route: incremental must be true or false, got number");
    FAILS(LISTEN "route { echo = true, hints = \"</a.css>; rel=preload\" }\n",
          "t.lua:2: route: hints must be a list of strings, got string");
    FAILS(LISTEN "route { echo = true, hints = { a = \"</a.css>\" } }\n",
          "t.lua:2: route: hints must be a list, as in { \"a\", \"b\" }");
    FAILS(LISTEN "route { echo = true, hints = { [1] = \"</a>\", [3] = \"</b>\" } }\n",
          "t.lua:2: route: hints must be a list without holes");
    FAILS(LISTEN "route { echo = true, hints = { 1 } }\n",
          "t.lua:2: route: hints: entries must be strings, got number");
    FAILS(LISTEN "route { echo = true,\n hints = { \"</a.css>\", \"/b.css; rel=preload\" } }\n",
          "t.lua:2: route: hints: bad entry '/b.css; rel=preload' (want a link value such as "
          "\"</style.css>; rel=preload; as=style\")");
    FAILS(LISTEN "route { echo = true, hints = { \"</a.css>; rel=preload\\r\\nx: y\" } }\n",
          "t.lua:2: route: hints: bad entry '</a.css>; rel=preload\r\nx: y' (want a link "
          "value such as \"</style.css>; rel=preload; as=style\")");
    FAILS(LISTEN "route { echo = true, hints = { \"<>\" } }\n",
          "t.lua:2: route: hints: bad entry '<>' (want a link value such as "
          "\"</style.css>; rel=preload; as=style\")");
    FAILS(LISTEN "route { echo = true, hints = { \"\" } }\n",
          "t.lua:2: route: hints: bad entry '' (want a link value such as "
          "\"</style.css>; rel=preload; as=style\")");
    FAILS(LISTEN "route { echo = true, push = { \"style.css\" } }\n",
          "t.lua:2: route: push: bad entry 'style.css' (want a path such as \"/style.css\")");
    FAILS(LISTEN "route { echo = true, push = { \"/a b.css\" } }\n",
          "t.lua:2: route: push: bad entry '/a b.css' (want a path such as \"/style.css\")");
    FAILS(LISTEN "route { echo = true, push = { \"/a.css#x\" } }\n",
          "t.lua:2: route: push: bad entry '/a.css#x' (want a path such as \"/style.css\")");
    FAILS(LISTEN "route { echo = true, push = { \"/a\\0b\" } }\n",
          "t.lua:2: route: push: bad entry '/a' (want a path such as \"/style.css\")");
    FAILS(LISTEN "p = {}\nfor i = 1, 17 do p[i] = \"/\" .. i end\n"
          "route { echo = true, push = p }\n",
          "t.lua:4: route: push: at most 16 entries, got 17");
    FAILS(LISTEN "h = {}\nfor i = 1, 17 do h[i] = \"</\" .. i .. \">\" end\n"
          "route { echo = true, hints = h }\n",
          "t.lua:4: route: hints: at most 16 entries, got 17");
    tdir_leave(&t);
}

TEST(http2_priorities_and_push)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok(LISTEN "http2 { priorities = false, push = false }\n");
    CHECK(c);
    CHECK_INT(c->h2.priorities, 0);
    CHECK_INT(c->h2.enable_push, 0);
    sl_config_free(c);
    c = load_ok(LISTEN "http2 { priorities = true, push = true }\n");
    CHECK(c);
    CHECK_INT(c->h2.priorities, 1);
    CHECK_INT(c->h2.enable_push, 1);
    sl_config_free(c);
    c = load_ok(LISTEN);
    CHECK(c);
    CHECK_INT(c->h2.priorities, 1); /* the library's defaults */
    CHECK_INT(c->h2.enable_push, 1);
    sl_config_free(c);
    FAILS(LISTEN "http2 { push = 0 }\n", "t.lua:2: http2: push must be true or false, got number");
    FAILS(LISTEN "http2 { priorities = \"no\" }\n",
          "t.lua:2: http2: priorities must be true or false, got string");
    tdir_leave(&t);
}

TEST(http2_adaptive_windows)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok(LISTEN "http2 { window_adaptive = true, window_min = \"128k\",\n"
                                  "        window_max = 8388608, connection_window_max = \"1g\" }\n");
    CHECK(c);
    CHECK_INT(c->h2.window_adaptive, 1);
    CHECK_INT(c->h2.window_min, 128 * 1024);
    CHECK_INT(c->h2.window_max, 8 * 1024 * 1024);
    CHECK_INT(c->h2.connection_window_max, 1024 * 1024 * 1024);
    sl_config_free(c);
    c = load_ok(LISTEN);
    CHECK(c);
    CHECK_INT(c->h2.window_adaptive, 0); /* the library's defaults */
    CHECK_INT(c->h2.window_min, 65535);
    CHECK_INT(c->h2.window_max, 16 * 1024 * 1024);
    CHECK_INT(c->h2.connection_window_max, 64 * 1024 * 1024);
    sl_config_free(c);
    c = load_ok(LISTEN "http2 { window_adaptive = false, window_max = \"64k\", window_min = 65536 / 2 }\n");
    CHECK(c);
    CHECK_INT(c->h2.window_adaptive, 0);
    CHECK_INT(c->h2.window_min, 32768);
    CHECK_INT(c->h2.window_max, 65536);
    sl_config_free(c);
    FAILS(LISTEN "http2 { window_adaptive = 1 }\n",
          "t.lua:2: http2: window_adaptive must be true or false, got number");
    FAILS(LISTEN "http2 { window_max = \"2g\" }\n",
          "t.lua:2: http2: window_max must be a size in 1..2147483647, got '2g'");
    FAILS(LISTEN "http2 { window_min = 0 }\n",
          "t.lua:2: http2: window_min must be a size in 1..2147483647, got 0");
    FAILS(LISTEN "http2 { connection_window_max = \"32k\" }\n",
          "t.lua:2: http2: connection_window_max must be a size in 65535..2147483647, got '32k'");
    FAILS(LISTEN "http2 { window_max = \"16 MiB\" }\n",
          "t.lua:2: http2: window_max must be a size such as 65536, \"64k\", \"16m\" or \"1g\", "
          "got '16 MiB'");
    FAILS(LISTEN "http2 { window_min = \"1m\", window_max = \"512k\" }\n",
          "t.lua:2: http2: window_min (1m) is above window_max (512k)");
    FAILS(LISTEN "http2 { window_min = \"32m\" }\n",
          "t.lua:2: http2: window_min (32m) is above window_max (16m)");
    tdir_leave(&t);
}

/* ---- policy { ... } ------------------------------------------------------------ */

#define P_LUA "return { on_request = function(s, r) s:tag(\"x\", r.path) end }\n"

TEST(policy_defaults)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    sl_config *c = load_ok(LISTEN);
    CHECK(c);
    const sl_cfg_policy *p = &c->policy;
    CHECK(p->files == NULL && p->where.file == NULL);
    CHECK_INT(p->nfiles, 0);
    CHECK_INT(p->split, SL_SPLIT_NONE);
    sluice_policy_options lim;
    sluice_policy_options_init(&lim);
    CHECK(memcmp(&p->limits, &lim, sizeof lim) == 0);
    CHECK_INT(p->window_interval, 100);
    CHECK_INT(p->watch, 0);
    sl_config_free(c);
    /* A policy with no limits given keeps the same defaults. */
    CHECK(put("p.lua", P_LUA) == 0);
    c = load_ok(LISTEN "policy { file = \"p.lua\" }\n");
    CHECK(c);
    p = &c->policy;
    CHECK_INT(p->nfiles, 1);
    CHECK(same_path(p->files[0].path, &t, "p.lua"));
    CHECK_INT(p->files[0].len, strlen(P_LUA));
    CHECK_STR(p->files[0].src, P_LUA);
    CHECK_INT(p->split, SL_SPLIT_NONE);
    CHECK(memcmp(&p->limits, &lim, sizeof lim) == 0);
    CHECK_INT(p->window_interval, 100);
    CHECK_INT(p->watch, 0);
    CHECK_STR(p->where.file, "t.lua");
    CHECK_INT(p->where.line, 2);
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(policy_every_field)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(put("a.lua", P_LUA) == 0 && put("b.lua", "-- b\n") == 0);
    sl_config *c = load_ok(LISTEN "\n"
                           "policy { files = { \"a.lua\", \"./b.lua\" }, split = \"client_hash\",\n"
                           "         instructions = 2000000, time = 0.25, memory = \"64m\",\n"
                           "         max_string = \"512k\", shared_keys = 500,\n"
                           "         shared_memory = 8388608, window_interval = 0.25,\n"
                           "         watch = true }\n");
    CHECK(c);
    const sl_cfg_policy *p = &c->policy;
    CHECK_INT(p->nfiles, 2);
    CHECK(same_path(p->files[0].path, &t, "a.lua"));
    CHECK(same_path(p->files[1].path, &t, "b.lua"));
    CHECK_MEM(p->files[0].src, p->files[0].len, P_LUA, strlen(P_LUA));
    CHECK_MEM(p->files[1].src, p->files[1].len + 1, "-- b\n", 6); /* NUL-terminated */
    CHECK_INT(p->split, SL_SPLIT_CLIENT_HASH);
    CHECK_INT(p->limits.max_instructions, 2000000);
    CHECK_INT(p->limits.max_time_ns, 250000000);
    CHECK_INT(p->limits.max_memory, 64 << 20);
    CHECK_INT(p->limits.max_string, 512 << 10);
    CHECK_INT(p->limits.shared_max_keys, 500);
    CHECK_INT(p->limits.shared_max_bytes, 8 << 20);
    CHECK_INT(p->window_interval, 250);
    CHECK_INT(p->watch, 1);
    CHECK_STR(p->where.file, "t.lua");
    CHECK_INT(p->where.line, 3); /* the line of the call */
    sl_config_free(c);
    /* Fractions of seconds, rounded like timeouts{}; watch = false. */
    c = load_ok(LISTEN "policy { file = \"a.lua\", time = 0.0015, window_interval = 0.0155,\n"
                "         memory = 1048576, watch = false }\n");
    CHECK(c);
    CHECK_INT(c->policy.limits.max_time_ns, 1500000);
    CHECK_INT(c->policy.window_interval, 16);
    CHECK_INT(c->policy.limits.max_memory, 1 << 20);
    CHECK_INT(c->policy.watch, 0);
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(policy_relative_paths)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(mkdir("conf", 0755) == 0 && mkdir("conf/policies", 0755) == 0);
    CHECK(mkdir("elsewhere", 0755) == 0);
    CHECK(put("conf/policies/a.lua", "-- a\n") == 0 && put("elsewhere/b.lua", "-- b\n") == 0);
    char text[PATH_MAX + 256];
    snprintf(text, sizeof text,
             LISTEN "policy { files = { \"policies/a.lua\", \"%s/elsewhere/b.lua\" },\n"
             "         split = \"client_hash\" }\n", t.real);
    CHECK(put("conf/sluice.lua", text) == 0);
    char err[1024] = "";
    sl_config *c = NULL;
    CHECK_INT(sl_config_load("conf/sluice.lua", &c, err, sizeof err), 0);
    CHECK(same_path(c->policy.files[0].path, &t, "conf/policies/a.lua"));
    CHECK(same_path(c->policy.files[1].path, &t, "elsewhere/b.lua"));
    CHECK_STR(c->policy.files[0].src, "-- a\n");
    CHECK_STR(c->policy.files[1].src, "-- b\n");
    CHECK_STR(c->policy.where.file, "conf/sluice.lua");
    sl_config_free(c);
    /* Not relative to the working directory: there is no policies/a.lua here. */
    CHECK(put("conf/bad.lua", LISTEN "policy { file = \"a.lua\" }\n") == 0);
    CHECK_INT(sl_config_load("conf/bad.lua", &c, err, sizeof err), INVAL);
    char want[PATH_MAX + 200];
    snprintf(want, sizeof want, "conf/bad.lua:2: policy: %s/conf/a.lua: No such file or "
             "directory", t.real);
    CHECK_STR(err, want);
    CHECK(c == NULL);
    tdir_leave(&t);
}

TEST(policy_checks)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(put("p.lua", P_LUA) == 0 && put("q.lua", P_LUA) == 0);
    FAILS(LISTEN "policy \"p.lua\"\n", "t.lua:2: policy expects a table, got string");
    FAILS(LISTEN "policy {}\n", "t.lua:2: policy: exactly one of file, files is required");
    FAILS(LISTEN "policy { file = \"p.lua\", files = { \"q.lua\" } }\n",
          "t.lua:2: policy: exactly one of file, files is required");
    FAILS(LISTEN "policy { file = \"p.lua\" }\n\npolicy { file = \"q.lua\" }\n",
          "t.lua:4: policy: declared twice, first at t.lua:2");
    FAILS(LISTEN "policy { fle = \"p.lua\" }\n",
          "t.lua:2: policy: unknown key 'fle' (known: file, files, split, instructions, time, "
          "memory, max_string, shared_keys, shared_memory, window_interval, watch)");
    FAILS(LISTEN "policy { file = 5 }\n", "t.lua:2: policy: file must be a string, got number");
    FAILS(LISTEN "policy { file = \"\" }\n", "t.lua:2: policy: file must not be empty");
    FAILS(LISTEN "policy { files = \"p.lua\" }\n",
          "t.lua:2: policy: files must be a list of paths, got string");
    FAILS(LISTEN "policy { files = {} }\n", "t.lua:2: policy: files must not be empty");
    FAILS(LISTEN "policy { files = { a = \"p.lua\" } }\n",
          "t.lua:2: policy: files must be a list, as in { \"a\", \"b\" }");
    FAILS(LISTEN "policy { files = { \"p.lua\", 7 }, split = \"client_hash\" }\n",
          "t.lua:2: policy: files: entries must be strings, got number");
    FAILS(LISTEN "policy { files = { \"p.lua\", \"\" }, split = \"client_hash\" }\n",
          "t.lua:2: policy: files: entry 2 is empty");
    FAILS(LISTEN "local f = {}\nfor i = 1, 9 do f[i] = \"p.lua\" end\n"
          "policy { files = f, split = \"client_hash\" }\n",
          "t.lua:4: policy: files: at most 8 entries, got 9");
    FAILS(LISTEN "policy { files = { \"p.lua\", \"q.lua\" } }\n",
          "t.lua:2: policy: 2 files need split = \"client_hash\" to choose one per connection");
    FAILS(LISTEN "policy { file = \"p.lua\", split = \"client_hash\" }\n",
          "t.lua:2: policy: split needs several files");
    FAILS(LISTEN "policy { files = { \"p.lua\" }, split = \"client_hash\" }\n",
          "t.lua:2: policy: split needs several files");
    FAILS(LISTEN "policy { files = { \"p.lua\", \"q.lua\" }, split = \"random\" }\n",
          "t.lua:2: policy: split must be 'client_hash', got 'random'");
    FAILS(LISTEN "policy { file = \"p.lua\", watch = \"yes\" }\n",
          "t.lua:2: policy: watch must be true or false, got string");
    FAILS(LISTEN "policy = { file = \"p.lua\" }\n",
          "t.lua:2: policy is a directive: call it, do not assign to it");
    /* Eight files are allowed. */
    sl_config *c = load_ok(LISTEN "local f = {}\nfor i = 1, 8 do f[i] = \"p.lua\" end\n"
                           "policy { files = f, split = \"client_hash\" }\n");
    CHECK(c);
    CHECK_INT(c->policy.nfiles, 8);
    CHECK_STR(c->policy.files[7].src, P_LUA);
    sl_config_free(c);
    tdir_leave(&t);
}

TEST(policy_limits_checked)
{
    tdir t;
    CHECK(tdir_enter(&t) == 0);
    CHECK(put("p.lua", P_LUA) == 0);
#define PL LISTEN "policy { file = \"p.lua\", "
    FAILS(PL "instructions = 0 }\n",
          "t.lua:2: policy: instructions must be an integer in 1000..10000000000, got 0");
    FAILS(PL "instructions = -5 }\n",
          "t.lua:2: policy: instructions must be an integer in 1000..10000000000, got -5");
    FAILS(PL "instructions = 1e11 }\n",
          "t.lua:2: policy: instructions must be an integer in 1000..10000000000, got "
          "100000000000");
    FAILS(PL "instructions = \"1m\" }\n",
          "t.lua:2: policy: instructions must be a number, got string");
    FAILS(PL "time = 0 }\n", "t.lua:2: policy: time must be in 0.001..60 seconds, got 0");
    FAILS(PL "time = -1 }\n", "t.lua:2: policy: time must be in 0.001..60 seconds, got -1");
    FAILS(PL "time = 61 }\n", "t.lua:2: policy: time must be in 0.001..60 seconds, got 61");
    FAILS(PL "time = \"50ms\" }\n",
          "t.lua:2: policy: time must be a number of seconds, got string");
    FAILS(PL "memory = 0 }\n", "t.lua:2: policy: memory must be a size in 1m..16g, got 0");
    FAILS(PL "memory = -1 }\n", "t.lua:2: policy: memory must be a size in 1m..16g, got -1");
    FAILS(PL "memory = \"512k\" }\n",
          "t.lua:2: policy: memory must be a size in 1m..16g, got '512k'");
    FAILS(PL "memory = \"32 MB\" }\n", "t.lua:2: policy: memory must be a size such as 65536, "
          "\"64k\", \"16m\" or \"1g\", got '32 MB'");
    FAILS(PL "max_string = 0 }\n", "t.lua:2: policy: max_string must be a size in 1k..1g, got 0");
    FAILS(PL "max_string = \"2g\" }\n",
          "t.lua:2: policy: max_string must be a size in 1k..1g, got '2g'");
    FAILS(PL "shared_keys = 0 }\n",
          "t.lua:2: policy: shared_keys must be an integer in 1..10000000, got 0");
    FAILS(PL "shared_keys = 1.5 }\n",
          "t.lua:2: policy: shared_keys must be an integer in 1..10000000, got 1.5");
    FAILS(PL "shared_memory = 0 }\n",
          "t.lua:2: policy: shared_memory must be a size in 1k..16g, got 0");
    FAILS(PL "window_interval = 0 }\n",
          "t.lua:2: policy: window_interval must be in 0.01..60 seconds, got 0");
    FAILS(PL "window_interval = -0.1 }\n",
          "t.lua:2: policy: window_interval must be in 0.01..60 seconds, got -0.1");
#undef PL
    tdir_leave(&t);
}

/* The text is read when the config is loaded; errors name the config's
 * file and the line of the policy call. */
TEST(policy_file_read)
{
    tdir t;
    char want[PATH_MAX + 200];
    CHECK(tdir_enter(&t) == 0);
    CHECK(mkdir("dir.lua", 0755) == 0);
    snprintf(want, sizeof want, "t.lua:3: policy: %s/nope.lua: No such file or directory", t.real);
    FAILS(LISTEN "\npolicy {\n  file = \"nope.lua\",\n}\n", want);
    snprintf(want, sizeof want, "t.lua:2: policy: %s/dir.lua: Is a directory", t.real);
    FAILS(LISTEN "policy { file = \"dir.lua\" }\n", want);
    CHECK(mkfifo("fifo.lua", 0644) == 0);
    snprintf(want, sizeof want, "t.lua:2: policy: %s/fifo.lua: not a regular file", t.real);
    FAILS(LISTEN "policy { file = \"fifo.lua\" }\n", want);
    /* The second of two files: its own path in the message. */
    CHECK(put("a.lua", "") == 0);
    snprintf(want, sizeof want, "t.lua:2: policy: %s/b.lua: No such file or directory", t.real);
    FAILS(LISTEN "policy { files = { \"a.lua\", \"b.lua\" }, split = \"client_hash\" }\n", want);
    /* An empty file is a policy without hooks; exactly 1 MiB is allowed,
     * any bytes (NUL too) are kept as they are. */
    sl_config *c = load_ok(LISTEN "policy { file = \"a.lua\" }\n");
    CHECK(c);
    CHECK_INT(c->policy.files[0].len, 0);
    CHECK_STR(c->policy.files[0].src, "");
    sl_config_free(c);
    size_t big = (size_t)1 << 20;
    char *text = malloc(big + 1);
    CHECK(text);
    memset(text, '-', big);
    memcpy(text + big - 4, "\0x\n\n", 4);
    FILE *f = fopen("big.lua", "wb");
    CHECK(f && fwrite(text, 1, big, f) == big && fclose(f) == 0);
    c = load_ok(LISTEN "policy { file = \"big.lua\" }\n");
    CHECK(c);
    CHECK_INT(c->policy.files[0].len, big);
    CHECK(memcmp(c->policy.files[0].src, text, big) == 0 && c->policy.files[0].src[big] == 0);
    sl_config_free(c);
    f = fopen("big.lua", "ab");
    CHECK(f && fputc('\n', f) == '\n' && fclose(f) == 0);
    free(text);
    snprintf(want, sizeof want, "t.lua:2: policy: %s/big.lua: larger than 1 MiB", t.real);
    FAILS(LISTEN "policy { file = \"big.lua\" }\n", want);
    tdir_leave(&t);
}
