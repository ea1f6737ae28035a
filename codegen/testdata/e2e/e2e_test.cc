// The generated Counter stubs against the real crpc runtime over loopback:
// all four shapes, a cancel that reaches the handler's ctx, and the async
// (loop-thread) handlers called through the same blocking client stubs.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include <atomic>

#include "codegen/testdata/e2e/counter.crpc.h"
#include "crpc/ctx.h"
#include "grpc/testing/test.crpc.h"

namespace {

typedef Crpc__Codegen__E2e__Num Num;

Num MakeNum(int64_t v) {
  Num n = CRPC__CODEGEN__E2E__NUM__INIT;
  n.value = v;
  return n;
}

std::atomic<int> g_count_cancelled{0};

crpc_code Add(crpc_server_call *call, const crpc_ctx *, const Num *req,
              void *) {
  Num out = MakeNum(req->value + 1);
  return crpc_codegen_e2e_counter_add_server_send(call, &out);
}

crpc_code Count(crpc_server_call *call, const crpc_ctx *ctx, const Num *req,
                void *) {
  for (int64_t i = 0; req->value == 0 || i < req->value; i++) {
    Num out = MakeNum(i);
    crpc_code code = crpc_codegen_e2e_counter_count_server_send(call, &out);
    if (code != CRPC_OK) {
      if (crpc_ctx_is_done(ctx)) g_count_cancelled++;
      return code;
    }
  }
  return CRPC_OK;
}

crpc_code Sum(crpc_server_call *call, const crpc_ctx *, void *) {
  int64_t sum = 0;
  for (;;) {
    Num *n;
    crpc_code code = crpc_codegen_e2e_counter_sum_server_recv(call, &n);
    if (code != CRPC_OK) return code;
    if (n == nullptr) break;
    sum += n->value;
    protobuf_c_message_free_unpacked(&n->base, nullptr);
  }
  Num out = MakeNum(sum);
  return crpc_codegen_e2e_counter_sum_server_send(call, &out);
}

crpc_code Double(crpc_server_call *call, const crpc_ctx *, void *) {
  for (;;) {
    Num *n;
    crpc_code code = crpc_codegen_e2e_counter_double_server_recv(call, &n);
    if (code != CRPC_OK || n == nullptr) return code;
    Num out = MakeNum(2 * n->value);
    protobuf_c_message_free_unpacked(&n->base, nullptr);
    code = crpc_codegen_e2e_counter_double_server_send(call, &out);
    if (code != CRPC_OK) return code;
  }
}

class CounterE2E : public ::testing::Test {
 protected:
  crpc_server *server_ = nullptr;
  crpc_channel *ch_ = nullptr;
  crpc_ctx *ctx_ = nullptr;
  crpc_codegen_e2e_counter_handlers handlers_{};

  void SetUp() override {
    handlers_.add = Add;
    handlers_.count = Count;
    handlers_.sum = Sum;
    handlers_.double_ = Double;
    server_ = crpc_server_new(nullptr);
    ASSERT_NE(nullptr, server_);
    ASSERT_EQ(CRPC_OK,
              crpc_codegen_e2e_counter_register_handlers(server_, &handlers_));
    int port = 0;
    ASSERT_EQ(CRPC_OK, crpc_server_listen(server_, "127.0.0.1:0", &port));
    ASSERT_EQ(CRPC_OK, crpc_server_start(server_));
    ch_ = crpc_channel_new(("127.0.0.1:" + std::to_string(port)).c_str(),
                           nullptr);
    ASSERT_NE(nullptr, ch_);
    ctx_ = crpc_ctx_with_timeout(crpc_ctx_background(), 10000000000LL);
  }

  void TearDown() override {
    crpc_ctx_release(ctx_);
    crpc_channel_free(ch_);
    crpc_server_free(server_);
  }
};

TEST_F(CounterE2E, UnaryStub) {
  Num req = MakeNum(41);
  Num *resp = nullptr;
  crpc_status status{};
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_add(ch_, ctx_, nullptr, &req,
                                                  &resp, &status));
  EXPECT_EQ(42, resp->value);
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
  crpc_status_clear(&status);
}

// The typed async stub: the reply arrives parsed, on the channel's loop.
struct AsyncReply {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  crpc_code code = CRPC_UNKNOWN;
  int64_t value = -1;
  std::string message;
};

static void OnAdd(crpc_code code, Num *resp, const crpc_status *status,
                  void *ud) {
  auto *r = static_cast<AsyncReply *>(ud);
  std::lock_guard<std::mutex> l(r->mu);
  r->code = code;
  r->message = status->message;
  if (resp != nullptr) {
    r->value = resp->value;
    protobuf_c_message_free_unpacked(&resp->base, nullptr);
  }
  r->done = true;
  r->cv.notify_all();
}

static bool WaitReply(AsyncReply *r) {
  std::unique_lock<std::mutex> l(r->mu);
  return r->cv.wait_for(l, std::chrono::seconds(10), [&] { return r->done; });
}

TEST_F(CounterE2E, UnaryAsyncStub) {
  Num req = MakeNum(41);
  AsyncReply r;
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_add_async(ch_, ctx_, nullptr,
                                                        &req, OnAdd, &r));
  ASSERT_TRUE(WaitReply(&r));
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ(42, r.value);
}

TEST_F(CounterE2E, UnaryAsyncStubReportsTheCancelCause) {
  crpc_ctx *ctx = crpc_ctx_with_cancel(ctx_);
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "changed my mind");
  Num req = MakeNum(1);
  AsyncReply r;
  /* Already done: refused at once, and done never comes. */
  EXPECT_EQ(CRPC_CANCELLED, crpc_codegen_e2e_counter_add_async(
                                ch_, ctx, nullptr, &req, OnAdd, &r));
  EXPECT_FALSE(r.done);
  crpc_ctx_release(ctx);
}

TEST_F(CounterE2E, ServerStreamingStub) {
  Num req = MakeNum(5);
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_count_start(ch_, ctx_, nullptr,
                                                          &req, &call));
  int64_t expect = 0;
  for (;;) {
    Num *n;
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_count_recv(call, &n));
    if (n == nullptr) break;
    EXPECT_EQ(expect++, n->value);
    protobuf_c_message_free_unpacked(&n->base, nullptr);
  }
  EXPECT_EQ(5, expect);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
}

TEST_F(CounterE2E, ClientStreamingStub) {
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK,
            crpc_codegen_e2e_counter_sum_start(ch_, ctx_, nullptr, &call));
  for (int i = 1; i <= 10; i++) {
    Num n = MakeNum(i);
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_sum_send(call, &n));
  }
  Num *sum = nullptr;
  crpc_status status{};
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_sum_finish(call, &sum, &status));
  EXPECT_EQ(55, sum->value);
  protobuf_c_message_free_unpacked(&sum->base, nullptr);
  crpc_status_clear(&status);
  crpc_call_free(call);
}

TEST_F(CounterE2E, BidiStreamingStub) {
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK,
            crpc_codegen_e2e_counter_double_start(ch_, ctx_, nullptr, &call));
  for (int i = 1; i <= 3; i++) {
    Num n = MakeNum(i);
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_double_send(call, &n));
    Num *out;
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_double_recv(call, &out));
    ASSERT_NE(nullptr, out);
    EXPECT_EQ(2 * i, out->value);
    protobuf_c_message_free_unpacked(&out->base, nullptr);
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call));
  Num *end;
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_double_recv(call, &end));
  EXPECT_EQ(nullptr, end);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
}

TEST_F(CounterE2E, CancelReachesTheHandlerCtx) {
  crpc_ctx *call_ctx = crpc_ctx_with_cancel(ctx_);
  Num req = MakeNum(0);  // stream until cancelled
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_count_start(
                         ch_, call_ctx, nullptr, &req, &call));
  for (int i = 0; i < 3; i++) {
    Num *n;
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_count_recv(call, &n));
    ASSERT_NE(nullptr, n);
    protobuf_c_message_free_unpacked(&n->base, nullptr);
  }
  crpc_ctx_cancel(call_ctx, CRPC_CANCELLED, "test cancels");
  Num *n = nullptr;
  crpc_code code;
  // Messages already received may still be read; then the cancel shows.
  while ((code = crpc_codegen_e2e_counter_count_recv(call, &n)) == CRPC_OK &&
         n != nullptr) {
    protobuf_c_message_free_unpacked(&n->base, nullptr);
  }
  EXPECT_EQ(CRPC_CANCELLED, code);
  EXPECT_EQ(CRPC_CANCELLED, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
  crpc_ctx_release(call_ctx);
  // The server's send fails once the reset arrives; shutdown waits for it.
  crpc_server_shutdown(server_, 1000000000LL);
  EXPECT_EQ(1, g_count_cancelled.load());
}

// ---- async handlers (crpc/server_async.h), same stubs on the client ----

std::atomic<int> g_async_adds{0};
std::atomic<int> g_async_cancels{0};
std::atomic<int> g_async_dones{0};
std::atomic<int> g_async_send_ready{0};

crpc_code AddAsync(crpc_server_call *call, const crpc_ctx *, const Num *req,
                   void *) {
  g_async_adds++;
  Num out = MakeNum(req->value + 1);
  return crpc_codegen_e2e_counter_add_send_async(call, &out);
}

// Count as a reactor: sends while the send buffer has room, resumes from
// on_send_ready, so a long stream never queues more than the buffer.
struct AsyncCount {
  int64_t next = 0;
  int64_t n = -1;  // -1 until the request is in; 0: until cancelled
  bool finished = false;
};

void *CountStart(crpc_server_call *, const crpc_ctx *, void *) {
  return new AsyncCount();
}

void CountPump(crpc_server_call *call, AsyncCount *s) {
  while (!s->finished && s->n >= 0 && (s->n == 0 || s->next < s->n)) {
    if (!crpc_server_call_can_send(call)) return;  // on_send_ready resumes
    Num out = MakeNum(s->next++);
    // Fails once the ctx is done; on_cancel follows and finishes.
    if (crpc_codegen_e2e_counter_count_send_async(call, &out) != CRPC_OK) {
      return;
    }
  }
  if (!s->finished && s->n > 0) {
    s->finished = true;
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  }
}

void CountMessage(crpc_server_call *call, const Num *req, void *state) {
  AsyncCount *s = static_cast<AsyncCount *>(state);
  if (req == nullptr) return;  // the client half-closed; keep sending
  s->n = req->value;
  CountPump(call, s);
}

void CountSendReady(crpc_server_call *call, void *state) {
  g_async_send_ready++;
  CountPump(call, static_cast<AsyncCount *>(state));
}

void CountCancel(crpc_server_call *call, const crpc_cause *cause,
                 void *state) {
  AsyncCount *s = static_cast<AsyncCount *>(state);
  g_async_cancels++;
  if (s->finished) return;
  s->finished = true;
  crpc_server_call_finish(call, cause->code, nullptr);
}

void CountDone(crpc_server_call *, void *state) {
  delete static_cast<AsyncCount *>(state);
  g_async_dones++;
}

const crpc_codegen_e2e_counter_count_reactor kCountReactor = {
    CountStart, CountMessage, CountSendReady, CountCancel, CountDone};

// One service, mixed: Add and Count async on the loop thread, Sum and
// Double blocking on handler threads.
class CounterAsyncE2E : public ::testing::Test {
 protected:
  crpc_server *server_ = nullptr;
  crpc_channel *ch_ = nullptr;
  crpc_ctx *ctx_ = nullptr;
  crpc_codegen_e2e_counter_handlers blocking_{};
  crpc_codegen_e2e_counter_async_handlers async_{};

  void SetUp() override {
    g_async_adds = g_async_cancels = g_async_dones = g_async_send_ready = 0;
    blocking_.sum = Sum;
    blocking_.double_ = Double;
    async_.add = AddAsync;
    async_.count = &kCountReactor;
    server_ = crpc_server_new(nullptr);
    ASSERT_NE(nullptr, server_);
    ASSERT_EQ(CRPC_OK,
              crpc_codegen_e2e_counter_register_handlers(server_, &blocking_));
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_register_async_handlers(
                           server_, &async_));
    int port = 0;
    ASSERT_EQ(CRPC_OK, crpc_server_listen(server_, "127.0.0.1:0", &port));
    ASSERT_EQ(CRPC_OK, crpc_server_start(server_));
    ch_ = crpc_channel_new(("127.0.0.1:" + std::to_string(port)).c_str(),
                           nullptr);
    ASSERT_NE(nullptr, ch_);
    ctx_ = crpc_ctx_with_timeout(crpc_ctx_background(), 10000000000LL);
  }

  void TearDown() override {
    crpc_ctx_release(ctx_);
    crpc_channel_free(ch_);
    crpc_server_free(server_);
  }
};

TEST_F(CounterAsyncE2E, InlineUnaryThroughTheBlockingStub) {
  Num req = MakeNum(41);
  Num *resp = nullptr;
  crpc_status status{};
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_add(ch_, ctx_, nullptr, &req,
                                                  &resp, &status));
  EXPECT_EQ(42, resp->value);
  EXPECT_EQ(1, g_async_adds.load());
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
  crpc_status_clear(&status);
}

TEST_F(CounterAsyncE2E, ServerStreamingReactorThroughTheBlockingStub) {
  // Far more than the 64 KiB send buffer, so on_send_ready has to resume.
  const int64_t kCount = 20000;
  Num req = MakeNum(kCount);
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_count_start(ch_, ctx_, nullptr,
                                                          &req, &call));
  int64_t expect = 0;
  for (;;) {
    Num *n;
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_count_recv(call, &n));
    if (n == nullptr) break;
    EXPECT_EQ(expect++, n->value);
    protobuf_c_message_free_unpacked(&n->base, nullptr);
  }
  EXPECT_EQ(kCount, expect);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
  // on_done runs on the loop after the trailers went; shutdown waits for it.
  crpc_server_shutdown(server_, 1000000000LL);
  EXPECT_EQ(1, g_async_dones.load());
  EXPECT_EQ(0, g_async_cancels.load());
  EXPECT_GT(g_async_send_ready.load(), 0);
}

TEST_F(CounterAsyncE2E, ClientCancelReachesTheReactor) {
  crpc_ctx *call_ctx = crpc_ctx_with_cancel(ctx_);
  Num req = MakeNum(0);  // stream until cancelled
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_count_start(
                         ch_, call_ctx, nullptr, &req, &call));
  for (int i = 0; i < 3; i++) {
    Num *n;
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_count_recv(call, &n));
    ASSERT_NE(nullptr, n);
    protobuf_c_message_free_unpacked(&n->base, nullptr);
  }
  crpc_ctx_cancel(call_ctx, CRPC_CANCELLED, "test cancels");
  EXPECT_EQ(CRPC_CANCELLED, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
  crpc_ctx_release(call_ctx);
  crpc_server_shutdown(server_, 1000000000LL);
  EXPECT_EQ(1, g_async_cancels.load());
  EXPECT_EQ(1, g_async_dones.load());
}

TEST_F(CounterAsyncE2E, BlockingMethodsOfTheSameServiceStillWork) {
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK,
            crpc_codegen_e2e_counter_sum_start(ch_, ctx_, nullptr, &call));
  for (int i = 1; i <= 4; i++) {
    Num n = MakeNum(i);
    ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_sum_send(call, &n));
  }
  Num *sum = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_codegen_e2e_counter_sum_finish(call, &sum, nullptr));
  EXPECT_EQ(10, sum->value);
  protobuf_c_message_free_unpacked(&sum->base, nullptr);
  crpc_call_free(call);
}

TEST(CounterAsyncRegister, AMethodIsServedOneWayOnly) {
  crpc_server *server = crpc_server_new(nullptr);
  crpc_codegen_e2e_counter_handlers blocking{};
  blocking.add = Add;
  ASSERT_EQ(CRPC_OK,
            crpc_codegen_e2e_counter_register_handlers(server, &blocking));
  crpc_codegen_e2e_counter_async_handlers async{};
  async.add = AddAsync;
  EXPECT_EQ(CRPC_ALREADY_EXISTS,
            crpc_codegen_e2e_counter_register_async_handlers(server, &async));
  crpc_server_free(server);
}

// A proto the team did not write (gRPC's interop TestService), built with
// import_root, through the real runtime.
crpc_code UnaryCall(crpc_server_call *call, const crpc_ctx *,
                    const Grpc__Testing__SimpleRequest *req, void *) {
  Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
  payload.body.len = (size_t)req->response_size;
  std::string body(payload.body.len, 'x');
  payload.body.data = reinterpret_cast<uint8_t *>(&body[0]);
  Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
  resp.payload = &payload;
  return grpc_testing_test_service_unary_call_server_send(call, &resp);
}

TEST_F(CounterE2E, InteropTestServiceUnaryCall) {
  crpc_server *server = crpc_server_new(nullptr);
  grpc_testing_test_service_handlers h{};
  h.unary_call = UnaryCall;
  ASSERT_EQ(CRPC_OK, grpc_testing_test_service_register_handlers(server, &h));
  int port = 0;
  ASSERT_EQ(CRPC_OK, crpc_server_listen(server, "127.0.0.1:0", &port));
  ASSERT_EQ(CRPC_OK, crpc_server_start(server));
  crpc_channel *ch =
      crpc_channel_new(("127.0.0.1:" + std::to_string(port)).c_str(), nullptr);
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_size = 314;
  Grpc__Testing__SimpleResponse *resp = nullptr;
  crpc_status status{};
  ASSERT_EQ(CRPC_OK, grpc_testing_test_service_unary_call(
                         ch, ctx_, nullptr, &req, &resp, &status));
  EXPECT_EQ(314u, resp->payload->body.len);
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
  crpc_status_clear(&status);
  // EmptyCall has no handler here: UNIMPLEMENTED from the real server.
  Grpc__Testing__Empty e = GRPC__TESTING__EMPTY__INIT;
  Grpc__Testing__Empty *out = nullptr;
  EXPECT_EQ(CRPC_UNIMPLEMENTED, grpc_testing_test_service_empty_call(
                                    ch, ctx_, nullptr, &e, &out, nullptr));
  crpc_channel_free(ch);
  crpc_server_free(server);
}

}  // namespace
