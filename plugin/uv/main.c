/* main.c — the `sluice` program: `sluice -c FILE` runs, `-t` checks the
 * configuration, `-v` prints the version; signals stop, reload and reopen
 * logs. Workers (one loop per thread) do the serving. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "host.h"
#include "worker.h"

typedef struct sl_main {
    uv_loop_t *loop;
    const char *config_path;
    sl_gen *gen;
    sl_worker *workers;
    int nworkers;
    FILE *access_log, *error_log;
    uv_signal_t sig[5];
    sl_admin admin;
    sl_listen_plan **plans; /* per worker: the sockets it was given */
    size_t *nplan;
} sl_main;

static void usage(void)
{
    fprintf(stderr, "usage: sluice [-t] [-q] -c config.lua | -v\n"
                    "  -c FILE  run with this configuration\n"
                    "  -t       check the configuration (and certificates) and exit\n"
                    "  -q       log warnings and errors only\n"
                    "  -v       print the version and exit\n");
}

static FILE *open_log(const char *path)
{
    if (!path)
        return NULL;
    if (strcmp(path, "-") == 0)
        return stderr;
    FILE *f = fopen(path, "a");
    if (!f)
        fprintf(stderr, "sluice: cannot open log %s: %s\n", path, strerror(errno));
    else
        setvbuf(f, NULL, _IOLBF, 0);
    return f;
}

static sl_gen *load(const char *path, char *err, size_t errlen)
{
    sl_config *cfg = NULL;
    if (sl_config_load(path, &cfg, err, errlen) != 0)
        return NULL;
    sl_gen *g = sl_gen_new(cfg, err, errlen);
    if (!g)
        sl_config_free(cfg);
    return g;
}

/* The listeners worker i should have under cfg: sockets it already has
 * (by address) are kept, others are bound here. Each worker has its own
 * SO_REUSEPORT socket per address. With strict, a failed bind fails. */
static sl_listen_plan *plan_for(sl_main *m, int i, const sl_config *cfg, int strict,
                                size_t *count, char *err, size_t errlen)
{
    sl_listen_plan *p = calloc(cfg->nlistens ? cfg->nlistens : 1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = 0;
    for (size_t k = 0; k < cfg->nlistens; k++) {
        sl_listen_plan *e = &p[n];
        snprintf(e->name, sizeof(e->name), "%s:%u", cfg->listens[k].host,
                 cfg->listens[k].port);
        e->tls = cfg->listens[k].tls;
        e->fd = -1;
        for (size_t j = 0; j < m->nplan[i]; j++)
            if (strcmp(m->plans[i][j].name, e->name) == 0)
                e->fd = m->plans[i][j].fd;
        if (e->fd < 0) {
            e->fd = sl_listen_socket(&cfg->listens[k], err, errlen);
            e->fresh = 1;
        }
        if (e->fd < 0) {
            if (strict) {
                for (size_t j = 0; j < n; j++)
                    close(p[j].fd);
                free(p);
                return NULL;
            }
            sl_log(0, "%s", err); /* on reload: the rest goes on */
            continue;
        }
        n++;
    }
    free(m->plans[i]);
    m->plans[i] = malloc(n * sizeof(*p) + 1);
    if (m->plans[i])
        memcpy(m->plans[i], p, n * sizeof(*p));
    m->nplan[i] = m->plans[i] ? n : 0;
    *count = n;
    return p;
}

static int bind_all(sl_main *m, char *err, size_t errlen)
{
    for (int i = 0; i < m->nworkers; i++) {
        sl_worker *w = &m->workers[i];
        w->pending_plan = plan_for(m, i, m->gen->cfg, 1, &w->pending_nplan, err, errlen);
        if (!w->pending_plan)
            return -1;
    }
    return 0;
}

static int drop_privileges(const char *user)
{
    if (!user || geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam(user);
    if (!pw || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "sluice: cannot switch to user %s: %s\n", user, strerror(errno));
        return -1;
    }
    return 0;
}

static void reopen(FILE *f, const char *path)
{
    if (!f || f == stderr || !path || strcmp(path, "-") == 0)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        sl_log(0, "cannot reopen %s: %s", path, strerror(errno));
        return;
    }
    fflush(f);
    dup2(fd, fileno(f)); /* atomic for the threads writing to f */
    close(fd);
}

static void on_signal(uv_signal_t *h, int signum)
{
    sl_main *m = h->data;
    char err[512];
    switch (signum) {
    case SIGHUP: {
        sl_gen *g = load(m->config_path, err, sizeof(err));
        if (!g) {
            sl_log(0, "reload failed, keeping the running configuration: %s", err);
            return;
        }
        for (int i = 0; i < m->nworkers; i++) {
            size_t n = 0;
            sl_listen_plan *plan = plan_for(m, i, g->cfg, 0, &n, err, sizeof(err));
            sl_worker_reload(&m->workers[i], g, plan, n);
        }
        sl_gen_unref(m->gen);
        m->gen = g;
        sl_log(2, "reloaded %s", m->config_path);
        return;
    }
    case SIGUSR1: /* after rotation: same FILE, new file underneath */
        reopen(m->access_log, m->gen->cfg->access_log);
        reopen(m->error_log, m->gen->cfg->error_log);
        sl_log(2, "logs reopened");
        return;
    default:
        sl_log(2, "%s: %s stop", strsignal(signum), signum == SIGQUIT ? "fast" : "graceful");
        for (int i = 0; i < m->nworkers; i++)
            sl_worker_stop(&m->workers[i], signum == SIGQUIT ? 2 : 1);
        for (int i = 0; i < 5; i++)
            uv_close((uv_handle_t *)&m->sig[i], NULL);
        sl_admin_stop(&m->admin);
    }
}

static int write_pid(const char *path)
{
    if (!path)
        return 0;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "sluice: cannot write pid file %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return 0;
}

static int serve(sl_main *m)
{
    char err[512];
    const sl_config *cfg = m->gen->cfg;
    m->nworkers = cfg->workers > 0 ? cfg->workers : 1;
    m->workers = calloc((size_t)m->nworkers, sizeof(*m->workers));
    m->plans = calloc((size_t)m->nworkers, sizeof(*m->plans));
    m->nplan = calloc((size_t)m->nworkers, sizeof(*m->nplan));
    if (!m->workers || !m->plans || !m->nplan || bind_all(m, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 1;
    }
    if (drop_privileges(cfg->user) != 0 || write_pid(cfg->pid_file) != 0)
        return 1;
    m->access_log = open_log(cfg->access_log);
    for (int i = 0; i < m->nworkers; i++) {
        sl_worker *w = &m->workers[i];
        w->index = i;
        w->gen = m->gen;
        sl_gen_ref(m->gen);
        w->access_log = m->access_log;
        if (sl_worker_start(w) != 0) {
            fprintf(stderr, "sluice: cannot start worker %d\n", i);
            return 1;
        }
    }
    m->admin.workers = m->workers;
    m->admin.nworkers = m->nworkers;
    if (sl_admin_start(&m->admin, m->loop, cfg, err, sizeof(err)) != 0)
        sl_log(0, "%s", err);
    for (size_t k = 0; k < cfg->nlistens; k++)
        sl_log(2, "listening on %s:%u (%s)", cfg->listens[k].host, cfg->listens[k].port,
               cfg->listens[k].tls ? "TLS: h2, http/1.1" : "h2c, http/1.1");
    static const int sigs[5] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    for (int i = 0; i < 5; i++) {
        uv_signal_init(m->loop, &m->sig[i]);
        m->sig[i].data = m;
        uv_signal_start(&m->sig[i], on_signal, sigs[i]);
    }
    printf("sluice %s ready\n", sluice_version());
    fflush(stdout);
    uv_run(m->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < m->nworkers; i++) {
        sl_worker_join(&m->workers[i]);
        free(m->plans[i]);
    }
    free(m->workers);
    free(m->plans);
    free(m->nplan);
    if (m->gen->cfg->pid_file)
        unlink(m->gen->cfg->pid_file);
    sl_gen_unref(m->gen);
    if (m->access_log && m->access_log != stderr)
        fclose(m->access_log);
    sl_log(2, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int check = 0, quiet = 0, opt;
    while ((opt = getopt(argc, argv, "c:tqvh")) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 't': check = 1; break;
        case 'q': quiet = 1; break;
        case 'v': printf("sluice %s\n", sluice_version()); return 0;
        default: usage(); return opt == 'h' ? 0 : 2;
        }
    }
    if (!config) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Per-request buffers come and go by the thousand: without this glibc
     * hands freed pages back to the kernel after every batch (madvise) and
     * faults them in again, which cost half the CPU of small requests. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    char err[1024];
    sl_main m;
    memset(&m, 0, sizeof(m));
    m.config_path = config;
    m.gen = load(config, err, sizeof(err));
    if (!m.gen) {
        fprintf(stderr, "sluice: %s\n", err);
        return 1;
    }
    if (check) {
        printf("sluice: %s: configuration ok\n", config);
        sl_gen_unref(m.gen);
        return 0;
    }
    m.error_log = open_log(m.gen->cfg->error_log);
    sl_log_setup(m.error_log, quiet ? 1 : 2);
    m.loop = uv_default_loop();
    int rv = serve(&m);
    uv_loop_close(m.loop);
    return rv;
}
