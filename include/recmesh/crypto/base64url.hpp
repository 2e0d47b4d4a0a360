#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace recmesh::crypto {

// RFC 4648 §5 base64url without padding (as JOSE uses it).
std::string base64url_encode(std::string_view bytes);
// Strict: rejects padding, whitespace, characters outside the alphabet and impossible lengths.
std::optional<std::string> base64url_decode(std::string_view text);

// RFC 4648 §4 standard base64 with padding (as x5c uses it).
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace recmesh::crypto
