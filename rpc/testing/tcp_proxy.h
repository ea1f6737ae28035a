// A loopback TCP proxy for tests that must break a connection in ways the
// two endpoints cannot arrange by themselves:
//   Cut()     resets (RST) every connection open now, both ends at once:
//             an abrupt connection loss, seen by client and server alike;
//   Freeze()  blackholes every connection open now: nothing is forwarded
//             either way and nothing is closed, which is how a dead peer
//             looks from the other end (only keepalive can notice it).
// Connections accepted after either call are forwarded normally, so a client
// that reconnects gets through. The proxy also counts the connections it
// accepted and, reading the HTTP/2 frame headers that pass (plaintext h2c
// only; TLS traffic makes the counts meaningless), the PING frames each way.
//
// One thread serves every socket with poll(). Commands reach it through an
// eventfd and return only once applied, so a test can rely on their effect
// right after the call. Sockets are non-blocking with one buffer per
// direction: a peer that stops reading stalls only the direction feeding it
// (back-pressure, as TCP itself would), never the proxy thread, so Cut(),
// Freeze() and the destructor cannot hang behind a full socket.
#ifndef CRPC_TESTING_TCP_PROXY_H
#define CRPC_TESTING_TCP_PROXY_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace crpc_testing {

class TcpProxy {
 public:
  // Listens on 127.0.0.1 (an ephemeral port) and forwards each accepted
  // connection to 127.0.0.1:backend_port.
  explicit TcpProxy(int backend_port) {
    backend_.sin_family = AF_INET;
    backend_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    backend_.sin_port = htons(static_cast<uint16_t>(backend_port));
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd_ < 0) Fail("socket");
    sockaddr_in a = backend_;
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) Fail("bind");
    if (listen(lfd_, 64) != 0) Fail("listen");
    if (getsockname(lfd_, reinterpret_cast<sockaddr *>(&a), &len) != 0) Fail("getsockname");
    port_ = ntohs(a.sin_port);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0) Fail("eventfd");
    thread_ = std::thread([this] { Run(); });
  }

  // Resets every connection still open (as Cut does), then joins the thread.
  ~TcpProxy() {
    Command(kStop);
    thread_.join();
    close(lfd_);
    close(wake_);
  }

  TcpProxy(const TcpProxy &) = delete;
  TcpProxy &operator=(const TcpProxy &) = delete;

  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

  void Cut() { Command(kCut); }
  void Freeze() { Command(kFreeze); }

  // Client connections accepted so far (including any the backend refused).
  int accepted() const { return accepted_.load(); }
  // PING frames seen client->server and server->client; ACKs counted apart.
  int pings_c2s() const { return frames_[kC2S][0].load(); }
  int pings_s2c() const { return frames_[kS2C][0].load(); }
  int acks_c2s() const { return frames_[kC2S][1].load(); }
  int acks_s2c() const { return frames_[kS2C][1].load(); }

 private:
  enum : unsigned { kCut = 1, kFreeze = 2, kStop = 4 };
  enum { kC2S = 0, kS2C = 1 };

  // One direction of a connection: bytes read from `from` wait in buf until
  // `to` takes them; nothing more is read meanwhile.
  struct Flow {
    int from = -1, to = -1;
    char buf[1 << 16];
    size_t off = 0, len = 0;
    bool eof = false;   // `from` sent FIN
    bool shut = false;  // ...and it was passed on once buf drained
    // HTTP/2 frame-header scanner: bytes to pass over (the client preface,
    // then each frame's payload) and the partial 9-byte header.
    size_t skip = 0;
    uint8_t hdr[9];
    size_t hdr_len = 0;
  };
  struct Conn {
    int fd[2];     // client side, backend side
    Flow flow[2];  // kC2S reads fd[0] into fd[1]; kS2C the reverse
    bool frozen = false;
  };

  [[noreturn]] static void Fail(const char *what) {
    // Setup errors are the environment's (no fds, no loopback): stop loudly.
    std::fprintf(stderr, "TcpProxy: %s: %s\n", what, std::strerror(errno));
    std::abort();
  }

  // SO_LINGER 0 makes close() send RST: an abrupt loss to the peer, and no
  // TIME_WAIT left behind on loopback ports by tests that run many proxies.
  static void Reset(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
  }

  // Closes both sockets: reset (one end is gone, or a Cut), or cleanly once
  // both ends have closed. A dropped Conn is erased after the poll round.
  static void Drop(Conn *c, bool reset) {
    for (int &fd : c->fd) {
      reset ? Reset(fd) : (void)close(fd);
      fd = -1;
    }
  }

  // Hands `op` to the proxy thread and waits until it has been applied.
  void Command(unsigned op) {
    std::unique_lock<std::mutex> l(mu_);
    ops_ |= op;
    uint64_t ticket = ++requested_;
    uint64_t one = 1;
    if (write(wake_, &one, sizeof one) != sizeof one) Fail("eventfd write");
    applied_cv_.wait(l, [&] { return applied_ >= ticket; });
  }

  void Run() {
    std::vector<pollfd> pfd;
    std::vector<Conn *> polled;  // pfd[2 + 2i], pfd[3 + 2i] belong to polled[i]
    for (;;) {
      unsigned ops;
      uint64_t ticket;
      {
        std::lock_guard<std::mutex> l(mu_);
        ops = ops_;
        ops_ = 0;
        ticket = requested_;
      }
      if (ops & (kCut | kStop)) {
        for (auto &c : conns_) Drop(c.get(), true);
        conns_.clear();
      }
      if (ops & kFreeze) {
        for (auto &c : conns_) c->frozen = true;
      }
      if (ops != 0) {
        {
          std::lock_guard<std::mutex> l(mu_);
          applied_ = ticket;
        }
        applied_cv_.notify_all();
        if (ops & kStop) return;
      }

      pfd.assign({{wake_, POLLIN, 0}, {lfd_, POLLIN, 0}});
      polled.clear();
      for (auto &c : conns_) {
        if (c->frozen) continue;  // blackholed: not even errors are noticed
        for (int side = 0; side < 2; side++) {
          // fd[side] is the source of flow[side] and the sink of the other.
          const Flow &out = c->flow[side], &in = c->flow[side ^ 1];
          short ev = (out.len == 0 && !out.eof ? POLLIN : 0) | (in.len > 0 ? POLLOUT : 0);
          // Nothing wanted: leave it out (fd -1), or a lasting POLLHUP (the
          // peer's FIN read, ours sent) would wake poll over and over.
          pfd.push_back({ev ? c->fd[side] : -1, ev, 0});
        }
        polled.push_back(c.get());
      }
      if (poll(pfd.data(), pfd.size(), -1) < 0) {
        if (errno == EINTR) continue;
        Fail("poll");
      }
      if (pfd[0].revents) {  // a command: apply it before moving more bytes
        uint64_t v;
        (void)!read(wake_, &v, sizeof v);
        continue;
      }
      if (pfd[1].revents) Accept();
      for (size_t i = 0; i < polled.size(); i++) {
        Conn *c = polled[i];
        short r0 = pfd[2 + 2 * i].revents, r1 = pfd[3 + 2 * i].revents;
        if (r0 == 0 && r1 == 0) continue;
        // POLLERR: one end reset; pass that on rather than a FIN.
        bool ok = !((r0 | r1) & POLLERR) && Pump(&c->flow[kC2S], kC2S) &&
                  Pump(&c->flow[kS2C], kS2C);
        if (!ok || (c->flow[kC2S].shut && c->flow[kS2C].shut)) Drop(c, !ok);
      }
      for (size_t i = conns_.size(); i-- > 0;) {
        if (conns_[i]->fd[0] < 0) conns_.erase(conns_.begin() + static_cast<long>(i));
      }
    }
  }

  void Accept() {
    int c = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      Fail("accept");  // e.g. EMFILE: retrying would spin
    }
    accepted_++;
    // A blocking connect is fine on loopback: it is accepted into the
    // backlog or refused at once. A refusal reaches the client as a reset.
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (b < 0 || connect(b, reinterpret_cast<const sockaddr *>(&backend_), sizeof backend_) != 0 ||
        fcntl(b, F_SETFL, fcntl(b, F_GETFL) | O_NONBLOCK) != 0) {
      if (b >= 0) close(b);
      Reset(c);
      return;
    }
    // Forward each write as it comes: Nagle on the relay would add delays
    // (up to a delayed ACK) that the endpoints themselves never asked for.
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto conn = std::make_unique<Conn>();
    conn->fd[0] = c;
    conn->fd[1] = b;
    conn->flow[kC2S].from = conn->flow[kS2C].to = c;
    conn->flow[kS2C].from = conn->flow[kC2S].to = b;
    conn->flow[kC2S].skip = 24;  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    conns_.push_back(std::move(conn));
  }

  // Moves what it can without blocking; false if the connection must be
  // reset (a read or write error: one end is gone).
  bool Pump(Flow *f, int dir) {
    if (f->len == 0 && !f->eof) {
      ssize_t n = read(f->from, f->buf, sizeof f->buf);
      if (n > 0) {
        Scan(f, dir, static_cast<size_t>(n));
        f->off = 0;
        f->len = static_cast<size_t>(n);
      } else if (n == 0) {
        f->eof = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (f->len > 0) {
      ssize_t w = send(f->to, f->buf + f->off, f->len, MSG_NOSIGNAL);
      if (w > 0) {
        f->off += static_cast<size_t>(w);
        f->len -= static_cast<size_t>(w);
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (f->eof && f->len == 0 && !f->shut) {
      shutdown(f->to, SHUT_WR);  // a half-close is passed on as one
      f->shut = true;
    }
    return true;
  }

  // Counts the PING frames (type 6; flag 0x1 is ACK) in n new bytes of buf.
  void Scan(Flow *f, int dir, size_t n) {
    const uint8_t *p = reinterpret_cast<const uint8_t *>(f->buf);
    for (size_t i = 0; i < n;) {
      if (f->skip > 0) {
        size_t k = std::min(f->skip, n - i);
        f->skip -= k;
        i += k;
        continue;
      }
      f->hdr[f->hdr_len++] = p[i++];
      if (f->hdr_len < 9) continue;
      f->hdr_len = 0;
      f->skip = (size_t{f->hdr[0]} << 16) | (size_t{f->hdr[1]} << 8) | f->hdr[2];
      if (f->hdr[3] == 6) frames_[dir][f->hdr[4] & 1]++;
    }
  }

  sockaddr_in backend_{};
  int lfd_ = -1, wake_ = -1, port_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;  // proxy thread only

  std::mutex mu_;
  std::condition_variable applied_cv_;
  unsigned ops_ = 0;        // commands not yet taken by the thread
  uint64_t requested_ = 0;  // tickets handed out by Command()
  uint64_t applied_ = 0;    // ...and applied by the thread

  std::atomic<int> accepted_{0};
  std::atomic<int> frames_[2][2] = {{{0}, {0}}, {{0}, {0}}};  // [dir][ack]
  std::thread thread_;
};

}  // namespace crpc_testing

#endif  // CRPC_TESTING_TCP_PROXY_H
