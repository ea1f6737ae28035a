// The live-call registry (crpc/calls.h), server and channel side, with a
// crpc client and server on loopback: a call hanging in its handler is
// listed with its method, peer, state, deadline and counters; cancelling it
// by id ends it with the admin cause on both ends; unknown ids, the
// observer's events, the blocking forms on a loop thread, a wedged loop,
// and many calls on several loops listed and cancelled while others come
// and go (tagged tsan). Every test ends with the ctx count back at its
// start and the registries empty.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crpc/calls.h"
#include "crpc/server_async.h"
#include "rpc/channel/test_util.h"

namespace {

using crpc_test::Ctx;
using crpc_test::LeakCheckTest;
using crpc_test::TestServer;
using crpc_test::WaitFor;

constexpr char kHang[] = "/calls.Test/Hang";

// What the hanging handler saw: its id, and its ctx's cause once done.
struct Seen {
  std::atomic<uint64_t> id{0};
  std::atomic<int> running{0};
  std::mutex mu;
  std::vector<crpc_cause> causes;
  std::vector<crpc_server_cancel_stats> stats;
};

// Echoes one message, then waits for its ctx to end and records why.
void AddHang(TestServer *server, Seen *seen) {
  server->Add(kHang, CRPC_BIDI_STREAMING,
              [seen](crpc_server_call *call, const crpc_ctx *ctx) {
                seen->id = crpc_server_call_id(call);
                seen->running++;
                crpc_message m;
                crpc_code c = crpc_server_call_recv(call, &m);
                if (c == CRPC_OK && !m.end) {
                  c = crpc_server_call_send(call, m.data, m.len);
                  free(m.data);
                }
                crpc_ctx_wait(ctx);
                crpc_server_cancel_stats st;
                crpc_server_call_cancel_stats(call, &st);
                {
                  std::lock_guard<std::mutex> lock(seen->mu);
                  seen->causes.push_back(*crpc_ctx_cause(ctx));
                  seen->stats.push_back(st);
                }
                seen->running--;
                return crpc_ctx_err(ctx);
              });
}

// A client call to kHang that has had its echo back (so both sides have
// moved one message each way).
struct HangingCall {
  crpc_call *call = nullptr;
  crpc_ctx *ctx = nullptr;

  void Start(crpc_channel *ch, int64_t timeout_ns = 30 * CRPC_SECOND) {
    ctx = crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ns);
    ASSERT_EQ(CRPC_OK, crpc_call_start(ch, ctx, kHang, nullptr, &call));
    ASSERT_EQ(CRPC_OK, crpc_call_send(call, "ping", 4));
    crpc_message m;
    ASSERT_EQ(CRPC_OK, crpc_call_recv(call, &m));
    ASSERT_FALSE(m.end);
    free(m.data);
  }
  // The status the client ends with.
  crpc_code Finish(std::string *message = nullptr) {
    crpc_status st{};
    crpc_code c = crpc_call_finish(call, &st);
    if (message != nullptr) *message = st.message ? st.message : "";
    crpc_status_clear(&st);
    return c;
  }
  ~HangingCall() {
    crpc_call_free(call);
    crpc_ctx_release(ctx);
  }
};

std::vector<crpc_call_info> ServerCalls(crpc_server *s) {
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
  crpc_call_info *calls = nullptr;
  size_t n = 0;
  EXPECT_EQ(CRPC_OK, crpc_server_calls(s, ctx, &calls, &n));
  std::vector<crpc_call_info> out(calls, calls + n);
  // The strings live in the block: keep copies the test can read later.
  static thread_local std::vector<std::string> keep;
  keep.clear();
  keep.reserve(2 * n);
  for (auto &c : out) {
    keep.emplace_back(c.method);
    c.method = keep.back().c_str();
    keep.emplace_back(c.peer);
    c.peer = keep.back().c_str();
  }
  crpc_calls_free(calls);
  return out;
}

size_t ServerCount(crpc_server *s) { return ServerCalls(s).size(); }

size_t ChannelCount(crpc_channel *ch) {
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
  crpc_call_info *calls = nullptr;
  size_t n = 0;
  EXPECT_EQ(CRPC_OK, crpc_channel_calls(ch, ctx, &calls, &n));
  crpc_calls_free(calls);
  return n;
}

using RegistryTest = LeakCheckTest;

TEST_F(RegistryTest, ServerListsAHangingCallAndCancelByIdEndsItWithTheAdminCause) {
  Seen seen;
  {
    TestServer server;
    AddHang(&server, &seen);
    server.Start();
    crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
    {
      HangingCall hc;
      hc.Start(ch);
      ASSERT_TRUE(WaitFor([&] { return seen.running == 1; }, 5 * CRPC_SECOND));

      std::vector<crpc_call_info> calls = ServerCalls(server.get());
      ASSERT_EQ(1u, calls.size());
      const crpc_call_info &c = calls[0];
      EXPECT_EQ(seen.id.load(), c.id);
      EXPECT_GT(c.id, 0u);
      EXPECT_FALSE(c.client);
      EXPECT_STREQ(kHang, c.method);
      EXPECT_EQ(0, strncmp(c.peer, "ipv4:127.0.0.1:", 15)) << c.peer;
      EXPECT_EQ(CRPC_CALL_STREAMING, c.state) << crpc_call_state_name(c.state);
      EXPECT_GT(c.deadline_left_ns, 20 * CRPC_SECOND);
      EXPECT_LE(c.deadline_left_ns, 30 * CRPC_SECOND);
      EXPECT_GE(c.age_ns, 0);
      EXPECT_EQ(1u, c.messages_in);
      EXPECT_EQ(9u, c.bytes_in); // the 5-byte prefix + "ping"
      EXPECT_EQ(1u, c.messages_out);
      EXPECT_EQ(9u, c.bytes_out);
      EXPECT_FALSE(c.done);
      EXPECT_EQ(CRPC_ORIGIN_NONE, c.cause.origin);

      // The client's side of the same call.
      {
        Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
        crpc_call_info *cc = nullptr;
        size_t n = 0;
        ASSERT_EQ(CRPC_OK, crpc_channel_calls(ch, ctx, &cc, &n));
        ASSERT_EQ(1u, n);
        EXPECT_EQ(crpc_call_id(hc.call), cc[0].id);
        EXPECT_TRUE(cc[0].client);
        EXPECT_STREQ(kHang, cc[0].method);
        EXPECT_EQ("127.0.0.1:" + std::to_string(server.port()), cc[0].peer);
        EXPECT_EQ(CRPC_CALL_STREAMING, cc[0].state);
        EXPECT_EQ(1u, cc[0].messages_out);
        EXPECT_EQ(1u, cc[0].messages_in);
        EXPECT_EQ(9u, cc[0].bytes_in);
        EXPECT_GT(cc[0].deadline_left_ns, 20 * CRPC_SECOND);
        crpc_calls_free(cc);
      }

      // More messages move the counters; a half-close changes the state.
      ASSERT_EQ(CRPC_OK, crpc_call_send(hc.call, "0123456789", 10));
      ASSERT_EQ(CRPC_OK, crpc_call_close_send(hc.call));
      ASSERT_TRUE(WaitFor(
          [&] {
            std::vector<crpc_call_info> v = ServerCalls(server.get());
            return v.size() == 1 && v[0].state == CRPC_CALL_HALF_CLOSED &&
                   v[0].bytes_in == 9u + 15u;
          },
          5 * CRPC_SECOND));

      Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
      ASSERT_EQ(CRPC_OK, crpc_server_cancel_call(server.get(), ctx, c.id, "stuck"));
      std::string msg;
      EXPECT_EQ(CRPC_CANCELLED, hc.Finish(&msg));
      EXPECT_EQ("cancelled by admin: stuck", msg);
      ASSERT_TRUE(WaitFor([&] { return seen.running == 0; }, 5 * CRPC_SECOND));
      {
        std::lock_guard<std::mutex> lock(seen.mu);
        ASSERT_EQ(1u, seen.causes.size());
        EXPECT_EQ(CRPC_CANCELLED, seen.causes[0].code);
        EXPECT_EQ(CRPC_ORIGIN_ADMIN, seen.causes[0].origin);
        EXPECT_STREQ("cancelled by admin: stuck", seen.causes[0].message);
        // Counted as the cancel event, as a reset would be.
        EXPECT_GT(seen.stats[0].event_ns, 0);
        EXPECT_GE(seen.stats[0].ctx_done_ns, seen.stats[0].event_ns);
      }
      // Cancelling it again: it is gone (or, for a moment, ending).
      crpc_code again = crpc_server_cancel_call(server.get(), ctx, c.id, "x");
      EXPECT_TRUE(again == CRPC_NOT_FOUND || again == CRPC_FAILED_PRECONDITION)
          << crpc_code_name(again);
    }
    EXPECT_TRUE(WaitFor([&] { return ServerCount(server.get()) == 0; },
                        5 * CRPC_SECOND));
    EXPECT_TRUE(WaitFor([&] { return ChannelCount(ch) == 0; }, 5 * CRPC_SECOND));
    crpc_channel_free(ch);
  }
}

TEST_F(RegistryTest, UnknownIdIsNotFoundAndNothingRunningIsAnEmptyList) {
  Seen seen;  // outlives the server, whose handlers write into it
  TestServer server;
  AddHang(&server, &seen);
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
  crpc_call_info *calls = reinterpret_cast<crpc_call_info *>(1);
  size_t n = 7;
  // Not started yet: nothing to ask.
  EXPECT_EQ(CRPC_OK, crpc_server_calls(server.get(), ctx, &calls, &n));
  EXPECT_EQ(nullptr, calls);
  EXPECT_EQ(0u, n);
  server.Start();
  EXPECT_EQ(CRPC_OK, crpc_server_calls(server.get(), ctx, &calls, &n));
  EXPECT_EQ(0u, n);
  EXPECT_EQ(CRPC_NOT_FOUND, crpc_server_cancel_call(server.get(), ctx, 12345, "x"));
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  // No call yet: the channel's loop has not started.
  EXPECT_EQ(CRPC_OK, crpc_channel_calls(ch, ctx, &calls, &n));
  EXPECT_EQ(0u, n);
  EXPECT_EQ(CRPC_NOT_FOUND, crpc_channel_cancel_call(ch, ctx, 12345, "x"));
  {
    HangingCall hc;
    hc.Start(ch);
    EXPECT_EQ(CRPC_NOT_FOUND, crpc_channel_cancel_call(ch, ctx, 12345, "x"));
    EXPECT_EQ(CRPC_NOT_FOUND,
              crpc_server_cancel_call(server.get(), ctx, 12345, "x"));
    EXPECT_EQ(1u, ChannelCount(ch));
    // The table: a header and the one call.
    char *text = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT_EQ(CRPC_OK, crpc_server_calls_dump(server.get(), ctx, f));
    fclose(f);
    std::string t(text, len);
    free(text);
    EXPECT_NE(std::string::npos, t.find("STATE")) << t;
    EXPECT_NE(std::string::npos, t.find(" streaming ")) << t;
    EXPECT_NE(std::string::npos, t.find(kHang)) << t;
    EXPECT_NE(std::string::npos, t.find("1/1")) << t;
  }
  EXPECT_TRUE(WaitFor([&] { return ServerCount(server.get()) == 0; },
                      5 * CRPC_SECOND));
  EXPECT_TRUE(WaitFor([&] { return ChannelCount(ch) == 0; }, 5 * CRPC_SECOND));
  crpc_channel_free(ch);
  // After shutdown: an empty list at once.
  crpc_server_shutdown(server.get(), 0);
  EXPECT_EQ(CRPC_OK, crpc_server_calls(server.get(), ctx, &calls, &n));
  EXPECT_EQ(0u, n);
}

TEST_F(RegistryTest, ChannelCancelByIdResetsTheStreamWithTheAdminCause) {
  Seen seen;  // outlives the server, whose handlers write into it
  TestServer server;
  AddHang(&server, &seen);
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  {
    HangingCall hc;
    hc.Start(ch);
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
    ASSERT_EQ(CRPC_OK, crpc_channel_cancel_call(ch, ctx, crpc_call_id(hc.call),
                                                "client side stuck"));
    crpc_message m;
    EXPECT_EQ(CRPC_CANCELLED, crpc_call_recv(hc.call, &m));
    std::string msg;
    EXPECT_EQ(CRPC_CANCELLED, hc.Finish(&msg));
    EXPECT_EQ("cancelled by admin: client side stuck", msg);
    // The server saw a reset.
    ASSERT_TRUE(WaitFor([&] { return seen.running == 0; }, 5 * CRPC_SECOND));
    std::lock_guard<std::mutex> lock(seen.mu);
    ASSERT_EQ(1u, seen.causes.size());
    EXPECT_EQ(CRPC_ORIGIN_PEER_RESET, seen.causes[0].origin);
  }
  EXPECT_TRUE(WaitFor([&] { return ChannelCount(ch) == 0; }, 5 * CRPC_SECOND));
  EXPECT_TRUE(WaitFor([&] { return ServerCount(server.get()) == 0; },
                      5 * CRPC_SECOND));
  crpc_channel_free(ch);
}

// Events per call id, as an observer saw them.
struct Events {
  std::mutex mu;
  std::map<uint64_t, std::vector<crpc_call_event>> by_id;
  // Infos kept past the callback: their strings are not (see method_of).
  std::map<uint64_t, crpc_call_info> done_info, end_info;
  std::map<uint64_t, std::string> method_of;

  static void Observe(crpc_call_event e, const crpc_call_info *c, void *ud) {
    Events *ev = static_cast<Events *>(ud);
    std::lock_guard<std::mutex> lock(ev->mu);
    ev->by_id[c->id].push_back(e);
    if (e == CRPC_CALL_CTX_DONE) ev->done_info[c->id] = *c;
    if (e == CRPC_CALL_ENDED) ev->end_info[c->id] = *c;
    ev->method_of[c->id] = c->method;
  }
  size_t Ended() {
    std::lock_guard<std::mutex> lock(mu);
    return end_info.size();
  }
};

TEST_F(RegistryTest, ObserversSeeStartedCtxDoneEndedInOrder) {
  Events sev, cev;
  {
    Seen seen;  // outlives the server, whose handlers write into it
    TestServer server;
    AddHang(&server, &seen);
    server.Add("/calls.Test/Echo", CRPC_UNARY,
               [](crpc_server_call *call, const crpc_ctx *) {
                 return crpc_test::EchoOnce(call);
               });
    ASSERT_EQ(CRPC_OK, crpc_server_set_call_observer(server.get(), Events::Observe,
                                                     &sev));
    server.Start();
    EXPECT_EQ(CRPC_FAILED_PRECONDITION,
              crpc_server_set_call_observer(server.get(), nullptr, nullptr));
    crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
    ASSERT_EQ(CRPC_OK, crpc_channel_set_call_observer(ch, Events::Observe, &cev));

    // A unary call that ends on its own; freed only once it has left the
    // client's registry, so its ctx ends after that.
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
    crpc_call *unary = nullptr;
    ASSERT_EQ(CRPC_OK,
              crpc_call_start(ch, ctx, "/calls.Test/Echo", nullptr, &unary));
    EXPECT_EQ(CRPC_FAILED_PRECONDITION,
              crpc_channel_set_call_observer(ch, nullptr, nullptr));
    ASSERT_EQ(CRPC_OK, crpc_call_send(unary, "hi", 2));
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(unary));
    crpc_message resp{};
    ASSERT_EQ(CRPC_OK, crpc_call_recv(unary, &resp));
    free(resp.data);
    ASSERT_EQ(CRPC_OK, crpc_call_finish(unary, nullptr));
    ASSERT_TRUE(WaitFor([&] { return cev.Ended() == 1; }, 5 * CRPC_SECOND));
    crpc_call_free(unary);

    // A hanging call the client cancels.
    uint64_t hang_client_id = 0;
    {
      HangingCall hc;
      hc.Start(ch);
      hang_client_id = crpc_call_id(hc.call);
      crpc_ctx_cancel(hc.ctx, CRPC_CANCELLED, "client gave up");
      hc.Finish();
    }
    ASSERT_TRUE(WaitFor([&] { return sev.Ended() == 2 && cev.Ended() == 2; },
                        5 * CRPC_SECOND));
    crpc_channel_free(ch);

    std::lock_guard<std::mutex> lock(sev.mu);
    std::vector<crpc_call_event> all3 = {CRPC_CALL_STARTED, CRPC_CALL_CTX_DONE,
                                         CRPC_CALL_ENDED};
    ASSERT_EQ(2u, sev.by_id.size());
    for (auto &kv : sev.by_id) EXPECT_EQ(all3, kv.second) << "server call " << kv.first;
    // The unary call: ctx done as its handler returned, status OK.
    const crpc_call_info &unary_end = sev.end_info.begin()->second;
    EXPECT_EQ("/calls.Test/Echo", sev.method_of[unary_end.id]);
    EXPECT_EQ(CRPC_OK, unary_end.status);
    EXPECT_EQ(1u, unary_end.messages_in);
    EXPECT_EQ(1u, unary_end.messages_out);
    // The hanging one: a reset, with how long it took to reach the ctx.
    const crpc_call_info &hang_done = sev.done_info.rbegin()->second;
    EXPECT_EQ(CRPC_ORIGIN_PEER_RESET, hang_done.cause.origin);
    EXPECT_GT(hang_done.cancel_event_ns, 0);
    EXPECT_GE(hang_done.ctx_done_ns, hang_done.cancel_event_ns);
    EXPECT_EQ(CRPC_CANCELLED, sev.end_info.rbegin()->second.status);

    // Client side: the unary call ended before its ctx did (no CTX_DONE);
    // the cancelled one saw its ctx end while listed.
    std::lock_guard<std::mutex> clock(cev.mu);
    ASSERT_EQ(2u, cev.by_id.size());
    std::vector<crpc_call_event> no_ctx = {CRPC_CALL_STARTED, CRPC_CALL_ENDED};
    EXPECT_EQ(no_ctx, cev.by_id.begin()->second);
    EXPECT_EQ(all3, cev.by_id[hang_client_id]);
    EXPECT_STREQ("client gave up", cev.done_info[hang_client_id].cause.message);
    EXPECT_EQ(CRPC_CANCELLED, cev.end_info[hang_client_id].status);
  }
}

// An async unary handler on the loop asks the registry: the blocking form
// refuses there, the async one answers, with the asking call listed.
struct LoopAsk {
  std::atomic<int> blocking_code{-1};
  std::atomic<int> async_code{-1};
  std::atomic<size_t> async_count{0};
  std::atomic<bool> answered{false};
  crpc_server *server = nullptr;
};

crpc_code AskFromTheLoop(crpc_server_call *call, const crpc_ctx *ctx,
                         const crpc_message *, void *ud) {
  LoopAsk *a = static_cast<LoopAsk *>(ud);
  crpc_call_info *calls = nullptr;
  size_t n = 0;
  a->blocking_code = crpc_server_calls(a->server, ctx, &calls, &n);
  crpc_server_calls_async(
      a->server,
      [](crpc_code code, crpc_call_info *calls, size_t count, void *ud) {
        LoopAsk *a = static_cast<LoopAsk *>(ud);
        a->async_code = code;
        a->async_count = count;
        crpc_calls_free(calls);
        a->answered = true;
      },
      a);
  return crpc_server_call_send_async(call, "ok", 2, 0);
}

TEST_F(RegistryTest, BlockingFormsRefuseOnALoopThreadAsyncFormsAnswer) {
  crpc_server_options opts{};
  opts.loop_threads = 2;
  TestServer server(&opts);
  LoopAsk ask;
  ask.server = server.get();
  ASSERT_EQ(CRPC_OK, crpc_server_add_unary_async(server.get(), "/calls.Test/Ask",
                                                 AskFromTheLoop, &ask));
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
  crpc_message resp{};
  crpc_status st{};
  ASSERT_EQ(CRPC_OK, crpc_unary_call(ch, ctx, "/calls.Test/Ask", nullptr, "", 0,
                                     &resp, &st));
  free(resp.data);
  crpc_status_clear(&st);
  ASSERT_TRUE(WaitFor([&] { return ask.answered.load(); }, 5 * CRPC_SECOND));
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, ask.blocking_code.load());
  EXPECT_EQ(CRPC_OK, ask.async_code.load());
  EXPECT_LE(ask.async_count.load(), 1u); // the asking call, if still open
  crpc_channel_free(ch);
}

// A loop busy in a handler that (wrongly) blocks it: the reader's ctx
// bounds the wait, and the answer that comes later is dropped safely.
TEST_F(RegistryTest, AWedgedLoopCannotHangTheReader) {
  crpc_server_options opts{};
  opts.loop_threads = 1;
  TestServer server(&opts);
  static std::atomic<bool> blocking{false};
  ASSERT_EQ(CRPC_OK,
            crpc_server_add_unary_async(
                server.get(), "/calls.Test/Block",
                [](crpc_server_call *call, const crpc_ctx *, const crpc_message *,
                   void *) {
                  blocking = true;
                  usleep(400 * 1000); // blocks its loop: what not to do
                  return crpc_server_call_send_async(call, "", 0, 0);
                },
                nullptr));
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  std::thread client([&] {
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
    crpc_message resp{};
    crpc_status st{};
    EXPECT_EQ(CRPC_OK, crpc_unary_call(ch, ctx, "/calls.Test/Block", nullptr, "",
                                       0, &resp, &st));
    free(resp.data);
    crpc_status_clear(&st);
  });
  ASSERT_TRUE(WaitFor([&] { return blocking.load(); }, 5 * CRPC_SECOND));
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 50 * CRPC_MILLISECOND));
  int64_t start = crpc_now_ns();
  crpc_call_info *calls = nullptr;
  size_t n = 0;
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, crpc_server_calls(server.get(), ctx, &calls, &n));
  EXPECT_EQ(nullptr, calls);
  EXPECT_LT(crpc_now_ns() - start, 250 * CRPC_MILLISECOND);
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED,
            crpc_server_cancel_call(server.get(), ctx, 99, "late"));
  client.join();
  crpc_channel_free(ch);
}

// Several loops, many calls: snapshots and cancels racing calls that
// start and end. Every hanging call is listed once, with its own id, and
// cancelling each by id ends them all.
TEST_F(RegistryTest, ManyCallsOnSeveralLoopsListedAndCancelledWhileOthersComeAndGo) {
  crpc_server_options opts{};
  opts.loop_threads = 3;
  constexpr int kHanging = 16;
  Seen seen;
  {
    TestServer server(&opts);
    AddHang(&server, &seen);
    server.Add("/calls.Test/Echo", CRPC_UNARY,
               [](crpc_server_call *call, const crpc_ctx *) {
                 return crpc_test::EchoOnce(call);
               });
    server.Start();
    // One channel per hanging call: connections spread over the loops.
    std::vector<crpc_channel *> chans;
    for (int i = 0; i < kHanging; i++) {
      chans.push_back(crpc_channel_new(server.target().c_str(), nullptr));
    }
    std::vector<HangingCall> hanging(kHanging);
    std::vector<std::thread> starters;
    for (int i = 0; i < kHanging; i++) {
      starters.emplace_back([&, i] { hanging[i].Start(chans[i]); });
    }
    // Meanwhile: short calls come and go, and readers list and cancel
    // unknown ids.
    std::atomic<bool> stop{false};
    std::thread churn([&] {
      crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
      while (!stop) {
        Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
        crpc_message resp{};
        crpc_status st{};
        crpc_unary_call(ch, ctx, "/calls.Test/Echo", nullptr, "x", 1, &resp, &st);
        free(resp.data);
        crpc_status_clear(&st);
      }
      crpc_channel_free(ch);
    });
    std::thread reader([&] {
      while (!stop) {
        Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
        crpc_call_info *calls = nullptr;
        size_t n = 0;
        EXPECT_EQ(CRPC_OK, crpc_server_calls(server.get(), ctx, &calls, &n));
        for (size_t i = 1; i < n; i++) EXPECT_LT(calls[i - 1].id, calls[i].id);
        crpc_calls_free(calls);
        EXPECT_EQ(CRPC_NOT_FOUND,
                  crpc_server_cancel_call(server.get(), ctx, UINT64_MAX, "no"));
      }
    });
    for (auto &t : starters) t.join();
    ASSERT_TRUE(WaitFor([&] { return seen.running == kHanging; }, 10 * CRPC_SECOND));

    std::set<uint64_t> ids;
    for (const crpc_call_info &c : ServerCalls(server.get())) {
      if (strcmp(c.method, kHang) == 0) ids.insert(c.id);
    }
    EXPECT_EQ(static_cast<size_t>(kHanging), ids.size());
    for (uint64_t id : ids) {
      Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
      EXPECT_EQ(CRPC_OK, crpc_server_cancel_call(server.get(), ctx, id, "sweep"));
    }
    for (auto &hc : hanging) EXPECT_EQ(CRPC_CANCELLED, hc.Finish());
    stop = true;
    churn.join();
    reader.join();
    ASSERT_TRUE(WaitFor([&] { return seen.running == 0; }, 10 * CRPC_SECOND));
    {
      std::lock_guard<std::mutex> lock(seen.mu);
      for (const crpc_cause &c : seen.causes) {
        EXPECT_EQ(CRPC_ORIGIN_ADMIN, c.origin) << c.message;
      }
    }
    hanging.clear();
    EXPECT_TRUE(WaitFor([&] { return ServerCount(server.get()) == 0; },
                        5 * CRPC_SECOND));
    for (crpc_channel *ch : chans) crpc_channel_free(ch);
  }
}

}  // namespace
