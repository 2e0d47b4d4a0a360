#include "recmesh/core/text.hpp"

#include <gtest/gtest.h>

namespace recmesh {
namespace {

TEST(TextTest, ReplacesEveryOccurrence) {
  EXPECT_EQ(replace_all("/var/lib/x and /var/lib/y", "/var/lib", "/tmp/t"),
            "/tmp/t/x and /tmp/t/y");
  EXPECT_EQ(replace_all("none here", "/var", "/tmp"), "none here");
  EXPECT_EQ(replace_all("", "a", "b"), "");
}

TEST(TextTest, WhatAReplacementInsertsIsNotReplacedAgain) {
  EXPECT_EQ(replace_all("a-a", "a", "aa"), "aa-aa");
  EXPECT_EQ(replace_all("+/+", "+", "+x"), "+x/+x");
  EXPECT_EQ(replace_all("abab", "ab", ""), "");
}

TEST(TextTest, AnEmptyPatternReplacesNothing) {
  EXPECT_EQ(replace_all("text", "", "x"), "text");
}

}  // namespace
}  // namespace recmesh
