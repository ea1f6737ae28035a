#!/usr/bin/python3
"""A real gRPC client (Debian's python3-grpcio) for crpc's channelz service.

Run it with /usr/bin/python3 (the pyenv python3 on PATH cannot import grpc):

    channelz_client.py --target ADMIN --server-id N --channel-id N \
        --app-port P [--calls S,OK,FAILED] [--messages SENT,RECEIVED]

The stubs are generated at run time from Debian's grpc-proto channelz.proto
(protoc + /usr/bin/grpc_python_plugin), never from crpc's copy. The crpc
process under test (services/channelz/channelz_interop_test.cc) runs an
application server on port P and a channel to it that made a known number
of calls; this client checks what Channelz says about them. Prints
"PASS <check>" or "FAIL <check>: <why>" per check and exits 0 only if
every check passed.
"""

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

GRPC_PROTO = "/usr/share/grpc-proto"
PROTO = "grpc/channelz/v1/channelz.proto"


def load_stubs():
    """Generates the stubs and makes them importable as grpc.channelz.v1
    (grpcio has no grpc.channelz of its own here: grpcio-channelz is a
    separate package Debian does not ship)."""
    out = tempfile.mkdtemp(prefix="crpc-channelz-py-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run(
        ["protoc", "-I" + GRPC_PROTO, "--python_out=" + out,
         "--grpc_python_out=" + out,
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", PROTO],
        check=True)
    grpc.__path__.append(os.path.join(out, "grpc"))


load_stubs()
from grpc.channelz.v1 import channelz_pb2 as cz  # noqa: E402
from grpc.channelz.v1 import channelz_pb2_grpc as cz_grpc  # noqa: E402

READY = cz.ChannelConnectivityState.READY


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def port_of(address):
    check(address.WhichOneof("address") == "tcpip_address",
          "not a TCP address: %r" % address)
    return address.tcpip_address.port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--server-id", type=int, required=True)
    ap.add_argument("--channel-id", type=int, required=True)
    ap.add_argument("--app-port", type=int, required=True)
    ap.add_argument("--calls", default="5,4,1")
    ap.add_argument("--messages", default="8,5")
    args = ap.parse_args()
    started, ok, failed = (int(x) for x in args.calls.split(","))
    sent, received = (int(x) for x in args.messages.split(","))

    conn = grpc.insecure_channel(args.target)
    stub = cz_grpc.ChannelzStub(conn)
    state = {}
    failures = 0

    def server_counts():
        servers = stub.GetServers(cz.GetServersRequest(), timeout=10).server
        mine = [s for s in servers if s.ref.server_id == args.server_id]
        check(len(mine) == 1, "server %d not in GetServers" % args.server_id)
        ids = [s.ref.server_id for s in servers]
        check(ids == sorted(ids), "GetServers not in id order: %r" % ids)
        d = stub.GetServer(cz.GetServerRequest(server_id=args.server_id),
                           timeout=10).server.data
        check((d.calls_started, d.calls_succeeded, d.calls_failed) ==
              (started, ok, failed), "server calls %d/%d/%d" %
              (d.calls_started, d.calls_succeeded, d.calls_failed))
        check(d.HasField("last_call_started_timestamp"), "no last call")

    def server_socket():
        refs = stub.GetServerSockets(
            cz.GetServerSocketsRequest(server_id=args.server_id),
            timeout=10).socket_ref
        check(len(refs) == 1, "%d server sockets" % len(refs))
        s = stub.GetSocket(cz.GetSocketRequest(socket_id=refs[0].socket_id),
                           timeout=10).socket
        d = s.data
        check((d.streams_started, d.streams_succeeded, d.streams_failed) ==
              (started, started, 0), "streams %d/%d/%d" %
              (d.streams_started, d.streams_succeeded, d.streams_failed))
        check((d.messages_sent, d.messages_received) == (sent, received),
              "messages %d/%d" % (d.messages_sent, d.messages_received))
        check(d.HasField("local_flow_control_window") and
              d.local_flow_control_window.value > 0, "no local window")
        check(port_of(s.local) == args.app_port, "local port")
        state["server_remote_port"] = port_of(s.remote)

    def channel():
        chans = stub.GetTopChannels(cz.GetTopChannelsRequest(),
                                    timeout=10).channel
        mine = [c for c in chans if c.ref.channel_id == args.channel_id]
        check(len(mine) == 1, "channel %d not in GetTopChannels" %
              args.channel_id)
        c = stub.GetChannel(cz.GetChannelRequest(channel_id=args.channel_id),
                            timeout=10).channel
        d = c.data
        check(d.state.state == READY, "channel state %d" % d.state.state)
        check(d.target == "127.0.0.1:%d" % args.app_port,
              "target %r" % d.target)
        check((d.calls_started, d.calls_succeeded, d.calls_failed) ==
              (started, ok, failed), "channel calls %d/%d/%d" %
              (d.calls_started, d.calls_succeeded, d.calls_failed))
        check(len(c.subchannel_ref) == 1, "subchannels")
        sub = stub.GetSubchannel(
            cz.GetSubchannelRequest(
                subchannel_id=c.subchannel_ref[0].subchannel_id),
            timeout=10).subchannel
        check(sub.data.state.state == READY, "subchannel state")
        check(len(sub.socket_ref) == 1, "subchannel sockets")
        s = stub.GetSocket(
            cz.GetSocketRequest(socket_id=sub.socket_ref[0].socket_id),
            timeout=10).socket
        check((s.data.messages_sent, s.data.messages_received) ==
              (received, sent), "client messages %d/%d" %
              (s.data.messages_sent, s.data.messages_received))
        check(port_of(s.remote) == args.app_port, "client remote port")
        if "server_remote_port" in state:
            check(port_of(s.local) == state["server_remote_port"],
                  "client local port %d, server saw %d" %
                  (port_of(s.local), state["server_remote_port"]))

    def not_found():
        for name, call in (
                ("GetServer", lambda: stub.GetServer(
                    cz.GetServerRequest(server_id=1 << 40), timeout=10)),
                ("GetChannel", lambda: stub.GetChannel(
                    cz.GetChannelRequest(channel_id=1 << 40), timeout=10)),
                ("GetSubchannel", lambda: stub.GetSubchannel(
                    cz.GetSubchannelRequest(subchannel_id=1 << 40),
                    timeout=10)),
                ("GetSocket", lambda: stub.GetSocket(
                    cz.GetSocketRequest(socket_id=1 << 40), timeout=10)),
                ("GetServerSockets", lambda: stub.GetServerSockets(
                    cz.GetServerSocketsRequest(server_id=1 << 40),
                    timeout=10))):
            try:
                call()
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.NOT_FOUND,
                      "%s: %s" % (name, e.code()))
                continue
            raise Fail("%s answered an unknown id" % name)

    def paging():
        seen, start = [], 0
        for _ in range(100):
            r = stub.GetTopChannels(
                cz.GetTopChannelsRequest(start_channel_id=start,
                                         max_results=1), timeout=10)
            check(len(r.channel) <= 1, "page of %d" % len(r.channel))
            seen += [c.ref.channel_id for c in r.channel]
            if r.end:
                break
            start = seen[-1] + 1
        else:
            raise Fail("no end")
        check(args.channel_id in seen, "paging missed the channel")
        check(seen == sorted(seen), "pages out of order")

    for name, fn in (("server_counts", server_counts),
                     ("server_socket", server_socket), ("channel", channel),
                     ("not_found", not_found), ("paging", paging)):
        try:
            fn()
            print("PASS " + name)
        except (Fail, grpc.RpcError) as e:
            failures += 1
            print("FAIL %s: %s" % (name, e))
    conn.close()
    sys.stdout.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
