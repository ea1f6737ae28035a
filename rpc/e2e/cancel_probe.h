// rpc/e2e/cancel_probe.h - the handlers of cancel_test.cc, in both styles:
// blocking (crpc/server.h, a thread per call) and async (crpc/server_async.h,
// reactors on the loop thread). Each reports into a Probe the instant the
// server learned of the cancel (its on_cancel), the cause, and how its sends
// fared, so one test body checks both styles. Included by cancel_test.cc
// only.
#ifndef CRPC_E2E_CANCEL_PROBE_H
#define CRPC_E2E_CANCEL_PROBE_H

#include "rpc/e2e/e2e_util.h"

namespace crpc_e2e {

// ---- a handler that reports the instant its ctx ends ----------------------

// Shared between a test and its custom handlers. One call at a time.
struct Probe {
  std::mutex mu;
  Event entered;     // the handler is running
  Event done;        // the handler saw its ctx done and recorded the cause
  std::atomic<int64_t> cancel_ns{0};  // when on_cancel ran (transport thread)
  std::atomic<bool> cancel_seen{false};
  crpc_cause cause{};
  int64_t deadline_ns = 0;      // the handler ctx's deadline
  crpc_code last_send = CRPC_OK;  // the send that failed
  int64_t sent = 0;             // sends that returned OK
  int64_t late = 0;             // ... of which after on_cancel had run
  bool done_at_failure = false;  // ctx already done when a send failed
  std::atomic<int> remove_state{-1};
  std::atomic<int64_t> sent_live{0};
  int64_t msg_size = 1024;

  void Reset() {
    entered.Reset();
    done.Reset();
    cancel_ns = 0;
    cancel_seen = false;
    cause = crpc_cause{};
    deadline_ns = 0;
    last_send = CRPC_OK;
    sent = late = 0;
    done_at_failure = false;
    sent_live = 0;
  }
};

inline void ProbeOnCancel(void *arg, const crpc_cause *) {
  auto *p = static_cast<Probe *>(arg);
  p->cancel_ns = crpc_now_ns();
  p->cancel_seen = true;
}

// The on_cancel callback runs on the cancelling thread right after the ctx
// is marked done, so a waiter woken by the ctx can get ahead of it: the
// handler removes its registration and, if the callback is running on the
// other thread, waits (bounded) for its stamp.
// If the handler removes its registration before the cancelling thread got
// to it, the callback never runs (REMOVED): then the instant the handler
// itself saw the ctx done (`seen_ns`) is the measurement.
inline void FinishOnCancel(Probe *p, crpc_on_cancel *reg, bool registered, int64_t seen_ns) {
  if (registered) {
    crpc_on_cancel_state st = crpc_ctx_remove_on_cancel(reg);
    p->remove_state = st;
    if (st == CRPC_ON_CANCEL_RUNNING) Eventually([&] { return p->cancel_ns.load() != 0; }, 1000);
  }
  int64_t zero = 0;
  p->cancel_ns.compare_exchange_strong(zero, seen_ns);
}

inline void RecordCause(Probe *p, const crpc_ctx *ctx) {
  const crpc_cause *c = crpc_ctx_cause(ctx);
  std::lock_guard<std::mutex> l(p->mu);
  if (c != nullptr) p->cause = *c;
}

// A blocking probe handler's start: watch the ctx (ProbeOnCancel, at once
// if it is done already), then read the one request. Returns recv's code.
inline crpc_code ProbeStart(Probe *p, crpc_server_call *call, const crpc_ctx *ctx,
                            crpc_on_cancel *reg, bool *registered) {
  *registered = crpc_ctx_on_cancel(ctx, reg, ProbeOnCancel, p);
  if (!*registered) ProbeOnCancel(p, nullptr);
  crpc_message m{};
  crpc_code rc = crpc_server_call_recv(call, &m);
  free(m.data);
  return rc;
}

// Unary, idle: waits for its ctx to end.
inline crpc_code IdleHandler(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  auto *p = static_cast<Probe *>(ud);
  crpc_on_cancel reg;
  bool registered;
  crpc_code rc = ProbeStart(p, call, ctx, &reg, &registered);
  p->deadline_ns = crpc_ctx_deadline(ctx);
  p->entered.Set();
  if (rc == CRPC_OK) rc = crpc_ctx_wait(ctx);
  int64_t seen_ns = crpc_now_ns();
  RecordCause(p, ctx);
  FinishOnCancel(p, &reg, registered, seen_ns);
  p->done.Set();
  return rc;
}

// Server streaming, busy: sends msg_size-byte messages flat out until a
// send fails; counts sends that succeeded although on_cancel had already run.
inline crpc_code FloodHandler(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  auto *p = static_cast<Probe *>(ud);
  crpc_on_cancel reg;
  bool registered;
  crpc_code rc = ProbeStart(p, call, ctx, &reg, &registered);
  std::string buf(static_cast<size_t>(p->msg_size), 'f');
  p->entered.Set();
  int64_t sent = 0, late = 0;
  while (rc == CRPC_OK) {
    bool was_cancelled = p->cancel_seen.load();
    rc = crpc_server_call_send(call, buf.data(), buf.size());
    if (rc == CRPC_OK) {
      sent++;
      p->sent_live = sent;
      if (was_cancelled) late++;
    }
  }
  int64_t seen_ns = crpc_now_ns();
  // One more send after the failure must fail at once too.
  crpc_code again = crpc_server_call_send(call, buf.data(), buf.size());
  if (again == CRPC_OK) late++;
  // A send that failed because the client went away implies the ctx is
  // done (the contract: sends fail *because* the ctx is done). If it is not,
  // give it a bounded moment to say so, for the diagnosis.
  bool done_at_failure = crpc_ctx_is_done(ctx);
  if (!done_at_failure) {
    crpc_ctx *limit = crpc_ctx_with_timeout(ctx, 1 * kSec);
    crpc_ctx_wait(limit);
    crpc_ctx_release(limit);
  }
  {
    std::lock_guard<std::mutex> l(p->mu);
    p->last_send = rc;
    p->sent = sent;
    p->late = late;
    p->done_at_failure = done_at_failure;
  }
  RecordCause(p, ctx);
  FinishOnCancel(p, &reg, registered, seen_ns);
  p->done.Set();
  return rc;
}

// Stall (client streaming): reads nothing and returns when its ctx ends.
inline crpc_code StallHandler(crpc_server_call *, const crpc_ctx *ctx, void *) {
  return crpc_ctx_wait(ctx);
}

// Peer (unary): answers the client's address as the server sees it
// (identifies the connection).
inline crpc_code PeerHandler(crpc_server_call *call, const crpc_ctx *, void *) {
  crpc_message m{};
  crpc_code rc = crpc_server_call_recv(call, &m);
  free(m.data);
  if (rc != CRPC_OK) return rc;
  const char *peer = crpc_server_call_peer(call);
  return crpc_server_call_send(call, peer, strlen(peer));
}

// ---- the same, as reactors on the loop thread ---------------------------------

// The blocking handlers' on_cancel is a ctx callback; a reactor's is its
// own on_cancel, on the loop thread that ended the ctx. One call at a time,
// as above: the state is the probe itself (Flood keeps its count in a
// state of its own).

inline void AsyncRecordCancel(Probe *p, const crpc_cause *cause) {
  p->cancel_ns = crpc_now_ns();
  p->cancel_seen = true;
  std::lock_guard<std::mutex> l(p->mu);
  p->cause = *cause;
}

inline void *AsyncIdleStart(crpc_server_call *, const crpc_ctx *ctx, void *ud) {
  auto *p = static_cast<Probe *>(ud);
  p->deadline_ns = crpc_ctx_deadline(ctx);
  return p;
}

inline void AsyncIdleMessage(crpc_server_call *, const crpc_message *msg, void *state) {
  if (!msg->end) static_cast<Probe *>(state)->entered.Set();
}

inline void AsyncIdleCancel(crpc_server_call *call, const crpc_cause *cause, void *state) {
  auto *p = static_cast<Probe *>(state);
  AsyncRecordCancel(p, cause);
  p->done.Set();
  crpc_server_call_finish(call, cause->code, nullptr);
}

struct AsyncFlood {
  Probe *p;
  std::string buf;
  int64_t sent = 0, late = 0;
  bool started = false, failed = false;
};

// One send as FloodHandler makes it; false once sends fail (recorded).
inline bool AsyncFloodSend(crpc_server_call *call, AsyncFlood *f) {
  bool was_cancelled = f->p->cancel_seen.load();
  crpc_code rc = crpc_server_call_send_async(call, f->buf.data(), f->buf.size(), 0);
  if (rc == CRPC_OK) {
    f->sent++;
    f->p->sent_live = f->sent;
    if (was_cancelled) f->late++;
    return true;
  }
  if (!f->failed) {
    f->failed = true;
    std::lock_guard<std::mutex> l(f->p->mu);
    f->p->last_send = rc;
    f->p->done_at_failure = crpc_ctx_is_done(crpc_server_call_ctx(call));
  }
  return false;
}

// Sends while the buffer takes more; on_send_ready resumes. A failed send
// means the ctx is done: on_cancel follows and ends the call.
inline void AsyncFloodPump(crpc_server_call *call, AsyncFlood *f) {
  while (!f->failed && crpc_server_call_can_send(call) && AsyncFloodSend(call, f)) {
  }
}

inline void *AsyncFloodStart(crpc_server_call *, const crpc_ctx *, void *ud) {
  auto *p = static_cast<Probe *>(ud);
  return new AsyncFlood{p, std::string(static_cast<size_t>(p->msg_size), 'f')};
}

inline void AsyncFloodMessage(crpc_server_call *call, const crpc_message *msg, void *state) {
  auto *f = static_cast<AsyncFlood *>(state);
  if (msg->end || f->started) return;
  f->started = true;
  f->p->entered.Set();
  AsyncFloodPump(call, f);
}

inline void AsyncFloodReady(crpc_server_call *call, void *state) {
  auto *f = static_cast<AsyncFlood *>(state);
  if (f->started) AsyncFloodPump(call, f);
}

// No on_send_ready comes after on_cancel, so no send would fail by itself:
// make the two sends FloodHandler makes after its loop (the one that fails,
// and one more); both must fail at once, an OK counts as late.
inline void AsyncFloodCancel(crpc_server_call *call, const crpc_cause *cause, void *state) {
  auto *f = static_cast<AsyncFlood *>(state);
  AsyncRecordCancel(f->p, cause);
  if (!f->failed) AsyncFloodSend(call, f);
  if (crpc_server_call_send_async(call, f->buf.data(), f->buf.size(), 0) == CRPC_OK) f->late++;
  {
    std::lock_guard<std::mutex> l(f->p->mu);
    f->p->sent = f->sent;
    f->p->late = f->late;
  }
  f->p->done.Set();
  crpc_server_call_finish(call, cause->code, nullptr);
}

inline void AsyncFloodDone(crpc_server_call *, void *state) {
  delete static_cast<AsyncFlood *>(state);
}

// Stall: holds its messages (flow control holds the client) until the
// ctx ends.
inline void *AsyncStallStart(crpc_server_call *call, const crpc_ctx *, void *) {
  crpc_server_call_pause_recv(call);
  return nullptr;
}

inline void AsyncFinishWithCause(crpc_server_call *call, const crpc_cause *cause, void *) {
  crpc_server_call_finish(call, cause->code, nullptr);
}

inline crpc_code AsyncPeer(crpc_server_call *call, const crpc_ctx *, const crpc_message *,
                           void *) {
  const char *peer = crpc_server_call_peer(call);
  return crpc_server_call_send_async(call, peer, strlen(peer), 0);
}

inline void AddProbeMethods(crpc_server *s, Probe *p, Handlers h) {
  const char *idle = "/crpc.e2e.Probe/Idle", *flood = "/crpc.e2e.Probe/Flood",
             *peer = "/crpc.e2e.Probe/Peer", *stall = "/crpc.e2e.Probe/Stall";
  if (h == Handlers::kBlocking) {
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(s, idle, CRPC_UNARY, IdleHandler, p));
    ASSERT_EQ(CRPC_OK,
              crpc_server_add_method(s, flood, CRPC_SERVER_STREAMING, FloodHandler, p));
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(s, peer, CRPC_UNARY, PeerHandler, nullptr));
    ASSERT_EQ(CRPC_OK,
              crpc_server_add_method(s, stall, CRPC_CLIENT_STREAMING, StallHandler, nullptr));
    return;
  }
  static const crpc_server_reactor kIdle = {AsyncIdleStart, AsyncIdleMessage, nullptr,
                                            AsyncIdleCancel, nullptr};
  static const crpc_server_reactor kFlood = {AsyncFloodStart, AsyncFloodMessage,
                                             AsyncFloodReady, AsyncFloodCancel, AsyncFloodDone};
  static const crpc_server_reactor kStall = {AsyncStallStart, nullptr, nullptr,
                                             AsyncFinishWithCause, nullptr};
  ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, idle, CRPC_UNARY, &kIdle, p));
  ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, flood, CRPC_SERVER_STREAMING, &kFlood, p));
  ASSERT_EQ(CRPC_OK, crpc_server_add_unary_async(s, peer, AsyncPeer, nullptr));
  ASSERT_EQ(CRPC_OK,
            crpc_server_add_async_method(s, stall, CRPC_CLIENT_STREAMING, &kStall, nullptr));
}

}  // namespace crpc_e2e

#endif  // CRPC_E2E_CANCEL_PROBE_H
