/* h2host.c — a single-threaded poll() HTTP/2 (h2c, prior knowledge) test
 * server on 127.0.0.1 that drives one sluice server session per connection. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "h2host.h"

#define MAX_CONNS 1024
#define STOP_GRACE_NS (4000 * H2H_NS_PER_MS) /* after SIGTERM, then close what is left */
#define POLL_MAX_MS 1000

typedef struct server {
    h2h_config cfg;
    int listen_fd;
    int sig_pipe[2];
    h2h_conn *conns[MAX_CONNS];
    size_t nconns;
    unsigned next_id;
    int stopping;
    uint64_t stop_by;
} server;

static volatile sig_atomic_t got_signal;
static int sig_write_fd = -1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Self-pipe: a signal between the check and poll() still wakes poll(). */
static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    got_signal = 1;
    if (write(sig_write_fd, "x", 1) < 0) { /* full pipe: already woken */ }
    errno = saved;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: h2host [-p PORT] [-v] [--auto-consume] [--max-concurrent N]\n"
            "              [--window N] [--conn-window N] [--max-header-list N]\n"
            "              [--max-frame N] [--sndbuf BYTES] [--settings-timeout MS]\n"
            "              [--goaway-timeout MS]\n"
            "  -p 0 (default) picks a free port; it is printed as 'listening on PORT'\n");
    exit(2);
}

static uint32_t arg_u32(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v > UINT32_MAX)
        usage();
    return (uint32_t)v;
}

static void parse_args(int argc, char **argv, h2h_config *cfg, uint16_t *port)
{
    sluice_session_options *o = &cfg->opt;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-v"))
            cfg->verbose = 1;
        else if (!strcmp(a, "--auto-consume"))
            o->auto_consume = 1;
        else if (!v)
            usage();
        else if (!strcmp(a, "-p"))
            *port = (uint16_t)(arg_u32(v) & 0xffff), i++;
        else if (!strcmp(a, "--max-concurrent"))
            o->max_concurrent_streams = arg_u32(v), i++;
        else if (!strcmp(a, "--window"))
            o->initial_window_size = arg_u32(v), i++;
        else if (!strcmp(a, "--conn-window"))
            o->connection_window = arg_u32(v), i++;
        else if (!strcmp(a, "--max-header-list"))
            o->max_header_list_size = arg_u32(v), i++;
        else if (!strcmp(a, "--max-frame"))
            o->max_frame_size = arg_u32(v), i++;
        else if (!strcmp(a, "--settings-timeout"))
            o->settings_timeout_ns = arg_u32(v) * H2H_NS_PER_MS, i++;
        else if (!strcmp(a, "--goaway-timeout"))
            o->goaway_timeout_ns = arg_u32(v) * H2H_NS_PER_MS, i++;
        else if (!strcmp(a, "--sndbuf"))
            cfg->sndbuf = (int)(arg_u32(v) & 0x7fffffff), i++;
        else
            usage();
    }
}

static int listen_on(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0 ||
        set_nonblock(fd) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("h2host: listen");
        close(fd);
        return -1;
    }
    printf("listening on %u\n", (unsigned)ntohs(sa.sin_port));
    fflush(stdout);
    return fd;
}

static void accept_all(server *sv, uint64_t now)
{
    for (;;) {
        int fd = accept(sv->listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                perror("h2host: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (sv->cfg.sndbuf) /* a small one lets tests fill the socket quickly */
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sv->cfg.sndbuf, sizeof(sv->cfg.sndbuf));
        h2h_conn *c = NULL;
        if (sv->nconns < MAX_CONNS && set_nonblock(fd) == 0)
            c = h2h_conn_new(fd, ++sv->next_id, &sv->cfg, now);
        if (!c) {
            close(fd);
            continue;
        }
        sv->conns[sv->nconns++] = c;
        if (h2h_conn_step(c, 0, now)) { /* our SETTINGS go out at once */
            h2h_conn_free(c);
            sv->nconns--;
        }
    }
}

static void begin_stop(server *sv, uint64_t now)
{
    sv->stopping = 1;
    sv->stop_by = now + STOP_GRACE_NS;
    close(sv->listen_fd);
    sv->listen_fd = -1;
    for (size_t i = 0; i < sv->nconns; i++)
        h2h_conn_shutdown(sv->conns[i], now);
}

/* Milliseconds until the earliest deadline, rounded up. */
static int poll_timeout(const server *sv, uint64_t now)
{
    uint64_t d = sv->stopping ? sv->stop_by : H2H_NEVER;
    for (size_t i = 0; i < sv->nconns; i++) {
        uint64_t t = h2h_conn_deadline(sv->conns[i]);
        if (t < d)
            d = t;
    }
    if (d <= now)
        return 0;
    uint64_t ms = (d - now + H2H_NS_PER_MS - 1) / H2H_NS_PER_MS;
    return ms > POLL_MAX_MS ? POLL_MAX_MS : (int)ms;
}

/* One round: wait, then let every connection act. The pollfd array has
 * the signal pipe, the listener, then the connections in order. */
static void run_once(server *sv, struct pollfd *pfd)
{
    size_t base = 2, n = sv->nconns;
    pfd[0] = (struct pollfd){sv->sig_pipe[0], POLLIN, 0};
    pfd[1] = (struct pollfd){sv->listen_fd, POLLIN, 0}; /* fd -1 is ignored */
    for (size_t i = 0; i < n; i++)
        pfd[base + i] = (struct pollfd){sv->conns[i]->fd, h2h_conn_events(sv->conns[i]), 0};
    int rv = poll(pfd, base + n, poll_timeout(sv, now_ns()));
    if (rv < 0 && errno != EINTR) {
        perror("h2host: poll");
        got_signal = 1;
    }
    uint64_t now = now_ns();
    if (pfd[0].revents & POLLIN) {
        char junk[64];
        while (read(sv->sig_pipe[0], junk, sizeof(junk)) > 0) {}
    }
    for (size_t i = n; i-- > 0;) { /* backwards: removal swaps in the last */
        h2h_conn *c = sv->conns[i];
        if (h2h_conn_step(c, rv > 0 ? pfd[base + i].revents : 0, now)) {
            h2h_conn_free(c);
            sv->conns[i] = sv->conns[--sv->nconns];
        }
    }
    if (sv->listen_fd >= 0 && rv > 0 && (pfd[1].revents & POLLIN))
        accept_all(sv, now);
}

static int setup(server *sv, int argc, char **argv)
{
    uint16_t port = 0;
    memset(sv, 0, sizeof(*sv));
    sluice_session_options_init(&sv->cfg.opt);
    parse_args(argc, argv, &sv->cfg, &port);
    h2h_handlers_init();
    if (pipe(sv->sig_pipe) < 0 || set_nonblock(sv->sig_pipe[0]) < 0 ||
        set_nonblock(sv->sig_pipe[1]) < 0) {
        perror("h2host: pipe");
        return -1;
    }
    sig_write_fd = sv->sig_pipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sv->listen_fd = listen_on(port);
    return sv->listen_fd < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    static server sv; /* large: keep it off the stack */
    static struct pollfd pfd[MAX_CONNS + 2];
    if (setup(&sv, argc, argv) < 0)
        return 1;
    for (;;) {
        uint64_t now = now_ns();
        if (got_signal && !sv.stopping)
            begin_stop(&sv, now);
        if (sv.stopping && (sv.nconns == 0 || now >= sv.stop_by))
            break;
        run_once(&sv, pfd);
    }
    if (sv.nconns)
        fprintf(stderr, "h2host: closing %zu connection(s) still open\n", sv.nconns);
    while (sv.nconns)
        h2h_conn_free(sv.conns[--sv.nconns]);
    close(sv.sig_pipe[0]);
    close(sv.sig_pipe[1]);
    return 0;
}
