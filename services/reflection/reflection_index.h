/*
 * services/reflection/reflection_index.h - the symbol index server
 * reflection answers from (internal).
 *
 * Built once, from the server's descriptor set and method table
 * (crpc/server_info.h), when the first request arrives (the lists are
 * final by then: they only change before crpc_server_start), and
 * read-only afterwards, so any number of streams on any loops share it
 * without a lock. The FileDescriptorProto bytes are decoded (protoc-c's
 * descriptor.pb-c) only to collect names; responses send the generated
 * bytes as they are.
 */
#ifndef CRPC_SERVICES_REFLECTION_INDEX_H
#define CRPC_SERVICES_REFLECTION_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/server_info.h"

typedef struct refl_symbol {
  char *name; /* fully qualified, no leading dot */
  size_t file;
  bool message; /* a message type (all_extension_numbers_of_type) */
} refl_symbol;

typedef struct refl_extension {
  char *extendee; /* fully qualified message name, no leading dot */
  int32_t number;
  size_t file;
} refl_extension;

typedef struct refl_index {
  const crpc_file_descriptor **files; /* the server's set, in its order */
  size_t n_files;
  refl_symbol *symbols; /* sorted by name; first definition wins */
  size_t n_symbols, cap_symbols;
  refl_extension *exts;
  size_t n_exts, cap_exts;
  char **services; /* distinct "pkg.Service" of registered methods */
  size_t n_services;
} refl_index;

/* Builds idx from the server's lists. False if out of memory (idx is then
 * freed and empty). */
bool refl_index_build(refl_index *idx, const crpc_server *server);
void refl_index_free(refl_index *idx);

/* The file index for a file name, symbol or (extendee, number); -1 if
 * unknown. A leading '.' on names is ignored. */
long refl_find_file(const refl_index *idx, const char *name);
long refl_find_symbol(const refl_index *idx, const char *symbol);
long refl_find_extension(const refl_index *idx, const char *extendee,
                         int32_t number);
/* True if `name` is a message type the index knows. */
bool refl_is_message(const refl_index *idx, const char *name);

#endif /* CRPC_SERVICES_REFLECTION_INDEX_H */
