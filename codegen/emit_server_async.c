/*
 * codegen/emit_server_async.c - the typed non-blocking server side of a
 * service (crpc/server_async.h): an inline handler type per unary method, a
 * reactor struct per streaming method, <m>_send_async for both,
 * <service>_async_handlers, <service>_register_async_handlers, and the
 * glue between them and the untyped runtime.
 *
 * The glue owns request memory as the blocking adapters do: it unpacks each
 * request from the runtime's view, passes the typed message to the callback
 * and frees it when the callback returns, so user code never frees what it
 * did not allocate. A bad request reaches a reactor as on_cancel with an
 * INTERNAL cause, the same path as any other end of its input, so a reactor
 * has exactly one place where it learns to stop and finish.
 */
#include "codegen/gen.h"

/* ---- header ---- */

static void put_inline_decl(cg_buf *b, cg_arena *a, const cg_method *m) {
  cg_put(b, "\n");
  cg_put_comment(
      b, "",
      cg_strf(a,
              "%s inline handler: runs on the loop thread and must not "
              "block; req is freed when it returns. Sends at most one "
              "response with %s_send_async and returns the status; not "
              "called once the ctx is done.",
              m->proto_name, m->fn));
  const char *p[4];
  size_t n = cg_handler_params(a, m, p);
  cg_put_proto(b, "typedef crpc_code", cg_strf(a, "(*%s_async_fn)", m->fn), p,
               n, ";\n");
}

static void put_reactor_decl(cg_buf *b, cg_arena *a, const cg_method *m) {
  bool one = !m->client_streaming;
  cg_put(b, "\n");
  cg_put_comment(
      b, "",
      cg_strf(a,
              "%s (%s) reactor, as crpc_server_reactor: every callback runs "
              "on the loop thread, one at a time per call, and must not "
              "block; call and state stay valid until on_done returns. "
              "on_start and on_cancel are required.",
              m->proto_name, cg_kind_words(m)));
  cg_put(b, "typedef struct %s_reactor {\n", m->fn);
  cg_put_comment(b, "  ",
                 "Returns the call's state (passed to the rest); may send or "
                 "finish. Runs even if the ctx is already done (on_cancel "
                 "then follows).");
  const char *start[3] = {"crpc_server_call *call", "const crpc_ctx *ctx",
                          "void *user_data"};
  cg_put_proto(b, "  void", "*(*on_start)", start, 3, ";\n");
  cg_put_comment(b, "  ",
                 one ? "The one request (freed when this returns), then NULL "
                       "at half-close."
                     : "Each request (freed when this returns), then NULL at "
                       "half-close.");
  const char *msg[3] = {"crpc_server_call *call",
                        cg_strf(a, "const %s *msg", m->in->c_type),
                        "void *state"};
  cg_put_proto(b, "  void", "(*on_message)", msg, 3, ";\n");
  cg_put_comment(b, "  ",
                 "The send buffer drained after crpc_server_call_can_send "
                 "said false.");
  const char *ready[2] = {"crpc_server_call *call", "void *state"};
  cg_put_proto(b, "  void", "(*on_send_ready)", ready, 2, ";\n");
  cg_put_comment(
      b, "  ",
      cg_strf(a,
              "The ctx is done, or the request %s (INTERNAL; the ctx is not "
              "done). No on_message follows; call "
              "crpc_server_call_finish(call, cause->code, NULL) so the "
              "client gets the cause.",
              one ? "was missing or did not parse" : "did not parse"));
  const char *cancel[3] = {"crpc_server_call *call",
                           "const crpc_cause *cause", "void *state"};
  cg_put_proto(b, "  void", "(*on_cancel)", cancel, 3, ";\n");
  cg_put_comment(b, "  ",
                 "The last callback, after finish: free the state here.");
  cg_put_proto(b, "  void", "(*on_done)", ready, 2, ";\n");
  cg_put(b, "} %s_reactor;\n", m->fn);
}

void cg_emit_server_async_decls(cg_buf *b, const cg_service *s) {
  cg_arena a = {0};
  cg_put(b, "\n/* ---- %s async server (crpc/server_async.h) ---- */\n",
         s->proto_name);
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    if (cg_is_unary(m)) {
      put_inline_decl(b, &a, m);
    } else {
      put_reactor_decl(b, &a, m);
    }
    cg_put_comment(
        b, "",
        cg_strf(&a,
                "%s: queues one response (copied; msg stays yours) without "
                "blocking, from any thread until finish. Once the ctx is "
                "done: its cause's code, nothing queued.%s",
                m->proto_name,
                m->server_streaming ? ""
                                    : " Exactly one before an OK finish."));
    cg_put_server_send(b, &a, m, "_send_async", NULL);
  }
  cg_put(b, "\n");
  cg_put_comment(
      b, "",
      cg_strf(&a,
              "%s's async handlers: a NULL entry is not registered, so each "
              "method is served by these or by %s_handlers, not both (the "
              "second registration fails with CRPC_ALREADY_EXISTS). Server "
              "interceptors do not run for them.",
              s->proto_name, s->prefix));
  cg_put(b,
         "typedef struct %s_async_handlers {\n"
         "  void *user_data; /* passed to every inline handler and on_start "
         "*/\n",
         s->prefix);
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    cg_put(b, "  /* %s (%s) */\n", m->proto_name, cg_kind_words(m));
    if (cg_is_unary(m)) {
      cg_put(b, "  %s_async_fn %s;\n", m->fn, m->member);
    } else {
      cg_put(b, "  const %s_reactor *%s;\n", m->fn, m->member);
    }
  }
  cg_put(b, "} %s_async_handlers;\n\n", s->prefix);
  cg_put_comment(b, "",
                 "Registers every non-NULL entry (before crpc_server_start); "
                 "handlers and its reactors must outlive the server. "
                 "CRPC_OK, CRPC_INVALID_ARGUMENT (a reactor lacks on_start or "
                 "on_cancel; nothing is registered) or the first error of "
                 "crpc_server_add_unary_async / "
                 "crpc_server_add_async_method.");
  cg_put_register_decl(b, s, "_register_async_handlers", "_async_handlers");
  cg_arena_free(&a);
}

/* ---- source ---- */

static bool is_streaming(const cg_method *m) { return !cg_is_unary(m); }

void cg_emit_server_async_helpers(cg_buf *b, const cg_file *f) {
  cg_put(b,
         "\n/* A small m is packed on the stack and copied by the runtime; a "
         "larger one\n"
         " * straight into a buffer the runtime sends from, without a copy. "
         "*/\n"
         "static crpc_code crpc_gen_send_async(crpc_server_call *call,\n"
         "                                     const ProtobufCMessage *m) {\n"
         "  uint8_t small[512];\n"
         "  size_t len = protobuf_c_message_get_packed_size(m);\n"
         "  if (len > sizeof small) {\n"
         "    crpc_buf *b = crpc_gen_pack_buf(m);\n"
         "    return b != NULL ? crpc_server_call_send_async_buf(call, b, 0)\n"
         "                     : CRPC_RESOURCE_EXHAUSTED;\n"
         "  }\n"
         "  protobuf_c_message_pack(m, small);\n"
         "  return crpc_server_call_send_async(call, small, len, 0);\n"
         "}\n");
  if (!cg_any_method(f, is_streaming)) return;
  cg_put(
      b,
      "\n/* An async streaming call's record: the runtime passes later "
      "callbacks only\n"
      " * what on_start returned, so the glue returns this, holding the "
      "typed\n"
      " * reactor's callbacks and the user's state. */\n"
      "typedef struct crpc_gen_reactor_call {\n"
      "  const void *reactor; /* the method's typed reactor, for on_message "
      "*/\n"
      "  void *state;         /* what its on_start returned */\n"
      "  void (*on_send_ready)(crpc_server_call *call, void *state);\n"
      "  void (*on_cancel)(crpc_server_call *call, const crpc_cause *cause,\n"
      "                    void *state);\n"
      "  void (*on_done)(crpc_server_call *call, void *state);\n"
      "  bool got_request; /* for methods that take exactly one */\n"
      "  bool cancelled;   /* on_cancel ran: no on_message, no second one "
      "*/\n"
      "} crpc_gen_reactor_call;\n"
      "\nstatic crpc_gen_reactor_call *crpc_gen_reactor_call_new(const void "
      "*reactor) {\n"
      "  crpc_gen_reactor_call *c = calloc(1, sizeof *c);\n"
      "  if (c == NULL) abort();\n"
      "  c->reactor = reactor;\n"
      "  return c;\n"
      "}\n"
      "\n/* Ends the reactor's input after a bad request the way a cancel "
      "would: the\n"
      " * ctx is not done, so the reactor's finish code (cause->code) is "
      "what the\n"
      " * client gets, with this message. */\n"
      "static void crpc_gen_reactor_fail(crpc_server_call *call,\n"
      "                                  crpc_gen_reactor_call *c, const "
      "char *what,\n"
      "                                  const char *type) {\n"
      "  crpc_cause cause;\n"
      "  memset(&cause, 0, sizeof cause);\n"
      "  cause.code = CRPC_INTERNAL;\n"
      "  cause.origin = CRPC_ORIGIN_LOCAL;\n"
      "  snprintf(cause.message, sizeof cause.message, \"crpc: %%s%%s\", "
      "what, type);\n"
      "  crpc_server_call_error(call, CRPC_INTERNAL, \"%%s\", "
      "cause.message);\n"
      "  c->cancelled = true;\n"
      "  c->on_cancel(call, &cause, c->state);\n"
      "}\n"
      "\n/* The typed on_message argument for msg: true with *out NULL at "
      "the end of\n"
      " * the stream; false if there is nothing to deliver: after "
      "on_cancel, an extra\n"
      " * request (one: the method takes exactly one, the first counts), or "
      "a bad\n"
      " * request, which goes to on_cancel instead. */\n"
      "static bool crpc_gen_reactor_take(crpc_server_call *call,\n"
      "                                  crpc_gen_reactor_call *c,\n"
      "                                  const ProtobufCMessageDescriptor "
      "*desc,\n"
      "                                  const crpc_message *msg, bool one,\n"
      "                                  ProtobufCMessage **out) {\n"
      "  *out = NULL;\n"
      "  if (c->cancelled) return false;\n"
      "  if (msg->end) {\n"
      "    if (!one || c->got_request) return true;\n"
      "    crpc_gen_reactor_fail(call, c, \"missing request message\", "
      "\"\");\n"
      "    return false;\n"
      "  }\n"
      "  if (one && c->got_request) return false;\n"
      "  c->got_request = true;\n"
      "  *out = protobuf_c_message_unpack(desc, NULL, msg->len, "
      "msg->data);\n"
      "  if (*out != NULL) return true;\n"
      "  crpc_gen_reactor_fail(call, c, \"cannot parse request as \", "
      "desc->name);\n"
      "  return false;\n"
      "}\n"
      "\n/* state is NULL in the callbacks below when the runtime skipped "
      "on_start\n"
      " * because the ctx was done first: the typed reactor never saw that "
      "call. */\n"
      "\nstatic void crpc_gen_reactor_send_ready(crpc_server_call *call, "
      "void *state) {\n"
      "  crpc_gen_reactor_call *c = state;\n"
      "  if (c == NULL || c->on_send_ready == NULL) return;\n"
      "  c->on_send_ready(call, c->state);\n"
      "}\n"
      "\nstatic void crpc_gen_reactor_cancel(crpc_server_call *call,\n"
      "                                    const crpc_cause *cause, void "
      "*state) {\n"
      "  crpc_gen_reactor_call *c = state;\n"
      "  if (c == NULL) {\n"
      "    crpc_server_call_finish(call, cause->code, NULL);\n"
      "    return;\n"
      "  }\n"
      "  if (c->cancelled) return; /* a bad request already told it */\n"
      "  c->cancelled = true;\n"
      "  c->on_cancel(call, cause, c->state);\n"
      "}\n"
      "\nstatic void crpc_gen_reactor_done(crpc_server_call *call, void "
      "*state) {\n"
      "  crpc_gen_reactor_call *c = state;\n"
      "  if (c == NULL) return;\n"
      "  if (c->on_done != NULL) c->on_done(call, c->state);\n"
      "  free(c);\n"
      "}\n");
}

/* Unpacks the runtime's view of the one request (it answers a missing one
 * itself) and runs the typed handler. */
static void emit_inline_glue(cg_buf *b, cg_arena *a, const cg_service *s,
                             const cg_method *m) {
  const char *p[4] = {"crpc_server_call *call", "const crpc_ctx *ctx",
                      "const crpc_message *request", "void *user_data"};
  cg_put(b, "\n");
  cg_put_proto(b, "static crpc_code", cg_strf(a, "%s_serve_async", m->fn), p,
               4, " {\n");
  cg_put(b,
         "  const %s_async_handlers *h = user_data;\n"
         "  ProtobufCMessage *req = NULL;\n",
         s->prefix);
  const char *args[5] = {"call", cg_strf(a, "&%s", m->in->c_desc),
                         "request->data", "request->len", "&req"};
  cg_put_proto(b, "  crpc_code code =", "crpc_gen_server_unpack", args, 5,
               ";\n");
  cg_put_typed_call(b, m);
}

static void emit_reactor_glue(cg_buf *b, cg_arena *a, const cg_service *s,
                              const cg_method *m) {
  const char *sp[3] = {"crpc_server_call *call", "const crpc_ctx *ctx",
                       "void *user_data"};
  cg_put(b, "\n");
  cg_put_proto(b, "static void", cg_strf(a, "*%s_async_start", m->fn), sp, 3,
               " {\n");
  cg_put(b,
         "  const %s_async_handlers *h = user_data;\n"
         "  const %s_reactor *r = h->%s;\n"
         "  crpc_gen_reactor_call *c = crpc_gen_reactor_call_new(r);\n"
         "  c->on_send_ready = r->on_send_ready;\n"
         "  c->on_cancel = r->on_cancel;\n"
         "  c->on_done = r->on_done;\n"
         "  c->state = r->on_start(call, ctx, h->user_data);\n"
         "  return c;\n"
         "}\n",
         s->prefix, m->fn, m->member);
  const char *mp[3] = {"crpc_server_call *call", "const crpc_message *msg",
                       "void *state"};
  cg_put(b, "\n");
  cg_put_proto(b, "static void", cg_strf(a, "%s_async_message", m->fn), mp, 3,
               " {\n");
  cg_put(b,
         "  crpc_gen_reactor_call *c = state;\n"
         "  if (c == NULL) return;\n"
         "  const %s_reactor *r = c->reactor;\n"
         "  if (r->on_message == NULL) return;\n"
         "  ProtobufCMessage *m = NULL;\n",
         m->fn);
  const char *args[6] = {"call",
                         "c",
                         cg_strf(a, "&%s", m->in->c_desc),
                         "msg",
                         m->client_streaming ? "false" : "true",
                         "&m"};
  cg_put_proto(b, "  bool deliver =", "crpc_gen_reactor_take", args, 6,
               ";\n");
  cg_put(b,
         "  if (!deliver) return;\n"
         "  r->on_message(call, (const %s *)m, c->state);\n"
         "  if (m != NULL) protobuf_c_message_free_unpacked(m, NULL);\n"
         "}\n",
         m->in->c_type);
  cg_put(b,
         "\nstatic const crpc_server_reactor\n"
         "    %s_async_reactor = {\n"
         "    .on_start = %s_async_start,\n"
         "    .on_message = %s_async_message,\n"
         "    .on_send_ready = crpc_gen_reactor_send_ready,\n"
         "    .on_cancel = crpc_gen_reactor_cancel,\n"
         "    .on_done = crpc_gen_reactor_done,\n"
         "};\n",
         m->fn, m->fn, m->fn);
}

/* A reactor without on_start has no call state to give, one without
 * on_cancel could never learn that its call must finish: rejected before
 * anything is registered. */
static void check_reactor(cg_buf *b, const cg_method *m) {
  if (cg_is_unary(m)) return;
  cg_put(b,
         "  if (handlers->%s != NULL &&\n"
         "      (handlers->%s->on_start == NULL ||\n"
         "       handlers->%s->on_cancel == NULL)) {\n"
         "    return CRPC_INVALID_ARGUMENT;\n"
         "  }\n",
         m->member, m->member, m->member);
}

static void add_async(cg_buf *b, const cg_method *m) {
  cg_arena a = {0};
  const char *path = cg_strf(&a, "\"%s\"", m->path);
  if (cg_is_unary(m)) {
    const char *args[4] = {"server", path, cg_strf(&a, "%s_serve_async", m->fn),
                           "(void *)handlers"};
    cg_put_proto(b, "    code =", "crpc_server_add_unary_async", args, 4,
                 ";\n");
  } else {
    const char *args[5] = {"server", path, cg_kind_macro(m),
                           cg_strf(&a, "&%s_async_reactor", m->fn),
                           "(void *)handlers"};
    cg_put_proto(b, "    code =", "crpc_server_add_async_method", args, 5,
                 ";\n");
  }
  cg_arena_free(&a);
}

void cg_emit_server_async_defs(cg_buf *b, const cg_file *f,
                               const cg_service *s) {
  cg_arena a = {0};
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    cg_put(b, "\n");
    cg_put_server_send(b, &a, m, "_send_async", "crpc_gen_send_async");
    if (cg_is_unary(m)) {
      emit_inline_glue(b, &a, s, m);
    } else {
      emit_reactor_glue(b, &a, s, m);
    }
  }
  cg_put_register(b, f, s, "_register_async_handlers", "_async_handlers",
                  check_reactor, add_async);
  cg_arena_free(&a);
}
