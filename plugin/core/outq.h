/* outq.h — the session's output queue: frames in the order they must reach
 * the peer, control frames ahead of queued DATA; DATA payloads borrowed. */
#ifndef SL_OUTQ_H
#define SL_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

/* The public sluice_iovec itself (laid out as POSIX struct iovec, so a
 * host can pass the array to writev()): the session hands ours out as is. */
typedef sluice_iovec sl_iovec;

/* Borrowed bytes are no longer needed: called once per DATA unit with a
 * payload, with its length, when its last byte has been consumed, when
 * sl_outq_drop_data() drops it, or from sl_outq_free(). During
 * sl_outq_consume() and sl_outq_drop_data() it may append to the queue or
 * drop from it, but must not consume from it or free it; during
 * sl_outq_free() it must not touch it. */
typedef void (*sl_outq_release_fn)(void *ud, uint32_t stream_id, size_t len);

/* What a unit is. Units leave the queue in list order; each kind keeps
 * its own order (control frames and header blocks are FIFO), and a new
 * unit goes to the earliest place the rules in outq.c allow. */
enum { SL_OUTQ_CTRL = 0, SL_OUTQ_BLOCK = 1, SL_OUTQ_DATA = 2 };

#define SL_OUTQ_HDR_MAX 9 /* a DATA frame header, kept in its unit */

/* Where a control frame may go, besides after every control frame queued
 * before it and after header blocks on its own stream (stream_id != 0). */
#define SL_OUTQ_AFTER_BLOCKS 1u /* after every header block queued before it */
#define SL_OUTQ_AFTER_DATA 2u   /* after its stream's queued DATA too */
#define SL_OUTQ_AFTER_ALL 4u    /* after everything queued before it */

/* One frame (or run of control frames) not yet written. Control and block
 * units hold their bytes in the arena of their kind, at off; DATA units
 * hold their header here and point at their payload. */
typedef struct sl_outq_unit {
    const uint8_t *data; /* DATA: payload not yet written */
    size_t off;          /* control, block: first byte not yet written */
    size_t len;          /* owned bytes not yet written (DATA: of hdr) */
    size_t dlen;         /* DATA: payload bytes not yet written */
    size_t total;        /* DATA: the payload length to report to release */
    uint32_t stream_id;  /* block, DATA (control: its first frame's) */
    uint32_t promised;   /* block: a PUSH_PROMISE's promised stream */
    uint8_t kind;
    uint8_t urgency;     /* DATA: RFC 9218 urgency when queued */
    uint8_t hlen;        /* DATA: header length */
    uint8_t hdr[SL_OUTQ_HDR_MAX];
} sl_outq_unit;

/* Owned bytes of one kind: those not yet written are buf[lo..hi), in list
 * order, since each kind leaves in the order it came. */
typedef struct sl_outq_arena {
    uint8_t *buf;
    size_t lo, hi, cap;
} sl_outq_arena;

typedef struct sl_outq {
    sl_mem mem;
    sl_outq_release_fn release; /* may be NULL */
    void *ud;
    sl_outq_unit *u;     /* unit i (0 = next to write) at u[first + i] */
    size_t first, count, cap;
    size_t end_ctrl;     /* 1 + index of the last control unit (0: none) */
    size_t end_block;    /* 1 + index of the last header block (0: none) */
    size_t pending;      /* all bytes not yet written */
    int started;         /* unit 0 is partly written: nothing goes before it */
    int busy;            /* releasing units already popped (below first) */
    sl_outq_arena a[2];  /* SL_OUTQ_CTRL, SL_OUTQ_BLOCK */
} sl_outq;

void sl_outq_init(sl_outq *q, const sl_mem *mem, sl_outq_release_fn release,
                  void *ud);
/* Free everything, calling release for each DATA payload not yet fully
 * written. q is left empty, as after sl_outq_init(), and may be reused. */
void sl_outq_free(sl_outq *q);

/* A control frame of n > 0 bytes: return where to write them, or NULL if
 * the allocator failed (q is then unchanged). The bytes are queued at once:
 * fill them before anything reads the queue. The pointer is valid only
 * until the next sl_outq_* call on q. Control frames in a row coalesce into
 * one unit (one iovec). */
uint8_t *sl_outq_reserve_control(sl_outq *q, size_t n, uint32_t stream_id,
                                 unsigned flags);
int sl_outq_append_control(sl_outq *q, const void *p, size_t n,
                           uint32_t stream_id, unsigned flags);
/* Bytes that follow everything but DATA queued before them (the client
 * preface). p must not point into q. n == 0 queues nothing. */
int sl_outq_append(sl_outq *q, const void *p, size_t n);

/* A whole header block (HEADERS or PUSH_PROMISE, then its CONTINUATIONs)
 * of n > 0 bytes on stream_id; promised is the PUSH_PROMISE's promised
 * stream, else 0. As sl_outq_reserve_control(). */
uint8_t *sl_outq_reserve_block(sl_outq *q, size_t n, uint32_t stream_id,
                               uint32_t promised);

/* A DATA frame: its header (hlen <= SL_OUTQ_HDR_MAX, copied) and payload
 * (borrowed: valid and unchanged until release reports it), with the
 * stream's urgency (0 most urgent). Both or neither are queued. */
int sl_outq_append_data(sl_outq *q, const void *hdr, size_t hlen,
                        const void *data, size_t n, uint32_t stream_id,
                        uint8_t urgency);

/* Take out the DATA of stream_id (0: of every stream) that has not started
 * being written and sits behind the last control frame and header block
 * (DATA moved ahead of a block or control frame stays), releasing each
 * payload. Returns the payload bytes taken out; *frames (if given) the
 * count of frames. */
size_t sl_outq_drop_data(sl_outq *q, uint32_t stream_id, size_t *frames);

/* Bytes not yet written, all of them / only control frames and header
 * blocks. The session bounds the latter: a peer that never reads must not
 * make us buffer replies without limit. */
static inline size_t sl_outq_pending(const sl_outq *q)
{
    return q->pending;
}

static inline size_t sl_outq_owned_pending(const sl_outq *q)
{
    return q->a[0].hi - q->a[0].lo + q->a[1].hi - q->a[1].lo;
}

/* Fill up to iovcnt iovecs in write order (the first starts after any
 * partial write), at most max_bytes in all (SIZE_MAX for no limit), and
 * return how many; never an empty one. SLUICE_ERR_INVAL if iovcnt < 0.
 * The iovecs are valid until the next call that changes q. */
int sl_outq_iov(const sl_outq *q, sl_iovec *iov, int iovcnt, size_t max_bytes);

/* The host wrote n bytes in the order sl_outq_iov() gives: drop them, then
 * call release for each DATA payload whose last byte this was. Nothing may
 * change q between sl_outq_iov() and this call. SLUICE_ERR_INVAL, with
 * nothing changed, if n exceeds sl_outq_pending(). */
int sl_outq_consume(sl_outq *q, size_t n);

#endif /* SL_OUTQ_H */
