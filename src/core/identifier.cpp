#include "recmesh/core/identifier.hpp"

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh {
namespace {

bool is_id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

}  // namespace

bool is_valid_identifier(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdentifierLength || id.front() == '-') {
    return false;
  }
  for (char c : id) {
    if (!is_id_char(c)) {
      return false;
    }
  }
  return true;
}

void require_identifier(std::string_view what, std::string_view id) {
  if (is_valid_identifier(id)) {
    return;
  }
  std::string reason;
  if (id.empty()) {
    reason = "it is empty";
  } else if (id.size() > kMaxIdentifierLength) {
    reason = fmt::format("it has {} characters, at most {} are allowed", id.size(),
                         kMaxIdentifierLength);
  } else if (id.front() == '-') {
    reason = "it starts with '-'";
  } else {
    for (char c : id) {
      if (!is_id_char(c)) {
        reason = c == '_' ? "'_' is the separator of common names and never part of an ID"
                          : fmt::format("character {} is not allowed",
                                        quote_untrusted(std::string_view(&c, 1)));
        break;
      }
    }
  }
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("invalid {} ID {}: {} (allowed: [a-z0-9][a-z0-9-]{{0,31}})", what,
                          quote_untrusted(id), reason));
}

std::string quote_untrusted(std::string_view text, std::size_t max_length) {
  std::string out = "\"";
  std::size_t shown = 0;
  for (char c : text) {
    if (shown == max_length) {
      out += "...";
      break;
    }
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
    ++shown;
  }
  out += '"';
  return out;
}

}  // namespace recmesh
