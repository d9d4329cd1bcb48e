/* guard.c — token buckets for the per-connection abuse budgets.
 * Integer arithmetic in nano-tokens so refills are exact at any rate. */
#include "guard.h"

#define TOKEN 1000000000ull

void sl_bucket_init(sl_bucket *b, sluice_rate rate, uint64_t now_ns)
{
    b->burst = rate.burst;
    b->per_sec = rate.per_sec;
    b->level = b->burst * TOKEN;
    b->last_ns = now_ns;
}

int sl_bucket_take(sl_bucket *b, uint64_t now_ns)
{
    if (b->burst == 0)
        return 1;
    uint64_t cap = b->burst * TOKEN;
    if (now_ns > b->last_ns) {
        uint64_t dt = now_ns - b->last_ns;
        /* Clamp before multiplying so a long idle time cannot overflow. */
        if (b->per_sec == 0 || dt >= cap / b->per_sec)
            b->level = b->per_sec ? cap : b->level;
        else
            b->level += dt * b->per_sec;
        if (b->level > cap)
            b->level = cap;
        b->last_ns = now_ns;
    }
    if (b->level < TOKEN)
        return 0;
    b->level -= TOKEN;
    return 1;
}
