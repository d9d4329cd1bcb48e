/* stream.h — one HTTP/2 stream's state (RFC 9113 §5.1) and the id → stream
 * map of a session. */
#ifndef SL_STREAM_H
#define SL_STREAM_H

#include <stdint.h>

#include "mem.h"
#include "scheduler.h"
#include "sluice.h"

typedef struct sl_stream sl_stream;

struct sl_stream {
    uint32_t id;
    /* §5.1: open, half-closed (local/remote) and closed are these two. */
    unsigned recv_closed : 1;  /* peer sent END_STREAM */
    unsigned send_closed : 1;  /* we sent END_STREAM */
    unsigned peer_initiated : 1;
    unsigned headers_sent : 1; /* server: final response; client: request */
    unsigned final_received : 1; /* client: final (non-1xx) response seen */
    unsigned is_head : 1;      /* client: HEAD request, response has no body */
    unsigned has_source : 1;
    unsigned source_deferred : 1; /* read() said AGAIN */
    unsigned source_eof : 1;
    unsigned awaiting_trailers : 1; /* EOF with NO_END_STREAM, no trailers yet */
    unsigned in_ready : 1;
    unsigned closed : 1;       /* on_stream_close is running: no more use */
    unsigned target_set : 1;   /* the application chose recv_target */

    int64_t send_window; /* may go negative (§6.9.2) */
    int64_t recv_window; /* what the peer may still send */
    uint32_t recv_target;
    size_t recv_buffered; /* delivered, not yet consumed */

    int64_t content_length; /* -1: none (§8.1.1) */
    uint64_t data_received;

    sluice_data_source source;
    sluice_nv *trailers; /* deep copy, one allocation */
    size_t ntrailers;

    void *user_data;
    /* Priority (RFC 9218): its place in the session's scheduler while it
     * has DATA to send; urgency and incremental are kept while it has not. */
    sl_sched_node sn;
    /* The client gave this stream a priority (field, RFC 7540 fields or
     * frames, PRIORITY_UPDATE): a host's default must not replace it. */
    unsigned prio_signalled : 1;
    /* Server push (push.c): reserved is a promised stream whose response
     * has not started (§5.1 reserved (local)); push_key is sl_push_key()
     * of a client's request or of a promise (0: none), so that nothing the
     * client already has open is pushed again. */
    unsigned reserved : 1;
    uint64_t push_key;
    sl_stream *hnext;
};

typedef struct sl_stream_map {
    sl_mem mem;
    sl_stream **buckets;
    uint32_t mask;
    uint32_t count;
} sl_stream_map;

void sl_stream_map_init(sl_stream_map *m, const sl_mem *mem);
void sl_stream_map_free(sl_stream_map *m); /* does not free the streams */
sl_stream *sl_stream_map_get(const sl_stream_map *m, uint32_t id);
int sl_stream_map_put(sl_stream_map *m, sl_stream *s);
void sl_stream_map_del(sl_stream_map *m, sl_stream *s);
/* Call fn for every stream; fn may delete the stream it is given. */
void sl_stream_map_each(sl_stream_map *m, void (*fn)(sl_stream *, void *), void *ud);

#endif /* SL_STREAM_H */
