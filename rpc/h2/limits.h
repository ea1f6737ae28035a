/*
 * rpc/h2/limits.h - header-list and flow-control-window limits shared by
 * the server and the channel (internal).
 *
 * Header lists are measured as HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE
 * counts them: name + value + 32 per field (crpc_wire_headers_list_size).
 * nghttp2 (1.52) neither enforces our advertised limit on what it receives
 * nor the peer's on what it sends, so crpc does both itself: received lists
 * are counted field by field in the header callbacks, and lists to be sent
 * are checked against the peer's setting before they are submitted.
 */
#ifndef CRPC_H2_LIMITS_H
#define CRPC_H2_LIMITS_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

/* max_metadata_size 0: 8 KiB, gRPC's default. */
#define CRPC_H2_DEFAULT_MAX_METADATA (8 * 1024)

/* RFC 7540's per-field overhead in a header list's size. */
#define CRPC_H2_HEADER_FIELD_OVERHEAD 32

/* Whatever the peer allows, crpc never sends a longer header list: nghttp2
 * fails to send a block whose size estimate (at most the RFC count + 17
 * bytes, and below it for any non-empty list) is over its 64 KiB
 * max_send_header_block_length, which would otherwise surface as a
 * misleading REFUSED_STREAM or a stream that never answers; and an
 * nghttp2 receiver ends the whole connection (GOAWAY COMPRESSION_ERROR)
 * on one field over 64 KiB as encoded. */
#define CRPC_H2_MAX_SEND_HEADER_LIST (64 * 1024)

/* HTTP/2 window bounds: 2^31-1 at most; every window starts at 65535 and
 * the connection's can only be raised (WINDOW_UPDATE), never lowered. */
#define CRPC_H2_MAX_WINDOW 0x7fffffffu
#define CRPC_H2_INITIAL_WINDOW 65535u
#define CRPC_H2_MIN_CONN_WINDOW CRPC_H2_INITIAL_WINDOW

/* The largest header list the peer of `session` accepts from us: its
 * SETTINGS_MAX_HEADER_LIST_SIZE (unlimited until its SETTINGS arrive),
 * capped at CRPC_H2_MAX_SEND_HEADER_LIST. */
static inline size_t crpc_h2_peer_header_limit(nghttp2_session *session) {
  uint32_t peer = nghttp2_session_get_remote_settings(
      session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
  return peer < CRPC_H2_MAX_SEND_HEADER_LIST ? peer
                                             : CRPC_H2_MAX_SEND_HEADER_LIST;
}

/* NULL if the window options are valid (0 means the default), else a
 * sentence saying which is out of range. */
static inline const char *crpc_h2_windows_check(uint32_t stream_window,
                                                uint32_t conn_window) {
  if (stream_window > CRPC_H2_MAX_WINDOW) {
    return "initial_stream_window_size must be 0 (default) or 1 .. "
           "2147483647 (HTTP/2's maximum)";
  }
  if (conn_window != 0 && (conn_window < CRPC_H2_MIN_CONN_WINDOW ||
                           conn_window > CRPC_H2_MAX_WINDOW)) {
    return "initial_connection_window_size must be 0 (default) or 65535 "
           "(HTTP/2's initial, which cannot be lowered) .. 2147483647";
  }
  return NULL;
}

#endif /* CRPC_H2_LIMITS_H */
