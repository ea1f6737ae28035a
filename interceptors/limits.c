/*
 * limits.c - max concurrent calls per server (see limits.h).
 */
#include "interceptors/limits.h"

#include <stdatomic.h>
#include <stdlib.h>

struct crpc_limits {
  size_t max;
  atomic_size_t in_flight;
  atomic_size_t rejected;
};

crpc_limits *crpc_limits_new(size_t max) {
  crpc_limits *l = calloc(1, sizeof(*l));
  if (l == NULL) return NULL;
  l->max = max;
  atomic_init(&l->in_flight, 0);
  atomic_init(&l->rejected, 0);
  return l;
}

void crpc_limits_free(crpc_limits *l) { free(l); }

static crpc_code server_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const crpc_server_call_info *info,
                             crpc_server_next *next, void *user_data) {
  (void)info;
  crpc_limits *l = user_data;
  if (atomic_fetch_add(&l->in_flight, 1) >= l->max) {
    atomic_fetch_sub(&l->in_flight, 1);
    atomic_fetch_add(&l->rejected, 1);
    return crpc_server_call_error(call, CRPC_RESOURCE_EXHAUSTED,
                                  "too many concurrent calls (max %zu)",
                                  l->max);
  }
  crpc_code code = crpc_server_next_call(next, ctx);
  atomic_fetch_sub(&l->in_flight, 1);
  return code;
}

crpc_server_interceptor crpc_limits_server(crpc_limits *l) {
  crpc_server_interceptor i = {.name = "limits",
                               .call = server_call,
                               .user_data = l};
  return i;
}

size_t crpc_limits_in_flight(crpc_limits *l) {
  return atomic_load(&l->in_flight);
}

size_t crpc_limits_rejected(crpc_limits *l) {
  return atomic_load(&l->rejected);
}
