/*
 * server_channelz.c - what a server tells channelz (rpc/channelz): the
 * server, its listen sockets, and per connection its streams, calls and
 * messages (server_conn.c calls the sconn_cz_* hooks).
 *
 * Every count is a field of the connection's socket entity, written only
 * by the connection's loop thread (crpc_cz_inc: no lock, no atomic
 * read-modify-write); the server's call totals are the sum of its open
 * connections' and those of connections gone (folded in by the registry
 * when a socket unregisters). Nothing here runs per message except the
 * received-message count, a subtraction on the loop.
 *
 * Which call is OK: the trailers this server sent said grpc-status 0 (the
 * frame with END_STREAM, on_frame_send). Every other call that started is
 * failed once its stream ends: an error status, a reset, a connection
 * lost.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "crpc/admin.h"
#include "rpc/channelz/channelz.h"
#include "rpc/server/server_internal.h"

/* ---- the server and its listeners ----------------------------------------- */

void server_cz_new(crpc_server *s) {
  s->cz = crpc_cz_register(CRPC_CZ_SERVER, NULL, "");
}

void server_cz_listener(crpc_server *s, server_listener *l) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (s->cz == NULL || getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0) {
    return;
  }
  char name[CRPC_H2_PEER_MAX];
  crpc_h2_format_peer((struct sockaddr *)&ss, len, name);
  if (l->unix_path[0] != '\0' && strcmp(name, "unix:") == 0) {
    snprintf(name, sizeof(name), "unix:%s", l->unix_path);
  }
  l->cz = crpc_cz_register_socket(CRPC_CZ_LISTEN_SOCKET, s->cz, name, NULL,
                                  NULL, NULL, (struct sockaddr *)&ss, len);
}

void server_cz_listener_closed(server_listener *l) {
  crpc_cz_unregister(l->cz);
  l->cz = NULL;
}

void server_cz_free(crpc_server *s) {
  for (size_t i = 0; i < s->n_listeners; i++) {
    server_cz_listener_closed(&s->listeners[i]);
  }
  crpc_cz_unregister(s->cz);
  s->cz = NULL;
}

int64_t crpc_server_channelz_id(const crpc_server *server) {
  return server->cz != NULL ? server->cz->id : 0;
}

/* ---- connections (loop thread) ------------------------------------------- */

/* GetSocket on the connection's loop. */
static void fill(void *arg, crpc_cz_socket_info *info) {
  crpc_h2_conn_cz_fill(&((sconn *)arg)->h2, info);
}

/* Where a stream's copied DATA is in its messages (conn_cz.h). */
static crpc_h2_msgscan *stream_scan(crpc_h2_conn *h2, int32_t stream_id) {
  scall *call = nghttp2_session_get_stream_user_data(h2->session, stream_id);
  return call != NULL ? &call->cz_scan : NULL;
}

void sconn_cz_open(sconn *conn) {
  if (conn->h2.closed || conn->server->cz == NULL) return;
  conn->cz = crpc_cz_register_socket(CRPC_CZ_SERVER_SOCKET, conn->server->cz,
                                     conn->peer->addr, conn->sl->loop, fill,
                                     conn, NULL, 0);
  /* Plaintext: every DATA payload goes by reference, counted by chunk
   * (conn_cz.h); nghttp2's own output then has no message to find. */
  if (crpc_h2_conn_zero_copy(&conn->h2)) {
    conn->h2.cz.scan_off = true;
  } else {
    conn->h2.cz.stream = stream_scan;
  }
}

void sconn_cz_close(sconn *conn) {
  crpc_cz_unregister(conn->cz);
  conn->cz = NULL;
}

void sconn_cz_stream_started(sconn *conn) {
  crpc_cz_entity *cz = conn->cz;
  if (cz == NULL) return;
  /* The read that brought the HEADERS stamped the time already. */
  crpc_cz_inc(&cz->c.streams_started);
  crpc_cz_set(&cz->c.last_remote_stream_ns, conn->h2.last_read_ns);
  crpc_cz_inc(&cz->c.calls_started);
  crpc_cz_set(&cz->c.last_call_started_ns, conn->h2.last_read_ns);
}

void sconn_cz_end_sent(scall *call, const nghttp2_frame *f) {
  if (f->hd.type != NGHTTP2_HEADERS) return; /* DATA: no trailers (yet) */
  for (size_t i = 0; i < f->headers.nvlen; i++) {
    const nghttp2_nv *nv = &f->headers.nva[i];
    if (nv->namelen == 11 && memcmp(nv->name, "grpc-status", 11) == 0) {
      call->cz_ok = nv->valuelen == 1 && nv->value[0] == '0';
      return;
    }
  }
}

void sconn_cz_stream_ended(sconn *conn, scall *call) {
  crpc_cz_entity *cz = conn->cz;
  if (cz == NULL) return;
  /* A server's stream succeeds once it has sent END_STREAM. */
  crpc_cz_inc(call->end_stream_sent ? &cz->c.streams_succeeded
                                    : &cz->c.streams_failed);
  crpc_cz_inc(call->cz_ok ? &cz->c.calls_succeeded : &cz->c.calls_failed);
}

void sconn_cz_received(sconn *conn, scall *call, size_t seen) {
  crpc_cz_entity *cz = conn->cz;
  /* in.total: written on this thread only (the loop decodes). */
  if (cz == NULL || call->in.total == seen) return;
  crpc_cz_add(&cz->c.messages_received, (int64_t)(call->in.total - seen));
  crpc_cz_set(&cz->c.last_message_received_ns, conn->h2.last_read_ns);
}
