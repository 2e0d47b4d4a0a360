#include "recmesh/protocol/uuid.hpp"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace recmesh::protocol {
namespace {

TEST(UuidTest, AcceptsCanonicalLowerCase) {
  for (const char* good : {"3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6f",
                           "01890a5d-ac96-774b-bcce-b302099a8057",  // version 7
                           "ffffffff-ffff-ffff-ffff-ffffffffffff"}) {
    auto parsed = Uuid::parse(good);
    ASSERT_TRUE(parsed.ok()) << good;
    EXPECT_EQ(parsed->str(), good);
  }
}

TEST(UuidTest, RejectsOtherSpellings) {
  for (const char* bad :
       {"", "3F6C2A9E-8B1D-4C7A-9E2F-5A1B3C4D5E6F", "{3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6f}",
        "3f6c2a9e8b1d4c7a9e2f5a1b3c4d5e6f", "3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6",
        "3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6fa", "3f6c2a9e_8b1d-4c7a-9e2f-5a1b3c4d5e6f",
        "3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6g", "urn:uuid:3f6c2a9e-8b1d-4c7a-9e2f-5a",
        "00000000-0000-0000-0000-000000000000"}) {
    auto parsed = Uuid::parse(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code, ErrorCode::kInvalidArgument);
  }
}

TEST(UuidTest, RandomIsVersionFourAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    Uuid u = Uuid::random_v4();
    ASSERT_TRUE(Uuid::parse(u.str()).ok()) << u.str();
    EXPECT_EQ(u.str()[14], '4');
    EXPECT_NE(std::string("89ab").find(u.str()[19]), std::string::npos);
    seen.insert(u.str());
  }
  EXPECT_EQ(seen.size(), 64u);
}

TEST(UuidTest, FromBytes) {
  std::array<std::uint8_t, 16> bytes{0x3f, 0x6c, 0x2a, 0x9e, 0x8b, 0x1d, 0x4c, 0x7a,
                                     0x9e, 0x2f, 0x5a, 0x1b, 0x3c, 0x4d, 0x5e, 0x6f};
  EXPECT_EQ(Uuid::from_bytes(bytes)->str(), "3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6f");
  EXPECT_FALSE(Uuid::from_bytes({}).ok());
  EXPECT_TRUE(Uuid().empty());
}

}  // namespace
}  // namespace recmesh::protocol
