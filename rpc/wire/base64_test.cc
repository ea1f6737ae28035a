#include "rpc/wire/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

std::string Enc(const std::string &in) {
  std::vector<char> buf(crpc_wire_base64_encoded_len(in.size()) + 1, 'Z');
  size_t n = crpc_wire_base64_encode(in.data(), in.size(), buf.data());
  EXPECT_EQ(n, crpc_wire_base64_encoded_len(in.size()));
  EXPECT_EQ('\0', buf[n]);
  return std::string(buf.data(), n);
}

// Returns true and *out on success.
bool Dec(const std::string &in, std::string *out) {
  std::vector<uint8_t> buf(crpc_wire_base64_decoded_max(in.size()));
  size_t n = 12345;
  if (crpc_wire_base64_decode(in.data(), in.size(), buf.data(), &n) != 0) {
    return false;
  }
  EXPECT_LE(n, buf.size());
  out->assign(reinterpret_cast<char *>(buf.data()), n);
  return true;
}

std::string DecOk(const std::string &in) {
  std::string out;
  EXPECT_TRUE(Dec(in, &out)) << "'" << in << "'";
  return out;
}

TEST(Base64Encode, Rfc4648VectorsWithoutPadding) {
  EXPECT_EQ("", Enc(""));
  EXPECT_EQ("Zg", Enc("f"));
  EXPECT_EQ("Zm8", Enc("fo"));
  EXPECT_EQ("Zm9v", Enc("foo"));
  EXPECT_EQ("Zm9vYg", Enc("foob"));
  EXPECT_EQ("Zm9vYmE", Enc("fooba"));
  EXPECT_EQ("Zm9vYmFy", Enc("foobar"));
}

TEST(Base64Encode, UsesTheStandardAlphabet) {
  EXPECT_EQ("+/8", Enc("\xfb\xff"));
  EXPECT_EQ("AAA", Enc(std::string("\0\0", 2)));
}

TEST(Base64Decode, AcceptsPaddedAndUnpadded) {
  EXPECT_EQ("f", DecOk("Zg"));
  EXPECT_EQ("f", DecOk("Zg=="));
  EXPECT_EQ("fo", DecOk("Zm8"));
  EXPECT_EQ("fo", DecOk("Zm8="));
  EXPECT_EQ("foobar", DecOk("Zm9vYmFy"));
  EXPECT_EQ("", DecOk(""));
  EXPECT_EQ("\xfb\xff", DecOk("+/8"));
}

TEST(Base64Decode, RejectsInvalidCharacters) {
  std::string out;
  for (const char *s :
       {"Zm9v!", "Zm 9v", "Zm9v\n", "-_8", "Zm9\x80", "Zm9v YmFy"}) {
    EXPECT_FALSE(Dec(s, &out)) << s;
  }
  EXPECT_FALSE(Dec(std::string("Zm\0v", 4), &out));
}

TEST(Base64Decode, RejectsImpossibleLengths) {
  std::string out;
  EXPECT_FALSE(Dec("Z", &out));
  EXPECT_FALSE(Dec("Zm9vY", &out));
  EXPECT_FALSE(Dec("Zm9vY===", &out));
}

TEST(Base64Decode, RejectsMisplacedOrPartialPadding) {
  std::string out;
  for (const char *s : {"Zg=", "Zg===", "=Zg=", "Z=g=", "Zm9v=", "====",
                        "Zg==Zg==", "Zm8=Zm8="}) {
    EXPECT_FALSE(Dec(s, &out)) << s;
  }
}

TEST(Base64Decode, ToleratesNonZeroUnusedBits) {
  // "Zh" has low bits set that "Zg" does not; both mean "f".
  EXPECT_EQ("f", DecOk("Zh"));
}

TEST(Base64Decode, DoesNotReadPastTheGivenLength) {
  std::string out;
  std::vector<uint8_t> buf(8);
  size_t n;
  ASSERT_EQ(0, crpc_wire_base64_decode("Zm9v!!!!", 4, buf.data(), &n));
  EXPECT_EQ(3u, n);
}

TEST(Base64, RoundTripsAllLengthsAndBytes) {
  std::string in;
  for (int i = 0; i < 300; i++) {
    EXPECT_EQ(in, DecOk(Enc(in))) << i;
    in += static_cast<char>(i * 37 + 11);
  }
}

}  // namespace
