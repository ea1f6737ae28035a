/*
 * rpc/wire/percent.h - percent-encoding of the grpc-message header.
 *
 * grpc-message carries UTF-8 text, percent-encoded: every byte outside
 * 0x20..0x7E, and '%' itself, becomes "%XX" (uppercase hex); everything
 * else is sent as is. Decoding is lenient because the spec forbids failing
 * a call or dropping the message over a bad encoding: a '%' not followed
 * by two hex digits is kept literally, and lowercase hex is accepted.
 * Decoded text may contain any bytes (including NUL); the length says
 * where it ends.
 */
#ifndef CRPC_WIRE_PERCENT_H
#define CRPC_WIRE_PERCENT_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* True if some byte of in must be escaped (false: send in unchanged). */
bool crpc_wire_percent_needs_encoding(const void *in, size_t len);

/* Length of the encoded form of in, without a terminating NUL. */
size_t crpc_wire_percent_encoded_len(const void *in, size_t len);

/* New malloc'd, NUL-terminated encoding of in (caller frees), its length
 * in *out_len if out_len is non-NULL. in may be NULL if len is 0. NULL
 * only if memory is exhausted. */
char *crpc_wire_percent_encode(const void *in, size_t len, size_t *out_len);

/* New malloc'd decoding of in (caller frees), with a NUL after the last
 * byte that *out_len (if non-NULL) does not count. Never fails on content;
 * NULL only if memory is exhausted. */
char *crpc_wire_percent_decode(const char *in, size_t len, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_PERCENT_H */
