// deploy_bench: the per-proxy table of issue 16 at full size (the tests run
// the same measurements small and assert; this only prints). Run it with
// deploy/proxy_bench.sh, which builds it optimised and passes flags on:
//
//   --cancels=N        client cancels measured per proxy (default 200)
//   --deadlines=N      100 ms deadlines measured per proxy (default 50)
//   --restart_rounds=N rolling restarts of all 3 backends under load (2)
//   --spread_calls=N   calls for the spread rows (3000)
//   --slow_ms=N        the slowed backend's added latency each way (20)
//   --only=a,b         nginx, haproxy and/or crpc-rr (default all)
//
// Every row names what was measured; µs figures are p50 / p99.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "deploy/scenarios.h"

namespace deploy {
namespace {

struct Flags {
  int cancels = 200, deadlines = 50, restart_rounds = 2, spread_calls = 3000;
  int64_t slow_ms = 20;
  std::string only = "nginx,haproxy,crpc-rr";
};

Flags Parse(int argc, char **argv) {
  Flags f;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    auto num = [&](const char *name, long *out) {
      size_t n = strlen(name);
      if (strncmp(a, name, n) == 0 && a[n] == '=') *out = strtol(a + n + 1, nullptr, 10);
    };
    long v = -1;
    num("--cancels", &v);
    if (v >= 0) f.cancels = static_cast<int>(v), v = -1;
    num("--deadlines", &v);
    if (v >= 0) f.deadlines = static_cast<int>(v), v = -1;
    num("--restart_rounds", &v);
    if (v >= 0) f.restart_rounds = static_cast<int>(v), v = -1;
    num("--spread_calls", &v);
    if (v >= 0) f.spread_calls = static_cast<int>(v), v = -1;
    num("--slow_ms", &v);
    if (v >= 0) f.slow_ms = v, v = -1;
    if (strncmp(a, "--only=", 7) == 0) f.only = a + 7;
  }
  return f;
}

// One table: a row per measure, a column per proxy.
struct Table {
  std::vector<std::string> vias;
  std::vector<std::pair<std::string, std::vector<std::string>>> rows;
  void Set(const std::string &measure, size_t col, const std::string &cell) {
    for (auto &r : rows) {
      if (r.first == measure) {
        r.second[col] = cell;
        return;
      }
    }
    rows.push_back({measure, std::vector<std::string>(vias.size(), "-")});
    rows.back().second[col] = cell;
  }
  void Print() const {
    std::vector<std::string> head = {"measure"};
    head.insert(head.end(), vias.begin(), vias.end());
    std::printf("%s\n", Row(head).c_str());
    std::string rule = "|";
    for (size_t i = 0; i < head.size(); i++) rule += "---|";
    std::printf("%s\n", rule.c_str());
    for (const auto &r : rows) {
      std::vector<std::string> cells = {r.first};
      cells.insert(cells.end(), r.second.begin(), r.second.end());
      std::printf("%s\n", Row(cells).c_str());
    }
    std::fflush(stdout);
  }
};

std::string Spread(const SpreadResult &r) {
  std::string s;
  for (const auto &kv : r.per_backend) {
    s += (s.empty() ? "" : ", ") + kv.first + " " + std::to_string(kv.second) + " (" +
         Us(r.ns_by_backend.at(kv.first)) + ")";
  }
  if (r.failed > 0) s += ", failed " + std::to_string(r.failed);
  return s.empty() ? "-" : s;
}

// Starts a stack for `via` with `opts`, runs fn on it, stops it. A stack
// that cannot start fills the cell with why.
bool WithStack(Via via, StackOptions opts, Table *t, size_t col, const std::string &measure,
               const std::function<void(Stack &)> &fn) {
  std::string missing = Proxy::Missing(via);
  if (!missing.empty()) {
    t->Set(measure, col, "skipped: " + missing);
    return false;
  }
  Stack s(via, std::move(opts));
  std::string error;
  if (!s.Start(&error)) {
    t->Set(measure, col, "did not start: " + error.substr(0, 80));
    return false;
  }
  fn(s);
  if (!s.Stop(&error)) std::fprintf(stderr, "%s: %s\n", ViaName(via), error.c_str());
  return true;
}

int Main(int argc, char **argv) {
  Flags f = Parse(argc, argv);
  std::vector<Via> vias;
  Table t;
  for (Via v : {Via::kNginx, Via::kHaproxy, Via::kChannel}) {
    if (f.only.find(ViaName(v)) == std::string::npos) continue;
    vias.push_back(v);
    t.vias.push_back(ViaName(v));
  }
  std::printf("deploy_bench: 3 crpc backends (deploy/backend) behind each; %d cancels, %d "
              "deadlines, %d restart rounds, %d spread calls\n\n",
              f.cancels, f.deadlines, f.restart_rounds, f.spread_calls);
  std::fflush(stdout);
  for (size_t col = 0; col < vias.size(); col++) {
    Via via = vias[col];
    std::fprintf(stderr, "deploy_bench: %s: cancel, deadline, spread\n", ViaName(via));
    WithStack(via, {}, &t, col, "cancel -> backend handler ctx done (us)", [&](Stack &s) {
      CancelResult c = MeasureCancel(s, f.cancels);
      t.Set("cancel -> backend handler ctx done (us)", col, Us(c.late_ns));
      t.Set("cancel: how the backend's ctx ended", col,
            Counts(c.origins) + (c.lost ? ", never ended " + std::to_string(c.lost) : ""));
      DeadlineResult d = MeasureDeadline(s, f.deadlines, 100);
      t.Set("100 ms deadline: client returns late by (us)", col, Us(d.client_late_ns));
      t.Set("100 ms deadline: backend ctx ends late by (us)", col, Us(d.server_late_ns));
      t.Set("100 ms deadline: grpc-timeout the backend saw (ms, p50)", col,
            std::to_string(Percentile(d.timeout_seen_ms, 50)));
      t.Set("deadline: how the backend's ctx ended", col, Counts(d.origins));
      SpreadResult sp = MeasureSpread(s, f.spread_calls, 6);
      t.Set("spread: OK calls per backend (p50 / p99 us)", col, Spread(sp));
    });
    std::fprintf(stderr, "deploy_bench: %s: slowed backend\n", ViaName(via));
    StackOptions slow;
    slow.delay_ms = {0, 0, f.slow_ms};
    std::string m_rr = "b3 +" + std::to_string(f.slow_ms) + " ms each way, round robin";
    WithStack(via, slow, &t, col, m_rr, [&](Stack &s) {
      int64_t t0 = NowNs();
      SpreadResult sp = MeasureSpread(s, f.spread_calls / 3, 6);
      t.Set(m_rr, col, Spread(sp) + "; " + std::to_string(f.spread_calls / 3 * 1000000000LL / (NowNs() - t0)) + " calls/s");
    });
    std::string m_lr = "b3 +" + std::to_string(f.slow_ms) + " ms each way, least requests";
    slow.balance = via == Via::kNginx ? "least_conn;" : "leastconn";
    slow.channel.lb = CRPC_LB_LEAST_REQUEST;
    WithStack(via, slow, &t, col, m_lr, [&](Stack &s) {
      int64_t t0 = NowNs();
      SpreadResult sp = MeasureSpread(s, f.spread_calls / 3, 6);
      t.Set(m_lr, col, Spread(sp) + "; " + std::to_string(f.spread_calls / 3 * 1000000000LL / (NowNs() - t0)) + " calls/s");
    });
    std::fprintf(stderr, "deploy_bench: %s: rolling restarts\n", ViaName(via));
    StackOptions ro;
    ro.backend.grace_ms = 1000;
    ro.backend.drain_ms = via == Via::kHaproxy ? 500 : 0;
    ro.channel.backoff_initial_ms = 100;
    ro.channel.backoff_max_ms = 300;
    std::string m_re = "rolling restarts: unary OK / failed";
    WithStack(via, ro, &t, col, m_re, [&](Stack &s) {
      RestartResult r = MeasureRollingRestart(s, 8, 8, f.restart_rounds);
      if (!r.restarted) t.Set(m_re, col, "restart failed: " + r.error.substr(0, 80));
      t.Set(m_re, col,
            std::to_string(r.load.unary_ok) + " / " + std::to_string(r.load.unary_failed) +
                (r.load.unary_failed ? " (" + Counts(r.load.unary_codes) + ")" : ""));
      t.Set("rolling restarts: streams opened / how cut ones ended", col,
            std::to_string(r.load.streams_opened) + " / " + Counts(r.load.stream_ends));
      t.Set("rolling restarts: unary latency under restarts (us)", col, Us(r.load.unary_ns));
    });
  }
  t.Print();
  return 0;
}

}  // namespace
}  // namespace deploy

int main(int argc, char **argv) { return deploy::Main(argc, argv); }
