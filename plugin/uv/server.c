/* server.c — libsluice-uv's public API: one sluice worker on the caller's
 * loop and thread, with an application handler in front of the routes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "respond.h"
#include "sluice/uv.h"
#include "worker.h"

struct sluice_server {
    sl_worker w;            /* first: on_stopped gets the worker */
    uv_loop_t *loop;
    int started;
    void (*done)(sluice_server *srv, void *ud);
    void *done_ud;
};

int sluice_server_new(sluice_server **out, uv_loop_t *loop, const char *config, char *err,
                      size_t errlen)
{
    if (!out || !loop || !config)
        return SLUICE_ERR_INVAL;
    sl_config *cfg = NULL;
    int rv = sl_config_load(config, &cfg, err, errlen);
    if (rv != 0)
        return rv;
    sl_gen *g = sl_gen_new(cfg, err, errlen);
    if (!g) {
        sl_config_free(cfg);
        return SLUICE_ERR_INVAL;
    }
    sluice_server *s = calloc(1, sizeof(*s));
    sl_listen_plan *plan = calloc(cfg->nlistens ? cfg->nlistens : 1, sizeof(*plan));
    if (!s || !plan) {
        free(s);
        free(plan);
        sl_gen_unref(g);
        return SLUICE_ERR_NOMEM;
    }
    for (size_t k = 0; k < cfg->nlistens; k++) {
        plan[k].fd = sl_listen_socket(&cfg->listens[k], err, errlen);
        plan[k].tls = cfg->listens[k].tls;
        snprintf(plan[k].name, sizeof(plan[k].name), "%s:%u", cfg->listens[k].host,
                 cfg->listens[k].port);
        if (plan[k].fd < 0) {
            while (k-- > 0)
                close(plan[k].fd);
            free(plan);
            free(s);
            sl_gen_unref(g);
            return SLUICE_ERR_INVAL;
        }
    }
    s->loop = loop;
    s->w.gen = g;
    s->w.pending_plan = plan;
    s->w.pending_nplan = cfg->nlistens;
    *out = s;
    return 0;
}

void sluice_server_set_handler(sluice_server *srv, sluice_handler h, void *ud)
{
    if (!srv)
        return;
    srv->w.handler = (int (*)(struct sl_req *, void *))h;
    srv->w.handler_ud = ud;
}

int sluice_server_start(sluice_server *srv)
{
    if (!srv || srv->started)
        return SLUICE_ERR_STATE;
    srv->started = 1;
    return sl_worker_init(&srv->w, srv->loop);
}

static void stopped(sl_worker *w)
{
    sluice_server *srv = (sluice_server *)w;
    if (srv->done)
        srv->done(srv, srv->done_ud);
}

void sluice_server_stop(sluice_server *srv, int graceful,
                        void (*done)(sluice_server *srv, void *ud), void *ud)
{
    if (!srv || !srv->started)
        return;
    srv->done = done;
    srv->done_ud = ud;
    srv->w.on_stopped = stopped;
    sl_worker_begin_stop(&srv->w, graceful ? 1 : 2);
}

void sluice_server_free(sluice_server *srv)
{
    if (!srv)
        return;
    if (!srv->started) {
        for (size_t k = 0; k < srv->w.pending_nplan; k++)
            close(srv->w.pending_plan[k].fd);
    }
    sl_worker_release(&srv->w);
    free(srv);
}

const char *sluice_request_method(const sluice_request *req)
{
    return req ? req->method : NULL;
}

const char *sluice_request_path(const sluice_request *req)
{
    return req ? req->path : NULL;
}

const char *sluice_request_authority(const sluice_request *req)
{
    return req ? req->authority : NULL;
}

const uint8_t *sluice_request_header(const sluice_request *req, const char *name, size_t *len)
{
    size_t l = 0;
    if (!req || !name || !req->fields)
        return NULL;
    const char *v = sl_find_header(req->fields, req->nfields, name, &l);
    if (v && len)
        *len = l;
    return (const uint8_t *)v;
}

int sluice_request_respond(sluice_request *req, int status, const sluice_nv *hdrs, size_t n,
                           const void *body, size_t len)
{
    if (!req || status < 200 || status > 599 || (n && !hdrs) || (len && !body))
        return SLUICE_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        if (hdrs[i].name_len >= sizeof(name))
            return SLUICE_ERR_INVAL;
        memcpy(name, hdrs[i].name, hdrs[i].name_len);
        name[hdrs[i].name_len] = 0;
        if (sl_resp_header(req, name, (const char *)hdrs[i].value, hdrs[i].value_len) != 0)
            return SLUICE_ERR_LIMIT;
    }
    req->status = status;
    return sl_respond_owned_body(req, body, len);
}
