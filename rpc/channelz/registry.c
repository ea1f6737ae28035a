/*
 * registry.c - the process-wide channelz registry (channelz.h).
 *
 * One list of every registered entity, in id order (ids are given under
 * the mutex, so appending keeps it sorted), behind one mutex. Queries walk
 * it; they are rare and the list is as long as the process has servers,
 * channels and connections.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crpc/ctx.h"
#include "rpc/channelz/channelz.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static crpc_cz_entity *g_head, *g_tail; /* g_mu */
static int64_t g_last_id;               /* g_mu */

/* ---- references ---------------------------------------------------------- */

void crpc_cz_retain(crpc_cz_entity *e) {
  __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
}

void crpc_cz_release(crpc_cz_entity *e) {
  if (e == NULL || __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) != 0) {
    return;
  }
  crpc_cz_release(e->parent);
  pthread_mutex_destroy(&e->owner_mu);
  free(e->name);
  free(e);
}

/* ---- registration -------------------------------------------------------- */

static crpc_cz_entity *entity_new(crpc_cz_kind kind, crpc_cz_entity *parent,
                                  const char *name) {
  crpc_cz_entity *e = calloc(1, sizeof(*e));
  if (e == NULL) return NULL;
  e->name = strdup(name != NULL ? name : "");
  if (e->name == NULL) {
    free(e);
    return NULL;
  }
  e->refs = 1; /* the owner's */
  e->kind = kind;
  e->created_ns = crpc_now_ns();
  pthread_mutex_init(&e->owner_mu, NULL);
  if (parent != NULL) crpc_cz_retain(parent);
  e->parent = parent;
  return e;
}

static void link_entity(crpc_cz_entity *e) {
  pthread_mutex_lock(&g_mu);
  e->id = ++g_last_id;
  e->prev = g_tail;
  e->next = NULL;
  if (g_tail != NULL) {
    g_tail->next = e;
  } else {
    g_head = e;
  }
  g_tail = e;
  e->linked = true;
  pthread_mutex_unlock(&g_mu);
}

crpc_cz_entity *crpc_cz_register(crpc_cz_kind kind, crpc_cz_entity *parent,
                                 const char *name) {
  crpc_cz_entity *e = entity_new(kind, parent, name);
  if (e != NULL) link_entity(e);
  return e;
}

crpc_cz_entity *crpc_cz_register_socket(crpc_cz_kind kind,
                                        crpc_cz_entity *parent,
                                        const char *name, crpc_loop *loop,
                                        crpc_cz_fill_fn fill, void *fill_arg,
                                        const struct sockaddr *sa,
                                        socklen_t len) {
  crpc_cz_entity *e = entity_new(kind, parent, name);
  if (e == NULL) return NULL;
  e->loop = loop;
  e->fill = fill;
  e->fill_arg = fill_arg;
  if (sa != NULL && len > 0 && len <= sizeof(e->addr)) {
    memcpy(&e->addr, sa, len);
    e->addr_len = len;
  }
  link_entity(e);
  return e;
}

void crpc_cz_set_channel(crpc_cz_entity *e, void *owner,
                         crpc_cz_state_fn state) {
  if (e == NULL) return;
  pthread_mutex_lock(&e->owner_mu);
  e->owner = owner;
  e->state = state;
  pthread_mutex_unlock(&e->owner_mu);
}

void crpc_cz_channel_detach(crpc_cz_entity *e) {
  if (e == NULL) return;
  pthread_mutex_lock(&e->owner_mu);
  e->owner = NULL;
  pthread_mutex_unlock(&e->owner_mu);
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Adds a socket's live counters to d. */
static void add_counters(crpc_cz_data *d, const crpc_cz_data *c) {
  d->calls_started += crpc_cz_get(&c->calls_started);
  d->calls_succeeded += crpc_cz_get(&c->calls_succeeded);
  d->calls_failed += crpc_cz_get(&c->calls_failed);
  d->last_call_started_ns =
      max64(d->last_call_started_ns, crpc_cz_get(&c->last_call_started_ns));
  d->streams_started += crpc_cz_get(&c->streams_started);
  d->streams_succeeded += crpc_cz_get(&c->streams_succeeded);
  d->streams_failed += crpc_cz_get(&c->streams_failed);
  d->messages_sent += crpc_cz_get(&c->messages_sent);
  d->messages_received += crpc_cz_get(&c->messages_received);
  d->keepalives_sent += crpc_cz_get(&c->keepalives_sent);
  d->last_local_stream_ns =
      max64(d->last_local_stream_ns, crpc_cz_get(&c->last_local_stream_ns));
  d->last_remote_stream_ns =
      max64(d->last_remote_stream_ns, crpc_cz_get(&c->last_remote_stream_ns));
  d->last_message_sent_ns =
      max64(d->last_message_sent_ns, crpc_cz_get(&c->last_message_sent_ns));
  d->last_message_received_ns = max64(
      d->last_message_received_ns, crpc_cz_get(&c->last_message_received_ns));
}

static bool is_conn(crpc_cz_kind kind) {
  return kind == CRPC_CZ_SERVER_SOCKET || kind == CRPC_CZ_CLIENT_SOCKET;
}

void crpc_cz_unregister(crpc_cz_entity *e) {
  if (e == NULL) return;
  pthread_mutex_lock(&g_mu);
  if (e->linked) {
    if (e->prev != NULL) {
      e->prev->next = e->next;
    } else {
      g_head = e->next;
    }
    if (e->next != NULL) {
      e->next->prev = e->prev;
    } else {
      g_tail = e->prev;
    }
    e->prev = e->next = NULL;
    e->linked = false;
    /* A connection's counts stay in its server's or subchannel's totals. */
    if (is_conn(e->kind) && e->parent != NULL) {
      add_counters(&e->parent->folded, &e->c);
    }
  }
  pthread_mutex_unlock(&g_mu);
  crpc_cz_release(e);
}

/* ---- queries ------------------------------------------------------------- */

void crpc_cz_refs_free(crpc_cz_ref *refs, size_t n) {
  for (size_t i = 0; i < n && refs != NULL; i++) free(refs[i].name);
  free(refs);
}

/* Appends e's id and name to *refs (growing it); false if out of memory. */
static bool push_ref(crpc_cz_ref **refs, size_t *n, size_t *cap,
                     const crpc_cz_entity *e) {
  if (*n == *cap) {
    size_t c = *cap ? 2 * *cap : 16;
    crpc_cz_ref *r = realloc(*refs, c * sizeof(*r));
    if (r == NULL) return false;
    *refs = r;
    *cap = c;
  }
  char *name = strdup(e->name);
  if (name == NULL) return false;
  (*refs)[(*n)++] = (crpc_cz_ref){e->id, name};
  return true;
}

static bool matches(const crpc_cz_entity *e, crpc_cz_kind kind,
                    int64_t parent) {
  return e->kind == kind &&
         (parent <= 0 || (e->parent != NULL && e->parent->id == parent));
}

crpc_code crpc_cz_list(crpc_cz_kind kind, int64_t parent, int64_t start,
                       size_t max, crpc_cz_ref **refs, size_t *n, bool *end) {
  *refs = NULL;
  *n = 0;
  *end = true;
  size_t cap = 0;
  crpc_code code = CRPC_OK;
  pthread_mutex_lock(&g_mu);
  for (crpc_cz_entity *e = g_head; e != NULL; e = e->next) {
    if (e->id < start || !matches(e, kind, parent)) continue;
    if (*n == max) {
      *end = false; /* one more lies past the page */
      break;
    }
    if (!push_ref(refs, n, &cap, e)) {
      code = CRPC_RESOURCE_EXHAUSTED;
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
  if (code != CRPC_OK) {
    crpc_cz_refs_free(*refs, *n);
    *refs = NULL;
    *n = 0;
  }
  return code;
}

void crpc_cz_node_free(crpc_cz_node *node) {
  if (node == NULL) return;
  crpc_cz_refs_free(node->children, node->n_children);
  free(node->name);
  free(node);
}

static crpc_cz_entity *find_locked(int64_t id) {
  for (crpc_cz_entity *e = g_head; e != NULL; e = e->next) {
    if (e->id == id) return e;
    if (e->id > id) break; /* sorted */
  }
  return NULL;
}

/* The kind of children a node lists. */
static crpc_cz_kind child_kind(crpc_cz_kind kind) {
  switch (kind) {
    case CRPC_CZ_CHANNEL: return CRPC_CZ_SUBCHANNEL;
    case CRPC_CZ_SUBCHANNEL: return CRPC_CZ_CLIENT_SOCKET;
    default: return CRPC_CZ_LISTEN_SOCKET;
  }
}

/* Reads the node under g_mu: its own counters (a channel) or the totals
 * of its connections, gone and open (a server, a subchannel), and its
 * children. False if out of memory. */
static bool read_node_locked(crpc_cz_entity *e, crpc_cz_node *node) {
  node->id = e->id;
  node->kind = e->kind;
  node->created_ns = e->created_ns;
  node->name = strdup(e->name);
  if (node->name == NULL) return false;
  if (e->kind == CRPC_CZ_CHANNEL) {
    add_counters(&node->data, &e->c);
  } else {
    node->data = e->folded;
  }
  crpc_cz_kind want = child_kind(e->kind);
  size_t cap = 0;
  for (crpc_cz_entity *c = e->next; c != NULL; c = c->next) {
    if (c->parent != e) continue;
    if (is_conn(c->kind) && e->kind != CRPC_CZ_CHANNEL) {
      add_counters(&node->data, &c->c);
    }
    if (c->kind == want &&
        !push_ref(&node->children, &node->n_children, &cap, c)) {
      return false;
    }
  }
  return true;
}

crpc_code crpc_cz_get_node(crpc_cz_kind kind, int64_t id, crpc_cz_node **out) {
  *out = NULL;
  crpc_cz_node *node = calloc(1, sizeof(*node));
  if (node == NULL) return CRPC_RESOURCE_EXHAUSTED;
  pthread_mutex_lock(&g_mu);
  crpc_cz_entity *e = find_locked(id);
  if (e == NULL || e->kind != kind) {
    pthread_mutex_unlock(&g_mu);
    crpc_cz_node_free(node);
    return CRPC_NOT_FOUND;
  }
  bool ok = read_node_locked(e, node);
  crpc_cz_retain(e);
  pthread_mutex_unlock(&g_mu);
  if (!ok) {
    crpc_cz_release(e);
    crpc_cz_node_free(node);
    return CRPC_RESOURCE_EXHAUSTED;
  }
  /* The state from the channel, outside the registry mutex (the channel's
   * own mutex comes after it in no order: see channelz.h). */
  crpc_cz_entity *ch = kind == CRPC_CZ_CHANNEL      ? e
                       : kind == CRPC_CZ_SUBCHANNEL ? e->parent
                                                    : NULL;
  if (ch != NULL) {
    pthread_mutex_lock(&ch->owner_mu);
    node->state = ch->owner != NULL && ch->state != NULL
                      ? ch->state(ch->owner, e)
                      : CRPC_CZ_STATE_SHUTDOWN;
    pthread_mutex_unlock(&ch->owner_mu);
  }
  crpc_cz_release(e);
  *out = node;
  return CRPC_OK;
}

/* ---- sockets ------------------------------------------------------------- */

void crpc_cz_socket_info_free(crpc_cz_socket_info *info) {
  if (info == NULL) return;
  free(info->name);
  free(info->cipher);
  free(info->local_cert);
  free(info->remote_cert);
  free(info);
}

/* The part every socket has: id, name, its counters. g_mu held or the
 * socket's own loop thread. */
static crpc_cz_socket_info *info_new(const crpc_cz_entity *e) {
  crpc_cz_socket_info *info = calloc(1, sizeof(*info));
  if (info == NULL) return NULL;
  info->name = strdup(e->name);
  if (info->name == NULL) {
    free(info);
    return NULL;
  }
  info->id = e->id;
  info->kind = e->kind;
  add_counters(&info->data, &e->c);
  return info;
}

typedef struct socket_req {
  crpc_cz_entity *e; /* a reference */
  crpc_cz_socket_fn done;
  void *user_data;
} socket_req;

/* On the socket's loop: unregistering happens on this thread too, so a
 * socket still linked here stays alive (and its owner with it) until this
 * returns. */
static void socket_on_loop(crpc_loop *loop, void *arg) {
  (void)loop;
  socket_req *req = arg;
  crpc_cz_entity *e = req->e;
  pthread_mutex_lock(&g_mu);
  bool live = e->linked && crpc_loop_in_loop_thread(e->loop);
  pthread_mutex_unlock(&g_mu);
  crpc_cz_socket_info *info = live ? info_new(e) : NULL;
  if (info != NULL && e->fill != NULL) e->fill(e->fill_arg, info);
  crpc_code code = !live ? CRPC_NOT_FOUND
                   : info == NULL ? CRPC_RESOURCE_EXHAUSTED
                                  : CRPC_OK;
  crpc_cz_release(e);
  crpc_cz_socket_fn done = req->done;
  void *user_data = req->user_data;
  free(req);
  done(code, info, user_data);
}

void crpc_cz_get_socket_async(int64_t id, crpc_cz_socket_fn done,
                              void *user_data) {
  pthread_mutex_lock(&g_mu);
  crpc_cz_entity *e = find_locked(id);
  if (e == NULL || (!is_conn(e->kind) && e->kind != CRPC_CZ_LISTEN_SOCKET)) {
    pthread_mutex_unlock(&g_mu);
    done(CRPC_NOT_FOUND, NULL, user_data);
    return;
  }
  if (e->kind == CRPC_CZ_LISTEN_SOCKET || e->loop == NULL) {
    crpc_cz_socket_info *info = info_new(e);
    if (info != NULL && e->addr_len > 0) {
      memcpy(&info->local, &e->addr, e->addr_len);
      info->local_len = e->addr_len;
    }
    pthread_mutex_unlock(&g_mu);
    done(info != NULL ? CRPC_OK : CRPC_RESOURCE_EXHAUSTED, info, user_data);
    return;
  }
  /* Posted under g_mu: the socket is linked, so its connection is open and
   * its loop not yet freed (connections close before their loops go). */
  socket_req *req = malloc(sizeof(*req));
  bool posted = false;
  if (req != NULL) {
    *req = (socket_req){e, done, user_data};
    crpc_cz_retain(e);
    posted = crpc_loop_post(e->loop, socket_on_loop, req) == 0;
    if (!posted) crpc_cz_release(e); /* not the last: e is linked */
  }
  pthread_mutex_unlock(&g_mu);
  if (!posted) {
    free(req);
    done(CRPC_RESOURCE_EXHAUSTED, NULL, user_data);
  }
}

/* ---- time ---------------------------------------------------------------- */

int64_t crpc_cz_wall_ns(int64_t mono_ns) {
  if (mono_ns == 0) return 0;
  struct timespec rt;
  clock_gettime(CLOCK_REALTIME, &rt);
  int64_t now_rt = (int64_t)rt.tv_sec * 1000000000LL + rt.tv_nsec;
  return now_rt - (crpc_now_ns() - mono_ns);
}
