/*
 * services/health/health.c - grpc.health.v1.Health on crpc's async server
 * API (crpc/admin.h has the contract).
 *
 * Check runs inline on the loop. Watch is a reactor: a watcher is a small
 * struct on the health object's list, so an idle watcher costs memory, not
 * a thread. A status change (any thread) walks the list and queues the new
 * status on each watcher of that name with crpc_server_call_send_async.
 *
 * One mutex, h->mu, guards the statuses, the watcher list and every
 * watcher's fields; the reactor callbacks (loop threads) and the setters
 * (any thread) take it. send_async and finish may be called under it: they
 * never run a reactor callback themselves (the runtime queues kicks), and
 * the brief wait send_async may make off the loop is for the loop to finish
 * cancelling a reset stream, which it does without calling back into us.
 *
 * A watcher whose client does not read keeps only "the latest status is
 * owed" (want): it is sent from on_send_ready, so a slow watcher never
 * makes memory grow however often the status flips.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crpc/admin.h"
#include "crpc/server_async.h"
#include "crpc/server_info.h"
#include "grpc/health/v1/health.crpc.h"

typedef struct health_entry {
  char *name;
  crpc_health_status status;
} health_entry;

typedef struct watcher {
  crpc_health *h;
  crpc_server_call *call;
  char *service;            /* NULL until the request is in */
  int sent;                 /* last status queued; -1: none yet */
  bool want;                /* a status is owed once the buffer drains */
  bool finished;            /* crpc_server_call_finish was called */
  bool linked;              /* on h->watchers */
  struct watcher *prev, *next;
} watcher;

struct crpc_health {
  pthread_mutex_t mu;
  health_entry *entries;
  size_t n_entries, cap_entries;
  watcher *watchers;
  bool draining;  /* crpc_health_drain or shutdown: sets are ignored */
  bool shut_down; /* the server's shutdown began: watches end */
  grpc_health_v1_health_async_handlers handlers; /* outlives the server's use */
};

/* ---- statuses (h->mu held) --------------------------------------------- */

static health_entry *find_locked(crpc_health *h, const char *name) {
  for (size_t i = 0; i < h->n_entries; i++) {
    if (strcmp(h->entries[i].name, name) == 0) return &h->entries[i];
  }
  return NULL;
}

static crpc_health_status status_locked(crpc_health *h, const char *name) {
  const health_entry *e = find_locked(h, name);
  return e != NULL ? e->status : CRPC_HEALTH_SERVICE_UNKNOWN;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = malloc(n);
  if (c != NULL) memcpy(c, s, n);
  return c;
}

/* ---- watchers (h->mu held) ---------------------------------------------- */

static void link_locked(crpc_health *h, watcher *w) {
  w->prev = NULL;
  w->next = h->watchers;
  if (h->watchers != NULL) h->watchers->prev = w;
  h->watchers = w;
  w->linked = true;
}

static void unlink_locked(crpc_health *h, watcher *w) {
  if (!w->linked) return;
  if (w->prev != NULL) w->prev->next = w->next;
  if (w->next != NULL) w->next->prev = w->prev;
  if (h->watchers == w) h->watchers = w->next;
  w->linked = false;
}

static void send_locked(watcher *w, crpc_health_status status) {
  Grpc__Health__V1__HealthCheckResponse resp =
      GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
  /* An error means the ctx is done: on_cancel is on its way and ends it. */
  if (grpc_health_v1_health_watch_send_async(w->call, &resp) == CRPC_OK) {
    w->sent = (int)status;
  }
}

/* Queues w's current status if it differs from the last one sent; if the
 * client is not reading, owes it (on_send_ready sends the latest). */
static void push_locked(crpc_health *h, watcher *w) {
  if (w->finished || w->service == NULL) return;
  crpc_health_status st = status_locked(h, w->service);
  if ((int)st == w->sent) {
    w->want = false;
    return;
  }
  if (!crpc_server_call_can_send(w->call)) {
    w->want = true;
    return;
  }
  w->want = false;
  send_locked(w, st);
}

/* Shutdown: the last status goes out even past the buffer (one small
 * message), then the stream ends so it does not hold the grace period. */
static void end_locked(crpc_health *h, watcher *w) {
  unlink_locked(h, w);
  if (w->finished) return;
  if (w->service != NULL) {
    crpc_health_status st = status_locked(h, w->service);
    if ((int)st != w->sent) send_locked(w, st);
  }
  w->finished = true;
  crpc_server_call_finish(w->call, CRPC_UNAVAILABLE, "server shutting down");
}

static void notify_locked(crpc_health *h, const char *name) {
  for (watcher *w = h->watchers; w != NULL; w = w->next) {
    if (w->service != NULL && strcmp(w->service, name) == 0) {
      push_locked(h, w);
    }
  }
}

/* ---- Check (inline on the loop) ---------------------------------------- */

static crpc_code check(crpc_server_call *call, const crpc_ctx *ctx,
                       const Grpc__Health__V1__HealthCheckRequest *req,
                       void *user_data) {
  (void)ctx;
  crpc_health *h = user_data;
  const char *name = req->service != NULL ? req->service : "";
  pthread_mutex_lock(&h->mu);
  crpc_health_status st = status_locked(h, name);
  pthread_mutex_unlock(&h->mu);
  if (st == CRPC_HEALTH_SERVICE_UNKNOWN) {
    return crpc_server_call_error(call, CRPC_NOT_FOUND, "unknown service");
  }
  Grpc__Health__V1__HealthCheckResponse resp =
      GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
  return grpc_health_v1_health_check_send_async(call, &resp);
}

/* ---- Watch (reactor on the loop) ---------------------------------------- */

static void *watch_start(crpc_server_call *call, const crpc_ctx *ctx,
                         void *user_data) {
  (void)ctx;
  watcher *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  w->h = user_data;
  w->call = call;
  w->sent = -1;
  return w;
}

static void watch_message(crpc_server_call *call,
                          const Grpc__Health__V1__HealthCheckRequest *req,
                          void *state) {
  watcher *w = state;
  if (w == NULL || req == NULL) return; /* out of memory; half-close */
  crpc_health *h = w->h;
  pthread_mutex_lock(&h->mu);
  if (w->service == NULL && !w->finished) {
    w->service = dup_str(req->service != NULL ? req->service : "");
    if (w->service == NULL) {
      w->finished = true;
      crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (h->shut_down) {
      end_locked(h, w); /* arrived during shutdown: final status, end */
    } else {
      link_locked(h, w);
      push_locked(h, w);
    }
  }
  pthread_mutex_unlock(&h->mu);
}

static void watch_send_ready(crpc_server_call *call, void *state) {
  (void)call;
  watcher *w = state;
  if (w == NULL) return;
  pthread_mutex_lock(&w->h->mu);
  if (w->want) push_locked(w->h, w);
  pthread_mutex_unlock(&w->h->mu);
}

static void watch_cancel(crpc_server_call *call, const crpc_cause *cause,
                         void *state) {
  watcher *w = state;
  if (w == NULL) return; /* finished in watch_start */
  pthread_mutex_lock(&w->h->mu);
  unlink_locked(w->h, w);
  if (!w->finished) {
    w->finished = true;
    crpc_server_call_finish(call, cause->code, NULL);
  }
  pthread_mutex_unlock(&w->h->mu);
}

static void watch_done(crpc_server_call *call, void *state) {
  (void)call;
  watcher *w = state;
  if (w == NULL) return;
  pthread_mutex_lock(&w->h->mu);
  unlink_locked(w->h, w);
  pthread_mutex_unlock(&w->h->mu);
  free(w->service);
  free(w);
}

static const grpc_health_v1_health_watch_reactor watch_reactor = {
    .on_start = watch_start,
    .on_message = watch_message,
    .on_send_ready = watch_send_ready,
    .on_cancel = watch_cancel,
    .on_done = watch_done,
};

/* ---- lifetime ---------------------------------------------------------- */

static void health_free(crpc_health *h) {
  for (size_t i = 0; i < h->n_entries; i++) free(h->entries[i].name);
  free(h->entries);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

static void on_server_event(crpc_server *server, crpc_server_event event,
                            void *user_data) {
  (void)server;
  crpc_health *h = user_data;
  if (event == CRPC_SERVER_FREED) {
    health_free(h);
    return;
  }
  if (event != CRPC_SERVER_SHUTDOWN_STARTED) return;
  crpc_health_drain(h);
  pthread_mutex_lock(&h->mu);
  h->shut_down = true;
  while (h->watchers != NULL) end_locked(h, h->watchers);
  pthread_mutex_unlock(&h->mu);
}

crpc_health *crpc_health_service_add(crpc_server *server, crpc_code *code) {
  crpc_code c = CRPC_RESOURCE_EXHAUSTED;
  crpc_health *h = calloc(1, sizeof(*h));
  if (h != NULL) {
    pthread_mutex_init(&h->mu, NULL);
    h->handlers.user_data = h;
    h->handlers.check = check;
    h->handlers.watch = &watch_reactor;
    c = crpc_health_set_status(h, "", CRPC_HEALTH_SERVING);
    /* The hook first: from here on the server frees h, even if the
     * registration below fails halfway (a registered method may point at
     * it). */
    if (c == CRPC_OK) c = crpc_server_add_hook(server, on_server_event, h);
    if (c != CRPC_OK) {
      health_free(h);
      h = NULL;
    }
  }
  if (h != NULL) {
    c = grpc_health_v1_health_register_async_handlers(server, &h->handlers);
    if (c != CRPC_OK) h = NULL;
  }
  if (code != NULL) *code = c;
  return h;
}

/* ---- the setters -------------------------------------------------------- */

crpc_code crpc_health_set_status(crpc_health *h, const char *service,
                                 crpc_health_status status) {
  if (status != CRPC_HEALTH_SERVING && status != CRPC_HEALTH_NOT_SERVING) {
    return CRPC_INVALID_ARGUMENT;
  }
  const char *name = service != NULL ? service : "";
  crpc_code code = CRPC_OK;
  pthread_mutex_lock(&h->mu);
  health_entry *e = find_locked(h, name);
  if (h->draining) {
    code = CRPC_FAILED_PRECONDITION;
  } else if (e != NULL) {
    e->status = status;
  } else {
    if (h->n_entries == h->cap_entries) {
      size_t cap = h->cap_entries ? 2 * h->cap_entries : 8;
      health_entry *v = realloc(h->entries, cap * sizeof(*v));
      if (v != NULL) {
        h->entries = v;
        h->cap_entries = cap;
      }
    }
    char *copy = h->n_entries < h->cap_entries ? dup_str(name) : NULL;
    if (copy == NULL) {
      code = CRPC_RESOURCE_EXHAUSTED;
    } else {
      h->entries[h->n_entries++] = (health_entry){copy, status};
    }
  }
  if (code == CRPC_OK) notify_locked(h, name);
  pthread_mutex_unlock(&h->mu);
  return code;
}

crpc_code crpc_health_clear_status(crpc_health *h, const char *service) {
  const char *name = service != NULL ? service : "";
  pthread_mutex_lock(&h->mu);
  health_entry *e = find_locked(h, name);
  if (e != NULL) {
    free(e->name);
    *e = h->entries[--h->n_entries];
    notify_locked(h, name);
  }
  pthread_mutex_unlock(&h->mu);
  return e != NULL ? CRPC_OK : CRPC_NOT_FOUND;
}

crpc_health_status crpc_health_get_status(crpc_health *h,
                                          const char *service) {
  pthread_mutex_lock(&h->mu);
  crpc_health_status st = status_locked(h, service != NULL ? service : "");
  pthread_mutex_unlock(&h->mu);
  return st;
}

void crpc_health_drain(crpc_health *h) {
  pthread_mutex_lock(&h->mu);
  h->draining = true;
  for (size_t i = 0; i < h->n_entries; i++) {
    h->entries[i].status = CRPC_HEALTH_NOT_SERVING;
  }
  for (watcher *w = h->watchers; w != NULL; w = w->next) push_locked(h, w);
  pthread_mutex_unlock(&h->mu);
}
