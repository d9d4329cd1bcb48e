/* luashim.c — the stdio streams of libsluice-lua's private Lua copy: the
 * archive's references to stdin/stdout/stderr are renamed to these. */
#include <stdio.h>

__attribute__((visibility("hidden"))) FILE *sl_lua_stdin, *sl_lua_stdout, *sl_lua_stderr;

/* Set before any Lua code can run (the library's constructor), once. */
__attribute__((constructor)) static void sl_lua_stdio(void)
{
    sl_lua_stdin = stdin;
    sl_lua_stdout = stdout;
    sl_lua_stderr = stderr;
}
