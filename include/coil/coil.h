/* coil — everything. Include this, or the one module header you need. */
#ifndef COIL_H
#define COIL_H

#include "error.h"
#include "log.h"
#include "failure.h"
#include "reactor.h"
#include "deferred.h"
#include "threadpool.h"
#include "address.h"
#include "protocol.h"
#include "transport.h"
#include "memory.h"
#include "tcp.h"
#include "unix.h"
#include "endpoint.h"
#include "reconnect.h"
#include "line.h"
#include "netstring.h"
#include "prefixed.h"
#include "tls.h"
#include "plugin.h"
#include "http.h"

#define COIL_VERSION_MAJOR  0
#define COIL_VERSION_MINOR  1
#define COIL_VERSION_PATCH  0
#define COIL_VERSION_STRING "0.1.0"

#endif
