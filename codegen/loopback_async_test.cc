// The generated async glue (<service>_async_handlers, inline unary
// handlers, typed reactors, <m>_send_async) end to end against the fake
// runtime of loopback_fake.h, called through the blocking client stubs.
// What is tested is the glue's side of the contract: typed requests that
// are freed after the callback, bad or missing requests turned into one
// on_cancel, state and on_done forwarding, registration rules.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "codegen/loopback_fake.h"
#include "codegen/testdata/helloworld.crpc.h"
#include "codegen/testdata/nopkg.crpc.h"
#include "codegen/testdata/route_guide.crpc.h"

namespace {

int g_ctx_token;
const crpc_ctx *const kCtx = reinterpret_cast<const crpc_ctx *>(&g_ctx_token);

// What the handlers saw, in order ("start", "msg:<x>", "end",
// "cancel:<code>:<message>", "done").
struct Log {
  const crpc_ctx *ctx = nullptr;
  std::vector<std::string> events;
};

crpc_code SayHelloAsync(crpc_server_call *call, const crpc_ctx *ctx,
                        const Helloworld__HelloRequest *req, void *user_data) {
  Log *log = static_cast<Log *>(user_data);
  log->ctx = ctx;
  log->events.push_back(std::string("msg:") + req->name);
  if (strcmp(req->name, "nobody") == 0) {
    return crpc_server_call_error(call, CRPC_NOT_FOUND, "no %s", req->name);
  }
  std::string text = std::string("Hello, ") + req->name;
  Helloworld__HelloReply reply = HELLOWORLD__HELLO_REPLY__INIT;
  reply.message = const_cast<char *>(text.c_str());
  return helloworld_greeter_say_hello_send_async(call, &reply);
}

// One reactor state for ListFeatures and RouteChat: the log it writes to.
struct CallState {
  Log *log;
};

void *Start(crpc_server_call *, const crpc_ctx *ctx, void *user_data) {
  Log *log = static_cast<Log *>(user_data);
  log->ctx = ctx;
  log->events.push_back("start");
  return new CallState{log};
}

void Cancel(crpc_server_call *call, const crpc_cause *cause, void *state) {
  static_cast<CallState *>(state)->log->events.push_back(
      "cancel:" + std::string(crpc_code_name(cause->code)) + ":" +
      cause->message);
  crpc_server_call_finish(call, cause->code, nullptr);
}

void Done(crpc_server_call *, void *state) {
  CallState *s = static_cast<CallState *>(state);
  s->log->events.push_back("done");
  delete s;
}

void ListMessage(crpc_server_call *call, const Routeguide__Rectangle *req,
                 void *state) {
  Log *log = static_cast<CallState *>(state)->log;
  if (req == nullptr) {
    log->events.push_back("end");
    crpc_server_call_finish(call, CRPC_OK, nullptr);
    return;
  }
  log->events.push_back("msg:rect");
  for (int i = req->lo->latitude; i < req->hi->latitude; i++) {
    Routeguide__Point where = ROUTEGUIDE__POINT__INIT;
    where.latitude = i;
    Routeguide__Feature f = ROUTEGUIDE__FEATURE__INIT;
    // Longer than the glue's stack buffer from the second one on, so both
    // of its packing paths run.
    std::string name(static_cast<size_t>(i - req->lo->latitude) * 600, 'f');
    f.name = const_cast<char *>(name.c_str());
    f.location = &where;
    ASSERT_EQ(CRPC_OK,
              routeguide_route_guide_list_features_send_async(call, &f));
  }
}

void ChatMessage(crpc_server_call *call, const Routeguide__RouteNote *note,
                 void *state) {
  Log *log = static_cast<CallState *>(state)->log;
  if (note == nullptr) {
    log->events.push_back("end");
    crpc_server_call_finish(call, CRPC_OK, nullptr);
    return;
  }
  log->events.push_back(std::string("msg:") + note->message);
  std::string echo = std::string("echo: ") + note->message;
  Routeguide__RouteNote out = ROUTEGUIDE__ROUTE_NOTE__INIT;
  out.message = const_cast<char *>(echo.c_str());
  ASSERT_EQ(CRPC_OK, routeguide_route_guide_route_chat_send_async(call, &out));
}

const routeguide_route_guide_list_features_reactor kList = {
    Start, ListMessage, nullptr, Cancel, Done};
const routeguide_route_guide_route_chat_reactor kChat = {
    Start, ChatMessage, nullptr, Cancel, Done};

std::string Pack(const ProtobufCMessage *m) {
  std::string s(protobuf_c_message_get_packed_size(m), '\0');
  protobuf_c_message_pack(m, reinterpret_cast<uint8_t *>(&s[0]));
  return s;
}

std::string Note(const char *text) {
  Routeguide__RouteNote n = ROUTEGUIDE__ROUTE_NOTE__INIT;
  n.message = const_cast<char *>(text);
  return Pack(&n.base);
}

const std::string kGarbage("\x0a\x05", 2);  // a field cut short

class LoopbackAsync : public ::testing::Test {
 protected:
  crpc_server server_;
  crpc_channel ch_{&server_};
  Log log_;
  helloworld_greeter_async_handlers greeter_{};
  routeguide_route_guide_async_handlers guide_{};

  void SetUp() override {
    greeter_.user_data = &log_;
    greeter_.say_hello = SayHelloAsync;
    ASSERT_EQ(CRPC_OK, helloworld_greeter_register_async_handlers(&server_,
                                                                  &greeter_));
    guide_.user_data = &log_;
    guide_.list_features = &kList;
    guide_.route_chat = &kChat;
    ASSERT_EQ(CRPC_OK, routeguide_route_guide_register_async_handlers(
                           &server_, &guide_));
  }

  // Runs a registered method on raw request bytes, as the runtime would.
  crpc_code Serve(const char *path, std::deque<std::string> in,
                  crpc_server_call *sc) {
    sc->in = std::move(in);
    return FakeServe(&server_, server_.methods.at(path), sc, kCtx);
  }

  std::vector<std::string> Chat(std::vector<const char *> notes,
                                crpc_code *code) {
    crpc_call *call = nullptr;
    EXPECT_EQ(CRPC_OK, routeguide_route_guide_route_chat_start(&ch_, kCtx,
                                                               nullptr, &call));
    for (const char *text : notes) {
      Routeguide__RouteNote n = ROUTEGUIDE__ROUTE_NOTE__INIT;
      n.message = const_cast<char *>(text);
      EXPECT_EQ(CRPC_OK, routeguide_route_guide_route_chat_send(call, &n));
    }
    EXPECT_EQ(CRPC_OK, crpc_call_close_send(call));
    std::vector<std::string> got;
    for (;;) {
      Routeguide__RouteNote *n;
      EXPECT_EQ(CRPC_OK, routeguide_route_guide_route_chat_recv(call, &n));
      if (n == nullptr) break;
      got.push_back(n->message);
      protobuf_c_message_free_unpacked(&n->base, nullptr);
    }
    *code = crpc_call_finish(call, nullptr);
    crpc_call_free(call);
    return got;
  }
};

TEST_F(LoopbackAsync, InlineUnaryGetsTheTypedRequestCtxAndUserData) {
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = const_cast<char *>("async");
  Helloworld__HelloReply *resp = nullptr;
  crpc_status status{};
  ASSERT_EQ(CRPC_OK, helloworld_greeter_say_hello(&ch_, kCtx, nullptr, &req,
                                                  &resp, &status));
  EXPECT_STREQ("Hello, async", resp->message);
  EXPECT_EQ(kCtx, log_.ctx);
  EXPECT_EQ((std::vector<std::string>{"msg:async"}), log_.events);
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
  crpc_status_clear(&status);
}

TEST_F(LoopbackAsync, InlineUnaryStatusAndMessageReachTheClient) {
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = const_cast<char *>("nobody");
  Helloworld__HelloReply *resp = nullptr;
  crpc_status status{};
  EXPECT_EQ(CRPC_NOT_FOUND, helloworld_greeter_say_hello(
                                &ch_, kCtx, nullptr, &req, &resp, &status));
  EXPECT_EQ(nullptr, resp);
  EXPECT_STREQ("no nobody", status.message);
  crpc_status_clear(&status);
}

TEST_F(LoopbackAsync, InlineUnaryUnparsableRequestIsInternalAndSkipsIt) {
  crpc_server_call sc;
  EXPECT_EQ(CRPC_INTERNAL,
            Serve("/helloworld.Greeter/SayHello", {kGarbage}, &sc));
  EXPECT_EQ("crpc: cannot parse request as helloworld.HelloRequest",
            sc.error);
  EXPECT_TRUE(log_.events.empty());
  EXPECT_TRUE(sc.out.empty());
}

TEST_F(LoopbackAsync, ServerStreamingReactorSeesOneRequestThenTheEnd) {
  Routeguide__Point lo = ROUTEGUIDE__POINT__INIT, hi = ROUTEGUIDE__POINT__INIT;
  lo.latitude = 10;
  hi.latitude = 13;
  Routeguide__Rectangle rect = ROUTEGUIDE__RECTANGLE__INIT;
  rect.lo = &lo;
  rect.hi = &hi;
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, routeguide_route_guide_list_features_start(
                         &ch_, kCtx, nullptr, &rect, &call));
  std::vector<int> got;
  std::vector<size_t> lengths;
  for (;;) {
    Routeguide__Feature *f;
    ASSERT_EQ(CRPC_OK, routeguide_route_guide_list_features_recv(call, &f));
    if (f == nullptr) break;
    got.push_back(f->location->latitude);
    lengths.push_back(strlen(f->name));
    protobuf_c_message_free_unpacked(&f->base, nullptr);
  }
  EXPECT_EQ((std::vector<int>{10, 11, 12}), got);
  EXPECT_EQ((std::vector<size_t>{0, 600, 1200}), lengths);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
  EXPECT_EQ(kCtx, log_.ctx);
  EXPECT_EQ((std::vector<std::string>{"start", "msg:rect", "end", "done"}),
            log_.events);
}

TEST_F(LoopbackAsync, MissingRequestOfAServerStreamIsOneInternalCancel) {
  crpc_server_call sc;
  EXPECT_EQ(CRPC_INTERNAL,
            Serve("/routeguide.RouteGuide/ListFeatures", {}, &sc));
  EXPECT_EQ("crpc: missing request message", sc.error);
  EXPECT_EQ(1, sc.finishes);
  EXPECT_EQ((std::vector<std::string>{
                "start", "cancel:INTERNAL:crpc: missing request message",
                "done"}),
            log_.events);
}

TEST_F(LoopbackAsync, UnparsableRequestOfAServerStreamIsOneInternalCancel) {
  crpc_server_call sc;
  EXPECT_EQ(CRPC_INTERNAL,
            Serve("/routeguide.RouteGuide/ListFeatures", {kGarbage}, &sc));
  EXPECT_EQ("crpc: cannot parse request as routeguide.Rectangle", sc.error);
  EXPECT_EQ((std::vector<std::string>{"start",
                                      "cancel:INTERNAL:crpc: cannot parse "
                                      "request as routeguide.Rectangle",
                                      "done"}),
            log_.events);
}

TEST_F(LoopbackAsync, BidiReactorEchoesEachTypedMessage) {
  crpc_code code;
  EXPECT_EQ((std::vector<std::string>{"echo: a", "echo: b"}),
            Chat({"a", "b"}, &code));
  EXPECT_EQ(CRPC_OK, code);
  EXPECT_EQ((std::vector<std::string>{"start", "msg:a", "msg:b", "end",
                                      "done"}),
            log_.events);
}

// After a bad message the reactor hears nothing more of its input, even if
// it keeps running: no further on_message and no second on_cancel when the
// runtime's own cancel comes.
void CancelButKeepGoing(crpc_server_call *, const crpc_cause *cause,
                        void *state) {
  static_cast<CallState *>(state)->log->events.push_back(
      std::string("cancel:") + crpc_code_name(cause->code));
}

TEST_F(LoopbackAsync, BadMessageMidStreamEndsTheReactorsInputOnce) {
  routeguide_route_guide_route_chat_reactor lenient = kChat;
  lenient.on_cancel = CancelButKeepGoing;
  guide_.route_chat = &lenient;
  crpc_server_call sc;
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED,
            Serve("/routeguide.RouteGuide/RouteChat",
                  {Note("a"), kGarbage, Note("c")}, &sc));
  EXPECT_EQ((std::vector<std::string>{"start", "msg:a", "cancel:INTERNAL"}),
            log_.events);
  EXPECT_EQ("crpc: cannot parse request as routeguide.RouteNote", sc.error);
  // The reactor finishes later (from a worker, say); on_done follows.
  crpc_server_call_finish(&sc, CRPC_INTERNAL, nullptr);
  server_.methods.at("/routeguide.RouteGuide/RouteChat")
      .reactor.on_done(&sc, sc.reactor_state);
  EXPECT_EQ("done", log_.events.back());
}

TEST_F(LoopbackAsync, RuntimeCancelReachesTheTypedReactor) {
  server_.cancel_after = 1;
  crpc_code code;
  EXPECT_EQ((std::vector<std::string>{"echo: a"}),
            Chat({"a", "b", "c"}, &code));
  EXPECT_EQ(CRPC_CANCELLED, code);
  EXPECT_EQ((std::vector<std::string>{"start", "msg:a",
                                      "cancel:CANCELLED:peer reset", "done"}),
            log_.events);
}

TEST_F(LoopbackAsync, CtxDoneBeforeStartStillStartsThenCancels) {
  server_.done_before_start = true;
  crpc_code code;
  EXPECT_TRUE(Chat({"a"}, &code).empty());
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, code);
  // The reactor's state exists for on_cancel and on_done.
  EXPECT_EQ((std::vector<std::string>{
                "start", "cancel:DEADLINE_EXCEEDED:done before start", "done"}),
            log_.events);
}

TEST(LoopbackAsyncRegister, NullEntriesAreSkippedAndKindsKept) {
  crpc_server server;
  routeguide_route_guide_async_handlers h{};
  h.route_chat = &kChat;
  ASSERT_EQ(CRPC_OK,
            routeguide_route_guide_register_async_handlers(&server, &h));
  ASSERT_EQ(1u, server.methods.size());
  const Method &m = server.methods.at("/routeguide.RouteGuide/RouteChat");
  EXPECT_EQ(CRPC_BIDI_STREAMING, m.kind);
  EXPECT_NE(nullptr, m.reactor.on_start);
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            routeguide_route_guide_register_async_handlers(&server, nullptr));
}

TEST(LoopbackAsyncRegister, AReactorWithoutOnStartOrOnCancelRegistersNothing) {
  for (int missing = 0; missing < 2; missing++) {
    crpc_server server;
    routeguide_route_guide_list_features_reactor bad = kList;
    if (missing == 0) bad.on_start = nullptr;
    if (missing == 1) bad.on_cancel = nullptr;
    routeguide_route_guide_async_handlers h{};
    h.get_feature = [](crpc_server_call *, const crpc_ctx *,
                       const Routeguide__Point *, void *) { return CRPC_OK; };
    h.list_features = &bad;
    EXPECT_EQ(CRPC_INVALID_ARGUMENT,
              routeguide_route_guide_register_async_handlers(&server, &h));
    EXPECT_TRUE(server.methods.empty());
  }
}

crpc_code GetFeatureBlocking(crpc_server_call *call, const crpc_ctx *,
                             const Routeguide__Point *, void *) {
  Routeguide__Feature f = ROUTEGUIDE__FEATURE__INIT;
  return routeguide_route_guide_get_feature_server_send(call, &f);
}

TEST(LoopbackAsyncRegister, OneServiceMixesBlockingAndAsyncButNotPerMethod) {
  crpc_server server;
  routeguide_route_guide_handlers blocking{};
  blocking.get_feature = GetFeatureBlocking;
  ASSERT_EQ(CRPC_OK,
            routeguide_route_guide_register_handlers(&server, &blocking));
  routeguide_route_guide_async_handlers async{};
  async.list_features = &kList;
  ASSERT_EQ(CRPC_OK,
            routeguide_route_guide_register_async_handlers(&server, &async));
  EXPECT_NE(nullptr,
            server.methods.at("/routeguide.RouteGuide/GetFeature").fn);
  EXPECT_NE(nullptr, server.methods.at("/routeguide.RouteGuide/ListFeatures")
                         .reactor.on_start);
  async.get_feature = [](crpc_server_call *, const crpc_ctx *,
                         const Routeguide__Point *, void *) { return CRPC_OK; };
  async.list_features = nullptr;
  EXPECT_EQ(CRPC_ALREADY_EXISTS,
            routeguide_route_guide_register_async_handlers(&server, &async));
}

// Keyword-named methods keep their trailing-underscore members here too.
crpc_code DeleteAsync(crpc_server_call *call, const crpc_ctx *, const Req *,
                      void *) {
  Resp r = RESP__INIT;
  return int_delete_send_async(call, &r);
}

TEST(LoopbackAsyncRegister, KeywordAndCollidingNamesWork) {
  crpc_server server;
  crpc_channel ch{&server};
  int_register_reactor reg = {
      Start, [](crpc_server_call *call, const Req *, void *) {
        crpc_server_call_finish(call, CRPC_OK, nullptr);
      },
      nullptr, Cancel, Done};
  Log log;
  int_async_handlers h{};
  h.user_data = &log;
  h.delete_ = DeleteAsync;
  h.register_ = &reg;
  ASSERT_EQ(CRPC_OK, int_register_async_handlers(&server, &h));
  EXPECT_EQ(CRPC_SERVER_STREAMING, server.methods.at("/int/register").kind);
  Req req = REQ__INIT;
  Resp *resp = nullptr;
  ASSERT_EQ(CRPC_OK, int_delete(&ch, kCtx, nullptr, &req, &resp, nullptr));
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, int_register_start(&ch, kCtx, nullptr, &req, &call));
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
  EXPECT_EQ((std::vector<std::string>{"start", "done"}), log.events);
}

}  // namespace
