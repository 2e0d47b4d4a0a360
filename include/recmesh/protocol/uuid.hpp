#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "recmesh/core/result.hpp"

namespace recmesh::protocol {

// A control or command ID in canonical text form: lower-case hex, 8-4-4-4-12. Any version is
// accepted (v4 random, v7 time-ordered); the nil UUID is not an ID and is rejected.
class Uuid {
 public:
  // Empty, not a valid ID: encoding a message that still holds one fails.
  Uuid() = default;
  static Result<Uuid> parse(std::string_view text);
  // The text form of 16 bytes; fails only for the nil UUID.
  static Result<Uuid> from_bytes(const std::array<std::uint8_t, 16>& bytes);
  // A random (version 4) UUID from OpenSSL's CSPRNG; throws Error(kInternal) if it fails.
  static Uuid random_v4();

  const std::string& str() const { return text_; }
  bool empty() const { return text_.empty(); }
  auto operator<=>(const Uuid&) const = default;

 private:
  explicit Uuid(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

}  // namespace recmesh::protocol
