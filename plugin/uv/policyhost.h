/* policyhost.h — the `sluice` host's side of Lua policies: per-worker
 * engines and versions, per-connection handles, and the actions hooks take. */
#ifndef SL_UV_POLICYHOST_H
#define SL_UV_POLICYHOST_H

#include "host.h"
#include "respond.h"
#include "sluice/policy.h"

/* Compile and dry-run every policy file of cfg in a scratch engine: what
 * `sluice -t` and a reload check before anything switches. err holds
 * "config:line: policy: file:line: message". */
int sl_policy_check(const sl_config *cfg, char *err, size_t errlen);

/* Worker: load g's policies into the worker's engine (created on first
 * use). On failure the versions in use stay and the error is logged. */
void sl_wpol_load(sl_worker *w, sl_gen *g);
void sl_wpol_free(sl_worker *w);
/* The worker's policy counters into its stats (before they are published). */
void sl_wpol_stats(sl_worker *w);

/* The largest stream receive window a connection with a policy may get
 * (request bodies are buffered up to one window). */
uint32_t sl_pol_window_limit(const sl_config *cfg);

/* Connection: create its handle and run on_connection once the protocol
 * is known; opt (HTTP/2 only, else NULL) may be changed by the policy. */
void sl_cpol_start(sl_conn *c, const char *alpn, sluice_session_options *opt);
/* Newest version for this connection (before each hook). 0: no policy. */
int sl_cpol_sync(sl_conn *c);
/* on_window when due: at most every window_interval (or RTT) while bytes
 * move. */
void sl_cpol_window(sl_conn *c);
void sl_cpol_close(sl_conn *c);

/* Request: on_request once the route is known (r->route, may be NULL);
 * on_response before the head goes out. The front end fills r->pol_*. */
void sl_rpol_request(sl_conn *c, sl_req *r, uint32_t stream_id, const char *scheme,
                     const sluice_nv *nv, size_t n);
void sl_rpol_response(sl_conn *c, sl_req *r, const sluice_nv *hdrs, size_t n);
/* The response fields with the policy's edits: into out (cap entries);
 * returns the count. */
size_t sl_rpol_fields(const sl_req *r, const sluice_nv *in, size_t n, sluice_nv *out, size_t cap);
void sl_rpol_free(sl_req *r);

#endif /* SL_UV_POLICYHOST_H */
