#include "recmesh/protocol/timestamp.hpp"

#include <string>

#include <gtest/gtest.h>

namespace recmesh::protocol {
namespace {

using std::chrono::milliseconds;

TEST(TimestampTest, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_timestamp(Timestamp(milliseconds(0))), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_timestamp(Timestamp(milliseconds(1748779200123))), "2025-06-01T12:00:00.123Z");
  EXPECT_EQ(format_timestamp(max_timestamp()), "9999-12-31T23:59:59.999Z");
}

TEST(TimestampTest, ParseIsTheInverseOfFormat) {
  for (long long ms :
       {0LL, 1LL, 951782400000LL /* 2000-02-29 */, 1748779200123LL, 4102444799999LL}) {
    Timestamp t{milliseconds(ms)};
    auto parsed = parse_timestamp(format_timestamp(t));
    ASSERT_TRUE(parsed.ok()) << parsed.status().message;
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(*parse_timestamp("9999-12-31T23:59:59.999Z"), max_timestamp());
  EXPECT_EQ(*parse_timestamp("1970-01-01T00:00:00.000Z"), min_timestamp());
}

TEST(TimestampTest, RejectsEveryOtherSpelling) {
  for (const char* bad : {"",
                          "2025-06-01T12:00:00Z",
                          "2025-06-01T12:00:00.1Z",
                          "2025-06-01T12:00:00.123456Z",
                          "2025-06-01t12:00:00.000Z",
                          "2025-06-01T12:00:00.000z",
                          "2025-06-01 12:00:00.000Z",
                          "2025-06-01T12:00:00.000+00:00",
                          "2025-06-01T12:00:00.000",
                          "1748779200123",
                          "2025-13-01T12:00:00.000Z",
                          "2025-02-29T12:00:00.000Z",
                          "2100-02-29T00:00:00.000Z",
                          "2025-04-31T00:00:00.000Z",
                          "2025-00-10T00:00:00.000Z",
                          "2025-06-00T00:00:00.000Z",
                          "2025-06-01T24:00:00.000Z",
                          "2025-06-01T12:60:00.000Z",
                          "2016-12-31T23:59:60.000Z",
                          "1969-12-31T23:59:59.999Z",
                          "+025-06-01T12:00:00.000Z",
                          "2025-06-01T12:00:0a.000Z",
                          "2025/06/01T12:00:00.000Z"}) {
    auto parsed = parse_timestamp(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message.find("YYYY-MM-DDTHH:MM:SS.mmmZ"), std::string::npos);
  }
  EXPECT_TRUE(parse_timestamp("2024-02-29T00:00:00.000Z").ok());
  EXPECT_TRUE(parse_timestamp("2000-02-29T00:00:00.000Z").ok());
}

TEST(TimestampTest, OrderOfTextIsOrderOfTime) {
  EXPECT_LT(format_timestamp(*parse_timestamp("2025-06-01T09:59:59.999Z")),
            format_timestamp(*parse_timestamp("2025-06-01T10:00:00.000Z")));
}

}  // namespace
}  // namespace recmesh::protocol
