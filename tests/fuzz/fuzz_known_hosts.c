/* Fuzz target: known_hosts text (ssh/known_hosts.c). A known_hosts file is
 * written by ssh-keyscan output, other tools and hand edits, and read with
 * every server key coil meets. The first line of the input is also taken as
 * a host name to look up (most are refused as names, which is checked too),
 * and the whole input as a key blob (type parsing, fingerprint). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "known_hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keys the lines may list (ssh-keygen output, fixed). */
static const char *const keys[] = {
    "AAAAC3NzaC1lZDI1NTE5AAAAIGlyk+lFmzCFXAQN45bLAc2+v2KgfhOmk53HNEOlruQx",
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOKlwMcC0/KUnIpj1nt03c782Gkb/"
    "HF3rfD+"
    "rLCE/hMO5IaWT22+bUd/gYcgge7sRieLaTHkf5VCApF1H7A+6Uw=",
};

static const struct {
    const char *host;
    int port;
} hosts[] = {
    {"127.0.0.1", 2222}, {"build.example", 22}, {"h", 22}, {"host.mixed.example", 2200}};

static void check(const char *text, size_t len, const char *host, int port,
                  const unsigned char *blob, size_t blob_len, unsigned long lines)
{
    coil__kh_result res;
    memset(&res, 0xa5, sizeof res);
    int rc = coil__known_hosts_check_text(text, len, host, port, blob, blob_len, &res);
    if (rc != 0) {
        if (rc != COIL_EINVAL)
            abort();
        return;
    }
    if (res.status < COIL__KH_MATCH || res.status > COIL__KH_REVOKED)
        abort();
    if ((res.status == COIL__KH_UNKNOWN) != (res.line == 0) || res.line > lines)
        abort();
    if (res.status == COIL__KH_MATCH && res.n_keys == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    unsigned long lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';

    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        unsigned char blob[256];
        size_t blob_len;
        if (sodium_base642bin(blob, sizeof blob, keys[k], strlen(keys[k]), NULL,
                              &blob_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
            abort();
        for (size_t h = 0; h < sizeof hosts / sizeof hosts[0]; h++)
            check(text, size, hosts[h].host, hosts[h].port, blob, blob_len, lines);

        /* The first line as a host name, on a port from its length. */
        const uint8_t *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t)(nl - data) : size;
        if (n > 300)
            n = 300;
        char host[301];
        memcpy(host, data, n);
        host[n] = '\0';
        if (strlen(host) == n)
            check(text, size, host, n % 3 ? (int)(n * 7 % 65536) : 22, blob, blob_len,
                  lines);
    }

    /* The input as a key blob. */
    char type[COIL__KH_MAX_LINE], fp[52];
    if (coil__ssh_key_type(data, size, type, sizeof type) == 0) {
        if (strlen(type) == 0 || strlen(type) + 4 > size)
            abort();
        (void)coil__ssh_key_type_short(type);
    }
    if (coil_ssh_fingerprint(data, size, fp, sizeof fp) != 0 || strlen(fp) != 50)
        abort();
    return 0;
}
