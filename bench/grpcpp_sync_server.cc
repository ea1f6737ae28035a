// bench/grpcpp_sync_server.cc - grpc.testing.BenchmarkService on gRPC C++'s
// synchronous API (a handler thread per call, blocking Read/Write), the
// counterpart of crpc's blocking handlers. The shared harness's own gRPC C++
// server uses the completion-queue API, which corresponds to crpc's async
// handlers; bench/side_by_side.sh builds this one beside it so the blocking
// rows can also be compared like for like.
//
//   grpcpp_sync_server --port=N      serves h2c on 127.0.0.1:N until SIGTERM
//
// Built by side_by_side.sh against the harness's generated code (it needs
// Debian's libgrpc++-dev, as the harness does); not a Bazel target, since
// nothing in crpc links gRPC C++.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "grpc/testing/benchmark_service.grpc.pb.h"

using grpc::ServerContext;
using grpc::Status;
using grpc::testing::BenchmarkService;
using grpc::testing::SimpleRequest;
using grpc::testing::SimpleResponse;

namespace {

constexpr int kMaxResponse = 4 << 20;

// Fills `resp` as the request asks; false if the size is out of range.
bool Fill(const SimpleRequest &req, SimpleResponse *resp) {
  if (req.response_size() < 0 || req.response_size() > kMaxResponse) {
    return false;
  }
  resp->mutable_payload()->mutable_body()->assign(req.response_size(), '\0');
  return true;
}

class SyncBenchmark final : public BenchmarkService::Service {
  Status UnaryCall(ServerContext *, const SimpleRequest *req,
                   SimpleResponse *resp) override {
    if (!Fill(*req, resp)) {
      return Status(grpc::INVALID_ARGUMENT, "bad response_size");
    }
    return Status::OK;
  }

  // Ping-pong: one response per request, until the client half-closes.
  Status StreamingCall(
      ServerContext *,
      grpc::ServerReaderWriter<SimpleResponse, SimpleRequest> *stream)
      override {
    SimpleRequest req;
    SimpleResponse resp;
    while (stream->Read(&req)) {
      if (!Fill(req, &resp)) {
        return Status(grpc::INVALID_ARGUMENT, "bad response_size");
      }
      if (!stream->Write(resp)) break;
    }
    return Status::OK;
  }

  // Writes responses until the client cancels.
  Status StreamingFromServer(
      ServerContext *ctx, const SimpleRequest *req,
      grpc::ServerWriter<SimpleResponse> *writer) override {
    SimpleResponse resp;
    if (!Fill(*req, &resp)) {
      return Status(grpc::INVALID_ARGUMENT, "bad response_size");
    }
    while (!ctx->IsCancelled() && writer->Write(resp)) {
    }
    return Status::OK;
  }
};

}  // namespace

int main(int argc, char **argv) {
  int port = 50051;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else {
      fprintf(stderr, "usage: %s --port=N\n", argv[0]);
      return 2;
    }
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  SyncBenchmark service;
  grpc::ServerBuilder builder;
  std::string addr = "127.0.0.1:" + std::to_string(port);
  builder.AddListeningPort(addr, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    fprintf(stderr, "grpcpp_sync_server: cannot listen on %s\n", addr.c_str());
    return 1;
  }
  printf("listening on %s\n", addr.c_str());
  fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(1));
  return 0;
}
