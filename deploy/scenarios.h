// deploy/scenarios.h - what the deploy tests and deploy_bench measure, on a
// "stack": 3 crpc backends behind nginx, HAProxy or crpc's own round-robin
// channel. The tests run each at a small size and assert; deploy_bench
// runs them at full size and prints the per-proxy table.
#ifndef CRPC_DEPLOY_SCENARIOS_H
#define CRPC_DEPLOY_SCENARIOS_H

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "deploy/client.h"
#include "deploy/harness.h"
#include "rpc/testing/tcp_proxy.h"

namespace deploy {

struct StackOptions {
  int backends = 3;
  BackendOptions backend;
  // If not empty, backend i runs with per_backend[i] instead (its own
  // network namespace and address, say).
  std::vector<BackendOptions> per_backend;
  // "" = the proxy's round robin; else nginx "least_conn;", HAProxy
  // "leastconn" (the crpc channel takes channel.lb).
  std::string balance;
  // Per backend: > 0 puts a delaying TcpProxy (this many ms each way) in
  // front of it, and the proxy (or channel) reaches it through that.
  std::vector<int64_t> delay_ms;
  ChannelOptions channel;  // the client's channel (lb forced to round robin for kChannel)
};

class Stack {
 public:
  explicit Stack(Via via, StackOptions opts = {});
  ~Stack();
  // "" if every program is installed, else the reason to skip.
  std::string Missing() const { return Proxy::Missing(via_); }
  bool Start(std::string *error);
  // The client's channel: to the proxy, or round robin over the backends.
  crpc_channel *client() { return client_.get(); }
  // A channel straight to each backend (When, Stats).
  std::vector<crpc_channel *> direct();
  Backend &backend(int i) { return *backends_[static_cast<size_t>(i)]; }
  crpc_testing::TcpProxy *delay(int i) { return delays_[static_cast<size_t>(i)].get(); }
  Proxy *proxy() { return proxy_.get(); }
  Via via() const { return via_; }
  const std::string &dir() const { return dir_; }
  // Restarts each backend in turn, gracefully, as a rolling deploy does,
  // and waits until calls can reach it again before the next one.
  // *took_ms gets each restart's duration (SIGTERM to serving again).
  bool RollingRestart(std::string *error, std::vector<int64_t> *took_ms = nullptr);
  // Every backend ran no handler and held no ctx but the asking call's
  // own (calls, streams and ctxs all ended); why not in *error.
  bool BackendsIdle(std::string *error, int64_t wait_ms = 3000);
  // Closes the client, stops the proxy, then SIGTERMs every backend and
  // waits for it: false (why in *error) if one did not exit 0, which is
  // also how a sanitizer's report in a backend (LSan at exit) shows.
  bool Stop(std::string *error);

 private:
  Via via_;
  StackOptions opts_;
  std::string dir_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<std::unique_ptr<crpc_testing::TcpProxy>> delays_;
  std::unique_ptr<Proxy> proxy_;
  Channel client_{nullptr, crpc_channel_free};
  std::vector<Channel> direct_;
  std::vector<int> restarts_;
};

// ---- measurements -------------------------------------------------------------

// Client cancels a server stream (Count, a message every 2 ms) once its
// first message is in; how long until the backend handler's ctx was done,
// and with what origin.
struct CancelResult {
  std::vector<int64_t> late_ns;           // cancel -> backend ctx done
  std::map<std::string, int> origins;     // "CANCELLED/peer_reset" -> n
  int lost = 0;                           // no record from any backend
};
CancelResult MeasureCancel(Stack &s, int n);

// Unary Hang calls with a deadline of deadline_ms: how late the client
// returned, how late the backend's ctx ended (after start + deadline), what
// grpc-timeout the backend saw, and the origin there.
struct DeadlineResult {
  std::vector<int64_t> client_late_ns, server_late_ns;
  std::vector<int64_t> timeout_seen_ms;
  std::map<std::string, int> client_codes, origins;
  int lost = 0;
};
DeadlineResult MeasureDeadline(Stack &s, int n, int64_t deadline_ms);

// A mixed load through the stack while every backend restarts in turn.
struct RestartResult {
  bool restarted = false;
  std::string error;
  Load::Report load;
  std::vector<int64_t> restart_ms;
};
RestartResult MeasureRollingRestart(Stack &s, int unary_threads, int stream_threads,
                                    int rounds = 1, int64_t pause_us = 0);

// calls Echo calls from `threads` threads: OK calls per backend, latencies.
struct SpreadResult {
  std::map<std::string, long> per_backend;
  long failed = 0;
  std::vector<int64_t> ns;
  std::map<std::string, std::vector<int64_t>> ns_by_backend;
};
SpreadResult MeasureSpread(Stack &s, int calls, int threads);

// ---- the bench-style table -----------------------------------------------------

// "p50 / p99" in µs.
std::string Us(const std::vector<int64_t> &ns);
// "CANCELLED/peer_reset 20, ..." from a count map.
std::string Counts(const std::map<std::string, int> &m);
std::string Counts(const std::map<std::string, long> &m);
// One table row ("| a | b | ... |") and the header rule for n columns.
std::string Row(const std::vector<std::string> &cells);

}  // namespace deploy

#endif  // CRPC_DEPLOY_SCENARIOS_H
