/*
 * codegen/plugin_main.c - protoc-gen-crpc's entry point: CodeGeneratorRequest
 * on stdin, CodeGeneratorResponse on stdout (the protoc plugin protocol).
 *
 * Errors in the .proto input go into CodeGeneratorResponse.error with no
 * files and exit status 0, as the protocol asks; only an unreadable request
 * (protoc's fault, not the user's) is reported on stderr with exit 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/gen.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse Response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File OutFile;

static uint8_t *read_all(FILE *in, size_t *len) {
  size_t cap = 1 << 16;
  uint8_t *data = malloc(cap);
  *len = 0;
  while (data != NULL) {
    size_t n = fread(data + *len, 1, cap - *len, in);
    *len += n;
    if (n == 0) break;
    if (*len == cap) {
      uint8_t *bigger = realloc(data, cap * 2);
      if (bigger == NULL) free(data);
      data = bigger;
      cap *= 2;
    }
  }
  if (data == NULL || ferror(in)) {
    free(data);
    return NULL;
  }
  return data;
}

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

int main(void) {
  size_t len;
  uint8_t *data = read_all(stdin, &len);
  if (data == NULL) {
    fputs("protoc-gen-crpc: cannot read the request from stdin\n", stderr);
    return 1;
  }
  Request *req = google__protobuf__compiler__code_generator_request__unpack(
      NULL, len, data);
  free(data);
  if (req == NULL) {
    fputs(
        "protoc-gen-crpc: stdin is not a CodeGeneratorRequest (run me "
        "through protoc: protoc --plugin=protoc-gen-crpc=PATH "
        "--crpc_out=DIR file.proto)\n",
        stderr);
    return 1;
  }

  cg_arena arena = {0};
  Response resp;
  google__protobuf__compiler__code_generator_response__init(&resp);
  resp.has_supported_features = 1;
  resp.supported_features =
      GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
  generate(&arena, req, &resp);

  size_t out_len =
      google__protobuf__compiler__code_generator_response__get_packed_size(
          &resp);
  uint8_t *out = malloc(out_len ? out_len : 1);
  int rc = 0;
  if (out == NULL) {
    fputs("protoc-gen-crpc: out of memory\n", stderr);
    rc = 1;
  } else {
    google__protobuf__compiler__code_generator_response__pack(&resp, out);
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) {
      fputs("protoc-gen-crpc: cannot write the response\n", stderr);
      rc = 1;
    }
  }
  free(out);
  cg_arena_free(&arena);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  return rc;
}
