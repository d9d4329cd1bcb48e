/* sluice/policy.h — libsluice-lua: Lua 5.4 policies that script a host's
 * HTTP/2 behaviour (priorities, push, Early Hints, windows, limits), with
 * a sandbox, per-call budgets and hot reload. See lua/README.md. */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include "../sluice.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One event loop's (one worker thread's) policies: they share its `shared`
 * table, which outlives every policy version. Not thread-safe: one engine
 * per loop, used from that loop only. */
typedef struct sluice_policy_engine sluice_policy_engine;
/* One loaded version of one policy file: its own Lua state. Connections
 * hold references; it is freed when the last one lets go. */
typedef struct sluice_policy sluice_policy;
/* A connection as policies see it, and a stream (request) on it. */
typedef struct sluice_policy_conn sluice_policy_conn;
typedef struct sluice_policy_stream sluice_policy_stream;

/* What the host does for a policy. Called after a hook returned without
 * error (a hook that fails has no effect), never during one. conn_ud and
 * stream_ud are what the host gave sluice_policy_conn_new() and
 * sluice_policy_stream_new(). Any may be NULL: the action is then refused
 * with a Lua error naming it. */
typedef struct sluice_policy_host {
    size_t struct_size;
    /* stream:push(path, headers): promise and answer a GET for path. */
    int (*push)(void *conn_ud, void *stream_ud, const char *path, const sluice_nv *hdrs,
                size_t n);
    /* stream:hint{...}: a 103 Early Hints with these `link` values. */
    int (*hint)(void *conn_ud, void *stream_ud, const sluice_nv *fields, size_t n);
    /* stream:respond(status [, body]): answer now, instead of the routes. */
    int (*respond)(void *conn_ud, void *stream_ud, int status, const char *body, size_t len);
    /* stream:upstream(name): the upstream group that should answer. */
    int (*upstream)(void *conn_ud, void *stream_ud, const char *name);
    /* stream:tag(key, value): an access-log field. */
    int (*tag)(void *conn_ud, void *stream_ud, const char *key, const char *value);
    /* res:set(name, value) (value NULL: remove) and res:add(name, value)
     * during on_response; add 1 appends instead of replacing. */
    int (*header)(void *conn_ud, void *stream_ud, const char *name, const char *value, int add);
    /* sluice.log(level, ...) and errors of hooks (with file:line). */
    void (*log)(void *engine_ud, int level, const char *msg);
    /* sluice.now(): seconds as a float, from the host's clock (ns). */
    uint64_t (*now)(void *engine_ud);
} sluice_policy_host;

typedef struct sluice_policy_options {
    size_t struct_size;
    uint64_t max_instructions;  /* VM instructions per hook call: 1,000,000 */
    uint64_t max_time_ns;       /* wall clock per hook call: 50 ms */
    size_t max_memory;          /* bytes per Lua state: 32 MiB */
    size_t max_string;          /* biggest string string.rep etc. may build: 1 MiB */
    size_t shared_max_keys;     /* entries of the `shared` table: 10000 */
    size_t shared_max_bytes;    /* its keys and string values: 4 MiB */
} sluice_policy_options;

SLUICE_API void sluice_policy_options_init_versioned(size_t struct_size,
                                                     sluice_policy_options *opt);
#define sluice_policy_options_init(opt)                                        \
    sluice_policy_options_init_versioned(sizeof(sluice_policy_options), (opt))

SLUICE_API int sluice_policy_engine_new(sluice_policy_engine **out,
                                        const sluice_policy_options *opt,
                                        const sluice_policy_host *host, void *engine_ud);
/* Policies and connections still referring to the engine must be gone. */
SLUICE_API void sluice_policy_engine_free(sluice_policy_engine *e);

/* Compile src (Lua text; bytecode is refused) in a fresh sandboxed state,
 * run it, and check it: the hooks it returns (a table) or defines (globals)
 * are functions, and on_connection runs without error on a synthetic
 * connection. name is the file name used in messages. On failure err
 * holds "name:line: message". The result has one reference. */
SLUICE_API int sluice_policy_load(sluice_policy_engine *e, const char *name, const char *src,
                                  size_t len, sluice_policy **out, char *err, size_t errlen);
SLUICE_API void sluice_policy_ref(sluice_policy *p);
SLUICE_API void sluice_policy_unref(sluice_policy *p);
SLUICE_API const char *sluice_policy_name(const sluice_policy *p);
/* Which hooks it has: SLUICE_HOOK_* bits. */
enum {
    SLUICE_HOOK_CONNECTION = 1, SLUICE_HOOK_REQUEST = 2, SLUICE_HOOK_RESPONSE = 4,
    SLUICE_HOOK_WINDOW = 8, SLUICE_HOOK_CLOSE = 16
};
SLUICE_API unsigned sluice_policy_hooks(const sluice_policy *p);

/* What on_connection sees. Strings NUL-terminated; NULL when unknown. */
typedef struct sluice_policy_conn_info {
    size_t struct_size;
    const char *peer;           /* "203.0.113.7:51234", "[2001:db8::1]:443" */
    const char *ip;             /* "203.0.113.7" */
    int port;
    const char *local;          /* the listener, "0.0.0.0:8443" */
    const char *sni;
    const char *alpn;           /* "h2", "http/1.1", "h2c" */
    const char *tls_version;    /* "TLSv1.3"; NULL on plain text */
    uint64_t id;
} sluice_policy_conn_info;

/* A connection: created when its protocol is known, before its session
 * (on_connection may change the session's options). Holds a reference to
 * p. The info strings are copied. */
SLUICE_API int sluice_policy_conn_new(sluice_policy *p, const sluice_policy_conn_info *info,
                                      void *conn_ud, sluice_policy_conn **out);
/* Run on_connection: opt (the session options the host would use) may be
 * changed; *push_allowed (the connection may be pushed to) likewise. On a
 * hook error both stay as they were. Returns 0 or a negative error. */
SLUICE_API int sluice_policy_on_connection(sluice_policy_conn *pc, sluice_session_options *opt,
                                           int *push_allowed);
/* The session, once it exists (NULL for HTTP/1.1): windows, priorities,
 * limits and settings then act on it. */
SLUICE_API void sluice_policy_conn_set_session(sluice_policy_conn *pc, sluice_session *s);
/* The largest stream receive window the host can buffer: later requests
 * for more (conn:window, conn:settings, stream:window) raise a Lua error.
 * 0 (default): no limit. */
SLUICE_API void sluice_policy_conn_set_window_limit(sluice_policy_conn *pc, uint32_t max);
/* Switch to a newer version of the policy (hot reload): handles the old
 * version's state gave out become stale; the new one's hooks run from
 * the next call. No-op when p is the current one. */
SLUICE_API void sluice_policy_conn_switch(sluice_policy_conn *pc, sluice_policy *p);
SLUICE_API sluice_policy *sluice_policy_conn_policy(const sluice_policy_conn *pc);

/* What on_window and on_close see. */
typedef struct sluice_policy_conn_stats {
    size_t struct_size;
    uint64_t rtt_ns;            /* 0: unknown */
    uint64_t recv_rate;         /* bytes/s consumed */
    uint64_t send_rate;         /* bytes/s written */
    uint64_t bytes_in, bytes_out;
    uint64_t buffered_in;       /* received, not yet consumed */
    uint64_t buffered_out;      /* queued, not yet written */
    uint32_t streams_open;
    uint64_t streams_total;
    uint64_t duration_ns;
    const char *close_reason;   /* on_close: "peer", "idle", "protocol", ... */
} sluice_policy_conn_stats;

/* on_window: the host calls it at least once per RTT estimate while data
 * flows (for example from a timer of max(RTT, 100 ms)). */
SLUICE_API int sluice_policy_on_window(sluice_policy_conn *pc, const sluice_policy_conn_stats *st);
/* on_close, then the connection is freed (streams must be freed first). */
SLUICE_API void sluice_policy_conn_close(sluice_policy_conn *pc,
                                         const sluice_policy_conn_stats *st);

/* A request and its response, as hooks read them. */
typedef struct sluice_policy_message {
    size_t struct_size;
    const char *method, *scheme, *authority, *path; /* request; NUL-terminated */
    int status;                 /* response */
    const sluice_nv *fields;    /* the header fields (lowercase names) */
    size_t nfields;
} sluice_policy_message;

SLUICE_API int sluice_policy_stream_new(sluice_policy_conn *pc, uint32_t stream_id,
                                        void *stream_ud, sluice_policy_stream **out);
SLUICE_API void sluice_policy_stream_free(sluice_policy_stream *ps);
/* The hooks. Return 0 (also when the policy has no such hook or the hook
 * failed: the failure is logged and its actions dropped) or a negative
 * error for misuse. */
SLUICE_API int sluice_policy_on_request(sluice_policy_stream *ps, const sluice_policy_message *req);
SLUICE_API int sluice_policy_on_response(sluice_policy_stream *ps, const sluice_policy_message *res);

/* Counters for metrics and tests. */
typedef struct sluice_policy_stats {
    size_t struct_size;
    uint64_t calls;             /* hook calls */
    uint64_t errors;            /* hook calls that raised an error */
    uint64_t budget_exceeded;   /* of them: instructions, time or memory */
    size_t memory;              /* bytes in use by the state */
} sluice_policy_stats;
SLUICE_API int sluice_policy_get_stats(const sluice_policy *p, sluice_policy_stats *st);
/* The same summed over every version the engine has loaded (counters) and
 * every version still alive (memory): what a worker reports. */
SLUICE_API int sluice_policy_engine_get_stats(const sluice_policy_engine *e,
                                              sluice_policy_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_POLICY_H */
