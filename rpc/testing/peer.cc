#include "rpc/testing/peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace crpc_testing {
namespace {

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void CloseFd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Waits up to timeout_ms for pid to exit. Returns true and sets *status if
// it was reaped.
bool WaitPid(pid_t pid, int64_t timeout_ms, int *status) {
  int64_t end = NowMs() + timeout_ms;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;  // not our child any more
    if (NowMs() >= end) return false;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
}

// Kills (TERM, then KILL) and reaps pid; never blocks more than ~3 s.
int KillAndReap(pid_t pid, int64_t grace_ms) {
  int status = -1;
  if (WaitPid(pid, grace_ms, &status)) return status;
  kill(pid, SIGTERM);
  if (WaitPid(pid, 2000, &status)) return status;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);  // SIGKILL cannot be ignored: bounded
  return status;
}

// fork + exec with pipes for stdin and stdout (stderr joins stdout unless
// keep_stderr). All argv memory is prepared before fork (the child only
// calls async-signal-safe functions).
pid_t Spawn(const std::vector<std::string> &args, int *stdin_w, int *stdout_r,
            std::string *error) {
  std::vector<char *> argv;
  for (const std::string &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    return -1;
  }
  if (pipe2(out, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    close(in[0]);
    close(in[1]);
    return -1;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    return -1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    execv(argv[0], argv.data());
    static const char msg[] = "exec failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  if (stdin_w != nullptr) {
    *stdin_w = in[1];
  } else {
    close(in[1]);
  }
  *stdout_r = out[0];
  return pid;
}

}  // namespace

std::string Runfile(const std::string &rel) {
  const char *srcdir = getenv("TEST_SRCDIR");
  if (srcdir != nullptr) {
    std::string p = std::string(srcdir) + "/crpc/" + rel;
    if (access(p.c_str(), R_OK) == 0) return p;
  }
  const char *rdir = getenv("RUNFILES_DIR");
  if (rdir != nullptr) {
    std::string p = std::string(rdir) + "/crpc/" + rel;
    if (access(p.c_str(), R_OK) == 0) return p;
  }
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) != nullptr) return std::string(cwd) + "/" + rel;
  return rel;
}

bool PythonGrpcAvailable(std::string *why) {
  ProcResult r = RunProcess({kPython, "-c", "import grpc"}, 20000);
  if (r.exit_code == 0) return true;
  if (why != nullptr) *why = "/usr/bin/python3 cannot import grpc: " + r.output;
  return false;
}

PyServer::~PyServer() { Stop(); }

bool PyServer::Start(std::string *error, int64_t timeout_ms) {
  std::string script = Runfile("rpc/testing/py_server.py");
  pid_ = Spawn({kPython, "-u", script, "--port", "0"}, &stdin_fd_, &stdout_fd_,
               error);
  if (pid_ < 0) return false;
  std::string buf;
  int64_t end = NowMs() + timeout_ms;
  for (;;) {
    size_t nl = buf.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.rfind("PORT ", 0) == 0) {
        port_ = atoi(line.c_str() + 5);
        if (port_ > 0) return true;
      }
      continue;  // e.g. a warning line
    }
    int64_t left = end - NowMs();
    if (left <= 0) {
      *error = "py_server.py printed no PORT line in time; output: " + buf;
      break;
    }
    struct pollfd p = {stdout_fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char tmp[512];
    ssize_t n = read(stdout_fd_, tmp, sizeof tmp);
    if (n <= 0) {
      *error = "py_server.py exited before printing PORT; output: " + buf;
      break;
    }
    buf.append(tmp, static_cast<size_t>(n));
  }
  Stop();
  return false;
}

int PyServer::Stop() {
  if (pid_ < 0) return -1;
  CloseFd(&stdin_fd_);  // EOF: the server exits by itself
  int status = KillAndReap(pid_, 3000);
  CloseFd(&stdout_fd_);
  pid_ = -1;
  port_ = 0;
  return status;
}

ProcResult RunProcess(const std::vector<std::string> &argv,
                      int64_t timeout_ms) {
  ProcResult res;
  int out = -1;
  std::string error;
  pid_t pid = Spawn(argv, nullptr, &out, &error);
  if (pid < 0) {
    res.output = error;
    return res;
  }
  int64_t end = NowMs() + timeout_ms;
  for (;;) {
    int64_t left = end - NowMs();
    if (left <= 0) {
      res.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    struct pollfd p = {out, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char tmp[4096];
    ssize_t n = read(out, tmp, sizeof tmp);
    if (n <= 0) break;  // EOF: the child is exiting
    res.output.append(tmp, static_cast<size_t>(n));
  }
  close(out);
  int status = KillAndReap(pid, res.timed_out ? 0 : 5000);
  if (!res.timed_out && WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  return res;
}

ProcResult RunPyClient(const std::string &target,
                       const std::vector<std::string> &cases,
                       int64_t timeout_ms) {
  std::vector<std::string> argv = {kPython, "-u",
                                   Runfile("rpc/testing/py_client.py"),
                                   "--target", target};
  for (const std::string &c : cases) {
    argv.push_back("--case");
    argv.push_back(c);
  }
  return RunProcess(argv, timeout_ms);
}

}  // namespace crpc_testing
