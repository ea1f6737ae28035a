/*
 * fuzz/server_fuzz.c - libFuzzer target: a client's bytes into a real crpc
 * server connection.
 *
 * Input: what a client sends after the connection preface (HTTP/2 frames;
 * the harness writes the preface itself). Path: a unix socket into
 * crpc_server (fuzz_service.h: blocking and async methods), through
 * nghttp2's framing and HPACK, crpc's header checks, grpc-timeout,
 * metadata, message deframing and decompression, dispatch and the handlers.
 *
 * Per input, so nothing carries over and every input ends the same way:
 * a new server (one loop thread, handler pool) -> connect -> write the
 * input, then one of two endings, chosen by the input's shape:
 *   - whole frames: the harness's PING follows the input; once its ACK is
 *     back every frame has been processed, and the server shuts down with
 *     the connection and its calls still open (graceful GOAWAY, calls
 *     cancelled "shutdown", handlers waited for, connection closed);
 *   - an input that ends inside a frame: the harness half-closes, and the
 *     server, reading EOF after the input, must close the connection
 *     ("connection lost" for its calls), then shuts down.
 * Either way the server must close the connection (checked), and free
 * joins every thread. LeakSanitizer then sees exactly what this input
 * leaked, and no ctx may be left (checked).
 *
 * Blocking handlers race the teardown: one that answers before it sends
 * its response, one that does not is cancelled. Both are real server
 * behaviour; the coverage of the response path may vary a little between
 * runs of one input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "crpc/ctx.h"
#include "fuzz/fuzz_service.h"
#include "fuzz/fuzz_util.h"

/* A request message larger than this (after decompression) is refused:
 * the limit's code path runs, and no input makes the server hold
 * megabytes. */
#define MAX_RECV (64 * 1024)

static char sock_path[108]; /* sizeof sockaddr_un.sun_path */
static char address[140];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  fuzz_socket_path(sock_path, sizeof sock_path, "server");
  snprintf(address, sizeof address, "unix:%s", sock_path);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t ctx_before = crpc_ctx_live_count();
  fuzz_server fs;
  if (fuzz_server_start(&fs, address, NULL, MAX_RECV) != CRPC_OK) {
    fuzz_fail("cannot start the server on %s", address);
  }
  int fd = fuzz_connect_unix(sock_path);
  if (fd < 0) fuzz_fail("cannot connect to %s", sock_path);

  bool whole = fuzz_h2_whole_frames(data, size);
  size_t len;
  uint8_t *out = fuzz_concat(FUZZ_H2_PREFACE, FUZZ_H2_PREFACE_LEN, data, size,
                             whole, &len);
  fuzz_exchange_result res;
  fuzz_exchange(fd, out, len, whole, false, FUZZ_IO_TIMEOUT_MS, &res);
  free(out);
  /* A server that neither answers the PING nor closes is wedged. */
  FUZZ_CHECK(!res.timed_out);
  if (res.acked) crpc_server_shutdown(fs.server, 0);
  /* After its shutdown, or the client's EOF, the server must have ended
   * the connection. */
  FUZZ_CHECK(fuzz_finish(fd, FUZZ_IO_TIMEOUT_MS));
  close(fd);

  fuzz_server_stop(&fs);
  /* Every call ctx ends with its call: none may outlive the server. */
  FUZZ_CHECK(crpc_ctx_live_count() == ctx_before);
  return 0;
}
