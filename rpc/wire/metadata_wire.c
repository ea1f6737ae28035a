#include "rpc/wire/metadata_wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/wire/base64.h"
#include "rpc/wire/metadata_internal.h"

void crpc_wire_headers_init(crpc_wire_headers *h) {
  h->items = h->inline_items;
  h->count = 0;
  h->cap = CRPC_WIRE_HEADERS_INLINE;
}

static void free_item(crpc_wire_header *it) {
  /* name is the start of the single allocation holding name and value. */
  if (!it->borrowed) free((char *)it->name);
}

void crpc_wire_headers_destroy(crpc_wire_headers *h) {
  if (h == NULL) return;
  for (size_t i = 0; i < h->count; i++) free_item(&h->items[i]);
  if (h->items != h->inline_items) free(h->items);
  crpc_wire_headers_init(h);
}

/* A free slot at the end (count not yet raised), or NULL if out of memory. */
static crpc_wire_header *slot(crpc_wire_headers *h) {
  if (h->count == h->cap) {
    size_t cap = h->cap * 2;
    crpc_wire_header *p = malloc(cap * sizeof(*p));
    if (p == NULL) return NULL;
    memcpy(p, h->items, h->count * sizeof(*p));
    if (h->items != h->inline_items) free(h->items);
    h->items = p;
    h->cap = cap;
  }
  return &h->items[h->count];
}

/* Appends a header whose value the caller fills in through the returned
 * pointer (value_len bytes; the NUL is already there). NULL if out of
 * memory, with h unchanged. */
static char *push(crpc_wire_headers *h, const char *name, size_t name_len,
                  size_t value_len) {
  crpc_wire_header *it = slot(h);
  if (it == NULL) return NULL;
  if (value_len > SIZE_MAX - 2 - name_len) return NULL;
  char *block = malloc(name_len + value_len + 2);
  if (block == NULL) return NULL;
  memcpy(block, name, name_len);
  block[name_len] = '\0';
  char *value = block + name_len + 1;
  value[value_len] = '\0';
  *it = (crpc_wire_header){.name = block, .name_len = name_len,
                           .value = value, .value_len = value_len};
  h->count++;
  return value;
}

crpc_code crpc_wire_headers_add_static(crpc_wire_headers *h, const char *name,
                                       size_t name_len, const char *value,
                                       size_t value_len) {
  crpc_wire_header *it = slot(h);
  if (it == NULL) return CRPC_RESOURCE_EXHAUSTED;
  *it = (crpc_wire_header){.name = name, .name_len = name_len, .value = value,
                           .value_len = value_len, .borrowed = true};
  h->count++;
  return CRPC_OK;
}

static void truncate_to(crpc_wire_headers *h, size_t keep) {
  while (h->count > keep) free_item(&h->items[--h->count]);
}

void crpc_wire_headers_truncate(crpc_wire_headers *h, size_t keep) {
  truncate_to(h, keep);
}

crpc_code crpc_wire_headers_add(crpc_wire_headers *h, const char *name,
                                size_t name_len, const char *value,
                                size_t value_len) {
  char *v = push(h, name, name_len, value_len);
  if (v == NULL) return CRPC_RESOURCE_EXHAUSTED;
  if (value_len > 0) memcpy(v, value, value_len);
  return CRPC_OK;
}

crpc_code crpc_wire_headers_add_metadata(crpc_wire_headers *h,
                                         const crpc_metadata *md,
                                         crpc_wire_error *err) {
  size_t n = crpc_metadata_count(md);
  crpc_metadata_entry e;
  /* Check everything first so a refused key leaves h untouched. */
  for (size_t i = 0; i < n; i++) {
    crpc_metadata_at(md, i, &e);
    if (crpc_metadata_key_is_reserved(e.key)) {
      return crpc_wire_error_set(err, CRPC_INVALID_ARGUMENT,
                                 "metadata key \"%s\" is reserved for the "
                                 "transport",
                                 e.key);
    }
  }
  size_t keep = h->count;
  for (size_t i = 0; i < n; i++) {
    crpc_metadata_at(md, i, &e);
    size_t key_len = strlen(e.key);
    bool binary = crpc_metadata_key_is_binary(e.key);
    size_t len =
        binary ? crpc_wire_base64_encoded_len(e.value_len) : e.value_len;
    char *v = push(h, e.key, key_len, len);
    if (v == NULL) {
      truncate_to(h, keep);
      return crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (binary) {
      crpc_wire_base64_encode(e.value, e.value_len, v);
    } else if (len > 0) {
      memcpy(v, e.value, len);
    }
  }
  return CRPC_OK;
}

size_t crpc_wire_headers_list_size(const crpc_wire_headers *h) {
  size_t total = 0;
  for (size_t i = 0; i < h->count; i++) {
    total += h->items[i].name_len + h->items[i].value_len + 32;
  }
  return total;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* Splits a received "-bin" value on ',' and decodes every part. */
static crpc_wire_header_verdict add_binary(crpc_metadata *md, const char *name,
                                           size_t name_len, const char *value,
                                           size_t value_len) {
  size_t parts = 1;
  for (size_t i = 0; i < value_len; i++) parts += value[i] == ',';
  /* decoded_max(p) = p/4*3 + 2 <= p + 2, so this holds every part. */
  uint8_t *buf = malloc(value_len + 2 * parts);
  const uint8_t **values = malloc(parts * sizeof(*values));
  size_t *lens = malloc(parts * sizeof(*lens));
  crpc_wire_header_verdict verdict = CRPC_WIRE_HEADER_NO_MEMORY;
  if (buf == NULL || values == NULL || lens == NULL) goto out;

  size_t off = 0;
  size_t start = 0;
  for (size_t p = 0; p < parts; p++) {
    size_t end = start;
    while (end < value_len && value[end] != ',') end++;
    size_t a = start;
    size_t b = end;
    while (a < b && is_ows(value[a])) a++;
    while (b > a && is_ows(value[b - 1])) b--;
    if (crpc_wire_base64_decode(value + a, b - a, buf + off, &lens[p]) != 0) {
      verdict = CRPC_WIRE_HEADER_INVALID;
      goto out;
    }
    values[p] = buf + off;
    off += lens[p];
    start = end + 1;
  }
  verdict = crpc_wire_metadata_add_values(md, name, name_len, values, lens,
                                          parts) == CRPC_OK
                ? CRPC_WIRE_HEADER_ADDED
                : CRPC_WIRE_HEADER_NO_MEMORY;
out:
  free(buf);
  free(values);
  free(lens);
  return verdict;
}

crpc_wire_header_verdict crpc_wire_metadata_add_received(crpc_metadata *md,
                                                         const char *name,
                                                         size_t name_len,
                                                         const char *value,
                                                         size_t value_len) {
  if (crpc_wire_metadata_key_is_reserved(name, name_len)) {
    /* Servers may want to log or route on the client's user-agent. */
    bool user_agent =
        name_len == 10 && memcmp(name, "user-agent", name_len) == 0;
    if (!user_agent) return CRPC_WIRE_HEADER_RESERVED;
  }
  if (crpc_wire_metadata_key_error(name, name_len) != NULL) {
    return CRPC_WIRE_HEADER_INVALID;
  }
  if (value == NULL && value_len > 0) return CRPC_WIRE_HEADER_INVALID;
  if (name_len >= 4 && memcmp(name + name_len - 4, "-bin", 4) == 0) {
    return add_binary(md, name, name_len, value, value_len);
  }
  for (size_t i = 0; i < value_len; i++) {
    uint8_t c = (uint8_t)value[i];
    if (c < 0x20 || c > 0x7E) return CRPC_WIRE_HEADER_INVALID;
  }
  const uint8_t *v = (const uint8_t *)value;
  return crpc_wire_metadata_add_values(md, name, name_len, &v, &value_len, 1) ==
                 CRPC_OK
             ? CRPC_WIRE_HEADER_ADDED
             : CRPC_WIRE_HEADER_NO_MEMORY;
}
