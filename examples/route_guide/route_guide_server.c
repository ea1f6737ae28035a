/*
 * route_guide_server - serves routeguide.RouteGuide on 127.0.0.1.
 *
 *   route_guide_server [--port N] [--db FILE]
 *       (defaults: 50051, examples/route_guide/route_guide_db.txt, which is
 *        where `bazel run` and the test find it)
 *
 * Prints "listening on 127.0.0.1:<port>", serves until SIGINT/SIGTERM or
 * EOF on a piped stdin, then shuts down gracefully.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpc/admin.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "examples/common/stop.h"
#include "interceptors/deadline.h"
#include "interceptors/logging.h"
#include "interceptors/metrics.h"
#include "examples/route_guide/feature_db.h"
#include "examples/route_guide/route_guide.crpc.h"

typedef Routeguide__Point Point;
typedef Routeguide__Feature Feature;
typedef Routeguide__RouteNote RouteNote;

/* One note RouteChat remembers. */
typedef struct note {
  int32_t latitude, longitude;
  char *message;
} note;

/* Shared by every call; handlers run on many threads at once. */
typedef struct server_state {
  feature_db db; /* read-only once serving */
  pthread_mutex_t mu; /* guards notes */
  note *notes;
  size_t note_count, note_cap;
} server_state;

static crpc_code get_feature(crpc_server_call *call, const crpc_ctx *ctx,
                             const Point *req, void *user_data) {
  (void)ctx;
  const server_state *s = user_data;
  const feature *f = feature_db_find(&s->db, req->latitude, req->longitude);
  Point where = ROUTEGUIDE__POINT__INIT;
  where.latitude = req->latitude;
  where.longitude = req->longitude;
  Feature reply = ROUTEGUIDE__FEATURE__INIT;
  reply.name = f ? f->name : "";
  reply.location = &where;
  return routeguide_route_guide_get_feature_server_send(call, &reply);
}

static int in_range(int32_t v, int32_t a, int32_t b) {
  return a <= b ? (a <= v && v <= b) : (b <= v && v <= a);
}

static crpc_code list_features(crpc_server_call *call, const crpc_ctx *ctx,
                               const Routeguide__Rectangle *req,
                               void *user_data) {
  (void)ctx; /* send watches it for us: it fails at once if the client left */
  const server_state *s = user_data;
  if (req->lo == NULL || req->hi == NULL)
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "rectangle needs both corners");
  for (size_t i = 0; i < s->db.count; i++) {
    const feature *f = &s->db.items[i];
    if (!in_range(f->latitude, req->lo->latitude, req->hi->latitude) ||
        !in_range(f->longitude, req->lo->longitude, req->hi->longitude))
      continue;
    Point where = ROUTEGUIDE__POINT__INIT;
    where.latitude = f->latitude;
    where.longitude = f->longitude;
    Feature out = ROUTEGUIDE__FEATURE__INIT;
    out.name = f->name;
    out.location = &where;
    crpc_code code =
        routeguide_route_guide_list_features_server_send(call, &out);
    if (code != CRPC_OK) return code; /* client gone: stop working */
  }
  return CRPC_OK;
}

static crpc_code record_route(crpc_server_call *call, const crpc_ctx *ctx,
                              void *user_data) {
  (void)ctx; /* recv returns the ctx's code if the client cancels */
  const server_state *s = user_data;
  Routeguide__RouteSummary summary = ROUTEGUIDE__ROUTE_SUMMARY__INIT;
  int64_t start = crpc_now_ns();
  double distance = 0;
  Point prev = ROUTEGUIDE__POINT__INIT;
  for (;;) {
    Point *p;
    crpc_code code = routeguide_route_guide_record_route_server_recv(call, &p);
    if (code != CRPC_OK) return code;
    if (p == NULL) break; /* the client finished sending */
    if (summary.point_count > 0)
      distance += feature_distance_m(prev.latitude, prev.longitude,
                                     p->latitude, p->longitude);
    summary.point_count++;
    if (feature_db_find(&s->db, p->latitude, p->longitude))
      summary.feature_count++;
    prev.latitude = p->latitude;
    prev.longitude = p->longitude;
    protobuf_c_message_free_unpacked(&p->base, NULL);
  }
  summary.distance = (int32_t)distance;
  summary.elapsed_time = (int32_t)((crpc_now_ns() - start) / CRPC_SECOND);
  return routeguide_route_guide_record_route_server_send(call, &summary);
}

/* Copies the messages of the notes at (lat, lon) so that they can be sent
 * without holding the lock: a send may block on a slow client, and the
 * lock is shared by every call. */
static char **notes_at(server_state *s, int32_t lat, int32_t lon,
                       size_t *count) {
  pthread_mutex_lock(&s->mu);
  char **out = calloc(s->note_count + 1, sizeof *out);
  *count = 0;
  for (size_t i = 0; out && i < s->note_count; i++)
    if (s->notes[i].latitude == lat && s->notes[i].longitude == lon)
      if ((out[*count] = strdup(s->notes[i].message)) != NULL) (*count)++;
  pthread_mutex_unlock(&s->mu);
  return out;
}

static int remember_note(server_state *s, const RouteNote *n) {
  int rc = -1;
  pthread_mutex_lock(&s->mu);
  if (s->note_count == s->note_cap) {
    size_t cap = s->note_cap ? 2 * s->note_cap : 16;
    note *grown = realloc(s->notes, cap * sizeof *grown);
    if (grown != NULL) s->notes = grown, s->note_cap = cap;
  }
  char *copy = strdup(n->message);
  if (s->note_count < s->note_cap && copy != NULL) {
    s->notes[s->note_count++] = (note){n->location->latitude,
                                       n->location->longitude, copy};
    rc = 0;
  } else {
    free(copy);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static crpc_code route_chat(crpc_server_call *call, const crpc_ctx *ctx,
                            void *user_data) {
  (void)ctx;
  server_state *s = user_data;
  for (;;) {
    RouteNote *in;
    crpc_code code = routeguide_route_guide_route_chat_server_recv(call, &in);
    if (code != CRPC_OK || in == NULL) return code;
    if (in->location == NULL) {
      protobuf_c_message_free_unpacked(&in->base, NULL);
      return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                    "a note needs a location");
    }
    size_t count;
    char **earlier = notes_at(s, in->location->latitude,
                              in->location->longitude, &count);
    if (earlier == NULL) code = CRPC_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < count; i++) {
      RouteNote out = ROUTEGUIDE__ROUTE_NOTE__INIT;
      out.location = in->location;
      out.message = earlier[i];
      if (code == CRPC_OK)
        code = routeguide_route_guide_route_chat_server_send(call, &out);
      free(earlier[i]);
    }
    free(earlier);
    if (code == CRPC_OK && remember_note(s, in) != 0)
      code = CRPC_RESOURCE_EXHAUSTED;
    protobuf_c_message_free_unpacked(&in->base, NULL);
    if (code != CRPC_OK) return code;
  }
}

int main(int argc, char **argv) {
  int port = 50051;
  const char *db_path = "examples/route_guide/route_guide_db.txt";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 0 || v > 65535) port = -1;
      else port = (int)v;
    } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
      db_path = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--port N] [--db FILE]\n", argv[0]);
      return 2;
    }
  }
  if (port < 0) {
    fprintf(stderr, "--port: expected 0..65535\n");
    return 2;
  }
  static server_state state = {.mu = PTHREAD_MUTEX_INITIALIZER};
  if (feature_db_load(db_path, &state.db) != 0) return 1;
  printf("loaded %zu features from %s\n", state.db.count, db_path);

  static const routeguide_route_guide_handlers handlers = {
      .user_data = &state,
      .get_feature = get_feature,
      .list_features = list_features,
      .record_route = record_route,
      .route_chat = route_chat,
  };
  char address[32];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  crpc_server *server = crpc_server_new(NULL);
  crpc_code code = server ? CRPC_OK : CRPC_RESOURCE_EXHAUSTED;
  if (code == CRPC_OK)
    code = routeguide_route_guide_register_handlers(server, &handlers);
  /* Health and reflection for probes and tools (README: Operating crpc). */
  if (code == CRPC_OK) code = crpc_server_add_admin_services(server, NULL);
  /* An interceptor chain, outermost first: one log line per call (stderr),
   * metrics by method and status (printed at exit), and a 30 s cap on every
   * call's deadline, which the handlers see in their ctx. */
  crpc_metrics *metrics = crpc_metrics_new();
  const crpc_deadline_options cap = {.max_timeout_ns = 30 * CRPC_SECOND};
  const crpc_server_interceptor chain[] = {
      crpc_logging_server(NULL),
      crpc_metrics_server(metrics),
      crpc_deadline_server(&cap),
  };
  for (size_t i = 0; code == CRPC_OK && i < sizeof chain / sizeof chain[0];
       i++) {
    code = metrics ? crpc_server_add_interceptor(server, &chain[i])
                   : CRPC_RESOURCE_EXHAUSTED;
  }
  if (code == CRPC_OK) code = crpc_server_listen(server, address, &port);
  if (code == CRPC_OK) code = crpc_server_start(server);
  if (code != CRPC_OK) {
    fprintf(stderr, "cannot serve on %s: %s\n", address, crpc_code_name(code));
    crpc_server_free(server);
    crpc_metrics_free(metrics);
    feature_db_free(&state.db);
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", port);
  fflush(stdout);

  /* Serve until SIGINT/SIGTERM or EOF on a piped stdin (stop.h), then
   * give calls still running one second. */
  code = example_serve(server, 1 * CRPC_SECOND);
  crpc_server_free(server); /* no handler runs after this: state is ours */
  crpc_metrics_write_prometheus(metrics, stdout);
  crpc_metrics_free(metrics);
  for (size_t i = 0; i < state.note_count; i++) free(state.notes[i].message);
  free(state.notes);
  feature_db_free(&state.db);
  return code == CRPC_OK ? 0 : 1;
}
