// A channel's loop threads (options.loop_threads): each connection lives on
// the loop with the fewest, so a round robin over several servers spreads
// its connections (and their async callbacks) over loops while a channel
// with one connection keeps to one; a resend (REFUSED_STREAM) moves a call
// to a connection on another loop and it still completes once, with its
// body; the live-call registry and channel free see every loop.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crpc/calls.h"
#include "crpc/channel.h"
#include "crpc/channel_async.h"
#include "rpc/channel/raw_server.h"
#include "rpc/channel/test_util.h"

namespace crpc_test {
namespace {

// Servers that each answer with their own name: which server a call
// reached, and on which client thread its completion ran.
class Backends {
 public:
  explicit Backends(int n) {
    for (int i = 0; i < n; i++) {
      names_.push_back("b" + std::to_string(i));
      servers_.push_back(std::make_unique<TestServer>());
      std::string name = names_.back();
      servers_.back()->Add("/t.S/Who", CRPC_UNARY, [name](crpc_server_call *call, const crpc_ctx *) {
        crpc_message m;
        crpc_code c = crpc_server_call_recv(call, &m);
        if (c != CRPC_OK) return c;
        free(m.data);
        return crpc_server_call_send(call, name.data(), name.size());
      });
      servers_.back()->Start();
    }
  }
  std::string Target() const {
    std::string t = "ipv4:";
    for (size_t i = 0; i < servers_.size(); i++) {
      t += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(servers_[i]->port());
    }
    return t;
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<TestServer>> servers_;
};

// Completions: per server name, the set of client threads they ran on.
struct Seen {
  std::mutex mu;
  std::map<std::string, std::set<pthread_t>> threads;
  std::atomic<int> done{0}, failed{0};
};

void OnWho(crpc_code code, crpc_message *resp, const crpc_status *, void *ud) {
  auto *seen = static_cast<Seen *>(ud);
  if (code == CRPC_OK) {
    std::lock_guard<std::mutex> l(seen->mu);
    seen->threads[Str(*resp)].insert(pthread_self());
    free(resp->data);
  } else {
    seen->failed++;
  }
  seen->done++;
}

crpc_channel *RoundRobin(const std::string &target, int loop_threads) {
  crpc_channel_options o{};
  o.lb_policy = CRPC_LB_ROUND_ROBIN;
  o.loop_threads = loop_threads;
  return crpc_channel_new(target.c_str(), &o);
}

// Async calls from one thread; waits for all completions.
void CallAll(crpc_channel *ch, int n, Seen *seen) {
  for (int i = 0; i < n; i++) {
    ASSERT_EQ(crpc_unary_call_async(ch, crpc_ctx_background(), "/t.S/Who", nullptr, "", 0,
                                    OnWho, seen),
              CRPC_OK);
  }
  ASSERT_TRUE(WaitFor([&] { return seen->done.load() == n; }, 10 * CRPC_SECOND));
}

class LoopsTest : public LeakCheckTest {};

// A raw server that refuses every request (REFUSED_STREAM: not processed,
// so the client may send it again) and a crpc server that echoes; the
// round robin target lists the raw one first.
struct RefuserAndEcho {
  std::atomic<int> refused{0};
  RawServer raw{[this](nghttp2_session *s, int32_t id) {
    refused++;
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
  }};
  TestServer echo;
  RefuserAndEcho() {
    echo.Add("/t.S/Echo", CRPC_UNARY,
             [](crpc_server_call *call, const crpc_ctx *) { return EchoOnce(call); });
    echo.Start();
  }
  std::string Target() const {
    return "ipv4:" + raw.target() + ",127.0.0.1:" + std::to_string(echo.port());
  }
};

TEST_F(LoopsTest, RoundRobinSpreadsConnectionsOverLoops) {
  Backends b(3);
  crpc_channel *ch = RoundRobin(b.Target(), 3);
  Seen seen;
  CallAll(ch, 300, &seen);
  EXPECT_EQ(seen.failed.load(), 0);
  std::set<pthread_t> all;
  ASSERT_EQ(seen.threads.size(), 3u);  // every server got calls
  for (auto &kv : seen.threads) {
    EXPECT_EQ(kv.second.size(), 1u) << kv.first << "'s completions ran on one loop";
    all.insert(kv.second.begin(), kv.second.end());
  }
  EXPECT_EQ(all.size(), 3u) << "three connections, three loops";
  crpc_channel_free(ch);
}

TEST_F(LoopsTest, MoreConnectionsThanLoopsShareThem) {
  Backends b(4);
  crpc_channel *ch = RoundRobin(b.Target(), 2);
  Seen seen;
  CallAll(ch, 200, &seen);
  EXPECT_EQ(seen.failed.load(), 0);
  std::map<pthread_t, int> conns_per_loop;
  for (auto &kv : seen.threads) {
    ASSERT_EQ(kv.second.size(), 1u);
    conns_per_loop[*kv.second.begin()]++;
  }
  ASSERT_EQ(conns_per_loop.size(), 2u);
  for (auto &kv : conns_per_loop) EXPECT_EQ(kv.second, 2) << "fewest-first placement";
  crpc_channel_free(ch);
}

TEST_F(LoopsTest, OneLoopThreadSerialisesEveryConnection) {
  Backends b(3);
  crpc_channel *ch = RoundRobin(b.Target(), 1);
  Seen seen;
  CallAll(ch, 90, &seen);
  std::set<pthread_t> all;
  for (auto &kv : seen.threads) all.insert(kv.second.begin(), kv.second.end());
  EXPECT_EQ(seen.threads.size(), 3u);
  EXPECT_EQ(all.size(), 1u);
  crpc_channel_free(ch);
}

TEST_F(LoopsTest, OneConnectionUsesOneLoopWhateverTheDefault) {
  Backends b(1);
  crpc_channel *ch = crpc_channel_new(b.Target().c_str(), nullptr);  // loop_threads 0
  Seen seen;
  CallAll(ch, 100, &seen);
  ASSERT_EQ(seen.threads.size(), 1u);
  EXPECT_EQ(seen.threads.begin()->second.size(), 1u);
  crpc_channel_free(ch);
}

// One caller: the round robin alternates, so every call goes first to the
// raw server, which refuses every request (not processed), and is sent
// again on the next connection, which lives on the other loop. Blocking
// and async calls alike end OK once, with the echo of their own body.
TEST_F(LoopsTest, RefusedCallsMoveToAConnectionOnAnotherLoop) {
  RefuserAndEcho backends;
  crpc_channel *ch = RoundRobin(backends.Target(), 2);
  const int kCalls = 60;
  struct Async {
    std::string want;
    std::atomic<int> code{-1};
    std::string got;
  };
  for (int i = 0; i < kCalls; i++) {
    std::string req = "call-" + std::to_string(i);
    if (i % 2 == 0) {
      Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND));
      crpc_message resp{};
      crpc_status st{};
      EXPECT_EQ(crpc_unary_call(ch, ctx, "/t.S/Echo", nullptr, req.data(), req.size(), &resp,
                                &st),
                CRPC_OK)
          << st.message;
      EXPECT_EQ(Str(resp), req);
      crpc_status_clear(&st);
      free(resp.data);
      continue;
    }
    Async a;
    a.want = req;
    ASSERT_EQ(crpc_unary_call_async(ch, crpc_ctx_background(), "/t.S/Echo", nullptr, req.data(),
                                    req.size(),
                                    [](crpc_code c, crpc_message *resp, const crpc_status *,
                                       void *ud) {
                                      auto *a = static_cast<Async *>(ud);
                                      if (c == CRPC_OK) a->got = Str(*resp);
                                      if (c == CRPC_OK) free(resp->data);
                                      a->code = c;
                                    },
                                    &a),
              CRPC_OK);
    ASSERT_TRUE(WaitFor([&] { return a.code.load() != -1; }, 10 * CRPC_SECOND));
    EXPECT_EQ(a.code.load(), CRPC_OK);
    EXPECT_EQ(a.got, req);
  }
  EXPECT_EQ(backends.refused.load(), kCalls) << "each call tried the raw server first";
  crpc_channel_free(ch);
}

// The same from four threads at once (TSan: moves racing kicks, cancels
// and other calls' moves). The alternation is lost, so a call may meet
// the raw server on every attempt and end UNAVAILABLE (REFUSED_STREAM)
// once its resends are spent, as gRPC's transparent retry does; no other
// outcome, and never a wrong body.
TEST_F(LoopsTest, ConcurrentMovesEndOnceEach) {
  RefuserAndEcho backends;
  crpc_channel *ch = RoundRobin(backends.Target(), 2);
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; i++) {
        std::string req = std::to_string(t) + "/" + std::to_string(i);
        Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND));
        crpc_message resp{};
        crpc_status st{};
        crpc_code c = crpc_unary_call(ch, ctx, "/t.S/Echo", nullptr, req.data(), req.size(),
                                      &resp, &st);
        if (c == CRPC_OK && Str(resp) == req) {
          ok++;
        } else if (c == CRPC_UNAVAILABLE && strstr(st.message, "error 7") != nullptr) {
          refused++;
        } else {
          other++;
          ADD_FAILURE() << crpc_code_name(c) << ": " << st.message;
        }
        crpc_status_clear(&st);
        free(resp.data);
      }
    });
  }
  for (auto &t : threads) t.join();
  EXPECT_EQ(ok.load() + refused.load(), 160);
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(ok.load(), 80) << refused.load() << " ran out of resends";
  crpc_channel_free(ch);
}

// Calls hanging on two servers (so on two loops): the registry lists both,
// cancels the one on the second loop by id, and freeing the channel after
// its calls are freed leaves nothing behind (LeakCheckTest, ASan).
TEST_F(LoopsTest, RegistrySeesCallsOnEveryLoop) {
  std::atomic<int> started{0};
  std::vector<std::unique_ptr<TestServer>> servers;
  std::string target = "ipv4:";
  for (int i = 0; i < 2; i++) {
    servers.push_back(std::make_unique<TestServer>());
    servers.back()->Add("/t.S/Hang", CRPC_UNARY, [&](crpc_server_call *call, const crpc_ctx *ctx) {
      crpc_message m;
      crpc_code c = crpc_server_call_recv(call, &m);
      if (c == CRPC_OK) free(m.data);
      started++;
      return crpc_ctx_wait(ctx);
    });
    servers.back()->Start();
    target += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(servers.back()->port());
  }
  crpc_channel *ch = RoundRobin(target, 2);
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND));
  crpc_call *calls[2];
  for (auto &c : calls) {
    ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Hang", nullptr, &c), CRPC_OK);
    ASSERT_EQ(crpc_call_send(c, "", 0), CRPC_OK);
    ASSERT_EQ(crpc_call_close_send(c), CRPC_OK);
  }
  ASSERT_TRUE(WaitFor([&] { return started.load() == 2; }, 5 * CRPC_SECOND));
  crpc_call_info *infos = nullptr;
  size_t n = 0;
  ASSERT_EQ(crpc_channel_calls(ch, ctx, &infos, &n), CRPC_OK);
  std::set<uint64_t> ids;
  for (size_t i = 0; i < n; i++) ids.insert(infos[i].id);
  crpc_calls_free(infos);
  EXPECT_EQ(ids, (std::set<uint64_t>{crpc_call_id(calls[0]), crpc_call_id(calls[1])}));
  ASSERT_EQ(crpc_channel_cancel_call(ch, ctx, crpc_call_id(calls[1]), "test"), CRPC_OK);
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(calls[1], &st), CRPC_CANCELLED);
  crpc_status_clear(&st);
  for (auto &c : calls) crpc_call_free(c);  // cancels the other
  crpc_channel_free(ch);
}

}  // namespace
}  // namespace crpc_test
