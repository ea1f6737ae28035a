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

/* The collection, visible here so the transport can embed one in a call
 * (crpc_wire_metadata_init) instead of allocating it. Entries are one
 * allocation each, "key\0value\0", so entry pointers handed to readers
 * survive the items array moving; the first few item slots are inside the
 * struct. Never copy a non-empty collection by value. */
#define CRPC_METADATA_INLINE 4
typedef struct crpc_md_entry crpc_md_entry;
struct crpc_metadata {
  crpc_md_entry **items;
  size_t count;
  size_t cap;
  crpc_md_entry *inline_items[CRPC_METADATA_INLINE];
};

/* Makes md (embedded storage) an empty collection. Cannot fail. */
void crpc_wire_metadata_init(crpc_metadata *md);

/* Frees md's entries and array, not md itself (see init). */
void crpc_wire_metadata_destroy(crpc_metadata *md);

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
