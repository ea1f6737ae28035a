// Fuzz-ish tests without libFuzzer: random and mutated inputs from a fixed
// seed, a bounded number of iterations. Under ASan/UBSan any out-of-bounds
// access, leak or overflow fails the run; the assertions check that the
// decoders agree with themselves (chunking, round trips).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "crpc/metadata.h"
#include "rpc/wire/base64.h"
#include "rpc/wire/compress.h"
#include "rpc/wire/frame.h"
#include "rpc/wire/metadata_wire.h"
#include "rpc/wire/percent.h"
#include "rpc/wire/status_map.h"
#include "rpc/wire/timeout.h"

namespace {

using Bytes = std::vector<uint8_t>;

Bytes RandomBytes(std::mt19937 &rng, size_t max_len,
                  const std::string &alphabet = "") {
  size_t n = std::uniform_int_distribution<size_t>(0, max_len)(rng);
  Bytes b(n);
  for (auto &c : b) {
    c = alphabet.empty()
            ? static_cast<uint8_t>(rng())
            : static_cast<uint8_t>(alphabet[rng() % alphabet.size()]);
  }
  return b;
}

struct FrameResult {
  std::vector<Bytes> messages;
  bool error = false;
  crpc_code code = CRPC_OK;
  std::string message;
  crpc_code finish = CRPC_OK;
};

FrameResult DecodeFrames(const Bytes &in, std::mt19937 &rng, bool random_chunks,
                         size_t max) {
  FrameResult r;
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, max);
  size_t pos = 0;
  while (pos < in.size() && !r.error) {
    size_t n = random_chunks ? 1 + rng() % 7 : in.size() - pos;
    if (n > in.size() - pos) n = in.size() - pos;
    const uint8_t *p = in.data() + pos;
    pos += n;
    while (n > 0) {
      size_t used = 0;
      crpc_wire_message m{};
      int res = crpc_wire_frame_decoder_feed(&d, p, n, &used, &m);
      EXPECT_LE(used, n);
      p += used;
      n -= used;
      if (res == CRPC_WIRE_FRAME_ERROR) {
        r.error = true;
        break;
      }
      if (res == CRPC_WIRE_FRAME_NEED_MORE) break;
      r.messages.emplace_back(m.data, m.data + m.len);
      free(m.data);
    }
  }
  r.finish = crpc_wire_frame_decoder_finish(&d);
  r.code = crpc_wire_frame_decoder_error(&d)->code;
  r.message = crpc_wire_frame_decoder_error(&d)->message;
  crpc_wire_frame_decoder_destroy(&d);
  return r;
}

TEST(Fuzz, FrameDecoderChunkingNeverChangesTheResult) {
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 3000; iter++) {
    Bytes in;
    // Mostly well-formed streams with random damage, some pure noise.
    if (iter % 4 == 0) {
      in = RandomBytes(rng, 64);
    } else {
      int count = rng() % 4;
      for (int i = 0; i < count; i++) {
        Bytes body = RandomBytes(rng, 40);
        uint8_t prefix[5];
        crpc_wire_frame_encode_prefix(prefix, rng() % 2, body.size());
        in.insert(in.end(), prefix, prefix + 5);
        in.insert(in.end(), body.begin(), body.end());
      }
      if (!in.empty() && rng() % 2)
        in[rng() % in.size()] = static_cast<uint8_t>(rng());
      if (!in.empty() && rng() % 3 == 0) in.resize(rng() % in.size());
    }
    size_t max = rng() % 2 ? 32 : SIZE_MAX;
    FrameResult whole = DecodeFrames(in, rng, false, max);
    FrameResult bits = DecodeFrames(in, rng, true, max);
    ASSERT_EQ(whole.messages, bits.messages) << "iteration " << iter;
    ASSERT_EQ(whole.error, bits.error) << iter;
    ASSERT_EQ(whole.code, bits.code) << iter;
    ASSERT_EQ(whole.message, bits.message) << iter;
    ASSERT_EQ(whole.finish, bits.finish) << iter;
    for (const Bytes &m : whole.messages) ASSERT_LE(m.size(), max);
    if (whole.code != CRPC_OK) {
      EXPECT_TRUE(whole.code == CRPC_INTERNAL ||
                  whole.code == CRPC_RESOURCE_EXHAUSTED);
    }
  }
}

TEST(Fuzz, TimeoutDecoderAcceptsExactlyTheGrammar) {
  std::mt19937 rng(777);
  const std::string alphabet = "0123456789HMSmun x-+";
  for (int iter = 0; iter < 20000; iter++) {
    Bytes b = RandomBytes(rng, 11, iter % 2 ? alphabet : "");
    std::string s(b.begin(), b.end());
    int64_t ns = -5;
    crpc_code c = crpc_wire_timeout_decode(s.data(), s.size(), &ns, nullptr);
    bool grammar = s.size() >= 2 && s.size() <= 9 &&
                   std::string("HMSmun").find(s.back()) != std::string::npos &&
                   s.find_first_not_of("0123456789") == s.size() - 1;
    ASSERT_EQ(grammar ? CRPC_OK : CRPC_INTERNAL, c) << "'" << s << "'";
    if (c == CRPC_OK) {
      ASSERT_GE(ns, 0);
    } else {
      ASSERT_EQ(-5, ns);
    }
  }
  for (int iter = 0; iter < 20000; iter++) {
    int64_t ns =
        static_cast<int64_t>(static_cast<uint64_t>(rng()) << 32 | rng()) >>
        (rng() % 63);
    char buf[CRPC_WIRE_TIMEOUT_BUF];
    size_t n = crpc_wire_timeout_encode(ns, buf);
    int64_t back = 0;
    ASSERT_EQ(CRPC_OK, crpc_wire_timeout_decode(buf, n, &back, nullptr)) << buf;
    ASSERT_GE(back, ns > 0 ? ns : 1) << ns << " -> " << buf;
  }
}

TEST(Fuzz, PercentDecoderNeverFailsAndRoundTrips) {
  std::mt19937 rng(4242);
  const std::string alphabet = "%0123456789abcdefABCDEFgG \x01\xff";
  for (int iter = 0; iter < 20000; iter++) {
    Bytes b = RandomBytes(rng, 24, iter % 2 ? alphabet : "");
    size_t n = 0;
    char *dec = crpc_wire_percent_decode(reinterpret_cast<char *>(b.data()),
                                         b.size(), &n);
    ASSERT_NE(nullptr, dec);
    ASSERT_LE(n, b.size());
    size_t en = 0;
    char *enc = crpc_wire_percent_encode(b.data(), b.size(), &en);
    size_t rn = 0;
    char *round = crpc_wire_percent_decode(enc, en, &rn);
    ASSERT_EQ(Bytes(b), Bytes(round, round + rn));
    free(dec);
    free(enc);
    free(round);
  }
}

TEST(Fuzz, Base64DecoderIsConsistentWithTheEncoder) {
  std::mt19937 rng(99);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
  for (int iter = 0; iter < 20000; iter++) {
    Bytes b = RandomBytes(rng, 20, iter % 3 ? alphabet : "");
    std::vector<uint8_t> out(crpc_wire_base64_decoded_max(b.size()));
    size_t n = 0;
    if (crpc_wire_base64_decode(reinterpret_cast<char *>(b.data()), b.size(),
                                out.data(), &n) == 0) {
      ASSERT_LE(n, out.size());
      // Re-encoding and decoding again must give the same bytes.
      std::vector<char> enc(crpc_wire_base64_encoded_len(n) + 1);
      size_t en = crpc_wire_base64_encode(out.data(), n, enc.data());
      std::vector<uint8_t> again(crpc_wire_base64_decoded_max(en));
      size_t an = 0;
      ASSERT_EQ(0, crpc_wire_base64_decode(enc.data(), en, again.data(), &an));
      ASSERT_EQ(Bytes(out.begin(), out.begin() + n),
                Bytes(again.begin(), again.begin() + an));
    }
    Bytes raw = RandomBytes(rng, 40);
    std::vector<char> enc(crpc_wire_base64_encoded_len(raw.size()) + 1);
    size_t en = crpc_wire_base64_encode(raw.data(), raw.size(), enc.data());
    std::vector<uint8_t> dec(crpc_wire_base64_decoded_max(en));
    size_t dn = 0;
    ASSERT_EQ(0, crpc_wire_base64_decode(enc.data(), en, dec.data(), &dn));
    ASSERT_EQ(raw, Bytes(dec.begin(), dec.begin() + dn));
  }
}

TEST(Fuzz, StatusParserNeverReturnsAnOutOfRangeCode) {
  std::mt19937 rng(5);
  for (int iter = 0; iter < 20000; iter++) {
    Bytes b = RandomBytes(rng, 6, iter % 2 ? "0123456789 -" : "");
    crpc_code code = CRPC_OK;
    int r = crpc_wire_grpc_status_parse(reinterpret_cast<char *>(b.data()),
                                        b.size(), &code);
    ASSERT_TRUE(r == 0 || r == -1);
    ASSERT_GE(static_cast<int>(code), 0);
    ASSERT_LE(static_cast<int>(code), 16);
  }
}

TEST(Fuzz, ReceivedHeadersNeverBreakTheCollection) {
  std::mt19937 rng(31337);
  crpc_metadata *md = crpc_metadata_new();
  for (int iter = 0; iter < 5000; iter++) {
    Bytes name = RandomBytes(rng, 8, iter % 2 ? "abc-bin:AZ" : "");
    Bytes value = RandomBytes(rng, 16, iter % 2 ? "QUJD=,+/ \x80" : "");
    crpc_wire_header_verdict v = crpc_wire_metadata_add_received(
        md, reinterpret_cast<char *>(name.data()), name.size(),
        reinterpret_cast<char *>(value.data()), value.size());
    ASSERT_NE(CRPC_WIRE_HEADER_NO_MEMORY, v);
  }
  // Everything that got in must be sendable again.
  crpc_wire_headers hs;
  crpc_wire_headers_init(&hs);
  for (size_t i = 0; i < crpc_metadata_count(md); i++) {
    crpc_metadata_entry e;
    crpc_metadata_at(md, i, &e);
    ASSERT_EQ(CRPC_OK,
              crpc_metadata_validate(e.key, e.value, e.value_len, nullptr))
        << e.key;
  }
  crpc_metadata_remove(md, "user-agent");  // readable, but not sendable
  EXPECT_EQ(CRPC_OK, crpc_wire_headers_add_metadata(&hs, md, nullptr));
  crpc_wire_headers_destroy(&hs);
  crpc_metadata_free(md);
}

TEST(Fuzz, DecompressRandomInputNeverCrashes) {
  std::mt19937 rng(2718);
  for (int iter = 0; iter < 2000; iter++) {
    Bytes b = RandomBytes(rng, 64);
    // Half the time start from a valid stream and damage it.
    if (iter % 2) {
      uint8_t *z = nullptr;
      size_t zn = 0;
      crpc_wire_compress(CRPC_WIRE_ENCODING_GZIP, b.data(), b.size(), &z, &zn,
                         nullptr);
      b.assign(z, z + zn);
      free(z);
      b[rng() % b.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    }
    for (auto e : {CRPC_WIRE_ENCODING_GZIP, CRPC_WIRE_ENCODING_DEFLATE}) {
      uint8_t *out = nullptr;
      size_t n = 0;
      crpc_code c =
          crpc_wire_decompress(e, b.data(), b.size(), 100, &out, &n, nullptr);
      ASSERT_TRUE(c == CRPC_OK || c == CRPC_INTERNAL ||
                  c == CRPC_RESOURCE_EXHAUSTED);
      if (c == CRPC_OK) {
        ASSERT_LE(n, 100u);
      }
      free(out);
    }
  }
}

}  // namespace
