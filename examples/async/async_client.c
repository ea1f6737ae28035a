/*
 * async_client - calls the four methods of asyncdemo.Jobs with the blocking
 * generated client stubs, then starts one more long Work call and cancels
 * it midway. Its Shout call sends every request before reading a reply, so
 * that the server has to pause receiving.
 *
 *   async_client [--target host:port]     (default localhost:50051)
 *
 * The client does not care how the server serves a method: blocking and
 * async handlers look the same on the wire. Exits 0 if every call ended as
 * expected (the cancelled one CANCELLED), else 1.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "examples/async/jobs.crpc.h"

/* Each call's deadline: it bounds connecting as well as the call and
 * travels to the server as grpc-timeout. */
#define CALL_TIMEOUT (10 * CRPC_SECOND)

static int failed(const char *what, crpc_code code, const crpc_status *st) {
  printf("%s failed: %s: %s\n", what, crpc_code_name(code),
         st != NULL && st->message != NULL ? st->message : "");
  return 1;
}

static int echo(crpc_channel *ch, const char *text) {
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) return 1;
  Asyncdemo__EchoRequest req = ASYNCDEMO__ECHO_REQUEST__INIT;
  req.text = (char *)text; /* protoc-c's char*; not modified */
  Asyncdemo__EchoReply *reply = NULL;
  crpc_status st = {0};
  crpc_code code = asyncdemo_jobs_echo(ch, ctx, NULL, &req, &reply, &st);
  int rc = 0;
  if (code == CRPC_OK) {
    printf("Echo: \"%s\"\n", reply->text);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  } else {
    rc = failed("Echo", code, &st);
  }
  crpc_status_clear(&st);
  crpc_ctx_release(ctx);
  return rc;
}

/* Enough bytes (count * payload_size) to fill the server's 64 KiB send
 * buffer many times over, so its reactor has to wait for on_send_ready. */
static int count(crpc_channel *ch, int32_t n, int32_t payload_size) {
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) return 1;
  Asyncdemo__CountRequest req = ASYNCDEMO__COUNT_REQUEST__INIT;
  req.count = n;
  req.payload_size = payload_size;
  crpc_call *call = NULL;
  crpc_code code = asyncdemo_jobs_count_start(ch, ctx, NULL, &req, &call);
  int32_t got = 0;
  uint64_t bytes = 0;
  bool in_order = true;
  while (code == CRPC_OK) {
    Asyncdemo__Tick *tick;
    code = asyncdemo_jobs_count_recv(call, &tick);
    if (code != CRPC_OK || tick == NULL) break;
    if (tick->seq != got) in_order = false;
    got++;
    bytes += tick->payload.len;
    protobuf_c_message_free_unpacked(&tick->base, NULL);
  }
  crpc_status st = {0};
  if (call != NULL) code = crpc_call_finish(call, &st);
  int rc = 0;
  if (code != CRPC_OK) {
    rc = failed("Count", code, &st);
  } else {
    printf("Count: received %d ticks, %llu payload bytes, %s: %s\n", got,
           (unsigned long long)bytes, in_order ? "in order" : "OUT OF ORDER",
           crpc_code_name(code));
    if (got != n || !in_order) rc = 1;
  }
  crpc_status_clear(&st);
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  return rc;
}

/* One Work call. cancel_after > 0: cancel the call's ctx once that many
 * progress messages are in, as a user pressing "stop" would; the call must
 * then end CANCELLED, and the server's worker must stop early. */
static int work(crpc_channel *ch, int32_t steps, int32_t step_ms,
                int cancel_after) {
  const char *name = cancel_after > 0 ? "Work (cancelled)" : "Work";
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) return 1;
  Asyncdemo__WorkRequest req = ASYNCDEMO__WORK_REQUEST__INIT;
  req.steps = steps;
  req.step_ms = step_ms;
  crpc_call *call = NULL;
  crpc_code code = asyncdemo_jobs_work_start(ch, ctx, NULL, &req, &call);
  int got = 0;
  int64_t cancelled_at = 0;
  while (code == CRPC_OK) {
    Asyncdemo__Progress *p;
    code = asyncdemo_jobs_work_recv(call, &p);
    if (code != CRPC_OK || p == NULL) break;
    got++;
    protobuf_c_message_free_unpacked(&p->base, NULL);
    if (got == cancel_after) {
      printf("%s: %d of %d steps done, cancelling\n", name, got, steps);
      cancelled_at = crpc_now_ns();
      crpc_ctx_cancel(ctx, CRPC_CANCELLED, "client has seen enough");
    }
  }
  if (cancelled_at != 0) {
    /* The recv in progress (or the next one) returns at once with the
     * cause's code: no waiting for the server to agree. */
    printf("  recv returned %s %lld us after the cancel\n",
           crpc_code_name(code),
           (long long)((crpc_now_ns() - cancelled_at) / CRPC_MICROSECOND));
  }
  crpc_status st = {0};
  if (call != NULL) code = crpc_call_finish(call, &st);
  int rc = 0;
  if (cancel_after > 0) {
    const crpc_cause *why = crpc_ctx_cause(ctx);
    printf("  final status %s: \"%s\"\n", crpc_code_name(code),
           st.message != NULL ? st.message : "");
    if (why != NULL)
      printf("  ctx cause: %s, origin %s: \"%s\"\n", crpc_code_name(why->code),
             crpc_origin_name(why->origin), why->message);
    if (code != CRPC_CANCELLED || got != cancel_after) rc = 1;
  } else if (code != CRPC_OK) {
    rc = failed(name, code, &st);
  } else {
    printf("%s: %d of %d steps done: %s\n", name, got, steps,
           crpc_code_name(code));
    if (got != steps) rc = 1;
  }
  crpc_status_clear(&st);
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  return rc;
}

/* Shout's sizes. The replies (1000 x 4000 bytes) fill the server's send
 * buffer (64 KiB) many times over; the requests (about 20 bytes each, 20 KB
 * in all) fit in the server's receive window (64 KiB), which is what lets
 * this client send them all before reading (see shout). */
#define SHOUT_REQUESTS 1000
#define SHOUT_TIMES 400

/* Whether reply is request i's text ("shout %04d") shouted SHOUT_TIMES
 * times: also checks that replies come in request order. */
static bool shouted(const char *reply, int i) {
  char upper[32];
  int len = snprintf(upper, sizeof upper, "SHOUT %04d", i);
  if (strlen(reply) != (size_t)len * SHOUT_TIMES) return false;
  for (int t = 0; t < SHOUT_TIMES; t++)
    if (memcmp(reply + (size_t)t * (size_t)len, upper, (size_t)len) != 0)
      return false;
  return true;
}

/* All requests first, then the replies: the client the server's pause is
 * for, one that does not read while it sends. Its replies stop at its own
 * stream window (64 KiB) since it is not reading; the server's send buffer
 * fills behind them and the server stops taking requests until we read.
 * That is safe here only because every request fits in the server's
 * receive window, so no send waits for the server. A client sending more
 * than that must read while it sends, from a second thread (route_guide's
 * RouteChat): sending alone, its send would wait for the server to read,
 * and the server would wait for it to read, until the deadline. */
static int shout(crpc_channel *ch) {
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) return 1;
  crpc_call *call = NULL;
  crpc_code code = asyncdemo_jobs_shout_start(ch, ctx, NULL, &call);
  int sent = 0;
  while (code == CRPC_OK && sent < SHOUT_REQUESTS) {
    char text[32];
    snprintf(text, sizeof text, "shout %04d", sent);
    Asyncdemo__ShoutRequest req = ASYNCDEMO__SHOUT_REQUEST__INIT;
    req.text = text;
    req.times = SHOUT_TIMES;
    code = asyncdemo_jobs_shout_send(call, &req);
    if (code == CRPC_OK) sent++;
  }
  /* The server finishes once it has seen the end of our stream. */
  if (code == CRPC_OK) code = crpc_call_close_send(call);
  int got = 0;
  uint64_t bytes = 0;
  bool in_order = true;
  while (code == CRPC_OK) {
    Asyncdemo__ShoutReply *reply;
    code = asyncdemo_jobs_shout_recv(call, &reply);
    if (code != CRPC_OK || reply == NULL) break;
    if (!shouted(reply->text, got)) in_order = false;
    got++;
    bytes += strlen(reply->text);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  crpc_status st = {0};
  if (call != NULL) code = crpc_call_finish(call, &st);
  int rc = 0;
  if (code != CRPC_OK) {
    rc = failed("Shout", code, &st);
  } else {
    printf("Shout: sent %d requests, received %d replies, %llu text bytes, "
           "%s: %s\n",
           sent, got, (unsigned long long)bytes,
           in_order ? "in order" : "OUT OF ORDER", crpc_code_name(code));
    if (sent != SHOUT_REQUESTS || got != sent || !in_order) rc = 1;
  }
  crpc_status_clear(&st);
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  return rc;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *target = "localhost:50051";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
      target = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--target host:port]\n", argv[0]);
      return 2;
    }
  }
  crpc_channel *ch = crpc_channel_new(target, NULL);
  if (ch == NULL) return 1; /* the reason is already on stderr */
  int failures = 0;
  failures += echo(ch, "hello from the loop thread");
  failures += count(ch, 2000, 1024);
  failures += work(ch, 5, 20, 0);
  failures += shout(ch);
  /* 50 steps of 100 ms would take 5 s; we stop after 3. */
  failures += work(ch, 50, 100, 3);
  crpc_channel_free(ch);
  return failures == 0 ? 0 : 1;
}
