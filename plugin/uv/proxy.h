/* proxy.h — the reverse proxy inside the host: upstream groups with their
 * servers and connection pools (per worker), upstream connections speaking
 * HTTP/1.1 or HTTP/2, and the exchange that joins a client request to them. */
#ifndef SL_UV_PROXY_H
#define SL_UV_PROXY_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "config.h"
#include "h1.h"
#include "ring.h"
#include "sluice.h"
#include "tls.h"

struct sl_worker;
struct sl_gen;
struct sl_req;
typedef struct sl_uprt sl_uprt;
typedef struct sl_upgroup sl_upgroup;
typedef struct sl_upsrv sl_upsrv;
typedef struct sl_uconn sl_uconn;
typedef struct sl_proxy sl_proxy;

/* ---- upstream runtime (upstream.c): one per worker and config generation */

struct sl_upsrv {
    sl_upgroup *g;
    const sl_cfg_server *cfg;
    struct sockaddr_storage addr;
    socklen_t addrlen;       /* 0: the name did not resolve */
    uint32_t nconns;         /* open connections */
    uint32_t active;         /* exchanges in flight (least_conn) */
    uint32_t fails;          /* passive failures since fail_since */
    uint64_t fail_since, down_until;
    int hc_down;             /* marked down by the active check */
    uint32_t hc_fails, hc_passes;
    int hc_running;
    sl_uconn *idle;          /* HTTP/1.1 keep-alive pool, most recent first */
    uint32_t nidle;
    sl_uconn *conns;         /* every connection, doubly linked */
};

struct sl_upgroup {
    sl_uprt *rt;
    const sl_cfg_upstream *cfg;
    sl_upsrv *srv;
    size_t nsrv;
    size_t rr;               /* round-robin position */
    sl_tls_ctx *tls;         /* NULL without tls (or when it failed: tls_err) */
    char tls_err[256];
    uv_timer_t hc_timer;
    int hc_timer_on;
};

struct sl_uprt {
    struct sl_worker *w;
    struct sl_gen *gen;
    int refs;                /* exchanges and connections using it, + 1 while current */
    int retired;             /* the worker moved to a newer generation */
    int handles;             /* health timers not closed yet */
    sl_upgroup *groups;
    size_t ngroups;
    sl_uprt *next;
};

/* The worker's runtime for generation g (created on first use; one for a
 * generation the worker has left is created retired). */
sl_uprt *sl_uprt_get(struct sl_worker *w, struct sl_gen *g);
/* The worker switched generations (or stops: all): runtimes of other
 * generations close their pools, stop checks and go when unused. */
void sl_uprt_retire(struct sl_worker *w, int all);
void sl_uprt_unref(sl_uprt *rt);
/* Pick a server for px (round robin or least connections, skipping servers
 * that are down or already tried). NULL: none left. */
sl_upsrv *sl_up_pick(sl_upgroup *g, const sl_proxy *px, uint64_t now);
void sl_up_failed(sl_upsrv *s, uint64_t now, const char *why);
void sl_up_succeeded(sl_upsrv *s);
int sl_up_is_down(const sl_upsrv *s, uint64_t now);

/* ---- upstream connections (upconn.c, proxy_h1.c, proxy_h2.c) -------------- */

enum sl_uc_state { SL_UC_CONNECTING, SL_UC_HANDSHAKE, SL_UC_READY, SL_UC_CLOSED };

struct sl_uconn {
    sl_upsrv *srv;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    int handles_open;
    int state;
    int proto;               /* enum sl_up_proto */
    sl_tls_conn *tls;
    int poll_events, write_blocked, peer_fin, read_paused;
    uint64_t since, last_write;
    sl_uconn *prev, *next;   /* srv->conns */
    sl_uconn *idle_next;     /* srv->idle */
    int in_idle;
    uint64_t idle_since;
    int reused;              /* served an exchange before this one */
    int kicked;
    sl_uconn *kick_next;
    sl_proxy *waiting;       /* exchanges waiting for the connection to be ready */
    /* HTTP/1.1: one exchange at a time */
    sl_proxy *px;
    sl_h1_parser parser;
    uint8_t *in;             /* response bytes not parsed yet */
    size_t in_len, in_cap;
    uint8_t *out;            /* request head, chunk framing (owned bytes) */
    size_t out_len, out_off, out_cap;
    const uint8_t *bp;       /* borrowed request body piece being written */
    size_t bl, boff;
    uint8_t tail[8];         /* CRLF after a chunk */
    size_t tail_len, tail_off;
    int body_chunked, body_done, no_pool;
    /* HTTP/2 */
    sluice_session *h2;
    uint32_t nstreams;
    int goaway;              /* no new streams on it */
    sl_proxy *streams;       /* exchanges on it (list through px->snext) */
};

int sl_uconn_open(sl_upsrv *s, int proto, sl_uconn **out);
void sl_uconn_close(sl_uconn *u, const char *why);
void sl_uconn_kick(sl_uconn *u);          /* service it from the worker's idle step */
void sl_uconn_service(sl_uconn *u);       /* flush, parse held input, re-arm */
void sl_uconn_update(sl_uconn *u);
long sl_uconn_write(sl_uconn *u, const sluice_iovec *iov, int n);
void sl_uconn_release(sl_uconn *u);       /* HTTP/1.1: exchange done, pool or close */
uint64_t sl_uconn_now(const sl_uconn *u);

/* proxy_h1.c */
int sl_ph1_start(sl_uconn *u, sl_proxy *px);
int sl_ph1_input(sl_uconn *u, const uint8_t *in, size_t len);
int sl_ph1_flush(sl_uconn *u);
void sl_ph1_eof(sl_uconn *u);
void sl_ph1_free(sl_uconn *u);

/* proxy_h2.c */
int sl_ph2_init(sl_uconn *u);
int sl_ph2_start(sl_uconn *u, sl_proxy *px);
int sl_ph2_input(sl_uconn *u, const uint8_t *in, size_t len);
int sl_ph2_flush(sl_uconn *u);
void sl_ph2_cancel(sl_uconn *u, sl_proxy *px);
void sl_ph2_free(sl_uconn *u);
uint64_t sl_ph2_deadline(sl_uconn *u);
void sl_ph2_timeout(sl_uconn *u);

/* ---- the exchange (proxy.c) ------------------------------------------------ */

enum sl_px_fail { SL_PXF_CONNECT, SL_PXF_TIMEOUT, SL_PXF_RESET, SL_PXF_PROTOCOL, SL_PXF_TLS };

struct sl_proxy {
    struct sl_req *r;        /* the client's request; NULL once it is gone */
    sl_uprt *rt;
    sl_upgroup *g;
    sl_upsrv *srv;           /* current attempt */
    sl_uconn *uc;
    uint32_t sid;            /* HTTP/2 stream on uc */
    sl_proxy *snext, *sprev; /* uc->streams, or uc->waiting */
    int attached;            /* on uc (waiting or running) */
    /* the request as it goes upstream */
    char method[16];
    char *path, *authority;
    sluice_nv *fields;       /* lowercase names, hop-by-hop removed, forwarding added */
    size_t nfields;
    char *fbuf;
    int has_body;            /* a body follows the head */
    int64_t content_length;  /* -1: unknown (chunked to HTTP/1.1) */
    int idempotent;
    sl_ring req;
    int req_eof;
    sluice_nv *req_trailers;
    size_t nreq_trailers;
    char *req_tbuf;
    uint64_t req_taken;      /* request bytes the upstream has taken */
    int sent_any;            /* some of the request went out on this attempt */
    int req_trailers_due;    /* h2 source ended: submit trailers */
    /* the response */
    int status;
    sl_ring res;
    int res_eof;
    int got_head;            /* final response head received */
    int head_given;          /* handed to the client */
    int res_bytes;           /* any response byte on this attempt */
    sluice_nv *hdrs;
    size_t nhdrs;
    char *hbuf;
    sluice_nv *trailers;
    size_t ntrailers;
    char *tbuf;
    sluice_nv *info;         /* the last 103 Early Hints, for the client */
    size_t ninfo;
    char *ibuf;
    uint64_t last_progress;  /* ms: for read_timeout */
    int blocked;             /* the response buffer is full: the client is slow */
    uint64_t res_credit;     /* released by the client, not yet credited upstream (h2) */
    int counted;             /* srv->active counts this attempt */
    int sid_closed;          /* h2: the stream is gone, borrowed bytes remain */
    uint64_t res_unconsumed; /* h2: received, not yet credited to the upstream */
    uint32_t tries;
    uint32_t tried[16];      /* server indexes already tried */
    int done;                /* the upstream side is finished with px */
    char *srv_name;          /* last server tried, for the access log */
    /* active health checks: no client, a result callback instead */
    void (*on_result)(sl_proxy *px, int status);
    void *result_ud;
};

/* Front ends (respond.c, h1conn.c, h2conn.c) -> proxy. */
void sl_proxy_start(struct sl_req *r, const sl_config *cfg, const sl_cfg_route *rt,
                    const sluice_nv *nv, size_t n);
size_t sl_proxy_req_room(struct sl_req *r);
size_t sl_proxy_req_body(struct sl_req *r, const uint8_t *d, size_t n);
void sl_proxy_req_end(struct sl_req *r, const sluice_nv *trailers, size_t n);
long sl_proxy_read(struct sl_req *r, const uint8_t **p, size_t max, int *eof);
void sl_proxy_released(struct sl_req *r, size_t n);
void sl_proxy_detach(struct sl_req *r);
/* Health check: GET path on s; on_result gets the status or 0. */
int sl_proxy_check(sl_upsrv *s, void (*on_result)(sl_proxy *px, int status), void *ud);

/* Upstream connections -> proxy. */
void sl_px_ready(sl_proxy *px);            /* the connection can carry it now */
void sl_px_head(sl_proxy *px, int status, const sluice_nv *nv, size_t n, int body);
/* A 1xx before the final head: a 103 goes on to the client, others not. */
void sl_px_info(sl_proxy *px, int status, const sluice_nv *nv, size_t n);
size_t sl_px_body(sl_proxy *px, const uint8_t *d, size_t n);
void sl_px_trailers(sl_proxy *px, const sluice_nv *nv, size_t n);
void sl_px_end(sl_proxy *px);
void sl_px_failed(sl_proxy *px, int kind, const char *why);
void sl_px_req_taken(sl_proxy *px, size_t n);  /* request body bytes written */
int sl_px_detached(const sl_proxy *px);
void sl_px_free_if_done(sl_proxy *px);

#endif /* SL_UV_PROXY_H */
