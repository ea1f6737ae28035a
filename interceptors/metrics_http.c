/*
 * metrics_http.c - GET /metrics over HTTP/1.1 from a thread of its own
 * (see metrics_http.h): one poll loop, non-blocking sockets, a fixed
 * table of connections, each reading its request head, then writing its
 * response, then draining what the client still sends until it closes.
 */
#include "interceptors/metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONN CRPC_METRICS_HTTP_MAX_CONNECTIONS
/* After the response: how long the client may take to close its side. */
#define DRAIN_TIMEOUT_MS 1000
/* Connections taken per wake-up, so a flood cannot starve the others. */
#define ACCEPTS_PER_ROUND 32

typedef enum conn_state { FREE = 0, READING, WRITING, DRAINING } conn_state;

typedef struct conn {
  conn_state state;
  int fd;
  int64_t opened_ns, deadline_ns;
  char req[CRPC_METRICS_HTTP_MAX_REQUEST];
  size_t req_len;
  char *resp; /* malloc'd: head and body */
  size_t resp_len, resp_off;
} conn;

struct crpc_metrics_http {
  crpc_metrics *m;
  int lfd;
  int wake[2]; /* a byte on wake[1] stops the thread */
  int port;
  pthread_t thread;
  /* Out of fds: the listener is left alone until then (no busy loop). */
  int64_t accept_paused_until;
  conn conns[MAX_CONN];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- the response ---------------------------------------------------------
 */

static const char *status_text(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Internal Server Error";
  }
}

/* Head (and body unless head_only) into c->resp. False if out of
 * memory. */
static bool set_response(conn *c, int status, const char *extra_headers,
                         const char *body, size_t body_len, bool head_only) {
  char head[256];
  int n = snprintf(
      head, sizeof(head),
      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
      "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
      status, status_text(status),
      status == 200 ? "text/plain; version=0.0.4" : "text/plain; charset=utf-8",
      body_len, extra_headers);
  if (n < 0 || (size_t)n >= sizeof(head)) return false;
  size_t len = (size_t)n + (head_only ? 0 : body_len);
  c->resp = malloc(len);
  if (c->resp == NULL) return false;
  memcpy(c->resp, head, (size_t)n);
  if (!head_only && body_len > 0) memcpy(c->resp + n, body, body_len);
  c->resp_len = len;
  c->resp_off = 0;
  return true;
}

static bool simple_response(conn *c, int status, const char *extra) {
  char body[64];
  int n = snprintf(body, sizeof(body), "%d %s\n", status, status_text(status));
  return set_response(c, status, extra, body, (size_t)n, false);
}

static bool is_tchar(char ch) {
  /* RFC 7230 token characters. */
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') ||
         (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Answers the request head c->req[0..head_len). */
static bool respond(crpc_metrics_http *h, conn *c, size_t head_len) {
  const char *p = c->req, *end = c->req + head_len;
  while (p < end && (*p == '\r' || *p == '\n')) p++; /* RFC 7230 3.5 */
  const char *line_end = memchr(p, '\n', (size_t)(end - p));
  if (line_end == NULL) line_end = end;
  if (line_end > p && line_end[-1] == '\r') line_end--;
  /* method SP request-target SP HTTP-version */
  const char *sp1 = memchr(p, ' ', (size_t)(line_end - p));
  if (sp1 == NULL || sp1 == p) return simple_response(c, 400, "");
  const char *target = sp1 + 1;
  const char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
  if (sp2 == NULL || sp2 == target) return simple_response(c, 400, "");
  const char *version = sp2 + 1;
  size_t mlen = (size_t)(sp1 - p), tlen = (size_t)(sp2 - target);
  size_t vlen = (size_t)(line_end - version);
  for (size_t i = 0; i < mlen; i++) {
    if (!is_tchar(p[i])) return simple_response(c, 400, "");
  }
  for (size_t i = 0; i < tlen; i++) {
    unsigned char ch = (unsigned char)target[i];
    if (ch <= 0x20 || ch >= 0x7f) return simple_response(c, 400, "");
  }
  if (vlen != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
      (version[7] != '0' && version[7] != '1')) {
    return simple_response(c, 400, "");
  }
  const char *q = memchr(target, '?', tlen);
  size_t plen = q != NULL ? (size_t)(q - target) : tlen;
  if (plen != 8 || memcmp(target, "/metrics", 8) != 0) {
    return simple_response(c, 404, "");
  }
  bool get = mlen == 3 && memcmp(p, "GET", 3) == 0;
  bool head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
  if (!get && !head) return simple_response(c, 405, "Allow: GET, HEAD\r\n");
  char *body = NULL;
  size_t body_len = 0;
  FILE *f = open_memstream(&body, &body_len);
  if (f == NULL) return false;
  crpc_metrics_write_prometheus(h->m, f);
  bool ok = fclose(f) == 0 && body != NULL &&
            set_response(c, 200, "", body, body_len, head);
  free(body);
  return ok;
}

/* ---- connections ----------------------------------------------------------
 */

static void conn_close(conn *c) {
  if (c->state == FREE) return;
  close(c->fd);
  free(c->resp);
  c->resp = NULL;
  c->fd = -1;
  c->req_len = 0;
  c->state = FREE;
}

static int64_t ms(int64_t n) { return n * CRPC_MILLISECOND; }

/* Writes what the socket takes; on the last byte, half-closes and drains. */
static void conn_write(conn *c, int64_t now) {
  while (c->resp_off < c->resp_len) {
    ssize_t n = send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c->resp_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    conn_close(c); /* the client went away */
    return;
  }
  free(c->resp);
  c->resp = NULL;
  /* Closing with unread request bytes would reset the connection and
   * could destroy the response in flight: wait for the client's FIN. */
  shutdown(c->fd, SHUT_WR);
  c->state = DRAINING;
  c->deadline_ns = now + ms(DRAIN_TIMEOUT_MS);
}

static const char *head_end(const char *buf, size_t len, size_t *head_len) {
  const char *e = memmem(buf, len, "\r\n\r\n", 4);
  if (e != NULL) {
    *head_len = (size_t)(e - buf) + 4;
    return e;
  }
  e = memmem(buf, len, "\n\n", 2); /* bare LF, tolerated */
  if (e != NULL) *head_len = (size_t)(e - buf) + 2;
  return e;
}

static void conn_read(crpc_metrics_http *h, conn *c, int64_t now) {
  if (c->state == DRAINING) {
    char sink[4096];
    ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
    if (n == 0 ||
        (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      conn_close(c);
    }
    return;
  }
  size_t room = sizeof(c->req) - c->req_len;
  ssize_t n = recv(c->fd, c->req + c->req_len, room, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    return;
  }
  if (n <= 0) { /* closed before a whole request, or an error */
    conn_close(c);
    return;
  }
  c->req_len += (size_t)n;
  size_t head_len = 0;
  bool ok;
  if (head_end(c->req, c->req_len, &head_len) != NULL) {
    ok = respond(h, c, head_len);
  } else if (c->req_len == sizeof(c->req)) {
    ok = simple_response(c, 431, "");
  } else {
    return; /* more to come */
  }
  if (!ok) {
    conn_close(c); /* out of memory */
    return;
  }
  c->state = WRITING;
  c->deadline_ns = now + ms(CRPC_METRICS_HTTP_WRITE_TIMEOUT_MS);
  conn_write(c, now);
}

static void accept_some(crpc_metrics_http *h, int64_t now) {
  for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
    int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        h->accept_paused_until = now + ms(100);
      }
      return; /* EAGAIN, or a transient error: poll again */
    }
    conn *slot = NULL, *oldest = NULL;
    for (int k = 0; k < MAX_CONN && slot == NULL; k++) {
      conn *c = &h->conns[k];
      if (c->state == FREE) {
        slot = c;
      } else if (oldest == NULL || c->opened_ns < oldest->opened_ns) {
        oldest = c;
      }
    }
    if (slot == NULL) { /* full: the oldest makes room */
      conn_close(oldest);
      slot = oldest;
    }
    slot->state = READING;
    slot->fd = fd;
    slot->opened_ns = now;
    slot->deadline_ns = now + ms(CRPC_METRICS_HTTP_READ_TIMEOUT_MS);
    slot->req_len = 0;
  }
}

static void *serve_loop(void *arg) {
  crpc_metrics_http *h = arg;
  struct pollfd pfd[2 + MAX_CONN];
  int who[2 + MAX_CONN];
  for (;;) {
    int64_t now = crpc_now_ns(), next = INT64_MAX;
    nfds_t n = 0;
    pfd[n++] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
    bool paused = h->accept_paused_until > now;
    if (paused) next = h->accept_paused_until;
    pfd[n++] = (struct pollfd){.fd = h->lfd, .events = paused ? 0 : POLLIN};
    for (int k = 0; k < MAX_CONN; k++) {
      conn *c = &h->conns[k];
      if (c->state == FREE) continue;
      if (c->deadline_ns <= now) { /* too slow: reading, writing or closing */
        conn_close(c);
        continue;
      }
      if (c->deadline_ns < next) next = c->deadline_ns;
      who[n] = k;
      pfd[n++] = (struct pollfd){
          .fd = c->fd, .events = c->state == WRITING ? POLLOUT : POLLIN};
    }
    int timeout = -1;
    if (next != INT64_MAX) {
      int64_t wait_ms = (next - now + CRPC_MILLISECOND - 1) / CRPC_MILLISECOND;
      timeout = wait_ms > 60000 ? 60000 : (int)wait_ms;
    }
    int r = poll(pfd, n, timeout);
    if (r < 0 && errno != EINTR) break; /* cannot happen with valid fds */
    if (r <= 0) continue;
    if (pfd[0].revents != 0) break; /* stop */
    now = crpc_now_ns();
    for (nfds_t i = 2; i < n; i++) {
      if (pfd[i].revents == 0) continue;
      conn *c = &h->conns[who[i]];
      if (c->state == WRITING) {
        if ((pfd[i].revents & (POLLERR | POLLNVAL)) != 0) {
          conn_close(c);
        } else {
          conn_write(c, now);
        }
      } else {
        conn_read(h, c, now); /* POLLHUP/POLLERR: recv says so */
      }
    }
    if ((pfd[1].revents & POLLIN) != 0) accept_some(h, now);
  }
  return NULL;
}

/* ---- the endpoint ---------------------------------------------------------
 */

/* host_port -> node (NULL: any) and service. False with err set. */
static bool split_host_port(const char *hp, char *node, size_t node_cap,
                            char *service, size_t service_cap, char *err,
                            size_t errlen) {
  const char *colon;
  const char *host = hp;
  size_t host_len;
  if (hp[0] == '[') {
    const char *close = strchr(hp, ']');
    if (close == NULL || close[1] != ':') {
      set_err(err, errlen, "\"%s\": expected [v6-address]:port", hp);
      return false;
    }
    host = hp + 1;
    host_len = (size_t)(close - host);
    colon = close + 1;
  } else {
    colon = strrchr(hp, ':');
    if (colon == NULL) {
      set_err(err, errlen, "\"%s\": expected host:port", hp);
      return false;
    }
    host_len = (size_t)(colon - hp);
    if (memchr(hp, ':', host_len) != NULL) {
      set_err(err, errlen, "\"%s\": an IPv6 address needs [brackets]", hp);
      return false;
    }
  }
  const char *port = colon + 1;
  size_t plen = strlen(port);
  long value = 0;
  for (size_t i = 0; i < plen; i++) {
    if (port[i] < '0' || port[i] > '9' || value > 65535) {
      value = -1;
      break;
    }
    value = value * 10 + (port[i] - '0');
  }
  if (plen == 0 || value < 0 || value > 65535) {
    set_err(err, errlen, "\"%s\": bad port \"%s\"", hp, port);
    return false;
  }
  if (host_len >= node_cap) {
    set_err(err, errlen, "\"%s\": host name too long", hp);
    return false;
  }
  memcpy(node, host, host_len);
  node[host_len] = '\0';
  snprintf(service, service_cap, "%ld", value);
  return true;
}

static int listen_on(const char *hp, char *err, size_t errlen) {
  char node[256], service[8];
  if (!split_host_port(hp, node, sizeof(node), service, sizeof(service), err,
                       errlen)) {
    return -1;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(node[0] != '\0' ? node : NULL, service, &hints, &res);
  if (gai != 0) {
    set_err(err, errlen, "resolve \"%s\": %s", hp, gai_strerror(gai));
    return -1;
  }
  int fd = -1, saved = 0;
  for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                a->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
      saved = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) set_err(err, errlen, "bind/listen %s: %s", hp, strerror(saved));
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
  if (ss.ss_family == AF_INET) {
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  if (ss.ss_family == AF_INET6) {
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  return 0;
}

crpc_metrics_http *crpc_metrics_http_serve(crpc_metrics *m,
                                           const char *host_port, char *err,
                                           size_t errlen) {
  set_err(err, errlen, "%s", "");
  if (m == NULL || host_port == NULL) {
    set_err(err, errlen, "metrics and host_port are required");
    return NULL;
  }
  crpc_metrics_http *h = calloc(1, sizeof(*h));
  if (h == NULL) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  h->m = m;
  for (int k = 0; k < MAX_CONN; k++) h->conns[k].fd = -1;
  h->lfd = listen_on(host_port, err, errlen);
  if (h->lfd < 0) {
    free(h);
    return NULL;
  }
  h->port = bound_port(h->lfd);
  if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    set_err(err, errlen, "pipe: %s", strerror(errno));
    close(h->lfd);
    free(h);
    return NULL;
  }
  int rc = pthread_create(&h->thread, NULL, serve_loop, h);
  if (rc != 0) {
    set_err(err, errlen, "thread: %s", strerror(rc));
    close(h->wake[0]);
    close(h->wake[1]);
    close(h->lfd);
    free(h);
    return NULL;
  }
  return h;
}

int crpc_metrics_http_port(const crpc_metrics_http *h) { return h->port; }

void crpc_metrics_http_stop(crpc_metrics_http *h) {
  if (h == NULL) return;
  char b = 1;
  while (write(h->wake[1], &b, 1) < 0 && errno == EINTR) {
  }
  pthread_join(h->thread, NULL);
  for (int k = 0; k < MAX_CONN; k++) conn_close(&h->conns[k]);
  close(h->lfd);
  close(h->wake[0]);
  close(h->wake[1]);
  free(h);
}
