/*
 * codegen/plugin_main.c - protoc-gen-crpc's entry point: CodeGeneratorRequest
 * on stdin, CodeGeneratorResponse on stdout (the protoc plugin protocol).
 * The work itself is cg_plugin_run (plugin.h).
 *
 * Errors in the .proto input go into CodeGeneratorResponse.error with no
 * files and exit status 0, as the protocol asks; only an unreadable request
 * (protoc's fault, not the user's) is reported on stderr with exit 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "codegen/plugin.h"

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

int main(void) {
  size_t len;
  uint8_t *data = read_all(stdin, &len);
  if (data == NULL) {
    fputs("protoc-gen-crpc: cannot read the request from stdin\n", stderr);
    return 1;
  }
  uint8_t *out = NULL;
  size_t out_len = 0;
  cg_plugin_result res = cg_plugin_run(data, len, &out, &out_len);
  free(data);
  if (res == CG_PLUGIN_BAD_REQUEST) {
    fputs(
        "protoc-gen-crpc: stdin is not a CodeGeneratorRequest (run me "
        "through protoc: protoc --plugin=protoc-gen-crpc=PATH "
        "--crpc_out=DIR file.proto)\n",
        stderr);
    return 1;
  }
  if (res != CG_PLUGIN_OK) {
    fputs("protoc-gen-crpc: out of memory\n", stderr);
    return 1;
  }
  int rc = 0;
  if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) {
    fputs("protoc-gen-crpc: cannot write the response\n", stderr);
    rc = 1;
  }
  free(out);
  return rc;
}
