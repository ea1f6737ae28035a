#include "deploy/scenarios.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

namespace deploy {

Stack::Stack(Via via, StackOptions opts) : via_(via), opts_(std::move(opts)) {}

Stack::~Stack() {
  // The client first (its connections end), then the proxy, then the
  // backends: nothing is left connected to a process already gone.
  client_.reset();
  direct_.clear();
  proxy_.reset();
  for (auto &b : backends_) b->Kill();
  delays_.clear();
}

bool Stack::Start(std::string *error) {
  dir_ = TempDir(std::string("deploy-") + ViaName(via_));
  std::vector<std::string> addresses;
  for (int i = 0; i < opts_.backends; i++) {
    size_t k = static_cast<size_t>(i);
    const BackendOptions &bo = k < opts_.per_backend.size() ? opts_.per_backend[k] : opts_.backend;
    backends_.push_back(std::make_unique<Backend>("b" + std::to_string(i + 1), bo, dir_));
    if (!backends_.back()->Start(error)) return false;
    int64_t d = k < opts_.delay_ms.size() ? opts_.delay_ms[k] : 0;
    if (d > 0) {
      delays_.push_back(
          std::make_unique<crpc_testing::TcpProxy>(bo.host, backends_.back()->port(), d * 1000000));
      addresses.push_back("127.0.0.1:" + std::to_string(delays_.back()->port()));
    } else {
      delays_.push_back(nullptr);
      addresses.push_back(backends_.back()->address());
    }
    direct_.push_back(NewChannel(backends_.back()->address()));
    restarts_.push_back(0);
  }
  if (via_ == Via::kChannel) {
    ChannelOptions o = opts_.channel;
    if (o.lb == CRPC_LB_PICK_FIRST) o.lb = CRPC_LB_ROUND_ROBIN;
    client_ = NewChannel(ListTarget(addresses), o);
  } else {
    std::string pdir = dir_ + "/" + ViaName(via_);
    mkdir(pdir.c_str(), 0755);
    proxy_ = std::make_unique<Proxy>(via_, pdir);
    std::string balance = opts_.balance;
    if (balance.empty() && via_ == Via::kHaproxy) balance = "roundrobin";
    if (!proxy_->Start(addresses, balance, error)) return false;
    client_ = NewChannel(proxy_->target(), opts_.channel);
  }
  if (client_ == nullptr) {
    *error = "cannot make the client channel";
    return false;
  }
  return true;
}

bool Stack::Stop(std::string *error) {
  client_.reset();
  direct_.clear();
  proxy_.reset();
  bool ok = true;
  for (auto &b : backends_) {
    if (!b->process().running()) continue;
    std::string why;
    if (!b->Terminate(10000, &why)) {
      ok = false;
      *error += why + "\n";
    }
  }
  return ok;
}

std::vector<crpc_channel *> Stack::direct() {
  std::vector<crpc_channel *> v;
  for (auto &c : direct_) v.push_back(c.get());
  return v;
}

bool Stack::RollingRestart(std::string *error, std::vector<int64_t> *took_ms) {
  for (size_t i = 0; i < backends_.size(); i++) {
    int64_t t0 = NowNs();
    if (!backends_[i]->Restart(error)) return false;
    restarts_[i]++;
    switch (via_) {
      case Via::kHaproxy:
        // Its health check saw NOT_SERVING (or the refused connect), then
        // SERVING from the new process: it routes there again.
        if (!proxy_->WaitBackendUp(backends_[i]->name(), restarts_[i], 10000)) {
          *error = "HAProxy did not see " + backends_[i]->name() + " up again: " + proxy_->Log();
          return false;
        }
        break;
      case Via::kNginx:
        // nginx has no health check: a refused connect benched the backend
        // for fail_timeout (1 s); wait that out before the next restart, or
        // two benched backends would leave one to carry everything.
        SleepMs(1100);
        break;
      case Via::kChannel:
        // The channel reconnects after its backoff (set short by the tests).
        SleepMs(opts_.channel.backoff_max_ms > 0 ? opts_.channel.backoff_max_ms + 100 : 1200);
        break;
    }
    if (took_ms != nullptr) took_ms->push_back((NowNs() - t0) / 1000000);
  }
  return true;
}

bool Stack::BackendsIdle(std::string *error, int64_t wait_ms) {
  int64_t end = NowNs() + wait_ms * 1000000;
  for (;;) {
    std::string why;
    for (size_t i = 0; i < direct_.size(); i++) {
      BackendStats st = Stats(direct_[i].get());
      // The Stats call holds its own call ctx; the server's root is one more.
      if (st.running != 0 || st.ctx_live > 2) {
        why += backends_[i]->name() + ": running=" + std::to_string(st.running) +
               " ctx_live=" + std::to_string(st.ctx_live) + "; ";
      }
    }
    if (why.empty()) return true;
    if (NowNs() >= end) {
      *error = why;
      return false;
    }
    SleepMs(20);
  }
}

// ---- measurements -------------------------------------------------------------

static std::string Tag(const char *kind, int k) {
  return std::string(kind) + "-" + std::to_string(getpid()) + "-" + std::to_string(k) + "-" +
         std::to_string(NowNs());
}

CancelResult MeasureCancel(Stack &s, int n) {
  CancelResult r;
  for (int k = 0; k < n; k++) {
    std::string tag = Tag("cancel", k);
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
    crpc_metadata *md = crpc_metadata_new();
    crpc_metadata_add_str(md, "x-tag", tag.c_str());
    crpc_call *call = nullptr;
    int64_t cancelled_at = 0;
    if (crpc_call_start(s.client(), ctx, "/crpc.test.Test/Count", md, &call) == CRPC_OK) {
      const char req[] = "0 16 2000";  // endless, a message every 2 ms
      crpc_call_send(call, req, sizeof req - 1);
      crpc_call_close_send(call);
      crpc_message m{};
      if (crpc_call_recv(call, &m) == CRPC_OK && !m.end) {
        free(m.data);
        cancelled_at = NowNs();  // the handler is running: cancel now
        crpc_ctx_cancel(ctx, CRPC_CANCELLED, "measuring the cancel");
      }
      crpc_call_finish(call, nullptr);
      crpc_call_free(call);
    }
    crpc_metadata_free(md);
    crpc_ctx_release(ctx);
    if (cancelled_at == 0) {
      r.lost++;
      continue;
    }
    Ending e = FindEnding(s.direct(), tag);
    if (!e.found || e.done_ns == 0) {
      r.lost++;
      continue;
    }
    r.late_ns.push_back(e.done_ns - cancelled_at);
    r.origins[e.code + "/" + e.origin]++;
  }
  return r;
}

DeadlineResult MeasureDeadline(Stack &s, int n, int64_t deadline_ms) {
  DeadlineResult r;
  for (int k = 0; k < n; k++) {
    std::string tag = Tag("deadline", k);
    int64_t t0 = NowNs();
    CallResult c = Unary(s.client(), "/crpc.test.Test/Hang", "", {{"x-tag", tag}}, deadline_ms);
    int64_t due = t0 + deadline_ms * 1000000;
    r.client_codes[crpc_code_name(c.code)]++;
    r.client_late_ns.push_back(t0 + c.took_ns - due);
    Ending e = FindEnding(s.direct(), tag);
    if (!e.found || e.done_ns == 0) {
      r.lost++;
      continue;
    }
    r.server_late_ns.push_back(e.done_ns - due);
    r.timeout_seen_ms.push_back(e.timeout_ms);
    r.origins[e.code + "/" + e.origin]++;
  }
  return r;
}

RestartResult MeasureRollingRestart(Stack &s, int unary_threads, int stream_threads, int rounds,
                                    int64_t pause_us) {
  RestartResult r;
  Load load(s.client(), unary_threads, stream_threads, 5000, pause_us);
  SleepMs(300);  // every stream open and every connection warm
  r.restarted = true;
  for (int i = 0; i < rounds && r.restarted; i++) {
    r.restarted = s.RollingRestart(&r.error, &r.restart_ms);
  }
  SleepMs(200);
  r.load = load.Stop();
  return r;
}

SpreadResult MeasureSpread(Stack &s, int calls, int threads) {
  SpreadResult r;
  std::mutex mu;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      int mine = calls / threads + (t < calls % threads ? 1 : 0);
      for (int k = 0; k < mine; k++) {
        CallResult c = Unary(s.client(), "/crpc.test.Test/Echo", "spread", {}, 10000);
        std::lock_guard<std::mutex> l(mu);
        if (c.code != CRPC_OK) {
          r.failed++;
          continue;
        }
        std::string b = c.Trailer("x-backend");
        r.per_backend[b]++;
        r.ns.push_back(c.took_ns);
        r.ns_by_backend[b].push_back(c.took_ns);
      }
    });
  }
  for (auto &t : ts) t.join();
  return r;
}

// ---- table -----------------------------------------------------------------------

std::string Us(const std::vector<int64_t> &ns) {
  if (ns.empty()) return "-";
  char buf[64];
  snprintf(buf, sizeof buf, "%lld / %lld", static_cast<long long>(Percentile(ns, 50) / 1000),
           static_cast<long long>(Percentile(ns, 99) / 1000));
  return buf;
}

template <typename M>
static std::string CountsOf(const M &m) {
  std::string s;
  for (const auto &kv : m) s += (s.empty() ? "" : ", ") + kv.first + " " + std::to_string(kv.second);
  return s.empty() ? "none" : s;
}
std::string Counts(const std::map<std::string, int> &m) { return CountsOf(m); }
std::string Counts(const std::map<std::string, long> &m) { return CountsOf(m); }

std::string Row(const std::vector<std::string> &cells) {
  std::string s = "|";
  for (const std::string &c : cells) s += " " + c + " |";
  return s;
}

}  // namespace deploy
