/*
 * rpc/channelz/channelz.h - the process-wide channelz registry (internal):
 * every server, listen socket, server connection, channel, subchannel and
 * client connection, with a unique id and its counters, for the
 * grpc.channelz.v1.Channelz service (services/channelz) to read.
 *
 * Ids: one process-wide sequence (1, 2, ...) shared by every kind of
 * entity, given at registration and never reused. Each kind's list is
 * therefore sorted by id, which is what channelz's paging wants.
 *
 * Locking. One registry mutex guards the lists, each entity's links and
 * the totals folded into a parent when a child socket goes. It is taken
 * to register and unregister (once per server, channel, subchannel and
 * connection, never per call) and by queries, which are rare. Counting
 * takes no lock: a socket's counters have one writer, the loop thread that
 * owns the connection, which adds with a relaxed load and store of its own
 * (crpc_cz_inc: a plain increment, no lock prefix); a channel's call
 * counters, written by each of its loops once per call, take an atomic
 * add (crpc_cz_add_shared); readers on other threads use relaxed loads. A reader may see one
 * counter a little behind another; each is exact on its own.
 *
 * What needs the owner's thread (a socket's flow-control windows, its
 * addresses, its TLS session) is read by posting to the socket's loop
 * (crpc_cz_get_socket_async): nghttp2 sessions and TLS sessions are loop
 * only. Channel and subchannel states are read through the channel's own
 * function under the channel entity's owner mutex, which
 * crpc_cz_channel_detach takes before the channel goes.
 *
 * Lock order: a channel's mutex (ch->mu) -> registry mutex (subchannels
 * are registered with ch->mu held); a channel entity's owner_mu -> ch->mu
 * (queries). Queries never hold the registry mutex while taking either.
 *
 * Lifetime: entities are refcounted. crpc_cz_register returns one
 * reference, the owner's; the registry's list holds none of its own
 * (unregistering unlinks it and drops the owner's). Queries hold a
 * reference while they read an entity outside the mutex. A child holds a
 * reference to its parent.
 */
#ifndef CRPC_CHANNELZ_CHANNELZ_H
#define CRPC_CHANNELZ_CHANNELZ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "crpc/status.h"
#include "rpc/loop/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum crpc_cz_kind {
  CRPC_CZ_CHANNEL = 1,       /* a crpc_channel (a top channel) */
  CRPC_CZ_SUBCHANNEL = 2,    /* one of its address slots */
  CRPC_CZ_SERVER = 3,        /* a crpc_server */
  CRPC_CZ_LISTEN_SOCKET = 4, /* one of its listeners */
  CRPC_CZ_SERVER_SOCKET = 5, /* an accepted connection */
  CRPC_CZ_CLIENT_SOCKET = 6  /* a subchannel's connection */
} crpc_cz_kind;

/* channelz's ChannelConnectivityState values. */
enum {
  CRPC_CZ_STATE_UNKNOWN = 0,
  CRPC_CZ_STATE_IDLE = 1,
  CRPC_CZ_STATE_CONNECTING = 2,
  CRPC_CZ_STATE_READY = 3,
  CRPC_CZ_STATE_TRANSIENT_FAILURE = 4,
  CRPC_CZ_STATE_SHUTDOWN = 5
};

/* An entity's numbers. Times are crpc_now_ns (CLOCK_MONOTONIC), 0 for
 * never. Calls: on a server socket, the calls its streams carried (OK:
 * the trailers said grpc-status 0); on a client socket, the call attempts
 * it carried; on a channel, the channel's calls. Streams and messages:
 * sockets only. As an entity's live counters (crpc_cz_entity's c) every
 * field has one writer or is added to atomically (see the top) and is only
 * touched through the
 * crpc_cz_* accessors below (relaxed atomics: GCC builtins, so the header
 * also compiles as C++); as a reading or totals, a plain struct. */
typedef struct crpc_cz_data {
  int64_t calls_started, calls_succeeded, calls_failed;
  int64_t last_call_started_ns;
  int64_t streams_started, streams_succeeded, streams_failed;
  int64_t messages_sent, messages_received, keepalives_sent;
  int64_t last_local_stream_ns, last_remote_stream_ns;
  int64_t last_message_sent_ns, last_message_received_ns;
} crpc_cz_data;

/* ---- counting (the single writer's thread) ------------------------------ */

/* Adds n: a load and a store of the single writer's, no read-modify-write
 * instruction (on x86 a plain add to memory). */
static inline void crpc_cz_add(int64_t *c, int64_t n) {
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
                   __ATOMIC_RELAXED);
}
static inline void crpc_cz_inc(int64_t *c) { crpc_cz_add(c, 1); }
/* Adds n where several threads write (a channel's call counts, from each
 * of its loops): an atomic read-modify-write. */
static inline void crpc_cz_add_shared(int64_t *c, int64_t n) {
  __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}
static inline void crpc_cz_set(int64_t *c, int64_t v) {
  __atomic_store_n(c, v, __ATOMIC_RELAXED);
}
/* Any thread. */
static inline int64_t crpc_cz_get(const int64_t *c) {
  return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* ---- what a socket's owner reports (on its loop) ------------------------ */

/* A socket as GetSocket shows it. Strings and certificates are owned by
 * the struct (crpc_cz_socket_info_free). */
typedef struct crpc_cz_socket_info {
  int64_t id;
  crpc_cz_kind kind;
  char *name;
  crpc_cz_data data;
  /* Connection-level flow-control windows in channelz's sense: local is
   * what the peer lets us send (nghttp2's remote window), remote what we
   * let the peer send (nghttp2's local window). has_windows false: not
   * known (a listener; a closed session). */
  bool has_windows;
  int64_t local_window, remote_window;
  struct sockaddr_storage local, remote; /* ss_family 0: unknown */
  socklen_t local_len, remote_len;
  /* TLS: cipher is the standard (RFC) suite name; DER certificates, the
   * local one and the peer's (NULL, 0: none). */
  bool tls;
  char *cipher;
  unsigned char *local_cert, *remote_cert;
  size_t local_cert_len, remote_cert_len;
} crpc_cz_socket_info;

void crpc_cz_socket_info_free(crpc_cz_socket_info *info);

/* Fills what only the owner's loop can see (windows, addresses, TLS; and
 * may add to info->data, e.g. messages of streams still open). Runs on
 * the socket's loop thread, with the socket registered. */
typedef void (*crpc_cz_fill_fn)(void *arg, crpc_cz_socket_info *info);

struct crpc_cz_entity;

/* A channel's or subchannel's connectivity state (CRPC_CZ_STATE_*), from
 * the channel: owner is the channel, e the entity asked about. Called
 * under the channel entity's owner_mu. */
typedef int (*crpc_cz_state_fn)(void *owner, const struct crpc_cz_entity *e);

typedef struct crpc_cz_entity {
  int refs; /* GCC atomic builtins */
  int64_t id;
  crpc_cz_kind kind;
  struct crpc_cz_entity *parent; /* a reference; NULL for roots */
  char *name;                    /* target, address; immutable */
  int64_t created_ns;
  crpc_cz_data c; /* live counters: crpc_cz_* accessors only */
  /* Registry mutex: totals of child sockets gone (servers, subchannels),
   * linked in the registry. */
  crpc_cz_data folded;
  bool linked;
  struct crpc_cz_entity *prev, *next;
  /* Channels: the channel while it lives (owner_mu). */
  pthread_mutex_t owner_mu;
  void *owner;
  crpc_cz_state_fn state;
  /* Server and client sockets: their loop and filler (immutable). */
  crpc_loop *loop;
  crpc_cz_fill_fn fill;
  void *fill_arg;
  /* Listen sockets: the bound address (immutable). */
  struct sockaddr_storage addr;
  socklen_t addr_len;
} crpc_cz_entity;

/* ---- registration (owners) ---------------------------------------------- */

/* Registers a new entity under parent (a reference is taken; NULL: a
 * root) with a copy of name (NULL: ""). Returns the owner's reference, or
 * NULL if out of memory (the owner then counts nothing: every counting
 * helper takes NULL). Any thread. */
crpc_cz_entity *crpc_cz_register(crpc_cz_kind kind, crpc_cz_entity *parent,
                                 const char *name);

/* crpc_cz_register for a socket (SERVER_SOCKET, CLIENT_SOCKET: loop and
 * fill say where and how GetSocket reads its details; LISTEN_SOCKET: loop
 * NULL and the bound address sa, len). */
crpc_cz_entity *crpc_cz_register_socket(crpc_cz_kind kind,
                                        crpc_cz_entity *parent,
                                        const char *name, crpc_loop *loop,
                                        crpc_cz_fill_fn fill, void *fill_arg,
                                        const struct sockaddr *sa,
                                        socklen_t len);

/* Channels: owner and state function (until crpc_cz_channel_detach). */
void crpc_cz_set_channel(crpc_cz_entity *e, void *owner,
                         crpc_cz_state_fn state);

/* Channels: the channel is going; state queries answer SHUTDOWN from now
 * on. Waits for a query reading the state to finish. Not with the
 * channel's mutex held. */
void crpc_cz_channel_detach(crpc_cz_entity *e);

/* Unlinks e (queries no longer find it; a socket's counters are folded
 * into its parent's totals) and drops the owner's reference. NULL: no-op.
 * For sockets: on the socket's loop thread. */
void crpc_cz_unregister(crpc_cz_entity *e);

void crpc_cz_retain(crpc_cz_entity *e);
void crpc_cz_release(crpc_cz_entity *e);

/* ---- queries (any thread; rare) ----------------------------------------- */

/* An entity's id and a copy of its name. */
typedef struct crpc_cz_ref {
  int64_t id;
  char *name;
} crpc_cz_ref;

void crpc_cz_refs_free(crpc_cz_ref *refs, size_t n);

/* The entities of `kind` whose id is >= start, ascending, at most max
 * (> 0); with parent > 0, only its children. *refs is malloc'd (free with
 * crpc_cz_refs_free; NULL when *n is 0). *end: no entity of that kind
 * (and parent) lies past the last one returned. CRPC_OK or
 * RESOURCE_EXHAUSTED. */
crpc_code crpc_cz_list(crpc_cz_kind kind, int64_t parent, int64_t start,
                       size_t max, crpc_cz_ref **refs, size_t *n, bool *end);

/* A channel, subchannel or server as GetChannel / GetSubchannel /
 * GetServer show it. Free with crpc_cz_node_free. */
typedef struct crpc_cz_node {
  int64_t id;
  crpc_cz_kind kind;
  char *name;
  int state; /* CRPC_CZ_STATE_* (channels, subchannels) */
  int64_t created_ns;
  crpc_cz_data data;
  /* Children by kind: channels' subchannels; subchannels' sockets;
   * servers' listen sockets. Ascending ids. */
  crpc_cz_ref *children;
  size_t n_children;
} crpc_cz_node;

/* The node with that id, if it is of `kind` (CHANNEL, SUBCHANNEL or
 * SERVER). CRPC_OK with *out set; NOT_FOUND; RESOURCE_EXHAUSTED. */
crpc_code crpc_cz_get_node(crpc_cz_kind kind, int64_t id, crpc_cz_node **out);

void crpc_cz_node_free(crpc_cz_node *node);

/* Receives a socket. code: OK (info set; the callee frees it with
 * crpc_cz_socket_info_free), NOT_FOUND (no socket has that id, or it
 * closed before its loop answered), RESOURCE_EXHAUSTED. */
typedef void (*crpc_cz_socket_fn)(crpc_code code, crpc_cz_socket_info *info,
                                  void *user_data);

/* Socket `id` (listen, server or client): done runs exactly once, on the
 * socket's loop thread (a server or client socket) or on the calling
 * thread before this returns (a listener, an unknown id, out of memory).
 * It must not block. */
void crpc_cz_get_socket_async(int64_t id, crpc_cz_socket_fn done,
                              void *user_data);

/* CLOCK_MONOTONIC ns (crpc_now_ns) as CLOCK_REALTIME ns, for timestamps;
 * 0 stays 0. */
int64_t crpc_cz_wall_ns(int64_t mono_ns);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CHANNELZ_CHANNELZ_H */
