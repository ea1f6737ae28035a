/*
 * fuzz/codegen_fuzz.c - libFuzzer target: protoc-gen-crpc's input.
 *
 * Input: a serialized CodeGeneratorRequest, as protoc writes to the
 * plugin's stdin (or any bytes). Runs cg_plugin_run, the plugin's whole
 * logic (codegen/plugin.h), and checks the plugin protocol's promise:
 * garbage is refused cleanly, and a request yields either generated files
 * or an error, never both, never a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/plugin.h"
#include "fuzz/fuzz_util.h"
#include "google/protobuf/compiler/plugin.pb-c.h"

typedef Google__Protobuf__Compiler__CodeGeneratorResponse Response;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *out = NULL;
  size_t out_len = 0;
  cg_plugin_result rc = cg_plugin_run(data, size, &out, &out_len);
  if (rc != CG_PLUGIN_OK) {
    FUZZ_CHECK(rc == CG_PLUGIN_BAD_REQUEST && out == NULL && out_len == 0);
    return 0;
  }
  FUZZ_CHECK(out != NULL);
  Response *resp = google__protobuf__compiler__code_generator_response__unpack(
      NULL, out_len, out);
  FUZZ_CHECK(resp != NULL);
  if (resp->error != NULL) {
    FUZZ_CHECK(resp->n_file == 0 && resp->error[0] != '\0');
  } else {
    /* A header and a source per file to generate. */
    FUZZ_CHECK(resp->n_file % 2 == 0);
    for (size_t i = 0; i < resp->n_file; i++) {
      FUZZ_CHECK(resp->file[i]->name != NULL && resp->file[i]->name[0]);
      FUZZ_CHECK(resp->file[i]->content != NULL);
    }
  }
  google__protobuf__compiler__code_generator_response__free_unpacked(resp,
                                                                     NULL);
  free(out);
  return 0;
}
