/* wtune.h — adaptive receive windows: a smoothed RTT and the bytes consumed
 * per RTT give window targets of about twice the bandwidth-delay product,
 * within configured bounds. Pure: no I/O, the caller passes time in. */
#ifndef SL_WTUNE_H
#define SL_WTUNE_H

#include <stddef.h>
#include <stdint.h>

/* RTT probe PINGs are at least this far apart however short the RTT:
 * peers rate-limit PINGs (sluice's own guard allows 10 a second), and the
 * RTT changes far more slowly than the window grows. */
#define SL_WTUNE_PROBE_GAP_NS 250000000ull
/* A probe's opaque data: this tag, then a 16-bit count, big endian. The
 * graceful GOAWAY's PING is "sl-drain"; applications keep off "sl-". */
#define SL_WTUNE_PROBE_TAG "sl-rtt"
#define SL_WTUNE_PROBE_TAG_LEN 6

typedef struct sl_wtune {
    /* Bounds: stream targets in [lo, hi], the connection's in
     * [stream target, conn_hi]. Targets only rise (see wtune.c). */
    uint32_t lo, hi, conn_hi;
    uint32_t stream_target, conn_target;
    uint64_t srtt_ns;        /* RFC 6298 SRTT; 0: no sample yet */
    uint64_t rate;           /* bytes/s consumed over the last interval */
    uint64_t bytes;          /* consumed since interval_start */
    uint64_t interval_start;
    uint32_t base_stream, base_conn; /* the targets when it started */
    /* At most one probe PING in flight. */
    int probe_out;
    uint32_t probes;         /* sent so far */
    uint64_t probe_sent_at;
    uint8_t probe_opaque[8];
} sl_wtune;

/* stream_init / conn_init: the configured starting windows; targets start
 * there (the stream one raised to lo) and never fall below. */
void sl_wtune_init(sl_wtune *w, uint32_t stream_init, uint32_t conn_init, uint32_t lo,
                   uint32_t hi, uint32_t conn_hi, uint64_t now);
/* One round-trip measurement (SETTINGS → ACK, PING → ACK). */
void sl_wtune_rtt_sample(sl_wtune *w, uint64_t rtt_ns);
/* The application consumed n bytes at now. Returns 1 when a target rose. */
int sl_wtune_consumed(sl_wtune *w, size_t n, uint64_t now);
/* Bytes/s consumed over the last RTT-sized interval as of now. */
uint64_t sl_wtune_rate(const sl_wtune *w, uint64_t now);
/* The rule: the next target given the current one and the bytes consumed
 * in one RTT. */
uint32_t sl_wtune_target(uint32_t cur, uint64_t per_rtt, uint32_t lo, uint32_t hi);

/* 1 when a probe PING may be sent now. */
int sl_wtune_probe_due(const sl_wtune *w, uint64_t now);
/* A probe goes out now: its opaque data is written to opaque. */
void sl_wtune_probe_sent(sl_wtune *w, uint64_t now, uint8_t opaque[8]);
/* A PING ACK arrived: 1 when it answers our probe (the RTT is sampled),
 * 0 when it is someone else's. */
int sl_wtune_probe_ack(sl_wtune *w, const uint8_t opaque[8], uint64_t now);

#endif /* SL_WTUNE_H */
