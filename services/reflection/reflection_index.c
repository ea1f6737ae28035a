/*
 * services/reflection/reflection_index.c - collects every symbol a
 * reflection client may ask about (crpc/admin.h lists them) from the
 * server's FileDescriptorProtos, and the services from its method table.
 */
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "services/reflection/reflection_index.h"

typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;

/* "scope.name" (or "name" at the root), malloc'd; NULL if out of memory. */
static char *join(const char *scope, const char *name) {
  if (name == NULL) name = "";
  size_t a = strlen(scope), b = strlen(name);
  char *s = malloc(a + b + 2);
  if (s == NULL) return NULL;
  memcpy(s, scope, a);
  size_t n = a;
  if (a > 0) s[n++] = '.';
  memcpy(s + n, name, b + 1);
  return s;
}

/* Takes ownership of name. */
static bool add_symbol(refl_index *idx, char *name, size_t file,
                       bool message) {
  if (name == NULL) return false;
  if (idx->n_symbols == idx->cap_symbols) {
    size_t cap = idx->cap_symbols ? 2 * idx->cap_symbols : 64;
    refl_symbol *v = realloc(idx->symbols, cap * sizeof(*v));
    if (v == NULL) {
      free(name);
      return false;
    }
    idx->symbols = v;
    idx->cap_symbols = cap;
  }
  idx->symbols[idx->n_symbols++] = (refl_symbol){name, file, message};
  return true;
}

static bool add_extension(refl_index *idx, const FieldProto *f,
                          size_t file) {
  if (f->extendee == NULL || !f->has_number) return true;
  if (idx->n_exts == idx->cap_exts) {
    size_t cap = idx->cap_exts ? 2 * idx->cap_exts : 16;
    refl_extension *v = realloc(idx->exts, cap * sizeof(*v));
    if (v == NULL) return false;
    idx->exts = v;
    idx->cap_exts = cap;
  }
  const char *e = f->extendee[0] == '.' ? f->extendee + 1 : f->extendee;
  size_t n = strlen(e) + 1;
  char *copy = malloc(n);
  if (copy == NULL) return false;
  memcpy(copy, e, n);
  idx->exts[idx->n_exts++] = (refl_extension){copy, f->number, file};
  return true;
}

/* Enum values are scoped beside their enum (C++ scoping), as protobuf
 * names them: "pkg.VALUE", "pkg.Msg.VALUE". */
static bool add_enum(refl_index *idx, const char *scope, const EnumProto *e,
                     size_t file) {
  if (!add_symbol(idx, join(scope, e->name), file, false)) return false;
  for (size_t i = 0; i < e->n_value; i++) {
    if (!add_symbol(idx, join(scope, e->value[i]->name), file, false)) {
      return false;
    }
  }
  return true;
}

static bool add_fields(refl_index *idx, const char *scope,
                       FieldProto *const *fields, size_t n, size_t file,
                       bool extensions) {
  for (size_t i = 0; i < n; i++) {
    if (!add_symbol(idx, join(scope, fields[i]->name), file, false)) {
      return false;
    }
    if (extensions && !add_extension(idx, fields[i], file)) return false;
  }
  return true;
}

static bool add_message(refl_index *idx, const char *scope, const MsgProto *m,
                        size_t file, int depth) {
  if (depth > 100) return true; /* protoc never nests this deep */
  char *full = join(scope, m->name);
  if (full == NULL) return false;
  bool ok = add_fields(idx, full, m->field, m->n_field, file, false) &&
            add_fields(idx, full, m->extension, m->n_extension, file, true);
  for (size_t i = 0; ok && i < m->n_oneof_decl; i++) {
    ok = add_symbol(idx, join(full, m->oneof_decl[i]->name), file, false);
  }
  for (size_t i = 0; ok && i < m->n_enum_type; i++) {
    ok = add_enum(idx, full, m->enum_type[i], file);
  }
  for (size_t i = 0; ok && i < m->n_nested_type; i++) {
    ok = add_message(idx, full, m->nested_type[i], file, depth + 1);
  }
  /* Last: add_symbol takes ownership of full. */
  return ok ? add_symbol(idx, full, file, true) : (free(full), false);
}

static bool index_file(refl_index *idx, size_t file) {
  const crpc_file_descriptor *fd = idx->files[file];
  Google__Protobuf__FileDescriptorProto *fp =
      google__protobuf__file_descriptor_proto__unpack(NULL, fd->len,
                                                      fd->data);
  /* A descriptor that does not parse stays servable by file name. */
  if (fp == NULL) return true;
  const char *pkg = fp->package != NULL ? fp->package : "";
  bool ok = pkg[0] == '\0' || add_symbol(idx, join("", pkg), file, false);
  for (size_t i = 0; ok && i < fp->n_message_type; i++) {
    ok = add_message(idx, pkg, fp->message_type[i], file, 0);
  }
  for (size_t i = 0; ok && i < fp->n_enum_type; i++) {
    ok = add_enum(idx, pkg, fp->enum_type[i], file);
  }
  if (ok) {
    ok = add_fields(idx, pkg, fp->extension, fp->n_extension, file, true);
  }
  for (size_t i = 0; ok && i < fp->n_service; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = fp->service[i];
    char *full = join(pkg, s->name);
    ok = full != NULL;
    for (size_t j = 0; ok && j < s->n_method; j++) {
      ok = add_symbol(idx, join(full, s->method[j]->name), file, false);
    }
    ok = ok ? add_symbol(idx, full, file, false) : (free(full), false);
  }
  google__protobuf__file_descriptor_proto__free_unpacked(fp, NULL);
  return ok;
}

/* By name, then by file: the stable sort qsort is not, made explicit, so
 * the file registered first (imports come first) wins a duplicate. */
static int cmp_symbol(const void *x, const void *y) {
  const refl_symbol *a = x, *b = y;
  int c = strcmp(a->name, b->name);
  if (c != 0) return c;
  return a->file < b->file ? -1 : a->file > b->file;
}

static bool add_services(refl_index *idx, const crpc_server *server) {
  size_t n = crpc_server_method_count(server);
  idx->services = calloc(n + 1, sizeof(*idx->services));
  if (idx->services == NULL) return false;
  for (size_t i = 0; i < n; i++) {
    const char *path = crpc_server_method_path(server, i);
    const char *slash = path != NULL ? strchr(path + 1, '/') : NULL;
    if (slash == NULL) continue;
    size_t len = (size_t)(slash - path - 1);
    bool seen = false;
    for (size_t j = 0; j < idx->n_services && !seen; j++) {
      seen = strlen(idx->services[j]) == len &&
             memcmp(idx->services[j], path + 1, len) == 0;
    }
    if (seen) continue;
    char *name = malloc(len + 1);
    if (name == NULL) return false;
    memcpy(name, path + 1, len);
    name[len] = '\0';
    idx->services[idx->n_services++] = name;
  }
  return true;
}

bool refl_index_build(refl_index *idx, const crpc_server *server) {
  memset(idx, 0, sizeof(*idx));
  size_t n = crpc_server_file_descriptor_count(server);
  idx->files = calloc(n + 1, sizeof(*idx->files));
  bool ok = idx->files != NULL;
  for (size_t i = 0; ok && i < n; i++) {
    idx->files[idx->n_files++] = crpc_server_file_descriptor_at(server, i);
  }
  for (size_t i = 0; ok && i < idx->n_files; i++) ok = index_file(idx, i);
  if (ok) ok = add_services(idx, server);
  if (!ok) {
    refl_index_free(idx);
    return false;
  }
  qsort(idx->symbols, idx->n_symbols, sizeof(*idx->symbols), cmp_symbol);
  return true;
}

void refl_index_free(refl_index *idx) {
  for (size_t i = 0; i < idx->n_symbols; i++) free(idx->symbols[i].name);
  for (size_t i = 0; i < idx->n_exts; i++) free(idx->exts[i].extendee);
  for (size_t i = 0; i < idx->n_services; i++) free(idx->services[i]);
  free(idx->symbols);
  free(idx->exts);
  free(idx->services);
  free(idx->files);
  memset(idx, 0, sizeof(*idx));
}

static const char *undot(const char *name) {
  return name[0] == '.' ? name + 1 : name;
}

long refl_find_file(const refl_index *idx, const char *name) {
  for (size_t i = 0; i < idx->n_files; i++) {
    if (strcmp(idx->files[i]->name, name) == 0) return (long)i;
  }
  return -1;
}

/* The first entry named `name` (lowest file among duplicates), or NULL. */
static const refl_symbol *lookup(const refl_index *idx, const char *name) {
  size_t lo = 0, hi = idx->n_symbols;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(idx->symbols[mid].name, name) < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < idx->n_symbols && strcmp(idx->symbols[lo].name, name) == 0) {
    return &idx->symbols[lo];
  }
  return NULL;
}

long refl_find_symbol(const refl_index *idx, const char *symbol) {
  const refl_symbol *s = lookup(idx, undot(symbol));
  return s != NULL ? (long)s->file : -1;
}

long refl_find_extension(const refl_index *idx, const char *extendee,
                         int32_t number) {
  extendee = undot(extendee);
  for (size_t i = 0; i < idx->n_exts; i++) {
    if (idx->exts[i].number == number &&
        strcmp(idx->exts[i].extendee, extendee) == 0) {
      return (long)idx->exts[i].file;
    }
  }
  return -1;
}

bool refl_is_message(const refl_index *idx, const char *name) {
  const refl_symbol *s = lookup(idx, undot(name));
  return s != NULL && s->message;
}
