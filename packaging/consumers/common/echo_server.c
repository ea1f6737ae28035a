/*
 * echo_server - the consumer projects' server: consumer.Echo/Say on one
 * address, with crpc's logging interceptor, until SIGINT/SIGTERM.
 *
 *   echo_server ADDRESS      e.g. unix:/tmp/echo.sock or 127.0.0.1:0
 *
 * Prints "listening on ADDRESS" (with the port picked, for TCP port 0)
 * once it accepts calls, and "stopped by signal N" when it has shut down.
 * Written in ISO C11 against the installed headers only, so each build
 * system (Make + pkg-config, CMake, Bazel) compiles exactly this file.
 */
#include <stdio.h>
#include <string.h>

#include "crpc/interceptors/logging.h"
#include "crpc/server.h"
#include "crpc/version.h"
#include "echo.crpc.h"

static crpc_code say(crpc_server_call *call, const crpc_ctx *ctx,
                     const Consumer__EchoRequest *req, void *user_data) {
  (void)ctx;
  (void)user_data;
  char text[256];
  snprintf(text, sizeof text, "echo: %s", req->text);
  Consumer__EchoReply reply = CONSUMER__ECHO_REPLY__INIT;
  reply.text = text;
  reply.server_version = (char *)crpc_version_string();
  return consumer_echo_say_server_send(call, &reply);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
    return 2;
  }
  static const consumer_echo_handlers handlers = {.say = say};
  static const crpc_logging_options log_opts = {NULL, NULL}; /* stderr */
  crpc_server *server = crpc_server_new(NULL);
  if (server == NULL) return 1;
  crpc_server_interceptor logging = crpc_logging_server(&log_opts);
  int port = 0;
  crpc_code code = crpc_server_add_interceptor(server, &logging);
  if (code == CRPC_OK) {
    code = consumer_echo_register_handlers(server, &handlers);
  }
  if (code == CRPC_OK) code = crpc_server_listen(server, argv[1], &port);
  if (code == CRPC_OK) code = crpc_server_start(server);
  if (code != CRPC_OK) {
    fprintf(stderr, "cannot serve on %s: %s\n", argv[1], crpc_code_name(code));
    crpc_server_free(server);
    return 1;
  }
  if (strncmp(argv[1], "unix:", 5) == 0) {
    printf("listening on %s\n", argv[1]);
  } else {
    printf("listening on 127.0.0.1:%d\n", port);
  }
  fflush(stdout);
  int signo = 0;
  code = crpc_server_serve_until(server, NULL, 2 * CRPC_SECOND, &signo);
  printf("stopped by signal %d: %s\n", signo, crpc_code_name(code));
  crpc_server_free(server);
  return code == CRPC_OK ? 0 : 1;
}
