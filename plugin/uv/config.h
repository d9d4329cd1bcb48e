/* config.h — the `sluice` host's configuration: what a Lua config file
 * declares, with the file:line of every declaration for error messages. */
#ifndef SL_UV_CONFIG_H
#define SL_UV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"
#include "sluice/policy.h"

/* Where a declaration was made, for "file:line: message" errors. */
typedef struct sl_cfg_where {
    char *file;
    int line;
} sl_cfg_where;

typedef struct sl_cfg_listen {
    sl_cfg_where where;
    char *host;          /* "0.0.0.0", "::", "127.0.0.1" (no brackets) */
    uint16_t port;
    int tls;             /* 1: TLS with ALPN h2/http1.1; 0: h2c + HTTP/1.1 */
    int backlog;         /* 511 */
    int reuseport;       /* 1 */
} sl_cfg_listen;

typedef struct sl_cfg_cert {
    sl_cfg_where where;
    char *cert_file;     /* PEM chain */
    char *key_file;
    char **names;        /* SNI names it serves ("*.example.com" allowed); */
    size_t nnames;       /* none: taken from the certificate's SAN/CN */
} sl_cfg_cert;

enum sl_route_kind { SL_ROUTE_STATIC, SL_ROUTE_ECHO, SL_ROUTE_RETURN, SL_ROUTE_PROXY };

enum sl_balance { SL_BALANCE_ROUND_ROBIN = 0, SL_BALANCE_LEAST_CONN };
enum sl_up_proto { SL_UP_HTTP1 = 0, SL_UP_H2 };

/* One server of an upstream group: "host:port", "[v6]:port". */
typedef struct sl_cfg_server {
    char *host;          /* no brackets */
    uint16_t port;
    char *name;          /* "host:port" as written, for logs */
} sl_cfg_server;

/* Active health checks: a GET of path on every server each interval. */
typedef struct sl_cfg_health {
    int enabled;
    char *path;          /* "/" */
    uint32_t interval;   /* ms, 5000 */
    uint32_t timeout;    /* ms, 2000 */
    uint32_t fails;      /* consecutive failures that mark a server down: 2 */
    uint32_t passes;     /* consecutive successes that mark it up again: 1 */
} sl_cfg_health;

/* upstream { name = , servers = , ... } */
typedef struct sl_cfg_upstream {
    sl_cfg_where where;
    char *name;
    sl_cfg_server *servers;
    size_t nservers;
    int balance;         /* enum sl_balance */
    int protocol;        /* enum sl_up_proto; h2 without tls is h2c */
    /* tls = true or tls = { ca = , sni = , verify = , certificate = , key = } */
    int tls;
    char *tls_ca;        /* NULL: the system's default store */
    char *tls_sni;       /* NULL: the server's host (no SNI for an IP address) */
    int tls_verify;      /* 1 */
    char *tls_cert;      /* client certificate (PEM chain) and its key */
    char *tls_key;
    uint32_t keepalive;       /* idle connections kept per server: 32 */
    uint32_t max_conns;       /* connections per server per worker: 1024 */
    uint32_t h2_streams;      /* streams per HTTP/2 upstream connection: 100 */
    uint32_t connect_timeout; /* ms: 5000 */
    uint32_t read_timeout;    /* ms, waiting for the response or its next bytes: 60000 */
    uint32_t send_timeout;    /* ms, no write progress: 60000 */
    uint32_t idle_timeout;    /* ms, an idle pooled connection: 60000 */
    uint32_t tries;           /* attempts per request, on different servers: 3 */
    uint32_t max_fails;       /* failures within fail_timeout that mark a server down: 1 */
    uint32_t fail_timeout;    /* ms: 10000 (also how long it stays down) */
    uint32_t buffer;          /* per-stream buffer each way, bytes: 65536 */
    sl_cfg_health health;
} sl_cfg_upstream;

/* Forwarding headers a proxy route adds (RFC 9110 §7.6.3, RFC 7239). */
typedef struct sl_cfg_forwarded {
    int via;             /* 1: "via: 1.1 sluice" / "2 sluice" */
    int x_forwarded_for; /* 1: append the client address */
    int x_forwarded_proto; /* 1: "http" or "https" */
    int forwarded;       /* 0: RFC 7239 "forwarded: for=...;proto=...;host=..." */
} sl_cfg_forwarded;

typedef struct sl_cfg_route {
    sl_cfg_where where;
    char *authority;     /* NULL: any host */
    char *path;          /* prefix, "/" by default */
    int kind;            /* enum sl_route_kind */
    char *root;          /* SL_ROUTE_STATIC: directory */
    char *index;         /* SL_ROUTE_STATIC: "index.html" */
    int status;          /* SL_ROUTE_RETURN */
    char *body;          /* SL_ROUTE_RETURN */
    size_t body_len;
    char *content_type;  /* SL_ROUTE_RETURN: "text/plain" */
    char *proxy;         /* SL_ROUTE_PROXY: the upstream's name */
    size_t upstream;     /* SL_ROUTE_PROXY: index into cfg->upstreams */
    char *proxy_host;    /* SL_ROUTE_PROXY: Host/:authority sent, NULL: the client's */
    sl_cfg_forwarded forwarded;
    /* Priority, Early Hints and push (issue 7), for any kind of route. */
    int has_priority;    /* urgency/incremental given: the default of its streams */
    int urgency;         /* 0..7, RFC 9218 §4.1 (3 when only incremental is given) */
    int incremental;
    char **hints;        /* link field values for a 103 Early Hints (RFC 8297) */
    size_t nhints;
    char **push;         /* paths pushed with its responses (HTTP/2, GET only) */
    size_t npush;
} sl_cfg_route;

/* Bounds on the lists above: each costs a frame per request. */
#define SL_CFG_MAX_HINTS 16
#define SL_CFG_MAX_PUSH 16

/* All durations in milliseconds. */
typedef struct sl_cfg_timeouts {
    uint32_t handshake;  /* TLS handshake: 10 s */
    uint32_t preface;    /* first request bytes after accept/handshake: 10 s */
    uint32_t idle;       /* no stream open, nothing read: 60 s */
    uint32_t header;     /* a request's header section (HTTP/1.1): 10 s */
    uint32_t send;       /* no write progress while output is pending: 30 s */
    uint32_t drain;      /* graceful stop: streams in flight finish: 30 s */
    uint32_t close_wait; /* after the last GOAWAY: the client closes first: 2 s */
    uint32_t linger;     /* after our FIN: reading and discarding: 5 s */
} sl_cfg_timeouts;

/* policy { file = "p.lua" } or policy { files = { "a.lua", "b.lua" },
 * split = "client_hash" }, with the sandbox's limits: Lua policies
 * (lua/README.md). The files' text is read with the config, so that a
 * reload checks and switches config and policies together. */
typedef struct sl_cfg_policy_file {
    char *path;              /* resolved against the config's directory */
    char *src;               /* its text when the config was loaded */
    size_t len;
} sl_cfg_policy_file;

enum sl_policy_split { SL_SPLIT_NONE = 0, SL_SPLIT_CLIENT_HASH };

typedef struct sl_cfg_policy {
    sl_cfg_where where;
    sl_cfg_policy_file *files;   /* none: no policy */
    size_t nfiles;
    int split;                   /* several files: which one a connection gets */
    sluice_policy_options limits;/* instructions, time (s in the file), memory, ... */
    uint32_t window_interval;    /* ms between on_window calls at least: 100 */
    int watch;                   /* reload when a policy file changes: 0 */
} sl_cfg_policy;

typedef struct sl_config {
    sl_cfg_listen *listens;
    size_t nlistens;
    sl_cfg_cert *certs;
    size_t ncerts;
    sl_cfg_route *routes;
    size_t nroutes;
    sl_cfg_upstream *upstreams;
    size_t nupstreams;
    int workers;                  /* 1 */
    uint32_t max_connections;     /* per worker: 10000 */
    uint64_t max_body;            /* request body limit (413): 16 MiB */
    uint32_t notsent_lowat;       /* TCP_NOTSENT_LOWAT: 16384 */
    sl_cfg_timeouts timeouts;
    sluice_session_options h2;    /* http2 { ... } */
    char *access_log;             /* NULL: none; "-": stderr */
    char *error_log;              /* NULL: stderr */
    char *admin_host;             /* metrics endpoint, NULL: none */
    uint16_t admin_port;
    char *pid_file;
    char *user;                   /* drop privileges after binding */
    char *tls_min_version;        /* "1.2" (default) or "1.3" */
    char *file;                   /* the config file itself */
    sl_cfg_policy policy;         /* policy { ... } */
} sl_config;

/* Load and check a config file. On failure returns a negative
 * SLUICE_ERR_* and writes "file:line: message" into err. */
int sl_config_load(const char *path, sl_config **out, char *err, size_t errlen);
void sl_config_free(sl_config *cfg);

#endif /* SL_UV_CONFIG_H */
