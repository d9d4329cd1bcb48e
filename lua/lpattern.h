/* lpattern.h — Lua 5.4 pattern matching whose work is charged to the
 * sandbox's budget, for string.find/match/gmatch/gsub on long subjects. */
#ifndef SL_LUA_LPATTERN_H
#define SL_LUA_LPATTERN_H

#include <lua.h>

/* Replace find, match, gmatch, gsub and rep in the table at index idx
 * (the string library, also the strings' __index) with bounded versions:
 * every matcher step is charged with sl_lbox_charge(), and rep (and gsub's
 * result) may not exceed sl_lbox_max_string(). Results are those of Lua
 * 5.4's own functions otherwise. */
void sl_lpattern_install(lua_State *L, int idx);

#endif /* SL_LUA_LPATTERN_H */
