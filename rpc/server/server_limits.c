/*
 * server_limits.c - what one peer can cost the server (issue 17): option
 * defaults, rapid-reset budgets per connection and per peer address,
 * max_connections, handler slots per connection, the request timeout and
 * the per-connection byte count. Loop thread unless said otherwise; the
 * peer table is the one structure shared by the loops.
 *
 * The idea throughout: whatever a client does, it costs the server memory
 * that a configured limit bounds, never a handler thread it can keep, and
 * never CPU out of proportion to the bytes it sends.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "rpc/log/log.h"
#include "rpc/server/server_internal.h"

/* ---- option defaults ------------------------------------------------------*/

#define DEFAULT_MAX_SEND_MESSAGE ((size_t)4 * 1024 * 1024)
#define DEFAULT_REQUEST_TIMEOUT (30 * CRPC_SECOND)
#define DEFAULT_HANDSHAKE_TIMEOUT (20 * CRPC_SECOND)
#define DEFAULT_CONNECTION_QUEUED ((size_t)64 * 1024 * 1024)
#define MIN_MAX_CONNECTIONS 16

/* 3/4 of the soft open-file limit: past it accept would fail with EMFILE
 * and pause for everyone, while reaping the idlest keeps new clients
 * coming in; the last quarter is left to listeners, the loops' own fds
 * and whatever files and channels the handlers open. */
static size_t default_max_connections(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  rlim_t n = rl.rlim_cur;
  if (n == RLIM_INFINITY || n > ((rlim_t)1 << 24)) n = (rlim_t)1 << 24;
  size_t max = (size_t)(n - n / 4);
  return max < MIN_MAX_CONNECTIONS ? MIN_MAX_CONNECTIONS : max;
}

void server_limits_defaults(crpc_server_options *o) {
  if (o->max_send_message_size == 0) {
    o->max_send_message_size = DEFAULT_MAX_SEND_MESSAGE;
  }
  if (o->request_timeout_ns == 0) {
    o->request_timeout_ns = DEFAULT_REQUEST_TIMEOUT;
  }
  if (o->handshake_timeout_ns == 0) {
    o->handshake_timeout_ns = DEFAULT_HANDSHAKE_TIMEOUT;
  }
  if (o->max_connections == 0) o->max_connections = default_max_connections();
  if (o->max_handlers_per_connection <= 0) {
    int half = o->handler_threads / 2;
    o->max_handlers_per_connection = half > 0 ? half : 1;
  }
  if (o->max_connection_queued_bytes == 0) {
    o->max_connection_queued_bytes = DEFAULT_CONNECTION_QUEUED;
  }
}

/* ---- rapid reset across reconnects ---------------------------------------
 *
 * nghttp2's reset budget lives in its session, so a client that reconnects
 * starts afresh every time (a flood from three reconnecting processes got
 * through at full rate). crpc keeps two token buckets: the connection's
 * (CRPC_SERVER_RESET_BURST, _RATE, as before) and its address's, shared by
 * every connection from that address: twice the burst and rate, so a few
 * busy clients behind one NAT or proxy that each cancel heavily are not
 * cut off, while a client that reconnects to flood gets its address's
 * budget only, not a fresh one per connection. A connection that finds
 * either bucket empty gets GOAWAY(ENHANCE_YOUR_CALM) and is read no
 * further. Other connections from the address are untouched: only the
 * next reset they send costs them their connection, so a well-behaved
 * client that shares the address loses nothing. IPv6 peers are keyed by
 * their /64, which one host usually owns whole; unix sockets not at all
 * (local, and with no address to tell peers apart).
 *
 * The table is a small fixed array (no allocation per peer): a full
 * bucket carries no information, so its slot is free for another
 * address; when every slot on the probe path is in use, the fullest is
 * replaced. An attacker with thousands of addresses can push entries
 * out, and is then limited per connection, as before. */
#define PEER_RESET_BURST (2.0 * CRPC_SERVER_RESET_BURST)
#define PEER_RESET_RATE (2.0 * CRPC_SERVER_RESET_RATE)
#define PEER_SLOTS 1024 /* a power of two */
#define PEER_PROBE 8

typedef struct peer_entry {
  uint64_t key;
  double tokens;
  int64_t stamp;
  bool used;
} peer_entry;

struct server_peer_table {
  pthread_mutex_t mu;
  peer_entry e[PEER_SLOTS];
};

struct server_peer_table *server_peer_table_new(void) {
  struct server_peer_table *t = calloc(1, sizeof(*t));
  if (t != NULL) pthread_mutex_init(&t->mu, NULL);
  return t;
}

void server_peer_table_free(struct server_peer_table *t) {
  if (t == NULL) return;
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* Refills a bucket for the time since its stamp. */
static double refill(double tokens, int64_t *stamp, int64_t now, double burst,
                     double rate) {
  if (now > *stamp) {
    tokens += (double)(now - *stamp) * rate / (double)CRPC_SECOND;
    *stamp = now;
  }
  return tokens > burst ? burst : tokens;
}

/* Takes one token from the address's bucket; false if it was empty. */
static bool peer_take(struct server_peer_table *t, uint64_t key, int64_t now) {
  uint64_t h = key * 0x9e3779b97f4a7c15ull;
  size_t at = (size_t)(h >> 54) & (PEER_SLOTS - 1);
  pthread_mutex_lock(&t->mu);
  peer_entry *hit = NULL, *spare = NULL;
  double spare_tokens = -1;
  for (size_t i = 0; i < PEER_PROBE; i++) {
    peer_entry *e = &t->e[(at + i) & (PEER_SLOTS - 1)];
    if (e->used && e->key == key) {
      hit = e;
      break;
    }
    double full = e->used ? refill(e->tokens, &e->stamp, now, PEER_RESET_BURST,
                                   PEER_RESET_RATE)
                          : PEER_RESET_BURST + 1;
    if (e->used) e->tokens = full;
    if (full > spare_tokens) {
      spare = e;
      spare_tokens = full;
    }
  }
  if (hit == NULL) {
    hit = spare;
    *hit = (peer_entry){.key = key, .tokens = PEER_RESET_BURST, .stamp = now,
                        .used = true};
  }
  hit->tokens = refill(hit->tokens, &hit->stamp, now, PEER_RESET_BURST,
                       PEER_RESET_RATE);
  bool ok = hit->tokens >= 1;
  if (ok) hit->tokens -= 1;
  pthread_mutex_unlock(&t->mu);
  return ok;
}

/* The address's key: IPv4 as itself (tagged), IPv6 by its /64; false for
 * anything else (unix sockets). */
static bool peer_key_of(const struct sockaddr *sa, uint64_t *key) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    *key = 0xffffffff00000000ull | (uint64_t)ntohl(in->sin_addr.s_addr);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    const uint8_t *b = in6->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      *key = 0xffffffff00000000ull | ((uint64_t)b[12] << 24) |
             ((uint64_t)b[13] << 16) | ((uint64_t)b[14] << 8) | b[15];
      return true;
    }
    uint64_t k = 0;
    for (int i = 0; i < 8; i++) k = k << 8 | b[i];
    *key = k;
    return true;
  }
  return false;
}

void sconn_limits_init(sconn *conn, const struct sockaddr *sa, int64_t now) {
  const crpc_server_options *o = &conn->server->opts;
  conn->preface_at = o->handshake_timeout_ns > 0 &&
                             o->handshake_timeout_ns < INT64_MAX - now
                         ? now + o->handshake_timeout_ns
                         : INT64_MAX;
  conn->last_active = now;
  conn->reset_tokens = CRPC_SERVER_RESET_BURST;
  conn->reset_stamp = now;
  conn->peer_keyed = conn->server->peer_resets != NULL &&
                     peer_key_of(sa, &conn->peer_key);
}

bool sconn_charge_reset(sconn *conn, int64_t now) {
  conn->reset_tokens =
      refill(conn->reset_tokens, &conn->reset_stamp, now,
             CRPC_SERVER_RESET_BURST, CRPC_SERVER_RESET_RATE);
  bool ok = conn->reset_tokens >= 1;
  if (ok) conn->reset_tokens -= 1;
  if (conn->peer_keyed &&
      !peer_take(conn->server->peer_resets, conn->peer_key, now)) {
    ok = false;
  }
  return !ok;
}

/* ---- max_connections ------------------------------------------------------*/

void server_conns_reap(server_loop *sl, sconn *fresh, size_t live) {
  const crpc_server_options *o = &sl->server->opts;
  if (live <= o->max_connections) return;
  /* The idlest with no call open, else the idlest: a long call on a
   * quiet connection (a watch stream) goes last. */
  sconn *idle = NULL, *any = NULL;
  for (sconn *c = sl->conns; c != NULL; c = c->next) {
    if (c == fresh || c->h2.closed || c->h2.close_pending) continue;
    if (any == NULL || c->last_active < any->last_active) any = c;
    if (c->calls == NULL &&
        (idle == NULL || c->last_active < idle->last_active)) {
      idle = c;
    }
  }
  sconn *victim = idle != NULL ? idle : any;
  if (victim == NULL) return; /* every other one is on other loops */
  CRPC_LOG(CRPC_LOG_INFO, CRPC_LOG_SUB_SERVER,
           "at max_connections (%zu): closing the idlest connection (%s, "
           "idle %lld ms)",
           o->max_connections, victim->peer->addr,
           (long long)((crpc_now_ns() - victim->last_active) /
                       CRPC_MILLISECOND));
  if (!victim->h2.tls_handshaking) {
    static const char debug[] = "max_connections";
    nghttp2_session *session = victim->h2.session;
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session),
                          NGHTTP2_NO_ERROR, (const uint8_t *)debug,
                          sizeof(debug) - 1);
    crpc_h2_conn_flush(&victim->h2);
  }
  if (!victim->h2.closed) {
    crpc_h2_conn_close(&victim->h2,
                       "closed for a new connection (server at "
                       "max_connections)");
  }
}

/* ---- handler slots per connection ----------------------------------------*/

/* The handler will not run (its ctx ended before it got a thread): what
 * the worker would have done after it, on the loop. */
static void finish_unrun(scall *call) {
  scall_handler_returned(call, crpc_ctx_err(call->ctx));
  server_count(call->server, &call->server->live_calls, -1);
  scall_unref(call); /* the handler's */
}

static void take_slot(scall *call) {
  call->slot_held = true;
  call->peer->slots++;
  server_pool_submit(call->sl, call);
}

static void wait_unlink(scall **head, scall **tail, scall *call) {
  if (call->wprev != NULL) {
    call->wprev->wnext = call->wnext;
  } else {
    *head = call->wnext;
  }
  if (call->wnext != NULL) {
    call->wnext->wprev = call->wprev;
  } else {
    *tail = call->wprev;
  }
  call->wnext = call->wprev = NULL;
}

static void wait_append(scall **head, scall **tail, scall *call) {
  call->wnext = NULL;
  call->wprev = *tail;
  if (*tail != NULL) {
    (*tail)->wnext = call;
  } else {
    *head = call;
  }
  *tail = call;
}

void scall_pool_enter(scall *call) {
  if (crpc_ctx_is_done(call->ctx)) {
    finish_unrun(call); /* reset or expired already: no thread for it */
    return;
  }
  sconn *conn = call->conn;
  /* While its connection's input is being read, a call waits for the end
   * of the batch (sconn_pump_waiting from after_read): a RST_STREAM that
   * came in the same read as its HEADERS (a rapid-reset flood) then ends
   * it before any thread is woken for it. */
  if (conn != NULL &&
      (conn->h2.reading ||
       call->peer->slots >= call->server->opts.max_handlers_per_connection)) {
    call->slot_waiting = true;
    wait_append(&conn->wait_head, &conn->wait_tail, call);
    return;
  }
  take_slot(call);
}

/* Starts waiting calls of conn while it has free slots. */
static void pump_waiting(sconn *conn) {
  int max = conn->server->opts.max_handlers_per_connection;
  while (conn->wait_head != NULL && conn->peer->slots < max) {
    scall *call = conn->wait_head;
    wait_unlink(&conn->wait_head, &conn->wait_tail, call);
    call->slot_waiting = false;
    if (crpc_ctx_is_done(call->ctx)) {
      finish_unrun(call);
    } else {
      take_slot(call);
    }
  }
}

void sconn_pump_waiting(sconn *conn) {
  if (conn->wait_head != NULL) pump_waiting(conn);
}

void scall_slot_update(scall *call) {
  if (call->slot_waiting) {
    if (!crpc_ctx_is_done(call->ctx) || call->conn == NULL) return;
    wait_unlink(&call->conn->wait_head, &call->conn->wait_tail, call);
    call->slot_waiting = false;
    finish_unrun(call);
    return;
  }
  if (!call->slot_held) return;
  pthread_mutex_lock(&call->mu);
  bool returned = call->handler_done;
  pthread_mutex_unlock(&call->mu);
  if (!returned) return;
  call->slot_held = false;
  call->peer->slots--;
  /* The stream may have closed before its handler returned (a status
   * sent early, a reset): the connection's waiting calls still get the
   * slot. */
  if (call->peer->conn != NULL) pump_waiting(call->peer->conn);
}

void scall_limits_on_close(scall *call, sconn *conn) {
  scall_request_done(call);
  if (call->slot_waiting) {
    wait_unlink(&conn->wait_head, &conn->wait_tail, call);
    call->slot_waiting = false;
    finish_unrun(call);
  }
  conn->queued -= call->charged;
  call->charged = 0;
}

/* ---- request timeout ------------------------------------------------------*/

void scall_request_wait(scall *call, int64_t now) {
  int64_t t = call->server->opts.request_timeout_ns;
  if (t <= 0 || call->request_waiting) return;
  server_loop *sl = call->sl;
  call->request_by = t < INT64_MAX - now ? now + t : INT64_MAX;
  call->request_waiting = true;
  wait_append(&sl->req_head, &sl->req_tail, call);
  if (sl->req_head == call) {
    crpc_loop_timer_start(&sl->req_timer, call->request_by);
  }
}

void scall_request_done(scall *call) {
  if (!call->request_waiting) return;
  call->request_waiting = false;
  wait_unlink(&call->sl->req_head, &call->sl->req_tail, call);
  /* The timer stays armed for the old head: it finds nothing due and
   * re-arms for the new one (cheaper than re-arming on every request). */
}

void server_request_timer_fn(crpc_loop *loop, crpc_loop_timer *timer,
                             void *arg) {
  (void)loop;
  server_loop *sl = arg;
  int64_t now = crpc_now_ns();
  while (sl->req_head != NULL && sl->req_head->request_by <= now) {
    scall *call = sl->req_head;
    scall_request_done(call);
    char msg[128];
    snprintf(msg, sizeof(msg),
             "request message not received within the server's "
             "request_timeout (%lld ms)",
             (long long)(sl->server->opts.request_timeout_ns /
                         CRPC_MILLISECOND));
    scall_ref(call); /* failing it may close its stream */
    scall_fail(call, CRPC_DEADLINE_EXCEEDED, msg);
    scall_unref(call);
  }
  if (sl->req_head != NULL) {
    crpc_loop_timer_start(timer, sl->req_head->request_by);
  }
}

/* ---- bytes per connection -------------------------------------------------*/

bool scall_charge(scall *call, size_t bytes) {
  sconn *conn = call->conn;
  if (conn == NULL) return false;
  size_t before = call->charged;
  conn->queued = conn->queued - before + bytes;
  call->charged = bytes;
  return bytes > before &&
         conn->queued > call->server->opts.max_connection_queued_bytes;
}

/* Message bytes the call makes the server hold: responses queued and not
 * yet written, the partial request message, and the decoded request
 * messages queued since the queue was last seen empty (takes are not seen
 * one by one: an upper bound until the queue empties). */
size_t scall_held_locked(scall *call) {
  if (call->in.q.count == 0) call->in_queued = 0;
  return call->out.bytes +
         crpc_wire_frame_decoder_buffered(&call->in.decoder) +
         call->in_queued;
}

bool scall_recharge(scall *call) {
  pthread_mutex_lock(&call->mu);
  size_t held = scall_held_locked(call);
  bool finished = call->finished;
  pthread_mutex_unlock(&call->mu);
  return scall_charge(call, held) && !finished;
}

void scall_fail_over_budget(scall *call) {
  pthread_mutex_lock(&call->mu);
  crpc_h2_msgq_clear(&call->in.q);
  /* No more is fed once recv_err is set (scall_fail, below). */
  crpc_wire_frame_decoder_destroy(&call->in.decoder);
  crpc_wire_frame_decoder_init(&call->in.decoder, call->in.max_message);
  pthread_mutex_unlock(&call->mu);
  char msg[200];
  snprintf(msg, sizeof(msg),
           "the connection holds more than the server's "
           "max_connection_queued_bytes (%zu) of unread requests and "
           "unsent responses",
           call->server->opts.max_connection_queued_bytes);
  scall_fail(call, CRPC_RESOURCE_EXHAUSTED, msg); /* drops unsent responses */
  pthread_mutex_lock(&call->mu);
  size_t held = scall_held_locked(call);
  pthread_mutex_unlock(&call->mu);
  scall_charge(call, held);
  if (call->headers_submitted && call->conn != NULL) {
    /* The trailers would follow the response's DATA, which the peer's
     * window may hold back for ever (a peer that stopped reading is the
     * usual way here): reset the stream instead, so it ends now on both
     * sides. ENHANCE_YOUR_CALM reads as RESOURCE_EXHAUSTED to gRPC
     * clients. */
    nghttp2_submit_rst_stream(call->conn->h2.session, NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_ENHANCE_YOUR_CALM);
    crpc_h2_conn_want_flush(&call->conn->h2);
  }
}

/* ---- header lists ---------------------------------------------------------*/

void scall_headers_over(scall *call) {
  char msg[160];
  snprintf(msg, sizeof(msg),
           "request trailers are over this server's max_metadata_size of "
           "%zu bytes",
           call->server->opts.max_metadata_size);
  scall_fail(call, CRPC_RESOURCE_EXHAUSTED, msg);
}
