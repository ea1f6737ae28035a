// A minimal blocking HTTP/2 client on nghttp2 for server tests: it sends
// exactly the frames a test asks for (odd headers, bare RST_STREAMs,
// floods) and records what comes back per stream.
#ifndef CRPC_SERVER_RAW_CLIENT_H
#define CRPC_SERVER_RAW_CLIENT_H

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "crpc/ctx.h"

namespace crpc_test {

class RawClient {
 public:
  struct Stream {
    std::map<std::string, std::string> headers;  // response + trailers
    std::string data;
    bool closed = false;
    uint32_t error_code = 0;
  };

  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnClose);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrame);
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~RawClient() {
    nghttp2_session_del(session_);
    if (fd_ >= 0) close(fd_);
  }

  // A gRPC-looking request; extra headers are appended (or replace the
  // defaults when given a default's name).
  int32_t Request(const std::string &path,
                  std::vector<std::pair<std::string, std::string>> extra = {},
                  const std::string *body = nullptr, bool end = true) {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", "POST"},
        {":scheme", "http"},
        {":path", path},
        {":authority", "localhost"},
        {"content-type", "application/grpc"},
        {"te", "trailers"}};
    for (auto &e : extra) {
      bool replaced = false;
      for (auto &d : h) {
        if (d.first == e.first) {
          d.second = e.second;
          replaced = true;
        }
      }
      if (!replaced) h.push_back(e);
    }
    std::vector<nghttp2_nv> nv;
    for (auto &e : h) {
      nv.push_back({(uint8_t *)e.first.data(), (uint8_t *)e.second.data(),
                    e.first.size(), e.second.size(), NGHTTP2_NV_FLAG_NONE});
    }
    body_ = body ? *body : std::string();
    body_off_ = 0;
    body_end_ = end;
    nghttp2_data_provider prd;
    prd.source.ptr = this;
    prd.read_callback = ReadBody;
    return nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                  body ? &prd : nullptr, nullptr);
  }

  void Reset(int32_t id, uint32_t code = NGHTTP2_CANCEL) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code);
  }

  // Sends what is queued and reads until pred() or the time is up.
  bool PumpUntil(const std::function<bool()> &pred,
                 int64_t timeout_ns = 2 * CRPC_SECOND) {
    int64_t until = crpc_now_ns() + timeout_ns;
    for (;;) {
      if (!Send()) return pred();
      if (pred()) return true;
      int64_t left = until - crpc_now_ns();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      // Short slices: pred() may be waiting on another thread, not on us.
      int ms =
          static_cast<int>(std::min<int64_t>(left / CRPC_MILLISECOND + 1, 2));
      if (poll(&p, 1, ms) <= 0) {
        continue;
      }
      uint8_t buf[65536];
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) {
        eof_ = true;
        return pred();
      }
      if (nghttp2_session_mem_recv(session_, buf, n) < 0) {
        eof_ = true;
        return pred();
      }
    }
  }

  bool Send() {
    for (;;) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(session_, &p);
      if (n < 0) return false;
      if (n == 0) return true;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = send(fd_, p + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) return false;
        off += w;
      }
    }
  }

  Stream &stream(int32_t id) { return streams_[id]; }
  // The server's SETTINGS came: it has accepted and set up the connection.
  bool got_settings() const { return got_settings_; }
  bool goaway() const { return goaway_; }
  uint32_t goaway_code() const { return goaway_code_; }
  int32_t goaway_last_stream() const { return goaway_last_; }
  bool eof() const { return eof_; }
  nghttp2_session *session() { return session_; }
  int fd() const { return fd_; }

 private:
  static int OnHeader(nghttp2_session *, const nghttp2_frame *f,
                      const uint8_t *n, size_t nl, const uint8_t *v, size_t vl,
                      uint8_t, void *ud) {
    auto *self = static_cast<RawClient *>(ud);
    self->streams_[f->hd.stream_id].headers[std::string((const char *)n, nl)] =
        std::string((const char *)v, vl);
    return 0;
  }
  static int OnData(nghttp2_session *, uint8_t, int32_t id, const uint8_t *d,
                    size_t len, void *ud) {
    static_cast<RawClient *>(ud)->streams_[id].data.append((const char *)d,
                                                           len);
    return 0;
  }
  static int OnClose(nghttp2_session *, int32_t id, uint32_t code, void *ud) {
    auto &s = static_cast<RawClient *>(ud)->streams_[id];
    s.closed = true;
    s.error_code = code;
    return 0;
  }
  static int OnFrame(nghttp2_session *, const nghttp2_frame *f, void *ud) {
    auto *self = static_cast<RawClient *>(ud);
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
      self->got_settings_ = true;
    }
    if (f->hd.type == NGHTTP2_GOAWAY) {
      self->goaway_ = true;
      self->goaway_code_ = f->goaway.error_code;
      self->goaway_last_ = f->goaway.last_stream_id;
    }
    return 0;
  }
  static ssize_t ReadBody(nghttp2_session *, int32_t, uint8_t *buf, size_t len,
                          uint32_t *flags, nghttp2_data_source *src, void *) {
    auto *self = static_cast<RawClient *>(src->ptr);
    size_t n = std::min(len, self->body_.size() - self->body_off_);
    memcpy(buf, self->body_.data() + self->body_off_, n);
    self->body_off_ += n;
    if (self->body_off_ == self->body_.size()) {
      if (!self->body_end_)
        return n > 0 ? (ssize_t)n : (ssize_t)NGHTTP2_ERR_DEFERRED;
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return n;
  }

  int fd_ = -1;
  nghttp2_session *session_ = nullptr;
  std::map<int32_t, Stream> streams_;
  bool goaway_ = false, eof_ = false, got_settings_ = false;
  uint32_t goaway_code_ = 0;
  int32_t goaway_last_ = 0;
  std::string body_;
  size_t body_off_ = 0;
  bool body_end_ = true;
};

// 5-byte prefix + message.
inline std::string Frame(const std::string &msg, bool compressed = false) {
  std::string out(5, '\0');
  out[0] = compressed ? 1 : 0;
  uint32_t n = htonl(static_cast<uint32_t>(msg.size()));
  memcpy(&out[1], &n, 4);
  return out + msg;
}

}  // namespace crpc_test

#endif  // CRPC_SERVER_RAW_CLIENT_H
