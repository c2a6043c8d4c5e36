/* coil — endpoints from strings, in Twisted's description syntax.
 *
 * A description names a transport kind, then its arguments separated by
 * ':'; an argument is positional or KEY=VALUE; a backslash makes the next
 * character literal ("unix:/tmp/a\:b" is the path "/tmp/a:b").
 *
 *   server: tcp:PORT[:interface=ADDR][:backlog=N]
 *           unix:PATH[:mode=0660][:backlog=N]
 *   client: tcp:host=HOST:port=PORT[:timeout=S][:bindAddress=ADDR]
 *               [:resolveTimeout=S]
 *           tcp:HOST:PORT[:...]
 *           (a host name is resolved on the reactor's thread pool, within
 *           resolveTimeout, default the connect timeout; tls: takes it too)
 *           unix:path=PATH[:timeout=S]   unix:PATH
 *
 * A bad description fails with a message that names the bad part and
 * shows the right form:
 *   "bad server endpoint 'tcp:80x': port '80x' is not a number from 0 to
 *    65535 (use tcp:PORT[:interface=ADDR][:backlog=N])"
 *
 *   coil_listener *l;
 *   coil_failure *err;
 *   if (coil_listen(r, "tcp:8000:interface=127.0.0.1", &factory, &l, &err) != 0) {
 *       coil_failure_print(err, stderr); ...
 *   }
 *
 * TLS: server "ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem[:extraCertChain=FILE]
 *  [:caCerts=FILE][:requireCert=yes][:alpn=h2,http/1.1][:interface=ADDR]" (tls: is
 *  the same); client "tls:HOST:PORT[:caCerts=FILE][:certificate=FILE:privateKey=
 *  FILE][:sni=NAME][:alpn=...][:resume=no]", verifying HOST (or sni) against
 *  caCerts or the system store, and resuming sessions unless resume=no.
 *  Both sides also take ciphersuites= (TLS 1.3) and groups= (OpenSSL's
 *  lists). Certificates are loaded when the description is parsed.
 *
 * SSH server (coil's own; coil/ssh_server.h): "ssh:PORT:hostKey=FILE
 *  [:authorizedKeys=FILE][:anonymous=yes][:interface=ADDR]" (and tcp:'s
 *  backlog=, highWater=, lowWater=): the factory serves every shell and exec
 *  channel. hostKey= is an ed25519 OpenSSH private key, made (mode 0600) when
 *  missing; authorizedKeys= an OpenSSH authorized_keys file whose keys log
 *  in under any user name; anonymous=yes lets anyone in. One of the two is
 *  required.
 *
 * SSH client (coil/ssh.h): "ssh:HOST[:PORT]:user=USER[:identity=FILE]
 *  [:knownHosts=FILE][:agent=yes][:password=env:VAR][:hostKeys=strict|
 *  accept-new|insecure-accept-any][:keepalive=S][:timeout=S][:highWater=BYTES]
 *  [:lowWater=BYTES]:to=DESTHOST\:DESTPORT"
 *  opens a direct-tcpip channel (a TCP connection the SSH server makes to
 *  DESTHOST:DESTPORT), "...:exec=COMMAND" an exec channel (the command's
 *  stdin and stdout). Every ':' inside a value is escaped with a backslash:
 *    ssh:gw.example:22:user=me:agent=yes:to=[\:\:1]\:7000     (IPv6, bracketed
 *                                                   or bare: to=\:\:1\:7000)
 *    ssh:gw.example:22:user=me:identity=/home/me/.ssh/id_ed25519:exec=date +%H\:%M
 *  (in a shell, single-quote the description so the backslashes stay). The
 *  password is never in the text: password=env:VAR names the variable
 *  holding it. Connections of one reactor to the same HOST, PORT and USER
 *  with the same session options share one SSH session (opened on first
 *  use, closed when its last connection and connector are gone); each
 *  connection is a channel, a transport of kind "ssh-channel" (the
 *  protocol runs on the channel itself: coil_ssh_channel_exit_status works
 *  on it; highWater=/lowWater= are its write queue marks, as tcp:'s).
 *
 * ssl:/tls: come from coil's TLS module and ssh: from its SSH module: every
 * kind, coil's and yours, is a plug-in in one table (coil/plugin.h says how
 * to add one). A description of an unknown kind is refused with the names
 * of the registered ones.
 */
#ifndef COIL_ENDPOINT_H
#define COIL_ENDPOINT_H

#include "deferred.h"
#include "failure.h"
#include "protocol.h"
#include "reactor.h"
#include "tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parsing ------------------------------------------------------------- */

/* A parsed description: its kind and its arguments, unescaped. */
#define COIL_ENDPOINT_MAX_ARGS 32
#define COIL_ENDPOINT_MAX_LEN  4096

typedef struct coil_endpoint_arg {
    char *key;   /* NULL for a positional argument */
    char *value; /* never NULL */
} coil_endpoint_arg;

typedef struct coil_endpoint_desc {
    char *kind; /* "tcp", "unix", ... */
    int nargs;
    coil_endpoint_arg args[COIL_ENDPOINT_MAX_ARGS];
} coil_endpoint_desc;

/* Split a description into kind and arguments (no checking of the kind's
 * rules). Descriptions longer than COIL_ENDPOINT_MAX_LEN or with more than
 * COIL_ENDPOINT_MAX_ARGS arguments are refused. Returns 0, or COIL_EINVAL
 * / COIL_ENOMEM with *err (if not NULL) saying what was wrong. Free with
 * coil_endpoint_desc_free. */
int coil_endpoint_desc_parse(const char *text, coil_endpoint_desc **out,
                             coil_failure **err) COIL_MUST_CHECK;
void coil_endpoint_desc_free(coil_endpoint_desc *d);
/* The value of KEY=VALUE, or NULL. */
const char *coil_endpoint_desc_get(const coil_endpoint_desc *d, const char *key);

/* ---- endpoints ----------------------------------------------------------- */

/* A checked endpoint, ready to listen or connect as often as wanted. */
typedef struct coil_endpoint coil_endpoint;

int coil_endpoint_server(const char *text, coil_endpoint **out,
                         coil_failure **err) COIL_MUST_CHECK;
int coil_endpoint_client(const char *text, coil_endpoint **out,
                         coil_failure **err) COIL_MUST_CHECK;
void coil_endpoint_free(coil_endpoint *e);
/* The kind's name: "tcp", "unix", "tls" (also for ssl:), a plug-in's. */
const char *coil_endpoint_kind(const coil_endpoint *e);
/* The description it came from (for messages). */
const char *coil_endpoint_text(const coil_endpoint *e);

/* Listen on a server endpoint / connect a client endpoint; as
 * coil_tcp_listen and coil_tcp_connect. */
int coil_endpoint_listen(coil_reactor *r, const coil_endpoint *e, coil_factory *f,
                         coil_listener **out, coil_failure **err) COIL_MUST_CHECK;
int coil_endpoint_connect(coil_reactor *r, const coil_endpoint *e, coil_factory *f,
                          coil_connector **out, coil_failure **err) COIL_MUST_CHECK;

/* Parse and listen / connect in one call. */
int coil_listen(coil_reactor *r, const char *text, coil_factory *f, coil_listener **out,
                coil_failure **err) COIL_MUST_CHECK;
int coil_connect(coil_reactor *r, const char *text, coil_factory *f, coil_connector **out,
                 coil_failure **err) COIL_MUST_CHECK;

/* ---- one protocol, one connection (Twisted's connectProtocol) ------------ */

/* Connect `p` (owned from now on: destroyed if the connection never comes
 * up) to a client endpoint. The deferred fires with `p` (borrowed: the
 * transport owns it) after its connection_made, or fails with why the
 * connection could not be made. Cancelling the deferred stops the attempt.
 * Returns NULL only when memory runs out (p destroyed). */
coil_deferred *coil_connect_protocol(coil_reactor *r, const coil_endpoint *e,
                                     coil_protocol *p);

#ifdef __cplusplus
}
#endif
#endif
