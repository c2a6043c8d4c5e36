/* Deferred lists and gather (Twisted's DeferredList and gatherResults).
 *
 * References, and why there is no cycle that outlives the children:
 *   - each child's step holds a reference to the shared state;
 *   - the state holds the list deferred until the list fires, or until no
 *     child is left that could fire it (every step has run or its child was
 *     freed unfired): the list's producer is its children;
 *   - the list deferred holds a reference to the state (the argument of its
 *     canceller), dropped when the list is freed;
 *   - nothing holds the children (their producers and callers do); the
 *     state only points at the ones whose step is still pending, to cancel
 *     them, and each step clears its pointer when it runs or is freed.
 * So state <-> list is a cycle only while some child may still fire, and a
 * child freed unfired releases its step, which breaks it. */
#include "deferred_internal.h"
#include "failure_internal.h"

#include <stdlib.h>

typedef struct list_state {
    int refs;    /* one per attached step, one for the list deferred */
    size_t live; /* steps still attached to a child */
    int building;
    coil_deferred *list; /* until it fires or nothing can fire it */
    size_t n, remaining;
    unsigned flags;
    coil_deferred_list_item *items; /* NULL once handed over or dropped */
    coil_deferred **children;       /* borrowed; NULL once the step is gone */
} list_state;

typedef struct list_slot {
    list_state *state;
    size_t index;
} list_slot;

static void destroy_items(coil_deferred_list_item *items, size_t n)
{
    if (!items)
        return;
    for (size_t i = 0; i < n; i++) {
        if (items[i].destroy)
            items[i].destroy(items[i].value);
        coil_failure_free(items[i].failure);
    }
    free(items);
}

static void list_result_destroy(void *p)
{
    coil_deferred_list_result *res = p;
    destroy_items(res->items, res->count);
    free(res);
}

static void first_result_destroy(void *p)
{
    coil_deferred_first_result *res = p;
    if (res->destroy)
        res->destroy(res->value);
    free(res);
}

static void state_unref(void *p)
{
    list_state *s = p;
    if (--s->refs > 0)
        return;
    destroy_items(s->items, s->n);
    free(s->children);
    free(s);
}

/* Stop holding the list deferred and return it; the caller drops the
 * reference once it no longer uses `s` (dropping it may free the state). The
 * outcomes recorded so far will never be delivered. */
static coil_deferred *release_list(list_state *s)
{
    coil_deferred *list = s->list;
    s->list = NULL;
    destroy_items(s->items, s->n);
    s->items = NULL;
    return list;
}

/* Fire the list deferred, once. */
static void fire_list(list_state *s, void *value, coil_destroy_fn destroy,
                      coil_failure *failure)
{
    coil_deferred *list = release_list(s);
    if (failure)
        coil_deferred_errback(list, failure);
    else
        coil_deferred_callback(list, value, destroy);
    coil_deferred_unref(list);
}

/* A COIL_EFIRSTERROR failure carries the failing child's index as a value
 * (Twisted's FirstError.index); its cause is that child's failure. */
static coil_failure *with_index(coil_failure *f, size_t index)
{
    coil__failure_set_index(f, index);
    return f;
}

int coil_deferred_list_first_error_index(const coil_failure *f, size_t *index)
{
    for (; f; f = coil_failure_cause(f)) {
        size_t i;
        if (coil_failure_domain(f) == COIL_DOMAIN_COIL &&
            coil_failure_code(f) == COIL_EFIRSTERROR && coil__failure_index(f, &i)) {
            if (index)
                *index = i;
            return 0;
        }
    }
    return COIL_EINVAL;
}

static coil_failure *oom_failure(void)
{
    return coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                            "out of memory building a deferred list's result");
}

/* Every child has fired and the list is still open. */
static void fire_all(list_state *s)
{
    if (s->flags & COIL_DL_FIRE_ON_ONE_CALLBACK) {
        /* No child succeeded. There is no first result to give, and a list
         * result in its place would have the wrong type for the callback. */
        fire_list(
            s, NULL, NULL,
            with_index(coil_failure_wrap(coil_failure_copy(s->items[0].failure),
                                         COIL_DOMAIN_COIL, COIL_EFIRSTERROR,
                                         "none of the %zu deferreds succeeded", s->n),
                       0));
        return;
    }
    coil_deferred_list_result *res = malloc(sizeof *res);
    if (!res) {
        fire_list(s, NULL, NULL, oom_failure());
        return;
    }
    res->count = s->n;
    res->items = s->items;
    s->items = NULL;
    fire_list(s, res, list_result_destroy, NULL);
}

static void on_child(coil_deferred *child, void *arg)
{
    list_slot *slot = arg;
    list_state *s = slot->state;
    int failed = coil_deferred_is_failure(child);
    s->remaining--;
    if (s->list && coil_deferred_called(s->list)) {
        /* Fired from outside (cancelled): the outcomes have nowhere to go. */
        coil_deferred_unref(release_list(s)); /* our slot keeps `s` alive */
    }
    if (s->list) {
        coil_deferred_list_item *item = &s->items[slot->index];
        if (!failed && (s->flags & COIL_DL_FIRE_ON_ONE_CALLBACK)) {
            coil_deferred_first_result *first = malloc(sizeof *first);
            if (first) {
                first->index = slot->index;
                first->value = coil_deferred_take_result(child, &first->destroy);
                fire_list(s, first, first_result_destroy, NULL);
            } else {
                fire_list(s, NULL, NULL, oom_failure());
            }
        } else if (failed && (s->flags & COIL_DL_FIRE_ON_ONE_ERRBACK)) {
            fire_list(s, NULL, NULL,
                      with_index(coil_failure_wrap(
                                     coil_failure_copy(coil_deferred_failure(child)),
                                     COIL_DOMAIN_COIL, COIL_EFIRSTERROR,
                                     "deferred %zu of %zu failed", slot->index + 1, s->n),
                                 slot->index));
        } else if (failed) {
            item->ok = 0;
            item->failure = coil_failure_copy(coil_deferred_failure(child));
        } else {
            item->ok = 1;
            item->value = coil_deferred_take_result(child, &item->destroy);
        }
        if (s->list && s->remaining == 0)
            fire_all(s);
    }
    if (failed && (s->flags & COIL_DL_CONSUME_ERRORS))
        coil_deferred_set_result(child, NULL, NULL);
}

/* The step's argument: runs once the step has run, or when its child is
 * freed with the step pending. */
static void slot_free(void *p)
{
    list_slot *slot = p;
    list_state *s = slot->state;
    s->children[slot->index] = NULL;
    free(slot);
    coil_deferred *drop = NULL;
    if (--s->live == 0 && !s->building && s->list)
        drop = release_list(s); /* no child left that could fire it */
    state_unref(s);
    coil_deferred_unref(drop);
}

/* Twisted's DeferredList.cancel: cancel every child still pending. Each one
 * then fires (with COIL_ECANCELLED unless its canceller chose otherwise), and
 * the list fires as its flags say. */
static void list_cancel(coil_deferred *list, void *arg)
{
    list_state *s = arg; /* kept alive by `list`, which cancel holds */
    (void)list;
    for (size_t i = 0; i < s->n; i++) {
        coil_deferred *child = s->children[i];
        if (!child)
            continue;
        /* Cancelling runs user code, which may drop the child's last
         * reference: hold one across the call. */
        coil_deferred_ref(child);
        coil_deferred_cancel(child);
        coil_deferred_unref(child);
    }
}

static coil_deferred *empty_list(unsigned flags)
{
    if (flags & COIL_DL_FIRE_ON_ONE_CALLBACK)
        /* As with n children that all failed: no value to give. */
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_EFIRSTERROR,
                                                   "none of the 0 deferreds succeeded"));
    coil_deferred_list_result *res = calloc(1, sizeof *res);
    if (!res)
        return NULL;
    return coil_deferred_succeed(res, list_result_destroy);
}

coil_deferred *coil_deferred_list(coil_deferred *const *children, size_t n,
                                  unsigned flags)
{
    if (n == 0)
        return empty_list(flags);
    list_state *s = calloc(1, sizeof *s);
    coil_deferred_list_item *items = calloc(n, sizeof *items);
    coil_deferred **weak = calloc(n, sizeof *weak);
    coil_deferred *list = NULL;
    if (s && items && weak)
        list = coil__deferred_new_cancellable_full(list_cancel, s, state_unref);
    if (!list) {
        free(s);
        free(items);
        free(weak);
        return NULL;
    }
    s->refs = 2; /* the list deferred's, and ours while the steps are added */
    s->building = 1;
    s->list = coil_deferred_ref(list);
    s->n = s->remaining = n;
    s->flags = flags;
    s->items = items;
    s->children = weak;
    for (size_t i = 0; i < n; i++) {
        list_slot *slot = malloc(sizeof *slot);
        if (!slot)
            goto oom;
        slot->state = s;
        slot->index = i;
        s->refs++;
        s->live++;
        s->children[i] = children[i];
        /* May run the step at once (and free the slot) when the child has
         * fired already. On failure it frees the slot. */
        if (coil_deferred_add_callbacks_full(children[i], on_child, on_child, slot,
                                             slot_free) != 0)
            goto oom;
    }
    s->building = 0;
    /* Defensive: every step ran, so the last one has fired the list. */
    if (s->live == 0 && s->list)
        coil_deferred_unref(release_list(s));
    state_unref(s);
    return list;
oom:
    /* Out of memory half way: steps already added stay, and find the list
     * fired. */
    s->building = 0;
    if (s->list)
        fire_list(s, NULL, NULL,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                   "out of memory building a deferred list"));
    state_unref(s);
    return list;
}

coil_deferred *coil_deferred_gather(coil_deferred *const *children, size_t n)
{
    return coil_deferred_list(children, n,
                              COIL_DL_FIRE_ON_ONE_ERRBACK | COIL_DL_CONSUME_ERRORS);
}
