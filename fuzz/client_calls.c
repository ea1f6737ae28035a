/* fuzz/client_calls.c - the client target's calls (client_calls.h). */
#include "fuzz/client_calls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEST "/crpc.test.Test/"

/* crpc.test.Test's method for each shape, with a request it accepts
 * (Count: 3 messages of 8 bytes, no pause). */
static const fuzz_call_spec default_specs[4] = {
    [FUZZ_CALL_UNARY] = {TEST "Echo", "fuzz", 4},
    [FUZZ_CALL_SERVER_STREAM] = {TEST "Count", "3 8 0", 5},
    [FUZZ_CALL_CLIENT_STREAM] = {TEST "Collect", "ab", 2},
    [FUZZ_CALL_BIDI] = {TEST "Chat", "hi", 2},
};

const char *fuzz_calls_compression(uint8_t selector) {
  return (selector & FUZZ_SEL_GZIP) ? "gzip" : NULL;
}

/* One call fewer pending; the last one tells done_fd. Mutex held. */
static void one_done_locked(fuzz_calls *fc) {
  if (--fc->pending == 0 && fc->done_fd >= 0) {
    uint64_t one = 1;
    ssize_t n = write(fc->done_fd, &one, sizeof one);
    (void)n; /* an eventfd: only an overflow fails, and it is readable then */
  }
}

static void mark_done(fuzz_call *c, crpc_code code) {
  fuzz_calls *fc = c->fc;
  pthread_mutex_lock(&fc->mu);
  c->code = code;
  one_done_locked(fc);
  pthread_cond_broadcast(&fc->cond);
  pthread_mutex_unlock(&fc->mu);
}

static void unary_done(crpc_code code, crpc_message *response,
                       const crpc_status *status, void *user_data) {
  (void)status;
  fuzz_call *c = user_data;
  if (response != NULL && response->data != NULL) {
    c->messages++;
    free(response->data);
  }
  mark_done(c, code);
}

static void on_message(crpc_call *call, const crpc_message *msg,
                       void *user_data) {
  (void)msg;
  fuzz_call *c = user_data;
  c->messages++;
  if (c->shape == FUZZ_CALL_BIDI && !c->half_closed) {
    c->half_closed = true;
    crpc_call_close_send(call);
  }
}

static void on_done(crpc_call *call, const crpc_status *status,
                    void *user_data) {
  (void)call;
  mark_done(user_data, status->code);
}

static const crpc_call_reactor reactor = {
    .on_message = on_message,
    .on_done = on_done,
};

/* Starts call i; false (with c->code) if it did not start. */
static bool start_one(fuzz_call *c, crpc_channel *ch, const crpc_ctx *ctx,
                      const fuzz_call_spec *spec) {
  if (c->shape == FUZZ_CALL_UNARY) {
    c->code = crpc_unary_call_async(ch, ctx, spec->method, NULL, spec->request,
                                    spec->request_len, unary_done, c);
    return c->code == CRPC_OK;
  }
  c->code = crpc_call_start_async(ch, ctx, spec->method, NULL, NULL, &reactor,
                                  c, &c->call);
  if (c->code != CRPC_OK) return false;
  /* Send errors mean the call has ended; on_done tells how. */
  crpc_call_send_async(c->call, spec->request, spec->request_len, 0);
  if (c->shape == FUZZ_CALL_CLIENT_STREAM) {
    crpc_call_send_async(c->call, spec->request, spec->request_len, 0);
  }
  if (c->shape != FUZZ_CALL_BIDI) crpc_call_close_send(c->call);
  return true;
}

int fuzz_calls_start(fuzz_calls *fc, crpc_channel *ch, const crpc_ctx *ctx,
                     uint8_t selector, const fuzz_call_spec *specs) {
  return fuzz_calls_start_notify(fc, ch, ctx, selector, specs, -1);
}

int fuzz_calls_start_notify(fuzz_calls *fc, crpc_channel *ch,
                            const crpc_ctx *ctx, uint8_t selector,
                            const fuzz_call_spec *specs, int done_fd) {
  memset(fc, 0, sizeof *fc);
  fc->done_fd = done_fd;
  pthread_mutex_init(&fc->mu, NULL);
  pthread_cond_init(&fc->cond, NULL);
  int n = (selector & FUZZ_SEL_SECOND_CALL) ? 2 : 1;
  int started = 0;
  for (int i = 0; i < n; i++) {
    fuzz_call *c = &fc->calls[i];
    c->fc = fc;
    c->shape = (fuzz_call_shape)((selector >> (2 * i)) & 3);
    const fuzz_call_spec *spec =
        specs != NULL ? &specs[i] : &default_specs[c->shape];
    /* Counted before the start: on_done may run before it returns. */
    pthread_mutex_lock(&fc->mu);
    fc->n++;
    fc->pending++;
    pthread_mutex_unlock(&fc->mu);
    if (start_one(c, ch, ctx, spec)) {
      started++;
    } else {
      pthread_mutex_lock(&fc->mu);
      one_done_locked(fc);
      pthread_mutex_unlock(&fc->mu);
    }
  }
  return started;
}

bool fuzz_calls_wait(fuzz_calls *fc, int timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&fc->mu);
  int rc = 0;
  while (fc->pending > 0 && rc != ETIMEDOUT) {
    rc = pthread_cond_timedwait(&fc->cond, &fc->mu, &until);
  }
  bool done = fc->pending == 0;
  pthread_mutex_unlock(&fc->mu);
  return done;
}

void fuzz_calls_destroy(fuzz_calls *fc) {
  for (int i = 0; i < fc->n; i++) {
    if (fc->calls[i].call != NULL) crpc_call_free(fc->calls[i].call);
  }
  pthread_cond_destroy(&fc->cond);
  pthread_mutex_destroy(&fc->mu);
}
