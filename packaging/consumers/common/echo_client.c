/*
 * echo_client - the consumer projects' client: one consumer.Echo/Say call.
 *
 *   echo_client TARGET TEXT
 *
 * Prints "reply: <text> (server crpc <version>)" and exits 0 if the reply
 * is "echo: TEXT"; otherwise prints the status and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include "crpc/channel.h"
#include "crpc/version.h"
#include "echo.crpc.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s TARGET TEXT\n", argv[0]);
    return 2;
  }
  printf("client built with crpc %s, running with %s\n", CRPC_VERSION,
         crpc_version_string());
  crpc_channel *channel = crpc_channel_new(argv[1], NULL);
  if (channel == NULL) return 1;
  crpc_ctx *ctx =
      crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
  Consumer__EchoRequest req = CONSUMER__ECHO_REQUEST__INIT;
  req.text = argv[2];
  Consumer__EchoReply *reply = NULL;
  crpc_status status = {0};
  crpc_code code = consumer_echo_say(channel, ctx, NULL, &req, &reply, &status);
  int rc = 1;
  if (code == CRPC_OK) {
    char want[256];
    snprintf(want, sizeof want, "echo: %s", argv[2]);
    printf("reply: %s (server crpc %s)\n", reply->text, reply->server_version);
    rc = strcmp(reply->text, want) == 0 ? 0 : 1;
    consumer__echo_reply__free_unpacked(reply, NULL);
  } else {
    fprintf(stderr, "Say failed: %s: %s\n", crpc_code_name(code),
            status.message ? status.message : "");
  }
  crpc_status_clear(&status);
  crpc_ctx_release(ctx);
  crpc_channel_free(channel);
  return rc;
}
