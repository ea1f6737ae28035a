// The server-side methods of limits_test (crpc.limits.Limits), each as a
// blocking handler (crpc/server.h) and its async twin (crpc/server_async.h)
// with the same observable behaviour: what the client sees, and the Limits
// counters the tests assert on. The async twins never block the loop:
//   Slow   waits (sleep / hold) on a thread of its own with the call's ctx;
//          that thread sends and finishes the call.
//   Noop   finishes in on_start.
//   BigMd  inline unary (crpc_server_add_unary_async).
//   Flood  sends while crpc_server_call_can_send says true, resumes in
//          on_send_ready; ends when a send fails or in on_cancel.
//   Stall  never reads: crpc_server_call_pause_recv in on_start holds the
//          request stream (flow control holds the client); ends in on_cancel.
#ifndef CRPC_E2E_LIMITS_HANDLERS_H
#define CRPC_E2E_LIMITS_HANDLERS_H

#include <system_error>

#include "rpc/e2e/e2e_util.h"

namespace crpc_e2e {
namespace limits {

constexpr char kSvc[] = "/crpc.limits.Limits/";
inline std::string L(const char *m) { return std::string(kSvc) + m; }

struct Limits {
  std::atomic<int> invocations{0}, running{0}, max_running{0};
  std::atomic<bool> release{false};
  std::atomic<size_t> flood_bytes{0};
  std::atomic<int> stall_running{0};

  // Async Slow's worker threads; false if none could be started. Joined
  // when the fixture goes, after the server's shutdown (which waits for
  // every call, hence every worker's finish).
  bool Spawn(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    try {
      workers_.emplace_back(std::move(fn));
    } catch (const std::system_error &) {
      return false;
    }
    return true;
  }
  ~Limits() {
    for (auto &t : workers_) t.join();
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> workers_;
};

inline std::string RecvText(crpc_server_call *call) {
  crpc_message m{};
  if (crpc_server_call_recv(call, &m) != CRPC_OK || m.end) return "";
  std::string s(reinterpret_cast<const char *>(m.data), m.len);
  free(m.data);
  return s;
}

// ---- Slow: request "sleep <ms>" or "hold" (until released or the ctx
// ends), then "done"; counts how many run at once ---------------------------

inline void SlowEnter(Limits *st) {
  st->invocations++;
  int now = ++st->running;
  int prev = st->max_running.load();
  while (now > prev && !st->max_running.compare_exchange_weak(prev, now)) {
  }
}

inline crpc_code SlowWait(Limits *st, const crpc_ctx *ctx, const std::string &req) {
  crpc_code rc = CRPC_OK;
  if (req == "hold") {
    while (!st->release.load() && rc == CRPC_OK) rc = crpc_ctx_sleep(ctx, 2 * kMs);
    return rc;
  }
  return crpc_ctx_sleep(ctx, req.size() > 6 ? atoll(req.c_str() + 6) * kMs : 0);
}

inline crpc_code Slow(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  auto *st = static_cast<Limits *>(ud);
  SlowEnter(st);
  crpc_code rc = SlowWait(st, ctx, RecvText(call));
  st->running--;
  return rc == CRPC_OK ? crpc_server_call_send(call, "done", 4) : rc;
}

struct AsyncSlow {
  AsyncSlow(Limits *s, crpc_server_call *c, const crpc_ctx *x) : st(s), call(c), ctx(x) {}
  Limits *st;
  crpc_server_call *call;
  const crpc_ctx *ctx;
  std::string req;
  bool handed_off = false, finished = false;  // loop thread only
};

inline void *SlowStart(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  auto *st = static_cast<Limits *>(ud);
  SlowEnter(st);
  return new AsyncSlow(st, call, ctx);
}

// Ends the call on the loop, before any worker took it.
inline void SlowEndOnLoop(AsyncSlow *s, crpc_code code) {
  s->finished = true;
  s->st->running--;
  crpc_server_call_finish(s->call, code, nullptr);
}

// The worker: owns the call from the hand-off to its finish; s may be
// freed (on_done, on the loop) the moment finish is called.
inline void SlowWork(AsyncSlow *s) {
  Limits *st = s->st;
  crpc_server_call *call = s->call;
  crpc_code rc = SlowWait(st, s->ctx, s->req);
  st->running--;
  if (rc == CRPC_OK) rc = crpc_server_call_send_async(call, "done", 4, 0);
  crpc_server_call_finish(call, rc, nullptr);
}

inline void SlowMessage(crpc_server_call *, const crpc_message *msg, void *state) {
  auto *s = static_cast<AsyncSlow *>(state);
  if (s->handed_off || s->finished) return;  // the half-close after the request
  if (msg->end) {
    SlowEndOnLoop(s, crpc_server_call_error(s->call, CRPC_INVALID_ARGUMENT, "no request"));
    return;
  }
  s->req.assign(reinterpret_cast<const char *>(msg->data), msg->len);
  s->handed_off = true;  // before the thread exists: only the loop reads it
  if (!s->st->Spawn([s] { SlowWork(s); })) {
    s->handed_off = false;
    SlowEndOnLoop(s, CRPC_RESOURCE_EXHAUSTED);
  }
}

inline void SlowCancel(crpc_server_call *, const crpc_cause *cause, void *state) {
  auto *s = static_cast<AsyncSlow *>(state);
  // A worker sees the ctx done in its sleep and finishes the call itself.
  if (s->handed_off || s->finished) return;
  SlowEndOnLoop(s, cause->code);
}

inline void SlowDone(crpc_server_call *, void *state) { delete static_cast<AsyncSlow *>(state); }

// ---- Noop: answers OK without reading (so a body-less raw request works) --

inline crpc_code Noop(crpc_server_call *, const crpc_ctx *, void *ud) {
  static_cast<Limits *>(ud)->invocations++;
  return CRPC_OK;
}

inline void *NoopStart(crpc_server_call *call, const crpc_ctx *, void *ud) {
  static_cast<Limits *>(ud)->invocations++;
  crpc_server_call_finish(call, CRPC_OK, nullptr);
  return nullptr;
}

// ---- BigMd: request "<where> <n>": an n-byte x-big in the response
// "headers" (then one message), the "trailers" (after one message) or a
// "trailers-only" answer (no message) ---------------------------------------

// Adds the x-big; true when a message is to follow.
inline bool BigMdAdd(Limits *st, crpc_server_call *call, const std::string &req) {
  st->invocations++;
  size_t sp = req.find(' ');
  std::string where = req.substr(0, sp);
  std::string big(static_cast<size_t>(atoll(req.c_str() + sp + 1)), 'b');
  crpc_metadata *md = where == "headers" ? crpc_server_call_response_headers(call)
                                         : crpc_server_call_trailers(call);
  crpc_metadata_add(md, "x-big", big.data(), big.size());
  return where != "trailers-only";
}

inline crpc_code BigMd(crpc_server_call *call, const crpc_ctx *, void *ud) {
  if (!BigMdAdd(static_cast<Limits *>(ud), call, RecvText(call))) return CRPC_OK;
  return crpc_server_call_send(call, "ok", 2);
}

inline crpc_code BigMdAsync(crpc_server_call *call, const crpc_ctx *, const crpc_message *req,
                            void *ud) {
  std::string text(reinterpret_cast<const char *>(req->data), req->len);
  if (!BigMdAdd(static_cast<Limits *>(ud), call, text)) return CRPC_OK;
  return crpc_server_call_send_async(call, "ok", 2, 0);
}

// ---- Flood: 16 KiB messages until a send fails; counts the bytes sent -----

inline crpc_code Flood(crpc_server_call *call, const crpc_ctx *, void *ud) {
  auto *st = static_cast<Limits *>(ud);
  std::string m(16384, 'f');
  for (;;) {
    crpc_code rc = crpc_server_call_send(call, m.data(), m.size());
    if (rc != CRPC_OK) return rc;
    st->flood_bytes += m.size();
  }
}

struct AsyncFlood {
  explicit AsyncFlood(Limits *s) : st(s) {}
  Limits *st;
  std::string m = std::string(16384, 'f');
  bool finished = false;
};

inline void FloodPump(crpc_server_call *call, AsyncFlood *f) {
  while (!f->finished && crpc_server_call_can_send(call)) {
    crpc_code rc = crpc_server_call_send_async(call, f->m.data(), f->m.size(), 0);
    if (rc != CRPC_OK) {
      f->finished = true;
      crpc_server_call_finish(call, rc, nullptr);
      return;
    }
    f->st->flood_bytes += f->m.size();
  }
}

inline void *FloodStart(crpc_server_call *call, const crpc_ctx *, void *ud) {
  auto *f = new AsyncFlood(static_cast<Limits *>(ud));
  FloodPump(call, f);  // the blocking Flood does not wait for the request either
  return f;
}

inline void FloodReady(crpc_server_call *call, void *state) {
  FloodPump(call, static_cast<AsyncFlood *>(state));
}

inline void FloodCancel(crpc_server_call *call, const crpc_cause *cause, void *state) {
  auto *f = static_cast<AsyncFlood *>(state);
  if (f->finished) return;
  f->finished = true;
  crpc_server_call_finish(call, cause->code, nullptr);
}

inline void FloodDone(crpc_server_call *, void *state) { delete static_cast<AsyncFlood *>(state); }

// ---- Stall: never reads; ends when the ctx ends ------------------------------

inline crpc_code Stall(crpc_server_call *, const crpc_ctx *ctx, void *ud) {
  auto *st = static_cast<Limits *>(ud);
  st->stall_running++;
  crpc_code rc = crpc_ctx_wait(ctx);
  st->stall_running--;
  return rc;
}

inline void *StallStart(crpc_server_call *call, const crpc_ctx *, void *ud) {
  auto *st = static_cast<Limits *>(ud);
  st->stall_running++;
  crpc_server_call_pause_recv(call);  // never resumed: the window stays spent
  return st;
}

inline void StallCancel(crpc_server_call *call, const crpc_cause *cause, void *state) {
  static_cast<Limits *>(state)->stall_running--;
  crpc_server_call_finish(call, cause->code, nullptr);
}

// ---- registration -------------------------------------------------------------

inline void AddLimitsMethods(crpc_server *s, Limits *st, bool async) {
  if (!async) {
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(s, L("Slow").c_str(), CRPC_UNARY, Slow, st));
    ASSERT_EQ(CRPC_OK,
              crpc_server_add_method(s, L("Noop").c_str(), CRPC_BIDI_STREAMING, Noop, st));
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(s, L("BigMd").c_str(), CRPC_UNARY, BigMd, st));
    ASSERT_EQ(CRPC_OK,
              crpc_server_add_method(s, L("Flood").c_str(), CRPC_SERVER_STREAMING, Flood, st));
    ASSERT_EQ(CRPC_OK,
              crpc_server_add_method(s, L("Stall").c_str(), CRPC_CLIENT_STREAMING, Stall, st));
    return;
  }
  const crpc_server_reactor slow = {SlowStart, SlowMessage, nullptr, SlowCancel, SlowDone};
  const crpc_server_reactor noop = {NoopStart, nullptr, nullptr, nullptr, nullptr};
  const crpc_server_reactor flood = {FloodStart, nullptr, FloodReady, FloodCancel, FloodDone};
  const crpc_server_reactor stall = {StallStart, nullptr, nullptr, StallCancel, nullptr};
  ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, L("Slow").c_str(), CRPC_UNARY, &slow, st));
  ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, L("Noop").c_str(), CRPC_BIDI_STREAMING,
                                                  &noop, st));
  ASSERT_EQ(CRPC_OK, crpc_server_add_unary_async(s, L("BigMd").c_str(), BigMdAsync, st));
  ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, L("Flood").c_str(), CRPC_SERVER_STREAMING,
                                                  &flood, st));
  ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, L("Stall").c_str(), CRPC_CLIENT_STREAMING,
                                                  &stall, st));
}

}  // namespace limits
}  // namespace crpc_e2e

#endif  // CRPC_E2E_LIMITS_HANDLERS_H
