/* admin.h — the metrics endpoint (Prometheus text format) on the admin
 * address, run by the main loop. */
#ifndef SL_UV_ADMIN_H
#define SL_UV_ADMIN_H

#include "host.h"

typedef struct sl_admin {
    uv_tcp_t tcp;
    int started;
    sl_worker *workers;
    int nworkers;
} sl_admin;

int sl_admin_start(sl_admin *ad, uv_loop_t *loop, const sl_config *cfg, char *err,
                   size_t errlen);
void sl_admin_stop(sl_admin *ad);

#endif /* SL_UV_ADMIN_H */
