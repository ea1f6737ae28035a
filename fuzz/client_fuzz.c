/*
 * fuzz/client_fuzz.c - libFuzzer target: a server's bytes into a real crpc
 * channel's connection.
 *
 * Input: one selector byte (client_calls.h: which calls the channel
 * makes, and how the input ends), then what the server sends (HTTP/2
 * frames from its SETTINGS on). Path: a unix socket into the channel's
 * nghttp2 session, through HPACK, response headers and trailers
 * (grpc-status, grpc-message percent-decoding, binary metadata), message
 * deframing and decompression, flow control, GOAWAY and RST_STREAM
 * handling, transparent retries, and the async completions
 * (rpc/channel/call_wire.c, call_async.c, ...).
 *
 * Kept from input to input: one listening socket, and one channel per
 * default_compression (the selector's gzip bit), made by the first input
 * that needs it; exit frees them (atexit). Why: a channel per input cost
 * its loop and connecting threads, started and joined under ASan, several
 * times what the input's connection costs. Each input gets a connection
 * of its own. Per input: the calls start -> the channel connects (on its
 * helper thread) -> accept -> write the input while reading the client's
 * bytes, then one of two endings, chosen by the input's shape:
 *   - whole frames: the harness's PING follows the input; once its ACK is
 *     back every frame has been processed, and the client cancels its
 *     calls (RST_STREAM on the open connection), which must all end; then
 *     the harness half-closes and the channel must drop the connection;
 *   - an input that ends inside a frame: the harness half-closes, the
 *     channel must drop the connection after the input, and every call
 *     must end (UNAVAILABLE, unless the input settled it first).
 * With the selector's FUZZ_SEL_FREE_CHANNEL bit the channel is freed
 * where a per-input channel used to be (after the calls ended; with the
 * connection still up in the first ending) and must close the
 * connection; the next input makes a new one.
 * A further connection the channel makes during the input (a transparent
 * retry of a call whose connection went before its request did) waits in
 * the listener's backlog, and is accepted and closed at once while the
 * calls end: so a retry neither hangs nor fails to connect (a failed
 * connect would leave the address backing off, and the next input's calls
 * would fail without connecting).
 * Checked at the end: the channel closed the connection; every call
 * ended, and no ctx is left (a call's ctx goes when crpc frees the call,
 * so this also means every call left the live-call registry); the channel
 * knows its connections are gone (IDLE: not READY, not CONNECTING with an
 * attempt in flight, not TRANSIENT_FAILURE after a failed one); and
 * nothing is left to accept. The waits are bounded (FUZZ_IO_TIMEOUT_MS),
 * as crpc ends some of it on its own threads just after the harness sees
 * the connection close.
 *
 * Nothing of one input may reach the next. A connection's state dies with
 * it; a channel keeps only counters (channelz, call ids), its backoff
 * (reset by every connection made) and one thing learned from responses:
 * encodings the server's grpc-accept-encoding left out, after which calls
 * asking for them send uncompressed (refused_encodings). That only
 * matters to the gzip channel, so an input whose header blocks carry a
 * grpc-accept-encoding without gzip (hpack_scan.h decodes them as the
 * channel will) frees the gzip channel after it.
 *
 * LeakSanitizer: the kept listener and channels are reachable, never a
 * leak, and are freed (threads joined) before the check at exit. Between
 * inputs the channel keeps its last, dead connection struct (the next
 * connect frees it; the fuzz build turns rpc/mem's free lists off,
 * CRPC_MEM_NO_CACHE); everything else of an input is freed before it
 * returns (fuzz_alloc_settle waits for crpc's threads to finish).
 * libFuzzer's check after an input that allocated more than it freed
 * therefore still sees what that input left unreferenced.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "fuzz/client_calls.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/hpack_scan.h"
#include "rpc/wire/compress.h"

/* A response message larger than this (after decompression) fails the
 * call: the limit's code path runs, and no input makes the client hold
 * megabytes. */
#define MAX_RECV (64 * 1024)

/* The calls' deadline, sent as grpc-timeout. Calls end long before it
 * (the connection is closed after the input); it is only a backstop. */
#define CALL_TIMEOUT (10 * CRPC_SECOND)

/* Reconnect backoff, initial and maximum. Connecting cannot fail here
 * (the listener stays, retries are accepted), so this only matters if it
 * ever did: a short one keeps the next input from finding the address
 * backing off. Not shorter: a call that is not wait-for-ready attempts
 * again for as long as each backoff has passed by the time it looks again
 * (rpc/channel/channel_lb.c), and with 1 ns one made ~87,000 failed
 * connects in 5 s until its ctx ended. */
#define BACKOFF CRPC_MILLISECOND

/* The longest an input waits for crpc's threads to free what it
 * allocated (fuzz_alloc_settle); tens of microseconds as a rule, and it
 * stops sooner once nothing more is being freed. */
#define SETTLE_MS 20

static char sock_path[108]; /* sizeof sockaddr_un.sun_path */
static char target[140];
static int lfd = -1;     /* the kept listener (non-blocking) */
static int done_fd = -1; /* fuzz_calls' eventfd: every call has ended */
/* The kept channels, by the selector's gzip bit; NULL: none yet. */
static crpc_channel *channels[2];

static void at_exit(void) {
  for (int i = 0; i < 2; i++) {
    crpc_channel_free(channels[i]);
    channels[i] = NULL;
  }
  if (lfd >= 0) close(lfd);
  if (done_fd >= 0) close(done_fd);
  lfd = done_fd = -1;
  unlink(sock_path);
}

static int listen_unix(const char *path) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  unlink(path);
  /* Room for every connection one input can make (2 calls, each resent
   * at most 3 times): a full backlog would fail a connect. */
  if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
      listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  fuzz_socket_path(sock_path, sizeof sock_path, "client");
  snprintf(target, sizeof target, "unix:%s", sock_path);
  lfd = listen_unix(sock_path);
  if (lfd < 0) fuzz_fail("cannot listen on %s", sock_path);
  done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (done_fd < 0) fuzz_fail("eventfd: %s", strerror(errno));
  atexit(at_exit);
  return 0;
}

static crpc_channel *get_channel(bool gzip) {
  if (channels[gzip] != NULL) return channels[gzip];
  crpc_channel_options opts = {
      .max_recv_message_size = MAX_RECV,
      .default_compression = gzip ? "gzip" : NULL,
      .min_connect_timeout_ns = FUZZ_IO_TIMEOUT_MS * CRPC_MILLISECOND,
      .idle_timeout_ns = -1, /* no idle timer racing the input */
      .backoff_initial_ns = BACKOFF,
      .backoff_max_ns = BACKOFF,
  };
  channels[gzip] = crpc_channel_new(target, &opts);
  if (channels[gzip] == NULL) {
    fuzz_fail("cannot create a channel to %s", target);
  }
  return channels[gzip];
}

static void drop_channel(bool gzip) {
  crpc_channel_free(channels[gzip]);
  channels[gzip] = NULL;
}

/* The next connection within timeout_ms, or -1 (errno says why). A
 * signal does not cut the wait short: libFuzzer's SIGALRM (its -timeout
 * watchdog, every timeout/2 + 1 s) lands on this thread, and an EINTR
 * taken for "no connection" once failed a run ("the channel did not
 * connect"). */
static int accept_within(int timeout_ms) {
  int64_t deadline = fuzz_now_ms() + timeout_ms;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    int64_t wait = deadline - fuzz_now_ms();
    if (wait <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    poll(&p, 1, (int)wait); /* EINTR: try again */
  }
}

/* Accepts and closes every connection waiting on the listener: the
 * channel's further attempts (transparent retries), which see the
 * connection end at once. Returns how many there were. */
static int reject_pending(void) {
  int n = 0;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return n;
    }
    close(fd);
    n++;
  }
}

/* Waits for something to do: a connection to reject, every call ended
 * (done_fd), or `us` microseconds, whichever comes first. */
static void wait_events(int64_t us) {
  struct pollfd p[2] = {{.fd = lfd, .events = POLLIN},
                        {.fd = done_fd, .events = POLLIN}};
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  ppoll(p, 2, &ts, NULL); /* EINTR: the caller looks again */
  uint64_t v;
  if (p[1].revents & POLLIN) {
    ssize_t n = read(done_fd, &v, sizeof v); /* reset it */
    (void)n;
  }
}

/* Waits until every call has ended, at most FUZZ_IO_TIMEOUT_MS, turning
 * away the connections the channel makes meanwhile. */
static bool calls_end(fuzz_calls *fc) {
  int64_t deadline = fuzz_now_ms() + FUZZ_IO_TIMEOUT_MS;
  for (;;) {
    reject_pending();
    if (fuzz_calls_wait(fc, 0)) return true;
    int64_t left = deadline - fuzz_now_ms();
    if (left <= 0) return false;
    wait_events(left * 1000);
  }
}

/* The calls are over: frees them and their ctx. */
static void end_calls(fuzz_calls *fc, crpc_ctx *ctx) {
  FUZZ_CHECK(calls_end(fc));
  fuzz_calls_destroy(fc);
  crpc_ctx_release(ctx);
}

/* Would the input, once the channel has read it, leave gzip refused? */
typedef struct refusal {
  bool gzip_refused;
} refusal;

static bool find_refusal(const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen, void *arg) {
  if (!fuzz_hpack_name_is(name, namelen, "grpc-accept-encoding")) {
    return false;
  }
  /* Parsed as the channel parses it (rpc/channel/call_wire.c). */
  crpc_wire_encoding_set ok =
      crpc_wire_accept_encoding_parse((const char *)value, valuelen);
  if (ok & CRPC_WIRE_ENCODING_BIT(CRPC_WIRE_ENCODING_GZIP)) return false;
  ((refusal *)arg)->gzip_refused = true;
  return true;
}

/* Waits until the channel has taken in the end of its connections:
 * neither READY (one is known dead) nor CONNECTING (no attempt left in
 * flight), nothing left to accept; at most FUZZ_IO_TIMEOUT_MS. Its state
 * then, or READY if it never settled. */
static crpc_channel_state channel_settle(crpc_channel *ch) {
  int64_t deadline = fuzz_now_ms() + FUZZ_IO_TIMEOUT_MS;
  for (;;) {
    bool rejected = reject_pending() > 0;
    crpc_channel_state st = crpc_channel_get_state(ch);
    if (!rejected && st != CRPC_CHANNEL_READY &&
        st != CRPC_CHANNEL_CONNECTING && reject_pending() == 0) {
      return st;
    }
    if (fuzz_now_ms() >= deadline) return CRPC_CHANNEL_READY;
    wait_events(50);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0; /* no selector: nothing to call */
  uint8_t selector = data[0];
  data++;
  size--;
  bool gzip = fuzz_calls_compression(selector) != NULL;
  bool free_channel = (selector & FUZZ_SEL_FREE_CHANNEL) != 0;
  refusal r = {false};
  if (gzip && !fuzz_hpack_scan(data, size, find_refusal, &r)) {
    r.gzip_refused = true;
  }
  fuzz_alloc_mark();
  /* A channel made now keeps its allocations: no settling. */
  bool made = channels[gzip] == NULL;
  crpc_channel *ch = get_channel(gzip);
  size_t ctx_before = crpc_ctx_live_count();
  /* The previous input left no connection behind. */
  FUZZ_CHECK(reject_pending() == 0);

  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) fuzz_fail("out of memory");
  fuzz_calls fc;
  FUZZ_CHECK(fuzz_calls_start_notify(&fc, ch, ctx, selector, NULL, done_fd) >
             0);
  int fd = accept_within(FUZZ_IO_TIMEOUT_MS);
  if (fd < 0) {
    const char *why = strerror(errno);
    fuzz_fail("the channel did not connect to %s (%s; channel %s)", sock_path,
              why, crpc_channel_state_name(crpc_channel_get_state(ch)));
  }

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
    end_calls(&fc, ctx);
    if (free_channel) drop_channel(gzip);
    /* Freed, the channel must have closed its connection; kept, it must
     * drop it on the harness's EOF. */
    FUZZ_CHECK(fuzz_finish(fd, FUZZ_IO_TIMEOUT_MS));
  } else {
    /* After the server's EOF the channel must drop the connection ... */
    FUZZ_CHECK(fuzz_finish(fd, FUZZ_IO_TIMEOUT_MS));
    /* ... and then every call on it must end. */
    end_calls(&fc, ctx);
    if (free_channel) drop_channel(gzip);
  }
  close(fd);
  /* A call's ctx goes when crpc frees the call, once it has ended and
   * left the live-call registry (crpc/calls.h): the count back where it
   * was means every call of the input is gone. */
  size_t n = fuzz_wait_ctx_count(ctx_before, FUZZ_IO_TIMEOUT_MS);
  if (n != ctx_before) {
    fuzz_fail("%zu ctx left after the input (%zu before it)", n, ctx_before);
  }
  if (channels[gzip] != NULL) {
    /* IDLE: not TRANSIENT_FAILURE either, as no connect may fail here. */
    crpc_channel_state st = channel_settle(ch);
    if (st != CRPC_CHANNEL_IDLE) {
      fuzz_fail("the channel did not settle after the input: %s",
                crpc_channel_state_name(st));
    }
  } else {
    reject_pending(); /* a freed channel connects no more */
  }
  /* It may now send uncompressed what the next input asks to gzip. */
  if (r.gzip_refused) drop_channel(gzip);
  if (!made) fuzz_alloc_settle(SETTLE_MS);
  return 0;
}
