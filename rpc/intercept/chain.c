/*
 * chain.c - walking interceptor chains. Each hook gets a continuation on
 * its caller's stack ({chain, position, call, ops}); calling it finds the
 * next link that has that hook or falls through to the transport. No
 * allocation per call or message, except the one metadata copy a client
 * start makes for its links.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/intercept/chain.h"
#include "rpc/log/log.h"

#define GROW(arr, n, cap)                                       \
  do {                                                          \
    if ((n) == (cap)) {                                         \
      size_t ncap_ = (cap) ? (cap) * 2 : 4;                     \
      void *p_ = realloc((arr), ncap_ * sizeof(*(arr)));        \
      if (p_ == NULL) return CRPC_RESOURCE_EXHAUSTED;           \
      (arr) = p_;                                               \
      (cap) = ncap_;                                            \
    }                                                           \
  } while (0)

static const char *name_of(const char *name) {
  return name != NULL ? name : "(unnamed)";
}

/* ---- building ------------------------------------------------------------ */

crpc_code icpt_server_chain_add(icpt_server_chain **chain,
                                const crpc_server_interceptor *icpt) {
  if (icpt == NULL) return CRPC_INVALID_ARGUMENT;
  if (*chain == NULL) {
    *chain = calloc(1, sizeof(**chain));
    if (*chain == NULL) return CRPC_RESOURCE_EXHAUSTED;
  }
  icpt_server_chain *c = *chain;
  GROW(c->links, c->n, c->cap);
  c->links[c->n++] = *icpt;
  c->any_recv |= icpt->recv != NULL;
  c->any_send |= icpt->send != NULL;
  return CRPC_OK;
}

crpc_code icpt_client_chain_add(icpt_client_chain **chain,
                                const crpc_client_interceptor *icpt) {
  if (icpt == NULL) return CRPC_INVALID_ARGUMENT;
  if (*chain == NULL) {
    *chain = calloc(1, sizeof(**chain));
    if (*chain == NULL) return CRPC_RESOURCE_EXHAUSTED;
  }
  icpt_client_chain *c = *chain;
  GROW(c->links, c->n, c->cap);
  c->links[c->n++] = *icpt;
  c->any_send |= icpt->send != NULL;
  c->any_recv |= icpt->recv != NULL;
  c->any_finish |= icpt->finish != NULL;
  return CRPC_OK;
}

void icpt_server_chain_free(icpt_server_chain *chain) {
  if (chain == NULL) return;
  free(chain->links);
  free(chain);
}

void icpt_client_chain_free(icpt_client_chain *chain) {
  if (chain == NULL) return;
  free(chain->links);
  free(chain);
}

/* ---- server -------------------------------------------------------------- */

/* Runs link `from` onwards (upward) with ctx. */
static crpc_code server_call_from(const crpc_server_next *tmpl, size_t from,
                                  const crpc_ctx *ctx) {
  const icpt_server_chain *c = tmpl->chain_;
  const icpt_server_ops *ops = tmpl->ops_;
  for (size_t i = from; i < c->n; i++) {
    if (c->links[i].call == NULL) continue;
    crpc_server_next n = *tmpl;
    n.index_ = i + 1;
    return c->links[i].call(tmpl->call_, ctx, tmpl->info_, &n,
                            c->links[i].user_data);
  }
  return ops->call(tmpl->call_, ctx);
}

crpc_code crpc_server_next_call(crpc_server_next *next, const crpc_ctx *ctx) {
  if (ctx == NULL || !crpc_ctx_is_descendant(ctx, next->call_ctx_)) {
    const icpt_server_chain *c = next->chain_;
    const char *name = name_of(c->links[next->index_ - 1].name);
    char msg[200];
    snprintf(msg, sizeof(msg),
             "interceptor \"%.60s\" passed a ctx that is not the call ctx "
             "or a descendant of it",
             name);
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_INTERCEPTOR,
             "server call %s: %s; call fails INTERNAL", next->info_->method,
             msg);
    ((const icpt_server_ops *)next->ops_)->fail(next->call_, msg);
    return CRPC_INTERNAL;
  }
  return server_call_from(next, next->index_, ctx);
}

crpc_code icpt_server_run(const icpt_server_chain *chain,
                          const icpt_server_ops *ops, crpc_server_call *call,
                          const crpc_ctx *call_ctx,
                          const crpc_server_call_info *info) {
  crpc_server_next n = {.chain_ = chain,
                        .index_ = 0,
                        .call_ = call,
                        .call_ctx_ = call_ctx,
                        .info_ = info,
                        .ops_ = ops};
  return server_call_from(&n, 0, call_ctx);
}

crpc_code crpc_server_next_recv(crpc_server_next *next, crpc_message *msg) {
  const icpt_server_chain *c = next->chain_;
  const icpt_server_ops *ops = next->ops_;
  for (size_t i = next->index_; i-- > 0;) {
    if (c->links[i].recv == NULL) continue;
    crpc_server_next n = *next;
    n.index_ = i;
    return c->links[i].recv(next->call_, ops->handler_ctx(next->call_), msg,
                            &n, c->links[i].user_data);
  }
  return ops->recv(next->call_, msg);
}

crpc_code crpc_server_next_send(crpc_server_next *next, const void *data,
                                size_t len) {
  const icpt_server_chain *c = next->chain_;
  const icpt_server_ops *ops = next->ops_;
  for (size_t i = next->index_; i-- > 0;) {
    if (c->links[i].send == NULL) continue;
    crpc_server_next n = *next;
    n.index_ = i;
    return c->links[i].send(next->call_, ops->handler_ctx(next->call_), data,
                            len, &n, c->links[i].user_data);
  }
  /* Whatever the links did, a done call writes nothing. */
  crpc_code dead = crpc_ctx_err(next->call_ctx_);
  if (dead != CRPC_OK) return dead;
  return ops->send(next->call_, data, len);
}

crpc_code icpt_server_recv(const icpt_server_chain *chain,
                           const icpt_server_ops *ops, crpc_server_call *call,
                           const crpc_ctx *call_ctx, crpc_message *msg) {
  crpc_server_next n = {.chain_ = chain,
                        .index_ = chain->n,
                        .call_ = call,
                        .call_ctx_ = call_ctx,
                        .ops_ = ops};
  return crpc_server_next_recv(&n, msg);
}

crpc_code icpt_server_send(const icpt_server_chain *chain,
                           const icpt_server_ops *ops, crpc_server_call *call,
                           const crpc_ctx *call_ctx, const void *data,
                           size_t len) {
  crpc_code dead = crpc_ctx_err(call_ctx);
  if (dead != CRPC_OK) return dead;
  crpc_server_next n = {.chain_ = chain,
                        .index_ = chain->n,
                        .call_ = call,
                        .call_ctx_ = call_ctx,
                        .ops_ = ops};
  crpc_code code = crpc_server_next_send(&n, data, len);
  /* The guarantee: once the client has cancelled (or the call ended for
   * any reason) a send reports it, even if a link swallowed the message
   * and said OK. */
  dead = crpc_ctx_err(call_ctx);
  return dead != CRPC_OK ? dead : code;
}

/* ---- client -------------------------------------------------------------- */

typedef struct client_start_env {
  void *env;
  crpc_metadata *md; /* the links' private copy */
} client_start_env;

static crpc_code client_start_from(crpc_client_next *tmpl, size_t from,
                                   const crpc_ctx *ctx,
                                   const crpc_metadata *md) {
  const icpt_client_chain *c = tmpl->chain_;
  const icpt_client_ops *ops = tmpl->ops_;
  client_start_env *se = tmpl->env_;
  for (size_t i = from; i < c->n; i++) {
    if (c->links[i].start == NULL) continue;
    if (md != se->md) {
      /* A link passed other metadata: the next link edits a copy of it. */
      crpc_metadata_clear(se->md);
      if (crpc_metadata_append(se->md, md) != CRPC_OK) {
        return CRPC_RESOURCE_EXHAUSTED;
      }
    }
    crpc_client_next n = *tmpl;
    n.index_ = i + 1;
    return c->links[i].start(ctx, tmpl->info_, se->md, &n,
                             c->links[i].user_data);
  }
  return ops->start(se->env, ctx, tmpl->info_, md, tmpl->out_);
}

crpc_code crpc_client_next_start(crpc_client_next *next, const crpc_ctx *ctx,
                                 const crpc_metadata *md) {
  if (ctx == NULL || !crpc_ctx_is_descendant(ctx, next->user_ctx_)) {
    const icpt_client_chain *c = next->chain_;
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_INTERCEPTOR,
             "call %s: interceptor \"%.60s\" passed a ctx that is not the "
             "caller's ctx or a descendant of it; call fails INTERNAL",
             next->info_->method, name_of(c->links[next->index_ - 1].name));
    return CRPC_INTERNAL;
  }
  return client_start_from(next, next->index_, ctx, md);
}

crpc_call *crpc_client_next_call(const crpc_client_next *next) {
  return next != NULL && next->out_ != NULL ? *next->out_ : NULL;
}

crpc_code icpt_client_start(const icpt_client_chain *chain,
                            const icpt_client_ops *ops, void *env,
                            const crpc_ctx *ctx, crpc_client_call_info *info,
                            const crpc_metadata *md, crpc_call **out) {
  client_start_env se = {.env = env, .md = crpc_metadata_new()};
  if (se.md == NULL) return CRPC_RESOURCE_EXHAUSTED;
  if (crpc_metadata_append(se.md, md) != CRPC_OK) {
    crpc_metadata_free(se.md);
    return CRPC_RESOURCE_EXHAUSTED;
  }
  crpc_client_next n = {.chain_ = chain,
                        .index_ = 0,
                        .user_ctx_ = ctx,
                        .info_ = info,
                        .out_ = out,
                        .env_ = &se,
                        .ops_ = ops};
  crpc_code code = client_start_from(&n, 0, ctx, se.md);
  crpc_metadata_free(se.md);
  if (code != CRPC_OK && *out != NULL) {
    /* A link refused after the call started: do not leak it. */
    ops->free_call(*out);
    *out = NULL;
  }
  return code;
}

crpc_code crpc_client_next_send(crpc_client_next *next, const void *data,
                                size_t len) {
  const icpt_client_chain *c = next->chain_;
  for (size_t i = next->index_; i < c->n; i++) {
    if (c->links[i].send == NULL) continue;
    crpc_client_next n = *next;
    n.index_ = i + 1;
    return c->links[i].send(next->call_, data, len, &n, c->links[i].user_data);
  }
  return ((const icpt_client_ops *)next->ops_)->send(next->call_, data, len);
}

crpc_code crpc_client_next_recv(crpc_client_next *next, crpc_message *msg) {
  const icpt_client_chain *c = next->chain_;
  for (size_t i = next->index_; i < c->n; i++) {
    if (c->links[i].recv == NULL) continue;
    crpc_client_next n = *next;
    n.index_ = i + 1;
    return c->links[i].recv(next->call_, msg, &n, c->links[i].user_data);
  }
  return ((const icpt_client_ops *)next->ops_)->recv(next->call_, msg);
}

crpc_code crpc_client_next_finish(crpc_client_next *next,
                                  crpc_status *status) {
  const icpt_client_chain *c = next->chain_;
  for (size_t i = next->index_; i < c->n; i++) {
    if (c->links[i].finish == NULL) continue;
    crpc_client_next n = *next;
    n.index_ = i + 1;
    return c->links[i].finish(next->call_, status, &n, c->links[i].user_data);
  }
  return ((const icpt_client_ops *)next->ops_)->finish(next->call_, status);
}

#define CLIENT_NEXT(chain, ops, call) \
  {.chain_ = (chain), .index_ = 0, .call_ = (call), .ops_ = (ops)}

crpc_code icpt_client_send(const icpt_client_chain *chain,
                           const icpt_client_ops *ops, crpc_call *call,
                           const void *data, size_t len) {
  crpc_client_next n = CLIENT_NEXT(chain, ops, call);
  return crpc_client_next_send(&n, data, len);
}

crpc_code icpt_client_recv(const icpt_client_chain *chain,
                           const icpt_client_ops *ops, crpc_call *call,
                           crpc_message *msg) {
  crpc_client_next n = CLIENT_NEXT(chain, ops, call);
  return crpc_client_next_recv(&n, msg);
}

crpc_code icpt_client_finish(const icpt_client_chain *chain,
                             const icpt_client_ops *ops, crpc_call *call,
                             crpc_status *status) {
  crpc_status local = {0};
  crpc_status *st = status != NULL ? status : &local;
  crpc_client_next n = CLIENT_NEXT(chain, ops, call);
  crpc_code code = crpc_client_next_finish(&n, st);
  st->code = code;
  free(local.message);
  crpc_metadata_free(local.trailers);
  return code;
}
