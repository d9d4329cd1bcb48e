/* frame.h — HTTP/2 frame codec (RFC 9113 §4, §6; RFC 9218 §7.1).
 * A streaming decoder that takes bytes in any split, and frame encoders. */
#ifndef SL_FRAME_H
#define SL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define SL_FRAME_HDR_LEN 9
#define SL_MAX_FRAME_SIZE_MIN 16384u      /* RFC 9113 §6.5.2 */
#define SL_MAX_FRAME_SIZE_MAX 16777215u
#define SL_MAX_WINDOW 0x7fffffffu          /* RFC 9113 §6.9.1 */

enum sl_frame_type {
    SL_FRAME_DATA = 0x0,
    SL_FRAME_HEADERS = 0x1,
    SL_FRAME_PRIORITY = 0x2,
    SL_FRAME_RST_STREAM = 0x3,
    SL_FRAME_SETTINGS = 0x4,
    SL_FRAME_PUSH_PROMISE = 0x5,
    SL_FRAME_PING = 0x6,
    SL_FRAME_GOAWAY = 0x7,
    SL_FRAME_WINDOW_UPDATE = 0x8,
    SL_FRAME_CONTINUATION = 0x9,
    SL_FRAME_PRIORITY_UPDATE = 0x10 /* RFC 9218 */
};

enum sl_frame_flag {
    SL_FLAG_END_STREAM = 0x1,  /* DATA, HEADERS */
    SL_FLAG_ACK = 0x1,         /* SETTINGS, PING */
    SL_FLAG_END_HEADERS = 0x4, /* HEADERS, PUSH_PROMISE, CONTINUATION */
    SL_FLAG_PADDED = 0x8,      /* DATA, HEADERS, PUSH_PROMISE */
    SL_FLAG_PRIORITY = 0x20    /* HEADERS */
};

enum sl_settings_id {
    SL_SETTINGS_HEADER_TABLE_SIZE = 0x1,
    SL_SETTINGS_ENABLE_PUSH = 0x2,
    SL_SETTINGS_MAX_CONCURRENT_STREAMS = 0x3,
    SL_SETTINGS_INITIAL_WINDOW_SIZE = 0x4,
    SL_SETTINGS_MAX_FRAME_SIZE = 0x5,
    SL_SETTINGS_MAX_HEADER_LIST_SIZE = 0x6,
    SL_SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8, /* RFC 8441 */
    SL_SETTINGS_NO_RFC7540_PRIORITIES = 0x9    /* RFC 9218 §2.1 */
};

typedef struct sl_setting {
    uint16_t id;
    uint32_t value;
} sl_setting;

/* RFC 7540 priority fields of PRIORITY and HEADERS (+PRIORITY flag). */
typedef struct sl_priority_spec {
    uint32_t dep_stream_id;
    uint8_t exclusive;
    uint16_t weight; /* 1..256: the wire value plus one */
} sl_priority_spec;

/* A decoded frame. Pointers refer either to the caller's input or to the
 * decoder's buffer, and are valid until the next sl_frame_decode() call;
 * they are never NULL, even for empty fields. Padding has already been
 * stripped and checked. */
typedef struct sl_frame {
    uint32_t length; /* payload length as on the wire, padding included */
    uint8_t type;
    uint8_t flags;   /* as received; unknown flags are not cleared */
    uint32_t stream_id;
    union {
        struct { const uint8_t *data; size_t len; size_t pad; } data;
        struct {
            const uint8_t *block; size_t len; size_t pad;
            int has_priority; sl_priority_spec pri;
        } headers;
        sl_priority_spec priority;
        struct { uint32_t error_code; } rst_stream;
        /* Entries are sl_frame_settings_get(f, i, &s) for i < n; every
         * known value has been validated (§6.5.2). */
        struct { const uint8_t *raw; size_t n; } settings;
        struct {
            uint32_t promised_stream_id;
            const uint8_t *block; size_t len; size_t pad;
        } push_promise;
        struct { uint8_t opaque[8]; } ping;
        struct {
            uint32_t last_stream_id; uint32_t error_code;
            const uint8_t *debug; size_t debug_len;
        } goaway;
        struct { uint32_t increment; } window_update;
        struct { const uint8_t *block; size_t len; } continuation;
        struct {
            uint32_t prioritized_stream_id;
            const uint8_t *field; size_t len; /* priority field value */
        } priority_update;
        /* Frame types this decoder does not know: to be ignored (§5.5). */
        struct { const uint8_t *payload; size_t len; } unknown;
    } u;
} sl_frame;

/* What went wrong, and its scope (RFC 9113 §5.4). A stream error leaves
 * the decoder usable: the frame was consumed and the caller resets
 * stream_id. A connection error leaves the decoder failed for good. */
typedef struct sl_frame_error {
    int err;            /* SLUICE_ERR_PROTOCOL, _FRAME_SIZE, _FLOW_CONTROL */
    uint32_t h2_code;   /* the RFC 9113 §7 code to send */
    uint32_t stream_id; /* for stream errors */
    int stream_scope;   /* 1: RST_STREAM stream_id; 0: GOAWAY */
    const char *reason; /* static text for logs and GOAWAY debug data */
} sl_frame_error;

typedef struct sl_frame_decoder {
    sl_mem mem;
    uint32_t max_frame_size; /* our SETTINGS_MAX_FRAME_SIZE */
    /* Set while a header block is open: only CONTINUATION on this stream
     * may come next (§6.10). */
    uint32_t continuation_stream;
    int failed;
    sl_frame_error fail; /* returned again by every call once failed */
    size_t hdr_have;
    uint8_t hdr[SL_FRAME_HDR_LEN];
    uint8_t *buf;      /* payload of a frame that arrived in pieces */
    size_t buf_have;
    size_t buf_cap;
} sl_frame_decoder;

void sl_frame_decoder_init(sl_frame_decoder *d, const sl_mem *mem);
void sl_frame_decoder_free(sl_frame_decoder *d);
/* Apply our own SETTINGS_MAX_FRAME_SIZE once the peer has acknowledged it.
 * Values outside 16384..16777215 are clamped into that range. */
void sl_frame_decoder_set_max_frame_size(sl_frame_decoder *d, uint32_t size);

/* Decode at most one frame from in[0..len). Sets *consumed to the bytes
 * used. Returns 1 with *f filled when a whole frame was decoded, 0 when all
 * input was consumed without completing a frame, or a negative SLUICE_ERR_*
 * with *e filled. For a stream error (e->stream_scope) the frame is
 * consumed and decoding may go on; for anything else (SLUICE_ERR_NOMEM
 * included) it may not, and every later call returns the same error. */
int sl_frame_decode(sl_frame_decoder *d, const uint8_t *in, size_t len,
                    size_t *consumed, sl_frame *f, sl_frame_error *e);

/* Read settings entry i of a decoded SETTINGS frame. */
void sl_frame_settings_get(const sl_frame *f, size_t i, sl_setting *s);

/* Check one SETTINGS value (§6.5.2, RFC 8441 §3, RFC 9218 §2.1).
 * Returns 0, SLUICE_ERR_PROTOCOL or SLUICE_ERR_FLOW_CONTROL. Unknown ids
 * are accepted: they must be ignored. */
int sl_settings_check(uint16_t id, uint32_t value);

/* ---- encoders: each writes a whole frame (header included) to out and
 * returns the number of bytes written, SLUICE_ERR_NOBUF if cap is too
 * small, or SLUICE_ERR_INVAL for values the RFC forbids us to send. */

void sl_frame_pack_header(uint8_t out[SL_FRAME_HDR_LEN], uint32_t length,
                          uint8_t type, uint8_t flags, uint32_t stream_id);

/* DATA header only: the payload is sent from the caller's buffer (iovec),
 * so it is never copied. pad > 0 adds PADDED and writes the pad-length byte
 * after the header (out must hold 10 bytes); the caller sends pad zero bytes
 * after the payload. Returns the header bytes written. */
long sl_frame_encode_data_header(uint8_t *out, size_t cap, uint32_t stream_id,
                                 size_t data_len, size_t pad, int end_stream);
/* HEADERS with the first fragment of a block; pri may be NULL. */
long sl_frame_encode_headers(uint8_t *out, size_t cap, uint32_t stream_id,
                             const uint8_t *frag, size_t frag_len, int end_stream,
                             int end_headers, const sl_priority_spec *pri, size_t pad);
long sl_frame_encode_priority(uint8_t *out, size_t cap, uint32_t stream_id,
                              const sl_priority_spec *pri);
long sl_frame_encode_rst_stream(uint8_t *out, size_t cap, uint32_t stream_id,
                                uint32_t error_code);
long sl_frame_encode_settings(uint8_t *out, size_t cap, const sl_setting *s,
                              size_t n);
long sl_frame_encode_settings_ack(uint8_t *out, size_t cap);
long sl_frame_encode_push_promise(uint8_t *out, size_t cap, uint32_t stream_id,
                                  uint32_t promised_stream_id, const uint8_t *frag,
                                  size_t frag_len, int end_headers, size_t pad);
long sl_frame_encode_ping(uint8_t *out, size_t cap, const uint8_t opaque[8], int ack);
long sl_frame_encode_goaway(uint8_t *out, size_t cap, uint32_t last_stream_id,
                            uint32_t error_code, const uint8_t *debug, size_t debug_len);
long sl_frame_encode_window_update(uint8_t *out, size_t cap, uint32_t stream_id,
                                   uint32_t increment);
long sl_frame_encode_continuation(uint8_t *out, size_t cap, uint32_t stream_id,
                                  const uint8_t *frag, size_t frag_len, int end_headers);
long sl_frame_encode_priority_update(uint8_t *out, size_t cap,
                                     uint32_t prioritized_stream_id,
                                     const uint8_t *field, size_t field_len);

#endif /* SL_FRAME_H */
