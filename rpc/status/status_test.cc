#include "crpc/status.h"

#include <gtest/gtest.h>

#include <string>

TEST(Status, CodeNamesMatchTheGrpcSpec) {
  EXPECT_STREQ("OK", crpc_code_name(CRPC_OK));
  EXPECT_STREQ("CANCELLED", crpc_code_name(CRPC_CANCELLED));
  EXPECT_STREQ("DEADLINE_EXCEEDED", crpc_code_name(CRPC_DEADLINE_EXCEEDED));
  EXPECT_STREQ("UNAUTHENTICATED", crpc_code_name(CRPC_UNAUTHENTICATED));
  EXPECT_EQ(16, static_cast<int>(CRPC_UNAUTHENTICATED));
}

TEST(Status, OutOfRangeValuesAreNamedInvalidNotCrashing) {
  EXPECT_STREQ("INVALID_CODE", crpc_code_name(static_cast<crpc_code>(17)));
  EXPECT_STREQ("INVALID_CODE", crpc_code_name(static_cast<crpc_code>(-1)));
  EXPECT_STREQ("invalid", crpc_origin_name(static_cast<crpc_origin>(99)));
}

TEST(Status, EveryOriginHasADistinctName) {
  std::string seen;
  for (int o = CRPC_ORIGIN_NONE; o <= CRPC_ORIGIN_ADMIN; o++) {
    std::string name = crpc_origin_name(static_cast<crpc_origin>(o));
    EXPECT_NE("invalid", name);
    EXPECT_EQ(std::string::npos, seen.find("|" + name + "|")) << name;
    seen += "|" + name + "|";
  }
}
