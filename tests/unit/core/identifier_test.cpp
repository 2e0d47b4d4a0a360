#include "recmesh/core/identifier.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

namespace recmesh {
namespace {

TEST(IdentifierTest, AcceptsLowerCaseDigitsAndDashUpToThirtyTwo) {
  EXPECT_TRUE(is_valid_identifier("a"));
  EXPECT_TRUE(is_valid_identifier("rec-1"));
  EXPECT_TRUE(is_valid_identifier("0ev-charger"));
  EXPECT_TRUE(is_valid_identifier(std::string(32, 'x')));
}

TEST(IdentifierTest, RejectsEverythingOutsideTheGrammar) {
  for (const std::string& bad :
       std::vector<std::string>{"", "Rec", "rec_1", "a/b", "..", "a b", "-a", "ü",
                                std::string(33, 'x'), "a.b", std::string("a\0b", 3), "a\nb"}) {
    EXPECT_FALSE(is_valid_identifier(bad)) << quote_untrusted(bad);
    EXPECT_THROW(require_identifier("member", bad), Error) << quote_untrusted(bad);
  }
}

TEST(IdentifierTest, ErrorNamesTheFieldAndTheReason) {
  try {
    require_identifier("member", "m_1");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("member"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("'_' is the separator"), std::string::npos);
  }
}

TEST(IdentifierTest, QuoteUntrustedEscapesControlBytesAndTruncates) {
  EXPECT_EQ(quote_untrusted("a\nb"), "\"a\\x0ab\"");
  EXPECT_EQ(quote_untrusted(std::string(100, 'x'), 4), "\"xxxx...\"");
}

}  // namespace
}  // namespace recmesh
