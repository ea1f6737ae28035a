/*
 * crpc/server_async.h - non-blocking handlers that run on the connection's
 * loop thread (the "reactor" style of gRPC C++'s callback API, driven the
 * way nghttp2 drives its own callbacks).
 *
 * A blocking handler (crpc/server.h) gets a thread of its own and pulls
 * messages with recv; each message of a streaming call then crosses from
 * the loop thread to a handler thread and back. An async method instead reacts to events on the
 * loop thread that owns the call's connection:
 *
 *   on_start       the request headers are in: the call begins. Returns the
 *                  per-call state passed to every later callback.
 *   on_message     one request message (a view, valid during the callback),
 *                  or msg->end once the client has half-closed.
 *   on_send_ready  the send buffer, full when crpc_server_call_can_send last
 *                  said false, has drained: send more.
 *   on_cancel      the call's ctx is done before the reactor finished
 *                  (client reset, deadline, connection lost, shutdown, a bad
 *                  request message), with the cause. The reactor must still
 *                  call crpc_server_call_finish (any code: the status on the
 *                  wire is the cause's).
 *   on_done        the last callback: the reactor has finished and crpc has
 *                  no further use for the state. Free it here.
 *
 * Callbacks never block and never wait: they run on a loop thread that
 * serves every other call of its connections. "The loop thread" is the
 * loop's own thread, or its standby thread while the loop's thread is lent
 * to a blocking handler (crpc/server.h): callbacks of one loop never run
 * at the same time, and each sees what the one before it wrote, but do
 * not keep per-call data in thread-local storage. Long or blocking work is
 * handed to a thread by the reactor itself, with the call's ctx (see
 * examples/async); crpc_server_call_send_async and crpc_server_call_finish
 * may be called from that thread.
 *
 * Every ctx guarantee of crpc/server.h holds: once the ctx is done,
 * crpc_server_call_send_async returns the cause's code at once and queues
 * nothing, queued bytes not yet started are dropped, and nothing is written
 * after.
 *
 * Lifetime (one rule): the call handle and the state are valid from
 * on_start until on_done returns. on_done always comes, exactly once, after
 * crpc_server_call_finish, and after on_cancel if that came; no callback
 * comes after it. on_start always runs, even when the ctx is already done
 * (on_cancel then follows). A finish made on another thread races with
 * the loop: on_cancel or on_send_ready may still arrive while it runs
 * (the state is valid until on_done, so this is safe; ignore them). Interceptors (crpc/interceptor.h) wrap blocking handlers
 * only: an async method runs without the server's interceptor chain.
 */
#ifndef CRPC_SERVER_ASYNC_H
#define CRPC_SERVER_ASYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "crpc/call.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The events of one async method. on_start is required; the rest may be
 * NULL (ignored; a NULL on_message drops request messages). All run on the
 * call's loop thread, one at a time per call. */
typedef struct crpc_server_reactor {
  /* ctx: the call ctx, read-only, valid until on_done; user_data: as given
   * at registration. Returns the call's state (may be NULL). The reactor
   * may send or finish right here. */
  void *(*on_start)(crpc_server_call *call, const crpc_ctx *ctx,
                    void *user_data);
  /* msg->data is crpc's and valid only during the callback (copy what you
   * keep); msg->end: no more messages. Not called after finish. The
   * stream's flow-control window is given back when this returns. */
  void (*on_message)(crpc_server_call *call, const crpc_message *msg,
                     void *state);
  void (*on_send_ready)(crpc_server_call *call, void *state);
  void (*on_cancel)(crpc_server_call *call, const crpc_cause *cause,
                    void *state);
  void (*on_done)(crpc_server_call *call, void *state);
} crpc_server_reactor;

/* Registers an async method for "/package.Service/Method". Before start.
 * The struct is copied; user_data must outlive the server. Returns as
 * crpc_server_add_method. */
crpc_code crpc_server_add_async_method(crpc_server *server, const char *path,
                                       crpc_method_kind kind,
                                       const crpc_server_reactor *reactor,
                                       void *user_data);

/* A unary handler that runs inline on the loop thread, with no thread hop:
 * called once with the request (a view, valid during the call), it sends
 * at most one response with crpc_server_call_send_async and returns the
 * status (crpc_server_call_error sets a message). A missing request is
 * answered INTERNAL without calling it. It must not block; if the ctx is
 * already done it is not called. */
typedef crpc_code (*crpc_unary_async_fn)(crpc_server_call *call,
                                         const crpc_ctx *ctx,
                                         const crpc_message *request,
                                         void *user_data);

/* Registers a unary inline handler (CRPC_UNARY). Before start.
 * Returns as crpc_server_add_method. */
crpc_code crpc_server_add_unary_async(crpc_server *server, const char *path,
                                      crpc_unary_async_fn fn,
                                      void *user_data);

/* Queues one response message (copied; headers go first if not sent yet).
 * Never blocks. Any thread, until finish. CRPC_OK when queued; the ctx's
 * cause code at once once the ctx is done (nothing queued);
 * RESOURCE_EXHAUSTED over max_send_message_size; INTERNAL if a reserved
 * header was set or compressing failed; FAILED_PRECONDITION after finish.
 * Off the loop thread it may wait (briefly) for the loop to finish
 * cancelling a call whose stream just went, so the code is the cause's. Memory is bounded by the caller:
 * send while crpc_server_call_can_send says true. */
crpc_code crpc_server_call_send_async(crpc_server_call *call,
                                      const void *data, size_t len,
                                      unsigned flags);

/* crpc_server_call_send_async for a message in a crpc_buf (crpc/call.h):
 * queued as the buffer itself, no copy unless the call compresses; one
 * buffer can be queued on many calls (a reference each). Consumes one
 * reference to buf whatever it returns. Same returns and threads as
 * crpc_server_call_send_async. */
crpc_code crpc_server_call_send_async_buf(crpc_server_call *call,
                                          crpc_buf *buf, unsigned flags);

/* True while the call's send buffer holds less than its send limit (the
 * server's stream_send_buffer; four messages, at most 4 x that, when they
 * are larger than a quarter of it). When it returns false, on_send_ready runs once the
 * buffer has drained (or on_cancel, if the call ends first). Any thread. */
bool crpc_server_call_can_send(crpc_server_call *call);

/* Holds (pause) and restarts (resume) on_message for the call: the
 * reactor's backpressure on what the client sends. While paused, request
 * messages stay queued and their flow-control window is not given back, so
 * a client that keeps sending is held by HTTP/2 flow control (at most the
 * stream's window is buffered); the end of the request stream (msg->end)
 * waits too. on_send_ready, on_cancel and on_done still come. A bidi echo,
 * say, pauses when crpc_server_call_can_send says false and resumes in
 * on_send_ready. Any thread, any number of times; resume delivers what is
 * queued on the loop thread, after the callback that called it returns.
 * No effect once the call has finished. */
void crpc_server_call_pause_recv(crpc_server_call *call);
void crpc_server_call_resume_recv(crpc_server_call *call);

/* Ends the call with `code` (and the message set by crpc_server_call_error
 * or NULL: none; this one wins if both). Queued messages go first, then the
 * trailers. If the ctx was already done, the status sent is the cause's.
 * Any thread, exactly once; the call handle must not be used by the
 * caller afterwards except inside callbacks still running, and on_done
 * follows on the loop thread. */
void crpc_server_call_finish(crpc_server_call *call, crpc_code code,
                             const char *message);

/* The call's ctx (as passed to on_start). Valid until on_done returns. */
const crpc_ctx *crpc_server_call_ctx(const crpc_server_call *call);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_SERVER_ASYNC_H */
