// Receive timestamps: a call's deadline and a reset's cancel event count
// from when the bytes reached the host (the kernel's stamp,
// crpc_h2_conn_arrival_ns), not from when a busy loop got to read them;
// and a listening server keeps the
// kernel stamping packets, so no request of its goes unstamped. Real
// sockets, a raw HTTP/2 client.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/server/async_test_util.h"

namespace crpc_test {
namespace {

// Whether bytes sent over loopback TCP now arrive with a kernel receive
// timestamp. The kernel stamps packets only while some socket asks for
// stamps and turns that on with deferred work (a server's listener asks:
// crpc_server_listen), so a test that needs stamps waits for them.
bool LoopbackPacketsStamped() {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof(a);
  bool stamped = false;
  if (bind(l, reinterpret_cast<sockaddr *>(&a), al) == 0 && listen(l, 1) == 0 &&
      getsockname(l, reinterpret_cast<sockaddr *>(&a), &al) == 0) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, reinterpret_cast<sockaddr *>(&a), al) == 0) {
      int sfd = accept(l, nullptr, nullptr);
      int one = 1;
      setsockopt(sfd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
      char byte = 'x', buf[8];
      alignas(cmsghdr) char ctl[128];
      iovec iov{buf, sizeof(buf)};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl;
      m.msg_controllen = sizeof(ctl);
      if (write(c, &byte, 1) == 1 && recvmsg(sfd, &m, 0) == 1) {
        for (cmsghdr *h = CMSG_FIRSTHDR(&m); h != nullptr; h = CMSG_NXTHDR(&m, h)) {
          stamped |= h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS;
        }
      }
      close(sfd);
    }
    close(c);
  }
  close(l);
  return stamped;
}

// One loop that an inline handler (/t.S/Stall) busies for 200 ms on
// demand, what no handler should do: requests then wait in the socket. The
// test's reactor serves /t.S/Hang; a raw HTTP/2 client is connected, and
// the kernel stamps its packets.
class StalledLoopTest : public AsyncTest {
 protected:
  void Start() {
    crpc_server_options so{};
    so.loop_threads = 1;
    server_ = std::make_unique<TestServer>(&so);
    ASSERT_EQ(stall_.Register(server_->get(), "/t.S/Stall"), CRPC_OK);
    ASSERT_EQ(hang_.Register(server_->get(), "/t.S/Hang", CRPC_UNARY), CRPC_OK);
    server_->Start();
    ch_ = std::make_unique<Channel>(server_->target());
    // Set up by the server before any stall: else its receive timestamps
    // are switched on only after a request is already queued unstamped.
    raw_ = std::make_unique<RawClient>(server_->port());
    ASSERT_TRUE(raw_->PumpUntil([&] { return raw_->got_settings(); }, kWait));
    ASSERT_TRUE(WaitFor(LoopbackPacketsStamped, kWait))
        << "the kernel does not stamp received packets";
  }
  // Returns once the loop is stalled (a call to /t.S/Stall is in it).
  void Stall() {
    stall_call_ = std::thread([&] { EXPECT_EQ(Unary(*ch_, "/t.S/Stall", "x").code, CRPC_OK); });
    ASSERT_TRUE(WaitFor([&] { return stalling_.load(); }, kWait));
  }
  void TearDown() override {
    if (stall_call_.joinable()) stall_call_.join();
    raw_.reset();
    ch_.reset();
    server_.reset();
    AsyncTest::TearDown();
  }
  std::atomic<bool> stalling_{false};
  UnaryAsync stall_{[this](crpc_server_call *call, const crpc_ctx *,
                           const crpc_message *) -> crpc_code {
    stalling_ = true;
    int64_t until = crpc_now_ns() + 200 * kMs;
    while (crpc_now_ns() < until) {
    }
    return crpc_server_call_send_async(call, "s", 1, 0);
  }};
  Reactor hang_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<Channel> ch_;
  std::unique_ptr<RawClient> raw_;
  std::thread stall_call_;
};

// The deadline counts from when the request reached the host (the kernel's
// receive timestamp), not from when the loop got to read it: a call with
// grpc-timeout 300m arrives while the loop is stalled 200 ms; its ctx
// deadline is ~300 ms after it was sent, not ~500.
TEST_F(StalledLoopTest, DeadlineCountsFromArrivalNotFromABusyLoopsRead) {
  std::atomic<int64_t> deadline{0}, started{0};
  hang_.start = [&](crpc_server_call *, const crpc_ctx *ctx) -> void * {
    deadline = crpc_ctx_deadline(ctx);
    started = crpc_now_ns();
    return nullptr;
  };
  hang_.cancel = [](crpc_server_call *call, const crpc_cause *, void *) {
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Stall());
  std::string body = Frame("x");
  int64_t sent = crpc_now_ns();
  int32_t id = raw_->Request("/t.S/Hang", {{"grpc-timeout", "300m"}}, &body);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(raw_->PumpUntil([&] { return raw_->stream(id).closed; }, kWait));
  EXPECT_EQ(raw_->stream(id).headers["grpc-status"], "4");
  ASSERT_TRUE(hang_.WaitCount(Ev::kDone, 1));
  EXPECT_GE(started.load() - sent, 100 * kMs) << "the loop was not stalled";
  // The stamp is CLOCK_REALTIME, turned into CLOCK_MONOTONIC at the read
  // (crpc_h2_conn_arrival_ns): a wall clock adjusted in between (NTP, a VM
  // syncing with its host) moves the deadline by that much; the cause of
  // the one miss seen is not proven, this is the likeliest.
  // Once in a fresh-clone ASan run it came 0.4 ms before sent + 300 ms;
  // what the test is about is the bound below (a deadline counted from the
  // read would be ~500 ms after the send).
  EXPECT_GE(deadline.load(), sent + 300 * kMs - 2 * kMs);
  EXPECT_LT(deadline.load() - sent, 360 * kMs)
      << "deadline counted from the read, "
      << (deadline.load() - sent) / kMs << " ms after the send";
}

// The same for a client's reset: crpc_server_cancel_stats's event_ns is
// when the RST_STREAM reached the host, so the time a stalled loop took to
// read it counts in event -> ctx done (the cancel-path metrics and
// cancel_bench's split rest on that).
TEST_F(StalledLoopTest, ResetEventCountsFromArrivalNotFromABusyLoopsRead) {
  std::atomic<int64_t> event{0}, cancelled{0};
  hang_.cancel = [&](crpc_server_call *call, const crpc_cause *, void *) {
    cancelled = crpc_now_ns();
    crpc_server_cancel_stats st;
    crpc_server_call_cancel_stats(call, &st);
    event = st.event_ns;
    crpc_server_call_finish(call, CRPC_CANCELLED, nullptr);
  };
  ASSERT_NO_FATAL_FAILURE(Start());
  std::string body = Frame("x");
  int32_t id = raw_->Request("/t.S/Hang", {}, &body);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(raw_->PumpUntil([&] { return hang_.Count(Ev::kStart) == 1; }, kWait));
  ASSERT_NO_FATAL_FAILURE(Stall());
  raw_->Reset(id);
  int64_t sent = crpc_now_ns();
  ASSERT_TRUE(raw_->Send());
  ASSERT_TRUE(hang_.WaitCount(Ev::kDone, 1));
  EXPECT_GE(cancelled.load() - sent, 100 * kMs) << "the loop was not stalled";
  EXPECT_GE(event.load(), sent - kMs);
  EXPECT_LT(event.load() - sent, 50 * kMs)
      << "event counted from the read, " << (event.load() - sent) / kMs
      << " ms after the reset was sent";
}

// The kernel stamps received packets only while some socket asks for
// stamps (switched on by deferred work, and off after the last such
// socket closes): a listening server asks, so its first request after a
// quiet spell is stamped too. (Passes without crpc if another process
// happens to hold stamps on; fails without the listener's request when
// nothing does, as in a fresh test process.)
TEST_F(AsyncTest, AListeningServerKeepsPacketsStamped) {
  crpc_server *server = crpc_server_new(nullptr);
  ASSERT_NE(server, nullptr);
  int port = 0;
  ASSERT_EQ(CRPC_OK, crpc_server_listen(server, "127.0.0.1:0", &port));
  usleep(100 * 1000);  // the kernel's deferred switch-on
  EXPECT_TRUE(LoopbackPacketsStamped());
  crpc_server_free(server);
}

}  // namespace
}  // namespace crpc_test
