/*
 * cancel_samples.c - see cancel_samples.h.
 */
#include "bench/cancel_samples.h"

#include <stdio.h>
#include <stdlib.h>

static void die(const char *what) {
  fprintf(stderr, "cancel_bench: %s\n", what);
  exit(1);
}

void samples_push(samples *s, double x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 1024;
    double *v = realloc(s->v, (size_t)s->cap * sizeof(*v));
    if (v == NULL) die("out of memory");
    s->v = v;
  }
  s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest rank, as the anchors compute it: index round(p * n) - 1. */
static double pct(const samples *s, double p) {
  long i = (long)(p * s->n + 0.5) - 1;
  if (i < 0) i = 0;
  if (i >= s->n) i = s->n - 1;
  return s->v[i];
}

void samples_emit(const char *impl, const char *scenario, const char *metric,
                  samples *s) {
  if (s->n == 0) die("no samples");
  qsort(s->v, (size_t)s->n, sizeof(*s->v), cmp_double);
  double sum = 0;
  for (int i = 0; i < s->n; i++) sum += s->v[i];
  printf(
      "{\"Impl\":\"%s\",\"Scenario\":\"%s\",\"Metric\":\"%s\",\"N\":%d,"
      "\"P50\":%.3f,\"P90\":%.3f,\"P99\":%.3f,\"Max\":%.3f,\"Min\":%.3f,"
      "\"Mean\":%.3f}\n",
      impl, scenario, metric, s->n, pct(s, .5), pct(s, .9), pct(s, .99),
      s->v[s->n - 1], s->v[0], sum / s->n);
  fflush(stdout);
  free(s->v);
  *s = (samples){0};
}
