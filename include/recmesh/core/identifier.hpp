#pragma once

#include <string>
#include <string_view>

namespace recmesh {

// IDs of RECs, members, devices and services: [a-z0-9][a-z0-9-]{0,31} (SPEC §3).
// Underscore separates IDs inside common names and so is never part of one.
inline constexpr std::size_t kMaxIdentifierLength = 32;

bool is_valid_identifier(std::string_view id);

// Throws Error(kInvalidArgument) naming `what` ("REC", "member", ...) and the reason.
void require_identifier(std::string_view what, std::string_view id);

// Printable form of untrusted input for error messages: quoted, escaped, truncated.
std::string quote_untrusted(std::string_view text, std::size_t max_length = 48);

}  // namespace recmesh
