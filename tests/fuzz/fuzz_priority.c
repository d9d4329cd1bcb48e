/* fuzz_priority.c — libFuzzer target for the RFC 9218 priority field parser:
 * any bytes parse or fail cleanly, and what parses stays in range. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: reads past the end are caught. */
    uint8_t *v = malloc(size ? size : 1);
    if (!v)
        return 0;
    if (size)
        memcpy(v, data, size);
    int u = SLUICE_URGENCY_DEFAULT, inc = 0;
    int rv = sluice_priority_parse(v, size, &u, &inc);
    if (rv != 0 && rv != SLUICE_ERR_INVAL)
        __builtin_trap();
    if (u < 0 || u > 7 || (inc != 0 && inc != 1))
        __builtin_trap();
    if (rv != 0 && (u != SLUICE_URGENCY_DEFAULT || inc != 0))
        __builtin_trap(); /* a bad field changes nothing */
    free(v);
    return 0;
}
