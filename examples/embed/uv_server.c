/* uv_server.c — embedding libsluice-uv: sluice serves HTTP/2 and HTTP/1.1 in
 * this program's own libuv loop; /hello is answered here, the rest by the
 * routes of the configuration file. Usage: uv_server CONFIG.lua */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <sluice/uv.h>

static int handle(sluice_request *req, void *ud)
{
    (void)ud;
    if (strcmp(sluice_request_path(req), "/hello") != 0)
        return 1; /* not ours: the configured routes answer */
    size_t ualen = 0;
    const uint8_t *ua = sluice_request_header(req, "user-agent", &ualen);
    char body[256];
    int n = snprintf(body, sizeof(body), "hello from the embedder, %s %s (%.*s)\n",
                     sluice_request_method(req), sluice_request_path(req), (int)ualen,
                     ua ? (const char *)ua : "");
    static const sluice_nv hdrs[] = {
        {(const uint8_t *)"content-type", (const uint8_t *)"text/plain", 12, 10, 0}};
    return sluice_request_respond(req, 200, hdrs, 1, body, (size_t)n) == 0 ? 0 : 1;
}

static void stopped(sluice_server *srv, void *ud)
{
    uv_signal_t *sig = ud;
    sluice_server_free(srv);
    uv_close((uv_handle_t *)&sig[0], NULL);
    uv_close((uv_handle_t *)&sig[1], NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    sluice_server_stop(s->data, 1, stopped, s->loop->data);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CONFIG.lua\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    char err[512];
    sluice_server *srv;
    if (sluice_server_new(&srv, loop, argv[1], err, sizeof(err)) != 0) {
        fprintf(stderr, "uv_server: %s\n", err);
        return 1;
    }
    sluice_server_set_handler(srv, handle, NULL);
    if (sluice_server_start(srv) != 0) {
        fprintf(stderr, "uv_server: cannot start\n");
        return 1;
    }
    uv_signal_t sig[2];
    loop->data = sig;
    for (int i = 0; i < 2; i++) {
        uv_signal_init(loop, &sig[i]);
        sig[i].data = srv;
        uv_signal_start(&sig[i], on_signal, i ? SIGINT : SIGTERM);
    }
    printf("ready\n");
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
