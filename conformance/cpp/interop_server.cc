// conformance/cpp/interop_server.cc - a gRPC interop server on gRPC C++
// (Debian's libgrpc++), a peer for crpc's interop client.
//
//   interop_server_cpp --port=PORT [--use_tls=false]
//                      [--tls_cert_file=PEM --tls_key_file=PEM]
//
// --port=0 picks a free port; "listening on port N" goes to stdout.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include "conformance/cpp/interop_peer.h"
#include "grpc/testing/test.grpc.pb.h"

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
namespace gt = grpc::testing;

namespace {

void EchoMetadata(ServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(kEchoInitial);
  if (it != md.end()) {
    ctx->AddInitialMetadata(kEchoInitial, std::string(it->second.data(), it->second.size()));
  }
  it = md.find(kEchoTrailing);
  if (it != md.end()) {
    ctx->AddTrailingMetadata(kEchoTrailing, std::string(it->second.data(), it->second.size()));
  }
}

// CompressedRequest: the last received message must (not) be compressed.
Status CheckCompression(ServerContext* ctx, bool expect) {
  bool got = LastMessageCompressed(ctx->c_call());
  if (expect && !got) {
    return Status(StatusCode::INVALID_ARGUMENT, "expected a compressed request");
  }
  if (!expect && got) {
    return Status(StatusCode::INVALID_ARGUMENT, "did not expect a compressed request");
  }
  return Status::OK;
}

Status EchoStatus(const gt::EchoStatus& st) {
  return Status(static_cast<StatusCode>(st.code()), st.message());
}

// Sends one response per ResponseParameters, honouring interval_us and the
// per-message compression request.
template <typename Writer>
bool SendResponses(ServerContext* ctx, Writer* w, const gt::StreamingOutputCallRequest& req) {
  for (const auto& p : req.response_parameters()) {
    if (p.interval_us() > 0) std::this_thread::sleep_for(std::chrono::microseconds(p.interval_us()));
    gt::StreamingOutputCallResponse resp;
    resp.mutable_payload()->set_body(std::string(p.size(), '\0'));
    grpc::WriteOptions opts;
    if (p.compressed().value()) {
      ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
    } else {
      opts.set_no_compression();
    }
    if (!w->Write(resp, opts)) return false;
  }
  return true;
}

class TestService final : public gt::TestService::Service {
  Status EmptyCall(ServerContext* ctx, const gt::Empty*, gt::Empty*) override {
    EchoMetadata(ctx);
    return Status::OK;
  }

  Status UnaryCall(ServerContext* ctx, const gt::SimpleRequest* req,
                   gt::SimpleResponse* resp) override {
    EchoMetadata(ctx);
    if (req->has_expect_compressed()) {
      Status s = CheckCompression(ctx, req->expect_compressed().value());
      if (!s.ok()) return s;
    }
    if (req->response_status().code() != 0) return EchoStatus(req->response_status());
    if (req->response_compressed().value()) {
      ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
    }
    resp->mutable_payload()->set_body(std::string(req->response_size(), '\0'));
    return Status::OK;
  }

  Status StreamingOutputCall(ServerContext* ctx, const gt::StreamingOutputCallRequest* req,
                             grpc::ServerWriter<gt::StreamingOutputCallResponse>* w) override {
    EchoMetadata(ctx);
    if (req->response_status().code() != 0) return EchoStatus(req->response_status());
    return SendResponses(ctx, w, *req) ? Status::OK : Status(StatusCode::UNKNOWN, "write failed");
  }

  Status StreamingInputCall(ServerContext* ctx,
                            grpc::ServerReader<gt::StreamingInputCallRequest>* r,
                            gt::StreamingInputCallResponse* resp) override {
    EchoMetadata(ctx);
    gt::StreamingInputCallRequest req;
    int total = 0;
    while (r->Read(&req)) {
      if (req.has_expect_compressed()) {
        Status s = CheckCompression(ctx, req.expect_compressed().value());
        if (!s.ok()) return s;
      }
      total += static_cast<int>(req.payload().body().size());
    }
    resp->set_aggregated_payload_size(total);
    return Status::OK;
  }

  Status FullDuplexCall(ServerContext* ctx,
                        grpc::ServerReaderWriter<gt::StreamingOutputCallResponse,
                                                 gt::StreamingOutputCallRequest>* rw) override {
    EchoMetadata(ctx);
    gt::StreamingOutputCallRequest req;
    while (rw->Read(&req)) {
      if (req.response_status().code() != 0) return EchoStatus(req.response_status());
      if (!SendResponses(ctx, rw, req)) return Status(StatusCode::UNKNOWN, "write failed");
    }
    return Status::OK;
  }

  Status HalfDuplexCall(ServerContext* ctx,
                        grpc::ServerReaderWriter<gt::StreamingOutputCallResponse,
                                                 gt::StreamingOutputCallRequest>* rw) override {
    EchoMetadata(ctx);
    std::vector<gt::StreamingOutputCallRequest> reqs;
    gt::StreamingOutputCallRequest req;
    while (rw->Read(&req)) reqs.push_back(req);
    for (const auto& r : reqs) {
      if (r.response_status().code() != 0) return EchoStatus(r.response_status());
      if (!SendResponses(ctx, rw, r)) return Status(StatusCode::UNKNOWN, "write failed");
    }
    return Status::OK;
  }
};

// Server credentials for the flags; nullptr after saying why on stderr.
std::shared_ptr<grpc::ServerCredentials> Credentials(
    const std::map<std::string, std::string>& flags) {
  if (!FlagTrue(flags, "use_tls")) {
    if (flags.count("tls_cert_file") || flags.count("tls_key_file")) {
      std::cerr << "interop_server_cpp: --tls_cert_file/--tls_key_file need "
                   "--use_tls=true\n";
      return nullptr;
    }
    return grpc::InsecureServerCredentials();
  }
  std::string cert = FlagOr(flags, "tls_cert_file", "");
  std::string key = FlagOr(flags, "tls_key_file", "");
  if (cert.empty() && key.empty()) {
    cert = FindTestCred("server1.pem");
    key = FindTestCred("server1.key");
  }
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (!ReadFile(cert, &pair.cert_chain) || !ReadFile(key, &pair.private_key)) {
    std::cerr << "interop_server_cpp: --use_tls=true needs readable "
                 "--tls_cert_file and --tls_key_file (or gRPC's test "
                 "server1.pem/server1.key in src/core/tsi/test_creds)\n";
    return nullptr;
  }
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back(pair);
  return grpc::SslServerCredentials(opts);
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv);
  if (!flags.count("port")) {
    std::cerr << "usage: interop_server_cpp --port=PORT [--use_tls=false] "
                 "[--tls_cert_file=PEM --tls_key_file=PEM]\n";
    return 2;
  }
  std::shared_ptr<grpc::ServerCredentials> creds = Credentials(flags);
  if (!creds) return 2;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before gRPC makes threads

  TestService service;
  int port = 0;
  grpc::ServerBuilder b;
  b.AddListeningPort("[::]:" + flags["port"], creds, &port);
  b.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "interop_server_cpp: cannot listen on port " << flags["port"] << "\n";
    return 1;
  }
  std::cout << "interop_server_cpp: listening on port " << port
            << (FlagTrue(flags, "use_tls") ? " (TLS)" : "") << std::endl;
  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
