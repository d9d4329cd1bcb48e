/* hookcost.c — the policy engine alone, no server: a policy's on_request and
 * on_response run for N synthetic requests; prints nanoseconds per request.
 *
 *   bench_policy_hook POLICY.lua [N]        (under valgrind --tool=callgrind
 *                                            for instructions per request)
 *
 * A quick, deterministic way to see what a change to lua/ costs; the
 * server-level figure (CPU per request beside no policy) is run-policy.sh's. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/policy.h"

static int op_header(void *c, void *s, const char *n, const char *v, int add)
{
    (void)c, (void)s, (void)n, (void)v, (void)add;
    return 0;
}

static int op_tag(void *c, void *s, const char *k, const char *v)
{
    (void)c, (void)s, (void)k, (void)v;
    return 0;
}

static void op_log(void *ud, int level, const char *msg)
{
    (void)ud, (void)level;
    fprintf(stderr, "%s\n", msg);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s POLICY.lua [requests]\n", argv[0]);
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 200000;
    static char src[1 << 20];
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    size_t len = fread(src, 1, sizeof src, f);
    fclose(f);
    sluice_policy_host h;
    memset(&h, 0, sizeof h);
    h.struct_size = sizeof h;
    h.header = op_header;
    h.tag = op_tag;
    h.log = op_log;
    sluice_policy_engine *e;
    sluice_policy *p;
    char err[768];
    if (sluice_policy_engine_new(&e, NULL, &h, NULL) != 0)
        return 1;
    if (sluice_policy_load(e, argv[1], src, len, &p, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    sluice_policy_conn_info in = {sizeof in, "127.0.0.1:50000", "127.0.0.1", 50000,
                                  "127.0.0.1:8080", NULL, "h2c", NULL, 1};
    sluice_policy_conn *pc;
    if (sluice_policy_conn_new(p, &in, NULL, &pc) != 0)
        return 1;
    /* What h2load sends and what a static route answers. */
    static const sluice_nv rqf[] = {
        {(const uint8_t *)"user-agent", (const uint8_t *)"h2load nghttp2/1.52.0", 10, 21, 0},
        {(const uint8_t *)"accept", (const uint8_t *)"*/*", 6, 3, 0}};
    static const sluice_nv rsf[] = {
        {(const uint8_t *)"content-type", (const uint8_t *)"text/html", 12, 9, 0},
        {(const uint8_t *)"content-length", (const uint8_t *)"1024", 14, 4, 0}};
    sluice_policy_message rq = {sizeof rq, "GET", "http", "localhost", "/page.html", 0, rqf, 2};
    sluice_policy_message rs = {sizeof rs, "GET", "http", "localhost", "/page.html", 200, rsf, 2};
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        sluice_policy_stream *ps;
        if (sluice_policy_stream_new(pc, (uint32_t)(2 * i + 1), NULL, &ps) != 0)
            return 1;
        sluice_policy_on_request(ps, &rq);
        sluice_policy_on_response(ps, &rs);
        sluice_policy_stream_free(ps);
    }
    double per = (now_ns() - t0) / (double)n;
    sluice_policy_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    sluice_policy_get_stats(p, &st);
    printf("%s: %ld requests, %.0f ns per request, %llu hook calls, %llu errors\n", argv[1], n,
           per, (unsigned long long)st.calls, (unsigned long long)st.errors);
    sluice_policy_conn_close(pc, NULL);
    sluice_policy_unref(p);
    sluice_policy_engine_free(e);
    return st.errors ? 1 : 0;
}
