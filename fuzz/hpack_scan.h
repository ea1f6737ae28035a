/*
 * fuzz/hpack_scan.h - the header fields a receiver's HPACK decoder gets
 * out of a byte stream of HTTP/2 frames, for the connection fuzz targets
 * to see, before running an input, whether it can change state that
 * outlives its connection (the server target: a crpc.test.Test call
 * tagged x-tag records an observation in the service; the client target:
 * a grpc-accept-encoding without gzip makes the channel stop compressing).
 *
 * Why decode rather than search the bytes: HPACK may Huffman-code a name,
 * or refer to it by an index into the dynamic table, so a name need not
 * appear in the bytes at all. The scan runs nghttp2's own decoder (the
 * one crpc's sessions use, with the same default 4096-byte table) over
 * the header blocks exactly as a receiver cuts them out of the frames, so
 * it sees every field the receiver's session can have decoded, and more
 * where the receiver would have stopped at a protocol error first
 * (oversized frames, HEADERS on stream 0, ...): its answer errs on the
 * side of "present".
 */
#ifndef CRPC_FUZZ_HPACK_SCAN_H
#define CRPC_FUZZ_HPACK_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One decoded field. Returns true to stop the scan. */
typedef bool (*fuzz_hpack_fn)(const uint8_t *name, size_t namelen,
                              const uint8_t *value, size_t valuelen,
                              void *arg);

/* Decodes the header blocks (HEADERS and PUSH_PROMISE fragments, padding
 * and priority fields stripped, with their CONTINUATIONs) of data[0..len),
 * a sequence of HTTP/2 frames (the last one may be cut short: its bytes
 * are decoded as far as they go, as a receiver does), calling fn for each
 * field. Stops where a receiver would end the connection on the framing
 * or the decoding (a CONTINUATION out of place, a block that does not
 * decode): nothing after that is ever decoded. Returns false only if the
 * scan could not be done (out of memory): then assume anything. */
bool fuzz_hpack_scan(const uint8_t *data, size_t len, fuzz_hpack_fn fn,
                     void *arg);

/* True if name[0..namelen) is the NUL-terminated want. */
bool fuzz_hpack_name_is(const uint8_t *name, size_t namelen,
                        const char *want);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_FUZZ_HPACK_SCAN_H */
