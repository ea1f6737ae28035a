/*
 * codegen/emit_client.c - method descriptors and typed client stubs.
 *
 * One shape per call kind, each a thin layer over crpc/channel.h:
 *   unary             <m>(ch, ctx, md, req, &resp, &status)
 *                     <m>_async(ch, ctx, md, req, done, user_data): done
 *                     gets the typed reply on the channel's loop thread
 *   server streaming  <m>_start(ch, ctx, md, req, &call), <m>_recv
 *   client streaming  <m>_start(ch, ctx, md, &call), <m>_send, <m>_finish
 *   bidi streaming    <m>_start(ch, ctx, md, &call), <m>_send, <m>_recv
 * Every entry point that starts a call checks ctx first (failure catalog
 * line 5, DESIGN.md).
 */
#include "codegen/gen.h"

void cg_emit_client_decls(cg_buf *b, const cg_service *s) {
  cg_arena a = {0};
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    cg_put(b, "\n");
    cg_put_doc(b, "",
               cg_strf(&a, "%s (%s): \"%s\"", m->proto_name, cg_kind_words(m),
                       m->path),
               m->comment);
    cg_put(b, "extern const crpc_gen_method %s_method;\n", m->fn);
  }
  if (s->n_methods > 0)
    cg_put(b, "\n/* ---- %s client ---- */\n", s->proto_name);
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    const char *req = cg_strf(&a, "const %s *req", m->in->c_type);
    const char *start[5] = {"crpc_channel *ch", "const crpc_ctx *ctx",
                            "const crpc_metadata *md", req, "crpc_call **call"};
    if (!m->client_streaming && !m->server_streaming) {
      cg_put(b,
             "\n/* %s. On CRPC_OK *resp is the reply. status (may be NULL) "
             "gets the\n * final status in every case. */\n",
             m->proto_name);
      const char *p[6] = {"crpc_channel *ch",
                          "const crpc_ctx *ctx",
                          "const crpc_metadata *md",
                          req,
                          cg_strf(&a, "%s **resp", m->out->c_type),
                          "crpc_status *status"};
      cg_put_proto(b, "crpc_code", m->fn, p, 6, ";\n");
      cg_put(b,
             "\n/* %s without blocking (crpc/channel_async.h): done runs "
             "once, on the\n * channel's loop thread, and must not block. "
             "On CRPC_OK resp is the\n * reply, the callee's (free it with "
             "protobuf_c_message_free_unpacked);\n * else NULL. status is "
             "valid during the call. Returns CRPC_OK if the call\n * "
             "started (done will come), else why not (done will not). */\n",
             m->proto_name);
      const char *dp[4] = {"crpc_code code",
                           cg_strf(&a, "%s *resp", m->out->c_type),
                           "const crpc_status *status", "void *user_data"};
      cg_put_proto(b, "typedef void", cg_strf(&a, "(*%s_done_fn)", m->fn), dp,
                   4, ";\n");
      const char *ap[6] = {p[0], p[1], p[2], req,
                           cg_strf(&a, "%s_done_fn done", m->fn),
                           "void *user_data"};
      cg_put_proto(b, "crpc_code", cg_strf(&a, "%s_async", m->fn), ap, 6,
                   ";\n");
      continue;
    }
    if (m->server_streaming && !m->client_streaming) {
      cg_put(b,
             "\n/* %s. _start sends req; then _recv until *msg is NULL, then\n"
             " * crpc_call_finish. Free *call (if not NULL) with "
             "crpc_call_free. */\n",
             m->proto_name);
      cg_put_proto(b, "crpc_code", cg_strf(&a, "%s_start", m->fn), start, 5,
                   ";\n");
    } else {
      cg_put(b,
             m->server_streaming
                 ? "\n/* %s. _start, then _send and _recv (from two threads "
                   "if you like;\n * *msg is NULL at the end), then "
                   "crpc_call_close_send and crpc_call_finish.\n * Free *call "
                   "(if not NULL) with crpc_call_free. */\n"
                 : "\n/* %s. _start, _send each request, then _finish "
                   "(half-closes, reads the\n * reply and the status). Free "
                   "*call (if not NULL) with crpc_call_free. */\n",
             m->proto_name);
      const char *p[4] = {start[0], start[1], start[2], start[4]};
      cg_put_proto(b, "crpc_code", cg_strf(&a, "%s_start", m->fn), p, 4, ";\n");
      const char *sp[2] = {"crpc_call *call",
                           cg_strf(&a, "const %s *msg", m->in->c_type)};
      cg_put_proto(b, "crpc_code", cg_strf(&a, "%s_send", m->fn), sp, 2, ";\n");
    }
    if (m->server_streaming) {
      const char *rp[2] = {"crpc_call *call",
                           cg_strf(&a, "%s **msg", m->out->c_type)};
      cg_put_proto(b, "crpc_code", cg_strf(&a, "%s_recv", m->fn), rp, 2, ";\n");
    } else {
      const char *fp[3] = {"crpc_call *call",
                           cg_strf(&a, "%s **resp", m->out->c_type),
                           "crpc_status *status"};
      cg_put_proto(b, "crpc_code", cg_strf(&a, "%s_finish", m->fn), fp, 3,
                   ";\n");
    }
  }
  cg_arena_free(&a);
}

static void emit_unary(cg_buf *b, cg_arena *a, const cg_method *m) {
  const char *p[6] = {"crpc_channel *ch",
                      "const crpc_ctx *ctx",
                      "const crpc_metadata *md",
                      cg_strf(a, "const %s *req", m->in->c_type),
                      cg_strf(a, "%s **resp", m->out->c_type),
                      "crpc_status *status"};
  cg_put(b, "\n");
  cg_put_proto(b, "crpc_code", m->fn, p, 6, " {\n");
  cg_put(b,
         "  if (ctx == NULL) crpc_gen_null_ctx(__func__);\n"
         "  *resp = NULL;\n"
         "  size_t len;\n"
         "  uint8_t *buf = crpc_gen_pack(&req->base, &len);\n"
         "  crpc_message reply = {0};\n"
         "  crpc_code code = crpc_unary_call(ch, ctx, \"%s\", md,\n"
         "                                   buf, len, &reply, status);\n"
         "  free(buf);\n"
         "  if (code != CRPC_OK) return code;\n"
         "  *resp = (%s *)protobuf_c_message_unpack(\n"
         "      &%s, NULL, reply.len, reply.data);\n"
         "  free(reply.data);\n"
         "  if (*resp != NULL) return CRPC_OK;\n"
         "  crpc_gen_set_status(status, CRPC_INTERNAL,\n"
         "                      \"crpc: cannot parse response as %s\");\n"
         "  return CRPC_INTERNAL;\n"
         "}\n",
         m->path, m->out->c_type, m->out->c_desc, m->out->full_name);
}

/* The typed async stub and the trampoline that gives done its types back
 * (the file's crpc_gen_unary_async does the rest). */
static void emit_unary_async(cg_buf *b, cg_arena *a, const cg_method *m) {
  cg_put(b,
         "\nstatic void %s_async_trampoline(\n"
         "    crpc_code code, ProtobufCMessage *resp, const crpc_status "
         "*status,\n"
         "    const crpc_gen_async *a) {\n"
         "  ((%s_done_fn)a->done)(code, (%s *)resp, status,\n"
         "                        a->user_data);\n"
         "}\n",
         m->fn, m->fn, m->out->c_type);
  const char *p[6] = {"crpc_channel *ch",
                      "const crpc_ctx *ctx",
                      "const crpc_metadata *md",
                      cg_strf(a, "const %s *req", m->in->c_type),
                      cg_strf(a, "%s_done_fn done", m->fn),
                      "void *user_data"};
  cg_put(b, "\n");
  cg_put_proto(b, "crpc_code", cg_strf(a, "%s_async", m->fn), p, 6, " {\n");
  cg_put(b,
         "  if (ctx == NULL) crpc_gen_null_ctx(__func__);\n"
         "  return crpc_gen_unary_async(ch, ctx, \"%s\", md, &req->base,\n"
         "                              &%s,\n"
         "                              (void (*)(void))done,\n"
         "                              %s_async_trampoline, user_data);\n"
         "}\n",
         m->path, m->out->c_desc, m->fn);
}

static void emit_start(cg_buf *b, cg_arena *a, const cg_method *m) {
  bool one_req = !m->client_streaming;
  const char *p[5] = {
      "crpc_channel *ch", "const crpc_ctx *ctx", "const crpc_metadata *md",
      cg_strf(a, "const %s *req", m->in->c_type), "crpc_call **call"};
  if (!one_req) p[3] = p[4];
  cg_put(b, "\n");
  cg_put_proto(b, "crpc_code", cg_strf(a, "%s_start", m->fn), p,
               one_req ? 5 : 4, " {\n");
  cg_put(b, "  if (ctx == NULL) crpc_gen_null_ctx(__func__);\n");
  if (one_req) {
    /* Headers, request and END_STREAM in one write. */
    cg_put(b,
           "  crpc_buf *b = crpc_gen_pack_buf(&req->base);\n"
           "  if (b == NULL) {\n"
           "    *call = NULL;\n"
           "    return CRPC_RESOURCE_EXHAUSTED;\n"
           "  }\n"
           "  return crpc_call_start_request(ch, ctx, \"%s\", md, b, call);\n}\n",
           m->path);
    return;
  }
  cg_put(b,
         "  return crpc_call_start(ch, ctx, \"%s\", md, call);\n}\n",
         m->path);
}

static void emit_send(cg_buf *b, cg_arena *a, const cg_method *m) {
  const char *p[2] = {"crpc_call *call",
                      cg_strf(a, "const %s *msg", m->in->c_type)};
  cg_put(b, "\n");
  cg_put_proto(b, "crpc_code", cg_strf(a, "%s_send", m->fn), p, 2, " {\n");
  cg_put(b, "  return crpc_gen_send(call, &msg->base);\n}\n");
}

static void emit_recv(cg_buf *b, cg_arena *a, const cg_method *m) {
  const char *p[2] = {"crpc_call *call",
                      cg_strf(a, "%s **msg", m->out->c_type)};
  cg_put(b, "\n");
  cg_put_proto(b, "crpc_code", cg_strf(a, "%s_recv", m->fn), p, 2, " {\n");
  cg_put(b,
         "  ProtobufCMessage *m = NULL;\n"
         "  crpc_code code =\n"
         "      crpc_gen_recv(call, &%s, &m);\n"
         "  *msg = (%s *)m;\n"
         "  return code;\n"
         "}\n",
         m->out->c_desc, m->out->c_type);
}

static void emit_finish(cg_buf *b, cg_arena *a, const cg_method *m) {
  const char *p[3] = {"crpc_call *call",
                      cg_strf(a, "%s **resp", m->out->c_type),
                      "crpc_status *status"};
  cg_put(b, "\n");
  cg_put_proto(b, "crpc_code", cg_strf(a, "%s_finish", m->fn), p, 3, " {\n");
  cg_put(b,
         "  ProtobufCMessage *m = NULL;\n"
         "  *resp = NULL;\n"
         "  crpc_code code = crpc_call_close_send(call);\n"
         "  if (code == CRPC_OK) {\n"
         "    code = crpc_gen_recv(call, &%s, &m);\n"
         "  }\n"
         "  crpc_code final = crpc_call_finish(call, status);\n"
         "  if (final != CRPC_OK || code != CRPC_OK || m == NULL) {\n"
         "    if (m != NULL) protobuf_c_message_free_unpacked(m, NULL);\n"
         "    if (final != CRPC_OK) return final;\n"
         "    crpc_gen_set_status(status, CRPC_INTERNAL,\n"
         "                        code != CRPC_OK\n"
         "                            ? \"crpc: cannot parse response as \"\n"
         "                              \"%s\"\n"
         "                            : \"crpc: server sent no response\");\n"
         "    return CRPC_INTERNAL;\n"
         "  }\n"
         "  *resp = (%s *)m;\n"
         "  return CRPC_OK;\n"
         "}\n",
         m->out->c_desc, m->out->full_name, m->out->c_type);
}

void cg_emit_client_defs(cg_buf *b, const cg_service *s) {
  cg_arena a = {0};
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    cg_put(b, "\nconst crpc_gen_method %s_method = {\n    \"%s\", %s};\n",
           m->fn, m->path, cg_kind_macro(m));
  }
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *m = &s->methods[i];
    if (!m->client_streaming && !m->server_streaming) {
      emit_unary(b, &a, m);
      emit_unary_async(b, &a, m);
      continue;
    }
    emit_start(b, &a, m);
    if (m->client_streaming) emit_send(b, &a, m);
    if (m->server_streaming) emit_recv(b, &a, m);
    if (!m->server_streaming) emit_finish(b, &a, m);
  }
  cg_arena_free(&a);
}
