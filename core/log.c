/* The process-wide logger: levels, one sink, stderr by default. */
#include <coil/log.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static coil_log_sink log_sink;
static void *log_ud;
/* -1 until the environment has been read. */
static atomic_int log_level = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error", "none"};

const char *coil_log_level_name(coil_log_level level)
{
    if ((unsigned)level > COIL_LOG_NONE)
        return "?";
    return level_names[level];
}

static int level_from_env(void)
{
    const char *s = getenv("COIL_LOG_LEVEL");
    if (s)
        for (int i = 0; i <= COIL_LOG_NONE; i++)
            if (strcasecmp(s, level_names[i]) == 0)
                return i;
    return COIL_LOG_INFO;
}

coil_log_level coil_log_get_level(void)
{
    int l = atomic_load(&log_level);
    if (l < 0) {
        int expected = -1;
        atomic_compare_exchange_strong(&log_level, &expected, level_from_env());
        l = atomic_load(&log_level);
    }
    return (coil_log_level)l;
}

void coil_log_set_level(coil_log_level level)
{
    atomic_store(&log_level, (int)level);
}

void coil_log_set_sink(coil_log_sink sink, void *ud)
{
    pthread_mutex_lock(&log_lock);
    log_sink = sink;
    log_ud = ud;
    pthread_mutex_unlock(&log_lock);
}

static void stderr_sink(coil_log_level level, const char *module, const char *msg)
{
    fprintf(stderr, "coil %s [%s] %s\n", coil_log_level_name(level), module, msg);
}

static int enabled(coil_log_level level)
{
    return level < COIL_LOG_NONE && level >= coil_log_get_level();
}

/* Format and emit; `suppressed` > 0 adds the count of messages a limit
 * held back. */
static void vlog(coil_log_level level, const char *module, unsigned long suppressed,
                 const char *fmt, va_list ap)
{
    char buf[2048];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (suppressed > 0 && n >= 0) {
        size_t at = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
        snprintf(buf + at, sizeof buf - at, " (suppressed %lu similar message%s)",
                 suppressed, suppressed == 1 ? "" : "s");
    }
    pthread_mutex_lock(&log_lock);
    if (log_sink)
        log_sink(log_ud, level, module ? module : "?", buf);
    else
        stderr_sink(level, module ? module : "?", buf);
    pthread_mutex_unlock(&log_lock);
}

void coil_log(coil_log_level level, const char *module, const char *fmt, ...)
{
    if (!enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, module, 0, fmt, ap);
    va_end(ap);
}

/* Guards every coil_log_limit (they may be static and shared by threads);
 * never held while a sink runs. */
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;

int coil_log_ratelimited(coil_log_limit *limit, double now, coil_log_level level,
                         const char *module, const char *fmt, ...)
{
    if (!enabled(level))
        return 0;
    double interval = limit->interval > 0 ? limit->interval : COIL_LOG_LIMIT_INTERVAL;
    unsigned burst = limit->burst > 0 ? limit->burst : COIL_LOG_LIMIT_BURST;
    unsigned long suppressed = 0;
    int emit;
    pthread_mutex_lock(&limit_lock);
    /* A new window at the first message, when the window is over, or when
     * the clock went back (another clock: start again). */
    if (!limit->started || now - limit->window_start >= interval ||
        now < limit->window_start) {
        limit->started = 1;
        limit->window_start = now;
        limit->emitted = 0;
    }
    emit = limit->emitted < burst;
    if (emit) {
        limit->emitted++;
        suppressed = limit->suppressed;
        limit->suppressed = 0;
    } else {
        limit->suppressed++;
        limit->total_dropped++;
    }
    pthread_mutex_unlock(&limit_lock);
    if (!emit)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, module, suppressed, fmt, ap);
    va_end(ap);
    return 1;
}
