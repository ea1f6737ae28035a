/*
 * log.c - the runtime's log: level and trace switches in one atomic word,
 * the sink behind a read-write lock (crpc/log.h, rpc/log/log.h).
 */
#include "rpc/log/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rpc/log/log_testing.h"

_Atomic uint32_t crpc_log_state_ = 0; /* INIT clear: read the env first */

/* Serialises the environment read and the writers of the state word (so a
 * set_level and a set_trace racing each other both take effect). */
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;

/* The sink. Emitters hold it shared while they call the sink, so
 * crpc_log_set_sink (exclusive) returns only once the old sink is no
 * longer running. glibc's default rwlock prefers readers, so a sink that
 * logs again (a nested shared lock) does not deadlock behind a waiting
 * writer. */
static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static crpc_log_sink_fn sink_fn; /* NULL: default_sink */
static void *sink_data;

static const char *const kSubNames[CRPC_LOG_SUB_COUNT_] = {
    [CRPC_LOG_SUB_SERVER] = "server", [CRPC_LOG_SUB_CHANNEL] = "channel",
    [CRPC_LOG_SUB_CALL] = "call",     [CRPC_LOG_SUB_H2] = "h2",
    [CRPC_LOG_SUB_TLS] = "tls",       [CRPC_LOG_SUB_CTX] = "ctx",
    [CRPC_LOG_SUB_INTERCEPTOR] = "interceptor",
};

#define TRACE_MASK (((UINT32_C(1) << CRPC_LOG_SUB_COUNT_) - 1u))

const char *crpc_log_sub_name(crpc_log_sub sub) {
  return (unsigned)sub < CRPC_LOG_SUB_COUNT_ ? kSubNames[sub] : "crpc";
}

const char *crpc_log_level_name(crpc_log_level level) {
  switch (level) {
    case CRPC_LOG_DEBUG: return "DEBUG";
    case CRPC_LOG_INFO: return "INFO";
    case CRPC_LOG_WARNING: return "WARNING";
    case CRPC_LOG_ERROR: return "ERROR";
    case CRPC_LOG_NONE: return "NONE";
  }
  return "?";
}

static uint32_t pack(uint32_t level, uint32_t trace) {
  return CRPC_LOG_STATE_INIT_ | (trace << CRPC_LOG_STATE_TRACE_SHIFT_) |
         level;
}

/* CRPC_VERBOSITY's value -> level; unset or unknown: the default. gRPC
 * spells them in upper case; either case is taken. */
static uint32_t parse_verbosity(const char *v) {
  static const struct {
    const char *name;
    crpc_log_level level;
  } kNames[] = {
      {"debug", CRPC_LOG_DEBUG},     {"info", CRPC_LOG_INFO},
      {"warning", CRPC_LOG_WARNING}, {"error", CRPC_LOG_ERROR},
      {"none", CRPC_LOG_NONE},
  };
  for (size_t i = 0; v != NULL && i < sizeof(kNames) / sizeof(kNames[0]);
       i++) {
    if (strcasecmp(v, kNames[i].name) == 0) return kNames[i].level;
  }
  return CRPC_LOG_WARNING; /* quiet in normal operation */
}

/* "h2,server" -> trace bits; *unknown counts names that match nothing. */
static uint32_t parse_trace(const char *list, int *unknown) {
  uint32_t bits = 0;
  *unknown = 0;
  const char *p = list;
  while (p != NULL && *p != '\0') {
    size_t n = strcspn(p, ",");
    const char *name = p;
    size_t len = n;
    while (len > 0 && (*name == ' ' || *name == '\t')) name++, len--;
    while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t')) len--;
    if (len > 0) {
      bool found = len == 3 && strncasecmp(name, "all", 3) == 0;
      if (found) bits = TRACE_MASK;
      for (unsigned i = 0; !found && i < CRPC_LOG_SUB_COUNT_; i++) {
        if (strlen(kSubNames[i]) == len &&
            strncasecmp(name, kSubNames[i], len) == 0) {
          bits |= UINT32_C(1) << i;
          found = true;
        }
      }
      if (!found) (*unknown)++;
    }
    p += n;
    if (*p == ',') p++;
  }
  return bits;
}

/* Reads the environment into the state word. Caller holds state_mu.
 * Returns the number of unknown CRPC_TRACE names (warned about by the
 * caller once the lock is released: logging needs the state). */
static int load_env_locked(void) {
  int unknown;
  uint32_t trace = parse_trace(getenv("CRPC_TRACE"), &unknown);
  uint32_t level = parse_verbosity(getenv("CRPC_VERBOSITY"));
  atomic_store_explicit(&crpc_log_state_, pack(level, trace),
                        memory_order_release);
  return unknown;
}

static void warn_unknown(int unknown) {
  if (unknown > 0) {
    CRPC_LOG(CRPC_LOG_WARNING, CRPC_LOG_SUB_CTX,
             "CRPC_TRACE=\"%s\": %d unknown name(s) ignored (known: server, "
             "channel, call, h2, tls, ctx, interceptor, all)",
             getenv("CRPC_TRACE"), unknown);
  }
}

uint32_t crpc_log_state_init_(void) {
  int unknown = 0;
  pthread_mutex_lock(&state_mu);
  uint32_t s = atomic_load_explicit(&crpc_log_state_, memory_order_acquire);
  if (!(s & CRPC_LOG_STATE_INIT_)) {
    unknown = load_env_locked();
    s = atomic_load_explicit(&crpc_log_state_, memory_order_relaxed);
  }
  pthread_mutex_unlock(&state_mu);
  warn_unknown(unknown);
  return s;
}

void crpc_log_reload_env_for_test(void) {
  pthread_mutex_lock(&state_mu);
  int unknown = load_env_locked();
  pthread_mutex_unlock(&state_mu);
  warn_unknown(unknown);
}

void crpc_log_set_level(crpc_log_level level) {
  uint32_t l = (int)level < (int)CRPC_LOG_DEBUG ? CRPC_LOG_DEBUG
               : level > CRPC_LOG_NONE          ? CRPC_LOG_NONE
                                                : (uint32_t)level;
  (void)crpc_log_state(); /* the env is read first, so it cannot undo this */
  pthread_mutex_lock(&state_mu);
  uint32_t s = atomic_load_explicit(&crpc_log_state_, memory_order_relaxed);
  atomic_store_explicit(&crpc_log_state_, (s & ~UINT32_C(0xff)) | l,
                        memory_order_release);
  pthread_mutex_unlock(&state_mu);
}

crpc_log_level crpc_log_get_level(void) {
  return (crpc_log_level)(crpc_log_state() & 0xffu);
}

crpc_code crpc_log_set_trace(const char *subsystems) {
  int unknown;
  uint32_t trace = parse_trace(subsystems, &unknown);
  (void)crpc_log_state();
  pthread_mutex_lock(&state_mu);
  uint32_t s = atomic_load_explicit(&crpc_log_state_, memory_order_relaxed);
  atomic_store_explicit(&crpc_log_state_, pack(s & 0xffu, trace),
                        memory_order_release);
  pthread_mutex_unlock(&state_mu);
  return unknown > 0 ? CRPC_INVALID_ARGUMENT : CRPC_OK;
}

void crpc_log_set_sink(crpc_log_sink_fn fn, void *user_data) {
  pthread_rwlock_wrlock(&sink_lock);
  sink_fn = fn;
  sink_data = user_data;
  pthread_rwlock_unlock(&sink_lock);
}

/* One fprintf per line: stdio locks stderr for the call, so lines from
 * different threads do not interleave. */
static void default_sink(crpc_log_level level, const char *tag,
                         const char *message) {
  fprintf(stderr, "crpc %s %s: %s\n", crpc_log_level_name(level), tag,
          message);
}

/* Long enough for any runtime message; longer ones end in "...". */
#define LOG_LINE_MAX 1024

static void format(char *buf, const char *fmt, va_list ap) {
  int n = vsnprintf(buf, LOG_LINE_MAX, fmt, ap);
  if (n < 0) {
    snprintf(buf, LOG_LINE_MAX, "(unformattable log message \"%s\")", fmt);
  } else if (n >= LOG_LINE_MAX) {
    memcpy(buf + LOG_LINE_MAX - 4, "...", 4);
  }
}

/* Returns whether a custom sink took it. */
static bool deliver(crpc_log_level level, crpc_log_sub sub, const char *msg) {
  const char *tag = crpc_log_sub_name(sub);
  pthread_rwlock_rdlock(&sink_lock);
  crpc_log_sink_fn fn = sink_fn;
  if (fn != NULL) {
    fn(level, tag, msg, sink_data);
  } else {
    default_sink(level, tag, msg);
  }
  pthread_rwlock_unlock(&sink_lock);
  return fn != NULL;
}

void crpc_log_write(crpc_log_level level, crpc_log_sub sub, const char *fmt,
                    ...) {
  char buf[LOG_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  format(buf, fmt, ap);
  va_end(ap);
  deliver(level, sub, buf);
}

void crpc_log_fatal(crpc_log_sub sub, const char *fmt, ...) {
  char buf[LOG_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  format(buf, fmt, ap);
  va_end(ap);
  if (deliver(CRPC_LOG_ERROR, sub, buf)) {
    default_sink(CRPC_LOG_ERROR, crpc_log_sub_name(sub), buf);
  }
}
