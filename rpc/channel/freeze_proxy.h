// A loopback TCP proxy for keepalive tests: Freeze() blackholes every
// connection it carries (nothing forwarded either way, nothing closed: a
// dead peer as the other end sees it), while connections accepted later
// forward normally. It also parses the HTTP/2 frames going through
// (plaintext only) and counts PINGs per direction.
#ifndef CRPC_CHANNEL_FREEZE_PROXY_H
#define CRPC_CHANNEL_FREEZE_PROXY_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace crpc_test {

class FreezeProxy {
 public:
  explicit FreezeProxy(int backend_port) : backend_(backend_port) {
    lfd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof(a));
    listen(lfd_, 16);
    socklen_t len = sizeof(a);
    getsockname(lfd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (pipe(wake_) != 0) abort();
    thread_ = std::thread([this] { Run(); });
  }
  ~FreezeProxy() {
    stop_ = true;
    Wake();
    thread_.join();
    for (Pair &p : pairs_) {
      close(p.fd[0]);
      close(p.fd[1]);
    }
    close(lfd_);
    close(wake_[0]);
    close(wake_[1]);
  }

  // Blackholes the connections open now (both directions, sockets kept).
  void Freeze() {
    freeze_req_ = true;
    Wake();
    while (freeze_req_) usleep(1000);
  }

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }
  // PING frames seen: client->server and server->client, ACKs apart.
  int pings_c2s() const { return pings_[0]; }
  int pings_s2c() const { return pings_[1]; }
  int acks_c2s() const { return acks_[0]; }
  int acks_s2c() const { return acks_[1]; }

 private:
  // Incremental HTTP/2 frame-header parser for one direction.
  struct Parser {
    size_t preface = 0;  // bytes of the client preface still to skip
    uint8_t hdr[9];
    size_t hdr_len = 0;
    size_t skip = 0;  // payload bytes of the current frame left
  };
  struct Pair {
    int fd[2];  // client, backend
    Parser parser[2];
    bool frozen = false;
  };

  void Wake() { (void)!write(wake_[1], "x", 1); }

  void Parse(Parser *p, int dir, const uint8_t *b, size_t n) {
    while (n > 0) {
      if (p->preface > 0) {
        size_t k = std::min(p->preface, n);
        p->preface -= k, b += k, n -= k;
      } else if (p->skip > 0) {
        size_t k = std::min(p->skip, n);
        p->skip -= k, b += k, n -= k;
      } else {
        p->hdr[p->hdr_len++] = *b++;
        n--;
        if (p->hdr_len == 9) {
          p->hdr_len = 0;
          p->skip = (size_t(p->hdr[0]) << 16) | (size_t(p->hdr[1]) << 8) |
                    p->hdr[2];
          if (p->hdr[3] == 6) {  // PING
            ((p->hdr[4] & 1) ? acks_ : pings_)[dir]++;
          }
        }
      }
    }
  }

  void Run() {
    char buf[65536];
    while (!stop_) {
      if (freeze_req_) {
        for (Pair &p : pairs_) p.frozen = true;
        freeze_req_ = false;
      }
      std::vector<pollfd> pf;
      std::vector<std::pair<size_t, int>> who;  // pair index, side
      pf.push_back({wake_[0], POLLIN, 0});
      pf.push_back({lfd_, POLLIN, 0});
      for (size_t i = 0; i < pairs_.size(); i++) {
        if (pairs_[i].frozen) continue;
        for (int side = 0; side < 2; side++) {
          if (pairs_[i].fd[side] < 0) continue;
          pf.push_back({pairs_[i].fd[side], POLLIN, 0});
          who.push_back({i, side});
        }
      }
      if (poll(pf.data(), pf.size(), -1) < 0) continue;
      if (pf[0].revents) {
        char c[64];
        (void)!read(wake_[0], c, sizeof(c));
        continue;
      }
      if (pf[1].revents) {
        int c = accept(lfd_, nullptr, nullptr);
        int b = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(backend_);
        connect(b, reinterpret_cast<sockaddr *>(&a), sizeof(a));
        Pair p;
        p.fd[0] = c;
        p.fd[1] = b;
        p.parser[0].preface = 24;
        pairs_.push_back(p);
        accepted_++;
      }
      for (size_t k = 2; k < pf.size(); k++) {
        if (!pf[k].revents) continue;
        Pair &p = pairs_[who[k - 2].first];
        int side = who[k - 2].second;
        if (p.frozen || p.fd[side] < 0) continue;
        ssize_t n = read(p.fd[side], buf, sizeof(buf));
        if (n <= 0) {
          shutdown(p.fd[side ^ 1], SHUT_WR);
          close(p.fd[side]);
          p.fd[side] = -1;  // keep the index stable
          continue;
        }
        Parse(&p.parser[side], side, reinterpret_cast<uint8_t *>(buf), n);
        for (ssize_t off = 0; off < n;) {
          ssize_t w = send(p.fd[side ^ 1], buf + off, n - off, MSG_NOSIGNAL);
          if (w <= 0) break;
          off += w;
        }
      }
    }
  }

  int backend_, lfd_, port_;
  int wake_[2];
  std::vector<Pair> pairs_;  // proxy thread only
  std::atomic<bool> stop_{false}, freeze_req_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> pings_[2] = {{0}, {0}}, acks_[2] = {{0}, {0}};
  std::thread thread_;
};

}  // namespace crpc_test

#endif  // CRPC_CHANNEL_FREEZE_PROXY_H
