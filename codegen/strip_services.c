/*
 * codegen/strip_services.c - FileDescriptorSet on stdin -> the same set
 * without services on stdout.
 *
 * Why: protoc-c also writes protobuf-c RPC stubs for every service, with
 * no escaping: a method named `register` or a pair `Get`/`get` makes its
 * .pb-c.h fail to compile, and its helloworld__greeter__say_hello would sit
 * confusingly next to crpc's helloworld_greeter_say_hello. crpc uses only
 * protoc-c's message code, so crpc_proto_library runs protoc-c on a
 * service-free copy of the descriptors (protoc --descriptor_set_in).
 */
#include <stdio.h>
#include <stdlib.h>

#include "google/protobuf/descriptor.pb-c.h"

int main(void) {
  size_t cap = 1 << 16, len = 0, n;
  uint8_t *data = malloc(cap);
  while (data != NULL && (n = fread(data + len, 1, cap - len, stdin)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *bigger = realloc(data, cap *= 2);
      if (bigger == NULL) free(data);
      data = bigger;
    }
  }
  if (data == NULL) {
    fputs("strip_services: out of memory\n", stderr);
    return 1;
  }
  Google__Protobuf__FileDescriptorSet *set =
      google__protobuf__file_descriptor_set__unpack(NULL, len, data);
  free(data);
  if (set == NULL) {
    fputs("strip_services: stdin is not a FileDescriptorSet\n", stderr);
    return 1;
  }
  /* Hide the services while packing, then put them back so that
   * free_unpacked releases them. */
  size_t *saved = calloc(set->n_file + 1, sizeof *saved);
  if (saved == NULL) return 1;
  for (size_t i = 0; i < set->n_file; i++) {
    saved[i] = set->file[i]->n_service;
    set->file[i]->n_service = 0;
  }
  size_t out_len = google__protobuf__file_descriptor_set__get_packed_size(set);
  uint8_t *out = malloc(out_len ? out_len : 1);
  int rc = 0;
  if (out == NULL) {
    rc = 1;
  } else {
    google__protobuf__file_descriptor_set__pack(set, out);
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) {
      fputs("strip_services: cannot write stdout\n", stderr);
      rc = 1;
    }
  }
  for (size_t i = 0; i < set->n_file; i++) set->file[i]->n_service = saved[i];
  free(saved);
  free(out);
  google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
  return rc;
}
