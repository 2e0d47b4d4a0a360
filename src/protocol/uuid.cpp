#include "recmesh/protocol/uuid.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"

namespace recmesh::protocol {
namespace {

constexpr std::size_t kUuidLength = 36;

bool is_dash_position(std::size_t i) {
  return i == 8 || i == 13 || i == 18 || i == 23;
}

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

std::string to_text(const std::array<std::uint8_t, 16>& bytes) {
  std::string text;
  text.reserve(kUuidLength);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      text += '-';
    }
    text += fmt::format("{:02x}", bytes[i]);
  }
  return text;
}

}  // namespace

Result<Uuid> Uuid::parse(std::string_view text) {
  const auto invalid = [&](std::string_view reason) {
    return Result<Uuid>::failure(
        ErrorCode::kInvalidArgument,
        fmt::format("{} is not a UUID: {} (expected lower-case 8-4-4-4-12 hex)",
                    quote_untrusted(text), reason));
  };
  if (text.size() != kUuidLength) {
    return invalid(fmt::format("it has {} characters, not {}", text.size(), kUuidLength));
  }
  bool all_zero = true;
  for (std::size_t i = 0; i < kUuidLength; ++i) {
    char c = text[i];
    if (is_dash_position(i)) {
      if (c != '-') {
        return invalid(fmt::format("character {} must be '-'", i + 1));
      }
    } else if (!is_lower_hex(c)) {
      return invalid(fmt::format("character {} is not a lower-case hex digit", i + 1));
    } else if (c != '0') {
      all_zero = false;
    }
  }
  if (all_zero) {
    return invalid("the nil UUID identifies nothing");
  }
  return Uuid(std::string(text));
}

Result<Uuid> Uuid::from_bytes(const std::array<std::uint8_t, 16>& bytes) {
  return parse(to_text(bytes));
}

Uuid Uuid::random_v4() {
  std::array<std::uint8_t, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw Error(ErrorCode::kInternal, "the random number generator failed");
  }
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return Uuid(to_text(bytes));  // never nil: the version bits are set
}

}  // namespace recmesh::protocol
