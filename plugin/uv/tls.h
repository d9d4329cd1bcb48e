/* tls.h — TLS for the host through OpenSSL with in-memory ciphertext: the
 * socket code moves ciphertext, this unit turns it into plaintext and back,
 * so TLS and plain-text connections share one code path. */
#ifndef SL_UV_TLS_H
#define SL_UV_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct sl_tls_ctx sl_tls_ctx;   /* certificates, ALPN, tickets */
typedef struct sl_tls_conn sl_tls_conn; /* one connection */
struct ssl_st;                          /* OpenSSL's SSL */

enum sl_tls_alpn { SL_ALPN_NONE = 0, SL_ALPN_H2 = 1, SL_ALPN_HTTP11 = 2 };

/* Server context from the config's certificates (SNI picks among them by
 * their configured names, else their SAN; the first is the default) and
 * tls_min_version. TLS 1.2 gets only ECDHE AEAD suites (RFC 9113 §9.2.2);
 * session tickets resume across all the certificates. On failure returns a
 * negative SLUICE_ERR_* and writes "file:line: message" naming the file. */
int sl_tls_ctx_new_server(sl_tls_ctx **out, const sl_config *cfg, char *err, size_t errlen);
/* Client context options (for upstreams and tests). */
typedef struct sl_tls_client_opts {
    const char *ca_file;    /* NULL: the system's default store (when verify) */
    int verify;             /* 1: verify the chain and the name (sni, else host) */
    const char *cert_file;  /* client certificate chain (PEM) and key, or NULL */
    const char *key_file;
    const uint8_t *alpn;    /* wire format ("\x02h2\x08http/1.1"), or NULL */
    size_t alpn_len;
} sl_tls_client_opts;
/* Client context. A ca_file is loaded even without verify, so a wrong
 * path is reported, not ignored. cert_file and key_file go together. On
 * failure returns SLUICE_ERR_INVAL (or _NOMEM) and writes a message naming
 * the file and OpenSSL's reason: "client certificate /x/c.pem: No such
 * file or directory". */
int sl_tls_ctx_new_client(sl_tls_ctx **out, const sl_tls_client_opts *o, char *err,
                          size_t errlen);
/* Drops the caller's reference: connections hold their own, so a reload
 * may free the old context while old connections still use it. Threadsafe. */
void sl_tls_ctx_free(sl_tls_ctx *ctx);

/* sni: client only, the server's name (no port, no brackets): a host name
 * is sent as SNI and, when verifying, checked against the certificate's
 * DNS names (no partial wildcards); an address literal ("127.0.0.1",
 * "::1") is never sent (RFC 6066 §3) and is checked against its IP SANs.
 * May be NULL only when not verifying: SLUICE_ERR_INVAL otherwise. */
int sl_tls_conn_new(sl_tls_conn **out, sl_tls_ctx *ctx, const char *sni);
void sl_tls_conn_free(sl_tls_conn *c);

/* Ciphertext from the socket (copied) and a handshake step. A client calls
 * it once with len 0 to start: its ClientHello is then pending. Returns 0,
 * SLUICE_ERR_NOMEM, or SLUICE_ERR_PROTOCOL (handshake failure: the alert
 * to send, if any, is pending). After the handshake the bytes wait for
 * sl_tls_read, which reports record errors. */
int sl_tls_feed(sl_tls_conn *c, const uint8_t *in, size_t len);
/* Plaintext received, up to cap bytes: returns the count, 0 if none now,
 * or SLUICE_ERR_PROTOCOL (the alert is pending). *eof is set (and stays
 * set) once the peer sent close_notify. Call until it returns 0: ciphertext
 * fed and not yet read stays buffered. */
long sl_tls_read(sl_tls_conn *c, uint8_t *out, size_t cap, int *eof);
/* Encrypt plaintext: returns bytes taken (all, unless the handshake is not
 * done yet, then 0), SLUICE_ERR_STATE after sl_tls_shutdown, or another
 * negative error. */
long sl_tls_write(sl_tls_conn *c, const uint8_t *in, size_t len);
/* Ciphertext to send to the socket: pointer and length of the next ready
 * piece (0 when none); then sl_tls_sent() with what was written. The bytes
 * stay in place until sl_tls_sent() consumes them, whatever else is called
 * meanwhile, so they may be handed to an asynchronous write. */
size_t sl_tls_pending(sl_tls_conn *c, const uint8_t **data);
void sl_tls_sent(sl_tls_conn *c, size_t n);
/* All ciphertext encrypted and not yet sent: what the write path limits. */
size_t sl_tls_unsent(const sl_tls_conn *c);
/* Queue close_notify. SLUICE_ERR_STATE before the handshake is done. */
int sl_tls_shutdown(sl_tls_conn *c);

int sl_tls_handshake_done(const sl_tls_conn *c);
int sl_tls_alpn(const sl_tls_conn *c);          /* enum sl_tls_alpn */
const char *sl_tls_sni(const sl_tls_conn *c);   /* NULL if none */
const char *sl_tls_version(const sl_tls_conn *c); /* "TLSv1.3" */
int sl_tls_resumed(const sl_tls_conn *c);
/* 1 if the certificate this server connection was served covers host
 * (exact or single-label wildcard match, ASCII case-insensitive, on the
 * names the certificate was configured with, else its SAN DNS names and IP
 * addresses), for RFC 9113 §9.1.1 421 checks. host has no port and no
 * brackets. A client connection checks the peer's certificate. */
int sl_tls_cert_covers(const sl_tls_conn *c, const char *host, size_t len);
/* Why the last call failed (OpenSSL's reason or the peer's alert), for
 * the log; NULL if nothing failed. A failed verification reads
 * "certificate verify failed: " and OpenSSL's verify reason ("unable to
 * get local issuer certificate", "hostname mismatch"). Valid until
 * sl_tls_conn_free. */
const char *sl_tls_error(const sl_tls_conn *c);
/* The OpenSSL connection, for what this unit does not wrap: cipher names
 * for logs, client sessions to resume (SSL_get1_session/SSL_set_session
 * before the first sl_tls_feed), tests. Do not change its BIOs. */
struct ssl_st *sl_tls_ssl(const sl_tls_conn *c);

#endif /* SL_UV_TLS_H */
