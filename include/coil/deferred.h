/* coil — deferreds: a result that is not there yet.
 *
 * The semantics of Twisted's Deferred, in C. A deferred holds a chain of
 * steps, each a (callback, errback) pair. When the deferred fires with a
 * value (coil_deferred_callback) or a failure (coil_deferred_errback), the
 * result runs down the chain: a value goes to the next callback, a failure to
 * the next errback. A callback that fails sends the chain to the errback of
 * the NEXT step (an error at step N is handled at step N+1, never by the
 * errback added beside it with add_callbacks).
 *
 * Steps work on the deferred's current result in place:
 *   - read it:   coil_deferred_result(d) / coil_deferred_failure(d)
 *   - change it: coil_deferred_set_result(d, value, destroy)  (recovers
 *                when called from an errback), coil_deferred_set_failure(d, f)
 *                (the step "raises"), coil_deferred_chain(d, other) (pause
 *                until `other` fires, then continue with its result).
 * A step that changes nothing passes the result on unchanged: an errback
 * that only looks at the failure passes the failure on.
 *
 * Ownership.
 *   - Deferreds are reference counted. coil_deferred_new() and the other
 *     constructors return one reference; each holder drops its own with
 *     coil_deferred_unref(). A producer that will fire a deferred later keeps
 *     a reference until it has fired it.
 *   - Every value in the chain carries its destroy function (NULL: nothing to
 *     destroy). Whoever replaces or drops a value destroys it; the value left
 *     at the end of the chain is destroyed when the deferred is freed. So no
 *     value leaks whichever path runs.
 *   - Functions that take a value or a failure take ownership in every case,
 *     also when they return an error.
 *   - A failure still in the deferred when it is freed was handled by nobody:
 *     it is reported through the logger ("Unhandled error in deferred").
 *
 * Long chains, and deferreds that chain deferreds that chain deferreds, run
 * without recursion: the depth of the C stack does not grow with them.
 */
#ifndef COIL_DEFERRED_H
#define COIL_DEFERRED_H

#include <stddef.h>

#include "error.h"
#include "failure.h"
#include "reactor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*coil_destroy_fn)(void *value);

/* A step. Runs with `d`'s current result in place; see the header comment. */
typedef void (*coil_deferred_fn)(coil_deferred *d, void *arg);

/* Called by coil_deferred_cancel() on an unfired deferred. It may fire the
 * deferred itself; when it does not, the deferred fails with COIL_ECANCELLED
 * after it returns. */
typedef void (*coil_canceller_fn)(coil_deferred *d, void *arg);

/* ---- life cycle -------------------------------------------------------- */

/* A new unfired deferred (one reference), or NULL when memory runs out. */
coil_deferred *coil_deferred_new(void);
/* The same with a canceller; `arg` is passed to it. */
coil_deferred *coil_deferred_new_cancellable(coil_canceller_fn canceller, void *arg);
/* Already-fired constructors (Twisted's succeed / fail). */
coil_deferred *coil_deferred_succeed(void *value, coil_destroy_fn destroy);
coil_deferred *coil_deferred_fail(coil_failure *failure);

coil_deferred *coil_deferred_ref(coil_deferred *d);
/* Drop a reference; the last one frees the deferred, its pending steps (their
 * argument destroy functions run) and its result, and reports a failure left
 * in it. NULL is allowed. */
void coil_deferred_unref(coil_deferred *d);

/* ---- firing ------------------------------------------------------------ */

/* Fire with a value (ownership passes in). Returns 0, or COIL_EALREADY when
 * it has already fired (the value is destroyed). A deferred that was
 * cancelled without firing ignores a later fire silently, as Twisted does. */
int coil_deferred_callback(coil_deferred *d, void *value, coil_destroy_fn destroy);
/* Fire with a failure (ownership passes in). Same returns. */
int coil_deferred_errback(coil_deferred *d, coil_failure *failure);

/* 1 once fired. */
int coil_deferred_called(const coil_deferred *d);
/* 1 while fired but paused, waiting on a chained deferred. */
int coil_deferred_paused(const coil_deferred *d);

/* ---- the chain --------------------------------------------------------- */

/* Add a step. `callback` runs on a value, `errback` on a failure; either may
 * be NULL (pass through). If the deferred has already fired and is not
 * paused, the step runs at once. Returns 0 or COIL_ENOMEM. */
int coil_deferred_add_callbacks(coil_deferred *d, coil_deferred_fn callback,
                                coil_deferred_fn errback, void *arg);
/* The same, with a destroy function for `arg`, run once the step has run, or
 * when the deferred is freed with the step still pending. */
int coil_deferred_add_callbacks_full(coil_deferred *d, coil_deferred_fn callback,
                                     coil_deferred_fn errback, void *arg,
                                     coil_destroy_fn destroy_arg);
int coil_deferred_add_callback(coil_deferred *d, coil_deferred_fn callback, void *arg);
int coil_deferred_add_errback(coil_deferred *d, coil_deferred_fn errback, void *arg);
/* `fn` runs whatever the result (Twisted's addBoth). */
int coil_deferred_add_both(coil_deferred *d, coil_deferred_fn fn, void *arg);

/* ---- the current result (inside a step, or after firing) -------------- */

/* 1 when the current result is a failure. */
int coil_deferred_is_failure(const coil_deferred *d);
/* The current value (borrowed), NULL when the result is a failure. */
void *coil_deferred_result(const coil_deferred *d);
/* The current failure (borrowed), NULL when the result is a value. */
const coil_failure *coil_deferred_failure(const coil_deferred *d);

/* Replace the current result with a value; the old value is destroyed or the
 * old failure freed. In an errback this recovers. */
void coil_deferred_set_result(coil_deferred *d, void *value, coil_destroy_fn destroy);
/* Replace the current result with a failure: the step fails. */
void coil_deferred_set_failure(coil_deferred *d, coil_failure *failure);
/* Take the current value out (the result becomes NULL); `*destroy` receives
 * its destroy function when `destroy` is not NULL. */
void *coil_deferred_take_result(coil_deferred *d, coil_destroy_fn *destroy);
/* Take the current failure out (the result becomes a NULL value); NULL when
 * the result is not a failure. Use it to wrap:
 *   coil_deferred_set_failure(d, coil_failure_wrap(
 *       coil_deferred_take_failure(d), COIL_DOMAIN_USER, 1, "fetch failed")); */
coil_failure *coil_deferred_take_failure(coil_deferred *d);
/* From inside a step of `d`: pause `d` until `other` fires; `other`'s result
 * then moves into `d` (leaving NULL in `other`) and `d` goes on. Takes (and
 * drops) the caller's reference to `other`: `d` does not keep `other` alive,
 * whoever will fire `other` must hold it (a producer keeps its reference
 * until it fires). If `other` is freed unfired, `d` stays paused. Chaining a
 * deferred to itself, or to one already chained, fails `d` with COIL_EINVAL;
 * calling it outside a step, or twice in one step, is logged and ignored. */
void coil_deferred_chain(coil_deferred *d, coil_deferred *other);

/* ---- cancellation and timeouts ---------------------------------------- */

/* Cancel: an unfired deferred runs its canceller and, unless that fired it,
 * fails with COIL_ECANCELLED; a deferred paused on another cancels that one
 * (down to the innermost); a fired deferred is left alone. Without a
 * canceller, one later fire by the producer is ignored; with one, a later
 * fire returns COIL_EALREADY (Twisted's rules). Cancelling a deferred list
 * cancels its pending children. */
void coil_deferred_cancel(coil_deferred *d);

/* Cancel `d` if it has not fired `seconds` from now on `r`'s clock; the
 * resulting COIL_ECANCELLED failure is turned into COIL_ETIMEDOUT ("deferred
 * timed out after 2.5 s"). Twisted's addTimeout. Returns 0, COIL_EINVAL or
 * COIL_ENOMEM. */
int coil_deferred_add_timeout(coil_deferred *d, coil_reactor *r, double seconds);

/* Twisted's task.deferLater without the call: a deferred that fires with a
 * NULL value `seconds` (>= 0) from now on `r`'s clock. Cancelling it before
 * then cancels the timer (it fails with COIL_ECANCELLED); cancelling it after
 * it fired does nothing. The pending timer holds a reference to the deferred,
 * so dropping yours early is safe (free the reactor only after it fired or
 * was cancelled). A bad delay gives a deferred already failed with
 * COIL_EINVAL; NULL when memory runs out or `r` is NULL.
 *
 *   coil_deferred *d = coil_deferred_later(r, 5);
 *   coil_deferred_add_callback(d, finish_page, req);   // the book's BusyPage
 */
coil_deferred *coil_deferred_later(coil_reactor *r, double seconds);

/* ---- combining -------------------------------------------------------- */

enum coil_deferred_list_flags {
    COIL_DL_FIRE_ON_ONE_CALLBACK = 1, /* fire with the first value */
    COIL_DL_FIRE_ON_ONE_ERRBACK = 2,  /* fail with the first failure */
    COIL_DL_CONSUME_ERRORS = 4        /* a child's failure ends handled */
};

/* One entry of a list result. */
typedef struct coil_deferred_list_item {
    int ok;      /* 1: `value` holds a value; 0: `failure` */
    void *value; /* owned by the list result */
    coil_destroy_fn destroy;
    coil_failure *failure; /* owned by the list result (a copy) */
} coil_deferred_list_item;

/* The value a deferred list fires with when all children have fired:
 * items[i] is child i's outcome. Child values move into the list result
 * (the child is left with NULL); failures are copied, and a child keeps its
 * own failure unless COIL_DL_CONSUME_ERRORS. */
typedef struct coil_deferred_list_result {
    size_t count;
    coil_deferred_list_item *items;
} coil_deferred_list_result;

/* The value a list with COIL_DL_FIRE_ON_ONE_CALLBACK fires with (`index`
 * counts from 0). When no child succeeds, such a list fails instead with
 * COIL_EFIRSTERROR "none of the N deferreds succeeded" (cause: child 0's
 * failure), so a callback never mistakes a list result for this type. */
typedef struct coil_deferred_first_result {
    size_t index;
    void *value;
    coil_destroy_fn destroy;
} coil_deferred_first_result;

/* Twisted's DeferredList over `n` children. The list adds a step to each
 * child and does not keep the children alive: their producers and callers
 * do (a child freed unfired leaves the list unfired). Fires with a
 * coil_deferred_list_result (or, with FIRE_ON_ONE_CALLBACK, a coil_deferred_first_result)
 * once all children have fired; with FIRE_ON_ONE_ERRBACK it fails with COIL_EFIRSTERROR,
 * whose cause is the child's failure and whose message names its index. n == 0 fires at
 * once with an empty result. NULL when memory runs out. */
coil_deferred *coil_deferred_list(coil_deferred *const *children, size_t n,
                                  unsigned flags);

/* Which child failed a deferred list, as a value (Twisted's
 * FirstError.index): `f` is the COIL_EFIRSTERROR failure the list failed
 * with (or a failure it caused: the chain is searched) — with
 * FIRE_ON_ONE_ERRBACK (and gather) the index of the first child to fail;
 * with FIRE_ON_ONE_CALLBACK when none succeeded, 0, the child whose failure
 * is the cause. Returns 0 and sets *index (from 0), or COIL_EINVAL when no
 * failure in the chain came from a deferred list. */
int coil_deferred_list_first_error_index(const coil_failure *f, size_t *index);

/* Twisted's gatherResults: a list with FIRE_ON_ONE_ERRBACK and
 * CONSUME_ERRORS that fires with a coil_deferred_list_result whose items are
 * all values. */
coil_deferred *coil_deferred_gather(coil_deferred *const *children, size_t n);

#ifdef __cplusplus
}
#endif
#endif
