#pragma once

// Big-endian integers and length-prefixed fields of the e2e wire format.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace recmesh::e2e::detail {

inline void put_be(std::uint8_t* out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = 0; i < width; ++i) {
    out[width - 1 - i] = static_cast<std::uint8_t>(value >> (8 * i));
  }
}

inline std::uint64_t get_be(const std::uint8_t* in, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i) {
    value = (value << 8) | in[i];
  }
  return value;
}

inline void append_be(std::string& out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = width; i > 0; --i) {
    out.push_back(static_cast<char>(static_cast<std::uint8_t>(value >> (8 * (i - 1)))));
  }
}

// Reads fields front to back; any read past the end makes it fail for good.
class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}

  std::optional<std::string_view> take(std::size_t n) {
    if (failed_ || bytes_.size() - pos_ < n) {
      failed_ = true;
      return std::nullopt;
    }
    auto out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  std::optional<std::uint64_t> integer(std::size_t width) {
    auto field = take(width);
    if (!field) {
      return std::nullopt;
    }
    return get_be(reinterpret_cast<const std::uint8_t*>(field->data()), width);
  }
  // A field preceded by its length in `width` bytes.
  std::optional<std::string_view> prefixed(std::size_t width) {
    auto length = integer(width);
    return length ? take(static_cast<std::size_t>(*length)) : std::nullopt;
  }
  std::size_t position() const { return pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }
  bool failed() const { return failed_; }

 private:
  std::string_view bytes_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace recmesh::e2e::detail
