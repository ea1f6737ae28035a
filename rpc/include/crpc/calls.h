/*
 * crpc/calls.h - the live-call registry: every call a server or a channel
 * is running right now, what each is doing, and a way for an operator to
 * end one (failure catalog line 14, DESIGN.md). In every build, not only
 * debug ones; the admin service crpc.admin.v1.Admin (crpc/admin.h) serves
 * it over gRPC.
 *
 *   crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CRPC_SECOND);
 *   crpc_server_calls_dump(server, ctx, stderr);          a table
 *   crpc_server_cancel_call(server, ctx, 42, "stuck");    ends call 42
 *   crpc_ctx_release(ctx);
 *
 * What is listed. A server call from its dispatch (its request headers
 * passed the checks and its ctx exists: the handler or reactor is about to
 * start) until its stream closes (status written, stream reset, connection
 * gone). A handler that runs on after its stream closed is no longer
 * listed (crpc_ctx_dump still shows its ctx). A channel call from when the
 * channel's loop first takes it up, right after crpc_call_start returned
 * (a blocking start still connecting is not listed yet), until it has
 * ended (its status is known or its ctx is done) and no stream of it is
 * open. Requests refused before dispatch (unknown method, bad headers)
 * never appear.
 *
 * Cost. Each loop thread keeps a list of its own calls that only it
 * touches, so registering a call takes no lock: an id (one atomic add on a
 * server, one on a channel), a clock read, two links. The counters are
 * fields the call updates anyway under its own mutex. Reading the registry
 * posts a closure to each of the server's or channel's loops, which
 * copies its calls out; the reader waits for every loop, bounded by its
 * ctx, or gets a callback. Each loop's part is taken at a slightly
 * different instant.
 *
 * Threads. Everything here may be called from any thread, with one
 * exception: the blocking functions (those taking a ctx) would wait for
 * the very loop they run on when called from one of that server's or
 * channel's loop threads (async handlers and reactors, async client
 * callbacks, call observers), so there they return FAILED_PRECONDITION at
 * once; use the _async forms there. A server or channel must not be freed
 * while one of these functions runs on it; an _async callback still to
 * come when it is freed runs during the free.
 *
 * Blocking functions take a ctx that bounds the wait (a wedged loop cannot
 * hang the caller); NULL is a bug and aborts with a message, as it does for
 * crpc_call_start. When the ctx ends first they return its code, and what
 * was asked may still happen once the loops get to it (a cancel then still
 * takes effect).
 */
#ifndef CRPC_CALLS_H
#define CRPC_CALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- what a call is doing ------------------------------------------------ */

/* Checked in this order; the first that holds is the state. */
typedef enum crpc_call_state {
  /* No message has moved either way yet (a server call whose request has
   * not arrived; a client call waiting for its first response). */
  CRPC_CALL_HEADERS = 0,
  /* Messages are moving and the client has not half-closed. */
  CRPC_CALL_STREAMING = 1,
  /* The client half-closed (sent END_STREAM): it sends no more, the
   * server's side is still at work. */
  CRPC_CALL_HALF_CLOSED = 2,
  /* The ctx is done (cause says why) and the status is not decided yet:
   * the handler or reactor is winding down. A call that stays here is a
   * handler ignoring its ctx. */
  CRPC_CALL_CANCELLING = 3,
  /* The status is decided (server: the handler returned or the call
   * failed; channel: the status arrived) and the stream has not closed yet
   * (trailers or a reset still on their way). */
  CRPC_CALL_FINISHING = 4
} crpc_call_state;

/* "headers", "streaming", "half-closed", "cancelling", "finishing";
 * "invalid" for anything else. Static storage; any thread. */
const char *crpc_call_state_name(crpc_call_state state);

/* One call, as a snapshot or an observer saw it. */
typedef struct crpc_call_info {
  /* Per server (or per channel), from 1 in registration order, never
   * reused; what crpc_server_cancel_call takes. */
  uint64_t id;
  bool client; /* a channel's call; false: a server's */
  crpc_call_state state;
  const char *method; /* "/package.Service/Method" */
  /* Server: the client's address ("ipv4:127.0.0.1:41234", as
   * crpc_server_call_peer); channel: the target's authority
   * ("localhost:50051"). */
  const char *peer;
  int64_t started_ns; /* when it was registered (crpc_now_ns clock) */
  int64_t age_ns;     /* how long it had been registered, at this view */
  /* crpc_ctx_remaining of the call's ctx: CRPC_NO_DEADLINE if it has
   * none, 0 once passed. */
  int64_t deadline_left_ns;
  /* Received: messages decoded, and DATA bytes as they came (gRPC's 5-byte
   * prefixes included, compressed if they were). */
  uint64_t messages_in, bytes_in;
  /* Sent: messages queued to go out, and DATA bytes handed to HTTP/2. */
  uint64_t messages_out, bytes_out;
  bool done;        /* its ctx is done, and cause says why */
  crpc_cause cause; /* all zero (OK, origin none, "") until done */
  /* When the cancel reached crpc: server calls, the RST_STREAM read, the
   * deadline due, the connection lost (crpc_server_call_cancel_stats) or
   * an admin cancel; channel calls, an admin cancel. 0: no such event (the
   * ctx ended in the program: a handler returned, the user cancelled). */
  int64_t cancel_event_ns;
  /* When the ctx was done: recorded with the event above if there was
   * one, else when the call's loop first saw it done. 0 while not done.
   * ctx_done_ns - cancel_event_ns (when the event is not 0) is how long
   * the cancel took to reach the ctx. */
  int64_t ctx_done_ns;
  /* The call's final status once decided (FINISHING, and the ENDED event):
   * server, the status written (the cause's code if the stream was reset
   * first); channel, the status the call ended with. CRPC_OK before. */
  crpc_code status;
} crpc_call_info;

/* ---- snapshots ------------------------------------------------------------ */

/* Every call the server is running (as above), sorted by id, into a new
 * array: *calls (NULL when *count is 0) belongs to the caller, who frees
 * it with crpc_calls_free; the strings live inside it. CRPC_OK; an empty
 * list before crpc_server_start and once shutdown has ended every call;
 * RESOURCE_EXHAUSTED (out of memory: *calls NULL, *count 0);
 * FAILED_PRECONDITION from one of the server's loop threads; the ctx's
 * code if it ends before every loop has answered (nothing returned). */
crpc_code crpc_server_calls(crpc_server *server, const crpc_ctx *ctx,
                            crpc_call_info **calls, size_t *count);

/* The same for a channel's calls (an empty list before its first call). */
crpc_code crpc_channel_calls(crpc_channel *channel, const crpc_ctx *ctx,
                             crpc_call_info **calls, size_t *count);

/* Frees a snapshot. NULL is a no-op. Any thread. */
void crpc_calls_free(crpc_call_info *calls);

/* Receives an asynchronous snapshot: code and calls as crpc_server_calls
 * returns them (never a ctx's code: there is none). `calls` belongs to the
 * callee (crpc_calls_free it). */
typedef void (*crpc_calls_fn)(crpc_code code, crpc_call_info *calls,
                              size_t count, void *user_data);

/* crpc_server_calls without waiting: done(...) runs exactly once, on the
 * thread of the last loop to answer, or on the calling thread before this
 * returns when there is nothing to wait for (not started, shut down, out
 * of memory). It must not block: other calls' events wait meanwhile.
 * Returns CRPC_OK (done will run, or has run). For loop threads: an async
 * handler asks here and finishes its call from done. */
crpc_code crpc_server_calls_async(crpc_server *server, crpc_calls_fn done,
                                  void *user_data);

/* The same for a channel (done on its loop thread, or the caller's). */
crpc_code crpc_channel_calls_async(crpc_channel *channel, crpc_calls_fn done,
                                   void *user_data);

/* ---- the table ------------------------------------------------------------ */

/* Writes calls as a table, a header line and one line per call: id, side,
 * state, age, deadline left, messages and bytes in/out, method, peer and,
 * once done, the cause ("(no calls)" for none). Any thread. */
void crpc_calls_write(FILE *out, const crpc_call_info *calls, size_t count);

/* crpc_server_calls + crpc_calls_write. Returns as crpc_server_calls;
 * nothing is written unless CRPC_OK. */
crpc_code crpc_server_calls_dump(crpc_server *server, const crpc_ctx *ctx,
                                 FILE *out);

/* The same for a channel. */
crpc_code crpc_channel_calls_dump(crpc_channel *channel, const crpc_ctx *ctx,
                                  FILE *out);

/* ---- ending one call ------------------------------------------------------ */

/* The cause's message of an admin cancel starts with this, then the
 * reason (the whole message is cut at CRPC_CAUSE_MESSAGE_MAX). */
#define CRPC_CALL_CANCEL_PREFIX "cancelled by admin: "

/* Cancels call `id` of the server: its ctx ends with code CANCELLED,
 * origin CRPC_ORIGIN_ADMIN, message CRPC_CALL_CANCEL_PREFIX + reason
 * (NULL: ""), exactly as a client's RST_STREAM would end it (the handler's
 * waits and sends return CANCELLED, a reactor gets on_cancel, the client
 * gets CANCELLED with that message, and crpc_server_call_cancel_stats
 * records the cancel as the event). Returns CRPC_OK if this ended the
 * ctx; NOT_FOUND if no listed call has that id; FAILED_PRECONDITION if
 * the call's ctx was already done (it is finishing; its cause stands) or
 * from one of the server's loop threads; the ctx's code if it ends first
 * (the cancel may still happen). */
crpc_code crpc_server_cancel_call(crpc_server *server, const crpc_ctx *ctx,
                                  uint64_t id, const char *reason);

/* The same for a channel's call: its ctx (the call's own, a child of the
 * one it was started with) ends as above, the stream is reset, and the
 * caller's recv / finish / on_done see CANCELLED with that message. */
crpc_code crpc_channel_cancel_call(crpc_channel *channel, const crpc_ctx *ctx,
                                   uint64_t id, const char *reason);

/* Receives the outcome of an asynchronous cancel: a code as
 * crpc_server_cancel_call returns (never a ctx's). */
typedef void (*crpc_call_cancel_fn)(crpc_code code, void *user_data);

/* crpc_server_cancel_call without waiting; done (may be NULL) runs exactly
 * once, where crpc_server_calls_async's does. The reason is copied.
 * Returns CRPC_OK. */
crpc_code crpc_server_cancel_call_async(crpc_server *server, uint64_t id,
                                        const char *reason,
                                        crpc_call_cancel_fn done,
                                        void *user_data);

/* The same for a channel. */
crpc_code crpc_channel_cancel_call_async(crpc_channel *channel, uint64_t id,
                                         const char *reason,
                                         crpc_call_cancel_fn done,
                                         void *user_data);

/* ---- a call's own id ------------------------------------------------------ */

/* The registry id of a server call (for the handler's logs, or to tell an
 * operator which call to end). Valid from when the handler or on_start
 * gets the call; any thread while the call handle is. */
uint64_t crpc_server_call_id(const crpc_server_call *call);

/* The registry id of a channel's call, set by crpc_call_start (async:
 * crpc_call_start_async). Any thread until crpc_call_free. */
uint64_t crpc_call_id(const crpc_call *call);

/* ---- watching calls start and end ---------------------------------------- */

typedef enum crpc_call_event {
  /* Registered (as above); state HEADERS as a rule. */
  CRPC_CALL_STARTED = 1,
  /* Its loop saw the ctx done: cause, cancel_event_ns and ctx_done_ns are
   * set. Comes for every server call (a server call's ctx ends when its
   * handler returns, if not before); for a channel call only if its ctx
   * ends while it is listed. */
  CRPC_CALL_CTX_DONE = 2,
  /* Left the registry: final counters and status. */
  CRPC_CALL_ENDED = 3
} crpc_call_event;

/* An observer gets each of a call's events once, in the order above, on
 * the call's loop (a server call's: its connection's loop): on the loop
 * thread, or on a crpc thread doing that loop's work while the loop
 * thread waits (a blocking handler's thread writing its status, a thread
 * cancelling a blocking client call); never two at once for one call,
 * calls on different loops concurrently.
 * `call` and its strings are valid only during the callback. It runs
 * inside the transport: it must be quick, must not block, and must not
 * call the blocking functions above (they return FAILED_PRECONDITION
 * there; the _async ones are fine). */
typedef void (*crpc_call_observer_fn)(crpc_call_event event,
                                      const crpc_call_info *call,
                                      void *user_data);

/* Sets the server's observer (fn NULL: none; a second set replaces the
 * first). Before crpc_server_start, from the thread setting the server up:
 * FAILED_PRECONDITION after. user_data must outlive the server. */
crpc_code crpc_server_set_call_observer(crpc_server *server,
                                        crpc_call_observer_fn fn,
                                        void *user_data);

/* The same for a channel, before its first call (FAILED_PRECONDITION
 * after); any thread. user_data must outlive the channel. */
crpc_code crpc_channel_set_call_observer(crpc_channel *channel,
                                         crpc_call_observer_fn fn,
                                         void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CALLS_H */
