/*
 * channel_lb.c - which connection a new call gets: name resolution, pick
 * first or round robin over the target's addresses, connecting (bounded by
 * the call's ctx), reconnect backoff, and closing connections left idle.
 *
 * Connecting happens on the calling thread, outside the channel mutex, one
 * attempt per slot at a time; other callers wanting that slot wait on the
 * channel's cond (ctx-aware) or go to another slot. The slots array is only
 * replaced while no slot is connecting, so a connecting thread may keep its
 * index across the unlocked attempt.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc/channel/channel_internal.h"

/* A new connection to the first of addrs that takes it (resolving the
 * target first if addrs is NULL), TLS included, bounded by the call's ctx
 * and the channel's connect timeout. Without the channel mutex. */
static crpc_code connect_addrs(crpc_channel *ch,
                               const crpc_resolved_addr *addrs, size_t n,
                               const crpc_ctx *call_ctx, cconn **out,
                               char err[CRPC_H2_ERR_MAX]) {
  *out = NULL;
  crpc_ctx *ctx = crpc_ctx_with_timeout(call_ctx, ch->connect_timeout);
  if (ctx == NULL) return CRPC_RESOURCE_EXHAUSTED;
  crpc_resolved_addr *resolved = NULL;
  crpc_code code = CRPC_OK;
  if (addrs == NULL) {
    code = crpc_target_resolve(&ch->target, ctx, &resolved, &n, err);
    addrs = resolved;
  }
  int fd = -1;
  if (code == CRPC_OK) {
    code = CRPC_UNAVAILABLE;
    for (size_t i = 0; i < n && code == CRPC_UNAVAILABLE; i++) {
      code = crpc_h2_connect_sockaddr((const struct sockaddr *)&addrs[i].ss,
                                      addrs[i].len, ctx, &fd, err);
    }
  }
  crpc_tls *tls = NULL;
  if (code == CRPC_OK && ch->tls != NULL) {
    /* The handshake, like the connect, is bounded by the caller's ctx
     * (failure catalog line 13, DESIGN.md). */
    code = crpc_tls_client_connect(ch->tls, fd, ch->target.tls_name,
                                   ch->target.authority, ctx, &tls, err);
  }
  if (code == CRPC_OK) {
    *out = cconn_new(ch, fd);
    if (*out == NULL) {
      code = CRPC_RESOURCE_EXHAUSTED;
      snprintf(err, CRPC_H2_ERR_MAX, "out of memory");
    } else {
      (*out)->tls = tls;
    }
  }
  if (code != CRPC_OK) {
    crpc_tls_free(tls);
    if (fd >= 0) close(fd);
    if (crpc_ctx_is_done(ctx) && !crpc_ctx_is_done(call_ctx)) {
      /* Our own limit, not the caller's: the server is unreachable. */
      code = CRPC_UNAVAILABLE;
      snprintf(err, CRPC_H2_ERR_MAX,
               "connecting to %.100s took longer than %" PRId64 " ms",
               ch->target.authority, ch->connect_timeout / CRPC_MILLISECOND);
    }
  }
  crpc_ctx_release(ctx);
  free(resolved);
  return code;
}

/* The slot of old (n_old) for the same address as a, or NULL. */
static cslot *same_addr(cslot *old, size_t n_old, const crpc_resolved_addr *a) {
  for (size_t i = 0; i < n_old; i++) {
    const crpc_resolved_addr *b = &old[i].addrs[0];
    if (b->len == a->len && memcmp(&b->ss, &a->ss, a->len) == 0) {
      return &old[i];
    }
  }
  return NULL;
}

/* Round robin: one slot per resolved address, built at first use and
 * again (DNS targets) when every address has failed. An address that
 * stays keeps its slot's connection and backoff; the connections of
 * addresses gone are dropped. Called with mu held and no slot connecting;
 * drops mu while resolving (`resolving` holds other callers off). False
 * with *code set if resolution failed (the old slots, if any, stay). */
static bool build_rr_slots(crpc_channel *ch, const crpc_ctx *ctx,
                           crpc_code *code) {
  ch->resolving = true;
  pthread_mutex_unlock(&ch->mu);
  crpc_resolved_addr *addrs = NULL;
  size_t n = 0;
  char err[CRPC_RESOLVE_ERR_MAX];
  *code = crpc_target_resolve(&ch->target, ctx, &addrs, &n, err);
  cslot *slots = *code == CRPC_OK ? calloc(n, sizeof(*slots)) : NULL;
  for (size_t i = 0; slots != NULL && i < n; i++) {
    slots[i].addrs = malloc(sizeof(*addrs));
    if (slots[i].addrs == NULL) {
      for (size_t j = 0; j < i; j++) free(slots[j].addrs);
      free(slots);
      slots = NULL;
      break;
    }
    slots[i].addrs[0] = addrs[i];
    slots[i].n_addrs = 1;
    crpc_backoff_init(&slots[i].backoff, ch->backoff_initial,
                      ch->backoff_max);
  }
  if (*code == CRPC_OK && slots == NULL) {
    *code = CRPC_RESOURCE_EXHAUSTED;
    snprintf(err, sizeof(err), "out of memory");
  }
  free(addrs);
  pthread_mutex_lock(&ch->mu);
  ch->resolving = false;
  ch->resolved_at = crpc_now_ns();
  pthread_cond_broadcast(&ch->cond);
  if (slots == NULL) {
    memcpy(ch->last_error, err, sizeof(ch->last_error));
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    cslot *prev = same_addr(ch->slots, ch->n_slots, &slots[i].addrs[0]);
    if (prev == NULL) {
      channel_cz_subchannel(ch, &slots[i]); /* a new address */
      continue;
    }
    free(slots[i].addrs);
    slots[i] = *prev; /* its connection, backoff, failure state, channelz */
    prev->addrs = NULL;
    prev->conn = NULL;
    prev->cz = NULL;
  }
  for (size_t i = 0; i < ch->n_slots; i++) {
    free(ch->slots[i].addrs);
    crpc_cz_unregister(ch->slots[i].cz);
    cconn_unref(ch->slots[i].conn); /* an address no longer resolved */
  }
  free(ch->slots);
  ch->slots = slots;
  ch->n_slots = n;
  ch->rr_next = 0;
  return true;
}

/* Round robin over a DNS name, about to retry with every address failed
 * and no connection up: resolve again first (the service may have moved),
 * at most once per initial backoff. mu held. */
static bool rr_should_resolve_again(const crpc_channel *ch, int64_t now) {
  if (ch->lb == CRPC_LB_PICK_FIRST || !ch->target.is_dns ||
      now - ch->resolved_at < ch->backoff_initial) {
    return false;
  }
  for (size_t i = 0; i < ch->n_slots; i++) {
    const cslot *s = &ch->slots[i];
    if (!s->failed || s->connecting ||
        (s->conn != NULL && !atomic_load(&s->conn->dead))) {
      return false;
    }
  }
  return true;
}

/* Pick first: one slot, resolving the target on every attempt. */
static bool build_pf_slot(crpc_channel *ch, crpc_code *code) {
  ch->slots = calloc(1, sizeof(*ch->slots));
  if (ch->slots == NULL) {
    *code = CRPC_RESOURCE_EXHAUSTED;
    return false;
  }
  ch->n_slots = 1;
  crpc_backoff_init(&ch->slots[0].backoff, ch->backoff_initial,
                    ch->backoff_max);
  channel_cz_subchannel(ch, &ch->slots[0]);
  return true;
}

/* Hands slot's live connection to a caller. mu held. */
static cconn *take(crpc_channel *ch, size_t i) {
  cconn *conn = ch->slots[i].conn;
  atomic_fetch_add(&conn->refs, 1);
  atomic_fetch_add(&conn->in_use, 1);
  ch->rr_next = (i + 1) % ch->n_slots;
  return conn;
}

/* Least request: the live connection with the fewest calls in use, the
 * first after rr_next among equals (so equal loads still rotate); -1 if
 * none is up. in_use is read without the connections' cooperation: a
 * snapshot, as good as any balancer's. mu held. */
static long least_loaded(const crpc_channel *ch) {
  long best = -1;
  int best_n = 0;
  for (size_t k = 0; k < ch->n_slots; k++) {
    size_t i = (ch->rr_next + k) % ch->n_slots;
    cconn *c = ch->slots[i].conn;
    if (c == NULL || atomic_load(&c->dead)) continue;
    int n = atomic_load(&c->in_use);
    if (best < 0 || n < best_n) {
      best = (long)i;
      best_n = n;
    }
  }
  return best;
}

/* One attempt on slot i. Called with mu held and the slot idle; drops mu
 * while connecting. CRPC_OK (the slot has a connection), CRPC_UNAVAILABLE
 * (failed: the slot backs off) or the ctx's code. */
static crpc_code attempt(crpc_channel *ch, size_t i, const crpc_ctx *ctx) {
  cslot *s = &ch->slots[i];
  s->connecting = true;
  const crpc_resolved_addr *addrs = s->addrs;
  size_t n = s->n_addrs;
  int64_t started = crpc_now_ns();
  pthread_mutex_unlock(&ch->mu);
  cconn *conn = NULL;
  char err[CRPC_H2_ERR_MAX] = "";
  crpc_code code = connect_addrs(ch, addrs, n, ctx, &conn, err);
  pthread_mutex_lock(&ch->mu);
  s = &ch->slots[i]; /* not replaced while connecting */
  s->connecting = false;
  pthread_cond_broadcast(&ch->cond);
  if (code == CRPC_OK) {
    s->conn = conn; /* the channel's reference */
    channel_cz_slot_conn(s, conn);
    s->failed = false;
    crpc_backoff_reset(&s->backoff);
    cconn_post_attach(conn);
    return CRPC_OK;
  }
  memcpy(ch->last_error, err, sizeof(ch->last_error));
  if (crpc_ctx_is_done(ctx)) return code; /* the caller gave up: no strike */
  s->failed = true;
  s->next_attempt_ns =
      started + crpc_backoff_next(&s->backoff, crpc_backoff_rand(&ch->rng));
  return CRPC_UNAVAILABLE;
}

/* Waits on the channel's cond until woken, ctx is done or `until`. mu
 * held. CRPC_OK or the ctx's code. */
static crpc_code wait_until(crpc_channel *ch, const crpc_ctx *ctx,
                            int64_t until) {
  if (until == CRPC_NO_DEADLINE) {
    return crpc_ctx_wait_cond(ctx, &ch->cond, &ch->mu);
  }
  crpc_ctx *timed = crpc_ctx_with_deadline(ctx, until);
  if (timed == NULL) return CRPC_RESOURCE_EXHAUSTED;
  crpc_ctx_wait_cond(timed, &ch->cond, &ch->mu);
  /* Released without mu: a release may run cancel callbacks. */
  pthread_mutex_unlock(&ch->mu);
  crpc_ctx_release(timed);
  pthread_mutex_lock(&ch->mu);
  return crpc_ctx_err(ctx);
}

/* Starts homes[0]'s loop thread (the one async calls waiting for a
 * connection are kicked on) if it has not started. mu held. False if it
 * cannot. */
static bool start_first_home(crpc_channel *ch) {
  chome *home = &ch->homes[0];
  if (!home->started && crpc_loop_start_thread(home->loop) == 0) {
    home->started = true;
  }
  return home->started;
}

chome *channel_pick_home(crpc_channel *ch) {
  pthread_mutex_lock(&ch->mu);
  chome *home = &ch->homes[0];
  for (int i = 1; i < ch->n_homes; i++) {
    if (atomic_load(&ch->homes[i].n_conns) < atomic_load(&home->n_conns)) {
      home = &ch->homes[i];
    }
  }
  bool ok = home->loop != NULL || crpc_loop_new(&home->loop, 0) == 0;
  if (ok && !home->started) {
    crpc_loop_set_poll(home->loop, ch->poll_ns);
    ok = crpc_loop_start_thread(home->loop) == 0;
    home->started = ok;
  }
  if (ok) atomic_fetch_add(&home->n_conns, 1);
  pthread_mutex_unlock(&ch->mu);
  return ok ? home : NULL;
}

cconn *channel_get_conn(crpc_channel *ch, const crpc_ctx *ctx,
                        crpc_code *code) {
  pthread_mutex_lock(&ch->mu);
  if (!start_first_home(ch)) {
    pthread_mutex_unlock(&ch->mu);
    *code = CRPC_UNAVAILABLE;
    return NULL;
  }
  for (;;) {
    *code = crpc_ctx_err(ctx);
    if (*code != CRPC_OK) break;
    if (ch->resolving) {
      *code = crpc_ctx_wait_cond(ctx, &ch->cond, &ch->mu);
      continue;
    }
    if (ch->slots == NULL) {
      if (!(ch->lb != CRPC_LB_PICK_FIRST ? build_rr_slots(ch, ctx, code)
                                         : build_pf_slot(ch, code))) {
        break;
      }
      continue;
    }
    int64_t now = crpc_now_ns(), wake = CRPC_NO_DEADLINE;
    bool busy = false, tried = false;
    for (size_t k = 0; k < ch->n_slots && !tried; k++) {
      size_t i = (ch->rr_next + k) % ch->n_slots;
      cslot *s = &ch->slots[i];
      if (s->conn != NULL && atomic_load(&s->conn->dead)) {
        cconn_unref(s->conn); /* closed or GOAWAY: calls go elsewhere */
        s->conn = NULL;
      }
      if (s->conn != NULL) {
        /* Least request looks at every slot first: one not connected
         * yet is tried (the scan goes on), else the least loaded wins. */
        if (ch->lb == CRPC_LB_LEAST_REQUEST) continue;
        cconn *conn = take(ch, i);
        pthread_mutex_unlock(&ch->mu);
        return conn;
      }
      if (s->connecting) {
        busy = true;
      } else if (now < s->next_attempt_ns) {
        if (s->next_attempt_ns < wake) wake = s->next_attempt_ns;
      } else if (rr_should_resolve_again(ch, now)) {
        build_rr_slots(ch, ctx, code); /* on failure the old slots stay */
        tried = true; /* rescan the new slots */
      } else {
        tried = true;
        *code = attempt(ch, i, ctx);
        if (*code == CRPC_OK) {
          cconn *conn = take(ch, i);
          pthread_mutex_unlock(&ch->mu);
          return conn;
        }
      }
    }
    if (tried) continue; /* rescan: another slot may do, or the ctx ended */
    long least = ch->lb == CRPC_LB_LEAST_REQUEST ? least_loaded(ch) : -1;
    if (least >= 0) {
      cconn *conn = take(ch, (size_t)least);
      pthread_mutex_unlock(&ch->mu);
      return conn;
    }
    if (busy) {
      *code = crpc_ctx_wait_cond(ctx, &ch->cond, &ch->mu);
    } else if (ch->wait_for_ready) {
      *code = wait_until(ch, ctx, wake);
    } else {
      /* Every address is backing off: fail fast, as gRPC does. */
      *code = CRPC_UNAVAILABLE;
      break;
    }
  }
  pthread_mutex_unlock(&ch->mu);
  return NULL;
}

cconn *channel_try_conn(crpc_channel *ch) {
  pthread_mutex_lock(&ch->mu);
  cconn *conn = NULL;
  bool need_connect = !ch->homes[0].started || ch->slots == NULL;
  int64_t now = crpc_now_ns();
  /* The choice channel_get_conn would make, short of connecting: the
   * rotation's next live connection, unless a slot before it should be
   * connected now (then the helper does that, so an all-async client
   * spreads over every address too). Slots connecting or backing off are
   * passed over, as there. */
  for (size_t k = 0; !need_connect && k < ch->n_slots; k++) {
    size_t i = (ch->rr_next + k) % ch->n_slots;
    const cslot *s = &ch->slots[i];
    if (s->conn != NULL && !atomic_load(&s->conn->dead)) {
      if (ch->lb == CRPC_LB_LEAST_REQUEST) continue; /* after the scan */
      conn = take(ch, i);
      break;
    }
    need_connect = !s->connecting && now >= s->next_attempt_ns;
  }
  if (conn == NULL && !need_connect && ch->lb == CRPC_LB_LEAST_REQUEST) {
    long least = least_loaded(ch);
    if (least >= 0) conn = take(ch, (size_t)least);
  }
  pthread_mutex_unlock(&ch->mu);
  return conn;
}

void cconn_release(cconn *conn) {
  /* Stamped before the count drops, so an idle check that sees 0 in use
   * also sees when. */
  atomic_store(&conn->last_used_ns, crpc_now_ns());
  atomic_fetch_sub(&conn->in_use, 1);
  cconn_unref(conn);
}

crpc_channel_state crpc_channel_get_state(crpc_channel *ch) {
  pthread_mutex_lock(&ch->mu);
  bool ready = false, connecting = ch->resolving, failed = false;
  for (size_t i = 0; i < ch->n_slots; i++) {
    const cslot *s = &ch->slots[i];
    ready |= s->conn != NULL && !atomic_load(&s->conn->dead);
    connecting |= s->connecting;
    failed |= s->failed;
  }
  pthread_mutex_unlock(&ch->mu);
  return ready        ? CRPC_CHANNEL_READY
         : connecting ? CRPC_CHANNEL_CONNECTING
         : failed     ? CRPC_CHANNEL_TRANSIENT_FAILURE
                      : CRPC_CHANNEL_IDLE;
}

const char *crpc_channel_state_name(crpc_channel_state state) {
  switch (state) {
    case CRPC_CHANNEL_IDLE: return "IDLE";
    case CRPC_CHANNEL_CONNECTING: return "CONNECTING";
    case CRPC_CHANNEL_READY: return "READY";
    case CRPC_CHANNEL_TRANSIENT_FAILURE: return "TRANSIENT_FAILURE";
  }
  return "UNKNOWN";
}

/* ---- idle connections --------------------------------------------------*/

static void idle_timer_fn(crpc_loop *loop, crpc_loop_timer *timer,
                          void *arg) {
  (void)loop;
  cconn *conn = arg;
  crpc_channel *ch = conn->ch;
  if (conn->h2.closed) return;
  int64_t now = crpc_now_ns();
  /* Under mu: channel_get_conn hands out connections under it, so none
   * can be handed this one between the check and marking it dead. */
  pthread_mutex_lock(&ch->mu);
  bool busy = atomic_load(&conn->in_use) > 0;
  int64_t due = atomic_load(&conn->last_used_ns) + ch->idle_timeout;
  bool idle = !busy && now >= due;
  if (idle) atomic_store(&conn->dead, true);
  pthread_mutex_unlock(&ch->mu);
  if (!idle) {
    crpc_loop_timer_start(timer, busy ? now + ch->idle_timeout : due);
    return;
  }
  /* Tell the server why before closing, as gRPC clients do. */
  nghttp2_submit_goaway(conn->h2.session, NGHTTP2_FLAG_NONE, 0,
                        NGHTTP2_NO_ERROR, (const uint8_t *)"idle", 4);
  crpc_h2_conn_flush(&conn->h2);
  crpc_h2_conn_close(&conn->h2, "idle timeout");
}

void cconn_start_idle_timer(cconn *conn) {
  crpc_channel *ch = conn->ch;
  crpc_loop_timer_init(&conn->idle_timer, conn->home->loop, idle_timer_fn,
                       conn);
  if (ch->idle_timeout <= 0 || conn->h2.closed) return;
  crpc_loop_timer_start(&conn->idle_timer, crpc_now_ns() + ch->idle_timeout);
}
