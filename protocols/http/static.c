/* coil — HTTP: static (skeleton: every function answers "not supported" until written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"

int coil_http_file_new(const char *path, const coil_http_file_options *o,
                       coil_http_resource **out, coil_failure **err)
{
    (void)path;
    (void)o;
    (void)out;
    (void)err;
    return COIL_ENOTSUP;
}

const char *coil_http_mime_type(const char *filename)
{
    (void)filename;
    return NULL;
}
