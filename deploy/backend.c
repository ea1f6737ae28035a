/*
 * deploy/backend.c - the crpc backend the deploy tests put behind nginx,
 * HAProxy and crpc's own round-robin channel.
 *
 *   backend --port=N [--host=127.0.0.1] [--name=b1] [--grace_ms=2000]
 *           [--drain_ms=0] [--keepalive_ms=0] [--keepalive_timeout_ms=0]
 *
 * Serves crpc.test.Test (rpc/testing/README.md: Echo, Count, Collect, Chat,
 * Hang, Report), grpc.health.v1 and reflection, plus crpc.deploy.Backend:
 *   When   request "<tag> [wait_ms]"; reply "done_ns=<CLOCK_MONOTONIC ns>
 *          code=<name> origin=<name> start_ns=<ns> timeout_ms=<n>" for the
 *          call that carried x-tag=<tag>: when its ctx ended while the
 *          handler ran (0 if it did not) and why, when the handler started
 *          and the deadline it had left then (-1: none). Waits up to
 *          wait_ms (default 5000) for that call to end; NOT_FOUND after.
 *          The clock is the machine's, so a test in another process (or
 *          network namespace) can subtract its own timestamps from it.
 *   Stats  reply "name=<n> calls=<handled> running=<handlers now>
 *          ctx_live=<crpc_ctx_live_count()>".
 * An interceptor on every blocking call adds x-backend: <name> to the
 * response headers and the trailers (so callers can count where calls
 * went), copies a request's x-details-bin into grpc-status-details-bin, and
 * compresses responses with the encoding named by x-compress.
 *
 * Prints "PORT <n>" once serving. On SIGTERM, SIGINT or EOF on stdin it
 * stops the way a rolling restart wants: health turns NOT_SERVING (proxies
 * that check it stop sending new calls), it keeps serving for drain_ms,
 * then crpc_server_shutdown(grace) (listener closed, two-phase GOAWAY,
 * calls still running get grace_ms), prints "STOPPED calls=<n>" and exits 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "crpc/admin.h"
#include "crpc/interceptor.h"
#include "crpc/server.h"
#include "rpc/testing/test_service.h"

/* ---- when each tagged call's ctx ended ------------------------------------ */

typedef struct ending {
  struct ending *next;
  char tag[128];
  char text[200];
} ending;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static ending *g_endings;
static atomic_long g_calls;
static crpc_test_service *g_svc;
static const char *g_name = "backend";

static void record_ending(const char *tag, const char *text) {
  ending *e = calloc(1, sizeof *e);
  if (e == NULL) return;
  snprintf(e->tag, sizeof e->tag, "%s", tag);
  snprintf(e->text, sizeof e->text, "%s", text);
  pthread_mutex_lock(&g_mu);
  e->next = g_endings;
  g_endings = e;
  pthread_cond_broadcast(&g_cond);
  pthread_mutex_unlock(&g_mu);
}

/* What the interceptor keeps on its stack for one tagged call. */
typedef struct watch {
  int64_t start_ns;
  long long timeout_ms;
  atomic_llong done_ns; /* 0 until the ctx ends while the handler runs */
  crpc_cause cause;
  crpc_on_cancel reg;
} watch;

static void on_done(void *arg, const crpc_cause *cause) {
  watch *w = arg;
  w->cause = *cause;
  atomic_store(&w->done_ns, crpc_now_ns()); /* last access: see below */
}

static bool md_value(const crpc_metadata *md, const char *key, char *out,
                     size_t cap) {
  crpc_metadata_entry e;
  if (!crpc_metadata_get(md, key, &e)) return false;
  snprintf(out, cap, "%.*s", (int)e.value_len, (const char *)e.value);
  return true;
}

static crpc_code icpt_call(crpc_server_call *call, const crpc_ctx *ctx,
                           const crpc_server_call_info *info,
                           crpc_server_next *next, void *ud) {
  (void)info;
  (void)ud;
  atomic_fetch_add(&g_calls, 1);
  const crpc_metadata *req = crpc_server_call_request_metadata(call);
  crpc_metadata_add_str(crpc_server_call_response_headers(call), "x-backend",
                        g_name);
  crpc_metadata_add_str(crpc_server_call_trailers(call), "x-backend", g_name);
  crpc_metadata_entry e;
  if (crpc_metadata_get(req, "x-details-bin", &e)) {
    crpc_metadata_add(crpc_server_call_trailers(call),
                      "grpc-status-details-bin", e.value, e.value_len);
  }
  char enc[16];
  if (md_value(req, "x-compress", enc, sizeof enc)) {
    crpc_server_call_set_compression(call, enc);
  }
  char tag[128];
  if (!md_value(req, "x-tag", tag, sizeof tag)) {
    return crpc_server_next_call(next, ctx);
  }
  int64_t left = crpc_ctx_remaining(ctx);
  watch w = {.start_ns = crpc_now_ns(),
             .timeout_ms = left == CRPC_NO_DEADLINE
                               ? -1
                               : (long long)(left / CRPC_MILLISECOND)};
  atomic_init(&w.done_ns, 0);
  bool registered = crpc_ctx_on_cancel(ctx, &w.reg, on_done, &w);
  if (!registered) { /* born done (e.g. a zero grpc-timeout) */
    w.cause = *crpc_ctx_cause(ctx);
    atomic_store(&w.done_ns, w.start_ns);
  }
  crpc_code code = crpc_server_next_call(next, ctx);
  /* The ctx is ended "call finished" only after we return, so a cause seen
   * by now came from the wire, a deadline or shutdown. RUNNING: on_done is
   * writing into w on another thread; its store of done_ns is its last. */
  crpc_on_cancel_state st =
      registered ? crpc_ctx_remove_on_cancel(&w.reg) : CRPC_ON_CANCEL_RAN;
  if (st == CRPC_ON_CANCEL_RUNNING) {
    while (atomic_load(&w.done_ns) == 0) sched_yield();
  } else if (st == CRPC_ON_CANCEL_REMOVED && crpc_ctx_is_done(ctx)) {
    /* Done, but the cancelling thread had not reached our callback yet:
     * the handler saw the end (that is why it returned), so now is when
     * it learned of it, within microseconds of the cancel. */
    w.cause = *crpc_ctx_cause(ctx);
    atomic_store(&w.done_ns, crpc_now_ns());
  }
  long long done = atomic_load(&w.done_ns);
  char text[200];
  if (done != 0) {
    char origin[32];
    snprintf(origin, sizeof origin, "%s", crpc_origin_name(w.cause.origin));
    for (char *p = origin; *p; p++) {
      if (*p == ' ') *p = '_';
    }
    snprintf(text, sizeof text,
             "done_ns=%lld code=%s origin=%s start_ns=%" PRId64
             " timeout_ms=%lld",
             done, crpc_code_name(w.cause.code), origin, w.start_ns,
             w.timeout_ms);
  } else {
    snprintf(text, sizeof text,
             "done_ns=0 code=%s origin=none start_ns=%" PRId64
             " timeout_ms=%lld",
             crpc_code_name(code), w.start_ns, w.timeout_ms);
  }
  record_ending(tag, text);
  return code;
}

/* ---- crpc.deploy.Backend ------------------------------------------------- */

static crpc_code when(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)ud;
  crpc_message m = {0};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc != CRPC_OK) return rc;
  char req[160] = "", tag[128] = "";
  long wait_ms = 5000;
  if (!m.end) {
    snprintf(req, sizeof req, "%.*s", (int)m.len, (const char *)m.data);
    free(m.data);
  }
  if (sscanf(req, "%127s %ld", tag, &wait_ms) < 1) tag[0] = '\0';
  crpc_ctx *limit = crpc_ctx_with_timeout(ctx, wait_ms * CRPC_MILLISECOND);
  if (limit == NULL) return CRPC_RESOURCE_EXHAUSTED;
  char text[200] = "";
  pthread_mutex_lock(&g_mu);
  for (;;) {
    const ending *found = NULL;
    for (const ending *p = g_endings; p != NULL; p = p->next) {
      if (strcmp(p->tag, tag) == 0) found = p;
    }
    if (found != NULL) {
      snprintf(text, sizeof text, "%s", found->text);
      break;
    }
    if (crpc_ctx_wait_cond(limit, &g_cond, &g_mu) != CRPC_OK) break;
  }
  pthread_mutex_unlock(&g_mu);
  crpc_ctx_release(limit);
  if (text[0] == '\0') {
    return crpc_server_call_error(call, CRPC_NOT_FOUND, "no ending for %s",
                                  tag);
  }
  return crpc_server_call_send(call, text, strlen(text));
}

static crpc_code stats(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)ctx;
  (void)ud;
  crpc_message m = {0};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc != CRPC_OK) return rc;
  free(m.data);
  char text[160];
  /* This call itself is one running handler and holds its ctx. */
  snprintf(text, sizeof text, "name=%s calls=%ld running=%d ctx_live=%zu",
           g_name, atomic_load(&g_calls), crpc_test_service_running(g_svc),
           crpc_ctx_live_count());
  return crpc_server_call_send(call, text, strlen(text));
}

/* ---- main ------------------------------------------------------------------ */

static long flag_long(const char *arg, const char *name, long dflt) {
  size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0 || arg[n] != '=') return dflt;
  return strtol(arg + n + 1, NULL, 10);
}

static const char *flag_str(const char *arg, const char *name,
                            const char *dflt) {
  size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0 || arg[n] != '=') return dflt;
  return arg + n + 1;
}

/* Blocks until SIGTERM/SIGINT (through sfd) or EOF on stdin. */
static void wait_for_stop(int sfd) {
  struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN},
                          {.fd = 0, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[0].revents) return;
    if (fds[1].revents) {
      char buf[64];
      ssize_t n = read(0, buf, sizeof buf);
      if (n <= 0) return; /* EOF: the parent is gone or wants us gone */
    }
  }
}

int main(int argc, char **argv) {
  long port = -1, grace_ms = 2000, drain_ms = 0, ka_ms = 0, ka_timeout_ms = 0;
  const char *host = "127.0.0.1";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) continue;
    a += 2;
    port = flag_long(a, "port", port);
    grace_ms = flag_long(a, "grace_ms", grace_ms);
    drain_ms = flag_long(a, "drain_ms", drain_ms);
    ka_ms = flag_long(a, "keepalive_ms", ka_ms);
    ka_timeout_ms = flag_long(a, "keepalive_timeout_ms", ka_timeout_ms);
    host = flag_str(a, "host", host);
    g_name = flag_str(a, "name", g_name);
  }
  if (port < 0 || port > 65535) {
    fprintf(stderr, "usage: backend --port=N [--host=H] [--name=S] "
                    "[--grace_ms=N] [--drain_ms=N] [--keepalive_ms=N] "
                    "[--keepalive_timeout_ms=N]\n");
    return 2;
  }
  /* Blocked before any crpc thread exists, so every thread inherits the
   * mask and the signals can only arrive through the signalfd. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);

  crpc_server_options opts = {
      .keepalive_time_ns = ka_ms * CRPC_MILLISECOND,
      .keepalive_timeout_ns = ka_timeout_ms * CRPC_MILLISECOND,
      /* Proxies and test channels ping as often as the tests make them. */
      .min_ping_interval_ns = -1,
  };
  crpc_server *server = crpc_server_new(&opts);
  g_svc = crpc_test_service_new();
  crpc_health *health = NULL;
  static const crpc_server_interceptor icpt = {.name = "deploy-backend",
                                               .call = icpt_call};
  if (sfd < 0 || server == NULL || g_svc == NULL ||
      crpc_test_service_register(g_svc, server) != CRPC_OK ||
      crpc_server_add_method(server, "/crpc.deploy.Backend/When", CRPC_UNARY,
                             when, NULL) != CRPC_OK ||
      crpc_server_add_method(server, "/crpc.deploy.Backend/Stats", CRPC_UNARY,
                             stats, NULL) != CRPC_OK ||
      crpc_server_add_interceptor(server, &icpt) != CRPC_OK ||
      crpc_server_add_admin_services(server, &health) != CRPC_OK) {
    fprintf(stderr, "backend: set-up failed\n");
    return 1;
  }
  char addr[96], err[CRPC_SERVER_ERROR_MAX];
  int bound = 0;
  snprintf(addr, sizeof addr, "%s:%ld", host, port);
  if (crpc_server_listen_err(server, addr, &bound, err) != CRPC_OK ||
      crpc_server_start(server) != CRPC_OK) {
    fprintf(stderr, "backend %s: %s\n", g_name, err);
    return 1;
  }
  printf("PORT %d\n", bound);
  fflush(stdout);

  wait_for_stop(sfd);
  /* Out of rotation first, while still serving everything that comes. */
  crpc_health_drain(health);
  if (drain_ms > 0) {
    struct timespec ts = {drain_ms / 1000, (drain_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
  crpc_server_shutdown(server, grace_ms * CRPC_MILLISECOND);
  printf("STOPPED calls=%ld\n", atomic_load(&g_calls));
  fflush(stdout);
  crpc_server_free(server);
  crpc_test_service_free(g_svc);
  pthread_mutex_lock(&g_mu);
  while (g_endings != NULL) {
    ending *e = g_endings;
    g_endings = e->next;
    free(e);
  }
  pthread_mutex_unlock(&g_mu);
  close(sfd);
  return 0;
}
