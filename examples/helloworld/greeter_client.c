/*
 * greeter_client - calls helloworld.Greeter/SayHello once.
 *
 *   greeter_client [--target host:port] [--name NAME]
 *                  (defaults: localhost:50051, world)
 *
 * Prints the greeting; on failure prints the status and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "examples/helloworld/helloworld.crpc.h"

int main(int argc, char **argv) {
  const char *target = "localhost:50051";
  const char *name = "world";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
      target = argv[++i];
    } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
      name = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--target host:port] [--name NAME]\n",
              argv[0]);
      return 2;
    }
  }

  crpc_channel *channel = crpc_channel_new(target, NULL);
  if (channel == NULL) return 1; /* the reason is already on stderr */

  /* Every call gets a deadline: it bounds connecting as well as the call,
   * and travels to the server as grpc-timeout. */
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND);
  if (ctx == NULL) {
    crpc_channel_free(channel);
    return 1;
  }
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = (char *)name; /* protoc-c fields are not const; not modified */
  Helloworld__HelloReply *reply = NULL;
  crpc_status status = {0};
  crpc_code code =
      helloworld_greeter_say_hello(channel, ctx, NULL, &req, &reply, &status);
  if (code == CRPC_OK) {
    printf("Greeting: %s\n", reply->message);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  } else {
    fprintf(stderr, "SayHello failed: %s: %s\n", crpc_code_name(code),
            status.message ? status.message : "");
  }
  crpc_status_clear(&status);
  crpc_ctx_release(ctx);
  crpc_channel_free(channel);
  return code == CRPC_OK ? 0 : 1;
}
