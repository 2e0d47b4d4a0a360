#include "secmgr/roles.hpp"

#include <gtest/gtest.h>

namespace recmesh::secmgr {
namespace {

TEST(RolesTest, TheRoleFollowsTheCommonName) {
  EXPECT_EQ(role_for_common_name("ems_operator-alice"), Role::kOperator);
  EXPECT_EQ(role_for_common_name("ems_engine"), Role::kEngine);
  EXPECT_EQ(role_for_common_name("ems_web"), Role::kViewer);
  EXPECT_EQ(role_for_common_name("ems_lms"), Role::kAuditor);
}

TEST(RolesTest, OtherNamesHaveNoRole) {
  for (const char* cn : {"ems_secmgr", "ems_broker", "ems_secmgr-api", "ems_operator-",
                         "ems_operator-Alice", "ems_operator-a_b", "bridge_r1_m1",
                         "rec_r1_m1_gateway", "ems_engine2", "", "operator-alice"}) {
    EXPECT_FALSE(role_for_common_name(cn).has_value()) << cn;
  }
}

TEST(RolesTest, PermissionsFollowTheDocumentedTable) {
  EXPECT_EQ(permissions_of(Role::kOperator).size(), 6U);
  EXPECT_TRUE(role_allows(Role::kEngine, Permission::kRegister));
  EXPECT_TRUE(role_allows(Role::kEngine, Permission::kRevoke));
  EXPECT_TRUE(role_allows(Role::kEngine, Permission::kRules));
  EXPECT_FALSE(role_allows(Role::kEngine, Permission::kAudit));
  EXPECT_EQ(permissions_of(Role::kViewer), std::vector<Permission>{Permission::kRead});
  EXPECT_EQ(permissions_of(Role::kAuditor),
            (std::vector<Permission>{Permission::kRead, Permission::kAudit}));
}

}  // namespace
}  // namespace recmesh::secmgr
