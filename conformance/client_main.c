/*
 * conformance/client_main.c - crpc's gRPC interop client.
 *
 *   interop_client --server_host=HOST --server_port=PORT --test_case=CASE
 *                  [--use_tls=false] [--server_host_override=NAME]
 *                  [--use_test_ca=false]
 *
 * Runs one test case from gRPC's interop test descriptions, or every one with
 * --test_case=all, printing one "PASS <case>" / "FAIL <case>: <check>" line
 * per case. Exits 0 only if every case run passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/client_internal.h"

typedef struct test_case {
  const char *name;
  bool (*run)(interop_client *c);
} test_case;

/* In the order of the interop descriptions' list of standard cases. */
static const test_case kCases[] = {
    {"empty_unary", interop_empty_unary},
    {"large_unary", interop_large_unary},
    {"client_streaming", interop_client_streaming},
    {"server_streaming", interop_server_streaming},
    {"ping_pong", interop_ping_pong},
    {"empty_stream", interop_empty_stream},
    {"timeout_on_sleeping_server", interop_timeout_on_sleeping_server},
    {"cancel_after_begin", interop_cancel_after_begin},
    {"cancel_after_first_response", interop_cancel_after_first_response},
    {"custom_metadata", interop_custom_metadata},
    {"status_code_and_message", interop_status_code_and_message},
    {"special_status_message", interop_special_status_message},
    {"unimplemented_method", interop_unimplemented_method},
    {"unimplemented_service", interop_unimplemented_service},
    {"client_compressed_unary", interop_client_compressed_unary},
    {"server_compressed_unary", interop_server_compressed_unary},
    {"client_compressed_streaming", interop_client_compressed_streaming},
    {"server_compressed_streaming", interop_server_compressed_streaming},
};
#define N_CASES (sizeof(kCases) / sizeof(kCases[0]))

static const char kUsage[] =
    "usage: interop_client --server_host=HOST --server_port=PORT "
    "--test_case=CASE|all\n"
    "                      [--use_tls=false] [--server_host_override=NAME] "
    "[--use_test_ca=false]\n";

/* Each case gets its own deadline so that a hung peer fails the case
 * instead of the whole run; 30 s is far above any case's real need. */
static bool run_case(crpc_channel *ch, const test_case *tc) {
  interop_client c = {.ch = ch};
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 30 * CRPC_SECOND);
  if (ctx == NULL) {
    printf("FAIL %s: out of memory\n", tc->name);
    return false;
  }
  c.ctx = ctx;
  bool ok = tc->run(&c);
  crpc_ctx_release(ctx);
  if (ok) {
    printf("PASS %s\n", tc->name);
  } else {
    printf("FAIL %s: %s\n", tc->name, c.why);
  }
  fflush(stdout);
  return ok;
}

int main(int argc, char **argv) {
  const char *host = "localhost", *port = NULL, *case_name = NULL;
  const char *use_tls = NULL, *host_override = NULL, *use_test_ca = NULL;
  const interop_flag flags[] = {
      {"server_host", &host},     {"server_port", &port},
      {"test_case", &case_name},  {"use_tls", &use_tls},
      {"server_host_override", &host_override},
      {"use_test_ca", &use_test_ca},
  };
  if (!interop_parse_flags(argc, argv, flags, sizeof(flags) / sizeof(flags[0]),
                           kUsage)) {
    return 2;
  }
  if (port == NULL || case_name == NULL) {
    fprintf(stderr, "interop_client: --server_port and --test_case are "
                    "required\n%s", kUsage);
    return 2;
  }
  if (interop_flag_true(use_tls) || interop_flag_true(use_test_ca)) {
    fprintf(stderr,
            "interop_client: --use_tls/--use_test_ca=true are not supported "
            "yet (crpc has no TLS transport); run with --use_tls=false\n");
    return 2;
  }
  const test_case *only = NULL;
  if (strcmp(case_name, "all") != 0) {
    for (size_t i = 0; i < N_CASES; i++) {
      if (strcmp(kCases[i].name, case_name) == 0) only = &kCases[i];
    }
    if (only == NULL) {
      fprintf(stderr, "interop_client: unknown --test_case \"%s\"; one of:",
              case_name);
      for (size_t i = 0; i < N_CASES; i++) fprintf(stderr, " %s", kCases[i].name);
      fprintf(stderr, " all\n");
      return 2;
    }
  }

  char target[300];
  /* An IPv6 literal needs brackets in "host:port". */
  snprintf(target, sizeof(target), strchr(host, ':') ? "[%s]:%s" : "%s:%s",
           host, port);
  /* --server_host_override names the server in :authority (and, once TLS
   * exists, in SNI and certificate checks). */
  crpc_channel_options opts = {.authority = host_override};
  crpc_channel *ch = crpc_channel_new(target, &opts);
  if (ch == NULL) {
    fprintf(stderr, "interop_client: bad target \"%s\"\n", target);
    return 2;
  }
  int failed = 0;
  if (only != NULL) {
    failed = !run_case(ch, only);
  } else {
    for (size_t i = 0; i < N_CASES; i++) failed += !run_case(ch, &kCases[i]);
    printf("%zu passed, %d failed\n", N_CASES - (size_t)failed, failed);
  }
  crpc_channel_free(ch);
  return failed ? 1 : 0;
}
