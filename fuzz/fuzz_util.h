/*
 * fuzz/fuzz_util.h - what the connection fuzz targets share: the fake
 * peer's socket work (write the input while draining the other side, learn
 * when it has been processed, tear down), quiet logs, socket paths,
 * invariant checks, and the waits for what crpc's threads finish just
 * after an input's connection has ended.
 *
 * Knowing when an input has been processed: when the input is a whole
 * number of HTTP/2 frames, the harness appends a PING of its own; crpc's
 * nghttp2 session answers it only after every frame before it, so its ACK
 * means "all of the input went through". An input that ends inside a frame
 * gets no PING (it would be swallowed by that frame); the harness's EOF,
 * which crpc reads after the input, ends the connection instead.
 */
#ifndef CRPC_FUZZ_FUZZ_UTIL_H
#define CRPC_FUZZ_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The client connection preface (RFC 9113 section 3.4). The server target
 * sends it itself, so its inputs (and the recorded corpus) start at the
 * client's first frame instead of spending mutations on a constant. */
#define FUZZ_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define FUZZ_H2_PREFACE_LEN 24

/* The harness's PING frame (9-byte header + 8-byte payload, no ACK flag). */
#define FUZZ_PING_LEN 17
extern const uint8_t fuzz_ping[FUZZ_PING_LEN];

/* Bounds on one input's socket work. crpc answers in microseconds; these
 * only stop a wedged peer from stalling the run (a hang shows up as a
 * FUZZ_CHECK failure or as libFuzzer's -timeout). */
#define FUZZ_IO_TIMEOUT_MS 5000

/* True if data[0..len) is a sequence of whole HTTP/2 frames, each a 9-byte
 * header and the payload length it declares (len 0: true). */
bool fuzz_h2_whole_frames(const uint8_t *data, size_t len);

/* A new malloc'd buffer: prefix[0..prefix_len), then data[0..len), then
 * fuzz_ping if ping. *out_len gets its length. Aborts if out of memory. */
uint8_t *fuzz_concat(const void *prefix, size_t prefix_len,
                     const uint8_t *data, size_t len, bool ping,
                     size_t *out_len);

/* What fuzz_exchange saw. */
typedef struct fuzz_exchange_result {
  bool acked;     /* the ACK of fuzz_ping arrived */
  bool closed;    /* the peer closed or reset the connection */
  bool timed_out; /* neither happened within the timeout */
  size_t written; /* bytes of `out` the peer took */
} fuzz_exchange_result;

/* Writes out[0..len) to the connected stream socket fd (made non-blocking
 * here), reading and dropping what the peer sends meanwhile so neither
 * side stalls on a full socket; then, if want_ack, reads on until the ACK
 * of fuzz_ping. Returns early when the peer closes the connection, and
 * after timeout_ms at the latest. peer_preface: the peer's bytes start
 * with the 24-byte client preface (the harness plays the server), which is
 * skipped before frames are parsed. Never blocks beyond timeout_ms. */
void fuzz_exchange(int fd, const uint8_t *out, size_t len, bool want_ack,
                   bool peer_preface, int timeout_ms,
                   fuzz_exchange_result *res);

/* Half-closes fd (SHUT_WR) and reads until the peer's EOF (or a reset),
 * at most timeout_ms. True if the peer closed: it has seen the end of the
 * input and ended the connection. Does not close fd. */
bool fuzz_finish(int fd, int timeout_ms);

/* Sends crpc's log lines nowhere. Connection errors are what fuzz inputs
 * are made of; printing one per input slows the run and buries libFuzzer's
 * own output. The formatting code still runs. */
void fuzz_quiet_logs(void);

/* Writes "/tmp/crpc-fuzz-<pid>-<tag>.sock" into buf (cap >= 108 fits any
 * pid): one path per process and role, so parallel fuzzing jobs do not
 * meet. */
void fuzz_socket_path(char *buf, size_t cap, const char *tag);

/* A connected blocking AF_UNIX stream socket to path, or -1. */
int fuzz_connect_unix(const char *path);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t fuzz_now_ms(void);

/* Waits until crpc_ctx_live_count() is at most want, at most timeout_ms,
 * and returns the count then. Why wait: some ctxs are released just after
 * what the harness can see (a handler returning once its connection has
 * closed, a unary call freed by its loop after its last callback). */
size_t fuzz_wait_ctx_count(size_t want, int timeout_ms);

/* libFuzzer checks an input for leaks (a rerun, then a LeakSanitizer
 * pass over the whole heap) when more allocations than frees happened
 * while it ran, and gives up checking inputs one by one after 1000 such
 * inputs that were no leak. A target that keeps a server or channel
 * between inputs has the last frees of an input done by crpc's threads a
 * moment after everything the harness can see has ended (a connection's
 * structs freed by a closure its loop runs next, a handler thread
 * finishing after its ctx went). So at the end of an input
 * fuzz_alloc_settle waits until as many frees as allocations have
 * happened since fuzz_alloc_mark (counted by sanitizer allocator hooks),
 * or until nothing has been allocated or freed for a few hundred
 * microseconds (what is still missing then is kept, e.g. the kept
 * channel's last connection, or leaked), at most timeout_ms. Returns whether they
 * balanced. Only in the libFuzzer build (FUZZ_LIBFUZZER); elsewhere no
 * check is made per input, and these do nothing (true). */
void fuzz_alloc_mark(void);
bool fuzz_alloc_settle(int timeout_ms);

/* FNV-1a of data[0..len): a choice made from an input's bytes, the same
 * on every run of that input. */
uint32_t fuzz_hash(const uint8_t *data, size_t len);

/* Prints "fuzz: " and the message to stderr and aborts, so libFuzzer
 * records the input as a crash. */
_Noreturn void fuzz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* An invariant of the code under test; violated -> a crash with the
 * expression, file and line. */
#define FUZZ_CHECK(cond)                                                  \
  do {                                                                    \
    if (!(cond)) fuzz_fail("%s:%d: check failed: %s", __FILE__, __LINE__, \
                           #cond);                                        \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif /* CRPC_FUZZ_FUZZ_UTIL_H */
