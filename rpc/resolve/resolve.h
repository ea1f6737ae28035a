/*
 * rpc/resolve/resolve.h - channel targets and name resolution (internal).
 *
 * A target names where a channel's calls go, in gRPC's naming syntax
 * (grpc/doc/naming.md):
 *   host:port                 DNS name or IP literal ("[v6]:port")
 *   dns:host[:port]           the same; also dns:///host[:port]
 *   ipv4:a.b.c.d[:port][,a.b.c.d[:port],...]     literal address list
 *   ipv6:[addr][:port][,[addr][:port],...]       literal address list
 *   unix:path, unix:///abs/path                  a unix socket
 * A missing port is 443, as in gRPC. dns://authority/... (a chosen DNS
 * server) is refused with a clear error: crpc uses the system resolver.
 *
 * Resolving a DNS name runs getaddrinfo on a short-lived thread and waits
 * for it ctx-aware: a cancel or deadline returns at once with the ctx's
 * code (the abandoned lookup finishes in the background and frees itself),
 * so a dead DNS server cannot hold a call past its ctx. Literal targets
 * resolve without I/O or threads.
 */
#ifndef CRPC_RESOLVE_RESOLVE_H
#define CRPC_RESOLVE_RESOLVE_H

#include <stddef.h>
#include <sys/socket.h>

#include "crpc/ctx.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_RESOLVE_ERR_MAX 160

typedef struct crpc_resolved_addr {
  struct sockaddr_storage ss;
  socklen_t len;
} crpc_resolved_addr;

typedef struct crpc_target {
  int is_dns;      /* nonzero: resolve host/port; else addrs is the list */
  char host[256];  /* DNS: the name, without brackets */
  char port[8];    /* DNS: decimal */
  crpc_resolved_addr *addrs; /* literal targets; owned */
  size_t n_addrs;
  char authority[272]; /* :authority: host:port, first literal, "localhost" */
  char tls_name[256];  /* name a server certificate is checked against */
} crpc_target;

/* Parses text into *out (destroy with crpc_target_destroy). CRPC_OK,
 * CRPC_INVALID_ARGUMENT (why in err) or CRPC_RESOURCE_EXHAUSTED. */
crpc_code crpc_target_parse(const char *text, crpc_target *out,
                            char err[CRPC_RESOLVE_ERR_MAX]);

/* Frees what parse allocated. Idempotent; NULL: no-op. */
void crpc_target_destroy(crpc_target *target);

/* The target's addresses, in the order to try them, bounded by ctx. On
 * CRPC_OK *addrs (free()) holds *n >= 1 entries. Else CRPC_UNAVAILABLE
 * (lookup failed: why in err), CRPC_RESOURCE_EXHAUSTED, or the ctx's code
 * if it ended first. Thread-safe. */
crpc_code crpc_target_resolve(const crpc_target *target, const crpc_ctx *ctx,
                              crpc_resolved_addr **addrs, size_t *n,
                              char err[CRPC_RESOLVE_ERR_MAX]);

/* Lookups abandoned by their ctx and still running (for tests: they must
 * all end eventually). Thread-safe. */
int crpc_resolve_inflight(void);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_RESOLVE_RESOLVE_H */
