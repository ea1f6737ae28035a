/*
 * crpc/interceptor.h - client and server interceptor chains.
 *
 * An interceptor is a small struct of function pointers plus user_data,
 * registered on a server or a channel before it is used. Every hook is
 * optional (NULL: the call passes through that link untouched). A hook gets
 * a `next` continuation (caller's stack, no allocation) and decides what to
 * do with it: call it once (pass through, maybe with changed arguments),
 * not at all (short-circuit with a status, or swallow a message) or several
 * times (e.g. recv until a message it likes).
 *
 * Order (one rule for both sides): interceptors run in registration order,
 * the first registered is the OUTERMOST layer.
 *   server: wire -> interceptor 0 -> 1 -> ... -> handler, for the call, for
 *           received messages and (in reverse) for sent ones: a handler's
 *           send goes through the last registered first, interceptor 0 last.
 *   client: application -> interceptor 0 -> 1 -> ... -> wire, for start,
 *           send, recv and finish.
 * The outermost interceptor therefore sees the call first and its final
 * status last.
 *
 * Contexts (failure catalog line 9, DESIGN.md): a call hook receives the call
 * ctx (or what the previous link passed) and passes a ctx on to `next`; that
 * ctx must be the call ctx or a descendant of it. Anything else (a fresh
 * background ctx, another call's ctx, NULL) fails the call with INTERNAL and a
 * line on stderr naming the interceptor; the handler never runs. A descendant
 * that ends earlier than the call ctx (say a tighter deadline) ends the whole
 * call with its cause. A ctx a link derives must outlive what it passes it to:
 * on the server, until `next` returns; on the client, until the call is freed
 * (prefer info->deadline_ns for client deadlines).
 *
 * Guarantee: whatever interceptors do, once the server call ctx is done
 * (client cancelled, deadline, connection lost, shutdown) a handler's send
 * returns the cause's code and writes nothing, even if a send hook delays
 * the message, wraps it or swallows it and returns CRPC_OK.
 *
 * Each `next` function is called at most once per hook invocation, except
 * recv, which a link may repeat to skip messages. Client send hooks do not
 * see crpc_call_send_flags calls with non-zero flags (those go straight to
 * the transport).
 *
 * Threads: hooks run on the thread that made the call (handler thread on
 * the server; the user's thread on the client); send and recv hooks of one
 * bidi call may run concurrently on two threads. The interceptor struct is
 * copied at registration; user_data must stay valid until the server or
 * channel is freed.
 *
 * Cost: with no interceptor registered, every call path is one pointer test.
 */
#ifndef CRPC_INTERCEPTOR_H
#define CRPC_INTERCEPTOR_H

#include <stddef.h>
#include <stdint.h>

#include "crpc/call.h"
#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/metadata.h"
#include "crpc/server.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- server ------------------------------------------------------------ */

/* What a server interceptor knows about the call. Valid during the call. */
typedef struct crpc_server_call_info {
  const char *method; /* "/package.Service/Method" */
  const char *peer;   /* "ipv4:127.0.0.1:41234", ... */
  crpc_method_kind kind;
  int64_t start_ns;   /* crpc_now_ns() when the handler thread took it */
} crpc_server_call_info;

/* The rest of the chain. Lives on the stack of the hook that receives it;
 * valid only during that hook. Fields are private. */
typedef struct crpc_server_next {
  const void *chain_;
  size_t index_;
  crpc_server_call *call_;
  const crpc_ctx *call_ctx_;
  const crpc_server_call_info *info_;
  const void *ops_;
} crpc_server_next;

typedef struct crpc_server_interceptor {
  const char *name; /* for log lines; copied by reference (static string) */
  /* Wraps the handler: runs before it, calls crpc_server_next_call to run
   * the rest (returns the handler's status, which it may change), or
   * returns a status without calling it (short-circuit). May read request
   * metadata and add response headers/trailers through `call`. */
  crpc_code (*call)(crpc_server_call *call, const crpc_ctx *ctx,
                    const crpc_server_call_info *info, crpc_server_next *next,
                    void *user_data);
  /* Wraps each crpc_server_call_recv: get the message with
   * crpc_server_next_recv, then may inspect, replace (free the old data,
   * put malloc'd bytes in msg) or drop it (free and receive again). */
  crpc_code (*recv)(crpc_server_call *call, const crpc_ctx *ctx,
                    crpc_message *msg, crpc_server_next *next,
                    void *user_data);
  /* Wraps each crpc_server_call_send: pass (maybe other) bytes on with
   * crpc_server_next_send, or not (swallow). */
  crpc_code (*send)(crpc_server_call *call, const crpc_ctx *ctx,
                    const void *data, size_t len, crpc_server_next *next,
                    void *user_data);
  void *user_data;
} crpc_server_interceptor;

/* Appends icpt (copied) to the server's chain. Before crpc_server_start.
 * CRPC_OK, CRPC_INVALID_ARGUMENT (NULL), CRPC_FAILED_PRECONDITION (started)
 * or CRPC_RESOURCE_EXHAUSTED. */
crpc_code crpc_server_add_interceptor(crpc_server *server,
                                      const crpc_server_interceptor *icpt);

/* Runs the rest of the chain and the handler with ctx (the call ctx or a
 * descendant, else INTERNAL, see above); returns their status. */
crpc_code crpc_server_next_call(crpc_server_next *next, const crpc_ctx *ctx);

/* The next recv link, or the wire: same contract as crpc_server_call_recv. */
crpc_code crpc_server_next_recv(crpc_server_next *next, crpc_message *msg);

/* The next send link, or the wire: same contract as crpc_server_call_send
 * (data copied). */
crpc_code crpc_server_next_send(crpc_server_next *next, const void *data,
                                size_t len);

/* ---- client ------------------------------------------------------------ */

/* What a client interceptor knows about a call being started. */
typedef struct crpc_client_call_info {
  const char *method; /* "/package.Service/Method" */
  const char *target; /* the channel's target */
  /* In/out: an extra deadline for this call (CRPC_NO_DEADLINE: none); the
   * call's deadline is min(this, the ctx's). Set it instead of deriving a
   * ctx you would have to keep alive. */
  int64_t deadline_ns;
} crpc_client_call_info;

typedef struct crpc_client_next {
  const void *chain_;
  size_t index_;
  crpc_call *call_;
  const crpc_ctx *user_ctx_;
  crpc_client_call_info *info_;
  crpc_call **out_;
  void *env_;
  const void *ops_;
} crpc_client_next;

typedef struct crpc_client_interceptor {
  const char *name;
  /* Wraps crpc_call_start. `md` is a private copy of the caller's metadata
   * the link may change (add a token, a trace id). Call
   * crpc_client_next_start to go on, or return a status to refuse the call
   * (crpc_call_start then returns it; no call exists). */
  crpc_code (*start)(const crpc_ctx *ctx, crpc_client_call_info *info,
                     crpc_metadata *md, crpc_client_next *next,
                     void *user_data);
  crpc_code (*send)(crpc_call *call, const void *data, size_t len,
                    crpc_client_next *next, void *user_data);
  crpc_code (*recv)(crpc_call *call, crpc_message *msg,
                    crpc_client_next *next, void *user_data);
  /* Wraps crpc_call_finish: crpc_client_next_finish fills *status (never
   * NULL here); the link may change code, message or trailers. */
  crpc_code (*finish)(crpc_call *call, crpc_status *status,
                      crpc_client_next *next, void *user_data);
  void *user_data;
} crpc_client_interceptor;

/* Appends icpt (copied) to the channel's chain. Before the first call.
 * CRPC_OK, CRPC_INVALID_ARGUMENT, CRPC_FAILED_PRECONDITION (a call was
 * made) or CRPC_RESOURCE_EXHAUSTED. */
crpc_code crpc_channel_add_interceptor(crpc_channel *channel,
                                       const crpc_client_interceptor *icpt);

/* The rest of the start chain with ctx (the caller's ctx or a descendant,
 * else INTERNAL) and md (may be the one received). */
crpc_code crpc_client_next_start(crpc_client_next *next, const crpc_ctx *ctx,
                                 const crpc_metadata *md);
crpc_code crpc_client_next_send(crpc_client_next *next, const void *data,
                                size_t len);
crpc_code crpc_client_next_recv(crpc_client_next *next, crpc_message *msg);
crpc_code crpc_client_next_finish(crpc_client_next *next,
                                  crpc_status *status);

/* In a start link, after crpc_client_next_start returned CRPC_OK: the call
 * it created (owned by the caller of crpc_call_start, valid until
 * crpc_call_free), so the link can pair this start with the call's later
 * send/recv/finish. NULL before that, or if the start failed. */
crpc_call *crpc_client_next_call(const crpc_client_next *next);

/* The method of a started client call ("/pkg.Svc/M"). Owned by the call. */
const char *crpc_call_method(const crpc_call *call);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTOR_H */
