/* test_http.c — HTTP/2 message validation (plugin/core/http.c): one case
 * per rule of RFC 9113 §8.1–8.3 and §8.5, plus typical valid messages. */
#include "t.h"
#include "http.h"

#define NV(n, v)                                                               \
    { (const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1,               \
      sizeof(v) - 1, 0 }
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The list must be a malformed request, rejected for the reason given. */
#define REQ_BAD(list, flags, why)                                              \
    do {                                                                       \
        sl_http_request r_;                                                    \
        CHECK_INT(sl_http_check_request((list), COUNT(list), (flags), &r_),    \
                  SLUICE_ERR_PROTOCOL);                                        \
        CHECK(r_.reason != NULL);                                              \
        CHECK_STR(r_.reason, (why));                                           \
    } while (0)

#define REQ_OK(list, flags, r)                                                 \
    do {                                                                       \
        int rc_ = sl_http_check_request((list), COUNT(list), (flags), (r));    \
        if (rc_ != 0)                                                          \
            fprintf(stderr, "reason: %s\n", (r)->reason);                      \
        CHECK_INT(rc_, 0);                                                     \
        CHECK((r)->reason == NULL);                                            \
    } while (0)

#define RES_BAD(list, why)                                                     \
    do {                                                                       \
        sl_http_response s_;                                                   \
        CHECK_INT(sl_http_check_response((list), COUNT(list), &s_),            \
                  SLUICE_ERR_PROTOCOL);                                        \
        CHECK(s_.reason != NULL);                                              \
        CHECK_STR(s_.reason, (why));                                           \
    } while (0)

#define FIELD_BAD(name, value, why)                                            \
    do {                                                                       \
        sluice_nv f_ = NV(name, value);                                        \
        const char *w_ = NULL;                                                 \
        CHECK_INT(sl_http_check_field(&f_), SLUICE_ERR_PROTOCOL);              \
        CHECK_INT(sl_http_check_field_why(&f_, &w_), SLUICE_ERR_PROTOCOL);     \
        CHECK(w_ != NULL);                                                     \
        CHECK_STR(w_, (why));                                                  \
    } while (0)

#define FIELD_OK(name, value)                                                  \
    do {                                                                       \
        sluice_nv f_ = NV(name, value);                                        \
        const char *w_ = "unset";                                              \
        CHECK_INT(sl_http_check_field_why(&f_, &w_), 0);                       \
        CHECK(w_ == NULL);                                                     \
    } while (0)

/* The pseudo-headers of a plain GET, to build requests from. */
#define GET_PSEUDO                                                             \
    NV(":method", "GET"), NV(":scheme", "https"),                              \
        NV(":authority", "example.com"), NV(":path", "/")

#define CL_BAD(s)                                                              \
    do {                                                                       \
        int64_t v_ = 42;                                                       \
        CHECK_INT(sl_http_parse_content_length((const uint8_t *)(s),           \
                                               sizeof(s) - 1, &v_),            \
                  SLUICE_ERR_PROTOCOL);                                        \
        CHECK_INT(v_, 42);                                                     \
    } while (0)

#define CL_OK(s, want)                                                         \
    do {                                                                       \
        int64_t v_ = -7;                                                       \
        CHECK_INT(sl_http_parse_content_length((const uint8_t *)(s),           \
                                               sizeof(s) - 1, &v_),            \
                  0);                                                          \
        CHECK(v_ == (int64_t)(want));                                          \
    } while (0)

/* ---- valid typical messages --------------------------------------------- */

TEST(browser_get_request_passes)
{
    static const sluice_nv h[] = {
        NV(":method", "GET"),
        NV(":authority", "www.example.com"),
        NV(":scheme", "https"),
        NV(":path", "/index.html?q=a%20b&x=1#frag"),
        NV("sec-ch-ua", "\"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\""),
        NV("sec-ch-ua-mobile", "?0"),
        NV("upgrade-insecure-requests", "1"),
        NV("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
        NV("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
        NV("accept-encoding", "gzip, deflate, br, zstd"),
        NV("accept-language", "en-US,en;q=0.9"),
        NV("cookie", "a=1"),
        NV("priority", "u=0, i"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK_MEM(r.method, r.method_len, "GET", 3);
    CHECK_MEM(r.scheme, r.scheme_len, "https", 5);
    CHECK_MEM(r.authority, r.authority_len, "www.example.com", 15);
    CHECK_MEM(r.path, r.path_len, "/index.html?q=a%20b&x=1#frag", 28);
    CHECK(r.protocol == NULL);
    CHECK(r.host == NULL);
    CHECK_INT(r.content_length, -1);
    CHECK_INT(r.is_connect, 0);
    CHECK_INT(r.is_head, 0);
    CHECK_INT(r.expect_trailers, 0);
    CHECK_MEM(r.priority, r.priority_len, "u=0, i", 6);
    CHECK_INT(r.priority_multiple, 0);
}

TEST(post_request_with_body_passes)
{
    static const sluice_nv h[] = {
        NV(":method", "POST"), NV(":scheme", "http"),
        NV(":authority", "api.example.com:8080"), NV(":path", "/v1/items"),
        NV("content-type", "application/json"), NV("content-length", "1234"),
        NV("te", "trailers"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK_INT(r.content_length, 1234);
    CHECK_INT(r.expect_trailers, 1);
    CHECK(r.priority == NULL);
}

TEST(head_request_sets_is_head)
{
    static const sluice_nv h[] = {
        NV(":method", "HEAD"), NV(":scheme", "https"), NV(":path", "/a"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK_INT(r.is_head, 1);
    CHECK_INT(r.is_connect, 0);
    CHECK(r.authority == NULL); /* :authority is optional (§8.3.1) */
}

TEST(method_is_case_sensitive)
{
    /* "head" is a different (extension) method than HEAD (RFC 9110 §9.1). */
    static const sluice_nv h[] = {
        NV(":method", "head"), NV(":scheme", "https"), NV(":path", "/"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK_INT(r.is_head, 0);
}

TEST(options_asterisk_passes)
{
    static const sluice_nv h[] = {
        NV(":method", "OPTIONS"), NV(":scheme", "https"),
        NV(":authority", "example.com"), NV(":path", "*"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK_MEM(r.path, r.path_len, "*", 1);
}

TEST(connect_request_passes)
{
    static const sluice_nv h[] = {
        NV(":method", "CONNECT"), NV(":authority", "example.com:443"),
        NV("proxy-authorization", "Basic dXNlcjpwYXNz"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK_INT(r.is_connect, 1);
    CHECK(r.scheme == NULL);
    CHECK(r.path == NULL);
    CHECK_MEM(r.authority, r.authority_len, "example.com:443", 15);
}

TEST(connect_ipv6_literal_passes)
{
    static const sluice_nv h[] = {
        NV(":method", "CONNECT"), NV(":authority", "[2001:db8::1]:8443"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK_INT(r.is_connect, 1);
}

TEST(extended_connect_passes)
{
    static const sluice_nv h[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"),
        NV(":scheme", "https"), NV(":path", "/chat?room=1"),
        NV(":authority", "chat.example.com"),
        NV("sec-websocket-version", "13"), NV("origin", "https://example.com"),
    };
    sl_http_request r;
    REQ_OK(h, SL_HTTP_ALLOW_CONNECT_PROTOCOL, &r);
    CHECK_INT(r.is_connect, 1);
    CHECK_MEM(r.protocol, r.protocol_len, "websocket", 9);
    CHECK_MEM(r.path, r.path_len, "/chat?room=1", 12);
}

TEST(non_http_scheme_path_is_free_form)
{
    /* The origin-form rule of §8.3.1 is for http and https only. */
    static const sluice_nv h[] = {
        NV(":method", "GET"), NV(":scheme", "urn"), NV(":path", "isbn:0451"),
        NV(":authority", "user@host"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
}

TEST(browser_response_passes)
{
    static const sluice_nv h[] = {
        NV(":status", "200"),
        NV("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
        NV("content-type", "text/html; charset=utf-8"),
        NV("content-length", "5120"),
        NV("cache-control", "max-age=3600, public"),
        NV("set-cookie", "id=a3fWa; Secure; HttpOnly"),
        NV("set-cookie", "lang=en; Path=/"),
        NV("priority", "u=2"),
        NV("vary", "accept-encoding"),
    };
    sl_http_response s;
    CHECK_INT(sl_http_check_response(h, COUNT(h), &s), 0);
    CHECK(s.reason == NULL);
    CHECK_INT(s.status, 200);
    CHECK_INT(s.content_length, 5120);
    CHECK_MEM(s.priority, s.priority_len, "u=2", 3);
    CHECK_INT(s.priority_multiple, 0);
}

TEST(informational_responses_pass)
{
    static const sluice_nv eh[] = {
        NV(":status", "103"),
        NV("link", "</style.css>; rel=preload; as=style"),
    };
    static const sluice_nv cont[] = {NV(":status", "100")};
    static const sluice_nv nc[] = {NV(":status", "204"),
                                   NV("content-length", "0")};
    static const sluice_nv nm[] = {NV(":status", "304"),
                                   NV("content-length", "99")};
    sl_http_response s;
    CHECK_INT(sl_http_check_response(eh, COUNT(eh), &s), 0);
    CHECK_INT(s.status, 103);
    CHECK_INT(s.content_length, -1);
    CHECK_INT(sl_http_check_response(cont, COUNT(cont), &s), 0);
    CHECK_INT(s.status, 100);
    CHECK_INT(sl_http_check_response(nc, COUNT(nc), &s), 0);
    CHECK_INT(s.content_length, 0);
    /* 304 may state the length the 200 would have had (RFC 9110 §8.6). */
    CHECK_INT(sl_http_check_response(nm, COUNT(nm), &s), 0);
    CHECK_INT(s.content_length, 99);
}

TEST(status_bounds_pass)
{
    static const sluice_nv lo[] = {NV(":status", "100")};
    static const sluice_nv hi[] = {NV(":status", "599")};
    sl_http_response s;
    CHECK_INT(sl_http_check_response(lo, 1, &s), 0);
    CHECK_INT(s.status, 100);
    CHECK_INT(sl_http_check_response(hi, 1, &s), 0);
    CHECK_INT(s.status, 599);
}

TEST(trailers_pass)
{
    static const sluice_nv t[] = {
        NV("grpc-status", "0"), NV("grpc-message", ""),
        NV("server-timing", "db;dur=53"), NV("te", "trailers"),
    };
    const char *why = "unset";
    CHECK_INT(sl_http_check_trailers(t, COUNT(t)), 0);
    CHECK_INT(sl_http_check_trailers_why(t, COUNT(t), &why), 0);
    CHECK(why == NULL);
    CHECK_INT(sl_http_check_trailers(NULL, 0), 0);
}

/* ---- RFC 9113 §8.2.1: field names --------------------------------------- */

TEST(field_valid_names_pass)
{
    FIELD_OK("x-custom_1.2", "v");
    FIELD_OK("!#$%&'*+-.^_`|~0az9", "v"); /* every tchar symbol */
    FIELD_OK(":path", "/");
    FIELD_OK("x", "");
}

TEST(field_name_empty)
{
    FIELD_BAD("", "v", "empty field name");
}

TEST(field_name_uppercase)
{
    FIELD_BAD("Content-Type", "text/plain", "uppercase in field name");
    FIELD_BAD("x-Z", "v", "uppercase in field name");
    FIELD_BAD(":Path", "/", "uppercase in field name");
}

TEST(field_name_control_or_space)
{
    FIELD_BAD("a b", "v", "control character or space in field name");
    FIELD_BAD("a\tb", "v", "control character or space in field name");
    FIELD_BAD("a\0b", "v", "control character or space in field name");
    FIELD_BAD("a\x1f", "v", "control character or space in field name");
    FIELD_BAD("a\r\nb", "v", "control character or space in field name");
}

TEST(field_name_del_or_non_ascii)
{
    FIELD_BAD("a\x7f", "v", "DEL or non-ASCII byte in field name");
    FIELD_BAD("\x80x", "v", "DEL or non-ASCII byte in field name");
    FIELD_BAD("caf\xc3\xa9", "v", "DEL or non-ASCII byte in field name");
    FIELD_BAD("\xff", "v", "DEL or non-ASCII byte in field name");
}

TEST(field_name_colon_not_first)
{
    FIELD_BAD("a:b", "v", "colon in field name");
    FIELD_BAD("host:", "v", "colon in field name");
    FIELD_BAD("::path", "/", "colon in field name");
}

TEST(field_name_not_token)
{
    static const char *const bad[] = {"a/b", "a\"b", "a(b", "a)b", "a,b",
                                      "a;b", "a<b", "a=b", "a>b", "a?b",
                                      "a@b", "a[b", "a\\b", "a]b", "a{b",
                                      "a}b"};
    for (size_t i = 0; i < COUNT(bad); i++) {
        sluice_nv f = {(const uint8_t *)bad[i], (const uint8_t *)"v",
                       strlen(bad[i]), 1, 0};
        const char *why = NULL;
        CHECK_INT(sl_http_check_field_why(&f, &why), SLUICE_ERR_PROTOCOL);
        CHECK_STR(why, "invalid character in field name");
    }
}

TEST(field_name_rule_in_messages)
{
    static const sluice_nv req[] = {GET_PSEUDO, NV("User-Agent", "x")};
    static const sluice_nv res[] = {NV(":status", "200"), NV("a b", "x")};
    static const sluice_nv tr[] = {NV("x-\x80", "1")};
    const char *why = NULL;
    REQ_BAD(req, 0, "uppercase in field name");
    RES_BAD(res, "control character or space in field name");
    CHECK_INT(sl_http_check_trailers_why(tr, 1, &why), SLUICE_ERR_PROTOCOL);
    CHECK_STR(why, "DEL or non-ASCII byte in field name");
}

/* ---- RFC 9113 §8.2.1: field values -------------------------------------- */

TEST(field_value_nul_cr_lf)
{
    FIELD_BAD("x", "a\0b", "NUL, CR or LF in field value");
    FIELD_BAD("x", "a\rb", "NUL, CR or LF in field value");
    FIELD_BAD("x", "a\nb", "NUL, CR or LF in field value");
    FIELD_BAD("x", "a\r\nevil: 1", "NUL, CR or LF in field value");
    FIELD_BAD(":path", "/a\r\n", "NUL, CR or LF in field value");
}

TEST(field_value_leading_or_trailing_whitespace)
{
    FIELD_BAD("x", " a", "leading or trailing whitespace in field value");
    FIELD_BAD("x", "a ", "leading or trailing whitespace in field value");
    FIELD_BAD("x", "\ta", "leading or trailing whitespace in field value");
    FIELD_BAD("x", "a\t", "leading or trailing whitespace in field value");
    FIELD_BAD("x", " ", "leading or trailing whitespace in field value");
    FIELD_BAD(":method", "GET ", "leading or trailing whitespace in field value");
}

TEST(field_value_inner_whitespace_and_obs_text_pass)
{
    /* Only NUL, CR and LF are forbidden anywhere (§8.2.1); SP and HTAB
     * inside, and obs-text (RFC 9110 §5.5), are fine. */
    FIELD_OK("x", "a b\tc");
    FIELD_OK("x", "caf\xc3\xa9");
    FIELD_OK("x", "a\x01z");
}

TEST(field_value_rule_in_messages)
{
    static const sluice_nv req[] = {GET_PSEUDO, NV("x", "v ")};
    static const sluice_nv res[] = {NV(":status", "200"), NV("x", "a\nb")};
    static const sluice_nv tr[] = {NV("x", "\0")};
    REQ_BAD(req, 0, "leading or trailing whitespace in field value");
    RES_BAD(res, "NUL, CR or LF in field value");
    CHECK_INT(sl_http_check_trailers(tr, 1), SLUICE_ERR_PROTOCOL);
}

TEST(field_null_value_pointer_when_empty)
{
    /* An empty value may come as NULL; a present field still reads back
     * as non-NULL. */
    sluice_nv h[] = {GET_PSEUDO, NV("priority", "")};
    sl_http_request r;
    h[4].value = NULL;
    REQ_OK(h, 0, &r);
    CHECK(r.priority != NULL);
    CHECK_INT(r.priority_len, 0);
}

/* ---- RFC 9113 §8.2.2: connection-specific fields ------------------------ */

TEST(connection_specific_fields_rejected)
{
    static const char *const names[] = {"connection", "keep-alive",
                                        "proxy-connection",
                                        "transfer-encoding", "upgrade"};
    char want[80];
    for (size_t i = 0; i < COUNT(names); i++) {
        sluice_nv req[] = {GET_PSEUDO, NV("x", "1")};
        sluice_nv res[] = {NV(":status", "200"), NV("x", "1")};
        sluice_nv f = {(const uint8_t *)names[i], (const uint8_t *)"close",
                       strlen(names[i]), 5, 0};
        const char *why = NULL;
        snprintf(want, sizeof(want), "connection-specific header field: %s",
                 names[i]);
        req[4] = f;
        res[1] = f;
        REQ_BAD(req, 0, want);
        RES_BAD(res, want);
        CHECK_INT(sl_http_check_trailers_why(&f, 1, &why), SLUICE_ERR_PROTOCOL);
        CHECK_STR(why, want);
        /* The field on its own is syntactically fine. */
        CHECK_INT(sl_http_check_field(&f), 0);
    }
}

TEST(te_trailers_allowed)
{
    static const sluice_nv a[] = {GET_PSEUDO, NV("te", "trailers")};
    static const sluice_nv b[] = {GET_PSEUDO, NV("te", "Trailers")};
    sl_http_request r;
    REQ_OK(a, 0, &r);
    CHECK_INT(r.expect_trailers, 1);
    REQ_OK(b, 0, &r);
    CHECK_INT(r.expect_trailers, 1);
}

TEST(te_other_than_trailers)
{
    static const sluice_nv a[] = {GET_PSEUDO, NV("te", "gzip")};
    static const sluice_nv b[] = {GET_PSEUDO, NV("te", "trailers, deflate")};
    static const sluice_nv c[] = {GET_PSEUDO, NV("te", "")};
    static const sluice_nv d[] = {GET_PSEUDO, NV("te", "trailers;q=1")};
    static const sluice_nv res[] = {NV(":status", "200"), NV("te", "chunked")};
    REQ_BAD(a, 0, "te other than trailers");
    REQ_BAD(b, 0, "te other than trailers");
    REQ_BAD(c, 0, "te other than trailers");
    REQ_BAD(d, 0, "te other than trailers");
    RES_BAD(res, "te other than trailers");
}

/* ---- RFC 9113 §8.2.3: cookie crumbs ------------------------------------- */

TEST(cookie_crumbs_allowed)
{
    static const sluice_nv h[] = {
        GET_PSEUDO, NV("cookie", "a=b"), NV("cookie", "c=d"),
        NV("accept", "*/*"), NV("cookie", "e=f"),
    };
    sl_http_request r;
    REQ_OK(h, 0, &r);
}

/* ---- RFC 9113 §8.3: pseudo-header placement and names ------------------- */

TEST(pseudo_after_regular_request)
{
    static const sluice_nv h[] = {
        NV(":method", "GET"), NV(":scheme", "https"),
        NV("accept", "*/*"), NV(":path", "/"),
    };
    REQ_BAD(h, 0, "pseudo-header after regular field");
}

TEST(pseudo_after_regular_response)
{
    static const sluice_nv h[] = {NV("server", "x"), NV(":status", "200")};
    RES_BAD(h, "pseudo-header after regular field");
}

TEST(unknown_pseudo_request)
{
    static const sluice_nv a[] = {GET_PSEUDO, NV(":foo", "x")};
    static const sluice_nv b[] = {NV(":", "x"), GET_PSEUDO};
    REQ_BAD(a, 0, "unknown pseudo-header");
    REQ_BAD(b, 0, "unknown pseudo-header");
}

TEST(unknown_pseudo_response)
{
    static const sluice_nv h[] = {NV(":status", "200"), NV(":reason", "OK")};
    RES_BAD(h, "unknown pseudo-header");
}

TEST(status_in_request)
{
    static const sluice_nv h[] = {GET_PSEUDO, NV(":status", "200")};
    REQ_BAD(h, 0, "response pseudo-header in request");
}

TEST(request_pseudo_in_response)
{
    static const sluice_nv a[] = {NV(":status", "200"), NV(":path", "/")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":status", "200")};
    static const sluice_nv c[] = {NV(":status", "200"),
                                  NV(":protocol", "websocket")};
    RES_BAD(a, "request pseudo-header in response");
    RES_BAD(b, "request pseudo-header in response");
    RES_BAD(c, "request pseudo-header in response");
}

TEST(duplicate_request_pseudo)
{
    static const sluice_nv m[] = {GET_PSEUDO, NV(":method", "GET")};
    static const sluice_nv s[] = {GET_PSEUDO, NV(":scheme", "https")};
    static const sluice_nv a[] = {GET_PSEUDO, NV(":authority", "example.com")};
    static const sluice_nv p[] = {GET_PSEUDO, NV(":path", "/")};
    static const sluice_nv pr[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"),
        NV(":protocol", "websocket"), NV(":scheme", "https"),
        NV(":path", "/"), NV(":authority", "a"),
    };
    REQ_BAD(m, 0, "duplicate :method");
    REQ_BAD(s, 0, "duplicate :scheme");
    REQ_BAD(a, 0, "duplicate :authority");
    REQ_BAD(p, 0, "duplicate :path");
    REQ_BAD(pr, SL_HTTP_ALLOW_CONNECT_PROTOCOL, "duplicate :protocol");
}

TEST(duplicate_status)
{
    static const sluice_nv a[] = {NV(":status", "200"), NV(":status", "200")};
    static const sluice_nv b[] = {NV(":status", "103"), NV(":status", "200")};
    RES_BAD(a, "duplicate :status");
    RES_BAD(b, "duplicate :status");
}

TEST(pseudo_in_trailers)
{
    static const sluice_nv a[] = {NV("x", "1"), NV(":status", "200")};
    static const sluice_nv b[] = {NV(":path", "/")};
    static const sluice_nv c[] = {NV(":foo", "x")};
    const char *why = NULL;
    CHECK_INT(sl_http_check_trailers_why(a, COUNT(a), &why),
              SLUICE_ERR_PROTOCOL);
    CHECK_STR(why, "pseudo-header in trailers");
    why = NULL;
    CHECK_INT(sl_http_check_trailers_why(b, COUNT(b), &why),
              SLUICE_ERR_PROTOCOL);
    CHECK_STR(why, "pseudo-header in trailers");
    CHECK_INT(sl_http_check_trailers(c, COUNT(c)), SLUICE_ERR_PROTOCOL);
}

/* ---- RFC 9113 §8.3.1: requests ------------------------------------------ */

TEST(empty_request)
{
    sl_http_request r;
    CHECK_INT(sl_http_check_request(NULL, 0, 0, &r), SLUICE_ERR_PROTOCOL);
    CHECK_STR(r.reason, "missing :method");
}

TEST(missing_method)
{
    static const sluice_nv h[] = {NV(":scheme", "https"), NV(":path", "/")};
    REQ_BAD(h, 0, "missing :method");
}

TEST(missing_scheme)
{
    static const sluice_nv h[] = {NV(":method", "GET"), NV(":path", "/"),
                                  NV(":authority", "example.com")};
    REQ_BAD(h, 0, "missing :scheme");
}

TEST(missing_path)
{
    static const sluice_nv h[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":authority", "example.com")};
    REQ_BAD(h, 0, "missing :path");
}

TEST(invalid_method)
{
    static const sluice_nv a[] = {NV(":method", ""), NV(":scheme", "https"),
                                  NV(":path", "/")};
    static const sluice_nv b[] = {NV(":method", "GE T"), NV(":scheme", "https"),
                                  NV(":path", "/")};
    static const sluice_nv c[] = {NV(":method", "G/T"), NV(":scheme", "https"),
                                  NV(":path", "/")};
    REQ_BAD(a, 0, "invalid :method");
    REQ_BAD(b, 0, "invalid :method");
    REQ_BAD(c, 0, "invalid :method");
}

TEST(invalid_scheme)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", ""),
                                  NV(":path", "/")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "1http"),
                                  NV(":path", "/")};
    static const sluice_nv c[] = {NV(":method", "GET"), NV(":scheme", "ht/tp"),
                                  NV(":path", "/")};
    static const sluice_nv ok[] = {NV(":method", "GET"),
                                   NV(":scheme", "coap+tcp-1.0"),
                                   NV(":path", "/")};
    sl_http_request r;
    REQ_BAD(a, 0, "invalid :scheme");
    REQ_BAD(b, 0, "invalid :scheme");
    REQ_BAD(c, 0, "invalid :scheme");
    REQ_OK(ok, 0, &r);
}

TEST(empty_path)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "foo"),
                                  NV(":path", "")};
    REQ_BAD(a, 0, "empty :path");
    REQ_BAD(b, 0, "empty :path");
}

TEST(path_not_origin_form_for_http)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "index.html")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "HTTP"),
                                  NV(":path", "http://example.com/")};
    static const sluice_nv c[] = {NV(":method", "GET"), NV(":scheme", "http"),
                                  NV(":path", "?q=1")};
    REQ_BAD(a, 0, ":path does not start with /");
    REQ_BAD(b, 0, ":path does not start with /");
    REQ_BAD(c, 0, ":path does not start with /");
}

TEST(path_asterisk_only_with_options)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "*")};
    static const sluice_nv b[] = {NV(":method", "options"),
                                  NV(":scheme", "https"), NV(":path", "*")};
    static const sluice_nv ok[] = {NV(":method", "OPTIONS"),
                                   NV(":scheme", "http"), NV(":path", "/x")};
    sl_http_request r;
    REQ_BAD(a, 0, ":path * without OPTIONS");
    REQ_BAD(b, 0, ":path * without OPTIONS");
    REQ_OK(ok, 0, &r);
}

TEST(path_control_or_space)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "/a b")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "/a\tb")};
    static const sluice_nv c[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "/\x7f")};
    static const sluice_nv d[] = {NV(":method", "GET"), NV(":scheme", "foo"),
                                  NV(":path", "x\x01")};
    REQ_BAD(a, 0, "control character or space in :path");
    REQ_BAD(b, 0, "control character or space in :path");
    REQ_BAD(c, 0, "control character or space in :path");
    REQ_BAD(d, 0, "control character or space in :path");
}

TEST(authority_userinfo_for_http)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":authority", "user:pw@example.com"),
                                  NV(":path", "/")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "http"),
                                  NV(":authority", "@example.com"),
                                  NV(":path", "/")};
    REQ_BAD(a, 0, "userinfo in :authority");
    REQ_BAD(b, 0, "userinfo in :authority");
}

TEST(authority_invalid_character)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":authority", "exa mple.com"),
                                  NV(":path", "/")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":authority", "example.com/x"),
                                  NV(":path", "/")};
    static const sluice_nv c[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":authority", "ex\xc3\xa4mple.com"),
                                  NV(":path", "/")};
    REQ_BAD(a, 0, "invalid character in :authority");
    REQ_BAD(b, 0, "invalid character in :authority");
    REQ_BAD(c, 0, "invalid character in :authority");
}

TEST(authority_empty_host_for_http)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":authority", ""), NV(":path", "/")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "http"),
                                  NV(":authority", ":8080"), NV(":path", "/")};
    REQ_BAD(a, 0, "empty host in :authority");
    REQ_BAD(b, 0, "empty host in :authority");
}

TEST(authority_forms_pass)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":authority", "[::1]:8443"),
                                  NV(":path", "/")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "http"),
                                  NV(":authority", "xn--bcher-kva.example"),
                                  NV(":path", "/")};
    static const sluice_nv c[] = {NV(":method", "GET"), NV(":scheme", "http"),
                                  NV(":authority", "my%20host.example:80"),
                                  NV(":path", "/")};
    sl_http_request r;
    REQ_OK(a, 0, &r);
    REQ_OK(b, 0, &r);
    REQ_OK(c, 0, &r);
}

/* ---- RFC 9113 §8.3.1: host and :authority ------------------------------- */

TEST(host_without_authority_passes)
{
    static const sluice_nv h[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "/"), NV("host", "example.com")};
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK(r.authority == NULL);
    CHECK_MEM(r.host, r.host_len, "example.com", 11);
}

TEST(host_matches_authority_after_normalization)
{
    /* Case, the default port, an empty port and leading zeros do not make
     * a different entity (RFC 3986 §6.2.2, §6.2.3). */
    static const sluice_nv a[] = {GET_PSEUDO, NV("host", "example.com")};
    static const sluice_nv b[] = {GET_PSEUDO, NV("host", "EXAMPLE.com:443")};
    static const sluice_nv c[] = {GET_PSEUDO, NV("host", "example.com:")};
    static const sluice_nv d[] = {
        NV(":method", "GET"), NV(":scheme", "http"),
        NV(":authority", "example.com:80"), NV(":path", "/"),
        NV("host", "Example.Com"),
    };
    static const sluice_nv e[] = {
        NV(":method", "GET"), NV(":scheme", "https"),
        NV(":authority", "[::1]:8443"), NV(":path", "/"),
        NV("host", "[::1]:08443"),
    };
    sl_http_request r;
    REQ_OK(a, 0, &r);
    CHECK_MEM(r.host, r.host_len, "example.com", 11);
    REQ_OK(b, 0, &r);
    REQ_OK(c, 0, &r);
    REQ_OK(d, 0, &r);
    REQ_OK(e, 0, &r);
}

TEST(host_differs_from_authority)
{
    static const sluice_nv a[] = {GET_PSEUDO, NV("host", "evil.example")};
    static const sluice_nv b[] = {GET_PSEUDO, NV("host", "example.com:8443")};
    /* 80 is not the default port of https. */
    static const sluice_nv c[] = {GET_PSEUDO, NV("host", "example.com:80")};
    static const sluice_nv d[] = {GET_PSEUDO, NV("host", "example.com.")};
    static const sluice_nv e[] = {GET_PSEUDO, NV("host", "")};
    REQ_BAD(a, 0, "host differs from :authority");
    REQ_BAD(b, 0, "host differs from :authority");
    REQ_BAD(c, 0, "host differs from :authority");
    REQ_BAD(d, 0, "host differs from :authority");
    REQ_BAD(e, 0, "host differs from :authority");
}

TEST(duplicate_host)
{
    static const sluice_nv h[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "/"), NV("host", "a.example"),
                                  NV("host", "a.example")};
    REQ_BAD(h, 0, "duplicate host");
}

TEST(host_invalid_character)
{
    static const sluice_nv a[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "/"), NV("host", "a b")};
    static const sluice_nv b[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                  NV(":path", "/"), NV("host", "u@a.example")};
    REQ_BAD(a, 0, "invalid character in host");
    REQ_BAD(b, 0, "invalid character in host");
}

/* ---- RFC 9113 §8.5: CONNECT --------------------------------------------- */

TEST(connect_with_scheme)
{
    static const sluice_nv h[] = {NV(":method", "CONNECT"),
                                  NV(":scheme", "https"),
                                  NV(":authority", "example.com:443")};
    REQ_BAD(h, 0, ":scheme in CONNECT request");
}

TEST(connect_with_path)
{
    static const sluice_nv h[] = {NV(":method", "CONNECT"), NV(":path", "/"),
                                  NV(":authority", "example.com:443")};
    REQ_BAD(h, 0, ":path in CONNECT request");
}

TEST(connect_missing_authority)
{
    static const sluice_nv h[] = {NV(":method", "CONNECT")};
    REQ_BAD(h, 0, "missing :authority in CONNECT request");
}

TEST(connect_authority_not_host_port)
{
    static const sluice_nv a[] = {NV(":method", "CONNECT"),
                                  NV(":authority", "example.com")};
    static const sluice_nv b[] = {NV(":method", "CONNECT"),
                                  NV(":authority", "example.com:")};
    static const sluice_nv c[] = {NV(":method", "CONNECT"),
                                  NV(":authority", ":443")};
    static const sluice_nv d[] = {NV(":method", "CONNECT"),
                                  NV(":authority", "[::1]")};
    REQ_BAD(a, 0, "CONNECT :authority is not host:port");
    REQ_BAD(b, 0, "CONNECT :authority is not host:port");
    REQ_BAD(c, 0, "CONNECT :authority is not host:port");
    REQ_BAD(d, 0, "CONNECT :authority is not host:port");
}

TEST(connect_authority_userinfo)
{
    static const sluice_nv h[] = {NV(":method", "CONNECT"),
                                  NV(":authority", "u@example.com:443")};
    REQ_BAD(h, 0, "userinfo in :authority");
}

TEST(connect_host_field)
{
    /* CONNECT has no scheme, hence no default port: a Host without a
     * port names the same host, one with another port does not. */
    static const sluice_nv a[] = {NV(":method", "CONNECT"),
                                  NV(":authority", "example.com:443"),
                                  NV("host", "example.com")};
    static const sluice_nv b[] = {NV(":method", "CONNECT"),
                                  NV(":authority", "example.com:443"),
                                  NV("host", "example.com:8443")};
    static const sluice_nv c[] = {NV(":method", "CONNECT"),
                                  NV(":authority", "example.com:443"),
                                  NV("host", "other.example")};
    sl_http_request r;
    REQ_OK(a, 0, &r);
    REQ_BAD(b, 0, "host differs from :authority");
    REQ_BAD(c, 0, "host differs from :authority");
}

/* ---- RFC 8441 §4: extended CONNECT -------------------------------------- */

TEST(protocol_without_setting)
{
    static const sluice_nv h[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"),
        NV(":scheme", "https"), NV(":path", "/chat"),
        NV(":authority", "example.com"),
    };
    REQ_BAD(h, 0, ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL");
}

TEST(protocol_with_other_method)
{
    static const sluice_nv h[] = {
        NV(":method", "GET"), NV(":protocol", "websocket"),
        NV(":scheme", "https"), NV(":path", "/chat"),
        NV(":authority", "example.com"),
    };
    REQ_BAD(h, SL_HTTP_ALLOW_CONNECT_PROTOCOL,
            ":protocol with a method other than CONNECT");
}

TEST(extended_connect_missing_fields)
{
    static const sluice_nv s[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"),
        NV(":path", "/chat"), NV(":authority", "example.com"),
    };
    static const sluice_nv p[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"),
        NV(":scheme", "https"), NV(":authority", "example.com"),
    };
    static const sluice_nv a[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"),
        NV(":scheme", "https"), NV(":path", "/chat"),
    };
    REQ_BAD(s, SL_HTTP_ALLOW_CONNECT_PROTOCOL, "missing :scheme");
    REQ_BAD(p, SL_HTTP_ALLOW_CONNECT_PROTOCOL, "missing :path");
    REQ_BAD(a, SL_HTTP_ALLOW_CONNECT_PROTOCOL,
            "missing :authority in extended CONNECT");
}

TEST(extended_connect_path_rules_apply)
{
    static const sluice_nv h[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"),
        NV(":scheme", "https"), NV(":path", "chat"),
        NV(":authority", "example.com"),
    };
    REQ_BAD(h, SL_HTTP_ALLOW_CONNECT_PROTOCOL, ":path does not start with /");
}

TEST(plain_connect_unaffected_by_flag)
{
    static const sluice_nv ok[] = {NV(":method", "CONNECT"),
                                   NV(":authority", "example.com:443")};
    static const sluice_nv bad[] = {NV(":method", "CONNECT"),
                                    NV(":authority", "example.com:443"),
                                    NV(":path", "/")};
    sl_http_request r;
    REQ_OK(ok, SL_HTTP_ALLOW_CONNECT_PROTOCOL, &r);
    CHECK(r.protocol == NULL);
    REQ_BAD(bad, SL_HTTP_ALLOW_CONNECT_PROTOCOL, ":path in CONNECT request");
}

/* ---- RFC 9113 §8.3.2: responses ----------------------------------------- */

TEST(missing_status)
{
    static const sluice_nv h[] = {NV("server", "x")};
    sl_http_response s;
    RES_BAD(h, "missing :status");
    CHECK_INT(sl_http_check_response(NULL, 0, &s), SLUICE_ERR_PROTOCOL);
    CHECK_STR(s.reason, "missing :status");
}

TEST(invalid_status)
{
    static const sluice_nv a[] = {NV(":status", "20")};
    static const sluice_nv b[] = {NV(":status", "2000")};
    static const sluice_nv c[] = {NV(":status", "2x0")};
    static const sluice_nv d[] = {NV(":status", "099")};
    static const sluice_nv e[] = {NV(":status", "600")};
    static const sluice_nv f[] = {NV(":status", "+20")};
    static const sluice_nv g[] = {NV(":status", "")};
    static const sluice_nv h[] = {NV(":status", "200 OK")};
    RES_BAD(a, "invalid :status");
    RES_BAD(b, "invalid :status");
    RES_BAD(c, "invalid :status");
    RES_BAD(d, "invalid :status");
    RES_BAD(e, "invalid :status");
    RES_BAD(f, "invalid :status");
    RES_BAD(g, "invalid :status");
    RES_BAD(h, "invalid :status");
}

TEST(status_101_rejected)
{
    static const sluice_nv h[] = {NV(":status", "101")};
    RES_BAD(h, ":status 101 in HTTP/2");
}

TEST(content_length_in_1xx_or_204)
{
    static const sluice_nv a[] = {NV(":status", "204"),
                                  NV("content-length", "10")};
    static const sluice_nv b[] = {NV(":status", "103"),
                                  NV("content-length", "1")};
    RES_BAD(a, "content-length in 1xx or 204 response");
    RES_BAD(b, "content-length in 1xx or 204 response");
}

TEST(response_priority_recorded)
{
    static const sluice_nv h[] = {NV(":status", "200"), NV("priority", "u=1"),
                                  NV("priority", "i")};
    sl_http_response s;
    CHECK_INT(sl_http_check_response(h, COUNT(h), &s), 0);
    CHECK_MEM(s.priority, s.priority_len, "u=1", 3);
    CHECK_INT(s.priority_multiple, 1);
}

/* ---- RFC 9218: priority in requests ------------------------------------- */

TEST(request_priority_first_and_multiple)
{
    static const sluice_nv h[] = {GET_PSEUDO, NV("priority", "u=5"),
                                  NV("accept", "*/*"), NV("priority", "i"),
                                  NV("priority", "u=1")};
    sl_http_request r;
    REQ_OK(h, 0, &r);
    CHECK_MEM(r.priority, r.priority_len, "u=5", 3);
    CHECK_INT(r.priority_multiple, 1);
}

/* ---- RFC 9110 §8.6: content-length -------------------------------------- */

TEST(content_length_parse_valid)
{
    CL_OK("0", 0);
    CL_OK("123", 123);
    CL_OK("007", 7);
    CL_OK("9223372036854775807", INT64_MAX);
    CL_OK("5,5", 5);
    CL_OK("5, 5", 5);
    CL_OK("5 ,\t5 , 5", 5);
}

TEST(content_length_parse_invalid)
{
    CL_BAD("");
    CL_BAD("+5");
    CL_BAD("-1");
    CL_BAD(" 5");
    CL_BAD("5 ");
    CL_BAD("5a");
    CL_BAD("0x10");
    CL_BAD("1e3");
    CL_BAD("1.0");
    CL_BAD("9223372036854775808");
    CL_BAD("99999999999999999999");
    CL_BAD("5, 6");
    CL_BAD("5,");
    CL_BAD(",5");
    CL_BAD("5,,5");
    CL_BAD("5 5");
}

TEST(content_length_in_messages)
{
    static const sluice_nv bad[] = {GET_PSEUDO, NV("content-length", "-1")};
    static const sluice_nv list[] = {GET_PSEUDO, NV("content-length", "7, 7")};
    static const sluice_nv res[] = {NV(":status", "200"),
                                    NV("content-length", "1 2")};
    sl_http_request r;
    REQ_BAD(bad, 0, "invalid content-length");
    REQ_OK(list, 0, &r);
    CHECK_INT(r.content_length, 7);
    RES_BAD(res, "invalid content-length");
}

TEST(content_length_repeated_fields)
{
    static const sluice_nv same[] = {GET_PSEUDO, NV("content-length", "10"),
                                     NV("accept", "*/*"),
                                     NV("content-length", "010")};
    static const sluice_nv diff[] = {GET_PSEUDO, NV("content-length", "10"),
                                     NV("content-length", "11")};
    static const sluice_nv diff_list[] = {GET_PSEUDO,
                                          NV("content-length", "10"),
                                          NV("content-length", "10, 10"),
                                          NV("content-length", "10, 11")};
    static const sluice_nv res[] = {NV(":status", "200"),
                                    NV("content-length", "0"),
                                    NV("content-length", "1")};
    sl_http_request r;
    REQ_OK(same, 0, &r);
    CHECK_INT(r.content_length, 10);
    REQ_BAD(diff, 0, "content-length values differ");
    REQ_BAD(diff_list, 0, "invalid content-length");
    RES_BAD(res, "content-length values differ");
}

/* ---- outputs ------------------------------------------------------------ */

TEST(reason_optional_and_reset)
{
    static const sluice_nv ok[] = {GET_PSEUDO};
    static const sluice_nv bad[] = {NV(":status", "200")};
    sluice_nv f = NV("X", "v");
    sl_http_request r;
    memset(&r, 0x5a, sizeof(r));
    REQ_OK(ok, 0, &r);
    CHECK_INT(r.content_length, -1);
    CHECK_INT(sl_http_check_field_why(&f, NULL), SLUICE_ERR_PROTOCOL);
    CHECK_INT(sl_http_check_trailers_why(bad, 1, NULL), SLUICE_ERR_PROTOCOL);
}
