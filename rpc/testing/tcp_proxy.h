// A loopback TCP proxy for tests that must break a connection in ways the
// two endpoints cannot arrange by themselves:
//   Cut()     resets (RST) every connection open now, both ends at once:
//             an abrupt connection loss, seen by client and server alike;
//   Freeze()  blackholes every connection open now: nothing is forwarded
//             either way and nothing is closed, which is how a dead peer
//             looks from the other end (only keepalive can notice it).
// Connections accepted after either call are forwarded normally, so a client
// that reconnects gets through.
//   Partition() freezes every connection and accepts no new one (the
//             kernel still completes the handshakes of up to 64 waiting
//             clients, who then hear nothing), until
//   Heal()    unfreezes them all, queued bytes first, as a healed network
//             would deliver what TCP kept retransmitting.
//   SetDelay(ns) holds every byte for that long before passing it on, each
//             way (a one-way latency; the round trip is twice it), from the
//             next bytes read on: a slow link, or a slow backend, without
//             netem (which not every kernel has).
// The backend may be any IPv4 address (a backend in another network
// namespace, say); the proxy itself listens on 127.0.0.1. The proxy also counts the connections it
// accepted and, reading the HTTP/2 frame headers that pass (plaintext h2c
// only; TLS traffic makes the counts meaningless), the PING frames each way.
//
// One thread serves every socket with ppoll(). Commands reach it through an
// eventfd and return only once applied, so a test can rely on their effect
// right after the call. Sockets are non-blocking with a bounded queue of
// timestamped chunks per direction: a peer that stops reading stalls only
// the direction feeding it (back-pressure, as TCP itself would), never the
// proxy thread, so Cut(), Freeze() and the destructor cannot hang behind a
// full socket. Connecting to the backend blocks the thread for at most 1 s
// (a backend that drops SYNs is refused after that).
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
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
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
  explicit TcpProxy(int backend_port) : TcpProxy("127.0.0.1", backend_port) {}

  // ... to backend_ip (an IPv4 literal):backend_port, each byte held for
  // delay_ns each way (SetDelay).
  TcpProxy(const std::string &backend_ip, int backend_port,
           int64_t delay_ns = 0)
      : delay_ns_(delay_ns) {
    backend_.sin_family = AF_INET;
    if (inet_pton(AF_INET, backend_ip.c_str(), &backend_.sin_addr) != 1) {
      errno = EINVAL;
      Fail("backend address");
    }
    backend_.sin_port = htons(static_cast<uint16_t>(backend_port));
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd_ < 0) Fail("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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
  void Partition() { Command(kPartition); }
  void Heal() { Command(kHeal); }
  // Bytes read from now on wait delay_ns before they are passed on (each
  // way); bytes already queued keep the delay they were read with.
  void SetDelay(int64_t delay_ns) { delay_ns_.store(delay_ns); }

  // Client connections accepted so far (including any the backend refused).
  int accepted() const { return accepted_.load(); }
  // PING frames seen client->server and server->client; ACKs counted apart.
  int pings_c2s() const { return frames_[kC2S][0].load(); }
  int pings_s2c() const { return frames_[kS2C][0].load(); }
  int acks_c2s() const { return frames_[kC2S][1].load(); }
  int acks_s2c() const { return frames_[kS2C][1].load(); }

 private:
  enum : unsigned { kCut = 1, kFreeze = 2, kStop = 4, kPartition = 8, kHeal = 16 };
  enum { kC2S = 0, kS2C = 1 };

  // Bytes read at one time, passed on from due_ns (read time + delay).
  struct Chunk {
    int64_t due_ns;
    std::string data;
    size_t off = 0;
  };
  // At most this much is queued per direction before reading stops.
  static constexpr size_t kFlowCap = 1 << 16;

  // One direction of a connection: bytes read from `from` wait in q until
  // they are due and `to` takes them; nothing more is read while the queue
  // holds kFlowCap bytes.
  struct Flow {
    int from = -1, to = -1;
    std::deque<Chunk> q;
    size_t queued = 0;  // bytes in q not yet written
    bool eof = false;   // `from` sent FIN
    bool shut = false;  // ...and it was passed on once q drained
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
      if (ops & (kFreeze | kPartition)) {
        for (auto &c : conns_) c->frozen = true;
      }
      if (ops & kPartition) partitioned_ = true;
      if (ops & kHeal) {
        partitioned_ = false;
        for (auto &c : conns_) c->frozen = false;
      }
      if (ops != 0) {
        {
          std::lock_guard<std::mutex> l(mu_);
          applied_ = ticket;
        }
        applied_cv_.notify_all();
        if (ops & kStop) return;
      }

      pfd.assign({{wake_, POLLIN, 0}, {partitioned_ ? -1 : lfd_, POLLIN, 0}});
      polled.clear();
      int64_t now = NowNs(), next_due = INT64_MAX;
      for (auto &c : conns_) {
        if (c->frozen) continue;  // blackholed: not even errors are noticed
        for (int side = 0; side < 2; side++) {
          // fd[side] is the source of flow[side] and the sink of the other.
          const Flow &out = c->flow[side], &in = c->flow[side ^ 1];
          bool due = !in.q.empty() && in.q.front().due_ns <= now;
          if (!in.q.empty() && !due) next_due = std::min(next_due, in.q.front().due_ns);
          short ev = (out.queued < kFlowCap && !out.eof ? POLLIN : 0) | (due ? POLLOUT : 0);
          // Nothing wanted: leave it out (fd -1), or a lasting POLLHUP (the
          // peer's FIN read, ours sent) would wake poll over and over.
          pfd.push_back({ev ? c->fd[side] : -1, ev, 0});
        }
        polled.push_back(c.get());
      }
      // Until the next command, byte or the earliest held chunk falls due.
      timespec wait{}, *tmo = nullptr;
      if (next_due != INT64_MAX) {
        int64_t d = std::max<int64_t>(next_due - now, 0);
        wait.tv_sec = static_cast<time_t>(d / 1000000000);
        wait.tv_nsec = static_cast<long>(d % 1000000000);
        tmo = &wait;
      }
      if (ppoll(pfd.data(), pfd.size(), tmo, nullptr) < 0) {
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
        // Every flow is pumped, ready or not: held chunks may have fallen
        // due with no event at all. POLLERR: one end reset; pass that on
        // rather than a FIN.
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
    // A blocking connect: a live backend accepts it into the backlog or
    // refuses it at once; one whose SYNs are dropped (a partition) is given
    // up after SO_SNDTIMEO, which bounds connect on Linux. A refusal reaches
    // the client as a reset.
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval limit{1, 0};
    if (b >= 0) setsockopt(b, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
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

  static int64_t NowNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }

  // Moves what it can without blocking; false if the connection must be
  // reset (a read or write error: one end is gone).
  bool Pump(Flow *f, int dir) {
    if (f->queued < kFlowCap && !f->eof) {
      char buf[kFlowCap];
      ssize_t n = read(f->from, buf, kFlowCap - f->queued);
      if (n > 0) {
        Scan(f, dir, reinterpret_cast<const uint8_t *>(buf), static_cast<size_t>(n));
        f->q.push_back({NowNs() + delay_ns_.load(), std::string(buf, static_cast<size_t>(n))});
        f->queued += static_cast<size_t>(n);
      } else if (n == 0) {
        f->eof = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    int64_t now = NowNs();
    while (!f->q.empty() && f->q.front().due_ns <= now) {
      Chunk &ch = f->q.front();
      ssize_t w = send(f->to, ch.data.data() + ch.off, ch.data.size() - ch.off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        return false;
      }
      ch.off += static_cast<size_t>(w);
      f->queued -= static_cast<size_t>(w);
      if (ch.off < ch.data.size()) break;  // the socket is full
      f->q.pop_front();
    }
    if (f->eof && f->q.empty() && !f->shut) {
      shutdown(f->to, SHUT_WR);  // a half-close is passed on as one
      f->shut = true;
    }
    return true;
  }

  // Counts the PING frames (type 6; flag 0x1 is ACK) in n new bytes.
  void Scan(Flow *f, int dir, const uint8_t *p, size_t n) {
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
  bool partitioned_ = false;                  // proxy thread only

  std::mutex mu_;
  std::condition_variable applied_cv_;
  unsigned ops_ = 0;        // commands not yet taken by the thread
  uint64_t requested_ = 0;  // tickets handed out by Command()
  uint64_t applied_ = 0;    // ...and applied by the thread

  std::atomic<int64_t> delay_ns_{0};
  std::atomic<int> accepted_{0};
  std::atomic<int> frames_[2][2] = {{{0}, {0}}, {{0}, {0}}};  // [dir][ack]
  std::thread thread_;
};

}  // namespace crpc_testing

#endif  // CRPC_TESTING_TCP_PROXY_H
