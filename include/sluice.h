/* sluice.h — the public, stable ABI of sluice, an embeddable HTTP/2 engine.
 * Opaque handles, negative SLUICE_ERR_* codes, versioned option structs. */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SLUICE_BUILDING) && defined(__GNUC__)
#define SLUICE_API __attribute__((visibility("default")))
#else
#define SLUICE_API
#endif

/* ---- version ----------------------------------------------------------- */

#define SLUICE_VERSION_MAJOR 0
#define SLUICE_VERSION_MINOR 1
#define SLUICE_VERSION_PATCH 0
#define SLUICE_VERSION_STRING "0.1.0"
/* 0xMMmmpp: compare against sluice_version_num() to detect a mismatch
 * between the header you compiled with and the library you run with. */
#define SLUICE_VERSION_NUM                                                     \
    ((SLUICE_VERSION_MAJOR << 16) | (SLUICE_VERSION_MINOR << 8) |              \
     SLUICE_VERSION_PATCH)

/* The version of the library in use, e.g. "0.1.0". */
SLUICE_API const char *sluice_version(void);
SLUICE_API unsigned sluice_version_num(void);

/* ---- errors ------------------------------------------------------------ */

/* Every function returns 0 (or a count) on success and one of these on
 * failure. New codes may be added; existing values never change. */
enum sluice_error {
    SLUICE_OK = 0,
    SLUICE_ERR_NOMEM = -1,        /* the allocator failed */
    SLUICE_ERR_INVAL = -2,        /* bad argument from the caller */
    SLUICE_ERR_NOBUF = -3,        /* output buffer too small; nothing written */
    SLUICE_ERR_AGAIN = -4,        /* nothing to do now; call again later */
    SLUICE_ERR_STATE = -5,        /* call not allowed in the current state */
    SLUICE_ERR_LIMIT = -6,        /* a configured local limit was reached */
    SLUICE_ERR_NOT_FOUND = -7,    /* no such stream or object */

    /* Peer violated HTTP/2: each maps to the RFC 9113 §7 code named. */
    SLUICE_ERR_PROTOCOL = -20,    /* PROTOCOL_ERROR */
    SLUICE_ERR_FRAME_SIZE = -21,  /* FRAME_SIZE_ERROR */
    SLUICE_ERR_FLOW_CONTROL = -22,/* FLOW_CONTROL_ERROR */
    SLUICE_ERR_STREAM_CLOSED = -23,/* STREAM_CLOSED */
    SLUICE_ERR_REFUSED = -24,     /* REFUSED_STREAM */
    SLUICE_ERR_CALM = -25,        /* ENHANCE_YOUR_CALM: abuse limit hit */
    SLUICE_ERR_SETTINGS_TIMEOUT = -26, /* SETTINGS_TIMEOUT */
    SLUICE_ERR_CANCEL = -27,      /* CANCEL */
    SLUICE_ERR_INTERNAL = -28,    /* INTERNAL_ERROR */

    /* HPACK decoding failures; all are COMPRESSION_ERROR on the wire. */
    SLUICE_ERR_COMPRESSION = -40,   /* generic HPACK failure */
    SLUICE_ERR_HPACK_TRUNCATED = -41, /* block ends inside a representation */
    SLUICE_ERR_HPACK_INTEGER = -42, /* integer overflows 32 bits (§5.1) */
    SLUICE_ERR_HPACK_INDEX = -43,   /* index 0 or beyond both tables (§2.3.3) */
    SLUICE_ERR_HPACK_HUFFMAN = -44, /* bad Huffman code, EOS, or padding (§5.2) */
    SLUICE_ERR_HPACK_TABLE_SIZE = -45, /* size update too big or misplaced (§4.2, §6.3) */
    SLUICE_ERR_HPACK_STRING = -46,  /* string longer than the limit */

    /* Decoded header list larger than the configured limit. The HPACK state
     * stays in sync, so the caller may answer 431 or reset just the stream. */
    SLUICE_ERR_HEADER_LIST_TOO_LARGE = -60

    /* -300..-399 are reserved for the HTTP/1.1 codec's detailed errors. */
};

/* A human-readable message for any sluice_error; never NULL. */
SLUICE_API const char *sluice_strerror(int err);

/* HTTP/2 error codes (RFC 9113 §7). */
enum sluice_h2_error {
    SLUICE_H2_NO_ERROR = 0x0,
    SLUICE_H2_PROTOCOL_ERROR = 0x1,
    SLUICE_H2_INTERNAL_ERROR = 0x2,
    SLUICE_H2_FLOW_CONTROL_ERROR = 0x3,
    SLUICE_H2_SETTINGS_TIMEOUT = 0x4,
    SLUICE_H2_STREAM_CLOSED = 0x5,
    SLUICE_H2_FRAME_SIZE_ERROR = 0x6,
    SLUICE_H2_REFUSED_STREAM = 0x7,
    SLUICE_H2_CANCEL = 0x8,
    SLUICE_H2_COMPRESSION_ERROR = 0x9,
    SLUICE_H2_CONNECT_ERROR = 0xa,
    SLUICE_H2_ENHANCE_YOUR_CALM = 0xb,
    SLUICE_H2_INADEQUATE_SECURITY = 0xc,
    SLUICE_H2_HTTP_1_1_REQUIRED = 0xd
};

/* The HTTP/2 error code a sluice_error stands for on the wire
 * (INTERNAL_ERROR for errors that are not the peer's fault). */
SLUICE_API uint32_t sluice_error_to_h2(int err);
/* The name of an HTTP/2 error code ("PROTOCOL_ERROR"), or "UNKNOWN". */
SLUICE_API const char *sluice_h2_error_name(uint32_t code);

/* ---- memory ------------------------------------------------------------ */

/* Optional allocator. Every object sluice creates allocates through the
 * allocator it was created with (malloc/free when NULL is passed). The
 * struct is frozen: it will never grow. */
typedef struct sluice_allocator {
    void *(*malloc)(size_t size, void *ud);
    void *(*realloc)(void *ptr, size_t size, void *ud);
    void (*free)(void *ptr, void *ud);
    void *ud;
} sluice_allocator;

/* ---- header fields ----------------------------------------------------- */

/* Never index this field (RFC 7541 §6.2.3): secrets such as authorization
 * or short cookies. An intermediary must forward it with the same flag. */
#define SLUICE_NV_NEVER_INDEX 0x1u
/* Send as a literal without indexing (§6.2.2): values that never repeat. */
#define SLUICE_NV_NO_INDEX 0x2u

/* One header field. Not NUL-terminated. This layout is frozen. */
typedef struct sluice_nv {
    const uint8_t *name;
    const uint8_t *value;
    size_t name_len;
    size_t value_len;
    uint32_t flags; /* SLUICE_NV_* */
} sluice_nv;

/* ---- HPACK (RFC 7541), usable on its own -------------------------------- */

typedef struct sluice_hpack_encoder sluice_hpack_encoder;
typedef struct sluice_hpack_decoder sluice_hpack_decoder;

/* Versioned options: call sluice_hpack_options_init() first, then change
 * fields. New fields are only ever appended; the library reads only the
 * fields that fit in struct_size, so old callers keep working. */
typedef struct sluice_hpack_options {
    size_t struct_size;
    /* Encoder: the largest dynamic table we will use, further capped by the
     * peer's SETTINGS_HEADER_TABLE_SIZE. Decoder: our
     * SETTINGS_HEADER_TABLE_SIZE, the most the peer may make us hold.
     * Default 4096. */
    uint32_t max_table_size;
    /* Decoder: limit on the decoded header list, counted as in RFC 9113
     * §6.5.2 (name + value + 32 per field). Default 65536. */
    uint32_t max_header_list_size;
    /* Encoder: values longer than this are never added to the dynamic
     * table, so that one large value cannot evict the useful entries.
     * Default 3072; entries over 3/4 of the table are never indexed
     * either. */
    uint32_t max_indexed_value_len;
    /* Encoder: 1 (default) to Huffman-code strings when that is shorter,
     * 0 to never Huffman-code. */
    int huffman;
} sluice_hpack_options;

SLUICE_API void sluice_hpack_options_init_versioned(size_t struct_size,
                                                    sluice_hpack_options *opt);
#define sluice_hpack_options_init(opt)                                         \
    sluice_hpack_options_init_versioned(sizeof(sluice_hpack_options), (opt))

/* Create an encoder. opt and alloc may be NULL for defaults. */
SLUICE_API int sluice_hpack_encoder_new(sluice_hpack_encoder **out,
                                        const sluice_hpack_options *opt,
                                        const sluice_allocator *alloc);
SLUICE_API void sluice_hpack_encoder_free(sluice_hpack_encoder *enc);

/* Apply the peer's SETTINGS_HEADER_TABLE_SIZE. The change is announced with
 * a dynamic table size update at the start of the next block (RFC 7541
 * §4.2), including the smallest size in between if it went down and up. */
SLUICE_API int sluice_hpack_encoder_set_max_table_size(sluice_hpack_encoder *enc,
                                                       uint32_t size);

/* An upper bound on the bytes sluice_hpack_encode() writes for this list. */
SLUICE_API size_t sluice_hpack_encode_bound(const sluice_hpack_encoder *enc,
                                            const sluice_nv *nv, size_t n);

/* Encode one header block. On success writes *out_len bytes to out and
 * returns 0. If cap is below sluice_hpack_encode_bound() it returns
 * SLUICE_ERR_NOBUF and the encoder is unchanged.
 *
 * Indexing rule: fields flagged NEVER_INDEX, and the names authorization,
 * proxy-authorization, and cookie values under 20 bytes, are sent
 * never-indexed; values that change with every message (:path,
 * content-length, etag, last-modified, age, expires, location, set-cookie,
 * if-modified-since, if-none-match, content-range) and values longer than
 * max_indexed_value_len or bigger than 3/4 of the table are sent without
 * indexing; everything else is added to the dynamic table.
 *
 * A decoder created with max_table_size below 4096 expects the peer's
 * first block to start with a size update (RFC 7541 §4.2), and an encoder
 * created so sends one. */
SLUICE_API int sluice_hpack_encode(sluice_hpack_encoder *enc, const sluice_nv *nv,
                                   size_t n, uint8_t *out, size_t cap,
                                   size_t *out_len);

/* Create a decoder. opt and alloc may be NULL for defaults. */
SLUICE_API int sluice_hpack_decoder_new(sluice_hpack_decoder **out,
                                        const sluice_hpack_options *opt,
                                        const sluice_allocator *alloc);
SLUICE_API void sluice_hpack_decoder_free(sluice_hpack_decoder *dec);

/* Change our SETTINGS_HEADER_TABLE_SIZE (call once the peer acknowledged
 * it). The peer's next block must start with a size update no larger. */
SLUICE_API int sluice_hpack_decoder_set_max_table_size(sluice_hpack_decoder *dec,
                                                       uint32_t size);

/* Called once per decoded field, in order. The pointers are valid only
 * during the call. flags has SLUICE_NV_NEVER_INDEX when the field came as
 * a never-indexed literal. Return 0 to go on; a negative return aborts
 * decoding and is returned from sluice_hpack_decode() (the decoder is then
 * out of sync with the peer: treat it as a connection error). */
typedef int (*sluice_hpack_emit_fn)(void *ud, const sluice_nv *nv);

/* Decode one complete header block (all HEADERS/CONTINUATION fragments
 * joined). Returns 0, a SLUICE_ERR_HPACK_* / SLUICE_ERR_COMPRESSION
 * (connection error COMPRESSION_ERROR), or SLUICE_ERR_HEADER_LIST_TOO_LARGE
 * after consuming the whole block with no fields emitted past the limit. */
SLUICE_API int sluice_hpack_decode(sluice_hpack_decoder *dec, const uint8_t *block,
                                   size_t len, sluice_hpack_emit_fn emit, void *ud);

/* Current dynamic table size in bytes as RFC 7541 §4.1 counts it. */
SLUICE_API size_t sluice_hpack_encoder_table_size(const sluice_hpack_encoder *enc);
SLUICE_API size_t sluice_hpack_decoder_table_size(const sluice_hpack_decoder *dec);


/* ---- session: one HTTP/2 connection, sans I/O --------------------------- */

/* The host feeds received bytes in (sluice_session_recv), takes bytes to
 * write out as iovecs (sluice_session_output / _output_done) and passes the
 * current time in; the session reports its next deadline. Times are
 * nanoseconds on any monotonic clock the host chooses. */

typedef struct sluice_session sluice_session;

/* Same layout as struct iovec, so hosts can pass the array to writev(). */
typedef struct sluice_iovec {
    const void *base;
    size_t len;
} sluice_iovec;

enum sluice_role { SLUICE_ROLE_SERVER = 0, SLUICE_ROLE_CLIENT = 1 };

/* A token bucket: up to burst events at once, refilled at per_sec. */
typedef struct sluice_rate {
    uint32_t burst;
    uint32_t per_sec;
} sluice_rate;

typedef struct sluice_session_options {
    size_t struct_size;
    /* Our SETTINGS (RFC 9113 §6.5.2). */
    uint32_t header_table_size;      /* 4096 */
    uint32_t max_concurrent_streams; /* 100; peer streams beyond are REFUSED_STREAM */
    uint32_t initial_window_size;    /* 65535: each stream's receive window */
    uint32_t max_frame_size;         /* 16384 */
    uint32_t max_header_list_size;   /* 65536: larger requests get 431 */
    /* Target receive window of the whole connection: 1 MiB. Bounds what
     * the peer can make us hold across all streams. */
    uint32_t connection_window;
    /* 1: credit receive windows as data is delivered; 0 (default): only
     * when the application calls sluice_session_consume(). */
    int auto_consume;
    /* Abuse limits, counted per connection. Going over ends the connection
     * with GOAWAY ENHANCE_YOUR_CALM. */
    uint32_t max_continuation_frames; /* per header block: 32 */
    uint32_t max_header_block_size;   /* compressed, all fragments: 4 x list size */
    uint32_t max_outbound_control;    /* queued control bytes the peer leaves unread: 1 MiB */
    sluice_rate rst_received;         /* RST_STREAM from the peer (rapid reset) */
    sluice_rate rst_provoked;         /* our RST_STREAMs caused by the peer (MadeYouReset) */
    sluice_rate ping;                 /* PING frames */
    sluice_rate settings;             /* SETTINGS frames */
    sluice_rate empty_data;           /* DATA without payload or END_STREAM */
    sluice_rate priority;             /* PRIORITY and PRIORITY_UPDATE frames */
    uint64_t settings_timeout_ns;     /* our SETTINGS unacknowledged: 10 s */
    uint64_t goaway_timeout_ns;       /* graceful GOAWAY's PING unanswered: 2 s */
    /* A header block (HEADERS + CONTINUATION) not complete in this time
     * ends the connection (ENHANCE_YOUR_CALM): slow headers hold HPACK
     * state and a stream slot. 10 s. */
    uint64_t header_block_timeout_ns;
    /* --- added in 0.2 (struct_size tells which fields a caller knows) --- */
    /* 1 (default): DATA goes out in RFC 9218 order (lowest urgency first;
     * non-incremental streams one after another by id, incremental ones
     * round robin). 0: round robin over every ready stream. */
    int priorities;
    /* Server: may push (PUSH_PROMISE) when the client allows it. 1. */
    int enable_push;
    /* Adaptive receive windows (RFC 9113 §6.9 targets chosen from the
     * measured bandwidth-delay product): 0 (default) keeps the fixed
     * initial_window_size and connection_window. */
    int window_adaptive;
    uint32_t window_min;             /* per stream, adaptive: 65535 */
    uint32_t window_max;             /* per stream, adaptive: 16 MiB */
    uint32_t connection_window_max;  /* adaptive: 64 MiB */
    /* Priority changes (PRIORITY, PRIORITY_UPDATE, priority fields) per
     * connection, on top of the frame rate above (CVE-2019-9513). */
    sluice_rate reprioritize;
} sluice_session_options;

SLUICE_API void sluice_session_options_init_versioned(size_t struct_size,
                                                      sluice_session_options *opt);
#define sluice_session_options_init(opt)                                       \
    sluice_session_options_init_versioned(sizeof(sluice_session_options), (opt))

/* What a header block was. */
enum sluice_headers_kind {
    SLUICE_HEADERS_REQUEST = 0,   /* server: a new request */
    SLUICE_HEADERS_RESPONSE = 1,  /* client: the final response */
    SLUICE_HEADERS_INFO = 2,      /* client: a 1xx response (e.g. 103) */
    SLUICE_HEADERS_TRAILERS = 3
};

/* Callbacks. All optional. Returning a negative value from one makes
 * sluice_session_recv() fail with it (fatal for the session). Any submit
 * call may be made from inside a callback. */
typedef struct sluice_session_callbacks {
    size_t struct_size;
    /* A validated header block (pseudo-headers checked, RFC 9113 §8).
     * nv is valid only during the call. end_stream: no body follows. */
    int (*on_headers)(sluice_session *s, uint32_t stream_id, int kind,
                      const sluice_nv *nv, size_t n, int end_stream, void *ud);
    /* Body bytes, valid only during the call. Unless auto_consume is on,
     * credit them back with sluice_session_consume() once processed. */
    int (*on_data)(sluice_session *s, uint32_t stream_id, const uint8_t *data,
                   size_t len, void *ud);
    /* The peer finished its side of the stream (END_STREAM). */
    int (*on_stream_end)(sluice_session *s, uint32_t stream_id, void *ud);
    /* The stream is gone: completed (error_code NO_ERROR) or reset by
     * either side (the RFC 9113 §7 code). During the call its user data
     * can still be read; no other call can use the stream any more. */
    int (*on_stream_close)(sluice_session *s, uint32_t stream_id,
                           uint32_t error_code, void *ud);
    int (*on_goaway)(sluice_session *s, uint32_t last_stream_id,
                     uint32_t error_code, const uint8_t *debug, size_t len,
                     void *ud);
    int (*on_settings_ack)(sluice_session *s, void *ud);
    int (*on_ping_ack)(sluice_session *s, const uint8_t opaque[8], void *ud);
    /* Borrowed body bytes (see sluice_data_source) are written or dropped:
     * the application may reuse that memory now. It runs from within
     * sluice_session_output_done(), and also from sluice_session_recv(),
     * sluice_session_output() and sluice_session_submit_rst() when a
     * reset drops a stream's queued bytes: release memory there, do not
     * call into the session. */
    void (*on_data_sent)(sluice_session *s, uint32_t stream_id, size_t len,
                         void *ud);
    /* A line for the log: why a stream was reset or the connection ended. */
    void (*on_log)(sluice_session *s, int level, const char *msg, void *ud);
} sluice_session_callbacks;

enum sluice_log_level { SLUICE_LOG_ERROR = 0, SLUICE_LOG_WARN = 1,
                        SLUICE_LOG_INFO = 2, SLUICE_LOG_DEBUG = 3 };

/* Flags a data source returns. */
#define SLUICE_DATA_EOF 0x1u           /* this is the last of the body */
#define SLUICE_DATA_NO_END_STREAM 0x2u /* with EOF: trailers will follow */

/* Pull-style body. read() points *data at up to max bytes of the body and
 * returns their count; the bytes are not copied, so they must stay valid
 * until on_data_sent reports them. Return SLUICE_ERR_AGAIN (or 0 without
 * EOF) when nothing is ready: the stream waits until the application calls
 * sluice_session_resume_data(). Any other negative value resets the stream
 * with INTERNAL_ERROR. max is 0 while the flow-control window is closed:
 * return 0, with SLUICE_DATA_EOF if the body has ended (its END_STREAM
 * needs no window). */
typedef struct sluice_data_source {
    long (*read)(sluice_session *s, uint32_t stream_id, const uint8_t **data,
                 size_t max, uint32_t *flags, void *ud);
    void *ud;
} sluice_data_source;

SLUICE_API int sluice_session_new(sluice_session **out, int role,
                                  const sluice_session_callbacks *cb, void *ud,
                                  const sluice_session_options *opt,
                                  const sluice_allocator *alloc, uint64_t now);
/* Streams still open get on_stream_close (CANCEL), then borrowed body
 * bytes never written get on_data_sent, so the application can free what
 * it hung on them; those callbacks must not call into the session other
 * than to read stream user data. */
SLUICE_API void sluice_session_free(sluice_session *s);

/* Feed received bytes. Returns the count consumed (all of them), or a
 * negative error: for a connection error (SLUICE_ERR_PROTOCOL, ...) the
 * GOAWAY is already queued — write the output, then close. */
SLUICE_API long sluice_session_recv(sluice_session *s, const uint8_t *in,
                                    size_t len, uint64_t now);

/* Bytes to write: fills up to iovcnt iovecs with at most max_bytes (the
 * host decides how much the socket should take now). Returns the number of
 * iovecs, 0 when there is nothing to write. Call sluice_session_output_done()
 * with the bytes actually written before the next call. The iovecs are
 * valid only until the next call into the session: write them at once
 * (writev, SSL_write) rather than holding them for an asynchronous write. */
SLUICE_API int sluice_session_output(sluice_session *s, sluice_iovec *iov,
                                     int iovcnt, size_t max_bytes, uint64_t now);
SLUICE_API int sluice_session_output_done(sluice_session *s, size_t written);

/* Deadline (absolute, ns) at which sluice_session_handle_timeout() is due,
 * or UINT64_MAX when there is none. */
SLUICE_API uint64_t sluice_session_next_deadline(const sluice_session *s);
SLUICE_API int sluice_session_handle_timeout(sluice_session *s, uint64_t now);

/* 1 while the session wants more input / has or may produce output. */
SLUICE_API int sluice_session_want_read(const sluice_session *s);
SLUICE_API int sluice_session_want_write(const sluice_session *s);

/* Client: open a stream. source NULL: the request has no body. */
SLUICE_API int sluice_session_submit_request(sluice_session *s, const sluice_nv *nv,
                                             size_t n, const sluice_data_source *source,
                                             uint32_t *stream_id);
/* Server: the final response. source NULL: no body. */
SLUICE_API int sluice_session_submit_response(sluice_session *s, uint32_t stream_id,
                                              const sluice_nv *nv, size_t n,
                                              const sluice_data_source *source);
/* Server: an informational (1xx) response such as 103 Early Hints. */
SLUICE_API int sluice_session_submit_info(sluice_session *s, uint32_t stream_id,
                                          const sluice_nv *nv, size_t n);
/* Trailers end the stream after the body (the source must have returned
 * EOF with SLUICE_DATA_NO_END_STREAM, or still be running). */
SLUICE_API int sluice_session_submit_trailers(sluice_session *s, uint32_t stream_id,
                                              const sluice_nv *nv, size_t n);
SLUICE_API int sluice_session_resume_data(sluice_session *s, uint32_t stream_id);
SLUICE_API int sluice_session_submit_rst(sluice_session *s, uint32_t stream_id,
                                         uint32_t error_code);
SLUICE_API int sluice_session_submit_ping(sluice_session *s, const uint8_t opaque[8]);
/* Change some of our SETTINGS (n pairs of id, value; at most 10); they
 * apply once the peer acknowledges. SLUICE_ERR_AGAIN while 4 earlier
 * SETTINGS are still unacknowledged. */
SLUICE_API int sluice_session_submit_settings(sluice_session *s,
                                              const uint32_t *ids_values, size_t n);
/* GOAWAY. graceful: NO_ERROR in two phases (2^31-1 and a PING, then the
 * real last stream id when the PING returns); streams in flight finish.
 * Otherwise: one GOAWAY with error_code and the connection is done. */
SLUICE_API int sluice_session_goaway(sluice_session *s, uint32_t error_code,
                                     const char *debug, int graceful);

/* Receive-window control. consume: n bytes of a stream's data have been
 * processed (credits stream and connection). set_window: the target
 * receive window of a stream (stream_id > 0) or of the connection (0):
 * raising it sends credit at once; lowering withholds credit until the
 * window has fallen below the target. */
SLUICE_API int sluice_session_consume(sluice_session *s, uint32_t stream_id, size_t n);
SLUICE_API int sluice_session_set_window(sluice_session *s, uint32_t stream_id,
                                         uint32_t window);

SLUICE_API int sluice_session_set_stream_user_data(sluice_session *s, uint32_t stream_id,
                                                   void *data);
SLUICE_API void *sluice_session_get_stream_user_data(const sluice_session *s,
                                                     uint32_t stream_id);

/* ---- priorities (RFC 9218) ---------------------------------------------- */

#define SLUICE_URGENCY_DEFAULT 3
/* Parse a priority field value ("u=1, i"): unknown parameters and values
 * out of range are ignored (RFC 9218 §4), so the defaults (3, 0) or the
 * values in *urgency / *incremental on entry stay. SLUICE_ERR_INVAL only
 * when the text is not a structured-field dictionary. */
SLUICE_API int sluice_priority_parse(const uint8_t *value, size_t len, int *urgency,
                                     int *incremental);
/* The host or a policy sets a stream's priority at any time (O(log n)).
 * urgency 0..7 (0 most urgent), incremental 0/1. */
SLUICE_API int sluice_session_set_priority(sluice_session *s, uint32_t stream_id,
                                           int urgency, int incremental);
SLUICE_API int sluice_session_get_priority(const sluice_session *s, uint32_t stream_id,
                                           int *urgency, int *incremental);
/* 1 when the client signalled this stream's priority itself (a `priority`
 * field, RFC 7540 priority fields or frames while those count, or a
 * PRIORITY_UPDATE, also one sent before the request), so a host's default
 * should stay out of the way; 0 if not; SLUICE_ERR_NOT_FOUND. */
SLUICE_API int sluice_session_priority_signalled(const sluice_session *s, uint32_t stream_id);

/* ---- server push (RFC 9113 §8.4) ------------------------------------------ */

/* 1 when a push may be promised now: server, enable_push option, the
 * client's SETTINGS received with ENABLE_PUSH=1, no GOAWAY either way. */
SLUICE_API int sluice_session_push_allowed(const sluice_session *s);
/* Promise a response to the request in nv (:method GET or HEAD, :scheme,
 * :authority, :path) on the client's open stream assoc_id. The promised
 * stream is then answered with sluice_session_submit_response(). Fails
 * with SLUICE_ERR_STATE when push is not allowed, SLUICE_ERR_LIMIT at the
 * client's MAX_CONCURRENT_STREAMS or our own max_concurrent_streams
 * (a promise counts from the moment it is made), SLUICE_ERR_INVAL for a
 * request that cannot be pushed (§8.4.1: GET or HEAD, no body),
 * SLUICE_ERR_NOT_FOUND / SLUICE_ERR_STATE for an associated stream that
 * does not exist / is not the client's open request, and SLUICE_ERR_AGAIN
 * when the client already has that resource open or promised on this
 * connection. A client's RST_STREAM on the promised stream stops it at
 * once (on_stream_close; its source is not read again). */
SLUICE_API int sluice_session_submit_push(sluice_session *s, uint32_t assoc_id,
                                          const sluice_nv *nv, size_t n,
                                          uint32_t *promised_id);

/* ---- abuse budgets at run time (a policy's per-client limits) ------------- */

enum sluice_rate_kind {
    SLUICE_RATE_RST_RECEIVED = 0, SLUICE_RATE_RST_PROVOKED, SLUICE_RATE_PING,
    SLUICE_RATE_SETTINGS, SLUICE_RATE_EMPTY_DATA, SLUICE_RATE_PRIORITY,
    SLUICE_RATE_REPRIORITIZE
};
/* Replace one of the per-connection budgets of sluice_session_options.
 * Tokens already spent stay spent (the level is only clamped to the new
 * burst), so lowering a limit applies at once and raising one gives no
 * free burst. */
SLUICE_API int sluice_session_set_rate(sluice_session *s, int kind, sluice_rate rate);

/* Counters for logs and tests. */
typedef struct sluice_session_stats {
    size_t struct_size;
    uint64_t bytes_in, bytes_out;
    uint64_t frames_in, frames_out;
    uint32_t streams_open;        /* currently */
    uint64_t streams_total;
    uint64_t rst_received, rst_sent;
    size_t buffered_out;          /* bytes queued, not yet written */
    size_t recv_buffered;         /* received, not yet consumed */
    uint32_t goaway_sent_code;    /* valid when goaway_sent */
    int goaway_sent, goaway_received;
    /* --- added in 0.2 --- */
    uint64_t rtt_ns;              /* smoothed, from PING/SETTINGS round trips; 0: unknown */
    uint64_t recv_rate;           /* bytes/s consumed, last RTT-sized interval */
    uint32_t recv_target_conn;    /* the connection's receive window target now */
    uint32_t recv_target_stream;  /* new streams' receive window target now */
    uint64_t pushes;              /* PUSH_PROMISEs sent */
} sluice_session_stats;
SLUICE_API int sluice_session_get_stats(const sluice_session *s, sluice_session_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_H */
