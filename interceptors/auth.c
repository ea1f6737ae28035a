/*
 * auth.c - bearer token / API key check (see auth.h).
 */
#include "interceptors/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static crpc_code server_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const crpc_server_call_info *info,
                             crpc_server_next *next, void *user_data) {
  const crpc_auth_options *o = user_data;
  const crpc_metadata *md = crpc_server_call_request_metadata(call);
  crpc_metadata_entry e;
  const char *cred = NULL;
  crpc_auth_kind kind = CRPC_AUTH_BEARER;
  if (crpc_metadata_get(md, "authorization", &e)) {
    const char *v = (const char *)e.value;
    if (strncasecmp(v, "Bearer ", 7) != 0 || v[7] == '\0') {
      return crpc_server_call_error(call, CRPC_UNAUTHENTICATED,
                                    "authorization is not a bearer token");
    }
    cred = v + 7;
  } else if (crpc_metadata_get(
                 md, o->api_key_header ? o->api_key_header : "x-api-key",
                 &e) &&
             e.value_len > 0) {
    kind = CRPC_AUTH_API_KEY;
    cred = (const char *)e.value;
  }
  if (cred == NULL) {
    return crpc_server_call_error(call, CRPC_UNAUTHENTICATED,
                                  "missing credentials");
  }
  crpc_code verdict = o->check(o->user_data, info->method, kind, cred);
  if (verdict == CRPC_PERMISSION_DENIED) {
    return crpc_server_call_error(call, CRPC_PERMISSION_DENIED,
                                  "permission denied for %s", info->method);
  }
  if (verdict != CRPC_OK) {
    return crpc_server_call_error(call, CRPC_UNAUTHENTICATED,
                                  "invalid credentials");
  }
  return crpc_server_next_call(next, ctx);
}

static crpc_code client_start(const crpc_ctx *ctx, crpc_client_call_info *info,
                              crpc_metadata *md, crpc_client_next *next,
                              void *user_data) {
  (void)info;
  char buf[1024];
  snprintf(buf, sizeof(buf), "Bearer %s", (const char *)user_data);
  crpc_metadata_remove(md, "authorization");
  crpc_code rc = crpc_metadata_add_str(md, "authorization", buf);
  if (rc != CRPC_OK) return rc;
  return crpc_client_next_start(next, ctx, md);
}

crpc_server_interceptor crpc_auth_server(const crpc_auth_options *o) {
  crpc_server_interceptor i = {.name = "auth",
                               .call = server_call,
                               .user_data = (void *)o};
  return i;
}

crpc_client_interceptor crpc_auth_client_bearer(const char *token) {
  crpc_client_interceptor i = {.name = "auth-bearer",
                               .start = client_start,
                               .user_data = (void *)token};
  return i;
}
