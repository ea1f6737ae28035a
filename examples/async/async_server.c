/*
 * async_server - serves asyncdemo.Jobs on 127.0.0.1 with the non-blocking
 * server API (crpc/server_async.h) on generated stubs.
 *
 *   async_server [--port N]     (default 50051; 0 picks a free port)
 *
 * Prints "listening on 127.0.0.1:<port>", then one line per streaming call
 * it ends, and serves until SIGINT/SIGTERM or EOF on a piped stdin
 * (examples/common/stop.h).
 *
 * Which thread runs what, and why nothing here may block on the loop:
 *
 *   loop threads (crpc's, one per CPU): each owns some connections. It reads
 *     and writes their sockets, fires their calls' deadlines and runs every
 *     callback below (echo, the Count, Work and Shout reactors) for their
 *     calls, one at a time. While a callback runs, nothing else on those
 *     connections moves: no request is read, no queued response drains, no
 *     cancel is seen. A callback that slept, waited for a lock held by slow
 *     code, did blocking I/O or waited on a ctx would stall every other call
 *     sharing its loop, including the very cancel that should stop it.
 *   worker threads (ours, one per Work call): run the slow part of Work. They
 *     may block, always in ctx-aware waits so a cancel wakes them, and touch
 *     the call only through send_async, can_send and finish, which crpc
 *     allows from any thread.
 *   main thread: set-up, then waits for the stop signal, shuts down.
 *
 * The four methods, one per style:
 *   Echo   inline unary handler: the reply is computed and queued inside the
 *          callback, with no thread hop at all.
 *   Count  server-streaming reactor: sends while the call's send buffer has
 *          room, resumes from on_send_ready once it drains (flow control).
 *   Work   reactor that hands the work, with the call's ctx, to a thread of
 *          its own; that thread sends progress and finishes the call.
 *   Shout  bidi reactor, a reply per request: stops taking requests
 *          (pause_recv) while the send buffer is full and takes them again
 *          (resume_recv) from on_send_ready, so a client that sends faster
 *          than it reads is held by HTTP/2 flow control, not by our memory.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpc/admin.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "crpc/server_async.h"
#include "examples/async/jobs.crpc.h"
#include "examples/common/stop.h"

/* ---- Echo: inline unary --------------------------------------------------
 * Runs on the loop thread as soon as the request is in. Inline is right here
 * because the work is a copy: cheaper than the two thread hops (loop ->
 * handler thread -> loop) a blocking handler costs when calls arrive
 * several at once, and it can never block. At high call rates those hops
 * are most of the cost of a small call. The
 * generated glue finishes the call with the returned status. */
static crpc_code echo(crpc_server_call *call, const crpc_ctx *ctx,
                      const Asyncdemo__EchoRequest *req, void *user_data) {
  (void)ctx; /* nothing to wait for; crpc skips us if it is already done */
  (void)user_data;
  Asyncdemo__EchoReply reply = ASYNCDEMO__ECHO_REPLY__INIT;
  reply.text = req->text; /* send_async copies: req may go when we return */
  return asyncdemo_jobs_echo_send_async(call, &reply);
}

/* ---- Count: a flow-controlled stream on the loop thread ------------------
 * send_async never blocks, so nothing stops a loop from queueing gigabytes
 * for a slow client. The reactor bounds memory itself: it sends while
 * crpc_server_call_can_send says there is room (stream_send_buffer, 64 KiB
 * by default) and otherwise returns, letting the loop write what is queued;
 * on_send_ready brings it back once the buffer has drained. All of this
 * state is touched on the call's loop thread only, so it needs no lock. */

typedef struct count_state {
  int32_t count, sent;
  size_t payload_size;
  int resumes; /* how often on_send_ready had to restart us */
} count_state;

static void *count_start(crpc_server_call *call, const crpc_ctx *ctx,
                         void *user_data) {
  (void)ctx;
  (void)user_data;
  count_state *s = calloc(1, sizeof *s);
  /* Finishing here is allowed; on_done then comes with a NULL state. */
  if (s == NULL) crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, NULL);
  return s;
}

/* Sends until done or out of room. Called from on_message and on_send_ready,
 * both on the loop thread. */
static void count_pump(crpc_server_call *call, count_state *s) {
  static uint8_t zeros[65536]; /* the payload; only its size matters */
  Asyncdemo__Tick tick = ASYNCDEMO__TICK__INIT;
  tick.payload.data = zeros;
  tick.payload.len = s->payload_size;
  while (s->sent < s->count) {
    /* No room: return and let the loop drain the buffer. Waiting here
     * instead would deadlock, since the loop is what drains it. If the ctx
     * is done, can_send says false too and on_cancel comes instead. */
    if (!crpc_server_call_can_send(call)) return;
    tick.seq = s->sent;
    crpc_code code = asyncdemo_jobs_count_send_async(call, &tick);
    if (code != CRPC_OK) {
      /* A done ctx means on_cancel is on its way and will finish. */
      if (!crpc_ctx_is_done(crpc_server_call_ctx(call)))
        crpc_server_call_finish(call, code, "cannot send a tick");
      return;
    }
    s->sent++;
  }
  /* stdout is a file or a terminal here; a real server would not write to
   * something that might block from the loop thread. */
  printf("Count: sent %d ticks, resumed %d times by on_send_ready\n", s->sent,
         s->resumes);
  crpc_server_call_finish(call, CRPC_OK, NULL);
}

static void count_message(crpc_server_call *call,
                          const Asyncdemo__CountRequest *req, void *state) {
  count_state *s = state;
  if (req == NULL) return; /* the client's half-close: nothing to do */
  if (req->count < 0 || req->count > 100000 || req->payload_size < 0 ||
      req->payload_size > 65536) {
    crpc_server_call_finish(call, CRPC_INVALID_ARGUMENT,
                            "count must be 0..100000, payload_size 0..65536");
    return;
  }
  s->count = req->count;
  s->payload_size = (size_t)req->payload_size;
  count_pump(call, s);
}

static void count_send_ready(crpc_server_call *call, void *state) {
  count_state *s = state;
  s->resumes++;
  count_pump(call, s);
}

/* The client reset the stream, its deadline passed, the connection went or
 * the server is shutting down. Nothing of ours is running elsewhere, so
 * finishing is all there is to do; the client gets the cause's status. */
static void count_cancel(crpc_server_call *call, const crpc_cause *cause,
                         void *state) {
  count_state *s = state;
  printf("Count: cancelled after %d of %d ticks: %s (%s)\n", s->sent, s->count,
         crpc_code_name(cause->code), crpc_origin_name(cause->origin));
  crpc_server_call_finish(call, cause->code, NULL);
}

static void count_done(crpc_server_call *call, void *state) {
  (void)call;
  free(state);
}

static const asyncdemo_jobs_count_reactor count_reactor = {
    .on_start = count_start,
    .on_message = count_message,
    .on_send_ready = count_send_ready,
    .on_cancel = count_cancel,
    .on_done = count_done,
};

/* ---- Work: long work on a thread of its own ------------------------------
 * Each step stands for something slow (a disk read, a call to another
 * service, a long computation). Doing it in a callback would stall the loop
 * for the whole call, so on_message starts a worker thread and returns at
 * once. The worker gets the call and its ctx: the ctx is how a client
 * cancel, a deadline or a shutdown reaches the work while it is in
 * progress.
 *
 * Who finishes: exactly one finish per call. Once the worker runs, it
 * always finishes (also when cancelled: it sees the ctx and stops); before
 * that, the loop thread does (a bad request, or a cancel that arrived before
 * the request). worker_started, read and written on the loop thread only,
 * says which.
 *
 * Lifetime: on_done frees the state, and it may run on the loop thread the
 * moment the worker calls finish. So finish is the worker's last touch of
 * the state and of the call. */

/* Every worker still running, so that main does not return under one. A
 * real server would use a bounded pool (answering RESOURCE_EXHAUSTED when
 * it is full) rather than a thread per call; one thread per call keeps the
 * example's hand-off visible. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t idle;
  int running;
} workers = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

typedef struct work_state {
  /* Set on the loop thread before the worker starts, read-only after
   * (pthread_create orders the writes before the worker's reads). */
  crpc_server_call *call;
  const crpc_ctx *ctx;
  int32_t steps;
  int64_t step_ns;
  /* Loop thread only. */
  bool worker_started;
  /* Between the worker and on_send_ready (loop thread). */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool drained;
} work_state;

static void *work_start(crpc_server_call *call, const crpc_ctx *ctx,
                        void *user_data) {
  (void)user_data;
  work_state *s = calloc(1, sizeof *s);
  if (s == NULL) {
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, NULL);
    return NULL;
  }
  s->call = call;
  s->ctx = ctx; /* valid until on_done, hence for the worker until finish */
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cond, NULL);
  return s;
}

/* Worker thread: returns CRPC_OK once the send buffer has room, or the
 * ctx's code once the call is over. Unlike the loop, the worker may wait,
 * and it must: send_async never blocks, so a worker that sent regardless
 * would grow the buffer without bound behind a slow client. The progress
 * messages here are tiny and rarely wait; a worker that streams a lot
 * waits often. */
static crpc_code work_wait_for_room(work_state *s) {
  /* Cleared before asking, so an on_send_ready that runs between can_send
   * saying no and the wait below is not lost. */
  pthread_mutex_lock(&s->mu);
  s->drained = false;
  pthread_mutex_unlock(&s->mu);
  if (crpc_server_call_can_send(s->call)) return CRPC_OK;
  crpc_code code = CRPC_OK;
  pthread_mutex_lock(&s->mu);
  while (!s->drained && code == CRPC_OK)
    code = crpc_ctx_wait_cond(s->ctx, &s->cond, &s->mu); /* wakes on cancel */
  pthread_mutex_unlock(&s->mu);
  return code;
}

static void *work_thread(void *arg) {
  work_state *s = arg;
  crpc_code code = CRPC_OK;
  int32_t done = 0;
  while (done < s->steps) {
    /* The slow step. crpc_ctx_sleep returns the moment the ctx is done;
     * CPU-bound work would instead check crpc_ctx_is_done (lock-free, no
     * system call) every few milliseconds of computing. */
    code = crpc_ctx_sleep(s->ctx, s->step_ns);
    if (code != CRPC_OK) break;
    done++;
    Asyncdemo__Progress progress = ASYNCDEMO__PROGRESS__INIT;
    progress.step = done;
    progress.steps = s->steps;
    code = work_wait_for_room(s);
    if (code == CRPC_OK)
      code = asyncdemo_jobs_work_send_async(s->call, &progress);
    if (code != CRPC_OK) break;
  }
  if (done == s->steps) {
    printf("Work: worker finished all %d steps\n", s->steps);
  } else {
    const crpc_cause *why = crpc_ctx_cause(s->ctx);
    if (why != NULL)
      printf("Work: worker stopped early after %d of %d steps: %s (%s: %s)\n",
             done, s->steps, crpc_code_name(why->code),
             crpc_origin_name(why->origin), why->message);
    else /* a send failed with the ctx still live */
      printf("Work: worker stopped early after %d of %d steps: %s\n", done,
             s->steps, crpc_code_name(code));
  }
  /* If the ctx is done, crpc sends its cause whatever code we pass. */
  crpc_server_call_finish(s->call, code, NULL);
  /* s may be freed by on_done from here on: only the global is left. */
  pthread_mutex_lock(&workers.mu);
  workers.running--;
  pthread_cond_signal(&workers.idle);
  pthread_mutex_unlock(&workers.mu);
  return NULL;
}

static void work_message(crpc_server_call *call,
                         const Asyncdemo__WorkRequest *req, void *state) {
  work_state *s = state;
  if (req == NULL) return; /* the client's half-close */
  if (req->steps < 1 || req->steps > 1000 || req->step_ms < 0 ||
      req->step_ms > 10000) {
    crpc_server_call_finish(call, CRPC_INVALID_ARGUMENT,
                            "steps must be 1..1000, step_ms 0..10000");
    return;
  }
  s->steps = req->steps; /* copied: req is freed when we return */
  s->step_ns = req->step_ms * CRPC_MILLISECOND;

  /* Creating a thread is a quick system call, not a wait: fine here. */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_mutex_lock(&workers.mu);
  workers.running++;
  pthread_mutex_unlock(&workers.mu);
  pthread_t tid;
  int err = pthread_create(&tid, &attr, work_thread, s);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    pthread_mutex_lock(&workers.mu);
    workers.running--;
    pthread_mutex_unlock(&workers.mu);
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED,
                            "no thread for the work");
    return;
  }
  /* The worker may already have finished, but s is still ours: on_done
   * runs on this loop thread, so not before we return. */
  s->worker_started = true;
}

/* Loop thread. The buffer has drained after the worker's can_send said no:
 * wake it. The lock is held for a flag and a signal only, never across
 * anything slow, so taking it here cannot stall the loop. */
static void work_send_ready(crpc_server_call *call, void *state) {
  (void)call;
  work_state *s = state;
  pthread_mutex_lock(&s->mu);
  s->drained = true;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

/* Loop thread, once the ctx is done, if the call is not finished yet. A
 * running worker needs no telling: it waits only in ctx-aware calls, which
 * return with the cause the moment the ctx ends, and it then finishes the
 * call itself (finishing here as well would be a second finish). It often
 * gets there first, and then this callback does not come at all, which is
 * why the worker must never wait for it. Work that did not watch the ctx (a
 * plain read(), a child process) would be aborted from here, or from a
 * crpc_ctx_on_cancel callback registered by the worker. */
static void work_cancel(crpc_server_call *call, const crpc_cause *cause,
                        void *state) {
  work_state *s = state;
  if (!s->worker_started) {
    crpc_server_call_finish(call, cause->code, NULL);
    return;
  }
  printf("Work: on_cancel on the loop thread: %s (%s); the worker sees it "
         "through the ctx\n",
         crpc_code_name(cause->code), crpc_origin_name(cause->origin));
}

/* Loop thread, the last callback: the worker (if any) has finished and will
 * not touch s again. */
static void work_done(crpc_server_call *call, void *state) {
  (void)call;
  work_state *s = state;
  if (s == NULL) return;
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static const asyncdemo_jobs_work_reactor work_reactor = {
    .on_start = work_start,
    .on_message = work_message,
    .on_send_ready = work_send_ready,
    .on_cancel = work_cancel,
    .on_done = work_done,
};

/* ---- Shout: a bidi stream with backpressure both ways --------------------
 * Each request is answered at once with a reply many times its size. Count
 * shows the sending half of flow control: stop sending when the buffer is
 * full. A reply-per-request stream cannot stop sending on its own: every
 * request that comes in produces a reply, so the only way to stop producing
 * is to stop taking requests. Without the pause, a client that keeps
 * sending and does not read would have us queue replies without bound:
 * send_async never blocks, and on_message would keep coming as fast as the
 * client writes, each bringing another reply for a buffer that cannot
 * drain. While paused, crpc leaves the requests queued and does not return
 * their flow-control window, so the client is held by HTTP/2 after at most
 * one window (64 KiB) of requests: memory stays bounded by the send limit
 * plus that window, however the client behaves. As with Count, all state
 * here is touched on the loop thread only. */

typedef struct shout_state {
  int32_t replies;
  int pauses; /* how often the send buffer filled and we stopped reading */
} shout_state;

static void *shout_start(crpc_server_call *call, const crpc_ctx *ctx,
                         void *user_data) {
  (void)ctx;
  (void)user_data;
  shout_state *s = calloc(1, sizeof *s);
  if (s == NULL) crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, NULL);
  return s;
}

static void shout_message(crpc_server_call *call,
                          const Asyncdemo__ShoutRequest *req, void *state) {
  shout_state *s = state;
  if (req == NULL) {
    /* The client has half-closed, and this comes only once every request
     * before it was answered (it waits out a pause too), so every reply is
     * queued: finish sends them, then the trailers. */
    printf("Shout: answered %d requests, paused receiving %d times\n",
           s->replies, s->pauses);
    crpc_server_call_finish(call, CRPC_OK, NULL);
    return;
  }
  size_t len = strlen(req->text);
  if (len > 1024 || req->times < 1 || req->times > 1000) {
    crpc_server_call_finish(call, CRPC_INVALID_ARGUMENT,
                            "text must be 0..1024 bytes, times 1..1000");
    return;
  }
  char *text = malloc(len * (size_t)req->times + 1);
  if (text == NULL) {
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  /* Bytes, not characters: only ASCII changes, so UTF-8 stays UTF-8. */
  for (size_t i = 0; i < len; i++)
    text[i] = (char)toupper((unsigned char)req->text[i]);
  for (int32_t t = 1; t < req->times; t++) memcpy(text + t * len, text, len);
  text[len * (size_t)req->times] = '\0';
  Asyncdemo__ShoutReply reply = ASYNCDEMO__SHOUT_REPLY__INIT;
  reply.text = text;
  crpc_code code = asyncdemo_jobs_shout_send_async(call, &reply);
  free(text); /* send_async copied it */
  if (code != CRPC_OK) {
    /* A done ctx means on_cancel is on its way and will finish. */
    if (!crpc_ctx_is_done(crpc_server_call_ctx(call)))
      crpc_server_call_finish(call, code, "cannot send a reply");
    return;
  }
  s->replies++;
  /* Full: take no more requests until it drains, since each would queue
   * another reply. Waiting here instead would deadlock, as in Count. The
   * false answer is also what arms on_send_ready. Requests crpc has
   * already read stay queued for us; those behind them wait at the client
   * for window. */
  if (!crpc_server_call_can_send(call)) {
    s->pauses++;
    crpc_server_call_pause_recv(call);
  }
}

/* The buffer has drained: take requests again. They are delivered once
 * this returns, never inside it. */
static void shout_send_ready(crpc_server_call *call, void *state) {
  (void)state;
  crpc_server_call_resume_recv(call);
}

/* Paused or not, a reset, deadline, lost connection or shutdown ends the
 * call here (a bad request message too, as INTERNAL): the client gets the
 * cause's status. */
static void shout_cancel(crpc_server_call *call, const crpc_cause *cause,
                         void *state) {
  shout_state *s = state;
  printf("Shout: cancelled after %d replies, paused %d times: %s (%s)\n",
         s->replies, s->pauses, crpc_code_name(cause->code),
         crpc_origin_name(cause->origin));
  crpc_server_call_finish(call, cause->code, NULL);
}

static void shout_done(crpc_server_call *call, void *state) {
  (void)call;
  free(state);
}

static const asyncdemo_jobs_shout_reactor shout_reactor = {
    .on_start = shout_start,
    .on_message = shout_message,
    .on_send_ready = shout_send_ready,
    .on_cancel = shout_cancel,
    .on_done = shout_done,
};

/* ---- main --------------------------------------------------------------- */

static int parse_port(int argc, char **argv) {
  int port = 50051;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 0 || v > 65535) return -1;
      port = (int)v;
    } else {
      return -1;
    }
  }
  return port;
}

int main(int argc, char **argv) {
  int port = parse_port(argc, argv);
  if (port < 0) {
    fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
    return 2;
  }
  /* Lines from several threads, each whole, in the log as they happen. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  crpc_server *server = crpc_server_new(NULL);
  if (server == NULL) {
    fprintf(stderr, "crpc_server_new: out of memory\n");
    return 1;
  }
  /* Must outlive the server: static storage. */
  static const asyncdemo_jobs_async_handlers handlers = {
      .echo = echo,
      .count = &count_reactor,
      .work = &work_reactor,
      .shout = &shout_reactor};
  char address[32];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  crpc_code code = asyncdemo_jobs_register_async_handlers(server, &handlers);
  /* Health and reflection for probes and tools (README: Operating crpc). */
  if (code == CRPC_OK) code = crpc_server_add_admin_services(server, NULL);
  if (code == CRPC_OK) code = crpc_server_listen(server, address, &port);
  if (code == CRPC_OK) code = crpc_server_start(server);
  if (code != CRPC_OK) {
    fprintf(stderr, "cannot serve on %s: %s\n", address, crpc_code_name(code));
    crpc_server_free(server);
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", port);

  /* Serve until SIGINT/SIGTERM or EOF on a piped stdin (stop.h). Calls
   * still running then get one second, after which their ctx is cancelled
   * (UNAVAILABLE, origin shutdown): a Work worker sees that like any
   * cancel, finishes, and shutdown returns once every call has had on_done. */
  code = example_serve(server, 1 * CRPC_SECOND);
  /* A worker may still be between its finish and its return. */
  pthread_mutex_lock(&workers.mu);
  while (workers.running > 0) pthread_cond_wait(&workers.idle, &workers.mu);
  pthread_mutex_unlock(&workers.mu);
  crpc_server_free(server);
  return code == CRPC_OK ? 0 : 1;
}
