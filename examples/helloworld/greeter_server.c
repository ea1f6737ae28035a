/*
 * greeter_server - serves helloworld.Greeter on 127.0.0.1.
 *
 *   greeter_server [--port N]     (default 50051; 0 picks a free port)
 *
 * Prints "listening on 127.0.0.1:<port>" once it accepts calls, then serves
 * until SIGINT/SIGTERM or EOF on a piped stdin (examples/common/stop.h), and
 * shuts down gracefully.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpc/admin.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "examples/common/stop.h"
#include "examples/helloworld/helloworld.crpc.h"

/* The handler gets the call's ctx (read-only). SayHello does no waiting, so
 * it has nothing to hand the ctx to; a handler that called a database or
 * another service would pass it on so the client's cancel reaches that work. */
static crpc_code say_hello(crpc_server_call *call, const crpc_ctx *ctx,
                           const Helloworld__HelloRequest *req,
                           void *user_data) {
  (void)ctx;
  (void)user_data;
  char text[512];
  snprintf(text, sizeof text, "Hello %s", req->name);
  Helloworld__HelloReply reply = HELLOWORLD__HELLO_REPLY__INIT;
  reply.message = text;
  return helloworld_greeter_say_hello_server_send(call, &reply);
}

static int parse_port(int argc, char **argv) {
  int port = 50051;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 0 || v > 65535) return -1;
      port = (int)v;
    } else {
      return -1;
    }
  }
  return port;
}

int main(int argc, char **argv) {
  int port = parse_port(argc, argv);
  if (port < 0) {
    fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
    return 2;
  }
  crpc_server *server = crpc_server_new(NULL);
  if (server == NULL) {
    fprintf(stderr, "crpc_server_new: out of memory\n");
    return 1;
  }
  /* Must outlive the server: static storage. */
  static const helloworld_greeter_handlers handlers = {.say_hello = say_hello};
  char address[32];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  crpc_code code = helloworld_greeter_register_handlers(server, &handlers);
  /* Health and reflection for probes and tools (README: Operating crpc). */
  if (code == CRPC_OK) code = crpc_server_add_admin_services(server, NULL);
  if (code == CRPC_OK) code = crpc_server_listen(server, address, &port);
  if (code == CRPC_OK) code = crpc_server_start(server);
  if (code != CRPC_OK) {
    fprintf(stderr, "cannot serve on %s: %s\n", address, crpc_code_name(code));
    crpc_server_free(server);
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", port);
  fflush(stdout); /* whoever started us may be waiting for this line */

  /* Serve until SIGINT/SIGTERM or EOF on a piped stdin (stop.h). Calls
   * still running then get one second to finish, and after that their ctx
   * is cancelled (UNAVAILABLE, origin shutdown). */
  code = example_serve(server, 1 * CRPC_SECOND);
  crpc_server_free(server);
  return code == CRPC_OK ? 0 : 1;
}
