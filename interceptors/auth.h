/*
 * interceptors/auth.h - bearer tokens and API keys checked by a callback.
 *
 * Server: takes "authorization: Bearer <token>" or, if absent, the API key
 * header (default "x-api-key") and asks check(). No credential ->
 * UNAUTHENTICATED without calling it. check() returns CRPC_OK (the call
 * goes on), CRPC_UNAUTHENTICATED (bad credential) or
 * CRPC_PERMISSION_DENIED (valid, not allowed this method); any other code
 * is treated as UNAUTHENTICATED. The handler never runs unless CRPC_OK.
 * Client: adds "authorization: Bearer <token>" to every call.
 * `opts` / `token` are borrowed: they must outlive the server / channel.
 */
#ifndef CRPC_INTERCEPTORS_AUTH_H
#define CRPC_INTERCEPTORS_AUTH_H

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum crpc_auth_kind { CRPC_AUTH_BEARER = 0, CRPC_AUTH_API_KEY = 1 } crpc_auth_kind;

/* Any handler thread, concurrently. `credential` is valid during the call. */
typedef crpc_code (*crpc_auth_check_fn)(void *user_data, const char *method,
                                        crpc_auth_kind kind,
                                        const char *credential);

typedef struct crpc_auth_options {
  crpc_auth_check_fn check;
  void *user_data;
  const char *api_key_header; /* NULL: "x-api-key" */
} crpc_auth_options;

crpc_server_interceptor crpc_auth_server(const crpc_auth_options *opts);
crpc_client_interceptor crpc_auth_client_bearer(const char *token);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_AUTH_H */
