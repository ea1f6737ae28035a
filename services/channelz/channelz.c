/*
 * services/channelz/channelz.c - grpc.channelz.v1.Channelz on crpc's async
 * server API (crpc/admin.h has the contract), answering from the
 * process-wide registry of rpc/channelz.
 *
 * Six methods answer inline on the loop thread: they copy what they need
 * out of the registry under its mutex (and read a channel's state under
 * the channel's own), build the response and send it. GetSocket reads
 * what only a connection's loop may touch (nghttp2's windows, the
 * socket's addresses, the TLS session), so it is a reactor: its request
 * is posted to that loop (crpc_cz_get_socket_async) and the answer, on
 * that loop, finishes the call; no thread waits. As in the admin service,
 * whoever claims `finished` first (on_cancel or the answer) finishes the
 * call, and the per-call state lives until both the reactor and an
 * outstanding answer have let go of it.
 *
 * Responses are built from protobuf-c structs allocated in a pool freed
 * once the response is sent (send_async copies it).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <netinet/in.h>

#include "crpc/admin.h"
#include "crpc/server_async.h"
#include "grpc/channelz/v1/channelz.crpc.h"
#include "rpc/channelz/channelz.h"

/* gRPC's page size when max_results is 0. */
#define PAGE_DEFAULT 100

/* ---- a pool for one response ----------------------------------------------- */

typedef struct pool {
  void **blocks;
  size_t n, cap;
  bool failed; /* out of memory somewhere: the response is not sent */
} pool;

static void *pool_alloc(pool *p, size_t size) {
  if (p->n == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 32;
    void **b = realloc(p->blocks, cap * sizeof(*b));
    if (b == NULL) {
      p->failed = true;
      return NULL;
    }
    p->blocks = b;
    p->cap = cap;
  }
  void *m = calloc(1, size ? size : 1);
  if (m == NULL) {
    p->failed = true;
    return NULL;
  }
  p->blocks[p->n++] = m;
  return m;
}

static void pool_free(pool *p) {
  for (size_t i = 0; i < p->n; i++) free(p->blocks[i]);
  free(p->blocks);
}

/* A pool-owned copy (protobuf-c strings are char *). */
static char *pool_str(pool *p, const char *s) {
  size_t n = strlen(s ? s : "") + 1;
  char *c = pool_alloc(p, n);
  if (c != NULL) memcpy(c, s ? s : "", n);
  return c;
}

/* An array of n pointers (at least one slot, so NULL means failure). */
static void **pool_ptrs(pool *p, size_t n) {
  return pool_alloc(p, (n ? n : 1) * sizeof(void *));
}

/* ---- building blocks ------------------------------------------------------- */

static Google__Protobuf__Timestamp *timestamp(pool *p, int64_t mono_ns) {
  if (mono_ns == 0) return NULL; /* never: the field stays absent */
  Google__Protobuf__Timestamp *t = pool_alloc(p, sizeof(*t));
  if (t == NULL) return NULL;
  google__protobuf__timestamp__init(t);
  int64_t wall = crpc_cz_wall_ns(mono_ns);
  t->seconds = wall / 1000000000LL;
  t->nanos = (int32_t)(wall % 1000000000LL);
  return t;
}

static Grpc__Channelz__V1__ChannelTrace *trace(pool *p, int64_t created_ns) {
  Grpc__Channelz__V1__ChannelTrace *t = pool_alloc(p, sizeof(*t));
  if (t == NULL) return NULL;
  grpc__channelz__v1__channel_trace__init(t);
  t->creation_timestamp = timestamp(p, created_ns);
  return t;
}

static Grpc__Channelz__V1__SocketRef *socket_ref(pool *p, int64_t id,
                                                 const char *name) {
  Grpc__Channelz__V1__SocketRef *r = pool_alloc(p, sizeof(*r));
  if (r == NULL) return NULL;
  grpc__channelz__v1__socket_ref__init(r);
  r->socket_id = id;
  r->name = pool_str(p, name);
  return r;
}

static Grpc__Channelz__V1__SocketRef **socket_refs(pool *p,
                                                   const crpc_cz_ref *refs,
                                                   size_t n) {
  Grpc__Channelz__V1__SocketRef **v = (void *)pool_ptrs(p, n);
  for (size_t i = 0; v != NULL && i < n; i++) {
    v[i] = socket_ref(p, refs[i].id, refs[i].name);
  }
  return v;
}

static Grpc__Channelz__V1__ChannelData *channel_data(pool *p,
                                                     const crpc_cz_node *n) {
  Grpc__Channelz__V1__ChannelData *d = pool_alloc(p, sizeof(*d));
  Grpc__Channelz__V1__ChannelConnectivityState *st =
      pool_alloc(p, sizeof(*st));
  if (d == NULL || st == NULL) return NULL;
  grpc__channelz__v1__channel_data__init(d);
  grpc__channelz__v1__channel_connectivity_state__init(st);
  st->state = (Grpc__Channelz__V1__ChannelConnectivityState__State)n->state;
  d->state = st;
  d->target = pool_str(p, n->name);
  d->trace = trace(p, n->created_ns);
  d->calls_started = n->data.calls_started;
  d->calls_succeeded = n->data.calls_succeeded;
  d->calls_failed = n->data.calls_failed;
  d->last_call_started_timestamp = timestamp(p, n->data.last_call_started_ns);
  return d;
}

static Grpc__Channelz__V1__Channel *channel_msg(pool *p,
                                                const crpc_cz_node *n) {
  Grpc__Channelz__V1__Channel *c = pool_alloc(p, sizeof(*c));
  Grpc__Channelz__V1__ChannelRef *ref = pool_alloc(p, sizeof(*ref));
  Grpc__Channelz__V1__SubchannelRef **subs =
      (void *)pool_ptrs(p, n->n_children);
  if (c == NULL || ref == NULL || subs == NULL) return NULL;
  grpc__channelz__v1__channel__init(c);
  grpc__channelz__v1__channel_ref__init(ref);
  ref->channel_id = n->id;
  ref->name = pool_str(p, n->name);
  c->ref = ref;
  c->data = channel_data(p, n);
  for (size_t i = 0; i < n->n_children; i++) {
    Grpc__Channelz__V1__SubchannelRef *s = pool_alloc(p, sizeof(*s));
    if (s == NULL) return NULL;
    grpc__channelz__v1__subchannel_ref__init(s);
    s->subchannel_id = n->children[i].id;
    s->name = pool_str(p, n->children[i].name);
    subs[i] = s;
  }
  c->n_subchannel_ref = n->n_children;
  c->subchannel_ref = subs;
  return c;
}

static Grpc__Channelz__V1__Subchannel *subchannel_msg(pool *p,
                                                      const crpc_cz_node *n) {
  Grpc__Channelz__V1__Subchannel *c = pool_alloc(p, sizeof(*c));
  Grpc__Channelz__V1__SubchannelRef *ref = pool_alloc(p, sizeof(*ref));
  if (c == NULL || ref == NULL) return NULL;
  grpc__channelz__v1__subchannel__init(c);
  grpc__channelz__v1__subchannel_ref__init(ref);
  ref->subchannel_id = n->id;
  ref->name = pool_str(p, n->name);
  c->ref = ref;
  c->data = channel_data(p, n);
  c->n_socket_ref = n->n_children;
  c->socket_ref = socket_refs(p, n->children, n->n_children);
  return c;
}

static Grpc__Channelz__V1__Server *server_msg(pool *p, const crpc_cz_node *n) {
  Grpc__Channelz__V1__Server *s = pool_alloc(p, sizeof(*s));
  Grpc__Channelz__V1__ServerRef *ref = pool_alloc(p, sizeof(*ref));
  Grpc__Channelz__V1__ServerData *d = pool_alloc(p, sizeof(*d));
  if (s == NULL || ref == NULL || d == NULL) return NULL;
  grpc__channelz__v1__server__init(s);
  grpc__channelz__v1__server_ref__init(ref);
  grpc__channelz__v1__server_data__init(d);
  ref->server_id = n->id;
  ref->name = pool_str(p, n->name);
  d->trace = trace(p, n->created_ns);
  d->calls_started = n->data.calls_started;
  d->calls_succeeded = n->data.calls_succeeded;
  d->calls_failed = n->data.calls_failed;
  d->last_call_started_timestamp = timestamp(p, n->data.last_call_started_ns);
  s->ref = ref;
  s->data = d;
  s->n_listen_socket = n->n_children;
  s->listen_socket = socket_refs(p, n->children, n->n_children);
  return s;
}

static Grpc__Channelz__V1__Address *address(pool *p,
                                            const struct sockaddr_storage *ss,
                                            socklen_t len) {
  if (len == 0 || ss->ss_family == 0) return NULL;
  Grpc__Channelz__V1__Address *a = pool_alloc(p, sizeof(*a));
  if (a == NULL) return NULL;
  grpc__channelz__v1__address__init(a);
  if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
    Grpc__Channelz__V1__Address__TcpIpAddress *t = pool_alloc(p, sizeof(*t));
    if (t == NULL) return NULL;
    grpc__channelz__v1__address__tcp_ip_address__init(t);
    const void *ip;
    size_t n;
    if (ss->ss_family == AF_INET) {
      const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
      ip = &in->sin_addr;
      n = 4;
      t->port = ntohs(in->sin_port);
    } else {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
      ip = &in6->sin6_addr;
      n = 16;
      t->port = ntohs(in6->sin6_port);
    }
    uint8_t *bytes = pool_alloc(p, n);
    if (bytes == NULL) return NULL;
    memcpy(bytes, ip, n);
    t->ip_address = (ProtobufCBinaryData){n, bytes};
    a->address_case = GRPC__CHANNELZ__V1__ADDRESS__ADDRESS_TCPIP_ADDRESS;
    a->tcpip_address = t;
  } else if (ss->ss_family == AF_UNIX) {
    Grpc__Channelz__V1__Address__UdsAddress *u = pool_alloc(p, sizeof(*u));
    if (u == NULL) return NULL;
    grpc__channelz__v1__address__uds_address__init(u);
    const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
    size_t max = len > offsetof(struct sockaddr_un, sun_path)
                     ? len - offsetof(struct sockaddr_un, sun_path)
                     : 0;
    char path[sizeof(un->sun_path) + 1] = "";
    /* An unnamed (or abstract) socket has no file name. */
    if (max > 0 && un->sun_path[0] != '\0') {
      snprintf(path, sizeof(path), "%.*s", (int)max, un->sun_path);
    }
    u->filename = pool_str(p, path);
    a->address_case = GRPC__CHANNELZ__V1__ADDRESS__ADDRESS_UDS_ADDRESS;
    a->uds_address = u;
  } else {
    return NULL;
  }
  return a;
}

static Google__Protobuf__Int64Value *int64_value(pool *p, int64_t v) {
  Google__Protobuf__Int64Value *w = pool_alloc(p, sizeof(*w));
  if (w == NULL) return NULL;
  google__protobuf__int64_value__init(w);
  w->value = v;
  return w;
}

static Grpc__Channelz__V1__Security *security(pool *p,
                                              const crpc_cz_socket_info *in) {
  if (!in->tls) return NULL;
  Grpc__Channelz__V1__Security *s = pool_alloc(p, sizeof(*s));
  Grpc__Channelz__V1__Security__Tls *t = pool_alloc(p, sizeof(*t));
  if (s == NULL || t == NULL) return NULL;
  grpc__channelz__v1__security__init(s);
  grpc__channelz__v1__security__tls__init(t);
  if (in->cipher != NULL) {
    t->cipher_suite_case =
        GRPC__CHANNELZ__V1__SECURITY__TLS__CIPHER_SUITE_STANDARD_NAME;
    t->standard_name = pool_str(p, in->cipher);
  }
  /* The DER bytes stay in `in`, alive until the response is packed. */
  t->local_certificate =
      (ProtobufCBinaryData){in->local_cert_len, in->local_cert};
  t->remote_certificate =
      (ProtobufCBinaryData){in->remote_cert_len, in->remote_cert};
  s->model_case = GRPC__CHANNELZ__V1__SECURITY__MODEL_TLS;
  s->tls = t;
  return s;
}

static Grpc__Channelz__V1__Socket *socket_msg(pool *p,
                                              const crpc_cz_socket_info *in) {
  Grpc__Channelz__V1__Socket *s = pool_alloc(p, sizeof(*s));
  Grpc__Channelz__V1__SocketData *d = pool_alloc(p, sizeof(*d));
  if (s == NULL || d == NULL) return NULL;
  grpc__channelz__v1__socket__init(s);
  grpc__channelz__v1__socket_data__init(d);
  const crpc_cz_data *c = &in->data;
  d->streams_started = c->streams_started;
  d->streams_succeeded = c->streams_succeeded;
  d->streams_failed = c->streams_failed;
  d->messages_sent = c->messages_sent;
  d->messages_received = c->messages_received;
  d->keep_alives_sent = c->keepalives_sent;
  d->last_local_stream_created_timestamp =
      timestamp(p, c->last_local_stream_ns);
  d->last_remote_stream_created_timestamp =
      timestamp(p, c->last_remote_stream_ns);
  d->last_message_sent_timestamp = timestamp(p, c->last_message_sent_ns);
  d->last_message_received_timestamp =
      timestamp(p, c->last_message_received_ns);
  if (in->has_windows) {
    d->local_flow_control_window = int64_value(p, in->local_window);
    d->remote_flow_control_window = int64_value(p, in->remote_window);
  }
  s->ref = socket_ref(p, in->id, in->name);
  s->data = d;
  s->local = address(p, &in->local, in->local_len);
  s->remote = address(p, &in->remote, in->remote_len);
  s->security = security(p, in);
  s->remote_name = pool_str(p, "");
  return s;
}

/* max_results as a page size; false for a negative one. */
static bool page_size(int64_t max_results, size_t *max) {
  if (max_results < 0) return false;
  *max = max_results == 0 ? PAGE_DEFAULT : (size_t)max_results;
  return true;
}

/* The status for a failed registry read or a pool out of memory. */
static crpc_code fail(crpc_server_call *call, crpc_code code,
                      const char *what) {
  return crpc_server_call_error(call, code, "%s", what);
}

/* ---- the inline methods (on the loop thread) ------------------------------ */

static crpc_code get_top_channels(
    crpc_server_call *call, const crpc_ctx *ctx,
    const Grpc__Channelz__V1__GetTopChannelsRequest *req, void *user_data) {
  (void)ctx;
  (void)user_data;
  size_t max;
  if (!page_size(req->max_results, &max)) {
    return fail(call, CRPC_INVALID_ARGUMENT, "max_results is negative");
  }
  crpc_cz_ref *refs;
  size_t n;
  bool end;
  crpc_code code =
      crpc_cz_list(CRPC_CZ_CHANNEL, 0, req->start_channel_id, max, &refs, &n,
                   &end);
  if (code != CRPC_OK) return fail(call, code, "out of memory");
  pool p = {0};
  Grpc__Channelz__V1__GetTopChannelsResponse resp =
      GRPC__CHANNELZ__V1__GET_TOP_CHANNELS_RESPONSE__INIT;
  Grpc__Channelz__V1__Channel **v = (void *)pool_ptrs(&p, n);
  for (size_t i = 0; v != NULL && i < n; i++) {
    crpc_cz_node *node;
    /* A channel freed since the list was taken is left out. */
    if (crpc_cz_get_node(CRPC_CZ_CHANNEL, refs[i].id, &node) != CRPC_OK) {
      continue;
    }
    v[resp.n_channel++] = channel_msg(&p, node);
    crpc_cz_node_free(node);
  }
  resp.channel = v;
  resp.end = end;
  code = p.failed ? fail(call, CRPC_RESOURCE_EXHAUSTED, "out of memory")
                  : grpc_channelz_v1_channelz_get_top_channels_send_async(
                        call, &resp);
  pool_free(&p);
  crpc_cz_refs_free(refs, n);
  return code;
}

static crpc_code get_servers(crpc_server_call *call, const crpc_ctx *ctx,
                             const Grpc__Channelz__V1__GetServersRequest *req,
                             void *user_data) {
  (void)ctx;
  (void)user_data;
  size_t max;
  if (!page_size(req->max_results, &max)) {
    return fail(call, CRPC_INVALID_ARGUMENT, "max_results is negative");
  }
  crpc_cz_ref *refs;
  size_t n;
  bool end;
  crpc_code code = crpc_cz_list(CRPC_CZ_SERVER, 0, req->start_server_id, max,
                                &refs, &n, &end);
  if (code != CRPC_OK) return fail(call, code, "out of memory");
  pool p = {0};
  Grpc__Channelz__V1__GetServersResponse resp =
      GRPC__CHANNELZ__V1__GET_SERVERS_RESPONSE__INIT;
  Grpc__Channelz__V1__Server **v = (void *)pool_ptrs(&p, n);
  for (size_t i = 0; v != NULL && i < n; i++) {
    crpc_cz_node *node;
    if (crpc_cz_get_node(CRPC_CZ_SERVER, refs[i].id, &node) != CRPC_OK) {
      continue;
    }
    v[resp.n_server++] = server_msg(&p, node);
    crpc_cz_node_free(node);
  }
  resp.server = v;
  resp.end = end;
  code = p.failed
             ? fail(call, CRPC_RESOURCE_EXHAUSTED, "out of memory")
             : grpc_channelz_v1_channelz_get_servers_send_async(call, &resp);
  pool_free(&p);
  crpc_cz_refs_free(refs, n);
  return code;
}

/* NOT_FOUND naming what was asked for. */
static crpc_code not_found(crpc_server_call *call, const char *what,
                           int64_t id) {
  char msg[96];
  snprintf(msg, sizeof(msg), "no %s with id %lld", what, (long long)id);
  return fail(call, CRPC_NOT_FOUND, msg);
}

/* One node or the error (NOT_FOUND naming what). */
static crpc_code get_node(crpc_server_call *call, crpc_cz_kind kind,
                          int64_t id, const char *what, crpc_cz_node **out) {
  crpc_code code = crpc_cz_get_node(kind, id, out);
  if (code == CRPC_NOT_FOUND) return not_found(call, what, id);
  if (code != CRPC_OK) return fail(call, code, "out of memory");
  return CRPC_OK;
}

static crpc_code get_server(crpc_server_call *call, const crpc_ctx *ctx,
                            const Grpc__Channelz__V1__GetServerRequest *req,
                            void *user_data) {
  (void)ctx;
  (void)user_data;
  crpc_cz_node *node;
  crpc_code code =
      get_node(call, CRPC_CZ_SERVER, req->server_id, "server", &node);
  if (code != CRPC_OK) return code;
  pool p = {0};
  Grpc__Channelz__V1__GetServerResponse resp =
      GRPC__CHANNELZ__V1__GET_SERVER_RESPONSE__INIT;
  resp.server = server_msg(&p, node);
  code = p.failed
             ? fail(call, CRPC_RESOURCE_EXHAUSTED, "out of memory")
             : grpc_channelz_v1_channelz_get_server_send_async(call, &resp);
  pool_free(&p);
  crpc_cz_node_free(node);
  return code;
}

static crpc_code get_server_sockets(
    crpc_server_call *call, const crpc_ctx *ctx,
    const Grpc__Channelz__V1__GetServerSocketsRequest *req, void *user_data) {
  (void)ctx;
  (void)user_data;
  size_t max;
  if (!page_size(req->max_results, &max)) {
    return fail(call, CRPC_INVALID_ARGUMENT, "max_results is negative");
  }
  crpc_cz_node *node;
  crpc_code code =
      get_node(call, CRPC_CZ_SERVER, req->server_id, "server", &node);
  if (code != CRPC_OK) return code;
  crpc_cz_node_free(node);
  crpc_cz_ref *refs;
  size_t n;
  bool end;
  code = crpc_cz_list(CRPC_CZ_SERVER_SOCKET, req->server_id,
                      req->start_socket_id, max, &refs, &n, &end);
  if (code != CRPC_OK) return fail(call, code, "out of memory");
  pool p = {0};
  Grpc__Channelz__V1__GetServerSocketsResponse resp =
      GRPC__CHANNELZ__V1__GET_SERVER_SOCKETS_RESPONSE__INIT;
  resp.n_socket_ref = n;
  resp.socket_ref = socket_refs(&p, refs, n);
  resp.end = end;
  code = p.failed ? fail(call, CRPC_RESOURCE_EXHAUSTED, "out of memory")
                  : grpc_channelz_v1_channelz_get_server_sockets_send_async(
                        call, &resp);
  pool_free(&p);
  crpc_cz_refs_free(refs, n);
  return code;
}

static crpc_code get_channel(crpc_server_call *call, const crpc_ctx *ctx,
                             const Grpc__Channelz__V1__GetChannelRequest *req,
                             void *user_data) {
  (void)ctx;
  (void)user_data;
  crpc_cz_node *node;
  crpc_code code =
      get_node(call, CRPC_CZ_CHANNEL, req->channel_id, "channel", &node);
  if (code != CRPC_OK) return code;
  pool p = {0};
  Grpc__Channelz__V1__GetChannelResponse resp =
      GRPC__CHANNELZ__V1__GET_CHANNEL_RESPONSE__INIT;
  resp.channel = channel_msg(&p, node);
  code = p.failed
             ? fail(call, CRPC_RESOURCE_EXHAUSTED, "out of memory")
             : grpc_channelz_v1_channelz_get_channel_send_async(call, &resp);
  pool_free(&p);
  crpc_cz_node_free(node);
  return code;
}

static crpc_code get_subchannel(
    crpc_server_call *call, const crpc_ctx *ctx,
    const Grpc__Channelz__V1__GetSubchannelRequest *req, void *user_data) {
  (void)ctx;
  (void)user_data;
  crpc_cz_node *node;
  crpc_code code = get_node(call, CRPC_CZ_SUBCHANNEL, req->subchannel_id,
                            "subchannel", &node);
  if (code != CRPC_OK) return code;
  pool p = {0};
  Grpc__Channelz__V1__GetSubchannelResponse resp =
      GRPC__CHANNELZ__V1__GET_SUBCHANNEL_RESPONSE__INIT;
  resp.subchannel = subchannel_msg(&p, node);
  code = p.failed ? fail(call, CRPC_RESOURCE_EXHAUSTED, "out of memory")
                  : grpc_channelz_v1_channelz_get_subchannel_send_async(
                        call, &resp);
  pool_free(&p);
  crpc_cz_node_free(node);
  return code;
}

/* ---- GetSocket: a reactor answered from the socket's loop ----------------- */

typedef struct socket_call {
  atomic_int refs;      /* the reactor's (until on_done), the answer's */
  atomic_bool finished; /* crpc_server_call_finish claimed */
  bool asked;           /* loop thread: the request came */
  crpc_server_call *call;
  int64_t id;
} socket_call;

static void sc_unref(socket_call *sc) {
  if (atomic_fetch_sub(&sc->refs, 1) == 1) free(sc);
}

/* True for the one caller who gets to finish the call. */
static bool sc_claim(socket_call *sc) {
  return !atomic_exchange(&sc->finished, true);
}

static void *socket_start(crpc_server_call *call, const crpc_ctx *ctx,
                          void *user_data) {
  (void)ctx;
  (void)user_data;
  socket_call *sc = calloc(1, sizeof(*sc));
  if (sc == NULL) {
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  atomic_init(&sc->refs, 1);
  atomic_init(&sc->finished, false);
  sc->call = call;
  return sc;
}

/* The socket's loop answered (or the caller's thread, at once). */
static void socket_answered(crpc_code code, crpc_cz_socket_info *info,
                            void *user_data) {
  socket_call *sc = user_data;
  if (sc_claim(sc)) {
    char why[96] = "";
    if (code == CRPC_OK) {
      pool p = {0};
      Grpc__Channelz__V1__GetSocketResponse resp =
          GRPC__CHANNELZ__V1__GET_SOCKET_RESPONSE__INIT;
      resp.socket = socket_msg(&p, info);
      code = p.failed ? CRPC_RESOURCE_EXHAUSTED
                      : grpc_channelz_v1_channelz_get_socket_send_async(
                            sc->call, &resp);
      if (p.failed) snprintf(why, sizeof(why), "out of memory");
      pool_free(&p);
    } else if (code == CRPC_NOT_FOUND) {
      snprintf(why, sizeof(why), "no socket with id %lld",
               (long long)sc->id);
    }
    crpc_server_call_finish(sc->call, code, why[0] ? why : NULL);
  }
  crpc_cz_socket_info_free(info);
  sc_unref(sc);
}

static void socket_message(crpc_server_call *call, const crpc_message *msg,
                           void *state) {
  socket_call *sc = state;
  if (sc == NULL || sc->asked) return; /* the end after the request */
  sc->asked = true;
  Grpc__Channelz__V1__GetSocketRequest *req =
      msg->end ? NULL
               : grpc__channelz__v1__get_socket_request__unpack(
                     NULL, msg->len, msg->data);
  if (req == NULL) {
    if (sc_claim(sc)) {
      crpc_server_call_finish(call,
                              msg->end ? CRPC_INTERNAL : CRPC_INVALID_ARGUMENT,
                              msg->end ? "unary call ended without a request"
                                       : "request does not parse");
    }
    return;
  }
  sc->id = req->socket_id;
  grpc__channelz__v1__get_socket_request__free_unpacked(req, NULL);
  atomic_fetch_add(&sc->refs, 1); /* the answer's */
  crpc_cz_get_socket_async(sc->id, socket_answered, sc);
}

static void socket_cancel(crpc_server_call *call, const crpc_cause *cause,
                          void *state) {
  socket_call *sc = state;
  if (sc != NULL && sc_claim(sc)) {
    crpc_server_call_finish(call, cause->code, NULL);
  }
}

static void socket_done(crpc_server_call *call, void *state) {
  (void)call;
  if (state != NULL) sc_unref(state);
}

static const crpc_server_reactor socket_reactor = {
    .on_start = socket_start,
    .on_message = socket_message,
    .on_cancel = socket_cancel,
    .on_done = socket_done,
};

/* ---- registration ---------------------------------------------------------- */

static const grpc_channelz_v1_channelz_async_handlers handlers = {
    .get_top_channels = get_top_channels,
    .get_servers = get_servers,
    .get_server = get_server,
    .get_server_sockets = get_server_sockets,
    .get_channel = get_channel,
    .get_subchannel = get_subchannel,
    /* get_socket: the reactor below */
};

int64_t crpc_channelz_service_add(crpc_server *server, crpc_code *code) {
  crpc_code c =
      grpc_channelz_v1_channelz_register_async_handlers(server, &handlers);
  if (c == CRPC_OK) {
    c = crpc_server_add_async_method(
        server, grpc_channelz_v1_channelz_get_socket_method.path, CRPC_UNARY,
        &socket_reactor, NULL);
  }
  if (code != NULL) *code = c;
  return c == CRPC_OK ? crpc_server_channelz_id(server) : 0;
}
