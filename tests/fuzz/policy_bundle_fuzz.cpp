// Untrusted policy bundles and identity keys, as recmesh-guard reads them from the control
// topic (after the signature check) and from its store.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "recmesh/policy/client_identity.hpp"
#include "recmesh/policy/policy_bundle.hpp"
#include "recmesh/policy/policy_matcher.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace recmesh::policy;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto bundle = parse_policy_bundle(text)) {
    // What parses must serialise to something that parses back to the same bundle.
    auto again = parse_policy_bundle(to_json(*bundle));
    if (!again || !(*again == *bundle)) {
      std::abort();
    }
    const PolicyMatcher matcher(*bundle);
    for (const auto& grant : bundle->grants) {
      if (matcher.grant_of(grant.identity) == nullptr) {
        std::abort();
      }
    }
  }
  if (auto identity = parse_identity_key(text)) {
    if (identity->key() != text) {
      std::abort();
    }
  }
  (void)parse_guard_response(text);
  return 0;
}
