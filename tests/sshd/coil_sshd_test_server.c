/* coil_sshd_test_server — coil's SSH server with the interop tests'
 * commands (sshd_app.h), for the script tests and the benchmark.
 *
 *   coil_sshd_test_server [-v] [--stats] [--max-auth-tries N]
 *                         [--rekey-bytes N] [--port N]
 *                         HOST_KEY_FILE [AUTHORIZED_KEYS]
 *
 * HOST_KEY_FILE is made (mode 0600) when it does not exist. Listens on
 * 127.0.0.1 (a free port unless --port), prints "host key SHA256:..." and
 * "listening on PORT" on stdout (flushed), then serves until SIGTERM or
 * SIGINT, after which it closes every connection, prints the server's
 * counters on stderr and exits 0. -v: coil's log at debug level (the
 * negotiated algorithms, strict kex, rekeys: whatever the server logs),
 * else $COIL_LOG_LEVEL. --stats: the counters on stderr as each channel
 * ends. The reactor backend is $COIL_REACTOR's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sshd_app.h"

static int usage(void)
{
    fprintf(stderr, "usage: coil_sshd_test_server [-v] [--stats] [--max-auth-tries N] "
                    "[--rekey-bytes N] [--port N] HOST_KEY_FILE [AUTHORIZED_KEYS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    sshd_app_options o = {0};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            coil_log_set_level(COIL_LOG_DEBUG);
        } else if (strcmp(argv[i], "--stats") == 0) {
            o.log_stats = 1;
        } else if (strcmp(argv[i], "--max-auth-tries") == 0 && i + 1 < argc) {
            o.max_auth_tries = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--rekey-bytes") == 0 && i + 1 < argc) {
            o.rekey_bytes = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            o.port = atoi(argv[++i]);
        } else {
            return usage();
        }
    }
    if (argc - i < 1 || argc - i > 2)
        return usage();
    o.host_key_file = argv[i];
    o.authorized_keys_file = argc - i == 2 ? argv[i + 1] : NULL;

    coil_reactor *r;
    coil_reactor_options ro = {.handle_signals = 1};
    if (coil_reactor_new(&r, &ro) != 0) {
        fprintf(stderr,
                "coil_sshd_test_server: cannot make a reactor (COIL_REACTOR=%s)\n",
                getenv("COIL_REACTOR") ? getenv("COIL_REACTOR") : "");
        return 1;
    }
    sshd_app *a;
    coil_failure *err = NULL;
    if (sshd_app_start(r, &o, &a, &err) != 0) {
        fprintf(stderr, "coil_sshd_test_server: %s\n",
                err ? coil_failure_message(err) : "cannot start");
        coil_failure_free(err);
        coil_reactor_free(r);
        return 1;
    }
    coil_ssh_server *srv = sshd_app_server(a);
    fprintf(stderr, "coil_sshd_test_server: %s backend, host key %s\n",
            coil_reactor_backend_name(r), coil_ssh_server_host_key_fingerprint(srv));
    printf("host key %s\n", coil_ssh_server_host_key_fingerprint(srv));
    printf("listening on %d\n", sshd_app_port(a));
    fflush(stdout);

    coil_reactor_run(r);

    sshd_app_stop(a);
    int aborted = coil_reactor_shutdown(r, 5.0);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(srv, &st);
    fprintf(stderr,
            "coil_sshd_test_server: stopped (%d connection(s) aborted); logins=%llu "
            "auth_failures=%llu rekeys=%llu refused=%llu\n",
            aborted, (unsigned long long)st.logins, (unsigned long long)st.auth_failures,
            (unsigned long long)st.rekeys, (unsigned long long)st.refused);
    sshd_app_free(a);
    coil_reactor_free(r);
    return 0;
}
