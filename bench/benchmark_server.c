/*
 * benchmark_server - grpc.testing.BenchmarkService on crpc, for the shared
 * side-by-side harness (../shared/bench: h2load and the gRPC C++ client
 * against gRPC C++ 1.51 and a raw nghttp2 ceiling server).
 *
 *   benchmark_server --port=N [--mode=async|blocking] [--loop_threads=N]
 *                    [--handler_threads=N]
 *                    [--stream_send_buffer=BYTES] [--poll_us=N]
 *
 * serves h2c on 127.0.0.1:N until SIGTERM. --mode=async (the default) runs
 * every method on the loop threads (bench/benchmark_async.c); blocking runs
 * the generated blocking handlers below on handler threads.
 *
 * The harness's contract: UnaryCall replies with response_size bytes;
 * StreamingCall answers each request with one response; StreamingFromServer
 * writes responses until the client cancels; StreamingFromClient reads all,
 * replies once; StreamingBothWays answers each request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/benchmark_async.h"
#include "crpc/server.h"
#include "grpc/testing/benchmark_service.crpc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;

/* The response `req` asks for: *body (the caller frees it) holds its
 * zero bytes. CRPC_OK, or why not (the message set on the call). */
static crpc_code make_response(crpc_server_call *call, const SimpleRequest *req,
                               SimpleResponse *resp,
                               Grpc__Testing__Payload *payload,
                               uint8_t **body) {
  int32_t size = req->response_size;
  if (size < 0 || size > 4 * 1024 * 1024) {
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "response_size %d out of range", size);
  }
  *body = calloc(1, size > 0 ? (size_t)size : 1);
  if (*body == NULL) return CRPC_RESOURCE_EXHAUSTED;
  grpc__testing__simple_response__init(resp);
  grpc__testing__payload__init(payload);
  payload->body.data = *body;
  payload->body.len = (size_t)size;
  resp->payload = payload;
  return CRPC_OK;
}

/* Sends one response sized as `req` asks. */
static crpc_code reply_to(crpc_server_call *call, const SimpleRequest *req,
                          crpc_code (*send)(crpc_server_call *,
                                            const SimpleResponse *)) {
  SimpleResponse resp;
  Grpc__Testing__Payload payload;
  uint8_t *body = NULL;
  crpc_code rc = make_response(call, req, &resp, &payload, &body);
  if (rc == CRPC_OK) rc = send(call, &resp);
  free(body);
  return rc;
}

static crpc_code unary_call(crpc_server_call *call, const crpc_ctx *ctx,
                            const SimpleRequest *req, void *user_data) {
  (void)ctx;
  (void)user_data;
  return reply_to(call, req,
                  grpc_testing_benchmark_service_unary_call_server_send);
}

/* Ping-pong and both-ways: one response per request, until the client is
 * done (or gone: recv returns the ctx's code). */
static crpc_code echo_each(crpc_server_call *call,
                           crpc_code (*recv)(crpc_server_call *,
                                             SimpleRequest **),
                           crpc_code (*send)(crpc_server_call *,
                                             const SimpleResponse *)) {
  for (;;) {
    SimpleRequest *req = NULL;
    crpc_code rc = recv(call, &req);
    if (rc != CRPC_OK) return rc;
    if (req == NULL) return CRPC_OK;
    rc = reply_to(call, req, send);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    if (rc != CRPC_OK) return rc;
  }
}

static crpc_code streaming_call(crpc_server_call *call, const crpc_ctx *ctx,
                                void *user_data) {
  (void)ctx;
  (void)user_data;
  return echo_each(call,
                   grpc_testing_benchmark_service_streaming_call_server_recv,
                   grpc_testing_benchmark_service_streaming_call_server_send);
}

static crpc_code streaming_both_ways(crpc_server_call *call,
                                     const crpc_ctx *ctx, void *user_data) {
  (void)ctx;
  (void)user_data;
  return echo_each(
      call, grpc_testing_benchmark_service_streaming_both_ways_server_recv,
      grpc_testing_benchmark_service_streaming_both_ways_server_send);
}

static crpc_code streaming_from_client(crpc_server_call *call,
                                       const crpc_ctx *ctx, void *user_data) {
  (void)ctx;
  (void)user_data;
  SimpleRequest *last = NULL;
  for (;;) {
    SimpleRequest *req = NULL;
    crpc_code rc =
        grpc_testing_benchmark_service_streaming_from_client_server_recv(call,
                                                                         &req);
    if (rc != CRPC_OK || req == NULL) {
      if (rc == CRPC_OK && last == NULL) {
        rc = crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                    "no request");
      } else if (rc == CRPC_OK) {
        rc = reply_to(
            call, last,
            grpc_testing_benchmark_service_streaming_from_client_server_send);
      }
      if (last != NULL) protobuf_c_message_free_unpacked(&last->base, NULL);
      return rc;
    }
    if (last != NULL) protobuf_c_message_free_unpacked(&last->base, NULL);
    last = req;
  }
}

/* Streams until the client cancels: the send that follows the cancel returns
 * the ctx's code, which ends the handler. */
static crpc_code streaming_from_server(crpc_server_call *call,
                                       const crpc_ctx *ctx,
                                       const SimpleRequest *req,
                                       void *user_data) {
  (void)user_data;
  /* One response, packed once and sent by reference over and over, as
   * the async handler does (the gRPC C++ server serialises per Write). */
  crpc_code rc = CRPC_OK;
  crpc_buf *packed = benchmark_pack_reply(req, &rc);
  if (packed == NULL) {
    return crpc_server_call_error(call, rc, "cannot build the response");
  }
  while (rc == CRPC_OK && !crpc_ctx_is_done(ctx)) {
    rc = crpc_server_call_send_buf(call, crpc_buf_ref(packed), 0);
  }
  crpc_buf_unref(packed);
  return rc == CRPC_OK ? crpc_ctx_err(ctx) : rc;
}

static const grpc_testing_benchmark_service_handlers handlers = {
    .unary_call = unary_call,
    .streaming_call = streaming_call,
    .streaming_from_client = streaming_from_client,
    .streaming_from_server = streaming_from_server,
    .streaming_both_ways = streaming_both_ways,
};

int main(int argc, char **argv) {
  const char *port = "0";
  bool async = true;
  crpc_server_options opts = {0};
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = argv[i] + 7;
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = argv[++i];
    } else if (strcmp(argv[i], "--mode=async") == 0) {
      async = true;
    } else if (strcmp(argv[i], "--mode=blocking") == 0) {
      async = false;
    } else if (strncmp(argv[i], "--loop_threads=", 15) == 0) {
      opts.loop_threads = atoi(argv[i] + 15);
    } else if (strncmp(argv[i], "--handler_threads=", 18) == 0) {
      opts.handler_threads = atoi(argv[i] + 18);
    } else if (strncmp(argv[i], "--stream_send_buffer=", 21) == 0) {
      opts.stream_send_buffer = (size_t)strtoull(argv[i] + 21, NULL, 10);
    } else if (strncmp(argv[i], "--poll_us=", 10) == 0) {
      opts.poll_ns = strtoll(argv[i] + 10, NULL, 10) * 1000;
    } else {
      fprintf(stderr,
              "usage: %s --port=N [--mode=async|blocking] "
              "[--loop_threads=N] [--handler_threads=N] "
              "[--stream_send_buffer=BYTES] "
              "[--poll_us=N]\n",
              argv[0]);
      return 2;
    }
  }
  crpc_server *server = crpc_server_new(&opts);
  if (server == NULL) return 1;
  char address[64];
  snprintf(address, sizeof(address), "127.0.0.1:%s", port);
  int bound = 0;
  crpc_code rc =
      async ? benchmark_register_async(server)
            : grpc_testing_benchmark_service_register_handlers(server,
                                                               &handlers);
  if (rc == CRPC_OK) rc = crpc_server_listen(server, address, &bound);
  if (rc == CRPC_OK) rc = crpc_server_start(server);
  if (rc != CRPC_OK) {
    fprintf(stderr, "benchmark_server: %s\n", crpc_code_name(rc));
    crpc_server_free(server);
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", bound);
  fflush(stdout);
  /* Until SIGTERM (the harness's stop) or SIGINT, then one second of
   * grace. */
  rc = crpc_server_serve_until_signal(server, CRPC_SECOND);
  crpc_server_free(server);
  return rc == CRPC_OK ? 0 : 1;
}
