/*
 * codegen/emit_descriptor.c - the .proto file's own descriptor in the
 * generated code, for server reflection (crpc/server_info.h).
 *
 * <file>.crpc.c defines `const crpc_file_descriptor crpc_fd_<file>`: the
 * file's FileDescriptorProto exactly as protoc handed it to the plugin,
 * minus source_code_info (comments and spans: large, and no reflection
 * client needs them), serialized into a byte array, plus pointers to the
 * descriptors of the files it imports. The register functions add it to
 * the server, so a registered service is reflectable without any .proto
 * parsing at run time.
 *
 * Imports: a file that crpc generates code for (anything a
 * crpc_proto_library compiles) defines its own crpc_fd_<file>, and the
 * importer refers to it by name, as protobuf's C++ descriptor tables do;
 * the linker then brings in each file once. protobuf's own files
 * (google/protobuf/..., the well-known types) have no crpc code anywhere
 * (//codegen:protobuf_c_wkt is protoc-c only), so an importer embeds a
 * static copy of each one it needs, with their imports; the server's
 * registry keeps one per name.
 *
 * Names: crpc_fd_ + the file name with every byte but [A-Za-z0-9] written
 * as _XX (hex), so distinct files can never share a C name.
 */
#include <string.h>

#include "codegen/gen.h"

typedef Google__Protobuf__FileDescriptorProto FileProto;

static const char *const kWktPrefix = "google/protobuf/";

static bool is_wkt(const char *name) {
  return strncmp(name, kWktPrefix, strlen(kWktPrefix)) == 0;
}

static char *escape(cg_arena *a, const char *name) {
  size_t n = strlen(name);
  char *out = cg_alloc(a, 3 * n + 1);
  char *p = out;
  for (const char *s = name; *s; s++) {
    unsigned char c = (unsigned char)*s;
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9');
    if (alnum) {
      *p++ = (char)c;
    } else {
      static const char hex[] = "0123456789abcdef";
      *p++ = '_';
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
    }
  }
  *p = '\0';
  return out;
}

static const FileProto *find(const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                             const char *name) {
  for (size_t i = 0; i < req->n_proto_file; i++) {
    if (req->proto_file[i]->name != NULL &&
        strcmp(req->proto_file[i]->name, name) == 0) {
      return req->proto_file[i];
    }
  }
  return NULL;
}

/* Fills d from fp: names and the stripped serialization. */
static void fill(cg_arena *a, const FileProto *fp, bool embedded, cg_fd *d) {
  d->name = fp->name;
  d->ident = escape(a, fp->name);
  d->embedded = embedded;
  /* The request is the plugin's own copy: detach the source info for the
   * packing and put it back (the comments still feed the emitters). */
  FileProto *w = (FileProto *)fp;
  Google__Protobuf__SourceCodeInfo *sci = w->source_code_info;
  w->source_code_info = NULL;
  d->len = protobuf_c_message_get_packed_size(&w->base);
  d->bytes = cg_alloc(a, d->len + 1);
  protobuf_c_message_pack(&w->base, d->bytes);
  w->source_code_info = sci;
  d->n_deps = fp->n_dependency;
  d->deps = cg_alloc(a, (fp->n_dependency + 1) * sizeof *d->deps);
  for (size_t i = 0; i < fp->n_dependency; i++) d->deps[i] = fp->dependency[i];
}

/* Appends the well-known file `name` and, first, its own imports (so each
 * copy only refers to copies printed before it), once each. */
static bool add_copy(cg_arena *a,
                     const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                     cg_file *f, const char *name, size_t cap, char **error) {
  for (size_t i = 0; i < f->n_fd_copies; i++) {
    if (strcmp(f->fd_copies[i].name, name) == 0) return true;
  }
  const FileProto *fp = find(req, name);
  if (fp == NULL || f->n_fd_copies == cap) {
    *error = cg_strf(a, "%s: imports %s, which is missing from the request",
                     f->proto_name, name);
    return false;
  }
  for (size_t i = 0; i < fp->n_dependency; i++) {
    if (!add_copy(a, req, f, fp->dependency[i], cap, error)) return false;
  }
  fill(a, fp, true, &f->fd_copies[f->n_fd_copies++]);
  return true;
}

bool cg_descriptor_build(
    cg_arena *a, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
    const Google__Protobuf__FileDescriptorProto *fp, cg_file *f,
    char **error) {
  fill(a, fp, false, &f->fd);
  size_t cap = req->n_proto_file;
  f->fd_copies = cg_alloc(a, (cap + 1) * sizeof *f->fd_copies);
  for (size_t i = 0; i < fp->n_dependency; i++) {
    if (is_wkt(fp->dependency[i]) &&
        !add_copy(a, req, f, fp->dependency[i], cap, error)) {
      return false;
    }
  }
  return true;
}

void cg_emit_descriptor_decl(cg_buf *b, const cg_file *f) {
  cg_put(b, "\n");
  cg_put_comment(b, "",
                 "This file's descriptor (and, through it, its imports') for "
                 "server reflection. The register functions below add it to "
                 "the server; a file without services can be added with "
                 "crpc_server_add_file_descriptor (crpc/server_info.h).");
  cg_put(b, "extern const crpc_file_descriptor crpc_fd_%s;\n", f->fd.ident);
}

/* The ident a descriptor is known by in this .crpc.c: the static copy's
 * for a well-known file, else the extern crpc_fd_<file>. */
static const char *ref_name(cg_arena *a, const cg_file *f, const char *name) {
  for (size_t i = 0; i < f->n_fd_copies; i++) {
    if (strcmp(f->fd_copies[i].name, name) == 0) {
      return cg_strf(a, "crpc_gen_fd_copy_%s", f->fd_copies[i].ident);
    }
  }
  return cg_strf(a, "crpc_fd_%s", escape(a, name));
}

/* name inside a C string literal: quotes, backslashes and anything not
 * printable ASCII as escapes (octal, so no following digit can extend it). */
static void put_c_string(cg_buf *b, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      cg_put(b, "\\%c", c);
    } else if (c < 0x20 || c >= 0x7f || c == '?') {
      cg_put(b, "\\%03o", c); /* '?': no trigraphs */
    } else {
      cg_put(b, "%c", c);
    }
  }
}

static void put_one(cg_buf *b, cg_arena *a, const cg_file *f, const cg_fd *d) {
  cg_put(b, "\n/* %s: FileDescriptorProto, %zu bytes. */\n", d->name, d->len);
  cg_put(b, "static const unsigned char crpc_gen_fd_bytes_%s[] = {", d->ident);
  for (size_t i = 0; i < d->len; i++) {
    cg_put(b, "%s0x%02x%s", i % 12 == 0 ? "\n    " : "", d->bytes[i],
           i + 1 < d->len ? (i % 12 == 11 ? "," : ", ") : "");
  }
  cg_put(b, "};\n");
  if (d->n_deps > 0) {
    cg_put(b, "static const crpc_file_descriptor *const crpc_gen_fd_deps_%s[] = {\n",
           d->ident);
    for (size_t i = 0; i < d->n_deps; i++) {
      cg_put(b, "    &%s,\n", ref_name(a, f, d->deps[i]));
    }
    cg_put(b, "};\n");
  }
  if (d->embedded) {
    cg_put(b, "static const crpc_file_descriptor crpc_gen_fd_copy_%s = {\n",
           d->ident);
  } else {
    cg_put(b, "const crpc_file_descriptor crpc_fd_%s = {\n", d->ident);
  }
  cg_put(b, "    \"");
  put_c_string(b, d->name);
  cg_put(b, "\",\n    crpc_gen_fd_bytes_%s,\n    sizeof crpc_gen_fd_bytes_%s,\n",
         d->ident, d->ident);
  if (d->n_deps > 0) {
    cg_put(b, "    crpc_gen_fd_deps_%s,\n    %zu};\n", d->ident, d->n_deps);
  } else {
    cg_put(b, "    NULL,\n    0};\n");
  }
}

void cg_emit_descriptor_defs(cg_buf *b, const cg_file *f) {
  cg_arena a = {0};
  cg_put(b, "\n/* ---- descriptors (crpc/server_info.h) ---- */\n");
  /* Imports crpc generates elsewhere are declared here, not included:
   * their .crpc.h files need not be on the include path of this one. */
  for (size_t i = 0; i < f->fd.n_deps; i++) {
    if (!is_wkt(f->fd.deps[i])) {
      cg_put(b, "extern const crpc_file_descriptor %s;\n",
             ref_name(&a, f, f->fd.deps[i]));
    }
  }
  for (size_t i = 0; i < f->n_fd_copies; i++) {
    put_one(b, &a, f, &f->fd_copies[i]);
  }
  put_one(b, &a, f, &f->fd);
  cg_arena_free(&a);
}
