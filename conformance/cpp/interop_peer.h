// conformance/cpp/interop_peer.h - what the gRPC C++ interop peers share.
#ifndef CRPC_CONFORMANCE_CPP_INTEROP_PEER_H
#define CRPC_CONFORMANCE_CPP_INTEROP_PEER_H

#include <grpc/grpc.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>

// gRPC C++ has no public way to read a received message's compressed flag.
// Its own interop tests read it through this function, exported by Debian's
// libgrpc.so (declared in gRPC's internal call_test_only.h, not installed).
// gRPC core's decompression filter replaces the wire flag
// (GRPC_WRITE_INTERNAL_COMPRESS, 0x80000000) with
// GRPC_WRITE_INTERNAL_TEST_ONLY_WAS_COMPRESSED (0x40000000) once it has
// inflated the message, so either bit means "arrived compressed".
uint32_t grpc_call_test_only_get_message_flags(grpc_call* call);
constexpr uint32_t kWasCompressedFlags = 0x80000000u | 0x40000000u;

inline bool LastMessageCompressed(grpc_call* call) {
  return (grpc_call_test_only_get_message_flags(call) & kWasCompressedFlags) != 0;
}

constexpr char kEchoInitial[] = "x-grpc-test-echo-initial";
constexpr char kEchoTrailing[] = "x-grpc-test-echo-trailing-bin";

// "--name=value" flags into a map (a bare "--name" means "true").
inline std::map<std::string, std::string> ParseFlags(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) continue;
    size_t eq = a.find('=');
    if (eq == std::string::npos) {
      flags[a.substr(2)] = "true";
    } else {
      flags[a.substr(2, eq - 2)] = a.substr(eq + 1);
    }
  }
  return flags;
}

inline bool FlagTrue(const std::map<std::string, std::string>& f,
                     const std::string& name) {
  auto it = f.find(name);
  return it != f.end() && (it->second == "true" || it->second == "1");
}

#endif  // CRPC_CONFORMANCE_CPP_INTEROP_PEER_H
