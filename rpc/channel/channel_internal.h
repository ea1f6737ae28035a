/*
 * rpc/channel/channel_internal.h - the client channel's objects (internal).
 *
 * Threads: user threads make calls; one loop thread owns every nghttp2
 * session (fields marked L). Each call's mutex guards what both sides see
 * (M). A user thread never holds a call mutex while cancelling a ctx
 * (crpc_ctx_wait_cond's waker takes it) nor while taking the channel mutex.
 *
 * Lifetimes (all refcounted, last unref frees on whichever thread):
 *   cconn  refs: the channel while it is current, each call on it, the loop
 *          while its socket is attached (dropped by a closure after close,
 *          so queued flushes still find it). The session is deleted on the
 *          loop when the connection closes.
 *   ccall  refs: the user (until crpc_call_free), the open stream, the ctx
 *          on_cancel registration (handed to the kick when it fires), each
 *          queued kick. crpc_call_free cancels the call's own ctx, so the
 *          registration always fires.
 */
#ifndef CRPC_CHANNEL_CHANNEL_INTERNAL_H
#define CRPC_CHANNEL_CHANNEL_INTERNAL_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "crpc/channel.h"
#include "rpc/h2/addr.h"
#include "rpc/h2/conn.h"
#include "rpc/h2/stream.h"
#include "rpc/tls/tls.h"
#include "rpc/loop/loop.h"

#define CRPC_VERSION_STRING "crpc/0.1"
/* Bytes a call may queue for sending before crpc_call_send blocks. */
#define CHANNEL_SEND_BUFFER (64 * 1024)

typedef struct cconn cconn;
typedef struct crpc_call ccall;

struct cconn {
  crpc_h2_conn h2; /* L once attached */
  crpc_channel *ch;
  atomic_int refs;
  atomic_bool dead;         /* closed or GOAWAY: no new calls */
  bool attached;            /* L: socket handed to the loop */
  int fd;                   /* until attached */
  crpc_tls *tls;            /* until attached; NULL: plaintext */
  nghttp2_session *session; /* created by the connecting thread */
  ccall *calls;             /* L: calls with an open stream */
  /* L: a GOAWAY with an error ("ENHANCE_YOUR_CALM (too_many_pings)"),
   * reported to the calls when the connection then closes; "" none. */
  char goaway_why[80];
};

struct crpc_channel {
  crpc_h2_addr addr;
  size_t max_recv, max_send;
  char *user_agent, *authority;
  crpc_channel_credentials *tls; /* NULL: plaintext */
  crpc_loop *loop;

  pthread_mutex_t mu;
  pthread_cond_t cond; /* connecting done; live_calls changed */
  bool loop_started, connecting;
  cconn *conn;                      /* current connection, maybe dead */
  size_t live_calls;                /* ccall structs not yet freed */
  char last_error[CRPC_H2_ERR_MAX]; /* why the last connect failed */
  /* Interceptor chain (rpc/intercept); NULL: none. Built before use. */
  struct icpt_client_chain *icpt;
  /* Encodings the server's last grpc-accept-encoding left out (none
   * until it has sent one): calls asking for them send uncompressed. */
  atomic_uint refused_encodings;
  /* Keepalive (options); ka_time doubles on GOAWAY too_many_pings. */
  _Atomic int64_t ka_time;
  int64_t ka_timeout;
  bool ka_without_calls;
};

struct crpc_call {
  atomic_int refs;
  crpc_channel *ch;
  cconn *conn;
  crpc_loop_closure kick;
  crpc_ctx *ctx; /* child of the user's ctx, owned by the call */
  crpc_on_cancel on_cancel;
  char *path;
  crpc_wire_headers req; /* built by start, submitted by the loop */
  crpc_wire_encoding send_encoding; /* requests' grpc-encoding; fixed */

  /* L */
  int32_t stream_id;
  bool submitted, stream_open, rst_sent, deferred;
  ccall *cnext, *cprev;
  int http_status;
  char *grpc_status, *grpc_message; /* raw, until the status is settled */
  crpc_metadata *hdr_md;            /* being received */

  /* M */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  crpc_h2_inbound in;
  crpc_h2_outq out;
  bool send_closed;
  bool got_headers;
  crpc_metadata *resp_md; /* published when got_headers */
  bool ended;             /* status settled */
  bool ended_by_ctx;      /* ...because the ctx ended: drop buffered input */
  crpc_code code;
  char *message;
  crpc_metadata *trailers;
};

/* ---- channel.c ---- */

/* The channel's usable connection (connecting first, bounded by ctx), with
 * a reference for the caller. NULL with *code set if none. User thread. */
cconn *channel_get_conn(crpc_channel *ch, const crpc_ctx *ctx, crpc_code *code);

void cconn_unref(cconn *conn);

/* Hands the connection's socket to the loop (idempotent). Loop thread. */
void cconn_attach(cconn *conn);

/* ---- call.c ---- */

/* Settles the call's status unless it already is and wakes the user.
 * Loop thread (msg copied). */
void ccall_settle(ccall *call, crpc_code code, const char *msg);

/* The stream closed (nghttp2 or connection loss); drops the stream's
 * reference. Loop thread. */
void ccall_on_close(ccall *call, uint32_t error_code, const char *conn_lost);

/* nghttp2 client callbacks (call_recv.c). */
nghttp2_session_callbacks *ccall_callbacks(void);

void ccall_unref(ccall *call);
/* Posts the call's kick closure holding a reference. Any thread. */
void ccall_kick(ccall *call);
/* Binds the kick closure to the loop-side handler. Before any kick. */
void ccall_init_kick(ccall *call);

void cconn_link_call(cconn *conn, ccall *call);

/* ---- call_icpt.c: the public call functions run the interceptor chain
 * (if any) around these cores (call.c). ---- */
crpc_code ccall_start_core(crpc_channel *ch, const crpc_ctx *ctx,
                           const char *method, const crpc_metadata *metadata,
                           const char *encoding, int64_t deadline,
                           crpc_call **out);
crpc_code ccall_send_core(ccall *call, const void *data, size_t len,
                          unsigned flags);
crpc_code ccall_recv_core(ccall *call, crpc_message *msg);
crpc_code ccall_finish_core(ccall *call, crpc_status *status);
void cconn_unlink_call(cconn *conn, ccall *call);

#endif /* CRPC_CHANNEL_CHANNEL_INTERNAL_H */
