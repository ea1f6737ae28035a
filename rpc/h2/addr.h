/*
 * rpc/h2/addr.h - addresses and sockets for the HTTP/2 transport (internal).
 *
 * Targets are "host:port" (a name, an IPv4 literal or "[IPv6]"), or
 * "unix:/path". Parsing is pure; resolving, listening and connecting make
 * system calls. Every fd returned is non-blocking and close-on-exec.
 * Errors are a crpc_code plus a sentence in a caller buffer (never errno).
 */
#ifndef CRPC_H2_ADDR_H
#define CRPC_H2_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "crpc/ctx.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_H2_ERR_MAX 160
/* Longest textual peer ("ipv6:[...]:65535" or "unix:" + sun_path). */
#define CRPC_H2_PEER_MAX 128

typedef struct crpc_h2_addr {
  bool is_unix;
  char host[256];      /* without brackets; empty for unix */
  char port[8];        /* decimal; empty for unix */
  char path[108];      /* unix socket path */
  char authority[272]; /* host:port as :authority ("localhost" for unix) */
} crpc_h2_addr;

/* Parses target into *out. CRPC_OK or CRPC_INVALID_ARGUMENT (why in err). */
crpc_code crpc_h2_addr_parse(const char *target, crpc_h2_addr *out,
                             char err[CRPC_H2_ERR_MAX]);

/* Binds and listens on addr; *fd is a non-blocking listening socket, *port
 * the bound TCP port (0 for unix). CRPC_OK or CRPC_UNAVAILABLE (why in err).
 */
crpc_code crpc_h2_listen(const crpc_h2_addr *addr, int *fd, int *port,
                         char err[CRPC_H2_ERR_MAX]);

/* Resolves and connects to addr, trying each resolved address in turn,
 * bounded by ctx (a done ctx aborts at once with its code). *fd is a
 * connected non-blocking socket (TCP_NODELAY set). CRPC_OK, CRPC_UNAVAILABLE
 * (why in err) or the ctx's code. */
crpc_code crpc_h2_connect(const crpc_h2_addr *addr, const crpc_ctx *ctx,
                          int *fd, char err[CRPC_H2_ERR_MAX]);

/* Connects to one resolved address (TCP or unix), bounded by ctx. *fd is a
 * connected non-blocking socket (TCP_NODELAY set). CRPC_OK,
 * CRPC_UNAVAILABLE (why in err, naming the address) or the ctx's code. */
crpc_code crpc_h2_connect_sockaddr(const struct sockaddr *sa, socklen_t len,
                                   const crpc_ctx *ctx, int *fd,
                                   char err[CRPC_H2_ERR_MAX]);

/* Formats a socket address as gRPC peer text ("ipv4:1.2.3.4:5",
 * "ipv6:[::1]:5", "unix:/path"). */
void crpc_h2_format_peer(const struct sockaddr *sa, socklen_t len,
                         char out[CRPC_H2_PEER_MAX]);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_H2_ADDR_H */
