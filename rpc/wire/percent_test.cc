#include "rpc/wire/percent.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace {

std::string Enc(const std::string &in) {
  size_t n = 0;
  char *p = crpc_wire_percent_encode(in.data(), in.size(), &n);
  EXPECT_NE(nullptr, p);
  EXPECT_EQ(n, crpc_wire_percent_encoded_len(in.data(), in.size()));
  EXPECT_EQ('\0', p[n]);
  std::string out(p, n);
  free(p);
  return out;
}

std::string Dec(const std::string &in) {
  size_t n = 0;
  char *p = crpc_wire_percent_decode(in.data(), in.size(), &n);
  EXPECT_NE(nullptr, p);
  EXPECT_EQ('\0', p[n]);
  std::string out(p, n);
  free(p);
  return out;
}

TEST(PercentEncode, PrintableAsciiPassesThrough) {
  std::string all;
  for (int c = 0x20; c <= 0x7E; c++) {
    if (c != '%') all += static_cast<char>(c);
  }
  EXPECT_EQ(all, Enc(all));
  EXPECT_FALSE(crpc_wire_percent_needs_encoding(all.data(), all.size()));
}

TEST(PercentEncode, PercentAndBytesOutsidePrintableAreEscapedUppercase) {
  EXPECT_EQ("100%25", Enc("100%"));
  EXPECT_EQ("a%0Ab", Enc("a\nb"));
  EXPECT_EQ("%00", Enc(std::string("\0", 1)));
  EXPECT_EQ("%1F%7F%FF", Enc("\x1f\x7f\xff"));
  // UTF-8 "é" (C3 A9).
  EXPECT_EQ("caf%C3%A9", Enc("caf\xc3\xa9"));
  EXPECT_TRUE(crpc_wire_percent_needs_encoding("%", 1));
  EXPECT_TRUE(crpc_wire_percent_needs_encoding("\x7f", 1));
}

TEST(PercentEncode, EmptyInputGivesEmptyString) {
  EXPECT_EQ("", Enc(""));
  size_t n = 99;
  char *p = crpc_wire_percent_encode(nullptr, 0, &n);
  ASSERT_NE(nullptr, p);
  EXPECT_EQ(0u, n);
  free(p);
}

TEST(PercentDecode, DecodesUpperAndLowerCaseHex) {
  EXPECT_EQ("100%", Dec("100%25"));
  EXPECT_EQ("caf\xc3\xa9", Dec("caf%C3%A9"));
  EXPECT_EQ("caf\xc3\xa9", Dec("caf%c3%a9"));
  EXPECT_EQ(std::string("a\0b", 3), Dec("a%00b"));
}

TEST(PercentDecode, InvalidSequencesPassThroughLiterally) {
  EXPECT_EQ("%", Dec("%"));
  EXPECT_EQ("%4", Dec("%4"));
  EXPECT_EQ("abc%", Dec("abc%"));
  EXPECT_EQ("%zz", Dec("%zz"));
  EXPECT_EQ("%4g", Dec("%4g"));
  EXPECT_EQ("%%", Dec("%%"));
  EXPECT_EQ("%A", Dec("%%41"));  // the first '%' is literal, "%41" is 'A'
  EXPECT_EQ("50% off", Dec("50% off"));
}

TEST(PercentDecode, DoesNotReadPastTheGivenLength) {
  // "%41" truncated to "%4": must not peek at the '1'.
  EXPECT_EQ("%4", Dec(std::string("%41").substr(0, 2)));
  size_t n = 0;
  char *p = crpc_wire_percent_decode("%41", 2, &n);
  EXPECT_EQ("%4", std::string(p, n));
  free(p);
}

TEST(PercentDecode, BytesOutsideTheSpecAreKeptAsIs) {
  // A sloppy peer sends raw UTF-8; the spec says never to fail.
  EXPECT_EQ("caf\xc3\xa9\n", Dec("caf\xc3\xa9\n"));
}

TEST(Percent, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; c++) all += static_cast<char>(c);
  std::string enc = Enc(all);
  for (char c : enc) {
    EXPECT_TRUE(c >= 0x20 && c <= 0x7E) << static_cast<int>(c);
  }
  EXPECT_EQ(all, Dec(enc));
}

}  // namespace
