/*
 * addr.c - target parsing, listening and ctx-bounded connecting.
 */
#include "rpc/h2/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Truncating is fine for an error sentence; vsnprintf keeps the compiler
 * from flagging it. */
static crpc_code fail(char *err, crpc_code code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, CRPC_H2_ERR_MAX, fmt, ap);
  va_end(ap);
  return code;
}

crpc_code crpc_h2_addr_parse(const char *target, crpc_h2_addr *out,
                             char err[CRPC_H2_ERR_MAX]) {
  memset(out, 0, sizeof(*out));
  if (target == NULL || *target == '\0') {
    return fail(err, CRPC_INVALID_ARGUMENT, "empty address%s%s", "", "");
  }
  if (strncmp(target, "unix:", 5) == 0) {
    const char *path = target + 5;
    if (*path == '\0' || strlen(path) >= sizeof(out->path)) {
      return fail(err, CRPC_INVALID_ARGUMENT,
                  "bad unix socket path in \"%s\"%s", target, "");
    }
    out->is_unix = true;
    strcpy(out->path, path);
    strcpy(out->authority, "localhost");
    return CRPC_OK;
  }
  const char *host = target, *host_end, *colon;
  if (*target == '[') {
    host = target + 1;
    host_end = strchr(host, ']');
    if (host_end == NULL || host_end[1] != ':') {
      return fail(err, CRPC_INVALID_ARGUMENT, "\"%s\": expected [ipv6]:port%s",
                  target, "");
    }
    colon = host_end + 1;
  } else {
    colon = strrchr(target, ':');
    if (colon == NULL || memchr(target, ':', (size_t)(colon - target))) {
      return fail(err, CRPC_INVALID_ARGUMENT,
                  "\"%s\": expected host:port, [ipv6]:port or unix:/path%s",
                  target, "");
    }
    host_end = colon;
  }
  size_t host_len = (size_t)(host_end - host);
  const char *port = colon + 1;
  size_t port_len = strlen(port);
  if (host_len == 0 || host_len >= sizeof(out->host) || port_len == 0 ||
      port_len > 5 || strspn(port, "0123456789") != port_len ||
      atoi(port) > 65535) {
    return fail(err, CRPC_INVALID_ARGUMENT, "\"%s\": bad host or port%s",
                target, "");
  }
  memcpy(out->host, host, host_len);
  memcpy(out->port, port, port_len);
  snprintf(out->authority, sizeof(out->authority), "%s", target);
  return CRPC_OK;
}

/* getaddrinfo for addr; caller frees with freeaddrinfo. */
static crpc_code resolve(const crpc_h2_addr *addr, bool passive,
                         struct addrinfo **res, char *err) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
  int rc = getaddrinfo(addr->host, addr->port, &hints, res);
  if (rc != 0 && !passive) {
    /* AI_ADDRCONFIG hides loopback on hosts with no other address. */
    hints.ai_flags = 0;
    rc = getaddrinfo(addr->host, addr->port, &hints, res);
  }
  if (rc != 0) {
    return fail(err, CRPC_UNAVAILABLE, "cannot resolve %s: %s", addr->host,
                gai_strerror(rc));
  }
  return CRPC_OK;
}

static void unix_sockaddr(const crpc_h2_addr *addr, struct sockaddr_un *sun) {
  memset(sun, 0, sizeof(*sun));
  sun->sun_family = AF_UNIX;
  strcpy(sun->sun_path, addr->path);
}

crpc_code crpc_h2_listen(const crpc_h2_addr *addr, int *fd_out, int *port,
                         char err[CRPC_H2_ERR_MAX]) {
  *fd_out = -1;
  if (port != NULL) *port = 0;
  if (addr->is_unix) {
    struct sockaddr_un sun;
    unix_sockaddr(addr, &sun);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return fail(err, CRPC_UNAVAILABLE, "socket: %s%s", strerror(errno), "");
    /* A stale socket file from an earlier run would make bind fail. */
    unlink(addr->path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        listen(fd, 1024) != 0) {
      int e = errno;
      close(fd);
      return fail(err, CRPC_UNAVAILABLE, "bind/listen %s: %s", addr->path,
                  strerror(e));
    }
    *fd_out = fd;
    return CRPC_OK;
  }
  struct addrinfo *res;
  crpc_code code = resolve(addr, true, &res, err);
  if (code != CRPC_OK) return code;
  int last_errno = 0;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
      last_errno = errno;
      close(fd);
      continue;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (port != NULL && getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
      *port = ss.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    *fd_out = fd;
    freeaddrinfo(res);
    return CRPC_OK;
  }
  freeaddrinfo(res);
  return fail(err, CRPC_UNAVAILABLE, "bind/listen %s: %s", addr->authority,
              strerror(last_errno));
}

/* Non-blocking connect to one address, waiting ctx-aware for completion. */
static crpc_code connect_one(int family, const struct sockaddr *sa,
                             socklen_t len, const crpc_ctx *ctx, int *fd_out,
                             int *err_no) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err_no = errno;
    return CRPC_UNAVAILABLE;
  }
  if (connect(fd, sa, len) != 0) {
    /* EAGAIN is a failure, not "in progress": on a unix socket it means
     * the listener's queue is full, and the socket then polls writable
     * without ever being connected. */
    if (errno != EINPROGRESS) {
      *err_no = errno;
      close(fd);
      return CRPC_UNAVAILABLE;
    }
    short revents = 0;
    crpc_code code = crpc_ctx_wait_fd(ctx, fd, POLLOUT, &revents);
    if (code != CRPC_OK) {
      close(fd);
      *err_no = ECANCELED;
      return code;
    }
    int so_error = 0;
    socklen_t sl = sizeof(so_error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &sl);
    if (so_error != 0) {
      *err_no = so_error;
      close(fd);
      return CRPC_UNAVAILABLE;
    }
  }
  if (family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  *fd_out = fd;
  return CRPC_OK;
}

crpc_code crpc_h2_connect(const crpc_h2_addr *addr, const crpc_ctx *ctx,
                          int *fd, char err[CRPC_H2_ERR_MAX]) {
  *fd = -1;
  crpc_code code = crpc_ctx_err(ctx);
  if (code != CRPC_OK) {
    return fail(err, code, "context done before connecting%s%s", "", "");
  }
  int err_no = 0;
  if (addr->is_unix) {
    struct sockaddr_un sun;
    unix_sockaddr(addr, &sun);
    code = connect_one(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), ctx, fd,
                       &err_no);
    if (code == CRPC_UNAVAILABLE) {
      fail(err, code, "connect %s: %s", addr->path, strerror(err_no));
    }
    return code;
  }
  /* getaddrinfo cannot be interrupted; numeric hosts resolve without I/O. */
  struct addrinfo *res;
  code = resolve(addr, false, &res, err);
  if (code != CRPC_OK) return code;
  code = CRPC_UNAVAILABLE;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    code = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, ctx, fd,
                       &err_no);
    if (code != CRPC_UNAVAILABLE) break; /* connected, or ctx done */
  }
  freeaddrinfo(res);
  if (code == CRPC_UNAVAILABLE) {
    fail(err, code, "connect %s: %s", addr->authority, strerror(err_no));
  } else if (code != CRPC_OK) {
    fail(err, code, "context done while connecting to %s%s", addr->authority,
         "");
  }
  return code;
}

crpc_code crpc_h2_connect_sockaddr(const struct sockaddr *sa, socklen_t len,
                                   const crpc_ctx *ctx, int *fd,
                                   char err[CRPC_H2_ERR_MAX]) {
  *fd = -1;
  char name[CRPC_H2_PEER_MAX];
  crpc_h2_format_peer(sa, len, name);
  crpc_code code = crpc_ctx_err(ctx);
  if (code != CRPC_OK) {
    return fail(err, code, "context done before connecting to %s%s", name, "");
  }
  int err_no = 0;
  code = connect_one(sa->sa_family, sa, len, ctx, fd, &err_no);
  if (code == CRPC_UNAVAILABLE) {
    fail(err, code, "connect %s: %s", name, strerror(err_no));
  } else if (code != CRPC_OK) {
    fail(err, code, "context done while connecting to %s%s", name, "");
  }
  return code;
}

void crpc_h2_format_peer(const struct sockaddr *sa, socklen_t len,
                         char out[CRPC_H2_PEER_MAX]) {
  char ip[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    snprintf(out, CRPC_H2_PEER_MAX, "ipv4:%s:%u", ip, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    snprintf(out, CRPC_H2_PEER_MAX, "ipv6:[%s]:%u", ip, ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? len - offsetof(struct sockaddr_un, sun_path)
                   : 0;
    snprintf(out, CRPC_H2_PEER_MAX, "unix:%.*s", (int)strnlen(sun->sun_path, n),
             sun->sun_path);
  } else {
    snprintf(out, CRPC_H2_PEER_MAX, "unknown");
  }
}
