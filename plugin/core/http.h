/* http.h — HTTP/2 message validation (RFC 9113 §8.1–8.3, §8.5; RFC 9110):
 * checks a decoded header list before the session hands it on. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

/* We sent SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441 §3): :protocol is
 * then allowed on CONNECT, and such a request needs :scheme, :path and
 * :authority. */
#define SL_HTTP_ALLOW_CONNECT_PROTOCOL 0x1u

/* Every pointer below points into the values of the checked list (or at a
 * static "" for an empty value given as NULL), so it lives as long as the
 * list does. NULL means the field was absent. On failure only `reason` is
 * meaningful: a static string for logs, NULL on success. */
typedef struct sl_http_request {
    const uint8_t *method, *scheme, *authority, *path, *protocol;
    size_t method_len, scheme_len, authority_len, path_len, protocol_len;
    const uint8_t *host;              /* the host field (only one allowed) */
    size_t host_len;
    int64_t content_length;           /* -1 when absent */
    int is_connect, is_head;          /* CONNECT (RFC 9113 §8.5), HEAD */
    int expect_trailers;              /* te: trailers present */
    const uint8_t *priority;          /* first `priority` field (RFC 9218) */
    size_t priority_len;
    int priority_multiple;            /* more than one `priority` field */
    const char *reason;
} sl_http_request;

typedef struct sl_http_response {
    int status;
    int64_t content_length;           /* -1 when absent */
    const uint8_t *priority;          /* first `priority` field (RFC 9218) */
    size_t priority_len;
    int priority_multiple;
    const char *reason;
} sl_http_response;

/* Each returns 0, or SLUICE_ERR_PROTOCOL when the message is malformed
 * (RFC 9113 §8.1.1: the session resets the stream with PROTOCOL_ERROR). */

/* A request header section; flags: SL_HTTP_ALLOW_CONNECT_PROTOCOL. */
int sl_http_check_request(const sluice_nv *nv, size_t n, unsigned flags,
                          sl_http_request *out);
/* A response header section, final or informational (1xx). */
int sl_http_check_response(const sluice_nv *nv, size_t n,
                           sl_http_response *out);
/* A trailer section of a request or response. */
int sl_http_check_trailers(const sluice_nv *nv, size_t n);
/* One field's name and value syntax (RFC 9113 §8.2.1); a name starting
 * with ':' passes here, sl_http_check_request/response judge it. */
int sl_http_check_field(const sluice_nv *nv);

/* The same two checks, also setting *reason (when reason is not NULL) to
 * a static string on failure and to NULL on success. */
int sl_http_check_trailers_why(const sluice_nv *nv, size_t n,
                               const char **reason);
int sl_http_check_field_why(const sluice_nv *nv, const char **reason);

/* A content-length value (RFC 9110 §8.6): 1*DIGIT up to INT64_MAX, or a
 * comma list of such values that are all equal. *out is set on success. */
int sl_http_parse_content_length(const uint8_t *v, size_t len, int64_t *out);

#endif /* SL_HTTP_H */
