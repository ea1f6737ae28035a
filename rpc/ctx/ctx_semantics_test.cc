// Ordinary semantics of crpc/ctx.h, one behaviour per test, written against
// the header's contract.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "rpc/ctx/ctx_test_util.h"

namespace {

using crpc_test::Eventually;
using crpc_test::Now;
using crpc_test::Probe;
using crpc_test::SleepNs;

class CtxSemantics : public crpc_test::CtxTest {};

const crpc_ctx* Bg() { return crpc_ctx_background(); }

bool Readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void ExpectCause(const crpc_ctx* c, crpc_code code, crpc_origin origin,
                 const char* message) {
  ASSERT_TRUE(crpc_ctx_is_done(c));
  const crpc_cause* cause = crpc_ctx_cause(c);
  ASSERT_NE(nullptr, cause);
  EXPECT_EQ(code, cause->code);
  EXPECT_EQ(origin, cause->origin);
  if (message != nullptr) {
    EXPECT_STREQ(message, cause->message);
  }
  EXPECT_EQ(code, crpc_ctx_err(c));
}

TEST_F(CtxSemantics, BackgroundIsNeverDoneAndHasNoDeadline) {
  const crpc_ctx* bg = Bg();
  ASSERT_NE(nullptr, bg);
  EXPECT_EQ(bg, crpc_ctx_background());
  EXPECT_FALSE(crpc_ctx_is_done(bg));
  EXPECT_EQ(nullptr, crpc_ctx_cause(bg));
  EXPECT_EQ(CRPC_OK, crpc_ctx_err(bg));
  EXPECT_EQ(CRPC_NO_DEADLINE, crpc_ctx_deadline(bg));
  EXPECT_EQ(CRPC_NO_DEADLINE, crpc_ctx_remaining(bg));
  static const int key = 0;
  EXPECT_EQ(nullptr, crpc_ctx_value(bg, &key));
  EXPECT_TRUE(crpc_ctx_is_descendant(bg, bg));
  EXPECT_EQ(CRPC_OK, crpc_ctx_sleep(bg, CRPC_MILLISECOND));
  int fd = crpc_ctx_fd(bg);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(Readable(fd));
  Probe probe;
  ASSERT_TRUE(probe.Register(bg));
  EXPECT_EQ(CRPC_ON_CANCEL_REMOVED, crpc_ctx_remove_on_cancel(&probe.reg));
  EXPECT_EQ(0, probe.calls.load());
  crpc_ctx_release(nullptr);  // a no-op
  EXPECT_FALSE(crpc_ctx_is_done(bg));
  // Releasing every child leaves the background untouched.
  crpc_ctx* c = crpc_ctx_with_cancel(bg);
  crpc_ctx_cancel(c, CRPC_ABORTED, nullptr);
  crpc_ctx_release(c);
  EXPECT_FALSE(crpc_ctx_is_done(bg));
}

TEST_F(CtxSemantics, LiveCountTracksEveryDerivation) {
  size_t base = crpc_ctx_live_count();
  static const int key = 0;
  crpc_ctx* a = crpc_ctx_with_cancel(Bg());
  crpc_ctx* b = crpc_ctx_with_deadline(a, Now() + CRPC_SECOND);
  crpc_ctx* c = crpc_ctx_with_timeout(b, CRPC_SECOND);
  crpc_ctx* d = crpc_ctx_with_value(c, &key, nullptr, nullptr);
  crpc_ctx* born_done = crpc_ctx_with_timeout(d, 0);
  EXPECT_EQ(base + 5, crpc_ctx_live_count());
  crpc_ctx_release(a);  // cancels but does not release the descendants
  EXPECT_EQ(base + 4, crpc_ctx_live_count());
  crpc_ctx_release(born_done);
  crpc_ctx_release(c);
  crpc_ctx_release(d);
  crpc_ctx_release(b);
  EXPECT_EQ(base, crpc_ctx_live_count());
}

TEST_F(CtxSemantics, ChildrenOfADoneParentAreBornDone) {
  static const int key = 0;
  crpc_ctx* p = crpc_ctx_with_cancel(Bg());
  crpc_ctx_cancel_cause(p, CRPC_PERMISSION_DENIED, CRPC_ORIGIN_PEER_RESET,
                        "peer reset, error code %d", 8);
  crpc_ctx* kids[] = {
      crpc_ctx_with_cancel(p),
      crpc_ctx_with_deadline(p, Now() + 3600 * CRPC_SECOND),
      crpc_ctx_with_timeout(p, 3600 * CRPC_SECOND),
      crpc_ctx_with_value(p, &key, nullptr, nullptr),
  };
  for (crpc_ctx* k : kids) {
    ASSERT_NE(nullptr, k);
    ExpectCause(k, CRPC_PERMISSION_DENIED, CRPC_ORIGIN_PEER_RESET,
                "peer reset, error code 8");
    EXPECT_TRUE(Readable(crpc_ctx_fd(k)));
    EXPECT_FALSE(crpc_ctx_cancel(k, CRPC_INTERNAL, "x"));
    crpc_ctx* grandchild = crpc_ctx_with_cancel(k);
    ExpectCause(grandchild, CRPC_PERMISSION_DENIED, CRPC_ORIGIN_PEER_RESET,
                "peer reset, error code 8");
    crpc_ctx_release(grandchild);
  }
  for (crpc_ctx* k : kids) crpc_ctx_release(k);
  crpc_ctx_release(p);
}

TEST_F(CtxSemantics, NonPositiveTimeoutIsBornDoneWithDeadlineExceeded) {
  crpc_ctx* kids[] = {
      crpc_ctx_with_timeout(Bg(), 0),
      crpc_ctx_with_timeout(Bg(), -5 * CRPC_SECOND),
      crpc_ctx_with_timeout(Bg(), INT64_MIN),
      crpc_ctx_with_deadline(Bg(), Now() - 1),
      crpc_ctx_with_deadline(Bg(), 0),
      crpc_ctx_with_deadline(Bg(), INT64_MIN),
  };
  const char* names[] = {"with_timeout(0)", "with_timeout(-5 s)",
                         "with_timeout(INT64_MIN)", "with_deadline(now - 1)",
                         "with_deadline(0)", "with_deadline(INT64_MIN)"};
  // The registry can list them (no arithmetic overflow on odd deadlines).
  std::string dump = crpc_test::DumpToString();
  if (crpc_test::kRegistrySites) {
    EXPECT_NE(std::string::npos, dump.find("ctx_semantics_test.cc"));
  }
  for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++) {
    crpc_ctx* k = kids[i];
    SCOPED_TRACE(names[i]);
    ASSERT_NE(nullptr, k);
    ExpectCause(k, CRPC_DEADLINE_EXCEEDED, CRPC_ORIGIN_DEADLINE, nullptr);
    EXPECT_EQ(0, crpc_ctx_remaining(k));
    EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, crpc_ctx_wait(k));
  }
  for (crpc_ctx* k : kids) crpc_ctx_release(k);
}

TEST_F(CtxSemantics, HugeTimeoutSaturatesInsteadOfOverflowing) {
  // now + INT64_MAX overflows; a "wait forever" timeout must not wrap into
  // the past and give a ctx born done.
  crpc_ctx* forever = crpc_ctx_with_timeout(Bg(), INT64_MAX);
  crpc_ctx* nearly = crpc_ctx_with_timeout(Bg(), INT64_MAX - 1);
  crpc_ctx* none = crpc_ctx_with_deadline(Bg(), CRPC_NO_DEADLINE);
  for (crpc_ctx* c : {forever, nearly, none}) {
    ASSERT_NE(nullptr, c);
    EXPECT_FALSE(crpc_ctx_is_done(c));
    EXPECT_GT(crpc_ctx_remaining(c), 100LL * 365 * 24 * 3600 * CRPC_SECOND);
  }
  EXPECT_EQ(CRPC_NO_DEADLINE, crpc_ctx_deadline(none));
  EXPECT_EQ(CRPC_NO_DEADLINE, crpc_ctx_remaining(none));
  for (crpc_ctx* c : {forever, nearly, none}) crpc_ctx_release(c);
}

TEST_F(CtxSemantics, ErrIsOkWhileLiveThenTheCauseCode) {
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  EXPECT_EQ(CRPC_OK, crpc_ctx_err(c));
  EXPECT_EQ(nullptr, crpc_ctx_cause(c));
  EXPECT_FALSE(crpc_ctx_is_done(c));
  crpc_ctx_cancel(c, CRPC_NOT_FOUND, "nope");
  EXPECT_EQ(CRPC_NOT_FOUND, crpc_ctx_err(c));
  EXPECT_TRUE(crpc_ctx_is_done(c));
  crpc_ctx_release(c);
}

TEST_F(CtxSemantics, DeadlineAndRemaining) {
  int64_t before = Now();
  crpc_ctx* t = crpc_ctx_with_timeout(Bg(), 10 * CRPC_SECOND);
  int64_t after = Now();
  int64_t d = crpc_ctx_deadline(t);
  EXPECT_GE(d, before + 10 * CRPC_SECOND);
  EXPECT_LE(d, after + 10 * CRPC_SECOND);
  int64_t rem = crpc_ctx_remaining(t);
  EXPECT_LE(rem, 10 * CRPC_SECOND);
  EXPECT_GT(rem, 9 * CRPC_SECOND);
  SleepNs(5 * CRPC_MILLISECOND);
  EXPECT_LT(crpc_ctx_remaining(t), rem);

  int64_t abs = Now() + 7 * CRPC_SECOND;
  crpc_ctx* a = crpc_ctx_with_deadline(Bg(), abs);
  EXPECT_EQ(abs, crpc_ctx_deadline(a));
  // Cancelling does not erase the deadline.
  crpc_ctx_cancel(a, CRPC_CANCELLED, nullptr);
  EXPECT_EQ(abs, crpc_ctx_deadline(a));

  crpc_ctx* plain = crpc_ctx_with_cancel(Bg());
  EXPECT_EQ(CRPC_NO_DEADLINE, crpc_ctx_deadline(plain));
  EXPECT_EQ(CRPC_NO_DEADLINE, crpc_ctx_remaining(plain));
  crpc_ctx* past = crpc_ctx_with_deadline(Bg(), Now() - CRPC_SECOND);
  EXPECT_EQ(0, crpc_ctx_remaining(past));
  for (crpc_ctx* c : {t, a, plain, past}) crpc_ctx_release(c);
}

TEST_F(CtxSemantics, ValueLookupShadowsAndFallsBack) {
  static const int k1 = 0, k2 = 0, k_unknown = 0;
  static const int k_same_content = 0;  // same value as k1, other address
  int a = 1, b = 2, c = 3;
  crpc_ctx* v1 = crpc_ctx_with_value(Bg(), &k1, &a, nullptr);
  crpc_ctx* v2 = crpc_ctx_with_value(v1, &k2, &b, nullptr);
  crpc_ctx* mid = crpc_ctx_with_cancel(v2);
  crpc_ctx* v3 = crpc_ctx_with_value(mid, &k1, &c, nullptr);
  crpc_ctx* leaf = crpc_ctx_with_timeout(v3, CRPC_SECOND);
  EXPECT_EQ(&a, crpc_ctx_value(v1, &k1));
  EXPECT_EQ(nullptr, crpc_ctx_value(v1, &k2));
  EXPECT_EQ(&a, crpc_ctx_value(v2, &k1));
  EXPECT_EQ(&b, crpc_ctx_value(mid, &k2));
  EXPECT_EQ(&c, crpc_ctx_value(v3, &k1));  // nearest wins
  EXPECT_EQ(&c, crpc_ctx_value(leaf, &k1));
  EXPECT_EQ(&b, crpc_ctx_value(leaf, &k2));
  EXPECT_EQ(nullptr, crpc_ctx_value(leaf, &k_unknown));
  EXPECT_EQ(nullptr, crpc_ctx_value(leaf, &k_same_content));
  crpc_ctx_cancel(v1, CRPC_CANCELLED, nullptr);  // values outlive cancel
  EXPECT_EQ(&c, crpc_ctx_value(leaf, &k1));
  for (crpc_ctx* x : {leaf, v3, mid, v2, v1}) crpc_ctx_release(x);
}

struct FreeCounter {
  std::atomic<int> calls{0};
  pthread_t thread{};
  static void Free(void* v) {
    auto* self = static_cast<FreeCounter*>(v);
    self->thread = pthread_self();
    self->calls.fetch_add(1);
  }
};

TEST_F(CtxSemantics, FreeValueRunsOnceAfterTheCtxAndAllDescendantsAreReleased) {
  static const int k = 0, k2 = 0;
  // No descendants: freed by the release.
  {
    FreeCounter fc;
    crpc_ctx* v = crpc_ctx_with_value(Bg(), &k, &fc, &FreeCounter::Free);
    crpc_ctx_cancel(v, CRPC_CANCELLED, nullptr);
    EXPECT_EQ(0, fc.calls.load()) << "freed on cancel, before release";
    crpc_ctx_release(v);
    EXPECT_TRUE(Eventually([&] { return fc.calls.load() > 0; }));
    SleepNs(2 * CRPC_MILLISECOND);
    EXPECT_EQ(1, fc.calls.load());
  }
  // Descendants outlive the value ctx's release: the value stays readable
  // through them and is freed only when the last one goes.
  {
    FreeCounter fv, fg;
    crpc_ctx* v = crpc_ctx_with_value(Bg(), &k, &fv, &FreeCounter::Free);
    crpc_ctx* c = crpc_ctx_with_cancel(v);
    crpc_ctx* g = crpc_ctx_with_value(c, &k2, &fg, &FreeCounter::Free);
    crpc_ctx_release(v);
    EXPECT_EQ(0, fv.calls.load());
    EXPECT_TRUE(crpc_ctx_is_done(g));
    EXPECT_EQ(&fv, crpc_ctx_value(g, &k));
    crpc_ctx_release(c);
    EXPECT_EQ(0, fv.calls.load());
    EXPECT_EQ(&fv, crpc_ctx_value(g, &k));
    EXPECT_EQ(0, fg.calls.load());
    crpc_ctx_release(g);
    EXPECT_TRUE(Eventually([&] { return fv.calls.load() && fg.calls.load(); }));
    SleepNs(2 * CRPC_MILLISECOND);
    EXPECT_EQ(1, fv.calls.load());
    EXPECT_EQ(1, fg.calls.load());
  }
  // The parent of the value ctx going first does not free the value.
  {
    FreeCounter fc;
    crpc_ctx* p = crpc_ctx_with_cancel(Bg());
    crpc_ctx* v = crpc_ctx_with_value(p, &k, &fc, &FreeCounter::Free);
    crpc_ctx_release(p);
    EXPECT_EQ(0, fc.calls.load());
    EXPECT_EQ(&fc, crpc_ctx_value(v, &k));
    crpc_ctx_release(v);
    EXPECT_TRUE(Eventually([&] { return fc.calls.load() > 0; }));
    EXPECT_EQ(1, fc.calls.load());
  }
  // A value ctx born done is freed too; a NULL free_value is fine.
  {
    FreeCounter fc;
    crpc_ctx* p = crpc_ctx_with_cancel(Bg());
    crpc_ctx_cancel(p, CRPC_CANCELLED, nullptr);
    crpc_ctx* v = crpc_ctx_with_value(p, &k, &fc, &FreeCounter::Free);
    crpc_ctx* n = crpc_ctx_with_value(p, &k2, &fc, nullptr);
    crpc_ctx_release(n);
    crpc_ctx_release(v);
    crpc_ctx_release(p);
    EXPECT_TRUE(Eventually([&] { return fc.calls.load() > 0; }));
    EXPECT_EQ(1, fc.calls.load());
  }
}

TEST_F(CtxSemantics, FreeValueRunsOnTheThreadDroppingTheLastReference) {
  static const int k = 0;
  FreeCounter fc;
  crpc_ctx* v = crpc_ctx_with_value(Bg(), &k, &fc, &FreeCounter::Free);
  crpc_ctx* child = crpc_ctx_with_cancel(v);
  crpc_ctx_release(v);
  pthread_t releaser{};
  std::thread t([&] {
    releaser = pthread_self();
    crpc_ctx_release(child);
  });
  t.join();
  ASSERT_EQ(1, fc.calls.load());
  EXPECT_TRUE(pthread_equal(releaser, fc.thread));
}

TEST_F(CtxSemantics, IsDescendant) {
  static const int k = 0;
  crpc_ctx* p = crpc_ctx_with_cancel(Bg());
  crpc_ctx* c = crpc_ctx_with_value(p, &k, nullptr, nullptr);
  crpc_ctx* g = crpc_ctx_with_timeout(c, CRPC_SECOND);
  crpc_ctx* sib = crpc_ctx_with_deadline(p, Now() + CRPC_SECOND);
  crpc_ctx* other = crpc_ctx_with_cancel(Bg());
  EXPECT_TRUE(crpc_ctx_is_descendant(g, g));
  EXPECT_TRUE(crpc_ctx_is_descendant(g, c));
  EXPECT_TRUE(crpc_ctx_is_descendant(g, p));
  EXPECT_TRUE(crpc_ctx_is_descendant(g, Bg()));
  EXPECT_TRUE(crpc_ctx_is_descendant(p, Bg()));
  EXPECT_FALSE(crpc_ctx_is_descendant(p, c));
  EXPECT_FALSE(crpc_ctx_is_descendant(Bg(), p));
  EXPECT_FALSE(crpc_ctx_is_descendant(g, sib));
  EXPECT_FALSE(crpc_ctx_is_descendant(sib, c));
  EXPECT_FALSE(crpc_ctx_is_descendant(g, other));
  EXPECT_FALSE(crpc_ctx_is_descendant(other, p));
  crpc_ctx_cancel(p, CRPC_CANCELLED, nullptr);  // done does not unlink
  EXPECT_TRUE(crpc_ctx_is_descendant(g, p));
  crpc_ctx_release(p);  // a released ancestor is still an ancestor
  EXPECT_TRUE(crpc_ctx_is_descendant(g, c));
  for (crpc_ctx* x : {g, c, sib, other}) crpc_ctx_release(x);
}

TEST_F(CtxSemantics, CancelReturnsTrueOnlyForTheFirstCanceller) {
  crpc_ctx* p = crpc_ctx_with_cancel(Bg());
  crpc_ctx* c = crpc_ctx_with_cancel(p);
  EXPECT_TRUE(crpc_ctx_cancel(c, CRPC_ABORTED, "first"));
  EXPECT_FALSE(crpc_ctx_cancel(c, CRPC_INTERNAL, "second"));
  EXPECT_FALSE(crpc_ctx_cancel_cause(c, CRPC_UNAVAILABLE, CRPC_ORIGIN_SHUTDOWN,
                                     "third"));
  ExpectCause(c, CRPC_ABORTED, CRPC_ORIGIN_LOCAL, "first");
  EXPECT_TRUE(crpc_ctx_cancel(p, CRPC_CANCELLED, nullptr));
  ExpectCause(c, CRPC_ABORTED, CRPC_ORIGIN_LOCAL, "first");
  crpc_ctx* d = crpc_ctx_with_cancel(p);  // born done: nothing to cancel
  EXPECT_FALSE(crpc_ctx_cancel(d, CRPC_ABORTED, "x"));
  crpc_ctx* e = crpc_ctx_with_cancel(Bg());
  crpc_ctx* f = crpc_ctx_with_cancel(e);
  EXPECT_TRUE(crpc_ctx_cancel(e, CRPC_CANCELLED, nullptr));
  EXPECT_FALSE(crpc_ctx_cancel(f, CRPC_ABORTED, "x"));  // ended by parent
  for (crpc_ctx* x : {f, e, d, c, p}) crpc_ctx_release(x);
}

TEST_F(CtxSemantics, CauseMessageIsTruncatedNotRejected) {
  const size_t max = CRPC_CAUSE_MESSAGE_MAX - 1;
  std::string exact(max, 'e'), over(max + 1, 'o'), long_msg(1000, 'l');
  for (size_t i = 0; i < long_msg.size(); i++) long_msg[i] = 'a' + i % 26;
  struct Case {
    const std::string* msg;
    size_t want_len;
  } cases[] = {{&exact, max}, {&over, max}, {&long_msg, max}};
  for (const Case& cs : cases) {
    crpc_ctx* c = crpc_ctx_with_cancel(Bg());
    EXPECT_TRUE(crpc_ctx_cancel(c, CRPC_CANCELLED, cs.msg->c_str()));
    ASSERT_TRUE(crpc_ctx_is_done(c));
    const char* got = crpc_ctx_cause(c)->message;
    EXPECT_EQ(cs.want_len, strlen(got));
    EXPECT_EQ(cs.msg->substr(0, cs.want_len), std::string(got));
    crpc_ctx_release(c);
  }
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  crpc_ctx_cancel_cause(c, CRPC_INTERNAL, CRPC_ORIGIN_LOCAL, "%s!%d",
                        long_msg.c_str(), 5);
  EXPECT_EQ(long_msg.substr(0, max), crpc_ctx_cause(c)->message);
  crpc_ctx_release(c);
  c = crpc_ctx_with_cancel(Bg());
  crpc_ctx_cancel(c, CRPC_CANCELLED, nullptr);
  EXPECT_STREQ("", crpc_ctx_cause(c)->message);
  crpc_ctx_release(c);
}

TEST_F(CtxSemantics, CancelMessageIsNotAFormatString) {
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  crpc_ctx_cancel(c, CRPC_CANCELLED, "100% %s %n %d done");
  EXPECT_STREQ("100% %s %n %d done", crpc_ctx_cause(c)->message);
  crpc_ctx_release(c);
}

TEST_F(CtxSemantics, CancelCauseRecordsEachOrigin) {
  for (int o = CRPC_ORIGIN_LOCAL; o <= CRPC_ORIGIN_ADMIN; o++) {
    crpc_ctx* p = crpc_ctx_with_cancel(Bg());
    crpc_ctx* c = crpc_ctx_with_cancel(p);
    EXPECT_TRUE(crpc_ctx_cancel_cause(p, CRPC_UNAVAILABLE,
                                      static_cast<crpc_origin>(o), "o=%s",
                                      crpc_origin_name(static_cast<crpc_origin>(o))));
    std::string want = std::string("o=") +
                       crpc_origin_name(static_cast<crpc_origin>(o));
    ExpectCause(p, CRPC_UNAVAILABLE, static_cast<crpc_origin>(o), want.c_str());
    ExpectCause(c, CRPC_UNAVAILABLE, static_cast<crpc_origin>(o), want.c_str());
    crpc_ctx_release(c);
    crpc_ctx_release(p);
  }
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  crpc_ctx_cancel(c, CRPC_DATA_LOSS, "plain");
  ExpectCause(c, CRPC_DATA_LOSS, CRPC_ORIGIN_LOCAL, "plain");
  crpc_ctx_release(c);
}

TEST_F(CtxSemantics, ReleaseCancelsWithContextReleased) {
  crpc_ctx* p = crpc_ctx_with_cancel(Bg());
  crpc_ctx* c = crpc_ctx_with_cancel(p);
  Probe on_p;
  ASSERT_TRUE(on_p.Register(p));
  crpc_ctx_release(p);
  EXPECT_EQ(1, on_p.calls.load());
  EXPECT_EQ(CRPC_CANCELLED, on_p.code);
  EXPECT_EQ(CRPC_ORIGIN_LOCAL, on_p.origin);
  EXPECT_STREQ("context released", on_p.message);
  ExpectCause(c, CRPC_CANCELLED, CRPC_ORIGIN_LOCAL, "context released");
  crpc_ctx_release(c);
}

TEST_F(CtxSemantics, CallbacksRunExactlyOnceWithTheCauseOnTheCancellingThread) {
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  Probe probes[3];
  for (Probe& p : probes) ASSERT_TRUE(p.Register(c));
  pthread_t canceller{};
  std::thread t([&] {
    canceller = pthread_self();
    crpc_ctx_cancel(c, CRPC_OUT_OF_RANGE, "past the end");
    // Before cancel returns, every callback has run.
    for (Probe& p : probes) {
      if (p.calls.load() != 1) ADD_FAILURE() << "callback not run yet";
    }
  });
  t.join();
  crpc_ctx_cancel(c, CRPC_INTERNAL, "again");
  crpc_ctx_release(c);
  for (Probe& p : probes) {
    EXPECT_EQ(1, p.calls.load());
    EXPECT_EQ(CRPC_OUT_OF_RANGE, p.code);
    EXPECT_EQ(CRPC_ORIGIN_LOCAL, p.origin);
    EXPECT_STREQ("past the end", p.message);
    EXPECT_TRUE(pthread_equal(canceller, p.thread));
  }
}

TEST_F(CtxSemantics, OnCancelOfADoneCtxReturnsFalseAndLeavesRegUntouched) {
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  crpc_ctx_cancel(c, CRPC_CANCELLED, nullptr);
  Probe probe;
  memset(&probe.reg, 0xAB, sizeof probe.reg);
  crpc_on_cancel copy;
  memcpy(&copy, &probe.reg, sizeof copy);
  EXPECT_FALSE(probe.Register(c));
  EXPECT_EQ(0, memcmp(&copy, &probe.reg, sizeof copy));
  EXPECT_EQ(0, probe.calls.load());
  crpc_ctx* born_done = crpc_ctx_with_cancel(c);
  EXPECT_FALSE(probe.Register(born_done));
  EXPECT_EQ(0, memcmp(&copy, &probe.reg, sizeof copy));
  crpc_ctx_release(born_done);
  crpc_ctx_release(c);
  EXPECT_EQ(0, probe.calls.load());
}

TEST_F(CtxSemantics, CallbacksOnDescendantsRunWhenAnAncestorIsCancelled) {
  static const int k = 0;
  crpc_ctx* p = crpc_ctx_with_cancel(Bg());
  crpc_ctx* v = crpc_ctx_with_value(p, &k, nullptr, nullptr);
  crpc_ctx* g = crpc_ctx_with_timeout(v, 3600 * CRPC_SECOND);
  Probe on_v, on_g;
  ASSERT_TRUE(on_v.Register(v));
  ASSERT_TRUE(on_g.Register(g));
  crpc_ctx_cancel_cause(p, CRPC_UNAVAILABLE, CRPC_ORIGIN_CONNECTION_LOST, "rst");
  EXPECT_EQ(1, on_v.calls.load());
  EXPECT_EQ(1, on_g.calls.load());
  EXPECT_EQ(CRPC_ORIGIN_CONNECTION_LOST, on_g.origin);
  EXPECT_STREQ("rst", on_g.message);
  crpc_ctx_release(g);
  crpc_ctx_release(v);
  crpc_ctx_release(p);
  EXPECT_EQ(1, on_g.calls.load());
}

// A parked thread is woken only after every callback of the cancelled
// subtree has run: waking it costs the canceller a cross-CPU wake-up, which
// must not stand in front of the callbacks that carry the cancel on.
TEST_F(CtxSemantics, CallbacksRunBeforeParkedWaitersAreWoken) {
  crpc_ctx* p = crpc_ctx_with_cancel(Bg());
  crpc_ctx* child = crpc_ctx_with_cancel(p);
  std::atomic<pid_t> tid{0};
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    tid = gettid();
    EXPECT_EQ(CRPC_CANCELLED, crpc_ctx_wait(p));
    woke = true;
  });
  // Parked: its state in /proc is S (sleeping) once it is in the wait.
  ASSERT_TRUE(Eventually([&] {
    if (tid.load() == 0) return false;
    std::string path = "/proc/self/task/" + std::to_string(tid.load()) + "/stat";
    FILE* f = fopen(path.c_str(), "r");
    if (f == nullptr) return false;
    char buf[512] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    const char* close_paren = strrchr(buf, ')');
    return n > 0 && close_paren != nullptr && close_paren[1] == ' ' && close_paren[2] == 'S';
  }));
  struct Seen {
    std::atomic<bool>* woke;
    bool woke_before = true, woke_after_pause = true;
  } seen{&woke};
  crpc_on_cancel reg_p, reg_child;
  auto note = [](void* arg, const crpc_cause*) {
    auto* s = static_cast<Seen*>(arg);
    s->woke_before = s->woke->load();
    SleepNs(20 * CRPC_MILLISECOND); /* time enough for an early wake-up to land */
    s->woke_after_pause = s->woke->load();
  };
  Seen seen_child = seen;
  ASSERT_TRUE(crpc_ctx_on_cancel(p, &reg_p, note, &seen));
  ASSERT_TRUE(crpc_ctx_on_cancel(child, &reg_child, note, &seen_child));
  crpc_ctx_cancel(p, CRPC_CANCELLED, "stop");
  waiter.join();
  EXPECT_TRUE(woke.load());
  EXPECT_FALSE(seen.woke_before);
  EXPECT_FALSE(seen.woke_after_pause) << "the parked thread was woken before the callbacks ran";
  EXPECT_FALSE(seen_child.woke_before);
  EXPECT_FALSE(seen_child.woke_after_pause);
  EXPECT_EQ(CRPC_ON_CANCEL_RAN, crpc_ctx_remove_on_cancel(&reg_p));
  EXPECT_EQ(CRPC_ON_CANCEL_RAN, crpc_ctx_remove_on_cancel(&reg_child));
  crpc_ctx_release(child);
  crpc_ctx_release(p);
}

TEST_F(CtxSemantics, CallbackMayReleaseOtherContexts) {
  // Releasing an unrelated ctx, and a child of the ctx being cancelled.
  crpc_ctx* a = crpc_ctx_with_cancel(Bg());
  crpc_ctx* b = crpc_ctx_with_cancel(Bg());
  crpc_ctx* a_child = crpc_ctx_with_cancel(a);
  Probe on_b, on_a_child;
  ASSERT_TRUE(on_b.Register(b));
  ASSERT_TRUE(on_a_child.Register(a_child));
  size_t live = crpc_ctx_live_count();
  Probe on_a;
  on_a.extra = [&](Probe*, const crpc_cause*) {
    crpc_ctx_release(b);
    crpc_ctx_release(a_child);
  };
  ASSERT_TRUE(on_a.Register(a));
  crpc_ctx_cancel(a, CRPC_ABORTED, "a");
  EXPECT_EQ(live - 2, crpc_ctx_live_count());
  EXPECT_EQ(1, on_b.calls.load());
  EXPECT_STREQ("context released", on_b.message);
  EXPECT_EQ(1, on_a_child.calls.load());
  crpc_ctx_release(a);
}

TEST_F(CtxSemantics, CallbackMayDeriveCancelAndQuery) {
  crpc_ctx* a = crpc_ctx_with_cancel(Bg());
  crpc_ctx* b = crpc_ctx_with_cancel(Bg());
  Probe on_b;
  ASSERT_TRUE(on_b.Register(b));
  bool child_born_done = false, a_done_inside = false;
  crpc_code child_code = CRPC_OK;
  Probe on_a;
  on_a.extra = [&](Probe*, const crpc_cause*) {
    a_done_inside = crpc_ctx_is_done(a);
    crpc_ctx* derived = crpc_ctx_with_cancel(a);
    child_born_done = crpc_ctx_is_done(derived);
    child_code = crpc_ctx_err(derived);
    crpc_ctx_release(derived);
    crpc_ctx_cancel(b, CRPC_UNAUTHENTICATED, "chained");  // nested callbacks
  };
  ASSERT_TRUE(on_a.Register(a));
  crpc_ctx_cancel(a, CRPC_ABORTED, "a");
  EXPECT_TRUE(a_done_inside);
  EXPECT_TRUE(child_born_done);
  EXPECT_EQ(CRPC_ABORTED, child_code);
  EXPECT_EQ(1, on_b.calls.load());
  EXPECT_EQ(CRPC_UNAUTHENTICATED, on_b.code);
  crpc_ctx_release(b);
  crpc_ctx_release(a);
}

TEST_F(CtxSemantics, SleepReturnsOkAfterTheFullDuration) {
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  int64_t t0 = Now();
  EXPECT_EQ(CRPC_OK, crpc_ctx_sleep(c, 20 * CRPC_MILLISECOND));
  EXPECT_GE(Now() - t0, 20 * CRPC_MILLISECOND);
  EXPECT_EQ(CRPC_OK, crpc_ctx_sleep(c, 0));
  crpc_ctx_cancel(c, CRPC_ABORTED, nullptr);
  EXPECT_EQ(CRPC_ABORTED, crpc_ctx_sleep(c, 0));
  crpc_ctx_release(c);
}

TEST_F(CtxSemantics, WaitCondReturnsOkOnSignalWithTheMutexHeld) {
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  bool ready = false;
  std::thread signaller([&] {
    SleepNs(10 * CRPC_MILLISECOND);
    pthread_mutex_lock(&mu);
    ready = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
  });
  pthread_mutex_lock(&mu);
  crpc_code rc = CRPC_OK;
  while (!ready && rc == CRPC_OK) rc = crpc_ctx_wait_cond(c, &cond, &mu);
  EXPECT_EQ(CRPC_OK, rc);
  EXPECT_TRUE(ready);
  EXPECT_EQ(EBUSY, pthread_mutex_trylock(&mu));
  pthread_mutex_unlock(&mu);
  signaller.join();
  crpc_ctx_release(c);
  pthread_mutex_destroy(&mu);
  pthread_cond_destroy(&cond);
}

TEST_F(CtxSemantics, WaitFdReturnsOkWhenTheFdIsReady) {
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  int p[2];
  ASSERT_EQ(0, pipe(p));
  short revents = 0;
  EXPECT_EQ(CRPC_OK, crpc_ctx_wait_fd(c, p[1], POLLOUT, &revents));
  EXPECT_TRUE(revents & POLLOUT);
  std::thread writer([&] {
    SleepNs(10 * CRPC_MILLISECOND);
    EXPECT_EQ(1, write(p[1], "x", 1));
  });
  revents = 0;
  EXPECT_EQ(CRPC_OK, crpc_ctx_wait_fd(c, p[0], POLLIN, &revents));
  EXPECT_TRUE(revents & POLLIN);
  writer.join();
  EXPECT_FALSE(crpc_ctx_is_done(c));
  crpc_ctx_release(c);
  close(p[0]);
  close(p[1]);
}

TEST_F(CtxSemantics, CtxFdFollowsTheChain) {
  crpc_ctx* p = crpc_ctx_with_cancel(Bg());
  crpc_ctx* c = crpc_ctx_with_cancel(p);
  int pfd = crpc_ctx_fd(p), cfd = crpc_ctx_fd(c);
  ASSERT_GE(pfd, 0);
  ASSERT_GE(cfd, 0);
  EXPECT_NE(pfd, cfd);
  EXPECT_FALSE(Readable(cfd));
  crpc_ctx_cancel(p, CRPC_CANCELLED, nullptr);
  EXPECT_TRUE(Readable(pfd));
  EXPECT_TRUE(Readable(cfd));
  // An fd asked for after the ctx is done is readable at once.
  crpc_ctx* late = crpc_ctx_with_cancel(c);
  EXPECT_TRUE(Readable(crpc_ctx_fd(late)));
  crpc_ctx_release(late);
  crpc_ctx_release(c);
  crpc_ctx_release(p);
  // The fds are closed when the contexts are freed.
  EXPECT_TRUE(Eventually([&] {
    return fcntl(pfd, F_GETFD) == -1 && fcntl(cfd, F_GETFD) == -1;
  })) << "ctx fds still open after release";
}

// "Misuse is loud, never silent" (ctx.h): a double release or a NULL ctx
// aborts with a message naming the function, instead of corrupting memory.
TEST_F(CtxSemantics, MisuseAbortsWithAMessage) {
  if (crpc_test::kTsan) GTEST_SKIP() << "death tests fork; not under TSan";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        crpc_ctx* p = crpc_ctx_with_cancel(Bg());
        crpc_ctx* keep_alive = crpc_ctx_with_cancel(p);  // p's memory stays
        (void)keep_alive;
        crpc_ctx_release(p);
        crpc_ctx_release(p);
      },
      // names the function, or the operation and the creation site
      "crpc_ctx_release|released twice|ctx_semantics_test.cc:[0-9]+.*releas");
  EXPECT_DEATH(crpc_ctx_with_cancel(nullptr), "crpc_ctx_with_cancel");
  EXPECT_DEATH(crpc_ctx_is_done(nullptr), "crpc_ctx_is_done");
  EXPECT_DEATH(crpc_ctx_cancel(nullptr, CRPC_CANCELLED, nullptr),
               "crpc_ctx_cancel");
}

// "Safe from an on_cancel callback of any ctx" includes the ctx whose
// callback is running: "when this call ends, clean it up" is a natural use.
TEST_F(CtxSemantics, CallbackMayReleaseItsOwnCtxWhenAnAncestorEndsIt) {
  crpc_ctx* p = crpc_ctx_with_cancel(Bg());
  crpc_ctx* c = crpc_ctx_with_cancel(p);
  crpc_ctx* g = crpc_ctx_with_cancel(c);  // c has a child of its own too
  size_t live = crpc_ctx_live_count();
  Probe on_c, on_g;
  on_c.extra = [&](Probe*, const crpc_cause*) { crpc_ctx_release(c); };
  on_g.extra = [&](Probe*, const crpc_cause*) { crpc_ctx_release(g); };
  ASSERT_TRUE(on_c.Register(c));
  ASSERT_TRUE(on_g.Register(g));
  crpc_ctx_cancel(p, CRPC_ABORTED, "parent");
  EXPECT_EQ(1, on_c.calls.load());
  EXPECT_EQ(1, on_g.calls.load());
  EXPECT_EQ(live - 2, crpc_ctx_live_count());
  crpc_ctx_release(p);
}

TEST_F(CtxSemantics, CallbackMayReleaseItsOwnCtxWhenItsOwnerCancelsIt) {
  crpc_ctx* c = crpc_ctx_with_cancel(Bg());
  size_t live = crpc_ctx_live_count();
  Probe on_c, after;
  on_c.extra = [&](Probe*, const crpc_cause*) { crpc_ctx_release(c); };
  ASSERT_TRUE(on_c.Register(c));
  ASSERT_TRUE(after.Register(c));  // callbacks after the releasing one
  crpc_ctx_cancel(c, CRPC_ABORTED, "owner");
  EXPECT_EQ(1, on_c.calls.load());
  EXPECT_EQ(1, after.calls.load());
  EXPECT_EQ(CRPC_ABORTED, after.code);
  EXPECT_EQ(live - 1, crpc_ctx_live_count());
}

}  // namespace
