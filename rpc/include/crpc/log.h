/*
 * crpc/log.h - where the runtime's own messages go.
 *
 * crpc itself says little: by default only warnings and errors (a listen
 * that failed, an accept that ran out of fds, misuse right before an
 * abort), one line each on stderr:
 *
 *   crpc ERROR server: bind/listen 127.0.0.1:50051: Address already in use
 *
 * Everything a failure says here also reaches the caller as a value (a
 * status message or an error out-parameter, see crpc_server_listen_err,
 * crpc_channel_new_err, crpc_call_start_status); the log is for operators.
 *
 * Environment, read once, when crpc first logs or checks a level (the
 * ecosystem's GRPC_VERBOSITY / GRPC_TRACE, same spelling of values):
 *   CRPC_VERBOSITY=debug|info|warning|error|none
 *       the least severe level delivered (default: warning).
 *   CRPC_TRACE=h2,channel | all
 *       debug tracing of those subsystems, delivered whatever the level:
 *       "h2" = connections opened and closed, with the peer and the
 *       reason, on both sides; GOAWAY and RST_STREAM frames a server sends
 *       and receives; "channel" = a channel's connection closing, with the
 *       GOAWAY that preceded it. Any tag below is accepted; unknown names
 *       are ignored (one warning).
 * crpc_log_set_level / crpc_log_set_trace called later override them.
 *
 * Each message carries a subsystem tag: "server", "channel", "call", "h2",
 * "tls", "ctx", "interceptor".
 *
 * Threads: every function here may be called from any thread at any time.
 * Messages come from loop threads, handler threads, the ctx timer thread
 * and user threads, concurrently. A message whose level is off costs one
 * atomic load and is never formatted.
 */
#ifndef CRPC_LOG_H
#define CRPC_LOG_H

#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Severity, least to most severe. */
typedef enum crpc_log_level {
  CRPC_LOG_DEBUG = 0,   /* traces (CRPC_TRACE) and step-by-step detail */
  CRPC_LOG_INFO = 1,    /* notable normal events */
  CRPC_LOG_WARNING = 2, /* something degraded; crpc carries on */
  CRPC_LOG_ERROR = 3,   /* an operation failed, or misuse before an abort */
  CRPC_LOG_NONE = 4,    /* as a threshold only: deliver nothing */
} crpc_log_level;

/* Receives one message: `tag` is the subsystem ("server", "h2", ...; static
 * storage), `message` the formatted text without a trailing newline (valid
 * only during the call; copy it to keep it). Called on whichever thread
 * logs, possibly on several threads at once, so it must be thread-safe; it
 * should be quick, since a loop thread may be waiting on it. It may log
 * through crpc (that nests) but must not call crpc_log_set_sink (which
 * waits for running sinks: it would wait for itself). */
typedef void (*crpc_log_sink_fn)(crpc_log_level level, const char *tag,
                                 const char *message, void *user_data);

/* Sends every later message to fn(level, tag, message, user_data); fn NULL
 * restores the default (one line on stderr: "crpc LEVEL tag: message").
 * Returns once no thread is still inside the previous sink, so its
 * user_data may be freed right after. The level threshold is not changed.
 * Messages logged right before crpc aborts (misuse such as a NULL ctx) go
 * to this sink and, if it is not the default, to stderr as well, since the
 * process ends before a buffering sink could write them. */
void crpc_log_set_sink(crpc_log_sink_fn fn, void *user_data);

/* Delivers messages of `level` and more severe (CRPC_LOG_NONE: none;
 * traces enabled by CRPC_TRACE or crpc_log_set_trace still are). Overrides
 * CRPC_VERBOSITY. A value outside the enum is clamped into it. */
void crpc_log_set_level(crpc_log_level level);

/* The threshold in force (CRPC_VERBOSITY or crpc_log_set_level). */
crpc_log_level crpc_log_get_level(void);

/* Replaces the traced subsystems with a comma-separated list, spelled as
 * CRPC_TRACE ("h2,server"; "all"; "" or NULL: none). Overrides CRPC_TRACE.
 * CRPC_OK, or CRPC_INVALID_ARGUMENT if a name is unknown (the known ones
 * are still enabled). */
crpc_code crpc_log_set_trace(const char *subsystems);

/* "DEBUG", "INFO", "WARNING", "ERROR", "NONE"; "?" otherwise. Static. */
const char *crpc_log_level_name(crpc_log_level level);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_LOG_H */
