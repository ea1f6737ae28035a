// Runs the generated stubs and blocking adapters end to end against the
// fake runtime of loopback_fake.h (loopback_async_test.cc does the async
// glue). This tests the generated code (typing, pack/unpack, ownership,
// error mapping, the NULL-ctx rule) without sockets; the real runtime has
// its own tests.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "codegen/loopback_fake.h"
#include "codegen/testdata/helloworld.crpc.h"
#include "codegen/testdata/multi.crpc.h"
#include "codegen/testdata/nopkg.crpc.h"
#include "codegen/testdata/route_guide.crpc.h"
#include "google/protobuf/descriptor.pb-c.h"

// ---- handlers ---------------------------------------------------------------

namespace {

int g_ctx_token;
const crpc_ctx *const kCtx = reinterpret_cast<const crpc_ctx *>(&g_ctx_token);

struct Seen {
  const crpc_ctx *ctx = nullptr;
  std::string last;
};

crpc_code SayHello(crpc_server_call *call, const crpc_ctx *ctx,
                   const Helloworld__HelloRequest *req, void *user_data) {
  static_cast<Seen *>(user_data)->ctx = ctx;
  if (strcmp(req->name, "nobody") == 0) {
    return crpc_server_call_error(call, CRPC_NOT_FOUND, "no %s", req->name);
  }
  std::string text = std::string("Hello, ") + req->name;
  Helloworld__HelloReply reply = HELLOWORLD__HELLO_REPLY__INIT;
  reply.message = const_cast<char *>(text.c_str());
  return helloworld_greeter_say_hello_server_send(call, &reply);
}

crpc_code ListFeatures(crpc_server_call *call, const crpc_ctx *,
                       const Routeguide__Rectangle *req, void *) {
  for (int i = req->lo->latitude; i < req->hi->latitude; i++) {
    Routeguide__Point where = ROUTEGUIDE__POINT__INIT;
    where.latitude = i;
    Routeguide__Feature f = ROUTEGUIDE__FEATURE__INIT;
    f.name = const_cast<char *>("feature");
    f.location = &where;
    crpc_code code = routeguide_route_guide_list_features_server_send(call, &f);
    if (code != CRPC_OK) return code;
  }
  return CRPC_OK;
}

crpc_code RecordRoute(crpc_server_call *call, const crpc_ctx *, void *) {
  Routeguide__RouteSummary summary = ROUTEGUIDE__ROUTE_SUMMARY__INIT;
  for (;;) {
    Routeguide__Point *p;
    crpc_code code = routeguide_route_guide_record_route_server_recv(call, &p);
    if (code != CRPC_OK) return code;
    if (p == nullptr) break;
    summary.point_count++;
    summary.distance += p->latitude;
    protobuf_c_message_free_unpacked(&p->base, nullptr);
  }
  return routeguide_route_guide_record_route_server_send(call, &summary);
}

crpc_code RouteChat(crpc_server_call *call, const crpc_ctx *, void *) {
  for (;;) {
    Routeguide__RouteNote *note;
    crpc_code code = routeguide_route_guide_route_chat_server_recv(call, &note);
    if (code != CRPC_OK || note == nullptr) return code;
    std::string echo = std::string("echo: ") + note->message;
    Routeguide__RouteNote out = ROUTEGUIDE__ROUTE_NOTE__INIT;
    out.message = const_cast<char *>(echo.c_str());
    code = routeguide_route_guide_route_chat_server_send(call, &out);
    protobuf_c_message_free_unpacked(&note->base, nullptr);
    if (code != CRPC_OK) return code;
  }
}

class Loopback : public ::testing::Test {
 protected:
  crpc_server server_;
  crpc_channel ch_{&server_};
  Seen seen_;
  helloworld_greeter_handlers greeter_{};
  routeguide_route_guide_handlers guide_{};

  void SetUp() override {
    greeter_.user_data = &seen_;
    greeter_.say_hello = SayHello;
    ASSERT_EQ(CRPC_OK, helloworld_greeter_register_handlers(&server_, &greeter_));
    guide_.list_features = ListFeatures;
    guide_.record_route = RecordRoute;
    guide_.route_chat = RouteChat;
    ASSERT_EQ(CRPC_OK,
              routeguide_route_guide_register_handlers(&server_, &guide_));
  }

  // Runs a registered adapter on raw request bytes, as the runtime would.
  crpc_code Serve(const char *path, std::deque<std::string> in,
                  std::string *error) {
    crpc_server_call sc;
    sc.in = std::move(in);
    crpc_code code =
        FakeServe(&server_, server_.methods.at(path), &sc, kCtx);
    *error = sc.error;
    return code;
  }
};

TEST(Descriptors, PathsAndKindsMatchTheProto) {
  EXPECT_STREQ("/helloworld.Greeter/SayHello",
               helloworld_greeter_say_hello_method.path);
  EXPECT_EQ(CRPC_UNARY, helloworld_greeter_say_hello_method.kind);
  EXPECT_EQ(CRPC_SERVER_STREAMING,
            routeguide_route_guide_list_features_method.kind);
  EXPECT_EQ(CRPC_CLIENT_STREAMING,
            routeguide_route_guide_record_route_method.kind);
  EXPECT_EQ(CRPC_BIDI_STREAMING, routeguide_route_guide_route_chat_method.kind);
  EXPECT_STREQ("/crpc.test.multi_pkg.ItemStore/Seek",
               crpc_test_multi_pkg_item_store_seek_method.path);
  EXPECT_STREQ("/int/Get", int_Get_method.path);
  EXPECT_STREQ("/int/get", int_get_method.path);
}

TEST_F(Loopback, UnaryRoundTripPassesTheCtxToTheHandler) {
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = const_cast<char *>("crpc");
  Helloworld__HelloReply *resp = nullptr;
  crpc_status status{};
  ASSERT_EQ(CRPC_OK, helloworld_greeter_say_hello(&ch_, kCtx, nullptr, &req,
                                                  &resp, &status));
  ASSERT_NE(nullptr, resp);
  EXPECT_STREQ("Hello, crpc", resp->message);
  EXPECT_EQ(kCtx, seen_.ctx);
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
  crpc_status_clear(&status);
}

TEST_F(Loopback, UnaryHandlerErrorReachesTheClient) {
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = const_cast<char *>("nobody");
  Helloworld__HelloReply *resp = nullptr;
  crpc_status status{};
  EXPECT_EQ(CRPC_NOT_FOUND, helloworld_greeter_say_hello(
                                &ch_, kCtx, nullptr, &req, &resp, &status));
  EXPECT_EQ(nullptr, resp);
  EXPECT_EQ(CRPC_NOT_FOUND, status.code);
  EXPECT_STREQ("no nobody", status.message);
  crpc_status_clear(&status);
}

TEST_F(Loopback, NullCtxAbortsWithAMessage) {
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  Helloworld__HelloReply *resp = nullptr;
  EXPECT_DEATH(helloworld_greeter_say_hello(&ch_, nullptr, nullptr, &req,
                                            &resp, nullptr),
               "helloworld_greeter_say_hello: ctx is NULL");
  crpc_call *call = nullptr;
  EXPECT_DEATH(routeguide_route_guide_route_chat_start(&ch_, nullptr, nullptr,
                                                       &call),
               "routeguide_route_guide_route_chat_start: ctx is NULL");
  Routeguide__Rectangle rect = ROUTEGUIDE__RECTANGLE__INIT;
  EXPECT_DEATH(routeguide_route_guide_list_features_start(
                   &ch_, nullptr, nullptr, &rect, &call),
               "ctx is NULL");
}

TEST_F(Loopback, ServerStreamingDeliversEveryMessageThenEnd) {
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
  for (;;) {
    Routeguide__Feature *f;
    ASSERT_EQ(CRPC_OK, routeguide_route_guide_list_features_recv(call, &f));
    if (f == nullptr) break;
    got.push_back(f->location->latitude);
    protobuf_c_message_free_unpacked(&f->base, nullptr);
  }
  EXPECT_EQ((std::vector<int>{10, 11, 12}), got);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
}

TEST_F(Loopback, ClientStreamingFinishReturnsTheSingleReply) {
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, routeguide_route_guide_record_route_start(&ch_, kCtx,
                                                               nullptr, &call));
  for (int i = 1; i <= 4; i++) {
    Routeguide__Point p = ROUTEGUIDE__POINT__INIT;
    p.latitude = i;
    ASSERT_EQ(CRPC_OK, routeguide_route_guide_record_route_send(call, &p));
  }
  Routeguide__RouteSummary *summary = nullptr;
  crpc_status status{};
  ASSERT_EQ(CRPC_OK,
            routeguide_route_guide_record_route_finish(call, &summary, &status));
  EXPECT_EQ(4, summary->point_count);
  EXPECT_EQ(10, summary->distance);
  protobuf_c_message_free_unpacked(&summary->base, nullptr);
  crpc_status_clear(&status);
  crpc_call_free(call);
}

TEST_F(Loopback, BidiStreamingEchoes) {
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, routeguide_route_guide_route_chat_start(&ch_, kCtx,
                                                             nullptr, &call));
  for (const char *text : {"a", "b"}) {
    Routeguide__RouteNote n = ROUTEGUIDE__ROUTE_NOTE__INIT;
    n.message = const_cast<char *>(text);
    ASSERT_EQ(CRPC_OK, routeguide_route_guide_route_chat_send(call, &n));
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call));
  std::vector<std::string> got;
  for (;;) {
    Routeguide__RouteNote *n;
    ASSERT_EQ(CRPC_OK, routeguide_route_guide_route_chat_recv(call, &n));
    if (n == nullptr) break;
    got.push_back(n->message);
    protobuf_c_message_free_unpacked(&n->base, nullptr);
  }
  EXPECT_EQ((std::vector<std::string>{"echo: a", "echo: b"}), got);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
}

TEST_F(Loopback, UnparsableRequestIsInternalAndSkipsTheHandler) {
  std::string error;
  seen_.ctx = nullptr;
  EXPECT_EQ(CRPC_INTERNAL, Serve("/helloworld.Greeter/SayHello",
                                 {std::string("\xff\xff\xff", 3)}, &error));
  EXPECT_EQ("crpc: cannot parse request as helloworld.HelloRequest", error);
  EXPECT_EQ(nullptr, seen_.ctx);
  EXPECT_EQ(CRPC_INTERNAL,
            Serve("/routeguide.RouteGuide/RecordRoute",
                  {std::string("\x0a\x05", 2)}, &error));
  EXPECT_EQ("crpc: cannot parse request as routeguide.Point", error);
}

TEST_F(Loopback, MissingUnaryRequestIsInternal) {
  std::string error;
  EXPECT_EQ(CRPC_INTERNAL, Serve("/helloworld.Greeter/SayHello", {}, &error));
  EXPECT_EQ("crpc: missing request message", error);
}

crpc_code SendGarbage(crpc_server_call *call, const crpc_ctx *, void *) {
  return crpc_server_call_send(call, "\xff\xff", 2);
}

TEST(LoopbackRaw, UnparsableResponseIsInternalWithAStatusMessage) {
  crpc_server server;
  crpc_channel ch{&server};
  ASSERT_EQ(CRPC_OK, crpc_server_add_method(&server,
                                            "/helloworld.Greeter/SayHello",
                                            CRPC_UNARY, SendGarbage, nullptr));
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  Helloworld__HelloReply *resp = nullptr;
  crpc_status status{};
  EXPECT_EQ(CRPC_INTERNAL, helloworld_greeter_say_hello(&ch, kCtx, nullptr,
                                                        &req, &resp, &status));
  EXPECT_EQ(nullptr, resp);
  EXPECT_EQ(CRPC_INTERNAL, status.code);
  EXPECT_STREQ("crpc: cannot parse response as helloworld.HelloReply",
               status.message);
  crpc_status_clear(&status);
}

// What the typed async stub hands its done callback.
struct AsyncSeen {
  int calls = 0;
  crpc_code code = CRPC_UNKNOWN;
  std::string message, reply;
};

void OnSayHello(crpc_code code, Helloworld__HelloReply *resp,
                const crpc_status *status, void *ud) {
  auto *s = static_cast<AsyncSeen *>(ud);
  s->calls++;
  s->code = code;
  s->message = status->message;
  if (resp != nullptr) {
    s->reply = resp->message;
    protobuf_c_message_free_unpacked(&resp->base, nullptr);
  }
}

TEST_F(Loopback, UnaryAsyncStubDeliversTheTypedReply) {
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = const_cast<char *>("crpc");
  AsyncSeen seen;
  ASSERT_EQ(CRPC_OK, helloworld_greeter_say_hello_async(
                         &ch_, kCtx, nullptr, &req, OnSayHello, &seen));
  EXPECT_EQ(1, seen.calls);
  EXPECT_EQ(CRPC_OK, seen.code);
  EXPECT_EQ("Hello, crpc", seen.reply);
}

TEST(LoopbackRaw, UnaryAsyncStubUnparsableResponseIsInternal) {
  crpc_server server;
  crpc_channel ch{&server};
  ASSERT_EQ(CRPC_OK, crpc_server_add_method(&server,
                                            "/helloworld.Greeter/SayHello",
                                            CRPC_UNARY, SendGarbage, nullptr));
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  AsyncSeen seen;
  ASSERT_EQ(CRPC_OK, helloworld_greeter_say_hello_async(
                         &ch, kCtx, nullptr, &req, OnSayHello, &seen));
  EXPECT_EQ(1, seen.calls);
  EXPECT_EQ(CRPC_INTERNAL, seen.code);
  EXPECT_EQ("crpc: cannot parse the response", seen.message);
  EXPECT_TRUE(seen.reply.empty());
}

TEST(LoopbackRaw, RegisterSkipsNullHandlersAndRejectsNull) {
  crpc_server server;
  routeguide_route_guide_handlers h{};
  h.route_chat = RouteChat;
  ASSERT_EQ(CRPC_OK, routeguide_route_guide_register_handlers(&server, &h));
  ASSERT_EQ(1u, server.methods.size());
  EXPECT_EQ(CRPC_BIDI_STREAMING,
            server.methods.at("/routeguide.RouteGuide/RouteChat").kind);
  EXPECT_EQ(CRPC_ALREADY_EXISTS,
            routeguide_route_guide_register_handlers(&server, &h));
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            routeguide_route_guide_register_handlers(&server, nullptr));
}

crpc_code GetUpper(crpc_server_call *call, const crpc_ctx *, const Req *,
                   void *user_data) {
  static_cast<Seen *>(user_data)->last = "Get";
  Resp r = RESP__INIT;
  return int_Get_server_send(call, &r);
}

crpc_code GetLower(crpc_server_call *call, const crpc_ctx *, const Req *,
                   void *user_data) {
  static_cast<Seen *>(user_data)->last = "get";
  Resp r = RESP__INIT;
  return int_get_server_send(call, &r);
}

TEST(LoopbackRaw, MethodsThatCollideWhenLoweredStayDistinct) {
  crpc_server server;
  crpc_channel ch{&server};
  Seen seen;
  int_handlers h{};
  h.user_data = &seen;
  h.Get = GetUpper;
  h.get = GetLower;
  ASSERT_EQ(CRPC_OK, int_register_handlers(&server, &h));
  Req req = REQ__INIT;
  Resp *resp = nullptr;
  ASSERT_EQ(CRPC_OK, int_Get(&ch, kCtx, nullptr, &req, &resp, nullptr));
  EXPECT_EQ("Get", seen.last);
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
  ASSERT_EQ(CRPC_OK, int_get(&ch, kCtx, nullptr, &req, &resp, nullptr));
  EXPECT_EQ("get", seen.last);
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
}

crpc_code Seek(crpc_server_call *call, const crpc_ctx *,
               const Crpc__Test__CommonTypes__PageToken__HTTPCursor *req,
               void *) {
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = req->offset * 2;
  return crpc_test_multi_pkg_item_store_seek_server_send(call, &ts);
}

TEST(LoopbackRaw, WellKnownAndNestedTypesFromOtherPackages) {
  crpc_server server;
  crpc_channel ch{&server};
  crpc_test_multi_pkg_item_store_handlers h{};
  h.seek = Seek;
  ASSERT_EQ(CRPC_OK, crpc_test_multi_pkg_item_store_register_handlers(&server,
                                                                      &h));
  Crpc__Test__CommonTypes__PageToken__HTTPCursor cur =
      CRPC__TEST__COMMON_TYPES__PAGE_TOKEN__HTTPCURSOR__INIT;
  cur.offset = 21;
  Google__Protobuf__Timestamp *ts = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_test_multi_pkg_item_store_seek(&ch, kCtx, nullptr,
                                                         &cur, &ts, nullptr));
  EXPECT_EQ(42, ts->seconds);
  protobuf_c_message_free_unpacked(&ts->base, nullptr);
  // Ping has no handler: not registered, so the runtime says UNIMPLEMENTED.
  Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;
  Google__Protobuf__Empty *out = nullptr;
  EXPECT_EQ(CRPC_UNIMPLEMENTED, crpc_test_multi_pkg_item_store_ping(
                                    &ch, kCtx, nullptr, &e, &out, nullptr));
}

// Registering a service adds its file's descriptor, imports first: the
// crpc-generated import by reference (common.proto), the well-known ones
// from the static copies multi.crpc.c embeds. Each is a FileDescriptorProto
// as protoc saw it, without source_code_info.
TEST(LoopbackRaw, RegisteringAServiceAddsItsFileAndImports) {
  crpc_server server;
  crpc_test_multi_pkg_item_store_handlers h{};
  h.seek = Seek;
  ASSERT_EQ(CRPC_OK, crpc_test_multi_pkg_item_store_register_handlers(&server,
                                                                      &h));
  std::vector<std::string> names;
  for (const crpc_file_descriptor *f : server.files) names.push_back(f->name);
  EXPECT_EQ((std::vector<std::string>{"codegen/testdata/common/common.proto",
                                      "google/protobuf/empty.proto",
                                      "google/protobuf/timestamp.proto",
                                      "codegen/testdata/multi.proto"}),
            names);
  for (const crpc_file_descriptor *f : server.files) {
    Google__Protobuf__FileDescriptorProto *fp =
        google__protobuf__file_descriptor_proto__unpack(nullptr, f->len,
                                                        f->data);
    ASSERT_NE(fp, nullptr) << f->name;
    EXPECT_STREQ(f->name, fp->name);
    EXPECT_EQ(nullptr, fp->source_code_info) << f->name;
    EXPECT_EQ(fp->n_dependency, f->n_deps) << f->name;
    for (size_t i = 0; i < f->n_deps && i < fp->n_dependency; i++) {
      EXPECT_STREQ(fp->dependency[i], f->deps[i]->name);
    }
    if (std::string(f->name) == "codegen/testdata/multi.proto") {
      ASSERT_EQ(2u, fp->n_service);  // ItemStore and admin_service
      EXPECT_STREQ("ItemStore", fp->service[0]->name);
      EXPECT_EQ(3u, fp->service[0]->n_method);
    }
    protobuf_c_message_free_unpacked(&fp->base, nullptr);
  }
  // The async registration adds the same file, once.
  crpc_test_multi_pkg_item_store_async_handlers ah{};
  EXPECT_EQ(CRPC_OK,
            crpc_test_multi_pkg_item_store_register_async_handlers(&server, &ah));
  EXPECT_EQ(4u, server.files.size());
}

}  // namespace
