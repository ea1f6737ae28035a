#include "rpc/wire/timeout.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <string>

namespace {

const int64_t kUs = 1000;
const int64_t kMs = 1000 * kUs;
const int64_t kS = 1000 * kMs;
const int64_t kM = 60 * kS;
const int64_t kH = 60 * kM;

std::string Encode(int64_t ns) {
  char buf[CRPC_WIRE_TIMEOUT_BUF];
  std::memset(buf, 'Z', sizeof(buf));
  size_t n = crpc_wire_timeout_encode(ns, buf);
  EXPECT_EQ(n, std::strlen(buf));
  return std::string(buf);
}

crpc_code Decode(const std::string &s, int64_t *ns,
                 const char **why = nullptr) {
  return crpc_wire_timeout_decode(s.data(), s.size(), ns, why);
}

int64_t DecodeOk(const std::string &s) {
  int64_t ns = -7;
  const char *why = nullptr;
  EXPECT_EQ(CRPC_OK, Decode(s, &ns, &why)) << s << ": " << (why ? why : "");
  return ns;
}

TEST(TimeoutEncode, PicksTheFinestUnitThatFitsInEightDigits) {
  EXPECT_EQ("1n", Encode(1));
  EXPECT_EQ("99999999n", Encode(99999999));
  EXPECT_EQ("100000u", Encode(100000000));  // 9 digits of ns -> us
  EXPECT_EQ("1500000u", Encode(1500 * kMs));
  EXPECT_EQ("99999999u", Encode(99999999 * kUs));
  EXPECT_EQ("100000m", Encode(100 * kS));
  EXPECT_EQ("100000S", Encode(100000 * kS));
  EXPECT_EQ("1666667M", Encode(100000000 * kS));
}

TEST(TimeoutEncode, RoundsUpNeverDown) {
  // 100000001 ns does not fit in ns; in us it is 100000.001 -> 100001u.
  EXPECT_EQ("100001u", Encode(100000001));
  int64_t back = DecodeOk(Encode(100000001));
  EXPECT_GE(back, 100000001);
  // Every encoded value decodes to at least the original.
  for (int64_t ns : {INT64_C(123456789), INT64_C(999999999999),
                     INT64_C(100000000) * kS + 1, kH * 1000000 + 1}) {
    int64_t d = DecodeOk(Encode(ns));
    EXPECT_GE(d, ns) << ns;
  }
}

TEST(TimeoutEncode, NonPositiveBecomesOneNanosecond) {
  EXPECT_EQ("1n", Encode(0));
  EXPECT_EQ("1n", Encode(-1));
  EXPECT_EQ("1n", Encode(INT64_MIN));
}

TEST(TimeoutEncode, Int64MaxFitsInHours) {
  std::string s = Encode(INT64_MAX);
  EXPECT_EQ("2562048H", s);
  EXPECT_LE(s.size(), 9u);
  EXPECT_EQ(INT64_MAX, DecodeOk(s)) << "decoding saturates, never wraps";
}

TEST(TimeoutEncode, NeverExceedsEightDigits) {
  for (int64_t ns = 1; ns > 0 && ns < INT64_MAX / 3; ns = ns * 3 + 1) {
    std::string s = Encode(ns);
    EXPECT_LE(s.size(), 9u) << s;
    EXPECT_GE(DecodeOk(s), ns) << s;
  }
}

TEST(TimeoutDecode, AcceptsEveryUnit) {
  EXPECT_EQ(7, DecodeOk("7n"));
  EXPECT_EQ(7 * kUs, DecodeOk("7u"));
  EXPECT_EQ(7 * kMs, DecodeOk("7m"));
  EXPECT_EQ(7 * kS, DecodeOk("7S"));
  EXPECT_EQ(7 * kM, DecodeOk("7M"));
  EXPECT_EQ(7 * kH, DecodeOk("7H"));
}

TEST(TimeoutDecode, OneToEightDigitsWithLeadingZeros) {
  EXPECT_EQ(99999999 * kMs, DecodeOk("99999999m"));
  EXPECT_EQ(1 * kS, DecodeOk("00000001S"));
}

TEST(TimeoutDecode, ZeroMeansAlreadyExpired) {
  EXPECT_EQ(0, DecodeOk("0S"));
  EXPECT_EQ(0, DecodeOk("0n"));
  EXPECT_EQ(0, DecodeOk("00000000H"));
}

TEST(TimeoutDecode, HugeValuesSaturateInsteadOfOverflowing) {
  EXPECT_EQ(INT64_MAX, DecodeOk("99999999H"));
  EXPECT_EQ(99999999 * kM, DecodeOk("99999999M"));  // 6e18: still fits
  // 99999999 S = 9.9e16 ns fits: exact.
  EXPECT_EQ(99999999 * kS, DecodeOk("99999999S"));
  // 2562047H fits, 2562048H does not.
  EXPECT_EQ(2562047 * kH, DecodeOk("2562047H"));
  EXPECT_EQ(INT64_MAX, DecodeOk("2562048H"));
}

TEST(TimeoutDecode, RejectsMalformedValuesAsInternal) {
  const char *bad[] = {
      "",
      "S",
      "1",
      "12345678",
      "123456789S",
      "000000001S",
      "-1S",
      "+1S",
      " 1S",
      "1S ",
      "1 S",
      "1s",
      "1h",
      "1x",
      "1SS",
      "1.5S",
      "0x1S",
      "1S\n",
      "\xef\xbc\x91S",
  };
  for (const char *s : bad) {
    std::string str(s);
    int64_t ns = 42;
    const char *why = nullptr;
    EXPECT_EQ(CRPC_INTERNAL, Decode(str, &ns, &why)) << "'" << str << "'";
    EXPECT_EQ(42, ns) << "output untouched on error: '" << str << "'";
    EXPECT_NE(nullptr, why) << str;
  }
  // Embedded NUL (length-delimited input).
  int64_t ns = 42;
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_timeout_decode("1\0S", 3, &ns, nullptr));
}

TEST(TimeoutDecode, ReasonsNameTheProblem) {
  int64_t ns;
  const char *why = nullptr;
  Decode("123456789S", &ns, &why);
  EXPECT_STREQ("grpc-timeout has more than 8 digits", why);
  Decode("5", &ns, &why);
  EXPECT_STREQ("grpc-timeout has no unit", why);
  Decode("5x", &ns, &why);
  EXPECT_STREQ("grpc-timeout unit is not one of H M S m u n", why);
  Decode("", &ns, &why);
  EXPECT_STREQ("grpc-timeout is empty", why);
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_timeout_decode(nullptr, 0, &ns, nullptr));
}

TEST(TimeoutDecode, DoesNotReadPastTheGivenLength) {
  // "10S" but only "1" + "0" given: "10" has no unit.
  int64_t ns;
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_timeout_decode("10S", 2, &ns, nullptr));
  EXPECT_EQ(CRPC_OK, crpc_wire_timeout_decode("1SS", 2, &ns, nullptr));
  EXPECT_EQ(kS, ns);
}

}  // namespace
