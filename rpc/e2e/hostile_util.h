// What the hostile-peer tests (hostile_test, hostile_wire_test) and the
// bench command (bench:hostile_bench) share: a raw HTTP/2 client that
// writes whatever frames it is told to (HPACK through nghttp2's deflater,
// everything else by hand: an nghttp2 client session would refuse to send
// most of what an attacker sends), the attacks themselves, a well-behaved
// crpc client that measures its latency during an attack, memory and fd
// probes, and the methods the attacks aim at. No gtest here: the bench
// links it too; functions report what happened and the callers judge.
#ifndef CRPC_E2E_HOSTILE_UTIL_H
#define CRPC_E2E_HOSTILE_UTIL_H

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "crpc/server_async.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CRPC_HOSTILE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CRPC_HOSTILE_SANITIZER 1
#endif
#endif
#ifdef CRPC_HOSTILE_SANITIZER
// From the sanitizer runtime (sanitizer/allocator_interface.h, which
// Debian's gcc does not ship): live bytes of the sanitizer's allocator.
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
#endif

namespace crpc_hostile {

constexpr int64_t kMs = CRPC_MILLISECOND;
using Headers = std::vector<std::pair<std::string, std::string>>;

// ---- frames ------------------------------------------------------------------

inline std::string Frame(uint8_t type, uint8_t flags, int32_t sid, const std::string &payload) {
  std::string f(9, '\0');
  size_t n = payload.size();
  f[0] = static_cast<char>((n >> 16) & 0xff);
  f[1] = static_cast<char>((n >> 8) & 0xff);
  f[2] = static_cast<char>(n & 0xff);
  f[3] = static_cast<char>(type);
  f[4] = static_cast<char>(flags);
  f[5] = static_cast<char>((sid >> 24) & 0x7f);
  f[6] = static_cast<char>((sid >> 16) & 0xff);
  f[7] = static_cast<char>((sid >> 8) & 0xff);
  f[8] = static_cast<char>(sid & 0xff);
  return f + payload;
}

inline std::string U32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}

inline std::string Settings(const std::vector<std::pair<uint16_t, uint32_t>> &kv) {
  std::string p;
  for (const auto &e : kv) {
    p.push_back(static_cast<char>(e.first >> 8));
    p.push_back(static_cast<char>(e.first));
    p += U32(e.second);
  }
  return Frame(NGHTTP2_SETTINGS, 0, 0, p);
}

inline std::string WindowUpdate(int32_t sid, uint32_t inc) {
  return Frame(NGHTTP2_WINDOW_UPDATE, 0, sid, U32(inc));
}

inline std::string RstStream(int32_t sid, uint32_t code) {
  return Frame(NGHTTP2_RST_STREAM, 0, sid, U32(code));
}

// A gRPC length-prefixed message (uncompressed).
inline std::string GrpcMsg(const std::string &m) {
  return std::string(1, '\0') + U32(static_cast<uint32_t>(m.size())) + m;
}

const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A header block as a HEADERS frame and as many CONTINUATION frames as
// it needs, of at most 16 KiB each (the server's SETTINGS_MAX_FRAME_SIZE).
inline std::string HeaderBlockFrames(int32_t sid, const std::string &block, bool end_stream) {
  std::string out;
  size_t off = 0;
  bool head = true;
  while (off < block.size() || head) {
    size_t n = std::min<size_t>(16384, block.size() - off);
    uint8_t flags = off + n == block.size() ? NGHTTP2_FLAG_END_HEADERS : 0;
    if (head && end_stream) flags |= NGHTTP2_FLAG_END_STREAM;
    out += Frame(head ? NGHTTP2_HEADERS : NGHTTP2_CONTINUATION, flags, sid, block.substr(off, n));
    off += n;
    head = false;
  }
  return out;
}

inline Headers RequestHeaders(const std::string &path, const Headers &extra = {}) {
  Headers h = {{":method", "POST"},        {":scheme", "http"},
               {":path", path},            {":authority", "localhost"},
               {"content-type", "application/grpc"}, {"te", "trailers"}};
  h.insert(h.end(), extra.begin(), extra.end());
  return h;
}

// HPACK encoder of one connection (its dynamic table is per connection).
class Hpack {
 public:
  Hpack() { nghttp2_hd_deflate_new(&d_, 4096); }
  ~Hpack() { nghttp2_hd_deflate_del(d_); }
  Hpack(const Hpack &) = delete;
  Hpack &operator=(const Hpack &) = delete;
  std::string Encode(const Headers &h) {
    std::vector<nghttp2_nv> nv;
    for (const auto &e : h) {
      nv.push_back({(uint8_t *)e.first.data(), (uint8_t *)e.second.data(), e.first.size(),
                    e.second.size(), NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(d_, nv.data(), nv.size()), '\0');
    ssize_t n = nghttp2_hd_deflate_hd(d_, (uint8_t *)&out[0], out.size(), nv.data(), nv.size());
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }

 private:
  nghttp2_hd_deflater *d_ = nullptr;
};

// ---- a raw HTTP/2 client connection ---------------------------------------

class RawConn {
 public:
  struct Stream {
    std::map<std::string, std::string> headers;  // response headers + trailers
    size_t data = 0;                             // DATA payload bytes
    bool ended = false;                          // END_STREAM or RST_STREAM
    int64_t rst = -1;
  };

  // Connects to 127.0.0.1:port; with `preface`, sends the client preface
  // and a SETTINGS frame with `settings`. rcvbuf > 0: that small a socket
  // receive buffer (a client that reads slowly, as the kernel sees it).
  explicit RawConn(int port, bool preface = true,
                   const std::vector<std::pair<uint16_t, uint32_t>> &settings = {},
                   int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ >= 0 && rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
      dead_ = eof_ = true;
      return;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    nghttp2_hd_inflate_new(&inflater_);
    answer = preface;
    if (preface) Write(std::string(kPreface) + Settings(settings));
  }
  ~RawConn() {
    if (inflater_ != nullptr) nghttp2_hd_inflate_del(inflater_);
    Close();
  }
  RawConn(const RawConn &) = delete;
  RawConn &operator=(const RawConn &) = delete;

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // Sends WINDOW_UPDATEs for the DATA it receives (off: a reader that
  // never reads, as far as flow control can tell).
  bool auto_window = true;
  // Reads while a write waits for room (off: floods from a client that
  // never reads what the server answers).
  bool read_while_writing = true;
  // Acknowledges SETTINGS and PINGs (off without a preface: such a client
  // sends nothing it is not told to).
  bool answer = true;

  // Writes all of bytes, reading meanwhile (a server that writes to a
  // client that never reads must not deadlock the test); false once the
  // connection is dead or the socket stayed full for timeout_ms.
  bool Write(const std::string &bytes, int timeout_ms = 2000) {
    size_t off = 0;
    int64_t until = crpc_now_ns() + timeout_ms * kMs;
    while (off < bytes.size() && !dead_) {
      ssize_t w = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (w > 0) {
        off += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        dead_ = true;
        break;
      }
      if (crpc_now_ns() > until) return false;
      pollfd p{fd_, static_cast<short>(read_while_writing ? POLLOUT | POLLIN : POLLOUT), 0};
      poll(&p, 1, 10);
      if (p.revents & (POLLERR | POLLHUP)) dead_ = true;
      // Not from inside Parse (an answer to a frame being parsed): that
      // would parse on top of the frames still being walked.
      if (read_while_writing && !parsing_ && (p.revents & POLLIN)) ReadAvailable();
    }
    return !dead_;
  }
  void Headers(int32_t sid, const crpc_hostile::Headers &h, bool end_stream) {
    Write(HeadersFrame(sid, h, end_stream));
  }
  // HEADERS (and CONTINUATION frames past 16 KiB) for h.
  std::string HeadersFrame(int32_t sid, const crpc_hostile::Headers &h, bool end_stream) {
    return HeaderBlockFrames(sid, hpack_.Encode(h), end_stream);
  }
  void Data(int32_t sid, const std::string &bytes, bool end_stream) {
    Write(Frame(NGHTTP2_DATA, end_stream ? NGHTTP2_FLAG_END_STREAM : 0, sid, bytes));
  }
  Hpack &hpack() { return hpack_; }

  // Reads what has arrived, without waiting.
  void ReadAvailable() {
    char buf[65536];
    for (;;) {
      if (fd_ < 0 || eof_) return;
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        in_.append(buf, static_cast<size_t>(n));
        Parse();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) eof_ = true;
      return;
    }
  }
  // Reads until pred() holds, EOF, or timeout_ms.
  bool ReadUntil(const std::function<bool()> &pred, int64_t timeout_ms = 5000) {
    int64_t until = crpc_now_ns() + timeout_ms * kMs;
    for (;;) {
      ReadAvailable();
      if (pred()) return true;
      if (eof_ || fd_ < 0) return pred();
      int64_t left = (until - crpc_now_ns()) / kMs;
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 50)));
    }
  }
  // Reads until the server closes (EOF or reset); false after timeout_ms.
  bool WaitClosed(int64_t timeout_ms = 5000) {
    return ReadUntil([&] { return eof_; }, timeout_ms);
  }

  Stream &stream(int32_t sid) { return streams_[sid]; }
  std::map<int32_t, Stream> &streams() { return streams_; }
  const std::vector<uint32_t> &goaways() const { return goaways_; }
  const std::string &goaway_debug() const { return goaway_debug_; }
  // The last stream id of the latest GOAWAY; -1 if none came.
  int32_t goaway_last() const { return goaway_last_; }
  bool eof() const { return eof_; }
  bool dead() const { return dead_ || eof_; }
  int fd() const { return fd_; }

 private:
  void Parse() {
    parsing_ = true;
    size_t at = 0;
    while (in_.size() - at >= 9) {
      const uint8_t *h = reinterpret_cast<const uint8_t *>(in_.data() + at);
      size_t len = (size_t(h[0]) << 16) | (size_t(h[1]) << 8) | h[2];
      if (in_.size() - at < 9 + len) break;
      int32_t sid = static_cast<int32_t>(((uint32_t(h[5]) & 0x7f) << 24) |
                                         (uint32_t(h[6]) << 16) | (uint32_t(h[7]) << 8) | h[8]);
      OnFrame(h[3], h[4], sid, in_.substr(at + 9, len));
      at += 9 + len;
    }
    in_.erase(0, at);
    parsing_ = false;
  }
  static uint32_t Get32(const std::string &p, size_t at) {
    return (uint32_t(uint8_t(p[at])) << 24) | (uint32_t(uint8_t(p[at + 1])) << 16) |
           (uint32_t(uint8_t(p[at + 2])) << 8) | uint8_t(p[at + 3]);
  }
  void OnFrame(uint8_t type, uint8_t flags, int32_t sid, const std::string &payload) {
    switch (type) {
      case NGHTTP2_DATA:
        streams_[sid].data += payload.size();
        if (auto_window && !payload.empty()) {
          uint32_t n = static_cast<uint32_t>(payload.size());
          Write(WindowUpdate(0, n) + WindowUpdate(sid, n));
        }
        if (flags & NGHTTP2_FLAG_END_STREAM) streams_[sid].ended = true;
        break;
      case NGHTTP2_HEADERS:
      case NGHTTP2_CONTINUATION: {
        size_t off = 0, pad = 0;
        if (type == NGHTTP2_HEADERS) {
          if ((flags & NGHTTP2_FLAG_PADDED) && !payload.empty()) {
            pad = uint8_t(payload[0]);
            off = 1;
          }
          if (flags & NGHTTP2_FLAG_PRIORITY) off += 5;
          block_ = payload.size() >= off + pad ? payload.substr(off, payload.size() - off - pad)
                                               : std::string();
          block_end_stream_ = flags & NGHTTP2_FLAG_END_STREAM;
        } else {
          block_ += payload;
        }
        if (flags & NGHTTP2_FLAG_END_HEADERS) Inflate(sid);
        break;
      }
      case NGHTTP2_RST_STREAM:
        streams_[sid].ended = true;
        streams_[sid].rst = payload.size() >= 4 ? Get32(payload, 0) : 0;
        break;
      case NGHTTP2_SETTINGS:
        if (answer && !(flags & NGHTTP2_FLAG_ACK)) {
          Write(Frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""));
        }
        break;
      case NGHTTP2_PING:
        if (answer && !(flags & NGHTTP2_FLAG_ACK)) {
          Write(Frame(NGHTTP2_PING, NGHTTP2_FLAG_ACK, 0, payload));
        }
        break;
      case NGHTTP2_GOAWAY:
        if (payload.size() >= 8) {
          goaway_last_ = static_cast<int32_t>(Get32(payload, 0) & 0x7fffffff);
          goaways_.push_back(Get32(payload, 4));
          goaway_debug_ = payload.substr(8);
        }
        break;
      default:
        break;
    }
  }
  void Inflate(int32_t sid) {
    const uint8_t *p = reinterpret_cast<const uint8_t *>(block_.data());
    size_t left = block_.size();
    for (;;) {
      nghttp2_nv nv;
      int fl = 0;
      ssize_t n = nghttp2_hd_inflate_hd2(inflater_, &nv, &fl, p, left, 1);
      if (n < 0) break;  // the server never sends bad HPACK; stop quietly
      p += n;
      left -= static_cast<size_t>(n);
      if (fl & NGHTTP2_HD_INFLATE_EMIT) {
        streams_[sid].headers[std::string((const char *)nv.name, nv.namelen)] =
            std::string((const char *)nv.value, nv.valuelen);
      }
      if (fl & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_);
        break;
      }
      if ((fl & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) break;
    }
    if (block_end_stream_) streams_[sid].ended = true;
  }

  int fd_ = -1;
  Hpack hpack_;
  nghttp2_hd_inflater *inflater_ = nullptr;
  std::string in_, block_;
  bool block_end_stream_ = false;
  std::map<int32_t, Stream> streams_;
  std::vector<uint32_t> goaways_;
  std::string goaway_debug_;
  int32_t goaway_last_ = -1;
  bool eof_ = false, dead_ = false;
  bool parsing_ = false;
};

inline std::string StatusOf(RawConn &c, int32_t sid) {
  auto &h = c.stream(sid).headers;
  auto it = h.find("grpc-status");
  return it == h.end() ? "<none>" : it->second;
}

// Lowers the calling thread's priority (nice 10). Flooding attackers call
// it: they share the machine's CPUs with the server and the good client
// here, where a real attacker would use its own, so without it the good
// client's latency would measure the attacker's threads hogging the CPUs
// rather than the server.
inline void NiceAttacker() { setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10); }

// ---- probes ----------------------------------------------------------------

// Live heap bytes of this process: the sanitizer allocator's count under
// ASan/TSan (their RSS also holds quarantine and shadow memory), else
// glibc's (every arena, mmapped chunks included).
inline size_t HeapBytes() {
#ifdef CRPC_HOSTILE_SANITIZER
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

// A field of /proc/PID/status in KiB ("VmRSS", "VmHWM"); -1 if absent.
inline long ProcStatusKb(int pid, const char *field) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (f == nullptr) return -1;
  char line[256];
  long kb = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f) != nullptr) {
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      kb = strtol(line + n + 1, nullptr, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

inline int CountFds() {
  DIR *d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (readdir(d) != nullptr) n++;
  closedir(d);
  return n - 3;  // ".", ".." and the DIR's own fd
}

// Samples a value every 2 ms on a thread of its own and keeps the peak.
class PeakSampler {
 public:
  explicit PeakSampler(std::function<long long()> sample) : sample_(std::move(sample)) {
    peak_ = base_ = sample_();
    t_ = std::thread([this] {
      while (!stop_.load()) {
        long long v = sample_();
        long long p = peak_.load();
        while (v > p && !peak_.compare_exchange_weak(p, v)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  ~PeakSampler() { Stop(); }
  // Peak minus the value at construction.
  long long Stop() {
    if (t_.joinable()) {
      stop_ = true;
      t_.join();
    }
    return peak_.load() - base_;
  }

 private:
  std::function<long long()> sample_;
  long long base_ = 0;
  std::atomic<long long> peak_{0};
  std::atomic<bool> stop_{false};
  std::thread t_;
};

// ---- the well-behaved client ------------------------------------------------

struct GoodStats {
  int ok = 0, failed = 0;
  double p50_ms = 0, max_ms = 0;
  std::string first_failure;
};

// Makes unary calls back to back (a pause of `gap_ms` between them) on a
// channel of its own, from its own thread, until Stop.
class GoodClient {
 public:
  GoodClient(const std::string &target, std::string path, int gap_ms = 5)
      : path_(std::move(path)), gap_ms_(gap_ms) {
    ch_ = crpc_channel_new(target.c_str(), nullptr);
  }
  ~GoodClient() {
    Stop();
    crpc_channel_free(ch_);
  }
  // One call, outside any measurement (connects the channel).
  bool Warm() { return Call(nullptr); }
  void Start() {
    t_ = std::thread([this] {
      while (!stop_.load()) {
        Call(&lat_);
        std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms_));
      }
    });
  }
  GoodStats Stop() {
    if (t_.joinable()) {
      stop_ = true;
      t_.join();
    }
    GoodStats s = stats_;
    std::vector<int64_t> v = lat_;
    std::sort(v.begin(), v.end());
    if (!v.empty()) {
      s.p50_ms = static_cast<double>(v[v.size() / 2]) / 1e6;
      s.max_ms = static_cast<double>(v.back()) / 1e6;
    }
    return s;
  }

 private:
  bool Call(std::vector<int64_t> *lat) {
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND);
    crpc_message resp{};
    crpc_status st{};
    int64_t t0 = crpc_now_ns();
    crpc_code rc = crpc_unary_call(ch_, ctx, path_.c_str(), nullptr, "ping", 4, &resp, &st);
    int64_t t1 = crpc_now_ns();
    free(resp.data);
    if (lat != nullptr) {
      lat->push_back(t1 - t0);
      if (rc == CRPC_OK) {
        stats_.ok++;
      } else {
        if (stats_.failed++ == 0) {
          stats_.first_failure = std::string(crpc_code_name(rc)) + ": " +
                                 (st.message != nullptr ? st.message : "");
        }
      }
    }
    crpc_status_clear(&st);
    crpc_ctx_release(ctx);
    return rc == CRPC_OK;
  }

  crpc_channel *ch_ = nullptr;
  std::string path_;
  int gap_ms_;
  std::thread t_;
  std::atomic<bool> stop_{false};
  std::vector<int64_t> lat_;
  GoodStats stats_;
};

// ---- the methods the attacks aim at -------------------------------------------

#define CRPC_HOSTILE_SVC "/crpc.hostile.H/"
const char kUnary[] = CRPC_HOSTILE_SVC "Unary";            // blocking echo
const char kUnaryAsync[] = CRPC_HOSTILE_SVC "UnaryAsync";  // async echo
const char kStream[] = CRPC_HOSTILE_SVC "Stream";          // blocking, "n size"
const char kStreamAsync[] = CRPC_HOSTILE_SVC "StreamAsync";  // reactor, "n size"
const char kSink[] = CRPC_HOSTILE_SVC "Sink";  // blocking client streaming

// What the handlers saw (invocations, and how many run right now).
struct Counters {
  std::atomic<int> invoked{0}, running{0}, max_running{0};
  std::atomic<int> sink_invoked{0};
  void Enter() {
    invoked++;
    int r = ++running;
    int m = max_running.load();
    while (r > m && !max_running.compare_exchange_weak(m, r)) {
    }
  }
};

// Messages are sent from one large read-only mapping of zero pages, so a
// handler's own buffer costs no memory: what an attack makes the server
// hold is crpc's doing only.
inline const uint8_t *ZeroRegion(size_t len) {
  static const size_t kMax = 256u << 20;
  static void *region = mmap(nullptr, kMax, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return len <= kMax && region != MAP_FAILED ? static_cast<const uint8_t *>(region) : nullptr;
}

inline bool ParseNSize(const crpc_message &m, long long *n, long long *size) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.*s", static_cast<int>(m.len), (const char *)m.data);
  return sscanf(buf, "%lld %lld", n, size) == 2 && *n >= 0 && *size >= 0 &&
         ZeroRegion(static_cast<size_t>(*size)) != nullptr;
}

inline crpc_code UnaryFn(crpc_server_call *call, const crpc_ctx *, void *ud) {
  auto *c = static_cast<Counters *>(ud);
  c->Enter();
  crpc_message m{};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc == CRPC_OK && !m.end) rc = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  c->running--;
  return rc;
}

inline crpc_code UnaryAsyncFn(crpc_server_call *call, const crpc_ctx *, const crpc_message *req,
                              void *ud) {
  static_cast<Counters *>(ud)->invoked++;
  return crpc_server_call_send_async(call, req->data, req->len, 0);
}

inline crpc_code StreamFn(crpc_server_call *call, const crpc_ctx *, void *ud) {
  auto *c = static_cast<Counters *>(ud);
  c->Enter();
  crpc_message m{};
  crpc_code rc = crpc_server_call_recv(call, &m);
  long long n = 0, size = 0;
  if (rc == CRPC_OK && (m.end || !ParseNSize(m, &n, &size))) rc = CRPC_INVALID_ARGUMENT;
  free(m.data);
  for (long long i = 0; rc == CRPC_OK && i < n; i++) {
    rc = crpc_server_call_send(call, ZeroRegion(static_cast<size_t>(size)),
                               static_cast<size_t>(size));
  }
  c->running--;
  return rc;
}

inline crpc_code SinkFn(crpc_server_call *call, const crpc_ctx *, void *ud) {
  auto *c = static_cast<Counters *>(ud);
  c->sink_invoked++;
  c->Enter();
  crpc_code rc;
  for (;;) {
    crpc_message m{};
    rc = crpc_server_call_recv(call, &m);
    free(m.data);
    if (rc != CRPC_OK || m.end) break;
  }
  c->running--;
  return rc == CRPC_OK ? crpc_server_call_send(call, "", 0) : rc;
}

// The async stream: sends n messages of size while the buffer has room.
struct AsyncStream {
  long long left = 0, size = 0;
};
inline void AsyncPump(crpc_server_call *call, void *state) {
  auto *s = static_cast<AsyncStream *>(state);
  while (s->left > 0 && crpc_server_call_can_send(call)) {
    if (crpc_server_call_send_async(call, ZeroRegion(static_cast<size_t>(s->size)),
                                    static_cast<size_t>(s->size), 0) != CRPC_OK) {
      return;  // the ctx ended: on_cancel finishes
    }
    s->left--;
  }
  if (s->left == 0) {
    s->left = -1;
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  }
}
inline void *AsyncStart(crpc_server_call *, const crpc_ctx *, void *ud) {
  static_cast<Counters *>(ud)->invoked++;
  return new AsyncStream();
}
inline void AsyncMessage(crpc_server_call *call, const crpc_message *msg, void *state) {
  auto *s = static_cast<AsyncStream *>(state);
  if (msg->end || s->left != 0) return;
  long long n, size;
  if (!ParseNSize(*msg, &n, &size)) {
    s->left = -1;
    crpc_server_call_finish(call, CRPC_INVALID_ARGUMENT, "want 'n size'");
    return;
  }
  s->left = n;
  s->size = size;
  AsyncPump(call, state);
}
inline void AsyncCancel(crpc_server_call *call, const crpc_cause *cause, void *) {
  crpc_server_call_finish(call, cause->code, nullptr);
}
inline void AsyncDone(crpc_server_call *, void *state) { delete static_cast<AsyncStream *>(state); }

inline bool AddHostileMethods(crpc_server *s, Counters *c) {
  crpc_server_reactor r{};
  r.on_start = AsyncStart;
  r.on_message = AsyncMessage;
  r.on_send_ready = AsyncPump;
  r.on_cancel = AsyncCancel;
  r.on_done = AsyncDone;
  return crpc_server_add_method(s, kUnary, CRPC_UNARY, UnaryFn, c) == CRPC_OK &&
         crpc_server_add_unary_async(s, kUnaryAsync, UnaryAsyncFn, c) == CRPC_OK &&
         crpc_server_add_method(s, kStream, CRPC_SERVER_STREAMING, StreamFn, c) == CRPC_OK &&
         crpc_server_add_async_method(s, kStreamAsync, CRPC_SERVER_STREAMING, &r, c) ==
             CRPC_OK &&
         crpc_server_add_method(s, kSink, CRPC_CLIENT_STREAMING, SinkFn, c) == CRPC_OK;
}

}  // namespace crpc_hostile

#endif  // CRPC_E2E_HOSTILE_UTIL_H
