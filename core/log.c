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

void coil_log(coil_log_level level, const char *module, const char *fmt, ...)
{
    if (level >= COIL_LOG_NONE || level < coil_log_get_level())
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    if (log_sink)
        log_sink(log_ud, level, module ? module : "?", buf);
    else
        stderr_sink(level, module ? module : "?", buf);
    pthread_mutex_unlock(&log_lock);
}
