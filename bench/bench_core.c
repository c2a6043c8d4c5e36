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
        if (!coil_reactor_call_later(r, 1000.0 + (double)(rand() % 1000000) / 1000.0,
                                     on_fire, NULL))
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

static unsigned long callbacks;
static void step(coil_deferred *d, void *arg)
{
    callbacks++;
}

static double bench_deferred(void)
{
    enum { CHAINS = 200000, STEPS = 10 };
    callbacks = 0;
    double t0 = wall();
    for (int i = 0; i < CHAINS; i++) {
        coil_deferred *d = coil_deferred_new();
        for (int s = 0; s < STEPS; s++)
            coil_deferred_add_callback(d, step, NULL);
        coil_deferred_callback(d, NULL, NULL);
        coil_deferred_unref(d);
    }
    double dt = wall() - t0;
    if (callbacks != (unsigned long)CHAINS * STEPS)
        exit(1);
    return (double)callbacks / dt;
}

static void chain_succeed(coil_deferred *d, void *arg)
{
    callbacks++;
    coil_deferred_chain(d, coil_deferred_succeed(NULL, NULL));
}

static double bench_chained(void)
{
    enum { CHAINS = 20000, STEPS = 50 };
    callbacks = 0;
    double t0 = wall();
    for (int i = 0; i < CHAINS; i++) {
        coil_deferred *d = coil_deferred_new();
        for (int s = 0; s < STEPS; s++)
            coil_deferred_add_callback(d, chain_succeed, NULL);
        coil_deferred_callback(d, NULL, NULL);
        coil_deferred_unref(d);
    }
    double dt = wall() - t0;
    if (callbacks != (unsigned long)CHAINS * STEPS)
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
    coil_reactor_call_later(r, seconds, stop_cb, r);
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
    double t[100], tc[100], d[100], dc[100];
    for (int i = 0; i < runs; i++) {
        t[i] = bench_timers(0);
        tc[i] = bench_timers(1);
        d[i] = bench_deferred();
        dc[i] = bench_chained();
    }
    double idle_wall;
    double idle_cpu = bench_idle(idle, &idle_wall);
    coil_reactor *r = new_reactor(NULL);
    printf("coil %s core benchmark, backend %s, median of %d runs\n", COIL_VERSION_STRING,
           coil_reactor_backend_name(r), runs);
    coil_reactor_free(r);
    double mt = median(t, runs), mtc = median(tc, runs), md = median(d, runs),
           mdc = median(dc, runs);
    printf("| what | figure |\n|---|---|\n");
    printf("| timers scheduled+fired/s, 1,000,000 pending | %.0f |\n", mt);
    printf("| timers scheduled+cancelled/s, 1,000,000 pending | %.0f |\n", mtc);
    printf("| deferred callbacks/s (chains of 10) | %.0f |\n", md);
    printf("| deferred callbacks/s, each chaining a fired deferred | %.0f |\n", mdc);
    printf("| idle reactor CPU over %.1f s wall | %.4f s (%.4f%% of a core) |\n",
           idle_wall, idle_cpu, 100 * idle_cpu / idle_wall);
    printf("RESULT timers_per_s=%.0f cancels_per_s=%.0f deferred_cb_per_s=%.0f "
           "chained_cb_per_s=%.0f idle_cpu_s=%.4f idle_wall_s=%.2f\n",
           mt, mtc, md, mdc, idle_cpu, idle_wall);
    return 0;
}
