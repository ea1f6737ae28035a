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
 * One server serves input after input: the first input starts it, exit
 * frees it (atexit), and each input gets a connection of its own. Why:
 * a server per input cost its loop and handler threads, started and
 * joined under ASan, several times what the input's connection costs.
 * Per input: connect -> write the input, then one of two endings:
 *   - the harness half-closes: after the ACK of its PING when the input is
 *     whole frames (so every frame has been processed first), at once
 *     when it ends inside a frame. The server, reading EOF, must close the
 *     connection (its calls are cancelled, "connection lost"), and then
 *     no ctx may be left: a server call releases its ctx when crpc frees
 *     the call, after its stream closed (it left the live-call registry)
 *     and its handler or reactor returned. A bounded wait: a blocking
 *     handler returns on its own thread a moment after its ctx is
 *     cancelled;
 *   - one whole-frames input in SHUTDOWN_EVERY (a hash of its bytes
 *     decides, so a rerun ends the same way): after the ACK the server
 *     shuts down with the connection and its calls still open (graceful
 *     GOAWAY, calls cancelled "shutdown", handlers waited for) and must
 *     close the connection, with no ctx left; it is then freed, every ctx
 *     with it (checked), and the next input starts a new server. Kept for
 *     a subset rather than dropped: the shutdown path meets calls in every
 *     state only through such inputs.
 * Either way the server must close the connection (checked), and no ctx
 * may be left (checked).
 *
 * Nothing of one input may reach the next. What a connection changes
 * lives and dies with it (its nghttp2 session, ping strikes, handler
 * slots, queued bytes); server-wide there are counters (channelz, call
 * ids) and the rapid-reset budget per peer address, which unix sockets do
 * not get. The exception is the test service: a crpc.test.Test call with
 * x-tag metadata records an observation that it keeps for Report calls
 * (and that would pile up over millions of inputs). So the harness
 * decodes the input's header blocks as the server will (hpack_scan.h),
 * asks the service after the input whether it recorded any of its x-tag
 * values, and if so frees the server: every input starts with a service
 * that has recorded nothing.
 *
 * LeakSanitizer: the kept server is reachable, never a leak, and is freed
 * (threads joined) before the check at exit. Everything of an input is
 * freed before it returns (fuzz_alloc_settle waits for crpc's threads to
 * finish; the fuzz build turns rpc/mem's free lists off,
 * CRPC_MEM_NO_CACHE), so libFuzzer's check after an input that allocated
 * more than it freed still sees what that input left unreferenced.
 *
 * Blocking handlers race the ending: one that answers before its call is
 * cancelled sends its response, one that does not is cancelled. Both are
 * real server behaviour; the coverage of the response path may vary a
 * little between runs of one input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crpc/calls.h"
#include "crpc/ctx.h"
#include "fuzz/fuzz_service.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/hpack_scan.h"

/* A request message larger than this (after decompression) is refused:
 * the limit's code path runs, and no input makes the server hold
 * megabytes. */
#define MAX_RECV (64 * 1024)

/* One whole-frames input in this many ends with a server shutdown: often
 * enough that the shutdown path meets calls in every state, rarely enough
 * that starting servers does not dominate the run again. */
#define SHUTDOWN_EVERY 32

/* The longest an input waits for crpc's threads to free what it
 * allocated (fuzz_alloc_settle); tens of microseconds as a rule, and it
 * stops sooner once nothing more is being freed. */
#define SETTLE_MS 20

static char sock_path[108]; /* sizeof sockaddr_un.sun_path */
static char address[140];
static fuzz_server fs; /* fs.server NULL: none running */
/* crpc_ctx_live_count() before the server was started. */
static size_t ctx_without_server;

static void stop_server(void) {
  if (fs.server == NULL) return;
  fuzz_server_stop(&fs);
  /* Its root ctx and every call's went with it. */
  size_t n = fuzz_wait_ctx_count(ctx_without_server, FUZZ_IO_TIMEOUT_MS);
  if (n != ctx_without_server) {
    fuzz_fail("%zu ctx left after the server was freed (%zu before it)", n,
              ctx_without_server);
  }
}

static void at_exit(void) {
  stop_server();
  unlink(sock_path); /* the server leaves its socket file */
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  fuzz_socket_path(sock_path, sizeof sock_path, "server");
  snprintf(address, sizeof address, "unix:%s", sock_path);
  atexit(at_exit);
  return 0;
}

/* The x-tag values an input's header blocks carry, as the test service
 * keeps a tag (the value up to its first NUL, at most TAG_MAX - 1 bytes);
 * `overflow` if there were more than MAX_TAGS different ones. */
#define MAX_TAGS 8
#define TAG_MAX 128 /* rpc/testing/test_service.c's call_state.tag */

typedef struct tags {
  char tag[MAX_TAGS][TAG_MAX];
  int n;
  bool overflow;
} tags;

static bool find_x_tag(const uint8_t *name, size_t namelen,
                       const uint8_t *value, size_t valuelen, void *arg) {
  tags *t = arg;
  if (!fuzz_hpack_name_is(name, namelen, "x-tag")) return false;
  char tag[TAG_MAX];
  snprintf(tag, sizeof tag, "%.*s", (int)valuelen, (const char *)value);
  for (int i = 0; i < t->n; i++) {
    if (strcmp(t->tag[i], tag) == 0) return false;
  }
  if (t->n == MAX_TAGS) {
    t->overflow = true;
    return true;
  }
  memcpy(t->tag[t->n++], tag, sizeof tag);
  return false;
}

/* Whether the service may hold an observation of this input: one of its
 * tags was recorded (every handler has returned by now, and a handler
 * records before it returns), or it had too many to ask about. */
static bool tags_recorded(const tags *t) {
  if (t->overflow) return true;
  for (int i = 0; i < t->n; i++) {
    char *text = crpc_test_service_wait_report(fs.svc, t->tag[i], 0);
    free(text);
    if (text != NULL) return true;
  }
  return false;
}

/* Waits until the server's loop has freed the input's connection. The
 * server posts that free as it closes the socket, so the harness can see
 * EOF (or, for a connection lingering after a graceful end, close its
 * end) before the post. Each round trip below is a closure the loop
 * answers; one posted after an answer runs in a later iteration than
 * everything that iteration posted. Three rounds cover both orders: the
 * close seen in the iteration that answers the first round (a lingering
 * connection reads our EOF after running posted closures) and the free
 * posted by then, run before the third. Without this an input could
 * return, and LeakSanitizer's per-input check stop the world, while the
 * loop thread was still freeing the connection: twice in 2.9M inputs it
 * reported a half-freed connection (its nghttp2 tables already gone, the
 * session struct and the crpc side not yet) as leaked. */
static void snapshot_calls_to(FILE *sink);

static void settle_loop(void) {
  for (int i = 0; i < 3; i++) snapshot_calls_to(NULL);
}

/* Lists the server's calls (a closure each loop answers) and, with a
 * sink, formats them (method, peer, cause: the peer's bytes) as
 * crpc_server_calls_dump would. */
static void snapshot_calls_to(FILE *sink) {
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(),
                                        FUZZ_IO_TIMEOUT_MS * CRPC_MILLISECOND);
  FUZZ_CHECK(ctx != NULL);
  crpc_call_info *calls = NULL;
  size_t n = 0;
  FUZZ_CHECK(crpc_server_calls(fs.server, ctx, &calls, &n) == CRPC_OK);
  for (size_t i = 0; i < n; i++) FUZZ_CHECK(calls[i].method != NULL);
  if (sink != NULL) crpc_calls_write(sink, calls, n);
  crpc_calls_free(calls);
  crpc_ctx_release(ctx);
}

/* The operator's view of the input's open calls, written to /dev/null. */
static void snapshot_calls(void) {
  static FILE *devnull;
  if (devnull == NULL) devnull = fopen("/dev/null", "w");
  snapshot_calls_to(devnull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_alloc_mark();
  bool started = fs.server == NULL; /* its allocations stay: no settling */
  if (started) {
    ctx_without_server = crpc_ctx_live_count();
    if (fuzz_server_start(&fs, address, NULL, MAX_RECV) != CRPC_OK) {
      fuzz_fail("cannot start the server on %s", address);
    }
  }
  size_t ctx_before = crpc_ctx_live_count();
  tags t = {.n = 0};
  if (!fuzz_hpack_scan(data, size, find_x_tag, &t)) t.overflow = true;
  bool whole = fuzz_h2_whole_frames(data, size);
  bool shutdown = whole && fuzz_hash(data, size) % SHUTDOWN_EVERY == 0;

  int fd = fuzz_connect_unix(sock_path);
  if (fd < 0) fuzz_fail("cannot connect to %s", sock_path);
  size_t len;
  uint8_t *out = fuzz_concat(FUZZ_H2_PREFACE, FUZZ_H2_PREFACE_LEN, data, size,
                             whole, &len);
  fuzz_exchange_result res;
  fuzz_exchange(fd, out, len, whole, false, FUZZ_IO_TIMEOUT_MS, &res);
  free(out);
  /* A server that neither answers the PING nor closes is wedged. */
  FUZZ_CHECK(!res.timed_out);
  /* With the input's calls still open: what an operator's live-call view
   * (crpc/calls.h, the admin service) makes of them. */
  if (res.acked) snapshot_calls();

  if (res.acked && shutdown) {
    crpc_server_shutdown(fs.server, 0);
    /* Shut down, the server must have ended the connection ... */
    FUZZ_CHECK(fuzz_finish(fd, FUZZ_IO_TIMEOUT_MS));
    close(fd);
    /* ... and every call: shutdown returns once their handlers have. */
    FUZZ_CHECK(crpc_ctx_live_count() == ctx_before);
    stop_server();
    return 0;
  }
  /* After the client's EOF the server must end the connection ... */
  FUZZ_CHECK(fuzz_finish(fd, FUZZ_IO_TIMEOUT_MS));
  close(fd);
  /* ... and every call on it. A server call releases its ctx when its
   * struct is freed, after its stream has closed (it has left the
   * live-call registry then) and its handler or reactor has returned, so
   * the count back where it was means all of that happened. */
  size_t n = fuzz_wait_ctx_count(ctx_before, FUZZ_IO_TIMEOUT_MS);
  if (n != ctx_before) {
    fuzz_fail("%zu ctx left after the input (%zu before it)", n, ctx_before);
  }
  settle_loop(); /* the connection's free, posted as it closed */
  if (tags_recorded(&t)) {
    stop_server(); /* its service must not carry the tag to other inputs */
  } else if (!started) {
    fuzz_alloc_settle(SETTLE_MS);
  }
  return 0;
}
