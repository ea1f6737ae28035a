/*
 * conformance/server_main.c - crpc's gRPC interop server.
 *
 *   interop_server --port=PORT [--use_tls=false]
 *                  [--tls_cert_file=PEM --tls_key_file=PEM]
 *                  [--handlers=blocking|async]
 *
 * Serves grpc.testing.TestService (every method but CacheableUnaryCall and
 * UnimplementedCall, which stay UNIMPLEMENTED as the interop descriptions
 * expect) until SIGINT or SIGTERM. --port=0 picks a free port; the port
 * actually bound is printed on stdout ("listening on port N") so that test
 * runners need not guess a free one.
 *
 * --use_tls=true serves TLS with the certificate chain and key given, or, if
 * both flags are absent, gRPC's own test server certificate (server1.pem,
 * server1.key) where gRPC's interop runners keep it (interop_common.h).
 *
 * --handlers picks crpc's handler style for every TestService method
 * (README "Two handler styles"); both answer every case alike:
 *   blocking  (the default) crpc/server.h handlers on handler threads
 *             (server_unary.c, server_streaming.c);
 *   async     crpc/server_async.h handlers on the connection's loop thread:
 *             inline unary handlers and reactors that never block, send
 *             under flow control (crpc_server_call_can_send /
 *             on_send_ready), and hand response_parameters' interval_us
 *             waits to a worker thread of their own with the call's ctx
 *             (server_async_unary.c, server_async_streaming.c).
 * Health and reflection (crpc/admin.h) are the same in both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/server_internal.h"
#include "crpc/admin.h"
#include "crpc/credentials.h"

static const char kUsage[] =
    "usage: interop_server --port=PORT [--use_tls=false]\n"
    "                      [--tls_cert_file=PEM --tls_key_file=PEM]\n"
    "                      [--handlers=blocking|async]\n"
    "  --handlers  TestService's handler style: blocking (default; handler\n"
    "              threads) or async (non-blocking, on the loop threads)\n";

/* TLS credentials from the flags or gRPC's test certificate; NULL (after
 * saying why on stderr) if there are none or they do not load. */
static crpc_server_credentials *server_credentials(const char *cert,
                                                   const char *key) {
  char cert_buf[512], key_buf[512];
  if (cert == NULL && key == NULL) {
    cert = interop_find_test_cred("server1.pem", cert_buf, sizeof(cert_buf));
    key = interop_find_test_cred("server1.key", key_buf, sizeof(key_buf));
    if (cert == NULL || key == NULL) {
      fprintf(stderr,
              "interop_server: --use_tls=true needs --tls_cert_file and "
              "--tls_key_file (gRPC's test server1.pem/server1.key are not "
              "in " INTEROP_TEST_CREDS_DIRS ")\n");
      return NULL;
    }
  } else if (cert == NULL || key == NULL) {
    fprintf(stderr, "interop_server: give both --tls_cert_file and "
                    "--tls_key_file\n");
    return NULL;
  }
  crpc_server_tls_options o = {.cert_chain_file = cert,
                               .private_key_file = key};
  crpc_server_credentials *creds = NULL;
  char err[CRPC_CREDENTIALS_ERROR_MAX];
  if (crpc_server_credentials_new(&o, &creds, err) != CRPC_OK) {
    fprintf(stderr, "interop_server: TLS certificate %s / key %s: %s\n",
            cert, key, err);
    return NULL;
  }
  return creds;
}

/* Listens on port, with TLS if creds; the port bound in *bound. */
static bool listen_on(crpc_server *server, const char *addr,
                      const crpc_server_credentials *creds, int *bound) {
  crpc_code rc = creds ? crpc_server_listen_tls(server, addr, creds, bound)
                       : crpc_server_listen(server, addr, bound);
  return rc == CRPC_OK;
}

/* TestService with blocking handlers: the generated stubs, and UnaryCall
 * by hand (it needs the request's compressed flag). */
static crpc_code register_blocking_handlers(crpc_server *server) {
  static const grpc_testing_test_service_handlers handlers = {
      .empty_call = interop_empty_call,
      .streaming_output_call = interop_streaming_output_call,
      .streaming_input_call = interop_streaming_input_call,
      .full_duplex_call = interop_full_duplex_call,
      .half_duplex_call = interop_half_duplex_call,
  };
  crpc_code code = grpc_testing_test_service_register_handlers(server,
                                                               &handlers);
  if (code != CRPC_OK) return code;
  return crpc_server_add_method(server, INTEROP_UNARY_CALL_PATH, CRPC_UNARY,
                                interop_unary_call, NULL);
}

int main(int argc, char **argv) {
  const char *port_s = NULL, *use_tls = NULL, *cert = NULL, *key = NULL;
  const char *handlers = "blocking";
  const interop_flag flags[] = {{"port", &port_s},
                                {"use_tls", &use_tls},
                                {"tls_cert_file", &cert},
                                {"tls_key_file", &key},
                                {"handlers", &handlers}};
  if (!interop_parse_flags(argc, argv, flags, sizeof(flags) / sizeof(flags[0]),
                           kUsage)) {
    return 2;
  }
  if (port_s == NULL) {
    fprintf(stderr, "interop_server: --port is required\n%s", kUsage);
    return 2;
  }
  char *end;
  long port = strtol(port_s, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) {
    fprintf(stderr, "interop_server: bad --port \"%s\"\n", port_s);
    return 2;
  }
  bool async = strcmp(handlers, "async") == 0;
  if (!async && strcmp(handlers, "blocking") != 0) {
    fprintf(stderr, "interop_server: bad --handlers \"%s\"\n%s", handlers,
            kUsage);
    return 2;
  }
  crpc_server_credentials *creds = NULL;
  if (interop_flag_true(use_tls)) {
    creds = server_credentials(cert, key);
    if (creds == NULL) return 2;
  } else if (cert != NULL || key != NULL) {
    /* Certificates without --use_tls=true are almost surely a forgotten
     * flag; serving plaintext would fail confusingly at the client. */
    fprintf(stderr, "interop_server: --tls_cert_file/--tls_key_file need "
                    "--use_tls=true\n");
    return 2;
  }

  crpc_server *server = crpc_server_new(NULL);
  if (server == NULL) {
    fprintf(stderr, "interop_server: out of memory\n");
    return 1;
  }
  if ((async ? interop_register_async_handlers(server)
             : register_blocking_handlers(server)) != CRPC_OK) {
    fprintf(stderr, "interop_server: cannot register TestService\n");
    return 1;
  }
  /* Health and reflection, as gRPC's own interop servers offer them. */
  if (crpc_server_add_admin_services(server, NULL) != CRPC_OK) {
    fprintf(stderr, "interop_server: cannot add the admin services\n");
    return 1;
  }
  /* Dual-stack first (clients say "localhost", which may resolve to ::1),
   * IPv4 only where IPv6 is unavailable. */
  char addr[64];
  int bound = 0;
  snprintf(addr, sizeof(addr), "[::]:%ld", port);
  if (!listen_on(server, addr, creds, &bound)) {
    snprintf(addr, sizeof(addr), "0.0.0.0:%ld", port);
    if (!listen_on(server, addr, creds, &bound)) {
      fprintf(stderr, "interop_server: cannot listen on port %ld\n", port);
      return 1;
    }
  }
  /* The server holds its own reference from listen on. */
  crpc_server_credentials_free(creds);
  if (crpc_server_start(server) != CRPC_OK) {
    fprintf(stderr, "interop_server: cannot start\n");
    return 1;
  }
  printf("interop_server: listening on port %d%s, %s handlers\n", bound,
         interop_flag_true(use_tls) ? " (TLS)" : "", handlers);
  fflush(stdout);

  /* Until SIGINT/SIGTERM, then a graceful shutdown with one second of
   * grace for calls still running. */
  crpc_code code = crpc_server_serve_until_signal(server, CRPC_SECOND);
  /* Every call has had on_done; a worker thread of the async handlers may
   * still be between its finish and its end. */
  interop_async_wait_workers();
  crpc_server_free(server);
  return code == CRPC_OK ? 0 : 1;
}
