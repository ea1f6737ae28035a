// The channelz registry (channelz.h) and a connection's message counting
// (rpc/h2/conn_cz.h) on their own: ids, kinds and paging; socket counts
// folded into their parent when they go; GetSocket answered on the
// socket's loop and NOT_FOUND once it has gone; single-writer counters
// read by a querying thread while sockets come and go (TSan); and the
// outgoing frame reader fed bytes in every split.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "crpc/ctx.h"
#include "rpc/channelz/channelz.h"
#include "rpc/h2/conn.h"
#include "rpc/loop/loop.h"
#include "rpc/loop/loop.h"

namespace {

// ---- registry ---------------------------------------------------------------

std::vector<int64_t> Ids(crpc_cz_kind kind, int64_t parent, int64_t start, size_t max,
                         bool *end) {
  crpc_cz_ref *refs = nullptr;
  size_t n = 0;
  EXPECT_EQ(CRPC_OK, crpc_cz_list(kind, parent, start, max, &refs, &n, end));
  std::vector<int64_t> ids;
  for (size_t i = 0; i < n; i++) ids.push_back(refs[i].id);
  crpc_cz_refs_free(refs, n);
  return ids;
}

TEST(Registry, IdsKindsParentsAndPages) {
  crpc_cz_entity *srv = crpc_cz_register(CRPC_CZ_SERVER, nullptr, "s");
  crpc_cz_entity *ch = crpc_cz_register(CRPC_CZ_CHANNEL, nullptr, "dns:x:1");
  crpc_cz_entity *sub = crpc_cz_register(CRPC_CZ_SUBCHANNEL, ch, "ipv4:1.2.3.4:1");
  std::vector<crpc_cz_entity *> socks;
  for (int i = 0; i < 5; i++) {
    socks.push_back(crpc_cz_register_socket(CRPC_CZ_SERVER_SOCKET, srv, "peer", nullptr,
                                            nullptr, nullptr, nullptr, 0));
  }
  ASSERT_NE(nullptr, srv);
  EXPECT_LT(srv->id, ch->id);
  EXPECT_LT(ch->id, sub->id);
  EXPECT_LT(sub->id, socks[0]->id);

  bool end = false;
  std::vector<int64_t> all = Ids(CRPC_CZ_SERVER_SOCKET, srv->id, 0, 100, &end);
  ASSERT_EQ(5u, all.size());
  EXPECT_TRUE(end);
  std::vector<int64_t> page = Ids(CRPC_CZ_SERVER_SOCKET, srv->id, 0, 2, &end);
  EXPECT_EQ(std::vector<int64_t>(all.begin(), all.begin() + 2), page);
  EXPECT_FALSE(end);
  page = Ids(CRPC_CZ_SERVER_SOCKET, srv->id, all[2], 3, &end);
  EXPECT_EQ(std::vector<int64_t>(all.begin() + 2, all.end()), page);
  EXPECT_TRUE(end); // exactly the rest: nothing past it
  EXPECT_TRUE(Ids(CRPC_CZ_SERVER_SOCKET, ch->id, 0, 100, &end).empty());

  crpc_cz_node *node = nullptr;
  EXPECT_EQ(CRPC_NOT_FOUND, crpc_cz_get_node(CRPC_CZ_CHANNEL, srv->id, &node));
  ASSERT_EQ(CRPC_OK, crpc_cz_get_node(CRPC_CZ_CHANNEL, ch->id, &node));
  ASSERT_EQ(1u, node->n_children);
  EXPECT_EQ(sub->id, node->children[0].id);
  EXPECT_STREQ("ipv4:1.2.3.4:1", node->children[0].name);
  EXPECT_EQ(CRPC_CZ_STATE_SHUTDOWN, node->state); // no channel attached
  crpc_cz_node_free(node);

  for (crpc_cz_entity *s : socks) crpc_cz_unregister(s);
  crpc_cz_unregister(sub);
  crpc_cz_unregister(ch);
  crpc_cz_unregister(srv);
}

TEST(Registry, SocketCountsStayWithTheirServer) {
  crpc_cz_entity *srv = crpc_cz_register(CRPC_CZ_SERVER, nullptr, "");
  ASSERT_NE(nullptr, srv);
  int64_t id = srv->id;
  crpc_cz_entity *a = crpc_cz_register_socket(CRPC_CZ_SERVER_SOCKET, srv, "a", nullptr,
                                              nullptr, nullptr, nullptr, 0);
  crpc_cz_entity *b = crpc_cz_register_socket(CRPC_CZ_SERVER_SOCKET, srv, "b", nullptr,
                                              nullptr, nullptr, nullptr, 0);
  crpc_cz_add(&a->c.calls_started, 3);
  crpc_cz_add(&a->c.calls_succeeded, 2);
  crpc_cz_inc(&a->c.calls_failed);
  crpc_cz_set(&a->c.last_call_started_ns, 100);
  crpc_cz_add(&b->c.calls_started, 4);
  crpc_cz_set(&b->c.last_call_started_ns, 50);
  crpc_cz_node *node = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_cz_get_node(CRPC_CZ_SERVER, srv->id, &node));
  EXPECT_EQ(7, node->data.calls_started);
  EXPECT_EQ(100, node->data.last_call_started_ns);
  crpc_cz_node_free(node);
  crpc_cz_unregister(a); // gone, but its calls stay counted
  ASSERT_EQ(CRPC_OK, crpc_cz_get_node(CRPC_CZ_SERVER, srv->id, &node));
  EXPECT_EQ(7, node->data.calls_started);
  EXPECT_EQ(2, node->data.calls_succeeded);
  EXPECT_EQ(1, node->data.calls_failed);
  EXPECT_EQ(100, node->data.last_call_started_ns);
  crpc_cz_node_free(node);
  crpc_cz_unregister(b);
  crpc_cz_unregister(srv);
  EXPECT_EQ(CRPC_NOT_FOUND, crpc_cz_get_node(CRPC_CZ_SERVER, id, &node));
}

// GetSocket runs the filler on the socket's loop, and finds nothing once
// the socket has gone (unregistered on its loop).
struct LoopSocket {
  crpc_loop *loop = nullptr;
  crpc_cz_entity *e = nullptr;
  std::atomic<int> fills{0};
  std::atomic<bool> on_loop{false};
};

void Fill(void *arg, crpc_cz_socket_info *info) {
  LoopSocket *ls = static_cast<LoopSocket *>(arg);
  ls->fills++;
  ls->on_loop = crpc_loop_in_loop_thread(ls->loop);
  info->has_windows = true;
  info->local_window = 1234;
}

struct Answer {
  std::atomic<bool> done{false};
  crpc_code code = CRPC_INTERNAL;
  int64_t window = 0, streams = 0;
};

void Answered(crpc_code code, crpc_cz_socket_info *info, void *ud) {
  Answer *a = static_cast<Answer *>(ud);
  a->code = code;
  if (info != nullptr) {
    a->window = info->local_window;
    a->streams = info->data.streams_started;
  }
  crpc_cz_socket_info_free(info);
  a->done = true;
}

bool Wait(const std::atomic<bool> &flag) {
  int64_t until = crpc_now_ns() + 5 * CRPC_SECOND;
  while (!flag && crpc_now_ns() < until) std::this_thread::yield();
  return flag;
}

TEST(Registry, GetSocketAsksTheSocketsLoop) {
  LoopSocket ls;
  ASSERT_EQ(0, crpc_loop_new(&ls.loop, 0));
  ASSERT_EQ(0, crpc_loop_start_thread(ls.loop));
  ls.e = crpc_cz_register_socket(CRPC_CZ_CLIENT_SOCKET, nullptr, "c", ls.loop, Fill, &ls,
                                 nullptr, 0);
  ASSERT_NE(nullptr, ls.e);
  int64_t id = ls.e->id;
  crpc_loop_post(
      ls.loop, [](crpc_loop *, void *arg) { crpc_cz_inc(&static_cast<crpc_cz_entity *>(arg)->c.streams_started); },
      ls.e);
  Answer a;
  crpc_cz_get_socket_async(id, Answered, &a);
  ASSERT_TRUE(Wait(a.done));
  EXPECT_EQ(CRPC_OK, a.code);
  EXPECT_EQ(1234, a.window);
  EXPECT_EQ(1, a.streams);
  EXPECT_TRUE(ls.on_loop);

  // Unregistered on its loop: later questions find nothing.
  crpc_loop_post(
      ls.loop, [](crpc_loop *, void *arg) { crpc_cz_unregister(static_cast<crpc_cz_entity *>(arg)); },
      ls.e);
  Answer b;
  crpc_cz_get_socket_async(id, Answered, &b);
  ASSERT_TRUE(Wait(b.done));
  // Either the question was posted before the unregister (then the loop
  // found it gone) or after (then it was not found at once).
  EXPECT_EQ(CRPC_NOT_FOUND, b.code);
  EXPECT_EQ(1, ls.fills.load());
  crpc_loop_stop_and_join(ls.loop);
  crpc_loop_free(ls.loop);
}

// Sockets come and go on several threads, each counting its own, while
// another thread reads the server's totals: the totals only grow and end
// exact (TSan: single-writer counters, folding under the mutex).
TEST(Registry, CountersRaceQueries) {
  crpc_cz_entity *srv = crpc_cz_register(CRPC_CZ_SERVER, nullptr, "");
  constexpr int kThreads = 4, kSockets = 20, kCalls = 200;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    int64_t last = 0;
    while (!stop) {
      crpc_cz_node *node = nullptr;
      ASSERT_EQ(CRPC_OK, crpc_cz_get_node(CRPC_CZ_SERVER, srv->id, &node));
      EXPECT_GE(node->data.calls_started, last);
      last = node->data.calls_started;
      crpc_cz_node_free(node);
      bool end;
      Ids(CRPC_CZ_SERVER_SOCKET, srv->id, 0, 3, &end);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; t++) {
    writers.emplace_back([&] {
      for (int s = 0; s < kSockets; s++) {
        crpc_cz_entity *e = crpc_cz_register_socket(CRPC_CZ_SERVER_SOCKET, srv, "x", nullptr,
                                                    nullptr, nullptr, nullptr, 0);
        for (int c = 0; c < kCalls; c++) {
          crpc_cz_inc(&e->c.calls_started);
          crpc_cz_inc(&e->c.calls_succeeded);
        }
        crpc_cz_unregister(e);
      }
    });
  }
  for (auto &w : writers) w.join();
  stop = true;
  reader.join();
  crpc_cz_node *node = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_cz_get_node(CRPC_CZ_SERVER, srv->id, &node));
  EXPECT_EQ(kThreads * kSockets * kCalls, node->data.calls_started);
  EXPECT_EQ(kThreads * kSockets * kCalls, node->data.calls_succeeded);
  crpc_cz_node_free(node);
  crpc_cz_unregister(srv);
}

// ---- the outgoing frame reader (rpc/h2/conn_cz.c) -----------------------------

// A DATA frame header for stream `sid` with `len` payload bytes.
std::string FrameHd(uint32_t len, uint8_t type, uint8_t flags, int32_t sid) {
  std::string h(9, '\0');
  h[0] = static_cast<char>(len >> 16);
  h[1] = static_cast<char>(len >> 8);
  h[2] = static_cast<char>(len);
  h[3] = static_cast<char>(type);
  h[4] = static_cast<char>(flags);
  h[5] = static_cast<char>(sid >> 24);
  h[6] = static_cast<char>(sid >> 16);
  h[7] = static_cast<char>(sid >> 8);
  h[8] = static_cast<char>(sid);
  return h;
}

std::string Message(size_t len) {
  std::string m(5, '\0');
  m[1] = static_cast<char>(len >> 24);
  m[2] = static_cast<char>(len >> 16);
  m[3] = static_cast<char>(len >> 8);
  m[4] = static_cast<char>(len);
  return m + std::string(len, 'x');
}

crpc_h2_msgscan g_scans[8];

crpc_h2_msgscan *ScanOf(crpc_h2_conn *, int32_t sid) {
  return sid > 0 && sid < 8 ? &g_scans[sid] : nullptr;
}

// Feeds `bytes` to a fresh client connection's reader in pieces of `step`
// bytes; returns the messages counted.
uint64_t Scan(const std::string &bytes, size_t step) {
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session *session = nullptr;
  nghttp2_session_client_new(&session, cbs, nullptr);
  crpc_h2_conn conn;
  memset(&conn, 0, sizeof(conn));
  // Not run: the scan only reads its clock (crpc_loop_now).
  EXPECT_EQ(crpc_loop_new(&conn.loop, 0), 0);
  crpc_h2_cz_init(&conn.cz, session);
  conn.cz.stream = ScanOf;
  memset(g_scans, 0, sizeof(g_scans));
  const uint8_t *p = reinterpret_cast<const uint8_t *>(bytes.data());
  for (size_t off = 0; off < bytes.size(); off += step) {
    crpc_h2_cz_scan(&conn, p + off, std::min(step, bytes.size() - off));
  }
  nghttp2_session_del(session);
  nghttp2_session_callbacks_del(cbs);
  crpc_loop_free(conn.loop);
  return conn.cz.messages_sent;
}

TEST(ConnScan, CountsMessagesAcrossFramesStreamsAndSplits) {
  std::string out(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
  out += FrameHd(6, NGHTTP2_SETTINGS, 0, 0) + std::string(6, '\0');
  out += FrameHd(20, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1) + std::string(20, 'h');
  out += FrameHd(20, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 3) + std::string(20, 'h');
  // Stream 1: a 100-byte message split over two DATA frames, with stream
  // 3's frames (an empty message, then a 10-byte one) in between.
  std::string m1 = Message(100);
  out += FrameHd(40, NGHTTP2_DATA, 0, 1) + m1.substr(0, 40);
  std::string m3 = Message(0) + Message(10);
  out += FrameHd(static_cast<uint32_t>(m3.size()), NGHTTP2_DATA, 0, 3) + m3;
  out += FrameHd(static_cast<uint32_t>(m1.size() - 40), NGHTTP2_DATA, 0, 1) + m1.substr(40);
  // Stream 1 again: two messages in one frame, the second cut inside its
  // prefix and finished by an END_STREAM frame.
  std::string two = Message(3) + Message(7);
  out += FrameHd(8 + 2, NGHTTP2_DATA, 0, 1) + two.substr(0, 10);
  out += FrameHd(static_cast<uint32_t>(two.size() - 10), NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM,
                 1) +
         two.substr(10);
  // A stream nobody counts (no scanner) and a PING.
  out += FrameHd(15, NGHTTP2_DATA, 0, 9) + Message(10);
  out += FrameHd(8, NGHTTP2_PING, 0, 0) + std::string(8, 'p');
  for (size_t step : {out.size(), size_t{1}, size_t{2}, size_t{5}, size_t{9}, size_t{13}}) {
    EXPECT_EQ(5u, Scan(out, step)) << "in pieces of " << step;
  }
  // Half a message: not counted yet.
  std::string part(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
  part += FrameHd(50, NGHTTP2_DATA, 0, 1) + Message(100).substr(0, 50);
  EXPECT_EQ(0u, Scan(part, 7));
}

}  // namespace
