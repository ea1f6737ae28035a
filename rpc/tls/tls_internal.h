/*
 * rpc/tls/tls_internal.h - what credentials.c and session.c share.
 */
#ifndef CRPC_TLS_TLS_INTERNAL_H
#define CRPC_TLS_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include <stdatomic.h>

#include "rpc/tls/tls.h"

/* ALPN protocol list: one entry, "h2" (length-prefixed). */
#define CRPC_TLS_ALPN ((const unsigned char *)"\x02h2")
#define CRPC_TLS_ALPN_LEN 3u
#define CRPC_TLS_DEFAULT_HANDSHAKE_TIMEOUT (10 * CRPC_SECOND)

struct crpc_server_credentials {
  atomic_int refs;
  SSL_CTX *ssl_ctx;
  int64_t handshake_timeout_ns;
};

struct crpc_channel_credentials {
  atomic_int refs;
  SSL_CTX *ssl_ctx;
  char *override; /* server_name_override or NULL */
};

#endif /* CRPC_TLS_TLS_INTERNAL_H */
