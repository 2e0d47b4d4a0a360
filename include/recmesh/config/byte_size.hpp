#pragma once

#include <compare>
#include <cstdint>

namespace recmesh::config {

// A size in bytes, written in configuration files with an IEC unit: "512B", "64KiB", "16MiB".
struct ByteSize {
  std::uint64_t bytes = 0;

  static constexpr ByteSize kibibytes(std::uint64_t n) { return {n << 10}; }
  static constexpr ByteSize mebibytes(std::uint64_t n) { return {n << 20}; }
  static constexpr ByteSize gibibytes(std::uint64_t n) { return {n << 30}; }

  // clang-tidy reads the defaulted comparison's `<=> 0` as a null pointer constant.
  friend constexpr auto operator<=>(const ByteSize&,
                                    const ByteSize&) = default;  // NOLINT(modernize-use-nullptr)
};

}  // namespace recmesh::config
