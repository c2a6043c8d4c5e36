/* coil — failures: what went wrong, in words a person can act on.
 *
 * A coil_failure carries a domain (coil itself, the system's errno, TLS, SSH,
 * or the user's own), a code in that domain, a message with context
 * ("certificate for example.org does not match host 127.0.0.1"), and an
 * optional cause (another failure, owned by this one).
 *
 * Ownership: every constructor returns a failure the caller owns and frees
 * with coil_failure_free(). Constructors never return NULL: when memory runs
 * out they return a shared static "out of memory" failure that
 * coil_failure_free() ignores, so error paths need no error handling of
 * their own.
 */
#ifndef COIL_FAILURE_H
#define COIL_FAILURE_H

#include <stdio.h>
#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum coil_domain {
    COIL_DOMAIN_COIL = 0, /* code is a COIL_E* value */
    COIL_DOMAIN_SYSTEM,   /* code is an errno value */
    COIL_DOMAIN_TLS,      /* code is an OpenSSL error or verify code */
    COIL_DOMAIN_SSH,      /* code is a libssh2 error code */
    COIL_DOMAIN_USER,     /* code is the application's own */
    COIL_DOMAIN_HTTP      /* code is an HTTP status (404): coil_http_get
                             and coil_http_download on a status >= 400 */
} coil_domain;

typedef struct coil_failure coil_failure;

/* New failure with a printf-style message. */
coil_failure *coil_failure_new(coil_domain domain, int code, const char *fmt, ...)
    COIL_PRINTF(3, 4);

/* A failure of domain SYSTEM for errno value `err`; the message is the given
 * context followed by ": " and strerror(err), e.g.
 * "connect to 127.0.0.1:9 failed: Connection refused". */
coil_failure *coil_failure_from_errno(int err, const char *fmt, ...) COIL_PRINTF(2, 3);

/* A new failure whose cause is `cause` (ownership of `cause` passes to the new
 * failure; it may be NULL). */
coil_failure *coil_failure_wrap(coil_failure *cause, coil_domain domain, int code,
                                const char *fmt, ...) COIL_PRINTF(4, 5);

/* Deep copy (the cause chain too). */
coil_failure *coil_failure_copy(const coil_failure *f);

/* Free a failure and its causes. NULL is allowed. */
void coil_failure_free(coil_failure *f);

coil_domain coil_failure_domain(const coil_failure *f);
int coil_failure_code(const coil_failure *f);
/* The failure's own message (without causes); borrowed from `f`. */
const char *coil_failure_message(const coil_failure *f);
/* The cause, or NULL; borrowed from `f`. */
const coil_failure *coil_failure_cause(const coil_failure *f);

/* 1 when `f` or one of its causes has this domain and code (Twisted's
 * Failure.check), else 0. */
int coil_failure_check(const coil_failure *f, coil_domain domain, int code);

/* "system", "coil", "tls", "ssh", "user". */
const char *coil_domain_name(coil_domain domain);

/* Write a one-line description, causes included:
 * "MESSAGE [domain CODE_NAME] (caused by: MESSAGE [domain CODE]) ..."
 * into buf like snprintf. Returns the length the whole text needs. */
size_t coil_failure_format(const coil_failure *f, char *buf, size_t size);

/* The same text in a new string the caller frees with free(); NULL only when
 * memory runs out. */
char *coil_failure_to_string(const coil_failure *f);

/* Print the description and a newline to `out`. */
void coil_failure_print(const coil_failure *f, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
