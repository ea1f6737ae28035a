/*
 * rpc/h2/conn.h - one nghttp2 session pumped over one socket by a loop
 * (internal; shared by the server and the channel).
 *
 * The session does no I/O (nghttp2's mem_recv/mem_send); this moves bytes
 * between it and the non-blocking socket. Everything here runs on the loop
 * thread only. Output is pulled from the session into a bounded buffer and
 * written; when the socket is full, write interest is turned on and no more
 * is pulled, so the session (and its data providers) feel the backpressure.
 *
 * Lifetime: the owner embeds crpc_h2_conn, calls crpc_h2_conn_start with a
 * session it created, and is told exactly once through on_close (from the
 * loop thread, never from inside an nghttp2 callback) that the connection
 * is gone; on_close must drop all stream state and may free the session via
 * crpc_h2_conn_destroy. Receiving and flushing are never re-entered: nghttp2
 * callbacks must not call crpc_h2_conn_flush (use crpc_h2_conn_want_flush).
 *
 * Lingering close (if the owner allows it: `linger`): when the session ends
 * gracefully (it wants neither to read nor to write, all of it written),
 * conn sends TLS close_notify, half-closes (SHUT_WR) and reads and drops
 * input until the peer's EOF, an error or CRPC_H2_LINGER_NS, and only then
 * closes the fd and calls on_close, so bytes the peer sent late never meet
 * a closed socket, whose RST could destroy our last trailers and GOAWAY in
 * flight; meanwhile close_pending is set, and crpc_h2_conn_close ends the
 * linger at once. Errors, timeouts and explicit closes close at once.
 */
#ifndef CRPC_H2_CONN_H
#define CRPC_H2_CONN_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/h2/conn_cz.h"
#include "rpc/h2/outbuf.h"
#include "rpc/loop/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How long a gracefully ended connection waits at most for the peer's EOF
 * (see above): many round trips, so a live peer has read our last bytes
 * and closed by then; short, so a peer that never closes holds an fd only
 * briefly. After our GOAWAY an HTTP/2 peer sends at most a few control
 * frames, not request bodies, so this is below nginx's 5 s. */
#define CRPC_H2_LINGER_NS (1000 * 1000 * 1000LL)

typedef struct crpc_h2_conn crpc_h2_conn;
struct crpc_tls; /* rpc/tls/tls.h */

/* Called once when the connection ends; `why` is a short sentence. */
typedef void (*crpc_h2_conn_close_fn)(crpc_h2_conn *conn, const char *why);

struct crpc_h2_conn {
  crpc_loop *loop;
  int fd;
  nghttp2_session *session;
  crpc_loop_io io;
  crpc_loop_closure flush_closure; /* coalesced "session has output" */
  crpc_h2_conn_close_fn on_close;
  crpc_h2_outbuf out; /* pulled from the session, not yet written */
  bool in_io;         /* inside recv/flush: defer flushes and closes */
  bool reading;       /* inside the read loop (nghttp2 receive callbacks) */
  bool flush_soon;    /* on_io flushes before it returns: want_flush no-op */
  /* A flush asked for from posted closures runs at the end of their batch
   * (crpc_loop_post_closure_after_batch), not after the next epoll_wait.
   * Servers only: a client must read what is already waiting (a GOAWAY)
   * before it writes new requests, or a request to a server that has gone
   * fails on EPIPE instead of being retried elsewhere. */
  bool flush_in_batch;
  /* Called after a batch of input has been processed and before the
   * flush that follows it (NULL: none): the owner answers what the batch
   * asked for in the same loop iteration, so a response goes out with the
   * flush that follows the read, not one iteration later. */
  void (*after_read)(struct crpc_h2_conn *conn);
  bool closed;        /* on_close has been called */
  bool close_pending; /* close requested while in_io */
  struct crpc_tls *tls; /* NULL: plaintext; owned, freed at close */
  bool tls_handshaking; /* server: handshake runs before any HTTP/2 byte */
  bool tls_read_wants_write; /* the last TLS read needs a writable socket */
  crpc_loop_timer handshake_timer; /* server: ends a handshake that stalls */
  char close_why[96];
  /* Keepalive (crpc_h2_conn_keepalive); ka_time 0: off. */
  int64_t ka_time, ka_timeout;
  int64_t last_read_ns;  /* CLOCK_MONOTONIC of the last bytes received */
  /* The kernel's receive timestamp (CLOCK_REALTIME, SO_TIMESTAMPNS;
   * plaintext sockets with rx_timestamps set) of the last read; zero when
   * none. Kept raw: only crpc_h2_conn_arrival_ns converts it, for the few
   * calls that carry a deadline. */
  struct timespec last_arrival_real;
  bool rx_timestamps;
  int64_t ka_ping_sent;  /* when the outstanding PING went out; 0: none */
  bool (*ka_active)(crpc_h2_conn *conn);
  crpc_loop_timer ka_timer;
  /* Lingering close (see the top). linger: allowed; start sets it for
   * server sessions; an owner that ends every connection not yet closed
   * before its loop goes (the channel does) may set it after start. */
  bool linger;
  bool session_done; /* the session ended gracefully (flush found it done) */
  bool lingering;    /* half-closed, waiting for EOF; on_close still due */
  crpc_loop_timer linger_timer;
  crpc_h2_conn_cz cz; /* channelz's counts (conn_cz.h) */
};

/* Turns keepalive on for a started connection (no-op if time_ns <= 0 or it
 * has already closed). Loop thread. Once time_ns has passed without a byte
 * received, a PING goes out; any bytes received within timeout_ns (its ACK
 * or anything else: read activity proves the peer alive, as grpc-java
 * counts it) rearm the idle clock, else the connection closes with
 * "keepalive timed out". active (may be NULL: always) says whether pings
 * are wanted now (the client: only while calls are open). One loop timer
 * per connection; no per-read timer work (the read time is stamped). */
void crpc_h2_conn_keepalive(crpc_h2_conn *conn, int64_t time_ns,
                            int64_t timeout_ns,
                            bool (*active)(crpc_h2_conn *conn));

/* Binds conn to (loop, fd, session) and starts reading. Loop thread. The
 * session's user_data is the owner's; conn never touches it. */
void crpc_h2_conn_start(crpc_h2_conn *conn, crpc_loop *loop, int fd,
                        nghttp2_session *session,
                        crpc_h2_conn_close_fn on_close);

/* As crpc_h2_conn_start, but every byte goes through TLS session tls,
 * which conn owns from now on (freed when the connection ends).
 * handshake_deadline_ns 0: the handshake is done (the client side). Else
 * (the server side) the handshake is driven on the loop first and the
 * HTTP/2 session starts once it has completed; a failed handshake, or one
 * not done by that CLOCK_MONOTONIC time (CRPC_NO_DEADLINE: never), ends the
 * connection with the reason. */
void crpc_h2_conn_start_tls(crpc_h2_conn *conn, crpc_loop *loop, int fd,
                            nghttp2_session *session, struct crpc_tls *tls,
                            int64_t handshake_deadline_ns,
                            crpc_h2_conn_close_fn on_close);

/* Writes what the session has to send, as far as the socket takes it.
 * Loop thread, outside nghttp2 callbacks. May end the connection (on_close
 * runs before it returns). */
void crpc_h2_conn_flush(crpc_h2_conn *conn);

/* When the bytes of the last read reached this host, on crpc_now_ns's
 * clock: the kernel's receive timestamp where the socket gives one, else
 * last_read_ns. A server's deadline counts from here, so the loop's own
 * wake-up and queueing do not push a call's deadline later. Loop thread;
 * reads the clocks (call it where the time matters: calls that carry a
 * timeout, a reset's arrival). */
int64_t crpc_h2_conn_arrival_ns(const crpc_h2_conn *conn);

/* Schedules a flush for later in this loop iteration (coalesced). Loop
 * thread, also from nghttp2 callbacks. */
void crpc_h2_conn_want_flush(crpc_h2_conn *conn);

/* Ends the connection: stops I/O, closes the fd, calls on_close (now, or
 * right after the current recv/flush if inside one); a lingering one at
 * once. Idempotent. */
void crpc_h2_conn_close(crpc_h2_conn *conn, const char *why);

/* True if DATA payloads may go out by reference (the owner's data
 * provider sets NGHTTP2_DATA_FLAG_NO_COPY and its send_data_callback calls
 * crpc_h2_conn_send_data): plaintext only, as TLS encrypts from one
 * buffer. Loop thread. */
bool crpc_h2_conn_zero_copy(const crpc_h2_conn *conn);

/* The body of an nghttp2 send_data_callback: queues the 9-byte frame
 * header and the next `length` bytes of q (taken by reference). The caller
 * holds whatever lock guards q. Returns 0 or NGHTTP2_ERR_CALLBACK_FAILURE
 * (out of memory: the connection then ends). */
int crpc_h2_conn_send_data(crpc_h2_conn *conn, const uint8_t *framehd,
                           crpc_h2_outq *q, size_t length);

/* An nghttp2 data_source_read_length_callback for every session: DATA
 * frames as large as the peer's SETTINGS_MAX_FRAME_SIZE and the windows
 * allow, instead of nghttp2's 16 KiB default. A 64 KiB message is then one
 * frame when the peer accepts that: measured with the gRPC C++ client,
 * which spends its CPU per frame, 16 KiB frames cut 64 KiB streaming to a
 * tenth. */
ssize_t crpc_h2_data_length(nghttp2_session *session, uint8_t frame_type,
                            int32_t stream_id, int32_t session_window,
                            int32_t stream_window, uint32_t remote_max_frame,
                            void *user_data);

/* Frees the session and buffers after on_close. Loop thread. Idempotent. */
void crpc_h2_conn_destroy(crpc_h2_conn *conn);

/* The allocator every nghttp2 session of crpc uses (rpc/mem/mem.h): its
 * streams, frames and header buffers come from the loop thread's cache.
 * Static; any thread. */
nghttp2_mem *crpc_h2_mem(void);

/* CRPC_TRACE=h2: logs a GOAWAY or RST_STREAM frame `f` that was sent
 * (sent true) or received on conn (other frame types: nothing). Callers
 * test crpc_log_trace_on(CRPC_LOG_SUB_H2) first, so frames cost nothing
 * while the trace is off. Loop thread. */
void crpc_h2_trace_frame(const crpc_h2_conn *conn, const nghttp2_frame *f,
                         bool sent);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_H2_CONN_H */
