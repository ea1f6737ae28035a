/* The public crpc_metadata collection (crpc/metadata.h). */
#include "crpc/metadata.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/mem/mem.h"
#include "rpc/wire/metadata_internal.h"

/* One allocation per entry (see metadata_internal.h). */
struct crpc_md_entry {
  size_t key_len;
  size_t value_len;
  char data[];
};
typedef crpc_md_entry entry;

static const char *entry_key(const entry *e) { return e->data; }

static const uint8_t *entry_value(const entry *e) {
  return (const uint8_t *)e->data + e->key_len + 1;
}

static void fill(const entry *e, crpc_metadata_entry *out) {
  out->key = entry_key(e);
  out->value = entry_value(e);
  out->value_len = e->value_len;
}

void crpc_wire_metadata_init(crpc_metadata *md) {
  md->items = md->inline_items;
  md->count = 0;
  md->cap = CRPC_METADATA_INLINE;
}

crpc_metadata *crpc_metadata_new(void) {
  crpc_metadata *md = malloc(sizeof(*md));
  if (md != NULL) crpc_wire_metadata_init(md);
  return md;
}

void crpc_metadata_clear(crpc_metadata *md) {
  if (md == NULL) return;
  for (size_t i = 0; i < md->count; i++) crpc_mem_free(md->items[i]);
  md->count = 0;
}

void crpc_wire_metadata_destroy(crpc_metadata *md) {
  crpc_metadata_clear(md);
  if (md->items != md->inline_items) free(md->items);
  crpc_wire_metadata_init(md);
}

void crpc_metadata_free(crpc_metadata *md) {
  if (md == NULL) return;
  crpc_wire_metadata_destroy(md);
  free(md);
}

/* ---- validation -------------------------------------------------------- */

static bool key_char_ok(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' ||
         c == '_' || c == '.';
}

const char *crpc_wire_metadata_key_error(const char *key, size_t key_len) {
  if (key == NULL) return "metadata key is NULL";
  if (key_len == 0) return "metadata key is empty";
  for (size_t i = 0; i < key_len; i++) {
    if (key_char_ok(key[i])) continue;
    if (key[i] >= 'A' && key[i] <= 'Z') return "metadata key must be lowercase";
    return "metadata key may only contain 0-9 a-z - _ .";
  }
  return NULL;
}

static bool is_binary_key(const char *key, size_t key_len) {
  return key_len >= 4 && memcmp(key + key_len - 4, "-bin", 4) == 0;
}

crpc_code crpc_metadata_validate(const char *key, const void *value,
                                 size_t value_len, const char **reason) {
  const char *why =
      crpc_wire_metadata_key_error(key, key == NULL ? 0 : strlen(key));
  if (why == NULL && value == NULL && value_len > 0) {
    why = "metadata value is NULL but its length is not 0";
  }
  if (why == NULL && !is_binary_key(key, strlen(key))) {
    const uint8_t *v = value;
    for (size_t i = 0; i < value_len; i++) {
      if (v[i] < 0x20 || v[i] > 0x7E) {
        why =
            "metadata value must be printable ASCII (0x20-0x7E) unless "
            "the key ends in -bin";
        break;
      }
    }
  }
  if (why == NULL) return CRPC_OK;
  if (reason != NULL) *reason = why;
  return CRPC_INVALID_ARGUMENT;
}

bool crpc_metadata_key_is_binary(const char *key) {
  return key != NULL && is_binary_key(key, strlen(key));
}

/* Headers the transport writes or interprets itself, or that HTTP/2
 * forbids (RFC 7540 8.1.2.2). grpc-previous-rpc-attempts and
 * grpc-retry-pushback-ms are left out on purpose: gRPC carries them as
 * metadata. */
#define RESERVED(name) {name, sizeof(name) - 1}
static const struct {
  const char *name;
  size_t len;
} reserved[] = {
    RESERVED("content-type"),
    RESERVED("te"),
    RESERVED("user-agent"),
    RESERVED("host"),
    RESERVED("grpc-timeout"),
    RESERVED("grpc-encoding"),
    RESERVED("grpc-accept-encoding"),
    RESERVED("grpc-message-type"),
    RESERVED("grpc-status"),
    RESERVED("grpc-message"),
    RESERVED("connection"),
    RESERVED("keep-alive"),
    RESERVED("proxy-connection"),
    RESERVED("transfer-encoding"),
    RESERVED("upgrade"),
};
#undef RESERVED

bool crpc_wire_metadata_key_is_reserved(const char *key, size_t key_len) {
  if (key == NULL) return false;
  if (key_len > 0 && key[0] == ':') return true;
  /* Every received header passes here: lengths first, no strlen. */
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
    if (reserved[i].len == key_len &&
        memcmp(reserved[i].name, key, key_len) == 0) {
      return true;
    }
  }
  return false;
}

bool crpc_metadata_key_is_reserved(const char *key) {
  return key != NULL && crpc_wire_metadata_key_is_reserved(key, strlen(key));
}

/* ---- adding ------------------------------------------------------------ */

static entry *entry_new(const char *key, size_t key_len, const void *value,
                        size_t value_len) {
  if (value_len > SIZE_MAX - sizeof(entry) - 2 - key_len) return NULL;
  entry *e = crpc_mem_alloc(sizeof(entry) + key_len + value_len + 2);
  if (e == NULL) return NULL;
  e->key_len = key_len;
  e->value_len = value_len;
  memcpy(e->data, key, key_len);
  e->data[key_len] = '\0';
  if (value_len > 0) memcpy(e->data + key_len + 1, value, value_len);
  e->data[key_len + 1 + value_len] = '\0';
  return e;
}

/* Makes room for n more entries so the commit step cannot fail. */
static bool reserve(crpc_metadata *md, size_t n) {
  if (md->cap - md->count >= n) return true;
  size_t cap = md->cap * 2;
  while (cap - md->count < n) cap *= 2;
  entry **p = malloc(cap * sizeof(*p));
  if (p == NULL) return false;
  memcpy(p, md->items, md->count * sizeof(*p));
  if (md->items != md->inline_items) free(md->items);
  md->items = p;
  md->cap = cap;
  return true;
}

crpc_code crpc_wire_metadata_add_values(crpc_metadata *md, const char *key,
                                        size_t key_len,
                                        const uint8_t *const *values,
                                        const size_t *value_lens, size_t n) {
  if (!reserve(md, n)) return CRPC_RESOURCE_EXHAUSTED;
  for (size_t i = 0; i < n; i++) {
    entry *e = entry_new(key, key_len, values[i], value_lens[i]);
    if (e == NULL) {
      /* Undo this call's entries: all or nothing. */
      while (i-- > 0) crpc_mem_free(md->items[--md->count]);
      return CRPC_RESOURCE_EXHAUSTED;
    }
    md->items[md->count++] = e;
  }
  return CRPC_OK;
}

crpc_code crpc_metadata_add(crpc_metadata *md, const char *key,
                            const void *value, size_t value_len) {
  crpc_code code = crpc_metadata_validate(key, value, value_len, NULL);
  if (code != CRPC_OK) return code;
  const uint8_t *v = value;
  return crpc_wire_metadata_add_values(md, key, strlen(key), &v, &value_len, 1);
}

crpc_code crpc_metadata_add_str(crpc_metadata *md, const char *key,
                                const char *value) {
  if (value == NULL) return CRPC_INVALID_ARGUMENT;
  return crpc_metadata_add(md, key, value, strlen(value));
}

crpc_code crpc_metadata_append(crpc_metadata *dst, const crpc_metadata *src) {
  /* n is read once so that appending a collection to itself terminates. */
  size_t n = src == NULL ? 0 : src->count;
  if (n == 0) return CRPC_OK;
  if (!reserve(dst, n)) return CRPC_RESOURCE_EXHAUSTED;
  size_t base = dst->count;
  for (size_t i = 0; i < n; i++) {
    const entry *s = src->items[i];
    entry *e =
        entry_new(entry_key(s), s->key_len, entry_value(s), s->value_len);
    if (e == NULL) {
      while (dst->count > base) crpc_mem_free(dst->items[--dst->count]);
      return CRPC_RESOURCE_EXHAUSTED;
    }
    dst->items[dst->count++] = e;
  }
  return CRPC_OK;
}

/* ---- reading and removing ---------------------------------------------- */

size_t crpc_metadata_count(const crpc_metadata *md) {
  return md == NULL ? 0 : md->count;
}

bool crpc_metadata_at(const crpc_metadata *md, size_t i,
                      crpc_metadata_entry *out) {
  if (md == NULL || i >= md->count) return false;
  fill(md->items[i], out);
  return true;
}

static bool key_is(const entry *e, const char *key, size_t key_len) {
  return e->key_len == key_len && memcmp(e->data, key, key_len) == 0;
}

bool crpc_metadata_get(const crpc_metadata *md, const char *key,
                       crpc_metadata_entry *out) {
  if (md == NULL || key == NULL) return false;
  size_t key_len = strlen(key);
  for (size_t i = 0; i < md->count; i++) {
    if (key_is(md->items[i], key, key_len)) {
      if (out != NULL) fill(md->items[i], out);
      return true;
    }
  }
  return false;
}

size_t crpc_metadata_get_all(const crpc_metadata *md, const char *key,
                             crpc_metadata_entry *out, size_t cap) {
  if (md == NULL || key == NULL) return 0;
  size_t key_len = strlen(key);
  size_t found = 0;
  for (size_t i = 0; i < md->count; i++) {
    if (!key_is(md->items[i], key, key_len)) continue;
    if (found < cap) fill(md->items[i], &out[found]);
    found++;
  }
  return found;
}

size_t crpc_metadata_remove(crpc_metadata *md, const char *key) {
  if (md == NULL || key == NULL) return 0;
  size_t key_len = strlen(key);
  size_t kept = 0;
  for (size_t i = 0; i < md->count; i++) {
    if (key_is(md->items[i], key, key_len)) {
      crpc_mem_free(md->items[i]);
    } else {
      md->items[kept++] = md->items[i];
    }
  }
  size_t removed = md->count - kept;
  md->count = kept;
  return removed;
}
