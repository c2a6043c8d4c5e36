/* coil's own plug-ins: registered once, before the first lookup of an
 * endpoint kind or of the start_tls hook, without constructors (a static
 * link may drop a file nothing calls into). */
#ifndef COIL_TRANSPORTS_PLUGINS_PRIVATE_H
#define COIL_TRANSPORTS_PLUGINS_PRIVATE_H

/* Register tcp: and unix:, then every builtin plug-in; once per process
 * (pthread_once), from any thread. In endpoint.c. */
void coil__plugins_init(void);

/* Calls the register function of every module named in CMake's
 * COIL_BUILTIN_PLUGINS (each `void NAME(void)`), in that order. Generated
 * by CMake into the build directory (builtin_plugins.c). */
void coil__builtin_plugins_register(void);

#endif
