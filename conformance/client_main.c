/*
 * conformance/client_main.c - crpc's gRPC interop client.
 *
 *   interop_client --server_host=HOST --server_port=PORT --test_case=CASE
 *                  [--use_tls=false] [--server_host_override=NAME]
 *                  [--use_test_ca=false] [--tls_ca_file=PEM]
 *
 * Runs one test case from gRPC's interop test descriptions, or every one with
 * --test_case=all, printing one "PASS <case>" / "FAIL <case>: <check>" line
 * per case. Exits 0 only if every case run passed.
 *
 * --use_tls=true verifies the server against the system's CA store, or with
 * --use_test_ca=true against a test CA: --tls_ca_file, else gRPC's own test
 * ca.pem where gRPC's interop runners keep it (interop_common.h). As in
 * gRPC's clients, --use_test_ca=true makes the name the server's certificate
 * must carry default to foo.test.google.fr (what gRPC's test server1.pem is
 * issued for); --server_host_override sets it (and :authority) explicitly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/client_internal.h"
#include "crpc/credentials.h"

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
    "[--use_test_ca=false]\n"
    "                      [--tls_ca_file=PEM]\n";

/* The name gRPC's test server certificate (server1.pem) is issued for
 * (*.test.google.fr); gRPC's interop clients default their override to it
 * whenever they trust the test CA. */
#define INTEROP_TEST_CA_HOST "foo.test.google.fr"

/* Channel credentials for --use_tls=true: the CA file given, gRPC's test CA
 * (use_test_ca), or the system store. NULL after saying why on stderr. */
static crpc_channel_credentials *channel_credentials(const char *ca_file,
                                                     bool use_test_ca,
                                                     const char *override) {
  char ca_buf[512];
  if (ca_file == NULL && use_test_ca) {
    ca_file = interop_find_test_cred("ca.pem", ca_buf, sizeof(ca_buf));
    if (ca_file == NULL) {
      fprintf(stderr,
              "interop_client: --use_test_ca=true needs --tls_ca_file "
              "(gRPC's test ca.pem is not in " INTEROP_TEST_CREDS_DIRS ")\n");
      return NULL;
    }
  }
  crpc_channel_tls_options o = {.ca_file = ca_file,
                                .server_name_override = override};
  crpc_channel_credentials *creds = NULL;
  char err[CRPC_CREDENTIALS_ERROR_MAX];
  if (crpc_channel_credentials_new(&o, &creds, err) != CRPC_OK) {
    fprintf(stderr, "interop_client: TLS CA %s: %s\n",
            ca_file ? ca_file : "(system store)", err);
    return NULL;
  }
  return creds;
}

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
  const char *ca_file = NULL;
  const interop_flag flags[] = {
      {"server_host", &host},     {"server_port", &port},
      {"test_case", &case_name},  {"use_tls", &use_tls},
      {"server_host_override", &host_override},
      {"use_test_ca", &use_test_ca},
      {"tls_ca_file", &ca_file},
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
  /* A test CA without TLS is a forgotten --use_tls=true: running
   * plaintext instead would fail confusingly against a TLS server. */
  if (!interop_flag_true(use_tls) &&
      (interop_flag_true(use_test_ca) || ca_file != NULL)) {
    fprintf(stderr, "interop_client: --use_test_ca/--tls_ca_file need "
                    "--use_tls=true\n");
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
  /* --server_host_override names the server in :authority and, with TLS,
   * in SNI and the certificate check. An empty override means none, as in
   * gRPC's clients (so a runner can turn the test-CA default off). */
  bool override_given = host_override != NULL;
  if (override_given && host_override[0] == '\0') host_override = NULL;
  crpc_channel_credentials *creds = NULL;
  if (interop_flag_true(use_tls)) {
    if (!override_given && interop_flag_true(use_test_ca)) {
      host_override = INTEROP_TEST_CA_HOST;
    }
    creds = channel_credentials(ca_file, interop_flag_true(use_test_ca),
                                host_override);
    if (creds == NULL) return 2;
  }
  crpc_channel_options opts = {.authority = host_override,
                               .credentials = creds};
  crpc_channel *ch = crpc_channel_new(target, &opts);
  /* The channel holds its own reference. */
  crpc_channel_credentials_free(creds);
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
