// codegen/loopback_fake.cc - the fake runtime of loopback_fake.h.
#include "codegen/loopback_fake.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

void Fill(crpc_message *msg, std::deque<std::string> *q) {
  if (q->empty()) {
    *msg = crpc_message{};
    msg->end = true;
    return;
  }
  std::string s = q->front();
  q->pop_front();
  msg->data = static_cast<uint8_t *>(malloc(s.size() + 1));
  memcpy(msg->data, s.data(), s.size());
  msg->len = s.size();
  msg->end = false;
}

// A view, as the runtime passes to async handlers: valid only during the
// callback. Copied into a heap buffer of exactly len bytes so that ASan
// catches glue that reads past it or keeps it.
struct View {
  explicit View(const std::string &s)
      : bytes(static_cast<uint8_t *>(malloc(s.size() + 1))) {
    memcpy(bytes, s.data(), s.size());
    msg.data = bytes;
    msg.len = s.size();
  }
  ~View() { free(bytes); }
  uint8_t *bytes;
  crpc_message msg{};
};

crpc_cause Cause(crpc_code code, const char *message) {
  crpc_cause c{};
  c.code = code;
  c.origin = CRPC_ORIGIN_LOCAL;
  snprintf(c.message, sizeof c.message, "%s", message);
  return c;
}

crpc_code ServeUnaryAsync(const Method &m, crpc_server_call *sc,
                          const crpc_ctx *ctx) {
  if (sc->in.empty()) {
    return crpc_server_call_error(sc, CRPC_INTERNAL,
                                  "unary call ended without a request");
  }
  View v(sc->in.front());
  return m.unary_async(sc, ctx, &v.msg, m.user_data);
}

crpc_code ServeReactor(const crpc_server *server, const Method &m,
                       crpc_server_call *sc, const crpc_ctx *ctx) {
  const crpc_server_reactor &r = m.reactor;
  void *state = nullptr;
  bool cancelled = false;
  state = r.on_start(sc, ctx, m.user_data);
  sc->reactor_state = state;
  if (server->done_before_start) {
    crpc_cause c = Cause(CRPC_DEADLINE_EXCEEDED, "done before start");
    cancelled = true;
    r.on_cancel(sc, &c, state);
  }
  int delivered = 0;
  while (!cancelled && sc->finishes == 0) {
    if (delivered == server->cancel_after) {
      crpc_cause c = Cause(CRPC_CANCELLED, "peer reset");
      cancelled = true;
      if (r.on_cancel != nullptr) r.on_cancel(sc, &c, state);
      break;
    }
    if (sc->in.empty()) {
      crpc_message end{};
      end.end = true;
      if (r.on_message != nullptr) r.on_message(sc, &end, state);
      break;
    }
    View v(sc->in.front());
    sc->in.pop_front();
    delivered++;
    if (r.on_message != nullptr) r.on_message(sc, &v.msg, state);
  }
  // A reactor still running once its input is over would, with the real
  // runtime, run into the call's deadline.
  if (sc->finishes == 0 && !cancelled) {
    crpc_cause c = Cause(CRPC_DEADLINE_EXCEEDED, "deadline");
    if (r.on_cancel != nullptr) r.on_cancel(sc, &c, state);
  }
  if (sc->finishes == 0) return CRPC_DEADLINE_EXCEEDED;  // never finished
  if (r.on_done != nullptr) r.on_done(sc, state);
  return sc->finish_code;
}

}  // namespace

crpc_code FakeServe(const crpc_server *server, const Method &m,
                    crpc_server_call *sc, const crpc_ctx *ctx) {
  if (m.fn != nullptr) return m.fn(sc, ctx, m.user_data);
  if (m.unary_async != nullptr) return ServeUnaryAsync(m, sc, ctx);
  return ServeReactor(server, m, sc, ctx);
}

static void Run(crpc_call *call) {
  if (call->ran) return;
  call->ran = true;
  crpc_server_call sc;
  sc.in = call->requests;
  call->code = FakeServe(call->server, *call->method, &sc, call->ctx);
  call->message = sc.error;
  for (auto &m : sc.out) call->responses.push_back(m);
}

static crpc_code AddMethod(crpc_server *server, const char *path,
                           const Method &m) {
  if (server->methods.count(path)) return CRPC_ALREADY_EXISTS;
  server->methods[path] = m;
  return CRPC_OK;
}

// As the real registry: imports first, each name once.
static void AddFile(crpc_server *server, const crpc_file_descriptor *fd) {
  for (const crpc_file_descriptor *f : server->files) {
    if (std::string(f->name) == fd->name) return;
  }
  for (size_t i = 0; i < fd->n_deps; i++) AddFile(server, fd->deps[i]);
  server->files.push_back(fd);
}

extern "C" {

crpc_code crpc_server_add_file_descriptor(crpc_server *server,
                                          const crpc_file_descriptor *fd) {
  if (fd == nullptr || fd->name == nullptr) return CRPC_INVALID_ARGUMENT;
  AddFile(server, fd);
  return CRPC_OK;
}

crpc_code crpc_server_add_method(crpc_server *server, const char *path,
                                 crpc_method_kind kind, crpc_handler_fn fn,
                                 void *user_data) {
  Method m;
  m.kind = kind;
  m.fn = fn;
  m.user_data = user_data;
  return AddMethod(server, path, m);
}

crpc_code crpc_server_add_unary_async(crpc_server *server, const char *path,
                                      crpc_unary_async_fn fn,
                                      void *user_data) {
  if (fn == nullptr) return CRPC_INVALID_ARGUMENT;
  Method m;
  m.unary_async = fn;
  m.user_data = user_data;
  return AddMethod(server, path, m);
}

crpc_code crpc_server_add_async_method(crpc_server *server, const char *path,
                                       crpc_method_kind kind,
                                       const crpc_server_reactor *reactor,
                                       void *user_data) {
  if (reactor == nullptr || reactor->on_start == nullptr) {
    return CRPC_INVALID_ARGUMENT;
  }
  Method m;
  m.kind = kind;
  m.reactor = *reactor;
  m.user_data = user_data;
  return AddMethod(server, path, m);
}

crpc_code crpc_server_call_recv(crpc_server_call *call, crpc_message *msg) {
  Fill(msg, &call->in);
  return CRPC_OK;
}

crpc_code crpc_server_call_send(crpc_server_call *call, const void *data,
                                size_t len) {
  call->out.emplace_back(static_cast<const char *>(data), len);
  return CRPC_OK;
}

crpc_code crpc_server_call_send_async(crpc_server_call *call,
                                      const void *data, size_t len,
                                      unsigned flags) {
  if (flags != 0 || call->finishes > 0) return CRPC_FAILED_PRECONDITION;
  call->out.emplace_back(static_cast<const char *>(data), len);
  return CRPC_OK;
}

// A crpc_buf of exactly len bytes on the heap (ASan sees overruns); the
// sends below consume a reference, as the runtime's do.
struct crpc_buf {
  int refs;
  size_t len;
  uint8_t *bytes;
};

crpc_buf *crpc_buf_new(size_t len) {
  return new crpc_buf{1, len, static_cast<uint8_t *>(malloc(len ? len : 1))};
}

uint8_t *crpc_buf_data(crpc_buf *buf) { return buf->bytes; }

size_t crpc_buf_len(const crpc_buf *buf) { return buf->len; }

crpc_buf *crpc_buf_ref(crpc_buf *buf) {
  buf->refs++;
  return buf;
}

void crpc_buf_unref(crpc_buf *buf) {
  if (buf == nullptr || --buf->refs > 0) return;
  free(buf->bytes);
  delete buf;
}

crpc_code crpc_server_call_send_buf(crpc_server_call *call, crpc_buf *buf,
                                    unsigned flags) {
  crpc_code code = flags != 0 ? CRPC_FAILED_PRECONDITION
                              : crpc_server_call_send(call, buf->bytes, buf->len);
  crpc_buf_unref(buf);
  return code;
}

crpc_code crpc_server_call_send_async_buf(crpc_server_call *call,
                                          crpc_buf *buf, unsigned flags) {
  crpc_code code = crpc_server_call_send_async(call, buf->bytes, buf->len, flags);
  crpc_buf_unref(buf);
  return code;
}

void crpc_server_call_finish(crpc_server_call *call, crpc_code code,
                             const char *message) {
  if (message != nullptr) call->error = message;
  if (call->finishes++ == 0) call->finish_code = code;
}

crpc_code crpc_server_call_error(crpc_server_call *call, crpc_code code,
                                 const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  call->error = buf;
  return code;
}

crpc_code crpc_call_start(crpc_channel *channel, const crpc_ctx *ctx,
                          const char *method, const crpc_metadata *,
                          crpc_call **call) {
  *call = nullptr;
  if (ctx == nullptr) abort();  // the real runtime aborts too
  auto it = channel->server->methods.find(method);
  if (it == channel->server->methods.end()) return CRPC_UNIMPLEMENTED;
  *call = new crpc_call();
  (*call)->server = channel->server;
  (*call)->method = &it->second;
  (*call)->ctx = ctx;
  return CRPC_OK;
}

crpc_code crpc_call_send(crpc_call *call, const void *data, size_t len) {
  call->requests.emplace_back(static_cast<const char *>(data), len);
  return CRPC_OK;
}

crpc_code crpc_call_send_buf(crpc_call *call, crpc_buf *buf, unsigned flags) {
  crpc_code code = flags != 0 ? CRPC_FAILED_PRECONDITION
                              : crpc_call_send(call, buf->bytes, buf->len);
  crpc_buf_unref(buf);
  return code;
}

crpc_code crpc_call_close_send(crpc_call *call) {
  Run(call);
  return CRPC_OK;
}

crpc_code crpc_call_start_request(crpc_channel *channel, const crpc_ctx *ctx,
                                  const char *method, const crpc_metadata *md,
                                  crpc_buf *request, crpc_call **call) {
  crpc_code code = crpc_call_start(channel, ctx, method, md, call);
  if (code != CRPC_OK) {
    crpc_buf_unref(request);
    return code;
  }
  code = crpc_call_send_buf(*call, request, 0);
  return code == CRPC_OK ? crpc_call_close_send(*call) : code;
}

crpc_code crpc_call_recv(crpc_call *call, crpc_message *msg) {
  Run(call);
  Fill(msg, &call->responses);
  return CRPC_OK;
}

crpc_code crpc_call_finish(crpc_call *call, crpc_status *status) {
  Run(call);
  if (status != nullptr) {
    status->code = call->code;
    status->message = strdup(call->message.c_str());
    status->trailers = nullptr;
  }
  return call->code;
}

void crpc_call_free(crpc_call *call) { delete call; }

crpc_code crpc_unary_call(crpc_channel *channel, const crpc_ctx *ctx,
                          const char *method, const crpc_metadata *md,
                          const void *request, size_t request_len,
                          crpc_message *response, crpc_status *status) {
  crpc_call *call;
  crpc_code code = crpc_call_start(channel, ctx, method, md, &call);
  if (code != CRPC_OK) return code;
  crpc_call_send(call, request, request_len);
  crpc_call_close_send(call);
  crpc_call_recv(call, response);
  code = crpc_call_finish(call, status);
  if (code != CRPC_OK) free(response->data);
  crpc_call_free(call);
  return code;
}

// Async unary, the fake's way: the whole call runs before this returns,
// then done gets it (the real runtime calls done on its loop thread).
crpc_code crpc_unary_call_async(crpc_channel *channel, const crpc_ctx *ctx,
                                const char *method, const crpc_metadata *md,
                                const void *request, size_t request_len,
                                crpc_unary_done_fn done, void *user_data) {
  crpc_message response = {};
  crpc_status status = {};
  crpc_code code = crpc_unary_call(channel, ctx, method, md, request,
                                   request_len, &response, &status);
  if (status.message == nullptr) status.message = strdup("");
  if (code != CRPC_OK) response = crpc_message{};
  done(code, &response, &status, user_data);
  crpc_status_clear(&status);
  return CRPC_OK;
}

void crpc_status_clear(crpc_status *status) {
  free(status->message);
  memset(status, 0, sizeof *status);
}

}  // extern "C"
