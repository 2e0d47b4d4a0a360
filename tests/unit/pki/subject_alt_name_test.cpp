#include "recmesh/pki/subject_alt_name.hpp"

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

namespace recmesh::pki {
namespace {

TEST(SubjectAltNameTest, ParsesAndCanonicalises) {
  EXPECT_EQ(SubjectAltName::parse("DNS:Broker.Example").to_string(), "DNS:broker.example");
  EXPECT_EQ(SubjectAltName::parse("IP:127.0.0.1").to_string(), "IP:127.0.0.1");
  EXPECT_EQ(SubjectAltName::parse("IP:0:0::1").to_string(), "IP:::1");
}

TEST(SubjectAltNameTest, RejectsGarbageAndInjection) {
  for (const char* bad : {"", "DNS:", "IP:", "localhost", "URI:http://x", "DNS:a,IP:1.2.3.4",
                          "DNS:a..b", "DNS:-a", "IP:300.1.1.1", "IP:1.2.3", "dns:a", "DNS:a b",
                          "email:x@y", "DNS:a\nb", "IP:1.2.3.4,DNS:x"}) {
    EXPECT_THROW(SubjectAltName::parse(bad), Error) << bad;
  }
}

TEST(SubjectAltNameTest, JoinAndSplitRoundTrip) {
  std::vector<SubjectAltName> sans{SubjectAltName::parse("DNS:localhost"),
                                   SubjectAltName::parse("IP:::1")};
  EXPECT_EQ(split_subject_alt_names(join_subject_alt_names(sans)), sans);
  EXPECT_TRUE(split_subject_alt_names("").empty());
}

}  // namespace
}  // namespace recmesh::pki
