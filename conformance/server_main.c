/*
 * conformance/server_main.c - crpc's gRPC interop server.
 *
 *   interop_server --port=PORT [--use_tls=false]
 *
 * Serves grpc.testing.TestService (every method but CacheableUnaryCall and
 * UnimplementedCall, which stay UNIMPLEMENTED as the interop descriptions
 * expect) until SIGINT or SIGTERM. --port=0 picks a free port; the port
 * actually bound is printed on stdout ("listening on port N") so that test
 * runners need not guess a free one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "conformance/server_internal.h"

static const char kUsage[] =
    "usage: interop_server --port=PORT [--use_tls=false]\n";

int main(int argc, char **argv) {
  const char *port_s = NULL, *use_tls = NULL;
  const interop_flag flags[] = {{"port", &port_s}, {"use_tls", &use_tls}};
  if (!interop_parse_flags(argc, argv, flags, 2, kUsage)) return 2;
  if (port_s == NULL) {
    fprintf(stderr, "interop_server: --port is required\n%s", kUsage);
    return 2;
  }
  if (interop_flag_true(use_tls)) {
    fprintf(stderr,
            "interop_server: --use_tls=true is not supported yet (crpc has "
            "no TLS transport); run with --use_tls=false\n");
    return 2;
  }
  char *end;
  long port = strtol(port_s, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) {
    fprintf(stderr, "interop_server: bad --port \"%s\"\n", port_s);
    return 2;
  }

  /* Block the stop signals before any crpc thread exists, so every thread
   * inherits the mask and only sigwait below sees them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  static const grpc_testing_test_service_handlers handlers = {
      .empty_call = interop_empty_call,
      .streaming_output_call = interop_streaming_output_call,
      .streaming_input_call = interop_streaming_input_call,
      .full_duplex_call = interop_full_duplex_call,
      .half_duplex_call = interop_half_duplex_call,
  };
  crpc_server *server = crpc_server_new(NULL);
  if (server == NULL) {
    fprintf(stderr, "interop_server: out of memory\n");
    return 1;
  }
  if (grpc_testing_test_service_register_handlers(server, &handlers) !=
          CRPC_OK ||
      crpc_server_add_method(server, INTEROP_UNARY_CALL_PATH, CRPC_UNARY,
                             interop_unary_call, NULL) != CRPC_OK) {
    fprintf(stderr, "interop_server: cannot register TestService\n");
    return 1;
  }
  /* Dual-stack first (clients say "localhost", which may resolve to ::1),
   * IPv4 only where IPv6 is unavailable. */
  char addr[64];
  int bound = 0;
  snprintf(addr, sizeof(addr), "[::]:%ld", port);
  if (crpc_server_listen(server, addr, &bound) != CRPC_OK) {
    snprintf(addr, sizeof(addr), "0.0.0.0:%ld", port);
    if (crpc_server_listen(server, addr, &bound) != CRPC_OK) {
      fprintf(stderr, "interop_server: cannot listen on port %ld\n", port);
      return 1;
    }
  }
  if (crpc_server_start(server) != CRPC_OK) {
    fprintf(stderr, "interop_server: cannot start\n");
    return 1;
  }
  printf("interop_server: listening on port %d\n", bound);
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  crpc_server_shutdown(server, CRPC_SECOND);
  crpc_server_free(server);
  return 0;
}
