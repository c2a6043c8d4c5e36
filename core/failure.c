/* Failures: domain, code, message and an optional cause. */
#include <coil/failure.h>

#include "failure_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct coil_failure {
    coil_domain domain;
    int code;
    coil_failure *cause;
    char *message;
    size_t index; /* which of several (a deferred list's child), if has_index */
    int has_index;
};

/* Returned when memory runs out; never freed. */
static struct coil_failure oom_failure = {
    COIL_DOMAIN_COIL,
    COIL_ENOMEM,
    NULL,
    (char *)"out of memory while reporting an error",
    0,
    0};

static coil_failure *failure_vnew(coil_failure *cause, coil_domain domain, int code,
                                  const char *suffix, const char *fmt, va_list ap)
{
    coil_failure *f = malloc(sizeof *f);
    if (!f) {
        coil_failure_free(cause);
        return &oom_failure;
    }
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    size_t slen = suffix ? strlen(suffix) + 2 : 0;
    f->message = malloc((size_t)n + slen + 1);
    if (!f->message) {
        free(f);
        coil_failure_free(cause);
        return &oom_failure;
    }
    vsnprintf(f->message, (size_t)n + 1, fmt, ap);
    if (suffix) {
        memcpy(f->message + n, ": ", 2);
        memcpy(f->message + n + 2, suffix, slen - 2 + 1);
    }
    f->domain = domain;
    f->code = code;
    f->cause = cause;
    f->index = 0;
    f->has_index = 0;
    return f;
}

coil_failure *coil_failure_new(coil_domain domain, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    coil_failure *f = failure_vnew(NULL, domain, code, NULL, fmt, ap);
    va_end(ap);
    return f;
}

coil_failure *coil_failure_from_errno(int err, const char *fmt, ...)
{
    char ebuf[256];
    /* GNU strerror_r returns a pointer that may or may not be ebuf. */
    const char *text = strerror_r(err, ebuf, sizeof ebuf);
    va_list ap;
    va_start(ap, fmt);
    coil_failure *f = failure_vnew(NULL, COIL_DOMAIN_SYSTEM, err, text, fmt, ap);
    va_end(ap);
    return f;
}

coil_failure *coil_failure_wrap(coil_failure *cause, coil_domain domain, int code,
                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    coil_failure *f = failure_vnew(cause, domain, code, NULL, fmt, ap);
    va_end(ap);
    return f;
}

coil_failure *coil_failure_copy(const coil_failure *f)
{
    if (!f)
        return NULL;
    if (f == &oom_failure)
        return &oom_failure;
    coil_failure *cause = coil_failure_copy(f->cause);
    coil_failure *c = coil_failure_wrap(cause, f->domain, f->code, "%s", f->message);
    if (f->has_index)
        coil__failure_set_index(c, f->index);
    return c;
}

void coil__failure_set_index(coil_failure *f, size_t index)
{
    if (f == &oom_failure)
        return; /* shared: it carries nothing */
    f->index = index;
    f->has_index = 1;
}

int coil__failure_index(const coil_failure *f, size_t *index)
{
    if (!f || !f->has_index)
        return 0;
    *index = f->index;
    return 1;
}

void coil_failure_free(coil_failure *f)
{
    while (f && f != &oom_failure) {
        coil_failure *cause = f->cause;
        free(f->message);
        free(f);
        f = cause;
    }
}

coil_domain coil_failure_domain(const coil_failure *f)
{
    return f->domain;
}

int coil_failure_code(const coil_failure *f)
{
    return f->code;
}

const char *coil_failure_message(const coil_failure *f)
{
    return f->message;
}

const coil_failure *coil_failure_cause(const coil_failure *f)
{
    return f->cause;
}

int coil_failure_check(const coil_failure *f, coil_domain domain, int code)
{
    for (; f; f = f->cause)
        if (f->domain == domain && f->code == code)
            return 1;
    return 0;
}

const char *coil_domain_name(coil_domain domain)
{
    switch (domain) {
    case COIL_DOMAIN_COIL:
        return "coil";
    case COIL_DOMAIN_SYSTEM:
        return "system";
    case COIL_DOMAIN_TLS:
        return "tls";
    case COIL_DOMAIN_SSH:
        return "ssh";
    case COIL_DOMAIN_USER:
        return "user";
    case COIL_DOMAIN_HTTP:
        return "http";
    }
    return "unknown";
}

/* The code as a word: COIL_ETIMEDOUT, ECONNREFUSED, or the number. */
static const char *code_text(const coil_failure *f, char *buf, size_t size)
{
    if (f->domain == COIL_DOMAIN_COIL)
        return coil_err_name(f->code);
    if (f->domain == COIL_DOMAIN_SYSTEM) {
        const char *name = strerrorname_np(f->code);
        if (name)
            return name;
    }
    snprintf(buf, size, "%d", f->code);
    return buf;
}

size_t coil_failure_format(const coil_failure *f, char *buf, size_t size)
{
    size_t need = 0;
    int first = 1;
    for (; f; f = f->cause) {
        char cbuf[32];
        int n = snprintf(size > need ? buf + need : NULL, size > need ? size - need : 0,
                         "%s%s [%s %s]%s", first ? "" : " (caused by: ", f->message,
                         coil_domain_name(f->domain), code_text(f, cbuf, sizeof cbuf),
                         first ? "" : ")");
        if (n > 0)
            need += (size_t)n;
        first = 0;
    }
    if (size && need >= size)
        buf[size - 1] = '\0';
    else if (size && need == 0)
        buf[0] = '\0';
    return need;
}

char *coil_failure_to_string(const coil_failure *f)
{
    size_t n = coil_failure_format(f, NULL, 0);
    char *s = malloc(n + 1);
    if (s)
        coil_failure_format(f, s, n + 1);
    return s;
}

void coil_failure_print(const coil_failure *f, FILE *out)
{
    char *s = coil_failure_to_string(f);
    fprintf(out, "%s\n", s ? s : "(out of memory formatting a failure)");
    free(s);
}
