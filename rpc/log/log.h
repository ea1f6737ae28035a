/*
 * rpc/log/log.h - how the runtime logs (internal; the public side is
 * crpc/log.h).
 *
 *   CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "accept: %s", why);
 *   CRPC_TRACE(CRPC_LOG_SUB_H2, "GOAWAY sent (last stream %d)", id);
 *
 * Both macros test one atomic word before evaluating their arguments, so a
 * message that is off costs a load and a branch: they may sit on the hot
 * path. crpc_log_fatal is for the line right before an abort: it is
 * delivered whatever the level (and to stderr as well as a custom sink).
 * The bottom layer: depends on the public headers only, so ctx and every
 * layer above may log.
 */
#ifndef CRPC_LOG_LOG_H
#define CRPC_LOG_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "crpc/log.h"

/* Subsystem of a message: its tag (crpc_log_sub_name) and its trace bit. */
typedef enum crpc_log_sub {
  CRPC_LOG_SUB_SERVER = 0,
  CRPC_LOG_SUB_CHANNEL,
  CRPC_LOG_SUB_CALL,
  CRPC_LOG_SUB_H2,
  CRPC_LOG_SUB_TLS,
  CRPC_LOG_SUB_CTX,
  CRPC_LOG_SUB_INTERCEPTOR,
  CRPC_LOG_SUB_COUNT_,
} crpc_log_sub;

/* One word so a check is one load: bits 0-7 the level threshold, bits
 * 8-23 the traced subsystems (bit 8 + sub), bit 31 set once the
 * environment has been read. Only log.c writes it. */
extern _Atomic uint32_t crpc_log_state_;
#define CRPC_LOG_STATE_INIT_ (UINT32_C(1) << 31)
#define CRPC_LOG_STATE_TRACE_SHIFT_ 8

/* Reads CRPC_VERBOSITY / CRPC_TRACE once, returns the state. */
uint32_t crpc_log_state_init_(void);

static inline uint32_t crpc_log_state(void) {
  /* Relaxed: a thread that sees a level change a moment late logs one
   * message more or less, nothing else depends on it. */
  uint32_t s = atomic_load_explicit(&crpc_log_state_, memory_order_relaxed);
  return (s & CRPC_LOG_STATE_INIT_) ? s : crpc_log_state_init_();
}

/* Whether a message of `level` is delivered. */
static inline bool crpc_log_on(crpc_log_level level) {
  return (uint32_t)level >= (crpc_log_state() & 0xffu);
}

/* Whether `sub` is traced (CRPC_TRACE / crpc_log_set_trace). */
static inline bool crpc_log_trace_on(crpc_log_sub sub) {
  return (crpc_log_state() >> (CRPC_LOG_STATE_TRACE_SHIFT_ + (unsigned)sub)) &
         1u;
}

/* Formats and hands one message to the sink; no level check (use the
 * macros). */
void crpc_log_write(crpc_log_level level, crpc_log_sub sub, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));

/* The last words before an abort: ERROR, delivered whatever the level, to
 * the sink and (if it is a custom one) to stderr. The caller aborts. */
void crpc_log_fatal(crpc_log_sub sub, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "server", "channel", "call", "h2", "tls", "ctx", "interceptor". */
const char *crpc_log_sub_name(crpc_log_sub sub);

#define CRPC_LOG(level, sub, ...)                               \
  do {                                                          \
    if (crpc_log_on(level)) crpc_log_write(level, sub, __VA_ARGS__); \
  } while (0)

#define CRPC_TRACE(sub, ...)                                         \
  do {                                                               \
    if (crpc_log_trace_on(sub))                                      \
      crpc_log_write(CRPC_LOG_DEBUG, sub, __VA_ARGS__);              \
  } while (0)

#endif /* CRPC_LOG_LOG_H */
