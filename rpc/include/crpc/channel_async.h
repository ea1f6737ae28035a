/*
 * crpc/channel_async.h - client calls that never block: completion
 * callbacks on the channel's loop threads, so one thread can drive
 * thousands of calls (gRPC C++'s callback API, client side).
 *
 * A blocking call (crpc/channel.h) parks the calling thread in every
 * send, recv and finish. An async call instead reports its events on the
 * loop thread that owns its connection:
 *
 *   on_message     one response message (a view, valid during the call).
 *   on_send_ready  the send buffer, full when crpc_call_can_send last said
 *                  false, has drained: send more.
 *   on_done        the call has ended (server status, the ctx's cause, a
 *                  lost connection): the status, after every message that
 *                  arrived before it. The last callback.
 *
 * Both kinds share one call engine, one connection and the same ctx rules
 * (crpc/channel.h): a cancel or deadline puts RST_STREAM on the wire at
 * once, drops what was queued and ends the call with the cause's code;
 * messages still buffered when the ctx ends are not delivered. Connecting,
 * when no connection is up yet, happens on a helper thread of the channel
 * (bounded by the call's ctx), never on the loop or the caller.
 *
 * Callbacks never block and never wait: a loop thread serves every call
 * on its connections. They may start calls, send, half-close and free
 * calls. Hand long work to a thread of your own.
 *
 * Threads: one call's callbacks run one at a time, in order. Calls on
 * connections of different loops (round robin with options.loop_threads
 * above 1) run their callbacks concurrently: state several calls share
 * needs a lock or an atomic, or loop_threads 1.
 *
 * Lifetime (one rule): on_done comes exactly once for every call that
 * crpc_call_start_async started, and no callback comes after it. The call
 * handle stays owned by the caller until crpc_call_free, which may be
 * called at any time, on any thread, including inside on_done; freeing
 * before on_done cancels the call (on_done still comes, with CANCELLED
 * "call freed", but the handle must not be used again). The reactor and
 * user_data must stay valid until on_done has returned.
 *
 * Interceptors (crpc/interceptor.h) wrap blocking calls; a channel that
 * has any refuses async calls (FAILED_PRECONDITION) rather than skip them
 * silently.
 */
#ifndef CRPC_CHANNEL_ASYNC_H
#define CRPC_CHANNEL_ASYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "crpc/call.h"
#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/metadata.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The events of one async call; on_done is required, the others may be
 * NULL (a NULL on_message drops responses). All run on the loop thread of
 * the call's connection, one at a time per call. */
typedef struct crpc_call_reactor {
  /* msg->data is crpc's, valid only during the callback (copy what you
   * keep); msg->end is never set here (the end is on_done). The stream's
   * flow-control window is given back when this returns. */
  void (*on_message)(crpc_call *call, const crpc_message *msg,
                     void *user_data);
  void (*on_send_ready)(crpc_call *call, void *user_data);
  /* status: code, message and trailers, valid during the callback. For a
   * call the server finished normally every response message came first.
   * crpc_call_response_headers does not block here. */
  void (*on_done)(crpc_call *call, const crpc_status *status,
                  void *user_data);
} crpc_call_reactor;

/* Starts an async call to method ("/package.Service/Method"): the request
 * headers go out as soon as a connection is up (a new one is made on the
 * channel's helper thread if needed). Never blocks. On CRPC_OK *call is the
 * call, owned by the caller (free it with crpc_call_free), and on_done will
 * come. Otherwise *call is NULL, no callback comes, and the code says why:
 * the ctx's code if it is already done, INVALID_ARGUMENT (method not
 * starting with '/', reserved metadata key, unknown encoding),
 * FAILED_PRECONDITION if the channel has interceptors,
 * RESOURCE_EXHAUSTED if out of memory. A connection that cannot be made
 * ends the call through on_done (UNAVAILABLE with the reason). `encoding`
 * as crpc_call_start_compressed (NULL: the channel's default). The reactor
 * struct is copied. Any thread, including inside a callback. Callbacks
 * may run (on the loop) before this returns; *call is set before any. A
 * handle freed in on_done must not be used after by another thread: send
 * from callbacks, or order your sends before the free yourself. */
crpc_code crpc_call_start_async(crpc_channel *channel, const crpc_ctx *ctx,
                                const char *method,
                                const crpc_metadata *metadata,
                                const char *encoding,
                                const crpc_call_reactor *reactor,
                                void *user_data, crpc_call **call);

/* Queues one request message (copied). Never blocks. Any thread.
 * CRPC_OK when queued; the call's final code if it has ended, or the ctx's
 * cause code once the ctx is done (nothing queued, at once);
 * FAILED_PRECONDITION after crpc_call_close_send; RESOURCE_EXHAUSTED over
 * max_send_message_size; INTERNAL if compressing fails. Memory is bounded
 * by the caller: send while crpc_call_can_send says true.
 * crpc_call_close_send (crpc/channel.h) half-closes an async call too; it
 * never blocks. */
crpc_code crpc_call_send_async(crpc_call *call, const void *data, size_t len,
                               unsigned flags);

/* crpc_call_send_async for a message in a crpc_buf (crpc/call.h), queued
 * without a copy unless the call compresses. Consumes one reference to buf
 * whatever it returns. Same returns and threads as crpc_call_send_async. */
crpc_code crpc_call_send_async_buf(crpc_call *call, crpc_buf *buf,
                                   unsigned flags);

/* True while the call's send buffer holds less than the channel's
 * 64 KiB. When it returns false, on_send_ready runs once the buffer has
 * drained (or on_done, if the call ends first). Any thread. */
bool crpc_call_can_send(crpc_call *call);

/* Holds (pause) and restarts (resume) on_message for an async call: the
 * reactor's backpressure on what the server sends. While paused, response
 * messages stay queued and their flow-control window is not given back,
 * so a server that keeps sending is held by HTTP/2 flow control (at most
 * the stream's window is buffered); on_done waits behind the messages
 * held (none is lost), unless the ctx ends the call, which drops them as
 * it always does. on_send_ready still comes. Any thread, any number of
 * times; resume delivers on the loop thread, after the callback that
 * called it returns. No effect on a blocking call (its reader sets the
 * pace) or once on_done has run. */
void crpc_call_pause_recv(crpc_call *call);
void crpc_call_resume_recv(crpc_call *call);

/* Completion of crpc_unary_call_async, on the loop thread. On CRPC_OK
 * `response` holds the reply, owned by the callee (free response->data);
 * otherwise response->data is NULL. `status` (code, message, trailers) is
 * valid during the callback. */
typedef void (*crpc_unary_done_fn)(crpc_code code, crpc_message *response,
                                   const crpc_status *status,
                                   void *user_data);

/* One request, one response, without blocking: sends the request (copied)
 * and calls `done` exactly once on the loop thread when the call ends,
 * with the same codes as crpc_unary_call (including INTERNAL when the
 * server sends no or several response messages). Returns CRPC_OK when the
 * call started (done will come), else the code as crpc_call_start_async,
 * or RESOURCE_EXHAUSTED for a request over max_send_message_size or
 * INTERNAL if compressing it failed (done will not come). The call is freed by crpc after done; cancel it
 * through ctx. Any thread. */
crpc_code crpc_unary_call_async(crpc_channel *channel, const crpc_ctx *ctx,
                                const char *method,
                                const crpc_metadata *metadata,
                                const void *request, size_t request_len,
                                crpc_unary_done_fn done, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CHANNEL_ASYNC_H */
