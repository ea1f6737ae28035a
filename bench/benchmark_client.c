/*
 * benchmark_client.c - crpc's closed-loop load client for
 * grpc.testing.BenchmarkService, on the async client API
 * (crpc/channel_async.h): every call is driven from completion callbacks
 * on the channels' loop threads, no thread per call.
 *
 *   benchmark_client --target=127.0.0.1:N --rpc=unary|pingpong|server_stream
 *       [--channels=M] [--outstanding=N] [--req-size=B] [--resp-size=B]
 *       [--warmup=S] [--duration=S] [--threads=T] [--window=BYTES]
 *
 * Same flags, same behaviour and the same RESULT line as the shared
 * harness's gRPC C++ client (../shared/bench/grpcpp/bench_client.cc), so
 * `run.sh --client` takes it. --threads is accepted for that and ignored:
 * each channel is one connection with one loop thread. --window sets each
 * channel's HTTP/2 stream receive window (default 1 MiB; gRPC C++ grows its
 * windows by BDP probing, crpc's are fixed).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "crpc/channel_async.h"
#include "grpc/testing/benchmark_service.pb-c.h"

typedef enum { RPC_UNARY, RPC_PINGPONG, RPC_SSTREAM } rpc_kind;

/* What every slot shares; written before the slots start. */
typedef struct bench {
  rpc_kind kind;
  uint8_t *req;
  size_t req_len;
  int64_t warm_end, end;
  atomic_int running; /* slots not finished */
} bench;

/* Per channel: touched only by its loop thread once calls run. */
typedef struct lane {
  crpc_channel *ch;
  uint32_t *lat_ns;
  size_t n_lat, cap_lat;
  uint64_t window_ops, total_ops, errors;
  char first_error[160];
} lane;

typedef struct slot {
  bench *b;
  lane *lane;
  crpc_call *call; /* streaming kinds */
  int64_t sent_at;
} slot;

static void record(slot *s, int64_t now, bool latency) {
  lane *l = s->lane;
  l->total_ops++;
  if (now < s->b->warm_end || now >= s->b->end) return;
  l->window_ops++;
  if (!latency) return;
  if (l->n_lat == l->cap_lat) {
    size_t cap = l->cap_lat ? l->cap_lat * 2 : 1 << 16;
    uint32_t *p = realloc(l->lat_ns, cap * sizeof(*p));
    if (p == NULL) return;
    l->lat_ns = p;
    l->cap_lat = cap;
  }
  int64_t d = now - s->sent_at;
  l->lat_ns[l->n_lat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static void fail(slot *s, crpc_code code, const char *why) {
  lane *l = s->lane;
  if (l->errors++ == 0) {
    snprintf(l->first_error, sizeof(l->first_error), "%s: %s",
             crpc_code_name(code), why);
  }
}

static void slot_finished(slot *s) { atomic_fetch_sub(&s->b->running, 1); }

/* ---- unary: one call at a time per slot, reissued from its completion */

static void unary_issue(slot *s);

static void unary_done(crpc_code code, crpc_message *resp,
                       const crpc_status *st, void *arg) {
  slot *s = arg;
  int64_t now = crpc_now_ns();
  free(resp->data);
  if (code == CRPC_OK) {
    record(s, now, true);
  } else {
    fail(s, code, st->message);
  }
  if (now >= s->b->end || code != CRPC_OK) {
    slot_finished(s);
  } else {
    unary_issue(s);
  }
}

static void unary_issue(slot *s) {
  s->sent_at = crpc_now_ns();
  crpc_code code = crpc_unary_call_async(
      s->lane->ch, crpc_ctx_background(),
      "/grpc.testing.BenchmarkService/UnaryCall", NULL, s->b->req,
      s->b->req_len, unary_done, s);
  if (code != CRPC_OK) {
    fail(s, code, "start");
    slot_finished(s);
  }
}

/* ---- streams: ping-pong (a send per reply) and server streaming ---- */

static void stream_message(crpc_call *call, const crpc_message *msg,
                           void *arg) {
  (void)msg;
  slot *s = arg;
  int64_t now = crpc_now_ns();
  record(s, now, s->b->kind == RPC_PINGPONG);
  if (now >= s->b->end) {
    if (s->b->kind == RPC_PINGPONG) {
      crpc_call_close_send(call);
    } else {
      crpc_call_free(s->call); /* cancels: the server stops streaming */
      s->call = NULL;
    }
    return;
  }
  if (s->b->kind == RPC_PINGPONG) {
    s->sent_at = now;
    crpc_code code = crpc_call_send_async(call, s->b->req, s->b->req_len, 0);
    if (code != CRPC_OK) fail(s, code, "send");
  }
}

static void stream_done(crpc_call *call, const crpc_status *st, void *arg) {
  (void)call;
  slot *s = arg;
  /* A server stream ends by our own cancel; anything else is an error. */
  bool ours = s->b->kind == RPC_SSTREAM && s->call == NULL;
  if (st->code != CRPC_OK && !ours) fail(s, st->code, st->message);
  if (s->call != NULL) crpc_call_free(s->call);
  s->call = NULL;
  slot_finished(s);
}

static const crpc_call_reactor kStream = {
    .on_message = stream_message,
    .on_done = stream_done,
};

static void stream_start(slot *s) {
  const char *method = s->b->kind == RPC_PINGPONG
                           ? "/grpc.testing.BenchmarkService/StreamingCall"
                           : "/grpc.testing.BenchmarkService/StreamingFromServer";
  crpc_code code = crpc_call_start_async(s->lane->ch, crpc_ctx_background(),
                                         method, NULL, NULL, &kStream, s,
                                         &s->call);
  if (code != CRPC_OK) {
    fail(s, code, "start");
    slot_finished(s);
    return;
  }
  /* Before any reply can come back, so it never races a callback. */
  s->sent_at = crpc_now_ns();
  code = crpc_call_send_async(s->call, s->b->req, s->b->req_len, 0);
  if (code == CRPC_OK && s->b->kind == RPC_SSTREAM) {
    code = crpc_call_close_send(s->call);
  }
  if (code != CRPC_OK) fail(s, code, "first send");
}

/* ---- main ------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(const uint32_t *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1] / 1000.0;
}

static bool arg(const char *a, const char *name, const char **val) {
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0 || a[n] != '=') return false;
  *val = a + n + 1;
  return true;
}

static double tv_us(struct timeval t) { return t.tv_sec * 1e6 + t.tv_usec; }

/* What main set up before a failed start: the first n lanes' channels and
 * the arrays (so a sanitizer run that fails to connect reports no leak). */
static void free_setup(lane *lanes, int n, slot *slots, uint8_t *req) {
  for (int i = 0; i < n; i++) crpc_channel_free(lanes[i].ch);
  free(lanes);
  free(slots);
  free(req);
}

int main(int argc, char **argv) {
  const char *target = "127.0.0.1:50051", *rpc = "unary", *v;
  int channels = 1, outstanding = 1, req_size = 0, resp_size = 0;
  double warmup = 1, duration = 5;
  long window = 1 << 20;
  for (int i = 1; i < argc; i++) {
    if (arg(argv[i], "--target", &v)) target = v;
    else if (arg(argv[i], "--rpc", &v)) rpc = v;
    else if (arg(argv[i], "--channels", &v)) channels = atoi(v);
    else if (arg(argv[i], "--outstanding", &v)) outstanding = atoi(v);
    else if (arg(argv[i], "--req-size", &v)) req_size = atoi(v);
    else if (arg(argv[i], "--resp-size", &v)) resp_size = atoi(v);
    else if (arg(argv[i], "--warmup", &v)) warmup = atof(v);
    else if (arg(argv[i], "--duration", &v)) duration = atof(v);
    else if (arg(argv[i], "--window", &v)) window = atol(v);
    else if (arg(argv[i], "--threads", &v)) continue;
    else {
      fprintf(stderr,
              "usage: %s [--target=H:P] [--rpc=unary|pingpong|server_stream] "
              "[--channels=M] [--outstanding=N] [--req-size=B] "
              "[--resp-size=B] [--warmup=S] [--duration=S] [--window=B]\n",
              argv[0]);
      return 2;
    }
  }
  bench b = {0};
  if (strcmp(rpc, "unary") == 0) b.kind = RPC_UNARY;
  else if (strcmp(rpc, "pingpong") == 0) b.kind = RPC_PINGPONG;
  else if (strcmp(rpc, "server_stream") == 0) b.kind = RPC_SSTREAM;
  else {
    fprintf(stderr, "unknown --rpc=%s\n", rpc);
    return 2;
  }
  if (channels < 1 || outstanding < 1 || req_size < 0 || resp_size < 0 ||
      window < 1 || window > INT32_MAX) {
    fprintf(stderr, "bad flag values\n");
    return 2;
  }

  uint8_t *body = calloc(1, (size_t)req_size + 1);
  Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
  payload.body.data = body;
  payload.body.len = (size_t)req_size;
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_size = resp_size;
  req.payload = &payload;
  b.req_len = grpc__testing__simple_request__get_packed_size(&req);
  b.req = malloc(b.req_len + 1);
  grpc__testing__simple_request__pack(&req, b.req);
  free(body);

  lane *lanes = calloc((size_t)channels, sizeof(*lanes));
  slot *slots = calloc((size_t)outstanding, sizeof(*slots));
  crpc_channel_options o = {0};
  o.max_recv_message_size = 64u << 20;
  o.initial_stream_window_size = (uint32_t)window;
  o.initial_connection_window_size = (uint32_t)(window * 16 < INT32_MAX
                                                    ? window * 16
                                                    : INT32_MAX);
  if (o.initial_connection_window_size < (16u << 20)) {
    o.initial_connection_window_size = 16u << 20;
  }
  for (int i = 0; i < channels; i++) {
    lanes[i].ch = crpc_channel_new(target, &o);
    if (lanes[i].ch == NULL) {
      fprintf(stderr, "benchmark_client: bad target %s\n", target);
      free_setup(lanes, i, slots, b.req);
      return 1;
    }
    /* Connect before the clock starts, as the gRPC C++ client does. */
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(),
                                          5000000000LL);
    crpc_status st = {0};
    crpc_message m = {0};
    uint8_t probe[8];
    Grpc__Testing__SimpleRequest p = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    size_t plen = grpc__testing__simple_request__pack(&p, probe);
    crpc_code code = crpc_unary_call(
        lanes[i].ch, ctx, "/grpc.testing.BenchmarkService/UnaryCall", NULL,
        probe, plen, &m, &st);
    crpc_ctx_release(ctx);
    free(m.data);
    if (code != CRPC_OK) {
      fprintf(stderr, "benchmark_client: could not reach %s: %s: %s\n",
              target, crpc_code_name(code), st.message ? st.message : "");
      crpc_status_clear(&st);
      free_setup(lanes, i + 1, slots, b.req);
      return 1;
    }
    crpc_status_clear(&st);
  }

  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  int64_t start = crpc_now_ns();
  b.warm_end = start + (int64_t)(warmup * 1e9);
  b.end = b.warm_end + (int64_t)(duration * 1e9);
  int64_t hard_end = b.end + 10 * 1000000000LL;
  atomic_store(&b.running, outstanding);
  for (int i = 0; i < outstanding; i++) {
    slots[i].b = &b;
    slots[i].lane = &lanes[i % channels];
  }
  for (int i = 0; i < outstanding; i++) {
    if (b.kind == RPC_UNARY) {
      unary_issue(&slots[i]);
    } else {
      stream_start(&slots[i]);
    }
  }
  while (atomic_load(&b.running) > 0 && crpc_now_ns() < hard_end) {
    usleep(2000);
  }
  getrusage(RUSAGE_SELF, &ru1);
  int stuck = atomic_load(&b.running);

  size_t n = 0;
  uint64_t window_ops = 0, total_ops = 0, errors = 0;
  const char *first_error = "";
  for (int i = 0; i < channels; i++) n += lanes[i].n_lat;
  uint32_t *lat = malloc((n + 1) * sizeof(*lat));
  n = 0;
  for (int i = 0; i < channels; i++) {
    lane *l = &lanes[i];
    if (l->n_lat > 0) memcpy(lat + n, l->lat_ns, l->n_lat * sizeof(*lat));
    n += l->n_lat;
    window_ops += l->window_ops;
    total_ops += l->total_ops;
    errors += l->errors;
    if (!first_error[0]) first_error = l->first_error;
  }
  qsort(lat, n, sizeof(*lat), cmp_u32);
  double cpu_us = tv_us(ru1.ru_utime) - tv_us(ru0.ru_utime) +
                  tv_us(ru1.ru_stime) - tv_us(ru0.ru_stime);
  double qps = (double)window_ops / duration;
  double mbps = b.kind == RPC_SSTREAM
                    ? qps * resp_size / 1e6
                    : qps * (double)(req_size + resp_size) / 1e6;
  printf("RESULT rpc=%s channels=%d outstanding=%d threads=%d req_size=%d "
         "resp_size=%d qps=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
         "p999_us=%.1f mbps=%.2f window_ops=%llu total_ops=%llu errors=%llu "
         "cli_cpu_us_per_op=%.2f\n",
         rpc, channels, outstanding, channels, req_size, resp_size, qps,
         pct_us(lat, n, 0.50), pct_us(lat, n, 0.90), pct_us(lat, n, 0.99),
         pct_us(lat, n, 0.999), mbps, (unsigned long long)window_ops,
         (unsigned long long)total_ops, (unsigned long long)errors,
         total_ops ? cpu_us / (double)total_ops : 0.0);
  if (first_error[0]) {
    fprintf(stderr, "benchmark_client: first error: %s\n", first_error);
  }
  fflush(stdout);
  fflush(stderr);
  if (stuck > 0) {
    /* Calls still running past the hard end: leave without freeing. */
    fprintf(stderr, "benchmark_client: %d slots did not finish\n", stuck);
    _exit(1);
  }
  for (int i = 0; i < channels; i++) {
    crpc_channel_free(lanes[i].ch);
    free(lanes[i].lat_ns);
  }
  free(lanes);
  free(slots);
  free(lat);
  free(b.req);
  return errors && !window_ops ? 1 : 0;
}
