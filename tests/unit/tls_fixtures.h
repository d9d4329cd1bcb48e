/* tls_fixtures.h — throwaway certificates for TLS tests: a CA and leaves
 * made with OpenSSL at test time in a private temporary directory. */
#ifndef SL_TLS_FIXTURES_H
#define SL_TLS_FIXTURES_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

typedef struct tfx {
    char dir[64];      /* mkdtemp directory, removed by tfx_done */
    char ca_file[128]; /* the CA certificate, PEM */
    EVP_PKEY *ca_key;
    X509 *ca;
    long serial;
} tfx;

/* Creates the directory and a CA in it. 0 or -1. */
int tfx_init(tfx *f);
/* A leaf signed by the CA, CN cn, SAN from san in OpenSSL's config syntax
 * ("DNS:a.test,IP:127.0.0.1"; NULL: no SAN), written to DIR/stem.crt and
 * DIR/stem.key; their paths go into cert and key (cap bytes each). */
int tfx_leaf(tfx *f, const char *stem, const char *cn, const char *san,
             char *cert, char *key, size_t cap);
/* Removes every file made and the directory; frees the CA. */
void tfx_done(tfx *f);

#endif /* SL_TLS_FIXTURES_H */
