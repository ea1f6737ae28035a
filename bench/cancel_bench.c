/*
 * cancel_bench - crpc's side of the team's shared cancel-latency protocol
 * (shared/bench/cancel: RESULTS.md defines the scenarios, and the grpc-go,
 * gRPC C++ and grpcio anchors there implement the same protocol). It prints
 * the anchors' JSON lines, so their aggregate.py and
 * bench/cancel_side_by_side.sh put crpc beside them.
 *
 *   cancel_bench [-iters N] [-warmup M] [-mode blocking|async]
 *                [-scenarios idle,busy,busy-reads256,deadline]
 *                [-reads 4] [-reads-long 256] [-deadline-ms 5] [-poll-us N]
 *                [-client-poll-us N] [-late-us N] [-port N] [-load-wait N]
 *
 * One process: a crpc server and one crpc channel (one TCP connection, reused
 * by every call) over loopback 127.0.0.1, so both sides read one
 * CLOCK_MONOTONIC (crpc_now_ns). The RPCs are server-streaming
 * /cancelbench.Bench/Idle and /cancelbench.Bench/Busy; the request is the
 * iteration number in decimal and every response is 1 KiB of raw bytes.
 *
 *   idle      the handler sends 1 message and waits; the client reads it,
 *             takes t0, publishes it in g_t0 and cancels its call ctx.
 *             cancel_to_ctxdone_us = t1 - t0, t1 = the server observing the
 *             cancel (below).
 *   busy      the handler sends 1 KiB flat out; the client reads -reads
 *             messages, then t0 and cancel as in idle. Also
 *             cancel_to_send_error_us (first failing send - t0),
 *             sends_ok_after_t0 (sends returning OK while g_t0 was set),
 *             sends_ok_total, and, beyond the anchors,
 *             sends_ok_after_ctxdone (sends begun after t1 that returned
 *             OK: crpc promises none). busy-readsN reads -reads-long
 *             messages first, so the stream is in steady state when
 *             cancelled. For idle and busy, crpc only: t1 - t0 split where
 *             the RST_STREAM reached the server (the kernel's receive
 *             stamp, crpc_server_call_cancel_stats's event_ns):
 *             split_cancel_to_arrival_us (the client's cancel path and the
 *             wire) and split_arrival_to_ctxdone_us (the server's wake-up
 *             and its work).
 *   deadline  the idle handler; the client's ctx has a deadline of
 *             start + 5 ms (start = crpc_now_ns() where the deadline is
 *             computed) and never cancels. server_ctxdone_minus_deadline_us =
 *             t1 - (start + 5 ms); client_error_minus_deadline_us = the
 *             client's DEADLINE_EXCEEDED recv - (start + 5 ms). Iterations
 *             whose first message came after the deadline are dropped and
 *             counted (skipped_first_msg_late). The server's lateness is
 *             split at the server ctx's own deadline (its arrival time +
 *             grpc-timeout): server_deadline_minus_deadline_us (what the
 *             trip over the wire adds) + server_ctxdone_minus_server_
 *             deadline_us (how late the server's timer fires).
 *
 * t1 in -mode blocking (crpc/server.h: a handler thread, or the loop's own
 * thread lent to the call while its standby runs the loop): entry of
 * an on_cancel callback registered on the handler's ctx, which runs on the
 * thread that ends the ctx (the server loop, reading the RST_STREAM or
 * firing the call's grpc-timeout deadline), like the anchors' OnCancel /
 * add_callback. The handler itself waits in crpc_ctx_wait (idle) or sends
 * (busy).
 * t1 in -mode async (a reactor on the loop thread): its on_cancel's entry.
 * -poll-us N: the server's poll_ns (crpc/server.h; Impl gets "-poll");
 * -client-poll-us N: the channel's, apart because a polling client loop
 * cannot be borrowed by the cancelling thread (README "Where a cancel's
 * time goes"). -late-us N: print each deadline iteration over N us late,
 * and each idle or busy cancel the server saw over N us after t0, with their
 * CLOCK_MONOTONIC stamps (to match with a perf sched trace).
 * -port N (default: any free port; the first stderr line says which, once
 * it listens: bench/bench_lib.sh), -load-wait N: h2load may load this
 * server (cancel_load.h);
 * -client-cpu N keeps the client's threads (this one, the channel's loop,
 * the ctx timer thread) on CPU N, apart from the server's.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "crpc/server_async.h"
#include "bench/cancel_flags.h"
#include "bench/cancel_load.h"
#include "bench/cancel_samples.h"

#define IDLE_METHOD "/cancelbench.Bench/Idle"
#define BUSY_METHOD "/cancelbench.Bench/Busy"
#define MSG_SIZE 1024

static const uint8_t g_payload[MSG_SIZE];

/* t0 of the current iteration, published by the client just before it
 * cancels; 0 = not cancelled yet. Server code counts sends while it is set. */
static atomic_llong g_t0;

static void die(const char *what) {
  fprintf(stderr, "cancel_bench: %s\n", what);
  exit(1);
}

static void die_code(const char *what, crpc_code code) {
  fprintf(stderr, "cancel_bench: %s: %s\n", what, crpc_code_name(code));
  exit(1);
}

/* ---- results: server -> client ---------------------------------------- */

/* What the server side learned about one call. `id` is the request payload
 * (the iteration number), so a late result of an abandoned iteration is
 * recognised and dropped. */
typedef struct result {
  long id;
  int64_t t1;     /* the server observed the ctx done */
  int64_t srv_deadline; /* the server ctx's deadline (arrival + grpc-timeout) */
  int64_t event;  /* the RST_STREAM reached the server (its kernel stamp:
                     crpc_server_call_cancel_stats); 0 if not known */
  int64_t t1send; /* busy: the first send that failed */
  int64_t after;  /* busy: sends that returned OK while g_t0 was set */
  int64_t sent;   /* busy: sends that returned OK in all */
  int64_t late;   /* busy: sends begun once the server had seen the cancel
                     (t1 recorded) that still returned OK; crpc promises 0 */
} result;

/* A small ring: one result per call, and the client consumes each before
 * starting the next call, so it only ever holds stale results of skipped
 * deadline iterations; overwriting the oldest is harmless. */
#define RESULT_RING 16
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  result ring[RESULT_RING];
  unsigned head;
  unsigned count;
} g_results = {.mu = PTHREAD_MUTEX_INITIALIZER,
               .cv = PTHREAD_COND_INITIALIZER};

/* Called by handler threads and, in async mode, the loop thread: only a
 * short critical section, never a wait. */
static void post_result(const result *r) {
  pthread_mutex_lock(&g_results.mu);
  unsigned tail = (g_results.head + g_results.count) % RESULT_RING;
  g_results.ring[tail] = *r;
  if (g_results.count < RESULT_RING) {
    g_results.count++;
  } else {
    g_results.head = (g_results.head + 1) % RESULT_RING;
  }
  pthread_mutex_unlock(&g_results.mu);
  /* After the unlock: the woken client thread would block on the mutex. */
  pthread_cond_signal(&g_results.cv);
}

/* Waits up to timeout_ns for the result of call `id`, dropping older ones.
 * The time limit is a ctx deadline, crpc's way to bound a wait. */
static bool wait_result(long id, int64_t timeout_ns, result *out) {
  crpc_ctx *limit = crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ns);
  if (limit == NULL) die("out of memory");
  bool found = false;
  pthread_mutex_lock(&g_results.mu);
  for (;;) {
    while (!found && g_results.count > 0) {
      result r = g_results.ring[g_results.head];
      g_results.head = (g_results.head + 1) % RESULT_RING;
      g_results.count--;
      if (r.id == id) {
        *out = r;
        found = true;
      }
    }
    if (found || crpc_ctx_is_done(limit)) break;
    crpc_ctx_wait_cond(limit, &g_results.cv, &g_results.mu);
  }
  pthread_mutex_unlock(&g_results.mu);
  /* After unlocking: the release may cancel, which locks mu (ctx.h). */
  crpc_ctx_release(limit);
  return found;
}

static result must_result(long id) {
  result r;
  if (!wait_result(id, 10 * CRPC_SECOND, &r)) die("no server result in 10 s");
  return r;
}

/* ---- blocking handlers (crpc/server.h) ---------------------------------- */

/* An on_cancel registration that records when the ctx became done. The
 * callback runs on the cancelling thread; the handler learns of the end
 * from its own wait or send, possibly before the callback has finished, so
 * it waits on `cv` for the timestamp (a bounded wait: the callback is
 * already running). */
typedef struct cancel_seen {
  crpc_on_cancel reg;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_llong t1; /* 0 until the callback ran; read lock-free by busy */
  bool registered;
} cancel_seen;

static void note_ctx_done(void *arg, const crpc_cause *cause) {
  int64_t now = crpc_now_ns(); /* first: this is t1 */
  (void)cause;
  cancel_seen *s = arg;
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->t1, now);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void watch_start(cancel_seen *s, const crpc_ctx *ctx) {
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  atomic_init(&s->t1, 0);
  s->registered = crpc_ctx_on_cancel(ctx, &s->reg, note_ctx_done, s);
  if (!s->registered) atomic_store(&s->t1, crpc_now_ns()); /* done: now */
}

/* Call once the handler knows its ctx is done. Returns t1; `fallback` (the
 * handler's own observation) only if the cancel had not reached the
 * callback yet, which removing it then prevents. */
static int64_t watch_end(cancel_seen *s, int64_t fallback) {
  int64_t t1 = atomic_load(&s->t1);
  if (s->registered) {
    if (crpc_ctx_remove_on_cancel(&s->reg) == CRPC_ON_CANCEL_REMOVED) {
      t1 = fallback;
    } else { /* RAN or RUNNING: the callback stores t1 */
      pthread_mutex_lock(&s->mu);
      while (atomic_load(&s->t1) == 0) pthread_cond_wait(&s->cv, &s->mu);
      t1 = atomic_load(&s->t1);
      pthread_mutex_unlock(&s->mu);
    }
  }
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  return t1;
}

/* Parses the decimal iteration number of a request message. */
static long parse_id(const crpc_message *m) {
  char buf[32];
  size_t n = m->len < sizeof(buf) - 1 ? m->len : sizeof(buf) - 1;
  memcpy(buf, m->data, n);
  buf[n] = '\0';
  return strtol(buf, NULL, 10);
}

static crpc_code recv_id(crpc_server_call *call, long *id) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  if (m.end) return CRPC_INVALID_ARGUMENT; /* no request */
  *id = parse_id(&m);
  free(m.data);
  return CRPC_OK;
}

/* When the cancel reached this server (crpc's own accounting). */
static int64_t cancel_event(crpc_server_call *call) {
  crpc_server_cancel_stats st;
  crpc_server_call_cancel_stats(call, &st);
  return st.event_ns;
}

/* idle: one message, then wait (ctx-aware) until the call is over. */
static crpc_code idle_handler(crpc_server_call *call, const crpc_ctx *ctx,
                              void *user_data) {
  (void)user_data;
  long id;
  crpc_code c = recv_id(call, &id);
  if (c != CRPC_OK) return c;
  cancel_seen seen;
  watch_start(&seen, ctx);
  c = crpc_server_call_send(call, g_payload, sizeof(g_payload));
  if (c == CRPC_OK) c = crpc_ctx_wait(ctx);
  result r = {.id = id,
              .t1 = watch_end(&seen, crpc_now_ns()),
              .srv_deadline = crpc_ctx_deadline(ctx),
              .event = cancel_event(call)};
  post_result(&r);
  return c;
}

/* busy: send until a send fails; crpc_server_call_send blocks (ctx-aware)
 * only while the call's send buffer is full. */
static crpc_code busy_handler(crpc_server_call *call, const crpc_ctx *ctx,
                              void *user_data) {
  (void)user_data;
  long id;
  crpc_code c = recv_id(call, &id);
  if (c != CRPC_OK) return c;
  cancel_seen seen;
  watch_start(&seen, ctx);
  int64_t sent = 0, after = 0, late = 0;
  for (;;) {
    bool knew = atomic_load(&seen.t1) != 0; /* before the send begins */
    c = crpc_server_call_send(call, g_payload, sizeof(g_payload));
    if (c != CRPC_OK) break;
    sent++;
    if (atomic_load_explicit(&g_t0, memory_order_acquire) != 0) after++;
    if (knew) late++;
  }
  int64_t t1send = crpc_now_ns();
  result r = {.id = id,
              .t1 = watch_end(&seen, t1send),
              .event = cancel_event(call),
              .t1send = t1send,
              .after = after,
              .sent = sent,
              .late = late};
  post_result(&r);
  return c;
}

/* ---- async reactors (crpc/server_async.h) ------------------------------- */

/* Per-call state; every callback of one call runs on its loop thread, one at
 * a time, so no locking. */
typedef struct async_call {
  bool busy;
  bool started;     /* the request arrived and sending began */
  bool send_failed; /* a send returned an error: stop sending */
  long id;
  int64_t t1, t1send, after, sent, late; /* as in struct result */
  int64_t srv_deadline, event;            /* as in struct result */
} async_call;

static const char k_idle_tag, k_busy_tag; /* user_data: which method */

static void *async_on_start(crpc_server_call *call, const crpc_ctx *ctx,
                            void *user_data) {
  (void)call;
  async_call *a = calloc(1, sizeof(*a));
  if (a == NULL) die("out of memory"); /* a loop thread cannot fail softly */
  a->busy = user_data == &k_busy_tag;
  a->srv_deadline = crpc_ctx_deadline(ctx);
  return a;
}

/* One send; returns false (and records when) once sends fail. */
static bool async_send_one(crpc_server_call *call, async_call *a) {
  bool knew = a->t1 != 0; /* on_cancel already ran */
  crpc_code c = crpc_server_call_send_async(call, g_payload, sizeof(g_payload),
                                            0);
  if (c != CRPC_OK) {
    a->t1send = crpc_now_ns();
    a->send_failed = true;
    return false;
  }
  a->sent++;
  if (atomic_load_explicit(&g_t0, memory_order_acquire) != 0) a->after++;
  if (knew) a->late++;
  return true;
}

/* Busy: fill the send buffer; on_send_ready resumes once it drains. */
static void async_pump(crpc_server_call *call, async_call *a) {
  while (!a->send_failed && crpc_server_call_can_send(call)) {
    if (!async_send_one(call, a)) break;
  }
}

/* Sending starts when the request is in (not in on_start), as the anchors'
 * handlers do after reading it, and because it carries the id. */
static void async_on_message(crpc_server_call *call, const crpc_message *msg,
                             void *state) {
  async_call *a = state;
  if (msg->end || a->started) return;
  a->started = true;
  a->id = parse_id(msg);
  if (a->busy) {
    async_pump(call, a);
  } else {
    async_send_one(call, a);
  }
}

static void async_on_send_ready(crpc_server_call *call, void *state) {
  async_call *a = state;
  if (a->busy && a->started) async_pump(call, a);
}

/* server_async.h says the state is valid from on_start to on_done, but
 * crpc skips on_start for a call whose ctx is already done when it is
 * dispatched (scall_async_start: the deadline passed or the client reset
 * before the loop got to it) and still delivers on_cancel and on_done,
 * with a NULL state. Counted and reported at exit instead of crashing;
 * such calls never sent their first message, so the client side drops
 * them (skipped_first_msg_late) and no statistic is affected. */
static atomic_int g_cancel_without_start;

static void async_on_cancel(crpc_server_call *call, const crpc_cause *cause,
                            void *state) {
  int64_t now = crpc_now_ns(); /* first: this is t1 */
  async_call *a = state;
  if (a == NULL) {
    atomic_fetch_add(&g_cancel_without_start, 1);
    crpc_server_call_finish(call, cause->code, NULL);
    return;
  }
  a->t1 = now;
  a->event = cancel_event(call);
  /* A busy reactor stops being asked to send (no on_send_ready after
   * on_cancel), so no send would ever fail by itself. Make the send its
   * pump would make next: it must fail at once (server_async.h), which
   * gives cancel_to_send_error_us; an OK here would count in
   * sends_ok_after_ctxdone, a broken promise. */
  if (a->busy && a->started && !a->send_failed) async_send_one(call, a);
  crpc_server_call_finish(call, cause->code, NULL);
}

static void async_on_done(crpc_server_call *call, void *state) {
  (void)call;
  async_call *a = state;
  if (a == NULL) return; /* on_start never ran: see g_cancel_without_start */
  result r = {.id = a->id,
              .t1 = a->t1,
              .srv_deadline = a->srv_deadline,
              .event = a->event,
              .t1send = a->t1send,
              .after = a->after,
              .sent = a->sent,
              .late = a->late};
  post_result(&r);
  free(a);
}

static const crpc_server_reactor k_reactor = {
    .on_start = async_on_start,
    .on_message = async_on_message,
    .on_send_ready = async_on_send_ready,
    .on_cancel = async_on_cancel,
    .on_done = async_on_done,
};

/* ---- output --------------------------------------------------------------- */

static const char *g_impl = "crpc-blocking";

static void emit(const char *scenario, const char *metric, samples *s) {
  samples_emit(g_impl, scenario, metric, s);
}

/* ---- client side -------------------------------------------------------- */


/* Starts a call whose only request is the next iteration number. On an
 * error *call may still need crpc_call_free (NULL is fine). */
static crpc_code try_start_call(bench *b, const crpc_ctx *ctx,
                                const char *method, crpc_call **call) {
  char req[32];
  int n = snprintf(req, sizeof(req), "%ld", ++b->iter);
  *call = NULL;
  crpc_code c = crpc_call_start(b->ch, ctx, method, NULL, call);
  if (c == CRPC_OK) c = crpc_call_send(*call, req, (size_t)n);
  if (c == CRPC_OK) c = crpc_call_close_send(*call);
  return c;
}

static crpc_call *start_call(bench *b, const crpc_ctx *ctx,
                             const char *method) {
  crpc_call *call;
  crpc_code c = try_start_call(b, ctx, method, &call);
  if (c != CRPC_OK) die_code("starting the call", c);
  return call;
}

/* One response; the end of the stream counts as an error here (INTERNAL),
 * since every scenario's server streams until cancelled. */
static crpc_code recv_one(crpc_call *call) {
  crpc_message m;
  crpc_code c = crpc_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  if (m.end) return CRPC_INTERNAL;
  free(m.data);
  return CRPC_OK;
}

/* Reads `reads` messages, then takes t0, publishes it and cancels. */
static int64_t read_then_cancel(crpc_ctx *ctx, crpc_call *call, int reads) {
  for (int k = 0; k < reads; k++) {
    crpc_code c = recv_one(call);
    if (c != CRPC_OK) die_code("read before cancelling", c);
  }
  int64_t t0 = crpc_now_ns();
  atomic_store_explicit(&g_t0, t0, memory_order_release);
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "cancel_bench");
  return t0;
}

/* cancel_to_ctxdone_us split where the RST_STREAM reached the server:
 * the client's cancel path and the wire, then the server's wake-up and
 * its work (crpc only: the anchors report no such time). */
typedef struct split {
  samples wire, server;
} split;

static void push_split(split *sp, int64_t t0, const result *r) {
  if (r->event == 0) return;
  samples_push(&sp->wire, (double)(r->event - t0) / 1e3);
  samples_push(&sp->server, (double)(r->t1 - r->event) / 1e3);
}

/* -late-us for the cancel scenarios: a cancel the server saw over N us
 * after t0, with its CLOCK_MONOTONIC stamps (see the deadline's). */
static void note_late_cancel(const bench *b, const char *scenario, int64_t t0,
                             const result *r) {
  if (b->late_us <= 0 || r->t1 - t0 <= b->late_us * 1000LL) return;
  fprintf(stderr,
          "late: %s cancel t0 %lld ns, reset arrived %lld ns, ctx done %lld "
          "ns: %.1f us\n",
          scenario, (long long)t0, (long long)r->event, (long long)r->t1,
          (double)(r->t1 - t0) / 1e3);
}

static void emit_split(const char *scenario, split *sp) {
  if (sp->wire.n == 0) return; /* no stamp came back: nothing to split */
  emit(scenario, "split_cancel_to_arrival_us", &sp->wire);
  emit(scenario, "split_arrival_to_ctxdone_us", &sp->server);
}

static void run_idle(bench *b) {
  samples lat = {0};
  split sp = {0};
  for (int i = 0; i < b->warmup + b->iters; i++) {
    atomic_store(&g_t0, 0);
    crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
    if (ctx == NULL) die("out of memory");
    crpc_call *call = start_call(b, ctx, IDLE_METHOD);
    int64_t t0 = read_then_cancel(ctx, call, 1);
    result r = must_result(b->iter);
    crpc_call_free(call);
    crpc_ctx_release(ctx);
    if (i >= b->warmup) {
      samples_push(&lat, (double)(r.t1 - t0) / 1e3);
      push_split(&sp, t0, &r);
      note_late_cancel(b, "idle", t0, &r);
    }
  }
  emit("idle", "cancel_to_ctxdone_us", &lat);
  emit_split("idle", &sp);
}

static void run_busy(bench *b, const char *scenario, int reads) {
  samples lat = {0}, lat_send = {0}, after = {0}, sent = {0}, late = {0};
  split sp = {0};
  for (int i = 0; i < b->warmup + b->iters; i++) {
    atomic_store(&g_t0, 0);
    crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
    if (ctx == NULL) die("out of memory");
    crpc_call *call = start_call(b, ctx, BUSY_METHOD);
    int64_t t0 = read_then_cancel(ctx, call, reads);
    result r = must_result(b->iter);
    crpc_call_free(call);
    crpc_ctx_release(ctx);
    if (i >= b->warmup) {
      samples_push(&lat, (double)(r.t1 - t0) / 1e3);
      push_split(&sp, t0, &r);
      note_late_cancel(b, scenario, t0, &r);
      samples_push(&lat_send, (double)(r.t1send - t0) / 1e3);
      samples_push(&after, (double)r.after);
      samples_push(&sent, (double)r.sent);
      samples_push(&late, (double)r.late);
    }
  }
  emit(scenario, "cancel_to_ctxdone_us", &lat);
  emit(scenario, "cancel_to_send_error_us", &lat_send);
  emit(scenario, "sends_ok_after_t0", &after);
  emit(scenario, "sends_ok_total", &sent);
  emit(scenario, "sends_ok_after_ctxdone", &late);
  emit_split(scenario, &sp);
}

static void run_deadline(bench *b) {
  samples lat = {0}, lat_cli = {0}, skipped_s = {0};
  samples wire = {0}, timer = {0}; /* lat split at the server's deadline */
  int skipped = 0;
  atomic_store(&g_t0, 0); /* never set: nothing here counts sends */
  for (int i = 0; lat.n < b->iters; i++) {
    int64_t start = crpc_now_ns();
    int64_t deadline = start + b->deadline_ms * CRPC_MILLISECOND;
    crpc_ctx *ctx = crpc_ctx_with_deadline(crpc_ctx_background(), deadline);
    if (ctx == NULL) die("out of memory");
    crpc_call *call;
    crpc_code c = try_start_call(b, ctx, IDLE_METHOD, &call);
    if (c == CRPC_OK) c = recv_one(call);
    if (c != CRPC_OK) {
      /* The first message came after the deadline (a VM stall; with a
       * tiny -deadline-ms even the start may be too late): drop the
       * iteration; take the handler's result if it ran. */
      if (c != CRPC_DEADLINE_EXCEEDED) die_code("deadline: first read", c);
      skipped++;
      result ignored;
      wait_result(b->iter, CRPC_SECOND, &ignored);
      crpc_call_free(call);
      crpc_ctx_release(ctx);
      continue;
    }
    c = recv_one(call);
    int64_t tc = crpc_now_ns();
    if (c != CRPC_DEADLINE_EXCEEDED) die_code("deadline: second read", c);
    result r = must_result(b->iter);
    crpc_call_free(call);
    crpc_ctx_release(ctx);
    if (i >= b->warmup) {
      samples_push(&lat, (double)(r.t1 - deadline) / 1e3);
      samples_push(&lat_cli, (double)(tc - deadline) / 1e3);
      samples_push(&wire, (double)(r.srv_deadline - deadline) / 1e3);
      samples_push(&timer, (double)(r.t1 - r.srv_deadline) / 1e3);
      if (b->late_us > 0 && r.t1 - r.srv_deadline > b->late_us * 1000LL) {
        /* CLOCK_MONOTONIC ns: match them with `perf record -k
         * CLOCK_MONOTONIC -a -e 'sched:*'` to see who had the CPU. */
        fprintf(stderr,
                "late: server deadline %lld ns, ctx done %lld ns: %.1f us "
                "late\n",
                (long long)r.srv_deadline, (long long)r.t1,
                (double)(r.t1 - r.srv_deadline) / 1e3);
      }
    }
  }
  samples_push(&skipped_s, skipped);
  emit("deadline", "server_ctxdone_minus_deadline_us", &lat);
  emit("deadline", "client_error_minus_deadline_us", &lat_cli);
  emit("deadline", "skipped_first_msg_late", &skipped_s);
  emit("deadline", "server_deadline_minus_deadline_us", &wire);
  emit("deadline", "server_ctxdone_minus_server_deadline_us", &timer);
}

/* ---- main --------------------------------------------------------------- */

static void add_methods(crpc_server *s, bool async) {
  crpc_code c1, c2;
  if (async) {
    c1 = crpc_server_add_async_method(s, IDLE_METHOD, CRPC_SERVER_STREAMING,
                                      &k_reactor, (void *)&k_idle_tag);
    c2 = crpc_server_add_async_method(s, BUSY_METHOD, CRPC_SERVER_STREAMING,
                                      &k_reactor, (void *)&k_busy_tag);
  } else {
    c1 = crpc_server_add_method(s, IDLE_METHOD, CRPC_SERVER_STREAMING,
                                idle_handler, NULL);
    c2 = crpc_server_add_method(s, BUSY_METHOD, CRPC_SERVER_STREAMING,
                                busy_handler, NULL);
  }
  if (c1 != CRPC_OK) die_code("registering " IDLE_METHOD, c1);
  if (c2 != CRPC_OK) die_code("registering " BUSY_METHOD, c2);
}

/* The client's threads are made after this (the channel's loop on its
 * first call, the ctx timer thread on the first deadline) and inherit it. */
static void pin_client(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  if (rc != 0) die("-client-cpu: pthread_setaffinity_np failed");
}

int main(int argc, char **argv) {
  options o = {.b = {.iters = 1000, .warmup = 100, .reads = 4,
                     .reads_long = 256, .deadline_ms = 5},
               .scenarios = NULL,
               .client_cpu = -1};
  cancel_flags_parse(argc, argv, &o);
  char long_name[32];
  snprintf(long_name, sizeof(long_name), "busy-reads%d", o.b.reads_long);
  bool want[4] = {false, false, false, false};
  if (o.scenarios != NULL) {
    cancel_flags_scenarios(&o, long_name, want);
  } else {
    /* All, as the anchors: a 0 count skips a busy variant. */
    want[0] = want[3] = true;
    want[1] = o.b.reads > 0;
    want[2] = o.b.reads_long > 0;
  }
  if ((want[1] && o.b.reads == 0) || (want[2] && o.b.reads_long == 0)) {
    fprintf(stderr, "cancel_bench: a busy scenario needs reads > 0\n");
    return 2;
  }
  static char impl[32];
  snprintf(impl, sizeof(impl), "%s%s", o.async ? "crpc-async" : "crpc-blocking",
           o.poll_us > 0 ? "-poll" : "");
  g_impl = impl;

  crpc_server_options so = {0};
  so.poll_ns = (int64_t)o.poll_us * CRPC_MICROSECOND;
  crpc_server *server = crpc_server_new(&so);
  if (server == NULL) die("crpc_server_new failed");
  add_methods(server, o.async);
  cancel_load_register(server);
  int port = 0;
  char addr[32];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", o.port);
  if (crpc_server_listen(server, addr, &port) != CRPC_OK ||
      crpc_server_start(server) != CRPC_OK) {
    die("server listen/start failed");
  }
  if (o.client_cpu >= 0) pin_client(o.client_cpu);
  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  crpc_channel_options co = {0};
  co.poll_ns = (int64_t)o.client_poll_us * CRPC_MICROSECOND;
  o.b.ch = crpc_channel_new(target, &co);
  if (o.b.ch == NULL) die("crpc_channel_new failed");
  fprintf(stderr,
          "crpc cancel_bench mode=%s poll_us=%d client_poll_us=%d port=%d\n",
          o.async ? "async" : "blocking", o.poll_us, o.client_poll_us, port);
  cancel_load_wait(o.load_wait);

  if (want[0]) run_idle(&o.b);
  if (want[1]) run_busy(&o.b, "busy", o.b.reads);
  if (want[2]) run_busy(&o.b, long_name, o.b.reads_long);
  if (want[3]) run_deadline(&o.b);
  cancel_load_report();

  crpc_channel_free(o.b.ch);
  crpc_server_free(server);
  int orphans = atomic_load(&g_cancel_without_start);
  if (orphans != 0) {
    fprintf(stderr, "cancel_bench: WARNING: crpc called on_cancel with no "
                    "on_start (NULL state) for %d call(s), contrary to "
                    "crpc/server_async.h\n", orphans);
  }
  /* crpc's leak check, as its tests do: every ctx made here is released. */
  size_t live = crpc_ctx_live_count();
  if (live != 0) {
    fprintf(stderr, "cancel_bench: %zu ctx(s) never released\n", live);
    crpc_ctx_dump(stderr);
    return 1;
  }
  return 0;
}
