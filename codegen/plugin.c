/*
 * codegen/plugin.c - protoc-gen-crpc's request-to-response step
 * (plugin.h): unpack, build the model, emit every file, pack.
 *
 * Errors in the .proto input go into CodeGeneratorResponse.error with no
 * files, as the plugin protocol asks.
 */
#include "codegen/plugin.h"

#include <stdlib.h>

#include "codegen/gen.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse Response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File OutFile;

/* Fills resp from the model. All files are built before any is handed to
 * protoc, so a failure can never leave some of them written. */
static void generate(cg_arena *a, const Request *req, Response *resp) {
  cg_model model;
  char *error = NULL;
  if (!cg_model_build(a, req, &model, &error)) {
    resp->error = error;
    return;
  }
  OutFile **files = cg_alloc(a, (2 * model.n_files + 1) * sizeof *files);
  for (size_t i = 0; i < model.n_files; i++) {
    const cg_file *f = &model.files[i];
    for (int k = 0; k < 2; k++) {
      cg_buf b = {0};
      if (k == 0) {
        cg_emit_header(&b, f);
      } else {
        cg_emit_source(&b, f);
      }
      OutFile *of = cg_alloc(a, sizeof *of);
      google__protobuf__compiler__code_generator_response__file__init(of);
      of->name = cg_strf(a, "%s.crpc.%s", f->base, k == 0 ? "h" : "c");
      of->content = cg_strf(a, "%s", b.data ? b.data : "");
      cg_buf_free(&b);
      files[resp->n_file++] = of;
    }
  }
  resp->file = files;
}

cg_plugin_result cg_plugin_run(const uint8_t *req_bytes, size_t len,
                               uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  /* protobuf-c reads nothing when len is 0, but a NULL buffer is not a
   * contract it states; hand it a valid pointer either way. */
  static const uint8_t empty[1];
  Request *req = google__protobuf__compiler__code_generator_request__unpack(
      NULL, len, req_bytes != NULL ? req_bytes : empty);
  if (req == NULL) return CG_PLUGIN_BAD_REQUEST;

  cg_arena arena = {0};
  Response resp;
  google__protobuf__compiler__code_generator_response__init(&resp);
  resp.has_supported_features = 1;
  resp.supported_features =
      GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
  generate(&arena, req, &resp);

  size_t n =
      google__protobuf__compiler__code_generator_response__get_packed_size(
          &resp);
  uint8_t *buf = malloc(n ? n : 1);
  cg_plugin_result rc = CG_PLUGIN_NO_MEMORY;
  if (buf != NULL) {
    google__protobuf__compiler__code_generator_response__pack(&resp, buf);
    *out = buf;
    *out_len = n;
    rc = CG_PLUGIN_OK;
  }
  cg_arena_free(&arena);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  return rc;
}
