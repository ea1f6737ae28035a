/*
 * crpc/metadata.h - key/value metadata attached to and read from calls.
 *
 * A crpc_metadata is an ordered list of (key, value) entries; a key may occur
 * more than once. Clients attach one to a call (sent as request headers);
 * servers attach one as response headers and one as trailers; either side
 * reads what the peer sent through the same type.
 *
 * Keys are non-empty and made of lowercase [0-9a-z], '-', '_' and '.' only
 * (gRPC's Header-Name). A key ending in "-bin" holds a binary value: any
 * bytes, base64-encoded on the wire by crpc and decoded again on receipt.
 * Every other key's value is printable ASCII (0x20..0x7E). Values may be
 * empty. gRPC reserves "grpc-"-prefixed keys it has not defined for future
 * use; crpc does not refuse them, but applications should not invent any.
 *
 * Lifetime rule: crpc_metadata_new() returns a collection owned by the
 * caller, released once with crpc_metadata_free(). Every add copies the key
 * and value; the caller keeps ownership of what it passed in. Pointers
 * handed out by get/at stay valid until that entry is removed (remove,
 * clear, free); adding other entries does not move them.
 *
 * Threads: a collection is not thread-safe. Any number of threads may read
 * one concurrently while nobody modifies it; any modification needs
 * exclusive access.
 *
 * Errors: functions that can fail return a crpc_code: CRPC_INVALID_ARGUMENT
 * for a bad key or value (crpc_metadata_validate() says why) and
 * CRPC_RESOURCE_EXHAUSTED when memory is exhausted. A failed call leaves
 * the collection unchanged.
 */
#ifndef CRPC_METADATA_H
#define CRPC_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_metadata crpc_metadata;

/* One entry as seen by a reader. `value` is followed by a NUL byte that is
 * not counted in value_len, so an ASCII value is also a C string; a binary
 * value may contain NULs of its own, so use value_len for those. */
typedef struct crpc_metadata_entry {
  const char *key;      /* NUL-terminated, owned by the collection */
  const uint8_t *value; /* value_len bytes + NUL, owned by the collection */
  size_t value_len;
} crpc_metadata_entry;

/* ---- creating and releasing ------------------------------------------- */

/* A new empty collection owned by the caller, or NULL if out of memory. */
crpc_metadata *crpc_metadata_new(void);

/* Releases the collection and every entry in it. Accepts NULL. */
void crpc_metadata_free(crpc_metadata *md);

/* ---- keys and values --------------------------------------------------- */

/* CRPC_OK if (key, value) may be stored, else CRPC_INVALID_ARGUMENT with
 * *reason (if reason is non-NULL) set to a static English sentence. A NULL
 * value is allowed only with value_len 0. Pure function, thread-safe. */
crpc_code crpc_metadata_validate(const char *key, const void *value,
                                 size_t value_len, const char **reason);

/* True if key ends in "-bin" (its values are binary). Thread-safe. */
bool crpc_metadata_key_is_binary(const char *key);

/* True if the transport owns this header: users may not send it, and crpc
 * does not pass it to users when received (except "user-agent", which a
 * server can read but a client cannot set). Covers pseudo-headers (":...")
 * and content-type, te, user-agent, host, grpc-timeout, grpc-encoding,
 * grpc-accept-encoding, grpc-message-type, grpc-status, grpc-message and
 * HTTP/2's forbidden connection headers (connection, keep-alive,
 * proxy-connection, transfer-encoding, upgrade). "grpc-status-details-bin"
 * is not reserved: servers send rich error details through it and clients
 * read them from the trailers. Thread-safe. */
bool crpc_metadata_key_is_reserved(const char *key);

/* ---- adding ------------------------------------------------------------ */

/* Appends a copy of (key, value). CRPC_OK, CRPC_INVALID_ARGUMENT (see
 * crpc_metadata_validate) or CRPC_RESOURCE_EXHAUSTED. Reserved keys are
 * accepted here; the transport refuses them when sending. */
crpc_code crpc_metadata_add(crpc_metadata *md, const char *key,
                            const void *value, size_t value_len);

/* crpc_metadata_add with a NUL-terminated value. Same returns; a NULL
 * value is CRPC_INVALID_ARGUMENT. */
crpc_code crpc_metadata_add_str(crpc_metadata *md, const char *key,
                                const char *value);

/* Appends copies of every entry of src (in order) to dst. All or nothing:
 * CRPC_OK or CRPC_RESOURCE_EXHAUSTED with dst unchanged. dst may be src
 * (the entries are then doubled); a NULL src adds nothing. */
crpc_code crpc_metadata_append(crpc_metadata *dst, const crpc_metadata *src);

/* ---- reading ----------------------------------------------------------- */

/* Number of entries. md may be NULL (0). */
size_t crpc_metadata_count(const crpc_metadata *md);

/* Entry i in insertion order into *out; false (out untouched) if i is out
 * of range. Iterate with i = 0 .. count-1. md may be NULL (false). */
bool crpc_metadata_at(const crpc_metadata *md, size_t i,
                      crpc_metadata_entry *out);

/* The first entry with this key into *out (may be NULL to test presence);
 * false if there is none. Keys match exactly (they are lowercase). */
bool crpc_metadata_get(const crpc_metadata *md, const char *key,
                       crpc_metadata_entry *out);

/* Stores up to cap entries with this key, in order, into out[] and returns
 * how many exist in total (like snprintf: a result > cap means out was too
 * small). out may be NULL when cap is 0. */
size_t crpc_metadata_get_all(const crpc_metadata *md, const char *key,
                             crpc_metadata_entry *out, size_t cap);

/* ---- removing ---------------------------------------------------------- */

/* Removes every entry with this key; returns how many were removed.
 * Pointers into the removed entries become invalid. */
size_t crpc_metadata_remove(crpc_metadata *md, const char *key);

/* Removes every entry; the collection stays usable. Accepts NULL. */
void crpc_metadata_clear(crpc_metadata *md);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_METADATA_H */
