/* h1.c — HTTP/1.1 codec (RFC 9112): the parser's states, its framing rules,
 * and the writers. Heads are copied into one bounded buffer; content never is. */
#include <string.h>

#include "h1.h"

enum {
    S_HEAD,       /* start line and fields */
    S_LENGTH,     /* Content-Length content */
    S_CLOSE,      /* content until EOF */
    S_CHUNK_LINE, /* chunk-size [ext] CRLF */
    S_CHUNK_DATA,
    S_CHUNK_CRLF, /* the CRLF after chunk data */
    S_TRAILERS,
    S_COMPLETE,   /* COMPLETE is due, whether or not input follows */
    S_TUNNEL,     /* after 101 / 2xx CONNECT: the bytes are not HTTP */
    S_DONE        /* after a close-delimited message */
};

/* Content-Length and chunk totals stay below 2^63 so they fit an off_t. */
#define SL_H1_CL_MAX ((uint64_t)INT64_MAX)

/* ---- errors ------------------------------------------------------------ */

struct sl_h1_err_info {
    int code, status, limit;
    const char *text;
};

static const struct sl_h1_err_info sl_h1_errs[] = {
    {SL_H1_ERR_REQUEST_LINE, 400, 0, "malformed request line"},
    {SL_H1_ERR_METHOD, 400, 0, "invalid method"},
    {SL_H1_ERR_TARGET, 400, 0, "invalid request target"},
    {SL_H1_ERR_VERSION, 400, 0, "malformed HTTP version"},
    {SL_H1_ERR_VERSION_UNSUPPORTED, 505, 0, "HTTP version not supported"},
    {SL_H1_ERR_STATUS_LINE, 400, 0, "malformed status line"},
    {SL_H1_ERR_BARE_CR, 400, 0, "CR not followed by LF"},
    {SL_H1_ERR_BARE_LF, 400, 0, "LF without CR"},
    {SL_H1_ERR_OBS_FOLD, 400, 0, "folded or indented field line"},
    {SL_H1_ERR_HEADER_NAME, 400, 0, "invalid field name"},
    {SL_H1_ERR_HEADER_SPACE, 400, 0, "whitespace before colon"},
    {SL_H1_ERR_NO_COLON, 400, 0, "field line without colon"},
    {SL_H1_ERR_HEADER_VALUE, 400, 0, "control character in field value"},
    {SL_H1_ERR_HOST, 400, 0, "missing, repeated or invalid Host"},
    {SL_H1_ERR_CONTENT_LENGTH, 400, 0, "invalid Content-Length"},
    {SL_H1_ERR_CL_MISMATCH, 400, 0, "differing Content-Length values"},
    {SL_H1_ERR_CL_AND_TE, 400, 0, "Content-Length with Transfer-Encoding"},
    {SL_H1_ERR_TE_INVALID, 400, 0, "invalid Transfer-Encoding"},
    {SL_H1_ERR_TE_CHUNKED_TWICE, 400, 0, "chunked applied twice"},
    {SL_H1_ERR_TE_NOT_LAST, 400, 0, "chunked is not the final coding"},
    {SL_H1_ERR_TE_HTTP10, 400, 0, "Transfer-Encoding in HTTP/1.0"},
    {SL_H1_ERR_TE_UNSUPPORTED, 501, 0, "unsupported transfer coding"},
    {SL_H1_ERR_CHUNK_SIZE, 400, 0, "invalid chunk size"},
    {SL_H1_ERR_CHUNK_OVERFLOW, 400, 0, "chunk size overflow"},
    {SL_H1_ERR_CHUNK_EXT, 400, 0, "invalid chunk extension"},
    {SL_H1_ERR_CHUNK_DATA_END, 400, 0, "chunk data not followed by CRLF"},
    {SL_H1_ERR_TRUNCATED, 400, 0, "connection closed inside a message"},
    {SL_H1_ERR_URI_TOO_LONG, 414, 1, "request line too long"},
    {SL_H1_ERR_LINE_TOO_LONG, 431, 1, "field line too long"},
    {SL_H1_ERR_HEAD_TOO_LARGE, 431, 1, "header section too large"},
    {SL_H1_ERR_TOO_MANY_HEADERS, 431, 1, "too many header fields"},
    {SL_H1_ERR_CHUNK_LINE_TOO_LONG, 400, 1, "chunk-size line too long"},
    {SL_H1_ERR_BODY_TOO_LARGE, 413, 1, "content too large"},
};

static const struct sl_h1_err_info *err_find(int err)
{
    for (size_t i = 0; i < sizeof(sl_h1_errs) / sizeof(sl_h1_errs[0]); i++)
        if (sl_h1_errs[i].code == err)
            return &sl_h1_errs[i];
    return NULL;
}

int sl_h1_error_to_sluice(int err)
{
    const struct sl_h1_err_info *e = err_find(err);
    if (!e)
        return err;
    return e->limit ? SLUICE_ERR_LIMIT : SLUICE_ERR_PROTOCOL;
}

int sl_h1_error_status(int err)
{
    const struct sl_h1_err_info *e = err_find(err);
    return e ? e->status : 500;
}

const char *sl_h1_strerror(int err)
{
    const struct sl_h1_err_info *e = err_find(err);
    return e ? e->text : sluice_strerror(err);
}

/* ---- character classes ------------------------------------------------- */

static int is_ws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* tchar, RFC 9110 §5.6.2 */
static int is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP and HTAB (RFC 9110 §5.5); also reason-phrase (RFC 9112
 * §4), qdtext and quoted-pair once '"' and '\' are handled. */
static int is_field_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* uri-host [":" port] (RFC 3986 §3.2.2): unreserved, sub-delims, ':',
 * IP-literal brackets and pct-encoding. */
static int is_host_char(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("-._~!$&'()*+,;=:[]%", c) != NULL;
}

/* request-target: no whitespace or controls (RFC 9112 §3.2); bytes above
 * 0x7f are passed through as many clients send raw UTF-8. */
static int is_target_char(uint8_t c)
{
    return c > 0x20 && c != 0x7f;
}

static int all_of(const uint8_t *s, size_t n, int (*ok)(uint8_t))
{
    for (size_t i = 0; i < n; i++)
        if (!ok(s[i]))
            return 0;
    return 1;
}

static int token_ok(const uint8_t *s, size_t n)
{
    return n > 0 && all_of(s, n, is_tchar);
}

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* Case-insensitive compare with a lower-case literal. */
static int ieq(const uint8_t *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != (uint8_t)lit[i])
            return 0;
    return 1;
}

static size_t skip_ws(const uint8_t *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

static size_t skip_token(const uint8_t *s, size_t n, size_t i)
{
    while (i < n && is_tchar(s[i]))
        i++;
    return i;
}

/* Next element of a #list (RFC 9110 §5.6.1), OWS trimmed, possibly empty.
 * Returns 0 once the list is exhausted. */
static int list_next(const uint8_t *v, size_t len, size_t *pos, const uint8_t **e,
                     size_t *elen)
{
    if (*pos > len)
        return 0;
    size_t s = *pos, end = s;
    while (end < len && v[end] != ',')
        end++;
    *pos = end + 1;
    s = skip_ws(v, end, s);
    while (end > s && is_ws(v[end - 1]))
        end--;
    *e = v + s;
    *elen = end - s;
    return 1;
}

/* ---- parser set-up ----------------------------------------------------- */

void sl_h1_options_init(sl_h1_options *o)
{
    memset(o, 0, sizeof(*o));
    o->max_head = 65536;
    o->max_line = 8192;
    o->max_headers = 100;
    o->max_chunk_line = 1024;
    o->max_body = UINT64_MAX;
    o->allow_bare_lf = 1;
}

void sl_h1_parser_init(sl_h1_parser *p, int response, const sl_h1_options *opt,
                       const sl_mem *mem)
{
    memset(p, 0, sizeof(*p));
    if (mem)
        p->mem = *mem;
    else
        sl_mem_init(&p->mem, NULL);
    if (opt)
        p->opt = *opt;
    else
        sl_h1_options_init(&p->opt);
    p->response = response != 0;
    p->state = S_HEAD;
}

void sl_h1_parser_free(sl_h1_parser *p)
{
    sl_free(&p->mem, p->buf);
    sl_free(&p->mem, p->refs);
    sl_free(&p->mem, p->nv);
    p->buf = NULL;
    p->refs = NULL;
    p->nv = NULL;
    p->buf_cap = p->buf_len = p->fields_cap = p->nfields = 0;
}

int sl_h1_parser_set_method(sl_h1_parser *p, const uint8_t *method, size_t len)
{
    if (!p->response)
        return SLUICE_ERR_STATE;
    /* Methods are case-sensitive (RFC 9110 §9.1). */
    p->req_head = len == 4 && memcmp(method, "HEAD", 4) == 0;
    p->req_connect = len == 7 && memcmp(method, "CONNECT", 7) == 0;
    return 0;
}

static int buf_reserve(sl_h1_parser *p, size_t need)
{
    return sl_grow(&p->mem, &p->buf, &p->buf_cap, need, 256);
}

static int fields_reserve(sl_h1_parser *p)
{
    if (p->nfields < p->fields_cap)
        return 0;
    size_t cap = p->fields_cap ? p->fields_cap * 2 : 16;
    if (cap > p->opt.max_headers)
        cap = p->opt.max_headers; /* still > nfields: checked by the caller */
    if (cap > SIZE_MAX / sizeof(sluice_nv))
        return SLUICE_ERR_NOMEM;
    sl_h1_ref *r = sl_realloc(&p->mem, p->refs, cap * sizeof(*r));
    if (!r)
        return SLUICE_ERR_NOMEM;
    p->refs = r;
    sluice_nv *nv = sl_realloc(&p->mem, p->nv, cap * sizeof(*nv));
    if (!nv)
        return SLUICE_ERR_NOMEM;
    p->nv = nv;
    p->fields_cap = cap;
    return 0;
}

/* Turn the offsets of the fields read so far into sluice_nv: buf no longer
 * moves until the caller is done with them. */
static void fields_publish(sl_h1_parser *p)
{
    for (size_t i = 0; i < p->nfields; i++) {
        const sl_h1_ref *r = &p->refs[i];
        p->nv[i].name = p->buf + r->name;
        p->nv[i].name_len = r->name_len;
        p->nv[i].value = p->buf + r->value;
        p->nv[i].value_len = r->value_len;
        p->nv[i].flags = 0;
    }
}

/* ---- lines ------------------------------------------------------------- */

/* Copy input up to and including the next LF into buf, at most room bytes.
 * Returns 0 (with *done set when the LF came), 1 when room ran out before
 * an LF: the limit is only hit by a byte that arrives, so the result is the
 * same whatever the split. */
static int take_line(sl_h1_parser *p, const uint8_t *in, size_t len, size_t room,
                     size_t *n, int *done)
{
    size_t avail = len < room ? len : room;
    const uint8_t *lf = memchr(in, '\n', avail);
    size_t take = lf ? (size_t)(lf - in) + 1 : avail;
    if (!lf && avail < len)
        return 1;
    int rc = buf_reserve(p, p->buf_len + take);
    if (rc)
        return rc;
    memcpy(p->buf + p->buf_len, in, take);
    p->buf_len += take;
    *n = take;
    *done = lf != NULL;
    return 0;
}

/* Length of the line just read, without its line end. A CR must end the
 * line (RFC 9112 §2.2: a bare CR is invalid), and strict parts need CRLF. */
static int line_content(const sl_h1_parser *p, int strict, size_t *len)
{
    const uint8_t *l = p->buf + p->line_start;
    size_t n = p->buf_len - p->line_start - 1;
    if (n > 0 && l[n - 1] == '\r')
        n--;
    else if (strict)
        return SL_H1_ERR_BARE_LF;
    if (memchr(l, '\r', n))
        return SL_H1_ERR_BARE_CR;
    *len = n;
    return 0;
}

/* ---- start lines ------------------------------------------------------- */

/* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). */
static int parse_version(const uint8_t *v, size_t n, int *version)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
        v[6] != '.' || v[7] < '0' || v[7] > '9')
        return SL_H1_ERR_VERSION;
    if (v[5] != '1' || v[7] > '1')
        return SL_H1_ERR_VERSION_UNSUPPORTED;
    *version = v[7] == '1' ? 11 : 10;
    return 0;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 §3),
 * single spaces only: splitting on other whitespace is what lets two
 * parsers disagree about a target. */
static int parse_request_line(sl_h1_parser *p, size_t off, size_t len)
{
    const uint8_t *l = p->buf + off;
    const uint8_t *sp = memchr(l, ' ', len);
    if (!sp || sp == l)
        return SL_H1_ERR_REQUEST_LINE;
    size_t mlen = (size_t)(sp - l), t = mlen + 1;
    sp = memchr(l + t, ' ', len - t);
    if (!sp || sp == l + t)
        return SL_H1_ERR_REQUEST_LINE;
    size_t tlen = (size_t)(sp - (l + t)), v = t + tlen + 1;
    if (memchr(l + v, ' ', len - v))
        return SL_H1_ERR_REQUEST_LINE;
    if (!token_ok(l, mlen))
        return SL_H1_ERR_METHOD;
    if (!all_of(l + t, tlen, is_target_char))
        return SL_H1_ERR_TARGET;
    int rc = parse_version(l + v, len - v, &p->m.version);
    if (rc)
        return rc;
    p->m.a_off = off;
    p->m.a_len = mlen;
    p->m.b_off = off + t;
    p->m.b_len = tlen;
    return 0;
}

/* status-line = HTTP-version SP status-code SP [reason-phrase] (RFC 9112
 * §4). The SP after the code is also accepted missing when nothing
 * follows: servers send "HTTP/1.1 200" and the reason carries no meaning. */
static int parse_status_line(sl_h1_parser *p, size_t off, size_t len)
{
    const uint8_t *l = p->buf + off;
    const uint8_t *sp = memchr(l, ' ', len);
    if (!sp)
        return SL_H1_ERR_STATUS_LINE;
    int rc = parse_version(l, (size_t)(sp - l), &p->m.version);
    if (rc)
        return rc;
    size_t c = (size_t)(sp - l) + 1;
    if (len - c < 3)
        return SL_H1_ERR_STATUS_LINE;
    int status = 0;
    for (size_t i = c; i < c + 3; i++) {
        if (l[i] < '0' || l[i] > '9')
            return SL_H1_ERR_STATUS_LINE;
        status = status * 10 + (l[i] - '0');
    }
    if (status < 100 || status > 599) /* RFC 9110 §15: five classes */
        return SL_H1_ERR_STATUS_LINE;
    size_t r = c + 3;
    if (r < len && l[r++] != ' ')
        return SL_H1_ERR_STATUS_LINE;
    if (!all_of(l + r, len - r, is_field_char))
        return SL_H1_ERR_STATUS_LINE;
    p->m.status = status;
    p->m.a_off = off + r;
    p->m.a_len = len - r;
    return 0;
}

/* ---- fields that decide framing ---------------------------------------- */

static int parse_decimal(const uint8_t *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return SL_H1_ERR_CONTENT_LENGTH;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return SL_H1_ERR_CONTENT_LENGTH;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (SL_H1_CL_MAX - d) / 10)
            return SL_H1_ERR_CONTENT_LENGTH;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). A list of identical values
 * ("42, 42", or the field repeated) may be taken as one value; differing
 * values make the framing unknowable (RFC 9112 §6.3 rule 5). */
static int note_content_length(sl_h1_parser *p, const uint8_t *v, size_t len)
{
    size_t pos = 0, elen;
    const uint8_t *e;
    while (list_next(v, len, &pos, &e, &elen)) {
        uint64_t n;
        int rc = parse_decimal(e, elen, &n);
        if (rc)
            return rc;
        if (p->m.cl_seen && n != p->m.cl)
            return SL_H1_ERR_CL_MISMATCH;
        p->m.cl_seen = 1;
        p->m.cl = n;
    }
    return 0;
}

/* One transfer-coding other than chunked: token *( OWS ";" ... ). Only
 * its shape is checked, as such a coding is never decoded here. */
static int note_other_coding(sl_h1_parser *p, const uint8_t *e, size_t n)
{
    size_t t = skip_token(e, n, 0);
    if (t == 0 || ieq(e, t, "chunked"))
        return SL_H1_ERR_TE_INVALID; /* "chunked;x": no such parameter */
    size_t i = skip_ws(e, n, t);
    if (i < n && e[i] != ';')
        return SL_H1_ERR_TE_INVALID;
    p->m.te_other = 1;
    p->m.te_last_chunked = 0;
    return 0;
}

/* Transfer-Encoding = #transfer-coding (RFC 9112 §6.1); repeated fields
 * form one list. chunked must not be applied twice (§7). */
static int note_transfer_encoding(sl_h1_parser *p, const uint8_t *v, size_t len)
{
    size_t pos = 0, elen;
    const uint8_t *e;
    int any = 0;
    while (list_next(v, len, &pos, &e, &elen)) {
        if (elen == 0)
            continue;
        any = 1;
        if (ieq(e, elen, "chunked")) {
            if (p->m.te_chunked)
                return SL_H1_ERR_TE_CHUNKED_TWICE;
            p->m.te_chunked = 1;
            p->m.te_last_chunked = 1;
            continue;
        }
        int rc = note_other_coding(p, e, elen);
        if (rc)
            return rc;
    }
    if (!any)
        return SL_H1_ERR_TE_INVALID;
    p->m.te_seen = 1;
    return 0;
}

/* Connection options (RFC 9110 §7.6.1, RFC 9112 §9.3). */
static void note_connection(sl_h1_parser *p, const uint8_t *v, size_t len)
{
    size_t pos = 0, elen;
    const uint8_t *e;
    while (list_next(v, len, &pos, &e, &elen)) {
        if (ieq(e, elen, "close"))
            p->m.conn_close = 1;
        else if (ieq(e, elen, "keep-alive"))
            p->m.conn_keep_alive = 1;
        else if (ieq(e, elen, "upgrade"))
            p->m.conn_upgrade = 1;
    }
}

/* RFC 9112 §3.2: one Host, with a valid value, else 400. */
static int note_host(sl_h1_parser *p, const uint8_t *v, size_t len, size_t off)
{
    if (++p->m.host_count > 1 || !all_of(v, len, is_host_char))
        return SL_H1_ERR_HOST;
    p->m.host_off = off;
    p->m.host_len = len;
    return 0;
}

static void note_expect(sl_h1_parser *p, const uint8_t *v, size_t len)
{
    size_t pos = 0, elen;
    const uint8_t *e;
    while (list_next(v, len, &pos, &e, &elen))
        if (ieq(e, elen, "100-continue"))
            p->m.expect_continue = 1;
}

static int note_field(sl_h1_parser *p, const uint8_t *name, size_t nlen,
                      const uint8_t *v, size_t vlen, size_t voff)
{
    if (ieq(name, nlen, "content-length"))
        return note_content_length(p, v, vlen);
    if (ieq(name, nlen, "transfer-encoding"))
        return note_transfer_encoding(p, v, vlen);
    if (ieq(name, nlen, "connection")) {
        note_connection(p, v, vlen);
        return 0;
    }
    if (p->response)
        return 0;
    if (ieq(name, nlen, "host"))
        return note_host(p, v, vlen, voff);
    if (ieq(name, nlen, "expect"))
        note_expect(p, v, vlen);
    else if (ieq(name, nlen, "upgrade"))
        p->m.upgrade_seen = 1;
    return 0;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). */
static int parse_field_line(sl_h1_parser *p, size_t off, size_t len, int in_head)
{
    const uint8_t *l = p->buf + off;
    if (is_ws(l[0]))
        return SL_H1_ERR_OBS_FOLD; /* §5.2 obs-fold; §2.2 space after start */
    size_t i = skip_token(l, len, 0);
    if (i == len)
        return SL_H1_ERR_NO_COLON;
    if (is_ws(l[i]))
        return SL_H1_ERR_HEADER_SPACE; /* §5.1: MUST reject with 400 */
    if (l[i] != ':' || i == 0)
        return SL_H1_ERR_HEADER_NAME;
    size_t vs = skip_ws(l, len, i + 1), ve = len;
    while (ve > vs && is_ws(l[ve - 1]))
        ve--;
    if (!all_of(l + vs, ve - vs, is_field_char))
        return SL_H1_ERR_HEADER_VALUE; /* RFC 9110 §5.5: NUL, CR, LF, CTLs */
    if (p->nfields >= p->opt.max_headers)
        return SL_H1_ERR_TOO_MANY_HEADERS;
    int rc = fields_reserve(p);
    if (rc)
        return rc;
    sl_h1_ref *r = &p->refs[p->nfields++];
    r->name = off;
    r->name_len = i;
    r->value = off + vs;
    r->value_len = ve - vs;
    return in_head ? note_field(p, l, i, l + vs, ve - vs, off + vs) : 0;
}

/* ---- end of head: framing (RFC 9112 §6.3) ------------------------------ */

static int request_framing(sl_h1_parser *p, sl_h1_head *h)
{
    const sl_h1_msg_state *m = &p->m;
    if (m->te_seen) {
        if (m->cl_seen)
            return SL_H1_ERR_CL_AND_TE; /* rule 3: we reject, not strip */
        if (m->version == 10)
            return SL_H1_ERR_TE_HTTP10; /* §6.1: framing is faulty */
        if (m->te_chunked && !m->te_last_chunked)
            return SL_H1_ERR_TE_NOT_LAST; /* rule 4: MUST 400 */
        if (m->te_other)
            return SL_H1_ERR_TE_UNSUPPORTED; /* §6.1: SHOULD 501 */
        h->body = SL_H1_BODY_CHUNKED;
    } else if (m->cl_seen) {
        h->body = SL_H1_BODY_LENGTH; /* rule 6 */
    } else {
        h->body = SL_H1_BODY_NONE; /* rule 7 */
    }
    if (m->version == 11 && m->host_count == 0)
        return SL_H1_ERR_HOST; /* §3.2 */
    return 0;
}

static int response_framing(sl_h1_parser *p, sl_h1_head *h)
{
    const sl_h1_msg_state *m = &p->m;
    int st = m->status;
    if (st == 101 || (p->req_connect && st / 100 == 2))
        h->body = SL_H1_BODY_TUNNEL; /* rule 2; RFC 9110 §15.2.2 */
    else if (p->req_head || st / 100 == 1 || st == 204 || st == 304)
        h->body = SL_H1_BODY_NONE; /* rule 1 */
    else if (m->te_seen) {
        if (m->version == 10)
            return SL_H1_ERR_TE_HTTP10; /* §6.1 */
        /* rule 3: TE overrides CL; rule 4: not chunked-final reads to close */
        h->body = m->te_last_chunked ? SL_H1_BODY_CHUNKED : SL_H1_BODY_CLOSE;
    } else if (m->cl_seen)
        h->body = SL_H1_BODY_LENGTH;
    else
        h->body = SL_H1_BODY_CLOSE; /* rule 8 */
    return 0;
}

static void fill_head(sl_h1_parser *p, sl_h1_head *h)
{
    const sl_h1_msg_state *m = &p->m;
    h->version = m->version;
    if (p->response) {
        h->status = m->status;
        h->reason = p->buf + m->a_off;
        h->reason_len = m->a_len;
    } else {
        h->method = p->buf + m->a_off;
        h->method_len = m->a_len;
        h->target = p->buf + m->b_off;
        h->target_len = m->b_len;
        if (m->host_count) {
            h->host = p->buf + m->host_off;
            h->host_len = m->host_len;
        }
        h->expect_continue = m->version == 11 && m->expect_continue; /* RFC 9110 §10.1.1 */
        h->upgrade = m->upgrade_seen && m->conn_upgrade;
    }
    fields_publish(p);
    h->fields = p->nv;
    h->nfields = p->nfields;
    if (h->body == SL_H1_BODY_LENGTH)
        h->content_length = m->cl;
    /* RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with keep-alive. */
    h->keep_alive = !m->conn_close && (m->version == 11 || m->conn_keep_alive);
    if (h->body == SL_H1_BODY_CLOSE || h->body == SL_H1_BODY_TUNNEL)
        h->keep_alive = 0;
}

static int finish_head(sl_h1_parser *p, sl_h1_event *ev)
{
    sl_h1_head *h = &p->head;
    memset(h, 0, sizeof(*h));
    int rc = p->response ? response_framing(p, h) : request_framing(p, h);
    if (rc)
        return rc;
    if (h->body == SL_H1_BODY_LENGTH && p->m.cl > p->opt.max_body)
        return SL_H1_ERR_BODY_TOO_LARGE;
    fill_head(p, h);
    ev->type = SL_H1_EV_HEAD;
    ev->head = h;
    /* buf is reused from the next call on; its bytes stay until then. */
    p->buf_len = p->line_start = 0;
    p->body_total = 0;
    p->remaining = h->content_length;
    switch (h->body) {
    case SL_H1_BODY_LENGTH:
        p->state = p->remaining ? S_LENGTH : S_COMPLETE;
        break;
    case SL_H1_BODY_CHUNKED: p->state = S_CHUNK_LINE; break;
    case SL_H1_BODY_CLOSE: p->state = S_CLOSE; break;
    default: p->state = S_COMPLETE; break;
    }
    return 0;
}

static int finish_trailers(sl_h1_parser *p, sl_h1_event *ev)
{
    p->state = S_COMPLETE;
    if (p->nfields == 0)
        return 0;
    fields_publish(p);
    ev->type = SL_H1_EV_TRAILERS;
    ev->fields = p->nv;
    ev->nfields = p->nfields;
    return 0;
}

/* ---- head and trailer sections ----------------------------------------- */

static int end_of_line(sl_h1_parser *p, sl_h1_event *ev)
{
    int trailers = p->state == S_TRAILERS;
    size_t len, off = p->line_start;
    /* Trailers sit inside the chunked framing, which is strict. */
    int rc = line_content(p, trailers || !p->opt.allow_bare_lf, &len);
    if (rc)
        return rc;
    p->line_start = p->buf_len;
    if (len == 0) {
        if (trailers)
            return finish_trailers(p, ev);
        if (!p->m.seen_start)
            return 0; /* RFC 9112 §2.2: empty lines before a request */
        return finish_head(p, ev);
    }
    if (!trailers && !p->m.seen_start) {
        p->m.seen_start = 1;
        if (p->response)
            return parse_status_line(p, off, len);
        return parse_request_line(p, off, len);
    }
    return parse_field_line(p, off, len, !trailers);
}

static int limit_error(const sl_h1_parser *p, int line_limit)
{
    if (p->state == S_HEAD && !p->response && !p->m.seen_start)
        return SL_H1_ERR_URI_TOO_LONG;
    return line_limit ? SL_H1_ERR_LINE_TOO_LONG : SL_H1_ERR_HEAD_TOO_LARGE;
}

static int step_lines(sl_h1_parser *p, const uint8_t *in, size_t len, size_t *n,
                      sl_h1_event *ev)
{
    size_t line = p->buf_len - p->line_start;
    size_t max_line = p->opt.max_line, max_head = p->opt.max_head;
    size_t room_line = max_line > line ? max_line - line : 0;
    size_t room_head = max_head > p->buf_len ? max_head - p->buf_len : 0;
    int done = 0;
    int rc = take_line(p, in, len, room_line < room_head ? room_line : room_head,
                       n, &done);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return limit_error(p, room_line <= room_head);
    return done ? end_of_line(p, ev) : 0;
}

/* ---- chunked coding (RFC 9112 §7.1) ------------------------------------ */

/* quoted-string from e[i] == '"'; the index after it, or 0 if malformed. */
static size_t skip_quoted(const uint8_t *e, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (e[i] == '"')
            return i + 1;
        if (e[i] == '\\' && ++i == n)
            return 0;
        if (!is_field_char(e[i]))
            return 0;
    }
    return 0;
}

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
 * Anything else right after the size is junk in the size itself. */
static int parse_chunk_ext(const uint8_t *e, size_t n)
{
    int first = 1;
    size_t i = 0;
    while (i < n) {
        i = skip_ws(e, n, i);
        if (i == n || e[i] != ';')
            return first ? SL_H1_ERR_CHUNK_SIZE : SL_H1_ERR_CHUNK_EXT;
        first = 0;
        i = skip_ws(e, n, i + 1);
        size_t t = skip_token(e, n, i);
        if (t == i)
            return SL_H1_ERR_CHUNK_EXT;
        i = t;
        size_t eq = skip_ws(e, n, t);
        if (eq == n || e[eq] != '=')
            continue;
        i = skip_ws(e, n, eq + 1);
        t = (i < n && e[i] == '"') ? skip_quoted(e, n, i) : skip_token(e, n, i);
        if (t <= i)
            return SL_H1_ERR_CHUNK_EXT;
        i = t;
    }
    return 0;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* chunk-size [ chunk-ext ] CRLF, l holding the line with its LF. */
static int parse_chunk_line(const uint8_t *l, size_t len, uint64_t *size)
{
    if (len < 2 || l[len - 2] != '\r')
        return SL_H1_ERR_BARE_LF;
    size_t n = len - 2, i = 0;
    if (memchr(l, '\r', n))
        return SL_H1_ERR_BARE_CR;
    uint64_t v = 0;
    int d;
    for (; i < n && (d = hex_value(l[i])) >= 0; i++) {
        if (v > (SL_H1_CL_MAX >> 4))
            return SL_H1_ERR_CHUNK_OVERFLOW;
        v = (v << 4) | (uint64_t)d;
    }
    if (i == 0)
        return SL_H1_ERR_CHUNK_SIZE; /* no "0x", no sign, no empty size */
    *size = v;
    return parse_chunk_ext(l + i, n - i);
}

static int step_chunk_line(sl_h1_parser *p, const uint8_t *in, size_t len, size_t *n)
{
    size_t max = p->opt.max_chunk_line;
    size_t room = max > p->buf_len ? max - p->buf_len : 0;
    int done = 0;
    int rc = take_line(p, in, len, room, n, &done);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return SL_H1_ERR_CHUNK_LINE_TOO_LONG;
    if (!done)
        return 0;
    uint64_t size = 0;
    rc = parse_chunk_line(p->buf, p->buf_len, &size);
    p->buf_len = p->line_start = 0;
    if (rc)
        return rc;
    if (size == 0) {
        p->state = S_TRAILERS; /* last-chunk: trailer section follows */
        p->nfields = 0;
        return 0;
    }
    if (size > p->opt.max_body - p->body_total || size > SL_H1_CL_MAX - p->body_total)
        return SL_H1_ERR_BODY_TOO_LARGE;
    p->body_total += size;
    p->remaining = size;
    p->state = S_CHUNK_DATA;
    return 0;
}

static int step_chunk_crlf(sl_h1_parser *p, const uint8_t *in, size_t len, size_t *n)
{
    size_t i = 0;
    if (!p->chunk_cr) {
        if (in[0] != '\r')
            return in[0] == '\n' ? SL_H1_ERR_BARE_LF : SL_H1_ERR_CHUNK_DATA_END;
        p->chunk_cr = 1;
        i = 1;
        if (len == 1) {
            *n = 1;
            return 0;
        }
    }
    if (in[i] != '\n')
        return SL_H1_ERR_BARE_CR;
    p->chunk_cr = 0;
    p->state = S_CHUNK_LINE;
    *n = i + 1;
    return 0;
}

/* ---- content ----------------------------------------------------------- */

static void data_event(sl_h1_event *ev, const uint8_t *in, size_t len)
{
    ev->type = SL_H1_EV_DATA;
    ev->data = in;
    ev->len = len;
}

/* Content-Length content or one chunk's data. */
static int step_counted(sl_h1_parser *p, const uint8_t *in, size_t len, size_t *n,
                        sl_h1_event *ev)
{
    size_t take = len;
    if ((uint64_t)take > p->remaining)
        take = (size_t)p->remaining;
    p->remaining -= take;
    *n = take;
    data_event(ev, in, take);
    if (p->remaining == 0)
        p->state = p->state == S_LENGTH ? S_COMPLETE : S_CHUNK_CRLF;
    return 0;
}

/* Close-delimited content: delivered up to max_body exactly, so the error
 * comes after the same bytes whatever the split. */
static int step_close(sl_h1_parser *p, const uint8_t *in, size_t len, size_t *n,
                      sl_h1_event *ev)
{
    uint64_t room = p->opt.max_body - p->body_total;
    size_t take = (uint64_t)len > room ? (size_t)room : len;
    if (take == 0)
        return SL_H1_ERR_BODY_TOO_LARGE;
    p->body_total += take;
    *n = take;
    data_event(ev, in, take);
    return 0;
}

static void reset_message(sl_h1_parser *p)
{
    const sl_h1_head *h = &p->head;
    int interim = p->response && h->status / 100 == 1 && h->body != SL_H1_BODY_TUNNEL;
    if (p->response && !interim)
        p->req_head = p->req_connect = 0; /* the request is answered */
    memset(&p->m, 0, sizeof(p->m));
    p->buf_len = p->line_start = 0;
    p->nfields = 0;
    p->chunk_cr = 0;
    if (h->body == SL_H1_BODY_TUNNEL)
        p->state = S_TUNNEL;
    else if (h->body == SL_H1_BODY_CLOSE)
        p->state = S_DONE;
    else
        p->state = S_HEAD;
}

static int step_complete(sl_h1_parser *p, sl_h1_event *ev)
{
    ev->type = SL_H1_EV_COMPLETE;
    reset_message(p);
    return 0;
}

static int step(sl_h1_parser *p, const uint8_t *in, size_t len, size_t *n,
                sl_h1_event *ev)
{
    switch (p->state) {
    case S_HEAD:
    case S_TRAILERS: return step_lines(p, in, len, n, ev);
    case S_LENGTH:
    case S_CHUNK_DATA: return step_counted(p, in, len, n, ev);
    case S_CLOSE: return step_close(p, in, len, n, ev);
    case S_CHUNK_LINE: return step_chunk_line(p, in, len, n);
    case S_CHUNK_CRLF: return step_chunk_crlf(p, in, len, n);
    case S_COMPLETE: return step_complete(p, ev);
    }
    return SLUICE_ERR_STATE;
}

int sl_h1_parse(sl_h1_parser *p, const uint8_t *in, size_t len, size_t *consumed,
                sl_h1_event *ev)
{
    size_t off = 0;
    int rc = 0;
    memset(ev, 0, sizeof(*ev));
    *consumed = 0;
    if (p->err)
        return p->err;
    if (p->state == S_TUNNEL || p->state == S_DONE)
        return len ? SLUICE_ERR_STATE : 0;
    /* Every step consumes input, changes state, or fails. */
    while (ev->type == SL_H1_EV_NONE && (off < len || p->state == S_COMPLETE)) {
        size_t n = 0;
        rc = step(p, off < len ? in + off : NULL, len - off, &n, ev);
        off += n;
        if (rc < 0) {
            p->err = rc;
            break;
        }
    }
    *consumed = off;
    return rc;
}

int sl_h1_parse_eof(sl_h1_parser *p, sl_h1_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (p->err)
        return p->err;
    switch (p->state) {
    case S_HEAD:
        if (!p->m.seen_start && p->line_start == p->buf_len)
            return 0; /* closed between messages */
        break;
    case S_CLOSE: /* RFC 9112 §6.3 rule 8: the close ends the content */
    case S_COMPLETE: return step_complete(p, ev);
    case S_TUNNEL:
    case S_DONE: return 0;
    default: break;
    }
    p->err = SL_H1_ERR_TRUNCATED;
    return p->err;
}

/* ---- serializer -------------------------------------------------------- */

static int value_ok(const uint8_t *s, size_t n)
{
    return all_of(s, n, is_field_char);
}

static int add_size(size_t *total, size_t n)
{
    if (n > SIZE_MAX - *total)
        return SLUICE_ERR_INVAL;
    *total += n;
    return 0;
}

/* Bytes of "name: value\r\n" for each field; SLUICE_ERR_INVAL if one could
 * break out of its line. */
static int fields_size(const sluice_nv *f, size_t n, size_t *total)
{
    for (size_t i = 0; i < n; i++) {
        if (!token_ok(f[i].name, f[i].name_len) || !value_ok(f[i].value, f[i].value_len))
            return SLUICE_ERR_INVAL;
        if (add_size(total, f[i].name_len) || add_size(total, f[i].value_len) ||
            add_size(total, 4))
            return SLUICE_ERR_INVAL;
    }
    return 0;
}

static uint8_t *put(uint8_t *o, const void *s, size_t n)
{
    if (n)
        memcpy(o, s, n);
    return o + n;
}

static uint8_t *put_fields(uint8_t *o, const sluice_nv *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        o = put(o, f[i].name, f[i].name_len);
        o = put(o, ": ", 2);
        o = put(o, f[i].value, f[i].value_len);
        o = put(o, "\r\n", 2);
    }
    return put(o, "\r\n", 2);
}

/* Size check shared by the writers: nothing is written when it fails. */
static int fits(size_t need, size_t cap, size_t *out_len)
{
    *out_len = need;
    return need > cap ? SLUICE_ERR_NOBUF : 0;
}

int sl_h1_write_request_head(const uint8_t *method, size_t method_len,
                             const uint8_t *target, size_t target_len,
                             const uint8_t *host, size_t host_len,
                             const sluice_nv *fields, size_t n, uint8_t *out,
                             size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (!token_ok(method, method_len) || target_len == 0 ||
        !all_of(target, target_len, is_target_char) ||
        (host && !all_of(host, host_len, is_host_char)))
        return SLUICE_ERR_INVAL;
    size_t need = 2; /* the empty line */
    if (add_size(&need, method_len) || add_size(&need, target_len) ||
        add_size(&need, 12) /* " " and " HTTP/1.1\r\n" */ ||
        (host && (add_size(&need, host_len) || add_size(&need, 8))) ||
        fields_size(fields, n, &need))
        return SLUICE_ERR_INVAL;
    int rc = fits(need, cap, out_len);
    if (rc)
        return rc;
    uint8_t *o = put(out, method, method_len);
    o = put(o, " ", 1);
    o = put(o, target, target_len);
    o = put(o, " HTTP/1.1\r\n", 11);
    if (host) {
        o = put(o, "Host: ", 6);
        o = put(o, host, host_len);
        o = put(o, "\r\n", 2);
    }
    put_fields(o, fields, n);
    return 0;
}

int sl_h1_write_response_head(int status, const uint8_t *reason, size_t reason_len,
                              const sluice_nv *fields, size_t n, uint8_t *out,
                              size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (status < 100 || status > 599)
        return SLUICE_ERR_INVAL;
    if (!reason) {
        reason = (const uint8_t *)sl_h1_reason(status);
        reason_len = strlen((const char *)reason);
    }
    if (!value_ok(reason, reason_len))
        return SLUICE_ERR_INVAL;
    size_t need = sizeof("HTTP/1.1 200 \r\n\r\n") - 1;
    if (add_size(&need, reason_len) || fields_size(fields, n, &need))
        return SLUICE_ERR_INVAL;
    int rc = fits(need, cap, out_len);
    if (rc)
        return rc;
    uint8_t code[4] = {(uint8_t)('0' + status / 100), (uint8_t)('0' + status / 10 % 10),
                       (uint8_t)('0' + status % 10), ' '};
    uint8_t *o = put(out, "HTTP/1.1 ", 9);
    o = put(o, code, 4);
    o = put(o, reason, reason_len);
    o = put(o, "\r\n", 2);
    put_fields(o, fields, n);
    return 0;
}

int sl_h1_write_chunk_header(uint64_t size, uint8_t *out, size_t cap, size_t *out_len)
{
    static const char hex[] = "0123456789abcdef";
    *out_len = 0;
    if (size == 0)
        return SLUICE_ERR_INVAL; /* a zero size is the last-chunk */
    size_t digits = 0;
    for (uint64_t v = size; v; v >>= 4)
        digits++;
    int rc = fits(digits + 2, cap, out_len);
    if (rc)
        return rc;
    for (size_t i = digits; i > 0; i--, size >>= 4)
        out[i - 1] = (uint8_t)hex[size & 0xf];
    out[digits] = '\r';
    out[digits + 1] = '\n';
    return 0;
}

int sl_h1_write_last_chunk(const sluice_nv *trailers, size_t n, uint8_t *out,
                           size_t cap, size_t *out_len)
{
    size_t need = 5; /* "0\r\n" ... "\r\n" */
    *out_len = 0;
    if (fields_size(trailers, n, &need))
        return SLUICE_ERR_INVAL;
    int rc = fits(need, cap, out_len);
    if (rc)
        return rc;
    put_fields(put(out, "0\r\n", 3), trailers, n);
    return 0;
}

const char *sl_h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "";
}
