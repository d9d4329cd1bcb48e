/* t_main.c — runs the registered cases: all of them, or the one named
 * in argv[1] (how ctest runs each case on its own). */
#include "t.h"

struct t_case t_cases[T_MAX_CASES];
int t_ncases;
int t_failed;

void t_hexdump(const char *label, const void *p, size_t n)
{
    const uint8_t *b = p;
    fprintf(stderr, "  %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 256; i++)
        fprintf(stderr, "%s%02x", i % 32 ? " " : "\n    ", b[i]);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    int ran = 0, failed = 0;
    for (int i = 0; i < t_ncases; i++) {
        if (argc > 1 && strcmp(argv[1], t_cases[i].name) != 0)
            continue;
        t_failed = 0;
        t_cases[i].fn();
        ran++;
        if (t_failed) {
            failed++;
            fprintf(stderr, "FAIL %s\n", t_cases[i].name);
        }
    }
    if (ran == 0) {
        fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "(any)");
        return 2;
    }
    printf("%d passed, %d failed\n", ran - failed, failed);
    return failed ? 1 : 0;
}
