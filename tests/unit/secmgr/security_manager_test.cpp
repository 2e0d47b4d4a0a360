// The Security Manager's operations in process: the registry and the PKI, no HTTP, no brokers.
#include "secmgr/security_manager.hpp"

#include <cstddef>
#include <string>

#include <gtest/gtest.h>

#include "recmesh/core/secret.hpp"
#include "recmesh/log/logger.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/access_matrix.hpp"

#include "secmgr/api_error.hpp"
#include "temp_dir.hpp"

namespace recmesh::secmgr {
namespace {

// A member's grants grow with its devices (policy::kMaxDevicesPerMember): the device past the
// bound is refused when it is registered, not later by the brokers.
TEST(SecurityManagerTest, AMemberRegistersAtMostItsBoundOfDevices) {
  testing::TempDir dir;
  SecurityManager manager(dir / "secmgr.db",
                          pki::Pki::create(dir / "pki", Secret("security manager test passphrase")),
                          log::Logger("secmgr"));
  manager.add_rec("r1");
  manager.add_member("r1", "m1");
  for (std::size_t d = 0; d < policy::kMaxDevicesPerMember; ++d) {
    ASSERT_EQ(manager.add_device("r1", "m1", "d" + std::to_string(d)).status, 201) << d;
  }
  try {
    manager.add_device("r1", "m1", "one-more");
    ADD_FAILURE() << "a device past the bound was registered";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 409);
    EXPECT_NE(std::string(e.what()).find("r1/m1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(manager.list_devices("r1", "m1").body["devices"].size(), policy::kMaxDevicesPerMember);
  // The gateway is not one of the member's devices; another member has a bound of its own.
  EXPECT_EQ(manager.add_device("r1", "m1", "gateway").status, 201);
  manager.add_member("r1", "m2");
  EXPECT_EQ(manager.add_device("r1", "m2", "d0").status, 201);
}

// A batch counts its own devices against the bound and is refused whole past it.
TEST(SecurityManagerTest, ABatchCountsItsOwnDevicesAgainstTheBound) {
  testing::TempDir dir;
  SecurityManager manager(dir / "secmgr.db",
                          pki::Pki::create(dir / "pki", Secret("security manager test passphrase")),
                          log::Logger("secmgr"));
  RegistrationBatch batch;
  batch.recs = {"r1"};
  batch.members = {{"r1", "m1"}};
  batch.devices.push_back({"r1", "m1", "gateway"});
  for (std::size_t d = 0; d <= policy::kMaxDevicesPerMember; ++d) {
    batch.devices.push_back({"r1", "m1", "d" + std::to_string(d)});
  }
  try {
    manager.register_batch(batch);
    ADD_FAILURE() << "a batch past the bound was registered";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 409);
    EXPECT_NE(std::string(e.what()).find("r1/m1"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(manager.list_recs().body["recs"].empty()) << "a refused batch left its REC";
  batch.devices.pop_back();
  EXPECT_EQ(manager.register_batch(batch).status, 201);
  EXPECT_EQ(manager.list_devices("r1", "m1").body["devices"].size(),
            policy::kMaxDevicesPerMember + 1);  // and the gateway
}

}  // namespace
}  // namespace recmesh::secmgr
