#include "rpc/wire/compress.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::string Compress(crpc_wire_encoding e, const std::string &in) {
  uint8_t *out = nullptr;
  size_t n = 0;
  crpc_wire_error err{};
  EXPECT_EQ(CRPC_OK,
            crpc_wire_compress(e, in.data(), in.size(), &out, &n, &err))
      << err.message;
  std::string s(reinterpret_cast<char *>(out), n);
  free(out);
  return s;
}

crpc_code Decompress(crpc_wire_encoding e, const std::string &in, size_t max,
                     std::string *out, crpc_wire_error *err) {
  uint8_t *p = reinterpret_cast<uint8_t *>(1);
  size_t n = 0;
  crpc_code c = crpc_wire_decompress(e, in.data(), in.size(), max, &p, &n, err);
  if (c == CRPC_OK) {
    EXPECT_NE(nullptr, p);
    EXPECT_LE(n, max);
    out->assign(reinterpret_cast<char *>(p), n);
    free(p);
  } else {
    EXPECT_EQ(nullptr, p) << "no buffer on error";
  }
  return c;
}

// A compressible message of n bytes.
std::string Text(size_t n) {
  std::string s;
  while (s.size() < n) s += "the quick brown fox jumps over the lazy dog ";
  s.resize(n);
  return s;
}

TEST(Encoding, ParseAndNameRoundTrip) {
  for (auto e : {CRPC_WIRE_ENCODING_IDENTITY, CRPC_WIRE_ENCODING_GZIP,
                 CRPC_WIRE_ENCODING_DEFLATE}) {
    const char *name = crpc_wire_encoding_name(e);
    ASSERT_NE(nullptr, name);
    EXPECT_EQ(e, crpc_wire_encoding_parse(name, std::strlen(name)));
  }
  EXPECT_EQ(CRPC_WIRE_ENCODING_IDENTITY, crpc_wire_encoding_parse("", 0));
  EXPECT_EQ(CRPC_WIRE_ENCODING_UNKNOWN, crpc_wire_encoding_parse("snappy", 6));
  EXPECT_EQ(CRPC_WIRE_ENCODING_UNKNOWN, crpc_wire_encoding_parse("GZIP", 4));
  EXPECT_EQ(CRPC_WIRE_ENCODING_UNKNOWN, crpc_wire_encoding_parse("gzip ", 5));
  EXPECT_EQ(CRPC_WIRE_ENCODING_UNKNOWN, crpc_wire_encoding_parse("gzi", 3));
  EXPECT_EQ(CRPC_WIRE_ENCODING_GZIP, crpc_wire_encoding_parse("gzipX", 4));
  EXPECT_EQ(nullptr, crpc_wire_encoding_name(CRPC_WIRE_ENCODING_UNKNOWN));
  EXPECT_EQ(nullptr,
            crpc_wire_encoding_name(static_cast<crpc_wire_encoding>(9)));
}

TEST(AcceptEncoding, ParsesListsWithSpacesAndIgnoresUnknown) {
  auto bit = [](crpc_wire_encoding e) { return CRPC_WIRE_ENCODING_BIT(e); };
  std::string v = "gzip, snappy ,\tdeflate";
  EXPECT_EQ(bit(CRPC_WIRE_ENCODING_IDENTITY) | bit(CRPC_WIRE_ENCODING_GZIP) |
                bit(CRPC_WIRE_ENCODING_DEFLATE),
            crpc_wire_accept_encoding_parse(v.data(), v.size()));
  v = "snappy";
  EXPECT_EQ(bit(CRPC_WIRE_ENCODING_IDENTITY),
            crpc_wire_accept_encoding_parse(v.data(), v.size()))
      << "identity is always acceptable";
  EXPECT_EQ(bit(CRPC_WIRE_ENCODING_IDENTITY),
            crpc_wire_accept_encoding_parse("", 0));
  v = ",,gzip,,";
  EXPECT_EQ(bit(CRPC_WIRE_ENCODING_IDENTITY) | bit(CRPC_WIRE_ENCODING_GZIP),
            crpc_wire_accept_encoding_parse(v.data(), v.size()));
  v = "gzipdeflate";
  EXPECT_EQ(bit(CRPC_WIRE_ENCODING_IDENTITY),
            crpc_wire_accept_encoding_parse(v.data(), v.size()));
}

TEST(AcceptEncoding, FormatsLikeSnprintf) {
  char buf[64];
  size_t n = crpc_wire_accept_encoding_format(CRPC_WIRE_ENCODINGS_ALL, buf,
                                              sizeof(buf));
  EXPECT_STREQ("identity,gzip,deflate", buf);
  EXPECT_EQ(std::strlen(buf), n);
  std::string s(buf);
  EXPECT_EQ(CRPC_WIRE_ENCODINGS_ALL,
            crpc_wire_accept_encoding_parse(s.data(), s.size()));
  char small[6];
  n = crpc_wire_accept_encoding_format(CRPC_WIRE_ENCODINGS_ALL, small,
                                       sizeof(small));
  EXPECT_EQ(21u, n);
  EXPECT_STREQ("ident", small);
  EXPECT_EQ(4u,
            crpc_wire_accept_encoding_format(
                CRPC_WIRE_ENCODING_BIT(CRPC_WIRE_ENCODING_GZIP), nullptr, 0));
}

TEST(CompressedFlag, FollowsTheCompressionSpec) {
  crpc_wire_error err{};
  EXPECT_EQ(CRPC_OK, crpc_wire_check_compressed_flag(
                         false, CRPC_WIRE_ENCODING_UNKNOWN, true, &err));
  EXPECT_EQ(CRPC_OK, crpc_wire_check_compressed_flag(
                         true, CRPC_WIRE_ENCODING_GZIP, false, &err));
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_check_compressed_flag(
                               true, CRPC_WIRE_ENCODING_IDENTITY, true, &err));
  EXPECT_NE(nullptr, std::strstr(err.message, "compressed flag"));
  EXPECT_EQ(CRPC_UNIMPLEMENTED,
            crpc_wire_check_compressed_flag(true, CRPC_WIRE_ENCODING_UNKNOWN,
                                            true, &err));
  EXPECT_EQ(CRPC_INTERNAL,
            crpc_wire_check_compressed_flag(true, CRPC_WIRE_ENCODING_UNKNOWN,
                                            false, nullptr));
}

TEST(Compress, GzipAndDeflateRoundTrip) {
  for (auto e : {CRPC_WIRE_ENCODING_GZIP, CRPC_WIRE_ENCODING_DEFLATE,
                 CRPC_WIRE_ENCODING_IDENTITY}) {
    for (size_t n : {0u, 1u, 100u, 100000u}) {
      std::string in = Text(n);
      std::string z = Compress(e, in);
      std::string back;
      crpc_wire_error err{};
      ASSERT_EQ(CRPC_OK, Decompress(e, z, n, &back, &err)) << err.message;
      EXPECT_EQ(in, back);
      if (n == 100000 && e != CRPC_WIRE_ENCODING_IDENTITY) {
        EXPECT_LT(z.size(), n / 10);
      }
    }
  }
}

TEST(Compress, GzipOutputIsRealGzip) {
  std::string z = Compress(CRPC_WIRE_ENCODING_GZIP, "hello");
  ASSERT_GE(z.size(), 18u);
  EXPECT_EQ('\x1f', z[0]);
  EXPECT_EQ('\x8b', z[1]);
  std::string d = Compress(CRPC_WIRE_ENCODING_DEFLATE, "hello");
  EXPECT_EQ('\x78', d[0]) << "deflate means the zlib wrapper";
}

TEST(Compress, UnknownEncodingIsInvalidArgument) {
  uint8_t *out = reinterpret_cast<uint8_t *>(1);
  size_t n;
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            crpc_wire_compress(CRPC_WIRE_ENCODING_UNKNOWN, "x", 1, &out, &n,
                               nullptr));
  EXPECT_EQ(nullptr, out);
  out = reinterpret_cast<uint8_t *>(1);
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            crpc_wire_decompress(CRPC_WIRE_ENCODING_UNKNOWN, "x", 1, 10, &out,
                                 &n, nullptr));
  EXPECT_EQ(nullptr, out);
}

TEST(Decompress, OutputExactlyAtTheLimitIsAccepted) {
  std::string in = Text(5000);
  std::string back;
  crpc_wire_error err{};
  EXPECT_EQ(CRPC_OK, Decompress(CRPC_WIRE_ENCODING_GZIP,
                                Compress(CRPC_WIRE_ENCODING_GZIP, in), 5000,
                                &back, &err));
  EXPECT_EQ(in, back);
  EXPECT_EQ(CRPC_OK,
            Decompress(CRPC_WIRE_ENCODING_IDENTITY, in, 5000, &back, &err));
}

TEST(Decompress, OneByteOverTheLimitIsResourceExhausted) {
  std::string in = Text(5001);
  std::string back;
  crpc_wire_error err{};
  EXPECT_EQ(
      CRPC_RESOURCE_EXHAUSTED,
      Decompress(CRPC_WIRE_ENCODING_GZIP, Compress(CRPC_WIRE_ENCODING_GZIP, in),
                 5000, &back, &err));
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, err.code);
  EXPECT_STREQ(
      "received message after decompression larger than max "
      "(more than 5000)",
      err.message);
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED,
            Decompress(CRPC_WIRE_ENCODING_IDENTITY, in, 5000, &back, &err));
  EXPECT_STREQ("received message larger than max (5001 vs. 5000)", err.message);
}

TEST(Decompress, ZipBombStopsAtTheLimit) {
  // 256 MiB of zeros compresses to ~256 KiB; build it in pieces so the
  // test itself never holds the expanded form.
  z_stream z{};
  ASSERT_EQ(Z_OK,
            deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY));
  std::string zeros(1 << 20, '\0');
  std::string bomb;
  char out[1 << 16];
  for (int i = 0; i < 256; i++) {
    z.next_in = reinterpret_cast<Bytef *>(&zeros[0]);
    z.avail_in = zeros.size();
    int flush = i == 255 ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = reinterpret_cast<Bytef *>(out);
      z.avail_out = sizeof(out);
      deflate(&z, flush);
      bomb.append(out, sizeof(out) - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  ASSERT_LT(bomb.size(), 1u << 20);
  std::string back;
  crpc_wire_error err{};
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED,
            Decompress(CRPC_WIRE_ENCODING_GZIP, bomb, 4 << 20, &back, &err));
}

TEST(Decompress, CorruptInputIsInternal) {
  std::string z = Compress(CRPC_WIRE_ENCODING_GZIP, Text(1000));
  std::string back;
  crpc_wire_error err{};
  std::string bad = z;
  bad[z.size() / 2] ^= 0x55;
  bad[z.size() / 2 + 1] ^= 0xAA;
  EXPECT_EQ(CRPC_INTERNAL,
            Decompress(CRPC_WIRE_ENCODING_GZIP, bad, 1 << 20, &back, &err));
  EXPECT_EQ(CRPC_INTERNAL, Decompress(CRPC_WIRE_ENCODING_GZIP,
                                      "not gzip at all", 1 << 20, &back, &err));
  // A zlib stream is not a gzip stream and the other way round.
  EXPECT_EQ(CRPC_INTERNAL,
            Decompress(CRPC_WIRE_ENCODING_DEFLATE, z, 1 << 20, &back, &err));
  EXPECT_EQ(CRPC_INTERNAL, Decompress(CRPC_WIRE_ENCODING_GZIP,
                                      Compress(CRPC_WIRE_ENCODING_DEFLATE, "x"),
                                      1 << 20, &back, &err));
}

TEST(Decompress, TruncatedAndEmptyInputAreInternal) {
  std::string z = Compress(CRPC_WIRE_ENCODING_GZIP, Text(1000));
  std::string back;
  crpc_wire_error err{};
  for (size_t cut :
       {size_t{0}, size_t{1}, size_t{10}, z.size() / 2, z.size() - 1}) {
    EXPECT_EQ(CRPC_INTERNAL, Decompress(CRPC_WIRE_ENCODING_GZIP,
                                        z.substr(0, cut), 1 << 20, &back, &err))
        << cut;
  }
  EXPECT_STREQ("truncated compressed message", err.message);
}

TEST(Decompress, ConcatenatedGzipMembersAreOneMessage) {
  std::string z = Compress(CRPC_WIRE_ENCODING_GZIP, "abc") +
                  Compress(CRPC_WIRE_ENCODING_GZIP, "def");
  std::string back;
  crpc_wire_error err{};
  ASSERT_EQ(CRPC_OK, Decompress(CRPC_WIRE_ENCODING_GZIP, z, 100, &back, &err));
  EXPECT_EQ("abcdef", back);
  // ...but the limit still counts both members.
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED,
            Decompress(CRPC_WIRE_ENCODING_GZIP, z, 5, &back, &err));
}

TEST(Decompress, TrailingGarbageIsInternal) {
  std::string back;
  crpc_wire_error err{};
  EXPECT_EQ(CRPC_INTERNAL,
            Decompress(CRPC_WIRE_ENCODING_GZIP,
                       Compress(CRPC_WIRE_ENCODING_GZIP, "abc") + "junk", 100,
                       &back, &err));
  EXPECT_EQ(CRPC_INTERNAL,
            Decompress(CRPC_WIRE_ENCODING_DEFLATE,
                       Compress(CRPC_WIRE_ENCODING_DEFLATE, "abc") + "j", 100,
                       &back, &err));
  EXPECT_STREQ("trailing data after compressed message", err.message);
}

TEST(Decompress, ZeroLimitAllowsOnlyEmptyMessages) {
  std::string back = "x";
  crpc_wire_error err{};
  EXPECT_EQ(CRPC_OK,
            Decompress(CRPC_WIRE_ENCODING_GZIP,
                       Compress(CRPC_WIRE_ENCODING_GZIP, ""), 0, &back, &err));
  EXPECT_EQ("", back);
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED,
            Decompress(CRPC_WIRE_ENCODING_GZIP,
                       Compress(CRPC_WIRE_ENCODING_GZIP, "a"), 0, &back, &err));
}

}  // namespace
