/*
 * transport_bench - crpc client and server in one process over loopback
 * TCP, one monotonic clock: cancel propagation, sends after the reset,
 * deadline lateness, unary calls/s and streaming messages/s with CPU cost.
 * Prints a table. Run with ./crpc.sh bench (optimised build).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "crpc/channel.h"
#include "crpc/server.h"

static atomic_int g_started;
static atomic_llong g_done_at;
static atomic_llong g_cancel_seen_at;
static atomic_int g_sends_after_cancel;
static atomic_int g_handler_done;

static crpc_code hang(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)call;
  (void)ud;
  atomic_fetch_add(&g_started, 1);
  crpc_code c = crpc_ctx_wait(ctx);
  atomic_store(&g_done_at, crpc_now_ns());
  atomic_store(&g_handler_done, 1);
  return c;
}

static void note_cancel(void *arg, const crpc_cause *cause) {
  (void)arg;
  (void)cause;
  atomic_store(&g_cancel_seen_at, crpc_now_ns());
}

/* Sends 1 KiB messages flat out until a send fails. */
static crpc_code flood(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)ud;
  crpc_on_cancel reg;
  atomic_store(&g_cancel_seen_at, 0);
  crpc_ctx_on_cancel(ctx, &reg, note_cancel, NULL);
  atomic_fetch_add(&g_started, 1);
  char buf[1024];
  memset(buf, 'f', sizeof(buf));
  crpc_code c;
  for (;;) {
    int64_t start = crpc_now_ns();
    c = crpc_server_call_send(call, buf, sizeof(buf));
    if (c != CRPC_OK) break;
    long long seen = atomic_load(&g_cancel_seen_at);
    if (seen != 0 && start > seen) atomic_fetch_add(&g_sends_after_cancel, 1);
  }
  atomic_store(&g_done_at, crpc_now_ns());
  crpc_ctx_remove_on_cancel(&reg);
  atomic_store(&g_handler_done, 1);
  return c;
}

static crpc_code echo(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)ctx;
  (void)ud;
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK || m.end) return c;
  c = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  return c;
}

static crpc_code stream_n(crpc_server_call *call, const crpc_ctx *ctx,
                          void *ud) {
  (void)ctx;
  (void)ud;
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK || m.end) return c;
  long n = atol((const char *)m.data);
  free(m.data);
  char buf[1024];
  memset(buf, 's', sizeof(buf));
  for (long i = 0; i < n && c == CRPC_OK; i++) {
    c = crpc_server_call_send(call, buf, sizeof(buf));
  }
  return c;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, int n, double p) {
  qsort(v, (size_t)n, sizeof(*v), cmp64);
  return v[(int)(p * (n - 1))];
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void wait_started(int before) {
  while (atomic_load(&g_started) == before) {
  }
}

static void bench_cancel(crpc_channel *ch, const char *method, bool busy,
                         int n) {
  int64_t *lat = calloc((size_t)n, sizeof(*lat));
  atomic_store(&g_sends_after_cancel, 0);
  for (int i = 0; i < n; i++) {
    crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
    crpc_call *call;
    int before = atomic_load(&g_started);
    atomic_store(&g_handler_done, 0);
    crpc_call_start(ch, ctx, method, NULL, &call);
    crpc_call_send(call, "x", 1);
    crpc_call_close_send(call);
    wait_started(before);
    if (busy) {
      for (int k = 0; k < 10; k++) {
        crpc_message m;
        if (crpc_call_recv(call, &m) == CRPC_OK) free(m.data);
      }
    }
    int64_t t0 = crpc_now_ns();
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "bench");
    while (!atomic_load(&g_handler_done)) {
    }
    lat[i] = atomic_load(&g_done_at) - t0;
    crpc_call_free(call);
    crpc_ctx_release(ctx);
  }
  char label[64];
  snprintf(label, sizeof(label), "cancel -> handler ctx done, %s",
           busy ? "busy streaming" : "idle handler");
  char unit[32];
  snprintf(unit, sizeof(unit), "us, %d calls", n);
  printf("| %-42s | %6lld | %6lld | %-18s |\n", label,
         (long long)pct(lat, n, 0.5) / 1000,
         (long long)pct(lat, n, 0.99) / 1000, unit);
  if (busy) {
    printf("| %-42s | %6d | %6s | %-18s |\n",
           "sends OK after the reset arrived (total)",
           atomic_load(&g_sends_after_cancel), "", "messages");
  }
  free(lat);
}

static void bench_deadline(crpc_channel *ch, int n) {
  int64_t *late = calloc((size_t)n, sizeof(*late));
  for (int i = 0; i < n; i++) {
    crpc_ctx *ctx =
        crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_MILLISECOND);
    int64_t deadline = crpc_ctx_deadline(ctx);
    crpc_message resp;
    crpc_unary_call(ch, ctx, "/bench.B/Hang", NULL, "x", 1, &resp, NULL);
    late[i] = crpc_now_ns() - deadline;
    crpc_ctx_release(ctx);
  }
  char unit[32];
  snprintf(unit, sizeof(unit), "us, %d calls", n);
  printf("| %-42s | %6lld | %6lld | %-18s |\n",
         "5 ms deadline seen late by the client",
         (long long)pct(late, n, 0.5) / 1000,
         (long long)pct(late, n, 0.99) / 1000, unit);
  free(late);
}

typedef struct unary_arg {
  crpc_channel *ch;
  int64_t until;
  long calls;
} unary_arg;

static void *unary_worker(void *p) {
  unary_arg *a = p;
  while (crpc_now_ns() < a->until) {
    crpc_message resp;
    if (crpc_unary_call(a->ch, crpc_ctx_background(), "/bench.B/Echo", NULL,
                        "0123456789", 10, &resp, NULL) == CRPC_OK) {
      free(resp.data);
      a->calls++;
    }
  }
  return NULL;
}

static void bench_unary(crpc_channel *ch, int threads) {
  unary_arg args[16];
  pthread_t tids[16];
  double cpu0 = cpu_seconds();
  int64_t t0 = crpc_now_ns();
  for (int i = 0; i < threads; i++) {
    args[i] = (unary_arg){ch, t0 + CRPC_SECOND, 0};
    pthread_create(&tids[i], NULL, unary_worker, &args[i]);
  }
  long total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(tids[i], NULL);
    total += args[i].calls;
  }
  double secs = (crpc_now_ns() - t0) / 1e9;
  double cpu = cpu_seconds() - cpu0;
  char label[64], unit[32];
  snprintf(label, sizeof(label), "unary calls/s, %d caller thread(s)", threads);
  snprintf(unit, sizeof(unit), "%.3f CPU s/1000", cpu / total * 1000);
  printf("| %-42s | %6.0f | %6s | %-18s |\n", label, total / secs, "", unit);
}

static void bench_stream(crpc_channel *ch) {
  const long n = 200000;
  char req[32];
  snprintf(req, sizeof(req), "%ld", n);
  double cpu0 = cpu_seconds();
  int64_t t0 = crpc_now_ns();
  crpc_call *call;
  crpc_call_start(ch, crpc_ctx_background(), "/bench.B/Stream", NULL, &call);
  crpc_call_send(call, req, strlen(req) + 1);
  crpc_call_close_send(call);
  long got = 0;
  for (;;) {
    crpc_message m;
    if (crpc_call_recv(call, &m) != CRPC_OK || m.end) break;
    free(m.data);
    got++;
  }
  crpc_call_finish(call, NULL);
  crpc_call_free(call);
  double secs = (crpc_now_ns() - t0) / 1e9;
  double cpu = cpu_seconds() - cpu0;
  char unit[32];
  snprintf(unit, sizeof(unit), "%.4f CPU s/1000", cpu / got * 1000);
  printf("| %-42s | %6.0f | %6s | %-18s |\n",
         "server-streaming 1 KiB messages/s", got / secs, "", unit);
}

/* Server-streaming calls of one 1 KiB message, back to back from one
 * thread, started either in one step (crpc_call_start_request, what
 * generated `_start` stubs call: one write from this thread while the
 * loop sleeps) or with start + send + close_send (each posted to the loop). */
static void bench_short_streams(crpc_channel *ch, bool one_step) {
  long calls = 0;
  double cpu0 = cpu_seconds();
  int64_t t0 = crpc_now_ns();
  while (crpc_now_ns() < t0 + CRPC_SECOND) {
    crpc_call *call = NULL;
    crpc_code c;
    if (one_step) {
      crpc_buf *req = crpc_buf_new(2);
      if (req == NULL) break;
      memcpy(crpc_buf_data(req), "1", 2);
      c = crpc_call_start_request(ch, crpc_ctx_background(), "/bench.B/Stream", NULL, req, &call);
    } else {
      c = crpc_call_start(ch, crpc_ctx_background(), "/bench.B/Stream", NULL, &call);
      if (c == CRPC_OK) c = crpc_call_send(call, "1", 2);
      if (c == CRPC_OK) c = crpc_call_close_send(call);
    }
    crpc_message m = {0};
    while (c == CRPC_OK && crpc_call_recv(call, &m) == CRPC_OK && !m.end) free(m.data);
    if (call != NULL && crpc_call_finish(call, NULL) == CRPC_OK) calls++;
    crpc_call_free(call);
  }
  double secs = (crpc_now_ns() - t0) / 1e9;
  double cpu = cpu_seconds() - cpu0;
  char unit[32];
  snprintf(unit, sizeof(unit), "%.3f CPU s/1000", calls > 0 ? cpu / calls * 1000 : 0.0);
  printf("| %-42s | %6.0f | %6s | %-18s |\n",
         one_step ? "1-msg server streams/s, start_request"
                  : "1-msg server streams/s, start+send+close",
         calls / secs, "", unit);
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * 4;
}

/* Open streams that do nothing: client call + server call, both in this
 * process. Handlers past the pool size wait in the queue without a thread,
 * which is what an idle stream costs beyond the pool. */
static void bench_idle_streams(const char *target, int n) {
  crpc_channel *ch = crpc_channel_new(target, NULL);
  crpc_call **calls = calloc((size_t)n, sizeof(*calls));
  crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
  /* Warm up: connection, pool, allocator arenas. */
  crpc_message resp;
  if (crpc_unary_call(ch, ctx, "/bench.B/Echo", NULL, "w", 1, &resp, NULL) ==
      CRPC_OK) {
    free(resp.data);
  }
  int before = atomic_load(&g_started);
  long rss0 = rss_kib();
  for (int i = 0; i < n; i++) {
    crpc_call_start(ch, ctx, "/bench.B/Hang", NULL, &calls[i]);
  }
  /* Wait until the server has them all (64 running, the rest queued). */
  int64_t until = crpc_now_ns() + 5 * CRPC_SECOND;
  while (atomic_load(&g_started) - before < 64 && crpc_now_ns() < until) {
  }
  crpc_ctx_sleep(crpc_ctx_background(), 200 * CRPC_MILLISECOND);
  long rss1 = rss_kib();
  char label[64], unit[32];
  snprintf(label, sizeof(label), "memory per idle stream (%d open)", n);
  snprintf(unit, sizeof(unit), "bytes, both ends");
  printf("| %-42s | %6ld | %6s | %-18s |\n", label, (rss1 - rss0) * 1024 / n,
         "", unit);
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "done");
  for (int i = 0; i < n; i++) crpc_call_free(calls[i]);
  crpc_ctx_release(ctx);
  free(calls);
  crpc_channel_free(ch);
}

/* Connections that carry nothing: one channel each (with its loop thread),
 * connected by one finished call, plus the server's side of each. */
static void bench_idle_connections(const char *target, int n) {
  crpc_channel **chs = calloc((size_t)n, sizeof(*chs));
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 30 * CRPC_SECOND);
  long rss0 = rss_kib();
  int connected = 0;
  for (int i = 0; i < n; i++) {
    chs[i] = crpc_channel_new(target, NULL);
    crpc_message resp;
    if (chs[i] != NULL &&
        crpc_unary_call(chs[i], ctx, "/bench.B/Echo", NULL, "c", 1, &resp,
                        NULL) == CRPC_OK) {
      free(resp.data);
      connected++;
    }
  }
  crpc_ctx_sleep(crpc_ctx_background(), 200 * CRPC_MILLISECOND);
  long rss1 = rss_kib();
  char label[64];
  snprintf(label, sizeof(label), "memory per idle connection (%d open)",
           connected);
  printf("| %-42s | %6ld | %6s | %-18s |\n", label,
         connected > 0 ? (rss1 - rss0) * 1024 / connected : 0, "",
         "bytes, both ends");
  for (int i = 0; i < n; i++) crpc_channel_free(chs[i]);
  crpc_ctx_release(ctx);
  free(chs);
}

int main(void) {
  crpc_server_options opts = {.max_concurrent_streams = 20000};
  crpc_server *s = crpc_server_new(&opts);
  crpc_server_add_method(s, "/bench.B/Hang", CRPC_UNARY, hang, NULL);
  crpc_server_add_method(s, "/bench.B/Flood", CRPC_SERVER_STREAMING, flood,
                         NULL);
  crpc_server_add_method(s, "/bench.B/Echo", CRPC_UNARY, echo, NULL);
  crpc_server_add_method(s, "/bench.B/Stream", CRPC_SERVER_STREAMING, stream_n,
                         NULL);
  int port;
  if (crpc_server_listen(s, "127.0.0.1:0", &port) != CRPC_OK ||
      crpc_server_start(s) != CRPC_OK) {
    return 1;
  }
  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  crpc_channel *ch = crpc_channel_new(target, NULL);
  printf("crpc transport, loopback TCP, client and server in one process\n\n");
  printf("| %-42s | %6s | %6s | %-18s |\n", "measure", "p50", "p99", "unit");
  printf(
      "|--------------------------------------------|--------|--------|"
      "--------------------|\n");
  bench_cancel(ch, "/bench.B/Hang", false, 1000);
  bench_cancel(ch, "/bench.B/Flood", true, 1000);
  bench_deadline(ch, 200);
  bench_unary(ch, 1);
  bench_unary(ch, 4);
  bench_stream(ch);
  bench_short_streams(ch, false);
  bench_short_streams(ch, true);
  bench_short_streams(ch, false);
  bench_short_streams(ch, true);
  crpc_channel_free(ch);
  bench_idle_streams(target, 10000);
  bench_idle_connections(target, 500);
  crpc_server_free(s);
  return 0;
}
