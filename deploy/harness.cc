#include "deploy/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "rpc/testing/peer.h"

namespace deploy {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void SleepMs(int64_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::string Which(const std::string &program) {
  for (const char *dir : {"/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"}) {
    std::string p = dir + program;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

std::string TempDir(const std::string &prefix) {
  const char *base = getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/" + prefix + ".XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return std::string(base ? base : "/tmp");
  return std::string(buf.data());
}

std::string ReadRunfile(const std::string &path) {
  std::ifstream in(crpc_testing::Runfile(path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

static std::string ReadFile(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- Process ------------------------------------------------------------------

Process::~Process() { Stop(0); }

bool Process::Start(const std::vector<std::string> &args, const std::string &log_path,
                    const std::string &netns, std::string *error) {
  log_ = log_path;
  std::vector<char *> argv;
  for (const std::string &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  int logfd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int nsfd = -1;
  if (!netns.empty()) {
    nsfd = open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
  }
  int in[2] = {-1, -1};
  if (logfd < 0 || (!netns.empty() && nsfd < 0) || pipe2(in, O_CLOEXEC) != 0) {
    *error = "set-up for " + args[0] + ": " + strerror(errno);
    if (logfd >= 0) close(logfd);
    if (nsfd >= 0) close(nsfd);
    return false;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) != 0) _exit(126);
    dup2(in[0], 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in[0]);
  close(logfd);
  if (nsfd >= 0) close(nsfd);
  if (pid < 0) {
    close(in[1]);
    *error = std::string("fork: ") + strerror(errno);
    return false;
  }
  pid_ = pid;
  stdin_w_ = in[1];
  return true;
}

void Process::Signal(int signo) {
  if (pid_ > 0) kill(pid_, signo);
}

bool Process::Wait(int64_t timeout_ms, int *status) {
  if (pid_ <= 0) return true;
  int64_t end = NowNs() + timeout_ms * 1000000;
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      if (status != nullptr) *status = st;
      pid_ = -1;
      if (stdin_w_ >= 0) close(stdin_w_);
      stdin_w_ = -1;
      return true;
    }
    if (NowNs() >= end) return false;
    SleepMs(2);
  }
}

void Process::Stop(int64_t grace_ms) {
  if (pid_ <= 0) return;
  if (stdin_w_ >= 0) close(stdin_w_);
  stdin_w_ = -1;
  if (Wait(grace_ms)) return;
  kill(pid_, SIGTERM);
  if (Wait(2000)) return;
  kill(pid_, SIGKILL);
  Wait(5000);  // SIGKILL cannot be ignored: bounded
}

std::string Process::Log() const { return ReadFile(log_); }

static int CountText(const std::string &hay, const std::string &needle) {
  int n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) n++;
  return n;
}

int WaitForText(const std::string &path, const std::string &needle, int count,
                int64_t timeout_ms) {
  int64_t end = NowNs() + timeout_ms * 1000000;
  for (;;) {
    int n = CountText(ReadFile(path), needle);
    if (n >= count || NowNs() >= end) return n;
    SleepMs(5);
  }
}

// ---- Backend ------------------------------------------------------------------

Backend::Backend(std::string name, BackendOptions opts, std::string dir)
    : name_(std::move(name)), opts_(std::move(opts)), dir_(std::move(dir)) {}

std::string Backend::address() const { return opts_.host + ":" + std::to_string(port_); }

bool Backend::Start(std::string *error, int port) {
  if (port != 0) port_ = port;
  std::string log = dir_ + "/" + name_ + "." + std::to_string(++starts_) + ".log";
  std::vector<std::string> argv = {
      crpc_testing::Runfile("deploy/backend"),
      "--port=" + std::to_string(port_),
      "--host=" + opts_.host,
      "--name=" + name_,
      "--grace_ms=" + std::to_string(opts_.grace_ms),
      "--drain_ms=" + std::to_string(opts_.drain_ms),
      "--keepalive_ms=" + std::to_string(opts_.keepalive_ms),
      "--keepalive_timeout_ms=" + std::to_string(opts_.keepalive_timeout_ms),
  };
  if (!proc_.Start(argv, log, opts_.netns, error)) return false;
  // Sanitizer builds start slowly on a loaded machine: a generous bound.
  if (WaitForText(log, "PORT ", 1, 20000) < 1) {
    *error = name_ + " did not start: " + proc_.Log();
    proc_.Stop(0);
    return false;
  }
  std::string text = proc_.Log();
  port_ = atoi(text.c_str() + text.find("PORT ") + 5);
  return true;
}

bool Backend::Terminate(int64_t timeout_ms, std::string *error) {
  proc_.Signal(SIGTERM);
  int status = 0;
  if (!proc_.Wait(timeout_ms, &status)) {
    *error = name_ + " did not exit within " + std::to_string(timeout_ms) + " ms";
    proc_.Stop(0);
    return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *error = name_ + " exited badly (status " + std::to_string(status) + "): " + proc_.Log();
    return false;
  }
  return true;
}

bool Backend::Restart(std::string *error) {
  int64_t bound = opts_.drain_ms + opts_.grace_ms + 5000;
  return Terminate(bound, error) && Start(error, port_);
}

// ---- proxies ------------------------------------------------------------------

const char *ViaName(Via via) {
  switch (via) {
    case Via::kNginx: return "nginx";
    case Via::kHaproxy: return "haproxy";
    case Via::kChannel: return "crpc-rr";
  }
  return "?";
}

std::string Proxy::Missing(Via via) {
  if (via == Via::kNginx && Which("nginx").empty()) {
    return "nginx is not installed (Debian package nginx; ./crpc.sh test installs it)";
  }
  if (via == Via::kHaproxy && Which("haproxy").empty()) {
    return "haproxy is not installed (Debian package haproxy; ./crpc.sh test installs it)";
  }
  return "";
}

std::string FillTemplate(const std::string &tmpl, const std::string &listen,
                         const std::string &balance,
                         const std::vector<std::string> &backends) {
  auto replace = [](std::string s, const std::string &from, const std::string &to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
      s.replace(at, from.size(), to);
    }
    return s;
  };
  std::istringstream in(tmpl);
  std::string line, out;
  while (std::getline(in, line)) {
    size_t first = line.find_first_not_of(' ');
    if (first != std::string::npos && line[first] == '#') {  // comments stay as written
      out += line + "\n";
      continue;
    }
    if (line.find("@BACKEND@") != std::string::npos) {
      for (size_t i = 0; i < backends.size(); i++) {
        std::string l = replace(line, "@BACKEND@", backends[i]);
        out += replace(l, "@NAME@", "b" + std::to_string(i + 1)) + "\n";
      }
      continue;
    }
    out += replace(replace(line, "@LISTEN@", listen), "@BALANCE@", balance) + "\n";
  }
  return out;
}

static bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

bool Proxy::Start(const std::vector<std::string> &backends, const std::string &balance,
                  std::string *error) {
  port_ = FreePort();
  std::string listen = "127.0.0.1:" + std::to_string(port_);
  std::vector<std::string> argv;
  if (via_ == Via::kNginx) {
    mkdir((dir_ + "/logs").c_str(), 0755);
    config_ = FillTemplate(ReadRunfile("deploy/nginx.conf.tmpl"), listen, balance, backends);
    // Foreground, and one process: with nginx's master/worker pair a
    // killed test would leave the worker behind (it does not die with its
    // master); request handling is the same code either way.
    argv = {Which("nginx"), "-p", dir_ + "/", "-c", dir_ + "/nginx.conf", "-e",
            dir_ + "/logs/error.log", "-g",
            "daemon off; master_process off; pid " + dir_ + "/nginx.pid;"};
  } else {
    config_ = FillTemplate(ReadRunfile("deploy/haproxy.cfg.tmpl"), listen, balance, backends);
    argv = {Which("haproxy"), "-f", dir_ + "/haproxy.cfg", "-db"};
  }
  std::string file = dir_ + (via_ == Via::kNginx ? "/nginx.conf" : "/haproxy.cfg");
  std::ofstream(file) << config_;
  if (!proc_.Start(argv, dir_ + "/stdout.log", "", error)) return false;
  int64_t end = NowNs() + 10 * 1000000000LL;
  while (!Accepts(port_)) {
    if (NowNs() >= end || proc_.Wait(0)) {
      *error = std::string(ViaName(via_)) + " did not start: " + proc_.Log();
      if (via_ == Via::kNginx) *error += ReadFile(dir_ + "/logs/error.log");
      proc_.Stop(0);
      return false;
    }
    SleepMs(10);
  }
  // HAProxy counts servers up before their first check; let one round of
  // checks (inter 100ms) pass so a dead backend is known before calls go.
  if (via_ == Via::kHaproxy) SleepMs(300);
  return true;
}

bool Proxy::WaitBackendUp(const std::string &name, int times, int64_t timeout_ms) {
  if (via_ != Via::kHaproxy) return true;
  // HAProxy prints each state change twice on stderr (an alert and the
  // log line); the log line starts its own line with "Server".
  std::string needle = "\nServer crpc_backends/" + name + " is UP";
  return WaitForText(proc_.log_path(), needle, times, timeout_ms) >= times;
}

// ---- commands -------------------------------------------------------------------

int Run(const std::vector<std::string> &argv, std::string *out, int64_t timeout_ms) {
  crpc_testing::ProcResult r = crpc_testing::RunProcess(argv, timeout_ms);
  if (out != nullptr) *out = r.output;
  return r.exit_code;
}

// ---- network namespaces ---------------------------------------------------------

NetnsLab::~NetnsLab() {
  std::string ip = Which("ip");
  // The host ends first: deleting one end of a veth pair deletes both at
  // once, where a deleted namespace frees its end later, in the background
  // (and the next lab's names would clash with it).
  for (const std::string &v : veths_) Run({ip, "link", "del", v}, nullptr);
  for (const std::string &n : names_) Run({ip, "netns", "del", n}, nullptr);
  if (!bridge_.empty()) Run({ip, "link", "del", bridge_}, nullptr);
}

std::string NetnsLab::ip(int i) const { return prefix_ + std::to_string(10 + i); }

std::string NetnsLab::Create(int n) {
  std::string ip = Which("ip"), nft = Which("nft");
  if (ip.empty()) return "iproute2's ip is not installed";
  if (nft.empty()) return "nftables' nft is not installed (Debian package nftables)";
  int pid = static_cast<int>(getpid());
  // Names carry the pid (for the clean-up below) and a count, so labs made
  // one after another in a process never reuse a name the kernel may still
  // be releasing. Interface names stay within 15 characters.
  static int labs = 0;
  std::string id = std::to_string(pid) + static_cast<char>('a' + labs++ % 26);
  // Namespaces left by a killed run of this test (their pid is gone).
  std::string list;
  Run({ip, "netns", "list"}, &list);
  std::istringstream ls(list);
  for (std::string name; ls >> name;) {
    int owner = 0;
    if (sscanf(name.c_str(), "crpcd%d", &owner) == 1 && kill(owner, 0) != 0) {
      Run({ip, "netns", "del", name}, nullptr);
      std::string tag = name.substr(5, name.find('-') - 5);
      Run({ip, "link", "del", "cd" + tag + "b"}, nullptr);
    }
  }
  std::string addrs;
  Run({ip, "-4", "addr"}, &addrs);
  int s = pid % 250 + 1;
  while (addrs.find("10.201." + std::to_string(s) + ".") != std::string::npos) s = s % 250 + 1;
  prefix_ = "10.201." + std::to_string(s) + ".";
  bridge_ = "cd" + id + "b";
  std::string out;
  auto step = [&](const std::vector<std::string> &argv) {
    if (Run(argv, &out) == 0) return true;
    out = "`";
    for (const std::string &a : argv) out += a + " ";
    std::string why;
    Run(argv, &why);
    out += "` failed: " + why;
    return false;
  };
  bool ok = step({ip, "link", "add", bridge_, "type", "bridge"});
  if (!ok) {
    bridge_.clear();
    return "cannot create a bridge (network namespaces and veth need CAP_NET_ADMIN): " + out;
  }
  ok = step({ip, "addr", "add", prefix_ + "1/24", "dev", bridge_}) &&
       step({ip, "link", "set", bridge_, "up"});
  for (int i = 0; ok && i < n; i++) {
    std::string name = "crpcd" + id + "-" + std::to_string(i);
    std::string host = "cd" + id + "h" + std::to_string(i);
    std::string peer = "cd" + id + "n" + std::to_string(i);
    ok = step({ip, "netns", "add", name});
    if (!ok) break;
    names_.push_back(name);
    ok = step({ip, "link", "add", host, "type", "veth", "peer", "name", peer});
    if (!ok) break;
    veths_.push_back(host);
    ok = step({ip, "link", "set", peer, "netns", name}) &&
         step({ip, "link", "set", host, "master", bridge_}) &&
         step({ip, "link", "set", host, "up"}) &&
         step({ip, "-n", name, "addr", "add", this->ip(i) + "/24", "dev", peer}) &&
         step({ip, "-n", name, "link", "set", peer, "up"}) &&
         step({ip, "-n", name, "link", "set", "lo", "up"});
  }
  if (ok) ok = Nft(0, "", &out);  // nftables usable inside a namespace?
  if (!ok) {
    std::string why = "network namespaces cannot be set up here: " + out;
    for (const std::string &v : veths_) Run({ip, "link", "del", v}, nullptr);
    veths_.clear();
    for (const std::string &name : names_) Run({ip, "netns", "del", name}, nullptr);
    names_.clear();
    Run({ip, "link", "del", bridge_}, nullptr);
    bridge_.clear();
    return why;
  }
  return "";
}

bool NetnsLab::Nft(int i, const std::string &chains, std::string *error) {
  // Declared, then deleted, then made anew in one transaction: the old
  // rules (if any) and the new ones swap atomically.
  std::string ruleset = "table inet crpc_fault {}\ndelete table inet crpc_fault\n";
  if (!chains.empty()) ruleset += "table inet crpc_fault {\n" + chains + "}\n";
  std::string file = TempDir("nft") + "/rules.nft";
  std::ofstream(file) << ruleset;
  std::string out;
  int rc = Run({Which("ip"), "netns", "exec", names_[static_cast<size_t>(i)], Which("nft"), "-f",
                file},
               &out);
  if (rc != 0) *error = "nft in " + names_[static_cast<size_t>(i)] + ": " + out;
  return rc == 0;
}

bool NetnsLab::Partition(int i, std::string *error) {
  return Nft(i,
             "  chain in { type filter hook input priority -100; policy drop; }\n"
             "  chain out { type filter hook output priority -100; policy drop; }\n",
             error);
}

bool NetnsLab::Loss(int i, int percent, std::string *error) {
  std::string drop = "numgen random mod 100 < " + std::to_string(percent) + " drop";
  return Nft(i,
             "  chain in { type filter hook input priority -100; policy accept; " + drop +
                 "; }\n  chain out { type filter hook output priority -100; policy accept; " +
                 drop + "; }\n",
             error);
}

bool NetnsLab::Heal(int i, std::string *error) { return Nft(i, "", error); }

}  // namespace deploy
