/* The reactor's thread pool (coil_defer_to_thread: results, failures,
 * cancellation, the bounded queue, shutdown and freeing with jobs running)
 * and host-name resolution on it (a slow resolver does not stall other
 * connections; resolution timeout, cancellation and failure). */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Turn the loop until *flag reaches `want` (or `limit` seconds pass: the
 * test then fails on its own assertion). Returns 1 when it did. */
static int turn_until(coil_reactor *r, const int *flag, int want, double limit)
{
    double end = now_s() + limit;
    while (*flag < want && now_s() < end)
        coil_reactor_iterate(r, 0.05);
    return *flag >= want;
}

static pthread_t reactor_thread;

/* ---- a gate the test opens, and jobs that wait at it ---- */

typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
    int started; /* jobs that reached the gate */
} gate;

static gate the_gate;

static void gate_init(void)
{
    pthread_mutex_init(&the_gate.lock, NULL);
    pthread_cond_init(&the_gate.cond, NULL);
    the_gate.open = 0;
    the_gate.started = 0;
}

static void gate_destroy(void)
{
    pthread_cond_destroy(&the_gate.cond);
    pthread_mutex_destroy(&the_gate.lock);
}

static void gate_open(void)
{
    pthread_mutex_lock(&the_gate.lock);
    the_gate.open = 1;
    pthread_cond_broadcast(&the_gate.cond);
    pthread_mutex_unlock(&the_gate.lock);
}

/* Wait (the test thread) until `n` jobs have reached the gate. */
static void gate_wait_started(int n)
{
    pthread_mutex_lock(&the_gate.lock);
    while (the_gate.started < n)
        pthread_cond_wait(&the_gate.cond, &the_gate.lock);
    pthread_mutex_unlock(&the_gate.lock);
}

static atomic_int values_destroyed;
static atomic_int args_destroyed;
static atomic_int jobs_ran;

static void value_destroy(void *v)
{
    atomic_fetch_add(&values_destroyed, 1);
    free(v);
}

static void arg_destroy(void *arg)
{
    /* destroy_arg runs on the reactor thread. */
    CU_ASSERT(pthread_equal(pthread_self(), reactor_thread));
    atomic_fetch_add(&args_destroyed, 1);
}

/* Wait at the gate, then return the integer arg as a value. */
static coil_failure *gated_job(void *arg, void **value, coil_destroy_fn *destroy)
{
    pthread_mutex_lock(&the_gate.lock);
    the_gate.started++;
    pthread_cond_broadcast(&the_gate.cond);
    while (!the_gate.open)
        pthread_cond_wait(&the_gate.cond, &the_gate.lock);
    pthread_mutex_unlock(&the_gate.lock);
    atomic_fetch_add(&jobs_ran, 1);
    int *v = malloc(sizeof *v);
    *v = (int)(intptr_t)arg;
    *value = v;
    *destroy = value_destroy;
    return NULL;
}

static coil_failure *counted_job(void *arg, void **value, coil_destroy_fn *destroy)
{
    atomic_fetch_add(&jobs_ran, 1);
    int *v = malloc(sizeof *v);
    *v = (int)(intptr_t)arg;
    *value = v;
    *destroy = value_destroy;
    return NULL;
}

/* ---- what a deferred fired with ---- */

typedef struct outcome {
    int fired;
    int ok;
    int value;
    int code;
    char message[200];
    int on_reactor_thread;
} outcome;

static void record_outcome(coil_deferred *d, void *arg)
{
    outcome *o = arg;
    o->fired++;
    o->on_reactor_thread = pthread_equal(pthread_self(), reactor_thread);
    if (coil_deferred_is_failure(d)) {
        const coil_failure *f = coil_deferred_failure(d);
        o->ok = 0;
        o->code = coil_failure_code(f);
        snprintf(o->message, sizeof o->message, "%s", coil_failure_message(f));
        coil_deferred_set_result(d, NULL, NULL); /* handled */
    } else {
        o->ok = 1;
        const int *v = coil_deferred_result(d);
        o->value = v ? *v : -1;
    }
}

static coil_deferred *submit(coil_reactor *r, coil_thread_fn fn, int arg, outcome *o)
{
    memset(o, 0, sizeof *o);
    coil_deferred *d = coil_defer_to_thread(r, fn, (void *)(intptr_t)arg, arg_destroy);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(coil_deferred_add_both(d, record_outcome, o), 0);
    return d;
}

static coil_reactor *pool_reactor(size_t threads, size_t queue)
{
    coil_reactor_options opts = {0};
    opts.thread_pool_size = threads;
    opts.thread_pool_queue = queue;
    coil_reactor *r = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_reactor_new(&r, &opts), 0);
    reactor_thread = pthread_self();
    gate_init();
    atomic_store(&values_destroyed, 0);
    atomic_store(&args_destroyed, 0);
    atomic_store(&jobs_ran, 0);
    return r;
}

static void pool_end(coil_reactor *r)
{
    coil_reactor_free(r);
    gate_destroy();
}

/* ---- deferToThread ---- */

typedef struct worker_seen {
    pthread_t thread;
} worker_seen;

static coil_failure *hello_job(void *arg, void **value, coil_destroy_fn *destroy)
{
    ((worker_seen *)arg)->thread = pthread_self();
    *value = strdup("hello from a worker");
    *destroy = free;
    return NULL;
}

static void take_string(coil_deferred *d, void *arg)
{
    char **out = arg;
    CU_ASSERT(pthread_equal(pthread_self(), reactor_thread));
    *out = coil_deferred_take_result(d, NULL);
}

static void test_result(void)
{
    coil_reactor *r = pool_reactor(0, 0);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.threads, 0); /* nothing started before the first job */
    CU_ASSERT_EQUAL(st.max_threads, COIL_THREAD_POOL_DEFAULT_SIZE);
    CU_ASSERT_EQUAL(st.max_queued, COIL_THREAD_POOL_DEFAULT_QUEUE);

    worker_seen seen;
    char *got = NULL;
    coil_deferred *d = coil_defer_to_thread(r, hello_job, &seen, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(coil_deferred_called(d), 0); /* never inside the call */
    coil_deferred_add_callback(d, take_string, &got);
    double end = now_s() + 10;
    while (!coil_deferred_called(d) && now_s() < end)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_FATAL(coil_deferred_called(d));
    CU_ASSERT_STRING_EQUAL(got, "hello from a worker");
    CU_ASSERT(!pthread_equal(seen.thread, reactor_thread));
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.threads, 1);
    CU_ASSERT_EQUAL(st.running, 0);
    free(got);
    coil_deferred_unref(d);
    pool_end(r);
}

static coil_failure *failing_job(void *arg, void **value, coil_destroy_fn *destroy)
{
    /* A value set beside a failure is destroyed, not leaked. */
    *value = malloc(16);
    *destroy = value_destroy;
    return coil_failure_new(COIL_DOMAIN_USER, 7, "the disk is on fire");
}

static void test_failure(void)
{
    coil_reactor *r = pool_reactor(0, 0);
    outcome o;
    coil_deferred *d = submit(r, failing_job, 0, &o);
    CU_ASSERT(turn_until(r, &o.fired, 1, 10));
    CU_ASSERT_EQUAL(o.ok, 0);
    CU_ASSERT_EQUAL(o.code, 7);
    CU_ASSERT_STRING_EQUAL(o.message, "the disk is on fire");
    CU_ASSERT(o.on_reactor_thread);
    CU_ASSERT_EQUAL(atomic_load(&values_destroyed), 1);
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 1);
    coil_deferred_unref(d);
    pool_end(r);
}

static void test_bad_arguments(void)
{
    coil_reactor *r = pool_reactor(0, 0);
    CU_ASSERT_PTR_NULL(coil_defer_to_thread(r, NULL, NULL, arg_destroy));
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 1); /* taken in every case */
    CU_ASSERT_PTR_NULL(coil_defer_to_thread(NULL, counted_job, NULL, NULL));
    CU_ASSERT_EQUAL(coil_reactor_set_thread_pool_size(r, 0), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_reactor_set_thread_pool_queue(r, 0), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_reactor_set_thread_pool_size(r, 3), 0);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.max_threads, 3);
    pool_end(r);
}

/* Cancelled while queued: the function never runs. */
static void test_cancel_queued(void)
{
    coil_reactor *r = pool_reactor(1, 0);
    outcome a, b;
    coil_deferred *da = submit(r, gated_job, 1, &a);
    coil_deferred *db = submit(r, counted_job, 2, &b);
    gate_wait_started(1);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.queued, 1);
    CU_ASSERT_EQUAL(st.running, 1);

    coil_deferred_cancel(db);
    CU_ASSERT_EQUAL(b.fired, 1); /* at once */
    CU_ASSERT_EQUAL(b.code, COIL_ECANCELLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.message, "before it ran"));
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 1);
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.queued, 0);

    gate_open();
    CU_ASSERT(turn_until(r, &a.fired, 1, 10));
    CU_ASSERT_EQUAL(a.ok, 1);
    CU_ASSERT_EQUAL(a.value, 1);
    CU_ASSERT_EQUAL(atomic_load(&jobs_ran), 1); /* b's never ran */
    coil_deferred_unref(da);
    coil_deferred_unref(db);
    pool_end(r);
    CU_ASSERT_EQUAL(atomic_load(&jobs_ran), 1);
    CU_ASSERT_EQUAL(atomic_load(&values_destroyed), 1);
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 2);
}

/* Cancelled while running: fails at once; the result is destroyed when it
 * arrives. */
static void test_cancel_running(void)
{
    coil_reactor *r = pool_reactor(1, 0);
    outcome a;
    coil_deferred *da = submit(r, gated_job, 5, &a);
    gate_wait_started(1);
    coil_deferred_cancel(da);
    CU_ASSERT_EQUAL(a.fired, 1);
    CU_ASSERT_EQUAL(a.code, COIL_ECANCELLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.message, "discarded"));
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 0); /* fn still has it */
    coil_deferred_unref(da); /* the pool keeps its own reference */
    gate_open();
    int arg_gone = 0;
    double end = now_s() + 10;
    while (!(arg_gone = atomic_load(&args_destroyed)) && now_s() < end)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(arg_gone, 1);
    CU_ASSERT_EQUAL(atomic_load(&values_destroyed), 1); /* discarded */
    CU_ASSERT_EQUAL(a.fired, 1);                        /* not fired again */
    pool_end(r);
}

/* Past the queue bound a job fails at once with COIL_EBUSY. */
static void test_queue_bound(void)
{
    coil_reactor *r = pool_reactor(1, 2);
    outcome o[4];
    coil_deferred *d[4];
    d[0] = submit(r, gated_job, 0, &o[0]);
    gate_wait_started(1);
    d[1] = submit(r, gated_job, 1, &o[1]);
    d[2] = submit(r, gated_job, 2, &o[2]);
    d[3] = submit(r, gated_job, 3, &o[3]);
    CU_ASSERT_EQUAL(o[3].fired, 1);
    CU_ASSERT_EQUAL(o[3].code, COIL_EBUSY);
    CU_ASSERT_STRING_EQUAL(o[3].message,
                           "thread pool queue is full: 2 jobs waiting for 1 threads");
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 1);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.threads, 1);
    CU_ASSERT_EQUAL(st.queued, 2);
    gate_open();
    for (int i = 0; i < 3; i++) {
        CU_ASSERT(turn_until(r, &o[i].fired, 1, 10));
        CU_ASSERT_EQUAL(o[i].value, i);
    }
    CU_ASSERT_EQUAL(atomic_load(&jobs_ran), 3);
    for (int i = 0; i < 4; i++)
        coil_deferred_unref(d[i]);
    pool_end(r);
}

/* Threads start on demand, up to the limit. */
static void test_lazy_threads(void)
{
    coil_reactor *r = pool_reactor(2, 0);
    outcome o[4];
    coil_deferred *d[4];
    for (int i = 0; i < 4; i++)
        d[i] = submit(r, gated_job, i, &o[i]);
    gate_wait_started(2);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.threads, 2);
    CU_ASSERT_EQUAL(st.running, 2);
    CU_ASSERT_EQUAL(st.queued, 2);
    gate_open();
    for (int i = 0; i < 4; i++)
        CU_ASSERT(turn_until(r, &o[i].fired, 1, 10));
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.threads, 2);
    CU_ASSERT_EQUAL(st.running, 0);
    for (int i = 0; i < 4; i++)
        coil_deferred_unref(d[i]);
    pool_end(r);
}

/* Many jobs through a small pool, every result delivered once. */
#define MANY 20000

static int many_done;
static long many_sum;

static void many_step(coil_deferred *d, void *arg)
{
    const int *v = coil_deferred_result(d);
    many_sum += *v;
    many_done++;
}

static void test_many_jobs(void)
{
    coil_reactor *r = pool_reactor(4, MANY);
    many_done = 0;
    many_sum = 0;
    double t0 = now_s();
    for (int i = 0; i < MANY; i++) {
        coil_deferred *d =
            coil_defer_to_thread(r, counted_job, (void *)(intptr_t)i, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        coil_deferred_add_callback(d, many_step, NULL);
        coil_deferred_unref(d);
    }
    CU_ASSERT(turn_until(r, &many_done, MANY, 60));
    double t = now_s() - t0;
    CU_ASSERT_EQUAL(many_sum, (long)MANY * (MANY - 1) / 2);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT(st.threads >= 1 && st.threads <= 4);
    printf("\n    %d jobs through 4 threads: %.3f s (%.1f us per job) ", MANY, t,
           t / MANY * 1e6);
    pool_end(r);
    CU_ASSERT_EQUAL(atomic_load(&values_destroyed), MANY);
}

/* Shutdown: queued jobs are cancelled, a running one is waited for while the
 * loop turns, then every thread is joined. */
static outcome shut_a, shut_b, shut_late;
static int stop_now(void *arg)
{
    gate_wait_started(1);
    coil_reactor_stop(arg);
    return 0;
}

static coil_deferred *open_gate_trigger(void *arg)
{
    /* Runs after the pool's own "during" trigger: a is running then. */
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(arg, &st);
    CU_ASSERT_EQUAL(st.running, 1);
    CU_ASSERT_EQUAL(st.queued, 0);
    CU_ASSERT_EQUAL(shut_b.fired, 1); /* cancelled by the pool's trigger */
    /* While the pool stops, new jobs fail at once. */
    coil_deferred *late = submit(arg, counted_job, 9, &shut_late);
    coil_deferred_unref(late);
    gate_open();
    return NULL;
}

static void test_shutdown_waits_for_running(void)
{
    coil_reactor *r = pool_reactor(1, 0);
    coil_deferred *da = submit(r, gated_job, 11, &shut_a);
    coil_deferred *db = submit(r, counted_job, 12, &shut_b);
    coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_DURING, open_gate_trigger,
                             r);
    coil_reactor_call_when_running(r, stop_now, r);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    CU_ASSERT_EQUAL(shut_a.fired, 1);
    CU_ASSERT_EQUAL(shut_a.ok, 1);
    CU_ASSERT_EQUAL(shut_a.value, 11);
    CU_ASSERT_EQUAL(shut_b.fired, 1);
    CU_ASSERT_EQUAL(shut_b.code, COIL_ECANCELLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(shut_b.message, "shutting down"));
    CU_ASSERT_EQUAL(shut_late.fired, 1);
    CU_ASSERT_EQUAL(shut_late.code, COIL_ESTATE);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.threads, 0); /* joined */
    CU_ASSERT_EQUAL(atomic_load(&jobs_ran), 1);

    /* The pool works again after a shutdown (a reactor may run again). */
    outcome again;
    coil_deferred *dc = submit(r, counted_job, 13, &again);
    CU_ASSERT(turn_until(r, &again.fired, 1, 10));
    CU_ASSERT_EQUAL(again.value, 13);
    coil_deferred_unref(da);
    coil_deferred_unref(db);
    coil_deferred_unref(dc);
    pool_end(r);
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 4);
}

/* Freeing the reactor with a job running joins it and delivers its result;
 * queued jobs are cancelled. */
static coil_failure *busy_job(void *arg, void **value, coil_destroy_fn *destroy)
{
    pthread_mutex_lock(&the_gate.lock);
    the_gate.started++;
    pthread_cond_broadcast(&the_gate.cond);
    pthread_mutex_unlock(&the_gate.lock);
    sleep_s(0.2); /* the work: still running when the reactor is freed */
    return counted_job(arg, value, destroy);
}

static void test_free_with_job_running(void)
{
    coil_reactor *r = pool_reactor(1, 0);
    outcome a, b;
    coil_deferred *da = submit(r, busy_job, 21, &a);
    coil_deferred *db = submit(r, counted_job, 22, &b);
    coil_deferred_unref(da);
    coil_deferred_unref(db);
    gate_wait_started(1);
    pool_end(r);
    CU_ASSERT_EQUAL(a.fired, 1);
    CU_ASSERT_EQUAL(a.ok, 1);
    CU_ASSERT_EQUAL(a.value, 21);
    CU_ASSERT_EQUAL(b.fired, 1);
    CU_ASSERT_EQUAL(b.code, COIL_ECANCELLED);
    CU_ASSERT_EQUAL(atomic_load(&jobs_ran), 1);
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 2);
    CU_ASSERT_EQUAL(atomic_load(&values_destroyed), 1);
}

/* A queued job's errback that cancels another queued job while the pool
 * cancels them all (at reactor free). */
static coil_deferred *victim;
static int victim_cancelled;

static void cancel_victim(coil_deferred *d, void *arg)
{
    victim_cancelled++;
    coil_deferred_cancel(victim);
}

static void test_cancel_from_callback_while_stopping(void)
{
    coil_reactor *r = pool_reactor(1, 0);
    outcome a, b, c;
    coil_deferred *da = submit(r, busy_job, 1, &a);
    coil_deferred *db = submit(r, counted_job, 2, &b);
    coil_deferred *dc = submit(r, counted_job, 3, &c);
    victim = dc;
    coil_deferred_add_both(db, cancel_victim, NULL);
    victim_cancelled = 0;
    gate_wait_started(1);
    pool_end(r);
    CU_ASSERT_EQUAL(a.value, 1);
    CU_ASSERT_EQUAL(b.code, COIL_ECANCELLED);
    CU_ASSERT_EQUAL(victim_cancelled, 1);
    CU_ASSERT_EQUAL(c.fired, 1);
    CU_ASSERT_EQUAL(c.code, COIL_ECANCELLED);
    CU_ASSERT_EQUAL(atomic_load(&jobs_ran), 1);
    CU_ASSERT_EQUAL(atomic_load(&args_destroyed), 3);
    coil_deferred_unref(da);
    coil_deferred_unref(db);
    coil_deferred_unref(dc);
}

/* ---- name resolution on the pool ---- */

typedef struct slow_resolver {
    double delay;
    int fail;
    atomic_int calls;
    atomic_int entered;
    atomic_int on_reactor_thread; /* must stay 0 */
} slow_resolver;

/* Sleeps (the slow DNS server being simulated), then answers 127.0.0.1 for
 * any name. */
static int slow_resolve(void *arg, const char *host, const char *service,
                        const struct addrinfo *hints, struct addrinfo **res)
{
    slow_resolver *s = arg;
    atomic_fetch_add(&s->calls, 1);
    atomic_store(&s->entered, 1);
    if (pthread_equal(pthread_self(), reactor_thread))
        atomic_store(&s->on_reactor_thread, 1); /* CUnit is not thread-safe */
    sleep_s(s->delay);
    if (s->fail)
        return EAI_NONAME;
    return getaddrinfo("127.0.0.1", service, hints, res);
}

static void wait_entered(coil_reactor *r, slow_resolver *s)
{
    double end = now_s() + 10;
    while (!atomic_load(&s->entered) && now_s() < end)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT_FATAL(atomic_load(&s->entered));
}

/* An echo server. */
static void echo_data(coil_protocol *p, const void *data, size_t len)
{
    coil_transport_write(p->transport, data, len);
}

static void proto_free(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops echo_ops = {.data_received = echo_data,
                                           .destroy = proto_free};

static int servers_built;

static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    coil_protocol *p = calloc(1, sizeof *p);
    p->ops = &echo_ops;
    servers_built++;
    return p;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};
static coil_factory echo_factory = {&echo_factory_ops, 0, NULL};

static coil_listener *listen_echo(coil_reactor *r, int *port)
{
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    coil_listener *l = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &echo_factory, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL_FATAL(coil_listener_get_host(l, &a), 0);
    *port = coil_address_port(&a);
    return l;
}

/* A client that plays ping-pong: one byte out, its echo back, again, until
 * `target` round trips. */
typedef struct pinger {
    coil_protocol base;
    int rounds, target;
    int connected, failed, failure_code;
    char failure[256];
    double connected_at;
} pinger;

static void ping(pinger *c)
{
    if (c->base.transport && c->rounds < c->target)
        coil_transport_write(c->base.transport, "p", 1);
}

static void pinger_made(coil_protocol *p)
{
    pinger *c = (pinger *)p;
    c->connected = 1;
    c->connected_at = now_s();
    ping(c);
}

static void pinger_data(coil_protocol *p, const void *data, size_t len)
{
    pinger *c = (pinger *)p;
    c->rounds += (int)len;
    ping(c);
}

static void pinger_destroy(coil_protocol *p)
{
}

static const coil_protocol_ops pinger_ops = {.connection_made = pinger_made,
                                             .data_received = pinger_data,
                                             .destroy = pinger_destroy};

typedef struct pinger_factory {
    coil_factory base;
    pinger *p;
} pinger_factory;

static coil_protocol *pinger_build(coil_factory *f, const coil_address *peer)
{
    return &((pinger_factory *)f)->p->base;
}

static void pinger_failed(coil_factory *f, coil_connector *k, const coil_failure *reason)
{
    pinger *c = ((pinger_factory *)f)->p;
    c->failed++;
    c->failure_code = coil_failure_code(reason);
    coil_failure_format(reason, c->failure, sizeof c->failure);
}

static const coil_factory_ops pinger_factory_ops = {.build_protocol = pinger_build,
                                                    .connection_failed = pinger_failed};

static coil_connector *connect_pinger(coil_reactor *r, const char *host, int port,
                                      slow_resolver *res, double resolve_timeout,
                                      pinger *c, pinger_factory *f, int target)
{
    memset(c, 0, sizeof *c);
    c->base.ops = &pinger_ops;
    c->target = target;
    f->base.ops = &pinger_factory_ops;
    f->base.users = 0;
    f->p = c;
    coil_tcp_connect_options o = {0};
    o.host = host;
    o.port = port;
    o.resolve_timeout = resolve_timeout;
    if (res) {
        o.resolver = slow_resolve;
        o.resolver_arg = res;
    }
    coil_connector *k = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &o, &f->base, &k), 0);
    return k;
}

/* Close the client connections, free the connectors and the listener, and
 * turn the loop until every socket is closed. */
static void finish_pingers(coil_reactor *r, pinger *const *ps, coil_connector *const *ks,
                           int n, coil_listener *l)
{
    for (int i = 0; i < n; i++) {
        if (ps[i]->base.transport)
            coil_transport_lose_connection(ps[i]->base.transport);
        coil_connector_free(ks[i]);
    }
    coil_listener_close(l);
    double settle = now_s() + 5;
    while (coil_reactor_watch_count(r) > 0 && now_s() < settle)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(coil_reactor_watch_count(r), 0);
}

#define FAST       4
#define FAST_MORE  50
#define SLOW_DELAY 2.0

/* The point of it all: while one connection waits 2 s for its name, the
 * others on the same reactor keep echoing. A resolver called on the reactor
 * thread would hold every round trip back for the 2 s. */
static void test_slow_resolver_does_not_stall(void)
{
    coil_reactor *r = pool_reactor(0, 0);
    int port;
    coil_listener *l = listen_echo(r, &port);
    pinger fast[FAST];
    pinger_factory ff[FAST];
    coil_connector *fk[FAST];
    for (int i = 0; i < FAST; i++)
        fk[i] = connect_pinger(r, "127.0.0.1", port, NULL, 0, &fast[i], &ff[i], 1);
    for (int i = 0; i < FAST; i++)
        CU_ASSERT_FATAL(turn_until(r, &fast[i].rounds, 1, 10));

    slow_resolver sr = {.delay = SLOW_DELAY};
    pinger slow;
    pinger_factory sf;
    double t0 = now_s();
    coil_connector *sk = connect_pinger(r, "localhost", port, &sr, 0, &slow, &sf, 1);
    double connect_call = now_s() - t0;
    /* Wait for the worker to be inside the slow lookup (an event, not a
     * guess), then time the others' round trips against it. */
    double entered_by = now_s() + 10;
    while (!atomic_load(&sr.entered) && now_s() < entered_by)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT_FATAL(atomic_load(&sr.entered));
    double t1 = now_s();
    for (int i = 0; i < FAST; i++) {
        fast[i].target += FAST_MORE;
        ping(&fast[i]);
    }
    int all = 0;
    double end = t1 + 20;
    while (!all && now_s() < end) {
        coil_reactor_iterate(r, 0.05);
        all = 1;
        for (int i = 0; i < FAST; i++)
            all &= fast[i].rounds >= fast[i].target;
    }
    double fast_done = now_s() - t1;
    CU_ASSERT(all);
    CU_ASSERT_EQUAL(slow.connected, 0); /* the slow lookup is not finished */
    CU_ASSERT(connect_call < 0.5);
    CU_ASSERT(fast_done < 1.0);

    /* The slow one gets there too, once its name resolves. */
    CU_ASSERT(turn_until(r, &slow.rounds, 1, 20));
    double slow_done = slow.connected_at - t0;
    CU_ASSERT(slow_done >= SLOW_DELAY - 0.05);
    CU_ASSERT_EQUAL(slow.failed, 0);
    CU_ASSERT_EQUAL(atomic_load(&sr.on_reactor_thread), 0);
    printf("\n    coil_tcp_connect returned in %.4f s; %d x %d round trips done after "
           "%.4f s; the slow name connected after %.3f s ",
           connect_call, FAST, FAST_MORE, fast_done, slow_done);
    pinger *ps[FAST + 1];
    coil_connector *ks[FAST + 1];
    for (int i = 0; i < FAST; i++) {
        ps[i] = &fast[i];
        ks[i] = fk[i];
    }
    ps[FAST] = &slow;
    ks[FAST] = sk;
    finish_pingers(r, ps, ks, FAST + 1, l);
    pool_end(r);
}

/* Numeric addresses never go to the pool. */
static void test_numeric_stays_synchronous(void)
{
    coil_reactor *r = pool_reactor(0, 0);
    int port;
    coil_listener *l = listen_echo(r, &port);
    slow_resolver sr = {.delay = 0};
    pinger c;
    pinger_factory f;
    coil_connector *k = connect_pinger(r, "127.0.0.1", port, &sr, 0, &c, &f, 1);
    CU_ASSERT(turn_until(r, &c.rounds, 1, 10));
    CU_ASSERT_EQUAL(atomic_load(&sr.calls), 0);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.threads, 0);
    pinger *ps[1] = {&c};
    finish_pingers(r, ps, &k, 1, l);
    pool_end(r);
}

static void test_resolve_timeout(void)
{
    coil_reactor *r = pool_reactor(0, 0);
    slow_resolver sr = {.delay = 1.0};
    pinger c;
    pinger_factory f;
    double t0 = now_s();
    coil_connector *k = connect_pinger(r, "localhost", 9, &sr, 0.2, &c, &f, 1);
    CU_ASSERT(turn_until(r, &c.failed, 1, 10));
    double t = now_s() - t0;
    CU_ASSERT(t >= 0.19 && t < 0.9);
    CU_ASSERT_EQUAL(c.failure_code, COIL_ETIMEDOUT);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(c.failure, "resolving host name 'localhost' timed out after 0.2 s"));
    CU_ASSERT_EQUAL(c.connected, 0);
    coil_connector_free(k);
    pool_end(r); /* joins the lookup still sleeping; its result is dropped */
    CU_ASSERT_EQUAL(c.connected, 0);
    CU_ASSERT_EQUAL(c.failed, 1);
}

static void test_resolve_failure(void)
{
    coil_reactor *r = pool_reactor(0, 0);
    slow_resolver sr = {.delay = 0, .fail = 1};
    pinger c;
    pinger_factory f;
    coil_connector *k = connect_pinger(r, "nowhere.test", 9, &sr, 0, &c, &f, 1);
    CU_ASSERT_EQUAL(c.failed, 0); /* from the loop, never inside the call */
    CU_ASSERT(turn_until(r, &c.failed, 1, 10));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.failure, "cannot resolve host name 'nowhere.test'"));
    /* Each attempt resolves again. */
    CU_ASSERT_EQUAL(coil_connector_connect(k), 0);
    CU_ASSERT(turn_until(r, &c.failed, 2, 10));
    CU_ASSERT_EQUAL(atomic_load(&sr.calls), 2);
    coil_connector_free(k);
    pool_end(r);
}

/* Stopping the connector while the lookup runs: the attempt fails at once
 * as stopped, the late result is dropped, nothing connects. */
static void test_resolve_cancel_running(void)
{
    coil_reactor *r = pool_reactor(0, 0);
    int port;
    coil_listener *l = listen_echo(r, &port);
    servers_built = 0;
    slow_resolver sr = {.delay = 0.3};
    pinger c;
    pinger_factory f;
    coil_connector *k = connect_pinger(r, "localhost", port, &sr, 0, &c, &f, 1);
    wait_entered(r, &sr);
    CU_ASSERT_EQUAL(coil_connector_connect(k), COIL_ESTATE); /* one at a time */
    coil_connector_stop_connecting(k);
    CU_ASSERT_EQUAL(c.failed, 1);
    CU_ASSERT_EQUAL(c.failure_code, COIL_ECANCELLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.failure, "connecting to localhost:"));
    /* Wait for the lookup to come back and be dropped. */
    coil_thread_pool_stats st;
    double end = now_s() + 10;
    do {
        coil_reactor_iterate(r, 0.05);
        coil_reactor_thread_pool_stats(r, &st);
    } while (st.running > 0 && now_s() < end);
    for (int i = 0; i < 5; i++)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT_EQUAL(c.connected, 0);
    CU_ASSERT_EQUAL(c.failed, 1);
    CU_ASSERT_EQUAL(servers_built, 0);
    coil_connector_free(k);
    coil_listener_close(l);
    pool_end(r);
}

/* Freeing the connector while its lookup is still queued: the resolver is
 * never called. */
static void test_resolve_cancel_queued(void)
{
    coil_reactor *r = pool_reactor(1, 0);
    outcome busy;
    coil_deferred *d = submit(r, gated_job, 0, &busy);
    gate_wait_started(1);
    slow_resolver sr = {.delay = 0};
    pinger c;
    pinger_factory f;
    coil_connector *k = connect_pinger(r, "localhost", 9, &sr, 0, &c, &f, 1);
    coil_thread_pool_stats st;
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.queued, 1);
    coil_connector_free(k);
    coil_reactor_thread_pool_stats(r, &st);
    CU_ASSERT_EQUAL(st.queued, 0);
    gate_open();
    CU_ASSERT(turn_until(r, &busy.fired, 1, 10));
    CU_ASSERT_EQUAL(atomic_load(&sr.calls), 0);
    coil_deferred_unref(d);
    pool_end(r);
}

/* A full queue fails the attempt from the loop, saying why. */
static void test_resolve_queue_full(void)
{
    coil_reactor *r = pool_reactor(1, 1);
    outcome busy, queued;
    coil_deferred *d1 = submit(r, gated_job, 0, &busy);
    gate_wait_started(1);
    coil_deferred *d2 = submit(r, gated_job, 1, &queued);
    slow_resolver sr = {.delay = 0};
    pinger c;
    pinger_factory f;
    coil_connector *k = connect_pinger(r, "localhost", 9, &sr, 0, &c, &f, 1);
    CU_ASSERT_EQUAL(c.failed, 0); /* never inside the call */
    CU_ASSERT(turn_until(r, &c.failed, 1, 10));
    CU_ASSERT_EQUAL(c.failure_code, COIL_EBUSY);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.failure, "cannot resolve host name 'localhost'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.failure, "thread pool queue is full"));
    gate_open();
    CU_ASSERT(turn_until(r, &queued.fired, 1, 10));
    CU_ASSERT_EQUAL(atomic_load(&sr.calls), 0);
    coil_connector_free(k);
    coil_deferred_unref(d1);
    coil_deferred_unref(d2);
    pool_end(r);
}

/* A lookup still queued when the reactor shuts down fails the attempt with
 * the reason; the reactor's run returns. */
static int stop_reactor(void *arg)
{
    coil_reactor_stop(arg);
    return 0;
}

static coil_deferred *open_gate_late(void *arg)
{
    gate_open();
    return NULL;
}

static void test_resolve_at_shutdown(void)
{
    coil_reactor *r = pool_reactor(1, 0);
    outcome busy;
    coil_deferred *d = submit(r, gated_job, 0, &busy);
    gate_wait_started(1);
    slow_resolver sr = {.delay = 0};
    pinger c;
    pinger_factory f;
    coil_connector *k = connect_pinger(r, "localhost", 9, &sr, 0, &c, &f, 1);
    coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_DURING, open_gate_late,
                             NULL);
    coil_reactor_call_when_running(r, stop_reactor, r);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    CU_ASSERT_EQUAL(c.failed, 1);
    CU_ASSERT_EQUAL(c.failure_code, COIL_ECANCELLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.failure, "cannot resolve host name 'localhost'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.failure, "shutting down"));
    CU_ASSERT_EQUAL(busy.fired, 1);
    CU_ASSERT_EQUAL(atomic_load(&sr.calls), 0);
    coil_connector_free(k);
    coil_deferred_unref(d);
    pool_end(r);
}

static int add_suites(void)
{
    static const coil_test_case pool[] = {
        COIL_TEST(test_result),
        COIL_TEST(test_failure),
        COIL_TEST(test_bad_arguments),
        COIL_TEST(test_cancel_queued),
        COIL_TEST(test_cancel_running),
        COIL_TEST(test_queue_bound),
        COIL_TEST(test_lazy_threads),
        COIL_TEST(test_many_jobs),
        COIL_TEST(test_shutdown_waits_for_running),
        COIL_TEST(test_free_with_job_running),
        COIL_TEST(test_cancel_from_callback_while_stopping),
        {NULL, NULL},
    };
    static const coil_test_case resolve[] = {
        COIL_TEST(test_slow_resolver_does_not_stall),
        COIL_TEST(test_numeric_stays_synchronous),
        COIL_TEST(test_resolve_timeout),
        COIL_TEST(test_resolve_failure),
        COIL_TEST(test_resolve_cancel_running),
        COIL_TEST(test_resolve_cancel_queued),
        COIL_TEST(test_resolve_queue_full),
        COIL_TEST(test_resolve_at_shutdown),
        {NULL, NULL},
    };
    return coil_test_add_suite("threadpool", pool) ||
           coil_test_add_suite("resolve", resolve);
}

int main(void)
{
    return coil_test_main(add_suites);
}
