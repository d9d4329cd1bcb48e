/* tls_fixtures.c — makes a CA and leaf certificates with OpenSSL's API at
 * test time (P-256 keys: fast to generate), so no key is ever committed. */
#include "tls_fixtures.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    int ok = e && X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

/* issuer NULL: self-signed (the CA). */
static int cert_fields(X509 *x, EVP_PKEY *key, const char *cn, X509 *issuer, long serial)
{
    X509_NAME *name = X509_get_subject_name(x);
    return X509_set_version(x, X509_VERSION_3) &&
           ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
           X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
           X509_gmtime_adj(X509_getm_notAfter(x), 86400) && X509_set_pubkey(x, key) &&
           X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
                                      -1, 0) &&
           X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
                       EVP_PKEY *issuer_key, long serial)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    int ok = x && cert_fields(x, key, cn, issuer, serial);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    ok = ok && add_ext(x, &v3, NID_subject_key_identifier, "hash");
    if (issuer) {
        ok = ok && add_ext(x, &v3, NID_basic_constraints, "CA:FALSE") &&
             add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") &&
             add_ext(x, &v3, NID_ext_key_usage, "serverAuth") &&
             add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
        if (san)
            ok = ok && add_ext(x, &v3, NID_subject_alt_name, san);
    } else {
        ok = ok && add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE") &&
             add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    ok = ok && X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *path, X509 *x, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");
    int ok;
    if (!fp)
        return 0;
    ok = x ? PEM_write_X509(fp, x) : PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL);
    return fclose(fp) == 0 && ok;
}

int tfx_init(tfx *f)
{
    memset(f, 0, sizeof *f);
    strcpy(f->dir, "/tmp/sluice-tls-XXXXXX");
    if (!mkdtemp(f->dir)) {
        f->dir[0] = '\0';
        return -1;
    }
    snprintf(f->ca_file, sizeof f->ca_file, "%s/ca.crt", f->dir);
    f->ca_key = EVP_EC_gen("P-256");
    f->ca = f->ca_key ? make_cert(f->ca_key, "sluice test CA", NULL, NULL, NULL, 1) : NULL;
    f->serial = 2;
    return f->ca && write_pem(f->ca_file, f->ca, NULL) ? 0 : -1;
}

int tfx_leaf(tfx *f, const char *stem, const char *cn, const char *san,
             char *cert, char *key, size_t cap)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k ? make_cert(k, cn, san, f->ca, f->ca_key, f->serial++) : NULL;
    int ok = x != NULL;
    snprintf(cert, cap, "%s/%s.crt", f->dir, stem);
    snprintf(key, cap, "%s/%s.key", f->dir, stem);
    ok = ok && write_pem(cert, x, NULL) && write_pem(key, NULL, k);
    X509_free(x);
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

void tfx_done(tfx *f)
{
    DIR *d = f->dir[0] ? opendir(f->dir) : NULL;
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
        unlink(path);
    }
    if (d) {
        closedir(d);
        rmdir(f->dir);
    }
    X509_free(f->ca);
    EVP_PKEY_free(f->ca_key);
    memset(f, 0, sizeof *f);
}
