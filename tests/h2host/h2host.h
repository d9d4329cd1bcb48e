/* h2host.h — the h2host test server: one sluice server session per TCP
 * connection (conn.c), the request handlers behind them (handlers.c). */
#ifndef H2HOST_H
#define H2HOST_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

#define H2H_NS_PER_MS 1000000ull
#define H2H_NEVER UINT64_MAX

/* What every connection is created with. */
typedef struct h2h_config {
    sluice_session_options opt;
    int verbose; /* also log connection open/close and stream resets */
    int sndbuf;  /* SO_SNDBUF of accepted sockets; 0: the kernel's */
} h2h_config;

typedef struct h2h_req h2h_req;

typedef struct h2h_conn {
    int fd;
    unsigned id;
    sluice_session *s;
    const h2h_config *cfg;
    uint64_t now;       /* time of the current loop round */
    h2h_req *reqs;      /* every request whose memory the session may still use */
    size_t echo_cap;    /* per-stream echo buffer: never less than a stream window */
    int freeing;        /* the session is being freed: callbacks must not call in */
    int blocked;        /* output remains: wait for POLLOUT */
    int peer_eof;       /* the client closed its side */
    int lingering;      /* we sent FIN and discard input until the client's */
    size_t discarded;
    uint64_t close_by;  /* the connection is ending: close at this time at the latest */
} h2h_conn;

/* conn.c */
h2h_conn *h2h_conn_new(int fd, unsigned id, const h2h_config *cfg, uint64_t now);
void h2h_conn_free(h2h_conn *c);
/* poll() events the connection waits for. */
short h2h_conn_events(const h2h_conn *c);
/* The earliest time the connection needs h2h_conn_step() without I/O. */
uint64_t h2h_conn_deadline(const h2h_conn *c);
/* Do what revents and the time allow; 1 when the connection is finished
 * and should be freed. */
int h2h_conn_step(h2h_conn *c, short revents, uint64_t now);
/* Graceful GOAWAY: streams in flight finish, then the connection ends. */
void h2h_conn_shutdown(h2h_conn *c, uint64_t now);
void h2h_log(const h2h_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* handlers.c */
void h2h_handlers_init(void);
void h2h_callbacks(sluice_session_callbacks *cb);
/* Timers of slow bodies: the earliest, and running those that are due. */
uint64_t h2h_reqs_deadline(const h2h_conn *c);
void h2h_reqs_run_timers(h2h_conn *c, uint64_t now);
/* After the session is freed: release every request. */
void h2h_reqs_free(h2h_conn *c);

#endif /* H2HOST_H */
