/*
 * rpc/tls/tls.h - one TLS session over one non-blocking socket (internal;
 * used by rpc/h2/conn.c, the server's accept and the channel's connect).
 *
 * The SSL object reads and writes the socket itself through a small BIO
 * that uses recv/send(MSG_NOSIGNAL), so a peer that went away is an error
 * return, never a SIGPIPE. Functions return a crpc_tls_status: the socket
 * readiness the caller must wait for (WANT_READ / WANT_WRITE, which map onto
 * the loop's interest bits), EOF, or ERROR with a sentence in err.
 *
 * Lifetime: crpc_tls_server_new / crpc_tls_client_connect create; the owner
 * (the h2 conn once started) frees with crpc_tls_free, which does not close
 * the fd. One thread at a time: the connecting thread hands the session to
 * the loop thread through a loop post.
 */
#ifndef CRPC_TLS_TLS_H
#define CRPC_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/credentials.h"
#include "crpc/ctx.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_TLS_ERR_MAX 160
/* Longest peer identity kept (longer ones are truncated). */
#define CRPC_TLS_IDENTITY_MAX 256

typedef struct crpc_tls crpc_tls;

typedef enum crpc_tls_status {
  CRPC_TLS_OK = 0,     /* done, or bytes moved */
  CRPC_TLS_WANT_READ,  /* wait until the socket is readable, then retry */
  CRPC_TLS_WANT_WRITE, /* wait until the socket is writable, then retry */
  CRPC_TLS_EOF,        /* the peer closed the connection */
  CRPC_TLS_ERROR       /* fatal; why in err */
} crpc_tls_status;

/* A new reference to creds (for a listener or a channel). */
crpc_server_credentials *crpc_tls_server_creds_ref(
    const crpc_server_credentials *creds);
crpc_channel_credentials *crpc_tls_channel_creds_ref(
    const crpc_channel_credentials *creds);

/* How long a server gives a client to complete the handshake (ns). */
int64_t crpc_tls_server_creds_handshake_timeout(
    const crpc_server_credentials *creds);

/* The override name of channel creds, or NULL. */
const char *crpc_tls_channel_creds_override(
    const crpc_channel_credentials *creds);

/* A server-side session on an accepted socket, handshake not started
 * (drive it with crpc_tls_handshake). NULL if out of memory. */
crpc_tls *crpc_tls_server_new(const crpc_server_credentials *creds, int fd);

/* One non-blocking step of the server handshake: OK once it has completed
 * (ALPN h2 agreed, client certificate verified if required). */
crpc_tls_status crpc_tls_handshake(crpc_tls *tls, char err[CRPC_TLS_ERR_MAX]);

/* Client: runs the whole handshake on connected socket fd, blocking in
 * ctx-aware waits, verifying the server as `host` (or the creds' override;
 * an IP literal is checked against IP SANs). `target` names the server in
 * messages. CRPC_OK with *out set; CRPC_UNAVAILABLE (why in err); the
 * ctx's code if it ended first. Never closes fd. */
crpc_code crpc_tls_client_connect(const crpc_channel_credentials *creds,
                                  int fd, const char *host, const char *target,
                                  const crpc_ctx *ctx, crpc_tls **out,
                                  char err[CRPC_TLS_ERR_MAX]);

/* Decrypted bytes into buf: OK with *n > 0, or WANT_*, EOF, ERROR. */
crpc_tls_status crpc_tls_read(crpc_tls *tls, void *buf, size_t cap,
                              size_t *n, char err[CRPC_TLS_ERR_MAX]);

/* Encrypts and sends up to len bytes: OK with *n > 0, or WANT_*, ERROR.
 * After WANT_*, retry with the same bytes. */
crpc_tls_status crpc_tls_write(crpc_tls *tls, const void *buf, size_t len,
                               size_t *n, char err[CRPC_TLS_ERR_MAX]);

/* True if decrypted bytes are buffered inside the session (a read would
 * return them without the socket being readable). */
bool crpc_tls_pending(const crpc_tls *tls);

/* The peer certificate's identity (see crpc_server_call_peer_identity)
 * into out; "" if the peer sent no certificate. */
void crpc_tls_peer_identity(const crpc_tls *tls,
                            char out[CRPC_TLS_IDENTITY_MAX]);

/* What channelz shows of a session (rpc/channelz): *cipher, the suite's
 * standard (RFC) name in static storage (NULL before the handshake), and
 * malloc'd DER copies of this end's certificate and the peer's (NULL, 0:
 * none; the caller frees them). The session's thread. */
void crpc_tls_describe(const crpc_tls *tls, const char **cipher,
                       unsigned char **local_der, size_t *local_len,
                       unsigned char **peer_der, size_t *peer_len);

/* Sends close_notify if the session is healthy (best effort, never
 * blocks) and frees it. Does not close the fd. NULL: no-op. */
void crpc_tls_free(crpc_tls *tls);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_TLS_TLS_H */
