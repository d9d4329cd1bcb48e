/* respond.h — the built-in responders (static files, echo, fixed return)
 * behind a protocol-neutral request/response object that the HTTP/2 and
 * HTTP/1.1 front ends both drive. */
#ifndef SL_UV_RESPOND_H
#define SL_UV_RESPOND_H

#include <stdint.h>

#include "config.h"
#include "ring.h"
#include "sluice.h"

enum sl_body_kind { SL_BODY_NONE, SL_BODY_MEM, SL_BODY_FILE, SL_BODY_ECHO, SL_BODY_PROXY };

#define SL_RESP_MAX_HDRS 16
#define SL_ECHO_BUF (64 * 1024)
/* A file body's ring: twice the host's default write budget (4 x
 * notsent_lowat), so an urgent stream can fill a whole write by itself
 * instead of leaving it to less urgent ones while its bytes are out. */
#define SL_FILE_RING (128 * 1024)

struct sl_fcache;
struct sl_fentry;
struct sl_proxy;
struct sl_worker;
struct sl_gen;

typedef struct sl_req {
    /* request */
    char method[16];
    char *path;              /* owned, as received (with query) */
    char *authority;         /* owned, may be NULL */
    int is_head;
    int64_t content_length;  /* -1: unknown */
    uint64_t body_received;
    uint64_t max_body;
    uint64_t started_ms;
    struct sl_fcache *fcache;  /* the worker's small-file cache (or NULL) */
    struct sl_fentry *fentry;  /* cached file the body points into */
    /* An embedder's handler (libsluice-uv), tried before the routes; the
     * request fields are readable while it runs. */
    int (*handler)(struct sl_req *r, void *ud);
    void *handler_ud;
    const sluice_nv *fields;
    size_t nfields;
    void *owned;               /* a body the handler gave, copied */
    /* response */
    int status;
    sluice_nv hdrs[SL_RESP_MAX_HDRS];
    size_t nhdrs;
    char hbuf[1024];
    size_t hlen;
    int body_kind;
    uint64_t body_len;       /* -1 unknown (echo without content-length) */
    uint64_t sent;
    /* SL_BODY_MEM */
    const uint8_t *mem;
    size_t mem_off;
    /* SL_BODY_FILE and SL_BODY_ECHO: buf is a ring, [released,
     * handed_end) borrowed by the protocol until released, [handed_end,
     * written) ready; positions grow, index = pos % cap. handed: bytes
     * borrowed now (every kind but echo). */
    int fd;
    uint64_t file_off, file_left;
    uint8_t *buf;
    size_t buf_cap, handed;
    /* For echo, the peer cannot send more than its window, so unreleased
     * bytes never exceed the ring when the window is at most SL_ECHO_BUF. */
    uint64_t released, handed_end, written;
    size_t echo_cap;         /* ring size: at least the peer's window */
    sl_ring echo;            /* SL_BODY_ECHO: the body, memory as it arrives */
    int in_eof;              /* echo: the request body has ended */
    int waiting;             /* the body source said AGAIN */
    /* Set by the front end before sl_respond(), for the proxy. */
    struct sl_worker *w;
    struct sl_gen *gen;
    const char *peer;        /* client "ip:port" */
    int tls;                 /* the client came over TLS */
    int front_h2;            /* the client speaks HTTP/2 */
    int no_body;             /* the request has no body (END_STREAM on HEADERS) */
    /* SL_BODY_PROXY: an upstream answers (proxy.c). status stays 0 until
     * its head is in; notify() tells the front end there is news. */
    struct sl_proxy *proxy;
    const sluice_nv *xhdrs;  /* response fields, instead of hdrs */
    size_t nxhdrs;
    const sluice_nv *trailers; /* response trailers, set before the body's end */
    size_t ntrailers;
    uint64_t credit;         /* request body bytes taken upstream, to credit */
    int abort;               /* the upstream failed mid-response: cut the stream */
    /* An upstream's 103 Early Hints (RFC 8297) to pass on, hop-by-hop
     * fields removed: info_due is set with notify() and cleared by the
     * front end once it sent (or dropped) them. */
    const sluice_nv *info;
    size_t ninfo;
    int info_due;
    void (*notify)(struct sl_req *r);
    void *front;
    /* The route that answered (urgency, hints, push), NULL without one. */
    const sl_cfg_route *route;
    /* Called by sl_respond() once the route is known (r->route, maybe
     * NULL), before it answers: the front end's route priority and the
     * policy's on_request. A status set by it answers the request. */
    void (*on_route)(struct sl_req *r, const sluice_nv *nv, size_t n);
    /* Lua policies (policyhost.c): the stream's handle and what its hooks
     * asked for. hint and push are the front end's (push: HTTP/2 only). */
    struct sluice_policy_stream *pol;
    int (*hint)(struct sl_req *r, const sluice_nv *nv, size_t n);
    int (*push)(struct sl_req *r, const char *path, const sluice_nv *h, size_t n);
    size_t pol_upstream;     /* 1 + index into cfg->upstreams; 0: the route's */
    sl_cfg_route pol_route;  /* the route used for pol_upstream */
    char *tags;              /* " key=value" pairs for the access log */
    size_t tags_len;
    struct sl_hedit *edits;  /* response field edits, applied at submit */
    size_t nedits;
} sl_req;

/* Route a request and fill the response. nv: the request's fields (valid
 * only during the call). cert_covers: 421 check (NULL on plain text). */
void sl_respond(sl_req *r, const sl_config *cfg, const sluice_nv *nv, size_t n,
                int (*cert_covers)(void *ud, const char *host, size_t len), void *ud);
/* Next body bytes: count (pointer in *p, valid until released), 0 with
 * *eof at the end, or SLUICE_ERR_AGAIN. */
long sl_body_read(sl_req *r, const uint8_t **p, size_t max, int *eof);
/* The protocol wrote (or dropped) n borrowed bytes. */
void sl_body_released(sl_req *r, size_t n);
/* Echo: request body bytes in; returns how many were taken. */
size_t sl_body_feed(sl_req *r, const uint8_t *d, size_t n);
void sl_body_feed_end(sl_req *r);
/* A request field by lowercase name (HTTP/1.1 names compare without
 * case), or NULL. */
const char *sl_find_header(const sluice_nv *nv, size_t n, const char *name, size_t *len);
/* A NUL-terminated copy of p[0..n) (malloc), or NULL. */
char *sl_strndup(const uint8_t *p, size_t n);
/* sl_tls_cert_covers() in the shape sl_respond() takes (ud: the conn). */
int sl_tls_covers_cb(void *ud, const char *host, size_t len);
/* Add a response header (copied). */
int sl_resp_header(sl_req *r, const char *name, const char *value, size_t vlen);
void sl_req_free(sl_req *r);
/* The response body is a copy of body (for handlers). */
int sl_respond_owned_body(sl_req *r, const void *body, size_t len);
/* Set a short error response (status + text body). */
void sl_respond_error(sl_req *r, int status);
const char *sl_status_text(int status);

#endif /* SL_UV_RESPOND_H */
