/*
 * codegen/gen.h - protoc-gen-crpc internals: the model built from a
 * CodeGeneratorRequest, C naming, and the emitters.
 *
 * Flow: plugin.c unpacks the request (plugin_main.c reads it from stdin)
 * -> cg_model_build() resolves every service, method and message type into
 * C names (names.c, model.c) -> cg_emit_header()/cg_emit_source() print
 * <file>.crpc.h/.c (emit_*.c).
 * Nothing is written unless every file generated without error, so a bad
 * input yields CodeGeneratorResponse.error and no files.
 *
 * Memory: everything the model owns comes from one cg_arena, freed at once.
 * Allocation failure aborts (a code generator has no useful way to go on).
 */
#ifndef CRPC_CODEGEN_GEN_H
#define CRPC_CODEGEN_GEN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"

/* ---- arena and text buffer ---- */

typedef struct cg_arena {
  void **ptrs;
  size_t len, cap;
} cg_arena;

/* Zeroed memory owned by the arena. Aborts on OOM. */
void *cg_alloc(cg_arena *a, size_t size);
/* printf into a string owned by the arena. */
char *cg_strf(cg_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees everything the arena handed out; the arena is reusable after. */
void cg_arena_free(cg_arena *a);

typedef struct cg_buf {
  char *data; /* NUL-terminated once anything was appended */
  size_t len, cap;
} cg_buf;

/* Appends formatted text. Aborts on OOM. */
void cg_put(cg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees the buffer's memory and zeroes it. */
void cg_buf_free(cg_buf *b);

/* ---- names (names.c) ---- */

/* protoc-c's ToCamel: "foo_bar" -> "FooBar" (underscores dropped). */
char *cg_to_camel(cg_arena *a, const char *s);
/* protoc-c's CamelToLower: "SayHello" -> "say_hello", "HTTPGet" -> "httpget".
 */
char *cg_camel_to_lower(cg_arena *a, const char *s);
/* protoc-c's C type of message "pkg.Outer.Inner": "Pkg__Outer__Inner". */
char *cg_c_type_name(cg_arena *a, const char *full_name);
/* protoc-c's descriptor variable: "pkg__outer__inner__descriptor". */
char *cg_c_descriptor_name(cg_arena *a, const char *full_name);
/* True if s is a C or C++ keyword (a header is compiled as both). */
bool cg_is_keyword(const char *s);
/* out[i] = lowercase form of names[i]; names whose lowercase forms collide
 * keep their exact .proto spelling instead (proto names are unique). */
void cg_resolve_names(cg_arena *a, const char *const *names, size_t n,
                      char **out);
/* "dir/foo-bar.proto" -> "DIR_FOO_BAR_PROTO_CRPC_H". */
char *cg_guard_name(cg_arena *a, const char *proto_file);
/* "dir/foo.proto" -> "dir/foo" (strips a trailing ".proto"). */
char *cg_strip_proto(cg_arena *a, const char *proto_file);

/* ---- model (model.c) ---- */

typedef struct cg_type {
  const char *full_name; /* "pkg.Outer.Inner", no leading dot */
  char *c_type;          /* "Pkg__Outer__Inner" */
  char *c_desc;          /* "pkg__outer__inner__descriptor" */
  const char *file;      /* the .proto that defines it */
} cg_type;

typedef struct cg_method {
  const char *proto_name; /* "SayHello" */
  char *c_name;           /* "say_hello": function-name part */
  char *member;           /* handler struct member (keyword-safe) */
  char *fn;               /* "<service prefix>_<c_name>" */
  char *path;             /* "/pkg.Service/SayHello" */
  const cg_type *in, *out;
  bool client_streaming, server_streaming;
  const char *comment; /* leading comment or NULL */
} cg_method;

typedef struct cg_service {
  const char *proto_name; /* "Greeter" */
  char *full_name;        /* "pkg.Greeter" */
  char *prefix;           /* "pkg_greeter" */
  cg_method *methods;
  size_t n_methods;
  const char *comment;
} cg_service;

/* One file's descriptor as the generated code embeds it
 * (emit_descriptor.c). */
typedef struct cg_fd {
  const char *name;   /* "dir/foo.proto" */
  char *ident;        /* name escaped into a C identifier part */
  uint8_t *bytes;     /* FileDescriptorProto without source_code_info */
  size_t len;
  const char **deps;  /* imported file names, in import order */
  size_t n_deps;
  bool embedded;      /* a static copy (google/protobuf/...), not extern */
} cg_fd;

typedef struct cg_file {
  const char *proto_name; /* "dir/foo.proto" as protoc names it */
  char *base;             /* "dir/foo" */
  cg_service *services;
  size_t n_services;
  char **pb_includes; /* .pb-c.h files to include, sorted, unique */
  size_t n_pb_includes;
  cg_fd fd;           /* this file's descriptor */
  cg_fd *fd_copies;   /* well-known imports embedded, imports first */
  size_t n_fd_copies;
} cg_file;

typedef struct cg_model {
  cg_file *files; /* one per file_to_generate, in request order */
  size_t n_files;
} cg_model;

/* Builds the model for every file to generate. On failure returns false
 * and sets *error (arena-owned) to a message naming the file and element. */
bool cg_model_build(cg_arena *a,
                    const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                    cg_model *model, char **error);

/* ---- descriptors (emit_descriptor.c) ---- */

/* Fills f->fd and f->fd_copies from fp and the request. False (with
 * *error) if an import is missing from the request. */
bool cg_descriptor_build(
    cg_arena *a, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
    const Google__Protobuf__FileDescriptorProto *fp, cg_file *f,
    char **error);
/* The header's extern declaration of crpc_fd_<file>. */
void cg_emit_descriptor_decl(cg_buf *b, const cg_file *f);
/* The source's byte arrays and crpc_file_descriptor definitions. */
void cg_emit_descriptor_defs(cg_buf *b, const cg_file *f);

/* ---- emitters ---- */

/* True if some method of some service of f satisfies pred. */
bool cg_any_method(const cg_file *f, bool (*pred)(const cg_method *));
/* One request, one response. */
bool cg_is_unary(const cg_method *m);
/* The method's shape as crpc names it: "CRPC_UNARY", ... */
const char *cg_kind_macro(const cg_method *m);
/* "unary", "client streaming", ... for comments. */
const char *cg_kind_words(const cg_method *m);
/* Prints heading and then the .proto comment's lines as one C comment,
 * breaking up comment delimiters. Either may be NULL; nothing if both are. */
void cg_put_doc(cg_buf *b, const char *indent, const char *heading,
                const char *comment);

/* Prints text (one paragraph) as a C comment starting at `indent`, words
 * wrapped at 80 columns, so names of any length keep the lines short. */
void cg_put_comment(cg_buf *b, const char *indent, const char *text);

/* Prints "ret name(params...)" then `end` (";\n" or " {\n"), wrapping
 * the parameters at 80 columns the way clang-format would. */
void cg_put_proto(cg_buf *b, const char *ret, const char *name,
                  const char *const *params, size_t n, const char *end);

/* <base>.crpc.h */
void cg_emit_header(cg_buf *b, const cg_file *f);
/* <base>.crpc.c */
void cg_emit_source(cg_buf *b, const cg_file *f);

/* Per-service parts, shared by the two files (emit_client.c,
 * emit_server.c, emit_server_async.c). decl: header prototypes; def:
 * definitions. */
void cg_emit_client_decls(cg_buf *b, const cg_service *s);
void cg_emit_client_defs(cg_buf *b, const cg_service *s);
void cg_emit_server_decls(cg_buf *b, const cg_service *s);
void cg_emit_server_defs(cg_buf *b, const cg_file *f, const cg_service *s);
void cg_emit_server_async_decls(cg_buf *b, const cg_service *s);
void cg_emit_server_async_defs(cg_buf *b, const cg_file *f,
                               const cg_service *s);
/* The static helpers of <file>.crpc.c that only the async glue uses. */
void cg_emit_server_async_helpers(cg_buf *b, const cg_file *f);

/* ---- pieces both server emitters print (emit_server.c) ---- */

/* The parameters of a handler that gets its request unpacked:
 * (call, ctx, [const In *req,] user_data), the request only if the client
 * sends one. Fills p (4 entries) and returns the count. */
size_t cg_handler_params(cg_arena *a, const cg_method *m, const char **p);
/* "crpc_code <fn><suffix>(crpc_server_call *call, const Out *msg)": with
 * helper NULL a declaration, else a definition forwarding to that static
 * helper of <file>.crpc.c. */
void cg_put_server_send(cg_buf *b, cg_arena *a, const cg_method *m,
                        const char *suffix, const char *helper);
/* The tail of an adapter whose ProtobufCMessage *req and crpc_code code are
 * set: calls h-><member> with the typed request, frees it, returns. */
void cg_put_typed_call(cg_buf *b, const cg_method *m);
/* "crpc_code <prefix><name>(crpc_server *server, const <prefix><type>
 * *handlers);" */
void cg_put_register_decl(cg_buf *b, const cg_service *s, const char *name,
                          const char *type);
/* Per-method lines inside a register function (handlers->member is known
 * to be non-NULL where `add` runs). */
typedef void (*cg_method_fn)(cg_buf *b, const cg_method *m);
/* "crpc_code <prefix><name>(server, const <prefix><type> *handlers)" with
 * the shared frame around `check` (may be NULL; may return
 * CRPC_INVALID_ARGUMENT before anything is registered) and `add` (sets
 * code) for each method, registering until the first error. */
void cg_put_register(cg_buf *b, const cg_file *f, const cg_service *s,
                     const char *name, const char *type, cg_method_fn check,
                     cg_method_fn add);

#endif /* CRPC_CODEGEN_GEN_H */
