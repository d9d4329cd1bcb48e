/* h1.h — HTTP/1.1 message codec (RFC 9112): an incremental, sans-I/O parser
 * for requests and responses, and serializers for heads and chunked framing. */
#ifndef SL_H1_H
#define SL_H1_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

/* ---- errors ------------------------------------------------------------
 * Each parse failure has its own code, so logs say exactly what the peer
 * did wrong. sl_h1_error_to_sluice() gives the SLUICE_ERR_* class and
 * sl_h1_error_status() the HTTP status a server answers a bad request with
 * (a proxy answers 502 to any failure of an upstream response). */
enum sl_h1_error {
    SL_H1_ERR_REQUEST_LINE = -301,    /* not method SP target SP version */
    SL_H1_ERR_METHOD = -302,          /* method is not a token */
    SL_H1_ERR_TARGET = -303,          /* control character in the target */
    SL_H1_ERR_VERSION = -304,         /* not HTTP/DIGIT.DIGIT */
    SL_H1_ERR_VERSION_UNSUPPORTED = -305, /* well formed, not 1.0/1.1: 505 */
    SL_H1_ERR_STATUS_LINE = -306,     /* bad status line or status code */
    SL_H1_ERR_BARE_CR = -307,         /* CR not followed by LF */
    SL_H1_ERR_BARE_LF = -308,         /* LF without CR where CRLF is required */
    SL_H1_ERR_OBS_FOLD = -309,        /* line folding, or space before 1st field */
    SL_H1_ERR_HEADER_NAME = -310,     /* field name empty or not a token */
    SL_H1_ERR_HEADER_SPACE = -311,    /* whitespace between name and colon */
    SL_H1_ERR_NO_COLON = -312,        /* field line without a colon */
    SL_H1_ERR_HEADER_VALUE = -313,    /* control character in a field value */
    SL_H1_ERR_HOST = -314,            /* Host missing (1.1), repeated or bad */
    SL_H1_ERR_CONTENT_LENGTH = -315,  /* not 1*DIGIT, or above 2^63-1 */
    SL_H1_ERR_CL_MISMATCH = -316,     /* Content-Length values differ */
    SL_H1_ERR_CL_AND_TE = -317,       /* request with both (smuggling) */
    SL_H1_ERR_TE_INVALID = -318,      /* empty or malformed Transfer-Encoding */
    SL_H1_ERR_TE_CHUNKED_TWICE = -319,/* chunked applied more than once */
    SL_H1_ERR_TE_NOT_LAST = -320,     /* request where chunked is not final */
    SL_H1_ERR_TE_HTTP10 = -321,       /* Transfer-Encoding in HTTP/1.0 */
    SL_H1_ERR_TE_UNSUPPORTED = -322,  /* request coding other than chunked: 501 */
    SL_H1_ERR_CHUNK_SIZE = -323,      /* chunk size not hex, or junk after it */
    SL_H1_ERR_CHUNK_OVERFLOW = -324,  /* chunk size does not fit 64 bits */
    SL_H1_ERR_CHUNK_EXT = -325,       /* malformed chunk extension */
    SL_H1_ERR_CHUNK_DATA_END = -326,  /* chunk data not followed by CRLF */
    SL_H1_ERR_TRUNCATED = -327,       /* connection closed inside a message */
    /* Limits (class SLUICE_ERR_LIMIT). */
    SL_H1_ERR_URI_TOO_LONG = -340,    /* request line over a limit: 414 */
    SL_H1_ERR_LINE_TOO_LONG = -341,   /* one field line over max_line: 431 */
    SL_H1_ERR_HEAD_TOO_LARGE = -342,  /* head or trailers over max_head: 431 */
    SL_H1_ERR_TOO_MANY_HEADERS = -343,/* more than max_headers fields: 431 */
    SL_H1_ERR_CHUNK_LINE_TOO_LONG = -344, /* chunk-size line over limit: 400 */
    SL_H1_ERR_BODY_TOO_LARGE = -345   /* body over max_body: 413 */
};

/* SLUICE_ERR_LIMIT for the limit codes, SLUICE_ERR_PROTOCOL for the other
 * sl_h1_error codes; any other value is returned unchanged. */
int sl_h1_error_to_sluice(int err);
/* The status a server sends for a request that failed with err: 400, 413,
 * 414, 431, 501 or 505; 500 for errors that are not the client's fault. */
int sl_h1_error_status(int err);
/* Static text for logs; falls back to sluice_strerror(). */
const char *sl_h1_strerror(int err);

/* ---- parser ------------------------------------------------------------ */

/* Limits. Defaults (sl_h1_options_init) match what the open internet sends
 * and what other servers accept: Apache's LimitRequestLine/FieldSize of 8190
 * and LimitRequestFields of 100, nginx's 8 KiB large_client_header_buffers
 * per line; the 64 KiB head equals sluice's HTTP/2 max_header_list_size so
 * a request that fits one protocol fits the other. */
typedef struct sl_h1_options {
    uint32_t max_head;       /* start line + fields + line ends; 65536 */
    uint32_t max_line;       /* one start or field line with its CRLF; 8192 */
    uint32_t max_headers;    /* field lines in a head or trailer section; 100 */
    uint32_t max_chunk_line; /* chunk-size line, extensions and CRLF; 1024 */
    uint64_t max_body;       /* content bytes; UINT64_MAX (the host decides) */
    /* 1 (default): accept a bare LF as a line end in the head and nowhere
     * else (RFC 9112 §2.2 allows it; we re-serialize every head, so a peer
     * behind us never sees the difference). 0: CRLF everywhere. */
    int allow_bare_lf;
} sl_h1_options;

void sl_h1_options_init(sl_h1_options *o);

/* How the content after a head is delimited (RFC 9112 §6.3). */
enum sl_h1_body {
    SL_H1_BODY_NONE = 0, /* no content: COMPLETE follows the head */
    SL_H1_BODY_LENGTH,   /* content_length bytes (possibly 0) */
    SL_H1_BODY_CHUNKED,  /* chunked coding, possibly with trailers */
    SL_H1_BODY_CLOSE,    /* response read until the connection closes */
    SL_H1_BODY_TUNNEL    /* 101 or 2xx to CONNECT: no longer HTTP after it */
};

/* A parsed head. Pointers refer to the parser's buffer and are valid until
 * the next call on the parser. Field names keep the case they came in. */
typedef struct sl_h1_head {
    const uint8_t *method, *target; /* requests */
    size_t method_len, target_len;
    int status;                     /* responses */
    const uint8_t *reason;
    size_t reason_len;
    int version;                    /* 10 or 11 */
    const sluice_nv *fields;        /* every field line, in order */
    size_t nfields;
    const uint8_t *host;            /* requests: Host value, NULL if absent */
    size_t host_len;
    int body;                       /* enum sl_h1_body */
    uint64_t content_length;        /* for SL_H1_BODY_LENGTH */
    int keep_alive;     /* connection may carry another message after this */
    int expect_continue;/* request has Expect: 100-continue (HTTP/1.1) */
    int upgrade;        /* request: Upgrade with Connection: upgrade */
} sl_h1_head;

enum sl_h1_event_type {
    SL_H1_EV_NONE = 0,  /* all input consumed, nothing to report */
    SL_H1_EV_HEAD,      /* head: ev.head */
    SL_H1_EV_DATA,      /* content bytes: ev.data points into the input */
    SL_H1_EV_TRAILERS,  /* trailer fields: ev.fields (same limits as head) */
    SL_H1_EV_COMPLETE   /* message ends; the parser is ready for the next */
};

typedef struct sl_h1_event {
    int type; /* enum sl_h1_event_type */
    const sl_h1_head *head;
    const uint8_t *data;
    size_t len;
    const sluice_nv *fields;
    size_t nfields;
} sl_h1_event;

/* Framing facts gathered from the head being parsed (offsets into buf). */
typedef struct sl_h1_msg_state {
    int seen_start;              /* start line parsed */
    size_t a_off, a_len;         /* method, or reason of a response */
    size_t b_off, b_len;         /* target */
    int version, status;
    int cl_seen, te_seen, te_chunked, te_last_chunked, te_other;
    uint64_t cl;
    int conn_close, conn_keep_alive, conn_upgrade, upgrade_seen;
    int host_count, expect_continue;
    size_t host_off, host_len;
} sl_h1_msg_state;

typedef struct sl_h1_ref {
    size_t name, name_len, value, value_len; /* offsets into buf */
} sl_h1_ref;

/* Embed in the connection object; sl_h1_parser_init() then
 * sl_h1_parser_free(). */
typedef struct sl_h1_parser {
    sl_mem mem;
    sl_h1_options opt;
    int response;         /* 1: parses responses, 0: requests */
    int state;
    int err;              /* once set, every call returns it */
    int req_head, req_connect; /* the request the next response answers */
    uint8_t *buf;         /* the head, trailers or chunk line being read */
    size_t buf_len, buf_cap, line_start;
    sl_h1_ref *refs;      /* fields of buf, as offsets while buf may move */
    sluice_nv *nv;
    size_t nfields, fields_cap;
    sl_h1_msg_state m;
    uint64_t remaining;   /* content bytes left (length or chunk) */
    uint64_t body_total;  /* content bytes so far, for max_body */
    int chunk_cr;         /* CR after chunk data seen */
    sl_h1_head head;
} sl_h1_parser;

/* response: 0 to parse requests (a server), 1 for responses (a client).
 * opt NULL for the defaults. The parser allocates nothing until used. */
void sl_h1_parser_init(sl_h1_parser *p, int response, const sl_h1_options *opt,
                       const sl_mem *mem);
void sl_h1_parser_free(sl_h1_parser *p);

/* Response mode: the method of the request the next final response answers,
 * which decides its framing (RFC 9112 §6.3 rules 1, 2: HEAD has no content,
 * 2xx to CONNECT is a tunnel). Call before the response arrives; it holds
 * across 1xx responses and is forgotten (GET assumed) after the final one. */
int sl_h1_parser_set_method(sl_h1_parser *p, const uint8_t *method, size_t len);

/* Parse in[0..len), any split. Returns 0 with *ev filled and *consumed set,
 * or a negative error (sl_h1_error, SLUICE_ERR_NOMEM) after which the parser
 * returns the same error forever. At most one event per call; call again
 * with the rest of the input until the event is SL_H1_EV_NONE, which means
 * all of it was consumed (a call with len 0 may still yield COMPLETE).
 * Bytes after a COMPLETE are not consumed: they are the next (pipelined)
 * message. After the COMPLETE of a SL_H1_BODY_TUNNEL head, or of a
 * SL_H1_BODY_CLOSE one, more input gives SLUICE_ERR_STATE. */
int sl_h1_parse(sl_h1_parser *p, const uint8_t *in, size_t len, size_t *consumed,
                sl_h1_event *ev);

/* The peer closed its side. Yields COMPLETE for a close-delimited body,
 * NONE between messages, SL_H1_ERR_TRUNCATED inside one (a proxy must not
 * present a cut-off response as whole). */
int sl_h1_parse_eof(sl_h1_parser *p, sl_h1_event *ev);

/* ---- serializer ----------------------------------------------------------
 * Each writes into out[0..cap) and sets *out_len. When cap is too small it
 * returns SLUICE_ERR_NOBUF, sets *out_len to the size needed and leaves out
 * untouched. SLUICE_ERR_INVAL for anything that is not valid on the wire:
 * names that are not tokens, CR, LF, NUL or other controls in values, so
 * nothing we write can end a line early and smuggle a message. */

/* "METHOD target HTTP/1.1", then "Host: host" unless host is NULL, then
 * fields, then the empty line. */
int sl_h1_write_request_head(const uint8_t *method, size_t method_len,
                             const uint8_t *target, size_t target_len,
                             const uint8_t *host, size_t host_len,
                             const sluice_nv *fields, size_t n, uint8_t *out,
                             size_t cap, size_t *out_len);

/* "HTTP/1.1 status reason", fields, empty line. reason NULL picks the
 * standard phrase (sl_h1_reason). status must be 100..599. */
int sl_h1_write_response_head(int status, const uint8_t *reason, size_t reason_len,
                              const sluice_nv *fields, size_t n, uint8_t *out,
                              size_t cap, size_t *out_len);

/* "<hex size>\r\n" before size > 0 content bytes, which the caller sends
 * from its own buffer followed by SL_H1_CRLF. */
int sl_h1_write_chunk_header(uint64_t size, uint8_t *out, size_t cap,
                             size_t *out_len);

/* "0\r\n", trailer fields, "\r\n": ends a chunked body (RFC 9112 §7.1). */
int sl_h1_write_last_chunk(const sluice_nv *trailers, size_t n, uint8_t *out,
                           size_t cap, size_t *out_len);

#define SL_H1_CRLF "\r\n"

/* The RFC 9110 §15 reason phrase of a status, "" when unknown. */
const char *sl_h1_reason(int status);

#endif /* SL_H1_H */
