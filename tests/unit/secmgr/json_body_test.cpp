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

TEST(JsonBodyTest, ReadsListsOfObjectsEachCheckedAndNamedByItsPlace) {
  const JsonBody body(R"({"devices":[{"id":"pv-1"},{"id":"meter","note":null}]})", {"devices"});
  const std::vector<JsonBody> devices = body.object_list("devices", {"id", "note"}, 5);
  ASSERT_EQ(devices.size(), 2U);
  EXPECT_EQ(devices[1].required_string("id"), "meter");
  EXPECT_TRUE(body.object_list("absent", {"id"}, 5).empty());

  const auto refused = [](std::string_view text, std::size_t max_items) -> std::string {
    try {
      const JsonBody outer(text, {"devices"});
      for (const JsonBody& device : outer.object_list("devices", {"id"}, max_items)) {
        (void)device.required_string("id");
      }
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400);
      return e.what();
    }
    return "";
  };
  EXPECT_NE(refused(R"({"devices":{"id":"a"}})", 5).find("devices must be an array"),
            std::string::npos);
  EXPECT_NE(refused(R"({"devices":["a"]})", 5).find("devices[0] must be a JSON object"),
            std::string::npos);
  EXPECT_NE(refused(R"({"devices":[{"id":"a"},{"id":"b","x":1}]})", 5)
                .find("devices[1]: unknown field \"x\""),
            std::string::npos);
  EXPECT_NE(refused(R"({"devices":[{"id":7}]})", 5).find("devices[0]: id must be a string"),
            std::string::npos);
  EXPECT_NE(refused(R"({"devices":[{}]})", 5).find("devices[0]: id is required"),
            std::string::npos);
  EXPECT_NE(
      refused(R"({"devices":[{"id":"a"},{"id":"b"},{"id":"c"}]})", 2).find("more than 2 entries"),
      std::string::npos);
  EXPECT_EQ(refused(R"({"devices":[{"id":"a"},{"id":"b"}]})", 2), "");
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
