/* config.h — the `sluice` host's configuration: what a Lua config file
 * declares, with the file:line of every declaration for error messages. */
#ifndef SL_UV_CONFIG_H
#define SL_UV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

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

enum sl_route_kind { SL_ROUTE_STATIC, SL_ROUTE_ECHO, SL_ROUTE_RETURN };

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
} sl_cfg_route;

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

typedef struct sl_config {
    sl_cfg_listen *listens;
    size_t nlistens;
    sl_cfg_cert *certs;
    size_t ncerts;
    sl_cfg_route *routes;
    size_t nroutes;
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
} sl_config;

/* Load and check a config file. On failure returns a negative
 * SLUICE_ERR_* and writes "file:line: message" into err. */
int sl_config_load(const char *path, sl_config **out, char *err, size_t errlen);
void sl_config_free(sl_config *cfg);

#endif /* SL_UV_CONFIG_H */
