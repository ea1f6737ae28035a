/*
 * channel_channelz.c - what a channel tells channelz (rpc/channelz): the
 * channel (its target, state and calls), one subchannel per address slot
 * (one per address with round robin, one for all with pick first; its
 * state is the slot's), and each connection as the slot's socket, with
 * its streams, call attempts and messages.
 *
 * A socket's counters are written by its connection's loop thread only
 * (one writer: crpc_cz_inc, no lock); the channel's call counters by
 * every loop the channel has (crpc_cz_add_shared: an atomic add, once per
 * call). A call counts as started when the
 * live-call registry lists it (its first kick, right after
 * crpc_call_start) and as succeeded or failed when the registry lets it
 * go: OK means the server's trailers said grpc-status 0 and nothing ended
 * the call first. A blocking crpc_call_start that fails before a
 * connection is up never reaches the loop and is not counted.
 *
 * A client socket's stream succeeds when the server's END_STREAM came
 * (nghttp2's remote half is closed when the stream ends); a call attempt
 * on it succeeds as a call does. Messages received are added as each
 * stream ends, and those of streams still open when GetSocket asks.
 */
#include <string.h>
#include <sys/socket.h>

#include "crpc/admin.h"
#include "rpc/channel/channel_internal.h"
#include "rpc/channelz/channelz.h"

/* ---- the channel and its subchannels ------------------------------------- */

/* crpc_channel_state as channelz's enum. */
static int cz_channel_state(crpc_channel_state st) {
  switch (st) {
    case CRPC_CHANNEL_IDLE: return CRPC_CZ_STATE_IDLE;
    case CRPC_CHANNEL_CONNECTING: return CRPC_CZ_STATE_CONNECTING;
    case CRPC_CHANNEL_READY: return CRPC_CZ_STATE_READY;
    case CRPC_CHANNEL_TRANSIENT_FAILURE:
      return CRPC_CZ_STATE_TRANSIENT_FAILURE;
  }
  return CRPC_CZ_STATE_UNKNOWN;
}

/* Under the channel entity's owner_mu (the channel is alive); takes the
 * channel's mutex. */
static int cz_state(void *owner, const crpc_cz_entity *e) {
  crpc_channel *ch = owner;
  if (e->kind == CRPC_CZ_CHANNEL) {
    return cz_channel_state(crpc_channel_get_state(ch));
  }
  int st = CRPC_CZ_STATE_SHUTDOWN; /* its slot is gone (re-resolved) */
  pthread_mutex_lock(&ch->mu);
  for (size_t i = 0; i < ch->n_slots; i++) {
    const cslot *s = &ch->slots[i];
    if (s->cz != e) continue;
    st = s->conn != NULL && !atomic_load(&s->conn->dead) ? CRPC_CZ_STATE_READY
         : s->connecting ? CRPC_CZ_STATE_CONNECTING
         : s->failed     ? CRPC_CZ_STATE_TRANSIENT_FAILURE
                         : CRPC_CZ_STATE_IDLE;
    break;
  }
  pthread_mutex_unlock(&ch->mu);
  return st;
}

void channel_cz_new(crpc_channel *ch, const char *target) {
  ch->cz = crpc_cz_register(CRPC_CZ_CHANNEL, NULL, target);
  crpc_cz_set_channel(ch->cz, ch, cz_state);
}

void channel_cz_free(crpc_channel *ch) {
  crpc_cz_channel_detach(ch->cz);
  crpc_cz_unregister(ch->cz);
  ch->cz = NULL;
}

void channel_cz_subchannel(crpc_channel *ch, cslot *s) {
  if (ch->cz == NULL) return;
  char addr[CRPC_H2_PEER_MAX];
  /* Pick first: one subchannel for every address of the target. */
  const char *name = ch->target.authority;
  if (s->addrs != NULL && s->n_addrs == 1) {
    crpc_h2_format_peer((const struct sockaddr *)&s->addrs[0].ss,
                        s->addrs[0].len, addr);
    name = addr;
  }
  s->cz = crpc_cz_register(CRPC_CZ_SUBCHANNEL, ch->cz, name);
}

void channel_cz_slot_conn(cslot *s, cconn *conn) {
  if (s->cz == NULL) return;
  crpc_cz_retain(s->cz);
  conn->cz_sub = s->cz;
}

int64_t crpc_channel_channelz_id(const crpc_channel *channel) {
  return channel->cz != NULL ? channel->cz->id : 0;
}

/* ---- connections (loop thread) ------------------------------------------- */

static void fill(void *arg, crpc_cz_socket_info *info) {
  cconn *conn = arg;
  crpc_h2_conn_cz_fill(&conn->h2, info);
  /* Messages of streams still open (in.total: written on this thread). */
  for (const ccall *call = conn->calls; call != NULL; call = call->cnext) {
    info->data.messages_received += (int64_t)call->in.total;
  }
}

static crpc_h2_msgscan *stream_scan(crpc_h2_conn *h2, int32_t stream_id) {
  ccall *call = nghttp2_session_get_stream_user_data(h2->session, stream_id);
  return call != NULL ? &call->cz_scan : NULL;
}

void cconn_cz_open(cconn *conn) {
  crpc_cz_entity *sub = conn->cz_sub;
  conn->cz_sub = NULL;
  if (sub != NULL && !conn->h2.closed) {
    char name[CRPC_H2_PEER_MAX] = "";
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(conn->h2.fd, (struct sockaddr *)&ss, &len) == 0) {
      crpc_h2_format_peer((struct sockaddr *)&ss, len, name);
    }
    conn->cz = crpc_cz_register_socket(CRPC_CZ_CLIENT_SOCKET, sub, name,
                                       conn->home->loop, fill, conn, NULL, 0);
    conn->h2.cz.stream = stream_scan;
  }
  crpc_cz_release(sub); /* the socket holds its own */
}

void cconn_cz_close(cconn *conn) {
  crpc_cz_unregister(conn->cz);
  conn->cz = NULL;
}

void cconn_cz_drop(cconn *conn) {
  crpc_cz_release(conn->cz_sub);
  conn->cz_sub = NULL;
}

void cconn_cz_stream_started(cconn *conn, ccall *call) {
  memset(&call->cz_scan, 0, sizeof(call->cz_scan)); /* a new stream */
  crpc_cz_entity *cz = conn->cz;
  if (cz == NULL) return;
  crpc_cz_inc(&cz->c.streams_started);
  crpc_cz_inc(&cz->c.calls_started);
  /* When the call started: a few microseconds before its stream, and no
   * clock read. */
  crpc_cz_set(&cz->c.last_local_stream_ns, call->live_since);
  crpc_cz_set(&cz->c.last_call_started_ns, call->live_since);
}

/* The server's trailers said OK (grpc_status: loop only, kept until the
 * call is freed). */
static bool status_ok(const ccall *call) {
  return call->grpc_status != NULL && strcmp(call->grpc_status, "0") == 0;
}

void cconn_cz_stream_ended(cconn *conn, ccall *call) {
  crpc_cz_entity *cz = conn->cz;
  if (cz == NULL) return;
  bool eos = conn->h2.session != NULL &&
             nghttp2_session_get_stream_remote_close(conn->h2.session,
                                                     call->stream_id) == 1;
  crpc_cz_inc(eos ? &cz->c.streams_succeeded : &cz->c.streams_failed);
  crpc_cz_inc(status_ok(call) ? &cz->c.calls_succeeded : &cz->c.calls_failed);
  if (call->in.total > 0) {
    crpc_cz_add(&cz->c.messages_received, (int64_t)call->in.total);
    crpc_cz_set(&cz->c.last_message_received_ns, conn->h2.last_read_ns);
  }
}

/* ---- calls (loop thread, channel_calls.c) --------------------------------- */

void ccall_cz_started(ccall *call) {
  crpc_cz_entity *cz = call->ch->cz;
  if (cz == NULL) return;
  crpc_cz_add_shared(&cz->c.calls_started, 1);
  crpc_cz_set(&cz->c.last_call_started_ns, call->live_since);
}

void ccall_cz_ended(ccall *call) {
  crpc_cz_entity *cz = call->ch->cz;
  if (cz == NULL) return;
  crpc_cz_add_shared(
      status_ok(call) ? &cz->c.calls_succeeded : &cz->c.calls_failed, 1);
}
