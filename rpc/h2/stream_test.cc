// Per-stream queues: framing into the send queue, partial reads by the
// data provider, dropping unsent data, decoding and the flow-control
// bookkeeping of the receive side.
#include "rpc/h2/stream.h"

#include <gtest/gtest.h>

#include <string>

namespace {

std::string Framed(const std::string &m) {
  crpc_h2_chunk *c = crpc_h2_chunk_frame(m.data(), m.size());
  std::string s(reinterpret_cast<char *>(c->data), c->len);
  crpc_h2_chunk_unref(c);
  return s;
}

TEST(OutqTest, ReadsAcrossChunksAndDropsOnlyUnstarted) {
  crpc_h2_outq q{};
  crpc_h2_outq_push(&q, crpc_h2_chunk_frame("abc", 3));
  crpc_h2_outq_push(&q, crpc_h2_chunk_frame("de", 2));
  EXPECT_EQ(q.bytes, 15u);
  uint8_t buf[64];
  ASSERT_EQ(crpc_h2_outq_read(&q, buf, 6), 6u);  // prefix + "a"
  EXPECT_EQ(std::string((char *)buf + 5, 1), "a");
  crpc_h2_outq_push(&q, crpc_h2_chunk_frame("fg", 2));
  // The started message is kept whole; the rest goes.
  crpc_h2_outq_drop_unstarted(&q);
  EXPECT_EQ(q.bytes, 2u);
  ASSERT_EQ(crpc_h2_outq_read(&q, buf, sizeof(buf)), 2u);
  EXPECT_EQ(std::string((char *)buf, 2), "bc");
  EXPECT_EQ(q.head, nullptr);
  crpc_h2_outq_push(&q, crpc_h2_chunk_frame("x", 1));
  crpc_h2_outq_drop_unstarted(&q);  // nothing started: all dropped
  EXPECT_EQ(q.bytes, 0u);
  EXPECT_EQ(q.head, nullptr);
}

TEST(InboundTest, DecodesAndReturnsWindowOnlyWhenReaderKeepsUp) {
  crpc_h2_inbound in;
  crpc_h2_inbound_init(&in, 1024, true);
  std::string data = Framed("one") + Framed("two") + Framed("thr");
  crpc_wire_error err;
  // Two whole messages and part of a third.
  ASSERT_EQ(crpc_h2_inbound_feed(&in, (const uint8_t *)data.data(), 18, &err),
            CRPC_OK);
  EXPECT_EQ(in.q.count, 2u);
  EXPECT_EQ(crpc_h2_inbound_take_consumable(&in), 0u);  // reader behind
  crpc_message m;
  ASSERT_TRUE(crpc_h2_msgq_pop(&in.q, &m));
  EXPECT_EQ(std::string((char *)m.data, m.len), "one");
  free(m.data);
  EXPECT_EQ(crpc_h2_inbound_take_consumable(&in), 0u);
  ASSERT_TRUE(crpc_h2_msgq_pop(&in.q, &m));
  free(m.data);
  EXPECT_EQ(crpc_h2_inbound_take_consumable(&in), 18u);  // caught up
  ASSERT_EQ(crpc_h2_inbound_feed(&in, (const uint8_t *)data.data() + 18,
                                 data.size() - 18, &err),
            CRPC_OK);
  EXPECT_EQ(in.q.count, 1u);
  crpc_h2_inbound_destroy(&in);
}

// A reader off the loop asks for its window back only when nghttp2 would
// send a WINDOW_UPDATE for it (half the stream window, counted against at
// most HTTP/2's initial 65535) and only once it has emptied the queue.
TEST(InboundTest, WindowReturnIsDueAtHalfTheStreamWindow) {
  crpc_h2_inbound in;
  crpc_h2_inbound_init(&in, 1 << 20, false);
  EXPECT_FALSE(crpc_h2_inbound_return_due(&in, 0));  // nothing held
  std::string msg = Framed(std::string(1000, 'x'));  // 1005 bytes
  crpc_wire_error err;
  crpc_message m;
  size_t fed = 0;
  // Default window (0 = 65535): due from 32767 held bytes on.
  while (fed + msg.size() < 65535 / 2) {
    ASSERT_EQ(crpc_h2_inbound_feed(&in, (const uint8_t *)msg.data(),
                                   msg.size(), &err),
              CRPC_OK);
    fed += msg.size();
    ASSERT_TRUE(crpc_h2_msgq_pop(&in.q, &m));
    free(m.data);
    EXPECT_FALSE(crpc_h2_inbound_return_due(&in, 0)) << fed;
  }
  ASSERT_EQ(crpc_h2_inbound_feed(&in, (const uint8_t *)msg.data(), msg.size(),
                                 &err),
            CRPC_OK);
  fed += msg.size();
  EXPECT_FALSE(crpc_h2_inbound_return_due(&in, 0));  // queued: not yet
  ASSERT_TRUE(crpc_h2_msgq_pop(&in.q, &m));
  free(m.data);
  EXPECT_TRUE(crpc_h2_inbound_return_due(&in, 0));
  // A larger advertised window still counts against 65535 (the window in
  // force until the peer acknowledges our SETTINGS).
  EXPECT_TRUE(crpc_h2_inbound_return_due(&in, 1u << 30));
  EXPECT_EQ(crpc_h2_inbound_take_consumable(&in), fed);
  EXPECT_FALSE(crpc_h2_inbound_return_due(&in, 1));
  // A smaller one counts by itself.
  ASSERT_EQ(crpc_h2_inbound_feed(&in, (const uint8_t *)msg.data(), msg.size(),
                                 &err),
            CRPC_OK);
  ASSERT_TRUE(crpc_h2_msgq_pop(&in.q, &m));
  free(m.data);
  EXPECT_TRUE(crpc_h2_inbound_return_due(&in, 2 * 1005));
  EXPECT_FALSE(crpc_h2_inbound_return_due(&in, 2 * 1005 + 2));
  EXPECT_EQ(crpc_h2_inbound_take_consumable(&in), 1005u);
  // A 1-byte window wants every byte back.
  ASSERT_EQ(crpc_h2_inbound_feed(&in, (const uint8_t *)msg.data(), 1, &err),
            CRPC_OK);  // a partial message: the queue is empty
  EXPECT_TRUE(crpc_h2_inbound_return_due(&in, 1));
  EXPECT_FALSE(crpc_h2_inbound_return_due(&in, 0));
  crpc_h2_inbound_destroy(&in);
}

// A compressed chunk carries the flag and round-trips through the inbound
// side, which reports the message as compressed; identity stays plain.
TEST(InboundTest, CompressedChunksRoundTripWithTheirFlag) {
  std::string big(10000, 'z');
  crpc_code code;
  crpc_h2_chunk *gz = crpc_h2_chunk_frame_encoded(CRPC_WIRE_ENCODING_GZIP,
                                                  big.data(), big.size(), &code);
  ASSERT_NE(gz, nullptr);
  EXPECT_EQ(gz->data[0], 1);
  EXPECT_LT(gz->len, big.size());
  crpc_h2_chunk *plain = crpc_h2_chunk_frame_encoded(
      CRPC_WIRE_ENCODING_IDENTITY, "ab", 2, &code);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->data[0], 0);
  std::string wire = std::string((char *)gz->data, gz->len) +
                     std::string((char *)plain->data, plain->len);
  crpc_h2_chunk_unref(gz);
  crpc_h2_chunk_unref(plain);
  crpc_h2_inbound in;
  crpc_h2_inbound_init(&in, 1 << 20, false);
  in.encoding = CRPC_WIRE_ENCODING_GZIP;
  crpc_wire_error err;
  ASSERT_EQ(crpc_h2_inbound_feed(&in, (const uint8_t *)wire.data(),
                                 wire.size(), &err),
            CRPC_OK);
  crpc_message m;
  ASSERT_TRUE(crpc_h2_msgq_pop(&in.q, &m));
  EXPECT_TRUE(m.compressed);
  EXPECT_EQ(std::string((char *)m.data, m.len), big);
  free(m.data);
  ASSERT_TRUE(crpc_h2_msgq_pop(&in.q, &m));
  EXPECT_FALSE(m.compressed);
  EXPECT_EQ(std::string((char *)m.data, m.len), "ab");
  free(m.data);
  crpc_h2_inbound_destroy(&in);
  // Past the receive limit once inflated: RESOURCE_EXHAUSTED.
  crpc_h2_inbound_init(&in, 100, true);
  in.encoding = CRPC_WIRE_ENCODING_GZIP;
  gz = crpc_h2_chunk_frame_encoded(CRPC_WIRE_ENCODING_GZIP, big.data(),
                                   big.size(), &code);
  ASSERT_NE(gz, nullptr);
  EXPECT_EQ(crpc_h2_inbound_feed(&in, gz->data, gz->len, &err),
            CRPC_RESOURCE_EXHAUSTED);
  crpc_h2_chunk_unref(gz);
  crpc_h2_inbound_destroy(&in);
}

TEST(InboundTest, ErrorsAreTheStreamsStatus) {
  crpc_h2_inbound in;
  crpc_wire_error err;
  crpc_h2_inbound_init(&in, 4, true);
  std::string big = Framed("12345");
  EXPECT_EQ(
      crpc_h2_inbound_feed(&in, (const uint8_t *)big.data(), big.size(), &err),
      CRPC_RESOURCE_EXHAUSTED);
  crpc_h2_inbound_destroy(&in);

  crpc_h2_inbound_init(&in, 1024, true);
  std::string z = Framed("x");
  z[0] = 1;  // compressed, but no grpc-encoding
  EXPECT_EQ(
      crpc_h2_inbound_feed(&in, (const uint8_t *)z.data(), z.size(), &err),
      CRPC_INTERNAL);
  crpc_h2_inbound_destroy(&in);

  crpc_h2_inbound_init(&in, 1024, true);
  in.encoding = CRPC_WIRE_ENCODING_GZIP;
  uint8_t *gz;
  size_t gzlen;
  ASSERT_EQ(crpc_wire_compress(CRPC_WIRE_ENCODING_GZIP, "hello", 5, &gz, &gzlen,
                               nullptr),
            CRPC_OK);
  std::string zz = Framed(std::string((char *)gz, gzlen));
  free(gz);
  zz[0] = 1;
  ASSERT_EQ(
      crpc_h2_inbound_feed(&in, (const uint8_t *)zz.data(), zz.size(), &err),
      CRPC_OK);
  crpc_message m;
  ASSERT_TRUE(crpc_h2_msgq_pop(&in.q, &m));
  EXPECT_EQ(std::string((char *)m.data, m.len), "hello");
  free(m.data);
  crpc_h2_inbound_destroy(&in);
}

}  // namespace
