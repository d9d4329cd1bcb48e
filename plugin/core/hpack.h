/* hpack.h — internal view of the HPACK codec (RFC 7541), whose API is
 * public in sluice.h; the session uses the same encoder and decoder. */
#ifndef SL_HPACK_H
#define SL_HPACK_H

#include "hpack_table.h"
#include "sluice.h"

#endif /* SL_HPACK_H */
