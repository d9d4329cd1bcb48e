/* main.c — the `sluice` program: `sluice -c FILE` runs, `-t` checks the
 * configuration, `-s SIGNAL` signals the running one, `-v` prints the
 * version; signals (and policy file changes) stop, reload and reopen logs.
 * Workers (one loop per thread) do the serving. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
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

typedef struct sl_main sl_main;

/* policy { watch = true }: one watcher per policy file, on its directory,
 * so that an editor replacing the file (write a copy, rename it over)
 * keeps being seen. */
typedef struct sl_watch {
    uv_fs_event_t ev;
    sl_main *m;
    char *dir;
    char *name;              /* the file's name in dir */
} sl_watch;

struct sl_main {
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
    sl_watch **watches;      /* policy files watched */
    size_t nwatches;
    uv_timer_t debounce;     /* a burst of file events makes one reload */
    char changed[NAME_MAX + 1]; /* the file the last event named, for the log */
};

static void usage(void)
{
    fprintf(stderr, "usage: sluice [-t] [-q] -c config.lua\n"
                    "       sluice -s reload|stop|quit|reopen -c config.lua\n"
                    "       sluice -v\n"
                    "  -c FILE    run with this configuration\n"
                    "  -t         check the configuration (certificates, policies) and exit\n"
                    "  -q         log warnings and errors only\n"
                    "  -s SIGNAL  signal the sluice running with this configuration (found\n"
                    "             through its pid_file): reload (SIGHUP), stop (SIGTERM,\n"
                    "             graceful), quit (SIGQUIT, fast), reopen (SIGUSR1, logs)\n"
                    "  -v         print the version and exit\n");
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

static void watch_policies(sl_main *m);

/* SIGHUP and policy file changes: config and policies are loaded and
 * checked together (sl_gen_new compiles the policies); both switch, or
 * neither does and the running ones stay. */
static void reload(sl_main *m, const char *why)
{
    char err[1024];
    sl_gen *g = load(m->config_path, err, sizeof(err));
    if (!g) {
        sl_log(0, "reload failed (%s), keeping the running configuration: %s", why, err);
        return;
    }
    for (int i = 0; i < m->nworkers; i++) {
        size_t n = 0;
        sl_listen_plan *plan = plan_for(m, i, g->cfg, 0, &n, err, sizeof(err));
        sl_worker_reload(&m->workers[i], g, plan, n);
    }
    sl_gen_unref(m->gen);
    m->gen = g;
    sl_log(2, "reloaded %s (%s)", m->config_path, why);
    watch_policies(m); /* the new config may watch other files, or none */
}

static void watch_closed(uv_handle_t *h)
{
    sl_watch *w = h->data;
    free(w->dir);
    free(w->name);
    free(w);
}

static void unwatch(sl_main *m)
{
    for (size_t i = 0; i < m->nwatches; i++)
        uv_close((uv_handle_t *)&m->watches[i]->ev, watch_closed);
    free(m->watches);
    m->watches = NULL;
    m->nwatches = 0;
}

static void on_debounce(uv_timer_t *t)
{
    sl_main *m = t->data;
    char why[NAME_MAX + 32];
    snprintf(why, sizeof(why), "policy file %s changed", m->changed);
    reload(m, why);
}

/* Editors write a file in several steps (truncate and write, or write a
 * copy and rename it over): the reload waits until they are quiet for
 * 100 ms, so that it reads the finished file. */
static void on_policy_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    sl_watch *w = h->data;
    (void)events;
    if (status < 0) {
        sl_log(1, "watching %s/%s: %s", w->dir, w->name, uv_strerror(status));
        return;
    }
    if (filename && strcmp(filename, w->name) != 0)
        return; /* another file of the same directory; NULL: not known, so maybe ours */
    snprintf(w->m->changed, sizeof(w->m->changed), "%s", w->name);
    uv_timer_start(&w->m->debounce, on_debounce, 100, 0);
}

static int watch_one(sl_main *m, const char *path)
{
    const char *slash = strrchr(path, '/'); /* config.c made it absolute */
    sl_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return UV_ENOMEM;
    w->m = m;
    w->dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    w->name = strdup(slash + 1);
    uv_fs_event_init(m->loop, &w->ev);
    w->ev.data = w;
    m->watches[m->nwatches++] = w; /* closed by unwatch even if it did not start */
    if (!w->dir || !w->name)
        return UV_ENOMEM;
    return uv_fs_event_start(&w->ev, on_policy_event, w->dir, 0);
}

static void watch_policies(sl_main *m)
{
    const sl_cfg_policy *p = &m->gen->cfg->policy;
    unwatch(m);
    if (!p->watch || p->nfiles == 0)
        return;
    m->watches = calloc(p->nfiles, sizeof(*m->watches));
    for (size_t i = 0; i < p->nfiles; i++) {
        int rc = m->watches ? watch_one(m, p->files[i].path) : UV_ENOMEM;
        if (rc < 0)
            sl_log(0, "cannot watch policy file %s: %s", p->files[i].path, uv_strerror(rc));
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    sl_main *m = h->data;
    switch (signum) {
    case SIGHUP:
        reload(m, "SIGHUP");
        return;
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
        unwatch(m);
        uv_close((uv_handle_t *)&m->debounce, NULL);
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
    uv_timer_init(m->loop, &m->debounce);
    m->debounce.data = m;
    watch_policies(m);
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

/* The process to signal is found through the config's pid_file. */
static int signal_pid_file(const char *path, int sig)
{
    char buf[32];
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sluice: cannot read pid file %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end = buf;
    errno = 0;
    long pid = buf[0] >= '0' && buf[0] <= '9' ? strtol(buf, &end, 10) : 0;
    while (*end == '\n' || *end == '\r' || *end == ' ' || *end == '\t')
        end++;
    /* 0 or less would signal a process group; 1 is sluice itself as a
     * container's first process. */
    if (errno != 0 || *end || pid < 1 || pid > INT_MAX) {
        fprintf(stderr, "sluice: pid file %s: no process id in it\n", path);
        return 1;
    }
    if (kill((pid_t)pid, sig) != 0) {
        if (errno == ESRCH)
            fprintf(stderr, "sluice: pid file %s: process %ld is not running (stale pid "
                    "file?)\n", path, pid);
        else
            fprintf(stderr, "sluice: cannot signal process %ld (pid file %s): %s\n", pid,
                    path, strerror(errno));
        return 1;
    }
    return 0;
}

/* sluice -s NAME -c FILE. The config is loaded and checked but no
 * generation is built: the sender runs no policy and opens no socket. */
static int send_signal(const char *config, const char *name)
{
    static const struct {
        const char *name;
        int sig;
    } cmds[] = {{"reload", SIGHUP}, {"stop", SIGTERM}, {"quit", SIGQUIT}, {"reopen", SIGUSR1}};
    int sig = 0;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(name, cmds[i].name) == 0)
            sig = cmds[i].sig;
    if (!sig) {
        fprintf(stderr, "sluice: -s %s: unknown signal (reload, stop, quit or reopen)\n", name);
        return 2;
    }
    char err[1024];
    sl_config *cfg = NULL;
    if (sl_config_load(config, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 1;
    }
    int rv = 1;
    if (!cfg->pid_file)
        fprintf(stderr, "sluice: %s: no pid_file set\n", config);
    else
        rv = signal_pid_file(cfg->pid_file, sig);
    sl_config_free(cfg);
    return rv;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *send = NULL;
    int check = 0, quiet = 0, opt;
    while ((opt = getopt(argc, argv, "c:s:tqvh")) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 's': send = optarg; break;
        case 't': check = 1; break;
        case 'q': quiet = 1; break;
        case 'v': printf("sluice %s\n", sluice_version()); return 0;
        default: usage(); return opt == 'h' ? 0 : 2;
        }
    }
    if (!config || optind != argc || (send && check)) {
        usage();
        return 2;
    }
    if (send)
        return send_signal(config, send);
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
