/*
 * metrics.c - counters and histograms by method, code and origin (see
 * metrics.h). Methods are few and fixed: a small array searched linearly.
 */
#include "interceptors/metrics.h"

#include "interceptors/internal/metrics_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define N_CODES 17
/* Every origin of crpc/status.h, the last one included. */
#define N_ORIGINS (CRPC_ORIGIN_ADMIN + 1)

const double crpc_metrics_bucket_bounds[CRPC_METRICS_BUCKETS] = {
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005,   0.01,    0.025,  0.05,    0.1,    1.0,   10.0};

typedef struct method_stats {
  char *method;
  uint64_t by_code[N_CODES];
  crpc_metrics_histogram latency;
} method_stats;

typedef struct method_table {
  method_stats *v;
  size_t n, cap;
} method_table;

struct crpc_metrics {
  pthread_mutex_t mu;
  method_table server, client;
  uint64_t cancels[N_ORIGINS];
  uint64_t client_cancels[N_ORIGINS];
  crpc_metrics_histogram cancel_latency;
  crpc_metrics_histogram cancel_ctx_done, cancel_send_failed;
  uint64_t dropped_messages, dropped_bytes;
};

crpc_metrics *crpc_metrics_new(void) {
  crpc_metrics *m = calloc(1, sizeof(*m));
  if (m != NULL) pthread_mutex_init(&m->mu, NULL);
  return m;
}

static void table_free(method_table *t) {
  for (size_t i = 0; i < t->n; i++) free(t->v[i].method);
  free(t->v);
}

void crpc_metrics_free(crpc_metrics *m) {
  if (m == NULL) return;
  table_free(&m->server);
  table_free(&m->client);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static void hist_add(crpc_metrics_histogram *h, int64_t ns) {
  double s = (double)ns / 1e9;
  h->count++;
  h->sum_seconds += s;
  size_t b = 0;
  while (b < CRPC_METRICS_BUCKETS && s > crpc_metrics_bucket_bounds[b]) b++;
  h->buckets[b]++;
}

static void hist_merge(crpc_metrics_histogram *dst,
                       const crpc_metrics_histogram *src) {
  dst->count += src->count;
  dst->sum_seconds += src->sum_seconds;
  for (size_t b = 0; b <= CRPC_METRICS_BUCKETS; b++) {
    dst->buckets[b] += src->buckets[b];
  }
}

/* Caller holds mu. NULL if out of memory. */
static method_stats *find(method_table *t, const char *method, bool add) {
  for (size_t i = 0; i < t->n; i++) {
    if (strcmp(t->v[i].method, method) == 0) return &t->v[i];
  }
  if (!add) return NULL;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    method_stats *p = realloc(t->v, cap * sizeof(*p));
    if (p == NULL) return NULL;
    t->v = p;
    t->cap = cap;
  }
  method_stats *ms = &t->v[t->n];
  memset(ms, 0, sizeof(*ms));
  ms->method = strdup(method);
  if (ms->method == NULL) return NULL;
  t->n++;
  return ms;
}

typedef struct cancel_watch {
  _Atomic int64_t at;
} cancel_watch;

static void on_cancel(void *arg, const crpc_cause *cause) {
  (void)cause;
  cancel_watch *w = arg;
  atomic_store(&w->at, crpc_now_ns());
}

static crpc_code server_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const crpc_server_call_info *info,
                             crpc_server_next *next, void *user_data) {
  crpc_metrics *m = user_data;
  cancel_watch w;
  atomic_init(&w.at, 0);
  crpc_on_cancel reg;
  bool registered = crpc_ctx_on_cancel(ctx, &reg, on_cancel, &w);
  crpc_code code = crpc_server_next_call(next, ctx);
  int64_t end = crpc_now_ns();
  if (registered) {
    crpc_on_cancel_state st = crpc_ctx_remove_on_cancel(&reg);
    /* RUNNING: it is storing the time right now. REMOVED although done:
     * the handler woke before the callbacks ran, i.e. at once. */
    if (st == CRPC_ON_CANCEL_RUNNING) {
      while (atomic_load(&w.at) == 0) {
      }
    } else if (st == CRPC_ON_CANCEL_REMOVED && crpc_ctx_is_done(ctx)) {
      atomic_store(&w.at, end);
    }
  } else {
    atomic_store(&w.at, info->start_ns); /* done before it started */
  }
  const crpc_cause *cause = crpc_ctx_cause(ctx);
  crpc_code status = cause != NULL ? cause->code : code;
  crpc_server_cancel_stats cs;
  crpc_server_call_cancel_stats(call, &cs);
  pthread_mutex_lock(&m->mu);
  if (cs.event_ns != 0 && cs.ctx_done_ns >= cs.event_ns) {
    hist_add(&m->cancel_ctx_done, cs.ctx_done_ns - cs.event_ns);
  }
  if (cs.event_ns != 0 && cs.send_failed_ns != 0) {
    /* A send already failing when the event was recorded counts as 0. */
    hist_add(&m->cancel_send_failed, cs.send_failed_ns > cs.event_ns
                                         ? cs.send_failed_ns - cs.event_ns
                                         : 0);
  }
  m->dropped_messages += cs.dropped_messages;
  m->dropped_bytes += cs.dropped_bytes;
  method_stats *ms = find(&m->server, info->method, true);
  if (ms != NULL) {
    if ((unsigned)status < N_CODES) ms->by_code[status]++;
    hist_add(&ms->latency, end - info->start_ns);
  }
  if (cause != NULL) {
    if ((unsigned)cause->origin < N_ORIGINS) m->cancels[cause->origin]++;
    int64_t at = atomic_load(&w.at);
    hist_add(&m->cancel_latency, at != 0 && end > at ? end - at : 0);
  }
  pthread_mutex_unlock(&m->mu);
  return code;
}

crpc_server_interceptor crpc_metrics_server(crpc_metrics *m) {
  crpc_server_interceptor i = {.name = "metrics",
                               .call = server_call,
                               .user_data = m};
  return i;
}

uint64_t crpc_metrics_calls(crpc_metrics *m, const char *method,
                            crpc_code code) {
  uint64_t n = 0;
  pthread_mutex_lock(&m->mu);
  method_stats *ms = find(&m->server, method, false);
  if (ms != NULL && (unsigned)code < N_CODES) n = ms->by_code[code];
  pthread_mutex_unlock(&m->mu);
  return n;
}

uint64_t crpc_metrics_client_calls(crpc_metrics *m, const char *method,
                                   crpc_code code) {
  uint64_t n = 0;
  pthread_mutex_lock(&m->mu);
  method_stats *ms = find(&m->client, method, false);
  if (ms != NULL && (unsigned)code < N_CODES) n = ms->by_code[code];
  pthread_mutex_unlock(&m->mu);
  return n;
}

uint64_t crpc_metrics_client_cancellations(crpc_metrics *m,
                                           crpc_origin origin) {
  pthread_mutex_lock(&m->mu);
  uint64_t n = (unsigned)origin < N_ORIGINS ? m->client_cancels[origin] : 0;
  pthread_mutex_unlock(&m->mu);
  return n;
}

void icpt_metrics_client_record(crpc_metrics *m, const char *method,
                                crpc_code code, int64_t dur_ns,
                                const crpc_cause *cause) {
  pthread_mutex_lock(&m->mu);
  method_stats *ms = find(&m->client, method, true);
  if (ms != NULL) {
    if ((unsigned)code < N_CODES) ms->by_code[code]++;
    hist_add(&ms->latency, dur_ns > 0 ? dur_ns : 0);
  }
  if (cause != NULL && (unsigned)cause->origin < N_ORIGINS) {
    m->client_cancels[cause->origin]++;
  }
  pthread_mutex_unlock(&m->mu);
}

uint64_t crpc_metrics_cancellations(crpc_metrics *m, crpc_origin origin) {
  pthread_mutex_lock(&m->mu);
  uint64_t n = (unsigned)origin < N_ORIGINS ? m->cancels[origin] : 0;
  pthread_mutex_unlock(&m->mu);
  return n;
}

static void table_latency(crpc_metrics *m, method_table *t,
                          const char *method, crpc_metrics_histogram *out) {
  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < t->n; i++) {
    if (method == NULL || strcmp(t->v[i].method, method) == 0) {
      hist_merge(out, &t->v[i].latency);
    }
  }
  pthread_mutex_unlock(&m->mu);
}

void crpc_metrics_latency(crpc_metrics *m, const char *method,
                          crpc_metrics_histogram *out) {
  table_latency(m, &m->server, method, out);
}

void crpc_metrics_client_latency(crpc_metrics *m, const char *method,
                                 crpc_metrics_histogram *out) {
  table_latency(m, &m->client, method, out);
}

void crpc_metrics_cancel_latency(crpc_metrics *m,
                                 crpc_metrics_histogram *out) {
  pthread_mutex_lock(&m->mu);
  *out = m->cancel_latency;
  pthread_mutex_unlock(&m->mu);
}

void crpc_metrics_cancel_ctx_done(crpc_metrics *m,
                                  crpc_metrics_histogram *out) {
  pthread_mutex_lock(&m->mu);
  *out = m->cancel_ctx_done;
  pthread_mutex_unlock(&m->mu);
}

void crpc_metrics_cancel_send_failed(crpc_metrics *m,
                                     crpc_metrics_histogram *out) {
  pthread_mutex_lock(&m->mu);
  *out = m->cancel_send_failed;
  pthread_mutex_unlock(&m->mu);
}

void crpc_metrics_cancel_dropped(crpc_metrics *m, uint64_t *messages,
                                 uint64_t *bytes) {
  pthread_mutex_lock(&m->mu);
  *messages = m->dropped_messages;
  *bytes = m->dropped_bytes;
  pthread_mutex_unlock(&m->mu);
}

static void write_hist(FILE *out, const char *name, const char *labels,
                       const crpc_metrics_histogram *h) {
  uint64_t cum = 0;
  const char *sep = labels[0] ? "," : "";
  for (size_t b = 0; b <= CRPC_METRICS_BUCKETS; b++) {
    cum += h->buckets[b];
    if (b < CRPC_METRICS_BUCKETS) {
      fprintf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
              crpc_metrics_bucket_bounds[b], (unsigned long long)cum);
    } else {
      fprintf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
              (unsigned long long)cum);
    }
  }
  /* No "{}" for an empty label set: not every parser takes it. */
  const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
  fprintf(out, "%s_sum%s%s%s %.9f\n", name, open, labels, close,
          h->sum_seconds);
  fprintf(out, "%s_count%s%s%s %llu\n", name, open, labels, close,
          (unsigned long long)h->count);
}

/* A label value as the text format wants it: \\, \" and \n escaped. Cut
 * (whole characters) to fit cap. */
static void escape_label(const char *v, char *out, size_t cap) {
  size_t w = 0;
  for (; *v != '\0'; v++) {
    const char *rep = *v == '\\'   ? "\\\\"
                      : *v == '"'  ? "\\\""
                      : *v == '\n' ? "\\n"
                                   : NULL;
    size_t k = rep != NULL ? 2 : 1;
    if (w + k + 1 > cap) break;
    if (rep != NULL) {
      memcpy(out + w, rep, 2);
    } else {
      out[w] = *v;
    }
    w += k;
  }
  out[w] = '\0';
}

/* <side>_calls_total{method,code} and <side>_call_duration_seconds. */
static void write_side(FILE *out, const char *side, const char *what,
                       const method_table *t) {
  char method[512], name[64], labels[600];
  fprintf(out,
          "# HELP crpc_%s_calls_total %s calls by method and status code.\n"
          "# TYPE crpc_%s_calls_total counter\n",
          side, what, side);
  for (size_t i = 0; i < t->n; i++) {
    escape_label(t->v[i].method, method, sizeof(method));
    for (int c = 0; c < N_CODES; c++) {
      if (t->v[i].by_code[c] == 0) continue;
      fprintf(out, "crpc_%s_calls_total{method=\"%s\",code=\"%s\"} %llu\n",
              side, method, crpc_code_name((crpc_code)c),
              (unsigned long long)t->v[i].by_code[c]);
    }
  }
  snprintf(name, sizeof(name), "crpc_%s_call_duration_seconds", side);
  fprintf(out, "# HELP %s %s call latency.\n# TYPE %s histogram\n", name,
          what, name);
  for (size_t i = 0; i < t->n; i++) {
    escape_label(t->v[i].method, method, sizeof(method));
    snprintf(labels, sizeof(labels), "method=\"%s\"", method);
    write_hist(out, name, labels, &t->v[i].latency);
  }
}

static void write_cancels(FILE *out, const char *side, const char *help,
                          const uint64_t *cancels) {
  fprintf(out, "# HELP crpc_%s_cancellations_total %s\n"
          "# TYPE crpc_%s_cancellations_total counter\n",
          side, help, side);
  for (int o = 1; o < N_ORIGINS; o++) {
    char origin[32];
    snprintf(origin, sizeof(origin), "%s", crpc_origin_name((crpc_origin)o));
    for (char *p = origin; *p; p++) {
      if (*p == ' ') *p = '_';
    }
    fprintf(out, "crpc_%s_cancellations_total{origin=\"%s\"} %llu\n", side,
            origin, (unsigned long long)cancels[o]);
  }
}

void crpc_metrics_write_prometheus(crpc_metrics *m, FILE *out) {
  pthread_mutex_lock(&m->mu);
  write_side(out, "server", "Server", &m->server);
  write_cancels(out, "server", "Calls cancelled, by origin.", m->cancels);
  fprintf(out,
          "# HELP crpc_server_cancel_propagation_seconds From the call ctx "
          "being cancelled to the handler returning.\n"
          "# TYPE crpc_server_cancel_propagation_seconds histogram\n");
  write_hist(out, "crpc_server_cancel_propagation_seconds", "",
             &m->cancel_latency);
  fprintf(out,
          "# HELP crpc_server_cancel_ctx_done_seconds From a cancel reaching "
          "the server (RST_STREAM read, deadline due, connection lost) to "
          "the call ctx done.\n"
          "# TYPE crpc_server_cancel_ctx_done_seconds histogram\n");
  write_hist(out, "crpc_server_cancel_ctx_done_seconds", "",
             &m->cancel_ctx_done);
  fprintf(out,
          "# HELP crpc_server_cancel_send_failed_seconds From a cancel "
          "reaching the server to the handler's first failing send.\n"
          "# TYPE crpc_server_cancel_send_failed_seconds histogram\n");
  write_hist(out, "crpc_server_cancel_send_failed_seconds", "",
             &m->cancel_send_failed);
  fprintf(out,
          "# HELP crpc_server_cancel_dropped_messages_total Responses queued "
          "but never written.\n"
          "# TYPE crpc_server_cancel_dropped_messages_total counter\n"
          "crpc_server_cancel_dropped_messages_total %llu\n"
          "# HELP crpc_server_cancel_dropped_bytes_total Their bytes.\n"
          "# TYPE crpc_server_cancel_dropped_bytes_total counter\n"
          "crpc_server_cancel_dropped_bytes_total %llu\n",
          (unsigned long long)m->dropped_messages,
          (unsigned long long)m->dropped_bytes);
  write_side(out, "client", "Client", &m->client);
  write_cancels(out, "client",
                "Client calls ended by their caller's ctx, by origin.",
                m->client_cancels);
  pthread_mutex_unlock(&m->mu);
}
