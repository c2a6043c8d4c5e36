/* coil-bench-core: the cost of the reactor's and the deferred's core paths.
 *
 *   coil-bench-core [--runs N] [--idle SECONDS] [--backend epoll|poll]
 *
 * 1. timers: with 1,000,000 timers pending, schedule 1,000,000 more at random
 *    deadlines within one second and fire them all (fake clock, so only the
 *    heap and the calls are measured); reports scheduled+fired per second.
 * 2. cancels: with 1,000,000 pending, schedule and cancel 1,000,000.
 * 3. deferred callbacks: chains of 10 callbacks on fresh deferreds, fired;
 *    callbacks per second. Also deferreds chained through deferreds.
 * 4. idle: a real reactor with one timer at the end runs for SECONDS; reports
 *    the CPU time (user+sys) it used.
 * Each figure is the median of N runs (default 5). The last line is
 * machine-readable: RESULT key=value ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <coil/coil.h>

#ifdef COIL_BENCH_LIBUV
#include <uv.h>
#endif

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static coil_backend backend = COIL_BACKEND_DEFAULT;

static coil_reactor *new_reactor(coil_clock *c)
{
    coil_reactor_options o = {0};
    o.backend = backend;
    o.clock = c;
    coil_reactor *r;
    if (coil_reactor_new(&r, &o) != 0) {
        fprintf(stderr, "coil-bench-core: cannot create a reactor\n");
        exit(1);
    }
    return r;
}

static unsigned long fired;
static int on_fire(void *arg)
{
    fired++;
    return 0;
}

enum { PENDING = 1000000, WORK = 1000000 };

/* Returns operations per second. */
static double bench_timers(int cancel)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = new_reactor(c);
    for (int i = 0; i < PENDING; i++)
        if (coil_reactor_call_later_forget(
                r, 1000.0 + (double)(rand() % 1000000) / 1000.0, on_fire, NULL) != 0)
            exit(1);
    fired = 0;
    double t0 = wall();
    for (int i = 0; i < WORK; i++) {
        coil_timer *t =
            coil_reactor_call_later(r, (double)(rand() % 1000000) / 1e6, on_fire, NULL);
        if (!t)
            exit(1);
        if (cancel)
            coil_timer_cancel(t);
        coil_timer_release(t);
    }
    coil_reactor_advance(r, 1.0);
    double dt = wall() - t0;
    if (fired != (cancel ? 0 : (unsigned long)WORK)) {
        fprintf(stderr, "coil-bench-core: fired %lu timers, expected %d\n", fired,
                cancel ? 0 : WORK);
        exit(1);
    }
    coil_reactor_free(r);
    coil_clock_free(c);
    return WORK / dt;
}

#ifdef COIL_BENCH_LIBUV
/* The same timer load on libuv, the strong peer: 1,000,000 pending timers,
 * then 1,000,000 scheduled at random times within one second and fired.
 * libuv has no fake clock: its loop time is frozen with uv_update_time
 * and advanced by running the loop once the deadlines have passed, so the
 * figure includes sleeping up to one second; we subtract the wait. */
static void uv_on_fire(uv_timer_t *t)
{
    fired++;
}

static double bench_timers_libuv(int cancel)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t *pending = malloc(PENDING * sizeof *pending);
    uv_timer_t *work = malloc(WORK * sizeof *work);
    if (!pending || !work)
        exit(1);
    for (int i = 0; i < PENDING; i++) {
        uv_timer_init(&loop, &pending[i]);
        uv_timer_start(&pending[i], uv_on_fire, 1000000 + (uint64_t)(rand() % 1000000),
                       0);
    }
    fired = 0;
    uv_update_time(&loop);
    double t0 = wall();
    for (int i = 0; i < WORK; i++) {
        uv_timer_init(&loop, &work[i]);
        uv_timer_start(&work[i], uv_on_fire, (uint64_t)(rand() % 1000), 0);
        if (cancel)
            uv_timer_stop(&work[i]);
    }
    double t_sched = wall() - t0;
    /* Wait out the deadlines without counting the wait. */
    struct timespec ts = {1, 5000000};
    nanosleep(&ts, NULL);
    double t1 = wall();
    uv_run(&loop, UV_RUN_NOWAIT);
    double dt = t_sched + (wall() - t1);
    if (fired != (cancel ? 0 : (unsigned long)WORK)) {
        fprintf(stderr, "coil-bench-core: libuv fired %lu timers\n", fired);
        exit(1);
    }
    for (int i = 0; i < PENDING; i++)
        uv_close((uv_handle_t *)&pending[i], NULL);
    for (int i = 0; i < WORK; i++)
        uv_close((uv_handle_t *)&work[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(pending);
    free(work);
    return WORK / dt;
}

static void uv_stop_timer(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

static double uv_idle(double seconds, double *wall_out)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, uv_stop_timer, (uint64_t)(seconds * 1000), 0);
    double c0 = cpu(), w0 = wall();
    uv_run(&loop, UV_RUN_DEFAULT);
    *wall_out = wall() - w0;
    double used = cpu() - c0;
    uv_loop_close(&loop);
    return used;
}
#endif

static unsigned long callbacks;
static void step(coil_deferred *d, void *arg)
{
    callbacks++;
}

static void chain_succeed(coil_deferred *d, void *arg)
{
    callbacks++;
    coil_deferred_chain(d, coil_deferred_succeed(NULL, NULL));
}

/* `chains` fresh deferreds with `steps` steps each, fired; callbacks/s. */
static double bench_deferred(coil_deferred_fn fn, int chains, int steps)
{
    callbacks = 0;
    double t0 = wall();
    for (int i = 0; i < chains; i++) {
        coil_deferred *d = coil_deferred_new();
        for (int s = 0; s < steps; s++)
            coil_deferred_add_callback(d, fn, NULL);
        coil_deferred_callback(d, NULL, NULL);
        coil_deferred_unref(d);
    }
    double dt = wall() - t0;
    if (callbacks != (unsigned long)chains * (unsigned long)steps)
        exit(1);
    return (double)callbacks / dt;
}

static int stop_cb(void *arg)
{
    return coil_reactor_stop(arg);
}

static double bench_idle(double seconds, double *wall_out)
{
    coil_reactor *r = new_reactor(NULL);
    if (coil_reactor_call_later_forget(r, seconds, stop_cb, r) != 0)
        exit(1);
    double c0 = cpu(), w0 = wall();
    coil_reactor_run(r);
    *wall_out = wall() - w0;
    double used = cpu() - c0;
    coil_reactor_free(r);
    return used;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: coil-bench-core [--runs N] [--idle SECONDS] "
                 "[--backend epoll|poll]\n");
}

int main(int argc, char **argv)
{
    int runs = 5;
    double idle = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--idle") && i + 1 < argc) {
            idle = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            const char *b = argv[++i];
            backend = !strcmp(b, "poll") ? COIL_BACKEND_POLL
                      : !strcmp(b, "epoll")
                          ? COIL_BACKEND_EPOLL
                          : (usage(stderr), exit(2), COIL_BACKEND_DEFAULT);
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "coil-bench-core: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (runs < 1 || runs > 100 || !(idle > 0)) {
        fprintf(stderr, "coil-bench-core: --runs must be 1..100 and --idle > 0\n");
        return 2;
    }
    srand(1);
    double t[100], tc[100], d[100], dc[100], ut[100], utc[100];
    for (int i = 0; i < runs; i++) {
        t[i] = bench_timers(0);
        tc[i] = bench_timers(1);
        d[i] = bench_deferred(step, 200000, 10);
        dc[i] = bench_deferred(chain_succeed, 20000, 50);
#ifdef COIL_BENCH_LIBUV
        ut[i] = bench_timers_libuv(0);
        utc[i] = bench_timers_libuv(1);
#else
        ut[i] = utc[i] = 0;
#endif
    }
    double idle_wall;
    double idle_cpu = bench_idle(idle, &idle_wall);
    coil_reactor *r = new_reactor(NULL);
    printf("coil %s core benchmark, backend %s, median of %d runs\n", COIL_VERSION_STRING,
           coil_reactor_backend_name(r), runs);
    coil_reactor_free(r);
    double mt = median(t, runs), mtc = median(tc, runs), md = median(d, runs),
           mdc = median(dc, runs);
    double mut = median(ut, runs), mutc = median(utc, runs);
    double uv_idle_cpu = 0, uv_idle_wall = 0;
    const char *uv_name = "(not built)";
#ifdef COIL_BENCH_LIBUV
    uv_idle_cpu = uv_idle(idle, &uv_idle_wall);
    uv_name = uv_version_string();
#endif
    printf("| what | coil | libuv %s | coil / libuv |\n|---|---|---|---|\n", uv_name);
    printf("| timers scheduled+fired/s, 1,000,000 pending | %.0f | %.0f | %.2f |\n", mt,
           mut, mut > 0 ? mt / mut : 0);
    printf("| timers scheduled+cancelled/s, 1,000,000 pending | %.0f | %.0f | %.2f |\n",
           mtc, mutc, mutc > 0 ? mtc / mutc : 0);
    printf("| deferred callbacks/s (chains of 10) | %.0f | - | - |\n", md);
    printf("| deferred callbacks/s, each chaining a fired deferred | %.0f | - | - |\n",
           mdc);
    printf(
        "| idle loop CPU (user+sys) over %.1f s wall, one timer at the end | %.0f us | "
        "%.0f us | - |\n",
        idle_wall, idle_cpu * 1e6, uv_idle_cpu * 1e6);
    printf("RESULT timers_per_s=%.0f cancels_per_s=%.0f deferred_cb_per_s=%.0f "
           "chained_cb_per_s=%.0f idle_cpu_s=%.6f idle_wall_s=%.2f uv_timers_per_s=%.0f "
           "uv_cancels_per_s=%.0f uv_idle_cpu_s=%.6f uv_idle_wall_s=%.2f\n",
           mt, mtc, md, mdc, idle_cpu, idle_wall, mut, mutc, uv_idle_cpu, uv_idle_wall);
    (void)uv_idle_wall;
    return 0;
}
