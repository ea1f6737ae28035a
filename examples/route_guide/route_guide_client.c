/*
 * route_guide_client - one call of each shape against route_guide_server.
 *
 *   route_guide_client [--target host:port]     (default localhost:50051)
 *
 * GetFeature (unary), ListFeatures (server streaming), RecordRoute (client
 * streaming), RouteChat (bidi, sending and receiving on two threads). Every
 * call runs under its own ctx with a deadline; exits 1 if any call fails.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "examples/route_guide/route_guide.crpc.h"

typedef Routeguide__Point Point;
typedef Routeguide__Feature Feature;
typedef Routeguide__RouteNote RouteNote;

/* Long enough for a loaded machine, short enough that a stuck server shows. */
#define CALL_TIMEOUT (10 * CRPC_SECOND)

static Point make_point(int32_t latitude, int32_t longitude) {
  Point p = ROUTEGUIDE__POINT__INIT;
  p.latitude = latitude;
  p.longitude = longitude;
  return p;
}

static void print_point(const Point *p) {
  printf("(%.4f, %.4f)", p->latitude / 1e7, p->longitude / 1e7);
}

/* Prints a failed call and returns 1, so callers can `return failed(...)`. */
static int failed(const char *what, crpc_code code, const crpc_status *st) {
  printf("%s failed: %s%s%s\n", what, crpc_code_name(code),
         st && st->message && *st->message ? ": " : "",
         st && st->message ? st->message : "");
  return 1;
}

static int get_feature(crpc_channel *ch, int32_t lat, int32_t lon) {
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) return 1;
  Point where = make_point(lat, lon);
  Feature *f = NULL;
  crpc_status st = {0};
  crpc_code code = routeguide_route_guide_get_feature(ch, ctx, NULL, &where,
                                                      &f, &st);
  int rc = 0;
  if (code != CRPC_OK) {
    rc = failed("GetFeature", code, &st);
  } else {
    printf("GetFeature ");
    print_point(&where);
    if (f->name[0] != '\0')
      printf(": \"%s\"\n", f->name);
    else
      printf(": no feature\n");
    protobuf_c_message_free_unpacked(&f->base, NULL);
  }
  crpc_status_clear(&st);
  crpc_ctx_release(ctx);
  return rc;
}

static int list_features(crpc_channel *ch) {
  Point lo = make_point(410000000, -745000000);
  Point hi = make_point(415000000, -740000000);
  Routeguide__Rectangle rect = ROUTEGUIDE__RECTANGLE__INIT;
  rect.lo = &lo;
  rect.hi = &hi;
  printf("ListFeatures between ");
  print_point(&lo);
  printf(" and ");
  print_point(&hi);
  printf(":\n");

  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) return 1;
  crpc_call *call = NULL;
  crpc_code code = routeguide_route_guide_list_features_start(ch, ctx, NULL,
                                                              &rect, &call);
  int n = 0;
  while (code == CRPC_OK) {
    Feature *f;
    code = routeguide_route_guide_list_features_recv(call, &f);
    if (code != CRPC_OK || f == NULL) break; /* error, or the stream ended */
    printf("  ");
    print_point(f->location);
    printf(" %s\n", f->name);
    n++;
    protobuf_c_message_free_unpacked(&f->base, NULL);
  }
  crpc_status st = {0};
  if (code == CRPC_OK) code = crpc_call_finish(call, &st);
  int rc = code == CRPC_OK ? 0 : failed("ListFeatures", code, &st);
  if (rc == 0) printf("  %d features\n", n);
  crpc_status_clear(&st);
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  return rc;
}

static int record_route(crpc_channel *ch) {
  /* A walk past five known features with three unnamed stops in between. */
  static const int32_t route[][2] = {
      {407838351, -746143763}, {408122808, -743999179},
      {408000000, -743000000}, {406109563, -742186778},
      {406337092, -740122226}, {407000000, -740000000},
      {406421967, -747727624}, {406500000, -747500000},
  };
  const int count = (int)(sizeof route / sizeof route[0]);
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) return 1;
  crpc_call *call = NULL;
  crpc_code code =
      routeguide_route_guide_record_route_start(ch, ctx, NULL, &call);
  for (int i = 0; code == CRPC_OK && i < count; i++) {
    Point p = make_point(route[i][0], route[i][1]);
    code = routeguide_route_guide_record_route_send(call, &p);
  }
  Routeguide__RouteSummary *sum = NULL;
  crpc_status st = {0};
  /* finish also reports a failed send: the server may have ended the call. */
  if (call != NULL)
    code = routeguide_route_guide_record_route_finish(call, &sum, &st);
  int rc = 0;
  if (code != CRPC_OK) {
    rc = failed("RecordRoute", code, &st);
  } else {
    printf("RecordRoute sent %d points: server counted %d points, %d "
           "features, %d m, %d s\n",
           count, sum->point_count, sum->feature_count, sum->distance,
           sum->elapsed_time);
    protobuf_c_message_free_unpacked(&sum->base, NULL);
  }
  crpc_status_clear(&st);
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  return rc;
}

/* RouteChat's sending half, on its own thread while main receives. */
typedef struct chat_sender {
  crpc_call *call;
  crpc_code code;
} chat_sender;

static void *send_notes(void *arg) {
  chat_sender *s = arg;
  static const struct { int32_t lon; const char *text; } notes[] = {
      {1, "First message"},  {2, "Second message"}, {3, "Third message"},
      {1, "Fourth message"}, {2, "Fifth message"},  {3, "Sixth message"},
  };
  s->code = CRPC_OK;
  for (size_t i = 0; s->code == CRPC_OK && i < 6; i++) {
    Point where = make_point(0, notes[i].lon * 10000000); /* lon 1, 2, 3 deg */
    RouteNote n = ROUTEGUIDE__ROUTE_NOTE__INIT;
    n.location = &where;
    n.message = (char *)notes[i].text; /* protoc-c's char*; not modified */
    s->code = routeguide_route_guide_route_chat_send(s->call, &n);
  }
  if (s->code == CRPC_OK) s->code = crpc_call_close_send(s->call);
  return NULL;
}

static int route_chat(crpc_channel *ch) {
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CALL_TIMEOUT);
  if (ctx == NULL) return 1;
  chat_sender sender = {0};
  crpc_code code =
      routeguide_route_guide_route_chat_start(ch, ctx, NULL, &sender.call);
  if (code != CRPC_OK) {
    crpc_ctx_release(ctx);
    return failed("RouteChat", code, NULL);
  }
  printf("RouteChat sent 6 notes at 3 points:\n");
  pthread_t tid;
  if (pthread_create(&tid, NULL, send_notes, &sender) != 0) {
    crpc_call_free(sender.call); /* cancels the call */
    crpc_ctx_release(ctx);
    return 1;
  }
  int n = 0;
  for (;;) {
    RouteNote *note;
    code = routeguide_route_guide_route_chat_recv(sender.call, &note);
    if (code != CRPC_OK || note == NULL) break;
    printf("  got \"%s\" at ", note->message);
    print_point(note->location);
    printf("\n");
    n++;
    protobuf_c_message_free_unpacked(&note->base, NULL);
  }
  /* A failed receive ends the call, which unblocks the sender: join is safe. */
  pthread_join(tid, NULL);
  crpc_status st = {0};
  if (code == CRPC_OK) code = sender.code;
  if (code == CRPC_OK) code = crpc_call_finish(sender.call, &st);
  int rc = code == CRPC_OK ? 0 : failed("RouteChat", code, &st);
  if (rc == 0) printf("  %d notes received\n", n);
  crpc_status_clear(&st);
  crpc_call_free(sender.call);
  crpc_ctx_release(ctx);
  return rc;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *target = "localhost:50051";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
      target = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--target host:port]\n", argv[0]);
      return 2;
    }
  }
  crpc_channel *ch = crpc_channel_new(target, NULL);
  if (ch == NULL) return 1;
  int failures = 0;
  failures += get_feature(ch, 407838351, -746143763);
  failures += get_feature(ch, 0, 0);
  failures += list_features(ch);
  failures += record_route(ch);
  failures += route_chat(ch);
  crpc_channel_free(ch);
  return failures == 0 ? 0 : 1;
}
