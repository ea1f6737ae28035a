/*
 * interceptors/limits.h - a per-server cap on concurrent calls.
 *
 * A call that would be the (max+1)th running at once ends
 * RESOURCE_EXHAUSTED at once, without running the handler; the count is of
 * calls inside this interceptor (handlers running), not of calls still
 * waiting for a handler thread. Create one crpc_limits per server.
 * Lifetime: crpc_limits_new / crpc_limits_free (NULL ok) after the server
 * is freed. Thread-safe (one atomic counter).
 */
#ifndef CRPC_INTERCEPTORS_LIMITS_H
#define CRPC_INTERCEPTORS_LIMITS_H

#include <stddef.h>

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_limits crpc_limits;

crpc_limits *crpc_limits_new(size_t max_concurrent_calls);
void crpc_limits_free(crpc_limits *l);
crpc_server_interceptor crpc_limits_server(crpc_limits *l);
/* Calls running now. */
size_t crpc_limits_in_flight(crpc_limits *l);
/* Calls refused so far. */
size_t crpc_limits_rejected(crpc_limits *l);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_LIMITS_H */
