#include "rpc/wire/frame.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;

Bytes Frame(const std::string &body, uint8_t flag = 0) {
  Bytes out(5);
  uint8_t prefix[5];
  EXPECT_EQ(CRPC_OK,
            crpc_wire_frame_encode_prefix(prefix, flag != 0, body.size()));
  std::memcpy(out.data(), prefix, 5);
  out[0] = flag;
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

struct Decoded {
  std::vector<std::string> messages;
  std::vector<bool> compressed;
  int last = CRPC_WIRE_FRAME_NEED_MORE;
};

// Feeds `in` in chunks of `chunk` bytes, collecting every message.
Decoded FeedAll(crpc_wire_frame_decoder *d, const Bytes &in, size_t chunk) {
  Decoded out;
  for (size_t pos = 0; pos < in.size();) {
    size_t n = std::min(chunk, in.size() - pos);
    const uint8_t *p = in.data() + pos;
    pos += n;
    while (true) {
      size_t used = 999;
      crpc_wire_message m{};
      int r = crpc_wire_frame_decoder_feed(d, p, n, &used, &m);
      EXPECT_LE(used, n);
      p += used;
      n -= used;
      out.last = r;
      if (r == CRPC_WIRE_FRAME_ERROR) return out;
      if (r == CRPC_WIRE_FRAME_NEED_MORE) {
        EXPECT_EQ(0u, n) << "NEED_MORE must mean all input was used";
        break;
      }
      EXPECT_NE(nullptr, m.data);
      out.messages.emplace_back(reinterpret_cast<char *>(m.data), m.len);
      out.compressed.push_back(m.compressed);
      free(m.data);
      if (n == 0) break;
    }
  }
  return out;
}

TEST(FrameEncode, PrefixIsFlagThenBigEndianLength) {
  uint8_t p[5];
  ASSERT_EQ(CRPC_OK, crpc_wire_frame_encode_prefix(p, false, 0x01020304));
  EXPECT_EQ(0, p[0]);
  EXPECT_EQ(1, p[1]);
  EXPECT_EQ(2, p[2]);
  EXPECT_EQ(3, p[3]);
  EXPECT_EQ(4, p[4]);
  ASSERT_EQ(CRPC_OK, crpc_wire_frame_encode_prefix(p, true, 0));
  EXPECT_EQ(1, p[0]);
  EXPECT_EQ(0, p[1] | p[2] | p[3] | p[4]);
}

TEST(FrameEncode, LargestLengthFitsAndOneMoreIsRefused) {
  uint8_t p[5] = {9, 9, 9, 9, 9};
  ASSERT_EQ(CRPC_OK, crpc_wire_frame_encode_prefix(p, false, 0xFFFFFFFFu));
  EXPECT_EQ(0xFF, p[1] & p[2] & p[3] & p[4]);
  uint8_t q[5] = {7, 7, 7, 7, 7};
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED,
            crpc_wire_frame_encode_prefix(q, false, (size_t)0x100000000ull));
  EXPECT_EQ(7, q[0]) << "output must be untouched on error";
}

TEST(FrameEncode, WholeFrameCopiesTheMessageAfterThePrefix) {
  uint8_t *out = nullptr;
  size_t len = 0;
  ASSERT_EQ(CRPC_OK, crpc_wire_frame_encode("hello", 5, true, &out, &len));
  ASSERT_EQ(10u, len);
  EXPECT_EQ(Frame("hello", 1), Bytes(out, out + len));
  free(out);
  ASSERT_EQ(CRPC_OK, crpc_wire_frame_encode(nullptr, 0, false, &out, &len));
  EXPECT_EQ(5u, len);
  EXPECT_EQ(Bytes(5, 0), Bytes(out, out + len));
  free(out);
}

TEST(FrameDecoder, DecodesOneMessageFedWhole) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 1024);
  Decoded r = FeedAll(&d, Frame("hello"), 1 << 20);
  ASSERT_EQ(1u, r.messages.size());
  EXPECT_EQ("hello", r.messages[0]);
  EXPECT_FALSE(r.compressed[0]);
  EXPECT_EQ(CRPC_OK, crpc_wire_frame_decoder_finish(&d));
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, OneByteAtATimeGivesTheSameMessages) {
  Bytes in = Frame("first", 0);
  Bytes b = Frame("", 1);
  Bytes c = Frame(std::string(70000, 'x'), 1);  // grows past the first buffer
  in.insert(in.end(), b.begin(), b.end());
  in.insert(in.end(), c.begin(), c.end());
  for (size_t chunk : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 4096u, 1u << 20}) {
    crpc_wire_frame_decoder d;
    crpc_wire_frame_decoder_init(&d, 1 << 20);
    Decoded r = FeedAll(&d, in, chunk);
    ASSERT_EQ(3u, r.messages.size()) << "chunk " << chunk;
    EXPECT_EQ("first", r.messages[0]);
    EXPECT_EQ("", r.messages[1]);
    EXPECT_EQ(std::string(70000, 'x'), r.messages[2]);
    EXPECT_FALSE(r.compressed[0]);
    EXPECT_TRUE(r.compressed[1]);
    EXPECT_TRUE(r.compressed[2]);
    EXPECT_EQ(CRPC_OK, crpc_wire_frame_decoder_finish(&d));
    crpc_wire_frame_decoder_destroy(&d);
  }
}

TEST(FrameDecoder, EmptyMessageStillHasANonNullBuffer) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 0);
  Bytes in = Frame("");
  size_t used = 0;
  crpc_wire_message m{};
  ASSERT_EQ(CRPC_WIRE_FRAME_MESSAGE,
            crpc_wire_frame_decoder_feed(&d, in.data(), in.size(), &used, &m));
  EXPECT_EQ(5u, used);
  EXPECT_NE(nullptr, m.data);
  EXPECT_EQ(0u, m.len);
  free(m.data);
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, StopsAfterEachMessageAndReportsBytesUsed) {
  Bytes in = Frame("ab");
  Bytes b = Frame("cde");
  in.insert(in.end(), b.begin(), b.end());
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 100);
  size_t used = 0;
  crpc_wire_message m{};
  ASSERT_EQ(CRPC_WIRE_FRAME_MESSAGE,
            crpc_wire_frame_decoder_feed(&d, in.data(), in.size(), &used, &m));
  EXPECT_EQ(7u, used);
  EXPECT_EQ("ab", std::string(reinterpret_cast<char *>(m.data), m.len));
  free(m.data);
  ASSERT_EQ(CRPC_WIRE_FRAME_MESSAGE,
            crpc_wire_frame_decoder_feed(&d, in.data() + 7, in.size() - 7,
                                         &used, &m));
  EXPECT_EQ(8u, used);
  EXPECT_EQ("cde", std::string(reinterpret_cast<char *>(m.data), m.len));
  free(m.data);
  EXPECT_EQ(CRPC_WIRE_FRAME_NEED_MORE,
            crpc_wire_frame_decoder_feed(&d, nullptr, 0, &used, &m));
  EXPECT_EQ(0u, used);
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, MessageOfExactlyTheMaximumIsAccepted) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 4096);
  Decoded r = FeedAll(&d, Frame(std::string(4096, 'm')), 1000);
  ASSERT_EQ(1u, r.messages.size());
  EXPECT_EQ(4096u, r.messages[0].size());
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, OversizedMessageIsResourceExhaustedFromThePrefixAlone) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 4096);
  // Only the prefix: the error must come before any body byte arrives.
  uint8_t prefix[5];
  crpc_wire_frame_encode_prefix(prefix, false, 4097);
  size_t used = 0;
  crpc_wire_message m{};
  EXPECT_EQ(CRPC_WIRE_FRAME_ERROR,
            crpc_wire_frame_decoder_feed(&d, prefix, 5, &used, &m));
  EXPECT_EQ(5u, used);
  const crpc_wire_error *e = crpc_wire_frame_decoder_error(&d);
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, e->code);
  EXPECT_STREQ("received message larger than max (4097 vs. 4096)", e->message);
  EXPECT_EQ(nullptr, d.body) << "no buffer may be allocated for it";
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, FourGigabyteDeclarationAllocatesNothing) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, CRPC_WIRE_DEFAULT_MAX_RECV_MESSAGE);
  const uint8_t prefix[5] = {0, 0xFF, 0xFF, 0xFF, 0xFF};
  Decoded r = FeedAll(&d, Bytes(prefix, prefix + 5), 1);
  EXPECT_EQ(CRPC_WIRE_FRAME_ERROR, r.last);
  EXPECT_STREQ("received message larger than max (4294967295 vs. 4194304)",
               crpc_wire_frame_decoder_error(&d)->message);
  EXPECT_EQ(nullptr, d.body);
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, DeclaredButUnsentBodyPinsOnlyWhatArrived) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, CRPC_WIRE_DEFAULT_MAX_RECV_MESSAGE);
  uint8_t in[6];
  crpc_wire_frame_encode_prefix(in, false, CRPC_WIRE_DEFAULT_MAX_RECV_MESSAGE);
  in[5] = 'x';
  size_t used = 0;
  crpc_wire_message m{};
  EXPECT_EQ(CRPC_WIRE_FRAME_NEED_MORE,
            crpc_wire_frame_decoder_feed(&d, in, sizeof(in), &used, &m));
  EXPECT_LE(d.body_cap, (size_t)16 * 1024)
      << "a 4 MiB declaration with 1 byte sent must not reserve 4 MiB";
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, UnlimitedMaximumAcceptsLargeDeclarations) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, SIZE_MAX);
  const uint8_t prefix[5] = {0, 0xFF, 0xFF, 0xFF, 0xFF};
  size_t used = 0;
  crpc_wire_message m{};
  EXPECT_EQ(CRPC_WIRE_FRAME_NEED_MORE,
            crpc_wire_frame_decoder_feed(&d, prefix, 5, &used, &m));
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_frame_decoder_finish(&d));
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, FlagOtherThanZeroOrOneIsInternalAtOnce) {
  for (int flag : {2, 0x80, 0xFF}) {
    crpc_wire_frame_decoder d;
    crpc_wire_frame_decoder_init(&d, 100);
    const uint8_t in[1] = {static_cast<uint8_t>(flag)};
    size_t used = 0;
    crpc_wire_message m{};
    EXPECT_EQ(CRPC_WIRE_FRAME_ERROR,
              crpc_wire_frame_decoder_feed(&d, in, 1, &used, &m))
        << flag;
    EXPECT_EQ(1u, used);
    EXPECT_EQ(CRPC_INTERNAL, crpc_wire_frame_decoder_error(&d)->code);
    EXPECT_NE(nullptr, std::strstr(crpc_wire_frame_decoder_error(&d)->message,
                                   "compressed flag"));
    crpc_wire_frame_decoder_destroy(&d);
  }
}

TEST(FrameDecoder, BadFlagOnASecondMessageFailsAfterDeliveringTheFirst) {
  Bytes in = Frame("ok");
  Bytes bad = Frame("zz");
  bad[0] = 2;
  in.insert(in.end(), bad.begin(), bad.end());
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 100);
  Decoded r = FeedAll(&d, in, 3);
  ASSERT_EQ(1u, r.messages.size());
  EXPECT_EQ("ok", r.messages[0]);
  EXPECT_EQ(CRPC_WIRE_FRAME_ERROR, r.last);
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, ErrorsAreStickyAndConsumeNothing) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 100);
  const uint8_t bad[1] = {7};
  size_t used = 0;
  crpc_wire_message m{};
  crpc_wire_frame_decoder_feed(&d, bad, 1, &used, &m);
  Bytes good = Frame("x");
  EXPECT_EQ(
      CRPC_WIRE_FRAME_ERROR,
      crpc_wire_frame_decoder_feed(&d, good.data(), good.size(), &used, &m));
  EXPECT_EQ(0u, used);
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_frame_decoder_finish(&d));
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, EndOfStreamInsidePrefixIsInternal) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 100);
  const uint8_t in[3] = {0, 0, 0};
  size_t used = 0;
  crpc_wire_message m{};
  EXPECT_EQ(CRPC_WIRE_FRAME_NEED_MORE,
            crpc_wire_frame_decoder_feed(&d, in, 3, &used, &m));
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_frame_decoder_finish(&d));
  EXPECT_STREQ("stream ended inside a message prefix (3 of 5 bytes)",
               crpc_wire_frame_decoder_error(&d)->message);
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, EndOfStreamInsideBodyIsInternalAndFreesThePart) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 100);
  Bytes in = Frame("abcdef");
  in.resize(8);  // prefix + "abc"
  Decoded r = FeedAll(&d, in, 2);
  EXPECT_TRUE(r.messages.empty());
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_frame_decoder_finish(&d));
  EXPECT_STREQ("stream ended inside a message (3 of 6 bytes)",
               crpc_wire_frame_decoder_error(&d)->message);
  EXPECT_EQ(nullptr, d.body);
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, FinishOnAFreshDecoderIsOk) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 100);
  EXPECT_EQ(CRPC_OK, crpc_wire_frame_decoder_finish(&d));
  EXPECT_EQ(CRPC_OK, crpc_wire_frame_decoder_error(&d)->code);
  crpc_wire_frame_decoder_destroy(&d);
}

TEST(FrameDecoder, DestroyFreesAPartialMessageAndAcceptsNull) {
  crpc_wire_frame_decoder d;
  crpc_wire_frame_decoder_init(&d, 1 << 20);
  Bytes in = Frame(std::string(1000, 'p'));
  in.resize(500);
  FeedAll(&d, in, 100);
  EXPECT_NE(nullptr, d.body);
  crpc_wire_frame_decoder_destroy(&d);  // LSan fails the test on a leak
  crpc_wire_frame_decoder_destroy(nullptr);
}

}  // namespace
