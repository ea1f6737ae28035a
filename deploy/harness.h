// deploy/harness.h - the moving parts of the deploy tests, each a child
// process the test starts and always reaps: crpc backends (deploy/backend),
// nginx and HAProxy from the checked-in templates, and network namespaces
// on a bridge with nftables faults.
//
// Children get PR_SET_PDEATHSIG(SIGKILL), which fires when the *thread*
// that forked them ends: start and restart them from the test's main
// thread (load threads only make calls).
#ifndef CRPC_DEPLOY_HARNESS_H
#define CRPC_DEPLOY_HARNESS_H

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace deploy {

int64_t NowNs();
void SleepMs(int64_t ms);

// Absolute path of an installed program ("nginx" -> /usr/sbin/nginx), or ""
// if none of /usr/sbin, /usr/bin, /sbin, /bin has it.
std::string Which(const std::string &program);

// A free TCP port on 127.0.0.1 right now (bound and released: another
// process could take it first, which on a test machine does not happen).
int FreePort();

// A fresh directory under $TEST_TMPDIR (or /tmp), removed by the caller's
// choice: the tests leave it for the logs.
std::string TempDir(const std::string &prefix);

// The text of a file in the runfiles ("deploy/nginx.conf.tmpl").
std::string ReadRunfile(const std::string &path);

// A child process: stdout and stderr go to a log file; stdin is a pipe the
// parent holds (closing it is EOF, which deploy/backend takes as "stop").
class Process {
 public:
  Process() = default;
  ~Process();
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;

  // Starts argv (argv[0] absolute) with its output in log_path, inside the
  // network namespace `netns` if not empty. False with *error on failure.
  bool Start(const std::vector<std::string> &argv, const std::string &log_path,
             const std::string &netns, std::string *error);
  // Sends a signal (no-op if not running).
  void Signal(int signo);
  // Waits up to timeout_ms for it to exit; true (and *status) if it did.
  bool Wait(int64_t timeout_ms, int *status = nullptr);
  // Closes stdin, then SIGTERM after grace_ms, SIGKILL 2 s later; reaps.
  void Stop(int64_t grace_ms = 3000);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string &log_path() const { return log_; }
  std::string Log() const;  // what it has written so far

 private:
  pid_t pid_ = -1;
  int stdin_w_ = -1;
  std::string log_;
};

// Waits up to timeout_ms until the file at path holds `needle` at least
// `count` times. Returns the count found.
int WaitForText(const std::string &path, const std::string &needle, int count,
                int64_t timeout_ms);

// ---- backends -------------------------------------------------------------

struct BackendOptions {
  std::string host = "127.0.0.1";  // where it listens (a netns address)
  std::string netns;               // run inside this namespace
  int64_t grace_ms = 1000;         // crpc_server_shutdown grace
  int64_t drain_ms = 0;            // NOT_SERVING for this long first
  int64_t keepalive_ms = 0;
  int64_t keepalive_timeout_ms = 0;
};

// One deploy/backend process; restarts keep its port.
class Backend {
 public:
  Backend(std::string name, BackendOptions opts, std::string dir);
  // Starts it (port 0: the backend picks one, kept for restarts).
  bool Start(std::string *error, int port = 0);
  // Graceful restart as a rolling deploy does it: SIGTERM (NOT_SERVING,
  // drain, shutdown with grace, exit), then a new process on the same port.
  // Returns false with *error if the old one did not exit in time or the
  // new one did not come up.
  bool Restart(std::string *error);
  // SIGTERM and wait; false if it did not exit cleanly within timeout_ms.
  bool Terminate(int64_t timeout_ms, std::string *error);
  void Kill() { proc_.Stop(0); }
  const std::string &name() const { return name_; }
  int port() const { return port_; }
  std::string address() const;  // host:port
  Process &process() { return proc_; }

 private:
  std::string name_;
  BackendOptions opts_;
  std::string dir_;
  int port_ = 0;
  int starts_ = 0;
  Process proc_;
};

// ---- proxies ----------------------------------------------------------------

enum class Via { kNginx, kHaproxy, kChannel };
const char *ViaName(Via via);  // "nginx", "haproxy", "crpc-rr"

// nginx or HAProxy run from deploy/<name>.conf.tmpl / .cfg.tmpl.
class Proxy {
 public:
  Proxy(Via via, std::string dir) : via_(via), dir_(std::move(dir)) {}
  ~Proxy() { proc_.Stop(0); }
  // "" if the proxy's program is installed, else why the test must skip.
  static std::string Missing(Via via);
  // Writes the config for `backends` (host:port each), starts the proxy on
  // a free loopback port and waits until it accepts connections (and, for
  // HAProxy, until its health checks found every backend up).
  bool Start(const std::vector<std::string> &backends, const std::string &balance,
             std::string *error);
  // HAProxy only: waits until its log says `name` came up `times` times in
  // all (counting the first), or timeout_ms. nginx does not check health.
  bool WaitBackendUp(const std::string &name, int times, int64_t timeout_ms);
  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string Log() const { return proc_.Log(); }
  const std::string &config() const { return config_; }

 private:
  Via via_;
  std::string dir_;
  int port_ = 0;
  std::string config_;
  Process proc_;
};

// The config text: template with @LISTEN@, @BALANCE@, @BACKEND@/@NAME@
// filled in (lines with @BACKEND@ repeated per backend).
std::string FillTemplate(const std::string &tmpl, const std::string &listen,
                         const std::string &balance,
                         const std::vector<std::string> &backends);

// ---- network namespaces --------------------------------------------------------

// n namespaces, each with a veth pair onto a bridge in this namespace:
// this namespace is 10.201.S.1, namespace i is 10.201.S.(10 + i), with S
// drawn from the pid (and skipped while in use) so concurrent test
// processes do not collide. Faults
// are nftables rules inside a namespace (no netem needed).
class NetnsLab {
 public:
  ~NetnsLab();
  // "" on success, else why namespaces cannot be used here (the test skips
  // with it). Cleans up whatever it made if it fails half way.
  std::string Create(int n);
  const std::string &ns(int i) const { return names_[static_cast<size_t>(i)]; }
  std::string ip(int i) const;
  // Every packet in and out of namespace i dropped (a partition)...
  bool Partition(int i, std::string *error);
  // ... or `percent` % of them, each at random (nft numgen).
  bool Loss(int i, int percent, std::string *error);
  // Rules removed: traffic flows again.
  bool Heal(int i, std::string *error);

 private:
  bool Nft(int i, const std::string &ruleset, std::string *error);
  std::vector<std::string> names_, veths_;
  std::string bridge_, prefix_;
};

// Runs argv (argv[0] absolute) to completion, at most timeout_ms; returns
// the exit code (-1: killed or not started) and the output in *out.
int Run(const std::vector<std::string> &argv, std::string *out,
        int64_t timeout_ms = 10000);

}  // namespace deploy

#endif  // CRPC_DEPLOY_HARNESS_H
