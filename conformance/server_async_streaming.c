/* conformance/server_async_streaming.c - the async (crpc/server_async.h)
 * StreamingOutputCall, FullDuplexCall and HalfDuplexCall of crpc's interop
 * server, on the generated reactors.
 *
 * The three differ only in when requests arrive and when answering starts:
 *   StreamingOutputCall  one request, answered at once;
 *   FullDuplexCall       each request answered as it comes (ping-pong);
 *   HalfDuplexCall       every request kept until the client half-closes,
 *                        then all answered in order.
 * So one reactor serves all three. on_message keeps a copy of each request
 * (the generated glue frees its own when the callback returns) in a queue,
 * and a pump answers the queue in order with the blocking server's steps
 * (interop_output_begin / _check / _send, server_internal.h): Echo Status,
 * response_type and CompressedResponse per request, then one response per
 * ResponseParameters.
 *
 * Threads. The pump runs on the loop thread (from on_message, on_send_ready
 * and on_cancel) as long as it never has to wait:
 *   - flow control: it sends while crpc_server_call_can_send says true; when
 *     it says false the pump returns and on_send_ready resumes it once the
 *     send buffer has drained;
 *   - a response with interval_us > 0 is a wait the loop must not do. The
 *     pump hands the call to a worker thread of its own (the documented
 *     pattern: crpc_server_call_send_async and crpc_server_call_finish are
 *     allowed off the loop), which sleeps the intervals ctx-aware
 *     (crpc_ctx_sleep: a cancel or the deadline wakes it at once), waits
 *     for room on a condition variable that on_send_ready signals, and goes
 *     on pumping until the queue is empty. It then hands the call back to
 *     the loop (the next on_message pumps there) or, if no request will
 *     come, finishes it.
 * Exactly one of the loop and the worker pumps at a time: `worker`, under
 * the call's mutex, says which; the pump-only fields are handed over with
 * it. The mutex is held for flags and the queue only, never across a wait
 * (crpc_ctx_wait_cond releases it), so taking it never stalls the loop.
 *
 * Cancellation. on_cancel comes on the loop when the ctx is done (client
 * reset, deadline, connection lost, shutdown) or, from the generated glue,
 * when a request was missing or did not parse (INTERNAL, ctx live). With no
 * worker running, a done ctx finishes the call at once (the status on the
 * wire is the cause's); a bad request first lets the requests before it be
 * answered, as the blocking handler answers them before its recv fails
 * (HalfDuplexCall, which answers nothing before the half-close, ends at
 * once). With a worker running on_cancel only records the cause: the
 * worker's waits end with the ctx and it finishes the call itself, so that
 * there is exactly one finish. on_done, always last, frees the state. */
#include <pthread.h>
#include <stdlib.h>

#include "conformance/server_internal.h"

typedef Grpc__Testing__StreamingOutputCallRequest out_req;

/* When requests come and answering starts (see the top). */
typedef enum out_shape {
  OUT_ONE_REQUEST,      /* StreamingOutputCall */
  OUT_EACH_REQUEST,     /* FullDuplexCall */
  OUT_AFTER_HALF_CLOSE, /* HalfDuplexCall */
} out_shape;

typedef struct out_call {
  /* Set in on_start, read-only after. */
  crpc_server_call *call;
  const crpc_ctx *ctx; /* valid until on_done, so for the worker until finish */
  out_shape shape;
  pthread_mutex_t mu;
  pthread_cond_t room; /* the worker waits here for on_send_ready */
  /* Under mu. */
  out_req **reqs;    /* reqs[head..n): not yet fully answered, in order */
  size_t head, n, cap;
  bool input_done;   /* no further request will come */
  bool input_failed; /* on_cancel came, or a request could not be kept:
                        end with fail_code once the queue is answered */
  crpc_code fail_code;
  bool worker;  /* a worker thread pumps; the loop does not */
  bool drained; /* on_send_ready since the worker last found no room */
  bool finished;
  /* The pump's own (the loop thread's, or the worker's while `worker`):
   * where it is in reqs[head]. */
  size_t param;      /* next ResponseParameters to answer */
  bool begun;        /* interop_output_begin done for reqs[head] */
  bool param_ready;  /* reqs[head]'s param checked and its interval waited */
} out_call;

/* Worker threads still running, so that the process does not exit (and
 * the server is not freed) under one: interop_async_wait_workers. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t idle;
  int running;
} workers = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

void interop_async_wait_workers(void) {
  pthread_mutex_lock(&workers.mu);
  while (workers.running > 0) pthread_cond_wait(&workers.idle, &workers.mu);
  pthread_mutex_unlock(&workers.mu);
}

/* Finishes the call, once. From the worker, on_done may free s the moment
 * crpc_server_call_finish is called: the caller must not touch s after. */
static void out_finish(out_call *s, crpc_code code) {
  crpc_server_call *call = s->call;
  pthread_mutex_lock(&s->mu);
  bool twice = s->finished;
  s->finished = true;
  pthread_mutex_unlock(&s->mu);
  if (!twice) crpc_server_call_finish(call, code, NULL);
}

/* Worker: CRPC_OK once the send buffer has room, or the ctx's code once
 * the call is over. `drained` is cleared before asking, so an on_send_ready
 * that comes between can_send's no and the wait is not lost. */
static crpc_code out_wait_room(out_call *s) {
  crpc_code code = CRPC_OK;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    s->drained = false;
    pthread_mutex_unlock(&s->mu);
    if (crpc_server_call_can_send(s->call)) return CRPC_OK;
    pthread_mutex_lock(&s->mu);
    while (!s->drained && code == CRPC_OK) {
      code = crpc_ctx_wait_cond(s->ctx, &s->room, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (code != CRPC_OK) return code;
  }
}

static void out_start_worker(out_call *s);

/* The next request to answer, or NULL with *end (finish with *end_code)
 * or not (wait for on_message). On the worker, NULL without *end hands
 * the call back to the loop. */
static out_req *out_next(out_call *s, bool on_worker, bool *end,
                         crpc_code *end_code) {
  pthread_mutex_lock(&s->mu);
  out_req *req = NULL;
  *end = false;
  if (s->finished) {
    /* Nothing left to do; on_done follows. */
  } else if (s->shape == OUT_AFTER_HALF_CLOSE && !s->input_done) {
    *end = s->input_failed; /* a bad request: nothing is answered */
  } else if (s->head < s->n) {
    req = s->reqs[s->head];
  } else {
    *end = s->input_done || s->input_failed;
  }
  *end_code = s->input_failed ? s->fail_code : CRPC_OK;
  if (req == NULL && !*end && on_worker) s->worker = false;
  pthread_mutex_unlock(&s->mu);
  return req;
}

/* reqs[head] is answered: drop it. */
static void out_pop(out_call *s) {
  pthread_mutex_lock(&s->mu);
  out_req *req = s->reqs[s->head++];
  if (s->head == s->n) s->head = s->n = 0;
  pthread_mutex_unlock(&s->mu);
  protobuf_c_message_free_unpacked(&req->base, NULL);
  s->param = 0;
  s->begun = false;
}

/* Answers the queued requests in order (see the top). On the loop thread
 * it returns instead of waiting: no room (on_send_ready resumes it), an
 * interval (a worker takes over) or no request queued (on_message resumes
 * it). On the worker it waits itself and returns when no request is queued
 * (the loop takes over) or the call is finished; after it returns there,
 * s may be gone. */
static void out_pump(out_call *s, bool on_worker) {
  for (;;) {
    bool end;
    crpc_code code;
    out_req *req = out_next(s, on_worker, &end, &code);
    if (req == NULL) {
      if (end) out_finish(s, code);
      return;
    }
    code = CRPC_OK;
    if (!s->begun) {
      s->begun = true;
      code = interop_output_begin(s->call, req); /* Echo Status ends here */
    }
    if (code == CRPC_OK && s->param == req->n_response_parameters) {
      out_pop(s);
      continue;
    }
    const Grpc__Testing__ResponseParameters *p =
        code == CRPC_OK ? req->response_parameters[s->param] : NULL;
    if (code == CRPC_OK && !s->param_ready) {
      code = interop_output_check(s->call, p);
      if (code == CRPC_OK && p->interval_us > 0) {
        if (!on_worker) {
          out_start_worker(s); /* it checks p again, then sleeps */
          return;
        }
        code = crpc_ctx_sleep(s->ctx,
                              (int64_t)p->interval_us * CRPC_MICROSECOND);
      }
      s->param_ready = code == CRPC_OK;
    }
    if (code == CRPC_OK && !on_worker && !crpc_server_call_can_send(s->call)) {
      return; /* on_send_ready, or on_cancel if the call ends first */
    }
    if (code == CRPC_OK && on_worker) code = out_wait_room(s);
    if (code == CRPC_OK) {
      code = interop_output_send(s->call, p, crpc_server_call_send_async);
    }
    if (code != CRPC_OK) {
      out_finish(s, code); /* a done ctx's cause wins on the wire */
      return;
    }
    s->param++;
    s->param_ready = false;
  }
}

static void *out_worker(void *arg) {
  out_pump(arg, true);
  /* arg may be freed by now: only the global is left to touch. */
  pthread_mutex_lock(&workers.mu);
  workers.running--;
  pthread_cond_broadcast(&workers.idle);
  pthread_mutex_unlock(&workers.mu);
  return NULL;
}

/* Loop thread: hands the pump to a new worker thread. Creating a thread is
 * a quick system call, not a wait. */
static void out_start_worker(out_call *s) {
  pthread_mutex_lock(&s->mu);
  s->worker = true;
  pthread_mutex_unlock(&s->mu);
  pthread_mutex_lock(&workers.mu);
  workers.running++;
  pthread_mutex_unlock(&workers.mu);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  int err = pthread_create(&tid, &attr, out_worker, s);
  pthread_attr_destroy(&attr);
  if (err == 0) return;
  pthread_mutex_lock(&workers.mu);
  workers.running--;
  pthread_mutex_unlock(&workers.mu);
  pthread_mutex_lock(&s->mu);
  s->worker = false;
  pthread_mutex_unlock(&s->mu);
  out_finish(s, crpc_server_call_error(s->call, CRPC_RESOURCE_EXHAUSTED,
                                       "no thread to wait interval_us"));
}

/* A copy of m to keep past the callback, without its payload (the answer
 * does not depend on it, and it may be large); NULL if out of memory. */
static out_req *out_copy(const out_req *m) {
  out_req tmp = *m;
  tmp.payload = NULL;
  size_t len = protobuf_c_message_get_packed_size(&tmp.base);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) return NULL;
  protobuf_c_message_pack(&tmp.base, buf);
  out_req *copy =
      grpc__testing__streaming_output_call_request__unpack(NULL, len, buf);
  free(buf);
  return copy;
}

/* Appends req to the queue (under mu); false if out of memory. */
static bool out_push_locked(out_call *s, out_req *req) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 4;
    out_req **grown = realloc(s->reqs, cap * sizeof(*grown));
    if (grown == NULL) return false;
    s->reqs = grown;
    s->cap = cap;
  }
  s->reqs[s->n++] = req;
  return true;
}

static void *out_start(crpc_server_call *call, const crpc_ctx *ctx,
                       out_shape shape) {
  out_call *s = calloc(1, sizeof *s);
  if (s == NULL) {
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "no memory");
    return NULL; /* every callback below takes NULL as "finished" */
  }
  s->call = call;
  s->ctx = ctx;
  s->shape = shape;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->room, NULL);
  /* Before the first send, as in the blocking handlers. */
  crpc_code code = interop_echo_metadata(call);
  if (code != CRPC_OK) out_finish(s, code);
  return s;
}

static void out_message(crpc_server_call *call, const out_req *msg,
                        void *state) {
  out_call *s = state;
  if (s == NULL) return;
  out_req *copy = msg != NULL ? out_copy(msg) : NULL;
  pthread_mutex_lock(&s->mu);
  if (msg == NULL || s->shape == OUT_ONE_REQUEST) s->input_done = true;
  /* After a failure later requests are not answered (nor kept). */
  bool kept = copy != NULL && !s->input_failed && out_push_locked(s, copy);
  if (msg != NULL && !kept) {
    if (copy != NULL) protobuf_c_message_free_unpacked(&copy->base, NULL);
    if (!s->input_failed) {
      s->input_failed = true;
      s->fail_code = crpc_server_call_error(call, CRPC_RESOURCE_EXHAUSTED,
                                            "no memory for a request");
    }
  }
  bool worker = s->worker;
  pthread_mutex_unlock(&s->mu);
  if (!worker) out_pump(s, false); /* else the worker gets to it */
}

static void out_send_ready(crpc_server_call *call, void *state) {
  (void)call;
  out_call *s = state;
  if (s == NULL) return;
  pthread_mutex_lock(&s->mu);
  bool worker = s->worker;
  if (worker) {
    s->drained = true;
    pthread_cond_signal(&s->room);
  }
  pthread_mutex_unlock(&s->mu);
  if (!worker) out_pump(s, false);
}

static void out_cancel(crpc_server_call *call, const crpc_cause *cause,
                       void *state) {
  (void)call;
  out_call *s = state;
  if (s == NULL) return;
  pthread_mutex_lock(&s->mu);
  if (!s->input_failed) {
    s->input_failed = true;
    s->fail_code = cause->code;
  }
  bool worker = s->worker;
  pthread_mutex_unlock(&s->mu);
  if (worker) return; /* it finishes: see the top */
  if (crpc_ctx_is_done(s->ctx)) {
    out_finish(s, cause->code); /* no on_send_ready will come */
  } else {
    out_pump(s, false); /* a bad request: answer those before it, end */
  }
}

static void out_done(crpc_server_call *call, void *state) {
  (void)call;
  out_call *s = state;
  if (s == NULL) return;
  for (size_t i = s->head; i < s->n; i++) {
    protobuf_c_message_free_unpacked(&s->reqs[i]->base, NULL);
  }
  free(s->reqs);
  pthread_cond_destroy(&s->room);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static void *output_start(crpc_server_call *call, const crpc_ctx *ctx,
                          void *ud) {
  (void)ud;
  return out_start(call, ctx, OUT_ONE_REQUEST);
}

static void *full_duplex_start(crpc_server_call *call, const crpc_ctx *ctx,
                               void *ud) {
  (void)ud;
  return out_start(call, ctx, OUT_EACH_REQUEST);
}

static void *half_duplex_start(crpc_server_call *call, const crpc_ctx *ctx,
                               void *ud) {
  (void)ud;
  return out_start(call, ctx, OUT_AFTER_HALF_CLOSE);
}

const grpc_testing_test_service_streaming_output_call_reactor
    interop_streaming_output_reactor = {
        .on_start = output_start,
        .on_message = out_message,
        .on_send_ready = out_send_ready,
        .on_cancel = out_cancel,
        .on_done = out_done,
};

const grpc_testing_test_service_full_duplex_call_reactor
    interop_full_duplex_reactor = {
        .on_start = full_duplex_start,
        .on_message = out_message,
        .on_send_ready = out_send_ready,
        .on_cancel = out_cancel,
        .on_done = out_done,
};

const grpc_testing_test_service_half_duplex_call_reactor
    interop_half_duplex_reactor = {
        .on_start = half_duplex_start,
        .on_message = out_message,
        .on_send_ready = out_send_ready,
        .on_cancel = out_cancel,
        .on_done = out_done,
};
