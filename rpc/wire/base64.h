/*
 * rpc/wire/base64.h - base64 for "-bin" metadata values (RFC 4648 section 4).
 *
 * gRPC emits the standard alphabet without '=' padding and requires
 * receivers to accept both padded and unpadded values, so the encoder never
 * pads and the decoder takes either. The decoder rejects whitespace, the
 * URL-safe alphabet, '=' anywhere but at the end of a padded value, and
 * impossible lengths (4n+1 characters). It tolerates non-zero unused bits
 * in the last character, as most peers' decoders do, so a sloppy encoder
 * elsewhere cannot make crpc fail a call.
 */
#ifndef CRPC_WIRE_BASE64_H
#define CRPC_WIRE_BASE64_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Characters in the unpadded encoding of n bytes (no NUL). */
size_t crpc_wire_base64_encoded_len(size_t n);

/* Writes the unpadded encoding of in[0..n) plus a NUL to out, which must
 * hold crpc_wire_base64_encoded_len(n) + 1 bytes; returns the length
 * without the NUL. in may be NULL if n is 0. Cannot fail. */
size_t crpc_wire_base64_encode(const void *in, size_t n, char *out);

/* An upper bound on the bytes that decoding n characters yields. */
size_t crpc_wire_base64_decoded_max(size_t n);

/* Decodes in[0..n) into out (room for crpc_wire_base64_decoded_max(n)
 * bytes) and sets *out_len. Returns 0, or -1 if in is not valid base64
 * (out's contents and *out_len are then unspecified). */
int crpc_wire_base64_decode(const char *in, size_t n, uint8_t *out,
                            size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_BASE64_H */
