/*
 * rpc/wire/metadata_internal.h - what metadata_wire.c needs from metadata.c.
 */
#ifndef CRPC_WIRE_METADATA_INTERNAL_H
#define CRPC_WIRE_METADATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "crpc/metadata.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NULL if key[0..key_len) is a valid key, else a static reason. */
const char *crpc_wire_metadata_key_error(const char *key, size_t key_len);

/* True if key[0..key_len) is reserved (see crpc_metadata_key_is_reserved). */
bool crpc_wire_metadata_key_is_reserved(const char *key, size_t key_len);

/* Appends n entries sharing one key, all or nothing, WITHOUT validating
 * them (the caller did). CRPC_OK or CRPC_RESOURCE_EXHAUSTED. */
crpc_code crpc_wire_metadata_add_values(crpc_metadata *md, const char *key,
                                        size_t key_len,
                                        const uint8_t *const *values,
                                        const size_t *value_lens, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_WIRE_METADATA_INTERNAL_H */
