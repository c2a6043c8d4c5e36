/* A tiny program a user builds against the installed coil. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

static void shout(coil_deferred *d, void *arg)
{
    (void)arg;
    char *s = coil_deferred_take_result(d, NULL);
    for (char *p = s; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    coil_deferred_set_result(d, s, free);
}

static int stop(void *arg)
{
    return coil_reactor_stop(arg);
}

int main(void)
{
    coil_reactor *r;
    if (coil_reactor_new(&r, NULL) != 0)
        return 1;
    coil_deferred *d = coil_deferred_succeed(strdup("coil works"), free);
    coil_deferred_add_callback(d, shout, NULL);
    printf("%s\n", (const char *)coil_deferred_result(d));
    int ok = strcmp(coil_deferred_result(d), "COIL WORKS") == 0;
    coil_deferred_unref(d);
    if (coil_reactor_call_later_forget(r, 0.001, stop, r) != 0)
        ok = 0;
    if (coil_reactor_run(r) != 0)
        ok = 0;
    coil_reactor_free(r);
    return ok ? 0 : 1;
}
