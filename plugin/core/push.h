/* push.h — server push (RFC 9113 §8.4): promised streams in reserved
 * (local) state and the key that keeps us from pushing what the client has open. */
#ifndef SL_PUSH_H
#define SL_PUSH_H

#include <stdint.h>

#include "http.h"
#include "session.h"

/* The (authority, path) of a request as a non-zero 64-bit key; host
 * stands in for a missing :authority (RFC 9113 §8.3.1). */
uint64_t sl_push_key(const sl_http_request *req);

/* submit_response on a promised stream: the response HEADERS move it from
 * reserved (local) to half-closed (remote) (§5.1), which counts against
 * the client's SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2). 0, or
 * SLUICE_ERR_LIMIT when that would exceed it. */
int sl_push_open(sluice_session *s, sl_stream *st);

#endif /* SL_PUSH_H */
