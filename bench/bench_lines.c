/* coil-bench-lines: the line receiver's cost per line for tiny lines.
 *
 *   coil-bench-lines [--runs N] [--mib M]
 *
 * Feeds M MiB (default 16) of lines to a coil_line_receiver over the
 * in-memory transport, in one piece and in 64 KiB pieces (as reads
 * arrive), for: empty lines ending in a bare "\n" (the case that was
 * quadratic), "x\r\n", 30-byte lines with "\r\n", and empty lines under a
 * custom delimiter ("<>") with bare "\n" accepted too. The peer is the
 * floor: a bare memchr loop calling a function per line, over the same
 * bytes in the same run. Each figure is the median of N runs (default 5)
 * of CPU time (the process's, so other load on the machine counts less).
 * The last line is machine-readable: RESULT key=value ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <coil/coil.h>
#include <coil/line.h>
#include <coil/memory.h>

#define CHUNK (64 * 1024)

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

static size_t lines;
static void on_line(coil_line_receiver *lr, const char *line, size_t len)
{
    lines++;
}

static const coil_line_ops ops = {.line_received = on_line};

/* Lines per second through a fresh receiver. */
static double bench_receiver(coil_reactor *r, const char *in, size_t n, size_t chunk,
                             const char *delim, size_t want)
{
    coil_line_receiver lr;
    coil_line_receiver_init(&lr, &ops);
    if (delim) {
        if (coil_line_set_delimiter(&lr, delim, strlen(delim)) != 0)
            exit(1);
        lr.accept_lf = 1;
    }
    coil_transport *t = coil_memory_transport_new(r, &lr.protocol);
    if (!t)
        exit(1);
    lines = 0;
    double t0 = cpu();
    for (size_t off = 0; off < n; off += chunk)
        if (coil_memory_transport_feed(t, in + off, n - off < chunk ? n - off : chunk) !=
            0)
            exit(1);
    double dt = cpu() - t0;
    coil_memory_transport_free(t);
    coil_reactor_advance(r, 0);
    if (lines != want) {
        fprintf(stderr, "coil-bench-lines: %zu lines, expected %zu\n", lines, want);
        exit(1);
    }
    return (double)want / dt;
}

/* The floor: a memchr loop calling a function per line. */
static void (*volatile floor_fn)(coil_line_receiver *, const char *, size_t) = on_line;

static double bench_floor(const char *in, size_t n, size_t want)
{
    void (*fn)(coil_line_receiver *, const char *, size_t) = floor_fn;
    lines = 0;
    double t0 = cpu();
    for (const char *p = in, *end = in + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        fn(NULL, p, (size_t)(nl - p));
        p = nl + 1;
    }
    double dt = cpu() - t0;
    if (lines != want)
        exit(1);
    return (double)want / dt;
}

/* `n` bytes of `line` repeated (n a multiple of its length). */
static char *fill(size_t n, const char *line)
{
    size_t l = strlen(line);
    char *p = malloc(n);
    if (!p)
        exit(1);
    for (size_t i = 0; i + l <= n; i += l)
        memcpy(p + i, line, l);
    return p;
}

int main(int argc, char **argv)
{
    int runs = 5;
    size_t mib = 16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
            mib = (size_t)atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: coil-bench-lines [--runs N] [--mib M]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 100 || mib < 1 || mib > 1024) {
        fprintf(stderr, "coil-bench-lines: --runs must be 1..100 and --mib 1..1024\n");
        return 2;
    }
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r;
    coil_reactor_options o = {0};
    o.clock = c;
    if (!c || coil_reactor_new(&r, &o) != 0)
        return 1;
    static const struct {
        const char *name, *line, *delim;
    } cases[] = {
        {"empty lines, bare \\n", "\n", NULL},
        {"\"x\\r\\n\"", "x\r\n", NULL},
        {"30-byte lines, \\r\\n", "0123456789abcdefghijklmnopq\r\n", NULL},
        {"empty lines, bare \\n, delimiter \"<>\"", "\n", "<>"},
    };
    enum { NCASES = sizeof cases / sizeof cases[0] };
    double one[NCASES], chunked[NCASES], floor[NCASES];
    printf("coil %s line receiver, %zu MiB per run, median of %d runs (CPU time)\n",
           COIL_VERSION_STRING, mib, runs);
    printf(
        "| lines | coil, one piece | coil, 64 KiB pieces | memchr floor | coil / floor "
        "|\n|---|---|---|---|---|\n");
    for (int k = 0; k < NCASES; k++) {
        size_t l = strlen(cases[k].line), n = mib * 1024 * 1024 / l * l, want = n / l;
        char *in = fill(n, cases[k].line);
        double a[100], b[100], f[100];
        for (int i = 0; i < runs; i++) {
            a[i] = bench_receiver(r, in, n, n, cases[k].delim, want);
            b[i] = bench_receiver(r, in, n, CHUNK, cases[k].delim, want);
            f[i] = bench_floor(in, n, want);
        }
        one[k] = median(a, runs);
        chunked[k] = median(b, runs);
        floor[k] = median(f, runs);
        printf("| %s | %.1f M/s | %.1f M/s | %.1f M/s | %.2f |\n", cases[k].name,
               one[k] / 1e6, chunked[k] / 1e6, floor[k] / 1e6, chunked[k] / floor[k]);
        free(in);
    }
    printf("RESULT empty_lf_per_s=%.0f empty_lf_chunked_per_s=%.0f x_crlf_per_s=%.0f "
           "line30_crlf_per_s=%.0f custom_delim_lf_per_s=%.0f floor_empty_per_s=%.0f\n",
           one[0], chunked[0], chunked[1], chunked[2], chunked[3], floor[0]);
    coil_reactor_free(r);
    coil_clock_free(c);
    return 0;
}
