#include "crpc/metadata.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

namespace {

struct Free {
  void operator()(crpc_metadata *md) const { crpc_metadata_free(md); }
};
using Md = std::unique_ptr<crpc_metadata, Free>;

Md New() {
  Md md(crpc_metadata_new());
  EXPECT_NE(nullptr, md);
  return md;
}

std::string Value(const crpc_metadata_entry &e) {
  return std::string(reinterpret_cast<const char *>(e.value), e.value_len);
}

TEST(Metadata, NewIsEmptyAndFreeAcceptsNull) {
  Md md = New();
  EXPECT_EQ(0u, crpc_metadata_count(md.get()));
  crpc_metadata_entry e;
  EXPECT_FALSE(crpc_metadata_at(md.get(), 0, &e));
  EXPECT_FALSE(crpc_metadata_get(md.get(), "a", &e));
  crpc_metadata_free(nullptr);
  crpc_metadata_clear(nullptr);
  EXPECT_EQ(0u, crpc_metadata_count(nullptr));
  EXPECT_FALSE(crpc_metadata_at(nullptr, 0, &e));
}

TEST(Metadata, AddCopiesKeyAndValue) {
  Md md = New();
  char key[] = "x-user";
  char value[] = "alice";
  ASSERT_EQ(CRPC_OK, crpc_metadata_add_str(md.get(), key, value));
  std::strcpy(key, "x-evil");
  std::strcpy(value, "mallo");
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "x-user", &e));
  EXPECT_STREQ("x-user", e.key);
  EXPECT_EQ("alice", Value(e));
  EXPECT_FALSE(crpc_metadata_get(md.get(), "x-evil", nullptr));
}

TEST(Metadata, AsciiValuesAreAlsoCStrings) {
  Md md = New();
  ASSERT_EQ(CRPC_OK, crpc_metadata_add(md.get(), "k", "abcdef", 3));
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "k", &e));
  EXPECT_EQ(3u, e.value_len);
  EXPECT_STREQ("abc", reinterpret_cast<const char *>(e.value));
}

TEST(Metadata, BinaryValuesKeepEveryByte) {
  Md md = New();
  const uint8_t bin[] = {0, 1, 0xFF, '\n', 0};
  ASSERT_EQ(CRPC_OK,
            crpc_metadata_add(md.get(), "trace-bin", bin, sizeof(bin)));
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "trace-bin", &e));
  ASSERT_EQ(sizeof(bin), e.value_len);
  EXPECT_EQ(0, std::memcmp(bin, e.value, sizeof(bin)));
}

TEST(Metadata, EmptyValuesAreAllowed) {
  Md md = New();
  EXPECT_EQ(CRPC_OK, crpc_metadata_add(md.get(), "empty", nullptr, 0));
  EXPECT_EQ(CRPC_OK, crpc_metadata_add(md.get(), "empty-bin", nullptr, 0));
  EXPECT_EQ(CRPC_OK, crpc_metadata_add_str(md.get(), "e2", ""));
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "empty", &e));
  EXPECT_EQ(0u, e.value_len);
  EXPECT_STREQ("", reinterpret_cast<const char *>(e.value));
}

TEST(Metadata, DuplicateKeysKeepInsertionOrder) {
  Md md = New();
  crpc_metadata_add_str(md.get(), "a", "1");
  crpc_metadata_add_str(md.get(), "b", "x");
  crpc_metadata_add_str(md.get(), "a", "2");
  crpc_metadata_add_str(md.get(), "a", "3");
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "a", &e));
  EXPECT_EQ("1", Value(e)) << "get returns the first";
  crpc_metadata_entry all[2];
  EXPECT_EQ(3u, crpc_metadata_get_all(md.get(), "a", all, 2))
      << "returns the total even when out is too small";
  EXPECT_EQ("1", Value(all[0]));
  EXPECT_EQ("2", Value(all[1]));
  EXPECT_EQ(3u, crpc_metadata_get_all(md.get(), "a", nullptr, 0));
  EXPECT_EQ(0u, crpc_metadata_get_all(md.get(), "zzz", all, 2));
  const char *order[] = {"a", "b", "a", "a"};
  ASSERT_EQ(4u, crpc_metadata_count(md.get()));
  for (size_t i = 0; i < 4; i++) {
    ASSERT_TRUE(crpc_metadata_at(md.get(), i, &e));
    EXPECT_STREQ(order[i], e.key);
  }
  EXPECT_FALSE(crpc_metadata_at(md.get(), 4, &e));
}

TEST(Metadata, GetMatchesWholeKeysExactly) {
  Md md = New();
  crpc_metadata_add_str(md.get(), "abc", "v");
  EXPECT_FALSE(crpc_metadata_get(md.get(), "ab", nullptr));
  EXPECT_FALSE(crpc_metadata_get(md.get(), "abcd", nullptr));
  EXPECT_FALSE(crpc_metadata_get(md.get(), "ABC", nullptr));
  EXPECT_FALSE(crpc_metadata_get(md.get(), nullptr, nullptr));
  EXPECT_TRUE(crpc_metadata_get(md.get(), "abc", nullptr));
}

TEST(Metadata, PointersSurviveLaterAdds) {
  Md md = New();
  crpc_metadata_add_str(md.get(), "first", "value-one");
  crpc_metadata_entry first;
  ASSERT_TRUE(crpc_metadata_get(md.get(), "first", &first));
  for (int i = 0; i < 1000; i++) {  // forces the entry array to move
    ASSERT_EQ(CRPC_OK, crpc_metadata_add_str(md.get(), "k", "v"));
  }
  EXPECT_STREQ("first", first.key);  // ASan would flag a dangling pointer
  EXPECT_EQ("value-one", Value(first));
}

TEST(Metadata, RemoveDropsEveryMatchAndKeepsOrder) {
  Md md = New();
  crpc_metadata_add_str(md.get(), "a", "1");
  crpc_metadata_add_str(md.get(), "b", "2");
  crpc_metadata_add_str(md.get(), "a", "3");
  crpc_metadata_add_str(md.get(), "c", "4");
  EXPECT_EQ(2u, crpc_metadata_remove(md.get(), "a"));
  EXPECT_EQ(0u, crpc_metadata_remove(md.get(), "a"));
  EXPECT_EQ(0u, crpc_metadata_remove(md.get(), nullptr));
  ASSERT_EQ(2u, crpc_metadata_count(md.get()));
  crpc_metadata_entry e;
  crpc_metadata_at(md.get(), 0, &e);
  EXPECT_STREQ("b", e.key);
  crpc_metadata_at(md.get(), 1, &e);
  EXPECT_STREQ("c", e.key);
}

TEST(Metadata, ClearEmptiesButStaysUsable) {
  Md md = New();
  crpc_metadata_add_str(md.get(), "a", "1");
  crpc_metadata_clear(md.get());
  EXPECT_EQ(0u, crpc_metadata_count(md.get()));
  EXPECT_EQ(CRPC_OK, crpc_metadata_add_str(md.get(), "b", "2"));
  EXPECT_EQ(1u, crpc_metadata_count(md.get()));
}

TEST(Metadata, AppendCopiesAllEntriesIncludingIntoItself) {
  Md a = New();
  Md b = New();
  crpc_metadata_add_str(a.get(), "x", "1");
  crpc_metadata_add_str(b.get(), "y", "2");
  crpc_metadata_add(b.get(), "z-bin", "\0\1", 2);
  ASSERT_EQ(CRPC_OK, crpc_metadata_append(a.get(), b.get()));
  crpc_metadata_free(b.release());  // a must own copies
  ASSERT_EQ(3u, crpc_metadata_count(a.get()));
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(a.get(), "z-bin", &e));
  EXPECT_EQ(std::string("\0\1", 2), Value(e));
  ASSERT_EQ(CRPC_OK, crpc_metadata_append(a.get(), a.get()));
  EXPECT_EQ(6u, crpc_metadata_count(a.get()));
  EXPECT_EQ(CRPC_OK, crpc_metadata_append(a.get(), nullptr));
  EXPECT_EQ(6u, crpc_metadata_count(a.get()));
}

TEST(MetadataValidate, AcceptsTheSpecAlphabet) {
  EXPECT_EQ(CRPC_OK, crpc_metadata_validate("abc-xyz_0.9", "v", 1, nullptr));
  EXPECT_EQ(CRPC_OK, crpc_metadata_validate("-", "", 0, nullptr));
  std::string printable;
  for (int c = 0x20; c <= 0x7E; c++) printable += static_cast<char>(c);
  EXPECT_EQ(CRPC_OK, crpc_metadata_validate("k", printable.data(),
                                            printable.size(), nullptr));
}

TEST(MetadataValidate, BadKeysAreInvalidArgumentWithAReason) {
  struct {
    const char *key;
    const char *reason;
  } cases[] = {
      {nullptr, "metadata key is NULL"},
      {"", "metadata key is empty"},
      {"Authorization", "metadata key must be lowercase"},
      {"x-Trace", "metadata key must be lowercase"},
      {":path", "metadata key may only contain 0-9 a-z - _ ."},
      {"a b", "metadata key may only contain 0-9 a-z - _ ."},
      {"caf\xc3\xa9", "metadata key may only contain 0-9 a-z - _ ."},
      {"a/b", "metadata key may only contain 0-9 a-z - _ ."},
  };
  for (const auto &c : cases) {
    const char *why = nullptr;
    EXPECT_EQ(CRPC_INVALID_ARGUMENT,
              crpc_metadata_validate(c.key, "v", 1, &why))
        << (c.key ? c.key : "(null)");
    EXPECT_STREQ(c.reason, why);
    Md md = New();
    EXPECT_EQ(CRPC_INVALID_ARGUMENT,
              crpc_metadata_add(md.get(), c.key, "v", 1));
    EXPECT_EQ(0u, crpc_metadata_count(md.get()));
  }
}

TEST(MetadataValidate, AsciiKeysRejectNonPrintableValues) {
  for (const char *v : {"a\nb", "tab\there", "\x7f", "caf\xc3\xa9", "\x1f"}) {
    const char *why = nullptr;
    EXPECT_EQ(CRPC_INVALID_ARGUMENT,
              crpc_metadata_validate("k", v, std::strlen(v), &why))
        << v;
    EXPECT_NE(nullptr, std::strstr(why, "-bin"));
    // The same bytes are fine under a binary key.
    EXPECT_EQ(CRPC_OK,
              crpc_metadata_validate("k-bin", v, std::strlen(v), nullptr));
  }
  const char *why = nullptr;
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            crpc_metadata_validate("k", "a\0b", 3, &why));
}

TEST(MetadataValidate, NullValueNeedsZeroLength) {
  const char *why = nullptr;
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            crpc_metadata_validate("k", nullptr, 1, &why));
  EXPECT_STREQ("metadata value is NULL but its length is not 0", why);
  Md md = New();
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            crpc_metadata_add_str(md.get(), "k", nullptr));
}

TEST(MetadataKeys, BinarySuffix) {
  EXPECT_TRUE(crpc_metadata_key_is_binary("trace-bin"));
  EXPECT_TRUE(crpc_metadata_key_is_binary("-bin"));
  EXPECT_FALSE(crpc_metadata_key_is_binary("bin"));
  EXPECT_FALSE(crpc_metadata_key_is_binary("trace-bin2"));
  EXPECT_FALSE(crpc_metadata_key_is_binary("tracebin"));
  EXPECT_FALSE(crpc_metadata_key_is_binary(nullptr));
}

TEST(MetadataKeys, TransportHeadersAreReserved) {
  for (const char *k :
       {":path", ":authority", ":status", ":anything", "content-type", "te",
        "user-agent", "host", "grpc-timeout", "grpc-encoding",
        "grpc-accept-encoding", "grpc-message-type", "grpc-status",
        "grpc-message", "connection", "keep-alive", "proxy-connection",
        "transfer-encoding", "upgrade"}) {
    EXPECT_TRUE(crpc_metadata_key_is_reserved(k)) << k;
  }
}

TEST(MetadataKeys, UserHeadersAreNotReserved) {
  for (const char *k :
       {"authorization", "grpc-status-details-bin", "grpc-trace-bin",
        "grpc-previous-rpc-attempts", "grpc-retry-pushback-ms", "x-te", "tee",
        "content-types", "grpc-statu", "user-agent2", ""}) {
    EXPECT_FALSE(crpc_metadata_key_is_reserved(k)) << k;
  }
  EXPECT_FALSE(crpc_metadata_key_is_reserved(nullptr));
}

TEST(Metadata, ReservedKeysCanBeStoredForReading) {
  // A server reads the client's user-agent from the same type.
  Md md = New();
  EXPECT_EQ(CRPC_OK,
            crpc_metadata_add_str(md.get(), "user-agent", "grpc-go/1.0"));
}

}  // namespace
