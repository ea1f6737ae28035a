/*
 * rpc/server/server_internal.h - the server's objects and who may touch
 * what (internal).
 *
 * Threads:
 *   loop thread     every nghttp2 session, every sconn, the loop-only
 *                   fields of a call (marked L below)
 *   handler threads run handlers from a FIFO of dispatched calls; a pool
 *                   that grows on demand up to options.handler_threads
 *   any thread      the server mutex (pool queue, live-call count) and each
 *                   call's mutex (fields marked M)
 * Lock order: a call mutex is never held while taking the server mutex or
 * cancelling a ctx (crpc_ctx_wait_cond's waker takes the call mutex).
 *
 * Call lifetime: refcounted. References are held by the open stream
 * (dropped in on_stream_close or when the connection dies), by the handler
 * (dropped when it has returned), by the ctx on_cancel registration (handed
 * to the kick closure when it fires) and by each queued kick closure. The
 * call ctx is always cancelled when the handler finishes, so the
 * registration always fires and no reference is left behind.
 */
#ifndef CRPC_SERVER_SERVER_INTERNAL_H
#define CRPC_SERVER_SERVER_INTERNAL_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "crpc/calls.h"
#include "crpc/server.h"
#include "crpc/server_async.h"
#include "rpc/h2/addr.h"
#include "rpc/h2/conn.h"
#include "rpc/h2/stream.h"
#include "rpc/wire/metadata_internal.h"
#include "rpc/tls/tls.h"
#include "rpc/loop/loop.h"

/* Rapid-reset policy (CVE-2023-44487). nghttp2 counts RST_STREAMs a client
 * sends in a token bucket and sends GOAWAY when it runs dry. Debian's
 * default (burst 1000, 33/s) cuts off a client that legitimately cancels
 * more than ~33 calls a second for half a minute. crpc allows a burst of
 * 10,000 and a sustained 1,000 resets per second per connection: a client
 * cancelling every call of a busy workload keeps its connection, while a
 * flood (a reset costs the attacker a few bytes; hundreds of thousands a
 * second) is cut off within about ten thousand streams. */
#define CRPC_SERVER_RESET_BURST 10000
#define CRPC_SERVER_RESET_RATE 1000

/* Ping enforcement (crpc_server_options.min_ping_interval_ns): strikes
 * allowed before GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"), as gRPC's
 * GRPC_ARG_HTTP2_MAX_PING_STRIKES default. */
#define CRPC_SERVER_MAX_PING_STRIKES 2

/* Graceful GOAWAY: how long the server waits for the ACK of the PING sent
 * with the first GOAWAY(2^31-1) before it sends the final GOAWAY anyway. */
#define CRPC_SERVER_GOAWAY_PING_WAIT CRPC_SECOND

/* Where a connection is in its graceful GOAWAY (server_conn.c). */
typedef enum sconn_goaway {
  SCONN_OPEN,        /* no GOAWAY yet */
  SCONN_NOTICE_SENT, /* GOAWAY(2^31-1) + PING out; waiting for the ACK */
  SCONN_FINAL_SENT   /* GOAWAY(last processed stream) submitted */
} sconn_goaway;

typedef struct server_method {
  char *path;
  crpc_method_kind kind;
  crpc_handler_fn fn;            /* blocking handler; NULL for async */
  crpc_unary_async_fn unary_fn;  /* async inline unary */
  crpc_server_reactor reactor;   /* async reactor (on_start non-NULL) */
  void *user_data;
} server_method;

static inline bool server_method_is_async(const server_method *m) {
  return m->fn == NULL;
}

typedef struct server_listener {
  int fd;
  crpc_loop_io io;
  crpc_loop_timer backoff; /* re-arms accept after EMFILE and friends */
  char unix_path[108];     /* non-empty for a unix socket (unlinked at close) */
  bool rx_timestamps;      /* SO_TIMESTAMPNS set: TCP sockets it accepts
                            * inherit it, unix ones do not */
  const crpc_server_credentials *creds; /* TLS; NULL: plaintext (h2c) */
  struct crpc_cz_entity *cz;            /* channelz listen socket */
  struct crpc_server *server;
} server_listener;

typedef struct sconn sconn;

/* One loop thread and the connections it serves. A connection lives on
 * one loop for its whole life, and so do its calls. */
typedef struct server_loop {
  struct crpc_server *server;
  crpc_loop *loop;
  sconn *conns; /* L */
  /* L: grows the handler pool when queued calls see no progress. */
  crpc_loop_timer pool_timer;
  uint64_t pool_taken_seen; /* server mu */
  /* L: calls waiting for their one request message, in request_by
   * order (every call gets the same request_timeout, so arrival order
   * is deadline order: a FIFO and one timer, no per-call timer work);
   * linked through scall.wnext/wprev (server_limits.c). */
  struct crpc_server_call *req_head, *req_tail;
  crpc_loop_timer req_timer;
  /* L: the live-call registry (server_calls.c, crpc/calls.h): this
   * loop's dispatched calls whose stream is open. */
  struct crpc_server_call *live;
} server_loop;

struct crpc_server {
  crpc_server_options opts; /* defaults filled in */
  server_method *methods;
  size_t n_methods, cap_methods;
  server_listener *listeners;
  size_t n_listeners;
  /* Loop threads (options.loop_threads). Listeners live on loops[0],
   * which hands accepted connections out in turn. */
  server_loop *loops;
  int n_loops;
  unsigned next_loop; /* loops[0] thread: round-robin hand-off */
  crpc_ctx *root; /* parent of every call ctx; cancelled past the grace */
  bool started, shut_down;
  crpc_server_credentials **tls_creds; /* references held for listeners */
  size_t n_tls_creds;

  pthread_mutex_t mu; /* pool, idle_cond */
  pthread_cond_t work_cond, idle_cond;
  struct crpc_server_call *work_head, *work_tail;
  pthread_t *threads;
  int n_threads, n_idle, n_queued;
  int n_waking; /* signalled, not yet awake */
  uint64_t pool_taken; /* calls workers have taken, ever */
  bool pool_stop;
  /* Counted without the mutex (per call, from every loop) down to one;
   * the step to zero is made under mu, broadcasting idle_cond once
   * draining is set, and waiters (shutdown, after setting draining) test
   * them under mu: no wakeup is lost, and no thread still uses the server
   * when shutdown sees zero (server_count). */
  atomic_size_t live_calls;   /* dispatched calls not finished */
  atomic_size_t live_structs; /* scall structs not yet freed */
  size_t live_conns;   /* connections not yet closed (shutdown waits) */

  /* Set once shutdown begins: a connection accepted from then on (what
   * the listener still held) starts with the first GOAWAY already sent. */
  atomic_bool draining;
  /* Set before shutdown closes every connection: a hand-off arriving later
   * is closed instead of started (nothing would close it). */
  atomic_bool conns_closing;
  /* Accepted connections posted to another loop and not yet started there
   * (shutdown waits for them as for connections still owing their final
   * GOAWAY). */
  atomic_int handoffs;

  /* Interceptor chain (rpc/intercept); NULL: none. Built before start. */
  struct icpt_server_chain *icpt;

  /* crpc/server_info.h (server_info.c): descriptors and event hooks, set
   * before start and read-only after. */
  const struct crpc_file_descriptor **fds;
  size_t n_fds, cap_fds;
  struct server_hook *hooks;
  size_t n_hooks;

  /* Rapid-reset budgets by peer address, shared by every loop
   * (server_limits.c); NULL if it could not be allocated (connections
   * are then charged on their own). */
  struct server_peer_table *peer_resets;

  /* channelz (server_channelz.c): this server's entity; NULL if out of
   * memory (nothing is then counted). */
  struct crpc_cz_entity *cz;

  /* The live-call registry (server_calls.c): the last id given, and the
   * observer (set before start, read-only after). */
  atomic_uint_fast64_t last_call_id;
  crpc_call_observer_fn call_observer;
  void *call_observer_data;
};

/* server_info.c: runs every hook for `event` (crpc/server_info.h says in
 * which order); called by crpc_server_shutdown and crpc_server_free. */
void server_run_hooks(crpc_server *s, int event);
/* Frees the lists above (not the descriptors: they are the caller's). */
void server_info_free(crpc_server *s);

/* Who is on the other end of a connection, shared by the connection and
 * its calls (a call may outlive its connection): filled on the loop before
 * the first call takes a reference, read-only afterwards. */
typedef struct server_peer {
  atomic_int refs;
  char addr[CRPC_H2_PEER_MAX];
  char identity[CRPC_TLS_IDENTITY_MAX]; /* TLS client cert; "" none */
  /* L (the connection's loop): its blocking calls holding a handler
   * slot (max_handlers_per_connection). Here rather than in sconn: a
   * handler that outlives its stream or connection keeps its slot until
   * it returns, so resetting a stream cannot free a slot early. */
  int slots;
  /* L: the connection while it is open (NULL after on_conn_close): where
   * a slot given back by a call whose stream has closed goes. */
  struct sconn *conn;
} server_peer;

void server_peer_unref(server_peer *p);

struct sconn {
  crpc_h2_conn h2; /* L */
  crpc_server *server;
  server_loop *sl;
  sconn *next, *prev;
  struct crpc_server_call *calls; /* open streams */
  server_peer *peer;  /* one reference */
  bool identity_read; /* peer->identity filled (after the handshake) */
  /* Calls kicked by this connection's own input while it was being read:
   * their kicks run right after the read (h2.after_read), before the
   * flush, instead of as closures on the next iteration. Each holds a
   * reference. */
  struct crpc_server_call *local_kicks;
  /* Ping enforcement: when the last client PING came (0: none since the
   * server last sent HEADERS/DATA), strikes so far, GOAWAY queued. */
  int64_t last_ping_recv;
  int ping_strikes;
  bool calm_goaway;
  /* Lifecycle (max_connection_idle/age/grace, graceful GOAWAY): one loop
   * timer, armed for the earliest of the deadlines below that applies. */
  crpc_loop_timer life_timer;
  sconn_goaway goaway;
  int64_t idle_since;   /* when conn->calls last became empty (or accept) */
  int64_t age_at;       /* max_connection_age deadline; INT64_MAX: none */
  int64_t notice_at;    /* when the first GOAWAY + PING were submitted */
  int64_t grace_at;     /* close past this (age grace); INT64_MAX: none */
  /* The highest stream id a client HEADERS frame has carried: a HEADERS
   * opening a stream at or below it is a connection error
   * (server_conn.c: on_begin_frame). */
  int32_t max_client_stream;

  /* ---- hostile-peer limits (server_limits.c); all L ---- */
  /* handshake_timeout: close if no client SETTINGS by then (INT64_MAX:
   * it came, or no limit). */
  int64_t preface_at;
  /* Last HEADERS or DATA frame received or sent: max_connections closes
   * the connection with the oldest stamp. */
  int64_t last_active;
  /* Message bytes its calls hold (max_connection_queued_bytes). */
  size_t queued;
  /* Blocking calls waiting for a handler slot, FIFO (scall.wnext). */
  struct crpc_server_call *wait_head, *wait_tail;
  /* Rapid-reset budget of this connection (token bucket) and the key of
   * its address in the server's table (peer_keyed false: unix socket or
   * no table; charged to the connection only). */
  double reset_tokens;
  int64_t reset_stamp;
  uint64_t peer_key;
  bool peer_keyed;
  /* Why the ENHANCE_YOUR_CALM GOAWAY (calm_goaway) was sent: the close
   * reason once it is written. */
  const char *calm_why;
  /* L: channelz's socket (server_channelz.c); NULL: not counted. */
  struct crpc_cz_entity *cz;
};

struct crpc_server_call {
  atomic_int refs;
  crpc_server *server;
  server_loop *sl;        /* the loop of the call's connection */
  crpc_loop_closure kick; /* "look at this call" on the loop */
  struct crpc_server_call *local_next; /* L: in conn->local_kicks */
  bool kick_local;                     /* L: in conn->local_kicks */

  /* L: stream and request parsing */
  sconn *conn; /* NULL once the stream is closed or the connection died */
  int32_t stream_id;
  struct crpc_server_call *cnext, *cprev;
  bool dispatched, rejected;
  bool headers_submitted, end_stream_sent, deferred;
  char *path, *content_type, *http_method, *timeout, *encoding;
  char *accept_encoding; /* the client's grpc-accept-encoding */
  /* The header strings above live here when they fit (the usual case: no
   * allocation per header); longer ones are malloc'd (scall_hdr_*). */
  char hdr_store[160];
  size_t hdr_used;
  bool bad_header;
  size_t hdr_bytes; /* request header list size, as HTTP/2 counts it */

  /* M */
  pthread_mutex_t mu;
  pthread_cond_t cond; /* new message, room in the send queue, state */
  /* Handler threads waiting on cond for room to send / for a message.
   * The loop signals those two events only when someone waits: a futex
   * wake per message (and the waiter's spurious wake-up) is what made a
   * blocking call cost several context switches per message. */
  int send_waiters;
  int recv_waiters;
  /* The loop has woken the blocked senders since one last began to wait:
   * the frames still written before they run wake nobody again. */
  bool send_woken;
  /* Cancel-path accounting (crpc_server_call_cancel_stats), under mu. */
  int64_t cancel_event_ns;       /* RST_STREAM read, deadline due, conn lost */
  int64_t cancel_ctx_done_ns;    /* the ctx done after that event */
  int64_t cancel_send_failed_ns; /* the handler's first failed send */
  uint64_t dropped_messages, dropped_bytes; /* queued, never written */
  crpc_h2_inbound in;
  crpc_h2_outq out;
  size_t last_msg_bytes; /* the latest message queued (scall_send_limit) */
  /* A blocking handler's only response (unary-response methods) was
   * queued without a kick: the handler's return kicks, and writes message
   * and status in one go (scall_send_chunk). Handler thread. */
  bool kick_deferred;
  /* Other calls were queued for the pool when a handler thread took this
   * one: its status is left to the loop, which writes the statuses of a
   * burst together, instead of being written by borrowing the loop (a
   * sendmsg per call: perf had the kernel's TCP path as most of a blocking
   * server's CPU at 256 concurrent calls). Server mu, then handler thread. */
  bool pool_backlog;
  bool recv_end;
  crpc_code recv_err;
  bool
      reset; /* stream gone (peer reset, connection lost); ctx cancel follows */
  bool finished; /* final status decided; sends refused */
  crpc_code final_code;
  char *final_msg;
  bool final_user_trailers; /* include the handler's trailers */
  /* Written under mu, also read without it: a blocking handler's sends
   * check it on every kick (kick_by_borrowing), and mu is the loop's hot
   * lock. */
  atomic_bool handler_done;
  bool ctx_done_at_return;
  bool md_error; /* the handler put a reserved key in its metadata */
  crpc_code handler_code;
  char *handler_msg;

  /* Immutable once dispatched */
  const server_method *method;
  const crpc_ctx *hctx;  /* the ctx the handler got (interceptors) */
  unsigned icpt_send_flags; /* handler thread: flags of the send in flight */
  crpc_ctx *ctx;
  crpc_on_cancel on_cancel;
  crpc_metadata *req_md; /* these three point into md_storage */
  crpc_metadata *resp_md, *trailers_md; /* handler writes, loop reads after */
  crpc_metadata md_storage[3];          /* no allocation per call */
  server_peer *peer; /* one reference */

  /* Async calls (server_async.c). L: the reactor's state and which of
   * its once-only events have been delivered. M: finish called, and
   * on_send_ready owed (can_send said false). */
  void *rstate;
  bool cancel_told, done_told, unary_ran, end_told;
  /* L: a blocking call with one request message (unary, server
   * streaming) waits for it on the loop, costing no thread meanwhile. */
  bool awaiting_request;
  bool reactor_finished, want_ready;
  /* M: on_message held (crpc_server_call_pause_recv); A: a resume asks
   * the next kick to deliver what is queued. */
  bool recv_paused;
  atomic_bool resume_pending;
  /* L: the deadline from grpc-timeout fires on this loop timer (armed at
   * dispatch, stopped when the stream closes). */
  crpc_loop_timer deadline_timer;

  struct crpc_server_call *work_next; /* server mu */
  bool resp_checked; /* handler thread: response headers validated */
  /* Responses' grpc-encoding: set by the handler thread before its first
   * send, read by the loop when it submits the response headers. */
  crpc_wire_encoding send_encoding;

  /* ---- hostile-peer limits (server_limits.c); all L ---- */
  /* Bytes charged to conn->queued for this call; of them, the decoded
   * request messages queued since the queue was last seen empty (an upper
   * bound of what it holds: takes are not seen one by one). */
  size_t charged, in_queued;
  /* Holds a handler slot of its peer / waits for one in conn's list /
   * waits for its request in the loop's list. */
  bool slot_held, slot_waiting, request_waiting;
  /* Its request header list (or trailers) went over max_metadata_size
   * (server_conn.c: count_header). */
  bool hdr_over;
  /* Links of whichever list it waits in: the loop's request list or
   * its connection's slot list (never both: a call waits for its
   * request before it can wait for a slot). */
  struct crpc_server_call *wnext, *wprev;
  /* request_timeout: the request must be in by then (INT64_MAX: none
   * or in); shares deadline_timer with the grpc-timeout. */
  int64_t request_by;

  /* L: the live-call registry (server_calls.c): id, when registered and
   * when the loop first saw the ctx done (0: not yet), links in sl->live,
   * listed, CTX_DONE told. */
  uint64_t live_id;
  int64_t live_since, live_done_ns;
  struct crpc_server_call *live_next, *live_prev;
  bool live_linked, live_done_told;

  /* L: channelz (server_channelz.c): the trailers sent said grpc-status 0;
   * where the response's DATA is in its gRPC messages (copied DATA). */
  bool cz_ok;
  crpc_h2_msgscan cz_scan;
};

typedef struct crpc_server_call scall;

/* ---- server.c ---- */

/* Adds delta (+1 or -1) to *counter; the step to zero, under mu, wakes
 * the shutdown waiters, and the caller must not touch the server after
 * it. Any thread, not with mu held. */
void server_count(crpc_server *s, atomic_size_t *counter, int delta);

/* Queues a dispatched call for a handler thread; if none is idle, sl's
 * pool timer grows the pool once the queue has made no progress for a
 * while. sl's loop thread. */
void server_pool_submit(server_loop *sl, scall *call);

/* The pool timer's callback (server_loop.pool_timer). */
void server_pool_starve_check(crpc_loop *loop, crpc_loop_timer *timer,
                              void *arg);

/* Adds a method (m's path is ignored; a copy of path is made). Before
 * start. As crpc_server_add_method. */
crpc_code server_add_method_entry(crpc_server *s, const char *path,
                                  const server_method *m);

/* Looks up a registered method by path (len bytes); NULL if none. */
const server_method *server_find_method(const crpc_server *s, const char *path);

/* ---- server_conn.c ---- */

/* Starts serving an accepted connection (fd owned from here on: closed on
 * failure) on sl's loop. That loop's thread. */
void sconn_start(server_loop *sl, int fd, const struct sockaddr *sa,
                 socklen_t salen, const server_listener *l);

/* ---- server_accept.c ---- */

/* Accept handler for a listener's fd. Loop thread. */
void server_on_accept(crpc_loop *loop, int fd, unsigned events, void *arg);

/* Accepts every connection the kernel has queued for the listener, as the
 * handler would: shutdown calls it right before closing the listener,
 * since closing a listening socket resets the connections in its queue
 * (their requests may already be sent, and no proxy resends those).
 * loops[0]'s thread. */
void server_accept_queued(server_listener *l);

/* Timer callback: resumes accepting after a pause for EMFILE. */
void server_on_accept_backoff(crpc_loop *loop, crpc_loop_timer *timer,
                              void *arg);

/* Graceful two-phase GOAWAY to every connection of sl; each closes once
 * its streams are done. sl's loop thread. A connection started after this
 * (accepted from the listener's queue) begins its GOAWAY in sconn_start. */
void server_conns_drain(server_loop *sl);

/* Flushes and closes every connection of sl now. sl's loop thread. */
void server_conns_close_all(server_loop *sl);

/* ---- server_tls.c ---- */

/* Drops the references to the listeners' credentials. */
void server_tls_free(crpc_server *s);

/* ---- server_call.c ---- */

/* A new call for a stream of conn (refs = 1, the stream's). NULL if out of
 * memory. Loop thread. */
scall *scall_new(sconn *conn, int32_t stream_id);

/* A NUL-terminated copy of a request header value, kept until the call
 * is freed (NULL if out of memory); releasing one early is
 * scall_hdr_free. Loop thread. */
char *scall_hdr_dup(scall *call, const uint8_t *value, size_t len);
void scall_hdr_free(scall *call, char *copy);

void scall_ref(scall *call);
/* Drops a reference; the last frees the call (any thread). */
void scall_unref(scall *call);

/* Posts the call's kick closure holding a reference. Any thread. */
void scall_kick(scall *call);

/* Runs the kicks its connection's input queued (sconn.local_kicks), or,
 * with the connection gone, posts them as closures. Loop thread. */
void scall_run_local_kicks(sconn *conn, bool post);

/* Checks the request headers and either starts the call (ctx, handler) or
 * answers it with an error. Loop thread, inside an nghttp2 callback. */
void scall_dispatch(scall *call);

/* A DATA chunk for the call. Loop thread, inside nghttp2 callbacks. */
void scall_on_data(scall *call, const uint8_t *data, size_t len);

/* nghttp2's send_data_callback for the call's stream (zero-copy DATA):
 * queues the frame header and `length` queued bytes by reference on the
 * connection. Loop thread. */
int scall_send_data(scall *call, const uint8_t *framehd, size_t length);

/* The client half-closed. Loop thread. */
void scall_on_end_stream(scall *call);

/* The stream closed (error_code from RST_STREAM or NO_ERROR) or, with
 * conn_lost (non-NULL: why, e.g. "keepalive timed out ..."), the
 * connection died. Drops the stream's reference. Loop thread. */
void scall_on_close(scall *call, uint32_t error_code, const char *conn_lost);

/* True if md holds a key the transport owns (the call then fails
 * INTERNAL instead of sending it). */
bool scall_md_has_reserved(const crpc_metadata *md);

/* Runs the handler (on a handler thread) and ends the call. */
void scall_run_handler(scall *call);

/* Records the handler's result (code, message, metadata checks) and ends
 * the call ctx; the on_cancel kick then sends the status. Any thread. */
void scall_handler_returned(scall *call, crpc_code code);

/* Hands a call that waits for its request to the handler pool once the
 * request is there (or the stream ended, failed or was cancelled). Loop
 * thread. */
void scall_submit_when_ready(scall *call);

/* server_response.c (loop thread). The response HEADERS, the data then
 * coming from scall_read_data; trailers after the last DATA frame;
 * Trailers-Only for a call that ends without a message. */
static inline nghttp2_session *scall_session(scall *call) {
  return call->conn->h2.session;
}
void scall_submit_headers(scall *call);
void scall_submit_trailers(scall *call, crpc_code code, const char *msg,
                           bool user_trailers);
void scall_submit_trailers_only(scall *call, int http_status, crpc_code code,
                                const char *msg, const crpc_metadata *head,
                                const crpc_metadata *trailers);
ssize_t scall_read_data(nghttp2_session *session, int32_t stream_id,
                        uint8_t *buf, size_t length, uint32_t *data_flags,
                        nghttp2_data_source *source, void *user_data);

/* server_limits.c: the request trailers of a dispatched call went over
 * max_metadata_size: the call fails RESOURCE_EXHAUSTED. Loop thread,
 * inside nghttp2's header callbacks. */
void scall_headers_over(scall *call);

/* Fails the call from the loop (status now, ctx cancelled with origin
 * local, request bytes ignored from now on). Loop thread, not with mu. */
void scall_fail(scall *call, crpc_code code, const char *msg);

/* ---- server_limits.c: what one peer can cost (issue 17) ---- */

/* Replaces 0 (and out-of-range values) in o's hostile-peer options
 * (request and handshake timeouts, max_connections, handlers and queued
 * bytes per connection) and max_send_message_size by their defaults. */
void server_limits_defaults(crpc_server_options *o);

/* The server's table of rapid-reset budgets by peer address; NULL if
 * out of memory. Free with server_peer_table_free (NULL: no-op). */
struct server_peer_table *server_peer_table_new(void);
void server_peer_table_free(struct server_peer_table *t);

/* Sets up conn's limits at accept: handshake deadline, activity stamp,
 * reset budget, the key of the peer's address (sa; not for unix
 * sockets). Loop thread. */
void sconn_limits_init(sconn *conn, const struct sockaddr *sa, int64_t now);

/* The client sent a RST_STREAM: charges the connection's reset budget
 * and its address's. True if either has run dry: the caller ends the
 * connection with GOAWAY(ENHANCE_YOUR_CALM). Loop thread. */
bool sconn_charge_reset(sconn *conn, int64_t now);

/* max_connections: `live` connections are open counting `fresh`, just
 * accepted on sl; if that is over the limit, closes the idlest other
 * connection of sl. Loop thread, outside nghttp2 callbacks. */
void server_conns_reap(server_loop *sl, sconn *fresh, size_t live);

/* A dispatched blocking call is ready for its handler: it goes to the
 * handler pool if its connection holds fewer than
 * max_handlers_per_connection slots and is not being read, else it waits
 * in the connection's list; a call whose ctx is done never takes a thread
 * (it is finished here). Loop thread. */
void scall_pool_enter(scall *call);

/* After a batch of conn's input has been read: starts the calls that
 * came in it (scall_pool_enter holds them back while reading), as far as
 * conn has free slots. Loop thread, outside nghttp2 callbacks. */
void sconn_pump_waiting(sconn *conn);

/* From the call's kick: once its handler has returned, gives its slot
 * back and starts its connection's next waiting calls; a waiting call
 * whose ctx ended leaves the list and is finished without a thread.
 * Loop thread. */
void scall_slot_update(scall *call);

/* The call's stream closed (conn: its connection, still valid): it
 * leaves whichever list it waits in, and a call that waited for a slot
 * is finished without a thread. Loop thread, after the ctx is done. */
void scall_limits_on_close(scall *call, sconn *conn);

/* request_timeout: the call waits for its request message from now on
 * (request_waiting), or no longer (its request is in, failed, or the
 * stream closed). Loop thread. */
void scall_request_wait(scall *call, int64_t now);
void scall_request_done(scall *call);

/* The loop's request timer (server_loop.req_timer): fails every call
 * whose request is overdue. */
void server_request_timer_fn(crpc_loop *loop, crpc_loop_timer *timer,
                             void *arg);

/* Sets call's charge against its connection's max_connection_queued_bytes
 * to `bytes` (no-op once the stream is gone); true if the connection is
 * now over the limit (the caller fails this call). Loop thread. */
bool scall_charge(scall *call, size_t bytes);

/* The message bytes call holds, as charged (responses queued, the
 * partial request, decoded requests not yet taken). Caller holds mu. */
size_t scall_held_locked(scall *call);

/* How many bytes may be queued on the call before a send blocks (or
 * can_send says false): stream_send_buffer, or room for 4 messages of the
 * size last queued when they are larger than a quarter of it, up to 4 x
 * stream_send_buffer. With 64 KiB messages and the 64 KiB default, one
 * message per loop iteration (and per handler wake-up) cost ~10 us of
 * server CPU per message in fixed per-write costs; small messages keep
 * the byte limit, so a busy handler's burst after a cancel stays ~64 KiB.
 * Caller holds mu. */
size_t scall_send_limit_locked(const scall *call);
/* Whether the loop should wake the handler threads blocked in a send now
 * (and notes that it does); mu held. server_call.c */
bool scall_take_send_wake_locked(scall *call);

/* Charges what call holds now; true if that took its connection over
 * max_connection_queued_bytes and the call is still going: the caller
 * then calls scall_fail_over_budget. Loop thread, not with mu. */
bool scall_recharge(scall *call);

/* The call whose bytes took its connection over
 * max_connection_queued_bytes ends RESOURCE_EXHAUSTED and drops what it
 * holds (reset ENHANCE_YOUR_CALM if its response headers went out, as
 * its trailers may be stuck behind the peer's window); the connection's
 * other calls go on. Loop thread, not with mu. */
void scall_fail_over_budget(scall *call);

/* ---- server_calls.c: the live-call registry (crpc/calls.h) ---- */

/* Lists a call as it is dispatched (id, start time, STARTED). Loop
 * thread. */
void scall_live_link(scall *call);

/* From every kick: once the ctx is done, notes when and tells the
 * observer (CTX_DONE), once. Loop thread. */
void scall_live_kick(scall *call);

/* The call's stream closed: it leaves the list (ENDED). Loop thread. */
void scall_live_unlink(scall *call);

/* ---- server_channelz.c: channelz accounting (rpc/channelz) ---- */

/* The server's entity, at crpc_server_new; its listeners' once bound and
 * when closed; all that is left at crpc_server_free. */
void server_cz_new(crpc_server *s);
void server_cz_listener(crpc_server *s, server_listener *l);
void server_cz_listener_closed(server_listener *l);
void server_cz_free(crpc_server *s);

/* A connection started (registers its socket; after crpc_h2_conn_start,
 * only if it has not closed already) and closed. Loop thread. */
void sconn_cz_open(sconn *conn);
void sconn_cz_close(sconn *conn);

/* A request stream opened (a call started), on_begin_headers. */
void sconn_cz_stream_started(sconn *conn);

/* A HEADERS or DATA frame with END_STREAM went out for call (the
 * trailers: was the status OK?), on_frame_send. */
void sconn_cz_end_sent(scall *call, const nghttp2_frame *f);

/* Call's stream closed or its connection died: the stream and the call
 * end, OK or not. */
void sconn_cz_stream_ended(sconn *conn, scall *call);

/* call's DATA was fed: counts the messages decoded since it had `seen`. */
void sconn_cz_received(sconn *conn, scall *call, size_t seen);

/* ---- server_async.c ---- */

/* Frames one response message as the call sends it (size limit, reserved
 * response headers checked with the first message, compression). CRPC_OK
 * with *out (owned by the caller), or the error. The sending thread. */
crpc_code scall_frame_response(scall *call, const void *data, size_t len,
                               unsigned flags, crpc_h2_chunk **out);

/* The same for a caller's crpc_buf, whose reference it takes (passed on to
 * *out, or dropped on error): no copy unless the call compresses. */
crpc_code scall_frame_buf(scall *call, crpc_buf *buf, unsigned flags,
                          crpc_h2_chunk **out);

/* Starts an async call (on_start) on the loop thread at dispatch; takes
 * the reactor's reference and counts the call live. */
void scall_async_start(scall *call);

/* Hands queued request messages (and the end) to the reactor. Loop
 * thread, after new DATA or END_STREAM. */
void scall_async_deliver(scall *call);

/* Delivers on_cancel / on_send_ready / on_done as due. Loop thread, from
 * the kick, also after the stream has closed. */
void scall_async_events(scall *call);

/* ---- server_icpt.c (interceptor hooks) ---- */

/* The handler-facing recv/send without interceptors (server_api.c). */
crpc_code scall_recv_core(scall *call, crpc_message *msg);
crpc_code scall_send_core(scall *call, const void *data, size_t len,
                          unsigned flags);

/* Empties the send queue (all of it, or all but a message partly written
 * if keep_started) and counts what it drops. Caller holds mu. */
void scall_drop_queue_locked(scall *call, bool keep_started);

/* Records a cancel event (when it reached the server) just before the
 * loop cancels the call ctx, which is done from the cancel's first step:
 * so the handler, woken by it, always finds both. Caller holds mu. The
 * first event wins. */
void scall_note_cancel_locked(scall *call, int64_t event_ns);

/* Records a send that failed because the call is over (sending thread). */
void scall_note_send(scall *call, crpc_code code);

/* The blocking send of a framed message (server_api.c): queues chunk,
 * whose ownership it takes, waiting for room as the send contract says. */
crpc_code scall_send_chunk(scall *call, crpc_h2_chunk *chunk);

/* Runs the server's interceptor chain around the handler. */
crpc_code scall_run_chain(scall *call);

#endif /* CRPC_SERVER_SERVER_INTERNAL_H */
