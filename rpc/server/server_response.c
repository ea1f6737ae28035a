/*
 * server_response.c - the loop's side of a server call's response: the
 * HEADERS (":status", content type, the handler's metadata), trailers
 * (grpc-status, grpc-message, the handler's trailers) and Trailers-Only,
 * each checked against the header list size the client accepts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/h2/limits.h"
#include "rpc/log/log.h"
#include "rpc/server/server_internal.h"
#include "rpc/wire/percent.h"
#include "rpc/wire/status_map.h"

#define ACCEPT_ENCODING "identity,gzip,deflate"

/* Appends grpc-status, grpc-message and optionally the user's trailers. */
static crpc_code add_status(crpc_wire_headers *h, crpc_code code,
                            const char *msg, const crpc_metadata *user) {
  crpc_code rc = CRPC_H2_HEADER_STATIC(h, "grpc-status",
                                       crpc_wire_grpc_status_string(code));
  if (rc == CRPC_OK && msg != NULL && *msg != '\0') {
    size_t n;
    char *enc = crpc_wire_percent_encode(msg, strlen(msg), &n);
    if (enc == NULL) return CRPC_RESOURCE_EXHAUSTED;
    rc = crpc_wire_headers_add(h, "grpc-message", 12, enc, n);
    free(enc);
  }
  if (rc == CRPC_OK && user != NULL) {
    crpc_wire_error err;
    rc = crpc_wire_headers_add_metadata(h, user, &err);
    if (rc == CRPC_INVALID_ARGUMENT) {
      CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "trailers not sent: %s",
               err.message);
    }
  }
  return rc;
}

/* Static strings: copying them cost a malloc each, per call. */
static crpc_code add_response_head(crpc_wire_headers *h, int http_status) {
  crpc_code rc;
  if (http_status == 200) {
    rc = CRPC_H2_HEADER_STATIC(h, ":status", "200");
  } else {
    char st[8];
    snprintf(st, sizeof(st), "%d", http_status);
    rc = crpc_h2_headers_add(h, ":status", st);
  }
  if (rc == CRPC_OK) {
    rc = CRPC_H2_HEADER_STATIC(h, "content-type", "application/grpc");
  }
  if (rc == CRPC_OK) {
    rc = CRPC_H2_HEADER_STATIC(h, "grpc-accept-encoding", ACCEPT_ENCODING);
  }
  return rc;
}

/* True if h fits the header list size the client accepts; else false with
 * the sizes in why. Not logged: any client can advertise a tiny limit, and
 * it gets the reason in its status. */
static bool fits_client(scall *call, const crpc_wire_headers *h,
                        const char *what, char *why, size_t why_len) {
  size_t size = crpc_wire_headers_list_size(h);
  size_t limit = crpc_h2_peer_header_limit(scall_session(call));
  if (size <= limit) return true;
  snprintf(why, why_len,
           "server's response %s are %zu bytes, over the %zu the client "
           "accepts (%s)",
           what, size, limit,
           limit == CRPC_H2_MAX_SEND_HEADER_LIST
               ? "crpc's send cap"
               : "its SETTINGS_MAX_HEADER_LIST_SIZE");
  return false;
}

/* One HEADERS frame with END_STREAM carrying the status ("Trailers-Only").
 * If that is more than the client accepts, the status becomes
 * RESOURCE_EXHAUSTED and the metadata is left out.
 * Used for early errors and for calls that end without a message. */
void scall_submit_trailers_only(scall *call, int http_status, crpc_code code,
                                const char *msg, const crpc_metadata *head,
                                const crpc_metadata *trailers) {
  crpc_wire_headers h;
  crpc_wire_headers_init(&h);
  crpc_code rc = add_response_head(&h, http_status);
  crpc_wire_error err;
  if (rc == CRPC_OK && head != NULL &&
      crpc_wire_headers_add_metadata(&h, head, &err) == CRPC_INVALID_ARGUMENT) {
    code = CRPC_INTERNAL;
    msg = "handler set a reserved response header";
    trailers = NULL;
  }
  if (rc == CRPC_OK) rc = add_status(&h, code, msg, trailers);
  char why[200];
  if (rc == CRPC_OK && !fits_client(call, &h, "trailers", why, sizeof(why))) {
    crpc_wire_headers_destroy(&h);
    crpc_wire_headers_init(&h);
    rc = add_response_head(&h, http_status);
    if (rc == CRPC_OK) rc = add_status(&h, CRPC_RESOURCE_EXHAUSTED, why, NULL);
  }
  nghttp2_nv nv_buf[CRPC_H2_NV_STACK];
  nghttp2_nv *nv =
      rc == CRPC_OK ? crpc_h2_nv_from(&h, nv_buf, CRPC_H2_NV_STACK) : NULL;
  if (nv == NULL ||
      nghttp2_submit_response(scall_session(call), call->stream_id, nv, h.count,
                              NULL) != 0) {
    nghttp2_submit_rst_stream(scall_session(call), NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_INTERNAL_ERROR);
  }
  call->headers_submitted = true;
  crpc_h2_nv_free(nv, nv_buf);
  crpc_wire_headers_destroy(&h);
}

/* The response headers are more than the client accepts: the call ends
 * RESOURCE_EXHAUSTED (trailers-only, queued messages dropped: they cannot
 * go without headers) and the handler's ctx is cancelled with that cause,
 * so its next send says why. */
static void fail_oversized_headers(scall *call, const char *why) {
  pthread_mutex_lock(&call->mu);
  /* Safe to overwrite a decided status: nothing has read it yet, as
   * read_data only runs once headers are submitted. */
  free(call->final_msg);
  call->final_msg = strdup(why);
  call->final_code = CRPC_RESOURCE_EXHAUSTED;
  call->final_user_trailers = false;
  call->finished = true;
  crpc_h2_outq_clear(&call->out);
  pthread_cond_broadcast(&call->cond);
  pthread_mutex_unlock(&call->mu);
  crpc_ctx_cancel_cause(call->ctx, CRPC_RESOURCE_EXHAUSTED, CRPC_ORIGIN_LOCAL,
                        "%s", why);
  scall_submit_trailers_only(call, 200, CRPC_RESOURCE_EXHAUSTED, why, NULL,
                             NULL);
}

/* Response headers followed by data from the send queue. */
void scall_submit_headers(scall *call) {
  crpc_wire_headers h;
  crpc_wire_headers_init(&h);
  crpc_code rc = add_response_head(&h, 200);
  if (rc == CRPC_OK && call->send_encoding != CRPC_WIRE_ENCODING_IDENTITY) {
    rc = CRPC_H2_HEADER_STATIC(&h, "grpc-encoding",
                               crpc_wire_encoding_name(call->send_encoding));
  }
  crpc_wire_error err;
  if (rc == CRPC_OK && call->resp_md != NULL) {
    rc = crpc_wire_headers_add_metadata(&h, call->resp_md, &err);
    if (rc == CRPC_INVALID_ARGUMENT) {
      CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER,
               "response headers not sent: %s", err.message);
      crpc_wire_headers_destroy(&h);
      crpc_wire_headers_init(&h);
      rc = add_response_head(&h, 200);
      if (rc == CRPC_OK && call->send_encoding != CRPC_WIRE_ENCODING_IDENTITY) {
        rc = crpc_h2_headers_add(&h, "grpc-encoding",
                                 crpc_wire_encoding_name(call->send_encoding));
      }
    }
  }
  char why[200];
  if (rc == CRPC_OK && !fits_client(call, &h, "headers", why, sizeof(why))) {
    crpc_wire_headers_destroy(&h);
    fail_oversized_headers(call, why);
    return;
  }
  nghttp2_nv nv_buf[CRPC_H2_NV_STACK];
  nghttp2_nv *nv =
      rc == CRPC_OK ? crpc_h2_nv_from(&h, nv_buf, CRPC_H2_NV_STACK) : NULL;
  nghttp2_data_provider prd = {.source.ptr = call,
                               .read_callback = scall_read_data};
  if (nv == NULL ||
      nghttp2_submit_response(scall_session(call), call->stream_id, nv, h.count,
                              &prd) != 0) {
    nghttp2_submit_rst_stream(scall_session(call), NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_INTERNAL_ERROR);
  }
  call->headers_submitted = true;
  crpc_h2_nv_free(nv, nv_buf);
  crpc_wire_headers_destroy(&h);
}

/* Trailers after the last DATA frame. Called from read_data. If they are
 * more than the client accepts, the status becomes RESOURCE_EXHAUSTED and
 * the handler's trailers are left out. */
void scall_submit_trailers(scall *call, crpc_code code, const char *msg,
                           bool user_trailers) {
  crpc_wire_headers h;
  crpc_wire_headers_init(&h);
  crpc_code rc =
      add_status(&h, code, msg, user_trailers ? call->trailers_md : NULL);
  char why[200];
  if (rc == CRPC_OK && !fits_client(call, &h, "trailers", why, sizeof(why))) {
    crpc_wire_headers_destroy(&h);
    crpc_wire_headers_init(&h);
    rc = add_status(&h, CRPC_RESOURCE_EXHAUSTED, why, NULL);
  }
  nghttp2_nv nv_buf[CRPC_H2_NV_STACK];
  nghttp2_nv *nv =
      rc == CRPC_OK ? crpc_h2_nv_from(&h, nv_buf, CRPC_H2_NV_STACK) : NULL;
  if (nv == NULL || nghttp2_submit_trailer(scall_session(call), call->stream_id,
                                           nv, h.count) != 0) {
    nghttp2_submit_rst_stream(scall_session(call), NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_INTERNAL_ERROR);
  }
  crpc_h2_nv_free(nv, nv_buf);
  crpc_wire_headers_destroy(&h);
}
