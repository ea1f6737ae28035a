// The runtime's log (crpc/log.h) and the reasons that failures return
// (crpc_server_listen_err, crpc_server_new_err, crpc_channel_new_err,
// crpc_call_start_status). Every message checked here is a real one the
// runtime produces (a failed listen, a bad target, a transport trace), not
// one the test logs itself.
#include "crpc/log.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crpc/channel.h"
#include "crpc/server.h"
#include "rpc/channel/test_util.h"
#include "rpc/log/log_testing.h"

namespace crpc_test {
namespace {

struct Line {
  crpc_log_level level;
  std::string tag;
  std::string message;
};

// A sink that keeps every line (any thread).
class Collector {
 public:
  static void Sink(crpc_log_level level, const char *tag, const char *message,
                   void *user_data) {
    auto *self = static_cast<Collector *>(user_data);
    std::lock_guard<std::mutex> lock(self->mu_);
    self->lines_.push_back({level, tag, message});
  }
  std::vector<Line> Lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  // The first line with this tag whose message contains `part`, if any.
  bool Has(const std::string &tag, const std::string &part,
           Line *out = nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Line &l : lines_) {
      if (l.tag == tag && l.message.find(part) != std::string::npos) {
        if (out != nullptr) *out = l;
        return true;
      }
    }
    return false;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<Line> lines_;
};

// Each test starts from the environment's defaults with a collecting sink
// and leaves the process as it found it.
class LogTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    unsetenv("CRPC_VERBOSITY");
    unsetenv("CRPC_TRACE");
    crpc_log_reload_env_for_test();
    crpc_log_set_sink(Collector::Sink, &lines_);
  }
  void TearDown() override {
    crpc_log_set_sink(nullptr, nullptr);
    unsetenv("CRPC_VERBOSITY");
    unsetenv("CRPC_TRACE");
    crpc_log_reload_env_for_test();
    LeakCheckTest::TearDown();
  }
  Collector lines_;
};

crpc_server_options OneLoop() {
  crpc_server_options o = {};
  o.loop_threads = 1;
  o.handler_threads = 2;
  return o;
}

// A server listening on 127.0.0.1 (not started); its port in *port.
crpc_server *Holder(int *port) {
  crpc_server_options o = OneLoop();
  crpc_server *s = crpc_server_new(&o);
  EXPECT_NE(s, nullptr);
  EXPECT_EQ(crpc_server_listen(s, "127.0.0.1:0", port), CRPC_OK);
  return s;
}

TEST_F(LogTest, DefaultIsWarningAndQuietInNormalOperation) {
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_WARNING);
  int port = 0;
  crpc_server *s = Holder(&port);
  crpc_server_free(s);
  EXPECT_TRUE(lines_.Lines().empty()) << lines_.Lines()[0].message;
}

TEST_F(LogTest, SinkGetsARuntimeErrorWithLevelAndTag) {
  int port = 0;
  crpc_server *holder = Holder(&port);
  crpc_server_options o = OneLoop();
  crpc_server *s = crpc_server_new(&o);
  std::string addr = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(crpc_server_listen(s, addr.c_str(), nullptr), CRPC_UNAVAILABLE);
  Line l;
  ASSERT_TRUE(lines_.Has("server", addr, &l));
  EXPECT_EQ(l.level, CRPC_LOG_ERROR);
  EXPECT_NE(l.message.find(strerror(EADDRINUSE)), std::string::npos)
      << l.message;
  EXPECT_EQ(l.message.find('\n'), std::string::npos) << "no newline";
  crpc_server_free(s);
  crpc_server_free(holder);
}

TEST_F(LogTest, LevelsFilter) {
  crpc_log_set_level(CRPC_LOG_NONE);
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_NONE);
  EXPECT_EQ(crpc_channel_new("[::1", nullptr), nullptr);
  EXPECT_TRUE(lines_.Lines().empty());
  crpc_log_set_level(CRPC_LOG_ERROR);
  EXPECT_EQ(crpc_channel_new("[::1", nullptr), nullptr);
  Line l;
  ASSERT_TRUE(lines_.Has("channel", "[::1", &l));
  EXPECT_EQ(l.level, CRPC_LOG_ERROR);
  // Out-of-range values are clamped, never taken as-is.
  crpc_log_set_level(static_cast<crpc_log_level>(42));
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_NONE);
  crpc_log_set_level(static_cast<crpc_log_level>(-3));
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_DEBUG);
  EXPECT_STREQ(crpc_log_level_name(CRPC_LOG_WARNING), "WARNING");
}

TEST_F(LogTest, VerbosityEnvironmentIsHonoured) {
  setenv("CRPC_VERBOSITY", "none", 1);
  crpc_log_reload_env_for_test();
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_NONE);
  EXPECT_EQ(crpc_channel_new("[::1", nullptr), nullptr);
  EXPECT_TRUE(lines_.Lines().empty());
  setenv("CRPC_VERBOSITY", "DEBUG", 1); // gRPC's spelling works too
  crpc_log_reload_env_for_test();
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_DEBUG);
  setenv("CRPC_VERBOSITY", "info", 1);
  crpc_log_reload_env_for_test();
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_INFO);
  setenv("CRPC_VERBOSITY", "error", 1);
  crpc_log_reload_env_for_test();
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_ERROR);
  setenv("CRPC_VERBOSITY", "loud", 1); // unknown: the default
  crpc_log_reload_env_for_test();
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_WARNING);
  // The API overrides the environment.
  crpc_log_set_level(CRPC_LOG_ERROR);
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_ERROR);
}

TEST_F(LogTest, UnknownTraceNamesAreRefusedAndWarnedAbout) {
  EXPECT_EQ(crpc_log_set_trace("h2,bogus"), CRPC_INVALID_ARGUMENT);
  EXPECT_EQ(crpc_log_set_trace(" h2 , server "), CRPC_OK);
  EXPECT_EQ(crpc_log_set_trace(nullptr), CRPC_OK);
  setenv("CRPC_TRACE", "nope", 1);
  crpc_log_reload_env_for_test();
  EXPECT_TRUE(lines_.Has("ctx", "CRPC_TRACE"));
}

// CRPC_TRACE=h2 at the default level: connection open, RST_STREAM received
// (the client cancelled), GOAWAY sent (shutdown), connection closed.
TEST_F(LogTest, TraceH2ShowsTheConnectionsLife) {
  setenv("CRPC_TRACE", "h2", 1);
  crpc_log_reload_env_for_test();
  EXPECT_EQ(crpc_log_get_level(), CRPC_LOG_WARNING);
  crpc_server_options o = OneLoop();
  TestServer server(&o);
  std::atomic<bool> in_handler{false};
  server.Add("/t.S/Hold", CRPC_BIDI_STREAMING,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               in_handler = true;
               crpc_ctx_wait(ctx);
               return crpc_ctx_err(ctx);
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  ASSERT_NE(ch, nullptr);
  {
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND));
    crpc_call *call = nullptr;
    ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Hold", nullptr, &call), CRPC_OK);
    ASSERT_TRUE(WaitFor([&] { return in_handler.load(); }, 5 * CRPC_SECOND));
    crpc_call_free(call); // RST_STREAM(CANCEL)
  }
  EXPECT_TRUE(WaitFor(
      [&] { return lines_.Has("h2", "server fd"); }, 5 * CRPC_SECOND));
  EXPECT_TRUE(lines_.Has("h2", "connection open"));
  EXPECT_TRUE(WaitFor(
      [&] { return lines_.Has("h2", "RST_STREAM received"); },
      5 * CRPC_SECOND));
  crpc_server_shutdown(server.get(), CRPC_SECOND);
  EXPECT_TRUE(lines_.Has("h2", "GOAWAY sent"));
  crpc_channel_free(ch);
  EXPECT_TRUE(WaitFor(
      [&] { return lines_.Has("h2", "connection closed"); },
      5 * CRPC_SECOND));
  for (const Line &l : lines_.Lines()) {
    EXPECT_EQ(l.level, CRPC_LOG_DEBUG) << l.message;
    EXPECT_EQ(l.tag, "h2") << l.message;
  }
}

// Sinks are called from many threads at once while another thread swaps
// them: each message reaches exactly one of them, and set_sink returning
// means the old one is no longer running (TSan checks the rest).
TEST_F(LogTest, SinkCalledFromManyThreadsWhileSwapped) {
  Collector a, b;
  std::atomic<bool> stop{false};
  const int kThreads = 4, kEach = 200;
  std::thread swapper([&] {
    for (int i = 0; !stop; i++) {
      crpc_log_set_sink(Collector::Sink, i % 2 ? &a : &b);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; i++) {
        crpc_channel *ch = crpc_channel_new("[::1", nullptr);
        EXPECT_EQ(ch, nullptr);
      }
    });
  }
  for (auto &t : threads) t.join();
  stop = true;
  swapper.join();
  size_t n = a.Lines().size() + b.Lines().size() + lines_.Lines().size();
  EXPECT_EQ(n, static_cast<size_t>(kThreads * kEach));
}

// Aborts for misuse keep aborting, with the reason logged first: to stderr
// even when a custom sink is set (the process ends before it could write).
TEST_F(LogTest, MisuseLogsBeforeAborting) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "death tests fork; not under TSan";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(crpc_ctx_is_done(nullptr), "crpc ERROR ctx: .*NULL ctx");
}

// ---- reasons returned to the caller --------------------------------------

TEST_F(LogTest, ListenOnUsedPortReturnsAddressAndErrnoText) {
  int port = 0;
  crpc_server *holder = Holder(&port);
  crpc_server_options o = OneLoop();
  crpc_server *s = crpc_server_new(&o);
  std::string addr = "127.0.0.1:" + std::to_string(port);
  char error[CRPC_SERVER_ERROR_MAX];
  EXPECT_EQ(crpc_server_listen_err(s, addr.c_str(), nullptr, error),
            CRPC_UNAVAILABLE);
  EXPECT_NE(std::string(error).find(addr), std::string::npos) << error;
  EXPECT_NE(std::string(error).find(strerror(EADDRINUSE)), std::string::npos)
      << error;
  EXPECT_EQ(crpc_server_listen_err(s, "nohost:notaport", nullptr, error),
            CRPC_INVALID_ARGUMENT);
  EXPECT_NE(std::string(error).find("notaport"), std::string::npos) << error;
  EXPECT_EQ(crpc_server_listen_err(s, "127.0.0.1:0", nullptr, error),
            CRPC_OK);
  EXPECT_STREQ(error, "");
  // The caller has the reason: nothing is logged twice.
  EXPECT_TRUE(lines_.Lines().empty()) << lines_.Lines()[0].message;
  crpc_server_free(s);
  crpc_server_free(holder);
}

TEST_F(LogTest, ServerNewWithABadOptionReturnsWhy) {
  crpc_server_options o = OneLoop();
  o.initial_connection_window_size = 100; // below HTTP/2's 65535
  char error[CRPC_SERVER_ERROR_MAX];
  EXPECT_EQ(crpc_server_new_err(&o, error), nullptr);
  EXPECT_NE(error[0], '\0');
  o.initial_connection_window_size = 0;
  crpc_server *s = crpc_server_new_err(&o, error);
  ASSERT_NE(s, nullptr);
  EXPECT_STREQ(error, "");
  crpc_server_free(s);
  EXPECT_TRUE(lines_.Lines().empty());
}

TEST_F(LogTest, ChannelNewWithABadTargetOrOptionReturnsWhy) {
  char error[CRPC_CHANNEL_ERROR_MAX];
  EXPECT_EQ(crpc_channel_new_err("[::1", nullptr, error), nullptr);
  EXPECT_NE(std::string(error).find("[::1"), std::string::npos) << error;
  crpc_channel_options o = {};
  o.initial_stream_window_size = 0x80000000u; // over 2^31-1
  EXPECT_EQ(crpc_channel_new_err("127.0.0.1:1", &o, error), nullptr);
  EXPECT_NE(error[0], '\0');
  o = {};
  o.default_compression = "brotli";
  EXPECT_EQ(crpc_channel_new_err("127.0.0.1:1", &o, error), nullptr);
  EXPECT_NE(std::string(error).find("brotli"), std::string::npos) << error;
  crpc_channel *ch = crpc_channel_new_err("127.0.0.1:1", nullptr, error);
  ASSERT_NE(ch, nullptr);
  EXPECT_STREQ(error, "");
  crpc_channel_free(ch);
  EXPECT_TRUE(lines_.Lines().empty());
}

TEST_F(LogTest, StreamingStartToAClosedPortIsUnavailableWithAReason) {
  int port = 0;
  crpc_server_free(Holder(&port)); // the port is closed again
  std::string target = "127.0.0.1:" + std::to_string(port);
  crpc_channel *ch = crpc_channel_new(target.c_str(), nullptr);
  ASSERT_NE(ch, nullptr);
  {
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND));
    crpc_call *call = nullptr;
    crpc_status st = {};
    EXPECT_EQ(crpc_call_start_status(ch, ctx, "/t.S/M", nullptr, nullptr,
                                     &call, &st),
              CRPC_UNAVAILABLE);
    EXPECT_EQ(call, nullptr);
    EXPECT_EQ(st.code, CRPC_UNAVAILABLE);
    ASSERT_NE(st.message, nullptr);
    EXPECT_NE(std::string(st.message).find(strerror(ECONNREFUSED)),
              std::string::npos)
        << st.message;
    EXPECT_NE(st.trailers, nullptr);
    crpc_status_clear(&st);
    // A bad method says so.
    EXPECT_EQ(crpc_call_start_status(ch, ctx, "t.S/M", nullptr, nullptr, &call,
                                     &st),
              CRPC_INVALID_ARGUMENT);
    EXPECT_NE(std::string(st.message).find("t.S/M"), std::string::npos)
        << st.message;
    crpc_status_clear(&st);
  }
  {
    // A ctx that ended first: its cause is the reason.
    Ctx ctx(crpc_ctx_with_cancel(crpc_ctx_background()));
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "user gave up");
    crpc_call *call = nullptr;
    crpc_status st = {};
    EXPECT_EQ(crpc_call_start_status(ch, ctx, "/t.S/M", nullptr, nullptr,
                                     &call, &st),
              CRPC_CANCELLED);
    EXPECT_STREQ(st.message, "user gave up");
    crpc_status_clear(&st);
  }
  crpc_channel_free(ch);
}

TEST_F(LogTest, StartStatusOnSuccessIsZeroed) {
  crpc_server_options o = OneLoop();
  TestServer server(&o);
  server.Add("/t.S/Echo", CRPC_BIDI_STREAMING,
             [](crpc_server_call *call, const crpc_ctx *) {
               return EchoOnce(call);
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  ASSERT_NE(ch, nullptr);
  {
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND));
    crpc_call *call = nullptr;
    crpc_status st;
    memset(&st, 0xff, sizeof(st)); // garbage in: zeroed out
    ASSERT_EQ(crpc_call_start_status(ch, ctx, "/t.S/Echo", nullptr, "gzip",
                                     &call, &st),
              CRPC_OK);
    EXPECT_EQ(st.code, CRPC_OK);
    EXPECT_EQ(st.message, nullptr);
    EXPECT_EQ(crpc_call_send(call, "hi", 2), CRPC_OK);
    EXPECT_EQ(crpc_call_close_send(call), CRPC_OK);
    crpc_message m;
    ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
    EXPECT_EQ(Str(m), "hi");
    free(m.data);
    EXPECT_EQ(crpc_call_finish(call, nullptr), CRPC_OK);
    crpc_call_free(call);
  }
  crpc_channel_free(ch);
}

}  // namespace
}  // namespace crpc_test
