/*
 * fuzz/client_fuzz.c - libFuzzer target: a server's bytes into a real crpc
 * channel's connection.
 *
 * Input: one selector byte (client_calls.h: which calls the channel
 * makes), then what the server sends (HTTP/2 frames from its SETTINGS on).
 * Path: a unix socket into the channel's nghttp2 session, through HPACK,
 * response headers and trailers (grpc-status, grpc-message
 * percent-decoding, binary metadata), message deframing and
 * decompression, flow control, GOAWAY and RST_STREAM handling, and the
 * async completions (rpc/channel/call_wire.c, call_async.c, ...).
 *
 * Per input: a new listening socket and a new channel -> the calls start
 * -> accept the channel's connection, stop listening (a reconnect or
 * transparent retry then fails at once instead of waiting) -> write the
 * input while reading the client's bytes, then one of two endings, chosen
 * by the input's shape:
 *   - whole frames: the harness's PING follows the input; once its ACK is
 *     back every frame has been processed, and the client cancels its
 *     calls (RST_STREAM on the open connection), which must all end, then
 *     frees the channel with the connection still up;
 *   - an input that ends inside a frame: the harness half-closes, the
 *     channel must drop the connection after the input, and every call
 *     must end (UNAVAILABLE, unless the input settled it first).
 * Then the calls, the ctx and the channel are freed (its loop and
 * connecting threads joined), the channel must have closed the connection
 * (checked), and no ctx may be left (checked).
 */
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "fuzz/client_calls.h"
#include "fuzz/fuzz_util.h"

/* A response message larger than this (after decompression) fails the
 * call: the limit's code path runs, and no input makes the client hold
 * megabytes. */
#define MAX_RECV (64 * 1024)

/* The calls' deadline, sent as grpc-timeout. Calls end long before it
 * (the connection is closed after the input); it is only a backstop. */
#define CALL_TIMEOUT (10 * CRPC_SECOND)

static char sock_path[108]; /* sizeof sockaddr_un.sun_path */
static char target[140];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  fuzz_socket_path(sock_path, sizeof sock_path, "client");
  snprintf(target, sizeof target, "unix:%s", sock_path);
  return 0;
}

static int listen_unix(const char *path) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  unlink(path);
  if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
      listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int accept_within(int lfd, int timeout_ms) {
  struct pollfd p = {.fd = lfd, .events = POLLIN};
  if (poll(&p, 1, timeout_ms) != 1) return -1;
  return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0; /* no selector: nothing to call */
  uint8_t selector = data[0];
  data++;
  size--;
  size_t ctx_before = crpc_ctx_live_count();

  int lfd = listen_unix(sock_path);
  if (lfd < 0) fuzz_fail("cannot listen on %s", sock_path);
  crpc_channel_options opts = {
      .max_recv_message_size = MAX_RECV,
      .default_compression = fuzz_calls_compression(selector),
      .min_connect_timeout_ns = FUZZ_IO_TIMEOUT_MS * CRPC_MILLISECOND,
      .idle_timeout_ns = -1, /* no idle timer racing the input */
  };
  crpc_channel *ch = crpc_channel_new(target, &opts);
  if (ch == NULL) fuzz_fail("cannot create a channel to %s", target);
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) fuzz_fail("out of memory");

  fuzz_calls fc;
  FUZZ_CHECK(fuzz_calls_start(&fc, ch, ctx, selector, NULL) > 0);
  int fd = accept_within(lfd, FUZZ_IO_TIMEOUT_MS);
  close(lfd);
  unlink(sock_path);
  if (fd < 0) fuzz_fail("the channel did not connect to %s", sock_path);

  bool whole = fuzz_h2_whole_frames(data, size);
  size_t len;
  uint8_t *out = fuzz_concat(NULL, 0, data, size, whole, &len);
  fuzz_exchange_result res;
  fuzz_exchange(fd, out, len, whole, true, FUZZ_IO_TIMEOUT_MS, &res);
  free(out);
  /* A client that neither answers the PING nor closes is wedged. */
  FUZZ_CHECK(!res.timed_out);
  if (res.acked) {
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "fuzz input done");
    FUZZ_CHECK(fuzz_calls_wait(&fc, FUZZ_IO_TIMEOUT_MS));
    fuzz_calls_destroy(&fc);
    crpc_ctx_release(ctx);
    crpc_channel_free(ch);
    /* The freed channel must have closed its connection. */
    FUZZ_CHECK(fuzz_finish(fd, FUZZ_IO_TIMEOUT_MS));
  } else {
    /* After the server's EOF the channel must drop the connection ... */
    FUZZ_CHECK(fuzz_finish(fd, FUZZ_IO_TIMEOUT_MS));
    /* ... and then every call on it must end. */
    FUZZ_CHECK(fuzz_calls_wait(&fc, FUZZ_IO_TIMEOUT_MS));
    fuzz_calls_destroy(&fc);
    crpc_ctx_release(ctx);
    crpc_channel_free(ch);
  }
  close(fd);
  FUZZ_CHECK(crpc_ctx_live_count() == ctx_before);
  return 0;
}
