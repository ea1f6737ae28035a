// grpc.channelz.v1.Channelz end to end with crpc's own generated client
// (every response is decoded by protobuf-c): an application server and a
// channel to it make a known number of calls (some failing, a server
// stream, a bidi stream held open), then a separate admin server's
// Channelz is asked about both over a real crpc channel, and the counters,
// addresses, windows and TLS data must be what the calls imply. Also
// NOT_FOUND for unknown ids, paging, keepalives, the one switch, and
// entities leaving the registry when they are freed. Runs under TSan.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "crpc/admin.h"
#include "crpc/server_info.h"
#include "services/channelz/channelz_test_util.h"

namespace {

using namespace channelz_test;  // NOLINT: the fixture's helpers

TEST_F(ChannelzTest, ServerCountsCallsStreamsAndMessages) {
  ASSERT_NO_FATAL_FAILURE(StartApp());
  ASSERT_NO_FATAL_FAILURE(Workload());
  int64_t app_id = crpc_server_channelz_id(app_);
  ASSERT_GT(app_id, admin_id_);

  // The server's calls: 5 started, 4 OK (3 unary + the stream), 1 failed.
  Resp<Grpc__Channelz__V1__GetServerResponse> s;
  ASSERT_TRUE(WaitFor(
      [&] {
        s.Reset();
        GetServer(app_id, &s);
        return s.code == CRPC_OK && s->server->data->calls_succeeded == 4 &&
               s->server->data->calls_failed == 1;
      },
      5 * CRPC_SECOND))
      << s.message;
  const Grpc__Channelz__V1__ServerData *d = s->server->data;
  EXPECT_EQ(app_id, s->server->ref->server_id);
  EXPECT_EQ(5, d->calls_started);
  EXPECT_EQ(4, d->calls_succeeded);
  EXPECT_EQ(1, d->calls_failed);
  ASSERT_NE(nullptr, d->last_call_started_timestamp);
  int64_t wall_now = time(nullptr);
  EXPECT_LE(std::abs(d->last_call_started_timestamp->seconds - wall_now), 60);
  ASSERT_NE(nullptr, d->trace);
  EXPECT_NE(nullptr, d->trace->creation_timestamp);

  // Its listen socket: bound where we listened.
  ASSERT_EQ(1u, s->server->n_listen_socket);
  Resp<Grpc__Channelz__V1__GetSocketResponse> ls;
  GetSocket(s->server->listen_socket[0]->socket_id, &ls);
  ASSERT_EQ(CRPC_OK, ls.code) << ls.message;
  EXPECT_EQ(app_port_, Port(ls->socket->local));
  EXPECT_EQ(nullptr, ls->socket->remote);

  // The connection: every stream ended with the server's END_STREAM; one
  // request message per call came in; 3 echoes + 5 streamed went out.
  int64_t sock_id = ServerSocketId();
  ASSERT_GT(sock_id, 0);
  Resp<Grpc__Channelz__V1__GetSocketResponse> ss;
  ASSERT_TRUE(WaitFor(
      [&] {
        ss.Reset();
        GetSocket(sock_id, &ss);
        return ss.code == CRPC_OK && ss->socket->data->streams_succeeded == 5;
      },
      5 * CRPC_SECOND))
      << ss.message;
  const Grpc__Channelz__V1__SocketData *sd = ss->socket->data;
  EXPECT_EQ(sock_id, ss->socket->ref->socket_id);
  EXPECT_EQ(5, sd->streams_started);
  EXPECT_EQ(5, sd->streams_succeeded);
  EXPECT_EQ(0, sd->streams_failed);
  EXPECT_EQ(5, sd->messages_received);
  EXPECT_EQ(8, sd->messages_sent);
  EXPECT_EQ(nullptr, sd->last_local_stream_created_timestamp);
  EXPECT_NE(nullptr, sd->last_remote_stream_created_timestamp);
  EXPECT_NE(nullptr, sd->last_message_sent_timestamp);
  EXPECT_NE(nullptr, sd->last_message_received_timestamp);
  ASSERT_NE(nullptr, sd->local_flow_control_window);
  ASSERT_NE(nullptr, sd->remote_flow_control_window);
  EXPECT_GT(sd->local_flow_control_window->value, 0);
  // crpc's connection receive window is 16 MiB and given back at once.
  EXPECT_GT(sd->remote_flow_control_window->value, 1 << 20);
  EXPECT_EQ(app_port_, Port(ss->socket->local));
  EXPECT_TRUE(IsLoopback(ss->socket->remote));
  EXPECT_EQ(nullptr, ss->socket->security);

  // The same connection seen from the client: its local port is the
  // server socket's remote port, and the counts mirror the server's.
  int64_t sub_id = 0, csock_id = 0;
  ASSERT_NO_FATAL_FAILURE(ClientIds(&sub_id, &csock_id));
  Resp<Grpc__Channelz__V1__GetSocketResponse> cs;
  ASSERT_TRUE(WaitFor(
      [&] {
        cs.Reset();
        GetSocket(csock_id, &cs);
        return cs.code == CRPC_OK && cs->socket->data->streams_succeeded == 5;
      },
      5 * CRPC_SECOND))
      << cs.message;
  const Grpc__Channelz__V1__SocketData *cd = cs->socket->data;
  EXPECT_EQ(Port(ss->socket->remote), Port(cs->socket->local));
  EXPECT_EQ(app_port_, Port(cs->socket->remote));
  EXPECT_EQ(5, cd->streams_started);
  EXPECT_EQ(5, cd->streams_succeeded);
  EXPECT_EQ(0, cd->streams_failed);
  EXPECT_EQ(5, cd->messages_sent);
  EXPECT_EQ(8, cd->messages_received);
  EXPECT_NE(nullptr, cd->last_local_stream_created_timestamp);
  EXPECT_EQ(nullptr, cd->last_remote_stream_created_timestamp);
  ASSERT_NE(nullptr, cd->local_flow_control_window);
  EXPECT_GT(cd->local_flow_control_window->value, 0);
}

TEST_F(ChannelzTest, ChannelAndSubchannel) {
  ASSERT_NO_FATAL_FAILURE(StartApp());
  ASSERT_NO_FATAL_FAILURE(Workload());
  int64_t ch_id = crpc_channel_channelz_id(ch_);
  ASSERT_GT(ch_id, 0);

  Resp<Grpc__Channelz__V1__GetChannelResponse> c;
  ASSERT_TRUE(WaitFor(
      [&] {
        c.Reset();
        GetChannel(ch_id, &c);
        return c.code == CRPC_OK && c->channel->data->calls_succeeded == 4 &&
               c->channel->data->calls_failed == 1;
      },
      5 * CRPC_SECOND))
      << c.message;
  const Grpc__Channelz__V1__ChannelData *d = c->channel->data;
  EXPECT_EQ(ch_id, c->channel->ref->channel_id);
  EXPECT_EQ(target_, c->channel->ref->name);
  EXPECT_EQ(target_, d->target);
  ASSERT_NE(nullptr, d->state);
  EXPECT_EQ(GRPC__CHANNELZ__V1__CHANNEL_CONNECTIVITY_STATE__STATE__READY, d->state->state);
  EXPECT_EQ(5, d->calls_started);
  EXPECT_EQ(4, d->calls_succeeded);
  EXPECT_EQ(1, d->calls_failed);
  EXPECT_NE(nullptr, d->last_call_started_timestamp);

  // GetTopChannels lists it, with the same data.
  Resp<Grpc__Channelz__V1__GetTopChannelsResponse> top;
  GetTopChannels(0, 0, &top);
  ASSERT_EQ(CRPC_OK, top.code) << top.message;
  EXPECT_TRUE(top->end);
  bool found = false;
  for (size_t i = 0; i < top->n_channel; i++) {
    if (i > 0) {
      EXPECT_LT(top->channel[i - 1]->ref->channel_id, top->channel[i]->ref->channel_id);
    }
    if (top->channel[i]->ref->channel_id != ch_id) continue;
    found = true;
    EXPECT_EQ(5, top->channel[i]->data->calls_started);
  }
  EXPECT_TRUE(found);

  // Pick first: one subchannel for the target, READY, whose connection
  // carried the 5 attempts.
  ASSERT_EQ(1u, c->channel->n_subchannel_ref);
  Resp<Grpc__Channelz__V1__GetSubchannelResponse> s;
  GetSubchannel(c->channel->subchannel_ref[0]->subchannel_id, &s);
  ASSERT_EQ(CRPC_OK, s.code) << s.message;
  const Grpc__Channelz__V1__ChannelData *sd = s->subchannel->data;
  EXPECT_EQ(GRPC__CHANNELZ__V1__CHANNEL_CONNECTIVITY_STATE__STATE__READY, sd->state->state);
  EXPECT_EQ(target_, sd->target);
  EXPECT_EQ(5, sd->calls_started);
  EXPECT_EQ(4, sd->calls_succeeded);
  EXPECT_EQ(1, sd->calls_failed);
  ASSERT_EQ(1u, s->subchannel->n_socket_ref);
  EXPECT_EQ("ipv4:" + target_, s->subchannel->socket_ref[0]->name);
}

TEST_F(ChannelzTest, RoundRobinHasASubchannelPerAddress) {
  // Two listeners, one server: round robin over both addresses.
  app_ = crpc_server_new(nullptr);
  ASSERT_EQ(CRPC_OK, crpc_server_add_method(app_, kEcho, CRPC_UNARY, Echo, nullptr));
  int p1 = 0, p2 = 0;
  ASSERT_EQ(CRPC_OK, crpc_server_listen(app_, "127.0.0.1:0", &p1));
  ASSERT_EQ(CRPC_OK, crpc_server_listen(app_, "127.0.0.1:0", &p2));
  ASSERT_EQ(CRPC_OK, crpc_server_start(app_));
  // ipv4:a,b lists both literals as the target's addresses.
  std::string target = "ipv4:127.0.0.1:" + std::to_string(p1) + ",127.0.0.1:" + std::to_string(p2);
  crpc_channel_options o{};
  o.lb_policy = CRPC_LB_ROUND_ROBIN;
  ch_ = crpc_channel_new(target.c_str(), &o);
  if (ch_ == nullptr) GTEST_SKIP() << "no multi-address target syntax";
  for (int i = 0; i < 4; i++) ASSERT_EQ(CRPC_OK, Unary(ch_, "x"));

  Resp<Grpc__Channelz__V1__GetServerResponse> srv;
  GetServer(crpc_server_channelz_id(app_), &srv);
  ASSERT_EQ(CRPC_OK, srv.code);
  EXPECT_EQ(2u, srv->server->n_listen_socket);

  Resp<Grpc__Channelz__V1__GetChannelResponse> c;
  GetChannel(crpc_channel_channelz_id(ch_), &c);
  ASSERT_EQ(CRPC_OK, c.code) << c.message;
  ASSERT_EQ(2u, c->channel->n_subchannel_ref);
  int64_t total = 0;
  for (size_t i = 0; i < 2; i++) {
    Resp<Grpc__Channelz__V1__GetSubchannelResponse> s;
    GetSubchannel(c->channel->subchannel_ref[i]->subchannel_id, &s);
    ASSERT_EQ(CRPC_OK, s.code) << s.message;
    int port = i == 0 ? p1 : p2;
    EXPECT_EQ("ipv4:127.0.0.1:" + std::to_string(port), s->subchannel->data->target);
    EXPECT_EQ(GRPC__CHANNELZ__V1__CHANNEL_CONNECTIVITY_STATE__STATE__READY,
              s->subchannel->data->state->state);
    ASSERT_EQ(1u, s->subchannel->n_socket_ref);
    Resp<Grpc__Channelz__V1__GetSocketResponse> sock;
    GetSocket(s->subchannel->socket_ref[0]->socket_id, &sock);
    ASSERT_EQ(CRPC_OK, sock.code);
    EXPECT_EQ(port, Port(sock->socket->remote));
    total += s->subchannel->data->calls_started;
    EXPECT_GE(s->subchannel->data->calls_started, 1);
  }
  EXPECT_EQ(4, total);
}

TEST_F(ChannelzTest, OpenStreamIsCountedLive) {
  ASSERT_NO_FATAL_FAILURE(StartApp());
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch_, ctx, kHold, nullptr, &call));
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(CRPC_OK, crpc_call_send(call, "abc", 3));
    crpc_message m{};
    ASSERT_EQ(CRPC_OK, crpc_call_recv(call, &m));
    ASSERT_FALSE(m.end);
    free(m.data);
  }
  // The stream is open: its messages count already, on both ends.
  int64_t sub = 0, csock = 0;
  ASSERT_NO_FATAL_FAILURE(ClientIds(&sub, &csock));
  Resp<Grpc__Channelz__V1__GetSocketResponse> cs;
  GetSocket(csock, &cs);
  ASSERT_EQ(CRPC_OK, cs.code) << cs.message;
  EXPECT_EQ(1, cs->socket->data->streams_started);
  EXPECT_EQ(0, cs->socket->data->streams_succeeded + cs->socket->data->streams_failed);
  EXPECT_EQ(3, cs->socket->data->messages_sent);
  EXPECT_EQ(3, cs->socket->data->messages_received);
  Resp<Grpc__Channelz__V1__GetSocketResponse> ss;
  GetSocket(ServerSocketId(), &ss);
  ASSERT_EQ(CRPC_OK, ss.code) << ss.message;
  EXPECT_EQ(1, ss->socket->data->streams_started);
  EXPECT_EQ(3, ss->socket->data->messages_received);
  EXPECT_EQ(3, ss->socket->data->messages_sent);
  Resp<Grpc__Channelz__V1__GetServerResponse> srv;
  GetServer(crpc_server_channelz_id(app_), &srv);
  ASSERT_EQ(CRPC_OK, srv.code);
  EXPECT_EQ(1, srv->server->data->calls_started);
  EXPECT_EQ(0, srv->server->data->calls_succeeded + srv->server->data->calls_failed);

  // The client cancels it: a failed stream and call on both ends (the
  // server never sent END_STREAM).
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  ASSERT_TRUE(WaitFor(
      [&] {
        Resp<Grpc__Channelz__V1__GetServerResponse> r;
        GetServer(crpc_server_channelz_id(app_), &r);
        return r.code == CRPC_OK && r->server->data->calls_failed == 1;
      },
      5 * CRPC_SECOND));
  ASSERT_TRUE(WaitFor(
      [&] {
        Resp<Grpc__Channelz__V1__GetChannelResponse> r;
        GetChannel(crpc_channel_channelz_id(ch_), &r);
        return r.code == CRPC_OK && r->channel->data->calls_failed == 1 &&
               r->channel->data->calls_started == 1;
      },
      5 * CRPC_SECOND));
  Resp<Grpc__Channelz__V1__GetSocketResponse> after;
  ASSERT_TRUE(WaitFor(
      [&] {
        after.Reset();
        GetSocket(csock, &after);
        return after.code == CRPC_OK && after->socket->data->streams_failed == 1;
      },
      5 * CRPC_SECOND));
  EXPECT_EQ(3, after->socket->data->messages_received);
}

TEST_F(ChannelzTest, UnknownIdsAreNotFound) {
  ASSERT_NO_FATAL_FAILURE(StartApp());
  ASSERT_EQ(CRPC_OK, Unary(ch_, "x"));
  const int64_t kNone = 1LL << 40;
  Resp<Grpc__Channelz__V1__GetServerResponse> s;
  GetServer(kNone, &s);
  EXPECT_EQ(CRPC_NOT_FOUND, s.code);
  Resp<Grpc__Channelz__V1__GetChannelResponse> c;
  GetChannel(kNone, &c);
  EXPECT_EQ(CRPC_NOT_FOUND, c.code);
  Resp<Grpc__Channelz__V1__GetSubchannelResponse> sc;
  GetSubchannel(kNone, &sc);
  EXPECT_EQ(CRPC_NOT_FOUND, sc.code);
  Resp<Grpc__Channelz__V1__GetSocketResponse> so;
  GetSocket(kNone, &so);
  EXPECT_EQ(CRPC_NOT_FOUND, so.code);
  Resp<Grpc__Channelz__V1__GetServerSocketsResponse> sso;
  GetServerSockets(kNone, 0, 0, &sso);
  EXPECT_EQ(CRPC_NOT_FOUND, sso.code);
  // Ids of another kind are unknown too.
  Resp<Grpc__Channelz__V1__GetChannelResponse> wrong;
  GetChannel(crpc_server_channelz_id(app_), &wrong);
  EXPECT_EQ(CRPC_NOT_FOUND, wrong.code);
  Resp<Grpc__Channelz__V1__GetServerResponse> wrong2;
  GetServer(crpc_channel_channelz_id(ch_), &wrong2);
  EXPECT_EQ(CRPC_NOT_FOUND, wrong2.code);
  Resp<Grpc__Channelz__V1__GetSocketResponse> wrong3;
  GetSocket(crpc_server_channelz_id(app_), &wrong3);
  EXPECT_EQ(CRPC_NOT_FOUND, wrong3.code);
  // A negative page size is refused.
  Resp<Grpc__Channelz__V1__GetTopChannelsResponse> neg;
  GetTopChannels(0, -1, &neg);
  EXPECT_EQ(CRPC_INVALID_ARGUMENT, neg.code);
}

TEST_F(ChannelzTest, Paging) {
  ASSERT_NO_FATAL_FAILURE(StartApp());
  // Four channels to the app, each with its own connection.
  extra_.push_back(ch_);
  ch_ = nullptr;
  for (int i = 0; i < 3; i++) {
    extra_.push_back(crpc_channel_new(target_.c_str(), nullptr));
    ASSERT_NE(nullptr, extra_.back());
  }
  for (crpc_channel *c : extra_) ASSERT_EQ(CRPC_OK, Unary(c, "x"));
  std::vector<int64_t> want;
  for (crpc_channel *c : extra_) want.push_back(crpc_channel_channelz_id(c));

  // Channels from the first of ours, two a page: 2, 2, then the rest.
  std::vector<int64_t> got;
  int64_t start = want[0];
  bool end = false;
  for (int page = 0; page < 10 && !end; page++) {
    Resp<Grpc__Channelz__V1__GetTopChannelsResponse> r;
    GetTopChannels(start, 2, &r);
    ASSERT_EQ(CRPC_OK, r.code) << r.message;
    ASSERT_LE(r->n_channel, 2u);
    for (size_t i = 0; i < r->n_channel; i++) got.push_back(r->channel[i]->ref->channel_id);
    end = r->end;
    if (!end) {
      ASSERT_EQ(2u, r->n_channel); // a page short of max only at the end
      start = got.back() + 1;
    }
  }
  EXPECT_TRUE(end);
  EXPECT_EQ(want, got);

  // The server's four connections, two a page.
  int64_t app_id = crpc_server_channelz_id(app_);
  ASSERT_TRUE(WaitFor(
      [&] {
        Resp<Grpc__Channelz__V1__GetServerSocketsResponse> r;
        GetServerSockets(app_id, 0, 0, &r);
        return r.code == CRPC_OK && r->n_socket_ref == 4 && r->end;
      },
      5 * CRPC_SECOND));
  Resp<Grpc__Channelz__V1__GetServerSocketsResponse> p1;
  GetServerSockets(app_id, 0, 2, &p1);
  ASSERT_EQ(CRPC_OK, p1.code);
  ASSERT_EQ(2u, p1->n_socket_ref);
  EXPECT_FALSE(p1->end);
  EXPECT_LT(p1->socket_ref[0]->socket_id, p1->socket_ref[1]->socket_id);
  Resp<Grpc__Channelz__V1__GetServerSocketsResponse> p2;
  GetServerSockets(app_id, p1->socket_ref[1]->socket_id + 1, 2, &p2);
  ASSERT_EQ(CRPC_OK, p2.code);
  ASSERT_EQ(2u, p2->n_socket_ref);
  EXPECT_GT(p2->socket_ref[0]->socket_id, p1->socket_ref[1]->socket_id);
  EXPECT_TRUE(p2->end);
  Resp<Grpc__Channelz__V1__GetServerSocketsResponse> p3;
  GetServerSockets(app_id, p2->socket_ref[1]->socket_id + 1, 2, &p3);
  ASSERT_EQ(CRPC_OK, p3.code);
  EXPECT_EQ(0u, p3->n_socket_ref);
  EXPECT_TRUE(p3->end);

  // Servers: the admin and the app, in order.
  Resp<Grpc__Channelz__V1__GetServersResponse> sv;
  GetServers(admin_id_, 1, &sv);
  ASSERT_EQ(CRPC_OK, sv.code);
  ASSERT_EQ(1u, sv->n_server);
  EXPECT_EQ(admin_id_, sv->server[0]->ref->server_id);
  EXPECT_FALSE(sv->end);
  Resp<Grpc__Channelz__V1__GetServersResponse> sv2;
  GetServers(admin_id_ + 1, 0, &sv2);
  ASSERT_EQ(CRPC_OK, sv2.code);
  ASSERT_EQ(1u, sv2->n_server);
  EXPECT_EQ(app_id, sv2->server[0]->ref->server_id);
  EXPECT_TRUE(sv2->end);
}

TEST_F(ChannelzTest, TlsSocketsShowCipherAndCertificates) {
  ASSERT_NO_FATAL_FAILURE(StartApp(nullptr, true));
  std::string r;
  ASSERT_EQ(CRPC_OK, Unary(ch_, "secret", &r));
  ASSERT_EQ("secret", r);
  ASSERT_EQ(5, Stream(5));
  std::string der = Der(Cert::Get().cert);
  ASSERT_FALSE(der.empty());

  Resp<Grpc__Channelz__V1__GetSocketResponse> ss;
  ASSERT_TRUE(WaitFor(
      [&] {
        ss.Reset();
        GetSocket(ServerSocketId(), &ss);
        return ss.code == CRPC_OK && ss->socket->data->streams_succeeded == 2;
      },
      5 * CRPC_SECOND));
  const Grpc__Channelz__V1__Security *sec = ss->socket->security;
  ASSERT_NE(nullptr, sec);
  ASSERT_EQ(GRPC__CHANNELZ__V1__SECURITY__MODEL_TLS, sec->model_case);
  ASSERT_EQ(GRPC__CHANNELZ__V1__SECURITY__TLS__CIPHER_SUITE_STANDARD_NAME,
            sec->tls->cipher_suite_case);
  EXPECT_EQ(0, strncmp(sec->tls->standard_name, "TLS_", 4)) << sec->tls->standard_name;
  EXPECT_EQ(der, std::string(reinterpret_cast<char *>(sec->tls->local_certificate.data),
                             sec->tls->local_certificate.len));
  EXPECT_EQ(0u, sec->tls->remote_certificate.len); // no client certificate
  // Over TLS nghttp2 copies DATA: messages are counted from its frames.
  EXPECT_EQ(2, ss->socket->data->messages_received);
  EXPECT_EQ(6, ss->socket->data->messages_sent);

  int64_t sub = 0, csock = 0;
  ASSERT_NO_FATAL_FAILURE(ClientIds(&sub, &csock));
  Resp<Grpc__Channelz__V1__GetSocketResponse> cs;
  GetSocket(csock, &cs);
  ASSERT_EQ(CRPC_OK, cs.code) << cs.message;
  const Grpc__Channelz__V1__Security *csec = cs->socket->security;
  ASSERT_NE(nullptr, csec);
  EXPECT_STREQ(sec->tls->standard_name, csec->tls->standard_name);
  EXPECT_EQ(der, std::string(reinterpret_cast<char *>(csec->tls->remote_certificate.data),
                             csec->tls->remote_certificate.len));
  EXPECT_EQ(0u, csec->tls->local_certificate.len);
  EXPECT_EQ(2, cs->socket->data->messages_sent);
  EXPECT_EQ(6, cs->socket->data->messages_received);
}

TEST_F(ChannelzTest, KeepalivePingsAreCounted) {
  crpc_server_options so{};
  so.keepalive_time_ns = 20 * CRPC_MILLISECOND;
  so.min_ping_interval_ns = -1; // any rate
  crpc_channel_options co{};
  co.keepalive_time_ns = 20 * CRPC_MILLISECOND;
  co.keepalive_without_calls = 1;
  ASSERT_NO_FATAL_FAILURE(StartApp(&so, false, &co));
  ASSERT_EQ(CRPC_OK, Unary(ch_, "x"));
  int64_t sub = 0, csock = 0;
  ASSERT_NO_FATAL_FAILURE(ClientIds(&sub, &csock));
  int64_t ssock = ServerSocketId();
  EXPECT_TRUE(WaitFor(
      [&] {
        Resp<Grpc__Channelz__V1__GetSocketResponse> c, s;
        GetSocket(csock, &c);
        GetSocket(ssock, &s);
        return c.code == CRPC_OK && s.code == CRPC_OK &&
               c->socket->data->keep_alives_sent >= 2 && s->socket->data->keep_alives_sent >= 2;
      },
      5 * CRPC_SECOND));
}

TEST_F(ChannelzTest, FreedServersChannelsAndSocketsLeave) {
  ASSERT_NO_FATAL_FAILURE(StartApp());
  ASSERT_EQ(CRPC_OK, Unary(ch_, "x"));
  int64_t app_id = crpc_server_channelz_id(app_), ch_id = crpc_channel_channelz_id(ch_);
  int64_t ssock = ServerSocketId(), sub = 0, csock = 0;
  ASSERT_NO_FATAL_FAILURE(ClientIds(&sub, &csock));
  Resp<Grpc__Channelz__V1__GetServerResponse> s;
  GetServer(app_id, &s);
  ASSERT_EQ(CRPC_OK, s.code);
  int64_t listen = s->server->listen_socket[0]->socket_id;

  crpc_channel_free(ch_);
  ch_ = nullptr;
  Resp<Grpc__Channelz__V1__GetChannelResponse> c;
  GetChannel(ch_id, &c);
  EXPECT_EQ(CRPC_NOT_FOUND, c.code);
  Resp<Grpc__Channelz__V1__GetSubchannelResponse> sc;
  GetSubchannel(sub, &sc);
  EXPECT_EQ(CRPC_NOT_FOUND, sc.code);
  Resp<Grpc__Channelz__V1__GetSocketResponse> so;
  GetSocket(csock, &so);
  EXPECT_EQ(CRPC_NOT_FOUND, so.code);
  // The server notices the client's close; the call it served stays in
  // its totals.
  EXPECT_TRUE(WaitFor(
      [&] {
        Resp<Grpc__Channelz__V1__GetSocketResponse> r;
        GetSocket(ssock, &r);
        return r.code == CRPC_NOT_FOUND;
      },
      5 * CRPC_SECOND));
  Resp<Grpc__Channelz__V1__GetServerResponse> s2;
  GetServer(app_id, &s2);
  ASSERT_EQ(CRPC_OK, s2.code);
  EXPECT_EQ(1, s2->server->data->calls_started);
  EXPECT_EQ(1, s2->server->data->calls_succeeded);

  crpc_server_shutdown(app_, 0);
  Resp<Grpc__Channelz__V1__GetSocketResponse> l;
  GetSocket(listen, &l);
  EXPECT_EQ(CRPC_NOT_FOUND, l.code); // closed at shutdown
  crpc_server_free(app_);
  app_ = nullptr;
  Resp<Grpc__Channelz__V1__GetServerResponse> s3;
  GetServer(app_id, &s3);
  EXPECT_EQ(CRPC_NOT_FOUND, s3.code);
}

TEST_F(ChannelzTest, AdminSwitchServesChannelz) {
  crpc_server *s = crpc_server_new(nullptr);
  ASSERT_NE(nullptr, s);
  ASSERT_EQ(CRPC_OK, crpc_server_add_admin_services(s, nullptr));
  bool found = false;
  for (size_t i = 0; i < crpc_server_method_count(s); i++) {
    if (strcmp(crpc_server_method_path(s, i), "/grpc.channelz.v1.Channelz/GetSocket") == 0) {
      found = true;
    }
  }
  EXPECT_TRUE(found);
  found = false;
  for (size_t i = 0; i < crpc_server_file_descriptor_count(s); i++) {
    if (strcmp(crpc_server_file_descriptor_at(s, i)->name, "grpc/channelz/v1/channelz.proto") ==
        0) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << "no descriptor for reflection";
  crpc_code code = CRPC_OK;
  EXPECT_EQ(0, crpc_channelz_service_add(s, &code));
  EXPECT_EQ(CRPC_ALREADY_EXISTS, code);
  crpc_server_free(s);
}

}  // namespace
