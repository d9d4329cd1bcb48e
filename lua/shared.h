/* shared.h — a worker's `shared` table: scalar values kept in C, outside
 * every Lua state, so they survive reloads and are seen by all policies. */
#ifndef SL_LUA_SHARED_H
#define SL_LUA_SHARED_H

#include <stddef.h>

#include <lua.h>

typedef struct sl_lshared sl_lshared;

/* Bounded: at most max_keys entries and max_bytes of keys and strings. */
sl_lshared *sl_lshared_new(size_t max_keys, size_t max_bytes);
void sl_lshared_free(sl_lshared *sh);
size_t sl_lshared_count(const sl_lshared *sh);

/* Push a proxy for the store *slot onto L (the slot, not the store: the
 * engine points a state's slot at a scratch store while it dry-runs a
 * policy, so a check leaves no trace in the live values): shared.k reads (nil when absent), shared.k = v
 * writes (v nil, boolean, number or string; nil deletes), pairs(shared)
 * walks it, #shared counts. Keys are strings or numbers (a number key and
 * its string are different keys, as in a table). Anything else, or a write
 * past the bounds, raises a Lua error. */
void sl_lshared_push(lua_State *L, sl_lshared *const *slot);

#endif /* SL_LUA_SHARED_H */
