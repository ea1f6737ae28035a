// rpc/server/lifecycle_handlers.h - the handlers of lifecycle_test.cc, each
// in both styles: blocking (crpc/server.h: a thread of its own, recv/send)
// and its async twin (crpc/server_async.h: a reactor on the loop thread,
// or crpc_server_add_unary_async), with the same observable behaviour.
// TwinServer registers the style the test is parametrised with.
//
// No async callback blocks. A twin that waits for the test (Hold, Stream:
// polling a flag in 1 ms ctx sleeps, as the blocking one does) hands its
// call to a thread of its own with the call's ctx; one that waits for its
// ctx to end (Hang) does nothing until on_cancel, then finishes. Included
// by lifecycle_test.cc only (hence the anonymous namespace).
#ifndef CRPC_SERVER_LIFECYCLE_HANDLERS_H
#define CRPC_SERVER_LIFECYCLE_HANDLERS_H

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "crpc/server.h"
#include "crpc/server_async.h"
#include "rpc/channel/test_util.h"
#include "rpc/testing/handlers.h"

namespace crpc_test {
namespace {

// Which handlers serve the test's methods (rpc/testing/handlers.h).
using crpc_testing::Handlers;

// A test's look at a call: on a handler thread (blocking) or on the loop
// thread (async), so it must not block.
using CallHook = std::function<void(crpc_server_call *)>;
// A Hang call's end: the ctx's cause (crpc_ctx_wait / on_cancel).
using EndHook = std::function<void(crpc_code, const crpc_cause *)>;

// The threads reactors hand their calls to. Joined after the server is
// freed: by then every call is over, so each has finished its call (its
// ctx ended with the server at the latest) and touches nothing more.
struct Workers {
  std::mutex mu;
  std::vector<std::thread> threads;
  void Spawn(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu);
    threads.emplace_back(std::move(fn));
  }
  ~Workers() {
    std::vector<std::thread> t;
    {
      std::lock_guard<std::mutex> l(mu);
      t.swap(threads);
    }
    for (auto &th : t) th.join();
  }
};

// What one method needs of the test; owned by TwinServer, so it outlives
// the server (crpc_server_add_async_method's user_data must).
struct MethodArgs {
  CallHook on_call;
  EndHook on_end;
  std::atomic<bool> *started = nullptr;  // Hold: its request is in
  std::atomic<bool> *go = nullptr;       // Hold, Stream: stop waiting
  Workers *workers = nullptr;
};

// Waits (in ctx sleeps) until the call's send buffer takes more, then
// queues the message: flow control off the loop thread.
crpc_code SendWhenReady(crpc_server_call *call, const crpc_ctx *ctx,
                        const std::string &msg) {
  while (!crpc_server_call_can_send(call)) {
    crpc_code c = crpc_ctx_sleep(ctx, CRPC_MILLISECOND);
    if (c != CRPC_OK) return c;
  }
  return crpc_server_call_send_async(call, msg.data(), msg.size(), 0);
}

// Sleeps 1 ms at a time until *go; the ctx's code if it ends first.
crpc_code WaitForGo(const crpc_ctx *ctx, const std::atomic<bool> *go) {
  while (!go->load()) {
    crpc_code c = crpc_ctx_sleep(ctx, CRPC_MILLISECOND);
    if (c != CRPC_OK) return c;
  }
  return CRPC_OK;
}

// ---- the async side: one call's state, made by on_start, freed by on_done

// Callbacks run on the loop thread, one at a time. Once a worker owns the
// call (worker_, set on the loop before the thread exists) the callbacks
// leave it alone: the worker sees the ctx end in its own waits and its
// crpc_server_call_finish is its last touch of the call.
class AsyncCall {
 public:
  AsyncCall(crpc_server_call *call, const crpc_ctx *ctx, MethodArgs *args)
      : call_(call), ctx_(ctx), args_(args) {}
  virtual ~AsyncCall() = default;
  virtual void Message(const crpc_message *) {}
  virtual void SendReady() {}
  // The ctx ended first (shutdown past its grace, connection lost, ...):
  // the call must still be finished, unless a worker owns it.
  virtual void Cancel(const crpc_cause *cause) { Finish(cause->code); }

 protected:
  void Finish(crpc_code code) {
    if (finished_ || worker_) return;
    finished_ = true;
    crpc_server_call_finish(call_, code, nullptr);
  }
  // True for the request of a unary / server-streaming call (once); an end
  // without one is answered INTERNAL, as crpc answers an inline unary.
  bool IsRequest(const crpc_message *m) {
    if (finished_ || worker_ || got_request_) return false;
    if (m->end) {
      Finish(CRPC_INTERNAL);
      return false;
    }
    got_request_ = true;
    return true;
  }
  // The rest of the call runs `work` on a thread of its own; its code
  // ends the call. `work` may use this state: it is freed only after the
  // finish that follows it.
  void HandOff(std::function<crpc_code()> work) {
    worker_ = true;
    crpc_server_call *call = call_;
    try {
      args_->workers->Spawn([call, work] {
        crpc_code c = work();
        crpc_server_call_finish(call, c, nullptr);  // the call is off-limits
      });
    } catch (const std::system_error &) {  // no thread: end the call here
      worker_ = false;
      Finish(CRPC_RESOURCE_EXHAUSTED);
    }
  }

  crpc_server_call *call_;
  const crpc_ctx *ctx_;
  MethodArgs *args_;
  bool finished_ = false, worker_ = false, got_request_ = false;
};

template <class C>
crpc_code AddReactor(crpc_server *s, const char *path, crpc_method_kind kind,
                     MethodArgs *args) {
  crpc_server_reactor r{};
  r.on_start = [](crpc_server_call *call, const crpc_ctx *ctx,
                  void *ud) -> void * {
    return static_cast<AsyncCall *>(
        new C(call, ctx, static_cast<MethodArgs *>(ud)));
  };
  r.on_message = [](crpc_server_call *, const crpc_message *m, void *st) {
    static_cast<AsyncCall *>(st)->Message(m);
  };
  r.on_send_ready = [](crpc_server_call *, void *st) {
    static_cast<AsyncCall *>(st)->SendReady();
  };
  r.on_cancel = [](crpc_server_call *, const crpc_cause *cause, void *st) {
    static_cast<AsyncCall *>(st)->Cancel(cause);
  };
  r.on_done = [](crpc_server_call *, void *st) {
    delete static_cast<AsyncCall *>(st);
  };
  return crpc_server_add_async_method(s, path, kind, &r, args);
}

// Hold: waits for *go (1 ms ctx sleeps) on a worker, then echoes.
class HoldCall : public AsyncCall {
 public:
  using AsyncCall::AsyncCall;
  void Message(const crpc_message *m) override {
    if (!IsRequest(m)) return;
    *args_->started = true;
    std::string req = Str(*m);  // the view dies with the callback
    HandOff([this, req] {
      crpc_code c = WaitForGo(ctx_, args_->go);
      return c != CRPC_OK ? c : SendWhenReady(call_, ctx_, req);
    });
  }
};

// Stream: "first" from the loop, then a worker waits for *go and sends
// "second".
class StreamCall : public AsyncCall {
 public:
  using AsyncCall::AsyncCall;
  void Message(const crpc_message *m) override {
    if (!IsRequest(m)) return;
    crpc_code c = crpc_server_call_send_async(call_, "first", 5, 0);
    if (c != CRPC_OK) {
      Finish(c);
      return;
    }
    HandOff([this] {
      crpc_code c = WaitForGo(ctx_, args_->go);
      return c != CRPC_OK ? c : SendWhenReady(call_, ctx_, "second");
    });
  }
};

// Hang: nothing until the ctx ends; on_cancel reports the cause and
// finishes with it.
class HangCall : public AsyncCall {
 public:
  HangCall(crpc_server_call *call, const crpc_ctx *ctx, MethodArgs *args)
      : AsyncCall(call, ctx, args) {
    if (args_->on_call) args_->on_call(call);
  }
  void Cancel(const crpc_cause *cause) override {
    if (args_->on_end) args_->on_end(cause->code, cause);
    Finish(cause->code);
  }
};

// Chat: echoes each message as the send buffer takes it; OK after the
// client's half-close and the last echo.
class ChatCall : public AsyncCall {
 public:
  ChatCall(crpc_server_call *call, const crpc_ctx *ctx, MethodArgs *args)
      : AsyncCall(call, ctx, args) {
    if (args_->on_call) args_->on_call(call);
  }
  void Message(const crpc_message *m) override {
    if (m->end) {
      ended_ = true;
    } else {
      pending_.push_back(Str(*m));
    }
    Pump();
  }
  void SendReady() override { Pump(); }

 private:
  void Pump() {
    while (!finished_ && !pending_.empty() &&
           crpc_server_call_can_send(call_)) {
      const std::string &msg = pending_.front();
      crpc_code c =
          crpc_server_call_send_async(call_, msg.data(), msg.size(), 0);
      pending_.pop_front();
      if (c != CRPC_OK) Finish(c);
    }
    if (ended_ && pending_.empty()) Finish(CRPC_OK);
  }

  bool ended_ = false;
  std::deque<std::string> pending_;
};

crpc_code EchoInline(crpc_server_call *call, const crpc_ctx *,
                     const crpc_message *req, void *ud) {
  auto *args = static_cast<MethodArgs *>(ud);
  if (args->on_call) args->on_call(call);
  return crpc_server_call_send_async(call, req->data, req->len, 0);
}

// ---- the server ------------------------------------------------------------

// A TestServer whose methods are registered in one handler style.
class TwinServer {
 public:
  explicit TwinServer(Handlers style, const crpc_server_options *opts = nullptr)
      : style_(style), server_(opts) {}

  // Unary: one request in, the same bytes back (on_call first).
  void Echo(const char *path, CallHook on_call = nullptr) {
    MethodArgs *a = Args();
    a->on_call = std::move(on_call);
    if (Async()) {
      ASSERT_EQ(crpc_server_add_unary_async(get(), path, EchoInline, a),
                CRPC_OK);
      return;
    }
    server_.Add(path, CRPC_UNARY,
                [a](crpc_server_call *call, const crpc_ctx *) {
                  if (a->on_call) a->on_call(call);
                  return EchoOnce(call);
                });
  }
  // Unary: *started once its request is in; echoes it once *release (or
  // ends with the ctx's code).
  void Hold(const char *path, std::atomic<bool> *started,
            std::atomic<bool> *release) {
    MethodArgs *a = Args();
    a->started = started;
    a->go = release;
    if (Async()) {
      ASSERT_EQ(AddReactor<HoldCall>(get(), path, CRPC_UNARY, a), CRPC_OK);
      return;
    }
    server_.Add(path, CRPC_UNARY,
                [a](crpc_server_call *call, const crpc_ctx *ctx) {
                  *a->started = true;
                  crpc_code c = WaitForGo(ctx, a->go);
                  return c != CRPC_OK ? c : EchoOnce(call);
                });
  }
  // Server streaming: "first" after the request, "second" once *go, OK.
  void Stream(const char *path, std::atomic<bool> *go) {
    MethodArgs *a = Args();
    a->go = go;
    if (Async()) {
      ASSERT_EQ(AddReactor<StreamCall>(get(), path, CRPC_SERVER_STREAMING, a),
                CRPC_OK);
      return;
    }
    server_.Add(
        path, CRPC_SERVER_STREAMING,
        [a](crpc_server_call *call, const crpc_ctx *ctx) {
          crpc_message m;
          crpc_code c = crpc_server_call_recv(call, &m);
          if (c != CRPC_OK) return c;
          free(m.data);
          if ((c = crpc_server_call_send(call, "first", 5)) != CRPC_OK) {
            return c;
          }
          if ((c = WaitForGo(ctx, a->go)) != CRPC_OK) return c;
          return crpc_server_call_send(call, "second", 6);
        });
  }
  // Unary: on_call, then nothing until the ctx ends; on_end gets the
  // cause and the call ends with its code.
  void Hang(const char *path, CallHook on_call, EndHook on_end) {
    MethodArgs *a = Args();
    a->on_call = std::move(on_call);
    a->on_end = std::move(on_end);
    if (Async()) {
      ASSERT_EQ(AddReactor<HangCall>(get(), path, CRPC_UNARY, a), CRPC_OK);
      return;
    }
    server_.Add(path, CRPC_UNARY,
                [a](crpc_server_call *call, const crpc_ctx *ctx) {
                  if (a->on_call) a->on_call(call);
                  crpc_code c = crpc_ctx_wait(ctx);
                  if (a->on_end) a->on_end(c, crpc_ctx_cause(ctx));
                  return c;
                });
  }
  // Bidi: on_call, then every message echoed; OK at the half-close.
  void Chat(const char *path, CallHook on_call) {
    MethodArgs *a = Args();
    a->on_call = std::move(on_call);
    if (Async()) {
      ASSERT_EQ(AddReactor<ChatCall>(get(), path, CRPC_BIDI_STREAMING, a),
                CRPC_OK);
      return;
    }
    server_.Add(path, CRPC_BIDI_STREAMING,
                [a](crpc_server_call *call, const crpc_ctx *) {
                  if (a->on_call) a->on_call(call);
                  for (;;) {
                    crpc_message m;
                    crpc_code c = crpc_server_call_recv(call, &m);
                    if (c != CRPC_OK || m.end) return c;
                    c = crpc_server_call_send(call, m.data, m.len);
                    free(m.data);
                    if (c != CRPC_OK) return c;
                  }
                });
  }

  void Start(const char *addr = "127.0.0.1:0") { server_.Start(addr); }
  std::string target() const { return server_.target(); }
  int port() const { return server_.port(); }
  crpc_server *get() { return server_.get(); }

 private:
  bool Async() const { return style_ == Handlers::kAsync; }
  MethodArgs *Args() {
    args_.push_back(std::make_unique<MethodArgs>());
    args_.back()->workers = &workers_;
    return args_.back().get();
  }

  Handlers style_;
  // Destroyed in reverse: the server first (its calls are over when
  // crpc_server_free returns), then the workers are joined, then the args.
  std::vector<std::unique_ptr<MethodArgs>> args_;
  Workers workers_;
  TestServer server_;
};

}  // namespace
}  // namespace crpc_test

#endif  // CRPC_SERVER_LIFECYCLE_HANDLERS_H
