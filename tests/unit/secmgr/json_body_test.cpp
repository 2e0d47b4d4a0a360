#include "secmgr/json_body.hpp"

#include <gtest/gtest.h>

#include "secmgr/api_error.hpp"

namespace recmesh::secmgr {
namespace {

std::string refusal(std::string_view text, std::initializer_list<std::string_view> allowed) {
  try {
    const JsonBody body(text, allowed);
    (void)body.required_string("id");
    (void)body.optional_integer("days", 1, 825);
    (void)body.optional_bool("allow");
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    return e.what();
  }
  return "";
}

TEST(JsonBodyTest, ReadsDeclaredFields) {
  const JsonBody body(R"({"id":"r1","days":30,"allow":false,"note":null})",
                      {"id", "days", "allow", "note"});
  EXPECT_EQ(body.required_string("id"), "r1");
  EXPECT_EQ(body.optional_integer("days", 1, 825), 30);
  EXPECT_EQ(body.optional_bool("allow"), false);
  EXPECT_FALSE(body.optional_string("note").has_value());
  EXPECT_FALSE(body.has("note"));
}

TEST(JsonBodyTest, AnEmptyBodyIsAnEmptyObject) {
  const JsonBody body("", {"reason"});
  EXPECT_FALSE(body.optional_string("reason").has_value());
}

TEST(JsonBodyTest, RefusesWhatIsNotOneDeclaredObject) {
  EXPECT_NE(refusal("{", {"id"}).find("not valid JSON"), std::string::npos);
  EXPECT_NE(refusal("[1]", {"id"}).find("must be a JSON object"), std::string::npos);
  EXPECT_NE(refusal("\"id\"", {"id"}).find("must be a JSON object"), std::string::npos);
  EXPECT_NE(refusal(R"({"id":"a","extra":1})", {"id"}).find("unknown field \"extra\""),
            std::string::npos);
  EXPECT_NE(refusal("{}", {"id"}).find("id is required"), std::string::npos);
  EXPECT_NE(refusal(R"({"id":5})", {"id"}).find("id must be a string"), std::string::npos);
  EXPECT_NE(refusal(R"({"id":"a","days":0})", {"id", "days"}).find("between 1 and 825"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"id":"a","days":1.5})", {"id", "days"}).find("must be an integer"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"id":"a","allow":"yes"})", {"id", "allow"}).find("true or false"),
            std::string::npos);
}

TEST(JsonBodyTest, RefusesDeepNestingBeforeBuildingIt) {
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_NE(refusal(deep, {"id"}).find("nested deeper"), std::string::npos);
}

}  // namespace
}  // namespace recmesh::secmgr
