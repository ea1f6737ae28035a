/*
 * rpc/channel/channel_internal.h - the client channel's objects (internal).
 *
 * Threads: user threads make calls; the channel's loops (homes, one per
 * loop thread, options.loop_threads) share its connections out: each
 * connection lives on one home for good and its loop thread owns its
 * nghttp2 session (fields marked L: the home's loop thread). A call
 * belongs to the home of the connection it is on (call->home); its L
 * fields are that loop's. Only transparent retry moves a call, and only
 * its old home's loop moves it (adopt_next_conn, call_wire.c): it finishes
 * with the call there, then publishes the new home and forwards the kick;
 * a kick that reaches a loop the call has left is forwarded likewise.
 * Each call's mutex guards what both sides see (M). A user thread never
 * holds a call mutex while cancelling a ctx (crpc_ctx_wait_cond's waker
 * takes it) nor while taking the channel mutex.
 *
 * Lifetimes (all refcounted, last unref frees on whichever thread):
 *   cconn  refs: the channel while it is current, each call on it, the loop
 *          while its socket is attached (dropped by a closure after close,
 *          so queued flushes still find it). The session is deleted on the
 *          loop when the connection closes.
 *   ccall  refs: the user (until crpc_call_free), the open stream, the ctx
 *          on_cancel registration (handed to the kick when it fires), each
 *          queued kick. crpc_call_free cancels the call's own ctx, so the
 *          registration always fires.
 */
#ifndef CRPC_CHANNEL_CHANNEL_INTERNAL_H
#define CRPC_CHANNEL_CHANNEL_INTERNAL_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "crpc/calls.h"
#include "crpc/channel.h"
#include "crpc/channel_async.h"
#include "rpc/channel/backoff.h"
#include "rpc/h2/addr.h"
#include "rpc/h2/conn.h"
#include "rpc/h2/stream.h"
#include "rpc/tls/tls.h"
#include "rpc/loop/loop.h"
#include "rpc/resolve/resolve.h"

#include "crpc/version.h" /* user-agent "crpc/MAJOR.MINOR" */
#define CRPC_VERSION_STRING                          \
  "crpc/" CRPC_VERSION_XSTR_(CRPC_VERSION_MAJOR) "." \
      CRPC_VERSION_XSTR_(CRPC_VERSION_MINOR)
/* Bytes a call may queue for sending before crpc_call_send blocks. */
#define CHANNEL_SEND_BUFFER (64 * 1024)

typedef struct cconn cconn;
typedef struct crpc_call ccall;

/* One of the channel's loops. A new connection goes to the home with the
 * fewest connections (the first among equals), so a channel with one
 * connection runs one loop thread however many it may have, and a round
 * robin over N addresses spreads over min(N, loop_threads) of them. */
typedef struct chome {
  crpc_loop *loop;    /* made on first use; homes[0] with the channel */
  bool started;       /* its thread runs (channel mutex) */
  atomic_int n_conns; /* connections assigned to it and not yet freed */
  cconn *attached;    /* L: attached and not yet closed (channel free
                         closes them) */
  ccall *live;        /* L: the live-call registry's calls on this home */
} chome;

struct cconn {
  crpc_h2_conn h2; /* L once attached */
  crpc_channel *ch;
  chome *home; /* for good (channel_pick_home) */
  atomic_int refs;
  atomic_bool dead;         /* closed or GOAWAY: no new calls */
  bool attached;            /* L: socket handed to the loop */
  int fd;                   /* until attached */
  crpc_tls *tls;            /* until attached; NULL: plaintext */
  nghttp2_session *session; /* created by the connecting thread */
  ccall *calls;             /* L: calls with an open stream */
  /* L: a GOAWAY with an error ("ENHANCE_YOUR_CALM (too_many_pings)"),
   * reported to the calls when the connection then closes; "" none. */
  char goaway_why[80];
  /* Calls holding this connection (from channel_get_conn to their free);
   * changed from 0 only under the channel mutex, so the idle check (which
   * holds it) cannot race a call being handed the connection. */
  atomic_int in_use;
  _Atomic int64_t last_used_ns; /* when in_use last dropped to 0 */
  crpc_loop_timer idle_timer;   /* L */
  cconn *lnext, *lprev;         /* L: the channel's attached list */
  /* channelz (channel_channelz.c): its subchannel until attached (a
   * reference), then its socket (L). */
  struct crpc_cz_entity *cz_sub, *cz;
};

/* Where calls may go: one per address with round robin, one for all
 * addresses (tried in order) with pick first. Channel mutex. */
typedef struct cslot {
  crpc_resolved_addr *addrs; /* owned; NULL (pick first): resolve per try */
  size_t n_addrs;
  cconn *conn;               /* the channel's reference; maybe dead */
  bool connecting;           /* a thread is connecting it */
  bool failed;               /* the last attempt failed (TRANSIENT_FAILURE) */
  crpc_backoff backoff;
  int64_t next_attempt_ns;   /* not tried again before */
  struct crpc_cz_entity *cz; /* channelz subchannel (moves with the slot) */
} cslot;

struct crpc_channel {
  crpc_target target;
  size_t max_recv, max_send;
  /* Limits (options, defaults filled in): the response header list size we
   * accept and advertise (SETTINGS_MAX_HEADER_LIST_SIZE); the receive
   * windows, 0: nghttp2's 65535 for streams. */
  size_t max_metadata;
  uint32_t stream_window, conn_window;
  char *user_agent, *authority;
  crpc_channel_credentials *tls; /* NULL: plaintext */
  /* The loops (options.loop_threads of them; fixed at creation). Every
   * connection attached to one and not yet closed is on its attached
   * list, whether a slot still holds it or not (replaced after a GOAWAY,
   * lingering), so freeing the channel can close them all before its
   * loops go. homes[0] also runs the kicks of async calls still waiting
   * for a connection, and is the first started (channel_get_conn). */
  chome *homes;
  int n_homes;
  int64_t poll_ns; /* options.poll_ns, for each loop made */

  pthread_mutex_t mu;
  pthread_cond_t cond; /* connecting done; live_calls changed */
  crpc_lb_policy lb;
  cslot *slots;  /* pick first: 1; round robin: one per address, or NULL */
  size_t n_slots, rr_next;
  bool resolving; /* round robin: a thread is building the slots */
  int64_t resolved_at; /* round robin: when the slots were last built */
  int64_t backoff_initial, backoff_max, connect_timeout, idle_timeout;
  bool wait_for_ready;
  crpc_wire_encoding default_encoding; /* for calls started without one */
  uint64_t rng;                     /* backoff jitter */
  size_t live_calls;                /* ccall structs not yet freed */
  char last_error[CRPC_H2_ERR_MAX]; /* why the last connect failed */
  /* Interceptor chain (rpc/intercept); NULL: none. Built before use. */
  struct icpt_client_chain *icpt;
  /* Encodings the server's last grpc-accept-encoding left out (none
   * until it has sent one): calls asking for them send uncompressed. */
  atomic_uint refused_encodings;
  /* Keepalive (options); ka_time doubles on GOAWAY too_many_pings. */
  _Atomic int64_t ka_time;
  int64_t ka_timeout;
  bool ka_without_calls;
  /* Async calls waiting for a connection (call_async.c): a helper thread,
   * started with the first, connects for them so the loop never blocks.
   * Channel mutex. */
  ccall *aq_head, *aq_tail;
  pthread_cond_t aq_cond;
  pthread_t aq_thread;
  bool aq_started, aq_stop;
  /* The live-call registry (channel_calls.c, crpc/calls.h): the last id
   * given (any thread), the observer (set before the first loop starts,
   * read-only after); the listed calls are per home. */
  atomic_uint_fast64_t last_call_id;
  crpc_call_observer_fn call_observer;
  void *call_observer_data;
  /* channelz (channel_channelz.c): the channel's entity; NULL if out of
   * memory (nothing is then counted). */
  struct crpc_cz_entity *cz;
};

struct crpc_call {
  atomic_int refs;
  crpc_channel *ch;
  cconn *conn;
  /* Whose loop runs the call: its connection's home (homes[0] while an
   * async call waits for one). Written by ccall_new and the starting
   * thread before the first kick, then only by the home's own loop when
   * a resend moves the call (adopt_next_conn). */
  _Atomic(chome *) home;
  crpc_loop_closure kick;
  crpc_ctx *ctx; /* child of the user's ctx, owned by the call */
  crpc_on_cancel on_cancel;
  char *path;
  /* Built by start, submitted by the loop; kept until the call is freed
   * so a request that never left can be sent again elsewhere. */
  crpc_wire_headers req;
  crpc_wire_encoding send_encoding; /* requests' grpc-encoding; fixed */

  /* L */
  int32_t stream_id;
  bool submitted, stream_open, rst_sent, deferred;
  bool headers_sent; /* the request HEADERS went out on this stream */
  bool body_taken;   /* request bytes left the send queue for nghttp2 */
  ccall *cnext, *cprev;
  int http_status;
  char *grpc_status, *grpc_message; /* raw, until the status is settled */
  crpc_metadata *hdr_md;            /* being received */
  size_t hdr_bytes; /* the header block being received, as HTTP/2 counts */

  /* M */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  /* User threads waiting on cond for room to send / for anything else (a
   * message, headers, the end). The loop signals room and messages only
   * when someone waits for them: no futex wake, and no spurious wake-up of
   * the other waiter, per message. */
  int send_waiters;
  int recv_waiters;
  int hdr_waiters; /* in crpc_call_response_headers */
  crpc_h2_inbound in;
  crpc_h2_outq out;
  bool send_closed;
  bool got_headers;
  crpc_metadata *resp_md; /* published when got_headers */
  bool ended;             /* status settled */
  bool ended_by_ctx;      /* ...because the ctx ended: drop buffered input */
  crpc_code code;
  char *message;
  crpc_metadata *trailers;
  /* Transparent retry (gRPC's): the loop sets `unsent` when the request
   * never reached the server (its connection went away first); the user's
   * thread, next time it waits on the call, gets another connection and
   * leaves it in next_conn for the loop to resubmit on. */
  bool unsent;
  cconn *next_conn; /* a channel_get_conn reference */
  int resends;
  /* The request bytes handed to nghttp2 on this attempt, kept until the
   * server answers so a refused stream (REFUSED_STREAM, or above a
   * GOAWAY's last stream id: not processed) can be sent again whole;
   * given up past CCALL_REPLAY_MAX (replay_off). */
  crpc_h2_chunk *replay;
  size_t replay_cap;
  bool replay_off;

  /* Async calls (crpc/channel_async.h); a blocking call has async false.
   * Events reach the reactor from kick_fn on the loop (ccall_deliver). */
  bool async;
  crpc_call_reactor reactor;
  void *reactor_data;
  bool keeps_messages;  /* on_message takes msg->data (unary: no copy) */
  bool want_send_ready; /* M: can_send said false */
  bool recv_paused;     /* M: crpc_call_pause_recv */
  bool done_delivered;  /* L: on_done ran */
  ccall *aq_next;       /* channel mutex: waiting for a connection */

  /* The live-call registry (channel_calls.c): id and start time, set by
   * ccall_new; L: where it is in the list (CCALL_LIVE_*), its links, when
   * an admin cancel came and when the loop saw the ctx done (0: not yet),
   * CTX_DONE told. */
  uint64_t live_id;
  int64_t live_since;
  int live_state;
  ccall *live_next, *live_prev;
  int64_t live_event_ns, live_done_ns;
  bool live_done_told;

  /* L: channelz: where the request's DATA is in its messages (reset for
   * each stream). */
  crpc_h2_msgscan cz_scan;
};

/* ccall.live_state: not listed yet, listed, left for good; or listed,
 * but taken off its old home's list on the way to another home (listed
 * again there without telling the observer twice). */
enum {
  CCALL_LIVE_NEW = 0,
  CCALL_LIVE_LISTED,
  CCALL_LIVE_GONE,
  CCALL_LIVE_MOVING
};

/* Times one call may be sent again after never leaving the client. */
#define CCALL_MAX_RESENDS 3
/* Request bytes a call keeps for a resend (gRPC keeps a retry buffer too). */
#define CCALL_REPLAY_MAX (64 * 1024)

/* ---- channel_lb.c: picking, connecting, backoff, idle ---- */

/* A usable connection for a new call (resolving and connecting first if
 * needed, bounded by ctx), with a reference and an in_use count for the
 * caller (cconn_release drops both). NULL with *code set if none. User
 * thread. */
cconn *channel_get_conn(crpc_channel *ch, const crpc_ctx *ctx, crpc_code *code);

/* A connection that is up now, with what channel_get_conn gives, or NULL
 * when none is, or when channel_get_conn would connect an address first
 * (connecting is left to the caller: so calls that only ever try, the
 * async ones, still spread over every address). Never blocks on I/O. */
cconn *channel_try_conn(crpc_channel *ch);

/* Drops what channel_get_conn gave. Any thread. */
void cconn_release(cconn *conn);

/* The home for a new connection (the one with the fewest; its loop made
 * and started if it was not), counted in its n_conns until the connection
 * is freed; NULL if its loop cannot be made or started. Takes the channel
 * mutex: not with it held. */
chome *channel_pick_home(crpc_channel *ch);

/* The call's home now (see ccall.home). Any thread. */
static inline chome *ccall_home(const ccall *call) {
  return atomic_load(&((ccall *)call)->home);
}


/* Starts the connection's idle clock (after attach). Loop thread. */
void cconn_start_idle_timer(cconn *conn);

/* ---- channel.c ---- */

/* A session over a freshly connected socket (fd and tls handed over on
 * success); NULL if out of memory. Any thread. */
cconn *cconn_new(crpc_channel *ch, int fd);

/* Queues the attach of a new connection on the loop. Any thread. */
void cconn_post_attach(cconn *conn);

void cconn_unref(cconn *conn);

/* Hands the connection's socket to the loop (idempotent). Loop thread. */
void cconn_attach(cconn *conn);

/* ---- call.c ---- */

/* Settles the call's status unless it already is and wakes the user.
 * Any thread not holding the call's mutex (msg copied). */
void ccall_settle(ccall *call, crpc_code code, const char *msg);

/* The stream closed (nghttp2 or connection loss); drops the stream's
 * reference. A request that never reached the server is marked for a
 * resend instead of ending (if it may still be). Loop thread. */
void ccall_on_close(ccall *call, uint32_t error_code, const char *conn_lost);

/* nghttp2 client callbacks (call_recv.c). */
nghttp2_session_callbacks *ccall_callbacks(void);

void ccall_unref(ccall *call);
/* Posts the call's kick closure holding a reference (held instead inside
 * a ccall_hold_kicks scope, below). Any thread. */
void ccall_kick(ccall *call);
/* Posts the kick with the reference the caller holds (dropped if the kick
 * is queued already: it runs once, with its own). Any thread. */
void ccall_post_kick_ref(ccall *call);
/* Runs the kick (which takes over the caller's reference) now on the
 * calling thread if the call's home loop sleeps (crpc_loop_borrow); false,
 * nothing done, otherwise. Not from that loop's thread. A blocking call's
 * only: an async call's kick delivers its callbacks. */
bool ccall_kick_by_borrowing(ccall *call);
/* Binds the kick closure to the loop-side handler. Before any kick. */
void ccall_init_kick(ccall *call);

/* A scope in which this thread's kicks of one blocking call are held and
 * then run once, by borrowing the loop if it sleeps, else posted: a
 * request that several API calls build (start, send, close_send) leaves
 * in one write from the caller's thread instead of an eventfd write and
 * a wake-up of the loop thread. The first blocking call kicked in the
 * scope is held (with a reference); other calls' kicks post as usual.
 * Scopes nest; release them innermost first, on the thread that held. */
typedef struct ccall_kick_hold {
  ccall *call;
  struct ccall_kick_hold *outer;
} ccall_kick_hold;
void ccall_hold_kicks(ccall_kick_hold *h);
void ccall_release_kicks(ccall_kick_hold *h);

void cconn_link_call(cconn *conn, ccall *call);

/* ---- call_icpt.c: the public call functions run the interceptor chain
 * (if any) around these cores (call.c). ---- */
crpc_code ccall_start_core(crpc_channel *ch, const crpc_ctx *ctx,
                           const char *method, const crpc_metadata *metadata,
                           const char *encoding, int64_t deadline,
                           crpc_call **out);
crpc_code ccall_send_core(ccall *call, const void *data, size_t len,
                          unsigned flags);
/* Queues a request message; waits for buffer room if `wait` (blocking
 * send), else queues regardless (async: the caller bounds it). The caller
 * kicks the call. */
crpc_code ccall_send_queue(ccall *call, const void *data, size_t len,
                           unsigned flags, bool wait);
/* ccall_send_queue for a crpc_buf, whose reference it consumes. */
crpc_code ccall_send_buf_queue(ccall *call, crpc_buf *buf, unsigned flags,
                               bool wait);
crpc_code ccall_recv_core(ccall *call, crpc_message *msg);
crpc_code ccall_finish_core(ccall *call, crpc_status *status);
void cconn_unlink_call(cconn *conn, ccall *call);

/* Everything start does before a connection is picked: the call struct
 * (user's reference), its ctx, its headers. CRPC_OK or why not (nothing
 * allocated then). Any thread. */
crpc_code ccall_new(crpc_channel *ch, const crpc_ctx *ctx, const char *method,
                    const crpc_metadata *metadata, const char *encoding,
                    int64_t deadline, ccall **out);
/* Registers the call ctx's on_cancel and queues the first kick, once
 * call->conn is set (or, async, queued for one). */
void ccall_launch(ccall *call);

/* ---- channel_calls.c: the live-call registry (crpc/calls.h) ---- */

/* Gives a new call its id and start time. ccall_new, before the call is
 * shared. */
void ccall_live_init(ccall *call);

/* Brings the call's listing up to date: listed at its first kick (STARTED),
 * CTX_DONE once the ctx is seen done, unlisted (ENDED) once it has ended
 * or its ctx is done and no stream of it is open. From every kick and
 * stream close, while the caller still holds a reference. Loop thread. */
void ccall_live_update(ccall *call);

/* Takes a listed call off its home's list because a resend moves it to
 * another home (adopt_next_conn, on the old home's loop, before it
 * publishes the new home); the new home lists it at its next kick without
 * telling the observer again. */
void ccall_live_unlist_for_move(ccall *call);

/* ---- channel_channelz.c: channelz accounting (rpc/channelz) ---- */

/* The channel's entity (crpc_channel_new), and its end (crpc_channel_free,
 * once its loop is gone: nothing counts any more). */
void channel_cz_new(crpc_channel *ch, const char *target);
void channel_cz_free(crpc_channel *ch);

/* Gives slot s (new) a subchannel entity. Channel mutex held. */
void channel_cz_subchannel(crpc_channel *ch, cslot *s);

/* Slot s got connection conn (attempt): the socket will be s's. Channel
 * mutex held. */
void channel_cz_slot_conn(cslot *s, cconn *conn);

/* The connection was attached (registers its socket; only if not closed
 * already), closed, and freed without being attached. Loop thread (the
 * last: any). */
void cconn_cz_open(cconn *conn);
void cconn_cz_close(cconn *conn);
void cconn_cz_drop(cconn *conn);

/* A stream of call opened / ended on conn. Loop thread. */
void cconn_cz_stream_started(cconn *conn, ccall *call);
void cconn_cz_stream_ended(cconn *conn, ccall *call);

/* The live-call registry listed the call (it started) / let it go (it
 * ended, with its status). Loop thread (channel_calls.c). */
void ccall_cz_started(ccall *call);
void ccall_cz_ended(ccall *call);

/* ---- call_async.c ---- */

/* Runs the reactor's callbacks for what has arrived (messages, send room,
 * the end). Loop thread, from kick_fn. */
void ccall_deliver(ccall *call);
/* The call needs a connection (first attempt or a resend): the channel's
 * helper thread gets one and hands it over as next_conn. Any thread not
 * holding the call mutex. */
void ccall_async_connect(ccall *call);
/* Kicks the call, unless the loop is inside this call's callbacks (kick_fn
 * picks up what they did when they return). Any thread. */
void ccall_kick_from_user(ccall *call);
/* Stops the helper thread (channel free, once no call is left). */
void channel_stop_async(crpc_channel *ch);

#endif /* CRPC_CHANNEL_CHANNEL_INTERNAL_H */
