/* Deferred internals shared by deferred.c and deferred_list.c. */
#ifndef COIL_CORE_DEFERRED_INTERNAL_H
#define COIL_CORE_DEFERRED_INTERNAL_H

#include <coil/deferred.h>

typedef struct coil__step {
    coil_deferred_fn callback;
    coil_deferred_fn errback;
    void *arg;
    coil_destroy_fn destroy_arg;
} coil__step;

struct coil_deferred {
    int refs;
    unsigned called : 1;   /* fired */
    unsigned running : 1;  /* its chain is on the C stack */
    unsigned paused : 1;   /* waiting on another deferred */
    unsigned suppress : 1; /* cancelled without a canceller: ignore one fire */

    coil__step *steps; /* steps[head..len) are pending */
    size_t head, len, cap;

    /* The current result: a failure, or a value with its destroy. */
    void *value;
    coil_destroy_fn destroy;
    coil_failure *failure;

    coil_canceller_fn canceller;
    void *canceller_arg;
    coil_destroy_fn canceller_destroy; /* run on canceller_arg when freed */

    /* Chaining. `chained_to` is the deferred that waits on this one; this one
     * holds a reference to it, so that whoever fires this one also carries
     * the waiting one on. `waiting_on` is the reverse link and holds no
     * reference: the waited-on deferred is kept alive by its producer, and
     * clears the link when it is freed unfired. A strong link both ways
     * would leak both deferreds when the inner one is abandoned. */
    coil_deferred *chained_to;
    coil_deferred *waiting_on;
};

/* coil_deferred_new_cancellable() whose `arg` is released with `destroy_arg`
 * when the deferred is freed. On NULL (no memory) `arg` is left to the
 * caller. */
coil_deferred *coil__deferred_new_cancellable_full(coil_canceller_fn canceller, void *arg,
                                                   coil_destroy_fn destroy_arg);

#endif
