// A reader off the loop gives its stream window back only once it holds
// half of it (crpc_h2_inbound_return_due), not per message. What could go
// wrong is a stall: a sender blocked on a window the reader never returns.
// Small messages under windows from 100 bytes to 1 MiB, a reader that
// keeps up and one that falls behind, both directions, both handler styles.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>

#include "rpc/e2e/e2e_util.h"

namespace crpc_e2e {
namespace {

struct Load {
  int count;
  int size;
};
constexpr Load kLoads[] = {{2000, 10}, {300, 700}};

class WindowReturnTest
    : public E2ETest,
      public ::testing::WithParamInterface<std::tuple<uint32_t, Handlers>> {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    handlers_ = std::get<1>(GetParam());
    crpc_server_options so{};
    so.initial_stream_window_size = std::get<0>(GetParam());
    crpc_channel_options co{};
    co.initial_stream_window_size = std::get<0>(GetParam());
    Start(&so, {}, &co);
  }
};

// The server streams; the blocking client reads every message, pausing
// now and then in the slow variant so the server fills the window.
TEST_P(WindowReturnTest, ClientReaderGetsEveryMessage) {
  for (bool slow : {false, true}) {
    for (const Load &l : kLoads) {
      Ctx ctx = WithTimeout(30 * kSec);
      crpc_call *raw = nullptr;
      ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Count").c_str(), nullptr, &raw));
      Call call(raw);
      std::string req = std::to_string(l.count) + " " + std::to_string(l.size) + " 0";
      ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), req.data(), req.size()));
      ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
      for (int i = 0; i < l.count; i++) {
        if (slow && i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        std::string m;
        ASSERT_EQ(CRPC_OK, Recv(call.get(), &m)) << "message " << i << " slow " << slow;
        ASSERT_EQ(std::string(l.size, static_cast<char>(i & 0xff)), m) << i;
      }
      std::string end;
      bool at_end = false;
      ASSERT_EQ(CRPC_OK, Recv(call.get(), &end, &at_end));
      EXPECT_TRUE(at_end);
      EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
    }
  }
}

// The client streams; the server's handler (blocking recv, or async
// on_message) takes every message. A slow handler is not needed: the
// client's sends block on the window whenever the server falls behind.
TEST_P(WindowReturnTest, ServerReaderGetsEveryMessage) {
  for (const Load &l : kLoads) {
    Ctx ctx = WithTimeout(30 * kSec);
    crpc_call *raw = nullptr;
    ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Collect").c_str(), nullptr, &raw));
    Call call(raw);
    std::string m(l.size, 'c');
    for (int i = 0; i < l.count; i++) {
      ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), m.data(), m.size())) << i;
    }
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
    std::string reply;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &reply));
    EXPECT_EQ(std::to_string(l.count) + " " + std::to_string(l.count * l.size), reply);
    EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Windows, WindowReturnTest,
    ::testing::Combine(::testing::Values(100u, 1000u, 20000u, 65535u, 1u << 20),
                       ::testing::Values(Handlers::kBlocking, Handlers::kAsync)),
    [](const ::testing::TestParamInfo<std::tuple<uint32_t, Handlers>> &i) {
      return std::to_string(std::get<0>(i.param)) + "B_" +
             (std::get<1>(i.param) == Handlers::kAsync ? "Async" : "Blocking");
    });

}  // namespace
}  // namespace crpc_e2e
