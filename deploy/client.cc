#include "deploy/client.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "crpc/metadata.h"

namespace deploy {

Channel NewChannel(const std::string &target, const ChannelOptions &o) {
  crpc_channel_options opts{};
  opts.lb_policy = o.lb;
  opts.default_compression = o.compression;
  opts.keepalive_time_ns = o.keepalive_ms * CRPC_MILLISECOND;
  opts.keepalive_timeout_ns = o.keepalive_timeout_ms * CRPC_MILLISECOND;
  opts.backoff_initial_ns = o.backoff_initial_ms * CRPC_MILLISECOND;
  opts.backoff_max_ns = o.backoff_max_ms * CRPC_MILLISECOND;
  opts.min_connect_timeout_ns = o.connect_timeout_ms * CRPC_MILLISECOND;
  opts.wait_for_ready = o.wait_for_ready ? 1 : 0;
  return Channel(crpc_channel_new(target.c_str(), &opts), crpc_channel_free);
}

std::string ListTarget(const std::vector<std::string> &addresses) {
  std::string t = "ipv4:";
  for (size_t i = 0; i < addresses.size(); i++) t += (i ? "," : "") + addresses[i];
  return t;
}

static std::string Lookup(const Metadata &md, const std::string &key) {
  for (const auto &kv : md) {
    if (kv.first == key) return kv.second;
  }
  return "";
}
std::string CallResult::Trailer(const std::string &key) const { return Lookup(trailers, key); }
std::string CallResult::Header(const std::string &key) const { return Lookup(headers, key); }

static crpc_metadata *ToMetadata(const Metadata &md) {
  crpc_metadata *m = crpc_metadata_new();
  for (const auto &kv : md) {
    crpc_metadata_add(m, kv.first.c_str(), kv.second.data(), kv.second.size());
  }
  return m;
}

static Metadata FromMetadata(const crpc_metadata *md) {
  Metadata out;
  crpc_metadata_entry e;
  for (size_t i = 0; crpc_metadata_at(md, i, &e); i++) {
    out.emplace_back(e.key, std::string(reinterpret_cast<const char *>(e.value), e.value_len));
  }
  return out;
}

static crpc_ctx *CallCtx(const crpc_ctx *parent, int64_t timeout_ms) {
  const crpc_ctx *p = parent != nullptr ? parent : crpc_ctx_background();
  return timeout_ms > 0 ? crpc_ctx_with_timeout(p, timeout_ms * CRPC_MILLISECOND)
                        : crpc_ctx_with_cancel(p);
}

CallResult Unary(crpc_channel *ch, const std::string &method, const std::string &request,
                 const Metadata &md, int64_t timeout_ms, const crpc_ctx *parent) {
  CallResult r;
  crpc_ctx *ctx = CallCtx(parent, timeout_ms);
  crpc_metadata *m = ToMetadata(md);
  crpc_message resp{};
  crpc_status st{};
  int64_t t0 = NowNs();
  r.code = crpc_unary_call(ch, ctx, method.c_str(), m, request.data(), request.size(), &resp, &st);
  r.took_ns = NowNs() - t0;
  if (r.code == CRPC_OK) {
    r.response.assign(reinterpret_cast<const char *>(resp.data), resp.len);
    r.compressed = resp.compressed;
    r.messages = 1;
    free(resp.data);
  }
  r.message = st.message != nullptr ? st.message : "";
  r.trailers = FromMetadata(st.trailers);
  crpc_status_clear(&st);
  crpc_metadata_free(m);
  crpc_ctx_release(ctx);
  return r;
}

CallResult Stream(crpc_channel *ch, const std::string &method,
                  const std::vector<std::string> &requests, const Metadata &md,
                  int64_t timeout_ms) {
  CallResult r;
  crpc_ctx *ctx = CallCtx(nullptr, timeout_ms);
  crpc_metadata *m = ToMetadata(md);
  crpc_call *call = nullptr;
  int64_t t0 = NowNs();
  crpc_code rc = crpc_call_start(ch, ctx, method.c_str(), m, &call);
  if (rc == CRPC_OK) {
    for (const std::string &q : requests) {
      if (crpc_call_send(call, q.data(), q.size()) != CRPC_OK) break;
    }
    crpc_call_close_send(call);
    for (;;) {
      crpc_message msg{};
      if (crpc_call_recv(call, &msg) != CRPC_OK || msg.end) break;
      r.response.append(reinterpret_cast<const char *>(msg.data), msg.len);
      r.compressed |= msg.compressed;
      r.messages++;
      free(msg.data);
    }
    const crpc_metadata *h = crpc_call_response_headers(call);
    if (h != nullptr) r.headers = FromMetadata(h);
    crpc_status st{};
    r.code = crpc_call_finish(call, &st);
    r.message = st.message != nullptr ? st.message : "";
    r.trailers = FromMetadata(st.trailers);
    crpc_status_clear(&st);
    crpc_call_free(call);
  } else {
    r.code = rc;
  }
  r.took_ns = NowNs() - t0;
  crpc_metadata_free(m);
  crpc_ctx_release(ctx);
  return r;
}

Ending FindEnding(const std::vector<crpc_channel *> &backends, const std::string &tag,
                  int64_t wait_ms) {
  Ending e;
  int64_t end = NowNs() + wait_ms * 1000000;
  do {
    for (crpc_channel *b : backends) {
      CallResult r = Unary(b, "/crpc.deploy.Backend/When", tag + " 0", {}, 2000);
      if (r.code != CRPC_OK) continue;
      e.found = true;
      e.raw = r.response;
      char code[40] = "", origin[40] = "";
      long long done = 0, start = 0, tmo = -1;
      sscanf(r.response.c_str(), "done_ns=%lld code=%39s origin=%39s start_ns=%lld timeout_ms=%lld",
             &done, code, origin, &start, &tmo);
      e.done_ns = done;
      e.code = code;
      e.origin = origin;
      e.start_ns = start;
      e.timeout_ms = tmo;
      return e;
    }
    SleepMs(5);
  } while (NowNs() < end);
  return e;
}

BackendStats Stats(crpc_channel *backend) {
  BackendStats s;
  CallResult r = Unary(backend, "/crpc.deploy.Backend/Stats", "", {}, 2000);
  if (r.code != CRPC_OK) return s;
  const char *p = strstr(r.response.c_str(), "calls=");
  if (p != nullptr) s.calls = atol(p + 6);
  p = strstr(r.response.c_str(), "running=");
  if (p != nullptr) s.running = atoi(p + 8);
  p = strstr(r.response.c_str(), "ctx_live=");
  if (p != nullptr) s.ctx_live = atol(p + 9);
  return s;
}

bool CtxCountBackTo(size_t before, int64_t wait_ms) {
  int64_t end = NowNs() + wait_ms * 1000000;
  while (crpc_ctx_live_count() > before) {
    if (NowNs() >= end) {
      crpc_ctx_dump(stderr);
      return false;
    }
    SleepMs(5);
  }
  return true;
}

int64_t Percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// ---- load -----------------------------------------------------------------------

Load::Load(crpc_channel *ch, int unary, int streams, int64_t unary_timeout_ms, int64_t pause_us)
    : ch_(ch),
      timeout_ms_(unary_timeout_ms),
      pause_us_(pause_us),
      stop_(crpc_ctx_with_cancel(crpc_ctx_background())) {
  for (int i = 0; i < unary; i++) threads_.emplace_back([this] { UnaryLoop(); });
  for (int i = 0; i < streams; i++) threads_.emplace_back([this, i] { StreamLoop(i); });
}

Load::~Load() {
  if (stop_ != nullptr) Stop();
}

Load::Report Load::Stop() {
  crpc_ctx_cancel(stop_, CRPC_CANCELLED, "load stopped");
  for (std::thread &t : threads_) t.join();
  threads_.clear();
  crpc_ctx_release(stop_);
  stop_ = nullptr;
  return report_;
}

void Load::UnaryLoop() {
  std::string payload(64, 'x');
  while (!crpc_ctx_is_done(stop_)) {
    CallResult r = Unary(ch_, "/crpc.test.Test/Echo", payload, {}, timeout_ms_, stop_);
    if (crpc_ctx_is_done(stop_)) break;  // ended by Stop, not by the servers
    {
      std::lock_guard<std::mutex> l(mu_);
      if (r.code == CRPC_OK) {
        report_.unary_ok++;
        report_.per_backend[r.Trailer("x-backend")]++;
        report_.unary_ns.push_back(r.took_ns);
      } else {
        report_.unary_failed++;
        report_.unary_codes[std::string(crpc_code_name(r.code)) + ": " + r.message]++;
      }
    }
    if (pause_us_ > 0) crpc_ctx_sleep(stop_, pause_us_ * CRPC_MICROSECOND);
  }
}

// One endless stream after another: bidi Chat (a ping-pong every 10 ms)
// and server-streaming Count (a message every 10 ms), alternating. Either
// ends only when a server or proxy ends it (or Stop): each end is counted.
void Load::StreamLoop(int index) {
  for (int round = 0; !crpc_ctx_is_done(stop_); round++) {
    bool chat = (index + round) % 2 == 0;
    crpc_call *call = nullptr;
    crpc_code rc = crpc_call_start(ch_, stop_, chat ? "/crpc.test.Test/Chat" : "/crpc.test.Test/Count",
                                   nullptr, &call);
    long msgs = 0;
    if (rc == CRPC_OK) {
      {
        std::lock_guard<std::mutex> l(mu_);
        report_.streams_opened++;
      }
      if (!chat) {
        const char req[] = "0 16 10000";  // endless, 16 bytes every 10 ms
        rc = crpc_call_send(call, req, sizeof req - 1);
        if (rc == CRPC_OK) rc = crpc_call_close_send(call);
      }
      while (rc == CRPC_OK) {
        if (chat) {
          rc = crpc_call_send(call, "ping", 4);
          if (rc != CRPC_OK) break;
        }
        crpc_message m{};
        rc = crpc_call_recv(call, &m);
        if (rc != CRPC_OK) break;
        if (m.end) break;
        free(m.data);
        msgs++;
        if (chat && crpc_ctx_sleep(stop_, 10 * CRPC_MILLISECOND) != CRPC_OK) break;
      }
      crpc_status st{};
      rc = crpc_call_finish(call, &st);
      std::string why = std::string(crpc_code_name(rc)) + ": " + (st.message ? st.message : "");
      crpc_status_clear(&st);
      crpc_call_free(call);
      if (crpc_ctx_is_done(stop_)) break;
      std::lock_guard<std::mutex> l(mu_);
      report_.stream_messages += msgs;
      report_.stream_ends[why]++;
    } else {
      if (crpc_ctx_is_done(stop_)) break;
      std::lock_guard<std::mutex> l(mu_);
      report_.stream_ends[std::string(crpc_code_name(rc)) + ": (start failed)"]++;
      crpc_ctx_sleep(stop_, 10 * CRPC_MILLISECOND);
    }
  }
}

}  // namespace deploy
