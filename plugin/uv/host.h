/* host.h — internal structures of the libuv host: workers (one loop per
 * thread), listeners, connections, requests and their responses. */
#ifndef SL_UV_HOST_H
#define SL_UV_HOST_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "config.h"
#include "fcache.h"
#include "h1.h"
#include "sluice.h"
#include "tls.h"

typedef struct sl_worker sl_worker;
typedef struct sl_conn sl_conn;
typedef struct sl_req sl_req;

/* Shared by all workers: the running configuration and its TLS context,
 * swapped on reload; connections keep the generation they started with. */
typedef struct sl_gen {
    int refs;                /* workers and connections using it */
    sl_config *cfg;
    sl_tls_ctx *tls;         /* NULL without TLS listeners */
} sl_gen;

/* What a worker should listen on: the main thread binds the sockets (before
 * privileges are dropped) and hands them over; a reload keeps the sockets
 * of addresses that stay, so nothing waiting in their queues is reset. */
typedef struct sl_listen_plan {
    int fd;
    int tls;
    int fresh;               /* bound for this plan: no worker holds it yet */
    char name[64];
} sl_listen_plan;

typedef struct sl_listener {
    uv_poll_t poll;
    int fd;
    int tls;
    sl_worker *w;
    int paused;
    char name[64];           /* "127.0.0.1:8080" for logs */
} sl_listener;

/* Upper bounds (ms) of the RTT histogram's buckets, then +Inf. */
#define SL_RTT_BUCKETS 10
#define SL_RTT_BOUNDS_MS {1, 5, 10, 25, 50, 100, 250, 500, 1000}

typedef struct sl_stats {
    uint64_t conns_open, conns_total, streams_total, requests, bytes_in, bytes_out;
    uint64_t closes[8];      /* by reason, enum sl_close_reason */
    uint64_t stream_closes[14]; /* HTTP/2 streams by close code */
    uint64_t goaways[14];    /* GOAWAY codes we sent */
    /* reverse proxy */
    uint64_t up_conns_open, up_conns_total;
    uint64_t up_attempts, up_retries;  /* exchanges started on a server; of them retries */
    uint64_t up_fails[5];    /* by enum sl_px_fail */
    uint64_t up_502, up_504; /* errors answered for an upstream */
    /* HTTP/2 connections, counted when they close */
    uint64_t h2_pushes;      /* PUSH_PROMISEs sent */
    uint64_t rtt_n, rtt_sum_ns, rtt_buckets[SL_RTT_BUCKETS]; /* SRTT, when measured */
    /* Lua policies (the worker's engine, all versions) */
    uint64_t pol_calls, pol_errors, pol_budget, pol_memory;
} sl_stats;

struct sl_worker {
    uv_loop_t *loop;         /* own_loop, or an embedder's */
    uv_loop_t own_loop;
    uv_timer_t check;        /* publishes stats, notices the end of a stop */
    uv_thread_t thread;
    uv_async_t wake;         /* reload, stop */
    int index;
    sl_gen *gen;             /* for new connections */
    sl_gen *pending_gen;     /* set by the main thread, taken on wake */
    uv_mutex_t lock;         /* guards pending_gen and stop */
    int stop;                /* 1 graceful, 2 fast */
    int stopping;
    int closing;             /* our handles being closed at the end */
    int inited;              /* sl_worker_init ran: lock and handles exist */
    sl_listener **listeners;
    size_t nlisteners;
    sl_listen_plan *pending_plan; /* with pending_gen: the new listeners */
    size_t pending_nplan;
    sl_conn *conns;          /* doubly linked */
    uint32_t nconns;
    uint64_t next_conn_id;
    uint8_t *rbuf;           /* shared read buffer: no per-connection one */
    size_t rbuf_cap;
    uint8_t *tbuf;           /* shared TLS plaintext buffer */
    size_t tbuf_cap;
    uint8_t *wbuf;           /* gathers plaintext into whole TLS records */
    sl_fcache fcache;        /* small static files, this worker's own */
    sl_stats stats;
    sl_stats snapshot;       /* published under lock for the admin endpoint */
    uv_timer_t stop_timer;
    FILE *access_log;
    /* libsluice-uv embedders: called for each request before the routes. */
    int (*handler)(struct sl_req *req, void *ud);
    void *handler_ud;
    void (*on_stopped)(sl_worker *w);
    /* The reverse proxy: upstream runtimes (one per config generation in
     * use), their connections, and work deferred to the kick step so that
     * one side's callbacks never run inside the other's. */
    struct sl_uprt *uprts;
    uint32_t nuconns;
    uv_idle_t kick;
    sl_conn *kicked;
    struct sl_uconn *ukicked;
    /* Lua policies (lua/): this loop's engine and the versions new
     * connections get (one per policy file of the newest generation). */
    struct sluice_policy_engine *pe;
    struct sluice_policy **pols;
    size_t npols;
    uint64_t pol_serial;     /* bumped by each reload of the policies */
};

enum sl_close_reason {
    SL_CLOSE_PEER = 0,       /* the client closed */
    SL_CLOSE_IDLE,
    SL_CLOSE_TIMEOUT,        /* handshake, preface, header, send */
    SL_CLOSE_PROTOCOL,       /* connection error */
    SL_CLOSE_TLS,
    SL_CLOSE_SHUTDOWN,       /* graceful stop */
    SL_CLOSE_IO,             /* socket error */
    SL_CLOSE_LIMIT
};

enum sl_conn_state {
    SL_CONN_HANDSHAKE,       /* TLS handshake */
    SL_CONN_DETECT,          /* waiting for the first bytes: h2c or HTTP/1.1 */
    SL_CONN_ACTIVE,
    SL_CONN_CLOSE_WAIT,      /* all said; waiting for the client's FIN */
    SL_CONN_LINGER,          /* our FIN sent; reading and discarding */
    SL_CONN_CLOSED
};

struct sl_conn {
    sl_worker *w;
    sl_gen *gen;
    sl_conn *prev, *next;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    int handles_open;
    uint64_t id;
    int state;
    int tls_listener;
    int proto;               /* 0 unknown, 1 h2, 2 h1 */
    int peer_fin;
    int write_blocked;       /* the socket said EAGAIN */
    int read_paused;         /* the protocol holds enough unparsed input */
    int poll_events;         /* what uv_poll watches now (-1: stopped) */
    int close_reason;
    uint64_t state_since;    /* ms, loop time */
    uint64_t last_read, last_write_progress;
    char peer[64];
    sl_tls_conn *tls;
    sluice_session *h2;
    void *h2_state;          /* h2conn.c's per-connection state */
    struct sl_h1conn *h1;
    uint8_t detect[24];      /* first bytes, until h2c or HTTP/1.1 is known */
    size_t detect_len;
    uint32_t open_reqs;
    int kicked;
    sl_conn *kick_next;
    /* Its policy (policyhost.c), if the config has one. */
    struct sluice_policy_conn *pol;
    uint32_t pol_hash;       /* of the client's address: which A/B file */
    uint64_t pol_serial;     /* the worker's serial when it last synced */
    int pol_push;            /* 0: on_connection turned push off */
    uint64_t pol_window_at;  /* ms of the last on_window */
    uint64_t pol_bytes;      /* bytes in + out at that time */
    uint64_t pol_out;        /* bytes out at that time */
    uint64_t started_ms;
};

/* conn.c */
void sl_conn_accept(sl_worker *w, int fd, int tls, const struct sockaddr *peer);
void sl_conn_close(sl_conn *c, int reason);     /* orderly: begins close-wait */
void sl_conn_abort(sl_conn *c, int reason);     /* now */
void sl_conn_update(sl_conn *c);                /* recompute poll events and timer */
void sl_conn_flush(sl_conn *c);
/* Write plaintext now (through TLS when there is one); returns the bytes
 * taken, 0 when the socket is full, or a negative errno. */
long sl_conn_write(sl_conn *c, const sluice_iovec *iov, int n, size_t max);
void sl_conn_graceful(sl_conn *c);              /* start a graceful close */
void sl_conn_kick(sl_conn *c);                  /* flush it from the worker's kick step */
void sl_worker_kick(sl_worker *w);
void sl_worker_maybe_exit(sl_worker *w);
uint64_t sl_now_ms(const sl_conn *c);

/* h2conn.c */
int sl_h2_start(sl_conn *c, const uint8_t *in, size_t len);
int sl_h2_input(sl_conn *c, const uint8_t *in, size_t len);
int sl_h2_flush(sl_conn *c);                    /* 1 if output remains */
void sl_h2_goaway(sl_conn *c, int graceful);
int sl_h2_done(sl_conn *c);                     /* nothing more to do */
void sl_h2_free(sl_conn *c);
uint64_t sl_h2_deadline_ms(sl_conn *c);
void sl_h2_timeout(sl_conn *c);

/* h1conn.c */
int sl_h1_start(sl_conn *c, const uint8_t *in, size_t len);
int sl_h1_input(sl_conn *c, const uint8_t *in, size_t len);
int sl_h1_flush(sl_conn *c);
int sl_h1_done(sl_conn *c);
int sl_h1_busy(sl_conn *c);                     /* a request is in progress */
void sl_h1_free(sl_conn *c);
uint64_t sl_h1_deadline_ms(sl_conn *c);

/* gen.c */
sl_gen *sl_gen_new(sl_config *cfg, char *err, size_t errlen);
void sl_gen_ref(sl_gen *g);
void sl_gen_unref(sl_gen *g);

void sl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* SL_UV_HOST_H */
