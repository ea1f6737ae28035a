/* conformance/interop_common.c - helpers shared by the interop binaries. */
#include "conformance/interop_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

bool interop_payload_init(Grpc__Testing__Payload *payload, size_t size) {
  grpc__testing__payload__init(payload);
  /* calloc(.., 1) even for size 0: body.data must be a valid pointer for
   * protobuf-c whenever len is 0 or not. */
  payload->body.data = calloc(size ? size : 1, 1);
  payload->body.len = size;
  return payload->body.data != NULL;
}

void interop_payload_free(Grpc__Testing__Payload *payload) {
  free(payload->body.data);
  payload->body.data = NULL;
  payload->body.len = 0;
}

bool interop_body_is_zero(const ProtobufCBinaryData *body) {
  for (size_t i = 0; i < body->len; i++) {
    if (body->data[i] != 0) return false;
  }
  return true;
}

bool interop_flag_true(const char *value) {
  return value != NULL &&
         (strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
          strcasecmp(value, "yes") == 0);
}

const char *interop_find_test_cred(const char *name, char *path, size_t cap) {
  static const char *const kDirs[] = {
      "src/core/tsi/test_creds",
      "/var/local/git/grpc/src/core/tsi/test_creds",
  };
  for (size_t i = 0; i < sizeof(kDirs) / sizeof(kDirs[0]); i++) {
    int n = snprintf(path, cap, "%s/%s", kDirs[i], name);
    if (n > 0 && (size_t)n < cap && access(path, R_OK) == 0) return path;
  }
  return NULL;
}

bool interop_parse_flags(int argc, char **argv, const interop_flag *flags,
                         size_t n, const char *usage) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--help") == 0) {
      fprintf(stderr, "%s", usage);
      return false;
    }
    arg += 2;
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const interop_flag *f = NULL;
    for (size_t j = 0; j < n; j++) {
      if (strlen(flags[j].name) == len && strncmp(flags[j].name, arg, len) == 0) {
        f = &flags[j];
        break;
      }
    }
    if (f == NULL) {
      fprintf(stderr, "unknown flag --%.*s\n%s", (int)len, arg, usage);
      return false;
    }
    if (eq != NULL) {
      *f->value = eq + 1;
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      *f->value = argv[++i];
    } else {
      *f->value = "true"; /* a bare boolean flag */
    }
  }
  return true;
}
