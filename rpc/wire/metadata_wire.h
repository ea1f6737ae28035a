/*
 * rpc/wire/metadata_wire.h - crpc_metadata to and from HTTP/2 header form.
 *
 * Sending: the transport builds a crpc_wire_headers list (pseudo-headers,
 * then its own call-definition headers, then the user's metadata) and hands
 * the items to nghttp2 as name/value pairs. "-bin" values are base64-encoded
 * (standard alphabet, unpadded) on the way in.
 *
 * Receiving: the transport offers every received header to
 * crpc_wire_metadata_add_received, which keeps what belongs to the user.
 * Decisions, none of which fails the call (the spec says a header that is
 * valid HTTP must not error a call):
 *  - Reserved headers (crpc_metadata_key_is_reserved) are the transport's
 *    and are not added, except "user-agent", which servers may read.
 *  - A "-bin" value is split on ',' (peers may join repeated headers) and
 *    each part base64-decoded, padded or not, into its own entry. If any
 *    part is invalid base64 the whole header is dropped: keeping half of a
 *    joined header would reorder what the sender meant.
 *  - An ASCII value with bytes outside 0x20..0x7E, or a name that is not a
 *    valid key, is dropped, so every value a user reads can be sent back
 *    unchanged. Whitespace is kept as received.
 * Drops are reported (CRPC_WIRE_HEADER_INVALID) so the transport can log.
 */
#ifndef CRPC_WIRE_METADATA_WIRE_H
#define CRPC_WIRE_METADATA_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include "crpc/metadata.h"
#include "crpc/status.h"
#include "rpc/wire/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One header field. name and value are also NUL-terminated. */
typedef struct crpc_wire_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
  bool borrowed; /* static strings, not copied (crpc_wire_headers_add_static) */
} crpc_wire_header;

/* Headers a list holds without allocating its array: a response's head or
 * trailers, a request's fixed headers and a little metadata. */
#define CRPC_WIRE_HEADERS_INLINE 12

/* An ordered list of headers that owns copies of its names and values
 * (except borrowed ones). items[0..count) may be read directly; the
 * strings stay put while more headers are added, but the items array
 * itself may move. The array starts inside the struct: never copy a list
 * by value. */
typedef struct crpc_wire_headers {
  crpc_wire_header *items;
  size_t count;
  size_t cap;                                              /* private */
  crpc_wire_header inline_items[CRPC_WIRE_HEADERS_INLINE]; /* private */
} crpc_wire_headers;

/* Makes h an empty list. Cannot fail. */
void crpc_wire_headers_init(crpc_wire_headers *h);

/* Frees every copy and the array; h is then empty again. Accepts NULL. */
void crpc_wire_headers_destroy(crpc_wire_headers *h);

/* Drops the headers after the first `keep` (no-op if there are fewer). */
void crpc_wire_headers_truncate(crpc_wire_headers *h, size_t keep);

/* Appends copies of name and value, unvalidated (the transport's own
 * headers). CRPC_OK or CRPC_RESOURCE_EXHAUSTED (h unchanged). */
crpc_code crpc_wire_headers_add(crpc_wire_headers *h, const char *name,
                                size_t name_len, const char *value,
                                size_t value_len);

/* Appends name and value without copying them: both must have static
 * storage (string literals, constant tables), since nghttp2 is told not to
 * copy them either. CRPC_OK or CRPC_RESOURCE_EXHAUSTED (h unchanged). */
crpc_code crpc_wire_headers_add_static(crpc_wire_headers *h, const char *name,
                                       size_t name_len, const char *value,
                                       size_t value_len);

/* Appends every entry of md (may be NULL) in order, base64-encoding "-bin"
 * values. All or nothing: CRPC_OK; CRPC_INVALID_ARGUMENT if md holds a
 * reserved key (named in *err), so users cannot forge transport headers;
 * CRPC_RESOURCE_EXHAUSTED if out of memory. */
crpc_code crpc_wire_headers_add_metadata(crpc_wire_headers *h,
                                         const crpc_metadata *md,
                                         crpc_wire_error *err);

/* The list's size as HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE counts it: for
 * each field name + value (binary values as sent, post-base64) + 32. gRPC
 * suggests 8 KiB as the limit peers enforce by default. */
size_t crpc_wire_headers_list_size(const crpc_wire_headers *h);

/* Verdicts of crpc_wire_metadata_add_received. */
typedef enum crpc_wire_header_verdict {
  CRPC_WIRE_HEADER_NO_MEMORY = -1, /* out of memory; md unchanged */
  CRPC_WIRE_HEADER_ADDED = 0,      /* one or more entries appended to md */
  CRPC_WIRE_HEADER_RESERVED = 1,   /* the transport's own; md unchanged */
  CRPC_WIRE_HEADER_INVALID = 2     /* dropped (see above); md unchanged */
} crpc_wire_header_verdict;

/* Offers one received header (lengths given, NUL not needed) to md. Never
 * fails the call; see the verdicts and the decisions at the top. */
crpc_wire_header_verdict crpc_wire_metadata_add_received(crpc_metadata *md,
                                                         const char *name,
                                                         size_t name_len,
                                                         const char *value,
                                                         size_t value_len);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_METADATA_WIRE_H */
