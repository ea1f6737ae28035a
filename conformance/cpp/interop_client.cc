// conformance/cpp/interop_client.cc - a gRPC interop client on gRPC C++
// (Debian's libgrpc++), a peer for crpc's interop server.
//
//   interop_client_cpp --server_host=HOST --server_port=PORT --test_case=CASE|all
//                      [--use_tls=false] [--server_host_override=NAME]
//                      [--use_test_ca=false] [--tls_ca_file=PEM]
//
// Prints "PASS <case>" / "FAIL <case>: <check>" per case; exits 1 on failure.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <vector>

#include "conformance/cpp/interop_peer.h"
#include "grpc/testing/test.grpc.pb.h"

using grpc::ClientContext;
using grpc::Status;
using grpc::StatusCode;
namespace gt = grpc::testing;

namespace {

// A case returns "" on success, else the failed check.
using Stub = gt::TestService::Stub;
using Result = std::string;

void Deadline(ClientContext* ctx, std::chrono::microseconds d = std::chrono::seconds(30)) {
  ctx->set_deadline(std::chrono::system_clock::now() + d);
}

std::string Describe(const Status& s) {
  std::ostringstream o;
  o << "code " << s.error_code() << " \"" << s.error_message() << "\"";
  return o.str();
}

std::string CheckBody(const gt::Payload& p, size_t size, const std::string& what) {
  if (p.body().size() != size) {
    return what + ": body is " + std::to_string(p.body().size()) + " bytes, want " +
           std::to_string(size);
  }
  if (p.body() != std::string(size, '\0')) return what + ": body is not zeros";
  return "";
}

gt::SimpleRequest LargeRequest() {
  gt::SimpleRequest req;
  req.set_response_size(314159);
  req.mutable_payload()->set_body(std::string(271828, '\0'));
  return req;
}

Result EmptyUnary(Stub* stub) {
  ClientContext ctx;
  Deadline(&ctx);
  gt::Empty resp;
  Status s = stub->EmptyCall(&ctx, gt::Empty(), &resp);
  return s.ok() ? "" : "EmptyCall: " + Describe(s);
}

Result LargeUnary(Stub* stub) {
  ClientContext ctx;
  Deadline(&ctx);
  gt::SimpleResponse resp;
  Status s = stub->UnaryCall(&ctx, LargeRequest(), &resp);
  return s.ok() ? CheckBody(resp.payload(), 314159, "UnaryCall") : "UnaryCall: " + Describe(s);
}

Result ClientCompressedUnary(Stub* stub) {
  for (int step = 0; step < 3; step++) {
    // 0: probe (uncompressed, expect true); 1: compressed; 2: uncompressed.
    ClientContext ctx;
    Deadline(&ctx);
    gt::SimpleRequest req = LargeRequest();
    req.mutable_expect_compressed()->set_value(step < 2);
    if (step == 1) ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    gt::SimpleResponse resp;
    Status s = stub->UnaryCall(&ctx, req, &resp);
    std::string what = step == 0 ? "probe" : step == 1 ? "compressed request" : "uncompressed request";
    if (step == 0) {
      if (s.error_code() != StatusCode::INVALID_ARGUMENT) {
        return what + ": " + Describe(s) + ", want INVALID_ARGUMENT";
      }
      continue;
    }
    if (!s.ok()) return what + ": " + Describe(s);
    Result r = CheckBody(resp.payload(), 314159, what);
    if (!r.empty()) return r;
  }
  return "";
}

Result ServerCompressedUnary(Stub* stub) {
  for (bool compressed : {true, false}) {
    ClientContext ctx;
    Deadline(&ctx);
    gt::SimpleRequest req = LargeRequest();
    req.mutable_response_compressed()->set_value(compressed);
    gt::SimpleResponse resp;
    Status s = stub->UnaryCall(&ctx, req, &resp);
    std::string what = compressed ? "response_compressed=true" : "response_compressed=false";
    if (!s.ok()) return what + ": " + Describe(s);
    if (LastMessageCompressed(ctx.c_call()) != compressed) {
      return what + ": response compressed flag is " +
             (compressed ? "not set" : "set");
    }
    Result r = CheckBody(resp.payload(), 314159, what);
    if (!r.empty()) return r;
  }
  return "";
}

Result InputStream(Stub* stub, const std::vector<size_t>& sizes, int want) {
  ClientContext ctx;
  Deadline(&ctx);
  gt::StreamingInputCallResponse resp;
  auto w = stub->StreamingInputCall(&ctx, &resp);
  for (size_t n : sizes) {
    gt::StreamingInputCallRequest req;
    req.mutable_payload()->set_body(std::string(n, '\0'));
    if (!w->Write(req)) break;
  }
  w->WritesDone();
  Status s = w->Finish();
  if (!s.ok()) return "StreamingInputCall: " + Describe(s);
  if (resp.aggregated_payload_size() != want) {
    return "aggregated_payload_size " + std::to_string(resp.aggregated_payload_size()) +
           ", want " + std::to_string(want);
  }
  return "";
}

Result ClientStreaming(Stub* stub) { return InputStream(stub, {27182, 8, 1828, 45904}, 74922); }

Result ClientCompressedStreaming(Stub* stub) {
  {
    ClientContext ctx;
    Deadline(&ctx);
    gt::StreamingInputCallResponse resp;
    auto w = stub->StreamingInputCall(&ctx, &resp);
    gt::StreamingInputCallRequest req;
    req.mutable_expect_compressed()->set_value(true);
    req.mutable_payload()->set_body(std::string(27182, '\0'));
    w->Write(req);
    w->WritesDone();
    Status s = w->Finish();
    if (s.error_code() != StatusCode::INVALID_ARGUMENT) {
      return "probe: " + Describe(s) + ", want INVALID_ARGUMENT";
    }
  }
  ClientContext ctx;
  Deadline(&ctx);
  ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  gt::StreamingInputCallResponse resp;
  auto w = stub->StreamingInputCall(&ctx, &resp);
  gt::StreamingInputCallRequest req;
  req.mutable_expect_compressed()->set_value(true);
  req.mutable_payload()->set_body(std::string(27182, '\0'));
  bool ok = w->Write(req);
  req.mutable_expect_compressed()->set_value(false);
  req.mutable_payload()->set_body(std::string(45904, '\0'));
  if (ok) w->Write(req, grpc::WriteOptions().set_no_compression());
  w->WritesDone();
  Status s = w->Finish();
  if (!s.ok()) return "compressed stream: " + Describe(s);
  if (resp.aggregated_payload_size() != 73086) {
    return "aggregated_payload_size " + std::to_string(resp.aggregated_payload_size()) +
           ", want 73086";
  }
  return "";
}

Result OutputStream(Stub* stub, const std::vector<int>& sizes, const std::vector<int>& compressed) {
  ClientContext ctx;
  Deadline(&ctx);
  gt::StreamingOutputCallRequest req;
  for (size_t i = 0; i < sizes.size(); i++) {
    auto* p = req.add_response_parameters();
    p->set_size(sizes[i]);
    if (!compressed.empty()) p->mutable_compressed()->set_value(compressed[i] != 0);
  }
  auto r = stub->StreamingOutputCall(&ctx, req);
  gt::StreamingOutputCallResponse resp;
  size_t i = 0;
  for (; r->Read(&resp); i++) {
    std::string what = "response " + std::to_string(i + 1);
    if (i >= sizes.size()) return "more responses than expected";
    if (!compressed.empty() && LastMessageCompressed(ctx.c_call()) != (compressed[i] != 0)) {
      return what + ": compressed flag is " + (compressed[i] ? "not set" : "set");
    }
    Result res = CheckBody(resp.payload(), sizes[i], what);
    if (!res.empty()) return res;
  }
  Status s = r->Finish();
  if (!s.ok()) return "StreamingOutputCall: " + Describe(s);
  if (i != sizes.size()) return std::to_string(i) + " responses, want " + std::to_string(sizes.size());
  return "";
}

Result ServerStreaming(Stub* stub) { return OutputStream(stub, {31415, 9, 2653, 58979}, {}); }
Result ServerCompressedStreaming(Stub* stub) { return OutputStream(stub, {31415, 92653}, {1, 0}); }

gt::StreamingOutputCallRequest DuplexRequest(int resp_size, size_t req_size) {
  gt::StreamingOutputCallRequest req;
  req.add_response_parameters()->set_size(resp_size);
  req.mutable_payload()->set_body(std::string(req_size, '\0'));
  return req;
}

Result PingPong(Stub* stub) {
  ClientContext ctx;
  Deadline(&ctx);
  auto rw = stub->FullDuplexCall(&ctx);
  const int resp_sizes[] = {31415, 9, 2653, 58979};
  const size_t req_sizes[] = {27182, 8, 1828, 45904};
  gt::StreamingOutputCallResponse resp;
  for (int i = 0; i < 4; i++) {
    if (!rw->Write(DuplexRequest(resp_sizes[i], req_sizes[i]))) return "write " + std::to_string(i + 1);
    if (!rw->Read(&resp)) return "no response " + std::to_string(i + 1) + ": " + Describe(rw->Finish());
    Result r = CheckBody(resp.payload(), resp_sizes[i], "response " + std::to_string(i + 1));
    if (!r.empty()) return r;
  }
  rw->WritesDone();
  if (rw->Read(&resp)) return "more than four responses";
  Status s = rw->Finish();
  return s.ok() ? "" : "FullDuplexCall: " + Describe(s);
}

Result EmptyStream(Stub* stub) {
  ClientContext ctx;
  Deadline(&ctx);
  auto rw = stub->FullDuplexCall(&ctx);
  rw->WritesDone();
  gt::StreamingOutputCallResponse resp;
  if (rw->Read(&resp)) return "got a response, want none";
  Status s = rw->Finish();
  return s.ok() ? "" : "FullDuplexCall: " + Describe(s);
}

Result TimeoutOnSleepingServer(Stub* stub) {
  ClientContext ctx;
  Deadline(&ctx, std::chrono::milliseconds(1));
  auto rw = stub->FullDuplexCall(&ctx);
  gt::StreamingOutputCallRequest req;
  req.mutable_payload()->set_body(std::string(27182, '\0'));
  rw->Write(req);
  gt::StreamingOutputCallResponse resp;
  while (rw->Read(&resp)) {
  }
  Status s = rw->Finish();
  return s.error_code() == StatusCode::DEADLINE_EXCEEDED ? ""
                                                         : Describe(s) + ", want DEADLINE_EXCEEDED";
}

Result CancelAfterBegin(Stub* stub) {
  ClientContext ctx;
  Deadline(&ctx);
  gt::StreamingInputCallResponse resp;
  auto w = stub->StreamingInputCall(&ctx, &resp);
  ctx.TryCancel();
  Status s = w->Finish();
  return s.error_code() == StatusCode::CANCELLED ? "" : Describe(s) + ", want CANCELLED";
}

Result CancelAfterFirstResponse(Stub* stub) {
  ClientContext ctx;
  Deadline(&ctx);
  auto rw = stub->FullDuplexCall(&ctx);
  gt::StreamingOutputCallResponse resp;
  if (!rw->Write(DuplexRequest(31415, 27182)) || !rw->Read(&resp)) {
    return "first response: " + Describe(rw->Finish());
  }
  ctx.TryCancel();
  Status s = rw->Finish();
  return s.error_code() == StatusCode::CANCELLED ? "" : Describe(s) + ", want CANCELLED";
}

Result CheckEcho(const std::multimap<grpc::string_ref, grpc::string_ref>& md, const char* key,
                 const std::string& want, const std::string& where) {
  auto it = md.find(key);
  if (it == md.end()) return where + ": no " + key;
  if (std::string(it->second.data(), it->second.size()) != want) return where + ": wrong " + key;
  return "";
}

Result CustomMetadata(Stub* stub) {
  const std::string initial = "test_initial_metadata_value", trailing = "\xab\xab\xab";
  {
    ClientContext ctx;
    Deadline(&ctx);
    ctx.AddMetadata(kEchoInitial, initial);
    ctx.AddMetadata(kEchoTrailing, trailing);
    gt::SimpleResponse resp;
    Status s = stub->UnaryCall(&ctx, LargeRequest(), &resp);
    if (!s.ok()) return "UnaryCall: " + Describe(s);
    Result r = CheckEcho(ctx.GetServerInitialMetadata(), kEchoInitial, initial, "UnaryCall initial");
    if (r.empty()) r = CheckEcho(ctx.GetServerTrailingMetadata(), kEchoTrailing, trailing, "UnaryCall trailing");
    if (!r.empty()) return r;
  }
  ClientContext ctx;
  Deadline(&ctx);
  ctx.AddMetadata(kEchoInitial, initial);
  ctx.AddMetadata(kEchoTrailing, trailing);
  auto rw = stub->FullDuplexCall(&ctx);
  rw->Write(DuplexRequest(314159, 271828));
  rw->WritesDone();
  gt::StreamingOutputCallResponse resp;
  while (rw->Read(&resp)) {
  }
  Status s = rw->Finish();
  if (!s.ok()) return "FullDuplexCall: " + Describe(s);
  Result r = CheckEcho(ctx.GetServerInitialMetadata(), kEchoInitial, initial, "FullDuplexCall initial");
  if (r.empty()) r = CheckEcho(ctx.GetServerTrailingMetadata(), kEchoTrailing, trailing, "FullDuplexCall trailing");
  return r;
}

Result UnaryEchoStatus(Stub* stub, const std::string& msg) {
  ClientContext ctx;
  Deadline(&ctx);
  gt::SimpleRequest req;
  req.mutable_response_status()->set_code(2);
  req.mutable_response_status()->set_message(msg);
  gt::SimpleResponse resp;
  Status s = stub->UnaryCall(&ctx, req, &resp);
  if (s.error_code() != StatusCode::UNKNOWN || s.error_message() != msg) {
    return "UnaryCall: " + Describe(s) + ", want code 2 with the sent message";
  }
  return "";
}

Result StatusCodeAndMessage(Stub* stub) {
  const std::string msg = "test status message";
  Result r = UnaryEchoStatus(stub, msg);
  if (!r.empty()) return r;
  ClientContext ctx;
  Deadline(&ctx);
  auto rw = stub->FullDuplexCall(&ctx);
  gt::StreamingOutputCallRequest req;
  req.mutable_response_status()->set_code(2);
  req.mutable_response_status()->set_message(msg);
  rw->Write(req);
  rw->WritesDone();
  Status s = rw->Finish();
  if (s.error_code() != StatusCode::UNKNOWN || s.error_message() != msg) {
    return "FullDuplexCall: " + Describe(s) + ", want code 2 with the sent message";
  }
  return "";
}

Result SpecialStatusMessage(Stub* stub) {
  return UnaryEchoStatus(stub,
                         "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
                         "\xf0\x9f\x98\x88\t\n");
}

std::shared_ptr<grpc::Channel> g_channel;

Result UnimplementedMethod(Stub* stub) {
  ClientContext ctx;
  Deadline(&ctx);
  gt::Empty resp;
  Status s = stub->UnimplementedCall(&ctx, gt::Empty(), &resp);
  return s.error_code() == StatusCode::UNIMPLEMENTED ? "" : Describe(s) + ", want UNIMPLEMENTED";
}

Result UnimplementedService(Stub*) {
  auto stub = gt::UnimplementedService::NewStub(g_channel);
  ClientContext ctx;
  Deadline(&ctx);
  gt::Empty resp;
  Status s = stub->UnimplementedCall(&ctx, gt::Empty(), &resp);
  return s.error_code() == StatusCode::UNIMPLEMENTED ? "" : Describe(s) + ", want UNIMPLEMENTED";
}

const std::vector<std::pair<std::string, std::function<Result(Stub*)>>> kCases = {
    {"empty_unary", EmptyUnary},
    {"large_unary", LargeUnary},
    {"client_streaming", ClientStreaming},
    {"server_streaming", ServerStreaming},
    {"ping_pong", PingPong},
    {"empty_stream", EmptyStream},
    {"timeout_on_sleeping_server", TimeoutOnSleepingServer},
    {"cancel_after_begin", CancelAfterBegin},
    {"cancel_after_first_response", CancelAfterFirstResponse},
    {"custom_metadata", CustomMetadata},
    {"status_code_and_message", StatusCodeAndMessage},
    {"special_status_message", SpecialStatusMessage},
    {"unimplemented_method", UnimplementedMethod},
    {"unimplemented_service", UnimplementedService},
    {"client_compressed_unary", ClientCompressedUnary},
    {"server_compressed_unary", ServerCompressedUnary},
    {"client_compressed_streaming", ClientCompressedStreaming},
    {"server_compressed_streaming", ServerCompressedStreaming},
};

// Channel credentials for the flags (and the name override into args);
// nullptr after saying why on stderr.
std::shared_ptr<grpc::ChannelCredentials> Credentials(
    const std::map<std::string, std::string>& flags, grpc::ChannelArguments* args) {
  bool use_test_ca = FlagTrue(flags, "use_test_ca");
  if (!FlagTrue(flags, "use_tls")) {
    if (use_test_ca || flags.count("tls_ca_file")) {
      std::cerr << "interop_client_cpp: --use_test_ca/--tls_ca_file need "
                   "--use_tls=true\n";
      return nullptr;
    }
    if (flags.count("server_host_override")) {
      args->SetString(GRPC_ARG_DEFAULT_AUTHORITY, flags.at("server_host_override"));
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions opts;  // empty roots: gRPC's default store
  std::string ca = FlagOr(flags, "tls_ca_file", use_test_ca ? FindTestCred("ca.pem") : "");
  if ((use_test_ca || flags.count("tls_ca_file")) && !ReadFile(ca, &opts.pem_root_certs)) {
    std::cerr << "interop_client_cpp: --use_test_ca=true needs a readable "
                 "--tls_ca_file (or gRPC's test ca.pem in src/core/tsi/test_creds)\n";
    return nullptr;
  }
  // The override names the server for the certificate check, SNI and
  // :authority; it defaults to the test certificate's name with the test CA.
  std::string override = FlagOr(flags, "server_host_override", use_test_ca ? kTestCaHost : "");
  if (!override.empty()) args->SetSslTargetNameOverride(override);
  return grpc::SslCredentials(opts);
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv);
  if (!flags.count("server_port") || !flags.count("test_case")) {
    std::cerr << "usage: interop_client_cpp --server_host=HOST --server_port=PORT "
                 "--test_case=CASE|all\n";
    return 2;
  }
  std::string host = flags.count("server_host") ? flags["server_host"] : "localhost";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  grpc::ChannelArguments args;
  std::shared_ptr<grpc::ChannelCredentials> creds = Credentials(flags, &args);
  if (!creds) return 2;
  g_channel = grpc::CreateCustomChannel(host + ":" + flags["server_port"], creds, args);
  auto stub = gt::TestService::NewStub(g_channel);
  const std::string want = flags["test_case"];
  int failed = 0, ran = 0;
  for (const auto& c : kCases) {
    if (want != "all" && want != c.first) continue;
    ran++;
    Result r = c.second(stub.get());
    if (r.empty()) {
      std::cout << "PASS " << c.first << std::endl;
    } else {
      failed++;
      std::cout << "FAIL " << c.first << ": " << r << std::endl;
    }
  }
  if (ran == 0) {
    std::cerr << "interop_client_cpp: unknown --test_case " << want << "\n";
    return 2;
  }
  return failed ? 1 : 0;
}
