/* tls.c — TLS with OpenSSL: ciphertext lives in sluice's own buffers behind
 * a custom BIO, SNI picks the certificate, ALPN picks h2 or http/1.1. */
#include "tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* TLS 1.2: ECDHE and AEAD only, so nothing on RFC 9113 Appendix A's
 * blocklist can be negotiated (§9.2.2). TLS 1.3 suites are all fine. */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* The same on every certificate's SSL_CTX: OpenSSL refuses to resume a
 * session whose context id differs, and SNI may switch contexts. */
static const unsigned char sid_ctx[] = "sluice";

/* Output pieces are at least this big, so small records share one. */
#define OUT_CHUNK (16384 + 256) /* a whole record per write(): fewer syscalls */

typedef struct sl_tls_cert {
    SSL_CTX *ssl;
    char **names;  /* lowercase; "*.example.com" is a wildcard */
    size_t nnames;
} sl_tls_cert;

struct sl_tls_ctx {
    atomic_int refs;
    int server;
    sl_tls_cert *certs; /* server: one per certificate; client: one, unnamed */
    size_t ncerts;
};

/* Ciphertext out. Chunks never move once written, so a pointer from
 * sl_tls_pending stays valid until sl_tls_sent consumes it. */
typedef struct out_chunk {
    struct out_chunk *next;
    size_t off, len, cap;
    uint8_t data[];
} out_chunk;

struct sl_tls_conn {
    sl_tls_ctx *ctx;
    SSL *ssl;
    const sl_tls_cert *cert; /* server: the certificate served */
    uint8_t *in;             /* ciphertext fed, not yet taken by OpenSSL */
    size_t in_off, in_len, in_cap;
    out_chunk *out_head, *out_tail;
    size_t unsent;
    const char *error; /* first failure's reason: static, or msg */
    char *msg;         /* a reason built for this connection, or NULL */
    int err;           /* its SLUICE_ERR_*, returned from then on */
    unsigned eof : 1, shut : 1, nomem : 1;
};

/* ---- buffers ------------------------------------------------------------ */
/* Everything here allocates through OPENSSL_malloc, so one hook
 * (CRYPTO_set_mem_functions) sees a connection's whole footprint. */

static void in_release(sl_tls_conn *c)
{
    OPENSSL_free(c->in);
    c->in = NULL;
    c->in_off = c->in_len = c->in_cap = 0;
}

static int in_append(sl_tls_conn *c, const uint8_t *p, size_t n)
{
    size_t have = c->in_len - c->in_off;
    if (n > SIZE_MAX / 2 - have)
        return SLUICE_ERR_NOMEM;
    if (c->in_off) {
        memmove(c->in, c->in + c->in_off, have);
        c->in_off = 0;
        c->in_len = have;
    }
    if (have + n > c->in_cap) {
        /* Doubling: a peer's bytes may arrive a few at a time. */
        size_t cap = have + n > 2 * c->in_cap ? have + n : 2 * c->in_cap;
        uint8_t *q = OPENSSL_realloc(c->in, cap);
        if (!q)
            return SLUICE_ERR_NOMEM;
        c->in = q;
        c->in_cap = cap;
    }
    memcpy(c->in + have, p, n);
    c->in_len = have + n;
    return 0;
}

static int out_append(sl_tls_conn *c, const uint8_t *p, size_t n)
{
    out_chunk *t = c->out_tail;
    size_t room = t ? t->cap - t->len : 0;
    size_t k = room < n ? room : n;
    out_chunk *nc = NULL;
    if (n > k) { /* allocate before copying: a record is written whole or not at all */
        size_t cap = n - k > OUT_CHUNK ? n - k : OUT_CHUNK;
        nc = OPENSSL_malloc(sizeof *nc + cap);
        if (!nc)
            return SLUICE_ERR_NOMEM;
        nc->next = NULL;
        nc->off = 0;
        nc->len = n - k;
        nc->cap = cap;
        memcpy(nc->data, p + k, n - k);
    }
    if (k) {
        memcpy(t->data + t->len, p, k);
        t->len += k;
    }
    if (nc) {
        if (t)
            t->next = nc;
        else
            c->out_head = nc;
        c->out_tail = nc;
    }
    c->unsent += n;
    return 0;
}

static void out_release(sl_tls_conn *c)
{
    while (c->out_head) {
        out_chunk *h = c->out_head;
        c->out_head = h->next;
        OPENSSL_free(h);
    }
    c->out_tail = NULL;
    c->unsent = 0;
}

/* ---- the BIO: OpenSSL reads c->in and appends to c->out ------------------ */

static int bio_read(BIO *b, char *buf, size_t len, size_t *got)
{
    sl_tls_conn *c = BIO_get_data(b);
    size_t have = c->in_len - c->in_off;
    BIO_clear_retry_flags(b);
    *got = 0;
    if (have == 0) {
        BIO_set_retry_read(b); /* nothing now; not the end of the stream */
        return 0;
    }
    if (len > have)
        len = have;
    memcpy(buf, c->in + c->in_off, len);
    c->in_off += len;
    if (c->in_off == c->in_len)
        in_release(c); /* an idle connection holds no input buffer */
    *got = len;
    return 1;
}

static int bio_write(BIO *b, const char *buf, size_t len, size_t *put)
{
    sl_tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *put = 0;
    if (out_append(c, (const uint8_t *)buf, len) != 0) {
        c->nomem = 1;
        return 0;
    }
    *put = len;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    sl_tls_conn *c = BIO_get_data(b);
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return c ? (long)(c->in_len - c->in_off) : 0;
    case BIO_CTRL_WPENDING: return c ? (long)c->unsent : 0;
    default: return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* One method for the process: BIO type indexes are a small process-wide
 * pool (BIO_get_new_index), and contexts are rebuilt on every reload. */
static CRYPTO_ONCE bio_once = CRYPTO_ONCE_STATIC_INIT;
static BIO_METHOD *bio_meth;

static void bio_method_init(void)
{
    int type = BIO_get_new_index();
    BIO_METHOD *m = type > 0 ? BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "sluice") : NULL;
    if (m && BIO_meth_set_read_ex(m, bio_read) && BIO_meth_set_write_ex(m, bio_write) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create)) {
        bio_meth = m;
        return;
    }
    BIO_meth_free(m);
}

static BIO_METHOD *bio_method(void)
{
    return CRYPTO_THREAD_run_once(&bio_once, bio_method_init) ? bio_meth : NULL;
}

/* ---- names -------------------------------------------------------------- */

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

static int same_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* RFC 6125 §6.4.3: "*" only as the whole left-most label, standing for
 * exactly one non-empty label. */
static int name_match(const char *pat, const char *host, size_t len, int wild)
{
    size_t plen = strlen(pat);
    if (plen >= 2 && pat[0] == '*' && pat[1] == '.') {
        const char *dot = memchr(host, '.', len);
        size_t rest = dot ? len - (size_t)(dot - host) : 0;
        return wild && dot && dot != host && rest == plen - 1 && same_ci(dot, pat + 1, rest);
    }
    return plen == len && same_ci(host, pat, len);
}

static int cert_names_match(const sl_tls_cert *ct, const char *host, size_t len, int wild)
{
    for (size_t i = 0; i < ct->nnames; i++)
        if (name_match(ct->names[i], host, len, wild))
            return 1;
    return 0;
}

/* An exact name beats a wildcard, whichever certificate comes first. */
static const sl_tls_cert *cert_for(const sl_tls_ctx *ctx, const char *host, size_t len)
{
    for (int wild = 0; wild <= 1; wild++)
        for (size_t i = 0; i < ctx->ncerts; i++)
            if (cert_names_match(&ctx->certs[i], host, len, wild))
                return &ctx->certs[i];
    return NULL;
}

static int names_add(sl_tls_cert *ct, const char *s, size_t len)
{
    char **v;
    char *copy;
    if (len == 0 || memchr(s, '\0', len))
        return 0; /* an embedded NUL is an attack, not a name */
    v = OPENSSL_realloc(ct->names, (ct->nnames + 1) * sizeof *v);
    if (!v)
        return SLUICE_ERR_NOMEM;
    ct->names = v;
    copy = OPENSSL_malloc(len + 1);
    if (!copy)
        return SLUICE_ERR_NOMEM;
    for (size_t i = 0; i < len; i++)
        copy[i] = (char)lower((unsigned char)s[i]);
    copy[len] = '\0';
    ct->names[ct->nnames++] = copy;
    return 0;
}

static int names_add_ip(sl_tls_cert *ct, const ASN1_OCTET_STRING *ip)
{
    char text[INET6_ADDRSTRLEN];
    int len = ASN1_STRING_length(ip);
    int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
    if (!af || !inet_ntop(af, ASN1_STRING_get0_data(ip), text, sizeof text))
        return 0;
    return names_add(ct, text, strlen(text));
}

static int names_from_san(sl_tls_cert *ct, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS)
            rc = names_add(ct, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                           (size_t)ASN1_STRING_length(g->d.dNSName));
        else if (g->type == GEN_IPADD)
            rc = names_add_ip(ct, g->d.iPAddress);
    }
    GENERAL_NAMES_free(gens);
    return rc;
}

/* The subject CN, only for certificates without a SAN. */
static int names_from_cn(sl_tls_cert *ct, X509 *x)
{
    const X509_NAME *sn = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(sn, NID_commonName, -1);
    unsigned char *u = NULL;
    int len, rc;
    if (i < 0)
        return 0;
    len = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(sn, i)));
    if (len < 0)
        return 0;
    rc = names_add(ct, (const char *)u, (size_t)len);
    OPENSSL_free(u);
    return rc;
}

static int names_from_config(sl_tls_cert *ct, const sl_cfg_cert *cc)
{
    for (size_t i = 0; i < cc->nnames; i++) {
        int rc = names_add(ct, cc->names[i], strlen(cc->names[i]));
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- errors ------------------------------------------------------------- */

/* The oldest queued error is the root cause (a file load queues the
 * system error first, then each layer's wrapper). Empties the queue. */
static const char *ossl_reason(void)
{
    const char *r = NULL;
    unsigned long e;
    while ((e = ERR_get_error()) != 0 && !r)
        r = ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e)) : ERR_reason_error_string(e);
    ERR_clear_error();
    return r ? r : "unknown TLS failure";
}

/* "file:line: message", "file: message" without a line, or the bare
 * message without a file. Returns SLUICE_ERR_INVAL for the caller. */
__attribute__((format(printf, 5, 6)))
static int cfg_error(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int n = 0;
    if (!err || errlen == 0)
        return SLUICE_ERR_INVAL;
    err[0] = '\0';
    if (file && line > 0)
        n = snprintf(err, errlen, "%s:%d: ", file, line);
    else if (file)
        n = snprintf(err, errlen, "%s: ", file);
    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return SLUICE_ERR_INVAL;
}

/* OpenSSL's own text says only "certificate verify failed"; the log
 * needs why (unknown issuer, expired, wrong name). Built once, on the
 * failure path only, so healthy connections carry no message buffer. */
static const char *verify_reason(sl_tls_conn *c)
{
    static const char prefix[] = "certificate verify failed: ";
    const char *why = X509_verify_cert_error_string(SSL_get_verify_result(c->ssl));
    size_t n = sizeof prefix + strlen(why);
    c->msg = OPENSSL_malloc(n);
    if (!c->msg)
        return why;
    snprintf(c->msg, n, "%s%s", prefix, why);
    return c->msg;
}

/* Records the first failure of a connection; later calls return it. */
static int conn_fail(sl_tls_conn *c)
{
    unsigned long e = ERR_peek_error();
    if (!c->err) {
        c->err = c->nomem ? SLUICE_ERR_NOMEM : SLUICE_ERR_PROTOCOL;
        if (c->nomem)
            c->error = "out of memory";
        else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                 ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
            c->error = verify_reason(c);
        else
            c->error = ossl_reason();
    }
    ERR_clear_error();
    return c->err;
}

/* After an OpenSSL call returned ret <= 0: 0 if it only needs more input. */
static int conn_check(sl_tls_conn *c, int ret)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* never: our output buffer always takes all */
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        c->eof = 1;
        return 0;
    default:
        return conn_fail(c);
    }
}

/* ---- contexts ----------------------------------------------------------- */

static SSL_CTX *ssl_ctx_base(int server, int min_version)
{
    SSL_CTX *s = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!s)
        return NULL;
    /* RFC 9113 §9.2.1: no compression, no renegotiation. */
    SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Record buffers (~34 KB) are freed whenever empty: idle memory. */
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    if (!SSL_CTX_set_min_proto_version(s, min_version) ||
        !SSL_CTX_set_cipher_list(s, tls12_ciphers)) {
        SSL_CTX_free(s);
        return NULL;
    }
    return s;
}

/* Server preference: h2, then http/1.1; no overlap: no ALPN at all, and
 * the host speaks HTTP/1.1 (more useful than a fatal alert to old clients). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    static const char *const prefs[] = {"\x02h2", "\x08http/1.1"};
    (void)ssl;
    (void)arg;
    for (size_t p = 0; p < sizeof prefs / sizeof prefs[0]; p++) {
        unsigned char want = (unsigned char)prefs[p][0];
        for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
            if (in[i] == 0 || i + 1u + in[i] > inlen)
                return SSL_TLSEXT_ERR_NOACK; /* malformed list */
            if (in[i] == want && memcmp(in + i + 1, prefs[p] + 1, want) == 0) {
                *out = in + i + 1;
                *outlen = want;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* SNI: switch to the certificate serving the name; none: the default. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    sl_tls_conn *c = SSL_get_app_data(ssl);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const sl_tls_cert *ct;
    (void)arg;
    if (!c || !name)
        return SSL_TLSEXT_ERR_OK;
    ct = cert_for(c->ctx, name, strlen(name));
    if (ct && ct != c->cert) {
        if (!SSL_set_SSL_CTX(ssl, ct->ssl)) {
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        c->cert = ct;
    }
    return SSL_TLSEXT_ERR_OK;
}

static sl_tls_ctx *ctx_alloc(size_t ncerts, int server)
{
    sl_tls_ctx *ctx = OPENSSL_zalloc(sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->certs = OPENSSL_zalloc(ncerts * sizeof *ctx->certs);
    if (!ctx->certs) {
        OPENSSL_free(ctx);
        return NULL;
    }
    atomic_init(&ctx->refs, 1);
    ctx->server = server;
    ctx->ncerts = ncerts;
    return ctx;
}

static void ctx_destroy(sl_tls_ctx *ctx)
{
    for (size_t i = 0; i < ctx->ncerts; i++) {
        sl_tls_cert *ct = &ctx->certs[i];
        SSL_CTX_free(ct->ssl);
        for (size_t j = 0; j < ct->nnames; j++)
            OPENSSL_free(ct->names[j]);
        OPENSSL_free(ct->names);
    }
    OPENSSL_free(ctx->certs);
    OPENSSL_free(ctx);
}

void sl_tls_ctx_free(sl_tls_ctx *ctx)
{
    if (ctx && atomic_fetch_sub(&ctx->refs, 1) == 1)
        ctx_destroy(ctx);
}

static int server_ssl_ctx(SSL_CTX *s)
{
    /* Stateless tickets only: no per-session memory in the server. */
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_tlsext_servername_callback(s, on_servername);
    SSL_CTX_set_alpn_select_cb(s, on_alpn, NULL);
    return SSL_CTX_set_session_id_context(s, sid_ctx, sizeof sid_ctx - 1) ? 0 : SLUICE_ERR_NOMEM;
}

static int cert_load(sl_tls_cert *ct, const sl_cfg_cert *cc, const char *cfg_file, int minv,
                     char *err, size_t errlen)
{
    const char *f = cc->where.file ? cc->where.file : cfg_file ? cfg_file : "(config)";
    int line = cc->where.line, rc;
    X509 *x;
    ct->ssl = ssl_ctx_base(1, minv);
    if (!ct->ssl || server_ssl_ctx(ct->ssl) != 0)
        return cfg_error(err, errlen, f, line, "TLS setup failed: %s", ossl_reason());
    if (!cc->cert_file || SSL_CTX_use_certificate_chain_file(ct->ssl, cc->cert_file) != 1)
        return cfg_error(err, errlen, f, line, "cannot load certificate %s: %s",
                         cc->cert_file ? cc->cert_file : "(none)", ossl_reason());
    if (!cc->key_file || SSL_CTX_use_PrivateKey_file(ct->ssl, cc->key_file, SSL_FILETYPE_PEM) != 1)
        return cfg_error(err, errlen, f, line, "cannot load key %s for certificate %s: %s",
                         cc->key_file ? cc->key_file : "(none)", cc->cert_file, ossl_reason());
    if (SSL_CTX_check_private_key(ct->ssl) != 1)
        return cfg_error(err, errlen, f, line, "key %s does not match certificate %s: %s",
                         cc->key_file, cc->cert_file, ossl_reason());
    x = SSL_CTX_get0_certificate(ct->ssl);
    rc = cc->nnames ? names_from_config(ct, cc) : names_from_san(ct, x);
    if (rc == 0 && ct->nnames == 0)
        rc = names_from_cn(ct, x);
    if (rc)
        cfg_error(err, errlen, f, line, "out of memory");
    return rc;
}

/* Tickets are sealed with the keys of the context a connection started on
 * (the default certificate's); giving every context the same keys keeps
 * resumption working whichever context a ticket meets. */
static int share_ticket_keys(sl_tls_ctx *ctx)
{
    unsigned char keys[80];
    int rc = 0;
    if (ctx->ncerts < 2)
        return 0;
    if (SSL_CTX_get_tlsext_ticket_keys(ctx->certs[0].ssl, keys, sizeof keys) != 1)
        return SLUICE_ERR_INTERNAL;
    for (size_t i = 1; i < ctx->ncerts && rc == 0; i++)
        if (SSL_CTX_set_tlsext_ticket_keys(ctx->certs[i].ssl, keys, sizeof keys) != 1)
            rc = SLUICE_ERR_INTERNAL;
    OPENSSL_cleanse(keys, sizeof keys);
    return rc;
}

static int parse_min_version(const char *v, int *out)
{
    if (!v || strcmp(v, "1.2") == 0)
        *out = TLS1_2_VERSION;
    else if (strcmp(v, "1.3") == 0)
        *out = TLS1_3_VERSION;
    else
        return SLUICE_ERR_INVAL;
    return 0;
}

int sl_tls_ctx_new_server(sl_tls_ctx **out, const sl_config *cfg, char *err, size_t errlen)
{
    sl_tls_ctx *ctx;
    int minv, rc = 0;
    *out = NULL;
    if (parse_min_version(cfg->tls_min_version, &minv) != 0)
        return cfg_error(err, errlen, cfg->file, 0,
                         "tls_min_version must be \"1.2\" or \"1.3\", not \"%s\"",
                         cfg->tls_min_version);
    if (cfg->ncerts == 0)
        return cfg_error(err, errlen, cfg->file, 0, "TLS needs at least one certificate");
    ctx = ctx_alloc(cfg->ncerts, 1);
    if (!ctx)
        return SLUICE_ERR_NOMEM;
    ERR_clear_error();
    for (size_t i = 0; i < cfg->ncerts && rc == 0; i++)
        rc = cert_load(&ctx->certs[i], &cfg->certs[i], cfg->file, minv, err, errlen);
    if (rc == 0 && share_ticket_keys(ctx) != 0)
        rc = cfg_error(err, errlen, cfg->file, 0, "cannot share session ticket keys");
    if (rc) {
        ctx_destroy(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

static int client_trust(SSL_CTX *s, const sl_tls_client_opts *o, char *err, size_t errlen)
{
    if (o->ca_file && SSL_CTX_load_verify_locations(s, o->ca_file, NULL) != 1)
        return cfg_error(err, errlen, NULL, 0, "CA file %s: %s", o->ca_file, ossl_reason());
    if (!o->ca_file && o->verify && SSL_CTX_set_default_verify_paths(s) != 1)
        return cfg_error(err, errlen, NULL, 0, "system CA store: %s", ossl_reason());
    if (o->verify)
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    return 0;
}

static int client_cert(SSL_CTX *s, const sl_tls_client_opts *o, char *err, size_t errlen)
{
    if (!o->cert_file && !o->key_file)
        return 0;
    if (!o->key_file)
        return cfg_error(err, errlen, NULL, 0, "client certificate %s: no key file given",
                         o->cert_file);
    if (!o->cert_file)
        return cfg_error(err, errlen, NULL, 0, "client key %s: no certificate file given",
                         o->key_file);
    if (SSL_CTX_use_certificate_chain_file(s, o->cert_file) != 1)
        return cfg_error(err, errlen, NULL, 0, "client certificate %s: %s", o->cert_file,
                         ossl_reason());
    if (SSL_CTX_use_PrivateKey_file(s, o->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s) != 1)
        return cfg_error(err, errlen, NULL, 0, "client key %s (for certificate %s): %s",
                         o->key_file, o->cert_file, ossl_reason());
    return 0;
}

int sl_tls_ctx_new_client(sl_tls_ctx **out, const sl_tls_client_opts *o, char *err, size_t errlen)
{
    sl_tls_ctx *ctx = ctx_alloc(1, 0);
    SSL_CTX *s;
    int rc = 0;
    *out = NULL;
    if (!ctx)
        return SLUICE_ERR_NOMEM;
    ERR_clear_error();
    s = ctx->certs[0].ssl = ssl_ctx_base(0, TLS1_2_VERSION);
    if (!s)
        rc = cfg_error(err, errlen, NULL, 0, "TLS setup failed: %s", ossl_reason());
    if (rc == 0)
        rc = client_trust(s, o, err, errlen);
    if (rc == 0)
        rc = client_cert(s, o, err, errlen);
    if (rc == 0 && o->alpn && o->alpn_len &&
        (o->alpn_len > UINT_MAX || SSL_CTX_set_alpn_protos(s, o->alpn, (unsigned)o->alpn_len) != 0))
        rc = cfg_error(err, errlen, NULL, 0, "bad ALPN list (wire format expected)");
    if (rc) {
        ctx_destroy(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

/* ---- connections -------------------------------------------------------- */

static int is_ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Without a name, verifying would accept any certificate the CA ever
 * signed, for any server: refused rather than silently weaker. */
static int client_name(SSL *ssl, const char *name)
{
    int verify = SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE;
    if (!name || !*name)
        return verify ? SLUICE_ERR_INVAL : 0;
    /* RFC 6066 §3: SNI carries host names only, never address literals;
     * an address is checked against the IP SANs, not the DNS names. */
    if (is_ip_literal(name))
        return !verify || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
                   ? 0 : SLUICE_ERR_INVAL;
    if (!SSL_set_tlsext_host_name(ssl, name))
        return SLUICE_ERR_INVAL;
    if (!verify)
        return 0;
    /* RFC 6125 §6.4.3, as the server side matches: "*" only as a whole label. */
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, name) ? 0 : SLUICE_ERR_INVAL;
}

static int conn_setup(sl_tls_conn *c, const char *sni)
{
    BIO_METHOD *m = bio_method();
    BIO *b = m ? BIO_new(m) : NULL;
    c->ssl = b ? SSL_new(c->ctx->certs[0].ssl) : NULL;
    if (!c->ssl) {
        BIO_free(b);
        return SLUICE_ERR_NOMEM;
    }
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b); /* one BIO both ways; the SSL owns it */
    SSL_set_app_data(c->ssl, c);
    if (c->ctx->server) {
        SSL_set_accept_state(c->ssl);
        c->cert = &c->ctx->certs[0];
        return 0;
    }
    SSL_set_connect_state(c->ssl);
    return client_name(c->ssl, sni);
}

int sl_tls_conn_new(sl_tls_conn **out, sl_tls_ctx *ctx, const char *sni)
{
    sl_tls_conn *c = OPENSSL_zalloc(sizeof *c);
    int rc;
    *out = NULL;
    if (!c)
        return SLUICE_ERR_NOMEM;
    atomic_fetch_add(&ctx->refs, 1);
    c->ctx = ctx;
    ERR_clear_error();
    rc = conn_setup(c, sni);
    ERR_clear_error();
    if (rc) {
        sl_tls_conn_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void sl_tls_conn_free(sl_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    in_release(c);
    out_release(c);
    sl_tls_ctx_free(c->ctx);
    OPENSSL_free(c->msg);
    OPENSSL_free(c);
}

int sl_tls_feed(sl_tls_conn *c, const uint8_t *in, size_t len)
{
    int r;
    if (c->err)
        return c->err;
    if (len && in_append(c, in, len) != 0)
        return SLUICE_ERR_NOMEM;
    if (SSL_is_init_finished(c->ssl))
        return 0;
    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    return r == 1 ? 0 : conn_check(c, r);
}

long sl_tls_read(sl_tls_conn *c, uint8_t *out, size_t cap, int *eof)
{
    size_t n = 0;
    int rc = c->err;
    if (rc == 0 && cap && !c->eof) {
        ERR_clear_error();
        if (SSL_read_ex(c->ssl, out, cap < LONG_MAX ? cap : LONG_MAX, &n) != 1) {
            rc = conn_check(c, 0);
            n = 0;
        }
    }
    if (eof)
        *eof = c->eof;
    return rc < 0 ? rc : (long)n;
}

long sl_tls_write(sl_tls_conn *c, const uint8_t *in, size_t len)
{
    size_t n = 0;
    if (c->err)
        return c->err;
    if (c->shut)
        return SLUICE_ERR_STATE;
    if (len == 0 || !SSL_is_init_finished(c->ssl))
        return 0;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, in, len < LONG_MAX ? len : LONG_MAX, &n) != 1)
        return conn_check(c, 0);
    return (long)n;
}

size_t sl_tls_pending(sl_tls_conn *c, const uint8_t **data)
{
    out_chunk *h = c->out_head;
    if (!h) {
        *data = NULL;
        return 0;
    }
    *data = h->data + h->off;
    return h->len - h->off;
}

void sl_tls_sent(sl_tls_conn *c, size_t n)
{
    while (n > 0 && c->out_head) {
        out_chunk *h = c->out_head;
        size_t k = h->len - h->off < n ? h->len - h->off : n;
        h->off += k;
        c->unsent -= k;
        n -= k;
        if (h->off == h->len) { /* an idle connection holds no output buffer */
            c->out_head = h->next;
            if (!c->out_head)
                c->out_tail = NULL;
            OPENSSL_free(h);
        }
    }
}

size_t sl_tls_unsent(const sl_tls_conn *c)
{
    return c->unsent;
}

int sl_tls_shutdown(sl_tls_conn *c)
{
    int r;
    if (c->err)
        return c->err;
    if (!SSL_is_init_finished(c->ssl))
        return SLUICE_ERR_STATE;
    if (c->shut)
        return 0;
    c->shut = 1;
    ERR_clear_error();
    r = SSL_shutdown(c->ssl);
    return r >= 0 ? 0 : conn_check(c, r);
}

int sl_tls_handshake_done(const sl_tls_conn *c)
{
    return SSL_is_init_finished(c->ssl);
}

int sl_tls_alpn(const sl_tls_conn *c)
{
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &n);
    if (n == 2 && memcmp(p, "h2", 2) == 0)
        return SL_ALPN_H2;
    if (n == 8 && memcmp(p, "http/1.1", 8) == 0)
        return SL_ALPN_HTTP11;
    return SL_ALPN_NONE;
}

const char *sl_tls_sni(const sl_tls_conn *c)
{
    return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *sl_tls_version(const sl_tls_conn *c)
{
    return SSL_get_version(c->ssl);
}

int sl_tls_resumed(const sl_tls_conn *c)
{
    return SSL_session_reused(c->ssl) == 1;
}

/* A client checks its peer's certificate: names, or addresses for a
 * literal (X509_check_ip_asc needs it NUL-terminated). */
static int peer_covers(const sl_tls_conn *c, const char *host, size_t len)
{
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    char ip[INET6_ADDRSTRLEN];
    int r;
    if (!peer)
        return 0;
    if (len < sizeof ip) {
        memcpy(ip, host, len);
        ip[len] = '\0';
    }
    if (len < sizeof ip && is_ip_literal(ip))
        r = X509_check_ip_asc(peer, ip, 0);
    else
        r = X509_check_host(peer, host, len, 0, NULL);
    ERR_clear_error();
    return r == 1;
}

int sl_tls_cert_covers(const sl_tls_conn *c, const char *host, size_t len)
{
    if (!host || len == 0)
        return 0;
    return c->cert ? cert_names_match(c->cert, host, len, 1) : peer_covers(c, host, len);
}

const char *sl_tls_error(const sl_tls_conn *c)
{
    return c->error;
}

struct ssl_st *sl_tls_ssl(const sl_tls_conn *c)
{
    return c->ssl;
}
