#include "examples/cancellation/firehose_server.h"

#include <string.h>

#include "examples/cancellation/firehose.crpc.h"

static crpc_code subscribe(crpc_server_call *call, const crpc_ctx *ctx,
                           const Demo__SubscribeRequest *req,
                           void *user_data) {
  firehose *f = user_data;
  static uint8_t payload[65536]; /* zeros; only the size matters */
  if (req->chunk_size < 0 || req->chunk_size > (int32_t)sizeof payload)
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "chunk_size must be 0..65536");
  firehose_report *r = &f->report; /* this thread's alone until `finished` */
  done_stamp_start(&f->stamp, ctx);

  Demo__Chunk chunk = DEMO__CHUNK__INIT;
  chunk.payload.data = payload;
  chunk.payload.len = (size_t)req->chunk_size;
  crpc_code code;
  int64_t seen_done_ns = 0;
  for (;;) {
    /* A real handler would just send until send fails. The demo also
     * checks crpc's promise: once the ctx is done, no send succeeds. */
    bool was_done = crpc_ctx_is_done(ctx);
    int64_t start = crpc_now_ns();
    code = demo_firehose_subscribe_server_send(call, &chunk);
    int64_t end = crpc_now_ns();
    if (code != CRPC_OK) {
      r->send_failed_ns = end;
      r->live_when_send_failed = !crpc_ctx_is_done(ctx);
      seen_done_ns = crpc_now_ns(); /* taken after the check: a bound */
      break;
    }
    r->timeline[r->sends_ok % FIREHOSE_TIMELINE] = (send_time){start, end};
    r->sends_ok++;
    chunk.seq++;
    if (was_done) { /* broken promise: count it, and stop anyway */
      r->ok_while_done++;
      code = CRPC_INTERNAL;
      break;
    }
  }
  r->send_code = code;

  if (r->live_when_send_failed) {
    /* The send said the call is over but the ctx disagrees (a crpc bug the
     * demo reports). Give the ctx a bounded chance to catch up so we can
     * still tell when and why it ended. The derived ctx is released. */
    crpc_ctx *grace = crpc_ctx_with_timeout(ctx, FIREHOSE_GRACE);
    if (grace != NULL) crpc_ctx_wait(grace);
    crpc_ctx_release(grace);
  }
  if (done_stamp_stop(&f->stamp)) {
    r->ctx_done_ns = f->stamp.at_ns;
    r->cause = f->stamp.cause;
    /* crpc marks a ctx done a moment before it runs its callbacks, so the
     * stamp can trail our own is_done check by a microsecond or two. The
     * earlier of the two is the better (and stricter) answer. */
    if (!r->live_when_send_failed && seen_done_ns != 0 &&
        seen_done_ns < r->ctx_done_ns)
      r->ctx_done_ns = seen_done_ns;
  }
  pthread_mutex_lock(&f->mu);
  r->finished = true;
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&f->mu);
  return code;
}

crpc_code firehose_register(crpc_server *server, firehose *f) {
  static demo_firehose_handlers handlers; /* must outlive the server */
  handlers.user_data = f;
  handlers.subscribe = subscribe;
  return demo_firehose_register_handlers(server, &handlers);
}

/* Index of the oldest successful send the ring still holds. */
static uint64_t oldest_kept(const firehose_report *r) {
  return r->sends_ok > FIREHOSE_TIMELINE ? r->sends_ok - FIREHOSE_TIMELINE : 0;
}

uint64_t firehose_ok_in_flight(const firehose *f, int64_t since_ns,
                               bool *complete) {
  const firehose_report *r = &f->report;
  int64_t done = r->ctx_done_ns ? r->ctx_done_ns : INT64_MAX;
  uint64_t n = 0;
  for (uint64_t i = oldest_kept(r); i < r->sends_ok; i++) {
    const send_time *t = &r->timeline[i % FIREHOSE_TIMELINE];
    if (t->end_ns > since_ns && t->start_ns < done) n++;
  }
  /* If even the oldest send kept ended after since_ns, older ones that
   * fell out of the ring may have too: the count would be too low. */
  *complete = r->sends_ok <= FIREHOSE_TIMELINE ||
              r->timeline[oldest_kept(r) % FIREHOSE_TIMELINE].end_ns <=
                  since_ns;
  return n;
}

uint64_t firehose_ok_after_done(const firehose *f) {
  const firehose_report *r = &f->report;
  if (r->ctx_done_ns == 0) return r->ok_while_done;
  uint64_t n = 0;
  for (uint64_t i = oldest_kept(r); i < r->sends_ok; i++)
    if (r->timeline[i % FIREHOSE_TIMELINE].start_ns >= r->ctx_done_ns) n++;
  /* is_done-before-send (ok_while_done) and the timestamps measure the same
   * broken promise two ways; report the larger so neither hides the other. */
  return n > r->ok_while_done ? n : r->ok_while_done;
}
