/*
 * codegen/model.c - turns a CodeGeneratorRequest into the cg_model the
 * emitters print: C names for services, methods and message types,
 * includes, comments. Every check that can reject an input lives here, so
 * the emitters cannot fail halfway through a file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/gen.h"

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__ServiceDescriptorProto SvcProto;

typedef struct types {
  cg_type *v;
  size_t len, cap;
} types;

static void add_type(cg_arena *a, types *t, const char *scope,
                     const MsgProto *m, const char *file) {
  if (t->len == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 64;
    cg_type *v = cg_alloc(a, cap * sizeof *v);
    if (t->len) memcpy(v, t->v, t->len * sizeof *v);
    t->v = v;
    t->cap = cap;
  }
  char *full = scope[0] ? cg_strf(a, "%s.%s", scope, m->name)
                        : cg_strf(a, "%s", m->name);
  cg_type *ty = &t->v[t->len++];
  ty->full_name = full;
  ty->c_type = cg_c_type_name(a, full);
  ty->c_desc = cg_c_descriptor_name(a, full);
  ty->file = file;
  for (size_t i = 0; i < m->n_nested_type; i++) {
    add_type(a, t, full, m->nested_type[i], file);
  }
}

/* Array growth above copies cg_type values, so lookups hand out pointers
 * only after the table is complete. */
static const cg_type *find_type(const types *t, const char *type_name) {
  if (type_name == NULL) return NULL;
  if (type_name[0] == '.') type_name++;
  for (size_t i = 0; i < t->len; i++) {
    if (strcmp(t->v[i].full_name, type_name) == 0) return &t->v[i];
  }
  return NULL;
}

static const FileProto *find_file(
    const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
    const char *name) {
  for (size_t i = 0; i < req->n_proto_file; i++) {
    if (req->proto_file[i]->name &&
        strcmp(req->proto_file[i]->name, name) == 0) {
      return req->proto_file[i];
    }
  }
  return NULL;
}

/* Reads a varint; false if it runs past the end. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t byte = *(*p)++;
    *v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

/* True if protoc-c's `option (pb_c_file).c_package = ...` is set. It
 * renames every C type of the file, and protoc-c's header does not record
 * the new prefix anywhere the plugin could read it, so such files are
 * rejected instead of generating code that would not compile. The option
 * arrives as an unknown field (1019) of FileOptions, since the plugin's
 * descriptor.proto does not know protoc-c's extensions. */
static bool has_c_package(const FileProto *f) {
  if (f->options == NULL) return false;
  const ProtobufCMessage *o = &f->options->base;
  for (unsigned i = 0; i < o->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &o->unknown_fields[i];
    if (u->tag != 1019 || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
      continue;
    /* protobuf-c keeps the length prefix in an unknown field's data. */
    const uint8_t *p = u->data, *end = u->data + u->len;
    uint64_t key, v;
    if (!varint(&p, end, &v) || v > (uint64_t)(end - p)) continue;
    end = p + v;
    while (p < end && varint(&p, end, &key)) {
      if (key >> 3 == 6) return true; /* ProtobufCFileOptions.c_package */
      switch (key & 7) {
        case 0:
          if (!varint(&p, end, &v)) return false;
          break;
        case 1:
          if (end - p < 8) return false;
          p += 8;
          break;
        case 2:
          if (!varint(&p, end, &v) || v > (uint64_t)(end - p)) return false;
          p += v;
          break;
        case 5:
          if (end - p < 4) return false;
          p += 4;
          break;
        default:
          return false;
      }
    }
  }
  return false;
}

/* The leading comment at exactly `path`, or NULL. */
static const char *comment_at(const FileProto *f, const int32_t *path,
                              size_t n) {
  if (f->source_code_info == NULL) return NULL;
  const Google__Protobuf__SourceCodeInfo *sci = f->source_code_info;
  for (size_t i = 0; i < sci->n_location; i++) {
    const Google__Protobuf__SourceCodeInfo__Location *l = sci->location[i];
    if (l->n_path == n && memcmp(l->path, path, n * sizeof *path) == 0) {
      return l->leading_comments;
    }
  }
  return NULL;
}

/* "foo.barBaz" -> "foo_bar_baz"; "" -> "". */
static char *package_prefix(cg_arena *a, const char *pkg) {
  char *out = cg_strf(a, "%s", "");
  char *copy = cg_strf(a, "%s", pkg ? pkg : "");
  for (char *piece = strtok(copy, "."); piece; piece = strtok(NULL, ".")) {
    out = cg_strf(a, "%s%s%s", out, out[0] ? "_" : "",
                  cg_camel_to_lower(a, piece));
  }
  return out;
}

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Every file-scope identifier a method generates (see emit_*.c). Checked
 * for clashes because names like "Get" + "GetStart" would otherwise meet
 * as "..._get_start". */
static size_t method_idents(cg_arena *a, const cg_method *m, char **out) {
  size_t n = 0;
  out[n++] = cg_strf(a, "%s_method", m->fn);
  out[n++] = cg_strf(a, "%s_server_send", m->fn);
  out[n++] = cg_strf(a, "%s_serve", m->fn); /* static adapter */
  out[n++] = cg_strf(a, "%s_send_async", m->fn);
  if (!m->client_streaming && !m->server_streaming) {
    out[n++] = cg_strf(a, "%s", m->fn);
    out[n++] = cg_strf(a, "%s_async_fn", m->fn);
    out[n++] = cg_strf(a, "%s_serve_async", m->fn); /* static glue */
    return n;
  }
  out[n++] = cg_strf(a, "%s_reactor", m->fn);
  /* static glue */
  out[n++] = cg_strf(a, "%s_async_start", m->fn);
  out[n++] = cg_strf(a, "%s_async_message", m->fn);
  out[n++] = cg_strf(a, "%s_async_reactor", m->fn);
  out[n++] = cg_strf(a, "%s_start", m->fn);
  if (m->client_streaming) {
    out[n++] = cg_strf(a, "%s_send", m->fn);
    out[n++] = cg_strf(a, "%s_server_recv", m->fn);
  }
  if (m->server_streaming) out[n++] = cg_strf(a, "%s_recv", m->fn);
  if (m->client_streaming && !m->server_streaming) {
    out[n++] = cg_strf(a, "%s_finish", m->fn);
  }
  return n;
}

static bool check_unique(cg_arena *a, const cg_file *f, char **error) {
  size_t cap = 4;
  for (size_t i = 0; i < f->n_services; i++) {
    cap += 4 + 12 * f->services[i].n_methods;
  }
  char **ids = cg_alloc(a, cap * sizeof *ids);
  size_t n = 0;
  for (size_t i = 0; i < f->n_services; i++) {
    const cg_service *s = &f->services[i];
    ids[n++] = cg_strf(a, "%s_handlers", s->prefix);
    ids[n++] = cg_strf(a, "%s_register_handlers", s->prefix);
    ids[n++] = cg_strf(a, "%s_async_handlers", s->prefix);
    ids[n++] = cg_strf(a, "%s_register_async_handlers", s->prefix);
    for (size_t j = 0; j < s->n_methods; j++) {
      n += method_idents(a, &s->methods[j], ids + n);
      for (size_t k = 0; k < j; k++) {
        if (strcmp(s->methods[j].member, s->methods[k].member) == 0) {
          *error = cg_strf(a,
                           "%s: methods %s and %s of service %s both map to "
                           "the C name \"%s\"; rename one",
                           f->proto_name, s->methods[k].proto_name,
                           s->methods[j].proto_name, s->full_name,
                           s->methods[j].member);
          return false;
        }
      }
    }
  }
  qsort(ids, n, sizeof *ids, cmp_str);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(ids[i - 1], ids[i]) == 0) {
      *error = cg_strf(a,
                       "%s: two services or methods both generate the C "
                       "identifier \"%s\"; rename one",
                       f->proto_name, ids[i]);
      return false;
    }
  }
  return true;
}

static bool build_service(cg_arena *a, const FileProto *fp, size_t si,
                          const char *c_name, const types *t, cg_service *s,
                          char **error) {
  const SvcProto *sp = fp->service[si];
  const char *pkg = fp->package ? fp->package : "";
  const char *pkg_c = package_prefix(a, pkg);
  s->proto_name = sp->name;
  s->full_name =
      pkg[0] ? cg_strf(a, "%s.%s", pkg, sp->name) : cg_strf(a, "%s", sp->name);
  s->prefix =
      pkg_c[0] ? cg_strf(a, "%s_%s", pkg_c, c_name) : cg_strf(a, "%s", c_name);
  int32_t spath[2] = {6, (int32_t)si};
  s->comment = comment_at(fp, spath, 2);
  s->n_methods = sp->n_method;
  s->methods = cg_alloc(a, (sp->n_method + 1) * sizeof *s->methods);
  const char **names = cg_alloc(a, (sp->n_method + 1) * sizeof *names);
  char **c_names = cg_alloc(a, (sp->n_method + 1) * sizeof *c_names);
  for (size_t i = 0; i < sp->n_method; i++) names[i] = sp->method[i]->name;
  cg_resolve_names(a, names, sp->n_method, c_names);
  for (size_t i = 0; i < sp->n_method; i++) {
    const Google__Protobuf__MethodDescriptorProto *mp = sp->method[i];
    cg_method *m = &s->methods[i];
    m->proto_name = mp->name;
    m->c_name = c_names[i];
    m->member =
        cg_is_keyword(m->c_name) ? cg_strf(a, "%s_", m->c_name) : m->c_name;
    m->fn = cg_strf(a, "%s_%s", s->prefix, m->c_name);
    m->path = cg_strf(a, "/%s/%s", s->full_name, mp->name);
    m->client_streaming = mp->has_client_streaming && mp->client_streaming;
    m->server_streaming = mp->has_server_streaming && mp->server_streaming;
    m->in = find_type(t, mp->input_type);
    m->out = find_type(t, mp->output_type);
    if (m->in == NULL || m->out == NULL) {
      *error = cg_strf(a,
                       "%s: method %s.%s uses message type %s, which no "
                       "file in the request defines",
                       fp->name, s->full_name, mp->name,
                       m->in == NULL ? mp->input_type : mp->output_type);
      return false;
    }
    int32_t mpath[4] = {6, (int32_t)si, 2, (int32_t)i};
    m->comment = comment_at(fp, mpath, 4);
  }
  return true;
}

static bool build_file(
    cg_arena *a, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
    const FileProto *fp, const types *t, cg_file *f, char **error) {
  f->proto_name = fp->name;
  f->base = cg_strip_proto(a, fp->name);
  f->n_services = fp->n_service;
  f->services = cg_alloc(a, (fp->n_service + 1) * sizeof *f->services);
  const char **names = cg_alloc(a, (fp->n_service + 1) * sizeof *names);
  char **c_names = cg_alloc(a, (fp->n_service + 1) * sizeof *c_names);
  for (size_t i = 0; i < fp->n_service; i++) names[i] = fp->service[i]->name;
  cg_resolve_names(a, names, fp->n_service, c_names);

  size_t n_inc = 1;
  for (size_t i = 0; i < fp->n_service; i++)
    n_inc += 2 * fp->service[i]->n_method;
  f->pb_includes = cg_alloc(a, n_inc * sizeof *f->pb_includes);
  f->pb_includes[f->n_pb_includes++] = cg_strf(a, "%s.pb-c.h", f->base);

  for (size_t i = 0; i < fp->n_service; i++) {
    cg_service *s = &f->services[i];
    if (!build_service(a, fp, i, c_names[i], t, s, error)) return false;
    for (size_t j = 0; j < s->n_methods; j++) {
      const cg_type *io[2] = {s->methods[j].in, s->methods[j].out};
      for (int k = 0; k < 2; k++) {
        const FileProto *def = find_file(req, io[k]->file);
        if (def != NULL && has_c_package(def)) {
          *error = cg_strf(a,
                           "%s: message %s comes from %s, which sets "
                           "protoc-c's option (pb_c_file).c_package; "
                           "protoc-gen-crpc does not support it (the C type "
                           "names would not match)",
                           fp->name, io[k]->full_name, io[k]->file);
          return false;
        }
        f->pb_includes[f->n_pb_includes++] =
            cg_strf(a, "%s.pb-c.h", cg_strip_proto(a, io[k]->file));
      }
    }
  }
  /* Sorted and unique so the output does not depend on method order. */
  qsort(f->pb_includes, f->n_pb_includes, sizeof *f->pb_includes, cmp_str);
  size_t u = 0;
  for (size_t i = 0; i < f->n_pb_includes; i++) {
    if (u == 0 || strcmp(f->pb_includes[u - 1], f->pb_includes[i]) != 0) {
      f->pb_includes[u++] = f->pb_includes[i];
    }
  }
  f->n_pb_includes = u;
  if (!cg_descriptor_build(a, req, fp, f, error)) return false;
  return check_unique(a, f, error);
}

/* True if every message (nested ones too) has a name. */
static bool messages_named(const MsgProto *const *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (m[i]->name == NULL ||
        !messages_named((const MsgProto *const *)m[i]->nested_type,
                        m[i]->n_nested_type)) {
      return false;
    }
  }
  return true;
}

/* protoc names every file, message, service and method it describes, but
 * the descriptor fields are optional on the wire, and everything below
 * (C names, includes, lookups) needs them. A request without them did not
 * come from protoc: refuse it instead of printing "(null)" into C code or
 * crashing on it (found by //fuzz:codegen_fuzz). */
static bool names_present(
    cg_arena *a, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
    char **error) {
  for (size_t i = 0; i < req->n_proto_file; i++) {
    const FileProto *fp = req->proto_file[i];
    const char *what = NULL;
    if (fp->name == NULL) {
      what = "a file";
    } else if (!messages_named((const MsgProto *const *)fp->message_type,
                               fp->n_message_type)) {
      what = "a message";
    }
    for (size_t j = 0; what == NULL && j < fp->n_service; j++) {
      const SvcProto *sp = fp->service[j];
      if (sp->name == NULL) what = "a service";
      for (size_t k = 0; what == NULL && k < sp->n_method; k++) {
        if (sp->method[k]->name == NULL) what = "a method";
      }
    }
    if (what != NULL) {
      *error = cg_strf(a,
                       "%s: %s without a name (not a request from protoc?)",
                       fp->name ? fp->name : "proto_file", what);
      return false;
    }
  }
  return true;
}

bool cg_model_build(cg_arena *a,
                    const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                    cg_model *model, char **error) {
  memset(model, 0, sizeof *model);
  if (req->parameter != NULL && req->parameter[0] != '\0') {
    *error = cg_strf(a, "protoc-gen-crpc takes no options, got \"%s\"",
                     req->parameter);
    return false;
  }
  if (!names_present(a, req, error)) return false;
  types t = {0};
  for (size_t i = 0; i < req->n_proto_file; i++) {
    const FileProto *fp = req->proto_file[i];
    const char *pkg = fp->package ? fp->package : "";
    for (size_t j = 0; j < fp->n_message_type; j++) {
      add_type(a, &t, pkg, fp->message_type[j], fp->name);
    }
  }
  model->files =
      cg_alloc(a, (req->n_file_to_generate + 1) * sizeof *model->files);
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    const FileProto *fp = find_file(req, req->file_to_generate[i]);
    if (fp == NULL) {
      *error = cg_strf(a,
                       "%s: listed in file_to_generate but missing from "
                       "proto_file",
                       req->file_to_generate[i]);
      return false;
    }
    if (has_c_package(fp)) {
      *error = cg_strf(a,
                       "%s: protoc-c's option (pb_c_file).c_package is "
                       "not supported by protoc-gen-crpc (the C type names "
                       "would not match)",
                       fp->name);
      return false;
    }
    if (!build_file(a, req, fp, &t, &model->files[i], error)) return false;
    model->n_files++;
  }
  return true;
}
