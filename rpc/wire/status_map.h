/*
 * rpc/wire/status_map.h - where a call's status code comes from on the wire.
 *
 * In order of authority: the grpc-status trailer; failing that, an HTTP
 * status other than 200 (a proxy answered); failing that, the RST_STREAM
 * error code. The HTTP/2 error codes are defined here (same values as
 * RFC 7540 section 7 and nghttp2's NGHTTP2_*) so the wire layer needs no
 * HTTP/2 library.
 */
#ifndef CRPC_WIRE_STATUS_MAP_H
#define CRPC_WIRE_STATUS_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  CRPC_H2_NO_ERROR = 0x0,
  CRPC_H2_PROTOCOL_ERROR = 0x1,
  CRPC_H2_INTERNAL_ERROR = 0x2,
  CRPC_H2_FLOW_CONTROL_ERROR = 0x3,
  CRPC_H2_SETTINGS_TIMEOUT = 0x4,
  CRPC_H2_STREAM_CLOSED = 0x5,
  CRPC_H2_FRAME_SIZE_ERROR = 0x6,
  CRPC_H2_REFUSED_STREAM = 0x7,
  CRPC_H2_CANCEL = 0x8,
  CRPC_H2_COMPRESSION_ERROR = 0x9,
  CRPC_H2_CONNECT_ERROR = 0xa,
  CRPC_H2_ENHANCE_YOUR_CALM = 0xb,
  CRPC_H2_INADEQUATE_SECURITY = 0xc,
  CRPC_H2_HTTP_1_1_REQUIRED = 0xd
};

/* ---- grpc-status ------------------------------------------------------- */

/* Parses a grpc-status value (len bytes, no NUL needed). The spec's form is
 * decimal digits without leading zeros, and that is all that is accepted:
 * "0".."16" give that code; any other such number ("17", "4294967296")
 * gives CRPC_UNKNOWN, as gRPC does for codes it does not know. Returns 0.
 * Anything else (empty, "01", "+1", " 1", "1 ", "0x1") is malformed:
 * returns -1 and sets *code to CRPC_INTERNAL, the status for a peer that
 * broke the protocol, so the caller can use *code either way. */
int crpc_wire_grpc_status_parse(const char *s, size_t len, crpc_code *code);

/* The grpc-status value for code: static "0".."16". A value outside the
 * enum is sent as "2" (UNKNOWN), never as a number peers cannot map. */
const char *crpc_wire_grpc_status_string(crpc_code code);

/* ---- HTTP status (only when grpc-status is missing) -------------------- */

/* gRPC's http-grpc-status-mapping: 400 and 431 INTERNAL, 401
 * UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429 502 503
 * 504 UNAVAILABLE, anything else (200 included: a real OK carries
 * grpc-status) UNKNOWN. Servers must not use it backwards. */
crpc_code crpc_wire_status_from_http(int http_status);

/* ---- RST_STREAM -------------------------------------------------------- */

/* The status for a stream the peer reset with h2_error before trailers
 * settled the status. NO_ERROR is INTERNAL (an OK must be sent explicitly)
 * unless trailers_said_ok, then CRPC_OK; REFUSED_STREAM UNAVAILABLE (not
 * processed, safe to retry); CANCEL CANCELLED; ENHANCE_YOUR_CALM
 * RESOURCE_EXHAUSTED; INADEQUATE_SECURITY PERMISSION_DENIED; any other
 * value, unknown ones included, INTERNAL. A client whose own deadline has
 * passed must still report DEADLINE_EXCEEDED; that check is the caller's. */
crpc_code crpc_wire_status_from_rst_stream(uint32_t h2_error,
                                           bool trailers_said_ok);

/* The RST_STREAM error code to send when ending a stream with this status:
 * OK NO_ERROR (a server done before the client half-closed; proxies treat
 * CANCEL as an error), CANCELLED and DEADLINE_EXCEEDED CANCEL,
 * RESOURCE_EXHAUSTED ENHANCE_YOUR_CALM, PERMISSION_DENIED
 * INADEQUATE_SECURITY, UNAVAILABLE REFUSED_STREAM, anything else
 * INTERNAL_ERROR. REFUSED_STREAM tells the client it may safely retry
 * elsewhere, so pass UNAVAILABLE only for a stream no handler has seen. */
uint32_t crpc_wire_rst_stream_for_status(crpc_code code);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_STATUS_MAP_H */
