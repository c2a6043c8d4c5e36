/* coil — logging.
 *
 * One small process-wide logger used by every module: levels, one pluggable
 * sink, stderr by default. The level starts at COIL_LOG_INFO, or the value of
 * the environment variable COIL_LOG_LEVEL (debug, info, warn, error, none)
 * read on first use. The sink is called under a lock, so it may be called
 * from several threads (one reactor per thread) without interleaving.
 */
#ifndef COIL_LOG_H
#define COIL_LOG_H

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum coil_log_level {
    COIL_LOG_DEBUG = 0,
    COIL_LOG_INFO = 1,
    COIL_LOG_WARN = 2,
    COIL_LOG_ERROR = 3,
    COIL_LOG_NONE = 4
} coil_log_level;

/* A sink receives one formatted message (no trailing newline). `module`
 * names the emitter ("reactor", "deferred", ...). Strings are borrowed for the
 * duration of the call. */
typedef void (*coil_log_sink)(void *ud, coil_log_level level, const char *module,
                              const char *message);

/* Install a sink; NULL restores the default stderr sink. */
void coil_log_set_sink(coil_log_sink sink, void *ud);

/* Messages below `level` are dropped before formatting. */
void coil_log_set_level(coil_log_level level);
coil_log_level coil_log_get_level(void);

/* "debug", "info", "warn", "error", "none". */
const char *coil_log_level_name(coil_log_level level);

/* Format and emit one message. */
void coil_log(coil_log_level level, const char *module, const char *fmt, ...)
    COIL_PRINTF(3, 4);

/* A rate limit for one kind of repeated message (accept errors on a
 * listener, failed TLS handshakes): at most `burst` messages in each
 * window of `interval` seconds; the rest are counted, and the first message
 * let through afterwards ends with " (suppressed N similar messages)". Fill
 * it with COIL_LOG_LIMIT_INIT (static storage is fine: it may be shared by
 * several reactors and threads). Zero fields take the defaults. */
typedef struct coil_log_limit {
    double interval; /* seconds; 0: COIL_LOG_LIMIT_INTERVAL */
    unsigned burst;  /* messages per window; 0: COIL_LOG_LIMIT_BURST */
    /* Private. */
    int started;
    double window_start;
    unsigned emitted;            /* in the current window */
    unsigned long suppressed;    /* since the last message let through */
    unsigned long total_dropped; /* ever (for tests and statistics) */
} coil_log_limit;

#define COIL_LOG_LIMIT_INTERVAL 10.0
#define COIL_LOG_LIMIT_BURST    5
#define COIL_LOG_LIMIT_INIT(interval_, burst_) \
    {                                          \
        (interval_), (burst_), 0, 0, 0, 0, 0   \
    }

/* coil_log under `limit`. `now` is the time in seconds on any monotonic
 * clock, usually coil_reactor_seconds(r) (a fake clock makes it
 * deterministic). Messages below the log level are dropped without
 * counting. Returns 1 when the message was emitted, 0 when it was not. */
int coil_log_ratelimited(coil_log_limit *limit, double now, coil_log_level level,
                         const char *module, const char *fmt, ...) COIL_PRINTF(5, 6);

#ifdef __cplusplus
}
#endif
#endif
