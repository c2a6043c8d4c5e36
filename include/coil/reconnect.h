/* coil — a client that reconnects (Twisted's ReconnectingClientFactory).
 *
 * coil_reconnector keeps one connection to a client endpoint up: the
 * first attempt runs at once; when an attempt fails or an established
 * connection ends, it connects again after a delay. The first retry waits
 * initial_delay, each further failure in a row multiplies the delay by
 * `factor`, up to max_delay, and every wait is spread by `jitter` (a
 * normal variate with standard deviation delay * jitter, as Twisted does)
 * so that many clients do not reconnect in step. (Twisted multiplies
 * before the first retry too, so its first wait is initial_delay * factor;
 * coil waits what you asked for.) A connection that comes up resets the
 * delay and the retry count. After max_retries retries in a row have
 * failed it gives up and the `gave_up` callback runs.
 *
 * The protocols come from your factory (`inner`), which also hears
 * started_connecting, connection_failed and connection_lost as usual.
 *
 *   coil_reconnect_options o = coil_reconnect_defaults();
 *   o.max_delay = 30;
 *   coil_reconnector *rc;
 *   if (coil_reconnector_new(r, endpoint, &my_factory, &o, &rc, &err) != 0) ...
 *   ...
 *   coil_reconnector_free(rc);   // stops retrying; a live connection goes on
 */
#ifndef COIL_RECONNECT_H
#define COIL_RECONNECT_H

#include "endpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_reconnector coil_reconnector;

typedef struct coil_reconnect_options {
    double initial_delay; /* seconds before the first retry: 1.0 */
    double factor;        /* growth per failure: e (2.718...) */
    double max_delay;     /* 3600 */
    double jitter;        /* 0.11962656472; 0 for none */
    int max_retries;      /* 0: retry for ever */
    /* Called once when max_retries is reached (may be NULL). */
    void (*gave_up)(coil_reconnector *rc, const coil_failure *last, void *arg);
    void *arg;
} coil_reconnect_options;

/* Twisted's defaults. */
coil_reconnect_options coil_reconnect_defaults(void);

/* Start connecting now. `e` is copied; `inner` is borrowed and must outlive
 * the reconnector. `o` NULL: the defaults. */
int coil_reconnector_new(coil_reactor *r, const coil_endpoint *e, coil_factory *inner,
                         const coil_reconnect_options *o, coil_reconnector **out,
                         coil_failure **err) COIL_MUST_CHECK;

/* Stop retrying (an attempt under way is stopped; a live connection goes
 * on) / start again from the initial delay, connecting now. */
void coil_reconnector_stop(coil_reconnector *rc);
int coil_reconnector_start(coil_reconnector *rc);
/* Forget past failures: the next delay is the initial one. */
void coil_reconnector_reset_delay(coil_reconnector *rc);

/* The delay before the next attempt (for tests and status), the failed
 * attempts in a row, and the live connection's transport (or NULL). */
double coil_reconnector_delay(const coil_reconnector *rc);
int coil_reconnector_retries(const coil_reconnector *rc);
coil_transport *coil_reconnector_transport(const coil_reconnector *rc);

void coil_reconnector_free(coil_reconnector *rc);

#ifdef __cplusplus
}
#endif
#endif
