/* test_uv_tls.c — plugin/uv/tls.c: handshakes between a client and a server
 * connection in memory, ALPN, SNI, verification, client certificates,
 * versions, resumption, errors, memory. */
#include <malloc.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "t.h"
#include "tls.h"
#include "tls_fixtures.h"

/* ---- a counting allocator for OpenSSL (and so for tls.c) ---------------- */

static long long live_bytes;

static void *count_malloc(size_t n, const char *file, int line)
{
    void *p = malloc(n);
    (void)file, (void)line;
    if (p)
        live_bytes += (long long)malloc_usable_size(p);
    return p;
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    (void)file, (void)line;
    if (q || n == 0)
        live_bytes -= (long long)old;
    if (q)
        live_bytes += (long long)malloc_usable_size(q);
    return q;
}

static void count_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    if (p)
        live_bytes -= (long long)malloc_usable_size(p);
    free(p);
}

static int counting;

/* Must run before OpenSSL allocates anything, or OpenSSL refuses it. */
__attribute__((constructor)) static void count_install(void)
{
    counting = CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free);
}

/* ---- environment: a CA, two certificates, a config ----------------------- */

#define H2_H11 "\x02h2\x08http/1.1"

typedef struct env {
    tfx fx;
    tfx other; /* a second CA, made only by the tests that need it */
    char a_crt[256], a_key[256], b_crt[256], b_key[256], x_crt[256], x_key[256];
    char *a_names[1];
    sl_cfg_cert certs[2], xcert;
    sl_config cfg;
    char err[512];
    sl_tls_ctx *sctx, *cctx;
    sl_tls_conn *s, *c;
} env;

/* Certificate a: SAN a.test and alt.test, configured to serve only a.test.
 * Certificate b: names from its SAN, *.b.test and 127.0.0.1. */
static int env_init(env *e)
{
    memset(e, 0, sizeof *e);
    if (tfx_init(&e->fx) != 0 ||
        tfx_leaf(&e->fx, "a", "a.test", "DNS:a.test,DNS:alt.test", e->a_crt, e->a_key,
                 sizeof e->a_crt) != 0 ||
        tfx_leaf(&e->fx, "b", "b", "DNS:*.b.test,IP:127.0.0.1", e->b_crt, e->b_key,
                 sizeof e->b_crt) != 0)
        return -1;
    e->a_names[0] = "a.test";
    e->certs[0] = (sl_cfg_cert){{"site.lua", 7}, e->a_crt, e->a_key, e->a_names, 1};
    e->certs[1] = (sl_cfg_cert){{"site.lua", 12}, e->b_crt, e->b_key, NULL, 0};
    e->cfg.certs = e->certs;
    e->cfg.ncerts = 2;
    e->cfg.file = "site.lua";
    return 0;
}

static void env_conns_free(env *e)
{
    sl_tls_conn_free(e->s);
    sl_tls_conn_free(e->c);
    e->s = e->c = NULL;
}

static void env_done(env *e)
{
    env_conns_free(e);
    sl_tls_ctx_free(e->sctx);
    sl_tls_ctx_free(e->cctx);
    tfx_done(&e->fx);
    tfx_done(&e->other);
}

/* Runs a case's body between env_init and env_done, so a failed CHECK
 * (which returns) still frees everything and removes the certificates. */
static void with_env(void (*body)(env *))
{
    env e;
    if (env_init(&e) != 0)
        T_FAIL("cannot make test certificates");
    else
        body(&e);
    env_done(&e);
}

static int server_ctx(env *e)
{
    return sl_tls_ctx_new_server(&e->sctx, &e->cfg, e->err, sizeof e->err);
}

static int client_ctx_opts(env *e, const sl_tls_client_opts *o)
{
    sl_tls_ctx_free(e->cctx);
    e->cctx = NULL;
    return sl_tls_ctx_new_client(&e->cctx, o, e->err, sizeof e->err);
}

/* verify: check the server's chain against the test CA and the name. */
static int client_ctx(env *e, int verify, const char *alpn, size_t alpn_len)
{
    sl_tls_client_opts o = {verify ? e->fx.ca_file : NULL, verify, NULL, NULL,
                            (const uint8_t *)alpn, alpn_len};
    return client_ctx_opts(e, &o);
}

static int conns(env *e, const char *sni)
{
    env_conns_free(e);
    if (sl_tls_conn_new(&e->s, e->sctx, NULL) != 0)
        return -1;
    return sl_tls_conn_new(&e->c, e->cctx, sni);
}

/* Moves all pending ciphertext from one side to the other: bytes moved,
 * or the receiver's error. */
static long pump(sl_tls_conn *from, sl_tls_conn *to)
{
    const uint8_t *p;
    size_t n;
    long moved = 0;
    while ((n = sl_tls_pending(from, &p)) > 0) {
        int rc = sl_tls_feed(to, p, n);
        sl_tls_sent(from, n);
        if (rc < 0)
            return rc;
        moved += (long)n;
    }
    return moved;
}

/* Reads and drops plaintext, which also makes OpenSSL take post-handshake
 * messages (TLS 1.3 session tickets). */
static long drain(sl_tls_conn *c)
{
    uint8_t buf[4096];
    long n, total = 0;
    int eof;
    while ((n = sl_tls_read(c, buf, sizeof buf, &eof)) > 0)
        total += n;
    return n < 0 ? n : total;
}

static int handshake(env *e)
{
    int rc = sl_tls_feed(e->c, NULL, 0);
    for (int i = 0; rc == 0 && i < 10; i++) {
        long a = pump(e->c, e->s), b = a < 0 ? 0 : pump(e->s, e->c);
        if (a < 0 || b < 0)
            return (int)(a < 0 ? a : b);
        if (a == 0 && b == 0)
            break;
    }
    if (rc == 0 && (drain(e->c) < 0 || drain(e->s) < 0))
        rc = SLUICE_ERR_PROTOCOL;
    if (rc == 0 && !(sl_tls_handshake_done(e->c) && sl_tls_handshake_done(e->s)))
        rc = SLUICE_ERR_STATE;
    return rc;
}

/* Server and client contexts, one connection, handshake done. */
static int setup(env *e, int verify, const char *alpn, size_t alpn_len, const char *sni)
{
    if (server_ctx(e) != 0 || client_ctx(e, verify, alpn, alpn_len) != 0 || conns(e, sni) != 0)
        return -1;
    return handshake(e);
}

/* Sends len bytes from one side to the other, written in wpiece pieces,
 * ciphertext carried in cpiece pieces, read in rpiece pieces into got
 * (len + 1 bytes, so that an extra byte shows). Bytes received, or < 0. */
static long transfer(sl_tls_conn *from, sl_tls_conn *to, const uint8_t *data, size_t len,
                     size_t wpiece, size_t cpiece, size_t rpiece, uint8_t *got)
{
    size_t w = 0, r = 0;
    for (;;) {
        const uint8_t *p;
        size_t n, k = len - w < wpiece ? len - w : wpiece;
        if (k && sl_tls_write(from, data + w, k) != (long)k)
            return -1;
        w += k;
        if (sl_tls_pending(from, &p) == 0 && k == 0)
            return (long)r; /* all written, all carried */
        while ((n = sl_tls_pending(from, &p)) > 0) {
            long m = 0;
            int eof;
            n = n < cpiece ? n : cpiece;
            if (sl_tls_feed(to, p, n) != 0)
                return -2;
            sl_tls_sent(from, n);
            while (r <= len) {
                size_t cap = len + 1 - r < rpiece ? len + 1 - r : rpiece;
                if ((m = sl_tls_read(to, got + r, cap, &eof)) <= 0)
                    break;
                r += (size_t)m;
            }
            if (m < 0 || r > len)
                return -3;
        }
    }
}

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *b = malloc(len + 1);
    for (size_t i = 0; b && i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (uint8_t)(seed >> 16);
    }
    return b;
}

static int peer_is(sl_tls_conn *c, const char *host)
{
    X509 *peer = SSL_get0_peer_certificate(sl_tls_ssl(c));
    return peer && X509_check_host(peer, host, 0, 0, NULL) == 1;
}

static int max_tls12(env *e)
{
    return SSL_set_max_proto_version(sl_tls_ssl(e->c), TLS1_2_VERSION) == 1 ? 0 : -1;
}

#define COVERS(c, host) sl_tls_cert_covers((c), (host), strlen(host))

/* ---- handshake and data ------------------------------------------------- */

static void handshake_and_data_both_ways(env *e)
{
    static const uint8_t hello[] = "GET / over TLS", world[] = "200 OK";
    uint8_t got[64];
    int eof = -1;
    CHECK_INT(setup(e, 1, H2_H11, sizeof H2_H11 - 1, "a.test"), 0);
    CHECK_STR(sl_tls_version(e->s), "TLSv1.3");
    CHECK_STR(sl_tls_version(e->c), "TLSv1.3");
    CHECK_STR(sl_tls_sni(e->s), "a.test");
    CHECK(sl_tls_error(e->s) == NULL && sl_tls_error(e->c) == NULL);
    CHECK_INT(sl_tls_resumed(e->s), 0);
    CHECK_INT(sl_tls_write(e->c, hello, sizeof hello), sizeof hello);
    CHECK_INT(sl_tls_unsent(e->c) > sizeof hello, 1);
    CHECK(pump(e->c, e->s) > 0);
    CHECK_INT(sl_tls_unsent(e->c), 0);
    CHECK_INT(sl_tls_read(e->s, got, sizeof got, &eof), sizeof hello);
    CHECK_MEM(got, sizeof hello, hello, sizeof hello);
    CHECK_INT(eof, 0);
    CHECK_INT(sl_tls_read(e->s, got, sizeof got, &eof), 0);
    CHECK_INT(sl_tls_write(e->s, world, sizeof world), sizeof world);
    CHECK(pump(e->s, e->c) > 0);
    CHECK_INT(sl_tls_read(e->c, got, sizeof got, &eof), sizeof world);
    CHECK_MEM(got, sizeof world, world, sizeof world);
}
TEST(handshake_and_data_both_ways) { with_env(handshake_and_data_both_ways); }

static void one_mebibyte_in_pieces_both_ways(env *e)
{
    size_t len = 1 << 20;
    uint8_t *up = pattern(len, 1), *down = pattern(len, 2), *got = malloc(len + 1);
    long r1 = -9, r2 = -9;
    int same1 = 0, same2 = 0;
    if (up && down && got && setup(e, 0, NULL, 0, "a.test") == 0) {
        r1 = transfer(e->c, e->s, up, len, 10000, 1000, 7000, got);
        same1 = r1 == (long)len && memcmp(got, up, len) == 0;
        r2 = transfer(e->s, e->c, down, len, 65536, 17000, 3333, got);
        same2 = r2 == (long)len && memcmp(got, down, len) == 0;
    }
    free(up);
    free(down);
    free(got);
    CHECK_INT(r1, len);
    CHECK(same1);
    CHECK_INT(r2, len);
    CHECK(same2);
}
TEST(one_mebibyte_in_pieces_both_ways) { with_env(one_mebibyte_in_pieces_both_ways); }

static void write_before_handshake_takes_nothing(env *e)
{
    static const uint8_t x[] = "early";
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 0, NULL, 0), 0);
    CHECK_INT(conns(e, "a.test"), 0);
    CHECK_INT(sl_tls_write(e->c, x, sizeof x), 0);
    CHECK_INT(sl_tls_shutdown(e->c), SLUICE_ERR_STATE);
    CHECK_INT(sl_tls_handshake_done(e->c), 0);
    CHECK_INT(handshake(e), 0);
    CHECK_INT(sl_tls_write(e->c, x, sizeof x), sizeof x);
}
TEST(write_before_handshake_takes_nothing) { with_env(write_before_handshake_takes_nothing); }

/* Pointers from sl_tls_pending stay valid while more is encrypted. */
static void pending_bytes_stay_in_place(env *e)
{
    uint8_t *big = pattern(100000, 3), copy[256];
    const uint8_t *p, *q;
    size_t n;
    int ok = 0;
    if (big && setup(e, 0, NULL, 0, "a.test") == 0 && sl_tls_write(e->c, big, 100) == 100) {
        n = sl_tls_pending(e->c, &p);
        memcpy(copy, p, n < sizeof copy ? n : sizeof copy);
        ok = sl_tls_write(e->c, big, 100000) == 100000 && sl_tls_pending(e->c, &q) >= n &&
             q == p && memcmp(p, copy, n < sizeof copy ? n : sizeof copy) == 0;
    }
    free(big);
    CHECK(ok);
}
TEST(pending_bytes_stay_in_place) { with_env(pending_bytes_stay_in_place); }

/* ---- ALPN --------------------------------------------------------------- */

static int alpn_case(env *e, const char *offer, size_t len)
{
    int s, c;
    if (setup(e, 0, offer, len, "a.test") != 0)
        return -1;
    s = sl_tls_alpn(e->s);
    c = sl_tls_alpn(e->c);
    sl_tls_ctx_free(e->sctx);
    sl_tls_ctx_free(e->cctx);
    e->sctx = e->cctx = NULL;
    return s == c ? s : -2;
}

static void alpn_prefers_h2(env *e)
{
    CHECK_INT(alpn_case(e, H2_H11, sizeof H2_H11 - 1), SL_ALPN_H2);
    CHECK_INT(alpn_case(e, "\x08http/1.1\x02h2", 12), SL_ALPN_H2);
}
TEST(alpn_prefers_h2) { with_env(alpn_prefers_h2); }

static void alpn_http11_only(env *e)
{
    CHECK_INT(alpn_case(e, "\x08http/1.1", 9), SL_ALPN_HTTP11);
}
TEST(alpn_http11_only) { with_env(alpn_http11_only); }

static void alpn_none_offered_or_no_overlap(env *e)
{
    CHECK_INT(alpn_case(e, NULL, 0), SL_ALPN_NONE);
    CHECK_INT(alpn_case(e, "\x06spdy/3", 7), SL_ALPN_NONE);
}
TEST(alpn_none_offered_or_no_overlap) { with_env(alpn_none_offered_or_no_overlap); }

/* ---- SNI and the 421 check ---------------------------------------------- */

static void sni_exact_name(env *e)
{
    CHECK_INT(setup(e, 1, NULL, 0, "a.test"), 0);
    CHECK(peer_is(e->c, "a.test"));
    CHECK(COVERS(e->s, "a.test"));
    CHECK(COVERS(e->s, "A.Test"));
    CHECK(!COVERS(e->s, "x.b.test"));
    /* In a's SAN, but its configured names are what it serves. */
    CHECK(!COVERS(e->s, "alt.test"));
    CHECK(!COVERS(e->s, "a.test.evil"));
    CHECK(COVERS(e->c, "a.test")); /* a client checks its peer's certificate */
}
TEST(sni_exact_name) { with_env(sni_exact_name); }

static void sni_wildcard_name(env *e)
{
    CHECK_INT(setup(e, 1, NULL, 0, "x.b.test"), 0);
    CHECK_STR(sl_tls_sni(e->s), "x.b.test");
    CHECK(peer_is(e->c, "x.b.test"));
    CHECK(!peer_is(e->c, "a.test"));
    CHECK(COVERS(e->c, "127.0.0.1"));
    CHECK(!COVERS(e->c, "127.0.0.2"));
    CHECK(COVERS(e->s, "x.b.test"));
    CHECK(COVERS(e->s, "other.b.test"));
    CHECK(COVERS(e->s, "127.0.0.1"));
    CHECK(!COVERS(e->s, "a.test"));
    CHECK(!COVERS(e->s, "b.test"));
    CHECK(!COVERS(e->s, "y.x.b.test"));
    CHECK(!COVERS(e->s, ".b.test"));
}
TEST(sni_wildcard_name) { with_env(sni_wildcard_name); }

static void sni_unknown_gets_default(env *e)
{
    CHECK_INT(setup(e, 0, NULL, 0, "unknown.test"), 0);
    CHECK_STR(sl_tls_sni(e->s), "unknown.test");
    CHECK(peer_is(e->c, "a.test"));
    CHECK(!COVERS(e->s, "unknown.test"));
    CHECK(COVERS(e->s, "a.test"));
}
TEST(sni_unknown_gets_default) { with_env(sni_unknown_gets_default); }

static void no_sni_gets_default(env *e)
{
    CHECK_INT(setup(e, 0, NULL, 0, NULL), 0);
    CHECK(sl_tls_sni(e->s) == NULL);
    CHECK(peer_is(e->c, "a.test"));
}
TEST(no_sni_gets_default) { with_env(no_sni_gets_default); }

static void exact_name_beats_earlier_wildcard(env *e)
{
    char c_crt[256], c_key[256];
    sl_cfg_cert certs[2];
    CHECK_INT(tfx_leaf(&e->fx, "c", "c", "DNS:x.b.test", c_crt, c_key, sizeof c_crt), 0);
    certs[0] = e->certs[1]; /* *.b.test first */
    certs[1] = (sl_cfg_cert){{"site.lua", 20}, c_crt, c_key, NULL, 0};
    e->cfg.certs = certs;
    CHECK_INT(setup(e, 0, NULL, 0, "x.b.test"), 0);
    CHECK(!COVERS(e->s, "y.b.test"));
    CHECK(COVERS(e->s, "x.b.test"));
}
TEST(exact_name_beats_earlier_wildcard) { with_env(exact_name_beats_earlier_wildcard); }

static void client_verifies_name(env *e)
{
    char *msg;
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    CHECK_INT(conns(e, "wrong.test"), 0);
    CHECK_INT(handshake(e), SLUICE_ERR_PROTOCOL);
    msg = (char *)sl_tls_error(e->c);
    CHECK(msg != NULL);
    CHECK_STR(msg, "certificate verify failed: hostname mismatch");
}
TEST(client_verifies_name) { with_env(client_verifies_name); }

/* ---- client: verification and certificates ----------------------------- */

/* The server serves one fresh certificate (SAN san), whatever the SNI. */
static int serve_leaf(env *e, const char *san)
{
    if (tfx_leaf(&e->fx, "x", "x", san, e->x_crt, e->x_key, sizeof e->x_crt) != 0)
        return -1;
    e->xcert = (sl_cfg_cert){{"site.lua", 40}, e->x_crt, e->x_key, NULL, 0};
    e->cfg.certs = &e->xcert;
    e->cfg.ncerts = 1;
    return server_ctx(e);
}

/* A client connection to name with the current contexts; the handshake's
 * result, or -100 if the connections cannot be made. */
static int connect_to(env *e, const char *name)
{
    return conns(e, name) != 0 ? -100 : handshake(e);
}

static const char *client_error(env *e)
{
    const char *msg = sl_tls_error(e->c);
    return msg ? msg : "(none)";
}

static void verify_accepts_chain_from_ca(env *e)
{
    CHECK_INT(setup(e, 1, NULL, 0, "a.test"), 0);
    CHECK_INT(SSL_get_verify_mode(sl_tls_ssl(e->c)), SSL_VERIFY_PEER);
    CHECK_INT(SSL_get_verify_result(sl_tls_ssl(e->c)), X509_V_OK);
    CHECK(sl_tls_error(e->c) == NULL);
}
TEST(verify_accepts_chain_from_ca) { with_env(verify_accepts_chain_from_ca); }

static void verify_refuses_other_ca(env *e)
{
    sl_tls_client_opts o = {e->other.ca_file, 1, NULL, NULL, NULL, 0};
    const char *msg;
    CHECK_INT(tfx_init(&e->other), 0);
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx_opts(e, &o), 0);
    CHECK_INT(connect_to(e, "a.test"), SLUICE_ERR_PROTOCOL);
    CHECK_STR(client_error(e), "certificate verify failed: unable to get local issuer certificate");
    CHECK_INT(sl_tls_handshake_done(e->c), 0);
    /* The client's alert tells the server why. */
    CHECK_INT(pump(e->c, e->s), SLUICE_ERR_PROTOCOL);
    msg = sl_tls_error(e->s);
    CHECK(msg && strstr(msg, "unknown ca"));
}
TEST(verify_refuses_other_ca) { with_env(verify_refuses_other_ca); }

/* verify without ca_file: the system's store, which never has the test CA. */
static void verify_without_ca_uses_system_store(env *e)
{
    sl_tls_client_opts o = {NULL, 1, NULL, NULL, NULL, 0};
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx_opts(e, &o), 0);
    CHECK_INT(connect_to(e, "a.test"), SLUICE_ERR_PROTOCOL);
    CHECK_STR(client_error(e), "certificate verify failed: unable to get local issuer certificate");
}
TEST(verify_without_ca_uses_system_store) { with_env(verify_without_ca_uses_system_store); }

/* RFC 6125 §6.4.3: "f*" is not a wildcard the client accepts. */
static void verify_refuses_partial_wildcard(env *e)
{
    CHECK_INT(serve_leaf(e, "DNS:f*.p.test"), 0);
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    CHECK_INT(connect_to(e, "foo.p.test"), SLUICE_ERR_PROTOCOL);
    CHECK_STR(client_error(e), "certificate verify failed: hostname mismatch");
}
TEST(verify_refuses_partial_wildcard) { with_env(verify_refuses_partial_wildcard); }

static void ip_name_checks_ip_san_and_sends_no_sni(env *e)
{
    CHECK_INT(serve_leaf(e, "DNS:ip.test,IP:127.0.0.1,IP:::1"), 0);
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    CHECK_INT(conns(e, "127.0.0.1"), 0);
    CHECK(SSL_get_servername(sl_tls_ssl(e->c), TLSEXT_NAMETYPE_host_name) == NULL);
    CHECK_INT(handshake(e), 0);
    CHECK(sl_tls_sni(e->s) == NULL);
    CHECK_INT(connect_to(e, "::1"), 0);
    CHECK(sl_tls_sni(e->s) == NULL);
    CHECK_INT(connect_to(e, "ip.test"), 0); /* a name is still sent */
    CHECK_STR(sl_tls_sni(e->s), "ip.test");
    CHECK_INT(connect_to(e, "127.0.0.2"), SLUICE_ERR_PROTOCOL);
    CHECK_STR(client_error(e), "certificate verify failed: IP address mismatch");
    CHECK_INT(connect_to(e, "::2"), SLUICE_ERR_PROTOCOL);
    CHECK_STR(client_error(e), "certificate verify failed: IP address mismatch");
}
TEST(ip_name_checks_ip_san_and_sends_no_sni) { with_env(ip_name_checks_ip_san_and_sends_no_sni); }

/* An address is compared with IP SANs only, never with DNS names that
 * happen to spell it. */
static void ip_name_not_matched_by_dns_san(env *e)
{
    CHECK_INT(serve_leaf(e, "DNS:127.0.0.1"), 0);
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    CHECK_INT(connect_to(e, "127.0.0.1"), SLUICE_ERR_PROTOCOL);
    CHECK_STR(client_error(e), "certificate verify failed: IP address mismatch");
}
TEST(ip_name_not_matched_by_dns_san) { with_env(ip_name_not_matched_by_dns_san); }

static void verify_off_accepts_anything(env *e)
{
    sl_tls_client_opts o = {e->other.ca_file, 0, NULL, NULL, NULL, 0};
    CHECK_INT(tfx_init(&e->other), 0);
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx_opts(e, &o), 0);
    CHECK_INT(connect_to(e, "wrong.test"), 0);
    CHECK(sl_tls_error(e->c) == NULL);
    /* The chain was bad, and taken anyway. */
    CHECK(SSL_get_verify_result(sl_tls_ssl(e->c)) != X509_V_OK);
    CHECK_INT(connect_to(e, "127.0.0.2"), 0);
    CHECK_INT(connect_to(e, NULL), 0);
}
TEST(verify_off_accepts_anything) { with_env(verify_off_accepts_anything); }

static void verifying_client_needs_a_name(env *e)
{
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    CHECK_INT(sl_tls_conn_new(&e->c, e->cctx, NULL), SLUICE_ERR_INVAL);
    CHECK(e->c == NULL);
    CHECK_INT(sl_tls_conn_new(&e->c, e->cctx, ""), SLUICE_ERR_INVAL);
    CHECK(e->c == NULL);
}
TEST(verifying_client_needs_a_name) { with_env(verifying_client_needs_a_name); }

static int accept_any(int ok, X509_STORE_CTX *store)
{
    (void)ok, (void)store;
    return 1;
}

/* The server asks for a client certificate (and takes any): the subject
 * of what it got, "" for none, NULL if the handshake failed. */
static const char *client_cert_seen(env *e, int tls12)
{
    static char cn[64];
    X509 *peer;
    if (conns(e, "a.test") != 0 || (tls12 && max_tls12(e) != 0))
        return NULL;
    SSL_set_verify(sl_tls_ssl(e->s), SSL_VERIFY_PEER, accept_any);
    if (handshake(e) != 0)
        return NULL;
    peer = SSL_get0_peer_certificate(sl_tls_ssl(e->s));
    cn[0] = '\0';
    if (peer && X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
                                          sizeof cn) < 0)
        return NULL;
    return cn;
}

static void client_certificate_presented(env *e)
{
    char c_crt[256], c_key[256];
    sl_tls_client_opts o = {e->fx.ca_file, 1, c_crt, c_key, NULL, 0};
    const char *seen;
    CHECK_INT(tfx_leaf(&e->fx, "client", "client.test", "DNS:client.test", c_crt, c_key,
                       sizeof c_crt), 0);
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    seen = client_cert_seen(e, 0);
    CHECK(seen != NULL);
    CHECK_STR(seen, ""); /* none configured, none sent */
    CHECK_INT(client_ctx_opts(e, &o), 0);
    for (int tls12 = 0; tls12 <= 1; tls12++) {
        seen = client_cert_seen(e, tls12);
        CHECK(seen != NULL);
        CHECK_STR(seen, "client.test");
        CHECK_STR(sl_tls_version(e->s), tls12 ? "TLSv1.2" : "TLSv1.3");
    }
}
TEST(client_certificate_presented) { with_env(client_certificate_presented); }

static void client_certificate_and_key_go_together(env *e)
{
    sl_tls_client_opts o = {NULL, 0, e->a_crt, NULL, NULL, 0};
    char want[700];
    CHECK_INT(client_ctx_opts(e, &o), SLUICE_ERR_INVAL);
    CHECK(e->cctx == NULL);
    snprintf(want, sizeof want, "client certificate %s: no key file given", e->a_crt);
    CHECK_STR(e->err, want);
    o.cert_file = NULL;
    o.key_file = e->a_key;
    CHECK_INT(client_ctx_opts(e, &o), SLUICE_ERR_INVAL);
    snprintf(want, sizeof want, "client key %s: no certificate file given", e->a_key);
    CHECK_STR(e->err, want);
    o.cert_file = e->a_crt;
    o.key_file = e->b_key;
    CHECK_INT(client_ctx_opts(e, &o), SLUICE_ERR_INVAL);
    snprintf(want, sizeof want, "client key %s (for certificate %s): key values mismatch",
             e->b_key, e->a_crt);
    CHECK_STR(e->err, want);
    o.key_file = e->a_key;
    CHECK_INT(client_ctx_opts(e, &o), 0);
}
TEST(client_certificate_and_key_go_together)
{
    with_env(client_certificate_and_key_go_together);
}

static void client_missing_files_named(env *e)
{
    sl_tls_client_opts o = {"/nonexistent/ca.pem", 0, NULL, NULL, NULL, 0};
    char want[700];
    CHECK_INT(client_ctx_opts(e, &o), SLUICE_ERR_INVAL);
    CHECK(e->cctx == NULL);
    CHECK_STR(e->err, "CA file /nonexistent/ca.pem: No such file or directory");
    o.ca_file = e->a_key; /* a file without a certificate */
    CHECK_INT(client_ctx_opts(e, &o), SLUICE_ERR_INVAL);
    snprintf(want, sizeof want, "CA file %s: no certificate or crl found", e->a_key);
    CHECK_STR(e->err, want);
    o.ca_file = e->fx.ca_file;
    o.cert_file = "/nonexistent/c.pem";
    o.key_file = e->a_key;
    CHECK_INT(client_ctx_opts(e, &o), SLUICE_ERR_INVAL);
    CHECK_STR(e->err, "client certificate /nonexistent/c.pem: No such file or directory");
    o.cert_file = e->a_crt;
    o.key_file = "/nonexistent/c.key";
    CHECK_INT(client_ctx_opts(e, &o), SLUICE_ERR_INVAL);
    snprintf(want, sizeof want, "client key /nonexistent/c.key (for certificate %s): "
             "No such file or directory", e->a_crt);
    CHECK_STR(e->err, want);
}
TEST(client_missing_files_named) { with_env(client_missing_files_named); }

/* ---- versions and suites ------------------------------------------------ */

static void tls12_client_gets_ecdhe_aead(env *e)
{
    const char *suite;
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 1, H2_H11, sizeof H2_H11 - 1), 0);
    CHECK_INT(conns(e, "x.b.test"), 0);
    CHECK_INT(max_tls12(e), 0);
    CHECK_INT(handshake(e), 0);
    CHECK_STR(sl_tls_version(e->s), "TLSv1.2");
    CHECK_INT(sl_tls_alpn(e->s), SL_ALPN_H2);
    CHECK(peer_is(e->c, "x.b.test"));
    suite = SSL_CIPHER_get_name(SSL_get_current_cipher(sl_tls_ssl(e->s)));
    CHECK(strncmp(suite, "ECDHE-", 6) == 0);
    CHECK(strstr(suite, "GCM") || strstr(suite, "CHACHA20"));
}
TEST(tls12_client_gets_ecdhe_aead) { with_env(tls12_client_gets_ecdhe_aead); }

static void tls12_blocklisted_suites_refused(env *e)
{
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 0, NULL, 0), 0);
    CHECK_INT(conns(e, "a.test"), 0);
    CHECK_INT(max_tls12(e), 0);
    CHECK_INT(SSL_set_cipher_list(sl_tls_ssl(e->c), "AES128-SHA:ECDHE-ECDSA-AES128-SHA"), 1);
    CHECK_INT(handshake(e), SLUICE_ERR_PROTOCOL);
    CHECK(sl_tls_error(e->s) != NULL);
    CHECK(sl_tls_unsent(e->s) > 0); /* the handshake_failure alert */
}
TEST(tls12_blocklisted_suites_refused) { with_env(tls12_blocklisted_suites_refused); }

static void min_version_13_refuses_tls12_client(env *e)
{
    const char *msg;
    e->cfg.tls_min_version = "1.3";
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 0, NULL, 0), 0);
    CHECK_INT(conns(e, "a.test"), 0);
    CHECK_INT(max_tls12(e), 0);
    CHECK_INT(handshake(e), SLUICE_ERR_PROTOCOL);
    msg = sl_tls_error(e->s);
    CHECK(msg && strstr(msg, "protocol"));
    CHECK_INT(sl_tls_handshake_done(e->s), 0);
    /* The server's alert reaches the client. */
    CHECK_INT(pump(e->s, e->c), SLUICE_ERR_PROTOCOL);
    msg = sl_tls_error(e->c);
    CHECK(msg && strstr(msg, "alert protocol version"));
}
TEST(min_version_13_refuses_tls12_client) { with_env(min_version_13_refuses_tls12_client); }

static void min_version_13_serves_tls13(env *e)
{
    e->cfg.tls_min_version = "1.3";
    CHECK_INT(setup(e, 1, NULL, 0, "a.test"), 0);
    CHECK_STR(sl_tls_version(e->s), "TLSv1.3");
}
TEST(min_version_13_serves_tls13) { with_env(min_version_13_serves_tls13); }

/* RFC 9113 §9.2.1: a TLS 1.2 client asking to renegotiate gets a
 * no_renegotiation alert; the connection itself carries on. */
static void renegotiation_refused(env *e)
{
    static const uint8_t x[] = "after";
    uint8_t buf[16];
    SSL *c;
    int eof;
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 0, NULL, 0), 0);
    CHECK_INT(conns(e, "a.test"), 0);
    CHECK_INT(max_tls12(e), 0);
    CHECK_INT(handshake(e), 0);
    c = sl_tls_ssl(e->c);
    SSL_clear_options(c, SSL_OP_NO_RENEGOTIATION);
    CHECK_INT(SSL_renegotiate(c), 1);
    CHECK_INT(SSL_do_handshake(c), -1); /* ClientHello out, waiting */
    CHECK(pump(e->c, e->s) > 0);
    CHECK_INT(sl_tls_read(e->s, buf, sizeof buf, &eof), 0);
    CHECK(sl_tls_error(e->s) == NULL);
    CHECK(sl_tls_unsent(e->s) > 0); /* the warning alert */
    CHECK_INT(sl_tls_write(e->s, x, sizeof x), sizeof x);
    CHECK_INT(sl_tls_unsent(e->s) > sizeof x, 1);
}
TEST(renegotiation_refused) { with_env(renegotiation_refused); }

/* ---- resumption --------------------------------------------------------- */

/* Two connections, the second resuming the first's session. */
static int resume(env *e, const char *sni, int tls12, int *resumed)
{
    static const uint8_t ping[] = "ping";
    SSL_SESSION *sess;
    int rc;
    if (conns(e, sni) != 0 || (tls12 && max_tls12(e) != 0) || handshake(e) != 0)
        return -1;
    /* Data after the handshake: the client takes the TLS 1.3 tickets. */
    if (sl_tls_write(e->s, ping, 4) != 4 || pump(e->s, e->c) <= 0 || drain(e->c) != 4 ||
        sl_tls_resumed(e->s) != 0)
        return -2;
    /* Shut down first: OpenSSL marks the session of a connection freed
     * without close_notify as not resumable (ssl_clear_bad_session). */
    sess = SSL_get1_session(sl_tls_ssl(e->c));
    if (sl_tls_shutdown(e->c) != 0 || conns(e, sni) != 0 || !sess ||
        !SSL_SESSION_is_resumable(sess) || (tls12 && max_tls12(e) != 0) ||
        SSL_set_session(sl_tls_ssl(e->c), sess) != 1)
        rc = -3;
    else
        rc = handshake(e);
    SSL_SESSION_free(sess);
    *resumed = sl_tls_resumed(e->s) && sl_tls_resumed(e->c);
    return rc;
}

static void resumption_tls13_default_cert(env *e)
{
    int resumed = 0;
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 1, H2_H11, sizeof H2_H11 - 1), 0);
    CHECK_INT(resume(e, "a.test", 0, &resumed), 0);
    CHECK(resumed);
    CHECK_STR(sl_tls_version(e->s), "TLSv1.3");
    CHECK_INT(sl_tls_alpn(e->s), SL_ALPN_H2);
}
TEST(resumption_tls13_default_cert) { with_env(resumption_tls13_default_cert); }

/* A ticket issued on the SNI-selected certificate resumes too. */
static void resumption_tls13_sni_cert(env *e)
{
    int resumed = 0;
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    CHECK_INT(resume(e, "x.b.test", 0, &resumed), 0);
    CHECK(resumed);
    CHECK(COVERS(e->s, "x.b.test"));
    CHECK(!COVERS(e->s, "a.test"));
}
TEST(resumption_tls13_sni_cert) { with_env(resumption_tls13_sni_cert); }

static void resumption_tls12_ticket(env *e)
{
    int resumed = 0;
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    CHECK_INT(resume(e, "x.b.test", 1, &resumed), 0);
    CHECK(resumed);
    CHECK_STR(sl_tls_version(e->s), "TLSv1.2");
    CHECK(COVERS(e->s, "x.b.test"));
}
TEST(resumption_tls12_ticket) { with_env(resumption_tls12_ticket); }

/* ---- configuration errors ----------------------------------------------- */

static void bad_certificate_path_names_file_and_line(env *e)
{
    e->certs[1].cert_file = "/nonexistent/b.crt";
    CHECK_INT(server_ctx(e), SLUICE_ERR_INVAL);
    CHECK(e->sctx == NULL);
    CHECK(strncmp(e->err, "site.lua:12: ", 13) == 0);
    CHECK(strstr(e->err, "/nonexistent/b.crt") != NULL);
    CHECK(strstr(e->err, "No such file") != NULL);
}
TEST(bad_certificate_path_names_file_and_line)
{
    with_env(bad_certificate_path_names_file_and_line);
}

static void bad_key_path_names_file_and_line(env *e)
{
    e->certs[0].key_file = "/nonexistent/a.key";
    CHECK_INT(server_ctx(e), SLUICE_ERR_INVAL);
    CHECK(strncmp(e->err, "site.lua:7: ", 12) == 0);
    CHECK(strstr(e->err, "/nonexistent/a.key") != NULL);
}
TEST(bad_key_path_names_file_and_line) { with_env(bad_key_path_names_file_and_line); }

static void key_not_matching_certificate(env *e)
{
    e->certs[1].key_file = e->a_key;
    CHECK_INT(server_ctx(e), SLUICE_ERR_INVAL);
    CHECK(strncmp(e->err, "site.lua:12: ", 13) == 0);
    CHECK(strstr(e->err, e->b_crt) != NULL);
}
TEST(key_not_matching_certificate) { with_env(key_not_matching_certificate); }

static void bad_min_version_or_no_certificate(env *e)
{
    e->cfg.tls_min_version = "1.1";
    CHECK_INT(server_ctx(e), SLUICE_ERR_INVAL);
    CHECK(strstr(e->err, "site.lua") && strstr(e->err, "1.1"));
    e->cfg.tls_min_version = NULL;
    e->cfg.ncerts = 0;
    CHECK_INT(server_ctx(e), SLUICE_ERR_INVAL);
    CHECK(strstr(e->err, "certificate") != NULL);
}
TEST(bad_min_version_or_no_certificate) { with_env(bad_min_version_or_no_certificate); }

/* A certificate without SAN serves its subject CN. */
static void names_from_cn_without_san(env *e)
{
    char d_crt[256], d_key[256];
    e->certs[1] = (sl_cfg_cert){{"site.lua", 30}, d_crt, d_key, NULL, 0};
    CHECK_INT(tfx_leaf(&e->fx, "d", "d.test", NULL, d_crt, d_key, sizeof d_crt), 0);
    CHECK_INT(setup(e, 0, NULL, 0, "d.test"), 0);
    CHECK(COVERS(e->s, "d.test"));
    CHECK(!COVERS(e->s, "a.test"));
}
TEST(names_from_cn_without_san) { with_env(names_from_cn_without_san); }

/* ---- errors and close --------------------------------------------------- */

static void garbage_before_handshake(env *e)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(sl_tls_conn_new(&e->s, e->sctx, NULL), 0);
    CHECK_INT(sl_tls_feed(e->s, (const uint8_t *)req, sizeof req - 1), SLUICE_ERR_PROTOCOL);
    CHECK(sl_tls_error(e->s) != NULL);
    CHECK_INT(sl_tls_feed(e->s, (const uint8_t *)req, 1), SLUICE_ERR_PROTOCOL);
}
TEST(garbage_before_handshake) { with_env(garbage_before_handshake); }

static void garbage_record_gives_protocol_error_and_alert(env *e)
{
    uint8_t rec[5 + 32] = {0x17, 0x03, 0x03, 0x00, 0x20}, buf[64];
    int eof = 0;
    memset(rec + 5, 0xab, 32);
    CHECK_INT(setup(e, 0, NULL, 0, "a.test"), 0);
    CHECK_INT(sl_tls_unsent(e->s), 0);
    CHECK_INT(sl_tls_feed(e->s, rec, sizeof rec), 0);
    CHECK_INT(sl_tls_read(e->s, buf, sizeof buf, &eof), SLUICE_ERR_PROTOCOL);
    CHECK(sl_tls_error(e->s) != NULL);
    CHECK(sl_tls_unsent(e->s) > 0); /* bad_record_mac */
    CHECK_INT(sl_tls_read(e->s, buf, sizeof buf, &eof), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_tls_write(e->s, buf, 1), SLUICE_ERR_PROTOCOL);
    CHECK(pump(e->s, e->c) > 0);
    CHECK_INT(sl_tls_read(e->c, buf, sizeof buf, &eof), SLUICE_ERR_PROTOCOL);
    CHECK(strstr(sl_tls_error(e->c), "alert") != NULL);
}
TEST(garbage_record_gives_protocol_error_and_alert)
{
    with_env(garbage_record_gives_protocol_error_and_alert);
}

static void close_notify_is_eof(env *e)
{
    static const uint8_t bye[] = "bye";
    uint8_t buf[16];
    int eof = 0;
    CHECK_INT(setup(e, 0, NULL, 0, "a.test"), 0);
    CHECK_INT(sl_tls_shutdown(e->c), 0);
    CHECK_INT(sl_tls_shutdown(e->c), 0);
    CHECK_INT(sl_tls_write(e->c, bye, 3), SLUICE_ERR_STATE);
    CHECK(pump(e->c, e->s) > 0);
    CHECK_INT(sl_tls_read(e->s, buf, sizeof buf, &eof), 0);
    CHECK_INT(eof, 1);
    CHECK(sl_tls_error(e->s) == NULL);
    /* A half-closed peer still gets the rest of the response. */
    CHECK_INT(sl_tls_write(e->s, bye, 3), 3);
    CHECK_INT(sl_tls_shutdown(e->s), 0);
    CHECK(pump(e->s, e->c) > 0);
    CHECK_INT(sl_tls_read(e->c, buf, sizeof buf, &eof), 3);
    CHECK_INT(eof, 0);
    CHECK_INT(sl_tls_read(e->c, buf, sizeof buf, &eof), 0);
    CHECK_INT(eof, 1);
}
TEST(close_notify_is_eof) { with_env(close_notify_is_eof); }

/* A reload frees the context; its connections keep working. */
static void context_outlives_its_free(env *e)
{
    static const uint8_t x[] = "still here";
    uint8_t buf[32];
    int eof;
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 1, NULL, 0), 0);
    CHECK_INT(conns(e, "x.b.test"), 0);
    sl_tls_ctx_free(e->sctx);
    sl_tls_ctx_free(e->cctx);
    e->sctx = e->cctx = NULL;
    CHECK_INT(handshake(e), 0);
    CHECK(COVERS(e->s, "x.b.test"));
    CHECK_INT(sl_tls_write(e->c, x, sizeof x), sizeof x);
    CHECK(pump(e->c, e->s) > 0);
    CHECK_INT(sl_tls_read(e->s, buf, sizeof buf, &eof), sizeof x);
}
TEST(context_outlives_its_free) { with_env(context_outlives_its_free); }

/* ---- memory ------------------------------------------------------------- */

#define MEM_N 64

/* Heap held by an established server connection with nothing in flight:
 * make MEM_N, free their clients, and count what stays. Printed, not
 * asserted: OpenSSL's internals decide most of it. */
static int idle_conn(env *e, int tls12)
{
    return conns(e, "x.b.test") != 0 || (tls12 && max_tls12(e) != 0) || handshake(e) != 0;
}

static long long idle_bytes(env *e, int tls12)
{
    sl_tls_conn *s[MEM_N] = {0};
    long long before, after = -1;
    int i;
    if (idle_conn(e, tls12) != 0)
        return -1; /* warm-up: OpenSSL builds some tables on first use */
    env_conns_free(e);
    before = live_bytes;
    for (i = 0; i < MEM_N && idle_conn(e, tls12) == 0; i++) {
        s[i] = e->s;
        e->s = NULL;
    }
    env_conns_free(e);
    if (i == MEM_N)
        after = live_bytes;
    for (i = 0; i < MEM_N; i++)
        sl_tls_conn_free(s[i]);
    return after < 0 ? -1 : (after - before) / MEM_N;
}

static void memory_per_idle_connection(env *e)
{
    long long b13, b12;
    if (!counting) {
        printf("memory per idle TLS connection: not measured (allocator hook refused)\n");
        return;
    }
    CHECK_INT(server_ctx(e), 0);
    CHECK_INT(client_ctx(e, 0, H2_H11, sizeof H2_H11 - 1), 0);
    b13 = idle_bytes(e, 0);
    b12 = idle_bytes(e, 1);
    CHECK(b13 > 0 && b12 > 0);
    printf("heap per idle TLS server connection (OpenSSL + tls.c): "
           "TLS 1.3 %lld bytes, TLS 1.2 %lld bytes\n", b13, b12);
}
TEST(memory_per_idle_connection) { with_env(memory_per_idle_connection); }
