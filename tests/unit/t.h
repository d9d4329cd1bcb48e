/* t.h — the tiny test harness of sluice's unit tests.
 * TEST(name) registers a case; each case is its own ctest entry by name. */
#ifndef SL_T_H
#define SL_T_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*t_fn)(void);
struct t_case { const char *name; t_fn fn; };

extern struct t_case t_cases[];
extern int t_ncases;
extern int t_failed;

#define T_MAX_CASES 512

#define TEST(tname)                                                             \
    static void test_##tname(void);                                             \
    __attribute__((constructor)) static void t_reg_##tname(void)                \
    {                                                                          \
        if (t_ncases < T_MAX_CASES) {                                          \
            t_cases[t_ncases].name = #tname;                                    \
            t_cases[t_ncases].fn = test_##tname;                                \
            t_ncases++;                                                        \
        }                                                                      \
    }                                                                          \
    static void test_##tname(void)

#define T_FAIL(...)                                                            \
    do {                                                                       \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                        \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        t_failed = 1;                                                          \
    } while (0)

/* Each CHECK returns from the test on failure, so later lines never run
 * on a state the test did not expect. */
#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            T_FAIL("CHECK(%s) failed", #c);                                    \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_INT(a, b)                                                        \
    do {                                                                       \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                \
        if (t_a_ != t_b_) {                                                    \
            T_FAIL("%s == %lld, expected %s == %lld", #a, t_a_, #b, t_b_);     \
            return;                                                            \
        }                                                                      \
    } while (0)

void t_hexdump(const char *label, const void *p, size_t n);

#define CHECK_MEM(a, alen, b, blen)                                            \
    do {                                                                       \
        size_t t_al_ = (size_t)(alen), t_bl_ = (size_t)(blen);                 \
        if (t_al_ != t_bl_ || memcmp((a), (b), t_al_) != 0) {                  \
            T_FAIL("%s differs from %s", #a, #b);                              \
            t_hexdump("got", (a), t_al_);                                      \
            t_hexdump("want", (b), t_bl_);                                     \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_STR(a, b) CHECK_MEM((a), strlen(a), (b), strlen(b))

#endif /* SL_T_H */
