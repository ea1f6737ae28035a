// hostile_bench: the attacks of issue 17's table at full size, each
// against a fresh crpc server process with default options, while a
// well-behaved client calls a unary method on a connection of its own.
// Prints one table row per attack: the good client's latency (p50 / max)
// during the attack, the server's peak RSS over its idle RSS (VmHWM, so
// every attack gets a server of its own), and what the attacker saw. The
// tests (rpc/e2e:hostile_test, :hostile_wire_test) assert the same
// behaviour scaled down; the README's numbers come from here.
//
//   hostile_bench [--only NAME] [--port P]
//     --only NAME  run the rows whose name contains NAME
//     --port P     attack a server already listening on 127.0.0.1:P
//                  instead (no RSS column; e.g. under perf record)
//   hostile_bench --serve [--nofile N]
//     the server: prints its port, serves until stdin closes; N lowers
//     its open-file limit first (the row with more connections than fds)
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cinttypes>
#include <memory>

#include "rpc/e2e/hostile_attacks.h"

namespace {

using namespace crpc_hostile;

int Serve(int nofile) {
  if (nofile > 0) {
    struct rlimit rl = {static_cast<rlim_t>(nofile), static_cast<rlim_t>(nofile)};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("setrlimit");
  }
  static Counters counters;
  crpc_server *s = crpc_server_new(nullptr);
  int port = 0;
  if (s == nullptr || !AddHostileMethods(s, &counters) ||
      crpc_server_listen(s, "127.0.0.1:0", &port) != CRPC_OK ||
      crpc_server_start(s) != CRPC_OK) {
    fprintf(stderr, "hostile_bench: server failed to start\n");
    return 1;
  }
  printf("%d\n", port);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  crpc_server_free(s);
  return 0;
}

// A server child: pid, port, and the pipe whose closing stops it.
struct Child {
  pid_t pid = -1;
  int port = 0;
  int stdin_fd = -1;
};

Child Spawn(int nofile) {
  Child ch;
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return ch;
  ch.pid = fork();
  if (ch.pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    std::string n = std::to_string(nofile);
    execl("/proc/self/exe", "hostile_bench", "--serve", "--nofile", n.c_str(),
          static_cast<char *>(nullptr));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  ch.stdin_fd = in[1];
  char buf[32] = {0};
  ssize_t n = read(out[0], buf, sizeof buf - 1);
  close(out[0]);
  ch.port = n > 0 ? atoi(buf) : 0;
  return ch;
}

void Stop(Child &ch) {
  if (ch.pid <= 0) return;
  close(ch.stdin_fd);
  for (int i = 0; i < 200; i++) {
    if (waitpid(ch.pid, nullptr, WNOHANG) == ch.pid) return;
    usleep(10000);
  }
  kill(ch.pid, SIGKILL);
  waitpid(ch.pid, nullptr, 0);
}

struct Row {
  const char *name;  // what the attacker does
  int nofile;        // the server's open-file limit (0: as inherited)
  std::function<Outcome(int port)> attack;
};

bool Alive(int port) {
  GoodClient g("127.0.0.1:" + std::to_string(port), kUnary);
  return g.Warm();
}

}  // namespace

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  std::string only;
  int fixed_port = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--serve") {
      int nofile = 0;
      if (i + 2 < argc && std::string(argv[i + 1]) == "--nofile") nofile = atoi(argv[i + 2]);
      return Serve(nofile);
    }
    if (a == "--only" && i + 1 < argc) only = argv[++i];
    if (a == "--port" && i + 1 < argc) fixed_port = atoi(argv[++i]);
  }
  const int64_t hold = 3000;
  std::vector<Row> rows = {
      {"1,000 unary calls on one connection, HEADERS and no body", 0,
       [&](int p) { return BodilessStreams(p, kUnary, 1, 1000, hold, true); }},
      {"the same, async unary method", 0,
       [&](int p) { return BodilessStreams(p, kUnaryAsync, 1, 1000, hold, true); }},
      {"500 connections, one bodiless unary call each", 0,
       [&](int p) { return BodilessStreams(p, kUnary, 500, 1, hold, true); }},
      {"100 client-streaming calls on one connection that never end", 0,
       [&](int p) { return EndlessClientStreams(p, kSink, 100, hold); }},
      {"zero window: 200 server streams asking 20 x 1 MiB (blocking)", 0,
       [&](int p) { return ZeroWindow(p, kStream, 200, 20, 1 << 20, hold); }},
      {"zero window: 200 server streams asking 20 x 1 MiB (async)", 0,
       [&](int p) { return ZeroWindow(p, kStreamAsync, 200, 20, 1 << 20, hold); }},
      {"4 streams asking 2 x 256 MiB behind a zero window", 0,
       [&](int p) { return ZeroWindow(p, kStream, 4, 2, 256 << 20, hold); }},
      {"HPACK bomb: 8 attackers x 100 requests of 147 KB (579 MB decoded each)", 0,
       [&](int p) { return HpackBomb(p, kUnary, 8, 100, 147000); }},
      {"rapid reset: 3 attackers reconnecting for 5 s", 0,
       [&](int p) { return RapidReset(p, kSink, 3, 5000); }},
      {"400 silent connections, server fd limit 300", 300,
       [&](int p) { return IdleConns(p, 400, 0, hold, true); }},
  };
  printf("| attack | good client p50 / max | server RSS peak | result |\n");
  printf("|---|---|---|---|\n");
  fflush(stdout);
  for (auto &r : rows) {
    if (!only.empty() && std::string(r.name).find(only) == std::string::npos) continue;
    Child ch;
    int port = fixed_port;
    if (port == 0) {
      ch = Spawn(r.nofile);
      port = ch.port;
      if (port == 0) {
        fprintf(stderr, "hostile_bench: no server\n");
        return 1;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    long rss0 = ch.pid > 0 ? ProcStatusKb(ch.pid, "VmRSS") : -1;
    GoodClient good("127.0.0.1:" + std::to_string(port), kUnary);
    good.Warm();
    good.Start();
    Outcome o = r.attack(port);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    GoodStats g = good.Stop();
    long hwm = ch.pid > 0 ? ProcStatusKb(ch.pid, "VmHWM") : -1;
    bool alive = Alive(port);
    char rss[32] = "-";
    if (hwm >= 0 && rss0 >= 0) snprintf(rss, sizeof rss, "+%.1f MiB", (hwm - rss0) / 1024.0);
    std::string result = o.Summary();
    if (o.streams_processed > 0) {
      result += "; " + std::to_string(o.conns) + " connections, " +
                std::to_string(o.streams_processed) + " streams processed of " +
                std::to_string(o.pairs_sent) + " sent";
    }
    if (g.failed > 0) result += "; good client's first failure: " + g.first_failure;
    result += alive ? "; server alive" : "; SERVER NOT ANSWERING";
    printf("| %s | %d of %d OK, %.2f / %.1f ms | %s | %s |\n", r.name, g.ok, g.ok + g.failed,
           g.p50_ms, g.max_ms, rss, result.c_str());
    fflush(stdout);
    if (ch.pid > 0) Stop(ch);
  }
  return 0;
}
