/*
 * rpc/intercept/chain.h - the interceptor chain engine (internal).
 *
 * The engine knows nothing of the transport: the server and the channel
 * hand it their terminal operations (run the handler, the wire-level
 * send/recv...) as a const ops table, and keep a chain pointer that is NULL
 * while no interceptor is registered (zero cost: one pointer test).
 * Chains are built before the server starts / the channel's first call and
 * are read-only afterwards, so any thread may walk them without a lock.
 */
#ifndef CRPC_INTERCEPT_CHAIN_H
#define CRPC_INTERCEPT_CHAIN_H

#include <stdbool.h>

#include "crpc/interceptor.h"

typedef struct icpt_server_ops {
  /* Runs the handler with ctx (already checked). */
  crpc_code (*call)(crpc_server_call *call, const crpc_ctx *ctx);
  crpc_code (*recv)(crpc_server_call *call, crpc_message *msg);
  crpc_code (*send)(crpc_server_call *call, const void *data, size_t len);
  /* Sets the status message of a call the chain fails. */
  void (*fail)(crpc_server_call *call, const char *msg);
  /* The ctx the handler got (what recv/send hooks receive). */
  const crpc_ctx *(*handler_ctx)(crpc_server_call *call);
} icpt_server_ops;

typedef struct icpt_server_chain {
  crpc_server_interceptor *links;
  size_t n, cap;
  bool any_recv, any_send;
} icpt_server_chain;

typedef struct icpt_client_ops {
  crpc_code (*start)(void *env, const crpc_ctx *ctx,
                     const crpc_client_call_info *info,
                     const crpc_metadata *md, crpc_call **out);
  crpc_code (*send)(crpc_call *call, const void *data, size_t len);
  crpc_code (*recv)(crpc_call *call, crpc_message *msg);
  crpc_code (*finish)(crpc_call *call, crpc_status *status);
  void (*free_call)(crpc_call *call);
} icpt_client_ops;

typedef struct icpt_client_chain {
  crpc_client_interceptor *links;
  size_t n, cap;
  bool any_send, any_recv, any_finish;
} icpt_client_chain;

/* Appends a copy of icpt, creating the chain on first use. */
crpc_code icpt_server_chain_add(icpt_server_chain **chain,
                                const crpc_server_interceptor *icpt);
crpc_code icpt_client_chain_add(icpt_client_chain **chain,
                                const crpc_client_interceptor *icpt);
/* NULL: no-op. */
void icpt_server_chain_free(icpt_server_chain *chain);
void icpt_client_chain_free(icpt_client_chain *chain);

/* Runs the server chain around the handler. */
crpc_code icpt_server_run(const icpt_server_chain *chain,
                          const icpt_server_ops *ops, crpc_server_call *call,
                          const crpc_ctx *call_ctx,
                          const crpc_server_call_info *info);
/* A handler's recv / send through the chain; the send enforces the
 * cancel guarantee (a done call ctx wins over whatever the links say). */
crpc_code icpt_server_recv(const icpt_server_chain *chain,
                           const icpt_server_ops *ops, crpc_server_call *call,
                           const crpc_ctx *call_ctx, crpc_message *msg);
crpc_code icpt_server_send(const icpt_server_chain *chain,
                           const icpt_server_ops *ops, crpc_server_call *call,
                           const crpc_ctx *call_ctx, const void *data,
                           size_t len);

/* Client: start (md copied for the links), send, recv, finish. */
crpc_code icpt_client_start(const icpt_client_chain *chain,
                            const icpt_client_ops *ops, void *env,
                            const crpc_ctx *ctx, crpc_client_call_info *info,
                            const crpc_metadata *md, crpc_call **out);
crpc_code icpt_client_send(const icpt_client_chain *chain,
                           const icpt_client_ops *ops, crpc_call *call,
                           const void *data, size_t len);
crpc_code icpt_client_recv(const icpt_client_chain *chain,
                           const icpt_client_ops *ops, crpc_call *call,
                           crpc_message *msg);
crpc_code icpt_client_finish(const icpt_client_chain *chain,
                             const icpt_client_ops *ops, crpc_call *call,
                             crpc_status *status);

#endif /* CRPC_INTERCEPT_CHAIN_H */
