/* Fuzz target: endpoint descriptions (the generic syntax and every kind's
 * rules, server and client side). Descriptions reach coil from command
 * lines and configuration, often from other programs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <coil/endpoint.h>
#include <coil/plugin.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    coil_endpoint_desc *d = NULL;
    coil_failure *err = NULL;
    if (coil_endpoint_desc_parse(text, &d, &err) == 0) {
        /* Every argument is reachable and NUL-terminated. */
        size_t total = strlen(d->kind);
        for (int i = 0; i < d->nargs; i++) {
            total += strlen(d->args[i].value);
            if (d->args[i].key) {
                total += strlen(d->args[i].key);
                if (!coil_endpoint_desc_get(d, d->args[i].key))
                    abort();
            }
        }
        if (total > size)
            abort(); /* unescaping never grows the text */
        coil_endpoint_desc_free(d);
    } else if (!err || !coil_failure_message(err)[0]) {
        abort(); /* every refusal says why */
    }
    coil_failure_free(err);

    for (int server = 0; server < 2; server++) {
        coil_endpoint *e = NULL;
        err = NULL;
        int rc = server ? coil_endpoint_server(text, &e, &err)
                        : coil_endpoint_client(text, &e, &err);
        if (rc == 0) {
            if (!e || err || strcmp(coil_endpoint_text(e), text) != 0)
                abort();
            /* Its kind is a registered one, by its own name. */
            const coil_endpoint_kind_ops *k =
                coil_endpoint_find_kind(coil_endpoint_kind(e));
            if (!k || strcmp(k->name, coil_endpoint_kind(e)) != 0)
                abort();
            coil_endpoint_free(e);
        } else if (e || !err) {
            abort();
        }
        coil_failure_free(err);
    }
    free(text);
    return 0;
}
