// A scripted raw HTTP/2 server for client tests (nghttp2, one thread, one
// connection at a time): it records each request's headers and body and
// answers with a test's `respond(session, stream id)`.
#ifndef CRPC_CHANNEL_RAW_SERVER_H
#define CRPC_CHANNEL_RAW_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace crpc_test {

// Answers every request on one connection with `respond(session, id)`,
// after recording its headers.
class RawServer {
 public:
  using Respond = std::function<void(nghttp2_session *, int32_t)>;
  explicit RawServer(Respond r) : respond_(std::move(r)) {
    lfd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof(a));
    listen(lfd_, 4);
    socklen_t len = sizeof(a);
    getsockname(lfd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    close(lfd_);
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  std::map<std::string, std::string> headers() {
    std::lock_guard<std::mutex> l(mu_);
    return last_;
  }
  std::string body() {
    std::lock_guard<std::mutex> l(mu_);
    return bodies_.empty() ? "" : bodies_.rbegin()->second;
  }

 private:
  static int OnHeader(nghttp2_session *, const nghttp2_frame *,
                      const uint8_t *n, size_t nl, const uint8_t *v, size_t vl,
                      uint8_t, void *ud) {
    auto *self = static_cast<RawServer *>(ud);
    std::lock_guard<std::mutex> l(self->mu_);
    self->cur_[std::string((const char *)n, nl)] =
        std::string((const char *)v, vl);
    return 0;
  }
  // Request body bytes, per stream; body() is the last stream's.
  static int OnData(nghttp2_session *, uint8_t, int32_t id, const uint8_t *d,
                    size_t len, void *ud) {
    auto *self = static_cast<RawServer *>(ud);
    std::lock_guard<std::mutex> l(self->mu_);
    self->bodies_[id].append(reinterpret_cast<const char *>(d), len);
    return 0;
  }
  static int OnFrame(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    auto *self = static_cast<RawServer *>(ud);
    if (f->hd.type == NGHTTP2_HEADERS &&
        f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      {
        std::lock_guard<std::mutex> l(self->mu_);
        self->last_ = self->cur_;
        self->cur_.clear();
      }
      self->respond_(s, f->hd.stream_id);
    }
    return 0;
  }
  // One connection at a time (each test call uses its own channel).
  void Run() {
    while (!stop_) {
      pollfd p{lfd_, POLLIN, 0};
      if (poll(&p, 1, 10) <= 0) continue;
      Serve(accept(lfd_, nullptr, nullptr));
    }
  }
  void Serve(int fd) {
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnData);
    nghttp2_session *s;
    nghttp2_session_server_new(&s, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);
    while (!stop_) {
      const uint8_t *out;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(s, &out)) > 0) {
        send(fd, out, n, MSG_NOSIGNAL);
      }
      pollfd q{fd, POLLIN, 0};
      if (poll(&q, 1, 10) <= 0) continue;
      uint8_t buf[16384];
      ssize_t r = read(fd, buf, sizeof(buf));
      if (r <= 0) break;
      nghttp2_session_mem_recv(s, buf, r);
    }
    nghttp2_session_del(s);
    close(fd);
  }
  Respond respond_;
  int lfd_, port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, std::string> cur_, last_;
  std::map<int32_t, std::string> bodies_;
};

inline void Headers(nghttp2_session *s, int32_t id,
                    std::vector<std::pair<std::string, std::string>> h) {
  std::vector<nghttp2_nv> nv;
  for (auto &e : h) {
    nv.push_back({(uint8_t *)e.first.data(), (uint8_t *)e.second.data(),
                  e.first.size(), e.second.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_submit_response(s, id, nv.data(), nv.size(), nullptr);
}

}  // namespace crpc_test

#endif  // CRPC_CHANNEL_RAW_SERVER_H
