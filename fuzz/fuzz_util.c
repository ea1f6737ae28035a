/* fuzz/fuzz_util.c - the fake peer's socket work and helpers (fuzz_util.h). */
#include "fuzz/fuzz_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "crpc/ctx.h"
#include "crpc/log.h"

/* Payload "crpcfuzz": no peer sends a PING with it, so its ACK is ours. */
const uint8_t fuzz_ping[FUZZ_PING_LEN] = {0, 0, 8, 6, 0, 0, 0, 0, 0, 'c',
                                          'r', 'p', 'c', 'f', 'u', 'z', 'z'};

#define FRAME_HEADER_LEN 9
#define PING_TYPE 6
#define ACK_FLAG 1

bool fuzz_h2_whole_frames(const uint8_t *data, size_t len) {
  size_t off = 0;
  while (len - off >= FRAME_HEADER_LEN) {
    size_t n = ((size_t)data[off] << 16) | ((size_t)data[off + 1] << 8) |
               data[off + 2];
    off += FRAME_HEADER_LEN;
    if (n > len - off) return false;
    off += n;
  }
  return off == len;
}

uint8_t *fuzz_concat(const void *prefix, size_t prefix_len,
                     const uint8_t *data, size_t len, bool ping,
                     size_t *out_len) {
  size_t n = prefix_len + len + (ping ? FUZZ_PING_LEN : 0);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) fuzz_fail("out of memory");
  if (prefix_len) memcpy(buf, prefix, prefix_len);
  if (len) memcpy(buf + prefix_len, data, len);
  if (ping) memcpy(buf + prefix_len + len, fuzz_ping, FUZZ_PING_LEN);
  *out_len = n;
  return buf;
}

/* Follows the frame boundaries of the peer's bytes just far enough to spot
 * the ACK of fuzz_ping; payloads are skipped, not kept. */
typedef struct frame_reader {
  size_t skip; /* preface bytes still to drop */
  uint8_t hdr[FRAME_HEADER_LEN];
  size_t hdr_have;
  size_t left; /* payload bytes of the current frame still to come */
  bool ping_ack;
  uint8_t payload[8];
  size_t pay_have;
  bool acked;
} frame_reader;

static void reader_feed(frame_reader *r, const uint8_t *p, size_t n) {
  size_t k = r->skip < n ? r->skip : n;
  r->skip -= k;
  p += k;
  n -= k;
  while (n > 0) {
    if (r->hdr_have < FRAME_HEADER_LEN) {
      k = FRAME_HEADER_LEN - r->hdr_have;
      if (k > n) k = n;
      memcpy(r->hdr + r->hdr_have, p, k);
      r->hdr_have += k;
      p += k;
      n -= k;
      if (r->hdr_have < FRAME_HEADER_LEN) break;
      r->left = ((size_t)r->hdr[0] << 16) | ((size_t)r->hdr[1] << 8) |
                r->hdr[2];
      r->ping_ack = r->hdr[3] == PING_TYPE && (r->hdr[4] & ACK_FLAG) &&
                    r->left == sizeof r->payload;
      r->pay_have = 0;
      if (r->left == 0) r->hdr_have = 0;
      continue;
    }
    k = r->left < n ? r->left : n;
    if (r->ping_ack) {
      memcpy(r->payload + r->pay_have, p, k);
      r->pay_have += k;
    }
    r->left -= k;
    p += k;
    n -= k;
    if (r->left == 0) {
      if (r->ping_ack && memcmp(r->payload, fuzz_ping + FRAME_HEADER_LEN,
                                sizeof r->payload) == 0) {
        r->acked = true;
      }
      r->hdr_have = 0;
    }
  }
}

int64_t fuzz_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t fuzz_wait_ctx_count(size_t want, int timeout_ms) {
  int64_t deadline = fuzz_now_ms() + timeout_ms;
  for (int i = 0;; i++) {
    size_t n = crpc_ctx_live_count();
    if (n <= want || fuzz_now_ms() >= deadline) return n;
    /* Mostly a few microseconds: yield first, then sleep a little so a
     * slow handler does not cost a spinning CPU. */
    if (i < 100) {
      sched_yield();
    } else {
      struct timespec ts = {0, 100 * 1000};
      nanosleep(&ts, NULL); /* EINTR: the loop checks again */
    }
  }
}

#ifdef FUZZ_LIBFUZZER
/* From the sanitizer runtime (sanitizer/allocator_interface.h); weak, as
 * a libFuzzer build without one (coverage) does not have it. */
int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *)) __attribute__((weak));

/* How long nothing may be allocated or freed before fuzz_alloc_settle
 * stops waiting for frees that are not coming. crpc's threads finish an
 * input's frees within tens of microseconds of its end as a rule. */
#define FUZZ_ALLOC_QUIET_US 300

static atomic_ulong allocs, frees;
static unsigned long allocs0, frees0;

static void count_alloc(const volatile void *p, size_t n) {
  (void)p;
  (void)n;
  atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
}

static void count_free(const volatile void *p) {
  (void)p;
  atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
}

void fuzz_alloc_mark(void) {
  static bool installed;
  if (!installed) {
    installed = true;
    /* Without hooks nothing is counted and fuzz_alloc_settle returns at
     * once. */
    if (__sanitizer_install_malloc_and_free_hooks != NULL) {
      __sanitizer_install_malloc_and_free_hooks(count_alloc, count_free);
    }
  }
  allocs0 = atomic_load(&allocs);
  frees0 = atomic_load(&frees);
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool fuzz_alloc_settle(int timeout_ms) {
  int64_t now = now_us(), deadline = now + (int64_t)timeout_ms * 1000;
  int64_t quiet_since = now;
  unsigned long seen = 0;
  for (int i = 0;; i++) {
    /* Frees first: an allocation counted after them could look like one
     * not yet freed, never the other way round. */
    unsigned long f = atomic_load(&frees) - frees0;
    unsigned long a = atomic_load(&allocs) - allocs0;
    if (a <= f) return true;
    now = now_us();
    if (a + f != seen) {
      seen = a + f;
      quiet_since = now;
    } else if (now - quiet_since >= FUZZ_ALLOC_QUIET_US) {
      /* Nothing freed for a while: what is left is kept (the kept
       * channel's last connection), or leaked. */
      return false;
    }
    if (now >= deadline) return false;
    if (i < 100) {
      sched_yield();
    } else {
      struct timespec ts = {0, 20 * 1000};
      nanosleep(&ts, NULL);
    }
  }
}
#else
void fuzz_alloc_mark(void) {}
bool fuzz_alloc_settle(int timeout_ms) {
  (void)timeout_ms;
  return true;
}
#endif

uint32_t fuzz_hash(const uint8_t *data, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ data[i]) * 16777619u;
  return h;
}

/* Reads what is there. 1: got bytes or nothing for now; 0: the peer
 * closed (EOF or an error such as ECONNRESET). */
static int drain(int fd, frame_reader *r) {
  uint8_t buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      if (r != NULL) reader_feed(r, buf, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}

void fuzz_exchange(int fd, const uint8_t *out, size_t len, bool want_ack,
                   bool peer_preface, int timeout_ms,
                   fuzz_exchange_result *res) {
  memset(res, 0, sizeof *res);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  frame_reader r = {.skip = peer_preface ? FUZZ_H2_PREFACE_LEN : 0};
  int64_t deadline = fuzz_now_ms() + timeout_ms;
  size_t off = 0;
  for (;;) {
    if (off == len && (!want_ack || r.acked)) break;
    int64_t wait = deadline - fuzz_now_ms();
    if (wait <= 0) {
      res->timed_out = true;
      break;
    }
    struct pollfd p = {.fd = fd,
                       .events = POLLIN | (off < len ? POLLOUT : 0)};
    if (poll(&p, 1, (int)wait) < 0 && errno != EINTR) {
      res->closed = true;
      break;
    }
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !drain(fd, &r)) {
      res->closed = true;
      break;
    }
    if ((p.revents & POLLOUT) && off < len) {
      ssize_t w = send(fd, out + off, len - off, MSG_NOSIGNAL);
      if (w > 0) {
        off += (size_t)w;
      } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                 errno != EINTR) {
        res->closed = true; /* EPIPE, ECONNRESET: the peer is gone */
        break;
      }
    }
  }
  res->acked = r.acked;
  res->written = off;
}

bool fuzz_finish(int fd, int timeout_ms) {
  shutdown(fd, SHUT_WR);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  int64_t deadline = fuzz_now_ms() + timeout_ms;
  for (;;) {
    if (!drain(fd, NULL)) return true;
    int64_t wait = deadline - fuzz_now_ms();
    if (wait <= 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)wait) < 0 && errno != EINTR) return true;
  }
}

static void drop_log(crpc_log_level level, const char *tag, const char *msg,
                     void *user_data) {
  (void)level;
  (void)tag;
  (void)msg;
  (void)user_data;
}

void fuzz_quiet_logs(void) { crpc_log_set_sink(drop_log, NULL); }

void fuzz_socket_path(char *buf, size_t cap, const char *tag) {
  snprintf(buf, cap, "/tmp/crpc-fuzz-%ld-%s.sock", (long)getpid(), tag);
}

int fuzz_connect_unix(const char *path) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sun.sun_path) return -1;
  strcpy(sun.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void fuzz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}
