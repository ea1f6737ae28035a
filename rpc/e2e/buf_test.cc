// crpc_buf (crpc/call.h): messages sent from a caller's buffer without a
// copy, one buffer shared by many sends and many calls, blocking and async,
// compressed and not, both directions; and every send consuming its
// reference whatever it returns (LSan, part of the suite, fails a test
// binary that leaks a buffer).
#include <atomic>
#include <thread>

#include "crpc/channel_async.h"
#include "crpc/server_async.h"
#include "rpc/e2e/e2e_util.h"

namespace crpc_e2e {
namespace {

constexpr size_t kBig = 100 * 1024;  // over a DATA frame and the window

crpc_buf *Pattern(size_t len, uint8_t seed) {
  crpc_buf *b = crpc_buf_new(len);
  if (b == nullptr) abort();
  for (size_t i = 0; i < len; i++) crpc_buf_data(b)[i] = static_cast<uint8_t>(seed + i * 13);
  return b;
}

std::string Bytes(crpc_buf *b) {
  return std::string(reinterpret_cast<const char *>(crpc_buf_data(b)), crpc_buf_len(b));
}

// Blocking server streaming: request "n"; one buffer sent n times. With
// request metadata x-gzip the call compresses (the copying path).
crpc_code SendShared(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  (void)ctx;
  crpc_message req;
  crpc_code code = crpc_server_call_recv(call, &req);
  if (code != CRPC_OK) return code;
  int n = atoi(std::string(reinterpret_cast<char *>(req.data), req.len).c_str());
  free(req.data);
  const crpc_metadata *md = crpc_server_call_request_metadata(call);
  crpc_metadata_entry e;
  for (size_t i = 0; crpc_metadata_at(md, i, &e); i++) {
    if (strcmp(e.key, "x-gzip") == 0) crpc_server_call_set_compression(call, "gzip");
  }
  crpc_buf *b = Pattern(kBig, 7);
  for (int i = 0; i < n && code == CRPC_OK; i++) {
    code = crpc_server_call_send_buf(call, crpc_buf_ref(b), 0);
  }
  crpc_buf_unref(b);
  return code;
}

// One buffer shared by every call of the async method at once.
crpc_buf *g_shared;

struct AsyncState {
  int left;
};

void Pump(crpc_server_call *call, void *state) {
  auto *s = static_cast<AsyncState *>(state);
  while (s->left > 0 && crpc_server_call_can_send(call)) {
    if (crpc_server_call_send_async_buf(call, crpc_buf_ref(g_shared), 0) != CRPC_OK) return;
    s->left--;
  }
  if (s->left == 0) {
    s->left = -1;
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  }
}

void *AsyncStart(crpc_server_call *, const crpc_ctx *, void *) { return new AsyncState{0}; }

void AsyncMessage(crpc_server_call *call, const crpc_message *msg, void *state) {
  auto *s = static_cast<AsyncState *>(state);
  if (msg->end) return;
  s->left = atoi(std::string(reinterpret_cast<char *>(msg->data), msg->len).c_str());
  Pump(call, s);
}

void AsyncCancel(crpc_server_call *call, const crpc_cause *cause, void *) {
  crpc_server_call_finish(call, cause->code, nullptr);
}

void AsyncDone(crpc_server_call *, void *state) { delete static_cast<AsyncState *>(state); }

const crpc_server_reactor kAsync = {
    .on_start = AsyncStart,
    .on_message = AsyncMessage,
    .on_send_ready = Pump,
    .on_cancel = AsyncCancel,
    .on_done = AsyncDone,
};

class BufTest : public E2ETest {
 protected:
  void StartBufServer() {
    Start(nullptr, [](crpc_server *s) {
      ASSERT_EQ(CRPC_OK, crpc_server_add_method(s, "/buf.Test/Shared", CRPC_SERVER_STREAMING,
                                                SendShared, nullptr));
      ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, "/buf.Test/SharedAsync",
                                                      CRPC_SERVER_STREAMING, &kAsync, nullptr));
    });
  }

  // Starts `method` with request `n`, then expects n copies of `want`.
  void ExpectStream(const char *method, int n, const std::string &want,
                    const crpc_metadata *md = nullptr) {
    Ctx ctx = WithTimeout(20 * kSec);
    crpc_call *raw = nullptr;
    ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), method, md, &raw));
    Call call(raw);
    std::string req = std::to_string(n);
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), req.data(), req.size()));
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
    for (int i = 0; i < n; i++) {
      std::string m;
      bool end = false;
      ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end)) << "message " << i;
      ASSERT_FALSE(end) << "ended after " << i;
      ASSERT_TRUE(m == want) << "message " << i << " differs";
    }
    std::string m;
    bool end = false;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end));
    EXPECT_TRUE(end);
    Status st;
    EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), st.get())) << st.s.message;
  }
};

TEST_F(BufTest, Accessors) {
  crpc_buf *b = crpc_buf_new(0);
  ASSERT_NE(nullptr, b);
  EXPECT_NE(nullptr, crpc_buf_data(b));  // also for an empty message
  EXPECT_EQ(0u, crpc_buf_len(b));
  EXPECT_EQ(b, crpc_buf_ref(b));
  crpc_buf_unref(b);
  crpc_buf_unref(b);
  crpc_buf_unref(nullptr);
  EXPECT_EQ(nullptr, crpc_buf_new(static_cast<size_t>(UINT32_MAX) + 1));
}

TEST_F(BufTest, BlockingServerSendsOneBufferManyTimes) {
  StartBufServer();
  crpc_buf *want = Pattern(kBig, 7);
  ExpectStream("/buf.Test/Shared", 50, Bytes(want));
  crpc_buf_unref(want);
}

TEST_F(BufTest, CompressedCallTakesTheCopyingPath) {
  StartBufServer();
  crpc_buf *want = Pattern(kBig, 7);
  Md md = NewMd({{"x-gzip", "1"}});
  ExpectStream("/buf.Test/Shared", 5, Bytes(want), md.get());
  crpc_buf_unref(want);
}

// Four calls at once queue the same buffer: its bytes reach every client
// intact while other streams still hold references to it.
TEST_F(BufTest, AsyncCallsShareOneBuffer) {
  g_shared = Pattern(kBig, 3);
  StartBufServer();
  std::string want = Bytes(g_shared);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; i++) {
    clients.emplace_back([&] { ExpectStream("/buf.Test/SharedAsync", 40, want); });
  }
  for (auto &t : clients) t.join();
  Stop();  // every call and its references are gone
  crpc_buf_unref(g_shared);
  g_shared = nullptr;
}

TEST_F(BufTest, ClientSendsOneBufferManyTimes) {
  StartBufServer();
  Ctx ctx = WithTimeout(20 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Collect").c_str(), nullptr, &raw));
  Call call(raw);
  crpc_buf *b = Pattern(kBig, 1);
  for (int i = 0; i < 30; i++) ASSERT_EQ(CRPC_OK, crpc_call_send_buf(call.get(), crpc_buf_ref(b), 0));
  // A send the call cannot take still consumes its reference.
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, crpc_call_send_buf(call.get(), crpc_buf_ref(b), 0));
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, crpc_call_send_async_buf(call.get(), crpc_buf_ref(b), 0));
  crpc_buf_unref(b);
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  EXPECT_EQ("30 " + std::to_string(30 * kBig), m);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

TEST_F(BufTest, OverMaxSendSizeIsRefusedAndConsumed) {
  crpc_channel_options chopts = {};
  chopts.max_send_message_size = 1000;
  Start(nullptr, {}, &chopts);
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Collect").c_str(), nullptr, &raw));
  Call call(raw);
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, crpc_call_send_buf(call.get(), Pattern(1001, 0), 0));
  EXPECT_EQ(CRPC_OK, crpc_call_send_buf(call.get(), Pattern(1000, 0), 0));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  EXPECT_EQ("1 1000", m);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

}  // namespace
}  // namespace crpc_e2e
