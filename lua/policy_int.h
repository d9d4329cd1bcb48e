/* policy_int.h — the policy engine's objects, shared by the engine
 * (policy.c), the Lua bindings (bind.c) and the deferred actions (act.c). */
#ifndef SL_LUA_POLICY_INT_H
#define SL_LUA_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "sandbox.h"
#include "shared.h"
#include "sluice/policy.h"

enum sl_hook { SL_ON_CONNECTION, SL_ON_REQUEST, SL_ON_RESPONSE, SL_ON_WINDOW, SL_ON_CLOSE,
               SL_NHOOKS };

/* What a hook asked for; applied only when the hook returned cleanly. */
enum sl_act_kind {
    SL_ACT_PRIORITY, SL_ACT_PUSH, SL_ACT_HINT, SL_ACT_RESPOND, SL_ACT_UPSTREAM, SL_ACT_TAG,
    SL_ACT_HEADER, SL_ACT_STREAM_WINDOW, SL_ACT_CONN_WINDOW, SL_ACT_SETTINGS, SL_ACT_RATE
};

/* At most this many actions per hook call. */
#define SL_ACT_MAX 4096

/* The handle classes; their metatables are told apart by address. */
enum { SL_CLASS_CONN, SL_CLASS_STREAM, SL_CLASS_MSG, SL_NCLASSES };

typedef struct sl_act {
    int kind;                          /* -1: its stream or connection went away */
    struct sluice_policy_conn *pc;     /* the connection it acts on */
    struct sluice_policy_stream *ps;   /* NULL for connection actions */
    int a, b;                          /* urgency/incremental, status, add, rate kind */
    uint32_t u32[12];                  /* windows, settings pairs, rate */
    size_t nu32;
    char *s1, *s2;                     /* path/name/key, value/body (in the arena) */
    size_t l2;
    sluice_nv *nv;                     /* push headers, hint fields (arena) */
    size_t nnv;
} sl_act;

/* What a conn or stream handle stands for: obj while gen matches. */
typedef struct sl_slot {
    void *obj;
    uintptr_t gen;
    uint32_t next_free;                /* 1 + next free slot, 0: none */
} sl_slot;

/* What a req or res handle (light userdata) stands for. */
typedef struct sl_msg_slot {
    const sluice_policy_message *m;    /* NULL outside its hook */
    struct sluice_policy_stream *ps;
    uintptr_t gen;                     /* of the handle given out last */
} sl_msg_slot;

struct sluice_policy_engine {
    sluice_policy_options opt;
    sluice_policy_host host;
    void *ud;
    sl_lshared *shared;
    uint32_t live;                     /* policies not yet freed */
    struct sluice_policy *versions;    /* those, linked by enext */
    sluice_policy_stats stats;         /* counters of every version */
    /* Action lists being carried out, of any version (innermost first): a
     * host op may free a stream or close a connection, whose later actions
     * must be skipped. */
    struct sl_actlist *applying;
};

struct sluice_policy {
    sluice_policy_engine *e;
    struct sluice_policy *enext, **eprev; /* in e->versions */
    int refs;
    char *name;
    sl_lbox *box;
    lua_State *L;
    int hook[SL_NHOOKS];               /* registry refs, LUA_NOREF if absent */
    unsigned hooks;
    sl_msg_slot msg[2];                /* the running call's req [0] and res [1] */
    sl_lshared *shared;                /* what `shared` reaches: the engine's */
    sluice_policy_stats stats;
    /* The running call: its connection and the actions it queued. */
    struct sluice_policy_conn *cur;
    struct sluice_policy_stream *cur_stream;
    sl_act *acts;
    size_t nacts, acts_cap;
    char *arena;                       /* strings and fields of the actions */
    int depth;                         /* nested applies, bounded */
    /* What conn and stream handles stand for (bind.c). */
    struct sl_slot *slots;
    size_t nslots, slots_cap;
    uint32_t free_slot;                /* 1 + first free slot, 0: none */
};

struct sluice_policy_conn {
    sluice_policy *p;
    void *ud;
    sluice_session *s;
    int ref;                           /* its handle's slot in p, or LUA_NOREF */
    struct sluice_policy_stream *streams;
    char *strs;                        /* the info strings, one allocation */
    sluice_policy_conn_info info;
    /* During on_connection: the options being decided. */
    sluice_session_options *opt;
    int *push_allowed;
    uint32_t window_limit;             /* 0: none */
};

struct sluice_policy_stream {
    sluice_policy_conn *pc;
    uint32_t id;
    void *ud;
    int ref;
    struct sluice_policy_stream *prev, *next;
};

/* bind.c: metatables, the `sluice` module and `shared` in a new state. */
int sl_bind_open(sluice_policy *p);
void sl_bind_push_conn(sluice_policy *p, lua_State *L, sluice_policy_conn *pc);
void sl_bind_push_stream(sluice_policy *p, lua_State *L, sluice_policy_stream *ps);
/* A handle's object is gone (or the connection moved to another version). */
void sl_bind_invalidate(sluice_policy *p, int *ref);
/* The reusable req/res handle, pointing at m for the call. */
void sl_bind_push_message(sluice_policy *p, lua_State *L, int which,
                          const sluice_policy_message *m);
void sl_bind_clear_message(sluice_policy *p, int which);
void sl_bind_push_stats(lua_State *L, const sluice_policy_conn_stats *st);

/* act.c */
sl_act *sl_act_new(sluice_policy *p, int kind, sluice_policy_stream *ps);
int sl_act_reserve(sluice_policy *p, size_t n);
/* Actions queued or being applied for ps, or for pc and its streams, are
 * dropped (kind -1): the object is going away. */
void sl_act_forget(sluice_policy *p, sluice_policy_conn *pc, sluice_policy_stream *ps);
char *sl_act_str(sluice_policy *p, const char *s, size_t len);
void *sl_act_mem(sluice_policy *p, size_t n);
void sl_act_apply(sluice_policy *p);
void sl_act_drop(sluice_policy *p);
void sl_plog(sluice_policy_engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* SL_LUA_POLICY_INT_H */
