// docs/api/secmgr.openapi.yaml describes exactly the routes the server registers.
#include <set>
#include <string>
#include <yaml-cpp/yaml.h>

#include <gtest/gtest.h>

#include "secmgr/api_server.hpp"

namespace recmesh::secmgr {
namespace {

TEST(ApiRoutesTest, OpenApiDocumentListsEveryRouteAndNoOther) {
  const YAML::Node doc =
      YAML::LoadFile(std::string(RECMESH_SOURCE_DIR) + "/docs/api/secmgr.openapi.yaml");
  std::set<std::string> documented;
  for (const auto& path : doc["paths"]) {
    for (const auto& operation : path.second) {
      const std::string method = operation.first.as<std::string>();
      if (method == "parameters") {
        continue;
      }
      std::string upper;
      for (char c : method) {
        upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      documented.insert(upper + " " + path.first.as<std::string>());
    }
  }
  std::set<std::string> served;
  for (const RouteInfo& route : api_routes()) {
    EXPECT_TRUE(served.insert(route.method + " " + route.path).second) << "twice: " << route.path;
  }
  for (const auto& route : served) {
    EXPECT_TRUE(documented.contains(route)) << route << " is served but not documented";
  }
  for (const auto& route : documented) {
    EXPECT_TRUE(served.contains(route)) << route << " is documented but not served";
  }
  EXPECT_EQ(doc["openapi"].as<std::string>().substr(0, 2), "3.");
}

}  // namespace
}  // namespace recmesh::secmgr
