/* priority.h — priority signals: the RFC 9218 field parser is public
 * (sluice_priority_parse in sluice.h); this maps RFC 7540 weights. */
#ifndef SL_PRIORITY_H
#define SL_PRIORITY_H

#include <stdint.h>

/* Urgency 0..7 for an RFC 7540 weight 1..256. */
int sl_priority_from_weight(uint16_t weight);

#endif /* SL_PRIORITY_H */
