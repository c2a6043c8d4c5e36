/* coil — error codes.
 *
 * Every coil function that can fail returns 0 on success or a negative code
 * from the table below. All codes, their names and their messages come from
 * the one X-macro table COIL_ERROR_MAP, in the manner of libuv's
 * UV_ERRNO_MAP. Would-block is a code (COIL_EAGAIN), not a special value.
 */
#ifndef COIL_ERROR_H
#define COIL_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define COIL_MUST_CHECK        __attribute__((warn_unused_result))
#define COIL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define COIL_MUST_CHECK
#define COIL_PRINTF(fmt, args)
#endif

/* X(NAME, value, message) */
#define COIL_ERROR_MAP(X)                                                 \
    X(EAGAIN, -1, "operation would block; retry when the peer is ready")  \
    X(EINVAL, -2, "invalid argument")                                     \
    X(ENOMEM, -3, "out of memory")                                        \
    X(EALREADY, -4, "deferred has already been fired")                    \
    X(ECANCELLED, -5, "operation was cancelled")                          \
    X(ETIMEDOUT, -6, "operation timed out")                               \
    X(ENOTSUP, -7, "operation not supported by this object")              \
    X(ENOTRUNNING, -8, "reactor is not running")                          \
    X(ERUNNING, -9, "reactor is already running")                         \
    X(EBUSY, -10, "resource is in use by another owner")                  \
    X(ESYSTEM, -11, "system call failed (see the failure's errno)")       \
    X(ESTATE, -12, "operation not allowed in the object's current state") \
    X(EFIRSTERROR, -13, "one deferred of a list failed")                  \
    X(ECALLED, -14, "call has already run")                               \
    X(EUNHANDLED, -15, "error in a callback")                             \
    X(ECLOSED, -16, "connection closed")                                  \
    X(ECONNLOST, -17, "connection lost")                                  \
    X(EABORTED, -18, "connection aborted")                                \
    X(EPROTO, -19, "the peer broke the protocol")                         \
    X(EMSGSIZE, -20, "message larger than the limit")

enum coil_error {
    COIL_OK = 0,
#define COIL__ERR_ENUM(name, value, msg) COIL_##name = (value),
    COIL_ERROR_MAP(COIL__ERR_ENUM)
#undef COIL__ERR_ENUM
};

/* Name of a code ("COIL_EAGAIN"), or "COIL_UNKNOWN" for a code not in the
 * table. The string is static. */
const char *coil_err_name(int code);

/* Human message for a code; static string, never NULL. */
const char *coil_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
