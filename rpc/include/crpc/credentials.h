/*
 * crpc/credentials.h - TLS (OpenSSL) for servers and channels.
 *
 * Plaintext HTTP/2 (h2c) stays the default; TLS is opted into per listener
 * (crpc_server_listen_tls) and per channel (crpc_channel_options.credentials).
 * Every TLS connection negotiates ALPN "h2" (a peer that does not offer it is
 * refused), uses TLS 1.2 or newer, and the client verifies the server's
 * certificate chain and hostname. Mutual TLS: the server asks for client
 * certificates when it has a client CA, and handlers can read the verified
 * client identity.
 *
 * Failures are values: a connection whose handshake fails ends the call
 * UNAVAILABLE with the reason in the status message ("TLS handshake with
 * localhost:443 failed: certificate verify failed (certificate has
 * expired)"). The TCP connect and the TLS handshake are bounded by the
 * call's ctx: a server that accepts but never answers makes the call end at
 * its deadline (DEADLINE_EXCEEDED) or at its cancel (CANCELLED), promptly.
 *
 * Lifetime: *_credentials_new creates, *_credentials_free releases the
 * caller's reference. A server or channel given credentials keeps its own
 * reference, so the caller may free them right after. Credentials are
 * immutable and may be shared by any number of servers and channels on any
 * threads. Free functions accept NULL.
 *
 * PEM inputs: each "file" field is a path, each "pem" field the PEM text
 * itself; give one or the other. A chain is the leaf certificate first,
 * then its intermediates.
 */
#ifndef CRPC_CREDENTIALS_H
#define CRPC_CREDENTIALS_H

#include <stdbool.h>
#include <stdint.h>

#include "crpc/server.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Size of the error buffers below (messages are truncated to fit). */
#define CRPC_CREDENTIALS_ERROR_MAX 256

typedef struct crpc_server_credentials crpc_server_credentials;
typedef struct crpc_channel_credentials crpc_channel_credentials;

typedef struct crpc_server_tls_options {
  const char *cert_chain_file; /* server certificate chain (required: */
  const char *cert_chain_pem;  /*   one of the two) */
  const char *private_key_file; /* its private key (required: one) */
  const char *private_key_pem;
  const char *client_ca_file; /* mutual TLS: CA(s) client certificates must */
  const char *client_ca_pem;  /*   chain to; both NULL: no client certs */
  bool require_client_cert;   /* with a client CA: refuse a client without a
                                 valid certificate (false: a client may send
                                 none, but one it sends must verify) */
  int64_t handshake_timeout_ns; /* 0: 10 s. A client that has not completed
                                   the handshake by then is disconnected */
} crpc_server_tls_options;

typedef struct crpc_channel_tls_options {
  const char *ca_file; /* trusted roots for the server's chain; both NULL: */
  const char *ca_pem;  /*   the system store (OpenSSL's default paths) */
  const char *cert_chain_file;  /* mutual TLS: client certificate chain */
  const char *cert_chain_pem;   /*   and key (all NULL: no client cert) */
  const char *private_key_file;
  const char *private_key_pem;
  const char *server_name_override; /* tests only: the name the server's
                                       certificate must carry (and the SNI
                                       and default :authority) instead of the
                                       target's host, like gRPC's
                                       ssl_target_name_override */
} crpc_channel_tls_options;

/* Server credentials from options. CRPC_OK with *out set, or
 * CRPC_INVALID_ARGUMENT (missing or unreadable certificate or key, key not
 * matching the certificate; why in error, if not NULL) with *out NULL, or
 * CRPC_RESOURCE_EXHAUSTED. */
crpc_code crpc_server_credentials_new(const crpc_server_tls_options *options,
                                      crpc_server_credentials **out,
                                      char error[CRPC_CREDENTIALS_ERROR_MAX]);

/* Releases the caller's reference. NULL: no-op. */
void crpc_server_credentials_free(crpc_server_credentials *creds);

/* Channel credentials from options (NULL: system roots, no client cert).
 * Results as crpc_server_credentials_new. */
crpc_code crpc_channel_credentials_new(const crpc_channel_tls_options *options,
                                       crpc_channel_credentials **out,
                                       char error[CRPC_CREDENTIALS_ERROR_MAX]);

/* Releases the caller's reference. NULL: no-op. */
void crpc_channel_credentials_free(crpc_channel_credentials *creds);

/* Like crpc_server_listen, but every connection accepted there speaks TLS
 * with creds (the server keeps a reference). Before start. Results as
 * crpc_server_listen; CRPC_INVALID_ARGUMENT if creds is NULL. A client that
 * fails the handshake (plaintext, no h2, bad or missing certificate) is
 * disconnected; it never reaches a handler. */
crpc_code crpc_server_listen_tls(crpc_server *server, const char *address,
                                 const crpc_server_credentials *creds,
                                 int *port);

/* The verified identity of the client of a mutual-TLS call: its
 * certificate's first DNS or URI subject alternative name, else its subject
 * common name. NULL on a plaintext connection or when the client sent no
 * certificate. Owned by the call; from its handler (or interceptors). */
const char *crpc_server_call_peer_identity(const crpc_server_call *call);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CREDENTIALS_H */
