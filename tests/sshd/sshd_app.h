/* The SSH server the interop tests and the benchmark talk to: coil's SSH
 * server (coil/ssh_server.h) with a few commands, used in process by the C
 * tests and as a program by the script tests (coil_sshd_test_server.c).
 *
 * Authentication: the keys of an authorized_keys file (any user name);
 * user "alice" with password "secret" (an Argon2id hash; every other user
 * is checked against a dummy hash, so an unknown user costs the same), by
 * "password" and "keyboard-interactive".
 *
 * Channels:
 *   shell            echo (what the client sends comes back)
 *   exec "cat"       echo, then exit status 0 at the client's EOF
 *   exec "exit N"    exit status N at once
 *   exec "sink"      read to EOF, then print "BYTES SHA256HEX\n", status 0
 *   exec "source N"  write N bytes of the pattern byte(i) = i % 251, flow
 *                    controlled by a producer, then status 0
 *   exec "whoami"    one line: user=, method=, key_type=, fingerprint=,
 *                    cipher=, client=, request=, command=, pty=, term=
 *   exec "stats"     one line of coil_ssh_server_get_stats: connections=
 *                    unauthenticated= channels= logins= auth_failures=
 *                    rekeys= refused=
 *   anything else    "unknown command" on stderr, exit status 127
 *   direct-tcpip     to 127.0.0.1 only: a relay to that TCP port (the
 *                    benchmark's echo server); other hosts are refused
 * Each channel logs one line to stderr when it starts ("channel: exec
 * 'cat' user=... method=... cipher=...") and, with `log_stats`, the
 * server's counters when it ends. */
#ifndef COIL_SSHD_APP_H
#define COIL_SSHD_APP_H

#include <stdint.h>

#include <coil/coil.h>
#include <coil/ssh_server.h>

typedef struct sshd_app sshd_app;

typedef struct sshd_app_options {
    const char *host_key_file;        /* generated (0600) when missing */
    const char *authorized_keys_file; /* NULL: no keys */
    const char *interface;            /* NULL: "127.0.0.1" */
    int port;                         /* 0: a free one (sshd_app_port) */
    int max_auth_tries;               /* 0: the server's default */
    uint64_t rekey_bytes;             /* 0: the server's default */
    int log_stats;                    /* stats to stderr as each channel ends */
    int quiet;                        /* no line per channel on stderr */
    /* Set by the caller to change more options before the server is made
     * (the options are filled in already). */
    void (*tweak)(void *arg, coil_ssh_server_options *o);
    void *tweak_arg;
} sshd_app_options;

/* Make the server and listen. 0, or a negative code with *err. */
int sshd_app_start(coil_reactor *r, const sshd_app_options *o, sshd_app **out,
                   coil_failure **err);
int sshd_app_port(const sshd_app *a);
coil_ssh_server *sshd_app_server(sshd_app *a);
/* Stop listening (connections go on). */
void sshd_app_stop(sshd_app *a);
/* Free everything: call after coil_reactor_shutdown (the factories must
 * outlive every channel). */
void sshd_app_free(sshd_app *a);

/* The pattern "source" writes: byte i of the stream is i % 251. */
static inline unsigned char sshd_app_pattern(uint64_t i)
{
    return (unsigned char)(i % 251);
}

#endif
