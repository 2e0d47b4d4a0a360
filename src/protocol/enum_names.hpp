#pragma once

#include <array>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "recmesh/core/identifier.hpp"
#include "recmesh/core/result.hpp"

namespace recmesh::protocol {

// The wire spelling of each value of an enum, in declaration order.
template <typename E, std::size_t N>
using EnumNames = std::array<std::pair<E, std::string_view>, N>;

template <typename E, std::size_t N>
std::string_view enum_name(const EnumNames<E, N>& names, E value) {
  for (const auto& [v, name] : names) {
    if (v == value) {
      return name;
    }
  }
  return "unknown";
}

// kInvalidArgument naming `what` and listing the accepted spellings.
template <typename E, std::size_t N>
Result<E> parse_enum(const EnumNames<E, N>& names, std::string_view what, std::string_view text) {
  for (const auto& [v, name] : names) {
    if (name == text) {
      return v;
    }
  }
  std::string expected;
  for (std::size_t i = 0; i < N; ++i) {
    expected += i == 0 ? "" : (i + 1 == N ? " or " : ", ");
    expected += names[i].second;
  }
  return Result<E>::failure(
      ErrorCode::kInvalidArgument,
      fmt::format("unknown {} {} (expected {})", what, quote_untrusted(text), expected));
}

}  // namespace recmesh::protocol
