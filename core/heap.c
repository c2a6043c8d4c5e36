/* Array-backed binary min-heap; see heap.h. */
#include "heap.h"

#include <stdlib.h>

#include <coil/error.h>

static inline int less(const coil__heap_node *a, const coil__heap_node *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static inline void place(coil__heap *h, size_t i, coil__heap_node *n)
{
    h->items[i] = n;
    n->index = i;
}

static void sift_up(coil__heap *h, size_t i)
{
    coil__heap_node *n = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!less(n, h->items[parent]))
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(coil__heap *h, size_t i)
{
    coil__heap_node *n = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && less(h->items[child + 1], h->items[child]))
            child++;
        if (!less(h->items[child], n))
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, n);
}

void coil__heap_init(coil__heap *h)
{
    h->items = NULL;
    h->len = h->cap = 0;
}

void coil__heap_destroy(coil__heap *h)
{
    free(h->items);
    coil__heap_init(h);
}

int coil__heap_push(coil__heap *h, coil__heap_node *n)
{
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        coil__heap_node **items = realloc(h->items, cap * sizeof *items);
        if (!items)
            return COIL_ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    place(h, h->len++, n);
    sift_up(h, n->index);
    return 0;
}

coil__heap_node *coil__heap_top(const coil__heap *h)
{
    return h->len ? h->items[0] : NULL;
}

void coil__heap_remove(coil__heap *h, coil__heap_node *n)
{
    size_t i = n->index;
    if (i == SIZE_MAX || i >= h->len || h->items[i] != n)
        return;
    n->index = SIZE_MAX;
    coil__heap_node *last = h->items[--h->len];
    if (i == h->len)
        return;
    place(h, i, last);
    if (i > 0 && less(last, h->items[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

coil__heap_node *coil__heap_pop(coil__heap *h)
{
    coil__heap_node *n = coil__heap_top(h);
    if (n)
        coil__heap_remove(h, n);
    return n;
}

void coil__heap_update(coil__heap *h, coil__heap_node *n)
{
    size_t i = n->index;
    if (i == SIZE_MAX)
        return;
    if (i > 0 && less(n, h->items[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}
