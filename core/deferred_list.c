/* Deferred lists and gather (Twisted's DeferredList and gatherResults).
 *
 * No reference cycles: each child's step holds a reference to the shared
 * state, the state holds the list deferred until it fires, and nothing
 * holds the children (their producers and callers do). A child freed
 * without firing releases its step, so an abandoned list is freed too. */
#include "deferred_internal.h"

#include <stdlib.h>

typedef struct list_state {
    int refs;
    coil_deferred *list; /* until it fires */
    size_t n, remaining;
    unsigned flags;
    coil_deferred_list_item *items;
} list_state;

typedef struct list_slot {
    list_state *state;
    size_t index;
} list_slot;

static void destroy_items(coil_deferred_list_item *items, size_t n)
{
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

static void state_unref(list_state *s)
{
    if (--s->refs > 0)
        return;
    destroy_items(s->items, s->items ? s->n : 0);
    /* Every child went away without the list firing. */
    coil_deferred_unref(s->list);
    free(s);
}

static void slot_free(void *p)
{
    list_slot *slot = p;
    state_unref(slot->state);
    free(slot);
}

/* Fire the list deferred (once) and drop the state's reference to it. */
static void fire_list(list_state *s, void *value, coil_destroy_fn destroy,
                      coil_failure *failure)
{
    coil_deferred *list = s->list;
    s->list = NULL;
    if (failure)
        coil_deferred_errback(list, failure);
    else
        coil_deferred_callback(list, value, destroy);
    coil_deferred_unref(list);
}

static void fire_all(list_state *s)
{
    coil_deferred_list_result *res = malloc(sizeof *res);
    if (!res) {
        fire_list(s, NULL, NULL,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                   "out of memory building a deferred list's result"));
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
    if (s->list) {
        coil_deferred_list_item *item = &s->items[slot->index];
        if (!failed && (s->flags & COIL_DL_FIRE_ON_ONE_CALLBACK)) {
            coil_deferred_first_result *first = malloc(sizeof *first);
            if (first) {
                first->index = slot->index;
                first->value = coil_deferred_take_result(child, &first->destroy);
                fire_list(s, first, first_result_destroy, NULL);
            } else {
                fire_list(s, NULL, NULL,
                          coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                           "out of memory building a deferred list's "
                                           "result"));
            }
        } else if (failed && (s->flags & COIL_DL_FIRE_ON_ONE_ERRBACK)) {
            fire_list(s, NULL, NULL,
                      coil_failure_wrap(coil_failure_copy(coil_deferred_failure(child)),
                                        COIL_DOMAIN_COIL, COIL_EFIRSTERROR,
                                        "deferred %zu of %zu failed", slot->index + 1,
                                        s->n));
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

coil_deferred *coil_deferred_list(coil_deferred *const *children, size_t n,
                                  unsigned flags)
{
    coil_deferred *list = coil_deferred_new();
    if (!list)
        return NULL;
    if (n == 0) {
        coil_deferred_list_result *res = calloc(1, sizeof *res);
        if (!res) {
            coil_deferred_unref(list);
            return NULL;
        }
        coil_deferred_callback(list, res, list_result_destroy);
        return list;
    }
    list_state *s = calloc(1, sizeof *s);
    coil_deferred_list_item *items = calloc(n, sizeof *items);
    if (!s || !items) {
        free(s);
        free(items);
        coil_deferred_unref(list);
        return NULL;
    }
    s->refs = 1; /* ours, while the steps are added */
    s->list = coil_deferred_ref(list);
    s->n = s->remaining = n;
    s->flags = flags;
    s->items = items;
    for (size_t i = 0; i < n; i++) {
        list_slot *slot = malloc(sizeof *slot);
        if (!slot)
            goto oom;
        slot->state = s;
        slot->index = i;
        s->refs++;
        if (coil_deferred_add_callbacks_full(children[i], on_child, on_child, slot,
                                             slot_free) != 0)
            goto oom;
    }
    state_unref(s);
    return list;
oom:
    /* Steps already added stay; they see a list that has failed. */
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
