/* The timer heap: order, ties in insertion order, removal from the middle. */
#include <stdint.h>
#include <stdlib.h>

#include "heap.h"
#include "testutil.h"

static int cmp_node(const void *a, const void *b)
{
    const coil__heap_node *x = *(coil__heap_node *const *)a;
    const coil__heap_node *y = *(coil__heap_node *const *)b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void test_heap_random(void)
{
    enum { N = 20000 };
    coil__heap h;
    coil__heap_init(&h);
    coil__heap_node *nodes = calloc(N, sizeof *nodes);
    coil__heap_node **expect = calloc(N, sizeof *expect);
    srand(42);
    for (size_t i = 0; i < N; i++) {
        nodes[i].key = rand() % 1000; /* many ties */
        nodes[i].seq = i;
        nodes[i].index = SIZE_MAX;
        CU_ASSERT_EQUAL_FATAL(coil__heap_push(&h, &nodes[i]), 0);
    }
    /* Remove every third node from wherever it sits. */
    size_t kept = 0;
    for (size_t i = 0; i < N; i++) {
        if (i % 3 == 0) {
            coil__heap_remove(&h, &nodes[i]);
            CU_ASSERT(!coil__heap_contains(&nodes[i]));
        } else {
            expect[kept++] = &nodes[i];
        }
    }
    /* Move some keys and restore the order. */
    for (size_t i = 1; i < N; i += 7) {
        if (i % 3 == 0)
            continue;
        nodes[i].key = rand() % 1000;
        coil__heap_update(&h, &nodes[i]);
    }
    qsort(expect, kept, sizeof *expect, cmp_node);
    CU_ASSERT_EQUAL(h.len, kept);
    for (size_t i = 0; i < kept; i++) {
        coil__heap_node *n = coil__heap_pop(&h);
        CU_ASSERT_PTR_EQUAL(n, expect[i]);
        if (n != expect[i])
            break;
    }
    CU_ASSERT_PTR_NULL(coil__heap_pop(&h));
    coil__heap_destroy(&h);
    free(nodes);
    free(expect);
}

static void test_heap_remove_twice_is_harmless(void)
{
    coil__heap h;
    coil__heap_init(&h);
    coil__heap_node a = {5, 0, SIZE_MAX}, b = {3, 1, SIZE_MAX};
    CU_ASSERT_EQUAL(coil__heap_push(&h, &a), 0);
    CU_ASSERT_EQUAL(coil__heap_push(&h, &b), 0);
    CU_ASSERT_PTR_EQUAL(coil__heap_top(&h), &b);
    coil__heap_remove(&h, &b);
    coil__heap_remove(&h, &b);
    CU_ASSERT_EQUAL(h.len, 1);
    CU_ASSERT_PTR_EQUAL(coil__heap_top(&h), &a);
    coil__heap_destroy(&h);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_heap_random),
        COIL_TEST(test_heap_remove_twice_is_harmless),
        {NULL, NULL},
    };
    return coil_test_add_suite("heap", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
