/*
 * examples/common/stop.h - how the example servers know when to stop.
 *
 * A server runs until SIGINT or SIGTERM, or until its stdin reaches EOF when
 * stdin is a pipe. The pipe rule lets a parent (a test script, a supervisor)
 * tie the server's life to its own: if the parent dies, the pipe closes and
 * the server exits instead of lingering as an orphan. A terminal or
 * /dev/null on stdin (`server &` in a script) is ignored, so those servers
 * run until signalled.
 */
#ifndef EXAMPLES_COMMON_STOP_H
#define EXAMPLES_COMMON_STOP_H

/* Blocks SIGINT and SIGTERM in the calling thread. Call first thing in
 * main(), before any thread exists (crpc's threads inherit the mask), so the
 * signal is delivered to example_wait_for_stop and not to a random thread.
 * Returns 0, or -1 with a message on stderr. */
int example_block_stop_signals(void);

/* Waits for SIGINT, SIGTERM or EOF on a piped stdin. Returns a short
 * description of what happened ("SIGTERM", "stdin closed"), or NULL if the
 * wait itself failed (message on stderr). */
const char *example_wait_for_stop(void);

#endif /* EXAMPLES_COMMON_STOP_H */
