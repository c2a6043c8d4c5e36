/* Blocking work off the reactor thread: Twisted's deferToThread.
 *
 * Three "password hashes" (a deliberately slow loop standing in for the
 * Argon2id an SSH server runs on each login) go to the reactor's thread
 * pool with coil_defer_to_thread. Meanwhile a looping call ticks every
 * 50 ms on the reactor thread: the loop stays free while the workers grind.
 * When all three results are in (coil_deferred_gather), the reactor stops.
 *
 *   $ ./defer_to_thread
 *   tick 1
 *   ...
 *   tick 9
 *   alice: 200df3e2b2fb0d83 (on a worker, 0.25 s)
 *   bob: 7ea19ebafe021e2e (on a worker, 0.24 s)
 *   carol: 31ebf3129078d883 (on a worker, 0.16 s)
 *   9 ticks while hashing
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <coil/coil.h>

#define ROUNDS 20000000u

static const char *const users[] = {"alice", "bob", "carol"};

typedef struct hashed {
    uint64_t hash;
    double seconds;
} hashed;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs on a worker thread: no coil calls here, only the work. */
static coil_failure *slow_hash(void *arg, void **value, coil_destroy_fn *destroy)
{
    const char *password = arg;
    double start = now();
    uint64_t h = 1469598103934665603u; /* FNV-1a, stretched */
    for (unsigned i = 0; i < ROUNDS; i++)
        h = (h ^ (unsigned char)password[i % strlen(password)]) * 1099511628211u;
    hashed *out = malloc(sizeof *out);
    if (!out)
        return coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory hashing");
    out->hash = h;
    out->seconds = now() - start;
    *value = out;
    *destroy = free;
    return NULL;
}

static int tick(void *arg)
{
    int *ticks = arg;
    printf("tick %d\n", ++*ticks);
    return 0;
}

typedef struct state {
    coil_reactor *r;
    int ok;
} state;

/* Runs on the reactor thread once every hash is done. */
static void all_done(coil_deferred *d, void *arg)
{
    state *s = arg;
    const coil_deferred_list_result *res = coil_deferred_result(d);
    for (size_t i = 0; i < res->count; i++) {
        const hashed *h = res->items[i].value;
        printf("%s: %016" PRIx64 " (on a worker, %.2f s)\n", users[i], h->hash,
               h->seconds);
    }
    s->ok = res->count == 3;
    coil_reactor_stop(s->r);
}

static void failed(coil_deferred *d, void *arg)
{
    state *s = arg;
    coil_failure_print(coil_deferred_failure(d), stderr);
    coil_deferred_set_result(d, NULL, NULL);
    coil_reactor_stop(s->r);
}

int main(void)
{
    state s = {0};
    coil_reactor_options opts = {.thread_pool_size = 2}; /* 3 jobs, 2 threads */
    if (coil_reactor_new(&s.r, &opts) != 0)
        return 1;
    coil_deferred *jobs[3];
    for (int i = 0; i < 3; i++)
        if (!(jobs[i] = coil_defer_to_thread(s.r, slow_hash, (void *)users[i], NULL)))
            return 1;
    coil_deferred *all = coil_deferred_gather(jobs, 3);
    coil_deferred_add_callbacks(all, all_done, failed, &s);

    int ticks = 0;
    coil_looping_call *lc = coil_looping_call_new(s.r, tick, &ticks);
    if (coil_looping_call_start(lc, 0.05, 1, NULL) != 0)
        return 1;
    coil_reactor_run(s.r);
    coil_looping_call_free(lc);

    coil_deferred_unref(all);
    for (int i = 0; i < 3; i++)
        coil_deferred_unref(jobs[i]);
    coil_reactor_free(s.r); /* stops the pool: no thread is left */
    printf("%d ticks while hashing\n", ticks);
    return s.ok ? 0 : 1;
}
