// The attacks of issue 17's table, each a function that runs one against
// a server on 127.0.0.1:port and reports what the attacker saw. The tests
// (hostile_test, hostile_wire_test) run them scaled down and assert; the
// bench (bench:hostile_bench) runs them at full size and prints a table.
#ifndef CRPC_E2E_HOSTILE_ATTACKS_H
#define CRPC_E2E_HOSTILE_ATTACKS_H

#include <memory>

#include "rpc/e2e/hostile_util.h"

namespace crpc_hostile {

// What the attacker saw: how its streams ended ("0".."16": grpc-status,
// "rst N": RST_STREAM code N, "open": not ended), its connections' GOAWAY
// codes and closes.
struct Outcome {
  std::map<std::string, int> ends;
  std::map<uint32_t, int> goaways;
  int conns = 0, closed = 0;
  long long streams_processed = 0;  // rapid reset: by the GOAWAYs' last ids
  long long pairs_sent = 0;
  double elapsed_ms = 0;
  std::string note;  // anything else the attack reports

  int Ended(const std::string &how) const {
    auto it = ends.find(how);
    return it == ends.end() ? 0 : it->second;
  }
  std::string Summary() const {
    std::string s;
    for (const auto &e : ends) {
      s += (s.empty() ? "" : ", ") + std::to_string(e.second) + " " +
           (e.first == "open" || e.first.rfind("rst", 0) == 0 ? e.first : "status " + e.first);
    }
    for (const auto &g : goaways) {
      s += (s.empty() ? "" : ", ") + std::to_string(g.second) + " GOAWAY " +
           (g.first == NGHTTP2_ENHANCE_YOUR_CALM ? std::string("ENHANCE_YOUR_CALM")
                                                 : std::to_string(g.first));
    }
    if (closed > 0) s += (s.empty() ? "" : ", ") + std::to_string(closed) + " closed";
    if (!note.empty()) s += (s.empty() ? "" : "; ") + note;
    return s;
  }
};

inline void Collect(RawConn &c, Outcome *o) {
  for (auto &e : c.streams()) {
    std::string how = "open";
    if (e.second.headers.count("grpc-status")) {
      how = e.second.headers["grpc-status"];
    } else if (e.second.rst >= 0) {
      how = "rst " + std::to_string(e.second.rst);
    } else if (e.second.ended) {
      how = "ended";
    }
    o->ends[how]++;
  }
  for (uint32_t g : c.goaways()) o->goaways[g]++;
  o->conns++;
  if (c.eof()) o->closed++;
}

// Reads every connection until each of their streams has ended (or the
// server closed it) but `may_stay_open` of them, or until hold_ms; with
// `full_hold`, always for hold_ms (the attack keeps its connections open
// that long).
inline void Hold(std::vector<std::unique_ptr<RawConn>> &conns, int64_t hold_ms,
                 bool full_hold = false, size_t may_stay_open = 0) {
  int64_t until = crpc_now_ns() + hold_ms * kMs;
  for (;;) {
    size_t open = 0;
    for (auto &c : conns) {
      c->ReadAvailable();
      if (c->eof()) continue;
      for (auto &s : c->streams()) open += s.second.ended ? 0 : 1;
    }
    if ((open <= may_stay_open && !full_hold) || crpc_now_ns() > until) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// Rows 1-2: `conns` connections, each opening `per_conn` calls to `path`
// with HEADERS only: no message, no END_STREAM, no grpc-timeout.
inline Outcome BodilessStreams(int port, const char *path, int conns, int per_conn,
                               int64_t hold_ms, bool full_hold = false) {
  int64_t t0 = crpc_now_ns();
  std::vector<std::unique_ptr<RawConn>> cs;
  for (int i = 0; i < conns; i++) {
    cs.emplace_back(new RawConn(port));
    std::string burst;
    for (int k = 0; k < per_conn; k++) {
      int32_t sid = 1 + 2 * k;
      burst += cs.back()->HeadersFrame(sid, RequestHeaders(path), false);
      cs.back()->stream(sid);  // known as open
    }
    cs.back()->Write(burst);
  }
  Hold(cs, hold_ms, full_hold);
  Outcome o;
  for (auto &c : cs) Collect(*c, &o);
  o.elapsed_ms = static_cast<double>(crpc_now_ns() - t0) / 1e6;
  return o;
}

// Rows 3-4: one connection announcing INITIAL_WINDOW_SIZE 0 and never
// opening a window, with `streams` server-streaming calls to `path` each
// asking for `n` messages of `size` bytes. Held until all but
// `may_stay_open` streams have ended (those whose replies fit the
// server's budget stay open behind the window), or hold_ms.
inline Outcome ZeroWindow(int port, const char *path, int streams, long long n, long long size,
                          int64_t hold_ms, size_t may_stay_open = 0) {
  int64_t t0 = crpc_now_ns();
  std::vector<std::unique_ptr<RawConn>> cs;
  cs.emplace_back(new RawConn(port, true, {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0}}));
  RawConn &c = *cs.back();
  c.auto_window = false;
  std::string req = GrpcMsg(std::to_string(n) + " " + std::to_string(size));
  std::string burst;
  for (int k = 0; k < streams; k++) {
    int32_t sid = 1 + 2 * k;
    burst += c.HeadersFrame(sid, RequestHeaders(path), false) +
             Frame(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, sid, req);
    c.stream(sid);
  }
  c.Write(burst);
  Hold(cs, hold_ms, false, may_stay_open);
  Outcome o;
  Collect(c, &o);
  o.elapsed_ms = static_cast<double>(crpc_now_ns() - t0) / 1e6;
  return o;
}

// HPACK integer with an n-bit prefix (RFC 7541 §5.1), first byte's high
// bits `first`.
inline std::string HpackInt(uint8_t first, int prefix_bits, size_t v) {
  std::string s;
  size_t max = (1u << prefix_bits) - 1;
  if (v < max) {
    s.push_back(static_cast<char>(first | v));
    return s;
  }
  s.push_back(static_cast<char>(first | max));
  v -= max;
  while (v >= 128) {
    s.push_back(static_cast<char>(0x80 | (v & 0x7f)));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
  return s;
}

// A literal field, new name; `index` adds it to the dynamic table.
inline std::string HpackLiteral(const std::string &name, const std::string &value, bool index) {
  return HpackInt(index ? 0x40 : 0x00, index ? 6 : 4, 0) + HpackInt(0, 7, name.size()) + name +
         HpackInt(0, 7, value.size()) + value;
}

// The largest header block nghttp2 takes: a HEADERS frame and 8
// CONTINUATION frames (its limit) of 16 KiB.
constexpr size_t kMaxBlock = 9 * 16384;

// One HPACK bomb request on stream sid: the request's own fields, then
// (on a connection's first bomb) one ~4 KB field added to the dynamic
// table, then up to `refs` one-byte references to it (index 62), as many
// as fit kMaxBlock, split into a HEADERS frame and CONTINUATION frames of
// 16 KiB.
inline std::string BombRequest(int32_t sid, const char *path, bool first, size_t refs) {
  std::string block;
  for (const auto &h : RequestHeaders(path)) block += HpackLiteral(h.first, h.second, false);
  if (first) block += HpackLiteral("x-bomb", std::string(4000, 'b'), true);
  block += std::string(std::min(refs, kMaxBlock - block.size()), static_cast<char>(0x80 | 62));
  return HeaderBlockFrames(sid, block, true);
}

// Row 5: `attackers` threads, each sending `requests` HPACK bombs of
// `refs` references (147,000 make the 147 KB that decode to ~579 MB; 9
// frames of 16 KiB is nghttp2's CONTINUATION limit), one after the other
// as each is answered, on a new connection whenever the server has closed
// the last one.
inline Outcome HpackBomb(int port, const char *path, int attackers, int requests,
                         size_t refs) {
  int64_t t0 = crpc_now_ns();
  std::mutex mu;
  Outcome o;
  std::vector<std::thread> ts;
  for (int i = 0; i < attackers; i++) {
    ts.emplace_back([&] {
      NiceAttacker();
      std::unique_ptr<RawConn> c;
      int32_t sid = 1;
      for (int r = 0; r < requests; r++) {
        if (c == nullptr || c->dead()) {
          if (c != nullptr) {
            std::lock_guard<std::mutex> l(mu);
            Collect(*c, &o);
          }
          c.reset(new RawConn(port));
          sid = 1;
        }
        c->Write(BombRequest(sid, path, sid == 1, refs), 10000);
        c->ReadUntil([&] { return c->stream(sid).ended; }, 20000);
        sid += 2;
      }
      std::lock_guard<std::mutex> l(mu);
      Collect(*c, &o);
    });
  }
  for (auto &t : ts) t.join();
  o.elapsed_ms = static_cast<double>(crpc_now_ns() - t0) / 1e6;
  return o;
}

// Row 6: `threads` attackers, each flooding HEADERS + RST_STREAM(CANCEL)
// pairs on a connection until the server cuts it, then reconnecting, for
// duration_ms. Each attacker goes on past duration_ms until it has opened
// min_conns_per_thread connections (so the server has cut it at least
// min_conns_per_thread - 1 times; on a slow machine the budget can outlast
// the clock), giving up 30 s after the start. streams_processed sums what
// the server's GOAWAYs say it processed (last stream id), which is what
// the floods cost it.
inline Outcome RapidReset(int port, const char *path, int threads, int64_t duration_ms,
                          int min_conns_per_thread = 1) {
  int64_t t0 = crpc_now_ns();
  int64_t until = t0 + duration_ms * kMs;
  int64_t give_up = t0 + 30000 * kMs;
  std::mutex mu;
  Outcome o;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&] {
      NiceAttacker();
      for (int k = 0;; k++) {
        int64_t now = crpc_now_ns();
        if (now >= give_up || (now >= until && k >= min_conns_per_thread)) break;
        // Flood past the clock while this attacker still owes a reconnect.
        int64_t flood_until = k + 1 < min_conns_per_thread ? give_up : until;
        RawConn c(port);
        // The first block fills the HPACK table; the ones after it are
        // identical (all indexed), so one encoding serves every stream.
        std::string first = c.hpack().Encode(RequestHeaders(path));
        std::string again = c.hpack().Encode(RequestHeaders(path));
        int32_t sid = 1;
        long long pairs = 0;
        std::string burst;
        while (!c.dead() && c.goaways().empty() && crpc_now_ns() < flood_until) {
          burst.clear();
          for (int i = 0; i < 64; i++, sid += 2, pairs++) {
            burst += Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, sid, sid == 1 ? first : again);
            burst += RstStream(sid, NGHTTP2_CANCEL);
          }
          if (!c.Write(burst, 1000)) break;
          c.ReadAvailable();
        }
        c.ReadUntil([&] { return !c.goaways().empty(); }, 1000);
        Outcome mine;
        Collect(c, &mine);
        std::lock_guard<std::mutex> l(mu);
        o.conns++;
        o.pairs_sent += pairs;
        for (auto &g : mine.goaways) o.goaways[g.first] += g.second;
        if (c.eof()) o.closed++;
        long long last = c.goaway_last() < 0 ? (sid - 1) : c.goaway_last();
        o.streams_processed += (last + 1) / 2;
      }
    });
  }
  for (auto &t : ts) t.join();
  o.elapsed_ms = static_cast<double>(crpc_now_ns() - t0) / 1e6;
  return o;
}

// Row 7: `n` connections that never get going: kind 0 sends nothing, 1
// half a preface, 2 the preface and SETTINGS and then nothing (idle).
// Holds them for hold_ms (or until the server has closed them all). With
// `newcomer`, a client that connects only once they are all open then
// makes one call (its result goes in the note).
inline Outcome IdleConns(int port, int n, int kind, int64_t hold_ms, bool newcomer = false) {
  int64_t t0 = crpc_now_ns();
  std::vector<std::unique_ptr<RawConn>> cs;
  for (int i = 0; i < n; i++) {
    cs.emplace_back(new RawConn(port, kind == 2));
    if (kind == 1) cs.back()->Write(std::string(kPreface).substr(0, 12));
  }
  std::string note;
  if (newcomer) {
    crpc_channel *ch = crpc_channel_new(("127.0.0.1:" + std::to_string(port)).c_str(), nullptr);
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 2 * CRPC_SECOND);
    crpc_message resp{};
    crpc_status st{};
    int64_t c0 = crpc_now_ns();
    crpc_code rc = crpc_unary_call(ch, ctx, kUnary, nullptr, "new", 3, &resp, &st);
    char buf[96];
    snprintf(buf, sizeof buf, "a client connecting now: %s in %.1f ms", crpc_code_name(rc),
             static_cast<double>(crpc_now_ns() - c0) / 1e6);
    note = buf;
    free(resp.data);
    crpc_status_clear(&st);
    crpc_ctx_release(ctx);
    crpc_channel_free(ch);
  }
  int64_t until = t0 + hold_ms * kMs;
  for (;;) {
    int open = 0;
    for (auto &c : cs) {
      c->ReadAvailable();
      open += c->eof() ? 0 : 1;
    }
    if (open == 0 || crpc_now_ns() > until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Outcome o;
  for (auto &c : cs) Collect(*c, &o);
  o.note = note;
  o.elapsed_ms = static_cast<double>(crpc_now_ns() - t0) / 1e6;
  return o;
}

// Row 8: one connection with `streams` client-streaming calls that send
// one message and never end, held for hold_ms, then reset.
inline Outcome EndlessClientStreams(int port, const char *path, int streams, int64_t hold_ms) {
  int64_t t0 = crpc_now_ns();
  std::vector<std::unique_ptr<RawConn>> cs;
  cs.emplace_back(new RawConn(port));
  RawConn &c = *cs.back();
  std::string burst;
  for (int k = 0; k < streams; k++) {
    int32_t sid = 1 + 2 * k;
    burst += c.HeadersFrame(sid, RequestHeaders(path), false) +
             Frame(NGHTTP2_DATA, 0, sid, GrpcMsg("x"));
    c.stream(sid);
  }
  c.Write(burst);
  Hold(cs, hold_ms, true);
  burst.clear();
  for (int k = 0; k < streams; k++) burst += RstStream(1 + 2 * k, NGHTTP2_CANCEL);
  c.Write(burst);
  Outcome o;
  Collect(c, &o);
  o.elapsed_ms = static_cast<double>(crpc_now_ns() - t0) / 1e6;
  return o;
}

}  // namespace crpc_hostile

#endif  // CRPC_E2E_HOSTILE_ATTACKS_H
