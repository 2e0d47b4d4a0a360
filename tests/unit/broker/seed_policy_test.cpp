#include "recmesh/broker/seed_policy.hpp"

#include <algorithm>
#include <cstddef>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/bundle_signing.hpp"
#include "recmesh/policy/policy_bundle.hpp"

#include "temp_dir.hpp"

namespace recmesh::broker {
namespace {

using policy::BrokerId;
using policy::MemberRegistration;

// `members` members of r1 (m0000, m0001, ...) with `devices` devices each (d00, d01, ...).
std::vector<MemberRegistration> community(std::size_t members, std::size_t devices) {
  std::vector<MemberRegistration> out;
  for (std::size_t m = 0; m < members; ++m) {
    MemberRegistration member{"r1", fmt::format("m{:04}", m), {}};
    for (std::size_t d = 0; d < devices; ++d) {
      member.devices.push_back(fmt::format("d{:02}", d));
    }
    out.push_back(std::move(member));
  }
  return out;
}

std::size_t largest_list(const policy::PolicyBundle& bundle) {
  std::size_t largest = 0;
  for (const auto& grant : bundle.grants) {
    largest = std::max({largest, grant.publish.size(), grant.subscribe.size()});
  }
  return largest;
}

class SeedPolicyTest : public ::testing::Test {
 protected:
  SeedPolicyTest() : pki_(pki::Pki::create(dir_ / "pki", Secret("seed policy test passphrase"))) {
    pki_.add_rec("r1");
  }

  // What a broker's recmesh-guard does with the signed form: the size bound, the signature, the
  // bounds of the parser.
  policy::PolicyBundle accepted(const std::string& signed_bundle, const BrokerId& broker) {
    const pki::IssuedFiles secmgr = secmgr_files(pki_);
    const policy::BundleVerifier verifier({read_file(pki_.authority_cert_path("ems")),
                                           read_file(pki_.authority_crl_path("ems")),
                                           read_file(secmgr.cert)});
    auto verified = verifier.verify(signed_bundle, broker, 0);
    EXPECT_TRUE(verified.ok()) << verified.status().message;
    return verified.ok() ? std::move(verified).value() : policy::PolicyBundle{};
  }

  testing::TempDir dir_;
  pki::Pki pki_;
};

// A community of 1,000 members of 10 devices: every broker's bundle, signed as the Security
// Manager signs it, is within the bounds of docs/protocol/policy-bundle.md and taken by a broker.
// The sizes are printed: the largest list of a grant (a member's, the same on every broker of
// that size) and the central bundle's bytes, which grow with the number of members.
TEST_F(SeedPolicyTest, AThousandMembersOfTenDevicesFitTheBundleBounds) {
  const auto members = community(1000, 10);

  const std::string central = sign_derived_policy(pki_, BrokerId::central(), members, {}, 1);
  EXPECT_LE(central.size(), policy::kMaxBundleBytes);
  const policy::PolicyBundle central_bundle = accepted(central, BrokerId::central());
  EXPECT_EQ(central_bundle.grants.size(), 1000U + 3U);  // the bridges, engine, lms, secmgr
  EXPECT_LE(central_bundle.grants.size(), policy::kMaxGrants);
  EXPECT_LE(largest_list(central_bundle), policy::kMaxTopicsPerGrant);

  const BrokerId last = BrokerId::local("r1", "m0999");
  const std::string local = sign_derived_policy(pki_, last, members, {}, 1);
  EXPECT_LE(local.size(), policy::kMaxBundleBytes);
  const policy::PolicyBundle local_bundle = accepted(local, last);
  EXPECT_EQ(local_bundle.grants.size(), 10U + 3U);  // the devices, gateway, bridge, secmgr
  EXPECT_LE(largest_list(local_bundle), policy::kMaxTopicsPerGrant);

  std::cout << fmt::format(
      "1,000 members x 10 devices: central bundle {} bytes signed ({} grants, largest list {}), "
      "local bundle {} bytes (largest list {}); bounds {} bytes, {} topics per list\n",
      central.size(), central_bundle.grants.size(), largest_list(central_bundle), local.size(),
      largest_list(local_bundle), policy::kMaxBundleBytes, policy::kMaxTopicsPerGrant);
}

// A member with the most devices it may register: its broker takes its bundle, and the central
// broker takes that member's bridge among 999 others.
TEST_F(SeedPolicyTest, AMemberWithTheMostDevicesFitsTheBundleBounds) {
  auto members = community(1000, 10);
  members.back() = community(1, policy::kMaxDevicesPerMember).front();
  members.back().member = "m0999";
  for (const BrokerId& broker : {BrokerId::central(), BrokerId::local("r1", "m0999")}) {
    const std::string signed_bundle = sign_derived_policy(pki_, broker, members, {}, 1);
    EXPECT_LE(signed_bundle.size(), policy::kMaxBundleBytes) << broker.to_string();
    EXPECT_LE(largest_list(accepted(signed_bundle, broker)), policy::kMaxTopicsPerGrant)
        << broker.to_string();
  }
}

}  // namespace
}  // namespace recmesh::broker
