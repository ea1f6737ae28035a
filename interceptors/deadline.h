/*
 * interceptors/deadline.h - default deadlines and a server-side cap.
 *
 * Server: a call that arrives without grpc-timeout gets default_timeout_ns;
 * every call's deadline is at most max_timeout_ns from its start (0: no
 * default / no cap). The handler gets a derived ctx carrying that deadline;
 * when it passes, the call ends DEADLINE_EXCEEDED (origin deadline).
 * Client: a call whose ctx has no deadline gets default_timeout_ns, and no
 * call is given more than max_timeout_ns (sent as grpc-timeout).
 * `opts` is borrowed: it must outlive the server / channel.
 */
#ifndef CRPC_INTERCEPTORS_DEADLINE_H
#define CRPC_INTERCEPTORS_DEADLINE_H

#include <stdint.h>

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_deadline_options {
  int64_t default_timeout_ns; /* calls carrying no deadline; 0: none */
  int64_t max_timeout_ns;     /* cap on every call; 0: none */
} crpc_deadline_options;

crpc_server_interceptor crpc_deadline_server(const crpc_deadline_options *opts);
crpc_client_interceptor crpc_deadline_client(const crpc_deadline_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_DEADLINE_H */
