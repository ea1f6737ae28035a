/*
 * tracing.c - trace id from metadata or made, on the ctx, forwarded (see
 * tracing.h).
 */
#include "interceptors/tracing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char trace_key = 0; /* ctx value key: its address */

const char *crpc_trace_id(const crpc_ctx *ctx) {
  return crpc_ctx_value(ctx, &trace_key);
}

static bool valid_id(const uint8_t *v, size_t n) {
  if (n == 0 || n > CRPC_TRACE_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = (char)v[i];
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

static void make_id(char out[33]) {
  unsigned char r[16];
  if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
    /* No entropy: time and an address, still unique enough. */
    int64_t t = crpc_now_ns();
    uintptr_t a = (uintptr_t)out;
    memset(r, 0, sizeof(r));
    memcpy(r, &t, sizeof(t));
    memcpy(r + 8, &a, sizeof(a) < 8 ? sizeof(a) : 8);
  }
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static crpc_code server_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const crpc_server_call_info *info,
                             crpc_server_next *next, void *user_data) {
  (void)info;
  (void)user_data;
  crpc_metadata_entry e;
  char *id;
  if (crpc_metadata_get(crpc_server_call_request_metadata(call),
                        CRPC_TRACE_HEADER, &e) &&
      valid_id(e.value, e.value_len)) {
    id = strndup((const char *)e.value, e.value_len);
  } else {
    id = malloc(33);
    if (id != NULL) make_id(id);
  }
  if (id == NULL) return crpc_server_next_call(next, ctx);
  crpc_metadata_add_str(crpc_server_call_response_headers(call),
                        CRPC_TRACE_HEADER, id);
  crpc_ctx *traced = crpc_ctx_with_value(ctx, &trace_key, id, free);
  if (traced == NULL) {
    free(id);
    return crpc_server_next_call(next, ctx);
  }
  crpc_code code = crpc_server_next_call(next, traced);
  crpc_ctx_release(traced);
  return code;
}

static crpc_code client_start(const crpc_ctx *ctx, crpc_client_call_info *info,
                              crpc_metadata *md, crpc_client_next *next,
                              void *user_data) {
  (void)info;
  (void)user_data;
  const char *id = crpc_trace_id(ctx);
  if (id != NULL) {
    crpc_metadata_remove(md, CRPC_TRACE_HEADER);
    crpc_code rc = crpc_metadata_add_str(md, CRPC_TRACE_HEADER, id);
    if (rc != CRPC_OK) return rc;
  }
  return crpc_client_next_start(next, ctx, md);
}

crpc_server_interceptor crpc_tracing_server(void) {
  crpc_server_interceptor i = {.name = "tracing", .call = server_call};
  return i;
}

crpc_client_interceptor crpc_tracing_client(void) {
  crpc_client_interceptor i = {.name = "tracing", .start = client_start};
  return i;
}
