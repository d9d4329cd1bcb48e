/* outq.h — the session's output queue: one FIFO of frames handed to the host
 * as iovecs. Control bytes are copied in; DATA payloads are borrowed, never copied. */
#ifndef SL_OUTQ_H
#define SL_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

/* The public sluice_iovec itself (laid out as POSIX struct iovec, so a
 * host can pass the array to writev()): the session hands ours out as is. */
typedef sluice_iovec sl_iovec;

/* Borrowed bytes are no longer needed: called once per
 * sl_outq_append_borrowed() call, with the length given there, when its
 * last byte has been consumed (or from sl_outq_free() if it never was).
 * During sl_outq_consume() it may append to the queue, but must not
 * consume from it or free it; during sl_outq_free() it must not touch it. */
typedef void (*sl_outq_release_fn)(void *ud, uint32_t stream_id, size_t len);

/* A run of queued bytes. Its bytes are exactly those not yet written: the
 * head segment shrinks from the front as the host writes it. */
typedef struct sl_outq_seg {
    union {
        const uint8_t *ptr; /* borrowed: into the application's memory */
        size_t off;         /* owned: into the queue's buffer, which moves */
    } at;
    size_t len;         /* bytes not yet written */
    size_t total;       /* borrowed: the length to report to release */
    uint32_t stream_id; /* borrowed: reported to release */
    uint8_t owned;
} sl_outq_seg;

typedef struct sl_outq {
    sl_mem mem;
    sl_outq_release_fn release; /* may be NULL */
    void *ud;
    sl_outq_seg *segs;   /* ring: segment i (0 = head) at (head + i) & mask */
    size_t head, count;
    size_t mask;         /* ring capacity - 1 (0 when none allocated) */
    size_t pending;      /* all bytes not yet written */
    uint8_t *buf;        /* owned bytes not yet written are buf[lo..hi) */
    size_t lo, hi, cap;
} sl_outq;

void sl_outq_init(sl_outq *q, const sl_mem *mem, sl_outq_release_fn release,
                  void *ud);
/* Free everything, calling release for each borrowed segment not yet
 * fully written. q is left empty, as after sl_outq_init(), and may be reused. */
void sl_outq_free(sl_outq *q);

/* Append n owned bytes at the tail and return where to write them, or NULL
 * if the allocator failed (q is then unchanged). The bytes are queued at
 * once: fill them before anything reads the queue. The pointer is valid
 * only until the next sl_outq_* call on q, since the buffer may move.
 * Owned appends in a row coalesce into one segment (one iovec). */
uint8_t *sl_outq_reserve(sl_outq *q, size_t n);
/* Copy n owned bytes to the tail. p must not point into q's buffer. */
int sl_outq_append(sl_outq *q, const void *p, size_t n);
/* Queue n bytes at p without copying them; they must stay valid and
 * unchanged until release reports them. n == 0 queues nothing and is
 * never released. Never coalesced, so release sees each append. */
int sl_outq_append_borrowed(sl_outq *q, const void *p, size_t n,
                            uint32_t stream_id);

/* A frame header (copied) and its payload (borrowed, as above), both or
 * neither: on failure q is unchanged, so no header is ever queued without
 * its payload. */
int sl_outq_append_data(sl_outq *q, const void *hdr, size_t hlen,
                        const void *data, size_t n, uint32_t stream_id);

/* Bytes not yet written, all of them / only the owned ones. The session
 * bounds the owned count: a peer that never reads must not make us buffer
 * control frames without limit. */
static inline size_t sl_outq_pending(const sl_outq *q)
{
    return q->pending;
}

static inline size_t sl_outq_owned_pending(const sl_outq *q)
{
    return q->hi - q->lo;
}

/* Fill up to iovcnt iovecs from the head (the first starts after any
 * partial write), at most max_bytes in all (SIZE_MAX for no limit), and
 * return how many; never an empty one. SLUICE_ERR_INVAL if iovcnt < 0.
 * The iovecs are valid until the next call that changes q. */
int sl_outq_iov(const sl_outq *q, sl_iovec *iov, int iovcnt, size_t max_bytes);

/* The host wrote n bytes from the head: drop them, calling release for each
 * borrowed segment whose last byte this was. SLUICE_ERR_INVAL, with nothing
 * changed, if n exceeds sl_outq_pending(). */
int sl_outq_consume(sl_outq *q, size_t n);

#endif /* SL_OUTQ_H */
