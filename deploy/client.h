// deploy/client.h - the client side of the deploy tests: crpc channels to a
// proxy (or straight to the backends with round robin), calls with their
// outcome as plain values, the backends' When records, and a load of mixed
// unary and streaming calls that counts every outcome.
#ifndef CRPC_DEPLOY_CLIENT_H
#define CRPC_DEPLOY_CLIENT_H

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "deploy/harness.h"

namespace deploy {

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct ChannelOptions {
  crpc_lb_policy lb = CRPC_LB_PICK_FIRST;
  const char *compression = nullptr;
  int64_t keepalive_ms = 0, keepalive_timeout_ms = 0;
  int64_t backoff_initial_ms = 0, backoff_max_ms = 0, connect_timeout_ms = 0;
  bool wait_for_ready = false;
};

// A channel (freed by the unique_ptr). target: "host:port" or a list
// "ipv4:a:p,b:q".
std::unique_ptr<crpc_channel, void (*)(crpc_channel *)> NewChannel(
    const std::string &target, const ChannelOptions &opts = {});
using Channel = std::unique_ptr<crpc_channel, void (*)(crpc_channel *)>;

// "ipv4:h:p,h:q,..." for a round-robin channel over backends.
std::string ListTarget(const std::vector<std::string> &addresses);

struct CallResult {
  crpc_code code = CRPC_UNKNOWN;
  std::string message;
  std::string response;  // the reply (unary) or every message joined
  int messages = 0;      // messages received
  bool compressed = false;  // a response message arrived compressed
  Metadata headers, trailers;
  int64_t took_ns = 0;
  std::string Trailer(const std::string &key) const;  // "" if absent
  std::string Header(const std::string &key) const;
};

// One unary call; timeout_ms 0: no deadline.
CallResult Unary(crpc_channel *ch, const std::string &method, const std::string &request,
                 const Metadata &md = {}, int64_t timeout_ms = 10000,
                 const crpc_ctx *parent = nullptr);

// A streaming call: sends `requests` (then half-closes) and reads every
// response until the end.
CallResult Stream(crpc_channel *ch, const std::string &method,
                  const std::vector<std::string> &requests, const Metadata &md = {},
                  int64_t timeout_ms = 10000);

// How a tagged call's ctx ended on whichever backend ran it (deploy/backend
// When): found once a backend has a record.
struct Ending {
  bool found = false;
  int64_t done_ns = 0;  // CLOCK_MONOTONIC; 0 if the ctx outlived the handler
  std::string code, origin;
  int64_t start_ns = 0;
  long long timeout_ms = -1;  // deadline left when the handler started
  std::string raw;
};
// Asks each backend (a direct channel per address) until one knows tag, for
// up to wait_ms in all.
Ending FindEnding(const std::vector<crpc_channel *> &backends, const std::string &tag,
                  int64_t wait_ms = 5000);

// "name=b1 calls=... running=N ctx_live=M" from a backend; running and
// ctx_live are -1 if it did not answer.
struct BackendStats {
  long calls = -1;
  int running = -1;
  long ctx_live = -1;
};
BackendStats Stats(crpc_channel *backend);

// Waits up to wait_ms for crpc_ctx_live_count() to fall back to `before`
// (a call's ctx is released by its caller, a connection's by its loop a
// moment later); on failure prints every live ctx to stderr.
bool CtxCountBackTo(size_t before, int64_t wait_ms = 2000);

// p in [0, 100] over values (sorted copy); 0 for none.
int64_t Percentile(std::vector<int64_t> values, double p);

// Unary Echo calls on `unary` threads and endless streams (Chat and Count,
// alternating) on `streams` threads, until Stop. Every call outcome is
// counted; a stream that ends is opened again.
class Load {
 public:
  struct Report {
    long unary_ok = 0, unary_failed = 0;
    std::map<std::string, long> unary_codes;    // failures by "CODE: message"
    std::map<std::string, long> stream_ends;    // cut streams by "CODE: message"
    long streams_opened = 0, stream_messages = 0;
    std::map<std::string, long> per_backend;     // unary OK calls by x-backend
    std::vector<int64_t> unary_ns;               // latencies of OK calls
  };
  // pause_us: each unary caller rests this long between calls (0: none),
  // which keeps a test's load from starving the other tests of CPU.
  Load(crpc_channel *ch, int unary, int streams, int64_t unary_timeout_ms = 5000,
       int64_t pause_us = 0);
  ~Load();
  Report Stop();

 private:
  void UnaryLoop();
  void StreamLoop(int index);
  crpc_channel *ch_;
  int64_t timeout_ms_, pause_us_;
  crpc_ctx *stop_;
  std::mutex mu_;
  Report report_;
  std::vector<std::thread> threads_;
};

}  // namespace deploy

#endif  // CRPC_DEPLOY_CLIENT_H
