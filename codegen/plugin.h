/*
 * codegen/plugin.h - protoc-gen-crpc's work as a function: one serialized
 * CodeGeneratorRequest in, one serialized CodeGeneratorResponse out, no
 * I/O. plugin_main.c wraps it in the stdin/stdout protocol; the fuzz
 * target (//fuzz:codegen_fuzz) calls it directly with arbitrary bytes.
 */
#ifndef CRPC_CODEGEN_PLUGIN_H
#define CRPC_CODEGEN_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

typedef enum cg_plugin_result {
  /* *out holds a CodeGeneratorResponse: either files, or (for a .proto
   * input the plugin cannot serve) only its error field. */
  CG_PLUGIN_OK = 0,
  /* The bytes are not a CodeGeneratorRequest (protoc's fault, not the
   * user's): no response. */
  CG_PLUGIN_BAD_REQUEST = 1,
  /* Out of memory packing the response: no response. */
  CG_PLUGIN_NO_MEMORY = 2
} cg_plugin_result;

/* Runs the generator on req[0..len) (req may be NULL if len is 0). On
 * CG_PLUGIN_OK *out is a malloc'd serialized CodeGeneratorResponse of
 * *out_len bytes (caller frees; never NULL, even when *out_len is 0);
 * otherwise *out is NULL and *out_len 0. Never writes to stdout or
 * stderr. Allocation failure while generating aborts (gen.h). */
cg_plugin_result cg_plugin_run(const uint8_t *req, size_t len, uint8_t **out,
                               size_t *out_len);

#endif /* CRPC_CODEGEN_PLUGIN_H */
