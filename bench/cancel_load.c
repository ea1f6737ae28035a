/*
 * bench/cancel_load.c - the load method of cancel_bench's server
 * (cancel_load.h).
 */
#include "bench/cancel_load.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "crpc/server_async.h"

static atomic_long g_answered;
static long g_base;
static int64_t g_since;

static crpc_code answer(crpc_server_call *call, const crpc_ctx *ctx,
                        const crpc_message *request, void *user_data) {
  (void)ctx;
  (void)request;
  (void)user_data;
  atomic_fetch_add_explicit(&g_answered, 1, memory_order_relaxed);
  return crpc_server_call_send_async(call, "", 0, 0);
}

void cancel_load_register(crpc_server *s) {
  if (crpc_server_add_unary_async(s, CANCEL_LOAD_METHOD, answer, NULL) !=
      CRPC_OK) {
    fprintf(stderr, "cancel_bench: cannot register %s\n", CANCEL_LOAD_METHOD);
    exit(1);
  }
}

void cancel_load_wait(long n) {
  int64_t give_up = crpc_now_ns() + 10 * CRPC_SECOND;
  while (atomic_load(&g_answered) < n) {
    if (crpc_now_ns() > give_up) {
      fprintf(stderr, "cancel_bench: %ld load calls answered in 10 s, "
                      "waited for %ld: is the load running?\n",
              atomic_load(&g_answered), n);
      exit(1);
    }
    usleep(10 * 1000);
  }
  g_base = atomic_load(&g_answered);
  g_since = crpc_now_ns();
}

void cancel_load_report(void) {
  long n = atomic_load(&g_answered) - g_base;
  if (n <= 0) return;
  double secs = (double)(crpc_now_ns() - g_since) / 1e9;
  fprintf(stderr, "load: %ld %s calls answered in %.1f s while measuring "
                  "(%.0f/s)\n", n, CANCEL_LOAD_METHOD, secs, n / secs);
}
