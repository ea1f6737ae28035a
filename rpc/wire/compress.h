/*
 * rpc/wire/compress.h - per-message compression (grpc-encoding).
 *
 * Each message is compressed on its own (no context across messages).
 * crpc speaks "identity", "gzip" (RFC 1952) and "deflate" (the zlib format,
 * RFC 1950, which is what gRPC's "deflate" means). Decompression is bounded
 * by the receive limit on its OUTPUT and stops the moment the output would
 * exceed it, so a tiny zip bomb costs at most max + 1 bytes of memory and
 * proportional CPU.
 *
 * Which error a bad compressed message gets (gRPC's compression spec):
 *  - flag set but grpc-encoding absent or "identity": INTERNAL;
 *  - encoding we do not implement: UNIMPLEMENTED on a server (which then
 *    lists what it accepts in grpc-accept-encoding), INTERNAL on a client;
 *  - corrupt or truncated data: INTERNAL;
 *  - output larger than the limit: RESOURCE_EXHAUSTED.
 */
#ifndef CRPC_WIRE_COMPRESS_H
#define CRPC_WIRE_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/status.h"
#include "rpc/wire/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum crpc_wire_encoding {
  CRPC_WIRE_ENCODING_UNKNOWN = -1, /* a name crpc does not implement */
  CRPC_WIRE_ENCODING_IDENTITY = 0,
  CRPC_WIRE_ENCODING_GZIP = 1,
  CRPC_WIRE_ENCODING_DEFLATE = 2
} crpc_wire_encoding;

/* A set of encodings: bit (1u << encoding) for each member. */
typedef unsigned crpc_wire_encoding_set;
#define CRPC_WIRE_ENCODING_BIT(e) (1u << (unsigned)(e))
#define CRPC_WIRE_ENCODINGS_ALL                          \
  (CRPC_WIRE_ENCODING_BIT(CRPC_WIRE_ENCODING_IDENTITY) | \
   CRPC_WIRE_ENCODING_BIT(CRPC_WIRE_ENCODING_GZIP) |     \
   CRPC_WIRE_ENCODING_BIT(CRPC_WIRE_ENCODING_DEFLATE))

/* The encoding named by a grpc-encoding value (exact, lowercase, len
 * bytes). An empty value is IDENTITY (same as no header); an unimplemented
 * name is UNKNOWN. */
crpc_wire_encoding crpc_wire_encoding_parse(const char *s, size_t len);

/* "identity", "gzip", "deflate"; NULL for UNKNOWN or out of range. */
const char *crpc_wire_encoding_name(crpc_wire_encoding e);

/* Parses a grpc-accept-encoding value ("gzip, deflate,identity"): tokens
 * split on ',' with spaces/tabs trimmed; names crpc does not implement are
 * ignored. Identity is always in the result: every peer must accept an
 * uncompressed message. Never fails. */
crpc_wire_encoding_set crpc_wire_accept_encoding_parse(const char *s,
                                                       size_t len);

/* Writes the members of set as a grpc-accept-encoding value
 * ("identity,gzip,deflate") with a NUL into buf (cap bytes); returns the
 * length it needs without the NUL (like snprintf: >= cap means truncated). */
size_t crpc_wire_accept_encoding_format(crpc_wire_encoding_set set, char *buf,
                                        size_t cap);

/* Whether a received message may be decoded: CRPC_OK if the flag is 0 or
 * the stream's encoding is gzip/deflate; CRPC_INTERNAL if the flag is set
 * with identity; for UNKNOWN, CRPC_UNIMPLEMENTED if is_server else
 * CRPC_INTERNAL. Details in *err (may be NULL). */
crpc_code crpc_wire_check_compressed_flag(bool compressed, crpc_wire_encoding e,
                                          bool is_server, crpc_wire_error *err);

/* Compresses in[0..len) with e into a new malloc'd buffer (*out, caller
 * frees; *out_len). IDENTITY copies. in may be NULL if len is 0. CRPC_OK;
 * CRPC_INVALID_ARGUMENT for UNKNOWN; CRPC_RESOURCE_EXHAUSTED if out of
 * memory; CRPC_INTERNAL if zlib fails. On error *out is NULL. */
crpc_code crpc_wire_compress(crpc_wire_encoding e, const void *in, size_t len,
                             uint8_t **out, size_t *out_len,
                             crpc_wire_error *err);

/* Decompresses in[0..len) with e into a new malloc'd buffer (*out, never
 * NULL on success, caller frees; *out_len <= max_out). IDENTITY copies.
 * CRPC_OK; CRPC_RESOURCE_EXHAUSTED as soon as the output exceeds max_out
 * (or out of memory); CRPC_INTERNAL for corrupt, truncated or trailing
 * data; CRPC_INVALID_ARGUMENT for UNKNOWN. On error *out is NULL and *err
 * (may be NULL) says what happened. */
crpc_code crpc_wire_decompress(crpc_wire_encoding e, const void *in, size_t len,
                               size_t max_out, uint8_t **out, size_t *out_len,
                               crpc_wire_error *err);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_COMPRESS_H */
