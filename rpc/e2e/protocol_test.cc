// Protocol rules a hostile or broken client can break, with the answer
// gRPC servers give (issue 17, item 6), over real sockets with HTTP/2
// frames written byte by byte by the test (HPACK through nghttp2's
// deflater, nothing else of nghttp2 on the client side: an nghttp2 client
// session would refuse to send what these tests need to send).
//   - A HEADERS frame opening a stream whose id is not above one the
//     client already opened: connection error PROTOCOL_ERROR (RFC 9113
//     §5.1.1), i.e. GOAWAY(PROTOCOL_ERROR) and the connection closed, while
//     other connections are served.
//   - A unary or server-streaming call with more than one request message:
//     INTERNAL, as grpc-go and gRPC C-core answer, for blocking handlers and
//     for async ones.
// The first test records what nghttp2 itself does with a decreasing stream
// id on a server session (nothing: the header block is dropped without a
// callback), which is why crpc checks it (server_conn.c: on_begin_frame).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crpc/server_async.h"
#include "rpc/e2e/e2e_util.h"

namespace crpc_e2e {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// One HTTP/2 frame: 9-byte header + payload.
std::string Frame(uint8_t type, uint8_t flags, int32_t sid, const std::string &payload) {
  std::string f;
  size_t n = payload.size();
  f.push_back(static_cast<char>((n >> 16) & 0xff));
  f.push_back(static_cast<char>((n >> 8) & 0xff));
  f.push_back(static_cast<char>(n & 0xff));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  f.push_back(static_cast<char>((sid >> 24) & 0x7f));
  f.push_back(static_cast<char>((sid >> 16) & 0xff));
  f.push_back(static_cast<char>((sid >> 8) & 0xff));
  f.push_back(static_cast<char>(sid & 0xff));
  return f + payload;
}

// A gRPC length-prefixed message (uncompressed).
std::string GrpcMsg(const std::string &m) {
  std::string p(5, '\0');
  uint32_t n = static_cast<uint32_t>(m.size());
  p[1] = static_cast<char>(n >> 24);
  p[2] = static_cast<char>(n >> 16);
  p[3] = static_cast<char>(n >> 8);
  p[4] = static_cast<char>(n);
  return p + m;
}

Headers RequestHeaders(const std::string &path, const Headers &extra = {}) {
  Headers h = {{":method", "POST"},
               {":scheme", "http"},
               {":path", path},
               {":authority", "localhost"},
               {"content-type", "application/grpc"},
               {"te", "trailers"}};
  h.insert(h.end(), extra.begin(), extra.end());
  return h;
}

// HPACK-encodes header lists for one connection (the encoder's dynamic
// table is per connection, so one Hpack per client).
class Hpack {
 public:
  Hpack() { EXPECT_EQ(0, nghttp2_hd_deflate_new(&d_, 4096)); }
  ~Hpack() { nghttp2_hd_deflate_del(d_); }
  std::string Encode(const Headers &h) {
    std::vector<nghttp2_nv> nv;
    for (const auto &e : h) {
      nv.push_back({(uint8_t *)e.first.data(), (uint8_t *)e.second.data(), e.first.size(),
                    e.second.size(), NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(d_, nv.data(), nv.size()), '\0');
    ssize_t n = nghttp2_hd_deflate_hd(d_, (uint8_t *)&out[0], out.size(), nv.data(), nv.size());
    EXPECT_GE(n, 0);
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }

 private:
  nghttp2_hd_deflater *d_ = nullptr;
};

const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// ---- what nghttp2 1.52 does on its own -----------------------------------------

// Records every server-session callback a byte stream triggers.
struct Probe {
  std::vector<std::string> events;
  static int BeginFrame(nghttp2_session *, const nghttp2_frame_hd *hd, void *ud) {
    if (hd->type == NGHTTP2_HEADERS) {
      static_cast<Probe *>(ud)->events.push_back("begin_frame HEADERS " +
                                                 std::to_string(hd->stream_id));
    }
    return 0;
  }
  static int BeginHeaders(nghttp2_session *, const nghttp2_frame *f, void *ud) {
    static_cast<Probe *>(ud)->events.push_back("begin_headers " +
                                               std::to_string(f->hd.stream_id));
    return 0;
  }
  static int FrameRecv(nghttp2_session *, const nghttp2_frame *f, void *ud) {
    if (f->hd.type == NGHTTP2_HEADERS) {
      static_cast<Probe *>(ud)->events.push_back("frame_recv HEADERS " +
                                                 std::to_string(f->hd.stream_id));
    }
    return 0;
  }
  static int Invalid(nghttp2_session *, const nghttp2_frame *f, int err, void *ud) {
    static_cast<Probe *>(ud)->events.push_back("invalid_frame_recv " +
                                               std::to_string(f->hd.stream_id) + " " +
                                               nghttp2_strerror(err));
    return 0;
  }
  static int Header(nghttp2_session *, const nghttp2_frame *f, const uint8_t *, size_t,
                    const uint8_t *, size_t, uint8_t, void *ud) {
    auto *p = static_cast<Probe *>(ud);
    std::string e = "header " + std::to_string(f->hd.stream_id);
    if (p->events.empty() || p->events.back() != e) p->events.push_back(e);
    return 0;
  }
  static int Close(nghttp2_session *, int32_t sid, uint32_t code, void *ud) {
    static_cast<Probe *>(ud)->events.push_back("stream_close " + std::to_string(sid) + " " +
                                               std::to_string(code));
    return 0;
  }
  static int ErrorCb(nghttp2_session *, int code, const char *msg, size_t len, void *ud) {
    static_cast<Probe *>(ud)->events.push_back("error " + std::to_string(code) + " " +
                                               std::string(msg, len));
    return 0;
  }
};

std::string Join(const std::vector<std::string> &v) {
  std::string s;
  for (const auto &e : v) s += "  " + e + "\n";
  return s;
}

// Feeds a server session: stream 5 (a complete request, answered), then
// HEADERS for stream 3 (never used: a decreasing id), then for stream 5
// again. For stream 3 nghttp2 drops the header block without telling the
// application anything but on_begin_frame, and answers nothing: no
// GOAWAY, no RST_STREAM (its own comment: it cannot remember every stream
// it saw). Stream 5, closed but still remembered, is a connection error
// STREAM_CLOSED of nghttp2's own (RFC 9113 §5.1). crpc therefore checks
// the id in on_begin_frame, for streams nghttp2 has no state for.
TEST(Nghttp2Probe, DecreasingStreamIdIsDroppedSilentlyByTheServerSession) {
  printf("nghttp2 %s\n", nghttp2_version(0)->version_str);
  Probe probe;
  nghttp2_session_callbacks *cbs;
  ASSERT_EQ(0, nghttp2_session_callbacks_new(&cbs));
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, Probe::BeginFrame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, Probe::BeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Probe::Header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Probe::FrameRecv);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, Probe::Invalid);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Probe::Close);
  nghttp2_session_callbacks_set_error_callback2(cbs, Probe::ErrorCb);
  nghttp2_session *s;
  ASSERT_EQ(0, nghttp2_session_server_new(&s, cbs, &probe));
  nghttp2_session_callbacks_del(cbs);
  auto pump_out = [&] {  // what the server session would write
    std::vector<std::string> frames;
    const uint8_t *p;
    ssize_t n;
    std::string out;
    while ((n = nghttp2_session_mem_send(s, &p)) > 0) out.append((const char *)p, n);
    for (size_t i = 0; i + 9 <= out.size();) {
      size_t len = (size_t(uint8_t(out[i])) << 16) | (size_t(uint8_t(out[i + 1])) << 8) |
                   uint8_t(out[i + 2]);
      frames.push_back("type " + std::to_string(uint8_t(out[i + 3])));
      i += 9 + len;
    }
    return frames;
  };
  Hpack hp;
  auto feed = [&](const std::string &bytes) {
    return nghttp2_session_mem_recv(s, (const uint8_t *)bytes.data(), bytes.size());
  };
  const std::string req = hp.Encode(RequestHeaders("/a.B/C"));
  ASSERT_GT(feed(kPreface + Frame(NGHTTP2_SETTINGS, 0, 0, "")), 0);
  ASSERT_GT(feed(Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 5,
                       req)),
            0);
  nghttp2_nv status = {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE};
  ASSERT_EQ(0, nghttp2_submit_response(s, 5, &status, 1, nullptr));
  pump_out();  // stream 5 is now closed both ways
  probe.events.push_back("-- HEADERS for stream 3");
  ssize_t rc3 = feed(Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM,
                           3, hp.Encode(RequestHeaders("/a.B/C"))));
  std::vector<std::string> out3 = pump_out();
  probe.events.push_back("-- HEADERS for stream 5 again");
  ssize_t rc5 = feed(Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM,
                           5, hp.Encode(RequestHeaders("/a.B/C"))));
  std::vector<std::string> out5 = pump_out();
  printf("server session callbacks:\n%s", Join(probe.events).c_str());
  printf("mem_recv for stream 3: %zd, frames sent after it: %zu; for stream 5 again: %zd, "
         "frames sent: %zu; want_read %d\n",
         rc3, out3.size(), rc5, out5.size(), nghttp2_session_want_read(s));
  EXPECT_GT(rc3, 0);
  EXPECT_GT(rc5, 0);
  EXPECT_TRUE(out3.empty()) << Join(out3);
  EXPECT_EQ(std::vector<std::string>{"type 7"}, out5) << "a GOAWAY";
  size_t mark3 = std::find(probe.events.begin(), probe.events.end(),
                           "-- HEADERS for stream 3") - probe.events.begin();
  std::vector<std::string> after(probe.events.begin() + mark3, probe.events.end());
  EXPECT_EQ((std::vector<std::string>{"-- HEADERS for stream 3", "begin_frame HEADERS 3",
                                      "-- HEADERS for stream 5 again", "begin_frame HEADERS 5",
                                      "invalid_frame_recv 5 Stream was already closed or invalid"}),
            after)
      << Join(probe.events);
  nghttp2_session_del(s);
}

// ---- a raw client on a real socket -------------------------------------------

class RawConn {
 public:
  struct Stream {
    std::map<std::string, std::string> headers;  // response headers + trailers
    std::string data;
    bool ended = false;  // END_STREAM or RST_STREAM from the server
    int64_t rst = -1;
  };

  explicit RawConn(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    EXPECT_EQ(0, connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    EXPECT_EQ(0, nghttp2_hd_inflate_new(&inflater_));
    Write(kPreface + Frame(NGHTTP2_SETTINGS, 0, 0, ""));
  }
  ~RawConn() {
    nghttp2_hd_inflate_del(inflater_);
    if (fd_ >= 0) close(fd_);
  }

  // Between Cork and Uncork, writes are gathered and go in one send.
  void Cork() { corked_ = true; }
  void Uncork() {
    corked_ = false;
    Write(pending_);
    pending_.clear();
  }
  void Write(const std::string &bytes) {
    if (corked_) {
      pending_ += bytes;
      return;
    }
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t w = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (w <= 0) return;  // the server may have closed: the reads tell
      off += static_cast<size_t>(w);
    }
  }
  void Headers(int32_t sid, const crpc_e2e::Headers &h, bool end_stream) {
    uint8_t flags = NGHTTP2_FLAG_END_HEADERS | (end_stream ? NGHTTP2_FLAG_END_STREAM : 0);
    Write(Frame(NGHTTP2_HEADERS, flags, sid, hpack_.Encode(h)));
  }
  void Data(int32_t sid, const std::string &bytes, bool end_stream) {
    Write(Frame(NGHTTP2_DATA, end_stream ? NGHTTP2_FLAG_END_STREAM : 0, sid, bytes));
  }
  // A whole request: HEADERS, then every message in one DATA frame with
  // END_STREAM (so they arrive together).
  void Request(int32_t sid, const std::string &path, const std::vector<std::string> &msgs,
               const crpc_e2e::Headers &extra = {}) {
    Headers(sid, RequestHeaders(path, extra), false);
    std::string body;
    for (const auto &m : msgs) body += GrpcMsg(m);
    Data(sid, body, true);
  }

  // Reads and parses frames until pred() holds, EOF, or the time is up.
  bool ReadUntil(const std::function<bool()> &pred, int64_t timeout_ms = 5000) {
    int64_t until = crpc_now_ns() + timeout_ms * kMs;
    for (;;) {
      if (pred()) return true;
      if (eof_) return false;
      int64_t left = (until - crpc_now_ns()) / kMs;
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[16384];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = true;  // EOF, or a reset after the server closed
        continue;
      }
      in_.append(buf, static_cast<size_t>(n));
      Parse();
    }
  }

  Stream &stream(int32_t sid) { return streams_[sid]; }
  bool StreamEnded(int32_t sid) { return streams_[sid].ended; }
  bool goaway() const { return goaway_; }
  uint32_t goaway_code() const { return goaway_code_; }
  int32_t goaway_last() const { return goaway_last_; }
  // Every GOAWAY's error code, in order (one is expected).
  const std::vector<uint32_t> &goaways() const { return goaways_; }
  bool eof() const { return eof_; }

 private:
  void Parse() {
    while (in_.size() >= 9) {
      size_t len = (size_t(uint8_t(in_[0])) << 16) | (size_t(uint8_t(in_[1])) << 8) |
                   uint8_t(in_[2]);
      if (in_.size() < 9 + len) return;
      uint8_t type = uint8_t(in_[3]), flags = uint8_t(in_[4]);
      int32_t sid = static_cast<int32_t>(((uint32_t(uint8_t(in_[5])) & 0x7f) << 24) |
                                         (uint32_t(uint8_t(in_[6])) << 16) |
                                         (uint32_t(uint8_t(in_[7])) << 8) | uint8_t(in_[8]));
      std::string payload = in_.substr(9, len);
      in_.erase(0, 9 + len);
      OnFrame(type, flags, sid, payload);
    }
  }
  static uint32_t U32(const std::string &p, size_t at) {
    return (uint32_t(uint8_t(p[at])) << 24) | (uint32_t(uint8_t(p[at + 1])) << 16) |
           (uint32_t(uint8_t(p[at + 2])) << 8) | uint8_t(p[at + 3]);
  }
  void OnFrame(uint8_t type, uint8_t flags, int32_t sid, std::string payload) {
    switch (type) {
      case NGHTTP2_DATA:
        if (flags & NGHTTP2_FLAG_PADDED) payload = payload.substr(1);  // pad ignored
        streams_[sid].data += payload;
        // Keep the server's windows open for long answers.
        if (!payload.empty()) {
          std::string inc(4, '\0');
          inc[0] = static_cast<char>(payload.size() >> 24);
          inc[1] = static_cast<char>(payload.size() >> 16);
          inc[2] = static_cast<char>(payload.size() >> 8);
          inc[3] = static_cast<char>(payload.size());
          Write(Frame(NGHTTP2_WINDOW_UPDATE, 0, 0, inc) +
                Frame(NGHTTP2_WINDOW_UPDATE, 0, sid, inc));
        }
        if (flags & NGHTTP2_FLAG_END_STREAM) streams_[sid].ended = true;
        break;
      case NGHTTP2_HEADERS:
      case NGHTTP2_CONTINUATION: {
        size_t off = 0, pad = 0;
        if (type == NGHTTP2_HEADERS && (flags & NGHTTP2_FLAG_PADDED)) {
          pad = uint8_t(payload[0]);
          off = 1;
        }
        if (type == NGHTTP2_HEADERS && (flags & NGHTTP2_FLAG_PRIORITY)) off += 5;
        if (type == NGHTTP2_HEADERS) {
          block_ = payload.substr(off, payload.size() - off - pad);
          block_end_stream_ = flags & NGHTTP2_FLAG_END_STREAM;
        } else {
          block_ += payload;
        }
        if (flags & NGHTTP2_FLAG_END_HEADERS) Inflate(sid);
        break;
      }
      case NGHTTP2_RST_STREAM:
        streams_[sid].ended = true;
        streams_[sid].rst = payload.size() >= 4 ? U32(payload, 0) : 0;
        break;
      case NGHTTP2_SETTINGS:
        if (!(flags & NGHTTP2_FLAG_ACK)) Write(Frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""));
        break;
      case NGHTTP2_PING:
        if (!(flags & NGHTTP2_FLAG_ACK)) Write(Frame(NGHTTP2_PING, NGHTTP2_FLAG_ACK, 0, payload));
        break;
      case NGHTTP2_GOAWAY:
        goaway_ = true;
        goaway_last_ = static_cast<int32_t>(U32(payload, 0) & 0x7fffffff);
        goaway_code_ = U32(payload, 4);
        goaways_.push_back(goaway_code_);
        break;
      default:
        break;
    }
  }
  void Inflate(int32_t sid) {
    const uint8_t *p = (const uint8_t *)block_.data();
    size_t left = block_.size();
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      ssize_t n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, p, left, 1);
      ASSERT_GE(n, 0) << "bad HPACK from the server";
      p += n;
      left -= static_cast<size_t>(n);
      if (flags & NGHTTP2_HD_INFLATE_EMIT) {
        streams_[sid].headers[std::string((const char *)nv.name, nv.namelen)] =
            std::string((const char *)nv.value, nv.valuelen);
      }
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_);
        break;
      }
      if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) break;
    }
    if (block_end_stream_) streams_[sid].ended = true;
  }

  int fd_ = -1;
  Hpack hpack_;
  nghttp2_hd_inflater *inflater_ = nullptr;
  std::string in_, block_, pending_;
  bool corked_ = false;
  bool block_end_stream_ = false;
  std::map<int32_t, Stream> streams_;
  bool goaway_ = false, eof_ = false;
  uint32_t goaway_code_ = 0;
  int32_t goaway_last_ = -1;
  std::vector<uint32_t> goaways_;
};

std::string StatusOf(RawConn &c, int32_t sid) {
  auto &h = c.stream(sid).headers;
  auto it = h.find("grpc-status");
  return it == h.end() ? "<none>" : it->second;
}
std::string MessageOf(RawConn &c, int32_t sid) {
  auto &h = c.stream(sid).headers;
  auto it = h.find("grpc-message");
  return it == h.end() ? "<none>" : it->second;
}

// ---- async handlers for the cardinality tests ----------------------------------

const char kAsyncEcho[] = "/crpc.proto.Async/Echo";        // crpc_server_add_unary_async
const char kReactorEcho[] = "/crpc.proto.Async/ReactorEcho";  // a CRPC_UNARY reactor
const char kReactorTwice[] = "/crpc.proto.Async/ReactorTwice";  // CRPC_SERVER_STREAMING

crpc_code AsyncEcho(crpc_server_call *call, const crpc_ctx *, const crpc_message *req, void *) {
  crpc_code rc = crpc_server_call_send_async(call, req->data, req->len, 0);
  return rc;
}

// Reactor: answers each request message (twice for ReactorTwice) and
// finishes OK at the end of the request stream.
struct ReactorState {
  int copies;
};
void *RStart(crpc_server_call *, const crpc_ctx *, void *ud) {
  return new ReactorState{static_cast<int>(reinterpret_cast<intptr_t>(ud))};
}
void RMessage(crpc_server_call *call, const crpc_message *msg, void *state) {
  auto *st = static_cast<ReactorState *>(state);
  if (msg->end) {
    crpc_server_call_finish(call, CRPC_OK, nullptr);
    return;
  }
  for (int i = 0; i < st->copies; i++) crpc_server_call_send_async(call, msg->data, msg->len, 0);
}
void RCancel(crpc_server_call *call, const crpc_cause *cause, void *) {
  crpc_server_call_finish(call, cause->code, nullptr);
}
void RDone(crpc_server_call *, void *state) { delete static_cast<ReactorState *>(state); }

void AddAsyncMethods(crpc_server *s) {
  ASSERT_EQ(CRPC_OK, crpc_server_add_unary_async(s, kAsyncEcho, AsyncEcho, nullptr));
  crpc_server_reactor r{};
  r.on_start = RStart;
  r.on_message = RMessage;
  r.on_cancel = RCancel;
  r.on_done = RDone;
  ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, kReactorEcho, CRPC_UNARY, &r,
                                                  reinterpret_cast<void *>(intptr_t{1})));
  ASSERT_EQ(CRPC_OK, crpc_server_add_async_method(s, kReactorTwice, CRPC_SERVER_STREAMING, &r,
                                                  reinterpret_cast<void *>(intptr_t{2})));
}

using ProtocolTest = E2ETest;

// ---- stream ids ------------------------------------------------------------------

// Stream 5 answered, stream 7 still open (a Hang handler running), then a
// HEADERS opening stream 3: GOAWAY(PROTOCOL_ERROR) naming 7 as the last
// stream, the connection closed, the running handler's ctx ended
// UNAVAILABLE (connection lost); a crpc client on its own connection is
// served before, during (a call in flight across the attack) and after.
TEST_F(ProtocolTest, DecreasingStreamId_GoawayProtocolErrorAndClose_OthersServed) {
  Start();
  Ctx ctx = WithTimeout(20 * kSec);
  ASSERT_EQ(CRPC_OK, Unary(channel_, ctx.get(), M("Echo"), "before").code);
  // In flight on the good connection while the bad one is cut.
  std::string tag_good = Tag("good");
  Md md_good = NewMd({{"x-tag", tag_good}});
  Ctx hang_ctx = WithTimeout(20 * kSec);
  UnaryResult in_flight;
  std::atomic<bool> in_flight_done{false};
  std::thread good([&] {
    in_flight = Unary(channel_, hang_ctx.get(), M("Hang"), "x", md_good.get());
    in_flight_done = true;
  });

  RawConn c(port_);
  c.Request(5, M("Echo"), {"five"});
  ASSERT_TRUE(c.ReadUntil([&] { return c.StreamEnded(5); }));
  EXPECT_EQ("0", StatusOf(c, 5));
  std::string tag = Tag("bad");
  c.Headers(7, RequestHeaders(M("Hang"), {{"x-tag", tag}}), false);
  c.Data(7, GrpcMsg("seven"), false);
  ASSERT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 2; }, 5000));

  // Stream 3, and in the same write a good stream 9: nothing after the
  // bad HEADERS is read.
  c.Cork();
  c.Headers(3, RequestHeaders(M("Echo")), false);
  c.Data(3, GrpcMsg("three"), true);
  c.Request(9, M("Echo"), {"nine"});
  c.Uncork();
  EXPECT_TRUE(c.ReadUntil([&] { return c.eof(); }));
  EXPECT_EQ(std::vector<uint32_t>{NGHTTP2_PROTOCOL_ERROR}, c.goaways());
  EXPECT_EQ(7, c.goaway_last());
  EXPECT_EQ(0u, c.stream(3).headers.size()) << "stream 3 was answered";
  EXPECT_EQ(0u, c.stream(9).headers.size()) << "stream 9 was answered";
  auto r = Report(tag);
  EXPECT_EQ("UNAVAILABLE", r["end"]) << r["text"];
  EXPECT_EQ("connection_lost", r["origin"]) << r["text"];

  // The good connection never noticed.
  EXPECT_EQ(CRPC_OK, Unary(channel_, ctx.get(), M("Echo"), "after").code);
  // The good Hang still runs (the bad one's report comes just before it
  // stops counting as running).
  EXPECT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 1; }, 5000));
  EXPECT_FALSE(in_flight_done.load());
  crpc_ctx_cancel(hang_ctx.get(), CRPC_CANCELLED, "test done");
  good.join();
  EXPECT_EQ(CRPC_CANCELLED, in_flight.code) << in_flight.message;
  EXPECT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 0; }, 5000));
}

// Reusing the id of a closed stream: while nghttp2 remembers the stream,
// its own connection error STREAM_CLOSED (RFC 9113 §5.1, the client had
// ended it); once forgotten (with max_concurrent_streams 2 nghttp2 keeps
// about two closed streams), crpc's PROTOCOL_ERROR. One GOAWAY either way.
TEST_F(ProtocolTest, ReusedStreamId_OneConnectionError) {
  crpc_server_options opts{};
  opts.max_concurrent_streams = 2;
  Start(&opts);
  {
    RawConn c(port_);
    EXPECT_EQ(0u, c.goaways().size());
    c.Request(1, M("Echo"), {"one"});
    ASSERT_TRUE(c.ReadUntil([&] { return c.StreamEnded(1); }));
    EXPECT_EQ("0", StatusOf(c, 1));
    c.Request(1, M("Echo"), {"one again"});
    EXPECT_TRUE(c.ReadUntil([&] { return c.eof(); }));
    EXPECT_EQ(std::vector<uint32_t>{NGHTTP2_STREAM_CLOSED}, c.goaways());
  }
  {
    RawConn c(port_);
    for (int32_t sid = 1; sid <= 11; sid += 2) {
      c.Request(sid, M("Echo"), {"x"});
      ASSERT_TRUE(c.ReadUntil([&] { return c.StreamEnded(sid); }));
      EXPECT_EQ("0", StatusOf(c, sid));
    }
    c.Request(1, M("Echo"), {"one again"});
    EXPECT_TRUE(c.ReadUntil([&] { return c.eof(); }));
    EXPECT_EQ(std::vector<uint32_t>{NGHTTP2_PROTOCOL_ERROR}, c.goaways());
    EXPECT_EQ(11, c.goaway_last());
  }
  Ctx ctx = WithTimeout(10 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(channel_, ctx.get(), M("Echo"), "still serving").code);
}

// A PRIORITY frame for an idle stream gives nghttp2 state for it, which
// must not make a later HEADERS opening it below a higher stream
// acceptable.
TEST_F(ProtocolTest, DecreasingIdNamedEarlierInPriority_ProtocolError) {
  Start();
  RawConn c(port_);
  std::string prio("\0\0\0\0\x0f", 5);  // depends on 0, weight 16
  c.Write(Frame(NGHTTP2_PRIORITY, 0, 3, prio));
  c.Request(5, M("Echo"), {"five"});
  ASSERT_TRUE(c.ReadUntil([&] { return c.StreamEnded(5); }));
  EXPECT_EQ("0", StatusOf(c, 5));
  c.Request(3, M("Echo"), {"three"});
  EXPECT_TRUE(c.ReadUntil([&] { return c.eof(); }));
  EXPECT_EQ(std::vector<uint32_t>{NGHTTP2_PROTOCOL_ERROR}, c.goaways());
  EXPECT_EQ(0u, c.stream(3).headers.size()) << "stream 3 was answered";
}

// Increasing ids with gaps are fine (skipping ids is allowed), and so are
// WINDOW_UPDATE and RST_STREAM for a stream that has closed (frames other
// than HEADERS are not about opening streams).
TEST_F(ProtocolTest, IncreasingIdsWithGapsAndLateFramesOnClosedStreams_Served) {
  Start();
  RawConn c(port_);
  int32_t ids[] = {1, 3, 11, 13, 101};
  for (int32_t sid : ids) {
    c.Request(sid, M("Echo"), {"id " + std::to_string(sid)});
    ASSERT_TRUE(c.ReadUntil([&] { return c.StreamEnded(sid); })) << sid;
    EXPECT_EQ("0", StatusOf(c, sid)) << sid;
    EXPECT_EQ(GrpcMsg("id " + std::to_string(sid)), c.stream(sid).data);
  }
  std::string inc("\0\0\x01\0", 4), cancel("\0\0\0\x08", 4);
  c.Write(Frame(NGHTTP2_WINDOW_UPDATE, 0, 3, inc) + Frame(NGHTTP2_RST_STREAM, 0, 11, cancel));
  c.Request(103, M("Echo"), {"last"});
  ASSERT_TRUE(c.ReadUntil([&] { return c.StreamEnded(103); }));
  EXPECT_EQ("0", StatusOf(c, 103));
  EXPECT_FALSE(c.goaway());
  EXPECT_FALSE(c.eof());
}

// ---- request message count ---------------------------------------------------------

// Sends `msgs` on a fresh stream of c and returns its grpc-status.
std::string Call(RawConn &c, int32_t sid, const std::string &path,
                 const std::vector<std::string> &msgs) {
  c.Request(sid, path, msgs);
  EXPECT_TRUE(c.ReadUntil([&] { return c.StreamEnded(sid); })) << path;
  return StatusOf(c, sid);
}

TEST_F(ProtocolTest, UnaryWithTwoRequestMessages_Internal_BlockingAndAsync) {
  Start(nullptr, AddAsyncMethods);
  RawConn c(port_);
  int32_t sid = 1;
  for (const char *path : {"/crpc.test.Test/Echo", kAsyncEcho, kReactorEcho}) {
    SCOPED_TRACE(path);
    EXPECT_EQ("13", Call(c, sid, path, {"a", "b"}));
    EXPECT_NE(std::string::npos,
              MessageOf(c, sid).find("more than one request message for a unary call"))
        << MessageOf(c, sid);
    EXPECT_EQ("", c.stream(sid).data) << "the handler answered";
    sid += 2;
    // One message is still a good call.
    EXPECT_EQ("0", Call(c, sid, path, {"one"}));
    EXPECT_EQ(GrpcMsg("one"), c.stream(sid).data);
    sid += 2;
    // Three, each in a DATA frame of its own (one write, so they are read
    // before the loop can send the answer to the first).
    c.Headers(sid, RequestHeaders(path), false);
    std::string frames;
    for (const char *m : {"x", "y", "z"}) frames += Frame(NGHTTP2_DATA, 0, sid, GrpcMsg(m));
    c.Write(frames + Frame(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, sid, ""));
    ASSERT_TRUE(c.ReadUntil([&] { return c.StreamEnded(sid); }));
    EXPECT_EQ("13", StatusOf(c, sid));
    sid += 2;
  }
  EXPECT_FALSE(c.goaway());
}

// The second message comes while the blocking handler is already running
// with the first: its ctx ends INTERNAL and so does the call.
TEST_F(ProtocolTest, UnarySecondMessageWhileHandlerRuns_Internal) {
  Start();
  RawConn c(port_);
  std::string tag = Tag("hang");
  c.Headers(1, RequestHeaders(M("Hang"), {{"x-tag", tag}}), false);
  c.Data(1, GrpcMsg("first"), false);
  ASSERT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 1; }, 5000));
  c.Data(1, GrpcMsg("second"), false);
  ASSERT_TRUE(c.ReadUntil([&] { return c.StreamEnded(1); }));
  EXPECT_EQ("13", StatusOf(c, 1));
  auto r = Report(tag);
  EXPECT_EQ("INTERNAL", r["end"]) << r["text"];
  EXPECT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 0; }, 5000));
}

TEST_F(ProtocolTest, ServerStreamingWithTwoRequestMessages_Internal_BlockingAndAsync) {
  Start(nullptr, AddAsyncMethods);
  RawConn c(port_);
  EXPECT_EQ("13", Call(c, 1, M("Count"), {"2 3 0", "2 3 0"}));
  EXPECT_NE(std::string::npos,
            MessageOf(c, 1).find("more than one request message for a server-streaming call"))
      << MessageOf(c, 1);
  EXPECT_EQ("0", Call(c, 3, M("Count"), {"2 3 0"}));
  EXPECT_EQ(GrpcMsg(std::string(3, '\0')) + GrpcMsg(std::string(3, '\1')), c.stream(3).data);
  EXPECT_EQ("13", Call(c, 5, kReactorTwice, {"a", "b"}));
  EXPECT_EQ("0", Call(c, 7, kReactorTwice, {"a"}));
  EXPECT_EQ(GrpcMsg("a") + GrpcMsg("a"), c.stream(7).data);
  // Client streaming takes any number.
  EXPECT_EQ("0", Call(c, 9, M("Collect"), {"a", "bc"}));
  EXPECT_EQ(GrpcMsg("2 3"), c.stream(9).data);
}

}  // namespace
}  // namespace crpc_e2e
