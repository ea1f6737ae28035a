/*
 * examples/common/stop.h - how the example servers know when to stop.
 *
 * A server runs until SIGINT or SIGTERM, or until its stdin reaches EOF when
 * stdin is a pipe. Signals are crpc's: crpc_server_serve_until (crpc/
 * server.h) waits for them and shuts down gracefully. The pipe rule is the
 * examples' own: it lets a parent (a test script, a supervisor) tie the
 * server's life to its own: if the parent dies, the pipe closes and the
 * server exits instead of lingering as an orphan. A terminal or /dev/null
 * on stdin (`server &` in a script) is ignored, so those servers run until
 * signalled. The pipe reaches crpc as a stop ctx; example_serve does it all:
 *
 *   crpc_ctx *stop = example_stdin_stop_start();
 *   int signo = 0;
 *   crpc_server_serve_until(server, stop, CRPC_SECOND, &signo);
 *   printf("%s: shut down\n", example_stop_reason(signo));
 *   example_stdin_stop_end(stop);
 */
#ifndef EXAMPLES_COMMON_STOP_H
#define EXAMPLES_COMMON_STOP_H

#include "crpc/ctx.h"
#include "crpc/server.h"

/* A ctx that is cancelled once stdin, if it is a pipe, reaches EOF (a
 * helper thread watches it); never otherwise. Owned by the caller: hand it
 * to example_stdin_stop_end, not to crpc_ctx_release. NULL if out of
 * memory or no thread could be started (message on stderr). */
crpc_ctx *example_stdin_stop_start(void);

/* Stops the watcher and releases the ctx. NULL: no-op. */
void example_stdin_stop_end(crpc_ctx *stop);

/* "SIGINT", "SIGTERM" or, for 0 (the stop ctx ended the wait),
 * "stdin closed": what crpc_server_serve_until's *signo says. Static. */
const char *example_stop_reason(int signo);

/* Serves a started server until SIGINT/SIGTERM or EOF on a piped stdin,
 * then shuts it down with grace_ns for calls still running, and prints
 * "<why>: shut down". Returns CRPC_OK, or why it could not wait (then the
 * server is still running; crpc_server_free stops it). The caller frees
 * the server. */
crpc_code example_serve(crpc_server *server, int64_t grace_ns);

#endif /* EXAMPLES_COMMON_STOP_H */
