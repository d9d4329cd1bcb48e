/* scheduler.h — which stream's DATA goes next (RFC 9218 §10): the lowest
 * urgency first; within it, non-incremental streams one at a time by id,
 * then incremental ones in turn. O(1) to pick, O(log n) to add or remove. */
#ifndef SL_SCHEDULER_H
#define SL_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#define SL_URGENCY_LEVELS 8

/* Embedded in a stream: no allocation on the hot path. */
typedef struct sl_sched_node {
    uint32_t id;
    uint8_t urgency;       /* 0..7 */
    uint8_t incremental;
    uint8_t queued;        /* in the scheduler */
    uint8_t level, inc_q;  /* where it is queued (may differ while flat) */
    /* non-incremental: pairing heap by id */
    struct sl_sched_node *child, *sibling, *prev;
    /* incremental: ring */
    struct sl_sched_node *rnext, *rprev;
} sl_sched_node;

typedef struct sl_sched_level {
    sl_sched_node *heap; /* non-incremental, smallest id at the root */
    sl_sched_node *ring; /* incremental, the next one to send */
} sl_sched_level;

typedef struct sl_sched {
    sl_sched_level lv[SL_URGENCY_LEVELS];
    uint8_t mask;        /* bit u: level u has a stream */
    int flat;            /* priorities off: one round robin over everything */
    uint32_t count;
} sl_sched;

void sl_sched_init(sl_sched *q, int flat);
void sl_sched_node_init(sl_sched_node *n, uint32_t id);
void sl_sched_add(sl_sched *q, sl_sched_node *n);
void sl_sched_remove(sl_sched *q, sl_sched_node *n);
/* The stream to send from next, or NULL. */
sl_sched_node *sl_sched_top(const sl_sched *q);
/* n (the top) sent a frame and has more: an incremental stream yields its
 * turn to the next one of its urgency. */
void sl_sched_sent(sl_sched *q, sl_sched_node *n);
/* Change a stream's priority, queued or not. */
void sl_sched_set(sl_sched *q, sl_sched_node *n, int urgency, int incremental);

#endif /* SL_SCHEDULER_H */
