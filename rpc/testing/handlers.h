// rpc/testing/handlers.h - the parameter of tests that run once per server
// handler style: blocking handlers (crpc/server.h, a thread per call) or
// async ones (crpc/server_async.h, reactors on the loop thread). One
// definition for every suite (rpc/e2e, rpc/server), so test names read the
// same everywhere: "Handlers/Fixture.Test/Blocking" and ".../Async".
#ifndef CRPC_TESTING_HANDLERS_H
#define CRPC_TESTING_HANDLERS_H

#include <gtest/gtest.h>

#include <string>

namespace crpc_testing {

enum class Handlers { kBlocking, kAsync };

inline std::string HandlersName(const ::testing::TestParamInfo<Handlers> &info) {
  return info.param == Handlers::kAsync ? "Async" : "Blocking";
}

}  // namespace crpc_testing

// Instantiates a fixture parametrised with crpc_testing::Handlers for both.
#define CRPC_BOTH_HANDLERS(Fixture)                                                          \
  INSTANTIATE_TEST_SUITE_P(Handlers, Fixture,                                                \
                           ::testing::Values(::crpc_testing::Handlers::kBlocking,            \
                                             ::crpc_testing::Handlers::kAsync),              \
                           ::crpc_testing::HandlersName)

#endif  // CRPC_TESTING_HANDLERS_H
