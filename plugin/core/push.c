/* push.c — server push (RFC 9113 §8.4): when a promise may be made, the
 * PUSH_PROMISE itself, and the promised stream until its response starts. */
#include <string.h>

#include "push.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n, int fold)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (fold && c >= 'A' && c <= 'Z') /* host names are case-insensitive */
            c = (uint8_t)(c + 32);
        h = (h ^ c) * FNV_PRIME;
    }
    return h;
}

uint64_t sl_push_key(const sl_http_request *req)
{
    const uint8_t *a = req->authority ? req->authority : req->host;
    size_t alen = req->authority ? req->authority_len : req->host_len;
    if (!a || !req->path)
        return 0; /* CONNECT, or no authority: nothing a push could name */
    /* A NUL between the two cannot occur in either (§8.2.1), so
     * ("ab", "/") and ("a", "b/") hash apart. */
    static const uint8_t nul = 0;
    uint64_t h = fnv(FNV_OFFSET, a, alen, 1);
    h = fnv(fnv(h, &nul, 1, 0), req->path, req->path_len, 0);
    return h ? h : 1; /* 0 means "no key" */
}

int sluice_session_push_allowed(const sluice_session *s)
{
    /* Until the client's SETTINGS arrive we cannot know its ENABLE_PUSH. */
    return s && s->role == SLUICE_ROLE_SERVER && s->opt.enable_push && !s->fatal &&
           s->settings_received && s->remote.enable_push == 1 && !s->goaway_phase &&
           !s->goaway_received;
}

/* §8.4.1: a promised request is safe and cacheable (GET or HEAD), has no
 * content, and names its resource with :scheme, :authority and :path. */
static int check_promise(const sluice_nv *nv, size_t n, sl_http_request *req)
{
    if (sl_http_check_request(nv, n, 0, req) != 0)
        return SLUICE_ERR_INVAL;
    int get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    if ((!get && !req->is_head) || !req->scheme || !req->authority ||
        !req->authority_len || !req->path || req->content_length > 0)
        return SLUICE_ERR_INVAL;
    return 0;
}

/* A promise holds a stream slot from the start, though §5.1.2 counts it
 * only once its response begins: so an accepted promise can always be
 * answered (unless the client lowers its limit meanwhile). Our own
 * max_concurrent_streams bounds promises too, as it bounds the client's
 * requests: it is also what the duplicate check below has to walk. */
static int have_room(const sluice_session *s)
{
    uint32_t max = s->remote.max_concurrent_streams;
    if (s->opt.max_concurrent_streams < max)
        max = s->opt.max_concurrent_streams;
    return s->local_streams < max && s->next_local_stream <= SL_MAX_WINDOW;
}

struct key_scan { uint64_t key; int found; };

static void match_key(sl_stream *st, void *ud)
{
    struct key_scan *k = ud;
    if (!st->closed && st->push_key == k->key)
        k->found = 1;
}

/* The client's open requests and our live promises, each keyed by
 * sl_push_key(): no second copy of a resource it is already getting. */
static int already_open(sluice_session *s, uint64_t key)
{
    struct key_scan k = {key, 0};
    sl_stream_map_each(&s->streams, match_key, &k);
    return k.found;
}

/* RFC 9218 §4: a priority field in the promised request is the pushed
 * response's priority, as it would be for a request. */
static void promise_priority(sluice_session *s, sl_stream *st, const sl_http_request *req)
{
    int u = SLUICE_URGENCY_DEFAULT, inc = 0;
    if (req->priority && sluice_priority_parse(req->priority, req->priority_len, &u, &inc) == 0)
        sl_sched_set(&s->sched, &st->sn, u, inc);
}

int sluice_session_submit_push(sluice_session *s, uint32_t assoc_id, const sluice_nv *nv,
                               size_t n, uint32_t *promised_id)
{
    if (!s || (n && !nv))
        return SLUICE_ERR_INVAL;
    if (!sluice_session_push_allowed(s))
        return SLUICE_ERR_STATE;
    sl_stream *assoc = sl_session_stream(s, assoc_id);
    if (!assoc)
        return SLUICE_ERR_NOT_FOUND;
    /* §8.4: only on a client's stream that is open or half-closed (remote). */
    if (!assoc->peer_initiated || assoc->send_closed)
        return SLUICE_ERR_STATE;
    sl_http_request req;
    if (check_promise(nv, n, &req) != 0)
        return SLUICE_ERR_INVAL;
    if (!have_room(s))
        return SLUICE_ERR_LIMIT;
    uint64_t key = sl_push_key(&req);
    if (already_open(s, key))
        return SLUICE_ERR_AGAIN;
    sl_stream *st = sl_session_new_stream(s, s->next_local_stream, 0);
    if (!st)
        return SLUICE_ERR_NOMEM;
    s->next_local_stream += 2; /* §5.1.1: even, increasing */
    /* §5.1 reserved (local): the client sends nothing on it but
     * RST_STREAM, PRIORITY and WINDOW_UPDATE. */
    st->reserved = 1;
    st->recv_closed = 1;
    st->push_key = key;
    s->push_reserved++;
    promise_priority(s, st, &req);
    int rv = sl_session_send_push_promise(s, assoc_id, st->id, nv, n);
    if (rv != 0) {
        sl_session_close_stream(s, st, SLUICE_H2_INTERNAL_ERROR);
        return rv;
    }
    s->stats.pushes++;
    if (promised_id)
        *promised_id = st->id;
    return 0;
}

int sl_push_open(sluice_session *s, sl_stream *st)
{
    if (s->local_streams - s->push_reserved >= s->remote.max_concurrent_streams)
        return SLUICE_ERR_LIMIT; /* the client lowered its limit since */
    st->reserved = 0;
    s->push_reserved--;
    return 0;
}
