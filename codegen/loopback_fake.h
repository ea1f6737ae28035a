// codegen/loopback_fake.h - a fake crpc runtime for the loopback tests:
// client calls are handed synchronously to whatever the generated
// <service>_register_handlers / _register_async_handlers registered, so the
// generated stubs, adapters and async glue run end to end without sockets
// (typing, pack/unpack, ownership, error mapping). The real runtime has its
// own tests; codegen/testdata/e2e runs the stubs against it.
//
// Async methods are driven the way crpc/server_async.h promises: on_start,
// each request, the end of the stream, then on_done once the reactor has
// finished; knobs on crpc_server make the fake cancel instead.
#ifndef CRPC_CODEGEN_LOOPBACK_FAKE_H
#define CRPC_CODEGEN_LOOPBACK_FAKE_H

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "crpc/channel.h"
#include "crpc/channel_async.h"
#include "crpc/server.h"
#include "crpc/server_async.h"
#include "crpc/server_info.h"

// One registered method: exactly one of fn, unary_async, reactor.on_start
// is set.
struct Method {
  crpc_method_kind kind = CRPC_UNARY;
  crpc_handler_fn fn = nullptr;
  crpc_unary_async_fn unary_async = nullptr;
  crpc_server_reactor reactor{};
  void *user_data = nullptr;
};

struct crpc_server {
  std::map<std::string, Method> methods;
  // Reactor calls: after this many request messages the ctx is cancelled
  // (on_cancel, CANCELLED) instead of delivering the rest; -1: never.
  int cancel_after = -1;
  // Reactor calls: the ctx is done before the call starts: on_start still
  // runs, then on_cancel with its state (as the runtime does).
  bool done_before_start = false;
  // crpc_server_add_file_descriptor: each file once, imports first (as
  // the real registry keeps them).
  std::vector<const crpc_file_descriptor *> files;
};

struct crpc_channel {
  crpc_server *server;
};

struct crpc_server_call {
  std::deque<std::string> in;
  std::vector<std::string> out;
  std::string error;        // the status message
  int finishes = 0;         // crpc_server_call_finish calls (must be 1)
  crpc_code finish_code = CRPC_OK;
  // What on_start returned, for a test that finishes a reactor the fake
  // gave up on (FakeServe then returned DEADLINE_EXCEEDED, no on_done).
  void *reactor_state = nullptr;
};

struct crpc_call {
  crpc_server *server = nullptr;
  const Method *method = nullptr;
  const crpc_ctx *ctx = nullptr;
  std::deque<std::string> requests;
  std::deque<std::string> responses;
  bool ran = false;
  crpc_code code = CRPC_OK;
  std::string message;
};

// Runs one call of m on sc (requests in sc->in) as the runtime would and
// returns its status code; the message is left in sc->error.
crpc_code FakeServe(const crpc_server *server, const Method &m,
                    crpc_server_call *sc, const crpc_ctx *ctx);

#endif  // CRPC_CODEGEN_LOOPBACK_FAKE_H
