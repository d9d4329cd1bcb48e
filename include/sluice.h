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
     * Default 256. */
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
 * never-indexed; values that change with every message (:path, date,
 * content-length, etag, last-modified, age, expires, location, set-cookie,
 * if-modified-since, if-none-match, content-range) and values longer than
 * max_indexed_value_len or bigger than 3/4 of the table are sent without
 * indexing; everything else is added to the dynamic table. */
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

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_H */
