// traceparent: the W3C Trace Context header rules on their own (parsing,
// tracestate joining and cutting, ids), without a server.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "interceptors/internal/trace_internal.h"
#include "interceptors/tracing.h"

namespace {

const std::string kT = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string kP = "00f067aa0ba902b7";

bool Parse(const std::string &v, crpc_traceparent *out) {
  return crpc_traceparent_parse(v.data(), v.size(), out);
}

TEST(Traceparent, ValidVersion00) {
  crpc_traceparent tp{};
  ASSERT_TRUE(Parse("00-" + kT + "-" + kP + "-01", &tp));
  EXPECT_EQ(0, tp.version);
  EXPECT_EQ(kT, tp.trace_id);
  EXPECT_EQ(kP, tp.parent_id);
  EXPECT_EQ(1, tp.flags);
  ASSERT_TRUE(Parse("00-" + kT + "-" + kP + "-00", &tp));
  EXPECT_EQ(0, tp.flags);
  ASSERT_TRUE(Parse("00-" + kT + "-" + kP + "-09", &tp));  // a bit field
  EXPECT_EQ(9, tp.flags);
  // Not NUL-terminated: only len bytes are read.
  std::string v = "00-" + kT + "-" + kP + "-01trailing";
  EXPECT_TRUE(crpc_traceparent_parse(v.data(), 55, &tp));
}

TEST(Traceparent, LaterVersions) {
  crpc_traceparent tp{};
  ASSERT_TRUE(Parse("01-" + kT + "-" + kP + "-01", &tp));
  EXPECT_EQ(1, tp.version);
  ASSERT_TRUE(Parse("cc-" + kT + "-" + kP + "-03-future-fields", &tp));
  EXPECT_EQ(0xcc, tp.version);
  EXPECT_EQ(kT, tp.trace_id);
  EXPECT_EQ(3, tp.flags);
  EXPECT_FALSE(Parse("cc-" + kT + "-" + kP + "-01future", &tp));  // no '-'
  EXPECT_FALSE(Parse("cc-" + kT + "-" + kP, &tp));                // < 55
  EXPECT_FALSE(Parse("ff-" + kT + "-" + kP + "-01", &tp));        // forbidden
}

TEST(Traceparent, Malformed) {
  crpc_traceparent tp{};
  tp.flags = 77;
  const std::string z32(32, '0'), z16(16, '0');
  for (const std::string &v : {
           std::string(""), std::string("00"), std::string("00-"),
           "00-" + kT + "-" + kP + "-01-",       // 00 has nothing after flags
           "00-" + kT + "-" + kP + "-0",         // short
           "00-" + kT + "-" + kP + "-001",       // long
           "0A-" + kT + "-" + kP + "-01",        // uppercase version
           "00-" + z32 + "-" + kP + "-01",       // zero trace id
           "00-" + kT + "-" + z16 + "-01",       // zero parent id
           "00-" + kT.substr(0, 31) + "G-" + kP + "-01",  // not hex
           "00-" + kT + "-00F067AA0BA902B7-01",  // uppercase parent
           "00-" + kT + "-" + kP + "-0F",        // uppercase flags
           "00 " + kT + " " + kP + " 01",        // wrong separators
           " 00-" + kT + "-" + kP + "-0",        // leading space
           "00-" + kT + "-" + kP + "-01 ",       // trailing space
       }) {
    EXPECT_FALSE(Parse(v, &tp)) << "\"" << v << "\"";
  }
  EXPECT_EQ(77, tp.flags);  // untouched
  EXPECT_FALSE(crpc_traceparent_parse(nullptr, 0, &tp));
}

std::string Norm(const std::string &s) {
  char *n = icpt_tracestate_norm(s.data(), s.size());
  std::string r = n != nullptr ? n : "<null>";
  free(n);
  return r;
}

TEST(Tracestate, KeptUnchangedUnlessEmptyOrUnprintable) {
  EXPECT_EQ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            Norm("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
  EXPECT_EQ("a=1 ,  b=2,,", Norm("a=1 ,  b=2,,"));  // as received
  EXPECT_EQ("<null>", Norm(""));
  EXPECT_EQ("<null>", Norm(" , ,"));
  EXPECT_EQ("<null>", Norm("a=1\tb=2"));  // metadata cannot carry a tab
  EXPECT_EQ("<null>", Norm(std::string("a=\x01", 3)));
}

TEST(Tracestate, TooLongLosesWholeEntries) {
  // 40 entries of 30 chars (1239 with the commas) and one of 205: the
  // one over 128 chars goes first.
  std::string big(200, 'v');
  std::string s, expect;
  for (int i = 0; i < 40; i++) {
    std::string e = "k" + std::to_string(100 + i) + "=" + std::string(25, 'x');
    if (i == 3) s += "huge=" + big + ",";
    s += e + (i < 39 ? "," : "");
  }
  std::string n = Norm(s);
  EXPECT_LE(n.size(), size_t{CRPC_TRACESTATE_MAX});
  EXPECT_EQ(std::string::npos, n.find("huge="));
  // Then from the end: the first entries stay, in order, whole.
  EXPECT_EQ(0u, n.find("k100=" + std::string(25, 'x') + ",k101="));
  size_t entries = 1;
  for (char c : n) entries += c == ',';
  EXPECT_EQ(n.size(), entries * 31 - 1);  // only whole 30-char entries
  EXPECT_LT(CRPC_TRACESTATE_MAX - n.size(), 31u);
  // Exactly at the limit: unchanged.
  std::string at(CRPC_TRACESTATE_MAX, 'a');
  at[0] = 'k';
  at[1] = '=';
  EXPECT_EQ(at, Norm(at));
  // One entry too long on its own: nothing left.
  EXPECT_EQ("<null>", Norm("k=" + std::string(CRPC_TRACESTATE_MAX, 'x')));
}

TEST(Tracestate, JoinedFromSeveralHeaders) {
  crpc_metadata *md = crpc_metadata_new();
  char *s = icpt_tracestate_from_md(md);
  EXPECT_EQ(nullptr, s);
  crpc_metadata_add_str(md, "tracestate", "a=1");
  crpc_metadata_add_str(md, "other", "x");
  crpc_metadata_add_str(md, "tracestate", "b=2,c=3");
  s = icpt_tracestate_from_md(md);
  ASSERT_NE(nullptr, s);
  EXPECT_STREQ("a=1,b=2,c=3", s);
  free(s);
  crpc_metadata_free(md);
}

TEST(TraceIds, RandomLowercaseHexNeverZero) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; i++) {
    char t[33], s[17];
    icpt_trace_random_hex(t, 16);
    icpt_trace_random_hex(s, 8);
    ASSERT_TRUE(icpt_trace_is_w3c_id(t, 32)) << t;
    ASSERT_TRUE(icpt_trace_is_w3c_id(s, 16)) << s;
    ASSERT_EQ(32u, strlen(t));
    seen.insert(t);
  }
  EXPECT_EQ(1000u, seen.size());
  EXPECT_FALSE(icpt_trace_is_w3c_id("0000", 4));
  EXPECT_FALSE(icpt_trace_is_w3c_id("00A0", 4));
  EXPECT_TRUE(icpt_trace_is_w3c_id("00a0", 4));
}

}  // namespace
