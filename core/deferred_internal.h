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
    unsigned paused : 1;   /* waiting on `waiting_on` */
    unsigned suppress : 1; /* cancelled: ignore one later fire */

    coil__step *steps; /* steps[head..len) are pending */
    size_t head, len, cap;

    /* The current result: a failure, or a value with its destroy. */
    void *value;
    coil_destroy_fn destroy;
    coil_failure *failure;

    coil_canceller_fn canceller;
    void *canceller_arg;

    /* Chaining: this deferred waits on `waiting_on` (holding a reference
     * to it), which hands its result over to `chained_to` (holding a
     * reference to it) when its own chain is done. */
    coil_deferred *waiting_on;
    coil_deferred *chained_to;
};

#endif
