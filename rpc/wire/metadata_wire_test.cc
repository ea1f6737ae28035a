#include "rpc/wire/metadata_wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

namespace {

struct Free {
  void operator()(crpc_metadata *md) const { crpc_metadata_free(md); }
};
using Md = std::unique_ptr<crpc_metadata, Free>;

// A crpc_wire_headers that cleans up after itself.
struct Headers {
  crpc_wire_headers h;
  Headers() { crpc_wire_headers_init(&h); }
  ~Headers() { crpc_wire_headers_destroy(&h); }
  std::string Name(size_t i) const {
    return std::string(h.items[i].name, h.items[i].name_len);
  }
  std::string Value(size_t i) const {
    return std::string(h.items[i].value, h.items[i].value_len);
  }
};

std::string Value(const crpc_metadata_entry &e) {
  return std::string(reinterpret_cast<const char *>(e.value), e.value_len);
}

crpc_wire_header_verdict Receive(crpc_metadata *md, const std::string &name,
                                 const std::string &value) {
  return crpc_wire_metadata_add_received(md, name.data(), name.size(),
                                         value.data(), value.size());
}

TEST(WireHeaders, AddCopiesAndNulTerminates) {
  Headers hs;
  std::string name = ":path";
  std::string value = "/pkg.Svc/Method";
  ASSERT_EQ(CRPC_OK, crpc_wire_headers_add(&hs.h, name.data(), name.size(),
                                           value.data(), value.size()));
  name[1] = 'X';
  ASSERT_EQ(1u, hs.h.count);
  EXPECT_STREQ(":path", hs.h.items[0].name);
  EXPECT_STREQ("/pkg.Svc/Method", hs.h.items[0].value);
  EXPECT_EQ(5u, hs.h.items[0].name_len);
}

TEST(WireHeaders, StringsStayPutWhenTheListGrows) {
  Headers hs;
  crpc_wire_headers_add(&hs.h, "a", 1, "first", 5);
  const char *first = hs.h.items[0].value;
  for (int i = 0; i < 100; i++) crpc_wire_headers_add(&hs.h, "k", 1, "v", 1);
  EXPECT_EQ(first, hs.h.items[0].value);
  EXPECT_STREQ("first", first);
}

TEST(WireHeaders, DestroyAcceptsNullAndLeavesAnEmptyList) {
  crpc_wire_headers_destroy(nullptr);
  Headers hs;
  crpc_wire_headers_add(&hs.h, "a", 1, "b", 1);
  crpc_wire_headers_destroy(&hs.h);
  EXPECT_EQ(0u, hs.h.count);
  // Empty again, and usable again.
  EXPECT_EQ(CRPC_OK, crpc_wire_headers_add(&hs.h, "c", 1, "d", 1));
  EXPECT_EQ("c", hs.Name(0));
}

// Static headers are referenced, not copied, mixed freely with copied ones
// (ASan checks that destroy and truncate free exactly the copies), and the
// list keeps its order when it outgrows the array inside the struct.
TEST(WireHeaders, StaticHeadersAreBorrowedAndMixWithCopies) {
  static const char kName[] = "content-type";
  static const char kValue[] = "application/grpc";
  Headers hs;
  for (int i = 0; i < 3 * CRPC_WIRE_HEADERS_INLINE; i++) {
    if (i % 2 == 0) {
      ASSERT_EQ(CRPC_OK, crpc_wire_headers_add_static(&hs.h, kName, 12, kValue, 16));
    } else {
      std::string v = "v" + std::to_string(i);
      ASSERT_EQ(CRPC_OK, crpc_wire_headers_add(&hs.h, "x-n", 3, v.data(), v.size()));
    }
  }
  ASSERT_EQ(3u * CRPC_WIRE_HEADERS_INLINE, hs.h.count);
  EXPECT_EQ(kName, hs.h.items[0].name);  // the same pointer: not copied
  EXPECT_EQ(kValue, hs.h.items[0].value);
  EXPECT_TRUE(hs.h.items[0].borrowed);
  EXPECT_FALSE(hs.h.items[1].borrowed);
  EXPECT_EQ("v1", hs.Value(1));
  EXPECT_EQ("v35", hs.Value(35));
  crpc_wire_headers_truncate(&hs.h, 5);
  EXPECT_EQ(5u, hs.h.count);
  EXPECT_EQ("v3", hs.Value(3));
}

TEST(WireHeaders, MetadataIsAppendedInOrderWithBinaryBase64Unpadded) {
  Md md(crpc_metadata_new());
  crpc_metadata_add_str(md.get(), "authorization", "Bearer x");
  crpc_metadata_add(md.get(), "trace-bin", "f", 1);
  crpc_metadata_add(md.get(), "empty-bin", nullptr, 0);
  crpc_metadata_add_str(md.get(), "grpc-status-details-bin", "foobar");
  Headers hs;
  crpc_wire_headers_add(&hs.h, ":method", 7, "POST", 4);
  crpc_wire_error err{};
  ASSERT_EQ(CRPC_OK, crpc_wire_headers_add_metadata(&hs.h, md.get(), &err));
  ASSERT_EQ(5u, hs.h.count);
  EXPECT_EQ(":method", hs.Name(0));
  EXPECT_EQ("authorization", hs.Name(1));
  EXPECT_EQ("Bearer x", hs.Value(1));
  EXPECT_EQ("trace-bin", hs.Name(2));
  EXPECT_EQ("Zg", hs.Value(2));
  EXPECT_EQ("", hs.Value(3));
  EXPECT_EQ("Zm9vYmFy", hs.Value(4));
}

TEST(WireHeaders, ReservedKeysAreRefusedAndNothingIsAdded) {
  for (const char *key :
       {"user-agent", "te", "grpc-timeout", "content-type", "grpc-status",
        "grpc-accept-encoding", "connection"}) {
    Md md(crpc_metadata_new());
    crpc_metadata_add_str(md.get(), "fine", "1");
    crpc_metadata_add_str(md.get(), key, "x");
    Headers hs;
    crpc_wire_headers_add(&hs.h, ":method", 7, "POST", 4);
    crpc_wire_error err{};
    EXPECT_EQ(CRPC_INVALID_ARGUMENT,
              crpc_wire_headers_add_metadata(&hs.h, md.get(), &err))
        << key;
    EXPECT_EQ(CRPC_INVALID_ARGUMENT, err.code);
    EXPECT_NE(nullptr, std::strstr(err.message, key)) << err.message;
    EXPECT_EQ(1u, hs.h.count) << "all or nothing";
  }
}

TEST(WireHeaders, NullMetadataAddsNothing) {
  Headers hs;
  EXPECT_EQ(CRPC_OK, crpc_wire_headers_add_metadata(&hs.h, nullptr, nullptr));
  EXPECT_EQ(0u, hs.h.count);
}

TEST(WireHeaders, ListSizeCountsNameValueAnd32) {
  Headers hs;
  EXPECT_EQ(0u, crpc_wire_headers_list_size(&hs.h));
  crpc_wire_headers_add(&hs.h, "ab", 2, "cde", 3);
  crpc_wire_headers_add(&hs.h, "x", 1, "", 0);
  EXPECT_EQ((2u + 3 + 32) + (1u + 0 + 32), crpc_wire_headers_list_size(&hs.h));
  // Binary values count post-base64.
  Md md(crpc_metadata_new());
  crpc_metadata_add(md.get(), "a-bin", "foobar", 6);  // 8 chars on the wire
  Headers hb;
  crpc_wire_headers_add_metadata(&hb.h, md.get(), nullptr);
  EXPECT_EQ(5u + 8 + 32, crpc_wire_headers_list_size(&hb.h));
}

TEST(WireReceive, AsciiHeadersBecomeMetadata) {
  Md md(crpc_metadata_new());
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED, Receive(md.get(), "x-id", "42"));
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED, Receive(md.get(), "x-id", " spaced "));
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED, Receive(md.get(), "x-empty", ""));
  crpc_metadata_entry all[2];
  ASSERT_EQ(2u, crpc_metadata_get_all(md.get(), "x-id", all, 2));
  EXPECT_EQ("42", Value(all[0]));
  EXPECT_EQ(" spaced ", Value(all[1])) << "whitespace is kept";
}

TEST(WireReceive, TransportHeadersAreLeftToTheTransport) {
  Md md(crpc_metadata_new());
  for (const char *k :
       {":path", ":status", "content-type", "te", "grpc-timeout", "grpc-status",
        "grpc-message", "grpc-encoding", "grpc-accept-encoding"}) {
    EXPECT_EQ(CRPC_WIRE_HEADER_RESERVED, Receive(md.get(), k, "x")) << k;
  }
  EXPECT_EQ(0u, crpc_metadata_count(md.get()));
}

TEST(WireReceive, UserAgentIsVisibleToTheServer) {
  Md md(crpc_metadata_new());
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED,
            Receive(md.get(), "user-agent", "grpc-go/1.60.0"));
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "user-agent", &e));
  EXPECT_EQ("grpc-go/1.60.0", Value(e));
}

TEST(WireReceive, BinaryValuesAreDecodedPaddedOrNot) {
  Md md(crpc_metadata_new());
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED, Receive(md.get(), "a-bin", "Zm8"));
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED, Receive(md.get(), "b-bin", "Zm8="));
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED, Receive(md.get(), "c-bin", ""));
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "a-bin", &e));
  EXPECT_EQ("fo", Value(e));
  ASSERT_TRUE(crpc_metadata_get(md.get(), "b-bin", &e));
  EXPECT_EQ("fo", Value(e));
  ASSERT_TRUE(crpc_metadata_get(md.get(), "c-bin", &e));
  EXPECT_EQ(0u, e.value_len);
}

TEST(WireReceive, JoinedBinaryValuesAreSplitOnCommas) {
  Md md(crpc_metadata_new());
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED,
            Receive(md.get(), "t-bin", "Zg==,Zm8, Zm9v"));
  crpc_metadata_entry all[4];
  ASSERT_EQ(3u, crpc_metadata_get_all(md.get(), "t-bin", all, 4));
  EXPECT_EQ("f", Value(all[0]));
  EXPECT_EQ("fo", Value(all[1]));
  EXPECT_EQ("foo", Value(all[2]));
  // An empty part is an empty value, as the sender's empty entry was.
  Md md2(crpc_metadata_new());
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED, Receive(md2.get(), "t-bin", "Zg,"));
  EXPECT_EQ(2u, crpc_metadata_get_all(md2.get(), "t-bin", nullptr, 0));
}

TEST(WireReceive, InvalidBase64DropsTheWholeHeader) {
  Md md(crpc_metadata_new());
  for (const char *v : {"!!!", "Zg=", "Z", "Zg,!!", "Zg==,Zm8=,@"}) {
    EXPECT_EQ(CRPC_WIRE_HEADER_INVALID, Receive(md.get(), "t-bin", v)) << v;
  }
  EXPECT_EQ(0u, crpc_metadata_count(md.get()));
}

TEST(WireReceive, NonPrintableAsciiValuesAreDropped) {
  Md md(crpc_metadata_new());
  EXPECT_EQ(CRPC_WIRE_HEADER_INVALID, Receive(md.get(), "k", "caf\xc3\xa9"));
  EXPECT_EQ(CRPC_WIRE_HEADER_INVALID, Receive(md.get(), "k", "a\tb"));
  EXPECT_EQ(CRPC_WIRE_HEADER_INVALID,
            Receive(md.get(), "k", std::string("a\0b", 3)));
  EXPECT_EQ(0u, crpc_metadata_count(md.get()));
}

TEST(WireReceive, InvalidNamesAreDropped) {
  Md md(crpc_metadata_new());
  EXPECT_EQ(CRPC_WIRE_HEADER_INVALID, Receive(md.get(), "X-Upper", "v"));
  EXPECT_EQ(CRPC_WIRE_HEADER_INVALID, Receive(md.get(), "", "v"));
  EXPECT_EQ(CRPC_WIRE_HEADER_INVALID, Receive(md.get(), "a b", "v"));
  EXPECT_EQ(CRPC_WIRE_HEADER_INVALID,
            Receive(md.get(), std::string("a\0", 2), "v"));
  EXPECT_EQ(0u, crpc_metadata_count(md.get()));
}

TEST(WireReceive, NameIsLengthDelimited) {
  Md md(crpc_metadata_new());
  EXPECT_EQ(CRPC_WIRE_HEADER_ADDED,
            crpc_wire_metadata_add_received(md.get(), "abc-binXX", 7, "Zg", 2));
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "abc-bin", &e));
  EXPECT_EQ("f", Value(e));
}

TEST(WireRoundTrip, WhatWeSendWeReceiveBack) {
  Md out(crpc_metadata_new());
  std::string bin;
  for (int i = 0; i < 256; i++) bin += static_cast<char>(i);
  crpc_metadata_add(out.get(), "all-bytes-bin", bin.data(), bin.size());
  crpc_metadata_add_str(out.get(), "text", "hello, world");
  crpc_metadata_add_str(out.get(), "text", "");
  Headers hs;
  ASSERT_EQ(CRPC_OK, crpc_wire_headers_add_metadata(&hs.h, out.get(), nullptr));
  Md in(crpc_metadata_new());
  for (size_t i = 0; i < hs.h.count; i++) {
    EXPECT_EQ(CRPC_WIRE_HEADER_ADDED,
              crpc_wire_metadata_add_received(
                  in.get(), hs.h.items[i].name, hs.h.items[i].name_len,
                  hs.h.items[i].value, hs.h.items[i].value_len));
  }
  ASSERT_EQ(crpc_metadata_count(out.get()), crpc_metadata_count(in.get()));
  for (size_t i = 0; i < crpc_metadata_count(out.get()); i++) {
    crpc_metadata_entry a, b;
    crpc_metadata_at(out.get(), i, &a);
    crpc_metadata_at(in.get(), i, &b);
    EXPECT_STREQ(a.key, b.key);
    EXPECT_EQ(Value(a), Value(b));
  }
}

}  // namespace
