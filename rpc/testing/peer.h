// Test harness: runs the Python gRPC peers (rpc/testing/py_server.py and
// py_client.py, on Debian's python3-grpcio) as child processes.
//
// Every wait is bounded and every child is reaped: a PyServer kills its
// process in the destructor (stdin EOF, then SIGTERM, then SIGKILL), a
// RunPyClient child that overruns its time limit is killed, and children get
// PR_SET_PDEATHSIG so a crashing test never leaves an orphan behind.
#ifndef CRPC_TESTING_PEER_H
#define CRPC_TESTING_PEER_H

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace crpc_testing {

// The interpreter that can import Debian's grpc (not the pyenv on PATH).
constexpr const char kPython[] = "/usr/bin/python3";

// Absolute path of a file in the test's runfiles, e.g.
// Runfile("rpc/testing/py_server.py"). Uses $TEST_SRCDIR/crpc/..., falling
// back to a path relative to the working directory.
std::string Runfile(const std::string &workspace_relative);

// True if /usr/bin/python3 can import grpc (tests skip with a clear message
// otherwise).
bool PythonGrpcAvailable(std::string *why);

// py_server.py as a child process listening on 127.0.0.1.
class PyServer {
 public:
  PyServer() = default;
  ~PyServer();
  PyServer(const PyServer &) = delete;
  PyServer &operator=(const PyServer &) = delete;

  // Spawns the server and waits (at most timeout_ms) for its "PORT <n>"
  // line. False with *error set on failure (the child is reaped then).
  bool Start(std::string *error, int64_t timeout_ms = 20000);

  // Stops the server (bounded: ~5 s worst case) and reaps it. Idempotent.
  // Returns the exit status as from waitpid, or -1 if it was not running.
  int Stop();

  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;   // write end of the child's stdin (close => EOF)
  int stdout_fd_ = -1;  // read end of the child's stdout
  int port_ = 0;
};

struct ProcResult {
  int exit_code = -1;      // exit status, or -1 if killed / not started
  bool timed_out = false;  // killed after timeout_ms
  std::string output;      // stdout + stderr
};

// Runs py_client.py --target <target> --case <c>... and waits at most
// timeout_ms for it to finish (killed and reaped after that).
ProcResult RunPyClient(const std::string &target,
                       const std::vector<std::string> &cases,
                       int64_t timeout_ms = 30000);

// Runs argv[0] (an absolute path) with the given args, collecting its output,
// bounded by timeout_ms. Used by RunPyClient.
ProcResult RunProcess(const std::vector<std::string> &argv,
                      int64_t timeout_ms);

}  // namespace crpc_testing

#endif  // CRPC_TESTING_PEER_H
