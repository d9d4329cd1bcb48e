/* session_pair.h — an in-memory connection between two sluice sessions
 * (or a session and raw bytes) for the session tests. */
#ifndef SL_SESSION_PAIR_H
#define SL_SESSION_PAIR_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

/* Move everything from's output can produce into to's input. Returns the
 * bytes moved, or a negative error from either side. */
static inline long pair_pump_one(sluice_session *from, sluice_session *to, uint64_t now)
{
    long total = 0;
    for (;;) {
        sluice_iovec iov[16];
        int n = sluice_session_output(from, iov, 16, 65536, now);
        if (n < 0)
            return n;
        if (n == 0)
            return total;
        size_t sum = 0;
        for (int i = 0; i < n; i++) {
            if (to) {
                long rv = sluice_session_recv(to, iov[i].base, iov[i].len, now);
                if (rv < 0) {
                    sluice_session_output_done(from, sum + iov[i].len);
                    return rv;
                }
            }
            sum += iov[i].len;
        }
        int rv = sluice_session_output_done(from, sum);
        if (rv < 0)
            return rv;
        total += (long)sum;
    }
}

/* Pump both ways until neither side has anything to say. */
static inline int pair_pump(sluice_session *a, sluice_session *b, uint64_t now)
{
    for (int rounds = 0; rounds < 100000; rounds++) {
        long x = pair_pump_one(a, b, now);
        if (x < 0)
            return (int)x;
        long y = pair_pump_one(b, a, now);
        if (y < 0)
            return (int)y;
        if (x == 0 && y == 0)
            return 0;
    }
    return SLUICE_ERR_INTERNAL;
}

/* Drain a session's output into a buffer (for byte-level checks). */
static inline size_t pair_drain(sluice_session *s, uint8_t *buf, size_t cap, uint64_t now)
{
    size_t len = 0;
    for (;;) {
        sluice_iovec iov[16];
        int n = sluice_session_output(s, iov, 16, cap - len, now);
        if (n <= 0)
            return len;
        size_t sum = 0;
        for (int i = 0; i < n; i++) {
            memcpy(buf + len + sum, iov[i].base, iov[i].len);
            sum += iov[i].len;
        }
        sluice_session_output_done(s, sum);
        len += sum;
        if (len == cap)
            return len;
    }
}

#endif /* SL_SESSION_PAIR_H */
