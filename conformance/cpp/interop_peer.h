// conformance/cpp/interop_peer.h - what the gRPC C++ interop peers share.
#ifndef CRPC_CONFORMANCE_CPP_INTEROP_PEER_H
#define CRPC_CONFORMANCE_CPP_INTEROP_PEER_H

#include <grpc/grpc.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
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

inline std::string FlagOr(const std::map<std::string, std::string>& f,
                          const std::string& name, const std::string& dflt) {
  auto it = f.find(name);
  return it == f.end() ? dflt : it->second;
}

// TLS: gRPC's interop runners give no certificate flags; each gRPC
// implementation loads gRPC's test credentials (src/core/tsi/test_creds).
// Like crpc's binaries, the peers take --tls_cert_file/--tls_key_file
// (server) and --tls_ca_file (client) and otherwise look for that directory
// where the runners have it. "" if absent.
inline std::string FindTestCred(const std::string& name) {
  for (const char* dir : {"src/core/tsi/test_creds",
                          "/var/local/git/grpc/src/core/tsi/test_creds"}) {
    std::string path = std::string(dir) + "/" + name;
    if (access(path.c_str(), R_OK) == 0) return path;
  }
  return "";
}

// The file's contents; false if it cannot be read.
inline bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

// The name gRPC's test server1.pem is issued for: gRPC's clients' default
// override whenever they trust the test CA.
constexpr char kTestCaHost[] = "foo.test.google.fr";

#endif  // CRPC_CONFORMANCE_CPP_INTEROP_PEER_H
