/* Private: what coil's own modules attach to a failure beyond the public
 * fields. */
#ifndef COIL_CORE_FAILURE_INTERNAL_H
#define COIL_CORE_FAILURE_INTERNAL_H

#include <stddef.h>

#include <coil/failure.h>

/* Which of several things failed (a deferred list's child, from 0); kept
 * by coil_failure_copy. Ignored on the shared out-of-memory failure. */
void coil__failure_set_index(coil_failure *f, size_t index);
/* 1 and *index when `f` itself carries one, else 0. */
int coil__failure_index(const coil_failure *f, size_t *index);

#endif
