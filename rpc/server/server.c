/*
 * server.c - the server object: methods, listeners, the loop thread, the
 * handler pool, and graceful shutdown.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crpc/server_info.h"
#include "rpc/ctx/ctx_block_hook.h"
#include "rpc/h2/limits.h"
#include "rpc/intercept/chain.h"
#include "rpc/log/log.h"
#include "rpc/server/server_internal.h"
#include "rpc/wire/frame.h"

/* The old entry point: same result, the reason goes to the log (it went
 * to stderr before crpc_server_new_err existed). */
crpc_server *crpc_server_new(const crpc_server_options *options) {
  char error[CRPC_SERVER_ERROR_MAX];
  crpc_server *s = crpc_server_new_err(options, error);
  if (s == NULL) CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "%s", error);
  return s;
}

/* Copies a reason into a caller's error buffer (NULL: not wanted). */
static void set_error(char *error, const char *why) {
  if (error != NULL) snprintf(error, CRPC_SERVER_ERROR_MAX, "%s", why);
}

crpc_server *crpc_server_new_err(const crpc_server_options *options,
                                 char error[CRPC_SERVER_ERROR_MAX]) {
  set_error(error, "");
  const char *bad = options == NULL ? NULL
                                    : crpc_h2_windows_check(
                                          options->initial_stream_window_size,
                                          options->initial_connection_window_size);
  if (bad != NULL) {
    set_error(error, bad);
    return NULL;
  }
  crpc_server *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    set_error(error, "out of memory");
    return NULL;
  }
  if (options != NULL) s->opts = *options;
  if (s->opts.max_recv_message_size == 0) {
    s->opts.max_recv_message_size = CRPC_WIRE_DEFAULT_MAX_RECV_MESSAGE;
  }
  if (s->opts.max_metadata_size == 0) {
    s->opts.max_metadata_size = CRPC_H2_DEFAULT_MAX_METADATA;
  }
  if (s->opts.handler_threads <= 0) s->opts.handler_threads = 64;
  if (s->opts.max_concurrent_streams == 0) {
    s->opts.max_concurrent_streams = 1000;
  }
  if (s->opts.stream_send_buffer == 0) s->opts.stream_send_buffer = 64 * 1024;
  if (s->opts.keepalive_time_ns < 0) s->opts.keepalive_time_ns = 0;
  if (s->opts.keepalive_timeout_ns <= 0) {
    s->opts.keepalive_timeout_ns = 20 * CRPC_SECOND;
  }
  if (s->opts.min_ping_interval_ns == 0) {
    s->opts.min_ping_interval_ns = 5 * 60 * CRPC_SECOND;
  }
  /* Lifecycle limits: negative means off, as 0 does. */
  if (s->opts.max_connection_idle_ns < 0) s->opts.max_connection_idle_ns = 0;
  if (s->opts.max_connection_age_ns < 0) s->opts.max_connection_age_ns = 0;
  if (s->opts.max_connection_age_grace_ns < 0) {
    s->opts.max_connection_age_grace_ns = 0;
  }
  /* The hostile-peer limits (after handler_threads, which one derives
   * from); the reset table is optional (NULL: per connection only). */
  server_limits_defaults(&s->opts);
  s->peer_resets = server_peer_table_new();
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->work_cond, NULL);
  pthread_cond_init(&s->idle_cond, NULL);
  s->root = crpc_ctx_with_cancel(crpc_ctx_background());
  if (s->opts.loop_threads <= 0) s->opts.loop_threads = crpc_loop_default_count();
  s->threads = calloc((size_t)s->opts.handler_threads, sizeof(pthread_t));
  s->loops = calloc((size_t)s->opts.loop_threads, sizeof(server_loop));
  bool ok = s->root != NULL && s->threads != NULL && s->loops != NULL;
  for (int i = 0; ok && i < s->opts.loop_threads; i++) {
    s->loops[i].server = s;
    ok = crpc_loop_new(&s->loops[i].loop, CRPC_LOOP_STANDBY) == 0;
    if (ok) crpc_loop_set_poll(s->loops[i].loop, s->opts.poll_ns);
    if (ok) s->n_loops++;
  }
  if (!ok) {
    for (int i = 0; i < s->n_loops; i++) crpc_loop_free(s->loops[i].loop);
    crpc_ctx_release(s->root);
    server_peer_table_free(s->peer_resets);
    free(s->loops);
    free(s->threads);
    free(s);
    set_error(error, "out of memory or file descriptors setting up the "
                     "server's loops");
    return NULL;
  }
  server_cz_new(s); /* channelz */
  return s;
}

static bool valid_path(const char *path) {
  /* "/package.Service/Method": two non-empty segments. */
  if (path == NULL || path[0] != '/') return false;
  const char *slash = strchr(path + 1, '/');
  return slash != NULL && slash > path + 1 && slash[1] != '\0' &&
         strchr(slash + 1, '/') == NULL;
}

const server_method *server_find_method(const crpc_server *s,
                                        const char *path) {
  for (size_t i = 0; i < s->n_methods; i++) {
    if (strcmp(s->methods[i].path, path) == 0) return &s->methods[i];
  }
  return NULL;
}

crpc_code crpc_server_add_method(crpc_server *s, const char *path,
                                 crpc_method_kind kind, crpc_handler_fn fn,
                                 void *user_data) {
  if (fn == NULL) return CRPC_INVALID_ARGUMENT;
  server_method m = {.kind = kind, .fn = fn, .user_data = user_data};
  return server_add_method_entry(s, path, &m);
}

crpc_code server_add_method_entry(crpc_server *s, const char *path,
                                  const server_method *m) {
  if (s->started || !valid_path(path)) return CRPC_INVALID_ARGUMENT;
  if (server_find_method(s, path) != NULL) return CRPC_ALREADY_EXISTS;
  if (s->n_methods == s->cap_methods) {
    size_t cap = s->cap_methods ? s->cap_methods * 2 : 8;
    server_method *m = realloc(s->methods, cap * sizeof(*m));
    if (m == NULL) return CRPC_RESOURCE_EXHAUSTED;
    s->methods = m;
    s->cap_methods = cap;
  }
  char *copy = strdup(path);
  if (copy == NULL) return CRPC_RESOURCE_EXHAUSTED;
  s->methods[s->n_methods] = *m;
  s->methods[s->n_methods++].path = copy;
  return CRPC_OK;
}

/* The old entry point: same result, the reason goes to the log (it went
 * to stderr before crpc_server_listen_err existed). */
crpc_code crpc_server_listen(crpc_server *s, const char *address, int *port) {
  char error[CRPC_SERVER_ERROR_MAX];
  crpc_code code = crpc_server_listen_err(s, address, port, error);
  if (code != CRPC_OK) {
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "%s", error);
  }
  return code;
}

crpc_code crpc_server_listen_err(crpc_server *s, const char *address,
                                 int *port,
                                 char error[CRPC_SERVER_ERROR_MAX]) {
  set_error(error, "");
  if (s->started) {
    set_error(error, "listen after crpc_server_start");
    return CRPC_FAILED_PRECONDITION;
  }
  crpc_h2_addr addr;
  char err[CRPC_H2_ERR_MAX];
  crpc_code code = crpc_h2_addr_parse(address, &addr, err);
  if (code != CRPC_OK) {
    set_error(error, err);
    return code;
  }
  server_listener *ls =
      realloc(s->listeners, (s->n_listeners + 1) * sizeof(*ls));
  if (ls == NULL) {
    set_error(error, "out of memory");
    return CRPC_RESOURCE_EXHAUSTED;
  }
  s->listeners = ls;
  int fd;
  code = crpc_h2_listen(&addr, &fd, port, err);
  if (code != CRPC_OK) {
    set_error(error, err);
    return code;
  }
  /* Receive timestamps (a call's deadline counts from its request's
   * arrival: crpc_h2_conn_arrival_ns) are switched on per connection, but
   * the kernel stamps packets only while some socket wants stamps, and
   * turns that on with deferred work after the first such socket appears
   * and off after the last goes: a server's first requests, or those after
   * a quiet spell, could arrive unstamped. The listener holds it on. */
  int stamp = 1;
  bool stamped =
      setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &stamp, sizeof(stamp)) == 0;
  server_listener *l = &s->listeners[s->n_listeners++];
  memset(l, 0, sizeof(*l));
  l->fd = fd;
  l->rx_timestamps = stamped;
  l->server = s;
  server_cz_listener(s, l);
  if (addr.is_unix)
    snprintf(l->unix_path, sizeof(l->unix_path), "%s", addr.path);
  return CRPC_OK;
}

static void *worker_main(void *arg);

crpc_code crpc_server_start(crpc_server *s) {
  if (s->started || s->shut_down || s->n_listeners == 0) {
    return CRPC_FAILED_PRECONDITION;
  }
  /* No thread runs the loops yet, so this thread may set up watchers. */
  for (int i = 0; i < s->n_loops; i++) {
    crpc_loop_timer_init(&s->loops[i].pool_timer, s->loops[i].loop,
                         server_pool_starve_check, &s->loops[i]);
    crpc_loop_timer_init(&s->loops[i].req_timer, s->loops[i].loop,
                         server_request_timer_fn, &s->loops[i]);
  }
  for (size_t i = 0; i < s->n_listeners; i++) {
    server_listener *l = &s->listeners[i];
    crpc_loop_io_init(&l->io, s->loops[0].loop, l->fd, server_on_accept, l);
    crpc_loop_timer_init(&l->backoff, s->loops[0].loop,
                         server_on_accept_backoff, l);
    if (crpc_loop_io_set(&l->io, CRPC_LOOP_READABLE) != 0) {
      return CRPC_FAILED_PRECONDITION;
    }
  }
  /* One handler thread up front, so a call can always be served even if
   * the pool later fails to grow (it grows on demand when all are busy). */
  if (pthread_create(&s->threads[0], NULL, worker_main, s) != 0) {
    return CRPC_FAILED_PRECONDITION;
  }
  s->n_threads = 1;
  int started = 0;
  while (started < s->n_loops &&
         crpc_loop_start_thread(s->loops[started].loop) == 0) {
    started++;
  }
  if (started < s->n_loops) {
    while (started > 0) crpc_loop_stop_and_join(s->loops[--started].loop);
    pthread_mutex_lock(&s->mu);
    s->pool_stop = true;
    pthread_cond_broadcast(&s->work_cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->threads[0], NULL);
    s->n_threads = 0;
    s->pool_stop = false;
    return CRPC_FAILED_PRECONDITION;
  }
  s->started = true;
  return CRPC_OK;
}

void server_count(crpc_server *s, atomic_size_t *counter, int delta) {
  if (delta > 0) {
    atomic_fetch_add(counter, 1);
    return;
  }
  size_t cur = atomic_load(counter);
  while (cur > 1) {
    if (atomic_compare_exchange_weak(counter, &cur, cur - 1)) return;
  }
  /* The last one is taken under mu. Shutdown reads these counters under
   * mu and frees the server once they are zero; a thread the server never
   * joins (an async reactor's own thread whose crpc_server_call_finish
   * drops a call's last reference) must be done with s before shutdown
   * can see its zero, so the decrement, the draining test and the wake-up
   * all happen before mu is released. Only shutdown waits for a zero, and
   * it sets draining before it looks. */
  pthread_mutex_lock(&s->mu);
  atomic_fetch_sub(counter, 1);
  if (atomic_load(&s->draining)) pthread_cond_broadcast(&s->idle_cond);
  pthread_mutex_unlock(&s->mu);
}

/* ---- handler pool --------------------------------------------------------*/

/* Claims the wake-up of one idle worker for the queue, unless one is
 * already on its way (a burst of submits costs one wake-up, not a herd
 * fighting over mu). Caller holds mu, and signals work_cond after
 * releasing it when this says true: a worker signalled under mu would wake
 * only to block on it (two more futex calls and a context switch per
 * call, seen in strace of a blocking unary server). */
static bool pool_wake_locked(crpc_server *s) {
  if (s->work_head != NULL && s->n_idle > s->n_waking && s->n_waking == 0) {
    s->n_waking++;
    return true;
  }
  return false;
}

static void *worker_main(void *arg) {
  crpc_server *s = arg;
  pthread_setname_np(pthread_self(), "crpc-handler");
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->work_head == NULL && !s->pool_stop) {
      s->n_idle++;
      pthread_cond_wait(&s->work_cond, &s->mu);
      s->n_idle--;
      if (s->n_waking > 0) s->n_waking--; /* (or a spurious wakeup) */
    }
    scall *call = s->work_head;
    if (call == NULL) break; /* stopping and nothing left */
    s->work_head = call->work_next;
    if (s->work_head == NULL) s->work_tail = NULL;
    s->n_queued--;
    s->pool_taken++;
    call->pool_backlog = s->work_head != NULL;
    /* More queued: pass the wake-up on, one thread at a time, so the pool
     * widens only as fast as work keeps arriving. */
    bool wake = pool_wake_locked(s);
    pthread_mutex_unlock(&s->mu);
    if (wake) pthread_cond_signal(&s->work_cond);
    scall_run_handler(call);
    server_count(s, &s->live_calls, -1);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* How long queued calls may see no worker take anything before the pool
 * grows. Growing at once whenever every thread is busy made a thread per
 * concurrent call (64 threads at 64 streams), each hand-off a context
 * switch; instead the busy workers drain the queue, and threads are added
 * only when they are all stuck (handlers that block). */
#define POOL_STARVE_NS (500 * CRPC_MICROSECOND)

/* Starts up to `want` more workers. Caller holds mu. */
static void pool_grow_locked(crpc_server *s, int want) {
  while (want-- > 0 && s->n_threads < s->opts.handler_threads &&
         pthread_create(&s->threads[s->n_threads], NULL, worker_main, s) ==
             0) {
    s->n_threads++;
  }
}

void server_pool_starve_check(crpc_loop *loop, crpc_loop_timer *timer,
                              void *arg) {
  (void)loop;
  server_loop *sl = arg;
  crpc_server *s = sl->server;
  pthread_mutex_lock(&s->mu);
  /* Queued calls outnumber idle threads (a signalled thread not yet awake
   * still counts idle) and nobody took one for a whole period. */
  if (s->n_queued > 0 && s->pool_taken == sl->pool_taken_seen) {
    if (s->n_idle > s->n_waking) {
      s->n_waking++; /* an idle thread first */
      pthread_cond_signal(&s->work_cond);
    } else {
      pool_grow_locked(s, s->n_queued);
    }
  }
  sl->pool_taken_seen = s->pool_taken;
  bool again = s->n_queued > 0;
  pthread_mutex_unlock(&s->mu);
  if (again) crpc_loop_timer_start(timer, crpc_now_ns() + POOL_STARVE_NS);
}

/* A blocking handler on the loop thread, lent to it (crpc_loop_run_outside):
 * what a worker does for a call it takes, minus the queue. Its waits on a
 * ctx (recv, a full send window, crpc_ctx_wait) hand the loop to the
 * standby before they block. */
static void run_on_loop_thread(crpc_loop *loop, void *arg) {
  (void)loop;
  scall *call = arg;
  crpc_server *s = call->server;
  ctx_set_block_hook(crpc_loop_outside_will_block);
  scall_run_handler(call);
  ctx_set_block_hook(NULL);
  server_count(s, &s->live_calls, -1);
}

/* Whether the loop thread may run the handler itself: a blocking handler
 * whose request is all here (one message: it does not wait for the loop
 * to read more). */
static bool runs_on_loop_thread(const scall *call) {
  crpc_method_kind k = call->method->kind;
  return !server_method_is_async(call->method) &&
         (k == CRPC_UNARY || k == CRPC_SERVER_STREAMING) &&
         !call->server->opts.blocking_handlers_off_loop;
}

static void pool_queue(server_loop *sl, scall *call);

void server_pool_submit(server_loop *sl, scall *call) {
  /* One call in an iteration is run by the loop thread itself; with two
   * or more (a busy loop) all go to the pool: the loop thread keeps
   * reading and writing for them instead of running one handler while
   * the standby and the pool trade the loop. */
  scall *first = crpc_loop_cancel_outside(sl->loop);
  if (first != NULL) {
    pool_queue(sl, first);
  } else if (runs_on_loop_thread(call) &&
             crpc_loop_run_outside(sl->loop, run_on_loop_thread, call)) {
    return;
  }
  pool_queue(sl, call);
}

static void pool_queue(server_loop *sl, scall *call) {
  crpc_server *s = sl->server;
  pthread_mutex_lock(&s->mu);
  call->work_next = NULL;
  if (s->work_tail != NULL) {
    s->work_tail->work_next = call;
  } else {
    s->work_head = call;
  }
  s->work_tail = call;
  s->n_queued++;
  bool wake = pool_wake_locked(s);
  /* More queued than idle threads (those signalled but not yet running
   * count: they will take one each): the rest wait for a busy handler to
   * return, which one that blocks may never do, so the starve check
   * watches. (It used to watch only when no idle thread was left to wake,
   * judged here: a burst that found two idle threads, one signalled and
   * not yet awake, queued six calls unwatched, and with both threads
   * parked in endless client streams the six never ran.) */
  bool watch = s->n_queued > s->n_idle;
  if (watch) sl->pool_taken_seen = s->pool_taken;
  pthread_mutex_unlock(&s->mu);
  if (wake) pthread_cond_signal(&s->work_cond);
  if (watch && !crpc_loop_timer_active(&sl->pool_timer)) {
    crpc_loop_timer_start(&sl->pool_timer, crpc_now_ns() + POOL_STARVE_NS);
  }
}

/* ---- shutdown ------------------------------------------------------------*/

/* Runs fn (or count_fn, summing its results) on every loop's thread and
 * waits for all of them: closures posted before a stop are not guaranteed
 * to run before the loop returns. */
typedef struct sync_call {
  server_loop *sl;
  void (*fn)(server_loop *);
  size_t (*count_fn)(const server_loop *);
  size_t count;
  bool done;
} sync_call;

static void sync_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  sync_call *sc = arg;
  if (sc->fn != NULL) {
    sc->fn(sc->sl);
  } else {
    sc->count = sc->count_fn(sc->sl);
  }
  crpc_server *s = sc->sl->server;
  pthread_mutex_lock(&s->mu);
  sc->done = true;
  pthread_cond_broadcast(&s->idle_cond);
  pthread_mutex_unlock(&s->mu);
}

static size_t on_loops(crpc_server *s, void (*fn)(server_loop *),
                       size_t (*count_fn)(const server_loop *)) {
  sync_call *sc = calloc((size_t)s->n_loops, sizeof(*sc));
  if (sc == NULL) return 0;
  for (int i = 0; i < s->n_loops; i++) {
    sc[i] = (sync_call){&s->loops[i], fn, count_fn, 0, false};
    if (crpc_loop_post(s->loops[i].loop, sync_fn, &sc[i]) != 0) {
      sc[i].done = true;
    }
  }
  size_t sum = 0;
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n_loops; i++) {
    while (!sc[i].done) pthread_cond_wait(&s->idle_cond, &s->mu);
    sum += sc[i].count;
  }
  pthread_mutex_unlock(&s->mu);
  free(sc);
  return sum;
}

static void run_on_loops(crpc_server *s, void (*fn)(server_loop *)) {
  on_loops(s, fn, NULL);
}

/* This loop's connections that sent the first GOAWAY and not yet the
 * final one. Loop thread. */
static size_t count_notices(const server_loop *sl) {
  size_t n = 0;
  for (const sconn *c = sl->conns; c != NULL; c = c->next) {
    if (!c->h2.closed && !c->h2.close_pending &&
        c->goaway == SCONN_NOTICE_SENT) {
      n++;
    }
  }
  return n;
}

/* Waits, within ctx, until every connection has sent its final GOAWAY (or
 * closed). Until then a client may still open streams: those it sent
 * before the first GOAWAY reached it. They are below the final GOAWAY's
 * last stream id, so neither a proxy nor a client may send them again:
 * they must be served, and they count in live_calls only once they have
 * arrived. Without this wait a server with no call running at that
 * moment cancelled its root at once, and such a stream was answered
 * UNAVAILABLE "server shutting down" (issue 16: one call in 63,381
 * through nginx during a rolling restart). The first GOAWAY's PING comes
 * back within a round trip (or CRPC_SERVER_GOAWAY_PING_WAIT ends the
 * wait); polled every millisecond, as shutdown happens once. */
static void wait_final_goaways(crpc_server *s, const crpc_ctx *ctx) {
  while (on_loops(s, NULL, count_notices) + atomic_load(&s->handoffs) > 0 &&
         crpc_ctx_sleep(ctx, CRPC_MILLISECOND) == CRPC_OK) {
  }
}

static void drain_fn(server_loop *sl) {
  crpc_server *s = sl->server;
  if (sl == &s->loops[0]) { /* the listeners' loop */
    for (size_t i = 0; i < s->n_listeners; i++) {
      server_listener *l = &s->listeners[i];
      if (l->fd < 0) continue;
      server_accept_queued(l);
      crpc_loop_io_stop(&l->io);
      crpc_loop_timer_stop(&l->backoff);
      close(l->fd);
      l->fd = -1;
      server_cz_listener_closed(l);
      if (l->unix_path[0] != '\0') unlink(l->unix_path);
    }
  }
  server_conns_drain(sl);
}

/* Waits until every connection has closed or ctx is done. */
static void wait_conns(crpc_server *s, const crpc_ctx *ctx) {
  pthread_mutex_lock(&s->mu);
  while (s->live_conns > 0) {
    if (crpc_ctx_wait_cond(ctx, &s->idle_cond, &s->mu) != CRPC_OK) break;
  }
  pthread_mutex_unlock(&s->mu);
}

/* Waits until no handler runs or ctx is done. */
static void wait_calls(crpc_server *s, const crpc_ctx *ctx) {
  pthread_mutex_lock(&s->mu);
  while (s->live_calls > 0) {
    if (crpc_ctx_wait_cond(ctx, &s->idle_cond, &s->mu) != CRPC_OK) break;
  }
  pthread_mutex_unlock(&s->mu);
}

void crpc_server_shutdown(crpc_server *s, int64_t grace_ns) {
  if (s->shut_down) return;
  s->shut_down = true;
  /* Before anything drains: health turns NOT_SERVING while calls still
   * run, so probes and proxies see it first (crpc/server_info.h). */
  server_run_hooks(s, CRPC_SERVER_SHUTDOWN_STARTED);
  if (!s->started) {
    for (size_t i = 0; i < s->n_listeners; i++) {
      close(s->listeners[i].fd);
      server_cz_listener_closed(&s->listeners[i]);
      if (s->listeners[i].unix_path[0] != '\0') {
        unlink(s->listeners[i].unix_path);
      }
    }
    s->n_listeners = 0;
    return;
  }
  atomic_store(&s->draining, true);
  run_on_loops(s, drain_fn);
  crpc_ctx *grace =
      crpc_ctx_with_timeout(crpc_ctx_background(), grace_ns > 0 ? grace_ns : 0);
  if (grace != NULL) {
    wait_final_goaways(s, grace);
    wait_calls(s, grace);
  }
  /* Past the grace: every call still running is cancelled (its kick sends
   * UNAVAILABLE), then we wait for the handlers to notice. */
  crpc_ctx_cancel_cause(s->root, CRPC_UNAVAILABLE, CRPC_ORIGIN_SHUTDOWN,
                        "server shutting down");
  wait_calls(s, crpc_ctx_background());
  /* What is left of the grace (at most the final GOAWAY's PING wait plus a
   * linger) lets connections end gracefully, their last statuses and
   * GOAWAY read by the client before the close; then the rest are cut. */
  if (grace != NULL) {
    crpc_ctx *ends = crpc_ctx_with_timeout(
        grace, CRPC_SERVER_GOAWAY_PING_WAIT + CRPC_H2_LINGER_NS);
    if (ends != NULL) wait_conns(s, ends);
    crpc_ctx_release(ends);
  }
  crpc_ctx_release(grace);
  atomic_store(&s->conns_closing, true);
  run_on_loops(s, server_conns_close_all);
  /* Every call struct goes away on the loop (its kicks and stream close);
   * only then may the loop stop, so no late on_cancel can post to a loop
   * being freed. */
  pthread_mutex_lock(&s->mu);
  while (s->live_structs > 0) pthread_cond_wait(&s->idle_cond, &s->mu);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < s->n_loops; i++) {
    crpc_loop_stop_and_join(s->loops[i].loop);
  }
  pthread_mutex_lock(&s->mu);
  s->pool_stop = true;
  pthread_cond_broadcast(&s->work_cond);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i], NULL);
  s->n_threads = 0;
}

void crpc_server_free(crpc_server *s) {
  if (s == NULL) return;
  crpc_server_shutdown(s, 0);
  /* Runs closures still queued (kicks, connection frees) on this thread. */
  for (int i = 0; i < s->n_loops; i++) crpc_loop_free(s->loops[i].loop);
  /* No call, loop or handler is left: services may free their state. */
  server_run_hooks(s, CRPC_SERVER_FREED);
  server_cz_free(s);
  server_info_free(s);
  free(s->loops);
  crpc_ctx_release(s->root);
  for (size_t i = 0; i < s->n_methods; i++) free(s->methods[i].path);
  free(s->methods);
  icpt_server_chain_free(s->icpt);
  server_tls_free(s);
  server_peer_table_free(s->peer_resets);
  free(s->listeners);
  free(s->threads);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->work_cond);
  pthread_cond_destroy(&s->idle_cond);
  free(s);
}
