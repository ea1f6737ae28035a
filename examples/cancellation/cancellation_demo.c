/*
 * cancellation_demo - crpc's main demo (`./crpc.sh demo`).
 *
 * A server and a client run in this one process, on separate threads, and
 * talk gRPC over a real TCP connection on 127.0.0.1. Being one process
 * lets both sides read the same CLOCK_MONOTONIC clock, so "the server knew
 * N us after the client cancelled" is a real measurement, not a guess.
 *
 * The server's Firehose.Subscribe handler streams 1 KiB messages as fast as
 * the client reads them and never stops by itself.
 *   Round 1: the client reads 200 messages, then cancels its ctx.
 *   Round 2: the client gives its ctx a 200 ms deadline and lets it expire.
 * After each round both sides say what they saw. The program exits 1 if
 * crpc broke a promise: a wrong status, a server that did not learn of the
 * end within 1 s, a send that succeeded after the server knew, or a ctx
 * left unreleased at exit.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "examples/cancellation/done_stamp.h"
#include "examples/cancellation/firehose.crpc.h"
#include "examples/cancellation/firehose_server.h"

#define CHUNK_SIZE 1024
#define READ_BEFORE_CANCEL 200
#define ROUND2_DEADLINE (200 * CRPC_MILLISECOND)
/* Typical figures are tens to hundreds of microseconds; the limit is loose
 * so that a busy 2-core machine never fails the demo by accident. */
#define NOTICE_LIMIT (1 * CRPC_SECOND)

/* One round as the client saw it. */
typedef struct client_view {
  const char *event;   /* "cancel" or "deadline" */
  int64_t event_ns;    /* when the client cancelled / its deadline */
  uint64_t received;   /* messages read */
  crpc_code recv_code; /* what the failing recv returned */
  int64_t recv_failed_ns;
  crpc_status status;  /* crpc_call_finish */
  int64_t ctx_done_ns; /* when the client's ctx actually ended */
  crpc_cause cause;    /* and why */
  done_stamp stamp;    /* how we know; lives until the round is over */
} client_view;

static int64_t us_since(int64_t t, int64_t since) {
  return (t - since) / CRPC_MICROSECOND;
}

/* Runs one Subscribe call. With cancel_after > 0 the client cancels after
 * that many messages; otherwise ctx's deadline ends the call. */
static bool run_client(crpc_channel *ch, crpc_ctx *ctx, uint64_t cancel_after,
                       client_view *v) {
  Demo__SubscribeRequest req = DEMO__SUBSCRIBE_REQUEST__INIT;
  req.chunk_size = CHUNK_SIZE;
  crpc_call *call = NULL;
  crpc_code code = demo_firehose_subscribe_start(ch, ctx, NULL, &req, &call);
  if (code != CRPC_OK) {
    printf("  !! Subscribe failed to start: %s\n", crpc_code_name(code));
    return false;
  }
  /* A deadline ends the ctx when crpc's timer thread fires it, which on a
   * busy machine can be a little after the deadline itself: record when. */
  done_stamp_start(&v->stamp, ctx);
  for (;;) {
    Demo__Chunk *chunk;
    code = demo_firehose_subscribe_recv(call, &chunk);
    if (code != CRPC_OK) break;
    if (chunk == NULL) { /* the server ended the stream: not expected */
      code = CRPC_OK;
      break;
    }
    protobuf_c_message_free_unpacked(&chunk->base, NULL);
    if (++v->received == cancel_after) {
      v->event_ns = crpc_now_ns(); /* just before, so lags are not flattered */
      crpc_ctx_cancel(ctx, CRPC_CANCELLED, "client has read enough");
    }
  }
  v->recv_failed_ns = crpc_now_ns();
  v->recv_code = code;
  crpc_call_finish(call, &v->status);
  crpc_call_free(call);
  if (v->status.code == CRPC_DEADLINE_EXCEEDED && !crpc_ctx_is_done(ctx)) {
    /* The server enforces the deadline too, on its own timer: its status
     * can arrive just before our ctx's timer fires. That one is due now;
     * wait for it, so the line below shows when our ctx really ended. */
    crpc_ctx_wait(ctx);
  }
  if (done_stamp_stop(&v->stamp)) {
    v->ctx_done_ns = v->stamp.at_ns;
    v->cause = v->stamp.cause;
  }
  return true;
}

/* Waits (ctx-aware, no polling) until the handler has filled its report. */
static bool wait_for_server(firehose *f) {
  crpc_ctx *limit =
      crpc_ctx_with_timeout(crpc_ctx_background(), NOTICE_LIMIT + CRPC_SECOND);
  if (limit == NULL) return false;
  pthread_mutex_lock(&f->mu);
  while (!f->report.finished &&
         crpc_ctx_wait_cond(limit, &f->cond, &f->mu) == CRPC_OK) {
  }
  bool finished = f->report.finished;
  pthread_mutex_unlock(&f->mu);
  crpc_ctx_release(limit);
  return finished;
}

/* One aligned line: side, what, code, time since the event, detail. */
static void row(const char *side, const char *what, crpc_code code,
                bool timed, int64_t us, const char *detail) {
  char when[32] = "";
  if (timed) snprintf(when, sizeof when, "%+" PRId64 " us", us);
  printf("  %-6s  %-13s  %-18s %10s%s%s\n", side, what, crpc_code_name(code),
         when, *detail ? "  " : "", detail);
}

/* Prints one round and returns true if crpc kept every promise in it. */
static bool report_round(firehose *f, const client_view *v,
                         crpc_code want_client, bool server_may_see_reset) {
  const firehose_report *r = &f->report; /* finished: ours to read */
  bool ok = true;
  char detail[256];

  if (v->ctx_done_ns == 0) {
    printf("  !! the client's ctx did not end (recv returned %s after %" PRIu64
           " messages; status %s \"%s\")\n",
           crpc_code_name(v->recv_code), v->received,
           crpc_code_name(v->status.code),
           v->status.message ? v->status.message : "");
    return false;
  }
  snprintf(detail, sizeof detail, "%s: \"%s\"",
           crpc_origin_name(v->cause.origin), v->cause.message);
  row("client", "ctx done", v->cause.code, true,
      us_since(v->ctx_done_ns, v->event_ns), detail);
  snprintf(detail, sizeof detail, "after %" PRIu64 " messages", v->received);
  row("client", "recv returned", v->recv_code, true,
      us_since(v->recv_failed_ns, v->event_ns), detail);
  snprintf(detail, sizeof detail, "\"%s\"",
           v->status.message ? v->status.message : "");
  row("client", "final status", v->status.code, false, 0, detail);
  if (v->recv_code != want_client || v->status.code != want_client) {
    printf("  !! the client should have seen %s\n", crpc_code_name(want_client));
    ok = false;
  }
  if (r->live_when_send_failed) {
    row("server", "send returned", r->send_code, true,
        us_since(r->send_failed_ns, v->event_ns), "while its ctx was live");
    printf("  !! crpc bug: the handler's send failed before its ctx ended\n");
    ok = false;
  }
  if (r->ctx_done_ns == 0) {
    printf("  !! the server handler's ctx did not end within %" PRId64 " ms\n",
           FIREHOSE_GRACE / CRPC_MILLISECOND);
    return false;
  }
  int64_t lag = r->ctx_done_ns - v->event_ns;
  snprintf(detail, sizeof detail, "%s: \"%s\"",
           crpc_origin_name(r->cause.origin), r->cause.message);
  row("server", "ctx done", r->cause.code, true, lag / CRPC_MICROSECOND,
      detail);
  if (!r->live_when_send_failed)
    row("server", "send returned", r->send_code, true,
        us_since(r->send_failed_ns, v->event_ns), "");

  bool complete;
  uint64_t in_flight = firehose_ok_in_flight(f, v->ctx_done_ns, &complete);
  uint64_t too_late = firehose_ok_after_done(f);
  printf("  server  sends OK       %" PRIu64 " in all, %" PRIu64
         " in flight, %" PRIu64 " after the server knew\n",
         r->sends_ok, in_flight, too_late);

  if (lag > NOTICE_LIMIT) {
    printf("  !! the server learned of it too late (limit %" PRId64 " ms)\n",
           NOTICE_LIMIT / CRPC_MILLISECOND);
    ok = false;
  }
  bool cause_ok = r->cause.code == want_client ||
                  (server_may_see_reset && r->cause.code == CRPC_CANCELLED &&
                   r->cause.origin == CRPC_ORIGIN_PEER_RESET);
  if (!cause_ok) {
    printf("  !! unexpected cause on the server\n");
    ok = false;
  }
  if (r->send_code != r->cause.code) {
    printf("  !! the failed send should return the cause's code\n");
    ok = false;
  }
  if (too_late != 0) {
    printf("  !! a send succeeded after the server's ctx was done\n");
    ok = false;
  }
  if (!complete) { /* more than the send buffer can hold */
    printf("  !! over %d sends succeeded after the client's ctx ended\n",
           FIREHOSE_TIMELINE);
    ok = false;
  }
  return ok;
}

/* One round from start to verdict. *lag_us gets the server's notice lag. */
static bool round_trip(crpc_channel *ch, firehose *f, int round,
                       int64_t *lag_us) {
  pthread_mutex_lock(&f->mu);
  memset(&f->report, 0, sizeof f->report); /* no handler is running now */
  pthread_mutex_unlock(&f->mu);

  client_view v = {0};
  crpc_ctx *ctx;
  if (round == 1) {
    printf("\nRound 1: the client reads %d messages, then cancels its ctx\n",
           READ_BEFORE_CANCEL);
    /* A deadline anyway, far away: no call should be able to hang. */
    ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
    v.event = "cancel";
  } else {
    printf("\nRound 2: the client's ctx has a %" PRId64
           " ms deadline, and it expires\n",
           ROUND2_DEADLINE / CRPC_MILLISECOND);
    ctx = crpc_ctx_with_timeout(crpc_ctx_background(), ROUND2_DEADLINE);
    v.event = "deadline";
  }
  if (ctx == NULL) return false;
  if (round == 2) v.event_ns = crpc_ctx_deadline(ctx);

  bool ok = run_client(ch, ctx, round == 1 ? READ_BEFORE_CANCEL : 0, &v);
  crpc_ctx_release(ctx);
  if (ok && !wait_for_server(f)) {
    printf("  !! the server handler did not finish within %" PRId64 " ms\n",
           (NOTICE_LIMIT + CRPC_SECOND) / CRPC_MILLISECOND);
    ok = false;
  }
  /* In round 2 the server holds the deadline too (sent as grpc-timeout)
   * and the client resets the stream when its own fires: whichever reaches
   * the handler first is its cause. Both are correct. */
  if (ok) {
    ok = report_round(f, &v, round == 1 ? CRPC_CANCELLED
                                        : CRPC_DEADLINE_EXCEEDED,
                      round == 2);
    *lag_us = (f->report.ctx_done_ns - v.event_ns) / CRPC_MICROSECOND;
  }
  crpc_status_clear(&v.status);
  return ok;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  static firehose f = {.mu = PTHREAD_MUTEX_INITIALIZER,
                       .cond = PTHREAD_COND_INITIALIZER};

  crpc_server *server = crpc_server_new(NULL);
  int port = 0;
  crpc_code code = server ? CRPC_OK : CRPC_RESOURCE_EXHAUSTED;
  if (code == CRPC_OK) code = firehose_register(server, &f);
  if (code == CRPC_OK) code = crpc_server_listen(server, "127.0.0.1:0", &port);
  if (code == CRPC_OK) code = crpc_server_start(server);
  if (code != CRPC_OK) {
    printf("cannot start the server: %s\n", crpc_code_name(code));
    crpc_server_free(server);
    return 1;
  }
  char target[32];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  crpc_channel *ch = crpc_channel_new(target, NULL);
  if (ch == NULL) {
    crpc_server_free(server);
    return 1;
  }

  printf("crpc cancellation demo\n"
         "  Server and client run in this process on two threads and talk\n"
         "  gRPC over TCP %s, so both read one CLOCK_MONOTONIC clock.\n"
         "  The server handler streams %d KiB messages as fast as the\n"
         "  client reads them and never stops on its own.\n"
         "  +N us: time since the client cancelled (round 1) or its\n"
         "  deadline passed (round 2). Sends OK \"in flight\" returned OK\n"
         "  after the client's ctx ended but began before the server's\n"
         "  did; \"after the server knew\" must always be 0.\n",
         target, CHUNK_SIZE / 1024);

  int64_t lag[2] = {0, 0};
  bool ok1 = round_trip(ch, &f, 1, &lag[0]);
  bool ok2 = round_trip(ch, &f, 2, &lag[1]);

  crpc_channel_free(ch);
  crpc_server_shutdown(server, 0);
  crpc_server_free(server);
  size_t live = crpc_ctx_live_count();
  printf("\ncontexts left unreleased at exit: %zu\n", live);
  if (live != 0) crpc_ctx_dump(stdout);

  if (ok1 && ok2 && live == 0) {
    printf("Verdict: PASS - the server knew of the cancel after %" PRId64
           " us, of the deadline after %" PRId64
           " us, and sent nothing once it knew.\n",
           lag[0], lag[1]);
    return 0;
  }
  printf("Verdict: FAIL - see the lines marked !! above.\n");
  return 1;
}
