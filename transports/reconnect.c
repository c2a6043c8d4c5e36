/* A client that reconnects with exponential back-off (Twisted's
 * ReconnectingClientFactory), as a factory wrapped around the user's. */
#include <math.h>
#include <stdlib.h>

#include <sodium.h>

#include <coil/log.h>
#include <coil/reconnect.h>

coil_endpoint *coil__endpoint_copy(const coil_endpoint *e);

struct coil_reconnector {
    coil_factory f; /* ours, given to the connector; first */
    coil_reactor *r;
    coil_endpoint *e;
    coil_factory *inner;
    coil_reconnect_options o;
    coil_connector *c;
    coil_timer *timer;
    coil_transport *t;
    double delay;
    int retries;
    int stopped;
    int busy; /* inside a callback of ours */
    int dead; /* freed while busy: free on the way out */
};

coil_reconnect_options coil_reconnect_defaults(void)
{
    coil_reconnect_options o = {
        .initial_delay = 1.0,
        .factor = 2.7182818284590451,
        .max_delay = 3600,
        .jitter = 0.11962656472,
    };
    return o;
}

/* A normal variate (Box-Muller) from libsodium's generator. */
static double normal(double mean, double sd)
{
    double u1 = ((double)randombytes_random() + 1.0) / 4294967297.0;
    double u2 = (double)randombytes_random() / 4294967296.0;
    return mean + sd * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static void really_free(coil_reconnector *rc)
{
    coil_endpoint_free(rc->e);
    free(rc);
}

static int retry_now(void *arg)
{
    coil_reconnector *rc = arg;
    coil_timer_release(rc->timer);
    rc->timer = NULL;
    if (!rc->stopped && !rc->t)
        coil_connector_connect(rc->c);
    return 0;
}

/* An attempt failed or a connection ended: schedule the next one. The
 * first retry waits initial_delay; each failure in a row multiplies it by
 * factor, up to max_delay; jitter spreads it. */
static void retry(coil_reconnector *rc, const coil_failure *why)
{
    if (rc->stopped || rc->dead)
        return;
    rc->retries++;
    if (rc->o.max_retries > 0 && rc->retries > rc->o.max_retries) {
        coil_log(COIL_LOG_INFO, "reconnect", "giving up on %s after %d retries",
                 coil_endpoint_text(rc->e), rc->o.max_retries);
        rc->stopped = 1;
        if (rc->o.gave_up)
            rc->o.gave_up(rc, why, rc->o.arg);
        return;
    }
    double d = rc->retries == 1 ? rc->o.initial_delay : rc->delay * rc->o.factor;
    if (d > rc->o.max_delay)
        d = rc->o.max_delay;
    rc->delay = d;
    double wait = d;
    if (rc->o.jitter > 0) {
        wait = normal(d, d * rc->o.jitter);
        if (wait < 0)
            wait = 0;
    }
    rc->timer = coil_reactor_call_later(rc->r, wait, retry_now, rc);
    if (!rc->timer)
        coil_log(COIL_LOG_ERROR, "reconnect", "out of memory: not reconnecting to %s",
                 coil_endpoint_text(rc->e));
}

/* Run inner's callback, then ours unless the reconnector was freed. */
static void leave(coil_reconnector *rc)
{
    if (--rc->busy == 0 && rc->dead)
        really_free(rc);
}

static coil_protocol *rc_build(coil_factory *f, const coil_address *peer)
{
    coil_reconnector *rc = (coil_reconnector *)f;
    return rc->inner->ops->build_protocol(rc->inner, peer);
}

static void rc_started(coil_factory *f, coil_connector *c)
{
    coil_reconnector *rc = (coil_reconnector *)f;
    if (rc->inner->ops->started_connecting) {
        rc->busy++;
        rc->inner->ops->started_connecting(rc->inner, c);
        leave(rc);
    }
}

static void rc_connected(coil_factory *f, coil_connector *c, coil_transport *t)
{
    coil_reconnector *rc = (coil_reconnector *)f;
    rc->t = t;
    rc->retries = 0; /* reset after success */
    rc->delay = rc->o.initial_delay;
    if (rc->inner->ops->connected) {
        rc->busy++;
        rc->inner->ops->connected(rc->inner, c, t);
        leave(rc);
    }
}

static void rc_failed(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    coil_reconnector *rc = (coil_reconnector *)f;
    rc->busy++;
    if (rc->inner->ops->connection_failed)
        rc->inner->ops->connection_failed(rc->inner, c, why);
    retry(rc, why);
    leave(rc);
}

static void rc_lost(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    coil_reconnector *rc = (coil_reconnector *)f;
    rc->t = NULL;
    rc->busy++;
    if (rc->inner->ops->connection_lost)
        rc->inner->ops->connection_lost(rc->inner, c, why);
    retry(rc, why);
    leave(rc);
}

static const coil_factory_ops reconnect_ops = {
    .build_protocol = rc_build,
    .started_connecting = rc_started,
    .connected = rc_connected,
    .connection_failed = rc_failed,
    .connection_lost = rc_lost,
};

int coil_reconnector_new(coil_reactor *r, const coil_endpoint *e, coil_factory *inner,
                         const coil_reconnect_options *o, coil_reconnector **out,
                         coil_failure **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    coil_reconnect_options opts = o ? *o : coil_reconnect_defaults();
    if (!(opts.initial_delay >= 0) || !(opts.factor >= 1) ||
        !(opts.max_delay >= opts.initial_delay) || !(opts.jitter >= 0) ||
        opts.max_retries < 0) {
        if (err)
            *err =
                coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                 "bad reconnect options for %s: need initial_delay >= 0, "
                                 "factor >= 1, max_delay >= initial_delay, jitter >= 0, "
                                 "max_retries >= 0",
                                 coil_endpoint_text(e));
        return COIL_EINVAL;
    }
    if (opts.jitter > 0 && sodium_init() < 0) {
        if (err)
            *err =
                coil_failure_new(COIL_DOMAIN_COIL, COIL_ESYSTEM,
                                 "libsodium failed to initialise (for reconnect jitter)");
        return COIL_ESYSTEM;
    }
    coil_reconnector *rc = calloc(1, sizeof *rc);
    if (!rc || !(rc->e = coil__endpoint_copy(e))) {
        free(rc);
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
        return COIL_ENOMEM;
    }
    rc->f.ops = &reconnect_ops;
    rc->r = r;
    rc->inner = inner;
    rc->o = opts;
    rc->delay = opts.initial_delay;
    coil_factory_do_start(inner);
    *out = rc;
    /* The first attempt may fail at once; retry() handles it like any
     * other. */
    rc->busy++;
    int rc_code = coil_endpoint_connect(r, rc->e, &rc->f, &rc->c, err);
    rc->busy--;
    if (rc_code != 0) {
        *out = NULL;
        coil_factory_do_stop(inner);
        coil_timer_cancel(rc->timer);
        coil_timer_release(rc->timer);
        coil_connector_free(rc->c);
        really_free(rc);
        return rc_code;
    }
    return 0;
}

void coil_reconnector_stop(coil_reconnector *rc)
{
    rc->stopped = 1;
    if (rc->timer) {
        coil_timer_cancel(rc->timer);
        coil_timer_release(rc->timer);
        rc->timer = NULL;
    }
    if (rc->c)
        coil_connector_stop_connecting(rc->c);
}

int coil_reconnector_start(coil_reconnector *rc)
{
    rc->stopped = 0;
    coil_reconnector_reset_delay(rc);
    if (rc->t || rc->timer)
        return 0;
    int code = coil_connector_connect(rc->c);
    return code == COIL_ESTATE ? 0 : code; /* already connecting */
}

void coil_reconnector_reset_delay(coil_reconnector *rc)
{
    rc->retries = 0;
    rc->delay = rc->o.initial_delay;
}

double coil_reconnector_delay(const coil_reconnector *rc)
{
    return rc->delay;
}

int coil_reconnector_retries(const coil_reconnector *rc)
{
    return rc->retries;
}

coil_transport *coil_reconnector_transport(const coil_reconnector *rc)
{
    return rc->t;
}

void coil_reconnector_free(coil_reconnector *rc)
{
    if (!rc || rc->dead)
        return;
    coil_reconnector_stop(rc);
    rc->dead = 1;
    coil_connector_free(rc->c); /* a live connection goes on alone */
    rc->c = NULL;
    coil_factory_do_stop(rc->inner);
    if (rc->busy == 0)
        really_free(rc);
}
