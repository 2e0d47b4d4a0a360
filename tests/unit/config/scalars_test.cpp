#include "recmesh/config/scalars.hpp"

#include <limits>

#include <gtest/gtest.h>

namespace recmesh::config {
namespace {

TEST(ScalarsTest, DurationsParseInEveryUnit) {
  std::string error;
  EXPECT_EQ(parse_duration_ms("0", error), 0);
  EXPECT_EQ(parse_duration_ms("250ms", error), 250);
  EXPECT_EQ(parse_duration_ms("5s", error), 5000);
  EXPECT_EQ(parse_duration_ms("2m", error), 120000);
  EXPECT_EQ(parse_duration_ms("1h", error), 3600000);
  EXPECT_EQ(parse_duration_ms("7d", error), 7 * 86400000LL);
  EXPECT_EQ(parse_duration_ms("007s", error), 7000);
  EXPECT_TRUE(error.empty()) << error;
  // The largest whole number of days that fits in milliseconds, and one more.
  EXPECT_EQ(parse_duration_ms("106751991167d", error), 106751991167LL * 86400000LL);
  EXPECT_FALSE(parse_duration_ms("106751991168d", error));
  EXPECT_NE(error.find("is out of range"), std::string::npos) << error;
}

TEST(ScalarsTest, DurationsFormatInTheLargestExactUnit) {
  EXPECT_EQ(format_duration_ms(0), "0s");
  EXPECT_EQ(format_duration_ms(250), "250ms");
  EXPECT_EQ(format_duration_ms(1500), "1500ms");
  EXPECT_EQ(format_duration_ms(90000), "90s");
  EXPECT_EQ(format_duration_ms(120000), "2m");
  EXPECT_EQ(format_duration_ms(86400000), "1d");
  for (std::int64_t ms : {1LL, 999LL, 1000LL, 61000LL, 3600000LL, 90061001LL}) {
    std::string error;
    EXPECT_EQ(parse_duration_ms(format_duration_ms(ms), error), ms);
  }
}

TEST(ScalarsTest, ByteSizesUseIecUnits) {
  std::string error;
  EXPECT_EQ(parse_byte_size("0", error), 0U);
  EXPECT_EQ(parse_byte_size("512B", error), 512U);
  EXPECT_EQ(parse_byte_size("64KiB", error), 65536U);
  EXPECT_EQ(parse_byte_size("16MiB", error), 16U << 20);
  EXPECT_EQ(parse_byte_size("2GiB", error), 2ULL << 30);
  EXPECT_EQ(parse_byte_size("1TiB", error), 1ULL << 40);
  EXPECT_EQ(parse_byte_size("16777215TiB", error), 16777215ULL << 40);
  EXPECT_FALSE(parse_byte_size("16777216TiB", error));
  EXPECT_EQ(format_byte_size(0), "0B");
  EXPECT_EQ(format_byte_size(1000), "1000B");
  EXPECT_EQ(format_byte_size(65536), "64KiB");
  EXPECT_EQ(format_byte_size(3ULL << 30), "3GiB");
  EXPECT_EQ(format_byte_size(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615B");
}

TEST(ScalarsTest, IntegersKeepSignAndMagnitude) {
  std::string error;
  auto n = parse_integer("-9223372036854775808", error);
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->negative);
  EXPECT_EQ(n->magnitude, 9223372036854775808ULL);
  n = parse_integer("+0000000000000000000000042", error);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->magnitude, 42U);
  n = parse_integer("-0", error);
  ASSERT_TRUE(n);
  EXPECT_FALSE(n->negative);
  EXPECT_EQ(parse_integer("9999999999999999999", error)->magnitude, 9999999999999999999ULL);
  for (const char* bad : {"", "-", "+", "1e3", " 1", "1 ", "--1", "0x1", "99999999999999999999"}) {
    EXPECT_FALSE(parse_integer(bad, error)) << bad;
  }
}

TEST(ScalarsTest, NumbersAreDecimalAndFinite) {
  std::string error;
  EXPECT_DOUBLE_EQ(*parse_number("0.5", error), 0.5);
  EXPECT_DOUBLE_EQ(*parse_number("-3", error), -3.0);
  EXPECT_DOUBLE_EQ(*parse_number("+1e3", error), 1000.0);
  EXPECT_DOUBLE_EQ(*parse_number("2.5E-1", error), 0.25);
  for (const char* bad : {"", ".5", "5.", "inf", "nan", "0x1p3", "1e", "1e+", "1,5", "1e999"}) {
    EXPECT_FALSE(parse_number(bad, error)) << bad;
  }
  for (double value : {0.1, 6.0, 1e21, -2.5e-7, 1000.0}) {
    EXPECT_DOUBLE_EQ(*parse_number(format_number(value), error), value);
  }
}

TEST(ScalarsTest, YamlQuotingEscapesWhatYamlWould) {
  EXPECT_EQ(yaml_quote("plain"), "\"plain\"");
  EXPECT_EQ(yaml_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(yaml_quote(std::string("a\nb\0c", 5)), "\"a\\x0ab\\x00c\"");
}

TEST(ScalarsTest, ClosestMatchFindsLikelyTypos) {
  const std::vector<std::string> keys{"cafile", "certfile", "keyfile", "host", "port"};
  EXPECT_EQ(closest_match("cafle", keys), "cafile");
  EXPECT_EQ(closest_match("prot", keys), "port");
  EXPECT_EQ(closest_match("PORT", keys), "port");
  EXPECT_EQ(closest_match("keyfiles", keys), "keyfile");
  EXPECT_EQ(closest_match("passphrase", keys), std::nullopt);
  EXPECT_EQ(closest_match("", keys), std::nullopt);
  EXPECT_EQ(closest_match(std::string(100000, 'x'), keys), std::nullopt);
}

TEST(ScalarsTest, AlternativesReadAsASentence) {
  EXPECT_EQ(join_alternatives({}), "");
  EXPECT_EQ(join_alternatives({"a"}), "a");
  EXPECT_EQ(join_alternatives({"a", "b"}), "a or b");
  EXPECT_EQ(join_alternatives({"a", "b", "c"}), "a, b or c");
}

}  // namespace
}  // namespace recmesh::config
