/* worker.h — what the `sluice` program (main.c) needs from the workers:
 * listening sockets, start, reload, stop. */
#ifndef SL_UV_WORKER_H
#define SL_UV_WORKER_H

#include <stdio.h>

#include "host.h"

void sl_log_setup(FILE *f, int level);
void sl_addr_name(const struct sockaddr *sa, char *out, size_t cap);
/* A bound, listening, non-blocking socket for l, or -1 with err set. */
int sl_listen_socket(const sl_cfg_listen *l, char *err, size_t errlen);
int sl_worker_start(sl_worker *w);
/* Hand a new generation and the listeners it wants to a running worker
 * (it takes a reference to g and ownership of plan). */
void sl_worker_reload(sl_worker *w, sl_gen *g, sl_listen_plan *plan, size_t n);
void sl_worker_stop(sl_worker *w, int mode); /* 1 graceful, 2 fast */
void sl_worker_join(sl_worker *w);
/* Embedding: run on the caller's loop, in the caller's thread. */
int sl_worker_init(sl_worker *w, uv_loop_t *loop);
void sl_worker_begin_stop(sl_worker *w, int mode); /* 1 graceful, 2 fast */
void sl_worker_release(sl_worker *w);              /* after on_stopped */
void sl_worker_resume_accept(sl_worker *w);

#endif /* SL_UV_WORKER_H */
