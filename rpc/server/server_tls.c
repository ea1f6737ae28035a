/*
 * server_tls.c - TLS listeners and the client identity of mutual TLS (see
 * crpc/credentials.h). The handshake itself runs on the loop, in
 * rpc/h2/conn.c, for connections accepted on a TLS listener.
 */
#include <stdlib.h>

#include "crpc/credentials.h"
#include "rpc/server/server_internal.h"

crpc_code crpc_server_listen_tls(crpc_server *s, const char *address,
                                 const crpc_server_credentials *creds,
                                 int *port) {
  if (creds == NULL) return CRPC_INVALID_ARGUMENT;
  if (s->started) return CRPC_FAILED_PRECONDITION;
  crpc_server_credentials **refs =
      realloc(s->tls_creds, (s->n_tls_creds + 1) * sizeof(*refs));
  if (refs == NULL) return CRPC_RESOURCE_EXHAUSTED;
  s->tls_creds = refs;
  crpc_code code = crpc_server_listen(s, address, port);
  if (code != CRPC_OK) return code;
  refs[s->n_tls_creds] = crpc_tls_server_creds_ref(creds);
  s->listeners[s->n_listeners - 1].creds = refs[s->n_tls_creds];
  s->n_tls_creds++;
  return CRPC_OK;
}

void server_tls_free(crpc_server *s) {
  for (size_t i = 0; i < s->n_tls_creds; i++) {
    crpc_server_credentials_free(s->tls_creds[i]);
  }
  free(s->tls_creds);
  s->tls_creds = NULL;
  s->n_tls_creds = 0;
}

const char *crpc_server_call_peer_identity(const crpc_server_call *call) {
  const char *id = call->peer->identity;
  return id[0] != '\0' ? id : NULL;
}
