/*
 * codegen/emit_server.c - the typed blocking server side of a service:
 * send/recv wrappers, the handlers struct, the adapters that
 * crpc_server_add_method runs, and <service>_register_handlers; plus the
 * pieces emit_server_async.c prints the same way.
 *
 * Handlers send their own responses (<m>_server_send) instead of returning
 * a message for the adapter to pack: the handler owns the message and its
 * strings, so nothing it points to has to outlive the handler, and all four
 * shapes work the same way.
 */
#include "codegen/gen.h"

size_t cg_handler_params(cg_arena *a, const cg_method *m, const char **p) {
  size_t n = 0;
  p[n++] = "crpc_server_call *call";
  p[n++] = "const crpc_ctx *ctx";
  if (!m->client_streaming) {
    p[n++] = cg_strf(a, "const %s *req", m->in->c_type);
  }
  p[n++] = "void *user_data";
  return n;
}

void cg_put_server_send(cg_buf *b, cg_arena *a, const cg_method *m,
                        const char *suffix, const char *helper) {
  const char *p[2] = {"crpc_server_call *call",
                      cg_strf(a, "const %s *msg", m->out->c_type)};
  cg_put_proto(b, "crpc_code", cg_strf(a, "%s%s", m->fn, suffix), p, 2,
               helper ? " {\n" : ";\n");
  if (helper) cg_put(b, "  return %s(call, &msg->base);\n}\n", helper);
}

void cg_put_typed_call(cg_buf *b, const cg_method *m) {
  cg_put(b,
         "  if (code != CRPC_OK) return code;\n"
         "  code = h->%s(\n"
         "      call, ctx, (const %s *)req, h->user_data);\n"
         "  protobuf_c_message_free_unpacked(req, NULL);\n"
         "  return code;\n"
         "}\n",
         m->member, m->in->c_type);
}

static void put_register_proto(cg_buf *b, const cg_service *s,
                               const char *name, const char *type,
                               const char *end) {
  cg_arena a = {0};
  const char *p[2] = {"crpc_server *server",
                      cg_strf(&a, "const %s%s *handlers", s->prefix, type)};
  cg_put_proto(b, "crpc_code", cg_strf(&a, "%s%s", s->prefix, name), p, 2,
               end);
  cg_arena_free(&a);
}

void cg_put_register_decl(cg_buf *b, const cg_service *s, const char *name,
                          const char *type) {
  put_register_proto(b, s, name, type, ";\n");
}

void cg_put_register(cg_buf *b, const cg_file *f, const cg_service *s,
                     const char *name, const char *type, cg_method_fn check,
                     cg_method_fn add) {
  cg_put(b, "\n");
  put_register_proto(b, s, name, type, " {\n");
  cg_put(b, "  if (handlers == NULL) return CRPC_INVALID_ARGUMENT;\n");
  for (size_t i = 0; check != NULL && i < s->n_methods; i++) {
    check(b, &s->methods[i]);
  }
  cg_put(b, "  crpc_code code = CRPC_OK;\n");
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    cg_put(b, "  if (code == CRPC_OK && handlers->%s != NULL) {\n", m->member);
    add(b, m);
    cg_put(b, "  }\n");
  }
  /* The descriptor last: a registration that fails (e.g. after start)
   * keeps crpc_server_add_method's error. */
  cg_put(b,
         "  if (code == CRPC_OK) {\n"
         "    code = crpc_server_add_file_descriptor(\n"
         "        server, &crpc_fd_%s);\n"
         "  }\n"
         "  return code;\n}\n",
         f->fd.ident);
}

void cg_emit_server_decls(cg_buf *b, const cg_service *s) {
  cg_arena a = {0};
  cg_put(b, "\n/* ---- %s server ---- */\n", s->proto_name);
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    cg_put(b, "\n/* %s: sends one response (copied; msg stays yours).%s */\n",
           m->proto_name,
           m->server_streaming ? ""
                               : "\n * The handler sends exactly one before "
                                 "returning CRPC_OK.");
    cg_put_server_send(b, &a, m, "_server_send", NULL);
    if (m->client_streaming) {
      cg_put(b,
             "/* %s: next request, NULL once the client has finished "
             "sending. */\n",
             m->proto_name);
      const char *rp[2] = {"crpc_server_call *call",
                           cg_strf(&a, "%s **msg", m->in->c_type)};
      cg_put_proto(b, "crpc_code", cg_strf(&a, "%s_server_recv", m->fn), rp, 2,
                   ";\n");
    }
  }
  cg_put(b,
         "\n/* %s's handlers.\n"
         " * Each runs on a handler thread with the call's ctx, which is done "
         "once the\n"
         " * client cancels, the deadline passes or the server shuts down. A "
         "NULL\n"
         " * handler leaves its method UNIMPLEMENTED. */\n"
         "typedef struct %s_handlers {\n"
         "  void *user_data; /* passed to every handler */\n",
         s->proto_name, s->prefix);
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    cg_put(
        b, "  /* %s (%s)%s */\n", m->proto_name, cg_kind_words(m),
        m->client_streaming ? "" : ": req is freed when the handler returns");
    const char *p[4];
    size_t n = cg_handler_params(&a, m, p);
    cg_put_proto(b, "  crpc_code", cg_strf(&a, "(*%s)", m->member), p, n,
                 ";\n");
  }
  cg_put(b, "} %s_handlers;\n", s->prefix);
  cg_put(b,
         "\n/* Registers every non-NULL handler (before crpc_server_start). "
         "handlers must\n * outlive the server. CRPC_OK or the first error "
         "of crpc_server_add_method. */\n");
  cg_put_register_decl(b, s, "_register_handlers", "_handlers");
  cg_arena_free(&a);
}

static void emit_adapter(cg_buf *b, cg_arena *a, const cg_service *s,
                         const cg_method *m) {
  const char *p[3] = {"crpc_server_call *call", "const crpc_ctx *ctx",
                      "void *user_data"};
  cg_put(b, "\n");
  cg_put_proto(b, "static crpc_code", cg_strf(a, "%s_serve", m->fn), p, 3,
               " {\n");
  cg_put(b, "  const %s_handlers *h = user_data;\n", s->prefix);
  if (m->client_streaming) {
    cg_put(b, "  return h->%s(call, ctx, h->user_data);\n}\n", m->member);
    return;
  }
  cg_put(b,
         "  ProtobufCMessage *req = NULL;\n"
         "  crpc_code code = crpc_gen_server_recv_one(\n"
         "      call, &%s, &req);\n",
         m->in->c_desc);
  cg_put_typed_call(b, m);
}

static void add_blocking(cg_buf *b, const cg_method *m) {
  cg_put(b,
         "    code = crpc_server_add_method(server, \"%s\",\n"
         "                                  %s,\n"
         "                                  %s_serve,\n"
         "                                  (void *)handlers);\n",
         m->path, cg_kind_macro(m), m->fn);
}

void cg_emit_server_defs(cg_buf *b, const cg_file *f, const cg_service *s) {
  cg_arena a = {0};
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    cg_put(b, "\n");
    cg_put_server_send(b, &a, m, "_server_send", "crpc_gen_server_send");
    if (m->client_streaming) {
      const char *rp[2] = {"crpc_server_call *call",
                           cg_strf(&a, "%s **msg", m->in->c_type)};
      cg_put(b, "\n");
      cg_put_proto(b, "crpc_code", cg_strf(&a, "%s_server_recv", m->fn), rp, 2,
                   " {\n");
      cg_put(b,
             "  ProtobufCMessage *m = NULL;\n"
             "  crpc_code code =\n"
             "      crpc_gen_server_recv(call, &%s, &m);\n"
             "  *msg = (%s *)m;\n"
             "  return code;\n"
             "}\n",
             m->in->c_desc, m->in->c_type);
    }
    emit_adapter(b, &a, s, m);
  }
  cg_put_register(b, f, s, "_register_handlers", "_handlers", NULL, add_blocking);
  cg_arena_free(&a);
}
