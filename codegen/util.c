/* codegen/util.c - the arena and the text buffer protoc-gen-crpc builds on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/gen.h"

static void oom(void) {
  /* A plugin that runs out of memory cannot produce a response; protoc
   * reports the non-zero exit. */
  fputs("protoc-gen-crpc: out of memory\n", stderr);
  abort();
}

void *cg_alloc(cg_arena *a, size_t size) {
  if (a->len == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 64;
    void **ptrs = realloc(a->ptrs, cap * sizeof *ptrs);
    if (ptrs == NULL) oom();
    a->ptrs = ptrs;
    a->cap = cap;
  }
  void *p = calloc(1, size ? size : 1);
  if (p == NULL) oom();
  a->ptrs[a->len++] = p;
  return p;
}

char *cg_strf(cg_arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) oom();
  char *s = cg_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

void cg_arena_free(cg_arena *a) {
  for (size_t i = 0; i < a->len; i++) free(a->ptrs[i]);
  free(a->ptrs);
  a->ptrs = NULL;
  a->len = a->cap = 0;
}

void cg_put(cg_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) oom();
  size_t need = b->len + (size_t)n + 1;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    char *data = realloc(b->data, cap);
    if (data == NULL) oom();
    b->data = data;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void cg_buf_free(cg_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}
