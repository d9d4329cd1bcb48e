/* sandbox.h — a Lua 5.4 state for untrusted policy code: safe libraries
 * only, a memory cap, and per-call instruction and wall-clock budgets. */
#ifndef SL_LUA_SANDBOX_H
#define SL_LUA_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

typedef struct sl_lbox sl_lbox;

typedef struct sl_lbox_limits {
    /* Units of work per call: a VM instruction, a pattern step, a value
     * a C function pushes, 16 bytes C code reads, 32 bytes allocated. */
    uint64_t instructions;
    uint64_t time_ns;        /* wall clock per call */
    size_t memory;           /* bytes the state may hold */
    size_t max_string;       /* biggest string string.rep & co may build */
} sl_lbox_limits;

typedef struct sl_lbox_env {
    /* print() and warnings: level as enum sluice_log_level. */
    void (*log)(void *ud, int level, const char *msg);
    /* Monotonic nanoseconds. */
    uint64_t (*clock)(void *ud);
    void *ud;
} sl_lbox_env;

/* Why a call failed (sl_lbox_call). */
enum sl_lbox_fail {
    SL_LBOX_OK = 0,
    SL_LBOX_ERROR,           /* the code raised an error */
    SL_LBOX_INSTRUCTIONS,    /* instruction budget spent */
    SL_LBOX_TIME,            /* wall-clock limit */
    SL_LBOX_MEMORY           /* memory cap */
};

/* A new state with the safe libraries open (base without dofile/loadfile,
 * load for text only, print to env->log; string with bounded patterns and
 * rep; table; math; utf8; coroutine). No io, os, debug, package. NULL when
 * out of memory. */
sl_lbox *sl_lbox_new(const sl_lbox_limits *lim, const sl_lbox_env *env);
void sl_lbox_free(sl_lbox *b);
lua_State *sl_lbox_state(sl_lbox *b);
size_t sl_lbox_memory(const sl_lbox *b);

/* The per-call budgets from the next call on (loading a policy runs its
 * chunk under larger ones than its hooks get). */
void sl_lbox_set_call_limits(sl_lbox *b, uint64_t instructions, uint64_t time_ns);

/* Compile text (never bytecode) named name ("policy.lua") and leave the
 * chunk function on the stack: 0, or -1 with "name:line: message". */
int sl_lbox_compile(sl_lbox *b, const char *src, size_t len, const char *name, char *err,
                    size_t errlen);
/* lua_pcall under the per-call budgets (the function and nargs arguments
 * on the stack). Returns SL_LBOX_OK with nresults pushed, or a failure
 * with nothing pushed and the message ("name:line: ...") in err; for the
 * memory cap the line is where the policy ran out of memory. Once a
 * budget is spent, or the cap hit, every later instruction of the call
 * fails too, so a pcall inside the policy cannot swallow it. Not
 * reentrant. */
int sl_lbox_call(sl_lbox *b, int nargs, int nresults, char *err, size_t errlen);

/* For C functions called by policy code (the patterns, bindings): charge
 * units of work to the running call's instruction budget, raising the
 * budget error when it is spent. */
void sl_lbox_charge(lua_State *L, uint64_t units);
/* The limit on strings built in C (max_string). */
size_t sl_lbox_max_string(lua_State *L);
/* The sandbox of a state (from any of its threads). */
sl_lbox *sl_lbox_of(lua_State *L);

#endif /* SL_LUA_SANDBOX_H */
