/* A binary min-heap of intrusive nodes keyed on (key, seq): equal keys come
 * out in the order of their sequence numbers. Push, pop, remove and update
 * are O(log n); each node knows its index, so removal needs no search. */
#ifndef COIL_CORE_HEAP_H
#define COIL_CORE_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct coil__heap_node {
    int64_t key;
    uint64_t seq;
    size_t index; /* position in the heap; SIZE_MAX when not in it */
} coil__heap_node;

typedef struct coil__heap {
    coil__heap_node **items;
    size_t len;
    size_t cap;
} coil__heap;

void coil__heap_init(coil__heap *h);
void coil__heap_destroy(coil__heap *h);
/* 0 or COIL_ENOMEM. */
int coil__heap_push(coil__heap *h, coil__heap_node *n);
coil__heap_node *coil__heap_top(const coil__heap *h);
coil__heap_node *coil__heap_pop(coil__heap *h);
void coil__heap_remove(coil__heap *h, coil__heap_node *n);
/* Restore order after n->key or n->seq changed. */
void coil__heap_update(coil__heap *h, coil__heap_node *n);

static inline int coil__heap_contains(const coil__heap_node *n)
{
    return n->index != SIZE_MAX;
}

#endif
