/* http.c — HTTP/2 message validation (RFC 9113 §8.1–8.3, §8.5; RFC 9110):
 * field syntax, pseudo-headers, connection-specific fields, content-length. */
#include <string.h>

#include "http.h"

/* ---- small helpers ------------------------------------------------------ */

static int fail(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return SLUICE_ERR_PROTOCOL;
}

/* RFC 9110 §5.6.2: tchar */
static int is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static int to_lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int mem_eq_ci(const uint8_t *a, size_t alen, const uint8_t *b,
                     size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (to_lower(a[i]) != to_lower(b[i]))
            return 0;
    return 1;
}

static int lit_eq(const uint8_t *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    return alen == n && (n == 0 || memcmp(a, lit, n) == 0);
}

static int lit_eq_ci(const uint8_t *a, size_t alen, const char *lit)
{
    return mem_eq_ci(a, alen, (const uint8_t *)lit, strlen(lit));
}

/* Field names are lowercase once sl_http_check_field passed them. */
static int name_is(const sluice_nv *nv, const char *lit)
{
    return lit_eq(nv->name, nv->name_len, lit);
}

/* Absent fields are NULL, so an empty value must not be. */
static const uint8_t *value_ptr(const sluice_nv *nv)
{
    return nv->value ? nv->value : (const uint8_t *)"";
}

static int is_token(const uint8_t *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar(s[i]))
            return 0;
    return 1;
}

/* ---- one field (RFC 9113 §8.2.1) ---------------------------------------- */

static const char *name_error(const uint8_t *name, size_t len)
{
    if (len == 0)
        return "empty field name";
    /* Only pseudo-header names start with a colon (RFC 9113 §8.3). */
    for (size_t i = name[0] == ':' ? 1 : 0; i < len; i++) {
        uint8_t c = name[i];
        if (c <= 0x20)
            return "control character or space in field name";
        if (c >= 0x7f)
            return "DEL or non-ASCII byte in field name";
        if (c >= 'A' && c <= 'Z')
            return "uppercase in field name";
        if (c == ':')
            return "colon in field name";
        if (!is_tchar(c)) /* RFC 9110 §5.1: a name is a token */
            return "invalid character in field name";
    }
    return NULL;
}

static const char *value_error(const uint8_t *v, size_t len)
{
    if (len > 0 && (is_ws(v[0]) || is_ws(v[len - 1])))
        return "leading or trailing whitespace in field value";
    for (size_t i = 0; i < len; i++)
        if (v[i] == 0 || v[i] == '\r' || v[i] == '\n')
            return "NUL, CR or LF in field value";
    return NULL;
}

int sl_http_check_field_why(const sluice_nv *nv, const char **reason)
{
    const char *why = name_error(nv->name, nv->name_len);
    if (!why)
        why = value_error(nv->value, nv->value_len);
    if (reason)
        *reason = why;
    return why ? SLUICE_ERR_PROTOCOL : 0;
}

int sl_http_check_field(const sluice_nv *nv)
{
    return sl_http_check_field_why(nv, NULL);
}

/* ---- rules for every regular field (RFC 9113 §8.2.2) -------------------- */

static const struct {
    const char *name, *why;
} conn_fields[] = {
    {"connection", "connection-specific header field: connection"},
    {"keep-alive", "connection-specific header field: keep-alive"},
    {"proxy-connection", "connection-specific header field: proxy-connection"},
    {"transfer-encoding", "connection-specific header field: transfer-encoding"},
    {"upgrade", "connection-specific header field: upgrade"},
};

static int check_regular(const sluice_nv *nv, const char **reason)
{
    for (size_t i = 0; i < sizeof(conn_fields) / sizeof(conn_fields[0]); i++)
        if (name_is(nv, conn_fields[i].name))
            return fail(reason, conn_fields[i].why);
    /* The one exception: te, and only with the value "trailers". */
    if (name_is(nv, "te") && !lit_eq_ci(nv->value, nv->value_len, "trailers"))
        return fail(reason, "te other than trailers");
    return 0;
}

/* ---- content-length (RFC 9110 §8.6) ------------------------------------- */

static int parse_digits(const uint8_t *v, size_t len, size_t *i, int64_t *out)
{
    size_t start = *i;
    int64_t x = 0;
    for (; *i < len && v[*i] >= '0' && v[*i] <= '9'; (*i)++) {
        int d = v[*i] - '0';
        if (x > (INT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    if (*i == start)
        return -1;
    *out = x;
    return 0;
}

static void skip_ows(const uint8_t *v, size_t len, size_t *i)
{
    while (*i < len && is_ws(v[*i]))
        (*i)++;
}

int sl_http_parse_content_length(const uint8_t *v, size_t len, int64_t *out)
{
    int64_t first = -1, x;
    size_t i = 0;
    /* A list such as "5, 5" is what a recipient sees when an earlier hop
     * joined repeated fields; it is valid only if every value is equal. */
    for (;;) {
        if (parse_digits(v, len, &i, &x) != 0 || (first >= 0 && x != first))
            return SLUICE_ERR_PROTOCOL;
        first = x;
        if (i == len)
            break;
        skip_ows(v, len, &i);
        if (i == len || v[i] != ',')
            return SLUICE_ERR_PROTOCOL;
        i++;
        skip_ows(v, len, &i);
    }
    *out = first;
    return 0;
}

/* Repeated content-length fields must agree (RFC 9110 §8.6). */
static int add_content_length(int64_t *cl, const sluice_nv *nv,
                              const char **reason)
{
    int64_t x;
    if (sl_http_parse_content_length(nv->value, nv->value_len, &x) != 0)
        return fail(reason, "invalid content-length");
    if (*cl >= 0 && *cl != x)
        return fail(reason, "content-length values differ");
    *cl = x;
    return 0;
}

/* RFC 9218 §4: record the first priority field, flag any repetition. */
static void add_priority(const uint8_t **p, size_t *plen, int *multiple,
                         const sluice_nv *nv)
{
    if (*p) {
        *multiple = 1;
        return;
    }
    *p = value_ptr(nv);
    *plen = nv->value_len;
}

/* ---- pseudo-header fields (RFC 9113 §8.3) ------------------------------- */

enum {
    PH_METHOD = 1u << 0,
    PH_SCHEME = 1u << 1,
    PH_AUTHORITY = 1u << 2,
    PH_PATH = 1u << 3,
    PH_PROTOCOL = 1u << 4, /* RFC 8441 §4 */
    PH_STATUS = 1u << 5,
    PH_REQUEST = PH_METHOD | PH_SCHEME | PH_AUTHORITY | PH_PATH | PH_PROTOCOL
};

static const struct pseudo {
    const char *name;
    unsigned bit;
    const char *dup;
} pseudos[] = {
    {":method", PH_METHOD, "duplicate :method"},
    {":scheme", PH_SCHEME, "duplicate :scheme"},
    {":authority", PH_AUTHORITY, "duplicate :authority"},
    {":path", PH_PATH, "duplicate :path"},
    {":protocol", PH_PROTOCOL, "duplicate :protocol"},
    {":status", PH_STATUS, "duplicate :status"},
};

static const struct pseudo *find_pseudo(const sluice_nv *nv)
{
    for (size_t i = 0; i < sizeof(pseudos) / sizeof(pseudos[0]); i++)
        if (name_is(nv, pseudos[i].name))
            return &pseudos[i];
    return NULL;
}

static int is_pseudo(const sluice_nv *nv)
{
    return nv->name_len > 0 && nv->name[0] == ':';
}

/* ---- authority syntax and comparison (RFC 3986 §3.2, §6.2.3) ------------ */

/* unreserved / pct-encoded / sub-delims / ":" / "[" / "]" / "@" */
static int is_authority_char(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("-._~%!$&'()*+,;=:[]@", c) != NULL;
}

static int authority_chars_ok(const uint8_t *a, size_t len, int allow_at)
{
    for (size_t i = 0; i < len; i++)
        if (!is_authority_char(a[i]) || (a[i] == '@' && !allow_at))
            return 0;
    return 1;
}

struct hostport {
    const uint8_t *host, *port;
    size_t host_len, port_len;
};

/* Split host[:port]; digits after the last ':' are the port, which also
 * leaves an IP literal "[::1]" whole since it ends in ']'. */
static struct hostport split_authority(const uint8_t *a, size_t len)
{
    struct hostport hp = {a, a + len, len, 0};
    size_t i = len;
    while (i > 0 && a[i - 1] >= '0' && a[i - 1] <= '9')
        i--;
    if (i > 0 && a[i - 1] == ':') {
        hp.host_len = i - 1;
        hp.port = a + i;
        hp.port_len = len - i;
    }
    return hp;
}

/* RFC 3986 §6.2.3: an empty port and the scheme's default port are the
 * same as no port; leading zeros do not change the number. */
static void normalize_port(struct hostport *hp, const char *dflt)
{
    while (hp->port_len > 1 && hp->port[0] == '0') {
        hp->port++;
        hp->port_len--;
    }
    if (dflt && lit_eq(hp->port, hp->port_len, dflt))
        hp->port_len = 0;
}

static const char *default_port(const uint8_t *scheme, size_t len)
{
    if (scheme && lit_eq_ci(scheme, len, "http"))
        return "80";
    if (scheme && lit_eq_ci(scheme, len, "https"))
        return "443";
    return NULL;
}

/* RFC 9113 §8.3.1: do host and :authority name the same entity after
 * scheme-based normalization? A CONNECT Host without a port names only
 * the host, since CONNECT has no scheme and so no default port. */
static int same_authority(const sl_http_request *r)
{
    struct hostport a = split_authority(r->authority, r->authority_len);
    struct hostport h = split_authority(r->host, r->host_len);
    const char *dflt = default_port(r->scheme, r->scheme_len);
    if (!mem_eq_ci(a.host, a.host_len, h.host, h.host_len))
        return 0;
    normalize_port(&a, dflt);
    normalize_port(&h, dflt);
    if (r->is_connect && !r->protocol && h.port_len == 0)
        return 1;
    return mem_eq_ci(a.port, a.port_len, h.port, h.port_len);
}

/* ---- requests (RFC 9113 §8.3.1, §8.5; RFC 8441 §4) ---------------------- */

struct req_scan {
    unsigned seen;   /* PH_* bits */
    int regular;     /* a regular field has been seen */
};

static void store_pseudo(sl_http_request *r, unsigned bit, const sluice_nv *nv)
{
    const uint8_t *v = value_ptr(nv);
    size_t n = nv->value_len;
    switch (bit) {
    case PH_METHOD: r->method = v; r->method_len = n; break;
    case PH_SCHEME: r->scheme = v; r->scheme_len = n; break;
    case PH_AUTHORITY: r->authority = v; r->authority_len = n; break;
    case PH_PATH: r->path = v; r->path_len = n; break;
    default: r->protocol = v; r->protocol_len = n; break;
    }
}

static int req_pseudo(sl_http_request *r, struct req_scan *s,
                      const sluice_nv *nv, unsigned flags)
{
    const struct pseudo *p = find_pseudo(nv);
    if (s->regular)
        return fail(&r->reason, "pseudo-header after regular field");
    if (!p)
        return fail(&r->reason, "unknown pseudo-header");
    if (p->bit == PH_STATUS)
        return fail(&r->reason, "response pseudo-header in request");
    if (p->bit == PH_PROTOCOL && !(flags & SL_HTTP_ALLOW_CONNECT_PROTOCOL))
        return fail(&r->reason,
                    ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL");
    if (s->seen & p->bit)
        return fail(&r->reason, p->dup);
    s->seen |= p->bit;
    store_pseudo(r, p->bit, nv);
    return 0;
}

static int req_regular(sl_http_request *r, struct req_scan *s,
                       const sluice_nv *nv)
{
    int rc = check_regular(nv, &r->reason);
    if (rc != 0)
        return rc;
    s->regular = 1;
    if (name_is(nv, "content-length"))
        return add_content_length(&r->content_length, nv, &r->reason);
    if (name_is(nv, "host")) {
        /* RFC 9110 §7.2: more than one Host is a bad request. */
        if (r->host)
            return fail(&r->reason, "duplicate host");
        r->host = value_ptr(nv);
        r->host_len = nv->value_len;
    } else if (name_is(nv, "te")) {
        r->expect_trailers = 1;
    } else if (name_is(nv, "priority")) {
        add_priority(&r->priority, &r->priority_len, &r->priority_multiple, nv);
    }
    return 0;
}

/* RFC 9113 §8.5: CONNECT carries only :method and :authority, and the
 * authority is host:port (RFC 9112 §3.2.3 authority-form). */
static int check_connect(sl_http_request *r)
{
    struct hostport hp;
    if (r->scheme)
        return fail(&r->reason, ":scheme in CONNECT request");
    if (r->path)
        return fail(&r->reason, ":path in CONNECT request");
    if (!r->authority)
        return fail(&r->reason, "missing :authority in CONNECT request");
    hp = split_authority(r->authority, r->authority_len);
    if (hp.port_len == 0 || hp.host_len == 0)
        return fail(&r->reason, "CONNECT :authority is not host:port");
    if (memchr(r->authority, '@', r->authority_len))
        return fail(&r->reason, "userinfo in :authority");
    return 0;
}

/* RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
static int is_scheme(const uint8_t *s, size_t len)
{
    if (len == 0 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z'))
        return 0;
    for (size_t i = 1; i < len; i++) {
        uint8_t c = s[i];
        int alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
        if (!alpha && !(c >= '0' && c <= '9') && c != '+' && c != '-' &&
            c != '.')
            return 0;
    }
    return 1;
}

static int is_http_scheme(const sl_http_request *r)
{
    return r->scheme && (lit_eq_ci(r->scheme, r->scheme_len, "http") ||
                         lit_eq_ci(r->scheme, r->scheme_len, "https"));
}

/* RFC 9113 §8.3.1 :path rules. Spaces and controls are refused too: an
 * HTTP/1.1 hop would put this value into its request line. */
static int check_path(sl_http_request *r)
{
    if (r->path_len == 0)
        return fail(&r->reason, "empty :path");
    for (size_t i = 0; i < r->path_len; i++)
        if (r->path[i] <= 0x20 || r->path[i] == 0x7f)
            return fail(&r->reason, "control character or space in :path");
    if (!is_http_scheme(r))
        return 0;
    if (lit_eq(r->path, r->path_len, "*"))
        return lit_eq(r->method, r->method_len, "OPTIONS")
                   ? 0 : fail(&r->reason, ":path * without OPTIONS");
    if (r->path[0] != '/')
        return fail(&r->reason, ":path does not start with /");
    return 0;
}

/* Every request but a plain CONNECT: RFC 9113 §8.3.1, RFC 8441 §4. */
static int check_target(sl_http_request *r)
{
    if (r->protocol && !r->is_connect)
        return fail(&r->reason, ":protocol with a method other than CONNECT");
    if (!r->scheme)
        return fail(&r->reason, "missing :scheme");
    if (!r->path)
        return fail(&r->reason, "missing :path");
    if (r->protocol && !r->authority)
        return fail(&r->reason, "missing :authority in extended CONNECT");
    if (!is_scheme(r->scheme, r->scheme_len))
        return fail(&r->reason, "invalid :scheme");
    return check_path(r);
}

/* RFC 9113 §8.3.1: no userinfo for http(s); RFC 9110 §4.2.1: no empty
 * host for http(s). */
static int check_authority(sl_http_request *r)
{
    int http = is_http_scheme(r);
    if (!authority_chars_ok(r->authority, r->authority_len, 1))
        return fail(&r->reason, "invalid character in :authority");
    if (http && memchr(r->authority, '@', r->authority_len))
        return fail(&r->reason, "userinfo in :authority");
    if (http && split_authority(r->authority, r->authority_len).host_len == 0)
        return fail(&r->reason, "empty host in :authority");
    return 0;
}

/* RFC 9113 §8.3.1: a server SHOULD treat a request as malformed if Host
 * names another entity than :authority; we do, as a proxy routes on it. */
static int check_host(sl_http_request *r)
{
    if (!authority_chars_ok(r->host, r->host_len, 0))
        return fail(&r->reason, "invalid character in host");
    if (r->authority && !same_authority(r))
        return fail(&r->reason, "host differs from :authority");
    return 0;
}

static int req_finish(sl_http_request *r)
{
    int rc;
    if (!r->method)
        return fail(&r->reason, "missing :method");
    if (!is_token(r->method, r->method_len)) /* RFC 9110 §9.1 */
        return fail(&r->reason, "invalid :method");
    /* Methods are case-sensitive (RFC 9110 §9.1). */
    r->is_connect = lit_eq(r->method, r->method_len, "CONNECT");
    r->is_head = lit_eq(r->method, r->method_len, "HEAD");
    rc = r->is_connect && !r->protocol ? check_connect(r) : check_target(r);
    if (rc == 0 && r->authority)
        rc = check_authority(r);
    if (rc == 0 && r->host)
        rc = check_host(r);
    return rc;
}

int sl_http_check_request(const sluice_nv *nv, size_t n, unsigned flags,
                          sl_http_request *out)
{
    struct req_scan s = {0, 0};
    memset(out, 0, sizeof(*out));
    out->content_length = -1;
    for (size_t i = 0; i < n; i++) {
        int rc = sl_http_check_field_why(&nv[i], &out->reason);
        if (rc == 0)
            rc = is_pseudo(&nv[i]) ? req_pseudo(out, &s, &nv[i], flags)
                                   : req_regular(out, &s, &nv[i]);
        if (rc != 0)
            return rc;
    }
    return req_finish(out);
}

/* ---- responses (RFC 9113 §8.3.2) ---------------------------------------- */

struct res_scan {
    const sluice_nv *status;
    int regular;
};

static int res_pseudo(sl_http_response *r, struct res_scan *s,
                      const sluice_nv *nv)
{
    const struct pseudo *p = find_pseudo(nv);
    if (s->regular)
        return fail(&r->reason, "pseudo-header after regular field");
    if (!p)
        return fail(&r->reason, "unknown pseudo-header");
    if (p->bit & PH_REQUEST)
        return fail(&r->reason, "request pseudo-header in response");
    if (s->status)
        return fail(&r->reason, p->dup);
    s->status = nv;
    return 0;
}

static int res_regular(sl_http_response *r, struct res_scan *s,
                       const sluice_nv *nv)
{
    int rc = check_regular(nv, &r->reason);
    if (rc != 0)
        return rc;
    s->regular = 1;
    if (name_is(nv, "content-length"))
        return add_content_length(&r->content_length, nv, &r->reason);
    if (name_is(nv, "priority"))
        add_priority(&r->priority, &r->priority_len, &r->priority_multiple, nv);
    return 0;
}

/* RFC 9110 §15: three digits, 100-599. */
static int parse_status(const sluice_nv *nv)
{
    const uint8_t *v = nv->value;
    int x = 0;
    if (nv->value_len != 3)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x >= 100 && x <= 599 ? x : -1;
}

static int res_finish(sl_http_response *r, const struct res_scan *s)
{
    if (!s->status)
        return fail(&r->reason, "missing :status");
    r->status = parse_status(s->status);
    if (r->status < 0)
        return fail(&r->reason, "invalid :status");
    /* RFC 9113 §8.6: HTTP/2 has no 101 (Switching Protocols). */
    if (r->status == 101)
        return fail(&r->reason, ":status 101 in HTTP/2");
    /* RFC 9110 §8.6: no Content-Length in 1xx or 204; we let 0 pass. */
    if ((r->status < 200 || r->status == 204) && r->content_length > 0)
        return fail(&r->reason, "content-length in 1xx or 204 response");
    return 0;
}

int sl_http_check_response(const sluice_nv *nv, size_t n,
                           sl_http_response *out)
{
    struct res_scan s = {NULL, 0};
    memset(out, 0, sizeof(*out));
    out->content_length = -1;
    for (size_t i = 0; i < n; i++) {
        int rc = sl_http_check_field_why(&nv[i], &out->reason);
        if (rc == 0)
            rc = is_pseudo(&nv[i]) ? res_pseudo(out, &s, &nv[i])
                                   : res_regular(out, &s, &nv[i]);
        if (rc != 0)
            return rc;
    }
    return res_finish(out, &s);
}

/* ---- trailers (RFC 9113 §8.1) ------------------------------------------- */

int sl_http_check_trailers_why(const sluice_nv *nv, size_t n,
                               const char **reason)
{
    if (reason)
        *reason = NULL;
    for (size_t i = 0; i < n; i++) {
        int rc = sl_http_check_field_why(&nv[i], reason);
        if (rc != 0)
            return rc;
        /* RFC 9113 §8.1: trailers MUST NOT include pseudo-headers. */
        if (is_pseudo(&nv[i]))
            return fail(reason, "pseudo-header in trailers");
        rc = check_regular(&nv[i], reason);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int sl_http_check_trailers(const sluice_nv *nv, size_t n)
{
    return sl_http_check_trailers_why(nv, n, NULL);
}
