// rpc/server/async_test_util.h - the harness of the async server tests
// (async_test.cc, async_dispatch_test.cc): a crpc channel client, inline
// unary handlers and reactors as lambdas with a log of every callback and
// the lifecycle rules each call must follow. Included by one test file
// each (hence the anonymous namespace).
#ifndef CRPC_SERVER_ASYNC_TEST_UTIL_H
#define CRPC_SERVER_ASYNC_TEST_UTIL_H

#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "crpc/channel.h"
#include "crpc/server.h"
#include "crpc/server_async.h"
#include "rpc/channel/test_util.h"
#include "rpc/server/raw_client.h"

namespace crpc_test {
namespace {

constexpr int64_t kMs = CRPC_MILLISECOND;
// Upper bound for anything that should happen "soon" (loaded CI machines,
// sanitizers). Never a measure of speed.
constexpr int64_t kWait = 10 * CRPC_SECOND;

const char kLoopThread[] = "crpc-loop";
const char kHandlerThread[] = "crpc-handler";
const char kStandbyThread[] = "crpc-standby";

inline std::string ThreadName() {
  char name[32] = {0};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

inline std::string View(const crpc_message *m) {
  return std::string(reinterpret_cast<const char *>(m->data), m->len);
}

// The value of the first `key` in md, or "<none>".
inline std::string Get(const crpc_metadata *md, const char *key) {
  crpc_metadata_entry e;
  if (md == nullptr || !crpc_metadata_get(md, key, &e)) return "<none>";
  return std::string(reinterpret_cast<const char *>(e.value), e.value_len);
}

// Runs fn when the scope ends, also when an ASSERT returns early.
class Finally {
 public:
  explicit Finally(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~Finally() { fn_(); }

 private:
  std::function<void()> fn_;
};

// ---- client side ----------------------------------------------------------

class Channel {
 public:
  explicit Channel(const std::string &target,
                   const crpc_channel_options *opts = nullptr)
      : ch_(crpc_channel_new(target.c_str(), opts)) {
    EXPECT_NE(ch_, nullptr);
  }
  ~Channel() { crpc_channel_free(ch_); }
  operator crpc_channel *() const { return ch_; }

 private:
  crpc_channel *ch_;
};

// A client call freed at the end of the scope.
struct CallPtr {
  crpc_call *c = nullptr;
  ~CallPtr() { crpc_call_free(c); }
};

struct Reply {
  crpc_code code = CRPC_UNKNOWN;
  std::string body;
  std::string message;
  std::string trailer;  // the "x-trail" trailer, or "<none>"
};

inline Reply Unary(crpc_channel *ch, const char *method, const std::string &req,
            int64_t timeout_ns = kWait) {
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ns));
  crpc_message resp{};
  crpc_status st{};
  Reply r;
  r.code = crpc_unary_call(ch, ctx, method, nullptr, req.data(), req.size(),
                           &resp, &st);
  if (r.code == CRPC_OK) {
    r.body = Str(resp);
    free(resp.data);
  }
  r.message = st.message != nullptr ? st.message : "";
  r.trailer = Get(st.trailers, "x-trail");
  crpc_status_clear(&st);
  return r;
}

// ---- server side: an inline unary handler as a lambda -----------------------

class UnaryAsync {
 public:
  using Fn = std::function<crpc_code(crpc_server_call *, const crpc_ctx *,
                                     const crpc_message *)>;
  explicit UnaryAsync(Fn fn) : fn_(std::move(fn)) {}

  crpc_code Register(crpc_server *s, const char *path) {
    return crpc_server_add_unary_async(s, path, Trampoline, this);
  }
  int calls() const { return calls_.load(); }
  std::set<std::string> thread_names() {
    std::lock_guard<std::mutex> l(mu_);
    return names_;
  }
  std::set<std::thread::id> threads() {
    std::lock_guard<std::mutex> l(mu_);
    return tids_;
  }
  std::set<std::string> peers() {
    std::lock_guard<std::mutex> l(mu_);
    return peers_;
  }

 private:
  static crpc_code Trampoline(crpc_server_call *call, const crpc_ctx *ctx,
                              const crpc_message *req, void *ud) {
    auto *self = static_cast<UnaryAsync *>(ud);
    self->calls_++;
    {
      std::lock_guard<std::mutex> l(self->mu_);
      self->names_.insert(ThreadName());
      self->tids_.insert(std::this_thread::get_id());
      self->peers_.insert(crpc_server_call_peer(call));
    }
    return self->fn_(call, ctx, req);
  }

  Fn fn_;
  std::atomic<int> calls_{0};
  std::mutex mu_;
  std::set<std::string> names_;
  std::set<std::thread::id> tids_;
  std::set<std::string> peers_;
};

inline crpc_code EchoInline(crpc_server_call *call, const crpc_ctx *,
                     const crpc_message *req) {
  return crpc_server_call_send_async(call, req->data, req->len, 0);
}

// ---- server side: a reactor as lambdas, with a log of every callback ------

enum class Ev { kStart, kMessage, kEnd, kSendReady, kCancel, kDone };

inline const char *EvName(Ev e) {
  switch (e) {
    case Ev::kStart:
      return "start";
    case Ev::kMessage:
      return "message";
    case Ev::kEnd:
      return "end";
    case Ev::kSendReady:
      return "send_ready";
    case Ev::kCancel:
      return "cancel";
    case Ev::kDone:
      return "done";
  }
  return "?";
}

struct Event {
  Ev ev;
  int call;  // calls are numbered 0, 1, ... in the order of on_start
  crpc_server_call *handle;
  void *state;
  std::thread::id tid;
  bool on_loop;  // the thread is a crpc loop thread
  int64_t t;
  crpc_code code;  // on_cancel: the cause
  crpc_origin origin;
  std::string data;  // on_message: the bytes; on_cancel: the cause message
};

class Reactor {
 public:
  // The hooks see the state their start hook returned; crpc sees a slot
  // wrapping it (the callbacks after on_start get no user_data), freed
  // after on_done: a callback after on_done is a use after free.
  std::function<void *(crpc_server_call *, const crpc_ctx *)> start;
  std::function<void(crpc_server_call *, const crpc_message *, void *)> message;
  std::function<void(crpc_server_call *, void *)> send_ready;
  std::function<void(crpc_server_call *, const crpc_cause *, void *)> cancel;
  std::function<void(crpc_server_call *, void *)> done;

  crpc_code Register(crpc_server *s, const char *path, crpc_method_kind kind) {
    crpc_server_reactor r;
    memset(&r, 0, sizeof(r));
    r.on_start = OnStart;
    r.on_message = OnMessage;
    r.on_send_ready = OnSendReady;
    r.on_cancel = OnCancel;
    r.on_done = OnDone;
    return crpc_server_add_async_method(s, path, kind, &r, this);
  }

  std::vector<Event> Events() {
    std::lock_guard<std::mutex> l(mu_);
    return events_;
  }
  std::vector<Event> EventsOf(int call) {
    std::vector<Event> out;
    for (auto &e : Events()) {
      if (e.call == call) out.push_back(e);
    }
    return out;
  }
  int Count(Ev ev) {
    std::lock_guard<std::mutex> l(mu_);
    int n = 0;
    for (auto &e : events_) n += e.ev == ev;
    return n;
  }
  bool WaitCount(Ev ev, int n, int64_t timeout_ns = kWait) {
    return WaitFor([&] { return Count(ev) >= n; }, timeout_ns);
  }
  // The first event of this kind (the test has waited for it).
  Event First(Ev ev) {
    std::lock_guard<std::mutex> l(mu_);
    for (auto &e : events_) {
      if (e.ev == ev) return e;
    }
    ADD_FAILURE() << "no " << EvName(ev) << " event";
    return Event{};
  }

  // What the header promises every call: on_start first, on_done last and
  // exactly once, at most one on_cancel and nothing but on_done after it,
  // every callback on the same loop thread with the state on_start
  // returned.
  ::testing::AssertionResult Lifecycle(int call) {
    std::vector<Event> ev = EventsOf(call);
    std::string seq;
    for (auto &e : ev) seq += std::string(EvName(e.ev)) + " ";
    if (ev.empty() || ev.front().ev != Ev::kStart) {
      return ::testing::AssertionFailure()
             << "call " << call << ": not started by on_start: " << seq;
    }
    if (ev.back().ev != Ev::kDone) {
      return ::testing::AssertionFailure()
             << "call " << call << ": on_done is not last: " << seq;
    }
    int dones = 0, cancels = 0;
    for (auto &e : ev) {
      if (e.tid != ev.front().tid || !e.on_loop) {
        return ::testing::AssertionFailure()
               << "call " << call << ": " << EvName(e.ev)
               << " ran on another thread than on_start, or off the loop";
      }
      if (e.state != ev.front().state || e.handle != ev.front().handle) {
        return ::testing::AssertionFailure()
               << "call " << call << ": " << EvName(e.ev)
               << " got another state or call than on_start";
      }
      if (cancels > 0 && e.ev != Ev::kDone) {
        return ::testing::AssertionFailure()
               << "call " << call << ": " << EvName(e.ev)
               << " after on_cancel: " << seq;
      }
      dones += e.ev == Ev::kDone;
      cancels += e.ev == Ev::kCancel;
    }
    if (dones != 1 || cancels > 1) {
      return ::testing::AssertionFailure()
             << "call " << call << ": " << dones << " on_done, " << cancels
             << " on_cancel: " << seq;
    }
    return ::testing::AssertionSuccess();
  }

 private:
  struct Slot {
    Reactor *self;
    int call;
    void *user;
  };

  Event Make(Ev ev, crpc_server_call *call, Slot *slot) {
    Event e{};
    e.ev = ev;
    e.call = slot->call;
    e.handle = call;
    e.state = slot;
    e.tid = std::this_thread::get_id();
    e.on_loop = ThreadName() == kLoopThread;
    e.t = crpc_now_ns();
    e.code = CRPC_OK;
    e.origin = CRPC_ORIGIN_NONE;
    return e;
  }
  void Record(Event e) {
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back(std::move(e));
  }

  static void *OnStart(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
    auto *self = static_cast<Reactor *>(ud);
    auto *slot = new Slot{self, 0, nullptr};
    {
      std::lock_guard<std::mutex> l(self->mu_);
      slot->call = self->next_++;
    }
    slot->user = self->start ? self->start(call, ctx) : nullptr;
    self->Record(self->Make(Ev::kStart, call, slot));
    return slot;
  }
  static void OnMessage(crpc_server_call *call, const crpc_message *msg,
                        void *state) {
    auto *slot = static_cast<Slot *>(state);
    Event e = slot->self->Make(msg->end ? Ev::kEnd : Ev::kMessage, call, slot);
    if (!msg->end) e.data = View(msg);
    slot->self->Record(std::move(e));
    if (slot->self->message) slot->self->message(call, msg, slot->user);
  }
  static void OnSendReady(crpc_server_call *call, void *state) {
    auto *slot = static_cast<Slot *>(state);
    slot->self->Record(slot->self->Make(Ev::kSendReady, call, slot));
    if (slot->self->send_ready) slot->self->send_ready(call, slot->user);
  }
  static void OnCancel(crpc_server_call *call, const crpc_cause *cause,
                       void *state) {
    auto *slot = static_cast<Slot *>(state);
    Event e = slot->self->Make(Ev::kCancel, call, slot);
    e.code = cause->code;
    e.origin = cause->origin;
    e.data = cause->message;
    slot->self->Record(std::move(e));
    if (slot->self->cancel) slot->self->cancel(call, cause, slot->user);
  }
  static void OnDone(crpc_server_call *call, void *state) {
    auto *slot = static_cast<Slot *>(state);
    // The user's callback first: a test that waits for kDone may then read
    // what that callback wrote.
    Event e = slot->self->Make(Ev::kDone, call, slot);
    if (slot->self->done) slot->self->done(call, slot->user);
    slot->self->Record(std::move(e));
    delete slot;
  }

  std::mutex mu_;
  std::vector<Event> events_;
  int next_ = 0;
};

class AsyncTest : public LeakCheckTest {};

}  // namespace
}  // namespace crpc_test

#endif  // CRPC_SERVER_ASYNC_TEST_UTIL_H
