#include "rpc/wire/status_map.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace {

int Parse(const std::string &s, crpc_code *code) {
  return crpc_wire_grpc_status_parse(s.data(), s.size(), code);
}

TEST(GrpcStatus, ParsesEveryCanonicalCode) {
  for (int c = 0; c <= 16; c++) {
    crpc_code code = CRPC_DATA_LOSS;
    EXPECT_EQ(0, Parse(std::to_string(c), &code)) << c;
    EXPECT_EQ(c, static_cast<int>(code));
  }
}

TEST(GrpcStatus, UnknownNumbersAreUnknownNotErrors) {
  for (const char *s :
       {"17", "99", "100", "170", "4294967296", "99999999999999999999999999"}) {
    crpc_code code = CRPC_OK;
    EXPECT_EQ(0, Parse(s, &code)) << s;
    EXPECT_EQ(CRPC_UNKNOWN, code) << s;
  }
}

TEST(GrpcStatus, MalformedValuesAreInternal) {
  for (const char *s : {"", "01", "00", "+1", "-1", " 1", "1 ", "0x1", "1a",
                        "OK", "1.0", "\xd9\xa1"}) {
    crpc_code code = CRPC_OK;
    EXPECT_EQ(-1, Parse(s, &code)) << "'" << s << "'";
    EXPECT_EQ(CRPC_INTERNAL, code) << s;
  }
  crpc_code code = CRPC_OK;
  EXPECT_EQ(-1, crpc_wire_grpc_status_parse(nullptr, 0, &code));
  EXPECT_EQ(-1, crpc_wire_grpc_status_parse("1\0", 2, &code));
}

TEST(GrpcStatus, DoesNotReadPastTheGivenLength) {
  crpc_code code;
  EXPECT_EQ(0, crpc_wire_grpc_status_parse("14xyz", 2, &code));
  EXPECT_EQ(CRPC_UNAVAILABLE, code);
}

TEST(GrpcStatus, StringRoundTripsAndOutOfRangeSendsUnknown) {
  for (int c = 0; c <= 16; c++) {
    const char *s = crpc_wire_grpc_status_string(static_cast<crpc_code>(c));
    EXPECT_EQ(std::to_string(c), s);
    crpc_code back;
    EXPECT_EQ(0, crpc_wire_grpc_status_parse(s, std::strlen(s), &back));
    EXPECT_EQ(c, static_cast<int>(back));
  }
  EXPECT_STREQ("2", crpc_wire_grpc_status_string(static_cast<crpc_code>(17)));
  EXPECT_STREQ("2", crpc_wire_grpc_status_string(static_cast<crpc_code>(-1)));
}

TEST(HttpStatus, FollowsGrpcMappingTable) {
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_status_from_http(400));
  EXPECT_EQ(CRPC_UNAUTHENTICATED, crpc_wire_status_from_http(401));
  EXPECT_EQ(CRPC_PERMISSION_DENIED, crpc_wire_status_from_http(403));
  EXPECT_EQ(CRPC_UNIMPLEMENTED, crpc_wire_status_from_http(404));
  EXPECT_EQ(CRPC_UNAVAILABLE, crpc_wire_status_from_http(429));
  EXPECT_EQ(CRPC_INTERNAL, crpc_wire_status_from_http(431));
  EXPECT_EQ(CRPC_UNAVAILABLE, crpc_wire_status_from_http(502));
  EXPECT_EQ(CRPC_UNAVAILABLE, crpc_wire_status_from_http(503));
  EXPECT_EQ(CRPC_UNAVAILABLE, crpc_wire_status_from_http(504));
}

TEST(HttpStatus, EverythingElseIsUnknownIncluding200) {
  for (int s : {200, 100, 204, 301, 402, 405, 415, 500, 501, 505, 0, -1, 999}) {
    EXPECT_EQ(CRPC_UNKNOWN, crpc_wire_status_from_http(s)) << s;
  }
}

TEST(RstStream, MapsPerProtocolDoc) {
  EXPECT_EQ(CRPC_INTERNAL,
            crpc_wire_status_from_rst_stream(CRPC_H2_NO_ERROR, false));
  EXPECT_EQ(CRPC_OK, crpc_wire_status_from_rst_stream(CRPC_H2_NO_ERROR, true));
  EXPECT_EQ(CRPC_UNAVAILABLE,
            crpc_wire_status_from_rst_stream(CRPC_H2_REFUSED_STREAM, false));
  EXPECT_EQ(CRPC_CANCELLED,
            crpc_wire_status_from_rst_stream(CRPC_H2_CANCEL, false));
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED,
            crpc_wire_status_from_rst_stream(CRPC_H2_ENHANCE_YOUR_CALM, false));
  EXPECT_EQ(CRPC_PERMISSION_DENIED, crpc_wire_status_from_rst_stream(
                                        CRPC_H2_INADEQUATE_SECURITY, false));
}

TEST(RstStream, OtherCodesAndUnknownOnesAreInternal) {
  for (uint32_t e : {1u, 2u, 3u, 4u, 5u, 6u, 9u, 10u, 13u, 14u, 0xFFFFFFFFu}) {
    EXPECT_EQ(CRPC_INTERNAL, crpc_wire_status_from_rst_stream(e, false)) << e;
    EXPECT_EQ(CRPC_INTERNAL, crpc_wire_status_from_rst_stream(e, true)) << e;
  }
  // trailers_said_ok only excuses NO_ERROR.
  EXPECT_EQ(CRPC_CANCELLED,
            crpc_wire_status_from_rst_stream(CRPC_H2_CANCEL, true));
}

TEST(RstStream, ConstantsMatchRfc7540) {
  EXPECT_EQ(0x7, CRPC_H2_REFUSED_STREAM);
  EXPECT_EQ(0x8, CRPC_H2_CANCEL);
  EXPECT_EQ(0xb, CRPC_H2_ENHANCE_YOUR_CALM);
  EXPECT_EQ(0xc, CRPC_H2_INADEQUATE_SECURITY);
}

TEST(RstStream, CodeToSendForEachStatus) {
  EXPECT_EQ(CRPC_H2_NO_ERROR, crpc_wire_rst_stream_for_status(CRPC_OK));
  EXPECT_EQ(CRPC_H2_CANCEL, crpc_wire_rst_stream_for_status(CRPC_CANCELLED));
  EXPECT_EQ(CRPC_H2_CANCEL,
            crpc_wire_rst_stream_for_status(CRPC_DEADLINE_EXCEEDED));
  EXPECT_EQ(CRPC_H2_ENHANCE_YOUR_CALM,
            crpc_wire_rst_stream_for_status(CRPC_RESOURCE_EXHAUSTED));
  EXPECT_EQ(CRPC_H2_INADEQUATE_SECURITY,
            crpc_wire_rst_stream_for_status(CRPC_PERMISSION_DENIED));
  EXPECT_EQ(CRPC_H2_REFUSED_STREAM,
            crpc_wire_rst_stream_for_status(CRPC_UNAVAILABLE));
  for (crpc_code c :
       {CRPC_UNKNOWN, CRPC_INVALID_ARGUMENT, CRPC_INTERNAL, CRPC_DATA_LOSS,
        CRPC_UNIMPLEMENTED, static_cast<crpc_code>(20)}) {
    EXPECT_EQ(CRPC_H2_INTERNAL_ERROR, crpc_wire_rst_stream_for_status(c)) << c;
  }
}

TEST(RstStream, SentCodeMeansTheSameStatusToThePeer) {
  // Round trip for every status with a dedicated HTTP/2 code. DEADLINE
  // is the exception by design: the peer sees CANCELLED and a client
  // checks its own deadline.
  for (crpc_code c :
       {CRPC_CANCELLED, CRPC_RESOURCE_EXHAUSTED, CRPC_PERMISSION_DENIED,
        CRPC_UNAVAILABLE, CRPC_INTERNAL}) {
    EXPECT_EQ(c, crpc_wire_status_from_rst_stream(
                     crpc_wire_rst_stream_for_status(c), false))
        << c;
  }
  EXPECT_EQ(
      CRPC_CANCELLED,
      crpc_wire_status_from_rst_stream(
          crpc_wire_rst_stream_for_status(CRPC_DEADLINE_EXCEEDED), false));
}

}  // namespace
