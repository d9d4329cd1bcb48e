/* guard.h — abuse accounting: token buckets that bound the rate of frames
 * a peer can make us process or answer (RFC 9113 §10.5). */
#ifndef SL_GUARD_H
#define SL_GUARD_H

#include <stdint.h>

#include "sluice.h"

typedef struct sl_bucket {
    uint64_t level;   /* in nano-tokens: 1e9 per event */
    uint64_t last_ns; /* time of the last refill */
    uint64_t burst;   /* 0: unlimited */
    uint64_t per_sec;
} sl_bucket;

void sl_bucket_init(sl_bucket *b, sluice_rate rate, uint64_t now_ns);
/* Take one token: 1 if allowed, 0 if the bucket is empty (abuse). */
int sl_bucket_take(sl_bucket *b, uint64_t now_ns);

#endif /* SL_GUARD_H */
