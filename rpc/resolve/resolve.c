/*
 * resolve.c - gRPC target syntax and ctx-bounded DNS lookups.
 */
#include "rpc/resolve/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static crpc_code fail(char *err, crpc_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static crpc_code fail(char *err, crpc_code code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, CRPC_RESOLVE_ERR_MAX, fmt, ap);
  va_end(ap);
  return code;
}

static bool valid_port(const char *p, size_t n) {
  return n > 0 && n <= 5 && strspn(p, "0123456789") >= n &&
         atoi(p) <= 65535;
}

/* Splits "host[:port]" / "[v6][:port]" (len bytes) into host and port
 * (default 443). require_port: a bare "host:port" target must say it.
 * bare_v6: an unbracketed item is an IPv6 address with no port. */
static crpc_code split_host_port(const char *s, size_t len, char *host,
                                 size_t host_cap, char port[8],
                                 bool require_port, bool bare_v6,
                                 char *err) {
  const char *host_start = s, *host_end, *port_start = NULL;
  if (bare_v6 && (len == 0 || s[0] != '[')) {
    host_end = s + len; /* "ipv6:::1": an address without a port */
  } else if (len > 0 && s[0] == '[') {
    host_start = s + 1;
    host_end = memchr(host_start, ']', len - 1);
    if (host_end == NULL) {
      return fail(err, CRPC_INVALID_ARGUMENT, "\"%.*s\": missing ']'",
                  (int)len, s);
    }
    size_t rest = len - (size_t)(host_end + 1 - s);
    if (rest > 0) {
      if (host_end[1] != ':') {
        return fail(err, CRPC_INVALID_ARGUMENT,
                    "\"%.*s\": expected [ipv6]:port", (int)len, s);
      }
      port_start = host_end + 2;
    }
  } else {
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++) {
      if (s[i] == ':') {
        if (colon != NULL) {
          return fail(err, CRPC_INVALID_ARGUMENT,
                      "\"%.*s\": an IPv6 address needs [brackets]", (int)len,
                      s);
        }
        colon = s + i;
      }
    }
    host_end = colon != NULL ? colon : s + len;
    if (colon != NULL) port_start = colon + 1;
  }
  size_t host_len = (size_t)(host_end - host_start);
  if (host_len == 0 || host_len >= host_cap) {
    return fail(err, CRPC_INVALID_ARGUMENT, "\"%.*s\": bad host", (int)len, s);
  }
  memcpy(host, host_start, host_len);
  host[host_len] = '\0';
  if (port_start == NULL) {
    if (require_port) {
      return fail(err, CRPC_INVALID_ARGUMENT,
                  "\"%.*s\": expected host:port, [ipv6]:port, dns:, ipv4:, "
                  "ipv6: or unix:",
                  (int)len, s);
    }
    strcpy(port, "443");
    return CRPC_OK;
  }
  size_t port_len = len - (size_t)(port_start - s);
  if (!valid_port(port_start, port_len)) {
    return fail(err, CRPC_INVALID_ARGUMENT, "\"%.*s\": bad port", (int)len, s);
  }
  memcpy(port, port_start, port_len);
  port[port_len] = '\0';
  return CRPC_OK;
}

static crpc_code parse_unix(const char *path, crpc_target *out, char *err) {
  /* "unix:///abs" and "unix:/abs" name the same file. */
  if (strncmp(path, "//", 2) == 0) path += 2;
  struct sockaddr_un sun;
  if (*path == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
    return fail(err, CRPC_INVALID_ARGUMENT, "bad unix socket path \"%s\"",
                path);
  }
  out->addrs = calloc(1, sizeof(*out->addrs));
  if (out->addrs == NULL) return CRPC_RESOURCE_EXHAUSTED;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  strcpy(sun.sun_path, path);
  memcpy(&out->addrs[0].ss, &sun, sizeof(sun));
  out->addrs[0].len = sizeof(sun);
  out->n_addrs = 1;
  strcpy(out->authority, "localhost");
  strcpy(out->tls_name, "localhost");
  return CRPC_OK;
}

/* "a[:p],b[:p],..." of one family into out->addrs. */
static crpc_code parse_literals(const char *list, int family,
                                crpc_target *out, char *err) {
  size_t n = 1;
  for (const char *p = list; *p; p++) n += *p == ',';
  out->addrs = calloc(n, sizeof(*out->addrs));
  if (out->addrs == NULL) return CRPC_RESOURCE_EXHAUSTED;
  const char *item = list;
  for (size_t i = 0; i < n; i++) {
    const char *comma = strchr(item, ',');
    size_t len = comma != NULL ? (size_t)(comma - item) : strlen(item);
    char host[INET6_ADDRSTRLEN + 2], port[8];
    crpc_code code =
        split_host_port(item, len, host, sizeof(host), port, false,
                        family == AF_INET6, err);
    if (code != CRPC_OK) return code;
    crpc_resolved_addr *a = &out->addrs[i];
    if (family == AF_INET) {
      struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
      in->sin_family = AF_INET;
      in->sin_port = htons((uint16_t)atoi(port));
      a->len = sizeof(*in);
      if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
        return fail(err, CRPC_INVALID_ARGUMENT, "\"%s\" is not an IPv4 address",
                    host);
      }
    } else {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t)atoi(port));
      a->len = sizeof(*in6);
      if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
        return fail(err, CRPC_INVALID_ARGUMENT, "\"%s\" is not an IPv6 address",
                    host);
      }
    }
    if (i == 0) {
      snprintf(out->authority, sizeof(out->authority),
               family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
      snprintf(out->tls_name, sizeof(out->tls_name), "%s", host);
    }
    out->n_addrs++;
    item = comma != NULL ? comma + 1 : item + len;
  }
  return CRPC_OK;
}

static crpc_code parse_dns(const char *hostport, bool require_port,
                           crpc_target *out, char *err) {
  crpc_code code = split_host_port(hostport, strlen(hostport), out->host,
                                   sizeof(out->host), out->port, require_port,
                                   false, err);
  if (code != CRPC_OK) return code;
  out->is_dns = 1;
  bool v6 = strchr(out->host, ':') != NULL;
  snprintf(out->authority, sizeof(out->authority),
           v6 ? "[%s]:%s" : "%s:%s", out->host, out->port);
  snprintf(out->tls_name, sizeof(out->tls_name), "%s", out->host);
  return CRPC_OK;
}

crpc_code crpc_target_parse(const char *text, crpc_target *out,
                            char err[CRPC_RESOLVE_ERR_MAX]) {
  memset(out, 0, sizeof(*out));
  if (text == NULL || *text == '\0') {
    return fail(err, CRPC_INVALID_ARGUMENT, "empty target");
  }
  crpc_code code;
  if (strncmp(text, "unix:", 5) == 0) {
    code = parse_unix(text + 5, out, err);
  } else if (strncmp(text, "ipv4:", 5) == 0) {
    code = parse_literals(text + 5, AF_INET, out, err);
  } else if (strncmp(text, "ipv6:", 5) == 0) {
    code = parse_literals(text + 5, AF_INET6, out, err);
  } else if (strncmp(text, "dns:", 4) == 0) {
    const char *rest = text + 4;
    if (strncmp(rest, "//", 2) == 0) {
      if (rest[2] != '/') {
        return fail(err, CRPC_INVALID_ARGUMENT,
                    "\"%s\": a DNS server authority is not supported (use "
                    "dns:///host:port)",
                    text);
      }
      rest += 3;
    }
    code = parse_dns(rest, false, out, err);
  } else {
    code = parse_dns(text, true, out, err);
  }
  if (code != CRPC_OK) crpc_target_destroy(out);
  return code;
}

void crpc_target_destroy(crpc_target *target) {
  if (target == NULL) return;
  free(target->addrs);
  target->addrs = NULL;
  target->n_addrs = 0;
}

/* ---- ctx-bounded getaddrinfo -------------------------------------------- */

/* One lookup, shared by the waiting caller and the lookup thread; the last
 * of the two to let go frees it. */
typedef struct lookup {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int refs; /* mu */
  bool done;
  int rc;
  struct addrinfo *res;
  char host[256], port[8];
} lookup;

static atomic_int g_inflight;

int crpc_resolve_inflight(void) { return atomic_load(&g_inflight); }

static void lookup_unref(lookup *l) {
  pthread_mutex_lock(&l->mu);
  bool last = --l->refs == 0;
  pthread_mutex_unlock(&l->mu);
  if (!last) return;
  if (l->res != NULL) freeaddrinfo(l->res);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cond);
  free(l);
}

static int run_getaddrinfo(const char *host, const char *port,
                           struct addrinfo **res) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  int rc = getaddrinfo(host, port, &hints, res);
  if (rc != 0) {
    /* AI_ADDRCONFIG hides loopback on hosts with no other address. */
    hints.ai_flags = 0;
    rc = getaddrinfo(host, port, &hints, res);
  }
  return rc;
}

static void *lookup_main(void *arg) {
  lookup *l = arg;
  struct addrinfo *res = NULL;
  int rc = run_getaddrinfo(l->host, l->port, &res);
  pthread_mutex_lock(&l->mu);
  l->done = true;
  l->rc = rc;
  l->res = res;
  pthread_cond_broadcast(&l->cond);
  pthread_mutex_unlock(&l->mu);
  lookup_unref(l);
  atomic_fetch_sub(&g_inflight, 1);
  return NULL;
}

static crpc_code copy_results(const struct addrinfo *res,
                              crpc_resolved_addr **addrs, size_t *n) {
  size_t count = 0;
  for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) count++;
  *addrs = calloc(count ? count : 1, sizeof(**addrs));
  if (*addrs == NULL) return CRPC_RESOURCE_EXHAUSTED;
  *n = 0;
  for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof((*addrs)[0].ss)) continue;
    memcpy(&(*addrs)[*n].ss, ai->ai_addr, ai->ai_addrlen);
    (*addrs)[*n].len = ai->ai_addrlen;
    (*n)++;
  }
  return CRPC_OK;
}

/* A literal IP resolves without any lookup (and without a thread). */
static bool resolve_numeric(const crpc_target *t, struct addrinfo **res) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  return getaddrinfo(t->host, t->port, &hints, res) == 0;
}

static crpc_code resolve_dns(const crpc_target *t, const crpc_ctx *ctx,
                             crpc_resolved_addr **addrs, size_t *n,
                             char *err) {
  struct addrinfo *res = NULL;
  if (resolve_numeric(t, &res)) {
    crpc_code code = copy_results(res, addrs, n);
    freeaddrinfo(res);
    return code;
  }
  lookup *l = calloc(1, sizeof(*l));
  if (l == NULL) return CRPC_RESOURCE_EXHAUSTED;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cond, NULL);
  l->refs = 2; /* the caller's, the thread's */
  snprintf(l->host, sizeof(l->host), "%s", t->host);
  snprintf(l->port, sizeof(l->port), "%s", t->port);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  atomic_fetch_add(&g_inflight, 1);
  int rc = pthread_create(&tid, &attr, lookup_main, l);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    atomic_fetch_sub(&g_inflight, 1);
    l->refs = 1;
    lookup_unref(l);
    return fail(err, CRPC_UNAVAILABLE, "cannot resolve %s: no thread", t->host);
  }
  crpc_code code = CRPC_OK;
  pthread_mutex_lock(&l->mu);
  while (!l->done && code == CRPC_OK) {
    code = crpc_ctx_wait_cond(ctx, &l->cond, &l->mu);
  }
  bool done = l->done;
  pthread_mutex_unlock(&l->mu);
  if (!done) {
    lookup_unref(l); /* abandoned: the thread frees it when it returns */
    return fail(err, code, "context done while resolving %s", t->host);
  }
  if (l->rc != 0) {
    fail(err, CRPC_UNAVAILABLE, "cannot resolve %s: %s", t->host,
         gai_strerror(l->rc));
    lookup_unref(l);
    return CRPC_UNAVAILABLE;
  }
  code = copy_results(l->res, addrs, n);
  lookup_unref(l);
  if (code == CRPC_OK && *n == 0) {
    free(*addrs);
    *addrs = NULL;
    return fail(err, CRPC_UNAVAILABLE, "%s has no usable address", t->host);
  }
  return code;
}

crpc_code crpc_target_resolve(const crpc_target *t, const crpc_ctx *ctx,
                              crpc_resolved_addr **addrs, size_t *n,
                              char err[CRPC_RESOLVE_ERR_MAX]) {
  *addrs = NULL;
  *n = 0;
  crpc_code code = crpc_ctx_err(ctx);
  if (code != CRPC_OK) {
    return fail(err, code, "context done before resolving");
  }
  if (t->is_dns) return resolve_dns(t, ctx, addrs, n, err);
  *addrs = malloc(t->n_addrs * sizeof(**addrs));
  if (*addrs == NULL) return CRPC_RESOURCE_EXHAUSTED;
  memcpy(*addrs, t->addrs, t->n_addrs * sizeof(**addrs));
  *n = t->n_addrs;
  return CRPC_OK;
}
