/* admin.c — the metrics endpoint: Prometheus text on the admin address,
 * served from the main loop out of the workers' published counters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

typedef struct admin_client {
    uv_tcp_t tcp;
    sl_admin *ad;
    char req[1024];
    size_t len;
    uv_write_t wr;
    char *resp;
} admin_client;

static const char *const reason_names[] = {"peer", "idle", "timeout", "protocol", "tls",
                                           "shutdown", "io", "limit"};

static void client_closed(uv_handle_t *h)
{
    admin_client *a = h->data;
    free(a->resp);
    free(a);
}

static void written(uv_write_t *w, int status)
{
    (void)status;
    admin_client *a = w->data;
    uv_close((uv_handle_t *)&a->tcp, client_closed);
}

static size_t render(sl_admin *ad, char *out, size_t cap)
{
    sl_stats sum;
    memset(&sum, 0, sizeof(sum));
    for (int i = 0; i < ad->nworkers; i++) {
        sl_worker *w = &ad->workers[i];
        uv_mutex_lock(&w->lock);
        sl_stats s = w->snapshot;
        uv_mutex_unlock(&w->lock);
        sum.conns_open += s.conns_open;
        sum.conns_total += s.conns_total;
        sum.requests += s.requests;
        sum.bytes_in += s.bytes_in;
        sum.bytes_out += s.bytes_out;
        sum.streams_total += s.streams_total;
        for (int k = 0; k < 8; k++)
            sum.closes[k] += s.closes[k];
        for (int k = 0; k < 14; k++) {
            sum.stream_closes[k] += s.stream_closes[k];
            sum.goaways[k] += s.goaways[k];
        }
        sum.up_conns_open += s.up_conns_open;
        sum.up_conns_total += s.up_conns_total;
        sum.up_attempts += s.up_attempts;
        sum.up_retries += s.up_retries;
        sum.up_502 += s.up_502;
        sum.up_504 += s.up_504;
        for (int k = 0; k < 5; k++)
            sum.up_fails[k] += s.up_fails[k];
        sum.h2_pushes += s.h2_pushes;
        sum.rtt_n += s.rtt_n;
        sum.rtt_sum_ns += s.rtt_sum_ns;
        for (int k = 0; k < SL_RTT_BUCKETS; k++)
            sum.rtt_buckets[k] += s.rtt_buckets[k];
        sum.pol_calls += s.pol_calls;
        sum.pol_errors += s.pol_errors;
        sum.pol_budget += s.pol_budget;
        sum.pol_memory += s.pol_memory;
    }
    size_t n = (size_t)snprintf(out, cap,
        "# TYPE sluice_connections_open gauge\nsluice_connections_open %llu\n"
        "# TYPE sluice_connections_total counter\nsluice_connections_total %llu\n"
        "# TYPE sluice_requests_total counter\nsluice_requests_total %llu\n"
        "# TYPE sluice_bytes_received_total counter\nsluice_bytes_received_total %llu\n"
        "# TYPE sluice_bytes_sent_total counter\nsluice_bytes_sent_total %llu\n"
        "# TYPE sluice_connection_closes_total counter\n",
        (unsigned long long)sum.conns_open, (unsigned long long)sum.conns_total,
        (unsigned long long)sum.requests, (unsigned long long)sum.bytes_in,
        (unsigned long long)sum.bytes_out);
    for (int k = 0; k < 8 && n < cap; k++)
        n += (size_t)snprintf(out + n, cap - n,
                              "sluice_connection_closes_total{reason=\"%s\"} %llu\n",
                              reason_names[k], (unsigned long long)sum.closes[k]);
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n,
                              "# TYPE sluice_h2_streams_total counter\n"
                              "sluice_h2_streams_total %llu\n"
                              "# TYPE sluice_h2_stream_closes_total counter\n",
                              (unsigned long long)sum.streams_total);
    for (uint32_t k = 0; k < 14 && n < cap; k++)
        n += (size_t)snprintf(out + n, cap - n,
                              "sluice_h2_stream_closes_total{code=\"%s\"} %llu\n",
                              sluice_h2_error_name(k), (unsigned long long)sum.stream_closes[k]);
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n, "# TYPE sluice_h2_goaways_sent_total counter\n");
    for (uint32_t k = 0; k < 14 && n < cap; k++)
        n += (size_t)snprintf(out + n, cap - n,
                              "sluice_h2_goaways_sent_total{code=\"%s\"} %llu\n",
                              sluice_h2_error_name(k), (unsigned long long)sum.goaways[k]);
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n,
            "# TYPE sluice_upstream_connections_open gauge\nsluice_upstream_connections_open %llu\n"
            "# TYPE sluice_upstream_connections_total counter\nsluice_upstream_connections_total %llu\n"
            "# TYPE sluice_upstream_attempts_total counter\nsluice_upstream_attempts_total %llu\n"
            "# TYPE sluice_upstream_retries_total counter\nsluice_upstream_retries_total %llu\n"
            "# TYPE sluice_upstream_errors_total counter\n"
            "sluice_upstream_errors_total{status=\"502\"} %llu\n"
            "sluice_upstream_errors_total{status=\"504\"} %llu\n"
            "# TYPE sluice_upstream_failures_total counter\n",
            (unsigned long long)sum.up_conns_open, (unsigned long long)sum.up_conns_total,
            (unsigned long long)sum.up_attempts, (unsigned long long)sum.up_retries,
            (unsigned long long)sum.up_502, (unsigned long long)sum.up_504);
    static const char *const fail_names[5] = {"connect", "timeout", "reset", "protocol", "tls"};
    for (int k = 0; k < 5 && n < cap; k++)
        n += (size_t)snprintf(out + n, cap - n, "sluice_upstream_failures_total{kind=\"%s\"} %llu\n",
                              fail_names[k], (unsigned long long)sum.up_fails[k]);
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n,
                              "# TYPE sluice_h2_pushes_total counter\nsluice_h2_pushes_total %llu\n"
                              "# TYPE sluice_h2_connection_rtt_seconds histogram\n",
                              (unsigned long long)sum.h2_pushes);
    static const unsigned bounds[] = SL_RTT_BOUNDS_MS;
    uint64_t below = 0;
    for (int k = 0; k < SL_RTT_BUCKETS - 1 && n < cap; k++) {
        below += sum.rtt_buckets[k];
        n += (size_t)snprintf(out + n, cap - n,
                              "sluice_h2_connection_rtt_seconds_bucket{le=\"%g\"} %llu\n",
                              bounds[k] / 1000.0, (unsigned long long)below);
    }
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n,
                              "sluice_h2_connection_rtt_seconds_bucket{le=\"+Inf\"} %llu\n"
                              "sluice_h2_connection_rtt_seconds_sum %.9f\n"
                              "sluice_h2_connection_rtt_seconds_count %llu\n",
                              (unsigned long long)sum.rtt_n, (double)sum.rtt_sum_ns / 1e9,
                              (unsigned long long)sum.rtt_n);
    if (n < cap)
        n += (size_t)snprintf(
            out + n, cap - n,
            "# TYPE sluice_policy_calls_total counter\nsluice_policy_calls_total %llu\n"
            "# TYPE sluice_policy_errors_total counter\nsluice_policy_errors_total %llu\n"
            "# TYPE sluice_policy_budget_exceeded_total counter\n"
            "sluice_policy_budget_exceeded_total %llu\n"
            "# TYPE sluice_policy_memory_bytes gauge\nsluice_policy_memory_bytes %llu\n",
            (unsigned long long)sum.pol_calls, (unsigned long long)sum.pol_errors,
            (unsigned long long)sum.pol_budget, (unsigned long long)sum.pol_memory);
    return n < cap ? n : cap;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    admin_client *a = s->data;
    if (nread < 0) {
        uv_close((uv_handle_t *)&a->tcp, client_closed);
        return;
    }
    a->len += (size_t)nread;
    if (!memmem(a->req, a->len, "\r\n\r\n", 4) && a->len < sizeof(a->req))
        return;
    uv_read_stop(s);
    char body[16384];
    int ok = strncmp(a->req, "GET /metrics ", 13) == 0;
    size_t blen = ok ? render(a->ad, body, sizeof(body)) : 10;
    if (!ok)
        memcpy(body, "not found\n", 10);
    a->resp = malloc(blen + 256);
    if (!a->resp) {
        uv_close((uv_handle_t *)&a->tcp, client_closed);
        return;
    }
    int hl = snprintf(a->resp, 256,
                      "HTTP/1.1 %s\r\ncontent-type: text/plain; version=0.0.4\r\n"
                      "content-length: %zu\r\nconnection: close\r\n\r\n",
                      ok ? "200 OK" : "404 Not Found", blen);
    memcpy(a->resp + hl, body, blen);
    uv_buf_t out = uv_buf_init(a->resp, (unsigned)(hl + (int)blen));
    a->wr.data = a;
    uv_write(&a->wr, s, &out, 1, written);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    admin_client *a = h->data;
    *buf = uv_buf_init(a->req + a->len, (unsigned)(sizeof(a->req) - a->len));
}

static void on_connection(uv_stream_t *server, int status)
{
    sl_admin *ad = server->data;
    if (status < 0)
        return;
    admin_client *a = calloc(1, sizeof(*a));
    if (!a)
        return;
    a->ad = ad;
    uv_tcp_init(server->loop, &a->tcp);
    a->tcp.data = a;
    if (uv_accept(server, (uv_stream_t *)&a->tcp) != 0) {
        uv_close((uv_handle_t *)&a->tcp, client_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
}

int sl_admin_start(sl_admin *ad, uv_loop_t *loop, const sl_config *cfg, char *err,
                   size_t errlen)
{
    if (!cfg->admin_host)
        return 0;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(cfg->admin_host, cfg->admin_port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(cfg->admin_host, cfg->admin_port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "admin: bad address %s", cfg->admin_host);
        return -1;
    }
    uv_tcp_init(loop, &ad->tcp);
    ad->tcp.data = ad;
    int rv = uv_tcp_bind(&ad->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&ad->tcp, 64, on_connection);
    if (rv != 0) {
        snprintf(err, errlen, "admin %s:%u: %s", cfg->admin_host, cfg->admin_port,
                 uv_strerror(rv));
        uv_close((uv_handle_t *)&ad->tcp, NULL);
        return -1;
    }
    ad->started = 1;
    return 0;
}

void sl_admin_stop(sl_admin *ad)
{
    if (ad->started)
        uv_close((uv_handle_t *)&ad->tcp, NULL);
    ad->started = 0;
}
